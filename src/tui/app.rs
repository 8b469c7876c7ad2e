//! The loop: input, timers and effect answers in; `update`; effects out; a frame drawn only
//! when something changed, at most once per frame interval however many events arrived.

use std::time::Duration;

use crossterm::event::{Event as TerminalEvent, EventStream};
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

pub async fn run_loop(mut tui: TerminalGuard, mut state: State, service: KeyService) -> anyhow::Result<()> {
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

fn translate(event: TerminalEvent) -> Option<Event> {
    match event {
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
        }
    }
    Ok(())
}
