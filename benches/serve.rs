//! `keytop serve` against the TUI on a local pseudo-terminal, on a demo database of 2,000 keys.
//!
//! ```text
//! cargo bench --bench serve
//! ```
//!
//! Both sides are driven the same way: a program in a pseudo-terminal of 100×30 (the release
//! `keytop` itself, or the OpenSSH client connected to the release `keytop serve` on loopback),
//! a key written to the pty, and the time until the end of the frame it caused (the end of the
//! synchronized update, `ESC[?2026l`) comes back. Figures:
//!
//! - latency: keystroke → frame, `j` and `k` alternately, median and p99 over 400 keys each side;
//! - bytes: what one step down the list sends at 100×30 (the median of those frames);
//! - memory: the server's VmRSS before and after opening 16 more idle sessions, per session;
//! - CPU: 32 sessions open (the default cap), one moving through the list at 20 keys a second
//!   for 10 s: the server's CPU time over wall time (100 % = one core).
//!
//! Needs `ssh` and `ssh-keygen` (OpenSSH). The machine is shared and noisy: read the figures as
//! rough, and the ratios between the two sides as the point.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const ROWS: u16 = 30;
const COLUMNS: u16 = 100;
const KEYS: &str = "2000";
const LATENCY_ROUNDS: usize = 400;
const MORE_SESSIONS: usize = 16;
/// Idle sessions beside the one typing: 32 in all, the default cap.
const CPU_SESSIONS: usize = 31;
const PATIENCE: Duration = Duration::from_secs(30);
const FRAME_END: &[u8] = b"\x1b[?2026l";

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::new(dir.path());
    env.keytop(&["demo", "--keys", KEYS, "--users", "50", "--days", "7", "--usage-rows", "2000"]);
    let key = env.client_key();

    let local = Pty::spawn(env.command(env!("CARGO_BIN_EXE_keytop"), &[]));
    let (local_latency, local_bytes) = latencies(local);

    let server = env.serve();
    let remote = Pty::spawn(env.ssh(&key, server.port));
    let (ssh_latency, ssh_bytes) = latencies(remote);

    println!("keystroke → frame at {COLUMNS}×{ROWS}, {LATENCY_ROUNDS} keys each, release build");
    println!("{:<28}{:>12}{:>12}{:>14}", "", "median", "p99", "bytes/step");
    print_row("local pty", &local_latency, local_bytes);
    print_row("keytop serve over ssh", &ssh_latency, ssh_bytes);
    println!(
        "ratio ssh / local (median)  {:>10.2}x",
        percentile(&ssh_latency, 50).as_secs_f64() / percentile(&local_latency, 50).as_secs_f64()
    );

    let before = server.rss_kib();
    let extra: Vec<Pty> = (0..MORE_SESSIONS).map(|_| open_session(&env, &key, server.port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss_kib();
    println!(
        "memory per added idle session ({MORE_SESSIONS} added): {:.0} KiB (server RSS {} → {} KiB)",
        (after as f64 - before as f64) / MORE_SESSIONS as f64,
        before,
        after
    );
    drop(extra);
    // Closed connections give their places back once the server has seen them go.
    std::thread::sleep(Duration::from_secs(2));

    let sessions: Vec<Pty> = (0..CPU_SESSIONS).map(|_| open_session(&env, &key, server.port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let (cpu_before, started) = (server.cpu_ticks(), Instant::now());
    let mut typist = Pty::spawn(env.ssh(&key, server.port));
    typist.wait_for_rows();
    let typing = Duration::from_secs(10);
    let mut keys = 0;
    while started.elapsed() < typing {
        typist.write(if keys % 2 == 0 { b"j" } else { b"k" });
        keys += 1;
        std::thread::sleep(Duration::from_millis(50));
        typist.drain();
    }
    let ticks = server.cpu_ticks() - cpu_before;
    let seconds = ticks as f64 / clock_ticks_per_second();
    println!(
        "{} sessions open, one typing {keys} keys over {:.0} s: server CPU {:.1} % of one core",
        CPU_SESSIONS + 1,
        started.elapsed().as_secs_f64(),
        100.0 * seconds / started.elapsed().as_secs_f64()
    );
    drop(sessions);
}

fn print_row(label: &str, latencies: &[Duration], bytes: usize) {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!("{label:<28}{:>12}{:>12}{:>14}", ms(percentile(latencies, 50)), ms(percentile(latencies, 99)), bytes);
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Keystroke → end of frame, `j` and `k` alternately; the latencies sorted, and the median bytes
/// of a step down.
fn latencies(mut pty: Pty) -> (Vec<Duration>, usize) {
    pty.wait_for_rows();
    let mut times = Vec::new();
    let mut down_bytes = Vec::new();
    for round in 0..LATENCY_ROUNDS {
        let key: &[u8] = if round % 2 == 0 { b"j" } else { b"k" };
        let sent = Instant::now();
        pty.write(key);
        let bytes = pty.until_frame_end();
        times.push(sent.elapsed());
        if round % 2 == 0 {
            down_bytes.push(bytes);
        }
        // Frames are at most one per 16 ms: pace the keys so each gets its own.
        std::thread::sleep(Duration::from_millis(20));
        pty.drain();
    }
    times.sort();
    down_bytes.sort();
    (times, down_bytes[down_bytes.len() / 2])
}

fn open_session(env: &Env, key: &Path, port: u16) -> Pty {
    let mut pty = Pty::spawn(env.ssh(key, port));
    pty.wait_for_rows();
    pty
}

fn clock_ticks_per_second() -> f64 {
    let output = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(100.0)
}

/// A database, a master key, XDG folders and an admin key of the bench's own.
struct Env {
    dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(dir: &Path) -> Env {
        let path = |name: &str| dir.join(name).display().to_string();
        let vars = vec![
            ("KEYTOP_DB".into(), format!("sqlite://{}", path("bench.db"))),
            ("KEYTOP_MASTER_KEY".into(), keytop::crypto::MasterKey::generate().1),
            ("KEYTOP_ACTOR".into(), "bench".into()),
            ("XDG_CONFIG_HOME".into(), path("config")),
            ("XDG_DATA_HOME".into(), path("data")),
            ("XDG_STATE_HOME".into(), path("state")),
            ("HOME".into(), path("home")),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("TERM".into(), "xterm-256color".into()),
        ];
        Env { dir: dir.to_path_buf(), vars }
    }

    fn keytop(&self, args: &[&str]) {
        let status = Command::new(env!("CARGO_BIN_EXE_keytop"))
            .args(args)
            .env_clear()
            .envs(self.vars.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "keytop {args:?}");
    }

    /// A fresh ed25519 key pair, authorized as admin `bench`.
    fn client_key(&self) -> PathBuf {
        let key = self.dir.join("id_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::create_dir_all(self.dir.join("config/keytop")).unwrap();
        std::fs::copy(key.with_extension("pub"), self.dir.join("config/keytop/authorized_keys")).unwrap();
        key
    }

    fn command(&self, program: &str, args: &[&str]) -> CommandBuilder {
        let mut command = CommandBuilder::new(program);
        command.args(args);
        command.cwd(&self.dir);
        command.env_clear();
        for (name, value) in &self.vars {
            command.env(name, value);
        }
        command
    }

    fn ssh(&self, key: &Path, port: u16) -> CommandBuilder {
        let port = port.to_string();
        let key = key.display().to_string();
        let options = [
            "-tt",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "LogLevel=ERROR",
            "-i",
            &key,
            "-p",
            &port,
            "bench@127.0.0.1",
        ];
        self.command("ssh", &options)
    }

    fn serve(&self) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keytop"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .envs(self.vars.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (sender, receiver) = channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut buffer = [0u8; 4096];
            while let Ok(read) = stderr.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                if let Some(rest) = text.split("listening on 127.0.0.1:").nth(1)
                    && let Some(port) = rest.split(' ').next().and_then(|port| port.parse::<u16>().ok())
                {
                    let _ = sender.send(port);
                    text.clear();
                }
            }
        });
        let port = receiver.recv_timeout(PATIENCE).expect("keytop serve did not start");
        Server { child, port }
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn status_field(&self, name: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|line| line.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    /// User plus system CPU time, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A program in a pseudo-terminal; its output arrives on a channel, chunk by chunk.
struct Pty {
    output: Receiver<Vec<u8>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
    screen: vt100::Parser,
}

impl Pty {
    fn spawn(command: CommandBuilder) -> Pty {
        let pair = native_pty_system()
            .openpty(PtySize { rows: ROWS, cols: COLUMNS, pixel_width: 0, pixel_height: 0 })
            .unwrap();
        let child = pair.slave.spawn_command(command).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let (sender, output) = channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16384];
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 || sender.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        let writer = pair.master.take_writer().unwrap();
        Pty { output, writer, child, _master: pair.master, screen: vt100::Parser::new(ROWS, COLUMNS, 0) }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits until the list shows key rows (the first page has loaded).
    fn wait_for_rows(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while !self.screen.screen().contents().contains("sk-") {
            let left = deadline.checked_duration_since(Instant::now()).expect("no key rows on screen");
            let chunk = self.output.recv_timeout(left).expect("no key rows on screen");
            self.screen.process(&chunk);
        }
        std::thread::sleep(Duration::from_millis(300));
        self.drain();
    }

    /// Reads until the end of a frame; returns the bytes read.
    fn until_frame_end(&mut self) -> usize {
        let mut seen = Vec::new();
        while !seen.windows(FRAME_END.len()).any(|window| window == FRAME_END) {
            let chunk = self.output.recv_timeout(PATIENCE).expect("no frame after the key");
            self.screen.process(&chunk);
            seen.extend(chunk);
        }
        seen.len()
    }

    fn drain(&mut self) {
        while let Ok(chunk) = self.output.try_recv() {
            self.screen.process(&chunk);
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
