//! Bulk actions: marks, then one action on every marked key, each binding through `update()`.

use crate::domain::{Money, Patch};
use crate::service::{BulkAction, BulkFailure, BulkReport, MarkedKey};
use crate::tui::effect::Call;
use crate::tui::event::Outcome;
use crate::tui::fixtures::{keys, loaded_state, prepaid_key, user_key};
use crate::tui::state::{Confirmed, Modal, State};

use super::render::draw;
use super::update::{done, only_call, press, toast, top_modal, type_text};

/// The first two keys marked with Space (which steps down a row each time).
fn two_marked() -> State {
    let mut state = loaded_state((120, 32));
    press(&mut state, "space");
    press(&mut state, "space");
    state
}

fn marked(state: &State) -> Vec<String> {
    state.list.marks.values().cloned().collect()
}

/// Confirms the dialog on top and returns the bulk call it makes.
fn confirmed_bulk(state: &mut State) -> (Vec<MarkedKey>, BulkAction) {
    match only_call(&press(state, "y")) {
        (_, Call::Bulk { keys, action }) => (keys, action),
        (_, other) => panic!("expected a bulk call, got {other:?}"),
    }
}

fn confirm_title(state: &State) -> &str {
    match top_modal(state) {
        Modal::Confirm(confirm) => &confirm.title,
        other => panic!("expected a confirmation, got {other:?}"),
    }
}

#[test]
fn space_marks_and_steps_down_and_esc_clears() {
    let mut state = two_marked();
    assert_eq!(state.list.selected, 2);
    assert_eq!(marked(&state).len(), 2);
    state.list.selected = 0;
    press(&mut state, "space");
    assert_eq!(marked(&state), [user_key().name], "space again unmarks");
    press(&mut state, "esc");
    assert!(state.list.marks.is_empty());
}

#[test]
fn the_title_counts_the_marks_and_a_column_shows_them() {
    let state = two_marked();
    let screen = format!("{:?}", draw(&state).backend());
    assert!(screen.contains("· 2 marked"), "{screen}");
    assert_eq!(screen.matches('●').count(), 2, "{screen}");
    let unmarked = format!("{:?}", draw(&loaded_state((120, 32))).backend());
    assert!(!unmarked.contains('●'), "no mark column without marks");
}

#[test]
fn star_marks_every_match_of_the_query_not_only_the_loaded_rows() {
    let mut state = loaded_state((120, 32));
    state.list.filter = "service".into();
    let (request, call) = only_call(&press(&mut state, "*"));
    let Call::MarkMatches(query) = call else { panic!("{call:?}") };
    assert_eq!(query.filter.as_deref(), Some("service"));
    let matching: Vec<MarkedKey> = keys()[7..].iter().map(MarkedKey::from).collect();
    done(&mut state, request, Outcome::Marked(Ok((matching, false))));
    assert_eq!(state.list.marks.len(), 23);
    assert!(toast(&state).contains("Marked 23 matching keys"), "{}", toast(&state));
}

#[test]
fn d_with_marks_disables_them_all_after_one_confirmation() {
    let mut state = two_marked();
    press(&mut state, "d");
    assert_eq!(confirm_title(&state), "Disable 2 keys?");
    let (keys, action) = confirmed_bulk(&mut state);
    assert_eq!((keys.len(), action), (2, BulkAction::Disable), "disable, not toggle");
}

#[test]
fn one_mark_asks_about_one_key() {
    let mut state = loaded_state((120, 32));
    press(&mut state, "space");
    press(&mut state, "d");
    assert_eq!(confirm_title(&state), "Disable 1 key?");
}

#[test]
fn shift_e_enables_the_marked_keys_or_the_selected_one() {
    let mut state = two_marked();
    press(&mut state, "E");
    assert_eq!(confirm_title(&state), "Enable 2 keys?");
    assert_eq!(confirmed_bulk(&mut state).1, BulkAction::Enable);

    let mut state = loaded_state((120, 32));
    state.list.selected = 3; // old-batch-job, disabled
    press(&mut state, "E");
    let Modal::Confirm(confirm) = top_modal(&state) else { panic!() };
    assert!(matches!(confirm.action, Confirmed::SetActive { active: true, .. }), "{confirm:?}");
    state.modals.clear();
    state.list.selected = 0;
    press(&mut state, "E");
    assert!(toast(&state).contains("is already enabled"));
}

#[test]
fn shift_d_with_marks_purges_them_all_after_one_confirmation() {
    let mut state = two_marked();
    press(&mut state, "D");
    assert_eq!(confirm_title(&state), "Purge 2 keys?");
    assert_eq!(confirmed_bulk(&mut state).1, BulkAction::Purge);
}

