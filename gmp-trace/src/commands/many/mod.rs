//! `gmp-trace --pid A --pid B ...` and `gmp-trace --all [--exe-filter RE] [--container ID]`:
//! several Go processes traced side by side in one gmp-trace. Each process gets a session of its
//! own (`session.rs`: its own BPF object, ring buffer, pipeline and model, attached with the
//! `--pid` strategy), all on this thread (each one's blocking setup on tokio's blocking pool);
//! they end one by one as their processes exit, so memory is bounded by what is alive plus the
//! outputs. `--all` finds the processes present at the start and each new one at its exec
//! (`all.rs`). At the end the sessions' reports are joined
//! (export/many.rs): one summary with `processes[]`, one graph with the process tree; the event
//! stream was shared all along.
mod all;
mod follow;
mod session;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::{Args, Format};
use crate::export::files;
use crate::export::graph::{self, GraphFormat};
use crate::export::many::{self, NotTraced, ProcessReport, Shared};
use crate::process::discover::{Discoverer, Filter, Look, ProcessIdentity};
use crate::process::preflight;
use session::{Ctx, Failed, How};

/// Attempts at a process under `--all` before it is listed as not traced (one that has just
/// exec'd may not have its runtime set up yet when first seen).
const ATTEMPTS: u8 = 3;

/// Whether the command line asks for several processes.
pub fn wanted(args: &Args) -> bool {
    args.pid.len() > 1 || args.all || args.follow
}

/// A process, told apart from a later one that reuses its pid (or its own later image).
type Key = (u32, u64, std::path::PathBuf);

/// The combined outputs, opened before anything is traced.
struct Outputs {
    summary: Option<(std::fs::File, std::path::PathBuf)>,
    /// `--assert`, `--junit`: checked on the combined summary at the end.
    checks: crate::checks::Checks,
    graph: Option<(std::fs::File, std::path::PathBuf, GraphFormat)>,
    events: Option<(Format, Shared)>,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let format = args.out.output_format().map_err(|e| anyhow!(e))?;
    if format == Some(Format::Go) {
        bail!(
            "--format go writes one process's execution trace (Go's format has no processes); \
             trace one --pid for it, or use -o FILE.pftrace (a process per pid) or .jsonl"
        );
    }
    if args.sample_rate.is_some() {
        bail!("--sample-rate goes with --format go, which traces one process");
    }
    if args.record.is_some() {
        bail!("--record keeps one process's events; use it with a single --pid or command");
    }
    let filter = Filter::new(args.exe_filter.as_deref(), args.container.as_deref())?;
    preflight::check_privileges()?;
    let outputs = open_outputs(&args, format)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mode = match (args.all, args.follow) {
        (true, _) => "all",
        (_, true) => "follow",
        _ => "pids",
    };
    let ctx = Rc::new(Ctx::new(
        args,
        outputs.events.clone(),
        stop_rx,
        outputs.graph.is_some(),
    ));
    let local = tokio::task::LocalSet::new();
    let (reports, not_traced, failed, after_exec, root_code) = local
        .run_until(supervise(ctx.clone(), filter, stop_tx))
        .await?;
    let quiet = ctx.args.out.quiet;
    let outcomes = write_outputs(outputs, mode, (&reports, &after_exec), &not_traced, quiet)?;
    if failed > 0 && mode == "pids" {
        bail!("{failed} of the processes named with --pid could not be traced (see above)");
    }
    // --follow: the launched program's own exit code, as a single launch returns it (from its
    // report, or waited for when it is not Go), unless an assertion failed (3).
    let root = reports.iter().find(|r| r.summary.mode == "launch");
    let code = root
        .and_then(|r| r.summary.exit_code)
        .or(root_code)
        .unwrap_or(0);
    Ok(crate::checks::exit_code(&outcomes, code))
}

fn open_outputs(args: &Args, format: Option<Format>) -> anyhow::Result<Outputs> {
    let events = match (&args.out.output, format) {
        (Some(p), Some(f)) => {
            let w: Box<dyn Write> = match files::open_output(p, "events")? {
                Some(file) => Box::new(BufWriter::with_capacity(1 << 16, file)),
                None => Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout())),
            };
            Some((f, Rc::new(RefCell::new(w))))
        }
        _ => None,
    };
    let summary = match &args.out.summary_json {
        Some(p) => files::open_output(p, "summary")?.map(|f| (f, p.clone())),
        None => None,
    };
    let graph = match &args.out.graph {
        Some(p) => {
            let fmt = GraphFormat::from_path(p).map_err(|e| anyhow!(e))?;
            files::open_output(p, "graph")?.map(|f| (f, p.clone(), fmt))
        }
        None => None,
    };
    let checks = crate::checks::Checks::open(&args.out.asserts, args.out.junit.as_deref())?;
    Ok(Outputs {
        summary,
        checks,
        graph,
        events,
    })
}

