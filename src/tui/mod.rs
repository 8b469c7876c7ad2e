//! The terminal console: keytop's main face.
//!
//! Elm-shaped: [`state::State`] is plain data, [`update::update`] turns events into state changes
//! and effects, views are functions of `&State`, and effects run in tokio tasks over a clone of
//! the service, answering with messages tagged by request id. The loop ([`app`]) draws only
//! when something changed.

mod app;
#[doc(hidden)]
pub mod bench;
mod effect;
mod event;
mod forms;
mod keymap;
mod paging;
mod screens;
mod state;
mod terminal;
mod theme;
mod update;
mod view;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::config::{SweepConfig, UiConfig};
use crate::service::KeyService;

pub use app::Hangup;
use keymap::Keymap;
use state::{Session, State};
use theme::Theme;

/// How the TUI runs, from the command line and the config file.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// Every mutation disabled and left out of hints and help.
    pub read_only: bool,
    pub ui: UiConfig,
    pub sweep: SweepConfig,
    /// Action name → key (`top_up = "t"`), from the `[keybindings]` table of the config file.
    pub keybindings: BTreeMap<String, String>,
}

/// Runs the TUI until the admin quits (or SIGTERM/SIGHUP). The terminal is restored on every way
/// out.
pub async fn run(service: KeyService, options: TuiOptions) -> anyhow::Result<()> {
    run_with_hangup(service, options, Hangup::new()?).await
}

/// [`run`] with signal listeners the caller set up earlier, so that a signal arriving before the
/// TUI starts (while the demo fills its database) is not lost.
pub async fn run_with_hangup(service: KeyService, options: TuiOptions, hangup: Hangup) -> anyhow::Result<()> {
    // Checked before the terminal changes mode, so a bad config reads like any other error.
    let session = session(&service, &options)?;
    let guard = terminal::TerminalGuard::enter().context("cannot set up the terminal")?;
    let size = guard.terminal.size().context("cannot read the terminal size")?;
    let state = State::new(session, service.now(), (size.width, size.height));
    app::run_loop(guard, state, service, hangup).await
}

fn session(service: &KeyService, options: &TuiOptions) -> anyhow::Result<Session> {
    let keymap = Keymap::new(&options.keybindings, options.read_only).map_err(anyhow::Error::msg)?;
    let sweeps = options.sweep.enabled && !options.read_only;
    Ok(Session {
        read_only: options.read_only,
        database: service.describe_database(),
        keymap,
        theme: Theme::for_choice(options.ui.theme, Theme::no_color_requested()),
        confirm_topup_at: options.ui.confirm_topup_at,
        refresh_every: options.ui.refresh_interval,
        sweep_every: sweeps.then_some(options.sweep.interval),
        instance: uuid::Uuid::new_v4(),
    })
}
