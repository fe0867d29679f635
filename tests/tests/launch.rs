//! Launch mode on real Go binaries: the fan-out sample traced from its first instruction.
//! Needs root and BPF (skips with the reason otherwise).
use std::collections::{BTreeMap, BTreeSet};

use gmp_trace_tests::{
    of_kind, phase_events, require_bpf, Sample, TraceRun, Variant, GO_VERSIONS,
    MATRIX_TEST_VERSIONS,
};
use serde_json::Value;

/// What a runtime-started goroutine is for, by its start function (as Go names it: the function
/// a `go f(x)` statement's wrapper calls, the same in every release).
fn runtime_role(start_fn: &str) -> Option<&'static str> {
    Some(match start_fn {
        "runtime.main" => "main goroutine",
        "runtime.forcegchelper" => "forced-GC helper",
        "runtime.bgsweep" => "background sweeper",
        "runtime.bgscavenge" => "background scavenger",
        "runtime.runfinq" | "runtime.runFinalizers" => "finalizer goroutine",
        _ => return None,
    })
}

/// fanout with `n` workers, each starting one child; GOGC=off: no GC cycle, so no GC worker
/// goroutines, and what the runtime starts is then fixed.
fn trace_fanout(sample: &Sample, scratch: &str, n: usize, opts: &[&str]) -> TraceRun {
    sample
        .trace(scratch)
        .opts(opts)
        .args([n.to_string()])
        .env("GOGC", "off")
        .run()
}

fn fanout_exact_count(go: &str, variant: Variant) {
    // The cgo cell uses a sample that really calls C (runtime/cgo, libc, external link).
    let name = if variant == Variant::Cgo {
        "cgofan"
    } else {
        "fanout"
    };
    let sample = Sample::build(name, go, variant);
    let n = 40;
    let scratch = format!("launch-{name}-{go}-{}", variant.name());
    let run = trace_fanout(&sample, &scratch, n, &["-q"]);
    assert!(run.status.success(), "gmp-trace failed: {}", run.stderr);
    // The child's stdout passes through untouched.
    assert!(
        run.stdout
            .starts_with(&format!("started {} goroutines", 2 * n)),
        "stdout: {:?}",
        run.stdout
    );
    assert_launch_summary(&run, go);
    let user = assert_every_goroutine_accounted(&run, 2 * n);
    assert_creation_tree(&run, &user, n);
    assert_every_thread_seen_starting(&run);
    assert_every_user_goroutine_exited(&run, &user);
    assert_asm_entry_points_read_g(&run);
    assert_startup_timeline(&run.summary);
    assert_sites_name_go_statements(&run, name, n);
}

/// The summary's latency-by-creation-site rows name each `go` statement by function and
/// file:line (the line in the sample's source), with its exact creation count.
fn assert_sites_name_go_statements(run: &TraceRun, name: &str, n: usize) {
    let src = std::fs::read_to_string(
        gmp_trace_tests::workspace_root().join(format!("tests/go/{name}/main.go")),
    )
    .unwrap();
    let line_of = |stmt: &str| {
        1 + src
            .lines()
            .position(|l| l.trim_start().starts_with(stmt))
            .unwrap_or_else(|| panic!("no {stmt:?} in {name}"))
    };
    let rows = run.summary["sched_latency_by_site"].as_array().unwrap();
    for (site, stmt) in [("main.main", "go worker("), ("main.worker", "go child(")] {
        let at = format!("{name}/main.go:{}", line_of(stmt));
        let row = rows
            .iter()
            .find(|r| r["site"] == site)
            .unwrap_or_else(|| panic!("no {site} row: {rows:#?}"));
        assert!(
            row["site_at"].as_str().unwrap().ends_with(&at),
            "{site} at {at}: {row}"
        );
        assert_eq!(row["created"], n as u64, "{row}");
    }
}

fn assert_launch_summary(run: &TraceRun, go: &str) {
    let s = &run.summary;
    assert_eq!(s["go_version"], format!("go{go}"));
    assert_eq!(s["mode"], "launch");
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["lost_events"], 0, "events were lost: {}", run.stderr);
}

/// Every goroutine created is accounted for: the program's own (`printed` of them), plus the
/// runtime's five. Returns the program's own creations.
fn assert_every_goroutine_accounted(run: &TraceRun, printed: usize) -> Vec<&Value> {
    let creates = of_kind(&run.events, "go_create");
    assert_eq!(run.summary["goroutines_created"], creates.len() as u64);
    let mut user = Vec::new();
    let mut roles = BTreeMap::new();
    for c in &creates {
        let f = c["start_fn"]
            .as_str()
            .unwrap_or_else(|| panic!("unresolved start_fn in {c}"));
        if f.starts_with("main.") {
            user.push(*c);
        } else {
            let role =
                runtime_role(f).unwrap_or_else(|| panic!("unexpected runtime goroutine {f}"));
            *roles.entry(role).or_insert(0) += 1;
        }
    }
    assert_eq!(user.len(), printed, "user goroutines created");
    assert_eq!(roles.len(), 5, "runtime goroutines: {roles:?}");
    assert!(
        roles.values().all(|&k| k == 1),
        "runtime goroutines: {roles:?}"
    );
    assert_eq!(creates.len(), printed + 5);
    user
}

