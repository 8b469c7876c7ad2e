//! Usage records of the gateway and their daily rollup.

use chrono::NaiveDate;
use sqlx::SqlitePool;
use uuid::Uuid;

use super::rows::{daily_from_row, millis};
use super::{SqliteStore, store_error};
use crate::domain::DailyUsage;
use crate::store::{StoreResult, UsageOutcome, UsageRecord};

pub(super) async fn record_usage(store: &SqliteStore, usage: &UsageRecord) -> StoreResult<UsageOutcome> {
    let key_id = usage.api_key_id.hyphenated();
    // One statement through the `usage_records` trigger (migrations 0005, 0019, 0020, 0021). The
    // row is selected from the key only when the request id is new; the key's last use and row id
    // go with it, so that the trigger does not look the key up again.
    let recorded: Option<bool> = sqlx::query_scalar(
        "INSERT INTO usage_records (request_id, api_key_id, user_id, is_standalone, provider, model, api_format, \
         total_tokens, cost_micros, response_time_ms, created_at, day, last_use_stale_before, key_last_used_at, \
         key_rowid) \
         SELECT ?1, ?2, user_id, is_standalone, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, last_used_at, rowid \
         FROM api_keys \
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
    .bind(millis(usage.last_use_stale_before()))
    .fetch_optional(&store.pool)
    .await
    .map_err(store_error)?;
    if let Some(is_standalone) = recorded {
        return Ok(UsageOutcome::Recorded { charged: is_standalone });
    }
    // Nothing written: the key is unknown, or the request was recorded before.
    let key_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ?)")
        .bind(key_id)
        .fetch_one(&store.pool)
        .await
        .map_err(store_error)?;
    Ok(if key_exists { UsageOutcome::Duplicate } else { UsageOutcome::UnknownKey })
}

pub(super) async fn daily_usage(
    store: &SqliteStore,
    key_id: Uuid,
    first: NaiveDate,
    last: NaiveDate,
) -> StoreResult<Vec<DailyUsage>> {
    spender_rollup(
        &store.pool,
        "SELECT day, requests, tokens, cost_micros, response_ms_sum, timed_requests FROM usage_daily \
         WHERE api_key_id = ? AND day >= ? AND day <= ? ORDER BY day",
        key_id,
        first,
        last,
    )
    .await
}

/// One spender's rows of a daily rollup for `first..=last`: `select` reads them by the spender's
/// id and the two days, in day order.
pub(super) async fn spender_rollup(
    pool: &SqlitePool,
    select: &'static str,
    id: Uuid,
    first: NaiveDate,
    last: NaiveDate,
) -> StoreResult<Vec<DailyUsage>> {
    let rows =
        sqlx::query(select).bind(id.hyphenated()).bind(first).bind(last).fetch_all(pool).await.map_err(store_error)?;
    rows.iter().map(daily_from_row).collect()
}
