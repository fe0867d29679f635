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
//! Recognised stack checks (cmd/internal/obj/x86 stacksplit, ABIInternal functions where R14
//! holds g and 0x10 is g.stackguard0; `//go:systemstack` functions compare with stackguard1,
//! 0x18, instead):
//!   small frames:  CMP RSP, [R14+0x10] ; JBE tail
//!   big frames:    LEA R12, [RSP-n] ; CMP R12, [R14+0x10] ; JBE tail
//!   huge frames:   MOV R12, RSP ; SUB R12, n ; JB tail ; CMP R12, [R14+0x10] ; JBE tail
//! Anything else (NOSPLIT functions such as runtime.casgstatus, ABI0 assembly) is probed at its
//! first instruction.
//!
//! A function's return is watched in its callers rather than on its RETs (which are single-
//! stepped): at the first emulated instruction after each call, following the result from RAX
//! into whichever register or frame slot the caller moves it to (`return_sites`).

use iced_x86::{
    Code, Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic, OpKind,
    Register,
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
const RESULT_REGS: [Register; gmp_trace_common::result_loc::REGS as usize] = [
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

/// How far after a call to look for an emulated instruction.
const MAX_AFTER_CALL: usize = 12;

/// The first emulated instruction after the call at `insns[call]`, reached only by falling
/// through from the call, and where the call's result (RAX at the return) is by then. Between
/// the two only plain moves and loads are allowed: register-to-register and RSP-relative
/// stores carry the result along, anything that writes a register or a slot holding it drops
/// that copy, and a change of RSP, a memory write through another base (it could hit the
/// slot) or any control flow ends the search.
// Long (~95 lines) on purpose: one emulation loop whose arms (moves, loads, stores, RSP and
// control flow) update the same set of locations holding the result.
fn site_after_call(insns: &[Instruction], call: usize) -> Result<(usize, ResultLoc), String> {
    use iced_x86::{FlowControl, InstructionInfoFactory};
    let mut regs = vec![Register::RAX];
    let mut slots: Vec<u32> = Vec::new();
    let mut info = InstructionInfoFactory::new();
    let after = insns[call].next_ip();
    for (j, insn) in insns.iter().enumerate().skip(call + 1).take(MAX_AFTER_CALL) {
        if is_one_trap(insn) {
            let result = match (regs.first(), slots.first()) {
                (Some(r), _) => ResultLoc::Reg(*r),
                (None, Some(off)) => ResultLoc::Stack(*off),
                (None, None) => return Err("the result is overwritten before any site".into()),
            };
            // Nothing but the fall-through from the call may reach [after, site].
            let site = insn.ip();
            if let Some(b) = insns
                .iter()
                .find(|b| near_branch_target(b).is_some_and(|t| t >= after && t <= site))
            {
                return Err(format!(
                    "the branch at {:#x} lands between it and the site",
                    b.ip()
                ));
            }
            if insns
                .iter()
                .any(|b| matches!(b.flow_control(), FlowControl::IndirectBranch))
            {
                return Err("the caller has an indirect jump (a jump table)".into());
            }
            return Ok((j, result));
        }
        if insn.flow_control() != FlowControl::Next {
            return Err(format!(
                "control flow at {:#x} before any emulated instruction",
                insn.ip()
            ));
        }
        let reg_reg_move = matches!(insn.code(), Code::Mov_r64_rm64 | Code::Mov_rm64_r64)
            && insn.op0_kind() == OpKind::Register
            && insn.op1_kind() == OpKind::Register;
        let stack_store = insn.code() == Code::Mov_rm64_r64
            && insn.op0_kind() == OpKind::Memory
            && insn.memory_base() == Register::RSP
            && insn.memory_index() == Register::None
            && insn.segment_prefix() == Register::None;
        let used = info.info(insn);
        let writes_rsp = used
            .used_registers()
            .iter()
            .any(|u| u.register().full_register() == Register::RSP && writes(u.access()));
        if writes_rsp {
            return Err(format!("RSP changes at {:#x}", insn.ip()));
        }
        if reg_reg_move {
            let (dst, src) = (insn.op0_register(), insn.op1_register());
            let carried = regs.contains(&src) && RESULT_REGS.contains(&dst);
            regs.retain(|r| *r != dst);
            if carried {
                regs.push(dst);
            }
            continue;
        }
        if stack_store {
            let off = insn.memory_displacement64() as i64;
            slots.retain(|s| (i64::from(*s) - off).abs() >= 8);
            if let (true, Ok(off)) = (regs.contains(&insn.op1_register()), u32::try_from(off)) {
                slots.push(off);
            }
            continue;
        }
        for u in used.used_registers() {
            if writes(u.access()) {
                let full = u.register().full_register();
                regs.retain(|r| *r != full);
            }
        }
        for m in used.used_memory() {
            if writes(m.access()) {
                if m.base() == Register::RSP && m.index() == Register::None {
                    let (off, size) = (m.displacement() as i64, m.memory_size().size() as i64);
                    slots.retain(|s| {
                        let s = i64::from(*s);
                        off + size.max(1) <= s || s + 8 <= off
                    });
                } else {
                    slots.clear();
                }
            }
        }
        if regs.is_empty() && slots.is_empty() {
            return Err(format!("the result is overwritten at {:#x}", insn.ip()));
        }
    }
    Err("no emulated instruction soon after the call".into())
}

/// Whether an operand access may change what the operand holds.
fn writes(access: iced_x86::OpAccess) -> bool {
    use iced_x86::OpAccess;
    matches!(
        access,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

/// g.stackguard0's offset; stable since Go 1.0 (stack.lo, stack.hi come first).
const STACKGUARD0: u64 = 0x10;
/// g.stackguard1, right after it: what `//go:systemstack` functions (stopTheWorldWithSema,
/// exitsyscallTryGetP, ...) check against, the same way.
const STACKGUARD1: u64 = 0x18;

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

/// The offset of the first fs-relative memory operand: its displacement, or the constant last
/// moved into its base register.
fn tls_slot(insns: &[Instruction]) -> Option<i32> {
    let (idx, insn) = insns.iter().enumerate().find(|(_, i)| {
        (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory)
            && i.segment_prefix() == Register::FS
    })?;
    if insn.memory_index() != Register::None {
        return None;
    }
    let base = insn.memory_base();
    if base == Register::None {
        return i32::try_from(insn.memory_displacement64() as i64).ok();
    }
    let set = insns[..idx].iter().rev().find(|i| {
        i.op_count() >= 1 && i.op0_kind() == OpKind::Register && i.op0_register() == base
    })?;
    match set.code() {
        Code::Mov_r64_imm64 | Code::Mov_rm64_imm32 => i32::try_from(set.immediate(1) as i64).ok(),
        _ => None,
    }
}

/// Decodes all of `code` (loaded at `addr`) as 64-bit instructions. An undecodable byte sequence
/// means we are not looking at compiler output (or the symbol size is wrong), so no instruction
/// boundary after it can be trusted.
fn decode(code: &[u8], addr: u64) -> Result<Vec<Instruction>, String> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut out = Vec::with_capacity(code.len() / 4);
    while decoder.can_decode() {
        let insn = decoder.decode();
        if insn.is_invalid() {
            return Err(format!("undecodable instruction at {:#x}", insn.ip()));
        }
        out.push(insn);
    }
    Ok(out)
}

/// Index of the probe site in `insns`, or the offending address and why there is none.
fn choose_probe_site(insns: &[Instruction]) -> Result<usize, (u64, String)> {
    let start = insns
        .first()
        .map(|i| i.ip())
        .ok_or((0, "empty function".to_string()))?;
    let Some(idx) = stack_check_len(insns) else {
        return Ok(0);
    };
    let site = insns
        .get(idx)
        .ok_or((
            start,
            "the function ends right after its stack check".to_string(),
        ))?
        .ip();
    // A branch to an address strictly between the start and the site would run part of the
    // check again without passing through the start, or skip it, so the site could fire more or
    // fewer than once per call: refuse. Branches to the start are the normal morestack path: the
    // tail calls runtime.morestack and jumps back to the top, the check runs again with the new
    // stack and falls through to the site once. A branch to the site itself is also fine: the
    // only way to get there without passing the site first is from the morestack tail (which
    // was entered by the JBE, before the site); a loop back to it from the body is impossible
    // because the site begins the frame setup (PUSH RBP), which runs once per frame.
    for insn in insns {
        if let Some(target) = near_branch_target(insn) {
            if target > start && target < site {
                return Err((
                    insn.ip(),
                    format!(
                        "the branch at {:#x} targets {target:#x}, inside the stack check before the site {site:#x}",
                        insn.ip()
                    ),
                ));
            }
        }
    }
    Ok(idx)
}

/// Number of instructions of a recognised stack check, including its final JBE.
fn stack_check_len(insns: &[Instruction]) -> Option<usize> {
    let first = insns.first()?;
    let (reg, mut i) = if first.code() == Code::Cmp_r64_rm64 {
        (Register::RSP, 0)
    } else if first.code() == Code::Lea_r64_m
        && first.op0_register() == Register::R12
        && first.memory_base() == Register::RSP
        && first.memory_index() == Register::None
    {
        (Register::R12, 1)
    } else if is_huge_frame_check(insns) {
        (Register::R12, 3)
    } else {
        return None;
    };
    let cmp = insns.get(i)?;
    let is_guard_cmp = cmp.code() == Code::Cmp_r64_rm64
        && cmp.op0_register() == reg
        && cmp.op1_kind() == OpKind::Memory
        && cmp.memory_base() == Register::R14
        && cmp.memory_index() == Register::None
        && cmp.segment_prefix() == Register::None
        && matches!(cmp.memory_displacement64(), STACKGUARD0 | STACKGUARD1);
    i += 1;
    let jbe = insns.get(i)?;
    (is_guard_cmp && jbe.mnemonic() == Mnemonic::Jbe && is_jcc(jbe)).then_some(i + 1)
}

/// `MOV R12, RSP ; SUB R12, n ; JB tail` (frames over StackBig, where RSP-n could wrap).
fn is_huge_frame_check(insns: &[Instruction]) -> bool {
    let [mov, sub, jb, ..] = insns else {
        return false;
    };
    matches!(mov.code(), Code::Mov_r64_rm64 | Code::Mov_rm64_r64)
        && mov.op0_register() == Register::R12
        && mov.op1_register() == Register::RSP
        && matches!(sub.code(), Code::Sub_rm64_imm32 | Code::Sub_rm64_imm8)
        && sub.op0_register() == Register::R12
        && jb.mnemonic() == Mnemonic::Jb
        && is_jcc(jb)
}

/// The target of a direct near JMP/Jcc/CALL/LOOP/JRCXZ/XBEGIN (the only instructions with a
/// NearBranch64 operand). Indirect jumps (Go's jump tables) are not followed: the compiler only
/// builds them for switch cases in the body.
fn near_branch_target(insn: &Instruction) -> Option<u64> {
    (insn.op0_kind() == OpKind::NearBranch64).then(|| insn.near_branch64())
}

/// A conditional near jump (rel8 or rel32). Spelled out because iced's own helper needs its
/// `instr_info` feature, which this crate does not enable.
fn is_jcc(insn: &Instruction) -> bool {
    insn.op0_kind() == OpKind::NearBranch64
        && matches!(
            insn.mnemonic(),
            Mnemonic::Jo
                | Mnemonic::Jno
                | Mnemonic::Jb
                | Mnemonic::Jae
                | Mnemonic::Je
                | Mnemonic::Jne
                | Mnemonic::Jbe
                | Mnemonic::Ja
                | Mnemonic::Js
                | Mnemonic::Jns
                | Mnemonic::Jp
                | Mnemonic::Jnp
                | Mnemonic::Jl
                | Mnemonic::Jge
                | Mnemonic::Jle
                | Mnemonic::Jg
        )
}

fn is_ret(insn: &Instruction) -> bool {
    matches!(insn.code(), Code::Retnq | Code::Retnq_imm16)
}

/// Instructions arch/x86/kernel/uprobes.c emulates rather than single-steps: PUSH of a
/// register, direct CALL/JMP/Jcc (`branch_setup_xol_ops`) and NOP. Not RET: the kernel runs it
/// out of line and takes a second trap after it.
fn is_one_trap(insn: &Instruction) -> bool {
    matches!(
        insn.code(),
        Code::Push_r64 | Code::Call_rel32_64 | Code::Jmp_rel8_64 | Code::Jmp_rel32_64
    ) || insn.mnemonic() == Mnemonic::Nop
        || is_jcc(insn)
}

fn format_insn(insn: &Instruction) -> String {
    let mut formatter = IntelFormatter::new();
    // objdump/gdb style numbers (0x18, not 18h), so sites can be compared with their output.
    formatter.options_mut().set_hex_prefix("0x");
    formatter.options_mut().set_hex_suffix("");
    formatter.options_mut().set_uppercase_hex(false);
    formatter.options_mut().set_branch_leading_zeros(false);
    let mut out = String::new();
    formatter.format(insn, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::sample;
    use super::*;
    use gmp_trace_tests::{Variant, GO_VERSIONS};

    const BASE: u64 = 0x45_0b00;

    fn site_of(code: &[u8]) -> Result<(u64, String, bool), (u64, String)> {
        let insns = decode(code, BASE).map_err(|e| (0, e))?;
        let i = choose_probe_site(&insns)?;
        let insn = &insns[i];
        Ok((insn.ip() - BASE, format_insn(insn), is_one_trap(insn)))
    }

    /// cmp rsp,[r14+0x10] ; jbe tail ; push rbp ; mov rbp,rsp ; pop rbp ; ret ; nop*4 ;
    /// tail: call . ; jmp <back>
    fn small_frame(jmp_back_to: u8) -> Vec<u8> {
        let mut c = vec![
            0x49, 0x3b, 0x66, 0x10, 0x76, 0x0a, 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3,
        ];
        c.extend_from_slice(&[0x90; 4]);
        c.extend_from_slice(&[0xe8, 0, 0, 0, 0]);
        // jmp rel8 at 0x15, next ip 0x17.
        c.extend_from_slice(&[0xeb, jmp_back_to.wrapping_sub(0x17)]);
        c
    }

    #[test]
    fn after_small_frame_check() {
        assert_eq!(site_of(&small_frame(0)), Ok((6, "push rbp".into(), true)));
        // The tail returning to the site itself is fine too.
        assert_eq!(site_of(&small_frame(6)).map(|s| s.0), Ok(6));
        // Returning to the JBE is not: the check would be half-run.
        let e = site_of(&small_frame(4)).unwrap_err();
        assert_eq!(e.0, BASE + 0x15);
        assert!(e.1.contains("inside the stack check"), "{}", e.1);
    }

    #[test]
    fn after_big_and_huge_frame_checks() {
        // lea r12,[rsp-0xa0] ; cmp r12,[r14+0x10] ; jbe +0 ; push rbp ; ret
        let big = [
            0x4c, 0x8d, 0xa4, 0x24, 0x60, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0,
            0, 0, 0, 0x55, 0xc3,
        ];
        assert_eq!(site_of(&big), Ok((18, "push rbp".into(), true)));
        // mov r12,rsp ; sub r12,0x2000 ; jb tail ; cmp r12,[r14+0x10] ; jbe tail ; push rbp ;
        // tail: ret
        let huge = [
            0x49, 0x89, 0xe4, 0x49, 0x81, 0xec, 0, 0x20, 0, 0, 0x72, 7, 0x4d, 0x3b, 0x66, 0x10,
            0x76, 1, 0x55, 0xc3,
        ];
        assert_eq!(site_of(&huge), Ok((18, "push rbp".into(), true)));
        // Go 1.19/1.20 style frame setup after the check: SUB RSP is single-stepped.
        let old = [
            0x49, 0x3b, 0x66, 0x10, 0x76, 0, 0x48, 0x83, 0xec, 0x18, 0xc3,
        ];
        assert_eq!(site_of(&old), Ok((6, "sub rsp,0x18".into(), false)));
    }

    #[test]
    fn without_stack_check_or_with_a_different_guard() {
        // NOSPLIT: push rbp ; mov rbp,rsp ; pop rbp ; ret
        assert_eq!(
            site_of(&[0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3]),
            Ok((0, "push rbp".into(), true))
        );
        // cmp rsp,[r14+0x18] is stackguard1 (system-stack functions): a stack check too.
        let guard1 = [0x49, 0x3b, 0x66, 0x18, 0x76, 0, 0x55, 0xc3];
        assert_eq!(site_of(&guard1).map(|s| s.0), Ok(6));
        // cmp rsp,[r14+0x20] is no guard at all.
        let other = [0x49, 0x3b, 0x66, 0x20, 0x76, 0, 0x55, 0xc3];
        assert_eq!(site_of(&other).map(|s| s.0), Ok(0));
        // cmp rsp,[r14+0x10] followed by something other than JBE.
        let no_jbe = [0x49, 0x3b, 0x66, 0x10, 0x55, 0xc3];
        assert_eq!(site_of(&no_jbe).map(|s| s.0), Ok(0));
    }

    #[test]
    fn malformed_code() {
        // Ends right after the JBE.
        assert!(site_of(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0x00]).is_err());
        // Truncated instruction, an invalid opcode, nothing at all.
        assert!(site_of(&[0x49, 0x3b]).is_err());
        assert!(site_of(&[0x0f, 0x0b, 0x06]).is_err());
        assert!(site_of(&[]).is_err());
    }

    /// `site_after_call` on `code` whose first instruction is the call.
    fn after_call(code: &[u8]) -> Result<(u64, String, ResultLoc), String> {
        let insns = decode(code, BASE)?;
        let (j, loc) = site_after_call(&insns, 0)?;
        Ok((insns[j].ip() - BASE, format_insn(&insns[j]), loc))
    }

    /// call rel32 to somewhere outside the snippet.
    const CALL: [u8; 5] = [0xe8, 0, 0x10, 0, 0];

    #[test]
    fn result_followed_after_the_call() {
        let with = |rest: &[u8]| [&CALL[..], rest].concat();
        // test rax,rax ; jne +0: the Jcc, result still in RAX.
        let (off, insn, loc) = after_call(&with(&[0x48, 0x85, 0xc0, 0x75, 0x00])).unwrap();
        assert_eq!((off, loc), (8, ResultLoc::Reg(Register::RAX)), "{insn}");
        // newproc.func1: mov rdx,[r14+0x30] ; mov rbx,rax ; mov ecx,1 ; mov rax,rdx ;
        // nop dword [rax+rax] (5 bytes): the result moved to RBX.
        let moved = with(&[
            0x49, 0x8b, 0x56, 0x30, 0x48, 0x89, 0xc3, 0xb9, 1, 0, 0, 0, 0x48, 0x89, 0xd0, 0x0f,
            0x1f, 0x44, 0, 0,
        ]);
        let (off, insn, loc) = after_call(&moved).unwrap();
        assert_eq!((off, loc), (20, ResultLoc::Reg(Register::RBX)), "{insn}");
        // mov [rsp+0x28],rax ; lea rax,[rip] ; call: only the stack slot still holds it.
        let spilled = with(&[
            0x48, 0x89, 0x44, 0x24, 0x28, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0,
        ]);
        assert_eq!(after_call(&spilled).unwrap().2, ResultLoc::Stack(0x28));
        assert_eq!(ResultLoc::Stack(0x28).cookie(), (1 << 32) | 0x28);
        assert_eq!(ResultLoc::Reg(Register::RBX).cookie(), 1);
        // The slot overwritten (mov qword [rsp+0x28],0) as well: nothing left.
        let lost = with(&[
            0x48, 0x89, 0x44, 0x24, 0x28, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x48, 0xc7, 0x44, 0x24,
            0x28, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0,
        ]);
        assert!(after_call(&lost).unwrap_err().contains("overwritten"));
        // xor eax,eax right away.
        assert!(after_call(&with(&[0x31, 0xc0, 0xe8, 0, 0, 0, 0])).is_err());
    }

    #[test]
    fn no_site_when_something_else_reaches_it() {
        // test rax,rax ; jne +0 ; jmp back to the TEST (a loop into the window).
        let looped = [&CALL[..], &[0x48, 0x85, 0xc0, 0x75, 0x00, 0xeb, 0xf9]].concat();
        assert!(after_call(&looped).unwrap_err().contains("lands between"));
        // A jump table anywhere in the caller: targets unknown.
        let table = [&CALL[..], &[0x48, 0x85, 0xc0, 0x75, 0x00, 0xff, 0xe0]].concat();
        let e = after_call(&table).unwrap_err();
        assert!(e.contains("indirect"), "{e}");
        // RSP moves (sub rsp,8) before any site; a RET comes first.
        assert!(
            after_call(&[&CALL[..], &[0x48, 0x83, 0xec, 8, 0x90]].concat())
                .unwrap_err()
                .contains("RSP")
        );
        assert!(after_call(&[&CALL[..], &[0xc3, 0x90]].concat()).is_err());
        // Nothing emulated within reach.
        let far = [
            &CALL[..],
            &[0x48, 0x85, 0xc0].repeat(MAX_AFTER_CALL + 1)[..],
        ]
        .concat();
        assert!(after_call(&far).is_err());
    }

    #[test]
    fn one_trap_classes() {
        let one = |b: &[u8]| is_one_trap(&decode(b, BASE).unwrap()[0]);
        assert!(one(&[0x55])); // push rbp
        assert!(one(&[0x41, 0x54])); // push r12
        assert!(one(&[0x90])); // nop
        assert!(one(&[0x0f, 0x1f, 0x44, 0, 0])); // nop dword [rax+rax]
        assert!(one(&[0xeb, 0])); // jmp rel8
        assert!(one(&[0xe9, 0, 0, 0, 0])); // jmp rel32
        assert!(one(&[0x74, 0])); // je rel8
        assert!(one(&[0x0f, 0x86, 0, 0, 0, 0])); // jbe rel32
        assert!(one(&[0xe8, 0, 0, 0, 0])); // call rel32
        assert!(!one(&[0xc3])); // ret: run out of line
        assert!(!one(&[0xc2, 8, 0])); // ret 8
        assert!(!one(&[0x49, 0x3b, 0x66, 0x10])); // cmp
        assert!(!one(&[0x48, 0x89, 0xe5])); // mov rbp,rsp
        assert!(!one(&[0xff, 0xd0])); // call rax
        assert!(!one(&[0xf3, 0x90])); // pause
    }

    /// Functions the probes attach to, all with a stack check in the toolchains we test.
    const CHECKED: &[&str] = &[
        "runtime.schedule",
        "runtime.execute",
        "runtime.newproc",
        "runtime.newproc1",
        "runtime.goexit1",
        "runtime.acquirep",
        "runtime.releasep",
        "runtime.mstart1",
        "runtime.main",
    ];

    /// The bytes the decoder saw at `site.vaddr`, re-read through `file_offset` from disk.
    fn assert_maps_back(bin: &GoBinary, file: &[u8], site: &ProbeSite) {
        let f = bin.function(&site.func).unwrap();
        let len = (f.end() - site.vaddr) as usize;
        let via_section = bin.code_bytes(site.vaddr, len as u64).unwrap();
        let off = site.file_offset as usize;
        assert_eq!(&file[off..off + len], via_section, "{site:?}");
        let again = decode(&file[off..off + len], site.vaddr).unwrap();
        assert_eq!(format_insn(&again[0]), site.insn);
    }

    #[test]
    fn sites_in_samples() {
        for v in GO_VERSIONS {
            let path = sample(v, Variant::Default);
            let bin = GoBinary::open(&path).unwrap();
            let file = std::fs::read(&path).unwrap();
            eprintln!(
                "go{v}: {:<22} {:>10} {:>10}  {:<9} insn (entry insn)",
                "function", "vaddr", "offset", "one_trap"
            );
            let mut all = Vec::new();
            for name in CHECKED
                .iter()
                .chain(&["runtime.casgstatus", "runtime.mstart", "main.main"])
            {
                let site = bin.probe_site(name).unwrap();
                let entry = bin.entry_site(name).unwrap();
                let f = bin.function(name).unwrap();
                eprintln!(
                    "go{v}: {:<22} {:>#10x} {:>#10x}  {:<9} {} ({})",
                    name, site.vaddr, site.file_offset, site.one_trap, site.insn, entry.insn
                );
                assert_eq!(entry.vaddr, f.addr);
                assert!(site.vaddr >= f.addr && site.vaddr < f.end());
                assert_eq!(bin.func_name_for_pc(site.vaddr), Some(f.name.as_str()));
                all.push(site);
                all.push(entry);
            }
            for name in CHECKED {
                let site = bin.probe_site(name).unwrap();
                let entry = bin.entry_site(name).unwrap();
                assert!(
                    site.vaddr > entry.vaddr,
                    "{name} on {v}: no stack check found"
                );
                assert!(!entry.one_trap, "{name} on {v}: {}", entry.insn);
                // Both toolchains (1.21+) set up the frame with PUSH RBP right after the check.
                assert_eq!(site.insn, "push rbp", "{name} on {v}");
                assert!(site.one_trap, "{name} on {v}");
            }
            // NOSPLIT: probed at the entry, which is PUSH RBP.
            let cas = bin.probe_site("runtime.casgstatus").unwrap();
            assert_eq!(cas, bin.entry_site("runtime.casgstatus").unwrap());
            assert_eq!((cas.insn.as_str(), cas.one_trap), ("push rbp", true));

            let rets = bin.ret_sites("runtime.newproc1").unwrap();
            assert!(!rets.is_empty());
            for r in &rets {
                assert_eq!(file[r.file_offset as usize], 0xc3, "{r:?}");
                // The kernel single-steps RET out of line.
                assert!(!r.one_trap);
                all.push(r.clone());
            }
            for s in &all {
                assert_maps_back(&bin, &file, s);
            }

            let e = bin.probe_site("runtime.no_such_function").unwrap_err();
            assert!(matches!(e, BinaryError::MissingFunction(_)), "{e}");
            // Zero-sized marker symbols have no code to probe.
            let e = bin.probe_site("runtime.text").unwrap_err();
            assert!(matches!(e, BinaryError::Corrupt { .. }), "{e}");
        }
    }

    /// The spinning and stealing probes rely on these calls staying out of line: findRunnable
    /// -> stealWork -> runqsteal (whose RETs carry the stolen g) and schedule -> resetspinning.
    /// Checked in the code of every toolchain (the calls are what a probe on the callee sees;
    /// a symbol alone could be a leftover copy with the real call sites inlined).
    #[test]
    fn steal_and_spin_calls_out_of_line() {
        use super::super::test_support::all_versions;
        for v in all_versions() {
            let bin = GoBinary::open(&sample(v, Variant::Default)).unwrap();
            for (caller, callee) in [
                ("runtime.findRunnable", "runtime.stealWork"),
                ("runtime.stealWork", "runtime.runqsteal"),
                ("runtime.schedule", "runtime.resetspinning"),
            ] {
                let f = bin.function(caller).unwrap();
                let target = bin.function(callee).unwrap().addr;
                let code = bin.code_bytes(f.addr, f.size).unwrap();
                let calls = decode(code, f.addr)
                    .unwrap()
                    .iter()
                    .filter(|i| i.mnemonic() == Mnemonic::Call)
                    .filter(|i| i.near_branch_target() == target)
                    .count();
                assert!(calls >= 1, "go{v}: {caller} does not call {callee}");
            }
            let rets = bin.ret_sites("runtime.runqsteal").unwrap();
            // nil (nothing grabbed), the only one, and after publishing the rest.
            assert_eq!(rets.len(), 3, "go{v}: {rets:?}");
        }
    }

    /// newproc1 and runqsteal returns are watched in their callers, one trap each, instead of
    /// on their RETs (a trap and a single step): newproc's closure, which hands the new g to
    /// runqput, and stealWork, which tests the stolen g. Every site reads back from the file.
    #[test]
    fn returns_watched_in_callers() {
        use super::super::test_support::all_versions;
        for v in all_versions() {
            let path = sample(v, Variant::Default);
            let bin = GoBinary::open(&path).unwrap();
            let file = std::fs::read(&path).unwrap();
            for (func, caller) in [
                ("runtime.newproc1", "runtime.newproc.func1"),
                ("runtime.runqsteal", "runtime.stealWork"),
            ] {
                let sites = bin.return_sites(func).unwrap();
                let rets = bin.ret_sites(func).unwrap();
                assert!(
                    sites.iter().all(|s| !rets.contains(&s.site)),
                    "go{v} {func}: fell back to RETs: {sites:?}"
                );
                assert!(
                    sites.iter().any(|s| s.site.func == caller),
                    "go{v} {func}: no site in {caller}: {sites:?}"
                );
                for s in &sites {
                    assert!(s.site.one_trap, "go{v} {func}: {s:?}");
                    assert_maps_back(&bin, &file, &s.site);
                    // The site follows a call of func within a few instructions.
                    let f = bin.function(&s.site.func).unwrap();
                    let insns = decode(bin.code_bytes(f.addr, f.size).unwrap(), f.addr).unwrap();
                    let at = insns.iter().position(|i| i.ip() == s.site.vaddr).unwrap();
                    let target = bin.function(func).unwrap().addr;
                    assert!(
                        insns[at.saturating_sub(MAX_AFTER_CALL)..at]
                            .iter()
                            .any(|i| i.code() == Code::Call_rel32_64
                                && i.near_branch_target() == target),
                        "go{v} {func}: {s:?}"
                    );
                }
                if caller == "runtime.stealWork" {
                    assert_eq!(sites.len(), 1, "go{v}: {sites:?}");
                    assert_eq!(sites[0].result, ResultLoc::Reg(Register::RAX), "go{v}");
                }
            }
        }
    }

    /// PIE builds map vaddrs to file offsets through their own PT_LOADs; externally linked (cgo)
    /// builds have C start-up code before runtime.text and their text segment at another file
    /// offset. In both, every site must read back as the same instruction from the file, and the
    /// pclntab view of each function must agree with the symtab one.
    #[test]
    fn pie_and_cgo_sites_map_back() {
        use super::super::test_support::{all_versions, named};
        for v in all_versions() {
            for (name, variant) in [
                ("fanout", Variant::Pie),
                ("fanout", Variant::Cgo),
                ("cgofan", Variant::Cgo),
            ] {
                let path = named(name, v, variant);
                let bin = GoBinary::open(&path).unwrap();
                let file = std::fs::read(&path).unwrap();
                assert!(bin.offsets().is_ok());
                let pcln = bin.pclntab_functions().unwrap();
                for func in CHECKED.iter().chain(&["runtime.casgstatus"]) {
                    let site = bin.probe_site(func).unwrap();
                    let what = format!("{func} in {name} {variant:?} go{v}");
                    let old_frame_setup = v.starts_with("1.19");
                    assert!(site.one_trap || old_frame_setup, "{what}: {}", site.insn);
                    assert_maps_back(&bin, &file, &site);
                    let f = bin.function(func).unwrap();
                    assert!(
                        pcln.iter().any(|p| p.addr == f.addr),
                        "{what}: not in pclntab"
                    );
                    for r in bin.ret_sites(func).unwrap() {
                        assert_eq!(file[r.file_offset as usize], 0xc3, "{what}: {r:?}");
                    }
                }
                if name == "cgofan" {
                    let text = bin.pclntab_info().unwrap().text_base;
                    let sec = bin.code_sections.iter().map(|c| c.addr).min().unwrap();
                    assert!(
                        text > sec,
                        "go{v}: runtime.text {text:#x} is the first code"
                    );
                    assert!(
                        bin.gnu_build_id().is_some(),
                        "go{v}: external links add one"
                    );
                }
            }
        }
    }
}
