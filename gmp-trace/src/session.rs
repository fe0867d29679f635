//! One tracing session from start to finish: check the target, open outputs, start or find the
//! process, load and attach the probes, stream events into the model and exporters until the
//! target exits (or Ctrl-C / SIGTERM / --duration), then detach and report.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use gmp_trace_common::Event;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};

use crate::binary::GoBinary;
use crate::cli::Args;
use crate::export::jsonl::JsonlWriter;
use crate::export::summary::{RunInfo, Summary};
use crate::export::Symbolize;
use crate::launch::{self, HeldChild};
use crate::model::Model;
use crate::preflight;
use crate::probes::{self, Tracer};
use crate::source::live::LiveSource;
use crate::source::Sink;

impl Symbolize for GoBinary {
    fn func_name(&self, pc: u64) -> Option<&str> {
        self.func_name_for_pc(pc)
    }
}

/// Feeds each event to the model and the event file.
struct Pipeline<'a> {
    model: Model,
    jsonl: Option<JsonlWriter<Box<dyn Write>>>,
    sym: &'a dyn Symbolize,
    malformed: u64,
    write_error: Option<std::io::Error>,
}

impl Sink for Pipeline<'_> {
    fn event(&mut self, e: &Event) {
        self.model.apply(e);
        if let Some(w) = &mut self.jsonl {
            if let Err(err) = w.write(e, self.sym) {
                // Keep tracing (the summary still matters) but report the failure at the end.
                self.write_error.get_or_insert(err);
                self.jsonl = None;
            }
        }
    }

    fn malformed(&mut self, _len: usize) {
        self.malformed += 1;
    }
}

enum Target {
    Launch {
        program: PathBuf,
        argv0: String,
        args: Vec<String>,
    },
    Pid {
        pid: u32,
        exe: PathBuf,
    },
}

