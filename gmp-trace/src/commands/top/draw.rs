//! Drawing the full-screen view from what is already known: a finished frame, the last whole
//! state read (for the filter's goroutine counts) and the [`View`]'s state. Either the panels
//! (one box each, from the same lines the batch mode prints, the picked row marked `>` in the
//! focused panel) or the stacks pane over them; then the help box if asked for. Nothing here
//! reads the process or changes the view.
use std::path::Path;

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::frame::{Frame, SiteSort};
use super::pick::{self, Pick, Row};
use super::text::{self, Limits};
use super::view::{Focus, Stacks, View, HELP};
use crate::model::dump::Dump;

/// Everything one draw shows.
pub struct Screen<'a> {
    pub frame: Option<&'a Frame>,
    /// The last whole state read (the filter counts its goroutines).
    pub dump: Option<&'a Dump>,
    pub who: &'a str,
    pub sort: SiteSort,
    pub limits: &'a Limits,
    pub paused: bool,
    pub view: &'a View,
    /// Where a launched program's output goes.
    pub output: Option<&'a Path>,
}

impl Screen<'_> {
    fn filter(&self) -> Option<&str> {
        self.view.filter.as_deref()
    }

    pub fn site_rows(&self, f: &Frame) -> Vec<Row> {
        pick::site_rows(f, self.sort, self.filter(), self.limits)
    }

    pub fn goroutine_rows(&self, f: &Frame) -> Vec<Row> {
        pick::goroutine_rows(f, self.dump, self.filter(), self.limits)
    }

    /// The focused panel's picks, as drawn.
    pub fn focused_picks(&self) -> Vec<Pick> {
        let Some(f) = self.frame else {
            return Vec::new();
        };
        match self.view.focus {
            Focus::Sites => pick::picks(&self.site_rows(f)),
            Focus::Goroutines => pick::picks(&self.goroutine_rows(f)),
        }
    }
}

pub fn screen(ui: &mut ratatui::Frame, s: &Screen) {
    let area = ui.area();
    match (&s.view.stacks, s.frame) {
        (Some(st), _) => stacks(ui, area, s, st),
        (None, Some(f)) => panels(ui, area, f, s),
        (None, None) => ui.render_widget(
            Paragraph::new(format!(
                "gmp-trace top - {} - first frame in a moment (q quits, ? help)",
                s.who
            )),
            area,
        ),
    }
    if s.view.help {
        let r = centered(area, 56, HELP.len() as u16 + 2);
        ui.render_widget(Clear, r);
        let lines: Vec<Line> = HELP.iter().map(|l| Line::from(*l)).collect();
        ui.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" help ")),
            r,
        );
    }
}

/// Every panel in its box, top to bottom: Ps, Ms, goroutines beside creation sites, CPU, footer,
/// and the status line (the filter, the program's output file, the keys).
fn panels(ui: &mut ratatui::Frame, area: Rect, f: &Frame, s: &Screen) {
    let ps = text::procs(f);
    // The footer, and a second line for the probes of `--with` when there are any.
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
            Constraint::Length(1),
        ])
        .split(area);
    ui.render_widget(Paragraph::new(text::title(f, s.who, s.paused)), rows[0]);
    boxed(ui, rows[1], " Ps ", plain(ps), false);
    boxed(ui, rows[2], " Ms ", plain(text::threads(f)), false);
    let mid = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(45), Constraint::Percentage(55)])
        .split(rows[3]);
    let focus = s.view.focus;
    let goroutines = s.goroutine_rows(f);
    let sites = s.site_rows(f);
    let (g_lines, s_lines) = match focus {
        Focus::Goroutines => (marked(&goroutines, s.view), plain_rows(&sites)),
        Focus::Sites => (plain_rows(&goroutines), marked(&sites, s.view)),
    };
    let g_focus = focus == Focus::Goroutines;
    boxed(ui, mid[0], " Goroutines ", g_lines, g_focus);
    boxed(ui, mid[1], " Creation sites (s: sort) ", s_lines, !g_focus);
    let limits = Limits {
        cpu: 3,
        ..*s.limits
    };
    let cpu = text::cpu(f, &limits, s.filter());
    boxed(ui, rows[4], " CPU ", plain(cpu), false);
    ui.render_widget(Paragraph::new(footer), rows[5]);
    ui.render_widget(Paragraph::new(status(s)), rows[6]);
}

/// The bottom line: the filter being typed, or the applied one, the program's output file and
/// the keys to press.
fn status(s: &Screen) -> String {
    if let Some(t) = &s.view.typing {
        return format!("filter by function: /{t}_  (Enter applies, Esc clears)");
    }
    let mut parts = Vec::new();
    if let Some(f) = s.filter() {
        parts.push(format!("filter {f:?} (/ edits, Esc clears)"));
    }
    if let Some(p) = s.output {
        parts.push(format!("program output: {}", p.display()));
    }
    parts.push("? help, / filter, Tab Up Down pick, Enter stacks".to_string());
    parts.join(" - ")
}

/// The stacks pane: one pick's goroutines as `gmp-trace dump` prints them, scrolled.
fn stacks(ui: &mut ratatui::Frame, area: Rect, s: &Screen, st: &Stacks) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .split(area);
    let head = match s.frame {
        Some(f) => text::title(f, s.who, s.paused),
        None => format!("gmp-trace top - {}", s.who),
    };
    ui.render_widget(Paragraph::new(head), rows[0]);
    let title = format!(
        " {}: {} at frame {} ({}) ",
        pick::describe(&st.pick),
        count(st.count),
        st.seq,
        if st.grouped { "grouped" } else { "one by one" }
    );
    let shown: Vec<Line> = st
        .lines
        .iter()
        .skip(st.scroll)
        .map(|l| Line::from(l.as_str()))
        .collect();
    ui.render_widget(
        Paragraph::new(shown).block(Block::default().borders(Borders::ALL).title(title)),
        rows[1],
    );
    let at = format!(
        "line {} of {} - Esc/q back, Up Down PgUp PgDn Home End scroll, g {}",
        (st.scroll + 1).min(st.lines.len()),
        st.lines.len(),
        if st.grouped { "one by one" } else { "grouped" }
    );
    ui.render_widget(Paragraph::new(at), rows[2]);
}

fn count(n: usize) -> String {
    match n {
        1 => "1 goroutine".to_string(),
        n => format!("{n} goroutines"),
    }
}

fn plain(lines: Vec<String>) -> Vec<Line<'static>> {
    lines.into_iter().map(Line::from).collect()
}

fn plain_rows(rows: &[Row]) -> Vec<Line<'static>> {
    rows.iter().map(|r| Line::from(r.text.clone())).collect()
}

/// The rows with the picked one marked: a `>` in its first column (visible in any terminal)
/// and reversed colours.
fn marked(rows: &[Row], view: &View) -> Vec<Line<'static>> {
    let picks = pick::picks(rows);
    let picked = view.picked(&picks);
    rows.iter()
        .map(|r| {
            if r.pick.is_some() && r.pick.as_ref() == picked {
                let rest: String = r.text.chars().skip(1).collect();
                Line::from(format!(">{rest}"))
                    .style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                Line::from(r.text.clone())
            }
        })
        .collect()
}

fn boxed(ui: &mut ratatui::Frame, area: Rect, title: &str, lines: Vec<Line>, focused: bool) {
    let mut block = Block::default()
        .borders(Borders::ALL)
        .title(title.to_string());
    if focused {
        block = block.border_style(Style::default().fg(Color::Cyan));
    }
    ui.render_widget(Paragraph::new(lines).block(block), area);
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
