//! Model tests on hand-made event sequences; golden tests from recordings live in tests/.
use super::*;

fn ev(kind: EventKind, ts: u64, tid: u32, goid: u64) -> Event {
    Event {
        ts,
        kind: kind as u32,
        tid,
        pid: 100,
        p: 0,
        goid,
        m: 0,
        ..Event::default()
    }
}

fn status(ts: u64, tid: u32, goid: u64, from: u64, to: u64) -> Event {
    Event {
        arg0: from,
        arg1: to,
        ..ev(EventKind::GoStatus, ts, tid, goid)
    }
}

fn create(ts: u64, goid: u64, parent: u64, start: u64) -> Event {
    Event {
        arg0: parent,
        arg1: start,
        arg2: start + 1,
        ..ev(EventKind::GoCreate, ts, 100, goid)
    }
}

#[test]
fn lifecycle_transitions_latency_and_retirement() {
    let mut m = Model::new();
    m.log_transitions();
    m.apply(&create(10, 7, 1, 0x1000));
    m.apply(&ev(EventKind::Execute, 20, 101, 7));
    m.apply(&status(21, 101, 7, 1, 2));
    m.apply(&status(30, 101, 7, 2, 4));
    m.apply(&status(40, 102, 7, 4, 1));
    m.apply(&status(45, 101, 7, 1, 2));
    m.apply(&ev(EventKind::GoExit, 50, 101, 7));
    m.apply(&status(51, 101, 7, 2, 6));
    m.finish();
    let kinds: Vec<_> = m
        .transition_log
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    use GoState::*;
    assert_eq!(
        kinds,
        [
            (NotExist, Runnable),
            (Runnable, Running),
            (Running, Waiting),
            (Waiting, Runnable),
            (Runnable, Running),
            (Running, NotExist)
        ]
    );
    assert_eq!(m.latency.count, 2);
    assert_eq!(m.latency.max, 11); // runnable at 10, running at 21
    assert!(m.goroutines.is_empty(), "exited goroutines are retired");
    assert_eq!((m.created, m.exited), (1, 1));
    assert_eq!(m.by_start_pc[&0x1000].created, 1);
    assert_eq!(m.by_start_pc[&0x1000].exited, 1);
    // P0 busy while 7 ran: 21..30 and 45..51.
    assert_eq!(m.procs[&0].busy_ns, 9 + 6);
    assert_eq!(m.live_goroutines(), 0);
    assert_eq!(m.duration_ns(), 41);
}

#[test]
fn copystack_and_rebirth_are_not_transitions() {
    let mut m = Model::new();
    m.apply(&create(10, 7, 1, 0x1000));
    m.apply(&status(11, 100, 7, 6, 1)); // 1.24+: casgstatus from _Gdead, already covered
    m.apply(&status(12, 100, 7, 1, 2));
    m.apply(&status(13, 100, 7, 2, 8)); // _Gcopystack
    m.apply(&status(14, 100, 7, 8, 2));
    let total: u64 = m.transitions.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 2);
}

#[test]
fn syscalls_from_probes_on_new_go_deduplicated_with_casgstatus() {
    let mut m = Model::for_target(100, (1, 27));
    m.apply(&create(10, 7, 1, 0x1000));
    m.apply(&status(12, 100, 7, 1, 2));
    m.apply(&ev(EventKind::SyscallEnter, 13, 100, 7));
    m.apply(&status(14, 100, 7, 2, 3)); // contended CAS path: casgstatus too
    m.apply(&ev(EventKind::SyscallExit, 15, 100, 7));
    use GoState::*;
    assert_eq!(m.transitions.get(&(Running, Syscall)), Some(&1));
    assert_eq!(m.transitions.get(&(Syscall, Running)), Some(&1));
    // Older Go: the probes only mark the M; casgstatus carries the transitions.
    let mut m = Model::for_target(100, (1, 21));
    m.apply(&create(10, 7, 1, 0x1000));
    m.apply(&status(12, 100, 7, 1, 2));
    m.apply(&ev(EventKind::SyscallEnter, 13, 100, 7));
    assert_eq!(m.transitions.get(&(Running, Syscall)), None);
    m.apply(&status(14, 100, 7, 2, 3));
    assert_eq!(m.transitions.get(&(Running, Syscall)), Some(&1));
}

