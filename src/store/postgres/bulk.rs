//! `Store::bulk_load` for PostgreSQL: one transaction per call, each table written by
//! `INSERT … SELECT FROM UNNEST(…)` of one array per column, so a statement carries tens of
//! thousands of rows in one round trip.
//!
//! Usage rows go in with `RETURNING`, and the same statement rolls up and charges exactly the
//! rows it returned, aggregated per (key, UTC day) and per key; a chunk with a request id already
//! taken goes again with `ON CONFLICT (request_id) DO NOTHING`. The owners' and the fleet's
//! rollups of the whole load are written once, at its end. The effects equal those of the one-by-one operations except the audit trail: one
//! audit row describes the whole load.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::insert_audit;
use crate::domain::{ApiKey, LedgerEntry, Money, User};
use crate::store::{AuditRecord, BulkLoad, UsageRecord};

/// Rows per statement: large enough that round trips do not count, small enough that one
/// statement's arrays and the server's work memory stay modest.
const ROWS_PER_STATEMENT: usize = 20_000;

pub(super) async fn load(pool: &PgPool, batch: &BulkLoad, audit: &AuditRecord) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for users in batch.users.chunks(ROWS_PER_STATEMENT) {
        insert_users(&mut tx, users).await?;
    }
    for keys in batch.keys.chunks(ROWS_PER_STATEMENT) {
        insert_keys(&mut tx, keys).await?;
    }
    for entries in batch.initial_credits.chunks(ROWS_PER_STATEMENT) {
        insert_ledger_rows(&mut tx, entries).await?;
    }
    let mut fleet = FleetSums::default();
    for usage in batch.usage.chunks(ROWS_PER_STATEMENT) {
        fleet.add(insert_usage(&mut tx, usage).await?);
    }
    fleet.write(&mut tx).await?;
    insert_audit(&mut tx, audit).await?;
    tx.commit().await
}

/// One column of `rows` as a vector, bound as an array.
fn column<T, V>(rows: &[T], value: impl Fn(&T) -> V) -> Vec<V> {
    rows.iter().map(value).collect()
}

async fn insert_users(conn: &mut PgConnection, users: &[User]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, name, is_active, created_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::boolean[], $4::timestamptz[])",
    )
    .bind(column(users, |user| user.id))
    .bind(column(users, |user| user.name.clone()))
    .bind(column(users, |user| user.is_active))
    .bind(column(users, |user| user.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// An allow list as JSON text for a `::jsonb` cast: NULL for unrestricted, never `[]`.
fn allow_list_text(list: &Option<Vec<String>>) -> Option<String> {
    list.as_deref().filter(|items| !items.is_empty()).map(|items| serde_json::Value::from(items).to_string())
}

async fn insert_keys(conn: &mut PgConnection, keys: &[ApiKey]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, key_hash, key_ciphertext, key_hint, name, allowed_providers, \
         allowed_api_formats, allowed_models, rate_limit, concurrent_limit, expires_at, is_standalone, \
         credited_micros, used_micros, auto_delete_on_expiry, is_active, last_used_at, created_at, updated_at) \
         SELECT id, user_id, key_hash, key_ciphertext, key_hint, name, allowed_providers::jsonb, \
         allowed_api_formats::jsonb, allowed_models::jsonb, rate_limit, concurrent_limit, expires_at, is_standalone, \
         credited_micros, used_micros, auto_delete_on_expiry, is_active, last_used_at, created_at, updated_at \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::timestamptz[], $13::boolean[], $14::bigint[], \
         $15::bigint[], $16::boolean[], $17::boolean[], $18::timestamptz[], $19::timestamptz[], $20::timestamptz[]) \
         AS k (id, user_id, key_hash, key_ciphertext, key_hint, name, allowed_providers, allowed_api_formats, \
         allowed_models, rate_limit, concurrent_limit, expires_at, is_standalone, credited_micros, used_micros, \
         auto_delete_on_expiry, is_active, last_used_at, created_at, updated_at)",
    )
    .bind(column(keys, |key| key.id))
    .bind(column(keys, |key| key.user_id))
    .bind(column(keys, |key| key.key_hash.clone()))
    .bind(column(keys, |key| key.key_ciphertext.clone()))
    .bind(column(keys, |key| key.key_hint.clone()))
    .bind(column(keys, |key| key.name.clone()))
    .bind(column(keys, |key| allow_list_text(&key.allowed_providers)))
    .bind(column(keys, |key| allow_list_text(&key.allowed_api_formats)))
    .bind(column(keys, |key| allow_list_text(&key.allowed_models)))
    .bind(column(keys, |key| key.rate_limit))
    .bind(column(keys, |key| key.concurrent_limit))
    .bind(column(keys, |key| key.expires_at))
    .bind(column(keys, |key| key.is_standalone))
    .bind(column(keys, |key| key.credited.map(Money::micros)))
    .bind(column(keys, |key| key.used.micros()))
    .bind(column(keys, |key| key.auto_delete_on_expiry))
    .bind(column(keys, |key| key.is_active))
    .bind(column(keys, |key| key.last_used_at))
    .bind(column(keys, |key| key.created_at))
    .bind(column(keys, |key| key.updated_at))
    .execute(&mut *conn)
    .await?;
    super::plan::write_plans(conn, keys).await
}

