//! gmp-trace: watch the Go scheduler (G/M/P) of a live, unmodified Go process with eBPF uprobes.
//!
//! Layers, top to bottom (docs/architecture.md has the picture): `commands` on top; `pipeline`
//! glues a source to the model and the exporters; `source` (live ring buffer, recordings),
//! `model`, `export`; below them `probes` (BPF plan, load, attach), `process` (the live target),
//! `binary` (static analysis of the executable) and `run` (the run's facts, shared).
mod binary;
mod checks;
mod cli;
mod commands;
mod compare;
mod export;
mod fasthash;
mod heap;
mod model;
mod pipeline;
mod probes;
mod process;
mod run;
mod source;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    heap::limit_arenas();
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
    let rest = |name: &str| {
        std::iter::once(std::ffi::OsString::from(name)).chain(argv.iter().skip(2).cloned())
    };
    let result = match sub {
        "compare" => {
            commands::compare::run(compare::CompareArgs::parse_from(rest("gmp-trace compare")))
        }
        "replay" => commands::replay::run(cli::ReplayArgs::parse_from(rest("gmp-trace replay"))),
        "dump" => commands::dump::run(commands::dump::DumpArgs::parse_from(rest("gmp-trace dump"))),
        "profile" => rt.block_on(commands::profile::run(
            commands::profile::ProfileArgs::parse_from(rest("gmp-trace profile")),
        )),
        "top" => rt.block_on(commands::top::run(commands::top::TopArgs::parse_from(
            rest("gmp-trace top"),
        ))),
        "serve" => rt.block_on(commands::serve::run(
            commands::serve::ServeArgs::parse_from(rest("gmp-trace serve")),
        )),
        "doctor" => commands::doctor::run(commands::doctor::DoctorArgs::parse_from(rest(
            "gmp-trace doctor",
        ))),
        "completions" => commands::completions::run(
            commands::completions::CompletionsArgs::parse_from(rest("gmp-trace completions")),
        ),
        "man" => commands::completions::man(commands::completions::ManArgs::parse_from(rest(
            "gmp-trace man",
        ))),
        // The long report; `-V` (anywhere) is clap's one line.
        "--version" => commands::version::run(),
        // New commands get their word here, and a line in commands::completions.
        _ => rt.block_on(commands::trace::run(cli::Args::parse_from(argv))),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("gmp-trace: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
