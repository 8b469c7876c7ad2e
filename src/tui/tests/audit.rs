//! The audit screen: its bindings through `update`, its views rendered.

use insta::assert_snapshot;

use crate::domain::AuditEntry;
use crate::tui::effect::{Call, Effect};
use crate::tui::event::Outcome;
use crate::tui::fixtures::{audit_rows, loaded_state, prepaid_key};
use crate::tui::keymap::Context;
use crate::tui::screens::Tab;
use crate::tui::screens::audit::AuditFilter;
use crate::tui::screens::audit::update::PAGE_ROWS;
use crate::tui::screens::keys::Screen;
use crate::tui::state::{RequestId, State};
use crate::tui::theme::Theme;

use super::render::{cell_modifiers, draw};
use super::update::{done, only_call, press, toast, type_text};

/// Presses `key` and returns the audit page it asks for.
fn audit_load(state: &mut State, key: &str) -> (RequestId, AuditFilter, Option<i64>) {
    match only_call(&press(state, key)) {
        (request, Call::Audit { filter, before_id, limit }) => {
            assert_eq!(limit, PAGE_ROWS);
            (request, filter, before_id)
        }
        (_, other) => panic!("expected an audit page, got {other:?}"),
    }
}

/// The audit screen at `size` with `rows` loaded.
fn audit_state(size: (u16, u16), rows: usize) -> State {
    let mut state = loaded_state(size);
    let (request, _, _) = audit_load(&mut state, "4");
    done(&mut state, request, Outcome::Audit(Ok(audit_rows(rows))));
    state
}

#[test]
fn four_opens_the_audit_log_newest_first() {
    let mut state = loaded_state((100, 30));
    let (request, filter, before) = audit_load(&mut state, "4");
    assert_eq!((state.tab, state.context()), (Tab::Audit, Context::Audit));
    assert_eq!((filter, before), (AuditFilter::default(), None));
    assert!(state.busy());
    done(&mut state, request, Outcome::Audit(Ok(audit_rows(5))));
    assert_eq!(state.audit.pages.rows.len(), 5);
    assert!(state.audit.pages.at_end, "a short page is the last");
    assert!(!state.busy());
}

#[test]
fn scrolling_near_the_last_row_loads_older_rows_after_it() {
    let mut state = audit_state((100, 30), PAGE_ROWS as usize);
    assert!(!state.audit.pages.at_end);
    assert!(press(&mut state, "j").is_empty(), "far from the end");
    assert!(press(&mut state, "k").is_empty());
    for _ in 0..3 {
        assert!(press(&mut state, "pgdn").is_empty(), "24 rows a page: still a page from the end");
    }
    let (request, _, before) = audit_load(&mut state, "pgdn");
    assert_eq!(before, Some(audit_rows(PAGE_ROWS as usize).last().unwrap().id));
    assert!(press(&mut state, "down").is_empty(), "one page fetch at a time");
    done(&mut state, request, Outcome::Audit(Ok(audit_rows(3))));
    assert_eq!(state.audit.pages.rows.len(), PAGE_ROWS as usize + 3);
    assert_eq!(state.audit.pages.selected, 97, "the selection stays where it was");
    assert!(state.audit.pages.at_end);
    assert!(press(&mut state, "pgdn").is_empty(), "nothing older to load");
    assert_eq!(state.audit.pages.selected, PAGE_ROWS as usize + 2);
    press(&mut state, "pgup");
    assert_eq!(state.audit.pages.selected, PAGE_ROWS as usize + 2 - 24);
    press(&mut state, "g");
    assert_eq!((state.audit.pages.selected, state.audit.pages.offset), (0, 0));
}

#[test]
fn an_answer_to_an_older_load_is_dropped() {
    let mut state = loaded_state((100, 30));
    let (first, _, _) = audit_load(&mut state, "4");
    let (second, _, _) = audit_load(&mut state, "r");
    done(&mut state, first, Outcome::Audit(Ok(audit_rows(9))));
    assert!(state.audit.pages.rows.is_empty());
    done(&mut state, second, Outcome::Audit(Ok(audit_rows(2))));
    assert_eq!(state.audit.pages.rows.len(), 2);
}

#[test]
fn the_filter_applies_on_enter_and_clears_on_esc() {
    let mut state = audit_state((100, 30), 8);
    press(&mut state, "/");
    assert_eq!(state.context(), Context::Filter);
    assert!(type_text(&mut state, "action:key_update key:ci-key 1").is_empty(), "typing loads nothing");
    assert_eq!(state.tab, Tab::Audit, "digits are typed, not screen switches");
    assert!(state.list.filter.is_empty(), "the key list's filter is its own");
    let (_, filter, before) = audit_load(&mut state, "enter");
    assert_eq!(
        filter,
        AuditFilter { actor: Some("1".into()), action: Some("key_update".into()), key: Some("ci-key".into()) }
    );
    assert_eq!(before, None, "a new filter starts from the newest row");
    assert!(state.filter_box.is_none());
    assert_eq!(state.audit.filter, "action:key_update key:ci-key 1");

    press(&mut state, "/");
    let (_, filter, _) = audit_load(&mut state, "esc");
    assert_eq!(filter, AuditFilter::default());
    assert!(state.audit.filter.is_empty());
}

