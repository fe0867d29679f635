//! `--all`'s discovery of new processes. Every exec on the machine is reported by a raw
//! tracepoint (probes/execs.rs) and the pid is looked at at once (a non-Go image costs one
//! stat of /proc/PID/exe: the Discoverer caches its answer per file); a Go process that the
//! filter accepts gets a session as soon as its runtime is set up. A slower /proc rescan
//! ([`SAFETY_RESCAN`]) catches what the exec ring missed (it was full, or the process was there
//! before us); without the tracepoint the run rescans every [`FALLBACK_RESCAN`] as it used to.
//!
//! A process seen at its exec has no runtime yet: attaching then would find no Ms and no Ps and
//! take the process for a foreign layout. Go's runtime.main starts the sysmon thread right after
//! schedinit, so a second thread says the runtime is set up; until then the process waits here,
//! looked at every [`POLL`] (that is well under a millisecond after its exec in practice).
//! Sessions start one per wake, newest process first (see `next_session`).
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gmp_trace_common::execs::ExecSeen;
use tokio::task::JoinSet;
use tokio::time::{interval, Interval, MissedTickBehavior};

use super::session::Ctx;
use super::{key_of, Joined, Key, Selection};
use crate::probes::execs::ExecWatch;
use crate::process::discover::{Discoverer, Filter, Look, ProcessIdentity};
use crate::process::procstat::{exited, field as stat_field};
use crate::source::live::monotonic_ns;

/// The /proc rescan behind the exec tracepoint: only what the ring missed waits this long.
const SAFETY_RESCAN: Duration = Duration::from_secs(2);

/// The rescan when the exec tracepoint cannot be loaded: a process started in between is
/// attached this late at most.
const FALLBACK_RESCAN: Duration = Duration::from_millis(250);

/// How often a process waiting for its runtime is looked at again.
const POLL: Duration = Duration::from_millis(1);

/// How long a process may stay single-threaded before it gets a session anyway (whose own
/// checks then decide; a failure before tracing began is retried).
const MAX_WAIT: Duration = Duration::from_millis(200);

/// A retried attempt waits this long (the first failed for a reason that may pass).
const RETRY_DELAY: Duration = Duration::from_millis(20);

/// A process waiting this long goes before newer ones (a long-lived process started during a
/// storm of short ones is not put off for ever).
const STARVED: Duration = Duration::from_secs(1);

/// What woke the watch.
pub(super) enum Wake {
    Execs(Vec<ExecSeen>),
    ExecsFailed(std::io::Error),
    Rescan,
    Poll,
}

/// A Go process the filter accepts, not yet given a session.
struct Waiting {
    id: ProcessIdentity,
    key: Key,
    /// When it exec'd (CLOCK_MONOTONIC ns; 0 for a process there before us): its age counts
    /// from there, not from when this thread got to its record.
    exec_ns: u64,
    since: Instant,
    not_before: Instant,
}

pub(super) struct AllWatch {
    execs: Option<ExecWatch>,
    rescan: Interval,
    poll: Interval,
    waiting: Vec<Waiting>,
    /// Ring records lost so far, as last logged.
    lost_said: u64,
    scanned_once: bool,
    waiting_said: bool,
}

