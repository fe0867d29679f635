//! The ring buffer's size and how often it is drained: the two numbers that decide whether a
//! burst of events fits or is lost.

/// How often the session drains the ring buffer besides the probes' wakeups (which come only
/// when a lot is waiting: `WAKEUP_BYTES` in the probes).
pub const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Bytes one event takes in the ring buffer: the event and the kernel's 8-byte record header.
pub const RING_RECORD_BYTES: u64 = gmp_trace_common::EVENT_SIZE as u64 + 8;

/// The ring buffer size: `requested` bytes, or enough for `rate` events/s over two drain
/// intervals (the probes wake the reader long before: every `WAKEUP_BYTES`); a power of two
/// from one page to 1 GiB, as the kernel wants. Every page counts twice in gmp-trace's RSS (the
/// kernel maps the data area twice), so no bigger than that: measured, 4 MiB already loses
/// nothing at 1.3M events/s.
pub fn ring_bytes(requested: Option<u64>, rate: u64) -> u32 {
    let want = requested.unwrap_or_else(|| {
        let per_drain = rate.saturating_mul(DRAIN_INTERVAL.as_millis() as u64) / 1000;
        per_drain
            .saturating_mul(RING_RECORD_BYTES)
            .saturating_mul(2)
    });
    want.clamp(4096, 1 << 30).next_power_of_two() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes() {
        // 1M events/s: 50k events per drain x 72 B x 2 = 7.2 MB -> 8 MiB.
        assert_eq!(ring_bytes(None, 1_000_000), 8 << 20);
        assert_eq!(ring_bytes(None, 10), 4096);
        assert_eq!(ring_bytes(Some(5000), 1), 8192);
        assert_eq!(ring_bytes(Some(u64::MAX), 1), 1 << 30);
        assert_eq!(ring_bytes(None, u64::MAX), 1 << 30);
    }
}
