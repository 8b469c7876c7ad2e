//! The audit screen's keys and answers.

use tui_input::Input;

use crate::domain::AuditEntry;
use crate::tui::effect::{Call, Effect};
use crate::tui::keymap::Action;
use crate::tui::screens::open_key;
use crate::tui::state::{RequestId, State, ToastKind};
use crate::tui::view::layout;

use super::state::Fetch;
use super::{AuditFilter, AuditScreen};

/// Rows fetched per page.
pub const PAGE_ROWS: u32 = 100;
/// The most rows a refresh loads again; an admin scrolled further back starts over at the newest.
const MAX_REFRESH_ROWS: u32 = 1_000;

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
    fetch(state, Fetch::Replace, None, PAGE_ROWS)
}

/// Loads the newest rows again, as many as are loaded (up to [`MAX_REFRESH_ROWS`]), keeping the
/// selected row selected, where it was on screen.
pub fn refresh(state: &mut State) -> Vec<Effect> {
    let limit = refresh_rows(&state.audit);
    fetch(state, Fetch::Refresh, None, limit)
}

fn refresh_rows(screen: &AuditScreen) -> u32 {
    u32::try_from(screen.rows.len()).unwrap_or(u32::MAX).clamp(PAGE_ROWS, MAX_REFRESH_ROWS)
}

fn fetch(state: &mut State, kind: Fetch, before_id: Option<i64>, limit: u32) -> Vec<Effect> {
    let request = state.next_request();
    state.audit.pending = Some((request, kind));
    let filter = AuditFilter::parse(&state.audit.filter);
    vec![Effect::Call(request, Call::Audit { filter, before_id, limit })]
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
        return fetch(state, Fetch::Append, oldest, PAGE_ROWS);
    }
    Vec::new()
}

pub fn on_loaded(state: &mut State, request: RequestId, result: Result<Vec<AuditEntry>, String>) -> Vec<Effect> {
    let screen = &mut state.audit;
    let Some((_, kind)) = screen.pending.filter(|(pending, _)| *pending == request) else {
        return Vec::new(); // a newer load is on its way
    };
    screen.pending = None;
    match result {
        Ok(rows) => {
            let asked = match kind {
                Fetch::Refresh => refresh_rows(screen),
                Fetch::Replace | Fetch::Append => PAGE_ROWS,
            };
            screen.at_end = rows.len() < asked as usize;
            let selected_id = screen.selected_entry().map(|entry| entry.id);
            let row_on_screen = screen.selected.saturating_sub(screen.offset);
            if kind != Fetch::Append {
                screen.rows.clear();
                screen.selected = 0;
                screen.offset = 0;
            }
            screen.rows.extend(rows);
            if kind == Fetch::Refresh {
                let found = screen.rows.iter().position(|entry| Some(entry.id) == selected_id);
                screen.selected = found.unwrap_or(0);
                screen.offset = screen.selected.saturating_sub(row_on_screen);
            }
            screen.error = None;
        }
        Err(message) => screen.error = Some(message),
    }
    Vec::new()
}
