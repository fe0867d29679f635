//! Faults: the tracer or the target killed, stopped, doubled; attach/detach in a loop. The
//! cases live in tests/tests/faults.rs (so CI runs them too, the loop with fewer rounds); this
//! runs them one at a time with the full loop count and gathers the figures they print on
//! `faults:` lines, for docs/reliability.md.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{bail, Context as _};

use crate::toolchain::cargo;

/// Attach/detach rounds of the loop case (the test's own default is CI-sized).
const LOOP_ROUNDS: u32 = 200;

pub fn run() -> anyhow::Result<()> {
    let rounds = std::env::var("GMP_TRACE_FAULTS_ROUNDS").unwrap_or(LOOP_ROUNDS.to_string());
    let mut c = cargo();
    // One case at a time: the timings are the tracer's and the kernel's, not the other cases'.
    c.args([
        "test",
        "--release",
        "-p",
        "gmp-trace-tests",
        "--test",
        "faults",
        "--",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("GMP_TRACE_BIN", crate::gmp_trace())
    .env("GMP_TRACE_FAULTS_ROUNDS", &rounds)
    .stdout(Stdio::piped());
    eprintln!(
        "xtask: $ cargo test --release -p gmp-trace-tests --test faults (loop: {rounds} rounds)"
    );
    let started = std::time::Instant::now();
    let mut child = c.spawn().context("running cargo test")?;
    let out = child.stdout.take().context("cargo's stdout")?;
    let mut figures = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.context("reading the tests' output")?;
        println!("{line}");
        // libtest prints `test NAME ... ` and the case's own line follows on the same line.
        if let Some(at) = line.find("faults: ") {
            figures.push(line[at + "faults: ".len()..].to_string());
        }
    }
    let st = child.wait().context("waiting for cargo test")?;
    println!(
        "\nfaults: figures ({:.0} s in all):",
        started.elapsed().as_secs_f64()
    );
    for f in &figures {
        println!("- {f}");
    }
    if !st.success() {
        bail!("the faults tests failed ({st})");
    }
    Ok(())
}
