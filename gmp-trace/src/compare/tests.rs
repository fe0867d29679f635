//! The matcher's tests: both sides made by hand (Go's from the `-d=parsed` sample of
//! [`go_side`](super::go_side), ours as model transitions), compared, and the report's rows,
//! exclusions, placement, verdict and text checked.
use std::collections::HashMap;

use super::go_side::parse_go;
use super::go_side::tests::SAMPLE;
use super::matcher::{compare, Options};
use crate::model::{GoState, Transition};

fn opts(detail: usize) -> Options {
    Options {
        go_version: (1, 27),
        detail,
        undetermined_slack_ns: 0,
        end_slack_ns: 0,
    }
}

fn tr(ts: u64, goid: u64, from: GoState, to: GoState, tid: u32, p: i32, by: u64) -> Transition {
    Transition {
        ts,
        goid,
        from,
        to,
        tid,
        p,
        by,
        reason: 0,
    }
}

use GoState::{NotExist as N, Runnable as R, Running as X, Syscall as S, Waiting as W};

/// Our side of SAMPLE, 50 ns later, with extras to be excluded or counted.
fn ours() -> Vec<Transition> {
    vec![
        // Before Go's trace: outside the window.
        tr(500, 3, N, R, 10, 1, 1),
        tr(600, 3, R, X, 10, 1, 0),
        // g1 existed before (Undetermined in Go's trace); ours before that is cut.
        tr(1150, 1, R, X, 10, 1, 0),
        tr(1450, 7, N, R, 10, 1, 1),
        tr(1550, 7, R, X, 11, 0, 0),
        // A GC stack scan: invisible to Go's tracer.
        tr(1560, 7, X, W, 11, 0, 0),
        tr(1570, 7, W, X, 11, 0, 0),
        tr(1650, 7, X, W, 11, 0, 0),
        tr(1750, 7, W, R, 10, 1, 1),
        // Started on another P than Go says.
        tr(1850, 7, R, X, 11, 1, 0),
        tr(1860, 7, X, S, 11, 1, 0),
        tr(1870, 7, S, X, 11, 1, 0),
        tr(1950, 7, X, N, 11, 1, 0),
        // After Go's trace stopped.
        tr(2100, 8, N, R, 10, 1, 1),
    ]
}

#[test]
fn matches_per_goroutine_with_exclusions() {
    let go = parse_go(SAMPLE);
    let threads = HashMap::from([(10, 0), (11, 1)]);
    let rep = compare(&go, &ours(), &threads, (500, 2100), opts(5));
    assert_eq!(rep.clock.offset_ns, 50);
    assert_eq!(rep.clock.pairs, 1);
    assert_eq!(
        (rep.window.start, rep.window.end),
        (1150, 1950),
        "Sync left out"
    );
    let row = |n: &str| rep.rows.iter().find(|r| r.name == n).unwrap();
    let c = |n: &str| {
        let r = row(n);
        (r.go, r.ours, r.matched, r.missing, r.extra)
    };
    assert_eq!(c("GoCreate"), (1, 1, 1, 0, 0));
    assert_eq!(row("GoCreate").match_pct, Some(100.0));
    assert_eq!(c("GoStart"), (2, 2, 2, 0, 0));
    assert_eq!(c("GoBlock"), (1, 1, 1, 0, 0));
    assert_eq!(c("GoUnblock"), (1, 1, 1, 0, 0));
    assert_eq!(c("GoDestroy"), (1, 1, 1, 0, 0));
    assert_eq!(c("GoSyscallBegin"), (0, 1, 0, 0, 1));
    assert_eq!(row("GoSyscallBegin").match_pct, None);
    assert_eq!(row("GoSyscallBegin").differing, vec![(7, 0, 1)]);
    let e = &rep.exclusions;
    assert_eq!(e.undetermined_goroutines, 2);
    assert_eq!(e.undetermined_events, 2);
    assert_eq!(e.ours_before_determined, 1);
    assert_eq!(e.tracer_invisible_waits, 1);
    assert_eq!(e.ours_outside_window, 3);
    assert_eq!(e.ours_goroutines_outside_window, 2);
    assert_eq!(e.go_outside_window, 0);
    let pl = &rep.gostart_placement;
    assert_eq!(pl.m_identity, "tid");
    assert_eq!(
        (pl.go_starts, pl.paired, pl.same_m, pl.same_p),
        (2, 2, 2, 1)
    );
    assert_eq!(pl.same_p_pct, Some(50.0));
    assert_eq!(rep.details.len(), 1);
    assert!(rep.details[0].contains("goroutine 7"));
    // Within the slack, g1's start before its Undetermined->Running is compared.
    let slack = Options {
        undetermined_slack_ns: 100,
        ..opts(0)
    };
    let rep = compare(&go, &ours(), &threads, (500, 2100), slack);
    assert_eq!(rep.exclusions.ours_before_determined, 0);
    assert_eq!((rep.rows[1].go, rep.rows[1].extra), (2, 1));
}