#[test]
fn lost_events_are_counted_not_applied() {
    let mut m = Model::new();
    let l = Event {
        arg0: 42,
        ..ev(EventKind::Lost, 5, 0, 0)
    };
    m.apply(&l);
    assert_eq!(m.lost, 42);
    assert_eq!(m.events, 0);
    assert!(m.threads.is_empty());
}

#[test]
fn runtime_status_mapping() {
    assert_eq!(GoState::from_runtime(2), GoState::Running);
    assert_eq!(GoState::from_runtime(0x1004), GoState::Waiting);
    assert_eq!(GoState::from_runtime(6), GoState::NotExist);
    assert_eq!(GoState::from_runtime(8), GoState::Unknown);
}

#[test]
fn leak_tree_groups_live_goroutines_by_creator_chain() {
    struct S;
    impl crate::binary::Symbolize for S {
        fn func_name(&self, pc: u64) -> Option<&str> {
            Some(match pc {
                0x10 => "main.main",
                0x20 => "main.server",
                0x21 => "main.server:go",
                0x30 => "main.handler",
                0x31 => "main.handler:go",
                _ => return None,
            })
        }
    }
    let mut m = Model::new();
    m.apply(&Event {
        arg0: 0,
        arg1: 0x10,
        arg2: 0,
        ..ev(EventKind::GoCreate, 1, 1, 1)
    });
    m.apply(&Event {
        arg0: 1,
        arg1: 0x20,
        arg2: 0x21,
        ..ev(EventKind::GoCreate, 2, 1, 2)
    });
    for g in 10..15 {
        m.apply(&Event {
            arg0: 2,
            arg1: 0x30,
            arg2: 0x31,
            ..ev(EventKind::GoCreate, 3, 1, g)
        });
        m.apply(&Event {
            arg2: 14,
            ..status(4, 1, g, 1, 2)
        });
        m.apply(&Event {
            arg2: 14,
            ..status(5, 1, g, 2, 4)
        });
    }
    let t = views::leak_tree(&m, &S, 10);
    assert_eq!(t[0].count, 5);
    assert_eq!(t[0].start_fn, "main.handler");
    assert_eq!(t[0].creators, ["main.main", "main.server"]);
    assert_eq!(t[0].states["Waiting/14"], 5);
}

/// The transitions logged for goroutine `goid`, with thread and P.
fn log_of(m: &Model, goid: u64) -> Vec<(GoState, GoState, u32, i32)> {
    m.transition_log
        .as_ref()
        .unwrap()
        .iter()
        .filter(|t| t.goid == goid)
        .map(|t| (t.from, t.to, t.tid, t.p))
        .collect()
}

fn on_p(mut e: Event, p: i32) -> Event {
    e.p = p;
    e
}

fn acquire(ts: u64, tid: u32, p: i32) -> Event {
    Event {
        arg0: p as i64 as u64,
        ..on_p(ev(EventKind::AcquireP, ts, tid, 0), p)
    }
}

