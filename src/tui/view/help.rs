//! The `?` help: every binding of the screen under it, then the global ones, from the keymap.

use ratatui::Frame;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::keymap::Binding;
use crate::tui::state::State;

use super::dialogs::popup;

/// Width of the keys column.
const KEYS_WIDTH: usize = 14;

pub fn render(frame: &mut Frame, state: &State) {
    let theme = &state.session.theme;
    let context = state.screen_context();
    let bindings: Vec<&Binding> = state.session.keymap.bindings(context).collect();
    let mut lines = vec![Line::styled(context.title(), theme.header)];
    let mut section = context;
    for binding in bindings {
        if binding.context != section {
            section = binding.context;
            lines.push(Line::default());
            lines.push(Line::styled(section.title(), theme.header));
        }
        let keys = binding.keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
        lines.push(Line::from(vec![
            Span::styled(format!("  {keys:<KEYS_WIDTH$}"), theme.key),
            Span::styled(binding.description, theme.text),
        ]));
    }
    if state.session.read_only {
        lines.push(Line::default());
        lines.push(Line::styled("Read-only: keys that change data are switched off.", theme.warning));
    }
    let height = lines.len() as u16 + 2;
    let inner = popup(frame, state, "Help", 70, height);
    frame.render_widget(Paragraph::new(lines), inner);
}
