//! Unwinds a goroutine's stack from a saved context (pc, sp) the way Go's own traceback does on
//! amd64: the frame size at each pc comes from `.gopclntab`'s SP-delta table, the caller's pc is
//! the return address just below the frame's top, and the walk ends at the goroutine's top frame
//! (runtime.goexit). Frame pointers are not needed (a frame without one unwinds the same), and
//! nothing here trusts the stack: every address is checked against the stack's bounds, SP must
//! grow at each step, and the walk is bounded.
//!
//! Addresses are the process's own (`bias` added to the binary's); the stack bytes are a copy
//! read from `sp` upwards. When the walk needs more of the stack than the copy holds it says
//! how much ([`Walk::NeedMore`]) and the caller reads more and walks again.
use crate::binary::Lines;
use crate::fasthash::FastMap;

/// More frames than this is a corrupt chain, not a stack (Go's own stacks are at most 1 GB and
/// its traceback prints 100 frames).
pub const MAX_FRAMES: usize = 1 << 16;

/// One physical frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawFrame {
    /// The frame's pc in the process: the return address for every frame but the first.
    pub pc: u64,
    /// Symbolize at `pc` itself, not `pc - 1`: the frame was interrupted (a signal's injected
    /// call such as runtime.asyncPreempt), not stopped at a call.
    pub trap: bool,
}

/// The outcome of one walk.
#[derive(Debug, PartialEq, Eq)]
pub enum Walk {
    /// Innermost first, ending with the top frame (runtime.goexit for a goroutine).
    Done(Vec<RawFrame>),
    /// The copy ends too early: read at least this many bytes from `sp` and walk again.
    NeedMore(u64),
    /// Not a stack this can trust (the goroutine moved while it was read, or memory is corrupt).
    Bad(String),
}

/// Where a walk starts and the stack it may use.
#[derive(Clone, Copy, Debug)]
pub struct Start {
    pub pc: u64,
    pub sp: u64,
    /// g.stack: the goroutine's stack is [lo, hi).
    pub lo: u64,
    pub hi: u64,
}

/// Functions a goroutine's (or thread's) stack ends in.
fn is_top(name: &[u8]) -> bool {
    matches!(
        name,
        b"runtime.goexit" | b"runtime.mstart" | b"runtime.mstart0" | b"runtime.rt0_go"
    )
}

/// Functions that are entered by a call the runtime injects (signal handling, preemption):
/// the frame below them was interrupted mid-instruction, not at a call.
fn is_injected(name: &[u8]) -> bool {
    matches!(
        name,
        b"runtime.sigpanic" | b"runtime.asyncPreempt" | b"runtime.debugCallV2"
    )
}

/// What the walk needs to know about a pc (link-time address), looked up once per pc: a million
/// goroutines parked in the same place share every step.
#[derive(Clone, Copy, Debug)]
struct Step {
    /// The frame size there; `None` when the table has none.
    delta: Option<u64>,
    top: bool,
    injected: bool,
}

/// Steps by pc, kept across walks.
#[derive(Default)]
pub struct Steps(FastMap<u64, Option<Step>>);

impl Steps {
    fn get(&mut self, lines: &Lines<'_>, link: u64) -> Option<Step> {
        *self.0.entry(link).or_insert_with(|| {
            let (name, _) = lines.function(link)?;
            Some(Step {
                delta: lines.sp_delta(link).and_then(|d| u64::try_from(d).ok()),
                top: is_top(name),
                injected: is_injected(name),
            })
        })
    }
}

/// Walks from `start` over `stack` (the process's bytes from `start.sp` on).
pub fn walk(lines: &Lines<'_>, steps: &mut Steps, bias: u64, start: Start, stack: &[u8]) -> Walk {
    if !(start.lo..start.hi).contains(&start.sp) || start.hi - start.lo > (1 << 30) {
        return Walk::Bad(format!(
            "sp {:#x} outside its stack [{:#x}, {:#x})",
            start.sp, start.lo, start.hi
        ));
    }
    let (mut pc, mut sp, mut trap) = (start.pc, start.sp, false);
    let mut out = Vec::new();
    loop {
        if out.len() >= MAX_FRAMES {
            return Walk::Bad(format!("more than {MAX_FRAMES} frames"));
        }
        let Some(step) = steps.get(lines, pc.wrapping_sub(bias)) else {
            return Walk::Bad(format!("pc {pc:#x} is in no function"));
        };
        out.push(RawFrame { pc, trap });
        if step.top {
            return Walk::Done(out);
        }
        let Some(delta) = step.delta else {
            return Walk::Bad(format!("no frame size at pc {pc:#x}"));
        };
        // The caller's SP is just above the return address, which sits at the frame's top.
        let fp = sp.saturating_add(delta).saturating_add(8);
        if fp > start.hi {
            return Walk::Bad(format!("the frame at pc {pc:#x} runs past the stack's end"));
        }
        let at = (fp - 8 - start.sp) as usize;
        let Some(ret) = stack
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
        else {
            return Walk::NeedMore(fp - start.sp);
        };
        if ret == 0 {
            // No caller: a stack that was set up by hand (the runtime's own top frames).
            return Walk::Done(out);
        }
        trap = step.injected;
        pc = ret;
        sp = fp;
    }
}
