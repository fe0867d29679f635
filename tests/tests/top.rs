//! `gmp-trace top` held against a program of known shape: tests/go/leaky parks a steady pool of
//! POOL goroutines (created in main.startPool) and leaks one more goroutine (created in
//! main.leak) every LEAK_EVERY_MS; with SPIN=1 a goroutine main.spin burns a CPU.
//!
//! The command's contract:
//! - `top --pid N --batch -n 3 --interval 500ms`: three text frames on stdout, each with the
//!   panels; goroutine counts agree with the program's; the leaking site is flagged `leak?` once
//!   it rose at each of the last frames, the steady pool never.
//! - `--summary-json FILE`: the last frame and the run's totals, with the keys documented.
//! - the full-screen view draws the panels in a terminal, redraws on resize, and `q` gives the
//!   terminal back.
//! - no terminal, not a Go process, no such pid: a clear error, nothing drawn.
//! - keys (`/` filter, pick, Enter for stacks) and a launched program's output: top/keys.rs.
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::pid::Target;
use gmp_trace_tests::{build_sample, gmp_trace_bin, require_bpf, Variant, GO_VERSIONS};

/// The keys of the full-screen view, and a launched program's output.
#[path = "top/keys.rs"]
mod keys;

const POOL: usize = 8;

/// Starts leaky and waits for "ready POOL".
fn start_leaky(spin: bool) -> (Target, u32) {
    start_leaky_with(if spin { &[("SPIN", "1")] } else { &[] })
}

