//! The `.go.buildinfo` section (Go version and module info) and the `.note.go.buildid` note.
//!
//! Layout, as written by cmd/link and read by debug/buildinfo: a 32-byte header starting with
//! `"\xff Go buildinf:"`, then the pointer size (byte 14) and flags (byte 15). With flag bit 1
//! (Go 1.18+) the version and modinfo strings follow the header inline, each prefixed by a uvarint
//! length. Without it the header holds pointers to Go string headers instead (Go <= 1.17), a format
//! we do not read because those versions are unsupported anyway.

use std::fmt;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE: u8 = 2;
/// modinfo is wrapped in 16 sentinel bytes on each side (runtime/debug's infoStart/infoEnd).
const SENTINEL_LEN: usize = 16;
/// The magic is written 16-byte aligned; Go's reader only looks at aligned offsets too.
const MAGIC_ALIGN: usize = 16;

/// A Go toolchain version as recorded in the binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The string exactly as recorded, e.g. `go1.27.3` or `devel go1.28-abcdef Tue ...`.
    pub raw: String,
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl GoVersion {
    /// Parses `go1.27.3`, `go1.23` (patch 0), `go1.22rc1`, `go1.21.0 X:boringcrypto` and
    /// `devel go1.28-abcdef ...` (taken as 1.28.0). `None` when no `goN.M` can be found.
    pub fn parse(raw: &str) -> Option<GoVersion> {
        let s = raw.trim();
        let s = s.strip_prefix("devel ").unwrap_or(s);
        let rest = s.strip_prefix("go")?;
        let (major, rest) = leading_number(rest)?;
        let rest = rest.strip_prefix('.')?;
        let (minor, rest) = leading_number(rest)?;
        // Only a '.' directly after the minor number introduces a patch number: "1.22rc1" is a
        // release candidate of 1.22.0, not patch 1.
        let patch = match rest.strip_prefix('.') {
            Some(p) => leading_number(p).map(|(n, _)| n).unwrap_or(0),
            None => 0,
        };
        Some(GoVersion {
            major,
            minor,
            patch,
            raw: raw.to_string(),
        })
    }
}

fn leading_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let n = s.get(..end)?.parse().ok()?;
    Some((n, s.get(end..)?))
}

/// What `.go.buildinfo` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// The raw version string (not yet parsed: the caller decides how to report bad ones).
    pub version: String,
    /// modinfo with the sentinels stripped: tab-separated `path`, `mod`, `dep`, `build` lines.
    pub modinfo: String,
}

impl BuildInfo {
    /// The main module path: the `mod` line's path, else the `path` line (the main package, which
    /// is all a `go build file.go` outside a module records).
    pub fn main_module(&self) -> Option<&str> {
        let field = |key: &str| {
            self.modinfo.lines().find_map(|l| {
                let mut parts = l.split('\t');
                (parts.next() == Some(key))
                    .then(|| parts.next())
                    .flatten()
                    .filter(|p| !p.is_empty())
            })
        };
        field("mod").or_else(|| field("path"))
    }
}

/// Why `.go.buildinfo` could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildInfoError {
    /// The pre-1.18 pointer format.
    PointerFormat,
    /// Not the expected layout (no magic, truncated, bad varint).
    Malformed(&'static str),
}

