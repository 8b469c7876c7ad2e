//! End to end: the built binary in a pseudo-terminal. Filter to a key, top it up through the
//! dialog, quit, then check the balance and the ledger in the database.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keytop::crypto::MasterKey;
use keytop::domain::Money;
use keytop::service::{KeyService, ServiceSettings, UsageInput};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const ROWS: u16 = 30;
const COLUMNS: u16 = 110;
const PATIENCE: Duration = Duration::from_secs(20);

/// The environment every keytop process of the test shares: its own database, master key and
/// XDG directories, nothing from the user running the tests.
struct Sandbox {
    dir: tempfile::TempDir,
    db_url: String,
    master_key: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("k.db").display());
        let (_, master_key) = MasterKey::generate();
        Sandbox { dir, db_url, master_key }
    }

    fn env(&self) -> Vec<(String, String)> {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        vec![
            ("KEYTOP_MASTER_KEY".into(), self.master_key.clone()),
            ("XDG_CONFIG_HOME".into(), path("config")),
            ("XDG_STATE_HOME".into(), path("state")),
            ("XDG_DATA_HOME".into(), path("data")),
            ("KEYTOP_ACTOR".into(), "pty-test".into()),
            ("TERM".into(), "xterm-256color".into()),
        ]
    }

    fn cli(&self, args: &[&str]) {
        let output = Command::new(env!("CARGO_BIN_EXE_keytop"))
            .arg("--db")
            .arg(&self.db_url)
            .args(args)
            .env_clear()
            .envs(self.env())
            .output()
            .unwrap();
        assert!(output.status.success(), "keytop {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    async fn service(&self) -> KeyService {
        let store = keytop::store::open(&self.db_url).await.unwrap();
        let master_key = MasterKey::from_base64(&self.master_key).map_err(|e| e.to_string());
        KeyService::new(store, master_key, ServiceSettings::default(), "pty-test".into())
    }
}

/// The TUI running in a pseudo-terminal, its screen kept up to date by a reader thread.
struct Tui {
    screen: Arc<Mutex<vt100::Parser>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Tui {
    fn start(sandbox: &Sandbox) -> Tui {
        let pair = native_pty_system()
            .openpty(PtySize { rows: ROWS, cols: COLUMNS, pixel_width: 0, pixel_height: 0 })
            .unwrap();
        let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_keytop"));
        command.args(["--db", &sandbox.db_url]);
        command.env_clear();
        for (name, value) in sandbox.env() {
            command.env(name, value);
        }
        let child = pair.slave.spawn_command(command).unwrap();
        drop(pair.slave);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLUMNS, 0)));
        let mut reader = pair.master.try_clone_reader().unwrap();
        let parser = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buffer[..read]);
            }
        });
        let writer = pair.master.take_writer().unwrap();
        // The master must outlive the child's session; leaking it for the test's life is fine.
        std::mem::forget(pair.master);
        Tui { screen, writer, child }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until the screen satisfies `ready`, failing with the screen's contents.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if ready(&self.contents()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("timed out waiting for {what}; the screen shows:\n{}", self.contents());
    }

    fn wait_for_text(&self, text: &str) {
        self.wait_for(text, |screen| screen.contains(text));
    }

    /// Waits until nothing is loading (the list has caught up with the last keys).
    fn wait_until_idle(&self) {
        self.wait_for("the loading mark to go", |screen| !screen.contains("loading"));
    }

    fn type_keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    fn wait_for_exit(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "keytop exited with {status:?}; screen:\n{}", self.contents());
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let _ = self.child.kill();
        panic!("keytop did not quit; the screen shows:\n{}", self.contents());
    }
}

