//! Fuzzing the readers of untrusted input for a bounded time: every libFuzzer target in fuzz/
//! (binary parsers, the recording reader, the event decoder and the model) runs `seconds` from
//! its committed seeds, and the figures are printed per target: runs executed, corpus size,
//! crashes. A crash fails the part; its input is kept under target/fuzz/artifacts/.
//!
//! The targets build with cargo-fuzz on the nightly the probes pin (sanitizers need a nightly);
//! cargo-fuzz is installed when missing. New inputs go to target/fuzz/corpus/<target>, so a
//! second run starts where the first stopped and the committed seeds stay small.
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use gmp_trace_tests::workspace_root;

use crate::toolchain::{self, bpf_nightly};
use crate::{output, run as run_cmd, show};

/// libFuzzer options a target needs beyond the defaults (whole ELF files are large).
fn extra_args(target: &str) -> &'static [&'static str] {
    match target {
        "dwarf_offsets" => &["-max_len=600000", "-rss_limit_mb=4096"],
        _ => &[],
    }
}

/// What one target's run came to.
struct Figures {
    target: String,
    runs: u64,
    corpus: u64,
    crashes: usize,
    seconds: u64,
}

pub fn run(seconds: u64) -> anyhow::Result<()> {
    toolchain::install(false)?;
    let (nightly, _) = bpf_nightly()?;
    let fuzz_dir = workspace_root().join("fuzz");
    ensure_cargo_fuzz(&nightly, &fuzz_dir)?;
    let list = output(cargo_fuzz(&nightly, &fuzz_dir).arg("list"))
        .context("listing the fuzz targets (cargo fuzz list)")?;
    let targets: Vec<String> = list.split_whitespace().map(str::to_string).collect();
    if targets.is_empty() {
        bail!("cargo fuzz list found no targets in {}", fuzz_dir.display());
    }
    run_cmd(cargo_fuzz(&nightly, &fuzz_dir).args(["build", "-O"]))?;
    let mut all = Vec::new();
    for t in &targets {
        all.push(fuzz_one(&fuzz_dir, t, seconds)?);
    }
    eprintln!("\nxtask reliability fuzz: {seconds} s per target");
    eprintln!(
        "{:<16} {:>12} {:>10} {:>8} {:>8}",
        "target", "runs", "runs/s", "corpus", "crashes"
    );
    for f in &all {
        eprintln!(
            "{:<16} {:>12} {:>10} {:>8} {:>8}",
            f.target,
            f.runs,
            f.runs / f.seconds.max(1),
            f.corpus,
            f.crashes
        );
    }
    let crashed: Vec<&str> = all
        .iter()
        .filter(|f| f.crashes > 0)
        .map(|f| f.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "crashes in {} (inputs under target/fuzz/artifacts/; reproduce with \
             fuzz/target/x86_64-unknown-linux-gnu/release/TARGET FILE)",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// `cargo fuzz` through the pinned nightly, in fuzz/.
fn cargo_fuzz(nightly: &str, dir: &Path) -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", nightly, "cargo", "fuzz"])
        .current_dir(dir)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    c
}

fn ensure_cargo_fuzz(nightly: &str, dir: &Path) -> anyhow::Result<()> {
    if output(cargo_fuzz(nightly, dir).arg("--version")).is_some() {
        return Ok(());
    }
    run_cmd(toolchain::cargo().args(["install", "cargo-fuzz", "--locked"]))
        .context("installing cargo-fuzz")
}

/// Runs one built target for `seconds` and reads its figures from libFuzzer's final stats.
fn fuzz_one(fuzz_dir: &Path, target: &str, seconds: u64) -> anyhow::Result<Figures> {
    let scratch = workspace_root().join("target/fuzz");
    let corpus = scratch.join("corpus").join(target);
    let artifacts = scratch.join("artifacts").join(target);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let crashes_before = count_files(&artifacts);
    let bin = fuzz_dir
        .join("target/x86_64-unknown-linux-gnu/release")
        .join(target);
    let mut cmd = Command::new(&bin);
    cmd.arg(&corpus)
        .arg(fuzz_dir.join("corpus").join(target))
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args(extra_args(target))
        .stdout(Stdio::null());
    eprintln!("xtask: $ {}", show(&cmd));
    let out = cmd
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let crashes = count_files(&artifacts) - crashes_before;
    if !out.status.success() {
        // The report libFuzzer printed: the panic and the input it kept.
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let runs = stat(&log, "stat::number_of_executed_units:").unwrap_or(0);
    Ok(Figures {
        target: target.to_string(),
        runs,
        corpus: corpus_size(&log).unwrap_or(count_files(&corpus) as u64),
        crashes: crashes.max(usize::from(!out.status.success())),
        seconds,
    })
}

/// A `stat::name: N` line of libFuzzer's final stats.
fn stat(log: &str, name: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// The corpus size of libFuzzer's last status line (`... corp: 412/3121Kb ...`).
fn corpus_size(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains(" corp: "))?;
    let after = line.split(" corp: ").nth(1)?;
    after.split('/').next()?.trim().parse().ok()
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(Result::ok).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_stats() {
        let log = "#1024\tDONE   cov: 1 ft: 2 corp: 3/4b\n\
                   stat::number_of_executed_units: 123456\n\
                   stat::average_exec_per_sec:     2057\n";
        assert_eq!(stat(log, "stat::number_of_executed_units:"), Some(123456));
        assert_eq!(stat(log, "stat::new_units_added:"), None);
        assert_eq!(corpus_size(log), Some(3));
    }
}
