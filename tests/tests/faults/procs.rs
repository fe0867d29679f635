//! The processes of the fault tests: tests/go/checksum started for a `--pid` run or launched
//! by gmp-trace, what it has printed (its rounds, each checked by itself), signals, waits with
//! timeouts (a hang fails a case instead of stalling it), and the tracer's outputs read back.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::pid::{Attached, Target};
use gmp_trace_tests::{build_sample, gmp_trace_bin, Variant, GO_VERSIONS};
use serde_json::Value;

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Makes this test process the reaper of its orphaned descendants, so a target launched by a
/// tracer that was then killed is reparented to us and its exit status can be read.
pub fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on this process.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
}

/// Waits for a child (or a reparented orphan) by pid, up to `timeout`.
pub fn wait_pid(pid: u32, timeout: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a valid int.
        let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
        if r == pid as i32 {
            return Some(ExitStatus::from_raw(status));
        }
        assert!(
            r == 0,
            "waitpid({pid}): {}",
            std::io::Error::last_os_error()
        );
        if t0.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if t0.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What checksum has printed so far.
#[derive(Debug, Default)]
pub struct Rounds {
    pub ok: u64,
    pub bad: Vec<String>,
    pub done: Option<u64>,
}

pub fn rounds(out: &Path) -> Rounds {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut r = Rounds::default();
    for l in text.lines() {
        if l.starts_with("round ") && l.ends_with(" OK") {
            r.ok += 1;
        } else if let Some(n) = l.strip_prefix("checksum done ") {
            r.done = n.parse().ok();
        } else if !l.starts_with("checksum pid ") {
            r.bad.push(l.to_string());
        }
    }
    r
}

/// Waits for checksum's first line in `out` and returns its pid.
pub fn wait_pid_line(out: &Path) -> u32 {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if let Some(pid) = text
            .lines()
            .find_map(|l| l.strip_prefix("checksum pid "))
            .and_then(|p| p.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "checksum never started: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn checksum_bin() -> PathBuf {
    build_sample("checksum", GO_VERSIONS[0], Variant::Default)
}

/// tests/go/checksum started by the test (for --pid runs), its stdout in a file.
pub struct Checksum {
    pub target: Target,
    pub pid: u32,
    pub out: PathBuf,
    pub stdin: Option<ChildStdin>,
}

pub fn start_checksum(dir: &Path, args: &[&str]) -> Checksum {
    let out = dir.join("target-stdout.txt");
    let mut child = Command::new(checksum_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out).expect("create"))
        .spawn()
        .expect("start checksum");
    let stdin = child.stdin.take();
    let pid = wait_pid_line(&out);
    assert_eq!(pid, child.id());
    Checksum {
        target: Target(child),
        pid,
        out,
        stdin,
    }
}

impl Checksum {
    /// Sends the line that starts (-wait) or ends (-until-stdin) the rounds.
    pub fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin piped");
        stdin.write_all(b"go\n").expect("write to checksum");
        stdin.flush().expect("flush");
    }

    /// Ends an -until-stdin run: it must finish with every round right; returns the rounds.
    pub fn finish_ok(mut self) -> u64 {
        self.go();
        let st = wait_child(&mut self.target.0, Duration::from_secs(30)).expect("checksum ended");
        assert_target_finished_ok(st, &self.out)
    }
}

pub fn assert_target_finished_ok(st: ExitStatus, out: &Path) -> u64 {
    let r = rounds(out);
    assert!(st.success(), "checksum ended with {st}: {r:?}");
    assert!(r.bad.is_empty(), "checksum printed: {:?}", r.bad);
    assert_eq!(r.done, Some(r.ok), "every round OK then done: {r:?}");
    r.ok
}

/// The target runs on: alive, and more rounds OK after `ms` ms.
pub fn assert_still_running(pid: u32, out: &Path, ms: u64) {
    let before = rounds(out).ok;
    std::thread::sleep(Duration::from_millis(ms));
    assert!(
        Path::new(&format!("/proc/{pid}/status")).exists(),
        "pid {pid} is gone"
    );
    let r = rounds(out);
    assert!(r.bad.is_empty(), "checksum printed: {:?}", r.bad);
    assert!(r.ok > before, "no round in {ms} ms: {r:?}");
}

/// gmp-trace launching checksum (`gmp-trace OPTS -- checksum ARGS`): its stdout (which checksum
/// inherits) and stderr in files, its stdin (checksum's too) a pipe.
pub struct Launched {
    pub tracer: Child,
    pub target: u32,
    pub out: PathBuf,
    pub err: PathBuf,
    pub stdin: Option<ChildStdin>,
}

pub fn launch(dir: &Path, opts: &[&str], args: &[&str]) -> Launched {
    let (out, err) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let file = |p: &Path| std::fs::File::create(p).expect("create");
    let mut tracer = Command::new(gmp_trace_bin())
        .args(opts)
        .arg("--")
        .arg(checksum_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(file(&out))
        .stderr(file(&err))
        .spawn()
        .expect("start gmp-trace");
    let stdin = tracer.stdin.take();
    // The command is held until every probe is in: its first line means attached.
    let target = wait_pid_line(&out);
    Launched {
        tracer,
        target,
        out,
        err,
        stdin,
    }
}

impl Launched {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }
}

pub fn summary(path: &Path, stderr: &str) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no summary JSON at {} ({e}): {stderr}", path.display()));
    serde_json::from_str(&text).expect("the summary is JSON")
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Waits for an attached tracer to end (reading its stderr), up to `timeout`: a hang is a
/// failure, not a stuck test.
pub fn finish_within(tracer: Attached, timeout: Duration) -> (ExitStatus, String) {
    let id = tracer.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(tracer.finish());
    });
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        signal(id, libc::SIGKILL);
        panic!("gmp-trace (pid {id}) did not end within {timeout:?}")
    })
}

/// Events written so far (complete JSONL lines) and how many of them are goroutine creations.
pub fn events_so_far(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    let creates = lines.iter().filter(|l| l.contains("\"go_create\"")).count();
    (lines.len(), creates)
}

/// A process's state letter (/proc/PID/stat): `T` when stopped.
pub fn state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| {
            t.rsplit(')')
                .next()?
                .split_whitespace()
                .next()?
                .chars()
                .next()
        })
        .unwrap_or('?')
}

pub fn stop(pid: u32) {
    signal(pid, libc::SIGSTOP);
    let t0 = Instant::now();
    while state(pid) != 'T' {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "pid {pid} did not stop"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
