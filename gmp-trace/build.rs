//! Stamps the binary with what a bug report needs and cargo cannot tell: the git commit it was
//! built from, the build date, the aya release linked and the target triple (`gmp-trace --version`, src/version.rs).
//!
//! Reproducible-ish: the date is SOURCE_DATE_EPOCH's when set (`cargo xtask dist` sets it to
//! the commit's time, so two dist builds of one commit are the same), else today's (UTC, a day,
//! not a time). The script reruns only when HEAD moves (the HEAD file and the branch's ref), not
//! on every build. Without git (a source tarball) the commit is "unknown".
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The files whose change means HEAD moved: HEAD itself, the branch's loose ref and
/// packed-refs (a worktree's HEAD lives in its own git dir, its refs in the common one).
fn watch_head() {
    let abs = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
        }
    };
    let Some(git_dir) = git(&["rev-parse", "--git-dir"]).map(abs) else {
        return;
    };
    let common = git(&["rev-parse", "--git-common-dir"])
        .map(abs)
        .unwrap_or_else(|| git_dir.clone());
    let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(r));
    }
    for p in watched.iter().filter(|p| p.exists()) {
        println!("cargo::rerun-if-changed={}", p.display());
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// civil_from_days), to print a date without a date crate.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The version of `name` in the workspace's Cargo.lock (what was linked, not what Cargo.toml
/// allows).
fn locked_version(name: &str) -> Option<String> {
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    println!("cargo::rerun-if-changed={lock}");
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            let v = lines.next()?.trim().strip_prefix("version = ")?;
            return Some(v.trim_matches('"').to_string());
        }
    }
    None
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SOURCE_DATE_EPOCH");
    watch_head();
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    let (y, m, d) = civil(epoch.div_euclid(86_400));
    println!("cargo::rustc-env=GMP_TRACE_GIT_COMMIT={commit}");
    println!("cargo::rustc-env=GMP_TRACE_BUILD_DATE={y:04}-{m:02}-{d:02}");
    let aya = locked_version("aya").unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=GMP_TRACE_AYA_VERSION={aya}");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo::rustc-env=GMP_TRACE_TARGET={target}");
}
