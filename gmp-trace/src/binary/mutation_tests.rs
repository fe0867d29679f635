//! The short fuzz run of the test suite: deterministic mutations of real Go binaries through every
//! parser (ELF, build info, pclntab, DWARF, table, both instruction matchers). Any error is fine,
//! a panic is not. The libFuzzer targets in `fuzz/` do the long runs.
use object::{Object, ObjectSection};

use super::test_support::{arm64, sample};
use super::*;
use gmp_trace_tests::Variant;

/// xorshift64: deterministic without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// File ranges worth aiming at: headers and tables where a flip changes how parsing proceeds
/// (a flip in the middle of code or data mostly does not).
fn hot_ranges(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = vec![(0, 64)];
    let file = object::read::elf::ElfFile64::<object::Endianness>::parse(data).unwrap();
    let shoff = u64::from_le_bytes(data[0x28..0x30].try_into().unwrap()) as usize;
    out.push((shoff, shoff + 64 * 40));
    for name in [
        ".gopclntab",
        ".go.buildinfo",
        ".go.module",
        ".noptrdata",
        ".note.go.buildid",
        ".debug_info",
        ".debug_abbrev",
        ".debug_str",
        ".symtab",
    ] {
        if let Some((off, size)) = file.section_by_name(name).and_then(|s| s.file_range()) {
            let (off, size) = (off as usize, size as usize);
            out.push((off, off + size.min(4096)));
        }
    }
    out.into_iter()
        .map(|(a, b)| (a.min(data.len()), b.min(data.len())))
        .collect()
}

/// Everything a caller may do with an opened binary.
fn exercise(data: Vec<u8>) {
    let Ok(bin) = GoBinary::from_bytes(data, Path::new("mutant")) else {
        return;
    };
    let _ = bin.offsets();
    let _ = bin.runtime_layout();
    let _ = bin.check_table_against_dwarf();
    let _ = bin.pclntab_info();
    for f in ["runtime.schedule", "runtime.casgstatus", "runtime.newproc1"] {
        let _ = bin.probe_site(f);
        let _ = bin.entry_site(f);
        let _ = bin.ret_sites(f);
    }
    let _ = bin.func_name_for_pc(0x45_0000);
    let _ = bin.data_symbol("runtime.allgs");
}

fn mutate_and_run(good: &[u8], seed: u64, count: usize) -> usize {
    let hot = hot_ranges(good);
    let mut rng = Rng(seed);
    let mut runs = 0;
    // Truncations at every 4 KiB boundary.
    for cut in (0..good.len()).step_by(4096) {
        exercise(good[..cut].to_vec());
        runs += 1;
    }
    // Bit flips, byte smashes and word overwrites, half of them in the hot ranges.
    while runs < count {
        let mut m = good.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = if rng.below(2) == 0 {
                let (a, b) = hot[rng.below(hot.len())];
                a + rng.below(b.saturating_sub(a))
            } else {
                rng.below(m.len())
            };
            match rng.below(3) {
                0 => m[at] ^= 1 << rng.below(8),
                1 => m[at] = rng.next() as u8,
                _ => {
                    let end = (at + 8).min(m.len());
                    let v = [0u64, u64::MAX, 1 << 63, rng.next()][rng.below(4)].to_le_bytes();
                    m[at..end].copy_from_slice(&v[..end - at]);
                }
            }
        }
        exercise(m);
        runs += 1;
    }
    runs
}

#[test]
fn two_thousand_mutations_do_not_panic() {
    let start = std::time::Instant::now();
    let stripped = std::fs::read(sample("1.27.3", Variant::Stripped)).unwrap();
    let full = std::fs::read(sample("1.21.13", Variant::Default)).unwrap();
    let arm = std::fs::read(arm64("1.27.3", Variant::Stripped)).unwrap();
    let mut runs = mutate_and_run(&stripped, 0x9e37_79b9_7f4a_7c15, 900);
    runs += mutate_and_run(&full, 0x2545_f491_4f6c_dd1d, 700);
    runs += mutate_and_run(&arm, 0xdead_beef_cafe_f00d, 2000 - runs);
    eprintln!("{runs} mutated binaries in {:?}", start.elapsed());
    assert!(runs >= 2000);
}

/// The committed fuzz seeds are what they claim: valid tables and DWARF-carrying ELF files.
#[test]
fn committed_fuzz_seeds_are_valid() {
    let corpus = gmp_trace_tests::workspace_root()
        .join("fuzz")
        .join("corpus");
    let files = |target: &str| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(corpus.join(target))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("small-")
            })
            .collect();
        v.sort();
        v
    };
    for p in files("pclntab") {
        assert_eq!(
            fuzz::pclntab(&std::fs::read(&p).unwrap()),
            40,
            "{}",
            p.display()
        );
    }
    for p in files("buildinfo") {
        assert!(
            fuzz::buildinfo(&std::fs::read(&p).unwrap()) > 0,
            "{}",
            p.display()
        );
    }
    let dwarf = files("dwarf_offsets");
    assert!(dwarf.len() >= 2);
    for p in dwarf {
        let bin = GoBinary::open(&p).unwrap();
        let l = bin.dwarf_layout();
        assert!(l.is_ok(), "{}: {l:?}", p.display());
        assert!(
            bin.check_table_against_dwarf().unwrap().is_empty(),
            "{}",
            p.display()
        );
    }
}
