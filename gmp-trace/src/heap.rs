//! gmp-trace's own heap under glibc: few arenas, and freed memory given back after bursts.
//!
//! Sessions set up on tokio's blocking pool (`--all`, `-f`) allocate on several threads, and
//! glibc keeps what a thread freed in that thread's arena (8 arenas per core by default): the
//! RSS grew by ~50 MB over 1,000 short-lived processes. Two arenas keep it flat. What a burst of
//! sessions left free inside the heap stays resident until `malloc_trim` hands it back, so a
//! long `--all` run whose processes come and go trims after sessions end (at most once a
//! second: a trim of a 100 MB heap takes about a millisecond). musl has neither.
use std::time::{Duration, Instant};

/// Limits glibc to two malloc arenas; call before any other thread exists.
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Gives freed heap memory back to the kernel, at most once per `every`; a trim asked for
/// sooner is owed, for the caller's next tick.
pub struct Trimmer {
    every: Duration,
    last: Option<Instant>,
    owed: bool,
}

impl Default for Trimmer {
    fn default() -> Trimmer {
        Trimmer::new(Duration::from_secs(1))
    }
}

impl Trimmer {
    pub fn new(every: Duration) -> Trimmer {
        Trimmer {
            every,
            last: None,
            owed: false,
        }
    }

    /// Whether a trim was asked for and not done yet.
    pub fn owed(&self) -> bool {
        self.owed
    }

    /// Trims unless the last trim was less than `every` ago; says whether it did.
    pub fn maybe_trim(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.owed = true;
            return false;
        }
        self.last = Some(now);
        self.owed = false;
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free pages of the allocator's own heaps.
        unsafe {
            libc::malloc_trim(0);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_at_most_once_per_period() {
        let mut t = Trimmer::new(Duration::from_secs(3600));
        assert!(t.maybe_trim(), "the first call trims");
        assert!(!t.owed());
        assert!(!t.maybe_trim(), "a second within the period does not");
        assert!(t.owed(), "and is owed");
        let mut t = Trimmer::new(Duration::ZERO);
        assert!(t.maybe_trim() && t.maybe_trim());
    }
}
