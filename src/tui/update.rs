//! `update`: the only place the state changes. Pure and synchronous: it reads an event, changes
//! the state and returns the effects to run, so every behaviour is testable without a terminal
//! or a database.

use crossterm::event::{Event as CrosstermEvent, KeyEvent, KeyEventKind};
use tui_input::{Input, backend::crossterm::to_input_request};
use uuid::Uuid;

use crate::domain::{ApiKey, text::sanitize};
use crate::service::{BulkAction, DEFAULT_GRACE, NewKeySpec};
use crate::store::SweepReport;

use super::effect::{Call, Effect};
use super::event::{Event, Outcome};
use super::forms::{FieldValue, Form, FormKind, top_up_preview};
use super::keymap::{Action, Context, KeyChord};
use super::live;
use super::screens;
use super::screens::keys::bulk;
use super::screens::keys::list::RECENT_SPEND_FROM;
use super::screens::keys::paging::{PageRequest, Placement};
use super::screens::keys::{DetailData, Focus, Screen};
use super::state::{
    Confirm, Confirmed, Modal, Outage, RequestId, Secret, State, SweepResult, ToastKind, TopUpRequest, retry_delay,
    step_range,
};
use super::sweep_report;
use super::view::{help, layout};

/// The first effects of a session: the list and the counts.
pub fn start(state: &mut State) -> Vec<Effect> {
    let mut effects = reload(state, Focus::First);
    effects.push(count_keys(state));
    effects
}

pub fn update(state: &mut State, event: Event) -> Vec<Effect> {
    let effects = dispatch(state, event);
    state.drop_stale_toast();
    effects
}

fn dispatch(state: &mut State, event: Event) -> Vec<Effect> {
    match event {
        Event::Key(key) => on_key(state, key),
        Event::Paste(text) => match focused_text_input(state) {
            Some(input) => {
                // Every field is one line: a line break ends the paste, since dropping it would
                // join "12\n34" into 1234. Pasted text is untrusted too: only printable
                // characters go into a field.
                let mut lines = text.lines();
                for ch in sanitize(lines.next().unwrap_or_default()).chars() {
                    input.handle(tui_input::InputRequest::InsertChar(ch));
                }
                let cut = lines.any(|line| !line.trim().is_empty());
                let effects = after_text_edit(state);
                if cut {
                    state.toast(ToastKind::Info, "Pasted the first line only: a field holds one line");
                }
                effects
            }
            None => Vec::new(),
        },
        Event::Resize(width, height) => {
            state.size = (width, height);
            scroll_to_selection(state);
            let mut effects = fetch_near_edges(state);
            let unknown: Vec<Uuid> = state.list.window.rows.iter().map(|key| key.id).collect();
            effects.extend(fetch_recent_spend(state, unknown.into_iter()));
            effects
        }
        Event::Tick(now) => {
            state.now = now;
            if state.toast.as_ref().is_some_and(|toast| toast.until <= now) {
                state.toast = None;
            }
            Vec::new()
        }
        // While the database is away the retry timer refreshes instead.
        Event::RefreshDue if state.auto_refresh && state.outage.is_none() => refresh(state),
        Event::RefreshDue => Vec::new(),
        Event::DataChanged if state.outage.is_none() => refresh(state),
        Event::DataChanged => Vec::new(),
        Event::Presence(names) => {
            state.connected = names;
            Vec::new()
        }
        Event::SweepDue => vec![call(state, Call::Sweep { dry_run: false })],
        Event::Terminated => {
            state.quit = true;
            Vec::new()
        }
        Event::FilterSettled { edit } if edit == state.list.filter_edits && state.filter_box.is_some() => {
            reload_from_start(state, Focus::First)
        }
        Event::FilterSettled { .. } => Vec::new(),
        Event::Done(request, outcome) => on_outcome(state, request, *outcome),
        Event::ConnectionLost(message) => on_connection_lost(state, message),
        Event::RetryDue { attempt } => match &mut state.outage {
            Some(outage) if outage.attempt == attempt && outage.retry_at.is_some() => {
                outage.retry_at = None;
                refresh(state)
            }
            _ => Vec::new(), // the database came back, or a newer retry is scheduled
        },
    }
}

