//! The live source: the BPF ring buffer, read when epoll says it is readable, plus the per-CPU
//! failure counters, turned into `Lost` events in the stream the moment they move (and the
//! failed-steal counter into `StealFailed` events the same way).
use aya::maps::{MapData, RingBuf};
use gmp_trace_common::{Event, EventKind};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::Sink;
use crate::probes::Tracer;

pub struct LiveSource {
    ring: AsyncFd<RingBuf<MapData>>,
    pid: u32,
    lost_total: u64,
    read_failures: u64,
    steal_failed_total: u64,
    ring_bytes: u32,
}

/// CLOCK_MONOTONIC now, in ns: the clock the probes stamp events with.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

impl LiveSource {
    pub fn new(tracer: &mut Tracer, pid: u32, ring_bytes: u32) -> anyhow::Result<LiveSource> {
        let ring = tracer.take_ring()?;
        // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for as long as the
        // AsyncFd owns the RingBuf.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("polling the ring buffer: {e}"))?;
        Ok(LiveSource {
            ring,
            pid,
            lost_total: 0,
            read_failures: 0,
            steal_failed_total: 0,
            ring_bytes,
        })
    }

    /// Waits until the ring buffer has data, then hands every record to `sink`.
    pub async fn readable(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let mut guard = self.ring.readable_mut().await?;
        drain(guard.get_inner_mut(), sink);
        guard.clear_ready();
        Ok(())
    }

    /// Reads whatever is in the ring buffer now, without waiting.
    pub fn drain(&mut self, sink: &mut dyn Sink) {
        drain(self.ring.get_mut(), sink);
    }

    /// Checks the probes' failure counters; a rise in dropped events becomes a `Lost` event.
    pub fn check_losses(&mut self, tracer: &Tracer, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let (lost, read_failed, steal_failed) = tracer.counters()?;
        self.read_failures = read_failed;
        if lost > self.lost_total {
            if self.lost_total == 0 {
                // Once, at the first loss; the count itself travels in the stream.
                log::warn!(
                    "the ring buffer ({} bytes) was full: events are being lost; give a larger \
                     --buffer-size or --event-rate",
                    self.ring_bytes
                );
            }
            sink.event(&self.counter_event(EventKind::Lost, lost - self.lost_total, lost));
            self.lost_total = lost;
        }
        if steal_failed > self.steal_failed_total {
            let rise = steal_failed - self.steal_failed_total;
            sink.event(&self.counter_event(EventKind::StealFailed, rise, steal_failed));
            self.steal_failed_total = steal_failed;
        }
        Ok(())
    }

    /// A synthetic event reporting a probe counter's rise (`arg0`) and its total (`arg1`).
    fn counter_event(&self, kind: EventKind, rise: u64, total: u64) -> Event {
        Event {
            ts: monotonic_ns(),
            kind: kind as u32,
            pid: self.pid,
            p: -1,
            m: -1,
            arg0: rise,
            arg1: total,
            ..Event::default()
        }
    }

    pub fn read_failures(&self) -> u64 {
        self.read_failures
    }
}

fn drain(ring: &mut RingBuf<MapData>, sink: &mut dyn Sink) {
    while let Some(item) = ring.next() {
        match Event::from_bytes(&item) {
            Some(e) => sink.event(&e),
            None => sink.malformed(item.len()),
        }
    }
}
