//! `--group`: goroutines that print the same are printed once. Two goroutines fall in one group
//! when their state is the same (status or wait reason, scan, locked to thread; not the
//! minutes), their printed frames are the same (function, file, line, after Go's hiding and
//! elision) and their `created by` is the same function and place. Largest group first, ties
//! by lowest goid. The layout:
//!
//! ```text
//! goroutine dump of pid 4242 (go1.27.3): 1003 goroutines in 2 groups
//!
//! 1000 goroutines [chan receive, 2~5 minutes]: 7, 8, 9, ... (and 997 more)
//! main.worker(...)
//!         /src/app/main.go:12 +0x1d
//! created by main.main in goroutine 1
//!         /src/app/main.go:30 +0x45
//!
//! 3 goroutines [select]: 1, 4, 5
//! ...
//! ```
//!
//! Each block is a Go goroutine block (so the stacks read as in [`super::text`]) with a count
//! and the group's lowest goids in the header; minutes are the group's range ("N minutes" when
//! all agree); `in goroutine N` only when every member was created by the same goroutine. The
//! first line says ", K system goroutines hidden" when Go's hiding left some out. The closing
//! `# gmp-trace:` lines are those of the plain text.
//!
//! Grouping hashes each goroutine's printed lines once and compares a goroutine only with the
//! first member of a group of the same hash, so a million goroutines take one pass.
use std::hash::{Hash, Hasher};
use std::io::{self, Write};

use rustc_hash::FxHasher;

use super::stack::{lines_of, minutes, shows_created_by, state_label, write_body, Line};
use super::text::write_trailer;
use super::TextOptions;
use crate::fasthash::FastMap;
use crate::model::dump::{Dump, Goroutine, Stack};

/// How many goids a group's header lists before "... (and N more)".
const LISTED_GOIDS: usize = 3;

/// Goroutines that print the same.
#[derive(Clone, Debug)]
pub struct Group {
    /// Index in `Dump::goroutines` of the first member: the block prints its stack.
    pub first: usize,
    /// Every member, ascending.
    pub goids: Vec<u64>,
    /// The creating goroutine when all members share it.
    pub parent: Option<u64>,
    /// Range of the members' whole minutes blocked (0 when not set or under a minute).
    pub minutes: (u64, u64),
    lines: Vec<Line>,
    mixed_parents: bool,
}

/// The goroutines of `d` the text would show, grouped, largest group first.
pub fn group(d: &Dump, opts: &TextOptions) -> Vec<Group> {
    let minor = d.go_minor;
    let mut groups: Vec<Group> = Vec::new();
    let mut by_hash: FastMap<u64, Vec<usize>> = FastMap::default();
    for (i, g) in d.goroutines.iter().enumerate() {
        if g.system && !opts.system {
            continue;
        }
        let lines = lines_of(g, minor, opts);
        let created = shows_created_by(g, minor, opts);
        let hash = key_hash(g, &lines, created, minor);
        let candidates = by_hash.entry(hash).or_default();
        let found = candidates.iter().copied().find(|&k| {
            let first = &d.goroutines[groups[k].first];
            same(first, &groups[k].lines, g, &lines, created, minor, opts)
        });
        let parent = g.created_by.as_ref().and_then(|c| c.goid);
        let m = minutes(g).unwrap_or(0);
        match found {
            Some(k) => {
                let grp = &mut groups[k];
                grp.goids.push(g.goid);
                grp.minutes = (grp.minutes.0.min(m), grp.minutes.1.max(m));
                if grp.parent != parent {
                    grp.mixed_parents = true;
                }
            }
            None => {
                candidates.push(groups.len());
                groups.push(Group {
                    first: i,
                    goids: vec![g.goid],
                    parent,
                    minutes: (m, m),
                    lines,
                    mixed_parents: false,
                });
            }
        }
    }
    for grp in &mut groups {
        grp.goids.sort_unstable();
        if grp.mixed_parents {
            grp.parent = None;
        }
    }
    groups.sort_by_key(|g| (std::cmp::Reverse(g.goids.len()), g.goids[0]));
    groups
}

/// Hashes what decides a goroutine's group (see the module comment).
fn key_hash(g: &Goroutine, lines: &[Line], created: bool, minor: u32) -> u64 {
    let mut h = FxHasher::default();
    state_label(g, minor).hash(&mut h);
    g.locked_to_thread.hash(&mut h);
    std::mem::discriminant(&g.stack).hash(&mut h);
    match &g.stack {
        Stack::Frames { frames } => {
            for line in lines {
                match line {
                    Line::Frame(i) => {
                        let f = &frames[*i];
                        (&f.function, &f.file, f.line).hash(&mut h);
                    }
                    Line::Elided(text) => text.hash(&mut h),
                }
            }
        }
        Stack::Torn { reason } => reason.hash(&mut h),
        Stack::Running | Stack::Unavailable => {}
    }
    if let Some(cb) = g.created_by.as_ref().filter(|_| created) {
        (&cb.function, &cb.file, cb.line).hash(&mut h);
    }
    h.finish()
}

