//! `-f/--follow`: the launched program is the tree's root (a session in launch mode, held
//! before its exec as a single launch is; or, when it is not Go, let run untraced and waited
//! for); the fork/exec tracepoints (probes/follow.rs) stop every later exec in its tree before
//! the new image's first instruction. Here each stopped exec is looked at: a Go image gets a
//! session (probes in, then SIGCONT), anything else is continued at once and listed as not
//! traced. The run lasts until the launched program has exited and no process of its tree is
//! alive (a daemon it left behind keeps the run going; a signal once the launched program has
//! exited, or `--duration`, ends it).
use std::rc::Rc;
use std::time::{Duration, Instant};

use gmp_trace_common::follow::FollowExec;
use tokio::signal::unix::SignalKind;
use tokio::task::JoinSet;

use super::session::{Ctx, How};
use super::{key_of, Joined, Selection};
use crate::binary::{BinaryError, GoBinary};
use crate::export::many::NotTraced;
use crate::probes::follow::{process_alive, FollowWatch};
use crate::process::discover::{Discoverer, Look};
use crate::process::launch::Launch;
use crate::process::Target;
use crate::source::live::monotonic_ns;

/// How often the tree is looked at for live members (the run's end is this late at most).
const LOOK: Duration = Duration::from_millis(100);

/// How long the launched program must have been gone, with members of its tree alive, before
/// the user is told the run goes on for them.
const OUTLIVED_AFTER: Duration = Duration::from_secs(1);

pub(super) struct Follow {
    /// `None` once the ring could not be read (later execs run untraced) or at the end.
    watch: Option<FollowWatch>,
    root: u32,
    /// The launched program when it is not Go: run untraced and waited for here.
    untraced_root: Option<Launch>,
    /// Whether the untraced root has been waited for (a traced root's session waits for it).
    root_waited: bool,
    /// The untraced root's exit code (a traced root's is in its report).
    pub(super) root_code: Option<i32>,
    /// Members alive at the last look; `None` before the first.
    live: Option<Vec<u32>>,
    look: tokio::time::Interval,
    root_gone_since: Option<Instant>,
    said_outlived: bool,
}

pub(super) enum Event {
    Exec(anyhow::Result<FollowExec>),
    RootExited(anyhow::Result<Option<i32>>),
    Look,
}

impl Follow {
    /// Starts the launched program held before its exec, the fork/exec watch on its tree, and
    /// its session (or, when it is not Go, lets it run untraced).
    pub(super) fn start(
        ctx: &Rc<Ctx>,
        sel: &mut Selection,
        tasks: &mut JoinSet<Joined>,
    ) -> anyhow::Result<Follow> {
        let args = &ctx.args;
        let mut launch = Launch::resolve(&args.command)?;
        let exe = launch.exe().to_path_buf();
        // A shell, make, a script: its descendants are what is traced. A Go program that
        // cannot be traced stays an error, as without -f.
        let is_go = !matches!(
            GoBinary::open(&exe),
            Err(BinaryError::NotGo(_) | BinaryError::NotElf(_))
        );
        let pid = launch.hold()?;
        let watch = match FollowWatch::start(pid) {
            Ok(w) => w,
            Err(e) => {
                launch.abort();
                return Err(e.context("--follow"));
            }
        };
        sel.root = Some(pid);
        let mut look = tokio::time::interval(LOOK);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut follow = Follow {
            watch: Some(watch),
            root: pid,
            untraced_root: None,
            root_waited: true,
            root_code: None,
            live: None,
            look,
            root_gone_since: None,
            said_outlived: false,
        };
        if !is_go {
            if let Err(e) = launch.start_untraced() {
                follow.close(sel);
                return Err(e);
            }
            let exe = exe.display().to_string();
            if !args.out.quiet {
                eprintln!(
                    "gmp-trace: pid {pid} ({exe}): not Go, not traced; following its children"
                );
            }
            sel.not_traced
                .push(NotTraced::one(pid, exe, NOT_GO.to_string()));
            follow.untraced_root = Some(launch);
            follow.root_waited = false;
            return Ok(follow);
        }
        // The session reads the binary, attaches and lets the held program exec.
        let id = crate::process::discover::ProcessIdentity {
            pid,
            exe: exe.clone(),
            comm: launch.process_name(),
            go_version: String::new(),
            module_path: None,
            cgroup: None,
            container_id: None,
            ns_pid: None,
        };
        let key = (pid, 0, exe);
        sel.spawn_how(
            tasks,
            ctx,
            key,
            id,
            How::Launch(Target::Launch(launch), pid),
        );
        Ok(follow)
    }

