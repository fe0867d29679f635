//! The output side of a session, shared by live tracing and replay: every event goes to the
//! model and to the event writers; at the end the summary (text and JSON) and the graph are
//! made from the model. Outputs are opened before tracing starts, so a bad path fails early.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use gmp_trace_common::{phase, Event, EventKind};

use crate::cli::{Format, OutputArgs};
use crate::export::files;
use crate::export::gotrace::GoTraceWriter;
use crate::export::graph::{self, GraphFormat};
use crate::export::jsonl::JsonlWriter;
use crate::export::perfetto::{PerfettoWriter, TraceMeta};
use crate::export::summary::Summary;
use crate::export::{Biased, Symbolize};
use crate::model::Model;
use crate::run::RunInfo;
use crate::source::exec::{self, ExecWatch, Seen};
use crate::source::recording::{Footer, Recorder};
use crate::source::stacks::{self, StackTable, StackUse};
use crate::source::{Derive, Sink};

pub struct Pipeline<'a> {
    pub model: Model,
    jsonl: Option<JsonlWriter<Box<dyn Write>>>,
    /// The Perfetto output, opened early; the writer starts once the pid is known (`start`).
    perfetto_out: Option<Box<dyn Write>>,
    perfetto: Option<PerfettoWriter<Box<dyn Write>>>,
    /// The Go execution trace, likewise opened early and started with the Go version.
    gotrace_out: Option<Box<dyn Write>>,
    gotrace: Option<GoTraceWriter<Box<dyn Write>>>,
    pub recorder: Option<Recorder>,
    derive: Derive,
    sym: Biased<'a>,
    pub malformed: u64,
    write_error: Option<anyhow::Error>,
    summary_out: Option<(File, PathBuf)>,
    graph_out: Option<(File, PathBuf, GraphFormat)>,
    quiet: bool,
    /// Launch mode on a position-independent executable: the text's link address, to turn the
    /// exec event's mapped text address into the load bias.
    pub bias_from_exec: Option<u64>,
    /// Printed after the human summary (`--pid` mode: the goroutines still alive, with stacks).
    pub epilogue: Option<String>,
    /// Whether the traced image is still the one running (an exec replaces it).
    pub exec: ExecWatch,
    /// `--stacks`: the probes' stacks, and which event each belongs to.
    pub stacks: StackTable,
    /// `--assert` and `--junit`.
    checks: crate::checks::Checks,
    /// The Perfetto packet sequence to write on (one per process when several share a file),
    /// and which image of its process this is (`TraceMeta::image`).
    pub perfetto_sequence: u32,
    pub perfetto_image: u32,
}

impl Sink for Pipeline<'_> {
    fn event(&mut self, e: &Event) {
        match self.exec.see(e) {
            Seen::Pass | Seen::Launched => {}
            Seen::Ignore => {
                self.record(e);
                self.model.events_after_exec += 1;
                return;
            }
            Seen::ImageReplaced | Seen::Piece => {
                self.record(e);
                return;
            }
            Seen::PathComplete(r) => {
                self.record(e);
                self.image_replaced(r);
                return;
            }
        }
        if stacks::is_stack_record(e.kind) {
            // Kept in the recording (replay pairs them again); outputs get them with their event.
            self.record(e);
            self.stacks.see(e);
            return;
        }
        if e.kind == EventKind::Phase as u32 && e.arg0 == phase::EXEC && e.arg1 != 0 {
            // Launch mode: the exec event carries where the text was mapped; announce the load
            // bias before anything that needs it (every later event).
            if let Some(text_vaddr) = self.bias_from_exec.take() {
                self.set_bias(e.arg1.wrapping_sub(text_vaddr), e.ts, e.pid);
            }
        }
        self.record(e);
        if let Some(d) = self.derive.before(e) {
            self.deliver(&d);
        }
        self.deliver(e);
    }

    fn malformed(&mut self, _len: usize) {
        self.malformed += 1;
    }
}