/// Runs a session; returns the process exit code (the child's in launch mode).
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let format = args.output_format().map_err(|e| anyhow!(e))?;
    let target = match (args.pid, args.command.first()) {
        (Some(pid), _) => Target::Pid {
            pid: pid as u32,
            exe: preflight::process_exe(pid)?,
        },
        (None, Some(cmd)) => Target::Launch {
            program: launch::resolve_command(cmd)?,
            argv0: cmd.clone(),
            args: args.command[1..].to_vec(),
        },
        (None, None) => bail!(
            "nothing to trace: give `--pid PID` to attach, or `-- CMD [ARGS...]` to launch \
             (see gmp-trace --help)"
        ),
    };
    let exe = match &target {
        Target::Launch { program, .. } => program.clone(),
        Target::Pid { exe, .. } => exe.clone(),
    };
    let bin = GoBinary::open(&exe)?;
    if !bin.is_known_version() {
        log::warn!(
            "{} is newer than the Go versions gmp-trace was checked against; offsets come from \
             its DWARF, but results may be incomplete",
            bin.go_version()
        );
    }
    // Probe sites first: on a stripped binary that error (symbols) is the one to fix first.
    let plan = probes::plan(&bin, args.entry_probes)?;
    let mut offsets = bin.offsets()?;
    preflight::check_privileges()?;

    let events_out: Option<Box<dyn Write>> = match (&args.output, format) {
        (Some(p), Some(_)) => Some(match preflight::open_output(p, "events")? {
            Some(f) => Box::new(BufWriter::with_capacity(1 << 16, f)),
            None => Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout())),
        }),
        _ => None,
    };
    let summary_out: Option<File> = match &args.summary_json {
        Some(p) => preflight::open_output(p, "summary")?,
        None => None,
    };

    // Start (held) or find the process, then load with its pid and attach.
    let (pid, held) = match &target {
        Target::Launch {
            program,
            argv0,
            args,
        } => {
            let h = HeldChild::spawn(program, argv0.as_ref(), args)?;
            (h.pid, Some(h))
        }
        Target::Pid { pid, .. } => (*pid, None),
    };
    offsets.target_pid = pid;
    let is_launch = held.is_some();
    let attached = Tracer::load(&offsets, args.buffer_size).and_then(|mut t| {
        if is_launch {
            t.attach_exec()?;
        }
        t.attach(&plan, &exe, pid).map(|()| t)
    });
    let mut tracer = match attached {
        Ok(t) => t,
        Err(e) => {
            if let Some(h) = held {
                h.abort();
            }
            return Err(e);
        }
    };
    let mut source = LiveSource::new(&mut tracer, pid)?;
    let mut pipeline = Pipeline {
        model: Model::for_target(pid, (bin.go_version().major, bin.go_version().minor)),
        jsonl: events_out.map(JsonlWriter::new),
        sym: &bin,
        malformed: 0,
        write_error: None,
    };

    // What ends the session: the target's exit, a signal, or --duration.
    let mut child_wait = match held {
        Some(h) => {
            let mut child = h.release()?;
            Some(tokio::task::spawn_blocking(move || child.wait()))
        }
        None => None,
    };
    let pidfd = if child_wait.is_none() {
        Some(pidfd_open(pid)?)
    } else {
        None
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut exit_status = None;
    let launch = child_wait.is_some();
    loop {
        tokio::select! {
            r = source.readable(&mut pipeline) => r?,
            _ = tick.tick() => source.check_losses(&tracer, &mut pipeline)?,
            st = async { child_wait.as_mut().expect("launch mode").await }, if child_wait.is_some() => {
                child_wait = None;
                exit_status = Some(st.context("waiting for the child")?.context("waiting for the child")?);
                break;
            }
            r = async { pidfd.as_ref().expect("pid mode").readable().await }, if pidfd.is_some() => {
                // Readable means exited; the guard's readiness does not matter any more.
                drop(r?);
                break;
            }
            _ = &mut deadline, if args.duration.is_some() => break,
            // In launch mode the child shares our terminal and gets Ctrl-C itself; we follow it.
            _ = sigint.recv() => {
                if !launch { break }
            }
            _ = sigterm.recv() => {
                if launch { forward(pid, libc::SIGTERM) } else { break }
            }
            _ = sighup.recv() => {
                if launch { forward(pid, libc::SIGHUP) } else { break }
            }
        }
    }
    // Whatever the probes wrote before the end is still in the ring buffer.
    source.drain(&mut pipeline);
    source.check_losses(&tracer, &mut pipeline)?;
    source.drain(&mut pipeline);
    let read_failures = source.read_failures();
    let probes_info = std::mem::take(&mut tracer.probes);
    drop(source);
    drop(tracer); // detaches every probe

    if let Some(w) = &mut pipeline.jsonl {
        if let Err(e) = w.flush() {
            pipeline.write_error.get_or_insert(e);
        }
    }
    // Launch mode with --duration: tracing stopped, the program runs on; wait for it.
    if let Some(w) = child_wait.take() {
        exit_status = Some(
            w.await
                .context("waiting for the child")?
                .context("waiting for the child")?,
        );
    }
    let exit_code = exit_status.map(launch::exit_code);

    let summary = Summary::build(
        &pipeline.model,
        RunInfo {
            go_version: bin.go_version().to_string(),
            binary: exe.display().to_string(),
            main_module: bin.main_module().map(str::to_owned),
            mode: if launch { "launch" } else { "pid" },
            pid,
            exit_code,
            read_failures,
            malformed_records: pipeline.malformed,
            probes: probes_info,
        },
        &bin,
    );
    if let (Some(mut f), Some(path)) = (summary_out, &args.summary_json) {
        serde_json::to_writer_pretty(&mut f, &summary)
            .map_err(std::io::Error::from)
            .and_then(|()| f.write_all(b"\n"))
            .with_context(|| format!("writing the summary to {}", path.display()))?;
    }
    if !args.quiet {
        eprint!("{}", summary.text());
    }
    if let Some(e) = pipeline.write_error {
        bail!("writing events failed part-way ({e}); the summary above is complete");
    }
    Ok(exit_code.unwrap_or(0))
}

fn forward(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; a gone pid only returns ESRCH.
    unsafe { libc::kill(pid as i32, sig) };
}

/// A pidfd for `pid`, readable once the process exits.
fn pidfd_open(pid: u32) -> anyhow::Result<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("watching pid {pid} for exit"));
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd keeps the pidfd open and unchanged for the AsyncFd's lifetime.
    unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow!("watching pid {pid} for exit: {e}"))
}
