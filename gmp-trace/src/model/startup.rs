//! The startup timeline: from exec to main.main, phase by phase and package by package.
//!
//! Go's startup on linux/amd64: the kernel execs the image; `_rt0_amd64_linux` jumps to
//! `runtime.rt0_go`, which sets up m0 and g0, calls `schedinit` (which sizes the Ps through
//! `procresize`), creates g1 with `newproc(runtime.main)` and enters the scheduler with `mstart`.
//! g1 then runs `runtime.main`: the runtime's init tasks, `gcenable` (which starts the sweeper
//! and scavenger goroutines), each package's init task in dependency order, then `main.main`.
//! Each milestone is one probe hit; a phase lasts from its milestone to the next one.
use std::collections::HashSet;

use gmp_trace_common::{phase, Event, EventKind};
use serde::Serialize;

use crate::binary::Symbolize;

/// Goroutines (and threads) created before main.main listed in `AtMain`, at most; past it they
/// are only counted. A process joined after main.main began (`--pid`) never shows main.main, so
/// every creation counts as "before main.main": unbounded, that list was one entry per goroutine
/// the process ever created (a server making thousands a second grew without end).
pub const AT_MAIN_KEPT: usize = 10_000;

/// One milestone as observed.
#[derive(Clone, Copy, Debug)]
struct Mark {
    ts: u64,
    goid: u64,
    tid: u32,
    m: i64,
}