impl<'a> Pipeline<'a> {
    /// The recording keeps what the probes sent: replay derives the same events again.
    fn record(&mut self, e: &Event) {
        if let Some(r) = &mut self.recorder {
            if let Err(err) = r.event(e) {
                self.write_error.get_or_insert(anyhow!(
                    "writing the recording {} failed part-way: {err}",
                    r.path().display()
                ));
                self.recorder = None;
            }
        }
    }

    /// The traced image is gone (an exec): the model and the event writers say so; nothing
    /// after this is the traced image's.
    fn image_replaced(&mut self, r: exec::Replacement) {
        if let Some(w) = &mut self.jsonl {
            if let Err(err) = w.exec(&r) {
                self.write_error
                    .get_or_insert(anyhow!("writing events failed part-way: {err}"));
                self.jsonl = None;
            }
        }
        if let Some(w) = &mut self.perfetto {
            if let Err(err) = w.image_replaced(&r) {
                self.write_error
                    .get_or_insert(anyhow!("writing the Perfetto trace failed part-way: {err}"));
                self.perfetto = None;
            }
        }
        self.model.image_replaced = Some(r);
    }

    /// Whether an exec replaced the traced image (tracing it is over).
    pub fn image_replaced_now(&self) -> bool {
        self.exec.replaced()
    }

    /// One event, probed or derived, to the model and the event writers.
    fn deliver(&mut self, e: &Event) {
        if e.kind == EventKind::LoadBias as u32 {
            self.sym.bias.set(e.arg0);
        }
        if let Some(w) = self.gotrace.as_mut().filter(|w| !w.seeded()) {
            // What existed before the first event (--pid mode: seeded after the load bias
            // is announced).
            if e.kind != EventKind::LoadBias as u32 {
                w.seed(&self.model, &self.sym);
            }
        }
        self.model.apply(e);
        let stack = self.stacks.take(e);
        if let Some(w) = &mut self.gotrace {
            let trans = self.model.transition_log.as_mut().map(std::mem::take);
            let r = w.event(
                e,
                trans.unwrap_or_default(),
                stack.as_ref(),
                &self.model,
                &self.sym,
            );
            if let Err(err) = r {
                self.write_error
                    .get_or_insert(anyhow!("writing the Go trace failed part-way: {err}"));
                self.gotrace = None;
            }
        }
        if let Some(u) = &stack {
            self.stack_to_writers(e, u);
        }
        self.stacks.follow(e, stack.as_ref());
        if let Some(w) = &mut self.jsonl {
            if let Err(err) = w.write(e, &self.sym) {
                // Keep tracing (the summary still matters) but report the failure at the end.
                self.write_error
                    .get_or_insert(anyhow!("writing events failed part-way: {err}"));
                self.jsonl = None;
            }
        }
        if let Some(w) = &mut self.perfetto {
            if let Err(err) = w.event(e, &self.sym) {
                self.write_error
                    .get_or_insert(anyhow!("writing the Perfetto trace failed part-way: {err}"));
                self.perfetto = None;
            }
        }
    }

    /// `--stacks`: the stack `u` goes with `e` (about to be written): defined at its first use,
    /// then named by the event.
    fn stack_to_writers(&mut self, e: &Event, u: &StackUse) {
        if let Some(w) = &mut self.perfetto {
            let sym = &self.sym;
            w.set_stack(u.id, || {
                u.pcs
                    .as_deref()
                    .map(|pcs| crate::export::stacks::frames(pcs, sym))
            });
        }
        if let Some(w) = &mut self.jsonl {
            let r = if u.first {
                let frames = u
                    .pcs
                    .as_deref()
                    .map(|pcs| crate::export::stacks::frames(pcs, &self.sym));
                w.stack(e.ts, u.id, u.goid, frames.as_deref())
            } else {
                Ok(())
            };
            match r {
                Ok(()) => w.set_stack(u.id),
                Err(err) => {
                    self.write_error
                        .get_or_insert(anyhow!("writing events failed part-way: {err}"));
                    self.jsonl = None;
                }
            }
        }
    }

