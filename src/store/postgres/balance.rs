//! Balance adjustments of prepaid keys: one conditional UPDATE, then its ledger and audit rows,
//! in one transaction. The new credited total is computed by the database, never in Rust.

use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use super::insert_audit;
use super::rows::LedgerRow;
use crate::domain::money::MAX_AMOUNT;
use crate::domain::{LedgerEntry, Money, remaining};
use crate::store::{AdjustOutcome, AuditRecord, BalanceAdjustment, BalanceChange};

/// `INSERT` of a ledger row from `$1…$8`; append the conflict clause, if any, and `RETURNING`.
macro_rules! insert_ledger {
    () => {
        "INSERT INTO balance_ledger (api_key_id, at, actor, delta_micros, credited_after, note, idempotency_key, \
         actor_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    };
}

macro_rules! ledger_columns {
    () => {
        " RETURNING id, api_key_id, at, actor, actor_key, delta_micros, credited_after, note, idempotency_key"
    };
}

/// A top-up or deduction in one autocommit statement: the conditional update, its ledger row
/// and its audit row (details built in SQL as `AuditRecord::for_adjustment` builds them: amounts as
/// `Money::to_decimal_string`). Returns the ledger row and the key's `used_micros`; no row when
/// the key refused the change. A reused idempotency key fails the whole statement on the
/// ledger's unique index, so nothing is applied twice.
const ADD_IN_ONE_STATEMENT: &str = "WITH changed AS ( \
       UPDATE api_keys SET credited_micros = credited_micros + $2, updated_at = $3 \
       WHERE id = $1 AND is_standalone AND credited_micros IS NOT NULL \
         AND ($2 >= 0 OR $2 >= -GREATEST(0, credited_micros - used_micros)) \
         AND credited_micros::numeric + $2 BETWEEN 0 AND $4 \
       RETURNING credited_micros, used_micros), \
     entry AS ( \
       INSERT INTO balance_ledger (api_key_id, at, actor, actor_key, delta_micros, credited_after, note, \
         idempotency_key) \
       SELECT $1, $3, $5, $10, $2, credited_micros, $6, $7 FROM changed \
       RETURNING id, api_key_id, at, actor, actor_key, delta_micros, credited_after, note, idempotency_key), \
     audit AS ( \
       INSERT INTO audit_log (at, actor, actor_key, action, api_key_id, details) \
       SELECT $3, $5, $10, $8, $1, jsonb_build_object('delta', $9::text, 'credited_after', \
         (credited_after / 1000000)::text || '.' || lpad((credited_after % 1000000)::text, 6, '0'), \
         'note', $6::text) \
       FROM entry) \
     SELECT entry.*, changed.used_micros FROM entry, changed";

#[derive(sqlx::FromRow)]
struct AppliedRow {
    #[sqlx(flatten)]
    entry: LedgerRow,
    used_micros: i64,
}

/// `Money::to_decimal_string` in SQL above: whole dollars, a point, six digits (non-negative).
const _: () = assert!(crate::domain::money::MICROS_PER_USD == 1_000_000);

/// Applies an adjustment, or tells why not, and the key's used total when it was applied here.
/// Idempotent by the adjustment's idempotency key.
pub(super) async fn adjust_with_used(
    pool: &PgPool,
    adjustment: &BalanceAdjustment,
) -> Result<(AdjustOutcome, Option<i64>), sqlx::Error> {
    let BalanceChange::Add(amount) = adjustment.change else {
        return Ok((adjust(pool, adjustment).await?, None));
    };
    let applied = sqlx::query_as::<_, AppliedRow>(ADD_IN_ONE_STATEMENT)
        .bind(adjustment.key_id)
        .bind(amount.micros())
        .bind(adjustment.at)
        .bind(MAX_AMOUNT.micros())
        .bind(&adjustment.actor)
        .bind(&adjustment.note)
        .bind(&adjustment.idempotency_key)
        .bind(adjustment.change.audit_action())
        .bind(amount.to_decimal_string())
        .bind(&adjustment.actor_key)
        .fetch_optional(pool)
        .await;
    match applied {
        Ok(Some(row)) => Ok((AdjustOutcome::Applied(LedgerEntry::from(row.entry)), Some(row.used_micros))),
        // Refused, or the idempotency key is taken: the transaction path tells which.
        Ok(None) => Ok((adjust(pool, adjustment).await?, None)),
        Err(sqlx::Error::Database(error)) if error.constraint() == Some("balance_ledger_idempotency_key") => {
            Ok((adjust(pool, adjustment).await?, None))
        }
        Err(error) => Err(error),
    }
}

/// Applies an adjustment, or tells why not. Idempotent by the adjustment's idempotency key.
pub(super) async fn adjust(pool: &PgPool, adjustment: &BalanceAdjustment) -> Result<AdjustOutcome, sqlx::Error> {
    loop {
        let mut tx = pool.begin().await?;
        if let Some(entry) = entry_with_idempotency_key(&mut tx, adjustment).await? {
            return Ok(replay(entry, adjustment));
        }
        let (delta, credited_after) = match update_credit(&mut tx, adjustment).await? {
            Ok(applied) => applied,
            Err(refusal) => return Ok(refusal),
        };
        let entry = LedgerEntry {
            id: 0,
            api_key_id: adjustment.key_id,
            at: adjustment.at,
            actor: adjustment.actor.clone(),
            actor_key: adjustment.actor_key.clone(),
            delta: Money::from_micros(delta),
            credited_after: credited_after.map(Money::from_micros),
            note: adjustment.note.clone(),
            idempotency_key: adjustment.idempotency_key.clone(),
        };
        let query = sqlx::query_as(concat!(
            insert_ledger!(),
            " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
            ledger_columns!()
        ));
        let Some(row) = bind_ledger_entry(query, &entry).fetch_optional(&mut *tx).await? else {
            // A twin with the same idempotency key committed while this one ran: undo the change;
            // the next round finds the twin's entry and replays it.
            tx.rollback().await?;
            continue;
        };
        let entry = LedgerEntry::from(row);
        insert_audit(&mut tx, &AuditRecord::for_adjustment(&entry, adjustment.change)).await?;
        tx.commit().await?;
        return Ok(AdjustOutcome::Applied(entry));
    }
}

/// Writes the ledger row of a new key's initial credit.
pub(super) async fn insert_ledger_entry(connection: &mut PgConnection, entry: &LedgerEntry) -> Result<(), sqlx::Error> {
    bind_ledger_entry(sqlx::query_as(concat!(insert_ledger!(), ledger_columns!())), entry)
        .fetch_one(connection)
        .await?;
    Ok(())
}

fn bind_ledger_entry<'q>(
    query: QueryAs<'q, Postgres, LedgerRow, PgArguments>,
    entry: &'q LedgerEntry,
) -> QueryAs<'q, Postgres, LedgerRow, PgArguments> {
    query
        .bind(entry.api_key_id)
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(entry.delta.micros())
        .bind(entry.credited_after.map(Money::micros))
        .bind(&entry.note)
        .bind(&entry.idempotency_key)
        .bind(&entry.actor_key)
}