/// Whether `b` prints like `a` (the check behind an equal hash).
fn same(
    a: &Goroutine,
    a_lines: &[Line],
    b: &Goroutine,
    b_lines: &[Line],
    b_created: bool,
    minor: u32,
    opts: &TextOptions,
) -> bool {
    if state_label(a, minor) != state_label(b, minor)
        || a.locked_to_thread != b.locked_to_thread
        || a_lines.len() != b_lines.len()
        || shows_created_by(a, minor, opts) != b_created
    {
        return false;
    }
    let stacks = match (&a.stack, &b.stack) {
        (Stack::Frames { frames: fa }, Stack::Frames { frames: fb }) => {
            a_lines.iter().zip(b_lines).all(|(x, y)| match (x, y) {
                (Line::Frame(i), Line::Frame(j)) => {
                    let (f, g) = (&fa[*i], &fb[*j]);
                    f.function == g.function && f.file == g.file && f.line == g.line
                }
                (Line::Elided(s), Line::Elided(t)) => s == t,
                _ => false,
            })
        }
        (Stack::Torn { reason: r }, Stack::Torn { reason: s }) => r == s,
        (Stack::Running, Stack::Running) | (Stack::Unavailable, Stack::Unavailable) => true,
        _ => false,
    };
    let created = match (&a.created_by, &b.created_by) {
        _ if !b_created => true,
        (Some(x), Some(y)) => x.function == y.function && x.file == y.file && x.line == y.line,
        _ => false,
    };
    stacks && created
}

/// Prints the grouped dump (layout in the module comment).
pub fn write_grouped(d: &Dump, opts: &TextOptions, w: &mut dyn Write) -> io::Result<()> {
    let groups = group(d, opts);
    let shown: usize = groups.iter().map(|g| g.goids.len()).sum();
    let hidden = d.goroutines.iter().filter(|g| g.system).count();
    write!(
        w,
        "goroutine dump of pid {} ({}): {shown} {} in {} {}",
        d.pid,
        d.go_version,
        plural(shown, "goroutine", "goroutines"),
        groups.len(),
        plural(groups.len(), "group", "groups"),
    )?;
    if !opts.system && hidden > 0 {
        write!(
            w,
            ", {hidden} system {} hidden",
            plural(hidden, "goroutine", "goroutines")
        )?;
    }
    writeln!(w)?;
    let limit = opts.max_groups.unwrap_or(usize::MAX);
    for grp in groups.iter().take(limit) {
        writeln!(w)?;
        write_group_header(w, d, grp)?;
        let first = &d.goroutines[grp.first];
        write_body(w, first, &grp.lines, grp.parent, d.go_minor, opts)?;
    }
    if groups.len() > limit {
        let rest = &groups[limit..];
        let n: usize = rest.iter().map(|g| g.goids.len()).sum();
        writeln!(
            w,
            "\n... {} more {} of {n} {} (`gmp-trace dump --pid {} --group` shows every group)",
            rest.len(),
            plural(rest.len(), "group", "groups"),
            plural(n, "goroutine", "goroutines"),
            d.pid
        )?;
    }
    write_trailer(d, w)
}

fn write_group_header(w: &mut dyn Write, d: &Dump, grp: &Group) -> io::Result<()> {
    let n = grp.goids.len();
    write!(w, "{n} {} [", plural(n, "goroutine", "goroutines"))?;
    let first = &d.goroutines[grp.first];
    super::stack::write_state(w, first, d.go_minor)?;
    match grp.minutes {
        (_, 0) => {}
        (lo, hi) if lo == hi => write!(w, ", {hi} minutes")?,
        (lo, hi) => write!(w, ", {lo}~{hi} minutes")?,
    }
    if first.locked_to_thread {
        write!(w, ", locked to thread")?;
    }
    write!(w, "]: ")?;
    for (k, goid) in grp.goids.iter().take(LISTED_GOIDS).enumerate() {
        if k > 0 {
            write!(w, ", ")?;
        }
        write!(w, "{goid}")?;
    }
    if n > LISTED_GOIDS {
        write!(w, ", ... (and {} more)", n - LISTED_GOIDS)?;
    }
    writeln!(w)
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}
