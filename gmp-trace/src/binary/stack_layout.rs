//! The runtime fields a goroutine dump reads beyond what the probes need: where a goroutine's
//! stack is (g.stack), where it stopped (g.sched, or g.syscallsp/pc/bp inside a system call),
//! since when it waits, whether it is locked to its thread, and a P's M and run queue.
//!
//! As for [`RuntimeLayout`](super::RuntimeLayout): the binary's DWARF when it has it, else a table
//! measured from the DWARF of every supported release (re-checked against DWARF by the tests).

use super::table::OffsetsSource;
use super::{BinaryError, GoBinary};

/// Offsets within runtime.g (nested fields already added up) and runtime.p.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackLayout {
    pub source: OffsetsSource,
    /// g.stack.lo and g.stack.hi: the goroutine's stack is [lo, hi).
    pub g_stack_lo: u32,
    pub g_stack_hi: u32,
    /// g.sched.sp / pc / bp: the context saved when the goroutine last stopped running.
    pub g_sched_sp: u32,
    pub g_sched_pc: u32,
    pub g_sched_bp: u32,
    /// g.syscallsp / syscallpc: where a goroutine in a system call entered it.
    pub g_syscallsp: u32,
    pub g_syscallpc: u32,
    /// g.syscallbp (Go 1.23+).
    pub g_syscallbp: Option<u32>,
    /// g.waitsince (nanotime when the wait began; set lazily by the runtime).
    pub g_waitsince: u32,
    /// g.lockedm (non-zero: LockOSThread).
    pub g_lockedm: u32,
    /// p.m and p.runqhead.
    pub p_m: u32,
    pub p_runqhead: u32,
}

/// `(struct, field)` paths in [`StackLayout`] field order; a nested field is the sum of the
/// offsets along its path.
const PATHS: [&[(&str, &str)]; 12] = [
    &[("runtime.g", "stack"), ("runtime.stack", "lo")],
    &[("runtime.g", "stack"), ("runtime.stack", "hi")],
    &[("runtime.g", "sched"), ("runtime.gobuf", "sp")],
    &[("runtime.g", "sched"), ("runtime.gobuf", "pc")],
    &[("runtime.g", "sched"), ("runtime.gobuf", "bp")],
    &[("runtime.g", "syscallsp")],
    &[("runtime.g", "syscallpc")],
    &[("runtime.g", "syscallbp")],
    &[("runtime.g", "waitsince")],
    &[("runtime.g", "lockedm")],
    &[("runtime.p", "m")],
    &[("runtime.p", "runqhead")],
];

/// The index of g.syscallbp in [`PATHS`]: the one field older releases lack.
const SYSCALLBP: usize = 7;

/// Measured rows: minor range and values in [`PATHS`] order, from each release's DWARF. What
/// moves: g.lockedm (232 in 1.19, 208 from 1.21, 216 in 1.23-1.24 with g.syscallbp's word),
/// g.waitsince (+8 in 1.23-1.24), gobuf.bp (-8 from 1.25: gobuf.ret went), p.m (56, then 48 from
/// 1.23), p.runqhead (392 in 1.23-1.25). The 1.20 row is 1.19's (no 1.20 toolchain to measure
/// with, as in `table.rs`).
#[rustfmt::skip]
const ROWS: &[(u32, u32, [Option<u32>; 12])] = &[
    //  minors  lo       hi       sp        pc        bp        syscallsp  syscallpc  syscallbp  waitsince  lockedm    p.m       runqhead
    (19, 20, [Some(0), Some(8), Some(56), Some(64), Some(104), Some(112), Some(120), None,      Some(168), Some(232), Some(56), Some(400)]),
    (21, 22, [Some(0), Some(8), Some(56), Some(64), Some(104), Some(112), Some(120), None,      Some(168), Some(208), Some(56), Some(400)]),
    (23, 24, [Some(0), Some(8), Some(56), Some(64), Some(104), Some(112), Some(120), Some(128), Some(176), Some(216), Some(48), Some(392)]),
    (25, 25, [Some(0), Some(8), Some(56), Some(64), Some(96),  Some(104), Some(112), Some(120), Some(168), Some(208), Some(48), Some(392)]),
    (26, 27, [Some(0), Some(8), Some(56), Some(64), Some(96),  Some(104), Some(112), Some(120), Some(168), Some(208), Some(48), Some(400)]),
];