    /// Opens every requested output now (creating the files) so a bad path fails before tracing.
    pub fn open(
        out: &OutputArgs,
        model: Model,
        sym: &'a dyn Symbolize,
    ) -> anyhow::Result<Pipeline<'a>> {
        let format = out.output_format().map_err(|e| anyhow!(e))?;
        let graph_format = match &out.graph {
            Some(p) => Some(GraphFormat::from_path(p).map_err(|e| anyhow!(e))?),
            None => None,
        };
        let events_out: Option<Box<dyn Write>> = match (&out.output, format) {
            (Some(p), Some(_)) => Some(match files::open_output(p, "events")? {
                Some(f) => Box::new(BufWriter::with_capacity(1 << 16, f)),
                None => Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout())),
            }),
            _ => None,
        };
        let (jsonl, perfetto_out, gotrace_out) = match format {
            Some(Format::Perfetto) => (None, events_out, None),
            Some(Format::Go) => (None, None, events_out),
            _ => (events_out.map(JsonlWriter::new), None, None),
        };
        let summary_out = match &out.summary_json {
            Some(p) => files::open_output(p, "summary")?.map(|f| (f, p.clone())),
            None => None,
        };
        let graph_out = match (&out.graph, graph_format) {
            (Some(p), Some(fmt)) => files::open_output(p, "graph")?.map(|f| (f, p.clone(), fmt)),
            _ => None,
        };
        let checks = crate::checks::Checks::open(&out.asserts, out.junit.as_deref())?;
        Ok(Pipeline {
            model,
            jsonl,
            perfetto_out,
            perfetto: None,
            gotrace_out,
            gotrace: None,
            recorder: None,
            derive: Derive::default(),
            sym: Biased::new(sym),
            malformed: 0,
            write_error: None,
            summary_out,
            graph_out,
            quiet: out.quiet,
            bias_from_exec: None,
            epilogue: None,
            exec: ExecWatch::default(),
            stacks: StackTable::default(),
            checks,
            perfetto_sequence: crate::export::perfetto::SEQUENCE_ID,
            perfetto_image: 0,
        })
    }

    /// Sends the event stream to `out` in `format` instead of a file of its own (several
    /// processes' streams sharing one output).
    pub fn redirect_events(&mut self, format: Format, out: Box<dyn Write>) {
        match format {
            Format::Perfetto => self.perfetto_out = Some(out),
            Format::Go => self.gotrace_out = Some(out),
            Format::Jsonl => self.jsonl = Some(JsonlWriter::new(out)),
        }
    }

    /// The scheduler graph of what the model holds now (closing it first).
    pub fn graph(&mut self) -> graph::Graph {
        self.model.finish();
        graph::build(&self.model, &self.sym)
    }

    /// Starts the writers that need to know the process (Perfetto's process track).
    pub fn start(&mut self, pid: u32, go_version: &str, process_name: &str) -> anyhow::Result<()> {
        if let Some(out) = self.perfetto_out.take() {
            let meta = TraceMeta {
                pid,
                image: self.perfetto_image,
                process_name: process_name.to_string(),
                go_version: go_version.to_string(),
                ..TraceMeta::default()
            };
            self.perfetto = Some(
                PerfettoWriter::on_sequence(out, meta, self.perfetto_sequence)
                    .context("starting the Perfetto trace")?,
            );
        }
        if let Some(out) = self.gotrace_out.take() {
            // The writer follows the model's transitions.
            self.model.log_transitions();
            self.gotrace =
                Some(GoTraceWriter::new(out, go_version).context("starting the Go trace")?);
        }
        Ok(())
    }

    /// Announces the load bias in the stream (so recordings replay with the right names).
    pub fn set_bias(&mut self, bias: u64, ts: u64, pid: u32) {
        let e = Event {
            ts,
            kind: EventKind::LoadBias as u32,
            pid,
            p: -1,
            m: -1,
            arg0: bias,
            ..Event::default()
        };
        self.event(&e);
    }

    /// Pushes buffered events out (so `tail -f`, pipes and a streamed Perfetto trace see them
    /// as they come).
    pub fn flush(&mut self) {
        if let Some(w) = &mut self.jsonl {
            if let Err(e) = w.flush() {
                self.write_error
                    .get_or_insert(anyhow!("writing events failed part-way: {e}"));
                self.jsonl = None;
            }
        }
        if let Some(w) = &mut self.perfetto {
            if let Err(e) = w.flush() {
                self.write_error
                    .get_or_insert(anyhow!("writing the Perfetto trace failed part-way: {e}"));
                self.perfetto = None;
            }
        }
        if let Some(w) = &mut self.gotrace {
            if let Err(e) = w.flush() {
                self.write_error
                    .get_or_insert(anyhow!("writing the Go trace failed part-way: {e}"));
                self.gotrace = None;
            }
        }
    }

    /// CPU samples (`--sample-rate`) into the Go trace, after the last event; how many went in.
    pub fn cpu_samples(&mut self, samples: &[crate::source::sampler::CpuSample]) -> u64 {
        let Some(w) = &mut self.gotrace else {
            return 0;
        };
        match w.cpu_samples(samples, &self.sym) {
            Ok(n) => n,
            Err(e) => {
                self.write_error
                    .get_or_insert(anyhow!("writing the Go trace failed part-way: {e}"));
                self.gotrace = None;
                0
            }
        }
    }

    /// Closes the model and writes the summary, the graph and the recording's footer.
    pub fn finish(mut self, run: RunInfo) -> anyhow::Result<Summary> {
        self.flush();
        self.model.finish();
        if let Some(w) = self.perfetto.take() {
            match w.finish() {
                Ok(mut out) => {
                    if let Err(e) = out.flush() {
                        self.write_error
                            .get_or_insert(anyhow!("writing the Perfetto trace failed: {e}"));
                    }
                }
                Err(e) => {
                    self.write_error
                        .get_or_insert(anyhow!("writing the Perfetto trace failed: {e}"));
                }
            }
        }
        if let Some(w) = self.gotrace.as_mut().filter(|w| !w.seeded()) {
            // No event came after the load bias (--pid on an idle process): the goroutines,
            // threads and Ps it had are still what the trace must say.
            w.seed(&self.model, &self.sym);
        }
        if let Some(w) = self.gotrace.take() {
            let quiet = self.quiet;
            let done = w.finish().and_then(|(mut out, synth)| {
                if !quiet {
                    if let Some(note) = synth.note() {
                        eprintln!("gmp-trace: Go trace: {note}");
                    }
                }
                out.flush()
            });
            if let Err(e) = done {
                self.write_error
                    .get_or_insert(anyhow!("writing the Go trace failed: {e}"));
            }
        }
        let footer = Footer {
            exit_code: run.exit_code,
            read_failures: run.read_failures,
            malformed_records: run.malformed_records,
            probes: run.probes.clone(),
        };
        if let Some(r) = self.recorder.take() {
            let path = r.path().to_path_buf();
            r.finish(&footer)
                .with_context(|| format!("writing the recording {}", path.display()))?;
        }
        if self.stacks.missing > 0 {
            log::warn!(
                "{} of {} stacks lost their PCs (the ring buffer was full): written as missing",
                self.stacks.missing,
                self.stacks.distinct()
            );
        }
        let mut summary = Summary::build(&self.model, run, &self.sym);
        summary.blocked_at = crate::export::stacks::blocked_at(&self.stacks, &self.sym);
        summary.assertions = self.checks.evaluate_one(&summary)?;
        if let Some((mut f, path)) = self.summary_out.take() {
            serde_json::to_writer_pretty(&mut f, &summary)
                .map_err(std::io::Error::from)
                .and_then(|()| f.write_all(b"\n"))
                .with_context(|| format!("writing the summary to {}", path.display()))?;
        }
        if let Some((f, path, fmt)) = self.graph_out.take() {
            let g = graph::build(&self.model, &self.sym);
            let mut w = BufWriter::new(f);
            graph::write(&g, fmt, &mut w)
                .and_then(|()| w.flush())
                .with_context(|| format!("writing the graph to {}", path.display()))?;
        }
        if !self.quiet {
            eprint!("{}", summary.text());
            if let Some(e) = &self.epilogue {
                eprint!("{e}");
            }
        }
        self.checks.report(&summary.assertions)?;
        if let Some(e) = self.write_error {
            bail!("{e:#}; the summary is complete");
        }
        Ok(summary)
    }
}
