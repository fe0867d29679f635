//! Static analysis of the Go executable to trace: toolchain version, function symbols, runtime
//! struct offsets (DWARF) and where to put uprobes so they cost one trap and fire once per call.
//!
//! Everything is read from the file once in [`GoBinary::open`]; nothing here touches a running
//! process. Parsing never panics: malformed input surfaces as [`BinaryError::NotElf`] or
//! [`BinaryError::Corrupt`].

mod buildinfo;
mod dwarf;
mod placement;
mod symbols;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use object::elf;
use object::read::elf::ElfFile64;
use object::{Endianness, FileKind, Object, ObjectSection, ObjectSegment, SectionFlags};

pub use buildinfo::GoVersion;
pub use placement::ProbeSite;
pub use symbols::Function;

use symbols::SymbolTable;

/// Oldest Go release whose layout and prologues this module understands.
const MIN_MINOR: u32 = 19;
/// Newest Go release gmp-trace has been checked against.
const MAX_KNOWN_MINOR: u32 = 27;

/// Why a binary cannot be analysed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("cannot read {}: {source}; check the path and its permissions", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an ELF executable; gmp-trace traces Linux Go binaries", .0.display())]
    NotElf(PathBuf),
    #[error("{} is a {arch} binary; only x86_64 (amd64) Go binaries are supported for now", path.display())]
    WrongArch { path: PathBuf, arch: String },
    #[error("{} is not a Go program (no .go.buildinfo section); gmp-trace traces Go binaries", .0.display())]
    NotGo(PathBuf),
    #[error("{} has no symbol table (built with -ldflags=-s?): stripped binaries are not supported yet; rebuild without -s -w", .0.display())]
    Stripped(PathBuf),
    #[error("{} has no DWARF (built with -ldflags=-w?): gmp-trace reads Go runtime struct offsets from it; rebuild without -w", .0.display())]
    NoDwarf(PathBuf),
    #[error("{} was built with {version}; gmp-trace supports Go 1.19 to 1.27", path.display())]
    UnsupportedGoVersion { path: PathBuf, version: String },
    #[error("function {0} is not in the symbol table; this Go version may have renamed or inlined it, please report it with the Go version")]
    MissingFunction(String),
    #[error("the DWARF of this binary has no field {field} in {ty}; this Go version's runtime layout is not supported, please report it with the Go version")]
    MissingField { ty: String, field: String },
    #[error("no safe probe site in {func} (at {vaddr:#x}): {reason}; please report it with the Go version")]
    UnsafeProbeSite {
        func: String,
        vaddr: u64,
        reason: String,
    },
    #[error("{} looks corrupt or truncated ({what}); check that it is a complete, unmodified executable", path.display())]
    Corrupt { path: PathBuf, what: String },
}

/// A PT_LOAD segment's file-backed part.
#[derive(Clone, Copy, Debug)]
struct Segment {
    vaddr: u64,
    file_offset: u64,
    file_size: u64,
}

/// An executable section with file contents (.text, and .plt etc. in cgo binaries).
#[derive(Clone, Copy, Debug)]
struct CodeSection {
    addr: u64,
    file_offset: u64,
    size: u64,
}

/// A parsed Go ELF executable (x86_64).
#[derive(Debug)]
pub struct GoBinary {
    path: PathBuf,
    /// The whole file: DWARF and code are read from it lazily.
    data: Vec<u8>,
    version: GoVersion,
    build_info: buildinfo::BuildInfo,
    build_id: Option<String>,
    /// `None` for binaries linked with `-s`.
    symbols: Option<SymbolTable>,
    segments: Vec<Segment>,
    code_sections: Vec<CodeSection>,
    /// Fields of runtime.g, runtime.m and runtime.p, scanned together on first use.
    gmp_structs: OnceLock<Result<dwarf::Structs, dwarf::DwarfFailure>>,
    /// Other structs asked for through [`GoBinary::struct_field_offset`].
    other_structs: Mutex<HashMap<String, dwarf::Fields>>,
}

