//! A BPF ring of small fixed records (the exec watches': `-f`'s stopped execs, `--all`'s
//! execs) read from the async runtime: woken when the kernel side writes, every record read
//! at once, kept until taken (so a caller's `select!` may drop a wait without losing any).
use std::collections::VecDeque;

use aya::maps::{Map, MapData, MapError, RingBuf};
use tokio::io::unix::AsyncFd;

pub struct Records<T> {
    ring: AsyncFd<RingBuf<MapData>>,
    ready: VecDeque<T>,
    parse: fn(&[u8]) -> Option<T>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("the ring map: {0}")]
    Map(#[from] MapError),
    #[error("watching the ring: {0}")]
    Io(#[from] std::io::Error),
}

impl<T> Records<T> {
    /// Watches ring `map`, whose records `parse` reads (a record it refuses is skipped).
    pub fn new(map: Map, parse: fn(&[u8]) -> Option<T>) -> Result<Records<T>, RecordsError> {
        let ring = RingBuf::try_from(map)?;
        // SAFETY: the RingBuf owns its map fd and keeps it open and unchanged for as long as
        // the AsyncFd holds it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Records {
            ring,
            ready: VecDeque::new(),
            parse,
        })
    }

    /// Reads what the ring holds now, without waiting.
    fn read_now(&mut self) {
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            if let Some(r) = (self.parse)(&item) {
                self.ready.push_back(r);
            }
        }
    }

    /// Waits until at least one record is read. Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<()> {
        while self.ready.is_empty() {
            // Cleared before reading: a record written after the read wakes the next wait.
            self.ring.readable_mut().await?.clear_ready();
            self.read_now();
        }
        Ok(())
    }

    /// The oldest record read and not taken.
    pub fn pop(&mut self) -> Option<T> {
        self.ready.pop_front()
    }

    /// Every record read and not taken, with what the ring holds now.
    pub fn take_all(&mut self) -> Vec<T> {
        self.read_now();
        self.ready.drain(..).collect()
    }
}
