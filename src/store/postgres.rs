//! The PostgreSQL store: for several keytop processes and gateway nodes sharing one database.
//!
//! Writes are single conditional statements or short transactions at READ COMMITTED; the rare
//! deadlock or serialization failure is retried here and never reaches the caller.

/// The columns of a key joined with its owner, over the aliases `k` (api_keys) and `u` (users).
macro_rules! key_columns {
    () => {
        "k.id, k.user_id, u.name AS owner_name, u.is_active AS owner_active, k.key_hash, \
         k.key_ciphertext, k.key_hint, k.name, k.allowed_providers, k.allowed_api_formats, \
         k.allowed_models, k.rate_limit, k.concurrent_limit, k.expires_at, k.is_standalone, \
         k.credited_micros, k.used_micros, k.auto_delete_on_expiry, k.is_active, k.last_used_at, \
         k.created_at, k.updated_at, k.budget_micros, k.budget_period, k.refill_micros, k.refill_period, \
         k.refill_mode, k.refill_last_period_start, k.low_balance_micros, k.previous_key_expires_at"
    };
}

/// Keys (`k`) with their owners (`u`), each owner read by its primary key. `LIMIT 1` (an id
/// names one user anyway) keeps the lookup per key: as a plain join, the planner hashed the
/// whole users table to find the owner of a single key.
macro_rules! keys_with_owners {
    () => {
        " FROM api_keys k CROSS JOIN LATERAL \
         (SELECT name, is_active FROM users WHERE users.id = k.user_id LIMIT 1) u"
    };
}

/// `SELECT` of keys joined with their owners; append `WHERE …`.
macro_rules! select_keys {
    () => {
        concat!("SELECT ", key_columns!(), keys_with_owners!())
    };
}

/// The `SET` list of an upsert into a daily rollup aliased `$alias`: the inserted row's sums
/// (`EXCLUDED`) added to the stored ones.
macro_rules! add_to_rollup {
    ($alias:literal) => {
        concat!(
            "requests = ",
            $alias,
            ".requests + EXCLUDED.requests, tokens = ",
            $alias,
            ".tokens + EXCLUDED.tokens, \
             cost_micros = ",
            $alias,
            ".cost_micros + EXCLUDED.cost_micros, \
             response_ms_sum = ",
            $alias,
            ".response_ms_sum + EXCLUDED.response_ms_sum, \
             timed_requests = ",
            $alias,
            ".timed_requests + EXCLUDED.timed_requests"
        )
    };
    // The per-key and owners' rollups also keep the rank of the day's cost (migration 0020).
    ($alias:literal, ranked) => {
        concat!(
            add_to_rollup!($alias),
            ", cost_rank = keytop_cost_rank(",
            $alias,
            ".cost_micros + EXCLUDED.cost_micros)"
        )
    };
}

/// The fleet rollup's shard of a usage row of the key `$key_id` (migration 0011): a byte of
/// the key's id, so that one key's rows always go to the same shard.
macro_rules! fleet_shard {
    ($key_id:literal) => {
        concat!("(get_byte(uuid_send(", $key_id, "), 15) % 16)::smallint")
    };
}

