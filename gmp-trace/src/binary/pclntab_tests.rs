//! pclntab on real binaries of every installed toolchain, and on broken headers.
use std::collections::BTreeSet;

use super::super::test_support::{all_versions, named, sample};
use super::super::GoBinary;
use super::*;
use gmp_trace_tests::Variant;

/// `(name without .abi0, addr)` of the runtime.* functions of the symtab (sized ones: the
/// runtime.text/etext markers are not functions).
fn symtab_runtime(bin: &GoBinary) -> BTreeSet<(String, u64)> {
    let symbols = bin.symbols.as_ref().expect("unstripped build");
    symbols
        .functions()
        .iter()
        .filter(|f| f.name.starts_with("runtime.") && f.size > 0)
        .map(|f| (f.name.trim_end_matches(".abi0").to_string(), f.addr))
        .collect()
}

fn pclntab_runtime(bin: &GoBinary) -> BTreeSet<(String, u64)> {
    bin.pclntab_functions()
        .unwrap()
        .iter()
        .filter(|f| f.name.starts_with("runtime."))
        .map(|f| (f.name.clone(), f.addr))
        .collect()
}

#[test]
fn same_functions_as_symtab() {
    for v in all_versions() {
        for (sample_name, variant) in [
            ("fanout", Variant::Default),
            ("fanout", Variant::Pie),
            ("fanout", Variant::Cgo),
            ("cgofan", Variant::Cgo),
        ] {
            let bin = GoBinary::open(&named(sample_name, v, variant)).unwrap();
            let info = bin.pclntab_info().unwrap();
            let text = bin.data_symbol("runtime.text");
            let text_fn = bin
                .symbols
                .as_ref()
                .unwrap()
                .function("runtime.text")
                .cloned();
            eprintln!(
                "go{v} {sample_name} {:?}: magic {:#x} minLC {} nfunc {} header textStart {:#x} \
                 base {:#x} from {:?}",
                variant,
                info.magic,
                info.min_lc,
                info.nfunc,
                info.header_text_start,
                info.text_base,
                info.text_base_source,
            );
            let runtime_text = text.map(|s| s.addr).or(text_fn.map(|f| f.addr)).unwrap();
            assert_eq!(info.text_base, runtime_text, "go{v} {variant:?}");
            assert_eq!(info.text_base_source, TextBaseSource::ModuleData);
            let want_magic = if v.starts_with("1.19") {
                MAGIC_118
            } else {
                MAGIC_120
            };
            assert_eq!(info.magic, want_magic);
            assert_eq!(info.min_lc, 1);
            let (a, b) = (symtab_runtime(&bin), pclntab_runtime(&bin));
            assert!(a.len() > 900, "go{v}: {} runtime functions", a.len());
            let only_sym: Vec<_> = a.difference(&b).take(5).collect();
            let only_pcln: Vec<_> = b.difference(&a).take(5).collect();
            assert!(
                only_sym.is_empty() && only_pcln.is_empty(),
                "go{v} {variant:?}: only in symtab {only_sym:?}, only in pclntab {only_pcln:?}"
            );
        }
    }
}

/// Stripped builds still find runtime.text through moduledata, including Go 1.26+ whose header
/// has textStart 0 and external links where runtime.text is not the .text start.
#[test]
fn stripped_base_from_moduledata() {
    for v in all_versions() {
        let full = GoBinary::open(&sample(v, Variant::Default)).unwrap();
        let bin = GoBinary::open(&sample(v, Variant::Stripped)).unwrap();
        let info = bin.pclntab_info().unwrap();
        assert_eq!(info.text_base_source, TextBaseSource::ModuleData);
        assert_eq!(info.text_base, full.pclntab_info().unwrap().text_base);
        let minor: u32 = v.split('.').nth(1).unwrap().parse().unwrap();
        assert_eq!(info.header_text_start == 0, minor >= 26, "go{v}");
        let f = bin.function("runtime.schedule").unwrap();
        assert_eq!(f.addr, full.function("runtime.schedule").unwrap().addr);
    }
}

