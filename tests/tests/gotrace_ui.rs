//! `go tool trace` serving one of our `--format go --stacks` files (issue 19), read as a person
//! would through its web UI on 127.0.0.1: the goroutine analysis lists the program's goroutines
//! by start function, and the synchronization blocking and scheduler latency profiles (fetched
//! raw and read by `go tool pprof`) name the program's functions where they blocked and waited;
//! and the timeline, opened in headless Chromium (Playwright: tests/gotrace_ui/timeline.js),
//! imports the file, shows a track per P and finds the goroutines by name; its screenshot is
//! kept in the run's directory. Needs root and BPF.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::pprof::go_pprof;
use gmp_trace_tests::{
    go_binary, require_bpf, tools_dir, workspace_root, Sample, Variant, GO_VERSIONS,
};

/// `go tool trace -http` on a free port, killed when dropped.
struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(file: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(go_binary(GO_VERSIONS[0]))
        .args(["tool", "trace", &format!("-http=127.0.0.1:{port}")])
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .env("BROWSER", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start go tool trace");
    let server = Server(child, port);
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "go tool trace never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// GET `path` over HTTP/1.0; the body.
fn get(port: u16, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&all[..at]).to_string();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{path}: {head}"
    );
    all[at + 4..].to_vec()
}

#[test]
fn go_tool_trace_web_ui_reads_our_trace() {
    require_bpf!();
    let s = Sample::build("blockspots", GO_VERSIONS[0], Variant::Default);
    let run = s
        .trace("gotrace-ui")
        .output("x.gotrace")
        .opts(["--stacks"])
        .run();
    assert!(run.status.success(), "{}", run.stderr);
    let server = serve(&run.dir.join("x.gotrace"));

    let goroutines = String::from_utf8_lossy(&get(server.1, "/goroutines")).to_string();
    // Named by start function as for Go's own traces: for `go f(x)`, f, not the wrapper the
    // compiler makes for the statement (main.main.gowrap1 calls main.waitChan).
    for f in ["main.waitChan", "main.waitMutex", "main.worker"] {
        assert!(
            goroutines.contains(f),
            "goroutine analysis lacks {f}:\n{goroutines}"
        );
    }
    assert!(
        !goroutines.contains("gowrap"),
        "a wrapper named:\n{goroutines}"
    );
    // The profiles as pprof protos (the HTML form needs Graphviz), read by go tool pprof.
    for (page, want) in [
        ("/block?raw=1", &["main.recvHere", "main.lockHere"][..]),
        ("/sched?raw=1", &["main."][..]),
    ] {
        let file = run.dir.join(format!("{}.pb.gz", &page[1..6]));
        std::fs::write(&file, get(server.1, page)).unwrap();
        let top = go_pprof(&["-top", "-nodecount=200"], &file);
        for w in want {
            assert!(
                top.stdout.contains(w),
                "{page}: no {w}:\n{}{}",
                top.stdout,
                top.stderr
            );
        }
        println!("{page}: {} lines of pprof -top", top.stdout.lines().count());
    }
    timeline(server.1, &run.dir);
}

/// The timeline (`/trace?view=proc`, Go's Catapult viewer) in headless Chromium: it imports our
/// file without a page error, shows a track for each P the program had (GOMAXPROCS=2 here at
/// least: two Ps ran goroutines), and its find box finds the goroutines by the names the
/// goroutine analysis gives them, and nothing for a name that is not in the trace.
fn timeline(port: u16, dir: &Path) {
    let playwright = tools_dir().join("playwright/node_modules");
    assert!(
        playwright.join("playwright-core").exists(),
        "playwright-core is not installed under {} (cargo xtask test installs it)",
        playwright.display()
    );
    let png = dir.join("timeline.png");
    let out = Command::new("node")
        .arg(workspace_root().join("tests/gotrace_ui/timeline.js"))
        .arg(format!("http://127.0.0.1:{port}/trace?view=proc"))
        .arg(&png)
        .args(["main.waitChan", "main.worker", "nosuch.func"])
        .env("NODE_PATH", &playwright)
        .output()
        .expect("run node (cargo xtask test installs Node.js and Chromium)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "timeline.js failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("timeline.js's JSON");
    assert_eq!(r["errors"], serde_json::json!([]), "page errors: {r}");
    assert_eq!(
        r["imported"], true,
        "the trace never finished importing: {r}"
    );
    let labels: Vec<&str> = r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    for want in [
        "PROCS (pid 0)",
        "Proc 0",
        "Proc 1",
        "Goroutines:",
        "Threads:",
    ] {
        assert!(labels.contains(&want), "no {want:?} track: {labels:?}");
    }
    for (name, at_least) in [("main.waitChan", 1), ("main.worker", 1)] {
        let n = r["matches"][name].as_i64().unwrap_or(-1);
        assert!(
            n >= at_least,
            "the timeline finds {n} slices of {name}: {r}"
        );
    }
    assert_eq!(r["matches"]["nosuch.func"], 0, "{r}");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        png.display()
    );
    println!("timeline: {r}\nscreenshot: {}", png.display());
}
