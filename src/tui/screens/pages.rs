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
    /// Replace the rows, the selected row staying selected where it was on screen (after a
    /// change elsewhere); by its number when it is gone.
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
    /// The load in flight, where its rows go and how many it asked for.
    pub pending: Option<(RequestId, Load, u32)>,
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

    /// Notes load `request`, of at most `limit` rows; fewer means the last row is loaded.
    pub fn start(&mut self, request: RequestId, load: Load, limit: u32) {
        self.pending = Some((request, load, limit));
    }

    /// How many rows a refresh asks for: as many as are loaded, at least `page_rows`, at most
    /// `most` (an admin scrolled further back starts over at the first row).
    pub fn refresh_rows(&self, page_rows: u32, most: u32) -> u32 {
        u32::try_from(self.rows.len()).unwrap_or(u32::MAX).clamp(page_rows, most)
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

    /// Takes the answer to load `request`; an answer to an older load is dropped. `identity`
    /// tells which new row is the selected one after a refresh.
    pub fn on_loaded<K: PartialEq>(
        &mut self,
        request: RequestId,
        result: Result<Vec<T>, String>,
        identity: impl Fn(&T) -> K,
    ) {
        let Some((_, load, limit)) = self.pending.filter(|(pending, ..)| *pending == request) else { return };
        self.pending = None;
        match result {
            Ok(rows) => {
                self.at_end = rows.len() < limit as usize;
                match load {
                    Load::Replace => {
                        self.selected = 0;
                        self.offset = 0;
                        self.rows = rows;
                    }
                    Load::Refresh => {
                        let selected = self.selected_row().map(&identity);
                        let row_on_screen = self.selected.saturating_sub(self.offset);
                        let found = rows.iter().position(|row| Some(identity(row)) == selected);
                        self.selected = found.unwrap_or(self.selected).min(rows.len().saturating_sub(1));
                        self.offset = self.selected.saturating_sub(row_on_screen);
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
