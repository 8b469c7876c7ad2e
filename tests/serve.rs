//! End to end: `keytop serve` with the OpenSSH client, each `ssh -tt` in a pseudo-terminal of
//! its own, the way admins connect. Skipped (with a note) where no `ssh` client is installed.

mod common;
mod sandbox;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::CommandBuilder;
use sandbox::Sandbox;
use sandbox::pty::Tui;

const ROWS: u16 = 30;
const COLUMNS: u16 = 100;
const PATIENCE: Duration = Duration::from_secs(20);

fn have_ssh() -> bool {
    let found = Command::new("ssh").arg("-V").output().is_ok() && Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !found {
        eprintln!("skipped: no OpenSSH client (ssh, ssh-keygen) installed");
    }
    found
}

/// Admins' key pairs, and the authorized_keys file the server reads.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        Keys { dir: tempfile::tempdir().unwrap() }
    }

    /// A new ed25519 key pair named `name`, with `comment`; returns its private key file.
    fn generate(&self, name: &str, comment: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        path
    }

    fn public(&self, private: &Path) -> String {
        std::fs::read_to_string(private.with_extension("pub")).unwrap().trim().to_string()
    }

    /// The key's SHA256 fingerprint, as OpenSSH prints it.
    fn fingerprint(&self, private: &Path) -> String {
        let output = Command::new("ssh-keygen").args(["-l", "-E", "sha256", "-f"]).arg(private).output().unwrap();
        let line = String::from_utf8(output.stdout).unwrap();
        line.split_whitespace().nth(1).expect("ssh-keygen -l prints a fingerprint").to_string()
    }

    fn authorized_keys(&self) -> PathBuf {
        self.dir.path().join("authorized_keys")
    }

    fn authorize(&self, lines: &[String]) {
        std::fs::write(self.authorized_keys(), lines.join("\n") + "\n").unwrap();
    }
}

