//! The code-derived globals against the symbol table, on every installed toolchain and build
//! mode; the rules on hand-made code (ambiguity and control flow must fail); and the addresses
//! used on a running stripped program.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::*;
use crate::binary::test_support::{all_versions, arm64, named, sample};
use crate::binary::{table_layout, GoBinary};
use crate::process::maps::load_bias;
use crate::process::memory::Remote;
use gmp_trace_tests::Variant;

/// The five globals from `.symtab`, each looked up by name.
fn from_symbols(bin: &GoBinary) -> RuntimeGlobals {
    let sym = |n: &str| {
        bin.data_symbol(n)
            .unwrap_or_else(|| panic!("{n} in {}", bin.path().display()))
            .addr
    };
    RuntimeGlobals {
        allgs: sym("runtime.allgs"),
        allglen: sym("runtime.allglen"),
        allm: sym("runtime.allm"),
        allp: sym("runtime.allp"),
        gomaxprocs: sym("runtime.gomaxprocs"),
        source: GlobalsSource::Symbols,
    }
}

fn boot_from_symbols(bin: &GoBinary) -> (u64, u64) {
    let sym = |n: &str| bin.data_symbol(n).unwrap().addr;
    (sym("runtime.g0"), sym("runtime.m0"))
}

fn with_source(g: RuntimeGlobals, source: GlobalsSource) -> RuntimeGlobals {
    RuntimeGlobals { source, ..g }
}

#[test]
fn code_agrees_with_symbols() {
    for v in all_versions() {
        for variant in [Variant::Default, Variant::Pie, Variant::Cgo] {
            let what = format!("go{v} {variant:?}");
            let bin = GoBinary::open(&sample(v, variant)).unwrap();
            let want = from_symbols(&bin);
            let code = bin
                .runtime_globals_from_code()
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(code.source, GlobalsSource::Code, "{what}");
            assert_eq!(with_source(code, GlobalsSource::Symbols), want, "{what}");
            assert_eq!(bin.runtime_globals().unwrap(), want, "{what}");

            let boot = bin
                .boot_globals_from_code()
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!((boot.g0, boot.m0), boot_from_symbols(&bin), "{what}");
            assert_eq!(boot.source, GlobalsSource::Code);
            assert_eq!(bin.boot_globals().unwrap().source, GlobalsSource::Symbols);
            // Without the struct offsets (a release past the table, no DWARF) the rules still
            // single the globals out.
            let rt0 = bin.code_of("runtime.rt0_go", "g0").unwrap();
            assert_eq!(rt0.g0_m0(None).unwrap(), boot_from_symbols(&bin), "{what}");
            let mci = bin.code_of("runtime.mcommoninit", "allm").unwrap();
            assert_eq!(mci.allm(None).unwrap(), want.allm, "{what}");
        }
    }
}

/// `-s -w` drops `.symtab` and DWARF, which are not loaded: code and data keep their addresses,
/// so the unstripped build of the same source names what the stripped one's code must find.
#[test]
fn stripped_code_finds_the_unstripped_addresses() {
    for v in all_versions() {
        let stripped = GoBinary::open(&sample(v, Variant::Stripped)).unwrap();
        let full = GoBinary::open(&sample(v, Variant::Default)).unwrap();
        assert!(stripped.data_symbol("runtime.allgs").is_none(), "go{v}");
        let got = stripped
            .runtime_globals()
            .unwrap_or_else(|e| panic!("go{v}: {e}"));
        assert_eq!(got.source, GlobalsSource::Code, "go{v}");
        assert_eq!(
            with_source(got, GlobalsSource::Symbols),
            from_symbols(&full),
            "go{v}"
        );
        let boot = stripped.boot_globals().unwrap();
        assert_eq!(boot.source, GlobalsSource::Code);
        assert_eq!((boot.g0, boot.m0), boot_from_symbols(&full), "go{v}");
    }
}

