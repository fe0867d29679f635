//! Runtime struct field offsets from the binary's DWARF.
//!
//! The layout of runtime.g / m / p changes between Go releases (m.procid moved from 72 to 64
//! between 1.21 and 1.27, g.gopc by 8), so offsets come from the binary itself when it has DWARF
//! (`table.rs` covers binaries without). Go compresses the .debug_* sections (SHF_COMPRESSED zlib, or `.zdebug_*` sections from
//! older linkers); object's `uncompressed_data` handles both. Go 1.25+ writes DWARF 5, which needs .debug_addr,
//! .debug_str_offsets, .debug_rnglists, .debug_loclists and .debug_line_str next to .debug_info:
//! gimli's `DwarfSections::load` asks for every one of them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use gimli::{AttributeValue, EndianSlice, LittleEndian, Reader as _};
use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection};

use super::{BinaryError, GoBinary};

/// Field name -> byte offset within one struct.
pub(super) type Fields = Arc<HashMap<String, u64>>;
/// Struct name -> its fields.
pub(super) type Structs = HashMap<String, Fields>;

/// A cacheable (Clone) form of the DWARF errors; turned into a [`BinaryError`] on each call.
#[derive(Clone, Debug)]
pub(super) enum DwarfFailure {
    NoDwarf,
    Corrupt(String),
}

impl From<gimli::Error> for DwarfFailure {
    fn from(e: gimli::Error) -> DwarfFailure {
        DwarfFailure::Corrupt(format!("DWARF: {e}"))
    }
}

const GMP: [&str; 3] = ["runtime.g", "runtime.m", "runtime.p"];

type R<'a> = EndianSlice<'a, LittleEndian>;

impl GoBinary {
    /// Byte offset of `field` in the struct type named `ty` (e.g. `runtime.g`, `parentGoid`).
    pub fn struct_field_offset(&self, ty: &str, field: &str) -> Result<u64, BinaryError> {
        let fields = self.struct_fields(ty)?;
        fields
            .get(field)
            .copied()
            .ok_or_else(|| BinaryError::MissingField {
                ty: ty.to_string(),
                field: field.to_string(),
            })
    }

    fn struct_fields(&self, ty: &str) -> Result<Fields, BinaryError> {
        let missing = || BinaryError::MissingField {
            ty: ty.to_string(),
            field: "(the type itself)".to_string(),
        };
        if GMP.contains(&ty) {
            let structs = self
                .gmp_structs
                .get_or_init(|| scan(&self.data, &GMP))
                .as_ref()
                .map_err(|f| self.dwarf_error(f.clone()))?;
            return structs.get(ty).cloned().ok_or_else(missing);
        }
        let cached = self
            .other_structs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(ty)
            .cloned();
        if let Some(f) = cached {
            return Ok(f);
        }
        // Not cached when absent: asking again for a type that does not exist is a caller bug,
        // not a hot path.
        let mut found = scan(&self.data, &[ty]).map_err(|f| self.dwarf_error(f))?;
        let fields = found.remove(ty).ok_or_else(missing)?;
        self.other_structs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ty.to_string(), fields.clone());
        Ok(fields)
    }

    fn dwarf_error(&self, f: DwarfFailure) -> BinaryError {
        match f {
            DwarfFailure::NoDwarf => BinaryError::NoDwarf(self.path.clone()),
            DwarfFailure::Corrupt(what) => self.corrupt(what),
        }
    }
}

/// Finds the struct types named in `wanted` and returns their members' offsets. Stops at the end
/// of the first unit after which all are found: Go puts the runtime's types early, so this reads
/// a small part of .debug_info.
fn scan(data: &[u8], wanted: &[&str]) -> Result<Structs, DwarfFailure> {
    let file = ElfFile64::<Endianness>::parse(data)
        .map_err(|e| DwarfFailure::Corrupt(format!("ELF: {e}")))?;
    let info_present = file
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0);
    if !info_present {
        return Err(DwarfFailure::NoDwarf);
    }
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, DwarfFailure> {
        match file.section_by_name(id.name()) {
            Some(s) => s
                .uncompressed_data()
                .map_err(|e| DwarfFailure::Corrupt(format!("{}: {e}", id.name()))),
            None => Ok(Cow::Borrowed(&[][..])),
        }
    })?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));

    let mut found = Structs::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        scan_unit(&dwarf, &unit, wanted, &mut found)?;
        if wanted.iter().all(|w| found.contains_key(*w)) {
            break;
        }
    }
    Ok(found)
}

/// A struct whose members are being collected.
struct Open {
    name: String,
    depth: isize,
    fields: HashMap<String, u64>,
}

