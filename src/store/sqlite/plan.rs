//! Money over time on SQLite: a key's budget, refill and low-balance columns, the budget's spend
//! for `verify`, and the sweep's refill step.
//!
//! The refill step selects the keys due a refill once into a temporary table, then one statement
//! each credits them, appends their ledger rows and their audit rows, all in one
//! `BEGIN IMMEDIATE` transaction. A key is due while the period it was last
//! refilled for (`refill_last_period_start`) lies before its current period; crediting it moves
//! that mark to the current period in the same statement, so a second sweep, in this process or
//! another, finds nothing left to do. The ledger's unique idempotency key
//! (`refill:<id>:month:2026-12-01`) backs that up: a duplicate would fail the whole transaction.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::fmt::Hyphenated;

use super::rows::{from_millis, get, millis};
use super::{SqliteStore, store_error};
use crate::domain::money::MAX_AMOUNT;
use crate::domain::{ApiKey, Budget, CurrentPeriods, MoneyPlan, PlanPatch};
use crate::store::plan::{PlanColumns, RefillPeriods, RefillReport, RefilledKey, stored_period};
use crate::store::{Actor, SWEEP_SAMPLE, StoreResult};

/// The days `budget_spent!()` binds, in its order.
pub(super) fn budget_days(periods: CurrentPeriods) -> [String; 4] {
    [periods.day, periods.week, periods.month, periods.day].map(|day| day.format("%Y-%m-%d").to_string())
}

/// The budget among the admission columns.
pub(super) fn budget_from_row(row: &SqliteRow) -> StoreResult<Option<Budget>> {
    let columns = PlanColumns {
        budget_micros: get(row, "budget_micros")?,
        budget_period: get(row, "budget_period")?,
        ..PlanColumns::default()
    };
    Ok(columns.into_plan().budget)
}

pub(super) fn plan_from_row(row: &SqliteRow) -> StoreResult<MoneyPlan> {
    Ok(PlanColumns {
        budget_micros: get(row, "budget_micros")?,
        budget_period: get(row, "budget_period")?,
        refill_micros: get(row, "refill_micros")?,
        refill_period: get(row, "refill_period")?,
        refill_mode: get(row, "refill_mode")?,
        refill_last_period_start: get::<Option<i64>>(row, "refill_last_period_start")?.map(from_millis).transpose()?,
        low_balance_micros: get(row, "low_balance_micros")?,
    }
    .into_plan())
}

/// `, column = value` for every plan column a patch changes.
pub(super) fn push_plan_patch(builder: &mut QueryBuilder<Sqlite>, patch: &PlanPatch) {
    // The columns of the patch's new values; a cleared part is all NULL.
    let new = PlanColumns::of(&patch.applied_to(MoneyPlan::default()));
    if !patch.budget.is_keep() {
        builder.push(", budget_micros = ").push_bind(new.budget_micros);
        builder.push(", budget_period = ").push_bind(new.budget_period);
    }
    if !patch.refill.is_keep() {
        builder.push(", refill_micros = ").push_bind(new.refill_micros);
        builder.push(", refill_period = ").push_bind(new.refill_period);
        builder.push(", refill_mode = ").push_bind(new.refill_mode);
        builder.push(", refill_last_period_start = ").push_bind(new.refill_last_period_start.map(millis));
    }
    if !patch.low_balance.is_keep() {
        builder.push(", low_balance_micros = ").push_bind(new.low_balance_micros);
    }
}

/// Writes the plans of newly inserted keys that have one (most keys have none, so the bulk
/// insert of keys leaves these columns out).
pub(super) async fn write_plans(conn: &mut SqliteConnection, keys: &[ApiKey]) -> StoreResult<()> {
    for key in keys.iter().filter(|key| key.money != MoneyPlan::default()) {
        let mut builder = QueryBuilder::new("UPDATE api_keys SET id = id");
        push_plan_patch(&mut builder, &PlanPatch::writing(key.money));
        builder.push(" WHERE id = ").push_bind(key.id.hyphenated());
        builder.build().execute(&mut *conn).await.map_err(store_error)?;
    }
    Ok(())
}

const REFILL_BATCH_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS refill_batch \
     (id TEXT PRIMARY KEY, name TEXT NOT NULL, period TEXT NOT NULL, last_start INTEGER NOT NULL, \
      start INTEGER NOT NULL, label TEXT NOT NULL, suffix TEXT NOT NULL, delta INTEGER NOT NULL, \
      credited_after INTEGER NOT NULL)";

