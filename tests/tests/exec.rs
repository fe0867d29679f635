//! A traced program that exec's a new image mid-trace (issue 18): gmp-trace says so (a JSONL
//! `exec` event with the new path, the summary's `exec` and a line of text), stops tracing that
//! process cleanly (its probes out while the new image runs on), and reports the first image
//! only; a recording replays the same. The `execer` sample runs 10 goroutines, then execs
//! either itself as a child (same file: the old probes' sites exist in the new image too, so
//! the probes must go quiet at the exec) or another Go program. Needs root and BPF.
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::perfetto::{require_perfetto_tools, trace_processor};
use gmp_trace_tests::pid::{all_link_ids, attach, links_held_by, text_snapshot, Target};
use gmp_trace_tests::{
    build_sample, read_jsonl, replay, require_bpf, scratch_dir, Sample, Variant, GO_VERSIONS,
};
use serde_json::Value;

/// Goroutines the first image runs (execer -workers).
const WORKERS: usize = 10;

/// JSONL creations by main.run (the first image's workers), counted by creation site.
fn workers_created(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| e["kind"] == "go_create" && e["create_fn"] == "main.run")
        .count()
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Launch mode, the program re-execs its own file: gmp-trace exits with the new image's exit
/// code, the summary and events are the first image's, and replay agrees.
#[test]
fn launch_mode_exec_of_the_same_file_ends_the_trace_there() {
    require_bpf!();
    for go in GO_VERSIONS {
        let s = Sample::build("execer", go, Variant::Default);
        let bin = s.bin.to_str().unwrap().to_string();
        let trace = s.trace(&format!("exec-self-{go}"));
        let rec = trace.file("run.gmpt");
        let run = trace
            .opts(["--record", rec.to_str().unwrap()])
            .args(["-workers", &WORKERS.to_string(), "-exec", &bin, "--"])
            .args(["-child", "-workers", "700", "-code", "7"])
            .run();
        assert_eq!(
            run.status.code(),
            Some(7),
            "the new image's exit code: {}",
            run.stderr
        );
        assert!(
            run.stdout.contains("execer child ran 700"),
            "{}",
            run.stdout
        );
        let x = &run.summary["exec"];
        assert_eq!(x["path"], bin.as_str(), "summary exec: {x}");
        // The same file's probe sites exist in the new image: the probes went quiet at the
        // exec (without that, ~4,000 of the new image's events came before the detach).
        assert!(
            x["events_ignored"].as_u64().unwrap() < 100,
            "the new image's events reached the tracer: {x}"
        );
        assert!(
            run.stderr.contains(&format!("exec'd {bin}")),
            "no exec line in the summary:\n{}",
            run.stderr
        );
        // The first image only: its 10 workers and the runtime's few, none of the child's 700.
        assert_eq!(workers_created(&run.events), WORKERS);
        let created = run.summary["goroutines_created"].as_u64().unwrap();
        assert!(
            (WORKERS as u64..WORKERS as u64 + 10).contains(&created),
            "{created}"
        );
        assert_eq!(run.summary["lost_events"], 0);
        let last = run.events.last().unwrap();
        assert_eq!(last["kind"], "exec", "the exec is the last event: {last}");
        assert_eq!(last["path"], bin.as_str());
        assert_eq!(last["ts"], x["ts"]);

        // Offline, the same.
        let dir = run.dir.clone();
        let (sj, ej) = (dir.join("replay.json"), dir.join("replay.jsonl"));
        let o = replay(&rec, &s.bin, &[("--summary-json", &sj), ("-o", &ej)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r = summary(&sj);
        assert_eq!(r["exec"], run.summary["exec"], "replay's exec");
        assert_eq!(r["goroutines_created"], run.summary["goroutines_created"]);
        assert_eq!(read_jsonl(&ej), run.events, "replay's events");
        println!(
            "Go {go}: exec at {} ns, {} events after it ignored",
            x["since_start_ns"], x["events_ignored"]
        );
    }
}

/// Launch mode, the program hands over to another Go program: the Perfetto trace ends with an
/// "exec PATH" instant and loads in the trace processor; none of the new program's goroutines
/// are counted.
#[test]
fn launch_mode_exec_of_another_program_in_perfetto() {
    require_perfetto_tools();
    require_bpf!();
    let go = GO_VERSIONS[0];
    let s = Sample::build("execer", go, Variant::Default);
    let other = build_sample("fanout", go, Variant::Default);
    let other = other.to_str().unwrap();
    let trace = s.trace("exec-other").output("trace.pftrace");
    let run = trace
        .opts(["--level", "lifecycle"])
        .args(["-workers", &WORKERS.to_string(), "-exec", other])
        .run();
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.summary["exec"]["path"], other);
    let created = run.summary["goroutines_created"].as_u64().unwrap();
    assert!(
        created < WORKERS as u64 + 10,
        "fanout's goroutines counted: {created}"
    );
    let q = trace_processor(
        &run.dir.join("trace.pftrace"),
        &["SELECT name FROM slice WHERE name GLOB 'exec /*' AND dur = 0"],
    );
    assert_eq!(q[0].len(), 1, "one exec instant: {:?}", q[0]);
    assert_eq!(q[0][0]["name"], format!("exec {other}"));
}

/// `--pid`: the target execs while attached. gmp-trace stops by itself, takes its probes out
/// while the new image still runs (its code as in the file, no link left), and says so.
#[test]
fn pid_mode_exec_stops_tracing_and_detaches() {
    require_bpf!();
    let bin = build_sample("execer", GO_VERSIONS[0], Variant::Default);
    let binp = bin.to_str().unwrap();
    let mut target = Target(
        Command::new(&bin)
            .args(["-wait", "-workers", "10", "-exec", binp, "--"])
            .args(["-child", "-workers", "300", "-sleep", "4s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start execer"),
    );
    let pid = target.0.id();
    let mut out = BufReader::new(target.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "execer ready");
    let before = text_snapshot(pid);

    let dir = scratch_dir("exec-pid");
    let sj = dir.join("summary.json");
    let tracer = attach(pid, ["--summary-json", sj.to_str().unwrap()], Stdio::null());
    let held = links_held_by(tracer.id());
    target.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let t0 = Instant::now();
    let (status, stderr) = tracer.finish();
    let took = t0.elapsed();
    assert!(status.success(), "{stderr}");
    assert!(
        took < Duration::from_secs(3),
        "gmp-trace took {took:?} to stop after the exec (the new image runs 4 s)"
    );
    // The new image is running (its child line comes after 300 goroutines), untouched.
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "execer child ran 300 goroutines");
    let after = text_snapshot(pid);
    assert_eq!(
        before, after,
        "the new image's code differs from the file's first image"
    );
    let left: Vec<_> = held
        .iter()
        .filter(|l| all_link_ids().contains(&l.id))
        .collect();
    assert!(left.is_empty(), "links left after the exec: {left:?}");

    let s = summary(&sj);
    assert_eq!(s["exec"]["path"], binp, "{}", s["exec"]);
    assert_eq!(s["mode"], "pid");
    assert!(
        stderr.contains(&format!("pid {pid} exec'd a new image ({binp})")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("goroutines still alive"),
        "the first image's goroutines are gone; no read of the new one: {stderr}"
    );
    println!("gmp-trace ended {took:?} after the exec");
    drop(target);
}

/// Aggregate mode counts the frequent events in BPF maps but still streams the exec and its
/// path: the summary names the new image and counts the first image's goroutines only.
#[test]
fn aggregate_mode_sees_the_exec_too() {
    require_bpf!();
    let s = Sample::build("execer", GO_VERSIONS[0], Variant::Default);
    let bin = s.bin.to_str().unwrap().to_string();
    let run = s
        .trace("exec-aggregate")
        .no_output()
        .opts(["--aggregate"])
        .args(["-workers", &WORKERS.to_string(), "-exec", &bin, "--"])
        .args(["-child", "-workers", "700", "-code", "3"])
        .run();
    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert_eq!(run.summary["exec"]["path"], bin.as_str(), "{}", run.summary);
    let created = run.summary["goroutines_created"].as_u64().unwrap();
    assert!(
        created < WORKERS as u64 + 10,
        "the new image's goroutines counted: {created}"
    );
}
