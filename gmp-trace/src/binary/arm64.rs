//! Probe placement for arm64 (aarch64) Go binaries.
//!
//! A small matcher for fixed 4-byte words instead of a decoder crate: we only need to recognise
//! Go's stack-check prologue, RET, branches (for the safety check) and literal loads (to skip
//! their data). The prologue (cmd/internal/obj/arm64 stacksplit; RT1 = R16, RT2 = R17, REGTMP =
//! R27, g = R28, g.stackguard0 at 16), measured identical in 1.19, 1.21 and 1.27:
//!   small frames:  ldr x16,[x28,#16] ; cmp sp,x16 ; b.ls tail
//!   big frames:    ldr x16,[x28,#16] ; sub x17,sp,#n ; cmp x17,x16 ; b.ls tail
//!   huge frames:   ldr x16,[x28,#16] ; subs x17,sp,#n ; b.lo tail ; cmp x17,x16 ; b.ls tail
//!   huger frames:  ldr x16,[x28,#16] ; movz x27,#n (; movk x27,...) ; subs x17,sp,x27 ;
//!                  b.lo tail ; cmp x17,x16 ; b.ls tail
//! The tail calls morestack and branches back to the function start, exactly as on amd64, so the
//! instruction after `b.ls` (the frame setup: `str x30,[sp,#-n]!`, or `sub x20,sp,#n` for frames
//! too big for a pre-indexed store) runs once per call. The kernel single-steps that store (it only simulates branches, literal loads, adr/adrp and nop), so on
//! arm64 the gain is firing once per call, not a cheaper trap.

use super::{BinaryError, GoBinary, ProbeSite};

/// `ret` (RET X30).
const RET: u32 = 0xd65f03c0;
const NOP: u32 = 0xd503201f;
/// `ldr x16, [x28, #16]`: load g.stackguard0.
const LDR_GUARD: u32 = 0xf9400b90;
/// `cmp sp, x16` (SUBS XZR, SP, X16, UXTX).
const CMP_SP_X16: u32 = 0xeb3063ff;
/// `cmp x17, x16` (SUBS XZR, X17, X16).
const CMP_X17_X16: u32 = 0xeb10023f;
/// `subs x17, sp, x27` (extended register, UXTX).
const SUBS_X17_SP_X27: u32 = 0xeb3b63f1;
const COND_LO: u32 = 3;
const COND_LS: u32 = 9;

/// `sub x17, sp, #imm{, lsl #12}`.
fn is_sub_x17_sp_imm(w: u32) -> bool {
    w & 0xff80_03ff == 0xd100_03f1
}

/// `subs x17, sp, #imm{, lsl #12}`.
fn is_subs_x17_sp_imm(w: u32) -> bool {
    w & 0xff80_03ff == 0xf100_03f1
}

/// `movz x27, #imm{, lsl #s}` or `movk x27, ...`: REGTMP being loaded with a big frame size.
fn is_mov_wide_x27(w: u32) -> bool {
    matches!(w & 0xff80_001f, 0xd280_001b | 0xf280_001b)
}

fn is_bcond(w: u32, cond: u32) -> bool {
    w & 0xff00_001f == 0x5400_0000 | cond
}

/// Sign-extends the `bits`-bit field of `w` starting at `lo`, times 4 (branch offsets count words).
fn simm(w: u32, lo: u32, bits: u32) -> i64 {
    let field = i64::from((w >> lo) & ((1u32 << bits) - 1));
    let sign = 1i64 << (bits - 1);
    ((field ^ sign) - sign) * 4
}

/// The target of a direct branch (b, bl, b.cond, cbz/cbnz, tbz/tbnz) at `pc`.
fn branch_target(w: u32, pc: u64) -> Option<u64> {
    let off = if w & 0x7c00_0000 == 0x1400_0000 {
        simm(w, 0, 26)
    } else if w & 0xff00_0010 == 0x5400_0000 || w & 0x7e00_0000 == 0x3400_0000 {
        simm(w, 5, 19)
    } else if w & 0x7e00_0000 == 0x3600_0000 {
        simm(w, 5, 14)
    } else {
        return None;
    };
    pc.checked_add_signed(off)
}

