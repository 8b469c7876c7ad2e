//! What the screens' tables share: the selection's mark and style, kept in one place so that
//! every table reads alike.

use ratatui::layout::Constraint;
use ratatui::widgets::{Block, HighlightSpacing, Row, Table};

use crate::tui::state::State;

/// The mark of the selected row, as in the key list.
pub const HIGHLIGHT: &str = "▶ ";

/// A table whose selected row is marked, with room for the mark on every row.
pub fn selectable<'a>(
    state: &State,
    rows: impl IntoIterator<Item = Row<'a>>,
    widths: impl IntoIterator<Item = Constraint>,
    header: Row<'a>,
    block: Block<'a>,
) -> Table<'a> {
    Table::new(rows, widths)
        .header(header.style(state.session.theme.header))
        .block(block)
        .row_highlight_style(state.session.theme.selected)
        .highlight_symbol(HIGHLIGHT)
        .highlight_spacing(HighlightSpacing::Always)
}
