//! The users screen and the user open from it: their bindings through `update`, their views
//! rendered.

use insta::assert_snapshot;
use ratatui::style::{Color, Modifier};

use crate::domain::User;
use crate::service::NewKeySpec;
use crate::tui::effect::{Call, Effect};
use crate::tui::event::{Outcome, UserWrite};
use crate::tui::fixtures::{loaded_state, session, user_data, user_overviews, user_state, users_state};
use crate::tui::forms::FormKind;
use crate::tui::keymap::Context;
use crate::tui::screens::Tab;
use crate::tui::screens::keys::Screen;
use crate::tui::screens::users::update::PAGE_ROWS;
use crate::tui::state::{Confirmed, Metric, Modal, RequestId, State};
use crate::tui::theme::Theme;

use super::render::{cell_modifiers, draw};
use super::update::{done, only_call, press, toast, top_modal, type_text};

/// The page of users a key press asks for: (request, filter, after, days).
fn users_load(effects: &[Effect]) -> (RequestId, Option<String>, Option<String>, u32) {
    let pages: Vec<Effect> =
        effects.iter().filter(|effect| matches!(effect, Effect::Call(_, Call::Users { .. }))).cloned().collect();
    match only_call(&pages) {
        (request, Call::Users { filter, after, days, limit }) => {
            assert_eq!(limit, PAGE_ROWS);
            (request, filter, after, days)
        }
        (_, other) => panic!("expected a page of users, got {other:?}"),
    }
}

/// The user load among `effects`: (request, name, days).
fn user_load(effects: &[Effect]) -> (RequestId, String, u32) {
    let loads: Vec<Effect> =
        effects.iter().filter(|effect| matches!(effect, Effect::Call(_, Call::User { .. }))).cloned().collect();
    match only_call(&loads) {
        (request, Call::User { name, days }) => (request, name, days),
        (_, other) => panic!("expected a user load, got {other:?}"),
    }
}

fn confirmation(state: &State) -> (&str, &[String], &Confirmed) {
    match top_modal(state) {
        Modal::Confirm(confirm) => (&confirm.title, &confirm.lines, &confirm.action),
        other => panic!("expected a confirmation, got {other:?}"),
    }
}

fn named(name: &str) -> User {
    User { name: name.into(), ..user_overviews()[0].user.clone() }
}

#[test]
fn three_opens_the_users_by_name_with_their_spend() {
    let mut state = loaded_state((100, 30));
    let (request, filter, after, days) = users_load(&press(&mut state, "3"));
    assert_eq!((filter, after, days), (None, None, 30));
    assert_eq!((state.tab, state.context()), (Tab::Users, Context::Users));
    assert!(state.busy());
    done(&mut state, request, Outcome::Users(Ok(user_overviews())));
    assert_eq!(state.users.pages.rows.len(), 4);
    assert!(state.users.pages.at_end, "a short page is the last");
    assert!(!state.busy());
}

#[test]
fn moving_near_the_last_row_loads_the_users_after_it() {
    let mut state = loaded_state((100, 30));
    let (request, ..) = users_load(&press(&mut state, "3"));
    let many: Vec<_> = (0..PAGE_ROWS)
        .map(|index| {
            let mut user = user_overviews()[0].clone();
            user.user.name = format!("user-{index:03}");
            user
        })
        .collect();
    done(&mut state, request, Outcome::Users(Ok(many)));
    assert!(press(&mut state, "j").is_empty(), "far from the end");
    press(&mut state, "k");
    press(&mut state, "pgdn");
    press(&mut state, "pgup");
    assert_eq!(state.users.pages.selected, 0);
    for _ in 0..3 {
        assert!(press(&mut state, "pgdn").is_empty());
    }
    let effects = press(&mut state, "pgdn");
    let (_, _, after, _) = users_load(&effects);
    assert_eq!(after.as_deref(), Some("user-099"));
    press(&mut state, "g");
    assert_eq!((state.users.pages.selected, state.users.pages.offset), (0, 0));
}