impl GoBinary {
    /// Reads and parses `path`; fails unless it is an x86_64 ELF Go program built by Go 1.19+.
    /// Stripped binaries open (their build info survives `-s -w`), but everything that needs
    /// symbols or DWARF then reports [`BinaryError::Stripped`] / [`BinaryError::NoDwarf`].
    pub fn open(path: &Path) -> Result<GoBinary, BinaryError> {
        let data = std::fs::read(path).map_err(|source| BinaryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        GoBinary::parse(path, data)
    }

    fn parse(path: &Path, data: Vec<u8>) -> Result<GoBinary, BinaryError> {
        let path = path.to_path_buf();
        if !data.starts_with(&elf::ELFMAG) {
            return Err(BinaryError::NotElf(path));
        }
        let corrupt = |what: String| BinaryError::Corrupt {
            path: path.clone(),
            what,
        };
        match FileKind::parse(data.as_slice()) {
            Ok(FileKind::Elf64) => {}
            Ok(FileKind::Elf32) => {
                return Err(BinaryError::WrongArch {
                    path,
                    arch: "32-bit".into(),
                })
            }
            Ok(other) => return Err(corrupt(format!("unexpected file kind {other:?}"))),
            Err(e) => return Err(corrupt(e.to_string())),
        }
        let file = ElfFile64::<Endianness>::parse(data.as_slice())
            .map_err(|e| corrupt(format!("ELF: {e}")))?;
        let machine = file.elf_header().e_machine.get(file.endian());
        if machine != elf::EM_X86_64 {
            return Err(BinaryError::WrongArch {
                path,
                arch: format!("{:?} (e_machine {machine})", file.architecture()),
            });
        }

        let bi_section = file
            .section_by_name(".go.buildinfo")
            .ok_or_else(|| BinaryError::NotGo(path.clone()))?;
        let bi_data = bi_section
            .data()
            .map_err(|e| corrupt(format!(".go.buildinfo: {e}")))?;
        let build_info = buildinfo::parse(bi_data).map_err(|e| match e {
            buildinfo::BuildInfoError::PointerFormat => BinaryError::UnsupportedGoVersion {
                path: path.clone(),
                version: "go1.17 or older".into(),
            },
            buildinfo::BuildInfoError::Malformed(what) => corrupt(format!(".go.buildinfo: {what}")),
        })?;
        let version = GoVersion::parse(&build_info.version)
            .ok_or_else(|| corrupt(format!("unrecognised Go version {:?}", build_info.version)))?;
        if version.major != 1 || version.minor < MIN_MINOR {
            return Err(BinaryError::UnsupportedGoVersion {
                path,
                version: version.raw,
            });
        }

        let build_id = file
            .section_by_name(".note.go.buildid")
            .and_then(|s| s.data().ok())
            .and_then(buildinfo::parse_build_id);
        let symbols = SymbolTable::from_elf(&file);
        let segments = file
            .segments()
            .map(|s| {
                let (file_offset, file_size) = s.file_range();
                Segment {
                    vaddr: s.address(),
                    file_offset,
                    file_size,
                }
            })
            .collect();
        let code_sections = file
            .sections()
            .filter(|s| match s.flags() {
                SectionFlags::Elf { sh_flags } => sh_flags & u64::from(elf::SHF_EXECINSTR) != 0,
                _ => false,
            })
            .filter_map(|s| {
                let (file_offset, size) = s.file_range()?;
                Some(CodeSection {
                    addr: s.address(),
                    file_offset,
                    size,
                })
            })
            .collect();
        drop(file);

        Ok(GoBinary {
            path,
            data,
            version,
            build_info,
            build_id,
            symbols,
            segments,
            code_sections,
            gmp_structs: OnceLock::new(),
            other_structs: Mutex::new(HashMap::new()),
        })
    }

    pub fn go_version(&self) -> &GoVersion {
        &self.version
    }

    /// False for Go releases newer than the last one gmp-trace was checked against; offsets still
    /// come from DWARF, so tracing usually works, but the caller should warn.
    pub fn is_known_version(&self) -> bool {
        self.version.major == 1 && self.version.minor <= MAX_KNOWN_MINOR
    }

    /// The main module's path, e.g. `example.com/fanout`.
    pub fn main_module(&self) -> Option<&str> {
        self.build_info.main_module()
    }

    /// The Go build id (`go tool buildid`), if the note is present.
    #[allow(dead_code)] // module API; the CLI does not call it (yet)
    pub fn build_id(&self) -> Option<&str> {
        self.build_id.as_deref()
    }

    /// True when the binary has no `.symtab`.
    #[allow(dead_code)] // module API; the CLI does not call it (yet)
    pub fn is_stripped(&self) -> bool {
        self.symbols.is_none()
    }

    /// A function by name; `runtime.mstart` also finds `runtime.mstart.abi0`.
    #[allow(dead_code)] // module API; the CLI does not call it (yet)
    pub fn function(&self, name: &str) -> Option<Function> {
        self.symbols.as_ref()?.function(name).cloned()
    }

    /// The name of the function containing `pc`.
    pub fn func_name_for_pc(&self, pc: u64) -> Option<&str> {
        self.symbols
            .as_ref()?
            .containing(pc)
            .map(|f| f.name.as_str())
    }

    /// The file offset of `vaddr` through the PT_LOAD segment mapping it (what uprobes want).
    pub fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| {
            let delta = vaddr.checked_sub(s.vaddr)?;
            (delta < s.file_size)
                .then(|| s.file_offset.checked_add(delta))
                .flatten()
        })
    }

    /// The symbol table, or `Stripped`.
    fn symbol_table(&self) -> Result<&SymbolTable, BinaryError> {
        self.symbols
            .as_ref()
            .ok_or_else(|| BinaryError::Stripped(self.path.clone()))
    }

    /// `[addr, addr+len)` of an executable section, as file bytes.
    fn code_bytes(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let sec = self.code_sections.iter().find(|s| {
            let sec_end = s.addr.checked_add(s.size);
            let end = addr.checked_add(len);
            addr >= s.addr && matches!((end, sec_end), (Some(e), Some(se)) if e <= se)
        })?;
        let start = sec.file_offset.checked_add(addr - sec.addr)?;
        let start = usize::try_from(start).ok()?;
        let len = usize::try_from(len).ok()?;
        self.data.get(start..start.checked_add(len)?)
    }

    fn corrupt(&self, what: impl Into<String>) -> BinaryError {
        BinaryError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Sample binaries for the tests of this module, built once per process.
    use std::path::PathBuf;
    use std::sync::Mutex;

    use gmp_trace_tests::{build_sample, Variant};

    /// build_sample writes to a temp name derived from the process id, so two test threads
    /// building the same sample at once would collide: serialise them.
    static BUILD_LOCK: Mutex<()> = Mutex::new(());

    pub fn sample(version: &str, variant: Variant) -> PathBuf {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        build_sample("fanout", version, variant)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::sample;
    use super::*;
    use gmp_trace_tests::{Variant, GO_VERSIONS};

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

    #[test]
    fn stripped_opens_but_cannot_place_probes() {
        for v in GO_VERSIONS {
            let bin = GoBinary::open(&sample(v, Variant::Stripped)).unwrap();
            assert_eq!(bin.go_version().raw, format!("go{v}"));
            assert!(bin.is_stripped());
            assert!(bin.function("runtime.newproc").is_none());
            assert!(bin.func_name_for_pc(0x401000).is_none());
            let e = bin.probe_site("runtime.newproc").unwrap_err();
            assert!(matches!(e, BinaryError::Stripped(_)), "{e}");
            assert!(e.to_string().contains("rebuild without -s -w"), "{e}");
            let e = bin.offsets().unwrap_err();
            assert!(matches!(e, BinaryError::NoDwarf(_)), "{e}");
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
        let dir =
            std::env::temp_dir().join(format!("gmp-trace-binary-test-{}", std::process::id()));
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
        assert!(GoBinary::parse(&head, elf_noise).is_err());
        for cut in [64, 1000, 4096, good.len() / 2, good.len() - 1] {
            let r = GoBinary::parse(&head, good[..cut].to_vec());
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
            if let Ok(bin) = GoBinary::parse(&head, mangled) {
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

        let old = GoBinary::parse(&path, with_version(&good, "go1.27.3", "go1.18.3"));
        match old {
            Err(BinaryError::UnsupportedGoVersion { version, .. }) => {
                assert_eq!(version, "go1.18.3")
            }
            other => panic!("{other:?}"),
        }

        let newer = GoBinary::parse(&path, with_version(&good, "go1.27.3", "go1.31.0")).unwrap();
        assert_eq!(
            (newer.go_version().minor, newer.go_version().patch),
            (31, 0)
        );
        assert!(!newer.is_known_version());

        let garbled = GoBinary::parse(&path, with_version(&good, "go1.27.3", "gox.27.3"));
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
        let e = GoBinary::parse(&path, pointer).unwrap_err();
        assert!(e.to_string().contains("go1.17 or older"), "{e}");
        assert!(
            e.to_string().contains("gmp-trace supports Go 1.19 to 1.27"),
            "{e}"
        );
    }
}
