//! Dialogs drawn over the screen, each in a centred box. Their keys show in the status bar's
//! hints, which follow the dialog on top.

pub mod confirm;
pub mod form;
pub mod secret;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Clear};

use crate::tui::state::State;

/// Clears a centred box of at most `width`×`height` cells, draws its frame and returns the inside.
pub fn popup(frame: &mut Frame, state: &State, title: &str, width: u16, height: u16) -> Rect {
    let theme = &state.session.theme;
    let screen = frame.area();
    let area =
        screen.centered(Constraint::Length(width.min(screen.width)), Constraint::Length(height.min(screen.height)));
    frame.render_widget(Clear, area);
    let block =
        Block::bordered().border_style(theme.focused_border).title(Span::styled(format!(" {title} "), theme.title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}
