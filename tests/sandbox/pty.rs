//! The TUI in a pseudo-terminal: the screen as vt100 parses it, and every raw byte keytop wrote
//! (to search for escape sequences that must never be there).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

use super::Sandbox;

pub const ROWS: u16 = 48;
pub const COLUMNS: u16 = 160;
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Tui {
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    /// Kept so the pty stays open for the child's whole life.
    master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Tui {
    /// Starts `keytop [args]` (the TUI unless args name a command) in the sandbox's environment,
    /// with `db_url` as its database.
    pub fn start_with(sandbox: &Sandbox, db_url: &str, args: &[&str]) -> Tui {
        let mut command = CommandBuilder::new(Sandbox::binary());
        command.args(args);
        command.env_clear();
        for (name, value) in sandbox.env() {
            command.env(name, value);
        }
        command.env("KEYTOP_DB", db_url);
        command.env("TERM", "xterm-256color");
        command.cwd(sandbox.dir.path());
        Tui::spawn(command, ROWS, COLUMNS)
    }

    /// Runs any program (an SSH client, say) in a pseudo-terminal of `rows` × `columns`.
    pub fn spawn(command: CommandBuilder, rows: u16, columns: u16) -> Tui {
        let pair =
            native_pty_system().openpty(PtySize { rows, cols: columns, pixel_width: 0, pixel_height: 0 }).unwrap();
        let child = pair.slave.spawn_command(command).unwrap();
        drop(pair.slave);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(rows, columns, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let mut reader = pair.master.try_clone_reader().unwrap();
        let (parser, bytes) = (Arc::clone(&screen), Arc::clone(&raw));
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                bytes.lock().unwrap().extend_from_slice(&buffer[..read]);
                parser.lock().unwrap().process(&buffer[..read]);
            }
        });
        let writer = pair.master.take_writer().unwrap();
        Tui { screen, raw, writer, child, master: pair.master }
    }

    pub fn start(sandbox: &Sandbox) -> Tui {
        Tui::start_with(sandbox, &sandbox.db_url, &[])
    }

    pub fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Resizes the terminal, as a window manager would (the program gets SIGWINCH).
    pub fn resize(&self, rows: u16, columns: u16) {
        self.screen.lock().unwrap().set_size(rows, columns);
        self.master.resize(PtySize { rows, cols: columns, pixel_width: 0, pixel_height: 0 }).unwrap();
    }

    /// The row of the screen on which `text` appears first.
    pub fn row_of(&self, text: &str) -> Option<usize> {
        let parser = self.screen.lock().unwrap();
        let columns = parser.screen().size().1;
        parser.screen().rows(0, columns).position(|row| row.contains(text))
    }

    /// The process id of the program.
    pub fn pid(&self) -> Option<u32> {
        self.child.process_id()
    }

    /// Every byte keytop wrote so far.
    pub fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }

    pub fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) {
        self.wait_for_within(what, PATIENCE, ready);
    }

    pub fn wait_for_within(&self, what: &str, patience: Duration, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if ready(&self.contents()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for {what}; the screen shows:\n{}", self.contents());
    }

    pub fn wait_for_text(&self, text: &str) {
        self.wait_for(text, |screen| screen.contains(text));
    }

    pub fn wait_until_idle(&self) {
        self.wait_for("the loading mark to go", |screen| !screen.contains("loading"));
    }

    pub fn type_keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Text as a bracketed paste: control characters arrive as they are, not as keys.
    pub fn paste(&mut self, text: &str) {
        self.type_keys(&format!("\x1b[200~{text}\x1b[201~"));
    }

    /// Whether the process has exited, and how.
    pub fn try_wait(&mut self) -> Option<portable_pty::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait_for_exit(&mut self) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        panic!("keytop did not exit; the screen shows:\n{}", self.contents());
    }

    /// Quits with `q` (after closing dialogs with Esc) and expects a clean exit.
    pub fn quit(&mut self) {
        self.type_keys("\x1b");
        std::thread::sleep(Duration::from_millis(150));
        self.type_keys("\x1b");
        std::thread::sleep(Duration::from_millis(150));
        self.type_keys("q");
        let status = self.wait_for_exit();
        assert!(status.success(), "keytop exited with {status:?}; screen:\n{}", self.contents());
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
    }
}

/// Whether `haystack` contains `needle`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}
