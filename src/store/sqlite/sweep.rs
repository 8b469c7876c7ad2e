//! The expiry sweep: disables or deletes expired keys, chunk by chunk.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;
use uuid::fmt::Hyphenated;

use super::rows::{get, millis};
use super::{SqliteStore, store_error};
use crate::domain::SweptKey;
use crate::store::{Actor, SWEEP_SAMPLE, StoreResult, SweepReport};

/// Keys handled per chunk by the sweep (held in a temporary table, never in memory here).
const SWEEP_CHUNK: i64 = 50_000;

/// The sweep's order, and that of its keyset cursor: expiry, then id.
macro_rules! in_expiry_order {
    () => {
        concat!(" ORDER BY ", expiry_order!(), ", id")
    };
}

/// Predicates of the sweep; `?1` is `now` in epoch milliseconds, `?2` the global policy (0/1).
macro_rules! sweep_delete_where {
    () => {
        concat!(" WHERE ", expiry_order!(), " <= ?1 AND COALESCE(auto_delete_on_expiry, ?2) = 1")
    };
}
macro_rules! sweep_disable_where {
    () => {
        concat!(" WHERE ", expiry_order!(), " <= ?1 AND COALESCE(auto_delete_on_expiry, ?2) = 0 AND is_active = 1")
    };
}

pub(super) async fn sweep(
    store: &SqliteStore,
    now: DateTime<Utc>,
    global_auto_delete: bool,
    dry_run: bool,
    actor: Actor<'_>,
) -> StoreResult<SweepReport> {
    let mut tx = if dry_run { store.pool.begin().await.map_err(store_error)? } else { store.begin_write().await? };
    let params = SweepParams { now: millis(now), global_auto_delete, actor };
    let report = if dry_run { preview_sweep(&mut tx, &params).await? } else { run_sweep(&mut tx, &params).await? };
    if !dry_run {
        tx.commit().await.map_err(store_error)?;
    }
    Ok(report)
}

struct SweepParams<'a> {
    now: i64,
    global_auto_delete: bool,
    actor: Actor<'a>,
}

/// The keys of one sweep chunk, in sweep order (`seq`), with their rowids; a temporary table,
/// so each chunk's statements read it instead of repeating the selection.
const SWEEP_BATCH_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS sweep_batch \
     (seq INTEGER PRIMARY KEY, r INTEGER NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, expires_at INTEGER NOT NULL)";

/// One chunk of keys to delete (or to disable) after the keyset cursor `(?4, ?5)`, in expiry
/// order (`?3` = chunk size). The cursor keeps each chunk from rescanning the expired keys that
/// earlier chunks skipped or already disabled.
macro_rules! sweep_batch {
    ($predicate:expr) => {
        concat!(
            "INSERT INTO temp.sweep_batch (r, id, name, expires_at) SELECT rowid, id, name, expires_at FROM api_keys",
            $predicate,
            " AND (",
            expiry_order!(),
            ", id) > (?4, ?5)",
            in_expiry_order!(),
            " LIMIT ?3"
        )
    };
}

/// Deletes, then disables, every expired key chunk by chunk. Each chunk is selected once into
/// `temp.sweep_batch`; then one statement per table handles the whole chunk: its audit rows, its
/// rollups and FTS entries removed, the keys deleted or disabled. Usage rows are not touched:
/// they keep the id of their deleted key, as history.
async fn run_sweep(conn: &mut SqliteConnection, params: &SweepParams<'_>) -> StoreResult<SweepReport> {
    // A larger page cache while sweeping: the chunks touch many pages of api_keys.
    let cache_size: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut *conn).await.map_err(store_error)?;
    sqlx::query("PRAGMA cache_size = -16384").execute(&mut *conn).await.map_err(store_error)?;
    sqlx::query(SWEEP_BATCH_TABLE).execute(&mut *conn).await.map_err(store_error)?;
    let mut report = SweepReport::default();
    let mut result = sweep_chunks(conn, params, true, &mut report).await;
    if result.is_ok() {
        result = sweep_chunks(conn, params, false, &mut report).await;
    }
    if result.is_ok() {
        result = sqlx::query("DROP TABLE temp.sweep_batch").execute(&mut *conn).await.map(|_| ()).map_err(store_error);
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = {cache_size}")))
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    result.map(|()| report)
}

