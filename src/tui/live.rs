//! Live updates under an open dialog: when a reload shows that the key a dialog is about changed
//! meanwhile (another admin, a gateway's usage), the admin is told before they submit or confirm,
//! and a top-up's preview follows the key as it is now.

use uuid::Uuid;

use crate::domain::ApiKey;
use crate::domain::text::sanitize;

use super::forms::FormKind;
use super::state::{Confirmed, Modal, State, ToastKind};

/// The key the open dialog is about: a form's, or the key a confirmation acts on.
pub fn dialog_key(state: &State) -> Option<Uuid> {
    match state.modals.last() {
        Some(Modal::Form(form)) => match &form.kind {
            FormKind::TopUp(key, _) | FormKind::Edit(key) => Some(key.id),
            FormKind::Create | FormKind::AddUser | FormKind::BulkTopUp(..) | FormKind::BulkEdit(..) => None,
        },
        Some(Modal::Confirm(confirm)) => match &confirm.action {
            Confirmed::TopUp(request) => Some(request.key_id),
            Confirmed::SetActive { key_id, .. }
            | Confirmed::Purge { key_id }
            | Confirmed::Reveal { key_id }
            | Confirmed::Roll { key_id } => Some(*key_id),
            Confirmed::PastExpiry
            | Confirmed::Sweep(_)
            | Confirmed::SetUserActive { .. }
            | Confirmed::DisableUserKeys { .. }
            | Confirmed::CreateWithOwner(_)
            | Confirmed::Bulk { .. } => None,
        },
        _ => None,
    }
}

/// `fresh` is the dialog's key as just read, `before` as the list showed it until then: if it
/// changed since the dialog opened, say so. A form holds its own copy: a top-up's is replaced (its
/// preview is then right); an edit's is kept, since the form's fields were filled from it. A
/// confirmation gets a line saying so, above its question, before the admin confirms.
pub fn on_dialog_key_seen(state: &mut State, before: Option<&ApiKey>, fresh: ApiKey) {
    match state.modals.last_mut() {
        Some(Modal::Form(_)) => on_form_key_seen(state, fresh),
        Some(Modal::Confirm(confirm)) => {
            if before.is_none_or(|before| same_to_an_admin(before, &fresh)) {
                return;
            }
            let text = format!("{} changed meanwhile: check it before you confirm", sanitize(&fresh.name));
            if !confirm.lines.contains(&text) {
                confirm.lines.insert(0, text.clone());
            }
            state.toast(ToastKind::Info, text);
        }
        _ => {}
    }
}

fn on_form_key_seen(state: &mut State, fresh: ApiKey) {
    let Some(Modal::Form(form)) = state.modals.last_mut() else { return };
    let (shown, follows) = match &mut form.kind {
        FormKind::TopUp(key, _) => (key, true),
        FormKind::Edit(key) => (key, false),
        FormKind::Create | FormKind::AddUser | FormKind::BulkTopUp(..) | FormKind::BulkEdit(..) => return,
    };
    if shown.id != fresh.id || same_to_an_admin(shown, &fresh) {
        return;
    }
    let name = sanitize(&fresh.name).into_owned();
    let text = if follows {
        **shown = fresh;
        format!("{name} changed meanwhile; the preview shows it as it is now")
    } else {
        format!("{name} changed meanwhile; saving replaces the fields you see")
    };
    state.toast(ToastKind::Info, text);
}

/// Equal but for when the key was last used or written: a gateway using the key is no news.
fn same_to_an_admin(a: &ApiKey, b: &ApiKey) -> bool {
    *a == ApiKey { last_used_at: a.last_used_at, updated_at: a.updated_at, ..b.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;
    use crate::tui::fixtures::{loaded_state, prepaid_key};
    use crate::tui::forms::Form;
    use crate::tui::state::Confirm;

    fn with_dialog(form: Form) -> State {
        with_modal(Modal::Form(form))
    }

    fn with_modal(modal: Modal) -> State {
        let mut state = loaded_state((100, 30));
        state.modals.push(modal);
        state
    }

    fn purge_confirmation() -> State {
        let lines = vec!["Its usage stays.".to_string()];
        let action = Confirmed::Purge { key_id: prepaid_key().id };
        with_modal(Modal::Confirm(Confirm { title: "Purge wallet?".into(), lines, action }))
    }

    #[test]
    fn a_confirmation_on_a_key_that_changed_says_so_above_its_question() {
        let mut state = purge_confirmation();
        assert_eq!(dialog_key(&state), Some(prepaid_key().id));
        let disabled = ApiKey { is_active: false, ..prepaid_key() };
        on_dialog_key_seen(&mut state, Some(&prepaid_key()), disabled.clone());
        // Seen again (the next reload, or the same change published twice): said once.
        on_dialog_key_seen(&mut state, Some(&prepaid_key()), disabled);
        let Some(Modal::Confirm(confirm)) = state.modals.last() else { panic!("the confirmation closed") };
        let name = sanitize(&prepaid_key().name).into_owned();
        assert_eq!(
            confirm.lines,
            [format!("{name} changed meanwhile: check it before you confirm"), "Its usage stays.".into()]
        );
        assert!(state.toast.unwrap().text.contains("changed meanwhile"));
    }

    #[test]
    fn a_confirmation_on_an_unchanged_key_stays_as_it_was() {
        let mut state = purge_confirmation();
        let used = ApiKey { last_used_at: Some(state.now), ..prepaid_key() };
        on_dialog_key_seen(&mut state, Some(&prepaid_key()), used);
        on_dialog_key_seen(&mut state, None, ApiKey { is_active: false, ..prepaid_key() });
        let Some(Modal::Confirm(confirm)) = state.modals.last() else { panic!("the confirmation closed") };
        assert_eq!(confirm.lines, ["Its usage stays."]);
        assert!(state.toast.is_none());
    }

    #[test]
    fn a_top_up_dialog_follows_its_key_and_says_so() {
        let mut state = with_dialog(Form::top_up(&prepaid_key(), "t-1".into()));
        assert_eq!(dialog_key(&state), Some(prepaid_key().id));
        let topped_up = ApiKey { credited: Some(Money::from_usd(20)), ..prepaid_key() };
        on_dialog_key_seen(&mut state, Some(&prepaid_key()), topped_up.clone());
        let Some(Modal::Form(form)) = state.modals.last() else { panic!("the dialog closed") };
        assert!(matches!(&form.kind, FormKind::TopUp(key, _) if **key == topped_up));
        assert!(state.toast.unwrap().text.contains("changed meanwhile"));
    }

    #[test]
    fn an_edit_dialog_keeps_its_copy_but_says_so() {
        let mut state = with_dialog(Form::edit(&prepaid_key()));
        on_dialog_key_seen(&mut state, Some(&prepaid_key()), ApiKey { is_active: false, ..prepaid_key() });
        let Some(Modal::Form(form)) = state.modals.last() else { panic!("the dialog closed") };
        assert!(matches!(&form.kind, FormKind::Edit(key) if **key == prepaid_key()));
        assert!(state.toast.unwrap().text.contains("saving replaces"));
    }

    #[test]
    fn being_used_by_a_gateway_is_no_news() {
        let mut state = with_dialog(Form::top_up(&prepaid_key(), "t-1".into()));
        let used = ApiKey { last_used_at: Some(state.now), updated_at: state.now, ..prepaid_key() };
        on_dialog_key_seen(&mut state, Some(&prepaid_key()), used);
        assert!(state.toast.is_none());
    }
}
