//! The keys screen's update: the list's movement, paging and query, the open key's detail, the
//! actions on the selected key, and the answers that change them.

use tui_input::Input;
use uuid::Uuid;

use super::bulk;
use super::list::RECENT_SPEND_FROM;
use super::paging::{PageRequest, Placement};
use super::{DetailData, Focus, Screen};
use crate::domain::{ApiKey, Money, text::sanitize};
use crate::service::{DEFAULT_GRACE, TopUp};
use crate::tui::effect::{Call, Effect};
use crate::tui::event::CreatedSecret;
use crate::tui::forms::Form;
use crate::tui::keymap::{Action, Context};
use crate::tui::live;
use crate::tui::state::{Confirmed, Modal, RequestId, Secret, State, ToastKind, step_range};
use crate::tui::update::{call, confirm, count_keys};
use crate::tui::view::layout;

/// The keys screen's own actions: moving through the list, its query, the open key's chart, and
/// what acts on the selected key (with marks, on every marked key).
pub fn perform(state: &mut State, context: Context, action: Action) -> Vec<Effect> {
    if context == Context::List
        && let Some(effects) = bulk::perform(state, action)
    {
        return effects;
    }
    match action {
        Action::Up => move_selection(state, -1),
        Action::Down => move_selection(state, 1),
        Action::PageUp => move_selection(state, -(layout::list_rows(state).max(1) as isize)),
        Action::PageDown => move_selection(state, layout::list_rows(state).max(1) as isize),
        Action::First if state.list.window.at_start => move_selection(state, isize::MIN / 2),
        Action::First => reload_from_start(state, Focus::First),
        Action::Last if state.list.window.at_end => move_selection(state, isize::MAX / 2),
        Action::Last => {
            let request = state.list.window.request(Placement::End, page_size(state));
            vec![start_page(state, Placement::End, request, Focus::Last)]
        }
        Action::Open => with_current_key(state, |state, _| {
            state.screen = Screen::Detail;
            load_detail(state)
        }),
        Action::Back => {
            state.screen = Screen::List;
            Vec::new()
        }
        Action::NextScope => {
            state.list.scope = state.list.scope.next();
            reload_from_start(state, Focus::First)
        }
        Action::NextNarrowing => {
            state.list.narrowing = state.list.narrowing.next();
            reload_from_start(state, Focus::First)
        }
        Action::Filter => {
            state.filter_box = Some(Input::new(state.list.filter.clone()));
            Vec::new()
        }
        Action::ApplyFilter => {
            state.filter_box = None;
            reload_from_start(state, Focus::First)
        }
        Action::ClearFilter => {
            state.filter_box = None;
            state.list.filter.clear();
            reload_from_start(state, Focus::First)
        }
        Action::Sort => {
            state.list.sort = state.list.sort.next();
            state.list.descending = state.list.sort.default_descending();
            reload_from_start(state, Focus::First)
        }
        Action::ReverseSort => {
            state.list.descending = !state.list.descending;
            reload_from_start(state, Focus::First)
        }
        Action::CycleMetric => {
            state.detail.metric = state.detail.metric.next();
            Vec::new()
        }
        Action::ShorterRange | Action::LongerRange => {
            state.detail.days = step_range(state.detail.days, action == Action::LongerRange);
            load_detail(state)
        }
        Action::TopUp => with_current_key(state, open_top_up),
        Action::Create => {
            let owner = state.current_key().map(|key| sanitize(&key.owner_name).into_owned()).unwrap_or_default();
            state.modals.push(Modal::Form(Form::create(&owner)));
            Vec::new()
        }
        Action::Edit => with_current_key(state, |state, key| {
            state.modals.push(Modal::Form(Form::edit(&key)));
            Vec::new()
        }),
        Action::ToggleActive => with_current_key(state, |state, key| {
            let active = !key.is_active;
            let (verb, effect) = if active {
                ("Enable", "Requests with it will be accepted again (unless it has expired).")
            } else {
                ("Disable", "Requests with it will be refused until it is enabled again. Nothing is deleted.")
            };
            let name = sanitize(&key.name).into_owned();
            confirm(
                state,
                format!("{verb} {name}?"),
                vec![effect.into()],
                Confirmed::SetActive { key_id: key.id, active },
            )
        }),
        Action::Enable => with_current_key(state, |state, key| {
            let name = sanitize(&key.name).into_owned();
            if key.is_active {
                state.toast(ToastKind::Info, format!("{name} is already enabled"));
                return Vec::new();
            }
            let lines = vec!["Requests with it will be accepted again (unless it has expired).".into()];
            confirm(state, format!("Enable {name}?"), lines, Confirmed::SetActive { key_id: key.id, active: true })
        }),
        Action::Mark => {
            bulk::toggle_mark(state);
            move_selection(state, 1)
        }
        Action::MarkAll => bulk::mark_all(state),
        Action::ClearMarks => {
            state.list.marks.clear();
            Vec::new()
        }
        Action::Purge => with_current_key(state, |state, key| {
            let name = sanitize(&key.name).into_owned();
            let lines = vec![
                format!("The key {name} ({}) will be deleted for good.", key.key_hint),
                "Requests with it will be refused. Its usage history stays.".into(),
                "This cannot be undone.".into(),
            ];
            confirm(state, format!("Purge {name}?"), lines, Confirmed::Purge { key_id: key.id })
        }),
        Action::Reveal => with_current_key(state, |state, key| {
            let name = sanitize(&key.name).into_owned();
            let lines = vec![
                format!("The plaintext of {name} will be shown on this screen."),
                "The audit log records that you revealed it.".into(),
            ];
            confirm(state, format!("Reveal {name}?"), lines, Confirmed::Reveal { key_id: key.id })
        }),
        Action::Roll => with_current_key(state, |state, key| {
            let name = sanitize(&key.name).into_owned();
            let grace = format!("{}h", DEFAULT_GRACE.num_hours());
            let lines = vec![
                format!("{name} ({}) gets a new secret, shown once on this screen.", key.key_hint),
                format!("The current secret keeps working for {grace}, then is refused."),
                "The key keeps its id, limits, balance and history.".into(),
            ];
            confirm(state, format!("Roll {name}?"), lines, Confirmed::Roll { key_id: key.id })
        }),
        // The actions every screen shares, which `update` took first.
        _ => Vec::new(),
    }
}

