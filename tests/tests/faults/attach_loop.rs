//! The loop case: attach and detach many times in a row on one running program that checks
//! its own results, measuring what could leak across tracer processes (the target's memory,
//! fds and mappings, the kernel's BPF objects) and the time per round.

use std::io::{BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::pid::wait_attached;
use gmp_trace_tests::{gmp_trace_bin, require_bpf, scratch_dir};

use super::kernel::{self, held_by, median, text_vs_file, usage, wait_gone, BpfIds, Usage};
use super::procs::{rounds, signal, start_checksum, state, summary};
use super::GRACE;

/// How many attach/detach rounds: `GMP_TRACE_FAULTS_ROUNDS` (`cargo xtask reliability` sets
/// 200), else a CI-sized 50.
fn loop_rounds() -> usize {
    std::env::var("GMP_TRACE_FAULTS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// One tracer run of the loop: its times, peak RSS and fds, and what it held.
struct LoopRun {
    attach: Duration,
    total: Duration,
    max_rss_kb: i64,
    fds: usize,
    held: BpfIds,
}

// Reaped with wait4 (for its rusage) rather than Child::wait, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn attach_detach_once(pid: u32, sj: &Path) -> LoopRun {
    let t0 = Instant::now();
    let mut child = Command::new(gmp_trace_bin())
        .args([
            "--pid",
            &pid.to_string(),
            // A safety net only: Ctrl-C ends each session (below).
            "-d",
            "20s",
            "--format",
            "jsonl",
            "-o",
            "/dev/null",
        ])
        .arg("--summary-json")
        .arg(sj)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gmp-trace");
    let mut err = BufReader::new(child.stderr.take().expect("piped"));
    wait_attached(&mut err);
    let attach = t0.elapsed();
    // What it holds, read while it certainly still holds it: a -d session may already have
    // detached by the time a loaded machine schedules this thread (seen once in 200 rounds).
    let held = held_by(child.id());
    let fds = std::fs::read_dir(format!("/proc/{}/fd", child.id())).map_or(0, |d| d.count());
    std::thread::sleep(Duration::from_millis(100));
    // Ctrl-C: in --pid mode every signal ends the session the way --duration does.
    signal(child.id(), libc::SIGINT);
    let mut rest = String::new();
    err.read_to_string(&mut rest).expect("read stderr");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it and the status int.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(r, child.id() as i32, "wait4");
    let total = t0.elapsed();
    let st = ExitStatus::from_raw(status);
    assert!(st.success() && !rest.contains("panicked"), "{st}: {rest}");
    assert!(!held.links.is_empty(), "no link held while attached");
    let sum = summary(sj, &rest);
    assert_eq!(
        sum["lost_events"],
        0,
        "events lost in a {:.0} ms session (attach {:.0} ms, {} events): {rest}",
        total.as_secs_f64() * 1e3,
        attach.as_secs_f64() * 1e3,
        sum["events"]
    );
    LoopRun {
        attach,
        total,
        max_rss_kb: ru.ru_maxrss,
        fds,
        held,
    }
}

/// Attach and detach many times in a row on one running program that checks its own results:
/// no crash, no wrong result, no leftover BPF object, nothing growing in the target. A second
/// copy of the program runs untraced alongside as the control: a Go program's RSS grows for its
/// first ~30 s (the heap reaching its first GC target) traced or not.
#[test]
fn attach_and_detach_in_a_loop_leaks_nothing() {
    require_bpf!();
    let n = loop_rounds();
    let dir = scratch_dir("faults-loop");
    let target = start_checksum(&dir, &["-until-stdin"]);
    let control_dir = dir.join("control");
    std::fs::create_dir_all(&control_dir).expect("create");
    let control = start_checksum(&control_dir, &["-until-stdin"]);
    let sj = dir.join("summary.json");
    let uprobe_events = kernel::uprobe_events();
    let started = Instant::now();
    let mut runs = Vec::with_capacity(n);
    let mut first = None;
    for i in 0..n {
        eprint!("\rround {}/{n}", i + 1);
        runs.push(attach_detach_once(target.pid, &sj));
        let r = rounds(&target.out);
        assert!(r.bad.is_empty(), "round {i}: checksum printed {:?}", r.bad);
        assert!(
            state(target.pid) != 'Z' && state(target.pid) != '?',
            "round {i}: target died"
        );
        if i == 0 {
            first = Some(usage(target.pid));
        }
    }
    let wall = started.elapsed();
    eprintln!();
    let first = first.expect("a round ran");
    let (last, control_last) = (usage(target.pid), usage(control.pid));
    let mut all = BpfIds::default();
    runs.iter().for_each(|r| all.extend(&r.held));
    let gone = wait_gone(&all, Instant::now(), GRACE).unwrap_or_else(|l| panic!("left: {l:?}"));
    let text = text_vs_file(target.pid);
    assert!(
        text.differing.is_empty(),
        "text differs at {:x?}",
        text.differing
    );
    assert_eq!(
        kernel::uprobe_events(),
        uprobe_events,
        "tracefs uprobe_events changed"
    );
    assert_nothing_grew(&first, &last, &control_last);
    let done = target.finish_ok();
    control.finish_ok();
    let fds: std::collections::BTreeSet<usize> = runs.iter().map(|r| r.fds).collect();
    let mut rss: Vec<i64> = runs.iter().map(|r| r.max_rss_kb).collect();
    rss.sort();
    let mut totals: Vec<Duration> = runs.iter().map(|r| r.total).collect();
    let mut attaches: Vec<Duration> = runs.iter().map(|r| r.attach).collect();
    println!(
        "faults: attach/detach x{n} (--pid, Ctrl-C after 100 ms): {:.1} s in all, per round \
         median {:.0} ms (attach {:.0} ms, then 100 ms traced and detach); 0 lost, 0 wrong results ({done} \
         rounds OK), target exit 0; BPF objects used in all: {}, none left ({:.0} ms after the \
         last); target from round 1 to the end: RSS {} -> {} kB (untraced control: {} kB), fds \
         {} -> {}, mappings {} -> {}, threads {} -> {}; tracer peak RSS median {} kB (max {}), \
         fds while attached {:?}; text identical to the file; tracefs uprobe_events {}",
        wall.as_secs_f64(),
        median(&mut totals).as_secs_f64() * 1e3,
        median(&mut attaches).as_secs_f64() * 1e3,
        all.describe(),
        gone.as_secs_f64() * 1e3,
        first.rss_kb,
        last.rss_kb,
        control_last.rss_kb,
        first.fds,
        last.fds,
        first.mappings,
        last.mappings,
        first.threads,
        last.threads,
        rss[rss.len() / 2],
        rss[rss.len() - 1],
        fds,
        uprobe_events.map_or("not mounted".to_string(), |c| format!(
            "{c} lines before and after"
        )),
    );
}

/// The target holds no more fds than after the first round, at most the one `[uprobes]` /
/// trampoline mapping more (the kernel maps them once per process, at the first probe hit),
/// and no more memory than the untraced control beyond 2 MB of noise.
fn assert_nothing_grew(first: &Usage, last: &Usage, control: &Usage) {
    assert_eq!(last.fds, first.fds, "the target's fds grew");
    assert!(
        last.mappings <= first.mappings + 2,
        "mappings {first:?} -> {last:?}"
    );
    assert!(
        last.rss_kb <= control.rss_kb + 2048,
        "RSS {first:?} -> {last:?}; the untraced control: {control:?}"
    );
}
