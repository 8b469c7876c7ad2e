//! The audit screen's keys and answers.

use tui_input::Input;

use crate::domain::AuditEntry;
use crate::tui::effect::{Call, Effect};
use crate::tui::keymap::Action;
use crate::tui::screens::open_key;
use crate::tui::state::{RequestId, State, ToastKind};
use crate::tui::view::layout;

use super::AuditFilter;

/// Rows fetched per page.
pub const PAGE_ROWS: u32 = 100;

/// The audit screen's actions; `None` for those it shares with every screen (help, quit).
pub fn perform(state: &mut State, action: Action) -> Option<Vec<Effect>> {
    let visible = layout::screen_rows(state).max(1) as isize;
    Some(match action {
        Action::Up => move_selection(state, -1),
        Action::Down => move_selection(state, 1),
        Action::PageUp => move_selection(state, -visible),
        Action::PageDown => move_selection(state, visible),
        Action::First => move_selection(state, isize::MIN / 2),
        Action::Refresh => load(state),
        Action::Filter => {
            state.filter_box = Some(Input::new(state.audit.filter.clone()));
            Vec::new()
        }
        Action::Open => match state.audit.selected_entry().map(|entry| entry.api_key_id) {
            Some(Some(key_id)) => open_key(state, key_id),
            Some(None) => {
                state.toast(ToastKind::Info, "This row is not about a key");
                Vec::new()
            }
            None => Vec::new(),
        },
        _ => return None,
    })
}

/// The filter box's keys while the audit screen is open: `Enter` applies it, `Esc` clears it.
pub fn perform_filter(state: &mut State, action: Action) -> Option<Vec<Effect>> {
    let filter = match action {
        Action::ApplyFilter => state.filter_box.take()?.value().trim().to_string(),
        Action::ClearFilter => {
            state.filter_box = None;
            String::new()
        }
        _ => return None,
    };
    state.audit.filter = filter;
    Some(load(state))
}

/// Loads the newest rows, replacing what is loaded.
pub fn load(state: &mut State) -> Vec<Effect> {
    fetch(state, None)
}

fn fetch(state: &mut State, before_id: Option<i64>) -> Vec<Effect> {
    let request = state.next_request();
    state.audit.pending = Some((request, before_id.is_some()));
    let filter = AuditFilter::parse(&state.audit.filter);
    vec![Effect::Call(request, Call::Audit { filter, before_id, limit: PAGE_ROWS })]
}

fn move_selection(state: &mut State, delta: isize) -> Vec<Effect> {
    let screen = &mut state.audit;
    if screen.rows.is_empty() {
        return Vec::new();
    }
    screen.selected = screen.selected.saturating_add_signed(delta).min(screen.rows.len() - 1);
    let visible = layout::screen_rows(state).max(1);
    let screen = &mut state.audit;
    if screen.selected < screen.offset {
        screen.offset = screen.selected;
    } else if screen.selected >= screen.offset + visible {
        screen.offset = screen.selected + 1 - visible;
    }
    // Within a screen of the last loaded row, the next page is fetched.
    let near_end = screen.selected + visible >= screen.rows.len();
    if near_end && !screen.at_end && screen.pending.is_none() {
        let oldest = screen.rows.last().map(|entry| entry.id);
        return fetch(state, oldest);
    }
    Vec::new()
}

pub fn on_loaded(state: &mut State, request: RequestId, result: Result<Vec<AuditEntry>, String>) -> Vec<Effect> {
    let screen = &mut state.audit;
    let Some((_, append)) = screen.pending.filter(|(pending, _)| *pending == request) else {
        return Vec::new(); // a newer load is on its way
    };
    screen.pending = None;
    match result {
        Ok(rows) => {
            screen.at_end = rows.len() < PAGE_ROWS as usize;
            if !append {
                screen.rows.clear();
                screen.selected = 0;
                screen.offset = 0;
            }
            screen.rows.extend(rows);
            screen.error = None;
        }
        Err(message) => screen.error = Some(message),
    }
    Vec::new()
}