/// Go >= 1.26: exitsyscall without its P (sysmon took it) is, for Go's tracer, Syscall ->
/// Runnable; then either a GoStart when exitsyscall gets a P (acquirepNoTrace) or the
/// goroutine is queued (exitsyscallNoP's casgstatus Grunning -> Grunnable).
#[test]
fn go126_syscall_exit_without_p() {
    use GoState::*;
    let mut m = Model::for_target(100, (1, 27));
    m.log_transitions();
    m.apply(&on_p(ev(EventKind::SyscallEnter, 10, 101, 7), 0));
    m.apply(&on_p(ev(EventKind::SyscallExit, 20, 101, 7), -1));
    // The CAS to _Grunning failed (scan bit): casgstatus repeats what the probe said.
    m.apply(&on_p(status(21, 101, 7, 3, 2), -1));
    m.apply(&acquire(22, 101, 1));
    m.apply(&on_p(ev(EventKind::SyscallEnter, 30, 101, 7), 1));
    m.apply(&on_p(ev(EventKind::SyscallExit, 40, 101, 7), -1));
    m.apply(&on_p(status(41, 101, 7, 2, 1), -1));
    // exitsyscallNoP then finds an idle P: acquirep + execute, no second GoStart.
    m.apply(&acquire(42, 101, 0));
    m.apply(&on_p(status(43, 101, 7, 1, 2), 0));
    assert_eq!(
        log_of(&m, 7),
        [
            (Running, Syscall, 101, 0),
            (Syscall, Runnable, 101, -1),
            (Runnable, Running, 101, 1),
            (Running, Syscall, 101, 1),
            (Syscall, Runnable, 101, -1),
            (Runnable, Running, 101, 0),
        ]
    );
    // With the P kept, the exit is a plain GoSyscallEnd.
    m.apply(&on_p(ev(EventKind::SyscallEnter, 50, 101, 7), 0));
    m.apply(&on_p(ev(EventKind::SyscallExit, 60, 101, 7), 0));
    assert_eq!(log_of(&m, 7)[7..], [(Syscall, Running, 101, 0)]);
}

/// A stale exit-without-P must not turn a later acquirep on that thread into a GoStart.
#[test]
fn go126_exit_without_p_is_forgotten_once_the_goroutine_moves() {
    use GoState::*;
    let mut m = Model::for_target(100, (1, 27));
    m.log_transitions();
    m.apply(&on_p(ev(EventKind::SyscallEnter, 10, 101, 7), 0));
    m.apply(&on_p(ev(EventKind::SyscallExit, 20, 101, 7), -1));
    // (no acquirepNoTrace probe: an old recording) it runs, parks, and is readied.
    m.apply(&on_p(status(30, 101, 7, 2, 4), 1));
    m.apply(&on_p(status(40, 102, 7, 4, 1), 0));
    m.apply(&acquire(50, 101, 1));
    assert_eq!(log_of(&m, 7).last(), Some(&(Waiting, Runnable, 102, 0)));
}

/// Go <= 1.25: the syscall's P was stolen by another thread's exitsyscall (or retaken and
/// handed off): Go's tracer reports the exit as GoSyscallEndBlocked + GoStart.
#[test]
fn go125_syscall_exit_after_losing_the_p() {
    use GoState::*;
    let mut m = Model::for_target(100, (1, 25));
    m.log_transitions();
    m.apply(&on_p(status(10, 101, 7, 2, 3), 1));
    // Thread 102's goroutine 8 leaves its syscall on P1 (stolen from 7's syscall).
    m.apply(&on_p(status(20, 102, 8, 3, 2), 1));
    m.apply(&on_p(status(30, 102, 8, 2, 3), 1));
    // 7 takes P1 back: lost it meanwhile.
    m.apply(&on_p(status(40, 101, 7, 3, 2), 1));
    assert_eq!(
        log_of(&m, 7),
        [
            (Running, Syscall, 101, 1),
            (Syscall, Runnable, 101, 1),
            (Runnable, Running, 101, 1),
        ]
    );
    // Kept: a plain exit.
    m.apply(&on_p(status(50, 101, 7, 2, 3), 1));
    m.apply(&on_p(status(60, 101, 7, 3, 2), 1));
    assert_eq!(
        log_of(&m, 7)[3..],
        [(Running, Syscall, 101, 1), (Syscall, Running, 101, 1)]
    );
    // exitsyscallfast_pidle: a P from the idle list on this thread.
    m.apply(&on_p(status(70, 101, 7, 2, 3), 1));
    m.apply(&acquire(80, 101, 0));
    m.apply(&on_p(status(81, 101, 7, 3, 2), 0));
    assert_eq!(
        log_of(&m, 7)[5..],
        [
            (Running, Syscall, 101, 1),
            (Syscall, Runnable, 101, 0),
            (Runnable, Running, 101, 0),
        ]
    );
}