/// The creation tree: g1 (from g0) creates the `n` workers, each worker creates one child; and
/// runtime.main runs once, on g1.
fn assert_creation_tree(run: &TraceRun, user: &[&Value], n: usize) {
    let main_g = of_kind(&run.events, "go_create")
        .into_iter()
        .find(|c| c["start_fn"] == "runtime.main")
        .unwrap();
    assert_eq!(main_g["goid"], 1);
    assert_eq!(main_g["parent_goid"], 0);
    let workers: BTreeSet<u64> = user
        .iter()
        .filter(|c| c["parent_goid"] == 1)
        .map(|c| c["goid"].as_u64().unwrap())
        .collect();
    assert_eq!(workers.len(), n, "goroutines created by g1");
    let children = user
        .iter()
        .filter(|c| workers.contains(&c["parent_goid"].as_u64().unwrap()));
    assert_eq!(children.count(), n, "goroutines created by the workers");

    let mains = of_kind(&run.events, "runtime_main");
    assert_eq!(mains.len(), 1);
    assert_eq!(mains[0]["goid"], 1);
}

/// Every thread that ran Go code was seen starting, m0 included: runtime.mstart (assembly,
/// the `mstart_m0` phase probe, which fires on every M) and then mstart1 (`mstart`). A thread
/// started just as the process exits may get no further than runtime.mstart.
fn assert_every_thread_seen_starting(run: &TraceRun) {
    let s = &run.summary;
    let started: BTreeSet<u64> = run
        .events
        .iter()
        .filter(|e| e["kind"] == "mstart" || (e["kind"] == "phase" && e["phase"] == "mstart_m0"))
        .map(|e| e["tid"].as_u64().unwrap())
        .collect();
    // (load_bias, lost and steal_failed are gmp-trace's own notes, not from a thread.)
    let seen: BTreeSet<u64> = run
        .events
        .iter()
        .filter(|e| {
            !matches!(
                e["kind"].as_str(),
                Some("load_bias" | "lost" | "steal_failed")
            )
        })
        .map(|e| e["tid"].as_u64().unwrap())
        .collect();
    assert!(
        seen.is_subset(&started),
        "threads without mstart: {:?}",
        seen.difference(&started)
    );
    assert!(
        started.contains(&s["pid"].as_u64().unwrap()),
        "m0 (tid == pid) started"
    );
    assert_eq!(s["threads"], seen.len() as u64);
}

/// Every user goroutine ran and exited; each start was on a P. At this level (full) the exits
/// come from casgstatus(_Grunning -> _Gdead), goexit1 is not probed: each exit is derived and
/// sits right before its status change.
fn assert_every_user_goroutine_exited(run: &TraceRun, user: &[&Value]) {
    let go_exits = of_kind(&run.events, "go_exit");
    let exits: BTreeSet<u64> = go_exits
        .iter()
        .map(|e| e["goid"].as_u64().unwrap())
        .collect();
    assert_eq!(exits.len(), go_exits.len(), "a goroutine exited twice");
    for (i, e) in run.events.iter().enumerate() {
        if e["kind"] == "go_exit" {
            let next = &run.events[i + 1];
            assert_eq!(e["derived"], true, "{e}");
            assert!(
                next["kind"] == "go_status"
                    && next["from"] == "Running"
                    && next["to"] == "NotExist"
                    && next["goid"] == e["goid"]
                    && next["tid"] == e["tid"],
                "{e} is followed by {next}"
            );
        }
    }
    for u in user {
        assert!(
            exits.contains(&u["goid"].as_u64().unwrap()),
            "no exit for {u}"
        );
    }
    for e in of_kind(&run.events, "execute") {
        assert!(e["p"].as_i64().unwrap() >= 0, "execute without a P: {e}");
    }
}

/// Assembly entry points read g from the thread's TLS slot (fs base from the kernel's BTF, slot
/// from rt0_go): each M's runtime.mstart names the same M its mstart1 does, and the exit comes
/// from g1 (runtime.main returning).
fn assert_asm_entry_points_read_g(run: &TraceRun) {
    let m_of_tid: BTreeMap<u64, i64> = of_kind(&run.events, "mstart")
        .iter()
        .map(|e| (e["tid"].as_u64().unwrap(), e["m"].as_i64().unwrap()))
        .collect();
    let asm_mstarts = phase_events(&run.events, "mstart_m0");
    let asm_tids: BTreeSet<u64> = asm_mstarts
        .iter()
        .map(|e| e["tid"].as_u64().unwrap())
        .collect();
    assert_eq!(
        asm_tids.len(),
        asm_mstarts.len(),
        "one runtime.mstart per thread"
    );
    for tid in m_of_tid.keys() {
        assert!(
            asm_tids.contains(tid),
            "thread {tid}: mstart1 without runtime.mstart"
        );
    }
    for e in &asm_mstarts {
        let tid = e["tid"].as_u64().unwrap();
        assert!(e["m"].as_i64().unwrap() >= 0, "{e}");
        if let Some(m) = m_of_tid.get(&tid) {
            assert_eq!(e["m"].as_i64(), Some(*m), "{e}");
        }
        assert_eq!(e["goid"], 0, "mstart runs on the M's g0: {e}");
    }
    let exit = *phase_events(&run.events, "exit")
        .first()
        .expect("exit phase");
    assert_eq!(exit["goid"], 1, "{exit}");
    assert_eq!(
        exit["m"],
        m_of_tid[&exit["tid"].as_u64().unwrap()],
        "{exit}"
    );
}

