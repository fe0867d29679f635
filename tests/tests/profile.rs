//! `gmp-trace profile` held against a known CPU split: tests/go/burn spends 3 units of CPU in
//! main.burnA for every unit in main.burnB, one goroutine each, and prints both goids. The
//! profile, read back by the real `go tool pprof`, must show that split by function
//! (`-top -cum`), by goroutine and by start function (`-tags`), and `-tagfocus goid=A` must
//! keep burnA's goroutine alone.
//!
//! The command's contract:
//! - `gmp-trace profile --pid N -d 2s -o FILE.pb.gz [--sample-rate HZ]`: exit 0, a gzip pprof.
//! - `gmp-trace profile -d 2s -o FILE -- CMD ARGS`: launch CMD and profile it until it exits or
//!   the duration ends.
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::pid::Target;
use gmp_trace_tests::pprof::{go_pprof, parse_tags, parse_top};
use gmp_trace_tests::{
    build_sample, gmp_trace_bin, require_bpf, scratch_dir, Variant, GO_VERSIONS,
};

/// How far a measured share may be from the 75/25 split burn enforces, in percentage points
/// (sampling noise at 100 Hz over 2 s, and the runtime's own bits, are a few points).
const SLACK: f64 = 10.0;

/// The goids burn printed: `burnA <goid>`, `burnB <goid>`.
#[derive(Debug, Clone, Copy)]
struct Goids {
    a: u64,
    b: u64,
}

fn read_goids(lines: &mut impl Iterator<Item = String>) -> Goids {
    let mut goid = |name: &str| -> u64 {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("burn ended before printing its {name} goid"));
        line.strip_prefix(name)
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or_else(|| panic!("expected `{name} <goid>` from burn, got {line:?}"))
    };
    Goids {
        a: goid("burnA"),
        b: goid("burnB"),
    }
}

fn burn() -> std::path::PathBuf {
    build_sample("burn", GO_VERSIONS[0], Variant::Default)
}

/// Starts `burn -d <d>` and reads its goids.
fn start_burn(d: &str) -> (Target, u32, Goids) {
    let mut target = Target(
        Command::new(burn())
            .args(["-d", d])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start burn"),
    );
    let pid = target.0.id();
    let out = target.0.stdout.take().expect("burn's stdout");
    let mut lines = BufReader::new(out).lines().map_while(Result::ok);
    let goids = read_goids(&mut lines);
    (target, pid, goids)
}