async fn insert_ledger_rows(conn: &mut PgConnection, entries: &[LedgerEntry]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO balance_ledger (api_key_id, at, actor, delta_micros, credited_after, note, idempotency_key, \
         actor_key) SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::bigint[], $5::bigint[], \
         $6::text[], $7::text[], $8::text[])",
    )
    .bind(column(entries, |entry| entry.api_key_id))
    .bind(column(entries, |entry| entry.at))
    .bind(column(entries, |entry| entry.actor.clone()))
    .bind(column(entries, |entry| entry.delta.micros()))
    .bind(column(entries, |entry| entry.credited_after.map(Money::micros)))
    .bind(column(entries, |entry| entry.note.clone()))
    .bind(column(entries, |entry| entry.idempotency_key.clone()))
    .bind(column(entries, |entry| entry.actor_key.clone()))
    .execute(conn)
    .await?;
    Ok(())
}

/// The statement that loads usage rows: the rows of known keys go in (for a request id twice in
/// the arrays, the first), then the rollups and charges of exactly the rows that went in; it
/// returns what went in summed per owner, UTC day and fleet shard, for [`FleetSums`].
/// `$conflict` is what to do about a request id already taken: nothing (the statement fails on
/// the unique index) or `ON CONFLICT (request_id) DO NOTHING` (the row is skipped).
///
/// The known keys are looked up by the chunk's distinct ids (`$10`) on the primary key (a
/// correlated `EXISTS` was planned as a hash join over a scan of every key, for every chunk),
/// and share-locked, so no purge can remove one while its rows go in.
macro_rules! usage_load_sql {
    ($conflict:literal) => {
        concat!(
            "WITH known AS (SELECT id, user_id FROM api_keys WHERE id = ANY($10::uuid[]) FOR KEY SHARE), \
             inserted AS ( \
               INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, cost_micros, \
                                  response_time_ms, created_at) \
               SELECT u.request_id, u.api_key_id, u.provider, u.model, u.api_format, u.total_tokens, \
                      u.cost_micros, u.response_time_ms, u.created_at \
               FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
                           $7::bigint[], $8::bigint[], $9::timestamptz[]) WITH ORDINALITY \
                 AS u (request_id, api_key_id, provider, model, api_format, total_tokens, cost_micros, \
                       response_time_ms, created_at, position) \
               WHERE u.api_key_id IN (SELECT id FROM known) \
               ORDER BY u.position ",
            $conflict,
            " RETURNING api_key_id, total_tokens, cost_micros, response_time_ms, created_at), \
             daily AS ( \
               INSERT INTO usage_daily AS d (api_key_id, day, requests, tokens, cost_micros, response_ms_sum, \
                                             timed_requests, cost_rank) \
               SELECT api_key_id, (created_at AT TIME ZONE 'UTC')::date, COUNT(*), SUM(total_tokens)::bigint, \
                      SUM(cost_micros)::bigint, COALESCE(SUM(response_time_ms), 0)::bigint, \
                      COUNT(response_time_ms), keytop_cost_rank(SUM(cost_micros)::bigint) \
               FROM inserted GROUP BY 1, 2 \
               ON CONFLICT (api_key_id, day) DO UPDATE SET ",
            add_to_rollup!("d", ranked),
            "), \
             charged AS ( \
               UPDATE api_keys k SET \
                 used_micros = k.used_micros + CASE WHEN k.is_standalone THEN per_key.cost ELSE 0 END, \
                 last_used_at = GREATEST(k.last_used_at, per_key.last_at) \
               FROM (SELECT api_key_id, SUM(cost_micros)::bigint AS cost, MAX(created_at) AS last_at \
                     FROM inserted GROUP BY api_key_id) AS per_key \
               WHERE k.id = per_key.api_key_id) \
             SELECT known.user_id, (i.created_at AT TIME ZONE 'UTC')::date AS day, ",
            fleet_shard!("i.api_key_id"),
            " AS shard, COUNT(*) AS requests, SUM(i.total_tokens)::bigint AS tokens, \
                    SUM(i.cost_micros)::bigint AS cost_micros, \
                    COALESCE(SUM(i.response_time_ms), 0)::bigint AS response_ms_sum, \
                    COUNT(i.response_time_ms) AS timed_requests, MAX(i.created_at) AS last_used_at \
             FROM inserted i JOIN known ON known.id = i.api_key_id GROUP BY 1, 2, 3"
        )
    };
}