fn set_up_data(sandbox: &Sandbox) {
    sandbox.cli(&["users", "add", "alice"]);
    sandbox.cli(&["users", "add", "bob"]);
    sandbox.cli(&["keys", "create", "--user", "alice", "--name", "ci-key", "--standalone", "--balance", "10"]);
    for name in ["laptop", "staging", "batch-job"] {
        sandbox.cli(&["keys", "create", "--user", "bob", "--name", name]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_top_up_through_the_dialog_and_quit() {
    let sandbox = Sandbox::new();
    set_up_data(&sandbox);
    assert!(Path::new(env!("CARGO_BIN_EXE_keytop")).exists());

    let mut tui = Tui::start(&sandbox);
    tui.wait_for_text("batch-job");
    tui.wait_until_idle();

    tui.type_keys("/ci-key");
    tui.wait_for_text("filter \"ci-key\"");
    tui.type_keys("\r");
    tui.wait_for("the list to narrow to ci-key", |screen| !screen.contains("batch-job") && screen.contains("ci-key"));
    tui.wait_until_idle();

    tui.type_keys("t");
    tui.wait_for_text("Top up ci-key");
    tui.type_keys("7.5");
    tui.wait_for_text("remaining $10.00 → $17.50");
    tui.type_keys("\r");
    tui.wait_for_text("Added $7.50 on ci-key: remaining $17.50");
    tui.type_keys("q");
    tui.wait_for_exit();

    let service = sandbox.service().await;
    let key = service.resolve_key("ci-key").await.unwrap();
    assert_eq!(service.balance(key.id).await.unwrap().remaining, Some(Money::parse("17.50").unwrap()));
    let ledger = service.ledger(key.id, None).await.unwrap();
    assert_eq!(ledger.len(), 2, "the initial credit and the top-up: {ledger:?}");
    let top_up = ledger.last().unwrap();
    assert_eq!(top_up.delta, Money::parse("7.5").unwrap());
    assert_eq!(top_up.actor, "pty-test");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_that_matches_nothing_keeps_the_admin_in_the_list() {
    let sandbox = Sandbox::new();
    set_up_data(&sandbox);
    let mut tui = Tui::start(&sandbox);
    tui.wait_for_text("batch-job");
    tui.wait_until_idle();

    tui.type_keys("/no-such-key\r");
    tui.wait_for_text("No key matches \"no-such-key\".");
    tui.wait_until_idle();
    tui.type_keys("\r");
    // The list says it, and now the status bar too.
    tui.wait_for("the status bar to say so", |screen| screen.matches("No key matches \"no-such-key\"").count() == 2);
    let screen = tui.contents();
    assert!(!screen.contains("Loading"), "no detail pane opened:\n{screen}");
    assert!(screen.contains("Keys · All"), "still the list:\n{screen}");
    tui.type_keys("q");
    tui.wait_for_exit();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_confirmed_after_another_process_swept_says_so_instead_of_sweeping_nothing() {
    let sandbox = Sandbox::new();
    set_up_data(&sandbox);
    sandbox.cli(&["keys", "create", "--user", "alice", "--name", "short-lived", "--expires-in", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    let mut tui = Tui::start(&sandbox);
    tui.wait_for_text("short-lived");
    tui.wait_until_idle();

    tui.type_keys("S");
    tui.wait_for_text("1 to disable, 0 to delete");
    sandbox.cli(&["sweep"]); // the timed sweep of another keytop, while the question is open
    tui.type_keys("y");
    tui.wait_for_text("Nothing was swept: the expired keys changed since the dry run");
    tui.type_keys("q");
    tui.wait_for_exit();
}

/// The usage screen's top key opens on the keys screen, where it can be topped up, and `Esc`
/// goes back to the key list.
#[tokio::test(flavor = "multi_thread")]
async fn usage_top_key_top_up_and_back() {
    let sandbox = Sandbox::new();
    set_up_data(&sandbox);
    let service = sandbox.service().await;
    for (name, dollars) in [("ci-key", "2"), ("laptop", "0.5")] {
        let key = service.resolve_key(name).await.unwrap();
        let usage = UsageInput { total_tokens: 1_000, cost: Money::parse(dollars).unwrap(), ..UsageInput::default() };
        service.record_usage(key.id, &usage).await.unwrap();
    }

    let mut tui = Tui::start(&sandbox);
    tui.wait_for_text("batch-job");
    tui.wait_until_idle();

    tui.type_keys("2");
    tui.wait_for_text("Top keys by cost");
    tui.wait_for("ci-key first, with its share", |screen| screen.contains("▶ ci-key") && screen.contains("80.0%"));
    tui.type_keys("\r");
    tui.wait_for_text("Balance");
    tui.wait_until_idle();
    tui.type_keys("t");
    tui.wait_for_text("Top up ci-key");
    tui.type_keys("5");
    tui.wait_for_text("remaining $8.00 → $13.00");
    tui.type_keys("\r");
    tui.wait_for_text("Added $5.00 on ci-key: remaining $13.00");
    tui.type_keys("\x1b");
    tui.wait_for("the key list again", |screen| screen.contains("Status") && !screen.contains("Balance"));
    tui.type_keys("q");
    tui.wait_for_exit();

    let key = service.resolve_key("ci-key").await.unwrap();
    assert_eq!(service.balance(key.id).await.unwrap().remaining, Some(Money::parse("13").unwrap()));
}

/// From the users screen, a user's keys are disabled at once: one confirmation naming the count,
/// every key disabled, one audit row each.
#[tokio::test(flavor = "multi_thread")]
async fn users_screen_disables_all_of_a_users_keys() {
    let sandbox = Sandbox::new();
    set_up_data(&sandbox);

    let mut tui = Tui::start(&sandbox);
    tui.wait_for_text("batch-job");
    tui.wait_until_idle();

    tui.type_keys("3");
    tui.wait_for_text("Keys on/all");
    tui.wait_until_idle();
    tui.type_keys("j");
    tui.wait_for_text("▶ active   bob");
    tui.type_keys("\r");
    tui.wait_for_text("3 of 3 keys active");
    tui.type_keys("X");
    tui.wait_for_text("Disable all 3 enabled keys of bob?");
    tui.type_keys("y");
    tui.wait_for_text("Disabled 3 keys of bob");
    tui.wait_for_text("0 of 3 keys active");
    tui.type_keys("q");
    tui.wait_for("the users again", |screen| screen.contains("Keys on/all") && screen.contains("0 / 3"));
    tui.type_keys("q");
    tui.wait_for_exit();

    let service = sandbox.service().await;
    let detail = service.user_detail("bob", 30).await.unwrap();
    assert!(detail.keys.iter().all(|key| !key.is_active), "{:?}", detail.keys);
    let audit = service.audit(None, 100).await.unwrap();
    let disabled: Vec<_> = audit.iter().filter(|row| row.action == "key_disable").collect();
    assert_eq!(disabled.len(), 3, "one audit row per key");
    assert!(disabled.iter().all(|row| row.actor == "pty-test" && row.details.contains("bob")));
    let alice = service.user_detail("alice", 30).await.unwrap();
    assert!(alice.keys.iter().all(|key| key.is_active), "only bob's keys");
}

/// The create dialog names an owner who does not exist: it asks, then adds them with the key.
#[tokio::test(flavor = "multi_thread")]
async fn the_create_dialog_adds_a_missing_owner_after_asking() {
    let sandbox = Sandbox::new();
    set_up_data(&sandbox);

    let mut tui = Tui::start(&sandbox);
    tui.wait_for_text("batch-job");
    tui.wait_until_idle();
    tui.type_keys("n");
    tui.wait_for_text("Create a key");
    tui.type_keys(&"\x7f".repeat(10));
    tui.type_keys("zoe\t");
    tui.type_keys("zoe-laptop\r");
    tui.wait_for_text("Create the user zoe too?");
    tui.type_keys("y");
    tui.wait_for_text("New key zoe-laptop");
    tui.type_keys("\x1b");
    tui.wait_for("the list again", |screen| screen.contains("zoe-laptop") && !screen.contains("New key"));
    tui.type_keys("q");
    tui.wait_for_exit();

    let service = sandbox.service().await;
    let zoe = service.user_detail("zoe", 30).await.unwrap();
    assert_eq!(zoe.keys.iter().map(|key| key.name.as_str()).collect::<Vec<_>>(), ["zoe-laptop"]);
}

/// Every key of a filter marked with `*`, disabled with one `d` and one confirmation: one audit
/// row per key, and the others untouched.
#[tokio::test(flavor = "multi_thread")]
async fn mark_every_match_and_disable_them_at_once() {
    let sandbox = Sandbox::new();
    set_up_data(&sandbox);
    let mut tui = Tui::start(&sandbox);
    tui.wait_for_text("batch-job");
    tui.wait_until_idle();

    tui.type_keys("/bob\r");
    tui.wait_for("the list to narrow to bob's keys", |screen| !screen.contains("ci-key"));
    tui.wait_until_idle();
    tui.type_keys("*");
    tui.wait_for_text("· 3 marked");
    tui.type_keys("d");
    tui.wait_for_text("Disable 3 keys?");
    tui.type_keys("y");
    tui.wait_for_text("Disabled 3 of 3 keys");
    tui.type_keys("q");
    tui.wait_for_exit();

    let service = sandbox.service().await;
    for name in ["laptop", "staging", "batch-job"] {
        assert!(!service.resolve_key(name).await.unwrap().is_active, "{name} is disabled");
    }
    assert!(service.resolve_key("ci-key").await.unwrap().is_active, "an unmarked key is untouched");
    let disables = service.audit(None, 100).await.unwrap().into_iter().filter(|row| row.action == "key_disable");
    assert_eq!(disables.count(), 3, "one audit row per key");
}
