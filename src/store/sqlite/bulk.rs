//! `Store::bulk_load` for SQLite: one `BEGIN IMMEDIATE` transaction per call, multi-row
//! `INSERT`s as wide as SQLite's parameter limit allows, and the rollups and charges of the
//! usage rows aggregated in Rust and written once per (key, UTC day) and once per key.
//!
//! The effects equal those of the one-by-one operations (`insert_user`, `insert_key`,
//! `record_usage`) except the audit trail: one audit row describes the whole load.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection, Sqlite};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use super::{allow_list_json, conflict_as, insert_audit, millis, store_error};
use crate::domain::{ApiKey, LedgerEntry, Money, User};
use crate::store::{AuditRecord, BulkLoad, StoreResult, UsageRecord};

/// `SQLITE_MAX_VARIABLE_NUMBER`, the most parameters one statement may bind (the default of the
/// bundled SQLite since 3.32).
const MAX_PARAMS: usize = 32_766;

type Query<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

/// Page cache of the loading connection while it loads, in KiB: inserts into a dozen indexes in
/// random order touch pages all over them, and the default 2 MB cache would spill dirty pages to
/// the WAL and read them back again and again.
const LOAD_CACHE_KIB: i64 = 256 * 1024;

/// Connection settings of a load, with the value restored afterwards. `temp_store` keeps the
/// statement journal of each multi-row statement (the pages it may have to roll back) in memory
/// instead of a temporary file.
const LOAD_PRAGMAS: [(&str, i64); 2] = [("cache_size", -LOAD_CACHE_KIB), ("temp_store", 2)];

/// A load of usage rows alone turns off the foreign key checks: they could not fail, since
/// `insert_usage` keeps only the rows of keys it found under the same write lock, and each
/// rollup row written paid a lookup of its key for them. A load with users or keys keeps them,
/// as it is what checks that each key's owner exists.
const USAGE_LOAD_PRAGMAS: [(&str, i64); 1] = [("foreign_keys", 0)];

/// Loads a batch in one `BEGIN IMMEDIATE` transaction on `conn`.
pub(super) async fn load(conn: &mut SqliteConnection, batch: &BulkLoad, audit: &AuditRecord) -> StoreResult<()> {
    let usage_only = batch.users.is_empty() && batch.keys.is_empty() && batch.initial_credits.is_empty();
    let pragmas = LOAD_PRAGMAS.iter().chain(USAGE_LOAD_PRAGMAS.iter().filter(|_| usage_only));
    let mut saved = Vec::with_capacity(LOAD_PRAGMAS.len() + USAGE_LOAD_PRAGMAS.len());
    for &(pragma, value) in pragmas {
        let before: i64 = sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA {pragma}")))
            .fetch_one(&mut *conn)
            .await
            .map_err(store_error)?;
        saved.push((pragma, before));
        set_pragma(conn, pragma, value).await?;
    }
    let loaded = load_in_transaction(conn, batch, audit).await;
    // Give the memory back whatever happened: an in-memory database's one connection goes back
    // to the pool (the store closes any other loading connection; see `SqliteStore::bulk_load`).
    for (pragma, value) in saved {
        set_pragma(conn, pragma, value).await?;
    }
    loaded
}

async fn set_pragma(conn: &mut SqliteConnection, pragma: &str, value: i64) -> StoreResult<()> {
    sqlx::query(AssertSqlSafe(format!("PRAGMA {pragma} = {value}"))).execute(&mut *conn).await.map_err(store_error)?;
    Ok(())
}

async fn load_in_transaction(conn: &mut SqliteConnection, batch: &BulkLoad, audit: &AuditRecord) -> StoreResult<()> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
    insert_users(&mut tx, &batch.users).await?;
    insert_keys(&mut tx, &batch.keys, || "a key with one of these ids or hashes".into()).await?;
    insert_ledger_rows(&mut tx, &batch.initial_credits).await?;
    insert_usage(&mut tx, &batch.usage).await?;
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.map_err(store_error)
}

/// `{head} VALUES (?, …), … {tail}` for `rows` rows of `columns` parameters.
fn values_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let tuple = format!("({})", vec!["?"; columns].join(","));
    let mut sql = String::with_capacity(head.len() + tail.len() + 16 + rows * (tuple.len() + 1));
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push_str(&tuple);
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// Runs one multi-row statement per chunk of `rows`, each chunk as wide as the parameter limit
/// allows; `bind` binds the `columns` values of one row. Returns the rows each statement changed.
///
/// The full-width statement text is the same for every chunk but the last, so sqlx prepares it
/// once per connection and reuses it.
struct MultiRow {
    head: &'static str,
    columns: usize,
    tail: &'static str,
}

