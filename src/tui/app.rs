//! The loop: input, timers and effect answers in; `update`; effects out; a frame drawn only
//! when something changed, at most once per frame interval however many events arrived.
//!
//! Where input comes from and where frames go are parameters, so the local terminal and a remote
//! one (an SSH channel) run the same loop.

use std::future::Future;
use std::io;
use std::time::Duration;

use crossterm::event::{Event as TerminalEvent, KeyEventKind};
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep_until};

use crate::service::KeyService;
use crate::store::changes::Changes;

use super::effect::{Effect, Runner};
use super::event::Event;
use super::state::State;
use super::terminal::Screen;
use super::update::{start, update};
use super::view;

/// The shortest time between two frames (about 60 per second): bursts of events share a frame.
const FRAME_INTERVAL: Duration = Duration::from_millis(16);
/// How often relative times ("in 3d") and toasts move on.
const TICK: Duration = Duration::from_secs(1);
/// A burst of database changes (a bulk load, a gateway recording usage) costs one re-query.
const CHANGE_DEBOUNCE: Duration = Duration::from_millis(100);

/// What the world tells the TUI besides its input.
#[derive(Default)]
pub struct Feeds {
    /// Goes up when the database may have changed: what is on screen is queried again. This
    /// TUI's own writes are published on it.
    pub changes: Option<Changes>,
    /// Who is connected to the same `keytop serve`, this session included.
    pub presence: Option<watch::Receiver<Vec<String>>>,
}

/// Runs the TUI on `screen` with events from `input` until the admin quits, `input` ends (the
/// terminal is gone) or `stop` resolves (like a quit).
pub async fn run_loop<S, I>(
    mut tui: S,
    mut input: I,
    stop: impl Future<Output = ()>,
    mut feeds: Feeds,
    mut state: State,
    service: KeyService,
) -> anyhow::Result<()>
where
    S: Screen,
    I: Stream<Item = io::Result<TerminalEvent>> + Unpin,
{
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let runner = Runner::new(service.clone(), events_tx, feeds.changes.clone());
    let mut changes = feeds.changes.as_ref().map(Changes::subscribe);
    tokio::pin!(stop);
    let mut stopped = false;
    let mut tick = timer(TICK);
    let mut refresh = timer(state.session.refresh_every);
    let mut sweep = state.session.sweep_every.map(timer);

    let first = start(&mut state);
    run_effects(first, &runner, &mut tui)?;
    let mut dirty = true;
    let mut next_frame = Instant::now();
    // When the last change seen is re-queried; None while nothing changed since.
    let mut reload_at: Option<Instant> = None;

    while !state.quit {
        let event = tokio::select! {
            biased;
            () = sleep_until(next_frame), if dirty => {
                tui.draw(|frame| view::render(frame, &state))?;
                tui.flush().await?;
                dirty = false;
                next_frame = Instant::now() + FRAME_INTERVAL;
                continue;
            }
            input_event = input.next() => match input_event {
                Some(Ok(event)) => match translate(event) {
                    Some(event) => {
                        if let Event::Resize(width, height) = event {
                            tui.resize(width, height);
                        }
                        event
                    }
                    None => continue,
                },
                Some(Err(error)) => return Err(error.into()),
                None => break, // the terminal is gone
            },
            Some(event) = events.recv() => event,
            Some(()) = changed(&mut changes) => {
                reload_at.get_or_insert_with(|| Instant::now() + CHANGE_DEBOUNCE);
                continue;
            }
            () = sleep_until_some(reload_at) => {
                reload_at = None;
                Event::DataChanged
            }
            Some(names) = changed_value(&mut feeds.presence) => Event::Presence(names),
            () = &mut stop, if !stopped => {
                stopped = true;
                Event::Terminated
            }
            _ = tick.tick() => Event::Tick(service.now()),
            _ = refresh.tick() => Event::RefreshDue,
            Some(_) = next_tick(&mut sweep) => Event::SweepDue,
        };
        let effects = update(&mut state, event);
        run_effects(effects, &runner, &mut tui)?;
        // Drain whatever else is ready before drawing, so one frame shows all of it.
        while let Ok(event) = events.try_recv() {
            let effects = update(&mut state, event);
            run_effects(effects, &runner, &mut tui)?;
        }
        dirty = true;
    }
    Ok(())
}

