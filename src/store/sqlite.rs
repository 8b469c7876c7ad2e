//! The SQLite store: one file (or memory), WAL journal, every multi-statement write inside
//! `BEGIN IMMEDIATE` so that concurrent writers queue on the busy timeout instead of deadlocking
//! on a lock upgrade.
//!
//! Column conventions: ids are hyphenated UUID text, times integer epoch milliseconds (UTC),
//! money integer micro-dollars, days `YYYY-MM-DD` text, allow lists JSON array text (NULL =
//! unrestricted), booleans 0/1.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use super::alerts::{AlertCheck, AlertClaim, AlertScope};
use super::plan::{RefillPeriods, RefillReport};
use super::{
    Actor, AdjustOutcome, AuditRecord, BalanceAdjustment, BulkLoad, ResealOutcome, Resealer, SecretRoll, Store,
    StoreError, StoreResult, SweepReport, UsageOutcome, UsageRecord, VerifyLookup, latest_version, redact_url,
};
use crate::domain::{
    ApiKey, AuditEntry, AuditQuery, Balance, CurrentPeriods, DailyUsage, KeyCounts, KeyPatch, KeyQuery, LedgerEntry,
    Money, Spender, SpenderKind, User, UserOverview, UserQuery, UserSummary,
};

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

static MIGRATOR: Migrator = sqlx::migrate!("assets/migrations/sqlite");

/// How long a statement waits for other writers before it reports `StoreError::Busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The columns of a key joined with its owner, in the shape `key_from_row` reads.
macro_rules! key_columns {
    () => {
        "SELECT k.id, k.user_id, u.name AS owner_name, u.is_active AS owner_active, k.key_hash, \
         k.key_ciphertext, k.key_hint, k.name, k.allowed_providers, k.allowed_api_formats, k.allowed_models, \
         k.rate_limit, k.concurrent_limit, k.expires_at, k.is_standalone, k.credited_micros, k.used_micros, \
         k.auto_delete_on_expiry, k.is_active, k.last_used_at, k.created_at, k.updated_at, k.budget_micros, \
         k.budget_period, k.refill_micros, k.refill_period, k.refill_mode, k.refill_last_period_start, \
         k.low_balance_micros, k.previous_key_expires_at"
    };
}

/// What a key with a budget spent in the budget's current period, from the daily rollup (at most
/// 31 rows), over the alias `k`; its `?`s are the first days of the current day, week and month,
/// then today again, the last day counted (`YYYY-MM-DD`, see `plan::budget_days`).
macro_rules! budget_spent {
    () => {
        "CASE WHEN k.budget_micros IS NULL THEN 0 ELSE \
         (SELECT COALESCE(SUM(cost_micros), 0) FROM usage_daily WHERE api_key_id = k.id \
          AND day >= CASE k.budget_period WHEN 'day' THEN ? WHEN 'week' THEN ? ELSE ? END AND day <= ?) END"
    };
}

macro_rules! key_from {
    () => {
        " FROM api_keys k JOIN users u ON u.id = k.user_id"
    };
}

/// A key's expiry as `api_keys_expires_order` indexes it: "never" as the largest integer. SQLite
/// uses an expression index only for the identical expression. The list names the column with a
/// table alias (`expiry_order!("{alias}.")`, a format string), the sweep without.
macro_rules! expiry_order {
    () => {
        expiry_order!("")
    };
    ($alias:literal) => {
        concat!("COALESCE(", $alias, "expires_at, 9223372036854775807)")
    };
}

/// Moves the daily rollups of the keys matching `$keys` (a condition on `api_key_id`) into the
/// purged keys' rollup (migration 0011), before those keys are deleted: their usage stays the
/// fleet's, as "purged keys".
macro_rules! add_to_purged {
    ($keys:literal) => {
        concat!(
            "INSERT INTO usage_daily_purged (day, requests, tokens, cost_micros, response_ms_sum, timed_requests) \
             SELECT day, SUM(requests), SUM(tokens), SUM(cost_micros), SUM(response_ms_sum), SUM(timed_requests) \
             FROM usage_daily WHERE ",
            $keys,
            " GROUP BY day \
             ON CONFLICT (day) DO UPDATE SET requests = requests + excluded.requests, \
             tokens = tokens + excluded.tokens, cost_micros = cost_micros + excluded.cost_micros, \
             response_ms_sum = response_ms_sum + excluded.response_ms_sum, \
             timed_requests = timed_requests + excluded.timed_requests"
        )
    };
}

