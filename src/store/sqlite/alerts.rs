//! Alert claims on SQLite: the re-arming delete and the claiming insert in one `BEGIN IMMEDIATE`
//! transaction (see [`crate::store::alerts`]).

use uuid::fmt::Hyphenated;

use super::rows::{get, millis};
use super::{SqliteStore, store_error};
use crate::store::StoreResult;
use crate::store::alerts::{AlertCheck, AlertClaim, AlertScope};

/// An enabled, unexpired key `k` at `?1`.
macro_rules! usable {
    () => {
        "(k.is_active = 1 AND (k.expires_at IS NULL OR k.expires_at > ?1))"
    };
}

/// The alert conditions that hold on the keys matching `$keys` (a condition on `k`), as rows
/// (api_key_id, event, period, usable); `usable` is 1 for an enabled, unexpired key. `?1` now
/// (epoch ms); `?2`..`?4` the first days of the current day, week and month; `?5` the default
/// low-balance line; `?6`..`?8` the current day, week and month as claim periods.
macro_rules! holding_alerts {
    ($keys:literal) => {
        concat!(
            "SELECT k.id AS api_key_id, 'exhausted' AS event, 'balance' AS period, ",
            usable!(),
            " AS usable FROM api_keys k WHERE ",
            $keys,
            " AND k.is_standalone = 1 AND k.credited_micros IS NOT NULL AND k.used_micros >= k.credited_micros \
             UNION ALL SELECT k.id, 'low_balance', 'balance', ",
            usable!(),
            " FROM api_keys k WHERE ",
            $keys,
            " AND k.is_standalone = 1 AND k.credited_micros IS NOT NULL \
             AND MAX(0, k.credited_micros - k.used_micros) < COALESCE(k.low_balance_micros, ?5) \
             UNION ALL SELECT k.id, 'budget_reached', \
               CASE k.budget_period WHEN 'day' THEN ?6 WHEN 'week' THEN ?7 ELSE ?8 END, ",
            usable!(),
            " FROM api_keys k WHERE ",
            $keys,
            " AND k.budget_micros IS NOT NULL AND k.budget_micros <= \
               (SELECT COALESCE(SUM(cost_micros), 0) FROM usage_daily WHERE api_key_id = k.id \
                AND day >= CASE k.budget_period WHEN 'day' THEN ?2 WHEN 'week' THEN ?3 ELSE ?4 END AND day <= ?2)"
        )
    };
}

/// Deletes the claims of the keys matching `$claims` whose condition no longer holds.
macro_rules! rearm {
    ($claims:literal, $keys:literal) => {
        concat!(
            "DELETE FROM alert_claims WHERE ",
            $claims,
            " AND (api_key_id, event, period) NOT IN (SELECT api_key_id, event, period FROM (",
            holding_alerts!($keys),
            "))"
        )
    };
}

/// Claims the alerts that hold on usable keys, each once; returns the claims inserted.
macro_rules! claim {
    ($keys:literal) => {
        concat!(
            "INSERT INTO alert_claims (api_key_id, event, period, claimed_at) \
             SELECT api_key_id, event, period, ?1 FROM (",
            holding_alerts!($keys),
            ") WHERE usable = 1 ON CONFLICT DO NOTHING RETURNING api_key_id, event, period"
        )
    };
}

const REARM_ONE: &str = rearm!("api_key_id = ?9", "k.id = ?9");
const CLAIM_ONE: &str = claim!("k.id = ?9");
const REARM_ALL: &str = rearm!("1 = 1", "1 = 1");
const CLAIM_ALL: &str = claim!("1 = 1");

pub(super) async fn claim_alerts(
    store: &SqliteStore,
    scope: AlertScope,
    check: &AlertCheck,
) -> StoreResult<Vec<AlertClaim>> {
    let (rearm, claim, key) = match scope {
        AlertScope::Key(id) => (REARM_ONE, CLAIM_ONE, Some(id.hyphenated())),
        AlertScope::All => (REARM_ALL, CLAIM_ALL, None),
    };
    let days =
        [check.periods.day, check.periods.week, check.periods.month].map(|day| day.format("%Y-%m-%d").to_string());
    let bind_all = |sql: &'static str| {
        let mut query = sqlx::query(sql).bind(millis(check.now));
        for day in &days {
            query = query.bind(day.clone());
        }
        query = query.bind(check.default_line.micros());
        for period in &check.period_keys {
            query = query.bind(period.clone());
        }
        if let Some(key) = key {
            query = query.bind(key);
        }
        query
    };
    let mut tx = store.begin_write().await?;
    bind_all(rearm).execute(&mut *tx).await.map_err(store_error)?;
    let rows = bind_all(claim).fetch_all(&mut *tx).await.map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    let mut claims = Vec::with_capacity(rows.len());
    for row in &rows {
        let key_id = get::<Hyphenated>(row, "api_key_id")?.into_uuid();
        claims.extend(AlertClaim::stored(key_id, &get::<String>(row, "event")?, get(row, "period")?));
    }
    Ok(claims)
}
