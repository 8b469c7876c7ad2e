//! The change feed: a counter that goes up whenever the database may have changed, whoever changed
//! it (this process, another keytop, a gateway recording usage through the CLI). Open TUIs watch
//! it and re-query what they show.
//!
//! One watcher per process, on a connection of its own: on PostgreSQL it LISTENs to the
//! notifications the triggers of migration 0014 send at each commit; on SQLite it polls
//! `PRAGMA data_version`, which changes when another connection commits. After a lost connection
//! the counter goes up too, since changes may have been missed meanwhile.
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
    /// A counter only this process moves, until a watcher is started on it.
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
                tokio::spawn(listen_postgres(listener, url.to_string(), changes.clone()))
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

async fn listen_postgres(mut listener: PgListener, url: String, changes: Changes) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => changes.publish(),
            // The connection dropped and sqlx reconnected and listens again; whatever was sent in
            // between is lost, so everyone reloads.
            Ok(None) => changes.publish(),
            Err(error) => {
                tracing::warn!(%error, "the change watcher lost its PostgreSQL connection");
                tokio::time::sleep(RECONNECT_DELAY).await;
                if let Ok(fresh) = listen(&url).await {
                    listener = fresh;
                    changes.publish();
                }
            }
        }
    }
}
