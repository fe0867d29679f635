//! Source positions from `.gopclntab`, which every Go binary keeps (stripped ones too, since the
//! runtime unwinds with it): for a pc, the frames of the calls inlined there and of the
//! function itself, each with its file and line, and the size of the stack frame there (the
//! SP delta). This is what Go's own traceback and `runtime.CallersFrames` read
//! (runtime/symtab.go and symtabinl.go); the goroutine dump and CPU samples symbolize with it.
//!
//! The parts: a `_func` record per function (found through the functab), pc-value tables in
//! pctab (pairs of a zig-zag value delta and a pc delta, as varints; the value starts at -1),
//! the file table of each compilation unit (cutab -> filetab), and each function's inline tree
//! (funcdata 3, at moduledata.gofunc + an offset), indexed by its pc-value table pcdata 2.
//! Everything read is bounds-checked: a corrupt table gives no answer, never a panic.
use super::pclntab::Layout;

/// One frame of the source-level stack at a pc, innermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFrame {
    /// The name as Go prints it (`runtime.Frame.Function`, tracebacks, pprof): a generic
    /// function's shape arguments read `[...]`.
    pub function: String,
    pub file: String,
    pub line: u32,
    /// Inlined into the next (outer) frame: no frame of its own on the machine stack.
    pub inlined: bool,
    /// The compiler's funcID of the function (`_func.funcID`, or the inline tree entry's):
    /// non-zero for the runtime's special functions and for wrappers, which tracebacks hide.
    /// The numbering is per release (see `names::func_id_wrapper`).
    pub func_id: u8,
    /// Where in the machine code this frame is: the pc asked about for the innermost frame, and
    /// for the frame an inlined call sits in, that call's place (entry + the inline tree's
    /// parentPc), as `runtime.CallersFrames` gives it: distinct per frame.
    pub pc: u64,
}

/// `_PCDATA_InlTreeIndex` and `_FUNCDATA_InlTree` (runtime/symtab.go, abi/symtab.go).
const PCDATA_INL_TREE_INDEX: u32 = 2;
const FUNCDATA_INL_TREE: u32 = 3;
/// `abi.FUNCDATA_WrapInfo` (Go 1.19 has it too): on the wrapper the compiler makes for a `go`/`defer`
/// statement with arguments, the text offset of the function it calls.
const FUNCDATA_WRAP_INFO: u8 = 7;
/// Inlining deeper than this is a corrupt table (the compiler's budget keeps it far smaller).
const MAX_INLINE_DEPTH: usize = 256;

/// `_func.funcID`: after startLine (Go 1.20+), or where startLine is now (1.18-1.19).
const F_FUNC_ID_120: usize = 40;
const F_FUNC_ID_118: usize = 36;

/// `_func` field offsets shared by every release from Go 1.18 on.
const F_NAME_OFF: usize = 4;
const F_PCSP: usize = 16;
const F_PCFILE: usize = 20;
const F_PCLN: usize = 24;
const F_NPCDATA: usize = 28;
const F_CU_OFFSET: usize = 32;

/// The line tables of one binary, borrowing its bytes.
pub struct Lines<'a> {
    /// The `.gopclntab` section's bytes.
    tab: &'a [u8],
    layout: &'a Layout,
    /// The file's bytes from moduledata.gofunc on (inline trees live there).
    gofunc: Option<&'a [u8]>,
}

/// A function's `_func` record: where it is in the table and its entry address.
#[derive(Clone, Copy)]
struct Func {
    off: usize,
    entry: u64,
}

