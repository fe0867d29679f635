//! `gmp-trace profile`: a CPU profile of a Go process by goroutine and function, written in
//! pprof's format (`go tool pprof` opens it). No uprobe: a BPF program on every CPU's software
//! clock samples the target's threads (probes/sampler.rs), each sample's stack copy is unwound
//! with `.gopclntab` (source/sampler.rs) and symbolized once per distinct stack
//! (process/stacks.rs); every sample carries the labels goid, start_function, p and m.
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;

use crate::binary::{names, Arch, GoBinary};
use crate::cli::parse_duration;
use crate::export::pprof::{write_cpu_profile, CpuProfile, ProfileSample};
use crate::model::dump::Frame;
use crate::probes::{self, Sampler};
use crate::process::stacks::Symbols;
use crate::process::{preflight, SignalAction, Target};
use crate::source::sampler::{CpuSample, Unwinder};

/// A CPU profile of a Go program by goroutine and function, in pprof's format.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace profile", version, long_about = None)]
#[command(
    after_help = "Examples:\n  sudo gmp-trace profile --pid 4242 -d 30s -o cpu.pb.gz\n  sudo gmp-trace profile -o cpu.pb.gz -- ./prog args\n  go tool pprof -top -cum cpu.pb.gz; go tool pprof -tags cpu.pb.gz; go tool pprof -tagfocus goid=7 ...\n\nNo uprobe: a sampler on each CPU's clock, so the program runs at full speed. Samples carry\nthe labels goid, start_function, p and m."
)]
pub struct ProfileArgs {
    /// The running Go process to profile.
    #[arg(short = 'p', long = "pid", conflicts_with = "command")]
    pub pid: Option<i32>,

    /// Where the profile goes (gzip-compressed pprof protobuf).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,

    /// How long to sample (e.g. 30s, 500ms). Default: until Ctrl-C, or the launched program's
    /// exit.
    #[arg(short = 'd', long = "duration", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Samples per second on each CPU (Go's own profiler takes 100).
    #[arg(long = "sample-rate", value_name = "HZ", default_value_t = 99,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub sample_rate: u64,

    /// No report on stderr.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// The program to start and profile from its first instruction (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub async fn run(args: ProfileArgs) -> anyhow::Result<i32> {
    if args.pid.is_none() && args.command.is_empty() {
        bail!("what to profile? pass --pid N, or a program after `--` (gmp-trace profile -o cpu.pb.gz -- ./prog)");
    }
    let mut target = Target::resolve(args.pid, &args.command, false)?;
    let exe = target.exe().to_path_buf();
    let bin = GoBinary::open(&exe)?;
    if bin.arch() != Arch::X86_64 {
        bail!(
            "{} is an arm64 binary: gmp-trace profiles x86_64 processes only",
            exe.display()
        );
    }
    let offsets = probes::offsets(&bin)?;
    preflight::check_privileges()?;
    // The output is created before anything starts: a bad path fails here.
    let out = crate::export::files::open_file(&args.output, "profile")?;

    let (_, mut sampler, bias) =
        super::start_sampled(&mut target, &bin, offsets, args.sample_rate)?;
    let wall_start = realtime_ns();
    let started = Instant::now();
    let mut unwinder = Unwinder::new(&bin, bias)?;
    let mut samples: Vec<CpuSample> = Vec::new();
    let mut malformed = 0;
    let exited = collect(
        &mut target,
        &mut sampler,
        &mut unwinder,
        &mut samples,
        &mut malformed,
        args.duration,
    )
    .await?;
    sampler.detach();
    let elapsed = started.elapsed();
    sampler.drain(&mut malformed, |h, stack| {
        samples.push(unwinder.sample(h, stack))
    });
    let run = Run {
        stats: sampler.stats()?,
        cpus: sampler.cpus(),
        kernel_stacks: sampler.kernel_stacks(),
        samples,
        unwind_failed: unwinder.unwind_failed,
        malformed,
        elapsed,
        exited,
        wall_start,
    };
    drop(sampler);

    let mut profile = build(&bin, bias, &run, args.sample_rate, &exe);
    if run.stats.dropped > 0 {
        profile.comments.push(format!(
            "gmp-trace: {} samples lost (the sample ring was full): the profile undercounts",
            run.stats.dropped
        ));
    }
    let mut w = std::io::BufWriter::new(out);
    write_cpu_profile(&profile, &mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("writing the profile to {}", args.output.display()))?;
    if !args.quiet {
        report(&args, &run);
    }
    let code = target.finish().await?;
    Ok(code.unwrap_or(0))
}

