//! The `?` help: every binding of the screen under it, then the global ones, from the keymap.
//! When the terminal is too short for all of them, the box scrolls and says there is more.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::keymap::Binding;
use crate::tui::state::State;

use super::dialogs::popup;

/// Width of the keys column.
const KEYS_WIDTH: usize = 14;
const WIDTH: u16 = 70;
/// Rows kept free around the box: the title line above and the key hints below stay readable.
const SCREEN_MARGIN_ROWS: u16 = 2;

fn lines(state: &State) -> Vec<Line<'static>> {
    let theme = &state.session.theme;
    let context = state.screen_context();
    let mut lines = vec![Line::styled(context.title(), theme.header)];
    let mut section = context;
    for binding in state.session.keymap.bindings(context) {
        if binding.context != section {
            section = binding.context;
            lines.push(Line::default());
            lines.push(Line::styled(section.title(), theme.header));
        }
        lines.push(binding_line(binding, state));
    }
    if state.session.read_only {
        lines.push(Line::default());
        lines.push(Line::styled("Read-only: keys that change data are switched off.", theme.warning));
    }
    lines
}

fn binding_line(binding: &Binding, state: &State) -> Line<'static> {
    let theme = &state.session.theme;
    let keys = binding.keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
    Line::from(vec![
        Span::styled(format!("  {keys:<KEYS_WIDTH$}"), theme.key),
        Span::styled(binding.description, theme.text),
    ])
}

/// The box's height for `count` lines on a screen `screen_height` rows high (borders included).
fn box_height(count: usize, screen_height: u16) -> u16 {
    let wanted = u16::try_from(count).unwrap_or(u16::MAX).saturating_add(2);
    wanted.min(screen_height.saturating_sub(SCREEN_MARGIN_ROWS).max(3))
}

/// Lines of help visible at once: what a page scroll moves by.
pub fn visible_lines(state: &State) -> usize {
    usize::from(box_height(lines(state).len(), state.size.1).saturating_sub(2))
}

/// How far the help can scroll before its last line reaches the bottom of the box.
pub fn max_scroll(state: &State) -> usize {
    lines(state).len().saturating_sub(visible_lines(state))
}

pub fn render(frame: &mut Frame, state: &State, scroll: usize) {
    let lines = lines(state);
    let count = lines.len();
    let inner = popup(frame, state, "Help", WIDTH, box_height(count, frame.area().height));
    let visible = usize::from(inner.height);
    // A resize may have made the box taller since the last scroll.
    let scroll = scroll.min(count.saturating_sub(visible));
    let shown: Vec<Line> = lines.into_iter().skip(scroll).take(visible).collect();
    frame.render_widget(Paragraph::new(shown), inner);
    if scroll > 0 {
        mark_on_border(frame, inner, inner.y.checked_sub(1), " ↑ more ", state);
    }
    if scroll + visible < count {
        mark_on_border(frame, inner, Some(inner.bottom()), " more ↓ ", state);
    }
}

/// Writes `mark` at the right end of the box's top or bottom border, if that row is on screen.
fn mark_on_border(frame: &mut Frame, inner: Rect, row: Option<u16>, mark: &str, state: &State) {
    let Some(row) = row.filter(|&row| row < frame.area().bottom() && inner.width > 0) else { return };
    let area = Rect::new(inner.x, row, inner.width, 1);
    frame.render_widget(Line::styled(mark.to_string(), state.session.theme.warning).right_aligned(), area);
}