impl AllWatch {
    /// Loads the exec tracepoint, or says why not and falls back to the fast rescan.
    pub(super) fn start() -> AllWatch {
        let (execs, every) = match ExecWatch::start() {
            Ok(w) => {
                log::info!(
                    "--all: new processes are looked at at their exec (and /proc rescanned \
                     every {} s for anything missed)",
                    SAFETY_RESCAN.as_secs()
                );
                (Some(w), SAFETY_RESCAN)
            }
            Err(e) => {
                log::warn!(
                    "--all: the exec tracepoint could not be loaded ({e}); new processes are \
                     found by rescanning /proc every {} ms instead, up to that late",
                    FALLBACK_RESCAN.as_millis()
                );
                (None, FALLBACK_RESCAN)
            }
        };
        let mut poll = interval(POLL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        AllWatch {
            execs,
            rescan: interval(every),
            poll,
            waiting: Vec::new(),
            lost_said: 0,
            scanned_once: false,
            waiting_said: false,
        }
    }

    /// The next thing to do. Cancel-safe (the ring keeps what it read; ticks are not lost).
    pub(super) async fn next(&mut self) -> Wake {
        let polling = !self.waiting.is_empty();
        let execs = async {
            match &mut self.execs {
                Some(w) => w.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = execs => match r {
                Ok(v) => Wake::Execs(v),
                Err(e) => Wake::ExecsFailed(e),
            },
            _ = self.rescan.tick() => Wake::Rescan,
            _ = self.poll.tick(), if polling => Wake::Poll,
        }
    }

    /// Acts on a wake; says whether a session was started.
    pub(super) fn handle(
        &mut self,
        wake: Wake,
        ctx: &Rc<Ctx>,
        sel: &mut Selection,
        tasks: &mut JoinSet<Joined>,
        disc: &mut Discoverer,
        filter: &Filter,
    ) -> bool {
        match wake {
            Wake::Execs(execs) => {
                let me = std::process::id();
                for e in execs {
                    if e.pid == me {
                        continue;
                    }
                    if let Look::Go(id) = disc.look(e.pid) {
                        if !filter.accepts(&id) {
                            continue;
                        }
                        // A process with a session that execs its own file again keeps its
                        // key: the selection decides when the new image gets its session.
                        let queue = key_of(&id).is_some_and(|k| sel.exec_seen(&k, e.ts));
                        if queue {
                            self.want(sel, id, Some(e.ts));
                        }
                    }
                }
            }
            Wake::ExecsFailed(e) => {
                log::warn!(
                    "--all: reading the exec ring failed ({e}); rescanning /proc every {} ms \
                     from now on",
                    FALLBACK_RESCAN.as_millis()
                );
                self.execs = None;
                self.rescan = interval(FALLBACK_RESCAN);
            }
            Wake::Rescan => self.rescan(ctx, sel, tasks, disc, filter),
            Wake::Poll => {}
        }
        self.next_session(ctx, sel, tasks)
    }

    fn rescan(
        &mut self,
        ctx: &Rc<Ctx>,
        sel: &mut Selection,
        tasks: &mut JoinSet<Joined>,
        disc: &mut Discoverer,
        filter: &Filter,
    ) {
        if let Some(w) = &self.execs {
            let lost = w.lost();
            if lost > self.lost_said {
                log::warn!(
                    "--all: {} exec records lost (the ring was full); the /proc rescan picks \
                     up those processes, late",
                    lost - self.lost_said
                );
                self.lost_said = lost;
            }
        }
        let found = disc.scan(filter).0;
        sel.forget_gone(&found);
        let alive: HashSet<u32> = found.iter().map(|p| p.pid).collect();
        self.waiting.retain(|w| {
            let keep = alive.contains(&w.id.pid);
            if !keep {
                sel.found_at.remove(&w.key);
            }
            keep
        });
        let after_start = self.scanned_once;
        self.scanned_once = true;
        for id in found {
            // The processes there before us have no exec to measure from.
            let started = if after_start { start_ns(id.pid) } else { None };
            self.want(sel, id, started);
        }
        if tasks.is_empty() && self.waiting.is_empty() && !self.waiting_said {
            if !ctx.args.out.quiet {
                eprintln!("gmp-trace: no Go process matches yet; waiting (Ctrl-C to stop)");
            }
            self.waiting_said = true;
        }
    }

    /// A Go process the filter accepts joins the queue (`next_session` takes it from there).
    fn want(&mut self, sel: &mut Selection, id: ProcessIdentity, exec_ns: Option<u64>) {
        if id.pid == std::process::id() {
            return;
        }
        let Some(key) = key_of(&id) else { return };
        if sel.has(&key) || self.waiting.iter().any(|w| w.key == key) {
            return;
        }
        if let Some(ns) = exec_ns {
            sel.found_at.insert(key.clone(), ns);
        }
        let now = Instant::now();
        self.waiting.push(Waiting {
            id,
            key,
            exec_ns: exec_ns.unwrap_or(0),
            since: now,
            not_before: now,
        });
    }

    /// Starts one session: for the newest waiting process whose runtime is up (or that waited
    /// [`MAX_WAIT`]), or for the oldest when it has waited [`STARVED`]. Dropped on the way:
    /// those that exited. One per wake: a session's setup (reading the binary, loading and
    /// attaching its probes: tens of ms, on the blocking pool a few at a time) is slow next to
    /// the processes of a storm, so each pick is made afresh, and under such a storm the newest
    /// has the most life left to be traced in, where the oldest has likely exited by the time
    /// its probes are in. Says whether a session started (the caller lets it begin its setup
    /// before the next wake).
    fn next_session(
        &mut self,
        ctx: &Rc<Ctx>,
        sel: &mut Selection,
        tasks: &mut JoinSet<Joined>,
    ) -> bool {
        let now = Instant::now();
        self.waiting.retain(|w| {
            if now >= w.not_before && exited(w.id.pid) {
                log::info!("pid {} exited before it could be traced", w.id.pid);
                sel.found_at.remove(&w.key);
                return false;
            }
            true
        });
        let due = |w: &Waiting| {
            now >= w.not_before
                && (now.duration_since(w.since) >= MAX_WAIT || runtime_up(w.id.pid) == Some(true))
        };
        let oldest = self
            .waiting
            .iter()
            .position(|w| now.duration_since(w.since) >= STARVED && due(w));
        let newest = || {
            let due = self.waiting.iter().enumerate().filter(|(_, w)| due(w));
            due.max_by_key(|(_, w)| w.exec_ns).map(|(i, _)| i)
        };
        let Some(i) = oldest.or_else(newest) else {
            return false;
        };
        let w = self.waiting.remove(i);
        log::debug!(
            "pid {}: a session {:.1} ms after its exec ({} more waiting)",
            w.id.pid,
            monotonic_ns().saturating_sub(w.exec_ns) as f64 / 1e6,
            self.waiting.len(),
        );
        sel.consider(tasks, ctx, w.id);
        if !sel.has(&w.key) {
            sel.found_at.remove(&w.key);
            return false;
        }
        true
    }

    /// Processes whose session failed before tracing began and may be tried again: soon, not
    /// at the next rescan.
    pub(super) fn take_retries(&mut self, sel: &mut Selection) {
        let now = Instant::now();
        for (key, id) in sel.retry.drain(..) {
            self.waiting.push(Waiting {
                exec_ns: sel.found_at.get(&key).copied().unwrap_or(0),
                id,
                key,
                since: now,
                not_before: now + RETRY_DELAY,
            });
        }
    }
}

/// The next wake of `all` (pending forever without it: its select branch is disabled then).
pub(super) async fn next(all: &mut Option<AllWatch>) -> Wake {
    match all {
        Some(a) => a.next().await,
        None => std::future::pending().await,
    }
}

/// Whether `pid`'s Go runtime is set up (a second thread exists: sysmon, started by
/// runtime.main after schedinit); `None` when the process has exited.
fn runtime_up(pid: u32) -> Option<bool> {
    if exited(pid) {
        return None;
    }
    let threads: u32 = stat_field(pid, 17)?.parse().ok()?;
    Some(threads >= 2)
}

/// When `pid` started, in CLOCK_MONOTONIC ns, from /proc/PID/stat (its fork, in clock ticks:
/// 10 ms steps on most kernels).
fn start_ns(pid: u32) -> Option<u64> {
    let ticks: u64 = stat_field(pid, 19)?.parse().ok()?;
    // SAFETY: sysconf has no memory preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    let boot_ns = ticks.checked_mul(1_000_000_000)? / hz;
    // The start time counts from boot (suspend included); CLOCK_MONOTONIC does not.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let boottime = (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64;
    let suspended = boottime.saturating_sub(monotonic_ns());
    Some(boot_ns.saturating_sub(suspended))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_of_a_running_process() {
        // This test binary runs several threads (the test harness's).
        let me = std::process::id();
        assert!(runtime_up(me).is_some());
        let start = start_ns(me).expect("our own start");
        let now = monotonic_ns();
        assert!(start <= now, "{start} > {now}");
        assert_eq!(runtime_up(u32::MAX - 1), None);
    }
}
