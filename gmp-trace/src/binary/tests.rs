//! Tests of `GoBinary::open` and the function table on real binaries and mangled copies.
use super::test_support::{all_versions, sample};
use super::*;
use gmp_trace_tests::{Variant, GO_VERSIONS};

/// Functions the probes attach to (entry, body or RET sites).
const PROBED: &[&str] = &[
    "runtime.newproc",
    "runtime.newproc1",
    "runtime.mstart1",
    "runtime.schedule",
    "runtime.execute",
    "runtime.main",
    "runtime.goexit1",
    "runtime.casgstatus",
    "runtime.acquirep",
    "runtime.releasep",
    "runtime.stealWork",
    "runtime.resetspinning",
    "runtime.runqsteal",
];

const FUNCS: &[&str] = &[
    "runtime.newproc",
    "runtime.newproc1",
    "runtime.mstart",
    "runtime.mstart1",
    "runtime.schedule",
    "runtime.execute",
    "runtime.main",
    "runtime.goexit1",
    "runtime.casgstatus",
    "runtime.acquirep",
    "runtime.releasep",
    "main.main",
];

#[test]
fn opens_samples() {
    for v in GO_VERSIONS {
        let path = sample(v, Variant::Default);
        let bin = GoBinary::open(&path).unwrap();
        let want = GoVersion::parse(&format!("go{v}")).unwrap();
        assert_eq!(bin.go_version(), &want);
        assert_eq!(bin.go_version().to_string(), format!("go{v}"));
        assert!(bin.is_known_version());
        assert_eq!(bin.main_module(), Some("example.com/fanout"));
        let id = bin.build_id().expect("Go build id");
        assert!(id.contains('/'), "build id {id}");
        assert!(!bin.is_stripped());
        assert_eq!(bin.arch(), Arch::X86_64);
        for name in FUNCS {
            let f = bin
                .function(name)
                .unwrap_or_else(|| panic!("{name} on {v}"));
            assert!(f.size > 0, "{name}");
            assert_eq!(bin.func_name_for_pc(f.addr), Some(f.name.as_str()));
            assert_eq!(bin.func_name_for_pc(f.end() - 1), Some(f.name.as_str()));
            assert!(bin.vaddr_to_file_offset(f.addr).is_some());
        }
        assert_eq!(
            bin.function("runtime.mstart").unwrap().name,
            "runtime.mstart.abi0"
        );
        assert!(bin.function("runtime.no_such_function").is_none());
        assert_eq!(bin.vaddr_to_file_offset(0), None);
        assert_eq!(bin.vaddr_to_file_offset(u64::MAX), None);
    }
}

/// Stripped builds: functions from pclntab, offsets from the table, and probe sites identical to
/// the unstripped build of the same source (the code is the same, only symbols and DWARF differ).
#[test]
fn stripped_matches_unstripped() {
    for v in all_versions() {
        let full = GoBinary::open(&sample(v, Variant::Default)).unwrap();
        let bin = GoBinary::open(&sample(v, Variant::Stripped)).unwrap();
        assert_eq!(bin.go_version().raw, format!("go{v}"));
        assert!(bin.is_stripped());
        assert!(bin.data_symbol("runtime.allgs").is_none());
        assert!(full.data_symbol("runtime.allgs").is_some());
        for name in FUNCS.iter().chain(PROBED) {
            let (f, s) = (full.function(name).unwrap(), bin.function(name).unwrap());
            assert_eq!(f.addr, s.addr, "{name} on {v}");
            // pclntab sizes include the padding up to the next function.
            assert!(
                s.size >= f.size && s.size - f.size < 64,
                "{name} on {v}: {f:?} {s:?}"
            );
            assert_eq!(bin.func_name_for_pc(s.addr + 1), Some(s.name.as_str()));
        }
        for name in PROBED {
            let (a, b) = (
                full.probe_site(name).unwrap(),
                bin.probe_site(name).unwrap(),
            );
            assert_eq!(
                (a.vaddr, a.file_offset, &a.insn, a.one_trap),
                (b.vaddr, b.file_offset, &b.insn, b.one_trap),
                "{name} on {v}"
            );
            let strip = |s: Vec<ProbeSite>| -> Vec<(u64, u64)> {
                s.into_iter().map(|s| (s.vaddr, s.file_offset)).collect()
            };
            assert_eq!(
                strip(full.ret_sites(name).unwrap()),
                strip(bin.ret_sites(name).unwrap()),
                "{name} on {v}"
            );
            assert_eq!(
                full.entry_site(name).unwrap().vaddr,
                bin.entry_site(name).unwrap().vaddr
            );
        }
        assert_eq!(bin.offsets().unwrap(), full.offsets().unwrap(), "go{v}");
        assert!(bin.function("runtime.no_such_function").is_none());
    }
}

#[test]
fn non_go_elf() {
    let e = GoBinary::open(Path::new("/bin/ls")).unwrap_err();
    assert!(matches!(e, BinaryError::NotGo(_)), "{e}");
    assert!(e.to_string().contains("not a Go program"), "{e}");
}

#[test]
fn missing_file() {
    let e = GoBinary::open(Path::new("/nonexistent/gmp-trace-binary")).unwrap_err();
    assert!(matches!(e, BinaryError::Io { .. }), "{e}");
}

