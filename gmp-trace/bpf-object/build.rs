//! Builds the BPF object from gmp-trace-ebpf with the nightly pinned in
//! gmp-trace-ebpf/rust-toolchain.toml and bpf-linker (`cargo xtask bootstrap` installs both) and
//! leaves it in OUT_DIR for lib.rs to include.
use anyhow::Context as _;

const EBPF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../gmp-trace-ebpf");

/// The `channel` of the probes' rust-toolchain.toml.
fn pinned_nightly() -> anyhow::Result<String> {
    let path = format!("{EBPF_DIR}/rust-toolchain.toml");
    println!("cargo::rerun-if-changed={path}");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .with_context(|| format!("no channel in {path}"))
}

fn main() -> anyhow::Result<()> {
    // aya-build watches the probes' folder; the wire types they are built from live next door.
    println!("cargo::rerun-if-changed={EBPF_DIR}/../gmp-trace-common");
    let nightly = pinned_nightly()?;
    // aya-build runs cargo in our working directory: run it in the probes' folder, so that their
    // .cargo/config.toml (build settings for the probes alone) applies.
    std::env::set_current_dir(EBPF_DIR).with_context(|| format!("entering {EBPF_DIR}"))?;
    let ebpf = aya_build::Package {
        name: "gmp-trace-ebpf",
        root_dir: EBPF_DIR,
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::Custom(&nightly)).with_context(|| {
        format!(
            "building the BPF probes with {nightly} failed; run `cargo xtask bootstrap` to install \
             that toolchain (with rust-src) and bpf-linker built against its LLVM"
        )
    })
}