/// `keytop serve` on a free port of 127.0.0.1, its log lines collected.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(sandbox: &Sandbox, keys: &Keys) -> Server {
        let authorized = keys.authorized_keys();
        let mut command = sandbox.command(&["serve", "--listen", "127.0.0.1:0", "--authorized-keys"]);
        command.arg(&authorized).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (port_sender, port_receiver) = std::sync::mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                    let port: u16 = rest.split(' ').next().unwrap().parse().unwrap();
                    let _ = port_sender.send(port);
                }
                lines.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let port = port_receiver
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("the server did not start: {}", log.lock().unwrap()));
        Server { child, port, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in the server log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The OpenSSH client's options for this server: no config, no agent, no known_hosts.
    fn ssh_args(&self, key: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
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
            "-p",
        ]
        .map(String::from)
        .into();
        args.push(self.port.to_string());
        args.push("-i".into());
        args.push(key.display().to_string());
        args
    }

    /// `ssh [options] admin@127.0.0.1 [extra]`, without a terminal.
    fn ssh(&self, key: &Path, extra: &[&str]) -> std::process::Output {
        let mut command = Command::new("ssh");
        command.args(self.ssh_args(key)).args(extra).arg("admin@127.0.0.1").env_remove("SSH_AUTH_SOCK");
        command.stdin(Stdio::null()).output().unwrap()
    }

    /// `ssh -tt` in a terminal of its own: an admin's session.
    fn connect(&self, key: &Path) -> Tui {
        self.connect_with(key, "xterm-256color", &[])
    }

    /// [`Server::connect`] from a terminal named `term`, with more options for `ssh`.
    fn connect_with(&self, key: &Path, term: &str, options: &[&str]) -> Tui {
        let mut command = CommandBuilder::new("ssh");
        command.arg("-tt");
        command.args(self.ssh_args(key));
        command.args(options);
        command.arg("admin@127.0.0.1");
        command.env_clear();
        command.env("TERM", term);
        command.env("PATH", std::env::var("PATH").unwrap_or_default());
        Tui::spawn(command, ROWS, COLUMNS)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sandbox with a prepaid key `wallet` ($10), admin `alice` and read-only admin `rita`.
struct Setup {
    sandbox: Sandbox,
    keys: Keys,
    alice: PathBuf,
    bob: PathBuf,
    rita: PathBuf,
    server: Server,
}

fn setup() -> Option<Setup> {
    setup_with_config("")
}

/// [`setup`] with this text as the config file.
fn setup_with_config(config: &str) -> Option<Setup> {
    if !have_ssh() {
        return None;
    }
    let sandbox = Sandbox::sqlite();
    std::fs::create_dir_all(sandbox.dir.path().join("config/keytop")).unwrap();
    std::fs::write(sandbox.dir.path().join("config/keytop/config.toml"), config).unwrap();
    sandbox.with_prepaid_key("10");
    let keys = Keys::new();
    let alice = keys.generate("alice", "alice");
    let bob = keys.generate("bob", "bob");
    let rita = keys.generate("rita", "rita");
    let lines = [keys.public(&alice), keys.public(&bob), format!("keytop-role=\"read-only\" {}", keys.public(&rita))];
    keys.authorize(&lines);
    let server = Server::start(&sandbox, &keys);
    Some(Setup { sandbox, keys, alice, bob, rita, server })
}

fn open_list(tui: &Tui) {
    tui.wait_for_text("wallet");
    tui.wait_until_idle();
}

#[test]
fn an_admin_gets_the_list_and_q_ends_only_their_session() {
    let Some(setup) = setup() else { return };
    let mut alice = setup.server.connect(&setup.alice);
    open_list(&alice);
    let bob = setup.server.connect(&setup.bob);
    open_list(&bob);
    bob.wait_for_text("2 connected: alice, bob");

    alice.type_keys("q");
    assert!(alice.wait_for_exit().success());
    setup.server.wait_for_log("session end admin=\"alice\"");
    // The server and the other session go on, and bob sees alice leave.
    bob.wait_for_text("1 connected: bob");
    let log = setup.server.log();
    assert!(log.contains("auth ok peer=127.0.0.1:"), "{log}");
    assert!(log.contains("admin=\"alice\" role=admin key=SHA256:"), "{log}");
    // The ends of the session and of the connection are logged with who it was.
    let fingerprint = setup.keys.fingerprint(&setup.alice);
    assert!(log.contains(&format!("session end admin=\"alice\" key={fingerprint} peer=127.0.0.1:")), "{log}");
    setup.server.wait_for_log(&format!("admin=\"alice\" key={fingerprint} closed after"));
}

#[test]
fn unknown_keys_passwords_commands_and_sessions_without_a_terminal_are_refused() {
    let Some(setup) = setup() else { return };
    let stranger = setup.keys.generate("mallory", "mallory");

    let unknown = setup.server.ssh(&stranger, &["-T"]);
    assert_eq!(unknown.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Permission denied (publickey)"));
    setup.server.wait_for_log("auth refused peer=127.0.0.1:");

    let password = setup
        .server
        .ssh(&setup.alice, &["-T", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"]);
    assert_eq!(password.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&password.stderr).contains("Permission denied (publickey)"));

    let mut command = Command::new("ssh");
    command.args(setup.server.ssh_args(&setup.alice)).args(["admin@127.0.0.1", "ls"]).env_remove("SSH_AUTH_SOCK");
    let exec = command.stdin(Stdio::null()).output().unwrap();
    assert_eq!(exec.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&exec.stderr).contains("commands are not run here"), "{exec:?}");

    let no_terminal = setup.server.ssh(&setup.alice, &["-T"]);
    assert_eq!(no_terminal.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_terminal.stderr).contains("keytop needs a terminal"), "{no_terminal:?}");
}

#[test]
fn the_screen_follows_the_window_size() {
    let Some(setup) = setup() else { return };
    let alice = setup.server.connect(&setup.alice);
    open_list(&alice);
    let status_row = |tui: &Tui| tui.row_of("connected:");
    assert_eq!(status_row(&alice), Some(usize::from(ROWS) - 2));
    alice.resize(20, 80);
    alice.wait_for("the status line to move up", |_| status_row(&alice) == Some(18));
}

#[test]
fn a_read_only_admin_cannot_change_anything() {
    let Some(setup) = setup() else { return };
    let mut rita = setup.server.connect(&setup.rita);
    open_list(&rita);
    rita.wait_for_text("read-only");
    let before = setup.sandbox.fingerprint();
    rita.type_keys("t");
    rita.type_keys("e");
    std::thread::sleep(Duration::from_millis(400));
    assert!(!rita.contents().contains("Top up"), "{}", rita.contents());
    assert!(!rita.contents().contains("Edit wallet"), "{}", rita.contents());
    assert_eq!(setup.sandbox.fingerprint(), before);
}

#[test]
fn a_top_up_in_one_session_shows_in_the_other_within_a_second() {
    let Some(setup) = setup() else { return };
    let mut alice = setup.server.connect(&setup.alice);
    open_list(&alice);
    let bob = setup.server.connect(&setup.bob);
    open_list(&bob);
    assert!(bob.contents().contains("$10.00"));

    alice.type_keys("t");
    alice.wait_for_text("Top up wallet");
    alice.type_keys("5\r");
    alice.wait_for_text("Added $5.00 on wallet");
    let applied = Instant::now();
    bob.wait_for_within("the top-up to reach bob", Duration::from_secs(1), |screen| screen.contains("$15.00"));
    eprintln!("top-up seen by the other session after {:?}", applied.elapsed());

    // The ledger and the audit log name the admin and keep their key's fingerprint, which unlike
    // the name cannot be edited.
    let fingerprint = setup.keys.fingerprint(&setup.alice);
    let ledger = setup.sandbox.sql("SELECT actor || ' ' || actor_key FROM balance_ledger ORDER BY id");
    assert_eq!(ledger.last(), Some(&format!("alice {fingerprint}")));
    let audit = setup.sandbox.json(&["audit", "--action", "topup"]);
    assert_eq!(audit[0]["actor"], "alice", "{audit}");
    assert_eq!(audit[0]["actor_key"], fingerprint.as_str(), "{audit}");
}

/// The kinds of colour the screen was drawn with: `rgb`, `256` (palette indices past the first
/// 16) and `16`, read from the SGR sequences in `raw`.
fn colour_kinds(raw: &[u8]) -> BTreeSet<&'static str> {
    let text = String::from_utf8_lossy(raw);
    let mut kinds = BTreeSet::new();
    for sequence in text.split("\x1b[").filter_map(|chunk| chunk.split_once('m').map(|(codes, _)| codes)) {
        let codes: Vec<&str> = sequence.split(';').collect();
        for at in 0..codes.len() {
            match (codes[at], codes.get(at + 1), codes.get(at + 2)) {
                ("38" | "48", Some(&"2"), _) => kinds.insert("rgb"),
                ("38" | "48", Some(&"5"), Some(index)) if index.parse::<u8>().is_ok_and(|index| index >= 16) => {
                    kinds.insert("256")
                }
                ("38" | "48", Some(&"5"), Some(_)) => kinds.insert("16"),
                _ => false,
            };
        }
    }
    kinds
}

