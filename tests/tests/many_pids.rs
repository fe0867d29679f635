//! Several processes in one run: `--pid` repeated and `--all --exe-filter`. Each process is
//! traced by a session of its own; the outputs are joined: JSONL events carry their pid, the
//! Perfetto file has a process per pid (read back by Perfetto's own trace processor), the
//! summary lists `processes` with each one's identity, the graph has a node per process. Under
//! `--all` a process that exits mid-trace loses its probes at once and one started mid-trace is
//! picked up. The samples run from copies with names of their own, so the filter picks exactly
//! them among whatever else the machine runs.
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::pid::{links_held_by, Target};
use gmp_trace_tests::{
    build_sample, gmp_trace_bin, read_jsonl, require_bpf, require_perfetto_tools, scratch_dir,
    trace_processor, Variant, GO_VERSIONS, PERFETTO_IMPORT_PROBLEMS_SQL,
};
use serde_json::Value;

/// Copies parker to `dir/name` (a name no other process has) and starts it looping.
fn start_copy(dir: &Path, name: &str) -> (Target, u32, PathBuf) {
    let src = build_sample("parker", GO_VERSIONS[0], Variant::Default);
    let exe = dir.join(name);
    std::fs::copy(&src, &exe).unwrap();
    let mut child = spawn_copy(Command::new(&exe).arg("-loop").stdout(Stdio::piped()));
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("parker pid {pid}"));
    (Target(child), pid, std::fs::canonicalize(exe).unwrap())
}

/// Spawns a program just copied. Another test thread forking while the copy was open for
/// writing holds it open in its child until that child execs: ETXTBSY (26) for a moment.
fn spawn_copy(cmd: &mut Command) -> std::process::Child {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(26) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            r => break r.expect("start a copied sample"),
        }
    }
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The summary's processes by pid.
fn processes(s: &Value) -> BTreeMap<u64, Value> {
    s["processes"]
        .as_array()
        .expect("processes[]")
        .iter()
        .map(|p| (p["pid"].as_u64().unwrap(), p.clone()))
        .collect()
}

/// Identity and today's keys in one process's summary object.
fn assert_process(p: &Value, exe: &Path) {
    assert_eq!(p["exe"], exe.display().to_string(), "{p}");
    assert!(
        p["go_version"].as_str().unwrap().starts_with("go1.27"),
        "{p}"
    );
    assert_eq!(p["module_path"], "example.com/parker", "{p}");
    assert_eq!(p["comm"], exe.file_name().unwrap().to_str().unwrap());
    assert!(p["cgroup"].is_string(), "{p}");
    for k in ["container_id", "ns_pid", "parent_pid"] {
        assert!(p.get(k).is_some(), "no {k}: {p}");
    }
    // Today's keys, with the process seen working.
    assert_eq!(p["mode"], "pid");
    assert_eq!(p["lost_events"], 0, "{p}");
    assert!(p["goroutines_created"].as_u64().unwrap() > 20, "{p}");
    let fns = p["goroutines_by_start_fn"].to_string();
    assert!(fns.contains("main.round.func1"), "{fns}");
    assert!(p["probes"].as_array().unwrap().len() >= 10);
}

