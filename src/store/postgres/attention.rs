//! The keys that need an admin's attention: balances run low, expiries near. Each list is one
//! bounded query in index order.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::rows::KeyRow;
use crate::domain::{ApiKey, Money};

pub(super) async fn low_balance_keys(
    pool: &PgPool,
    default_line: Money,
    limit: u32,
) -> Result<Vec<ApiKey>, sqlx::Error> {
    // Exhausted (nothing left) or under the key's line; the range on the remaining balance lets
    // an index on it stop at the largest line any key has.
    let rows: Vec<KeyRow> = sqlx::query_as(concat!(
        select_keys!(),
        " WHERE k.is_standalone AND k.is_active AND k.credited_micros IS NOT NULL \
         AND k.credited_micros - k.used_micros < GREATEST(COALESCE(k.low_balance_micros, $1), 1) \
         AND k.credited_micros - k.used_micros < \
             GREATEST($1, 1, (SELECT COALESCE(MAX(low_balance_micros), 0) FROM api_keys)) \
         ORDER BY k.credited_micros - k.used_micros, k.id LIMIT $2"
    ))
    .bind(default_line.micros())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

pub(super) async fn expiring_keys(
    pool: &PgPool,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ApiKey>, sqlx::Error> {
    let rows: Vec<KeyRow> = sqlx::query_as(concat!(
        select_keys!(),
        // The expression `api_keys_expires_order` indexes, so the range walks it.
        " WHERE COALESCE(k.expires_at, 'infinity'::timestamptz) > $1 \
         AND COALESCE(k.expires_at, 'infinity'::timestamptz) <= $2 AND k.is_active \
         ORDER BY COALESCE(k.expires_at, 'infinity'::timestamptz), k.id LIMIT $3"
    ))
    .bind(after)
    .bind(until)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}
