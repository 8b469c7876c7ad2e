//! The key table. Columns give way from the least useful as the terminal narrows.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};
use unicode_width::UnicodeWidthStr;

use super::Screen;
use crate::domain::{ApiKey, KeyStatus};
use crate::tui::effect::MATCH_COUNT_CAP;
use crate::tui::keymap::{Action, Context};
use crate::tui::state::State;

use crate::tui::view::format::{self, safe, safe_within};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    /// Shown while keys are marked for a bulk action.
    Mark,
    Status,
    Name,
    Owner,
    Hint,
    Remaining,
    Rate,
    Expires,
    LastUsed,
    RecentSpend,
    Created,
}

/// The table width from which the list shows what each key spent in the last 30 days.
pub const RECENT_SPEND_FROM: u16 = 140;

/// The mark of the selected row, in the room the table keeps for it on every row.
const HIGHLIGHT: &str = "▶ ";
const COLUMN_SPACING: u16 = 1;
/// A marked key's sign in the mark column.
const MARK: &str = "●";

impl Column {
    /// Display order, with the table width from which each column shows.
    const ALL: [(Column, u16); 11] = [
        (Column::Mark, 0),
        (Column::Status, 0),
        (Column::Name, 0),
        (Column::Owner, 64),
        (Column::Hint, 100),
        (Column::Remaining, 36),
        (Column::Rate, 112),
        (Column::Expires, 50),
        (Column::LastUsed, 78),
        (Column::RecentSpend, RECENT_SPEND_FROM),
        (Column::Created, 160),
    ];

    fn title(self) -> &'static str {
        match self {
            Column::Mark => "",
            Column::Status => "Status",
            Column::Name => "Name",
            Column::Owner => "Owner",
            Column::Hint => "Key",
            Column::Remaining => "Remaining",
            Column::Rate => "Rate",
            Column::Expires => "Expires",
            Column::LastUsed => "Last used",
            Column::RecentSpend => "Spend 30d",
            Column::Created => "Created",
        }
    }

    /// The room the column takes. Owners and expiries take what the loaded rows need (up to a
    /// limit), not their widest possible text, so that names get the rest: at 80 columns a
    /// fixed layout cut most names at 16 columns, losing the number that tells them apart. The
    /// loaded rows change only when a page loads, so columns do not shift at every step.
    fn width(self, rows: &[ApiKey], state: &State) -> Constraint {
        let fitted = |limit: u16, text_width: &dyn Fn(&ApiKey) -> usize| {
            let widest = rows.iter().map(text_width).max().unwrap_or(0).max(self.title().width());
            Constraint::Length(u16::try_from(widest).unwrap_or(u16::MAX).min(limit))
        };
        match self {
            Column::Mark => Constraint::Length(1),
            Column::Status => Constraint::Length(9),
            Column::Name => Constraint::Fill(1),
            Column::Owner => fitted(12, &|key| safe(&key.owner_name).width()),
            Column::Hint => Constraint::Length(17),
            // Whole cents: `$1,996.43`, `unlimited`, `-$1.49 owed`.
            Column::Remaining => {
                let owed =
                    rows.iter().filter(|key| format::owes(key)).map(|key| format::remaining_in_cents(key).width());
                Constraint::Length(owed.max().unwrap_or(0).clamp(10, 16) as u16)
            }
            Column::Rate => Constraint::Length(9),
            Column::Expires => fitted(15, &|key| format::expiry(key, state.now).width()),
            Column::LastUsed => Constraint::Length(9),
            Column::RecentSpend => {
                let widest = rows
                    .iter()
                    .filter_map(|key| state.list.recent_spend.get(&key.id))
                    .map(|spend| format::whole_cents(*spend).to_string().width())
                    .max();
                Constraint::Length(widest.unwrap_or(0).max(self.title().width()) as u16)
            }
            Column::Created => Constraint::Length(10),
        }
    }

    /// `width`: the columns the cell gets, which names and owners are cut to.
    fn cell<'a>(self, key: &'a ApiKey, state: &State, width: u16) -> Cell<'a> {
        let now = state.now;
        match self {
            Column::Mark if state.list.marks.contains_key(&key.id) => {
                Cell::from(MARK).style(state.session.theme.warning)
            }
            Column::Mark => Cell::from(""),
            Column::Status => {
                let status = key.status(now);
                Cell::from(status.as_str()).style(state.session.theme.status(status))
            }
            Column::Name => Cell::from(safe_within(&key.name, width)),
            Column::Owner => Cell::from(safe_within(&key.owner_name, width)),
            Column::Hint => Cell::from(safe(&key.key_hint)),
            Column::Remaining => {
                let cell = Cell::from(Line::from(format::remaining_in_cents(key)).right_aligned());
                if format::owes(key) { cell.style(state.session.theme.error) } else { cell }
            }
            Column::Rate => Cell::from(format::rate_limit(key.rate_limit)),
            Column::Expires => {
                let cell = Cell::from(format::expiry(key, now));
                if key.is_expired(now) { cell.style(state.session.theme.status(KeyStatus::Expired)) } else { cell }
            }
            Column::LastUsed => Cell::from(format::last_used(key, now)),
            Column::RecentSpend => {
                let spend = state
                    .list
                    .recent_spend
                    .get(&key.id)
                    .map_or("…".into(), |spend| format::whole_cents(*spend).to_string());
                Cell::from(Line::from(spend).right_aligned())
            }
            Column::Created => Cell::from(key.created_at.format("%Y-%m-%d").to_string()),
        }
    }
}

