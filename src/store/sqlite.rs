//! The SQLite store: one file (or memory), WAL journal, every multi-statement write inside
//! `BEGIN IMMEDIATE` so that concurrent writers queue on the busy timeout instead of deadlocking
//! on a lock upgrade.
//!
//! Column conventions: ids are hyphenated UUID text, times integer epoch milliseconds (UTC),
//! money integer micro-dollars, days `YYYY-MM-DD` text, allow lists JSON array text (NULL =
//! unrestricted), booleans 0/1.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Decode, QueryBuilder, Row, Sqlite, Transaction, Type};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

mod bulk;

use super::{
    AdjustOutcome, AuditRecord, BalanceAdjustment, BalanceChange, BulkLoad, ResealOutcome, Resealer, SWEEP_SAMPLE,
    Store, StoreError, StoreResult, SweepReport, UsageOutcome, UsageRecord, VerifyLookup, latest_version, redact_url,
};
use crate::domain::money::MAX_AMOUNT;
use crate::domain::{
    ActiveFilter, ApiKey, AuditEntry, Balance, DailyUsage, KeyAdmission, KeyCounts, KeyPatch, KeyQuery, KeyScope,
    LedgerEntry, Money, PageFrom, Patch, SortKey, SweptKey, User, UserSummary, remaining,
};

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

static MIGRATOR: Migrator = sqlx::migrate!("assets/migrations/sqlite");

/// How long a statement waits for other writers before it reports `StoreError::Busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Keys handled per chunk by the sweep (held in a temporary table, never in memory here).
const SWEEP_CHUNK: i64 = 50_000;

/// The columns of a key joined with its owner, in the shape `key_from_row` reads.
macro_rules! key_columns {
    () => {
        "SELECT k.id, k.user_id, u.name AS owner_name, u.is_active AS owner_active, k.key_hash, \
         k.key_ciphertext, k.key_hint, k.name, k.allowed_providers, k.allowed_api_formats, k.allowed_models, \
         k.rate_limit, k.concurrent_limit, k.expires_at, k.is_standalone, k.credited_micros, k.used_micros, \
         k.auto_delete_on_expiry, k.is_active, k.last_used_at, k.created_at, k.updated_at"
    };
}

macro_rules! key_from {
    () => {
        " FROM api_keys k JOIN users u ON u.id = k.user_id"
    };
}