/// A load-literal's `(target, size)`: the bytes at target are data, not instructions.
fn literal_ref(w: u32, pc: u64) -> Option<(u64, u64)> {
    if w & 0x3b00_0000 != 0x1800_0000 {
        return None;
    }
    let vector = w & (1 << 26) != 0;
    let size = match (w >> 30, vector) {
        (0, _) => 4,
        (1, _) => 8,
        (2, false) => 4, // ldrsw
        (2, true) => 16,
        _ => return None, // prfm
    };
    Some((pc.checked_add_signed(simm(w, 5, 19))?, size))
}

/// Number of words of a recognised stack check, including its final `b.ls`.
fn stack_check_len(words: &[u32]) -> Option<usize> {
    if words.first() != Some(&LDR_GUARD) {
        return None;
    }
    let at = |i: usize| words.get(i).copied();
    if at(1) == Some(CMP_SP_X16) {
        return at(2).filter(|&w| is_bcond(w, COND_LS)).map(|_| 3);
    }
    let mut i = 1;
    if at(i).is_some_and(is_sub_x17_sp_imm) {
        i += 1;
    } else {
        if at(i).is_some_and(is_subs_x17_sp_imm) {
            i += 1;
        } else {
            // movz then up to three movk (a 64-bit constant), then the register subs.
            let movs = words
                .iter()
                .skip(i)
                .take(4)
                .take_while(|&&w| is_mov_wide_x27(w));
            let n = movs.count();
            if n == 0 || at(i + n) != Some(SUBS_X17_SP_X27) {
                return None;
            }
            i += n + 1;
        }
        if !at(i).is_some_and(|w| is_bcond(w, COND_LO)) {
            return None;
        }
        i += 1;
    }
    (at(i) == Some(CMP_X17_X16) && at(i + 1).is_some_and(|w| is_bcond(w, COND_LS))).then_some(i + 2)
}

/// Words of `code`, or None when it is not a whole number of words.
fn words(code: &[u8]) -> Option<Vec<u32>> {
    if !code.len().is_multiple_of(4) {
        return None;
    }
    let (whole, _) = code.as_chunks::<4>();
    Some(whole.iter().map(|c| u32::from_le_bytes(*c)).collect())
}

/// Which words are instructions: literal-pool data referenced by a load-literal is not.
fn code_mask(words: &[u32], start: u64) -> Vec<bool> {
    let mut is_code = vec![true; words.len()];
    for (i, &w) in words.iter().enumerate() {
        let pc = start.saturating_add(4 * i as u64);
        let Some((target, size)) = literal_ref(w, pc) else {
            continue;
        };
        let Some(first) = target.checked_sub(start) else {
            continue;
        };
        let first = usize::try_from(first / 4).unwrap_or(usize::MAX);
        let n = usize::try_from(size / 4).unwrap_or(0);
        for slot in is_code.iter_mut().skip(first).take(n) {
            *slot = false;
        }
    }
    is_code
}

/// The index of the probe site word, or where and why there is none.
fn choose_probe_site(words: &[u32], start: u64) -> Result<usize, (u64, String)> {
    if words.is_empty() {
        return Err((start, "empty function".into()));
    }
    let Some(idx) = stack_check_len(words) else {
        return Ok(0);
    };
    if idx >= words.len() {
        return Err((
            start,
            "the function ends right after its stack check".into(),
        ));
    }
    let site = start.saturating_add(4 * idx as u64);
    // The same rule as on amd64 (see x86.rs): a branch into the check would run the site
    // zero or two times per call; branches to the start (the morestack tail) or the site are fine.
    let mask = code_mask(words, start);
    for (i, &w) in words.iter().enumerate() {
        let pc = start.saturating_add(4 * i as u64);
        if !mask.get(i).copied().unwrap_or(false) {
            continue;
        }
        if let Some(target) = branch_target(w, pc) {
            if target > start && target < site {
                return Err((
                    pc,
                    format!(
                        "the branch at {pc:#x} targets {target:#x}, inside the stack check before the site {site:#x}"
                    ),
                ));
            }
        }
    }
    Ok(idx)
}

