//! The usage screen: totals for today, yesterday and the range, the fleet's daily chart, and
//! the top keys and users by cost with their share of the fleet's spend.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, TableState, Wrap};

use crate::domain::UsageTotals;
use crate::service::{Ranked, TopSpenders};
use crate::tui::state::State;
use crate::tui::view::format::{cents, compact_count, safe};
use crate::tui::view::{chart, table};

use super::{Pane, TOP_SPENDERS, UsageData, attention};

/// From this width on, the top keys and users sit side by side.
const SIDE_BY_SIDE_COLUMNS: u16 = 70;
/// From this table width on, a key's owner follows its name.
const OWNER_FROM_COLUMNS: u16 = 50;
/// Rows the chart keeps at least, before the tables give way.
const CHART_MIN_ROWS: u16 = 6;
/// Rows of the totals: today, yesterday, the range.
const TOTALS_ROWS: u16 = 3;
/// From this width on, the attention list is a third column beside the rankings.
const THREE_COLUMNS: u16 = 120;

pub fn render(frame: &mut Frame, state: &State, area: Rect) {
    let theme = &state.session.theme;
    let screen = &state.usage;
    let Some(data) = &screen.data else {
        let text = match &screen.error {
            Some(error) => vec![
                Line::styled("The fleet's usage could not be loaded:", theme.error),
                Line::styled(safe(error).into_owned(), theme.text),
            ],
            None => vec![Line::styled("Loading…", theme.muted)],
        };
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    };
    // The chart keeps its rows; the lists below share the rest, the attention list taking at
    // most half of it below the rankings, or a third column from THREE_COLUMNS on.
    let room = area.height.saturating_sub(TOTALS_ROWS + CHART_MIN_ROWS);
    let three_columns = area.width >= THREE_COLUMNS;
    let (tops_rows, attention_rows) = if three_columns {
        // As high as the rankings at most: a longer attention list scrolls.
        let tallest = table_height(data).max(attention::height(data).min(TOP_SPENDERS as u16 + 3));
        (tallest.min(room), 0)
    } else {
        let attention_rows = attention::height(data).min(room / 2);
        (table_height(data).min(room - attention_rows), attention_rows)
    };
    let [totals, chart_area, tops, below] = Layout::vertical([
        Constraint::Length(TOTALS_ROWS),
        Constraint::Fill(1),
        Constraint::Length(tops_rows),
        Constraint::Length(attention_rows),
    ])
    .areas(area);
    render_totals(frame, state, data, totals);
    chart::render_daily(frame, state, screen.metric, &data.fleet.usage.daily, chart_area);
    let columns: Vec<Rect> = if three_columns {
        Layout::horizontal([Constraint::Fill(1); 3]).spacing(1).split(tops).to_vec()
    } else if tops.width >= SIDE_BY_SIDE_COLUMNS {
        Layout::horizontal([Constraint::Fill(1); 2]).spacing(1).split(tops).to_vec()
    } else {
        vec![tops]
    };
    let selected = (screen.pane == Pane::TopKeys).then_some(screen.selected);
    render_top(frame, state, &data.top_keys, selected, columns[0]);
    if let Some(&users) = columns.get(1) {
        render_top(frame, state, &data.top_users, None, users);
    }
    attention::render(frame, state, data, columns.get(2).copied().unwrap_or(below));
}

/// The rows the rankings need: the longer of the two, a header and a rule (at least one row
/// for the "no spend" note).
fn table_height(data: &UsageData) -> u16 {
    let rows = |top: &TopSpenders| top.spenders.len() + usize::from(top.purged.is_some());
    let longest = rows(&data.top_keys).max(rows(&data.top_users)).clamp(1, TOP_SPENDERS as usize + 1);
    longest as u16 + 2
}

fn render_totals(frame: &mut Frame, state: &State, data: &UsageData, area: Rect) {
    let theme = &state.session.theme;
    let usage = &data.fleet.usage;
    let range = UsageTotals { requests: usage.total_requests, tokens: usage.total_tokens, cost: usage.total_cost };
    let line = |label: String, totals: &UsageTotals| {
        Line::from(vec![
            Span::styled(format!(" {label:<20}"), theme.label),
            Span::styled(
                format!(
                    "{} requests · {} tokens · {}",
                    compact_count(totals.requests as f64),
                    compact_count(totals.tokens as f64),
                    totals.cost
                ),
                theme.text,
            ),
        ])
    };
    let lines = vec![
        line(format!("Today ({})", usage.last_day.format("%b %d")), &data.fleet.today),
        line("Yesterday".into(), &data.fleet.yesterday),
        line(format!("Last {} days, UTC", usage.days), &range),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

/// A ranking of keys or users; `selected` marks the row `Enter` opens.
fn render_top(frame: &mut Frame, state: &State, top: &TopSpenders, selected: Option<usize>, area: Rect) {
    let theme = &state.session.theme;
    let who = match top.by {
        crate::domain::SpenderKind::Key => "keys",
        crate::domain::SpenderKind::User => "users",
    };
    let title = Line::styled(format!(" Top {who} by cost · {} days ", top.days), theme.title);
    let block = Block::new().borders(Borders::TOP).border_style(theme.border).title(title);
    if top.spenders.is_empty() && top.purged.is_none() {
        let note = Line::styled(format!("No spend in the last {} days", top.days), theme.muted);
        frame.render_widget(Paragraph::new(note).block(block), area);
        return;
    }
    let row = |name: Line<'static>, ranked_cost: String, share: f64| {
        Row::new([
            Cell::from(name),
            Cell::from(Line::from(ranked_cost).right_aligned()),
            Cell::from(Line::from(percent(share)).right_aligned()),
        ])
    };
    // When the rows are cut, the purged keys' line stays: it is part of the total.
    let room = usize::from(area.height.saturating_sub(2));
    let shown = match &top.purged {
        Some(_) if top.spenders.len() >= room => room.saturating_sub(1).max(selected.map_or(0, |row| row + 1)),
        _ => top.spenders.len(),
    };
    let mut rows: Vec<Row> = top
        .spenders
        .iter()
        .take(shown)
        .map(|Ranked { spender, share }| {
            let mut name = vec![Span::styled(safe(&spender.name).into_owned(), theme.text)];
            if let Some(owner) = spender.owner.as_ref().filter(|_| area.width >= OWNER_FROM_COLUMNS) {
                name.push(Span::styled(format!(" ({})", safe(owner)), theme.muted));
            }
            row(Line::from(name), cents(spender.totals.cost), *share)
        })
        .collect();
    // Usage of keys since purged still counts in the total: a line of its own, not dropped.
    if let Some(purged) = &top.purged {
        rows.push(row(Line::styled("purged keys", theme.muted), cents(purged.spender.cost), purged.share));
    }
    let header = Row::new([
        Cell::from("Name"),
        Cell::from(Line::from("Cost").right_aligned()),
        Cell::from(Line::from("Share").right_aligned()),
    ]);
    let widths = [Constraint::Fill(1), Constraint::Length(10), Constraint::Length(6)];
    let table = table::selectable(state, rows, widths, header, block);
    let mut table_state = TableState::new().with_selected(selected.filter(|_| !top.spenders.is_empty()));
    frame.render_stateful_widget(table, area, &mut table_state);
}

/// A share as a percentage with one decimal: `12.5%`.
fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}
