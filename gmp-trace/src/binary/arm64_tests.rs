//! arm64 matcher tests: synthetic prologues, and cross-built binaries checked against
//! `go tool objdump` of the same toolchain.
use super::super::test_support::{all_versions, arm64, sample};
use super::super::Arch;
use super::*;
use crate::binary::placement::tests::CHECKED as PROBED;
use gmp_trace_tests::{go_binary_path, Variant};

const BASE: u64 = 0x5b350;
/// `str x30, [sp, #-64]!`, what schedule() does right after its check in 1.27.
const STR_LR: u32 = 0xf81c0ffe;

fn bls(from_index: usize, to_index: usize) -> u32 {
    let delta = (to_index as i64 - from_index as i64) as u32 & 0x7ffff;
    0x5400_0000 | (delta << 5) | COND_LS
}

fn blo(from_index: usize, to_index: usize) -> u32 {
    bls(from_index, to_index) & !0xf | COND_LO
}

/// `b` from one word index to another.
fn b(from_index: usize, to_index: usize) -> u32 {
    0x1400_0000 | ((to_index as i64 - from_index as i64) as u32 & 0x03ff_ffff)
}

#[test]
fn recognised_prologues() {
    // small: ldr ; cmp sp,x16 ; b.ls tail ; str ; ret ; tail: b start
    let small = [LDR_GUARD, CMP_SP_X16, bls(2, 5), STR_LR, RET, b(5, 0)];
    assert_eq!(choose_probe_site(&small, BASE), Ok(3));
    // big: ldr ; sub x17,sp,#0x70 ; cmp x17,x16 ; b.ls
    let big = [
        LDR_GUARD,
        0xd101c3f1,
        CMP_X17_X16,
        bls(3, 6),
        STR_LR,
        RET,
        b(6, 0),
    ];
    assert_eq!(choose_probe_site(&big, BASE), Ok(4));
    // huge: ldr ; subs x17,sp,#0xf80 ; b.lo ; cmp ; b.ls
    let huge = [
        LDR_GUARD,
        0xf13e03f1,
        blo(2, 7),
        CMP_X17_X16,
        bls(4, 7),
        STR_LR,
        RET,
        b(7, 0),
    ];
    assert_eq!(choose_probe_site(&huge, BASE), Ok(5));
    // huger: ldr ; movz x27,#0xff90 ; movk x27,#1,lsl #16 ; subs x17,sp,x27 ; b.lo ; cmp ; b.ls
    let huger = [
        LDR_GUARD,
        0xd29ff21b,
        0xf2a0003b,
        SUBS_X17_SP_X27,
        blo(4, 9),
        CMP_X17_X16,
        bls(6, 9),
        STR_LR,
        RET,
        b(9, 0),
    ];
    assert_eq!(choose_probe_site(&huger, BASE), Ok(7));
    // NOSPLIT (casgstatus): no check, probed at the entry.
    assert_eq!(choose_probe_site(&[STR_LR, RET], BASE), Ok(0));
    // The check without its b.ls is not a check.
    assert_eq!(
        choose_probe_site(&[LDR_GUARD, CMP_SP_X16, STR_LR, RET], BASE),
        Ok(0)
    );
}

#[test]
fn refuses_branches_into_the_check_and_truncation() {
    let into_check = [LDR_GUARD, CMP_SP_X16, bls(2, 5), STR_LR, RET, b(5, 1)];
    let (pc, why) = choose_probe_site(&into_check, BASE).unwrap_err();
    assert_eq!(pc, BASE + 20);
    assert!(why.contains("inside the stack check"), "{why}");
    // A back edge to the site itself is the morestack path's equivalent: allowed.
    let to_site = [LDR_GUARD, CMP_SP_X16, bls(2, 5), STR_LR, RET, b(5, 3)];
    assert_eq!(choose_probe_site(&to_site, BASE), Ok(3));
    assert!(choose_probe_site(&[LDR_GUARD, CMP_SP_X16, bls(2, 0)], BASE).is_err());
    assert!(choose_probe_site(&[], BASE).is_err());
}

#[test]
fn literal_pool_words_are_not_instructions() {
    // ldr x0, =lit (pc+8) ; ret ; lit: .quad with a RET pattern in its low word
    let ldr_lit = 0x5800_0000 | (2 << 5);
    let words = [ldr_lit, RET, RET, 0];
    assert_eq!(code_mask(&words, BASE), vec![true, true, false, false]);
    assert_eq!(literal_ref(ldr_lit, BASE), Some((BASE + 8, 8)));
    // A literal behind the function start is ignored, not a panic.
    let back = 0x5800_0000 | (0x7ffff << 5);
    assert_eq!(code_mask(&[back, RET], BASE), vec![true, true]);
}