async fn entry_with_idempotency_key(
    connection: &mut PgConnection,
    adjustment: &BalanceAdjustment,
) -> Result<Option<LedgerEntry>, sqlx::Error> {
    let Some(idempotency_key) = &adjustment.idempotency_key else {
        return Ok(None);
    };
    let row: Option<LedgerRow> = sqlx::query_as(
        "SELECT id, api_key_id, at, actor, actor_key, delta_micros, credited_after, note, idempotency_key \
         FROM balance_ledger WHERE idempotency_key = $1",
    )
    .bind(idempotency_key)
    .fetch_optional(connection)
    .await?;
    Ok(row.map(LedgerEntry::from))
}

/// The earlier entry of an idempotency key: a replay when it made the same change to the same key.
fn replay(entry: LedgerEntry, adjustment: &BalanceAdjustment) -> AdjustOutcome {
    let same_change = match adjustment.change {
        BalanceChange::Add(amount) => entry.delta == amount,
        BalanceChange::SetCredited(credited) => entry.credited_after == credited,
    };
    if entry.api_key_id == adjustment.key_id && same_change {
        AdjustOutcome::Replayed(entry)
    } else {
        AdjustOutcome::IdempotencyConflict(entry)
    }
}

/// Changes the credited total in one conditional statement: `Ok((delta, credited_after))`, or
/// `Err` with the reason the key refused it.
async fn update_credit(
    connection: &mut PgConnection,
    adjustment: &BalanceAdjustment,
) -> Result<Result<(i64, Option<i64>), AdjustOutcome>, sqlx::Error> {
    loop {
        let applied: Option<(i64, Option<i64>)> = match adjustment.change {
            BalanceChange::Add(amount) => {
                // A deduction may take at most what remains; the total stays within 0..=MAX.
                // The range check is in numeric, so no amount can overflow BIGINT.
                sqlx::query_as(
                    "UPDATE api_keys SET credited_micros = credited_micros + $2, updated_at = $3 \
                     WHERE id = $1 AND is_standalone AND credited_micros IS NOT NULL \
                       AND ($2 >= 0 OR $2 >= -GREATEST(0, credited_micros - used_micros)) \
                       AND credited_micros::numeric + $2 BETWEEN 0 AND $4 \
                     RETURNING $2, credited_micros",
                )
                .bind(adjustment.key_id)
                .bind(amount.micros())
                .bind(adjustment.at)
                .bind(MAX_AMOUNT.micros())
                .fetch_optional(&mut *connection)
                .await?
            }
            BalanceChange::SetCredited(credited) => {
                // The old total comes from the row locked by `old`, i.e. the version this UPDATE
                // replaces, even when a concurrent adjustment committed just before.
                sqlx::query_as(
                    "WITH old AS (SELECT id, credited_micros FROM api_keys WHERE id = $1 FOR UPDATE) \
                     UPDATE api_keys k SET credited_micros = $2, updated_at = $3 FROM old \
                     WHERE k.id = old.id AND k.is_standalone AND ($2::bigint IS NULL OR $2 BETWEEN 0 AND $4) \
                     RETURNING COALESCE($2, 0) - COALESCE(old.credited_micros, 0), k.credited_micros",
                )
                .bind(adjustment.key_id)
                .bind(credited.map(Money::micros))
                .bind(adjustment.at)
                .bind(MAX_AMOUNT.micros())
                .fetch_optional(&mut *connection)
                .await?
            }
        };
        if let Some(applied) = applied {
            return Ok(Ok(applied));
        }
        // Nothing matched: read the key (locked, so it cannot change again) to say why.
        let state: Option<(bool, Option<i64>, i64)> =
            sqlx::query_as("SELECT is_standalone, credited_micros, used_micros FROM api_keys WHERE id = $1 FOR UPDATE")
                .bind(adjustment.key_id)
                .fetch_optional(&mut *connection)
                .await?;
        if let Some(refusal) = refusal(adjustment.change, state) {
            return Ok(Err(refusal));
        }
        // The key changed between the two statements and now accepts the change: apply it.
    }
}

