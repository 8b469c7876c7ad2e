//! The key list's window: a few pages of a list that may hold a million keys, moved with keyset
//! paging as the selection nears an edge. Nothing here knows how pages are fetched.
//!
//! - Moving down past the loaded rows fetches `After(last row)`; up fetches `Before(first row)`.
//!   The window keeps at most [`MAX_PAGES`] pages, dropping rows from the far side.
//! - `G` (last) fetches the *flipped* order from the start and reverses it: the end of the list
//!   is the start of the opposite order, with no offset and no count.
//! - Backward fetches ask for one row more than they show: that extra row is the `anchor`, the row
//!   just before the window, so a refresh can reload the window in place with `After(anchor)`.

use uuid::Uuid;

use crate::domain::{ApiKey, PageFrom};

/// Rows kept at most, in pages.
pub const MAX_PAGES: usize = 3;

/// Where a fetched page goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Replace the window with rows from `from` on (first load, refresh, new filter or sort).
    Reload,
    /// Rows after the window.
    Append,
    /// Rows before the window (fetched with one extra row, the new anchor).
    Prepend,
    /// The last rows of the list, fetched in the flipped order (one extra row, the anchor).
    End,
}

impl Placement {
    /// Whether the page is fetched with one row more than it shows.
    fn fetches_anchor(self) -> bool {
        matches!(self, Placement::Prepend | Placement::End)
    }
}

/// What to fetch for a placement: cursor, row count and whether the order is flipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub from: PageFrom,
    pub limit: u32,
    pub flipped: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub rows: Vec<ApiKey>,
    /// The row just before `rows[0]` in list order; `None` at the start or when unknown.
    pub anchor: Option<Uuid>,
    pub at_start: bool,
    pub at_end: bool,
}

impl Window {
    pub fn request(&self, placement: Placement, page_size: usize) -> PageRequest {
        let page = page_size as u32;
        match placement {
            Placement::Reload => PageRequest {
                from: self.anchor.map_or(PageFrom::Start, PageFrom::After),
                limit: page.max(self.rows.len() as u32),
                flipped: false,
            },
            Placement::Append => PageRequest {
                from: self.rows.last().map_or(PageFrom::Start, |row| PageFrom::After(row.id)),
                limit: page,
                flipped: false,
            },
            Placement::Prepend => PageRequest {
                from: self.rows.first().map_or(PageFrom::Start, |row| PageFrom::Before(row.id)),
                limit: page + 1,
                flipped: false,
            },
            Placement::End => PageRequest { from: PageFrom::Start, limit: page + 1, flipped: true },
        }
    }

    /// Puts a fetched page in place. Returns how far existing rows moved (to shift the selection
    /// by): positive when rows were added in front, negative when rows were dropped in front.
    pub fn apply(&mut self, placement: Placement, mut page: Vec<ApiKey>, request: PageRequest) -> isize {
        let full = page.len() >= request.limit as usize;
        let cap = MAX_PAGES * request.limit.max(1) as usize;
        if request.flipped {
            page.reverse();
        }
        let anchor = if placement.fetches_anchor() && full { Some(page.remove(0).id) } else { None };
        match placement {
            Placement::Reload => {
                self.rows = page;
                self.at_start = self.anchor.is_none();
                self.at_end = !full;
                0
            }
            Placement::Append => {
                self.rows.extend(page);
                self.at_end = !full;
                let excess = self.rows.len().saturating_sub(cap);
                if excess > 0 {
                    self.anchor = Some(self.rows[excess - 1].id);
                    self.rows.drain(..excess);
                    self.at_start = false;
                }
                -(excess as isize)
            }
            Placement::Prepend => {
                let added = page.len();
                self.anchor = anchor;
                self.at_start = !full;
                page.append(&mut self.rows);
                self.rows = page;
                if self.rows.len() > cap {
                    self.rows.truncate(cap);
                    self.at_end = false;
                }
                added as isize
            }
            Placement::End => {
                self.rows = page;
                self.anchor = anchor;
                self.at_start = !full;
                self.at_end = true;
                0
            }
        }
    }

    /// Forgets the position: the next reload starts at the top (new filter, scope or sort).
    pub fn rewind(&mut self) {
        self.anchor = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixtures::key_named;

    fn keys(range: std::ops::Range<usize>) -> Vec<ApiKey> {
        range.map(|i| key_named(i, &format!("key-{i:03}"))).collect()
    }

    fn names(window: &Window) -> Vec<String> {
        window.rows.iter().map(|k| k.name.clone()).collect()
    }

    #[test]
    fn appending_past_the_cap_drops_rows_in_front_and_remembers_the_anchor() {
        let mut window = Window::default();
        let first = window.request(Placement::Reload, 2);
        assert_eq!(first.from, PageFrom::Start);
        window.apply(Placement::Reload, keys(0..2), first);
        assert!(window.at_start && !window.at_end);
        for start in [2, 4] {
            let request = window.request(Placement::Append, 2);
            assert_eq!(request.from, PageFrom::After(window.rows.last().unwrap().id));
            window.apply(Placement::Append, keys(start..start + 2), request);
        }
        assert_eq!(window.rows.len(), 6);
        let request = window.request(Placement::Append, 2);
        let shift = window.apply(Placement::Append, keys(6..7), request);
        assert_eq!(shift, -1);
        assert_eq!(names(&window).first().unwrap(), "key-001");
        assert_eq!(window.anchor, Some(key_named(0, "").id));
        assert!(window.at_end && !window.at_start);
        // A refresh reloads in place, from just after the anchor.
        assert_eq!(window.request(Placement::Reload, 2).from, PageFrom::After(key_named(0, "").id));
    }

    #[test]
    fn prepending_uses_the_extra_row_as_anchor_and_detects_the_start() {
        let mut window =
            Window { rows: keys(10..12), anchor: Some(key_named(9, "").id), at_start: false, at_end: true };
        let request = window.request(Placement::Prepend, 2);
        assert_eq!((request.from, request.limit), (PageFrom::Before(key_named(10, "").id), 3));
        assert_eq!(window.apply(Placement::Prepend, keys(7..10), request), 2);
        assert_eq!(names(&window), ["key-008", "key-009", "key-010", "key-011"]);
        assert_eq!(window.anchor, Some(key_named(7, "").id));
        assert!(!window.at_start);
        let request = window.request(Placement::Prepend, 2);
        assert_eq!(window.apply(Placement::Prepend, keys(7..8), request), 1);
        assert!(window.at_start && window.anchor.is_none());
    }

    #[test]
    fn the_end_is_the_start_of_the_flipped_order() {
        let mut window = Window::default();
        let request = window.request(Placement::End, 2);
        assert!(request.flipped && request.from == PageFrom::Start);
        let flipped: Vec<ApiKey> = keys(97..100).into_iter().rev().collect();
        window.apply(Placement::End, flipped, request);
        assert_eq!(names(&window), ["key-098", "key-099"]);
        assert_eq!(window.anchor, Some(key_named(97, "").id));
        assert!(window.at_end && !window.at_start);
    }
}
