//! Reads of another process's memory with process_vm_readv(2): read-only, no ptrace stop, the
//! process keeps running. Many ranges go in one system call (up to the kernel's IOV_MAX), so
//! reading a field window of each of a million goroutines takes a few hundred calls, not
//! millions of preads.
//!
//! The kernel stops a vectored read at the first range it cannot read and returns the bytes read
//! until then; [`Remote::read_many`] then marks that range unread and carries on after it, so
//! one bad pointer costs its own range only.

/// Ranges per process_vm_readv call: the kernel's UIO_MAXIOV.
const IOV_MAX: usize = 1024;
/// The largest range [`Remote::read_close`] merges neighbours into.
const MERGED_MAX: u64 = 256 << 10;

/// Another process's address space, for reading.
#[derive(Clone, Copy, Debug)]
pub struct Remote {
    pid: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading {len} bytes at {addr:#x} of pid {pid}: {source}")]
    Failed {
        pid: i32,
        addr: u64,
        len: usize,
        source: std::io::Error,
    },
    #[error("reading {len} bytes at {addr:#x} of pid {pid}: only {got} were readable")]
    Short {
        pid: i32,
        addr: u64,
        len: usize,
        got: usize,
    },
}

impl Remote {
    pub fn new(pid: u32) -> Remote {
        Remote { pid: pid as i32 }
    }

    /// `len` bytes at `addr`, all of them or an error.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, ReadError> {
        let mut buf = vec![0u8; len];
        let got = self
            .readv(&[(addr, len)], &mut [&mut buf[..]])
            .map_err(|source| ReadError::Failed {
                pid: self.pid,
                addr,
                len,
                source,
            })?;
        if got != len {
            return Err(ReadError::Short {
                pid: self.pid,
                addr,
                len,
                got,
            });
        }
        Ok(buf)
    }

    /// Each range read whole into one buffer (`None`: some of it was unreadable). Ranges may
    /// overlap and come in any order.
    pub fn read_many(&self, ranges: &[(u64, usize)]) -> Vec<Option<Vec<u8>>> {
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(ranges.len());
        let mut bufs: Vec<Vec<u8>> = ranges.iter().map(|&(_, len)| vec![0u8; len]).collect();
        let mut done = vec![false; ranges.len()];
        let mut i = 0;
        while i < ranges.len() {
            let end = (i + IOV_MAX).min(ranges.len());
            let mut slices: Vec<&mut [u8]> = bufs[i..end].iter_mut().map(|b| &mut b[..]).collect();
            // A hard error (the process is gone, no permission) ends it: nothing more is readable.
            let Ok(got) = self.readv(&ranges[i..end], &mut slices) else {
                break;
            };
            // Whole ranges covered by `got` are done; the next one stopped the kernel.
            let mut left = got;
            let mut j = i;
            while j < end && left >= ranges[j].1 {
                left -= ranges[j].1;
                done[j] = true;
                j += 1;
            }
            // Range j (if the batch stopped early) is unreadable: go on after it.
            i = if j == end { end } else { j + 1 };
        }
        for (buf, ok) in bufs.into_iter().zip(done) {
            out.push(ok.then_some(buf));
        }
        out
    }

