//! Reads a goroutine dump out of a running Go process: runtime.allgs, allm and allp, each
//! goroutine's state and saved context, and its stack, with process_vm_readv only (no ptrace,
//! no signal, no write; the process keeps running).
//!
//! The process runs while it is read, so reads race with it. A goroutine's stack is trusted only
//! if the goroutine's identity (goid, status, stack bounds, saved pc/sp) reads the same before
//! and after its stack was read and the frame chain stays inside its stack; otherwise it is read
//! again, a bounded number of times, and what stays torn is counted and left out. Every length
//! read from the process is bounded before anything is allocated by it.
//!
//! Cost: a few hundred bytes of `g` and the used part of each stack, in batches of thousands of
//! ranges per system call; frames are symbolized once per distinct stack.

use crate::binary::{names, BinaryError, GoBinary, RuntimeLayout, StackLayout};
use crate::fasthash::FastMap;
use crate::model::dump::{CreatedBy, Dump, Goroutine, Proc, Stack, Thread};

use super::memory::Remote;
use super::stacks::Symbols;
use super::unwind::{self, Start, Walk};

/// len(allgs) beyond this is not a Go runtime we can trust (4M goroutines).
const MAX_ALLGS: u64 = 1 << 22;
const MAX_ALLP: u64 = 1 << 16;
const MAX_MS: usize = 100_000;
/// Goroutines read per batch: bounds the buffers held at once.
const BATCH: usize = 4096;
/// The first read of a stack: enough for most parked goroutines.
const FIRST_STACK_READ: u64 = 2048;
/// A stack whose used part is larger than this is not read (1 GB is Go's own maximum).
const MAX_STACK_READ: u64 = 64 << 20;
/// g windows closer than this are read as one range (goroutine structs sit side by side in the
/// heap's spans).
const WINDOW_GAP: u64 = 1024;
/// How often a goroutine that changed while it was read is read again.
const RETRIES: usize = 4;

/// g.atomicstatus values (runtime2.go; the same in every supported release).
const G_IDLE: u32 = 0;
const G_RUNNING: u32 = 2;
const G_SYSCALL: u32 = 3;
const G_WAITING: u32 = 4;
const G_DEAD: u32 = 6;
const G_COPYSTACK: u32 = 8;
/// Go 1.26+: a dead g kept for an extra M ("waiting for cgo callback"); dumps skip it like a
/// dead one.
const G_DEADEXTRA: u32 = 11;

/// The runtime globals, at the process's addresses.
#[derive(Clone, Copy, Debug)]
pub struct Globals {
    pub allgs: u64,
    pub allm: u64,
    pub allp: u64,
}

/// Why a dump could not be taken at all.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error("cannot read the memory of pid {pid}: {what}")]
    Unreadable { pid: u32, what: String },
}

/// Where the globals are: the symbol table, or (stripped binaries) the code that uses them.
pub fn globals(bin: &GoBinary, bias: u64) -> Result<Globals, BinaryError> {
    let g = bin.runtime_globals()?;
    Ok(Globals {
        allgs: g.allgs.wrapping_add(bias),
        allm: g.allm.wrapping_add(bias),
        allp: g.allp.wrapping_add(bias),
    })
}

/// One goroutine's `g`, the fields the dump uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GWin {
    goid: u64,
    status: u32,
    waitreason: u8,
    lo: u64,
    hi: u64,
    sched_pc: u64,
    sched_sp: u64,
    sys_pc: u64,
    sys_sp: u64,
    m: u64,
    lockedm: u64,
    waitsince: i64,
    startpc: u64,
    gopc: u64,
    parent: Option<u64>,
}

impl GWin {
    /// Where its stack walk starts, if it has a saved context.
    fn start(&self) -> Option<Start> {
        let (pc, sp) = match self.status & !names::G_SCAN {
            G_SYSCALL => (self.sys_pc, self.sys_sp),
            _ => (self.sched_pc, self.sched_sp),
        };
        (pc != 0 && sp != 0).then_some(Start {
            pc,
            sp,
            lo: self.lo,
            hi: self.hi,
        })
    }

