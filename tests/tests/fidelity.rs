//! Fidelity against Go's own execution tracer (issue 4): the `traced` sample runs with
//! runtime/trace on while gmp-trace records it, and `gmp-trace compare` checks every goroutine
//! transition of the two, per goroutine and per type (docs/fidelity.md). Needs root and BPF
//! (skips with the reason otherwise).
//!
//! Go's trace is read by the newest toolchain's `go tool trace -d=parsed`, which also reads the
//! older format Go <= 1.21 programs write.
use std::path::Path;
use std::process::Command;

use gmp_trace_tests::{gmp_trace_bin, go_binary, require_bpf, Sample, Variant, GO_VERSIONS};
use serde_json::Value;

/// The five transitions issue 4 names, by Go's event names.
const ISSUE_ROWS: &[(&str, &str, &str)] = &[
    ("GoStart", "Runnable", "Running"),
    ("GoBlock", "Running", "Waiting"),
    ("GoUnblock", "Waiting", "Runnable"),
    ("GoStop", "Running", "Runnable"),
    ("GoDestroy", "Running", "NotExist"),
];

/// `procs`: GOMAXPROCS values the sample cycles through, one per round (`-procs`).
fn matches_go_tracer(go: &str, procs: Option<&str>) {
    let trace = Sample::build("traced", go, Variant::Default)
        .trace(&format!("fidelity-{go}-{}", procs.unwrap_or("fixed")));
    let (rec, go_trace) = (trace.file("run.gmpt"), trace.file("go.trace"));
    let run = trace
        .no_output()
        .no_summary()
        .opts(["-q", "--record", rec.to_str().unwrap()])
        .args(["-trace", go_trace.to_str().unwrap(), "-rounds", "10"])
        .args(procs.map(|p| ["-procs", p]).into_iter().flatten())
        .run();
    let stderr = &run.stderr;
    assert!(run.status.success(), "gmp-trace --record failed:\n{stderr}");
    assert!(
        run.stdout.contains("traced done"),
        "the sample did not finish:\n{stderr}"
    );

    let r = compare(go, &rec, &go_trace, &run.dir.join("compare.json"));
    assert_every_creation_matched(&r);
    assert_issue_transitions_matched(&r);
    let identity = assert_gostart_placement(&r, go);
    assert_whole_window_compared(&r, identity);
}

/// `gmp-trace compare` of our recording with Go's trace, required to match 99.9%; returns its
/// JSON report.
fn compare(go: &str, rec: &Path, go_trace: &Path, json: &Path) -> Value {
    let o = Command::new(gmp_trace_bin())
        .arg("compare")
        .arg("--recording")
        .arg(rec)
        .arg("--go-trace")
        .arg(go_trace)
        .arg("--go")
        // The newest toolchain's `go tool trace` reads every version's traces.
        .arg(go_binary(GO_VERSIONS[0]))
        .args(["--min-match", "99.9", "--detail", "5", "--json"])
        .arg(json)
        .output()
        .expect("run gmp-trace compare");
    let table = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    // For the record: the table of every run is in the test output.
    eprintln!("Go {go}:\n{table}{stderr}");
    assert!(!stderr.contains("panicked"), "compare panicked:\n{stderr}");
    assert_eq!(
        o.status.code(),
        Some(0),
        "compare with --min-match 99.9 failed for Go {go}:\n{table}{stderr}"
    );
    serde_json::from_str(&std::fs::read_to_string(json).expect("compare wrote its JSON"))
        .expect("compare JSON parses")
}

