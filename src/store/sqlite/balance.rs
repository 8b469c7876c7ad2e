//! Balance adjustments of prepaid keys and their ledger.

use sqlx::sqlite::SqliteConnection;
use uuid::Uuid;

use super::rows::{get, ledger_from_row, millis};
use super::{SqliteStore, conflict_as, insert_audit, store_error};
use crate::domain::money::MAX_AMOUNT;
use crate::domain::{LedgerEntry, Money, remaining};
use crate::store::{AdjustOutcome, AuditRecord, BalanceAdjustment, BalanceChange, StoreError, StoreResult};

macro_rules! ledger_columns {
    () => {
        "SELECT id, api_key_id, at, actor, actor_key, delta_micros, credited_after, note, idempotency_key FROM balance_ledger"
    };
}

pub(super) async fn ledger(store: &SqliteStore, key_id: Uuid, limit: Option<u32>) -> StoreResult<Vec<LedgerEntry>> {
    // The newest `limit` rows (a negative LIMIT means none), turned back to oldest first.
    let rows = sqlx::query(concat!(
        "SELECT * FROM (",
        ledger_columns!(),
        " WHERE api_key_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id"
    ))
    .bind(key_id.hyphenated())
    .bind(limit.map_or(-1, i64::from))
    .fetch_all(&store.pool)
    .await
    .map_err(store_error)?;
    rows.iter().map(ledger_from_row).collect()
}

/// Applies an adjustment, or tells why not, and the key's used total when it was applied.
pub(super) async fn adjust_with_used(
    store: &SqliteStore,
    adjustment: &BalanceAdjustment,
) -> StoreResult<(AdjustOutcome, Option<Money>)> {
    if let BalanceChange::Add(amount) = adjustment.change
        && let Some(applied) = add_in_one_statement(store, adjustment, amount).await?
    {
        return Ok(applied);
    }
    // Refused, a reused idempotency key, or a new credited total: the transaction decides
    // again under the write lock, and explains a refusal.
    adjust_in_transaction(store, adjustment).await
}

