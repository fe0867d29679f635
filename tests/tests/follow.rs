//! `-f/--follow`: the launched program's Go descendants, each traced from its first
//! instruction. `gmp-trace -f -- go test -count=1 ./...` over tests/go/multipkg shows every test
//! binary as a process of its own, with its startup and the goroutines its test reports having
//! started; an exec of the program's own pid (a new image) is a new process; a non-Go child is
//! listed and let go; the exit code is the launched program's.
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
    require_bpf!();
    let dir = scratch_dir("follow-exec");
    let bin = build_sample("execer", GO_VERSIONS[0], Variant::Default);
    let bin = bin.to_str().unwrap();
    let sum = dir.join("s.json");
    let out = Command::new(gmp_trace_bin())
        .args(["-f", "-q", "--summary-json", sum.to_str().unwrap(), "--"])
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

    // A launched program that is not Go is an error, as without -f.
    let out = Command::new(gmp_trace_bin())
        .args(["-f", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("not a Go program"), "{e}");
}
