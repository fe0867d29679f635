//! CPU samples as the daemon uses them: the sampler's raw records (`probes::Sampler`) turned into
//! [`CpuSample`]s, each user-mode sample's stack copy unwound with `.gopclntab` SP deltas
//! (`process::unwind`), so that a sample in a frameless leaf still names its callers. The
//! stacks stay raw frames (process addresses); symbolizing them is the profile writer's
//! business (`process::stacks`).
use gmp_trace_common::sample::{flags, SampleHeader, SampleStacks};

use crate::binary::{BinaryError, GoBinary, Lines};
use crate::process::unwind::{walk_into, RawFrame, Start, Steps, Walk};

/// One sample of the target, unwound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuSample {
    /// CLOCK_MONOTONIC ns.
    pub ts: u64,
    pub tid: u32,
    /// The goroutine charged: the running one, or on g0 the M's current goroutine (0: none,
    /// the scheduler's own work).
    pub goid: u64,
    /// m.id, -1 when unknown.
    pub m: i64,
    /// p.id, -1 when the M held no P.
    pub p: i32,
    /// g.startpc of that goroutine (a process address), 0 when unknown.
    pub start_pc: u64,
    /// The thread ran on its M's g0 (scheduler, GC, `systemstack`).
    pub on_g0: bool,
    /// The clock interrupted the kernel (a system call, a fault). The frames are then those of
    /// the user code that entered it (none on kernels where the sampler cannot read them).
    pub in_kernel: bool,
    /// The frames stop before the stack's top: the copy ended (a deep stack) or the walk met
    /// something it could not trust (kept up to there).
    pub truncated: bool,
    /// Innermost first, process addresses; the first is the interrupted instruction (`trap`).
    pub frames: Vec<RawFrame>,
}

/// Turns records into samples; keeps the walk's per-pc cache across samples.
pub struct Unwinder<'b> {
    lines: Lines<'b>,
    steps: Steps,
    bias: u64,
    /// User-mode samples whose walk stopped on something it could not trust.
    pub unwind_failed: u64,
}

impl<'b> Unwinder<'b> {
    /// For `bin` loaded at `bias` in the target.
    pub fn new(bin: &'b GoBinary, bias: u64) -> Result<Unwinder<'b>, BinaryError> {
        Ok(Unwinder {
            lines: bin.lines()?,
            steps: Steps::default(),
            bias,
            unwind_failed: 0,
        })
    }

    /// One record (header and the stack bytes copied from its SP) as a sample.
    pub fn sample(&mut self, h: &SampleHeader, stacks: SampleStacks<'_>) -> CpuSample {
        let in_kernel = h.flags & flags::IN_KERNEL != 0;
        let mut s = CpuSample {
            ts: h.ts,
            tid: h.tid,
            goid: h.goid,
            m: h.m,
            p: h.p,
            start_pc: h.start_pc,
            on_g0: h.flags & flags::ON_G0 != 0,
            in_kernel,
            truncated: false,
            frames: Vec::new(),
        };
        if in_kernel && h.pc == 0 {
            return s;
        }
        // The walk's bounds: the g's stack when SP is inside it (a frame past the copy then
        // asks for more: the copy ended), else just the copy.
        let (lo, hi) = if h.stack_lo <= h.sp && h.sp < h.stack_hi {
            (h.stack_lo, h.stack_hi)
        } else {
            (h.sp, h.sp.saturating_add(stacks.own.len().max(1) as u64))
        };
        let own = Start {
            pc: h.pc,
            sp: h.sp,
            lo,
            hi,
        };
        if self.walk(own, stacks.own, &mut s) && s.on_g0 && h.curg_sp != 0 {
            // A systemstack call: the rest of the stack is the goroutine's, from where
            // systemstack saved it. That context's pc is runtime.systemstack_switch, a
            // marker Go's own profiles leave out (they show runtime.systemstack, then its
            // caller): so does this.
            let curg = Start {
                pc: h.curg_pc,
                sp: h.curg_sp,
                lo: h.curg_lo,
                hi: h.curg_hi,
            };
            let first = s.frames.len();
            self.walk(curg, stacks.curg, &mut s);
            if s.frames
                .get(first)
                .is_some_and(|f| self.is_switch_marker(f.pc))
            {
                s.frames.remove(first);
            }
        }
        // A pc in no Go function (vDSO, C code) still counts, as itself.
        if s.frames.is_empty() {
            s.frames.push(RawFrame {
                pc: h.pc,
                trap: true,
            });
        }
        // Interrupted, not called: symbolized at the pc itself, not the call before it.
        s.frames[0].trap = true;
        s
    }

    fn is_switch_marker(&self, pc: u64) -> bool {
        self.lines
            .function(pc.wrapping_sub(self.bias))
            .is_some_and(|(name, _)| name == b"runtime.systemstack_switch")
    }

    /// Walks one stack into the sample's frames; true when it stopped at a systemstack call
    /// (the frames go on on the goroutine's stack).
    fn walk(&mut self, start: Start, stack: &[u8], s: &mut CpuSample) -> bool {
        match walk_into(
            &self.lines,
            &mut self.steps,
            self.bias,
            start,
            stack,
            &mut s.frames,
        ) {
            Ok(()) => false,
            Err(Walk::SystemStack) => true,
            Err(Walk::NeedMore(_)) => {
                s.truncated = true;
                false
            }
            Err(w) => {
                // Seen: a sample in a signal handler walks up to runtime.sigreturn, above
                // which lies the kernel's signal frame, not a Go caller.
                log::debug!(
                    "unwinding a sample stopped at frame {}: {w:?}",
                    s.frames.len()
                );
                s.truncated = true;
                self.unwind_failed += 1;
                false
            }
        }
    }
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
