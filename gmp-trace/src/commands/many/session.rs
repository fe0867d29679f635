//! One traced process among several: the trace command's steps (read the binary, plan, attach
//! with the `--pid` strategy, stream, stop) with a BPF object, ring buffer, pipeline and model
//! of its own, ending when the process exits (its probes detached at once) or when the run
//! stops. Its events go to the run's shared output; its summary and graph come back to the run.
//! The blocking part of the setup (reading the binary, loading and attaching the BPF object)
//! runs on tokio's blocking pool, a few at a time, so that processes exec'ing together (each
//! held stopped until its probes are in) are set up side by side, not one after the other.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use anyhow::anyhow;
use tokio::sync::{watch, Semaphore};

use super::super::trace::{self, End};
use crate::binary::GoBinary;
use crate::cli::{Args, Format, OutputArgs};
use crate::export::many::{ProcessReport, Shared, SharedOut};
use crate::model::Model;
use crate::pipeline::Pipeline;
use crate::probes::{self, Attachment, Tracer};
use crate::process::attach::Attach;
use crate::process::discover::{Discoverer, Look, ProcessIdentity};
use crate::process::exe::FileIdentity;
use crate::process::Target;
use crate::source::live::{monotonic_ns, LiveSource};
use gmp_trace_common::Offsets;

/// What every session shares: the command line, the event output, the stop word.
pub struct Ctx {
    pub args: Arc<Args>,
    pub events: Option<(Format, Shared)>,
    pub stop: watch::Receiver<bool>,
    /// Whether to build each process's graph (`--graph`).
    pub graph: bool,
    /// Setups running at once: loading a BPF object is CPU work in the kernel (the verifier),
    /// so more than a couple per core only makes each slower.
    setups: Arc<Semaphore>,
    binaries: Arc<Binaries>,
}

impl Ctx {
    pub fn new(
        args: Args,
        events: Option<(Format, Shared)>,
        stop: watch::Receiver<bool>,
        graph: bool,
    ) -> Ctx {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ctx {
            args: Arc::new(args),
            events,
            stop,
            graph,
            setups: Arc::new(Semaphore::new(SETUPS_PER_CORE * cores)),
            binaries: Arc::default(),
        }
    }
}

/// See [`Ctx::setups`].
const SETUPS_PER_CORE: usize = 2;

/// A binary read, checked and planned for (with the run's options): the same for every process
/// that runs it.
struct Planned {
    identity: FileIdentity,
    bin: Arc<GoBinary>,
    plan: Vec<Attachment>,
    offsets: Offsets,
}

type Slot = Arc<OnceLock<Result<Arc<Planned>, String>>>;

/// The last few binaries planned, by file identity: a program run over and over (a test
/// binary, a shell loop's) is read once, not at each exec while the process is held, and
/// processes exec'ing the same binary together wait for one reading of it.
#[derive(Default)]
struct Binaries(Mutex<VecDeque<(FileIdentity, Slot)>>);

/// How many binaries [`Binaries`] keeps (each holds its file mapped and its tables).
const BINARIES_KEPT: usize = 8;

impl Binaries {
    fn get(&self, exe: &Path, args: &Args) -> anyhow::Result<Arc<Planned>> {
        let identity = FileIdentity::of(exe)?;
        let slot = {
            let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            match kept.iter().find(|(id, _)| *id == identity) {
                Some((_, slot)) => slot.clone(),
                None => {
                    let slot = Slot::default();
                    kept.push_front((identity, slot.clone()));
                    kept.truncate(BINARIES_KEPT);
                    slot
                }
            }
        };
        slot.get_or_init(|| plan_binary(exe, identity, args).map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|e| anyhow!(e))
    }
}

fn plan_binary(exe: &Path, identity: FileIdentity, args: &Args) -> anyhow::Result<Arc<Planned>> {
    let bin = GoBinary::open(exe)?;
    if FileIdentity::of(exe)? != identity {
        anyhow::bail!(
            "{} changed on disk while gmp-trace was reading it",
            exe.display()
        );
    }
    trace::check_supported(&bin, exe)?;
    let plan = trace::probe_plan(&bin, args)?;
    let offsets = probes::offsets(&bin)?;
    Ok(Arc::new(Planned {
        identity,
        bin: Arc::new(bin),
        plan,
        offsets,
    }))
}

