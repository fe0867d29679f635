//! Exporters: turn events (and the model) into files people read.
pub mod graph;
pub mod jsonl;
pub mod perfetto;
pub mod summary;

/// Resolves code addresses in the traced binary to function names.
pub trait Symbolize {
    fn func_name(&self, pc: u64) -> Option<&str>;
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
}

/// For when no binary is at hand: every pc stays a number.
pub struct NoSymbols;

impl Symbolize for NoSymbols {
    fn func_name(&self, _pc: u64) -> Option<&str> {
        None
    }
}
