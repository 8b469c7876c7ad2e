//! A confirmation that says exactly what will happen.

use ratatui::Frame;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

use crate::tui::state::{Confirm, State};

use super::popup;

const WIDTH: u16 = 72;

pub fn render(frame: &mut Frame, state: &State, confirm: &Confirm) {
    let question = Line::styled("Go ahead?", state.session.theme.warning);
    render_lines(frame, state, &confirm.title, &confirm.lines, Some(question));
}

/// Lines in a centred box, wrapped, with what does not fit counted, and an optional last line
/// (a confirmation's question) that always stays on screen.
pub fn render_lines(frame: &mut Frame, state: &State, title: &str, lines: &[String], last: Option<Line>) {
    let theme = &state.session.theme;
    // Long lines wrap: count the rows each takes as the paragraph below wraps it (by display
    // width, at word boundaries), inside the borders and margins of a dialog that may be
    // narrower than WIDTH in a narrow window.
    let text_width = WIDTH.min(frame.area().width).saturating_sub(4).max(1);
    let rows_of =
        |line: &String| Paragraph::new(line.as_str()).wrap(Wrap { trim: false }).line_count(text_width).max(1);
    let line_rows: Vec<usize> = lines.iter().map(rows_of).collect();
    let rows: usize = line_rows.iter().sum();
    let inner = popup(frame, state, title, WIDTH, rows as u16 + 4);
    let text_area = inner.inner(ratatui::layout::Margin::new(1, 0));
    // The question must stay on screen however long the list (a sweep lists up to a thousand
    // keys): what does not fit is counted instead, on one row kept for it.
    let room = usize::from(text_area.height).saturating_sub(2);
    let mut shown = lines.len();
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
    let mut text: Vec<Line> = lines[..shown].iter().map(|line| Line::styled(line.as_str(), theme.text)).collect();
    if shown < lines.len() {
        text.push(Line::styled(format!("… {} more lines", lines.len() - shown), theme.muted));
    }
    text.push(Line::default());
    text.extend(last);
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), text_area);
}
