//! Reading pprof profiles back with Go's own `go tool pprof`: running it ([`go_pprof`]) and
//! parsing the reports the tests check, `-top` ([`parse_top`]) and `-tags` ([`parse_tags`]).
//! A profile counts as right when the real tool reads it as meant, not when our own decoder
//! does.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::{go_binary, GO_VERSIONS};

/// What `go tool pprof` printed.
#[derive(Debug)]
pub struct PprofRun {
    pub stdout: String,
    /// Its complaints and notes (pprof writes warnings, and notes like "Interpreted '5' as
    /// range, not regexp", here).
    pub stderr: String,
}

/// Runs `go tool pprof ARGS PROFILE` with the newest toolchain and panics unless it succeeds.
pub fn go_pprof(args: &[&str], profile: &Path) -> PprofRun {
    let out = Command::new(go_binary(GO_VERSIONS[0]))
        .args(["tool", "pprof"])
        .args(args)
        .arg(profile)
        .output()
        .expect("run go tool pprof");
    let run = PprofRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.success(),
        "go tool pprof {args:?} {} failed ({}):\n{}{}",
        profile.display(),
        out.status,
        run.stdout,
        run.stderr
    );
    run
}

/// One row of `-top`: a function's own and cumulative time.
#[derive(Clone, Debug, PartialEq)]
pub struct TopRow {
    /// pprof marked the row `(inline)`: the function was only ever inlined.
    pub inline: bool,
    pub flat_ns: f64,
    pub flat_pct: f64,
    pub cum_ns: f64,
    pub cum_pct: f64,
}

/// A `-top` report: rows by function name, and the total the percentages are of.
#[derive(Clone, Debug, Default)]
pub struct Top {
    pub rows: BTreeMap<String, TopRow>,
    /// From `Showing nodes accounting for X, Y% of TOTAL total`.
    pub total_ns: f64,
    /// X of that line: what the shown nodes (after -tagfocus and the like) account for.
    pub shown_ns: f64,
    /// The profile's duration, from `Duration: 2s, Total samples = ...` (absent when the
    /// profile has none).
    pub duration_ns: Option<f64>,
}

/// Parses `go tool pprof -top` (with or without `-cum`) of a CPU profile:
///
/// ```text
/// Showing nodes accounting for 1s, 100% of 1s total
///       flat  flat%   sum%        cum   cum%
///      0.10s 10.00% 10.00%      0.75s 75.00%  main.burnA
///          0     0% 10.00%      0.75s 75.00%  main.work (inline)
/// ```
///
/// Rows are keyed by function name, `(inline)` taken off (and kept in [`TopRow::inline`]).
pub fn parse_top(text: &str) -> Top {
    let mut top = Top::default();
    let mut in_table = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Duration: ") {
            let d = rest.split(',').next().unwrap_or(rest);
            top.duration_ns = Some(parse_duration(d.trim()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("Showing nodes accounting for ") {
            let total = rest
                .rsplit_once(" of ")
                .and_then(|(_, t)| t.strip_suffix(" total"))
                .unwrap_or_else(|| panic!("no total in {line:?}"));
            top.total_ns = parse_duration(total);
            let shown = rest.split(',').next().unwrap_or(rest);
            top.shown_ns = parse_duration(shown.trim());
            continue;
        }
        if line.split_whitespace().collect::<Vec<_>>() == ["flat", "flat%", "sum%", "cum", "cum%"] {
            in_table = true;
            continue;
        }
        if !in_table || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols.len() >= 6, "a -top row with too few columns: {line:?}");
        let mut name = cols[5..].join(" ");
        let inline = name.ends_with(" (inline)");
        if inline {
            name.truncate(name.len() - " (inline)".len());
        }
        let row = TopRow {
            inline,
            flat_ns: parse_duration(cols[0]),
            flat_pct: parse_pct(cols[1]),
            cum_ns: parse_duration(cols[3]),
            cum_pct: parse_pct(cols[4]),
        };
        top.rows.insert(name, row);
    }
    assert!(in_table, "no -top table in:\n{text}");
    top
}

/// Parses `go tool pprof -tags`: for each label key, each value's share of the total.
///
/// ```text
///  goid: Total 1s of 1s (  100%)
///           600ms (60.00%): 5
///           250ms (25.00%): 6
/// ```
///
/// Returns key → value → percent.
pub fn parse_tags(text: &str) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut key: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some((k, _)) = t.split_once(": Total ") {
            key = Some(k.to_string());
            out.entry(k.to_string()).or_default();
            continue;
        }
        let Some(k) = &key else { continue };
        // "600ms (60.00%): 5"
        let (share, value) = t
            .split_once("): ")
            .unwrap_or_else(|| panic!("a -tags row without a value: {line:?}"));
        let pct = share
            .rsplit_once('(')
            .map(|(_, p)| parse_pct(p))
            .unwrap_or_else(|| panic!("a -tags row without a share: {line:?}"));
        out.entry(k.clone())
            .or_default()
            .insert(value.trim().to_string(), pct);
    }
    out
}

/// "75.00%" → 75.0 ("100%" → 100).
pub fn parse_pct(s: &str) -> f64 {
    s.trim()
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("not a percentage: {s:?}"))
}

/// A pprof time ("0", "750ms", "1.50s", "2.10mins", "90us") in nanoseconds.
pub fn parse_duration(s: &str) -> f64 {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .unwrap_or_else(|_| panic!("not a pprof time: {s:?}"));
    let scale = match unit {
        "" | "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "mins" => 60e9,
        "hrs" => 3600e9,
        _ => panic!("unknown unit in pprof time {s:?}"),
    };
    n * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_top_and_tags() {
        let top = parse_top(
            "File: burn\nType: cpu\nDuration: 2.01s, Total samples = 1s (49.75%)\nShowing nodes accounting for 1s, 100% of 1s total\n      \
             flat  flat%   sum%        cum   cum%\n     0.25s 25.00% 25.00%      0.75s 75.00%  \
             main.burnA\n         0     0% 25.00%      1s   100%  main.(*T).run\n         \
             0     0% 25.00%      0.75s 75.00%  main.work (inline)\n",
        );
        assert_eq!(top.total_ns, 1e9);
        assert!((top.duration_ns.unwrap() - 2.01e9).abs() < 1.0);
        assert_eq!(top.rows["main.burnA"].cum_pct, 75.0);
        assert_eq!(top.rows["main.burnA"].flat_ns, 0.25e9);
        assert_eq!(top.rows["main.(*T).run"].cum_pct, 100.0);
        assert!(!top.rows["main.burnA"].inline);
        assert!(top.rows["main.work"].inline);
        let tags = parse_tags(
            " goid: Total 1s of 1s (  100%)\n         600ms (60.00%): 5\n  400ms (40.00%): 6\n\n \
             start_function: Total 1s of 1s (  100%)\n  1s (  100%): main.burnA\n",
        );
        assert_eq!(tags["goid"]["5"], 60.0);
        assert_eq!(tags["goid"]["6"], 40.0);
        assert_eq!(tags["start_function"]["main.burnA"], 100.0);
    }
}