/// Assembler-style text for the words we recognise, `.inst 0x...` for the rest.
fn format_word(w: u32, pc: u64) -> String {
    const CONDS: [&str; 16] = [
        "eq", "ne", "hs", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al",
        "nv",
    ];
    match w {
        RET => return "ret".into(),
        NOP => return "nop".into(),
        LDR_GUARD => return "ldr x16, [x28, #16]".into(),
        CMP_SP_X16 => return "cmp sp, x16".into(),
        CMP_X17_X16 => return "cmp x17, x16".into(),
        _ => {}
    }
    if w & 0xffe0_0fff == 0xf800_0ffe {
        // str x30, [sp, #simm9]! : the frame setup right after the stack check.
        let imm = simm(w, 12, 9) / 4;
        return format!("str x30, [sp, #{imm}]!");
    }
    if w & 0xff80_03e0 == 0xd100_03e0 {
        // sub xN, sp, #imm: big frames set up the frame through R20 instead (obj7.go).
        let shift = if w & (1 << 22) != 0 { 12 } else { 0 };
        let imm = ((w >> 10) & 0xfff) << shift;
        return format!("sub x{}, sp, #{imm:#x}", w & 0x1f);
    }
    if w & 0xffc0_7fff == 0xa980_7bfd {
        let imm = simm(w, 15, 7) * 2;
        return format!("stp x29, x30, [sp, #{imm}]!");
    }
    if w & 0xff00_0010 == 0x5400_0000 {
        let cond = CONDS.get((w & 0xf) as usize).copied().unwrap_or("?");
        if let Some(t) = branch_target(w, pc) {
            return format!("b.{cond} {t:#x}");
        }
    }
    format!(".inst {w:#010x}")
}

/// What the arm64 kernel simulates instead of single-stepping (arch/arm64/kernel/probes):
/// branches, RET, NOP (a hint), and literal loads.
fn is_one_trap(w: u32, pc: u64) -> bool {
    w == RET
        || w == NOP
        || branch_target(w, pc).is_some()
        || w & 0xffff_fc1f == 0xd63f_0000 // blr
        || w & 0xffff_fc1f == 0xd61f_0000 // br
        || literal_ref(w, pc).is_some()
}

impl GoBinary {
    /// The function's name, start address and instruction words.
    fn arm64_words(&self, func: &str) -> Result<(String, u64, Vec<u32>), BinaryError> {
        let (f, code) = self.function_code(func)?;
        if !f.addr.is_multiple_of(4) {
            return Err(self.corrupt(format!("{} starts at unaligned {:#x}", f.name, f.addr)));
        }
        // pclntab sizes run to the next function; only whole words are code.
        let whole = code.get(..code.len() - code.len() % 4).unwrap_or_default();
        let w = words(whole).ok_or_else(|| self.corrupt(format!("{}: not words", f.name)))?;
        Ok((f.name, f.addr, w))
    }

    fn arm64_site(
        &self,
        func: &str,
        start: u64,
        words: &[u32],
        i: usize,
    ) -> Result<ProbeSite, BinaryError> {
        let w = *words
            .get(i)
            .ok_or_else(|| self.corrupt(format!("function {func} has no instructions")))?;
        let pc = start.saturating_add(4 * i as u64);
        self.make_site(func, pc, format_word(w, pc), is_one_trap(w, pc))
    }

    pub(super) fn arm64_probe_site(&self, func: &str) -> Result<ProbeSite, BinaryError> {
        let (name, start, words) = self.arm64_words(func)?;
        let idx = choose_probe_site(&words, start).map_err(|(vaddr, reason)| {
            BinaryError::UnsafeProbeSite {
                func: name.clone(),
                vaddr,
                reason,
            }
        })?;
        self.arm64_site(&name, start, &words, idx)
    }

    pub(super) fn arm64_entry_site(&self, func: &str) -> Result<ProbeSite, BinaryError> {
        let (name, start, words) = self.arm64_words(func)?;
        self.arm64_site(&name, start, &words, 0)
    }

    pub(super) fn arm64_ret_sites(&self, func: &str) -> Result<Vec<ProbeSite>, BinaryError> {
        let (name, start, words) = self.arm64_words(func)?;
        let mask = code_mask(&words, start);
        (0..words.len())
            .filter(|&i| words.get(i) == Some(&RET) && mask.get(i).copied().unwrap_or(false))
            .map(|i| self.arm64_site(&name, start, &words, i))
            .collect()
    }
}

#[cfg(test)]
#[path = "arm64_tests.rs"]
mod tests;