/// Runs `then` on the key the admin is looking at, unless the list is still catching up with a
/// new filter (the selected row might not be the key the admin means).
fn with_current_key(state: &mut State, then: impl FnOnce(&mut State, ApiKey) -> Vec<Effect>) -> Vec<Effect> {
    if state.list.stale {
        state.toast(ToastKind::Info, "The list is still loading; try again in a moment");
        return Vec::new();
    }
    match state.current_key().cloned() {
        Some(key) => then(state, key),
        None => {
            let message = nothing_listed(state);
            state.toast(ToastKind::Info, message);
            Vec::new()
        }
    }
}

/// Why there is no key to act on: the filter matched nothing, or the scope holds no key.
fn nothing_listed(state: &State) -> String {
    let filter = state.list.filter.trim();
    if filter.is_empty() {
        match state.list.narrowing.label() {
            Some(narrowing) => format!("No key in the scope {:?}, {narrowing}", state.list.scope.label()),
            None => format!("No key in the scope {:?}", state.list.scope.label()),
        }
    } else {
        format!("No key matches \"{}\"", sanitize(filter))
    }
}

fn open_top_up(state: &mut State, key: ApiKey) -> Vec<Effect> {
    let name = sanitize(&key.name).into_owned();
    match key.balance() {
        None => {
            state.toast(ToastKind::Error, format!("{name} is not prepaid (billed to its owner): no balance to top up"))
        }
        Some(balance) if balance.remaining.is_none() => {
            state.toast(ToastKind::Error, format!("{name} has an unlimited balance: there is nothing to top up"))
        }
        Some(_) => {
            let serial = state.next_request().0;
            let idempotency_key = format!("tui-{}-{serial}", state.session.instance);
            state.modals.push(Modal::Form(Form::top_up(&key, idempotency_key)));
        }
    }
    Vec::new()
}

/// The terminal changed size: the selection stays in view, and a wider list asks for the spend
/// column's figures.
pub fn on_resize(state: &mut State) -> Vec<Effect> {
    scroll_to_selection(state);
    let mut effects = fetch_near_edges(state);
    let unknown: Vec<Uuid> = state.list.window.rows.iter().map(|key| key.id).collect();
    effects.extend(fetch_recent_spend(state, unknown.into_iter()));
    effects
}

