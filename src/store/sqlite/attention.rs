//! The keys that need an admin's attention: balances run low, expiries near. Each list is one
//! bounded query in index order.

use chrono::{DateTime, Utc};

use super::SqliteStore;
use super::rows::millis;
use crate::domain::{ApiKey, Money};
use crate::store::StoreResult;

/// How far the low-balance index of migration 0020 reaches for a key without its own line: a
/// default line up to this is served from it. The condition is the index's, word for word, so
/// that SQLite sees the index covers the query.
const WATCHED_BELOW: Money = Money::from_micros(10_000_000);
macro_rules! watched {
    () => {
        "k.credited_micros - k.used_micros < MAX(COALESCE(k.low_balance_micros, 0), 10000000)"
    };
}

/// Exhausted (nothing left) or under the key's line, least remaining first. With a default line
/// of at most [`WATCHED_BELOW`] every such key is in 0020's index, read in its order up to the
/// largest line any key has (0018's index); with a higher one the list reads every prepaid key.
macro_rules! low_balance_keys {
    ($watched:expr) => {
        concat!(
            key_columns!(),
            key_from!(),
            " WHERE k.is_standalone = 1 AND k.is_active = 1 AND k.credited_micros IS NOT NULL ",
            $watched,
            " AND k.credited_micros - k.used_micros < MAX(COALESCE(k.low_balance_micros, ?1), 1) \
             AND k.credited_micros - k.used_micros < \
                 MAX(?1, 1, (SELECT COALESCE(MAX(low_balance_micros), 0) FROM api_keys)) \
             ORDER BY k.credited_micros - k.used_micros, k.id LIMIT ?2"
        )
    };
}
const WATCHED_LOW_BALANCE_KEYS: &str = low_balance_keys!(concat!("AND ", watched!()));
const ALL_LOW_BALANCE_KEYS: &str = low_balance_keys!("");

pub(super) async fn low_balance_keys(store: &SqliteStore, default_line: Money, limit: u32) -> StoreResult<Vec<ApiKey>> {
    let sql = if default_line <= WATCHED_BELOW { WATCHED_LOW_BALANCE_KEYS } else { ALL_LOW_BALANCE_KEYS };
    store.fetch_keys(sqlx::query(sql).bind(default_line.micros()).bind(i64::from(limit))).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::sqlite::query_plan;

    /// The low-balance list walks 0020's index in its order, and finds the largest line in an
    /// index: no scan of every key, however many there are.
    #[tokio::test]
    async fn keys_under_their_line_are_read_in_index_order() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let explain = format!("EXPLAIN QUERY PLAN {WATCHED_LOW_BALANCE_KEYS}");
        let plan = query_plan(&store, sqlx::query(sqlx::AssertSqlSafe(explain)).bind(5_000_000_i64).bind(10_i64)).await;
        assert!(plan.contains("USING INDEX api_keys_low_balance_watch"), "{plan}");
        assert!(plan.contains("api_keys_low_balance_line"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    /// The query's condition is the index's, and the threshold the store checks is the one in it.
    #[test]
    fn the_watched_condition_is_the_index_condition() {
        let migration = include_str!("../../../assets/migrations/sqlite/0020_lean_charges.sql");
        let index_condition = watched!().replace("k.", "");
        assert!(migration.contains(&index_condition), "{index_condition}");
        assert!(index_condition.contains(&format!(", {})", WATCHED_BELOW.micros())), "{index_condition}");
    }
}
