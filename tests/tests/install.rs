//! gmp-trace as a user installs it: `cargo xtask dist` builds the static binary, the tarball
//! and the .deb (an incremental musl build when target/ is warm); the .deb is unpacked into a
//! clean root (`dpkg -x`, no package database touched), and the installed binary runs from
//! outside the repository: `--version`, `-V`, `doctor`, and a trace of the fan-out sample. Each
//! man page renders with `man -l` without warnings; the completions load in bash (and complete
//! a subcommand), parse in zsh and fish (fish completes too); the tarball holds what it should.
//!
//! Needs what `cargo xtask bootstrap` installs (the musl target, file, man-db, zsh, fish): a
//! missing tool fails the test, it never passes silently. The trace part needs root and BPF.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use gmp_trace_tests::{
    bpf_unavailable_reason, build_sample, of_kind, read_jsonl, workspace_root, Variant, GO_VERSIONS,
};

/// One man page per command, named as man finds them.
const PAGES: &[&str] = &[
    "gmp-trace",
    "gmp-trace-replay",
    "gmp-trace-compare",
    "gmp-trace-dump",
    "gmp-trace-profile",
    "gmp-trace-top",
    "gmp-trace-serve",
    "gmp-trace-doctor",
    "gmp-trace-completions",
];

struct Dist {
    version: String,
    tarball: PathBuf,
    /// The .deb unpacked: `ROOT/usr/bin/gmp-trace` and the rest.
    root: PathBuf,
}

/// The version in gmp-trace/Cargo.toml (the artifacts are named after it).
fn version() -> String {
    let toml = std::fs::read_to_string(workspace_root().join("gmp-trace/Cargo.toml")).unwrap();
    toml.lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("gmp-trace/Cargo.toml has a version")
}

/// `cargo xtask dist` once for every test here, then the .deb unpacked into a fresh root.
fn dist() -> &'static Dist {
    static DIST: OnceLock<Dist> = OnceLock::new();
    DIST.get_or_init(|| {
        let started = std::time::Instant::now();
        let st = Command::new("rustup")
            .args(["run", "1.99.1", "cargo", "xtask", "dist"])
            .current_dir(workspace_root())
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("run cargo xtask dist");
        assert!(st.success(), "cargo xtask dist failed: {st}");
        eprintln!("cargo xtask dist: {:.1} s", started.elapsed().as_secs_f64());
        let version = version();
        let out = workspace_root().join("target/dist");
        let deb = out.join(format!("gmp-trace_{version}_amd64.deb"));
        let root = workspace_root().join("target/test-runs/install-root");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let x = Command::new("dpkg").arg("-x").arg(&deb).arg(&root).status();
        assert!(x.unwrap().success(), "dpkg -x {}", deb.display());
        Dist {
            tarball: out.join(format!("gmp-trace-{version}-x86_64-linux.tar.gz")),
            version,
            root,
        }
    })
}

/// A folder outside the repository, the installed binary's working directory.
fn elsewhere(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gmp-trace-install-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    assert!(!d.starts_with(workspace_root()), "{}", d.display());
    d
}

