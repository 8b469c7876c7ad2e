//! `KEYTOP_BENCH_ONLY=money cargo bench --bench scale`: money over time, in a section of its own
//! on a database of its own (SQLite, and PostgreSQL when `KEYTOP_TEST_POSTGRES` is set).
//!
//! The database holds `KEYTOP_BENCH_REFILL_KEYS` (default 100,000) prepaid keys from the demo
//! generator, every one with a monthly refill due, and 64 keys with a month's budget and a
//! rollup row for each day of the month so far. Rows:
//! - `verify` of a key with a budget, against its floor: one statement reading the key by hash
//!   and summing its rollup rows of the budget's period (the least work a budget check needs);
//!   target ≥ 0.8 × the floor's throughput.
//! - a sweep (`KeyService::sweep`, expiry step and alert check included, alerts off) that refills
//!   every due key, against the set-based floor: the ledger rows, the audit rows and the credits
//!   as three `INSERT … SELECT` / `UPDATE` statements in one committed transaction; target ≤ 1.5×
//!   the floor's time. Each run, keytop's and the floor's alike, works on a fresh copy of the
//!   database.

use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Utc};
use keytop::demo::{self, DemoSpec};
use keytop::domain::{Budget, Money, MoneyPlan, Period};
use keytop::service::{KeyService, NewKeySpec, UsageInput, VerifyRequest};
use keytop::store;
use sqlx::{AssertSqlSafe, Connection};
use uuid::Uuid;

use super::{Copies, RUNS, Raw, Report, format_duration, median, service_over, side_by_side, verdict};

