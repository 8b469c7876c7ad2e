//! The change feed: a counter that goes up whenever the database may have changed, whoever changed
//! it (this process, another keytop, a gateway recording usage through the CLI). Open TUIs watch
//! it and re-query what they show.
//!
//! One watcher per process, on a connection of its own: on PostgreSQL it LISTENs to the
//! notifications the triggers of migration 0014 send at each commit; on SQLite it polls
//! `PRAGMA data_version`, which changes when another connection commits. After a lost connection
//! the counter goes up too, since changes may have been missed meanwhile; a PostgreSQL listener
//! that goes quiet is asked a trivial query, so one that died without a word is noticed too.
//!
//! Writes made in this process are published at once ([`Changes::publish`]): the sessions of one
//! `keytop serve` see each other's changes without waiting for the poll or the notification.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgListener;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Backend, StoreError, StoreResult, redact_url};

/// The PostgreSQL channel the triggers notify.
pub const CHANNEL: &str = "keytop_changes";
/// How often SQLite is asked whether another connection committed.
const SQLITE_POLL: Duration = Duration::from_millis(250);
/// The wait before reconnecting a watcher whose connection failed.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The counter, shared by the watcher and everyone in this process who reads or writes.
#[derive(Debug, Clone)]
pub struct Changes {
    sender: Arc<watch::Sender<u64>>,
}

impl Changes {
    /// A counter nothing moves yet: [`ChangeFeed::start`] gives it a watcher; a TUI's writes
    /// publish on it.
    pub fn new() -> Changes {
        Changes { sender: Arc::new(watch::channel(0).0) }
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }

    /// Tells every subscriber in this process that the database changed, now.
    pub fn publish(&self) {
        self.sender.send_modify(|generation| *generation += 1);
    }
}

impl Default for Changes {
    fn default() -> Self {
        Changes::new()
    }
}

/// A running watcher. Subscribers see the counter go up; dropping the feed stops the watcher.
pub struct ChangeFeed {
    changes: Changes,
    task: JoinHandle<()>,
}

impl ChangeFeed {
    /// Starts watching the database at `url` (its schema must be migrated already).
    pub async fn start(url: &str) -> StoreResult<ChangeFeed> {
        let unavailable =
            |error: sqlx::Error| StoreError::Unavailable { url: redact_url(url), reason: error.to_string() };
        let changes = Changes::new();
        let task = match Backend::of_url(url) {
            Some(Backend::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url).map_err(unavailable)?.read_only(true);
                let connection = SqliteConnection::connect_with(&options).await.map_err(unavailable)?;
                tokio::spawn(poll_sqlite(connection, options, changes.clone()))
            }
            Some(Backend::Postgres) => {
                let listener = listen(url).await.map_err(unavailable)?;
                tokio::spawn(listen_postgres(listener, url.to_string(), changes.clone(), HEARTBEAT))
            }
            None => return Err(StoreError::Database(format!("no database backend for {}", redact_url(url)))),
        };
        Ok(ChangeFeed { changes, task })
    }

    pub fn changes(&self) -> Changes {
        self.changes.clone()
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn poll_sqlite(mut connection: SqliteConnection, options: SqliteConnectOptions, changes: Changes) {
    let mut last = None;
    let mut ticks = tokio::time::interval(SQLITE_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // Values are per connection, so this one connection is asked every time; it runs no
        // transaction of its own, so it never holds back a checkpoint.
        match sqlx::query_scalar::<_, i64>("PRAGMA data_version").fetch_one(&mut connection).await {
            Ok(version) => {
                if last.is_some_and(|last| last != version) {
                    changes.publish();
                }
                last = Some(version);
            }
            Err(error) => {
                tracing::warn!(%error, "the change watcher lost its SQLite connection");
                tokio::time::sleep(RECONNECT_DELAY).await;
                if let Ok(fresh) = SqliteConnection::connect_with(&options).await {
                    connection = fresh;
                    last = None;
                    changes.publish();
                }
            }
        }
    }
}

async fn listen(url: &str) -> Result<PgListener, sqlx::Error> {
    // A listener of its own (not one taken from the pool): it does nothing but wait.
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// How a silently dead PostgreSQL connection (the server or a NAT in between gone without
/// closing it, so no error ever comes) is found out: after `quiet` without a notification, a
/// trivial query on the listener's connection must answer within `timeout`, else the listener
/// connects again.
#[derive(Debug, Clone, Copy)]
struct Heartbeat {
    quiet: Duration,
    timeout: Duration,
}

/// A dead listener is replaced within 20 s; a live one costs a `SELECT 1` every 15 s.
const HEARTBEAT: Heartbeat = Heartbeat { quiet: Duration::from_secs(15), timeout: Duration::from_secs(5) };

async fn listen_postgres(mut listener: PgListener, url: String, changes: Changes, heartbeat: Heartbeat) {
    loop {
        // `try_recv` is cancel-safe: a notification arriving as the wait times out is kept.
        let lost = match tokio::time::timeout(heartbeat.quiet, listener.try_recv()).await {
            Ok(Ok(Some(_))) => {
                changes.publish();
                continue;
            }
            // The connection dropped and sqlx reconnected and listens again; whatever was sent in
            // between is lost, so everyone reloads.
            Ok(Ok(None)) => {
                changes.publish();
                continue;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_quiet) => {
                match tokio::time::timeout(heartbeat.timeout, sqlx::query("SELECT 1").execute(&mut listener)).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(error)) => error.to_string(),
                    Err(_) => format!("no answer to a heartbeat within {:?}", heartbeat.timeout),
                }
            }
        };
        tracing::warn!(reason = %lost, "the change watcher lost its PostgreSQL connection; connecting again");
        listener = reconnect(&url, heartbeat).await;
        // Notifications sent meanwhile are lost: everyone reloads.
        changes.publish();
    }
}

