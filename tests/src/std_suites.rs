//! Go's own std test suites as a tracer workload: a package's test binary (`go test -c`) run with
//! `-test.short -test.v` in its package directory, once untraced and once under gmp-trace per
//! mode, and the per-test outcomes compared. These suites exercise the scheduler in ways no
//! sample of ours does (timers, netpoll, exec, signals, profiling, thousands of short-lived
//! goroutines), and a tracer that perturbs a program shows as a test that changes its result.
//!
//! Shared by `tests/tests/std_suites.rs` (a few packages, in `cargo xtask test`) and
//! `cargo xtask reliability --only std` (the whole matrix, docs/reliability.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{gmp_trace_bin, go_binary, workspace_root};

/// The toolchains the reliability suite runs the std suites of, newest first.
pub const STD_SUITE_VERSIONS: &[&str] = &["1.27.3", "1.24.11", "1.21.13", "1.19.8"];

/// The std packages whose tests are run.
pub const STD_SUITE_PACKAGES: &[&str] = &[
    "sync",
    "context",
    "time",
    "strings",
    "encoding/json",
    "os/exec",
    "net",
    "bufio",
    "runtime/pprof",
];

/// A test whose result depends on how fast the scheduler is, so that running 15-30x slower
/// under gmp-trace can change it without the tracer doing anything wrong. Listed here with the
/// reason, and reported as such in every table; a difference in any other test is a failure.
pub struct TimingDependent {
    pub package: &'static str,
    /// The test's name as `-test.v` prints it (subtests as `Parent/sub`).
    pub test: &'static str,
    pub reason: &'static str,
}

/// The known timing-dependent tests (see [`TimingDependent`]).
pub const TIMING_DEPENDENT: &[TimingDependent] = &[];

/// How a suite is run: untraced, or under gmp-trace with these options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Untraced,
    Lifecycle,
    Sched,
    Full,
    Aggregate,
}

impl Mode {
    /// Every traced mode: each level, and aggregate mode.
    pub const TRACED: [Mode; 4] = [Mode::Lifecycle, Mode::Sched, Mode::Full, Mode::Aggregate];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Untraced => "untraced",
            Mode::Lifecycle => "lifecycle",
            Mode::Sched => "sched",
            Mode::Full => "full",
            Mode::Aggregate => "aggregate",
        }
    }

    /// gmp-trace's options for this mode (none when untraced).
    fn gmp_trace_opts(self) -> &'static [&'static str] {
        match self {
            Mode::Untraced => &[],
            Mode::Lifecycle => &["--level", "lifecycle"],
            Mode::Sched => &["--level", "sched"],
            Mode::Full => &["--level", "full"],
            Mode::Aggregate => &["--aggregate"],
        }
    }
}

/// A test's result as `-test.v` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// One run of a package's test binary.
#[derive(Debug)]
pub struct SuiteRun {
    pub mode: Mode,
    /// The exit code of the test binary (gmp-trace exits with its target's code).
    pub exit_code: Option<i32>,
    /// Every test and subtest `-test.v` reported, by name.
    pub tests: BTreeMap<String, Outcome>,
    pub wall: Duration,
    /// Events gmp-trace saw (streamed, plus those counted in BPF in aggregate mode); 0 untraced.
    pub events: u64,
    pub lost: u64,
    /// The run's files: stdout.txt (the tests' output), stderr.txt, summary.json.
    pub dir: PathBuf,
}

impl SuiteRun {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.tests.values().filter(|o| **o == outcome).count()
    }

    /// The end of the tests' output, for a failure message.
    pub fn output_tail(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let (out, err) = (read("stdout.txt"), read("stderr.txt"));
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "stdout (end):\n{}\nstderr (end):\n{}",
            tail(&out),
            tail(&err)
        )
    }
}

/// GOROOT of an installed toolchain (the test binaries run in `$GOROOT/src/<pkg>`).
pub fn goroot(version: &str) -> PathBuf {
    let go = go_binary(version);
    let root = go
        .parent()
        .and_then(Path::parent)
        .expect("go is in $GOROOT/bin");
    root.to_path_buf()
}

