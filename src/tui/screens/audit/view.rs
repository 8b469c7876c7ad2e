//! The audit log as a table: when, who, what, and what changed (before → after).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, TableState, Wrap};
use serde_json::Value;

use crate::domain::AuditEntry;
use crate::tui::state::State;
use crate::tui::view::format::safe;
use crate::tui::view::table;

pub fn render(frame: &mut Frame, state: &State, area: Rect) {
    let theme = &state.session.theme;
    let screen = &state.audit;
    let mut title = vec![Span::styled(" Audit log ", theme.title), Span::styled("· newest first ", theme.muted)];
    if !screen.filter.is_empty() {
        title.push(Span::styled(format!("· filter \"{}\" ", safe(&screen.filter)), theme.warning));
    }
    let block = Block::bordered().border_style(theme.focused_border).title(Line::from(title));
    let pages = &screen.pages;
    if let Some(error) = &pages.error {
        let text = vec![
            Line::styled("The audit log could not be loaded:", theme.error),
            Line::styled(safe(error).into_owned(), theme.text),
        ];
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(block), area);
        return;
    }
    if pages.rows.is_empty() {
        let message = if pages.pending.is_some() { "Loading…" } else { "No audit rows here." };
        frame.render_widget(Paragraph::new(Line::styled(message, theme.muted)).block(block), area);
        return;
    }
    let header = Row::new(["When (UTC)", "Who", "What", "Key", "Changes"].map(Cell::from));
    let rows = pages.rows.iter().map(|entry| {
        Row::new([
            Cell::from(entry.at.format("%m-%d %H:%M").to_string()),
            Cell::from(safe(&entry.actor).into_owned()),
            Cell::from(safe(&entry.action).into_owned()),
            // The id's first characters, as `keytop audit` prints them (and the key filter takes).
            Cell::from(entry.api_key_id.map_or_else(|| "—".into(), |id| id.to_string()[..8].to_string())),
            Cell::from(changes_and_signer(entry)),
        ])
    });
    let widths = [
        Constraint::Length(11),
        Constraint::Length(10),
        // The longest action keytop writes, `sweep_disable`, whole.
        Constraint::Length(13),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    let table = table::selectable(state, rows, widths, header, block);
    let mut table_state = TableState::new().with_offset(pages.offset).with_selected(Some(pages.selected));
    frame.render_stateful_widget(table, area, &mut table_state);
}

/// A row's details in one line: `field: before → after` for each changed field, else the
/// details' own fields (`name=ci-key`).
pub fn changes(entry: &AuditEntry) -> String {
    let Ok(Value::Object(details)) = serde_json::from_str::<Value>(&entry.details) else {
        return safe(&entry.details).into_owned();
    };
    let parts: Vec<String> = details
        .iter()
        .map(|(field, value)| match (value.get("from"), value.get("to")) {
            (Some(from), Some(to)) => format!("{field}: {} → {}", plain(from), plain(to)),
            _ => format!("{field}={}", plain(value)),
        })
        .collect();
    safe(&parts.join(", ")).into_owned()
}

/// What changed, then the SSH key the admin of `keytop serve` signed in with (their name can be
/// edited, the key cannot), shortened to what tells keys apart at a glance.
fn changes_and_signer(entry: &AuditEntry) -> String {
    let Some(key) = &entry.actor_key else { return changes(entry) };
    let shown: String = key.chars().take(SIGNER_CHARS).collect();
    let more = if key.chars().count() > SIGNER_CHARS { "…" } else { "" };
    format!("{} · key {}{more}", changes(entry), safe(&shown))
}

/// `SHA256:` and the fingerprint's first 8 characters.
const SIGNER_CHARS: usize = 15;

/// A JSON value as an admin reads it: strings unquoted, null as "none".
fn plain(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(details: &str) -> AuditEntry {
        AuditEntry {
            id: 1,
            at: chrono::Utc::now(),
            actor: "admin".into(),
            actor_key: None,
            action: "key_update".into(),
            api_key_id: None,
            details: details.into(),
        }
    }

    #[test]
    fn changed_fields_read_before_and_after() {
        let line = changes(&entry(r#"{"rate_limit":{"from":100,"to":null},"name":{"from":"a","to":"b"}}"#));
        assert_eq!(line, "name: a → b, rate_limit: 100 → none");
        assert_eq!(changes(&entry(r#"{"hint":"sk-ab...cd"}"#)), "hint=sk-ab...cd");
        assert_eq!(changes(&entry("not json \u{1b}[31m")), "not json [31m");
    }

    #[test]
    fn a_row_written_over_ssh_names_the_admins_key() {
        let signed = AuditEntry {
            actor_key: Some("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8".into()),
            ..entry(r#"{"hint":"sk-ab...cd"}"#)
        };
        assert_eq!(changes_and_signer(&signed), "hint=sk-ab...cd · key SHA256:nThbg6kX…");
        assert_eq!(changes_and_signer(&entry(r#"{"hint":"sk-ab...cd"}"#)), "hint=sk-ab...cd");
    }
}
