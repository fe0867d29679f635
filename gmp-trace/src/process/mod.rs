//! The live process: finding or starting the program to trace, its executable and load address,
//! what its runtime already holds, the checks made before anything is attached, and watching it
//! until it exits. `target` is the one interface the trace command sees; `launch` (a command
//! started held before exec) and `attach` (`--pid`) are its two strategies. `exe` (which file it
//! runs), `maps` (where it is loaded) and `runtime` (its goroutines, Ms and Ps, read from its
//! memory) read /proc; the runtime-memory reader of `dump` grows from `runtime`.
pub mod attach;
pub mod discover;
pub mod exe;
pub mod launch;
pub mod maps;
pub mod memory;
pub mod preflight;
pub mod procstat;
pub mod runtime;
pub mod snapshot;
pub mod stacks;
pub mod target;
pub mod unwind;

pub use target::{Bias, SignalAction, Target};
