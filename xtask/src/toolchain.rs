//! The pinned Rust toolchains, and cargo run through them.
//!
//! xtask itself builds with whatever stable rustup has (it needs nothing newer than 1.95), then
//! installs the two pinned toolchains and runs every other build through them, so a fresh
//! machine gets exactly the same compilers:
//! - [`STABLE`] for the userspace crates (aya 0.16 needs rustc 1.98 or newer);
//! - the dated nightly named in `gmp-trace-ebpf/rust-toolchain.toml` for the BPF probes
//!   (`gmp-trace/bpf-object/build.rs` reads the same file), with rust-src for `-Z build-std=core`.
//!
//! No root `rust-toolchain.toml`: with `RUSTUP_AUTO_INSTALL=0` (set on some machines) a pin
//! that is not installed yet stops cargo before xtask could install it.
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context as _};
use gmp_trace_tests::workspace_root;

use crate::{output, run};

/// The stable toolchain the userspace crates are built and tested with.
pub const STABLE: &str = "1.99.1";
/// Components `cargo xtask lint` adds to both toolchains (the build needs none of them).
const LINT_COMPONENTS: &[&str] = &["clippy", "rustfmt"];

/// The probes' nightly toolchain file.
pub fn bpf_toolchain_file() -> PathBuf {
    workspace_root().join("gmp-trace-ebpf/rust-toolchain.toml")
}

/// The pinned nightly (`channel` of the probes' toolchain file) and its components.
pub fn bpf_nightly() -> anyhow::Result<(String, Vec<String>)> {
    let path = bpf_toolchain_file();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_toolchain_file(&text).with_context(|| format!("in {}", path.display()))
}

/// `channel = "…"` and `components = ["…", …]` of a rust-toolchain.toml (the few lines this
/// project writes: one key per line).
fn parse_toolchain_file(text: &str) -> anyhow::Result<(String, Vec<String>)> {
    let value = |key: &str| {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
    };
    let unquote = |s: &str| s.trim().trim_matches('"').to_string();
    let channel = value("channel")
        .map(|v| unquote(&v))
        .context("no channel")?;
    let components = value("components")
        .map(|v| {
            v.trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(unquote)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok((channel, components))
}

/// Installs `toolchain` with `components` unless rustup already has all of them.
fn ensure(toolchain: &str, components: &[String]) -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        toolchain,
    ]));
    if let Some(list) = installed {
        // Host-specific components are listed with the host: `clippy-x86_64-unknown-linux-gnu`.
        let have = |c: &str| {
            list.lines()
                .any(|l| l == c || l.starts_with(&format!("{c}-")))
        };
        if components.iter().all(|c| have(c)) {
            return Ok(());
        }
    }
    eprintln!(
        "xtask: installing Rust {toolchain} ({})",
        components.join(", ")
    );
    let mut c = Command::new("rustup");
    c.args([
        "toolchain",
        "install",
        toolchain,
        "--profile",
        "minimal",
        "--no-self-update",
    ]);
    for comp in components {
        c.args(["--component", comp]);
    }
    run(&mut c).with_context(|| {
        format!("installing the pinned Rust toolchain {toolchain} with rustup (is rustup on PATH?)")
    })
}

/// Installs both pinned toolchains with what the build needs (the nightly's rust-src), and
/// with `lint` also clippy and rustfmt.
pub fn install(lint: bool) -> anyhow::Result<()> {
    let extra: Vec<String> = if lint {
        LINT_COMPONENTS.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    ensure(STABLE, &extra)?;
    let (nightly, mut components) = bpf_nightly()?;
    if !components.iter().any(|c| c == "rust-src") {
        bail!(
            "{} must list the rust-src component",
            bpf_toolchain_file().display()
        );
    }
    components.extend(extra);
    ensure(&nightly, &components)
}

/// Adds the standard library of `target` to `toolchain` unless rustup has it (the musl one for
/// `cargo xtask dist`: ~5 s).
pub fn ensure_target(toolchain: &str, target: &str) -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "target",
        "list",
        "--installed",
        "--toolchain",
        toolchain,
    ]));
    if installed.is_some_and(|l| l.lines().any(|t| t.trim() == target)) {
        return Ok(());
    }
    eprintln!("xtask: adding the {target} target to Rust {toolchain}");
    run(Command::new("rustup").args(["target", "add", "--toolchain", toolchain, target]))
}

/// `rustc +TOOLCHAIN ARGS`'s output.
pub fn rustc_output(toolchain: &str, args: &[&str]) -> anyhow::Result<String> {
    output(
        Command::new("rustup")
            .args(["run", toolchain, "rustc"])
            .args(args),
    )
    .with_context(|| {
        format!(
            "running rustc {} with toolchain {toolchain}",
            args.join(" ")
        )
    })
}

/// cargo of the pinned stable toolchain, in the workspace root. The variables the outer cargo
/// (the one that built xtask) set for its child are removed so they do not leak into the
/// pinned toolchain's builds.
pub fn cargo() -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", STABLE, "cargo"])
        .current_dir(workspace_root())
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_probes_toolchain_file() {
        let (channel, components) = bpf_nightly().unwrap();
        assert!(
            channel.starts_with("nightly-20"),
            "a dated nightly, got {channel}"
        );
        assert!(components.iter().any(|c| c == "rust-src"), "{components:?}");
    }

    #[test]
    fn parses_one_key_per_line() {
        let (ch, comps) = parse_toolchain_file(
            "# c\n[toolchain]\nchannel = \"nightly-2026-01-02\"\ncomponents = [\"rust-src\", \"clippy\"]\n",
        )
        .unwrap();
        assert_eq!(ch, "nightly-2026-01-02");
        assert_eq!(comps, ["rust-src", "clippy"]);
        assert!(parse_toolchain_file("[toolchain]\n").is_err());
    }
}