/// The installed gmp-trace, run in `dir`.
fn installed(dir: &Path, args: &[&str]) -> Output {
    Command::new(dist().root.join("usr/bin/gmp-trace"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run the installed gmp-trace")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A tool the bootstrap installs; its absence is a failure, not a skip.
fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is missing: `cargo xtask bootstrap` installs Debian's {package}"
    );
}

#[test]
fn the_deb_installs_everything_in_its_standard_place() {
    let root = &dist().root;
    let mut want: Vec<String> = vec![
        "usr/bin/gmp-trace".into(),
        "usr/share/bash-completion/completions/gmp-trace".into(),
        "usr/share/zsh/vendor-completions/_gmp-trace".into(),
        "usr/share/fish/vendor_completions.d/gmp-trace.fish".into(),
        "usr/share/doc/gmp-trace/copyright".into(),
    ];
    want.extend(PAGES.iter().map(|p| format!("usr/share/man/man1/{p}.1.gz")));
    for f in &want {
        assert!(root.join(f).is_file(), "{f} missing from the .deb");
    }
    // Static: nothing for the dynamic loader to find on the target machine.
    let file = Command::new("file")
        .arg("-b")
        .arg(root.join("usr/bin/gmp-trace"))
        .output();
    let file = text(&file.expect("file").stdout);
    assert!(
        file.contains("static-pie linked") || file.contains("statically linked"),
        "{file}"
    );
    let info = Command::new("dpkg-deb")
        .arg("-f")
        .arg(workspace_root().join(format!(
            "target/dist/gmp-trace_{}_amd64.deb",
            dist().version
        )))
        .args(["Package", "Version", "Architecture", "Depends"])
        .output()
        .unwrap();
    assert_eq!(
        text(&info.stdout),
        format!(
            "Package: gmp-trace\nVersion: {}\nArchitecture: amd64\n",
            dist().version
        ),
        "no Depends: the binary is static"
    );
}

#[test]
fn installed_version_says_what_a_bug_report_needs() {
    let dir = elsewhere("version");
    let short = installed(&dir, &["-V"]);
    assert!(short.status.success());
    let short = text(&short.stdout);
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    let commit = text(&commit.stdout).trim().to_string();
    assert!(
        short.starts_with(&format!("gmp-trace {} ({commit} 20", dist().version)),
        "{short}"
    );
    assert_eq!(short.lines().count(), 1, "{short}");
    let long = installed(&dir, &["--version"]);
    assert!(long.status.success());
    let long = text(&long.stdout);
    for line in [
        format!("gmp-trace {}", dist().version),
        format!("commit: {commit}"),
        "target: x86_64-unknown-linux-musl, static (musl)".into(),
        "aya: 0.16".into(),
    ] {
        assert!(
            long.lines().any(|l| l.starts_with(&line)),
            "{line:?} in\n{long}"
        );
    }
    assert!(
        long.contains("\ngo: 1.19 to 1.27 (checked); newer 1.x: traced"),
        "{long}"
    );
    if bpf_unavailable_reason().is_none() {
        let links = long
            .lines()
            .find(|l| l.starts_with("uprobe links: "))
            .unwrap();
        assert!(
            links.contains("uprobe_multi") || links.contains("perf_event"),
            "{links}"
        );
        assert!(long.contains("\nring buffer: yes\n"), "{long}");
    }
}

#[test]
fn installed_doctor_checks_this_machine() {
    let dir = elsewhere("doctor");
    let out = installed(&dir, &["doctor"]);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    for c in [
        "kernel: ",
        "privileges: ",
        "lockdown: ",
        "container: ",
        "probes verify: ",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.get(6..).is_some_and(|l| l.starts_with(c))),
            "{c} in\n{stdout}"
        );
    }
    let words = ["ok    ", "warn  ", "FAIL  ", "skip  "];
    let checks = &lines[..lines.len() - 1];
    assert!(
        checks
            .iter()
            .all(|l| words.iter().any(|w| l.starts_with(w))),
        "{stdout}"
    );
    let failed = checks.iter().any(|l| l.starts_with("FAIL"));
    assert_eq!(out.status.code(), Some(i32::from(failed)), "{stdout}");
    match bpf_unavailable_reason() {
        // Root with BPF: the embedded probes pass this kernel's verifier.
        None => {
            assert!(!failed, "{stdout}");
            assert!(stdout.contains("ok    probes verify: "), "{stdout}");
        }
        Some(why) => assert!(failed, "{why}, yet no check failed:\n{stdout}"),
    }
    let json = installed(&dir, &["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("doctor --json");
    assert_eq!(v.as_array().unwrap().len(), checks.len());
}

#[test]
fn installed_doctor_without_privileges_says_what_to_fix() {
    require_tool("setpriv", "util-linux");
    let dir = elsewhere("doctor-nobody");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = Command::new("setpriv");
    if root {
        // nobody, with no capability left to gain back.
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["--inh-caps=-all", "--bounding-set=-all"]);
    }
    let out = c
        .arg(dist().root.join("usr/bin/gmp-trace"))
        .arg("doctor")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let privileges = stdout
        .lines()
        .find(|l| l.starts_with("FAIL  privileges: "))
        .unwrap_or_else(|| panic!("no failed privilege check:\n{stdout}"));
    assert!(
        privileges.contains("setcap cap_bpf,cap_perfmon"),
        "{privileges}"
    );
    assert!(stdout.contains("FAIL  BPF program load: "), "{stdout}");
    assert!(
        stdout.ends_with("gmp-trace cannot trace here until they are fixed\n"),
        "{stdout}"
    );
}

#[test]
fn installed_binary_traces_from_outside_the_repo() {
    if let Some(why) = bpf_unavailable_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let sample = build_sample("fanout", GO_VERSIONS[0], Variant::Default);
    let dir = elsewhere("trace");
    let n = 20;
    let out = Command::new(dist().root.join("usr/bin/gmp-trace"))
        .args([
            "-q",
            "-o",
            "events.jsonl",
            "--summary-json",
            "summary.json",
            "--",
        ])
        .arg(&sample)
        .arg(n.to_string())
        .env("GOGC", "off")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(text(&out.stdout).starts_with(&format!("started {} goroutines", 2 * n)));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let events = read_jsonl(&dir.join("events.jsonl"));
    // The workers, their children and the five goroutines the runtime starts with GC off.
    assert_eq!(of_kind(&events, "go_create").len(), 2 * n + 5, "{stderr}");
    assert_eq!(summary["goroutines_created"], (2 * n + 5) as u64);
    assert_eq!(summary["lost_events"], 0);
}