    /// The next thing to act on: a stopped exec, the untraced root's exit, or a look at the
    /// tree being due.
    pub(super) async fn next(&mut self) -> Event {
        let watch = &mut self.watch;
        let root = &mut self.untraced_root;
        tokio::select! {
            r = next_exec(watch) => Event::Exec(r),
            r = wait_root(root), if !self.root_waited => Event::RootExited(r),
            _ = self.look.tick() => Event::Look,
        }
    }

    /// Acts on `ev`; the run goes on (a failed ring read only ends following).
    pub(super) fn handle(
        &mut self,
        ev: Event,
        ctx: &Rc<Ctx>,
        sel: &mut Selection,
        tasks: &mut JoinSet<Joined>,
        disc: &mut Discoverer,
        stopping: bool,
    ) {
        match ev {
            Event::Exec(Ok(exec)) => on_exec(ctx, sel, tasks, disc, exec, stopping),
            Event::Exec(Err(e)) => {
                // The sessions go on; later execs in the tree run untraced.
                log::warn!("--follow: reading the exec ring failed ({e:#}); no more processes will be followed");
                self.close(sel);
            }
            Event::RootExited(r) => {
                self.root_waited = true;
                match r {
                    Ok(code) => self.root_code = code,
                    Err(e) => log::warn!("--follow: waiting for pid {}: {e:#}", self.root),
                }
            }
            Event::Look => self.look_at_tree(ctx, tasks.is_empty()),
        }
    }

    /// Counts the live members (dropping the dead from the tree); says once when the launched
    /// program is gone and the run goes on for what it left behind.
    fn look_at_tree(&mut self, ctx: &Ctx, no_session: bool) {
        let Some(w) = &mut self.watch else {
            self.live = Some(Vec::new());
            return;
        };
        let live = w.live_members();
        let root_gone = self.root_waited && !live.contains(&self.root);
        match (root_gone, self.root_gone_since) {
            (false, _) => self.root_gone_since = None,
            (true, None) => self.root_gone_since = Some(Instant::now()),
            (true, Some(t)) => {
                let outlived = t.elapsed() >= OUTLIVED_AFTER && !live.is_empty();
                if outlived && no_session && !self.said_outlived && !ctx.args.out.quiet {
                    eprintln!(
                        "gmp-trace: the launched program exited; {} process(es) it left ({}) still run: \
                         following them until they exit (Ctrl-C to stop)",
                        live.len(),
                        pid_list(&live)
                    );
                    self.said_outlived = true;
                }
            }
        }
        self.live = Some(live);
    }

    /// Whether the run may end as far as the tree goes: the launched program waited for, and
    /// no member alive (or the run stopping).
    pub(super) fn done(&self, stopping: bool) -> bool {
        self.root_waited && (stopping || self.live.as_ref().is_some_and(Vec::is_empty))
    }

    /// A signal to gmp-trace: while the launched program runs it decides (SIGTERM and SIGHUP
    /// are passed on; Ctrl-C reached it from the terminal), so tracing goes on; once it has
    /// exited, the signal stops the run. Returns whether to stop.
    pub(super) fn on_signal(&self, sig: SignalKind) -> bool {
        let root_runs = !self.root_waited || process_alive(self.root);
        if !root_runs {
            return true;
        }
        if sig != SignalKind::interrupt() {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(self.root as libc::pid_t, sig.as_raw_value()) };
        }
        false
    }

    /// Ends following: the programs detached first (so no exec is stopped after), then the
    /// execs stopped but not read are let go; execs the kernel side could not stop are said.
    pub(super) fn close(&mut self, sel: &mut Selection) {
        let Some(mut w) = self.watch.take() else {
            return;
        };
        for e in w.close() {
            cont(e.pid);
            sel.not_traced.push(NotTraced::one(
                e.pid,
                exe_of(e.pid),
                "exec'd while tracing was ending".to_string(),
            ));
        }
        let missed = w.missed();
        if missed > 0 {
            eprintln!("gmp-trace: {missed} exec(s) in the followed tree ran untraced: the exec ring was full");
            sel.not_traced.push(NotTraced::one(
                0,
                String::new(),
                format!("{missed} exec(s) not stopped: the exec ring was full"),
            ));
        }
        self.live = Some(Vec::new());
    }
}

