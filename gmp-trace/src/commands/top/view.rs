//! What the full-screen view remembers between keys, and what each key does to it: the function
//! filter (typed after `/`), which panel has the focus and which row of each is picked, the help
//! box, and the stacks pane opened with Enter. Keys go in, an [`Action`] for the loop comes out;
//! no terminal here, so every key's meaning is tested below.
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::pick::Pick;
use crate::model::dump::Dump;

/// The panel that Up/Down move in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Focus {
    #[default]
    Sites,
    Goroutines,
}

/// The goroutines of one pick, frozen at the read Enter was pressed on.
#[derive(Debug)]
pub struct Stacks {
    pub pick: Pick,
    /// The frame whose read they come from.
    pub seq: u64,
    pub count: usize,
    pub grouped: bool,
    pub lines: Vec<String>,
    /// The first line shown.
    pub scroll: usize,
    /// The goroutines themselves (for `g`, which renders them the other way).
    pub members: Dump,
}

#[derive(Debug, Default)]
pub struct View {
    /// The applied filter: a substring of function names.
    pub filter: Option<String>,
    /// The filter being typed (between `/` and Enter or Esc).
    pub typing: Option<String>,
    pub focus: Focus,
    /// The picked row of each panel; `None` (or a row gone since) means the panel's first.
    pub site: Option<Pick>,
    pub state: Option<Pick>,
    pub help: bool,
    pub stacks: Option<Stacks>,
    /// Lines the stacks pane shows at once (PgUp/PgDn move by it).
    pub page: usize,
}

/// What the loop does after a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    Pause,
    Sort,
    /// Open the stacks pane on this pick (the loop reads its goroutines).
    Open(Pick),
    /// Render the stacks pane again (grouped or one by one).
    Rerender,
    /// Only draw again.
    Draw,
}