/// Loads usage rows, expecting their request ids to be new: a plain insert, in a savepoint. Only
/// if one is taken (or twice in the chunk) does the chunk go again with `ON CONFLICT DO NOTHING`,
/// whose speculative insertion costs about half as much again per row as a plain insert (measured
/// at a million rows: 15.7 s against 10.4 s), to pay on every load for a conflict most never have.
async fn insert_usage(conn: &mut PgConnection, usage: &[UsageRecord]) -> Result<Vec<LoadedSums>, sqlx::Error> {
    let mut savepoint = conn.begin().await?;
    match run_usage_load(&mut savepoint, usage_load_sql!(""), usage).await {
        Ok(loaded) => savepoint.commit().await.map(|()| loaded),
        Err(error) if error.as_database_error().is_some_and(|db| db.is_unique_violation()) => {
            savepoint.rollback().await?;
            run_usage_load(conn, usage_load_sql!("ON CONFLICT (request_id) DO NOTHING"), usage).await
        }
        Err(error) => Err(error),
    }
}

async fn run_usage_load(
    conn: &mut PgConnection,
    sql: &'static str,
    usage: &[UsageRecord],
) -> Result<Vec<LoadedSums>, sqlx::Error> {
    sqlx::query_as(sql)
        .bind(column(usage, |row| row.request_id.clone()))
        .bind(column(usage, |row| row.api_key_id))
        .bind(column(usage, |row| row.provider.clone()))
        .bind(column(usage, |row| row.model.clone()))
        .bind(column(usage, |row| row.api_format.clone()))
        .bind(column(usage, |row| row.total_tokens))
        .bind(column(usage, |row| row.cost.micros()))
        .bind(column(usage, |row| row.response_time_ms))
        .bind(column(usage, |row| row.created_at))
        .bind(UsageRecord::distinct_key_ids(usage))
        .fetch_all(conn)
        .await
}

/// What a usage chunk loaded, summed per owner, UTC day and fleet shard, and its latest use.
#[derive(sqlx::FromRow)]
struct LoadedSums {
    user_id: Uuid,
    day: NaiveDate,
    shard: i16,
    requests: i64,
    tokens: i64,
    cost_micros: i64,
    response_ms_sum: i64,
    timed_requests: i64,
    last_used_at: DateTime<Utc>,
}

type Sums = [i64; 5];

