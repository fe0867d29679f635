//! Entry points for the libFuzzer targets in `fuzz/`, which compile this module tree on its own
//! (`#[path]`): the private parsers are reached from here, with every result consumed so the
//! optimiser cannot drop the work. Whole-file fuzzing goes through [`super::GoBinary::from_bytes`].

use super::{buildinfo, pclntab, GoVersion};

/// `.go.buildinfo` section contents, the build-id note and the version string parser.
pub fn buildinfo(data: &[u8]) -> usize {
    let mut n = 0;
    if let Ok(bi) = buildinfo::parse(data) {
        n += bi.main_module().map_or(0, str::len);
        n += GoVersion::parse(&bi.version).map_or(0, |v| v.raw.len());
    }
    n += buildinfo::parse_build_id(data).map_or(0, |s| s.len());
    n += std::str::from_utf8(data)
        .ok()
        .and_then(GoVersion::parse)
        .map_or(0, |v| v.minor as usize);
    n
}

/// `.gopclntab` section contents.
pub fn pclntab(data: &[u8]) -> usize {
    pclntab::fuzz_table(data)
}
