//! `--all` against thousands of short-lived processes (issue 20: "a shell loop of `go version`"):
//! a shell starts a tiny Go sample (blip, 150 ms of goroutines) about a thousand times, each
//! next to a non-Go exec, while a few long-lived copies run; `--all --exe-filter` picks exactly
//! those among whatever else the machine runs. gmp-trace must look at each at its exec (the
//! ones traced are so from their first ~100 ms, each with a report), account for the rest, keep
//! its memory flat as processes come and go, exit 0 on SIGINT, and leave no probe behind.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::pid::{all_link_ids, links_held_by};
use gmp_trace_tests::{
    build_sample, gmp_trace_bin, require_bpf, scratch_dir, Variant, GO_VERSIONS,
};
use serde_json::Value;

/// Short-lived processes started in all.
const SHORT: usize = 1000;
/// Of those, the ones started before memory is first measured.
const WARM: usize = 100;
/// Started in parallel by the loop before it waits for them.
const BATCH: usize = 6;
/// Long-lived processes running through the whole run.
const LONG: usize = 3;

fn vm_kb(pid: u32, key: &str) -> u64 {
    gmp_trace_tests::soak::vm_kib(pid, key).unwrap_or(0)
}

/// The pids of the short processes that ran to their end ("blip N PID" lines).
fn finished(out: &Path) -> BTreeMap<u64, u64> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(2)?.parse().ok()?, f.get(1)?.parse().ok()?))
        })
        .collect()
}

