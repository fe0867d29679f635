//! CI assertions (`--assert EXPR`, `--junit FILE`): bounds on the end-of-run summary, checked per
//! traced process, reported in the summary (text and JSON), as one stderr line per failure, as
//! a JUnit XML report, and as exit code 3. Evaluation reads the summary JSON of each process, so
//! a run of one process and a run of many (`processes: [...]`) are checked by the same code.
//!
//! - [`expr`]: parsing `[all:|any:]KEY OP VALUE` (usage errors before tracing starts).
//! - [`keys`]: what each key reads in a summary, and why a key has no value in a run.
//! - [`junit`]: the XML report.
pub mod expr;
pub mod junit;
pub mod keys;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

pub use expr::{parse_assertion, Assertion, Quantifier};
use keys::Unit;

/// gmp-trace's exit code when an assertion failed (docs/ci.md lists them all).
pub const EXIT_ASSERTION_FAILED: i32 = 3;

/// One traced process's summary, named for the reports.
#[derive(Clone, Copy, Debug)]
pub struct ProcessSummary<'a> {
    pub pid: u32,
    pub exe: &'a str,
    /// The process's summary JSON (today's top-level keys).
    pub summary: &'a Value,
}

impl<'a> ProcessSummary<'a> {
    /// Named by the summary's own `pid` and executable: `exe` (the process's identity, in a
    /// multi-process summary's `processes[]`), else `binary`.
    pub fn of(summary: &'a Value) -> ProcessSummary<'a> {
        let exe = summary["exe"].as_str().or(summary["binary"].as_str());
        ProcessSummary {
            pid: summary["pid"].as_u64().unwrap_or(0) as u32,
            exe: exe.unwrap_or("?"),
            summary,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProcessId {
    pub pid: u32,
    pub exe: String,
}

/// One assertion checked on one process (the summary's `assertions` entries).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Outcome {
    pub expr: String,
    pub quantifier: &'static str,
    pub key: String,
    pub op: &'static str,
    /// The bound, in the key's unit.
    pub bound: f64,
    /// The process's value in the key's unit; null when the run did not measure it.
    pub value: Option<f64>,
    /// Null only when no process was traced at all.
    pub process: Option<ProcessId>,
    /// This process's value meets the bound.
    pub met: bool,
    /// Passes: `met` for `all:`; for `any:`, some process meets the bound.
    pub ok: bool,
    /// Why there is no value, or why an `any:` assertion failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip)]
    pub unit: Option<Unit>,
}

/// Checks every assertion on every process: one outcome per (assertion, process), assertions
/// in order, processes in the order given. With no process, each assertion fails once.
pub fn evaluate(asserts: &[Assertion], processes: &[ProcessSummary<'_>]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for a in asserts {
        let first = out.len();
        for p in processes {
            let (value, reason) = match keys::lookup(&a.key, p.summary) {
                Ok(v) => (Some(v), None),
                Err(why) => (None, Some(why)),
            };
            let met = value.is_some_and(|v| a.op.holds(v, a.bound));
            out.push(Outcome {
                process: Some(ProcessId {
                    pid: p.pid,
                    exe: p.exe.to_string(),
                }),
                value,
                met,
                ok: met,
                reason,
                ..outcome(a)
            });
        }
        if processes.is_empty() {
            out.push(Outcome {
                reason: Some("no process was traced".into()),
                ..outcome(a)
            });
        }
        if a.quantifier == Quantifier::Any {
            let mine = &mut out[first..];
            let holds = mine.iter().any(|o| o.met);
            for o in mine.iter_mut() {
                o.ok = holds;
                if !holds && o.process.is_some() {
                    let why = o.reason.take().map_or(String::new(), |r| format!(": {r}"));
                    o.reason = Some(format!("no process meets it (any:){why}"));
                }
            }
        }
    }
    out
}

/// An outcome of `a` before it is checked.
fn outcome(a: &Assertion) -> Outcome {
    Outcome {
        expr: a.expr.clone(),
        quantifier: a.quantifier.name(),
        key: a.key.clone(),
        op: a.op.symbol(),
        bound: a.bound,
        value: None,
        process: None,
        met: false,
        ok: false,
        reason: None,
        unit: Some(a.unit),
    }
}

/// Whether any assertion failed.
pub fn failed(outcomes: &[Outcome]) -> bool {
    outcomes.iter().any(|o| !o.ok)
}

/// gmp-trace's exit code: 3 when an assertion failed, else the one it would have had.
pub fn exit_code(outcomes: &[Outcome], otherwise: i32) -> i32 {
    if failed(outcomes) {
        EXIT_ASSERTION_FAILED
    } else {
        otherwise
    }
}

/// A value for people, in the key's unit ("3.100 ms (3100000 ns)" for a duration).
pub fn show(value: f64, unit: Option<Unit>) -> String {
    let plain = if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    };
    match unit {
        Some(Unit::Nanos) if value >= 1000.0 => {
            format!(
                "{} ({plain} ns)",
                crate::export::summary::fmt_ns(value as u64)
            )
        }
        Some(Unit::Nanos) => format!("{plain} ns"),
        Some(Unit::Millis) => format!("{plain} ms"),
        Some(Unit::Bool) => (value != 0.0).to_string(),
        _ => plain,
    }
}

/// "pid 1234 (/path/to/exe)", or "no process".
pub fn who(p: &Option<ProcessId>) -> String {
    match p {
        Some(p) => format!("pid {} ({})", p.pid, p.exe),
        None => "no process".into(),
    }
}

/// What failed, for the failure line and the JUnit message: the value and the bound, or why
/// there is no value.
pub fn explain(o: &Outcome) -> String {
    let bound = format!("bound {} {}", o.op, show(o.bound, o.unit));
    match (o.value, &o.reason) {
        (Some(v), Some(r)) => format!("{} is {}, {bound}; {r}", o.key, show(v, o.unit)),
        (Some(v), None) => format!("{} is {}, {bound}", o.key, show(v, o.unit)),
        (None, Some(r)) => format!("{} has no value ({r}), {bound}", o.key),
        (None, None) => format!("{} has no value, {bound}", o.key),
    }
}

/// One line per failed (assertion, process), for stderr.
pub fn failure_lines(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| {
            format!(
                "gmp-trace: assertion failed: {}: {}: {}",
                o.expr,
                who(&o.process),
                explain(o)
            )
        })
        .collect()
}

/// The summary text's lines about assertions (empty without any).
pub fn text(outcomes: &[Outcome]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if outcomes.is_empty() {
        return s;
    }
    let passed = outcomes.iter().filter(|o| o.ok).count();
    let _ = writeln!(s, "  assertions {passed} of {} passed", outcomes.len());
    for o in outcomes {
        let value = o.value.map_or("no value".to_string(), |v| show(v, o.unit));
        let _ = writeln!(
            s,
            "    {:<4}  {:<36} {:<28} {}",
            if o.ok { "ok" } else { "FAIL" },
            o.expr,
            value,
            who(&o.process)
        );
    }
    s
}

/// The assertions and the JUnit report of one session (`--assert`, `--junit`), the report file
/// opened with the other outputs so a bad path fails before tracing.
#[derive(Default)]
pub struct Checks {
    pub asserts: Vec<Assertion>,
    junit: Option<(Option<File>, PathBuf)>,
}

impl Checks {
    pub fn open(asserts: &[Assertion], junit: Option<&Path>) -> anyhow::Result<Checks> {
        let junit = match junit {
            Some(p) => Some((
                crate::export::files::open_output(p, "JUnit report")?,
                p.to_path_buf(),
            )),
            None => None,
        };
        Ok(Checks {
            asserts: asserts.to_vec(),
            junit,
        })
    }

