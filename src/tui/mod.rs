//! The terminal console: keytop's main face.
//!
//! Elm-shaped: [`state::State`] is plain data, [`update::update`] turns events into state changes
//! and effects, views are functions of `&State`, and effects run in tokio tasks over a clone of
//! the service, answering with messages tagged by request id. The loop ([`app`]) draws only
//! when something changed. Each screen (keys, usage, users, audit) has its own state, update and
//! view under [`screens`]; the rest of this module is what they share.

mod app;
#[doc(hidden)]
pub mod bench;
mod color_depth;
mod effect;
mod event;
mod forms;
mod keymap;
mod live;
mod screens;
mod state;
mod sweep_report;
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
use crate::store::changes::Changes;

use app::Feeds;
pub use app::Hangup;
pub use color_depth::ColorDepth;
use keymap::Keymap;
use state::{Session, State};
pub use terminal::{Screen, draw_synchronized, write_clipboard};
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
    /// The database's change feed ([`crate::store::changes`]): with it, changes show as they
    /// happen, and this TUI's own writes are published to the others in the process; without it,
    /// changes show only on a refresh.
    pub changes: Option<Changes>,
}

/// Runs the TUI until the admin quits (or SIGTERM/SIGHUP). The terminal is restored on every way
/// out.
pub async fn run(service: KeyService, options: TuiOptions) -> anyhow::Result<()> {
    run_with_hangup(service, options, Hangup::new()?).await
}

/// [`run`] with signal listeners the caller set up earlier, so that a signal arriving before the
/// TUI starts (while the demo fills its database) is not lost.
pub async fn run_with_hangup(service: KeyService, options: TuiOptions, mut hangup: Hangup) -> anyhow::Result<()> {
    // Checked before the terminal changes mode, so a bad config reads like any other error.
    let session = session(&service, &options, ColorDepth::of_environment())?;
    let guard = terminal::TerminalGuard::enter().context("cannot set up the terminal")?;
    let size = guard.terminal.size().context("cannot read the terminal size")?;
    let state = State::new(session, service.now(), (size.width, size.height));
    let stop = async move { hangup.recv().await };
    let feeds = Feeds { changes: options.changes, presence: None };
    app::run_loop(guard, crossterm::event::EventStream::new(), stop, feeds, state, service).await
}

/// A terminal that is not this process's own: its size, its input as terminal events, the colours
/// it shows, and who else is connected to the same server.
pub struct RemoteTerminal<S, I> {
    pub screen: S,
    pub input: I,
    pub size: (u16, u16),
    pub color_depth: ColorDepth,
    pub presence: Option<tokio::sync::watch::Receiver<Vec<String>>>,
}

/// Runs the TUI on a remote terminal until the admin quits, its input ends or `stop` resolves.
/// Nothing here touches this process's own terminal.
pub async fn run_remote<S, I>(
    service: KeyService,
    options: TuiOptions,
    terminal: RemoteTerminal<S, I>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()>
where
    S: Screen,
    I: futures::Stream<Item = std::io::Result<crossterm::event::Event>> + Unpin,
{
    let session = session(&service, &options, terminal.color_depth)?;
    let state = State::new(session, service.now(), terminal.size);
    let feeds = Feeds { changes: options.changes, presence: terminal.presence };
    app::run_loop(terminal.screen, terminal.input, stop, feeds, state, service).await
}

fn session(service: &KeyService, options: &TuiOptions, color_depth: ColorDepth) -> anyhow::Result<Session> {
    let keymap = Keymap::new(&options.keybindings, options.read_only).map_err(anyhow::Error::msg)?;
    let sweeps = options.sweep.enabled && !options.read_only;
    Ok(Session {
        read_only: options.read_only,
        database: service.describe_database(),
        keymap,
        theme: Theme::for_choice(options.ui.theme, color_depth),
        confirm_topup_at: options.ui.confirm_topup_at,
        refresh_every: options.ui.refresh_interval,
        live_updates: options.changes.is_some(),
        sweep_every: sweeps.then_some(options.sweep.interval),
        instance: uuid::Uuid::new_v4(),
    })
}