impl Mark {
    fn of(e: &Event) -> Mark {
        Mark {
            ts: e.ts,
            goid: e.goid,
            tid: e.tid,
            m: e.m,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct InitTask {
    mark: Mark,
    /// The task's first init function, naming its package.
    first_fn: u64,
    task: u64,
    /// When its functions finished (known where doInit's RETs are probed, Go 1.19/1.20).
    end: Option<u64>,
}

/// Go 1.19/1.20's `doInit(t)` calls, which recurse into a task's dependencies before running
/// its functions: entries and RETs pair up (doInit never tail-calls), so a stack of open calls
/// times each task's own functions, from its last dependency's return to its own return (the
/// span GODEBUG=inittrace=1 measures). `T` is what the caller keeps about each entry. Shared by
/// the model and the Perfetto writer.
#[derive(Debug)]
pub struct InitStack<T> {
    open: Vec<OpenInit<T>>,
    done: HashSet<u64>,
}

#[derive(Clone, Copy, Debug)]
struct OpenInit<T> {
    task: u64,
    first_fn: u64,
    entry_ts: u64,
    /// When the last dependency's doInit returned: the task's own functions start after it.
    last_child_end: u64,
    entry: T,
}

/// A task whose functions have run, the first time its doInit returned.
#[derive(Clone, Copy, Debug)]
pub struct InitRun<T> {
    pub task: u64,
    pub first_fn: u64,
    /// Its own functions' span.
    pub start: u64,
    pub end: u64,
    pub entry: T,
}

impl<T> Default for InitStack<T> {
    fn default() -> Self {
        InitStack {
            open: Vec::new(),
            done: HashSet::new(),
        }
    }
}

impl<T> InitStack<T> {
    /// doInit(task) entered; `first_fn` is 0 for a task without functions.
    pub fn enter(&mut self, task: u64, first_fn: u64, ts: u64, entry: T) {
        self.open.push(OpenInit {
            task,
            first_fn,
            entry_ts: ts,
            last_child_end: 0,
            entry,
        });
    }

    /// A doInit returned: the innermost open task is done. Returns it when it has functions
    /// and is done for the first time (repeat visits of done tasks return at once).
    pub fn ret(&mut self, ts: u64) -> Option<InitRun<T>> {
        let t = self.open.pop()?;
        if let Some(parent) = self.open.last_mut() {
            parent.last_child_end = ts;
        }
        (t.first_fn != 0 && self.done.insert(t.task)).then(|| InitRun {
            task: t.task,
            first_fn: t.first_fn,
            start: t.entry_ts.max(t.last_child_end),
            end: ts,
            entry: t.entry,
        })
    }
}

/// Collects startup milestones from the event stream. Keeps O(packages) state.
#[derive(Debug, Default)]
pub struct Startup {
    exec: Option<Mark>,
    rt0_go: Option<Mark>,
    schedinit: Option<Mark>,
    gomaxprocs: Option<u64>,
    newproc_main: Option<Mark>,
    mstart_m0: Option<Mark>,
    runtime_main: Option<Mark>,
    gcenable: Option<Mark>,
    main_main: Option<Mark>,
    exit: Option<(Mark, u64)>,
    /// Init tasks in the order they ran (a task already done is entered again and returns at
    /// once: those repeat hits are dropped, but still end the task before them).
    inits: Vec<InitTask>,
    seen_tasks: HashSet<u64>,
    /// Hits of doInit1 for already-done tasks: boundaries only.
    init_boundaries: Vec<u64>,
    /// Go 1.19/1.20: the doInit call stack, and the tasks with functions in the order their
    /// functions ran (the order GODEBUG=inittrace=1 prints), each with its own time only.
    init_stack: InitStack<Mark>,
    done_inits: Vec<InitTask>,
    /// Goroutines created and threads started before main.main, as (goid, ts, start pc) /
    /// (tid, ts): the first `AT_MAIN_KEPT` of each, the rest only counted.
    goroutines: Vec<(u64, u64, u64)>,
    threads: Vec<(u32, u64)>,
    more_goroutines: u64,
    more_threads: u64,
    pid: u32,
    /// Go 1.21+ init tasks carry their functions inline (first fn at task+8).
    pub inline_init_fns: bool,
}

/// A phase of the timeline, as it appears in the summary JSON (`startup`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Phase {
    pub phase: String,
    /// ns since exec (or since the first milestone seen when exec was not).
    pub start_ns: u64,
    pub dur_ns: u64,
    /// The goroutine that ran the phase (0: a g0, i.e. no goroutine yet / scheduler code).
    pub g: u64,
    /// The M (m.id) it ran on; -1 where the probe cannot read it (assembly entry points).
    pub m: i64,
    pub tid: u32,
    /// Nesting depth for display: package inits sit inside their group.
    pub depth: u32,
}

/// What existed when main.main began.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AtMain {
    pub goroutines: Vec<GoAtMain>,
    pub threads: Vec<u32>,
    /// Goroutines and threads past the first `AT_MAIN_KEPT` of each, not listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub more_goroutines: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub more_threads: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GoAtMain {
    pub goid: u64,
    pub start_fn: String,
}

impl Startup {
    pub fn new(pid: u32, inline_init_fns: bool) -> Startup {
        Startup {
            pid,
            inline_init_fns,
            ..Startup::default()
        }
    }

    pub fn apply(&mut self, e: &Event) {
        let Some(kind) = EventKind::from_u32(e.kind) else {
            return;
        };
        let before_main = self.main_main.is_none();
        match kind {
            EventKind::Phase => self.apply_phase(e),
            EventKind::ProcResize if self.schedinit.is_some() && self.gomaxprocs.is_none() => {
                self.gomaxprocs = Some(e.arg0);
            }
            EventKind::GoCreate if before_main => {
                if e.goid == 1 && self.newproc_main.is_none() {
                    self.newproc_main = Some(Mark::of(e));
                }
                if self.goroutines.len() < AT_MAIN_KEPT {
                    self.goroutines.push((e.goid, e.ts, e.arg1));
                } else {
                    self.more_goroutines += 1;
                }
            }
            EventKind::MStart if before_main => {
                if self.threads.len() < AT_MAIN_KEPT {
                    self.threads.push((e.tid, e.ts));
                } else {
                    self.more_threads += 1;
                }
            }
            EventKind::RuntimeMain if self.runtime_main.is_none() => {
                self.runtime_main = Some(Mark::of(e));
            }
            _ => {}
        }
    }

