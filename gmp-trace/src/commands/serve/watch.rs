//! Which processes `serve` watches, pass after pass: each interval the selection is looked at
//! again (a scan of /proc for `--all`, the listed pids otherwise), so a process that starts
//! later is picked up at the next pass, and one that exited keeps its last series for the
//! grace period, then loses them (the endpoint's cardinality is what is alive plus what died
//! within the grace). A process is its pid and its start time: a pid reused by another program
//! is a new process, the old one's series go as an exit's do.
//!
//! Every /proc entry may vanish or refuse between two reads; none of that is an error here, only
//! a log line (once per process, not once per pass).
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::binary::GoBinary;
use crate::process::discover::{Discoverer, Filter, Look, ProcessIdentity};

use super::read::{self, ProcReader, ReadFailure, Reading};

/// What to watch.
pub enum Selection {
    All(Filter),
    Pids(Vec<u32>),
}

/// A process and what is known of it.
pub struct Watched {
    pub id: ProcessIdentity,
    /// Seconds since the epoch.
    pub start_time: Option<f64>,
    /// None when the process cannot be read (an unsupported Go release, a layout we do not
    /// know): it is listed, with no numbers.
    reader: Option<ProcReader>,
    pub last: Option<Reading>,
    /// Reads that failed (not counting the runtime's start).
    pub read_failures: u64,
    pub gone_at: Option<Instant>,
    logged_failure: bool,
}

/// The agent's own counts.
#[derive(Clone, Debug, Default)]
pub struct AgentCounts {
    pub passes: u64,
    pub processes_seen: u64,
    /// Processes whose /proc/PID/exe the last scan could not read.
    pub unreadable: usize,
    /// Read durations (seconds) of this pass, for the histogram.
    pub read_durations: Vec<f64>,
    pub pass_seconds: f64,
}

pub struct Watcher {
    selection: Selection,
    grace: Duration,
    /// `--with sched`: the latency probes on each process once its runtime is up.
    with_sched: bool,
    discover: Discoverer,
    /// By (pid, start ticks).
    pub procs: BTreeMap<(u32, u64), Watched>,
    /// Opened executables, shared by every process that runs the same file.
    binaries: HashMap<(u64, u64, u64, i64), Arc<GoBinary>>,
    /// Pids of `--pid` already said to be not Go (said once).
    told: HashSet<u32>,
    pub agent: AgentCounts,
    /// What the processes and executables let go of goes back to the kernel (an agent that
    /// runs for weeks on a host whose processes come and go).
    trim: crate::heap::Trimmer,
}

impl Watcher {
    pub fn new(selection: Selection, grace: Duration, with_sched: bool) -> Watcher {
        Watcher {
            selection,
            grace,
            with_sched,
            discover: Discoverer::new(),
            procs: BTreeMap::new(),
            binaries: HashMap::new(),
            told: HashSet::new(),
            agent: AgentCounts::default(),
            trim: crate::heap::Trimmer::default(),
        }
    }

    /// One pass: find the processes, read each, age out the exited.
    pub fn pass(&mut self) {
        let t0 = Instant::now();
        let now = Instant::now();
        self.agent.read_durations.clear();
        let found = self.find();
        let mut alive = HashSet::new();
        for id in found {
            let Some(ticks) = read::start_ticks(id.pid) else {
                continue;
            };
            let key = (id.pid, ticks);
            alive.insert(key);
            // Same pid, same start, another executable: the process exec'd. Its old series
            // end now (the old image's numbers say nothing of the new one).
            let execd = self.procs.get(&key).is_some_and(|w| w.id.exe != id.exe);
            if execd {
                log::info!("pid {} exec'd {}: watched anew", id.pid, id.exe.display());
            }
            if execd || !self.procs.contains_key(&key) {
                let w = self.watch(id, ticks);
                self.procs.insert(key, w);
            }
        }
        for (key, w) in self.procs.iter_mut() {
            if w.gone_at.is_none() && !alive.contains(key) {
                w.gone_at = Some(now);
                // Dropping the reader detaches its probes (--with sched), if any.
                w.reader = None;
                log::info!(
                    "pid {} ({}) exited: its series go in {:?}",
                    key.0,
                    w.id.exe.display(),
                    self.grace
                );
            }
        }
        // A process that never gave a reading has no series to keep: it goes at once (a shell
        // loop of `go version` leaves nothing behind).
        let grace = self.grace;
        let held = (self.procs.len(), self.binaries.len());
        self.procs.retain(|_, w| match w.gone_at {
            Some(at) => w.last.is_some() && now.duration_since(at) < grace,
            None => true,
        });
        for ((pid, _), w) in self.procs.iter_mut() {
            read_one(*pid, w, &mut self.agent.read_durations);
        }
        // Executables no process runs any more are closed.
        self.binaries.retain(|_, b| Arc::strong_count(b) > 1);
        let let_go = self.procs.len() < held.0 || self.binaries.len() < held.1;
        if let_go || self.trim.owed() {
            self.trim.maybe_trim();
        }
        self.agent.passes += 1;
        self.agent.pass_seconds = t0.elapsed().as_secs_f64();
    }

