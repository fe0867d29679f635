//! Where to put a uprobe in a Go function.
//!
//! The kernel either emulates the probed instruction (PUSH reg, JMP/Jcc, CALL rel32, NOP: one
//! trap, ~1 us) or single-steps a copy of it out of line (a second trap: ~3x the cost here). A
//! 5-byte NOP is better still: Linux 6.18+ rewrites it into a call to a trampoline that enters
//! the kernel by system call, with no trap at all after the first hit. A Go
//! function's first instruction is the stack-bound check (`CMP RSP, [R14+0x10]`), which must be
//! single-stepped, and it runs again whenever the stack grows (the morestack tail jumps back to
//! the function start), so an entry probe also fires twice on those calls. The instruction right
//! after the check's `JBE` is reached exactly once per call. In the 1.21.13 and 1.27.3 toolchains
//! we test it is `PUSH RBP` (emulated, one trap) in every function we probe; Go 1.19/1.20 set up
//! the frame with `SUB RSP, n` first, so there the site is still once-per-call but two traps.
//!
//! A function's return is watched in its callers rather than on its RETs (which are single-
//! stepped): at the first emulated instruction after each call, following the result from RAX
//! into whichever register or frame slot the caller moves it to (`return_sites`).
//!
//! This file holds the sites' types and the entry points on `GoBinary`, which pick the
//! architecture; the amd64 instruction rules (which stack checks are recognised, what the kernel
//! emulates, how a result is followed after a call) live in `x86.rs` so they can be tested on
//! hand-assembled bytes, and arm64's in `arm64.rs`.

use iced_x86::{Code, Instruction, Register};

use super::x86::{
    choose_probe_site, decode, format_insn, is_one_trap, is_ret, site_after_call, tls_slot,
};
use super::{Arch, BinaryError, Function, GoBinary};

/// A uprobe location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSite {
    /// The symbol the site is in (the `.abi0` name for assembly functions).
    pub func: String,
    pub vaddr: u64,
    /// Offset in the executable file, what `uprobe` attach points take.
    pub file_offset: u64,
    /// The instruction at the site, Intel syntax.
    pub insn: String,
    /// The kernel emulates this instruction instead of single-stepping it.
    pub one_trap: bool,
}

/// Where a probe after a call finds the callee's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultLoc {
    /// In a 64-bit general register (RAX at a RET).
    Reg(Register),
    /// In the caller's frame, at RSP + this offset.
    Stack(u32),
}

/// The registers a probe can read a result from, in the order of their cookie numbers
/// (`gmp_trace_common::result_loc`): the caller's RBP or RSP are never followed.
pub(super) const RESULT_REGS: [Register; gmp_trace_common::result_loc::REGS as usize] = [
    Register::RAX,
    Register::RBX,
    Register::RCX,
    Register::RDX,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

impl ResultLoc {
    /// The probe's attach cookie for it (`gmp_trace_common::result_loc`). `site_after_call`
    /// only carries a result into `RESULT_REGS`.
    pub fn cookie(self) -> u64 {
        use gmp_trace_common::result_loc::STACK;
        match self {
            ResultLoc::Reg(r) => RESULT_REGS.iter().position(|o| *o == r).unwrap_or(0) as u64,
            ResultLoc::Stack(off) => STACK | u64::from(off),
        }
    }
}

/// A site that sees a function's return, and where its result is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnSite {
    pub site: ProbeSite,
    pub result: ResultLoc,
}

impl GoBinary {
    /// The cheapest site that fires exactly once per call: right after the stack check, or the
    /// first instruction when there is none.
    pub fn probe_site(&self, func: &str) -> Result<ProbeSite, BinaryError> {
        if self.arch == Arch::Aarch64 {
            return self.arm64_probe_site(func);
        }
        let (name, insns) = self.decode_function(func)?;
        let idx =
            choose_probe_site(&insns).map_err(|(vaddr, reason)| BinaryError::UnsafeProbeSite {
                func: name.clone(),
                vaddr,
                reason,
            })?;
        self.site(&name, insns.get(idx))
    }

    /// The function's first instruction.
    pub fn entry_site(&self, func: &str) -> Result<ProbeSite, BinaryError> {
        if self.arch == Arch::Aarch64 {
            return self.arm64_entry_site(func);
        }
        let (name, insns) = self.decode_function(func)?;
        self.site(&name, insns.first())
    }

    /// Every RET in the function, in address order.
    pub fn ret_sites(&self, func: &str) -> Result<Vec<ProbeSite>, BinaryError> {
        if self.arch == Arch::Aarch64 {
            return self.arm64_ret_sites(func);
        }
        let (name, insns) = self.decode_function(func)?;
        insns
            .iter()
            .filter(|i| is_ret(i))
            .map(|i| self.site(&name, Some(i)))
            .collect()
    }

    /// Sites that see every return of `func` with its result: in each caller, the first
    /// emulated instruction after the call (one trap), when every direct call site has one
    /// and nothing else can reach it; otherwise the function's own RETs (each one trap plus a
    /// single step). Calls made indirectly (through a func value) would be missed by the first
    /// kind: use this only for functions the runtime calls directly.
    pub fn return_sites(&self, func: &str) -> Result<Vec<ReturnSite>, BinaryError> {
        let at_rets = |bin: &GoBinary| -> Result<Vec<ReturnSite>, BinaryError> {
            Ok(bin
                .ret_sites(func)?
                .into_iter()
                .map(|site| ReturnSite {
                    site,
                    result: ResultLoc::Reg(Register::RAX),
                })
                .collect())
        };
        if self.arch != Arch::X86_64 {
            return at_rets(self);
        }
        match self.sites_in_callers(func)? {
            Some(sites) => Ok(sites),
            None => at_rets(self),
        }
    }

