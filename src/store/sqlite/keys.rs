//! Keys one at a time: insert, look up, count, change, purge, and the admission lookup.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, Type};
use uuid::Uuid;

use super::rows::{admission_from_row, allow_list_json, get, key_from_row, millis};
use super::{SqliteStore, balance, bulk, insert_audit, plan, store_error};
use crate::domain::{ApiKey, CurrentPeriods, KeyCounts, KeyPatch, LedgerEntry, Patch};
use crate::store::{AuditRecord, SecretRoll, StoreResult, VerifyLookup};

pub(super) async fn insert_key(
    store: &SqliteStore,
    key: &ApiKey,
    initial_credit: Option<&LedgerEntry>,
    audit: &AuditRecord,
) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    bulk::insert_keys(&mut tx, std::slice::from_ref(key), || format!("a key with id {} or with the same hash", key.id))
        .await?;
    if let Some(entry) = initial_credit {
        balance::insert_ledger(&mut tx, entry).await?;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.map_err(store_error)
}

pub(super) async fn key(store: &SqliteStore, id: Uuid) -> StoreResult<Option<ApiKey>> {
    let row = sqlx::query(concat!(key_columns!(), key_from!(), " WHERE k.id = ?"))
        .bind(id.hyphenated())
        .fetch_optional(&store.pool)
        .await
        .map_err(store_error)?;
    row.as_ref().map(key_from_row).transpose()
}

pub(super) async fn keys_by_id_prefix(store: &SqliteStore, prefix: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
    // A range on the primary key: ids only hold `[0-9a-f-]`, all below '~'.
    let low = prefix.to_ascii_lowercase();
    let high = format!("{low}~");
    store
        .fetch_keys(
            sqlx::query(concat!(key_columns!(), key_from!(), " WHERE k.id >= ? AND k.id < ? ORDER BY k.id LIMIT ?"))
                .bind(low)
                .bind(high)
                .bind(i64::from(limit)),
        )
        .await
}

pub(super) async fn keys_by_name(store: &SqliteStore, name: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
    store
        .fetch_keys(
            sqlx::query(concat!(key_columns!(), key_from!(), " WHERE k.name = ? ORDER BY k.id LIMIT ?"))
                .bind(name)
                .bind(i64::from(limit)),
        )
        .await
}

pub(super) async fn count_keys(store: &SqliteStore, now: DateTime<Utc>) -> StoreResult<KeyCounts> {
    // Counted as `ApiKey::status` derives it: disabled wins over expired.
    let row = sqlx::query(
        "SELECT COUNT(*) AS total, \
         COALESCE(SUM(is_active = 0), 0) AS disabled, \
         COALESCE(SUM(is_active = 1 AND expires_at <= ?), 0) AS expired \
         FROM api_keys",
    )
    .bind(millis(now))
    .fetch_one(&store.pool)
    .await
    .map_err(store_error)?;
    Ok(KeyCounts { total: get(&row, "total")?, disabled: get(&row, "disabled")?, expired: get(&row, "expired")? })
}

pub(super) async fn update_key(
    store: &SqliteStore,
    id: Uuid,
    patch: &KeyPatch,
    audit: &AuditRecord,
) -> StoreResult<Option<ApiKey>> {
    let mut builder = QueryBuilder::new("UPDATE api_keys SET updated_at = ");
    builder.push_bind(millis(audit.at));
    if let Some(name) = &patch.name {
        builder.push(", name = ").push_bind(name.clone());
    }
    push_patch(&mut builder, "allowed_providers", &patch.allowed_providers, |list| allow_list_json(Some(list)));
    push_patch(&mut builder, "allowed_api_formats", &patch.allowed_api_formats, |list| allow_list_json(Some(list)));
    push_patch(&mut builder, "allowed_models", &patch.allowed_models, |list| allow_list_json(Some(list)));
    push_patch(&mut builder, "rate_limit", &patch.rate_limit, |limit| Some(*limit));
    push_patch(&mut builder, "concurrent_limit", &patch.concurrent_limit, |limit| Some(*limit));
    push_patch(&mut builder, "expires_at", &patch.expires_at, |at| Some(millis(*at)));
    push_patch(&mut builder, "auto_delete_on_expiry", &patch.auto_delete_on_expiry, |flag| Some(*flag));
    plan::push_plan_patch(&mut builder, &patch.money);
    builder.push(" WHERE id = ").push_bind(id.hyphenated());
    change_key(store, id, builder, audit).await
}

pub(super) async fn set_key_active(
    store: &SqliteStore,
    id: Uuid,
    active: bool,
    audit: &AuditRecord,
) -> StoreResult<Option<ApiKey>> {
    let mut builder = QueryBuilder::new("UPDATE api_keys SET is_active = ");
    builder.push_bind(active).push(", updated_at = ").push_bind(millis(audit.at));
    builder.push(" WHERE id = ").push_bind(id.hyphenated());
    change_key(store, id, builder, audit).await
}