    /// The selected Go processes that exist now.
    fn find(&mut self) -> Vec<ProcessIdentity> {
        match &self.selection {
            Selection::All(filter) => {
                let (found, unreadable) = self.discover.scan(filter);
                if unreadable != self.agent.unreadable && unreadable > 0 {
                    // SAFETY: geteuid has no preconditions.
                    let fix = match unsafe { libc::geteuid() } {
                        // Root and still refused (ptrace's access check): a process with
                        // capabilities this one lacks, e.g. a sandbox's init.
                        0 => {
                            "skipped (denied even to root: they hold capabilities gmp-trace \
                              lacks)"
                        }
                        _ => "run gmp-trace serve as root (or with CAP_SYS_PTRACE)",
                    };
                    log::warn!(
                        "{unreadable} processes cannot be inspected (/proc/PID/exe unreadable): \
                         {fix}"
                    );
                }
                self.agent.unreadable = unreadable;
                found
            }
            Selection::Pids(pids) => {
                let mut found = Vec::new();
                for &pid in pids {
                    match self.discover.look(pid) {
                        Look::Go(id) => {
                            self.told.remove(&pid);
                            found.push(id);
                        }
                        Look::NotGo if self.told.insert(pid) => {
                            log::warn!("pid {pid} does not run a Go program: not watched");
                        }
                        Look::Unreadable(why) if self.told.insert(pid) => {
                            log::warn!("pid {pid} cannot be inspected: {why}");
                        }
                        _ => {}
                    }
                }
                found
            }
        }
    }

    /// Starts watching a process just found.
    fn watch(&mut self, id: ProcessIdentity, ticks: u64) -> Watched {
        self.agent.processes_seen += 1;
        let reader = match self.binary(id.pid) {
            Ok(bin) => match crate::commands::require_known_runtime(&bin, "serve") {
                Ok(()) => match ProcReader::new(id.pid, bin, self.with_sched) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        log::info!("pid {} ({}): not readable: {e}", id.pid, id.exe.display());
                        None
                    }
                },
                Err(e) => {
                    log::warn!(
                        "pid {} ({}): {e:#}: listed without numbers",
                        id.pid,
                        id.exe.display()
                    );
                    None
                }
            },
            Err(e) => {
                log::info!(
                    "pid {} ({}): cannot open its executable: {e}",
                    id.pid,
                    id.exe.display()
                );
                None
            }
        };
        log::info!(
            "watching pid {} ({}, {})",
            id.pid,
            id.exe.display(),
            id.go_version
        );
        Watched {
            start_time: read::start_time_seconds(ticks),
            id,
            reader,
            last: None,
            read_failures: 0,
            gone_at: None,
            logged_failure: false,
        }
    }

    /// The process's executable, opened once per file.
    fn binary(&mut self, pid: u32) -> anyhow::Result<Arc<GoBinary>> {
        let path = std::path::PathBuf::from(format!("/proc/{pid}/exe"));
        let m = std::fs::metadata(&path)?;
        let key = (m.dev(), m.ino(), m.size(), m.mtime());
        if let Some(b) = self.binaries.get(&key) {
            return Ok(b.clone());
        }
        let b = Arc::new(GoBinary::open(&path)?);
        self.binaries.insert(key, b.clone());
        Ok(b)
    }
}

/// Reads one live process into `w.last`; a failure keeps the last reading (its series stay as
/// they were) and says why once.
fn read_one(pid: u32, w: &mut Watched, durations: &mut Vec<f64>) {
    let Some(reader) = w.reader.as_mut() else {
        return;
    };
    match reader.read() {
        Ok(r) => {
            durations.push(r.read_seconds);
            w.last = Some(r);
            w.logged_failure = false;
        }
        Err(ReadFailure::Starting) => {
            log::debug!("pid {pid}: runtime not initialised yet");
        }
        Err(ReadFailure::Failed(why)) => {
            // An exit between the scan and the read is the next pass's news, not a failure.
            if read::start_ticks(pid).is_none() {
                return;
            }
            w.read_failures += 1;
            if !w.logged_failure {
                log::warn!("pid {pid} ({}): read failed: {why}", w.id.exe.display());
                w.logged_failure = true;
            }
        }
    }
}