/// The rank of a day's cost (migration 0019): its number of digits, then its first digit; 0
/// for nothing spent. It never decreases as the cost grows, so every row whose cost is at least
/// some amount has a rank at least that amount's. The top lists read it; the rollups' writers set
/// it, on a new row and as an update's cost reaches the next rank (the usage record since 0021,
/// triggers before).
macro_rules! cost_rank {
    ($cost:literal) => {
        concat!(
            "(CASE WHEN ",
            $cost,
            " > 0 THEN length(",
            $cost,
            ") * 10 + CAST(substr(",
            $cost,
            ", 1, 1) AS INTEGER) ELSE 0 END)"
        )
    };
}

mod alerts;
mod attention;
mod audit;
mod balance;
mod bulk;
mod fleet;
mod keys;
mod list;
mod plan;
mod reseal;
mod rows;
mod sweep;
mod usage;
mod users;

use audit::insert_audit;
use rows::{allow_list_json, key_from_row, millis};

pub struct SqliteStore {
    pool: SqlitePool,
    description: String,
    /// The database lives in the pool's one connection, which must never close.
    in_memory: bool,
}

/// Opens (creating when missing) the database of a `sqlite://PATH` or `sqlite::memory:` URL.
/// Does not migrate: `store::open` does that next.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(SqliteStore::connect(url).await?))
}

/// How the store connects to the database of a `sqlite://PATH` or `sqlite::memory:` URL: WAL
/// journal, `synchronous = NORMAL` (a commit is durable once the WAL is synced at a checkpoint;
/// a power cut can lose the last commits, never corrupt), foreign keys on, a 30 s busy timeout.
fn connect_options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT))
}

