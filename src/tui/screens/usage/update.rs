//! The usage screen's keys and answers.

use crate::tui::effect::{Call, Effect};
use crate::tui::keymap::Action;
use crate::tui::screens::open_key;
use crate::tui::state::{State, ToastKind, step_range};

use super::UsageData;

/// The usage screen's actions; `None` for those it shares with every screen (help, quit).
pub fn perform(state: &mut State, action: Action) -> Option<Vec<Effect>> {
    let screen = &mut state.usage;
    Some(match action {
        Action::Up => {
            screen.selected = screen.selected.saturating_sub(1);
            Vec::new()
        }
        Action::Down => {
            let rows = screen.data.as_ref().map_or(0, |data| data.top_keys.spenders.len());
            screen.selected = (screen.selected + 1).min(rows.saturating_sub(1));
            Vec::new()
        }
        Action::CycleMetric => {
            screen.metric = screen.metric.next();
            Vec::new()
        }
        Action::ShorterRange | Action::LongerRange => {
            screen.days = step_range(screen.days, action == Action::LongerRange);
            load(state)
        }
        Action::Refresh => load(state),
        Action::Open => match screen.selected_key() {
            Some(key_id) => open_key(state, key_id),
            None => {
                state.toast(ToastKind::Info, "No key selected");
                Vec::new()
            }
        },
        _ => return None,
    })
}

/// Loads the screen for its range.
pub fn load(state: &mut State) -> Vec<Effect> {
    let request = state.next_request();
    state.usage.pending = Some(request);
    vec![Effect::Call(request, Call::Usage { days: state.usage.days })]
}

pub fn on_loaded(
    state: &mut State,
    request: crate::tui::state::RequestId,
    result: Result<Box<UsageData>, String>,
) -> Vec<Effect> {
    let screen = &mut state.usage;
    if screen.pending != Some(request) {
        return Vec::new(); // a newer load is on its way
    }
    screen.pending = None;
    match result {
        Ok(data) => {
            screen.selected = screen.selected.min(data.top_keys.spenders.len().saturating_sub(1));
            screen.data = Some(*data);
            screen.error = None;
        }
        Err(message) => screen.error = Some(message),
    }
    Vec::new()
}
