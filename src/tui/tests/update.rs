//! `update()` for every action: feed events, check the state and the effects.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::domain::{ActiveFilter, ApiKey, KeyScope, LowBalanceLine, Money, PageFrom, SortKey, SweptKey};
use crate::service::TopUp;
use crate::store::SweepReport;
use crate::tui::effect::{Call, Effect};
use crate::tui::event::{CreatedSecret, Event, Outcome};
use crate::tui::fixtures::{NOW, detail_data, keys, loaded_state, prepaid_key, session, user_key};
use crate::tui::keymap::{Action, Context};
use crate::tui::screens::keys::Screen;
use crate::tui::screens::keys::paging::Window;
use crate::tui::state::{Confirmed, Metric, Modal, RequestId, State, ToastKind, TopUpRequest};
use crate::tui::theme::Theme;
use crate::tui::update::{start, update};

fn list_state() -> State {
    loaded_state((100, 30))
}

fn key_event(code: KeyCode, modifiers: KeyModifiers) -> Event {
    Event::Key(KeyEvent::new(code, modifiers))
}

/// Presses a key written as in the config file (`t`, `enter`, `ctrl-c`).
pub(super) fn press(state: &mut State, key: &str) -> Vec<Effect> {
    let chord = crate::tui::keymap::KeyChord::parse(key).unwrap();
    update(state, key_event(chord.code, chord.modifiers))
}

pub(super) fn type_text(state: &mut State, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|ch| update(state, key_event(KeyCode::Char(ch), KeyModifiers::NONE))).collect()
}

