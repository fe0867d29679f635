//! The function table in `.gopclntab`, for binaries without `.symtab` (`-ldflags=-s`).
//!
//! The runtime needs this table for stack unwinding, so it survives every strip. It usually has
//! a section of its own; in cgo PIE builds of Go 1.25 and older the external linker merges it
//! into `.data.rel.ro`, where it is found by its header and the moduledata pointing at it. Layout (Go 1.18+,
//! runtime/symtab.go pcHeader, read the same way as debug/gosym): magic 0xfffffff0 (1.18-1.19) or
//! 0xfffffff1 (1.20+), two zero pad bytes, minLC (1 on amd64, 4 on arm64), ptrSize, then 8 words:
//! nfunc, nfiles, textStart, funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset.
//! At pclnOffset: `nfunc` pairs {entryoff u32, funcoff u32} and a final entryoff (the end of the
//! last function), all relative to runtime.text; `funcoff` leads to a `_func` whose second word is
//! the name's offset in funcnametab.
//!
//! The base (runtime.text) is the subtle part. Go 1.26+ writes 0 in the header's textStart (it
//! needed a relocation), and in externally linked binaries runtime.text is not the `.text` start
//! (crt code comes first: 0x402400 vs 0x402300 measured). The runtime itself uses
//! `moduledata.text`, so we do too: runtime.firstmoduledata is the `.go.module` section in 1.26+
//! and sits in `.noptrdata` before; it begins with a pointer to the pcHeader and has `text` at
//! word 22 in every release 1.19-1.27.

use object::read::elf::ElfFile64;
use object::{elf, Endianness, Object, ObjectSection, RelocationFlags};

use super::symbols::{Function, SymbolTable};

const MAGIC_118: u32 = 0xffff_fff0;
const MAGIC_120: u32 = 0xffff_fff1;
const HEADER_LEN: usize = 8 + 8 * 8;
/// moduledata words: 0 pcHeader, 1-3 funcnametab, 4-6 cutab, 7-9 filetab, 10-12 pctab,
/// 13-15 pclntable, 16-18 ftab, 19 findfunctab, 20 minpc, 21 maxpc, 22 text, 23 etext.
const MD_FUNCNAMETAB: usize = 1;
const MD_PCLNTABLE: usize = 13;
const MD_TEXT: usize = 22;
/// moduledata.gofunc (the base of every function's funcdata offsets, e.g. its inline tree):
/// word 38 in Go 1.19, 40 in 1.20-1.26 (covctrs, ecovctrs came in), 43 in 1.27 (typedesclen,
/// itaboffset, itabsize came in), per each toolchain's runtime/symtab.go; the tests check it
/// against the `go:func.*` symbol on every toolchain.
const MD_GOFUNC: [(u32, usize); 3] = [(27, 43), (20, 40), (0, 38)];
const MD_WORDS: usize = 44;

/// Where the function table's base address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextBaseSource {
    /// `moduledata.text`, as the runtime uses it.
    ModuleData,
    /// The pcHeader's textStart (non-zero before Go 1.26).
    Header,
    /// The `.text` section address: right for internally linked binaries only.
    TextSection,
}

/// What the table header says, for diagnostics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PclntabInfo {
    pub magic: u32,
    pub min_lc: u8,
    pub nfunc: usize,
    /// textStart as written in the header (0 in Go 1.26+).
    pub header_text_start: u64,
    /// The runtime.text address used.
    pub text_base: u64,
    pub text_base_source: TextBaseSource,
    /// The table's address (`.gopclntab`, `.data.rel.ro.gopclntab` in older PIE builds, or
    /// inside `.data.rel.ro` in older cgo PIE builds).
    pub addr: u64,
}

/// The parsed table.
#[derive(Debug)]
pub struct Pclntab {
    pub info: PclntabInfo,
    pub table: SymbolTable,
    /// Where the subtables are, for source positions (`lines.rs`).
    pub layout: Layout,
}

/// Where the line-table parts of `.gopclntab` are: offsets into the section's bytes (which
/// start at `file_offset` in the file), as the header gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub file_offset: usize,
    pub len: usize,
    pub funcname_off: usize,
    pub cu_off: usize,
    pub filetab_off: usize,
    pub pctab_off: usize,
    pub pcln_off: usize,
    pub nfunc: usize,
    pub min_lc: u8,
    /// Go 1.20+ (magic 0xfffffff1): `_func` has startLine, and inlinedCall its 16-byte form.
    pub go120: bool,
    pub text_base: u64,
    /// moduledata.gofunc, when the moduledata was found (else the `go:func.*` symbol's
    /// address, filled in by the caller).
    pub gofunc: Option<u64>,
}

