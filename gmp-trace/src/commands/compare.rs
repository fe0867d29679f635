//! `gmp-trace compare`: checks a recording against Go's own execution tracer. The work lives in
//! `crate::compare` (Go's side, our side, the matcher, the report); this is its entry point.
use crate::compare::{self as check, CompareArgs};

pub fn run(args: CompareArgs) -> anyhow::Result<i32> {
    check::run(args)
}
