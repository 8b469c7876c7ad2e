//! What the sweeps of a session did: totals for the status bar, a message when one changed
//! anything, and the last report opened again on request.

use crate::domain::text::sanitize;
use crate::store::SweepReport;

use super::keymap::{Action, Context};
use super::state::{Modal, Report, State, SweepResult, ToastKind};

/// Adds a finished sweep to the session's totals and says when it changed anything, since a
/// timed sweep runs unseen.
pub fn record(state: &mut State, report: &SweepReport) {
    if report.disabled_count == 0 && report.deleted_count == 0 {
        return;
    }
    state.sweep_totals.disabled += report.disabled_count;
    state.sweep_totals.deleted += report.deleted_count;
    state.last_changing_sweep = Some(SweepResult { at: state.now, outcome: Ok(report.clone()) });
    let reopen = match state.session.keymap.key_for(Context::List, Action::SweepReport) {
        Some(key) => format!(" ({key} shows which)"),
        None => String::new(),
    };
    let text =
        format!("The sweep disabled {} and deleted {} keys{reopen}", report.disabled_count, report.deleted_count);
    state.toast(ToastKind::Info, text);
}

/// Opens the report of the last sweep that changed anything (else of the last sweep).
pub fn open(state: &mut State) {
    let Some(SweepResult { at, outcome }) = state.last_changing_sweep.as_ref().or(state.last_sweep.as_ref()) else {
        state.toast(ToastKind::Info, "No sweep has run in this session yet");
        return;
    };
    let title = format!("Sweep at {} UTC", at.format("%H:%M:%S"));
    let lines = match outcome {
        Ok(report) if report.skipped => vec!["Skipped: another keytop process was sweeping.".to_string()],
        Ok(report) => {
            let mut lines = vec![format!("Disabled {}, deleted {}.", report.disabled_count, report.deleted_count)];
            lines.extend(lines_of(report, ("disabled", "deleted")));
            lines
        }
        Err(message) => vec![format!("Failed: {message}")],
    };
    state.modals.push(Modal::Report(Report { title, lines }));
}

/// One line per key a sweep names (sanitised names), with `verbs` for disabled and deleted
/// keys, and how many more it did not name.
pub fn lines_of(report: &SweepReport, (disabled, deleted): (&str, &str)) -> Vec<String> {
    let line = |verb: &str, key: &crate::domain::SweptKey| format!("{verb} {} ({})", sanitize(&key.name), key.id);
    report
        .disabled
        .iter()
        .map(|key| line(disabled, key))
        .chain(report.deleted.iter().map(|key| line(deleted, key)))
        .chain(report.truncated.then(|| {
            let listed = (report.disabled.len() + report.deleted.len()) as u64;
            format!("… and {} more", (report.disabled_count + report.deleted_count).saturating_sub(listed))
        }))
        .collect()
}
