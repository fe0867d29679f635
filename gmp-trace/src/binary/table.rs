//! Runtime struct offsets when the binary has no DWARF (`-ldflags=-w` or `-s`): a table keyed by
//! Go major.minor, measured from the DWARF of binaries built by each toolchain (amd64 and arm64
//! agree) and re-checked by `check_table_against_dwarf` in the tests for every installed toolchain.
//!
//! DWARF always wins when present: it is the binary's own truth, and it keeps gmp-trace working on
//! releases newer than this table. Go 1.20 had no toolchain to measure with; its row repeats 1.19,
//! whose runtime.g/m/p layout 1.20 did not change (g.parentGoid arrived in 1.21).

use gmp_trace_common::Offsets;

use super::{BinaryError, GoBinary};

/// Where the offsets in a [`RuntimeLayout`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetsSource {
    Dwarf,
    Table,
}

impl std::fmt::Display for OffsetsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OffsetsSource::Dwarf => "offsets from the binary's DWARF",
            OffsetsSource::Table => "gmp-trace's built-in offset table",
        })
    }
}

/// Everything gmp-trace reads from runtime structures: the probes' [`Offsets`] plus the fields
/// only userspace needs (live validation and the seed snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeLayout {
    pub source: OffsetsSource,
    /// `target_pid` is 0: the loader fills it in.
    pub offsets: Offsets,
    /// g.parentGoid; `None` before Go 1.21.
    pub g_parent_goid: Option<u32>,
    /// m.g0 (0 in every release: the first field).
    pub m_g0: u32,
    /// m.alllink, the next M on the runtime.allm list.
    pub m_alllink: u32,
    /// p.status (uint32).
    pub p_status: u32,
}

/// One field where the table and the binary's DWARF disagree (`None`: absent on that side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub field: &'static str,
    pub table: Option<u64>,
    pub dwarf: Option<u64>,
}

/// `(type, field)` names, in the order of [`fields`].
const FIELDS: [(&str, &str); 17] = [
    ("runtime.g", "goid"),
    ("runtime.g", "atomicstatus"),
    ("runtime.g", "m"),
    ("runtime.g", "waitreason"),
    ("runtime.g", "parentGoid"),
    ("runtime.g", "gopc"),
    ("runtime.g", "startpc"),
    ("runtime.m", "g0"),
    ("runtime.m", "procid"),
    ("runtime.m", "curg"),
    ("runtime.m", "p"),
    ("runtime.m", "id"),
    ("runtime.m", "alllink"),
    ("runtime.p", "id"),
    ("runtime.p", "status"),
    ("runtime.m", "spinning"),
    ("runtime.p", "runqtail"),
];

/// The same fields as `FIELDS`, as mismatch labels.
const LABELS: [&str; 17] = [
    "g.goid",
    "g.atomicstatus",
    "g.m",
    "g.waitreason",
    "g.parentGoid",
    "g.gopc",
    "g.startpc",
    "m.g0",
    "m.procid",
    "m.curg",
    "m.p",
    "m.id",
    "m.alllink",
    "p.id",
    "p.status",
    "m.spinning",
    "p.runqtail",
];

/// A layout's values in `FIELDS` order.
fn fields(l: &RuntimeLayout) -> [Option<u32>; 17] {
    let o = &l.offsets;
    [
        Some(o.g_goid),
        Some(o.g_atomicstatus),
        Some(o.g_m),
        Some(o.g_waitreason),
        l.g_parent_goid,
        Some(o.g_gopc),
        Some(o.g_startpc),
        Some(l.m_g0),
        Some(o.m_procid),
        Some(o.m_curg),
        Some(o.m_p),
        Some(o.m_id),
        Some(l.m_alllink),
        Some(o.p_id),
        Some(l.p_status),
        Some(o.m_spinning),
        Some(o.p_runqtail),
    ]
}

/// Builds a layout from values in `FIELDS` order.
fn from_fields(source: OffsetsSource, v: [Option<u32>; 17]) -> Option<RuntimeLayout> {
    Some(RuntimeLayout {
        source,
        offsets: Offsets {
            g_goid: v[0]?,
            g_atomicstatus: v[1]?,
            g_m: v[2]?,
            g_waitreason: v[3]?,
            g_gopc: v[5]?,
            g_startpc: v[6]?,
            m_procid: v[8]?,
            m_curg: v[9]?,
            m_p: v[10]?,
            m_id: v[11]?,
            p_id: v[13]?,
            m_spinning: v[15]?,
            p_runqtail: v[16]?,
            ..Offsets::default()
        },
        g_parent_goid: v[4],
        m_g0: v[7]?,
        m_alllink: v[12]?,
        p_status: v[14]?,
    })
}