/// [`start_leaky`] with more of leaky's settings in its environment.
fn start_leaky_with(env: &[(&str, &str)]) -> (Target, u32) {
    let bin = build_sample("leaky", GO_VERSIONS[0], Variant::Default);
    let mut cmd = Command::new(&bin);
    cmd.env("POOL", POOL.to_string())
        .env("LEAK_EVERY_MS", "50")
        .envs(env.iter().copied())
        .stdout(Stdio::piped());
    let mut target = Target(cmd.spawn().expect("start leaky"));
    let pid = target.0.id();
    let mut line = String::new();
    BufReader::new(target.0.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read leaky's first line");
    assert_eq!(line.trim(), format!("ready {POOL}"), "leaky said {line:?}");
    (target, pid)
}

fn top(args: &[&str]) -> Output {
    Command::new(gmp_trace_bin())
        .arg("top")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run gmp-trace top")
}

/// One batch frame, as read back from its text.
#[derive(Debug, Default)]
struct TextFrame {
    goroutines: usize,
    chan_receive: usize,
    /// (site, live, leak?)
    sites: Vec<(String, usize, bool)>,
    panels: Vec<String>,
    /// What the Ps panel says of the global run queue ("-" when unknown).
    global_runq: Option<String>,
    /// The Ps' own run queues, added up.
    local_runq: u64,
    runnable: usize,
    /// Goroutines created and exited per second, from the goroutines panel's first line.
    created: f64,
    exited: f64,
}

impl TextFrame {
    fn site(&self, function: &str) -> (usize, bool) {
        self.sites
            .iter()
            .find(|s| s.0.starts_with(&format!("{function} ")))
            .map(|s| (s.1, s.2))
            .unwrap_or_else(|| panic!("no creation site {function} in {:?}", self.sites))
    }
}

fn parse_frames(text: &str) -> Vec<TextFrame> {
    let mut frames: Vec<TextFrame> = Vec::new();
    let mut in_sites = false;
    let mut in_ps = false;
    for line in text.lines() {
        if line.starts_with("gmp-trace top - ") {
            frames.push(TextFrame::default());
            in_sites = false;
            continue;
        }
        let Some(f) = frames.last_mut() else {
            panic!("text before the first frame title: {line:?}");
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        for panel in [
            "Ps:",
            "Ms:",
            "Goroutines:",
            "Creation sites",
            "CPU:",
            "samples lost:",
        ] {
            if line.starts_with(panel) {
                f.panels.push(panel.to_string());
            }
        }
        // A P's row, between "Ps:" and the global queue's line: id, status, M, G, runq, ...
        if line == "Ps:" {
            in_ps = true;
        } else if line.starts_with("global run queue:") {
            in_ps = false;
        } else if in_ps && words[0].parse::<i32>().is_ok() {
            f.local_runq += words[4].parse::<u64>().unwrap();
        }
        if let Some(states) = line.strip_prefix("  by state: ") {
            for s in states.split(", ") {
                if let Some(n) = s.strip_prefix("runnable ") {
                    f.runnable = n.parse().unwrap();
                }
            }
        }
        if let Some(rest) = line.strip_prefix("global run queue: ") {
            f.global_runq = Some(rest.to_string());
        }
        if let Some(rest) = line.strip_prefix("Goroutines: ") {
            f.goroutines = rest.split_whitespace().next().unwrap().parse().unwrap();
            let rate = |what: &str| -> f64 {
                let after = rest.split(what).nth(1).expect(what);
                after.split("/s").next().unwrap().parse().unwrap()
            };
            (f.created, f.exited) = (rate("created "), rate("exited "));
        }
        if words.len() >= 3 && words[1] == "chan" && words[2] == "receive" {
            f.chan_receive = words[0].parse().unwrap();
        }
        if line.starts_with("Creation sites") {
            in_sites = true;
            continue;
        }
        if line.starts_with("CPU:") {
            in_sites = false;
        }
        if in_sites && words.len() >= 4 && words[0].parse::<usize>().is_ok() {
            let leak = words[3] == "leak?";
            let site = words[if leak { 4 } else { 3 }..].join(" ");
            f.sites.push((site, words[0].parse().unwrap(), leak));
        }
    }
    frames
}

#[test]
fn batch_frames_count_the_goroutines_and_flag_the_leak() {
    require_bpf!();
    let (_target, pid) = start_leaky(false);
    let pid = pid.to_string();
    let o = top(&["--pid", &pid, "--batch", "-n", "3", "--interval", "500ms"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "top failed: {err}\n{out}");
    let frames = parse_frames(&out);
    assert_eq!(frames.len(), 3, "expected 3 frames:\n{out}");
    let mut leaked_before = 0;
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(
            f.panels,
            [
                "Ps:",
                "Ms:",
                "Goroutines:",
                "Creation sites",
                "CPU:",
                "samples lost:"
            ],
            "frame {i}"
        );
        let (pool, pool_leak) = f.site("main.startPool");
        assert_eq!(
            (pool, pool_leak),
            (POOL, false),
            "frame {i}: the steady pool"
        );
        let (leaked, _) = f.site("main.leak");
        assert!(
            leaked > leaked_before,
            "frame {i}: the leak must grow ({leaked} after {leaked_before})"
        );
        leaked_before = leaked;
        // Every goroutine but main has a creation site; the pool and the leak all wait on a
        // channel receive (the runtime's own goroutines wait on other things).
        let by_site: usize = f.sites.iter().map(|s| s.1).sum();
        assert_eq!(
            f.goroutines,
            by_site + 1,
            "frame {i}: total vs sites {:?}",
            f.sites
        );
        assert_eq!(f.chan_receive, POOL + leaked, "frame {i}: chan receive");
        // leaky ends no goroutine and starts one every 50 ms.
        assert_eq!(f.exited, 0.0, "frame {i}");
        assert!(f.created > 2.0, "frame {i}: created {}/s", f.created);
    }
    // Three rises in a row (attach, 1, 2, 3) are a leak by the default --leak-frames 3.
    assert!(
        frames[2].site("main.leak").1,
        "the leak not flagged:\n{out}"
    );
    for f in &frames {
        let flagged: Vec<_> = f.sites.iter().filter(|s| s.2).collect();
        assert!(
            flagged.iter().all(|s| s.0.starts_with("main.leak ")),
            "{flagged:?}"
        );
    }
}

#[test]
fn the_ps_panel_counts_the_global_run_queue() {
    require_bpf!();
    // 300 spinners on one P: its own queue holds 256 at most, and every preempted spinner goes
    // to the global queue, so that one always holds many of them.
    let (_target, pid) = start_leaky_with(&[("RUNNABLE", "300"), ("GOMAXPROCS", "1")]);
    let o = top(&[
        "--pid",
        &pid.to_string(),
        "--batch",
        "-n",
        "2",
        "--interval",
        "300ms",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "top failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let frames = parse_frames(&out);
    assert_eq!(frames.len(), 2, "{out}");
    for f in &frames {
        let n: u64 = f
            .global_runq
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no global run queue length:\n{out}"));
        assert!(
            (20..=300).contains(&n),
            "global run queue {n} with 300 spinners on one P:\n{out}"
        );
    }
    // The idle leaky of the other tests: an empty global queue.
    let (_idle, pid) = start_leaky(false);
    let o = top(&["--pid", &pid.to_string(), "--batch", "-n", "1"]);
    let frames = parse_frames(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(frames[0].global_runq.as_deref(), Some("0"));
}

#[test]
fn summary_json_has_the_last_frame_and_totals() {
    require_bpf!();
    let (_target, pid) = start_leaky(true);
    let dir = gmp_trace_tests::scratch_dir("top-summary");
    let path = dir.join("s.json");
    let pid = pid.to_string();
    let o = top(&[
        "--pid",
        &pid,
        "--batch",
        "--duration",
        "2s",
        "--interval",
        "500ms",
        "--summary-json",
        path.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "top failed: {err}");
    let frames = parse_frames(&String::from_utf8_lossy(&o.stdout));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the summary")).unwrap();
    for key in [
        "samples",
        "goroutines_by_state",
        "sites",
        "cpu_by_function",
        "procs",
        "threads",
        "lost_samples",
        "last_frame",
    ] {
        assert!(s.get(key).is_some(), "no {key:?} in {s:#}");
    }
    assert_eq!(s["frames"].as_u64(), Some(frames.len() as u64));
    assert!(frames.len() >= 3, "2 s at 500 ms: {} frames", frames.len());
    let by_state: u64 = s["goroutines_by_state"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        Some(by_state),
        s["last_frame"]["goroutines"]["total"].as_u64()
    );
    assert_eq!(by_state as usize, frames.last().unwrap().goroutines);
    let pool = s["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["site"].as_str().unwrap().starts_with("main.startPool "))
        .expect("the pool's site");
    assert_eq!(
        (pool["live"].as_u64(), pool["leak"].as_bool()),
        (Some(POOL as u64), Some(false))
    );
    // The samples add up, and the spinner has most of them.
    let cpu = s["cpu_by_function"].as_array().unwrap();
    let sum: u64 = cpu.iter().map(|x| x["samples"].as_u64().unwrap()).sum();
    assert_eq!(Some(sum), s["samples"].as_u64());
    assert!(
        sum > 50,
        "2 s of a spinning goroutine at 99 Hz: {sum} samples"
    );
    let top_start = &s["cpu_by_start_function"][0];
    assert_eq!(top_start["function"], "main.spin", "{s:#}");
    assert!(top_start["samples"].as_u64().unwrap() * 2 > sum, "{s:#}");
    assert!(s["threads"]["total"].as_u64().unwrap() >= 2);
    assert!(!s["procs"].as_array().unwrap().is_empty());
    assert!(s["lost_samples"].is_u64());
}

/// A tmux server of our own, with one session of a fixed size; killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A 120x40 terminal running `gmp-trace top --pid PID --interval 300ms`, and that command.
    fn with_top(pid: u32) -> Option<(Tmux, String)> {
        let tmux = Tmux::start(120, 40)?;
        let cmd = format!(
            "{} top --pid {pid} --interval 300ms",
            gmp_trace_bin().display()
        );
        tmux.run(&["send-keys", "-t", "top", &cmd, "Enter"]);
        Some((tmux, cmd))
    }

    fn start(cols: u16, rows: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("SKIPPED: tmux is not installed (cargo xtask bootstrap --tests installs it)");
            return None;
        }
        // One server per test: the tests of this file run at the same time.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Tmux {
            socket: format!("gmp-top-test-{}-{n}", std::process::id()),
        };
        t.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            "bash --norc --noprofile",
        ]);
        Some(t)
    }

    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// Presses q and waits for the shell's prompt, as a person would before typing: keys sent
    /// while top is still tearing down would reach top, not the shell.
    fn quit_to_shell(&self) -> String {
        self.run(&["send-keys", "-t", "top", "q"]);
        self.wait_for("the shell's prompt after q", |s| {
            !s.contains("┌ Ps ")
                && s.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .is_some_and(|l| l.starts_with("bash-") && l.trim_end().ends_with(['#', '$']))
        })
    }

    /// Waits until the screen satisfies `ok`; returns it.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no {what} in 20 s:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn the_full_screen_view_draws_resizes_and_gives_the_terminal_back() {
    require_bpf!();
    let (_target, pid) = start_leaky(false);
    let Some((tmux, cmd)) = Tmux::with_top(pid) else {
        return;
    };
    let s = tmux.wait_for("panels with leaky's goroutines", |s| {
        s.contains("main.startPool") && s.contains("main.leak")
    });
    for panel in [
        "┌ Ps ",
        "┌ Ms ",
        "┌ Goroutines ",
        "┌ Creation sites",
        "┌ CPU ",
        "samples lost:",
    ] {
        assert!(s.contains(panel), "no {panel:?} panel:\n{s}");
    }
    let width = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("┌ Ps "))
            .map(|l| l.chars().count())
            .unwrap_or(0)
    };
    assert_eq!(width(&s), 120, "the Ps box spans the pane:\n{s}");
    tmux.run(&["resize-window", "-t", "top", "-x", "90", "-y", "30"]);
    tmux.wait_for("a redraw at 90 columns", |s| {
        width(s) == 90 && s.contains("main.leak")
    });
    tmux.run(&["send-keys", "-t", "top", "?"]);
    tmux.wait_for("the help box", |s| s.contains("this help"));
    tmux.quit_to_shell();
    // The shell is back on the main screen: its prompt and our command line, no panel.
    tmux.run(&["send-keys", "-t", "top", "echo restored-$((40+2))", "Enter"]);
    let s = tmux.wait_for("the shell after q", |s| {
        s.lines().any(|l| l == "restored-42")
    });
    assert!(!s.contains("┌ Ps "), "a panel is left on the screen:\n{s}");
    assert!(
        s.contains(&cmd[..cmd.len().min(60)]),
        "the command line is gone:\n{s}"
    );
    // And out of raw mode: bash adopts the terminal's modes after a command that succeeded, so
    // a raw terminal left behind shows here as -icanon.
    tmux.run(&[
        "send-keys",
        "-t",
        "top",
        "echo raw=$(stty -a | grep -c -- -icanon)",
        "Enter",
    ]);
    let s = tmux.wait_for("stty's answer", |s| {
        s.lines().any(|l| l.starts_with("raw="))
    });
    assert!(
        s.lines().any(|l| l == "raw=0"),
        "the terminal is left raw:\n{s}"
    );
}

