//! One tracing session from start to finish: check the target, open outputs, start or find the
//! process, load and attach the probes, stream events into the model and exporters until the
//! target exits (or Ctrl-C / SIGTERM / --duration), then detach and report.
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};

use crate::binary::{load_bias, target_executable, validate_live, Arch, GoBinary};
use crate::cli::{Args, ReplayArgs};
use crate::export::summary::RunInfo;
use crate::export::{NoSymbols, Symbolize};
use crate::launch::{self, HeldChild};
use crate::model::Model;
use crate::pipeline::Pipeline;
use crate::preflight;
use crate::probes::{self, Tracer};
use crate::source::live::{monotonic_ns, LiveSource};
use crate::source::recording::{Header, Recorder, Replay};

impl Symbolize for GoBinary {
    fn func_name(&self, pc: u64) -> Option<&str> {
        self.func_name_for_pc(pc)
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
    let started = std::time::Instant::now();
    let target = match (args.pid, args.command.first()) {
        (Some(pid), _) => {
            preflight::process_exe(pid)?;
            // /proc/PID/exe works for deleted binaries and other mount namespaces alike.
            let t = target_executable(pid as u32)?;
            if t.deleted || !t.disk_path_matches {
                log::info!(
                    "pid {pid}'s executable is no longer at its path; tracing it through {}",
                    t.proc_path.display()
                );
            }
            Target::Pid {
                pid: pid as u32,
                exe: t.proc_path,
            }
        }
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
    log::debug!("binary read at {:?}", started.elapsed());
    // Probe offsets belong to this exact file: remember its identity and check it again right
    // before attaching, so a binary replaced in between never gets probes at stale offsets.
    let identity = file_identity(&exe)?;
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
    // Probe sites first: on a stripped binary that error (symbols) is the one to fix first.
    let mut plan = probes::plan(&bin, args.level, args.entry_probes)?;
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
    let mut offsets = bin.offsets()?;
    offsets.plan_blocks();
    // g in assembly entry points (mstart, exit) comes from the thread's TLS slot: the slot's
    // place is in the binary, the fs base's in the kernel. Without either, those events simply
    // carry no G/M.
    match crate::kernel::kernel_offsets() {
        Ok(k) => {
            offsets.task_mm = k.task_mm;
            offsets.mm_start_code = k.mm_start_code;
            match bin.tls_g_offset() {
                Ok(slot) => {
                    offsets.tls_g = slot;
                    offsets.task_fsbase = k.task_fsbase;
                }
                Err(e) => log::warn!("no TLS g for assembly entry points: {e}"),
            }
        }
        Err(e) => log::warn!("no TLS g for assembly entry points: {e:#}"),
    }
    log::debug!("probe sites and offsets at {:?}", started.elapsed());
    preflight::check_privileges()?;

    let go = (bin.go_version().major, bin.go_version().minor);
    // Outputs are opened (created) before anything runs: a bad path fails here.
    let mut pipeline = Pipeline::open(&args.out, Model::new(), &bin)?;
    let record_file = match &args.record {
        Some(p) => preflight::open_recording(p)?.map(|f| (f, p.clone())),
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
    if file_identity(&exe)? != identity {
        if let Some(h) = held {
            h.abort();
        }
        bail!(
            "{} changed on disk while gmp-trace was reading it; run gmp-trace again",
            exe.display()
        );
    }
    let is_launch = held.is_some();
    let ring_bytes = probes::ring_bytes(args.buffer_size, args.event_rate);
    let links = args.uprobe_links.unwrap_or_else(probes::Links::detect);
    let attached = Tracer::load(&offsets, ring_bytes, args.aggregate, links).and_then(|mut t| {
        log::debug!("BPF object loaded at {:?}", started.elapsed());
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
    let attach_ms = started.elapsed().as_secs_f64() * 1e3;
    log::info!(
        "attached {} probes in {attach_ms:.1} ms (ring buffer {ring_bytes} bytes)",
        tracer.probes.len()
    );
    let mut source = LiveSource::new(&mut tracer, pid, ring_bytes)?;
    pipeline.model = Model::for_target(pid, go);
    let process_name = exe_name(&target, &exe);
    pipeline.start(pid, &bin.go_version().to_string(), &process_name)?;
    // Without casgstatus, goexit1 is the last word on a goroutine.
    pipeline.model.retire_on_exit = args.level == probes::Level::Lifecycle;
    let mode = if is_launch { "launch" } else { "pid" };
    if let Some((f, path)) = record_file {
        let header = Header {
            go_version: bin.go_version().to_string(),
            binary: exe.display().to_string(),
            main_module: bin.main_module().map(str::to_owned),
            build_id: bin.build_id().map(str::to_owned),
            mode: mode.to_string(),
            pid,
            gmp_trace_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        pipeline.recorder = Some(
            Recorder::create(f, &path, &header)
                .with_context(|| format!("writing the recording {}", path.display()))?,
        );
    }

    if !is_launch {
        // The process is running: its load address, and what already exists in it.
        let bias = load_bias(pid, &bin)?;
        pipeline.set_bias(bias, monotonic_ns(), pid);
        match validate_live(pid, &bin, bias) {
            Ok(report) => {
                if let Some(why) = &report.skipped {
                    log::warn!("existing goroutines not read ({why}); they appear as they run");
                }
                for g in &report.gs {
                    pipeline.model.seed_goroutine(
                        g.goid,
                        g.status,
                        g.waitreason,
                        g.startpc,
                        g.gopc,
                        g.parent_goid,
                    );
                }
                for m in &report.ms {
                    pipeline.model.seed_thread(m.procid as u32, m.id, m.p_id);
                }
                for p in &report.ps {
                    pipeline.model.seed_proc(p.id);
                }
            }
            Err(e) if args.force => log::warn!("{e}; tracing anyway (--force)"),
            Err(e) => {
                return Err(anyhow!(e).context(
                    "the running process does not look like the runtime layout gmp-trace expects; \
                     pass --force to trace it anyway",
                ))
            }
        }
    }

    if !is_launch && !args.out.quiet {
        // Like strace's "Process N attached": the probes are in from here on.
        eprintln!(
            "gmp-trace: attached to pid {pid} ({}, {} probes); Ctrl-C to stop",
            bin.go_version(),
            tracer.probes.len()
        );
    }

    // What ends the session: the target's exit, a signal, or --duration.
    let mut child_wait = match held {
        Some(h) => {
            let mut child = h.release()?;
            match bin.text_vaddr() {
                // A PIE's load address comes with the exec event (mm->start_code), read in the
                // kernel before the program's first instruction: nothing can race it.
                Some(text) if bin.is_position_independent() && offsets.task_mm != 0 => {
                    pipeline.bias_from_exec = Some(text);
                }
                _ => {
                    // release() returns once exec has succeeded: the new image is mapped, and
                    // the program has barely started (a quick one may be gone already).
                    let bias = load_bias(pid, &bin).unwrap_or_else(|err| {
                        log::warn!("cannot read the load address of pid {pid} ({err}): function names may be wrong");
                        0
                    });
                    pipeline.set_bias(bias, monotonic_ns(), pid);
                }
            }
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
    let mut tick = tokio::time::interval(probes::DRAIN_INTERVAL);
    let mut exit_status = None;
    // Whether the target has exited (rather than tracing stopping while it runs on).
    let mut target_exited = false;
    let launch = child_wait.is_some();
    loop {
        tokio::select! {
            r = source.readable(&mut pipeline) => {
                r?;
                pipeline.flush();
            }
            _ = tick.tick() => {
                // The probes wake us only when a lot is waiting; the timer bounds the latency.
                source.drain(&mut pipeline);
                source.check_losses(&tracer, &mut pipeline)?;
                pipeline.flush();
            }
            st = async { child_wait.as_mut().expect("launch mode").await }, if child_wait.is_some() => {
                child_wait = None;
                target_exited = true;
                exit_status = Some(st.context("waiting for the child")?.context("waiting for the child")?);
                break;
            }
            r = async { pidfd.as_ref().expect("pid mode").readable().await }, if pidfd.is_some() => {
                // Readable means exited; the guard's readiness does not matter any more.
                drop(r?);
                target_exited = true;
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
    let aggregate = if args.aggregate {
        Some(tracer.aggregates()?)
    } else {
        None
    };
    drop(source);
    // Detaching waits out kernel grace periods (one per link). While the
    // target runs, that comes first: every hit slows it. Once it has exited its probes can
    // fire no more, and the report goes out first.
    let tracer = if target_exited {
        Some(tracer)
    } else {
        if !is_launch && !args.out.quiet {
            // The report waits for it; say what the pause is.
            let how = match tracer.links_kind() {
                probes::Links::Multi => "",
                probes::Links::PerfEvent => ", a few seconds",
            };
            eprintln!(
                "gmp-trace: detaching from pid {pid} ({} probes{how})...",
                probes_info.len()
            );
        }
        drop(tracer); // detaches every probe
        None
    };

    // Launch mode with --duration: tracing stopped, the program runs on; wait for it.
    if let Some(w) = child_wait.take() {
        exit_status = Some(
            w.await
                .context("waiting for the child")?
                .context("waiting for the child")?,
        );
    }
    let exit_code = exit_status.map(launch::exit_code);
    pipeline.model.finish();

    let run = RunInfo {
        go_version: bin.go_version().to_string(),
        binary: exe.display().to_string(),
        main_module: bin.main_module().map(str::to_owned),
        build_id: bin.build_id().map(str::to_owned),
        mode,
        pid,
        exit_code,
        read_failures,
        malformed_records: pipeline.malformed,
        probes: probes_info,
        attach_ms: Some((attach_ms * 10.0).round() / 10.0),
        ring_buffer_bytes: Some(u64::from(ring_bytes)),
        aggregate,
    };
    pipeline.finish(run)?;
    drop(tracer); // detaches every probe, if still attached
    Ok(exit_code.unwrap_or(0))
}

/// `gmp-trace replay FILE`: the same outputs from a recording, offline.
pub fn replay(args: ReplayArgs) -> anyhow::Result<i32> {
    let rec = Replay::open(&args.recording)?;
    let h = rec.header.clone();
    let exe = args
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from(&h.binary));
    let bin = match GoBinary::open(&exe) {
        Ok(b) => Some(b),
        Err(e) => {
            log::warn!("no function names: {e} (pass --binary PATH to the traced executable)");
            None
        }
    };
    let sym: &dyn Symbolize = match &bin {
        Some(b) => b,
        None => &NoSymbols,
    };
    let go = crate::binary::GoVersion::parse(&h.go_version)
        .map(|v| (v.major, v.minor))
        .unwrap_or((0, 0));
    let mut pipeline = Pipeline::open(&args.out, Model::for_target(h.pid, go), sym)?;
    let name = Path::new(&h.binary)
        .file_name()
        .map_or(h.binary.clone(), |n| n.to_string_lossy().into_owned());
    pipeline.start(h.pid, &h.go_version, &name)?;
    let end = rec.run(&mut pipeline)?;
    if end.truncated_bytes > 0 || end.footer.is_none() {
        log::warn!(
            "{} was cut short ({} stray bytes, no footer): replayed every whole event",
            args.recording.display(),
            end.truncated_bytes
        );
    }
    let footer = end.footer.unwrap_or_default();
    let mode: &'static str = if h.mode == "launch" { "launch" } else { "pid" };
    let run = RunInfo {
        go_version: h.go_version,
        binary: h.binary,
        main_module: h.main_module,
        build_id: h.build_id,
        mode,
        pid: h.pid,
        exit_code: footer.exit_code,
        read_failures: footer.read_failures,
        malformed_records: footer.malformed_records + pipeline.malformed,
        probes: footer.probes,
        attach_ms: None,
        ring_buffer_bytes: None,
        aggregate: None,
    };
    pipeline.finish(run)?;
    Ok(0)
}

/// (device, inode, size, mtime) of the file behind `path` (following /proc/PID/exe).
fn file_identity(path: &Path) -> anyhow::Result<(u64, u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((m.dev(), m.ino(), m.size(), m.mtime()))
}

/// The process name to show: the command's name, or the executable's file name.
fn exe_name(target: &Target, exe: &Path) -> String {
    match target {
        Target::Launch { argv0, .. } => Path::new(argv0)
            .file_name()
            .map_or(argv0.clone(), |n| n.to_string_lossy().into_owned()),
        Target::Pid { pid, .. } => std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| exe.display().to_string()),
    }
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
