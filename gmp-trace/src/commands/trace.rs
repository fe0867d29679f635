//! `gmp-trace [OPTIONS] -- CMD [ARGS...]` or `--pid PID`: trace a live Go process, the default
//! command. The story: pick the target, read its binary and plan the probes, open the outputs,
//! hold the target, attach, let it run, stream events from the ring buffer into the model and
//! exporters until it exits (or Ctrl-C / SIGTERM / --duration), then stop the probes and report
//! in the order that disturbs the target least.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use gmp_trace_common::Offsets;

use crate::binary::{Arch, GoBinary};
use crate::cli::Args;
use crate::commands::cpu_samples::CpuSampling;
use crate::export::files;
use crate::export::godump::{write_grouped, TextOptions};
use crate::model::Model;
use crate::pipeline::Pipeline;
use crate::probes::{self, Attachment, Level, Links, Tracer};
use crate::process::exe::FileIdentity;
use crate::process::maps::load_bias;
use crate::process::runtime::LiveReport;
use crate::process::snapshot;
use crate::process::{preflight, Bias, SignalAction, Target};
use crate::run::{Aggregates, CpuSampleCounts, ProbeInfo, RunInfo};
use crate::source::exec::ExecWatch;
use crate::source::live::{monotonic_ns, LiveSource};
use crate::source::recording::{Header, Recorder};

/// Runs a session; returns the process exit code (the child's in launch mode).
pub async fn run(args: Args) -> anyhow::Result<i32> {
    if super::many::wanted(&args) {
        return super::many::run(args).await;
    }
    let started = Instant::now();
    check_options(&args)?;
    let mut target = Target::resolve(args.pid.first().copied(), &args.command, args.force)?;
    let exe = target.exe().to_path_buf();
    let bin = GoBinary::open(&exe)?;
    log::debug!("binary read at {:?}", started.elapsed());
    // Probe offsets belong to this exact file: remember its identity and check it again right
    // before attaching, so a binary replaced in between never gets probes at stale offsets.
    let identity = FileIdentity::of(&exe)?;
    check_supported(&bin, &exe)?;
    // Probe sites first: on a stripped binary that error (symbols) is the one to fix first.
    let plan = probe_plan(&bin, &args)?;
    let mut offsets = probes::offsets(&bin)?;
    log::debug!("probe sites and offsets at {:?}", started.elapsed());
    preflight::check_privileges()?;

    // Outputs are opened (created) before anything runs: a bad path fails here.
    let mut pipeline = Pipeline::open(&args.out, Model::new(), &bin)?;
    let record_file = match &args.record {
        Some(p) => files::open_recording(p)?.map(|f| (f, p.clone())),
        None => None,
    };

    // Start (held) or find the process, then load with its pid and attach.
    let pid = target.hold()?;
    offsets.target_pid = pid;
    let ring_bytes = probes::ring_bytes(args.buffer_size, args.event_rate);
    let (tracer, mut source, attach_ms) = attach(
        &mut target,
        identity,
        &offsets,
        &plan,
        ring_bytes,
        &args,
        started,
    )?;
    let sampling = match args.sample_rate {
        Some(hz) => match CpuSampling::start(&offsets, hz, &exe) {
            Ok(s) => Some(s),
            Err(e) => {
                target.abort();
                return Err(e);
            }
        },
        None => None,
    };
    open_stream(&mut pipeline, &target, &bin, pid, record_file, args.level)?;
    begin(
        &mut target,
        &mut pipeline,
        &bin,
        &offsets,
        &tracer,
        args.out.quiet,
    )?;

    let end = drive(
        &mut target,
        &mut source,
        &tracer,
        &mut pipeline,
        args.duration,
    )
    .await?;
    let target_exited = end == End::Exited;
    if end == End::ImageReplaced && !args.out.quiet {
        eprintln!(
            "gmp-trace: pid {pid} exec'd a new image ({}); tracing of it stops here (the new \
             image is not traced)",
            exec_path(&pipeline)
        );
    }

    let mode = target.mode();
    let detach = match target_exited {
        true => Detach::AfterReport,
        false => Detach::Now,
    };
    let mut stopped = stop(source, tracer, &mut pipeline, detach, &target, pid, &args)?;
    // --pid: the process runs on; what it still holds, with stacks read from its memory, ends
    // the summary (the probes are gone, so this costs the target nothing).
    if end == End::Stopped && matches!(target, Target::Attach(_)) && !args.out.quiet {
        pipeline.epilogue = Some(alive_at_end(pid, &bin));
    }
    let exit_code = target.finish().await?;
    pipeline.model.finish();
    let cpu_samples = match sampling {
        Some(s) => {
            let c = s.finish()?;
            let written = pipeline.cpu_samples(&c.samples);
            Some(CpuSampleCounts {
                written,
                ..c.counts
            })
        }
        None => None,
    };
    let run = RunInfo {
        cpu_samples,
        ..live_run(
            &mut stopped,
            pipeline.malformed,
            (attach_ms, ring_bytes),
            exit_code,
            about(&bin, &exe, mode, pid),
        )
    };
    let summary = pipeline.finish(run)?;
    drop(stopped.tracer); // detaches every probe, if still attached
                          // The target's own exit code, unless an assertion failed (3).
    Ok(crate::checks::exit_code(
        &summary.assertions,
        exit_code.unwrap_or(0),
    ))
}

