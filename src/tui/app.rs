//! The loop: input, timers and effect answers in; `update`; effects out; a frame drawn only
//! when something changed, at most once per frame interval however many events arrived.

use std::time::Duration;

use crossterm::event::{Event as TerminalEvent, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep_until};

use crate::service::KeyService;

use super::effect::{Effect, Runner};
use super::event::Event;
use super::state::State;
use super::terminal::TerminalGuard;
use super::update::{start, update};
use super::view;

/// The shortest time between two frames (about 60 per second): bursts of events share a frame.
const FRAME_INTERVAL: Duration = Duration::from_millis(16);
/// How often relative times ("in 3d") and toasts move on.
const TICK: Duration = Duration::from_secs(1);

pub async fn run_loop(
    mut tui: TerminalGuard,
    mut state: State,
    service: KeyService,
    mut hangup: Hangup,
) -> anyhow::Result<()> {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let runner = Runner::new(service.clone(), events_tx);
    let mut input = EventStream::new();
    let mut tick = timer(TICK);
    let mut refresh = timer(state.session.refresh_every);
    let mut sweep = state.session.sweep_every.map(timer);

    let first = start(&mut state);
    run_effects(first, &runner, &mut tui)?;
    let mut dirty = true;
    let mut next_frame = Instant::now();

    while !state.quit {
        let event = tokio::select! {
            biased;
            () = sleep_until(next_frame), if dirty => {
                tui.draw(|frame| view::render(frame, &state))?;
                dirty = false;
                next_frame = Instant::now() + FRAME_INTERVAL;
                continue;
            }
            input_event = input.next() => match input_event {
                Some(Ok(event)) => match translate(event) {
                    Some(event) => event,
                    None => continue,
                },
                Some(Err(error)) => return Err(error.into()),
                None => break, // the terminal is gone
            },
            Some(event) = events.recv() => event,
            () = hangup.recv() => Event::Terminated,
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

fn run_effects(effects: Vec<Effect>, runner: &Runner, tui: &mut TerminalGuard) -> anyhow::Result<()> {
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
