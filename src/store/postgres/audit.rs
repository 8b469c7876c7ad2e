//! The audit trail.

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::rows::AuditRow;
use crate::domain::AuditEntry;
use crate::store::AuditRecord;

pub(super) async fn append_audit(pool: &PgPool, record: &AuditRecord) -> Result<(), sqlx::Error> {
    let mut connection = pool.acquire().await?;
    insert_audit(&mut connection, record).await
}

pub(super) async fn audit(pool: &PgPool, key_id: Option<Uuid>, limit: u32) -> Result<Vec<AuditEntry>, sqlx::Error> {
    // Two statements rather than `$1 IS NULL OR …`, so each can use its index.
    let rows: Vec<AuditRow> = match key_id {
        Some(key_id) => {
            sqlx::query_as(
                "SELECT id, at, actor, actor_key, action, api_key_id, details::text AS details FROM audit_log \
                 WHERE api_key_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(key_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        }
        None => {
            sqlx::query_as(
                "SELECT id, at, actor, actor_key, action, api_key_id, details::text AS details FROM audit_log \
                 ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        }
    }?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}

/// Writes the audit row of a change, inside the change's transaction.
pub(super) async fn insert_audit(connection: &mut PgConnection, record: &AuditRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, actor_key, action, api_key_id, details) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(record.at)
    .bind(&record.actor)
    .bind(&record.actor_key)
    .bind(&record.action)
    .bind(record.api_key_id)
    .bind(Json(&record.details))
    .execute(connection)
    .await?;
    Ok(())
}