/// Measured rows: minor version range and values in `FIELDS` order (`None`: no such field).
/// Why they move: 1.21 adds g.parentGoid; 1.23 adds g.syscallbp (+8 from g.atomicstatus on);
/// 1.25 drops gobuf.ret (-8 in g and in m before procid); 1.26 adds m.signalSecret (m.p, m.id
/// +8 again) and moves g.parentGoid by one word. m.alllink, further down m, moves in almost
/// every release (336, 328, 352, 344, 352). m.spinning follows m.id's moves (276; 268 in 1.25);
/// p.runqtail moves with 1.23's smaller p.m slot (404, 396 in 1.23-1.25, 404 again from 1.26).
/// The 1.20 row is 1.19's (not measured, see above).
#[rustfmt::skip]
const ROWS: &[(u32, u32, [Option<u32>; 17])] = &[
    //  minors   goid       status     m         wait       parent     gopc       startpc    m.g0     procid    curg       m.p        m.id       alllink    p.id     p.status spinning   runqtail
    (19, 20, [Some(152), Some(144), Some(48), Some(176), None,      Some(296), Some(312), Some(0), Some(72), Some(192), Some(208), Some(232), Some(336), Some(0), Some(4), Some(276), Some(404)]),
    (21, 21, [Some(152), Some(144), Some(48), Some(176), Some(272), Some(280), Some(296), Some(0), Some(72), Some(192), Some(208), Some(232), Some(336), Some(0), Some(4), Some(276), Some(404)]),
    (22, 22, [Some(152), Some(144), Some(48), Some(176), Some(272), Some(280), Some(296), Some(0), Some(72), Some(192), Some(208), Some(232), Some(328), Some(0), Some(4), Some(276), Some(404)]),
    (23, 23, [Some(160), Some(152), Some(48), Some(184), Some(280), Some(288), Some(304), Some(0), Some(72), Some(192), Some(208), Some(232), Some(328), Some(0), Some(4), Some(276), Some(396)]),
    (24, 24, [Some(160), Some(152), Some(48), Some(184), Some(280), Some(288), Some(304), Some(0), Some(72), Some(192), Some(208), Some(232), Some(352), Some(0), Some(4), Some(276), Some(396)]),
    (25, 25, [Some(152), Some(144), Some(48), Some(176), Some(272), Some(280), Some(296), Some(0), Some(64), Some(184), Some(200), Some(224), Some(344), Some(0), Some(4), Some(268), Some(396)]),
    (26, 27, [Some(152), Some(144), Some(48), Some(176), Some(280), Some(288), Some(304), Some(0), Some(64), Some(184), Some(208), Some(232), Some(352), Some(0), Some(4), Some(276), Some(404)]),
];

/// The built-in layout of Go 1.`minor`, if the table has it.
pub fn table_layout(minor: u32) -> Option<RuntimeLayout> {
    ROWS.iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&minor))
        .and_then(|(_, _, v)| from_fields(OffsetsSource::Table, *v))
}

impl GoBinary {
    /// Offsets of the fields the probes read (`target_pid` left 0): DWARF when the binary has it,
    /// else the built-in table for known versions.
    pub fn offsets(&self) -> Result<Offsets, BinaryError> {
        Ok(self.runtime_layout()?.offsets)
    }

    /// Which source [`GoBinary::offsets`] uses; `None` when there are no usable offsets.
    pub fn offsets_source(&self) -> Option<OffsetsSource> {
        self.runtime_layout().ok().map(|l| l.source)
    }

    /// All runtime offsets gmp-trace uses, and where they came from.
    pub fn runtime_layout(&self) -> Result<RuntimeLayout, BinaryError> {
        self.dwarf_or_table(self.dwarf_layout(), table_layout)
    }

    /// `dwarf` when the binary's DWARF gave it, else the built-in row (`table`) of this
    /// binary's release; a clear error when neither exists.
    pub(super) fn dwarf_or_table<T>(
        &self,
        dwarf: Result<T, BinaryError>,
        table: impl FnOnce(u32) -> Option<T>,
    ) -> Result<T, BinaryError> {
        let table = (self.version.major == 1)
            .then(|| table(self.version.minor))
            .flatten();
        match (dwarf, table) {
            (Ok(l), _) => Ok(l),
            (Err(BinaryError::NoDwarf(_)), Some(t)) => Ok(t),
            (Err(e), Some(t)) => {
                // DWARF that is there but unreadable, or lacks a field on a release the table
                // knows: the table is still right for the release.
                log::warn!("{e}; using the built-in offsets for {}", self.version);
                Ok(t)
            }
            (Err(BinaryError::NoDwarf(path)), None) => Err(BinaryError::NoOffsets {
                path,
                version: self.version.raw.clone(),
            }),
            (Err(e), None) => Err(e),
        }
    }

    /// The layout read from DWARF alone (no table fallback).
    pub fn dwarf_layout(&self) -> Result<RuntimeLayout, BinaryError> {
        let mut v = [None; 17];
        for (i, (ty, field)) in FIELDS.iter().enumerate() {
            let off = match self.struct_field_offset(ty, field) {
                Ok(off) => off,
                // The one field that legitimately does not exist in older releases.
                Err(BinaryError::MissingField { .. }) if *field == "parentGoid" => continue,
                Err(e) => return Err(e),
            };
            let off = u32::try_from(off)
                .map_err(|_| self.corrupt(format!("offset of {ty}.{field} is {off}")))?;
            if let Some(slot) = v.get_mut(i) {
                *slot = Some(off);
            }
        }
        from_fields(OffsetsSource::Dwarf, v)
            .ok_or_else(|| self.corrupt("DWARF runtime layout incomplete"))
    }

