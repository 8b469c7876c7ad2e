//! `Store::bulk_load` is a fast path, not a different meaning: on every backend, loading a batch
//! leaves the same users, keys, ledger, rollups (per key, per owner and the fleet's), charges and
//! `last_used_at` as inserting the users and keys one by one and recording the usage rows one by
//! one, and skips the same rows (request ids already present, twice in the batch, or of unknown
//! keys).

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use keytop::crypto::{hash_key, key_hint};
use keytop::domain::{ApiKey, KeyQuery, LedgerEntry, Money, MoneyPlan, User, UserQuery};
use keytop::store::{AuditRecord, BulkLoad, Store, UsageOutcome, UsageRecord};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use common::TestDb;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn audit(action: &str) -> AuditRecord {
    AuditRecord {
        at: at(0),
        actor: "loader".into(),
        actor_key: None,
        action: action.into(),
        api_key_id: None,
        details: serde_json::json!({ "test": action }),
    }
}

fn key(owner: &User, name: &str, credited: Option<Option<i64>>) -> ApiKey {
    let id = Uuid::new_v4();
    let plaintext = format!("sk-{}", id.simple());
    ApiKey {
        id,
        user_id: owner.id,
        owner_name: owner.name.clone(),
        owner_active: owner.is_active,
        key_hash: hash_key(&plaintext),
        key_ciphertext: format!("v1:sealed-{}", id.simple()),
        key_hint: key_hint(&plaintext),
        name: name.into(),
        allowed_providers: Some(vec!["openai".into()]),
        allowed_api_formats: None,
        allowed_models: None,
        rate_limit: Some(100),
        concurrent_limit: None,
        expires_at: None,
        is_standalone: credited.is_some(),
        credited: credited.flatten().map(Money::from_micros),
        used: Money::ZERO,
        auto_delete_on_expiry: None,
        is_active: true,
        last_used_at: None,
        created_at: at(-86_400 * 30),
        updated_at: at(-86_400 * 30),
        money: MoneyPlan::default(),
        previous_secret_until: None,
    }
}

fn initial_credit(key: &ApiKey) -> Option<LedgerEntry> {
    key.credited.map(|amount| LedgerEntry {
        id: 0,
        api_key_id: key.id,
        at: key.created_at,
        actor: "loader".into(),
        actor_key: None,
        delta: amount,
        credited_after: Some(amount),
        note: Some("initial balance".into()),
        idempotency_key: None,
    })
}

/// Usage over ten UTC days for `keys`, with request ids repeated inside the batch, ids that
/// `taken` already holds, and rows of a key that does not exist.
fn usage_rows(rng: &mut StdRng, keys: &[Uuid], count: usize, taken: &[String]) -> Vec<UsageRecord> {
    let mut rows: Vec<UsageRecord> = Vec::with_capacity(count);
    for serial in 0..count {
        let request_id = match rng.gen_range(0..100) {
            0..=4 if !rows.is_empty() => rows[rng.gen_range(0..rows.len())].request_id.clone(),
            5..=6 if !taken.is_empty() => taken[rng.gen_range(0..taken.len())].clone(),
            _ => format!("req-{serial}"),
        };
        let api_key_id = if rng.gen_range(0..100) == 0 { Uuid::new_v4() } else { keys[rng.gen_range(0..keys.len())] };
        let tokens = rng.gen_range(0..5_000);
        rows.push(UsageRecord {
            request_id,
            api_key_id,
            provider: Some("openai".into()),
            model: rng.gen_bool(0.5).then(|| "gpt-4o".into()),
            api_format: None,
            total_tokens: tokens,
            cost: Money::from_micros(tokens * rng.gen_range(1..9)),
            response_time_ms: rng.gen_bool(0.9).then(|| rng.gen_range(10..2_000)),
            created_at: at(-rng.gen_range(0..10 * 86_400)) + Duration::milliseconds(rng.gen_range(0..1_000)),
        });
    }
    rows
}

/// A second, empty database of the same backend.
async fn twin(db: &TestDb) -> TestDb {
    if db.label == "sqlite" { common::sqlite_db().await } else { common::postgres_db().await.expect("postgres") }
}

/// Everything a load can change, read back through the trait, with generated ids blanked.
async fn observable(store: &Arc<dyn Store>, keys: &[Uuid]) -> String {
    let mut out = String::new();
    let mut users: Vec<_> = store.users().await.unwrap();
    users.sort_by(|a, b| a.user.name.cmp(&b.user.name));
    out.push_str(&format!("{users:?}\n"));
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let last = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
    for &id in keys {
        let key = store.key(id).await.unwrap().expect("key exists");
        out.push_str(&format!("{key:?}\n"));
        let ledger: Vec<LedgerEntry> =
            store.ledger(id, None).await.unwrap().into_iter().map(|entry| LedgerEntry { id: 0, ..entry }).collect();
        out.push_str(&format!("{ledger:?}\n"));
        out.push_str(&format!("{:?}\n", store.daily_usage(id, first, last).await.unwrap()));
    }
    // The owners' and the fleet's rollups.
    for user in &users {
        out.push_str(&format!("{:?}\n", store.user_daily_usage(user.user.id, first, last).await.unwrap()));
    }
    out.push_str(&format!("{:?}\n", store.fleet_daily_usage(first, last).await.unwrap()));
    // The users' page: key counts, spend and last use (kept in the owners' rollup).
    let page =
        UserQuery { filter: None, name: None, after: None, limit: 1_000, first_day: first, last_day: last, now: at(0) };
    out.push_str(&format!("{:?}\n", store.user_overviews(&page).await.unwrap()));
    let listed = store.list_keys(&KeyQuery { limit: 1_000, ..KeyQuery::default() }).await.unwrap();
    out.push_str(&format!("{} keys listed\n", listed.len()));
    out
}