/// Creates a missing database file empty and private to the user, before SQLite opens it: SQLite
/// would create it with the umask's mode (0644, commonly), and gives its `-wal` and `-shm` files
/// the database file's mode. An empty file is a new database to SQLite.
fn create_private_database(path: &Path) -> std::io::Result<()> {
    match crate::paths::private_file_options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// A warning when the SQLite database of `url` exists and other users may read it (on Unix, its
/// mode grants group or others the read bit). The database holds key names, owners, balances,
/// usage and the audit trail; keytop says so rather than change the mode behind the admin's back.
pub fn readable_by_others(url: &str) -> Option<String> {
    let options = connect_options(url).ok()?;
    let path = options.get_filename();
    let mode = readable_mode(path)?;
    Some(format!(
        "the database {} can be read by other users (mode {:o}): it holds key names, owners, balances, usage \
         and the audit trail; to keep it private: chmod 600 {} and its -wal and -shm files",
        path.display(),
        mode,
        path.display()
    ))
}

/// The permission bits of the file at `path` when group or others may read it.
#[cfg(unix)]
fn readable_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn readable_mode(_path: &Path) -> Option<u32> {
    None
}

impl SqliteStore {
    pub async fn connect(url: &str) -> StoreResult<SqliteStore> {
        let unavailable = |reason: String| StoreError::Unavailable { url: redact_url(url), reason };
        let options = connect_options(url)
            .map_err(|error| unavailable(format!("not a valid SQLite URL ({error}); use sqlite://PATH")))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let (pool_options, description) = if in_memory {
            // One connection that never closes: the database lives exactly as long as it.
            let pool =
                SqlitePoolOptions::new().min_connections(1).max_connections(1).idle_timeout(None).max_lifetime(None);
            (pool, "sqlite::memory:".to_string())
        } else {
            let path = std::path::absolute(options.get_filename())
                .map_err(|error| unavailable(format!("cannot resolve the database path: {error}")))?;
            if let Some(folder) = path.parent() {
                crate::paths::create_private_dir_all(folder)
                    .map_err(|error| unavailable(format!("cannot create the folder {} ({error})", folder.display())))?;
            }
            create_private_database(&path)
                .map_err(|error| unavailable(format!("cannot create the database file ({error})")))?;
            (SqlitePoolOptions::new().max_connections(8), format!("sqlite://{}", path.display()))
        };
        // No ping before handing out a connection: a SQLite connection is a file handle that
        // cannot go stale the way a socket can, and each ping is a round trip to the
        // connection's worker thread that every operation would pay.
        let pool_options = pool_options.acquire_timeout(BUSY_TIMEOUT).test_before_acquire(false);
        let pool = pool_options.connect_with(options).await.map_err(|error| {
            unavailable(format!(
                "cannot open or create the SQLite database file ({error}); check the path and its permissions"
            ))
        })?;
        Ok(SqliteStore { pool, description, in_memory })
    }

    /// The store's connection pool, for measuring plain statements on exactly the connection
    /// settings the store runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction that holds the write lock from its first statement on.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)
    }

    async fn fetch_keys(&self, query: SqliteQuery<'_>) -> StoreResult<Vec<ApiKey>> {
        query.fetch_all(&self.pool).await.map_err(store_error)?.iter().map(key_from_row).collect()
    }

    /// Runs the migrator; when another process applies the same migration at the same moment,
    /// ours fails on the objects it created, so we look again instead of failing.
    async fn run_migrations(&self) -> StoreResult<()> {
        loop {
            let before = self.schema_version().await?;
            match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    let after = self.schema_version().await?;
                    if after <= before {
                        return Err(StoreError::Database(format!("migration failed: {error}")));
                    }
                }
            }
        }
    }

    /// Runs one write with its audit row; returns whether it changed a row (no audit row if not).
    async fn write_audited(&self, write: SqliteQuery<'_>, audit: &AuditRecord) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = write.execute(&mut *tx).await.map_err(store_error)?.rows_affected() > 0;
        if changed {
            insert_audit(&mut tx, audit).await?;
            tx.commit().await.map_err(store_error)?;
        }
        Ok(changed)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn migrate(&self) -> StoreResult<i64> {
        self.run_migrations().await?;
        self.schema_version().await
    }

    async fn schema_version(&self) -> StoreResult<i64> {
        let table_exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        if !table_exists {
            return Ok(0);
        }
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)
    }

    fn latest_schema_version(&self) -> i64 {
        latest_version(&MIGRATOR)
    }

    async fn insert_user(&self, user: &User, audit: &AuditRecord) -> StoreResult<()> {
        users::insert_user(self, user, audit).await
    }

    async fn users(&self) -> StoreResult<Vec<UserSummary>> {
        users::users(self).await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        users::user_by_name(self, name).await
    }

    async fn set_user_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<bool> {
        users::set_user_active(self, id, active, audit).await
    }

    async fn user_overviews(&self, query: &UserQuery) -> StoreResult<Vec<UserOverview>> {
        fleet::user_overviews(&self.pool, query).await
    }

    async fn disable_user_keys(&self, user_id: Uuid, audit: &AuditRecord) -> StoreResult<Vec<Uuid>> {
        users::disable_user_keys(self, user_id, audit).await
    }

    async fn insert_key(
        &self,
        key: &ApiKey,
        initial_credit: Option<&LedgerEntry>,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        keys::insert_key(self, key, initial_credit, audit).await
    }

    async fn key(&self, id: Uuid) -> StoreResult<Option<ApiKey>> {
        keys::key(self, id).await
    }

    async fn keys_by_id_prefix(&self, prefix: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
        keys::keys_by_id_prefix(self, prefix, limit).await
    }

    async fn keys_by_name(&self, name: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
        keys::keys_by_name(self, name, limit).await
    }

    async fn low_balance_keys(&self, default_line: Money, limit: u32) -> StoreResult<Vec<ApiKey>> {
        attention::low_balance_keys(self, default_line, limit).await
    }

    async fn expiring_keys(&self, after: DateTime<Utc>, until: DateTime<Utc>, limit: u32) -> StoreResult<Vec<ApiKey>> {
        attention::expiring_keys(self, after, until, limit).await
    }

    async fn list_keys(&self, query: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        list::list_keys(self, query).await
    }

    async fn count_keys(&self, now: DateTime<Utc>) -> StoreResult<KeyCounts> {
        keys::count_keys(self, now).await
    }

    async fn count_matching(&self, query: &KeyQuery, cap: u32) -> StoreResult<u64> {
        list::count_matching(self, query, cap).await
    }

    async fn update_key(&self, id: Uuid, patch: &KeyPatch, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        keys::update_key(self, id, patch, audit).await
    }

    async fn set_key_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        keys::set_key_active(self, id, active, audit).await
    }

    async fn roll_key(&self, id: Uuid, roll: &SecretRoll, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        keys::roll_key(self, id, roll, audit).await
    }

    async fn purge_key(&self, id: Uuid, audit: &AuditRecord) -> StoreResult<bool> {
        keys::purge_key(self, id, audit).await
    }

    async fn verify_lookup(
        &self,
        key_hash: &str,
        rate_window_start: DateTime<Utc>,
        periods: CurrentPeriods,
    ) -> StoreResult<Option<VerifyLookup>> {
        keys::verify_lookup(self, key_hash, rate_window_start, periods).await
    }

    async fn touch_last_used(&self, id: Uuid, at: DateTime<Utc>, stale_before: DateTime<Utc>) -> StoreResult<()> {
        keys::touch_last_used(self, id, at, stale_before).await
    }

    async fn adjust_balance(&self, adjustment: &BalanceAdjustment) -> StoreResult<AdjustOutcome> {
        Ok(balance::adjust_with_used(self, adjustment).await?.0)
    }

    async fn adjust_balance_and_read(
        &self,
        adjustment: &BalanceAdjustment,
    ) -> StoreResult<(AdjustOutcome, Option<Balance>)> {
        let (outcome, used) = balance::adjust_with_used(self, adjustment).await?;
        let balance = outcome.balance_after(used);
        Ok((outcome, balance))
    }

    async fn ledger(&self, key_id: Uuid, limit: Option<u32>) -> StoreResult<Vec<LedgerEntry>> {
        balance::ledger(self, key_id, limit).await
    }

    async fn record_usage(&self, usage: &UsageRecord) -> StoreResult<UsageOutcome> {
        usage::record_usage(self, usage).await
    }

    async fn daily_usage(&self, key_id: Uuid, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        usage::daily_usage(self, key_id, first, last).await
    }

    async fn fleet_daily_usage(&self, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        fleet::day_rollup(&self.pool, fleet::DayRollup::Fleet, first, last).await
    }

    async fn purged_daily_usage(&self, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        fleet::day_rollup(&self.pool, fleet::DayRollup::Purged, first, last).await
    }

    async fn user_daily_usage(&self, user_id: Uuid, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        fleet::user_rollup(&self.pool, user_id, first, last).await
    }

    async fn top_spenders(
        &self,
        kind: SpenderKind,
        first: NaiveDate,
        last: NaiveDate,
        limit: u32,
    ) -> StoreResult<Vec<Spender>> {
        fleet::top_spenders(&self.pool, kind, first, last, limit).await
    }

    async fn sweep(
        &self,
        now: DateTime<Utc>,
        global_auto_delete: bool,
        dry_run: bool,
        actor: Actor<'_>,
    ) -> StoreResult<SweepReport> {
        sweep::sweep(self, now, global_auto_delete, dry_run, actor).await
    }

    async fn refill_due(&self, periods: &RefillPeriods, actor: Actor<'_>, dry_run: bool) -> StoreResult<RefillReport> {
        plan::refill_due(self, periods, actor, dry_run).await
    }

    async fn claim_alerts(&self, scope: AlertScope, check: &AlertCheck) -> StoreResult<Vec<AlertClaim>> {
        alerts::claim_alerts(self, scope, check).await
    }

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        audit::append_audit(self, record).await
    }

    async fn audit(&self, key_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        audit::audit(self, key_id, limit).await
    }

    async fn audit_page(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        fleet::audit_page(&self.pool, query).await
    }

    async fn reseal_all_keys(&self, reseal: &Resealer<'_>, audit: &AuditRecord) -> StoreResult<ResealOutcome> {
        reseal::reseal_all_keys(self, reseal, audit).await
    }

    async fn bulk_load(&self, batch: &BulkLoad, audit: &AuditRecord) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let loaded = bulk::load(&mut conn, batch, audit).await;
        // The load grew this connection's page cache, and SQLite keeps the cache's hash table at
        // the largest size it reached: every later reset of the cache (each transaction after
        // another connection wrote) would walk it, which made each top-up and usage record on
        // this connection about twice as slow. Closed, the pool opens a fresh one when needed.
        if !self.in_memory {
            conn.close_on_drop();
        }
        loaded
    }
}