impl MultiRow {
    fn rows_per_statement(&self) -> usize {
        MAX_PARAMS / self.columns
    }

    fn sql(&self, rows: usize) -> String {
        values_sql(self.head, self.columns, rows, self.tail)
    }

    async fn run<T>(
        &self,
        conn: &mut SqliteConnection,
        rows: &[T],
        bind: impl for<'q> Fn(Query<'q>, &T) -> Query<'q>,
        what: impl Fn() -> String,
    ) -> StoreResult<()> {
        let full_sql = self.sql(self.rows_per_statement().min(rows.len()));
        for chunk in rows.chunks(self.rows_per_statement()) {
            let sql = if chunk.len() == self.rows_per_statement().min(rows.len()) {
                full_sql.clone()
            } else {
                self.sql(chunk.len())
            };
            let query = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), &bind);
            query.execute(&mut *conn).await.map_err(conflict_as(&what))?;
        }
        Ok(())
    }
}

async fn insert_users(conn: &mut SqliteConnection, users: &[User]) -> StoreResult<()> {
    let statement = MultiRow { head: "INSERT INTO users (id, name, is_active, created_at)", columns: 4, tail: "" };
    statement
        .run(
            conn,
            users,
            |query, user| {
                query
                    .bind(user.id.hyphenated())
                    .bind(user.name.clone())
                    .bind(user.is_active)
                    .bind(millis(user.created_at))
            },
            || "a user with one of these names".into(),
        )
        .await
}

/// Inserts keys in multi-row statements; `what` names the conflict when a unique value is taken.
pub(super) async fn insert_keys(
    conn: &mut SqliteConnection,
    keys: &[ApiKey],
    what: impl Fn() -> String,
) -> StoreResult<()> {
    let statement = MultiRow {
        head: "INSERT INTO api_keys (id, user_id, key_hash, key_ciphertext, key_hint, name, allowed_providers, \
               allowed_api_formats, allowed_models, rate_limit, concurrent_limit, expires_at, is_standalone, \
               credited_micros, used_micros, auto_delete_on_expiry, is_active, last_used_at, created_at, updated_at)",
        columns: 20,
        tail: "",
    };
    statement
        .run(
            conn,
            keys,
            |query, key| {
                query
                    .bind(key.id.hyphenated())
                    .bind(key.user_id.hyphenated())
                    .bind(key.key_hash.clone())
                    .bind(key.key_ciphertext.clone())
                    .bind(key.key_hint.clone())
                    .bind(key.name.clone())
                    .bind(allow_list_json(key.allowed_providers.as_deref()))
                    .bind(allow_list_json(key.allowed_api_formats.as_deref()))
                    .bind(allow_list_json(key.allowed_models.as_deref()))
                    .bind(key.rate_limit)
                    .bind(key.concurrent_limit)
                    .bind(key.expires_at.map(millis))
                    .bind(key.is_standalone)
                    .bind(key.credited.map(Money::micros))
                    .bind(key.used.micros())
                    .bind(key.auto_delete_on_expiry)
                    .bind(key.is_active)
                    .bind(key.last_used_at.map(millis))
                    .bind(millis(key.created_at))
                    .bind(millis(key.updated_at))
            },
            what,
        )
        .await?;
    super::plan::write_plans(conn, keys).await
}

async fn insert_ledger_rows(conn: &mut SqliteConnection, entries: &[LedgerEntry]) -> StoreResult<()> {
    let statement = MultiRow {
        head: "INSERT INTO balance_ledger (api_key_id, at, actor, delta_micros, credited_after, note, idempotency_key, \
               actor_key)",
        columns: 8,
        tail: "",
    };
    statement
        .run(
            conn,
            entries,
            |query, entry| {
                query
                    .bind(entry.api_key_id.hyphenated())
                    .bind(millis(entry.at))
                    .bind(entry.actor.clone())
                    .bind(entry.delta.micros())
                    .bind(entry.credited_after.map(Money::micros))
                    .bind(entry.note.clone())
                    .bind(entry.idempotency_key.clone())
                    .bind(entry.actor_key.clone())
            },
            || "a ledger row with one of these idempotency keys".into(),
        )
        .await
}

