//! Tests of the comparison of two Go traces ([`super::go_go`]): both sides written by hand as
//! `go tool trace -d=parsed` prints them, compared, and the rows, stack rows (the documented
//! rule), reason rows, M naming and verdict checked.
use super::go_go::{compare_go_go, same_stack};
use super::go_side::parse_go;
use super::matcher::{Options, UNDETERMINED_SLACK_NS};

fn opts(version: (u32, u32)) -> Options {
    Options {
        go_version: version,
        detail: 0,
        undetermined_slack_ns: UNDETERMINED_SLACK_NS,
        end_slack_ns: UNDETERMINED_SLACK_NS,
    }
}

/// A stack block of `funcs` (leaf first) as `-d=parsed` prints it.
fn block(header: &str, funcs: &[&str]) -> String {
    let mut s = format!("{header}=\n");
    for (i, f) in funcs.iter().enumerate() {
        s.push_str(&format!("\t{f} @ 0x{:x}\n\t\tx.go:{i}\n", 0x1000 + i));
    }
    s.push('\n');
    s
}

/// One run as a trace says it: g1 creates g7 (from main.main), g7 starts on M `m7` and P 0,
/// blocks on a channel with `block_stack`, is woken, runs again and ends. `t0` shifts every
/// time; `with_runtime_frames` adds what our probes see above Go's frames (gopark, chanrecv,
/// newproc) and below them (runtime.main, runtime.goexit).
fn trace(t0: i64, m7: i64, block_stack: &[&str], with_runtime_frames: bool) -> String {
    let t = |d: i64| t0 + d;
    let (top, bottom): (&[&str], &[&str]) = if with_runtime_frames {
        (&["runtime.gopark", "runtime.chanrecv"], &["runtime.goexit"])
    } else {
        (&[], &[])
    };
    let block_full: Vec<&str> = top
        .iter()
        .chain(block_stack)
        .chain(bottom)
        .copied()
        .collect();
    let creator: Vec<&str> = if with_runtime_frames {
        vec![
            "runtime.newproc",
            "main.main",
            "runtime.main",
            "runtime.goexit",
        ]
    } else {
        vec!["main.main"]
    };
    let mut s = format!("M=-1 P=-1 G=-1 Sync Time={} N=1\n", t(0));
    s += &format!(
        "M=10 P=1 G=-1 StateTransition Time={} GoID=1 Undetermined->Running Reason=\"\"\n",
        t(100)
    );
    s += &format!(
        "M=10 P=1 G=1 StateTransition Time={} GoID=7 NotExist->Runnable Reason=\"\"\n",
        t(200)
    );
    s += &block("TransitionStack", &["main.worker"]);
    s += &block("Stack", &creator);
    s += &format!(
        "M={m7} P=0 G=-1 StateTransition Time={} GoID=7 Runnable->Running Reason=\"\"\n",
        t(300)
    );
    s += &format!(
        "M={m7} P=0 G=7 StateTransition Time={} GoID=7 Running->Waiting Reason=\"chan receive\"\n",
        t(400)
    );
    s += &block("TransitionStack", &block_full);
    s += &block("Stack", &block_full);
    s += &format!(
        "M=10 P=1 G=1 StateTransition Time={} GoID=7 Waiting->Runnable Reason=\"\"\n",
        t(500)
    );
    s += &format!(
        "M={m7} P=0 G=-1 StateTransition Time={} GoID=7 Runnable->Running Reason=\"\"\n",
        t(600)
    );
    s += &format!(
        "M={m7} P=0 G=7 StateTransition Time={} GoID=7 Running->NotExist Reason=\"\"\n",
        t(700)
    );
    s
}

const GO_BLOCK: &[&str] = &["runtime.chanrecv1", "main.worker"];

fn stack_row<'a>(r: &'a super::report::Report, name: &str) -> &'a super::go_go::StackRow {
    let g = r.go_go.as_ref().expect("a Go-trace comparison");
    g.stacks.iter().find(|s| s.name == name).expect("row")
}

#[test]
fn the_stack_rule() {
    let v = |s: &[&str]| s.iter().map(|f| f.to_string()).collect::<Vec<_>>();
    let go = v(&["runtime.chanrecv1", "main.f", "main.main"]);
    // Ours walks from deeper in the runtime and keeps the frames Go's tracer drops.
    let ours = v(&[
        "runtime.gopark",
        "runtime.chanrecv",
        "runtime.chanrecv1",
        "main.f",
        "main.main",
        "runtime.main",
        "runtime.goexit",
    ]);
    assert!(same_stack(&go, &ours));
    // A frame Go names that ours lacks, or another caller: not the same.
    assert!(!same_stack(
        &go,
        &v(&["runtime.gopark", "main.f", "main.main"])
    ));
    assert!(!same_stack(
        &go,
        &v(&["runtime.chanrecv1", "main.g", "main.main"])
    ));
    // Ours cannot be shorter than Go's, and an empty stack proves nothing.
    assert!(!same_stack(&go, &v(&["main.f", "main.main"])));
    assert!(!same_stack(&[], &ours));
    assert!(!same_stack(&go, &[]));
}

