//! Upgrading a database that already holds data: the schema is brought to version 3 by the
//! migrations of that time, rows are written the way that version stored them, then keytop
//! opens the database (running what is newer) and every row must still be there, and new rows
//! must be numbered after the old ones.

mod common;

use std::path::Path;

use keytop::domain::Money;
use keytop::store::{self, AdjustOutcome, AuditRecord, BalanceAdjustment, BalanceChange};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, SqliteConnection};
use uuid::Uuid;

const USER: &str = "00000000-0000-4000-8000-000000000001";
const KEY: &str = "00000000-0000-4000-8000-000000000002";

/// Rows as version 3 stored them: one user, one prepaid key with a ledger row (id 7) and an
/// audit row (id 20), three usage rows with chosen ids (two with a response time) on 14 November
/// 2023 (UTC), the day `time` falls on, and their rollup.
fn old_rows(time: &str) -> Vec<String> {
    let mut rows = vec![
        format!("INSERT INTO users (id, name, created_at) VALUES ('{USER}', 'ada', {time})"),
        format!(
            "INSERT INTO api_keys (id, user_id, key_hash, key_ciphertext, key_hint, name, is_standalone, \
             credited_micros, created_at, updated_at) \
             VALUES ('{KEY}', '{USER}', 'hash', 'v1:sealed', 'sk-AbC...wxyz', 'old key', TRUE, 100, {time}, {time})"
        ),
        format!(
            "INSERT INTO balance_ledger (id, api_key_id, at, actor, delta_micros, credited_after, idempotency_key) \
             OVERRIDING_SYSTEM_VALUE VALUES (7, '{KEY}', {time}, 'ada', 100, 100, 'first')"
        ),
        format!(
            "INSERT INTO audit_log (id, at, actor, action, api_key_id) \
             OVERRIDING_SYSTEM_VALUE VALUES (20, {time}, 'ada', 'topup', '{KEY}')"
        ),
    ];
    for (id, response_ms) in [(10, "100"), (11, "300"), (12, "NULL")] {
        rows.push(format!(
            "INSERT INTO usage (id, request_id, api_key_id, cost_micros, response_time_ms, created_at) \
             OVERRIDING_SYSTEM_VALUE VALUES ({id}, 'request-{id}', '{KEY}', 5, {response_ms}, {time})"
        ));
    }
    rows.push(format!(
        "INSERT INTO usage_daily (api_key_id, day, requests, tokens, cost_micros, response_ms_sum) \
         VALUES ('{KEY}', '2023-11-14', 3, 0, 15, 400)"
    ));
    rows
}

/// After the upgrade the old key is readable, its ledger and audit log go on after their old
/// rows with idempotency keys still unique, and purging it succeeds (its usage rows are checked
/// by the caller, on its own connection).
async fn upgrade_and_purge(url: &str) {
    let store = store::open(url).await.expect("open and migrate");
    assert_eq!(store.migrate().await.unwrap(), store.latest_schema_version());
    let key: Uuid = KEY.parse().unwrap();
    assert_eq!(store.key(key).await.unwrap().map(|k| k.name), Some("old key".to_string()));
    // The old rollup learnt from its usage rows how many of its requests were timed.
    let day = chrono::NaiveDate::from_ymd_opt(2023, 11, 14).unwrap();
    let rollup = store.daily_usage(key, day, day).await.unwrap();
    assert_eq!(
        rollup.iter().map(|d| (d.requests, d.response_ms_sum, d.timed_requests)).collect::<Vec<_>>(),
        [(3, 400, 2)]
    );
    // The owner's and the fleet's rollups were filled from the history (0011).
    let sums = |rows: Vec<keytop::domain::DailyUsage>| {
        rows.iter()
            .map(|d| (d.day, d.requests, d.cost.micros(), d.response_ms_sum, d.timed_requests))
            .collect::<Vec<_>>()
    };
    let whole_day = [(day, 3, 15, 400, 2)];
    assert_eq!(sums(store.fleet_daily_usage(day, day).await.unwrap()), whole_day);
    assert_eq!(sums(store.user_daily_usage(USER.parse().unwrap(), day, day).await.unwrap()), whole_day);
    assert_eq!(sums(store.purged_daily_usage(day, day).await.unwrap()), []);

    let top_up = |micros: i64, idempotency_key: Option<&str>| BalanceAdjustment {
        key_id: key,
        change: BalanceChange::Add(Money::from_micros(micros)),
        at: chrono::Utc::now(),
        actor: "test".into(),
        actor_key: None,
        note: None,
        idempotency_key: idempotency_key.map(Into::into),
    };
    let ledger_id = |outcome: AdjustOutcome| match outcome {
        AdjustOutcome::Applied(entry) => ("applied", entry.id),
        AdjustOutcome::Replayed(entry) => ("replayed", entry.id),
        other => panic!("{other:?}"),
    };
    // PostgreSQL sequences leave gaps (the replay above drew a number): ids grow, not by one.
    assert_eq!(ledger_id(store.adjust_balance(&top_up(100, Some("first"))).await.unwrap()), ("replayed", 7));
    let (applied, second) = ledger_id(store.adjust_balance(&top_up(1, Some("second"))).await.unwrap());
    assert_eq!(ledger_id(store.adjust_balance(&top_up(1, Some("second"))).await.unwrap()), ("replayed", second));
    let (_, third) = ledger_id(store.adjust_balance(&top_up(1, None)).await.unwrap());
    let (_, fourth) = ledger_id(store.adjust_balance(&top_up(1, None)).await.unwrap());
    assert!(applied == "applied" && 7 < second && second < third && third < fourth, "{second} {third} {fourth}");
    let audit_ids: Vec<i64> = store.audit(Some(key), 10).await.unwrap().iter().map(|entry| entry.id).collect();
    assert!(audit_ids.len() == 4 && audit_ids.is_sorted_by(|a, b| a > b), "{audit_ids:?}");
    assert_eq!(audit_ids[3], 20, "new audit rows are numbered after the old one");
    let audit = AuditRecord {
        at: chrono::Utc::now(),
        actor: "test".into(),
        actor_key: None,
        action: "purge".into(),
        api_key_id: Some(key),
        details: serde_json::json!({}),
    };
    assert!(store.purge_key(key, &audit).await.unwrap());
    // The purged key's usage stays in the fleet's and its owner's, and is the fleet's purged part.
    assert_eq!(sums(store.fleet_daily_usage(day, day).await.unwrap()), whole_day);
    assert_eq!(sums(store.user_daily_usage(USER.parse().unwrap(), day, day).await.unwrap()), whole_day);
    assert_eq!(sums(store.purged_daily_usage(day, day).await.unwrap()), whole_day);
}

