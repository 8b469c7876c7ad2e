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
/// Keys per chunk: few round trips, and statements of bounded size; the process holds only the
/// cursor and the first keys of each list for the report.
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

// The keyset cursor of a chunk is `($3, $4)`: the expiry and id of the previous chunk's last
// key, so a chunk never rescans the keys (or dead row versions) that earlier chunks handled.
macro_rules! after_cursor {
    () => {
        concat!(" AND (", expiry!(), ", id) > ($3, $4)")
    };
}

/// One chunk, in one statement: `$5` keys selected in expiry order after the cursor (`batch`),
/// then written by `$write`, a data-modifying statement over `k` and `batch` that returns the
/// `id` and `name` of the keys it changed and repeats the selection's condition (`$condition`
/// on the row itself). No row is locked ahead of the write: should an admin change a key between
/// the selection and the write (extend its expiry, say), the write sees the new version and
/// evaluates the condition again on it, so it only ever changes keys still due. The statement
/// returns every selected key, in order, with whether it was changed (for the cursor and the
/// chunk count) and writes one audit row per changed key, of `$action`.
macro_rules! chunk_statement {
    ($condition:expr, $write:expr, $action:literal) => {
        concat!(
            "WITH batch AS (SELECT id, ",
            expiry!(),
            " AS expiry FROM api_keys WHERE ",
            $condition,
            after_cursor!(),
            in_expiry_order!(),
            " LIMIT $5), \
             changed AS (",
            $write,
            " AND ",
            $condition,
            " RETURNING k.id, k.name), \
             audit AS (INSERT INTO audit_log (at, actor, action, api_key_id, details) \
                       SELECT $1, $6, '",
            $action,
            "', id, jsonb_build_object('name', name) FROM changed) \
             SELECT b.id, b.expiry, c.name FROM batch b LEFT JOIN changed c ON c.id = b.id \
             ORDER BY b.expiry, b.id"
        )
    };
}

/// Deletes a chunk of keys with their audit rows; their rollups go by the foreign key's cascade,
/// their usage rows stay as they are, as history.
const DELETE_CHUNK: &str =
    chunk_statement!(to_delete!(), "DELETE FROM api_keys k USING batch WHERE k.id = batch.id", "sweep_delete");
/// Disables a chunk of keys with their audit rows.
const DISABLE_CHUNK: &str = chunk_statement!(
    to_disable!(),
    "UPDATE api_keys k SET is_active = FALSE, updated_at = $1 FROM batch WHERE k.id = batch.id",
    "sweep_disable"
);
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
    // Deletes first: a key due for deletion is never disabled on the way.
    for (delete, statement) in [(true, DELETE_CHUNK), (false, DISABLE_CHUNK)] {
        let mut after = (before_any_expiry(), Uuid::nil());
        loop {
            let mut selected = 0;
            let mut rows = sqlx::query_as::<_, (Uuid, DateTime<Utc>, Option<String>)>(statement)
                .bind(plan.now)
                .bind(plan.global_auto_delete)
                .bind(after.0)
                .bind(after.1)
                .bind(CHUNK)
                .bind(plan.actor)
                .fetch(&mut *tx);
            while let Some((id, expiry, changed_name)) = rows.try_next().await? {
                selected += 1;
                after = (expiry, id);
                if let Some(name) = changed_name {
                    report.push(delete, SweptKey { id, name });
                }
            }
            if selected < CHUNK {
                break;
            }
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
