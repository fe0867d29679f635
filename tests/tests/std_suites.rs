//! Go's own std test suites pass identically while traced (issue 18), the short part that runs
//! in `cargo xtask test`: a few quick packages for the newest and the oldest toolchain (and
//! time's timer-heavy tests for the newest), each run untraced and then at every level and in
//! aggregate mode. Every test must have the same outcome as untraced (apart from the listed
//! timing-dependent ones), with no event lost. The fidelity check compares one suite with Go's
//! own tracer (`-test.trace`). The whole matrix is `cargo xtask reliability --only std`
//! (docs/reliability.md). Needs root and BPF (skips with the reason otherwise).
use gmp_trace_tests::std_suites::{
    describe, difference, fidelity, run_suite, Mode, Outcome, STD_SUITE_VERSIONS,
};
use gmp_trace_tests::{require_bpf, scratch_dir};

/// Quick suites (a second or two each at level full) that still cover mutexes, pools, wait
/// groups, cancellation trees and fork/exec.
const PACKAGES: &[&str] = &["sync", "context", "bufio", "os/exec"];

/// time's tests make timers by the thousand: 10-15 million events in ~20 s traced, the highest
/// rate of the matrix, for the zero-loss claim. Newest only, to keep this under ~2 minutes.
const NEWEST_ONLY: &[&str] = &["time"];

fn same_results_traced(go: &str, packages: &[&str]) {
    for pkg in packages {
        let dir = scratch_dir(&format!("std-suites-test/go{go}/{pkg}"));
        let untraced = run_suite(go, pkg, Mode::Untraced, &dir, &[], &[]);
        // A suite that does not pass on its own says nothing about the tracer.
        assert_eq!(
            untraced.exit_code,
            Some(0),
            "Go {go} {pkg} fails untraced:\n{}",
            untraced.output_tail()
        );
        assert!(
            untraced.count(Outcome::Pass) > 10,
            "Go {go} {pkg}: too few tests parsed from -test.v: {:?}",
            untraced.tests
        );
        for mode in Mode::TRACED {
            let traced = run_suite(go, pkg, mode, &dir, &[], &[]);
            let d = difference(pkg, &untraced, &traced);
            eprintln!(
                "Go {go} {pkg} {}: {} passed ({} untraced), {} events, {} lost, {:.1}s ({:.1}s untraced){}",
                mode.name(),
                traced.count(Outcome::Pass),
                untraced.count(Outcome::Pass),
                traced.events,
                traced.lost,
                traced.wall.as_secs_f64(),
                untraced.wall.as_secs_f64(),
                if d.timing.is_empty() {
                    String::new()
                } else {
                    format!("; timing-dependent: {}", describe(&d.timing))
                }
            );
            assert!(
                d.is_same(),
                "Go {go} {pkg} {}: results differ from untraced: {} (exit {:?})\n{}",
                mode.name(),
                describe(&d.unexplained),
                d.exit_codes,
                traced.output_tail()
            );
            assert_eq!(traced.lost, 0, "Go {go} {pkg} {}: events lost", mode.name());
            assert!(
                traced.events > 0,
                "Go {go} {pkg} {}: no events",
                mode.name()
            );
        }
    }
}

#[test]
fn std_suites_same_results_traced_newest() {
    require_bpf!();
    let packages: Vec<&str> = PACKAGES.iter().chain(NEWEST_ONLY).copied().collect();
    same_results_traced(STD_SUITE_VERSIONS[0], &packages);
}

#[test]
fn std_suites_same_results_traced_oldest() {
    require_bpf!();
    same_results_traced(STD_SUITE_VERSIONS[STD_SUITE_VERSIONS.len() - 1], PACKAGES);
}

/// sync's tests with Go's own tracer on: every goroutine transition Go's tracer saw, we saw.
#[test]
fn std_suite_matches_go_tracer() {
    require_bpf!();
    let go = STD_SUITE_VERSIONS[0];
    let f = fidelity(
        go,
        "sync",
        &scratch_dir(&format!("std-suites-test/fidelity-go{go}")),
    );
    eprintln!("{}", f.table);
    assert_eq!(
        f.run.exit_code,
        Some(0),
        "sync's tests failed traced with -test.trace:\n{}",
        f.run.output_tail()
    );
    assert_eq!(f.compare_code, Some(0), "compare --min-match 99.9 failed");
    let r = &f.report;
    assert_eq!(r["ours_lost"], 0, "events lost");
    assert_eq!(r["go_bad_events"], 0, "unreadable events in Go's trace");
    let create = r["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|x| x["name"] == "GoCreate"))
        .expect("a GoCreate row");
    assert!(create["go"].as_u64().unwrap_or(0) > 1000, "{create}");
    assert_eq!(create["match_pct"].as_f64(), Some(100.0), "{create}");
    assert_eq!(create["extra"], 0, "{create}");
}
