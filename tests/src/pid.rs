//! `--pid` mode from the outside: a Go program started before gmp-trace ([`start_parker`]),
//! gmp-trace attached to it and waited for until its probes are in ([`attach`]), and what the
//! kernel and the target show meanwhile: the target's code ([`text_snapshot`]) and the BPF links
//! gmp-trace holds ([`links_held_by`], [`all_link_ids`]).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};

use crate::{build_sample, gmp_trace_bin, Variant, GO_VERSIONS};

/// The executable mapping (start, bytes) of `pid`'s text, as the process sees it now: an
/// attached uprobe shows as an int3 (0xcc) at its address. (Not the kernel's `[uprobes]`
/// trampoline page, also r-xp, which Linux 6.18+ maps below the text once it has turned a
/// probed 5-byte NOP into a call to it.)
pub fn text_snapshot(pid: u32) -> (u64, Vec<u8>) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let line = maps
        .lines()
        .find(|l| {
            l.split_whitespace().nth(1) == Some("r-xp")
                && l.split_whitespace().nth(5) == exe.to_str()
        })
        .expect("a text mapping");
    let range = line.split_whitespace().next().unwrap();
    let (a, b) = range.split_once('-').unwrap();
    let (a, b) = (
        u64::from_str_radix(a, 16).unwrap(),
        u64::from_str_radix(b, 16).unwrap(),
    );
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut buf = vec![0u8; (b - a) as usize];
    mem.read_exact_at(&mut buf, a).unwrap();
    (a, buf)
}

/// Kills the target when a test ends, passing or failing: a parker left running would hold the
/// test's stderr open (whoever reads it would wait forever).
pub struct Target(pub Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `parker -loop` (Go 1.27) and waits for its first line; returns it and its pid.
pub fn start_parker() -> (Target, u32) {
    let bin = build_sample("parker", GO_VERSIONS[0], Variant::Default);
    let mut target = Target(
        Command::new(&bin)
            .arg("-loop")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start parker"),
    );
    let pid = target.0.id();
    let mut line = String::new();
    BufReader::new(target.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("parker pid {pid}"));
    (target, pid)
}

/// Reads gmp-trace's stderr until it says the probes are in.
pub fn wait_attached(err: &mut impl BufRead) {
    let mut said = String::new();
    while !said.contains("attached to pid") {
        said.clear();
        if err.read_line(&mut said).unwrap() == 0 {
            panic!("gmp-trace ended without attaching");
        }
    }
}

/// gmp-trace running in `--pid` mode, its probes in.
pub struct Attached {
    pub child: Child,
    /// The rest of gmp-trace's stderr, after the line saying it attached.
    pub stderr: BufReader<ChildStderr>,
}

/// Starts `gmp-trace --pid <pid> <args>` (stderr piped, stdout as `stdout` says) and returns
/// once it says the probes are in.
pub fn attach<S: AsRef<OsStr>>(
    pid: u32,
    args: impl IntoIterator<Item = S>,
    stdout: Stdio,
) -> Attached {
    let mut child = Command::new(gmp_trace_bin())
        .args(["--pid", &pid.to_string()])
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gmp-trace");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    wait_attached(&mut stderr);
    Attached { child, stderr }
}

impl Attached {
    /// gmp-trace's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for gmp-trace to end; returns how, and what it said after attaching.
    pub fn finish(mut self) -> (ExitStatus, String) {
        let mut rest = Vec::new();
        self.stderr.read_to_end(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        (status, String::from_utf8_lossy(&rest).into_owned())
    }
}

/// A BPF link held by a process, as its fdinfo describes it.
#[derive(Debug)]
pub struct HeldLink {
    pub id: u64,
    /// The program's name (the kernel keeps 15 characters).
    pub program: String,
    /// `uprobe_multi` or `perf` (a perf-event uprobe).
    pub kind: String,
    /// Sites the link covers (`uprobe_cnt` of a multi link; 1 for a perf-event uprobe).
    pub sites: usize,
    /// The pid a multi link is filtered on.
    pub pid: Option<u32>,
}

/// The BPF links process `holder` holds (its fds' /proc fdinfo), with their programs' names
/// from bpftool.
pub fn links_held_by(holder: u32) -> Vec<HeldLink> {
    let progs: serde_json::Value = {
        let out = Command::new("bpftool")
            .args(["-j", "prog", "show"])
            .output()
            .expect("bpftool is missing: run `cargo xtask bootstrap`");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let name_of = |id: u64| -> String {
        progs
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"] == id))
            .and_then(|p| p["name"].as_str())
            .unwrap_or("?")
            .to_string()
    };
    let mut out = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{holder}/fdinfo")).unwrap() {
        let Ok(text) = std::fs::read_to_string(fd.unwrap().path()) else {
            continue;
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        let Some(kind) = field("link_type") else {
            continue;
        };
        let num = |k: &str| field(k).and_then(|v| v.parse::<u64>().ok());
        out.push(HeldLink {
            id: num("link_id").unwrap(),
            program: name_of(num("prog_id").unwrap()),
            sites: num("uprobe_cnt").map_or(1, |n| n as usize),
            pid: num("pid").map(|p| p as u32),
            kind,
        });
    }
    out
}

/// Ids of every BPF link in the kernel.
pub fn all_link_ids() -> Vec<u64> {
    let out = Command::new("bpftool")
        .args(["-j", "link", "show"])
        .output()
        .expect("bpftool is missing: run `cargo xtask bootstrap`");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["id"].as_u64())
        .collect()
}