    /// What must read the same before and after the stack for the stack to be trusted.
    /// (g.stack only moves with a status change to copystack, so it is not re-read.)
    fn identity(&self) -> (u64, u32, u64, u64, u64, u64) {
        (
            self.goid,
            self.status,
            self.sched_pc,
            self.sched_sp,
            self.sys_pc,
            self.sys_sp,
        )
    }
}

/// Field offsets of [`GWin`] within a window read from `lo`.
struct GFields {
    lo: u32,
    len: usize,
    /// The smaller window of the fields in [`GWin::identity`], read again after the stack.
    id_lo: u32,
    id_len: usize,
    rl: RuntimeLayout,
    sl: StackLayout,
}

impl GFields {
    fn new(rl: RuntimeLayout, sl: StackLayout) -> GFields {
        let o = &rl.offsets;
        let mut spans = vec![
            (o.g_goid, 8),
            (o.g_atomicstatus, 4),
            (o.g_waitreason, 1),
            (o.g_m, 8),
            (o.g_startpc, 8),
            (o.g_gopc, 8),
            (sl.g_stack_lo, 8),
            (sl.g_stack_hi, 8),
            (sl.g_sched_pc, 8),
            (sl.g_sched_sp, 8),
            (sl.g_syscallpc, 8),
            (sl.g_syscallsp, 8),
            (sl.g_lockedm, 8),
            (sl.g_waitsince, 8),
        ];
        if let Some(p) = rl.g_parent_goid {
            spans.push((p, 8));
        }
        let lo = spans.iter().map(|s| s.0).min().unwrap_or(0);
        let hi = spans.iter().map(|s| s.0 + s.1).max().unwrap_or(0);
        let id = [
            (o.g_goid, 8),
            (o.g_atomicstatus, 4),
            (sl.g_sched_pc, 8),
            (sl.g_sched_sp, 8),
            (sl.g_syscallpc, 8),
            (sl.g_syscallsp, 8),
        ];
        let id_lo = id.iter().map(|s| s.0).min().unwrap_or(0);
        let id_hi = id.iter().map(|s| s.0 + s.1).max().unwrap_or(0);
        GFields {
            lo,
            len: (hi - lo) as usize,
            id_lo,
            id_len: (id_hi - id_lo) as usize,
            rl,
            sl,
        }
    }

    /// The fields in `w`, a window read from field offset `base` (fields outside it read 0).
    fn parse(&self, w: &[u8], base: u32) -> GWin {
        let at = |off: u32, n: usize| -> u64 {
            let Some(s) = off.checked_sub(base).map(|s| s as usize) else {
                return 0;
            };
            let mut b = [0u8; 8];
            if let Some(src) = w.get(s..s + n) {
                b[..n].copy_from_slice(src);
            }
            u64::from_le_bytes(b)
        };
        let (o, sl) = (&self.rl.offsets, &self.sl);
        GWin {
            goid: at(o.g_goid, 8),
            status: at(o.g_atomicstatus, 4) as u32,
            waitreason: at(o.g_waitreason, 1) as u8,
            lo: at(sl.g_stack_lo, 8),
            hi: at(sl.g_stack_hi, 8),
            sched_pc: at(sl.g_sched_pc, 8),
            sched_sp: at(sl.g_sched_sp, 8),
            sys_pc: at(sl.g_syscallpc, 8),
            sys_sp: at(sl.g_syscallsp, 8),
            m: at(o.g_m, 8),
            lockedm: at(sl.g_lockedm, 8),
            waitsince: at(sl.g_waitsince, 8) as i64,
            startpc: at(o.g_startpc, 8),
            gopc: at(o.g_gopc, 8),
            parent: self.rl.g_parent_goid.map(|p| at(p, 8)),
        }
    }
}