/// What the usage rows of one (key, UTC day) add to its rollup, and their latest use.
#[derive(Debug, Default, Clone, Copy)]
struct DayTotals {
    requests: i64,
    tokens: i64,
    cost_micros: i64,
    response_ms_sum: i64,
    timed_requests: i64,
    last_used_at: i64,
}

/// What the usage rows of one key add to it: the charge (if prepaid) and the latest use.
#[derive(Debug, Clone, Copy)]
struct KeyTotals {
    cost_micros: i64,
    last_used_at: i64,
}

/// Rollups and charges of the rows actually inserted, aggregated before they are written, in
/// key order: the writes then walk the rollup and key indexes forward instead of hopping.
#[derive(Debug, Default)]
struct UsageTotals {
    days: BTreeMap<(Uuid, NaiveDate), DayTotals>,
    keys: BTreeMap<Uuid, KeyTotals>,
}

impl DayTotals {
    /// Adds another day's totals of the same spender or the same day.
    fn absorb(&mut self, other: &DayTotals) {
        self.requests += other.requests;
        self.tokens += other.tokens;
        self.cost_micros += other.cost_micros;
        self.response_ms_sum += other.response_ms_sum;
        self.timed_requests += other.timed_requests;
        self.last_used_at = self.last_used_at.max(other.last_used_at);
    }
}

impl UsageTotals {
    fn add(&mut self, usage: &UsageRecord) {
        let day = self.days.entry((usage.api_key_id, usage.created_at.date_naive())).or_default();
        day.requests += 1;
        day.tokens += usage.total_tokens;
        day.cost_micros += usage.cost.micros();
        if let Some(ms) = usage.response_time_ms {
            day.response_ms_sum += ms;
            day.timed_requests += 1;
        }
        let at = millis(usage.created_at);
        day.last_used_at = day.last_used_at.max(at);
        self.keys
            .entry(usage.api_key_id)
            .and_modify(|key| {
                key.cost_micros += usage.cost.micros();
                key.last_used_at = key.last_used_at.max(at);
            })
            .or_insert(KeyTotals { cost_micros: usage.cost.micros(), last_used_at: at });
    }
}

const USAGE_INSERT: MultiRow = MultiRow {
    head: "INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, cost_micros, \
           response_time_ms, created_at)",
    columns: 9,
    tail: "ON CONFLICT (request_id) DO NOTHING",
};

/// Inserts the usage rows of known keys, skipping request ids already present, then writes the
/// rollups and charges of exactly the rows that went in.
async fn insert_usage(conn: &mut SqliteConnection, usage: &[UsageRecord]) -> StoreResult<()> {
    if usage.is_empty() {
        return Ok(());
    }
    let known = known_keys(conn, usage).await?;
    let rows: Vec<&UsageRecord> = usage.iter().filter(|row| known.contains_key(&row.api_key_id)).collect();
    let mut totals = UsageTotals::default();
    // Ids only grow inside our write transaction: a statement inserted exactly the rows above
    // the largest id before it.
    let mut max_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM usage")
        .fetch_one(&mut *conn)
        .await
        .map_err(store_error)?;
    let per_statement = USAGE_INSERT.rows_per_statement();
    let full_sql = USAGE_INSERT.sql(per_statement.min(rows.len()));
    for chunk in rows.chunks(per_statement) {
        let sql =
            if chunk.len() == per_statement.min(rows.len()) { full_sql.clone() } else { USAGE_INSERT.sql(chunk.len()) };
        let query = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |query, row| {
            query
                .bind(row.request_id.clone())
                .bind(row.api_key_id.hyphenated())
                .bind(row.provider.clone())
                .bind(row.model.clone())
                .bind(row.api_format.clone())
                .bind(row.total_tokens)
                .bind(row.cost.micros())
                .bind(row.response_time_ms)
                .bind(millis(row.created_at))
        });
        let result = query.execute(&mut *conn).await.map_err(store_error)?;
        let inserted = result.rows_affected() as usize;
        if inserted == chunk.len() {
            chunk.iter().for_each(|row| totals.add(row));
        } else if inserted > 0 {
            // Some request ids were taken: roll up only the rows this statement inserted (for a
            // request id twice in the chunk, SQLite inserted the first).
            let mut fresh: HashSet<String> = sqlx::query_scalar("SELECT request_id FROM usage WHERE id > ?")
                .bind(max_id)
                .fetch_all(&mut *conn)
                .await
                .map_err(store_error)?
                .into_iter()
                .collect();
            chunk.iter().filter(|row| fresh.remove(&row.request_id)).for_each(|row| totals.add(row));
        }
        if inserted > 0 {
            max_id = result.last_insert_rowid();
        }
    }
    write_rollups(conn, &totals, &known).await?;
    write_charges(conn, &totals).await
}

