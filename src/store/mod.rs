//! Persistence: one `Store` trait, with a SQLite and a PostgreSQL implementation.
//!
//! Every mutation is atomic and writes its audit row in the same transaction. Errors carry no
//! sqlx types, so callers above this layer never depend on the driver.

/// The columns `verify` reads (those of `KeyAdmission`, the prepaid flag and amounts its balance
/// is made of), over the aliases `k` (api_keys) and `u` (users); the same on both backends.
macro_rules! admission_columns {
    () => {
        "k.id, k.is_active, u.is_active AS owner_active, k.expires_at, k.is_standalone, \
         k.credited_micros, k.used_micros, k.allowed_providers, k.allowed_api_formats, k.allowed_models, \
         k.rate_limit, k.last_used_at, k.budget_micros, k.budget_period"
    };
}

mod records;
mod url;

pub mod alerts;
pub mod changes;
pub mod plan;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::domain::{
    ApiKey, AuditEntry, AuditQuery, Balance, CurrentPeriods, DailyUsage, KeyCounts, KeyPatch, KeyQuery, LedgerEntry,
    Money, Spender, SpenderKind, User, UserOverview, UserQuery, UserSummary,
};

pub use records::{
    Actor, AdjustOutcome, AuditRecord, BalanceAdjustment, BalanceChange, BulkLoad, ResealOutcome, Resealer,
    SWEEP_SAMPLE, SecretRoll, SweepReport, UsageOutcome, UsageRecord, VerifyLookup,
};
pub use url::{redact_url, with_database};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened. `url` never contains a password.
    #[error("cannot open the database at {url}: {reason}")]
    Unavailable { url: String, reason: String },
    /// A unique value (user name, key hash, request id…) is already taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The database stayed locked by other writers for longer than the busy timeout.
    #[error("the database stayed busy (locked by other writers) past the timeout; try again")]
    Busy,
    #[error("database error: {0}")]
    Database(String),
}

/// The one persistence interface, in sections by concern: keys and their owners; balance and
/// ledger; usage and statistics; sweep; audit; maintenance. A new operation goes at the end of
/// its section. Sections of one trait rather than sub-traits: every caller holds an
/// `Arc<dyn Store>` and reaches any operation without importing or upcasting to a sub-trait.
#[async_trait]
pub trait Store: Send + Sync {
    // ---- Keys and their owners --------------------------------------------------------------

    async fn insert_user(&self, user: &User, audit: &AuditRecord) -> StoreResult<()>;
    async fn users(&self) -> StoreResult<Vec<UserSummary>>;
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;
    /// Returns false when the user does not exist.
    async fn set_user_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<bool>;
    /// One page of users by name, with their key counts, spend and last use.
    async fn user_overviews(&self, query: &UserQuery) -> StoreResult<Vec<UserOverview>>;
    /// Disables every enabled key of a user in one transaction, writing `audit` once per key
    /// with that key's id: all of them or, on any failure, none. Returns the keys disabled.
    async fn disable_user_keys(&self, user_id: Uuid, audit: &AuditRecord) -> StoreResult<Vec<Uuid>>;

    /// Inserts a key; `initial_credit` writes its first ledger row in the same transaction.
    async fn insert_key(
        &self,
        key: &ApiKey,
        initial_credit: Option<&LedgerEntry>,
        audit: &AuditRecord,
    ) -> StoreResult<()>;
    async fn key(&self, id: Uuid) -> StoreResult<Option<ApiKey>>;
    /// Keys whose hyphenated id starts with `prefix` (lowercase hex and hyphens), at most `limit`.
    async fn keys_by_id_prefix(&self, prefix: &str, limit: u32) -> StoreResult<Vec<ApiKey>>;
    /// Keys whose name is exactly `name`, at most `limit`.
    async fn keys_by_name(&self, name: &str, limit: u32) -> StoreResult<Vec<ApiKey>>;
    /// Enabled prepaid keys with nothing left or less than their low-balance line
    /// (`default_line` for a key without its own), least remaining first, at most `limit`.
    async fn low_balance_keys(&self, default_line: Money, limit: u32) -> StoreResult<Vec<ApiKey>>;
    /// Enabled keys expiring after `after` and at the latest `until`, soonest first, at most
    /// `limit`.
    async fn expiring_keys(&self, after: DateTime<Utc>, until: DateTime<Utc>, limit: u32) -> StoreResult<Vec<ApiKey>>;
    /// One page of keys in the query's order.
    async fn list_keys(&self, query: &KeyQuery) -> StoreResult<Vec<ApiKey>>;
    async fn count_keys(&self, now: DateTime<Utc>) -> StoreResult<KeyCounts>;
    /// How many keys the query's scope, owner, state and filter match, counted up to `cap` (a
    /// larger count is reported as `cap`, so a common filter over a million keys stays cheap).
    /// The query's cursor and limit are ignored.
    async fn count_matching(&self, query: &KeyQuery, cap: u32) -> StoreResult<u64>;
    /// Applies a patch; `None` when the key does not exist.
    async fn update_key(&self, id: Uuid, patch: &KeyPatch, audit: &AuditRecord) -> StoreResult<Option<ApiKey>>;
    async fn set_key_active(&self, id: Uuid, active: bool, audit: &AuditRecord) -> StoreResult<Option<ApiKey>>;
    /// Deletes the key row; its usage rows stay with `api_key_id` set to NULL. False if absent.
    async fn purge_key(&self, id: Uuid, audit: &AuditRecord) -> StoreResult<bool>;
    /// Gives a key a new secret. The replaced secret's hash becomes the previous one until
    /// `roll.previous_until`, ending any earlier previous secret at once. `None` if absent.
    async fn roll_key(&self, id: Uuid, roll: &SecretRoll, audit: &AuditRecord) -> StoreResult<Option<ApiKey>>;

