//! A confirmation that says exactly what will happen.

use ratatui::Frame;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

use crate::tui::state::{Confirm, State};

use super::popup;

const WIDTH: u16 = 72;

pub fn render(frame: &mut Frame, state: &State, confirm: &Confirm) {
    let theme = &state.session.theme;
    // Long lines wrap: count the rows each takes as the paragraph below wraps it (by display
    // width, at word boundaries), inside the borders and margins of a dialog that may be
    // narrower than WIDTH in a narrow window.
    let text_width = WIDTH.min(frame.area().width).saturating_sub(4).max(1);
    let rows_of =
        |line: &String| Paragraph::new(line.as_str()).wrap(Wrap { trim: false }).line_count(text_width).max(1);
    let line_rows: Vec<usize> = confirm.lines.iter().map(rows_of).collect();
    let rows: usize = line_rows.iter().sum();
    let inner = popup(frame, state, &confirm.title, WIDTH, rows as u16 + 4);
    let text_area = inner.inner(ratatui::layout::Margin::new(1, 0));
    // The question must stay on screen however long the list (a sweep lists up to a thousand
    // keys): what does not fit is counted instead, on one row kept for it.
    let room = usize::from(text_area.height).saturating_sub(2);
    let mut shown = confirm.lines.len();
    if rows > room {
        let mut used = 0;
        shown = line_rows
            .iter()
            .take_while(|&&line| {
                used += line;
                used < room
            })
            .count();
    }
    let mut lines: Vec<Line> =
        confirm.lines[..shown].iter().map(|line| Line::styled(line.as_str(), theme.text)).collect();
    if shown < confirm.lines.len() {
        lines.push(Line::styled(format!("… {} more lines", confirm.lines.len() - shown), theme.muted));
    }
    lines.push(Line::default());
    lines.push(Line::styled("Go ahead?", theme.warning));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), text_area);
}
