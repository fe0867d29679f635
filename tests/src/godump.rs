//! Go-format goroutine dumps read back ([`parse`]) and checked against each other ([`compare`]):
//! what `runtime.Stack(buf, true)` prints, and what `gmp-trace dump` prints in its place. The
//! dump tests hold gmp-trace's dump of a parked process against the one the process wrote of
//! itself, so this parser has to read every release's variant of the format (Go 1.19..1.27:
//! `created by F` vs `created by F in goroutine N`, `...additional frames elided...` vs
//! `...N frames elided...`).

use std::collections::BTreeMap;
use std::fmt;

/// A whole dump, goroutines in printed order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoDump {
    pub goroutines: Vec<GoGoroutine>,
}

/// One `goroutine N [...]:` block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoGoroutine {
    pub goid: u64,
    /// The bracket's first part: the wait reason of a waiting goroutine ("chan receive",
    /// "sync.Mutex.Lock", "IO wait"), else the status ("running", "runnable", "syscall").
    pub state: String,
    /// `, N minutes`: how long it has waited, when the runtime has noted it.
    pub minutes: Option<u64>,
    /// `, locked to thread`.
    pub locked: bool,
    /// Printed frames, innermost first; with an elision marker, those before and after it.
    pub frames: Vec<GoFrame>,
    pub elided: Option<Elision>,
    pub created_by: Option<GoCreatedBy>,
    /// `goroutine running on other thread; stack unavailable`.
    pub unavailable: bool,
}

/// One frame: `function(args)` then `\tfile:line [+0xoff]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoFrame {
    /// Without the argument list: "main.(*T).m", "main.f[...]".
    pub function: String,
    pub file: String,
    pub line: u32,
    /// `+0x..` printed: a physical frame (an inlined call has none).
    pub has_offset: bool,
}

/// Where frames were left out, and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elision {
    /// Index in [`GoGoroutine::frames`] of the first frame printed after the marker.
    pub at: usize,
    /// `...N frames elided...` (Go 1.21+); `None` for `...additional frames elided...`.
    pub count: Option<u64>,
}

/// `created by F [in goroutine N]` then `\tfile:line +0xoff`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoCreatedBy {
    pub function: String,
    /// Printed from Go 1.21 on.
    pub goid: Option<u64>,
    pub file: String,
    pub line: u32,
}

/// A line the parser could not place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    pub text: String,
    pub why: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {:?}", self.line, self.why, self.text)
    }
}

impl std::error::Error for ParseError {}

impl GoDump {
    pub fn get(&self, goid: u64) -> Option<&GoGoroutine> {
        self.goroutines.iter().find(|g| g.goid == goid)
    }
}

impl GoGoroutine {
    /// Whether any printed frame is `function`.
    pub fn has_frame(&self, function: &str) -> bool {
        self.frames.iter().any(|f| f.function == function)
    }

    /// Frames outside package runtime before and after the elision marker (all in the first
    /// when there is none): the ones the comparison holds both sides to.
    fn user_frames(&self) -> (Vec<&GoFrame>, Vec<&GoFrame>) {
        fn user(fs: &[GoFrame]) -> Vec<&GoFrame> {
            fs.iter()
                .filter(|f| !f.function.starts_with("runtime."))
                .collect()
        }
        let at = self.elided.map_or(self.frames.len(), |e| e.at);
        (user(&self.frames[..at]), user(&self.frames[at..]))
    }
}

/// Frames whose function line is waiting for its `\tfile:line`.
enum Pending {
    None,
    Frame(String),
    CreatedBy(String, Option<u64>),
}