#[test]
fn enter_on_a_key_row_opens_that_key() {
    let mut state = audit_state((100, 30), 8);
    press(&mut state, "j");
    let effects = press(&mut state, "enter");
    let Some(Effect::Call(_, Call::ListKeys(query))) = effects.first() else { panic!("{effects:?}") };
    assert_eq!(query.filter, Some(prepaid_key().id.to_string()));
    assert_eq!((state.tab, state.screen), (Tab::Keys, Screen::Detail));

    let mut state = audit_state((100, 30), 8);
    press(&mut state, "j");
    press(&mut state, "j");
    assert!(press(&mut state, "enter").is_empty());
    assert_eq!(toast(&state), "This row is not about a key");
    assert_eq!(state.tab, Tab::Audit);
}

#[test]
fn a_failed_load_is_shown() {
    let mut state = loaded_state((100, 30));
    let (request, _, _) = audit_load(&mut state, "4");
    done(&mut state, request, Outcome::Audit(Err("no such key: nope".into())));
    let screen = draw(&state).backend().to_string();
    assert!(screen.contains("no such key: nope"), "{screen}");
}

#[test]
fn audit_screen_snapshots() {
    for size in [(80, 24), (120, 32)] {
        let mut state = audit_state(size, 30);
        state.audit.filter = "actor:alice".into();
        assert_snapshot!(format!("audit_{}x{}", size.0, size.1), draw(&state).backend());
    }
}

/// NO_COLOR: no colour anywhere and the selected row still marked.
#[test]
fn the_audit_screen_in_the_mono_theme() {
    let mut state = audit_state((120, 32), 6);
    state.session.theme = Theme::mono();
    let terminal = draw(&state);
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert_eq!((cell.fg, cell.bg), (ratatui::style::Color::Reset, ratatui::style::Color::Reset));
    }
    assert!(cell_modifiers(buffer, "rate_limit: 100 → 250").contains(ratatui::style::Modifier::REVERSED));
    assert_snapshot!("audit_no_color_120x32", terminal.backend());
}

/// The key detail lists the key's last audit rows where it has room (under the ledger).
#[test]
fn the_key_detail_shows_the_keys_history() {
    let screen = draw(&crate::tui::fixtures::detail_state((160, 48))).backend().to_string();
    assert!(screen.contains("History"), "{screen}");
    assert!(screen.contains("alice key_update rate_limit: 100 → 250"), "{screen}");
    let cramped = draw(&crate::tui::fixtures::detail_state((80, 24))).backend().to_string();
    assert!(!cramped.contains("History"), "no half history where there is no room: {cramped}");
}

#[test]
fn a_change_elsewhere_reloads_the_open_audit_log_keeping_the_selected_row_in_place() {
    let mut state = audit_state((100, 30), PAGE_ROWS as usize + 20);
    state.audit.pages.at_end = false;
    for _ in 0..30 {
        press(&mut state, "j");
    }
    let (selected, offset) = (state.audit.pages.selected, state.audit.pages.offset);
    let selected_id = state.audit.pages.rows[selected].id;
    let effects = crate::tui::update::update(&mut state, crate::tui::event::Event::DataChanged);
    let Some((request, limit)) = effects.iter().find_map(|effect| match effect {
        Effect::Call(request, Call::Audit { before_id: None, limit, .. }) => Some((*request, *limit)),
        _ => None,
    }) else {
        panic!("the audit log is not reloaded: {effects:?}")
    };
    assert_eq!(limit, PAGE_ROWS + 20, "as many rows as were loaded");
    // Two new rows came in on top.
    let newer = audit_rows(2).into_iter().map(|entry| AuditEntry { id: entry.id + 10, ..entry });
    let rows: Vec<AuditEntry> = newer.chain(state.audit.pages.rows.iter().take(limit as usize - 2).cloned()).collect();
    done(&mut state, request, Outcome::Audit(Ok(rows)));
    assert_eq!(state.audit.pages.rows[state.audit.pages.selected].id, selected_id, "the same row selected");
    assert_eq!(
        (state.audit.pages.selected, state.audit.pages.offset),
        (selected + 2, offset + 2),
        "where it was on screen"
    );
}