    /// Checks a session of one process, whose summary is `summary` (serialized here).
    pub fn evaluate_one<S: Serialize>(&self, summary: &S) -> anyhow::Result<Vec<Outcome>> {
        if self.asserts.is_empty() {
            return Ok(Vec::new());
        }
        let v = serde_json::to_value(summary).context("reading the summary for --assert")?;
        Ok(evaluate(&self.asserts, &[ProcessSummary::of(&v)]))
    }

    /// Checks a run of several processes on its combined summary (`{"processes": [...]}`, each
    /// entry one process's usual keys), and adds the results to it as `assertions`.
    pub fn evaluate_processes(&self, combined: &mut Value) -> Vec<Outcome> {
        if self.asserts.is_empty() {
            return Vec::new();
        }
        let empty = Vec::new();
        let list = combined["processes"].as_array().unwrap_or(&empty);
        let processes: Vec<ProcessSummary<'_>> = list.iter().map(ProcessSummary::of).collect();
        let outcomes = evaluate(&self.asserts, &processes);
        if let Value::Object(top) = combined {
            top.insert(
                "assertions".into(),
                serde_json::to_value(&outcomes).unwrap_or(Value::Null),
            );
        }
        outcomes
    }

    /// The failure lines on stderr (even with -q: they are the run's verdict) and the JUnit
    /// report.
    pub fn report(&mut self, outcomes: &[Outcome]) -> anyhow::Result<()> {
        for line in failure_lines(outcomes) {
            eprintln!("{line}");
        }
        if let Some((file, path)) = self.junit.take() {
            let xml = junit::render(outcomes);
            let written = match file {
                Some(mut f) => std::io::Write::write_all(&mut f, xml.as_bytes()),
                None => std::io::Write::write_all(&mut std::io::stdout(), xml.as_bytes()),
            };
            written.with_context(|| format!("writing the JUnit report to {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