/// The same source in another sample program: other code around the runtime, other addresses.
#[test]
fn other_programs() {
    for v in all_versions() {
        for name in ["parker", "pingpong"] {
            let bin = GoBinary::open(&named(name, v, Variant::Default)).unwrap();
            let code = bin.runtime_globals_from_code().unwrap();
            assert_eq!(
                with_source(code, GlobalsSource::Symbols),
                from_symbols(&bin),
                "{name} go{v}"
            );
        }
    }
}

#[test]
fn arm64_asks_for_symbols() {
    let bin = GoBinary::open(&arm64("1.27.3", Variant::Stripped)).unwrap();
    let e = bin.runtime_globals().unwrap_err();
    assert!(matches!(e, BinaryError::MissingGlobal { .. }), "{e}");
    assert!(e.to_string().contains("rebuild without -ldflags=-s"), "{e}");
    // With symbols, arm64 binaries need no code reading.
    let full = GoBinary::open(&arm64("1.27.3", Variant::Default)).unwrap();
    assert_eq!(full.runtime_globals().unwrap(), from_symbols(&full));
}

/// Where the hand-assembled code is loaded; its globals sit near 0x9000.
const BASE: u64 = 0x1000;

/// A tiny assembler for the few instructions the rules look at.
struct Asm(Vec<u8>);

impl Asm {
    fn here(&self) -> u64 {
        BASE + self.0.len() as u64
    }
    /// `op` bytes, then a rel32 to `target` from the end of the instruction.
    fn rip(&mut self, op: &[u8], target: u64) -> &mut Asm {
        let end = self.here() + op.len() as u64 + 4;
        self.0.extend_from_slice(op);
        self.0
            .extend_from_slice(&(target.wrapping_sub(end) as i32).to_le_bytes());
        self
    }
    fn raw(&mut self, b: &[u8]) -> &mut Asm {
        self.0.extend_from_slice(b);
        self
    }
    /// MOV rcx, [G]
    fn load_rcx(&mut self, g: u64) -> &mut Asm {
        self.rip(&[0x48, 0x8b, 0x0d], g)
    }
    /// MOV [G], rcx
    fn store_rcx(&mut self, g: u64) -> &mut Asm {
        self.rip(&[0x48, 0x89, 0x0d], g)
    }
    /// LEA rdx, [G]
    fn lea_rdx(&mut self, g: u64) -> &mut Asm {
        self.rip(&[0x48, 0x8d, 0x15], g)
    }
    /// XCHG [rdx], rcx
    fn xchg_rdx_rcx(&mut self) -> &mut Asm {
        self.raw(&[0x48, 0x87, 0x0a])
    }
    /// A slice header at `s`: its three words read, its len stored.
    fn slice(&mut self, s: u64) -> &mut Asm {
        self.load_rcx(s)
            .load_rcx(s + 8)
            .load_rcx(s + 16)
            .store_rcx(s + 8)
    }
}

fn code<'a>(bin: &'a GoBinary, a: &Asm) -> Code<'a> {
    let mut d = Decoder::with_ip(64, &a.0, BASE, DecoderOptions::NONE);
    let insns: Vec<Instruction> =
        std::iter::from_fn(|| d.can_decode().then(|| d.decode())).collect();
    assert!(insns.iter().all(|i| !i.is_invalid()));
    Code::new(bin, "test".into(), insns)
}

