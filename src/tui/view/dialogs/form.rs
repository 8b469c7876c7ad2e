//! The top-up, create and edit dialogs: fields, inline errors, and the top-up's live preview.

use ratatui::Frame;
use ratatui::layout::{Margin, Position};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::domain::{ApiKey, Money};
use crate::tui::forms::{Field, FieldValue, Form, FormKind, top_up_preview};
use crate::tui::state::State;
use crate::tui::view::format::{self, marked_names};
use crate::tui::view::wrap::wrap;

use super::popup;

const WIDTH: u16 = 76;
const LABEL_WIDTH: u16 = 17;

pub fn render(frame: &mut Frame, state: &State, form: &Form) {
    let theme = &state.session.theme;
    let mut lines: Vec<Line> = Vec::new();
    if let FormKind::TopUp(key, _) = &form.kind {
        let style = if format::owes(key) { theme.error } else { theme.text };
        lines.push(Line::styled(format!("Remaining now: {}", format::remaining(key)), style));
        lines.push(Line::default());
    }
    if let Some(keys) = form.bulk_keys() {
        let room = usize::from(WIDTH.min(frame.area().width).saturating_sub(4));
        let each = if matches!(form.kind, FormKind::BulkEdit(..)) {
            "The fields you change apply to each of"
        } else {
            "The amount applies to each of"
        };
        for part in wrap(&format!("{each}: {}", marked_names(keys)), room) {
            lines.push(Line::styled(part, theme.text));
        }
        lines.push(Line::default());
    }
    let mut cursor = None;
    for (index, field) in form.fields.iter().enumerate().filter(|(_, field)| form.is_active(field)) {
        let focused = index == form.focus;
        if focused && let FieldValue::Text(input) = &field.value {
            cursor = Some((lines.len() as u16, input.visual_cursor() as u16));
        }
        lines.push(field_line(state, field, focused));
        // What is wrong, else what is odd, else (on the focused field) what is accepted; wrapped
        // under the value, so a long message is read whole.
        let note = match form.error(field, state.now).filter(|_| field.edited()) {
            Some(error) => Some((error, theme.error)),
            None => match form.warning(field, state.now) {
                Some(warning) => Some((warning, theme.warning)),
                None => focused.then(|| (field.id.help().to_string(), theme.muted)),
            },
        };
        if let Some((text, style)) = note {
            let room = usize::from(WIDTH.min(frame.area().width).saturating_sub(4 + LABEL_WIDTH));
            for part in wrap(&text, room) {
                lines.push(Line::styled(
                    format!("{:LABEL_WIDTH$}{part}", "", LABEL_WIDTH = usize::from(LABEL_WIDTH)),
                    style,
                ));
            }
        }
    }
    if let FormKind::TopUp(key, _) = &form.kind {
        lines.push(Line::default());
        lines.push(match form.top_up_request() {
            Ok((amount, _)) => preview_line(state, key, amount),
            Err(_) => Line::styled("Type an amount to see the new balance.", theme.muted),
        });
    }
    if let FormKind::Edit(key) = &form.kind
        && let Ok(Some(credited)) = form.credit_change()
    {
        lines.push(Line::default());
        lines.push(credit_preview_line(state, key, credited));
    }
    if form.submitting {
        lines.push(Line::styled("Saving…", theme.warning));
    }
    let inner = popup(frame, state, &form.title(), WIDTH, lines.len() as u16 + 2).inner(Margin::new(1, 0));
    frame.render_widget(Paragraph::new(lines), inner);
    if let Some((row, column)) = cursor {
        let position = Position::new(inner.x + LABEL_WIDTH + column, inner.y + row);
        if inner.contains(position) {
            frame.set_cursor_position(position);
        }
    }
}

fn field_line<'a>(state: &State, field: &'a Field, focused: bool) -> Line<'a> {
    let theme = &state.session.theme;
    let label_style = if focused { theme.title } else { theme.label };
    let label = Span::styled(format!("{:<width$}", field.id.label(), width = usize::from(LABEL_WIDTH)), label_style);
    let value = match &field.value {
        FieldValue::Text(input) => Span::styled(input.value(), if focused { theme.key } else { theme.text }),
        FieldValue::Choice(_) => {
            Span::styled(format!("‹ {} ›", field.shown()), if focused { theme.selected } else { theme.text })
        }
    };
    Line::from(vec![label, value])
}

fn preview_line(state: &State, key: &ApiKey, amount: Money) -> Line<'static> {
    let theme = &state.session.theme;
    match top_up_preview(key, amount) {
        Ok(preview) => {
            let mut spans = vec![Span::styled(preview, theme.title)];
            if amount.abs() >= state.session.confirm_topup_at {
                spans.push(Span::styled("  (asks for confirmation)", theme.warning));
            }
            Line::from(spans)
        }
        Err(why) => Line::styled(why, theme.error),
    }
}

/// What a new credited total leaves to spend: `remaining $10.00 → $18.50`.
fn credit_preview_line(state: &State, key: &ApiKey, credited: Option<Money>) -> Line<'static> {
    let after = ApiKey { credited, ..key.clone() };
    let text = format!("remaining {} → {} (recorded in the ledger)", format::remaining(key), format::remaining(&after));
    Line::styled(text, state.session.theme.title)
}
