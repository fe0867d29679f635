//! The startup timeline against the Go runtime's own account of it (GODEBUG=inittrace=1, which
//! prints one line per init task with its duration) from the same run.
use gmp_trace_tests::{phase_events, require_bpf, Sample, TraceRun, Variant, GO_VERSIONS};
use serde_json::Value;

/// (package, clock ms) from inittrace lines: "init example.com/x @1.5 ms, 20 ms clock, ...".
fn inittrace(stderr: &str) -> Vec<(String, f64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() >= 7 && w[0] == "init" && w[2].starts_with('@') && w[6] == "clock," {
                Some((w[1].to_string(), w[4].parse().ok()?))
            } else {
                None
            }
        })
        .collect()
}

/// One traced startup at a time: the durations are compared with the runtime's own clock
/// readings to a millisecond or so, and two traced programs (each with its daemon) sharing
/// this machine's 2 vCPUs preempt each other inside the measured spans (seen once: 2.2 ms on
/// a 0 ms init).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn startup_matches_inittrace(go: &str, variant: Variant) {
    // Held from the build on: on a clean checkout the other tests' `go build`s would otherwise
    // compile on both CPUs while this one is traced.
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let run = Sample::build("initorder", go, variant)
        .trace(&format!("startup-{go}-{variant:?}"))
        .opts(["-q"])
        .env("GODEBUG", "inittrace=1")
        .run();
    assert!(run.status.success(), "{}", run.stderr);
    let s = &run.summary;
    assert_eq!(s["startup_observed"], true);
    let phases = s["startup"].as_array().unwrap();
    assert_top_level_phases(phases);
    assert_phases_on_their_goroutines(phases);
    let ours = assert_inits_match_inittrace(&run, phases, go);
    assert_sleeping_inits_timed(&ours);
    assert_alpha_init_creates_its_goroutine(&run, phases);
}

/// The summary's phase called `name`.
fn phase<'a>(phases: &'a [Value], name: &str) -> &'a Value {
    phases
        .iter()
        .find(|p| p["phase"] == name)
        .unwrap_or_else(|| panic!("no phase {name}"))
}

/// The top-level phases, all of them, in order, from exec at 0.
fn assert_top_level_phases(phases: &[Value]) {
    let top: Vec<&str> = phases
        .iter()
        .filter(|p| p["depth"] == 0)
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    let schedinit = top
        .iter()
        .find(|p| p.starts_with("schedinit (GOMAXPROCS="))
        .copied()
        .unwrap_or("schedinit missing");
    assert_eq!(
        top,
        [
            "exec",
            "rt0_go",
            schedinit,
            "newproc(runtime.main) creates g1",
            "mstart on m0",
            "runtime.main on g1",
            "runtime init tasks",
            "gcenable",
            "package inits",
            "main.main",
            "exit(0)"
        ]
    );
    assert_eq!(phase(phases, "exec")["start_ns"], 0);
    let starts: Vec<u64> = phases
        .iter()
        .filter(|p| p["depth"] == 0)
        .map(|p| p["start_ns"].as_u64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "phases out of order: {starts:?}"
    );
}

/// runtime.main and what it calls run on g1 (on m0); what comes before it, on g0.
fn assert_phases_on_their_goroutines(phases: &[Value]) {
    for (name, g) in [
        ("runtime.main on g1", 1),
        ("gcenable", 1),
        ("main.main", 1),
        ("rt0_go", 0),
        ("schedinit", 0),
    ] {
        let p = phases
            .iter()
            .find(|p| p["phase"].as_str().unwrap().starts_with(name))
            .unwrap();
        assert_eq!(p["g"], g, "{name} runs on g{g}: {p}");
    }
    assert_eq!(
        phase(phases, "runtime.main on g1")["m"],
        0,
        "runtime.main runs on m0"
    );
}