    fn apply_phase(&mut self, e: &Event) {
        let mark = Mark::of(e);
        let slot = match e.arg0 {
            phase::EXEC => &mut self.exec,
            phase::RT0_GO => &mut self.rt0_go,
            phase::SCHEDINIT => &mut self.schedinit,
            // runtime.mstart runs on every new M; the startup milestone is m0's (tid == pid).
            phase::MSTART_M0 if e.tid == self.pid => &mut self.mstart_m0,
            phase::GCENABLE => &mut self.gcenable,
            phase::MAIN_MAIN => &mut self.main_main,
            phase::EXIT => {
                self.exit.get_or_insert((mark, e.arg1));
                return;
            }
            phase::INIT_TASK => {
                if !self.inline_init_fns {
                    self.init_stack.enter(e.arg1, e.arg2, e.ts, mark);
                }
                if self.seen_tasks.insert(e.arg1) {
                    self.inits.push(InitTask {
                        mark,
                        first_fn: e.arg2,
                        task: e.arg1,
                        end: None,
                    });
                } else {
                    self.init_boundaries.push(e.ts);
                }
                return;
            }
            phase::INIT_DONE => {
                self.init_done(e.ts);
                return;
            }
            _ => return,
        };
        slot.get_or_insert(mark);
    }

    /// A doInit returned (every call has exactly one return: it never tail-calls). A task
    /// with functions, returning for the first time, ran them after its last dependency.
    fn init_done(&mut self, ts: u64) {
        if let Some(run) = self.init_stack.ret(ts) {
            self.done_inits.push(InitTask {
                mark: Mark {
                    ts: run.start,
                    ..run.entry
                },
                first_fn: run.first_fn,
                task: run.task,
                end: Some(run.end),
            });
        }
    }

    /// Init tasks with their functions, in the order they ran: on Go 1.19/1.20 (when doInit's
    /// returns were seen) only tasks that have functions, each timed without its dependencies.
    fn init_tasks(&self) -> &[InitTask] {
        if self.done_inits.is_empty() {
            &self.inits
        } else {
            &self.done_inits
        }
    }

    /// True when the process was seen starting (launch mode), not joined later.
    pub fn observed(&self) -> bool {
        self.exec.is_some() || self.rt0_go.is_some()
    }

    /// The package an init task belongs to, from its first function ("fmt.init.0" -> "fmt").
    fn package(&self, t: &InitTask, sym: &dyn Symbolize) -> String {
        let Some(name) = sym.func_name(t.first_fn) else {
            return format!("task {:#x}", t.task);
        };
        package_of(name).to_string()
    }

