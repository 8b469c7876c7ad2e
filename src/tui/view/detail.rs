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
const LEDGER_ROWS: u16 = crate::tui::effect::DETAIL_LEDGER_ROWS as u16;

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
    let ledger_rows = if data.ledger.is_empty() { 0 } else { data.ledger.len() as u16 + 1 };
    let [fields_area, chart_area, totals_area, ledger_area] = Layout::vertical([
        Constraint::Length(fields.len() as u16),
        Constraint::Min(6),
        Constraint::Length(1),
        Constraint::Length(ledger_rows.min(LEDGER_ROWS + 1)),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(fields), fields_area);
    chart::render(frame, state, &data.stats, chart_area);
    frame.render_widget(Line::styled(chart::totals(&data.stats), theme.text), totals_area);
    frame.render_widget(Paragraph::new(ledger(data, theme)), ledger_area);
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
        None => "follow the global policy",
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
        field(theme, "Expires", text(format!("{expires} · when expired: {when_expired}"), theme)),
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

fn ledger<'a>(data: &'a DetailData, theme: &Theme) -> Vec<Line<'a>> {
    if data.ledger.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![Line::styled("Recent balance changes", theme.header)];
    for entry in &data.ledger {
        let sign = if entry.delta.is_negative() { "" } else { "+" };
        let after = entry.credited_after.map_or("unlimited".into(), |c| c.to_string());
        let note = entry.note.as_deref().map(|n| format!(" · {}", safe(n))).unwrap_or_default();
        lines.push(Line::from(vec![
            Span::styled(format!("{} ", entry.at.format("%Y-%m-%d %H:%M")), theme.muted),
            Span::styled(format!("{:<11}", format!("{sign}{}", entry.delta)), theme.text),
            Span::styled(format!(" credited {after} · {}{note}", safe(&entry.actor)), theme.muted),
        ]));
    }
    lines
}