/// The filter box's text changed: the list reloads once typing pauses.
pub fn on_filter_edit(state: &mut State, text: String) -> Vec<Effect> {
    if text == state.list.filter {
        return Vec::new();
    }
    state.list.filter = text;
    state.list.filter_edits += 1;
    vec![Effect::DebounceFilter { edit: state.list.filter_edits }]
}

// Navigation and loading

fn page_size(state: &State) -> usize {
    (layout::list_rows(state) * 2).max(20)
}

fn start_page(state: &mut State, placement: Placement, request: PageRequest, focus: Focus) -> Effect {
    let id = state.next_request();
    let query = state.list.query(request, state.now);
    match placement {
        Placement::Reload | Placement::End => {
            state.list.reload = Some((id, placement, request, focus));
            // A reload replaces the window, so a page fetched for the old one is moot.
            state.list.paging = None;
        }
        Placement::Append | Placement::Prepend => state.list.paging = Some((id, placement, request)),
    }
    Effect::Call(id, Call::ListKeys(query))
}

pub fn reload(state: &mut State, focus: Focus) -> Vec<Effect> {
    let request = state.list.window.request(Placement::Reload, page_size(state));
    let page = start_page(state, Placement::Reload, request, focus);
    let count = state.next_request();
    state.list.matches_request = Some(count);
    let query = state.list.query(request, state.now);
    vec![page, Effect::Call(count, Call::CountMatches(query))]
}

/// Reloads from the top of the list because the query changed (filter, scope, sort, `g`).
pub fn reload_from_start(state: &mut State, focus: Focus) -> Vec<Effect> {
    state.list.filter_edits += 1; // a pending debounce is now moot
    state.list.window.rewind();
    state.list.stale = true;
    reload(state, focus)
}

/// Reloads the list in place, staying on the selected key, with the counts and the open detail.
pub fn refresh(state: &mut State) -> Vec<Effect> {
    let focus = state.list.selected_key().map_or(Focus::First, |key| Focus::Key(key.id));
    let mut effects = reload(state, focus);
    effects.push(count_keys(state));
    if state.screen == Screen::Detail {
        effects.extend(load_detail(state));
    }
    effects
}

pub fn load_detail(state: &mut State) -> Vec<Effect> {
    let Some(key_id) = state.list.selected_key().map(|key| key.id) else { return Vec::new() };
    let request = state.next_request();
    state.detail.pending = Some((request, key_id));
    vec![Effect::Call(request, Call::Detail { key_id, days: state.detail.days })]
}

/// Asks what the keys among `key_ids` whose spend is not known spent in the last 30 days, when
/// the list is wide enough to show it.
fn fetch_recent_spend(state: &mut State, key_ids: impl Iterator<Item = Uuid>) -> Option<Effect> {
    if state.size.0 < RECENT_SPEND_FROM {
        return None;
    }
    let unknown: Vec<Uuid> = key_ids.filter(|id| !state.list.recent_spend.contains_key(id)).collect();
    (!unknown.is_empty()).then(|| call(state, Call::RecentSpend(unknown)))
}

fn move_selection(state: &mut State, delta: isize) -> Vec<Effect> {
    let rows = state.list.window.rows.len();
    if rows == 0 {
        return Vec::new();
    }
    let before = state.list.selected;
    state.list.selected = before.saturating_add_signed(delta).min(rows - 1);
    scroll_to_selection(state);
    let mut effects = fetch_near_edges(state);
    if state.screen == Screen::Detail && state.list.selected != before {
        effects.extend(load_detail(state));
    }
    effects
}

fn scroll_to_selection(state: &mut State) {
    let visible = layout::list_rows(state).max(1);
    let list = &mut state.list;
    if list.selected < list.offset {
        list.offset = list.selected;
    } else if list.selected >= list.offset + visible {
        list.offset = list.selected + 1 - visible;
    }
}