/// Parses a Go-format dump: blocks of `goroutine N [state...]:`, frames, an optional elision
/// marker and `created by`, separated by blank lines. Anything else is an error, so a format
/// drift shows up as a failure rather than as goroutines quietly missing.
pub fn parse(text: &str) -> Result<GoDump, ParseError> {
    let mut dump = GoDump::default();
    let mut pending = Pending::None;
    for (i, raw) in text.lines().enumerate() {
        let err = |why| ParseError {
            line: i + 1,
            text: raw.to_string(),
            why,
        };
        let line = raw.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("goroutine ") {
            if !matches!(pending, Pending::None) {
                return Err(err("a header where a file:line was due"));
            }
            dump.goroutines
                .push(parse_header(rest).ok_or_else(|| err("bad header"))?);
            continue;
        }
        let g = dump
            .goroutines
            .last_mut()
            .ok_or_else(|| err("text before the first goroutine"))?;
        if let Some(loc) = line.strip_prefix('\t') {
            match std::mem::replace(&mut pending, Pending::None) {
                Pending::Frame(function) => {
                    let (file, line, has_offset) =
                        parse_location(loc).ok_or_else(|| err("bad file:line"))?;
                    g.frames.push(GoFrame {
                        function,
                        file,
                        line,
                        has_offset,
                    });
                }
                Pending::CreatedBy(function, goid) => {
                    let (file, line, _) =
                        parse_location(loc).ok_or_else(|| err("bad file:line"))?;
                    g.created_by = Some(GoCreatedBy {
                        function,
                        goid,
                        file,
                        line,
                    });
                }
                Pending::None if loc.contains("stack unavailable") => g.unavailable = true,
                Pending::None => return Err(err("a file:line without a function")),
            }
            continue;
        }
        if !matches!(pending, Pending::None) {
            return Err(err("a function where a file:line was due"));
        }
        if let Some(count) = parse_elision(line) {
            g.elided = Some(Elision {
                at: g.frames.len(),
                count,
            });
        } else if let Some(rest) = line.strip_prefix("created by ") {
            let (function, goid) = match rest.split_once(" in goroutine ") {
                Some((f, id)) => (f, Some(id.parse().map_err(|_| err("bad goroutine id"))?)),
                None => (rest, None),
            };
            pending = Pending::CreatedBy(function.to_string(), goid);
        } else {
            pending = Pending::Frame(strip_args(line).ok_or_else(|| err("no argument list"))?);
        }
    }
    if !matches!(pending, Pending::None) {
        return Err(ParseError {
            line: text.lines().count(),
            text: String::new(),
            why: "ends where a file:line was due",
        });
    }
    Ok(dump)
}

/// `7 [chan receive, 3 minutes, locked to thread]:` (after "goroutine "). Go 1.21+ may put
/// ` gp=.. m=..` before the bracket and `{labels}` after it; both are skipped.
fn parse_header(rest: &str) -> Option<GoGoroutine> {
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let goid = rest[..digits].parse().ok()?;
    let open = rest.find('[')?;
    let close = open + rest[open..].find(']')?;
    if !rest.ends_with(':') {
        return None;
    }
    let mut parts = rest[open + 1..close].split(", ");
    let mut g = GoGoroutine {
        goid,
        state: parts.next()?.to_string(),
        ..GoGoroutine::default()
    };
    for part in parts {
        if let Some(n) = part.strip_suffix(" minutes") {
            g.minutes = Some(n.parse().ok()?);
        } else if part == "locked to thread" {
            g.locked = true;
        }
        // Anything else (a synctest bubble) is not part of what we compare.
    }
    Some(g)
}

/// `...N frames elided...` -> Some(Some(N)); `...additional frames elided...` -> Some(None).
fn parse_elision(line: &str) -> Option<Option<u64>> {
    let inner = line
        .strip_prefix("...")?
        .strip_suffix(" frames elided...")?;
    if inner == "additional" {
        return Some(None);
    }
    inner.parse().ok().map(Some)
}

