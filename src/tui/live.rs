//! Live updates under an open dialog: when a reload shows that the key a dialog is about changed
//! meanwhile (another admin, a gateway's usage), the admin is told before they submit, and a
//! top-up's preview follows the key as it is now.

use uuid::Uuid;

use crate::domain::ApiKey;
use crate::domain::text::sanitize;

use super::forms::FormKind;
use super::state::{Modal, State, ToastKind};

/// The key the open dialog is about, if it holds a copy of it.
pub fn dialog_key(state: &State) -> Option<Uuid> {
    match state.modals.last() {
        Some(Modal::Form(form)) => match &form.kind {
            FormKind::TopUp(key, _) | FormKind::Edit(key) => Some(key.id),
            FormKind::Create | FormKind::BulkTopUp(..) | FormKind::BulkEdit(..) => None,
        },
        _ => None,
    }
}

/// `fresh` is the dialog's key as just read: if it changed since the dialog opened, say so. A
/// top-up's copy is replaced (its preview is then right); an edit's is kept, since the form's
/// fields were filled from it.
pub fn on_dialog_key_seen(state: &mut State, fresh: ApiKey) {
    let Some(Modal::Form(form)) = state.modals.last_mut() else { return };
    let (shown, follows) = match &mut form.kind {
        FormKind::TopUp(key, _) => (key, true),
        FormKind::Edit(key) => (key, false),
        FormKind::Create | FormKind::BulkTopUp(..) | FormKind::BulkEdit(..) => return,
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

    fn with_dialog(form: Form) -> State {
        let mut state = loaded_state((100, 30));
        state.modals.push(Modal::Form(form));
        state
    }

    #[test]
    fn a_top_up_dialog_follows_its_key_and_says_so() {
        let mut state = with_dialog(Form::top_up(&prepaid_key(), "t-1".into()));
        assert_eq!(dialog_key(&state), Some(prepaid_key().id));
        let topped_up = ApiKey { credited: Some(Money::from_usd(20)), ..prepaid_key() };
        on_dialog_key_seen(&mut state, topped_up.clone());
        let Some(Modal::Form(form)) = state.modals.last() else { panic!("the dialog closed") };
        assert!(matches!(&form.kind, FormKind::TopUp(key, _) if **key == topped_up));
        assert!(state.toast.unwrap().text.contains("changed meanwhile"));
    }

    #[test]
    fn an_edit_dialog_keeps_its_copy_but_says_so() {
        let mut state = with_dialog(Form::edit(&prepaid_key()));
        on_dialog_key_seen(&mut state, ApiKey { is_active: false, ..prepaid_key() });
        let Some(Modal::Form(form)) = state.modals.last() else { panic!("the dialog closed") };
        assert!(matches!(&form.kind, FormKind::Edit(key) if **key == prepaid_key()));
        assert!(state.toast.unwrap().text.contains("saving replaces"));
    }

    #[test]
    fn being_used_by_a_gateway_is_no_news() {
        let mut state = with_dialog(Form::top_up(&prepaid_key(), "t-1".into()));
        let used = ApiKey { last_used_at: Some(state.now), updated_at: state.now, ..prepaid_key() };
        on_dialog_key_seen(&mut state, used);
        assert!(state.toast.is_none());
    }
}
