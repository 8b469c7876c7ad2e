//! Draws the keys screen: the list, and the open key's detail beside it on a wide terminal or
//! instead of it on a narrow one.

use ratatui::Frame;

use super::{detail, list};
use crate::tui::state::State;
use crate::tui::view::layout::Areas;

pub fn render(frame: &mut Frame, state: &State, areas: &Areas) {
    if let Some(area) = areas.list {
        list::render(frame, state, area);
    }
    if let Some(area) = areas.detail {
        detail::render(frame, state, area);
    }
}