#[test]
fn the_filter_applies_on_enter_and_esc_clears_it() {
    let mut state = users_state((100, 30));
    press(&mut state, "/");
    assert!(type_text(&mut state, "3al").is_empty(), "typed, not a screen switch or a reload");
    assert_eq!(state.tab, Tab::Users);
    let (_, filter, after, _) = users_load(&press(&mut state, "enter"));
    assert_eq!((filter.as_deref(), after), (Some("3al"), None));
    press(&mut state, "/");
    let (_, filter, ..) = users_load(&press(&mut state, "esc"));
    assert_eq!(filter, None);
}

#[test]
fn brackets_change_the_range_of_the_spend() {
    let mut state = users_state((100, 30));
    assert_eq!(users_load(&press(&mut state, "[")).3, 7);
    assert_eq!(users_load(&press(&mut state, "]")).3, 30);
    assert_eq!(users_load(&press(&mut state, "]")).3, 90);
    assert_eq!(users_load(&press(&mut state, "r")).3, 90, "r reloads");
}

#[test]
fn n_adds_a_user_through_a_dialog() {
    let mut state = users_state((100, 30));
    press(&mut state, "n");
    assert!(matches!(top_modal(&state), Modal::Form(form) if form.kind == FormKind::AddUser));
    type_text(&mut state, "erin");
    let (request, call) = only_call(&press(&mut state, "enter"));
    assert_eq!(call, Call::AddUser("erin".into()));
    let effects = done(&mut state, request, Outcome::UserWritten(Ok(UserWrite::Added(named("erin")))));
    assert!(state.modals.is_empty(), "the dialog closes");
    assert_eq!(toast(&state), "Added the user erin");
    users_load(&effects);
}

#[test]
fn a_refused_user_keeps_the_dialog_open_and_says_why() {
    let mut state = users_state((100, 30));
    press(&mut state, "n");
    type_text(&mut state, "alice");
    let (request, _) = only_call(&press(&mut state, "enter"));
    let refused = Outcome::UserWritten(Err("a user named \"alice\" already exists".into()));
    assert!(done(&mut state, request, refused).is_empty());
    assert!(matches!(top_modal(&state), Modal::Form(form) if !form.submitting));
    assert_eq!(toast(&state), "a user named \"alice\" already exists");
}

#[test]
fn d_asks_naming_the_active_keys_it_blocks_then_disables_or_enables() {
    let mut state = users_state((100, 30));
    press(&mut state, "d");
    let (title, lines, action) = confirmation(&state);
    assert_eq!(title, "Disable alice? This blocks 25 active keys");
    assert!(lines[0].contains("alice's 25 active keys will be refused"), "{lines:?}");
    assert_eq!(action, &Confirmed::SetUserActive { name: "alice".into(), active: false });
    let (request, call) = only_call(&press(&mut state, "y"));
    assert_eq!(call, Call::SetUserActive { name: "alice".into(), active: false });
    let disabled = User { is_active: false, ..named("alice") };
    let effects = done(&mut state, request, Outcome::UserWritten(Ok(UserWrite::SetActive(disabled))));
    assert_eq!(toast(&state), "Disabled alice");
    users_load(&effects);
    assert!(effects.iter().any(|effect| matches!(effect, Effect::Call(_, Call::CountKeys))), "the counts change");

    press(&mut state, "j");
    press(&mut state, "d");
    assert_eq!(confirmation(&state).0, "Enable bob?");
    let (request, _) = only_call(&press(&mut state, "y"));
    let effects = done(&mut state, request, Outcome::UserWritten(Ok(UserWrite::SetActive(named("bob")))));
    let (request, ..) = users_load(&effects);
    done(&mut state, request, Outcome::Users(Ok(user_overviews())));
    assert_eq!(state.users.pages.selected, 1, "the selection stays on bob's row");
    press(&mut state, "d");
    press(&mut state, "n");
    assert!(state.modals.is_empty(), "n cancels");
}

