//! Go's own std test suites traced at every level: same pass/fail, nothing lost.
//!
//! The whole matrix: every version of STD_SUITE_VERSIONS x every package of STD_SUITE_PACKAGES,
//! each run untraced and then in every traced mode (gmp_trace_tests::std_suites does the runs
//! and the test-by-test comparison), plus one fidelity check against Go's own tracer. Prints a
//! table and writes it into docs/reliability.md between its std-table markers.
//!
//! `XTASK_STD_GO=1.27.3,1.19.8` and `XTASK_STD_PKGS=sync,context` narrow the matrix (to iterate
//! on a part; the doc is then left alone).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _};
use gmp_trace_tests::std_suites::{
    self, describe, difference, Mode, Outcome, SuiteRun, STD_SUITE_PACKAGES, STD_SUITE_VERSIONS,
    TIMING_DEPENDENT,
};
use gmp_trace_tests::{scratch_dir, workspace_root};

const BEGIN: &str = "<!-- std-table:begin (cargo xtask reliability --only std writes this) -->";
const END: &str = "<!-- std-table:end -->";

/// The version and package whose suite is also compared with Go's own tracer.
const FIDELITY: (&str, &str) = ("1.27.3", "sync");

pub fn run() -> anyhow::Result<()> {
    let start = Instant::now();
    let versions = narrowed("XTASK_STD_GO", STD_SUITE_VERSIONS);
    let packages = narrowed("XTASK_STD_PKGS", STD_SUITE_PACKAGES);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for version in &versions {
        for pkg in &packages {
            eprintln!("xtask reliability std: Go {version} {pkg}: building the test binary");
            std_suites::std_test_binary(version, pkg);
            let dir = scratch_dir(&format!("std-suites/go{version}/{}", pkg.replace('/', "_")));
            let untraced = std_suites::run_suite(version, pkg, Mode::Untraced, &dir, &[], &[]);
            for mode in Mode::TRACED {
                let traced = std_suites::run_suite(version, pkg, mode, &dir, &[], &[]);
                let row = Row::new(version, pkg, &untraced, &traced);
                eprintln!("{}", row.line());
                if let Some(f) = row.failure() {
                    failures.push(f);
                }
                rows.push(row);
            }
        }
    }
    let fid = fidelity_check(&versions, &packages, &mut failures);
    let elapsed = start.elapsed();
    let text = table(&rows, fid.as_deref(), elapsed.as_secs());
    println!("{text}");
    if versions.len() == STD_SUITE_VERSIONS.len() && packages.len() == STD_SUITE_PACKAGES.len() {
        write_into_doc(&text)?;
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// The list in env var `var` (comma-separated), else `all`.
fn narrowed(var: &str, all: &[&'static str]) -> Vec<&'static str> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => all
            .iter()
            .copied()
            .filter(|x| v.split(',').any(|w| w == *x))
            .collect(),
        _ => all.to_vec(),
    }
}

/// One traced run against the untraced one.
struct Row {
    version: String,
    pkg: String,
    mode: Mode,
    untraced: (usize, usize),
    traced: (usize, usize),
    events: u64,
    lost: u64,
    wall: (f64, f64),
    verdict: String,
    failed: bool,
}

impl Row {
    fn new(version: &str, pkg: &str, untraced: &SuiteRun, traced: &SuiteRun) -> Row {
        let d = difference(pkg, untraced, traced);
        let pf = |r: &SuiteRun| (r.count(Outcome::Pass), r.count(Outcome::Fail));
        let mut verdict = Vec::new();
        if !d.unexplained.is_empty() {
            verdict.push(format!("DIFFERS: {}", describe(&d.unexplained)));
        }
        if let Some((u, t)) = d.exit_codes {
            verdict.push(format!("EXIT {u:?} -> {t:?}"));
        }
        if !d.timing.is_empty() {
            verdict.push(format!("timing-dependent: {}", describe(&d.timing)));
        }
        if traced.lost > 0 {
            verdict.push(format!("LOST {}", traced.lost));
        }
        let failed = !d.is_same() || traced.lost > 0;
        if verdict.is_empty() {
            verdict.push("same".into());
        }
        Row {
            version: version.into(),
            pkg: pkg.into(),
            mode: traced.mode,
            untraced: pf(untraced),
            traced: pf(traced),
            events: traced.events,
            lost: traced.lost,
            wall: (untraced.wall.as_secs_f64(), traced.wall.as_secs_f64()),
            verdict: verdict.join("; "),
            failed,
        }
    }

    fn line(&self) -> String {
        format!(
            "| {} | {} | {} | {}/{} | {}/{} | {} | {} | {:.1} | {:.1} | {} |",
            self.version,
            self.pkg,
            self.mode.name(),
            self.untraced.0,
            self.untraced.1,
            self.traced.0,
            self.traced.1,
            self.events,
            self.lost,
            self.wall.0,
            self.wall.1,
            self.verdict
        )
    }

    fn failure(&self) -> Option<String> {
        self.failed.then(|| {
            format!(
                "Go {} {} {}: {}",
                self.version,
                self.pkg,
                self.mode.name(),
                self.verdict
            )
        })
    }
}

/// The fidelity check, when its version and package are in the (narrowed) matrix: one line
/// for the doc.
fn fidelity_check(
    versions: &[&str],
    packages: &[&str],
    failures: &mut Vec<String>,
) -> Option<String> {
    let (version, pkg) = FIDELITY;
    if !versions.contains(&version) || !packages.contains(&pkg) {
        return None;
    }
    let dir = scratch_dir(&format!("std-suites/fidelity-go{version}-{pkg}"));
    let f = std_suites::fidelity(version, pkg, &dir);
    eprintln!("{}", f.table);
    let rows = f.report["rows"].as_array().cloned().unwrap_or_default();
    let mut line = format!(
        "Fidelity, Go {version} `{pkg}` tests at level full with `-test.trace`: `compare \
         --min-match 99.9` {}, {} of our events lost; per row matched/Go's:",
        if f.compare_code == Some(0) {
            "passed"
        } else {
            "FAILED"
        },
        f.report["ours_lost"]
    );
    for r in &rows {
        let _ = write!(
            line,
            " {} {}/{} ({:.2}%),",
            r["name"].as_str().unwrap_or("?"),
            r["matched"],
            r["go"],
            r["match_pct"].as_f64().unwrap_or(f64::NAN)
        );
    }
    line.pop();
    let pl = &f.report["gostart_placement"];
    let _ = write!(
        line,
        "; GoStart on the same M {:.2}%, same P {:.2}%.",
        pl["same_m_pct"].as_f64().unwrap_or(f64::NAN),
        pl["same_p_pct"].as_f64().unwrap_or(f64::NAN)
    );
    if f.compare_code != Some(0) || f.report["ours_lost"] != 0 {
        failures.push(format!("fidelity Go {version} {pkg}: {line}"));
    }
    Some(line)
}

/// The markdown the doc gets: the table, the known timing-dependent tests, the fidelity line.
fn table(rows: &[Row], fidelity: Option<&str>, secs: u64) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| Go | package | mode | pass/fail untraced | pass/fail traced | events | lost | wall untraced (s) | wall traced (s) | result |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(t, "{}", r.line());
    }
    let _ = writeln!(t);
    if !TIMING_DEPENDENT.is_empty() {
        let _ = writeln!(
            t,
            "Known timing-dependent tests (their differences are listed, not failed):"
        );
        for k in TIMING_DEPENDENT {
            let _ = writeln!(t, "- `{}` {}: {}", k.package, k.test, k.reason);
        }
        let _ = writeln!(t);
    }
    if let Some(f) = fidelity {
        let _ = writeln!(t, "{f}");
        let _ = writeln!(t);
    }
    let failed = rows.iter().filter(|r| r.failed).count();
    let _ = writeln!(
        t,
        "{} traced runs, {failed} with a difference or a loss; the matrix took {}m{:02}s.",
        rows.len(),
        secs / 60,
        secs % 60
    );
    t
}

/// Replaces what is between the markers in docs/reliability.md with `text`.
fn write_into_doc(text: &str) -> anyhow::Result<()> {
    let path = workspace_root().join("docs").join("reliability.md");
    replace_between(&path, text).with_context(|| format!("updating {}", path.display()))
}

fn replace_between(path: &Path, text: &str) -> anyhow::Result<()> {
    let doc = std::fs::read_to_string(path)?;
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        bail!("no std-table markers in the doc");
    };
    let new = format!("{}{BEGIN}\n{text}{}", &doc[..b], &doc[e..]);
    std::fs::write(path, new)?;
    Ok(())
}