#[test]
fn each_session_is_drawn_in_the_colours_its_terminal_says_it_shows() {
    let Some(setup) = setup() else { return };
    /// A terminal (`TERM`, options for ssh), the depth the server logs, the colours it draws with.
    struct Case(&'static str, &'static [&'static str], &'static str, &'static [&'static str]);
    let cases = [
        Case("xterm-256color", &[], "256", &["256"]),
        Case("xterm-256color", &["-o", "SetEnv=COLORTERM=truecolor"], "truecolor", &["rgb"]),
        Case("xterm", &[], "16", &["16"]),
        Case("xterm-256color", &["-o", "SetEnv=NO_COLOR=1"], "none", &[]),
    ];
    for Case(term, options, depth, kinds) in cases {
        let mut tui = setup.server.connect_with(&setup.alice, term, options);
        open_list(&tui);
        setup.server.wait_for_log(&format!("term={term} colors={depth} "));
        assert_eq!(colour_kinds(&tui.raw()).into_iter().collect::<Vec<_>>(), kinds, "TERM={term} {options:?}");
        tui.type_keys("q");
        assert!(tui.wait_for_exit().success());
    }
}

#[test]
fn connections_past_the_cap_or_the_login_grace_are_dropped() {
    let Some(setup) = setup_with_config("[serve]\nmax_sessions = 1\nlogin_grace = \"1s\"\n") else { return };
    let alice = setup.server.connect(&setup.alice);
    open_list(&alice);
    let second = setup.server.ssh(&setup.bob, &["-T"]);
    assert_eq!(second.status.code(), Some(255), "{second:?}");
    setup.server.wait_for_log("1 sessions already open");
    drop(alice);
    setup.server.wait_for_log("session end admin=\"alice\"");

    // A client that connects and says nothing is cut off after the grace time.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", setup.server.port)).unwrap();
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut silent, &mut sink);
    assert!(started.elapsed() < Duration::from_secs(5), "still open after {:?}", started.elapsed());
    setup.server.wait_for_log("no SSH handshake within the login grace time");
}