    /// Compares the built-in table row for this binary's Go version with its DWARF; an empty list
    /// means the table is right for this toolchain. Fails when the binary has no DWARF.
    pub fn check_table_against_dwarf(&self) -> Result<Vec<Mismatch>, BinaryError> {
        let dwarf = fields(&self.dwarf_layout()?);
        let table = table_layout(self.version.minor)
            .filter(|_| self.version.major == 1)
            .map(|t| fields(&t))
            .unwrap_or([None; 17]);
        Ok(LABELS
            .iter()
            .zip(table.iter().zip(dwarf.iter()))
            .filter(|(_, (t, d))| t != d)
            .map(|(label, (t, d))| Mismatch {
                field: label,
                table: t.map(u64::from),
                dwarf: d.map(u64::from),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{all_versions, sample};
    use super::*;
    use gmp_trace_tests::Variant;

    #[test]
    fn every_known_minor_has_a_row() {
        for minor in 19..=27 {
            let l = table_layout(minor).unwrap_or_else(|| panic!("no row for 1.{minor}"));
            assert_eq!(l.source, OffsetsSource::Table);
            assert_eq!(l.g_parent_goid.is_some(), minor >= 21, "1.{minor}");
            assert_eq!(l.offsets.target_pid, 0);
        }
        assert!(table_layout(18).is_none());
        assert!(table_layout(28).is_none());
    }

    /// Every supported release gets all four block reads (the probes' fast path), each window
    /// holding its fields' words whole and nothing past the last of them; fields too far apart
    /// fall back to single reads.
    #[test]
    fn block_windows_fit_every_release() {
        use gmp_trace_common::{BLOCK, NO_BLOCK};
        for minor in 19..=27 {
            let mut o = table_layout(minor).unwrap().offsets;
            o.plan_blocks();
            let fits = |start: u32, len: u32, fields: &[u32]| {
                let last_word = fields.iter().map(|&f| f & !7).max().unwrap();
                start != NO_BLOCK
                    && start.is_multiple_of(8)
                    && len <= BLOCK
                    && fields
                        .iter()
                        .all(|&f| f >= start && (f & !7) + 8 <= start + len)
                    && start + len == last_word + 8
            };
            assert!(
                fits(o.g_block, o.g_block_len, &[o.g_m, o.g_goid]),
                "1.{minor}: {o:?}"
            );
            assert!(
                fits(o.gp_block, o.gp_block_len, &[o.g_goid, o.g_waitreason]),
                "1.{minor}: {o:?}"
            );
            assert!(
                fits(
                    o.m_block,
                    o.m_block_len,
                    &[o.m_id, o.m_p, o.m_curg, o.m_spinning]
                ),
                "1.{minor}: {o:?}"
            );
            assert!(
                fits(o.m_hot_block, o.m_hot_len, &[o.m_p, o.m_curg]),
                "1.{minor}: {o:?}"
            );
            // The hot read (every scheduler event on a known M) is the small one.
            assert!(o.m_hot_len <= 32, "1.{minor}: {o:?}");
        }
        let mut far = table_layout(27).unwrap().offsets;
        far.m_spinning = far.m_id + 4096;
        far.plan_blocks();
        assert_eq!((far.m_block, far.m_block_len), (NO_BLOCK, 0));
        assert_ne!(far.m_hot_block, NO_BLOCK);
    }

    /// The table against the DWARF of a fresh build by every installed toolchain.
    #[test]
    fn table_matches_dwarf() {
        let mut failures = Vec::new();
        for v in all_versions() {
            let bin = GoBinary::open(&sample(v, Variant::Default)).unwrap();
            let dwarf = bin.dwarf_layout().unwrap();
            eprintln!("go{v}: DWARF {:?}", fields(&dwarf));
            let m = bin.check_table_against_dwarf().unwrap();
            if !m.is_empty() {
                failures.push(format!("go{v}: {m:?}"));
            }
            assert_eq!(bin.runtime_layout().unwrap().source, OffsetsSource::Dwarf);
        }
        assert!(
            failures.is_empty(),
            "table != DWARF:\n{}",
            failures.join("\n")
        );
    }

    /// Stripped builds get the table, and the table row equals the unstripped build's DWARF.
    #[test]
    fn stripped_uses_table() {
        for v in all_versions() {
            let stripped = GoBinary::open(&sample(v, Variant::Stripped)).unwrap();
            let full = GoBinary::open(&sample(v, Variant::Default)).unwrap();
            let l = stripped.runtime_layout().unwrap();
            assert_eq!(l.source, OffsetsSource::Table, "go{v}");
            assert_eq!(stripped.offsets_source(), Some(OffsetsSource::Table));
            assert_eq!(
                stripped.offsets().unwrap(),
                full.offsets().unwrap(),
                "go{v}"
            );
            let e = stripped.check_table_against_dwarf().unwrap_err();
            assert!(matches!(e, BinaryError::NoDwarf(_)), "{e}");
        }
    }
}
