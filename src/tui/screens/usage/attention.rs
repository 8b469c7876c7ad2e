//! The usage screen's attention list: keys exhausted or under their low-balance line, keys
//! expiring within [`EXPIRING_WITHIN`], keys the sweep disabled or deleted within
//! [`SWEPT_WITHIN`].

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, TableState};
use serde_json::Value;

use crate::service::{Attention, EXPIRING_WITHIN, SWEPT_WITHIN};
use crate::tui::state::State;
use crate::tui::view::format::{self, safe};
use crate::tui::view::table;

use super::{Concern, Pane, UsageData};

/// The rows the list needs: its rows, a rule and a header (one row for the "nothing" note).
pub fn height(data: &UsageData) -> u16 {
    data.concerns().count().max(1) as u16 + 2
}

pub fn render(frame: &mut Frame, state: &State, data: &UsageData, area: Rect) {
    let theme = &state.session.theme;
    let block = Block::new().borders(Borders::TOP).border_style(theme.border).title(title(state, &data.attention));
    if data.concerns().next().is_none() {
        let note = Line::styled(
            format!(
                "Nothing: no low balance, no key expiring within {}d, nothing swept in {}h",
                EXPIRING_WITHIN.num_days(),
                SWEPT_WITHIN.num_hours()
            ),
            theme.muted,
        );
        frame.render_widget(Paragraph::new(note).block(block), area);
        return;
    }
    let rows = data.concerns().map(|concern| {
        let (what, name, detail) = describe(state, concern);
        Row::new([
            Cell::from(what),
            Cell::from(safe(&name).into_owned()),
            Cell::from(Line::from(detail).right_aligned()),
        ])
    });
    let header = Row::new([Cell::from("Why"), Cell::from("Key"), Cell::from(Line::from("").right_aligned())]);
    let widths = [Constraint::Length(11), Constraint::Fill(1), Constraint::Length(10)];
    let table = table::selectable(state, rows, widths, header, block);
    let screen = &state.usage;
    let selected = (screen.pane == Pane::Attention).then_some(screen.attention_selected);
    frame.render_stateful_widget(table, area, &mut TableState::new().with_selected(selected));
}

/// ` Needs attention · 5 `, `10+` when a list is as long as the limit (it may hold more).
fn title(state: &State, attention: &Attention) -> Line<'static> {
    let lists = [attention.low_balance.len(), attention.expiring.len(), attention.swept.len()];
    let more = if lists.iter().any(|&rows| rows >= attention.limit as usize) { "+" } else { "" };
    Line::from(vec![
        Span::styled(" Needs attention ", state.session.theme.title),
        Span::styled(format!("· {}{more} ", lists.iter().sum::<usize>()), state.session.theme.muted),
    ])
}

/// A row as (why, key name, detail).
fn describe(state: &State, concern: Concern) -> (&'static str, String, String) {
    match concern {
        Concern::LowBalance(key) => {
            let exhausted = key.balance().and_then(|balance| balance.remaining).is_some_and(|left| left.micros() <= 0);
            (if exhausted { "exhausted" } else { "low balance" }, key.name.clone(), format::remaining_in_cents(key))
        }
        Concern::Expiring(key) => ("expires", key.name.clone(), format::expiry(key, state.now)),
        // The sweep's rows of the last SWEPT_WITHIN, when they were written.
        Concern::Swept(entry) => {
            let what = if entry.action == "sweep_delete" { "swept: gone" } else { "swept: off" };
            let name = serde_json::from_str::<Value>(&entry.details)
                .ok()
                .and_then(|details| details.get("name")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "(unnamed)".into());
            (what, name, format::relative(entry.at, state.now))
        }
    }
}
