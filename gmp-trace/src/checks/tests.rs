use serde_json::{json, Value};

use super::*;

fn summary(pid: u32, exe: &str, lost: u64, p99: u64) -> Value {
    json!({
        "pid": pid, "binary": exe, "lost_events": lost, "threads": 4,
        "events_by_kind": {"go_status": 10},
        "sched_latency": {"count": 10, "p50_ns": 1000, "p99_ns": p99, "max_ns": p99},
    })
}

fn asserts(exprs: &[&str]) -> Vec<Assertion> {
    exprs.iter().map(|e| expr::parse(e).unwrap()).collect()
}

#[test]
fn all_and_any_over_processes() {
    let (a, b) = (
        summary(1, "/bin/a", 0, 3_000_000),
        summary(2, "/bin/b", 5, 1_000_000),
    );
    let ps = [ProcessSummary::of(&a), ProcessSummary::of(&b)];
    let out = evaluate(
        &asserts(&[
            "lost_events == 0",
            "any:lost_events == 0",
            "any:lost_events > 9",
            "sched_latency_p99 < 2ms",
        ]),
        &ps,
    );
    assert_eq!(out.len(), 8);
    let oks: Vec<(bool, bool)> = out.iter().map(|o| (o.met, o.ok)).collect();
    assert_eq!(
        oks,
        [
            (true, true),
            (false, false), // all: b fails
            (true, true),
            (false, true), // any: a carries it
            (false, false),
            (false, false), // any: nobody
            (false, false),
            (true, true), // a's p99 is 3 ms
        ]
    );
    assert_eq!(
        out[1].process,
        Some(ProcessId {
            pid: 2,
            exe: "/bin/b".into()
        })
    );
    assert_eq!(out[1].value, Some(5.0));
    assert!(out[4]
        .reason
        .as_deref()
        .unwrap()
        .contains("no process meets it"));
    assert!(failed(&out));
    assert_eq!(exit_code(&out, 0), 3);
    assert_eq!(exit_code(&out[2..4], 7), 7);

    let lines = failure_lines(&out);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(
        lines[0],
        "gmp-trace: assertion failed: lost_events == 0: pid 2 (/bin/b): lost_events is 5, bound == 0"
    );
    assert_eq!(
        lines[3],
        "gmp-trace: assertion failed: sched_latency_p99 < 2ms: pid 1 (/bin/a): sched_latency_p99 \
         is 3.000 ms (3000000 ns), bound < 2.000 ms (2000000 ns)"
    );
}

#[test]
fn absent_values_fail_with_their_reason() {
    let s = json!({"pid": 9, "binary": "/x", "exit_code": null,
                   "sched_latency": {"count": 0, "p50_ns": 0, "p99_ns": 0, "max_ns": 0},
                   "events_by_kind": {"go_create": 1}});
    let out = evaluate(
        &asserts(&["sched_latency_p99 < 2ms", "exit_code == 0"]),
        &[ProcessSummary::of(&s)],
    );
    assert!(out.iter().all(|o| !o.ok && o.value.is_none()));
    let lines = failure_lines(&out);
    assert!(
        lines[0].contains("has no value (no scheduling latency: --level lifecycle"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("launched the program"), "{}", lines[1]);
}

#[test]
fn no_process_is_no_pass() {
    let out = evaluate(&asserts(&["lost_events == 0", "any:threads_max < 5"]), &[]);
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .all(|o| !o.ok && o.reason.as_deref() == Some("no process was traced")));
}

#[test]
fn summary_json_shape() {
    let a = summary(1, "/bin/a", 0, 10);
    let out = evaluate(&asserts(&["lost_events == 0"]), &[ProcessSummary::of(&a)]);
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(
        v,
        json!([{"expr": "lost_events == 0", "quantifier": "all", "key": "lost_events", "op": "==",
                "bound": 0.0, "value": 0.0, "process": {"pid": 1, "exe": "/bin/a"},
                "met": true, "ok": true}])
    );
}

/// The report parses as XML (python3's parser), with the structure CI systems read, whatever
/// the names hold.
#[test]
fn junit_is_well_formed() {
    let nasty = "/tmp/a&b <c> \"d\" 'e'\u{1}\tf/prog";
    let (a, b) = (summary(1, nasty, 0, 10), summary(2, "/bin/b", 3, 10));
    let out = evaluate(
        &asserts(&[
            "lost_events == 0",
            "threads_max <= 4",
            "any:lost_events > 1",
        ]),
        &[ProcessSummary::of(&a), ProcessSummary::of(&b)],
    );
    let xml = junit::render(&out);
    let check = r#"
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
assert root.tag == "testsuites", root.tag
print(root.get("tests"), root.get("failures"))
for s in root.findall("testsuite"):
    cases = s.findall("testcase")
    fails = [c for c in cases if c.find("failure") is not None]
    assert int(s.get("tests")) == len(cases) and int(s.get("failures")) == len(fails)
    exe = [p.get("value") for p in s.iter("property") if p.get("name") == "exe"][0]
    print(s.get("name"), "|", exe, "|", len(cases), len(fails), "|",
          ";".join(c.get("name") + "=" + (c.find("failure").get("message") if c.find("failure") is not None else "ok") for c in cases))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", check])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (with xml.etree) is needed to check the JUnit report");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), xml.as_bytes()).unwrap();
    let res = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "not well-formed:\n{xml}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "6 1");
    let want_exe = "/tmp/a&b <c> \"d\" 'e'\u{fffd}\tf/prog";
    assert_eq!(
        lines[1],
        format!("prog (pid 1) | {want_exe} | 3 0 | lost_events == 0=ok;threads_max <= 4=ok;any:lost_events > 1=ok")
    );
    assert_eq!(
        lines[2],
        "b (pid 2) | /bin/b | 3 1 | lost_events == 0=lost_events is 3, bound == 0;\
         threads_max <= 4=ok;any:lost_events > 1=ok"
    );
}

#[test]
fn values_for_people() {
    assert_eq!(show(2e6, Some(Unit::Nanos)), "2.000 ms (2000000 ns)");
    assert_eq!(show(10.0, Some(Unit::Nanos)), "10 ns");
    assert_eq!(show(1.5, Some(Unit::Millis)), "1.5 ms");
    assert_eq!(show(1.0, Some(Unit::Bool)), "true");
    assert_eq!(show(20.0, Some(Unit::Count)), "20");
}

/// The options as clap reads them: repeatable, on trace and replay, bad ones refused before
/// anything runs.
#[test]
fn options_on_trace_and_replay() {
    use clap::Parser as _;

    use crate::cli::{Args, ReplayArgs};
    let a = Args::try_parse_from([
        "gmp-trace",
        "--assert",
        "lost_events == 0",
        "--assert",
        "any:leak_sites<1",
        "--junit",
        "r.xml",
        "--",
        "prog",
    ])
    .unwrap();
    assert_eq!(a.out.asserts.len(), 2);
    assert_eq!(a.out.asserts[1].quantifier, Quantifier::Any);
    let r =
        ReplayArgs::try_parse_from(["replay", "x.gmpt", "--assert", "threads_max <= 20"]).unwrap();
    assert_eq!(r.out.asserts[0].key, "threads_max");
    let e =
        Args::try_parse_from(["gmp-trace", "--assert", "lost_event == 0", "--", "p"]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("did you mean: lost_events"), "{e}");
    let e = Args::try_parse_from(["gmp-trace", "--junit", "r.xml", "--", "p"]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
}