    /// [`GoBinary::return_sites`] in the callers, or None (with the reason logged) when some
    /// call site has no safe site after it.
    fn sites_in_callers(&self, func: &str) -> Result<Option<Vec<ReturnSite>>, BinaryError> {
        let target = self
            .function_table()?
            .function(func)
            .ok_or_else(|| BinaryError::MissingFunction(func.to_string()))?
            .addr;
        // Direct calls are E8 rel32 with the target relative to the next instruction: find the
        // byte pattern, then keep the ones that decode as a call at an instruction boundary of
        // their function. Only package runtime's own code is searched: the functions watched
        // this way are unexported runtime functions, which nothing else can call (and the rest
        // of a big binary's text need not be paged in).
        let mut callers: Vec<(Function, Vec<u64>)> = Vec::new();
        for f in self.function_table()?.functions() {
            if !f.name.starts_with("runtime.") || f.size == 0 {
                continue;
            }
            let Some(code) = self.code_bytes(f.addr, f.size) else {
                continue;
            };
            let mut ats = Vec::new();
            for (i, w) in code.windows(5).enumerate() {
                if w[0] != 0xe8 {
                    continue;
                }
                let rel = i32::from_le_bytes([w[1], w[2], w[3], w[4]]) as i64;
                let at = f.addr + i as u64;
                if (at as i64).wrapping_add(5).wrapping_add(rel) as u64 == target {
                    ats.push(at);
                }
            }
            if !ats.is_empty() {
                callers.push((f.clone(), ats));
            }
        }
        let mut out = Vec::new();
        for (f, ats) in callers {
            let (name, insns) = self.decode_function(&f.name)?;
            for at in ats {
                let Some(idx) = insns.iter().position(|i| i.ip() == at) else {
                    continue; // the bytes were the inside of another instruction
                };
                if !(insns[idx].code() == Code::Call_rel32_64
                    && insns[idx].near_branch_target() == target)
                {
                    continue;
                }
                match site_after_call(&insns, idx) {
                    Ok((j, result)) => out.push(ReturnSite {
                        site: self.site(&name, insns.get(j))?,
                        result,
                    }),
                    Err(why) => {
                        log::debug!(
                            "{func}: its call at {at:#x} in {name}: {why}; probing its RETs"
                        );
                        return Ok(None);
                    }
                }
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some(out))
    }

    /// Where g's TLS slot is relative to the fs base, read off `runtime.rt0_go`, which stores
    /// g0 there (`MOVQ CX, g(BX)`). Internal linking writes `mov [fs:-8], rcx`; position-
    /// independent builds load the offset into a register first (`mov rbx, -8` ...
    /// `mov [fs:rbx], rcx`). Both give -8 on linux/amd64 today; reading it keeps a future
    /// layout (or a C library's TLS in a cgo binary) from sending the probes to the wrong slot.
    pub fn tls_g_offset(&self) -> Result<i32, BinaryError> {
        if self.arch != Arch::X86_64 {
            return Err(self.corrupt("g lives in a register (R28) on arm64, not in TLS"));
        }
        let (name, insns) = self.decode_function("runtime.rt0_go")?;
        tls_slot(&insns).ok_or_else(|| {
            self.corrupt(format!(
                "{name} has no fs-relative store of g with a known offset"
            ))
        })
    }

    /// The function (symtab, else pclntab) and its bytes.
    pub(super) fn function_code(&self, func: &str) -> Result<(Function, &[u8]), BinaryError> {
        let f = self
            .function_table()?
            .function(func)
            .ok_or_else(|| BinaryError::MissingFunction(func.to_string()))?;
        if f.size == 0 {
            return Err(self.corrupt(format!("function {} has size 0", f.name)));
        }
        let code = self.code_bytes(f.addr, f.size).ok_or_else(|| {
            self.corrupt(format!(
                "function {} at {:#x}+{:#x} is outside the executable sections",
                f.name, f.addr, f.size
            ))
        })?;
        Ok((f.clone(), code))
    }

    /// The symbol's name and its instructions, decoded linearly over `[addr, addr+size)`.
    fn decode_function(&self, func: &str) -> Result<(String, Vec<Instruction>), BinaryError> {
        let (f, code) = self.function_code(func)?;
        let insns =
            decode(code, f.addr).map_err(|what| self.corrupt(format!("{}: {what}", f.name)))?;
        Ok((f.name, insns))
    }

    fn site(&self, func: &str, insn: Option<&Instruction>) -> Result<ProbeSite, BinaryError> {
        let insn =
            insn.ok_or_else(|| self.corrupt(format!("function {func} has no instructions")))?;
        self.make_site(func, insn.ip(), format_insn(insn), is_one_trap(insn))
    }

    /// A site at `vaddr`, with its file offset.
    pub(super) fn make_site(
        &self,
        func: &str,
        vaddr: u64,
        insn: String,
        one_trap: bool,
    ) -> Result<ProbeSite, BinaryError> {
        let file_offset = self.vaddr_to_file_offset(vaddr).ok_or_else(|| {
            self.corrupt(format!("{func}: {vaddr:#x} is not in a loadable segment"))
        })?;
        Ok(ProbeSite {
            func: func.to_string(),
            vaddr,
            file_offset,
            insn,
            one_trap,
        })
    }
}

#[cfg(test)]
#[path = "placement_tests.rs"]
pub(super) mod tests;