pub(super) async fn roll_key(
    store: &SqliteStore,
    id: Uuid,
    roll: &SecretRoll,
    audit: &AuditRecord,
) -> StoreResult<Option<ApiKey>> {
    // The right-hand sides read the row as it was: the old hash moves to the previous slot.
    let mut builder = QueryBuilder::new("UPDATE api_keys SET previous_key_hash = CASE WHEN ");
    builder.push_bind(roll.previous_until.map(millis)).push(" IS NULL THEN NULL ELSE key_hash END");
    builder.push(", previous_key_expires_at = ").push_bind(roll.previous_until.map(millis));
    builder.push(", key_hash = ").push_bind(roll.hash.clone());
    builder.push(", key_ciphertext = ").push_bind(roll.ciphertext.clone());
    builder.push(", key_hint = ").push_bind(roll.hint.clone());
    builder.push(", updated_at = ").push_bind(millis(audit.at));
    builder.push(" WHERE id = ").push_bind(id.hyphenated());
    change_key(store, id, builder, audit).await
}

pub(super) async fn purge_key(store: &SqliteStore, id: Uuid, audit: &AuditRecord) -> StoreResult<bool> {
    // The daily rollup goes into the purged keys' first, then by the foreign key; usage rows
    // stay, with the purged key's id.
    let mut tx = store.begin_write().await?;
    sqlx::query(add_to_purged!("api_key_id = ?1"))
        .bind(id.hyphenated())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    let delete = sqlx::query("DELETE FROM api_keys WHERE id = ?").bind(id.hyphenated());
    let found = delete.execute(&mut *tx).await.map_err(store_error)?.rows_affected() > 0;
    if found {
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(store_error)?;
    }
    Ok(found)
}

pub(super) async fn verify_lookup(
    store: &SqliteStore,
    key_hash: &str,
    rate_window_start: DateTime<Utc>,
    periods: CurrentPeriods,
) -> StoreResult<Option<VerifyLookup>> {
    let [day, week, month, today] = plan::budget_days(periods);
    let row = sqlx::query(concat!(
        "SELECT ",
        admission_columns!(),
        ", CASE WHEN k.rate_limit IS NULL THEN 0 ELSE \
         (SELECT COUNT(*) FROM usage WHERE api_key_id = k.id AND created_at > ?) END AS recent_requests, ",
        budget_spent!(),
        " AS budget_spent",
        key_from!(),
        " WHERE k.key_hash = ? OR (k.previous_key_hash = ? AND k.previous_key_expires_at > ?)"
    ))
    .bind(millis(rate_window_start))
    .bind(day)
    .bind(week)
    .bind(month)
    .bind(today)
    .bind(key_hash)
    .bind(key_hash)
    .bind(millis(periods.now))
    .fetch_optional(&store.pool)
    .await
    .map_err(store_error)?;
    row.map(|row| Ok(VerifyLookup { key: admission_from_row(&row)?, recent_requests: get(&row, "recent_requests")? }))
        .transpose()
}

pub(super) async fn touch_last_used(
    store: &SqliteStore,
    id: Uuid,
    at: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)")
        .bind(millis(at))
        .bind(id.hyphenated())
        .bind(millis(stale_before))
        .execute(&store.pool)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Runs a single-row `UPDATE` of a key with its audit row; returns the key as it now is.
async fn change_key(
    store: &SqliteStore,
    id: Uuid,
    mut update: QueryBuilder<Sqlite>,
    audit: &AuditRecord,
) -> StoreResult<Option<ApiKey>> {
    let mut tx = store.begin_write().await?;
    let changed = update.build().execute(&mut *tx).await.map_err(store_error)?.rows_affected() > 0;
    if !changed {
        return Ok(None);
    }
    insert_audit(&mut tx, audit).await?;
    let row = sqlx::query(concat!(key_columns!(), key_from!(), " WHERE k.id = ?"))
        .bind(id.hyphenated())
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
    let key = key_from_row(&row)?;
    tx.commit().await.map_err(store_error)?;
    Ok(Some(key))
}

/// `column = NULL` for a clear, `column = value` for a set, nothing for keep.
fn push_patch<T, V>(
    builder: &mut QueryBuilder<Sqlite>,
    column: &'static str,
    patch: &Patch<T>,
    encode: impl Fn(&T) -> Option<V>,
) where
    V: for<'q> sqlx::Encode<'q, Sqlite> + Type<Sqlite> + 'static,
{
    let value = match patch {
        Patch::Keep => return,
        Patch::Clear => None,
        Patch::Set(value) => encode(value),
    };
    builder.push(format_args!(", {column} = ")).push_bind(value);
}