/// What the sessions left: reports in start order, the processes not traced, how many
/// sessions failed, each report's delay from its process's exec to its probes (ms), and
/// `--follow`'s launched program's exit code when it was not traced.
type Results = (
    Vec<ProcessReport>,
    Vec<NotTraced>,
    usize,
    Vec<Option<f64>>,
    Option<i32>,
);

/// Starts a session per process (and, with `--all`, per new process) and collects their
/// reports until every named process has exited (`--follow`: and the launched program's tree;
/// see follow.rs), or a signal or `--duration` stops the run.
async fn supervise(
    ctx: Rc<Ctx>,
    filter: Filter,
    stop: watch::Sender<bool>,
) -> anyhow::Result<Results> {
    let args = &ctx.args;
    let mut disc = Discoverer::new();
    let mut sel = Selection {
        all: args.all,
        ..Selection::default()
    };
    let named = named_processes(&mut disc, &args.pid)?;
    let mut tasks = JoinSet::new();
    for id in named {
        sel.spawn(&mut tasks, &ctx, id);
    }
    let mut follow = match args.follow {
        true => Some(follow::Follow::start(&ctx, &mut sel, &mut tasks)?),
        false => None,
    };
    let mut signals = super::StopSignals::new()?;
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut all = args.all.then(all::AllWatch::start);
    let mut stopping = false;
    let mut trim_tick = tokio::time::interval(Duration::from_secs(1));
    trim_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let tree_done = follow.as_ref().is_none_or(|f| f.done(stopping));
        if tasks.is_empty() && (stopping || !args.all) && tree_done {
            break;
        }
        tokio::select! {
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                sel.done(&mut disc, joined.context("a tracing session panicked")?);
                match &mut all {
                    Some(a) => a.take_retries(&mut sel),
                    None => {
                        for (key, _) in sel.retry.drain(..) {
                            sel.found_at.remove(&key);
                        }
                    }
                }
            }
            wake = all::next(&mut all), if all.is_some() && !stopping => {
                let started = match &mut all {
                    Some(a) => a.handle(wake, &ctx, &mut sel, &mut tasks, &mut disc, &filter),
                    None => false,
                };
                if started {
                    // The new session hands its setup to the blocking pool before the watch
                    // picks the next process (the newest one by then).
                    tokio::task::yield_now().await;
                }
            }
            _ = trim_tick.tick(), if sel.trim.owed() => {
                sel.trim.maybe_trim();
            }
            _ = &mut deadline, if args.duration.is_some() && !stopping => {
                stopping = true;
                let _ = stop.send(true);
            }
            ev = follow::next(&mut follow) => {
                if let Some(f) = &mut follow {
                    f.handle(ev, &ctx, &mut sel, &mut tasks, &mut disc, stopping);
                }
            }
            sig = signals.recv(), if !stopping => {
                // --follow: the launched program decides while it runs (see follow.rs).
                if follow.as_ref().is_none_or(|f| f.on_signal(sig)) {
                    stopping = true;
                    let _ = stop.send(true);
                }
            }
        }
    }
    let root_code = follow.as_mut().and_then(|f| {
        f.close(&mut sel);
        f.root_code
    });
    sel.finish(root_code)
}

/// The processes named with `--pid`, each checked to be a Go process before any is traced.
fn named_processes(disc: &mut Discoverer, pids: &[i32]) -> anyhow::Result<Vec<ProcessIdentity>> {
    let mut out = Vec::new();
    for &pid in pids {
        if pid <= 0 {
            bail!("--pid {pid}: not a process id");
        }
        if out.iter().any(|p: &ProcessIdentity| p.pid == pid as u32) {
            continue;
        }
        match disc.look(pid as u32) {
            Look::Go(id) => out.push(id),
            Look::NotGo => bail!("pid {pid} does not run a Go program (no .go.buildinfo)"),
            Look::Gone => bail!("no process with pid {pid}"),
            Look::Unreadable(why) => bail!("pid {pid}: {why}; {}", preflight::unreadable_fix()),
        }
    }
    Ok(out)
}

