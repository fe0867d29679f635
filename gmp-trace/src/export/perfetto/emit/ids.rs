//! Track UUIDs and flow ids: derived, not counted, so that the same goroutine, thread or P gets
//! the same track in every run of a program and traces from several processes or producers
//! merge without collisions.

/// Seeds track UUIDs and flow ids so two traces (or this trace merged with another producer's)
/// do not collide by accident.
const SEED: u64 = 0x676d_702d_7472_6163; // "gmp-trac"

/// splitmix64's finaliser: a cheap, well-mixed, platform-independent 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a track UUID is derived from, besides the pid.
#[derive(Clone, Copy, Debug)]
pub enum TrackKind {
    Process = 1,
    Thread = 2,
    Proc = 3,
    Goroutine = 4,
    /// Fixed tracks (groups, lanes, counters), `id` says which.
    Fixed = 5,
}

/// Whose tracks: a process's pid and which of its images in the run (0 the first; a process
/// that exec'd and is traced again in its new image, under `-f` or `--all`, gets 1, 2, ...:
/// goroutine and thread ids start over there, so the new image's tracks must not be the old
/// one's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub image: u32,
}

impl Owner {
    fn bits(self) -> u64 {
        u64::from(self.pid) | (u64::from(self.image) << 32)
    }
}

/// A stable UUID: the same (owner, kind, id) gives the same track in every run; never 0 (the
/// implicit global track). A first image's uuids depend on its pid alone.
pub fn track_uuid(owner: Owner, kind: TrackKind, id: u64) -> u64 {
    let h = mix(mix(mix(SEED ^ owner.bits()) ^ kind as u64) ^ id);
    h.max(1)
}

/// Trace-global flow ids: a per-owner base plus a counter.
pub fn flow_base(owner: Owner) -> u64 {
    let image = u64::from(owner.image).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mix(SEED ^ 0xf10 ^ (u64::from(owner.pid) << 32) ^ image)
}