macro_rules! ledger_columns {
    () => {
        "SELECT id, api_key_id, at, actor, delta_micros, credited_after, note, idempotency_key FROM balance_ledger"
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

/// The sweep's order, and that of its keyset cursor: expiry, then id.
macro_rules! in_expiry_order {
    () => {
        concat!(" ORDER BY ", expiry_order!(), ", id")
    };
}

/// Predicates of the sweep; `?1` is `now` in epoch milliseconds, `?2` the global policy (0/1).
macro_rules! sweep_delete_where {
    () => {
        concat!(" WHERE ", expiry_order!(), " <= ?1 AND COALESCE(auto_delete_on_expiry, ?2) = 1")
    };
}
macro_rules! sweep_disable_where {
    () => {
        concat!(" WHERE ", expiry_order!(), " <= ?1 AND COALESCE(auto_delete_on_expiry, ?2) = 0 AND is_active = 1")
    };
}

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
                std::fs::create_dir_all(folder)
                    .map_err(|error| unavailable(format!("cannot create the folder {} ({error})", folder.display())))?;
            }
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

    /// Applies an adjustment, or tells why not, and the key's used total when it was applied.
    async fn adjust_with_used(&self, adjustment: &BalanceAdjustment) -> StoreResult<(AdjustOutcome, Option<Money>)> {
        if let BalanceChange::Add(amount) = adjustment.change
            && let Some(applied) = self.add_in_one_statement(adjustment, amount).await?
        {
            return Ok(applied);
        }
        // Refused, a reused idempotency key, or a new credited total: the transaction decides
        // again under the write lock, and explains a refusal.
        self.adjust_in_transaction(adjustment).await
    }

    /// A top-up or deduction through the `balance_additions` trigger (migration 0005): one
    /// statement. `None` when the rules refused it or its idempotency key is taken, with
    /// nothing changed.
    async fn add_in_one_statement(
        &self,
        adjustment: &BalanceAdjustment,
        amount: Money,
    ) -> StoreResult<Option<(AdjustOutcome, Option<Money>)>> {
        // The row is selected from the key only when the addition is allowed; RETURNING runs
        // after the trigger, under the same write lock, so the newest ledger row is this one.
        let applied = sqlx::query(
            "INSERT INTO balance_additions (api_key_id, delta_micros, delta_text, credited_after, used_micros, \
             at, actor, action, note, idempotency_key) \
             SELECT ?1, ?2, ?3, credited_micros + ?2, used_micros, ?4, ?5, ?6, ?7, ?8 FROM api_keys \
             WHERE id = ?1 AND is_standalone = 1 AND credited_micros IS NOT NULL \
             AND (?2 >= 0 OR -?2 <= MAX(0, credited_micros - used_micros)) \
             AND credited_micros + ?2 BETWEEN 0 AND ?9 \
             RETURNING (SELECT MAX(id) FROM balance_ledger) AS ledger_id, credited_after, used_micros",
        )
        .bind(adjustment.key_id.hyphenated())
        .bind(amount.micros())
        .bind(amount.to_decimal_string())
        .bind(millis(adjustment.at))
        .bind(&adjustment.actor)
        .bind(adjustment.change.audit_action())
        .bind(&adjustment.note)
        .bind(&adjustment.idempotency_key)
        .bind(MAX_AMOUNT.micros())
        .fetch_optional(&self.pool)
        .await;
        let row = match applied.map_err(store_error) {
            Ok(Some(row)) => row,
            Ok(None) | Err(StoreError::Conflict(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let entry = LedgerEntry {
            id: get(&row, "ledger_id")?,
            api_key_id: adjustment.key_id,
            at: adjustment.at,
            actor: adjustment.actor.clone(),
            delta: amount,
            credited_after: Some(Money::from_micros(get(&row, "credited_after")?)),
            note: adjustment.note.clone(),
            idempotency_key: adjustment.idempotency_key.clone(),
        };
        Ok(Some((AdjustOutcome::Applied(entry), Some(Money::from_micros(get(&row, "used_micros")?)))))
    }

    /// Applies an adjustment inside one write transaction, or tells why not.
    async fn adjust_in_transaction(
        &self,
        adjustment: &BalanceAdjustment,
    ) -> StoreResult<(AdjustOutcome, Option<Money>)> {
        let mut tx = self.begin_write().await?;
        if let Some(idempotency_key) = &adjustment.idempotency_key
            && let Some(previous) = ledger_by_idempotency_key(&mut tx, idempotency_key).await?
        {
            return Ok((replay_outcome(adjustment, previous), None));
        }
        // Reads happen under the write lock. An addition needs none up front: its conditional
        // `UPDATE` decides, and only a refusal is explained by reading the key. Setting the
        // credited total reads the old one first, for the ledger's delta.
        let before = match adjustment.change {
            BalanceChange::Add(_) => None,
            BalanceChange::SetCredited(_) => balance_state(&mut tx, adjustment.key_id).await?,
        };
        let Some(Applied { credited_after, used }) = apply_change(&mut tx, adjustment).await? else {
            let state = match before {
                Some(state) => Some(state),
                None => balance_state(&mut tx, adjustment.key_id).await?,
            };
            return Ok((state.map_or(AdjustOutcome::NotFound, |state| refusal(state, adjustment.change)), None));
        };
        let delta = match adjustment.change {
            BalanceChange::Add(delta) => delta,
            BalanceChange::SetCredited(credited) => Money::from_micros(
                credited.map_or(0, Money::micros) - before.and_then(|state| state.credited).map_or(0, Money::micros),
            ),
        };
        let mut entry = LedgerEntry {
            id: 0,
            api_key_id: adjustment.key_id,
            at: adjustment.at,
            actor: adjustment.actor.clone(),
            delta,
            credited_after,
            note: adjustment.note.clone(),
            idempotency_key: adjustment.idempotency_key.clone(),
        };
        entry.id = match insert_ledger(&mut tx, &entry).await {
            Ok(id) => id,
            // A twin with the same idempotency key committed first: report it as ours.
            Err(StoreError::Conflict(_)) if adjustment.idempotency_key.is_some() => {
                drop(tx);
                return Ok((self.replay_after_conflict(adjustment).await?, None));
            }
            Err(error) => return Err(error),
        };
        insert_audit(&mut tx, &AuditRecord::for_adjustment(&entry, adjustment.change)).await?;
        tx.commit().await.map_err(store_error)?;
        Ok((AdjustOutcome::Applied(entry), Some(used)))
    }

    /// The page of a filtered list found by walking the list's own order over at most
    /// [`WALK_ROWS`] keys and filtering them, when they hold a whole page of matches; `None`
    /// otherwise (then the trigram index answers). Filters shorter than a trigram have no index
    /// to turn to: their query walks the whole list anyway.
    async fn walk_for_matches(&self, query: &KeyQuery, now: DateTime<Utc>) -> StoreResult<Option<Vec<ApiKey>>> {
        let Some(filter) = list_filter(query).filter(|text| text.chars().count() >= TRIGRAM_CHARS) else {
            return Ok(None);
        };
        let walked = KeyQuery { filter: None, limit: WALK_ROWS, ..query.clone() };
        let mut builder = QueryBuilder::new("SELECT * FROM (");
        push_list_query(&mut builder, &walked, now);
        builder.push(") AS k WHERE 1 = 1");
        push_filter(&mut builder, filter, Matching::Scan);
        push_order_and_limit(&mut builder, query);
        let keys = self.fetch_keys(builder.build()).await?;
        Ok((keys.len() >= query.limit as usize).then_some(keys))
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
}

mod reseal;

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
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO users (id, name, is_active, created_at) VALUES (?, ?, ?, ?)")
            .bind(user.id.hyphenated())
            .bind(&user.name)
            .bind(user.is_active)
            .bind(millis(user.created_at))
            .execute(&mut *tx)
            .await
            .map_err(conflict_as(|| format!("a user named {:?}", user.name)))?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(store_error)
    }

    async fn users(&self) -> StoreResult<Vec<UserSummary>> {
        let rows = sqlx::query(
            "SELECT u.id, u.name, u.is_active, u.created_at, \
             (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id) AS key_count \
             FROM users u ORDER BY u.name, u.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| Ok(UserSummary { user: user_from_row(row)?, key_count: get(row, "key_count")? }))
            .collect()
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT id, name, is_active, created_at FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn set_user_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<bool> {
        let update = sqlx::query("UPDATE users SET is_active = ? WHERE id = ?").bind(active).bind(id.hyphenated());
        self.write_audited(update, audit).await
    }

    async fn insert_key(
        &self,
        key: &ApiKey,
        initial_credit: Option<&LedgerEntry>,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        bulk::insert_keys(&mut tx, std::slice::from_ref(key), || {
            format!("a key with id {} or with the same hash", key.id)
        })
        .await?;
        if let Some(entry) = initial_credit {
            insert_ledger(&mut tx, entry).await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(store_error)
    }

    async fn key(&self, id: Uuid) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(concat!(key_columns!(), key_from!(), " WHERE k.id = ?"))
            .bind(id.hyphenated())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn keys_by_id_prefix(&self, prefix: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
        // A range on the primary key: ids only hold `[0-9a-f-]`, all below '~'.
        let low = prefix.to_ascii_lowercase();
        let high = format!("{low}~");
        self.fetch_keys(
            sqlx::query(concat!(key_columns!(), key_from!(), " WHERE k.id >= ? AND k.id < ? ORDER BY k.id LIMIT ?"))
                .bind(low)
                .bind(high)
                .bind(i64::from(limit)),
        )
        .await
    }

    async fn keys_by_name(&self, name: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
        self.fetch_keys(
            sqlx::query(concat!(key_columns!(), key_from!(), " WHERE k.name = ? ORDER BY k.id LIMIT ?"))
                .bind(name)
                .bind(i64::from(limit)),
        )
        .await
    }

    async fn list_keys(&self, query: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        let now = query.now.unwrap_or_else(Utc::now);
        // A filter that many keys match finds a page among the first keys of the list order; one
        // that few match is better answered by the trigram index. Try the first, bounded, then
        // the second.
        let mut keys = match self.walk_for_matches(query, now).await? {
            Some(keys) => keys,
            None => {
                let mut builder = QueryBuilder::new("");
                push_list_query(&mut builder, query, now);
                self.fetch_keys(builder.build()).await?
            }
        };
        if matches!(query.from, PageFrom::Before(_)) {
            // Fetched walking backwards from the cursor; the caller wants list order.
            keys.reverse();
        }
        Ok(keys)
    }

    async fn count_keys(&self, now: DateTime<Utc>) -> StoreResult<KeyCounts> {
        // Counted as `ApiKey::status` derives it: disabled wins over expired.
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, \
             COALESCE(SUM(is_active = 0), 0) AS disabled, \
             COALESCE(SUM(is_active = 1 AND expires_at <= ?), 0) AS expired \
             FROM api_keys",
        )
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(KeyCounts { total: get(&row, "total")?, disabled: get(&row, "disabled")?, expired: get(&row, "expired")? })
    }

    async fn update_key(&self, id: Uuid, patch: &KeyPatch, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        let mut builder = QueryBuilder::new("UPDATE api_keys SET updated_at = ");
        builder.push_bind(millis(audit.at));
        if let Some(name) = &patch.name {
            builder.push(", name = ").push_bind(name.clone());
        }
        push_patch(&mut builder, "allowed_providers", &patch.allowed_providers, |list| allow_list_json(Some(list)));
        push_patch(&mut builder, "allowed_api_formats", &patch.allowed_api_formats, |list| allow_list_json(Some(list)));
        push_patch(&mut builder, "allowed_models", &patch.allowed_models, |list| allow_list_json(Some(list)));
        push_patch(&mut builder, "rate_limit", &patch.rate_limit, |limit| Some(*limit));
        push_patch(&mut builder, "concurrent_limit", &patch.concurrent_limit, |limit| Some(*limit));
        push_patch(&mut builder, "expires_at", &patch.expires_at, |at| Some(millis(*at)));
        push_patch(&mut builder, "auto_delete_on_expiry", &patch.auto_delete_on_expiry, |flag| Some(*flag));
        builder.push(" WHERE id = ").push_bind(id.hyphenated());
        self.change_key(id, builder, audit).await
    }

    async fn set_key_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<Option<ApiKey>> {
        let mut builder = QueryBuilder::new("UPDATE api_keys SET is_active = ");
        builder.push_bind(active).push(", updated_at = ").push_bind(millis(audit.at));
        builder.push(" WHERE id = ").push_bind(id.hyphenated());
        self.change_key(id, builder, audit).await
    }

    async fn purge_key(&self, id: Uuid, audit: &AuditRecord) -> StoreResult<bool> {
        // The foreign key drops the daily rollup; usage rows stay, with the purged key's id.
        let delete = sqlx::query("DELETE FROM api_keys WHERE id = ?").bind(id.hyphenated());
        self.write_audited(delete, audit).await
    }

    async fn verify_lookup(
        &self,
        key_hash: &str,
        rate_window_start: DateTime<Utc>,
    ) -> StoreResult<Option<VerifyLookup>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            admission_columns!(),
            ", CASE WHEN k.rate_limit IS NULL THEN 0 ELSE \
             (SELECT COUNT(*) FROM usage WHERE api_key_id = k.id AND created_at > ?) END AS recent_requests",
            key_from!(),
            " WHERE k.key_hash = ?"
        ))
        .bind(millis(rate_window_start))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|row| {
            Ok(VerifyLookup { key: admission_from_row(&row)?, recent_requests: get(&row, "recent_requests")? })
        })
        .transpose()
    }

    async fn touch_last_used(&self, id: Uuid, at: DateTime<Utc>, stale_before: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
        )
        .bind(millis(at))
        .bind(id.hyphenated())
        .bind(millis(stale_before))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn adjust_balance(&self, adjustment: &BalanceAdjustment) -> StoreResult<AdjustOutcome> {
        Ok(self.adjust_with_used(adjustment).await?.0)
    }

    async fn adjust_balance_and_read(
        &self,
        adjustment: &BalanceAdjustment,
    ) -> StoreResult<(AdjustOutcome, Option<Balance>)> {
        let (outcome, used) = self.adjust_with_used(adjustment).await?;
        let balance = outcome.balance_after(used);
        Ok((outcome, balance))
    }

    async fn ledger(&self, key_id: Uuid, limit: Option<u32>) -> StoreResult<Vec<LedgerEntry>> {
        // The newest `limit` rows (a negative LIMIT means none), turned back to oldest first.
        let rows = sqlx::query(concat!(
            "SELECT * FROM (",
            ledger_columns!(),
            " WHERE api_key_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id"
        ))
        .bind(key_id.hyphenated())
        .bind(limit.map_or(-1, i64::from))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(ledger_from_row).collect()
    }

    async fn record_usage(&self, usage: &UsageRecord) -> StoreResult<UsageOutcome> {
        let key_id = usage.api_key_id.hyphenated();
        // One statement through the `usage_records` trigger (migration 0005). The row is
        // selected from the key only when the request id is new.
        let recorded: Option<bool> = sqlx::query_scalar(
            "INSERT INTO usage_records (request_id, api_key_id, is_standalone, provider, model, api_format, \
             total_tokens, cost_micros, response_time_ms, created_at, day) \
             SELECT ?1, ?2, is_standalone, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM api_keys \
             WHERE id = ?2 AND NOT EXISTS (SELECT 1 FROM usage WHERE request_id = ?1) \
             RETURNING is_standalone",
        )
        .bind(&usage.request_id)
        .bind(key_id)
        .bind(&usage.provider)
        .bind(&usage.model)
        .bind(&usage.api_format)
        .bind(usage.total_tokens)
        .bind(usage.cost.micros())
        .bind(usage.response_time_ms)
        .bind(millis(usage.created_at))
        .bind(usage.created_at.date_naive())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        if let Some(is_standalone) = recorded {
            return Ok(UsageOutcome::Recorded { charged: is_standalone });
        }
        // Nothing written: the key is unknown, or the request was recorded before.
        let key_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ?)")
            .bind(key_id)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(if key_exists { UsageOutcome::Duplicate } else { UsageOutcome::UnknownKey })
    }

    async fn daily_usage(&self, key_id: Uuid, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>> {
        let rows = sqlx::query(
            "SELECT day, requests, tokens, cost_micros, response_ms_sum, timed_requests FROM usage_daily \
             WHERE api_key_id = ? AND day >= ? AND day <= ? ORDER BY day",
        )
        .bind(key_id.hyphenated())
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(DailyUsage {
                    day: get(row, "day")?,
                    requests: get(row, "requests")?,
                    tokens: get(row, "tokens")?,
                    cost: Money::from_micros(get(row, "cost_micros")?),
                    response_ms_sum: get(row, "response_ms_sum")?,
                    timed_requests: get(row, "timed_requests")?,
                })
            })
            .collect()
    }

    async fn sweep(
        &self,
        now: DateTime<Utc>,
        global_auto_delete: bool,
        dry_run: bool,
        actor: &str,
    ) -> StoreResult<SweepReport> {
        let mut tx = if dry_run { self.pool.begin().await.map_err(store_error)? } else { self.begin_write().await? };
        let params = SweepParams { now: millis(now), global_auto_delete, actor };
        let report = if dry_run { preview_sweep(&mut tx, &params).await? } else { run_sweep(&mut tx, &params).await? };
        if !dry_run {
            tx.commit().await.map_err(store_error)?;
        }
        Ok(report)
    }

    async fn reseal_all_keys(&self, reseal: &Resealer<'_>, audit: &AuditRecord) -> StoreResult<ResealOutcome> {
        reseal::reseal_all_keys(self, reseal, audit).await
    }

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        insert_audit(&mut conn, record).await
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

    async fn audit(&self, key_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let query = match key_id {
            Some(id) => sqlx::query(
                "SELECT id, at, actor, action, api_key_id, details FROM audit_log \
                 WHERE api_key_id = ? ORDER BY id DESC LIMIT ?",
            )
            .bind(id.hyphenated()),
            None => {
                sqlx::query("SELECT id, at, actor, action, api_key_id, details FROM audit_log ORDER BY id DESC LIMIT ?")
            }
        };
        let rows = query.bind(i64::from(limit)).fetch_all(&self.pool).await.map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: get(row, "id")?,
                    at: from_millis(get(row, "at")?)?,
                    actor: get(row, "actor")?,
                    action: get(row, "action")?,
                    api_key_id: get::<Option<Hyphenated>>(row, "api_key_id")?.map(Hyphenated::into_uuid),
                    details: get(row, "details")?,
                })
            })
            .collect()
    }
}

