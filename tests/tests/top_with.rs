//! `gmp-trace top --with lifecycle,sched` and the GC line, held against tests/go/churn: on
//! command it starts N goroutines that exit at once (site main.burst) and runs N GC cycles
//! (GOGC=off: no cycle it was not asked for), then reports its own NumGC; with RATE it also
//! starts RATE goroutines a second (site main.steady).
//!
//! The contract:
//! - lifecycle counts every creation and exit: a burst's creations at its site, exactly;
//! - a steady rate shows as that rate per interval, within the timer's jitter;
//! - sched gives a latency line with samples; the footer names each probe set with its cost;
//! - the GC line counts the cycles exactly and its total agrees with the program's NumGC; a
//!   stripped binary says n/a;
//! - while top runs it holds the probes' links; after it exits none is left and the target's
//!   code is as it was.
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use gmp_trace_tests::pid::{all_link_ids, links_held_by, text_snapshot, Target};
use gmp_trace_tests::{build_sample, gmp_trace_bin, require_bpf, Variant, GO_VERSIONS};

/// churn, started and ready, with its stdin to command it and its stdout lines.
struct Churn {
    target: Target,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Churn {
    fn start(variant: Variant, rate: u32) -> Churn {
        let bin = build_sample("churn", GO_VERSIONS[0], variant);
        let mut child = Command::new(&bin)
            .env("GOGC", "off")
            .env("RATE", rate.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start churn");
        let stdin = child.stdin.take().unwrap();
        let lines = lines_of(&mut child);
        let c = Churn {
            target: Target(child),
            stdin,
            lines,
        };
        assert_eq!(c.next(), "ready");
        c
    }

    fn pid(&self) -> u32 {
        self.target.0.id()
    }

    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("churn answers")
    }

    /// Sends a command and returns the answer's number.
    fn ask(&mut self, cmd: &str, answer: &str) -> u64 {
        writeln!(self.stdin, "{cmd}").unwrap();
        let line = self.next();
        let n = line.strip_prefix(answer).map(|n| n.trim().parse().unwrap());
        n.unwrap_or_else(|| panic!("churn said {line:?} to {cmd:?}"))
    }
}

/// A child's stdout, line by line, from a thread.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

fn top(pid: u32, extra: &[&str]) -> Child {
    Command::new(gmp_trace_bin())
        .args(["top", "--pid", &pid.to_string(), "--batch"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gmp-trace top")
}

/// What the probes' and GC lines of one batch frame say.
#[derive(Debug, Default)]
struct Frame {
    interval_ms: f64,
    created: Option<u64>,
    exited: Option<u64>,
    /// "created at:" rows: (count, site).
    sites: Vec<(u64, String)>,
    gc_cycles: Option<u64>,
    gc_na: bool,
    latency_runs: Option<u64>,
    probes: Option<String>,
}

impl Frame {
    fn at(&self, function: &str) -> u64 {
        let prefix = format!("{function} ");
        self.sites
            .iter()
            .filter(|s| s.1.starts_with(&prefix))
            .map(|s| s.0)
            .sum()
    }
}

fn num(s: &str) -> u64 {
    s.trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {s:?}"))
}

fn parse(text: &str) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("gmp-trace top - ") {
            let every = rest.split(" - every ").nth(1).unwrap();
            frames.push(Frame {
                interval_ms: num(every.split_whitespace().next().unwrap()) as f64,
                ..Frame::default()
            });
            continue;
        }
        let f = frames.last_mut().expect("a frame title first");
        let w: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.trim().strip_prefix("GC: ") {
            f.gc_na = rest.starts_with("n/a");
            if !f.gc_na {
                f.gc_cycles = Some(num(w[1]));
            }
        } else if w.first() == Some(&"created") && w.get(2) == Some(&"exited") {
            f.created = Some(num(w[1]));
            f.exited = Some(num(w[3]));
        } else if let Some(rest) = line.trim().strip_prefix("created at: ") {
            for row in rest.split(", ") {
                let (n, site) = row.split_once(' ').unwrap();
                f.sites.push((num(n), site.to_string()));
            }
        } else if let Some(rest) = line.trim().strip_prefix("sched latency, ") {
            f.latency_runs = Some(num(rest.split_whitespace().next().unwrap()));
        } else if line.starts_with("probes: ") {
            f.probes = Some(line.to_string());
        }
    }
    frames
}

/// Stops top with SIGINT (the target keeps running) and returns its stdout.
fn stop(top: Child) -> String {
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    unsafe { libc::kill(top.id() as i32, libc::SIGINT) };
    let o = top.wait_with_output().expect("wait for top");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "top failed: {err}\n{out}");
    out
}

