//! The amd64 instruction rules behind probe placement (`placement.rs`), apart from the
//! `GoBinary` plumbing so that they can be checked on hand-assembled bytes: decoding a
//! function, recognising its stack check, telling what the kernel emulates (one trap) from what
//! it single-steps, and following a call's result to the first emulated instruction after it.
//!
//! Recognised stack checks (cmd/internal/obj/x86 stacksplit, ABIInternal functions where R14
//! holds g and 0x10 is g.stackguard0; `//go:systemstack` functions compare with stackguard1,
//! 0x18, instead):
//!   small frames:  CMP RSP, [R14+0x10] ; JBE tail
//!   big frames:    LEA R12, [RSP-n] ; CMP R12, [R14+0x10] ; JBE tail
//!   huge frames:   MOV R12, RSP ; SUB R12, n ; JB tail ; CMP R12, [R14+0x10] ; JBE tail
//! Anything else (NOSPLIT functions such as runtime.casgstatus, ABI0 assembly) is probed at its
//! first instruction.

use iced_x86::{
    Code, Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic, OpKind,
    Register,
};

use super::placement::RESULT_REGS;
use super::ResultLoc;

/// How far after a call to look for an emulated instruction.
pub(super) const MAX_AFTER_CALL: usize = 12;

/// The first emulated instruction after the call at `insns[call]`, reached only by falling
/// through from the call, and where the call's result (RAX at the return) is by then. Between
/// the two only plain moves and loads are allowed: register-to-register and RSP-relative
/// stores carry the result along, anything that writes a register or a slot holding it drops
/// that copy, and a change of RSP, a memory write through another base (it could hit the
/// slot) or any control flow ends the search.
// Long (~95 lines) on purpose: one emulation loop whose arms (moves, loads, stores, RSP and
// control flow) update the same set of locations holding the result.
pub(super) fn site_after_call(
    insns: &[Instruction],
    call: usize,
) -> Result<(usize, ResultLoc), String> {
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

/// The offset of the first fs-relative memory operand: its displacement, or the constant last
/// moved into its base register.
pub(super) fn tls_slot(insns: &[Instruction]) -> Option<i32> {
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
pub(super) fn decode(code: &[u8], addr: u64) -> Result<Vec<Instruction>, String> {
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
pub(super) fn choose_probe_site(insns: &[Instruction]) -> Result<usize, (u64, String)> {
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

pub(super) fn is_ret(insn: &Instruction) -> bool {
    matches!(insn.code(), Code::Retnq | Code::Retnq_imm16)
}

/// Instructions arch/x86/kernel/uprobes.c emulates rather than single-steps: PUSH of a
/// register, direct CALL/JMP/Jcc (`branch_setup_xol_ops`) and NOP. Not RET: the kernel runs it
/// out of line and takes a second trap after it.
pub(super) fn is_one_trap(insn: &Instruction) -> bool {
    matches!(
        insn.code(),
        Code::Push_r64 | Code::Call_rel32_64 | Code::Jmp_rel8_64 | Code::Jmp_rel32_64
    ) || insn.mnemonic() == Mnemonic::Nop
        || is_jcc(insn)
}

pub(super) fn format_insn(insn: &Instruction) -> String {
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
#[path = "x86_tests.rs"]
mod tests;