/// CLOCK_REALTIME now, ns.
fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether process `pid` still runs (a killed process stays a zombie until it is reaped, and
/// its memory is gone already).
fn alive(pid: u32) -> bool {
    !super::procstat::exited(pid)
}

/// Reads the dump of process `pid`, running `bin` loaded at `bias`.
pub fn take(pid: u32, bin: &GoBinary, bias: u64) -> Result<Dump, SnapshotError> {
    take_with(pid, bin, bias, true)
}

/// [`take`] without the stacks: every goroutine's state, wait reason, ids and start function,
/// the Ms and Ps, for readers that only count (`serve`). No stack walk, no second read of each
/// g to check it: a tenth of the reads on a busy process, and `Stack::Unavailable` throughout.
pub fn take_counts(pid: u32, bin: &GoBinary, bias: u64) -> Result<Dump, SnapshotError> {
    take_with(pid, bin, bias, false)
}

fn take_with(pid: u32, bin: &GoBinary, bias: u64, stacks: bool) -> Result<Dump, SnapshotError> {
    let rl = bin.runtime_layout()?;
    let sl = bin.stack_layout()?;
    let g = globals(bin, bias)?;
    let remote = Remote::new(pid);
    remote
        .read(g.allgs, 16)
        .map_err(|e| SnapshotError::Unreadable {
            pid,
            what: format!("{e}; gmp-trace needs the same user as the target, or root"),
        })?;
    let t0 = crate::source::live::monotonic_ns();
    let mut d = Dump {
        pid,
        go_version: bin.go_version().raw.clone(),
        go_minor: bin.go_version().minor,
        taken_at_ns: realtime_ns(),
        ..Dump::default()
    };
    let mut r = Reader {
        pid,
        remote,
        fields: GFields::new(rl, sl),
        sym: Symbols::new(
            bin.lines()?,
            bias,
            names::func_id_wrapper(bin.go_version().minor),
        ),
        minor: d.go_minor,
        m_ids: FastMap::default(),
        m_ps: FastMap::default(),
        steps: unwind::Steps::default(),
        now: t0,
        stacks,
    };
    if let Err(why) = r.threads_and_procs(g, &mut d) {
        d.incomplete = Some(r.gone_or(why));
    }
    if d.incomplete.is_none() {
        if let Err(why) = r.goroutines(g, &mut d) {
            d.incomplete = Some(r.gone_or(why));
        }
    }
    d.duration_ns = crate::source::live::monotonic_ns().saturating_sub(t0);
    Ok(d)
}

struct Reader<'b> {
    pid: u32,
    remote: Remote,
    fields: GFields,
    sym: Symbols<'b>,
    minor: u32,
    /// m address -> m.id, and -> p.id of its P.
    m_ids: FastMap<u64, i64>,
    m_ps: FastMap<u64, i32>,
    steps: unwind::Steps,
    /// CLOCK_MONOTONIC at the start: Go's nanotime, for g.waitsince.
    now: u64,
    /// Walk the stacks (false: counts only, see [`take_counts`]).
    stacks: bool,
}

