//! Go's goroutine-dump text over a [`Dump`](crate::model::dump::Dump): [`text`] prints what
//! `runtime.Stack(buf, true)` prints (so panicparse and people read it), [`group`] folds
//! goroutines with the same state and stack into one block each (`--group`). The names and
//! rules of each Go release come from [`crate::binary::names`]; [`stack`] applies them to one
//! goroutine's frames and is shared by both writers.

pub mod group;
mod stack;
pub mod text;

pub use group::write_grouped;
pub use text::write_text;

/// What the text writers show beyond what `runtime.Stack` shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextOptions {
    /// Every frame, package runtime's included, and `created by` runtime functions (what
    /// GOTRACEBACK=system shows), instead of hiding them the way Go's default does.
    pub runtime_frames: bool,
    /// Runtime-internal goroutines too (GC workers, the finalizer goroutine, ...), which Go's
    /// dump leaves out.
    pub system: bool,
    /// Grouped output: at most this many groups (the largest), then a line saying how many more
    /// there are (the end of a trace's summary keeps it short).
    pub max_groups: Option<usize>,
}

#[cfg(test)]
mod tests;
