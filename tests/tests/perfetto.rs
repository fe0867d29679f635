//! Perfetto output of live runs: `gmp-trace -o trace.pftrace -- fanout N` read back by Perfetto's
//! own trace processor (offline WebAssembly build, tests/perfetto/tp.js) and compared with the
//! summary JSON of the same run. Needs root and BPF (skips with the reason otherwise); needs
//! Node.js and the trace processor from `cargo xtask bootstrap` (fails without them).
use std::collections::BTreeMap;

use gmp_trace_tests::{
    require_bpf, require_perfetto_tools, trace_processor, Sample, Variant, GO_VERSIONS,
    PERFETTO_IMPORT_PROBLEMS_SQL,
};
use serde_json::{Map, Value};

/// The rows of one trace-processor query.
type Rows = [Map<String, Value>];

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// What each check reads from the trace, by index.
const QUERIES: [&str; 9] = [
    PERFETTO_IMPORT_PROBLEMS_SQL,
    // 1: one track per goroutine created.
    "SELECT COUNT(*) AS n FROM track t JOIN track grp ON t.parent_id = grp.id \
     WHERE grp.name = 'Goroutines'",
    // 2: the threads, joined to `thread` by tid, in the traced process.
    "SELECT thread.tid AS tid, thread.name AS name, process.pid AS pid FROM thread \
     JOIN thread_track USING (utid) JOIN process USING (upid) ORDER BY thread.tid",
    // 3: goroutines created, by creating function (docs/perfetto.md's query).
    "SELECT EXTRACT_ARG(arg_set_id, 'debug.created_by') AS created_by, COUNT(*) AS n \
     FROM slice WHERE name = 'go' GROUP BY created_by",
    // 4: flows by kind.
    "SELECT so.name AS kind, COUNT(*) AS n FROM flow f \
     JOIN slice so ON f.slice_out = so.id GROUP BY so.name",
    // 5: startup phases.
    "SELECT s.name AS name FROM slice s JOIN track t ON s.track_id = t.id \
     WHERE t.name = 'Startup' ORDER BY s.ts",
    // 6: counters at the end.
    "SELECT t.name AS name, c.value AS value FROM counter c \
     JOIN counter_track t ON c.track_id = t.id WHERE c.ts = (SELECT MAX(ts) FROM counter)",
    // 7: every user goroutine ran.
    "SELECT COUNT(DISTINCT t.id) AS n FROM slice s JOIN track t ON s.track_id = t.id \
     WHERE t.name GLOB 'G* main.*' AND s.name = 'Running'",
    // 8: nothing left open, M slices never nested.
    "SELECT SUM(dur < 0) AS open, MAX(CASE WHEN s.name GLOB 'G*' THEN depth END) AS d \
     FROM slice s JOIN thread_track tt ON s.track_id = tt.id",
];

fn fanout_pftrace(go: &str) {
    require_perfetto_tools();
    require_bpf!();
    let n = 40;
    let run = Sample::build("fanout", go, Variant::Default)
        .trace(&format!("perfetto-fanout-{go}"))
        .opts(["-q"])
        .output("trace.pftrace")
        .args([n.to_string()])
        .env("GOGC", "off")
        .run();
    let stderr = &run.stderr;
    assert!(run.status.success(), "gmp-trace failed: {stderr}");
    assert_eq!(run.stdout, format!("started {} goroutines\n", 2 * n));
    let s = &run.summary;
    assert_eq!(s["lost_events"], 0, "events were lost: {stderr}");

    let q = trace_processor(&run.dir.join("trace.pftrace"), &QUERIES);
    assert!(q[0].is_empty(), "import problems: {:?}", q[0]);
    assert_eq!(int(&q[1][0]["n"]), int(&s["goroutines_created"]));
    assert_thread_tracks(&q[2], s);
    assert_creators(&q[3], n);
    assert_flows(&q[4], s, n);
    assert_startup_slices(&q[5], s);
    assert_counters_at_end(&q[6], s);
    assert_eq!(int(&q[7][0]["n"]), 2 * n);
    assert_eq!(int(&q[8][0]["open"]), 0);
    assert_eq!(int(&q[8][0]["d"]), 0);
}

