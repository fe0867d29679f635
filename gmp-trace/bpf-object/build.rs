//! Builds the BPF object from gmp-trace-ebpf with the nightly pinned in
//! gmp-trace-ebpf/rust-toolchain.toml and bpf-linker (`cargo xtask bootstrap` installs both) and
//! leaves it in OUT_DIR for lib.rs to include.
//!
//! The build is one `cargo build` of the probes for the BPF target, run here with the standard
//! library alone: a build script with build-dependencies (aya-build, with cargo_metadata, serde
//! and syn behind it) can only start once they are compiled, which put the ~25 s BPF build
//! 20-45 s into a fresh build instead of at its start.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const EBPF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../gmp-trace-ebpf");
const COMMON_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../gmp-trace-common");
/// The bpf-linker build's output, the ELF object with every program and map.
const BPF_BIN: &str = "gmp-trace";

type Result<T> = std::result::Result<T, String>;

/// The `channel` of the probes' rust-toolchain.toml.
fn pinned_nightly() -> Result<String> {
    let path = format!("{EBPF_DIR}/rust-toolchain.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .ok_or_else(|| format!("no channel in {path}"))
}

fn env(key: &str) -> Result<String> {
    std::env::var(key).map_err(|_| format!("{key} is not set (not run by cargo?)"))
}

/// `bpfel-unknown-none` or `bpfeb-unknown-none`, the byte order of the machine the probes will
/// run on, and `bpf_target_arch` (the register layout aya-ebpf reads pt_regs with).
fn bpf_target() -> Result<(String, String)> {
    let order = match env("CARGO_CFG_TARGET_ENDIAN")?.as_str() {
        "little" => "bpfel",
        "big" => "bpfeb",
        other => return Err(format!("unsupported byte order {other}")),
    };
    let arch = env("CARGO_CFG_TARGET_ARCH")?;
    let arch = if arch.starts_with("riscv64") {
        "riscv64".to_string()
    } else {
        arch
    };
    Ok((format!("{order}-unknown-none"), arch))
}

/// `rustup run NIGHTLY cargo build` of the probes, in their folder (their .cargo/config.toml,
/// build settings for the probes alone, applies there), into a target folder under OUT_DIR.
fn build_probes(nightly: &str, target: &str, arch: &str, target_dir: &Path) -> Result<()> {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", nightly, "cargo", "build", "--package", "gmp-trace-ebpf", "--bins"])
        .args(["--release", "--target", target, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(EBPF_DIR)
        // BTF for the loader (CO-RE, map definitions) and DWARF for bpf-linker to make it from.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--cfg=bpf_target_arch=\"{arch}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf"),
        )
        // The outer build's compiler is the pinned stable: the probes need the nightly's.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        // Our stdout is cargo's directive channel; the inner build's messages go to stderr,
        // which cargo shows when this script fails.
        .stdout(Stdio::null());
    let status = cmd.status().map_err(|e| format!("running rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{cmd:?}` failed ({status})"))
    }
}

fn main() {
    for path in [EBPF_DIR, COMMON_DIR] {
        println!("cargo::rerun-if-changed={path}");
    }
    let built = pinned_nightly().and_then(|nightly| {
        let (target, arch) = bpf_target()?;
        let out_dir = PathBuf::from(env("OUT_DIR")?);
        let target_dir = out_dir.join("bpf-target");
        build_probes(&nightly, &target, &arch, &target_dir).map_err(|e| {
            format!(
                "building the BPF probes with {nightly}: {e}\nrun `cargo xtask bootstrap` to \
                 install that toolchain (with rust-src) and bpf-linker built against its LLVM"
            )
        })?;
        let object = target_dir.join(&target).join("release").join(BPF_BIN);
        std::fs::copy(&object, out_dir.join(BPF_BIN))
            .map_err(|e| format!("copying {}: {e}", object.display()))?;
        Ok(())
    });
    if let Err(e) = built {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
