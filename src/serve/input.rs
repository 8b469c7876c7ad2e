//! A session's input: the bytes and window changes the client sends, turned into the terminal
//! events the TUI reads from a local terminal.
//!
//! Bytes are parsed one at a time (a packet can carry several keys, and a key can straddle two
//! packets). A lone ESC at the end of a packet may be the Esc key or the start of an arrow key
//! whose rest is still on the way, so it waits a moment before it counts as Esc.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use crossterm::event::Event as TerminalEvent;
use futures::Stream;
use tokio::sync::mpsc;

const ESC: u8 = 0x1b;
/// How long a lone ESC waits for the rest of a sequence.
const ESC_WAIT: Duration = Duration::from_millis(40);
/// An unfinished sequence (a paste that never ends) is dropped past this size.
const MAX_PENDING: usize = 64 * 1024;
const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";

/// What the connection handler forwards to a session, in the order the client sent it.
#[derive(Debug)]
pub enum ClientInput {
    Data(Vec<u8>),
    Resize(u16, u16),
}

/// Bytes from the client → terminal events.
#[derive(Debug, Default)]
pub struct InputParser {
    pending: Vec<u8>,
    /// A paste too large to keep is being skipped up to its end, so that none of it is taken
    /// for keystrokes.
    skipping_paste: bool,
}

impl InputParser {
    /// Parses `bytes`, appending the events they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut VecDeque<TerminalEvent>) {
        for &byte in bytes {
            self.pending.push(byte);
            if self.skipping_paste {
                if self.pending.ends_with(PASTE_END) {
                    self.skipping_paste = false;
                    self.pending.clear();
                } else if self.pending.len() > PASTE_END.len() {
                    self.pending.drain(..self.pending.len() - PASTE_END.len());
                }
                continue;
            }
            if self.pending == [ESC] {
                continue; // decided by the next byte, or by `flush_escape`
            }
            match terminput::Event::parse_from(&self.pending) {
                Ok(Some(event)) => {
                    self.pending.clear();
                    // Events crossterm has no form for (none the TUI uses) are dropped.
                    if let Ok(event) = terminput_crossterm::to_crossterm(event) {
                        out.push_back(event);
                    }
                }
                Ok(None) if self.pending.len() < MAX_PENDING => {}
                Ok(None) => {
                    self.skipping_paste = self.pending.starts_with(PASTE_START);
                    self.pending.clear();
                }
                Err(_) => self.pending.clear(),
            }
        }
    }

    /// Whether a lone ESC is waiting for what follows it.
    pub fn escape_pending(&self) -> bool {
        self.pending == [ESC]
    }

    /// Nothing followed the ESC: it was the Esc key.
    pub fn flush_escape(&mut self, out: &mut VecDeque<TerminalEvent>) {
        if self.escape_pending() {
            self.pending.clear();
            out.push_back(TerminalEvent::Key(crossterm::event::KeyCode::Esc.into()));
        }
    }
}