type Outcome = Result<ProcessReport, Failed>;
/// A session's end: its process, outcome, and when it began (CLOCK_MONOTONIC ns).
pub(super) type Joined = (Key, ProcessIdentity, Outcome, u64);

/// Which processes have sessions, which ended, and what they left.
#[derive(Default)]
pub(super) struct Selection {
    /// Every process a session was started for, with its attempts so far.
    attempts: HashMap<Key, u8>,
    /// Processes with a session, or done with (traced, or given up on); a failed early attempt
    /// under `--all` leaves it, to be tried again at the next scan.
    settled: HashSet<Key>,
    /// The pids traced, with their ancestors as seen at the start (for the process tree).
    ancestry: HashMap<u32, Vec<u32>>,
    reports: Vec<ProcessReport>,
    pub(super) not_traced: Vec<NotTraced>,
    failed: usize,
    next_sequence: u32,
    /// `--follow`: the launched program's pid, and the processes stopped at an exec.
    pub(super) root: Option<u32>,
    pub(super) followed: HashSet<u32>,
    root_error: Option<anyhow::Error>,
    /// `--all`: when each process waiting for its session or in one exec'd (CLOCK_MONOTONIC
    /// ns; an entry goes when its session ends), to say how late its probes came;
    /// `after_exec` has that delay per report (ms), in `reports`' order.
    found_at: HashMap<Key, u64>,
    after_exec: Vec<Option<f64>>,
    /// Processes whose session failed early and may be tried again (`--all` does, soon), or
    /// that exec'd a new image of their own file under `--all`.
    retry: Vec<(Key, ProcessIdentity)>,
    /// `--all`: when each process's session began (CLOCK_MONOTONIC ns), while the process
    /// lives; and which sessions are still running.
    began: HashMap<Key, u64>,
    running: HashSet<Key>,
    /// `--all`: processes that exec'd their own file again while their session ran (same pid,
    /// start time and path: the same key), with when; a session for the new image follows the
    /// old one's end.
    re_execed: HashMap<Key, u64>,
    /// Sessions so far per pid (its next session's image number, for the Perfetto tracks).
    images: HashMap<u32, u32>,
    /// `--all`: processes come and go on their own.
    all: bool,
    /// What an ended session freed goes back to the kernel (a long run's RSS follows what is
    /// alive, not the busiest moment).
    pub(super) trim: crate::heap::Trimmer,
}

impl Selection {
    /// Starts a session for `id` unless it has one, was traced, or was given up on.
    fn consider(&mut self, tasks: &mut JoinSet<Joined>, ctx: &Rc<Ctx>, id: ProcessIdentity) {
        if id.pid == std::process::id() {
            return;
        }
        let Some(key) = key_of(&id) else { return };
        if !self.settled.contains(&key) {
            self.spawn(tasks, ctx, id);
        }
    }

    /// Under `--all`, forgets processes no scan will show again (exited: a pid reused later
    /// has another start time), so what is kept per process follows what is alive (the
    /// reports, the outputs, are kept).
    fn forget_gone(&mut self, found: &[ProcessIdentity]) {
        let alive: HashSet<u32> = found.iter().map(|p| p.pid).collect();
        self.settled.retain(|k| alive.contains(&k.0));
        self.attempts.retain(|k, _| alive.contains(&k.0));
        self.began
            .retain(|k, _| alive.contains(&k.0) || self.running.contains(k));
    }

    /// An exec of `key`'s process at `ts`, seen by `--all`'s watch. When the process had a
    /// session that began before the exec, it exec'd its own file again (a self re-exec keeps
    /// the pid, start time and path): the old image's session ends by itself at the exec, and
    /// the new image gets a session of its own once it has (at once if it had already ended).
    /// Says whether the caller should queue the process (a new image with no session yet).
    pub(super) fn exec_seen(&mut self, key: &Key, ts: u64) -> bool {
        match self.began.get(key) {
            None => !self.settled.contains(key),
            Some(&began) if began >= ts => false,
            Some(_) if self.running.contains(key) => {
                log::info!("pid {}: exec'd its own file again; traced anew", key.0);
                self.re_execed.insert(key.clone(), ts);
                false
            }
            Some(_) => {
                log::info!("pid {}: exec'd its own file again; traced anew", key.0);
                self.forget(key);
                true
            }
        }
    }

    /// Forgets that `key` had a session, so that it may have another.
    fn forget(&mut self, key: &Key) {
        self.settled.remove(key);
        self.attempts.remove(key);
        self.began.remove(key);
    }

