//! `gmp-trace top`: a live view of a running Go process that costs it no uprobe trap. Every
//! interval the runtime's memory is read (process/snapshot.rs: goroutines, Ms, Ps) and the CPU
//! sampler's samples of that interval (probes/sampler.rs, unwound by source/sampler.rs) are
//! folded in; `top/frame.rs` turns both into the panels, `top/text.rs` prints them (`--batch`,
//! like `top -b`), `top/draw.rs` draws them full screen on `top/tui.rs`'s terminal, with the
//! keys of `top/view.rs` (filter, pick, open a row's stacks, from `top/pick.rs`). GC totals
//! come from memory too (`top/gc.rs`); `--with` adds a few uprobes, off by default
//! (`top/uprobes.rs`).
//!
//! A launched program (`-- CMD`) must not write over the full-screen view: its stdout and stderr
//! go to a file (named at the bottom of the screen and on exit) and its stdin is /dev/null (the
//! keys are ours). With `--batch`, our stdout carries the frames, so the program's stdout goes
//! to our stderr, with its stderr: `top --batch -- ./prog > frames.txt` keeps the frames clean.
mod draw;
// frame (the counts), sched (the global run queue) and uprobes (--with) are shared with
// `gmp-trace serve` (commands/serve/), which reads the same sources for many processes.
pub(crate) mod frame;
mod gc;
mod pick;
pub(crate) mod sched;
mod text;
mod tui;
pub(crate) mod uprobes;
mod view;

use std::io::{IsTerminal as _, Write as _};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use crate::binary::{names, GoBinary};
use crate::cli::parse_duration;
use crate::model::dump::Dump;
use crate::probes::{self, Sampler};
use crate::process::launch::{ChildStdio, Launch};
use crate::process::stacks::Symbols;
use crate::process::{preflight, snapshot, SignalAction, Target};
use crate::source::sampler::Unwinder;
use draw::Screen;
use frame::{Cpu, Frame, History, Hit, SiteSort};
use gc::GcReader;
use gmp_trace_common::Offsets;
use pick::Pick;
use text::{Limits, Totals};
use tui::{Input, Tui};
use uprobes::{Probes, With};
use view::{Action, Stacks, View};

/// A live view of a Go program's goroutines, threads, Ps and CPU, without uprobes.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace top", version, long_about = None)]
#[command(
    after_help = "Examples:\n  sudo gmp-trace top --pid 4242                       full screen, every second\n  sudo gmp-trace top -- ./prog args                   launch and watch\n  sudo gmp-trace top --pid 4242 --batch -n 5          plain text frames, like top -b\n  sudo gmp-trace top --pid 4242 --batch -d 10s --summary-json s.json\n\nKeys: q quit, p pause, s sort the creation sites, / filter by function, Tab and Up/Down pick\na row, Enter show its goroutines' stacks (Esc or q back), ? help. A launched program's output\ngoes to a file in full-screen mode (named on exit), to our stderr with --batch. Nothing is\nattached to the program's code: the state is read from its memory, the CPU from a sampler on\neach CPU's clock."
)]
pub struct TopArgs {
    /// The running Go process to watch.
    #[arg(short = 'p', long = "pid", conflicts_with = "command")]
    pub pid: Option<i32>,

    /// Plain-text frames on standard output instead of the full-screen view.
    #[arg(short = 'b', long = "batch")]
    pub batch: bool,

    /// Stop after N frames.
    #[arg(short = 'n', long = "iterations", value_name = "N")]
    pub iterations: Option<u64>,

    /// Time between frames (e.g. 1s, 500ms).
    #[arg(short = 'i', long = "interval", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Stop after this long (e.g. 10s). Default: until q, Ctrl-C or the program's exit.
    #[arg(short = 'd', long = "duration", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// CPU samples per second on each CPU.
    #[arg(long = "sample-rate", value_name = "HZ", default_value_t = 99,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub sample_rate: u64,