/// Waits until `f` holds, for at most `secs`.
fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// uprobe_events lines (tracefs) that name `dir`.
fn uprobe_events_in(dir: &Path) -> usize {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/uprobe_events")).ok())
        .map(|t| {
            t.lines()
                .filter(|l| l.contains(&*dir.to_string_lossy()))
                .count()
        })
        .unwrap_or(0)
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn all_keeps_up_with_thousands_of_short_lived_processes() {
    require_bpf!();
    let dir = scratch_dir("all-stress").canonicalize().unwrap();
    let src = build_sample("blip", GO_VERSIONS[0], Variant::Default);
    let (short, long) = (dir.join("blip-short"), dir.join("blip-long"));
    std::fs::copy(&src, &short).unwrap();
    std::fs::copy(&src, &long).unwrap();
    let (sum, err, out) = (dir.join("s.json"), dir.join("err"), dir.join("out"));
    let _ = std::fs::remove_file(&out);
    let filter = format!("^{}/blip-(short|long)$", dir.display());
    let mut tracer = Command::new(gmp_trace_bin())
        .args(["--all", "--exe-filter", &filter, "-q"])
        .args(["--summary-json", sum.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let tracer_pid = tracer.id();
    let said = || std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        wait_for(20, || said()
            .contains("--all: new processes are looked at at their exec")),
        "the exec watch did not start: {}",
        said()
    );
    let mut longs = Killed(Vec::new());
    for _ in 0..LONG {
        let c = Command::new(&long)
            .args(["-ms", "120000"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        longs.0.push(c);
    }
    let long_pids: BTreeSet<u64> = longs.0.iter().map(|c| u64::from(c.id())).collect();

    // Two runs of the loop: WARM processes, a pause for gmp-trace to settle, then the rest.
    // Memory is compared between the settled moments (no session in flight), so what it
    // measures is what the run keeps, not the storm's busiest moment.
    let started = Instant::now();
    let script = format!(
        "i=0; while [ $i -lt $3 ]; do \"$1\" -ms 150 >> \"$2\" & /bin/true; i=$((i+1)); \
         if [ $((i % {BATCH})) -eq 0 ]; then wait; fi; done; wait"
    );
    let mut held = BTreeSet::new();
    let mut settled = Vec::new();
    let mut loop_time = Duration::ZERO;
    for n in [WARM, SHORT - WARM] {
        let phase = Instant::now();
        let mut shell = Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(&short)
            .arg(&out)
            .arg(n.to_string())
            .spawn()
            .unwrap();
        // Links held, sampled as the processes come and go.
        while shell.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(250));
            held.extend(links_held_by(tracer_pid).iter().map(|l| l.id));
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the loop takes too long"
            );
        }
        loop_time += phase.elapsed();
        // The last sessions end with their processes (a process exiting mid-attach keeps its
        // session up to ~0.7 s); then a trim is at most a second away.
        std::thread::sleep(Duration::from_millis(2500));
        held.extend(links_held_by(tracer_pid).iter().map(|l| l.id));
        settled.push((finished(&out).len(), vm_kb(tracer_pid, "RssAnon:")));
    }
    let hwm = vm_kb(tracer_pid, "VmHWM:");
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(tracer_pid as i32, libc::SIGINT) };
    let status = tracer.wait().unwrap();
    drop(longs);
    let said = said();
    assert!(status.success(), "gmp-trace failed: {status}\n{said}");
    assert!(!said.contains("panicked"), "{said}");

    // Nothing of the run stays in the kernel.
    assert!(!held.is_empty(), "no link seen while tracing");
    let lingering = || {
        let now: BTreeSet<u64> = all_link_ids().into_iter().collect();
        held.intersection(&now).count()
    };
    assert!(
        wait_for(5, || lingering() == 0),
        "{} of the {} links the run held are still there",
        lingering(),
        held.len()
    );
    assert_eq!(uprobe_events_in(&dir), 0, "uprobe_events name our samples");

    let ran = finished(&out);
    assert_eq!(ran.len(), SHORT, "every short process ran to its end");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&sum).unwrap()).unwrap();
    assert_eq!(s["mode"], "all");
    let ps = s["processes"].as_array().expect("processes[]");
    let mut traced_short = Vec::new();
    let mut traced_long = BTreeSet::new();
    let mut after_exec = Vec::new();
    for p in ps {
        let pid = p["pid"].as_u64().unwrap();
        let exe = p["exe"].as_str().unwrap();
        assert!(
            exe == short.to_str().unwrap() || exe == long.to_str().unwrap(),
            "{p}"
        );
        assert_eq!(p["module_path"], "example.com/blip", "{p}");
        assert_eq!(p["mode"], "pid", "{p}");
        assert!(p["probes"].as_array().unwrap().len() >= 10, "{p}");
        assert!(p["attach_ms"].as_f64().is_some(), "{p}");
        let ticks = p["goroutines_by_start_fn"]["main.tick"]
            .as_u64()
            .unwrap_or(0);
        if long_pids.contains(&pid) {
            traced_long.insert(pid);
            assert!(ticks > 100, "a long one's goroutines: {p}");
            continue;
        }
        let n = *ran
            .get(&pid)
            .unwrap_or_else(|| panic!("not one of ours: {p}"));
        assert!(ticks <= n, "{ticks} goroutines traced of {n} started: {p}");
        assert!(p["duration_ns"].as_u64().unwrap() < 10_000_000_000, "{p}");
        let ms = p["attached_after_exec_ms"].as_f64();
        after_exec.push(ms.unwrap_or_else(|| panic!("no attached_after_exec_ms: {p}")));
        traced_short.push(pid);
    }
    assert_eq!(traced_long, long_pids, "every long-lived process is traced");
    let distinct: BTreeSet<u64> = traced_short.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        traced_short.len(),
        "a process reported twice"
    );

    let not_traced = s["not_traced"].as_array().unwrap();
    let exited = said.matches("exited before it could be traced").count();
    assert!(
        not_traced.len() <= SHORT / 50,
        "{} not traced: {:?}",
        not_traced.len(),
        not_traced
    );
    assert!(
        traced_short.len() + not_traced.len() + exited <= SHORT,
        "more outcomes than processes: {} + {} + {exited}",
        traced_short.len(),
        not_traced.len()
    );
    let [(n_warm, rss_warm), (_, rss_last)] = settled[..] else {
        unreachable!()
    };
    let growth = rss_last.saturating_sub(rss_warm);
    let per_report = growth * 1024 / (traced_short.len() as u64).max(1);
    after_exec.sort_by(f64::total_cmp);
    let med = after_exec.get(after_exec.len() / 2).copied().unwrap_or(0.0);
    let max = after_exec.last().copied().unwrap_or(0.0);
    println!(
        "all_stress: {SHORT} short Go processes (+{SHORT} /bin/true, {LONG} long) in {:.1} s: \
         {} traced, {exited} exited before they could be, {} not traced; exec to probes in: \
         median {med:.1} ms, max {max:.1} ms; gmp-trace anonymous RSS settled {rss_warm} kB \
         after {n_warm} -> {rss_last} kB after {SHORT} ({per_report} B per report kept), \
         peak RSS {hwm} kB",
        loop_time.as_secs_f64(),
        traced_short.len(),
        not_traced.len(),
    );
    // Each traced process costs a session of its own (its binary read, a BPF object loaded and
    // verified, its probes attached, then detached: ~100 ms of CPU on two busy cores, more when
    // the process exits mid-attach), so under a storm only some are traced; those that are, are
    // so from their exec on, not from a /proc rescan up to 250 ms later.
    assert!(
        traced_short.len() >= SHORT / 100,
        "only {} of {SHORT} short processes traced ({exited} exited first, {} not traced)",
        traced_short.len(),
        not_traced.len()
    );
    assert!(med < 250.0, "exec to probes: median {med} ms");
    // Memory follows what is alive plus the reports kept (~10 kB of JSON each), not what
    // came and went.
    let bound = 8 * 1024 + 64 * traced_short.len() as u64;
    assert!(
        growth < bound,
        "anonymous RSS grew by {growth} kB from {n_warm} to {SHORT} processes \
         ({} reports kept; bound {bound} kB)",
        traced_short.len()
    );
}
