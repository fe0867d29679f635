//! A steady server load traced in --pid mode for minutes: the tracer's memory and losses.
//!
//! `tests/go/soakserver` (an HTTP server and its own clients, one connection and several
//! goroutines per request) runs at a fixed request rate; gmp-trace attaches at the default level
//! and streams JSONL to a pipe that is parsed line by line and counted, not stored (minutes of
//! events are gigabytes); its RSS is sampled every 10 s. At the end SIGINT stops it, and the soak
//! checks (gmp_trace_tests::soak): RSS flat (after warm-up, the last third's max within 10% of
//! the first third's), 0 lost, the summary's counts consistent with each other and with the
//! JSONL, a clean exit leaving no BPF link, the server's clients without an error. The CI test
//! tests/tests/soak.rs runs the same checks for 20 s with a Perfetto output.
use std::time::Duration;

use anyhow::bail;
use gmp_trace_tests::scratch_dir;
use gmp_trace_tests::soak::{run_soak, SoakConfig};

/// Requests a second: about five goroutines each (the server's connection, the client's dial,
/// read and write loops), so some 2,500 goroutines created and ended a second.
const RATE: u32 = 500;

pub fn run(minutes: u64) -> anyhow::Result<()> {
    if let Some(reason) = gmp_trace_tests::bpf_unavailable_reason() {
        bail!("the soak needs BPF: {reason}");
    }
    let dir = scratch_dir("reliability-soak");
    let cfg = SoakConfig {
        duration: Duration::from_secs(minutes * 60),
        sample_every: Duration::from_secs(10),
        rate: RATE,
        workers: 8,
        untraced_for: Duration::from_secs(10),
        perfetto: None,
        summary: dir.join("summary.json"),
    };
    eprintln!(
        "soak: soakserver at {RATE} requests/s, traced {minutes} min (JSONL to a pipe, summary in {})",
        cfg.summary.display()
    );
    let r = run_soak(&cfg);
    println!("{}", r.text());
    let bad = r.check();
    if !bad.is_empty() {
        bail!("the soak failed:\n{}", bad.join("\n"));
    }
    println!("soak: held");
    Ok(())
}
