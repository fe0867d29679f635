//! `cargo xtask reliability`: the reliability suite (issue 18). Each part tries something that
//! breaks tracers (Go's own test suites traced at every level, faults, a long soak, fuzzing the
//! readers of untrusted input) and prints what held with its figures; docs/reliability.md keeps
//! the results. The parts short enough for CI also run as tests in `cargo xtask test`.
mod faults;
mod fuzz;
mod soak;
mod std_suites;

use anyhow::bail;

/// The parts, in the order they run.
pub const PARTS: &[&str] = &["std", "faults", "fuzz", "soak"];

/// Runs the named parts (all when `only` is empty); every part runs even when an earlier one
/// fails, and the failures are listed at the end.
pub fn reliability(only: &[String], soak_minutes: u64, fuzz_seconds: u64) -> anyhow::Result<()> {
    for o in only {
        if !PARTS.contains(&o.as_str()) {
            bail!(
                "no reliability part {o:?}; the parts are {}",
                PARTS.join(", ")
            );
        }
    }
    let wanted = |p: &str| only.is_empty() || only.iter().any(|o| o == p);
    let mut failed = Vec::new();
    for &part in PARTS.iter().filter(|p| wanted(p)) {
        eprintln!("xtask reliability: {part}");
        let r = match part {
            "std" => std_suites::run(),
            "faults" => faults::run(),
            "fuzz" => fuzz::run(fuzz_seconds),
            "soak" => soak::run(soak_minutes),
            _ => unreachable!("checked above"),
        };
        if let Err(e) = r {
            eprintln!("xtask reliability: {part} FAILED: {e:#}");
            failed.push(part);
        }
    }
    if !failed.is_empty() {
        bail!("reliability parts failed: {}", failed.join(", "));
    }
    Ok(())
}
