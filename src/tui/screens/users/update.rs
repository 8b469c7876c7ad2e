//! The users screen's keys and answers, and the open user's.

use tui_input::Input;

use crate::domain::UserOverview;
use crate::domain::text::sanitize;
use crate::service::keys_word;
use crate::tui::effect::{Call, Effect};
use crate::tui::event::UserWrite;
use crate::tui::forms::Form;
use crate::tui::keymap::Action;
use crate::tui::screens::pages::{self, Load};
use crate::tui::screens::{filter_text, open_key};
use crate::tui::state::{Confirmed, Modal, RequestId, State, ToastKind, step_range};
use crate::tui::update::{self, after_write, confirm};
use crate::tui::view::layout;

use super::{UserData, UserView};

/// Users fetched per page.
pub const PAGE_ROWS: u32 = 100;

/// The users list's actions; `None` for those it shares with every screen (help, quit).
pub fn perform(state: &mut State, action: Action) -> Option<Vec<Effect>> {
    if let Some(delta) = pages::step(action, layout::screen_rows(state)) {
        return Some(move_selection(state, delta));
    }
    Some(match action {
        Action::Refresh => load(state),
        Action::Filter => {
            state.filter_box = Some(Input::new(state.users.filter.clone()));
            Vec::new()
        }
        Action::Create => {
            state.modals.push(Modal::Form(Form::add_user()));
            Vec::new()
        }
        Action::ShorterRange | Action::LongerRange => {
            state.users.days = step_range(state.users.days, action == Action::LongerRange);
            load(state)
        }
        Action::ToggleActive => with_selected_user(state, confirm_toggle),
        Action::Open => with_selected_user(state, |state, user| {
            state.users.open = Some(UserView::new(user.user.name));
            load_user(state)
        }),
        _ => return None,
    })
}

/// The open user's actions; `None` for the shared ones, or when no user is open.
pub fn perform_on_user(state: &mut State, action: Action) -> Option<Vec<Effect>> {
    let user = state.users.open.as_mut()?;
    let keys = user.data.as_ref().map_or(0, |data| data.detail.keys.len());
    Some(match action {
        Action::Back => {
            state.users.open = None;
            Vec::new()
        }
        Action::Up => {
            user.selected = user.selected.saturating_sub(1);
            Vec::new()
        }
        Action::Down => {
            user.selected = (user.selected + 1).min(keys.saturating_sub(1));
            Vec::new()
        }
        Action::CycleMetric => {
            user.metric = user.metric.next();
            Vec::new()
        }
        Action::ShorterRange | Action::LongerRange => {
            state.users.days = step_range(state.users.days, action == Action::LongerRange);
            load_user(state)
        }
        Action::Refresh => load_user(state),
        Action::Open => {
            let key = user.data.as_ref().and_then(|data| data.detail.keys.get(user.selected)).map(|key| key.id);
            match key {
                Some(key_id) => open_key(state, key_id),
                None => nothing(state, "No key selected"),
            }
        }
        Action::ToggleActive => match user.data.as_ref().map(|data| data.detail.overview.clone()) {
            Some(overview) => confirm_toggle(state, overview),
            None => nothing(state, "The user is still loading"),
        },
        Action::DisableAllKeys => match user.data.clone() {
            Some(data) => confirm_disable_all(state, &data),
            None => nothing(state, "The user is still loading"),
        },
        _ => return None,
    })
}

/// The filter box's keys while the users screen is open: `Enter` applies it, `Esc` clears it.
pub fn perform_filter(state: &mut State, action: Action) -> Option<Vec<Effect>> {
    state.users.filter = filter_text(state, action)?;
    Some(load(state))
}

fn nothing(state: &mut State, why: &str) -> Vec<Effect> {
    state.toast(ToastKind::Info, why);
    Vec::new()
}

fn with_selected_user(state: &mut State, then: impl FnOnce(&mut State, UserOverview) -> Vec<Effect>) -> Vec<Effect> {
    match state.users.pages.selected_row().cloned() {
        Some(user) => then(state, user),
        None => nothing(state, "No user selected"),
    }
}

