//! The expiry sweep: set-based statements, in chunks, in one transaction that only one process
//! at a time runs (a transaction-scoped advisory lock; the others skip).

use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::SweptKey;
use crate::store::{Actor, SWEEP_SAMPLE, SweepReport};

/// The transaction-scoped advisory lock a sweep holds ("keytopsw" in ASCII); a process that
/// cannot take it skips its sweep.
pub const SWEEP_LOCK: i64 = 0x6b65_7974_6f70_7377;

// Parameters of every statement below: $1 = now, $2 = global auto-delete policy. A preview reads
// the index `api_keys_expires_order`, on (COALESCE(expires_at, 'infinity'), id): for a finite
// now, its condition below is exactly `expires_at <= now`.
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

// A chunk is a range of the table's pages, `ctid >= $3 AND ctid < $4` (`$3`, `$4` as tid text,
// `(page,0)`), read by a TID range scan (PostgreSQL 14 and later; an older server scans the
// whole table for each chunk, correct but slower): the sweep visits the table in physical order,
// one pass for deletes and one for disables, each page once, as a set-based `DELETE` or `UPDATE`
// over the whole table would. Chunks in expiry order through the index visited the keys in random
// page order, each page as often as it held due keys: at a million keys, 29.4 s against 16.4 s.
//
// One chunk is one statement that writes the keys still due in its pages (the condition is
// evaluated on the row version it changes, so a key an admin extended meanwhile stays), writes
// one audit row per key, of `$action` (`$5` is the actor, `$6` their key), and returns what it changed. A row
// version a disable moves to a later page is no longer due there; a key inserted during the
// sweep lands in the last chunk, which has no end.
macro_rules! chunk_statement {
    ($write:expr, $action:literal, $also:expr) => {
        concat!(
            "WITH changed AS (",
            $write,
            " AND ctid >= $3::tid AND ctid < $4::tid RETURNING id, name, ",
            expiry!(),
            " AS expiry), \
             audit AS (INSERT INTO audit_log (at, actor, actor_key, action, api_key_id, details) \
                       SELECT $1, $5, $6, '",
            $action,
            "', id, jsonb_build_object('name', name) FROM changed)",
            $also,
            " SELECT id, name, expiry FROM changed"
        )
    };
}

/// Deletes the due keys of a chunk with their audit rows; their rollups go into the purged keys'
/// rollup, then by the foreign key's cascade, their usage rows stay as they are, as history.
///
/// The rollups are read in the statement's snapshot: a usage record of a due key that commits
/// while the statement waits for that key's lock is counted by the fleet and not as purged.
/// Usage of an expired key arrives only from a request admitted before it expired.
const DELETE_CHUNK: &str = chunk_statement!(
    concat!("DELETE FROM api_keys WHERE ", to_delete!()),
    "sweep_delete",
    concat!(", purged AS (", add_to_purged!("api_key_id IN (SELECT id FROM changed)"), ")")
);
/// Disables the due keys of a chunk with their audit rows.
const DISABLE_CHUNK: &str = chunk_statement!(
    concat!("UPDATE api_keys SET is_active = FALSE, updated_at = $1 WHERE ", to_disable!()),
    "sweep_disable",
    ""
);
/// Pages per chunk: 64 MB of the table at the default page size, some ten thousand keys.
const CHUNK_PAGES: u32 = 8_192;
/// How many pages the keys' table has now.
const TABLE_PAGES: &str = "SELECT pg_relation_size('api_keys') / current_setting('block_size')::bigint";
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
    pub actor: Actor<'a>,
}

/// Sweeps, unless another process is sweeping right now (then reports `skipped`).
pub(super) async fn run(pool: &PgPool, plan: &Plan<'_>) -> Result<SweepReport, sqlx::Error> {
    run_in_chunks(pool, plan, CHUNK_PAGES).await
}

async fn run_in_chunks(pool: &PgPool, plan: &Plan<'_>, pages_per_chunk: u32) -> Result<SweepReport, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(SWEEP_LOCK).fetch_one(&mut *tx).await?;
    if !locked {
        return Ok(SweepReport { skipped: true, ..SweepReport::default() });
    }
    let pages: i64 = sqlx::query_scalar(TABLE_PAGES).fetch_one(&mut *tx).await?;
    let pages = u32::try_from(pages).unwrap_or(u32::MAX);
    let mut report = SweepReport::default();
    // Deletes first: a key due for deletion is never disabled on the way.
    for (delete, statement) in [(true, DELETE_CHUNK), (false, DISABLE_CHUNK)] {
        let mut swept = FirstToExpire::default();
        let mut first_page = 0;
        loop {
            let last = pages.saturating_sub(first_page) <= pages_per_chunk;
            let end = if last { u32::MAX } else { first_page + pages_per_chunk };
            let mut rows = sqlx::query_as::<_, (Uuid, String, DateTime<Utc>)>(statement)
                .bind(plan.now)
                .bind(plan.global_auto_delete)
                .bind(format!("({first_page},0)"))
                .bind(format!("({end},0)"))
                .bind(plan.actor.name)
                .bind(plan.actor.key)
                .fetch(&mut *tx);
            while let Some((id, name, expiry)) = rows.try_next().await? {
                swept.add(expiry, id, name);
            }
            if last {
                break;
            }
            first_page = end;
        }
        swept.report_into(&mut report, delete);
    }
    tx.commit().await?;
    Ok(report)
}