/// What one profiling session gathered.
struct Run {
    samples: Vec<CpuSample>,
    stats: probes::SamplerStats,
    /// User-mode samples whose walk stopped early (kept with the frames found).
    unwind_failed: u64,
    malformed: u64,
    elapsed: Duration,
    /// The target exited (rather than the duration ending or a signal).
    exited: bool,
    cpus: usize,
    /// Samples in the kernel carry the user stack that entered it.
    kernel_stacks: bool,
    /// CLOCK_REALTIME ns when sampling began.
    wall_start: u64,
}

/// Drains the sampler until the duration ends, a signal stops it, or the target exits (true).
async fn collect(
    target: &mut Target,
    sampler: &mut Sampler,
    unwinder: &mut Unwinder<'_>,
    samples: &mut Vec<CpuSample>,
    malformed: &mut u64,
    duration: Option<Duration>,
) -> anyhow::Result<bool> {
    let mut signals = super::StopSignals::new()?;
    let deadline = tokio::time::sleep(duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        let sig = tokio::select! {
            _ = tick.tick() => {
                sampler.drain(malformed, |h, stack| samples.push(unwinder.sample(h, stack)));
                continue;
            }
            r = target.exited() => {
                r?;
                return Ok(true);
            }
            _ = &mut deadline, if duration.is_some() => return Ok(false),
            sig = signals.recv() => sig,
        };
        if target.on_signal(sig) == SignalAction::Stop {
            return Ok(false);
        }
    }
}

/// The samples as pprof samples: stacks symbolized once per distinct stack, labels attached;
/// a sample in the kernel (a system call, a fault) is charged to a `[kernel]` frame, called by
/// the user frames that entered the kernel when the sampler could read them.
fn build(bin: &GoBinary, bias: u64, run: &Run, rate_hz: u64, exe: &std::path::Path) -> CpuProfile {
    let minor = bin.go_version().minor;
    let mut sym = match bin.lines() {
        Ok(lines) => Some(Symbols::new(lines, bias, names::func_id_wrapper(minor))),
        Err(_) => None,
    };
    let kernel: std::sync::Arc<[Frame]> = vec![Frame {
        function: "[kernel]".into(),
        ..Frame::default()
    }]
    .into();
    let out = run
        .samples
        .iter()
        .map(|s| {
            let frames = match (&mut sym, s.frames.is_empty()) {
                (Some(sym), false) if s.in_kernel => {
                    // The kernel's part as one frame, called by the user code that entered it.
                    let user = sym.stack(s.frames.clone());
                    kernel.iter().chain(user.iter()).cloned().collect()
                }
                (Some(sym), false) => sym.stack(s.frames.clone()),
                _ => kernel.clone(),
            };
            let start_function = match &mut sym {
                Some(sym) if s.start_pc != 0 => sym.name(s.start_pc),
                _ => None,
            };
            ProfileSample {
                frames,
                goid: s.goid,
                start_function,
                p: s.p,
                m: s.m,
                count: 1,
            }
        })
        .collect();
    CpuProfile {
        samples: out,
        period_ns: (1_000_000_000 / rate_hz.max(1)) as i64,
        duration_ns: run.elapsed.as_nanos() as i64,
        time_nanos: run.wall_start as i64,
        binary: exe.display().to_string(),
        build_id: bin.build_id().unwrap_or_default().to_string(),
        comments: Vec::new(),
    }
}

fn report(args: &ProfileArgs, run: &Run) {
    let kernel = run.samples.iter().filter(|s| s.in_kernel).count();
    let g0 = run.samples.iter().filter(|s| s.on_g0).count();
    let mut extra = String::new();
    if kernel > 0 && !run.kernel_stacks {
        extra += ", kernel samples without a user stack (this kernel has no bpf_task_pt_regs)";
    }
    if run.unwind_failed > 0 {
        extra += &format!(", {} stacks cut short", run.unwind_failed);
    }
    if run.malformed > 0 {
        extra += &format!(", {} malformed records", run.malformed);
    }
    eprintln!(
        "gmp-trace profile: {} samples in {:.1} s at {} Hz on {} CPUs ({kernel} in the kernel, \
         {g0} on g0: scheduler, GC, system stack), {} lost{extra} -> {}",
        run.samples.len(),
        run.elapsed.as_secs_f64(),
        args.sample_rate,
        run.cpus,
        run.stats.dropped,
        args.output.display()
    );
    if run.exited {
        eprintln!("gmp-trace profile: the program exited");
    }
}

/// CLOCK_REALTIME now, ns.
fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
