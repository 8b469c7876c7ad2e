//! Users: the owners of keys.

use sqlx::PgPool;
use uuid::Uuid;

use super::insert_audit;
use super::rows::{UserRow, UserSummaryRow};
use crate::domain::{User, UserSummary};
use crate::store::AuditRecord;

pub(super) async fn insert_user(pool: &PgPool, user: &User, audit: &AuditRecord) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO users (id, name, is_active, created_at) VALUES ($1, $2, $3, $4)")
        .bind(user.id)
        .bind(&user.name)
        .bind(user.is_active)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await?;
    insert_audit(&mut tx, audit).await?;
    tx.commit().await
}

pub(super) async fn users(pool: &PgPool) -> Result<Vec<UserSummary>, sqlx::Error> {
    let rows: Vec<UserSummaryRow> = sqlx::query_as(
        "SELECT u.id, u.name, u.is_active, u.created_at, \
                (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id) AS key_count \
         FROM users u ORDER BY u.name, u.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(UserSummary::from).collect())
}

pub(super) async fn user_by_name(pool: &PgPool, name: &str) -> Result<Option<User>, sqlx::Error> {
    let row: Option<UserRow> = sqlx::query_as("SELECT id, name, is_active, created_at FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(User::from))
}

pub(super) async fn set_user_active(
    pool: &PgPool,
    id: Uuid,
    active: bool,
    audit: &AuditRecord,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query("UPDATE users SET is_active = $2 WHERE id = $1")
        .bind(id)
        .bind(active)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    if found {
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
    }
    Ok(found)
}

pub(super) async fn disable_user_keys(
    pool: &PgPool,
    user_id: Uuid,
    audit: &AuditRecord,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE api_keys SET is_active = FALSE, updated_at = $2 WHERE user_id = $1 AND is_active RETURNING id",
    )
    .bind(user_id)
    .bind(audit.at)
    .fetch_all(&mut *tx)
    .await?;
    for id in &ids {
        insert_audit(&mut tx, &AuditRecord { api_key_id: Some(*id), ..audit.clone() }).await?;
    }
    tx.commit().await?;
    Ok(ids)
}
