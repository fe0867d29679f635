//! Running gmp-trace the way the integration tests do: a sample program traced from launch into a
//! scratch directory, its summary JSON and JSONL events read back ([`Sample::trace`] and
//! [`Trace`]), and a recording replayed ([`replay`]). One place decides how a run is started and
//! captured, so each test says only what it traces and what it checks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{build_sample, workspace_root, Variant};

/// The gmp-trace binary under test: `$GMP_TRACE_BIN`, else `target/release/gmp-trace`.
pub fn gmp_trace_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GMP_TRACE_BIN") {
        return PathBuf::from(p);
    }
    let p = workspace_root()
        .join("target")
        .join("release")
        .join("gmp-trace");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release -p gmp-trace` (cargo xtask test does)",
        p.display()
    );
    p
}

/// Reads a JSONL file into values.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("read jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line {l:?}: {e}")))
        .collect()
}

/// A finished gmp-trace run: its output, the summary JSON and the JSONL events it wrote.
pub struct TraceRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// `Null` when the run wrote no summary ([`Trace::no_summary`]).
    pub summary: serde_json::Value,
    /// Empty when the run wrote no JSONL ([`Trace::output`], [`Trace::no_output`]).
    pub events: Vec<serde_json::Value>,
    /// The directory the run's files are in.
    pub dir: PathBuf,
}

/// A fresh scratch directory under target/test-runs/<name>.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = workspace_root().join("target").join("test-runs").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// Runs gmp-trace with `args` plus `-o events.jsonl --summary-json summary.json` in `dir`, then
/// reads both back. Extra environment for the traced program goes in `env`.
pub fn trace(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> TraceRun {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let env: Vec<(OsString, OsString)> = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    run_in(
        dir,
        Some(&dir.join("events.jsonl")),
        Some(&dir.join("summary.json")),
        &args,
        &env,
    )
}

/// The one way a traced run is started: `-o events` and `--summary-json summary` when given,
/// then `args`; the traced program's output captured in `dir`.
fn run_in(
    dir: &Path,
    events: Option<&Path>,
    summary: Option<&Path>,
    args: &[OsString],
    env: &[(OsString, OsString)],
) -> TraceRun {
    let mut cmd = Command::new(gmp_trace_bin());
    if let Some(events) = events {
        cmd.arg("-o").arg(events);
    }
    if let Some(summary) = summary {
        cmd.arg("--summary-json").arg(summary);
    }
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // The traced program inherits these: files, not pipes, so its writes (inittrace prints a
    // line per init task) never wake a reader that could preempt it inside a measured span.
    let (out_path, err_path) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let file = |p: &Path| std::fs::File::create(p).expect("create an output file");
    cmd.stdin(std::process::Stdio::null())
        .stdout(file(&out_path))
        .stderr(file(&err_path));
    let status = cmd.status().expect("run gmp-trace");
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let stderr = read(&err_path);
    assert!(
        !stderr.contains("panicked"),
        "gmp-trace panicked:\n{stderr}"
    );
    let summary = summary.map_or(serde_json::Value::Null, |summary| {
        let text = std::fs::read_to_string(summary)
            .unwrap_or_else(|e| panic!("no summary JSON ({e}); gmp-trace said:\n{stderr}"));
        serde_json::from_str(&text).expect("summary is JSON")
    });
    let events = match events {
        Some(p) if p.extension().is_some_and(|x| x == "jsonl") => read_jsonl(p),
        _ => Vec::new(),
    };
    TraceRun {
        status,
        stdout: read(&out_path),
        stderr,
        summary,
        events,
        dir: dir.to_path_buf(),
    }
}

/// A sample program built with one toolchain in one variant, ready to be traced.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub go: String,
    pub variant: Variant,
    pub bin: PathBuf,
}

impl Sample {
    /// Builds (or finds cached) `tests/go/<name>` with Go `go`.
    pub fn build(name: &str, go: &str, variant: Variant) -> Sample {
        Sample {
            name: name.to_string(),
            go: go.to_string(),
            variant,
            bin: build_sample(name, go, variant),
        }
    }

    /// A launch-mode trace of this sample into the fresh scratch directory `scratch`
    /// (target/test-runs/<scratch>).
    pub fn trace(&self, scratch: &str) -> Trace {
        self.trace_in(&scratch_dir(scratch))
    }

    /// A launch-mode trace of this sample into `dir`, which is kept as it is: for a second run
    /// next to a first one.
    pub fn trace_in(&self, dir: &Path) -> Trace {
        Trace {
            dir: dir.to_path_buf(),
            bin: self.bin.clone(),
            opts: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            events: Some("events.jsonl".into()),
            summary: Some("summary.json".into()),
        }
    }
}

/// One gmp-trace launch of a sample, to be [`run`](Trace::run): by default `-o events.jsonl
/// --summary-json summary.json [opts] -- <sample> [args]`, both outputs in the run's directory.
#[derive(Clone, Debug)]
pub struct Trace {
    dir: PathBuf,
    bin: PathBuf,
    opts: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    events: Option<String>,
    summary: Option<String>,
}

impl Trace {
    /// gmp-trace options (before `--`).
    pub fn opts<S: Into<OsString>>(mut self, opts: impl IntoIterator<Item = S>) -> Self {
        self.opts.extend(opts.into_iter().map(Into::into));
        self
    }

    /// The sample's own arguments (after its path).
    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Environment for gmp-trace and so the traced program.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// `-o <dir>/<file>` instead of events.jsonl; events are read back only from a `.jsonl`.
    pub fn output(mut self, file: &str) -> Self {
        self.events = Some(file.into());
        self
    }

    /// No `-o` at all.
    pub fn no_output(mut self) -> Self {
        self.events = None;
        self
    }

    /// `--summary-json <dir>/<file>` instead of summary.json.
    pub fn summary_file(mut self, file: &str) -> Self {
        self.summary = Some(file.into());
        self
    }

    /// No `--summary-json` at all (the run's summary is `Null`).
    pub fn no_summary(mut self) -> Self {
        self.summary = None;
        self
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<name>`: where to put a file the run writes (a recording, a Go trace).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs gmp-trace and reads back what it wrote.
    pub fn run(&self) -> TraceRun {
        let mut argv = self.opts.clone();
        argv.push("--".into());
        argv.push(self.bin.clone().into());
        argv.extend(self.args.iter().cloned());
        let events = self.events.as_ref().map(|f| self.dir.join(f));
        let summary = self.summary.as_ref().map(|f| self.dir.join(f));
        run_in(
            &self.dir,
            events.as_deref(),
            summary.as_deref(),
            &argv,
            &self.env,
        )
    }
}

/// `gmp-trace replay <rec> --binary <bin> -q` with `outputs` as (flag, path) pairs, e.g.
/// `("-o", events)`.
pub fn replay<P: AsRef<Path>>(rec: &Path, bin: &Path, outputs: &[(&str, P)]) -> Output {
    let mut cmd = Command::new(gmp_trace_bin());
    cmd.arg("replay")
        .arg(rec)
        .arg("--binary")
        .arg(bin)
        .arg("-q");
    for (flag, path) in outputs {
        cmd.arg(flag).arg(path.as_ref());
    }
    cmd.output().expect("run gmp-trace replay")
}

/// The events of one kind.
pub fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The `phase` events of one phase (e.g. "exec", "exit", "mstart_m0").
pub fn phase_events<'a>(
    events: &'a [serde_json::Value],
    phase: &str,
) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "phase" && e["phase"] == phase)
        .collect()
}