/// SQLite's primary result codes (the low byte of extended codes) for lock contention.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) => {
            let primary_code = db.code().and_then(|code| code.parse::<i32>().ok()).map(|code| code & 0xff);
            if matches!(primary_code, Some(SQLITE_BUSY | SQLITE_LOCKED)) {
                StoreError::Busy
            } else if db.is_unique_violation() {
                StoreError::Conflict(db.message().trim_start_matches("UNIQUE constraint failed: ").to_string())
            } else {
                StoreError::Database(error.to_string())
            }
        }
        sqlx::Error::PoolTimedOut => StoreError::Busy,
        _ => StoreError::Database(error.to_string()),
    }
}

/// Like `store_error`, naming what already exists when a unique constraint refuses a write.
fn conflict_as(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match store_error(error) {
        StoreError::Conflict(_) => StoreError::Conflict(what()),
        other => other,
    }
}

#[cfg(test)]
/// The query plan SQLite picks for a statement (`EXPLAIN QUERY PLAN …`), its steps joined.
async fn query_plan(store: &SqliteStore, query: SqliteQuery<'_>) -> String {
    use sqlx::Row;
    let rows = query.fetch_all(&store.pool).await.unwrap();
    rows.iter().map(|row| row.get::<String, _>("detail")).collect::<Vec<_>>().join("; ")
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap_or_else(|error| panic!("{}: {error}", path.display())).permissions().mode()
            & 0o777
    }

    /// The folders the store creates, the database and the `-wal` and `-shm` files SQLite creates
    /// next to it are the user's alone.
    #[tokio::test]
    async fn a_new_database_and_its_folders_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("keytop.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        store.migrate().await.unwrap();
        let audit = AuditRecord {
            at: Utc::now(),
            actor: "tester".into(),
            actor_key: None,
            action: "test".into(),
            api_key_id: None,
            details: serde_json::Value::Null,
        };
        store.append_audit(&audit).await.unwrap();
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        for file in ["keytop.db", "keytop.db-wal", "keytop.db-shm"] {
            assert_eq!(mode(&dir.path().join("new").join(file)), 0o600, "{file}");
        }
        assert_eq!(readable_by_others(&format!("sqlite://{}", path.display())), None);
    }

    /// An existing database others may read is reported, and its mode left as it is.
    #[tokio::test]
    async fn a_database_readable_by_others_is_reported_not_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keytop.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let url = format!("sqlite://{}", path.display());
        let warning = readable_by_others(&url).expect("a warning");
        assert!(warning.contains("can be read by other users (mode 640)"), "{warning}");
        assert!(warning.contains(&format!("chmod 600 {}", path.display())), "{warning}");
        SqliteStore::connect(&url).await.unwrap().migrate().await.unwrap();
        assert_eq!(mode(&path), 0o640);
    }
}
