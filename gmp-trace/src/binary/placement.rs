//! Where to put a uprobe in a Go function.
//!
//! The kernel either emulates the probed instruction (PUSH reg, JMP/Jcc, CALL rel32, RET, NOP:
//! one trap, ~1 us) or single-steps a copy of it out of line (a second trap, ~12 us). A Go
//! function's first instruction is the stack-bound check (`CMP RSP, [R14+0x10]`), which must be
//! single-stepped, and it runs again whenever the stack grows (the morestack tail jumps back to
//! the function start), so an entry probe also fires twice on those calls. The instruction right
//! after the check's `JBE` is reached exactly once per call. In the 1.21.13 and 1.27.3 toolchains
//! we test it is `PUSH RBP` (emulated, one trap) in every function we probe; Go 1.19/1.20 set up
//! the frame with `SUB RSP, n` first, so there the site is still once-per-call but two traps.
//!
//! Recognised stack checks (cmd/internal/obj/x86 stacksplit, ABIInternal functions where R14
//! holds g and 0x10 is g.stackguard0):
//!   small frames:  CMP RSP, [R14+0x10] ; JBE tail
//!   big frames:    LEA R12, [RSP-n] ; CMP R12, [R14+0x10] ; JBE tail
//!   huge frames:   MOV R12, RSP ; SUB R12, n ; JB tail ; CMP R12, [R14+0x10] ; JBE tail
//! Anything else (NOSPLIT functions such as runtime.casgstatus, ABI0 assembly) is probed at its
//! first instruction.

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

/// g.stackguard0's offset; stable since Go 1.0 (stack.lo, stack.hi come first).
const STACKGUARD0: u64 = 0x10;

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
        && cmp.memory_displacement64() == STACKGUARD0;
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

/// Instructions arch/x86/kernel/uprobes.c emulates rather than single-steps.
fn is_one_trap(insn: &Instruction) -> bool {
    matches!(
        insn.code(),
        Code::Push_r64 | Code::Call_rel32_64 | Code::Jmp_rel8_64 | Code::Jmp_rel32_64
    ) || is_ret(insn)
        || insn.mnemonic() == Mnemonic::Nop
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
        // cmp rsp,[r14+0x18] is not the stack guard.
        let other = [0x49, 0x3b, 0x66, 0x18, 0x76, 0, 0x55, 0xc3];
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
        assert!(one(&[0xc3])); // ret
        assert!(one(&[0xc2, 8, 0])); // ret 8
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
                assert!(r.one_trap);
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
