//! Behaviour only PostgreSQL has: several processes on one database (sweeps, migrations,
//! balance and usage writes at once), and how a server that cannot be reached is reported.
//! Tests that need a server are skipped, with a note, unless `KEYTOP_TEST_POSTGRES` is set.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;
use keytop::domain::{ApiKey, Money, MoneyPlan, User, truncate_to_millis};
use keytop::store::{
    self, AdjustOutcome, AuditRecord, BalanceAdjustment, BalanceChange, ResealOutcome, Store, StoreError, UsageOutcome,
    UsageRecord, postgres,
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// A migrated test database, or `None` (with a note) when no server is configured.
async fn database() -> Option<common::TestDb> {
    let db = common::postgres_db().await;
    if db.is_none() {
        eprintln!("note: KEYTOP_TEST_POSTGRES is not set; skipping this PostgreSQL test");
    }
    db
}

/// Another process on the same database: its own pool.
async fn second_process(db: &common::TestDb) -> Arc<dyn Store> {
    store::open(&db.url).await.expect("open the test database again")
}

fn now() -> DateTime<Utc> {
    truncate_to_millis(Utc::now())
}

fn audit(action: &str, api_key_id: Option<Uuid>) -> AuditRecord {
    AuditRecord {
        at: now(),
        actor: "test".into(),
        actor_key: None,
        action: action.into(),
        api_key_id,
        details: serde_json::json!({}),
    }
}

async fn add_user(store: &dyn Store) -> User {
    let user =
        User { id: Uuid::new_v4(), name: format!("user-{}", Uuid::new_v4()), is_active: true, created_at: now() };
    store.insert_user(&user, &audit("user_add", None)).await.unwrap();
    user
}

/// A prepaid key with `credited` (`None` = unlimited) that expires at `expires_at`.
async fn add_key(
    store: &dyn Store,
    owner: &User,
    credited: Option<Money>,
    expires_at: Option<DateTime<Utc>>,
) -> ApiKey {
    let id = Uuid::new_v4();
    let key = ApiKey {
        id,
        user_id: owner.id,
        owner_name: owner.name.clone(),
        owner_active: true,
        key_hash: format!("hash-{id}"),
        key_ciphertext: "v1:test".into(),
        key_hint: "sk-test...test".into(),
        name: format!("key-{id}"),
        allowed_providers: None,
        allowed_api_formats: None,
        allowed_models: None,
        rate_limit: Some(100),
        concurrent_limit: Some(5),
        expires_at,
        is_standalone: true,
        credited,
        used: Money::ZERO,
        auto_delete_on_expiry: None,
        is_active: true,
        last_used_at: None,
        created_at: now(),
        updated_at: now(),
        money: MoneyPlan::default(),
        previous_secret_until: None,
    };
    store.insert_key(&key, None, &audit("key_create", Some(id))).await.unwrap();
    key
}

fn adjustment(key: &ApiKey, micros: i64, idempotency_key: Option<&str>) -> BalanceAdjustment {
    BalanceAdjustment {
        key_id: key.id,
        change: BalanceChange::Add(Money::from_micros(micros)),
        at: now(),
        actor: "test".into(),
        actor_key: None,
        note: None,
        idempotency_key: idempotency_key.map(str::to_string),
    }
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_without_the_password() {
    let started = Instant::now();
    let error = match postgres::open("postgres://postgres:hunter2@127.0.0.1:1/x").await {
        Ok(_) => panic!("nothing listens on port 1"),
        Err(error) => error,
    };
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
    let StoreError::Unavailable { url, reason } = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert_eq!(url, "postgres://postgres:***@127.0.0.1:1/x");
    assert!(reason.contains("127.0.0.1:1"), "the reason names what was tried: {reason}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[tokio::test]
async fn a_password_never_shows_in_the_description() {
    let Some(db) = database().await else { return };
    // The test server trusts every connection, so any password is accepted.
    let with_password = db.url.replacen("://postgres@", "://postgres:s3cret@", 1);
    assert_ne!(with_password, db.url, "the test URL names the user postgres");
    let store = store::open(&with_password).await.unwrap();
    assert!(!store.describe().contains("s3cret"), "{}", store.describe());
    assert!(store.describe().contains("postgres:***@"), "{}", store.describe());
}

#[tokio::test]
async fn migrations_are_idempotent_and_safe_to_run_at_once() {
    let Some(db) = database().await else { return };
    // A fresh, unmigrated database, migrated by several processes at the same moment.
    let name = format!("keytop_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
    let url = format!("{}/{name}", db.url.rsplit_once('/').unwrap().0);
    let stores: Vec<Arc<dyn Store>> =
        join_all((0..4).map(|_| postgres::open(&url))).await.into_iter().map(Result::unwrap).collect();
    let versions = join_all(stores.iter().map(|store| store.migrate())).await;
    let again = stores[0].migrate().await;
    drop(stores);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE \"{name}\" WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .unwrap();

    let versions: Vec<i64> = versions.into_iter().map(Result::unwrap).collect();
    assert!(versions[0] >= 1);
    assert!(versions.iter().all(|version| *version == versions[0]), "{versions:?}");
    assert_eq!(again.unwrap(), versions[0]);
}

#[tokio::test]
async fn two_sweeps_at_once_sweep_each_key_once() {
    let Some(db) = database().await else { return };
    let other = second_process(&db).await;
    let owner = add_user(&*db.store).await;
    let past = now() - TimeDelta::hours(1);
    let mut expired = Vec::new();
    for _ in 0..40 {
        expired.push(add_key(&*db.store, &owner, None, Some(past)).await.id);
    }
    let at = now();
    let (first, second) =
        tokio::join!(db.store.sweep(at, false, false, "one".into()), other.sweep(at, false, false, "two".into()));
    let (first, second) = (first.unwrap(), second.unwrap());

    let mut swept: Vec<Uuid> = first.disabled.iter().chain(&second.disabled).map(|key| key.id).collect();
    swept.sort();
    expired.sort();
    assert_eq!(swept, expired, "every expired key disabled by exactly one of the sweeps");
    assert!(first.deleted.is_empty() && second.deleted.is_empty());
    let audited =
        db.store.audit(None, 1000).await.unwrap().iter().filter(|entry| entry.action == "sweep_disable").count();
    assert_eq!(audited, expired.len());
}

#[tokio::test]
async fn a_sweep_skips_while_another_process_holds_the_lock() {
    let Some(db) = database().await else { return };
    let owner = add_user(&*db.store).await;
    let key = add_key(&*db.store, &owner, None, Some(now() - TimeDelta::minutes(1))).await;
    let mut holder = PgConnection::connect(&db.url).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(postgres::SWEEP_LOCK)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(locked);

    let report = db.store.sweep(now(), true, false, "test".into()).await.unwrap();
    assert!(report.skipped && report.deleted.is_empty() && report.disabled.is_empty(), "{report:?}");
    tx.rollback().await.unwrap();
    let report = db.store.sweep(now(), true, false, "test".into()).await.unwrap();
    assert!(!report.skipped);
    assert_eq!(report.deleted.iter().map(|swept| swept.id).collect::<Vec<_>>(), [key.id]);
}

#[tokio::test]
async fn concurrent_deductions_never_overdraw() {
    let Some(db) = database().await else { return };
    let other = second_process(&db).await;
    let owner = add_user(&*db.store).await;
    let key = add_key(&*db.store, &owner, Some(Money::from_usd(10)), None).await;
    // Twenty deductions of $1 from two processes: exactly ten fit.
    let stores = [db.store.clone(), other];
    let outcomes = join_all((0..20).map(|i| {
        let store = stores[i % 2].clone();
        let adjustment = adjustment(&key, -1_000_000, None);
        async move { store.adjust_balance(&adjustment).await.unwrap() }
    }))
    .await;
    let applied = outcomes.iter().filter(|outcome| matches!(outcome, AdjustOutcome::Applied(_))).count();
    let refused = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, AdjustOutcome::InsufficientBalance { remaining } if remaining.is_zero()))
        .count();
    assert_eq!((applied, refused), (10, 10), "{outcomes:?}");
    let key = db.store.key(key.id).await.unwrap().unwrap();
    assert_eq!(key.credited, Some(Money::ZERO));
    assert_eq!(db.store.ledger(key.id, None).await.unwrap().len(), 10);
}

#[tokio::test]
async fn idempotent_twins_racing_apply_once() {
    let Some(db) = database().await else { return };
    let other = second_process(&db).await;
    let owner = add_user(&*db.store).await;
    let key = add_key(&*db.store, &owner, Some(Money::ZERO), None).await;
    let stores = [db.store.clone(), other];
    let outcomes = join_all((0..8).map(|i| {
        let store = stores[i % 2].clone();
        let adjustment = adjustment(&key, 5_000_000, Some("order-17"));
        async move { store.adjust_balance(&adjustment).await.unwrap() }
    }))
    .await;
    let applied = outcomes.iter().filter(|outcome| matches!(outcome, AdjustOutcome::Applied(_))).count();
    let replayed = outcomes.iter().filter(|outcome| matches!(outcome, AdjustOutcome::Replayed(_))).count();
    assert_eq!((applied, replayed), (1, 7), "{outcomes:?}");
    assert_eq!(db.store.key(key.id).await.unwrap().unwrap().credited, Some(Money::from_usd(5)));
}

#[tokio::test]
async fn racing_usage_reports_are_counted_once() {
    let Some(db) = database().await else { return };
    let other = second_process(&db).await;
    let owner = add_user(&*db.store).await;
    let key = add_key(&*db.store, &owner, Some(Money::from_usd(1)), None).await;
    let stores = [db.store.clone(), other];
    let outcomes = join_all((0..20).map(|i| {
        let store = stores[i % 2].clone();
        // Ten distinct requests, each reported twice (a gateway retrying).
        let usage = UsageRecord {
            request_id: format!("req-{}", i / 2),
            api_key_id: key.id,
            provider: Some("openai".into()),
            model: Some("gpt-4o".into()),
            api_format: None,
            total_tokens: 100,
            cost: Money::from_micros(1_000),
            response_time_ms: Some(50),
            created_at: now(),
        };
        async move { store.record_usage(&usage).await.unwrap() }
    }))
    .await;
    let recorded = outcomes.iter().filter(|outcome| **outcome == UsageOutcome::Recorded { charged: true }).count();
    let duplicates = outcomes.iter().filter(|outcome| **outcome == UsageOutcome::Duplicate).count();
    assert_eq!((recorded, duplicates), (10, 10), "{outcomes:?}");
    assert_eq!(db.store.key(key.id).await.unwrap().unwrap().used, Money::from_micros(10_000));
    let today = now().date_naive();
    let daily = db.store.daily_usage(key.id, today, today).await.unwrap();
    assert_eq!((daily[0].requests, daily[0].tokens, daily[0].cost), (10, 1_000, Money::from_micros(10_000)));
}

#[tokio::test]
async fn resealing_pages_through_every_key_or_changes_nothing() {
    let Some(db) = database().await else { return };
    let owner = add_user(&*db.store).await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(add_key(&*db.store, &owner, None, None).await);
    }
    let refuse_last =
        |id: Uuid, _: &str| if id == keys[2].id { Err("cannot open".to_string()) } else { Ok("v1:new".into()) };
    let outcome = db.store.reseal_all_keys(&refuse_last, &audit("rekey", None)).await.unwrap();
    assert_eq!(outcome, ResealOutcome::Failed { key_id: keys[2].id, reason: "cannot open".into() });
    assert_eq!(db.store.key(keys[0].id).await.unwrap().unwrap().key_ciphertext, "v1:test", "rolled back");

    let outcome = db.store.reseal_all_keys(&|_, old: &str| Ok(format!("{old}+")), &audit("rekey", None)).await.unwrap();
    assert_eq!(outcome, ResealOutcome::Resealed(3));
    for key in &keys {
        assert_eq!(db.store.key(key.id).await.unwrap().unwrap().key_ciphertext, "v1:test+");
    }
}
