//! Go's side of the comparison: what Go's execution tracer recorded, read from the text
//! `go tool trace -d=parsed` prints (run here, or read from a file), reduced to goroutine
//! transitions in the model's vocabulary ([`GoState`]) plus the counts and times the report
//! needs. The text format is Go's, not ours: anything unrecognised is counted, never fatal.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::model::GoState;

/// One goroutine state transition from Go's trace.
#[derive(Clone, Debug, PartialEq)]
pub struct GoTransition {
    /// Time= as printed (ns; CLOCK_MONOTONIC for traces from Go 1.22+, relative for older).
    pub time: i64,
    /// M= (the OS thread id for Go 1.22+ traces, m.id for older ones), -1 for none.
    pub m: i64,
    pub p: i64,
    /// G= : the goroutine running where the transition happened (the creator for GoCreate).
    pub g: i64,
    pub goid: u64,
    /// `Unknown` stands for the tracer's `Undetermined`.
    pub from: GoState,
    pub to: GoState,
    pub reason: String,
    /// The event's `Stack=` block, function names leaf first (the creator's for GoCreate).
    pub stack: Vec<String>,
    /// The `TransitionStack=` block (the new goroutine's start function for GoCreate).
    pub tstack: Vec<String>,
}

/// What `go tool trace -d=parsed` printed, reduced to what the comparison needs.
#[derive(Clone, Debug, Default)]
pub struct GoParsed {
    pub transitions: Vec<GoTransition>,
    /// First and last Time= of any event (negative times, as old traces' Sync has, ignored).
    pub first_time: Option<i64>,
    pub last_time: Option<i64>,
    /// The window Go's tracer recorded transitions in: from the first event other than Sync (a
    /// generation's Sync carries the time it began, before StartTrace's stop-the-world turned
    /// the tracer on) to the last event other than Sync or Undetermined->X (StopTrace writes
    /// the status of untouched goroutines after transitions stopped being recorded).
    pub first_event_time: Option<i64>,
    pub last_event_time: Option<i64>,
    pub events: u64,
    /// P state transitions (ProcID=...), not compared.
    pub proc_transitions: u64,
    /// Event lines by event type (StateTransition, Metric, RangeBegin, ...).
    pub by_type: BTreeMap<String, u64>,
    /// Lines that are neither events nor stack blocks (counted, otherwise ignored).
    pub unknown_lines: u64,
    /// Event lines whose fields could not be read (counted, otherwise ignored).
    pub bad_events: u64,
    /// A Sync event carried Mono= (Go 1.25+ clock snapshots): Time is the monotonic clock.
    pub has_clock_snapshot: bool,
    /// Where the stack block being read goes: the last event line's transition (an index in
    /// `transitions`) and which of its stacks (true: `TransitionStack=`).
    block: Option<(usize, bool)>,
    /// The last event line was that transition (its stack blocks follow it).
    last_transition: Option<usize>,
}

/// Go's trace as text: read from `--go-parsed FILE`, or printed by `go tool trace` from
/// `--go-trace FILE`. Returns it parsed, with the file it came from (for the report).
pub fn load(
    go_parsed: Option<&Path>,
    go_trace: Option<&Path>,
    go: Option<&Path>,
) -> anyhow::Result<(GoParsed, String)> {
    let (text, source) = match (go_parsed, go_trace) {
        (Some(p), _) => (
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        ),
        (None, Some(t)) => (go_tool_trace(go, t)?, t.display().to_string()),
        (None, None) => bail!("pass --go-trace FILE or --go-parsed FILE"),
    };
    let parsed = parse_go(&text);
    if parsed.transitions.is_empty() {
        bail!(
            "no goroutine transitions in Go's trace {source} ({} events, {} unrecognised lines): is it `go tool trace -d=parsed` output of a Go execution trace?",
            parsed.events,
            parsed.unknown_lines
        );
    }
    Ok((parsed, source))
}

