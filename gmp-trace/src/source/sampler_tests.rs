//! The sampler on a live Go program (root and BPF; skipped with the reason where BPF cannot
//! load): `tests/go/burnleaf` burns CPU in burnA and burnB at 3:1 through a frameless leaf.
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gmp_trace_common::Offsets;

use gmp_trace_common::sample::{flags, SampleHeader, SAMPLE_HEADER_SIZE, SAMPLE_STACK};
use gmp_trace_tests::{pid::links_held_by, Variant, GO_VERSIONS};

use super::*;
use crate::binary::test_support::named;
use crate::probes::{Sampler, SamplerError};

const RATE: u64 = 99;

/// The header's bytes as the BPF program lays them out (repr(C)), parsed back.
#[test]
fn sampler_header_round_trips() {
    let h = SampleHeader {
        ts: 1,
        g: 2,
        goid: 3,
        m: -4,
        start_pc: 5,
        pc: 6,
        sp: 7,
        bp: 8,
        stack_lo: 9,
        stack_hi: 10,
        tid: 11,
        pid: 12,
        p: -13,
        flags: flags::ON_G0,
        cpu: 15,
        stack_len: 3,
        curg_pc: 16,
        curg_sp: 17,
        curg_lo: 18,
        curg_hi: 19,
        curg_stack_len: 2,
        _pad: 0,
    };
    let mut rec = vec![0u8; SAMPLE_HEADER_SIZE + SAMPLE_STACK + 8];
    // SAFETY: SampleHeader is repr(C) plain integers without padding (size asserted), so its
    // bytes are all initialized.
    let bytes = unsafe {
        std::slice::from_raw_parts((&h as *const SampleHeader).cast::<u8>(), SAMPLE_HEADER_SIZE)
    };
    rec[..SAMPLE_HEADER_SIZE].copy_from_slice(bytes);
    rec[SAMPLE_HEADER_SIZE..SAMPLE_HEADER_SIZE + 8].copy_from_slice(b"abcdefgh");
    rec[SAMPLE_HEADER_SIZE + SAMPLE_STACK..].copy_from_slice(b"ijklmnop");
    let (back, stacks) = SampleHeader::parse(&rec).unwrap();
    assert_eq!(back, h);
    assert_eq!(stacks.own, b"abc");
    assert_eq!(stacks.curg, b"ij");
    assert!(SampleHeader::parse(&rec[..SAMPLE_HEADER_SIZE - 1]).is_none());
}

/// The target started, with the goids burnA and burnB printed.
fn start_burn(path: &std::path::Path, secs: u32) -> (Child, HashMap<String, u64>) {
    let mut child = Command::new(path)
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut goids = HashMap::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "ready" {
            break;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        goids.insert(format!("main.{}", w[0]), w[2].parse().unwrap());
    }
    assert_eq!(goids.len(), 2, "{goids:?}");
    (child, goids)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3. Clock ticks are 100 Hz on Linux.
    (f[11] + f[12]) as f64 / 100.0
}

/// The sampler's links and perf events this process holds.
fn held() -> usize {
    let links = links_held_by(std::process::id())
        .into_iter()
        .filter(|l| l.program == "cpu_sample")
        .count();
    let events = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy() == "anon_inode:[perf_event]")
        .count();
    links.max(events)
}

#[test]
fn sampler_profiles_burn_by_goroutine_and_function() {
    gmp_trace_tests::require_bpf!();
    for v in GO_VERSIONS {
        profile_burn(v);
    }
}