/// The next event of `--follow` (pending forever without it).
pub(super) async fn next(follow: &mut Option<Follow>) -> Event {
    match follow {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

/// The next stopped exec (pending forever without a watch).
async fn next_exec(watch: &mut Option<FollowWatch>) -> anyhow::Result<FollowExec> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// The untraced root's exit code, once it has exited (pending forever without one).
async fn wait_root(root: &mut Option<Launch>) -> anyhow::Result<Option<i32>> {
    let Some(launch) = root.as_mut() else {
        return std::future::pending().await;
    };
    launch.exited().await?;
    match root.take() {
        // Waited for already: returns at once.
        Some(launch) => launch.finish().await,
        None => Ok(None),
    }
}

/// A process of the tree stopped at an exec: trace it if it is Go (and the run goes on),
/// else let it go.
fn on_exec(
    ctx: &Rc<Ctx>,
    sel: &mut Selection,
    tasks: &mut JoinSet<Joined>,
    disc: &mut Discoverer,
    exec: FollowExec,
    stopping: bool,
) {
    let pid = exec.pid;
    if exec.signal_result != 0 {
        let reason = format!(
            "could not be stopped at its exec (bpf_send_signal: {})",
            exec.signal_result
        );
        log::warn!("pid {pid}: {reason}: not traced");
        sel.not_traced
            .push(NotTraced::one(pid, exe_of(pid), reason));
        return;
    }
    match disc.look(pid) {
        Look::Go(id) if !stopping => {
            let Some(key) = key_of(&id) else {
                cont(pid);
                return;
            };
            sel.followed.insert(pid);
            sel.spawn_how(tasks, ctx, key, id.clone(), How::Exec(id, exec.ts));
        }
        look => {
            // Named while it is still held: a quick program is gone once continued.
            let exe = exe_of(pid);
            cont(pid);
            let held_us = monotonic_ns().saturating_sub(exec.ts) / 1000;
            let reason = match &look {
                Look::Go(_) => "started while tracing was stopping".to_string(),
                Look::NotGo => NOT_GO.to_string(),
                Look::Gone => "exited before it could be looked at".to_string(),
                Look::Unreadable(why) => format!("not traced: {why}"),
            };
            log::info!("pid {pid} ({exe}): {reason} (held {held_us} us)");
            if matches!(look, Look::NotGo) {
                not_go(sel, pid, exe, ctx.args.out.quiet);
            } else {
                sel.not_traced.push(NotTraced::one(pid, exe, reason));
            }
        }
    }
}

/// Why an exec of a program that is not Go was let go.
const NOT_GO: &str = "not Go, not traced";

/// An exec of a non-Go image, let go: the first of each executable is listed and said on
/// stderr, the later ones counted in its entry (a `make` or a shell loop runs the same few
/// programs thousands of times).
fn not_go(sel: &mut Selection, pid: u32, exe: String, quiet: bool) {
    let seen = sel
        .not_traced
        .iter_mut()
        .find(|n| n.reason == NOT_GO && n.exe == exe);
    match seen {
        Some(n) => n.count += 1,
        None => {
            if !quiet {
                eprintln!(
                    "gmp-trace: pid {pid} ({exe}): not Go, not traced (its later execs are \
                     counted in the summary, not said)"
                );
            }
            sel.not_traced
                .push(NotTraced::one(pid, exe, NOT_GO.to_string()));
        }
    }
}

fn exe_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// "1, 2, 3", at most a handful.
fn pid_list(pids: &[u32]) -> String {
    let mut s: Vec<String> = pids.iter().take(5).map(u32::to_string).collect();
    if pids.len() > 5 {
        s.push("...".to_string());
    }
    s.join(", ")
}

fn cont(pid: u32) {
    // SAFETY: kill has no memory preconditions; an exited pid gets ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
}
