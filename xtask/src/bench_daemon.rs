//! The daemon's side of `cargo xtask bench`: streaming at the highest event rate the machine
//! produces (and a deliberately tiny ring buffer, to show loss is counted), replay throughput
//! on one core and memory per live goroutine. Every figure is a median of interleaved rounds.
use std::fmt::Write as _;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use gmp_trace_tests::{build_sample, Variant};

use crate::measure::{json, median, num, run_measured, Usage};

pub struct Ctx {
    pub gmp: PathBuf,
    pub scratch: PathBuf,
    pub runs: usize,
    pub go: &'static str,
}

/// Streaming: the flood sample for 10 s at the full level with the default ring buffer (sized
/// for 1M events/s), then a 64 KiB ring buffer, which must lose events and say how many.
pub fn streaming(cx: &Ctx) -> anyhow::Result<String> {
    let flood = build_sample("flood", cx.go, Variant::Default);
    let summary = cx.scratch.join("stream-summary.json");
    let events = cx.scratch.join("stream-events.jsonl");
    let mut rows = Vec::new();
    let configs: [(&str, Option<&str>, &str); 2] = [
        (
            "default ring buffer (8 MiB, sized for 1M events/s)",
            None,
            "10s",
        ),
        ("64 KiB ring buffer (must lose)", Some("64K"), "2s"),
    ];
    // Per round: (events, lost, traced ns, produced events/s, lost in JSONL).
    type Round = (f64, f64, f64, f64, f64);
    let mut samples: Vec<Vec<Round>> = vec![Vec::new(); configs.len()];
    eprintln!("xtask: bench streaming: {} interleaved rounds", cx.runs);
    for _ in 0..cx.runs {
        for (i, (_, buf, dur)) in configs.iter().enumerate() {
            let mut c = Command::new(&cx.gmp);
            c.arg("-q").arg("--summary-json").arg(&summary);
            if let Some(b) = buf {
                c.args(["--buffer-size", b]).arg("-o").arg(&events);
            }
            c.arg("--")
                .arg(&flood)
                .args(["-pairs", "2", "-duration", dur]);
            run_measured(&mut c, &cx.scratch)?;
            let s = json(&summary)?;
            let (ev, lost, dur_ns) = (
                num(&s, "events"),
                num(&s, "lost_events"),
                num(&s, "duration_ns"),
            );
            // The loss as the JSONL stream reported it, to check against the summary.
            // Streamed line by line, parsing only `lost` events: xtask's own RSS must stay small,
            // because a child's peak RSS (wait4's ru_maxrss, used by the memory and daemon
            // sections) starts from its parent's at the spawn (the kernel keeps the pre-exec
            // high-water mark).
            let jsonl_lost = if buf.is_some() {
                let f = std::io::BufReader::new(File::open(&events)?);
                let mut sum = 0.0;
                for line in std::io::BufRead::lines(f) {
                    let line = line?;
                    if !line.contains("\"kind\":\"lost\"") {
                        continue;
                    }
                    if let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) {
                        sum += e["lost"].as_f64().unwrap_or(0.0);
                    }
                }
                sum
            } else {
                0.0
            };
            samples[i].push((ev, lost, dur_ns, (ev + lost) / dur_ns * 1e9, jsonl_lost));
        }
    }
    for (i, (name, _, _)) in configs.iter().enumerate() {
        let s = &samples[i];
        let col = |f: fn(&Round) -> f64| median(s.iter().map(f).collect());
        let lost_all: Vec<String> = s.iter().map(|x| format!("{:.0}", x.1)).collect();
        let jsonl_all: Vec<String> = s.iter().map(|x| format!("{:.0}", x.4)).collect();
        rows.push(format!(
            "| {name} | {:.2} s | {:.0} | {:.0} | {} | {} |",
            col(|x| x.2) / 1e9,
            col(|x| x.0),
            col(|x| x.3),
            lost_all.join(", "),
            if i == 0 {
                "-".to_string()
            } else {
                jsonl_all.join(", ")
            }
        ));
    }
    Ok(format!(
        "`flood -pairs 2` (two goroutine pairs bouncing over unbuffered channels on GOMAXPROCS=2), \
         traced at the `full` level. Rate = (events received + lost) / traced time: what the probes \
         produced. Lost is listed per round (summary `lost_events`), and for the small buffer also \
         as the sum of the JSONL `lost` events of the same run.\n\n\
         | ring buffer | traced | events | events/s produced | lost (per round) | lost in JSONL |\n\
         |---|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    ))
}

/// Daemon throughput: one recording of the flood sample replayed on one core (taskset -c 0),
/// decoding only into the model, and with JSONL or Perfetto output (to /dev/null, so the disk
/// is not measured).
pub fn daemon(cx: &Ctx) -> anyhow::Result<String> {
    let flood = build_sample("flood", cx.go, Variant::Default);
    let rec = cx.scratch.join("flood.gmpt");
    run_measured(
        Command::new(&cx.gmp)
            .arg("-q")
            .arg("--record")
            .arg(&rec)
            .arg("--")
            .arg(&flood)
            .args(["-pairs", "2", "-duration", "4s"]),
        &cx.scratch,
    )?;
    let summary = cx.scratch.join("daemon-summary.json");
    run_measured(
        Command::new(&cx.gmp)
            .arg("replay")
            .arg(&rec)
            .arg("-q")
            .arg("--summary-json")
            .arg(&summary),
        &cx.scratch,
    )?;
    let events = num(&json(&summary)?, "events");
    let configs: [(&str, &[&str]); 3] = [
        ("decode + model", &[]),
        (
            "decode + model + JSONL",
            &["-o", "/dev/null", "--format", "jsonl"],
        ),
        (
            "decode + model + Perfetto",
            &["-o", "/dev/null", "--format", "perfetto"],
        ),
    ];
    let mut samples: Vec<Vec<Usage>> = configs.iter().map(|_| Vec::new()).collect();
    eprintln!("xtask: bench daemon: {} interleaved rounds", cx.runs);
    for _ in 0..cx.runs {
        for (i, (_, extra)) in configs.iter().enumerate() {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"])
                .arg(&cx.gmp)
                .arg("replay")
                .arg(&rec)
                .arg("-q")
                .arg("--binary")
                .arg(&flood)
                .args(*extra);
            samples[i].push(run_measured(&mut c, &cx.scratch)?);
        }
    }
    let mut t = format!(
        "Replay of a recording of `flood -pairs 2 -duration 4s` ({events:.0} events, {:.0} MB), \
         pinned to one core; outputs to /dev/null. Events/s = events / median CPU time (user + \
         system) and / median wall time.\n\n\
         | pipeline | CPU | events/s (CPU) | wall | events/s (wall) | peak RSS |\n|---|---|---|---|---|---|\n",
        std::fs::metadata(&rec)?.len() as f64 / 1e6
    );
    for (i, (name, _)) in configs.iter().enumerate() {
        let cpu = median(samples[i].iter().map(|u| u.cpu_s).collect());
        let wall = median(samples[i].iter().map(|u| u.wall_s).collect());
        let rss = median(samples[i].iter().map(|u| u.max_rss_kb as f64).collect());
        let _ = writeln!(
            t,
            "| {name} | {:.3} s | {:.2}M | {:.3} s | {:.2}M | {:.1} MB |",
            cpu,
            events / cpu / 1e6,
            wall,
            events / wall / 1e6,
            rss / 1024.0
        );
    }
    Ok(t)
}

/// Memory: recordings of the flood sample holding N goroutines blocked at once (then releasing
/// them), replayed into the model and into Perfetto; peak RSS against N gives bytes per live G.
pub fn memory(cx: &Ctx) -> anyhow::Result<String> {
    let flood = build_sample("flood", cx.go, Variant::Default);
    let ns = [10_000u64, 100_000, 200_000];
    let mut recs = Vec::new();
    for n in ns {
        let rec = cx.scratch.join(format!("hold-{n}.gmpt"));
        let summary = cx.scratch.join(format!("hold-{n}.json"));
        run_measured(
            Command::new(&cx.gmp)
                .arg("-q")
                .arg("--record")
                .arg(&rec)
                .arg("--summary-json")
                .arg(&summary)
                .arg("--")
                .arg(&flood)
                .args(["-hold", &n.to_string(), "-for", "200ms"]),
            &cx.scratch,
        )?;
        let s = json(&summary)?;
        recs.push((
            n,
            rec,
            num(&s, "lost_events"),
            num(&s, "goroutines_live_at_end"),
        ));
    }
    let outs: [(&str, &[&str]); 2] = [
        ("model", &[]),
        (
            "model + Perfetto",
            &["-o", "/dev/null", "--format", "perfetto"],
        ),
    ];
    let mut rss: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); ns.len()]; outs.len()];
    eprintln!("xtask: bench memory: {} interleaved rounds", cx.runs);
    for _ in 0..cx.runs {
        for (i, n) in recs.iter().enumerate() {
            for (o, (_, extra)) in outs.iter().enumerate() {
                let u = run_measured(
                    Command::new(&cx.gmp)
                        .arg("replay")
                        .arg(&n.1)
                        .arg("-q")
                        .arg("--binary")
                        .arg(&flood)
                        .args(*extra),
                    &cx.scratch,
                )?;
                rss[o][i].push(u.max_rss_kb as f64 * 1024.0);
            }
        }
    }
    let mut t = String::from(
        "`flood -hold N -for 200ms`: N goroutines blocked on one channel at once, then released \
         (they exit). Its recording replayed; peak RSS of the daemon. Bytes per live G = the \
         slope between N = 10k and the larger N. Live at end: goroutines the model still holds \
         after they all exited (retired state is dropped).\n\n\
         | N live goroutines | events lost | live at end | peak RSS, model | bytes/G, model | peak RSS, + Perfetto | bytes/G, + Perfetto |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let m: Vec<Vec<f64>> = rss
        .iter()
        .map(|per| per.iter().map(|v| median(v.clone())).collect())
        .collect();
    for (i, (n, _, lost, live)) in recs.iter().enumerate() {
        let slope = |o: usize| {
            if i == 0 {
                "-".to_string()
            } else {
                format!("{:.0}", (m[o][i] - m[o][0]) / (*n - ns[0]) as f64)
            }
        };
        let _ = writeln!(
            t,
            "| {n} | {lost:.0} | {live:.0} | {:.1} MB | {} | {:.1} MB | {} |",
            m[0][i] / 1048576.0,
            slope(0),
            m[1][i] / 1048576.0,
            slope(1)
        );
    }
    Ok(t)
}

