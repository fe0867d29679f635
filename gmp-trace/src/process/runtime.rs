//! Live self-validation: before trusting a runtime layout on a process, read the runtime's own
//! globals with process_vm_readv (read-only, the process keeps running) and check invariants that
//! only hold when every offset is right. The same walk yields the goroutines, Ms and Ps that exist
//! before tracing starts: the seed snapshot for `--pid` mode.
//!
//! The globals (runtime.allgs, allm, allp, gomaxprocs; g0 and m0) come from `.symtab`, else, in a
//! stripped binary, from the runtime code that uses them (`GoBinary::runtime_globals`). When the
//! code does not reveal the first four, validation is skipped (reported, not an error); when only
//! g0 and m0 stay unknown, the two checks on them are left out of the report's `checked`.
//! Reads race with the running program; every invariant checked is one that does not change once
//! the runtime is initialised (g0/m0 links, P ids), so tearing cannot make a right layout fail.

use super::memory::Remote;
use crate::binary::{BinaryError, GoBinary, OffsetsSource, RuntimeLayout};

/// Caps that keep a wrong layout (garbage lengths, cyclic lists) from running away.
const MAX_ALLGS: u64 = 1 << 22;
const MAX_ALLP: u64 = 1 << 16;
const MAX_MS: usize = 10_000;
const MAX_GOID: u64 = 1 << 40;

/// What [`check`] verifies, for the report; the first [`BOOT_CHECKS`] need g0 and m0.
const CHECKS: [&str; 7] = [
    "g0.m == &m0",
    "m0.g0 == &g0",
    "1 <= gomaxprocs <= 65536",
    "allp[i].id == i and < gomaxprocs",
    "every goid <= 1<<40",
    "goroutine 1 is in allgs",
    "the allm list is non-empty and ends within 10000 Ms",
];
const BOOT_CHECKS: usize = 2;

/// A goroutine as found in runtime.allgs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveG {
    pub addr: u64,
    pub goid: u64,
    /// g.atomicstatus as stored (scan bit 0x1000 included).
    pub status: u32,
    /// g.waitreason, the release's own numbering.
    pub waitreason: u8,
    pub startpc: u64,
    pub gopc: u64,
    /// `None` before Go 1.21 (no g.parentGoid).
    pub parent_goid: Option<u64>,
}

/// An M on the runtime.allm list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveM {
    pub addr: u64,
    pub id: i64,
    /// The OS thread id.
    pub procid: u64,
    /// goid of m.curg, `None` when the M runs no goroutine.
    pub curg_goid: Option<u64>,
    /// p.id of m.p, `None` when it holds no P.
    pub p_id: Option<i32>,
}

/// A P of runtime.allp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveP {
    pub addr: u64,
    pub id: i32,
    pub status: u32,
}

/// The outcome of [`validate_live`]: the invariants hold, and this is what the runtime holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveReport {
    pub pid: u32,
    /// Why nothing was checked (stripped binary), in which case every list is empty.
    pub skipped: Option<String>,
    pub source: Option<OffsetsSource>,
    pub gomaxprocs: i32,
    /// len(runtime.allgs): every G ever created and not freed, dead ones included.
    pub allgs_len: usize,
    pub gs: Vec<LiveG>,
    pub ms: Vec<LiveM>,
    pub ps: Vec<LiveP>,
    /// The invariants that were checked, in words.
    pub checked: Vec<&'static str>,
}

/// Read-only access to another process's memory (process_vm_readv), with error texts.
struct Mem {
    remote: Remote,
}

impl Mem {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, String> {
        self.remote.read(addr, len).map_err(|e| e.to_string())
    }

    fn u64(&self, addr: u64) -> Result<u64, String> {
        let b = self.read(addr, 8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "short read")?))
    }

    fn i32(&self, addr: u64) -> Result<i32, String> {
        let b = self.read(addr, 4)?;
        Ok(i32::from_le_bytes(b.try_into().map_err(|_| "short read")?))
    }

    fn u32(&self, addr: u64) -> Result<u32, String> {
        let b = self.read(addr, 4)?;
        Ok(u32::from_le_bytes(b.try_into().map_err(|_| "short read")?))
    }
}

fn field(base: u64, off: u32) -> u64 {
    base.wrapping_add(u64::from(off))
}

