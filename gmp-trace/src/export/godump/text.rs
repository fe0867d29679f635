//! The dump in Go's own traceback format, as `runtime.Stack(buf, true)` prints it in the
//! target's release: a `goroutine N [state, M minutes, locked to thread]:` header, frames as
//! `function(...)` and `\tfile:line +0xoff`, `created by`, a blank line between goroutines;
//! runtime frames, system goroutines and the middle of long stacks left out as that release
//! leaves them out. Argument values are never printed: every frame shows `(...)`.
//!
//! Lines that are ours, not Go's (a tool reading Go dumps skips them as noise):
//! - `\t(stack not read: <reason>)` for a stack whose reads kept changing ([`Stack::Torn`]),
//!   `\t(stack not read)` for one not read at all ([`Stack::Unavailable`]);
//! - after the goroutines, `# gmp-trace: dump incomplete: <why>` and
//!   `# gmp-trace: N goroutines with torn reads (stacks left out)`, so that a partial dump
//!   never looks whole.
//!
//! A running goroutine prints as Go prints one running on another thread
//! (`\tgoroutine running on other thread; stack unavailable`).
//!
//! [`Stack::Torn`]: crate::model::dump::Stack::Torn
//! [`Stack::Unavailable`]: crate::model::dump::Stack::Unavailable
use std::collections::hash_map::Entry;
use std::io::{self, Write};

use super::stack::{
    lines_of, minutes, shows_created_by, write_body, write_created_by, write_frame, write_state,
    Line,
};
use super::TextOptions;
use crate::fasthash::FastMap;
use crate::model::dump::{Dump, Frame, Goroutine, Stack};

/// Prints `d` in Go's goroutine-dump format for release `d.go_minor`.
///
/// The reader shares one stack (`Arc`) among all goroutines parked at the same place, so a
/// stack's frame lines are rendered once and copied for each of them: a million goroutines in
/// a handful of places print at the speed of memcpy.
pub fn write_text(d: &Dump, opts: &TextOptions, w: &mut dyn Write) -> io::Result<()> {
    let minor = d.go_minor;
    let mut first = true;
    let mut rendered: FastMap<*const Frame, Vec<u8>> = FastMap::default();
    for g in d.goroutines.iter().filter(|g| opts.system || !g.system) {
        if !first {
            writeln!(w)?;
        }
        first = false;
        write_header(w, g, minor)?;
        let parent = g.created_by.as_ref().and_then(|c| c.goid);
        let Stack::Frames { frames } = &g.stack else {
            write_body(w, g, &lines_of(g, minor, opts), parent, minor, opts)?;
            continue;
        };
        let body = match rendered.entry(frames.as_ptr()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let mut buf = Vec::new();
                for line in lines_of(g, minor, opts) {
                    match line {
                        Line::Frame(i) => write_frame(&mut buf, &frames[i])?,
                        Line::Elided(text) => writeln!(buf, "{text}")?,
                    }
                }
                e.insert(buf)
            }
        };
        w.write_all(body)?;
        if let Some(cb) = g
            .created_by
            .as_ref()
            .filter(|_| shows_created_by(g, minor, opts))
        {
            write_created_by(w, cb, parent, minor)?;
        }
    }
    write_trailer(d, w)
}

/// goroutineheader.
fn write_header(w: &mut dyn Write, g: &Goroutine, minor: u32) -> io::Result<()> {
    write!(w, "goroutine {} [", g.goid)?;
    write_state(w, g, minor)?;
    if let Some(m) = minutes(g) {
        write!(w, ", {m} minutes")?;
    }
    if g.locked_to_thread {
        write!(w, ", locked to thread")?;
    }
    writeln!(w, "]:")
}

/// Our closing lines: what is missing from the dump, if anything.
pub(crate) fn write_trailer(d: &Dump, w: &mut dyn Write) -> io::Result<()> {
    if d.incomplete.is_none() && d.torn_reads == 0 {
        return Ok(());
    }
    writeln!(w)?;
    if let Some(why) = &d.incomplete {
        writeln!(w, "# gmp-trace: dump incomplete: {why}")?;
    }
    match d.torn_reads {
        0 => {}
        1 => writeln!(
            w,
            "# gmp-trace: 1 goroutine with torn reads (stack left out)"
        )?,
        n => writeln!(
            w,
            "# gmp-trace: {n} goroutines with torn reads (stacks left out)"
        )?,
    }
    Ok(())
}
