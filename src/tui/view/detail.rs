//! The key detail: every field, the balance, the usage chart with its totals, recent ledger rows.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::domain::ApiKey;
use crate::tui::state::{DetailData, Screen, State};
use crate::tui::theme::Theme;

use super::chart;
use super::format::{self, safe};

/// Width of the labels column.
const LABEL_WIDTH: usize = 13;
/// The most ledger rows shown (the effect fetches as many).
const LEDGER_ROWS: usize = crate::tui::effect::DETAIL_LEDGER_ROWS as usize;
/// The chart's smallest useful height under the fields: title, a few rows of bars, the dates.
const CHART_MIN_ROWS: u16 = 8;
/// Width of the compact ledger beside the chart.
const LEDGER_BESIDE_WIDTH: u16 = 30;

pub fn render(frame: &mut Frame, state: &State, area: Rect) {
    let theme = &state.session.theme;
    let focused = state.screen == Screen::Detail && state.modals.is_empty();
    let selected = state.list.selected_key();
    let data = state.detail.data.as_ref().filter(|data| selected.is_some_and(|key| key.id == data.key.id));
    let title = match (data, selected) {
        (Some(data), _) => safe(&data.key.name).into_owned(),
        (None, Some(key)) => safe(&key.name).into_owned(),
        (None, None) => "Key".into(),
    };
    let block = Block::bordered()
        .border_style(if focused { theme.focused_border } else { theme.border })
        .title(Span::styled(format!(" {title} "), theme.title));
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let Some(data) = data else {
        let message = match &state.detail.error {
            Some(error) => Line::styled(format!("Cannot load this key: {error}"), theme.error),
            None => Line::styled("Loading…", theme.muted),
        };
        frame.render_widget(Paragraph::new(message).wrap(Wrap { trim: true }), inner);
        return;
    };

    let fields = fields(&data.key, state);
    let field_rows = fields.len() as u16;
    let totals = Line::styled(chart::totals(&data.stats), theme.text);
    let ledger_rows = if data.ledger.is_empty() { 0 } else { data.ledger.len().min(LEDGER_ROWS) as u16 + 1 };
    let stacked_rows = field_rows + CHART_MIN_ROWS + 1 + ledger_rows;
    // Fields first, then chart, totals and ledger under each other; when that does not fit (a
    // full-screen detail at 80×24), the ledger moves beside the chart in a compact form.
    let beside = ledger_rows > 0 && inner.height < stacked_rows && inner.width >= 2 * LEDGER_BESIDE_WIDTH;
    if beside {
        let [fields_area, lower, totals_area] =
            Layout::vertical([Constraint::Length(field_rows), Constraint::Fill(1), Constraint::Length(1)]).areas(inner);
        let [chart_area, ledger_area] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Length(LEDGER_BESIDE_WIDTH)]).spacing(1).areas(lower);
        frame.render_widget(Paragraph::new(fields), fields_area);
        chart::render(frame, state, &data.stats, chart_area);
        frame.render_widget(Paragraph::new(ledger(data, theme, true)), ledger_area);
        frame.render_widget(totals, totals_area);
    } else {
        let [fields_area, chart_area, totals_area, ledger_area] = Layout::vertical([
            Constraint::Length(field_rows),
            Constraint::Min(CHART_MIN_ROWS),
            Constraint::Length(1),
            Constraint::Length(ledger_rows),
        ])
        .areas(inner);
        frame.render_widget(Paragraph::new(fields), fields_area);
        chart::render(frame, state, &data.stats, chart_area);
        frame.render_widget(totals, totals_area);
        frame.render_widget(Paragraph::new(ledger(data, theme, false)), ledger_area);
    }
}

fn field<'a>(theme: &Theme, label: &str, value: impl Into<Vec<Span<'a>>>) -> Line<'a> {
    let mut spans = vec![Span::styled(format!("{label:<LABEL_WIDTH$}"), theme.label)];
    spans.extend(value.into());
    Line::from(spans)
}

fn text(value: impl Into<String>, theme: &Theme) -> Vec<Span<'static>> {
    vec![Span::styled(value.into(), theme.text)]
}

fn fields<'a>(key: &'a ApiKey, state: &State) -> Vec<Line<'a>> {
    let theme = &state.session.theme;
    let now = state.now;
    let status = key.status(now);
    let kind = if key.is_standalone { "prepaid (standalone) key" } else { "user key, billed to its owner" };
    let balance = match key.balance() {
        None => text("—", theme),
        Some(balance) => {
            let credited = balance.credited.map_or("unlimited".into(), |c| c.to_string());
            let remaining = format::remaining(key);
            vec![
                Span::styled(format!("credited {credited} · used {} · remaining ", balance.used), theme.text),
                Span::styled(remaining, theme.title),
            ]
        }
    };
    let expires = match key.expires_at {
        None => "never".into(),
        Some(at) => format!("{} ({})", format::timestamp(at), format::expiry(key, now)),
    };
    let when_expired = match key.auto_delete_on_expiry {
        None => "global policy",
        Some(true) => "delete",
        Some(false) => "disable",
    };
    let owner_state = if key.owner_active { "" } else { " (owner disabled)" };
    vec![
        field(
            theme,
            "Status",
            vec![Span::styled(status.as_str(), theme.status(status)), Span::styled(format!(" · {kind}"), theme.text)],
        ),
        field(theme, "Owner", text(format!("{}{owner_state}", safe(&key.owner_name)), theme)),
        field(theme, "Key", text(format!("{} · id {}", safe(&key.key_hint), key.id), theme)),
        field(theme, "Balance", balance),
        field(
            theme,
            "Limits",
            text(
                format!(
                    "{} · {} concurrent",
                    format::rate_limit(key.rate_limit),
                    format::concurrency(key.concurrent_limit)
                ),
                theme,
            ),
        ),
        field(theme, "Expires", text(format!("{expires} · on expiry: {when_expired}"), theme)),
        field(theme, "Providers", text(format::allow_list(&key.allowed_providers), theme)),
        field(theme, "API formats", text(format::allow_list(&key.allowed_api_formats), theme)),
        field(theme, "Models", text(format::allow_list(&key.allowed_models), theme)),
        field(
            theme,
            "Used",
            text(
                format!("last {} · created {}", format::last_used(key, now), format::timestamp(key.created_at)),
                theme,
            ),
        ),
    ]
}

/// The latest balance changes; `compact` (beside the chart) keeps the day, the change and the
/// credited total after it, and leaves out the time and the actor.
fn ledger<'a>(data: &'a DetailData, theme: &Theme, compact: bool) -> Vec<Line<'a>> {
    if data.ledger.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![Line::styled("Recent balance changes", theme.header)];
    for entry in data.ledger.iter().take(LEDGER_ROWS) {
        let sign = if entry.delta.is_negative() { "" } else { "+" };
        let delta = format!("{sign}{}", entry.delta);
        let after = entry.credited_after.map_or("unlimited".into(), |c| c.to_string());
        let note = entry.note.as_deref().map(|n| format!(" · {}", safe(n))).unwrap_or_default();
        let (at, delta, rest) = if compact {
            (entry.at.format("%m-%d ").to_string(), format!("{delta:<9}"), format!(" → {after}{note}"))
        } else {
            (
                entry.at.format("%Y-%m-%d %H:%M ").to_string(),
                format!("{delta:<11}"),
                format!(" credited {after} · {}{note}", safe(&entry.actor)),
            )
        };
        lines.push(Line::from(vec![
            Span::styled(at, theme.muted),
            Span::styled(delta, theme.text),
            Span::styled(rest, theme.muted),
        ]));
    }
    lines
}
