//! Where each part of the screen goes. `update` uses it too, to know how many rows a page is.

use ratatui::layout::{Constraint, Layout, Rect};

use crate::tui::screens::keys::Screen;
use crate::tui::state::State;

/// From this width on, the detail sits beside the list instead of replacing it.
pub const WIDE_COLUMNS: u16 = 120;

/// Rows the key table spends on its border and header.
const TABLE_CHROME_ROWS: u16 = 3;

pub struct Areas {
    pub title: Rect,
    pub list: Option<Rect>,
    pub detail: Option<Rect>,
    pub filter: Option<Rect>,
    pub status: Rect,
    pub hints: Rect,
    /// Everything between the title and the status lines: what a screen draws in.
    pub body: Rect,
}

impl Areas {
    pub fn new(area: Rect, screen: Screen, filter_open: bool) -> Areas {
        let filter_rows = u16::from(filter_open);
        let [title, body, filter, status, hints] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(filter_rows),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        let (list, detail) = match screen {
            Screen::List => (Some(body), None),
            Screen::Detail if area.width >= WIDE_COLUMNS => {
                let [list, detail] =
                    Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body);
                (Some(list), Some(detail))
            }
            Screen::Detail => (None, Some(body)),
        };
        Areas { title, list, detail, filter: filter_open.then_some(filter), status, hints, body }
    }

    pub fn of(state: &State) -> Areas {
        let (width, height) = state.size;
        Areas::new(Rect::new(0, 0, width, height), state.screen, state.filter_box.is_some())
    }
}

/// Key rows visible in the table (also when the detail covers it on a narrow screen, so paging
/// keeps its size).
pub fn list_rows(state: &State) -> usize {
    usize::from(Areas::of(state).body.height.saturating_sub(TABLE_CHROME_ROWS))
}

/// Rows a screen's table shows (its border and header left out).
pub fn screen_rows(state: &State) -> usize {
    list_rows(state)
}
