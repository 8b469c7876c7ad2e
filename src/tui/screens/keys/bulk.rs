//! Bulk actions in the key list: `Space` marks a key, `*` every key the filter and scope match,
//! `Esc` clears the marks; with marks, `d`, `E`, `t`, `e` and `D` act on every marked key after
//! one confirmation naming the count, and the result says how many succeeded and which failed
//! and why.

use crate::domain::KeyPatch;
use crate::domain::text::sanitize;
use crate::service::{BulkAction, BulkReport, MarkedKey, keys_word};

use super::paging::PageRequest;
use crate::tui::effect::{Call, Effect};
use crate::tui::forms::Form;
use crate::tui::keymap::Action;
use crate::tui::state::{Confirm, Confirmed, Modal, Report, State, ToastKind};
use crate::tui::view::format::marked_names;

/// Marks the selected key, or unmarks it, and steps to the next one.
pub fn toggle_mark(state: &mut State) {
    let Some(key) = state.list.selected_key() else { return };
    let (id, name) = (key.id, key.name.clone());
    if state.list.marks.remove(&id).is_none() {
        state.list.marks.insert(id, name);
    }
}

/// Asks for every key the list's query matches (not only the loaded rows), to mark them.
pub fn mark_all(state: &mut State) -> Vec<Effect> {
    let request = PageRequest { from: Default::default(), limit: 0, flipped: false };
    let query = state.list.query(request, state.now);
    vec![Effect::Call(state.next_request(), Call::MarkMatches(query))]
}

pub fn on_marked(state: &mut State, result: Result<(Vec<MarkedKey>, bool), String>) {
    match result {
        Ok((keys, more)) => {
            let count = keys.len();
            state.list.marks.extend(keys.into_iter().map(|key| (key.id, key.name)));
            let text = if more {
                format!("Marked the first {count} matching keys; narrow the filter to mark the rest")
            } else {
                format!("Marked {count} matching keys ({} marked in all)", state.list.marks.len())
            };
            state.toast(ToastKind::Info, text);
        }
        Err(message) => state.toast(ToastKind::Error, format!("Cannot mark the matches: {message}")),
    }
}

/// The marked keys' version of a list action, when there are marks and the action has one.
pub fn perform(state: &mut State, action: Action) -> Option<Vec<Effect>> {
    if state.list.marks.is_empty() {
        return None;
    }
    let keys = state.list.marked();
    let count = keys.len();
    let names = marked_names(&keys);
    let effects = match action {
        Action::ToggleActive => confirm(
            state,
            format!("Disable {count} {}?", keys_word(count)),
            vec![
                format!("Keys: {names}."),
                "Requests with them will be refused until they are enabled again. Nothing is deleted.".into(),
            ],
            keys,
            BulkAction::Disable,
        ),
        Action::Enable => confirm(
            state,
            format!("Enable {count} {}?", keys_word(count)),
            vec![format!("Keys: {names}."), "Requests with them will be accepted again (unless expired).".into()],
            keys,
            BulkAction::Enable,
        ),
        Action::Purge => confirm(
            state,
            format!("Purge {count} {}?", keys_word(count)),
            vec![
                format!("Keys: {names}."),
                "They are deleted for good: requests with them will be refused. Their usage history stays.".into(),
                "This cannot be undone.".into(),
            ],
            keys,
            BulkAction::Purge,
        ),
        Action::TopUp => {
            let serial = state.next_request().0;
            let idempotency_key = format!("tui-{}-{serial}", state.session.instance);
            state.modals.push(Modal::Form(Form::bulk_top_up(keys, idempotency_key)));
            Vec::new()
        }
        Action::Edit => {
            let Some(template) = state.list.selected_key().cloned() else { return Some(Vec::new()) };
            state.modals.push(Modal::Form(Form::bulk_edit(&template, keys)));
            Vec::new()
        }
        _ => return None,
    };
    Some(effects)
}

/// The confirmation of a bulk top-up as submitted from its dialog.
pub fn confirm_top_up(
    state: &mut State,
    keys: Vec<MarkedKey>,
    amount: crate::domain::Money,
    note: Option<String>,
    idempotency_key: String,
) -> Vec<Effect> {
    let (verb, each) = if amount.is_negative() { ("Deduct", "from each of") } else { ("Add", "to each of") };
    let title = format!("{verb} {} {each} {} {}?", amount.abs(), keys.len(), keys_word(keys.len()));
    let lines = vec![
        format!("Keys: {}.", marked_names(&keys)),
        "Each gets its own ledger row; a key that is not prepaid, or cannot pay, is reported and skipped.".into(),
    ];
    confirm(state, title, lines, keys, BulkAction::TopUp { amount, note, idempotency_key })
}

/// The confirmation of a bulk edit as submitted from its dialog.
pub fn confirm_edit(state: &mut State, keys: Vec<MarkedKey>, patch: KeyPatch) -> Vec<Effect> {
    if patch.is_empty() {
        state.toast(ToastKind::Info, "No field was changed: nothing to apply");
        return Vec::new();
    }
    let title = format!("Change {} {}?", keys.len(), keys_word(keys.len()));
    let lines = vec![
        format!("Keys: {}.", marked_names(&keys)),
        "The fields you changed are set on each; every other field stays as each key has it.".into(),
    ];
    confirm(state, title, lines, keys, BulkAction::Update(Box::new(patch)))
}

fn confirm(
    state: &mut State,
    title: String,
    lines: Vec<String>,
    keys: Vec<MarkedKey>,
    action: BulkAction,
) -> Vec<Effect> {
    state.modals.push(Modal::Confirm(Confirm { title, lines, action: Confirmed::Bulk { keys, action } }));
    Vec::new()
}

/// After a bulk action: the keys that succeeded are unmarked (those that failed stay marked, to
/// try again), a purge takes its keys off the list, and the result is told: a message when all
/// succeeded, else a report naming each failure and its reason.
pub fn on_done(state: &mut State, done: &str, report: BulkReport, purged: bool) {
    for key in &report.succeeded {
        state.list.marks.remove(&key.id);
    }
    if purged {
        let list = &mut state.list;
        list.window.rows.retain(|row| !report.succeeded.iter().any(|key| key.id == row.id));
        list.selected = list.selected.min(list.window.rows.len().saturating_sub(1));
    }
    let total = report.succeeded.len() + report.failed.len();
    let summary = format!("{} {} of {total} {}", capitalised(done), report.succeeded.len(), keys_word(total));
    if report.failed.is_empty() {
        state.toast(ToastKind::Info, summary);
        return;
    }
    let mut lines = vec![format!("{} failed and stay marked:", report.failed.len())];
    lines.extend(
        report.failed.iter().map(|failure| format!("{}: {}", sanitize(&failure.key.name), sanitize(&failure.reason))),
    );
    state.modals.push(Modal::Report(Report { title: summary, lines }));
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
