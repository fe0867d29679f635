//! `--stacks` as Perfetto's own callstacks: each distinct stack is interned once on the
//! writer's packet sequence (its function names, source paths, frames and the callstack, in
//! `InternedData`), and the events it belongs to name it by `callstack_iid`. Perfetto v53 and
//! later show it in the selected slice's details and fold an area's events into a flamegraph;
//! the text `stack` argument stays beside it for older UIs and for SQL.
//!
//! Frames are symbolized already, so they carry names and file:line; they sit in one mapping
//! named after the executable, with no address range (the trace processor takes such a
//! mapping without a memory map of the process) and the frame's pc as `rel_pc`.
use crate::export::stacks::StackFrame;
use crate::fasthash::FastMap;

use super::proto::{Callstack, Frame, InternedData, Mapping, ProfileString};

/// The mapping every frame is in.
const MAPPING_IID: u64 = 1;

/// A stack as the writer keeps it: its text (the `stack` argument) and its callstack's iid
/// (none for a stack that was lost: an empty callstack is an import error).
#[derive(Clone)]
pub struct EventStack {
    pub text: String,
    pub iid: Option<u64>,
}

/// The interning tables of one packet sequence. Grows with the distinct stacks, functions
/// and frames of the run (as the JSONL stack definitions do), not with events.
#[derive(Default)]
pub struct Callstacks {
    /// By the pipeline's stack id.
    stacks: FastMap<u32, EventStack>,
    functions: FastMap<String, u64>,
    paths: FastMap<String, u64>,
    /// By (function iid, source path iid, line, pc).
    frames: FastMap<(u64, u64, u32, u64), u64>,
    mapping_sent: bool,
    next_callstack: u64,
    next_frame: u64,
}

impl Callstacks {
    /// Stack `id`, interning it (into `out`, which goes with the next packet) at its first
    /// use; `frames` (innermost first; none if the stack was lost) is only called then.
    pub fn get(
        &mut self,
        id: u32,
        exe: &str,
        frames: impl FnOnce() -> Option<Vec<StackFrame>>,
        out: &mut InternedData,
    ) -> EventStack {
        if let Some(s) = self.stacks.get(&id) {
            return s.clone();
        }
        let frames = frames();
        let text = crate::export::stacks::text(frames.as_deref());
        let iid = match frames.as_deref() {
            Some(fs) if !fs.is_empty() => Some(self.callstack(fs, exe, out)),
            _ => None,
        };
        let s = EventStack { text, iid };
        self.stacks.insert(id, s.clone());
        s
    }

    fn callstack(&mut self, frames: &[StackFrame], exe: &str, out: &mut InternedData) -> u64 {
        if !self.mapping_sent {
            self.mapping_sent = true;
            out.mapping_paths.push(ProfileString {
                iid: Some(1),
                str: Some(exe.to_owned()),
            });
            out.mappings.push(Mapping {
                iid: Some(MAPPING_IID),
                path_string_ids: vec![1],
            });
        }
        // Callstack frames go outermost first.
        let frame_ids = frames.iter().rev().map(|f| self.frame(f, out)).collect();
        self.next_callstack += 1;
        let iid = self.next_callstack;
        out.callstacks.push(Callstack {
            iid: Some(iid),
            frame_ids,
        });
        iid
    }

    fn frame(&mut self, f: &StackFrame, out: &mut InternedData) -> u64 {
        let function = intern(&mut self.functions, &f.function, &mut out.function_names);
        let path = match f.file.is_empty() {
            true => 0,
            false => intern(&mut self.paths, &f.file, &mut out.source_paths),
        };
        let key = (function, path, f.line, f.pc);
        if let Some(&iid) = self.frames.get(&key) {
            return iid;
        }
        self.next_frame += 1;
        let iid = self.next_frame;
        self.frames.insert(key, iid);
        out.frames.push(Frame {
            iid: Some(iid),
            function_name_id: Some(function),
            mapping_id: Some(MAPPING_IID),
            rel_pc: Some(f.pc),
            source_path_iid: (path != 0).then_some(path),
            line_number: (f.line != 0).then_some(f.line),
        });
        iid
    }
}

/// The iid of `s` in `table`, adding it (and its entry in `out`) the first time.
fn intern(table: &mut FastMap<String, u64>, s: &str, out: &mut Vec<ProfileString>) -> u64 {
    if let Some(&iid) = table.get(s) {
        return iid;
    }
    let iid = table.len() as u64 + 1;
    table.insert(s.to_owned(), iid);
    out.push(ProfileString {
        iid: Some(iid),
        str: Some(s.to_owned()),
    });
    iid
}