impl SqliteStore {
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

    /// Runs a single-row `UPDATE` of a key with its audit row; returns the key as it now is.
    async fn change_key(
        &self,
        id: Uuid,
        mut update: QueryBuilder<Sqlite>,
        audit: &AuditRecord,
    ) -> StoreResult<Option<ApiKey>> {
        let mut tx = self.begin_write().await?;
        let changed = update.build().execute(&mut *tx).await.map_err(store_error)?.rows_affected() > 0;
        if !changed {
            return Ok(None);
        }
        insert_audit(&mut tx, audit).await?;
        let row = sqlx::query(concat!(key_columns!(), key_from!(), " WHERE k.id = ?"))
            .bind(id.hyphenated())
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let key = key_from_row(&row)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(key))
    }

    async fn replay_after_conflict(&self, adjustment: &BalanceAdjustment) -> StoreResult<AdjustOutcome> {
        let idempotency_key = adjustment.idempotency_key.as_deref().unwrap_or_default();
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        match ledger_by_idempotency_key(&mut conn, idempotency_key).await? {
            Some(previous) => Ok(replay_outcome(adjustment, previous)),
            None => Err(StoreError::Database("the idempotency key conflicted but its ledger row is gone".into())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Key lists

/// The value a list is ordered by, for the key table under `alias`. Nullable columns go
/// through the sentinels of the `0002` expression indexes, so the order is total: a key that
/// never expires sorts after every expiring one, a key never used before every used one.
fn sort_expression(sort: SortKey, alias: &str) -> String {
    match sort {
        SortKey::Created => format!("{alias}.created_at"),
        SortKey::Name => format!("{alias}.name"),
        SortKey::Expires => format!(expiry_order!("{alias}."), alias = alias),
        SortKey::LastUsed => format!("COALESCE({alias}.last_used_at, -9223372036854775808)"),
    }
}

/// Appends the whole `list_keys` query. Only fixed SQL fragments are pushed as text; every value
/// that came from the caller (filter, ids, times) is a bound parameter.
fn push_list_query(builder: &mut QueryBuilder<Sqlite>, query: &KeyQuery, now: DateTime<Utc>) {
    builder.push(concat!(key_columns!(), key_from!(), " WHERE 1 = 1"));
    match query.scope {
        KeyScope::All => {}
        KeyScope::UserKeys => {
            builder.push(" AND k.is_standalone = ").push_bind(false);
        }
        KeyScope::Standalone => {
            builder.push(" AND k.is_standalone = ").push_bind(true);
        }
    }
    if let Some(owner) = query.owner {
        builder.push(" AND k.user_id = ").push_bind(owner.hyphenated());
    }
    match query.active {
        ActiveFilter::Any => {}
        ActiveFilter::Active => {
            builder.push(" AND k.is_active = 1 AND (k.expires_at IS NULL OR k.expires_at > ").push_bind(millis(now));
            builder.push(")");
        }
        ActiveFilter::Inactive => {
            builder.push(" AND (k.is_active = 0 OR k.expires_at <= ").push_bind(millis(now)).push(")");
        }
    }
    if let Some(filter) = list_filter(query) {
        push_filter(builder, filter, Matching::TrigramIndex);
    }
    let (sort, direction) = list_order(query);
    if let PageFrom::After(cursor) | PageFrom::Before(cursor) = query.from {
        let cursor_sort = sort_expression(query.sort, "c");
        let (loose, strict) = if direction == "DESC" { ("<=", "<") } else { (">=", ">") };
        // The loose bound on the sort value alone lets SQLite seek the index; the row-value
        // comparison then skips the cursor's ties up to and including the cursor itself.
        builder.push(format_args!(" AND {sort} {loose} (SELECT {cursor_sort} FROM api_keys c WHERE c.id = "));
        builder.push_bind(cursor.hyphenated()).push(")");
        builder.push(format_args!(
            " AND ({sort}, k.id) {strict} (SELECT {cursor_sort}, c.id FROM api_keys c WHERE c.id = "
        ));
        builder.push_bind(cursor.hyphenated()).push(")");
    }
    push_order_and_limit(builder, query);
}

/// `ORDER BY` the list order (ids breaking ties) and `LIMIT` the page.
fn push_order_and_limit(builder: &mut QueryBuilder<Sqlite>, query: &KeyQuery) {
    let (sort, direction) = list_order(query);
    builder.push(format_args!(" ORDER BY {sort} {direction}, k.id {direction} LIMIT "));
    builder.push_bind(i64::from(query.limit));
}

/// The list's sort expression over `k` and the direction of the scan: walking backwards from a
/// `Before` cursor reverses the order (`list_keys` flips the page back).
fn list_order(query: &KeyQuery) -> (String, &'static str) {
    let backwards = matches!(query.from, PageFrom::Before(_));
    let direction = if query.descending != backwards { "DESC" } else { "ASC" };
    (sort_expression(query.sort, "k"), direction)
}

/// The query's filter text, trimmed, when there is one.
fn list_filter(query: &KeyQuery) -> Option<&str> {
    query.filter.as_deref().map(str::trim).filter(|text| !text.is_empty())
}

/// How many keys of the list order a filter walks before it asks the trigram index: a filter
/// that one key in 80 matches (12,500 of a million) finds a page of 50 within them.
const WALK_ROWS: u32 = 4_000;

/// How [`push_filter`] matches names and hints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Matching {
    /// Through the FTS5 trigram index, for a filter of at least a trigram over the whole table.
    TrigramIndex,
    /// `LIKE` on each row: rows already bounded, or a filter shorter than a trigram.
    Scan,
}

/// Shortest filter the trigram index answers: a trigram is three characters.
const TRIGRAM_CHARS: usize = 3;

/// Keeps the keys whose name, owner name or key hint contains `filter` (case-insensitive `LIKE`,
/// so ASCII case only), or whose id starts with it.
///
/// With [`Matching::TrigramIndex`], each of the four conditions is one an index answers, so
/// SQLite ORs their row sets instead of scanning every key: name and hint through the FTS5
/// trigram index of migration `0003` (which folds case more widely than `LIKE`, so `LIKE`
/// re-checks what it returns), the owner through `api_keys_user`, the id prefix as a range on the
/// primary key (ids hold only `[0-9a-f-]`, all below `~`). Filters shorter than a trigram match
/// with `LIKE` alone.
fn push_filter(builder: &mut QueryBuilder<Sqlite>, filter: &str, matching: Matching) {
    let contains = format!("%{}%", escape_like(filter));
    let id_low = filter.to_ascii_lowercase();
    let id_high = format!("{id_low}~");
    if matching == Matching::TrigramIndex && filter.chars().count() >= TRIGRAM_CHARS {
        // One FTS5 phrase (quotes doubled), matched as a substring by the trigram tokenizer.
        let phrase = format!("\"{}\"", filter.replace('"', "\"\""));
        builder.push(" AND ((k.rowid IN (SELECT rowid FROM api_keys_fts WHERE api_keys_fts MATCH ").push_bind(phrase);
        builder.push(") AND (k.name LIKE ").push_bind(contains.clone()).push(" ESCAPE '\\'");
        builder.push(" OR k.key_hint LIKE ").push_bind(contains.clone()).push(" ESCAPE '\\'))");
    } else {
        builder.push(" AND ((k.name LIKE ").push_bind(contains.clone()).push(" ESCAPE '\\'");
        builder.push(" OR k.key_hint LIKE ").push_bind(contains.clone()).push(" ESCAPE '\\')");
    }
    builder.push(" OR k.user_id IN (SELECT id FROM users WHERE name LIKE ").push_bind(contains).push(" ESCAPE '\\')");
    builder.push(" OR (k.id >= ").push_bind(id_low).push(" AND k.id < ").push_bind(id_high).push("))");
}

/// Makes `%`, `_` and `\` match themselves in a `LIKE … ESCAPE '\'` pattern.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

/// `column = NULL` for a clear, `column = value` for a set, nothing for keep.
fn push_patch<T, V>(
    builder: &mut QueryBuilder<Sqlite>,
    column: &'static str,
    patch: &Patch<T>,
    encode: impl Fn(&T) -> Option<V>,
) where
    V: for<'q> sqlx::Encode<'q, Sqlite> + Type<Sqlite> + 'static,
{
    let value = match patch {
        Patch::Keep => return,
        Patch::Clear => None,
        Patch::Set(value) => encode(value),
    };
    builder.push(format_args!(", {column} = ")).push_bind(value);
}

// ---------------------------------------------------------------------------------------------
// Balance

/// The balance columns of a key, read inside the adjustment's transaction.
struct BalanceState {
    is_standalone: bool,
    credited: Option<Money>,
    used: Money,
}

async fn balance_state(conn: &mut SqliteConnection, key_id: Uuid) -> StoreResult<Option<BalanceState>> {
    let row = sqlx::query("SELECT is_standalone, credited_micros, used_micros FROM api_keys WHERE id = ?")
        .bind(key_id.hyphenated())
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.map(|row| {
        Ok(BalanceState {
            is_standalone: get(&row, "is_standalone")?,
            credited: get::<Option<i64>>(&row, "credited_micros")?.map(Money::from_micros),
            used: Money::from_micros(get(&row, "used_micros")?),
        })
    })
    .transpose()
}

/// The balance columns of a key right after a change applied to it.
struct Applied {
    /// `None` = unlimited.
    credited_after: Option<Money>,
    used: Money,
}

/// The one conditional `UPDATE` of an adjustment; `None` when a rule refused it (nothing changed).
async fn apply_change(conn: &mut SqliteConnection, adjustment: &BalanceAdjustment) -> StoreResult<Option<Applied>> {
    let query = match adjustment.change {
        BalanceChange::Add(delta) => sqlx::query(
            "UPDATE api_keys SET credited_micros = credited_micros + ?1, updated_at = ?2 \
             WHERE id = ?3 AND is_standalone = 1 AND credited_micros IS NOT NULL \
             AND (?1 >= 0 OR -?1 <= MAX(0, credited_micros - used_micros)) \
             AND credited_micros + ?1 BETWEEN 0 AND ?4 \
             RETURNING credited_micros, used_micros",
        )
        .bind(delta.micros()),
        BalanceChange::SetCredited(credited) => sqlx::query(
            "UPDATE api_keys SET credited_micros = ?1, updated_at = ?2 \
             WHERE id = ?3 AND is_standalone = 1 AND (?1 IS NULL OR ?1 BETWEEN 0 AND ?4) \
             RETURNING credited_micros, used_micros",
        )
        .bind(credited.map(Money::micros)),
    };
    let row = query
        .bind(millis(adjustment.at))
        .bind(adjustment.key_id.hyphenated())
        .bind(MAX_AMOUNT.micros())
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.map(|row| {
        Ok(Applied {
            credited_after: get::<Option<i64>>(&row, "credited_micros")?.map(Money::from_micros),
            used: Money::from_micros(get(&row, "used_micros")?),
        })
    })
    .transpose()
}

/// Why the conditional update refused an adjustment of an existing key.
fn refusal(before: BalanceState, change: BalanceChange) -> AdjustOutcome {
    if !before.is_standalone {
        return AdjustOutcome::NotPrepaid;
    }
    match (change, before.credited) {
        (BalanceChange::Add(_), None) => AdjustOutcome::Unlimited,
        (BalanceChange::Add(delta), Some(credited))
            if delta.is_negative() && delta.abs() > remaining(credited, before.used) =>
        {
            AdjustOutcome::InsufficientBalance { remaining: remaining(credited, before.used) }
        }
        _ => AdjustOutcome::OutOfRange,
    }
}

/// A retried adjustment is the same when it targets the same key with the same change.
fn replay_outcome(adjustment: &BalanceAdjustment, previous: LedgerEntry) -> AdjustOutcome {
    let same_change = match adjustment.change {
        BalanceChange::Add(delta) => previous.delta == delta,
        BalanceChange::SetCredited(credited) => previous.credited_after == credited,
    };
    if previous.api_key_id == adjustment.key_id && same_change {
        AdjustOutcome::Replayed(previous)
    } else {
        AdjustOutcome::IdempotencyConflict(previous)
    }
}

async fn ledger_by_idempotency_key(conn: &mut SqliteConnection, key: &str) -> StoreResult<Option<LedgerEntry>> {
    let row = sqlx::query(concat!(ledger_columns!(), " WHERE idempotency_key = ?"))
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.as_ref().map(ledger_from_row).transpose()
}

/// Appends a ledger row (its `id` is ignored) and returns the id it got.
async fn insert_ledger(conn: &mut SqliteConnection, entry: &LedgerEntry) -> StoreResult<i64> {
    sqlx::query_scalar(
        "INSERT INTO balance_ledger (api_key_id, at, actor, delta_micros, credited_after, note, idempotency_key) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(entry.api_key_id.hyphenated())
    .bind(millis(entry.at))
    .bind(&entry.actor)
    .bind(entry.delta.micros())
    .bind(entry.credited_after.map(Money::micros))
    .bind(&entry.note)
    .bind(&entry.idempotency_key)
    .fetch_one(&mut *conn)
    .await
    .map_err(conflict_as(|| format!("a ledger row with idempotency key {:?}", entry.idempotency_key)))
}

// ---------------------------------------------------------------------------------------------
// Sweep

struct SweepParams<'a> {
    now: i64,
    global_auto_delete: bool,
    actor: &'a str,
}

/// The keys of one sweep chunk, in sweep order (`seq`), with their rowids; a temporary table,
/// so each chunk's statements read it instead of repeating the selection.
const SWEEP_BATCH_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS sweep_batch \
     (seq INTEGER PRIMARY KEY, r INTEGER NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, expires_at INTEGER NOT NULL)";

/// One chunk of keys to delete (or to disable) after the keyset cursor `(?4, ?5)`, in expiry
/// order (`?3` = chunk size). The cursor keeps each chunk from rescanning the expired keys that
/// earlier chunks skipped or already disabled.
macro_rules! sweep_batch {
    ($predicate:expr) => {
        concat!(
            "INSERT INTO temp.sweep_batch (r, id, name, expires_at) SELECT rowid, id, name, expires_at FROM api_keys",
            $predicate,
            " AND (",
            expiry_order!(),
            ", id) > (?4, ?5)",
            in_expiry_order!(),
            " LIMIT ?3"
        )
    };
}

/// Deletes, then disables, every expired key chunk by chunk. Each chunk is selected once into
/// `temp.sweep_batch`; then one statement per table handles the whole chunk: its audit rows, its
/// rollups and FTS entries removed, the keys deleted or disabled. Usage rows are not touched:
/// they keep the id of their deleted key, as history.
async fn run_sweep(conn: &mut SqliteConnection, params: &SweepParams<'_>) -> StoreResult<SweepReport> {
    // A larger page cache while sweeping: the chunks touch many pages of api_keys.
    let cache_size: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut *conn).await.map_err(store_error)?;
    sqlx::query("PRAGMA cache_size = -16384").execute(&mut *conn).await.map_err(store_error)?;
    sqlx::query(SWEEP_BATCH_TABLE).execute(&mut *conn).await.map_err(store_error)?;
    let mut report = SweepReport::default();
    let mut result = sweep_chunks(conn, params, true, &mut report).await;
    if result.is_ok() {
        result = sweep_chunks(conn, params, false, &mut report).await;
    }
    if result.is_ok() {
        result = sqlx::query("DROP TABLE temp.sweep_batch").execute(&mut *conn).await.map(|_| ()).map_err(store_error);
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = {cache_size}")))
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    result.map(|()| report)
}

async fn sweep_chunks(
    conn: &mut SqliteConnection,
    params: &SweepParams<'_>,
    delete: bool,
    report: &mut SweepReport,
) -> StoreResult<()> {
    let (select, action) = if delete {
        (sweep_batch!(sweep_delete_where!()), "sweep_delete")
    } else {
        (sweep_batch!(sweep_disable_where!()), "sweep_disable")
    };
    let changes: &[&str] = if delete {
        &[
            "DELETE FROM usage_daily WHERE api_key_id IN (SELECT id FROM temp.sweep_batch)",
            "DELETE FROM api_keys WHERE rowid IN (SELECT r FROM temp.sweep_batch)",
        ]
    } else {
        &["UPDATE api_keys SET is_active = 0, updated_at = ?1 WHERE rowid IN (SELECT r FROM temp.sweep_batch)"]
    };
    let mut after: (i64, String) = (i64::MIN, String::new());
    loop {
        sqlx::query("DELETE FROM temp.sweep_batch").execute(&mut *conn).await.map_err(store_error)?;
        let selected = sqlx::query(select)
            .bind(params.now)
            .bind(params.global_auto_delete)
            .bind(SWEEP_CHUNK)
            .bind(after.0)
            .bind(&after.1)
            .execute(&mut *conn)
            .await
            .map_err(store_error)?
            .rows_affected();
        if selected == 0 {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, api_key_id, details) \
             SELECT ?1, ?2, ?3, id, json_object('name', name) FROM temp.sweep_batch ORDER BY seq",
        )
        .bind(params.now)
        .bind(params.actor)
        .bind(action)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
        for statement in changes {
            let query = sqlx::query(*statement);
            let query = if delete { query } else { query.bind(params.now) };
            query.execute(&mut *conn).await.map_err(store_error)?;
        }
        let listed = if delete { report.deleted.len() } else { report.disabled.len() };
        let room = SWEEP_SAMPLE.saturating_sub(listed) as i64;
        let rows = sqlx::query("SELECT id, name FROM temp.sweep_batch ORDER BY seq LIMIT ?")
            .bind(room)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        for row in &rows {
            report.push(delete, SweptKey { id: get::<Hyphenated>(row, "id")?.into_uuid(), name: get(row, "name")? });
        }
        report.add_unlisted(delete, selected - rows.len() as u64);
        after = sqlx::query_as("SELECT expires_at, id FROM temp.sweep_batch ORDER BY seq DESC LIMIT 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(store_error)?;
        if (selected as i64) < SWEEP_CHUNK {
            return Ok(());
        }
    }
}

/// What `run_sweep` would do, writing nothing: exact counts, and the first keys of each list.
async fn preview_sweep(conn: &mut SqliteConnection, params: &SweepParams<'_>) -> StoreResult<SweepReport> {
    let (deleted, disabled): (i64, i64) = sqlx::query_as(concat!(
        "SELECT COALESCE(SUM(COALESCE(auto_delete_on_expiry, ?2) = 1), 0), \
         COALESCE(SUM(COALESCE(auto_delete_on_expiry, ?2) = 0 AND is_active = 1), 0) \
         FROM api_keys WHERE ",
        expiry_order!(),
        " <= ?1"
    ))
    .bind(params.now)
    .bind(params.global_auto_delete)
    .fetch_one(&mut *conn)
    .await
    .map_err(store_error)?;
    let mut report = SweepReport::default();
    for (delete, count, sql) in [
        (
            true,
            deleted,
            concat!("SELECT id, name FROM api_keys", sweep_delete_where!(), in_expiry_order!(), " LIMIT ?3"),
        ),
        (
            false,
            disabled,
            concat!("SELECT id, name FROM api_keys", sweep_disable_where!(), in_expiry_order!(), " LIMIT ?3"),
        ),
    ] {
        let rows = sqlx::query(sql)
            .bind(params.now)
            .bind(params.global_auto_delete)
            .bind(SWEEP_SAMPLE as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        for row in &rows {
            report.push(delete, SweptKey { id: get::<Hyphenated>(row, "id")?.into_uuid(), name: get(row, "name")? });
        }
        report.add_unlisted(delete, (count as u64).saturating_sub(rows.len() as u64));
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Rows and values

async fn insert_audit(conn: &mut SqliteConnection, record: &AuditRecord) -> StoreResult<()> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, api_key_id, details) VALUES (?, ?, ?, ?, ?)")
        .bind(millis(record.at))
        .bind(&record.actor)
        .bind(&record.action)
        .bind(record.api_key_id.map(|id| id.hyphenated()))
        .bind(record.details.to_string())
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column).map_err(store_error)
}

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: get::<Hyphenated>(row, "id")?.into_uuid(),
        name: get(row, "name")?,
        is_active: get(row, "is_active")?,
        created_at: from_millis(get(row, "created_at")?)?,
    })
}

