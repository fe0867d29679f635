//! Placement on the sample binaries of every toolchain (default, PIE and cgo builds): each
//! site reads back as the same instruction from the file, and the calls the probes rely on
//! stay out of line.
use super::super::test_support::sample;
use super::super::x86::{decode, format_insn, MAX_AFTER_CALL};
use super::*;
use gmp_trace_tests::{Variant, GO_VERSIONS};
use iced_x86::Mnemonic;

/// Functions the probes attach to, all with a stack check in the toolchains we test (the arm64
/// placement tests use the same list).
pub(in crate::binary) const CHECKED: &[&str] = &[
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
                        .any(
                            |i| i.code() == Code::Call_rel32_64 && i.near_branch_target() == target
                        ),
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