/// Loads the same users, keys and usage in bulk into `db` and one by one into its twin, with the
/// same usage recorded beforehand in both, then compares everything observable.
async fn bulk_equals_one_by_one(db: TestDb, usage_count: usize, seed: u64) {
    let one_by_one = twin(&db).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let users = vec![
        User { id: Uuid::new_v4(), name: "ada".into(), is_active: true, created_at: at(-86_400 * 40) },
        User { id: Uuid::new_v4(), name: "bob".into(), is_active: false, created_at: at(-86_400 * 40) },
    ];
    let keys = vec![
        key(&users[0], "prepaid", Some(Some(50_000_000))),
        key(&users[0], "prepaid-unlimited", Some(None)),
        key(&users[1], "plain", None),
        key(&users[1], "prepaid-small", Some(Some(1_000))),
        key(&users[0], "idle", Some(Some(7_000_000))),
    ];
    let credits: Vec<LedgerEntry> = keys.iter().filter_map(initial_credit).collect();
    let key_ids: Vec<Uuid> = keys.iter().map(|key| key.id).collect();
    let used_keys = &key_ids[..4];

    // Both: users and keys first (bulk on one side), then some usage recorded one by one.
    db.store
        .bulk_load(
            &BulkLoad { users: users.clone(), keys: keys.clone(), initial_credits: credits.clone(), usage: vec![] },
            &audit("bulk"),
        )
        .await
        .unwrap();
    for user in &users {
        one_by_one.store.insert_user(user, &audit("user")).await.unwrap();
    }
    for key in &keys {
        let credit = credits.iter().find(|entry| entry.api_key_id == key.id);
        one_by_one.store.insert_key(key, credit, &audit("key")).await.unwrap();
    }
    let before = usage_rows(&mut rng, used_keys, 50, &[]);
    let mut taken = Vec::new();
    for row in &before {
        for store in [&db.store, &one_by_one.store] {
            store.record_usage(row).await.unwrap();
        }
        taken.push(row.request_id.clone());
    }

    // The batch: fresh rows, repeats inside it, ids already recorded, unknown keys.
    let batch = usage_rows(&mut rng, used_keys, usage_count, &taken);
    db.store.bulk_load(&BulkLoad { usage: batch.clone(), ..BulkLoad::default() }, &audit("bulk")).await.unwrap();
    let mut outcomes = [0usize; 3];
    for row in &batch {
        match one_by_one.store.record_usage(row).await.unwrap() {
            UsageOutcome::Recorded { .. } => outcomes[0] += 1,
            UsageOutcome::Duplicate => outcomes[1] += 1,
            UsageOutcome::UnknownKey => outcomes[2] += 1,
        }
    }
    assert!(outcomes.iter().all(|&n| n > 0), "the batch exercises every outcome: {outcomes:?}");

    let expected = observable(&one_by_one.store, &key_ids).await;
    assert_eq!(observable(&db.store, &key_ids).await, expected, "bulk load differs from one-by-one");

    // Loading the same batch again changes nothing: every request id is taken now.
    db.store.bulk_load(&BulkLoad { usage: batch, ..BulkLoad::default() }, &audit("bulk")).await.unwrap();
    assert_eq!(observable(&db.store, &key_ids).await, expected, "a repeated load must skip every row");

    // One audit row per load, not one per row.
    let loads = db.store.audit(None, 1_000).await.unwrap().iter().filter(|entry| entry.action == "bulk").count();
    assert_eq!(loads, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_load_equals_one_by_one_operations() {
    for_each_backend!(|db| {
        bulk_equals_one_by_one(db, 400, 7).await;
    });
}

/// More rows than one multi-row statement takes, so repeats and taken ids straddle statements.
#[tokio::test(flavor = "multi_thread")]
async fn bulk_load_across_statement_boundaries_equals_one_by_one() {
    for_each_backend!(|db| {
        bulk_equals_one_by_one(db, 4_500, 11).await;
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_bulk_load_writes_nothing() {
    for_each_backend!(|db| {
        let user = User { id: Uuid::new_v4(), name: "ada".into(), is_active: true, created_at: at(0) };
        let first = key(&user, "one", None);
        let mut clash = key(&user, "two", None);
        clash.key_hash = first.key_hash.clone();
        let batch = BulkLoad { users: vec![user], keys: vec![first.clone(), clash], ..BulkLoad::default() };
        assert!(db.store.bulk_load(&batch, &audit("bulk")).await.is_err());
        assert!(db.store.users().await.unwrap().is_empty());
        assert!(db.store.key(first.id).await.unwrap().is_none());
        assert!(db.store.audit(None, 10).await.unwrap().is_empty());
    });
}
