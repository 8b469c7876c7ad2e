//! The screens, one module each (state, update, view), and what they share: which screen is
//! open, switching between them, the tab bar.
//!
//! The shared `update` takes the actions every screen has (help, quit, dialogs, refresh) and
//! hands the rest to the open screen: [`perform`] for the usage, users and audit screens, then
//! the keys screen's own [`keys::update::perform`]. The shared `view` draws the title, status
//! and dialogs around the open screen's [`render`].

pub mod audit;
pub mod keys;
pub mod pages;
pub mod usage;
pub mod users;

use ratatui::Frame;

use ratatui::text::Span;

use super::effect::Effect;
use super::keymap::{Action, Context};
use super::state::State;
use super::view::layout::Areas;
use crate::domain::KeyScope;
use keys::update::{load_detail, reload_from_start};
use keys::{Focus, Screen};
use uuid::Uuid;

/// The screen open, as the tab bar names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tab {
    #[default]
    Keys,
    Usage,
    Users,
    Audit,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Keys, Tab::Usage, Tab::Users, Tab::Audit];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Keys => "Keys",
            Tab::Usage => "Usage",
            Tab::Users => "Users",
            Tab::Audit => "Audit",
        }
    }

    /// The keymap context of the screen; `None` for the keys screen, whose context depends on
    /// whether a key is open.
    pub fn context(self) -> Option<Context> {
        match self {
            Tab::Keys => None,
            Tab::Usage => Some(Context::Usage),
            Tab::Users => Some(Context::Users),
            Tab::Audit => Some(Context::Audit),
        }
    }
}

/// The actions of the screens other than the keys screen. `None` leaves the action to the
/// actions every screen shares (help, quit, switching screens), then to the keys screen's.
pub fn perform(state: &mut State, context: Context, action: Action) -> Option<Vec<Effect>> {
    match context {
        Context::Usage => usage::update::perform(state, action),
        Context::Users => users::update::perform(state, action),
        Context::User => users::update::perform_on_user(state, action),
        Context::Audit => audit::update::perform(state, action),
        Context::Filter if state.tab == Tab::Users => users::update::perform_filter(state, action),
        Context::Filter if state.tab == Tab::Audit => audit::update::perform_filter(state, action),
        _ => None,
    }
}

/// The filter box's keys on the screens whose filter applies on `Enter`: the text to filter
/// by (empty once `Esc` cleared it), with the box closed; `None` for other keys.
pub fn filter_text(state: &mut State, action: Action) -> Option<String> {
    match action {
        Action::ApplyFilter => Some(state.filter_box.take()?.value().trim().to_string()),
        Action::ClearFilter => {
            state.filter_box = None;
            Some(String::new())
        }
        _ => None,
    }
}

/// Opens a screen, loading it the first time and whenever it is opened again.
pub fn open(state: &mut State, tab: Tab) -> Vec<Effect> {
    state.tab = tab;
    match tab {
        Tab::Keys => Vec::new(),
        Tab::Usage => usage::update::load(state),
        Tab::Users => {
            let mut effects = users::update::load(state);
            effects.extend(users::update::load_user(state));
            effects
        }
        Tab::Audit => audit::update::load(state),
    }
}

/// Opens a key's detail on the keys screen, from any other screen. The key may be anywhere in
/// the list (or outside its scope), so the list is filtered to the key's id, which the filter
/// box then shows; actions wait until that reload has selected the key.
pub fn open_key(state: &mut State, key_id: Uuid) -> Vec<Effect> {
    state.tab = Tab::Keys;
    state.screen = Screen::Detail;
    state.list.scope = KeyScope::All;
    state.list.filter = key_id.to_string();
    let already_selected = state.list.selected_key().is_some_and(|key| key.id == key_id);
    let mut effects = reload_from_start(state, Focus::Key(key_id));
    // Otherwise the detail loads when the reload moves the selection onto the key.
    if already_selected {
        effects.extend(load_detail(state));
    }
    effects
}

/// Draws the open screen's body: the keys screen in its list and detail areas, the others in
/// the whole body.
pub fn render(frame: &mut Frame, state: &State, areas: &Areas) {
    match state.tab {
        Tab::Keys => keys::view::render(frame, state, areas),
        Tab::Usage => usage::view::render(frame, state, areas.body),
        Tab::Users => users::view::render(frame, state, areas.body),
        Tab::Audit => audit::view::render(frame, state, areas.body),
    }
}

/// The tab bar: each screen with the key that opens it, the open one in brackets (and
/// highlighted), so it reads without colour too.
pub fn tab_bar(state: &State) -> Vec<Span<'static>> {
    let theme = &state.session.theme;
    let keymap = &state.session.keymap;
    Tab::ALL
        .into_iter()
        .flat_map(|tab| {
            let key =
                keymap.key_for(Context::Screens, Action::Show(tab)).map(|key| key.to_string()).unwrap_or_default();
            let label = format!("{key} {}", tab.title());
            let tab = if tab == state.tab {
                Span::styled(format!("[{label}]"), theme.selected)
            } else {
                Span::styled(format!(" {label} "), theme.muted)
            };
            [tab, Span::raw(" ")]
        })
        .collect()
}