/// The test binary of `pkg` for Go `version`, built with `go test -c` once and kept under
/// target/std-tests/ (the toolchains are fixed releases, so the path is the cache key).
pub fn std_test_binary(version: &str, pkg: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target")
        .join("std-tests")
        .join(format!("go{version}"));
    let out = dir.join(format!("{}.test", pkg.replace('/', "_")));
    // Tests of one process run on several threads and may want the same binary: one builds it
    // while the others wait (the temporary name is per process, so two threads building at once
    // would each move the other's file away).
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if out.exists() {
        return out;
    }
    std::fs::create_dir_all(&dir).expect("create target/std-tests");
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        pkg.replace('/', "_"),
        std::process::id()
    ));
    let mut go = go_command(version);
    go.args(["test", "-c", "-o"]).arg(&tmp);
    // Debian's Go 1.19 has no $GOROOT/lib/time/zoneinfo.zip, which time's tests load
    // America/Los_Angeles from (they panic at init without it); the embedded copy stands in.
    if !goroot(version).join("lib/time/zoneinfo.zip").exists() {
        go.arg("-tags=timetzdata");
    }
    let o = go.arg(pkg).output().expect("run go test -c");
    assert!(
        o.status.success(),
        "go test -c {pkg} with Go {version} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &out).expect("move the test binary into place");
    out
}

/// `go` of `version` with the environment the tests run in too: this toolchain first on PATH
/// and as GOROOT (os/exec and runtime/pprof tests run `go`), offline, caches inside target/.
fn go_command(version: &str) -> Command {
    let mut cmd = Command::new(go_binary(version));
    go_env(&mut cmd, version);
    cmd
}

fn go_env(cmd: &mut Command, version: &str) {
    let root = goroot(version);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![root.join("bin")];
    paths.extend(std::env::split_paths(&path));
    let target = workspace_root().join("target");
    cmd.env("PATH", std::env::join_paths(paths).expect("PATH joins"))
        .env("GOROOT", &root)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", target.join("go-cache"))
        .env("GOPATH", target.join("go-path"));
}

/// Runs the test binary of `pkg` (Go `version`) in `mode`, its files in `dir`/<mode>. `extra`
/// are more test flags (e.g. `-test.trace=...`) and `gmp_extra` more gmp-trace options (e.g.
/// `--record ...`).
pub fn run_suite(
    version: &str,
    pkg: &str,
    mode: Mode,
    dir: &Path,
    extra: &[&str],
    gmp_extra: &[&str],
) -> SuiteRun {
    let bin = std_test_binary(version, pkg);
    let dir = dir.join(mode.name());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the run's directory");
    let summary = dir.join("summary.json");
    let mut cmd = if mode == Mode::Untraced {
        Command::new(&bin)
    } else {
        let mut c = Command::new(gmp_trace_bin());
        c.arg("-q")
            .arg("--summary-json")
            .arg(&summary)
            .args(mode.gmp_trace_opts())
            .args(gmp_extra)
            .arg("--")
            .arg(&bin);
        c
    };
    // A hung test panics itself after the timeout, with every goroutine's stack: a hang under
    // the tracer is a result to see, not a stuck suite.
    cmd.args(["-test.short", "-test.v", "-test.timeout=10m"])
        .args(extra);
    go_env(&mut cmd, version);
    let file = |name: &str| std::fs::File::create(dir.join(name)).expect("create an output file");
    let pkg_dir = goroot(version).join("src").join(pkg);
    // PWD as a shell sets it: os/exec's TestImplicitPWD checks children see the real one.
    cmd.env("PWD", &pkg_dir)
        .current_dir(&pkg_dir)
        .stdin(Stdio::null())
        .stdout(file("stdout.txt"))
        .stderr(file("stderr.txt"));
    let start = Instant::now();
    let status = cmd.status().expect("run the test binary");
    let wall = start.elapsed();
    let out = std::fs::read(dir.join("stdout.txt")).unwrap_or_default();
    let (events, lost) = if mode == Mode::Untraced {
        (0, 0)
    } else {
        summary_counts(&summary, &dir)
    };
    SuiteRun {
        mode,
        exit_code: status.code(),
        tests: parse_test_v(&String::from_utf8_lossy(&out)),
        wall,
        events,
        lost,
        dir,
    }
}