/// A session that did not end in a report.
pub struct Failed {
    /// Whether events of the process were streamed already (tracing it again would repeat them).
    pub began: bool,
    pub error: anyhow::Error,
}

/// How a session's process came to be traced.
pub enum How {
    /// Running already (`--pid`, `--all`): attached as `--pid` does.
    Pid(ProcessIdentity),
    /// `--follow`: stopped right after its exec at `ts` (CLOCK_MONOTONIC ns), before its first
    /// instruction; continued once its probes are in.
    Exec(ProcessIdentity, u64),
    /// `--follow`'s launched program, already held before its exec (pid given).
    Launch(Target, u32),
}

/// What the blocking part of the setup hands to the session: the process held, its binary
/// read, the probes loaded and attached.
struct Ready {
    target: Target,
    id: Option<ProcessIdentity>,
    exec_ts: Option<u64>,
    mode: &'static str,
    exe: PathBuf,
    bin: Arc<GoBinary>,
    offsets: Offsets,
    pid: u32,
    ring_bytes: u32,
    tracer: Tracer,
    source: LiveSource,
    attach_ms: f64,
}

/// The setup up to the probes being in, on a blocking thread (no session state in it, so no
/// `Rc`); every error is from before streaming began.
fn prepare(args: &Args, binaries: &Binaries, how: How, started: Instant) -> anyhow::Result<Ready> {
    let (mut target, id, held, exec_ts, mode) = match how {
        How::Pid(id) => {
            let t = Target::resolve(Some(id.pid as i32), &[], args.force)?;
            (t, Some(id), None, None, "pid")
        }
        How::Exec(id, ts) => {
            let t = Attach::stopped_at_exec(id.pid)?;
            (Target::Attach(t), Some(id), None, Some(ts), "follow")
        }
        How::Launch(t, pid) => (t, None, Some(pid), None, "launch"),
    };
    let exe = target.exe().to_path_buf();
    let planned = binaries.get(&exe, args)?;
    let mut offsets = planned.offsets;
    log::debug!("binary read and planned at {:?}", started.elapsed());
    let pid = match held {
        Some(pid) => pid,
        None => target.hold()?,
    };
    offsets.target_pid = pid;
    let ring_bytes = probes::ring_bytes(args.buffer_size, args.event_rate);
    let (tracer, source, attach_ms) = trace::attach(
        &mut target,
        planned.identity,
        &offsets,
        &planned.plan,
        ring_bytes,
        args,
        started,
    )?;
    Ok(Ready {
        target,
        id,
        exec_ts,
        mode,
        exe,
        bin: planned.bin.clone(),
        offsets,
        pid,
        ring_bytes,
        tracer,
        source,
        attach_ms,
    })
}