fn go_tool_trace(go: Option<&Path>, trace: &Path) -> anyhow::Result<String> {
    let go = go.unwrap_or(Path::new("go"));
    let run = |flag: &str| {
        Command::new(go)
            .args(["tool", "trace", flag])
            .arg(trace)
            .env("GOTOOLCHAIN", "local")
            .output()
            .with_context(|| {
                format!(
                    "cannot run `{} tool trace` (pass --go PATH to a Go 1.22+ go command, or --go-parsed FILE)",
                    go.display()
                )
            })
    };
    let mut o = run("-d=parsed")?;
    if !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("for flag -d") {
        // Go 1.22 and 1.23 name the same dump -d=1.
        o = run("-d=1")?;
    }
    if !o.status.success() {
        bail!(
            "`{} tool trace -d=parsed {}` failed ({}); it needs a Go 1.22+ toolchain at least as new as the traced program (--go PATH):\n{}",
            go.display(),
            trace.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    String::from_utf8(o.stdout).context("go tool trace printed non-UTF-8 text")
}

/// Parses `go tool trace -d=parsed` output. Stack blocks (`Stack=`, `TransitionStack=` and
/// their indented frames) go on the goroutine transition they follow (function names only;
/// other events' stacks are skipped); anything unrecognised is counted, never fatal.
pub fn parse_go(text: &str) -> GoParsed {
    let mut out = GoParsed::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(frame) = line.strip_prefix('\t') {
            // `\tfunc @ 0xpc` starts a frame, `\t\tfile:line` is its place.
            if let (Some((i, trans)), Some((func, _))) = (out.block, frame.split_once(" @ ")) {
                if !frame.starts_with('\t') {
                    let t = &mut out.transitions[i];
                    let v = if trans { &mut t.tstack } else { &mut t.stack };
                    v.push(func.to_string());
                }
            }
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        out.read_line(line);
    }
    out.block = None;
    out.last_transition = None;
    out
}

/// The fields of one event line after `M= P= G= Kind`: `Key=value` pairs (the first of each
/// key wins) and the `From->To` of a state transition.
struct Fields<'a> {
    map: HashMap<&'a str, &'a str>,
    arrow: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn read(toks: &[&'a str]) -> Self {
        let mut map: HashMap<&str, &str> = HashMap::new();
        let mut arrow = None;
        for t in toks {
            match t.split_once('=') {
                Some((k, v)) if !k.contains('"') => {
                    map.entry(k).or_insert(v);
                }
                _ if t.contains("->") => arrow = arrow.or(Some(*t)),
                _ => {}
            }
        }
        Fields { map, arrow }
    }
}

impl GoParsed {
    /// One line that is not blank and not a stack frame: an event, a stack block's header, or
    /// something unrecognised.
    fn read_line(&mut self, line: &str) {
        let toks = tokens(line);
        if toks.len() < 4 || !toks[0].starts_with("M=") {
            let first = toks.first().copied().unwrap_or("");
            if first.ends_with("Stack=") && toks.len() == 1 {
                self.block = self
                    .last_transition
                    .map(|i| (i, first == "TransitionStack="));
            } else {
                self.unknown_lines += 1;
            }
            return;
        }
        self.block = None;
        self.last_transition = None;
        let head = |t: &str, k: &str| t.strip_prefix(k).and_then(|v| v.parse::<i64>().ok());
        let (Some(m), Some(p), Some(g)) = (
            head(toks[0], "M="),
            head(toks[1], "P="),
            head(toks[2], "G="),
        ) else {
            self.bad_events += 1;
            return;
        };
        let kind = toks[3];
        self.events += 1;
        *self.by_type.entry(kind.to_string()).or_default() += 1;
        let fields = Fields::read(&toks[4..]);
        let time = fields.map.get("Time").and_then(|v| v.parse::<i64>().ok());
        if kind == "Sync" && fields.map.contains_key("Mono") {
            self.has_clock_snapshot = true;
        }
        self.note_time(kind, time, fields.arrow);
        if kind == "StateTransition" {
            self.read_transition((m, p, g), time, &fields);
        }
    }

    /// Widens the trace's time spans by one event's Time= (see [`GoParsed::first_event_time`]
    /// for what each span leaves out).
    fn note_time(&mut self, kind: &str, time: Option<i64>, arrow: Option<&str>) {
        let Some(t) = time.filter(|t| *t >= 0) else {
            return;
        };
        self.first_time = Some(self.first_time.map_or(t, |f| f.min(t)));
        self.last_time = Some(self.last_time.map_or(t, |l| l.max(t)));
        if kind != "Sync" {
            self.first_event_time = Some(self.first_event_time.map_or(t, |f| f.min(t)));
            let status = arrow.is_some_and(|a| a.starts_with("Undetermined->"));
            if !status {
                self.last_event_time = Some(self.last_event_time.map_or(t, |l| l.max(t)));
            }
        }
    }

    /// A StateTransition event: a P's (counted) or a goroutine's (kept).
    fn read_transition(&mut self, (m, p, g): (i64, i64, i64), time: Option<i64>, f: &Fields) {
        if f.map.contains_key("ProcID") {
            self.proc_transitions += 1;
            return;
        }
        let goid = f.map.get("GoID").and_then(|v| v.parse::<u64>().ok());
        let states = f
            .arrow
            .and_then(|a| a.split_once("->"))
            .and_then(|(from, to)| Some((go_state(from)?, go_state(to)?)));
        let (Some(time), Some(goid), Some((from, to))) = (time, goid, states) else {
            self.bad_events += 1;
            return;
        };
        self.transitions.push(GoTransition {
            time,
            m,
            p,
            g,
            goid,
            from,
            to,
            reason: f.map.get("Reason").map(|r| unquote(r)).unwrap_or_default(),
            stack: Vec::new(),
            tstack: Vec::new(),
        });
        self.last_transition = Some(self.transitions.len() - 1);
    }
}

/// Splits on spaces outside double quotes (Reason="chan receive" is one token).
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(&line[s..i]);
            }
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        if c == '"' {
            in_quote = true;
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

fn go_state(s: &str) -> Option<GoState> {
    Some(match s {
        "Undetermined" => GoState::Unknown,
        "NotExist" => GoState::NotExist,
        "Runnable" => GoState::Runnable,
        "Running" => GoState::Running,
        "Waiting" => GoState::Waiting,
        "Syscall" => GoState::Syscall,
        _ => return None,
    })
}

fn unquote(s: &str) -> String {
    let s = s.strip_prefix('"').unwrap_or(s);
    let s = s.strip_suffix('"').unwrap_or(s);
    s.replace("\\\"", "\"").replace("\\\\", "\\")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A short `go tool trace -d=parsed` print: events of every kind the parser meets, stack
    /// blocks, an unrecognised line and final statuses. The matcher's tests use it too.
    pub(in crate::compare) const SAMPLE: &str = r#"M=-1 P=-1 G=-1 Sync Time=1000 N=1 Trace=1000 Mono=990 Wall=2026-01-01T00:00:00Z
M=10 P=-1 G=-1 StateTransition Time=1100 ProcID=1 Undetermined->Running Reason=""
M=10 P=1 G=-1 StateTransition Time=1200 GoID=1 Undetermined->Running Reason=""
M=10 P=1 G=1 Metric Time=1300 Name="/sched/gomaxprocs:threads" Value=Value{Uint64(2)}
Stack=
	runtime.traceLocker.Gomaxprocs @ 0x46cc63
		runtime/traceruntime.go:282

M=10 P=1 G=1 StateTransition Time=1400 GoID=7 NotExist->Runnable Reason=""
TransitionStack=
	main.f @ 0x1
		x.go:1

Stack=
	main.main @ 0x2
		x.go:2

M=11 P=0 G=-1 StateTransition Time=1500 GoID=7 Runnable->Running Reason=""
M=11 P=0 G=7 StateTransition Time=1600 GoID=7 Running->Waiting Reason="chan receive"
M=10 P=1 G=1 StateTransition Time=1700 GoID=7 Waiting->Runnable Reason=""
M=10 P=1 G=1 RangeBegin Time=1750 Name="stop-the-world (x y)" Scope=Goroutine(1)
something odd
M=11 P=0 G=-1 StateTransition Time=1800 GoID=7 Runnable->Running Reason=""
M=11 P=0 G=7 StateTransition Time=1900 GoID=7 Running->NotExist Reason=""
M=-1 P=-1 G=-1 StateTransition Time=1990 GoID=9 Undetermined->Waiting Reason=""
M=-1 P=-1 G=-1 Sync Time=2000 N=2
"#;

    #[test]
    fn tokens_keep_quoted_spaces() {
        assert_eq!(
            tokens(r#"M=1 P=2 G=3 StateTransition Reason="chan \"x\" receive" Time=5"#),
            vec![
                "M=1",
                "P=2",
                "G=3",
                "StateTransition",
                r#"Reason="chan \"x\" receive""#,
                "Time=5"
            ]
        );
        assert_eq!(unquote(r#""chan \"x\" receive""#), r#"chan "x" receive"#);
    }

    #[test]
    fn parses_parsed_output() {
        let p = parse_go(SAMPLE);
        assert_eq!(p.first_time, Some(1000));
        assert_eq!(p.last_time, Some(2000));
        assert_eq!(p.proc_transitions, 1);
        assert_eq!(
            p.unknown_lines, 1,
            "the odd line only; stack blocks are skipped"
        );
        assert_eq!(p.bad_events, 0);
        assert!(p.has_clock_snapshot);
        assert_eq!(p.by_type["StateTransition"], 9);
        assert_eq!(p.events, 13);
        assert_eq!(
            (p.first_event_time, p.last_event_time),
            (Some(1100), Some(1900)),
            "no Sync; no final statuses"
        );
        let t = &p.transitions;
        assert_eq!(t.len(), 8);
        assert_eq!(
            t[0],
            GoTransition {
                time: 1200,
                m: 10,
                p: 1,
                g: -1,
                goid: 1,
                from: GoState::Unknown,
                to: GoState::Running,
                reason: String::new(),
                stack: vec![],
                tstack: vec![],
            }
        );
        assert_eq!(t[1].tstack, ["main.f"], "GoCreate's start function");
        assert_eq!(t[1].stack, ["main.main"], "GoCreate's creator stack");
        assert!(t[2].stack.is_empty() && t[3].stack.is_empty());
        assert_eq!(
            (t[1].goid, t[1].g, t[1].from, t[1].to),
            (7, 1, GoState::NotExist, GoState::Runnable)
        );
        assert_eq!(t[3].reason, "chan receive");
        assert_eq!((t[3].m, t[3].p), (11, 0));
        assert_eq!(t[6].to, GoState::NotExist);
    }

    #[test]
    fn bad_event_lines_are_counted() {
        let p = parse_go(
            "M=1 P=0 G=1 StateTransition Time=5 GoID=3 Running->Flying Reason=\"\"\nM=x P=0 G=1 Foo Time=1\n",
        );
        assert!(p.transitions.is_empty());
        assert_eq!(p.bad_events, 2);
    }
}
