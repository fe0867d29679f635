//! What the fault tests read from the kernel and the target: the BPF objects a tracer holds (by
//! id, so other tracers running on the machine at the same time do not count), whether they are
//! still alive, the target's text against its file, and the target's resource use. Kept apart
//! from the cases so each case reads as what it does and checks.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// BPF objects by id: links, programs, maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BpfIds {
    pub links: BTreeSet<u64>,
    pub progs: BTreeSet<u64>,
    pub maps: BTreeSet<u64>,
}

impl BpfIds {
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.progs.is_empty() && self.maps.is_empty()
    }

    pub fn extend(&mut self, other: &BpfIds) {
        self.links.extend(&other.links);
        self.progs.extend(&other.progs);
        self.maps.extend(&other.maps);
    }

    pub fn describe(&self) -> String {
        format!(
            "{} links, {} programs, {} maps",
            self.links.len(),
            self.progs.len(),
            self.maps.len()
        )
    }
}

/// The BPF links, programs and maps process `holder` has fds for (its /proc fdinfo: a link's
/// fd names its program too).
pub fn held_by(holder: u32) -> BpfIds {
    let mut ids = BpfIds::default();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{holder}/fdinfo")) else {
        return ids;
    };
    for fd in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(fd.path()) else {
            continue;
        };
        let num = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        ids.links.extend(num("link_id"));
        ids.progs.extend(num("prog_id"));
        ids.maps.extend(num("map_id"));
    }
    ids
}

fn bpftool_ids(what: &str) -> BTreeSet<u64> {
    let out = Command::new("bpftool")
        .args(["-j", what, "show"])
        .output()
        .expect("bpftool is missing: run `cargo xtask bootstrap`");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bpftool {what} show: {e}"));
    v.as_array()
        .map(|a| a.iter().filter_map(|o| o["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// Which of `ids` the kernel still has (bpftool link/prog/map show).
pub fn still_alive(ids: &BpfIds) -> BpfIds {
    let keep = |mine: &BTreeSet<u64>, what: &str| -> BTreeSet<u64> {
        if mine.is_empty() {
            return BTreeSet::new();
        }
        bpftool_ids(what).intersection(mine).copied().collect()
    };
    BpfIds {
        links: keep(&ids.links, "link"),
        progs: keep(&ids.progs, "prog"),
        maps: keep(&ids.maps, "map"),
    }
}

/// Polls until none of `ids` is alive; how long that took from `since`, or what was left at
/// `timeout`.
pub fn wait_gone(ids: &BpfIds, since: Instant, timeout: Duration) -> Result<Duration, BpfIds> {
    loop {
        let left = still_alive(ids);
        if left.is_empty() {
            return Ok(since.elapsed());
        }
        if since.elapsed() > timeout {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The target's executable text mapping, as the process sees it, against the same bytes of the
/// file: the addresses that differ (an attached uprobe is an int3, or on Linux 6.18+ a call into
/// the `[uprobes-trampoline]` page, where the file has the original instruction).
pub struct TextCheck {
    pub start: u64,
    pub len: usize,
    pub differing: Vec<u64>,
}

/// Compares `pid`'s r-xp mapping of its own executable with the file's bytes at the mapping's
/// offset.
pub fn text_vs_file(pid: u32) -> TextCheck {
    let exe: PathBuf = std::fs::read_link(format!("/proc/{pid}/exe")).expect("target's exe");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("target's maps");
    let line = maps
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 6 && f[1] == "r-xp" && f[5] == exe.to_str().unwrap_or("")
        })
        .unwrap_or_else(|| panic!("no text mapping of {} in:\n{maps}", exe.display()));
    let f: Vec<&str> = line.split_whitespace().collect();
    let (a, b) = f[0].split_once('-').expect("a range");
    let hex = |s: &str| u64::from_str_radix(s, 16).expect("hex");
    let (start, end, offset) = (hex(a), hex(b), hex(f[2]));
    let file = std::fs::File::open(&exe).expect("open the target's file");
    let file_len = file.metadata().expect("stat").len();
    // The mapping's last page may run past the end of the file: compare what the file has.
    let len = (end - start).min(file_len - offset) as usize;
    let mut on_disk = vec![0u8; len];
    file.read_exact_at(&mut on_disk, offset)
        .expect("read the file");
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("open /proc/PID/mem");
    let mut live = vec![0u8; len];
    mem.read_exact_at(&mut live, start)
        .expect("read the target's text");
    let differing = (0..len)
        .filter(|&i| live[i] != on_disk[i])
        .map(|i| start + i as u64)
        .collect();
    TextCheck {
        start,
        len,
        differing,
    }
}

/// What a target holds that attaching could leak: resident memory (kB), open fds, mappings,
/// threads.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub rss_kb: u64,
    pub fds: usize,
    pub mappings: usize,
    pub threads: usize,
}

pub fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |k: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {status}"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    let mappings = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("maps")
        .lines()
        .count();
    Usage {
        rss_kb: field("VmRSS:"),
        fds,
        mappings,
        threads: field("Threads:") as usize,
    }
}

/// Lines of tracefs's uprobe_events (probes created through tracefs), where tracefs is mounted.
/// gmp-trace's uprobes (uprobe_multi links, perf_event_open) are not listed there, so this
/// only shows that nothing went that way.
pub fn uprobe_events() -> Option<usize> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/uprobe_events")).ok())
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
}

/// The median of some durations.
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