/// The goroutines of `pid` still alive, grouped by state and stack (the largest groups), or
/// why they could not be read.
pub(super) fn alive_at_end(pid: u32, bin: &GoBinary) -> String {
    let opts = TextOptions {
        max_groups: Some(10),
        ..TextOptions::default()
    };
    let read = load_bias(pid, bin)
        .map_err(anyhow::Error::from)
        .and_then(|bias| Ok(snapshot::take(pid, bin, bias)?));
    match read {
        Ok(d) => {
            let mut out = b"\ngoroutines still alive (read from the process's memory):\n".to_vec();
            match write_grouped(&d, &opts, &mut out) {
                Ok(()) => String::from_utf8_lossy(&out).into_owned(),
                Err(e) => format!("\ngoroutines still alive: not printed ({e})\n"),
            }
        }
        Err(e) => format!("\ngoroutines still alive: not read ({e:#})\n"),
    }
}

/// Option combinations refused before anything runs.
fn check_options(args: &Args) -> anyhow::Result<()> {
    if args.level == Level::Lifecycle
        && args.out.output_format() == Ok(Some(crate::cli::Format::Go))
    {
        anyhow::bail!(
            "--format go needs goroutine state changes, which --level lifecycle does not trace; \
             use --level sched or full (the default)"
        );
    }
    if args.sample_rate.is_some() && args.out.output_format() != Ok(Some(crate::cli::Format::Go)) {
        anyhow::bail!(
            "--sample-rate puts CPU samples into Go's trace format: add --format go (or an \
             -o FILE.gotrace); for a CPU profile alone use `gmp-trace profile`"
        );
    }
    Ok(())
}

/// What gmp-trace reads but cannot probe, said before anything is attached.
pub(super) fn check_supported(bin: &GoBinary, exe: &Path) -> anyhow::Result<()> {
    if bin.arch() != Arch::X86_64 {
        bail!(
            "{} is an arm64 binary: gmp-trace can read it but its probes run on x86_64 only; \
             trace it on an x86_64 machine",
            exe.display()
        );
    }
    if !bin.is_known_version() {
        log::warn!(
            "{} is newer than the Go versions gmp-trace was checked against; offsets come from \
             its DWARF, but results may be incomplete",
            bin.go_version()
        );
    }
    Ok(())
}

