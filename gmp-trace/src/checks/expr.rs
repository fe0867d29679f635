//! `--assert EXPR` parsed: `[all:|any:]KEY OP VALUE`, the key checked against the known keys
//! and the value read in the key's unit (a duration for a duration key, a size for a byte
//! count), so a mistake is a usage error before anything is traced, not a surprise at the end.
use std::fmt;

use super::keys::{self, Unit};

/// Over which processes an assertion must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantifier {
    /// Every process (the default).
    All,
    /// At least one.
    Any,
}

impl Quantifier {
    pub fn name(self) -> &'static str {
        match self {
            Quantifier::All => "all",
            Quantifier::Any => "any",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Gt => ">",
        }
    }

    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Op::Lt => value < bound,
            Op::Le => value <= bound,
            Op::Eq => value == bound,
            Op::Ne => value != bound,
            Op::Ge => value >= bound,
            Op::Gt => value > bound,
        }
    }
}

/// One `--assert`.
#[derive(Clone, Debug, PartialEq)]
pub struct Assertion {
    /// As the user wrote it (trimmed).
    pub expr: String,
    pub quantifier: Quantifier,
    pub key: String,
    pub op: Op,
    /// In the key's unit (nanoseconds for `*_ns` and the `sched_latency_*` keys).
    pub bound: f64,
    pub unit: Unit,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExprError {
    #[error("{0:?} has no comparison: write KEY OP VALUE with OP one of < <= == != >= >, e.g. `lost_events == 0`")]
    NoOp(String),
    #[error("{0:?} has no key before its comparison")]
    NoKey(String),
    #[error("{0:?} has no value after its comparison")]
    NoValue(String),
    #[error("unknown key {key:?}{}; `docs/ci.md` lists every key", suggest(.close))]
    UnknownKey { key: String, close: Vec<String> },
    #[error("{key} is {what}: {value:?} is not one ({hint})")]
    BadValue {
        key: String,
        what: &'static str,
        value: String,
        hint: &'static str,
    },
    #[error("{key} is true or false: only == and != compare it")]
    BoolOrder { key: String },
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean: {}?)", close.join(", "))
    }
}

/// The clap value parser of `--assert`.
pub fn parse_assertion(s: &str) -> Result<Assertion, String> {
    parse(s).map_err(|e| e.to_string())
}

pub fn parse(s: &str) -> Result<Assertion, ExprError> {
    let expr = s.trim().to_string();
    let (quantifier, rest) = if let Some(r) = expr.strip_prefix("all:") {
        (Quantifier::All, r)
    } else if let Some(r) = expr.strip_prefix("any:") {
        (Quantifier::Any, r)
    } else {
        (Quantifier::All, expr.as_str())
    };
    let (at, op) = find_op(rest).ok_or_else(|| ExprError::NoOp(expr.clone()))?;
    let key = rest[..at].trim();
    let value = rest[at + op.symbol().len()..].trim();
    if key.is_empty() {
        return Err(ExprError::NoKey(expr));
    }
    if value.is_empty() {
        return Err(ExprError::NoValue(expr));
    }
    let unit = keys::unit_of(key).ok_or_else(|| ExprError::UnknownKey {
        key: key.to_string(),
        close: keys::close_names(key),
    })?;
    if unit == Unit::Bool && !matches!(op, Op::Eq | Op::Ne) {
        return Err(ExprError::BoolOrder { key: key.into() });
    }
    let bound = parse_value(key, unit, value)?;
    Ok(Assertion {
        expr: expr.clone(),
        quantifier,
        key: key.to_string(),
        op,
        bound,
        unit,
    })
}

/// The first comparison operator: `<`, `>`, `=` or `!` start one, except the `>` of `->`, which
/// is part of the `transitions.A->B` keys.
fn find_op(s: &str) -> Option<(usize, Op)> {
    let b = s.as_bytes();
    for i in 0..b.len() {
        let next = b.get(i + 1).copied();
        let op = match (b[i], next) {
            (b'<', Some(b'=')) => Op::Le,
            (b'>', Some(b'=')) => Op::Ge,
            (b'=', Some(b'=')) => Op::Eq,
            (b'!', Some(b'=')) => Op::Ne,
            (b'<', _) => Op::Lt,
            (b'>', _) if i > 0 && b[i - 1] == b'-' => continue,
            (b'>', _) => Op::Gt,
            _ => continue,
        };
        return Some((i, op));
    }
    None
}

/// `value` in the key's unit.
fn parse_value(key: &str, unit: Unit, value: &str) -> Result<f64, ExprError> {
    let bad = |what, hint| ExprError::BadValue {
        key: key.to_string(),
        what,
        value: value.to_string(),
        hint,
    };
    match unit {
        Unit::Count => number(value).ok_or_else(|| bad("a number", "e.g. 0, 20, 1.5")),
        Unit::Nanos | Unit::Millis => {
            let ns = duration_ns(value)
                .ok_or_else(|| bad("a duration", "give a unit: 10ns, 300us, 2ms, 1.5s, 1m"))?;
            Ok(if unit == Unit::Millis { ns / 1e6 } else { ns })
        }
        Unit::Bytes => number(value)
            .or_else(|| crate::cli::parse_size(value).ok().map(|b| b as f64))
            .ok_or_else(|| bad("a size in bytes", "e.g. 65536, 256K, 64M")),
        Unit::Bool => match value {
            "true" => Ok(1.0),
            "false" => Ok(0.0),
            _ => Err(bad("true or false", "write true or false")),
        },
    }
}

fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A duration in nanoseconds: a number with a unit (ns, us or µs, ms, s, m, h); a bare 0 too.
pub fn duration_ns(s: &str) -> Option<f64> {
    let s = s.trim();
    if s == "0" {
        return Some(0.0);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|&i| i > 0)?;
    let (num, unit) = s.split_at(split);
    let mult = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    number(num).map(|v| v * mult)
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_and_the_prefixes() {
        for (text, op) in [
            ("lost_events < 1", Op::Lt),
            ("lost_events <= 1", Op::Le),
            ("lost_events == 1", Op::Eq),
            ("lost_events != 1", Op::Ne),
            ("lost_events >= 1", Op::Ge),
            ("lost_events > 1", Op::Gt),
            ("lost_events>1", Op::Gt),
        ] {
            let a = parse(text).unwrap();
            assert_eq!(
                (a.key.as_str(), a.op, a.bound),
                ("lost_events", op, 1.0),
                "{text}"
            );
            assert_eq!(a.quantifier, Quantifier::All);
        }
        assert_eq!(
            parse("any:leak_sites == 0").unwrap().quantifier,
            Quantifier::Any
        );
        assert_eq!(
            parse("all: threads_max <= 20").unwrap().quantifier,
            Quantifier::All
        );
        assert!(Op::Le.holds(1.0, 1.0) && !Op::Lt.holds(1.0, 1.0) && Op::Ne.holds(1.0, 2.0));
        assert!(Op::Ge.holds(2.0, 1.0) && !Op::Gt.holds(1.0, 1.0) && Op::Eq.holds(0.0, 0.0));
    }

    #[test]
    fn durations_in_the_keys_unit() {
        assert_eq!(parse("sched_latency_p99 < 2ms").unwrap().bound, 2e6);
        assert_eq!(parse("sched_latency_p99 < 1.5s").unwrap().bound, 1.5e9);
        assert_eq!(parse("sched_latency_max < 300us").unwrap().bound, 3e5);
        assert_eq!(parse("sched_latency_p50 < 300µs").unwrap().bound, 3e5);
        assert_eq!(parse("duration_ns >= 10ns").unwrap().bound, 10.0);
        assert_eq!(parse("attach_ms < 2s").unwrap().bound, 2000.0);
        assert_eq!(parse("sched_latency_p99 == 0").unwrap().bound, 0.0);
        // A duration key needs a unit: a bare 2 is too easily meant as 2 ms.
        let e = parse("sched_latency_p99 < 2").unwrap_err();
        assert!(e.to_string().contains("give a unit"), "{e}");
        // A count is not a duration.
        assert!(parse("goroutines_created < 2ms").is_err());
        assert_eq!(duration_ns("2 ms"), Some(2e6));
        assert_eq!(duration_ns("ms"), None);
        assert_eq!(duration_ns("2 weeks"), None);
    }

    #[test]
    fn sizes_and_bools() {
        assert_eq!(
            parse("ring_buffer_bytes >= 8M").unwrap().bound,
            (8 << 20) as f64
        );
        assert_eq!(parse("ring_buffer_bytes >= 4096").unwrap().bound, 4096.0);
        assert_eq!(
            parse("counts_are_lower_bounds == false").unwrap().bound,
            0.0
        );
        assert!(matches!(
            parse("counts_are_lower_bounds < true"),
            Err(ExprError::BoolOrder { .. })
        ));
    }

    #[test]
    fn transitions_keys_keep_their_arrow() {
        let a = parse("transitions.Runnable->Running > 10").unwrap();
        assert_eq!(
            (a.key.as_str(), a.op),
            ("transitions.Runnable->Running", Op::Gt)
        );
        let a = parse("transitions.Running->Waiting>=1").unwrap();
        assert_eq!(
            (a.key.as_str(), a.op),
            ("transitions.Running->Waiting", Op::Ge)
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert!(matches!(parse("lost_events"), Err(ExprError::NoOp(_))));
        assert!(matches!(parse("== 3"), Err(ExprError::NoKey(_))));
        assert!(matches!(
            parse("lost_events =="),
            Err(ExprError::NoValue(_))
        ));
        let e = parse("lost_event == 0").unwrap_err();
        assert!(e.to_string().contains("did you mean: lost_events"), "{e}");
        let e = parse("goroutines_leaked == 0").unwrap_err();
        assert!(matches!(e, ExprError::UnknownKey { .. }), "{e}");
        assert!(parse("lost_events == many").is_err());
    }
}
