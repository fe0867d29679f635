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
    let total: u64 = m.transitions.values().sum();
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
    impl crate::export::Symbolize for S {
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
