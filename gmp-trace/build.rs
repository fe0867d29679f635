//! Builds the BPF object from gmp-trace-ebpf with the nightly toolchain and bpf-linker
//! (`cargo xtask bootstrap` installs both) and leaves it in OUT_DIR for `include_bytes_aligned!`.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let ebpf = aya_build::Package {
        name: "gmp-trace-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../gmp-trace-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::default()).context(
        "building the BPF probes failed; run `cargo xtask bootstrap` to install the nightly \
         rust-src component and bpf-linker",
    )
}
