//! Bad input: each case is one clear error line with a remedy, a non-zero exit, no panic, and the
//! target is never started.
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use gmp_trace_tests::{
    build_sample, gmp_trace_bin, scratch_dir, with_go_version, Variant, GO_VERSIONS,
};

fn gmp_trace(args: &[&str]) -> Output {
    Command::new(gmp_trace_bin())
        .args(args)
        .output()
        .expect("run gmp-trace")
}

/// Asserts a failed run whose error mentions every one of `needles`.
fn assert_fails_with(o: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(err.contains("error:"), "no error line: {err}");
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}: {err}");
    }
    assert!(
        o.stdout.is_empty(),
        "the target must not have run: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

#[test]
fn nothing_to_trace() {
    assert_fails_with(&gmp_trace(&[]), &["--pid", "-- CMD"]);
}

#[test]
fn no_such_pid() {
    let mut pid = 4_000_000;
    while Path::new(&format!("/proc/{pid}")).exists() {
        pid += 1;
    }
    assert_fails_with(
        &gmp_trace(&["--pid", &pid.to_string()]),
        &[&format!("no process with pid {pid}")],
    );
}

#[test]
fn not_a_go_binary() {
    let o = gmp_trace(&["--", "/bin/true"]);
    assert_fails_with(&o, &["not a Go program"]);
}

#[test]
fn command_not_found() {
    let o = gmp_trace(&["--", "definitely-not-a-command-xyz"]);
    assert_fails_with(&o, &["command not found"]);
}

#[test]
fn truncated_go_binary() {
    // The first 64 KiB of a real Go binary: an ELF header whose sections point past the end.
    let bin = build_sample("fanout", GO_VERSIONS[0], Variant::Default);
    let bytes = std::fs::read(&bin).unwrap();
    let dir = scratch_dir("bad-input-truncated");
    let p = dir.join("truncated");
    std::fs::write(&p, &bytes[..64 << 10]).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let err = assert_fails_with(&gmp_trace(&["--", p.to_str().unwrap()]), &[]);
    assert!(
        err.lines().count() <= 3,
        "one clear error, not a dump: {err}"
    );
}

#[test]
fn arm64_binary_is_refused_at_trace_time() {
    let bin =
        gmp_trace_tests::build_sample_for("fanout", GO_VERSIONS[0], Variant::Default, "arm64");
    let o = gmp_trace(&["--", bin.to_str().unwrap()]);
    // The kernel cannot exec it either, but gmp-trace must say why before trying.
    assert_fails_with(&o, &["x86_64"]);
}

#[test]
fn unsupported_go_version() {
    // A real Go binary whose build info claims go1.17: older than anything gmp-trace supports.
    let bin = build_sample("fanout", GO_VERSIONS[0], Variant::Default);
    let old = format!("go{}", GO_VERSIONS[0]);
    let dir = scratch_dir("bad-input-old-go");
    let p = with_go_version(
        &bin,
        &old,
        &old.replacen("go1.2", "go1.1", 1),
        &dir.join("oldgo"),
    );
    let o = gmp_trace(&["--", p.to_str().unwrap()]);
    assert_fails_with(&o, &["go1.1", "1.19"]);
}

#[test]
fn unwritable_output() {
    let bin = build_sample("fanout", GO_VERSIONS[0], Variant::Default);
    let o = gmp_trace(&[
        "-o",
        "/nonexistent-dir/events.jsonl",
        "--",
        bin.to_str().unwrap(),
    ]);
    assert_fails_with(&o, &["cannot write", "/nonexistent-dir/events.jsonl"]);
    let dir = scratch_dir("bad-input-unwritable");
    let o = gmp_trace(&[
        "--summary-json",
        dir.to_str().unwrap(),
        "--",
        bin.to_str().unwrap(),
    ]);
    assert_fails_with(&o, &["cannot write the summary"]);
}

#[test]
fn unknown_output_format() {
    let bin = build_sample("fanout", GO_VERSIONS[0], Variant::Default);
    let o = gmp_trace(&["-o", "events.xyz", "--", bin.to_str().unwrap()]);
    assert_fails_with(&o, &["--format"]);
}

#[test]
fn no_privilege() {
    // Run as nobody: no root, no capabilities. Skip only when we cannot switch users (not root).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to drop to an unprivileged user");
        return;
    }
    let bin = build_sample("fanout", GO_VERSIONS[0], Variant::Default);
    let bin = bin.to_str().unwrap();
    // The trace, and the sampled commands (top's view needs no terminal to fail this way).
    for args in [
        vec!["--", bin],
        vec!["top", "--batch", "-n", "1", "--", bin],
        vec!["profile", "-d", "1s", "-o", "/tmp/never.pb.gz", "--", bin],
    ] {
        let o = Command::new(gmp_trace_bin())
            .args(&args)
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run gmp-trace as nobody");
        assert_fails_with(&o, &["root", "CAP_BPF", "CAP_PERFMON", "sudo"]);
    }
}