    /// Whether `key` has a session or is done with.
    fn has(&self, key: &Key) -> bool {
        self.settled.contains(key)
    }

    fn spawn(&mut self, tasks: &mut JoinSet<Joined>, ctx: &Rc<Ctx>, id: ProcessIdentity) {
        let Some(key) = key_of(&id) else { return };
        self.spawn_how(tasks, ctx, key, id.clone(), How::Pid(id));
    }

    /// Starts the session; `id` names the process in messages (`how` has the real one).
    pub(super) fn spawn_how(
        &mut self,
        tasks: &mut JoinSet<Joined>,
        ctx: &Rc<Ctx>,
        key: Key,
        id: ProcessIdentity,
        how: How,
    ) {
        *self.attempts.entry(key.clone()).or_default() += 1;
        self.settled.insert(key.clone());
        if self.all {
            self.began
                .insert(key.clone(), crate::source::live::monotonic_ns());
            self.running.insert(key.clone());
        }
        self.next_sequence += 1;
        // Sequence 1 is the single-process writer's; ours start above it.
        let sequence = self.next_sequence + 1;
        // A pid traced before in this run (an exec of a new image, or a reused pid) gets tracks
        // of its own.
        let image = {
            let n = self.images.entry(id.pid).or_default();
            *n += 1;
            *n - 1
        };
        self.ancestry.insert(id.pid, ancestors(id.pid));
        let ctx = ctx.clone();
        tasks.spawn_local(async move {
            let began = crate::source::live::monotonic_ns();
            let r = session::trace_one(ctx, how, (sequence, image)).await;
            (key, id, r, began)
        });
    }

    /// A session ended: its outcome is taken (`outcome`), and under `--all` a process that
    /// exec'd its own file again meanwhile is queued for a session of its new image.
    fn done(&mut self, disc: &mut Discoverer, joined: Joined) {
        let (key, id) = (joined.0.clone(), joined.1.clone());
        self.running.remove(&key);
        self.trim.maybe_trim();
        let again = self.re_execed.remove(&key);
        self.outcome(disc, joined);
        if let Some(ts) = again {
            if !crate::process::procstat::exited(id.pid) {
                self.forget(&key);
                self.retry.retain(|(k, _)| *k != key);
                self.found_at.insert(key.clone(), ts);
                self.retry.push((key, id));
            }
        }
    }

    /// Keeps a session's report, or says why it failed (and lets `--all` try again a process
    /// that was only seen too early).
    fn outcome(&mut self, disc: &mut Discoverer, (key, id, r, began_ns): Joined) {
        let exec_ns = self.found_at.remove(&key);
        match r {
            Ok(report) => {
                // The session's attach_ms counts from its beginning to the last probe in.
                let after = exec_ns.zip(report.summary.attach_ms).map(|(exec, attach)| {
                    let ns = began_ns as f64 + attach * 1e6 - exec as f64;
                    (ns.max(0.0) / 1e5).round() / 10.0
                });
                self.after_exec.push(after);
                self.reports.push(report);
            }
            Err(f) if self.root == Some(id.pid) && !f.began => {
                // --follow's launched program could not be traced: as a single launch, an error.
                self.root_error = Some(f.error);
            }
            Err(f) => {
                if self.followed.contains(&id.pid) {
                    // Stopped at its exec: it must not stay stopped because we failed.
                    // SAFETY: kill has no memory preconditions.
                    unsafe { libc::kill(id.pid as libc::pid_t, libc::SIGCONT) };
                }
                // Under --all a process that exits while its probes go in (its exit watch,
                // or the read of its runtime, then fails) is one more that came and went.
                let gone = matches!(disc.look(id.pid), Look::Gone)
                    || crate::process::procstat::exited(id.pid);
                if gone && (!f.began || self.all) {
                    log::info!("pid {} exited before it could be traced", id.pid);
                    return;
                }
                let tries = self.attempts.get(&key).copied().unwrap_or(ATTEMPTS);
                if !f.began && tries < ATTEMPTS {
                    log::info!(
                        "pid {}: not traced yet ({:#}); trying again",
                        id.pid,
                        f.error
                    );
                    self.settled.remove(&key);
                    if let Some(ns) = exec_ns {
                        self.found_at.insert(key.clone(), ns);
                    }
                    self.retry.push((key, id));
                    return;
                }
                eprintln!(
                    "gmp-trace: pid {} ({}): not traced: {:#}",
                    id.pid,
                    id.exe.display(),
                    f.error
                );
                self.failed += 1;
                self.not_traced.push(NotTraced::one(
                    id.pid,
                    id.exe.display().to_string(),
                    format!("{:#}", f.error),
                ));
            }
        }
    }

