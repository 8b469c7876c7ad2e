//! A table loaded a page at a time as the selection nears its last row: the audit log and the
//! users. The screen fetches; this keeps the rows, the selection and the scroll.

use crate::tui::keymap::Action;
use crate::tui::state::RequestId;

/// How far a movement key moves the selection of a table showing `visible` rows; `None` for
/// other keys.
pub fn step(action: Action, visible: usize) -> Option<isize> {
    let page = visible.max(1) as isize;
    Some(match action {
        Action::Up => -1,
        Action::Down => 1,
        Action::PageUp => -page,
        Action::PageDown => page,
        Action::First => isize::MIN / 2,
        _ => return None,
    })
}

/// Where the rows of a load go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Replace the rows, back to the first (a new filter or range).
    Replace,
    /// Replace the rows, the selection staying on the same row number (after a change).
    Refresh,
    /// After the loaded rows.
    Append,
}

#[derive(Debug, Clone)]
pub struct Pages<T> {
    /// The rows loaded so far, in the screen's order.
    pub rows: Vec<T>,
    pub selected: usize,
    /// The first row shown, kept so that scrolling is steady.
    pub offset: usize,
    /// The load in flight, and where its rows go.
    pub pending: Option<(RequestId, Load)>,
    /// The last row is loaded.
    pub at_end: bool,
    pub error: Option<String>,
}

impl<T> Default for Pages<T> {
    fn default() -> Self {
        Pages { rows: Vec::new(), selected: 0, offset: 0, pending: None, at_end: false, error: None }
    }
}

impl<T> Pages<T> {
    pub fn selected_row(&self) -> Option<&T> {
        self.rows.get(self.selected)
    }

    pub fn start(&mut self, request: RequestId, load: Load) {
        self.pending = Some((request, load));
    }

    /// Moves the selection by `delta` rows, scrolling to keep it among the `visible` rows shown.
    /// True when the next page is due: the selection is within a screen of the last loaded row.
    pub fn move_selection(&mut self, delta: isize, visible: usize) -> bool {
        if self.rows.is_empty() {
            return false;
        }
        let visible = visible.max(1);
        self.selected = self.selected.saturating_add_signed(delta).min(self.rows.len() - 1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + visible {
            self.offset = self.selected + 1 - visible;
        }
        self.selected + visible >= self.rows.len() && !self.at_end && self.pending.is_none()
    }

    /// Takes the answer to load `request` of pages of `page_rows`; an answer to an older load
    /// is dropped.
    pub fn on_loaded(&mut self, request: RequestId, result: Result<Vec<T>, String>, page_rows: u32) {
        let Some((_, load)) = self.pending.filter(|(pending, _)| *pending == request) else { return };
        self.pending = None;
        match result {
            Ok(rows) => {
                self.at_end = rows.len() < page_rows as usize;
                match load {
                    Load::Replace => {
                        self.selected = 0;
                        self.offset = 0;
                        self.rows = rows;
                    }
                    Load::Refresh => {
                        self.selected = self.selected.min(rows.len().saturating_sub(1));
                        self.offset = self.offset.min(self.selected);
                        self.rows = rows;
                    }
                    Load::Append => self.rows.extend(rows),
                }
                self.error = None;
            }
            Err(message) => self.error = Some(message),
        }
    }
}