/// A fresh listener, tried again until the database answers.
async fn reconnect(url: &str, heartbeat: Heartbeat) -> PgListener {
    loop {
        match tokio::time::timeout(heartbeat.timeout, listen(url)).await {
            Ok(Ok(listener)) => return listener,
            Ok(Err(error)) => tracing::warn!(%error, "the change watcher cannot connect again yet"),
            Err(_) => tracing::warn!("the change watcher cannot connect again yet: no answer"),
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sqlx::postgres::PgConnection;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Quick enough for a test: a silent listener is given up after half a second.
    const QUICK: Heartbeat = Heartbeat { quiet: Duration::from_millis(200), timeout: Duration::from_millis(300) };
    const PATIENCE: Duration = Duration::from_secs(5);

    fn postgres_url() -> Option<String> {
        std::env::var("KEYTOP_TEST_POSTGRES").ok()
    }

    async fn notify(url: &str) {
        let mut connection = PgConnection::connect(url).await.unwrap();
        sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut connection).await.unwrap();
    }

    async fn next_change(seen: &mut watch::Receiver<u64>, what: &str) {
        let waited = tokio::time::timeout(PATIENCE, seen.changed()).await;
        waited.unwrap_or_else(|_| panic!("no change within {PATIENCE:?}: {what}")).unwrap();
    }

    /// A TCP relay to PostgreSQL whose connections can go silent without closing, as behind a
    /// NAT or firewall that forgot them: those open when [`Relay::freeze`] is called stop carrying
    /// bytes; later ones work.
    struct Relay {
        url: String,
        opened: Arc<AtomicUsize>,
        frozen_below: Arc<AtomicUsize>,
    }

    impl Relay {
        /// `None` when the URL's address is not spelled out as `host:port`.
        async fn start(url: &str) -> Option<Relay> {
            let options = sqlx::postgres::PgConnectOptions::from_str(url).unwrap();
            let upstream = format!("{}:{}", options.get_host(), options.get_port());
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let relayed = url.replacen(&upstream, &listener.local_addr().unwrap().to_string(), 1);
            if relayed == url {
                return None;
            }
            let (opened, frozen_below) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let relay = Relay { url: relayed, opened: opened.clone(), frozen_below: frozen_below.clone() };
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let index = opened.fetch_add(1, Ordering::SeqCst);
                    let server = TcpStream::connect(&upstream).await.unwrap();
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pump(client_read, server_write, index, frozen_below.clone()));
                    tokio::spawn(pump(server_read, client_write, index, frozen_below.clone()));
                }
            });
            Some(relay)
        }

        fn freeze(&self) {
            self.frozen_below.store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
        }
    }

    async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, index: usize, frozen_below: Arc<AtomicUsize>) {
        let mut buffer = [0u8; 8192];
        loop {
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            if index < frozen_below.load(Ordering::SeqCst) {
                // Both ends stay open, and nothing more goes through.
                std::future::pending::<()>().await;
            }
            if to.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    }

    #[tokio::test]
    async fn a_listener_gone_silent_is_replaced_and_changes_flow_again() {
        let Some(url) = postgres_url() else { return };
        let Some(relay) = Relay::start(&url).await else { return };
        let changes = Changes::new();
        let mut seen = changes.subscribe();
        let listener = listen(&relay.url).await.unwrap();
        let watcher = tokio::spawn(listen_postgres(listener, relay.url.clone(), changes.clone(), QUICK));
        notify(&url).await;
        next_change(&mut seen, "a notification through the relay").await;

        relay.freeze();
        // A notification already on its way is let through; after this, only a new connection can
        // publish anything.
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen.borrow_and_update();
        next_change(&mut seen, "the silent listener given up and everyone told to reload").await;
        notify(&url).await;
        next_change(&mut seen, "a notification on the new connection").await;
        watcher.abort();
    }

    #[tokio::test]
    async fn a_listener_whose_backend_is_terminated_connects_again() {
        let Some(url) = postgres_url() else { return };
        let changes = Changes::new();
        let mut seen = changes.subscribe();
        let mut listener = listen(&url).await.unwrap();
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut listener).await.unwrap();
        let watcher = tokio::spawn(listen_postgres(listener, url.clone(), changes.clone(), QUICK));

        let mut admin = PgConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT pg_terminate_backend($1)").bind(backend).execute(&mut admin).await.unwrap();
        next_change(&mut seen, "everyone told to reload after the lost connection").await;
        seen.borrow_and_update();
        notify(&url).await;
        next_change(&mut seen, "a notification on the new connection").await;
        watcher.abort();
    }
}
