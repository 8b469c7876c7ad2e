//! The keys that need an admin's attention: balances run low, expiries near. Each list is one
//! bounded query in index order.

use chrono::{DateTime, Utc};

use super::SqliteStore;
use super::rows::millis;
use crate::domain::{ApiKey, Money};
use crate::store::StoreResult;

/// Exhausted (nothing left) or under the key's line, in the order of migration 0020's index: the
/// ranks of the remaining balance up to the largest line's (the largest line any key has, read
/// from 0018's index), each rank's keys sorted by their exact balance. The rank never decreases as
/// the balance grows, so ordering by it first is ordering by balance, and the walk stops once a
/// rank completes the page.
const LOW_BALANCE_KEYS: &str = concat!(
    key_columns!(),
    key_from!(),
    " WHERE k.is_standalone = 1 AND k.is_active = 1 AND k.credited_micros IS NOT NULL \
     AND k.credited_micros - k.used_micros < MAX(COALESCE(k.low_balance_micros, ?1), 1) \
     AND k.balance_rank <= (SELECT ",
    balance_rank!("(line)"),
    " FROM (SELECT MAX(?1, 1, (SELECT COALESCE(MAX(low_balance_micros), 0) FROM api_keys)) AS line)) \
     ORDER BY k.balance_rank, k.credited_micros - k.used_micros, k.id LIMIT ?2"
);

pub(super) async fn low_balance_keys(store: &SqliteStore, default_line: Money, limit: u32) -> StoreResult<Vec<ApiKey>> {
    store.fetch_keys(sqlx::query(LOW_BALANCE_KEYS).bind(default_line.micros()).bind(i64::from(limit))).await
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

    /// The low-balance list walks the prepaid keys' balance-rank index, sorting within a rank
    /// only, and finds the largest line in an index: no scan of every key, however many there are.
    #[tokio::test]
    async fn keys_under_their_line_are_read_in_index_order() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let explain = format!("EXPLAIN QUERY PLAN {LOW_BALANCE_KEYS}");
        let plan = query_plan(&store, sqlx::query(sqlx::AssertSqlSafe(explain)).bind(5_000_000_i64).bind(10_i64)).await;
        assert!(plan.contains("USING INDEX api_keys_prepaid_balance_rank (balance_rank<?)"), "{plan}");
        assert!(plan.contains("api_keys_low_balance_line"), "{plan}");
        // Sorted within a rank only: the rank comes from the index.
        assert!(plan.contains("USE TEMP B-TREE FOR LAST 2 TERMS OF ORDER BY"), "{plan}");
        assert_eq!(plan.matches("TEMP B-TREE").count(), 1, "{plan}");
    }
}
