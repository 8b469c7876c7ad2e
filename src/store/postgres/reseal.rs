//! Re-sealing every stored key under a new master key, in one transaction.

use sqlx::PgPool;
use uuid::Uuid;

use super::insert_audit;
use crate::store::{AuditRecord, ResealOutcome, Resealer};

/// Keys are read and written in pages of this size, so memory stays flat at any number of keys.
const PAGE: i64 = 1000;

pub(super) async fn reseal_all_keys(
    pool: &PgPool,
    reseal: &Resealer<'_>,
    audit: &AuditRecord,
) -> Result<ResealOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut after = Uuid::nil();
    let mut count = 0u64;
    loop {
        // Locked until the commit, so no other writer changes a key between its read and write.
        let page: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT id, key_ciphertext FROM api_keys WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE")
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await?;
        let Some(&(last, _)) = page.last() else { break };
        let mut ids = Vec::with_capacity(page.len());
        let mut resealed = Vec::with_capacity(page.len());
        for (key_id, ciphertext) in page {
            match reseal(key_id, &ciphertext) {
                Ok(sealed) => {
                    ids.push(key_id);
                    resealed.push(sealed);
                }
                // Dropping the transaction rolls back every key re-sealed so far.
                Err(reason) => return Ok(ResealOutcome::Failed { key_id, reason }),
            }
        }
        // The whole page in one statement.
        sqlx::query(
            "UPDATE api_keys k SET key_ciphertext = sealed.ciphertext \
             FROM UNNEST($1::uuid[], $2::text[]) AS sealed (id, ciphertext) WHERE k.id = sealed.id",
        )
        .bind(&ids)
        .bind(&resealed)
        .execute(&mut *tx)
        .await?;
        count += ids.len() as u64;
        after = last;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(ResealOutcome::Resealed(count))
}