/// The startup timeline in every variant: package inits named by import path (through pclntab
/// when stripped), runtime's before os's (which fmt imports), main.main last.
fn assert_startup_timeline(s: &Value) {
    assert_eq!(s["startup_observed"], true);
    let order: Vec<&str> = s["init_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let at = |p: &str| order.iter().position(|o| *o == p);
    assert!(
        at("runtime").is_some() && at("runtime") < at("os"),
        "init order {order:?}"
    );
    assert!(
        order.iter().all(|p| !p.starts_with("task ")),
        "unnamed init tasks: {order:?}"
    );
    let phases: Vec<&str> = s["startup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert!(
        phases.contains(&"main.main") && phases.contains(&"init os"),
        "{phases:?}"
    );
}

/// Every build variant of one Go version, each checked exactly.
fn all_variants(go: &str) {
    for v in Variant::ALL {
        eprintln!("fan-out, Go {go}, {}", v.name());
        fanout_exact_count(go, v);
    }
}

#[test]
fn fanout_newest_go_all_variants() {
    require_bpf!();
    all_variants(MATRIX_TEST_VERSIONS[0]);
}

#[test]
fn fanout_middle_go_all_variants() {
    require_bpf!();
    all_variants(MATRIX_TEST_VERSIONS[1]);
}

#[test]
fn fanout_oldest_go_all_variants() {
    require_bpf!();
    all_variants(MATRIX_TEST_VERSIONS[MATRIX_TEST_VERSIONS.len() - 1]);
}

#[test]
fn fanout_second_suite_version() {
    require_bpf!();
    fanout_exact_count(GO_VERSIONS[GO_VERSIONS.len() - 1], Variant::Default);
}

/// `--level lifecycle` still accounts for every goroutine's creation (with its creator and
/// function) and exit, from newproc1's returns and goexit1 alone: no newproc entry probe (its
/// event would repeat go_create's), no state changes, no scheduler loop.
#[test]
fn lifecycle_level_creations_and_exits_only() {
    require_bpf!();
    let fanout = Sample::build("fanout", GO_VERSIONS[0], Variant::Default);
    let n = 40;
    let run = trace_fanout(
        &fanout,
        "launch-lifecycle",
        n,
        &["-q", "--level", "lifecycle"],
    );
    assert!(run.status.success(), "gmp-trace failed: {}", run.stderr);
    assert_eq!(run.summary["lost_events"], 0, "{}", run.stderr);
    let creates = of_kind(&run.events, "go_create");
    assert_eq!(creates.len(), 2 * n + 5, "go_create events");
    assert_eq!(run.summary["goroutines_created"], (2 * n + 5) as u64);
    let user: Vec<_> = creates
        .iter()
        .filter(|c| {
            c["start_fn"]
                .as_str()
                .is_some_and(|f| f.starts_with("main."))
        })
        .collect();
    assert_eq!(user.len(), 2 * n, "user goroutines");
    // Workers come from g1, their children from the workers: creators are real goroutines.
    assert!(
        user.iter()
            .all(|c| c["parent_goid"].as_u64().is_some_and(|p| p >= 1)),
        "a user goroutine without its creator"
    );
    let exits = of_kind(&run.events, "go_exit");
    assert_eq!(exits.len(), 2 * n, "go_exit events");
    // Probed (goexit1), not derived: no status changes at this level to derive them from.
    assert!(
        exits.iter().all(|e| e.get("derived").is_none()),
        "{exits:?}"
    );
    for kind in ["newproc", "go_status", "execute", "schedule", "acquire_p"] {
        assert_eq!(
            of_kind(&run.events, kind).len(),
            0,
            "{kind} events at level lifecycle"
        );
    }
}

#[test]
fn exit_status_and_stderr_pass_through() {
    require_bpf!();
    let run = Sample::build("fanout", GO_VERSIONS[0], Variant::Default)
        .trace("launch-exit-status")
        .opts(["-q"])
        .args(["not-a-number"])
        .run();
    assert_eq!(
        run.status.code(),
        Some(2),
        "the child's exit code becomes ours"
    );
    assert_eq!(run.summary["exit_code"], 2);
    assert!(
        run.stderr.contains("usage: fanout"),
        "child stderr passes through: {}",
        run.stderr
    );
}