#[test]
fn bad_input_says_what_to_do() {
    require_bpf!();
    let (_target, pid) = start_leaky(false);
    // No terminal (stdin null, stdout a pipe): the full-screen view cannot run.
    let o = top(&["--pid", &pid.to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--batch"), "{err}");
    assert!(o.stdout.is_empty());
    // Not a Go process.
    let mut sleep = Target(Command::new("sleep").arg("60").spawn().unwrap());
    let o = top(&["--pid", &sleep.0.id().to_string(), "--batch", "-n", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not a Go program"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let _ = sleep.0.kill();
    // No such process.
    let o = top(&["--pid", "2147483646", "--batch", "-n", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("error:"), "{err}");
    assert!(err.contains("2147483646"), "the error names the pid: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_target_exiting_ends_top_with_the_last_frame() {
    require_bpf!();
    let (mut target, pid) = start_leaky(false);
    let child = Command::new(gmp_trace_bin())
        .args([
            "top",
            "--pid",
            &pid.to_string(),
            "--batch",
            "--interval",
            "300ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    target.0.kill().unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "top failed: {err}");
    assert!(
        err.contains("exited"),
        "top must say the program exited: {err}"
    );
    assert!(!parse_frames(&String::from_utf8_lossy(&o.stdout)).is_empty());
}
