//! gmp-trace's binary-analysis module, compiled on its own so the fuzz targets can reach it
//! without making the tracer a library crate.
#[path = "../../gmp-trace/src/binary/mod.rs"]
pub mod binary;
