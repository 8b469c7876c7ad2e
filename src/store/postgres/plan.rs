//! Money over time on PostgreSQL: a key's budget, refill and low-balance columns, the budget's
//! spend for `verify`, and the sweep's refill step.
//!
//! The refill step is one statement that locks the keys due a refill (in id
//! order, so concurrent sweepers queue rather than deadlock), credits them, and appends their
//! ledger and audit rows. A key is due while the period it was last refilled for
//! (`refill_last_period_start`) lies before its current period; crediting it moves that mark.
//! A second sweeper blocked on the same rows re-reads them once the first commits, finds them no
//! longer due, and skips them: exactly one refill per key and period, with no sweep lock. The
//! ledger's unique idempotency key (`refill:<id>:month:2026-12-01`) backs that up: a duplicate
//! would fail the whole statement.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::money::MAX_AMOUNT;
use crate::domain::{ApiKey, MoneyPlan, Period, PlanPatch};
use crate::store::plan::{PlanColumns, RefillPeriods, RefillReport, RefilledKey};
use crate::store::{Actor, SWEEP_SAMPLE};

/// Writes the plan columns a patch changes (nothing when it changes none), in the caller's
/// transaction.
pub(super) async fn apply_plan_patch(conn: &mut PgConnection, id: Uuid, patch: &PlanPatch) -> Result<(), sqlx::Error> {
    if *patch == PlanPatch::default() {
        return Ok(());
    }
    // The columns of the patch's new values; a cleared part is all NULL.
    let new = PlanColumns::of(&patch.applied_to(MoneyPlan::default()));
    sqlx::query(
        "UPDATE api_keys SET \
           budget_micros = CASE WHEN $2 THEN $3 ELSE budget_micros END, \
           budget_period = CASE WHEN $2 THEN $4 ELSE budget_period END, \
           refill_micros = CASE WHEN $5 THEN $6 ELSE refill_micros END, \
           refill_period = CASE WHEN $5 THEN $7 ELSE refill_period END, \
           refill_mode = CASE WHEN $5 THEN $8 ELSE refill_mode END, \
           refill_last_period_start = CASE WHEN $5 THEN $9 ELSE refill_last_period_start END, \
           low_balance_micros = CASE WHEN $10 THEN $11 ELSE low_balance_micros END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(!patch.budget.is_keep())
    .bind(new.budget_micros)
    .bind(new.budget_period)
    .bind(!patch.refill.is_keep())
    .bind(new.refill_micros)
    .bind(new.refill_period)
    .bind(new.refill_mode)
    .bind(new.refill_last_period_start)
    .bind(!patch.low_balance.is_keep())
    .bind(new.low_balance_micros)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes the plans of newly inserted keys that have one (most keys have none, so the inserts
/// of keys leave these columns out).
pub(super) async fn write_plans(conn: &mut PgConnection, keys: &[ApiKey]) -> Result<(), sqlx::Error> {
    for key in keys.iter().filter(|key| key.money != MoneyPlan::default()) {
        apply_plan_patch(conn, key.id, &PlanPatch::writing(key.money)).await?;
    }
    Ok(())
}

/// Enabled, unexpired prepaid keys with a refill whose current period has not been refilled:
/// `$1` now; `$2`..`$4` the starts of the current day, week and month (the day's is the latest,
/// so `< $2` reads the index `api_keys_refill_due`); `$5`..`$7` their labels; `$8`..`$10` the
/// tails of their idempotency keys; `$11` the largest credited total.
macro_rules! due {
    () => {
        "SELECT id, name, refill_period, refill_last_period_start AS last_start, \
           CASE refill_period WHEN 'day' THEN $2 WHEN 'week' THEN $3 ELSE $4 END AS start, \
           CASE refill_period WHEN 'day' THEN $5 WHEN 'week' THEN $6 ELSE $7 END AS label, \
           CASE refill_period WHEN 'day' THEN $8 WHEN 'week' THEN $9 ELSE $10 END AS suffix, \
           CASE refill_mode WHEN 'add' THEN refill_micros \
             ELSE GREATEST(0, refill_micros - GREATEST(0, credited_micros - used_micros)) END AS delta \
         FROM api_keys \
         WHERE refill_micros IS NOT NULL AND refill_last_period_start < $2 \
           AND is_active AND is_standalone AND credited_micros IS NOT NULL \
           AND credited_micros <= $11 - refill_micros AND (expires_at IS NULL OR expires_at > $1) \
           AND refill_last_period_start < CASE refill_period WHEN 'day' THEN $2 WHEN 'week' THEN $3 ELSE $4 END"
    };
}

/// The first `$12` keys of a set of refills, by id, each row with the count of the whole set.
macro_rules! sample {
    ($set:literal) => {
        concat!(
            "SELECT id, name, refill_period, last_start, label, delta, COUNT(*) OVER () AS total FROM ",
            $set,
            " ORDER BY id LIMIT $12"
        )
    };
}

const PREVIEW: &str = concat!("WITH due AS (", due!(), ") ", sample!("due"));

/// The audit details are those `AuditRecord::for_adjustment` writes; `$13` is the actor, `$14`
/// their key.
const REFILL: &str = concat!(
    "WITH due AS (",
    due!(),
    " ORDER BY id FOR UPDATE), \
     refilled AS ( \
       UPDATE api_keys k SET credited_micros = k.credited_micros + due.delta, \
         refill_last_period_start = due.start, updated_at = $1 \
       FROM due WHERE k.id = due.id \
       RETURNING k.id, due.name, due.refill_period, due.last_start, due.label, due.suffix, due.delta, \
         k.credited_micros AS credited_after), \
     ledger AS ( \
       INSERT INTO balance_ledger (api_key_id, at, actor, actor_key, delta_micros, credited_after, note, \
         idempotency_key) \
       SELECT id, $1, $13, $14, delta, credited_after, 'refill (' || label || ')', 'refill:' || id || ':' || suffix \
       FROM refilled), \
     audit AS ( \
       INSERT INTO audit_log (at, actor, actor_key, action, api_key_id, details) \
       SELECT $1, $13, $14, 'refill', id, jsonb_build_object( \
         'delta', (delta / 1000000)::text || '.' || lpad((delta % 1000000)::text, 6, '0'), \
         'credited_after', (credited_after / 1000000)::text || '.' || lpad((credited_after % 1000000)::text, 6, '0'), \
         'note', 'refill (' || label || ')') \
       FROM refilled) ",
    sample!("refilled")
);

#[derive(sqlx::FromRow)]
struct RefillRow {
    id: Uuid,
    name: String,
    refill_period: String,
    last_start: DateTime<Utc>,
    label: String,
    delta: i64,
    total: i64,
}

/// Refills every due key (or, in a dry run, only reports them), in one statement.
pub(super) async fn refill_due(
    pool: &PgPool,
    periods: &RefillPeriods,
    actor: Actor<'_>,
    dry_run: bool,
) -> Result<RefillReport, sqlx::Error> {
    let mut query = sqlx::query_as::<_, RefillRow>(if dry_run { PREVIEW } else { REFILL }).bind(periods.now);
    for start in periods.starts {
        query = query.bind(start);
    }
    for text in periods.labels.iter().chain(&periods.key_suffixes) {
        query = query.bind(text);
    }
    query = query.bind(MAX_AMOUNT.micros()).bind(SWEEP_SAMPLE as i64);
    if !dry_run {
        query = query.bind(actor.name).bind(actor.key);
    }
    let rows = query.fetch_all(pool).await?;
    report(rows, periods)
}

fn report(rows: Vec<RefillRow>, periods: &RefillPeriods) -> Result<RefillReport, sqlx::Error> {
    let refilled = rows.first().map_or(0, |row| row.total as u64);
    let keys = rows
        .into_iter()
        .take(SWEEP_SAMPLE)
        .map(|row| {
            let period = Period::parse("refill period", &row.refill_period)
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
            Ok(RefilledKey {
                id: row.id,
                name: row.name,
                period: row.label,
                added: crate::domain::Money::from_micros(row.delta),
                missed_periods: RefilledKey::missed(period, row.last_start, periods.now),
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(RefillReport { refilled, keys })
}