#[test]
fn allgadd_rule_on_hand_made_code() {
    let bin = GoBinary::open(&sample("1.27.3", Variant::Default)).unwrap();
    let (allgs, allglen, other) = (0x9000, 0x9100, 0x9200);
    // The shape: MOV rcx, [allgs+8]; LEA rdx, [allglen]; XCHG [rdx], rcx.
    let mut a = Asm(Vec::new());
    a.slice(allgs)
        .load_rcx(allgs + 8)
        .lea_rdx(allglen)
        .xchg_rdx_rcx()
        .raw(&[0xc3]);
    assert_eq!(code(&bin, &a).allglen_allgs().unwrap(), (allglen, allgs));

    // Not a slice header (cap never touched): no candidate.
    let mut a = Asm(Vec::new());
    a.load_rcx(allgs).load_rcx(allgs + 8).store_rcx(allgs + 8);
    a.load_rcx(allgs + 8).lea_rdx(allglen).xchg_rdx_rcx();
    let e = code(&bin, &a).allglen_allgs().unwrap_err();
    assert!(
        matches!(
            e,
            BinaryError::MissingGlobal {
                global: "allglen",
                ..
            }
        ),
        "{e}"
    );

    // Two slices' lens stored into two globals: ambiguous, refused.
    let mut a = Asm(Vec::new());
    a.slice(allgs).slice(other);
    a.load_rcx(allgs + 8).lea_rdx(allglen).xchg_rdx_rcx();
    a.load_rcx(other + 8).lea_rdx(allglen + 8).xchg_rdx_rcx();
    let e = code(&bin, &a).allglen_allgs().unwrap_err();
    assert!(e.to_string().contains("several"), "{e}");

    // A branch landing between the load and the XCHG: rcx may hold anything there.
    let mut a = Asm(Vec::new());
    a.slice(allgs).raw(&[0x74, 0x07]); // JE over the next load, onto the LEA
    a.load_rcx(allgs + 8).lea_rdx(allglen).xchg_rdx_rcx();
    assert!(code(&bin, &a).allglen_allgs().is_err());

    // A call between them: rcx is clobbered.
    let mut a = Asm(Vec::new());
    a.slice(allgs).load_rcx(allgs + 8);
    a.raw(&[0xe8, 0, 0, 0, 0]).lea_rdx(allglen).xchg_rdx_rcx();
    assert!(code(&bin, &a).allglen_allgs().is_err());
}

#[test]
fn gomaxprocs_and_allp_rules_on_hand_made_code() {
    let bin = GoBinary::open(&sample("1.27.3", Variant::Default)).unwrap();
    let (allp, mask, gmp) = (0x9000, 0x9100, 0x9200);
    let mut a = Asm(Vec::new());
    a.rip(&[0x8b, 0x15], gmp); // MOV edx, [gomaxprocs]
    a.slice(allp).slice(mask);
    a.load_rcx(allp).raw(&[0x48, 0x8b, 0x04, 0xf1]); // MOV rax, [rcx+rsi*8]
    a.load_rcx(mask).raw(&[0x8b, 0x04, 0xb1]); // MOV eax, [rcx+rsi*4]: a uint32 slice
    a.rip(&[0x48, 0x8d, 0x35], gmp).raw(&[0x87, 0x0e]); // LEA rsi, [gomaxprocs]; XCHG [rsi], ecx
    let c = code(&bin, &a);
    assert_eq!(c.allp().unwrap(), allp);
    assert_eq!(c.gomaxprocs().unwrap(), gmp);

    // Both slices read as pointers: which is allp is not clear, so neither is taken.
    let mut a = Asm(Vec::new());
    a.slice(allp).slice(mask);
    a.load_rcx(allp).raw(&[0x48, 0x8b, 0x04, 0xf1]);
    a.load_rcx(mask).raw(&[0x48, 0x8b, 0x04, 0xf1]);
    let e = code(&bin, &a).allp().unwrap_err();
    assert!(e.to_string().contains("ambiguous"), "{e}");

    // A 32-bit XCHG into a global never loaded as 32 bits is not gomaxprocs.
    let mut a = Asm(Vec::new());
    a.rip(&[0x48, 0x8d, 0x35], gmp).raw(&[0x87, 0x0e]);
    assert!(code(&bin, &a).gomaxprocs().is_err());
}

