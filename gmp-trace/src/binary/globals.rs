//! Addresses of the runtime globals a reader of a live process starts from (allgs, allglen, allm,
//! allp, gomaxprocs; g0 and m0 for the live checks): from `.symtab` when the binary has one, else
//! from the runtime code that uses them. A binary linked with `-s -w` has lost its data symbols but
//! keeps `.gopclntab` (function names) and the code, whose RIP-relative operands are the globals'
//! link-time addresses.
//!
//! Each global is recognised by what the code does with it, not by where its reference sits, so a
//! rule holds across releases (checked on Go 1.19 and 1.21 to 1.27) and build modes (static, PIE,
//! external linking move the addresses, not the shape of the code). A rule that matches nothing, or
//! more than one global, is an error: a wrong address would have the dump read garbage. amd64 only.
//!
//! The rules ("[G]": a RIP-relative operand, or an address in a register whose last definition is
//! `LEA r, [G]` with no branch target or call in between):
//! - allglen, allgs (runtime.allgadd): `atomic.Storeuintptr(&allglen, uintptr(len(allgs)))` is
//!   `MOV r, [allgs+8]` .. `XCHG [allglen], r`; allgs must be used as a slice header (its three
//!   words touched, its len stored by the append).
//! - allm (runtime.mcommoninit): `mp.alllink = allm; atomicstorep(&allm, mp)` is the function's one
//!   64-bit `XCHG [allm], r`, and a load of allm whose register is stored to `[mp + m.alllink]`.
//! - gomaxprocs (runtime.procresize): `atomic.Store((*uint32)(&gomaxprocs), nprocs)` is its one
//!   32-bit `XCHG [G], r32`; `old := gomaxprocs` loads the same G as 32 bits.
//! - allp (runtime.procresize): the one slice header there (three words touched, len stored) whose
//!   elements are read as 8-byte words (`MOV r, [allp]` .. `MOV x, [r + i*8]`): its other slices
//!   (idlepMask, timerpMask, stealOrder's coprimes) hold uint32s.
//! - g0, m0 (runtime.rt0_go, assembly): `LEAQ g0, CX; LEAQ m0, AX; MOVQ CX, m_g0(AX);
//!   MOVQ AX, g_m(CX)`, the one pair of globals each stored into the other (at m.g0 and g.m
//!   when the layout is known, else m.g0 at 0, m's first field in every release).

use std::collections::HashSet;

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

use super::{Arch, BinaryError, GoBinary};

/// Where [`RuntimeGlobals`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalsSource {
    /// The data symbols of `.symtab`.
    Symbols,
    /// The runtime's code (stripped binaries).
    Code,
}

/// Link-time addresses of the runtime's scheduler globals; add the load bias for PIE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeGlobals {
    /// `[]*g`: ptr, len, cap.
    pub allgs: u64,
    /// `uintptr`, len(allgs) stored atomically.
    pub allglen: u64,
    /// `*m`, the head of the list linked by m.alllink.
    pub allm: u64,
    /// `[]*p`.
    pub allp: u64,
    /// `int32`.
    pub gomaxprocs: u64,
    pub source: GlobalsSource,
}

/// Link-time addresses of runtime.g0 and runtime.m0, the bootstrap G and M.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootGlobals {
    pub g0: u64,
    pub m0: u64,
    pub source: GlobalsSource,
}

/// How far after a load to look for the store that confirms allm's use.
const STORE_WINDOW: usize = 16;

impl GoBinary {
    /// The scheduler globals: from the symbol table when it has all five, else from the code.
    pub fn runtime_globals(&self) -> Result<RuntimeGlobals, BinaryError> {
        let sym = |n: &str| self.data_symbol(n).map(|s| s.addr);
        let names = [
            "runtime.allgs",
            "runtime.allglen",
            "runtime.allm",
            "runtime.allp",
            "runtime.gomaxprocs",
        ];
        match names.map(sym) {
            [Some(allgs), Some(allglen), Some(allm), Some(allp), Some(gomaxprocs)] => {
                Ok(RuntimeGlobals {
                    allgs,
                    allglen,
                    allm,
                    allp,
                    gomaxprocs,
                    source: GlobalsSource::Symbols,
                })
            }
            _ => self.runtime_globals_from_code(),
        }
    }

