//! The full-screen view of `gmp-trace top` (ratatui on crossterm): one box per panel, filled from
//! the same lines the batch mode prints (top/text.rs), so drawing only reads a finished frame.
//! The terminal is put back (raw mode off, main screen, cursor shown) on every way out: the
//! [`Tui`]'s drop covers q, Ctrl-C, the target's exit and errors; a panic hook covers panics.
use std::io::{self, Stdout};
use std::sync::Once;

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Terminal;
use tokio::sync::mpsc;

use super::frame::{Frame, SiteSort};
use super::text::{self, Limits};

/// What a key (or a resize) asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Quit,
    Pause,
    Sort,
    Help,
    Redraw,
}

pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    /// The help box is shown.
    pub help: bool,
}

impl Tui {
    pub fn start() -> io::Result<Tui> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        // From here on a failure must undo what was done.
        let t = crossterm::execute!(io::stdout(), EnterAlternateScreen)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match t {
            Ok(terminal) => Ok(Tui {
                terminal,
                help: false,
            }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    pub fn draw(
        &mut self,
        f: Option<&Frame>,
        who: &str,
        sort: SiteSort,
        limits: &Limits,
        paused: bool,
    ) -> io::Result<()> {
        let help = self.help;
        // A resize between draws: ratatui redraws everything at the new size.
        self.terminal.autoresize()?;
        self.terminal.draw(|ui| {
            let area = ui.area();
            match f {
                Some(f) => panels(ui, area, f, who, sort, limits, paused),
                None => ui.render_widget(
                    Paragraph::new(format!(
                        "gmp-trace top - {who} - first frame in a moment (q quits, ? help)"
                    )),
                    area,
                ),
            }
            if help {
                let r = centered(area, 52, 9);
                ui.render_widget(Clear, r);
                ui.render_widget(
                    Paragraph::new(vec![
                        Line::from("q, Ctrl-C  quit"),
                        Line::from("p          pause / resume"),
                        Line::from("s          sort creation sites (live, change"),
                        Line::from("           since attach, recent change, name)"),
                        Line::from("?          this help"),
                        Line::from("leak?      a site that rose at each recent frame"),
                    ])
                    .block(Block::default().borders(Borders::ALL).title(" help ")),
                    r,
                );
            }
        })?;
        Ok(())
    }
}

/// Every panel in its box, top to bottom: Ps, Ms, goroutines beside creation sites, CPU, footer.
fn panels(
    ui: &mut ratatui::Frame,
    area: Rect,
    f: &Frame,
    who: &str,
    sort: SiteSort,
    limits: &Limits,
    paused: bool,
) {
    let ps = text::procs(f);
    let footer: Vec<Line> = std::iter::once(text::footer(f))
        .chain(text::probes_footer(f))
        .map(Line::from)
        .collect();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Length(ps.len().min(18) as u16 + 2),
            Constraint::Length(3),
            Constraint::Min(6),
            Constraint::Length(9),
            Constraint::Length(footer.len() as u16),
        ])
        .split(area);
    ui.render_widget(Paragraph::new(text::title(f, who, paused)), rows[0]);
    boxed(ui, rows[1], " Ps ", ps);
    boxed(ui, rows[2], " Ms ", text::threads(f));
    let mid = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(45), Constraint::Percentage(55)])
        .split(rows[3]);
    boxed(ui, mid[0], " Goroutines ", text::goroutines(f, limits));
    boxed(
        ui,
        mid[1],
        " Creation sites (s: sort) ",
        text::sites(f, sort, limits),
    );
    let cpu = text::cpu(f, &Limits { cpu: 3, ..*limits });
    boxed(ui, rows[4], " CPU ", cpu);
    ui.render_widget(Paragraph::new(footer), rows[5]);
}

fn boxed(ui: &mut ratatui::Frame, area: Rect, title: &str, lines: Vec<String>) {
    let lines: Vec<Line> = lines.into_iter().map(Line::from).collect();
    ui.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(title.to_string()),
        ),
        area,
    );
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back; safe to call twice (the panic hook, then the drop).
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = crossterm::execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The message must land on the main screen, in cooked mode, to be readable.
            restore();
            previous(info);
        }));
    });
}

/// Keys and resizes, read on a thread of their own (crossterm's reads block); it ends when the
/// receiver is dropped.
pub fn keys() -> mpsc::UnboundedReceiver<Key> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || loop {
        if tx.is_closed() {
            return;
        }
        match event::poll(std::time::Duration::from_millis(100)) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => return,
        }
        let key = match event::read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => match k.code {
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Quit,
                KeyCode::Char('q') | KeyCode::Esc => Key::Quit,
                KeyCode::Char('p') | KeyCode::Char(' ') => Key::Pause,
                KeyCode::Char('s') => Key::Sort,
                KeyCode::Char('?') | KeyCode::Char('h') => Key::Help,
                _ => continue,
            },
            Ok(Event::Resize(..)) => Key::Redraw,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(key).is_err() {
            return;
        }
    });
    rx
}