impl Reader<'_> {
    /// Left out of a dump, as Go's own leaves it out.
    fn dead(&self, status: u32) -> bool {
        let base = status & !names::G_SCAN;
        base == G_DEAD || (self.minor >= 26 && base == G_DEADEXTRA)
    }

    /// `what`, or that the process exited: it is not alive, or the kernel said ESRCH (a
    /// process being torn down by a SIGKILL has no address space left to read while /proc
    /// still shows it running).
    fn gone_or(&self, what: String) -> String {
        let esrch = what.ends_with(&format!("(os error {})", libc::ESRCH));
        if what.contains("exited during the dump") || (alive(self.pid) && !esrch) {
            what
        } else {
            format!("pid {} exited during the dump", self.pid)
        }
    }

    fn u64_at(&self, addr: u64) -> Result<u64, String> {
        let b = self
            .remote
            .read(addr, 8)
            .map_err(|e| self.gone_or(e.to_string()))?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    /// allm, then allp ([`Reader::procs`]), then each M's P and goroutine.
    fn threads_and_procs(&mut self, g: Globals, d: &mut Dump) -> Result<(), String> {
        let o = self.fields.rl.offsets;
        let m_fields = [
            o.m_id,
            o.m_procid,
            o.m_curg,
            o.m_p,
            self.fields.rl.m_alllink,
        ];
        let m_lo = m_fields.iter().copied().min().unwrap_or(0);
        let m_len = (m_fields.iter().copied().max().unwrap_or(0) + 8 - m_lo) as usize;
        let m_len = m_len.max((o.m_spinning + 1 - m_lo) as usize);
        let mut curgs = Vec::new();
        let mut mp = self.u64_at(g.allm)?;
        let mut p_of_m = Vec::new();
        while mp != 0 {
            if d.threads.len() >= MAX_MS {
                return Err(format!("the allm list does not end within {MAX_MS} Ms"));
            }
            let w = self
                .remote
                .read(mp.wrapping_add(u64::from(m_lo)), m_len)
                .map_err(|e| self.gone_or(e.to_string()))?;
            let at = |off: u32| word(&w, (off - m_lo) as usize);
            let id = at(o.m_id) as i64;
            self.m_ids.insert(mp, id);
            curgs.push(at(o.m_curg));
            p_of_m.push((mp, at(o.m_p)));
            d.threads.push(Thread {
                m: id,
                tid: at(o.m_procid),
                curg: None,
                p: None,
                spinning: w
                    .get((o.m_spinning - m_lo) as usize)
                    .is_some_and(|&b| b != 0),
            });
            mp = at(self.fields.rl.m_alllink);
        }
        let p_ids = self.procs(g, d)?;
        for ((mp, pp), t) in p_of_m.into_iter().zip(d.threads.iter_mut()) {
            t.p = p_ids.get(&pp).copied();
            if let Some(&p) = p_ids.get(&pp) {
                self.m_ps.insert(mp, p);
            }
        }
        // m.curg -> goid: a direct read each (there are few Ms).
        for (c, t) in curgs.into_iter().zip(d.threads.iter_mut()) {
            if c != 0 {
                t.curg = self.u64_at(c.wrapping_add(u64::from(o.g_goid))).ok();
            }
        }
        Ok(())
    }

    /// allp into `d.procs`; returns p address -> p.id (for the Ms' m.p).
    fn procs(&mut self, g: Globals, d: &mut Dump) -> Result<FastMap<u64, i32>, String> {
        let o = self.fields.rl.offsets;
        let sl = self.fields.sl;
        let n = self.u64_at(g.allp.wrapping_add(8))?;
        if n > MAX_ALLP {
            return Err(format!(
                "len(allp) is {n}: not a runtime gmp-trace can read"
            ));
        }
        let arr = self.u64_at(g.allp)?;
        let p_fields = [
            o.p_id,
            self.fields.rl.p_status,
            sl.p_m,
            sl.p_runqhead,
            o.p_runqtail,
        ];
        let p_lo = p_fields.iter().copied().min().unwrap_or(0);
        let p_len = (p_fields.iter().copied().max().unwrap_or(0) + 8 - p_lo) as usize;
        let mut p_ids = FastMap::default();
        for i in 0..n {
            let pp = self.u64_at(arr.wrapping_add(8 * i))?;
            let w = self
                .remote
                .read(pp.wrapping_add(u64::from(p_lo)), p_len)
                .map_err(|e| self.gone_or(e.to_string()))?;
            let at = |off: u32| word(&w, (off - p_lo) as usize);
            let id = at(o.p_id) as i32;
            p_ids.insert(pp, id);
            d.procs.push(Proc {
                p: id,
                status: names::p_status_name(at(self.fields.rl.p_status) as u32),
                m: self.m_ids.get(&at(sl.p_m)).copied(),
                runq: (at(o.p_runqtail) as u32).wrapping_sub(at(sl.p_runqhead) as u32),
            });
        }
        Ok(p_ids)
    }

    /// Every goroutine of allgs, a batch at a time.
    fn goroutines(&mut self, g: Globals, d: &mut Dump) -> Result<(), String> {
        // ptr and len in one read, so a concurrent append cannot pair an old array with a new
        // length.
        let hdr = self
            .remote
            .read(g.allgs, 16)
            .map_err(|e| self.gone_or(e.to_string()))?;
        let (arr, n) = (word(&hdr, 0), word(&hdr, 8));
        if n > MAX_ALLGS {
            return Err(format!(
                "len(allgs) is {n}: not a runtime gmp-trace can read"
            ));
        }
        let n = n as usize;
        let mut i = 0;
        while i < n {
            let k = BATCH.min(n - i);
            let ptrs = self
                .remote
                .read(arr.wrapping_add(8 * i as u64), 8 * k)
                .map_err(|e| self.gone_or(e.to_string()))?;
            let gps: Vec<u64> = (0..k).map(|j| word(&ptrs, 8 * j)).collect();
            self.batch(&gps, d)?;
            i += k;
        }
        Ok(())
    }

    /// Each goroutine's window: all fields, or (`identity_only`) those of [`GWin::identity`].
    fn read_windows(&self, gps: &[u64], identity_only: bool) -> Vec<Option<GWin>> {
        let f = &self.fields;
        let (base, len) = if identity_only {
            (f.id_lo, f.id_len)
        } else {
            (f.lo, f.len)
        };
        let ranges: Vec<(u64, usize)> = gps
            .iter()
            .map(|&gp| (gp.wrapping_add(u64::from(base)), len))
            .collect();
        let mut wins = vec![None; gps.len()];
        self.remote.read_close_each(&ranges, WINDOW_GAP, |i, w| {
            wins[i] = w.map(|w| f.parse(w, base));
        });
        wins
    }

    /// One batch: the g windows, then the stacks of those that have a saved context.
    fn batch(&mut self, gps: &[u64], d: &mut Dump) -> Result<(), String> {
        let mut wins = self.read_windows(gps, false);
        if wins.iter().all(Option::is_none) && !alive(self.pid) {
            return Err(format!("pid {} exited during the dump", self.pid));
        }
        if !self.stacks {
            for w in wins {
                match w {
                    Some(w) if self.dead(w.status) => {}
                    Some(w) => d.goroutines.push(self.goroutine(w, Stack::Unavailable)),
                    None => d.torn_reads += 1,
                }
            }
            return Ok(());
        }
        let mut stacks: Vec<Option<Stack>> = vec![None; gps.len()];
        let mut torn: Vec<Option<String>> = vec![None; gps.len()];
        for attempt in 0..=RETRIES {
            let todo: Vec<usize> = (0..gps.len())
                .filter(|&j| stacks[j].is_none())
                .filter(|&j| wins[j].is_some_and(|w| !self.dead(w.status)))
                .collect();
            if todo.is_empty() {
                break;
            }
            let walked = self.walk_all(&todo, &wins);
            let mut moved = Vec::new();
            // Read the identities again: a stack is trusted only if nothing moved meanwhile.
            let again = self.read_windows(&todo.iter().map(|&j| gps[j]).collect::<Vec<_>>(), true);
            for ((&j, w), now) in todo.iter().zip(walked).zip(again) {
                match (wins[j], now) {
                    (Some(b), Some(a)) if b.identity() == a.identity() => match w {
                        Ok(s) => stacks[j] = Some(s),
                        // Read again: the bytes may have changed under an unchanged header.
                        Err(why) => torn[j] = Some(why),
                    },
                    _ => {
                        torn[j] = Some(format!(
                            "goroutine changed while it was read ({} tries)",
                            attempt + 1
                        ));
                        moved.push(j);
                    }
                }
            }
            let fresh =
                self.read_windows(&moved.iter().map(|&j| gps[j]).collect::<Vec<_>>(), false);
            for (j, w) in moved.into_iter().zip(fresh) {
                wins[j] = w;
            }
        }
        for (j, w) in wins.into_iter().enumerate() {
            let Some(w) = w else {
                d.torn_reads += 1;
                continue;
            };
            if self.dead(w.status) {
                continue;
            }
            let stack = match stacks[j].take() {
                Some(s) => s,
                None => {
                    d.torn_reads += 1;
                    Stack::Torn {
                        reason: torn[j].take().unwrap_or_else(|| "not read".into()),
                    }
                }
            };
            d.goroutines.push(self.goroutine(w, stack));
        }
        Ok(())
    }

    /// The stack of each goroutine in `todo`: frames, `Running`, or why not.
    fn walk_all(&mut self, todo: &[usize], wins: &[Option<GWin>]) -> Vec<Result<Stack, String>> {
        let mut out: Vec<Option<Result<Stack, String>>> = vec![None; todo.len()];
        let mut need: Vec<(usize, Start, u64)> = Vec::new();
        for (t, &j) in todo.iter().enumerate() {
            let Some(w) = wins[j] else { continue };
            let base = w.status & !names::G_SCAN;
            out[t] = match (base, w.start()) {
                (G_RUNNING, _) => Some(Ok(Stack::Running)),
                (G_IDLE, _) => Some(Ok(Stack::Unavailable)),
                (G_COPYSTACK, _) => Some(Err("its stack was being moved".into())),
                (_, None) => Some(Ok(Stack::Unavailable)),
                (_, Some(s)) if !(s.lo..s.hi).contains(&s.sp) => Some(Err(format!(
                    "sp {:#x} outside its stack [{:#x}, {:#x})",
                    s.sp, s.lo, s.hi
                ))),
                (_, Some(s)) => {
                    need.push((t, s, FIRST_STACK_READ.min(s.hi - s.sp)));
                    None
                }
            };
        }
        while !need.is_empty() {
            let ranges: Vec<(u64, usize)> = need
                .iter()
                .map(|&(_, s, len)| (s.sp, len as usize))
                .collect();
            let bufs = self.remote.read_many(&ranges);
            let mut more = Vec::new();
            for ((t, s, len), buf) in need.into_iter().zip(bufs) {
                let Some(buf) = buf else {
                    out[t] = Some(Err(format!("its stack at {:#x} is unreadable", s.sp)));
                    continue;
                };
                match unwind::walk(&self.sym.lines, &mut self.steps, self.sym.bias, s, &buf) {
                    Walk::Done(raw) => {
                        out[t] = Some(Ok(Stack::Frames {
                            frames: self.sym.stack(raw),
                        }))
                    }
                    Walk::Bad(why) => out[t] = Some(Err(why)),
                    // Only a thread's system stack (g0) holds a systemstack frame.
                    Walk::SystemStack => {
                        out[t] = Some(Err("a systemstack frame on a goroutine's stack".into()))
                    }
                    Walk::NeedMore(n) => {
                        let want = n.max(len * 4).min(s.hi - s.sp);
                        if want <= len || want > MAX_STACK_READ {
                            out[t] = Some(Err(format!("a stack of {want} bytes is not read")));
                        } else {
                            more.push((t, s, want));
                        }
                    }
                }
            }
            need = more;
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err("not read".into())))
            .collect()
    }

    fn goroutine(&mut self, w: GWin, stack: Stack) -> Goroutine {
        let base = w.status & !names::G_SCAN;
        let start_function = self.sym.start_name(w.startpc);
        let waiting = w.waitsince > 0 && matches!(base, G_SYSCALL | G_WAITING);
        Goroutine {
            goid: w.goid,
            status: names::g_status_name_in(self.minor, w.status),
            status_raw: w.status,
            wait_reason: names::wait_reason(self.minor, w.waitreason),
            waiting_ns: waiting.then(|| self.now.saturating_sub(w.waitsince as u64)),
            m: self.m_ids.get(&w.m).copied(),
            p: self.m_ps.get(&w.m).copied(),
            locked_to_thread: w.lockedm != 0,
            system: start_function
                .as_deref()
                .is_some_and(|f| names::is_system_goroutine(self.minor, f)),
            created_by: (w.goid != 1)
                .then(|| self.sym.creator(w.gopc))
                .flatten()
                .map(|(function, file, line, offset)| CreatedBy {
                    function,
                    file,
                    line,
                    goid: w.parent.filter(|&p| p != 0),
                    offset,
                }),
            start_function,
            parent_goid: w.parent,
            stack,
        }
    }
}

/// The little-endian word at byte `at` of `b` (0 past its end).
fn word(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}
