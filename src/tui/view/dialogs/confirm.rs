//! A confirmation that says exactly what will happen.

use ratatui::Frame;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

use crate::tui::state::{Confirm, State};

use super::popup;

const WIDTH: u16 = 72;

pub fn render(frame: &mut Frame, state: &State, confirm: &Confirm) {
    let theme = &state.session.theme;
    let mut lines: Vec<Line> = confirm.lines.iter().map(|line| Line::styled(line.as_str(), theme.text)).collect();
    lines.push(Line::default());
    lines.push(Line::styled("Go ahead?", theme.warning));
    // Long lines wrap: leave room for that in the height.
    let text_width = usize::from(WIDTH - 4).max(1);
    let rows: usize = confirm.lines.iter().map(|line| line.chars().count().div_ceil(text_width).max(1)).sum();
    let inner = popup(frame, state, &confirm.title, WIDTH, rows as u16 + 4);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }),
        inner.inner(ratatui::layout::Margin::new(1, 0)),
    );
}
