//! The key detail: every field, the balance, the usage chart with its totals, recent ledger rows.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::{DetailData, Screen};
use crate::domain::Refill;
use crate::tui::state::State;
use crate::tui::theme::Theme;

use super::admission;
use crate::tui::screens::audit::view::changes as audit_changes;
use crate::tui::view::chart;
use crate::tui::view::format::{self, safe};

/// Width of the labels column.
const LABEL_WIDTH: usize = 13;
/// The most ledger rows shown (the effect fetches as many).
const LEDGER_ROWS: usize = crate::tui::effect::DETAIL_LEDGER_ROWS as usize;
/// The chart's smallest useful height under the fields: title, a few rows of bars, the dates.
const CHART_MIN_ROWS: u16 = 8;
/// The narrowest detail that shows ledger rows in full (time, actor, note); below, compact.
const FULL_LEDGER_WIDTH: u16 = 70;
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

    let fields = lay_out(fields(data, state), inner.width, theme);
    let field_rows = fields.len() as u16;
    let totals = field("Totals", chart::totals(&data.stats.series).map(|part| Span::styled(part, theme.text)));
    let totals = lay_out(vec![totals], inner.width, theme);
    let totals_rows = totals.len() as u16;
    let ledger_rows = if data.ledger.is_empty() { 0 } else { data.ledger.len().min(LEDGER_ROWS) as u16 + 1 };
    let stacked_rows = field_rows + CHART_MIN_ROWS + totals_rows + ledger_rows;
    // Fields first, then chart, totals and ledger under each other; when that does not fit (a
    // full-screen detail at 80×24), the ledger moves beside the chart in a compact form, and where
    // there is no room for that either, it shows its latest rows and says how many it left out.
    let beside = ledger_rows > 0 && inner.height < stacked_rows && inner.width >= 2 * LEDGER_BESIDE_WIDTH;
    if beside {
        let [fields_area, lower, totals_area] =
            Layout::vertical([Constraint::Length(field_rows), Constraint::Fill(1), Constraint::Length(totals_rows)])
                .areas(inner);
        let [chart_area, ledger_area] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Length(LEDGER_BESIDE_WIDTH)]).spacing(1).areas(lower);
        frame.render_widget(Paragraph::new(fields), fields_area);
        chart::render_daily(frame, state, state.detail.metric, &data.stats.series.daily, chart_area);
        frame.render_widget(Paragraph::new(ledger(data, theme, true, ledger_area.height)), ledger_area);
        frame.render_widget(Paragraph::new(totals), totals_area);
    } else {
        let ledger_room = inner.height.saturating_sub(field_rows + totals_rows + CHART_MIN_ROWS).min(ledger_rows);
        let history_rows = if data.history.is_empty() { 0 } else { data.history.len() as u16 + 1 };
        let history_room =
            inner.height.saturating_sub(field_rows + totals_rows + CHART_MIN_ROWS + ledger_room).min(history_rows);
        let [fields_area, chart_area, totals_area, ledger_area, history_area] = Layout::vertical([
            Constraint::Length(field_rows),
            Constraint::Fill(1),
            Constraint::Length(totals_rows),
            Constraint::Length(ledger_room),
            Constraint::Length(history_room),
        ])
        .areas(inner);
        frame.render_widget(Paragraph::new(history(data, theme, history_room)), history_area);
        frame.render_widget(Paragraph::new(fields), fields_area);
        chart::render_daily(frame, state, state.detail.metric, &data.stats.series.daily, chart_area);
        frame.render_widget(Paragraph::new(totals), totals_area);
        frame.render_widget(
            Paragraph::new(ledger(data, theme, inner.width < FULL_LEDGER_WIDTH, ledger_room)),
            ledger_area,
        );
    }
}

/// One field: a label and the parts of its value, shown joined by ` · ` and wrapped between
/// parts when the panel is too narrow for one line, so nothing is cut off at the edge.
struct Field<'a> {
    label: &'static str,
    parts: Vec<Span<'a>>,
}

fn field<'a>(label: &'static str, parts: impl IntoIterator<Item = Span<'a>>) -> Field<'a> {
    Field { label, parts: parts.into_iter().collect() }
}

fn lay_out<'a>(fields: Vec<Field<'a>>, width: u16, theme: &Theme) -> Vec<Line<'a>> {
    let room = usize::from(width).saturating_sub(LABEL_WIDTH).max(1);
    let mut lines = Vec::new();
    for field in fields {
        let mut line = vec![Span::styled(format!("{:<LABEL_WIDTH$}", field.label), theme.label)];
        let mut used = 0;
        for part in field.parts {
            if used > 0 && used + SEPARATOR.len() + part.width() > room {
                lines.push(Line::from(std::mem::take(&mut line)));
                line.push(Span::raw(" ".repeat(LABEL_WIDTH)));
                used = 0;
            } else if used > 0 {
                line.push(Span::styled(SEPARATOR, theme.muted));
                used += SEPARATOR.len();
            }
            used += part.width();
            line.push(part);
        }
        lines.push(Line::from(line));
    }
    lines
}

const SEPARATOR: &str = " · ";