/// A top-up or deduction through the `balance_additions` trigger (migration 0005): one
/// statement. `None` when the rules refused it or its idempotency key is taken, with
/// nothing changed.
async fn add_in_one_statement(
    store: &SqliteStore,
    adjustment: &BalanceAdjustment,
    amount: Money,
) -> StoreResult<Option<(AdjustOutcome, Option<Money>)>> {
    // The row is selected from the key only when the addition is allowed; RETURNING runs
    // after the trigger, under the same write lock, so the newest ledger row is this one.
    let applied = sqlx::query(
        "INSERT INTO balance_additions (api_key_id, delta_micros, delta_text, credited_after, used_micros, \
         at, actor, actor_key, action, note, idempotency_key) \
         SELECT ?1, ?2, ?3, credited_micros + ?2, used_micros, ?4, ?5, ?10, ?6, ?7, ?8 FROM api_keys \
         WHERE id = ?1 AND is_standalone = 1 AND credited_micros IS NOT NULL \
         AND (?2 >= 0 OR -?2 <= MAX(0, credited_micros - used_micros)) \
         AND credited_micros + ?2 BETWEEN 0 AND ?9 \
         RETURNING (SELECT MAX(id) FROM balance_ledger) AS ledger_id, credited_after, used_micros",
    )
    .bind(adjustment.key_id.hyphenated())
    .bind(amount.micros())
    .bind(amount.to_decimal_string())
    .bind(millis(adjustment.at))
    .bind(&adjustment.actor)
    .bind(adjustment.change.audit_action())
    .bind(&adjustment.note)
    .bind(&adjustment.idempotency_key)
    .bind(MAX_AMOUNT.micros())
    .bind(&adjustment.actor_key)
    .fetch_optional(&store.pool)
    .await;
    let row = match applied.map_err(store_error) {
        Ok(Some(row)) => row,
        Ok(None) | Err(StoreError::Conflict(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    let entry = LedgerEntry {
        id: get(&row, "ledger_id")?,
        api_key_id: adjustment.key_id,
        at: adjustment.at,
        actor: adjustment.actor.clone(),
        actor_key: adjustment.actor_key.clone(),
        delta: amount,
        credited_after: Some(Money::from_micros(get(&row, "credited_after")?)),
        note: adjustment.note.clone(),
        idempotency_key: adjustment.idempotency_key.clone(),
    };
    Ok(Some((AdjustOutcome::Applied(entry), Some(Money::from_micros(get(&row, "used_micros")?)))))
}

/// Applies an adjustment inside one write transaction, or tells why not.
async fn adjust_in_transaction(
    store: &SqliteStore,
    adjustment: &BalanceAdjustment,
) -> StoreResult<(AdjustOutcome, Option<Money>)> {
    let mut tx = store.begin_write().await?;
    if let Some(idempotency_key) = &adjustment.idempotency_key
        && let Some(previous) = ledger_by_idempotency_key(&mut tx, idempotency_key).await?
    {
        return Ok((replay_outcome(adjustment, previous), None));
    }
    // Reads happen under the write lock. An addition needs none up front: its conditional
    // `UPDATE` decides, and only a refusal is explained by reading the key. Setting the
    // credited total reads the old one first, for the ledger's delta.
    let before = match adjustment.change {
        BalanceChange::Add(_) => None,
        BalanceChange::SetCredited(_) => balance_state(&mut tx, adjustment.key_id).await?,
    };
    let Some(Applied { credited_after, used }) = apply_change(&mut tx, adjustment).await? else {
        let state = match before {
            Some(state) => Some(state),
            None => balance_state(&mut tx, adjustment.key_id).await?,
        };
        return Ok((state.map_or(AdjustOutcome::NotFound, |state| refusal(state, adjustment.change)), None));
    };
    let delta = match adjustment.change {
        BalanceChange::Add(delta) => delta,
        BalanceChange::SetCredited(credited) => Money::from_micros(
            credited.map_or(0, Money::micros) - before.and_then(|state| state.credited).map_or(0, Money::micros),
        ),
    };
    let mut entry = LedgerEntry {
        id: 0,
        api_key_id: adjustment.key_id,
        at: adjustment.at,
        actor: adjustment.actor.clone(),
        actor_key: adjustment.actor_key.clone(),
        delta,
        credited_after,
        note: adjustment.note.clone(),
        idempotency_key: adjustment.idempotency_key.clone(),
    };
    entry.id = match insert_ledger(&mut tx, &entry).await {
        Ok(id) => id,
        // A twin with the same idempotency key committed first: report it as ours.
        Err(StoreError::Conflict(_)) if adjustment.idempotency_key.is_some() => {
            drop(tx);
            return Ok((replay_after_conflict(store, adjustment).await?, None));
        }
        Err(error) => return Err(error),
    };
    insert_audit(&mut tx, &AuditRecord::for_adjustment(&entry, adjustment.change)).await?;
    tx.commit().await.map_err(store_error)?;
    Ok((AdjustOutcome::Applied(entry), Some(used)))
}

async fn replay_after_conflict(store: &SqliteStore, adjustment: &BalanceAdjustment) -> StoreResult<AdjustOutcome> {
    let idempotency_key = adjustment.idempotency_key.as_deref().unwrap_or_default();
    let mut conn = store.pool.acquire().await.map_err(store_error)?;
    match ledger_by_idempotency_key(&mut conn, idempotency_key).await? {
        Some(previous) => Ok(replay_outcome(adjustment, previous)),
        None => Err(StoreError::Database("the idempotency key conflicted but its ledger row is gone".into())),
    }
}

/// The balance columns of a key, read inside the adjustment's transaction.
struct BalanceState {
    is_standalone: bool,
    credited: Option<Money>,
    used: Money,
}

async fn balance_state(conn: &mut SqliteConnection, key_id: Uuid) -> StoreResult<Option<BalanceState>> {
    let row = sqlx::query("SELECT is_standalone, credited_micros, used_micros FROM api_keys WHERE id = ?")
        .bind(key_id.hyphenated())
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.map(|row| {
        Ok(BalanceState {
            is_standalone: get(&row, "is_standalone")?,
            credited: get::<Option<i64>>(&row, "credited_micros")?.map(Money::from_micros),
            used: Money::from_micros(get(&row, "used_micros")?),
        })
    })
    .transpose()
}

/// The balance columns of a key right after a change applied to it.
struct Applied {
    /// `None` = unlimited.
    credited_after: Option<Money>,
    used: Money,
}

/// The one conditional `UPDATE` of an adjustment; `None` when a rule refused it (nothing changed).
async fn apply_change(conn: &mut SqliteConnection, adjustment: &BalanceAdjustment) -> StoreResult<Option<Applied>> {
    let query = match adjustment.change {
        BalanceChange::Add(delta) => sqlx::query(
            "UPDATE api_keys SET credited_micros = credited_micros + ?1, updated_at = ?2 \
             WHERE id = ?3 AND is_standalone = 1 AND credited_micros IS NOT NULL \
             AND (?1 >= 0 OR -?1 <= MAX(0, credited_micros - used_micros)) \
             AND credited_micros + ?1 BETWEEN 0 AND ?4 \
             RETURNING credited_micros, used_micros",
        )
        .bind(delta.micros()),
        BalanceChange::SetCredited(credited) => sqlx::query(
            "UPDATE api_keys SET credited_micros = ?1, updated_at = ?2 \
             WHERE id = ?3 AND is_standalone = 1 AND (?1 IS NULL OR ?1 BETWEEN 0 AND ?4) \
             RETURNING credited_micros, used_micros",
        )
        .bind(credited.map(Money::micros)),
    };
    let row = query
        .bind(millis(adjustment.at))
        .bind(adjustment.key_id.hyphenated())
        .bind(MAX_AMOUNT.micros())
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.map(|row| {
        Ok(Applied {
            credited_after: get::<Option<i64>>(&row, "credited_micros")?.map(Money::from_micros),
            used: Money::from_micros(get(&row, "used_micros")?),
        })
    })
    .transpose()
}

/// Why the conditional update refused an adjustment of an existing key.
fn refusal(before: BalanceState, change: BalanceChange) -> AdjustOutcome {
    if !before.is_standalone {
        return AdjustOutcome::NotPrepaid;
    }
    match (change, before.credited) {
        (BalanceChange::Add(_), None) => AdjustOutcome::Unlimited,
        (BalanceChange::Add(delta), Some(credited))
            if delta.is_negative() && delta.abs() > remaining(credited, before.used) =>
        {
            AdjustOutcome::InsufficientBalance { remaining: remaining(credited, before.used) }
        }
        _ => AdjustOutcome::OutOfRange,
    }
}

/// A retried adjustment is the same when it targets the same key with the same change.
fn replay_outcome(adjustment: &BalanceAdjustment, previous: LedgerEntry) -> AdjustOutcome {
    let same_change = match adjustment.change {
        BalanceChange::Add(delta) => previous.delta == delta,
        BalanceChange::SetCredited(credited) => previous.credited_after == credited,
    };
    if previous.api_key_id == adjustment.key_id && same_change {
        AdjustOutcome::Replayed(previous)
    } else {
        AdjustOutcome::IdempotencyConflict(previous)
    }
}

async fn ledger_by_idempotency_key(conn: &mut SqliteConnection, key: &str) -> StoreResult<Option<LedgerEntry>> {
    let row = sqlx::query(concat!(ledger_columns!(), " WHERE idempotency_key = ?"))
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.as_ref().map(ledger_from_row).transpose()
}

/// Appends a ledger row (its `id` is ignored) and returns the id it got.
pub(super) async fn insert_ledger(conn: &mut SqliteConnection, entry: &LedgerEntry) -> StoreResult<i64> {
    sqlx::query_scalar(
        "INSERT INTO balance_ledger (api_key_id, at, actor, actor_key, delta_micros, credited_after, note, \
         idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(entry.api_key_id.hyphenated())
    .bind(millis(entry.at))
    .bind(&entry.actor)
    .bind(&entry.actor_key)
    .bind(entry.delta.micros())
    .bind(entry.credited_after.map(Money::micros))
    .bind(&entry.note)
    .bind(&entry.idempotency_key)
    .fetch_one(&mut *conn)
    .await
    .map_err(conflict_as(|| format!("a ledger row with idempotency key {:?}", entry.idempotency_key)))
}