/// The database could not be reached: show the banner and schedule the next retry, unless one
/// is already scheduled or waiting for its answer.
fn on_connection_lost(state: &mut State, message: String) -> Vec<Effect> {
    let now = state.now;
    let outage =
        state.outage.get_or_insert_with(|| Outage { message: String::new(), since: now, attempt: 0, retry_at: None });
    outage.message = message;
    if outage.retry_at.is_some() {
        return Vec::new();
    }
    outage.attempt += 1;
    let delay = retry_delay(outage.attempt);
    outage.retry_at = Some(now + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::MAX));
    vec![Effect::RetryAfter { delay, attempt: outage.attempt }]
}

/// Whether an answer came from the database (which is then reachable again).
fn answered(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Page(result) => result.is_ok(),
        Outcome::Counts(result) => result.is_ok(),
        Outcome::Matches(result) => result.is_ok(),
        Outcome::Detail(result) => result.is_ok(),
        Outcome::ToppedUp(result) => result.is_ok(),
        Outcome::Created(result) => result.is_ok(),
        Outcome::Updated(result) => result.is_ok(),
        Outcome::Purged(result) => result.is_ok(),
        Outcome::Revealed(result) | Outcome::Rolled(result) => result.is_ok(),
        Outcome::Swept { result, .. } => result.is_ok(),
        Outcome::SweepChanged(_) => true,
        Outcome::Usage(result) => result.is_ok(),
        Outcome::Users(result) => result.is_ok(),
        Outcome::User(result) => result.is_ok(),
        Outcome::UserWritten(result) => result.is_ok(),
        Outcome::OwnerMissing(_) => true,
        Outcome::Audit(result) => result.is_ok(),
        Outcome::Marked(result) => result.is_ok(),
        Outcome::RecentSpend(result) => result.is_ok(),
        Outcome::Bulk { result, .. } => result.is_ok(),
    }
}

fn on_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let chord = KeyChord::from_event(&key);
    let context = state.context();
    let keymap = &state.session.keymap;
    // Ctrl-C must quit even from a text field, so global bindings come first.
    if let Some(action) = keymap.action(Context::Global, chord) {
        return perform(state, context, action);
    }
    if let Some(input) = focused_text_input(state)
        && let Some(request) = to_input_request(&CrosstermEvent::Key(key))
    {
        input.handle(request);
        return after_text_edit(state);
    }
    match state.session.keymap.action(context, chord) {
        Some(action) => perform(state, context, action),
        None => {
            if let Some(binding) = state.session.keymap.withheld(context, chord) {
                let text = format!("Read-only session: {} is not available", binding.description.to_lowercase());
                state.toast(ToastKind::Info, text);
            }
            Vec::new()
        }
    }
}

/// The text input that printable keys go to: the filter box, or a dialog's focused text field.
fn focused_text_input(state: &mut State) -> Option<&mut Input> {
    match state.modals.last_mut() {
        Some(Modal::Form(form)) if !form.submitting => match &mut form.focused_mut().value {
            FieldValue::Text(input) => Some(input),
            FieldValue::Choice(_) => None,
        },
        Some(_) => None,
        None => state.filter_box.as_mut(),
    }
}

fn after_text_edit(state: &mut State) -> Vec<Effect> {
    let Some(filter) = state.filter_box.as_ref().filter(|_| state.modals.is_empty()) else {
        return Vec::new();
    };
    // The other screens' filters apply on Enter.
    if filter.value() == state.list.filter || state.tab != screens::Tab::Keys {
        return Vec::new();
    }
    state.list.filter = filter.value().to_string();
    state.list.filter_edits += 1;
    vec![Effect::DebounceFilter { edit: state.list.filter_edits }]
}

