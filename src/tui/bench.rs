//! Hooks for `benches/tui.rs`: the real state, `update`, effects and views, driven without a
//! terminal, drawing through the real crossterm backend into a byte counter. Not an API.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::service::KeyService;

use super::effect::{Effect, Runner};
use super::event::Event;
use super::keymap::KeyChord;
use super::state::State;
use super::update::{start, update};
use super::{ColorDepth, TuiOptions, session, view};

/// How long a settle waits for an answer before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

/// A sink that counts the bytes a frame writes.
#[derive(Debug, Default, Clone)]
pub struct Counter {
    bytes: Arc<AtomicUsize>,
}

impl Counter {
    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.fetch_add(buf.len(), Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The TUI's state and loop pieces, without the terminal.
pub struct Bench {
    state: State,
    runner: Runner,
    events: UnboundedReceiver<Event>,
    terminal: Terminal<CrosstermBackend<Counter>>,
    written: Counter,
}

impl Bench {
    /// A session on `service` at `size`, with the first page, the counts and a first frame drawn.
    pub async fn new(service: KeyService, options: &TuiOptions, size: (u16, u16)) -> anyhow::Result<Bench> {
        // The depth of the terminals the benches run in (TERM=xterm-256color).
        let session = session(&service, options, ColorDepth::Ansi256)?;
        let (events_tx, events) = unbounded_channel();
        let runner = Runner::new(service.clone(), events_tx, None);
        let state = State::new(session, service.now(), size);
        let written = Counter::default();
        let terminal = terminal(written.clone(), size)?;
        let mut bench = Bench { state, runner, events, terminal, written };
        let effects = start(&mut bench.state);
        bench.run(effects);
        bench.settle().await?;
        bench.draw()?;
        Ok(bench)
    }

    /// Presses a key written as in the config file (`j`, `pgdn`, `enter`) and waits for every
    /// fetch it started.
    pub async fn press(&mut self, key: &str) -> anyhow::Result<()> {
        let chord = KeyChord::parse(key).map_err(anyhow::Error::msg)?;
        let effects = update(&mut self.state, Event::Key(crossterm::event::KeyEvent::new(chord.code, chord.modifiers)));
        self.run(effects);
        self.settle().await
    }

    /// Draws one frame (only what changed, as the TUI does); returns the bytes it wrote.
    pub fn draw(&mut self) -> io::Result<usize> {
        let before = self.written.bytes();
        let state = &self.state;
        self.terminal.draw(|frame| view::render(frame, state))?;
        Ok(self.written.bytes() - before)
    }

    /// Forgets what is on screen, so that the next [`draw`](Bench::draw) writes every cell (as
    /// after a clear; the real clear asks the terminal for the cursor, which a sink cannot answer).
    pub fn forget_screen(&mut self) -> io::Result<()> {
        self.terminal = terminal(self.written.clone(), self.state.size)?;
        Ok(())
    }

    /// Rows in the list's window (what the TUI keeps in memory).
    pub fn rows_held(&self) -> usize {
        self.state.list.window.rows.len()
    }

    fn run(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Call(request, call) => self.runner.spawn_call(request, call),
                Effect::DebounceFilter { edit } => self.runner.spawn_debounce(edit),
                Effect::CopyToClipboard(_) => {}
                Effect::RetryAfter { delay, attempt } => self.runner.spawn_retry(delay, attempt),
            }
        }
    }

    /// Feeds answers to `update` until nothing is in flight and the counts are in.
    async fn settle(&mut self) -> anyhow::Result<()> {
        while self.state.busy() || self.state.counts.is_none() {
            let event = tokio::time::timeout(PATIENCE, self.events.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the effect runner stopped"))?;
            let effects = update(&mut self.state, event);
            self.run(effects);
        }
        Ok(())
    }
}

fn terminal(written: Counter, (width, height): (u16, u16)) -> io::Result<Terminal<CrosstermBackend<Counter>>> {
    let viewport = ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, width, height));
    Terminal::with_options(CrosstermBackend::new(written), ratatui::TerminalOptions { viewport })
}
