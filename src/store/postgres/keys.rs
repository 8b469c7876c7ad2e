//! Keys one at a time: insert, look up, count, change, purge, and the admission lookup.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use super::rows::{KeyRow, VerifyRow, allow_list};
use super::{balance, insert_audit, list, plan};
use crate::domain::{ApiKey, CurrentPeriods, KeyCounts, KeyPatch, LedgerEntry, Patch};
use crate::store::{AuditRecord, SecretRoll, VerifyLookup};

pub(super) async fn insert_key(
    pool: &PgPool,
    key: &ApiKey,
    initial_credit: Option<&LedgerEntry>,
    audit: &AuditRecord,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, key_hash, key_ciphertext, key_hint, name, allowed_providers, \
         allowed_api_formats, allowed_models, rate_limit, concurrent_limit, expires_at, is_standalone, \
         credited_micros, used_micros, auto_delete_on_expiry, is_active, last_used_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(key.id)
    .bind(key.user_id)
    .bind(&key.key_hash)
    .bind(&key.key_ciphertext)
    .bind(&key.key_hint)
    .bind(&key.name)
    .bind(allow_list(key.allowed_providers.as_deref()))
    .bind(allow_list(key.allowed_api_formats.as_deref()))
    .bind(allow_list(key.allowed_models.as_deref()))
    .bind(key.rate_limit)
    .bind(key.concurrent_limit)
    .bind(key.expires_at)
    .bind(key.is_standalone)
    .bind(key.credited.map(|m| m.micros()))
    .bind(key.used.micros())
    .bind(key.auto_delete_on_expiry)
    .bind(key.is_active)
    .bind(key.last_used_at)
    .bind(key.created_at)
    .bind(key.updated_at)
    .execute(&mut *tx)
    .await?;
    plan::write_plans(&mut tx, std::slice::from_ref(key)).await?;
    if let Some(entry) = initial_credit {
        balance::insert_ledger_entry(&mut tx, entry).await?;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await
}

pub(super) async fn key(pool: &PgPool, id: Uuid) -> Result<Option<ApiKey>, sqlx::Error> {
    let row: Option<KeyRow> =
        sqlx::query_as(concat!(select_keys!(), " WHERE k.id = $1")).bind(id).fetch_optional(pool).await?;
    Ok(row.map(ApiKey::from))
}

pub(super) async fn keys_by_id_prefix(pool: &PgPool, prefix: &str, limit: u32) -> Result<Vec<ApiKey>, sqlx::Error> {
    let Some((first, last)) = list::id_prefix_range(prefix) else {
        return Ok(Vec::new());
    };
    let rows: Vec<KeyRow> =
        sqlx::query_as(concat!(select_keys!(), " WHERE k.id BETWEEN $1 AND $2 ORDER BY k.id LIMIT $3"))
            .bind(first)
            .bind(last)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

pub(super) async fn keys_by_name(pool: &PgPool, name: &str, limit: u32) -> Result<Vec<ApiKey>, sqlx::Error> {
    let rows: Vec<KeyRow> = sqlx::query_as(concat!(select_keys!(), " WHERE k.name = $1 ORDER BY k.id LIMIT $2"))
        .bind(name)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

pub(super) async fn count_keys(pool: &PgPool, now: DateTime<Utc>) -> Result<KeyCounts, sqlx::Error> {
    // "Expired" counts the keys whose status is expired: a disabled key shows as disabled.
    let (total, disabled, expired): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE NOT is_active), \
                COUNT(*) FILTER (WHERE is_active AND expires_at <= $1) \
         FROM api_keys",
    )
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok(KeyCounts { total, disabled, expired })
}

pub(super) async fn update_key(
    pool: &PgPool,
    id: Uuid,
    patch: &KeyPatch,
    audit: &AuditRecord,
) -> Result<Option<ApiKey>, sqlx::Error> {
    // One static statement for every patch: each field comes with a flag "change it", so
    // absent fields keep their value and a cleared field becomes NULL.
    let mut tx = pool.begin().await?;
    plan::apply_plan_patch(&mut tx, id, &patch.money).await?;
    let (providers_change, providers) = list_patch(&patch.allowed_providers);
    let (formats_change, formats) = list_patch(&patch.allowed_api_formats);
    let (models_change, models) = list_patch(&patch.allowed_models);
    let (rate_change, rate_limit) = value_patch(&patch.rate_limit);
    let (concurrent_change, concurrent_limit) = value_patch(&patch.concurrent_limit);
    let (expires_change, expires_at) = value_patch(&patch.expires_at);
    let (auto_delete_change, auto_delete) = value_patch(&patch.auto_delete_on_expiry);
    let row: Option<KeyRow> = sqlx::query_as(concat!(
        "WITH k AS (UPDATE api_keys SET \
           name = COALESCE($2, name), \
           allowed_providers = CASE WHEN $3 THEN $4 ELSE allowed_providers END, \
           allowed_api_formats = CASE WHEN $5 THEN $6 ELSE allowed_api_formats END, \
           allowed_models = CASE WHEN $7 THEN $8 ELSE allowed_models END, \
           rate_limit = CASE WHEN $9 THEN $10 ELSE rate_limit END, \
           concurrent_limit = CASE WHEN $11 THEN $12 ELSE concurrent_limit END, \
           expires_at = CASE WHEN $13 THEN $14 ELSE expires_at END, \
           auto_delete_on_expiry = CASE WHEN $15 THEN $16 ELSE auto_delete_on_expiry END, \
           updated_at = $17 \
         WHERE id = $1 RETURNING *) \
         SELECT ",
        key_columns!(),
        " FROM k JOIN users u ON u.id = k.user_id"
    ))
    .bind(id)
    .bind(patch.name.as_deref())
    .bind(providers_change)
    .bind(providers)
    .bind(formats_change)
    .bind(formats)
    .bind(models_change)
    .bind(models)
    .bind(rate_change)
    .bind(rate_limit)
    .bind(concurrent_change)
    .bind(concurrent_limit)
    .bind(expires_change)
    .bind(expires_at)
    .bind(auto_delete_change)
    .bind(auto_delete)
    .bind(audit.at)
    .fetch_optional(&mut *tx)
    .await?;
    finish_key_change(tx, row, audit).await
}

pub(super) async fn set_key_active(
    pool: &PgPool,
    id: Uuid,
    active: bool,
    audit: &AuditRecord,
) -> Result<Option<ApiKey>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<KeyRow> = sqlx::query_as(concat!(
        "WITH k AS (UPDATE api_keys SET is_active = $2, updated_at = $3 WHERE id = $1 RETURNING *) SELECT ",
        key_columns!(),
        " FROM k JOIN users u ON u.id = k.user_id"
    ))
    .bind(id)
    .bind(active)
    .bind(audit.at)
    .fetch_optional(&mut *tx)
    .await?;
    finish_key_change(tx, row, audit).await
}