/// Little-endian readers that return `None` instead of panicking past the end.
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let bytes = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn usize_at(b: &[u8], off: usize) -> Option<usize> {
    usize::try_from(u64_at(b, off)?).ok()
}

/// The header fields we use.
struct Header {
    magic: u32,
    min_lc: u8,
    nfunc: usize,
    text_start: u64,
    funcname_off: usize,
    cu_off: usize,
    filetab_off: usize,
    pctab_off: usize,
    pcln_off: usize,
}

fn parse_header(tab: &[u8]) -> Result<Header, String> {
    if tab.len() < HEADER_LEN {
        return Err(format!(
            "table of {} bytes is shorter than its header",
            tab.len()
        ));
    }
    let magic = u32_at(tab, 0).ok_or("no magic")?;
    if magic != MAGIC_118 && magic != MAGIC_120 {
        return Err(format!("unknown magic {magic:#x}"));
    }
    let (pad1, pad2, min_lc, ptr_size) = match tab.get(4..8) {
        Some(&[a, b, c, d]) => (a, b, c, d),
        _ => return Err("truncated header".into()),
    };
    if pad1 != 0 || pad2 != 0 || !matches!(min_lc, 1 | 2 | 4) || ptr_size != 8 {
        return Err(format!(
            "unexpected header bytes pad {pad1},{pad2} minLC {min_lc} ptrSize {ptr_size}"
        ));
    }
    let word = |i: usize| usize_at(tab, 8 + 8 * i).ok_or_else(|| format!("header word {i}"));
    let h = Header {
        magic,
        min_lc,
        nfunc: word(0)?,
        text_start: u64_at(tab, 8 + 8 * 2).ok_or("textStart")?,
        funcname_off: word(3)?,
        cu_off: word(4)?,
        filetab_off: word(5)?,
        pctab_off: word(6)?,
        pcln_off: word(7)?,
    };
    // Each function costs at least 8 bytes of functab, so a count beyond that is corrupt (and
    // must not drive a huge allocation).
    if h.nfunc == 0 || h.nfunc > tab.len() / 8 {
        return Err(format!("implausible function count {}", h.nfunc));
    }
    let offs = [
        h.funcname_off,
        h.cu_off,
        h.filetab_off,
        h.pctab_off,
        h.pcln_off,
    ];
    if offs.iter().any(|&o| o >= tab.len()) {
        return Err("header offsets point outside the table".into());
    }
    Ok(h)
}

/// Reads `.gopclntab` of `file`; `code` are the executable sections as (addr, size), `go_minor`
/// the Go release (1.`go_minor`) that built it.
pub fn parse(
    file: &ElfFile64<'_, Endianness>,
    code: &[(u64, u64)],
    go_minor: u32,
) -> Result<Pclntab, String> {
    let found = locate(file, go_minor)?;
    let (tab, addr, h, md) = (found.tab, found.addr, found.header, found.md);
    let (text_base, text_base_source) = match md.map(|m| m.text) {
        Some(t) => (t, TextBaseSource::ModuleData),
        None if h.text_start != 0 => (h.text_start, TextBaseSource::Header),
        None => (
            file.section_by_name(".text")
                .map(|s| s.address())
                .ok_or("neither moduledata, textStart nor a .text section gives runtime.text")?,
            TextBaseSource::TextSection,
        ),
    };
    let in_code = |a: u64| code.iter().any(|&(s, n)| a >= s && a - s < n);
    if !in_code(text_base) {
        return Err(format!(
            "runtime.text {text_base:#x} is outside the executable sections"
        ));
    }

    let funcs = functions(tab, &h, text_base)?;
    let layout = Layout {
        file_offset: found.file_offset,
        len: tab.len(),
        funcname_off: h.funcname_off,
        cu_off: h.cu_off,
        filetab_off: h.filetab_off,
        pctab_off: h.pctab_off,
        pcln_off: h.pcln_off,
        nfunc: h.nfunc,
        min_lc: h.min_lc,
        go120: h.magic == MAGIC_120,
        text_base,
        gofunc: md.and_then(|m| m.gofunc),
    };
    Ok(Pclntab {
        layout,
        info: PclntabInfo {
            magic: h.magic,
            min_lc: h.min_lc,
            nfunc: h.nfunc,
            header_text_start: h.text_start,
            text_base,
            text_base_source,
            addr,
        },
        table: SymbolTable::new(funcs),
    })
}