/// Same packages as inittrace prints, same order, durations within tolerance. Returns ours:
/// (package, ms).
fn assert_inits_match_inittrace(run: &TraceRun, phases: &[Value], go: &str) -> Vec<(String, f64)> {
    let theirs = inittrace(&run.stderr);
    assert!(theirs.len() >= 10, "inittrace lines: {}", run.stderr);
    let ours: Vec<(String, f64)> = phases
        .iter()
        .filter_map(|p| {
            let name = p["phase"].as_str()?.strip_prefix("init ")?;
            Some((name.to_string(), p["dur_ns"].as_f64()? / 1e6))
        })
        .collect();
    let names = |v: &[(String, f64)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs), "init order");
    assert_eq!(
        run.summary["init_order"].as_array().unwrap().len(),
        ours.len()
    );
    let mut diffs = Vec::new();
    let mut outliers = Vec::new();
    for ((name, ours_ms), (_, theirs_ms)) in ours.iter().zip(&theirs) {
        let d = ours_ms - theirs_ms;
        diffs.push(d);
        // inittrace prints 2 significant digits and excludes its own printing (which our
        // phase, ending at the next task's entry, includes): 1.5 ms or 10%, whichever is
        // larger (measured on an idle machine: median 0.02 ms, max 0.75 ms).
        let tol = (0.10 * theirs_ms).max(1.5);
        if d.abs() > tol {
            outliers.push(format!(
                "init {name}: ours {ours_ms:.3} ms vs inittrace {theirs_ms} ms"
            ));
            // Even a thread descheduled between the probe and the runtime's clock read (on 2
            // vCPUs that happens: 1.7 ms seen once) is back within a few ms.
            assert!(d.abs() <= tol + 5.0, "{}", outliers.last().unwrap());
        }
    }
    // One preemption lands in one span; a timing error in the model shows in many.
    assert!(outliers.len() <= 1, "beyond tolerance: {outliers:#?}");
    if !outliers.is_empty() {
        eprintln!("one outlier (the thread preempted in between?): {outliers:?}");
    }
    diffs.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    eprintln!(
        "go{go}: {} init tasks, |ours - inittrace| median {:.3} ms, max {:.3} ms",
        diffs.len(),
        diffs[diffs.len() / 2].abs(),
        diffs.last().unwrap().abs()
    );
    ours
}

/// The sample's alpha and gamma inits sleep 20 and 5 ms.
fn assert_sleeping_inits_timed(ours: &[(String, f64)]) {
    let ms = |pkg: &str| ours.iter().find(|(n, _)| n == pkg).unwrap().1;
    let alpha = ms("example.com/initorder/alpha");
    let gamma = ms("example.com/initorder/gamma");
    assert!(
        alpha >= 20.0 && gamma >= 5.0,
        "alpha {alpha} ms (sleeps 20), gamma {gamma} ms (sleeps 5)"
    );
}

/// The goroutine alpha's init starts is created during its init phase, by g1.
fn assert_alpha_init_creates_its_goroutine(run: &TraceRun, phases: &[Value]) {
    let alpha_phase = phase(phases, "init example.com/initorder/alpha");
    let t0 = phase_events(&run.events, "exec").first().unwrap()["ts"]
        .as_u64()
        .unwrap();
    let (a, b) = (
        t0 + alpha_phase["start_ns"].as_u64().unwrap(),
        t0 + alpha_phase["start_ns"].as_u64().unwrap() + alpha_phase["dur_ns"].as_u64().unwrap(),
    );
    let spawned: Vec<_> = run
        .events
        .iter()
        .filter(|e| e["kind"] == "go_create" && (a..b).contains(&e["ts"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        spawned.len(),
        1,
        "goroutines created during alpha's init: {spawned:?}"
    );
    assert_eq!(spawned[0]["parent_goid"], 1);
    assert!(spawned[0]["start_fn"]
        .as_str()
        .unwrap()
        .starts_with("example.com/initorder/alpha.init"));
}

#[test]
fn startup_newest_go() {
    require_bpf!();
    startup_matches_inittrace(GO_VERSIONS[0], Variant::Default);
}

#[test]
fn startup_oldest_go() {
    require_bpf!();
    startup_matches_inittrace(GO_VERSIONS[GO_VERSIONS.len() - 1], Variant::Default);
}

/// Go 1.19/1.20: doInit recurses through each task's dependencies; packages are named from the
/// task's functions (found through the task's dependency count) and timed between the last
/// dependency's return and the task's own return.
#[test]
fn startup_go_1_19() {
    require_bpf!();
    startup_matches_inittrace("1.19.8", Variant::Default);
}

/// Without .symtab the init functions are named through pclntab.
#[test]
fn startup_go_1_19_stripped() {
    require_bpf!();
    startup_matches_inittrace("1.19.8", Variant::Stripped);
}