fn key_from_row(row: &SqliteRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: get::<Hyphenated>(row, "id")?.into_uuid(),
        user_id: get::<Hyphenated>(row, "user_id")?.into_uuid(),
        owner_name: get(row, "owner_name")?,
        owner_active: get(row, "owner_active")?,
        key_hash: get(row, "key_hash")?,
        key_ciphertext: get(row, "key_ciphertext")?,
        key_hint: get(row, "key_hint")?,
        name: get(row, "name")?,
        allowed_providers: allow_list(get(row, "allowed_providers")?)?,
        allowed_api_formats: allow_list(get(row, "allowed_api_formats")?)?,
        allowed_models: allow_list(get(row, "allowed_models")?)?,
        rate_limit: get(row, "rate_limit")?,
        concurrent_limit: get(row, "concurrent_limit")?,
        expires_at: get::<Option<i64>>(row, "expires_at")?.map(from_millis).transpose()?,
        is_standalone: get(row, "is_standalone")?,
        credited: get::<Option<i64>>(row, "credited_micros")?.map(Money::from_micros),
        used: Money::from_micros(get(row, "used_micros")?),
        auto_delete_on_expiry: get(row, "auto_delete_on_expiry")?,
        is_active: get(row, "is_active")?,
        last_used_at: get::<Option<i64>>(row, "last_used_at")?.map(from_millis).transpose()?,
        created_at: from_millis(get(row, "created_at")?)?,
        updated_at: from_millis(get(row, "updated_at")?)?,
    })
}

