//! Usage records of the gateway and their daily rollup.

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use super::rows::DailyRow;
use crate::domain::DailyUsage;
use crate::store::{UsageOutcome, UsageRecord};

pub(super) async fn record_usage(pool: &PgPool, usage: &UsageRecord) -> Result<UsageOutcome, sqlx::Error> {
    // One statement, so one round trip and atomic: the usage row, its daily rollup and the
    // charge happen only when the row is new; nothing is written for an unknown key. The key
    // row is share-locked (what a foreign key check would do), so a purge cannot slip in
    // between and leave a usage row written for a key already gone. The row goes into its owner's
    // (with its time, the owner's last use: 0017) and the fleet's rollups (0011) in the same statement;
    // the key's and the owner's days keep their cost's rank, so that their updates are HOT (0020).
    // The key's last use moves only when it is stale ($11): the charge then changes no indexed
    // column of the key, a HOT update, where moving the last use (held by the list's last-use
    // index) wrote a new entry in each of the key table's indexes on every request. A key without
    // a balance is not written at all within the minute (as on SQLite): nothing of it changes.
    let (known, recorded, charged): (bool, bool, bool) = sqlx::query_as(concat!(
        "WITH key AS (SELECT id, user_id FROM api_keys WHERE id = $2 FOR KEY SHARE), \
         inserted AS ( \
           INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, \
                              cost_micros, response_time_ms, created_at) \
           SELECT $1, key.id, $3, $4, $5, $6, $7, $8, $9 FROM key \
           ON CONFLICT (request_id) DO NOTHING \
           RETURNING api_key_id), \
         sums AS (SELECT 1 AS requests, $6::bigint AS tokens, $7::bigint AS cost_micros, \
                  COALESCE($8, 0)::bigint AS response_ms_sum, \
                  CASE WHEN $8 IS NULL THEN 0 ELSE 1 END AS timed_requests), \
         daily AS ( \
           INSERT INTO usage_daily AS d (api_key_id, day, requests, tokens, cost_micros, response_ms_sum, \
                                         timed_requests, cost_rank) \
           SELECT api_key_id, $10, sums.*, keytop_cost_rank($7) FROM inserted, sums \
           ON CONFLICT (api_key_id, day) DO UPDATE SET ",
        add_to_rollup!("d", ranked),
        "), \
         owner AS ( \
           INSERT INTO usage_daily_user AS o (user_id, day, requests, tokens, cost_micros, response_ms_sum, \
                                              timed_requests, last_used_at, cost_rank) \
           SELECT key.user_id, $10, sums.*, $9, keytop_cost_rank($7) FROM inserted, key, sums \
           ON CONFLICT (user_id, day) DO UPDATE SET ",
        add_to_rollup!("o", ranked),
        ", last_used_at = GREATEST(o.last_used_at, EXCLUDED.last_used_at)), \
         fleet AS ( \
           INSERT INTO usage_daily_fleet AS f (day, shard, requests, tokens, cost_micros, response_ms_sum, \
                                               timed_requests) \
           SELECT $10, ",
        fleet_shard!("api_key_id"),
        ", sums.* FROM inserted, sums \
           ON CONFLICT (day, shard) DO UPDATE SET ",
        add_to_rollup!("f"),
        "), \
         charged AS ( \
           UPDATE api_keys k SET \
             used_micros = k.used_micros + CASE WHEN k.is_standalone THEN $7 ELSE 0 END, \
             last_used_at = CASE WHEN k.last_used_at >= $11 THEN k.last_used_at ELSE $9 END \
           FROM inserted WHERE k.id = inserted.api_key_id \
             AND (k.is_standalone OR k.last_used_at IS NULL OR k.last_used_at < $11) \
           RETURNING k.is_standalone) \
         SELECT EXISTS (SELECT 1 FROM key), EXISTS (SELECT 1 FROM inserted), \
           COALESCE((SELECT is_standalone FROM charged), FALSE)"
    ))
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
    .bind(usage.last_use_stale_before())
    .fetch_one(pool)
    .await?;
    Ok(match (known, recorded) {
        (false, _) => UsageOutcome::UnknownKey,
        (true, false) => UsageOutcome::Duplicate,
        (true, true) => UsageOutcome::Recorded { charged },
    })
}

pub(super) async fn daily_usage(
    pool: &PgPool,
    key_id: Uuid,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Vec<DailyUsage>, sqlx::Error> {
    spender_rollup(
        pool,
        "SELECT day, requests, tokens, cost_micros, response_ms_sum, timed_requests FROM usage_daily \
         WHERE api_key_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
        key_id,
        first,
        last,
    )
    .await
}

/// One spender's rows of a daily rollup for `first..=last`: `select` reads them by the spender's
/// id and the two days, in day order.
pub(super) async fn spender_rollup(
    pool: &PgPool,
    select: &'static str,
    id: Uuid,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Vec<DailyUsage>, sqlx::Error> {
    let rows: Vec<DailyRow> = sqlx::query_as(select).bind(id).bind(first).bind(last).fetch_all(pool).await?;
    Ok(rows.into_iter().map(DailyUsage::from).collect())
}
