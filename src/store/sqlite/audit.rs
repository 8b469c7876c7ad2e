//! The audit trail.

use sqlx::sqlite::SqliteConnection;
use uuid::Uuid;

use super::rows::{audit_from_row, millis};
use super::{SqliteStore, store_error};
use crate::domain::AuditEntry;
use crate::store::{AuditRecord, StoreResult};

pub(super) async fn append_audit(store: &SqliteStore, record: &AuditRecord) -> StoreResult<()> {
    let mut conn = store.pool.acquire().await.map_err(store_error)?;
    insert_audit(&mut conn, record).await
}

pub(super) async fn audit(store: &SqliteStore, key_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<AuditEntry>> {
    let query = match key_id {
        Some(id) => sqlx::query(
            "SELECT id, at, actor, actor_key, action, api_key_id, details FROM audit_log \
             WHERE api_key_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(id.hyphenated()),
        None => sqlx::query(
            "SELECT id, at, actor, actor_key, action, api_key_id, details FROM audit_log ORDER BY id DESC LIMIT ?",
        ),
    };
    let rows = query.bind(i64::from(limit)).fetch_all(&store.pool).await.map_err(store_error)?;
    rows.iter().map(audit_from_row).collect()
}

pub(super) async fn insert_audit(conn: &mut SqliteConnection, record: &AuditRecord) -> StoreResult<()> {
    sqlx::query("INSERT INTO audit_log (at, actor, actor_key, action, api_key_id, details) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(millis(record.at))
        .bind(&record.actor)
        .bind(&record.actor_key)
        .bind(&record.action)
        .bind(record.api_key_id.map(|id| id.hyphenated()))
        .bind(record.details.to_string())
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(())
}
