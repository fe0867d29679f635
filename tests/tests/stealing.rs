//! Spinning Ms and run-queue steals on real Go binaries of every toolchain: the stealer sample
//! queues bursts of goroutines on one P with GOMAXPROCS=2, so the other P's M spins and steals.
//! Needs root and BPF (skips with the reason otherwise).
use std::collections::{HashMap, HashSet};
use std::path::Path;

use gmp_trace_tests::{
    of_kind, read_jsonl, replay, require_bpf, Sample, TraceRun, Variant, ALL_GO_VERSIONS,
};
use serde_json::Value;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an i64: {v}"))
}

fn check(go: &str) {
    let stealer = Sample::build("stealer", go, Variant::Default);
    let trace = stealer.trace(&format!("stealing-{go}"));
    let rec = trace.file("run.gmpt");
    let bursts = 20;
    let run = trace
        .opts(["-q", "--record", rec.to_str().unwrap()])
        .args([bursts.to_string()])
        .run();
    assert!(
        run.status.success(),
        "go{go}: gmp-trace failed: {}",
        run.stderr
    );
    assert_eq!(
        run.stdout,
        format!("started {} goroutines\n", bursts * 32),
        "go{go}"
    );
    assert_eq!(run.summary["lost_events"], 0, "go{go}: events were lost");

    let steals = assert_stolen_goroutines_run_on_the_thief(go, &run);
    let (moved, failed_total) = assert_summary_counts_the_steals(go, &run, &steals);
    assert_thieves_spin(go, &run, &steals);
    assert_replay_remakes_the_events(go, &run, &rec, &stealer.bin);
    let w = &run.summary["work_stealing"];
    eprintln!(
        "go{go}: {} steals ({} goroutines) of {} attempts, {} spinning spells, {:.3} ms spinning",
        steals.len(),
        moved,
        steals.len() as u64 + failed_total,
        u(&w["spins"]),
        u(&w["spinning_ns"]) as f64 / 1e6
    );
}

/// Steals were seen, each between two Ps of a goroutine that exists; runqsteal's result is what
/// findRunnable returns, so the thief's M runs it next, on the thief's P. Returns the steals.
fn assert_stolen_goroutines_run_on_the_thief<'a>(go: &str, run: &'a TraceRun) -> Vec<&'a Value> {
    let created: HashSet<u64> = of_kind(&run.events, "go_create")
        .iter()
        .map(|e| u(&e["goid"]))
        .collect();
    // The first execute of each goroutine after each time: where a stolen one ran next.
    let mut executes: HashMap<u64, Vec<(u64, u64, i64)>> = HashMap::new();
    for e in of_kind(&run.events, "execute") {
        executes
            .entry(u(&e["goid"]))
            .or_default()
            .push((u(&e["ts"]), u(&e["tid"]), i(&e["p"])));
    }
    let steals = of_kind(&run.events, "steal");
    assert!(!steals.is_empty(), "go{go}: no steal seen");
    for st in &steals {
        let (goid, thief, victim) = (u(&st["goid"]), i(&st["thief_p"]), i(&st["victim_p"]));
        assert_eq!(thief, i(&st["p"]), "go{go}: {st}");
        assert!(thief >= 0 && victim >= 0 && victim != thief, "go{go}: {st}");
        assert!(
            created.contains(&goid),
            "go{go}: stole a goroutine never created: {st}"
        );
        assert!((1..=128).contains(&u(&st["goroutines"])), "go{go}: {st}");
        let next = executes
            .get(&goid)
            .and_then(|v| v.iter().filter(|x| x.0 >= u(&st["ts"])).min_by_key(|x| x.0))
            .unwrap_or_else(|| panic!("go{go}: stolen goroutine never ran: {st}"));
        // The thief runs what it stole on its own M, with one exception in the runtime:
        // a goroutine locked to a thread goes to that thread, which gets the P
        // (schedule -> startlockedm). runtime.main locks goroutine 1 to the main thread (m0,
        // tid == pid) while package inits run.
        let locked_main = goid == 1 && next.1 == u(&st["pid"]);
        assert_eq!(
            (if locked_main { u(&st["tid"]) } else { next.1 }, next.2),
            (u(&st["tid"]), thief),
            "go{go}: stolen G ran elsewhere: {st}"
        );
    }
    steals
}

/// The summary's work-stealing section and per-P counts agree with the events. Returns the
/// goroutines moved and the failed attempts.
fn assert_summary_counts_the_steals(go: &str, run: &TraceRun, steals: &[&Value]) -> (u64, u64) {
    let s = &run.summary;
    let w = &s["work_stealing"];
    assert_eq!(u(&w["steals"]), steals.len() as u64, "go{go}");
    let moved: u64 = steals.iter().map(|e| u(&e["goroutines"])).sum();
    assert_eq!(u(&w["goroutines_stolen"]), moved, "go{go}");
    let pairs = w["by_pair"].as_array().unwrap();
    assert_eq!(
        pairs.iter().map(|p| u(&p["steals"])).sum::<u64>(),
        steals.len() as u64
    );
    let procs = s["proc_utilization"].as_array().unwrap();
    let by = |k: &str| procs.iter().map(|p| u(&p[k])).sum::<u64>();
    assert_eq!(by("steals"), steals.len() as u64, "go{go}");
    assert_eq!(by("stolen_from"), steals.len() as u64, "go{go}");
    let failed_total = of_kind(&run.events, "steal_failed")
        .iter()
        .map(|e| u(&e["failed_total"]))
        .max()
        .unwrap_or(0);
    assert_eq!(u(&w["failed_attempts"]), failed_total, "go{go}");
    (moved, failed_total)
}

/// Spinning: spells seen, on Ms that stole, ended by resetspinning at least once.
fn assert_thieves_spin(go: &str, run: &TraceRun, steals: &[&Value]) {
    let s = &run.summary;
    let w = &s["work_stealing"];
    assert!(
        u(&w["spins"]) > 0 && u(&w["spinning_ns"]) > 0,
        "go{go}: {w}"
    );
    assert!(!of_kind(&run.events, "spin_start").is_empty(), "go{go}");
    assert!(!of_kind(&run.events, "spin_end").is_empty(), "go{go}");
    let threads = s["thread_list"].as_array().unwrap();
    let spun: HashSet<u64> = threads
        .iter()
        .filter(|t| u(&t["spins"]) > 0)
        .map(|t| u(&t["tid"]))
        .collect();
    assert_eq!(
        threads.iter().map(|t| u(&t["spinning_ns"])).sum::<u64>(),
        u(&w["spinning_ns"])
    );
    for st in steals {
        assert!(
            spun.contains(&u(&st["tid"])),
            "go{go}: a non-spinning M stole: {st}"
        );
    }
    assert!(u(&w["max_spinning_ms"]) >= 1, "go{go}: {w}");
}

/// A replay of the recording remakes the same events.
fn assert_replay_remakes_the_events(go: &str, run: &TraceRun, rec: &Path, bin: &Path) {
    let replayed = run.dir.join("replayed.jsonl");
    let o = replay(rec, bin, &[("-o", &replayed)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_jsonl(&replayed), run.events, "go{go}: replay differs");
}

#[test]
fn spinning_and_steals_every_toolchain() {
    require_bpf!();
    for go in ALL_GO_VERSIONS {
        check(go);
    }
}