/// Checks the runtime layout `bin` implies against the memory of process `pid` (loaded at
/// `load_bias`, see [`load_bias`](super::maps::load_bias)) and returns what it found. `Err(LayoutMismatch)` means the
/// offsets are wrong for this process.
pub fn validate_live(pid: u32, bin: &GoBinary, load_bias: u64) -> Result<LiveReport, BinaryError> {
    let mut report = LiveReport {
        pid,
        ..LiveReport::default()
    };
    let globals = match bin.runtime_globals() {
        Ok(g) => g,
        Err(e) => {
            report.skipped = Some(format!("{e}: live validation skipped"));
            return Ok(report);
        }
    };
    let at = |addr: u64| addr.wrapping_add(load_bias);
    // g0 and m0 only serve two of the checks: without them the rest still runs.
    let boot = bin.boot_globals().ok().map(|b| (at(b.g0), at(b.m0)));
    let (allgs, allm, allp, gomaxprocs) = (
        at(globals.allgs),
        at(globals.allm),
        at(globals.allp),
        at(globals.gomaxprocs),
    );
    let layout = bin.runtime_layout()?;
    report.source = Some(layout.source);
    let remote = Remote::new(pid);
    // One read first, for a clear word when the process is not readable at all.
    remote.read(allgs, 8).map_err(|e| BinaryError::Process {
        pid,
        what: format!("{e}; gmp-trace needs the same user as the target, or root"),
    })?;
    let mem = Mem { remote };
    let mut problems = Vec::new();
    let (g0, m0) = boot.unwrap_or((0, 0));
    if let Err(p) = walk(
        &mem,
        &layout,
        [g0, m0, allgs, allm, allp, gomaxprocs],
        &mut report,
    ) {
        problems.push(p);
    }
    match boot {
        Some((g0, m0)) => problems.extend(check(&report, g0, m0, &mem, &layout)),
        None => problems.extend(check_lists(&report)),
    }
    if problems.is_empty() {
        let skip = if boot.is_some() { 0 } else { BOOT_CHECKS };
        report.checked = CHECKS[skip..].to_vec();
        Ok(report)
    } else {
        Err(BinaryError::LayoutMismatch {
            pid,
            source_kind: layout.source.to_string(),
            problems: problems.join("; "),
        })
    }
}

