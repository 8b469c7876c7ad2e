//! Users: the owners of keys.

use uuid::Uuid;
use uuid::fmt::Hyphenated;

use super::rows::{get, millis, user_from_row};
use super::{SqliteStore, conflict_as, insert_audit, store_error};
use crate::domain::{User, UserSummary};
use crate::store::{AuditRecord, StoreResult};

pub(super) async fn insert_user(store: &SqliteStore, user: &User, audit: &AuditRecord) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query("INSERT INTO users (id, name, is_active, created_at) VALUES (?, ?, ?, ?)")
        .bind(user.id.hyphenated())
        .bind(&user.name)
        .bind(user.is_active)
        .bind(millis(user.created_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_as(|| format!("a user named {:?}", user.name)))?;
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.map_err(store_error)
}

pub(super) async fn users(store: &SqliteStore) -> StoreResult<Vec<UserSummary>> {
    let rows = sqlx::query(
        "SELECT u.id, u.name, u.is_active, u.created_at, \
         (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id) AS key_count \
         FROM users u ORDER BY u.name, u.id",
    )
    .fetch_all(&store.pool)
    .await
    .map_err(store_error)?;
    rows.iter().map(|row| Ok(UserSummary { user: user_from_row(row)?, key_count: get(row, "key_count")? })).collect()
}

pub(super) async fn user_by_name(store: &SqliteStore, name: &str) -> StoreResult<Option<User>> {
    let row = sqlx::query("SELECT id, name, is_active, created_at FROM users WHERE name = ?")
        .bind(name)
        .fetch_optional(&store.pool)
        .await
        .map_err(store_error)?;
    row.as_ref().map(user_from_row).transpose()
}

pub(super) async fn set_user_active(
    store: &SqliteStore,
    id: Uuid,
    active: bool,
    audit: &AuditRecord,
) -> StoreResult<bool> {
    let update = sqlx::query("UPDATE users SET is_active = ? WHERE id = ?").bind(active).bind(id.hyphenated());
    store.write_audited(update, audit).await
}

pub(super) async fn disable_user_keys(
    store: &SqliteStore,
    user_id: Uuid,
    audit: &AuditRecord,
) -> StoreResult<Vec<Uuid>> {
    let mut tx = store.begin_write().await?;
    let ids: Vec<Hyphenated> = sqlx::query_scalar(
        "UPDATE api_keys SET is_active = 0, updated_at = ? WHERE user_id = ? AND is_active RETURNING id",
    )
    .bind(millis(audit.at))
    .bind(user_id.hyphenated())
    .fetch_all(&mut *tx)
    .await
    .map_err(store_error)?;
    let ids: Vec<Uuid> = ids.into_iter().map(Hyphenated::into_uuid).collect();
    for id in &ids {
        insert_audit(&mut tx, &AuditRecord { api_key_id: Some(*id), ..audit.clone() }).await?;
    }
    tx.commit().await.map_err(store_error)?;
    Ok(ids)
}
