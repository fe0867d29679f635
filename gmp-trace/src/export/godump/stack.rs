//! One goroutine the way Go's traceback prints it: the state in the header's brackets, which
//! frames show (runtime frames and wrappers hidden, long stacks elided per release), the frame
//! lines, `created by`, and the lines that stand in for a stack we do not have. Both writers
//! (plain and grouped) print through here, so they cannot drift apart.
use std::io::{self, Write};

use super::TextOptions;
use crate::binary::names::{
    elision, elision_line, print_name, prints_parent_goid, shows_frame, wrapper_hidden, Elision,
};
use crate::model::dump::{CreatedBy, Frame, Goroutine, Stack};

/// The text before ", N minutes" in a header's brackets: goroutineheader's status (the wait
/// reason replaces "waiting", and 1.26's "leaked"), then " (leaked)" and " (scan)".
pub(crate) fn state_label(g: &Goroutine, minor: u32) -> (&'static str, bool, bool) {
    let leaked = minor >= 26 && g.status == "leaked";
    let status = match g.wait_reason {
        Some(reason) if g.status == "waiting" || leaked => reason,
        _ => g.status,
    };
    let scan = g.status_raw & crate::binary::names::G_SCAN != 0;
    (status, leaked, scan)
}

pub(crate) fn write_state(w: &mut dyn Write, g: &Goroutine, minor: u32) -> io::Result<()> {
    let (status, leaked, scan) = state_label(g, minor);
    write!(w, "{status}")?;
    if leaked {
        write!(w, " (leaked)")?;
    }
    if scan {
        write!(w, " (scan)")?;
    }
    Ok(())
}

/// Whole minutes blocked, as goroutineheader computes them (only for waiting and syscall
/// goroutines whose g.waitsince is set); `None` below one minute, which Go does not print.
pub(crate) fn minutes(g: &Goroutine) -> Option<u64> {
    if g.status != "waiting" && g.status != "syscall" {
        return None;
    }
    g.waiting_ns
        .map(|ns| ns / 60_000_000_000)
        .filter(|&m| m >= 1)
}

/// One printed line of a stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// Index into the goroutine's frames.
    Frame(usize),
    /// Go's elision line.
    Elided(String),
}

/// The lines Go prints for `frames` in release 1.`minor`: visible frames, and where the
/// release cuts a long stack, its elision line. Like traceback1, a stack that would show
/// nothing is printed again with every frame.
pub(crate) fn select_frames(minor: u32, frames: &[Frame], show_runtime: bool) -> Vec<Line> {
    match elision(minor) {
        Elision::FirstPhysical { max } => {
            let mut shown = visible(minor, frames, show_runtime, Some(max));
            if shown.is_empty() && !show_runtime {
                shown = visible(minor, frames, true, Some(max));
            }
            // gentraceback stops after `max` physical frames; traceback1 prints the elision
            // line when the number of frames printed is exactly `max`.
            let full = shown.len() == max;
            let mut lines: Vec<Line> = shown.into_iter().map(Line::Frame).collect();
            if full {
                lines.push(Line::Elided(elision_line(minor, 0)));
            }
            lines
        }
        Elision::InnerOuter { inner, outer } => {
            let mut shown = visible(minor, frames, show_runtime, None);
            if shown.is_empty() && !show_runtime {
                shown = visible(minor, frames, true, None);
            }
            if shown.len() <= inner + outer {
                return shown.into_iter().map(Line::Frame).collect();
            }
            let elided = shown.len() - inner - outer;
            let mut lines: Vec<Line> = shown[..inner].iter().copied().map(Line::Frame).collect();
            lines.push(Line::Elided(elision_line(minor, elided)));
            lines.extend(shown[inner + elided..].iter().copied().map(Line::Frame));
            lines
        }
    }
}

/// Indices of the frames Go shows, innermost first; `max_physical` stops the walk after that
/// many physical frames (a physical frame is its inlined calls plus itself).
fn visible(
    minor: u32,
    frames: &[Frame],
    show_runtime: bool,
    max_physical: Option<usize>,
) -> Vec<usize> {
    let mut out = Vec::new();
    let mut callee: Option<&str> = None;
    let mut physical = 0;
    for (i, f) in frames.iter().enumerate() {
        if max_physical.is_some_and(|max| physical >= max) {
            break;
        }
        let show = !wrapper_hidden(&f.file, callee, show_runtime)
            && shows_frame(minor, &f.function, out.is_empty(), show_runtime);
        if show {
            out.push(i);
        }
        callee = Some(&f.function);
        if !f.inlined {
            physical += 1;
        }
    }
    out
}

pub(crate) fn write_frame(w: &mut dyn Write, f: &Frame) -> io::Result<()> {
    write!(
        w,
        "{}(...)\n\t{}:{}",
        print_name(&f.function),
        f.file,
        f.line
    )?;
    match f.offset {
        Some(off) if !f.inlined && off > 0 => writeln!(w, " +{off:#x}"),
        _ => writeln!(w),
    }
}

/// Whether Go prints `created by` for this goroutine: not for goroutine 1, not when the
/// creating function is a hidden runtime frame (printcreatedby's showframe).
pub(crate) fn shows_created_by(g: &Goroutine, minor: u32, opts: &TextOptions) -> bool {
    match &g.created_by {
        Some(cb) => g.goid != 1 && shows_frame(minor, &cb.function, false, opts.runtime_frames),
        None => false,
    }
}

/// printcreatedby1; `parent` is the creating goroutine to name (1.21+ only, and not 0).
pub(crate) fn write_created_by(
    w: &mut dyn Write,
    cb: &CreatedBy,
    parent: Option<u64>,
    minor: u32,
) -> io::Result<()> {
    if prints_parent_goid(minor) {
        write!(w, "created by {}", print_name(&cb.function))?;
        match parent {
            Some(goid) if goid != 0 => writeln!(w, " in goroutine {goid}")?,
            _ => writeln!(w)?,
        }
    } else {
        writeln!(w, "created by {}", cb.function)?;
    }
    write!(w, "\t{}:{}", cb.file, cb.line)?;
    if cb.offset > 0 {
        write!(w, " +{:#x}", cb.offset)?;
    }
    writeln!(w)
}

/// Everything under a goroutine's header: its stack (or what stands in for it) and
/// `created by`. `lines` is [`select_frames`] of the stack when it has frames.
pub(crate) fn write_body(
    w: &mut dyn Write,
    g: &Goroutine,
    lines: &[Line],
    parent: Option<u64>,
    minor: u32,
    opts: &TextOptions,
) -> io::Result<()> {
    match &g.stack {
        Stack::Frames { frames } => {
            for line in lines {
                match line {
                    Line::Frame(i) => write_frame(w, &frames[*i])?,
                    Line::Elided(text) => writeln!(w, "{text}")?,
                }
            }
        }
        Stack::Running => writeln!(w, "\tgoroutine running on other thread; stack unavailable")?,
        Stack::Torn { reason } => writeln!(w, "\t(stack not read: {reason})")?,
        Stack::Unavailable => writeln!(w, "\t(stack not read)")?,
    }
    if let Some(cb) = g
        .created_by
        .as_ref()
        .filter(|_| shows_created_by(g, minor, opts))
    {
        write_created_by(w, cb, parent, minor)?;
    }
    Ok(())
}

/// [`select_frames`] for any stack (no lines without frames).
pub(crate) fn lines_of(g: &Goroutine, minor: u32, opts: &TextOptions) -> Vec<Line> {
    match &g.stack {
        Stack::Frames { frames } => select_frames(minor, frames, opts.runtime_frames),
        _ => Vec::new(),
    }
}