/// Moves the daily rollups of the keys matching `$keys` (a condition on `api_key_id`) into the
/// purged keys' rollup (migration 0011), before those keys are deleted: their usage stays the
/// fleet's, as "purged keys".
macro_rules! add_to_purged {
    ($keys:literal) => {
        concat!(
            "INSERT INTO usage_daily_purged AS p (day, requests, tokens, cost_micros, response_ms_sum, timed_requests) \
             SELECT day, SUM(requests)::bigint, SUM(tokens)::bigint, SUM(cost_micros)::bigint, \
                    SUM(response_ms_sum)::bigint, SUM(timed_requests)::bigint \
             FROM usage_daily WHERE ",
            $keys,
            " GROUP BY day \
             ON CONFLICT (day) DO UPDATE SET ",
            add_to_rollup!("p")
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

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rand::Rng;
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
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
use audit::insert_audit;
pub use sweep::SWEEP_LOCK;

static MIGRATOR: Migrator = sqlx::migrate!("assets/migrations/postgres");

/// How long opening the database may take before keytop gives up and says why.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 10;
/// Attempts of a transaction that keeps hitting deadlocks or serialization failures.
const MAX_ATTEMPTS: u32 = 5;

pub struct PgStore {
    pool: PgPool,
    /// The URL without its password, for messages.
    shown_url: String,
}

/// Opens the database (keep this entry point: `store::open` calls it). Does not migrate.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(PgStore::connect(url).await?))
}

impl PgStore {
    /// Connects once to prove the server is reachable (failing within [`CONNECT_TIMEOUT`] with the
    /// driver's reason), then keeps a pool.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        let shown_url = redact_url(url);
        let unavailable = |reason: String| StoreError::Unavailable { url: shown_url.clone(), reason };
        let options = PgConnectOptions::from_str(url).map_err(|error| unavailable(format!("invalid URL: {error}")))?;
        let target =
            format!("PostgreSQL at {}:{} as user {:?}", options.get_host(), options.get_port(), options.get_username());
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await;
        match probe {
            Err(_) => {
                return Err(unavailable(format!(
                    "tried {target}: no answer within {} s (is the server running and reachable?)",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(error)) => return Err(unavailable(format!("tried {target}: {error}"))),
            // The pool opens its own connections; this one only proved the way is open.
            Ok(Ok(connection)) => connection.close().await.map_err(|error| unavailable(error.to_string()))?,
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        Ok(PgStore { pool, shown_url })
    }

    /// Runs one attempt of an operation, again after a deadlock or serialization failure.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut attempts = 1;
        loop {
            match attempt().await {
                Err(error) if is_transient(&error) && attempts < MAX_ATTEMPTS => {
                    // Jitter, so two transactions that collided do not collide again in step.
                    let pause = rand::thread_rng().gen_range(5..25) * u64::from(attempts);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    attempts += 1;
                }
                result => return result.map_err(|error| self.store_error(error)),
            }
        }
    }

    fn store_error(&self, error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::Database(database) if database.kind() == ErrorKind::UniqueViolation => {
                StoreError::Conflict(conflict_subject(database.constraint()).into())
            }
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                StoreError::Unavailable { url: self.shown_url.clone(), reason: error.to_string() }
            }
            _ => StoreError::Database(error.to_string()),
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn describe(&self) -> String {
        self.shown_url.clone()
    }

    async fn migrate(&self) -> StoreResult<i64> {
        // sqlx holds a session advisory lock while it migrates, so concurrent processes take
        // turns. Should a migration fail, that connection is closed rather than pooled, so the
        // lock goes with it. (`run_direct` on one connection: `run` has a higher-ranked `Acquire`
        // bound that the `Send` check of `async_trait` rejects; sqlx provides this for that.)
        let mut connection = self.pool.acquire().await.map_err(|error| self.store_error(error))?;
        if let Err(error) = MIGRATOR.run_direct(None, &mut *connection, false).await {
            connection.close_on_drop();
            return Err(StoreError::Database(format!("migrating the schema failed: {error}")));
        }
        drop(connection);
        self.schema_version().await
    }

    async fn schema_version(&self) -> StoreResult<i64> {
        let store_error = |error| self.store_error(error);
        // A query naming a table that does not exist fails however it is written: look first.
        let migrated: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        if !migrated {
            return Ok(0);
        }
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(version.unwrap_or(0))
    }

    fn latest_schema_version(&self) -> i64 {
        latest_version(&MIGRATOR)
    }

    async fn insert_user(&self, user: &User, audit: &AuditRecord) -> StoreResult<()> {
        self.retrying(|| users::insert_user(&self.pool, user, audit)).await
    }

    async fn users(&self) -> StoreResult<Vec<UserSummary>> {
        users::users(&self.pool).await.map_err(|error| self.store_error(error))
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        users::user_by_name(&self.pool, name).await.map_err(|error| self.store_error(error))
    }

    async fn set_user_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<bool> {
        self.retrying(|| users::set_user_active(&self.pool, id, active, audit)).await
    }

    async fn user_overviews(&self, query: &UserQuery) -> StoreResult<Vec<UserOverview>> {
        fleet::user_overviews(&self.pool, query).await.map_err(|error| self.store_error(error))
    }

    async fn disable_user_keys(&self, user_id: Uuid, audit: &AuditRecord) -> StoreResult<Vec<Uuid>> {
        self.retrying(|| users::disable_user_keys(&self.pool, user_id, audit)).await
    }

    async fn insert_key(
        &self,
        key: &ApiKey,
        initial_credit: Option<&LedgerEntry>,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        self.retrying(|| keys::insert_key(&self.pool, key, initial_credit, audit)).await
    }

    async fn key(&self, id: Uuid) -> StoreResult<Option<ApiKey>> {
        keys::key(&self.pool, id).await.map_err(|error| self.store_error(error))
    }

    async fn keys_by_id_prefix(&self, prefix: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
        keys::keys_by_id_prefix(&self.pool, prefix, limit).await.map_err(|error| self.store_error(error))
    }

    async fn keys_by_name(&self, name: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
        keys::keys_by_name(&self.pool, name, limit).await.map_err(|error| self.store_error(error))
    }

    async fn low_balance_keys(&self, default_line: Money, limit: u32) -> StoreResult<Vec<ApiKey>> {
        attention::low_balance_keys(&self.pool, default_line, limit).await.map_err(|error| self.store_error(error))
    }

    async fn expiring_keys(&self, after: DateTime<Utc>, until: DateTime<Utc>, limit: u32) -> StoreResult<Vec<ApiKey>> {
        attention::expiring_keys(&self.pool, after, until, limit).await.map_err(|error| self.store_error(error))
    }

    async fn list_keys(&self, query: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        list::list_keys(&self.pool, query).await.map_err(|error| self.store_error(error))
    }

    async fn count_keys(&self, now: DateTime<Utc>) -> StoreResult<KeyCounts> {
        keys::count_keys(&self.pool, now).await.map_err(|error| self.store_error(error))
    }

    async fn count_matching(&self, query: &KeyQuery, cap: u32) -> StoreResult<u64> {
        list::count_matching(&self.pool, query, cap).await.map_err(|error| self.store_error(error))
    }

    async fn update_key(&self, id: Uuid, patch: &KeyPatch, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        self.retrying(|| keys::update_key(&self.pool, id, patch, audit)).await
    }

    async fn set_key_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        self.retrying(|| keys::set_key_active(&self.pool, id, active, audit)).await
    }

    async fn roll_key(&self, id: Uuid, roll: &SecretRoll, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        self.retrying(|| keys::roll_key(&self.pool, id, roll, audit)).await
    }

    async fn purge_key(&self, id: Uuid, audit: &AuditRecord) -> StoreResult<bool> {
        self.retrying(|| keys::purge_key(&self.pool, id, audit)).await
    }

    async fn verify_lookup(
        &self,
        key_hash: &str,
        rate_window_start: DateTime<Utc>,
        periods: CurrentPeriods,
    ) -> StoreResult<Option<VerifyLookup>> {
        keys::verify_lookup(&self.pool, key_hash, rate_window_start, periods)
            .await
            .map_err(|error| self.store_error(error))
    }

    async fn touch_last_used(&self, id: Uuid, at: DateTime<Utc>, stale_before: DateTime<Utc>) -> StoreResult<()> {
        self.retrying(|| keys::touch_last_used(&self.pool, id, at, stale_before)).await
    }

    async fn adjust_balance(&self, adjustment: &BalanceAdjustment) -> StoreResult<AdjustOutcome> {
        Ok(self.retrying(|| balance::adjust_with_used(&self.pool, adjustment)).await?.0)
    }

    async fn adjust_balance_and_read(
        &self,
        adjustment: &BalanceAdjustment,
    ) -> StoreResult<(AdjustOutcome, Option<Balance>)> {
        let (outcome, used) = self.retrying(|| balance::adjust_with_used(&self.pool, adjustment)).await?;
        let balance = outcome.balance_after(used.map(Money::from_micros));
        Ok((outcome, balance))
    }

    async fn ledger(&self, key_id: Uuid, limit: Option<u32>) -> StoreResult<Vec<LedgerEntry>> {
        balance::ledger(&self.pool, key_id, limit).await.map_err(|error| self.store_error(error))
    }

    async fn record_usage(&self, usage: &UsageRecord) -> StoreResult<UsageOutcome> {
        self.retrying(|| usage::record_usage(&self.pool, usage)).await
    }

    async fn daily_usage(&self, key_id: Uuid, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        usage::daily_usage(&self.pool, key_id, first, last).await.map_err(|error| self.store_error(error))
    }

    async fn fleet_daily_usage(&self, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        fleet::fleet_rollup(&self.pool, first, last).await.map_err(|error| self.store_error(error))
    }

    async fn purged_daily_usage(&self, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        fleet::purged_rollup(&self.pool, first, last).await.map_err(|error| self.store_error(error))
    }

    async fn user_daily_usage(&self, user_id: Uuid, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        fleet::user_rollup(&self.pool, user_id, first, last).await.map_err(|error| self.store_error(error))
    }

    async fn top_spenders(
        &self,
        kind: SpenderKind,
        first: NaiveDate,
        last: NaiveDate,
        limit: u32,
    ) -> StoreResult<Vec<Spender>> {
        fleet::top_spenders(&self.pool, kind, first, last, limit).await.map_err(|error| self.store_error(error))
    }

    async fn sweep(
        &self,
        now: DateTime<Utc>,
        global_auto_delete: bool,
        dry_run: bool,
        actor: Actor<'_>,
    ) -> StoreResult<SweepReport> {
        let plan = sweep::Plan { now, global_auto_delete, actor };
        if dry_run {
            sweep::preview(&self.pool, &plan).await.map_err(|error| self.store_error(error))
        } else {
            self.retrying(|| sweep::run(&self.pool, &plan)).await
        }
    }

    async fn refill_due(&self, periods: &RefillPeriods, actor: Actor<'_>, dry_run: bool) -> StoreResult<RefillReport> {
        self.retrying(|| plan::refill_due(&self.pool, periods, actor, dry_run)).await
    }

    async fn claim_alerts(&self, scope: AlertScope, check: &AlertCheck) -> StoreResult<Vec<AlertClaim>> {
        self.retrying(|| alerts::claim_alerts(&self.pool, scope, check)).await
    }

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        audit::append_audit(&self.pool, record).await.map_err(|error| self.store_error(error))
    }

    async fn audit(&self, key_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        audit::audit(&self.pool, key_id, limit).await.map_err(|error| self.store_error(error))
    }

    async fn audit_page(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        fleet::audit_page(&self.pool, query).await.map_err(|error| self.store_error(error))
    }

    async fn reseal_all_keys(&self, reseal: &Resealer<'_>, audit: &AuditRecord) -> StoreResult<ResealOutcome> {
        reseal::reseal_all_keys(&self.pool, reseal, audit).await.map_err(|error| self.store_error(error))
    }

    async fn bulk_load(&self, batch: &BulkLoad, audit: &AuditRecord) -> StoreResult<()> {
        self.retrying(|| bulk::load(&self.pool, batch, audit)).await
    }

    fn bulk_load_concurrency(&self) -> usize {
        2
    }

    async fn refresh_statistics(&self) -> StoreResult<()> {
        sqlx::query("ANALYZE users, api_keys, usage, usage_daily")
            .execute(&self.pool)
            .await
            .map_err(|error| self.store_error(error))?;
        Ok(())
    }
}

/// Deadlocks and serialization failures: the transaction did nothing and may simply run again.
fn is_transient(error: &sqlx::Error) -> bool {
    const SERIALIZATION_FAILURE: &str = "40001";
    const DEADLOCK_DETECTED: &str = "40P01";
    match error {
        sqlx::Error::Database(database) => {
            database.code().is_some_and(|code| code == SERIALIZATION_FAILURE || code == DEADLOCK_DETECTED)
        }
        _ => false,
    }
}

/// What a unique constraint protects, for "… already exists".
fn conflict_subject(constraint: Option<&str>) -> &'static str {
    match constraint {
        Some("users_name_key") => "a user with this name",
        Some("users_pkey") => "a user with this id",
        Some("api_keys_pkey") => "a key with this id",
        Some("api_keys_key_hash_key") => "a key with this hash",
        Some("usage_request_id_key") => "a usage record with this request id",
        Some("balance_ledger_idempotency_key") => "a ledger entry with this idempotency key",
        _ => "a row with this unique value",
    }
}