fn profile_burn(version: &str) {
    let path = named("burnleaf", version, Variant::Default);
    let bin = GoBinary::open(&path).unwrap();
    let lines = bin.lines().unwrap();
    let (mut child, goids) = start_burn(&path, 5);
    let pid = child.id();
    let bias = crate::process::maps::load_bias(pid, &bin).unwrap();
    let mut offsets = crate::probes::offsets(&bin).unwrap();
    offsets.target_pid = pid;

    // One link per CPU while attached, none once dropped.
    let s = Sampler::start(&offsets, RATE).unwrap();
    let cpus = s.cpus();
    assert!(
        held() >= cpus,
        "Go {version}: {} held for {cpus} CPUs",
        held()
    );
    drop(s);
    assert_eq!(held(), 0, "Go {version}: left attached after drop");

    let cpu0 = cpu_seconds(pid);
    let prof = collect(
        &bin,
        &offsets,
        bias,
        RATE,
        Duration::from_secs(2),
        &AtomicBool::new(false),
    )
    .unwrap();
    let cpu = cpu_seconds(pid) - cpu0;
    assert_eq!(held(), 0, "Go {version}: left attached after collect");
    let tasks: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    child.kill().ok();
    child.wait().unwrap();

    let name = |pc: u64| -> String {
        lines
            .function(pc.wrapping_sub(bias))
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default()
    };
    let n = prof.samples.len();
    let count = |f: fn(&CpuSample) -> bool| prof.samples.iter().filter(|s| f(s)).count();
    eprintln!(
        "Go {version}: {n} samples ({} taken, {} dropped, {} unwinds refused; {} in the kernel, {} on g0, {} truncated) for {cpu:.2} s of CPU on {} CPUs",
        prof.taken, prof.dropped, prof.unwind_failed, count(|s| s.in_kernel), count(|s| s.on_g0), count(|s| s.truncated), prof.cpus
    );
    // Frames for every sample: user mode's from its registers, the kernel's from the user
    // registers it was entered with (unless this kernel cannot give them: then none).
    assert_eq!(count(|s| !s.in_kernel && s.frames.is_empty()), 0);
    if prof.kernel_stacks {
        assert_eq!(count(|s| s.in_kernel && s.frames.is_empty()), 0);
    } else {
        assert_eq!(count(|s| s.in_kernel && !s.frames.is_empty()), 0);
    }
    assert_eq!((prof.dropped, prof.malformed, prof.rate_hz), (0, 0, RATE));
    assert_eq!(prof.taken, n as u64, "every sample taken arrived");
    let expected = cpu * RATE as f64;
    assert!(
        (n as f64) > expected * 0.5 && (n as f64) < expected * 1.5 + 5.0,
        "Go {version}: {n} samples for {cpu:.2} s of CPU at {RATE} Hz"
    );
    for s in &prof.samples {
        assert!(
            tasks.contains(&s.tid),
            "sample from thread {} not in {pid}",
            s.tid
        );
    }
    // Samples charged to the burning goroutines, by start function.
    let mut by_start: HashMap<String, usize> = HashMap::new();
    let (mut in_leaf, mut leaf_ok, mut whole, mut user) = (0, 0, 0, 0);
    for s in &prof.samples {
        let start = name(s.start_pc);
        let Some(&goid) = goids.get(&start) else {
            continue;
        };
        assert_eq!(
            s.goid, goid,
            "Go {version}: a {start} sample charged to goid {}",
            s.goid
        );
        *by_start.entry(start.clone()).or_default() += 1;
        if s.in_kernel {
            continue;
        }
        user += 1;
        let names: Vec<String> = s
            .frames
            .iter()
            .map(|f| name(if f.trap { f.pc } else { f.pc - 1 }))
            .collect();
        assert!(s.frames[0].trap && s.frames[1..].iter().all(|f| !f.trap));
        if names[0] == "main.leaf" {
            in_leaf += 1;
            // The leaf has no frame pointer: only the SP-delta walk finds its caller.
            if names.get(1) == Some(&start) {
                leaf_ok += 1;
            }
        }
        if !s.truncated && names.last().map(String::as_str) == Some("runtime.goexit") {
            whole += 1;
        }
    }
    let (a, b) = (by_start["main.burnA"], by_start["main.burnB"]);
    eprintln!("Go {version}: burnA {a}, burnB {b} ({user} in user code); {leaf_ok}/{in_leaf} leaf samples unwound to their burner; {whole} whole stacks");
    // Shares of the samples in user code: on a loaded machine a tenth or more of a burner's
    // samples land in the kernel (timer interrupts, preemption), whose frames are judged above.
    assert!(in_leaf * 2 > user, "most burning is in the leaf");
    assert_eq!(
        leaf_ok, in_leaf,
        "Go {version}: a leaf sample not unwound to its caller"
    );
    assert!(
        whole * 10 >= user * 9,
        "Go {version}: {whole} of {user} user-code stacks reach goexit"
    );
    let share = a as f64 / (a + b) as f64;
    assert!(
        (0.65..=0.85).contains(&share),
        "Go {version}: burnA's share {share:.2} is not 3:1 (+-10 points)"
    );
}

/// How often the ring is drained while collecting (the ring holds a quarter second).
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// What a collection gathered.
#[derive(Debug, Default)]
struct CpuProfile {
    pub samples: Vec<CpuSample>,
    /// Samples the program recorded and lost (ring full), summed over CPUs.
    pub taken: u64,
    pub dropped: u64,
    /// Ring records too short to be samples (never expected).
    pub malformed: u64,
    /// User-mode samples whose walk stopped on something it could not trust (still counted,
    /// with the frames found before).
    pub unwind_failed: u64,
    pub cpus: usize,
    /// Samples in the kernel carry the user stack that entered it.
    pub kernel_stacks: bool,
    pub rate_hz: u64,
    /// How long the sampler was attached.
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
enum CollectError {
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    #[error("reading the binary's line table for unwinding: {0}")]
    Binary(#[from] BinaryError),
}

/// Samples the process `offsets.target_pid` (running `bin` at `bias`) on every CPU at
/// `rate_hz` for `duration` or until `stop` is set, then detaches and returns the samples.
fn collect(
    bin: &GoBinary,
    offsets: &Offsets,
    bias: u64,
    rate_hz: u64,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<CpuProfile, CollectError> {
    let mut unwinder = Unwinder::new(bin, bias)?;
    let mut sampler = Sampler::start(offsets, rate_hz)?;
    let mut out = CpuProfile {
        cpus: sampler.cpus(),
        kernel_stacks: sampler.kernel_stacks(),
        rate_hz,
        ..CpuProfile::default()
    };
    let started = Instant::now();
    let mut malformed = 0;
    let mut take = |sampler: &mut Sampler, out: &mut CpuProfile| {
        sampler.drain(&mut malformed, |h, stack| {
            out.samples.push(unwinder.sample(h, stack))
        });
    };
    while started.elapsed() < duration && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(DRAIN_EVERY.min(duration.saturating_sub(started.elapsed())));
        take(&mut sampler, &mut out);
    }
    sampler.detach();
    out.duration = started.elapsed();
    // What arrived between the last drain and the detach.
    take(&mut sampler, &mut out);
    let stats = sampler.stats()?;
    (out.taken, out.dropped) = (stats.taken, stats.dropped);
    out.malformed = malformed;
    out.unwind_failed = unwinder.unwind_failed;
    Ok(out)
}