/// (events, lost events) from a traced run's summary JSON.
fn summary_counts(summary: &Path, dir: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(summary).unwrap_or_else(|e| {
        let err = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
        panic!(
            "no summary JSON at {} ({e}); stderr:\n{err}",
            summary.display()
        )
    });
    let s: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let events = n(&s["events"]) + n(&s["aggregate"]["counted_events"]);
    let lost = s["lost_events"]
        .as_u64()
        .unwrap_or_else(|| panic!("no lost_events in {}", summary.display()));
    (events, lost)
}

/// Every `--- PASS/FAIL/SKIP: Name (t)` line of `-test.v` output (subtests are indented).
pub fn parse_test_v(out: &str) -> BTreeMap<String, Outcome> {
    let mut tests = BTreeMap::new();
    for line in out.lines() {
        let line = line.trim_start();
        let (outcome, rest) = if let Some(r) = line.strip_prefix("--- PASS: ") {
            (Outcome::Pass, r)
        } else if let Some(r) = line.strip_prefix("--- FAIL: ") {
            (Outcome::Fail, r)
        } else if let Some(r) = line.strip_prefix("--- SKIP: ") {
            (Outcome::Skip, r)
        } else {
            continue;
        };
        let name = rest.split(" (").next().unwrap_or(rest).trim();
        tests.insert(name.to_string(), outcome);
    }
    tests
}

/// How a traced run's results differ from the untraced run's.
#[derive(Debug, Default)]
pub struct Difference {
    /// Tests whose outcome differs (or that ran in only one of the runs): name, untraced,
    /// traced. Known timing-dependent tests are in `timing` instead.
    pub unexplained: Vec<(String, Option<Outcome>, Option<Outcome>)>,
    /// Differences in tests listed in [`TIMING_DEPENDENT`].
    pub timing: Vec<(String, Option<Outcome>, Option<Outcome>)>,
    /// The exit codes differ (and it is not explained by timing-dependent tests alone).
    pub exit_codes: Option<(Option<i32>, Option<i32>)>,
}

impl Difference {
    pub fn is_same(&self) -> bool {
        self.unexplained.is_empty() && self.exit_codes.is_none()
    }
}

/// Compares a traced run of `pkg` with the untraced one, test by test.
pub fn difference(pkg: &str, untraced: &SuiteRun, traced: &SuiteRun) -> Difference {
    let mut d = Difference::default();
    let names: std::collections::BTreeSet<&String> =
        untraced.tests.keys().chain(traced.tests.keys()).collect();
    for name in names {
        let (u, t) = (
            untraced.tests.get(name).copied(),
            traced.tests.get(name).copied(),
        );
        if u == t {
            continue;
        }
        let known = TIMING_DEPENDENT.iter().any(|k| {
            k.package == pkg && (k.test == name || name.starts_with(&format!("{}/", k.test)))
        });
        let entry = (name.clone(), u, t);
        if known {
            d.timing.push(entry);
        } else {
            d.unexplained.push(entry);
        }
    }
    if untraced.exit_code != traced.exit_code && (d.timing.is_empty() || !d.unexplained.is_empty())
    {
        d.exit_codes = Some((untraced.exit_code, traced.exit_code));
    }
    d
}

