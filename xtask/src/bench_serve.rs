//! `cargo xtask bench --only serve`: what `gmp-trace serve` (the fleet endpoint) costs the
//! programs it watches, against the same workload with no agent running, in interleaved
//! rounds: with the default sources (a read of the runtime's memory and /proc each interval,
//! no probe) and with `--with sched` (two uprobes per process: the opt-in latency histogram).
//!
//! serve runs as the DaemonSet runs it (`--all`, narrowed to the bench binary so that other
//! processes of the machine are not read) at a 1 s interval, started before the workload and
//! stopped after it; the workloads are long enough (1-2 s untraced) to be read a few times each, and the
//! reads each run got are counted from serve's own /metrics (its read-duration histogram).
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use gmp_trace_tests::{build_sample, Variant};

use crate::bench::{run_once, workload, Mode, Sample};
use crate::measure::median;

/// The configurations of a round, in order.
const CONFIGS: [(&str, &[&str]); 3] = [
    ("untraced", &[]),
    ("serve", &["--interval", "1s"]),
    (
        "serve --with sched",
        &["--interval", "1s", "--with", "sched"],
    ),
];

/// serve, started on a free port, narrowed to `exe`.
struct Agent {
    child: Child,
    port: u16,
}

impl Agent {
    fn start(gmp: &Path, exe: &Path, extra: &[&str]) -> anyhow::Result<Agent> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let filter = format!("^{}$", regex_escape(&exe.display().to_string()));
        let child = Command::new(gmp)
            .args(["serve", "--all", "--exe-filter", &filter])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting gmp-trace serve")?;
        // Bound and past its first scan before the workload starts.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Agent { child, port })
    }

    /// Reads of the workload so far, from serve's own read-duration histogram.
    fn reads(&self) -> Option<f64> {
        let out = Command::new("curl")
            .args(["-s", "-m", "2"])
            .arg(format!("http://127.0.0.1:{}/metrics", self.port))
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            l.strip_prefix("gmptrace_agent_read_duration_seconds_count ")?
                .trim()
                .parse()
                .ok()
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// One workload's rounds: its table row.
fn measure(
    gmp: &Path,
    scratch: &Path,
    runs: usize,
    name: &str,
    cmd: &[String],
) -> anyhow::Result<String> {
    eprintln!("xtask: bench serve {name}: {runs} interleaved rounds");
    let exe = Path::new(&cmd[0]);
    let mut samples: Vec<Vec<Sample>> = CONFIGS.iter().map(|_| Vec::new()).collect();
    let mut reads: Vec<Vec<f64>> = CONFIGS.iter().map(|_| Vec::new()).collect();
    let mut failed = [0usize; CONFIGS.len()];
    for _ in 0..runs {
        for (i, (_, extra)) in CONFIGS.iter().enumerate() {
            let agent = if i == 0 {
                None
            } else {
                Some(Agent::start(gmp, exe, extra)?)
            };
            // A run that fails (under --with sched a server workload can run out of file
            // descriptors as requests pile up) is counted, not fatal: the other columns stand.
            match run_once(gmp, Mode::Untraced, cmd, scratch) {
                Ok(s) => samples[i].push(s),
                Err(e) => {
                    eprintln!(
                        "xtask: bench serve {name} ({}): a run failed: {e:#}",
                        CONFIGS[i].0
                    );
                    failed[i] += 1;
                }
            }
            if let Some(n) = agent.as_ref().and_then(Agent::reads) {
                reads[i].push(n);
            }
        }
    }
    let base = median(samples[0].iter().map(|s| s.elapsed_ns).collect());
    let base_cpu = median(samples[0].iter().map(|s| s.cpu_ns).collect());
    let walls: Vec<f64> = samples[0].iter().map(|s| s.elapsed_ns / 1e6).collect();
    let lo = walls.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = walls.iter().copied().fold(0.0, f64::max);
    let mut row = format!(
        "| {name} | {:.1} ms wall ({lo:.0}..{hi:.0}), {:.1} ms CPU |",
        base / 1e6,
        base_cpu / 1e6
    );
    if samples[0].is_empty() {
        anyhow::bail!("every untraced run of {name} failed");
    }
    for ((s, r), nfail) in samples.iter().zip(&reads).zip(failed).skip(1) {
        if s.is_empty() {
            let _ = write!(row, " every run failed |");
            continue;
        }
        if nfail > 0 {
            let _ = write!(row, " ({nfail} of {runs} runs failed)");
        }
        let e = median(s.iter().map(|s| s.elapsed_ns).collect());
        let c = median(s.iter().map(|s| s.cpu_ns).collect());
        let _ = write!(
            row,
            " {:+.1}% wall, {:+.1}% CPU ({:.0} reads) |",
            (e / base - 1.0) * 100.0,
            (c / base_cpu - 1.0) * 100.0,
            median(r.clone())
        );
    }
    Ok(row)
}

pub fn serve_overhead(gmp: &Path, scratch: &Path, runs: usize, go: &str) -> anyhow::Result<String> {
    let bench = build_sample("bench", go, Variant::Default);
    let workloads = [
        (
            "channel ping-pong (10M round trips)",
            workload(&bench, "pingpong", 10_000_000),
        ),
        (
            "spawn storm (5M goroutines)",
            workload(&bench, "spawn", 5_000_000),
        ),
        (
            "net/http at a bounded load (10k requests, 5k/s)",
            workload(&bench, "httprate", 10_000),
        ),
    ];
    let mut t = String::from(
        "`gmp-trace serve --all --exe-filter BENCH --interval 1s` running while the workload \
         runs, against the same workload with no agent, on the workload's own time (wall and CPU \
         of its work, as it reports them); serve is started 300 ms before each run and stopped \
         after it. `serve` = the default sources (a read of the runtime's memory, a few runtime \
         globals and /proc each second: no probe); `--with sched` adds the opt-in latency \
         histogram's two uprobes (a trap on every goroutine state change). Reads = reads of the \
         workload serve made per run (median). Target for the default sources: <= 1% slower, \
         <= 1% more CPU.\n\n\
         | workload | untraced (min..max wall) | serve | serve --with sched |\n|---|---|---|---|\n",
    );
    for (name, cmd) in &workloads {
        let row = measure(gmp, scratch, runs, name, cmd)?;
        eprintln!("{row}");
        let _ = writeln!(t, "{row}");
    }
    Ok(t)
}