/// Reads the globals and lists into `report`; a failed read means a pointer came from a wrong
/// offset (or a wrong load bias).
fn walk(
    mem: &Mem,
    l: &RuntimeLayout,
    [_g0, _m0, allgs, allm, allp, gomaxprocs]: [u64; 6],
    report: &mut LiveReport,
) -> Result<(), String> {
    let o = &l.offsets;
    report.gomaxprocs = mem.i32(gomaxprocs)?;

    let n = mem.u64(allp.wrapping_add(8))?;
    if n > MAX_ALLP {
        return Err(format!("len(allp) = {n}"));
    }
    let arr = mem.u64(allp)?;
    for i in 0..n {
        let pp = mem.u64(arr.wrapping_add(8 * i))?;
        let id = mem.i32(field(pp, o.p_id))?;
        let status = mem.u32(field(pp, l.p_status))?;
        report.ps.push(LiveP {
            addr: pp,
            id,
            status,
        });
    }

    // ptr and len in one read, so a concurrent append cannot pair an old array with a new length.
    let hdr = mem.read(allgs, 16)?;
    let word = |b: &[u8], i: usize| -> u64 {
        b.get(i * 8..i * 8 + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
    };
    let (arr, n) = (word(&hdr, 0), word(&hdr, 1));
    if n > MAX_ALLGS {
        return Err(format!("len(allgs) = {n}"));
    }
    report.allgs_len = n as usize;
    let ptrs = mem.read(arr, (n as usize).saturating_mul(8))?;
    let gps: Vec<u64> = (0..n as usize).map(|i| word(&ptrs, i)).collect();
    report.gs = read_gs(mem, l, &gps)?;

    let mut mp = mem.u64(allm)?;
    while mp != 0 {
        if report.ms.len() >= MAX_MS {
            return Err(format!("the allm list does not end within {MAX_MS} Ms"));
        }
        let curg = mem.u64(field(mp, o.m_curg))?;
        let pp = mem.u64(field(mp, o.m_p))?;
        report.ms.push(LiveM {
            addr: mp,
            id: mem.u64(field(mp, o.m_id))? as i64,
            procid: mem.u64(field(mp, o.m_procid))?,
            curg_goid: match curg {
                0 => None,
                g => Some(mem.u64(field(g, o.g_goid))?),
            },
            p_id: match pp {
                0 => None,
                p => Some(mem.i32(field(p, o.p_id))?),
            },
        });
        mp = mem.u64(field(mp, l.m_alllink))?;
    }
    Ok(())
}

/// Goroutines read a window each (the fields used, first to last), many per system call.
fn read_gs(mem: &Mem, l: &RuntimeLayout, gps: &[u64]) -> Result<Vec<LiveG>, String> {
    let o = &l.offsets;
    let fields = [
        (o.g_goid, 8),
        (o.g_atomicstatus, 4),
        (o.g_waitreason, 1),
        (o.g_startpc, 8),
        (o.g_gopc, 8),
    ];
    let parent = l.g_parent_goid.map(|off| (off, 8));
    let all = fields.iter().chain(parent.iter());
    let lo = all.clone().map(|&(off, _)| off).min().unwrap_or(0);
    let hi = all.map(|&(off, len)| off + len).max().unwrap_or(0);
    let len = (hi - lo) as usize;
    let mut out = Vec::with_capacity(gps.len());
    // A bounded batch at a time: a million goroutines never hold more than this in buffers.
    for chunk in gps.chunks(4096) {
        let ranges: Vec<(u64, usize)> = chunk.iter().map(|&gp| (field(gp, lo), len)).collect();
        for (&gp, win) in chunk.iter().zip(mem.remote.read_many(&ranges)) {
            let w = win.ok_or_else(|| format!("reading goroutine {gp:#x}: unreadable"))?;
            let at = |off: u32, n: usize| -> u64 {
                let s = (off - lo) as usize;
                let mut b = [0u8; 8];
                b[..n].copy_from_slice(&w[s..s + n]);
                u64::from_le_bytes(b)
            };
            out.push(LiveG {
                addr: gp,
                goid: at(o.g_goid, 8),
                status: at(o.g_atomicstatus, 4) as u32,
                waitreason: at(o.g_waitreason, 1) as u8,
                startpc: at(o.g_startpc, 8),
                gopc: at(o.g_gopc, 8),
                parent_goid: l.g_parent_goid.map(|off| at(off, 8)),
            });
        }
    }
    Ok(out)
}

/// The invariants; each failure in words.
fn check(r: &LiveReport, g0: u64, m0: u64, mem: &Mem, l: &RuntimeLayout) -> Vec<String> {
    let mut problems = check_boot(g0, m0, mem, l);
    problems.extend(check_lists(r));
    problems
}

/// The first [`BOOT_CHECKS`] of [`CHECKS`]: g0 and m0 point at each other.
fn check_boot(g0: u64, m0: u64, mem: &Mem, l: &RuntimeLayout) -> Vec<String> {
    let mut problems = Vec::new();
    match mem.u64(field(g0, l.offsets.g_m)) {
        Ok(m) if m == m0 => {}
        Ok(m) => problems.push(format!("g0.m is {m:#x}, not &m0 {m0:#x}")),
        Err(e) => problems.push(e),
    }
    match mem.u64(field(m0, l.m_g0)) {
        Ok(g) if g == g0 => {}
        Ok(g) => problems.push(format!("m0.g0 is {g:#x}, not &g0 {g0:#x}")),
        Err(e) => problems.push(e),
    }
    problems
}

/// The rest of [`CHECKS`]: what the walk of the globals found.
fn check_lists(r: &LiveReport) -> Vec<String> {
    let mut problems = Vec::new();
    if !(1..=MAX_ALLP as i32).contains(&r.gomaxprocs) {
        problems.push(format!("gomaxprocs is {}", r.gomaxprocs));
    }
    for (i, p) in r.ps.iter().enumerate() {
        if usize::try_from(p.id).ok() != Some(i) || p.id >= r.gomaxprocs {
            problems.push(format!(
                "allp[{i}].id is {} (gomaxprocs {})",
                p.id, r.gomaxprocs
            ));
            break;
        }
    }
    if let Some(g) = r.gs.iter().find(|g| g.goid > MAX_GOID) {
        problems.push(format!("goid {} at {:#x} is implausible", g.goid, g.addr));
    }
    // rt0_go creates g1 (runtime.main) before anything else is added, and it lives until exit.
    if !r.gs.is_empty() && !r.gs.iter().any(|g| g.goid == 1) {
        problems.push("no goroutine 1 in allgs".into());
    }
    if r.ms.is_empty() {
        problems.push("the allm list is empty".into());
    }
    problems
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