/// Parses the contents of the `.go.buildinfo` section.
pub fn parse(section: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    let start = (0..section.len())
        .step_by(MAGIC_ALIGN)
        .find(|&o| section.get(o..).is_some_and(|s| s.starts_with(MAGIC)))
        .ok_or(BuildInfoError::Malformed("no build info magic"))?;
    let data = section.get(start..).unwrap_or_default();
    if data.len() < HEADER_LEN {
        return Err(BuildInfoError::Malformed("truncated build info header"));
    }
    let flags = data.get(15).copied().unwrap_or(0);
    if flags & FLAG_INLINE == 0 {
        return Err(BuildInfoError::PointerFormat);
    }
    let rest = data.get(HEADER_LEN..).unwrap_or_default();
    let (version, rest) =
        read_string(rest).ok_or(BuildInfoError::Malformed("bad version string"))?;
    let (modinfo, _) = read_string(rest).ok_or(BuildInfoError::Malformed("bad modinfo string"))?;
    if version.is_empty() {
        return Err(BuildInfoError::Malformed("empty version string"));
    }
    let modinfo = if modinfo.len() >= 2 * SENTINEL_LEN {
        modinfo
            .get(SENTINEL_LEN..modinfo.len() - SENTINEL_LEN)
            .unwrap_or_default()
    } else {
        modinfo
    };
    Ok(BuildInfo {
        version: String::from_utf8_lossy(version).into_owned(),
        modinfo: String::from_utf8_lossy(modinfo).into_owned(),
    })
}

/// A uvarint length followed by that many bytes.
fn read_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, used) = read_uvarint(b)?;
    let rest = b.get(used..)?;
    let len = usize::try_from(len).ok()?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// encoding/binary's Uvarint: 7 bits per byte, little-endian groups, at most 10 bytes.
fn read_uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        // The 10th byte may only contribute one bit.
        if i == 9 && byte > 1 {
            return None;
        }
        x |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((x, i + 1));
        }
    }
    None
}

