//! The users as a table (state, keys active / all, spend in the range, last use), and one user
//! open: their totals, daily chart and keys.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, TableState, Wrap};

use crate::domain::UserOverview;
use crate::tui::state::State;
use crate::tui::view::format::{self, cents, safe};
use crate::tui::view::{chart, table};

use super::{UserData, UserView};

/// Rows the user's chart keeps at least, before their keys give way.
const CHART_MIN_ROWS: u16 = 5;
/// Key rows the user's view shows at most before it scrolls.
const KEY_ROWS: u16 = 8;

pub fn render(frame: &mut Frame, state: &State, area: Rect) {
    match &state.users.open {
        Some(user) => render_user(frame, state, user, area),
        None => render_list(frame, state, area),
    }
}

/// A message in place of a table: an error, or why there are no rows.
fn placeholder(frame: &mut Frame, state: &State, block: Block, error: Option<&String>, what: &str, area: Rect) {
    let theme = &state.session.theme;
    let text = match error {
        Some(error) => vec![
            Line::styled(format!("{what} could not be loaded:"), theme.error),
            Line::styled(safe(error).into_owned(), theme.text),
        ],
        None => vec![Line::styled("Loading…", theme.muted)],
    };
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(block), area);
}

fn render_list(frame: &mut Frame, state: &State, area: Rect) {
    let theme = &state.session.theme;
    let screen = &state.users;
    let pages = &screen.pages;
    let mut title = vec![
        Span::styled(" Users ", theme.title),
        Span::styled(format!("· spend over {} days, UTC ", screen.days), theme.muted),
    ];
    if !screen.filter.is_empty() {
        title.push(Span::styled(format!("· filter \"{}\" ", safe(&screen.filter)), theme.warning));
    }
    let block = Block::bordered().border_style(theme.focused_border).title(Line::from(title));
    if pages.error.is_some() || (pages.rows.is_empty() && pages.pending.is_some()) {
        return placeholder(frame, state, block, pages.error.as_ref(), "The users", area);
    }
    if pages.rows.is_empty() {
        let message = if screen.filter.is_empty() { "No users yet.".to_string() } else { "No user matches.".into() };
        frame.render_widget(Paragraph::new(Line::styled(message, theme.muted)).block(block), area);
        return;
    }
    let header = Row::new([
        Cell::from("Status"),
        Cell::from("Name"),
        Cell::from(Line::from("Keys on/all").right_aligned()),
        Cell::from(Line::from("Spend").right_aligned()),
        Cell::from("Last used"),
    ]);
    let rows = pages.rows.iter().map(|user| user_row(state, user));
    let widths = [
        Constraint::Length(8),
        Constraint::Fill(1),
        Constraint::Length(11),
        Constraint::Length(11),
        Constraint::Length(10),
    ];
    let table = table::selectable(state, rows, widths, header, block);
    let mut table_state = TableState::new().with_offset(pages.offset).with_selected(Some(pages.selected));
    frame.render_stateful_widget(table, area, &mut table_state);
}

fn user_row(state: &State, user: &UserOverview) -> Row<'static> {
    let theme = &state.session.theme;
    let (status, style) = status(state, user);
    Row::new([
        Cell::from(status).style(style),
        Cell::from(safe(&user.user.name).into_owned()),
        Cell::from(Line::from(format!("{} / {}", user.active_keys, user.keys)).right_aligned()),
        Cell::from(Line::from(cents(user.spend)).right_aligned()),
        Cell::from(last_used(state, user)).style(theme.text),
    ])
}

fn status(state: &State, user: &UserOverview) -> (&'static str, ratatui::style::Style) {
    let theme = &state.session.theme;
    if user.user.is_active { ("active", theme.success) } else { ("disabled", theme.error) }
}

fn last_used(state: &State, user: &UserOverview) -> String {
    user.last_used_at.map_or_else(|| "never".into(), |at| format::relative(at, state.now))
}

fn render_user(frame: &mut Frame, state: &State, user: &UserView, area: Rect) {
    let theme = &state.session.theme;
    let title = Line::from(vec![
        Span::styled(format!(" User {} ", safe(&user.name)), theme.title),
        Span::styled(format!("· last {} days, UTC ", state.users.days), theme.muted),
    ]);
    let block = Block::bordered().border_style(theme.focused_border).title(title);
    let Some(data) = &user.data else {
        return placeholder(frame, state, block, user.error.as_ref(), "The user", area);
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let key_rows = (data.detail.keys.len() as u16).clamp(1, KEY_ROWS) + 2;
    let [summary, chart_area, keys] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(CHART_MIN_ROWS), Constraint::Length(key_rows)])
            .areas(inner);
    render_summary(frame, state, data, summary);
    chart::render_daily(frame, state, user.metric, &data.stats.usage.daily, chart_area);
    render_keys(frame, state, data, user.selected, keys);
}

fn render_summary(frame: &mut Frame, state: &State, data: &UserData, area: Rect) {
    let theme = &state.session.theme;
    let overview = &data.detail.overview;
    let usage = &data.stats.usage;
    let (status, style) = status(state, overview);
    let lines = vec![
        Line::from(vec![
            Span::styled(format!(" {status}"), style),
            Span::styled(format!(" · {} of {} keys active", overview.active_keys, overview.keys), theme.text),
            Span::styled(format!(" · last used {}", last_used(state, overview)), theme.muted),
        ]),
        Line::styled(
            format!(
                " {} requests · {} tokens · {} over {} days",
                format::compact_count(usage.total_requests as f64),
                format::compact_count(usage.total_tokens as f64),
                usage.total_cost,
                usage.days
            ),
            theme.text,
        ),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

fn render_keys(frame: &mut Frame, state: &State, data: &UserData, selected: usize, area: Rect) {
    let theme = &state.session.theme;
    let shown = data.detail.keys.len();
    let title = if (shown as i64) < data.detail.overview.keys {
        format!(" Keys · newest {shown} of {} ", data.detail.overview.keys)
    } else {
        " Keys ".to_string()
    };
    let block = Block::new().borders(Borders::TOP).border_style(theme.border).title(Line::styled(title, theme.title));
    if data.detail.keys.is_empty() {
        let note = Line::styled("No keys: create one on the keys screen", theme.muted);
        frame.render_widget(Paragraph::new(note).block(block), area);
        return;
    }
    let rows = data.detail.keys.iter().map(|key| {
        let status = key.status(state.now);
        Row::new([
            Cell::from(status.as_str()).style(theme.status(status)),
            Cell::from(safe(&key.name).into_owned()),
            Cell::from(Line::from(format::remaining_in_cents(key)).right_aligned()),
            Cell::from(format::last_used(key, state.now)),
        ])
    });
    let header = Row::new([
        Cell::from("Status"),
        Cell::from("Name"),
        Cell::from(Line::from("Remaining").right_aligned()),
        Cell::from("Last used"),
    ]);
    let widths = [Constraint::Length(9), Constraint::Fill(1), Constraint::Length(12), Constraint::Length(10)];
    let table = table::selectable(state, rows, widths, header, block);
    let mut table_state = TableState::new().with_selected(Some(selected));
    frame.render_stateful_widget(table, area, &mut table_state);
}