/// An allow list, one part per entry so a long list wraps: `all` when unrestricted.
fn allowed<'a>(items: &'a Option<Vec<String>>, theme: &Theme) -> Vec<Span<'a>> {
    match items {
        None => vec![Span::styled("all", theme.text)],
        Some(items) => items.iter().map(|item| Span::styled(safe(item), theme.text)).collect(),
    }
}

fn fields<'a>(data: &'a DetailData, state: &State) -> Vec<Field<'a>> {
    let key = &data.key;
    let theme = &state.session.theme;
    let text = |value: String| Span::styled(value, theme.text);
    let now = state.now;
    let status = key.status(now);
    let kind = if key.is_standalone { "prepaid (standalone) key" } else { "user key, billed to its owner" };
    let balance = match key.balance() {
        None => vec![text("—".into())],
        Some(balance) => vec![
            text(format!("credited {}", balance.credited.map_or("unlimited".into(), |c| c.to_string()))),
            text(format!("used {}", balance.used)),
            Span::styled(
                format!("remaining {}", format::remaining(key)),
                if format::owes(key) { theme.error } else { theme.title },
            ),
        ],
    };
    let expires =
        key.expires_at.map_or("never".into(), |at| format!("{} ({})", format::timestamp(at), format::expiry(key, now)));
    let when_expired = match key.auto_delete_on_expiry {
        None => "global policy",
        Some(true) => "delete",
        Some(false) => "disable",
    };
    let owner_state = if key.owner_active { "" } else { " (owner disabled)" };
    let (admission, admitted) = admission::describe(&data.admission, key, data.disabled_by.as_ref(), now);
    let admission_style = if admitted { theme.success } else { theme.error };
    let mut fields = vec![
        field("Status", [Span::styled(status.as_str(), theme.status(status)), text(kind.into())]),
        field("Admission", admission.into_iter().map(|part| Span::styled(part, admission_style))),
        field("Owner", [text(format!("{}{owner_state}", safe(&key.owner_name)))]),
        field("Key", [text(safe(&key.key_hint).into_owned()), text(format!("id {}", key.id))]),
        field("Balance", balance),
    ];
    if key.is_standalone {
        fields.push(field("Refill", [text(Refill::describe_or_none(key.money.refill.as_ref()))]));
        fields.push(field("Low balance", [text(format!("alert under {}", data.money.low_balance))]));
    }
    fields.push(field("Budget", budget(data, state)));
    fields.extend([
        field(
            "Limits",
            [
                text(format::rate_limit(key.rate_limit)),
                text(format!("{} concurrent", format::concurrency(key.concurrent_limit))),
            ],
        ),
        field("Expires", [text(expires), text(format!("on expiry: {when_expired}"))]),
        field("Providers", allowed(&key.allowed_providers, theme)),
        field("API formats", allowed(&key.allowed_api_formats, theme)),
        field("Models", allowed(&key.allowed_models, theme)),
        field(
            "Used",
            [
                text(key.last_used_at.map_or("not yet".into(), |at| format!("last {}", format::relative(at, now)))),
                text(format!("created {}", format::timestamp(key.created_at))),
            ],
        ),
    ]);
    fields
}

/// "spent $3.00 of $50.00 this month · resets in 9d", and "over budget" in the warning colour
/// once reached; parts, so a narrow panel wraps between them.
fn budget<'a>(data: &DetailData, state: &State) -> Vec<Span<'a>> {
    let theme = &state.session.theme;
    let Some(budget) = data.money.budget else {
        return vec![Span::styled("none", theme.text)];
    };
    let mut parts =
        vec![Span::styled(budget.spent_text(), theme.text), Span::styled(budget.resets_text(state.now), theme.text)];
    if budget.budget.is_reached(budget.spent) {
        parts.push(Span::styled("over budget", theme.warning));
    }
    parts
}

/// The key's last audit rows, when there is room for them all: who did what, and what changed.
fn history<'a>(data: &'a DetailData, theme: &Theme, rows: u16) -> Vec<Line<'a>> {
    if usize::from(rows) <= data.history.len() {
        return Vec::new();
    }
    let mut lines = vec![Line::styled("History", theme.header)];
    lines.extend(data.history.iter().map(|entry| {
        Line::from(vec![
            Span::styled(entry.at.format("%Y-%m-%d %H:%M ").to_string(), theme.muted),
            Span::styled(format!("{} {} ", safe(&entry.actor), safe(&entry.action)), theme.text),
            Span::styled(audit_changes(entry), theme.muted),
        ])
    }));
    lines
}

/// The latest balance changes; `compact` (beside the chart) keeps the day, the change and the
/// credited total after it, and leaves out the time and the actor. `rows` is the room, header
/// included; entries that do not fit are counted in the header.
fn ledger<'a>(data: &'a DetailData, theme: &Theme, compact: bool, rows: u16) -> Vec<Line<'a>> {
    if data.ledger.is_empty() || rows == 0 {
        return Vec::new();
    }
    let shown = data.ledger.len().min(LEDGER_ROWS).min(usize::from(rows) - 1);
    let left_out = data.ledger.len().min(LEDGER_ROWS) - shown;
    let header = match left_out {
        0 => "Recent balance changes".to_string(),
        _ => format!("Recent balance changes ({left_out} more not shown)"),
    };
    let mut lines = vec![Line::styled(header, theme.header)];
    for entry in data.ledger.iter().take(shown) {
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
