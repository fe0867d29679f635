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
    /// The walk, on a thread's system stack (g0), reached `runtime.systemstack`: its caller
    /// runs on the goroutine the M works for (m.curg), whose stack goes on from where
    /// systemstack saved it (g.sched), as Go's own traceback follows it. The frames so far
    /// end with the runtime.systemstack frame.
    SystemStack,
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

/// Where code running on g0 for a goroutine (a `systemstack` call) returns to that goroutine's
/// stack.
fn is_stack_switch(name: &[u8]) -> bool {
    name == b"runtime.systemstack"
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
    switch: bool,
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
                switch: is_stack_switch(name),
            })
        })
    }
}

/// Walks from `start` over `stack` (the process's bytes from `start.sp` on).
pub fn walk(lines: &Lines<'_>, steps: &mut Steps, bias: u64, start: Start, stack: &[u8]) -> Walk {
    let mut out = Vec::new();
    match walk_into(lines, steps, bias, start, stack, &mut out) {
        Ok(()) => Walk::Done(out),
        Err(w) => w,
    }
}

/// [`walk`] into `out`, which keeps the frames found before the walk stopped: Ok when it
/// reached the top, else `NeedMore`, `Bad` or `SystemStack` (never `Done`). For a copy of a stack's top that
/// cannot be read again (the CPU sampler's), the frames it holds are what there is.
pub fn walk_into(
    lines: &Lines<'_>,
    steps: &mut Steps,
    bias: u64,
    start: Start,
    stack: &[u8],
    out: &mut Vec<RawFrame>,
) -> Result<(), Walk> {
    if !(start.lo..start.hi).contains(&start.sp) || start.hi - start.lo > (1 << 30) {
        return Err(Walk::Bad(format!(
            "sp {:#x} outside its stack [{:#x}, {:#x})",
            start.sp, start.lo, start.hi
        )));
    }
    let (mut pc, mut sp, mut trap) = (start.pc, start.sp, false);
    loop {
        if out.len() >= MAX_FRAMES {
            return Err(Walk::Bad(format!("more than {MAX_FRAMES} frames")));
        }
        let Some(step) = steps.get(lines, pc.wrapping_sub(bias)) else {
            return Err(Walk::Bad(format!("pc {pc:#x} is in no function")));
        };
        out.push(RawFrame { pc, trap });
        if step.switch {
            return Err(Walk::SystemStack);
        }
        if step.top {
            return Ok(());
        }
        let Some(delta) = step.delta else {
            return Err(Walk::Bad(format!("no frame size at pc {pc:#x}")));
        };
        // The caller's SP is just above the return address, which sits at the frame's top.
        let fp = sp.saturating_add(delta).saturating_add(8);
        if fp > start.hi {
            return Err(Walk::Bad(format!(
                "the frame at pc {pc:#x} runs past the stack's end"
            )));
        }
        let at = (fp - 8 - start.sp) as usize;
        let Some(ret) = stack
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
        else {
            return Err(Walk::NeedMore(fp - start.sp));
        };
        if ret == 0 {
            // No caller: a stack that was set up by hand (the runtime's own top frames).
            return Ok(());
        }
        trap = step.injected;
        pc = ret;
        sp = fp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::test_support::sample;
    use crate::binary::GoBinary;
    use gmp_trace_tests::Variant;

    /// A pc inside `name` where its frame is set up (non-zero SP delta), and that delta.
    fn framed_pc(lines: &Lines<'_>, bin: &GoBinary, name: &str) -> (u64, u64) {
        let f = bin.function(name).unwrap();
        (f.addr..f.addr + f.size)
            .find_map(|pc| {
                let d = lines.sp_delta(pc)?;
                (d > 0).then_some((pc, d as u64))
            })
            .unwrap()
    }

    fn stack_with(words: &[(u64, u64)], len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        for &(at, v) in words {
            b[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn walks_to_goexit_and_refuses_what_is_not_a_stack() {
        let bin =
            GoBinary::open(&sample(gmp_trace_tests::GO_VERSIONS[0], Variant::Default)).unwrap();
        let lines = bin.lines().unwrap();
        let (pc, delta) = framed_pc(&lines, &bin, "main.main");
        let goexit = bin.function("runtime.goexit").unwrap().addr;
        let (lo, sp) = (0x10_0000u64, 0x10_1000u64);
        let hi = sp + 4096;
        let start = Start { pc, sp, lo, hi };
        let mut steps = Steps::default();
        // main.main's return address, just below the top of its frame, is goexit+1.
        let stack = stack_with(&[(delta, goexit + 1)], 4096);
        match walk(&lines, &mut steps, 0, start, &stack) {
            Walk::Done(f) => {
                assert_eq!(f.len(), 2, "{f:?}");
                assert_eq!(f[0], RawFrame { pc, trap: false });
                assert_eq!(f[1].pc, goexit + 1);
            }
            w => panic!("{w:?}"),
        }
        // The same with a PIE-style bias: addresses in the process, lookups at link time.
        let bias = 0x5555_0000_0000u64;
        let biased = stack_with(&[(delta, goexit + 1 + bias)], 4096);
        let s2 = Start {
            pc: pc + bias,
            ..start
        };
        assert!(
            matches!(walk(&lines, &mut steps, bias, s2, &biased), Walk::Done(f) if f.len() == 2)
        );
        // Too little of the stack copied: asks for exactly what it needs.
        assert_eq!(
            walk(&lines, &mut steps, 0, start, &stack[..delta as usize]),
            Walk::NeedMore(delta + 8)
        );
        // A return address into no function (garbage, or a stack being reused).
        let junk = stack_with(&[(delta, 0x10)], 4096);
        assert!(
            matches!(walk(&lines, &mut steps, 0, start, &junk), Walk::Bad(w) if w.contains("no function"))
        );
        // A frame that would run past the stack's top.
        let short = Start {
            hi: sp + delta,
            ..start
        };
        assert!(
            matches!(walk(&lines, &mut steps, 0, short, &stack), Walk::Bad(w) if w.contains("past"))
        );
        // SP outside the goroutine's stack.
        let outside = Start { sp: hi, ..start };
        assert!(
            matches!(walk(&lines, &mut steps, 0, outside, &stack), Walk::Bad(w) if w.contains("outside"))
        );
        // A return address of 0 ends the walk (a hand-made top frame).
        let zero = stack_with(&[], 4096);
        assert!(matches!(walk(&lines, &mut steps, 0, start, &zero), Walk::Done(f) if f.len() == 1));
    }

    /// A frame chain that points back into itself cannot loop: SP grows at every step and the
    /// stack's top ends the walk.
    #[test]
    fn a_self_referencing_chain_ends() {
        let bin =
            GoBinary::open(&sample(gmp_trace_tests::GO_VERSIONS[0], Variant::Default)).unwrap();
        let lines = bin.lines().unwrap();
        let (pc, delta) = framed_pc(&lines, &bin, "main.main");
        let (lo, sp) = (0x20_0000u64, 0x20_0000u64);
        let hi = sp + 64 * 1024;
        // Every slot holds main.main's pc again: each frame "returns" into main.main.
        let words: Vec<(u64, u64)> = (0..(64 * 1024 / 8)).map(|i| (i * 8, pc)).collect();
        let stack = stack_with(&words, 64 * 1024);
        let w = walk(
            &lines,
            &mut Steps::default(),
            0,
            Start { pc, sp, lo, hi },
            &stack,
        );
        assert!(matches!(&w, Walk::Bad(r) if r.contains("past")), "{w:?}");
        let _ = delta;
    }
}
