//! Code addresses to function names. The model's views and every exporter name functions
//! through this one trait, which belongs with the binary whose table answers it; a recording
//! replayed without its binary answers with [`NoSymbols`].
use super::GoBinary;

/// Resolves code addresses in the traced binary to function names.
pub trait Symbolize {
    fn func_name(&self, pc: u64) -> Option<&str>;

    /// The source frames at a call pc (a return address minus one), innermost first: inlined
    /// calls, then the function, with file:line. Empty when unknown (or no table at hand).
    fn source_frames(&self, _pc: u64) -> Vec<super::lines::SourceFrame> {
        Vec::new()
    }

    /// For the entry `pc` of a `go`/`defer` statement's wrapper function, the entry pc of the
    /// function it calls (FUNCDATA_WrapInfo); None otherwise or when unknown.
    fn wrapped(&self, _pc: u64) -> Option<u64> {
        None
    }

    /// The name a goroutine starting at `pc` goes by, as Go's tools give it (its tracer's
    /// start function, its tracebacks' bottom frame): for a `go f(x)` statement's wrapper, `f`.
    fn start_name(&self, pc: u64) -> Option<&str> {
        self.func_name(self.wrapped(pc).unwrap_or(pc))
    }
}

impl Symbolize for GoBinary {
    fn func_name(&self, pc: u64) -> Option<&str> {
        self.func_name_for_pc(pc)
    }

    fn source_frames(&self, pc: u64) -> Vec<super::lines::SourceFrame> {
        self.lines().map(|l| l.frames(pc)).unwrap_or_default()
    }

    fn wrapped(&self, pc: u64) -> Option<u64> {
        GoBinary::wrapped(self, pc)
    }
}

/// Symbols of a binary loaded at an offset (PIE): runtime pc - bias = the binary's address.
pub struct Biased<'a> {
    inner: &'a dyn Symbolize,
    pub bias: std::cell::Cell<u64>,
}

impl<'a> Biased<'a> {
    pub fn new(inner: &'a dyn Symbolize) -> Biased<'a> {
        Biased {
            inner,
            bias: std::cell::Cell::new(0),
        }
    }
}

impl Symbolize for Biased<'_> {
    fn func_name(&self, pc: u64) -> Option<&str> {
        self.inner.func_name(pc.wrapping_sub(self.bias.get()))
    }

    fn source_frames(&self, pc: u64) -> Vec<super::lines::SourceFrame> {
        self.inner.source_frames(pc.wrapping_sub(self.bias.get()))
    }

    fn wrapped(&self, pc: u64) -> Option<u64> {
        let bias = self.bias.get();
        Some(
            self.inner
                .wrapped(pc.wrapping_sub(bias))?
                .wrapping_add(bias),
        )
    }
}

/// For when no binary is at hand: every pc stays a number.
pub struct NoSymbols;

impl Symbolize for NoSymbols {
    fn func_name(&self, _pc: u64) -> Option<&str> {
        None
    }
}
