//! Helpers shared by gmp-trace's tests: find the Go toolchains `cargo xtask bootstrap` installed,
//! build the sample Go programs under `tests/go/` with them (cached by source hash), and run the
//! gmp-trace binary on them.
//!
//! - [`go`]: toolchains and sample builds.
//! - [`run`]: a traced run ([`Sample::trace`] -> [`TraceRun`]: exit status, output, summary,
//!   events), replays, and picking events out.
//! - [`pid`]: `--pid` mode: a running target, attaching to it, what the kernel shows meanwhile.
//! - [`godump`]: Go-format goroutine dumps (runtime.Stack's, `gmp-trace dump`'s) parsed and
//!   compared.
//! - [`perfetto`]: reading `.pftrace` output back with Perfetto's own trace processor.
//! - [`pprof`]: reading pprof profiles back with `go tool pprof` (`-top`, `-tags` parsed).
//! - [`std_suites`]: Go's own std test suites run untraced and traced, test by test compared.
//! - [`soak`]: a steady server load traced in `--pid` mode, the tracer's RSS sampled (the CI
//!   test and `cargo xtask reliability --only soak`).
//!
//! Everything is re-exported at the crate root, where the tests (and gmp-trace's unit tests)
//! import it from.
//!
//! Tests panic with a message saying what to run when something they need is missing; the only
//! thing they may skip on is BPF being unavailable (see [`bpf_unavailable_reason`]).

use std::path::{Path, PathBuf};

pub mod go;
pub mod godump;
pub mod perfetto;
pub mod pid;
pub mod pprof;
pub mod run;
pub mod soak;
pub mod std_suites;

pub use go::*;
pub use perfetto::*;
pub use run::*;

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives inside the workspace")
        .to_path_buf()
}

/// Why BPF programs cannot be loaded here, or `None` when they can. Tests that need BPF print the
/// reason and return early; anything else is a failure.
pub fn bpf_unavailable_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!("not root (euid {euid}); BPF tests need root"));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() && !Path::new("/sys/fs/bpf").exists() {
        return Some("kernel without BPF support".into());
    }
    None
}

/// Skips the calling test, printing why, when BPF cannot load.
#[macro_export]
macro_rules! require_bpf {
    () => {
        if let Some(reason) = $crate::bpf_unavailable_reason() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}