#[test]
fn enter_opens_the_user_and_esc_goes_back_to_the_users() {
    let mut state = users_state((100, 30));
    press(&mut state, "j");
    let (request, name, days) = user_load(&press(&mut state, "enter"));
    assert_eq!((name.as_str(), days), ("bob", 30));
    assert_eq!(state.context(), Context::User);
    let screen = draw(&state).backend().to_string();
    assert!(screen.contains("User bob") && screen.contains("Loading…"), "{screen}");
    done(&mut state, request, Outcome::User(Ok(Box::new(user_data(30)))));
    assert!(state.users.open.as_ref().unwrap().data.is_some());
    press(&mut state, "esc");
    assert_eq!((state.context(), state.users.pages.selected), (Context::Users, 1));
}

#[test]
fn a_user_that_cannot_be_loaded_says_so() {
    let mut state = users_state((100, 30));
    let (request, ..) = user_load(&press(&mut state, "enter"));
    done(&mut state, request, Outcome::User(Err("no user named \"alice\"".into())));
    let screen = draw(&state).backend().to_string();
    assert!(screen.contains("The user could not be loaded:"), "{screen}");
}

#[test]
fn the_user_chart_cycles_its_metric_and_range() {
    let mut state = user_state((100, 30));
    press(&mut state, "m");
    assert_eq!(state.users.open.as_ref().unwrap().metric, Metric::Requests);
    assert_eq!(user_load(&press(&mut state, "[")).2, 7);
    assert_eq!(user_load(&press(&mut state, "]")).2, 30);
    assert_eq!(user_load(&press(&mut state, "r")).2, 30, "r reloads the user");
}

#[test]
fn enter_on_one_of_the_users_keys_opens_it() {
    let mut state = user_state((100, 30));
    press(&mut state, "k");
    press(&mut state, "j");
    let key = user_data(30).detail.keys[1].clone();
    press(&mut state, "enter");
    assert_eq!((state.tab, state.screen), (Tab::Keys, Screen::Detail));
    assert_eq!(state.list.filter, key.id.to_string());
}

#[test]
fn x_disables_every_enabled_key_of_the_user_after_one_confirmation() {
    let mut state = user_state((100, 30));
    let enabled = user_data(30).enabled_keys();
    press(&mut state, "X");
    let (title, _, action) = confirmation(&state);
    assert_eq!(title, format!("Disable all {enabled} enabled keys of alice?"));
    assert_eq!(action, &Confirmed::DisableUserKeys { name: "alice".into() });
    let (request, call) = only_call(&press(&mut state, "y"));
    assert_eq!(call, Call::DisableUserKeys { name: "alice".into() });
    let disabled = UserWrite::KeysDisabled { name: "alice".into(), count: enabled };
    let effects = done(&mut state, request, Outcome::UserWritten(Ok(disabled)));
    assert_eq!(toast(&state), format!("Disabled {enabled} keys of alice"));
    assert_eq!(user_load(&effects).1, "alice", "the user reloads");
    users_load(&effects);

    let (request, _) = {
        press(&mut state, "X");
        only_call(&press(&mut state, "y"))
    };
    done(&mut state, request, Outcome::UserWritten(Err("database is locked".into())));
    assert_eq!(toast(&state), "database is locked");
}

#[test]
fn three_again_reloads_the_users_and_the_open_user() {
    let mut state = user_state((100, 30));
    press(&mut state, "1");
    let effects = press(&mut state, "3");
    users_load(&effects);
    assert_eq!(user_load(&effects).1, "alice");
}

#[test]
fn the_users_bindings_can_be_rebound() {
    let mut state = user_state((100, 30));
    let overrides = std::collections::BTreeMap::from([("disable_all_keys".to_string(), "ctrl-x".to_string())]);
    state.session.keymap = crate::tui::keymap::Keymap::new(&overrides, false).unwrap();
    press(&mut state, "X");
    assert!(state.modals.is_empty(), "X is no longer bound");
    press(&mut state, "ctrl-x");
    assert!(matches!(confirmation(&state).2, Confirmed::DisableUserKeys { .. }));
    let hints = draw(&state).backend().to_string();
    assert!(hints.contains("y yes"), "{hints}");
    press(&mut state, "esc");
    assert!(draw(&state).backend().to_string().contains("Ctrl-x disable keys"), "the hints follow the keymap");
}

