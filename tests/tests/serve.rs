//! `gmp-trace serve` against the real thing: a Prometheus server (Debian's `prometheus`, which
//! `cargo xtask bootstrap` installs) started here with its own config in a temporary directory,
//! scraping serve every second, while sample Go programs start and stop. What users rely on:
//! - the goroutine counts Prometheus stores are the programs' own (leaky's NumGoroutine, its
//!   pool parked on `chan receive`); churn's burst shows in the created and exited totals, its
//!   GC cycles in the GC total, exactly;
//! - a program started after serve appears; one that exited reports up 0, then its series
//!   vanish once the grace period is over;
//! - with `--with sched`, the burst's goroutines are in the latency histogram;
//! - a shell loop of short-lived Go processes (`go version`) neither crashes serve nor leaves
//!   series behind;
//! - our page passes `promtool check metrics`; deploy/'s scrape config passes `promtool check
//!   config`; every metric the Grafana dashboard queries is one serve exports; the DaemonSet
//!   keeps the settings docs/serve.md explains (no cluster here: its keys are checked);
//! - a port in use is one clear error and exit code 1; a --pid that is not Go is a log line.
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use gmp_trace_tests::pid::Target;
use gmp_trace_tests::{
    build_sample, gmp_trace_bin, go_binary, scratch_dir, workspace_root, Variant, GO_VERSIONS,
};