/// Fetches the next or previous page when the selection is within a screen of an edge.
fn fetch_near_edges(state: &mut State) -> Vec<Effect> {
    let list = &state.list;
    if list.reload.is_some() || list.paging.is_some() || list.window.rows.is_empty() {
        return Vec::new();
    }
    let visible = layout::list_rows(state).max(1);
    let placement = if !list.window.at_end && list.selected + visible >= list.window.rows.len() {
        Placement::Append
    } else if !list.window.at_start && list.selected < visible {
        Placement::Prepend
    } else {
        return Vec::new();
    };
    let request = state.list.window.request(placement, page_size(state));
    vec![start_page(state, placement, request, Focus::First)]
}

// Answers

/// The spend column's figures. Without them the column shows none; the list itself is not
/// affected.
pub fn on_recent_spend(state: &mut State, result: Result<Vec<(Uuid, Money)>, String>) {
    state.list.recent_spend.extend(result.unwrap_or_default());
}

/// A page of the key list arrived; a dialog open on one of its keys learns what changed.
pub fn on_page_loaded(state: &mut State, request: RequestId, result: Result<Vec<ApiKey>, String>) -> Vec<Effect> {
    let dialog_key = live::dialog_key(state);
    let find = |rows: &[ApiKey]| rows.iter().find(|key| Some(key.id) == dialog_key).cloned();
    let before = find(&state.list.window.rows);
    let fresh = result.as_ref().ok().and_then(|rows| find(rows));
    let effects = on_page(state, request, result);
    if let Some(key) = fresh {
        live::on_dialog_key_seen(state, before.as_ref(), key);
    }
    effects
}

/// The count of keys the query matches, for the list's title.
pub fn on_matches(state: &mut State, request: RequestId, result: Result<u64, String>) {
    // Only the answer to the latest query counts; an error leaves the title without it.
    if state.list.matches_request == Some(request) {
        state.list.matches = result.ok();
    }
}

/// The open key's detail arrived.
pub fn on_detail_loaded(state: &mut State, request: RequestId, result: Result<Box<DetailData>, String>) {
    if state.detail.pending.is_none_or(|(pending, _)| pending != request) {
        return;
    }
    state.detail.pending = None;
    match result {
        Ok(data) => {
            replace_row(state, &data.key);
            state.detail.data = Some(*data);
            state.detail.error = None;
        }
        // During an outage the detail keeps its last data under the banner.
        Err(_) if state.outage.is_some() && state.detail.data.is_some() => {}
        Err(message) => state.detail.error = Some(message),
    }
}

/// A top-up was applied: the key's balance everywhere it shows, and a message saying so.
pub fn on_topped_up(state: &mut State, top_up: TopUp) -> Vec<Effect> {
    let key_id = top_up.entry.api_key_id;
    let mut name = String::new();
    for key in keys_with_id(state, key_id) {
        key.credited = top_up.balance.credited;
        key.used = top_up.balance.used;
        name = sanitize(&key.name).into_owned();
    }
    let remaining = top_up.balance.remaining.map_or("unlimited".into(), |r| r.to_string());
    let verb = if top_up.entry.delta.is_negative() { "Deducted" } else { "Added" };
    state.toast(ToastKind::Info, format!("{verb} {} on {name}: remaining {remaining}", top_up.entry.delta.abs()));
    refresh_detail_of(state, key_id)
}

/// A key was created: its secret, shown once, and the list reloaded on it.
pub fn on_created(state: &mut State, created: CreatedSecret) -> Vec<Effect> {
    let name = sanitize(&created.key.name).into_owned();
    state.modals.push(Modal::Secret(Secret { name, plaintext: created.plaintext, once: true }));
    let mut effects = reload_from_start(state, Focus::Key(created.key.id));
    effects.push(count_keys(state));
    effects
}

/// A key was saved.
pub fn on_updated(state: &mut State, key: ApiKey) -> Vec<Effect> {
    replace_row(state, &key);
    let status = key.status(state.now);
    state.toast(ToastKind::Info, format!("Saved {}: {status}", sanitize(&key.name)));
    let mut effects = refresh_detail_of(state, key.id);
    effects.push(count_keys(state));
    effects
}

/// A key was purged: gone from the list, and the detail closes if it showed it.
pub fn on_purged(state: &mut State, key_id: Uuid) -> Vec<Effect> {
    let list = &mut state.list;
    list.window.rows.retain(|key| key.id != key_id);
    list.selected = list.selected.min(list.window.rows.len().saturating_sub(1));
    if state.detail.data.as_ref().is_some_and(|data| data.key.id == key_id) {
        state.detail.data = None;
        state.screen = Screen::List;
    }
    state.toast(ToastKind::Info, "Purged the key");
    vec![count_keys(state)]
}