/// Go >= 1.26: sysmon takes the P after exitsyscall's probe saw it: exitsyscallNoP queues the
/// goroutine (casgstatus Grunning -> Grunnable without a P), a blocked exit for Go's tracer.
#[test]
fn go126_p_taken_after_exitsyscall_entry() {
    use GoState::*;
    let mut m = Model::for_target(100, (1, 27));
    m.log_transitions();
    m.apply(&on_p(ev(EventKind::SyscallEnter, 10, 101, 7), 0));
    m.apply(&on_p(ev(EventKind::SyscallExit, 20, 101, 7), 0));
    m.apply(&on_p(status(21, 101, 7, 3, 2), 0));
    m.apply(&on_p(status(22, 101, 7, 2, 1), -1));
    assert_eq!(
        log_of(&m, 7),
        [(Running, Syscall, 101, 0), (Syscall, Runnable, 101, -1)]
    );
    assert_eq!(m.transitions.get(&(Syscall, Running)), Some(&0));
    assert_eq!(m.procs[&0].running, None);
    // A preemption with the P held after a plain exit stays a GoStop.
    m.apply(&on_p(status(30, 102, 7, 1, 2), 1));
    m.apply(&on_p(ev(EventKind::SyscallEnter, 40, 102, 7), 1));
    m.apply(&on_p(ev(EventKind::SyscallExit, 50, 102, 7), 1));
    m.apply(&on_p(status(60, 102, 7, 2, 1), 1));
    assert_eq!(
        log_of(&m, 7)[3..],
        [
            (Running, Syscall, 102, 1),
            (Syscall, Running, 102, 1),
            (Running, Runnable, 102, 1)
        ]
    );
}

/// Go >= 1.26: a stop-the-world (or sysmon) takes the P after exitsyscall's probe saw it, and
/// exitsyscall, finding none, gets another (exitsyscallTryGetP, then acquirepNoTrace): for Go's
/// tracer GoSyscallEndBlocked then GoStart on the new P, not a plain GoSyscallEnd.
#[test]
fn go126_p_taken_after_exitsyscall_entry_and_another_found() {
    use GoState::*;
    let mut m = Model::for_target(100, (1, 27));
    m.log_transitions();
    m.apply(&on_p(ev(EventKind::SyscallEnter, 10, 101, 7), 0));
    m.apply(&on_p(ev(EventKind::SyscallExit, 20, 101, 7), 0));
    m.apply(&on_p(status(21, 101, 7, 3, 2), 0)); // the CAS waited for the scan bit
    m.apply(&on_p(ev(EventKind::SyscallLostP, 22, 101, 0), -1));
    m.apply(&acquire(23, 101, 1));
    assert_eq!(
        log_of(&m, 7),
        [
            (Running, Syscall, 101, 0),
            (Syscall, Runnable, 101, -1),
            (Runnable, Running, 101, 1)
        ]
    );
    assert_eq!(m.transitions.get(&(Syscall, Running)), Some(&0));
    assert_eq!(m.procs[&1].running.map(|r| r.1), Some(7));
    // Lost at the entry already (the probe saw no P): the slow path adds nothing.
    m.apply(&on_p(ev(EventKind::SyscallEnter, 30, 101, 7), 1));
    m.apply(&on_p(ev(EventKind::SyscallExit, 40, 101, 7), -1));
    m.apply(&on_p(ev(EventKind::SyscallLostP, 41, 101, 0), -1));
    m.apply(&acquire(42, 101, 0));
    assert_eq!(
        log_of(&m, 7)[3..],
        [
            (Running, Syscall, 101, 1),
            (Syscall, Runnable, 101, -1),
            (Runnable, Running, 101, 0)
        ]
    );
}

fn steal(ts: u64, tid: u32, thief: i32, victim: i64, goid: u64, n: u64) -> Event {
    Event {
        arg0: victim as u64,
        arg1: n,
        ..on_p(ev(EventKind::Steal, ts, tid, goid), thief)
    }
}