fn from_values(source: OffsetsSource, v: [Option<u32>; 12]) -> Option<StackLayout> {
    Some(StackLayout {
        source,
        g_stack_lo: v[0]?,
        g_stack_hi: v[1]?,
        g_sched_sp: v[2]?,
        g_sched_pc: v[3]?,
        g_sched_bp: v[4]?,
        g_syscallsp: v[5]?,
        g_syscallpc: v[6]?,
        g_syscallbp: v[SYSCALLBP],
        g_waitsince: v[8]?,
        g_lockedm: v[9]?,
        p_m: v[10]?,
        p_runqhead: v[11]?,
    })
}

fn values(l: &StackLayout) -> [Option<u32>; 12] {
    [
        Some(l.g_stack_lo),
        Some(l.g_stack_hi),
        Some(l.g_sched_sp),
        Some(l.g_sched_pc),
        Some(l.g_sched_bp),
        Some(l.g_syscallsp),
        Some(l.g_syscallpc),
        l.g_syscallbp,
        Some(l.g_waitsince),
        Some(l.g_lockedm),
        Some(l.p_m),
        Some(l.p_runqhead),
    ]
}

/// The built-in stack layout of Go 1.`minor`, if the table has it.
pub fn table_stack_layout(minor: u32) -> Option<StackLayout> {
    ROWS.iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&minor))
        .and_then(|(_, _, v)| from_values(OffsetsSource::Table, *v))
}

impl GoBinary {
    /// The dump's fields: DWARF when the binary has it, else the table for known releases.
    pub fn stack_layout(&self) -> Result<StackLayout, BinaryError> {
        self.dwarf_or_table(self.dwarf_stack_layout(), table_stack_layout)
    }

    /// The dump's fields from DWARF alone.
    pub fn dwarf_stack_layout(&self) -> Result<StackLayout, BinaryError> {
        let mut v = [None; 12];
        for (i, path) in PATHS.iter().enumerate() {
            let mut sum = 0u64;
            for (ty, field) in path.iter() {
                match self.struct_field_offset(ty, field) {
                    Ok(off) => sum += off,
                    Err(BinaryError::MissingField { .. }) if i == SYSCALLBP => {
                        sum = u64::MAX;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if sum != u64::MAX {
                v[i] = Some(
                    u32::try_from(sum)
                        .map_err(|_| self.corrupt(format!("offset {sum} of {path:?}")))?,
                );
            }
        }
        from_values(OffsetsSource::Dwarf, v)
            .ok_or_else(|| self.corrupt("DWARF stack layout incomplete"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{all_versions, sample};
    use super::*;
    use gmp_trace_tests::Variant;

    /// The table against the DWARF of a fresh build by every installed toolchain.
    #[test]
    fn stack_table_matches_dwarf() {
        let mut failures = Vec::new();
        for v in all_versions() {
            let bin = GoBinary::open(&sample(v, Variant::Default)).unwrap();
            let dwarf = values(&bin.dwarf_stack_layout().unwrap());
            eprintln!("go{v}: DWARF {dwarf:?}");
            let minor: u32 = v.split('.').nth(1).unwrap().parse().unwrap();
            let table = table_stack_layout(minor).map(|t| values(&t));
            if table != Some(dwarf) {
                failures.push(format!("go{v}: table {table:?} != DWARF {dwarf:?}"));
            }
            assert_eq!(bin.stack_layout().unwrap().source, OffsetsSource::Dwarf);
            let stripped = GoBinary::open(&sample(v, Variant::Stripped)).unwrap();
            let l = stripped.stack_layout().unwrap();
            assert_eq!(l.source, OffsetsSource::Table, "go{v}");
            if values(&l) != dwarf {
                failures.push(format!("go{v} stripped: {:?}", values(&l)));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_known_minor_has_a_row() {
        for minor in 19..=27 {
            let l = table_stack_layout(minor).unwrap();
            assert_eq!(l.g_syscallbp.is_some(), minor >= 23, "1.{minor}");
        }
        assert!(table_stack_layout(18).is_none());
        assert!(table_stack_layout(28).is_none());
    }
}