/// The events of a session, ending when the client closes the channel. After `idle` without any
/// input it yields a `TimedOut` error, which ends the session.
pub fn events(
    receiver: mpsc::Receiver<ClientInput>,
    idle: Duration,
) -> impl Stream<Item = io::Result<TerminalEvent>> + Unpin + Send {
    let state = (receiver, InputParser::default(), VecDeque::new());
    Box::pin(futures::stream::unfold(state, move |(mut receiver, mut parser, mut ready)| async move {
        loop {
            if let Some(event) = ready.pop_front() {
                return Some((Ok(event), (receiver, parser, ready)));
            }
            let wait = if parser.escape_pending() { ESC_WAIT } else { idle };
            match tokio::time::timeout(wait, receiver.recv()).await {
                Ok(Some(ClientInput::Data(bytes))) => parser.push(&bytes, &mut ready),
                Ok(Some(ClientInput::Resize(width, height))) => {
                    // A window change ends any sequence: the ESC before it was the Esc key.
                    parser.flush_escape(&mut ready);
                    ready.push_back(TerminalEvent::Resize(width, height));
                }
                Ok(None) => return None,
                Err(_) if parser.escape_pending() => parser.flush_escape(&mut ready),
                Err(_) => {
                    let error = io::Error::new(io::ErrorKind::TimedOut, "closed after the idle timeout");
                    return Some((Err(error), (receiver, parser, ready)));
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use futures::StreamExt as _;

    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<TerminalEvent> {
        let mut parser = InputParser::default();
        let mut out = VecDeque::new();
        for chunk in chunks {
            parser.push(chunk, &mut out);
        }
        out.into()
    }

    fn key(code: KeyCode) -> TerminalEvent {
        TerminalEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn every_key_of_a_packet_counts() {
        assert_eq!(parse(&[b"ab"]), [key(KeyCode::Char('a')), key(KeyCode::Char('b'))]);
    }

    #[test]
    fn a_sequence_split_across_packets_is_one_key() {
        assert_eq!(parse(&[b"\x1b", b"[B"]), [key(KeyCode::Down)]);
        assert_eq!(parse(&[b"\x1b[", b"A"]), [key(KeyCode::Up)]);
        assert_eq!(parse(&["é".as_bytes()[..1].as_ref(), "é".as_bytes()[1..].as_ref()]), [key(KeyCode::Char('é'))]);
    }

    #[test]
    fn enter_is_carriage_return_and_ctrl_c_is_a_key() {
        assert_eq!(parse(&[b"\r"]), [key(KeyCode::Enter)]);
        assert_eq!(parse(&[b"\x03"]), [TerminalEvent::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))]);
    }

    #[test]
    fn a_paste_arrives_whole() {
        assert_eq!(parse(&[b"\x1b[200~hel", b"lo\x1b[201~"]), [TerminalEvent::Paste("hello".into())]);
    }

    #[test]
    fn a_lone_escape_waits_then_counts_as_esc() {
        let mut parser = InputParser::default();
        let mut out = VecDeque::new();
        parser.push(b"\x1b", &mut out);
        assert!(out.is_empty() && parser.escape_pending());
        parser.flush_escape(&mut out);
        assert_eq!(Vec::from(out), [key(KeyCode::Esc)]);
    }

    #[test]
    fn a_paste_past_the_cap_is_dropped_whole_and_never_read_as_keys() {
        let mut parser = InputParser::default();
        let mut out = VecDeque::new();
        parser.push(PASTE_START, &mut out);
        parser.push(&vec![b'x'; MAX_PENDING + 100], &mut out);
        parser.push(PASTE_END, &mut out);
        parser.push(b"j", &mut out);
        assert_eq!(Vec::from(out), [key(KeyCode::Char('j'))]);
    }

    #[tokio::test]
    async fn the_stream_flushes_a_lone_escape_and_ends_with_the_channel() {
        let (sender, receiver) = mpsc::channel(8);
        let mut events = events(receiver, Duration::from_secs(60));
        sender.send(ClientInput::Data(b"\x1b".to_vec())).await.unwrap();
        sender.send(ClientInput::Resize(90, 20)).await.unwrap();
        // A window change came after the ESC, so the ESC was the Esc key, and it came first.
        assert_eq!(events.next().await.unwrap().unwrap(), key(KeyCode::Esc));
        assert_eq!(events.next().await.unwrap().unwrap(), TerminalEvent::Resize(90, 20));
        sender.send(ClientInput::Data(b"\x1b".to_vec())).await.unwrap();
        assert_eq!(events.next().await.unwrap().unwrap(), key(KeyCode::Esc));
        drop(sender);
        assert!(events.next().await.is_none());
    }

    #[tokio::test]
    async fn no_input_for_the_idle_time_ends_the_stream_with_timed_out() {
        let (_sender, receiver) = mpsc::channel(8);
        let mut events = events(receiver, Duration::from_millis(20));
        let error = events.next().await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
