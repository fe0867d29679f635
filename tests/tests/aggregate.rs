//! Aggregate mode (`--aggregate`): the probes count and keep the latency histogram in BPF maps;
//! only rare events stream. The same program traced both ways must give the same counts where
//! the program fixes them, and the aggregated latency must describe the same executions.
use std::process::Command;

use gmp_trace_tests::{gmp_trace_bin, require_bpf, scratch_dir, Sample, Variant, GO_VERSIONS};
use serde_json::Value;

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The summaries of fanout with `n` workers traced with `--aggregate` and streamed, in that
/// order, side by side in one scratch directory.
fn aggregated_and_streamed(n: u32) -> (Value, Value) {
    let fanout = Sample::build("fanout", GO_VERSIONS[0], Variant::Default);
    let dir = scratch_dir("aggregate-fanout");
    let fanout_n = |opts: &[&str]| {
        fanout
            .trace_in(&dir)
            .opts(opts)
            .args([n.to_string()])
            .env("GOGC", "off")
    };
    let a = fanout_n(&["-q", "--aggregate"])
        .no_output()
        .summary_file("aggregate.json")
        .run();
    assert!(a.status.success(), "{}", a.stderr);
    (a.summary, fanout_n(&["-q"]).run().summary)
}

#[test]
fn aggregate_counts_match_streaming() {
    require_bpf!();
    let n = 40;
    let (a, s) = aggregated_and_streamed(n);
    assert_eq!(a["lost_events"], 0);
    assert!(int(&a["aggregate"]["counted_events"]) > 0, "{a}");
    assert!(
        s.get("aggregate").is_none(),
        "streaming mode has no aggregate section"
    );
    assert_counts_fixed_by_the_program(&a, &s, n as u64);
    assert_latency_describes_the_executions(&a, n as u64);
    assert_hot_paths_unprobed(&a);
    // main waits on the WaitGroup: a named wait reason.
    let info = &a["aggregate"];
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

/// What the program fixes: 2n goroutines of its own plus the runtime's five, all but those five
/// exiting; one newproc per creation. Both modes count the same.
fn assert_counts_fixed_by_the_program(a: &Value, s: &Value, n: u64) {
    for (key, want) in [
        ("goroutines_created", 2 * n + 5),
        ("goroutines_exited", 2 * n),
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
}

/// Every Runnable -> Running of a goroutine seen becoming runnable is one latency sample
/// (execute's casgstatus: the execute probe itself is not attached in aggregate mode).
fn assert_latency_describes_the_executions(a: &Value, n: u64) {
    let to_running = int(&a["transitions"]["Runnable->Running"]);
    let lat = &a["sched_latency"];
    assert!(
        int(&lat["count"]) >= 2 * n && int(&lat["count"]) <= to_running,
        "{lat} vs {to_running} Runnable->Running"
    );
    assert!(
        int(&lat["p50_ns"]) <= int(&lat["p99_ns"]) && int(&lat["p99_ns"]) <= int(&lat["max_ns"])
    );
    assert!(int(&lat["max_ns"]) > 0 && int(&lat["max_ns"]) < 10_000_000_000);
}

/// Aggregate mode leaves the scheduler loop, P hand-offs and syscalls unprobed.
fn assert_hot_paths_unprobed(a: &Value) {
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