/// Every M seen starting has a track, named for its M and tid, in the traced process.
fn assert_thread_tracks(rows: &Rows, s: &Value) {
    let threads: Vec<(i64, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                int(&r["tid"]),
                r["name"].as_str().unwrap_or("").to_owned(),
                int(&r["pid"]),
            )
        })
        .collect();
    let want: Vec<(i64, String, i64)> = s["thread_list"]
        .as_array()
        .expect("thread_list in the summary")
        .iter()
        .map(|t| {
            let tid = int(&t["tid"]);
            (
                tid,
                format!("M{} (tid {tid})", int(&t["m"])),
                int(&s["pid"]),
            )
        })
        .collect();
    // (Once, in CI, sysmon's M had no mstart event: the summary's threads, read failures and
    // probes say more if it comes back.)
    assert_eq!(
        threads, want,
        "threads {} read failures {} probes {}",
        s["thread_list"], s["read_failures"], s["probes"]
    );
}

/// main.main creates the `n` workers, each worker one child.
fn assert_creators(rows: &Rows, n: i64) {
    let by: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| {
            (
                r["created_by"].as_str().unwrap_or("").to_owned(),
                int(&r["n"]),
            )
        })
        .collect();
    assert_eq!(by.get("main.main"), Some(&n), "{by:?}");
    assert_eq!(by.get("main.worker"), Some(&n), "{by:?}");
}

/// A `go` arrow per creation; one newm arrow per M seen starting that some newm created. An M
/// whose newm came just before the process exited may never start: its newm has no arrow.
fn assert_flows(rows: &Rows, s: &Value, n: i64) {
    let flows: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| (r["kind"].as_str().unwrap().to_owned(), int(&r["n"])))
        .collect();
    assert!(flows.get("go").copied().unwrap_or(0) >= 2 * n, "{flows:?}");
    let started_by_newm = s["thread_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["created_by"].is_null())
        .count() as i64;
    let newm_flows = flows.get("newm").copied().unwrap_or(0);
    assert_eq!(newm_flows, started_by_newm, "{flows:?}");
    assert!(
        newm_flows >= 1 && newm_flows <= int(&s["events_by_kind"]["new_m"]),
        "{flows:?} vs {}",
        s["events_by_kind"]
    );
}

/// The Startup track runs from exec to exit, with the init tasks as the summary orders them.
fn assert_startup_slices(rows: &Rows, s: &Value) {
    let phases: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(phases.first(), Some(&"exec"), "{phases:?}");
    assert!(phases.contains(&"main.main"), "{phases:?}");
    let inits: Vec<&str> = phases
        .iter()
        .filter_map(|p| p.strip_prefix("init "))
        .collect();
    let order: Vec<&str> = s["init_order"]
        .as_array()
        .expect("init_order in the summary")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        inits, order,
        "init tasks named and ordered as in the summary"
    );
    assert_eq!(phases.last(), Some(&"exit"), "{phases:?}");
}

/// The counters end where the summary says: goroutines by state, threads, GOMAXPROCS.
fn assert_counters_at_end(rows: &Rows, s: &Value) {
    let at_end: BTreeMap<String, f64> = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect();
    for (state, k) in s["states_at_end"].as_object().unwrap() {
        assert_eq!(
            at_end.get(&format!("Goroutines {state}")).copied(),
            k.as_f64(),
            "{state} at end: {at_end:?}"
        );
    }
    assert_eq!(at_end.get("Threads").copied(), s["threads"].as_f64());
    assert_eq!(at_end.get("GOMAXPROCS").copied(), s["gomaxprocs"].as_f64());
}

#[test]
fn fanout_pftrace_newest_go() {
    fanout_pftrace(GO_VERSIONS[0]);
}

#[test]
fn fanout_pftrace_oldest_go() {
    fanout_pftrace(GO_VERSIONS[GO_VERSIONS.len() - 1]);
}

/// Go 1.19's recursive doInit: init slices drawn at each task's return, in the summary's order.
#[test]
fn fanout_pftrace_go_1_19() {
    fanout_pftrace("1.19.8");
}