/// Short text for a list of differences: `TestX: pass -> FAIL, ...`.
pub fn describe(diffs: &[(String, Option<Outcome>, Option<Outcome>)]) -> String {
    let o = |x: &Option<Outcome>| match x {
        Some(Outcome::Pass) => "pass",
        Some(Outcome::Fail) => "FAIL",
        Some(Outcome::Skip) => "skip",
        None => "absent",
    };
    diffs
        .iter()
        .map(|(n, u, t)| format!("{n}: {} -> {}", o(u), o(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fidelity check on a std suite: the test binary run under gmp-trace `--record` (level full)
/// with Go's own tracer on (`-test.trace`), and `gmp-trace compare --min-match 99.9` of the two.
pub struct Fidelity {
    pub run: SuiteRun,
    /// compare's exit code: 0 when every row matched at least 99.9%.
    pub compare_code: Option<i32>,
    /// compare's table, as printed.
    pub table: String,
    /// compare's JSON report (docs/fidelity.md).
    pub report: serde_json::Value,
}

/// Runs the [`Fidelity`] check of `pkg`'s tests with Go `version`, its files in `dir`/full.
/// Go's trace is read by the newest toolchain's `go tool trace`, which reads every version's.
pub fn fidelity(version: &str, pkg: &str, dir: &Path) -> Fidelity {
    let full = dir.join("full");
    let (rec, go_trace, json) = (
        full.join("run.gmpt"),
        full.join("go.trace"),
        full.join("compare.json"),
    );
    let trace_flag = format!("-test.trace={}", go_trace.display());
    let rec_arg = rec.to_str().expect("UTF-8 path");
    let run = run_suite(
        version,
        pkg,
        Mode::Full,
        dir,
        &[&trace_flag],
        &["--record", rec_arg],
    );
    let o = Command::new(gmp_trace_bin())
        .arg("compare")
        .arg("--recording")
        .arg(&rec)
        .arg("--go-trace")
        .arg(&go_trace)
        .arg("--go")
        .arg(go_binary(crate::GO_VERSIONS[0]))
        .args(["--min-match", "99.9", "--detail", "3", "--json"])
        .arg(&json)
        .output()
        .expect("run gmp-trace compare");
    let table = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    Fidelity {
        run,
        compare_code: o.status.code(),
        table,
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: Mode, exit: i32, out: &str) -> SuiteRun {
        SuiteRun {
            mode,
            exit_code: Some(exit),
            tests: parse_test_v(out),
            wall: Duration::ZERO,
            events: 0,
            lost: 0,
            dir: PathBuf::new(),
        }
    }

    #[test]
    fn parses_tests_and_subtests() {
        let t = parse_test_v(
            "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== CONT  TestB/x\n    --- FAIL: TestB/x (0.02s)\n\
             --- FAIL: TestB (0.02s)\n--- SKIP: TestC (0.00s)\n    x_test.go:3: --- PASS: not a result\nPASS\n",
        );
        assert_eq!(t.len(), 4, "{t:?}");
        assert_eq!(t["TestA"], Outcome::Pass);
        assert_eq!(t["TestB/x"], Outcome::Fail);
        assert_eq!(t["TestB"], Outcome::Fail);
        assert_eq!(t["TestC"], Outcome::Skip);
    }

    #[test]
    fn a_changed_or_missing_test_is_a_difference() {
        let u = run(
            Mode::Untraced,
            0,
            "--- PASS: TestA (0s)\n--- PASS: TestB (0s)\n",
        );
        let same = run(
            Mode::Full,
            0,
            "--- PASS: TestB (0s)\n--- PASS: TestA (1s)\n",
        );
        assert!(difference("sync", &u, &same).is_same());
        let failed = run(
            Mode::Full,
            1,
            "--- PASS: TestA (0s)\n--- FAIL: TestB (0s)\n",
        );
        let d = difference("sync", &u, &failed);
        assert!(!d.is_same());
        assert_eq!(describe(&d.unexplained), "TestB: pass -> FAIL");
        assert_eq!(d.exit_codes, Some((Some(0), Some(1))));
        let missing = run(Mode::Full, 0, "--- PASS: TestA (0s)\n");
        assert_eq!(
            describe(&difference("sync", &u, &missing).unexplained),
            "TestB: pass -> absent"
        );
    }
}
