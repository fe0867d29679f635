//! What the full-screen view can point at and open: the rows of the goroutines panel (each
//! state and wait reason on a row of its own) and of the creation-sites panel, each row tagged
//! with the [`Pick`] it stands for; the function filter applied to them; and the goroutines a
//! pick stands for in the last state read, as Go traceback text (export/godump), for the stacks
//! pane. Pure data in, lines out, so it is tested without a terminal.
use super::frame::{goroutine_counts, site_of, Frame, SiteSort};
use super::text::{self, Limits};
use crate::export::godump::{write_grouped, write_text, TextOptions};
use crate::fasthash::FastMap;
use crate::model::dump::{Dump, Frame as StackFrame, Goroutine, Stack};

/// A row that can be opened: its goroutines are shown with their stacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    /// A creation site, as [`site_of`] names it.
    Site(String),
    /// A Go status name ("waiting", "runnable", ...).
    State(String),
    /// A wait reason ("chan receive", ...).
    Wait(String),
}

/// One line of a panel, and what it stands for when it can be picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub text: String,
    pub pick: Option<Pick>,
}

impl Row {
    fn plain(text: String) -> Row {
        Row { text, pick: None }
    }
}

/// The picks of `rows`, top to bottom.
pub fn picks(rows: &[Row]) -> Vec<Pick> {
    rows.iter().filter_map(|r| r.pick.clone()).collect()
}

/// Whether goroutines pass the filter: a function on the stack, the start function or the
/// function that created it contains the filter. Goroutines parked at one place share their
/// stack (`Arc`), so each distinct stack is searched once: a draw stays quick with a million
/// goroutines in a few places.
pub struct Matcher<'f> {
    filter: &'f str,
    stacks: FastMap<*const StackFrame, bool>,
}