/// Asks before disabling or enabling a user, saying how many usable keys that blocks or lets
/// through again.
fn confirm_toggle(state: &mut State, overview: UserOverview) -> Vec<Effect> {
    let name = sanitize(&overview.user.name).into_owned();
    let active = !overview.user.is_active;
    let keys = match overview.active_keys {
        0 => "no active key".to_string(),
        1 => "1 active key".to_string(),
        count => format!("{count} active keys"),
    };
    let (title, lines) = if active {
        (format!("Enable {name}?"), vec![format!("Requests with {name}'s {keys} will be accepted again.")])
    } else {
        (
            format!("Disable {name}? This blocks {keys}"),
            vec![
                format!("Requests with {name}'s {keys} will be refused until {name} is enabled again."),
                "Nothing is deleted; each key keeps its own state.".into(),
            ],
        )
    };
    confirm(state, title, lines, Confirmed::SetUserActive { name: overview.user.name, active })
}

fn confirm_disable_all(state: &mut State, data: &UserData) -> Vec<Effect> {
    let user = &data.detail.overview.user;
    let name = sanitize(&user.name).into_owned();
    let count = data.enabled_keys();
    if count == 0 {
        return nothing(state, &format!("{name} has no enabled key"));
    }
    let keys = if count == 1 { "its 1 enabled key".to_string() } else { format!("all {count} enabled keys") };
    let lines = vec![
        format!("Requests with {name}'s keys will be refused. Each key gets its own audit row."),
        "All of them are disabled, or none if anything fails. The user stays enabled.".into(),
    ];
    confirm(state, format!("Disable {keys} of {name}?"), lines, Confirmed::DisableUserKeys { name: user.name.clone() })
}

/// Loads the first page of users for the filter and range, replacing what is loaded.
pub fn load(state: &mut State) -> Vec<Effect> {
    fetch(state, Load::Replace, None)
}

/// Loads the first page again and the open user, the selected user staying selected: after a
/// change here or elsewhere.
pub fn refresh(state: &mut State) -> Vec<Effect> {
    let mut effects = fetch(state, Load::Refresh, None);
    effects.extend(load_user(state));
    effects
}

fn fetch(state: &mut State, load: Load, after: Option<String>) -> Vec<Effect> {
    let request = state.next_request();
    let screen = &mut state.users;
    screen.pages.start(request, load, PAGE_ROWS);
    let filter = Some(screen.filter.clone()).filter(|filter| !filter.is_empty());
    vec![Effect::Call(request, Call::Users { filter, after, days: screen.days, limit: PAGE_ROWS })]
}

fn move_selection(state: &mut State, delta: isize) -> Vec<Effect> {
    let visible = layout::screen_rows(state);
    let pages = &mut state.users.pages;
    if pages.move_selection(delta, visible) {
        let last = pages.rows.last().map(|user| user.user.name.clone());
        return fetch(state, Load::Append, last);
    }
    Vec::new()
}

/// Loads the open user for the range.
pub fn load_user(state: &mut State) -> Vec<Effect> {
    let request = state.next_request();
    let days = state.users.days;
    let Some(user) = state.users.open.as_mut() else { return Vec::new() };
    user.pending = Some(request);
    vec![Effect::Call(request, Call::User { name: user.name.clone(), days })]
}

pub fn on_loaded(state: &mut State, request: RequestId, result: Result<Vec<UserOverview>, String>) -> Vec<Effect> {
    state.users.pages.on_loaded(request, result, |overview| overview.user.id);
    Vec::new()
}

pub fn on_user_loaded(state: &mut State, request: RequestId, result: Result<Box<UserData>, String>) -> Vec<Effect> {
    let Some(user) = state.users.open.as_mut().filter(|user| user.pending == Some(request)) else {
        return Vec::new(); // a newer load is on its way, or the user was closed
    };
    user.pending = None;
    match result {
        Ok(data) => {
            user.selected = user.selected.min(data.detail.keys.len().saturating_sub(1));
            user.data = Some(*data);
            user.error = None;
        }
        Err(message) => user.error = Some(message),
    }
    Vec::new()
}

/// After a user was added, disabled or enabled, or had their keys disabled: says what was done
/// and reloads what shows it (the users, the open user, the key list and counts).
pub fn on_written(state: &mut State, result: Result<UserWrite, String>) -> Vec<Effect> {
    after_write(state, result, |state, write| {
        let text = match write {
            UserWrite::Added(user) => format!("Added the user {}", sanitize(&user.name)),
            UserWrite::SetActive(user) => {
                let state = if user.is_active { "Enabled" } else { "Disabled" };
                format!("{state} {}", sanitize(&user.name))
            }
            UserWrite::KeysDisabled { name, count } => {
                format!("Disabled {count} {} of {}", keys_word(count), sanitize(&name))
            }
        };
        state.toast(ToastKind::Info, text);
        // The users screen reloads with everything else on screen.
        update::refresh(state)
    })
}
