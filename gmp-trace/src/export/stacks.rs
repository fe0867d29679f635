//! `--stacks`: a stack's PCs as the frames outputs show, Go's way: a return address names the
//! call before it (pc - 1), inlined calls are frames of their own, and systemstack's switch
//! frame (a marker, not a call) is left out as Go's tracebacks do.
use serde::Serialize;

use super::Symbolize;

/// Goroutines blocked at one place at the end of the trace (the summary's `blocked_at`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockedSite {
    /// The first frame outside the runtime and sync internals: `function file:line`.
    pub site: String,
    /// The JSONL id of the stack.
    pub stack: u32,
    pub count: u64,
}

/// The frame a blocking stack is named by: the first one outside the runtime and the
/// standard library's synchronisation internals (where every goroutine blocks); for the
/// runtime's own goroutines, their outermost function (e.g. runtime.forcegchelper).
pub fn site(frames: &[StackFrame]) -> String {
    let inside = |f: &StackFrame| {
        f.function.starts_with("runtime.")
            || f.function.starts_with("internal/")
            || f.function.starts_with("sync.")
            || f.file.contains("/src/runtime/")
    };
    let outermost = || {
        frames
            .iter()
            .rev()
            .find(|f| f.function != "runtime.goexit")
            .or(frames.first())
    };
    match frames.iter().find(|f| !inside(f)).or_else(outermost) {
        Some(f) if f.file.is_empty() => f.function.clone(),
        Some(f) => format!("{} {}:{}", f.function, f.file, f.line),
        None => "(stack lost)".to_string(),
    }
}

/// One frame of an event's stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackFrame {
    /// Go's print name; `?` when the pc is in no function of the table (or no binary).
    pub function: String,
    /// Empty, and line 0, when unknown.
    pub file: String,
    pub line: u32,
    /// Inlined into the next (outer) frame.
    pub inlined: bool,
    /// The return address (or, for the innermost frame, the pc) this frame came from.
    pub pc: u64,
}

/// The frames of a stack, innermost first.
pub fn frames(pcs: &[u64], sym: &dyn Symbolize) -> Vec<StackFrame> {
    let mut out = Vec::with_capacity(pcs.len() * 2);
    for &pc in pcs {
        let src = sym.source_frames(pc.wrapping_sub(1));
        if src.is_empty() {
            out.push(StackFrame {
                function: sym.func_name(pc.wrapping_sub(1)).unwrap_or("?").to_string(),
                file: String::new(),
                line: 0,
                inlined: false,
                pc,
            });
            continue;
        }
        for f in src {
            if f.function == "runtime.systemstack_switch" {
                continue;
            }
            out.push(StackFrame {
                function: f.function,
                file: f.file,
                line: f.line,
                inlined: f.inlined,
                pc,
            });
        }
    }
    out
}

/// A stack as text, a frame a line (`function file:line`, `[inlined]` marked), for outputs
/// that show it as one string (Perfetto's `stack` argument).
pub fn text(frames: Option<&[StackFrame]>) -> String {
    let Some(frames) = frames else {
        return "(stack lost)".to_string();
    };
    let mut out = String::new();
    for f in frames {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&f.function);
        if !f.file.is_empty() {
            out.push(' ');
            out.push_str(&f.file);
            out.push(':');
            out.push_str(&f.line.to_string());
        }
        if f.inlined {
            out.push_str(" [inlined]");
        }
    }
    out
}
