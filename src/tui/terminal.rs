//! The terminal: raw mode and the alternate screen on the way in, restored on every way out
//! (quit, error, panic), synchronized output around each frame, and OSC 52 for the clipboard.

use std::io::{self, Stdout, Write};

use base64::Engine as _;
use crossterm::{cursor, event, execute, queue, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

pub type Tui = Terminal<CrosstermBackend<Stdout>>;

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

    /// Draws one frame inside synchronized-update escapes, so a slow link never shows half of it.
    pub fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        queue!(self.terminal.backend_mut(), terminal::BeginSynchronizedUpdate)?;
        self.terminal.draw(render)?;
        execute!(self.terminal.backend_mut(), terminal::EndSynchronizedUpdate)
    }

    /// Puts `text` on the clipboard of the terminal the admin sits at (OSC 52; works over SSH).
    pub fn copy_to_clipboard(&mut self, text: &str) -> io::Result<()> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        let backend = self.terminal.backend_mut();
        write!(backend, "\x1b]52;c;{encoded}\x07")?;
        backend.flush()
    }
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
