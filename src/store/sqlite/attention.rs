//! The keys that need an admin's attention: balances run low, expiries near. Each list is one
//! bounded query in index order.

use chrono::{DateTime, Utc};

use super::SqliteStore;
use super::rows::millis;
use crate::domain::{ApiKey, Money};
use crate::store::StoreResult;

pub(super) async fn low_balance_keys(store: &SqliteStore, default_line: Money, limit: u32) -> StoreResult<Vec<ApiKey>> {
    // Exhausted (nothing left) or under the key's line; the range on the remaining balance lets
    // an index on it stop at the largest line any key has.
    store
        .fetch_keys(
            sqlx::query(concat!(
                key_columns!(),
                key_from!(),
                " WHERE k.is_standalone = 1 AND k.is_active = 1 AND k.credited_micros IS NOT NULL \
                 AND k.credited_micros - k.used_micros < MAX(COALESCE(k.low_balance_micros, ?1), 1) \
                 AND k.credited_micros - k.used_micros < \
                     MAX(?1, 1, (SELECT COALESCE(MAX(low_balance_micros), 0) FROM api_keys)) \
                 ORDER BY k.credited_micros - k.used_micros, k.id LIMIT ?2"
            ))
            .bind(default_line.micros())
            .bind(i64::from(limit)),
        )
        .await
}

pub(super) async fn expiring_keys(
    store: &SqliteStore,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<ApiKey>> {
    store
        .fetch_keys(
            sqlx::query(concat!(
                key_columns!(),
                key_from!(),
                // The expression `api_keys_expires_order` indexes, so the range walks it.
                " WHERE ",
                expiry_order!("k."),
                " > ? AND ",
                expiry_order!("k."),
                " <= ? AND k.is_active = 1 ORDER BY ",
                expiry_order!("k."),
                ", k.id LIMIT ?"
            ))
            .bind(millis(after))
            .bind(millis(until))
            .bind(i64::from(limit)),
        )
        .await
}