fn scan_unit(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    wanted: &[&str],
    found: &mut Structs,
) -> Result<(), DwarfFailure> {
    let mut cursor = unit.entries();
    let mut depth: isize = 0;
    let mut open: Option<Open> = None;
    while let Some((delta, entry)) = cursor.next_dfs()? {
        depth = depth.saturating_add(delta);
        if let Some(o) = open.as_mut() {
            if depth == o.depth.saturating_add(1) {
                if entry.tag() == gimli::DW_TAG_member {
                    if let Some((name, off)) = member(dwarf, unit, entry)? {
                        o.fields.insert(name, off);
                    }
                }
                continue;
            }
            if depth > o.depth {
                continue;
            }
            // Back at or above the struct's level: it is complete.
            if let Some(o) = open.take() {
                found.insert(o.name, Arc::new(o.fields));
            }
        }
        if entry.tag() != gimli::DW_TAG_structure_type {
            continue;
        }
        let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
            continue;
        };
        let name = dwarf.attr_string(unit, name)?;
        let name = name.slice();
        let Some(w) = wanted.iter().find(|w| w.as_bytes() == name) else {
            continue;
        };
        let declaration = matches!(
            entry.attr_value(gimli::DW_AT_declaration)?,
            Some(AttributeValue::Flag(true))
        );
        if found.contains_key(*w) || declaration {
            continue;
        }
        let o = Open {
            name: w.to_string(),
            depth,
            fields: HashMap::new(),
        };
        if entry.has_children() {
            open = Some(o);
        } else {
            found.insert(o.name, Arc::new(o.fields));
        }
    }
    if let Some(o) = open.take() {
        found.insert(o.name, Arc::new(o.fields));
    }
    Ok(())
}

/// A member's name and byte offset; `None` for members without a constant offset (bitfields and
/// the like, which Go never emits).
fn member(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    entry: &gimli::DebuggingInformationEntry<'_, '_, R<'_>>,
) -> Result<Option<(String, u64)>, DwarfFailure> {
    let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
        return Ok(None);
    };
    let name = String::from_utf8_lossy(dwarf.attr_string(unit, name)?.slice()).into_owned();
    let off = match entry.attr_value(gimli::DW_AT_data_member_location)? {
        Some(AttributeValue::Exprloc(expr)) => plus_uconst(expr.0),
        Some(v) => v.udata_value(),
        None => None,
    };
    Ok(off.map(|o| (name, o)))
}

/// DWARF 2 style locations: a lone `DW_OP_plus_uconst n`.
fn plus_uconst(mut expr: R<'_>) -> Option<u64> {
    let op = expr.read_u8().ok()?;
    if op != gimli::DW_OP_plus_uconst.0 {
        return None;
    }
    let n = expr.read_uleb128().ok()?;
    expr.is_empty().then_some(n)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::sample;
    use super::*;
    use gmp_trace_common::Offsets;
    use gmp_trace_tests::{Variant, GO_VERSIONS};

    /// The measured table the probes were written against.
    fn expected(version: &str) -> Offsets {
        let (gopc, startpc, procid, curg, runqtail) = match version {
            "1.21.13" => (280, 296, 72, 192, 404),
            "1.27.3" => (288, 304, 64, 184, 404),
            other => panic!("no expected offsets for Go {other}: add them to this table"),
        };
        Offsets {
            g_goid: 152,
            g_atomicstatus: 144,
            g_m: 48,
            g_waitreason: 176,
            g_startpc: startpc,
            g_gopc: gopc,
            m_procid: procid,
            m_curg: curg,
            m_p: 208,
            m_id: 232,
            p_id: 0,
            m_spinning: 276,
            p_runqtail: runqtail,
            ..Offsets::default()
        }
    }

    #[test]
    fn offsets_match_table() {
        for v in GO_VERSIONS {
            let bin = GoBinary::open(&sample(v, Variant::Default)).unwrap();
            let t = std::time::Instant::now();
            let got = bin.offsets().unwrap();
            eprintln!("go{v}: offsets in {:?}: {got:?}", t.elapsed());
            assert_eq!(got, expected(v), "Go {v}");
            // Cached: the second call does not rescan.
            assert_eq!(bin.offsets().unwrap(), got);
        }
    }

    #[test]
    fn other_fields_and_missing_ones() {
        for v in GO_VERSIONS {
            let bin = GoBinary::open(&sample(v, Variant::Default)).unwrap();
            let parent = bin.struct_field_offset("runtime.g", "parentGoid").unwrap();
            assert!(parent > 0 && parent < 512, "g.parentGoid at {parent}");
            let status = bin.struct_field_offset("runtime.p", "status").unwrap();
            assert!(status > 0 && status < 64, "p.status at {status}");
            // A type outside the three the probes need goes through the second cache.
            let sched = bin.struct_field_offset("runtime.schedt", "lock").unwrap();
            assert!(sched < 4096);
            assert_eq!(
                bin.struct_field_offset("runtime.schedt", "lock").unwrap(),
                sched
            );
            let e = bin
                .struct_field_offset("runtime.g", "nosuchfield")
                .unwrap_err();
            assert!(
                matches!(&e, BinaryError::MissingField { ty, field } if ty == "runtime.g" && field == "nosuchfield"),
                "{e}"
            );
            let e = bin
                .struct_field_offset("runtime.nosuchtype", "x")
                .unwrap_err();
            assert!(matches!(e, BinaryError::MissingField { .. }), "{e}");
        }
    }

    #[test]
    fn member_location_forms() {
        let e = |b: &'static [u8]| plus_uconst(EndianSlice::new(b, LittleEndian));
        assert_eq!(e(&[0x23, 0x98, 0x01]), Some(152));
        assert_eq!(e(&[0x23, 0x98, 0x01, 0x06]), None);
        assert_eq!(e(&[0x23]), None);
        assert_eq!(e(&[0x10, 0x01]), None);
        assert_eq!(e(&[]), None);
    }
}