/// The table as found: its bytes (to the end of the section holding it), address and file
/// offset, its header, and the moduledata pointing at it when there is one.
struct Found<'d> {
    tab: &'d [u8],
    addr: u64,
    file_offset: usize,
    header: Header,
    md: Option<ModuleData>,
}

/// Sections an external linker merges the table into when the Go linker did not give it one
/// of its own: `.data.rel.ro` in cgo PIE builds of Go 1.25 and older (the header's textStart
/// needs a relocation there), `.rodata` for good measure.
const MERGED_INTO: [&str; 2] = [".data.rel.ro", ".rodata"];

/// The table: its own section (`.gopclntab`; `.data.rel.ro.gopclntab` in internally linked
/// PIE builds before Go 1.26), else a header inside a section an external linker merged it
/// into, taken only when a moduledata points at it (a stray magic number is not enough).
fn locate<'d>(file: &ElfFile64<'d, Endianness>, go_minor: u32) -> Result<Found<'d>, String> {
    let own = file
        .section_by_name(".gopclntab")
        .or_else(|| file.section_by_name(".data.rel.ro.gopclntab"));
    if let Some(section) = own {
        let tab = section.data().map_err(|e| format!(".gopclntab: {e}"))?;
        let addr = section.address();
        let header = parse_header(tab)?;
        let md = moduledata(file, addr, &header, go_minor);
        let file_offset = section
            .file_range()
            .and_then(|(o, _)| usize::try_from(o).ok())
            .ok_or(".gopclntab has no file range")?;
        return Ok(Found {
            tab,
            addr,
            file_offset,
            header,
            md,
        });
    }
    for name in MERGED_INTO {
        let Some(section) = file.section_by_name(name) else {
            continue;
        };
        let (Ok(data), Some((start, _))) = (section.data(), section.file_range()) else {
            continue;
        };
        let Ok(start) = usize::try_from(start) else {
            continue;
        };
        // The linker aligns the table to 8 bytes; the magic's first byte rules out nearly
        // every offset before a header is parsed.
        for off in (0..data.len()).step_by(8) {
            if !matches!(u32_at(data, off), Some(MAGIC_118 | MAGIC_120)) {
                continue;
            }
            let tab = &data[off..];
            let Ok(header) = parse_header(tab) else {
                continue;
            };
            let (Some(addr), Some(file_offset)) = (
                section.address().checked_add(off as u64),
                start.checked_add(off),
            ) else {
                continue;
            };
            if let Some(md) = moduledata(file, addr, &header, go_minor) {
                return Ok(Found {
                    tab,
                    addr,
                    file_offset,
                    header,
                    md: Some(md),
                });
            }
        }
    }
    Err("no .gopclntab section, and no function table in .data.rel.ro or .rodata".into())
}

/// The functions of the table, sized by the distance to the next entry (the last one by the
/// end-of-table sentinel), at `text_base` + their entry offsets.
fn functions(tab: &[u8], h: &Header, text_base: u64) -> Result<Vec<Function>, String> {
    let names = tab.get(h.funcname_off..).unwrap_or_default();
    let pcln = tab.get(h.pcln_off..).unwrap_or_default();
    let entry = |i: usize| u32_at(pcln, i.checked_mul(8)?);
    let end_off = entry(h.nfunc).ok_or("function table runs past the section")?;
    let mut funcs = Vec::with_capacity(h.nfunc);
    let mut next = end_off;
    // Walk backwards so each size is the next function's start minus this one's.
    for i in (0..h.nfunc).rev() {
        let bad = |what: &str| format!("function {i}: {what}");
        let start = entry(i).ok_or_else(|| bad("entry past the table"))?;
        let func_off = u32_at(pcln, i * 8 + 4).ok_or_else(|| bad("funcoff past the table"))?;
        let func_off = usize::try_from(func_off).map_err(|_| bad("funcoff"))?;
        // _func.entryOff repeats the functab entry: a cheap consistency check.
        if u32_at(pcln, func_off) != Some(start) {
            return Err(bad("_func.entryOff disagrees with the functab"));
        }
        let name_off = u32_at(pcln, func_off.saturating_add(4)).ok_or_else(|| bad("nameOff"))?;
        let name = c_string(names, name_off).ok_or_else(|| bad("name outside funcnametab"))?;
        if start > next {
            return Err(bad("functab not sorted by address"));
        }
        let addr = text_base
            .checked_add(u64::from(start))
            .ok_or_else(|| bad("address overflows"))?;
        funcs.push(Function {
            name,
            addr,
            size: u64::from(next - start),
        });
        next = start;
    }
    Ok(funcs)
}

