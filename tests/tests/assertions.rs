//! `--assert` and `--junit` on real traces of the sample Go programs: bounds that pass and fail
//! with the exit codes CI relies on (the target's own, 1, 2, 3), every operator, durations,
//! `all:`/`any:`, keys a run did not measure, the JUnit report read back by a real XML parser,
//! replay of a recording with assertions, and docs/ci.md's two CI jobs run as written.
//!
//! The JUnit reports and the CI YAML are read with python3 (xml.etree, PyYAML), which the
//! machines have (CPython 3.11 with PyYAML); a missing one fails the test, saying so.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gmp_trace_tests::pid::{attach, Target};
use gmp_trace_tests::{
    gmp_trace_bin, require_bpf, scratch_dir, workspace_root, Sample, Variant, GO_VERSIONS,
};
use serde_json::Value;

#[path = "assertions/ci_doc.rs"]
mod ci_doc;

fn fanout() -> Sample {
    Sample::build("fanout", GO_VERSIONS[0], Variant::Default)
}

/// Runs python3 on `script` with `arg`, returning its stdout parsed as JSON.
fn python_json(script: &str, arg: &Path) -> Value {
    let o = Command::new("python3")
        // PyYAML: the interpreter's own, or the copy `cargo xtask bootstrap` installs there.
        .env("PYTHONPATH", gmp_trace_tests::tools_dir().join("pyyaml"))
        .args(["-c", script])
        .arg(arg)
        .output()
        .expect("python3 is needed to read the JUnit report and the CI YAML");
    assert!(
        o.status.success(),
        "python3 failed on {}:\n{}",
        arg.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A JUnit report read with python3's XML parser: the counts and cases CI systems display.
fn junit(path: &Path) -> Value {
    const READ: &str = r#"
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suites = []
for s in root.findall("testsuite"):
    cases = []
    for c in s.findall("testcase"):
        f = c.find("failure")
        cases.append({"name": c.get("name"), "classname": c.get("classname"),
                      "failure": None if f is None else f.get("message")})
    props = {p.get("name"): p.get("value") for p in s.iter("property")}
    suites.append({"name": s.get("name"), "tests": int(s.get("tests")),
                   "failures": int(s.get("failures")), "props": props, "cases": cases})
print(json.dumps({"tests": int(root.get("tests")), "failures": int(root.get("failures")),
                  "suites": suites}))
"#;
    python_json(READ, path)
}

fn code(o: &std::process::ExitStatus) -> i32 {
    o.code().expect("gmp-trace ended by a signal")
}

fn asserts(exprs: &[&str]) -> Vec<String> {
    exprs
        .iter()
        .flat_map(|e| ["--assert".to_string(), e.to_string()])
        .collect()
}

/// Passing bounds leave the target's exit code; the summary, its text and the JUnit report say
/// each passed. The same recording replayed with bounds at the run's exact values checks every
/// operator both ways, durations, `any:` and a key a replay has no value for: exit 3, one
/// stderr line per failure naming the key, value, bound and process.
#[test]
fn bounds_pass_and_fail_on_a_real_trace() {
    require_bpf!();
    let s = fanout();
    let t = s.trace("assert-fanout").args(["20"]);
    let (rec, xml) = (t.file("run.gmpt"), t.file("report.xml"));
    let pass = [
        "lost_events == 0",
        "goroutines_created >= 40",
        "goroutines_exited > 39",
        "goroutines_live_at_exit <= 10",
        "leak_sites == 0",
        "sched_latency_p99 < 10s",
        "sched_latency_max >= 1ns",
        "threads_max != 0",
        "any:gc_cycles < 1000",
        "all:exit_code == 0",
        "events_by_kind.go_create >= 40",
    ];
    let mut opts = asserts(&pass);
    opts.extend(["--record".into(), rec.display().to_string()]);
    opts.extend(["--junit".into(), xml.display().to_string()]);
    let run = t.opts(opts).run();
    assert_eq!(code(&run.status), 0, "{}", run.stderr);
    assert!(run.stdout.contains("started 40 goroutines"));
    let outcomes = run.summary["assertions"].as_array().unwrap();
    assert_eq!(outcomes.len(), pass.len());
    let pid = run.summary["pid"].as_u64().unwrap();
    for (o, expr) in outcomes.iter().zip(pass) {
        assert_eq!(o["expr"], expr);
        assert_eq!(o["ok"], true, "{o}");
        assert_eq!(o["process"]["pid"].as_u64(), Some(pid));
        assert!(o["value"].is_number(), "{o}");
    }
    let created = run.summary["goroutines_created"].as_f64().unwrap();
    assert_eq!(outcomes[1]["value"].as_f64(), Some(created));
    assert!(run.stderr.contains(&format!(
        "assertions {} of {} passed",
        pass.len(),
        pass.len()
    )));
    assert!(!run.stderr.contains("assertion failed"), "{}", run.stderr);
    let j = junit(&xml);
    assert_eq!(
        (j["tests"].as_u64(), j["failures"].as_u64()),
        (Some(11), Some(0))
    );
    let suite = &j["suites"][0];
    assert_eq!(suite["props"]["pid"], pid.to_string());
    assert_eq!(suite["props"]["exe"], s.bin.display().to_string());
    assert_eq!(suite["cases"][0]["name"], "lost_events == 0");
    assert_eq!(suite["cases"][0]["classname"], "gmp-trace.fanout");

    // Replayed: the same summary, so exact values are known.
    let n = created as u64;
    let exact: Vec<String> = ["==", "!=", "<", "<=", ">", ">="]
        .iter()
        .map(|op| format!("goroutines_created {op} {n}"))
        .collect();
    let mut exprs: Vec<&str> = exact.iter().map(String::as_str).collect();
    exprs.extend([
        "duration_ns < 1us",       // fails: the run took longer
        "sched_latency_p99 < 10s", // passes
        "any:lost_events > 0",     // fails: no process lost any
        "attach_ms < 10s",         // no value in a replay: fails with the reason
        "counts_are_lower_bounds == false",
    ]);
    let dir = scratch_dir("assert-fanout-replay");
    let (summary, xml2) = (dir.join("summary.json"), dir.join("report.xml"));
    let out = Command::new(gmp_trace_bin())
        .arg("replay")
        .arg(&rec)
        .args(["--binary".as_ref(), s.bin.as_os_str()])
        .args(["-q", "--summary-json"])
        .arg(&summary)
        .arg("--junit")
        .arg(&xml2)
        .args(asserts(&exprs))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out.status), 3, "{stderr}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let ok: Vec<bool> = v["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(
        ok,
        [true, false, false, true, false, true, false, true, false, false, true]
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("gmp-trace: assertion failed: "))
        .collect();
    assert_eq!(lines.len(), 6, "{stderr}");
    let who = format!("pid {pid} ({})", s.bin.display());
    assert_eq!(
        lines[0],
        format!(
            "gmp-trace: assertion failed: goroutines_created != {n}: {who}: goroutines_created \
             is {n}, bound != {n}"
        )
    );
    assert!(lines[3].contains("duration_ns is ") && lines[3].contains("bound < 1.0 us (1000 ns)"));
    assert!(
        lines[4].contains("no process meets it (any:)"),
        "{}",
        lines[4]
    );
    assert!(lines[5].contains("attach_ms has no value (measured by live sessions only"));
    let j = junit(&xml2);
    assert_eq!(
        (j["tests"].as_u64(), j["failures"].as_u64()),
        (Some(11), Some(6))
    );
    assert_eq!(j["suites"][0]["failures"].as_u64(), Some(6));
    let fail = &j["suites"][0]["cases"][1];
    assert_eq!(fail["name"], format!("goroutines_created != {n}"));
    assert_eq!(
        fail["failure"],
        format!("goroutines_created is {n}, bound != {n}")
    );
}

/// With every assertion passing gmp-trace exits with the target's own code; a failing one makes
/// it 3 whatever the target's code; the summary keeps the target's.
#[test]
fn exit_code_is_the_targets_unless_an_assertion_fails() {
    require_bpf!();
    let s = fanout();
    // fanout exits 2 on a bad argument.
    let run = s
        .trace("assert-exit-target")
        .args(["-5"])
        .opts(asserts(&["lost_events == 0"]))
        .run();
    assert_eq!(code(&run.status), 2, "{}", run.stderr);
    let run = s
        .trace("assert-exit-fail")
        .args(["-5"])
        .opts(asserts(&["lost_events == 0", "exit_code == 0"]))
        .run();
    assert_eq!(code(&run.status), 3, "{}", run.stderr);
    assert_eq!(run.summary["exit_code"], 2);
    assert!(
        run.stderr.contains("assertion failed: exit_code == 0"),
        "{}",
        run.stderr
    );
}

/// Usage errors exit 2 before anything runs (the target is not started); gmp-trace's own
/// failures exit 1.
#[test]
fn usage_errors_exit_2_and_tracer_errors_1() {
    let s = fanout();
    let dir = scratch_dir("assert-usage");
    let gmp = |args: &[&str]| -> Output {
        Command::new(gmp_trace_bin())
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let bin = s.bin.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--assert", "lost_event == 0", "--", bin],
            "did you mean: lost_events",
        ),
        (vec!["--assert", "leaks == 0", "--", bin], "unknown key"),
        (
            vec!["--assert", "sched_latency_p99 < 2", "--", bin],
            "give a unit",
        ),
        (
            vec!["--assert", "lost_events = 0", "--", bin],
            "has no comparison",
        ),
        (vec!["--junit", "r.xml", "--", bin], "--assert"),
        (vec!["--no-such-option", "--", bin], "unexpected argument"),
        (
            vec!["replay", "x.gmpt", "--assert", "nope > 1"],
            "unknown key",
        ),
    ] {
        let o = gmp(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o.status), 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: the target ran");
    }
    require_bpf!();
    // Tracer errors: not a Go program, a recording that is not there, an unwritable report
    // (found before the target runs).
    let o = gmp(&["--assert", "lost_events == 0", "--", "/bin/true"]);
    assert_eq!(code(&o.status), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let o = gmp(&[
        "replay",
        "/nonexistent/x.gmpt",
        "--assert",
        "lost_events == 0",
    ]);
    assert_eq!(code(&o.status), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let o = gmp(&[
        "--assert",
        "lost_events == 0",
        "--junit",
        "/nonexistent-dir/r.xml",
        "--",
        bin,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o.status), 1, "{err}");
    assert!(err.contains("JUnit report"), "{err}");
    assert!(o.stdout.is_empty(), "the target ran");
}

/// A key the run did not measure fails with the reason: latency and leaks at --level lifecycle.
#[test]
fn unmeasured_keys_fail_with_the_reason() {
    require_bpf!();
    let run = fanout()
        .trace("assert-lifecycle")
        .args(["10"])
        .opts(["--level", "lifecycle", "-q"])
        .opts(asserts(&[
            "sched_latency_p99 < 10s",
            "leak_sites == 0",
            "lost_events == 0",
        ]))
        .run();
    assert_eq!(code(&run.status), 3, "{}", run.stderr);
    let a = run.summary["assertions"].as_array().unwrap();
    assert_eq!(a[0]["value"], Value::Null);
    assert!(a[0]["reason"]
        .as_str()
        .unwrap()
        .contains("--level lifecycle"));
    assert_eq!(a[1]["ok"], false);
    assert_eq!(a[2]["ok"], true);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("assertion failed"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert!(lines[0]
        .contains("sched_latency_p99 has no value (no scheduling latency: --level lifecycle"));
}

/// `leaky`, attached with --stacks while it leaks: the leak keys see the blocked goroutines by
/// creation site and by where they block; `exit_code` has no value in --pid mode.
#[test]
fn leaks_of_a_running_program() {
    require_bpf!();
    let s = Sample::build("leaky", GO_VERSIONS[0], Variant::Default);
    let mut target = Target(
        Command::new(&s.bin)
            .env("LEAK_EVERY_MS", "20")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    BufReader::new(target.0.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("ready"), "{ready}");
    let dir = scratch_dir("assert-leaky");
    let (summary, xml) = (dir.join("summary.json"), dir.join("report.xml"));
    let mut args: Vec<String> = ["--stacks", "-d", "1s", "--summary-json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(summary.display().to_string());
    args.extend(["--junit".into(), xml.display().to_string()]);
    args.extend(asserts(&[
        "leak_sites == 0",
        "leaked_goroutines >= 8",
        "any:blocked_sites >= 1",
        "exit_code == 0",
    ]));
    let (status, err) = attach(target.0.id(), &args, Stdio::null()).finish();
    assert_eq!(code(&status), 3, "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let a = v["assertions"].as_array().unwrap();
    // main.poolWorker's 8 and main.leaked's goroutines at least.
    assert!(a[0]["value"].as_f64().unwrap() >= 2.0, "{}", a[0]);
    assert_eq!(a[0]["ok"], false);
    assert_eq!(a[1]["ok"], true, "{}", a[1]);
    assert_eq!(a[2]["ok"], true, "{}", a[2]);
    assert_eq!(
        (a[3]["ok"].as_bool(), &a[3]["value"]),
        (Some(false), &Value::Null)
    );
    // Named as the summary names the process (`--pid`: its /proc/PID/exe).
    let who = format!("pid {} ({})", target.0.id(), v["binary"].as_str().unwrap());
    assert!(
        err.contains(&format!(
            "assertion failed: leak_sites == 0: {who}: leak_sites is "
        )),
        "{err}"
    );
    let j = junit(&xml);
    assert_eq!(
        (j["tests"].as_u64(), j["failures"].as_u64()),
        (Some(4), Some(2))
    );
}

/// `-f -- go test ./...` over tests/go/multipkg: each followed process (the `go` command, every
/// test binary) is checked on its own entry of `processes[]`: an `any:` bound only test binaries
/// meet passes, the same bound as `all:` fails naming the `go` command, and the JUnit report
/// has a testsuite per process.
#[test]
fn followed_processes_are_checked_one_by_one() {
    require_bpf!();
    let root = gmp_trace_tests::std_suites::goroot(GO_VERSIONS[0]);
    let target = workspace_root().join("target");
    let dir = scratch_dir("assert-follow");
    let report = dir.join("report");
    std::fs::create_dir_all(&report).unwrap();
    let (sum, xml) = (dir.join("s.json"), dir.join("report.xml"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![root.join("bin")];
    paths.extend(std::env::split_paths(&path));
    let spawned = "goroutines_by_start_fn.example.com/multipkg.Spawn.func1 >= 1";
    let go_test = |gmp: bool| {
        let mut cmd = if gmp {
            let mut c = Command::new(gmp_trace_bin());
            c.args(["-f", "-q", "--summary-json"]).arg(&sum);
            c.arg("--junit").arg(&xml);
            c.args(asserts(&[
                "lost_events == 0",
                &format!("any:{spawned}"),
                &format!("all:{spawned}"),
            ]));
            c.args(["--", "go"]);
            c
        } else {
            Command::new(root.join("bin/go"))
        };
        cmd.args(["test", "-count=1", "-vet=off", "./..."])
            .current_dir(workspace_root().join("tests/go/multipkg"))
            .env("PATH", std::env::join_paths(&paths).unwrap())
            .env("GOROOT", &root)
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", target.join("go-cache"))
            .env("GOPATH", target.join("go-path"))
            .env("MULTIPKG_REPORT", &report);
        cmd.output().expect("run go test")
    };
    // Untraced first, so the traced run follows test binaries, not compilers.
    let warm = go_test(false);
    assert!(warm.status.success(), "{warm:?}");
    let out = go_test(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&sum).unwrap()).unwrap();
    let ps = v["processes"].as_array().unwrap();
    assert!(
        ps.len() >= 4,
        "the go command and three test binaries: {}",
        ps.len()
    );
    let a = v["assertions"].as_array().unwrap();
    assert_eq!(a.len(), 3 * ps.len());
    let of = |expr: &str| -> Vec<&Value> { a.iter().filter(|o| o["expr"] == expr).collect() };
    assert!(of("lost_events == 0").iter().all(|o| o["ok"] == true));
    assert!(of(&format!("any:{spawned}"))
        .iter()
        .all(|o| o["ok"] == true));
    let all = of(&format!("all:{spawned}"));
    let go_cmd = ps
        .iter()
        .find(|p| p["comm"] == "go")
        .expect("the go command");
    let failing: Vec<&Value> = all.iter().copied().filter(|o| o["ok"] == false).collect();
    assert!(
        failing.iter().any(|o| o["process"]["pid"] == go_cmd["pid"]),
        "{failing:?}"
    );
    for o in all.iter().filter(|o| o["ok"] == true) {
        let p = ps.iter().find(|p| p["pid"] == o["process"]["pid"]).unwrap();
        assert!(p["comm"].as_str().unwrap().ends_with(".test"), "{p}");
    }
    let lines = stderr
        .lines()
        .filter(|l| l.contains("assertion failed: all:"))
        .count();
    assert_eq!(lines, failing.len(), "{stderr}");
    assert!(stderr.contains(&format!(
        "assertion failed: all:{spawned}: pid {} ({})",
        go_cmd["pid"],
        go_cmd["exe"].as_str().unwrap()
    )));
    let j = junit(&xml);
    assert_eq!(j["suites"].as_array().unwrap().len(), ps.len());
    assert_eq!(j["failures"].as_u64(), Some(failing.len() as u64));
}