#[test]
fn every_man_page_renders_without_warnings() {
    require_tool("man", "man-db");
    for page in PAGES {
        let path = dist().root.join(format!("usr/share/man/man1/{page}.1.gz"));
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env_remove("MAN_KEEP_FORMATTING")
            .output()
            .expect("man");
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success() && stderr.is_empty(),
            "{page}: {stderr}"
        );
        assert!(
            stdout.contains("NAME") && stdout.contains("SYNOPSIS"),
            "{page}:\n{stdout}"
        );
        let synopsis = page.replacen("gmp-trace-", "gmp-trace ", 1);
        // man justifies lines: compare words, not spaces.
        let words = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains(&synopsis),
            "{page} names `{synopsis}`:\n{stdout}"
        );
    }
}

#[test]
fn completions_load_and_complete() {
    let root = &dist().root;
    let bash = root.join("usr/share/bash-completion/completions/gmp-trace");
    // Sourced, the script registers its function and completes `gmp-trace d` to the
    // subcommands that start so (doctor, dump).
    let script = format!(
        "source '{}' && complete -p gmp-trace && COMP_WORDS=(gmp-trace d) COMP_CWORD=1 && \
         _gmp__trace gmp-trace d gmp-trace && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bash.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    let registered = said.lines().next().unwrap_or_default();
    assert!(
        registered.starts_with("complete ")
            && registered.contains(" -F _gmp__trace ")
            && registered.ends_with(" gmp-trace"),
        "{said}"
    );
    let words: Vec<&str> = said.lines().skip(1).collect();
    assert!(
        words.contains(&"doctor") && words.contains(&"dump"),
        "{words:?}"
    );
    require_tool("zsh", "zsh");
    let zsh = Command::new("zsh")
        .arg("-n")
        .arg(root.join("usr/share/zsh/vendor-completions/_gmp-trace"))
        .output()
        .unwrap();
    assert!(zsh.status.success(), "zsh -n: {}", text(&zsh.stderr));
    require_tool("fish", "fish");
    let fish_file = root.join("usr/share/fish/vendor_completions.d/gmp-trace.fish");
    let fish = Command::new("fish")
        .arg("-n")
        .arg(&fish_file)
        .output()
        .unwrap();
    assert!(fish.status.success(), "fish -n: {}", text(&fish.stderr));
    let script = format!(
        "source '{}'; complete -C 'gmp-trace do'",
        fish_file.display()
    );
    let fish = Command::new("fish")
        .args(["--no-config", "-c", &script])
        .output()
        .unwrap();
    let said = text(&fish.stdout);
    assert!(
        said.lines().any(|l| l.starts_with("doctor")),
        "fish completes:\n{said}"
    );
}

#[test]
fn the_tarball_holds_binary_pages_completions_and_licenses() {
    let d = dist();
    let top = format!("gmp-trace-{}-x86_64-linux", d.version);
    let list = Command::new("tar")
        .arg("tzvf")
        .arg(&d.tarball)
        .output()
        .unwrap();
    assert!(list.status.success());
    let list = text(&list.stdout);
    let entry = |name: &str| {
        list.lines()
            .find(|l| l.ends_with(&format!(" {top}/{name}")))
    };
    let mut want: Vec<String> = [
        "gmp-trace",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "completions/gmp-trace",
        "completions/_gmp-trace",
        "completions/gmp-trace.fish",
    ]
    .map(String::from)
    .to_vec();
    want.extend(PAGES.iter().map(|p| format!("man/man1/{p}.1")));
    for name in &want {
        assert!(entry(name).is_some(), "{name} missing:\n{list}");
    }
    assert!(
        entry("gmp-trace").unwrap().starts_with("-rwxr-xr-x 0/0"),
        "{list}"
    );
    // Everything under one folder, nothing else (files, folders).
    let files = list.lines().filter(|l| l.starts_with('-')).count();
    assert_eq!(files, want.len(), "{list}");
    assert!(
        list.lines().all(|l| l.contains(&format!(" {top}/"))),
        "{list}"
    );
    // The same binary as the .deb's.
    let dir = elsewhere("tarball");
    let x = Command::new("tar")
        .arg("xzf")
        .arg(&d.tarball)
        .current_dir(&dir)
        .status();
    assert!(x.unwrap().success());
    let from_tar = std::fs::read(dir.join(&top).join("gmp-trace")).unwrap();
    let from_deb = std::fs::read(d.root.join("usr/bin/gmp-trace")).unwrap();
    assert!(
        from_tar == from_deb,
        "the tarball's and the .deb's binaries differ"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