pub fn render(frame: &mut Frame, state: &State, area: Rect) {
    let theme = &state.session.theme;
    let list = &state.list;
    let focused = state.screen == Screen::List && state.modals.is_empty();
    let border = if focused { theme.focused_border } else { theme.border };
    let mut title =
        vec![Span::styled(" Keys ", theme.title), Span::styled(format!("· {} ", list.scope.label()), theme.text)];
    if let Some(narrowing) = list.narrowing.label() {
        title.push(Span::styled(format!("· {narrowing} "), theme.warning));
    }
    if let Some(matches) = list.matches {
        title.push(Span::styled(format!("· {} ", match_count(matches)), theme.text));
    }
    if !list.marks.is_empty() {
        title.push(Span::styled(format!("· {} marked ", list.marks.len()), theme.warning));
    }
    let arrow = if list.descending { "↓" } else { "↑" };
    title.push(Span::styled(format!("· by {} {arrow} ", list.sort.label()), theme.muted));
    if !list.filter.is_empty() {
        title.push(Span::styled(format!("· filter \"{}\" ", safe(&list.filter)), theme.warning));
    }
    let block = Block::bordered().border_style(border).title(Line::from(title));

    if let Some(error) = &list.error {
        let text = vec![
            Line::styled("The key list could not be loaded:", theme.error),
            Line::styled(error.clone(), theme.text),
            Line::styled(retry_hint(state), theme.muted),
        ];
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(block), area);
        return;
    }
    if list.window.rows.is_empty() {
        let message = if list.reload.is_some() {
            "Loading…".to_string()
        } else if list.filter.trim().is_empty() {
            "No keys here.".to_string()
        } else {
            format!("No key matches \"{}\".", safe(list.filter.trim()))
        };
        frame.render_widget(Paragraph::new(Line::styled(message, theme.muted)).block(block), area);
        return;
    }

    let columns: Vec<Column> = Column::ALL
        .iter()
        .filter(|(column, from_width)| area.width >= *from_width && (*column != Column::Mark || !list.marks.is_empty()))
        .map(|(column, _)| *column)
        .collect();
    // The widths the table will give its columns, worked out as it does, so that a cell knows
    // where it is cut.
    let rows_width = block.inner(area).width.saturating_sub(HIGHLIGHT.width() as u16);
    let constraints: Vec<Constraint> = columns.iter().map(|c| c.width(&list.window.rows, state)).collect();
    let widths =
        Layout::horizontal(constraints.iter().copied()).spacing(COLUMN_SPACING).split(Rect::new(0, 0, rows_width, 1));
    let header = Row::new(columns.iter().map(|c| Cell::from(c.title()))).style(theme.header);
    let rows = list.window.rows.iter().map(|key| {
        Row::new(columns.iter().zip(widths.iter()).map(|(column, cell)| column.cell(key, state, cell.width)))
    });
    let table = Table::new(rows, constraints)
        .header(header)
        .block(block)
        .column_spacing(COLUMN_SPACING)
        .row_highlight_style(theme.selected)
        .highlight_symbol(HIGHLIGHT);
    let mut table_state = TableState::new().with_offset(list.offset).with_selected(Some(list.selected));
    frame.render_stateful_widget(table, area, &mut table_state);
}

/// `1 key`, `1,234 keys`, `10,000+ keys` (the count stops at the cap).
fn match_count(matches: u64) -> String {
    let shown = crate::domain::money::group_thousands(matches);
    match matches {
        1 => "1 key".into(),
        n if n >= u64::from(MATCH_COUNT_CAP) => format!("{shown}+ keys"),
        _ => format!("{shown} keys"),
    }
}

fn retry_hint(state: &State) -> String {
    match state.session.keymap.key_for(Context::List, Action::Refresh) {
        Some(key) => format!("Press {key} to try again."),
        None => String::new(),
    }
}