pub(super) async fn roll_key(
    pool: &PgPool,
    id: Uuid,
    roll: &SecretRoll,
    audit: &AuditRecord,
) -> Result<Option<ApiKey>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The right-hand sides read the row as it was: the old hash moves to the previous slot.
    let row: Option<KeyRow> = sqlx::query_as(concat!(
        "WITH k AS (UPDATE api_keys SET \
           previous_key_hash = CASE WHEN $2::timestamptz IS NULL THEN NULL ELSE key_hash END, \
           previous_key_expires_at = $2, key_hash = $3, key_ciphertext = $4, key_hint = $5, updated_at = $6 \
         WHERE id = $1 RETURNING *) SELECT ",
        key_columns!(),
        " FROM k JOIN users u ON u.id = k.user_id"
    ))
    .bind(id)
    .bind(roll.previous_until)
    .bind(&roll.hash)
    .bind(&roll.ciphertext)
    .bind(&roll.hint)
    .bind(audit.at)
    .fetch_optional(&mut *tx)
    .await?;
    finish_key_change(tx, row, audit).await
}

pub(super) async fn purge_key(pool: &PgPool, id: Uuid, audit: &AuditRecord) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Locked first: no usage record of the key can land after its rollup is read below.
    let found = sqlx::query("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if found {
        // usage_daily rows go by their foreign key, into the purged keys' rollup first; usage
        // rows stay, with the purged key's id.
        sqlx::query(concat!(
            "WITH purged AS (",
            add_to_purged!("api_key_id = $1"),
            ") DELETE FROM api_keys WHERE id = $1"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
    }
    Ok(found)
}

pub(super) async fn verify_lookup(
    pool: &PgPool,
    key_hash: &str,
    rate_window_start: DateTime<Utc>,
    periods: CurrentPeriods,
) -> Result<Option<VerifyLookup>, sqlx::Error> {
    // The count runs only for a key with a rate limit (a CASE branch is evaluated lazily).
    // Its window is written as a range (`< 'infinity'` excludes no row) because the server
    // estimates a two-sided range over parameters as narrow and a one-sided one as a third of
    // the key's rows: with the latter the generic plan of this prepared statement looked
    // dearer than planning anew, and every verify paid for planning again.
    let row: Option<VerifyRow> = sqlx::query_as(concat!(
        "SELECT ",
        admission_columns!(),
        ", CASE WHEN k.rate_limit IS NULL THEN 0 ELSE \
             (SELECT COUNT(*) FROM usage r \
              WHERE r.api_key_id = k.id AND r.created_at > $2 AND r.created_at < 'infinity') END \
           AS recent_requests, \
         CASE WHEN k.budget_micros IS NULL THEN 0 ELSE \
             (SELECT CAST(COALESCE(SUM(d.cost_micros), 0) AS BIGINT) FROM usage_daily d \
              WHERE d.api_key_id = k.id \
                AND d.day >= CASE k.budget_period WHEN 'day' THEN $3 WHEN 'week' THEN $4 ELSE $5 END \
                AND d.day <= $3) END \
           AS budget_spent",
        keys_with_owners!(),
        " WHERE k.key_hash = $1 OR (k.previous_key_hash = $1 AND k.previous_key_expires_at > $6)"
    ))
    .bind(key_hash)
    .bind(rate_window_start)
    .bind(periods.day)
    .bind(periods.week)
    .bind(periods.month)
    .bind(periods.now)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(VerifyLookup::from))
}

pub(super) async fn touch_last_used(
    pool: &PgPool,
    id: Uuid,
    at: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $2) \
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
    )
    .bind(id)
    .bind(at)
    .bind(stale_before)
    .execute(pool)
    .await?;
    Ok(())
}

/// Commits a key change with its audit row when the key existed.
async fn finish_key_change(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    row: Option<KeyRow>,
    audit: &AuditRecord,
) -> Result<Option<ApiKey>, sqlx::Error> {
    let Some(row) = row else {
        return Ok(None);
    };
    insert_audit(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(Some(row.into()))
}

/// A patch as (change it?, new value): `Clear` is a change to NULL.
fn value_patch<T: Clone>(patch: &Patch<T>) -> (bool, Option<T>) {
    match patch {
        Patch::Keep => (false, None),
        Patch::Clear => (true, None),
        Patch::Set(value) => (true, Some(value.clone())),
    }
}

/// Like [`value_patch`], for allow lists: an empty list is stored as NULL (unrestricted).
fn list_patch(patch: &Patch<Vec<String>>) -> (bool, Option<Json<&[String]>>) {
    match patch {
        Patch::Keep => (false, None),
        Patch::Clear => (true, None),
        Patch::Set(list) => (true, allow_list(Some(list))),
    }
}