    /// The key with this hash, or whose previous secret has it and is still valid at
    /// `periods.now`; its owner's state, its request count since `rate_window_start` and, with a
    /// budget, what it spent in the budget's period among `periods`, in one round trip.
    async fn verify_lookup(
        &self,
        key_hash: &str,
        rate_window_start: DateTime<Utc>,
        periods: CurrentPeriods,
    ) -> StoreResult<Option<VerifyLookup>>;
    /// Sets `last_used_at = at` unless it is already later than `stale_before`.
    async fn touch_last_used(&self, id: Uuid, at: DateTime<Utc>, stale_before: DateTime<Utc>) -> StoreResult<()>;

    // ---- Balance and ledger -----------------------------------------------------------------

    /// One atomic adjustment: the key row, a ledger row and an audit row, or nothing.
    async fn adjust_balance(&self, adjustment: &BalanceAdjustment) -> StoreResult<AdjustOutcome>;
    /// [`Store::adjust_balance`], and the key's balance right after an applied change when the
    /// backend has it at hand (it saves the caller a read); `None` otherwise.
    async fn adjust_balance_and_read(
        &self,
        adjustment: &BalanceAdjustment,
    ) -> StoreResult<(AdjustOutcome, Option<Balance>)> {
        Ok((self.adjust_balance(adjustment).await?, None))
    }
    /// Ledger rows of a key, oldest first; with a limit, the most recent `limit` rows.
    async fn ledger(&self, key_id: Uuid, limit: Option<u32>) -> StoreResult<Vec<LedgerEntry>>;

    // ---- Usage and statistics ---------------------------------------------------------------

