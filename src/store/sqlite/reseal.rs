//! Re-sealing every stored key under a new master key, in one transaction.

use uuid::Uuid;

use super::{SqliteStore, insert_audit, store_error};
use crate::store::{AuditRecord, ResealOutcome, Resealer, StoreError, StoreResult};

/// Keys are read in pages of this size, so memory stays flat at any number of keys.
const PAGE: i64 = 1000;

pub(super) async fn reseal_all_keys(
    store: &SqliteStore,
    reseal: &Resealer<'_>,
    audit: &AuditRecord,
) -> StoreResult<ResealOutcome> {
    let mut tx = store.begin_write().await?;
    let mut after = String::new();
    let mut count = 0u64;
    loop {
        let page: Vec<(String, String)> =
            sqlx::query_as("SELECT id, key_ciphertext FROM api_keys WHERE id > ? ORDER BY id LIMIT ?")
                .bind(&after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await
                .map_err(store_error)?;
        for (id, ciphertext) in &page {
            let key_id = Uuid::parse_str(id).map_err(|e| StoreError::Database(format!("bad key id {id:?}: {e}")))?;
            let resealed = match reseal(key_id, ciphertext) {
                Ok(resealed) => resealed,
                // Dropping the transaction rolls back every key re-sealed so far.
                Err(reason) => return Ok(ResealOutcome::Failed { key_id, reason }),
            };
            sqlx::query("UPDATE api_keys SET key_ciphertext = ? WHERE id = ?")
                .bind(resealed)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            count += 1;
        }
        match page.last() {
            Some((last, _)) if page.len() as i64 == PAGE => after = last.clone(),
            _ => break,
        }
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.map_err(store_error)?;
    Ok(ResealOutcome::Resealed(count))
}
