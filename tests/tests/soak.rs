//! The soak in miniature (`cargo xtask reliability --only soak` runs it for minutes): a steady
//! HTTP load that creates and ends goroutines all the time, traced in `--pid` mode at the
//! default level into a Perfetto file for 20 s, RSS sampled every 2 s. The tracer's RSS stays
//! flat, nothing is lost, the summary's counts agree, the trace loads in Perfetto's own trace
//! processor with as many goroutine tracks as goroutines, SIGINT ends it cleanly with no BPF
//! link left, and the server's clients see no error.
use std::time::Duration;

use gmp_trace_tests::soak::{run_soak, SoakConfig};
use gmp_trace_tests::{
    require_bpf, require_perfetto_tools, scratch_dir, trace_processor, PERFETTO_IMPORT_PROBLEMS_SQL,
};

#[test]
fn soak_in_miniature() {
    require_perfetto_tools();
    require_bpf!();
    let dir = scratch_dir("soak");
    let trace = dir.join("soak.pftrace");
    let cfg = SoakConfig {
        duration: Duration::from_secs(20),
        sample_every: Duration::from_secs(2),
        rate: 150,
        workers: 4,
        untraced_for: Duration::from_secs(3),
        perfetto: Some(trace.clone()),
        summary: dir.join("summary.json"),
    };
    let r = run_soak(&cfg);
    eprintln!("{}", r.text());
    let bad = r.check();
    assert!(
        bad.is_empty(),
        "the soak failed:\n{}\n{}",
        bad.join("\n"),
        r.text()
    );

    // The whole trace loads, cleanly; each goroutine created while traced has its track (so
    // do those that existed at attach and were seen running).
    let s = &r.summary;
    let q = trace_processor(
        &trace,
        &[
            PERFETTO_IMPORT_PROBLEMS_SQL,
            "SELECT COUNT(*) AS n FROM track t JOIN track grp ON t.parent_id = grp.id \
             WHERE grp.name = 'Goroutines'",
        ],
    );
    assert!(q[0].is_empty(), "import problems: {:?}", q[0]);
    let tracks = q[1][0]["n"].as_u64().unwrap();
    let created = s["goroutines_created"].as_u64().unwrap();
    // A few more: goroutines that existed at attach get a track once seen, and so may one
    // whose creation raced the probes going in.
    let at_most = created + created / 100 + 100;
    assert!(
        (created..=at_most).contains(&tracks),
        "{tracks} goroutine tracks for {created} goroutines created (at most {at_most})"
    );
}