/// The report's row for one of Go's event types.
fn row<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {r}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn pct(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Every goroutine created in Go's window, with the same creator, and none extra.
fn assert_every_creation_matched(r: &Value) {
    let create = row(r, "GoCreate");
    assert_eq!(create["from"], "NotExist");
    assert_eq!(create["to"], "Runnable");
    assert!(
        n(&create["go"]) > 100,
        "too few creations to judge: {create}"
    );
    assert_eq!(pct(&create["match_pct"]), Some(100.0), "GoCreate: {create}");
    assert_eq!(n(&create["extra"]), 0, "GoCreate: {create}");
}

/// The transitions issue 4 names match 99.9%, and the workload has enough of them to judge.
fn assert_issue_transitions_matched(r: &Value) {
    for (name, from, to) in ISSUE_ROWS {
        let x = row(r, name);
        assert_eq!(x["from"], *from, "{name}");
        assert_eq!(x["to"], *to, "{name}");
        if n(&x["go"]) == 0 {
            continue; // e.g. no preemption in this run: nothing to match
        }
        let p = pct(&x["match_pct"]).expect("match % when Go has events");
        assert!(
            p >= 99.9,
            "{name} ({from}->{to}) matched {p:.2}% < 99.9%: {x}"
        );
    }
    // The sample's workload has all of these every run.
    for name in ["GoStart", "GoBlock", "GoUnblock", "GoDestroy"] {
        assert!(n(&row(r, name)["go"]) > 100, "too few {name} to judge");
    }
}

/// Each GoStart is on the same M and P in both traces. Returns how Go's trace names Ms.
fn assert_gostart_placement(r: &Value, go: &str) -> &'static str {
    let pl = &r["gostart_placement"];
    assert_eq!(n(&pl["go_starts"]), n(&row(r, "GoStart")["go"]));
    let same_m = pct(&pl["same_m_pct"]).expect("same M %");
    let same_p = pct(&pl["same_p_pct"]).expect("same P %");
    assert!(same_m >= 99.9, "GoStart on the same M {same_m:.2}%: {pl}");
    assert!(same_p >= 99.9, "GoStart on the same P {same_p:.2}%: {pl}");
    // Go 1.22+ traces name threads by OS tid; older ones by m.id.
    let identity = if go.starts_with("1.21.") {
        "m.id"
    } else {
        "tid"
    };
    assert_eq!(pl["m_identity"], identity);
    identity
}

/// Nothing was silently dropped: the comparison saw the whole window, on the same clock.
fn assert_whole_window_compared(r: &Value, identity: &str) {
    let w = &r["window"];
    assert!(
        w["end"].as_i64().unwrap() - w["start"].as_i64().unwrap() > 1_000_000,
        "window under 1 ms: {w}"
    );
    assert_eq!(r["go_unknown_lines"], 0, "unrecognised lines in Go's trace");
    assert_eq!(r["go_bad_events"], 0, "unreadable events in Go's trace");
    assert_eq!(r["ours_lost"], 0, "events lost in the ring buffer");
    // Same clock: Go 1.22+ Time is CLOCK_MONOTONIC like ours.
    if identity == "tid" {
        let off = r["clock"]["offset_ns"].as_i64().unwrap();
        assert!(
            off.abs() < 20_000,
            "clock offset {off} ns: not the same clock?"
        );
    }
}

#[test]
fn matches_go_tracer_newest() {
    require_bpf!();
    matches_go_tracer(GO_VERSIONS[0], None);
}

#[test]
fn matches_go_tracer_oldest() {
    require_bpf!();
    matches_go_tracer(GO_VERSIONS[GO_VERSIONS.len() - 1], None);
}

/// GOMAXPROCS changed every round: Ps are destroyed and made mid-run, and when the caller's P
/// goes, procresize moves it to allp[0] (Go's tracer then records a GoStop and a GoStart that
/// no casgstatus makes). Also exercises the probes' cached P ids across procresize.
#[test]
fn matches_go_tracer_across_gomaxprocs_changes() {
    require_bpf!();
    for go in [GO_VERSIONS[0], GO_VERSIONS[GO_VERSIONS.len() - 1]] {
        matches_go_tracer(go, Some("2,4,1,3"));
    }
}