    /// A creation site whose live goroutines rose at each of the last N frames is flagged
    /// `leak?` (the reading at attach counts as the first).
    #[arg(long = "leak-frames", value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub leak_frames: u64,

    /// Add probes (off by default; comma-separated): `lifecycle`, goroutine creation and exit
    /// (exact counts per interval, by creation site and creator); `sched`, the scheduling
    /// latency histogram. The footer shows what each costs.
    #[arg(long = "with", value_name = "SET", value_delimiter = ',')]
    pub with: Vec<With>,

    /// At the end, write the last frame and the run's totals to FILE as JSON.
    #[arg(long = "summary-json", value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    /// The program to start and watch (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub async fn run(args: TopArgs) -> anyhow::Result<i32> {
    check_args(&args)?;
    let mut target = Target::resolve(args.pid, &args.command, false)?;
    let output = match &mut target {
        Target::Launch(l) => redirect(l, args.batch)?,
        Target::Attach(_) => None,
    };
    let exe = target.exe().to_path_buf();
    let bin = GoBinary::open(&exe)?;
    super::require_known_runtime(&bin, "top")?;
    let offsets = probes::offsets(&bin)?;
    preflight::check_privileges()?;
    if let Some(p) = &args.summary_json {
        crate::export::files::open_file(p, "summary")?;
    }
    // The binary's tables (pclntab, the DWARF of mstats and schedt) are parsed now, while a
    // launched program is still held: once it runs, tens of ms of our CPU would be taken from
    // it, on a machine it may saturate.
    let _ = bin.lines();
    let _ = bin.memstats_layout();
    let _ = sched::GlobalRunq::locate(&bin, 0, 0);
    let (pid, sampler, bias) = super::start_sampled(&mut target, &bin, offsets, args.sample_rate)?;
    let who = format!("{} (pid {pid})", target.process_name());
    let probes = Probes::start(
        &args.with,
        &bin,
        &exe,
        &Offsets {
            target_pid: pid,
            ..offsets
        },
    )
    .context("attaching the --with probes")?;
    let mut s = Session::new(&bin, bias, pid, sampler, probes, &args)?;
    match &target {
        // "Since attach" is since the program started: nothing, and no read of a runtime that
        // is only starting (a read then races a program that may already be creating
        // goroutines by the thousand).
        Target::Launch(_) => s.history.baseline(&Dump::default()),
        Target::Attach(_) => {
            if let Ok(d) = snapshot::take(pid, &bin, bias) {
                if d.incomplete.is_none() {
                    s.history.baseline(&d);
                }
            }
        }
    }
    if let Some(g) = s.gc.as_mut() {
        g.baseline();
    }
    let mut ui = if args.batch {
        None
    } else {
        Some(Ui {
            tui: Tui::start()?,
            view: View::default(),
            output: output.clone(),
        })
    };
    let exited = drive(&mut target, &mut s, &mut ui, &args, &who).await;
    // The terminal comes back before anything else is printed.
    drop(ui);
    if let Some(p) = &output {
        eprintln!("gmp-trace top: program output: {}", p.display());
    }
    let exited = exited?;
    s.stop(exited, &args, &who)?;
    if !exited && matches!(target, Target::Launch(_)) {
        eprintln!("gmp-trace top: waiting for {who} to exit (Ctrl-C stops it)");
    }
    target.finish().await?;
    Ok(0)
}

/// What can be refused before anything starts.
fn check_args(args: &TopArgs) -> anyhow::Result<()> {
    if args.pid.is_none() && args.command.is_empty() {
        bail!("what to watch? pass --pid N, or a program after `--` (gmp-trace top -- ./prog)");
    }
    if args.interval < Duration::from_millis(10) {
        bail!("--interval must be at least 10ms");
    }
    if !args.batch && !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        bail!(
            "the full-screen view needs a terminal; use --batch for plain-text frames \
             (gmp-trace top --batch -n 5 ...)"
        );
    }
    Ok(())
}

