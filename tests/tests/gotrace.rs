//! `--format go` (issue 19): our traces in Go's execution-trace format, read back by Go 1.27.3's
//! `go tool trace -d=parsed` for targets of every Go version here, in launch and `--pid` mode,
//! and remade byte for byte by replay. Needs root and BPF (skips with the reason otherwise).
//!
//! What the file must say, from our summary of the same run: every goroutine and creation, and
//! every transition count. The documented differences (docs/formats.md): runtime-internal
//! waits Go's tracer does not show are left out (ours Running->Waiting->Running pairs), and
//! where the event stream missed a step, gmp-trace says on stderr how many events it added,
//! rewrote or left out; each moves one count by one.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use gmp_trace_tests::pid::{attach, Target};
use gmp_trace_tests::{
    build_sample, gmp_trace_bin, go_binary, replay, require_bpf, scratch_dir, Sample, Variant,
    ALL_GO_VERSIONS, GO_VERSIONS,
};
use serde_json::Value;

/// What `go tool trace -d=parsed` made of a file.
#[derive(Debug, Default)]
struct Parsed {
    /// Goroutine transitions by "From->To" (Undetermined->X, the status of a goroutine that
    /// existed before, included).
    transitions: BTreeMap<String, u64>,
    goroutines: usize,
    procs_changes: u64,
    /// Stack frames in the program's own package (the start functions GoCreate carries).
    main_frames: u64,
    /// RangeBegin names (GC, stop-the-world).
    ranges: Vec<String>,
}

/// Reads `file` with Go 1.27.3's trace reader; panics with its error when it rejects the file.
fn go_parse(file: &Path) -> Parsed {
    let o = Command::new(go_binary(GO_VERSIONS[0]))
        .args(["tool", "trace", "-d=parsed"])
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go tool trace");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && stderr.trim().is_empty(),
        "go tool trace rejected {}:\n{stderr}",
        file.display()
    );
    let mut p = Parsed::default();
    let mut goids = std::collections::HashSet::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if line.contains("Name=\"/sched/gomaxprocs:threads\"") {
            p.procs_changes += 1;
        }
        if line.starts_with("\tmain.") {
            p.main_frames += 1;
        }
        if let Some(name) = line.split(" RangeBegin ").nth(1) {
            p.ranges.push(name.to_string());
        }
        let Some(rest) = line.split(" StateTransition ").nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(goid) = words.find_map(|w| w.strip_prefix("GoID=")) else {
            continue; // a P's transition
        };
        goids.insert(goid.to_string());
        if let Some(t) = words.next() {
            *p.transitions.entry(t.to_string()).or_default() += 1;
        }
    }
    p.goroutines = goids.len();
    p
}