impl View {
    /// The picked row of the focused panel among `picks` (the panel's rows, top to bottom).
    pub fn picked<'p>(&self, picks: &'p [Pick]) -> Option<&'p Pick> {
        let current = match self.focus {
            Focus::Sites => self.site.as_ref(),
            Focus::Goroutines => self.state.as_ref(),
        };
        current
            .and_then(|c| picks.iter().find(|p| *p == c))
            .or(picks.first())
    }

    /// Applies a key; `picks` are the focused panel's picks as last drawn.
    pub fn on_key(&mut self, k: KeyEvent, picks: &[Pick]) -> Action {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c')) {
            return Action::Quit;
        }
        if self.typing.is_some() {
            self.on_typing(k.code);
            return Action::Draw;
        }
        if self.stacks.is_some() {
            return self.on_stacks(k.code);
        }
        match k.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Esc if self.help => self.help = false,
            KeyCode::Esc if self.filter.is_some() => self.filter = None,
            KeyCode::Esc => return Action::Quit,
            KeyCode::Char('p') | KeyCode::Char(' ') => return Action::Pause,
            KeyCode::Char('s') => return Action::Sort,
            KeyCode::Char('?') | KeyCode::Char('h') => self.help = !self.help,
            KeyCode::Char('/') => self.typing = Some(self.filter.clone().unwrap_or_default()),
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Left | KeyCode::Right => {
                self.focus = match self.focus {
                    Focus::Sites => Focus::Goroutines,
                    Focus::Goroutines => Focus::Sites,
                }
            }
            KeyCode::Up | KeyCode::Char('k') => self.step(picks, -1),
            KeyCode::Down | KeyCode::Char('j') => self.step(picks, 1),
            KeyCode::Enter => {
                if let Some(p) = self.picked(picks) {
                    return Action::Open(p.clone());
                }
            }
            _ => {}
        }
        Action::Draw
    }

    fn on_typing(&mut self, code: KeyCode) {
        let Some(buf) = self.typing.as_mut() else {
            return;
        };
        match code {
            KeyCode::Char(c) => buf.push(c),
            KeyCode::Backspace => {
                buf.pop();
            }
            KeyCode::Enter => {
                let f = self.typing.take().unwrap_or_default();
                self.filter = (!f.is_empty()).then_some(f);
            }
            KeyCode::Esc => {
                self.typing = None;
                self.filter = None;
            }
            _ => {}
        }
    }

    /// In the stacks pane q and Esc go back to the panels (Ctrl-C still quits).
    fn on_stacks(&mut self, code: KeyCode) -> Action {
        let page = self.page.max(1);
        let Some(st) = self.stacks.as_mut() else {
            return Action::Draw;
        };
        let last = st.lines.len().saturating_sub(1);
        match code {
            KeyCode::Esc | KeyCode::Char('q') => {
                if self.help {
                    self.help = false;
                } else {
                    self.stacks = None;
                }
            }
            KeyCode::Up | KeyCode::Char('k') => st.scroll = st.scroll.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => st.scroll = (st.scroll + 1).min(last),
            KeyCode::PageUp => st.scroll = st.scroll.saturating_sub(page),
            KeyCode::PageDown | KeyCode::Char(' ') => st.scroll = (st.scroll + page).min(last),
            KeyCode::Home => st.scroll = 0,
            KeyCode::End => st.scroll = last.saturating_sub(page.saturating_sub(1)),
            KeyCode::Char('g') => {
                st.grouped = !st.grouped;
                st.scroll = 0;
                return Action::Rerender;
            }
            KeyCode::Char('p') => return Action::Pause,
            KeyCode::Char('?') | KeyCode::Char('h') => self.help = !self.help,
            _ => {}
        }
        Action::Draw
    }

    fn step(&mut self, picks: &[Pick], by: isize) {
        let Some(cur) = self.picked(picks) else {
            return;
        };
        let at = picks.iter().position(|p| p == cur).unwrap_or(0);
        let to = at.saturating_add_signed(by).min(picks.len() - 1);
        let p = Some(picks[to].clone());
        match self.focus {
            Focus::Sites => self.site = p,
            Focus::Goroutines => self.state = p,
        }
    }
}