/// Where a launched program's streams go (see the module comment); the file, if one.
fn redirect(l: &mut Launch, batch: bool) -> anyhow::Result<Option<PathBuf>> {
    if batch {
        let err = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stderr for the program's output")?;
        l.redirect(ChildStdio {
            stdout: Some(Stdio::from(err)),
            ..ChildStdio::default()
        });
        return Ok(None);
    }
    let path = std::env::temp_dir().join(format!(
        "gmp-trace-top-{}-{}.log",
        l.process_name(),
        std::process::id()
    ));
    // create_new: never through a link someone left in the shared temporary directory.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create {} for the program's output", path.display()))?;
    let copy = file
        .try_clone()
        .context("duplicating the program's output file")?;
    l.redirect(ChildStdio {
        stdin: Some(Stdio::null()),
        stdout: Some(Stdio::from(file)),
        stderr: Some(Stdio::from(copy)),
    });
    Ok(Some(path))
}

/// The full-screen view: the terminal, what the keys changed, the program's output file.
struct Ui {
    tui: Tui,
    view: View,
    output: Option<PathBuf>,
}

/// What the loop keeps between frames.
struct Session<'b> {
    bin: &'b GoBinary,
    bias: u64,
    pid: u32,
    sampler: Sampler,
    /// Where the global run queue's length is, if the binary says.
    global_runq: Option<sched::GlobalRunq>,
    probes: Probes,
    gc: Option<GcReader>,
    unwinder: Unwinder<'b>,
    sym: Symbols<'b>,
    hits: Vec<Hit>,
    malformed: u64,
    lost_seen: u64,
    interval_start: Instant,
    rate_hz: u64,
    history: History,
    totals: Totals,
    last: Option<Frame>,
    /// The last whole state read, kept for a read that fails (the footer says why); the
    /// filter and the stacks pane read it.
    last_dump: Option<Dump>,
    /// The frame `last_dump` was read for.
    dump_seq: u64,
    sort: SiteSort,
    limits: Limits,
    kernel: Arc<str>,
}

