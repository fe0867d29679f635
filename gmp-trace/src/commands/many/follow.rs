//! `-f/--follow`: the launched program is the tree's root (a session in launch mode, held
//! before its exec as a single launch is); the fork/exec tracepoints (probes/follow.rs) stop
//! every later exec in its tree before the new image's first instruction. Here each stopped
//! exec is looked at: a Go image gets a session (probes in, then SIGCONT), anything else is
//! continued at once and listed as not traced.
use std::rc::Rc;

use gmp_trace_common::follow::FollowExec;
use tokio::signal::unix::SignalKind;
use tokio::task::JoinSet;

use super::session::{Ctx, How};
use super::{key_of, Joined, Selection};
use crate::export::many::NotTraced;
use crate::probes::follow::FollowWatch;
use crate::process::discover::{Discoverer, Look};
use crate::process::Target;
use crate::source::live::monotonic_ns;

/// Starts the launched program held before its exec, the fork/exec watch on its tree, and its
/// session.
pub(super) fn launch_root(
    ctx: &Rc<Ctx>,
    sel: &mut Selection,
    tasks: &mut JoinSet<Joined>,
) -> anyhow::Result<FollowWatch> {
    let args = &ctx.args;
    let mut target = Target::resolve(None, &args.command, args.force)?;
    let pid = target.hold()?;
    let watch = match FollowWatch::start(pid) {
        Ok(w) => w,
        Err(e) => {
            target.abort();
            return Err(e.context("--follow"));
        }
    };
    sel.root = Some(pid);
    // The session reads the binary, attaches and lets the held program exec.
    let id = crate::process::discover::ProcessIdentity {
        pid,
        exe: target.exe().to_path_buf(),
        comm: target.process_name(),
        go_version: String::new(),
        module_path: None,
        cgroup: None,
        container_id: None,
        ns_pid: None,
    };
    let key = (pid, 0, id.exe.clone());
    sel.spawn_how(tasks, ctx, key, id, How::Launch(target, pid));
    Ok(watch)
}

/// The next stopped exec (pending forever without a watch: its select branch is disabled then).
pub(super) async fn next(watch: &mut Option<FollowWatch>) -> anyhow::Result<FollowExec> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// A process of the tree stopped at an exec: trace it if it is Go (and the run goes on),
/// else let it go.
pub(super) fn on_exec(
    ctx: &Rc<Ctx>,
    sel: &mut Selection,
    tasks: &mut JoinSet<Joined>,
    disc: &mut Discoverer,
    exec: FollowExec,
    stopping: bool,
) {
    let pid = exec.pid;
    if exec.signal_result != 0 {
        log::warn!(
            "pid {pid} exec'd but could not be stopped (bpf_send_signal: {}): not traced",
            exec.signal_result
        );
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
            cont(pid);
            let held_us = monotonic_ns().saturating_sub(exec.ts) / 1000;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let reason = match &look {
                Look::Go(_) => "started while tracing was stopping".to_string(),
                Look::NotGo => "not Go, not traced".to_string(),
                Look::Gone => return,
                Look::Unreadable(why) => format!("not traced: {why}"),
            };
            log::info!("pid {pid} ({exe}): {reason} (held {held_us} us)");
            if !ctx.args.out.quiet && matches!(look, Look::NotGo) {
                eprintln!("gmp-trace: pid {pid} ({exe}): not Go, not traced");
            }
            sel.not_traced.push(NotTraced { pid, exe, reason });
        }
    }
}

/// SIGTERM and SIGHUP go on to the launched program (Ctrl-C reached it from the terminal).
pub(super) fn forward(sel: &Selection, sig: SignalKind) {
    let Some(root) = sel.root else { return };
    if sig == SignalKind::interrupt() {
        return;
    }
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(root as libc::pid_t, sig.as_raw_value()) };
}

/// At the end: execs stopped but not read yet are let go, before the watch is dropped.
pub(super) fn let_go_pending(watch: &mut FollowWatch) {
    for e in watch.pending() {
        cont(e.pid);
    }
}

fn cont(pid: u32) {
    // SAFETY: kill has no memory preconditions; an exited pid gets ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
}
