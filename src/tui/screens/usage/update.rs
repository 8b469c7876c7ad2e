//! The usage screen's keys and answers.

use crate::tui::effect::{Call, Effect};
use crate::tui::keymap::Action;
use crate::tui::screens::open_key;
use crate::tui::state::{State, ToastKind, step_range};

use super::{Pane, UsageData};

/// The usage screen's actions; `None` for those it shares with every screen (help, quit).
pub fn perform(state: &mut State, action: Action) -> Option<Vec<Effect>> {
    let screen = &mut state.usage;
    Some(match action {
        Action::Up | Action::Down => {
            let (selected, rows) = match screen.pane {
                Pane::TopKeys => {
                    (&mut screen.selected, screen.data.as_ref().map_or(0, |data| data.top_keys.spenders.len()))
                }
                Pane::Attention => {
                    (&mut screen.attention_selected, screen.data.as_ref().map_or(0, |data| data.concerns().count()))
                }
            };
            *selected = if action == Action::Up { selected.saturating_sub(1) } else { *selected + 1 };
            *selected = (*selected).min(rows.saturating_sub(1));
            Vec::new()
        }
        Action::SwitchPane => {
            screen.pane = match screen.pane {
                Pane::TopKeys => Pane::Attention,
                Pane::Attention => Pane::TopKeys,
            };
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
        Action::Open if screen.pane == Pane::Attention => match screen.selected_concern() {
            Some(concern) => match concern.key_id() {
                Some(key_id) => open_key(state, key_id),
                None => nothing(state, "The sweep deleted this key: there is nothing to open"),
            },
            None => nothing(state, "Nothing needs attention"),
        },
        Action::Open => match screen.selected_key() {
            Some(key_id) => open_key(state, key_id),
            None => nothing(state, "No key selected"),
        },
        _ => return None,
    })
}

fn nothing(state: &mut State, why: &str) -> Vec<Effect> {
    state.toast(ToastKind::Info, why);
    Vec::new()
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
            screen.attention_selected = screen.attention_selected.min(data.concerns().count().saturating_sub(1));
            screen.data = Some(*data);
            screen.error = None;
        }
        Err(message) => screen.error = Some(message),
    }
    Vec::new()
}