/// The owners of the usage rows' keys that exist, by key; rows of unknown keys are skipped, as
/// `record_usage` refuses them.
async fn known_keys(conn: &mut SqliteConnection, usage: &[UsageRecord]) -> StoreResult<HashMap<Uuid, Uuid>> {
    let wanted = UsageRecord::distinct_key_ids(usage);
    let mut known = HashMap::with_capacity(wanted.len());
    for chunk in wanted.chunks(MAX_PARAMS) {
        let placeholders = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT id, user_id FROM api_keys WHERE id IN ({placeholders})");
        let query =
            chunk.iter().fold(sqlx::query_as::<_, (Hyphenated, Hyphenated)>(AssertSqlSafe(sql)), |query, id| {
                query.bind(id.hyphenated())
            });
        let rows = query.fetch_all(&mut *conn).await.map_err(store_error)?;
        known.extend(rows.into_iter().map(|(key, owner)| (key.into_uuid(), owner.into_uuid())));
    }
    Ok(known)
}

/// Adds `excluded`'s sums to a rollup row; with `last_use`, also keeps the row's latest use and
/// moves its cost rank to the new cost's (the per-key and owners' rollups).
macro_rules! add_excluded {
    () => {
        "requests = requests + excluded.requests, tokens = tokens + excluded.tokens, \
         cost_micros = cost_micros + excluded.cost_micros, \
         response_ms_sum = response_ms_sum + excluded.response_ms_sum, \
         timed_requests = timed_requests + excluded.timed_requests"
    };
    (last_use) => {
        concat!(
            add_excluded!(),
            ", last_used_at = MAX(COALESCE(last_used_at, excluded.last_used_at), excluded.last_used_at), \
             cost_rank = ",
            cost_rank!("(cost_micros + excluded.cost_micros)")
        )
    };
}

/// The three rollups a usage record writes (migration 0019), from the load's totals: each key's
/// day, each owner's day and the fleet's day. A new row's rank is bound with it ([`cost_rank`]),
/// an updated row's computed from its new cost: no trigger moves the rank of a row the load
/// wrote.
const KEY_ROLLUP: MultiRow = MultiRow {
    head: "INSERT INTO usage_daily (api_key_id, day, requests, tokens, cost_micros, response_ms_sum, \
           timed_requests, last_used_at, cost_rank)",
    columns: 9,
    tail: concat!("ON CONFLICT (api_key_id, day) DO UPDATE SET ", add_excluded!(last_use)),
};
const OWNER_ROLLUP: MultiRow = MultiRow {
    head: "INSERT INTO usage_daily_user (user_id, day, requests, tokens, cost_micros, response_ms_sum, \
           timed_requests, last_used_at, cost_rank)",
    columns: 9,
    tail: concat!("ON CONFLICT (user_id, day) DO UPDATE SET ", add_excluded!(last_use)),
};
const FLEET_ROLLUP: MultiRow = MultiRow {
    head: "INSERT INTO usage_daily_fleet (day, requests, tokens, cost_micros, response_ms_sum, timed_requests)",
    columns: 6,
    tail: concat!("ON CONFLICT (day) DO UPDATE SET ", add_excluded!()),
};

/// The rank of a day's cost, as `cost_rank!` computes it in SQL: its number of digits, then its
/// first digit; 0 for nothing spent.
fn cost_rank(micros: i64) -> i64 {
    if micros <= 0 {
        return 0;
    }
    let digits = micros.to_string();
    digits.len() as i64 * 10 + i64::from(digits.as_bytes()[0] - b'0')
}

/// Binds a rollup row's sums, latest use and rank after `query`'s spender and day.
fn bind_day<'q>(query: Query<'q>, totals: &DayTotals) -> Query<'q> {
    query
        .bind(totals.requests)
        .bind(totals.tokens)
        .bind(totals.cost_micros)
        .bind(totals.response_ms_sum)
        .bind(totals.timed_requests)
        .bind(totals.last_used_at)
        .bind(cost_rank(totals.cost_micros))
}