async fn sweep_chunks(
    conn: &mut SqliteConnection,
    params: &SweepParams<'_>,
    delete: bool,
    report: &mut SweepReport,
) -> StoreResult<()> {
    let (select, action) = if delete {
        (sweep_batch!(sweep_delete_where!()), "sweep_delete")
    } else {
        (sweep_batch!(sweep_disable_where!()), "sweep_disable")
    };
    let changes: &[&str] = if delete {
        &[
            add_to_purged!("api_key_id IN (SELECT id FROM temp.sweep_batch)"),
            "DELETE FROM usage_daily WHERE api_key_id IN (SELECT id FROM temp.sweep_batch)",
            "DELETE FROM api_keys WHERE rowid IN (SELECT r FROM temp.sweep_batch)",
        ]
    } else {
        &["UPDATE api_keys SET is_active = 0, updated_at = ?1 WHERE rowid IN (SELECT r FROM temp.sweep_batch)"]
    };
    let mut after: (i64, String) = (i64::MIN, String::new());
    loop {
        sqlx::query("DELETE FROM temp.sweep_batch").execute(&mut *conn).await.map_err(store_error)?;
        let selected = sqlx::query(select)
            .bind(params.now)
            .bind(params.global_auto_delete)
            .bind(SWEEP_CHUNK)
            .bind(after.0)
            .bind(&after.1)
            .execute(&mut *conn)
            .await
            .map_err(store_error)?
            .rows_affected();
        if selected == 0 {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO audit_log (at, actor, actor_key, action, api_key_id, details) \
             SELECT ?1, ?2, ?4, ?3, id, json_object('name', name) FROM temp.sweep_batch ORDER BY seq",
        )
        .bind(params.now)
        .bind(params.actor.name)
        .bind(action)
        .bind(params.actor.key)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
        for statement in changes {
            let query = sqlx::query(*statement);
            let query = if delete { query } else { query.bind(params.now) };
            query.execute(&mut *conn).await.map_err(store_error)?;
        }
        let listed = if delete { report.deleted.len() } else { report.disabled.len() };
        let room = SWEEP_SAMPLE.saturating_sub(listed) as i64;
        let rows = sqlx::query("SELECT id, name FROM temp.sweep_batch ORDER BY seq LIMIT ?")
            .bind(room)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        for row in &rows {
            report.push(delete, SweptKey { id: get::<Hyphenated>(row, "id")?.into_uuid(), name: get(row, "name")? });
        }
        report.add_unlisted(delete, selected - rows.len() as u64);
        after = sqlx::query_as("SELECT expires_at, id FROM temp.sweep_batch ORDER BY seq DESC LIMIT 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(store_error)?;
        if (selected as i64) < SWEEP_CHUNK {
            return Ok(());
        }
    }
}

/// What `run_sweep` would do, writing nothing: exact counts, and the first keys of each list.
async fn preview_sweep(conn: &mut SqliteConnection, params: &SweepParams<'_>) -> StoreResult<SweepReport> {
    let (deleted, disabled): (i64, i64) = sqlx::query_as(concat!(
        "SELECT COALESCE(SUM(COALESCE(auto_delete_on_expiry, ?2) = 1), 0), \
         COALESCE(SUM(COALESCE(auto_delete_on_expiry, ?2) = 0 AND is_active = 1), 0) \
         FROM api_keys WHERE ",
        expiry_order!(),
        " <= ?1"
    ))
    .bind(params.now)
    .bind(params.global_auto_delete)
    .fetch_one(&mut *conn)
    .await
    .map_err(store_error)?;
    let mut report = SweepReport::default();
    for (delete, count, sql) in [
        (
            true,
            deleted,
            concat!("SELECT id, name FROM api_keys", sweep_delete_where!(), in_expiry_order!(), " LIMIT ?3"),
        ),
        (
            false,
            disabled,
            concat!("SELECT id, name FROM api_keys", sweep_disable_where!(), in_expiry_order!(), " LIMIT ?3"),
        ),
    ] {
        let rows = sqlx::query(sql)
            .bind(params.now)
            .bind(params.global_auto_delete)
            .bind(SWEEP_SAMPLE as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        for row in &rows {
            report.push(delete, SweptKey { id: get::<Hyphenated>(row, "id")?.into_uuid(), name: get(row, "name")? });
        }
        report.add_unlisted(delete, (count as u64).saturating_sub(rows.len() as u64));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::sqlite::query_plan;

    /// Each chunk of the sweep and of its dry run reads the expired keys alone, in expiry order,
    /// from the expiry index: a range search, no full scan and no temporary sort.
    #[tokio::test]
    async fn sweep_chunks_are_read_from_the_expiry_index() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        sqlx::query(SWEEP_BATCH_TABLE).execute(&mut *conn).await.unwrap();
        drop(conn);
        let chunk_selections = [sweep_batch!(sweep_delete_where!()), sweep_batch!(sweep_disable_where!())];
        for select in chunk_selections {
            let sql = format!("EXPLAIN QUERY PLAN {select}");
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(0_i64).bind(false).bind(10_i64).bind(0_i64).bind("");
            let plan = query_plan(&store, query).await;
            assert!(plan.contains("SEARCH api_keys USING INDEX api_keys_expires_order"), "{select}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{select}: {plan}");
        }
    }
}