/// The numbers of gmp-trace's "Go trace: ..." line (added, rewritten, left out, hidden waits),
/// zeros without one.
fn made_up(stderr: &str) -> (u64, u64, u64, u64) {
    let Some(line) = stderr.lines().find(|l| l.contains("Go trace:")) else {
        return (0, 0, 0, 0);
    };
    let n = |before: &str| -> u64 {
        let head = line.split(before).next().unwrap_or("");
        head.rsplit(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .and_then(|w| w.parse().ok())
            .unwrap_or(0)
    };
    (
        n(" goroutine events added"),
        n(" transitions written from another state"),
        n(" left out;"),
        n(" runtime-internal waits"),
    )
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The file's transitions against our summary's: equal row by row, but for the waits Go's
/// tracer does not show (ours end Waiting->Running, which Go has not) and, where gmp-trace
/// said so, the events it added, rewrote or left out.
fn assert_transitions_agree(p: &Parsed, summary: &Value, stderr: &str, what: &str) {
    let ours: BTreeMap<String, u64> = summary["transitions"]
        .as_object()
        .expect("summary has transitions")
        .iter()
        .map(|(k, v)| (k.clone(), num(v)))
        .collect();
    let (added, rewritten, left_out, _) = made_up(stderr);
    let hidden = ours.get("Waiting->Running").copied().unwrap_or(0);
    let mut expected = ours.clone();
    expected.remove("Waiting->Running");
    if let Some(n) = expected.get_mut("Running->Waiting") {
        *n = n.saturating_sub(hidden);
    }
    let rows: std::collections::BTreeSet<&String> = expected
        .keys()
        .chain(p.transitions.keys())
        .filter(|k| !k.starts_with("Undetermined->"))
        .collect();
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let off: u64 = rows
        .iter()
        .map(|k| get(&p.transitions, k).abs_diff(get(&expected, k)))
        .sum();
    // Each event added, rewritten or left out moves at most two rows by one.
    assert!(
        off <= 2 * (added + rewritten + left_out),
        "{what}: Go's transitions {:?} differ from ours {ours:?} by {off} (gmp-trace made up \
         {added}, rewrote {rewritten}, left out {left_out}):\n{stderr}",
        p.transitions
    );
}

/// Launch mode: the file reads, has our goroutines and creations, and replay remakes it.
fn launch(sample: &str, go: &str, variant: Variant, args: &[&str]) -> Parsed {
    let s = Sample::build(sample, go, variant);
    let t = s.trace(&format!("gotrace-{sample}-{go}-{variant:?}"));
    let rec = t.file("run.gmpt");
    let run = t
        .clone()
        .output("x.gotrace")
        .opts(["--record", rec.to_str().unwrap()])
        .args(args)
        .run();
    let what = format!("{sample} Go {go} {variant:?}");
    assert!(
        run.status.success(),
        "{what}: gmp-trace failed:\n{}",
        run.stderr
    );
    let file = run.dir.join("x.gotrace");
    let p = go_parse(&file);
    let created = num(&run.summary["goroutines_created"]);
    assert!(created > 0, "{what}: nothing created");
    assert_eq!(
        p.transitions
            .get("NotExist->Runnable")
            .copied()
            .unwrap_or(0),
        created,
        "{what}: GoCreate events"
    );
    // Launch mode: nothing existed before, so every goroutine is one we saw created.
    assert_eq!(p.goroutines as u64, created, "{what}: goroutines");
    assert_transitions_agree(&p, &run.summary, &run.stderr, &what);
    assert!(p.procs_changes >= 1, "{what}: no GOMAXPROCS in the file");

    // Replay makes the same file from the recording.
    let again = run.dir.join("replayed.gotrace");
    let o = replay(&rec, &s.bin, &[("-o", &again)]);
    assert!(o.status.success(), "{what}: replay failed");
    assert!(
        std::fs::read(&file).unwrap() == std::fs::read(&again).unwrap(),
        "{what}: replay wrote a different Go trace"
    );
    p
}

#[test]
fn launch_every_go_version() {
    require_bpf!();
    for go in ALL_GO_VERSIONS {
        let p = launch("traced", go, Variant::Default, &["-rounds", "3"]);
        assert_named(&p, go);
    }
}

#[test]
fn launch_stripped_and_pie() {
    require_bpf!();
    let p = launch("fanout", GO_VERSIONS[0], Variant::Stripped, &[]);
    assert_named(&p, "stripped");
    // Enough events for several 64 KiB batches on one thread.
    let p = launch("pingpong", GO_VERSIONS[0], Variant::Pie, &["20000"]);
    assert_named(&p, "PIE");
    let size = std::fs::metadata(
        scratch_path(&format!("gotrace-pingpong-{}-Pie", GO_VERSIONS[0])).join("x.gotrace"),
    )
    .unwrap()
    .len();
    assert!(size > 2 * 65536, "pingpong's trace is only {size} bytes");
}

/// Tight loops of system calls, some of which lose their P to sysmon (GoSyscallEndBlocked;
/// from Go 1.26 an exit the model takes back when exitsyscall finds the P gone).
#[test]
fn launch_syscalls_losing_p() {
    require_bpf!();
    for go in GO_VERSIONS {
        let p = launch("sysread", go, Variant::Default, &[]);
        assert!(
            p.transitions.get("Running->Syscall").copied().unwrap_or(0) > 1000,
            "Go {go}: {:?}",
            p.transitions
        );
    }
}

/// `go tool trace` names goroutines by their start function: the creations carry it.
fn assert_named(p: &Parsed, what: &str) {
    assert!(
        p.main_frames > 0,
        "{what}: no goroutine started in package main"
    );
}

/// A GC cycle (churn runs one before it reads its commands) and its stops of the world.
#[test]
fn launch_gc_and_stw() {
    require_bpf!();
    for go in GO_VERSIONS {
        let p = launch("churn", go, Variant::Default, &[]);
        let has = |s: &str| p.ranges.iter().any(|r| r.contains(s));
        assert!(
            has("GC concurrent mark phase"),
            "Go {go}: no GC in {:?}",
            p.ranges
        );
        assert!(has("stop-the-world"), "Go {go}: no STW in {:?}", p.ranges);
    }
}

/// target/test-runs/<name>, as `scratch_dir` made it.
fn scratch_path(name: &str) -> std::path::PathBuf {
    gmp_trace_tests::workspace_root()
        .join("target")
        .join("test-runs")
        .join(name)
}

/// `--pid` mode on parker built with `go`: the goroutines alive at attach come in as statuses.
fn attached(go: &str) {
    let bin = build_sample("parker", go, Variant::Default);
    let mut target = Target(
        Command::new(&bin)
            .arg("-loop")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start parker"),
    );
    let pid = target.0.id();
    let mut line = String::new();
    BufReader::new(target.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let dir = scratch_dir(&format!("gotrace-pid-{go}"));
    let (file, summary) = (dir.join("x.gotrace"), dir.join("summary.json"));
    let tracer = attach(
        pid,
        [
            "--duration",
            "600ms",
            "-o",
            file.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    let (status, stderr) = tracer.finish();
    let what = format!("parker --pid Go {go}");
    assert!(status.success(), "{what}: gmp-trace failed:\n{stderr}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let p = go_parse(&file);
    let created = num(&s["goroutines_created"]);
    assert!(created > 0, "{what}: nothing created");
    assert_eq!(
        p.transitions
            .get("NotExist->Runnable")
            .copied()
            .unwrap_or(0),
        created,
        "{what}: GoCreate events"
    );
    let before: u64 = p
        .transitions
        .iter()
        .filter(|(k, _)| k.starts_with("Undetermined->"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        before > 0,
        "{what}: no goroutine alive at attach in the file"
    );
    assert_eq!(p.goroutines as u64, created + before, "{what}: goroutines");
    assert_transitions_agree(&p, &s, &stderr, &what);
}

#[test]
fn pid_every_go_version() {
    require_bpf!();
    for go in ALL_GO_VERSIONS {
        attached(go);
    }
}

/// Without goroutine transitions there is no Go trace to write: said before anything runs.
#[test]
fn lifecycle_level_refused() {
    let dir = scratch_dir("gotrace-lifecycle");
    let o = Command::new(gmp_trace_bin())
        .args(["--level", "lifecycle", "-o"])
        .arg(dir.join("x.gotrace"))
        .args(["--", "/bin/true"])
        .output()
        .expect("run gmp-trace");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "--level lifecycle with --format go ran"
    );
    assert!(stderr.contains("--format go needs"), "{stderr}");
    assert!(!dir.join("x.gotrace").exists(), "wrote a file anyway");
}
