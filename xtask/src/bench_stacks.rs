//! `cargo xtask bench --only stacks`: what `--stacks` adds to a probe hit, measured in the
//! same interleaved rounds as `--level full` without it: per-hit cost from the workload's own
//! time (as the cost section does), and the BPF programs' own run time per hit from
//! kernel.bpf_stats (in separate runs: its clock reads would inflate the timings).
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use gmp_trace_tests::{build_sample, Variant};

use crate::bench::{run_once, workload, Mode, Sample};
use crate::measure::median;

/// The programs `--stacks` changes.
const STACKED: [&str; 3] = ["casgstatus", "newproc1_ret", "syscall_enter"];

pub(crate) fn stacks(gmp: &Path, scratch: &Path, runs: usize, go: &str) -> anyhow::Result<String> {
    let bench = build_sample("bench", go, Variant::Default);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut text = format!(
        "Load average when the section started: {} (the machine may be shared: compare the \
         two columns of a row, measured in the same rounds, rather than across runs).\n\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    text += "| workload | hits | full, ns/hit | full + stacks, ns/hit | stacks / full | \
             full, x untraced | full + stacks, x untraced |\n|---|---|---|---|---|---|---|\n";
    for (name, w, n) in [
        ("channel ping-pong (50k)", "pingpong", 50_000),
        ("spawn storm (50k)", "spawn", 50_000),
    ] {
        let cmd = workload(&bench, w, n);
        let modes = [Mode::Untraced, Mode::Level("full"), Mode::Stacks];
        let mut cs: Vec<Vec<Sample>> = modes.iter().map(|_| Vec::new()).collect();
        eprintln!("xtask: bench stacks: {name}, {runs} interleaved rounds");
        for _ in 0..runs {
            for (i, m) in modes.iter().enumerate() {
                cs[i].push(run_once(gmp, *m, &cmd, scratch)?);
            }
        }
        let elapsed = |i: usize| median(cs[i].iter().map(|s| s.elapsed_ns).collect());
        let hits = median(
            cs[1]
                .iter()
                .filter_map(|s| s.events.map(|e| e as f64))
                .collect(),
        );
        let base = elapsed(0);
        let per_hit = |i: usize| (elapsed(i) - base) / hits;
        let _ = writeln!(
            text,
            "| {name} | {hits:.0} | {:.0} | {:.0} | {:.2}x | {:.2} | {:.2} |",
            per_hit(1),
            per_hit(2),
            per_hit(2) / per_hit(1),
            elapsed(1) / base,
            elapsed(2) / base,
        );
    }
    text += &bodies(gmp, runs, &workload(&bench, "pingpong", 50_000))?;
    Ok(text)
}

/// The changed programs' own run time per hit (bpf_stats) on the ping-pong, without and with
/// `--stacks`: the walk, the seen-stack lookup and the extra record, without the trap.
fn bodies(gmp: &Path, runs: usize, cmd: &[String]) -> anyhow::Result<String> {
    let _stats = crate::bench_daemon::BpfStats::enable()?;
    eprintln!("xtask: bench stacks: BPF program run time, {runs} rounds");
    // (program, with stacks) -> ns per run, one per round.
    let mut ns: BTreeMap<(String, bool), Vec<f64>> = BTreeMap::new();
    for _ in 0..runs {
        for stacks in [false, true] {
            let mut c = Command::new(gmp);
            c.args(["-q", "--level=full"]);
            if stacks {
                c.arg("--stacks");
            }
            let progs = crate::bench_daemon::bpf_prog_stats(c.arg("--").args(cmd))?;
            for (name, (t, cnt)) in progs {
                if cnt > 0.0 && STACKED.contains(&name.as_str()) {
                    ns.entry((name, stacks)).or_default().push(t / cnt);
                }
            }
        }
    }
    let mut text = String::from(
        "\nBPF program run time per hit (kernel.bpf_stats, ping-pong; the trap and dispatch, \
         ~1 us, come on top):\n\n| program | ns/hit | with --stacks, ns/hit |\n|---|---|---|\n",
    );
    for p in STACKED {
        let get = |s: bool| {
            ns.get(&(p.to_string(), s))
                .cloned()
                .map_or(f64::NAN, median)
        };
        let _ = writeln!(text, "| {p} | {:.0} | {:.0} |", get(false), get(true));
    }
    Ok(text)
}