/// Runs the section on each backend `backends` names; returns its tables.
pub async fn reports(backends: &str) -> Vec<Report> {
    let keys: u32 = std::env::var("KEYTOP_BENCH_REFILL_KEYS").map_or(100_000, |n| n.parse().expect("a key count"));
    let mut reports = Vec::new();
    if backends.contains("sqlite") {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("money.db").display());
        reports.push(bench_money("sqlite: money over time", &url, keys).await);
    }
    if let Some(server) =
        std::env::var("KEYTOP_TEST_POSTGRES").ok().filter(|s| !s.trim().is_empty() && backends.contains("postgres"))
    {
        let name = format!("keytop_bench_money_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&server).await.expect("connect to KEYTOP_TEST_POSTGRES");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
        let (base, _) = server.rsplit_once('/').expect("a server URL with a database path");
        reports.push(bench_money("postgres: money over time", &format!("{base}/{name}"), keys).await);
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    reports
}

async fn bench_money(backend: &'static str, url: &str, keys: u32) -> Report {
    let mut report = Report { backend, rows: Vec::new() };
    let service = service_over(store::open(url).await.expect("open the bench database"));
    let raw = Raw::connect(url).await;
    let spec = DemoSpec { users: (keys / 100).max(30), keys, days: 30, usage_rows: u64::from(keys), seed: 11 };
    demo::fill(&service, &spec, false).await.expect("demo fill");
    let now = service.now();
    let last_month = Period::Month.span_at(now).start() - chrono::Duration::days(1);
    make_every_key_due_a_refill(&raw, Period::Month.span_at(last_month).start()).await;
    if let Raw::Postgres(pool) = &raw {
        sqlx::query("VACUUM ANALYZE").execute(pool).await.expect("vacuum");
    }

    // verify of keys with a month's budget, one rollup row per day of the month so far.
    let budget_keys = keys_with_a_budget(&service, now).await;
    let first_of_month = Period::Month.span_at(now).first_day;
    let request = VerifyRequest::default();
    let budget_floor = "SELECT k.*, (SELECT SUM(d.cost_micros) FROM usage_daily d \
                        WHERE d.api_key_id = k.id AND d.day >= $2 AND d.day <= $3) FROM api_keys k WHERE k.key_hash = $1";
    // Against the least work a budget check needs, and against the plain verify's floor (the key
    // read alone), to show what the budget's sum costs.
    for (label, sql) in [
        ("verify, key with a month's budget", budget_floor),
        (
            "verify, key with a month's budget, against the point select alone",
            "SELECT * FROM api_keys WHERE key_hash = $1",
        ),
    ] {
        let (ours, floor) = side_by_side(
            2_000,
            |i| {
                let (service, plaintext, request) = (&service, &budget_keys[i % budget_keys.len()].0, &request);
                async move {
                    service.verify(plaintext, request).await.expect("verify");
                }
            },
            |i| {
                let (raw, hash) = (&raw, &budget_keys[i % budget_keys.len()].1);
                async move {
                    if sql.contains("$2") {
                        raw!(raw, sql, |q| q.bind(hash).bind(first_of_month).bind(now.date_naive()), fetch_optional)
                    } else {
                        raw!(raw, sql, |q| q.bind(hash), fetch_optional)
                    }
                }
            },
        )
        .await;
        report.throughput(label, ours, floor, 0.8);
    }
    drop(service);
    raw.close().await;

    // The refill sweep, destructive: each run on its own copy, alternating.
    let mut copies = Copies::of(url).await;
    let (mut ours, mut floors, mut refilled) = (Vec::new(), Vec::new(), 0);
    for _ in 0..RUNS {
        let copy = copies.make().await;
        let service = service_over(store::open(&copy).await.expect("open the copy"));
        let started = Instant::now();
        refilled = service.sweep(false).await.expect("sweep").refilled;
        ours.push(started.elapsed());
        drop(service);
        copies.remove(&copy).await;
        let copy = copies.make().await;
        floors.push(refill_floor(&copy, now).await);
        copies.remove(&copy).await;
    }
    assert_eq!(refilled, u64::from(keys), "every demo key was due");
    report.ratio(&format!("sweep refilling {refilled} due keys"), median(ours), median(floors), 1.5);
    report
}

impl Report {
    /// A time row whose target is a ratio: keytop must take at most `max_ratio` × the floor's time.
    fn ratio(&mut self, operation: &str, ours: Duration, floor: Duration, max_ratio: f64) {
        let ratio = ours.as_secs_f64() / floor.as_secs_f64();
        self.rows.push([
            operation.into(),
            format_duration(ours),
            format_duration(floor),
            format!("{ratio:.2}×"),
            format!("≤ {max_ratio} × floor"),
            verdict(ratio <= max_ratio),
        ]);
    }
}

/// Makes every key an enabled, unexpired prepaid key with a monthly refill last applied for the
/// month starting at `last_start`: all due at the next sweep.
async fn make_every_key_due_a_refill(raw: &Raw, last_start: DateTime<Utc>) {
    let sql = "UPDATE api_keys SET is_active = TRUE, expires_at = NULL, is_standalone = TRUE, \
               credited_micros = used_micros + 10000000, refill_micros = 5000000, refill_period = 'month', \
               refill_mode = 'add', refill_last_period_start = $1";
    match raw {
        Raw::Sqlite(pool) => sqlx::query(sql).bind(last_start.timestamp_millis()).execute(pool).await.map(|_| ()),
        Raw::Postgres(pool) => sqlx::query(sql).bind(last_start).execute(pool).await.map(|_| ()),
    }
    .expect("make the keys due a refill");
}

/// 64 prepaid keys with a month's budget that none reaches and a request on each day of the month
/// so far; their plaintexts and hashes.
async fn keys_with_a_budget(service: &KeyService, now: DateTime<Utc>) -> Vec<(String, String)> {
    let owner = service.add_user("budget-owner").await.expect("owner");
    let mut spec = NewKeySpec::new(owner.name.clone());
    spec.standalone = true;
    spec.balance = Some(Money::from_usd(1_000_000));
    spec.rate_limit = None;
    spec.money = MoneyPlan {
        budget: Some(Budget::new(Money::from_usd(1_000_000), Period::Month).unwrap()),
        ..MoneyPlan::default()
    };
    let mut keys = Vec::new();
    for _ in 0..64 {
        let created = service.create_key(&spec).await.expect("budget key");
        for days_ago in 0..=now.day0() {
            let input = UsageInput {
                total_tokens: 100,
                cost: Money::from_micros(1_000),
                at: Some(now - chrono::Duration::days(i64::from(days_ago))),
                ..UsageInput::default()
            };
            service.record_usage(created.key.id, &input).await.expect("usage");
        }
        keys.push((created.plaintext, created.key.key_hash));
    }
    keys
}

/// The set-based refill on the copy at `url`: ledger rows, audit rows and credits of every due
/// key in one committed transaction; the time includes the commit.
async fn refill_floor(url: &str, now: DateTime<Utc>) -> Duration {
    let raw = Raw::connect(url).await;
    let due = "refill_micros IS NOT NULL AND refill_last_period_start < $2";
    let statements = [
        format!(
            "INSERT INTO balance_ledger (api_key_id, at, actor, delta_micros, credited_after, note, idempotency_key) \
             SELECT id, $1, 'floor', refill_micros, credited_micros + refill_micros, 'refill', \
             'refill:' || id || ':month' FROM api_keys WHERE {due}"
        ),
        format!(
            "INSERT INTO audit_log (at, actor, action, api_key_id, details) \
             SELECT $1, 'floor', 'refill', id, '{{}}' FROM api_keys WHERE {due}"
        ),
        format!(
            "UPDATE api_keys SET credited_micros = credited_micros + refill_micros, \
             refill_last_period_start = $2 WHERE {due}"
        ),
    ];
    let start = Period::Month.span_at(now).start();
    let started = Instant::now();
    match &raw {
        Raw::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            for sql in statements {
                let query = sqlx::query(AssertSqlSafe(sql)).bind(now.timestamp_millis()).bind(start.timestamp_millis());
                query.execute(&mut *tx).await.expect("floor refill");
            }
            tx.commit().await.unwrap();
        }
        Raw::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            for sql in statements {
                sqlx::query(AssertSqlSafe(sql)).bind(now).bind(start).execute(&mut *tx).await.expect("floor refill");
            }
            tx.commit().await.unwrap();
        }
    }
    let elapsed = started.elapsed();
    raw.close().await;
    elapsed
}