/// The function of a frame line: everything before its trailing, balanced `(...)`. The name
/// itself may hold parentheses (`main.(*T).m`), so the list is found from the end.
fn strip_args(line: &str) -> Option<String> {
    if !line.ends_with(')') {
        return None;
    }
    let mut depth = 0usize;
    for (i, c) in line.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return (i > 0).then(|| line[..i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// `file:line`, `file:line +0x1d` or, with GOTRACEBACK=system, `... +0x1d fp=.. sp=.. pc=..`.
fn parse_location(loc: &str) -> Option<(String, u32, bool)> {
    let (place, has_offset) = match loc.find(" +0x") {
        Some(i) => (&loc[..i], true),
        None => (loc.split(" fp=").next()?, false),
    };
    let (file, line) = place.trim().rsplit_once(':')?;
    Some((file.to_string(), line.parse().ok()?, has_offset))
}

/// How far two dumps agree; [`Agreement::full`] when in every respect [`compare`] checks.
#[derive(Clone, Debug, Default)]
pub struct Agreement {
    pub in_both: usize,
    pub only_go: usize,
    pub only_ours: usize,
    pub states_equal: usize,
    pub created_by_equal: usize,
    pub frames_compared: usize,
    pub frames_equal: usize,
    /// One line per disagreement, naming the goroutine.
    pub differences: Vec<String>,
    /// Deviations accepted on purpose (see [`compare`]), one line each.
    pub notes: Vec<String>,
}

impl Agreement {
    pub fn full(&self) -> bool {
        self.differences.is_empty()
    }

    /// Adds `other`'s figures (for a total over several comparisons).
    pub fn add(&mut self, other: &Agreement) {
        self.in_both += other.in_both;
        self.only_go += other.only_go;
        self.only_ours += other.only_ours;
        self.states_equal += other.states_equal;
        self.created_by_equal += other.created_by_equal;
        self.frames_compared += other.frames_compared;
        self.frames_equal += other.frames_equal;
        self.differences.extend(other.differences.iter().cloned());
        self.notes.extend(other.notes.iter().cloned());
    }
}

impl fmt::Display for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "goroutines {} in both, {} only Go's, {} only ours; states {}/{}; created by {}/{}; \
             frames {}/{}; {} differences",
            self.in_both,
            self.only_go,
            self.only_ours,
            self.states_equal,
            self.in_both,
            self.created_by_equal,
            self.in_both,
            self.frames_equal,
            self.frames_compared,
            self.differences.len()
        )
    }
}

/// Holds `ours` to `go`, leaving out goroutine `skip_goid` (the one that took Go's dump): the
/// same goroutines; per goroutine the same state (wait reason) and thread lock, the same
/// `created by` (function, goroutine, file:line), and every frame outside package runtime
/// (function, file, line) equal in order. Where Go elided frames, the frames it printed before
/// the marker are held to ours' first ones and those after it to ours' last ones, and ours must
/// elide the same number.
///
/// One deviation is accepted (and noted): before Go 1.21 the runtime stops after 100 frames,
/// counting the runtime frames it hides, and then prints no marker at all (its count is of
/// printed frames, so the `...additional frames elided...` check never fires for a parked
/// goroutine). Ours may print that marker where Go's frames silently stop.
pub fn compare(go: &GoDump, ours: &GoDump, skip_goid: u64) -> Agreement {
    compare_with(go, ours, skip_goid, false)
}

/// [`compare`] of a Go-format dump against a complete one (gmp-trace's JSON read into a
/// [`GoDump`], every frame there, no marker): where `text` elided frames, its frames on each
/// side of the marker are held to the ends of `full`'s.
pub fn compare_with_complete(text: &GoDump, full: &GoDump, skip_goid: u64) -> Agreement {
    compare_with(text, full, skip_goid, true)
}

fn compare_with(go: &GoDump, ours: &GoDump, skip_goid: u64, ours_complete: bool) -> Agreement {
    let mut a = Agreement::default();
    fn index(d: &GoDump, skip_goid: u64) -> BTreeMap<u64, &GoGoroutine> {
        d.goroutines
            .iter()
            .filter(|g| g.goid != skip_goid)
            .map(|g| (g.goid, g))
            .collect()
    }
    let (gos, ourss) = (index(go, skip_goid), index(ours, skip_goid));
    for (id, g) in &gos {
        match ourss.get(id) {
            Some(o) => {
                a.in_both += 1;
                compare_goroutine(g, o, ours_complete, &mut a);
            }
            None => {
                a.only_go += 1;
                a.differences
                    .push(format!("goroutine {id} [{}]: only in Go's dump", g.state));
            }
        }
    }
    for (id, o) in &ourss {
        if !gos.contains_key(id) {
            a.only_ours += 1;
            a.differences
                .push(format!("goroutine {id} [{}]: only in ours", o.state));
        }
    }
    a
}

