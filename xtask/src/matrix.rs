//! `cargo xtask matrix`: every supported Go toolchain crossed with every build variant; in each
//! cell the fan-out sample is traced in launch mode and its goroutines must be accounted for
//! exactly (the program's own, plus the runtime's five). Writes docs/matrix.md.
use std::fmt::Write as _;
use std::process::Command;

use anyhow::Context as _;
use gmp_trace_tests::{build_sample, workspace_root, Variant, ALL_GO_VERSIONS};

const N: u64 = 40;

/// Checks one cell; Ok(details) or Err(why).
fn cell(go: &str, variant: Variant) -> Result<String, String> {
    let sample = if variant == Variant::Cgo {
        "cgofan"
    } else {
        "fanout"
    };
    let bin = std::panic::catch_unwind(|| build_sample(sample, go, variant))
        .map_err(|_| "build failed".to_string())?;
    let dir = workspace_root()
        .join("target/matrix")
        .join(format!("{go}-{}", variant.name()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let summary = dir.join("summary.json");
    let o = Command::new(workspace_root().join("target/release/gmp-trace"))
        .arg("-q")
        .arg("--summary-json")
        .arg(&summary)
        .arg("--")
        .arg(&bin)
        .arg(N.to_string())
        .env("GOGC", "off")
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string());
    }
    let text = std::fs::read_to_string(&summary).map_err(|e| e.to_string())?;
    let num = |k: &str| -> Option<u64> {
        text.split(&format!("\"{k}\": "))
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let created = num("goroutines_created").ok_or("no goroutines_created")?;
    let lost = num("lost_events").ok_or("no lost_events")?;
    // goroutines_by_start_fn: count those in package main.
    let by_fn = text
        .split("\"goroutines_by_start_fn\": {")
        .nth(1)
        .and_then(|r| r.split('}').next())
        .unwrap_or("");
    let user: u64 = by_fn
        .lines()
        .filter(|l| l.trim_start().starts_with("\"main."))
        .filter_map(|l| {
            l.rsplit(':')
                .next()?
                .trim()
                .trim_end_matches(',')
                .parse::<u64>()
                .ok()
        })
        .sum();
    if lost != 0 || user != 2 * N || created != 2 * N + 5 {
        return Err(format!(
            "created {created} (user {user}, want {} + 5), lost {lost}",
            2 * N
        ));
    }
    // The startup timeline: every init task named (by import path, through pclntab when
    // stripped), os's among them, and main.main reached.
    let inits = text
        .split("\"init_order\": [")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or("");
    if !inits.contains("\"os\"") || inits.contains("\"task ") || !text.contains("\"main.main\"") {
        return Err(format!(
            "startup timeline incomplete: init order [{}]",
            inits.trim()
        ));
    }
    let n_inits = inits.matches('"').count() / 2;
    Ok(format!("{created} = {user} + 5; {n_inits} inits"))
}

pub fn matrix() -> anyhow::Result<()> {
    let variants = [
        Variant::Default,
        Variant::Stripped,
        Variant::Pie,
        Variant::Cgo,
    ];
    let mut table = String::from(
        "| Go | default | -ldflags=-s -w | -buildmode=pie | cgo |\n|---|---|---|---|---|\n",
    );
    let mut failures = 0;
    for go in ALL_GO_VERSIONS {
        let mut row = format!("| {go} |");
        for v in variants {
            eprintln!("xtask: matrix Go {go} {}", v.name());
            match cell(go, v) {
                Ok(d) => {
                    let _ = write!(row, " ok ({d}) |");
                }
                Err(e) => {
                    failures += 1;
                    let _ = write!(row, " FAIL: {} |", e.replace('|', "/"));
                }
            }
        }
        let _ = writeln!(table, "{row}");
    }
    let date = String::from_utf8_lossy(
        &Command::new("date")
            .args(["-u", "+%Y-%m-%d"])
            .output()?
            .stdout,
    )
    .trim()
    .to_string();
    let doc = format!(
        "# Go version x build variant matrix\n\nRun {date} by `cargo xtask matrix`: the fan-out sample \
         (`fanout {N}`; the cgo column uses `cgofan`, which calls C) traced in launch mode with GOGC=off. A cell \
         passes when goroutines_created = the program's {} + the runtime's 5 (main goroutine, forced-GC helper, \
         sweeper, scavenger, finalizer goroutine), no event was lost, and the startup timeline names every package init (os among them) and reaches main.main. Go 1.20 has no toolchain here.\n\n{table}",
        2 * N
    );
    print!("{doc}");
    let path = workspace_root().join("docs/matrix.md");
    std::fs::write(&path, &doc).with_context(|| format!("writing {}", path.display()))?;
    anyhow::ensure!(
        failures == 0,
        "{failures} matrix cells failed (see {})",
        path.display()
    );
    Ok(())
}