/// Deterministic bytes without a rand dependency (xorshift).
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn garbage_and_truncated_files() {
    let dir = std::env::temp_dir().join(format!("gmp-trace-binary-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read(sample(GO_VERSIONS[0], Variant::Default)).unwrap();

    let random = dir.join("random");
    std::fs::write(&random, noise(4096, 0x9e3779b97f4a7c15)).unwrap();
    let e = GoBinary::open(&random).unwrap_err();
    assert!(matches!(e, BinaryError::NotElf(_)), "{e}");

    let head = dir.join("head100");
    std::fs::write(&head, &good[..100]).unwrap();
    let e = GoBinary::open(&head).unwrap_err();
    assert!(matches!(e, BinaryError::Corrupt { .. }), "{e}");

    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        GoBinary::open(&empty),
        Err(BinaryError::NotElf(_))
    ));

    // An ELF header followed by noise, and the real file cut at many lengths or with noise
    // over its section headers: any error is fine, a panic is not.
    let mut elf_noise = good[..64].to_vec();
    elf_noise.extend(noise(8192, 42));
    assert!(GoBinary::from_bytes(elf_noise, &head).is_err());
    for cut in [64, 1000, 4096, good.len() / 2, good.len() - 1] {
        let r = GoBinary::from_bytes(good[..cut].to_vec(), &head);
        if let Ok(bin) = r {
            // Section headers sit at the start in Go binaries, so a cut file may still
            // parse: whatever the accessors find, they must not panic.
            let _ = bin.offsets();
            let _ = bin.probe_site("runtime.schedule");
            let _ = bin.ret_sites("runtime.newproc1");
        }
    }
    for seed in 1..20u64 {
        let mut mangled = good.clone();
        let at = (seed as usize * 7919) % (mangled.len() - 512);
        mangled[at..at + 512].copy_from_slice(&noise(512, seed));
        if let Ok(bin) = GoBinary::from_bytes(mangled, &head) {
            let _ = bin.offsets();
            let _ = bin.probe_site("runtime.schedule");
            let _ = bin.ret_sites("runtime.newproc1");
            let _ = bin.func_name_for_pc(0x450000);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The real binary with its recorded version string overwritten in place.
fn with_version(good: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let magic = good
        .windows(14)
        .position(|w| w == b"\xff Go buildinf:")
        .unwrap();
    let at = magic
        + good[magic..]
            .windows(from.len() + 1)
            .position(|w| w[0] as usize == from.len() && &w[1..] == from.as_bytes())
            .expect("version string in .go.buildinfo");
    let mut b = good.to_vec();
    b[at + 1..at + 1 + to.len()].copy_from_slice(to.as_bytes());
    b
}

#[test]
fn version_gates() {
    let path = sample("1.27.3", Variant::Default);
    let good = std::fs::read(&path).unwrap();

    let old = GoBinary::from_bytes(with_version(&good, "go1.27.3", "go1.18.3"), &path);
    match old {
        Err(BinaryError::UnsupportedGoVersion { version, .. }) => {
            assert_eq!(version, "go1.18.3")
        }
        other => panic!("{other:?}"),
    }

    let newer = GoBinary::from_bytes(with_version(&good, "go1.27.3", "go1.31.0"), &path).unwrap();
    assert_eq!(
        (newer.go_version().minor, newer.go_version().patch),
        (31, 0)
    );
    assert!(!newer.is_known_version());

    let garbled = GoBinary::from_bytes(with_version(&good, "go1.27.3", "gox.27.3"), &path);
    assert!(
        matches!(garbled, Err(BinaryError::Corrupt { .. })),
        "{garbled:?}"
    );

    // Clearing the inline flag makes it look like the pre-1.18 pointer format.
    let magic = good
        .windows(14)
        .position(|w| w == b"\xff Go buildinf:")
        .unwrap();
    let mut pointer = good.clone();
    pointer[magic + 15] = 0;
    let e = GoBinary::from_bytes(pointer, &path).unwrap_err();
    assert!(e.to_string().contains("go1.17 or older"), "{e}");
    assert!(
        e.to_string().contains("gmp-trace supports Go 1.19 to 1.27"),
        "{e}"
    );
}

/// g's TLS slot, disassembled from rt0_go, in every toolchain and link mode: internal linking
/// (`mov [fs:-8], rcx`), PIE (`mov rbx, -8; mov [fs:rbx], rcx`), stripped, and cgo (external
/// link). linux/amd64 Go has always put g at fs-8. arm64 keeps g in R28: no slot.
#[test]
fn tls_g_slot_in_every_variant() {
    for v in all_versions() {
        for variant in [Variant::Default, Variant::Stripped, Variant::Pie] {
            let bin = GoBinary::open(&sample(v, variant)).unwrap();
            assert_eq!(bin.tls_g_offset().unwrap(), -8, "go{v} {variant:?}");
        }
        let cgo = GoBinary::open(&test_support::named("cgofan", v, Variant::Cgo)).unwrap();
        assert_eq!(cgo.tls_g_offset().unwrap(), -8, "go{v} cgo");
    }
    let arm = GoBinary::open(&test_support::arm64(GO_VERSIONS[0], Variant::Default)).unwrap();
    assert!(arm.tls_g_offset().is_err());
}
