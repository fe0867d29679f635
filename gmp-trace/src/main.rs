//! gmp-trace: watch the Go scheduler (G/M/P) of a live, unmodified Go process with eBPF uprobes.
mod binary;
mod cli;
mod compare;
mod export;
mod fasthash;
mod kernel;
mod launch;
mod model;
mod pipeline;
mod preflight;
mod probes;
mod session;
mod source;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    // Subcommands are a first word; everything else is the tracer's own command line, which
    // ends in `-- CMD ARGS...` and must not be parsed as subcommands.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let sub = argv.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gmp-trace: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match sub {
        "compare" => compare::run(compare::CompareArgs::parse_from(
            std::iter::once("gmp-trace compare".into()).chain(argv.into_iter().skip(2)),
        )),
        "replay" => session::replay(cli::ReplayArgs::parse_from(
            std::iter::once("gmp-trace replay".into()).chain(argv.into_iter().skip(2)),
        )),
        _ => rt.block_on(session::run(cli::Args::parse_from(argv))),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("gmp-trace: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
