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

/// The summary's `blocked_at`: the goroutines `stacks` saw block and still blocked, by site.
pub fn blocked_at(
    stacks: &crate::source::stacks::StackTable,
    sym: &dyn Symbolize,
) -> Vec<BlockedSite> {
    stacks
        .blocked_now()
        .into_iter()
        .map(|(id, pcs, count)| BlockedSite {
            site: pcs.map_or_else(|| "(stack lost)".to_string(), |p| site(&frames(p, sym))),
            stack: id,
            count,
        })
        .collect()
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
    /// Where this frame is: the walked pc - 1 (inside the call) for a machine frame, the inlined
    /// call's place for the frames an inlined call sits in; one per frame.
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
        for (i, f) in src.into_iter().enumerate() {
            if f.function == "runtime.systemstack_switch" {
                continue;
            }
            out.push(StackFrame {
                // One pc per frame, as Go's own stacks have it (its trace reader keys frames by
                // pc): the call's, inside the CALL instruction (pc - 1, as symbolized), and for
                // the frames an inlined call sits in, that call's place (an instruction's start,
                // so the two kinds never meet).
                pc: if i == 0 { pc.wrapping_sub(1) } else { f.pc },
                function: f.function,
                file: f.file,
                line: f.line,
                inlined: f.inlined,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::SourceFrame;

    /// pc 0x100..: main.f (inlined into main.g); 0x200..: runtime.gopark; 0x300..: the
    /// systemstack switch marker; anything else unknown.
    struct Table;

    impl Symbolize for Table {
        fn func_name(&self, _pc: u64) -> Option<&str> {
            None
        }

        fn source_frames(&self, pc: u64) -> Vec<SourceFrame> {
            let f = |function: &str, file: &str, line, inlined| SourceFrame {
                function: function.to_string(),
                file: file.to_string(),
                line,
                inlined,
                func_id: 0,
                pc,
            };
            match pc >> 8 {
                1 => vec![
                    f("main.f", "/src/main.go", 10, true),
                    f("main.g", "/src/main.go", 20, false),
                ],
                2 => vec![f("runtime.gopark", "/go/src/runtime/proc.go", 474, false)],
                3 => vec![f(
                    "runtime.systemstack_switch",
                    "/go/src/runtime/asm.s",
                    1,
                    false,
                )],
                _ => Vec::new(),
            }
        }
    }

    #[test]
    fn return_addresses_name_the_call_and_inlined_calls_are_frames() {
        // 0x200 is a return address just past the end of 0x1xx: its call is at 0x1ff.
        let fr = frames(&[0x301, 0x250, 0x200, 0x999], &Table);
        let names: Vec<_> = fr.iter().map(|f| (f.function.as_str(), f.line)).collect();
        assert_eq!(
            names,
            [
                ("runtime.gopark", 474),
                ("main.f", 10),
                ("main.g", 20),
                ("?", 0)
            ]
        );
        assert!(fr[1].inlined && !fr[2].inlined);
        assert_eq!(
            text(Some(&fr[..3])),
            "runtime.gopark /go/src/runtime/proc.go:474\nmain.f /src/main.go:10 [inlined]\nmain.g /src/main.go:20"
        );
        assert_eq!(text(None), "(stack lost)");
    }

    #[test]
    fn a_site_is_the_first_frame_outside_the_runtime() {
        let fr = frames(&[0x250, 0x200], &Table);
        assert_eq!(site(&fr), "main.f /src/main.go:10");
        // Only runtime frames (a runtime goroutine): its outermost.
        let rt = frames(&[0x250], &Table);
        assert_eq!(site(&rt), "runtime.gopark /go/src/runtime/proc.go:474");
        assert_eq!(site(&[]), "(stack lost)");
    }
}