/// Why a key in `state` (prepaid?, credited, used) refuses `change`; `None` if it accepts it.
fn refusal(change: BalanceChange, state: Option<(bool, Option<i64>, i64)>) -> Option<AdjustOutcome> {
    let Some((is_standalone, credited, used)) = state else {
        return Some(AdjustOutcome::NotFound);
    };
    if !is_standalone {
        return Some(AdjustOutcome::NotPrepaid);
    }
    let in_range = |total: i128| (0..=i128::from(MAX_AMOUNT.micros())).contains(&total);
    match change {
        BalanceChange::Add(amount) => {
            let Some(credited) = credited else {
                return Some(AdjustOutcome::Unlimited);
            };
            let left = remaining(Money::from_micros(credited), Money::from_micros(used));
            if amount.is_negative() && amount.abs() > left {
                Some(AdjustOutcome::InsufficientBalance { remaining: left })
            } else if !in_range(i128::from(credited) + i128::from(amount.micros())) {
                Some(AdjustOutcome::OutOfRange)
            } else {
                None
            }
        }
        BalanceChange::SetCredited(credited) => {
            credited.filter(|total| !in_range(i128::from(total.micros()))).map(|_| AdjustOutcome::OutOfRange)
        }
    }
}

/// Ledger rows of a key, oldest first; with a limit, the most recent `limit` rows.
pub(super) async fn ledger(pool: &PgPool, key_id: Uuid, limit: Option<u32>) -> Result<Vec<LedgerEntry>, sqlx::Error> {
    // The most recent `limit` rows (all when NULL), handed back oldest first.
    let rows: Vec<LedgerRow> = sqlx::query_as(
        "SELECT * FROM ( \
           SELECT id, api_key_id, at, actor, actor_key, delta_micros, credited_after, note, idempotency_key \
           FROM balance_ledger WHERE api_key_id = $1 ORDER BY id DESC LIMIT $2) recent \
         ORDER BY id",
    )
    .bind(key_id)
    .bind(limit.map(i64::from))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(LedgerEntry::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREPAID: Option<(bool, Option<i64>, i64)> = Some((true, Some(10_000_000), 4_000_000));

    #[test]
    fn refusals_name_the_reason() {
        let add = |micros| BalanceChange::Add(Money::from_micros(micros));
        assert_eq!(refusal(add(1), None), Some(AdjustOutcome::NotFound));
        assert_eq!(refusal(add(1), Some((false, None, 0))), Some(AdjustOutcome::NotPrepaid));
        assert_eq!(refusal(add(1), Some((true, None, 0))), Some(AdjustOutcome::Unlimited));
        assert_eq!(
            refusal(add(-6_000_001), PREPAID),
            Some(AdjustOutcome::InsufficientBalance { remaining: Money::from_micros(6_000_000) })
        );
        assert_eq!(refusal(add(MAX_AMOUNT.micros()), PREPAID), Some(AdjustOutcome::OutOfRange));
        assert_eq!(refusal(add(i64::MAX), PREPAID), Some(AdjustOutcome::OutOfRange));
        let set = |micros: i64| BalanceChange::SetCredited(Some(Money::from_micros(micros)));
        assert_eq!(refusal(set(-1), PREPAID), Some(AdjustOutcome::OutOfRange));
    }

    #[test]
    fn accepted_changes_have_no_refusal() {
        assert_eq!(refusal(BalanceChange::Add(Money::from_micros(-6_000_000)), PREPAID), None);
        assert_eq!(refusal(BalanceChange::SetCredited(None), PREPAID), None);
        assert_eq!(refusal(BalanceChange::SetCredited(Some(MAX_AMOUNT)), PREPAID), None);
    }
}