#[test]
fn d_in_the_user_asks_about_the_user() {
    let mut state = user_state((100, 30));
    press(&mut state, "d");
    assert_eq!(confirmation(&state).0, "Disable alice? This blocks 25 active keys");
}

#[test]
fn a_read_only_session_refuses_every_change_to_users() {
    let mut state = user_state((100, 30));
    state.session = session(true, Theme::mono());
    for key in ["X", "d"] {
        press(&mut state, key);
        assert!(state.modals.is_empty(), "{key}");
        assert!(toast(&state).starts_with("Read-only session"), "{key}");
    }
    press(&mut state, "esc");
    press(&mut state, "n");
    assert!(state.modals.is_empty());
}

#[test]
fn help_lists_the_users_bindings_and_quit_works() {
    let mut state = users_state((100, 40));
    press(&mut state, "?");
    let screen = draw(&state).backend().to_string();
    assert!(screen.contains("Add a user") && screen.contains("Show the users"), "{screen}");
    press(&mut state, "esc");
    press(&mut state, "enter");
    press(&mut state, "?");
    let screen = draw(&state).backend().to_string();
    assert!(screen.contains("Disable all of this user's keys at once"), "{screen}");
    press(&mut state, "esc");
    press(&mut state, "esc");
    press(&mut state, "q");
    assert!(state.quit);
}

#[test]
fn a_create_dialog_naming_a_new_owner_asks_before_adding_them() {
    let mut state = loaded_state((100, 30));
    press(&mut state, "n");
    let spec = Box::new(NewKeySpec::new("zoe"));
    let effects = done(&mut state, RequestId(99), Outcome::OwnerMissing(spec.clone()));
    assert!(effects.is_empty());
    let (title, lines, action) = confirmation(&state);
    assert_eq!(title, "Create the user zoe too?");
    assert!(lines[0].contains("no user named zoe"), "{lines:?}");
    assert_eq!(action, &Confirmed::CreateWithOwner(spec.clone()));
    let (_, call) = only_call(&press(&mut state, "y"));
    assert_eq!(call, Call::CreateWithOwner(spec));
    assert!(matches!(top_modal(&state), Modal::Form(form) if form.submitting), "the dialog waits underneath");
}

#[test]
fn users_screen_snapshots() {
    for size in [(80, 24), (120, 32)] {
        assert_snapshot!(format!("users_{}x{}", size.0, size.1), draw(&users_state(size)).backend());
        assert_snapshot!(format!("user_{}x{}", size.0, size.1), draw(&user_state(size)).backend());
    }
    let mut confirm = user_state((80, 24));
    press(&mut confirm, "X");
    assert_snapshot!("user_disable_all_80x24", draw(&confirm).backend());
}

/// NO_COLOR: no colour anywhere, the selected rows and the disabled user still marked.
#[test]
fn the_users_screens_in_the_mono_theme() {
    let mut users = users_state((120, 32));
    let mut user = user_state((120, 32));
    for state in [&mut users, &mut user] {
        state.session.theme = Theme::mono();
        let terminal = draw(state);
        for cell in terminal.backend().buffer().content() {
            assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "no colour anywhere");
        }
    }
    let terminal = draw(&users);
    assert!(cell_modifiers(terminal.backend().buffer(), "alice").contains(Modifier::REVERSED));
    assert_snapshot!("users_no_color_120x32", terminal.backend());
    let terminal = draw(&user);
    assert!(cell_modifiers(terminal.backend().buffer(), "ci-key").contains(Modifier::REVERSED));
    assert_snapshot!("user_no_color_120x32", terminal.backend());
}