    /// The timeline, in time order. Empty when startup was not observed.
    pub fn timeline(&self, sym: &dyn Symbolize) -> Vec<Phase> {
        if !self.observed() {
            return Vec::new();
        }
        // Milestones in the order Go reaches them; a phase ends where the next one starts.
        let mut marks: Vec<(String, Mark, u32)> = Vec::new();
        let mut push = |name: &str, m: Option<Mark>| {
            if let Some(m) = m {
                marks.push((name.to_string(), m, 0));
            }
        };
        push("exec", self.exec);
        push("rt0_go", self.rt0_go);
        let schedinit = match self.gomaxprocs {
            Some(n) => format!("schedinit (GOMAXPROCS={n})"),
            None => "schedinit".to_string(),
        };
        push(&schedinit, self.schedinit);
        push("newproc(runtime.main) creates g1", self.newproc_main);
        push("mstart on m0", self.mstart_m0);
        push("runtime.main on g1", self.runtime_main);
        let gc_ts = self.gcenable.map_or(u64::MAX, |m| m.ts);
        // The groups start at the first doInit entry on either side of gcenable.
        let runtime_inits: Vec<_> = self.inits.iter().filter(|t| t.mark.ts < gc_ts).collect();
        let package_inits: Vec<_> = self.inits.iter().filter(|t| t.mark.ts >= gc_ts).collect();
        if let Some(first) = runtime_inits.first() {
            push("runtime init tasks", Some(first.mark));
        }
        push("gcenable", self.gcenable);
        if let Some(first) = package_inits.first() {
            push("package inits", Some(first.mark));
        }
        push("main.main", self.main_main);
        if let Some((m, code)) = self.exit {
            push(&format!("exit({code})"), Some(m));
        }
        marks.sort_by_key(|(_, m, _)| m.ts);
        let origin = marks.first().map_or(0, |(_, m, _)| m.ts);
        let end_of =
            |i: usize, marks: &[(String, Mark, u32)]| marks.get(i + 1).map(|(_, m, _)| m.ts);
        let mut out = Vec::new();
        for (i, (name, m, depth)) in marks.iter().enumerate() {
            let end = end_of(i, &marks).unwrap_or(m.ts);
            out.push(Phase {
                phase: name.clone(),
                start_ns: m.ts - origin,
                dur_ns: end.saturating_sub(m.ts),
                g: m.goid,
                m: m.m,
                tid: m.tid,
                depth: *depth,
            });
        }
        // Each init task: until its doInit returned where that is known; otherwise from its
        // entry to the next init-task entry (done or not), gcenable, or main.main, whichever
        // comes first.
        let mut bounds: Vec<u64> = self.inits.iter().map(|t| t.mark.ts).collect();
        bounds.extend(&self.init_boundaries);
        bounds.extend(self.gcenable.map(|m| m.ts));
        bounds.extend(self.main_main.map(|m| m.ts));
        bounds.sort_unstable();
        for t in self.init_tasks() {
            let end = t.end.unwrap_or_else(|| {
                bounds
                    .iter()
                    .copied()
                    .find(|&b| b > t.mark.ts)
                    .unwrap_or(t.mark.ts)
            });
            out.push(Phase {
                phase: format!("init {}", self.package(t, sym)),
                start_ns: t.mark.ts - origin,
                dur_ns: end - t.mark.ts,
                g: t.mark.goid,
                m: t.mark.m,
                tid: t.mark.tid,
                depth: 1,
            });
        }
        out.sort_by_key(|p| (p.start_ns, p.depth));
        out
    }

    /// Goroutines and threads that exist when main.main starts.
    pub fn at_main(&self, sym: &dyn Symbolize) -> Option<AtMain> {
        self.main_main?;
        Some(AtMain {
            goroutines: self
                .goroutines
                .iter()
                .map(|&(goid, _, pc)| GoAtMain {
                    goid,
                    start_fn: sym
                        .start_name(pc)
                        .map_or_else(|| format!("{pc:#x}"), str::to_owned),
                })
                .collect(),
            threads: self.threads.iter().map(|&(tid, _)| tid).collect(),
            more_goroutines: self.more_goroutines,
            more_threads: self.more_threads,
        })
    }