/// The only service call among `effects`.
pub(super) fn only_call(effects: &[Effect]) -> (RequestId, Call) {
    let calls: Vec<_> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Call(id, call) => Some((*id, call.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 1, "expected one call in {effects:?}");
    calls.into_iter().next().unwrap()
}

/// The page query among `effects`, leaving out the count of matches that goes with a reload.
pub(super) fn list_query(effects: &[Effect]) -> (RequestId, crate::domain::KeyQuery) {
    let pages: Vec<Effect> =
        effects.iter().filter(|effect| !matches!(effect, Effect::Call(_, Call::CountMatches(_)))).cloned().collect();
    match only_call(&pages) {
        (id, Call::ListKeys(query)) => (id, query),
        (_, other) => panic!("expected a list query, got {other:?}"),
    }
}

pub(super) fn done(state: &mut State, request: RequestId, outcome: Outcome) -> Vec<Effect> {
    update(state, Event::Done(request, Box::new(outcome)))
}

pub(super) fn top_modal(state: &State) -> &Modal {
    state.modals.last().expect("a dialog is open")
}

pub(super) fn toast(state: &State) -> &str {
    &state.toast.as_ref().expect("a toast").text
}

#[test]
fn start_loads_the_first_page_and_the_counts() {
    let mut state = State::new(session(false, Theme::mono()), NOW, (100, 30));
    let effects = start(&mut state);
    assert_eq!(effects.len(), 3);
    let Effect::Call(request, Call::ListKeys(query)) = &effects[0] else { panic!("{effects:?}") };
    assert_eq!(query.from, PageFrom::Start);
    assert!(query.descending, "newest first");
    let Effect::Call(matches, Call::CountMatches(counted)) = &effects[1] else { panic!("{effects:?}") };
    assert_eq!(counted.filter, query.filter, "the matches of the same query");
    assert_eq!(effects[2], Effect::Call(RequestId(3), Call::CountKeys));
    assert!(state.busy());
    done(&mut state, *request, Outcome::Page(Ok(keys())));
    assert_eq!(state.list.window.rows.len(), 30);
    assert!(!state.busy());
    done(&mut state, *matches, Outcome::Matches(Ok(1_234)));
    assert_eq!(state.list.matches, Some(1_234));
    // A count for an older query is dropped.
    let effects = press(&mut state, "tab");
    done(&mut state, *matches, Outcome::Matches(Ok(7)));
    assert_eq!(state.list.matches, Some(1_234));
    let Effect::Call(newer, Call::CountMatches(_)) = &effects[1] else { panic!("{effects:?}") };
    done(&mut state, *newer, Outcome::Matches(Ok(7)));
    assert_eq!(state.list.matches, Some(7));
}

#[test]
fn quit_from_the_list_and_ctrl_c_from_anywhere() {
    let mut state = list_state();
    press(&mut state, "q");
    assert!(state.quit);

    let mut state = list_state();
    press(&mut state, "n");
    type_text(&mut state, "q"); // typed into the owner field, not a quit
    assert!(!state.quit);
    press(&mut state, "ctrl-c");
    assert!(state.quit);
}

#[test]
fn help_opens_over_the_screen_and_closes() {
    let mut state = list_state();
    press(&mut state, "?");
    assert!(matches!(top_modal(&state), Modal::Help { scroll: 0 }));
    press(&mut state, "esc");
    assert!(state.modals.is_empty());
}

#[test]
fn the_help_binding_says_it_shows_this_help_not_the_api_keys() {
    let state = list_state();
    for context in [Context::List, Context::Detail] {
        let help = state.session.keymap.bindings(context).find(|b| b.action == Action::Help).unwrap();
        assert_eq!(help.description, "Show this help", "in {context:?}");
    }
}

#[test]
fn sigterm_or_sighup_quits_like_q() {
    let mut state = list_state();
    press(&mut state, "?");
    assert!(update(&mut state, Event::Terminated).is_empty());
    assert!(state.quit, "even with a dialog open");
}

#[test]
fn key_releases_never_act() {
    let mut state = list_state();
    let with_kind = |kind| Event::Key(KeyEvent::new_with_kind(KeyCode::Char('j'), KeyModifiers::NONE, kind));
    update(&mut state, with_kind(KeyEventKind::Press));
    assert!(update(&mut state, with_kind(KeyEventKind::Release)).is_empty());
    assert_eq!(state.list.selected, 1, "a press and its release move one row");
    update(&mut state, with_kind(KeyEventKind::Repeat));
    assert_eq!(state.list.selected, 2, "a held key repeats");
    // In a text field too: the release of a typed character types nothing.
    press(&mut state, "/");
    update(
        &mut state,
        Event::Key(KeyEvent::new_with_kind(KeyCode::Char('x'), KeyModifiers::NONE, KeyEventKind::Press)),
    );
    update(
        &mut state,
        Event::Key(KeyEvent::new_with_kind(KeyCode::Char('x'), KeyModifiers::NONE, KeyEventKind::Release)),
    );
    assert_eq!(state.list.filter, "x");
    // And `q` released after an `Esc` closed the filter does not quit.
    press(&mut state, "esc");
    update(
        &mut state,
        Event::Key(KeyEvent::new_with_kind(KeyCode::Char('q'), KeyModifiers::NONE, KeyEventKind::Release)),
    );
    assert!(!state.quit);
}

fn help_scroll(state: &State) -> usize {
    match top_modal(state) {
        Modal::Help { scroll } => *scroll,
        other => panic!("expected the help, got {other:?}"),
    }
}

#[test]
fn the_help_scrolls_within_its_lines_and_leaves_the_selection_alone() {
    let mut state = loaded_state((80, 24));
    press(&mut state, "?");
    let most = crate::tui::view::help::max_scroll(&state);
    assert!(most > 0, "the list's help is longer than an 80x24 screen");
    press(&mut state, "j");
    press(&mut state, "down");
    assert_eq!(help_scroll(&state), 2);
    press(&mut state, "k");
    assert_eq!(help_scroll(&state), 1);
    press(&mut state, "G");
    assert_eq!(help_scroll(&state), most);
    press(&mut state, "pgdn");
    assert_eq!(help_scroll(&state), most, "never past the last line");
    press(&mut state, "pgup");
    assert_eq!(help_scroll(&state), most.saturating_sub(crate::tui::view::help::visible_lines(&state)));
    press(&mut state, "g");
    assert_eq!(help_scroll(&state), 0);
    assert_eq!(state.list.selected, 0);
    // On a tall screen everything fits: nothing to scroll.
    let mut tall = loaded_state((160, 48));
    press(&mut tall, "?");
    press(&mut tall, "end");
    assert_eq!(help_scroll(&tall), 0);
}

#[test]
fn arrows_and_pages_move_the_selection_within_the_rows() {
    let mut state = list_state();
    press(&mut state, "j");
    press(&mut state, "down");
    assert_eq!(state.list.selected, 2);
    press(&mut state, "k");
    assert_eq!(state.list.selected, 1);
    let page = crate::tui::view::layout::list_rows(&state);
    press(&mut state, "pgdn");
    assert_eq!(state.list.selected, 1 + page);
    assert_eq!(state.list.offset, 2, "scrolled so that the selection stays visible");
    press(&mut state, "pgdn");
    assert_eq!(state.list.selected, 29, "clamped to the last row");
    press(&mut state, "pgup");
    assert_eq!(state.list.selected, 29 - page);
    press(&mut state, "g");
    assert_eq!(state.list.selected, 0);
    press(&mut state, "G");
    assert_eq!(state.list.selected, 29);
}

#[test]
fn nearing_the_end_of_a_partial_window_fetches_the_next_page() {
    let mut state = list_state();
    state.list.window.at_end = false;
    state.list.selected = 10;
    let effects = press(&mut state, "j");
    let (request, query) = list_query(&effects);
    assert_eq!(query.from, PageFrom::After(keys()[29].id));
    // A second move while the page is in flight does not ask again.
    assert!(press(&mut state, "j").is_empty());
    let more: Vec<_> = (30..35).map(|i| crate::tui::fixtures::key_named(i, &format!("more-{i}"))).collect();
    done(&mut state, request, Outcome::Page(Ok(more)));
    assert_eq!(state.list.window.rows.len(), 35);
    assert!(state.list.window.at_end, "a short page is the last one");
    assert_eq!(state.list.selected, 12);
}

#[test]
fn first_and_last_reload_when_the_window_does_not_reach_the_edge() {
    let mut state = list_state();
    state.list.window = Window { rows: keys(), anchor: Some(uuid::Uuid::nil()), at_start: false, at_end: false };
    let (_, query) = list_query(&press(&mut state, "g"));
    assert_eq!(query.from, PageFrom::Start);
    assert!(query.descending);
    let (request, query) = list_query(&press(&mut state, "G"));
    assert_eq!(query.from, PageFrom::Start);
    assert!(!query.descending, "the end of the list is the start of the flipped order");
    let flipped: Vec<_> = keys().into_iter().rev().collect();
    done(&mut state, request, Outcome::Page(Ok(flipped)));
    assert_eq!(state.list.selected, state.list.window.rows.len() - 1);
    assert_eq!(state.list.selected_key().unwrap().name, keys()[29].name);
}

#[test]
fn enter_opens_the_detail_which_follows_the_selection_and_esc_goes_back() {
    let mut state = list_state();
    let (request, call) = only_call(&press(&mut state, "enter"));
    assert_eq!(state.screen, Screen::Detail);
    assert_eq!(call, Call::Detail { key_id: prepaid_key().id, days: 30 });
    let (next_request, call) = only_call(&press(&mut state, "j"));
    assert_eq!(call, Call::Detail { key_id: user_key().id, days: 30 });
    // The answer for the first key arrives late and is dropped.
    done(&mut state, request, Outcome::Detail(Ok(Box::new(detail_data(prepaid_key(), 30)))));
    assert!(state.detail.data.is_none());
    done(&mut state, next_request, Outcome::Detail(Ok(Box::new(detail_data(user_key(), 30)))));
    assert_eq!(state.detail.data.as_ref().unwrap().key.id, user_key().id);
    press(&mut state, "esc");
    assert_eq!(state.screen, Screen::List);
}

/// `q` leaves the detail as it leaves the help: back to the list, and only a second `q` quits.
#[test]
fn q_in_the_detail_goes_back_to_the_list() {
    let mut state = list_state();
    press(&mut state, "enter");
    press(&mut state, "q");
    assert_eq!((state.screen, state.quit), (Screen::List, false));
    press(&mut state, "q");
    assert!(state.quit);
}

#[test]
fn a_failed_detail_shows_its_error_and_the_program_goes_on() {
    let mut state = list_state();
    let (request, _) = only_call(&press(&mut state, "enter"));
    done(&mut state, request, Outcome::Detail(Err("database is locked".into())));
    assert_eq!(state.detail.error.as_deref(), Some("database is locked"));
    assert!(!state.quit);
}

#[test]
fn metric_and_range_keys_change_the_chart() {
    let mut state = list_state();
    press(&mut state, "enter");
    press(&mut state, "m");
    assert_eq!(state.detail.metric, Metric::Requests);
    let (_, call) = only_call(&press(&mut state, "]"));
    assert_eq!(call, Call::Detail { key_id: prepaid_key().id, days: 90 });
    press(&mut state, "]");
    assert_eq!(state.detail.days, 90, "90 is the longest range");
    press(&mut state, "[");
    press(&mut state, "[");
    assert_eq!(state.detail.days, 7);
}

#[test]
fn tab_cycles_the_scope_and_reloads_from_the_start() {
    let mut state = list_state();
    state.list.window.anchor = Some(uuid::Uuid::nil());
    let (_, query) = list_query(&press(&mut state, "tab"));
    assert_eq!(query.scope, KeyScope::UserKeys);
    assert_eq!(query.from, PageFrom::Start);
    assert!(state.list.stale);
}

#[test]
fn sort_cycles_the_column_and_reverse_flips_it() {
    let mut state = list_state();
    let (_, query) = list_query(&press(&mut state, "o"));
    assert_eq!((query.sort, query.descending), (SortKey::Name, false));
    let (_, query) = list_query(&press(&mut state, "O"));
    assert_eq!((query.sort, query.descending), (SortKey::Name, true));
    press(&mut state, "o");
    press(&mut state, "o");
    let (_, query) = list_query(&press(&mut state, "o"));
    assert_eq!((query.sort, query.descending), (SortKey::Remaining, false), "the smallest balance first");
    let (_, query) = list_query(&press(&mut state, "o"));
    assert_eq!((query.sort, query.descending), (SortKey::RecentSpend, true), "the biggest spender first");
    let (_, query) = list_query(&press(&mut state, "o"));
    assert_eq!(query.sort, SortKey::Created, "and round again");
}

#[test]
fn v_narrows_to_active_keys_then_those_expiring_soon_then_low_balances() {
    let mut state = list_state();
    let (_, query) = list_query(&press(&mut state, "v"));
    assert_eq!((query.active, query.from), (ActiveFilter::Active, PageFrom::Start));
    let (_, query) = list_query(&press(&mut state, "v"));
    assert_eq!((query.active, query.expiring_within), (ActiveFilter::Any, Some(chrono::Duration::days(7))));
    let (_, query) = list_query(&press(&mut state, "v"));
    assert_eq!(query.low_balance, Some(LowBalanceLine::KeysOwn { default: None }), "each key's own line");
    assert_eq!(query.expiring_within, None);
    let (_, query) = list_query(&press(&mut state, "v"));
    assert_eq!((query.active, query.expiring_within, query.low_balance), (ActiveFilter::Any, None, None));
}

#[test]
fn the_filter_narrows_after_a_pause_and_drops_stale_answers() {
    let mut state = list_state();
    press(&mut state, "/");
    assert!(state.filter_box.is_some());
    let effects = type_text(&mut state, "ci");
    assert_eq!(effects, vec![Effect::DebounceFilter { edit: 1 }, Effect::DebounceFilter { edit: 2 }]);
    assert!(update(&mut state, Event::FilterSettled { edit: 1 }).is_empty(), "superseded by the next keystroke");
    let (first, query) = list_query(&update(&mut state, Event::FilterSettled { edit: 2 }));
    assert_eq!(query.filter.as_deref(), Some("ci"));
    type_text(&mut state, "-key");
    let edit = state.list.filter_edits;
    let (second, query) = list_query(&update(&mut state, Event::FilterSettled { edit }));
    assert_eq!(query.filter.as_deref(), Some("ci-key"));
    done(&mut state, first, Outcome::Page(Ok(keys())));
    assert_eq!(state.list.window.rows.len(), 30, "the stale answer changed nothing");
    done(&mut state, second, Outcome::Page(Ok(vec![prepaid_key()])));
    assert_eq!(state.list.window.rows, vec![prepaid_key()]);
}

#[test]
fn enter_keeps_the_filter_and_esc_clears_it() {
    let mut state = list_state();
    press(&mut state, "/");
    type_text(&mut state, "ci");
    let (request, query) = list_query(&press(&mut state, "enter"));
    assert!(state.filter_box.is_none());
    assert_eq!(query.filter.as_deref(), Some("ci"));
    assert!(update(&mut state, Event::FilterSettled { edit: 2 }).is_empty(), "the debounce is moot now");
    state.list.selected = 3;
    done(&mut state, request, Outcome::Page(Ok(keys())));
    assert_eq!(state.list.selected, 0, "the first match is selected");
    press(&mut state, "/");
    let (_, query) = list_query(&press(&mut state, "esc"));
    assert_eq!(query.filter, None);
    assert!(state.list.filter.is_empty());
}

#[test]
fn refresh_reloads_in_place_and_keeps_the_selected_key() {
    let mut state = list_state();
    state.list.selected = 4;
    let effects = press(&mut state, "r");
    assert_eq!(effects.len(), 3, "the list, its matches and the counts");
    let Effect::Call(request, Call::ListKeys(_)) = &effects[0] else { panic!("{effects:?}") };
    let mut reordered = keys();
    reordered.swap(0, 4);
    done(&mut state, *request, Outcome::Page(Ok(reordered)));
    assert_eq!(state.list.selected, 0);
    assert_eq!(state.list.selected_key().unwrap().name, "demo-trial");
}

#[test]
fn auto_refresh_toggles_and_refreshes_at_once_when_turned_on() {
    let mut state = list_state();
    assert!(update(&mut state, Event::RefreshDue).is_empty(), "off by default");
    let effects = press(&mut state, "a");
    assert!(state.auto_refresh);
    assert_eq!(effects.len(), 3);
    assert_eq!(update(&mut state, Event::RefreshDue).len(), 3);
    press(&mut state, "a");
    assert!(!state.auto_refresh);
}

#[test]
fn a_failed_list_query_shows_its_error() {
    let mut state = list_state();
    let (request, _) = list_query(&press(&mut state, "r")[..1]);
    done(&mut state, request, Outcome::Page(Err("cannot open the database".into())));
    assert_eq!(state.list.error.as_deref(), Some("cannot open the database"));
}

#[test]
fn top_up_previews_confirms_large_amounts_and_updates_the_row() {
    let mut state = list_state();
    press(&mut state, "t");
    assert!(matches!(top_modal(&state), Modal::Form(_)));
    type_text(&mut state, "1000");
    assert!(press(&mut state, "enter").is_empty(), "at the threshold: a confirmation first");
    let Modal::Confirm(confirm) = top_modal(&state) else { panic!("{:?}", state.modals) };
    assert!(matches!(&confirm.action, Confirmed::TopUp(request) if request.amount == Money::from_usd(1000)));
    assert!(confirm.lines.contains(&"Result: remaining $10.00 → $1,010.00".to_string()), "{:?}", confirm.lines);
    press(&mut state, "n");
    assert!(matches!(top_modal(&state), Modal::Form(_)), "back in the form");

    for _ in 0..4 {
        press(&mut state, "backspace");
    }
    type_text(&mut state, "7.5");
    let (request, call) = only_call(&press(&mut state, "enter"));
    let Call::TopUp(TopUpRequest { key_id, amount, note, idempotency_key }) = call else { panic!("{call:?}") };
    assert_eq!((key_id, amount, note), (prepaid_key().id, Money::from_micros(7_500_000), None));
    assert!(idempotency_key.starts_with("tui-00000000-0000-0000-0000-000000000000-"), "{idempotency_key}");
    let mut after = prepaid_key();
    after.credited = Some(Money::from_micros(19_500_000));
    let entry = crate::domain::LedgerEntry {
        id: 9,
        api_key_id: after.id,
        at: NOW,
        actor: "admin".into(),
        actor_key: None,
        delta: Money::from_micros(7_500_000),
        credited_after: after.credited,
        note: None,
        idempotency_key: None,
    };
    let top_up = TopUp { entry, replayed: false, balance: after.balance().unwrap() };
    done(&mut state, request, Outcome::ToppedUp(Ok(top_up)));
    assert!(state.modals.is_empty());
    assert_eq!(crate::tui::view::format::remaining(state.list.selected_key().unwrap()), "$17.50");
    assert_eq!(toast(&state), "Added $7.50 on ci-key: remaining $17.50");
}

#[test]
fn a_refused_top_up_keeps_the_form_open_with_the_reason() {
    let mut state = list_state();
    press(&mut state, "t");
    type_text(&mut state, "-5");
    let (request, _) = only_call(&press(&mut state, "enter"));
    done(&mut state, request, Outcome::ToppedUp(Err("cannot deduct more than the remaining balance".into())));
    assert!(matches!(top_modal(&state), Modal::Form(form) if !form.submitting));
    assert_eq!(state.toast.as_ref().unwrap().kind, ToastKind::Error);
}

#[test]
fn top_up_on_a_key_that_is_not_prepaid_says_why() {
    let mut state = list_state();
    press(&mut state, "j");
    press(&mut state, "t");
    assert!(state.modals.is_empty());
    assert!(toast(&state).contains("not prepaid"));
}

#[test]
fn create_submits_the_spec_and_shows_the_key_once_with_copy() {
    let mut state = list_state();
    press(&mut state, "n");
    press(&mut state, "tab");
    type_text(&mut state, "new-key");
    let (request, call) = only_call(&press(&mut state, "enter"));
    let Call::Create(spec) = &call else { panic!("{call:?}") };
    assert_eq!((spec.owner.as_str(), spec.name.as_deref()), ("alice", Some("new-key")));
    let created = CreatedSecret { key: user_key(), plaintext: "sk-secret".into() };
    let effects = done(&mut state, request, Outcome::Created(Ok(created)));
    assert!(matches!(top_modal(&state), Modal::Secret(secret) if secret.once && secret.plaintext == "sk-secret"));
    assert_eq!(effects.len(), 3, "the list, its matches and the counts reload");
    assert_eq!(press(&mut state, "c"), vec![Effect::CopyToClipboard("sk-secret".into())]);
    press(&mut state, "esc");
    assert!(state.modals.is_empty(), "the plaintext is gone from the state");
}

#[test]
fn form_fields_move_and_choices_cycle() {
    let mut state = list_state();
    press(&mut state, "n");
    press(&mut state, "tab");
    press(&mut state, "tab");
    press(&mut state, "space");
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    assert_eq!(form.fields[2].shown(), "yes");
    press(&mut state, "backtab");
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    assert_eq!(form.focus, 1);
    press(&mut state, "esc");
    assert!(state.modals.is_empty());
}

#[test]
fn edit_sends_only_the_changed_fields() {
    let mut state = list_state();
    press(&mut state, "e");
    press(&mut state, "tab");
    press(&mut state, "tab"); // past the credited total: the first key is prepaid
    for _ in 0..3 {
        press(&mut state, "backspace");
    }
    type_text(&mut state, "60");
    let (request, call) = only_call(&press(&mut state, "enter"));
    let Call::Update { key_id, patch, credit } = &call else { panic!("{call:?}") };
    assert_eq!(*key_id, prepaid_key().id);
    assert_eq!(patch.rate_limit, crate::domain::Patch::Set(60));
    assert!(patch.name.is_none());
    assert_eq!(*credit, None, "the credit was not touched");
    let mut saved = prepaid_key();
    saved.rate_limit = Some(60);
    done(&mut state, request, Outcome::Updated(Ok(saved)));
    assert_eq!(state.list.selected_key().unwrap().rate_limit, Some(60));
    assert!(state.modals.is_empty());
}

#[test]
fn edit_sets_the_credited_total_after_checking_it_inline() {
    let mut state = list_state();
    press(&mut state, "e");
    press(&mut state, "tab");
    for _ in 0.."12.00".len() {
        press(&mut state, "backspace");
    }
    type_text(&mut state, "-5");
    assert!(press(&mut state, "enter").is_empty(), "a negative credit is refused before any write");
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    assert_eq!(form.fields[form.focus].id, crate::tui::forms::FieldId::Credit);
    press(&mut state, "home");
    press(&mut state, "delete");
    let (request, call) = only_call(&press(&mut state, "enter"));
    let Call::Update { patch, credit, .. } = &call else { panic!("{call:?}") };
    assert!(patch.is_empty());
    assert_eq!(*credit, Some(Some(Money::from_usd(5))));
    let mut saved = prepaid_key();
    saved.credited = Some(Money::from_usd(5));
    done(&mut state, request, Outcome::Updated(Ok(saved)));
    assert_eq!(crate::tui::view::format::remaining(state.list.selected_key().unwrap()), "$3.00");
    assert!(state.modals.is_empty());
}

#[test]
fn disable_asks_first_then_disables() {
    let mut state = list_state();
    press(&mut state, "d");
    let Modal::Confirm(confirm) = top_modal(&state) else { panic!() };
    assert_eq!(confirm.title, "Disable ci-key?");
    let (_, call) = only_call(&press(&mut state, "y"));
    assert_eq!(call, Call::SetActive { key_id: prepaid_key().id, active: false });
}

#[test]
fn purge_asks_first_and_removes_the_row() {
    let mut state = list_state();
    press(&mut state, "D");
    let Modal::Confirm(confirm) = top_modal(&state) else { panic!() };
    assert!(confirm.lines.iter().any(|line| line.contains("cannot be undone")));
    let (request, call) = only_call(&press(&mut state, "y"));
    assert_eq!(call, Call::Purge { key_id: prepaid_key().id });
    done(&mut state, request, Outcome::Purged(Ok(prepaid_key().id)));
    assert_eq!(state.list.window.rows.len(), 29);
    assert_ne!(state.list.selected_key().unwrap().id, prepaid_key().id);
}

#[test]
fn reveal_asks_first_and_shows_the_plaintext() {
    let mut state = list_state();
    press(&mut state, "R");
    let (request, call) = only_call(&press(&mut state, "y"));
    assert_eq!(call, Call::Reveal { key_id: prepaid_key().id });
    done(&mut state, request, Outcome::Revealed(Ok(CreatedSecret { key: prepaid_key(), plaintext: "sk-x".into() })));
    assert!(matches!(top_modal(&state), Modal::Secret(secret) if !secret.once));
}

#[test]
fn roll_asks_first_then_shows_the_new_secret_once() {
    let mut state = list_state();
    assert!(press(&mut state, "K").is_empty(), "nothing happens before the confirmation");
    let Modal::Confirm(confirm) = top_modal(&state) else { panic!("a confirmation first") };
    assert!(confirm.lines.iter().any(|line| line.contains("keeps working for 24h")), "{:?}", confirm.lines);
    let (request, call) = only_call(&press(&mut state, "y"));
    assert_eq!(call, Call::Roll { key_id: prepaid_key().id });
    let rolled = ApiKey { key_hint: "sk-NeWsEcR...0000".into(), ..prepaid_key() };
    done(&mut state, request, Outcome::Rolled(Ok(CreatedSecret { key: rolled, plaintext: "sk-new".into() })));
    assert!(matches!(top_modal(&state), Modal::Secret(secret) if secret.once && secret.plaintext == "sk-new"));
    assert_eq!(state.list.selected_key().unwrap().key_hint, "sk-NeWsEcR...0000", "the list shows the new hint");
}

#[test]
fn sweep_shows_a_dry_run_then_runs_on_confirmation() {
    let mut state = list_state();
    let (request, call) = only_call(&press(&mut state, "S"));
    assert_eq!(call, Call::Sweep { dry_run: true });
    let report = SweepReport {
        disabled: vec![SweptKey { id: user_key().id, name: "staging\u{1b}[2J".into() }],
        deleted: vec![],
        disabled_count: 1,
        ..SweepReport::default()
    };
    done(&mut state, request, Outcome::Swept { dry_run: true, result: Ok(report.clone()) });
    let Modal::Confirm(confirm) = top_modal(&state) else { panic!() };
    assert!(confirm.lines[0].starts_with("disable staging[2J"), "names are sanitised: {:?}", confirm.lines);
    let (request, call) = only_call(&press(&mut state, "y"));
    assert_eq!(call, Call::SweepAsShown(Box::new(report.clone())), "the sweep as shown, not whatever is due");
    let effects = done(&mut state, request, Outcome::Swept { dry_run: false, result: Ok(report) });
    assert_eq!(state.last_sweep.as_ref().unwrap().at, NOW);
    assert!(!effects.is_empty(), "keys changed, so the list reloads");
}

#[test]
fn a_sweep_confirmed_after_things_changed_shows_the_new_dry_run_instead() {
    let mut state = list_state();
    let (request, _) = only_call(&press(&mut state, "S"));
    let swept = |id: uuid::Uuid| SweptKey { id, name: "staging".into() };
    let shown = SweepReport { disabled: vec![swept(user_key().id)], disabled_count: 1, ..SweepReport::default() };
    done(&mut state, request, Outcome::Swept { dry_run: true, result: Ok(shown) });
    let (request, _) = only_call(&press(&mut state, "y"));
    let now = SweepReport { deleted: vec![swept(prepaid_key().id)], deleted_count: 1, ..SweepReport::default() };
    let effects = done(&mut state, request, Outcome::SweepChanged(now.clone()));
    let Modal::Confirm(confirm) = top_modal(&state) else { panic!("a new confirmation") };
    assert_eq!(confirm.title, "The sweep changed: now 0 to disable, 1 to delete. Run it?");
    assert_eq!(confirm.action, Confirmed::Sweep(Box::new(now)));
    assert!(effects.iter().any(|e| matches!(e, Effect::Call(_, Call::ListKeys(_)))), "the list reloads");
    assert_eq!(state.writes_in_flight, 0);

    // Swept meanwhile to nothing: no confirmation, a message saying so.
    let (request, _) = only_call(&press(&mut state, "y"));
    done(&mut state, request, Outcome::SweepChanged(SweepReport::default()));
    assert!(state.modals.is_empty());
    assert!(
        toast(&state).starts_with("Nothing was swept: the expired keys changed since the dry run"),
        "{}",
        toast(&state)
    );
}

#[test]
fn the_sweep_timer_sweeps_and_records_failures() {
    let mut state = list_state();
    let (request, call) = only_call(&update(&mut state, Event::SweepDue));
    assert_eq!(call, Call::Sweep { dry_run: false });
    done(&mut state, request, Outcome::Swept { dry_run: false, result: Err("database is locked".into()) });
    assert_eq!(state.last_sweep.as_ref().unwrap().outcome, Err("database is locked".into()));
}

#[test]
fn actions_wait_while_the_list_catches_up_with_a_new_filter() {
    let mut state = list_state();
    press(&mut state, "/");
    type_text(&mut state, "x");
    press(&mut state, "enter");
    assert!(press(&mut state, "t").is_empty());
    assert!(state.modals.is_empty());
    assert!(toast(&state).contains("still loading"));
}

#[test]
fn read_only_ignores_every_key_that_writes() {
    let mut state = list_state();
    state.session = session(true, Theme::mono());
    for key in ["t", "n", "e", "d", "D", "R", "S"] {
        state.toast = None;
        assert!(press(&mut state, key).is_empty(), "{key}");
        assert!(state.modals.is_empty(), "{key}");
        assert!(toast(&state).starts_with("Read-only session: "), "{key} says why nothing happens");
    }
    assert_eq!(toast(&state), "Read-only session: run the expiry sweep now (after a dry run) is not available");
}

#[test]
fn left_and_right_change_a_choice() {
    let mut state = list_state();
    press(&mut state, "n");
    press(&mut state, "tab");
    press(&mut state, "tab"); // Prepaid ‹ no ›
    press(&mut state, "right");
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    assert_eq!(form.fields[form.focus].shown(), "yes");
    press(&mut state, "left");
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    assert_eq!(form.fields[form.focus].shown(), "no");
}

#[test]
fn a_pasted_line_break_ends_the_paste_instead_of_joining_numbers() {
    let mut state = list_state();
    press(&mut state, "t");
    update(&mut state, Event::Paste("12\n34".into()));
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    assert_eq!(form.fields[0].shown(), "12");
    assert_eq!(toast(&state), "Pasted the first line only: a field holds one line");
    update(&mut state, Event::Paste("5\r\n".into()));
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    assert_eq!(form.fields[0].shown(), "125", "a trailing line break is just the end of the line");
}

#[test]
fn ticks_advance_the_clock_and_expire_toasts() {
    let mut state = list_state();
    state.toast(ToastKind::Info, "hello");
    update(&mut state, Event::Tick(NOW + chrono::TimeDelta::seconds(2)));
    assert!(state.toast.is_some());
    update(&mut state, Event::Tick(NOW + chrono::TimeDelta::seconds(30)));
    assert!(state.toast.is_none());
    assert_eq!(state.now, NOW + chrono::TimeDelta::seconds(30));
}

#[test]
fn pasted_text_lands_in_the_filter_without_control_characters() {
    let mut state = list_state();
    press(&mut state, "/");
    let effects = update(&mut state, Event::Paste("ci\u{1b}[2J-key".into()));
    assert_eq!(state.list.filter, "ci[2J-key");
    assert_eq!(effects, vec![Effect::DebounceFilter { edit: 1 }]);
}

#[test]
fn resizing_keeps_the_selection_visible() {
    let mut state = list_state();
    state.list.selected = 25;
    update(&mut state, Event::Resize(80, 10));
    assert!(state.list.offset <= 25 && 25 < state.list.offset + 7);
}

/// Submitting one dialog again (say after a lost connection) reuses its idempotency key, so the
/// top-up applies at most once; a new dialog is a new top-up.
#[test]
fn each_top_up_dialog_has_its_own_idempotency_key() {
    let submit = |state: &mut State| {
        type_text(state, "2");
        let (request, call) = only_call(&press(state, "enter"));
        let Call::TopUp(top_up) = call else { panic!("{call:?}") };
        (request, top_up.idempotency_key)
    };
    let mut state = list_state();
    press(&mut state, "t");
    let (request, first) = submit(&mut state);
    done(&mut state, request, Outcome::ToppedUp(Err("cannot reach the database".into())));
    press(&mut state, "backspace");
    assert_eq!(submit(&mut state).1, first, "the same dialog resubmitted");
    press(&mut state, "esc");
    press(&mut state, "t");
    assert_ne!(submit(&mut state).1, first, "a new dialog");
}

#[test]
fn enter_on_a_filter_that_matched_nothing_stays_in_the_list_and_says_so() {
    let mut state = list_state();
    press(&mut state, "/");
    type_text(&mut state, "acme");
    let (request, _) = list_query(&press(&mut state, "enter"));
    done(&mut state, request, Outcome::Page(Ok(Vec::new())));
    assert!(press(&mut state, "enter").is_empty(), "nothing to load");
    assert_eq!(state.screen, Screen::List);
    assert_eq!(toast(&state), "No key matches \"acme\"");
    for action in ["t", "e", "d"] {
        state.toast = None;
        press(&mut state, action);
        assert!(state.modals.is_empty());
        assert_eq!(toast(&state), "No key matches \"acme\"", "after {action}");
    }
}

#[test]
fn an_expiry_in_the_past_asks_before_it_is_saved() {
    let mut state = list_state();
    state.list.selected = 1; // a user key
    press(&mut state, "e");
    let Modal::Form(form) = top_modal(&state) else { panic!() };
    let expires = form.fields.iter().position(|f| f.id == crate::tui::forms::FieldId::Expires).unwrap();
    for _ in 0..expires {
        press(&mut state, "tab");
    }
    for _ in 0.."never".len() {
        press(&mut state, "backspace");
    }
    type_text(&mut state, "2026-03-01");
    assert!(press(&mut state, "enter").is_empty(), "nothing is written before the admin confirms");
    let Modal::Confirm(confirm) = top_modal(&state) else { panic!("a confirmation") };
    assert_eq!(confirm.title, "Expire the key at 2026-03-01 00:00 UTC, in the past?");
    let (_, call) = only_call(&press(&mut state, "y"));
    let Call::Update { patch, .. } = call else { panic!("{call:?}") };
    assert_eq!(patch.expires_at, crate::domain::Patch::Set("2026-03-01T00:00:00Z".parse().unwrap()));
}

#[test]
fn a_message_goes_when_what_it_was_about_changes() {
    // "No key selected" goes once a key is selected.
    let mut state = State::new(session(false, Theme::mono()), NOW, (100, 30));
    let effects = start(&mut state);
    let Effect::Call(request, _) = effects[0] else { panic!() };
    done(&mut state, request, Outcome::Page(Ok(Vec::new())));
    press(&mut state, "t");
    assert!(state.toast.is_some());
    let effects = press(&mut state, "r");
    let Effect::Call(request, Call::ListKeys(_)) = effects[0] else { panic!("{effects:?}") };
    done(&mut state, request, Outcome::Page(Ok(keys())));
    assert_eq!(state.toast, None, "a key is selected now");

    // A refused create goes once the dialog has closed with a created key.
    let mut state = list_state();
    press(&mut state, "n");
    let (request, _) = only_call(&press(&mut state, "enter"));
    done(&mut state, request, Outcome::Created(Err("no user matches \"acme\"".into())));
    assert_eq!(toast(&state), "no user matches \"acme\"");
    let (request, _) = only_call(&press(&mut state, "enter"));
    done(&mut state, request, Outcome::Created(Ok(CreatedSecret { key: user_key(), plaintext: "sk-x".into() })));
    assert!(matches!(top_modal(&state), Modal::Secret(_)));
    assert_eq!(state.toast, None, "the error was about the closed dialog");
}

#[test]
fn the_session_keeps_sweep_totals_says_when_a_timed_sweep_changed_keys_and_reopens_its_report() {
    let mut state = list_state();
    let swept = |id: uuid::Uuid| SweptKey { id, name: "staging".into() };
    let busy = SweepReport {
        disabled: vec![swept(user_key().id)],
        deleted: vec![swept(prepaid_key().id)],
        disabled_count: 110,
        deleted_count: 46,
        truncated: true,
        ..SweepReport::default()
    };
    let (request, _) = only_call(&update(&mut state, Event::SweepDue));
    done(&mut state, request, Outcome::Swept { dry_run: false, result: Ok(busy) });
    assert_eq!(toast(&state), "The sweep disabled 110 and deleted 46 keys (L shows which)");
    let (request, _) = only_call(&update(&mut state, Event::SweepDue));
    done(&mut state, request, Outcome::Swept { dry_run: false, result: Ok(SweepReport::default()) });
    assert_eq!((state.sweep_totals.disabled, state.sweep_totals.deleted), (110, 46), "the quiet run adds nothing");

    press(&mut state, "L");
    let Modal::Report(report) = top_modal(&state) else { panic!("the report") };
    assert_eq!(report.lines[0], "Disabled 110, deleted 46.", "the last run that changed anything");
    assert_eq!(report.lines[1], format!("disabled staging ({})", user_key().id));
    assert_eq!(report.lines[3], "… and 154 more");
    press(&mut state, "esc");
    assert!(state.modals.is_empty());
}

#[test]
fn a_confirmation_open_while_another_admin_changes_its_key_says_so_before_it_applies() {
    let mut state = list_state();
    let key = state.list.window.rows[0].clone();
    let confirm = crate::tui::state::Confirm {
        title: format!("Purge {}?", key.name),
        lines: vec![],
        action: Confirmed::Purge { key_id: key.id },
    };
    state.modals.push(Modal::Confirm(confirm));
    let effects = update(&mut state, Event::DataChanged);
    let Some(request) = effects.iter().find_map(|effect| match effect {
        Effect::Call(request, Call::ListKeys(_)) => Some(*request),
        _ => None,
    }) else {
        panic!("no reload in {effects:?}")
    };
    let mut rows = state.list.window.rows.clone();
    rows[0].is_active = false;
    done(&mut state, request, Outcome::Page(Ok(rows)));
    let Modal::Confirm(confirm) = top_modal(&state) else { panic!("the confirmation closed") };
    assert!(confirm.lines[0].contains("changed meanwhile"), "{:?}", confirm.lines);
    assert!(matches!(confirm.action, Confirmed::Purge { key_id } if key_id == key.id), "it still asks first");
}