/// The usage rows of version 3, intact after the upgrade and the purge of their key.
fn expected_usage() -> Vec<(i64, String, Option<String>)> {
    [10, 11, 12].map(|id| (id, format!("request-{id}"), Some(KEY.to_string()))).into()
}

const USAGE_ROWS: &str = "SELECT id, request_id, CAST(api_key_id AS TEXT) FROM usage ORDER BY id";

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_rows_survive_the_upgrade_from_version_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true).foreign_keys(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    let migrator = Migrator::new(Path::new("assets/migrations/sqlite")).await.unwrap();
    migrator.run_to(3, &mut conn).await.unwrap();
    for statement in old_rows("1700000000000") {
        let statement = statement.replace("OVERRIDING_SYSTEM_VALUE ", "");
        sqlx::query(AssertSqlSafe(statement)).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    upgrade_and_purge(&format!("sqlite://{}", path.display())).await;
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(USAGE_ROWS).fetch_all(&mut conn).await.unwrap();
    assert_eq!(rows, expected_usage(), "usage rows keep their ids and their key's id");
    // The AUTOINCREMENT counter came through the rebuild: a new row is numbered past the old.
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO usage (request_id, api_key_id, created_at) VALUES ('new', NULL, 0) RETURNING id",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(next, 13);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_rows_survive_the_upgrade_from_version_3() {
    let Some(server) = common::postgres_server() else { return };
    let name = format!("keytop_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&server).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
    let url = store::with_database(&server, &name);

    let mut conn = PgConnection::connect(&url).await.unwrap();
    let migrator = Migrator::new(Path::new("assets/migrations/postgres")).await.unwrap();
    migrator.run_to(3, &mut conn).await.unwrap();
    for statement in old_rows("'2023-11-14T22:13:20Z'") {
        let statement = statement.replace("OVERRIDING_SYSTEM_VALUE", "OVERRIDING SYSTEM VALUE");
        sqlx::query(AssertSqlSafe(statement)).execute(&mut conn).await.unwrap();
    }
    // Rows written with chosen ids leave the identity sequences behind: move them on, to where
    // version 3 would have left them after numbering those rows itself.
    for (table, last_id) in [("balance_ledger", 7), ("audit_log", 20), ("usage", 12)] {
        sqlx::query("SELECT setval(pg_get_serial_sequence($1, 'id'), $2)")
            .bind(table)
            .bind(last_id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();

    upgrade_and_purge(&url).await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(USAGE_ROWS).fetch_all(&mut conn).await.unwrap();
    assert_eq!(rows, expected_usage(), "usage rows keep their ids and their key's id");
    conn.close().await.unwrap();
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .unwrap();
}