    /// Reports in start order with each process's nearest traced ancestor.
    fn finish(mut self, root_code: Option<i32>) -> anyhow::Result<Results> {
        if let Some(e) = self.root_error.take() {
            return Err(e);
        }
        let traced: HashSet<u32> = self.reports.iter().map(|r| r.identity.pid).collect();
        for r in &mut self.reports {
            r.parent = self
                .ancestry
                .get(&r.identity.pid)
                .and_then(|a| a.iter().copied().find(|p| traced.contains(p)));
        }
        Ok((
            self.reports,
            self.not_traced,
            self.failed,
            self.after_exec,
            root_code,
        ))
    }
}

pub(super) fn key_of(id: &ProcessIdentity) -> Option<Key> {
    let (_, start) = stat(id.pid)?;
    Some((id.pid, start, id.exe.clone()))
}

/// `(ppid, starttime)` from /proc/PID/stat (the name in parentheses may hold anything).
fn stat(pid: u32) -> Option<(u32, u64)> {
    let (ppid, start) = crate::process::procstat::two_fields(pid, 1, 19)?;
    Some((ppid.parse().ok()?, start.parse().ok()?))
}

/// `pid`'s ancestors, nearest first, up to init.
fn ancestors(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut p = pid;
    while let Some((ppid, _)) = stat(p) {
        if ppid == 0 || out.len() >= 64 {
            break;
        }
        out.push(ppid);
        p = ppid;
    }
    out
}

/// Writes the joined summary and graph, and flushes the shared event output; checks the
/// assertions on the joined summary and reports them (returned for the exit code).
fn write_outputs(
    mut out: Outputs,
    mode: &str,
    (reports, after_exec): (&[ProcessReport], &[Option<f64>]),
    not_traced: &[NotTraced],
    quiet: bool,
) -> anyhow::Result<Vec<crate::checks::Outcome>> {
    if let Some((_, events)) = &out.events {
        events.borrow_mut().flush().context("writing the events")?;
    }
    let mut v = many::summary_json(mode, reports, not_traced);
    note_after_exec(&mut v, after_exec);
    let outcomes = out.checks.evaluate_processes(&mut v);
    if let Some((mut f, path)) = out.summary {
        serde_json::to_writer_pretty(&mut f, &v)
            .map_err(std::io::Error::from)
            .and_then(|()| f.write_all(b"\n"))
            .with_context(|| format!("writing the summary to {}", path.display()))?;
    }
    if let Some((f, path, fmt)) = out.graph {
        let g = many::merged_graph(reports);
        let mut w = BufWriter::new(f);
        graph::write(&g, fmt, &mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("writing the graph to {}", path.display()))?;
    }
    if !quiet {
        eprint!("{}", crate::checks::text(&outcomes));
    }
    out.checks.report(&outcomes)?;
    Ok(outcomes)
}

/// `processes[i].attached_after_exec_ms` for the processes `--all` saw start (summary_json
/// keeps the reports' order).
fn note_after_exec(v: &mut serde_json::Value, after_exec: &[Option<f64>]) {
    let Some(ps) = v.get_mut("processes").and_then(|p| p.as_array_mut()) else {
        return;
    };
    for (p, after) in ps.iter_mut().zip(after_exec) {
        if let (Some(m), Some(ms)) = (p.as_object_mut(), after) {
            m.insert(
                "attached_after_exec_ms".into(),
                serde_json::Value::from(*ms),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_ppid_and_start_past_odd_names() {
        let (ppid, start) = stat(std::process::id()).expect("our own stat");
        assert_eq!(ppid, std::os::unix::process::parent_id());
        assert!(start > 0);
        let a = ancestors(std::process::id());
        assert_eq!(a.first(), Some(&ppid));
        assert_eq!(a.last(), Some(&1), "{a:?}");
    }

    #[test]
    fn attached_after_exec_goes_to_its_process() {
        let mut v = serde_json::json!({"processes": [{"pid": 7}, {"pid": 8}, {"pid": 9}]});
        note_after_exec(&mut v, &[Some(12.5), None, Some(3.0)]);
        let ps = v["processes"].as_array().unwrap();
        assert_eq!(ps[0]["attached_after_exec_ms"], 12.5);
        assert!(ps[1].get("attached_after_exec_ms").is_none());
        assert_eq!(ps[2]["attached_after_exec_ms"], 3.0);
    }
}
