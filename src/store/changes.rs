//! The change feed: a counter that goes up whenever the database may have changed, whoever changed
//! it (this process, another keytop, a gateway recording usage through the CLI). Open TUIs watch
//! it and re-query what they show.
//!
//! One watcher per process, on a connection of its own: on PostgreSQL it LISTENs to the
//! notifications the triggers of migration 0014 send at each commit; on SQLite it polls
//! `PRAGMA data_version`, which changes when another connection commits. After a lost connection
//! the counter goes up too, since changes may have been missed meanwhile.

use std::str::FromStr as _;
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

/// A running watcher. Receivers see the counter go up; dropping the feed stops the watcher.
pub struct ChangeFeed {
    receiver: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl ChangeFeed {
    /// Starts watching the database at `url` (its schema must be migrated already).
    pub async fn start(url: &str) -> StoreResult<ChangeFeed> {
        let unavailable =
            |error: sqlx::Error| StoreError::Unavailable { url: redact_url(url), reason: error.to_string() };
        let (sender, receiver) = watch::channel(0);
        let task = match Backend::of_url(url) {
            Some(Backend::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url).map_err(unavailable)?.read_only(true);
                let connection = SqliteConnection::connect_with(&options).await.map_err(unavailable)?;
                tokio::spawn(poll_sqlite(connection, options, sender))
            }
            Some(Backend::Postgres) => {
                let listener = listen(url).await.map_err(unavailable)?;
                tokio::spawn(listen_postgres(listener, url.to_string(), sender))
            }
            None => return Err(StoreError::Database(format!("no database backend for {}", redact_url(url)))),
        };
        Ok(ChangeFeed { receiver, task })
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.receiver.clone()
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bump(sender: &watch::Sender<u64>) {
    sender.send_modify(|generation| *generation += 1);
}

async fn poll_sqlite(mut connection: SqliteConnection, options: SqliteConnectOptions, sender: watch::Sender<u64>) {
    let mut last = None;
    let mut ticks = tokio::time::interval(SQLITE_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !sender.is_closed() {
        ticks.tick().await;
        // Values are per connection, so this one connection is asked every time; it runs no
        // transaction of its own, so it never holds back a checkpoint.
        match sqlx::query_scalar::<_, i64>("PRAGMA data_version").fetch_one(&mut connection).await {
            Ok(version) => {
                if last.is_some_and(|last| last != version) {
                    bump(&sender);
                }
                last = Some(version);
            }
            Err(error) => {
                tracing::warn!(%error, "the change watcher lost its SQLite connection");
                tokio::time::sleep(RECONNECT_DELAY).await;
                if let Ok(fresh) = SqliteConnection::connect_with(&options).await {
                    connection = fresh;
                    last = None;
                    bump(&sender);
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

async fn listen_postgres(mut listener: PgListener, url: String, sender: watch::Sender<u64>) {
    while !sender.is_closed() {
        match listener.try_recv().await {
            Ok(Some(_)) => bump(&sender),
            // The connection dropped and sqlx reconnected and listens again; whatever was sent in
            // between is lost, so everyone reloads.
            Ok(None) => bump(&sender),
            Err(error) => {
                tracing::warn!(%error, "the change watcher lost its PostgreSQL connection");
                tokio::time::sleep(RECONNECT_DELAY).await;
                if let Ok(fresh) = listen(&url).await {
                    listener = fresh;
                    bump(&sender);
                }
            }
        }
    }
}