fn timer(period: Duration) -> Interval {
    // The first tick of an interval is immediate; the first refresh or sweep is due one period in.
    let mut timer = interval_at(Instant::now() + period, period.max(Duration::from_millis(100)));
    timer.set_missed_tick_behavior(MissedTickBehavior::Skip);
    timer
}

/// Resolves when the watched value changes; never when there is nothing to watch or its sender
/// is gone.
async fn changed<T>(receiver: &mut Option<watch::Receiver<T>>) -> Option<()> {
    if let Some(receiver) = receiver
        && receiver.changed().await.is_ok()
    {
        return Some(());
    }
    std::future::pending().await
}

async fn changed_value<T: Clone>(receiver: &mut Option<watch::Receiver<T>>) -> Option<T> {
    changed(receiver).await?;
    receiver.as_mut().map(|receiver| receiver.borrow_and_update().clone())
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn next_tick(timer: &mut Option<Interval>) -> Option<Instant> {
    match timer {
        Some(timer) => Some(timer.tick().await),
        None => std::future::pending().await,
    }
}

/// The signals that end the session as if the admin had quit: SIGTERM and SIGHUP (the terminal
/// or the SSH session closed). Caught, the loop returns normally, so the terminal is restored and
/// whatever the caller cleans up on return (the demo's database) goes too.
pub struct Hangup {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Hangup {
    /// Starts listening; from then on these signals no longer kill the process outright.
    pub fn new() -> std::io::Result<Hangup> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Hangup { term: signal(SignalKind::terminate())?, hup: signal(SignalKind::hangup())? })
        }
        #[cfg(not(unix))]
        Ok(Hangup {})
    }

    /// Resolves when one of the signals arrives.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    }
}

/// A terminal event as the loop's event. Key releases (sent by terminals with keyboard
/// enhancement) are dropped here, so a key acts once, on its press, and wakes nothing.
fn translate(event: TerminalEvent) -> Option<Event> {
    match event {
        TerminalEvent::Key(key) if key.kind == KeyEventKind::Release => None,
        TerminalEvent::Key(key) => Some(Event::Key(key)),
        TerminalEvent::Paste(text) => Some(Event::Paste(text)),
        TerminalEvent::Resize(width, height) => Some(Event::Resize(width, height)),
        _ => None,
    }
}

fn run_effects(effects: Vec<Effect>, runner: &Runner, tui: &mut impl Screen) -> anyhow::Result<()> {
    for effect in effects {
        match effect {
            Effect::Call(request, call) => runner.spawn_call(request, call),
            Effect::DebounceFilter { edit } => runner.spawn_debounce(edit),
            Effect::CopyToClipboard(text) => tui.copy_to_clipboard(&text)?,
            Effect::RetryAfter { delay, attempt } => runner.spawn_retry(delay, attempt),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyEventState, KeyModifiers};

    use super::*;

    fn key(kind: KeyEventKind) -> TerminalEvent {
        TerminalEvent::Key(KeyEvent {
            code: KeyCode::Char('j'),
            modifiers: KeyModifiers::NONE,
            kind,
            state: KeyEventState::NONE,
        })
    }

    #[test]
    fn key_releases_never_reach_update() {
        assert!(translate(key(KeyEventKind::Release)).is_none());
        assert!(matches!(translate(key(KeyEventKind::Press)), Some(Event::Key(_))));
        assert!(matches!(translate(key(KeyEventKind::Repeat)), Some(Event::Key(_))));
    }
}