#[test]
fn formatting_and_traps() {
    assert_eq!(format_word(STR_LR, BASE), "str x30, [sp, #-64]!");
    assert_eq!(format_word(0xa9bf7bfd, BASE), "stp x29, x30, [sp, #-16]!");
    assert_eq!(
        format_word(bls(0, 5), BASE),
        format!("b.ls {:#x}", BASE + 20)
    );
    assert_eq!(format_word(RET, BASE), "ret");
    assert_eq!(format_word(0xd104c3f4, BASE), "sub x20, sp, #0x130");
    assert_eq!(format_word(0x12345678, BASE), ".inst 0x12345678");
    assert!(is_one_trap(RET, BASE) && is_one_trap(bls(0, 1), BASE) && is_one_trap(NOP, BASE));
    assert!(!is_one_trap(STR_LR, BASE) && !is_one_trap(LDR_GUARD, BASE));
    assert_eq!(branch_target(b(0, 0x100), BASE), Some(BASE + 0x400));
    assert_eq!(branch_target(b(0x100, 0), BASE + 0x400), Some(BASE));
    assert_eq!(branch_target(b(0, 0), 0), Some(0));
    assert_eq!(branch_target(b(1, 0), 0), None, "below address 0");
}

/// RET addresses per `go tool objdump -s '^NAME$'` of the same toolchain.
fn objdump_rets(version: &str, bin: &std::path::Path, name: &str) -> Vec<u64> {
    let out = std::process::Command::new(go_binary_path(version))
        .args(["tool", "objdump", "-s", &format!("^{}$", regex_quote(name))])
        .arg(bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("RET"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .collect()
}

fn regex_quote(s: &str) -> String {
    s.replace('.', "\\.")
        .replace('(', "\\(")
        .replace(')', "\\)")
        .replace('*', "\\*")
}

#[test]
fn cross_built_binaries() {
    for v in all_versions() {
        let path = arm64(v, Variant::Default);
        let file = std::fs::read(&path).unwrap();
        let bin = GoBinary::open(&path).unwrap();
        assert_eq!(bin.arch(), Arch::Aarch64);
        let amd64 = GoBinary::open(&sample(v, Variant::Default)).unwrap();
        // research: the layout is the same on both architectures.
        assert_eq!(
            bin.dwarf_layout().unwrap(),
            amd64.dwarf_layout().unwrap(),
            "go{v}"
        );
        assert!(bin.check_table_against_dwarf().unwrap().is_empty(), "go{v}");
        assert_eq!(bin.pclntab_info().unwrap().min_lc, 4);
        let stripped = GoBinary::open(&arm64(v, Variant::Stripped)).unwrap();
        for name in PROBED {
            let site = bin.probe_site(name).unwrap();
            let entry = bin.entry_site(name).unwrap();
            eprintln!(
                "go{v} arm64 {name:<18} entry {:#x} {:<20} site +{} {}",
                entry.vaddr,
                entry.insn,
                site.vaddr - entry.vaddr,
                site.insn
            );
            assert_eq!(entry.insn, "ldr x16, [x28, #16]", "{name} on {v}");
            assert!(
                site.vaddr >= entry.vaddr + 12,
                "{name} on {v}: no stack check found"
            );
            assert!(
                site.insn.starts_with("str x30, [sp, #-")
                    || site.insn.starts_with("sub x20, sp, #"),
                "{name} on {v}: {}",
                site.insn
            );
            let off = site.file_offset as usize;
            let word = u32::from_le_bytes(file[off..off + 4].try_into().unwrap());
            assert_eq!(format_word(word, site.vaddr), site.insn);
            let rets: Vec<u64> = bin
                .ret_sites(name)
                .unwrap()
                .iter()
                .map(|s| s.vaddr)
                .collect();
            assert_eq!(rets, objdump_rets(v, &path, name), "{name} on {v}");
            for r in bin.ret_sites(name).unwrap() {
                let o = r.file_offset as usize;
                assert_eq!(file[o..o + 4], RET.to_le_bytes());
            }
            // Stripped: same sites through pclntab.
            let s = stripped.probe_site(name).unwrap();
            assert_eq!(
                (s.vaddr, s.file_offset),
                (site.vaddr, site.file_offset),
                "{name} on {v}"
            );
        }
        let cas = bin.probe_site("runtime.casgstatus").unwrap();
        assert_eq!(
            cas,
            bin.entry_site("runtime.casgstatus").unwrap(),
            "NOSPLIT"
        );
        assert_eq!(stripped.offsets().unwrap(), bin.offsets().unwrap());
    }
}