/// Prometheus and promtool, or a failure saying how to get them (never a silent pass).
fn prometheus_tools() -> (PathBuf, PathBuf) {
    let find = |name: &str| -> PathBuf {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .expect("sh");
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            !p.is_empty(),
            "{name} is missing: run `cargo xtask bootstrap` (installs Debian's prometheus)"
        );
        PathBuf::from(p)
    };
    (find("prometheus"), find("promtool"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn lines_of(child: &mut Child) -> Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn next(rx: &Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the program answers")
}

/// leaky with a steady count: (process, pid, NumGoroutine, pool size).
fn start_leaky() -> (Target, u32, u64, u64) {
    let bin = build_sample("leaky", GO_VERSIONS[0], Variant::Default);
    let mut child = Command::new(&bin)
        .env("LEAK_EVERY_MS", "0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start leaky");
    let rx = lines_of(&mut child);
    let pool = next(&rx);
    let pool: u64 = pool.strip_prefix("ready ").unwrap().parse().unwrap();
    let n = next(&rx);
    let n: u64 = n.strip_prefix("goroutines ").unwrap().parse().unwrap();
    let pid = child.id();
    (Target(child), pid, n, pool)
}

/// Runs an HTTP GET with curl: (status, body).
fn get(url: &str, query: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-m", "5", "-w", "\n%{http_code}", "-G", url]);
    if let Some(q) = query {
        c.args(["--data-urlencode", &format!("query={q}")]);
    }
    let out = c.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Prometheus's answer to an instant query: each series' labels and value.
fn query(prom: u16, q: &str) -> Vec<(serde_json::Value, f64)> {
    let (code, body) = get(&format!("http://127.0.0.1:{prom}/api/v1/query"), Some(q));
    if code != 200 {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let val = r["value"][1].as_str().and_then(|s| s.parse().ok());
                    (r["metric"].clone(), val.unwrap_or(f64::NAN))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `q` until `ok` holds for its answer; the last answer on timeout (a failure).
fn wait_for(
    prom: u16,
    q: &str,
    within: Duration,
    ok: impl Fn(&[(serde_json::Value, f64)]) -> bool,
) -> Vec<(serde_json::Value, f64)> {
    let t0 = Instant::now();
    loop {
        let r = query(prom, q);
        if ok(&r) {
            return r;
        }
        assert!(
            t0.elapsed() < within,
            "Prometheus never answered `{q}` as expected within {within:?}; last answer: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn one_value(r: &[(serde_json::Value, f64)]) -> Option<f64> {
    (r.len() == 1).then(|| r[0].1)
}

/// churn, ready, with its stdin.
struct Churn {
    _target: Target,
    pid: u32,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Churn {
    fn start() -> Churn {
        let bin = build_sample("churn", GO_VERSIONS[0], Variant::Default);
        let mut child = Command::new(&bin)
            .env("GOGC", "off")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start churn");
        let stdin = child.stdin.take().unwrap();
        let lines = lines_of(&mut child);
        assert_eq!(next(&lines), "ready");
        Churn {
            pid: child.id(),
            _target: Target(child),
            stdin,
            lines,
        }
    }

    fn ask(&mut self, cmd: &str) -> u64 {
        writeln!(self.stdin, "{cmd}").unwrap();
        let a = next(&self.lines);
        a.rsplit_once(' ').unwrap().1.parse().unwrap()
    }
}

/// serve, killed on drop.
fn start_serve(args: &[&str]) -> Target {
    Target(
        Command::new(gmp_trace_bin())
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gmp-trace serve"),
    )
}

fn start_prometheus(dir: &Path, prometheus: &Path, port: u16, target: u16) -> Target {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
             scrape_configs:\n  - job_name: gmptrace\n    static_configs:\n\
             \x20     - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    Target(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    )
}

/// Metric family names on a page in the 0.0.4 text format (what a PromQL selector names).
fn names_on(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The `gmptrace_*` names the dashboard's queries use.
fn dashboard_names() -> BTreeSet<String> {
    let path = workspace_root().join("deploy/grafana-dashboard.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid JSON");
    let mut names = BTreeSet::new();
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{} panels", panels.len());
    for p in panels {
        let targets = p["targets"].as_array().expect("each panel has queries");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            let e = t["expr"].as_str().expect("expr");
            for (i, _) in e.match_indices("gmptrace_") {
                let n: String = e[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.insert(n);
            }
        }
    }
    names
}

#[test]
fn prometheus_scrapes_serve() {
    let (prometheus, promtool) = prometheus_tools();
    if !is_root() {
        eprintln!("SKIPPED: not root: serve reads other processes' memory");
        return;
    }
    let dir = scratch_dir("serve-prometheus");
    let (leaky, leaky_pid, leaky_n, pool) = start_leaky();
    let mut churn = Churn::start();
    let serve_port = free_port();
    let prom_port = free_port();
    let listen = format!("127.0.0.1:{serve_port}");
    // Only the samples (other tests may run Go programs meanwhile): by path.
    let _serve = start_serve(&[
        "--listen",
        &listen,
        "--all",
        "--exe-filter",
        "/(leaky|churn|goloop)$",
        "--interval",
        "1s",
        "--grace",
        "3s",
        "--with",
        "sched",
    ]);
    let _prom = start_prometheus(&dir, &prometheus, prom_port, serve_port);
    let within = Duration::from_secs(20);

    // The scrape works, and the page is valid.
    wait_for(prom_port, "up{job=\"gmptrace\"}", within, |r| {
        one_value(r) == Some(1.0)
    });
    let (code, _) = get(&format!("http://{listen}/healthz"), None);
    assert_eq!(code, 200);
    let (_, page) = get(&format!("http://{listen}/metrics"), None);
    let (ok, said) = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .output_with(&page);
    assert!(ok, "promtool check metrics:\n{said}\n{page}");
    let exported = names_on(&page);
    let missing: Vec<_> = dashboard_names()
        .into_iter()
        .filter(|n| !exported.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics serve does not export: {missing:?}"
    );

    // leaky's goroutines, as it counts them.
    let q = format!("sum(gmptrace_goroutines{{pid=\"{leaky_pid}\"}})");
    wait_for(prom_port, &q, within, |r| {
        one_value(r) == Some(leaky_n as f64)
    });
    let q = format!("gmptrace_goroutines_waiting{{pid=\"{leaky_pid}\",reason=\"chan receive\"}}");
    wait_for(prom_port, &q, within, |r| one_value(r) == Some(pool as f64));
    let info = query(
        prom_port,
        &format!("gmptrace_process_info{{pid=\"{leaky_pid}\"}}"),
    );
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].0["go_version"], format!("go{}", GO_VERSIONS[0]));
    assert!(
        info[0].0["exe"].as_str().unwrap().ends_with("/leaky"),
        "{info:?}"
    );

    // A shell loop of short-lived Go processes runs through the rest.
    // A copy of `go` of our own, so that other tests' Go commands are not in our counts.
    let go = dir.join("goloop");
    std::fs::copy(go_binary(GO_VERSIONS[0]), &go).unwrap();
    let mut shell = Target(
        Command::new("sh")
            .args([
                "-c",
                &format!("while :; do {} version >/dev/null 2>&1; done", go.display()),
            ])
            .spawn()
            .expect("sh"),
    );

    // churn: a burst of goroutines that all exit, and GC cycles on command.
    let created = format!("gmptrace_goroutines_created_total{{pid=\"{}\"}}", churn.pid);
    let exited = format!("gmptrace_goroutines_exited_total{{pid=\"{}\"}}", churn.pid);
    let c0 = one_value(&wait_for(prom_port, &created, within, |r| r.len() == 1)).unwrap();
    let e0 = one_value(&wait_for(prom_port, &exited, within, |r| r.len() == 1)).unwrap();
    assert_eq!(churn.ask("go 500"), 500);
    let c1 = wait_for(prom_port, &created, within, |r| {
        one_value(r).is_some_and(|v| v >= c0 + 500.0)
    });
    let e1 = wait_for(prom_port, &exited, within, |r| {
        one_value(r).is_some_and(|v| v >= e0 + 500.0)
    });
    let (dc, de) = (one_value(&c1).unwrap() - c0, one_value(&e1).unwrap() - e0);
    // The goid generator less the Ps' caches counts creations exactly; the runtime may start a
    // goroutine or two of its own meanwhile.
    eprintln!("a burst of 500: created +{dc}, exited +{de}");
    assert!((500.0..=505.0).contains(&dc), "created +{dc}");
    assert!((500.0..=505.0).contains(&de), "exited +{de}");
    // --with sched: every one of the burst's goroutines waited to run once at least.
    let q = format!(
        "gmptrace_sched_latency_seconds_count{{pid=\"{}\"}}",
        churn.pid
    );
    wait_for(prom_port, &q, within, |r| {
        one_value(r).is_some_and(|n| n >= 500.0)
    });
    let q = format!(
        "histogram_quantile(0.5, gmptrace_sched_latency_seconds_bucket{{pid=\"{}\"}})",
        churn.pid
    );
    let p50 = one_value(&query(prom_port, &q)).unwrap_or(f64::NAN);
    eprintln!("churn's median scheduling latency: {p50}s");
    assert!(p50 > 0.0 && p50 < 0.1, "median scheduling latency {p50}s");
    let gc = churn.ask("gc 3");
    let q = format!("gmptrace_gc_cycles_total{{pid=\"{}\"}}", churn.pid);
    wait_for(prom_port, &q, within, |r| one_value(r) == Some(gc as f64));

    // A program started now appears; leaky, stopped, reports up 0, then goes.
    let (_second, second_pid, second_n, _) = start_leaky();
    let q = format!("sum(gmptrace_goroutines{{pid=\"{second_pid}\"}})");
    wait_for(prom_port, &q, within, |r| {
        one_value(r) == Some(second_n as f64)
    });
    drop(leaky);
    let up = format!("gmptrace_process_up{{pid=\"{leaky_pid}\"}}");
    wait_for(prom_port, &up, within, |r| one_value(r) == Some(0.0));
    wait_for(
        prom_port,
        &format!("{{pid=\"{leaky_pid}\"}}"),
        within,
        |r| r.is_empty(),
    );

    // The shell loop: serve stayed up, and no `go version` outlives the grace.
    let _ = shell.0.kill();
    let _ = shell.0.wait();
    let (code, _) = get(&format!("http://{listen}/healthz"), None);
    assert_eq!(
        code, 200,
        "serve survives a loop of short-lived Go processes"
    );
    let seen = one_value(&query(prom_port, "gmptrace_agent_processes_seen_total")).unwrap_or(0.0);
    eprintln!("serve saw {seen} Go processes");
    assert!(seen >= 3.0, "the loop's processes were seen ({seen})");
    let q = "count(gmptrace_process_info{comm=\"goloop\"})";
    wait_for(prom_port, q, within, |r| r.is_empty());
    wait_for(prom_port, "up{job=\"gmptrace\"}", within, |r| {
        one_value(r) == Some(1.0)
    });
}

/// Writes `input` to the command's stdin: (success, stdout and stderr).
trait OutputWith {
    fn output_with(&mut self, input: &str) -> (bool, String);
}

impl OutputWith for Command {
    fn output_with(&mut self, input: &str) -> (bool, String) {
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// A port in use is one clear line and exit code 1; a --pid that is not Go is said in the log
/// and the Go one next to it is still served.
#[test]
fn bad_input() {
    if !is_root() {
        eprintln!("SKIPPED: not root: serve reads other processes' memory");
        return;
    }
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(gmp_trace_bin())
        .args(["serve", "--all", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("port is in use") && err.contains("--listen"),
        "{err}"
    );

    let (_leaky, leaky_pid, _, _) = start_leaky();
    let mut sleep = Target(Command::new("sleep").arg("30").spawn().unwrap());
    let port = free_port();
    let out = Command::new(gmp_trace_bin())
        .args(["serve", "--duration", "3s", "--interval", "500ms"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--pid",
            &sleep.0.id().to_string(),
            "--pid",
            &leaky_pid.to_string(),
        ])
        .args(["--pid", "999999999"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (code, page) = get(&format!("http://127.0.0.1:{port}/metrics"), None);
    let done = out.wait_with_output().unwrap();
    let _ = sleep.0.kill();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert_eq!(code, 200);
    assert!(
        page.contains(&format!("gmptrace_goroutines{{pid=\"{leaky_pid}\"")),
        "{page}"
    );
    assert!(
        err.contains(&format!("pid {} does not run a Go program", sleep.0.id())),
        "{err}"
    );
}

/// deploy/: the scrape config passes promtool; the DaemonSet keeps what docs/serve.md says it
/// needs (no cluster here: the keys are checked, not applied).
#[test]
fn deploy_files() {
    let (_, promtool) = prometheus_tools();
    let deploy = workspace_root().join("deploy");
    let out = Command::new(&promtool)
        .args(["check", "config"])
        .arg(deploy.join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ds = std::fs::read_to_string(deploy.join("daemonset.yaml")).unwrap();
    for want in [
        "kind: DaemonSet",
        "hostPID: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "- ALL",
        "- SYS_PTRACE",
        "- DAC_READ_SEARCH",
        "path: /healthz",
        "limits:",
        "- serve",
        "- --all",
        "clusterIP: None",
    ] {
        assert!(ds.contains(want), "daemonset.yaml lacks `{want}`");
    }
    // Parsed as Kubernetes would read it (PyYAML: the interpreter's, or the copy the bootstrap
    // installs): the three objects, and the settings that matter where they belong.
    let script = r#"
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ds = next(d for d in docs if d["kind"] == "DaemonSet")
pod = ds["spec"]["template"]["spec"]
c = pod["containers"][0]
print(json.dumps({
    "kinds": sorted(d["kind"] for d in docs),
    "hostPID": pod.get("hostPID"),
    "args": c["args"],
    "readOnlyRootFilesystem": c["securityContext"]["readOnlyRootFilesystem"],
    "escalation": c["securityContext"]["allowPrivilegeEscalation"],
    "drop": c["securityContext"]["capabilities"]["drop"],
    "add": c["securityContext"]["capabilities"]["add"],
    "probe": c["livenessProbe"]["httpGet"]["path"],
    "limits": sorted(c["resources"]["limits"]),
    "selector_matches": ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items(),
}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(deploy.join("daemonset.yaml"))
        .env("PYTHONPATH", gmp_trace_tests::tools_dir().join("pyyaml"))
        .output()
        .expect("python3 (cargo xtask bootstrap makes sure it has PyYAML)");
    assert!(
        out.status.success(),
        "daemonset.yaml does not parse as Kubernetes objects:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["kinds"],
        serde_json::json!(["DaemonSet", "Namespace", "Service"]),
        "{v}"
    );
    assert_eq!(v["hostPID"], true, "{v}");
    assert_eq!(v["readOnlyRootFilesystem"], true, "{v}");
    assert_eq!(v["escalation"], false, "{v}");
    assert_eq!(v["drop"], serde_json::json!(["ALL"]), "{v}");
    for cap in ["SYS_PTRACE", "DAC_READ_SEARCH"] {
        assert!(v["add"].as_array().unwrap().iter().any(|c| c == cap), "{v}");
    }
    assert_eq!(v["probe"], "/healthz", "{v}");
    assert!(
        v["args"][0] == "serve" && v["args"].as_array().unwrap().iter().any(|a| a == "--all"),
        "{v}"
    );
    assert!(!v["limits"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["selector_matches"], true, "{v}");
    assert!(!dashboard_names().is_empty());
}