    /// [`read_many`](Self::read_many) for many small ranges that lie close together (a million
    /// goroutine structs packed in the heap's spans): ranges at most `gap` bytes apart are read
    /// as one, up to `MERGED_MAX` bytes, which costs the kernel one page walk instead of one per
    /// range. A merged range that is not readable whole is read range by range.
    #[cfg(test)]
    pub fn read_close(&self, ranges: &[(u64, usize)], gap: u64) -> Vec<Option<Vec<u8>>> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; ranges.len()];
        self.read_close_each(ranges, gap, |i, bytes| out[i] = bytes.map(<[u8]>::to_vec));
        out
    }

    /// [`read_close`](Self::read_close) handing each range's bytes to `each(index, bytes)`
    /// (`None`: unreadable) where they lie in the merged read, instead of copying each into a
    /// buffer of its own: a reader that parses a few fields out of each of many small ranges
    /// (every g of `allgs`, most of them dead) pays no allocation and no copy per range.
    /// Each range is handed over exactly once (in address order; ranges re-read one by one after
    /// their merged read failed come last).
    pub fn read_close_each(
        &self,
        ranges: &[(u64, usize)],
        gap: u64,
        mut each: impl FnMut(usize, Option<&[u8]>),
    ) {
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_unstable_by_key(|&i| ranges[i].0);
        // (start, end, members in address order)
        let mut merged: Vec<(u64, u64, Vec<usize>)> = Vec::new();
        for i in order {
            let (addr, len) = ranges[i];
            let end = addr.saturating_add(len as u64);
            match merged.last_mut() {
                Some((start, e, members))
                    if addr <= e.saturating_add(gap) && end.max(*e) - *start <= MERGED_MAX =>
                {
                    *e = end.max(*e);
                    members.push(i);
                }
                _ => merged.push((addr, end, vec![i])),
            }
        }
        let spans: Vec<(u64, usize)> = merged
            .iter()
            .map(|(s, e, _)| (*s, (e - s) as usize))
            .collect();
        let mut retry = Vec::new();
        for ((start, _, members), buf) in merged.iter().zip(self.read_many(&spans)) {
            match buf {
                Some(buf) => {
                    for &i in members {
                        let (addr, len) = ranges[i];
                        let at = (addr - start) as usize;
                        each(i, buf.get(at..at + len));
                    }
                }
                None if members.len() > 1 => retry.extend(members.iter().copied()),
                None => each(members[0], None),
            }
        }
        if !retry.is_empty() {
            let one: Vec<(u64, usize)> = retry.iter().map(|&i| ranges[i]).collect();
            for (i, buf) in retry.into_iter().zip(self.read_many(&one)) {
                each(i, buf.as_deref());
            }
        }
    }

    /// One process_vm_readv of `ranges` into `bufs` (same lengths): the bytes read.
    fn readv(&self, ranges: &[(u64, usize)], bufs: &mut [&mut [u8]]) -> std::io::Result<usize> {
        let local: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let remote: Vec<libc::iovec> = ranges
            .iter()
            .map(|&(addr, len)| libc::iovec {
                iov_base: addr as usize as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        // SAFETY: `local` describes buffers we own and hold mutably for the call, each exactly
        // as long as its iovec says; `remote` addresses are only read by the kernel, in the
        // other process, and faults there are reported, not taken.
        let n = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // EFAULT on the first range: nothing read, which read_many handles as 0 bytes.
            if e.raw_os_error() == Some(libc::EFAULT) {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ranges_and_skips_the_unreadable_one() {
        let me = Remote::new(std::process::id());
        let a: Vec<u8> = (0..100u8).collect();
        let b = vec![7u8; 5000];
        let ranges = [
            (a.as_ptr() as u64, a.len()),
            (8, 16), // unmapped: the kernel stops here
            (b.as_ptr() as u64 + 10, 100),
            (a.as_ptr() as u64 + 50, 10),
        ];
        let got = me.read_many(&ranges);
        assert_eq!(got[0].as_deref(), Some(&a[..]));
        assert_eq!(got[1], None);
        assert_eq!(got[2].as_deref(), Some(&b[10..110]));
        assert_eq!(got[3].as_deref(), Some(&a[50..60]));
        assert!(me.read(8, 8).is_err());
        assert_eq!(me.read(a.as_ptr() as u64, 8).unwrap(), a[..8]);
    }

    #[test]
    fn more_ranges_than_one_call_takes() {
        let me = Remote::new(std::process::id());
        let data: Vec<u64> = (0..5000u64).map(|i| i * 3).collect();
        let ranges: Vec<(u64, usize)> = (0..data.len())
            .map(|i| (data.as_ptr() as u64 + 8 * i as u64, 8))
            .collect();
        let got = me.read_many(&ranges);
        assert_eq!(got.len(), 5000);
        let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i].is_none()).collect();
        assert!(bad.is_empty(), "unread: {:?}", &bad[..bad.len().min(20)]);
        for (i, g) in got.iter().enumerate() {
            let v = u64::from_le_bytes(g.as_deref().unwrap().try_into().unwrap());
            assert_eq!(v, data[i]);
        }
    }

    #[test]
    fn close_ranges_are_read_together_and_a_bad_one_alone() {
        let me = Remote::new(std::process::id());
        let data: Vec<u8> = (0..=255u8).cycle().take(64 << 10).collect();
        let base = data.as_ptr() as u64;
        // Out of order, overlapping, far apart, and one unmapped range amid them.
        let ranges = [
            (base + 5000, 300),
            (base + 10, 20),
            (base + 15, 40),
            (8, 16),
            (base + 60_000, 100),
        ];
        let got = me.read_close(&ranges, 4096);
        for (i, &(addr, len)) in ranges.iter().enumerate() {
            if addr == 8 {
                assert_eq!(got[i], None);
                continue;
            }
            let at = (addr - base) as usize;
            assert_eq!(got[i].as_deref(), Some(&data[at..at + len]), "range {i}");
        }
        // A merge that spans unmapped memory falls back to range by range.
        let page = 4096u64;
        let (a, b) = (base, base + 2 * page);
        let near_bad = [(a, 8), (8, 8), (b, 8)];
        let got = me.read_close(&near_bad, u64::MAX);
        assert_eq!(got[0].as_deref(), Some(&data[..8]));
        assert_eq!(got[1], None);
        assert_eq!(
            got[2].as_deref(),
            Some(&data[2 * page as usize..2 * page as usize + 8])
        );
    }

    #[test]
    fn a_dead_pid_is_an_error() {
        let gone = Remote::new(i32::MAX as u32);
        assert!(gone.read(0x1000, 8).is_err());
        assert_eq!(gone.read_many(&[(0x1000, 8)]), vec![None]);
    }
}
