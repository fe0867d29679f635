//! Where a running process mapped its executable, from /proc/PID/maps: the load bias that turns
//! the binary's addresses into the process's (and back, for function names).
use crate::binary::{BinaryError, GoBinary};

/// Where process `pid` loaded `bin`: 0 for non-PIE executables, else the difference between the
/// runtime and link-time addresses, from the executable mapping in /proc/PID/maps whose file range
/// covers the text segment.
pub fn load_bias(pid: u32, bin: &GoBinary) -> Result<u64, BinaryError> {
    if !bin.is_position_independent() {
        // Loaded at its link addresses: nothing to read (and no race with a quick exit).
        return Ok(0);
    }
    let process = |what: String| BinaryError::Process { pid, what };
    let (text_vaddr, text_offset) = bin.text_segment().ok_or_else(|| BinaryError::Corrupt {
        path: bin.path().to_path_buf(),
        what: "no executable PT_LOAD segment".into(),
    })?;
    let exe = format!("/proc/{pid}/exe");
    let meta = std::fs::metadata(&exe).map_err(|e| process(format!("{exe}: {e}")))?;
    let link = std::fs::read_link(&exe).ok();
    let maps_path = format!("/proc/{pid}/maps");
    let maps =
        std::fs::read_to_string(&maps_path).map_err(|e| process(format!("{maps_path}: {e}")))?;
    for m in maps.lines().filter_map(parse_maps_line) {
        let same_file = m.inode == std::os::unix::fs::MetadataExt::ino(&meta)
            || link.as_deref().is_some_and(|l| l.as_os_str() == m.path);
        let covers = text_offset >= m.offset && text_offset - m.offset < m.end - m.start;
        if m.exec && same_file && covers {
            return Ok(m
                .start
                .wrapping_add(text_offset - m.offset)
                .wrapping_sub(text_vaddr));
        }
    }
    Err(process(format!(
        "no executable mapping of {} covers its text segment (file offset {:#x}) in {maps_path}",
        bin.path().display(),
        text_offset
    )))
}

/// One /proc/PID/maps line: `start-end perms offset dev inode path`.
struct MapsLine<'a> {
    start: u64,
    end: u64,
    exec: bool,
    offset: u64,
    inode: u64,
    path: &'a str,
}

fn parse_maps_line(line: &str) -> Option<MapsLine<'_>> {
    let mut it = line.splitn(6, ' ');
    let (range, perms, offset, _dev, inode) =
        (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    Some(MapsLine {
        start,
        end: end.max(start),
        exec: perms.as_bytes().get(2) == Some(&b'x'),
        offset: u64::from_str_radix(offset, 16).ok()?,
        inode: inode.parse().ok()?,
        path: it.next().unwrap_or("").trim_start(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let l = parse_maps_line(
            "55d0c8a00000-55d0c8b00000 r-xp 00001000 fd:01 1234567 /tmp/x (deleted)",
        )
        .unwrap();
        assert_eq!(
            (l.start, l.end, l.exec, l.offset, l.inode),
            (0x55d0c8a00000, 0x55d0c8b00000, true, 0x1000, 1234567)
        );
        assert_eq!(l.path, "/tmp/x (deleted)");
        let anon = parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!((anon.exec, anon.path), (false, ""));
        assert!(parse_maps_line("garbage").is_none());
        assert!(parse_maps_line("").is_none());
    }
}