    /// The scheduler globals read off the runtime's code only (the stripped path).
    pub fn runtime_globals_from_code(&self) -> Result<RuntimeGlobals, BinaryError> {
        let (allglen, allgs) = self.code_of("runtime.allgadd", "allgs")?.allglen_allgs()?;
        let alllink = self.runtime_layout().ok().map(|l| u64::from(l.m_alllink));
        let allm = self.code_of("runtime.mcommoninit", "allm")?.allm(alllink)?;
        let procresize = self.code_of("runtime.procresize", "gomaxprocs")?;
        let gomaxprocs = procresize.gomaxprocs()?;
        let allp = procresize.allp()?;
        let all = [allgs, allglen, allm, allp, gomaxprocs];
        if (1..all.len()).any(|i| all[..i].contains(&all[i])) {
            return Err(self.missing(
                "allgs",
                "runtime.allgadd",
                format!("two globals resolved to one address: {all:#x?}"),
            ));
        }
        Ok(RuntimeGlobals {
            allgs,
            allglen,
            allm,
            allp,
            gomaxprocs,
            source: GlobalsSource::Code,
        })
    }

    /// runtime.g0 and runtime.m0: from the symbol table, else from runtime.rt0_go.
    pub fn boot_globals(&self) -> Result<BootGlobals, BinaryError> {
        match (
            self.data_symbol("runtime.g0"),
            self.data_symbol("runtime.m0"),
        ) {
            (Some(g0), Some(m0)) => Ok(BootGlobals {
                g0: g0.addr,
                m0: m0.addr,
                source: GlobalsSource::Symbols,
            }),
            _ => self.boot_globals_from_code(),
        }
    }

    /// runtime.g0 and runtime.m0 read off runtime.rt0_go only.
    pub fn boot_globals_from_code(&self) -> Result<BootGlobals, BinaryError> {
        let layout = self.runtime_layout().ok();
        let offsets = layout.map(|l| (u64::from(l.m_g0), u64::from(l.offsets.g_m)));
        let (g0, m0) = self.code_of("runtime.rt0_go", "g0")?.g0_m0(offsets)?;
        Ok(BootGlobals {
            g0,
            m0,
            source: GlobalsSource::Code,
        })
    }

    /// `func` decoded for the rules; `global` names what was looked for in errors.
    fn code_of(&self, func: &str, global: &'static str) -> Result<Code<'_>, BinaryError> {
        if self.arch != Arch::X86_64 {
            return Err(self.missing(
                global,
                func,
                "only amd64 code is read for globals; on arm64 they come from the symbol table"
                    .into(),
            ));
        }
        let (f, bytes) = self.function_code(func)?;
        let mut decoder = Decoder::with_ip(64, bytes, f.addr, DecoderOptions::NONE);
        let mut insns = Vec::with_capacity(bytes.len() / 4);
        while decoder.can_decode() {
            let insn = decoder.decode();
            if insn.is_invalid() {
                return Err(self.corrupt(format!(
                    "{}: undecodable instruction at {:#x}",
                    f.name,
                    insn.ip()
                )));
            }
            insns.push(insn);
        }
        Ok(Code::new(self, f.name, insns))
    }

    fn missing(&self, global: &'static str, func: &str, why: String) -> BinaryError {
        BinaryError::MissingGlobal {
            path: self.path.clone(),
            global,
            func: func.to_string(),
            why,
        }
    }
}

/// One function's instructions and where its branches land.
struct Code<'a> {
    bin: &'a GoBinary,
    func: String,
    insns: Vec<Instruction>,
    /// Addresses some branch of the function lands on: a register's value there may come from
    /// elsewhere, so no definition is followed back across one.
    targets: HashSet<u64>,
    /// An indirect jump (a switch's jump table) lands anywhere: then nothing is followed back.
    indirect_jump: bool,
}

