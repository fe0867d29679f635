//! `-f/--follow`: the launched program's Go descendants, each traced from its first
//! instruction. `gmp-trace -f -- go test -count=1 ./...` over tests/go/multipkg shows every test
//! binary as a process of its own, with its startup and the goroutines its test reports having
//! started; an exec of the program's own pid (a new image) is a new process; a non-Go child is
//! listed and let go; a launched program that is not Go (a shell) is let run and its Go
//! children traced; the run lasts while the tree has live members; the exit code is the
//! launched program's.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use gmp_trace_tests::std_suites::goroot;
use gmp_trace_tests::{
    build_sample, gmp_trace_bin, require_bpf, require_perfetto_tools, scratch_dir, trace_processor,
    workspace_root, Variant, GO_VERSIONS, PERFETTO_IMPORT_PROBLEMS_SQL,
};
use serde_json::Value;

/// `go test -count=1 PKGS` in tests/go/multipkg with the Go environment the std suites use,
/// each test's report going to `report`; under `gmp-trace -f GMP...` when `gmp` is given.
fn go_test(gmp: Option<&[&str]>, pkgs: &str, report: &Path, fail: bool) -> Output {
    let root = goroot(GO_VERSIONS[0]);
    let target = workspace_root().join("target");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![root.join("bin")];
    paths.extend(std::env::split_paths(&path));
    let mut cmd = match gmp {
        Some(opts) => {
            let mut c = Command::new(gmp_trace_bin());
            c.arg("-f").args(opts).args(["--", "go"]);
            c
        }
        None => Command::new(root.join("bin/go")),
    };
    cmd.args(["test", "-count=1", pkgs])
        .current_dir(workspace_root().join("tests/go/multipkg"))
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("GOROOT", &root)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", target.join("go-cache"))
        .env("GOPATH", target.join("go-path"))
        .env("MULTIPKG_REPORT", report);
    if fail {
        cmd.env("MULTIPKG_FAIL", "1");
    }
    cmd.output().expect("run go test")
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn go_test_shows_every_test_binary() {
    require_perfetto_tools();
    require_bpf!();
    let dir = scratch_dir("follow-go-test");
    let report = dir.join("report");
    std::fs::create_dir_all(&report).unwrap();
    let (sum, trace, graph) = (
        dir.join("s.json"),
        dir.join("t.pftrace"),
        dir.join("g.json"),
    );
    // Untraced first: the build cache is warm after it, so the traced run times the tests, not
    // the compiler (every compile would be a followed process too).
    let warm = go_test(None, "./...", &report, false);
    assert!(warm.status.success(), "{warm:?}");
    let out = go_test(
        Some(&[
            "--summary-json",
            sum.to_str().unwrap(),
            "-o",
            trace.to_str().unwrap(),
            "--graph",
            graph.to_str().unwrap(),
        ]),
        "./...",
        &report,
        false,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let s = summary(&sum);
    assert_eq!(s["mode"], "follow");
    let ps = s["processes"].as_array().unwrap();
    let root = ps
        .iter()
        .find(|p| p["mode"] == "launch")
        .expect("the go command");
    assert_eq!(root["comm"], "go");
    assert_eq!(root["exit_code"], 0);
    let mut held = Vec::new();
    for pkg in ["alpha", "beta", "gamma"] {
        let p = ps
            .iter()
            .find(|p| p["comm"] == format!("{pkg}.test"))
            .unwrap_or_else(|| panic!("no {pkg}.test among {:?}", comms(ps)));
        // Probed before its first instruction: its startup begins with rt0_go.
        assert_eq!(p["mode"], "follow");
        assert_eq!(p["startup_observed"], true, "{p}");
        assert_eq!(p["startup"][0]["phase"], "rt0_go", "{}", p["startup"]);
        assert!(
            p["runtime_main"].as_array().is_some_and(|a| !a.is_empty()),
            "{p}"
        );
        assert_eq!(p["parent_pid"], root["pid"], "the go command ran it");
        assert_eq!(p["module_path"], "example.com/multipkg");
        assert_eq!(p["lost_events"], 0);
        // The goroutines its test says it started, seen by their start function.
        let reported: u64 = std::fs::read_to_string(report.join(pkg))
            .unwrap_or_else(|e| panic!("{pkg}'s test wrote no report ({e}): {stderr}"))
            .trim()
            .parse()
            .unwrap();
        let seen = &p["goroutines_by_start_fn"]["example.com/multipkg.Spawn.func1"];
        assert_eq!(
            seen.as_u64(),
            Some(reported),
            "{pkg}: {}",
            p["goroutines_by_start_fn"]
        );
        held.push(p["exec_held_ns"].as_u64().expect("exec_held_ns"));
        assert!(
            stderr.contains(&format!("{pkg}.test (go1.27")),
            "no human block for {pkg}.test: {stderr}"
        );
    }
    eprintln!("test binaries held stopped at exec for {held:?} ns");

    // The graph's process tree: the go command ran each test binary.
    let g = summary(&graph);
    for p in ps.iter().filter(|p| p["mode"] == "follow") {
        let edge = g["edges"].as_array().unwrap().iter().any(|e| {
            e["kind"] == "parent_of"
                && e["from"] == format!("process:{}", root["pid"])
                && e["to"] == format!("process:{}", p["pid"])
        });
        assert!(edge, "no parent_of edge to {}", p["comm"]);
    }

    let q = trace_processor(
        &trace,
        &[
            "SELECT pid, name FROM process WHERE name LIKE '%.test' ORDER BY name",
            PERFETTO_IMPORT_PROBLEMS_SQL,
        ],
    );
    let names: Vec<&str> = q[0].iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["alpha.test", "beta.test", "gamma.test"]);
    assert!(q[1].is_empty(), "import problems: {:?}", q[1]);
}

/// A failing test: gmp-trace exits with go test's code.
#[test]
fn go_test_exit_code_is_passed_on() {
    require_bpf!();
    let dir = scratch_dir("follow-go-test-fail");
    let out = go_test(Some(&["-q"]), "./gamma", &dir, true);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn comms(ps: &[Value]) -> Vec<String> {
    ps.iter().map(|p| p["comm"].to_string()).collect()
}

/// execer re-execs itself (same pid, new image: a process of its own), then a run whose new
/// image is not Go (listed, let go).
#[test]
fn exec_of_a_new_image_and_non_go_children() {
    require_perfetto_tools();
    require_bpf!();
    let dir = scratch_dir("follow-exec");
    let bin = build_sample("execer", GO_VERSIONS[0], Variant::Default);
    let bin = bin.to_str().unwrap();
    let (sum, trace, graph) = (
        dir.join("s.json"),
        dir.join("t.pftrace"),
        dir.join("g.json"),
    );
    let out = Command::new(gmp_trace_bin())
        .args(["-f", "-q", "--summary-json", sum.to_str().unwrap()])
        .args(["--graph", graph.to_str().unwrap()])
        .args(["-o", trace.to_str().unwrap(), "--"])
        .args([bin, "-workers", "4", "-exec", bin, "--"])
        .args(["-child", "-workers", "6", "-code", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let s = summary(&sum);
    let by_mode: BTreeMap<String, &Value> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["mode"].as_str().unwrap().to_string(), p))
        .collect();
    let workers = |m: &str| by_mode[m]["goroutines_by_start_fn"]["main.run.func1"].as_u64();
    assert_eq!(workers("launch"), Some(4), "{s}");
    assert_eq!(workers("follow"), Some(6), "{s}");
    assert_eq!(by_mode["launch"]["pid"], by_mode["follow"]["pid"]);
    assert_eq!(by_mode["follow"]["startup"][0]["phase"], "rt0_go");
    // In Perfetto each image is a process of its own with its own goroutine tracks (ids start
    // over in the new image: one G1 track would hold both images' runtime.main).
    let pid = by_mode["launch"]["pid"].as_u64().unwrap();
    let q = trace_processor(
        &trace,
        &[
            &format!("SELECT upid FROM process WHERE pid = {pid}"),
            &format!(
                "SELECT t.id, count(s.id) AS n FROM process_track t JOIN process p USING (upid) \
                 LEFT JOIN slice s ON s.track_id = t.id \
                 WHERE p.pid = {pid} AND t.name LIKE 'G1 %' GROUP BY t.id"
            ),
            PERFETTO_IMPORT_PROBLEMS_SQL,
        ],
    );
    assert_eq!(q[0].len(), 2, "a process per image: {:?}", q[0]);
    assert_eq!(q[1].len(), 2, "a G1 track per image: {:?}", q[1]);
    for g1 in &q[1] {
        assert!(g1["n"].as_u64().unwrap() > 0, "{:?}", q[1]);
    }
    assert!(q[2].is_empty(), "import problems: {:?}", q[2]);
    // In the graph too: a node per image, the second reached by an `execs` edge, each with
    // its own goroutines.
    let g = summary(&graph);
    let node = |id: String| g["nodes"].as_array().unwrap().iter().any(|n| n["id"] == id);
    assert!(
        node(format!("process:{pid}")) && node(format!("process:{pid}.1")),
        "{g}"
    );
    let execs = g["edges"].as_array().unwrap().iter().any(|e| {
        e["kind"] == "execs"
            && e["from"] == format!("process:{pid}")
            && e["to"] == format!("process:{pid}.1")
    });
    assert!(execs, "no execs edge: {g}");
    let prefixed = |p: &str| {
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["id"].as_str().unwrap().starts_with(p))
            .count()
    };
    assert!(
        prefixed(&format!("{pid}/")) > 0 && prefixed(&format!("{pid}.1/")) > 0,
        "{g}"
    );

    let out = Command::new(gmp_trace_bin())
        .args(["-f", "--summary-json", sum.to_str().unwrap(), "--"])
        .args([bin, "-workers", "4", "-exec", "/bin/true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("not Go, not traced"), "{stderr}");
    let s = summary(&sum);
    assert_eq!(s["processes"].as_array().unwrap().len(), 1);
    let nt = &s["not_traced"][0];
    assert_eq!(nt["reason"], "not Go, not traced", "{s}");
    assert!(nt["exe"].as_str().unwrap().ends_with("/true"), "{s}");

    // A launched program that is not Go runs untraced, listed; nothing else to trace here.
    let out = Command::new(gmp_trace_bin())
        .args([
            "-f",
            "--summary-json",
            sum.to_str().unwrap(),
            "--",
            "/bin/true",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    assert!(e.contains("not Go, not traced"), "{e}");
    let s = summary(&sum);
    assert_eq!(s["processes"].as_array().unwrap().len(), 0, "{s}");
    assert!(s["not_traced"][0]["exe"]
        .as_str()
        .unwrap()
        .ends_with("/true"));
}

/// A shell as the launched program (not Go, let run untraced): the Go programs it runs are
/// traced from their first instruction, and gmp-trace exits with the shell's code.
#[test]
fn shell_root_and_its_go_children() {
    require_bpf!();
    let dir = scratch_dir("follow-shell");
    let bin = build_sample("execer", GO_VERSIONS[0], Variant::Default);
    let bin = bin.to_str().unwrap();
    let sum = dir.join("s.json");
    let script = format!(
        "{bin} -child -workers 3; /bin/true; {bin} -child -workers 5 -code 4; echo \"$?\"; \
         /bin/true; /bin/true; exit 5"
    );
    let out = Command::new(gmp_trace_bin())
        .args(["-f", "--summary-json", sum.to_str().unwrap(), "--"])
        .args(["/bin/sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().last(),
        Some("4")
    );
    let s = summary(&sum);
    let ps = s["processes"].as_array().unwrap();
    let mut workers: Vec<u64> = ps
        .iter()
        .map(|p| {
            assert_eq!(p["mode"], "follow", "{p}");
            assert_eq!(p["startup"][0]["phase"], "rt0_go", "{p}");
            p["goroutines_by_start_fn"]["main.run.func1"]
                .as_u64()
                .unwrap()
        })
        .collect();
    workers.sort_unstable();
    assert_eq!(workers, [3, 5], "{s}");
    let nt = &s["not_traced"][0];
    assert_eq!(nt["reason"], "not Go, not traced", "{s}");
    assert!(nt["exe"].as_str().unwrap().ends_with("sh"), "{s}");
    assert!(stderr.contains("following its children"), "{stderr}");
    // Three runs of /bin/true: one entry that counts them, said once.
    let trues: Vec<&Value> = s["not_traced"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["exe"].as_str().unwrap().ends_with("/true"))
        .collect();
    assert_eq!(trues.len(), 1, "{s}");
    assert_eq!(trues[0]["count"], 3, "{s}");
    assert_eq!(trues[0]["reason"], "not Go, not traced", "{s}");
    let said = stderr
        .lines()
        .filter(|l| l.contains("/true): not Go"))
        .count();
    assert_eq!(said, 1, "{stderr}");
}

/// The launched program exits while a child it started in the background lives on and runs a
/// Go program later: the run lasts until the tree has no live member, and that program is
/// traced; the exit code stays the launched program's.
#[test]
fn a_child_outliving_the_launched_program_is_followed() {
    require_bpf!();
    let dir = scratch_dir("follow-outlive");
    let bin = build_sample("execer", GO_VERSIONS[0], Variant::Default);
    let bin = bin.to_str().unwrap();
    let sum = dir.join("s.json");
    let script = format!("(sleep 1.5; exec {bin} -child -workers 7) >/dev/null & exit 2");
    let out = Command::new(gmp_trace_bin())
        .args(["-f", "--summary-json", sum.to_str().unwrap(), "--"])
        .args(["/bin/sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let s = summary(&sum);
    let ps = s["processes"].as_array().unwrap();
    assert_eq!(ps.len(), 1, "{s}");
    assert_eq!(ps[0]["goroutines_by_start_fn"]["main.run.func1"], 7);
    assert_eq!(ps[0]["startup"][0]["phase"], "rt0_go");
}

/// A process the launched program left behind that never exits (a daemon): the run goes on
/// for it, says so, and a signal to gmp-trace once the launched program is gone ends the run
/// with the launched program's code (the daemon runs on).
#[test]
fn a_signal_ends_the_run_once_the_launched_program_is_gone() {
    require_bpf!();
    let dir = scratch_dir("follow-daemon");
    let pidfile = dir.join("pid");
    // The sleep must not hold our pipe of gmp-trace's stderr open.
    let script = format!(
        "sleep 60 >/dev/null 2>&1 & echo $! > {}; exit 6",
        pidfile.display()
    );
    let mut gmp = Command::new(gmp_trace_bin())
        .args(["-f", "--", "/bin/sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        gmp.try_wait().unwrap().is_none(),
        "ended while the tree lives"
    );
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(gmp.id() as i32, libc::SIGINT) };
    let out = gmp.wait_with_output().unwrap();
    let daemon: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = Path::new(&format!("/proc/{daemon}")).exists();
    // SAFETY: as above; the sleep this test started.
    unsafe { libc::kill(daemon, libc::SIGKILL) };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("still run"), "{stderr}");
    assert!(alive, "the daemon was let run");
}