#[test]
fn allm_and_g0_m0_rules_on_hand_made_code() {
    let bin = GoBinary::open(&sample("1.27.3", Variant::Default)).unwrap();
    let (allm, other) = (0x9000, 0x9100);
    // MOV rcx, [allm]; MOV [rbx+0x160], rcx; LEA rdx, [allm]; XCHG [rdx], rcx.
    let mut a = Asm(Vec::new());
    a.load_rcx(allm).raw(&[0x48, 0x89, 0x8b, 0x60, 0x01, 0, 0]);
    a.lea_rdx(allm).xchg_rdx_rcx();
    let c = code(&bin, &a);
    assert_eq!(c.allm(Some(0x160)).unwrap(), allm);
    assert_eq!(c.allm(None).unwrap(), allm);
    // Stored at another offset than m.alllink: not the list head.
    assert!(c.allm(Some(0x150)).is_err());
    // A second exchanged global: which one is allm is not clear.
    a.lea_rdx(other).xchg_rdx_rcx();
    assert!(code(&bin, &a).allm(None).is_err());

    let (g0, m0) = (0x9000, 0x9400);
    // LEA rcx, [g0]; LEA rax, [m0]; MOV [rax], rcx; MOV [rcx+0x30], rax.
    let mut a = Asm(Vec::new());
    a.rip(&[0x48, 0x8d, 0x0d], g0).rip(&[0x48, 0x8d, 0x05], m0);
    a.raw(&[0x48, 0x89, 0x08, 0x48, 0x89, 0x41, 0x30]);
    let c = code(&bin, &a);
    assert_eq!(c.g0_m0(Some((0, 0x30))).unwrap(), (g0, m0));
    assert_eq!(c.g0_m0(None).unwrap(), (g0, m0));
    // g.m elsewhere than where the code stores m0: refused.
    assert!(c.g0_m0(Some((0, 0x38))).is_err());
    // Only one direction stored: no pair.
    let mut a = Asm(Vec::new());
    a.rip(&[0x48, 0x8d, 0x0d], g0).rip(&[0x48, 0x8d, 0x05], m0);
    a.raw(&[0x48, 0x89, 0x08]);
    assert!(code(&bin, &a).g0_m0(None).is_err());
}

/// A running `parker -loop`, killed on drop.
struct Running(std::process::Child);

impl Running {
    fn start(path: &Path) -> Running {
        let mut child = Command::new(path)
            .arg("-loop")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("parker pid"), "{line:?}");
        Running(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn u64_at(r: &Remote, addr: u64) -> u64 {
    u64::from_le_bytes(r.read(addr, 8).unwrap().try_into().unwrap())
}

/// The code-derived addresses on a live stripped (and a PIE) program: allglen and len(allgs)
/// agree, and allgs[0] is goroutine 1 (rt0_go's runtime.main, the first G added).
#[test]
fn live_allgs_at_code_addresses() {
    for v in all_versions() {
        for variant in [Variant::Stripped, Variant::Pie] {
            let what = format!("go{v} {variant:?}");
            let path = named("parker", v, variant);
            let bin = GoBinary::open(&path).unwrap();
            let g = bin.runtime_globals_from_code().unwrap();
            let child = Running::start(&path);
            let pid = child.0.id();
            let bias = load_bias(pid, &bin).unwrap();
            let remote = Remote::new(pid);
            // allgadd stores len and then allglen: retry until a read falls between appends.
            let (len, glen, arr) = (0..100)
                .find_map(|_| {
                    let len = u64_at(&remote, g.allgs + bias + 8);
                    let glen = u64_at(&remote, g.allglen + bias);
                    let arr = u64_at(&remote, g.allgs + bias);
                    let again = u64_at(&remote, g.allgs + bias + 8);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    (len == glen && len == again).then_some((len, glen, arr))
                })
                .unwrap_or_else(|| panic!("{what}: allglen never equals len(allgs)"));
            assert!(len >= 1 && glen >= 1, "{what}: {len} {glen}");
            let cap = u64_at(&remote, g.allgs + bias + 16);
            assert!(cap >= len, "{what}: cap {cap} < len {len}");
            let minor = bin.go_version().minor;
            let goid = table_layout(minor).unwrap().offsets.g_goid;
            let g1 = u64_at(&remote, arr);
            assert_eq!(u64_at(&remote, g1 + u64::from(goid)), 1, "{what}");
            // gomaxprocs is a small positive int32; allm heads a list of Ms.
            let procs = u64_at(&remote, g.gomaxprocs + bias) as u32 as i32;
            assert!((1..=1024).contains(&procs), "{what}: gomaxprocs {procs}");
            assert_eq!(u64_at(&remote, g.allp + bias + 8), procs as u64, "{what}");
            assert_ne!(u64_at(&remote, g.allm + bias), 0, "{what}");
            drop(child);
        }
    }
}