/// The probes for this binary at `--level`, as aggregate mode and the cost-measuring switches
/// (`--empty-probes`, `--emit-only-probes`) want them.
pub(super) fn probe_plan(bin: &GoBinary, args: &Args) -> anyhow::Result<Vec<Attachment>> {
    let mut plan = probes::plan(bin, args.level, args.entry_probes)?;
    if args.aggregate {
        plan.retain(|a| probes::in_aggregate(a.program));
    } else {
        probes::without_derived(&mut plan);
    }
    if args.empty_probes || args.emit_only_probes {
        for a in &mut plan {
            a.program = if args.empty_probes {
                "empty"
            } else {
                "emit_only"
            };
        }
    }
    Ok(plan)
}

/// Loads the probes and attaches them to the held target; returns the tracer, the source
/// already reading its ring buffer, and the ms since `started`. On any failure the target is let go without having run further (a held command
/// exits before exec).
pub(super) fn attach(
    target: &mut Target,
    identity: FileIdentity,
    offsets: &Offsets,
    plan: &[Attachment],
    ring_bytes: u32,
    args: &Args,
    started: Instant,
) -> anyhow::Result<(Tracer, LiveSource, f64)> {
    let exe = target.exe().to_path_buf();
    let execs = target.execs();
    let attached = (|| {
        if FileIdentity::of(&exe)? != identity {
            bail!(
                "{} changed on disk while gmp-trace was reading it; run gmp-trace again",
                exe.display()
            );
        }
        let links = args.uprobe_links.unwrap_or_else(Links::detect);
        let mut t = Tracer::load_with_stacks(
            offsets,
            ring_bytes,
            args.aggregate,
            links,
            u32::from(execs),
            args.stacks,
        )
        .map_err(super::doctor::with_findings)?;
        log::debug!("BPF object loaded at {:?}", started.elapsed());
        // The ring is read from before the first probe goes in: a running target (--pid) fires
        // the first probes while the rest attach, which on a loaded machine has taken seconds,
        // and an unread ring fills in a fraction of that.
        let source = LiveSource::new(&mut t, offsets.target_pid, ring_bytes)?;
        // Launch mode waits for the exec; in both modes a later one (the program exec'ing a
        // new image) ends the trace of this image.
        match t.attach_exec() {
            Ok(()) => {}
            Err(e) if execs => return Err(e),
            Err(e) => log::warn!("an exec of a new image by the target will go unnoticed: {e:#}"),
        }
        t.attach(plan, &exe, offsets.target_pid)
            .map_err(super::doctor::with_findings)?;
        Ok((t, source))
    })();
    let (tracer, source) = match attached {
        Ok(t) => t,
        Err(e) => {
            target.abort();
            return Err(e);
        }
    };
    let attach_ms = started.elapsed().as_secs_f64() * 1e3;
    log::info!(
        "attached {} probes in {attach_ms:.1} ms (ring buffer {ring_bytes} bytes)",
        tracer.probes.len()
    );
    Ok((tracer, source, attach_ms))
}

/// Points the pipeline at the process: the model for its pid and Go version, the writers that
/// name the process, and the recording with its header.
pub(super) fn open_stream(
    pipeline: &mut Pipeline<'_>,
    target: &Target,
    bin: &GoBinary,
    pid: u32,
    record_file: Option<(File, PathBuf)>,
    level: Level,
) -> anyhow::Result<()> {
    let go = (bin.go_version().major, bin.go_version().minor);
    pipeline.model = Model::for_target(pid, go);
    pipeline.start(pid, &bin.go_version().to_string(), &target.process_name())?;
    pipeline.exec = ExecWatch::new(target.execs());
    // Without casgstatus, goexit1 is the last word on a goroutine.
    pipeline.model.retire_on_exit = level == Level::Lifecycle;
    if let Some((f, path)) = record_file {
        pipeline.recorder = Some(recorder(f, &path, bin, target.exe(), target.mode(), pid)?);
    }
    Ok(())
}