    /// The package init order observed: import paths, runtime's own tasks included.
    pub fn init_packages(&self, sym: &dyn Symbolize) -> Vec<String> {
        self.init_tasks()
            .iter()
            .map(|t| self.package(t, sym))
            .collect()
    }
}

/// "example.com/a/b.init.0" -> "example.com/a/b"; "fmt.init" -> "fmt".
pub fn package_of(func: &str) -> &str {
    let slash = func.rfind('/').map_or(0, |i| i + 1);
    match func[slash..].find('.') {
        Some(dot) => &func[..slash + dot],
        None => func,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Syms;
    impl Symbolize for Syms {
        fn func_name(&self, pc: u64) -> Option<&str> {
            match pc {
                0x10 => Some("runtime.init.0"),
                0x20 => Some("example.com/x/a.init.0"),
                0x30 => Some("main.init"),
                0x40 => Some("main.worker"),
                _ => None,
            }
        }
    }

    fn ph(ts: u64, id: u64, tid: u32, goid: u64) -> Event {
        Event {
            ts,
            kind: EventKind::Phase as u32,
            tid,
            pid: 7,
            p: 0,
            goid,
            m: 0,
            arg0: id,
            ..Event::default()
        }
    }

    fn task(ts: u64, addr: u64, first_fn: u64) -> Event {
        Event {
            arg1: addr,
            arg2: first_fn,
            ..ph(ts, phase::INIT_TASK, 7, 1)
        }
    }

    #[test]
    fn package_names() {
        assert_eq!(package_of("fmt.init"), "fmt");
        assert_eq!(package_of("internal/bytealg.init.0"), "internal/bytealg");
        assert_eq!(package_of("example.com/x/a.init.0"), "example.com/x/a");
        assert_eq!(package_of("main.init.0"), "main");
        assert_eq!(package_of("internal/poll.init.0"), "internal/poll");
        assert_eq!(package_of("runtime"), "runtime");
    }

    #[test]
    fn full_timeline_in_order_with_repeated_tasks_dropped() {
        let mut s = Startup::new(7, true);
        s.apply(&ph(1000, phase::EXEC, 7, 0));
        s.apply(&ph(1100, phase::RT0_GO, 7, 0));
        s.apply(&ph(1200, phase::SCHEDINIT, 7, 0));
        s.apply(&Event {
            ts: 1250,
            kind: EventKind::ProcResize as u32,
            arg0: 4,
            ..ph(0, 0, 7, 0)
        });
        s.apply(&Event {
            ts: 1300,
            kind: EventKind::GoCreate as u32,
            goid: 1,
            arg1: 0x99,
            ..ph(0, 0, 7, 0)
        });
        s.apply(&ph(1400, phase::MSTART_M0, 7, 0));
        s.apply(&ph(1450, phase::MSTART_M0, 8, 0)); // another M: not a milestone
        s.apply(&Event {
            ts: 1500,
            kind: EventKind::RuntimeMain as u32,
            goid: 1,
            ..ph(0, 0, 7, 1)
        });
        s.apply(&task(1600, 0xa, 0x10));
        s.apply(&ph(1700, phase::GCENABLE, 7, 1));
        s.apply(&task(1800, 0xa, 0x10)); // runtime's task again: already done
        s.apply(&task(1810, 0xb, 0x20));
        s.apply(&Event {
            ts: 1850,
            kind: EventKind::GoCreate as u32,
            goid: 20,
            arg1: 0x40,
            ..ph(0, 0, 7, 1)
        });
        s.apply(&task(1900, 0xc, 0x30));
        s.apply(&ph(2000, phase::MAIN_MAIN, 7, 1));
        s.apply(&Event {
            arg1: 3,
            ..ph(2500, phase::EXIT, 9, 0)
        });
        let t = s.timeline(&Syms);
        let names: Vec<_> = t.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(
            names,
            [
                "exec",
                "rt0_go",
                "schedinit (GOMAXPROCS=4)",
                "newproc(runtime.main) creates g1",
                "mstart on m0",
                "runtime.main on g1",
                "runtime init tasks",
                "init runtime",
                "gcenable",
                "package inits",
                "init example.com/x/a",
                "init main",
                "main.main",
                "exit(3)"
            ]
        );
        let get = |n: &str| t.iter().find(|p| p.phase == n).unwrap();
        assert_eq!(get("exec").start_ns, 0);
        assert_eq!(get("rt0_go").dur_ns, 100);
        assert_eq!(get("init runtime").dur_ns, 100); // ends at gcenable
        assert_eq!(get("init example.com/x/a").dur_ns, 90); // ends at the next task
        assert_eq!(get("init main").dur_ns, 100); // ends at main.main
        assert_eq!(get("main.main").start_ns, 1000);
        assert_eq!(get("main.main").dur_ns, 500);
        assert_eq!(
            s.init_packages(&Syms),
            ["runtime", "example.com/x/a", "main"]
        );
        let at = s.at_main(&Syms).unwrap();
        assert_eq!(at.goroutines.len(), 2);
        assert_eq!(at.goroutines[1].start_fn, "main.worker");
        assert!(at.threads.is_empty());
    }

    /// Go 1.19/1.20: doInit(main) recurses into its dependencies before running main's own
    /// functions; RETs close the innermost task. Each package is timed without its deps, tasks
    /// without functions and repeat visits of done tasks are not phases, and the order is the
    /// order the functions ran (what GODEBUG=inittrace=1 prints), not the order of entry.
    #[test]
    fn recursive_do_init_times_each_package_without_its_dependencies() {
        let done = |ts| ph(ts, phase::INIT_DONE, 7, 1);
        let mut s = Startup::new(7, false);
        s.apply(&ph(1000, phase::EXEC, 7, 0));
        s.apply(&task(1600, 0xa, 0x10)); // runtime
        s.apply(&done(1650));
        s.apply(&ph(1700, phase::GCENABLE, 7, 1));
        s.apply(&task(1800, 0xc, 0x30)); // main ...
        s.apply(&task(1810, 0xb, 0x20)); // ... needs a ...
        s.apply(&task(1815, 0xd, 0)); // ... which needs a package without init functions
        s.apply(&done(1820));
        s.apply(&done(1870)); // a's functions ran 1820..1870
        s.apply(&task(1875, 0xa, 0x10)); // main also needs runtime: already done
        s.apply(&done(1876));
        s.apply(&done(1990)); // main's functions ran 1876..1990
        s.apply(&ph(2000, phase::MAIN_MAIN, 7, 1));
        assert_eq!(
            s.init_packages(&Syms),
            ["runtime", "example.com/x/a", "main"]
        );
        let t = s.timeline(&Syms);
        let get = |n: &str| t.iter().find(|p| p.phase == n).unwrap();
        assert_eq!(
            (get("init runtime").start_ns, get("init runtime").dur_ns),
            (600, 50)
        );
        let a = get("init example.com/x/a");
        assert_eq!((a.start_ns, a.dur_ns), (820, 50));
        let m = get("init main");
        assert_eq!((m.start_ns, m.dur_ns, m.g), (876, 114, 1));
        assert_eq!(get("package inits").start_ns, 800);
        assert_eq!(get("gcenable").dur_ns, 100);
        assert!(!t.iter().any(|p| p.phase.starts_with("init task")), "{t:?}");
    }

    /// Joined after main.main (--pid), every creation is "before main.main" for ever: the list
    /// keeps the first `AT_MAIN_KEPT` and counts the rest, which main.main (were it to come
    /// after all) reports as not listed.
    #[test]
    fn goroutines_before_main_are_kept_bounded() {
        let mut s = Startup::new(7, true);
        let extra = 25;
        for i in 0..AT_MAIN_KEPT as u64 + extra {
            s.apply(&Event {
                ts: 1000 + i,
                kind: EventKind::GoCreate as u32,
                goid: 100 + i,
                arg1: 0x40,
                ..ph(0, 0, 7, 0)
            });
        }
        assert_eq!(s.goroutines.len(), AT_MAIN_KEPT);
        assert_eq!(s.more_goroutines, extra);
        assert!(s.at_main(&Syms).is_none());
        s.apply(&ph(1_000_000, phase::MAIN_MAIN, 7, 1));
        let at = s.at_main(&Syms).unwrap();
        assert_eq!(at.goroutines.len(), AT_MAIN_KEPT);
        assert_eq!(at.goroutines[0].goid, 100);
        assert_eq!(at.more_goroutines, extra);
        let json = serde_json::to_value(&at).unwrap();
        assert_eq!(json["more_goroutines"], extra);
        assert!(json.get("more_threads").is_none(), "0 is left out: {json}");
    }

    #[test]
    fn attached_later_shows_no_timeline() {
        let mut s = Startup::new(7, true);
        s.apply(&ph(2000, phase::MAIN_MAIN, 7, 1));
        assert!(!s.observed());
        assert!(s.timeline(&Syms).is_empty());
    }
}