/// Enabled, unexpired prepaid keys with a refill whose current period has not been refilled:
/// `?1` now; `?2`..`?4` the starts of the current day, week and month (the day's is the latest,
/// so `< ?2` reads the index `api_keys_refill_due`); `?5`..`?7` their labels; `?8`..`?10` the
/// tails of their idempotency keys; `?11` the largest credited total.
const SELECT_DUE: &str = "INSERT INTO temp.refill_batch \
     SELECT id, name, refill_period, refill_last_period_start, start, label, suffix, delta, credited_micros + delta \
     FROM (SELECT id, name, refill_period, refill_last_period_start, credited_micros, \
             CASE refill_period WHEN 'day' THEN ?2 WHEN 'week' THEN ?3 ELSE ?4 END AS start, \
             CASE refill_period WHEN 'day' THEN ?5 WHEN 'week' THEN ?6 ELSE ?7 END AS label, \
             CASE refill_period WHEN 'day' THEN ?8 WHEN 'week' THEN ?9 ELSE ?10 END AS suffix, \
             CASE refill_mode WHEN 'add' THEN refill_micros \
               ELSE MAX(0, refill_micros - MAX(0, credited_micros - used_micros)) END AS delta \
           FROM api_keys \
           WHERE refill_micros IS NOT NULL AND refill_last_period_start < ?2 \
             AND is_active = 1 AND is_standalone = 1 AND credited_micros IS NOT NULL \
             AND credited_micros <= ?11 - refill_micros AND (expires_at IS NULL OR expires_at > ?1)) \
     WHERE refill_last_period_start < start";

const CREDIT: &str = "UPDATE api_keys SET credited_micros = b.credited_after, refill_last_period_start = b.start, \
     updated_at = ?1 FROM temp.refill_batch b WHERE api_keys.id = b.id";

const LEDGER: &str = "INSERT INTO balance_ledger (api_key_id, at, actor, actor_key, delta_micros, credited_after, note, \
     idempotency_key) SELECT id, ?1, ?2, ?3, delta, credited_after, 'refill (' || label || ')', 'refill:' || id || ':' || suffix \
     FROM temp.refill_batch ORDER BY id";

/// The audit rows, with the details `AuditRecord::for_adjustment` writes.
const AUDIT: &str = "INSERT INTO audit_log (at, actor, actor_key, action, api_key_id, details) \
     SELECT ?1, ?2, ?3, 'refill', id, json_object( \
       'delta', printf('%d.%06d', delta / 1000000, delta % 1000000), \
       'credited_after', printf('%d.%06d', credited_after / 1000000, credited_after % 1000000), \
       'note', 'refill (' || label || ')') \
     FROM temp.refill_batch ORDER BY id";

/// Refills every due key (or, in a dry run, only reports them), in one write transaction.
pub(super) async fn refill_due(
    store: &SqliteStore,
    periods: &RefillPeriods,
    actor: Actor<'_>,
    dry_run: bool,
) -> StoreResult<RefillReport> {
    let mut tx = store.begin_write().await?;
    let report = refill_in(&mut tx, periods, actor, dry_run).await?;
    if dry_run {
        tx.rollback().await.map_err(store_error)?;
    } else {
        tx.commit().await.map_err(store_error)?;
    }
    Ok(report)
}

async fn refill_in(
    conn: &mut SqliteConnection,
    periods: &RefillPeriods,
    actor: Actor<'_>,
    dry_run: bool,
) -> StoreResult<RefillReport> {
    sqlx::query(REFILL_BATCH_TABLE).execute(&mut *conn).await.map_err(store_error)?;
    sqlx::query("DELETE FROM temp.refill_batch").execute(&mut *conn).await.map_err(store_error)?;
    let mut select = sqlx::query(SELECT_DUE).bind(millis(periods.now));
    for start in periods.starts {
        select = select.bind(millis(start));
    }
    for text in periods.labels.iter().chain(&periods.key_suffixes) {
        select = select.bind(text);
    }
    select.bind(MAX_AMOUNT.micros()).execute(&mut *conn).await.map_err(store_error)?;
    if !dry_run {
        let now = millis(periods.now);
        sqlx::query(CREDIT).bind(now).execute(&mut *conn).await.map_err(store_error)?;
        for statement in [LEDGER, AUDIT] {
            let query = sqlx::query(statement).bind(now).bind(actor.name).bind(actor.key);
            query.execute(&mut *conn).await.map_err(store_error)?;
        }
    }
    let refilled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM temp.refill_batch")
        .fetch_one(&mut *conn)
        .await
        .map_err(store_error)?;
    let rows =
        sqlx::query("SELECT id, name, period, last_start, label, delta FROM temp.refill_batch ORDER BY id LIMIT ?")
            .bind(SWEEP_SAMPLE as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
    let keys = rows.iter().map(|row| refilled_key(row, periods)).collect::<StoreResult<_>>()?;
    sqlx::query("DELETE FROM temp.refill_batch").execute(&mut *conn).await.map_err(store_error)?;
    Ok(RefillReport { refilled: refilled as u64, keys })
}

fn refilled_key(row: &SqliteRow, periods: &RefillPeriods) -> StoreResult<RefilledKey> {
    let period = stored_period(&get::<String>(row, "period")?)?;
    Ok(RefilledKey {
        id: get::<Hyphenated>(row, "id")?.into_uuid(),
        name: get(row, "name")?,
        period: get(row, "label")?,
        added: crate::domain::Money::from_micros(get(row, "delta")?),
        missed_periods: RefilledKey::missed(period, from_millis(get(row, "last_start")?)?, periods.now),
    })
}