/// Keeps the raw events for `gmp-trace replay`, under a header saying what was traced.
fn recorder(
    f: File,
    path: &Path,
    bin: &GoBinary,
    exe: &Path,
    mode: &str,
    pid: u32,
) -> anyhow::Result<Recorder> {
    let header = Header {
        go_version: bin.go_version().to_string(),
        binary: exe.display().to_string(),
        main_module: bin.main_module().map(str::to_owned),
        build_id: bin.build_id().map(str::to_owned),
        mode: mode.to_string(),
        pid,
        gmp_trace_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Recorder::create(f, path, &header)
        .with_context(|| format!("writing the recording {}", path.display()))
}

/// Lets the target run under the probes: its load address into the stream, what already
/// existed in it into the model, and (for a process that ran before us) a word to the user.
pub(super) fn begin(
    target: &mut Target,
    pipeline: &mut Pipeline<'_>,
    bin: &GoBinary,
    offsets: &Offsets,
    tracer: &Tracer,
    quiet: bool,
) -> anyhow::Result<()> {
    let pid = offsets.target_pid;
    match target.start(bin, offsets.task_mm != 0)? {
        Bias::Known(bias) => pipeline.set_bias(bias, monotonic_ns(), pid),
        Bias::AtExec { text_vaddr } => pipeline.bias_from_exec = Some(text_vaddr),
    }
    if let Some(report) = target.existing(bin)? {
        seed(&mut pipeline.model, &report);
    }
    if target.announces() && !quiet {
        // Like strace's "Process N attached": the probes are in from here on.
        eprintln!(
            "gmp-trace: attached to pid {pid} ({}, {} probes); Ctrl-C to stop",
            bin.go_version(),
            tracer.probes.len()
        );
    }
    Ok(())
}

/// The goroutines, Ms and Ps that existed before the probes, so the model knows them.
fn seed(model: &mut Model, report: &LiveReport) {
    for g in &report.gs {
        model.seed_goroutine(
            g.goid,
            g.status,
            g.waitreason,
            g.startpc,
            g.gopc,
            g.parent_goid,
        );
    }
    for m in &report.ms {
        model.seed_thread(m.procid as u32, m.id, m.p_id, m.curg_goid);
    }
    for p in &report.ps {
        model.seed_proc(p.id);
    }
}

/// Why tracing ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum End {
    /// The target exited.
    Exited,
    /// A signal or `--duration`: the target runs on.
    Stopped,
    /// The target exec'd a new image, which runs on untraced.
    ImageReplaced,
}

/// The new image's path for messages.
fn exec_path(pipeline: &Pipeline<'_>) -> String {
    match pipeline
        .model
        .image_replaced
        .as_ref()
        .and_then(|r| r.path.as_deref())
    {
        Some(p) => p.to_string(),
        None => "path unknown".into(),
    }
}

