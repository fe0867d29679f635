//! gmp-trace's modules that read untrusted bytes, compiled on their own so the fuzz targets can
//! reach them without making the tracer a library crate: the binary analysis, the recording
//! reader, and the event path from bytes to the model (decoding, the derived events, the
//! model itself, which must take any event sequence).
#[path = "../../gmp-trace/src/binary/mod.rs"]
pub mod binary;
#[path = "../../gmp-trace/src/fasthash.rs"]
pub mod fasthash;
#[path = "../../gmp-trace/src/model/mod.rs"]
pub mod model;
#[path = "../../gmp-trace/src/run.rs"]
pub mod run;

pub mod source;

pub mod events;
