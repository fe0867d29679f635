//! gmp-trace: watch the Go scheduler (G/M/P) of a live, unmodified Go process with eBPF uprobes.
mod binary;
mod cli;
mod export;
mod launch;
mod model;
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
    let args = cli::Args::parse();
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
    match rt.block_on(session::run(args)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("gmp-trace: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