#[test]
fn same_run_matches_every_row_and_stack() {
    let go = parse_go(&trace(1_000_000, 8306, GO_BLOCK, false));
    // Ours: the same run 150 ns later, with the runtime frames our probes see.
    let ours = parse_go(&trace(1_000_150, 8306, GO_BLOCK, true));
    let mut r = compare_go_go(&go, &ours, opts((1, 27)));
    for row in r.rows.iter().filter(|r| r.go > 0) {
        assert_eq!(row.match_pct, Some(100.0), "{row:?}");
    }
    assert_eq!(r.gostart_placement.same_m_pct, Some(100.0));
    assert_eq!(r.gostart_placement.m_identity, "tid");
    for name in ["GoBlock", "GoCreate", "GoCreate start func"] {
        let s = stack_row(&r, name);
        assert_eq!((s.go_with_stack, s.same), (1, 1), "{s:?}");
    }
    let g = r.go_go.as_ref().unwrap();
    assert_eq!(g.reasons.len(), 1);
    assert_eq!(g.reasons[0].reason, "chan receive");
    assert_eq!(g.reasons[0].match_pct, Some(100.0));
    assert_eq!(g.ours_statuses, 1, "g1's Undetermined->Running");
    let g = g.clone();
    r.check(99.9);
    let mut failures = std::mem::take(&mut r.failures);
    g.check(99.9, 99.0, &mut failures);
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn stacks_that_differ_or_are_missing_fail_the_stack_rows() {
    let go = parse_go(&trace(1_000_000, 8306, GO_BLOCK, false));
    // Blocked somewhere else.
    let other = parse_go(&trace(
        1_000_150,
        8306,
        &["runtime.chansend1", "main.worker"],
        true,
    ));
    let r = compare_go_go(&go, &other, opts((1, 27)));
    let s = stack_row(&r, "GoBlock");
    assert_eq!((s.paired, s.same, s.match_pct), (1, 0, Some(0.0)));
    assert_eq!(s.differing.len(), 1);
    // Recorded without --stacks: no stack on any event of ours.
    let bare: String = trace(1_000_150, 8306, GO_BLOCK, true)
        .lines()
        .filter(|l| l.starts_with("M="))
        .map(|l| format!("{l}\n"))
        .collect();
    let r = compare_go_go(&go, &parse_go(&bare), opts((1, 27)));
    let mut failures = Vec::new();
    r.go_go.as_ref().unwrap().check(99.9, 99.0, &mut failures);
    assert_eq!(
        failures.len(),
        3,
        "GoBlock and GoCreate stacks, GoCreate's start function: {failures:?}"
    );
    for row in r.rows.iter().filter(|r| r.go > 0) {
        assert_eq!(row.match_pct, Some(100.0), "the transitions still match");
    }
}

#[test]
fn old_traces_name_ms_by_m_id_and_fewer_reasons() {
    // Go <= 1.21 traces: M= is m.id (here 3), ours the thread id.
    let go =
        parse_go(&trace(0, 3, GO_BLOCK, false).replace("Reason=\"chan receive\"", "Reason=\"\""));
    let ours = parse_go(&trace(5_000_000, 8306, GO_BLOCK, true).replace(
        "Reason=\"chan receive\"",
        "Reason=\"system goroutine wait\"",
    ));
    let r = compare_go_go(&go, &ours, opts((1, 21)));
    assert_eq!(r.clock.offset_ns, 5_000_000, "aligned on the creation");
    assert_eq!(r.gostart_placement.m_identity, "m.id");
    assert_eq!(r.gostart_placement.same_m_pct, Some(100.0));
    // The old format has no "system goroutine wait": a plain GoBlock, read as "".
    let g = r.go_go.as_ref().unwrap();
    assert_eq!(g.reasons.len(), 1);
    assert_eq!(
        (g.reasons[0].reason.as_str(), g.reasons[0].matched),
        ("", 1)
    );
    // The same words against a new trace are a difference.
    let r = compare_go_go(&go, &ours, opts((1, 27)));
    let g = r.go_go.as_ref().unwrap();
    assert!(
        g.reasons.iter().any(|x| x.match_pct == Some(0.0)),
        "{:?}",
        g.reasons
    );
}

#[test]
fn a_thread_that_is_another_m_shows() {
    let go = parse_go(&trace(1_000_000, 8306, GO_BLOCK, false));
    let ours = parse_go(&trace(1_000_150, 9999, GO_BLOCK, true).replace(
        // g7's second start on the right thread, the first on another.
        "M=9999 P=0 G=-1 StateTransition Time=1000750",
        "M=8306 P=0 G=-1 StateTransition Time=1000750",
    ));
    let r = compare_go_go(&go, &ours, opts((1, 27)));
    let pl = &r.gostart_placement;
    assert_eq!((pl.go_starts, pl.same_m), (2, 1), "{pl:?}");
}

/// GoCreate's start function must be the one Go names: a `go` statement's wrapper in its
/// place (what we wrote before reading FUNCDATA_WrapInfo) fails the row.
#[test]
fn a_wrapper_for_the_start_function_fails_its_row() {
    let go = parse_go(&trace(1_000_000, 8306, GO_BLOCK, false));
    let ours = trace(1_000_150, 8306, GO_BLOCK, true).replacen(
        "TransitionStack=\n\tmain.worker",
        "TransitionStack=\n\tmain.main.gowrap1",
        1,
    );
    let r = compare_go_go(&go, &parse_go(&ours), opts((1, 27)));
    let s = stack_row(&r, "GoCreate start func");
    assert_eq!((s.paired, s.same, s.match_pct), (1, 0, Some(0.0)), "{s:?}");
    assert_eq!(
        stack_row(&r, "GoCreate").same,
        1,
        "the creator's stack is still the same"
    );
    let mut failures = Vec::new();
    r.go_go.as_ref().unwrap().check(99.9, 99.0, &mut failures);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("GoCreate start func"),
        "{failures:?}"
    );
}
