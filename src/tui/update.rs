//! `update`: the only place the state changes. Pure and synchronous: it reads an event, changes
//! the state and returns the effects to run, so every behaviour is testable without a terminal
//! or a database.

use crossterm::event::{Event as CrosstermEvent, KeyEvent, KeyEventKind};
use tui_input::{Input, backend::crossterm::to_input_request};

use crate::domain::text::sanitize;
use crate::service::{BulkAction, NewKeySpec};
use crate::store::SweepReport;

use super::effect::{Call, Effect};
use super::event::{Event, Outcome};
use super::forms::{FieldValue, FormKind, top_up_preview};
use super::keymap::{Action, Context, KeyChord};
use super::screens;
use super::screens::keys::update::{reload, reload_from_start};
use super::screens::keys::{self, Focus, bulk};
use super::state::{
    Confirm, Confirmed, Modal, Outage, RequestId, Secret, State, SweepResult, ToastKind, TopUpRequest, retry_delay,
};
use super::sweep_report;
use super::view::help;

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
            keys::update::on_resize(state)
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
    if state.tab != screens::Tab::Keys {
        return Vec::new();
    }
    let text = filter.value().to_string();
    keys::update::on_filter_edit(state, text)
}

fn perform(state: &mut State, context: Context, action: Action) -> Vec<Effect> {
    if let Some(effects) = screens::perform(state, context, action) {
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
        Action::Back if context == Context::Detail => keys::update::perform(state, context, action),
        Action::Back | Action::Cancel => {
            state.modals.pop();
            Vec::new()
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
        _ => keys::update::perform(state, context, action),
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

pub(super) fn call(state: &mut State, call: Call) -> Effect {
    Effect::Call(state.next_request(), call)
}

pub(super) fn count_keys(state: &mut State) -> Effect {
    call(state, Call::CountKeys)
}

/// Reloads what is on screen, in place: `r` and auto-refresh.
pub(super) fn refresh(state: &mut State) -> Vec<Effect> {
    let mut effects = keys::update::refresh(state);
    match state.tab {
        screens::Tab::Keys => {}
        screens::Tab::Usage => effects.extend(screens::usage::update::load(state)),
        screens::Tab::Users => effects.extend(screens::users::update::refresh(state)),
        screens::Tab::Audit => effects.extend(screens::audit::update::refresh(state)),
    }
    effects
}

// Answers

fn on_outcome(state: &mut State, request: RequestId, outcome: Outcome) -> Vec<Effect> {
    if answered(&outcome) {
        state.outage = None;
    }
    match outcome {
        Outcome::Page(result) => keys::update::on_page_loaded(state, request, result),
        Outcome::Usage(result) => screens::usage::update::on_loaded(state, request, result),
        Outcome::Marked(result) => {
            bulk::on_marked(state, result);
            Vec::new()
        }
        Outcome::RecentSpend(result) => {
            keys::update::on_recent_spend(state, result);
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
            keys::update::on_matches(state, request, result);
            Vec::new()
        }
        Outcome::Counts(Err(message)) => {
            if state.outage.is_none() {
                state.toast(ToastKind::Error, format!("Cannot count keys: {message}"));
            }
            Vec::new()
        }
        Outcome::Detail(result) => {
            keys::update::on_detail_loaded(state, request, result);
            Vec::new()
        }
        Outcome::ToppedUp(result) => after_write(state, result, keys::update::on_topped_up),
        Outcome::Created(result) => after_write(state, result, keys::update::on_created),
        Outcome::Updated(result) => after_write(state, result, keys::update::on_updated),
        Outcome::Purged(result) => after_write(state, result, keys::update::on_purged),
        Outcome::Rolled(result) => after_write(state, result, keys::update::on_rolled),
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
