//! The screen of a session: ratatui draws into a byte buffer at the client's pty size, and each
//! frame goes out as channel data, the next one only after the client's window took this one.

use std::io::{self, Write};
use std::time::Duration;

use crossterm::{cursor, event, queue, style, terminal};
use ratatui::Terminal;
use ratatui::backend::{Backend, ClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use russh::ChannelId;
use russh::server::Handle;

use crate::tui::{Screen, draw_synchronized, write_clipboard};

/// A client that has not taken a frame for this long is gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest pty a client may ask for; larger sizes are clamped so they cannot make the server
/// allocate huge buffers.
const MAX_SIDE: u16 = 1000;

/// Clamps a size from the client: 0 (sent by `ssh -tt` from a pipe) becomes 80×24.
pub fn clamp_size(cols: u32, rows: u32) -> (u16, u16) {
    let side = |value: u32, fallback: u16| match value {
        0 => fallback,
        n => n.min(u32::from(MAX_SIDE)) as u16,
    };
    (side(cols, 80), side(rows, 24))
}

/// A ratatui backend whose size is the client's, never this process's terminal (it may have none),
/// and which never queries the terminal.
pub struct RemoteBackend {
    inner: CrosstermBackend<Vec<u8>>,
    size: Size,
    cursor: Position,
}

impl RemoteBackend {
    pub fn new(width: u16, height: u16) -> RemoteBackend {
        RemoteBackend {
            inner: CrosstermBackend::new(Vec::new()),
            size: Size::new(width, height),
            cursor: Position::ORIGIN,
        }
    }

    /// The bytes drawn since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.inner.writer_mut())
    }
}

impl Write for RemoteBackend {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // the bytes leave in `SshScreen::flush`
    }
}

impl Backend for RemoteBackend {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        Ok(self.cursor)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        self.cursor = position.into();
        self.inner.set_cursor_position(self.cursor)
    }

    fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> io::Result<Size> {
        Ok(self.size)
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        Ok(WindowSize { columns_rows: self.size, pixels: Size::default() })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The screen at the far end of an SSH channel.
pub struct SshScreen {
    terminal: Terminal<RemoteBackend>,
    handle: Handle,
    channel: ChannelId,
    /// Bytes drawn but not sent yet.
    pending: Vec<u8>,
}

impl SshScreen {
    pub fn new(handle: Handle, channel: ChannelId, (width, height): (u16, u16)) -> io::Result<SshScreen> {
        let terminal = Terminal::new(RemoteBackend::new(width, height))?;
        Ok(SshScreen { terminal, handle, channel, pending: enter_sequence() })
    }
}

impl Screen for SshScreen {
    fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        draw_synchronized(&mut self.terminal, render)?;
        self.pending.extend(self.terminal.backend_mut().take_output());
        Ok(())
    }

    fn copy_to_clipboard(&mut self, text: &str) -> io::Result<()> {
        write_clipboard(&mut self.pending, text)
    }

    fn resize(&mut self, width: u16, height: u16) {
        self.terminal.backend_mut().size = Size::new(width, height);
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        let bytes = std::mem::take(&mut self.pending);
        send(self.handle.clone(), self.channel, bytes)
    }
}

/// Sends `bytes` on the channel, waiting while the client's window is full, up to a limit.
pub async fn send(handle: Handle, channel: ChannelId, bytes: Vec<u8>) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(SEND_TIMEOUT, handle.data(channel, bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "the client is gone")),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the client took no output for 30 s")),
    }
}

/// What a session sends first: the alternate screen, no cursor, bracketed paste.
fn enter_sequence() -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = queue!(bytes, terminal::EnterAlternateScreen, cursor::Hide, event::EnableBracketedPaste);
    bytes
}

/// What a session sends last, whatever ended it: the client's terminal as it was.
pub fn leave_sequence() -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = queue!(
        bytes,
        event::DisableBracketedPaste,
        style::ResetColor,
        style::SetAttribute(style::Attribute::Reset),
        cursor::Show,
        terminal::LeaveAlternateScreen
    );
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_the_client_are_clamped() {
        assert_eq!(clamp_size(0, 0), (80, 24));
        assert_eq!(clamp_size(100, 30), (100, 30));
        assert_eq!(clamp_size(65535, 70000), (1000, 1000));
    }

    #[test]
    fn the_backend_reports_the_client_size_and_collects_the_frame() {
        let mut terminal = Terminal::new(RemoteBackend::new(20, 3)).unwrap();
        assert_eq!(terminal.size().unwrap(), Size::new(20, 3));
        terminal.draw(|frame| frame.render_widget("hello", frame.area())).unwrap();
        let bytes = terminal.backend_mut().take_output();
        assert!(String::from_utf8_lossy(&bytes).contains("hello"));
        assert!(terminal.backend_mut().take_output().is_empty());
        terminal.backend_mut().size = Size::new(10, 2);
        terminal.draw(|frame| assert_eq!(frame.area().width, 10)).unwrap();
    }
}