    /// One transaction: usage row, daily rollup, charge of a prepaid key, `last_used_at`.
    async fn record_usage(&self, usage: &UsageRecord) -> StoreResult<UsageOutcome>;
    /// Rollup rows of a key for `first..=last` (UTC days); days without usage are absent.
    async fn daily_usage(&self, key_id: Uuid, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>>;
    /// The fleet's rollup rows for `first..=last`: every usage row ever recorded, those of purged
    /// keys included; days without usage are absent.
    async fn fleet_daily_usage(&self, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>>;
    /// The part of the fleet's rollup whose keys are gone (purged or deleted by the sweep).
    async fn purged_daily_usage(&self, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>>;
    /// A user's rollup rows: every key they own or owned, purged ones included.
    async fn user_daily_usage(&self, user_id: Uuid, first: NaiveDate, last: NaiveDate) -> StoreResult<Vec<DailyUsage>>;
    /// The `limit` keys or users that spent most over `first..=last` (those that spent nothing
    /// left out), biggest first, equal spend by id. Exact, without summing every rollup row of
    /// the range when spending is concentrated.
    async fn top_spenders(
        &self,
        kind: SpenderKind,
        first: NaiveDate,
        last: NaiveDate,
        limit: u32,
    ) -> StoreResult<Vec<Spender>>;

    // ---- Sweep ------------------------------------------------------------------------------

    /// Disables or deletes every key expired at `now`: per key `auto_delete_on_expiry`, else
    /// `global_auto_delete`. Set-based; harmless when several processes sweep at once.
    async fn sweep(
        &self,
        now: DateTime<Utc>,
        global_auto_delete: bool,
        dry_run: bool,
        actor: Actor<'_>,
    ) -> StoreResult<SweepReport>;
    /// Refills every enabled, unexpired prepaid key whose refill period began since its last
    /// refill, with ledger and audit rows: at most once per key and period, however many
    /// processes run it at once. A dry run reports the same keys and writes nothing.
    async fn refill_due(
        &self,
        periods: &plan::RefillPeriods,
        actor: Actor<'_>,
        dry_run: bool,
    ) -> StoreResult<plan::RefillReport>;

    // ---- Alerts -----------------------------------------------------------------------------

    /// Deletes the alert claims in `scope` whose condition no longer holds, then claims, each
    /// once, the alerts whose condition holds on an enabled, unexpired key, in one transaction:
    /// see [`alerts`]. Returns only the claims this call inserted.
    async fn claim_alerts(
        &self,
        scope: alerts::AlertScope,
        check: &alerts::AlertCheck,
    ) -> StoreResult<Vec<alerts::AlertClaim>>;

    // ---- Audit ------------------------------------------------------------------------------

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()>;
    /// Audit rows, newest first, optionally for one key.
    async fn audit(&self, key_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<AuditEntry>>;
    /// One page of the audit log, newest first.
    async fn audit_page(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;

    // ---- Maintenance: the database, migrations, re-sealing, bulk loads ----------------------

    /// The database as shown to admins: backend and URL without password.
    fn describe(&self) -> String;

    /// Runs pending migrations (idempotent) and returns the schema version.
    async fn migrate(&self) -> StoreResult<i64>;
    /// The schema version the database is at: the last migration applied, 0 for a new database.
    async fn schema_version(&self) -> StoreResult<i64>;
    /// The schema version this build brings a database to.
    fn latest_schema_version(&self) -> i64;

    /// Re-seals every stored key in one transaction: `reseal(id, ciphertext)` returns the new
    /// ciphertext. The first failure rolls everything back and is reported; `audit` is written
    /// on success.
    async fn reseal_all_keys(&self, reseal: &Resealer<'_>, audit: &AuditRecord) -> StoreResult<ResealOutcome>;

    /// Loads generated or imported rows with the same effects as the one-by-one operations
    /// (initial ledger rows, rollups, charges of prepaid keys). `audit` describes the load.
    /// Usage rows whose request id exists are skipped.
    ///
    /// This default goes row by row through the trait (writing `audit` with each user and key);
    /// backends override it with multi-row statements in large transactions and one audit row.
    async fn bulk_load(&self, batch: &BulkLoad, audit: &AuditRecord) -> StoreResult<()> {
        let credits: std::collections::HashMap<Uuid, &LedgerEntry> =
            batch.initial_credits.iter().map(|entry| (entry.api_key_id, entry)).collect();
        for user in &batch.users {
            self.insert_user(user, audit).await?;
        }
        for key in &batch.keys {
            self.insert_key(key, credits.get(&key.id).copied(), audit).await?;
        }
        for usage in &batch.usage {
            self.record_usage(usage).await?;
        }
        Ok(())
    }

    /// How many [`Store::bulk_load`] calls are worth running at once. SQLite has one writer at a
    /// time (a second load would only wait for the lock), PostgreSQL a server process per
    /// connection, so a second load works while the first waits on its round trips and commits.
    fn bulk_load_concurrency(&self) -> usize {
        1
    }

    /// Brings the query planner's statistics up to date after a bulk load, so its estimates
    /// (how many keys a name filter matches, for one) describe the data just loaded rather than
    /// the data of the last automatic analysis. Nothing to do where plans do not depend on them.
    async fn refresh_statistics(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Which backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// A schema upgrade an existing database is about to go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaUpgrade {
    pub from: i64,
    pub to: i64,
}

/// Opens the database a URL names and runs its migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    open_announcing(url, |_| {}).await
}

/// Opens the database a URL names and runs its migrations, calling `announce` first when an
/// existing database is behind this build: an upgrade may rebuild an index, which takes a while
/// on a large database, and a silent pause looks like a hang. A new database is set up without a
/// word (its tables are empty, so that is quick).
pub async fn open_announcing(url: &str, announce: impl FnOnce(SchemaUpgrade)) -> StoreResult<Arc<dyn Store>> {
    let store = connect(url).await?;
    let (from, to) = (store.schema_version().await?, store.latest_schema_version());
    if 0 < from && from < to {
        announce(SchemaUpgrade { from, to });
    }
    store.migrate().await?;
    Ok(store)
}

/// The version of the newest migration a migrator holds.
fn latest_version(migrator: &sqlx::migrate::Migrator) -> i64 {
    migrator.iter().map(|migration| migration.version).max().unwrap_or(0)
}

/// Connects to the database a URL names, leaving its schema as it is.
async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match Backend::of_url(url) {
        Some(Backend::Sqlite) => sqlite::open(url).await?,
        Some(Backend::Postgres) => postgres::open(url).await?,
        None => {
            return Err(StoreError::Unavailable {
                url: redact_url(url),
                reason: "unknown scheme; use sqlite://PATH, sqlite::memory: or postgres://USER@HOST/DB".into(),
            });
        }
    };
    Ok(store)
}
