//! The usage screen and switching screens: its bindings through `update`, its views rendered.

use insta::assert_snapshot;
use ratatui::style::{Color, Modifier};

use crate::domain::KeyScope;
use crate::tui::effect::{Call, Effect};
use crate::tui::event::Outcome;
use crate::tui::fixtures::{loaded_state, prepaid_key, usage_data, usage_state, user_key};
use crate::tui::keymap::Context;
use crate::tui::screens::Tab;
use crate::tui::screens::keys::Screen;
use crate::tui::screens::usage::Pane;
use crate::tui::state::{Metric, Modal, RequestId, State};
use crate::tui::theme::Theme;

use super::render::{cell_modifiers, draw};
use super::update::{done, list_query, only_call, press, toast};

/// Presses `key` and returns the usage load it starts, with its range.
fn usage_load(state: &mut State, key: &str) -> (RequestId, u32) {
    match only_call(&press(state, key)) {
        (request, Call::Usage { days }) => (request, days),
        (_, other) => panic!("expected the usage load, got {other:?}"),
    }
}

#[test]
fn two_opens_the_usage_screen_and_loads_it_and_one_goes_back_to_the_keys() {
    let mut state = loaded_state((100, 30));
    let (request, days) = usage_load(&mut state, "2");
    assert_eq!((state.tab, days), (Tab::Usage, 30));
    assert_eq!(state.context(), Context::Usage);
    assert!(state.busy());
    done(&mut state, request, Outcome::Usage(Ok(Box::new(usage_data(30)))));
    assert!(!state.busy());
    assert!(state.usage.data.is_some());

    assert!(press(&mut state, "1").is_empty(), "the key list is kept, not reloaded");
    assert_eq!((state.tab, state.context()), (Tab::Keys, Context::List));
}

#[test]
fn screens_switch_from_the_key_detail_too_but_not_from_a_text_box() {
    let mut state = loaded_state((100, 30));
    state.screen = Screen::Detail;
    usage_load(&mut state, "2");
    press(&mut state, "1");
    assert_eq!((state.tab, state.context()), (Tab::Keys, Context::Detail));

    press(&mut state, "esc");
    press(&mut state, "/");
    press(&mut state, "2");
    assert_eq!(state.tab, Tab::Keys, "typed into the filter");
    assert_eq!(state.filter_box.as_ref().unwrap().value(), "2");
}

#[test]
fn an_answer_to_an_older_load_is_dropped() {
    let mut state = loaded_state((100, 30));
    let (first, _) = usage_load(&mut state, "2");
    let (second, days) = usage_load(&mut state, "]");
    assert_eq!(days, 90);
    done(&mut state, first, Outcome::Usage(Ok(Box::new(usage_data(30)))));
    assert!(state.usage.data.is_none() && state.busy());
    done(&mut state, second, Outcome::Usage(Ok(Box::new(usage_data(90)))));
    assert_eq!(state.usage.data.as_ref().unwrap().fleet.usage.days, 90);
}

#[test]
fn a_failed_load_is_shown_on_the_screen() {
    let mut state = loaded_state((100, 30));
    let (request, _) = usage_load(&mut state, "2");
    done(&mut state, request, Outcome::Usage(Err("database is locked".into())));
    assert_eq!(state.usage.error.as_deref(), Some("database is locked"));
    let screen = draw(&state).backend().to_string();
    assert!(screen.contains("database is locked"), "{screen}");
}

#[test]
fn m_cycles_the_metric_and_brackets_change_the_range_and_reload() {
    let mut state = usage_state((100, 30));
    assert_eq!(state.usage.metric, Metric::Cost);
    assert!(press(&mut state, "m").is_empty());
    assert_eq!(state.usage.metric, Metric::Requests);
    assert_eq!(usage_load(&mut state, "[").1, 7);
    assert_eq!(usage_load(&mut state, "[").1, 7, "7 days is the shortest");
    assert_eq!(usage_load(&mut state, "]").1, 30);
    assert_eq!(usage_load(&mut state, "]").1, 90);
    assert_eq!(usage_load(&mut state, "]").1, 90, "90 days is the longest");
    assert_eq!(usage_load(&mut state, "r").1, 90, "refresh keeps the range");
    assert_eq!(state.detail.metric, Metric::Cost, "the key detail's chart is its own");
}

#[test]
fn up_and_down_move_over_the_top_keys_within_bounds() {
    let mut state = usage_state((100, 30));
    press(&mut state, "k");
    assert_eq!(state.usage.selected, 0);
    press(&mut state, "j");
    press(&mut state, "down");
    assert_eq!(state.usage.selected, 2);
    press(&mut state, "j");
    assert_eq!(state.usage.selected, 2, "three top keys");
    press(&mut state, "up");
    assert_eq!(state.usage.selected_key(), Some(prepaid_key().id));
}

/// `Enter` on a top key opens its detail on the keys screen, on the list filtered to that key
/// (it may be anywhere in a long list), and the detail loads once the key is selected.
#[test]
fn enter_opens_the_selected_top_key_on_the_keys_screen() {
    let mut state = usage_state((100, 30));
    state.list.scope = KeyScope::Standalone;
    let effects = press(&mut state, "enter");
    assert_eq!((state.tab, state.screen), (Tab::Keys, Screen::Detail));
    let (request, query) = list_query(&effects);
    let id = user_key().id.to_string();
    assert_eq!((query.filter.as_deref(), query.scope), (Some(id.as_str()), KeyScope::All));
    assert!(state.list.stale, "no action on the old selection meanwhile");

    let effects = done(&mut state, request, Outcome::Page(Ok(vec![user_key()])));
    let (_, call) = only_call(&effects);
    assert_eq!(call, Call::Detail { key_id: user_key().id, days: 30 });
    assert_eq!(state.current_key().map(|key| key.id), Some(user_key().id));
}