fn perform(state: &mut State, context: Context, action: Action) -> Vec<Effect> {
    if let Some(effects) = screens::perform(state, context, action) {
        return effects;
    }
    if context == Context::List
        && let Some(effects) = bulk::perform(state, action)
    {
        return effects;
    }
    match action {
        Action::ForceQuit | Action::Quit => {
            state.quit = true;
            Vec::new()
        }
        Action::Help => {
            state.modals.push(Modal::Help { scroll: 0 });
            Vec::new()
        }
        Action::Show(tab) => screens::open(state, tab),
        Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::First | Action::Last
            if context == Context::Help =>
        {
            scroll_help(state, action)
        }
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
        Action::Back if context == Context::Detail => {
            state.screen = Screen::List;
            Vec::new()
        }
        Action::Back | Action::Cancel => {
            state.modals.pop();
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
        Action::Refresh => refresh(state),
        Action::ToggleAutoRefresh => {
            state.auto_refresh = !state.auto_refresh;
            if state.auto_refresh {
                let every = state.session.refresh_every.as_secs();
                state.toast(ToastKind::Info, format!("Auto-refresh on, every {every}s"));
                refresh(state)
            } else {
                state.toast(ToastKind::Info, "Auto-refresh off");
                Vec::new()
            }
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
        Action::Sweep => vec![call(state, Call::Sweep { dry_run: true })],
        // Other screens' own, which `screens::perform` took on those screens.
        Action::DisableAllKeys | Action::SwitchPane => Vec::new(),
        Action::SweepReport => {
            sweep_report::open(state);
            Vec::new()
        }
        Action::Submit => submit_form(state),
        Action::NextField | Action::PreviousField => {
            if let Some(Modal::Form(form)) = state.modals.last_mut() {
                form.move_focus(if action == Action::NextField { 1 } else { -1 });
            }
            Vec::new()
        }
        Action::CycleChoice | Action::PreviousChoice => {
            if let Some(Modal::Form(form)) = state.modals.last_mut() {
                form.cycle_choice(if action == Action::CycleChoice { 1 } else { -1 });
            }
            Vec::new()
        }
        Action::Confirm => match state.modals.pop() {
            Some(Modal::Confirm(confirm)) => run_confirmed(state, confirm.action),
            other => {
                state.modals.extend(other);
                Vec::new()
            }
        },
        Action::Copy => match state.modals.last() {
            Some(Modal::Secret(secret)) => {
                let plaintext = secret.plaintext.clone();
                state.toast(ToastKind::Info, "Copied to the clipboard (OSC 52; your terminal must allow it)");
                vec![Effect::CopyToClipboard(plaintext)]
            }
            _ => Vec::new(),
        },
    }
}

/// Scrolls the help overlay, never past its last line.
fn scroll_help(state: &mut State, action: Action) -> Vec<Effect> {
    let page = help::visible_lines(state).max(1) as isize;
    let most = help::max_scroll(state);
    if let Some(Modal::Help { scroll }) = state.modals.last_mut() {
        let delta = match action {
            Action::Up => -1,
            Action::Down => 1,
            Action::PageUp => -page,
            Action::PageDown => page,
            Action::First => isize::MIN / 2,
            _ => isize::MAX / 2,
        };
        *scroll = scroll.saturating_add_signed(delta).min(most);
    }
    Vec::new()
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

pub(super) fn confirm(state: &mut State, title: String, lines: Vec<String>, action: Confirmed) -> Vec<Effect> {
    state.modals.push(Modal::Confirm(Confirm { title, lines, action }));
    Vec::new()
}

fn submit_form(state: &mut State) -> Vec<Effect> {
    let now = state.now;
    let threshold = state.session.confirm_topup_at;
    let Some(Modal::Form(form)) = state.modals.last_mut() else { return Vec::new() };
    if form.submitting {
        return Vec::new();
    }
    if let Some((index, _)) = form.first_error(now) {
        form.focus = index;
        return Vec::new();
    }
    if !form.past_expiry_accepted
        && let Some(at) = form.past_expiry(now)
    {
        let when = at.format("%Y-%m-%d %H:%M UTC");
        let lines = vec![
            format!("{when} has passed: the key will be expired as soon as this is saved."),
            "If it deletes on expiry, the next sweep deletes it.".into(),
        ];
        return confirm(state, format!("Expire the key at {when}, in the past?"), lines, Confirmed::PastExpiry);
    }
    // A bulk dialog asks once more, naming the count, before anything is written.
    match &form.kind {
        FormKind::BulkTopUp(keys, idempotency_key) => {
            let (keys, idempotency_key) = (keys.clone(), idempotency_key.clone());
            return match form.top_up_request() {
                Ok((amount, note)) => bulk::confirm_top_up(state, keys, amount, note, idempotency_key),
                Err(message) => {
                    state.toast(ToastKind::Error, message);
                    Vec::new()
                }
            };
        }
        FormKind::BulkEdit(_, keys) => {
            let keys = keys.clone();
            return match form.key_patch(now) {
                Ok(patch) => bulk::confirm_edit(state, keys, patch),
                Err(message) => {
                    state.toast(ToastKind::Error, message);
                    Vec::new()
                }
            };
        }
        _ => {}
    }
    let call = match &form.kind {
        FormKind::TopUp(key, idempotency_key) => form.top_up_request().map(|(amount, note)| {
            Call::TopUp(TopUpRequest { key_id: key.id, amount, note, idempotency_key: idempotency_key.clone() })
        }),
        FormKind::Create => form.new_key_spec(now).map(|spec| Call::Create(Box::new(spec))),
        FormKind::AddUser => form.user_name().map(Call::AddUser),
        FormKind::Edit(key) => form.key_patch(now).and_then(|patch| {
            Ok(Call::Update { key_id: key.id, patch: Box::new(patch), credit: form.credit_change()? })
        }),
        FormKind::BulkTopUp(..) | FormKind::BulkEdit(..) => return Vec::new(),
    };
    match call {
        // Large amounts ask again, above the form, which stays open underneath.
        Ok(Call::TopUp(request)) if request.amount.abs() >= threshold => {
            let amount = request.amount;
            let title = format!("Apply {amount}? ({})", form.title());
            let mut lines = vec![format!("{amount} is at or above the confirmation threshold of {threshold}.")];
            if let FormKind::TopUp(key, _) = &form.kind
                && let Ok(preview) = top_up_preview(key, amount)
            {
                lines.push(format!("Result: {preview}"));
            }
            confirm(state, title, lines, Confirmed::TopUp(request))
        }
        Ok(call) => write(state, call),
        Err(message) => {
            state.toast(ToastKind::Error, message);
            Vec::new()
        }
    }
}

fn run_confirmed(state: &mut State, action: Confirmed) -> Vec<Effect> {
    let call = match action {
        Confirmed::PastExpiry => {
            if let Some(Modal::Form(form)) = state.modals.last_mut() {
                form.past_expiry_accepted = true;
            }
            return submit_form(state);
        }
        Confirmed::TopUp(request) => Call::TopUp(request),
        Confirmed::SetActive { key_id, active } => Call::SetActive { key_id, active },
        Confirmed::Purge { key_id } => Call::Purge { key_id },
        Confirmed::Reveal { key_id } => Call::Reveal { key_id },
        Confirmed::Roll { key_id } => Call::Roll { key_id },
        Confirmed::Sweep(shown) => Call::SweepAsShown(shown),
        Confirmed::SetUserActive { name, active } => Call::SetUserActive { name, active },
        Confirmed::DisableUserKeys { name } => Call::DisableUserKeys { name },
        Confirmed::CreateWithOwner(spec) => Call::CreateWithOwner(spec),
        Confirmed::Bulk { keys, action } => Call::Bulk { keys, action },
    };
    write(state, call)
}

/// Starts a write; an open form waits for its answer (and closes only on success).
fn write(state: &mut State, call: Call) -> Vec<Effect> {
    if let Some(Modal::Form(form)) = state.modals.last_mut() {
        form.submitting = true;
    }
    state.writes_in_flight += 1;
    vec![self::call(state, call)]
}

fn call(state: &mut State, call: Call) -> Effect {
    Effect::Call(state.next_request(), call)
}

fn count_keys(state: &mut State) -> Effect {
    call(state, Call::CountKeys)
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

fn reload(state: &mut State, focus: Focus) -> Vec<Effect> {
    let request = state.list.window.request(Placement::Reload, page_size(state));
    let page = start_page(state, Placement::Reload, request, focus);
    let count = state.next_request();
    state.list.matches_request = Some(count);
    let query = state.list.query(request, state.now);
    vec![page, Effect::Call(count, Call::CountMatches(query))]
}

/// Reloads from the top of the list because the query changed (filter, scope, sort, `g`).
pub(super) fn reload_from_start(state: &mut State, focus: Focus) -> Vec<Effect> {
    state.list.filter_edits += 1; // a pending debounce is now moot
    state.list.window.rewind();
    state.list.stale = true;
    reload(state, focus)
}

/// Reloads what is on screen, in place: `r` and auto-refresh.
pub(super) fn refresh(state: &mut State) -> Vec<Effect> {
    let focus = state.list.selected_key().map_or(Focus::First, |key| Focus::Key(key.id));
    let mut effects = reload(state, focus);
    effects.push(count_keys(state));
    if state.screen == Screen::Detail {
        effects.extend(load_detail(state));
    }
    match state.tab {
        screens::Tab::Keys => {}
        screens::Tab::Usage => effects.extend(screens::usage::update::load(state)),
        screens::Tab::Users => effects.extend(screens::users::update::refresh(state)),
        screens::Tab::Audit => effects.extend(screens::audit::update::refresh(state)),
    }
    effects
}

pub(super) fn load_detail(state: &mut State) -> Vec<Effect> {
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

fn on_outcome(state: &mut State, request: RequestId, outcome: Outcome) -> Vec<Effect> {
    if answered(&outcome) {
        state.outage = None;
    }
    match outcome {
        Outcome::Page(result) => {
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
        Outcome::Usage(result) => screens::usage::update::on_loaded(state, request, result),
        Outcome::Marked(result) => {
            bulk::on_marked(state, result);
            Vec::new()
        }
        // Without it the column shows no figure; the list itself is not affected.
        Outcome::RecentSpend(result) => {
            state.list.recent_spend.extend(result.unwrap_or_default());
            Vec::new()
        }
        Outcome::Bulk { done, result } => after_write(state, result, |state, report| {
            bulk::on_done(state, done, report, done == BulkAction::Purge.done());
            refresh(state)
        }),
        Outcome::Audit(result) => screens::audit::update::on_loaded(state, request, result),
        Outcome::Users(result) => screens::users::update::on_loaded(state, request, result),
        Outcome::User(result) => screens::users::update::on_user_loaded(state, request, result),
        Outcome::UserWritten(result) => screens::users::update::on_written(state, result),
        Outcome::OwnerMissing(spec) => confirm_new_owner(state, spec),
        Outcome::Counts(Ok(counts)) => {
            state.counts = Some(counts);
            Vec::new()
        }
        Outcome::Matches(result) => {
            // Only the answer to the latest query counts; an error leaves the title without it.
            if state.list.matches_request == Some(request) {
                state.list.matches = result.ok();
            }
            Vec::new()
        }
        Outcome::Counts(Err(message)) => {
            if state.outage.is_none() {
                state.toast(ToastKind::Error, format!("Cannot count keys: {message}"));
            }
            Vec::new()
        }
        Outcome::Detail(result) => {
            if state.detail.pending.is_none_or(|(pending, _)| pending != request) {
                return Vec::new();
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
            Vec::new()
        }
        Outcome::ToppedUp(result) => after_write(state, result, |state, top_up| {
            let key_id = top_up.entry.api_key_id;
            let mut name = String::new();
            for key in keys_with_id(state, key_id) {
                key.credited = top_up.balance.credited;
                key.used = top_up.balance.used;
                name = sanitize(&key.name).into_owned();
            }
            let remaining = top_up.balance.remaining.map_or("unlimited".into(), |r| r.to_string());
            let verb = if top_up.entry.delta.is_negative() { "Deducted" } else { "Added" };
            state.toast(
                ToastKind::Info,
                format!("{verb} {} on {name}: remaining {remaining}", top_up.entry.delta.abs()),
            );
            refresh_detail_of(state, key_id)
        }),
        Outcome::Created(result) => after_write(state, result, |state, created| {
            let name = sanitize(&created.key.name).into_owned();
            state.modals.push(Modal::Secret(Secret { name, plaintext: created.plaintext, once: true }));
            let mut effects = reload_from_start(state, Focus::Key(created.key.id));
            effects.push(count_keys(state));
            effects
        }),
        Outcome::Updated(result) => after_write(state, result, |state, key| {
            replace_row(state, &key);
            let status = key.status(state.now);
            state.toast(ToastKind::Info, format!("Saved {}: {status}", sanitize(&key.name)));
            let mut effects = refresh_detail_of(state, key.id);
            effects.push(count_keys(state));
            effects
        }),
        Outcome::Purged(result) => after_write(state, result, |state, key_id| {
            let list = &mut state.list;
            list.window.rows.retain(|key| key.id != key_id);
            list.selected = list.selected.min(list.window.rows.len().saturating_sub(1));
            if state.detail.data.as_ref().is_some_and(|data| data.key.id == key_id) {
                state.detail.data = None;
                state.screen = Screen::List;
            }
            state.toast(ToastKind::Info, "Purged the key");
            vec![count_keys(state)]
        }),
        Outcome::Rolled(result) => after_write(state, result, |state, rolled| {
            replace_row(state, &rolled.key);
            let name = sanitize(&rolled.key.name).into_owned();
            state.modals.push(Modal::Secret(Secret { name, plaintext: rolled.plaintext, once: true }));
            refresh_detail_of(state, rolled.key.id)
        }),
        Outcome::Revealed(result) => after_write(state, result, |state, revealed| {
            let name = sanitize(&revealed.key.name).into_owned();
            state.modals.push(Modal::Secret(Secret { name, plaintext: revealed.plaintext, once: false }));
            Vec::new()
        }),
        Outcome::Swept { dry_run: true, result: Ok(report) } => confirm_sweep(state, report, None),
        Outcome::Swept { dry_run: true, result: Err(message) } => {
            state.toast(ToastKind::Error, format!("Sweep dry run failed: {message}"));
            Vec::new()
        }
        Outcome::Swept { dry_run: false, result } => {
            state.writes_in_flight = state.writes_in_flight.saturating_sub(1);
            let changed = result.as_ref().is_ok_and(|r| r.disabled_count > 0 || r.deleted_count > 0);
            match &result {
                Ok(report) => sweep_report::record(state, report),
                Err(message) => state.toast(ToastKind::Error, format!("Sweep failed: {message}")),
            }
            state.last_sweep = Some(SweepResult { at: state.now, outcome: result });
            if changed { refresh(state) } else { Vec::new() }
        }
        Outcome::SweepChanged(report) => {
            state.writes_in_flight = state.writes_in_flight.saturating_sub(1);
            // What the dry run showed was (partly) swept elsewhere: the list is out of date too.
            let mut effects =
                confirm_sweep(state, report, Some("Nothing was swept: the expired keys changed since the dry run"));
            effects.extend(refresh(state));
            effects
        }
    }
}

/// The create dialog names an owner who does not exist: asks before creating them with the key.
fn confirm_new_owner(state: &mut State, spec: Box<NewKeySpec>) -> Vec<Effect> {
    state.writes_in_flight = state.writes_in_flight.saturating_sub(1);
    if let Some(Modal::Form(form)) = state.modals.last_mut() {
        form.submitting = false;
    }
    let owner = sanitize(&spec.owner).into_owned();
    let lines = vec![
        format!("There is no user named {owner} yet."),
        format!("Confirming adds the user {owner}, then creates the key for them."),
    ];
    confirm(state, format!("Create the user {owner} too?"), lines, Confirmed::CreateWithOwner(spec))
}

/// Asks to confirm the sweep a dry run showed; `changed` says why it is asked again.
fn confirm_sweep(state: &mut State, report: SweepReport, changed: Option<&str>) -> Vec<Effect> {
    let lines = sweep_report::lines_of(&report, ("disable", "delete"));
    if lines.is_empty() {
        let nothing = "no enabled key has expired";
        let text = match changed {
            Some(why) => format!("{why}; now {nothing}"),
            None => format!("Nothing to sweep: {nothing}"),
        };
        state.toast(ToastKind::Info, text);
        return Vec::new();
    }
    let plan = format!("{} to disable, {} to delete", report.disabled_count, report.deleted_count);
    let (title, lines) = match changed {
        Some(why) => (format!("The sweep changed: now {plan}. Run it?"), [vec![format!("{why}.")], lines].concat()),
        None => (format!("Run the expiry sweep now? {plan}"), lines),
    };
    confirm(state, title, lines, Confirmed::Sweep(Box::new(report)))
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

/// Ends a write: on success closes the form it came from and runs `then`; on failure keeps the
/// form open so the admin can correct it, and says what went wrong.
pub(super) fn after_write<T>(
    state: &mut State,
    result: Result<T, String>,
    then: impl FnOnce(&mut State, T) -> Vec<Effect>,
) -> Vec<Effect> {
    state.writes_in_flight = state.writes_in_flight.saturating_sub(1);
    let form_open = matches!(state.modals.last(), Some(Modal::Form(form)) if form.submitting);
    match result {
        Ok(value) => {
            if form_open {
                state.modals.pop();
            }
            then(state, value)
        }
        Err(message) => {
            if let Some(Modal::Form(form)) = state.modals.last_mut() {
                form.submitting = false;
            }
            state.toast(ToastKind::Error, message);
            Vec::new()
        }
    }
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