impl<'b> Session<'b> {
    fn new(
        bin: &'b GoBinary,
        bias: u64,
        pid: u32,
        sampler: Sampler,
        probes: Probes,
        args: &TopArgs,
    ) -> anyhow::Result<Session<'b>> {
        let wrapper = names::func_id_wrapper(bin.go_version().minor);
        Ok(Session {
            bin,
            bias,
            pid,
            sampler,
            global_runq: sched::GlobalRunq::locate(bin, bias, pid),
            probes,
            gc: GcReader::new(bin, pid, bias),
            unwinder: Unwinder::new(bin, bias)?,
            sym: Symbols::new(bin.lines()?, bias, wrapper),
            hits: Vec::new(),
            malformed: 0,
            lost_seen: 0,
            interval_start: Instant::now(),
            rate_hz: args.sample_rate,
            history: History::new(args.leak_frames as usize),
            totals: Totals::default(),
            last: None,
            last_dump: None,
            dump_seq: 0,
            sort: SiteSort::default(),
            limits: Limits {
                sites: 12,
                cpu: 8,
                waits: 8,
            },
            kernel: "[kernel]".into(),
        })
    }

    /// Moves the sampler's records into the interval's hits, unwound and symbolized.
    fn drain(&mut self) {
        let Session {
            sampler,
            unwinder,
            sym,
            hits,
            malformed,
            kernel,
            ..
        } = self;
        sampler.drain(malformed, |h, stack| {
            let s = unwinder.sample(h, stack);
            let function = if s.in_kernel || s.frames.is_empty() {
                kernel.clone()
            } else {
                let frames = sym.stack(s.frames);
                frames
                    .first()
                    .map_or_else(|| kernel.clone(), |f| f.function.clone())
            };
            let start = if s.start_pc != 0 {
                sym.name(s.start_pc)
            } else {
                None
            };
            hits.push(Hit {
                p: s.p,
                start,
                function,
            });
        });
    }

    /// Reads the state, folds in the interval's samples, and starts the next interval.
    fn frame(&mut self) -> Frame {
        self.drain();
        let lost_now = self.sampler.stats().map_or(self.lost_seen, |st| st.dropped);
        let lost = lost_now.saturating_sub(self.lost_seen);
        self.lost_seen = lost_now;
        let d = match snapshot::take(self.pid, self.bin, self.bias) {
            Ok(d) if d.incomplete.is_none() => {
                self.last_dump = Some(d.clone());
                d
            }
            Ok(d) => self.stale(d.incomplete.unwrap_or_default()),
            Err(e) => self.stale(e.to_string()),
        };
        let cpu = Cpu {
            secs: self.interval_start.elapsed().as_secs_f64(),
            rate_hz: self.rate_hz,
        };
        let mut f = self.history.frame(&d, &self.hits, cpu, lost);
        f.global_runq = self.global_runq.and_then(|r| r.read());
        if d.incomplete.is_none() {
            self.dump_seq = f.seq;
        }
        f.gc = self.gc.as_mut().and_then(GcReader::interval);
        f.lifecycle = self.probes.lifecycle(&mut self.sym, &d);
        f.latency = self.probes.latency();
        f.probes = self.probes.costs(cpu.secs);
        self.totals.add(&f);
        self.totals.frames += 1;
        self.totals.samples += self.hits.len() as u64;
        for h in self.hits.drain(..) {
            *self
                .totals
                .cpu_by_function
                .entry(h.function.to_string())
                .or_insert(0) += 1;
            let start = h.start.as_deref().unwrap_or("(scheduler)").to_string();
            *self.totals.cpu_by_start_function.entry(start).or_insert(0) += 1;
        }
        self.interval_start = Instant::now();
        self.last = Some(f.clone());
        f
    }

    /// The previous whole read, marked with why this one failed.
    fn stale(&self, why: String) -> Dump {
        let mut d = self.last_dump.clone().unwrap_or_default();
        d.incomplete = Some(why);
        d
    }

    /// The goroutines `pick` stands for in the last whole read, with their stacks.
    fn stacks(&self, pick: Pick, filter: Option<&str>) -> Stacks {
        let members = match &self.last_dump {
            Some(d) => pick::members(d, &pick, filter),
            None => Dump::default(),
        };
        let lines = match &self.last_dump {
            Some(_) => pick::stacks_text(&members, true),
            None => vec!["(no whole state read yet: try again at the next frame)".to_string()],
        };
        Stacks {
            pick,
            seq: self.dump_seq,
            count: members.goroutines.len(),
            grouped: true,
            lines,
            scroll: 0,
            members,
        }
    }

    fn screen<'a>(
        &'a self,
        view: &'a View,
        output: Option<&'a Path>,
        who: &'a str,
        paused: bool,
    ) -> Screen<'a> {
        Screen {
            frame: self.last.as_ref(),
            dump: self.last_dump.as_ref(),
            who,
            sort: self.sort,
            limits: &self.limits,
            paused,
            view,
            output,
        }
    }

    /// Detaches the sampler and the probes, leaves the last frame on the terminal when the
    /// program exited under the full-screen view, and writes `--summary-json`.
    fn stop(&mut self, exited: bool, args: &TopArgs, who: &str) -> anyhow::Result<()> {
        self.totals.probes = self.probes.run_costs();
        self.totals.latency = self.probes.latency_total();
        self.probes.detach();
        self.sampler.detach();
        let last = self.last.clone().unwrap_or_default();
        if exited {
            if self.last.is_some() && !args.batch {
                // The full-screen view is gone with the terminal's alternate screen: leave the
                // last frame where the user can read it.
                let mut out = std::io::stdout().lock();
                text::write_frame(&mut out, &last, who, self.sort, &self.limits)
                    .context("writing the last frame")?;
            }
            eprintln!("gmp-trace top: {who} exited");
        }
        if let Some(p) = &args.summary_json {
            let doc = text::summary(&last, &self.totals, exited);
            // Opened again through the same checks: the path was only tried at start.
            crate::export::files::open_file(p, "summary")?
                .write_all(format!("{doc:#}\n").as_bytes())
                .with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(())
    }

    /// A pause drops what was sampled meanwhile: the next frame's shares cover its own interval.
    fn skip_interval(&mut self) {
        self.drain();
        self.hits.clear();
        // The probes' counts start over too (what they cost is still measured per frame).
        let _ = self.probes.lifecycle(&mut self.sym, &Dump::default());
        let _ = self.probes.latency();
        let _ = self.probes.costs(0.0);
        let _ = self.gc.as_mut().and_then(GcReader::interval);
        self.interval_start = Instant::now();
    }
}

