//! Alert claims on PostgreSQL: one statement whose first part deletes the claims that no longer
//! hold and whose second claims those that do (see [`crate::store::alerts`]). The two parts see
//! the same snapshot, and never touch the same claim: one holds only where the other does not.
//! Concurrent checks meet on the claims' primary key; the claims are inserted in key order, so
//! two sweeps wait for each other instead of deadlocking.

use sqlx::PgPool;
use uuid::Uuid;

use crate::store::alerts::{AlertCheck, AlertClaim, AlertScope};

/// An enabled, unexpired key `k` at `$1`.
macro_rules! usable {
    () => {
        "(k.is_active AND (k.expires_at IS NULL OR k.expires_at > $1))"
    };
}

/// The statement for the keys matching `$keys` (a condition on `k`) and their claims matching
/// `$claims`. `$1` now; `$2`..`$4` the first days of the current day, week and month; `$5` the
/// default low-balance line; `$6`..`$8` the current day, week and month as claim periods.
macro_rules! claim_alerts {
    ($claims:literal, $keys:literal) => {
        concat!(
            "WITH holding AS ( \
               SELECT k.id AS api_key_id, 'exhausted' AS event, 'balance' AS period, ",
            usable!(),
            " AS usable FROM api_keys k WHERE ",
            $keys,
            " AND k.is_standalone AND k.credited_micros IS NOT NULL AND k.used_micros >= k.credited_micros \
               UNION ALL SELECT k.id, 'low_balance', 'balance', ",
            usable!(),
            " FROM api_keys k WHERE ",
            $keys,
            " AND k.is_standalone AND k.credited_micros IS NOT NULL \
               AND GREATEST(0, k.credited_micros - k.used_micros) < COALESCE(k.low_balance_micros, $5) \
               UNION ALL SELECT k.id, 'budget_reached', \
                 CASE k.budget_period WHEN 'day' THEN $6 WHEN 'week' THEN $7 ELSE $8 END, ",
            usable!(),
            " FROM api_keys k WHERE ",
            $keys,
            " AND k.budget_micros IS NOT NULL AND k.budget_micros <= \
                 (SELECT CAST(COALESCE(SUM(d.cost_micros), 0) AS BIGINT) FROM usage_daily d \
                  WHERE d.api_key_id = k.id \
                    AND d.day >= CASE k.budget_period WHEN 'day' THEN $2 WHEN 'week' THEN $3 ELSE $4 END \
                    AND d.day <= $2)), \
             rearmed AS (DELETE FROM alert_claims c WHERE ",
            $claims,
            " AND (c.api_key_id, c.event, c.period) NOT IN (SELECT api_key_id, event, period FROM holding)) \
             INSERT INTO alert_claims (api_key_id, event, period, claimed_at) \
             SELECT api_key_id, event, period, $1 FROM holding WHERE usable ORDER BY api_key_id, event \
             ON CONFLICT DO NOTHING RETURNING api_key_id, event, period"
        )
    };
}

const CLAIM_ONE: &str = claim_alerts!("c.api_key_id = $9", "k.id = $9");
const CLAIM_ALL: &str = claim_alerts!("TRUE", "TRUE");

pub(super) async fn claim_alerts(
    pool: &PgPool,
    scope: AlertScope,
    check: &AlertCheck,
) -> Result<Vec<AlertClaim>, sqlx::Error> {
    let mut query = sqlx::query_as::<_, (Uuid, String, String)>(match scope {
        AlertScope::Key(_) => CLAIM_ONE,
        AlertScope::All => CLAIM_ALL,
    })
    .bind(check.now)
    .bind(check.periods.day)
    .bind(check.periods.week)
    .bind(check.periods.month)
    .bind(check.default_line.micros());
    for period in &check.period_keys {
        query = query.bind(period.clone());
    }
    if let AlertScope::Key(id) = scope {
        query = query.bind(id);
    }
    let rows = query.fetch_all(pool).await?;
    Ok(rows.into_iter().filter_map(|(key_id, event, period)| AlertClaim::stored(key_id, &event, period)).collect())
}
