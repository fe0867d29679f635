//! `gmp-trace --version`: what a bug report needs to say about this build and this machine.
//! `-V` (clap's short version, anywhere on the trace command line) stays one line, for scripts;
//! `--version` as the first argument prints the long report below, which asks the kernel what
//! BPF features the tracer will use (a few tiny BPF loads, so it says "unknown" without
//! privileges).
use crate::probes::features::{say, Features};
use crate::probes::Links;

/// `gmp-trace -V`: `gmp-trace 0.1.0 (COMMIT DATE)` (clap prefixes the name).
pub const SHORT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("GMP_TRACE_GIT_COMMIT"),
    " ",
    env!("GMP_TRACE_BUILD_DATE"),
    ")"
);

/// How a static musl build or a glibc one links, for the report.
const LINKAGE: &str = if cfg!(target_env = "musl") {
    "static (musl)"
} else {
    "dynamic (glibc)"
};

/// What gmp-trace does with each Go release (binary/mod.rs and commands/mod.rs enforce it).
fn go_support() -> String {
    use crate::binary::{MAX_KNOWN_MINOR as NEW, MIN_MINOR as OLD};
    format!(
        "1.{OLD} to 1.{NEW} (checked); newer 1.x: traced and profiled with a warning, the runtime \
         offsets read from the binary's DWARF (refused if it was built with -ldflags=-w), wait \
         reasons named as in 1.{NEW}, refused by dump and top; before 1.{OLD}: refused"
    )
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// aya logs a warning for each feature probe the kernel refuses; the report (and the doctor's)
/// says it once, in its place. RUST_LOG still shows them.
pub fn quiet_feature_probes() {
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Error);
    }
}

/// The whole report, one `key: value` line each after the first.
pub fn long() -> String {
    let f = Features::detect();
    let links = match f.default_links() {
        Some(Links::Multi) => "uprobe_multi (one link per program; kernel 6.6+)".to_string(),
        Some(Links::PerfEvent) => {
            "perf_event (one link per probe site; no process-wide uprobe_multi here)".to_string()
        }
        None => format!("{} (run as root to see)", say(&f.uprobe_multi)),
    };
    let lines = [
        ("commit", env!("GMP_TRACE_GIT_COMMIT").to_string()),
        ("built", env!("GMP_TRACE_BUILD_DATE").to_string()),
        ("target", format!("{}, {LINKAGE}", env!("GMP_TRACE_TARGET"))),
        ("go", go_support()),
        ("aya", env!("GMP_TRACE_AYA_VERSION").to_string()),
        ("kernel", kernel_release()),
        ("uprobe links", links),
        ("ring buffer", say(&f.ring_buffer)),
        ("perf-event bpf links", say(&f.perf_link)),
        ("bpf program load", say(&f.uprobe_program)),
    ];
    let mut out = format!("gmp-trace {}\n", env!("CARGO_PKG_VERSION"));
    for (k, v) in lines {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

pub fn run() -> anyhow::Result<i32> {
    quiet_feature_probes();
    print!("{}", long());
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_version_names_the_commit_and_date() {
        let s = super::SHORT;
        assert!(s.starts_with(env!("CARGO_PKG_VERSION")), "{s}");
        let date = env!("GMP_TRACE_BUILD_DATE");
        assert_eq!(date.len(), 10, "YYYY-MM-DD: {date}");
        assert!(date.starts_with("20"), "{date}");
        assert!(s.ends_with(&format!(" {date})")), "{s}");
    }

    #[test]
    fn long_version_has_every_key() {
        let l = super::long();
        for key in [
            "commit: ",
            "built: ",
            "target: ",
            "go: 1.19 to 1.27",
            "aya: 0.",
            "kernel: ",
            "uprobe links: ",
            "ring buffer: ",
        ] {
            assert!(l.contains(&format!("\n{key}")), "{key} missing in:\n{l}");
        }
    }
}
