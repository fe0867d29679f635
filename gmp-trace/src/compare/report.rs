//! The comparison's result and its two forms: the text table printed on stdout and the JSON
//! of `--json` (the same [`Report`], serialised; the fidelity tests read it). Also the
//! `--min-match` verdict, which only reads the report.
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub name: String,
    pub from: String,
    pub to: String,
    pub go: u64,
    pub ours: u64,
    pub matched: u64,
    /// In Go's trace, not in ours.
    pub missing: u64,
    /// In ours, not in Go's trace.
    pub extra: u64,
    /// matched / go * 100; None when Go has no event of this type.
    pub match_pct: Option<f64>,
    /// Goroutines whose counts differ: (goid, Go's count, ours), the first few.
    pub differing: Vec<(u64, u64, u64)>,
    pub differing_goroutines: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Placement {
    /// Go's GoStart events compared (the GoStart row's `go`).
    pub go_starts: u64,
    /// Of them, paired with our start of the same goroutine (k-th with k-th).
    pub paired: u64,
    pub same_m: u64,
    pub same_p: u64,
    /// same / go_starts * 100 (unpaired starts count as different).
    pub same_m_pct: Option<f64>,
    pub same_p_pct: Option<f64>,
    /// What Go's M= was matched against: "tid" (Go 1.22+ traces) or "m.id" (older traces).
    pub m_identity: String,
    /// The first few pairs that differ.
    pub differing: Vec<PlacementDiff>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PlacementDiff {
    pub goid: u64,
    /// Which start of the goroutine (0-based) in the window.
    pub nth: usize,
    /// Time of Go's start, ns from the window's start.
    pub go_ts: i64,
    pub go_m: i64,
    pub go_p: i64,
    pub ours_ts: i64,
    pub ours_m: i64,
    pub ours_p: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Clock {
    /// Added to Go's Time to get our clock (median over goroutines created in both).
    pub offset_ns: i64,
    pub pairs: u64,
    /// Spread of (ours - Go's) over those pairs around the median.
    pub min_diff_ns: i64,
    pub max_diff_ns: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Window {
    /// The window Go recorded transitions in (see [`GoParsed::first_event_time`]), on our clock.
    ///
    /// [`GoParsed::first_event_time`]: super::go_side::GoParsed::first_event_time
    pub go_first: i64,
    pub go_last: i64,
    /// Our first..last event.
    pub ours_first: i64,
    pub ours_last: i64,
    /// What is compared: the intersection.
    pub start: i64,
    pub end: i64,
}

/// Everything left out of the rows, with how much.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Exclusions {
    /// Goroutines whose first event in Go's trace is Undetermined->X (they existed before
    /// tracing started): compared from their first determined transition on.
    pub undetermined_goroutines: u64,
    /// Their Undetermined->X events (not transitions we could see).
    pub undetermined_events: u64,
    /// Our transitions of those goroutines before Go's Undetermined->X (less the slack).
    pub ours_before_determined: u64,
    /// Our Running->Waiting immediately followed by Waiting->Running of the same goroutine
    /// (runtime-internal waits, e.g. GC stack scans, that Go's tracer does not show): pairs.
    pub tracer_invisible_waits: u64,
    /// Go <= 1.21 only: the GoSched StopTrace records for the goroutine stopping the trace
    /// (it is not descheduled).
    pub stop_trace_gosched: u64,
    /// Transitions outside the common window, and goroutines all of whose transitions are.
    pub go_outside_window: u64,
    pub ours_outside_window: u64,
    pub go_goroutines_outside_window: u64,
    pub ours_goroutines_outside_window: u64,
}

/// Transitions of a type outside the rows (e.g. Waiting->Running), per side.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Other {
    pub from: String,
    pub to: String,
    pub go: u64,
    pub ours: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub go_version: String,
    pub recording: String,
    pub go_trace: String,
    pub clock: Clock,
    pub window: Window,
    pub rows: Vec<Row>,
    pub gostart_placement: Placement,
    pub exclusions: Exclusions,
    pub other_transitions: Vec<Other>,
    /// Go's trace: event lines, P transitions, unrecognised lines.
    pub go_events: u64,
    pub go_proc_transitions: u64,
    pub go_unknown_lines: u64,
    pub go_bad_events: u64,
    /// Our recording: events, events lost in the ring buffer, transitions in total.
    pub ours_events: u64,
    pub ours_lost: u64,
    pub ours_transitions: u64,
    /// Probes the comparison relies on that the recording's footer does not list (a lower
    /// --level, or functions missing in that Go version): their rows cannot match.
    pub ours_probes_missing: Vec<String>,
    pub min_match: Option<f64>,
    /// Rows below --min-match (empty without it).
    pub failures: Vec<String>,
    #[serde(skip)]
    pub details: Vec<String>,
    /// Two Go traces compared (`--ours-go-trace`): stacks and reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go_go: Option<super::go_go::GoGo>,
}

/// A percentage as the table prints it.
fn pct_text(v: Option<f64>, unit: &str) -> String {
    v.map_or("n/a".to_string(), |p| format!("{p:.2}{unit}"))
}

impl Report {
    /// Applies --min-match: every row with Go events at least `min` % matched (GoCreate 100 %),
    /// and GoStart's same M and same P at least `min` %.
    pub fn check(&mut self, min: f64) {
        self.min_match = Some(min);
        self.failures.clear();
        for r in &self.rows {
            let Some(p) = r.match_pct else { continue };
            let need = if r.name == "GoCreate" { 100.0 } else { min };
            if p < need {
                self.failures.push(format!(
                    "{} ({}->{}) matched {:.2}% < {need}%",
                    r.name, r.from, r.to, p
                ));
            }
        }
        let pl = &self.gostart_placement;
        for (what, v) in [("same M", pl.same_m_pct), ("same P", pl.same_p_pct)] {
            if let Some(p) = v.filter(|p| *p < min) {
                self.failures
                    .push(format!("GoStart {what} {p:.2}% < {min}%"));
            }
        }
    }

    /// The table printed on stdout, section by section.
    pub fn text(&self) -> String {
        let mut s = String::new();
        self.text_heading(&mut s);
        self.text_rows(&mut s);
        self.text_placement(&mut s);
        self.text_differences(&mut s);
        self.text_exclusions(&mut s);
        if let Some(g) = &self.go_go {
            g.text(&mut s);
        }
        self.text_inputs(&mut s);
        self.text_verdict(&mut s);
        for d in &self.details {
            s.push('\n');
            s.push_str(d);
        }
        s
    }

    /// What was compared with what, over which window and clock offset.
    fn text_heading(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "gmp-trace compare: {} ({}) against {}",
            self.recording, self.go_version, self.go_trace
        );
        let w = &self.window;
        let _ = writeln!(
            s,
            "window: {:.3} ms compared (Go's trace {:.3} ms, ours {:.3} ms); clock offset {} ns over {} creations (spread {}..{} ns)",
            (w.end - w.start) as f64 / 1e6,
            (w.go_last - w.go_first) as f64 / 1e6,
            (w.ours_last - w.ours_first) as f64 / 1e6,
            self.clock.offset_ns,
            self.clock.pairs,
            self.clock.min_diff_ns,
            self.clock.max_diff_ns
        );
    }

    fn text_rows(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n{:<20} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "event", "transition", "go", "ours", "matched", "missing", "extra", "match%"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<20} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                r.name,
                format!("{}->{}", r.from, r.to),
                r.go,
                r.ours,
                r.matched,
                r.missing,
                r.extra,
                pct_text(r.match_pct, "")
            );
        }
    }

    fn text_placement(&self, s: &mut String) {
        let pl = &self.gostart_placement;
        let _ = writeln!(
            s,
            "GoStart placement: {} starts, {} paired; same M ({}) {} {}, same P {} {}",
            pl.go_starts,
            pl.paired,
            pl.m_identity,
            pl.same_m,
            pct_text(pl.same_m_pct, "%"),
            pl.same_p,
            pct_text(pl.same_p_pct, "%")
        );
        for d in &pl.differing {
            let _ = writeln!(
                s,
                "  GoStart #{} of g{}: Go M={} P={} at {:.3}us, ours M={} P={} at {:.3}us",
                d.nth,
                d.goid,
                d.go_m,
                d.go_p,
                d.go_ts as f64 / 1e3,
                d.ours_m,
                d.ours_p,
                d.ours_ts as f64 / 1e3
            );
        }
    }

    /// The goroutines each row differs on, and the transitions outside the rows.
    fn text_differences(&self, s: &mut String) {
        for r in self.rows.iter().filter(|r| r.differing_goroutines > 0) {
            let list: Vec<String> = r
                .differing
                .iter()
                .map(|(g, a, b)| format!("g{g} go={a} ours={b}"))
                .collect();
            let _ = writeln!(
                s,
                "  {} differs on {} goroutines: {}",
                r.name,
                r.differing_goroutines,
                list.join(", ")
            );
        }
        if !self.other_transitions.is_empty() {
            let list: Vec<String> = self
                .other_transitions
                .iter()
                .map(|o| format!("{}->{} go={} ours={}", o.from, o.to, o.go, o.ours))
                .collect();
            let _ = writeln!(s, "other transitions (not compared): {}", list.join(", "));
        }
    }

    fn text_exclusions(&self, s: &mut String) {
        let e = &self.exclusions;
        let _ = writeln!(s, "\nexcluded (docs/fidelity.md):");
        let _ = writeln!(
            s,
            "  goroutines already alive when Go's trace started (Undetermined->X): {} ({} events; {} of our transitions before)",
            e.undetermined_goroutines, e.undetermined_events, e.ours_before_determined
        );
        let _ = writeln!(
            s,
            "  tracer-invisible waits (our Running->Waiting->Running, e.g. GC stack scans): {} pairs",
            e.tracer_invisible_waits
        );
        if e.stop_trace_gosched > 0 {
            let _ = writeln!(
                s,
                "  Go <= 1.21 StopTrace's GoSched of the goroutine stopping the trace: {}",
                e.stop_trace_gosched
            );
        }
        let _ = writeln!(
            s,
            "  outside the common window: Go {} transitions ({} goroutines entirely), ours {} ({} goroutines entirely)",
            e.go_outside_window,
            e.go_goroutines_outside_window,
            e.ours_outside_window,
            e.ours_goroutines_outside_window
        );
    }

    /// How much each input held, and a warning when the recording lacks probes.
    fn text_inputs(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "inputs: Go {} events ({} P transitions, {} unrecognised lines, {} unreadable events); ours {} events, {} lost, {} transitions",
            self.go_events,
            self.go_proc_transitions,
            self.go_unknown_lines,
            self.go_bad_events,
            self.ours_events,
            self.ours_lost,
            self.ours_transitions
        );
        if !self.ours_probes_missing.is_empty() {
            let _ = writeln!(
                s,
                "WARNING: the recording lacks the probes {} (recorded with a lower --level?): rows built from them cannot match",
                self.ours_probes_missing.join(", ")
            );
        }
    }

    /// PASS or FAIL, with --min-match only.
    fn text_verdict(&self, s: &mut String) {
        if let Some(min) = self.min_match {
            if self.failures.is_empty() {
                let stacks = match self.go_go.as_ref().and_then(|g| g.min_stack_match) {
                    Some(m) => {
                        format!(", GoBlock and GoCreate stacks and start functions at least {m}%")
                    }
                    None => String::new(),
                };
                let _ = writeln!(s, "PASS: every row at least {min}% (GoCreate 100%){stacks}");
            } else {
                let _ = writeln!(s, "FAIL: {}", self.failures.join("; "));
            }
        }
    }

    /// Prints the table on stdout and, with `json`, writes the report there.
    pub fn emit(&self, json: Option<&Path>) -> anyhow::Result<()> {
        // A closed stdout (`| head`) is not an error worth a panic.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), self.text().as_bytes());
        if let Some(p) = json {
            let mut j = serde_json::to_vec_pretty(self)?;
            j.push(b'\n');
            std::fs::write(p, j).with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(())
    }
}