#[test]
fn spinning_spells_and_where_they_end() {
    use EventKind::*;
    let mut m = Model::new();
    // M on tid 201 (P1): stealWork twice (one spell), then resetspinning and execute.
    m.apply(&on_p(ev(Schedule, 100, 201, 0), 1));
    m.apply(&on_p(ev(SpinStart, 110, 201, 0), 1));
    m.apply(&on_p(ev(SpinStart, 150, 201, 0), 1));
    assert_eq!(m.threads[&201].state, MState::Spinning);
    assert_eq!(m.spinning_now, 1);
    m.apply(&on_p(ev(SpinEnd, 170, 201, 0), 1));
    assert_eq!(m.threads[&201].state, MState::Scheduling);
    m.apply(&on_p(ev(Execute, 171, 201, 9), 1));
    // Spins again, finds nothing, drops its P (findRunnable clears m.spinning after
    // releasep), parks.
    m.apply(&on_p(ev(SpinStart, 200, 201, 0), 1));
    m.apply(&on_p(ev(ReleaseP, 230, 201, 0), 1));
    assert_eq!(m.threads[&201].state, MState::Scheduling);
    m.apply(&on_p(ev(MIdle, 231, 201, 0), -1));
    // Woken by startm(pp, spinning=true): acquirep reports m.spinning; schedule does not end
    // the spell (a new M from mspinning goes acquirep -> schedule), execute does.
    m.apply(&Event {
        arg0: 0,
        arg1: 1,
        ..on_p(ev(AcquireP, 300, 201, 0), 0)
    });
    assert_eq!(m.threads[&201].state, MState::Spinning);
    m.apply(&on_p(ev(Schedule, 305, 201, 0), 0));
    assert_eq!(m.threads[&201].state, MState::Spinning);
    m.apply(&on_p(ev(Execute, 340, 201, 10), 0));
    // A second M spinning at the same time as a third.
    m.apply(&on_p(ev(SpinStart, 400, 202, 0), 1));
    m.apply(&on_p(ev(SpinStart, 410, 203, 0), 2));
    assert_eq!(m.max_spinning, 2);
    m.apply(&on_p(ev(MIdle, 420, 202, 0), -1)); // idle ends a spell too
                                                // resetspinning with no spell seen (became spinning where no probe looks): nothing.
    m.apply(&on_p(ev(SpinEnd, 430, 204, 0), 3));
    assert_eq!(m.threads[&204].spins, 0);
    m.apply(&on_p(ev(GoExit, 500, 205, 3), 3));
    m.finish();
    let t = &m.threads[&201];
    assert_eq!(t.spins, 3);
    assert_eq!(t.spinning_ns, (170 - 110) + (230 - 200) + (340 - 300));
    assert_eq!(m.threads[&202].spinning_ns, 20);
    // Still spinning at the end: counted up to the last event, state kept.
    assert_eq!(m.threads[&203].spinning_ns, 90);
    assert_eq!(m.threads[&203].state, MState::Spinning);
    let v = views::steals(&m);
    assert_eq!(v.spins, 5);
    assert_eq!(v.spinning_ns, 130 + 20 + 90);
    let by_tid: std::collections::HashMap<u32, &str> = views::threads(&m)
        .iter()
        .map(|t| (t.tid, t.state_at_end))
        .collect();
    assert_eq!(by_tid[&203], "spinning");
    assert_eq!(by_tid[&202], "idle");
}