fn admission_from_row(row: &SqliteRow) -> StoreResult<KeyAdmission> {
    Ok(KeyAdmission {
        id: get::<Hyphenated>(row, "id")?.into_uuid(),
        is_active: get(row, "is_active")?,
        owner_active: get(row, "owner_active")?,
        expires_at: get::<Option<i64>>(row, "expires_at")?.map(from_millis).transpose()?,
        balance: Balance::of(
            get(row, "is_standalone")?,
            get::<Option<i64>>(row, "credited_micros")?.map(Money::from_micros),
            Money::from_micros(get(row, "used_micros")?),
        ),
        allowed_providers: allow_list(get(row, "allowed_providers")?)?,
        allowed_api_formats: allow_list(get(row, "allowed_api_formats")?)?,
        allowed_models: allow_list(get(row, "allowed_models")?)?,
        rate_limit: get(row, "rate_limit")?,
        last_used_at: get::<Option<i64>>(row, "last_used_at")?.map(from_millis).transpose()?,
    })
}

fn ledger_from_row(row: &SqliteRow) -> StoreResult<LedgerEntry> {
    Ok(LedgerEntry {
        id: get(row, "id")?,
        api_key_id: get::<Hyphenated>(row, "api_key_id")?.into_uuid(),
        at: from_millis(get(row, "at")?)?,
        actor: get(row, "actor")?,
        delta: Money::from_micros(get(row, "delta_micros")?),
        credited_after: get::<Option<i64>>(row, "credited_after")?.map(Money::from_micros),
        note: get(row, "note")?,
        idempotency_key: get(row, "idempotency_key")?,
    })
}

