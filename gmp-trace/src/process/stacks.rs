//! Symbolization of the dump's stacks: a physical frame becomes its source frames (inlined
//! calls expanded, Go's print names, file:line) once per distinct pc, and a whole stack once per
//! distinct chain of pcs, shared (`Arc`) by every goroutine parked in the same place; names and
//! files are interned. A million goroutines parked in a handful of places cost a handful of
//! stacks, not a million copies.
use std::sync::Arc;

use crate::binary::Lines;
use crate::fasthash::FastMap;
use crate::model::dump::Frame;

use super::unwind::RawFrame;

/// `created by` without its goroutine: (function, file, line, offset from the entry).
pub type Creator = (Arc<str>, Arc<str>, u32, u64);

/// Symbolization, once per distinct pc and per distinct stack.
pub struct Symbols<'b> {
    pub lines: Lines<'b>,
    pub bias: u64,
    /// The release's funcID of wrappers.
    wrapper_id: u8,
    /// (pc, trap) -> that physical frame's source frames.
    frames: FastMap<(u64, bool), Arc<[Frame]>>,
    stacks: FastMap<Vec<RawFrame>, Arc<[Frame]>>,
    names: FastMap<u64, Option<Arc<str>>>,
    /// g.startpc -> [`Symbols::start_name`].
    start_names: FastMap<u64, Option<Arc<str>>>,
    creators: FastMap<u64, Option<Creator>>,
    strings: FastMap<String, Arc<str>>,
}

impl<'b> Symbols<'b> {
    /// `wrapper_id`: the release's funcID of wrappers (`names::func_id_wrapper`).
    pub fn new(lines: Lines<'b>, bias: u64, wrapper_id: u8) -> Symbols<'b> {
        Symbols {
            lines,
            bias,
            wrapper_id,
            frames: FastMap::default(),
            stacks: FastMap::default(),
            names: FastMap::default(),
            start_names: FastMap::default(),
            creators: FastMap::default(),
            strings: FastMap::default(),
        }
    }

    fn intern(strings: &mut FastMap<String, Arc<str>>, s: String) -> Arc<str> {
        if let Some(a) = strings.get(&s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s.as_str());
        strings.insert(s, a.clone());
        a
    }

    fn physical(&mut self, f: RawFrame) -> Arc<[Frame]> {
        if let Some(v) = self.frames.get(&(f.pc, f.trap)) {
            return v.clone();
        }
        let link = f.pc.wrapping_sub(self.bias);
        let entry = self.lines.entry(link).unwrap_or(link);
        // Go's symPC: a return address belongs to the call before it.
        let sym = if !f.trap && link > entry {
            link - 1
        } else {
            link
        };
        let src = self.lines.frames(sym);
        let n = src.len();
        let v: Arc<[Frame]> = src
            .into_iter()
            .enumerate()
            .map(|(i, s)| Frame {
                function: Self::intern(&mut self.strings, s.function),
                file: Self::intern(&mut self.strings, s.file),
                line: s.line,
                inlined: s.inlined,
                wrapper: s.func_id == self.wrapper_id,
                pc: f.pc,
                offset: (i + 1 == n && link > entry).then(|| link - entry),
            })
            .collect();
        self.frames.insert((f.pc, f.trap), v.clone());
        v
    }

    pub fn stack(&mut self, raw: Vec<RawFrame>) -> Arc<[Frame]> {
        if let Some(s) = self.stacks.get(&raw) {
            return s.clone();
        }
        let mut all = Vec::new();
        for &f in &raw {
            all.extend(self.physical(f).iter().cloned());
        }
        let s: Arc<[Frame]> = all.into();
        self.stacks.insert(raw, s.clone());
        s
    }

    /// The print name of the function at `pc` (a function's entry, as g.startpc is).
    pub fn name(&mut self, pc: u64) -> Option<Arc<str>> {
        if let Some(n) = self.names.get(&pc) {
            return n.clone();
        }
        let n = self
            .lines
            .frames(pc.wrapping_sub(self.bias))
            .pop()
            .map(|f| Self::intern(&mut self.strings, f.function));
        self.names.insert(pc, n.clone());
        n
    }

    /// The name a goroutine starting at `pc` (g.startpc) goes by in Go's tools: for a `go f(x)`
    /// statement's wrapper, `f` (FUNCDATA_WrapInfo, as the runtime's startPCForTrace).
    pub fn start_name(&mut self, pc: u64) -> Option<Arc<str>> {
        if let Some(n) = self.start_names.get(&pc) {
            return n.clone();
        }
        let at = match self.lines.wrapped(pc.wrapping_sub(self.bias)) {
            Some(f) => f.wrapping_add(self.bias),
            None => pc,
        };
        let n = self.name(at);
        self.start_names.insert(pc, n.clone());
        n
    }

    /// `created by` for g.gopc: the physical function, the position of the go statement.
    pub fn creator(&mut self, gopc: u64) -> Option<Creator> {
        if let Some(c) = self.creators.get(&gopc) {
            return c.clone();
        }
        let link = gopc.wrapping_sub(self.bias);
        let c = self.lines.entry(link).and_then(|entry| {
            let at = if link > entry { link - 1 } else { link };
            let frames = self.lines.frames(at);
            let inner = frames.first()?;
            let outer = frames.last()?;
            Some((
                Self::intern(&mut self.strings, outer.function.clone()),
                Self::intern(&mut self.strings, inner.file.clone()),
                inner.line,
                link - entry,
            ))
        });
        self.creators.insert(gopc, c.clone());
        c
    }
}