/// Two samples traced with `--pid A --pid B` into one Perfetto file, summary and graph.
#[test]
fn repeated_pid_combines_outputs() {
    require_perfetto_tools();
    require_bpf!();
    let dir = scratch_dir("many-pids");
    let (_a, pid_a, exe_a) = start_copy(&dir, "manyA");
    let (_b, pid_b, exe_b) = start_copy(&dir, "manyB");
    let (trace, sum, graph) = (
        dir.join("t.pftrace"),
        dir.join("s.json"),
        dir.join("g.json"),
    );
    let out = Command::new(gmp_trace_bin())
        .args(["--pid", &pid_a.to_string(), "--pid", &pid_b.to_string()])
        .args(["-d", "1500ms", "-o", trace.to_str().unwrap()])
        .args(["--summary-json", sum.to_str().unwrap()])
        .args(["--graph", graph.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // One human block per process.
    for (pid, exe) in [(pid_a, &exe_a), (pid_b, &exe_b)] {
        assert!(
            stderr.contains(&format!("=== pid {pid} {}", exe.display())),
            "{stderr}"
        );
    }

    let s = summary(&sum);
    assert_eq!(s["mode"], "pids");
    assert_eq!(s["not_traced"], serde_json::json!([]));
    let ps = processes(&s);
    assert_eq!(
        ps.keys().copied().collect::<Vec<_>>(),
        [pid_a, pid_b].map(u64::from)
    );
    assert_process(&ps[&u64::from(pid_a)], &exe_a);
    assert_process(&ps[&u64::from(pid_b)], &exe_b);

    let g = summary(&graph);
    let ids: BTreeSet<&str> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    for pid in [pid_a, pid_b] {
        assert!(ids.contains(format!("process:{pid}").as_str()), "{ids:?}");
        assert!(
            ids.iter()
                .any(|i| i.starts_with(&format!("{pid}/G:main.round"))),
            "{ids:?}"
        );
    }

    // Perfetto: a process per pid, named after it, each with its goroutine tracks; the two
    // packet sequences import without errors.
    let q = trace_processor(
        &trace,
        &[
            "SELECT pid, name FROM process WHERE pid != 0 ORDER BY pid",
            "SELECT p.pid AS pid, count(*) AS n FROM process_track t JOIN process p USING (upid) \
             WHERE t.name LIKE 'G%' GROUP BY p.pid ORDER BY p.pid",
            PERFETTO_IMPORT_PROBLEMS_SQL,
        ],
    );
    let procs: Vec<(u64, String)> = q[0]
        .iter()
        .map(|r| {
            (
                r["pid"].as_u64().unwrap(),
                r["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        procs,
        [(pid_a, "manyA"), (pid_b, "manyB")].map(|(p, n)| (u64::from(p), n.to_string()))
    );
    let with_gs: Vec<u64> = q[1].iter().map(|r| r["pid"].as_u64().unwrap()).collect();
    assert_eq!(with_gs, [pid_a, pid_b].map(u64::from), "{:?}", q[1]);
    for r in &q[1] {
        assert!(r["n"].as_u64().unwrap() > 20, "{:?}", q[1]);
    }
    assert!(q[2].is_empty(), "import problems: {:?}", q[2]);
}

/// `--all --exe-filter`: A runs from the start and is killed mid-trace (its links go at once,
/// B's stay); B starts mid-trace and is picked up; nothing else on the machine is traced.
#[test]
fn all_follows_processes_coming_and_going() {
    require_bpf!();
    let dir = scratch_dir("many-all");
    let (mut a, pid_a, exe_a) = start_copy(&dir, "allA");
    let (events, sum) = (dir.join("e.jsonl"), dir.join("s.json"));
    let filter = format!("^{}/all[AB]$", dir.canonicalize().unwrap().display());
    let mut tracer = Command::new(gmp_trace_bin())
        .args(["--all", "--exe-filter", &filter, "-d", "5s"])
        .args(["-o", events.to_str().unwrap()])
        .args(["--summary-json", sum.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tracer_pid = tracer.id();
    let mut err = BufReader::new(tracer.stderr.take().unwrap());
    let mut said = String::new();
    let mut line = String::new();
    while !said.contains(&format!("attached to pid {pid_a}")) {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "ended early: {said}");
        said += &line;
    }
    let started_b = Instant::now();
    let (_b, pid_b, exe_b) = start_copy(&dir, "allB");
    while !said.contains(&format!("attached to pid {pid_b}")) {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "B never attached: {said}"
        );
        said += &line;
    }
    let found_b = started_b.elapsed();
    let linked = |pid| {
        links_held_by(tracer_pid)
            .iter()
            .filter(|l| l.pid == Some(pid))
            .count()
    };
    assert!(
        linked(pid_a) > 0 && linked(pid_b) > 0,
        "multi links of both"
    );
    std::thread::sleep(Duration::from_millis(500));
    let _ = a.0.kill();
    let _ = a.0.wait();
    // A's session ends with its exit: its probes go, B's stay.
    let deadline = Instant::now() + Duration::from_secs(2);
    while linked(pid_a) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(linked(pid_a), 0, "A's links outlived it");
    assert!(linked(pid_b) > 0, "B's links went with A's");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = tracer.wait().unwrap();
    said += &rest;
    assert!(status.success(), "{said}");
    assert!(said.contains(&format!("pid {pid_a} exited")), "{said}");
    eprintln!("B found and attached {found_b:?} after it started");

    let s = summary(&sum);
    assert_eq!(s["mode"], "all");
    let ps = processes(&s);
    assert_eq!(
        ps.keys().copied().collect::<Vec<_>>(),
        [pid_a, pid_b].map(u64::from)
    );
    assert_process(&ps[&u64::from(pid_a)], &exe_a);
    assert_process(&ps[&u64::from(pid_b)], &exe_b);
    let dur = |pid: u32| ps[&u64::from(pid)]["duration_ns"].as_u64().unwrap();
    assert!(
        dur(pid_a) < 4_000_000_000,
        "A traced until its exit: {}",
        dur(pid_a)
    );

    // Every event is one of theirs; A's stop before B's do, B's start after A's.
    let evs = read_jsonl(&events);
    let mut span: BTreeMap<u64, (u64, u64, usize)> = BTreeMap::new();
    for e in &evs {
        let pid = e["pid"].as_u64().expect("every event has a pid");
        let ts = e["ts"].as_u64().unwrap();
        let s = span.entry(pid).or_insert((ts, ts, 0));
        (s.0, s.1, s.2) = (s.0.min(ts), s.1.max(ts), s.2 + 1);
    }
    assert_eq!(
        span.keys().copied().collect::<Vec<_>>(),
        [pid_a, pid_b].map(u64::from)
    );
    let (sa, sb) = (span[&u64::from(pid_a)], span[&u64::from(pid_b)]);
    assert!(sa.2 > 1000 && sb.2 > 1000, "{span:?}");
    assert!(sb.0 > sa.0 && sa.1 < sb.1, "{span:?}");
}

/// `--all` and a process that execs its own file again (a self re-exec keeps the pid, the start
/// time and the path): the old image's session ends at the exec, its summary saying so, and
/// the new image is traced by a session of its own, from soon after its exec.
#[test]
fn all_traces_a_process_that_execs_its_own_file_again() {
    require_bpf!();
    let dir = scratch_dir("many-all-reexec").canonicalize().unwrap();
    let exe = dir.join("reexecer");
    std::fs::copy(
        build_sample("execer", GO_VERSIONS[0], Variant::Default),
        &exe,
    )
    .unwrap();
    let mut target = Target(spawn_copy(
        Command::new(&exe)
            .args(["-wait", "-workers", "2", "-exec"])
            .arg(&exe)
            .args(["--", "-child", "-pause", "700ms", "-workers", "6"])
            .args(["-sleep", "300ms"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    ));
    let pid = target.0.id();
    let mut out = BufReader::new(target.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "execer ready");
    let (events, sum) = (dir.join("e.jsonl"), dir.join("s.json"));
    let filter = format!("^{}/reexecer$", dir.display());
    let mut tracer = Command::new(gmp_trace_bin())
        .args(["--all", "--exe-filter", &filter, "-d", "20s"])
        .args(["-o", events.to_str().unwrap()])
        .args(["--summary-json", sum.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(tracer.stderr.take().unwrap());
    let mut said = String::new();
    let attached = format!("attached to pid {pid}");
    let mut read_until = |said: &mut String, n: usize| {
        while said.matches(&attached).count() < n {
            let mut l = String::new();
            assert!(err.read_line(&mut l).unwrap() > 0, "ended early: {said}");
            *said += &l;
        }
    };
    read_until(&mut said, 1);
    // The exec: the new image pauses, then runs its 6 goroutines, sleeps and exits.
    let exec_at = Instant::now();
    writeln!(target.0.stdin.as_mut().unwrap()).unwrap();
    read_until(&mut said, 2);
    let again_after = exec_at.elapsed();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "execer child ran 6 goroutines");
    assert!(target.0.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    said += &rest;
    assert!(tracer.wait().unwrap().success(), "{said}");
    eprintln!("the new image's probes were in {again_after:?} after the exec");

    let s = summary(&sum);
    let ps: Vec<&Value> = s["processes"].as_array().unwrap().iter().collect();
    assert_eq!(ps.len(), 2, "one report per image: {s:#}");
    let (old, new) = (ps[0], ps[1]);
    for p in [old, new] {
        assert_eq!(p["pid"], pid, "{p}");
        assert_eq!(p["exe"], exe.display().to_string(), "{p}");
    }
    assert_eq!(
        old["exec"]["path"],
        exe.display().to_string(),
        "the old image's summary says it exec'd: {old}"
    );
    assert!(new.get("exec").is_none(), "{new}");
    assert_eq!(
        new["goroutines_by_start_fn"]["main.run.func1"], 6,
        "the new image's goroutines: {new}"
    );
    assert!(
        new["attached_after_exec_ms"].as_f64().is_some(),
        "the new image's delay from its exec: {new}"
    );
    // The events of both images carry the pid; the new image's come after the exec.
    let exec_ts = old["exec"]["ts"].as_u64().unwrap();
    let evs = read_jsonl(&events);
    let after = evs
        .iter()
        .filter(|e| e["pid"] == pid && e["ts"].as_u64().unwrap() > exec_ts)
        .count();
    assert!(after > 20, "{after} events of the new image");
}

/// What a multi-process run cannot do is refused before anything is traced.
#[test]
fn go_trace_of_several_processes_is_refused() {
    let out = Command::new(gmp_trace_bin())
        .args(["--pid", "1", "--pid", "2", "-o", "x.gotrace"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--format go writes one process"), "{e}");
}
