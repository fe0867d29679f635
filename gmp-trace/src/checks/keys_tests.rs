use serde_json::{json, Value};

use super::*;
use crate::binary::NoSymbols;
use crate::export::summary::Summary;
use crate::model::hist::Histogram;
use crate::model::Model;
use crate::run::{Aggregates, RunInfo};

/// A summary with every optional part present (live, aggregate), as JSON.
fn full_summary() -> Value {
    let run = RunInfo {
        go_version: "go1.27.3".into(),
        binary: "/bin/x".into(),
        main_module: None,
        build_id: None,
        mode: "launch",
        pid: 7,
        exit_code: Some(0),
        read_failures: 0,
        malformed_records: 0,
        probes: Vec::new(),
        attach_ms: Some(1.0),
        ring_buffer_bytes: Some(4096),
        cpu_samples: Some(Default::default()),
        aggregate: Some(Aggregates {
            kinds: Vec::new(),
            status: Vec::new(),
            wait: vec![0, 1],
            latency: Histogram::default(),
        }),
    };
    serde_json::to_value(Summary::build(&Model::new(), run, &NoSymbols)).unwrap()
}

/// Numbers of the summary that are identities or positions, not measures to bound.
const NOT_KEYS: &[&str] = &["pid", "gomaxprocs", "cpu_samples.rate_hz"];

fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &p, out);
            }
        }
        Value::Number(_) | Value::Bool(_) => out.push(prefix.to_string()),
        // Arrays (per-thread, per-site lists) are reached through derived keys only.
        _ => {}
    }
}

/// Every number of the summary (outside lists and count maps) can be asserted on, and every
/// path key names something the summary has: the table follows the summary.
#[test]
fn the_table_follows_the_summary() {
    let v = full_summary();
    let mut all = Vec::new();
    leaves(&v, "", &mut all);
    for leaf in &all {
        let in_map = MAPS
            .iter()
            .any(|m| leaf.starts_with(&format!("{}.", m.prefix)));
        assert!(
            unit_of(leaf).is_some() || in_map || NOT_KEYS.contains(&leaf.as_str()),
            "summary number {leaf} has no --assert key: add it to checks::keys::KEYS"
        );
    }
    for k in KEYS {
        if let Source::Path(p, _) = k.source {
            assert!(at(&v, p).is_some(), "key {p} is not in the summary");
        }
    }
}

/// docs/ci.md names every key (the table of keys there is what users read).
#[test]
fn every_key_is_documented() {
    let doc = include_str!("../../../docs/ci.md");
    for k in KEYS {
        assert!(
            doc.contains(&format!("`{}`", k.name)),
            "docs/ci.md does not document `{}`",
            k.name
        );
    }
    for m in MAPS {
        assert!(
            doc.contains(&format!("`{}.", m.prefix)),
            "docs/ci.md does not document {}",
            m.prefix
        );
    }
}

#[test]
fn values_from_a_real_summary() {
    let v: Value = serde_json::from_str(include_str!(
        "../../../tests/data/fanout-go1.27.3.summary.json"
    ))
    .unwrap();
    let get = |k: &str| lookup(k, &v);
    assert_eq!(get("goroutines_created"), Ok(45.0));
    assert_eq!(get("goroutines_live_at_exit"), Ok(5.0));
    assert_eq!(get("threads_max"), Ok(3.0));
    assert_eq!(get("lost_events"), Ok(0.0));
    assert_eq!(get("counts_are_lower_bounds"), Ok(0.0));
    assert_eq!(get("exit_code"), Ok(0.0));
    let p99 = v["sched_latency"]["p99_ns"].as_f64().unwrap();
    assert!(p99 > 0.0);
    assert_eq!(get("sched_latency_p99"), Ok(p99));
    assert_eq!(get("sched_latency.p99_ns"), Ok(p99));
    assert_eq!(get("events_by_kind.go_create"), Ok(45.0));
    // A kind the run never saw counts 0.
    assert_eq!(get("events_by_kind.lost"), Ok(0.0));
    assert_eq!(get("states_at_end.Waiting"), Ok(4.0));
    // fanout's live goroutines at the end are the runtime's own: no leak.
    assert_eq!(get("leak_sites"), Ok(0.0));
    assert_eq!(get("leaked_goroutines"), Ok(0.0));
    // Not measured in this run: a reason, not a number.
    assert!(get("blocked_sites").unwrap_err().contains("--stacks"));
    assert!(get("aggregate.counted_events")
        .unwrap_err()
        .contains("--aggregate"));
    assert!(get("aggregate.waits_by_reason.x")
        .unwrap_err()
        .contains("--aggregate"));
    assert!(get("attach_ms").unwrap_err().contains("live"));
}

#[test]
fn leak_sites_count_blocked_user_groups() {
    let v = json!({
        "events_by_kind": {"go_status": 3},
        "leak_tree": [
            {"start_fn": "main.leaked", "states": {"Waiting (chan receive)": 5}},
            {"start_fn": "main.poolWorker", "states": {"Waiting (chan receive)": 8, "Runnable": 1}},
            {"start_fn": "main.spin", "states": {"Running": 1}},
            {"start_fn": "runtime.forcegchelper", "states": {"Waiting (force gc (idle))": 1}},
        ],
    });
    assert_eq!(lookup("leak_sites", &v), Ok(2.0));
    assert_eq!(lookup("leaked_goroutines", &v), Ok(13.0));
    // At --level lifecycle there are no states to tell blocked goroutines by.
    let mut lifecycle = v.clone();
    lifecycle["events_by_kind"] = json!({"go_create": 3});
    assert!(lookup("leak_sites", &lifecycle)
        .unwrap_err()
        .contains("lifecycle"));
    let blocked = json!({"blocked_at": [
        {"site": "main.leaked /src/main.go:60", "count": 5},
        {"site": "main.leaked /src/main.go:60", "count": 1},
        {"site": "main.poolWorker /src/main.go:40", "count": 8},
        {"site": "runtime.forcegchelper /go/src/runtime/proc.go:300", "count": 1},
    ]});
    assert_eq!(lookup("blocked_sites", &blocked), Ok(2.0));
}

#[test]
fn latency_absent_says_why() {
    let lifecycle = json!({"sched_latency": {"count": 0, "p50_ns": 0, "p99_ns": 0, "max_ns": 0},
                           "events_by_kind": {"go_create": 1}});
    let e = lookup("sched_latency_p99", &lifecycle).unwrap_err();
    assert!(e.contains("--level lifecycle"), "{e}");
    let quiet = json!({"sched_latency": {"count": 0, "p50_ns": 0, "p99_ns": 0, "max_ns": 0},
                       "events_by_kind": {"go_status": 1}});
    let e = lookup("sched_latency_max", &quiet).unwrap_err();
    assert!(e.contains("no goroutine went"), "{e}");
    let pid_mode = json!({"exit_code": null});
    assert!(lookup("exit_code", &pid_mode)
        .unwrap_err()
        .contains("launched"));
}

#[test]
fn close_names_for_typos() {
    assert!(close_names("lost_event").contains(&"lost_events".to_string()));
    assert!(close_names("sched_latency_p95").contains(&"sched_latency_p99".to_string()));
    assert!(close_names("events_by_kind.nope").contains(&"events_by_kind.MEMBER".to_string()));
    assert!(unit_of("events_by_kind.nope").is_none());
    assert!(unit_of("states_at_end.Sleeping").is_none());
    assert_eq!(unit_of("transitions.Runnable->Running"), Some(Unit::Count));
    assert_eq!(unit_of("sched_latency_p99"), Some(Unit::Nanos));
}
