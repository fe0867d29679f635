//! GC in the last interval with no probe: the runtime's own totals (`runtime.memstats.numgc`
//! and `.pause_total_ns`, see binary/memstats.rs) read from the process's memory at each frame,
//! minus the previous read. A binary without the memstats symbol (stripped) has no reader, and
//! the frame says "n/a" rather than guess.
use crate::binary::{GoBinary, MemStatsLayout};
use crate::process::memory::Remote;

use super::frame::GcInterval;

/// The two totals at one read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Totals {
    numgc: u32,
    pause_total_ns: u64,
}

pub struct GcReader {
    remote: Remote,
    numgc: u64,
    pause_total_ns: u64,
    prev: Option<Totals>,
}

impl GcReader {
    /// `None` when the binary does not say where the totals are (logged once, here).
    pub fn new(bin: &GoBinary, pid: u32, bias: u64) -> Option<GcReader> {
        let l: MemStatsLayout = match bin.memstats_layout() {
            Ok(Some(l)) => l,
            Ok(None) => {
                log::info!("no runtime.memstats symbol (stripped binary): GC totals n/a");
                return None;
            }
            Err(e) => {
                log::warn!("no runtime.mstats layout: GC totals n/a ({e})");
                return None;
            }
        };
        let at = l.addr.wrapping_add(bias);
        Some(GcReader {
            remote: Remote::new(pid),
            numgc: at + u64::from(l.offsets.numgc),
            pause_total_ns: at + u64::from(l.offsets.pause_total_ns),
            prev: None,
        })
    }

    fn read(&self) -> Option<Totals> {
        let n = self.remote.read(self.numgc, 4).ok()?;
        let p = self.remote.read(self.pause_total_ns, 8).ok()?;
        Some(Totals {
            numgc: u32::from_le_bytes(n.try_into().ok()?),
            pause_total_ns: u64::from_le_bytes(p.try_into().ok()?),
        })
    }

    /// The reference read at attach (no interval of its own).
    pub fn baseline(&mut self) {
        self.prev = self.read();
    }

    /// Cycles and pause time since the previous read; `None` when this read failed (the
    /// next one then counts from the last good read).
    pub fn interval(&mut self) -> Option<GcInterval> {
        let now = self.read()?;
        let prev = self.prev.replace(now).unwrap_or(now);
        Some(interval(prev, now))
    }
}

fn interval(prev: Totals, now: Totals) -> GcInterval {
    GcInterval {
        cycles: u64::from(now.numgc.wrapping_sub(prev.numgc)),
        stw_ns: now.pause_total_ns.saturating_sub(prev.pause_total_ns),
        total_cycles: u64::from(now.numgc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_is_the_difference_of_two_reads() {
        let a = Totals {
            numgc: 7,
            pause_total_ns: 1_000,
        };
        let b = Totals {
            numgc: 10,
            pause_total_ns: 251_000,
        };
        let i = interval(a, b);
        assert_eq!((i.cycles, i.stw_ns, i.total_cycles), (3, 250_000, 10));
        assert_eq!(interval(b, b).cycles, 0);
    }
}