/// The Go build id from the contents of the `.note.go.buildid` section: one ELF note with name
/// "Go" and type 4 whose descriptor is the id string.
pub fn parse_build_id(note: &[u8]) -> Option<String> {
    const NOTE_TYPE_GO_BUILD_ID: u32 = 4;
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = note.get(o..o.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b))
    };
    let namesz = usize::try_from(u32_at(0)?).ok()?;
    let descsz = usize::try_from(u32_at(4)?).ok()?;
    if u32_at(8)? != NOTE_TYPE_GO_BUILD_ID {
        return None;
    }
    let name = note.get(12..12usize.checked_add(namesz)?)?;
    // namesz counts the NUL, and Go pads it to 4 ("Go\0\0").
    let name_end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    if name.get(..name_end) != Some(&b"Go"[..]) {
        return None;
    }
    let desc_start = 12usize.checked_add(namesz.checked_add(3)? & !3)?;
    let desc = note.get(desc_start..desc_start.checked_add(descsz)?)?;
    let id = std::str::from_utf8(desc).ok()?.trim_end_matches('\0');
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uvarint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn section(flags: u8, version: &str, modinfo: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.push(8);
        b.push(flags);
        b.resize(HEADER_LEN, 0);
        uvarint(version.len(), &mut b);
        b.extend_from_slice(version.as_bytes());
        uvarint(modinfo.len(), &mut b);
        b.extend_from_slice(modinfo);
        b
    }

    fn wrapped(modinfo: &str) -> Vec<u8> {
        let mut m = vec![0x30; SENTINEL_LEN];
        m.extend_from_slice(modinfo.as_bytes());
        m.extend_from_slice(&[0xf9; SENTINEL_LEN]);
        m
    }

    #[test]
    fn versions() {
        let v = |s: &str| GoVersion::parse(s).map(|v| (v.major, v.minor, v.patch));
        assert_eq!(v("go1.27.3"), Some((1, 27, 3)));
        assert_eq!(v("go1.21.13"), Some((1, 21, 13)));
        assert_eq!(v("go1.22rc1"), Some((1, 22, 0)));
        assert_eq!(v("go1.23"), Some((1, 23, 0)));
        assert_eq!(v("go1.21.0 X:boringcrypto"), Some((1, 21, 0)));
        assert_eq!(
            v("devel go1.28-abcdef Tue Jan 1 00:00:00 2030 +0000"),
            Some((1, 28, 0))
        );
        assert_eq!(v("go1"), None);
        assert_eq!(v("gox.y"), None);
        assert_eq!(v(""), None);
        assert_eq!(v("go99999999999999999999.1"), None);
        let d = GoVersion::parse("devel go1.28-abcdef").unwrap();
        assert_eq!(d.to_string(), "devel go1.28-abcdef");
        assert_eq!((d.major, d.minor, d.patch), (1, 28, 0));
    }

    #[test]
    fn inline_format() {
        let modinfo =
            "path\texample.com/fanout\nmod\texample.com/fanout\t(devel)\t\nbuild\t-compiler=gc\n";
        let b = section(2, "go1.27.3", &wrapped(modinfo));
        let bi = parse(&b).unwrap();
        assert_eq!(bi.version, "go1.27.3");
        assert_eq!(bi.modinfo, modinfo);
        assert_eq!(bi.main_module(), Some("example.com/fanout"));
        // The magic may sit at a later 16-byte boundary of the section.
        let mut padded = vec![0u8; 32];
        padded.extend_from_slice(&b);
        assert_eq!(parse(&padded).unwrap(), bi);
    }

    #[test]
    fn main_module_falls_back_to_path() {
        let bi = BuildInfo {
            version: "go1.21.13".into(),
            modinfo: "path\tcommand-line-arguments\nbuild\t-compiler=gc\n".into(),
        };
        assert_eq!(bi.main_module(), Some("command-line-arguments"));
        let empty = BuildInfo {
            version: "go1.21.13".into(),
            modinfo: String::new(),
        };
        assert_eq!(empty.main_module(), None);
    }

    #[test]
    fn short_modinfo_kept_and_long_strings() {
        let b = section(2, "go1.21.13", b"");
        assert_eq!(parse(&b).unwrap().modinfo, "");
        // A length needing a two-byte varint.
        let long = "x".repeat(300);
        let b = section(2, "go1.22rc1", &wrapped(&long));
        assert_eq!(parse(&b).unwrap().modinfo, long);
    }

    #[test]
    fn pointer_format_is_old_go() {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[8, 0]);
        b.resize(64, 0);
        assert_eq!(parse(&b), Err(BuildInfoError::PointerFormat));
    }

    #[test]
    fn truncated_and_garbage() {
        let full = section(2, "go1.27.3", &wrapped("path\tx\n"));
        for n in 0..full.len() {
            let r = parse(&full[..n]);
            // modinfo comes last, so every strict prefix cuts a string short.
            assert!(
                matches!(r, Err(BuildInfoError::Malformed(_))),
                "prefix {n}: {r:?}"
            );
        }
        assert!(parse(b"").is_err());
        assert!(parse(&[0xff; 100]).is_err());
        // A huge varint length must not overflow or allocate.
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[8, 2]);
        b.resize(HEADER_LEN, 0);
        b.extend_from_slice(&[0xff; 9]);
        b.push(0x01);
        assert!(parse(&b).is_err());
        b.truncate(HEADER_LEN);
        b.extend_from_slice(&[0xff; 12]);
        assert!(parse(&b).is_err());
    }

    #[test]
    fn uvarint_limits() {
        assert_eq!(read_uvarint(&[0x00]), Some((0, 1)));
        assert_eq!(read_uvarint(&[0xac, 0x02]), Some((300, 2)));
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(read_uvarint(&max), Some((u64::MAX, 10)));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(read_uvarint(&over), None);
        assert_eq!(read_uvarint(&[0x80]), None);
    }

    #[test]
    fn build_id_note() {
        let id = "abc/def/ghi";
        let mut n = Vec::new();
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&(id.len() as u32).to_le_bytes());
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(b"Go\0\0");
        n.extend_from_slice(id.as_bytes());
        assert_eq!(parse_build_id(&n).as_deref(), Some(id));
        for k in 0..n.len() {
            assert_eq!(parse_build_id(&n[..k]), None);
        }
        let mut wrong_type = n.clone();
        wrong_type[8] = 3;
        assert_eq!(parse_build_id(&wrong_type), None);
        let mut huge = n.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_build_id(&huge), None);
    }
}
