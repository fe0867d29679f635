//! Where the runtime keeps its GC totals, for `top`'s "GC in the last interval" line without a
//! probe: the address of `runtime.memstats` (a data symbol: a binary linked with `-s` has none,
//! and then there is no GC line rather than a guess) and the offsets of `mstats.numgc` (completed
//! cycles, uint32) and `mstats.pause_total_ns` (all stop-the-world pauses of the GC, uint64).
//!
//! As for the other layouts: the binary's DWARF when it has it, else a table measured from the
//! DWARF of every supported release (re-checked against DWARF by the tests).

use super::table::OffsetsSource;
use super::{BinaryError, GoBinary};

/// `runtime.memstats`' address and the two GC totals' offsets in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemStatsLayout {
    /// Link-time address of runtime.memstats: add the load bias for PIE.
    pub addr: u64,
    pub offsets: MemStatsOffsets,
}

/// Offsets within runtime.mstats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemStatsOffsets {
    pub source: OffsetsSource,
    /// mstats.numgc: uint32.
    pub numgc: u32,
    /// mstats.pause_total_ns: uint64.
    pub pause_total_ns: u32,
}

/// Measured rows: minor range, numgc, pause_total_ns. What moves: 24 bytes fewer before them
/// from 1.25. The 1.20 row is 1.19's (no 1.20 toolchain to measure with, as in `table.rs`).
#[rustfmt::skip]
const ROWS: &[(u32, u32, u32, u32)] = &[
    // minors   numgc  pause_total_ns
    (19, 24,    7704,  3600),
    (25, 27,    7680,  3576),
];

/// The built-in mstats offsets of Go 1.`minor`, if the table has them.
pub fn table_memstats_offsets(minor: u32) -> Option<MemStatsOffsets> {
    ROWS.iter()
        .find(|(lo, hi, ..)| (*lo..=*hi).contains(&minor))
        .map(|&(_, _, numgc, pause_total_ns)| MemStatsOffsets {
            source: OffsetsSource::Table,
            numgc,
            pause_total_ns,
        })
}

impl GoBinary {
    /// runtime.memstats and its GC totals: `Ok(None)` when the binary has no data symbol for
    /// it (stripped), an error when the offsets are unknown.
    pub fn memstats_layout(&self) -> Result<Option<MemStatsLayout>, BinaryError> {
        let Some(sym) = self.data_symbol("runtime.memstats") else {
            return Ok(None);
        };
        let offsets = self.dwarf_or_table(self.dwarf_memstats_offsets(), table_memstats_offsets)?;
        Ok(Some(MemStatsLayout {
            addr: sym.addr,
            offsets,
        }))
    }

    /// The offsets from DWARF alone.
    pub fn dwarf_memstats_offsets(&self) -> Result<MemStatsOffsets, BinaryError> {
        let field = |f: &str| -> Result<u32, BinaryError> {
            let off = self.struct_field_offset("runtime.mstats", f)?;
            u32::try_from(off).map_err(|_| self.corrupt(format!("offset {off} of mstats.{f}")))
        };
        Ok(MemStatsOffsets {
            source: OffsetsSource::Dwarf,
            numgc: field("numgc")?,
            pause_total_ns: field("pause_total_ns")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{all_versions, sample};
    use super::*;
    use gmp_trace_tests::Variant;

    /// The table against the DWARF of a fresh build by every installed toolchain; a stripped
    /// build has no memstats symbol, so no GC line rather than a guess.
    #[test]
    fn memstats_table_matches_dwarf() {
        let mut failures = Vec::new();
        for v in all_versions() {
            let bin = GoBinary::open(&sample(v, Variant::Default)).unwrap();
            let dwarf = bin.dwarf_memstats_offsets().unwrap();
            eprintln!(
                "go{v}: DWARF numgc {} pause_total_ns {}",
                dwarf.numgc, dwarf.pause_total_ns
            );
            let minor: u32 = v.split('.').nth(1).unwrap().parse().unwrap();
            let table = table_memstats_offsets(minor).map(|t| (t.numgc, t.pause_total_ns));
            if table != Some((dwarf.numgc, dwarf.pause_total_ns)) {
                failures.push(format!("go{v}: table {table:?} != DWARF {dwarf:?}"));
            }
            let l = bin.memstats_layout().unwrap().expect("memstats symbol");
            assert_eq!(l.offsets, dwarf, "go{v}");
            assert_ne!(l.addr, 0, "go{v}");
            let stripped = GoBinary::open(&sample(v, Variant::Stripped)).unwrap();
            assert_eq!(stripped.memstats_layout().unwrap(), None, "go{v} stripped");
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_known_minor_has_a_row() {
        for minor in 19..=27 {
            let t = table_memstats_offsets(minor).unwrap();
            assert_ne!(t.numgc, t.pause_total_ns, "1.{minor}");
        }
        assert!(table_memstats_offsets(18).is_none());
        assert!(table_memstats_offsets(28).is_none());
    }
}