/// The owners' and the fleet's rollups of a whole load, written once at its end: every load
/// adds to the same few fleet rows, and a row lock taken early would hold a concurrent load up
/// until this one commits. Written in key order, so concurrent loads take the locks in the same
/// order and never deadlock.
#[derive(Default)]
struct FleetSums {
    owners: BTreeMap<(Uuid, NaiveDate), Sums>,
    owners_last_use: BTreeMap<(Uuid, NaiveDate), DateTime<Utc>>,
    fleet: BTreeMap<(NaiveDate, i16), Sums>,
}

impl FleetSums {
    fn add(&mut self, loaded: Vec<LoadedSums>) {
        for row in loaded {
            let sums = [row.requests, row.tokens, row.cost_micros, row.response_ms_sum, row.timed_requests];
            let last_use = self.owners_last_use.entry((row.user_id, row.day)).or_insert(row.last_used_at);
            *last_use = (*last_use).max(row.last_used_at);
            for total in [
                self.owners.entry((row.user_id, row.day)).or_default(),
                self.fleet.entry((row.day, row.shard)).or_default(),
            ] {
                total.iter_mut().zip(sums).for_each(|(total, value)| *total += value);
            }
        }
    }

    async fn write(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let sum = |rows: &[Sums], field: usize| rows.iter().map(|sums| sums[field]).collect::<Vec<i64>>();
        let owner_sums: Vec<Sums> = self.owners.values().copied().collect();
        sqlx::query(concat!(
            "INSERT INTO usage_daily_user AS o (user_id, day, requests, tokens, cost_micros, response_ms_sum, \
             timed_requests, last_used_at, cost_rank) \
             SELECT u.*, keytop_cost_rank(u.cost_micros) FROM UNNEST($1::uuid[], $2::date[], $3::bigint[], \
             $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::timestamptz[]) \
             AS u (user_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests, last_used_at) \
             ON CONFLICT (user_id, day) DO UPDATE SET ",
            add_to_rollup!("o", ranked),
            ", last_used_at = GREATEST(o.last_used_at, EXCLUDED.last_used_at)"
        ))
        .bind(self.owners.keys().map(|(user, _)| *user).collect::<Vec<_>>())
        .bind(self.owners.keys().map(|(_, day)| *day).collect::<Vec<_>>())
        .bind(sum(&owner_sums, 0))
        .bind(sum(&owner_sums, 1))
        .bind(sum(&owner_sums, 2))
        .bind(sum(&owner_sums, 3))
        .bind(sum(&owner_sums, 4))
        .bind(self.owners_last_use.values().copied().collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        let fleet_sums: Vec<Sums> = self.fleet.values().copied().collect();
        sqlx::query(concat!(
            "INSERT INTO usage_daily_fleet AS f (day, shard, requests, tokens, cost_micros, response_ms_sum, \
             timed_requests) \
             SELECT * FROM UNNEST($1::date[], $2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[], \
             $6::bigint[], $7::bigint[]) \
             ON CONFLICT (day, shard) DO UPDATE SET ",
            add_to_rollup!("f")
        ))
        .bind(self.fleet.keys().map(|(day, _)| *day).collect::<Vec<_>>())
        .bind(self.fleet.keys().map(|(_, shard)| *shard).collect::<Vec<_>>())
        .bind(sum(&fleet_sums, 0))
        .bind(sum(&fleet_sums, 1))
        .bind(sum(&fleet_sums, 2))
        .bind(sum(&fleet_sums, 3))
        .bind(sum(&fleet_sums, 4))
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_are_null_or_a_non_empty_json_array() {
        assert_eq!(allow_list_text(&None), None);
        assert_eq!(allow_list_text(&Some(vec![])), None);
        assert_eq!(allow_list_text(&Some(vec!["a\"b".into()])).as_deref(), Some(r#"["a\"b"]"#));
    }

    #[test]
    fn columns_follow_row_order() {
        let ids = [Uuid::from_u128(2), Uuid::from_u128(1)];
        assert_eq!(column(&ids, |id| id.as_u128()), vec![2, 1]);
    }
}