impl<'a> Lines<'a> {
    pub fn new(tab: &'a [u8], layout: &'a Layout, gofunc: Option<&'a [u8]>) -> Lines<'a> {
        Lines {
            tab,
            layout,
            gofunc,
        }
    }

    /// The entry address of the function containing `pc`.
    pub fn entry(&self, pc: u64) -> Option<u64> {
        self.func_at(pc).map(|f| f.entry)
    }

    /// The linker name and entry of the (physical) function containing `pc`, without copying:
    /// for walks that only need to know where they are.
    pub fn function(&self, pc: u64) -> Option<(&'a [u8], u64)> {
        let f = self.func_at(pc)?;
        Some((self.name_bytes(self.field(f, F_NAME_OFF)?)?, f.entry))
    }

    /// For a `go`/`defer` statement's wrapper, the entry of the function it wraps,
    /// as the runtime's `startPCForTrace` finds it: Go's own traces and tracebacks name a
    /// goroutine by that function. None for any other function.
    pub fn wrapped(&self, pc: u64) -> Option<u64> {
        let f = self.func_at(pc)?;
        let off = self.funcdata(f, FUNCDATA_WRAP_INFO)?;
        let at = usize::try_from(off).ok()?;
        let text_off = self.gofunc?.get(at..at.checked_add(4)?)?;
        let text_off = u32::from_le_bytes(text_off.try_into().ok()?);
        // moduledata.textOff with one text section (amd64 binaries have one).
        self.layout.text_base.checked_add(u64::from(text_off))
    }

    /// The stack frame's size at `pc` (bytes between SP and the return address; 0 at the
    /// function's first instruction), as the runtime unwinds with it.
    pub fn sp_delta(&self, pc: u64) -> Option<i32> {
        let f = self.func_at(pc)?;
        self.pcvalue(self.field(f, F_PCSP)?, f.entry, pc)
    }

    /// The source frames at `pc`, innermost first: the calls inlined at `pc`, then the
    /// function itself. `pc` is a "call pc": for a return address, pass it minus one. Empty
    /// when `pc` is in no function of the table.
    pub fn frames(&self, pc: u64) -> Vec<SourceFrame> {
        let Some(f) = self.func_at(pc) else {
            return Vec::new();
        };
        let tree = self.inline_tree(f);
        let mut out = Vec::new();
        let mut at = pc;
        for _ in 0..MAX_INLINE_DEPTH {
            let (file, line) = self.file_line(f, at);
            let inlined = tree.and_then(|(index_table, tree)| {
                let ix = self.pcvalue(index_table, f.entry, at)?;
                self.inlined_call(tree, usize::try_from(ix).ok()?)
            });
            match inlined {
                Some((name_off, parent_pc, func_id)) => {
                    out.push(SourceFrame {
                        function: print_name(self.func_name(name_off)),
                        file,
                        line,
                        inlined: true,
                        func_id,
                        pc: at,
                    });
                    at = f.entry.wrapping_add(u64::from(parent_pc));
                }
                None => {
                    let frame_pc = at;
                    let name = self.field(f, F_NAME_OFF).and_then(|n| self.func_name(n));
                    let at = if self.layout.go120 {
                        F_FUNC_ID_120
                    } else {
                        F_FUNC_ID_118
                    };
                    out.push(SourceFrame {
                        function: print_name(name),
                        file,
                        line,
                        inlined: false,
                        pc: frame_pc,
                        func_id: f
                            .off
                            .checked_add(at)
                            .and_then(|i| self.tab.get(i))
                            .copied()
                            .unwrap_or(0),
                    });
                    break;
                }
            }
        }
        out
    }

    /// Binary search of the functab: the last entry at or below `pc`, if `pc` is before the
    /// end-of-text sentinel.
    fn func_at(&self, pc: u64) -> Option<Func> {
        let l = self.layout;
        let rel = u32::try_from(pc.checked_sub(l.text_base)?).ok()?;
        let entry = |i: usize| self.u32_at(l.pcln_off.checked_add(i.checked_mul(8)?)?);
        if rel >= entry(l.nfunc)? {
            return None;
        }
        // partition_point over 0..nfunc of "entry(i) <= rel".
        let (mut lo, mut hi) = (0usize, l.nfunc);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if entry(mid)? <= rel {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let i = lo.checked_sub(1)?;
        let func_off = self.u32_at(l.pcln_off.checked_add(i * 8 + 4)?)?;
        Some(Func {
            off: l.pcln_off.checked_add(usize::try_from(func_off).ok()?)?,
            entry: l.text_base.checked_add(u64::from(entry(i)?))?,
        })
    }

    fn u32_at(&self, off: usize) -> Option<u32> {
        let b = self.tab.get(off..off.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    /// A u32 field of `f`'s `_func`.
    fn field(&self, f: Func, at: usize) -> Option<u32> {
        self.u32_at(f.off.checked_add(at)?)
    }

    /// The `_func` record's fixed size: Go 1.20 added startLine.
    fn func_header_len(&self) -> usize {
        if self.layout.go120 {
            44
        } else {
            40
        }
    }

    /// pcdata table `i` of `f` (its offset in pctab), if it has one.
    fn pcdata(&self, f: Func, i: u32) -> Option<u32> {
        if i >= self.field(f, F_NPCDATA)? {
            return None;
        }
        let at = self.func_header_len() + 4 * usize::try_from(i).ok()?;
        self.field(f, at).filter(|&o| o != 0)
    }

    /// funcdata `i` of `f`: its offset from moduledata.gofunc, if it has one.
    fn funcdata(&self, f: Func, i: u8) -> Option<u32> {
        let hl = self.func_header_len();
        let nfuncdata = *self.tab.get(f.off.checked_add(hl - 1)?)?;
        if i >= nfuncdata {
            return None;
        }
        let npcdata = usize::try_from(self.field(f, F_NPCDATA)?).ok()?;
        let at = hl
            .checked_add(npcdata.checked_mul(4)?)?
            .checked_add(4 * usize::from(i))?;
        self.field(f, at).filter(|&o| o != u32::MAX)
    }

    /// `f`'s inline tree: (its index table in pctab, the tree's bytes).
    fn inline_tree(&self, f: Func) -> Option<(u32, &'a [u8])> {
        let index_table = self.pcdata(f, PCDATA_INL_TREE_INDEX)?;
        let off = self.funcdata(f, FUNCDATA_INL_TREE as u8)?;
        let tree = self.gofunc?.get(usize::try_from(off).ok()?..)?;
        Some((index_table, tree))
    }

    /// Entry `ix` of an inline tree: (the callee's name offset, the call site's pc offset from
    /// the function's entry, the callee's funcID). Go 1.20+: {funcID u8, _ [3]byte, nameOff i32, parentPc i32,
    /// startLine i32}; Go 1.18-1.19: {parent i16, funcID u8, _ byte, file i32, line i32,
    /// func_ i32, parentPc i32}.
    fn inlined_call(&self, tree: &[u8], ix: usize) -> Option<(u32, u32, u8)> {
        let (size, name_at, parent_at, id_at) = if self.layout.go120 {
            (16, 4, 8, 0)
        } else {
            (20, 12, 16, 2)
        };
        let rec = tree.get(ix.checked_mul(size)?..)?.get(..size)?;
        let word = |at: usize| Some(u32::from_le_bytes(rec.get(at..at + 4)?.try_into().ok()?));
        Some((word(name_at)?, word(parent_at)?, *rec.get(id_at)?))
    }

    /// The value of pc-value table `table` (an offset in pctab) at `target` in the function
    /// entered at `entry` (runtime.pcvalue).
    fn pcvalue(&self, table: u32, entry: u64, target: u64) -> Option<i32> {
        let l = self.layout;
        let start = l.pctab_off.checked_add(usize::try_from(table).ok()?)?;
        let mut p = self.tab.get(start..)?;
        let (mut pc, mut val) = (entry, -1i32);
        loop {
            let uvdelta = uvarint(&mut p)?;
            if uvdelta == 0 && pc != entry {
                return None;
            }
            let vdelta = if uvdelta & 1 != 0 {
                !(uvdelta >> 1)
            } else {
                uvdelta >> 1
            } as i32;
            let pcdelta = uvarint(&mut p)?.checked_mul(u32::from(l.min_lc))?;
            pc = pc.checked_add(u64::from(pcdelta))?;
            val = val.wrapping_add(vdelta);
            if target < pc {
                return Some(val);
            }
        }
    }

    /// File and line at `pc` in `f` ("?" and 0 where the tables have none).
    fn file_line(&self, f: Func, pc: u64) -> (String, u32) {
        let file = self
            .field(f, F_PCFILE)
            .and_then(|t| self.pcvalue(t, f.entry, pc))
            .and_then(|fileno| self.file_name(f, fileno));
        let line = self
            .field(f, F_PCLN)
            .and_then(|t| self.pcvalue(t, f.entry, pc))
            .and_then(|l| u32::try_from(l).ok());
        (file.unwrap_or_else(|| "?".into()), line.unwrap_or(0))
    }

    /// File `fileno` of `f`'s compilation unit.
    fn file_name(&self, f: Func, fileno: i32) -> Option<String> {
        let l = self.layout;
        let cu = usize::try_from(self.field(f, F_CU_OFFSET)?).ok()?;
        let idx = cu.checked_add(usize::try_from(fileno).ok()?)?;
        let name_off = self.u32_at(l.cu_off.checked_add(idx.checked_mul(4)?)?)?;
        if name_off == u32::MAX {
            return None;
        }
        c_string(
            self.tab,
            l.filetab_off.checked_add(usize::try_from(name_off).ok()?)?,
        )
    }

    fn func_name(&self, name_off: u32) -> Option<String> {
        self.name_bytes(name_off)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The NUL-terminated name at `name_off` in the function name table.
    fn name_bytes(&self, name_off: u32) -> Option<&'a [u8]> {
        if name_off > i32::MAX as u32 {
            return None;
        }
        let at = self
            .layout
            .funcname_off
            .checked_add(usize::try_from(name_off).ok()?)?;
        let s = self.tab.get(at..)?;
        Some(&s[..s.iter().position(|&c| c == 0)?])
    }
}

/// A linker name as Go prints it (runtime.funcNameForPrint): what is between the first `[` and
/// the last `]` (a generic's shape arguments) becomes `...`; "?" for no name.
pub fn print_name(name: Option<String>) -> String {
    let Some(name) = name else {
        return "?".into();
    };
    match (name.find('['), name.rfind(']')) {
        (Some(i), Some(j)) if j > i => format!("{}[...]{}", &name[..i], &name[j + 1..]),
        _ => name,
    }
}

/// The NUL-terminated string at `at`.
fn c_string(b: &[u8], at: usize) -> Option<String> {
    let s = b.get(at..)?;
    let end = s.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// A little-endian base-128 varint of at most 5 bytes (runtime.readvarint), advancing `p`.
fn uvarint(p: &mut &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for (i, &b) in p.iter().take(5).enumerate() {
        v |= u32::from(b & 0x7f) << (7 * i as u32);
        if b & 0x80 == 0 {
            *p = &p[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
#[path = "lines_tests.rs"]
mod tests;