/// A 64-bit `MOV r, [G]` load.
fn load_of(insn: &Instruction) -> Option<(Register, u64, usize)> {
    (insn.mnemonic() == Mnemonic::Mov && insn.op0_kind() == OpKind::Register)
        .then_some(())
        .and_then(|()| Some((insn.op0_register(), rip_operand(insn)?, mem_size(insn))))
}

/// The address of `insn`'s RIP-relative memory operand.
fn rip_operand(insn: &Instruction) -> Option<u64> {
    let has_mem = (0..insn.op_count()).any(|n| insn.op_kind(n) == OpKind::Memory);
    (has_mem && insn.memory_base() == Register::RIP).then(|| insn.ip_rel_memory_address())
}

fn mem_size(insn: &Instruction) -> usize {
    insn.memory_size().size()
}

impl<'a> Code<'a> {
    fn new(bin: &'a GoBinary, func: String, insns: Vec<Instruction>) -> Code<'a> {
        let mut targets = HashSet::new();
        let mut indirect_jump = false;
        for i in &insns {
            match i.flow_control() {
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch => {
                    if i.op0_kind() == OpKind::NearBranch64 {
                        targets.insert(i.near_branch64());
                    }
                }
                FlowControl::IndirectBranch => indirect_jump = true,
                _ => {}
            }
        }
        Code {
            bin,
            func,
            insns,
            targets,
            indirect_jump,
        }
    }

    /// The index of the instruction that last set `reg` before `insns[at]`, when that is
    /// certain: straight-line code between them, no branch landing in it, no call.
    fn def(&self, at: usize, reg: Register) -> Option<usize> {
        if self.indirect_jump || reg == Register::None {
            return None;
        }
        let full = reg.full_register();
        let mut info = InstructionInfoFactory::new();
        for k in (1..=at).rev() {
            if self.targets.contains(&self.insns[k].ip()) {
                return None;
            }
            let prev = &self.insns[k - 1];
            // A call clobbers registers; after a jump, return or trap, insns[k] is reached from
            // elsewhere only.
            if !matches!(
                prev.flow_control(),
                FlowControl::Next | FlowControl::ConditionalBranch
            ) {
                return None;
            }
            let writes = info.info(prev).used_registers().iter().any(|u| {
                u.register().full_register() == full
                    && !matches!(u.access(), OpAccess::Read | OpAccess::NoMemAccess)
            });
            if writes {
                return Some(k - 1);
            }
        }
        None
    }

    /// The global `insns[at]`'s memory operand addresses: RIP-relative, or `[r]` with r from
    /// `LEA r, [G]`.
    fn global_operand(&self, at: usize) -> Option<u64> {
        let insn = &self.insns[at];
        if let Some(g) = rip_operand(insn) {
            return Some(g);
        }
        if insn.memory_index() != Register::None || insn.memory_displacement64() != 0 {
            return None;
        }
        let d = &self.insns[self.def(at, insn.memory_base())?];
        (d.mnemonic() == Mnemonic::Lea)
            .then(|| rip_operand(d))
            .flatten()
    }

    /// Every `XCHG [G], r` as (index, G, width in bytes, r).
    fn xchgs_into_globals(&self) -> Vec<(usize, u64, usize, Register)> {
        self.insns
            .iter()
            .enumerate()
            .filter(|(_, i)| {
                i.mnemonic() == Mnemonic::Xchg
                    && i.op0_kind() == OpKind::Memory
                    && i.op1_kind() == OpKind::Register
            })
            .filter_map(|(n, i)| Some((n, self.global_operand(n)?, mem_size(i), i.op1_register())))
            .collect()
    }

    /// Whether some instruction reads or writes `size` bytes at RIP-relative `addr` (`store`:
    /// writes it).
    fn touches(&self, addr: u64, size: usize, store: bool) -> bool {
        self.insns.iter().any(|i| {
            rip_operand(i) == Some(addr)
                && mem_size(i) == size
                && (!store || (i.op0_kind() == OpKind::Memory && i.mnemonic() == Mnemonic::Mov))
        })
    }

    /// A slice header at `s`: its ptr, len and cap words read or written, its len stored.
    fn is_slice_header(&self, s: u64) -> bool {
        let (len, cap) = (s.wrapping_add(8), s.wrapping_add(16));
        self.touches(s, 8, false)
            && self.touches(len, 8, false)
            && self.touches(cap, 8, false)
            && self.touches(len, 8, true)
    }

    fn fail(&self, global: &'static str, why: String) -> BinaryError {
        self.bin.missing(global, &self.func, why)
    }

    /// The one candidate, or why there is not exactly one.
    fn one(
        &self,
        global: &'static str,
        mut found: Vec<u64>,
        rule: &str,
    ) -> Result<u64, BinaryError> {
        found.sort_unstable();
        found.dedup();
        match found[..] {
            [g] => Ok(g),
            [] => Err(self.fail(global, format!("no instruction matches {rule}"))),
            _ => Err(self.fail(
                global,
                format!("{rule} matches several globals {found:#x?}: ambiguous"),
            )),
        }
    }

    /// (allglen, allgs) from runtime.allgadd.
    fn allglen_allgs(&self) -> Result<(u64, u64), BinaryError> {
        let mut found = Vec::new();
        for (at, allglen, size, value) in self.xchgs_into_globals() {
            let Some(d) = self.def(at, value) else {
                continue;
            };
            let Some((_, len_word, 8)) = load_of(&self.insns[d]) else {
                continue;
            };
            let allgs = len_word.wrapping_sub(8);
            if size == 8 && self.is_slice_header(allgs) && allglen.wrapping_sub(allgs) >= 24 {
                found.push((allglen, allgs));
            }
        }
        found.dedup();
        match found[..] {
            [pair] => Ok(pair),
            [] => Err(self.fail(
                "allglen",
                "no XCHG stores the len word of a slice header into a global".into(),
            )),
            _ => Err(self.fail(
                "allglen",
                format!("several XCHGs store a slice's len into a global: {found:#x?}"),
            )),
        }
    }

    /// runtime.allm from runtime.mcommoninit; `alllink` is m.alllink's offset when known.
    fn allm(&self, alllink: Option<u64>) -> Result<u64, BinaryError> {
        let xchgs: Vec<_> = self
            .xchgs_into_globals()
            .into_iter()
            .filter(|x| x.2 == 8)
            .collect();
        let [(_, allm, _, _)] = xchgs[..] else {
            return Err(self.fail(
                "allm",
                format!(
                    "expected one 64-bit XCHG into a global, found {}",
                    xchgs.len()
                ),
            ));
        };
        let linked = self.insns.iter().enumerate().any(|(at, i)| {
            matches!(load_of(i), Some((r, g, 8)) if g == allm && self.stored_to_field(at, r, alllink))
        });
        if !linked {
            return Err(self.fail(
                "allm",
                format!("{allm:#x} is exchanged but never loaded and linked into an m"),
            ));
        }
        Ok(allm)
    }

    /// Whether the value `reg` holds after `insns[at]` is stored, before `reg` changes, to
    /// `[base + field]` (`field` when known, else any offset) with a base other than RSP/RIP.
    /// Forward and linear: a conditional write-barrier path in between is walked through, and
    /// the write-barrier calls, which keep every register but R11, are stepped over.
    fn stored_to_field(&self, at: usize, reg: Register, field: Option<u64>) -> bool {
        let full = reg.full_register();
        let mut info = InstructionInfoFactory::new();
        for i in self.insns.iter().skip(at + 1).take(STORE_WINDOW) {
            if i.mnemonic() == Mnemonic::Mov
                && i.op0_kind() == OpKind::Memory
                && i.op1_kind() == OpKind::Register
                && i.op1_register() == full
                && !matches!(
                    i.memory_base(),
                    Register::RSP | Register::RIP | Register::None
                )
                && field.is_none_or(|f| i.memory_displacement64() == f)
            {
                return true;
            }
            match i.flow_control() {
                FlowControl::Call => {
                    let callee = self.bin.func_name_for_pc(i.near_branch_target());
                    if !callee.is_some_and(|n| n.starts_with("runtime.gcWriteBarrier")) {
                        return false;
                    }
                }
                FlowControl::Next | FlowControl::ConditionalBranch => {}
                _ => return false,
            }
            let writes = info.info(i).used_registers().iter().any(|u| {
                u.register().full_register() == full
                    && !matches!(u.access(), OpAccess::Read | OpAccess::NoMemAccess)
            });
            if writes {
                return false;
            }
        }
        false
    }

    /// runtime.gomaxprocs from runtime.procresize.
    fn gomaxprocs(&self) -> Result<u64, BinaryError> {
        let stores: Vec<u64> = self
            .xchgs_into_globals()
            .into_iter()
            .filter(|x| x.2 == 4)
            .map(|x| x.1)
            .filter(|&g| {
                self.insns
                    .iter()
                    .any(|i| load_of(i).is_some_and(|l| l.1 == g && l.2 == 4))
            })
            .collect();
        self.one(
            "gomaxprocs",
            stores,
            "a 32-bit XCHG into a global that is also loaded as 32 bits",
        )
    }

    /// runtime.allp from runtime.procresize.
    fn allp(&self) -> Result<u64, BinaryError> {
        let mut found = Vec::new();
        for (at, i) in self.insns.iter().enumerate() {
            // An 8-byte element load: MOV x, [r + i*8] or MOV x, [r] (element 0).
            let element = i.mnemonic() == Mnemonic::Mov
                && i.op0_kind() == OpKind::Register
                && i.op1_kind() == OpKind::Memory
                && mem_size(i) == 8
                && !matches!(
                    i.memory_base(),
                    Register::RSP | Register::RIP | Register::None
                )
                && match i.memory_index() {
                    Register::None => i.memory_displacement64() == 0,
                    _ => i.memory_index_scale() == 8 && i.memory_displacement64() == 0,
                };
            if !element {
                continue;
            }
            let Some(d) = self.def(at, i.memory_base()) else {
                continue;
            };
            if let Some((_, s, 8)) = load_of(&self.insns[d]) {
                if self.is_slice_header(s) {
                    found.push(s);
                }
            }
        }
        self.one(
            "allp",
            found,
            "a slice header whose elements are loaded as 8-byte words",
        )
    }

    /// (g0, m0) from runtime.rt0_go; `offsets` is (m.g0, g.m) when known.
    fn g0_m0(&self, offsets: Option<(u64, u64)>) -> Result<(u64, u64), BinaryError> {
        // Every 64-bit store `[A + d] <- C` with A and C each from `LEA r, [G]`.
        let mut stores = Vec::new();
        for (at, i) in self.insns.iter().enumerate() {
            if !(i.mnemonic() == Mnemonic::Mov
                && i.op0_kind() == OpKind::Memory
                && i.op1_kind() == OpKind::Register
                && mem_size(i) == 8
                && i.memory_index() == Register::None)
            {
                continue;
            }
            let lea_global = |r: Register| -> Option<u64> {
                let d = &self.insns[self.def(at, r)?];
                (d.mnemonic() == Mnemonic::Lea)
                    .then(|| rip_operand(d))
                    .flatten()
            };
            if let (Some(into), Some(value)) =
                (lea_global(i.memory_base()), lea_global(i.op1_register()))
            {
                stores.push((into, i.memory_displacement64(), value));
            }
        }
        let mut found = Vec::new();
        for &(m0, m_g0, g0) in &stores {
            for &(into, g_m, value) in &stores {
                // Without a layout, m.g0 is m's first field (every release), which also tells
                // the two stores apart.
                let fields_ok = match offsets {
                    Some(o) => o == (m_g0, g_m),
                    None => m_g0 == 0 && g_m != 0,
                };
                if into == g0 && value == m0 && m0 != g0 && fields_ok {
                    found.push((g0, m0));
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        match found[..] {
            [pair] => Ok(pair),
            [] => Err(self.fail(
                "g0",
                "no two globals are stored into each other (m0.g0 = &g0, g0.m = &m0)".into(),
            )),
            _ => Err(self.fail(
                "g0",
                format!("several pairs of globals store each other: {found:#x?}"),
            )),
        }
    }
}

#[cfg(test)]
#[path = "globals_tests.rs"]
mod tests;