/// Every key, for the help box (one line each).
pub const HELP: &[&str] = &[
    "q, Ctrl-C  quit (q in the stacks pane: back)",
    "p, space   pause / resume",
    "s          sort creation sites (live, change",
    "           since attach, recent change, name)",
    "/          filter by function: type a part of",
    "           its name, Enter applies, Esc clears",
    "Tab, <- -> switch between sites and goroutines",
    "Up, Down   pick a row (j, k too)",
    "Enter      the picked row's goroutines' stacks",
    "  in it:   Up/Down PgUp/PgDn Home/End scroll,",
    "           g grouped / one by one, Esc/q back",
    "Esc        close help, clear filter, else quit",
    "?, h       this help",
    "leak?      a site that rose at each recent frame",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn typed(v: &mut View, s: &str) {
        for c in s.chars() {
            assert_eq!(v.on_key(key(KeyCode::Char(c)), &[]), Action::Draw);
        }
    }

    fn sites() -> Vec<Pick> {
        vec![Pick::Site("a x.go:1".into()), Pick::Site("b x.go:2".into())]
    }

    #[test]
    fn slash_types_a_filter_that_enter_applies_and_esc_clears() {
        let mut v = View::default();
        v.on_key(key(KeyCode::Char('/')), &[]);
        // q and s are letters of the filter while typing, not quit and sort.
        typed(&mut v, "main.qsx");
        v.on_key(key(KeyCode::Backspace), &[]);
        assert_eq!(v.typing.as_deref(), Some("main.qs"));
        assert_eq!(v.filter, None);
        v.on_key(key(KeyCode::Enter), &[]);
        assert_eq!(
            (v.filter.as_deref(), v.typing.as_ref()),
            (Some("main.qs"), None)
        );
        // `/` again edits the applied filter; Esc there clears it.
        v.on_key(key(KeyCode::Char('/')), &[]);
        assert_eq!(v.typing.as_deref(), Some("main.qs"));
        v.on_key(key(KeyCode::Esc), &[]);
        assert_eq!((v.filter.as_ref(), v.typing.as_ref()), (None, None));
        // Esc out of typing: the first Esc in the panels clears the filter, the next quits.
        v.filter = Some("x".into());
        assert_eq!(v.on_key(key(KeyCode::Esc), &[]), Action::Draw);
        assert_eq!(v.filter, None);
        assert_eq!(v.on_key(key(KeyCode::Esc), &[]), Action::Quit);
    }

    #[test]
    fn arrows_pick_rows_and_enter_opens_the_picked_one() {
        let mut v = View::default();
        let p = sites();
        assert_eq!(
            v.on_key(key(KeyCode::Enter), &p),
            Action::Open(p[0].clone())
        );
        v.on_key(key(KeyCode::Down), &p);
        v.on_key(key(KeyCode::Down), &p);
        assert_eq!(
            v.on_key(key(KeyCode::Enter), &p),
            Action::Open(p[1].clone())
        );
        v.on_key(key(KeyCode::Up), &p);
        assert_eq!(v.picked(&p), Some(&p[0]));
        // The pick follows its row when the rows reorder; a row gone falls back to the first.
        v.site = Some(p[1].clone());
        let reordered = vec![p[1].clone(), p[0].clone()];
        assert_eq!(v.picked(&reordered), Some(&p[1]));
        assert_eq!(v.picked(&p[..1]), Some(&p[0]));
        // Tab moves the focus: the goroutines panel keeps its own pick.
        v.on_key(key(KeyCode::Tab), &p);
        assert_eq!(v.focus, Focus::Goroutines);
        let states = vec![Pick::State("waiting".into()), Pick::Wait("sleep".into())];
        v.on_key(key(KeyCode::Down), &states);
        assert_eq!(v.state, Some(states[1].clone()));
        assert_eq!(v.site, Some(p[1].clone()));
        assert_eq!(v.on_key(key(KeyCode::Enter), &[]), Action::Draw);
    }

    #[test]
    fn in_the_stacks_pane_q_and_esc_go_back_and_ctrl_c_quits() {
        let mut v = View {
            page: 10,
            ..View::default()
        };
        let open = |v: &mut View| {
            v.stacks = Some(Stacks {
                pick: sites()[0].clone(),
                seq: 1,
                count: 1,
                grouped: true,
                lines: (0..25).map(|i| i.to_string()).collect(),
                scroll: 0,
                members: Dump::default(),
            })
        };
        open(&mut v);
        v.on_key(key(KeyCode::PageDown), &[]);
        v.on_key(key(KeyCode::Down), &[]);
        assert_eq!(v.stacks.as_ref().map(|s| s.scroll), Some(11));
        v.on_key(key(KeyCode::End), &[]);
        assert_eq!(v.stacks.as_ref().map(|s| s.scroll), Some(15));
        assert_eq!(v.on_key(key(KeyCode::Char('g')), &[]), Action::Rerender);
        assert_eq!(v.on_key(key(KeyCode::Char('q')), &[]), Action::Draw);
        assert!(v.stacks.is_none());
        open(&mut v);
        v.on_key(key(KeyCode::Esc), &[]);
        assert!(v.stacks.is_none());
        open(&mut v);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(v.on_key(ctrl_c, &[]), Action::Quit);
        // Pause and sort work in the panels as before.
        v.stacks = None;
        assert_eq!(v.on_key(key(KeyCode::Char('p')), &[]), Action::Pause);
        assert_eq!(v.on_key(key(KeyCode::Char('s')), &[]), Action::Sort);
        assert_eq!(v.on_key(key(KeyCode::Char('q')), &[]), Action::Quit);
    }
}