/// A key got a new secret, shown once.
pub fn on_rolled(state: &mut State, rolled: CreatedSecret) -> Vec<Effect> {
    replace_row(state, &rolled.key);
    let name = sanitize(&rolled.key.name).into_owned();
    state.modals.push(Modal::Secret(Secret { name, plaintext: rolled.plaintext, once: true }));
    refresh_detail_of(state, rolled.key.id)
}

fn on_page(state: &mut State, request: RequestId, result: Result<Vec<ApiKey>, String>) -> Vec<Effect> {
    let list = &mut state.list;
    let (placement, page_request, focus) = match (list.reload, list.paging) {
        (Some((id, placement, page_request, focus)), _) if id == request => {
            list.reload = None;
            (placement, page_request, Some(focus))
        }
        (_, Some((id, placement, page_request))) if id == request => {
            list.paging = None;
            (placement, page_request, None)
        }
        _ => return Vec::new(), // an answer to a request that has been superseded
    };
    let page = match result {
        Ok(page) => page,
        // During an outage the list keeps its last rows under the banner, so keys keep working.
        Err(_) if state.outage.is_some() && !list.window.rows.is_empty() => {
            list.stale = false;
            return Vec::new();
        }
        Err(message) => {
            list.error = Some(message);
            list.stale = false;
            return Vec::new();
        }
    };
    list.error = None;
    // The key just before the window was deleted: the keyset cursor is gone, start over.
    if placement == Placement::Reload && page.is_empty() && list.window.anchor.is_some() {
        return reload_from_start(state, focus.unwrap_or(Focus::First));
    }
    let previous_key = list.selected_key().map(|key| key.id);
    let page_keys: Vec<Uuid> = page.iter().map(|key| key.id).collect();
    let shift = list.window.apply(placement, page, page_request);
    list.selected = list.selected.saturating_add_signed(shift);
    list.offset = list.offset.saturating_add_signed(shift);
    let rows = list.window.rows.len();
    match focus {
        Some(Focus::First) => list.selected = 0,
        Some(Focus::Last) => list.selected = rows.saturating_sub(1),
        Some(Focus::Key(id)) => {
            if let Some(index) = list.window.rows.iter().position(|key| key.id == id) {
                list.selected = index;
            }
        }
        None => {}
    }
    list.selected = list.selected.min(rows.saturating_sub(1));
    if focus.is_some() {
        list.stale = false;
    }
    scroll_to_selection(state);
    let mut effects = fetch_near_edges(state);
    // A page just read: its spend is read again, so a refresh brings it up to date. Only the
    // window's keys are kept, so paging through a million keys holds a window's worth.
    let list = &mut state.list;
    let in_window: std::collections::HashSet<Uuid> = list.window.rows.iter().map(|key| key.id).collect();
    list.recent_spend.retain(|key_id, _| in_window.contains(key_id) && !page_keys.contains(key_id));
    effects.extend(fetch_recent_spend(state, page_keys.into_iter()));
    let selection_moved = state.list.selected_key().map(|key| key.id) != previous_key;
    if state.screen == Screen::Detail && selection_moved {
        effects.extend(load_detail(state));
    }
    effects
}

/// Every copy of a key the state holds: its list row and the detail's.
fn keys_with_id(state: &mut State, id: Uuid) -> impl Iterator<Item = &mut ApiKey> {
    let row = state.list.window.rows.iter_mut().filter(move |key| key.id == id);
    let detail = state.detail.data.as_mut().map(|data: &mut DetailData| &mut data.key).filter(move |key| key.id == id);
    row.chain(detail)
}

fn replace_row(state: &mut State, fresh: &ApiKey) {
    for key in keys_with_id(state, fresh.id) {
        *key = fresh.clone();
    }
}

fn refresh_detail_of(state: &mut State, key_id: Uuid) -> Vec<Effect> {
    let showing = state.screen == Screen::Detail && state.list.selected_key().is_some_and(|key| key.id == key_id);
    if showing { load_detail(state) } else { Vec::new() }
}