/// The BPF programs' own run time while `c` (a gmp-trace run) lives, from the fdinfo of its
/// program fds (kernel.bpf_stats_enabled must be on): (run_time_ns, run_cnt) by program name,
/// sampled until it exits. The same counters `bpftool prog show` prints, but only for this
/// process's programs (named once each through bpftool, which fdinfo does not do).
pub fn bpf_prog_stats(
    c: &mut Command,
) -> anyhow::Result<std::collections::BTreeMap<String, (f64, f64)>> {
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {}", crate::show(c)))?;
    let pid = child.id();
    let mut last: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    let mut names: std::collections::BTreeMap<u64, String> = Default::default();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            if !st.success() {
                bail!("{} failed: {st}", crate::show(c));
            }
            break;
        }
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) {
            for e in dir.flatten() {
                let Ok(text) = std::fs::read_to_string(e.path()) else {
                    continue;
                };
                let field = |k: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(k)?.trim().parse::<f64>().ok())
                };
                if let (Some(id), Some(ns), Some(cnt)) =
                    (field("prog_id:"), field("run_time_ns:"), field("run_cnt:"))
                {
                    let id = id as u64;
                    names.entry(id).or_insert_with(|| prog_name(id));
                    last.insert(id, (ns, cnt));
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut by_name: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for (id, (ns, cnt)) in last {
        let name = names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("prog {id}"));
        let e = by_name.entry(name).or_default();
        e.0 += ns;
        e.1 += cnt;
    }
    Ok(by_name)
}

/// A loaded BPF program's name, from `bpftool prog show id N`.
fn prog_name(id: u64) -> String {
    Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let rest = text.split(" name ").nth(1)?;
            Some(rest.split_whitespace().next()?.to_string())
        })
        .unwrap_or_else(|| format!("prog {id}"))
}

/// Turns kernel.bpf_stats_enabled on for its lifetime (and off again, even on error).
pub struct BpfStats;

impl BpfStats {
    pub fn enable() -> anyhow::Result<BpfStats> {
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")
            .context("enabling kernel.bpf_stats_enabled (needs root)")?;
        Ok(BpfStats)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0");
    }
}