/// The keys a pass changed, counted, and the first [`SWEEP_SAMPLE`] of them in expiry order
/// (the order a report lists them in) while the pass meets them in page order.
#[derive(Default)]
struct FirstToExpire {
    count: u64,
    /// The earliest keys met so far as (expiry, id, name), the latest of them on top.
    earliest: BinaryHeap<(DateTime<Utc>, Uuid, String)>,
}

impl FirstToExpire {
    fn add(&mut self, expiry: DateTime<Utc>, id: Uuid, name: String) {
        self.count += 1;
        self.earliest.push((expiry, id, name));
        if self.earliest.len() > SWEEP_SAMPLE {
            self.earliest.pop();
        }
    }

    fn report_into(self, report: &mut SweepReport, deleted: bool) {
        let listed = self.earliest.len() as u64;
        for (_, id, name) in self.earliest.into_sorted_vec() {
            report.push(deleted, SweptKey { id, name });
        }
        report.add_unlisted(deleted, self.count - listed);
    }
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

#[cfg(test)]
mod tests {
    use sqlx::{AssertSqlSafe, Connection, PgConnection};

    use super::*;
    use crate::store::Store;
    use crate::store::postgres::PgStore;

    /// A sweep over many chunks of a few pages each sweeps every due key once and reports what a
    /// preview of it showed: the same counts and the same first keys, in expiry order.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_sweep_in_many_chunks_does_what_its_preview_showed() {
        let Some(server) = std::env::var("KEYTOP_TEST_POSTGRES").ok().filter(|url| !url.trim().is_empty()) else {
            return;
        };
        let name = format!("keytop_sweep_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&server).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
        let store = PgStore::connect(&crate::store::with_database(&server, &name)).await.unwrap();
        store.migrate().await.unwrap();
        // 3,000 keys over about a hundred pages: a third never expire, the rest expired at
        // different times; some are deleted by their own policy, some kept, the rest follow the
        // global policy (keep).
        sqlx::query(
            "WITH owner AS (INSERT INTO users (id, name, created_at) VALUES (gen_random_uuid(), 'ada', now()) \
                            RETURNING id) \
             INSERT INTO api_keys (id, user_id, key_hash, key_ciphertext, key_hint, name, expires_at, \
                                   auto_delete_on_expiry, created_at, updated_at) \
             SELECT gen_random_uuid(), owner.id, 'hash-' || i, 'v1:sealed', 'sk-...', 'key-' || i, \
                    CASE WHEN i % 3 = 0 THEN NULL ELSE now() - make_interval(mins => (i * 7919) % 3000) END, \
                    CASE i % 4 WHEN 0 THEN TRUE WHEN 1 THEN FALSE END, now(), now() \
             FROM owner, generate_series(1, 3000) AS i",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let plan = Plan { now: Utc::now(), global_auto_delete: false, actor: "test".into() };

        let preview = preview(&store.pool, &plan).await.unwrap();
        let pages: i64 = sqlx::query_scalar(TABLE_PAGES).fetch_one(&store.pool).await.unwrap();
        assert!(pages > 20, "the keys span many chunks ({pages} pages)");
        let swept = run_in_chunks(&store.pool, &plan, 4).await.unwrap();
        assert_eq!(swept, preview);
        // Of the 2,000 expired keys, those of i % 4 = 0 go, the other 1,500 are disabled.
        assert_eq!((swept.deleted_count, swept.disabled_count, swept.truncated), (500, 1_500, true));
        let (still_due, audited): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM api_keys WHERE expires_at <= $1 AND is_active), \
                    (SELECT COUNT(*) FROM audit_log WHERE action LIKE 'sweep_%')",
        )
        .bind(plan.now)
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!((still_due, audited as u64), (0, swept.deleted_count + swept.disabled_count));

        store.pool.close().await;
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE \"{name}\" WITH (FORCE)"))).execute(&mut admin).await.unwrap();
    }

    #[test]
    fn the_sample_keeps_the_earliest_keys_in_expiry_order() {
        let base = Utc::now();
        let mut swept = FirstToExpire::default();
        let count = SWEEP_SAMPLE as i64 + 500;
        // Met in a scrambled order, as pages hold them.
        for i in (0..count).map(|i| (i * 7_919) % count) {
            swept.add(base + chrono::Duration::seconds(i), Uuid::from_u128(i as u128), format!("key-{i}"));
        }
        let mut report = SweepReport::default();
        swept.report_into(&mut report, false);
        assert_eq!(report.disabled_count, count as u64);
        assert!(report.truncated);
        let names: Vec<String> = report.disabled.iter().map(|key| key.name.clone()).collect();
        let expected: Vec<String> = (0..SWEEP_SAMPLE).map(|i| format!("key-{i}")).collect();
        assert_eq!(names, expected);
    }
}