#[test]
fn creator_mismatch_is_missing_and_extra() {
    let go = parse_go(SAMPLE);
    let mut o = ours();
    o[3].by = 2;
    let rep = compare(&go, &o, &HashMap::new(), (500, 2100), opts(0));
    let r = &rep.rows[0];
    assert_eq!(
        (r.go, r.ours, r.matched, r.missing, r.extra),
        (1, 1, 0, 1, 1)
    );
    assert_eq!(r.differing_goroutines, 2);
    assert!(rep.details.is_empty());
}

#[test]
fn old_traces_match_m_ids_and_align_the_clock() {
    // Go <= 1.21 traces: Time from 0 and M= is m.id.
    let text = "M=-1 P=-1 G=-1 Sync Time=-1 N=1\n\
        M=0 P=1 G=1 StateTransition Time=10 GoID=5 NotExist->Runnable Reason=\"\"\n\
        M=1 P=0 G=-1 StateTransition Time=20 GoID=5 Runnable->Running Reason=\"\"\n\
        M=1 P=0 G=5 StateTransition Time=30 GoID=5 Running->NotExist Reason=\"\"\n";
    let go = parse_go(text);
    assert_eq!(go.first_time, Some(10));
    let o = vec![
        tr(1_000_010, 5, N, R, 100, 1, 1),
        tr(1_000_021, 5, R, X, 101, 0, 0),
        tr(1_000_030, 5, X, N, 101, 0, 0),
    ];
    let threads = HashMap::from([(100, 0), (101, 1)]);
    let mut rep = compare(&go, &o, &threads, (0, 2_000_000), opts(0));
    assert_eq!(rep.clock.offset_ns, 1_000_000);
    assert_eq!(rep.gostart_placement.m_identity, "m.id");
    assert_eq!(rep.gostart_placement.same_m, 1);
    assert!(rep.rows.iter().all(|r| r.missing == 0 && r.extra == 0));
    rep.check(99.9);
    assert!(rep.failures.is_empty(), "{:?}", rep.failures);
    rep.gostart_placement.same_p_pct = Some(50.0);
    rep.rows[1].match_pct = Some(99.0);
    rep.check(99.9);
    assert_eq!(rep.failures.len(), 2, "{:?}", rep.failures);
    assert!(rep.text().contains("FAIL"));
}

#[test]
fn old_traces_stop_with_a_gosched_that_is_not_compared() {
    let text = "M=0 P=1 G=1 StateTransition Time=10 GoID=1 Undetermined->Running Reason=\"\"\n\
        M=0 P=1 G=1 StateTransition Time=20 GoID=5 NotExist->Runnable Reason=\"\"\n\
        M=0 P=1 G=1 StateTransition Time=30 GoID=1 Running->Runnable Reason=\"runtime.Gosched\"\n";
    let go = parse_go(text);
    let o = vec![tr(120, 5, N, R, 100, 1, 1)];
    let threads = HashMap::from([(100, 0)]);
    let old = Options {
        go_version: (1, 21),
        ..opts(0)
    };
    let rep = compare(&go, &o, &threads, (0, 200), old);
    assert_eq!(rep.exclusions.stop_trace_gosched, 1);
    assert_eq!(rep.rows[4].go, 0, "GoStop");
    // Go 1.22+ StopTrace does not do that: a real GoStop, missing from ours.
    let rep = compare(&go, &o, &threads, (0, 200), opts(0));
    assert_eq!(rep.exclusions.stop_trace_gosched, 0);
    assert_eq!((rep.rows[4].go, rep.rows[4].missing), (1, 1));
}
