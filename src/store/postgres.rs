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
         k.created_at, k.updated_at"
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

mod balance;
mod bulk;
mod list;
mod reseal;
mod rows;
mod sweep;

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
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::{
    AdjustOutcome, AuditRecord, BalanceAdjustment, BulkLoad, ResealOutcome, Resealer, Store, StoreError, StoreResult,
    SweepReport, UsageOutcome, UsageRecord, VerifyLookup, latest_version, redact_url,
};
use crate::domain::{
    ApiKey, AuditEntry, Balance, DailyUsage, KeyCounts, KeyPatch, KeyQuery, LedgerEntry, Money, Patch, User,
    UserSummary,
};
use rows::{AuditRow, DailyRow, KeyRow, LedgerRow, UserRow, UserSummaryRow, VerifyRow, allow_list};
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

    async fn try_insert_user(&self, user: &User, audit: &AuditRecord) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO users (id, name, is_active, created_at) VALUES ($1, $2, $3, $4)")
            .bind(user.id)
            .bind(&user.name)
            .bind(user.is_active)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn try_set_user_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("UPDATE users SET is_active = $2 WHERE id = $1")
            .bind(id)
            .bind(active)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if found {
            insert_audit(&mut tx, audit).await?;
            tx.commit().await?;
        }
        Ok(found)
    }

    async fn try_insert_key(
        &self,
        key: &ApiKey,
        initial_credit: Option<&LedgerEntry>,
        audit: &AuditRecord,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, key_hash, key_ciphertext, key_hint, name, allowed_providers, \
             allowed_api_formats, allowed_models, rate_limit, concurrent_limit, expires_at, is_standalone, \
             credited_micros, used_micros, auto_delete_on_expiry, is_active, last_used_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(key.id)
        .bind(key.user_id)
        .bind(&key.key_hash)
        .bind(&key.key_ciphertext)
        .bind(&key.key_hint)
        .bind(&key.name)
        .bind(allow_list(key.allowed_providers.as_deref()))
        .bind(allow_list(key.allowed_api_formats.as_deref()))
        .bind(allow_list(key.allowed_models.as_deref()))
        .bind(key.rate_limit)
        .bind(key.concurrent_limit)
        .bind(key.expires_at)
        .bind(key.is_standalone)
        .bind(key.credited.map(|m| m.micros()))
        .bind(key.used.micros())
        .bind(key.auto_delete_on_expiry)
        .bind(key.is_active)
        .bind(key.last_used_at)
        .bind(key.created_at)
        .bind(key.updated_at)
        .execute(&mut *tx)
        .await?;
        if let Some(entry) = initial_credit {
            balance::insert_ledger_entry(&mut tx, entry).await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn try_update_key(
        &self,
        id: Uuid,
        patch: &KeyPatch,
        audit: &AuditRecord,
    ) -> Result<Option<ApiKey>, sqlx::Error> {
        // One static statement for every patch: each field comes with a flag "change it", so
        // absent fields keep their value and a cleared field becomes NULL.
        let mut tx = self.pool.begin().await?;
        let (providers_change, providers) = list_patch(&patch.allowed_providers);
        let (formats_change, formats) = list_patch(&patch.allowed_api_formats);
        let (models_change, models) = list_patch(&patch.allowed_models);
        let (rate_change, rate_limit) = value_patch(&patch.rate_limit);
        let (concurrent_change, concurrent_limit) = value_patch(&patch.concurrent_limit);
        let (expires_change, expires_at) = value_patch(&patch.expires_at);
        let (auto_delete_change, auto_delete) = value_patch(&patch.auto_delete_on_expiry);
        let row: Option<KeyRow> = sqlx::query_as(concat!(
            "WITH k AS (UPDATE api_keys SET \
               name = COALESCE($2, name), \
               allowed_providers = CASE WHEN $3 THEN $4 ELSE allowed_providers END, \
               allowed_api_formats = CASE WHEN $5 THEN $6 ELSE allowed_api_formats END, \
               allowed_models = CASE WHEN $7 THEN $8 ELSE allowed_models END, \
               rate_limit = CASE WHEN $9 THEN $10 ELSE rate_limit END, \
               concurrent_limit = CASE WHEN $11 THEN $12 ELSE concurrent_limit END, \
               expires_at = CASE WHEN $13 THEN $14 ELSE expires_at END, \
               auto_delete_on_expiry = CASE WHEN $15 THEN $16 ELSE auto_delete_on_expiry END, \
               updated_at = $17 \
             WHERE id = $1 RETURNING *) \
             SELECT ",
            key_columns!(),
            " FROM k JOIN users u ON u.id = k.user_id"
        ))
        .bind(id)
        .bind(patch.name.as_deref())
        .bind(providers_change)
        .bind(providers)
        .bind(formats_change)
        .bind(formats)
        .bind(models_change)
        .bind(models)
        .bind(rate_change)
        .bind(rate_limit)
        .bind(concurrent_change)
        .bind(concurrent_limit)
        .bind(expires_change)
        .bind(expires_at)
        .bind(auto_delete_change)
        .bind(auto_delete)
        .bind(audit.at)
        .fetch_optional(&mut *tx)
        .await?;
        finish_key_change(tx, row, audit).await
    }

    async fn try_set_key_active(
        &self,
        id: Uuid,
        active: bool,
        audit: &AuditRecord,
    ) -> Result<Option<ApiKey>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row: Option<KeyRow> = sqlx::query_as(concat!(
            "WITH k AS (UPDATE api_keys SET is_active = $2, updated_at = $3 WHERE id = $1 RETURNING *) SELECT ",
            key_columns!(),
            " FROM k JOIN users u ON u.id = k.user_id"
        ))
        .bind(id)
        .bind(active)
        .bind(audit.at)
        .fetch_optional(&mut *tx)
        .await?;
        finish_key_change(tx, row, audit).await
    }

    async fn try_purge_key(&self, id: Uuid, audit: &AuditRecord) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // usage_daily rows go by their foreign key; usage rows stay, with the purged key's id.
        let found =
            sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected() > 0;
        if found {
            insert_audit(&mut tx, audit).await?;
            tx.commit().await?;
        }
        Ok(found)
    }

    async fn try_record_usage(&self, usage: &UsageRecord) -> Result<UsageOutcome, sqlx::Error> {
        // One statement, so one round trip and atomic: the usage row, its daily rollup and the
        // charge happen only when the row is new; nothing is written for an unknown key. The key
        // row is share-locked (what a foreign key check would do), so a purge cannot slip in
        // between and leave a usage row written for a key already gone.
        let (known, charged): (bool, Option<bool>) = sqlx::query_as(
            "WITH key AS (SELECT id FROM api_keys WHERE id = $2 FOR KEY SHARE), \
             inserted AS ( \
               INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, \
                                  cost_micros, response_time_ms, created_at) \
               SELECT $1, key.id, $3, $4, $5, $6, $7, $8, $9 FROM key \
               ON CONFLICT (request_id) DO NOTHING \
               RETURNING api_key_id), \
             daily AS ( \
               INSERT INTO usage_daily AS d (api_key_id, day, requests, tokens, cost_micros, response_ms_sum, \
                                             timed_requests) \
               SELECT api_key_id, $10, 1, $6, $7, COALESCE($8, 0), CASE WHEN $8 IS NULL THEN 0 ELSE 1 END \
               FROM inserted \
               ON CONFLICT (api_key_id, day) DO UPDATE SET \
                 requests = d.requests + 1, \
                 tokens = d.tokens + EXCLUDED.tokens, \
                 cost_micros = d.cost_micros + EXCLUDED.cost_micros, \
                 response_ms_sum = d.response_ms_sum + EXCLUDED.response_ms_sum, \
                 timed_requests = d.timed_requests + EXCLUDED.timed_requests), \
             charged AS ( \
               UPDATE api_keys k SET \
                 used_micros = k.used_micros + CASE WHEN k.is_standalone THEN $7 ELSE 0 END, \
                 last_used_at = GREATEST(k.last_used_at, $9) \
               FROM inserted WHERE k.id = inserted.api_key_id \
               RETURNING k.is_standalone) \
             SELECT EXISTS (SELECT 1 FROM key), (SELECT is_standalone FROM charged)",
        )
        .bind(&usage.request_id)
        .bind(usage.api_key_id)
        .bind(&usage.provider)
        .bind(&usage.model)
        .bind(&usage.api_format)
        .bind(usage.total_tokens)
        .bind(usage.cost.micros())
        .bind(usage.response_time_ms)
        .bind(usage.created_at)
        .bind(usage.created_at.date_naive())
        .fetch_one(&self.pool)
        .await?;
        Ok(match (known, charged) {
            (false, _) => UsageOutcome::UnknownKey,
            (true, None) => UsageOutcome::Duplicate,
            (true, Some(charged)) => UsageOutcome::Recorded { charged },
        })
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
        self.retrying(|| self.try_insert_user(user, audit)).await
    }

    async fn users(&self) -> StoreResult<Vec<UserSummary>> {
        let rows: Vec<UserSummaryRow> = sqlx::query_as(
            "SELECT u.id, u.name, u.is_active, u.created_at, \
                    (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id) AS key_count \
             FROM users u ORDER BY u.name, u.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|error| self.store_error(error))?;
        Ok(rows.into_iter().map(UserSummary::from).collect())
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as("SELECT id, name, is_active, created_at FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| self.store_error(error))?;
        Ok(row.map(User::from))
    }

    async fn set_user_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<bool> {
        self.retrying(|| self.try_set_user_active(id, active, audit)).await
    }

    async fn insert_key(
        &self,
        key: &ApiKey,
        initial_credit: Option<&LedgerEntry>,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        self.retrying(|| self.try_insert_key(key, initial_credit, audit)).await
    }

    async fn key(&self, id: Uuid) -> StoreResult<Option<ApiKey>> {
        let row: Option<KeyRow> = sqlx::query_as(concat!(select_keys!(), " WHERE k.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| self.store_error(error))?;
        Ok(row.map(ApiKey::from))
    }

    async fn keys_by_id_prefix(&self, prefix: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
        let Some((first, last)) = list::id_prefix_range(prefix) else {
            return Ok(Vec::new());
        };
        let rows: Vec<KeyRow> =
            sqlx::query_as(concat!(select_keys!(), " WHERE k.id BETWEEN $1 AND $2 ORDER BY k.id LIMIT $3"))
                .bind(first)
                .bind(last)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(|error| self.store_error(error))?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    async fn keys_by_name(&self, name: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
        let rows: Vec<KeyRow> = sqlx::query_as(concat!(select_keys!(), " WHERE k.name = $1 ORDER BY k.id LIMIT $2"))
            .bind(name)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| self.store_error(error))?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    async fn list_keys(&self, query: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        list::list_keys(&self.pool, query).await.map_err(|error| self.store_error(error))
    }

    async fn count_keys(&self, now: DateTime<Utc>) -> StoreResult<KeyCounts> {
        // "Expired" counts the keys whose status is expired: a disabled key shows as disabled.
        let (total, disabled, expired): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE NOT is_active), \
                    COUNT(*) FILTER (WHERE is_active AND expires_at <= $1) \
             FROM api_keys",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| self.store_error(error))?;
        Ok(KeyCounts { total, disabled, expired })
    }

    async fn update_key(&self, id: Uuid, patch: &KeyPatch, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        self.retrying(|| self.try_update_key(id, patch, audit)).await
    }

    async fn set_key_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        self.retrying(|| self.try_set_key_active(id, active, audit)).await
    }

    async fn purge_key(&self, id: Uuid, audit: &AuditRecord) -> StoreResult<bool> {
        self.retrying(|| self.try_purge_key(id, audit)).await
    }

    async fn verify_lookup(
        &self,
        key_hash: &str,
        rate_window_start: DateTime<Utc>,
    ) -> StoreResult<Option<VerifyLookup>> {
        // The count runs only for a key with a rate limit (a CASE branch is evaluated lazily).
        // Its window is written as a range (`< 'infinity'` excludes no row) because the server
        // estimates a two-sided range over parameters as narrow and a one-sided one as a third of
        // the key's rows: with the latter the generic plan of this prepared statement looked
        // dearer than planning anew, and every verify paid for planning again.
        let row: Option<VerifyRow> = sqlx::query_as(concat!(
            "SELECT ",
            admission_columns!(),
            ", CASE WHEN k.rate_limit IS NULL THEN 0 ELSE \
                 (SELECT COUNT(*) FROM usage r \
                  WHERE r.api_key_id = k.id AND r.created_at > $2 AND r.created_at < 'infinity') END \
               AS recent_requests",
            keys_with_owners!(),
            " WHERE k.key_hash = $1"
        ))
        .bind(key_hash)
        .bind(rate_window_start)
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| self.store_error(error))?;
        Ok(row.map(VerifyLookup::from))
    }

    async fn touch_last_used(&self, id: Uuid, at: DateTime<Utc>, stale_before: DateTime<Utc>) -> StoreResult<()> {
        self.retrying(|| {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $2) \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
            )
            .bind(id)
            .bind(at)
            .bind(stale_before)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
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
        // The most recent `limit` rows (all when NULL), handed back oldest first.
        let rows: Vec<LedgerRow> = sqlx::query_as(
            "SELECT * FROM ( \
               SELECT id, api_key_id, at, actor, delta_micros, credited_after, note, idempotency_key \
               FROM balance_ledger WHERE api_key_id = $1 ORDER BY id DESC LIMIT $2) recent \
             ORDER BY id",
        )
        .bind(key_id)
        .bind(limit.map(i64::from))
        .fetch_all(&self.pool)
        .await
        .map_err(|error| self.store_error(error))?;
        Ok(rows.into_iter().map(LedgerEntry::from).collect())
    }

    async fn record_usage(&self, usage: &UsageRecord) -> StoreResult<UsageOutcome> {
        self.retrying(|| self.try_record_usage(usage)).await
    }

    async fn daily_usage(&self, key_id: Uuid, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        let rows: Vec<DailyRow> = sqlx::query_as(
            "SELECT day, requests, tokens, cost_micros, response_ms_sum, timed_requests FROM usage_daily \
             WHERE api_key_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
        )
        .bind(key_id)
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await
        .map_err(|error| self.store_error(error))?;
        Ok(rows.into_iter().map(DailyUsage::from).collect())
    }

    async fn sweep(
        &self,
        now: DateTime<Utc>,
        global_auto_delete: bool,
        dry_run: bool,
        actor: &str,
    ) -> StoreResult<SweepReport> {
        let plan = sweep::Plan { now, global_auto_delete, actor };
        if dry_run {
            sweep::preview(&self.pool, &plan).await.map_err(|error| self.store_error(error))
        } else {
            self.retrying(|| sweep::run(&self.pool, &plan)).await
        }
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

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        let mut connection = self.pool.acquire().await.map_err(|error| self.store_error(error))?;
        insert_audit(&mut connection, record).await.map_err(|error| self.store_error(error))
    }

    async fn audit(&self, key_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        // Two statements rather than `$1 IS NULL OR …`, so each can use its index.
        let rows: Vec<AuditRow> = match key_id {
            Some(key_id) => {
                sqlx::query_as(
                    "SELECT id, at, actor, action, api_key_id, details::text AS details FROM audit_log \
                     WHERE api_key_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(key_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query_as(
                    "SELECT id, at, actor, action, api_key_id, details::text AS details FROM audit_log \
                     ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(|error| self.store_error(error))?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}

/// Writes the audit row of a change, inside the change's transaction.
async fn insert_audit(connection: &mut PgConnection, record: &AuditRecord) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, api_key_id, details) VALUES ($1, $2, $3, $4, $5)")
        .bind(record.at)
        .bind(&record.actor)
        .bind(&record.action)
        .bind(record.api_key_id)
        .bind(Json(&record.details))
        .execute(connection)
        .await?;
    Ok(())
}

/// Commits a key change with its audit row when the key existed.
async fn finish_key_change(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    row: Option<KeyRow>,
    audit: &AuditRecord,
) -> Result<Option<ApiKey>, sqlx::Error> {
    let Some(row) = row else {
        return Ok(None);
    };
    insert_audit(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(Some(row.into()))
}

/// A patch as (change it?, new value): `Clear` is a change to NULL.
fn value_patch<T: Clone>(patch: &Patch<T>) -> (bool, Option<T>) {
    match patch {
        Patch::Keep => (false, None),
        Patch::Clear => (true, None),
        Patch::Set(value) => (true, Some(value.clone())),
    }
}

/// Like [`value_patch`], for allow lists: an empty list is stored as NULL (unrestricted).
fn list_patch(patch: &Patch<Vec<String>>) -> (bool, Option<Json<&[String]>>) {
    match patch {
        Patch::Keep => (false, None),
        Patch::Clear => (true, None),
        Patch::Set(list) => (true, allow_list(Some(list))),
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
