//! Exporters: turn events (and the model) into files people read.
pub mod graph;
pub mod jsonl;
pub mod summary;

/// Resolves code addresses in the traced binary to function names.
pub trait Symbolize {
    fn func_name(&self, pc: u64) -> Option<&str>;
}

/// For when no binary is at hand: every pc stays a number.
pub struct NoSymbols;

impl Symbolize for NoSymbols {
    fn func_name(&self, _pc: u64) -> Option<&str> {
        None
    }
}
