//! Where frames go. [`Screen`] is what the loop draws on; [`TerminalGuard`] is the local
//! terminal: raw mode and the alternate screen on the way in, restored on every way out (quit,
//! error, panic), synchronized output around each frame, and OSC 52 for the clipboard.

use std::future::Future;
use std::io::{self, Stdout, Write};

use base64::Engine as _;
use crossterm::{cursor, event, execute, queue, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

pub type Tui = Terminal<CrosstermBackend<Stdout>>;

/// A terminal the loop draws on: the local one, or one at the far end of a connection.
pub trait Screen {
    /// Draws one frame inside synchronized-update escapes, so a slow link never shows half of it.
    fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()>;

    /// Puts `text` on the clipboard of the terminal the admin sits at (OSC 52; works over SSH).
    fn copy_to_clipboard(&mut self, text: &str) -> io::Result<()>;

    /// The terminal now has this size. A local terminal knows its own size, so the default does
    /// nothing; a remote one learns it only from this call.
    fn resize(&mut self, _width: u16, _height: u16) {}

    /// Resolves once what was drawn has left: the loop draws the next frame only after that, so a
    /// slow reader gets fewer frames rather than a growing queue.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

/// The terminal in TUI mode; dropping it restores the terminal, also when `run` fails.
pub struct TerminalGuard {
    pub terminal: Tui,
}

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        let mut stdout = io::stdout();
        if let Err(error) = execute!(stdout, terminal::EnterAlternateScreen, event::EnableBracketedPaste) {
            restore();
            return Err(error);
        }
        match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(error) => {
                restore();
                Err(error)
            }
        }
    }
}

impl Screen for TerminalGuard {
    fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        draw_synchronized(&mut self.terminal, render)?;
        self.terminal.backend_mut().flush()
    }

    fn copy_to_clipboard(&mut self, text: &str) -> io::Result<()> {
        let backend = self.terminal.backend_mut();
        write_clipboard(backend, text)?;
        backend.flush()
    }
}

/// One frame between the begin and end of a synchronized update.
pub fn draw_synchronized<B>(terminal: &mut Terminal<B>, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()>
where
    B: ratatui::backend::Backend<Error = io::Error> + Write,
{
    queue!(terminal.backend_mut(), terminal::BeginSynchronizedUpdate)?;
    terminal.draw(render)?;
    queue!(terminal.backend_mut(), terminal::EndSynchronizedUpdate)
}

/// The OSC 52 sequence that sets the terminal's clipboard to `text`.
pub fn write_clipboard(out: &mut impl Write, text: &str) -> io::Result<()> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    write!(out, "\x1b]52;c;{encoded}\x07")
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves TUI mode. Safe to call more than once; errors are ignored because there is nothing
/// better to do with them on the way out.
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), event::DisableBracketedPaste, terminal::LeaveAlternateScreen, cursor::Show);
}

/// Restores the terminal before the previous hook prints the panic, so the message is readable.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