#[test]
fn enter_on_the_key_already_selected_loads_its_detail_at_once() {
    let mut state = usage_state((100, 30));
    state.list.window.rows = vec![user_key()];
    let effects = press(&mut state, "enter");
    let calls: Vec<&Call> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Call(_, call) => Some(call),
            _ => None,
        })
        .collect();
    assert!(
        matches!(calls[..], [Call::ListKeys(_), Call::CountMatches(_), Call::Detail { key_id, .. }] if *key_id == user_key().id),
        "{calls:?}"
    );
}

#[test]
fn enter_before_the_screen_has_loaded_says_so() {
    let mut state = loaded_state((100, 30));
    usage_load(&mut state, "2");
    assert!(press(&mut state, "enter").is_empty());
    assert_eq!(toast(&state), "No key selected");
    assert_eq!(state.tab, Tab::Usage);
}

#[test]
fn help_and_quit_work_on_the_usage_screen() {
    let mut state = usage_state((100, 30));
    press(&mut state, "?");
    assert!(matches!(state.modals.last(), Some(Modal::Help { .. })));
    let screen = draw(&state).backend().to_string();
    assert!(screen.contains("Usage") && screen.contains("Show the fleet's usage"), "{screen}");
    press(&mut state, "esc");
    press(&mut state, "q");
    assert!(state.quit);
}

#[test]
fn the_tab_bar_marks_the_open_screen() {
    let keys_screen = draw(&loaded_state((100, 30))).backend().to_string();
    assert!(keys_screen.contains("[1 Keys]  2 Usage "), "{keys_screen}");
    let usage_screen = draw(&usage_state((100, 30))).backend().to_string();
    assert!(usage_screen.contains(" 1 Keys  [2 Usage]"), "{usage_screen}");
}

#[test]
fn usage_screen_snapshots() {
    for size in [(80, 24), (120, 32)] {
        let terminal = draw(&usage_state(size));
        assert_snapshot!(format!("usage_{}x{}", size.0, size.1), terminal.backend());
    }
    let mut week = usage_state((120, 32));
    week.usage.data = Some(usage_data(7));
    week.usage.metric = Metric::Requests;
    assert_snapshot!("usage_week_of_requests_120x32", draw(&week).backend());
    let mut loading = loaded_state((80, 24));
    loading.tab = Tab::Usage;
    assert_snapshot!("usage_loading_80x24", draw(&loading).backend());
}

/// NO_COLOR: no colour anywhere, the selected key still marked, the purged keys' line shown.
#[test]
fn the_usage_screen_in_the_mono_theme() {
    let mut state = usage_state((120, 32));
    state.session.theme = Theme::mono();
    let terminal = draw(&state);
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "no colour anywhere");
    }
    assert!(cell_modifiers(buffer, "laptop").contains(Modifier::REVERSED));
    assert!(!cell_modifiers(buffer, "ci-key").contains(Modifier::REVERSED));
    assert_snapshot!("usage_no_color_120x32", terminal.backend());
}

#[test]
fn tab_moves_between_the_top_keys_and_the_keys_needing_attention() {
    let mut state = usage_state((100, 30));
    press(&mut state, "tab");
    assert_eq!(state.usage.pane, Pane::Attention);
    press(&mut state, "j");
    press(&mut state, "k");
    press(&mut state, "j");
    assert_eq!((state.usage.selected, state.usage.attention_selected), (0, 1), "only the attention list moves");
    press(&mut state, "enter");
    assert_eq!((state.tab, state.screen), (Tab::Keys, Screen::Detail));
    assert_eq!(state.list.filter, prepaid_key().id.to_string(), "the low balance's key opens");

    let mut state = usage_state((100, 30));
    press(&mut state, "tab");
    for _ in 0..10 {
        press(&mut state, "j");
    }
    assert_eq!(state.usage.attention_selected, 4, "stops at the last row");
    assert!(press(&mut state, "enter").is_empty());
    assert_eq!(toast(&state), "The sweep deleted this key: there is nothing to open");
    press(&mut state, "tab");
    assert_eq!(state.usage.pane, Pane::TopKeys);
    press(&mut state, "enter");
    assert_eq!(state.list.filter, user_key().id.to_string(), "the top key opens again");
}

/// Ten top keys and the attention list at 80×24: the rankings are cut to fit, but the purged
/// keys' line, part of the total, stays.
#[test]
fn a_short_terminal_keeps_the_purged_keys_line_and_the_attention_list() {
    let mut state = usage_state((80, 24));
    let data = state.usage.data.as_mut().unwrap();
    let first = data.top_keys.spenders[0].clone();
    data.top_keys.spenders = vec![first; 10];
    let screen = draw(&state).backend().to_string();
    assert!(screen.contains("purged keys"), "{screen}");
    assert!(screen.contains("Needs attention") && screen.contains("demo-trial"), "{screen}");
}

#[test]
fn a_change_elsewhere_reloads_the_open_usage_screen_keeping_its_selection() {
    let mut state = usage_state((120, 32));
    press(&mut state, "j");
    let selected = state.usage.selected;
    let effects = crate::tui::update::update(&mut state, crate::tui::event::Event::DataChanged);
    let Some(request) = effects.iter().find_map(|effect| match effect {
        Effect::Call(request, Call::Usage { .. }) => Some(*request),
        _ => None,
    }) else {
        panic!("the usage screen is not reloaded: {effects:?}")
    };
    let data = usage_data(state.usage.days);
    done(&mut state, request, Outcome::Usage(Ok(Box::new(data))));
    assert_eq!(state.usage.selected, selected);
}
