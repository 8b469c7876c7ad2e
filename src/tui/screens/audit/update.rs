//! The audit screen's keys and answers.

use tui_input::Input;

use crate::domain::AuditEntry;
use crate::tui::effect::{Call, Effect};
use crate::tui::keymap::Action;
use crate::tui::screens::pages::{self, Load};
use crate::tui::screens::{filter_text, open_key};
use crate::tui::state::{RequestId, State, ToastKind};
use crate::tui::view::layout;

use super::AuditFilter;

/// Rows fetched per page.
pub const PAGE_ROWS: u32 = 100;
/// The most rows a refresh loads again.
const MAX_REFRESH_ROWS: u32 = 1_000;

/// The audit screen's actions; `None` for those it shares with every screen (help, quit).
pub fn perform(state: &mut State, action: Action) -> Option<Vec<Effect>> {
    if let Some(delta) = pages::step(action, layout::screen_rows(state)) {
        return Some(move_selection(state, delta));
    }
    Some(match action {
        Action::Refresh => load(state),
        Action::Filter => {
            state.filter_box = Some(Input::new(state.audit.filter.clone()));
            Vec::new()
        }
        Action::Open => match state.audit.pages.selected_row().map(|entry| entry.api_key_id) {
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
    state.audit.filter = filter_text(state, action)?;
    Some(load(state))
}

/// Loads the newest rows, replacing what is loaded.
pub fn load(state: &mut State) -> Vec<Effect> {
    fetch(state, Load::Replace, None, PAGE_ROWS)
}

/// Loads the newest rows again, as many as are loaded, keeping the selected row selected where
/// it was on screen.
pub fn refresh(state: &mut State) -> Vec<Effect> {
    let limit = state.audit.pages.refresh_rows(PAGE_ROWS, MAX_REFRESH_ROWS);
    fetch(state, Load::Refresh, None, limit)
}

fn fetch(state: &mut State, load: Load, before_id: Option<i64>, limit: u32) -> Vec<Effect> {
    let request = state.next_request();
    state.audit.pages.start(request, load, limit);
    let filter = AuditFilter::parse(&state.audit.filter);
    vec![Effect::Call(request, Call::Audit { filter, before_id, limit })]
}

fn move_selection(state: &mut State, delta: isize) -> Vec<Effect> {
    let visible = layout::screen_rows(state);
    let pages = &mut state.audit.pages;
    if pages.move_selection(delta, visible) {
        let oldest = pages.rows.last().map(|entry| entry.id);
        return fetch(state, Load::Append, oldest, PAGE_ROWS);
    }
    Vec::new()
}

pub fn on_loaded(state: &mut State, request: RequestId, result: Result<Vec<AuditEntry>, String>) -> Vec<Effect> {
    state.audit.pages.on_loaded(request, result, |entry| entry.id);
    Vec::new()
}
