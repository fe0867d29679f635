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
