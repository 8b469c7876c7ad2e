//! The expiry sweep: set-based statements, in chunks, in one transaction that only one process
//! at a time runs (a transaction-scoped advisory lock; the others skip).

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::SweptKey;
use crate::store::{SWEEP_SAMPLE, SweepReport};

/// The transaction-scoped advisory lock a sweep holds ("keytopsw" in ASCII); a process that
/// cannot take it skips its sweep.
pub const SWEEP_LOCK: i64 = 0x6b65_7974_6f70_7377;
/// Keys per chunk: few round trips, and at most this many ids held in memory at once.
const CHUNK: i64 = 50_000;

// Parameters of every selection below: $1 = now, $2 = global auto-delete policy. Each reads the
// index `api_keys_expires_order`, on (COALESCE(expires_at, 'infinity'), id): for a finite now,
// its condition below is exactly `expires_at <= now`.
macro_rules! expiry {
    () => {
        "COALESCE(expires_at, 'infinity'::timestamptz)"
    };
}
macro_rules! expired {
    () => {
        concat!(expiry!(), " <= $1")
    };
}
macro_rules! in_expiry_order {
    () => {
        concat!(" ORDER BY ", expiry!(), ", id")
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

// The keyset cursor of a chunk is `($3, $4)`: the (expires_at, id) of the previous chunk's last
// key, so a chunk never rescans the keys (or dead row versions) that earlier chunks handled.
macro_rules! after_cursor {
    () => {
        concat!(" AND (", expiry!(), ", id) > ($3, $4)")
    };
}

/// The next chunk of keys to delete, locked; `$5` = chunk size.
const SELECT_DELETE_CHUNK: &str = concat!(
    "SELECT id, name, expires_at FROM api_keys WHERE ",
    to_delete!(),
    after_cursor!(),
    in_expiry_order!(),
    " LIMIT $5 FOR UPDATE"
);
/// The next chunk of keys to disable, disabled with their audit rows in the same statement;
/// `$5` = chunk size, `$6` = actor.
const DISABLE_CHUNK: &str = concat!(
    "WITH batch AS (SELECT id FROM api_keys WHERE ",
    to_disable!(),
    after_cursor!(),
    in_expiry_order!(),
    " LIMIT $5 FOR UPDATE), \
     swept AS (UPDATE api_keys k SET is_active = FALSE, updated_at = $1 FROM batch WHERE k.id = batch.id \
               RETURNING k.id, k.name, k.expires_at), \
     audit AS (INSERT INTO audit_log (at, actor, action, api_key_id, details) \
               SELECT $1, $6, 'sweep_disable', id, jsonb_build_object('name', name) FROM swept) \
     SELECT id, name, expires_at FROM swept ORDER BY expires_at, id"
);
/// The rollups of a chunk of deleted keys go set-based, once per chunk, so the foreign key's own
/// cascade then finds nothing left to do. Their usage rows stay as they are, as history.
const DELETE_ROLLUPS: &str = "DELETE FROM usage_daily WHERE api_key_id = ANY($1)";
const DELETE_KEYS: &str = "WITH gone AS (DELETE FROM api_keys WHERE id = ANY($1) RETURNING id, name) \
     INSERT INTO audit_log (at, actor, action, api_key_id, details) \
     SELECT $2, $3, 'sweep_delete', id, jsonb_build_object('name', name) FROM gone";
const PREVIEW_COUNTS: &str = concat!(
    "SELECT COUNT(*) FILTER (WHERE COALESCE(auto_delete_on_expiry, $2)), \
            COUNT(*) FILTER (WHERE is_active AND NOT COALESCE(auto_delete_on_expiry, $2)) \
     FROM api_keys WHERE ",
    expired!()
);
const PREVIEW_DELETE: &str =
    concat!("SELECT id, name FROM api_keys WHERE ", to_delete!(), in_expiry_order!(), " LIMIT $3");
const PREVIEW_DISABLE: &str =
    concat!("SELECT id, name FROM api_keys WHERE ", to_disable!(), in_expiry_order!(), " LIMIT $3");

pub(super) struct Plan<'a> {
    pub now: DateTime<Utc>,
    pub global_auto_delete: bool,
    pub actor: &'a str,
}

/// Earlier than any time PostgreSQL can store: where the keyset cursor starts.
fn before_any_expiry() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(-4712, 1, 1).and_then(|day| day.and_hms_opt(0, 0, 0)).expect("a valid date").and_utc()
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

    // Deletes: lock a chunk, drop its rollups, delete the keys with their audit rows; only the ids
    // of the chunk are held here (16 bytes each).
    let mut after = (before_any_expiry(), Uuid::nil());
    loop {
        let mut ids = Vec::new();
        {
            let mut rows = sqlx::query_as::<_, (Uuid, String, DateTime<Utc>)>(SELECT_DELETE_CHUNK)
                .bind(plan.now)
                .bind(plan.global_auto_delete)
                .bind(after.0)
                .bind(after.1)
                .bind(CHUNK)
                .fetch(&mut *tx);
            while let Some((id, name, expires_at)) = rows.try_next().await? {
                ids.push(id);
                report.push(true, SweptKey { id, name });
                after = (expires_at, id);
            }
        }
        if ids.is_empty() {
            break;
        }
        sqlx::query(DELETE_ROLLUPS).bind(&ids).execute(&mut *tx).await?;
        sqlx::query(DELETE_KEYS).bind(&ids).bind(plan.now).bind(plan.actor).execute(&mut *tx).await?;
        if (ids.len() as i64) < CHUNK {
            break;
        }
    }

    // Disables: one statement per chunk.
    let mut after = (before_any_expiry(), Uuid::nil());
    loop {
        let mut swept = 0;
        {
            let mut rows = sqlx::query_as::<_, (Uuid, String, DateTime<Utc>)>(DISABLE_CHUNK)
                .bind(plan.now)
                .bind(plan.global_auto_delete)
                .bind(after.0)
                .bind(after.1)
                .bind(CHUNK)
                .bind(plan.actor)
                .fetch(&mut *tx);
            while let Some((id, name, expires_at)) = rows.try_next().await? {
                swept += 1;
                report.push(false, SweptKey { id, name });
                after = (expires_at, id);
            }
        }
        if swept < CHUNK {
            break;
        }
    }
    tx.commit().await?;
    Ok(report)
}

/// What [`run`] would do now, writing nothing: exact counts and the first keys of each list,
/// read from one snapshot.
pub(super) async fn preview(pool: &PgPool, plan: &Plan<'_>) -> Result<SweepReport, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let (deleted, disabled): (i64, i64) =
        sqlx::query_as(PREVIEW_COUNTS).bind(plan.now).bind(plan.global_auto_delete).fetch_one(&mut *tx).await?;
    let mut report = SweepReport::default();
    for (delete, count, statement) in [(true, deleted, PREVIEW_DELETE), (false, disabled, PREVIEW_DISABLE)] {
        let keys: Vec<(Uuid, String)> = sqlx::query_as(statement)
            .bind(plan.now)
            .bind(plan.global_auto_delete)
            .bind(SWEEP_SAMPLE as i64)
            .fetch_all(&mut *tx)
            .await?;
        let listed = keys.len() as u64;
        for (id, name) in keys {
            report.push(delete, SweptKey { id, name });
        }
        report.add_unlisted(delete, (count as u64).saturating_sub(listed));
    }
    tx.commit().await?;
    Ok(report)
}
