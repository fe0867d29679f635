//! The terminal of `gmp-trace top`'s full-screen view (ratatui on crossterm): taking it over,
//! giving it back, and reading keys; what is drawn is top/draw.rs's, what keys do top/view.rs's.
//! The terminal is put back (raw mode off, main screen, cursor shown) on every way out: the
//! [`Tui`]'s drop covers q, Ctrl-C, the target's exit and errors; a panic hook covers panics.
use std::io::{self, Stdout};
use std::sync::Once;

use crossterm::event::{self, Event, KeyEvent, KeyEventKind};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use super::draw::{self, Screen};

/// A key, or a resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Key(KeyEvent),
    Resize,
}

pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Tui {
    pub fn start() -> io::Result<Tui> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        // From here on a failure must undo what was done.
        let t = crossterm::execute!(io::stdout(), EnterAlternateScreen)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match t {
            Ok(terminal) => Ok(Tui { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    pub fn draw(&mut self, s: &Screen) -> io::Result<()> {
        // A resize between draws: ratatui redraws everything at the new size.
        self.terminal.autoresize()?;
        self.terminal.draw(|ui| draw::screen(ui, s))?;
        Ok(())
    }

    /// Lines of text the stacks pane shows at once (the screen less its title, borders and
    /// status line).
    pub fn page(&self) -> usize {
        let rows = self.terminal.size().map_or(24, |r| r.height);
        usize::from(rows.saturating_sub(4)).max(1)
    }
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
/// receiver is dropped. What a key means depends on the view (a `q` typed in the filter is a
/// letter), so keys go out as they are.
pub fn keys() -> mpsc::UnboundedReceiver<Input> {
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
        let input = match event::read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => Input::Key(k),
            Ok(Event::Resize(..)) => Input::Resize,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(input).is_err() {
            return;
        }
    });
    rx
}
