//! Probes: the registry of what is probed (`registry`), the plan for one binary (`plan`), the
//! kernel facts and ring sizing the BPF side needs (`kernel`, `ring`), loading and attaching
//! (`loader`), what this kernel supports (`features`, for --version and doctor), reading the
//! probes' counters back (`counters`), the CPU sampler's perf-event program (`sampler`), and the exec
//! tracepoints of `--follow` (`follow`) and `--all` (`execs`).
//! Everything that talks to the kernel's BPF interfaces lives here; what the probes send is
//! read by `source::live`.
mod counters;
pub mod execs;
pub mod features;
pub mod follow;
pub mod kernel;
mod loader;
mod plan;
mod records;
mod registry;
mod ring;
mod sampler;

pub use counters::ProgramStats;
pub use loader::{Links, Tracer};
pub use plan::{offsets, plan, without_derived, Attachment};
pub use registry::{in_aggregate, Level};
pub use ring::{ring_bytes, DRAIN_INTERVAL};
#[cfg(test)]
pub use sampler::SamplerError;
pub use sampler::{Sampler, SamplerStats};

/// The embedded BPF object's maps that not every loader of it uses, each with the smallest
/// size it may have (a ring: one page; a table: one entry). The kernel allocates every map of
/// an object at load, so without trimming each traced process's session would also carry
/// `-f`'s tree (1.3 MB, preallocated) and both exec rings, and each side object the tracer's
/// event ring and tables.
const TRIMMABLE_MAPS: &[(&str, u32)] = &[
    ("EVENTS", 4096),
    ("SAMPLES", 4096),
    ("FOLLOW_EXECS", 4096),
    ("ALL_EXECS", 4096),
    ("FOLLOW_TREE", 1),
    ("SEEN_STACKS", 1),
    ("RUNNABLE_SINCE", 1),
    ("STEAL_ARGS", 1),
    ("GOIDS", 1),
];

/// A loader of the embedded object with every map in [`TRIMMABLE_MAPS`] but `used` at its
/// smallest; a caller sizes what it uses after this (a later size for a map wins).
pub(crate) fn trimmed_loader<'a>(used: &[&str]) -> aya::EbpfLoader<'a> {
    let mut loader = aya::EbpfLoader::new();
    for &(name, smallest) in TRIMMABLE_MAPS {
        if !used.contains(&name) {
            loader.map_max_entries(name, smallest);
        }
    }
    loader
}