fn compare_goroutine(g: &GoGoroutine, o: &GoGoroutine, ours_complete: bool, a: &mut Agreement) {
    let id = g.goid;
    if g.state == o.state && g.locked == o.locked {
        a.states_equal += 1;
    } else {
        a.differences.push(format!(
            "goroutine {id}: state Go [{}{}] ours [{}{}]",
            g.state,
            if g.locked { ", locked to thread" } else { "" },
            o.state,
            if o.locked { ", locked to thread" } else { "" },
        ));
    }
    if g.created_by == o.created_by {
        a.created_by_equal += 1;
    } else {
        a.differences.push(format!(
            "goroutine {id}: created by Go {:?} ours {:?}",
            g.created_by, o.created_by
        ));
    }
    if g.unavailable != o.unavailable {
        a.differences.push(format!(
            "goroutine {id}: stack unavailable in Go's {}, in ours {}",
            g.unavailable, o.unavailable
        ));
    }
    compare_frames(g, o, ours_complete, a);
}

/// The frame rule of [`compare`]; with `ours_complete`, ours is a whole stack (the JSON, which
/// elides nothing) and Go's frames on each side of its marker are held to ours' ends.
fn compare_frames(g: &GoGoroutine, o: &GoGoroutine, ours_complete: bool, a: &mut Agreement) {
    let id = g.goid;
    let (g_head, g_tail) = g.user_frames();
    let (mut o_head, mut o_tail) = o.user_frames();
    let mut diffs = Vec::new();
    match (g.elided, o.elided) {
        // Before Go 1.21 a traceback stops after 100 frames (hidden runtime ones counted) and
        // says nothing: the text is then a prefix of the whole stack.
        (None, None) if ours_complete && o_head.len() > g_head.len() && g_head.len() >= 90 => {
            a.notes.push(format!(
                "goroutine {id}: the text stops after {} frames, as Go before 1.21 does",
                g_head.len()
            ));
            o_head.truncate(g_head.len());
        }
        (None, None) => {}
        (Some(_), None) if ours_complete => {
            let all = o_head;
            if all.len() <= g_head.len() + g_tail.len() {
                diffs.push(format!(
                    "Go elided frames of a stack ours has {} of",
                    all.len()
                ));
            }
            o_head = all[..g_head.len().min(all.len())].to_vec();
            o_tail = all[all.len().saturating_sub(g_tail.len())..].to_vec();
        }
        (Some(ge), Some(oe)) if ge.count == oe.count && !ours_complete => {}
        (None, Some(Elision { count: None, .. })) if o_tail.is_empty() && !ours_complete => {
            a.notes.push(format!(
                "goroutine {id}: ours marks frames elided after {} where Go's stack just stops",
                o_head.len()
            ));
        }
        (ge, oe) => diffs.push(format!(
            "elision marker Go {:?} ours {:?}",
            ge.map(|e| e.count),
            oe.map(|e| e.count)
        )),
    }
    if g_head.len() != o_head.len() || g_tail.len() != o_tail.len() {
        diffs.push(format!(
            "frames outside runtime: Go {}+{} ours {}+{} (before+after the elision marker)",
            g_head.len(),
            g_tail.len(),
            o_head.len(),
            o_tail.len()
        ));
    }
    a.frames_compared += g_head.len().max(o_head.len()) + g_tail.len().max(o_tail.len());
    let pairs = g_head
        .iter()
        .zip(o_head.iter())
        .chain(g_tail.iter().rev().zip(o_tail.iter().rev()));
    let mut first_mismatch = None;
    for (gf, of) in pairs {
        if (&gf.function, &gf.file, gf.line) == (&of.function, &of.file, of.line) {
            a.frames_equal += 1;
        } else if first_mismatch.is_none() {
            first_mismatch = Some(format!(
                "frame Go {} {}:{} ours {} {}:{}",
                gf.function, gf.file, gf.line, of.function, of.file, of.line
            ));
        }
    }
    // The first mismatch says enough; the counts carry the rest.
    diffs.extend(first_mismatch);
    a.differences
        .extend(diffs.into_iter().map(|d| format!("goroutine {id}: {d}")));
}

#[cfg(test)]
mod tests;
