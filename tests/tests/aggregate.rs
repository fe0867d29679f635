//! Aggregate mode (`--aggregate`): the probes count and keep the latency histogram in BPF maps;
//! only rare events stream. The same program traced both ways must give the same counts where
//! the program fixes them, and the aggregated latency must describe the same executions.
use std::process::Command;

use gmp_trace_tests::{
    build_sample, gmp_trace_bin, require_bpf, scratch_dir, trace, Variant, GO_VERSIONS,
};
use serde_json::Value;

fn aggregated(dir: &std::path::Path, bin: &str, n: u32) -> Value {
    let summary = dir.join("aggregate.json");
    let o = Command::new(gmp_trace_bin())
        .args(["-q", "--aggregate", "--summary-json"])
        .arg(&summary)
        .args(["--", bin, &n.to_string()])
        .env("GOGC", "off")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap()
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn aggregate_counts_match_streaming() {
    require_bpf!();
    let go = GO_VERSIONS[0];
    let bin = build_sample("fanout", go, Variant::Default);
    let bin = bin.to_str().unwrap();
    let dir = scratch_dir("aggregate-fanout");
    let n = 40;
    let a = aggregated(&dir, bin, n);
    let s = trace(&dir, &["-q", "--", bin, &n.to_string()], &[("GOGC", "off")]).summary;

    assert_eq!(a["lost_events"], 0);
    let info = &a["aggregate"];
    assert!(int(&info["counted_events"]) > 0, "{a}");
    assert!(
        s.get("aggregate").is_none(),
        "streaming mode has no aggregate section"
    );
    // What the program fixes: 2n goroutines of its own plus the runtime's five, all but
    // those five exiting; one newproc per creation.
    for (key, want) in [
        ("goroutines_created", 2 * n as u64 + 5),
        ("goroutines_exited", 2 * n as u64),
    ] {
        assert_eq!(int(&a[key]), want, "{key}: {a}");
        assert_eq!(a[key], s[key], "{key} differs between the modes");
    }
    for kind in ["go_create", "go_exit", "runtime_main", "proc_resize"] {
        assert_eq!(
            a["events_by_kind"][kind], s["events_by_kind"][kind],
            "{kind}: aggregate {} vs streamed {}",
            a["events_by_kind"], s["events_by_kind"]
        );
    }
    assert_eq!(
        a["transitions"]["NotExist->Runnable"],
        a["goroutines_created"]
    );
    assert_eq!(
        a["transitions"]["Running->NotExist"],
        a["goroutines_exited"]
    );
    // Every Runnable -> Running of a goroutine seen becoming runnable is one latency sample
    // (execute's casgstatus: the execute probe itself is not attached in aggregate mode).
    let to_running = int(&a["transitions"]["Runnable->Running"]);
    let lat = &a["sched_latency"];
    assert!(
        int(&lat["count"]) >= 2 * n as u64 && int(&lat["count"]) <= to_running,
        "{lat} vs {to_running} Runnable->Running"
    );
    // Aggregate mode leaves the scheduler loop, P hand-offs and syscalls unprobed.
    for kind in [
        "newproc",
        "execute",
        "schedule",
        "acquire_p",
        "release_p",
        "syscall_enter",
    ] {
        assert!(
            a["events_by_kind"].get(kind).is_none(),
            "{kind}: {}",
            a["events_by_kind"]
        );
    }
    assert!(
        int(&lat["p50_ns"]) <= int(&lat["p99_ns"]) && int(&lat["p99_ns"]) <= int(&lat["max_ns"])
    );
    assert!(int(&lat["max_ns"]) > 0 && int(&lat["max_ns"]) < 10_000_000_000);
    // main waits on the WaitGroup: a named wait reason.
    assert!(
        info["waits_by_reason"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("WaitGroup")),
        "{info}"
    );
    // The rare events still stream: the startup timeline is all there.
    assert_eq!(a["startup_observed"], true);
    assert_eq!(a["init_order"], s["init_order"]);
    assert_eq!(a["runtime_main"][0]["goid"], 1);
}

#[test]
fn aggregate_refuses_per_event_outputs() {
    let o = Command::new(gmp_trace_bin())
        .args(["--aggregate", "-o", "x.jsonl", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--aggregate") && err.contains("cannot be used with"),
        "{err}"
    );
}
