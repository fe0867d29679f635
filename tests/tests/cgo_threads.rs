//! Calls into Go from C threads (cgo callbacks) on real binaries of every toolchain: each C
//! thread borrows an extra M, and consecutive threads get the same M and g0. The events must
//! still carry the thread that really ran them, not an earlier thread of that g0 (the probes
//! cache what they learn about a thread per CPU; the sample pins every C thread to one CPU so
//! such a cache would be hit). Needs root and BPF (skips with the reason otherwise).
use std::collections::{BTreeMap, BTreeSet};

use gmp_trace_tests::{of_kind, require_bpf, Sample, TraceRun, Variant, ALL_GO_VERSIONS};

fn check(go: &str) {
    let (threads, calls) = (6, 3);
    let run = Sample::build("cgothreads", go, Variant::Cgo)
        .trace(&format!("cgo-threads-{go}"))
        .opts(["-q"])
        .args([threads.to_string(), calls.to_string()])
        .run();
    assert!(
        run.status.success(),
        "Go {go}: gmp-trace failed: {}",
        run.stderr
    );
    assert_eq!(run.summary["lost_events"], 0, "Go {go}: {}", run.stderr);
    let c_threads = callback_threads(go, &run, threads, calls);
    assert_extra_m_lent_on_each_c_thread(go, &run, &c_threads);
}

/// The thread id each callback ran on, as the callback itself saw it: tid -> C thread number.
/// Each of the `threads` C threads has its own tid and made all its `calls`.
fn callback_threads(go: &str, run: &TraceRun, threads: usize, calls: usize) -> BTreeMap<u64, u32> {
    let mut c_threads = BTreeMap::new();
    for line in run.stdout.lines().filter(|l| l.starts_with("callback ")) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (thread, tid): (u32, u64) = (w[2].parse().unwrap(), w[6].parse().unwrap());
        let prev = c_threads.insert(tid, thread);
        assert!(
            prev.is_none() || prev == Some(thread),
            "Go {go}: two C threads on tid {tid}"
        );
    }
    assert_eq!(
        c_threads.len(),
        threads,
        "Go {go}: callbacks seen: {}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("done: {threads} threads x {calls} callbacks")),
        "Go {go}: {}",
        run.stdout
    );
    c_threads
}

/// Lending the extra M's goroutine to a C thread (needm: _Gdead -> _Gsyscall) and taking it
/// back (dropm) happen on that C thread, once per callback before Go 1.21 and once per thread
/// after (the M stays bound until the thread exits). Every C thread has its own, none is put on
/// a thread that did not call in, and each C thread's events name the M it borrowed.
fn assert_extra_m_lent_on_each_c_thread(go: &str, run: &TraceRun, c_threads: &BTreeMap<u64, u32>) {
    let statuses = of_kind(&run.events, "go_status");
    let mut lent: BTreeMap<u64, usize> = BTreeMap::new();
    let mut returned: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &statuses {
        let tid = e["tid"].as_u64().unwrap();
        match (e["from"].as_str(), e["to"].as_str()) {
            (Some("NotExist"), Some("Syscall")) => *lent.entry(tid).or_default() += 1,
            (Some("Syscall"), Some("NotExist")) => *returned.entry(tid).or_default() += 1,
            _ => {}
        }
    }
    let tids: BTreeSet<u64> = c_threads.keys().copied().collect();
    for &tid in &tids {
        let (l, r) = (lent.get(&tid), returned.get(&tid));
        assert!(
            l.is_some_and(|&n| n >= 1) && l == r,
            "Go {go}: C thread {} (tid {tid}) was lent the extra M {l:?} times and gave it back \
             {r:?} times on its own tid; by tid: lent {lent:?}, returned {returned:?}",
            c_threads[&tid]
        );
    }
    let strays: Vec<_> = lent.keys().filter(|t| !tids.contains(t)).collect();
    assert!(
        strays.is_empty(),
        "Go {go}: extra M lent on threads {strays:?}, not the C threads {tids:?}"
    );
    // The M named exists.
    let ms: BTreeSet<i64> = statuses
        .iter()
        .filter(|e| tids.contains(&e["tid"].as_u64().unwrap()))
        .map(|e| e["m"].as_i64().unwrap())
        .collect();
    assert!(
        !ms.is_empty() && ms.iter().all(|&m| m >= 0),
        "Go {go}: Ms of the C threads' events: {ms:?}"
    );
}

#[test]
fn callbacks_from_c_threads_keep_their_thread() {
    require_bpf!();
    for go in ALL_GO_VERSIONS {
        check(go);
    }
}