/// Traces a process until it exits or the run stops; `sequence` is its Perfetto packet
/// sequence, `image` which image of the process it is in the run (0 the first).
// Long (~100 lines) on purpose: it is trace.rs's `run`, one process's whole story, step by
// step with each step's error marked before or after streaming began; split, the steps would
// hand a dozen values to each other.
pub async fn trace_one(
    ctx: Rc<Ctx>,
    how: How,
    (sequence, image): (u32, u32),
) -> Result<ProcessReport, Failed> {
    let started = Instant::now();
    let args = &ctx.args;
    let fail = |began| move |error: anyhow::Error| Failed { began, error };
    let ready = {
        let _permit = ctx.setups.clone().acquire_owned().await;
        let (args, binaries) = (ctx.args.clone(), ctx.binaries.clone());
        tokio::task::spawn_blocking(move || prepare(&args, &binaries, how, started))
            .await
            .map_err(|e| fail(false)(anyhow!("setting up the session failed: {e}")))?
            .map_err(fail(false))?
    };
    let Ready {
        mut target,
        id,
        exec_ts,
        mode,
        exe,
        bin,
        offsets,
        pid,
        ring_bytes,
        tracer,
        mut source,
        attach_ms,
    } = ready;
    let quiet = OutputArgs {
        quiet: true,
        ..OutputArgs::default()
    };
    let mut pipeline = Pipeline::open(&quiet, Model::new(), &*bin).map_err(fail(false))?;
    pipeline.perfetto_sequence = sequence;
    pipeline.perfetto_image = image;
    if let Some((format, out)) = &ctx.events {
        pipeline.redirect_events(*format, Box::new(SharedOut::new(out.clone())));
    }
    trace::open_stream(&mut pipeline, &target, &bin, pid, None, args.level).map_err(fail(true))?;
    // The Perfetto writer's clock snapshot goes out now, before any later session's: the trace
    // processor rejects snapshots that go back in time through the file.
    pipeline.flush();
    trace::begin(
        &mut target,
        &mut pipeline,
        &bin,
        &offsets,
        &tracer,
        args.out.quiet,
    )
    .map_err(fail(true))?;
    let exec_held_ns = exec_ts.map(|ts| monotonic_ns().saturating_sub(ts));
    let id = match id {
        Some(id) => id,
        None => identity_of(pid, &bin, &exe),
    };

    let mut stop = ctx.stop.clone();
    let end = drive(&mut target, &mut source, &tracer, &mut pipeline, &mut stop)
        .await
        .map_err(fail(true))?;
    let exited = end == End::Exited;
    let detach = match exited {
        true => trace::Detach::AfterReport,
        false => trace::Detach::ByCaller,
    };
    let mut stopped = trace::stop(source, tracer, &mut pipeline, detach, &target, pid, args)
        .map_err(fail(true))?;
    if !exited {
        detach_off_thread(stopped.tracer.take()).await;
    }
    let epilogue = (end == End::Stopped && !args.out.quiet).then(|| trace::alive_at_end(pid, &bin));
    let exit_code = target.finish().await.map_err(fail(true))?;
    let run = trace::live_run(
        &mut stopped,
        pipeline.malformed,
        (attach_ms, ring_bytes),
        exit_code,
        trace::about(&bin, &exe, mode, pid),
    );
    let graph = ctx.graph.then(|| pipeline.graph());
    let summary = pipeline.finish(run).map_err(fail(true))?;
    detach_off_thread(stopped.tracer.take()).await;
    if !args.out.quiet {
        // One eprint (one write under stderr's lock): blocks of processes ending together do
        // not interleave.
        eprint!(
            "{}{}{}",
            crate::export::many::text_header(&id),
            summary.text(),
            epilogue.unwrap_or_default()
        );
    }
    Ok(ProcessReport {
        identity: id,
        parent: None,
        summary,
        graph,
        exec_held_ns,
        image,
    })
}

/// Detaches `tracer`'s probes and frees its BPF objects on the blocking pool, and waits for
/// that: the kernel's grace periods (~90 ms for a session's links) pass without holding up
/// the thread every session and the process watch share.
async fn detach_off_thread(tracer: Option<Tracer>) {
    if let Some(t) = tracer {
        if let Err(e) = tokio::task::spawn_blocking(move || drop(t)).await {
            log::warn!("detaching a session's probes failed: {e}");
        }
    }
}

/// Who the launched program is, looked up once it has exec'd (from its binary if /proc no
/// longer has it).
fn identity_of(pid: u32, bin: &GoBinary, exe: &std::path::Path) -> ProcessIdentity {
    match Discoverer::new().look(pid) {
        Look::Go(id) => id,
        _ => ProcessIdentity {
            pid,
            exe: exe.to_path_buf(),
            comm: exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            go_version: bin.go_version().to_string(),
            module_path: bin.main_module().map(str::to_owned),
            cgroup: None,
            container_id: None,
            ns_pid: None,
        },
    }
}

/// Streams the process's events until it exits or replaces its image, or the run stops.
async fn drive(
    target: &mut Target,
    source: &mut LiveSource,
    tracer: &Tracer,
    pipeline: &mut Pipeline<'_>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<End> {
    let mut tick = tokio::time::interval(probes::DRAIN_INTERVAL);
    loop {
        if pipeline.image_replaced_now() {
            return Ok(End::ImageReplaced);
        }
        if *stop.borrow() {
            return Ok(End::Stopped);
        }
        tokio::select! {
            r = source.readable(pipeline) => {
                r?;
                pipeline.flush();
            }
            _ = tick.tick() => {
                source.drain(pipeline);
                source.check_losses(tracer, pipeline)?;
                pipeline.flush();
            }
            r = target.exited() => {
                r?;
                return Ok(End::Exited);
            }
            r = stop.changed() => {
                if r.is_err() {
                    return Ok(End::Stopped);
                }
            }
        }
    }
}