/// An allow list as stored: a JSON array, or NULL for unrestricted (never `[]`).
fn allow_list_json(list: Option<&[String]>) -> Option<String> {
    list.filter(|items| !items.is_empty()).map(|items| serde_json::Value::from(items).to_string())
}

fn allow_list(stored: Option<String>) -> StoreResult<Option<Vec<String>>> {
    stored
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|error| StoreError::Database(format!("an allow list is not a JSON array of strings: {error}")))
        })
        .transpose()
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(millis: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| StoreError::Database(format!("the stored time {millis} ms is out of range")))
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
mod tests {
    use super::*;

    async fn plan(store: &SqliteStore, query: SqliteQuery<'_>) -> String {
        let rows = query.fetch_all(&store.pool).await.unwrap();
        rows.iter().map(|row| row.get::<String, _>("detail")).collect::<Vec<_>>().join("; ")
    }

    /// The first page of every sort order, in both directions and in every scope, walks an
    /// index: no full scan and no temporary sort, however many keys there are.
    #[tokio::test]
    async fn unfiltered_first_pages_are_served_by_indexes() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        for sort in [SortKey::Created, SortKey::Name, SortKey::Expires, SortKey::LastUsed] {
            for descending in [false, true] {
                for scope in [KeyScope::All, KeyScope::UserKeys, KeyScope::Standalone] {
                    let query = KeyQuery { sort, descending, scope, limit: 50, ..KeyQuery::default() };
                    let mut builder = QueryBuilder::new("EXPLAIN QUERY PLAN ");
                    push_list_query(&mut builder, &query, Utc::now());
                    let plan = plan(&store, builder.build()).await;
                    assert!(plan.contains("SCAN k USING INDEX api_keys_"), "{sort:?} {descending} {scope:?}: {plan}");
                    assert!(!plan.contains("TEMP B-TREE"), "{sort:?} {descending} {scope:?}: {plan}");
                }
            }
        }
    }

    /// Each chunk of the sweep and of its dry run reads the expired keys alone, in expiry order,
    /// from the expiry index: a range search, no full scan and no temporary sort.
    #[tokio::test]
    async fn sweep_chunks_are_read_from_the_expiry_index() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        sqlx::query(SWEEP_BATCH_TABLE).execute(&mut *conn).await.unwrap();
        drop(conn);
        let chunk_selections = [sweep_batch!(sweep_delete_where!()), sweep_batch!(sweep_disable_where!())];
        for select in chunk_selections {
            let sql = format!("EXPLAIN QUERY PLAN {select}");
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(0_i64).bind(false).bind(10_i64).bind(0_i64).bind("");
            let plan = plan(&store, query).await;
            assert!(plan.contains("SEARCH api_keys USING INDEX api_keys_expires_order"), "{select}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{select}: {plan}");
        }
    }
}
