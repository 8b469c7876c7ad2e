//! Views: functions of `&State` that draw into a frame. They never wait for anything and never
//! change the state.

pub mod chart;
mod dialogs;
pub mod format;
pub mod help;
pub mod layout;
mod status;
pub mod table;
mod wrap;

use ratatui::Frame;

use super::screens;
use super::state::{Modal, State};
use layout::Areas;

pub fn render(frame: &mut Frame, state: &State) {
    let areas = Areas::new(frame.area(), state.screen, state.filter_box.is_some());
    status::render_title(frame, state, areas.title);
    screens::render(frame, state, &areas);
    if let Some(area) = areas.filter {
        status::render_filter(frame, state, area);
    }
    status::render_status(frame, state, areas.status);
    status::render_hints(frame, state, areas.hints);
    for modal in &state.modals {
        match modal {
            Modal::Help { scroll } => help::render(frame, state, *scroll),
            Modal::Form(form) => dialogs::form::render(frame, state, form),
            Modal::Confirm(confirm) => dialogs::confirm::render(frame, state, confirm),
            Modal::Secret(secret) => dialogs::secret::render(frame, state, secret),
            Modal::Report(report) => dialogs::confirm::render_lines(frame, state, &report.title, &report.lines, None),
        }
    }
}