#[test]
fn t_with_marks_tops_up_each_by_the_same_amount() {
    let mut state = two_marked();
    press(&mut state, "t");
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    assert_eq!(form.title(), "Top up 2 marked keys");
    type_text(&mut state, "5");
    press(&mut state, "enter");
    assert_eq!(confirm_title(&state), "Add $5.00 to each of 2 keys?");
    let (keys, action) = confirmed_bulk(&mut state);
    assert_eq!(keys.len(), 2);
    let BulkAction::TopUp { amount, .. } = action else { panic!("{action:?}") };
    assert_eq!(amount, Money::from_usd(5));
}

#[test]
fn e_with_marks_applies_only_the_changed_fields() {
    let mut state = two_marked();
    press(&mut state, "e");
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    assert_eq!(form.title(), "Edit 2 marked keys");
    // The first field is the rate limit: names and credits stay each key's own.
    for _ in 0..10 {
        press(&mut state, "backspace");
    }
    type_text(&mut state, "7");
    press(&mut state, "enter");
    assert_eq!(confirm_title(&state), "Change 2 keys?");
    let (_, action) = confirmed_bulk(&mut state);
    let BulkAction::Update(patch) = action else { panic!("{action:?}") };
    assert_eq!(patch.rate_limit, Patch::Set(7));
    assert!(patch.name.is_none() && patch.expires_at.is_keep() && patch.allowed_models.is_keep(), "{patch:?}");
}

#[test]
fn the_result_names_each_failure_and_keeps_it_marked() {
    let mut state = two_marked();
    press(&mut state, "d");
    let (request, _) = only_call(&press(&mut state, "y"));
    let report = BulkReport {
        succeeded: vec![MarkedKey::from(&prepaid_key())],
        failed: vec![BulkFailure { key: MarkedKey::from(&user_key()), reason: "no key matches \"x\"".into() }],
    };
    done(&mut state, request, Outcome::Bulk { done: "disabled", result: Ok(report) });
    let Modal::Report(report) = top_modal(&state) else { panic!("{:?}", state.modals) };
    assert_eq!(report.title, "Disabled 1 of 2 keys");
    assert!(report.lines.iter().any(|line| line.contains(&user_key().name) && line.contains("no key matches")));
    assert_eq!(marked(&state), [user_key().name], "the failed key stays marked");
}

#[test]
fn a_bulk_action_that_all_succeeded_says_so() {
    let mut state = two_marked();
    press(&mut state, "D");
    let (request, _) = only_call(&press(&mut state, "y"));
    let report = BulkReport { succeeded: state.list.marked(), failed: Vec::new() };
    done(&mut state, request, Outcome::Bulk { done: "purged", result: Ok(report) });
    assert_eq!(toast(&state), "Purged 2 of 2 keys");
    assert!(state.list.marks.is_empty());
    assert_eq!(state.list.window.rows.len(), keys().len() - 2, "purged keys leave the list");
}

/// A page that lands on a wide list asks what its keys spent in the last 30 days; a narrow list,
/// which has no column for it, does not.
#[test]
fn a_wide_list_reads_the_30_day_spend_of_each_page() {
    for (width, asks) in [(200, true), (120, false)] {
        let mut state = loaded_state((width, 40));
        let (request, _) = super::update::list_query(&press(&mut state, "tab"));
        let effects = done(&mut state, request, Outcome::Page(Ok(keys())));
        let spend_calls: Vec<_> = effects
            .iter()
            .filter_map(|effect| match effect {
                crate::tui::effect::Effect::Call(id, Call::RecentSpend(ids)) => Some((*id, ids.len())),
                _ => None,
            })
            .collect();
        assert_eq!(
            spend_calls.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            if asks { vec![keys().len()] } else { vec![] }
        );
        if let Some((id, _)) = spend_calls.first() {
            done(&mut state, *id, Outcome::RecentSpend(Ok(vec![(prepaid_key().id, Money::from_usd(3))])));
            assert_eq!(state.list.recent_spend.get(&prepaid_key().id), Some(&Money::from_usd(3)));
            // A reload without the key forgets its spend: only the window's keys are kept.
            let (request, _) = super::update::list_query(&press(&mut state, "tab"));
            done(&mut state, request, Outcome::Page(Ok(keys()[1..].to_vec())));
            assert!(state.list.recent_spend.is_empty(), "{:?}", state.list.recent_spend);
        }
    }
}