#[test]
fn steals_per_p_and_failed_attempts() {
    let mut m = Model::new();
    m.apply(&steal(10, 201, 1, 0, 7, 3));
    m.apply(&steal(20, 201, 1, 0, 8, 1));
    m.apply(&steal(30, 202, 0, 1, 9, 2));
    // Began before the entry probe was attached: victim unknown.
    m.apply(&steal(40, 202, 0, -1, 11, 1));
    m.apply(&Event {
        ts: 50,
        kind: EventKind::StealFailed as u32,
        tid: 0,
        p: -1,
        m: -1,
        arg0: 12,
        arg1: 12,
        ..Event::default()
    });
    m.apply(&Event {
        ts: 60,
        kind: EventKind::StealFailed as u32,
        tid: 0,
        p: -1,
        m: -1,
        arg0: 5,
        arg1: 17,
        ..Event::default()
    });
    m.finish();
    assert_eq!((m.steals, m.goroutines_stolen, m.steal_failed), (4, 7, 17));
    // Synthetic counter events are not runtime events and make no thread.
    assert_eq!(m.events, 4);
    assert!(!m.threads.contains_key(&0));
    let (p0, p1) = (&m.procs[&0], &m.procs[&1]);
    assert_eq!(
        (p1.steals, p1.gs_stolen, p1.stolen_from, p1.gs_lost),
        (2, 4, 1, 2)
    );
    assert_eq!(
        (p0.steals, p0.gs_stolen, p0.stolen_from, p0.gs_lost),
        (2, 3, 2, 4)
    );
    assert_eq!(m.threads[&201].steals, 2);
    let v = views::steals(&m);
    assert_eq!(v.failed_attempts, 17);
    let pairs: Vec<_> = v
        .by_pair
        .iter()
        .map(|p| (p.thief_p, p.victim_p, p.steals, p.goroutines))
        .collect();
    assert_eq!(pairs, [(0, -1, 1, 1), (0, 1, 1, 2), (1, 0, 2, 4)]);
    let use_: Vec<_> = views::proc_use(&m)
        .iter()
        .map(|p| (p.p, p.steals, p.stolen_from))
        .collect();
    assert_eq!(use_, [(0, 2, 2), (1, 2, 1)]);
}

/// procresize took the caller's P away (GOMAXPROCS shrank below its id) and gave it allp[0]:
/// Go's tracer records GoStop on the old P and GoStart on the new one, and so does the model.
/// A procresize that keeps the caller's P (the next event on the thread is not an acquirep)
/// changes nothing.
#[test]
fn procresize_moving_the_caller_to_another_p_stops_and_starts_it() {
    use GoState::*;
    let on = |e: Event, p: i32| Event { p, ..e };
    let acquire = |ts: u64, tid: u32, p: i32| Event {
        arg0: p as i64 as u64,
        ..on(ev(EventKind::AcquireP, ts, tid, 0), p)
    };
    let mut m = Model::new();
    m.log_transitions();
    m.apply(&create(10, 1, 0, 0x1000));
    m.apply(&acquire(15, 101, 2));
    m.apply(&on(status(20, 101, 1, 1, 2), 2));
    // GOMAXPROCS(4) -> start the world: procresize keeps P2 (no acquirep follows).
    m.apply(&on(ev(EventKind::ProcResize, 30, 101, 0), 2));
    m.apply(&on(ev(EventKind::NewProc, 31, 101, 1), 2));
    m.apply(&acquire(32, 101, 2)); // not procresize's: another event came between
    let n_before = m.transition_log.as_ref().unwrap().len();
    assert_eq!(n_before, 2, "{:?}", m.transition_log);
    // GOMAXPROCS(1): P2 is destroyed; procresize hands the caller allp[0].
    m.apply(&on(ev(EventKind::ProcResize, 40, 101, 0), 2));
    m.apply(&acquire(41, 101, 0));
    let log = m.transition_log.as_ref().unwrap();
    let got: Vec<_> = log[n_before..]
        .iter()
        .map(|t| (t.from, t.to, t.p, t.ts))
        .collect();
    assert_eq!(
        got,
        [(Running, Runnable, 2, 41), (Runnable, Running, 0, 41)]
    );
    assert_eq!(m.goroutines[&1].state, Running);
    assert_eq!(m.procs[&0].running.map(|r| r.1), Some(1));
    assert_eq!(m.procs[&2].running, None);
}

#[test]
fn an_exit_whose_creation_was_lost_is_counted_as_such() {
    let mut m = Model::new();
    m.apply(&create(10, 7, 1, 0x1000));
    m.apply(&ev(EventKind::GoExit, 20, 101, 7));
    // Goroutine 8's creation was lost: it is seen running, then exiting.
    m.apply(&ev(EventKind::Execute, 30, 101, 8));
    m.apply(&ev(EventKind::GoExit, 40, 101, 8));
    // Goroutine 9 existed at attach.
    m.seed_goroutine(9, 4, 0, 0x2000, 0x2001, None);
    m.apply(&ev(EventKind::GoExit, 60, 101, 9));
    m.finish();
    assert_eq!((m.created, m.exited, m.exited_unseen), (1, 3, 1));
    assert_eq!(m.live_goroutines(), 0);
}
