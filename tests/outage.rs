//! Database outages, simulated with a TCP proxy between keytop and the PostgreSQL test server
//! (the shared server itself is never stopped): the proxy can be cut — open connections killed,
//! new ones dropped or left unanswered — and restored.
//!
//! * Starting keytop (CLI and TUI) against a database that refuses or never answers fails fast
//!   with a clear message.
//! * With the TUI open, cutting the proxy shows a banner with the error and the next retry, keys
//!   keep working, a top-up tried meanwhile is reported as failed and never applied later; when
//!   the proxy is back the TUI recovers by itself.

mod common;
mod sandbox;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sandbox::Sandbox;
use sandbox::pty::Tui;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

const UP: u8 = 0;
/// Connections are accepted and closed at once (a server that went away).
const REFUSING: u8 = 1;
/// Connections are accepted and never answered (a network that drops packets).
const SILENT: u8 = 2;

/// A TCP proxy to one upstream address that can be cut and restored.
struct Proxy {
    address: SocketAddr,
    mode: Arc<AtomicU8>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(UP));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (accept_mode, accept_connections) = (Arc::clone(&mode), Arc::clone(&connections));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                let task = match accept_mode.load(Ordering::SeqCst) {
                    UP => {
                        let upstream = upstream.clone();
                        tokio::spawn(async move {
                            if let Ok(mut server) = TcpStream::connect(&upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        })
                    }
                    REFUSING => {
                        drop(client);
                        continue;
                    }
                    _ => tokio::spawn(async move {
                        // Hold the connection open and say nothing.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(client);
                    }),
                };
                accept_connections.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        Proxy { address, mode, connections, accept }
    }

    /// Cuts every open connection and treats new ones as `mode` says.
    fn cut(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.connections.lock().unwrap().drain(..).for_each(|c| c.abort());
        self.mode.store(UP, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_for(&self, url: &str) -> String {
        let start = url.find("://").unwrap() + 3;
        let rest = &url[start..];
        let (userinfo, after) = match rest.split_once('@') {
            Some((userinfo, after)) => (format!("{userinfo}@"), after),
            None => (String::new(), rest),
        };
        let path = after.find('/').map_or("", |i| &after[i..]);
        format!("{}{userinfo}{}{path}", &url[..start], self.address)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(REFUSING);
    }
}

/// host:port of a PostgreSQL URL.
fn upstream_of(url: &str) -> String {
    let rest = &url[url.find("://").unwrap() + 3..];
    let after = rest.split_once('@').map_or(rest, |(_, after)| after);
    let host_port = after.split(['/', '?']).next().unwrap();
    if host_port.contains(':') { host_port.to_string() } else { format!("{host_port}:5432") }
}

#[test]
fn the_tui_fails_fast_and_clearly_when_the_database_refuses() {
    let sandbox = Sandbox::sqlite();
    let started = Instant::now();
    let mut tui = Tui::start_with(&sandbox, "postgres://admin:hunter2@127.0.0.1:1/keys", &[]);
    let status = tui.wait_for_exit();
    assert!(!status.success(), "keytop must fail");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let screen = tui.contents();
    assert!(screen.contains("cannot open the database") && screen.contains("127.0.0.1:1"), "{screen}");
    assert!(!screen.contains("hunter2"), "{screen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_and_tui_fail_fast_when_the_database_never_answers() {
    let upstream = common::postgres_server().map_or_else(|| "127.0.0.1:5432".into(), |url| upstream_of(&url));
    let proxy = Proxy::start(upstream).await;
    proxy.cut(SILENT);
    let url = format!("postgres://admin:hunter2@{}/keys", proxy.address);
    tokio::task::spawn_blocking(move || {
        let sandbox = Sandbox::sqlite();
        let started = Instant::now();
        let output = sandbox.command(&["keys", "list"]).env("KEYTOP_DB", &url).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("no answer within 5 s"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(15), "the CLI took {:?}", started.elapsed());

        let started = Instant::now();
        let mut tui = Tui::start_with(&sandbox, &url, &[]);
        let status = tui.wait_for_exit();
        assert!(!status.success());
        assert!(started.elapsed() < Duration::from_secs(15), "the TUI took {:?}", started.elapsed());
        let screen = tui.contents();
        assert!(screen.contains("no answer within 5 s"), "{screen}");
    })
    .await
    .unwrap();
    drop(proxy);
}

/// The row marked as selected (`▶`) on the screen.
fn selected_row(screen: &str) -> Option<String> {
    screen.lines().find(|line| line.contains('▶')).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tui_rides_out_an_outage_and_recovers_by_itself() {
    let Some(sandbox) = Sandbox::postgres().await else {
        eprintln!("skipped: KEYTOP_TEST_POSTGRES is not set");
        return;
    };
    let proxy = Proxy::start(upstream_of(&sandbox.db_url)).await;
    let proxy = Arc::new(proxy);
    let through_proxy = proxy.url_for(&sandbox.db_url);
    let control = Arc::clone(&proxy);
    tokio::task::spawn_blocking(move || {
        sandbox.ok(&["users", "add", "alice"]);
        for name in ["k1", "k2"] {
            sandbox.ok(&["keys", "create", "--user", "alice", "--name", name]);
        }
        sandbox.with_prepaid_key_for("alice", "10");
        let config = sandbox.dir.path().join("config.toml");
        std::fs::write(&config, "[ui]\nrefresh_interval = \"1s\"\n").unwrap();

        let mut tui = Tui::start_with(&sandbox, &through_proxy, &["--config", config.to_str().unwrap()]);
        tui.wait_for_text("wallet");
        tui.wait_until_idle();
        tui.type_keys("a");
        tui.wait_for_text("auto-refresh 1s");

        // The database goes away.
        control.cut(REFUSING);
        tui.wait_for("the outage banner", |s| s.lines().next().is_some_and(|l| l.contains("Database unreachable")));
        let screen = tui.contents();
        let banner = screen.lines().next().unwrap();
        assert!(banner.contains("cannot open the database"), "the banner names the error: {banner}");
        assert!(banner.contains("retry ") && banner.contains("s ·"), "the banner says when it retries: {banner}");
        assert!(screen.contains("k1") && screen.contains("wallet"), "the rows stay listed:\n{screen}");

        // Keys keep responding.
        tui.type_keys("?");
        tui.wait_for_text("┌ Help");
        tui.type_keys("\x1b");
        tui.wait_for("the help to close", |s| !s.contains("┌ Help"));
        tui.type_keys("g");
        tui.wait_for("wallet selected", |s| selected_row(s).is_some_and(|row| row.contains("wallet")));
        tui.type_keys("j");
        tui.wait_for("j to move down", |s| selected_row(s).is_some_and(|row| row.contains("k2")));
        tui.type_keys("k");
        tui.wait_for("k to move up", |s| selected_row(s).is_some_and(|row| row.contains("wallet")));

        // A top-up during the outage is reported as failed.
        tui.type_keys("t");
        tui.wait_for_text("Top up wallet");
        tui.type_keys("3\r");
        // The failure is reported below the banner (which names the same error on the first line).
        tui.wait_for("the top-up to fail", |s| {
            s.contains("Top up wallet") && s.lines().skip(1).any(|line| line.contains("cannot open the database"))
        });
        tui.type_keys("\x1b");
        tui.wait_for("the dialog to close", |s| !s.contains("Top up wallet"));
        // Meanwhile another admin tops up directly (not through the proxy).
        sandbox.ok(&["topup", "wallet", "1", "--note", "during the outage"]);

        // The database comes back: the banner goes and the data is fresh, without a key press.
        control.restore();
        tui.wait_for("recovery", |s| !s.contains("Database unreachable") && s.contains("$11.00"));
        tui.wait_until_idle();

        // A network that swallows packets instead: every call waits out the connect timeout,
        // keys still respond, and the TUI comes back once the way is open again.
        control.cut(SILENT);
        tui.wait_for("the banner of a silent outage", |s| {
            s.lines().next().is_some_and(|l| l.contains("Database unreachable"))
        });
        tui.type_keys("j");
        tui.wait_for("j during a silent outage", |s| selected_row(s).is_some_and(|row| row.contains("k2")));
        control.restore();
        tui.wait_for("recovery from the silent outage", |s| !s.contains("Database unreachable"));

        // The failed top-up is never applied later.
        std::thread::sleep(Duration::from_secs(3));
        let ledger = sandbox.json(&["ledger", "wallet"]);
        let deltas: Vec<&str> = ledger.as_array().unwrap().iter().map(|e| e["delta"].as_str().unwrap()).collect();
        assert_eq!(deltas, ["10.000000", "1.000000"], "the top-up tried during the outage never lands");
        assert_eq!(sandbox.json(&["balance", "wallet"])["remaining"], "11.000000");
        tui.quit();
        let raw = String::from_utf8_lossy(&tui.raw()).into_owned();
        assert!(!raw.contains("panicked"), "keytop panicked");
    })
    .await
    .unwrap();
}