#[test]
fn a_revoked_admin_is_let_go_on_sighup_and_refused_afterwards() {
    let Some(setup) = setup() else { return };
    let mut alice = setup.server.connect(&setup.alice);
    open_list(&alice);
    setup.keys.authorize(&[setup.keys.public(&setup.bob)]);
    setup.server.signal("HUP");
    assert!(!alice.wait_for_exit().success());
    let raw = String::from_utf8_lossy(&alice.raw()).into_owned();
    assert!(raw.contains("your key is no longer authorized"), "{raw:?}");
    setup.server.wait_for_log("session end admin=\"alice\"");
    let again = setup.server.ssh(&setup.alice, &["-T"]);
    assert_eq!(again.status.code(), Some(255));
}

#[test]
fn sigterm_closes_every_session_cleanly_and_exits_0() {
    let Some(mut setup) = setup() else { return };
    let mut alice = setup.server.connect(&setup.alice);
    open_list(&alice);
    setup.server.signal("TERM");
    let status = alice.wait_for_exit();
    assert!(status.success(), "{status:?}");
    let raw = String::from_utf8_lossy(&alice.raw()).into_owned();
    assert!(raw.contains("\x1b[?1049l"), "the alternate screen was not left");
    assert!(raw.contains("the server is stopping"));
    let deadline = Instant::now() + PATIENCE;
    let code = loop {
        if let Some(status) = setup.server.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(Instant::now() < deadline, "the server did not exit:\n{}", setup.server.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0), "{}", setup.server.log());
}

#[test]
fn a_vanished_client_does_not_stall_the_others() {
    let Some(setup) = setup() else { return };
    let alice = setup.server.connect(&setup.alice);
    open_list(&alice);
    let alice_ssh = alice.pid().unwrap().to_string();
    // Frozen: its socket stays open but nothing is read any more.
    assert!(Command::new("kill").args(["-s", "STOP", &alice_ssh]).status().unwrap().success());
    let mut bob = setup.server.connect(&setup.bob);
    open_list(&bob);
    for _ in 0..5 {
        setup.sandbox.ok(&["topup", "wallet", "1"]);
        bob.type_keys("?");
        bob.wait_for_within("help to open", Duration::from_secs(2), |screen| screen.contains("Key list"));
        bob.type_keys("\x1b");
        bob.wait_for_within("help to close", Duration::from_secs(2), |screen| !screen.contains("Key list"));
    }
    bob.wait_for_within("the top-ups to show", Duration::from_secs(2), |screen| screen.contains("$15.00"));
    // Gone for good: the server notices and ends that session only.
    assert!(Command::new("kill").args(["-s", "KILL", &alice_ssh]).status().unwrap().success());
    setup.server.wait_for_log("session end admin=\"alice\"");
    bob.wait_for_text("1 connected: bob");
}

/// Open files, threads and memory of a process, from /proc.
fn resources(pid: u32) -> (usize, usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|line| line.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (fds, field("Threads:") as usize, field("VmRSS:"))
}

#[test]
fn fifty_sessions_in_a_row_leave_nothing_behind() {
    let Some(setup) = setup() else { return };
    let cycle = || {
        let mut tui = setup.server.connect(&setup.alice);
        open_list(&tui);
        tui.type_keys("q");
        assert!(tui.wait_for_exit().success());
    };
    for _ in 0..5 {
        cycle(); // warms up the pools and allocator
    }
    let ends = |log: &str| log.matches("connection from").count();
    let wait_closed = |count: usize| {
        let deadline = Instant::now() + PATIENCE;
        while ends(&setup.server.log()) < count {
            assert!(Instant::now() < deadline, "connections not closed:\n{}", setup.server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_closed(5);
    let (fds, threads, rss) = resources(setup.server.pid());
    for _ in 0..50 {
        cycle();
    }
    wait_closed(55);
    let (fds_after, threads_after, rss_after) = resources(setup.server.pid());
    let last_end = setup.server.log().lines().rfind(|line| line.contains("session end")).unwrap().to_string();
    assert!(last_end.ends_with("(0 sessions left)"), "{last_end}");
    assert_eq!(fds_after, fds, "file descriptors left open");
    assert!(threads_after <= threads + 2, "threads: {threads} → {threads_after}");
    assert!(rss_after < rss + 8 * 1024, "memory grew from {rss} KiB to {rss_after} KiB");
}
