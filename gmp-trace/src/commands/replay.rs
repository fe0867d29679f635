//! `gmp-trace replay FILE`: every output of a live session made again from a recording,
//! offline and without root. The same pipeline as `trace`, fed by the recorded source; the
//! function names come from the traced binary when it is at hand.
use std::path::{Path, PathBuf};

use crate::binary::{GoBinary, GoVersion, NoSymbols, Symbolize};
use crate::cli::ReplayArgs;
use crate::model::Model;
use crate::pipeline::Pipeline;
use crate::run::RunInfo;
use crate::source::recording::Replay;

/// `gmp-trace replay FILE`: the same outputs from a recording, offline.
pub fn run(args: ReplayArgs) -> anyhow::Result<i32> {
    let rec = Replay::open(&args.recording)?;
    let h = rec.header.clone();
    let exe = args
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from(&h.binary));
    let bin = match GoBinary::open(&exe) {
        Ok(b) => Some(b),
        Err(e) => {
            log::warn!("no function names: {e} (pass --binary PATH to the traced executable)");
            None
        }
    };
    let sym: &dyn Symbolize = match &bin {
        Some(b) => b,
        None => &NoSymbols,
    };
    let go = GoVersion::parse(&h.go_version)
        .map(|v| (v.major, v.minor))
        .unwrap_or((0, 0));
    let mut pipeline = Pipeline::open(&args.out, Model::for_target(h.pid, go), sym)?;
    let name = Path::new(&h.binary)
        .file_name()
        .map_or(h.binary.clone(), |n| n.to_string_lossy().into_owned());
    pipeline.start(h.pid, &h.go_version, &name)?;
    pipeline.exec = crate::source::exec::ExecWatch::new(h.mode == "launch");
    let blocks = rec.version() >= 2;
    let mut end = rec.run(&mut pipeline)?;
    let corrupt = end.corrupt.take();
    if corrupt.is_none() && (end.truncated_bytes > 0 || end.footer.is_none()) {
        log::warn!(
            "{} was cut short ({} stray bytes, no footer): replayed its {} events, every whole {}",
            args.recording.display(),
            end.truncated_bytes,
            end.events,
            if blocks { "verified block" } else { "event" }
        );
    }
    let footer = end.footer.unwrap_or_default();
    let mode: &'static str = if h.mode == "launch" { "launch" } else { "pid" };
    let run = RunInfo {
        go_version: h.go_version,
        binary: h.binary,
        main_module: h.main_module,
        build_id: h.build_id,
        mode,
        pid: h.pid,
        exit_code: footer.exit_code,
        read_failures: footer.read_failures,
        malformed_records: footer.malformed_records + pipeline.malformed,
        probes: footer.probes,
        attach_ms: None,
        ring_buffer_bytes: None,
        aggregate: None,
        cpu_samples: None,
    };
    let summary = pipeline.finish(run)?;
    // Damage ends the replay where it was found: the outputs above cover the verified events
    // before it (useful, and said so), and the exit status says the recording is not whole.
    if let Some(e) = corrupt {
        anyhow::bail!("{e} (the outputs written cover only those)");
    }
    Ok(crate::checks::exit_code(&summary.assertions, 0))
}