/// Frames until the count, the duration, a quit, a signal, or the target's exit (true).
async fn drive(
    target: &mut Target,
    s: &mut Session<'_>,
    ui: &mut Option<Ui>,
    args: &TopArgs,
    who: &str,
) -> anyhow::Result<bool> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut drain = tokio::time::interval(Duration::from_millis(20));
    let mut frames =
        tokio::time::interval_at(tokio::time::Instant::now() + args.interval, args.interval);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut keys = ui.as_ref().map(|_| tui::keys());
    let mut paused = false;
    let mut out = std::io::stdout();
    if let Some(u) = ui.as_mut() {
        redraw(s, u, who, paused)?;
    }
    loop {
        let sig = tokio::select! {
            _ = drain.tick() => {
                s.drain();
                s.probes.drain();
                continue;
            }
            _ = frames.tick() => {
                if paused {
                    s.skip_interval();
                    continue;
                }
                let f = s.frame();
                match ui.as_mut() {
                    Some(u) => redraw(s, u, who, paused)?,
                    None => text::write_frame(&mut out, &f, who, s.sort, &s.limits)
                        .context("writing a frame")?,
                }
                if args.iterations.is_some_and(|n| s.totals.frames >= n) {
                    return Ok(false);
                }
                continue;
            }
            r = target.exited() => {
                r?;
                return Ok(true);
            }
            _ = &mut deadline, if args.duration.is_some() => return Ok(false),
            Some(input) = async { match keys.as_mut() { Some(k) => k.recv().await, None => None } } => {
                if let Some(u) = ui.as_mut() {
                    if on_input(s, u, input, who, &mut paused) {
                        return Ok(false);
                    }
                    redraw(s, u, who, paused)?;
                }
                continue;
            }
            _ = sigint.recv() => SignalKind::interrupt(),
            _ = sigterm.recv() => SignalKind::terminate(),
            _ = sighup.recv() => SignalKind::hangup(),
        };
        if target.on_signal(sig) == SignalAction::Stop {
            return Ok(false);
        }
    }
}

fn redraw(s: &Session, ui: &mut Ui, who: &str, paused: bool) -> std::io::Result<()> {
    let Ui { tui, view, output } = ui;
    tui.draw(&s.screen(view, output.as_deref(), who, paused))
}

/// Applies a key or a resize to the view; true when it asks to quit.
fn on_input(s: &mut Session, ui: &mut Ui, input: Input, who: &str, paused: &mut bool) -> bool {
    let Input::Key(k) = input else {
        return false;
    };
    let picks = s
        .screen(&ui.view, ui.output.as_deref(), who, *paused)
        .focused_picks();
    ui.view.page = ui.tui.page();
    match ui.view.on_key(k, &picks) {
        Action::Quit => return true,
        Action::Pause => *paused = !*paused,
        Action::Sort => s.sort = s.sort.next(),
        Action::Open(p) => ui.view.stacks = Some(s.stacks(p, ui.view.filter.as_deref())),
        Action::Rerender => {
            if let Some(st) = ui.view.stacks.as_mut() {
                st.lines = pick::stacks_text(&st.members, st.grouped);
            }
        }
        Action::Draw => {}
    }
    false
}