/// Fuzzing entry point: the table parser alone on `tab` as the `.gopclntab` contents.
pub fn fuzz_table(tab: &[u8]) -> usize {
    let Ok(h) = parse_header(tab) else { return 0 };
    let funcs = functions(tab, &h, 0x40_1000).unwrap_or_default();
    SymbolTable::new(funcs).functions().len()
}

/// The NUL-terminated string at `off` (a negative i32 in the _func is corrupt: None).
fn c_string(names: &[u8], off: u32) -> Option<String> {
    if off > i32::MAX as u32 {
        return None;
    }
    let s = names.get(usize::try_from(off).ok()?..)?;
    let end = s.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(s.get(..end)?).into_owned())
}

/// What we read of runtime.firstmoduledata.
#[derive(Clone, Copy)]
struct ModuleData {
    text: u64,
    gofunc: Option<u64>,
}

/// runtime.firstmoduledata, found as the one moduledata whose first word points at the table
/// and whose funcnametab and pclntable slices point where the header says. `go_minor` picks
/// where gofunc is.
fn moduledata(
    file: &ElfFile64<'_, Endianness>,
    pcln_addr: u64,
    h: &Header,
    go_minor: u32,
) -> Option<ModuleData> {
    let want_names = pcln_addr.checked_add(u64::try_from(h.funcname_off).ok()?)?;
    let want_pcln = pcln_addr.checked_add(u64::try_from(h.pcln_off).ok()?)?;
    let fits = |w: &[u8]| {
        u64_at(w, 0) == Some(pcln_addr)
            && u64_at(w, MD_FUNCNAMETAB * 8) == Some(want_names)
            && u64_at(w, MD_PCLNTABLE * 8) == Some(want_pcln)
    };
    let gofunc_word = MD_GOFUNC
        .iter()
        .find(|(since, _)| go_minor >= *since)
        .map_or(MD_GOFUNC[MD_GOFUNC.len() - 1].1, |(_, w)| *w);
    for name in [".go.module", ".noptrdata", ".data", ".data.rel.ro"] {
        let Some(sec) = file.section_by_name(name) else {
            continue;
        };
        let Ok(data) = sec.data() else { continue };
        let found = (0..data.len())
            .step_by(8)
            .filter_map(|o| data.get(o..o.checked_add(MD_WORDS * 8)?))
            .find(|w| fits(w));
        if let Some(w) = found {
            let text = u64_at(w, MD_TEXT * 8).filter(|&t| t != 0)?;
            let gofunc = u64_at(w, gofunc_word * 8).filter(|&g| g != 0);
            return Some(ModuleData { text, gofunc });
        }
    }
    relocated_moduledata_text(file, pcln_addr).map(|text| ModuleData { text, gofunc: None })
}

/// The same search for PIE binaries whose linker left RELA slots zero in the file (GNU ld on
/// arm64 does unless --apply-dynamic-relocs): each moduledata pointer is then only in a RELATIVE
/// relocation's addend.
fn relocated_moduledata_text(file: &ElfFile64<'_, Endianness>, pcln_addr: u64) -> Option<u64> {
    let relocs = file.dynamic_relocations()?;
    let mut addends = std::collections::HashMap::new();
    let mut starts = Vec::new();
    for (offset, r) in relocs {
        let relative = matches!(
            r.flags(),
            RelocationFlags::Elf { r_type } if r_type == elf::R_X86_64_RELATIVE
                || r_type == elf::R_AARCH64_RELATIVE
        );
        if !relative {
            continue;
        }
        let Ok(addend) = u64::try_from(r.addend()) else {
            continue;
        };
        if addend == pcln_addr {
            starts.push(offset);
        }
        addends.insert(offset, addend);
        // A corrupt file could list millions; the real ones have a few thousand.
        if addends.len() > 1 << 20 {
            return None;
        }
    }
    // Without the header offsets at hand, require the text word and a plausible funcnametab
    // pointer (just past the table start).
    starts.into_iter().find_map(|s| {
        let names = *addends.get(&s.checked_add(8)?)?;
        let text = *addends.get(&s.checked_add(MD_TEXT as u64 * 8)?)?;
        (names > pcln_addr && names - pcln_addr < 4096).then_some(text)
    })
}

#[cfg(test)]
#[path = "pclntab_tests.rs"]
mod tests;