fn profile(args: &[&str]) -> Output {
    let out = Command::new(gmp_trace_bin())
        .arg("profile")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run gmp-trace profile");
    assert!(
        out.status.success(),
        "gmp-trace profile {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `gmp-trace profile -d D -o FILE -- PROG ARGS` (launch mode), which must succeed.
fn profile_launch(d: &str, file: &Path, prog: &Path, args: &[&str]) -> Output {
    let mut all = vec![
        "-d",
        d,
        "-o",
        file.to_str().unwrap(),
        "--",
        prog.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    profile(&all)
}

fn assert_share(what: &str, got: f64, want: f64, report: &str) {
    assert!(
        (got - want).abs() <= SLACK,
        "{what}: {got:.1}%, expected {want}% +-{SLACK}:\n{report}"
    );
}

/// Everything the profile of burn must show, read with `go tool pprof`.
fn assert_burn_profile(file: &Path, goids: Goids) {
    let magic = std::fs::read(file).expect("the profile was written");
    assert_eq!(magic.get(..2), Some(&[0x1f, 0x8b][..]), "not gzip");

    // By function: burnA and burnB share main.spin, so their cumulative time splits 3:1.
    let run = go_pprof(&["-top", "-cum"], file);
    let top = parse_top(&run.stdout);
    let cum = |f: &str| top.rows.get(f).map_or(0.0, |r| r.cum_pct);
    assert_share("main.burnA cum", cum("main.burnA"), 75.0, &run.stdout);
    assert_share("main.burnB cum", cum("main.burnB"), 25.0, &run.stdout);
    assert!(top.rows.contains_key("main.spin"), "{}", run.stdout);

    // By label (`-tags` is an output format of its own: pprof refuses `-top -tags`).
    let run = go_pprof(&["-tags"], file);
    let tags = parse_tags(&run.stdout);
    let start = tags
        .get("start_function")
        .unwrap_or_else(|| panic!("no start_function tag:\n{}", run.stdout));
    let share = |m: &std::collections::BTreeMap<String, f64>, k: &str| *m.get(k).unwrap_or(&0.0);
    assert_share(
        "start_function main.burnA",
        share(start, "main.burnA"),
        75.0,
        &run.stdout,
    );
    assert_share(
        "start_function main.burnB",
        share(start, "main.burnB"),
        25.0,
        &run.stdout,
    );
    let by_goid = tags
        .get("goid")
        .unwrap_or_else(|| panic!("no goid tag:\n{}", run.stdout));
    let (a, b) = (goids.a.to_string(), goids.b.to_string());
    assert_share(
        &format!("goid {a} (burnA)"),
        share(by_goid, &a),
        75.0,
        &run.stdout,
    );
    assert_share(
        &format!("goid {b} (burnB)"),
        share(by_goid, &b),
        25.0,
        &run.stdout,
    );
    let others: f64 = by_goid
        .iter()
        .filter(|(k, _)| **k != a && **k != b)
        .map(|(_, v)| v)
        .sum();
    assert!(
        others <= SLACK,
        "other goroutines hold {others}%:\n{}",
        run.stdout
    );

    // One goroutine alone: burnA's, without a trace of burnB.
    let focus = format!("goid={}", goids.a);
    let run = go_pprof(&["-top", "-cum", "-tagfocus", &focus], file);
    let top = parse_top(&run.stdout);
    let a_row = top
        .rows
        .get("main.burnA")
        .unwrap_or_else(|| panic!("-tagfocus {focus} lost main.burnA:\n{}", run.stdout));
    assert!(
        !top.rows.contains_key("main.burnB"),
        "-tagfocus {focus} kept main.burnB:\n{}",
        run.stdout
    );
    assert!(
        a_row.cum_ns >= 0.9 * top.shown_ns && top.shown_ns > 0.0,
        "-tagfocus {focus}: burnA is not nearly all that is shown:\n{}",
        run.stdout
    );
}

#[test]
fn profile_by_pid_splits_3_to_1() {
    require_bpf!();
    let dir = scratch_dir("profile-pid");
    let file = dir.join("cpu.pb.gz");
    let (_target, pid, goids) = start_burn("4s");
    profile(&[
        "--pid",
        &pid.to_string(),
        "-d",
        "2s",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_burn_profile(&file, goids);
}

#[test]
fn profile_sample_rate_sets_the_period() {
    require_bpf!();
    let dir = scratch_dir("profile-rate");
    let file = dir.join("cpu.pb.gz");
    let (_target, pid, goids) = start_burn("4s");
    profile(&[
        "--pid",
        &pid.to_string(),
        "-d",
        "2s",
        "-o",
        file.to_str().unwrap(),
        "--sample-rate",
        "250",
    ]);
    let raw = go_pprof(&["-raw"], &file).stdout;
    assert!(
        raw.lines().any(|l| l.trim() == "Period: 4000000"),
        "250 Hz is a period of 4 ms:\n{}",
        raw.lines().take(8).collect::<Vec<_>>().join("\n")
    );
    assert_burn_profile(&file, goids);
}

#[test]
fn profile_launch_ends_with_the_program() {
    require_bpf!();
    let dir = scratch_dir("profile-launch-exit");
    let file = dir.join("cpu.pb.gz");
    let burn = burn();
    let t0 = Instant::now();
    let out = profile_launch("30s", &file, &burn, &["-d", "2s"]);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the profile outlived its program by far: {took:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let goids = read_goids(&mut stdout.lines().map(str::to_string));
    assert_burn_profile(&file, goids);
}

#[test]
fn profile_launch_ends_with_the_duration() {
    require_bpf!();
    let dir = scratch_dir("profile-launch-duration");
    let file = dir.join("cpu.pb.gz");
    let burn = burn();
    let out = profile_launch("2s", &file, &burn, &["-d", "4s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let goids = read_goids(&mut stdout.lines().map(str::to_string));
    // The profile covers the 2 s asked for, not the program's 4 s.
    let run = go_pprof(&["-top"], &file);
    let d = parse_top(&run.stdout)
        .duration_ns
        .unwrap_or_else(|| panic!("no Duration in:\n{}", run.stdout));
    assert!(
        (1.5e9..3.0e9).contains(&d),
        "a 2 s profile lasting {d} ns:\n{}",
        run.stdout
    );
    assert_burn_profile(&file, goids);
}

/// A failure: non-zero, no panic, the first stderr line says what went wrong and holds every
/// needle.
fn assert_fails_with(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "succeeded:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let first = err.lines().next().unwrap_or_default();
    for n in needles {
        assert!(first.contains(n), "{n:?} not in {first:?}\n{err}");
    }
}

fn gmp_trace_profile(args: &[&str]) -> Output {
    Command::new(gmp_trace_bin())
        .arg("profile")
        .args(args)
        .output()
        .expect("run gmp-trace profile")
}

#[test]
fn profile_bad_input() {
    let dir = scratch_dir("profile-bad-input");
    let out = dir.join("cpu.pb.gz");
    let out = out.to_str().unwrap();
    // Nothing to profile.
    assert_fails_with(&gmp_trace_profile(&["-o", out]), &["--pid"]);
    // No such process.
    assert_fails_with(
        &gmp_trace_profile(&["--pid", "999999999", "-o", out]),
        &["999999999"],
    );
    // Not a Go program.
    assert_fails_with(
        &gmp_trace_profile(&["-o", out, "--", "/bin/sleep", "1"]),
        &["not a Go program"],
    );
    // An output that cannot be written: said before anything starts.
    let (target, pid, _) = start_burn("10s");
    assert_fails_with(
        &gmp_trace_profile(&[
            "--pid",
            &pid.to_string(),
            "-o",
            "/nonexistent-dir/cpu.pb.gz",
        ]),
        &["cannot write", "/nonexistent-dir/cpu.pb.gz"],
    );
    // No privilege: the sampler needs root or CAP_BPF + CAP_PERFMON.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let o = Command::new(gmp_trace_bin())
            .args([
                "profile",
                "--pid",
                &pid.to_string(),
                "-o",
                "/tmp/gmp-nobody.pb.gz",
            ])
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run gmp-trace profile as nobody");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && !err.contains("panicked"), "{err}");
        assert!(err.contains("root"), "{err}");
    }
    drop(target);
}

/// A system call is charged to the Go code that made it, as Go's own profiler does: the sample
/// program tests/go/sysread spends nearly all its CPU in the kernel, reading /dev/zero from
/// main.readZero. The kernel's part is one `[kernel]` frame whose callers are the Go frames
/// that entered the kernel (read from the thread's saved user registers), not a bare leaf.
#[test]
fn profile_charges_system_calls_to_the_go_code_that_made_them() {
    require_bpf!();
    let dir = scratch_dir("profile-sysread");
    let file = dir.join("cpu.pb.gz");
    let prog = build_sample("sysread", GO_VERSIONS[0], Variant::Default);
    let out = profile_launch("30s", &file, &prog, &["-d", "2s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in the kernel") && !stderr.contains("without a user stack"),
        "{stderr}"
    );

    let run = go_pprof(&["-top", "-cum"], &file);
    let top = parse_top(&run.stdout);
    let row = |f: &str| {
        top.rows
            .get(f)
            .unwrap_or_else(|| panic!("no {f} in the profile:\n{}", run.stdout))
    };
    assert!(
        row("[kernel]").flat_pct >= 50.0,
        "reading /dev/zero is kernel time:\n{}",
        run.stdout
    );
    assert!(
        row("main.readZero").cum_pct >= 80.0,
        "the reads are main.readZero's:\n{}",
        run.stdout
    );
    assert!(row("os.(*File).Read").cum_pct >= 80.0, "{}", run.stdout);

    // The kernel samples alone: every one of them sits under main.readZero.
    let run = go_pprof(&["-top", "-cum", "-focus", "^\\[kernel\\]$"], &file);
    let top = parse_top(&run.stdout);
    let under = top.rows.get("main.readZero").map_or(0.0, |r| r.cum_ns);
    assert!(
        top.shown_ns > 0.0 && under >= 0.95 * top.shown_ns,
        "kernel samples not under main.readZero:\n{}",
        run.stdout
    );
}

/// Work done on the thread's system stack for a goroutine (a `systemstack` call) is charged to
/// that goroutine's Go code, as Go's own profiler charges it: tests/go/stacker's main.stacker
/// calls runtime.Stack(buf, true), whose traceback of 2,000 goroutines runs on g0. The walk
/// goes from the g0 frames through runtime.systemstack into the goroutine's own stack (from
/// where systemstack saved it), and the profile is held against Go's own of the same run.
#[test]
fn profile_follows_systemstack_calls_to_their_goroutine_like_go() {
    require_bpf!();
    let dir = scratch_dir("profile-stacker");
    let ours = dir.join("cpu.pb.gz");
    let theirs = dir.join("go.pb.gz");
    let prog = build_sample("stacker", GO_VERSIONS[0], Variant::Default);
    profile_launch(
        "30s",
        &ours,
        &prog,
        &["-d", "2s", "-cpuprofile", theirs.to_str().unwrap()],
    );
    let cum = |file: &Path, f: &str| {
        let run = go_pprof(&["-top", "-cum"], file);
        let top = parse_top(&run.stdout);
        (top.rows.get(f).map_or(0.0, |r| r.cum_pct), run.stdout)
    };
    let (go_share, go_report) = cum(&theirs, "main.stacker");
    assert!(
        go_share >= 80.0,
        "Go's own profile: main.stacker at {go_share}%:\n{go_report}"
    );
    let (share, report) = cum(&ours, "main.stacker");
    assert!(
        (share - go_share).abs() <= SLACK,
        "main.stacker: {share:.1}% here, {go_share:.1}% in Go's own profile:\n{report}\n{go_report}"
    );
    let (via, _) = cum(&ours, "runtime.systemstack");
    assert!(
        via >= 0.8 * share,
        "not through runtime.systemstack:\n{report}"
    );
    // Go's profiles show runtime.systemstack and then its caller, without the switch marker.
    assert!(!report.contains("systemstack_switch"), "{report}");

    let run = go_pprof(&["-tags"], &ours);
    let tags = parse_tags(&run.stdout);
    let start = tags
        .get("start_function")
        .and_then(|m| m.get("main.stacker"))
        .copied()
        .unwrap_or(0.0);
    assert!(
        start >= 80.0,
        "start_function main.stacker at {start}%:\n{}",
        run.stdout
    );
}