impl<'f> Matcher<'f> {
    pub fn new(filter: &'f str) -> Matcher<'f> {
        Matcher {
            filter,
            stacks: FastMap::default(),
        }
    }

    pub fn passes(&mut self, g: &Goroutine) -> bool {
        let filter = self.filter;
        let on_stack = match &g.stack {
            Stack::Frames { frames } => *self
                .stacks
                .entry(frames.as_ptr())
                .or_insert_with(|| frames.iter().any(|f| f.function.contains(filter))),
            _ => false,
        };
        on_stack
            || g.start_function
                .as_deref()
                .is_some_and(|f| f.contains(filter))
            || g.created_by
                .as_ref()
                .is_some_and(|c| c.function.contains(filter))
    }
}

/// The goroutines panel of the full-screen view. With a filter, the states and waits count the
/// goroutines of the last whole read `d` that pass it.
pub fn goroutine_rows(
    f: &Frame,
    d: Option<&Dump>,
    filter: Option<&str>,
    limits: &Limits,
) -> Vec<Row> {
    let filtered = filter.zip(d).map(|(flt, d)| {
        let mut m = Matcher::new(flt);
        let counts = goroutine_counts(d.goroutines.iter().filter(|g| m.passes(g)));
        let n: usize = counts.by_state.iter().map(|(_, n)| n).sum();
        (counts, n)
    });
    let (counts, head) = match (&filtered, filter) {
        (Some((c, n)), Some(flt)) => (
            c,
            format!("Goroutines: {n} of {} with {flt:?}", f.goroutines.total),
        ),
        (None, Some(_)) => (
            &f.goroutines,
            format!(
                "{} (filter waits for a whole read)",
                text::goroutines_head(f)
            ),
        ),
        _ => (&f.goroutines, text::goroutines_head(f)),
    };
    let mut rows = vec![Row::plain(head)];
    // GC from memory, and what the probes of `--with` counted.
    rows.extend(text::probe_lines(f).into_iter().map(Row::plain));
    rows.push(Row::plain(format!("  {:>7}  state", "count")));
    for (state, n) in &counts.by_state {
        rows.push(Row {
            text: format!("  {n:>7}  {state}"),
            pick: Some(Pick::State(state.clone())),
        });
    }
    rows.push(Row::plain(text::wait_head()));
    for w in counts.by_wait.iter().take(limits.waits) {
        rows.push(Row {
            text: text::wait_line(w),
            pick: Some(Pick::Wait(w.reason.clone())),
        });
    }
    rows
}

/// The creation-sites panel: the sites whose creating function passes the filter.
pub fn site_rows(f: &Frame, sort: SiteSort, filter: Option<&str>, limits: &Limits) -> Vec<Row> {
    let sites = text::sorted_sites(f, sort, filter);
    let mut rows: Vec<Row> = text::sites_head(sort).into_iter().map(Row::plain).collect();
    for s in sites.iter().take(limits.sites) {
        rows.push(Row {
            text: text::site_line(s),
            pick: Some(Pick::Site(s.site.clone())),
        });
    }
    if sites.len() > limits.sites {
        let more = sites.len() - limits.sites;
        rows.push(Row::plain(format!("  ... {more} more sites")));
    }
    if sites.is_empty() && filter.is_some() {
        rows.push(Row::plain("  (no site passes the filter)".to_string()));
    }
    rows
}

/// The goroutines of `d` that `pick` stands for, as a dump of their own. A state or a wait
/// counts only the goroutines that pass the filter (as its row does); a site, all of its own.
pub fn members(d: &Dump, pick: &Pick, filter: Option<&str>) -> Dump {
    let mut matcher = filter.map(Matcher::new);
    let mut passes = |g: &Goroutine| matcher.as_mut().is_none_or(|m| m.passes(g));
    let goroutines: Vec<Goroutine> = d
        .goroutines
        .iter()
        .filter(|g| match pick {
            Pick::Site(site) => site_of(g).as_deref() == Some(site.as_str()),
            Pick::State(s) => g.status == s.as_str() && passes(g),
            // As the panel counts them: the reason is the state only while waiting.
            Pick::Wait(w) => {
                g.wait_reason == Some(w.as_str())
                    && matches!(g.status, "waiting" | "leaked")
                    && passes(g)
            }
        })
        .cloned()
        .collect();
    Dump {
        pid: d.pid,
        go_version: d.go_version.clone(),
        go_minor: d.go_minor,
        taken_at_ns: d.taken_at_ns,
        duration_ns: d.duration_ns,
        torn_reads: goroutines
            .iter()
            .filter(|g| matches!(g.stack, Stack::Torn { .. }))
            .count() as u64,
        goroutines,
        threads: Vec::new(),
        procs: Vec::new(),
        incomplete: d.incomplete.clone(),
    }
}

/// What the stacks pane says about a pick, e.g. `goroutines created at main.leak x.go:9`.
pub fn describe(pick: &Pick) -> String {
    match pick {
        Pick::Site(s) => format!("goroutines created at {s}"),
        Pick::State(s) => format!("goroutines in state {s}"),
        Pick::Wait(w) => format!("goroutines waiting on {w}"),
    }
}

/// The members' stacks as `gmp-trace dump` prints them, grouped (`--group`) or one by one.
/// System goroutines are included: the panels count them too.
pub fn stacks_text(members: &Dump, grouped: bool) -> Vec<String> {
    let opts = TextOptions {
        system: true,
        ..TextOptions::default()
    };
    let mut buf = Vec::new();
    let written = if grouped {
        write_grouped(members, &opts, &mut buf)
    } else {
        write_text(members, &opts, &mut buf)
    };
    let mut lines: Vec<String> = String::from_utf8_lossy(&buf)
        .lines()
        .map(|l| l.replace('\t', "        "))
        .collect();
    if let Err(e) = written {
        // Writing to memory does not fail; say so rather than show a cut text if it ever does.
        lines.push(format!("(rendering stopped: {e})"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::commands::top::frame::{Cpu, History};
    use crate::model::dump::CreatedBy;

    fn g(goid: u64, created: &str, frame: &str) -> Goroutine {
        let frames: Arc<[StackFrame]> = vec![StackFrame {
            function: frame.into(),
            file: "/src/main.go".into(),
            line: 5,
            ..StackFrame::default()
        }]
        .into();
        Goroutine {
            goid,
            status: "waiting",
            wait_reason: Some("chan receive"),
            start_function: Some(frame.into()),
            created_by: Some(CreatedBy {
                function: created.into(),
                file: "/src/main.go".into(),
                line: 9,
                goid: Some(1),
                ..CreatedBy::default()
            }),
            stack: Stack::Frames { frames },
            ..Goroutine::default()
        }
    }

    fn dump() -> Dump {
        Dump {
            go_minor: 22,
            go_version: "go1.22.0".into(),
            goroutines: vec![
                g(10, "main.startPool", "main.poolWorker"),
                g(11, "main.startPool", "main.poolWorker"),
                g(20, "main.leak", "main.leaked"),
                g(21, "main.leak", "main.leaked"),
                g(22, "main.leak", "main.leaked"),
            ],
            ..Dump::default()
        }
    }

    const LIMITS: Limits = Limits {
        sites: 12,
        cpu: 8,
        waits: 8,
    };

    fn frame(d: &Dump) -> Frame {
        let cpu = Cpu {
            secs: 1.0,
            rate_hz: 99,
        };
        History::new(3).frame(d, &[], cpu, 0)
    }

    #[test]
    fn the_filter_keeps_the_sites_and_goroutines_of_the_function() {
        let d = dump();
        let f = frame(&d);
        let all = site_rows(&f, SiteSort::Live, None, &LIMITS);
        assert_eq!(picks(&all).len(), 2);
        let leak = site_rows(&f, SiteSort::Live, Some("main.leak"), &LIMITS);
        assert_eq!(picks(&leak), [Pick::Site("main.leak main.go:9".into())]);
        // The file name is not the function: "main.go" passes no site.
        let none = site_rows(&f, SiteSort::Live, Some("main.go"), &LIMITS);
        assert!(picks(&none).is_empty());
        let rows = goroutine_rows(&f, Some(&d), Some("main.leaked"), &LIMITS);
        assert_eq!(rows[0].text, "Goroutines: 3 of 5 with \"main.leaked\"");
        let wait = rows
            .iter()
            .find(|r| r.pick == Some(Pick::Wait("chan receive".into())));
        assert!(
            wait.is_some_and(|r| r.text.trim_start().starts_with("3 ")),
            "{rows:?}"
        );
    }

    #[test]
    fn a_pick_opens_its_goroutines_stacks() {
        let d = dump();
        let m = members(&d, &Pick::Site("main.leak main.go:9".into()), None);
        assert_eq!(m.goroutines.len(), 3);
        let text = stacks_text(&m, true).join("\n");
        assert!(
            text.contains("3 goroutines [chan receive]: 20, 21, 22"),
            "{text}"
        );
        assert!(text.contains("main.leaked(...)"), "{text}");
        assert!(
            text.contains("created by main.leak in goroutine 1"),
            "{text}"
        );
        let each = stacks_text(&m, false);
        assert_eq!(
            each.iter().filter(|l| l.starts_with("goroutine ")).count(),
            3
        );
        // A wait under a filter opens what its row counts.
        let w = members(&d, &Pick::Wait("chan receive".into()), Some("main.pool"));
        assert_eq!(
            w.goroutines.iter().map(|g| g.goid).collect::<Vec<_>>(),
            [10, 11]
        );
        let s = members(&d, &Pick::State("waiting".into()), None);
        assert_eq!(s.goroutines.len(), 5);
    }
}