#[test]
fn with_probes_counts_every_goroutine_and_gc_cycle_and_leaves_nothing_behind() {
    require_bpf!();
    let mut churn = Churn::start(Variant::Default, 0);
    let pid = churn.pid();
    let before = text_snapshot(pid);
    let dir = gmp_trace_tests::scratch_dir("top-with");
    let json = dir.join("s.json");
    let mut t = top(
        pid,
        &[
            "--interval",
            "300ms",
            "--with",
            "lifecycle,sched",
            "--summary-json",
            json.to_str().unwrap(),
        ],
    );
    let frames_rx = lines_of(&mut t);
    // The first frame comes after every probe is attached.
    let first = frames_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a frame");
    assert!(first.starts_with("gmp-trace top - "), "{first}");
    let held = links_held_by(t.id());
    let mut programs: Vec<&str> = held.iter().map(|l| l.program.as_str()).collect();
    programs.sort();
    for p in ["casgstatus", "goexit1", "newproc1_ret"] {
        assert!(programs.contains(&p), "no {p} link held: {held:?}");
    }
    assert!(
        held.iter().all(|l| l.pid.is_none_or(|p| p == pid)),
        "a link filtered on another process: {held:?}"
    );
    assert_eq!(churn.ask("go 1000", "done"), 1000);
    let numgc = churn.ask("gc 5", "gcdone");
    // Two more frames see the end of the work.
    std::thread::sleep(Duration::from_millis(700));
    let mut out = first + "\n";
    out += &stop(t);
    // Until top's stdout closes (the reader thread then drops the sender).
    while let Ok(l) = frames_rx.recv_timeout(Duration::from_secs(10)) {
        out += &l;
        out += "\n";
    }
    let frames = parse(&out);
    assert!(frames.len() >= 3, "{out}");
    let burst: u64 = frames.iter().map(|f| f.at("main.burst")).sum();
    assert_eq!(burst, 1000, "creations at main.burst:\n{out}");
    let created: u64 = frames.iter().map(|f| f.created.unwrap()).sum();
    let exited: u64 = frames.iter().map(|f| f.exited.unwrap()).sum();
    assert!(
        created >= 1000 && exited >= 1000,
        "{created} {exited}\n{out}"
    );
    let cycles: u64 = frames.iter().map(|f| f.gc_cycles.unwrap()).sum();
    assert_eq!(cycles, 5, "GC cycles in the frames:\n{out}");
    assert!(
        frames.iter().any(|f| f.latency_runs.unwrap() > 0),
        "no latency samples:\n{out}"
    );
    for f in &frames {
        let p = f.probes.as_deref().unwrap_or_default();
        assert!(
            p.contains("lifecycle ") && p.contains("; sched ") && p.contains("hits/s"),
            "footer: {p:?}"
        );
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(s["goroutines_created"], created, "{s:#}");
    assert_eq!(s["goroutines_exited"], exited, "{s:#}");
    assert_eq!(s["gc"]["cycles"], 5, "{s:#}");
    // The runtime's own count, as the program read it after its last cycle.
    assert_eq!(s["gc"]["total_cycles"], numgc, "{s:#}");
    assert_eq!(s["last_frame"]["gc"]["total_cycles"], numgc, "{s:#}");
    assert!(s["sched_latency"]["samples"].as_u64().unwrap() > 0, "{s:#}");
    let names: Vec<&str> = s["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lifecycle", "sched"], "{s:#}");
    assert!(s["probes"][0]["hits"].as_u64().unwrap() >= 2000, "{s:#}");
    assert!(
        s["probes"][0]["ns_per_hit"].as_f64().unwrap() > 0.0,
        "{s:#}"
    );
    // Gone: the links, and every int3 from the target's code.
    let left = all_link_ids();
    let stayed: Vec<_> = held.iter().filter(|l| left.contains(&l.id)).collect();
    assert!(stayed.is_empty(), "links left after top exited: {stayed:?}");
    assert!(text_snapshot(pid) == before, "the target's code changed");
    assert_eq!(churn.ask("go 10", "done"), 10, "the target runs on");
}

#[test]
fn with_lifecycle_sees_a_steady_creation_rate() {
    require_bpf!();
    const RATE: f64 = 2000.0;
    let churn = Churn::start(Variant::Default, RATE as u32);
    let t = top(
        churn.pid(),
        &["-n", "4", "--interval", "500ms", "--with", "lifecycle"],
    );
    let o = t.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let frames = parse(&out);
    assert_eq!(frames.len(), 4, "{out}");
    // The first frame's interval began during the attach: from the second on.
    for f in &frames[1..] {
        let want = RATE * f.interval_ms / 1000.0;
        let got = f.at("main.steady") as f64;
        assert!(
            (got - want).abs() <= want * 0.25,
            "{got} creations in {} ms, want ~{want}:\n{out}",
            f.interval_ms
        );
        assert!(
            f.latency_runs.is_none(),
            "no sched line without --with sched"
        );
        assert!(f.probes.as_deref().is_some_and(|p| !p.contains("sched")));
    }
}

#[test]
fn without_probes_the_gc_line_is_there_and_stripped_binaries_say_na() {
    require_bpf!();
    for (variant, na) in [(Variant::Default, false), (Variant::Stripped, true)] {
        let churn = Churn::start(variant, 0);
        let t = top(churn.pid(), &["-n", "1", "--interval", "200ms"]);
        let o = t.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let frames = parse(&out);
        assert_eq!(frames.len(), 1, "{out}");
        let f = &frames[0];
        assert_eq!(f.gc_na, na, "{variant:?}:\n{out}");
        if !na {
            // churn's own GC came before "ready": none in the interval.
            assert_eq!(f.gc_cycles, Some(0), "{out}");
        }
        assert!(
            f.created.is_none() && f.probes.is_none(),
            "no probes: {out}"
        );
    }
}
