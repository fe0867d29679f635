//! `gmp-trace dump --pid N`: every goroutine of a running Go process with its stack, read from
//! the runtime's memory (process/snapshot.rs) without a probe, a signal or a stop, printed in
//! Go's own traceback format, grouped, or as JSON (docs/formats.md).
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};

use crate::binary::GoBinary;
use crate::export::godump::{write_grouped, write_text, TextOptions};
use crate::model::dump::Dump;
use crate::process::{exe::target_executable, maps::load_bias, preflight, snapshot};

/// Print every goroutine of a running Go process with its stack, without stopping it.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace dump", version, long_about = None)]
#[command(
    after_help = "Examples:\n  sudo gmp-trace dump --pid 4242                    as Go prints them (runtime.Stack, SIGQUIT)\n  sudo gmp-trace dump --pid 4242 --group            identical stacks counted once\n  sudo gmp-trace dump --pid 4242 --format json -o dump.json\n\nThe process keeps running: nothing is attached, nothing written to it. A goroutine that is on\na CPU at that instant has no saved stack and shows as [running]."
)]
pub struct DumpArgs {
    /// The running Go process to read.
    #[arg(short = 'p', long = "pid")]
    pub pid: Option<i32>,

    /// text: Go's goroutine dump format; json: the whole snapshot (docs/formats.md).
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Goroutines with the same state and stack once, with their count (text only).
    #[arg(long = "group")]
    pub group: bool,

    /// Also print the frames of package runtime, which Go's own dump hides (text only).
    #[arg(long = "runtime-frames")]
    pub runtime_frames: bool,

    /// Also print the runtime's own goroutines (GC workers, the scavenger...), as
    /// GOTRACEBACK=system does (text only; JSON always has them, marked "system").
    #[arg(long = "system")]
    pub system: bool,

    /// Not accepted: a dump reads a process that is already running.
    #[arg(last = true, hide = true)]
    pub command: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(args: DumpArgs) -> anyhow::Result<i32> {
    if !args.command.is_empty() {
        bail!(
            "`gmp-trace dump` reads a process that is already running: pass --pid N \
             (to watch a program from its first instruction, trace it: gmp-trace -- {})",
            args.command.join(" ")
        );
    }
    let Some(pid) = args.pid else {
        bail!("which process? pass --pid N, the pid of a running Go program (see `pgrep`)");
    };
    preflight::process_exe(pid)?;
    let pid = pid as u32;
    let exe = target_executable(pid)?;
    let bin = GoBinary::open(&exe.proc_path)?;
    super::require_known_runtime(&bin, "dump")?;
    // The output is opened before anything is read: a bad path fails first.
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(crate::export::files::open_file(
            p, "dump",
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bias = load_bias(pid, &bin)?;
    let d = snapshot::take(pid, &bin, bias)?;
    log::info!(
        "read {} goroutines, {} threads, {} procs in {:.1} ms",
        d.goroutines.len(),
        d.threads.len(),
        d.procs.len(),
        d.duration_ns as f64 / 1e6
    );
    write(&d, &args, &mut out).context("writing the dump")?;
    out.flush().context("writing the dump")?;
    if let Some(why) = &d.incomplete {
        eprintln!(
            "gmp-trace: error: the dump is incomplete ({why}): {} goroutines read",
            d.goroutines.len()
        );
        return Ok(1);
    }
    if d.torn_reads > 0 {
        log::warn!(
            "{} goroutines changed on every read; their stacks are left out",
            d.torn_reads
        );
    }
    Ok(0)
}

fn write(d: &Dump, args: &DumpArgs, out: &mut dyn Write) -> std::io::Result<()> {
    match args.format {
        Format::Json => {
            serde_json::to_writer(&mut *out, d)?;
            out.write_all(b"\n")
        }
        Format::Text => {
            let opts = TextOptions {
                runtime_frames: args.runtime_frames,
                system: args.system,
                max_groups: None,
            };
            if args.group {
                write_grouped(d, &opts, out)
            } else {
                write_text(d, &opts, out)
            }
        }
    }
}