/// cgo PIE builds (externally linked): before Go 1.26 the C linker merges the table into
/// `.data.rel.ro`, so it has no section of its own, stripped or not. Found there, it gives the
/// symtab's functions and source lines, and the stripped build the same ones.
#[test]
fn cgo_pie_table_inside_data_rel_ro() {
    for v in all_versions() {
        let minor: u32 = v.split('.').nth(1).unwrap().parse().unwrap();
        let full = GoBinary::open(&named("cgofan", v, Variant::CgoPie)).unwrap();
        let stripped = GoBinary::open(&named("cgofan", v, Variant::CgoPieStripped)).unwrap();
        assert!(stripped.symbols.is_none(), "go{v}: -s -w kept a symtab");
        let file = ElfFile64::<Endianness>::parse(&full.data[..]).unwrap();
        let own_section = file.section_by_name(".gopclntab").is_some();
        assert_eq!(own_section, minor >= 26, "go{v}: a .gopclntab section");
        let rel_ro = file.section_by_name(".data.rel.ro").unwrap();
        let info = full.pclntab_info().unwrap();
        let inside = (rel_ro.address()..rel_ro.address() + rel_ro.size()).contains(&info.addr);
        assert_eq!(inside, minor < 26, "go{v}: table at {:#x}", info.addr);
        assert_eq!(info.text_base_source, TextBaseSource::ModuleData);
        let (a, b) = (symtab_runtime(&full), pclntab_runtime(&full));
        assert!(a.len() > 900, "go{v}: {} runtime functions", a.len());
        assert_eq!(a, b, "go{v}: symtab vs the table found");
        assert_eq!(stripped.pclntab_info().unwrap(), info, "go{v}: stripped");
        assert_eq!(pclntab_runtime(&stripped), b, "go{v}: stripped");
        let f = stripped.function("runtime.schedule").unwrap();
        assert_eq!(f.addr, full.function("runtime.schedule").unwrap().addr);
        full.lines().unwrap();
        stripped.lines().unwrap();
    }
}

#[test]
fn header_checks() {
    let mut h = vec![0u8; HEADER_LEN + 64];
    h[..4].copy_from_slice(&MAGIC_120.to_le_bytes());
    h[6] = 1;
    h[7] = 8;
    h[8..16].copy_from_slice(&3u64.to_le_bytes());
    h[8 + 3 * 8..8 + 4 * 8].copy_from_slice(&72u64.to_le_bytes());
    h[8 + 7 * 8..8 + 8 * 8].copy_from_slice(&80u64.to_le_bytes());
    let ok = parse_header(&h).unwrap();
    assert_eq!((ok.nfunc, ok.funcname_off, ok.pcln_off), (3, 72, 80));
    for (at, val) in [(0, 0xfau8), (4, 1), (6, 3), (7, 4)] {
        let mut bad = h.clone();
        bad[at] = val;
        assert!(parse_header(&bad).is_err(), "byte {at} = {val}");
    }
    let mut huge = h.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(parse_header(&huge).is_err());
    let mut zero = h.clone();
    zero[8..16].copy_from_slice(&0u64.to_le_bytes());
    assert!(parse_header(&zero).is_err());
    let mut outside = h.clone();
    outside[8 + 7 * 8..8 + 8 * 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(parse_header(&outside).is_err());
    for n in 0..HEADER_LEN {
        assert!(parse_header(&h[..n]).is_err());
    }
}

#[test]
fn names() {
    assert_eq!(c_string(b"a\0bc\0", 2).as_deref(), Some("bc"));
    assert_eq!(c_string(b"a\0bc", 2), None);
    assert_eq!(c_string(b"a\0", 9), None);
    assert_eq!(c_string(b"a\0", u32::MAX), None);
}

/// A stripped binary whose table is broken: opening works, functions are missing, and probe
/// placement says why.
#[test]
fn broken_table_is_an_error() {
    let path = sample("1.27.3", Variant::Stripped);
    let mut data = std::fs::read(&path).unwrap();
    let magic = MAGIC_120.to_le_bytes();
    let at = data
        .windows(8)
        .position(|w| w[..4] == magic && w[4..8] == [0, 0, 1, 8])
        .unwrap();
    data[at] = 0;
    let bin = GoBinary::from_bytes(data, &path).unwrap();
    assert!(bin.function("runtime.schedule").is_none());
    assert!(bin.func_name_for_pc(0x401000).is_none());
    let e = bin.probe_site("runtime.schedule").unwrap_err();
    assert!(e.to_string().contains("unknown magic"), "{e}");
    assert!(e.to_string().contains("rebuild without -s -w"), "{e}");
}

/// A PIE whose moduledata words were left zero in the file (as GNU ld does on arm64 without
/// --apply-dynamic-relocs) still resolves runtime.text, through the RELATIVE relocations.
#[test]
fn moduledata_through_relocations() {
    for v in ["1.21.13", "1.27.3"] {
        let path = sample(v, Variant::Pie);
        let mut data = std::fs::read(&path).unwrap();
        let want = GoBinary::open(&path).unwrap().pclntab_info().unwrap();
        let file = ElfFile64::<Endianness>::parse(data.as_slice()).unwrap();
        let pat = want.addr.to_le_bytes();
        let at = [".go.module", ".noptrdata"]
            .iter()
            .filter_map(|n| file.section_by_name(n)?.file_range())
            .find_map(|(off, size)| {
                let (off, size) = (off as usize, size as usize);
                (0..size)
                    .step_by(8)
                    .find(|o| data[off + o..off + o + 8] == pat)
                    .map(|o| off + o)
            })
            .unwrap();
        drop(file);
        data[at..at + MD_WORDS * 8].fill(0);
        let bin = GoBinary::from_bytes(data, &path).unwrap();
        let got = bin.pclntab_info().unwrap();
        assert_eq!(got.text_base_source, TextBaseSource::ModuleData, "go{v}");
        assert_eq!(got.text_base, want.text_base, "go{v}");
    }
}
