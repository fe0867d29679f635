//! The encoder on hand-made transitions: the bytes parse as batches, and what the reader
//! would reject is avoided (a start without a P, a block of a goroutine not running).