async fn write_rollups(
    conn: &mut SqliteConnection,
    totals: &UsageTotals,
    owners: &HashMap<Uuid, Uuid>,
) -> StoreResult<()> {
    let mut owner_days: BTreeMap<(Uuid, NaiveDate), DayTotals> = BTreeMap::new();
    let mut fleet_days: BTreeMap<NaiveDate, DayTotals> = BTreeMap::new();
    for ((key_id, day), day_totals) in &totals.days {
        owner_days.entry((owners[key_id], *day)).or_default().absorb(day_totals);
        fleet_days.entry(*day).or_default().absorb(day_totals);
    }
    let what = || "a rollup row".to_string();
    let keys: Vec<_> = totals.days.iter().collect();
    KEY_ROLLUP
        .run(
            conn,
            &keys,
            |query, ((key_id, day), totals)| bind_day(query.bind(key_id.hyphenated()).bind(*day), totals),
            what,
        )
        .await?;
    let owners: Vec<_> = owner_days.iter().collect();
    OWNER_ROLLUP
        .run(
            conn,
            &owners,
            |query, ((owner, day), totals)| bind_day(query.bind(owner.hyphenated()).bind(*day), totals),
            what,
        )
        .await?;
    let fleet: Vec<_> = fleet_days.iter().collect();
    FLEET_ROLLUP
        .run(
            conn,
            &fleet,
            |query, (day, totals)| {
                query
                    .bind(**day)
                    .bind(totals.requests)
                    .bind(totals.tokens)
                    .bind(totals.cost_micros)
                    .bind(totals.response_ms_sum)
                    .bind(totals.timed_requests)
            },
            what,
        )
        .await
}

/// Raises `used_micros` of each prepaid key once by the sum of its charges, and `last_used_at`
/// of every key to its latest use, as `record_usage` does row by row.
async fn write_charges(conn: &mut SqliteConnection, totals: &UsageTotals) -> StoreResult<()> {
    let statement = MultiRow {
        head: "WITH v (id, cost, at) AS (",
        columns: 3,
        tail: ") UPDATE api_keys SET \
               used_micros = used_micros + CASE WHEN is_standalone THEN v.cost ELSE 0 END, \
               last_used_at = MAX(COALESCE(last_used_at, v.at), v.at) \
               FROM v WHERE api_keys.id = v.id",
    };
    let keys: Vec<(&Uuid, &KeyTotals)> = totals.keys.iter().collect();
    statement
        .run(
            conn,
            &keys,
            |query, (key_id, key_totals)| {
                query.bind(key_id.hyphenated()).bind(key_totals.cost_micros).bind(key_totals.last_used_at)
            },
            || "a key".into(),
        )
        .await
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::Store;
    use crate::store::sqlite::SqliteStore;

    async fn connection_settings(store: &SqliteStore) -> Vec<i64> {
        let mut settings = Vec::new();
        for pragma in ["foreign_keys", "cache_size", "temp_store"] {
            let value = sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA {pragma}"))).fetch_one(store.pool()).await;
            settings.push(value.unwrap());
        }
        settings
    }

    /// The load binds the rank it computes; the top lists read the one SQL computes.
    #[tokio::test]
    async fn the_load_ranks_costs_as_sql_does() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        for micros in [0, 1, 9, 10, 99, 100, 1_500, 1_999, 2_000, 9_999_999, 10_000_000, i64::MAX, -5] {
            let sql: i64 = sqlx::query_scalar(concat!("SELECT ", cost_rank!("?1")))
                .bind(micros)
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(cost_rank(micros), sql, "{micros}");
        }
    }

    /// An in-memory database has one connection, which goes back to the pool after a load: a
    /// setting left changed would outlive it (foreign keys off would stop a purge from dropping
    /// the key's rollups).
    #[tokio::test]
    async fn a_usage_load_gives_back_the_connection_settings_it_changed() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let before = connection_settings(&store).await;
        assert_eq!(before[0], 1, "the store runs with foreign keys on");
        let now = Utc::now();
        let unknown_key = UsageRecord {
            request_id: "r-1".into(),
            api_key_id: Uuid::new_v4(),
            provider: None,
            model: None,
            api_format: None,
            total_tokens: 10,
            cost: Money::from_micros(5),
            response_time_ms: None,
            created_at: now,
        };
        let audit = AuditRecord {
            at: now,
            actor: "test".into(),
            actor_key: None,
            action: "load".into(),
            api_key_id: None,
            details: serde_json::json!({}),
        };
        store.bulk_load(&BulkLoad { usage: vec![unknown_key], ..BulkLoad::default() }, &audit).await.unwrap();
        assert_eq!(connection_settings(&store).await, before);
        // With the checks off, the load itself still skips the rows of keys that do not exist.
        let rows: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM usage) + (SELECT COUNT(*) FROM usage_daily)")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(rows, 0);
    }
}
