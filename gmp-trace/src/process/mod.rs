//! The live process: finding or starting the program to trace, its executable and load address,
//! the checks made before anything is attached, and watching it until it exits. `target` is the
//! one interface the trace command sees; `launch` (a command started held before exec) and
//! `attach` (`--pid`) are its two strategies. Runtime-memory reading of a live process belongs
//! here too.
mod attach;
pub mod exe;
pub mod launch;
pub mod preflight;
pub mod target;

pub use target::{Bias, SignalAction, Target};