/// Streams events from the ring buffer into the pipeline until the target exits or replaces
/// its image, a signal stops tracing, or `duration` passes.
async fn drive(
    target: &mut Target,
    source: &mut LiveSource,
    tracer: &Tracer,
    pipeline: &mut Pipeline<'_>,
    duration: Option<Duration>,
) -> anyhow::Result<End> {
    let mut signals = super::StopSignals::new()?;
    let deadline = tokio::time::sleep(duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(probes::DRAIN_INTERVAL);
    loop {
        if pipeline.image_replaced_now() {
            return Ok(End::ImageReplaced);
        }
        let sig = tokio::select! {
            r = source.readable(pipeline) => {
                r?;
                pipeline.flush();
                continue;
            }
            _ = tick.tick() => {
                // The probes wake us only when a lot is waiting; the timer bounds the latency.
                source.drain(pipeline);
                source.check_losses(tracer, pipeline)?;
                pipeline.flush();
                continue;
            }
            r = target.exited() => {
                r?;
                return Ok(End::Exited);
            }
            _ = &mut deadline, if duration.is_some() => return Ok(End::Stopped),
            sig = signals.recv() => sig,
        };
        if target.on_signal(sig) == SignalAction::Stop {
            return Ok(End::Stopped);
        }
    }
}

/// What tracing left behind once the probes stopped sending.
/// The run's facts of a live session once it stopped: `base` (from [`about`]) with what the
/// probes, the ring and the target said; (ms to attach, ring bytes).
pub(super) fn live_run(
    stopped: &mut Stopped,
    malformed_records: u64,
    (attach_ms, ring_bytes): (f64, u32),
    exit_code: Option<i32>,
    base: RunInfo,
) -> RunInfo {
    RunInfo {
        exit_code,
        read_failures: stopped.read_failures,
        malformed_records,
        probes: std::mem::take(&mut stopped.probes),
        attach_ms: Some((attach_ms * 10.0).round() / 10.0),
        ring_buffer_bytes: Some(u64::from(ring_bytes)),
        aggregate: stopped.aggregate.take(),
        ..base
    }
}

pub(super) struct Stopped {
    pub(super) read_failures: u64,
    pub(super) probes: Vec<ProbeInfo>,
    pub(super) aggregate: Option<Aggregates>,
    /// Still attached (the target has exited): dropped, and so detached, after the report.
    pub(super) tracer: Option<Tracer>,
}

/// When [`stop`] detaches the probes. Detaching waits out kernel grace periods (one per link).
/// While the target runs, that comes first: every hit slows it. Once it has exited its probes
/// can fire no more, and the report goes out first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Detach {
    /// The target has exited: the tracer is handed back, to be dropped after the report.
    AfterReport,
    /// The target runs: detach here, before anything else.
    Now,
    /// The target runs, and the caller detaches first, off its own thread (a session among
    /// many must not hold up the others for the grace periods): the tracer is handed back.
    ByCaller,
}

/// Ends tracing: the last events out of the ring buffer, the probes' records and counters, then
/// the probes themselves, as `detach` says.
pub(super) fn stop(
    mut source: LiveSource,
    mut tracer: Tracer,
    pipeline: &mut Pipeline<'_>,
    detach: Detach,
    target: &Target,
    pid: u32,
    args: &Args,
) -> anyhow::Result<Stopped> {
    // Whatever the probes wrote before the end is read by now or still in the ring buffer.
    source.finish(pipeline);
    source.check_losses(&tracer, pipeline)?;
    let read_failures = source.read_failures();
    let probes = std::mem::take(&mut tracer.probes);
    let aggregate = if args.aggregate {
        Some(tracer.aggregates()?)
    } else {
        None
    };
    drop(source);
    let tracer = if detach == Detach::AfterReport {
        if target.announces() && !args.out.quiet {
            // Like strace's "+++ exited +++": nothing else tells a trace that ended with the
            // process from one cut short by --duration (its exit status is its parent's, not
            // ours to read).
            eprintln!("gmp-trace: pid {pid} exited; tracing stopped");
        }
        Some(tracer)
    } else {
        if target.announces() && !args.out.quiet {
            // The report waits for it; say what the pause is.
            let how = match tracer.links_kind() {
                Links::Multi => "",
                Links::PerfEvent => ", a few seconds",
            };
            eprintln!(
                "gmp-trace: detaching from pid {pid} ({} probes{how})...",
                probes.len()
            );
        }
        match detach {
            Detach::ByCaller => Some(tracer),
            _ => {
                drop(tracer); // detaches every probe
                None
            }
        }
    };
    Ok(Stopped {
        read_failures,
        probes,
        aggregate,
        tracer,
    })
}

/// The run's facts that come from the binary and the target, the rest left empty.
pub(super) fn about(bin: &GoBinary, exe: &Path, mode: &'static str, pid: u32) -> RunInfo {
    RunInfo {
        go_version: bin.go_version().to_string(),
        binary: exe.display().to_string(),
        main_module: bin.main_module().map(str::to_owned),
        build_id: bin.build_id().map(str::to_owned),
        mode,
        pid,
        exit_code: None,
        read_failures: 0,
        malformed_records: 0,
        probes: Vec::new(),
        attach_ms: None,
        ring_buffer_bytes: None,
        aggregate: None,
        cpu_samples: None,
    }
}
