//! The expiry sweep: set-based statements, in chunks, in one transaction that only one process
//! at a time runs (a transaction-scoped advisory lock; the others skip).

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::SweptKey;
use crate::store::SweepReport;

/// The transaction-scoped advisory lock a sweep holds ("keytopsw" in ASCII); a process that
/// cannot take it skips its sweep.
pub const SWEEP_LOCK: i64 = 0x6b65_7974_6f70_7377;
/// Keys per statement, so 500k expired keys never sit in one result set.
const CHUNK: i64 = 5_000;

// Parameters of every statement below: $1 = now, $2 = global auto-delete policy; the chunks
// also take $3 = actor and $4 = chunk size. Each reads the index on (expires_at, id).
macro_rules! expired {
    () => {
        "expires_at <= $1"
    };
}
macro_rules! in_expiry_order {
    () => {
        " ORDER BY expires_at, id"
    };
}
/// Expired keys the sweep deletes, even when already disabled.
macro_rules! to_delete {
    () => {
        concat!(expired!(), " AND COALESCE(auto_delete_on_expiry, $2)")
    };
}
/// Expired keys the sweep disables: those still active that it does not delete.
macro_rules! to_disable {
    () => {
        concat!(expired!(), " AND is_active AND NOT COALESCE(auto_delete_on_expiry, $2)")
    };
}

/// One chunk: lock up to $4 keys that `$which` selects, apply `$change` to them (which must
/// return `k.id, k.name, k.expires_at`), and write an audit row per key, all in one statement.
macro_rules! sweep_chunk {
    ($which:expr, $change:literal, $action:literal) => {
        concat!(
            "WITH batch AS (SELECT id FROM api_keys WHERE ",
            $which,
            in_expiry_order!(),
            " LIMIT $4 FOR UPDATE), swept AS (",
            $change,
            "), audit AS (INSERT INTO audit_log (at, actor, action, api_key_id, details) SELECT $1, $3, '",
            $action,
            "', id, jsonb_build_object('name', name) FROM swept) \
             SELECT id, name FROM swept ORDER BY expires_at, id"
        )
    };
}

const DELETE_CHUNK: &str = sweep_chunk!(
    to_delete!(),
    "DELETE FROM api_keys k USING batch WHERE k.id = batch.id RETURNING k.id, k.name, k.expires_at",
    "sweep_delete"
);
const DISABLE_CHUNK: &str = sweep_chunk!(
    to_disable!(),
    "UPDATE api_keys k SET is_active = FALSE, updated_at = $1 FROM batch WHERE k.id = batch.id \
     RETURNING k.id, k.name, k.expires_at",
    "sweep_disable"
);
const PREVIEW_DELETE: &str = concat!("SELECT id, name FROM api_keys WHERE ", to_delete!(), in_expiry_order!());
const PREVIEW_DISABLE: &str = concat!("SELECT id, name FROM api_keys WHERE ", to_disable!(), in_expiry_order!());

pub(super) struct Plan<'a> {
    pub now: DateTime<Utc>,
    pub global_auto_delete: bool,
    pub actor: &'a str,
}

/// Sweeps, unless another process is sweeping right now (then reports `skipped`).
pub(super) async fn run(pool: &PgPool, plan: &Plan<'_>) -> Result<SweepReport, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(SWEEP_LOCK).fetch_one(&mut *tx).await?;
    if !locked {
        return Ok(SweepReport { skipped: true, ..SweepReport::default() });
    }
    let mut report = SweepReport::default();
    for (statement, swept) in [(DELETE_CHUNK, &mut report.deleted), (DISABLE_CHUNK, &mut report.disabled)] {
        // Each chunk removes its keys from the selection, so this ends; an empty chunk says done.
        loop {
            let chunk: Vec<(Uuid, String)> = sqlx::query_as(statement)
                .bind(plan.now)
                .bind(plan.global_auto_delete)
                .bind(plan.actor)
                .bind(CHUNK)
                .fetch_all(&mut *tx)
                .await?;
            if chunk.is_empty() {
                break;
            }
            swept.extend(chunk.into_iter().map(|(id, name)| SweptKey { id, name }));
        }
    }
    tx.commit().await?;
    Ok(report)
}

/// What [`run`] would do now, writing nothing.
pub(super) async fn preview(pool: &PgPool, plan: &Plan<'_>) -> Result<SweepReport, sqlx::Error> {
    let select = |statement| {
        sqlx::query_as::<_, (Uuid, String)>(statement)
            .bind(plan.now)
            .bind(plan.global_auto_delete)
            .fetch(pool)
            .map_ok(|(id, name)| SweptKey { id, name })
            .try_collect::<Vec<_>>()
    };
    Ok(SweepReport { deleted: select(PREVIEW_DELETE).await?, disabled: select(PREVIEW_DISABLE).await?, skipped: false })
}
