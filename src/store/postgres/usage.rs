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
    .fetch_one(pool)
    .await?;
    Ok(match (known, charged) {
        (false, _) => UsageOutcome::UnknownKey,
        (true, None) => UsageOutcome::Duplicate,
        (true, Some(charged)) => UsageOutcome::Recorded { charged },
    })
}

pub(super) async fn daily_usage(
    pool: &PgPool,
    key_id: Uuid,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Vec<DailyUsage>, sqlx::Error> {
    let rows: Vec<DailyRow> = sqlx::query_as(
        "SELECT day, requests, tokens, cost_micros, response_ms_sum, timed_requests FROM usage_daily \
         WHERE api_key_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
    )
    .bind(key_id)
    .bind(first)
    .bind(last)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(DailyUsage::from).collect())
}
