//! The contract of `Store`: every test runs on SQLite and, when `KEYTOP_TEST_POSTGRES` is set, on
//! PostgreSQL. Tests go through the trait; the few raw checks use SQL both backends accept.

mod common;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use keytop::crypto::{hash_key, key_hint};
use keytop::domain::money::MAX_AMOUNT;
use keytop::domain::{
    ActiveFilter, ApiKey, AuditQuery, Budget, CurrentPeriods, KeyAdmission, KeyCounts, KeyPatch, KeyQuery, KeyScope,
    LedgerEntry, LowBalanceLine, Money, MoneyPlan, PageFrom, Patch, Period, PlanPatch, SortKey, SpenderKind, User,
    UserQuery,
};
use keytop::store::{
    AdjustOutcome, AuditRecord, BalanceAdjustment, BalanceChange, BulkLoad, Store, StoreError, UsageOutcome,
    UsageRecord,
};
use uuid::Uuid;

use common::TestDb;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fixed instant plus `seconds`, so every time in these tests is reproducible.
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn audit(action: &str, key: Option<Uuid>) -> AuditRecord {
    AuditRecord {
        at: at(0),
        actor: "tester".into(),
        actor_key: None,
        action: action.into(),
        api_key_id: key,
        details: serde_json::json!({ "test": action }),
    }
}

async fn add_user(store: &dyn Store, name: &str) -> User {
    let user = User { id: Uuid::new_v4(), name: name.into(), is_active: true, created_at: at(0) };
    store.insert_user(&user, &audit("user_create", None)).await.unwrap();
    user
}

/// A key of `owner` with fixed, realistic fields: no restrictions, default limits, no expiry.
fn new_key(owner: &User, name: &str, created_at: DateTime<Utc>) -> ApiKey {
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
        allowed_providers: None,
        allowed_api_formats: None,
        allowed_models: None,
        rate_limit: Some(100),
        concurrent_limit: Some(5),
        expires_at: None,
        is_standalone: false,
        credited: None,
        used: Money::ZERO,
        auto_delete_on_expiry: None,
        is_active: true,
        last_used_at: None,
        created_at,
        updated_at: created_at,
        money: MoneyPlan::default(),
        previous_secret_until: None,
    }
}

fn prepaid(mut key: ApiKey, credited: Option<Money>) -> ApiKey {
    key.is_standalone = true;
    key.credited = credited;
    key
}

async fn insert(store: &dyn Store, key: &ApiKey) {
    store.insert_key(key, None, &audit("create", Some(key.id))).await.unwrap();
}

fn usage(request_id: &str, key: Uuid, cost_micros: i64, created_at: DateTime<Utc>) -> UsageRecord {
    UsageRecord {
        request_id: request_id.into(),
        api_key_id: key,
        provider: Some("openai".into()),
        model: Some("gpt-4o".into()),
        api_format: Some("chat".into()),
        total_tokens: 100 + cost_micros % 7,
        cost: Money::from_micros(cost_micros),
        response_time_ms: Some(40 + cost_micros % 11),
        created_at,
    }
}

fn adjustment(key: Uuid, change: BalanceChange, idempotency_key: Option<&str>) -> BalanceAdjustment {
    BalanceAdjustment {
        key_id: key,
        change,
        at: at(60),
        actor: "cashier".into(),
        actor_key: None,
        note: Some("contract".into()),
        idempotency_key: idempotency_key.map(str::to_string),
    }
}

fn add(micros: i64) -> BalanceChange {
    BalanceChange::Add(Money::from_micros(micros))
}

fn ids(keys: &[ApiKey]) -> Vec<Uuid> {
    keys.iter().map(|key| key.id).collect()
}

fn id_set(keys: impl IntoIterator<Item = Uuid>) -> BTreeSet<Uuid> {
    keys.into_iter().collect()
}

fn all_keys() -> KeyQuery {
    KeyQuery { limit: 1_000, now: Some(at(0)), ..KeyQuery::default() }
}

async fn list(store: &dyn Store, query: KeyQuery) -> Vec<Uuid> {
    ids(&store.list_keys(&query).await.unwrap())
}

/// One `i64` read with raw SQL both backends accept; `$1`, when given, is a key id compared as
/// text (`CAST(… AS TEXT) = $1`).
async fn raw_i64(db: &TestDb, sql: &'static str, key: Option<Uuid>) -> i64 {
    let key = key.map(|id| id.hyphenated().to_string());
    if db.label == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        let value = sqlx::query_scalar(sql).bind(key).fetch_one(&pool).await.unwrap();
        pool.close().await;
        value
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let value = sqlx::query_scalar(sql).bind(key).fetch_one(&pool).await.unwrap();
        pool.close().await;
        value
    }
}

async fn actions(store: &dyn Store, key: Option<Uuid>) -> Vec<String> {
    store.audit(key, 1_000).await.unwrap().into_iter().map(|entry| entry.action).collect()
}

// ---------------------------------------------------------------------------------------------
// Users and keys

#[tokio::test(flavor = "multi_thread")]
async fn users_are_unique_by_name_and_can_be_disabled() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let alice = add_user(store, "alice").await;
        let twin = User { id: Uuid::new_v4(), ..alice.clone() };
        let error = store.insert_user(&twin, &audit("user_create", None)).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");

        assert_eq!(store.user_by_name("alice").await.unwrap(), Some(alice.clone()));
        assert_eq!(store.user_by_name("nobody").await.unwrap(), None);
        insert(store, &new_key(&alice, "one", at(1))).await;
        let summaries = store.users().await.unwrap();
        assert_eq!(summaries.len(), 1);
        assert_eq!((summaries[0].user.clone(), summaries[0].key_count), (alice.clone(), 1));

        assert!(store.set_user_active(alice.id, false, &audit("user_disable", None)).await.unwrap());
        assert!(!store.user_by_name("alice").await.unwrap().unwrap().is_active);
        let keys = store.list_keys(&all_keys()).await.unwrap();
        assert!(!keys[0].owner_active, "keys carry their owner's state");
        assert!(!store.set_user_active(Uuid::new_v4(), false, &audit("user_disable", None)).await.unwrap());
        assert_eq!(actions(store, None).await, ["user_disable", "create", "user_create"]);
    });
}

/// Runs raw SQL on the test database: `sqlite` on SQLite, `postgres` on PostgreSQL.
async fn raw_execute(db: &TestDb, sqlite: &'static str, postgres: &'static str) {
    if db.label == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlite).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::raw_sql(postgres).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_keys_are_disabled_together_or_not_at_all() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let alice = add_user(store, "alice").await;
        let bob = add_user(store, "bob").await;
        let (first, second, off) =
            (new_key(&alice, "a1", at(1)), new_key(&alice, "a2", at(2)), new_key(&alice, "a3", at(3)));
        let others = new_key(&bob, "b1", at(4));
        for key in [&first, &second, &off, &others] {
            insert(store, key).await;
        }
        store.set_key_active(off.id, false, &audit("key_disable", Some(off.id))).await.unwrap();
        let disable_all = AuditRecord { at: at(10), ..audit("key_disable_all", None) };
        let active_names = || async {
            let keys = store.list_keys(&all_keys()).await.unwrap();
            keys.into_iter().filter(|key| key.is_active).map(|key| key.name).collect::<BTreeSet<String>>()
        };
        let rows_written = "SELECT COUNT(*) FROM audit_log WHERE action = 'key_disable_all' OR $1 IS NOT NULL";

        // The second audit row fails: the first key's change and audit row go back with it.
        raw_execute(
            &db,
            "CREATE TRIGGER refuse_second BEFORE INSERT ON audit_log WHEN NEW.action = 'key_disable_all' \
             AND (SELECT COUNT(*) FROM audit_log WHERE action = 'key_disable_all') >= 1 \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            "CREATE FUNCTION refuse_second() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF (SELECT COUNT(*) FROM audit_log WHERE action = 'key_disable_all') >= 1 THEN \
             RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_second BEFORE INSERT ON audit_log FOR EACH ROW \
             WHEN (NEW.action = 'key_disable_all') EXECUTE FUNCTION refuse_second();",
        )
        .await;
        assert!(store.disable_user_keys(alice.id, &disable_all).await.is_err());
        let everything: BTreeSet<String> = ["a1", "a2", "b1"].map(String::from).into();
        assert_eq!(active_names().await, everything, "nothing half-done");
        assert_eq!(raw_i64(&db, rows_written, None).await, 0, "no audit row either");

        raw_execute(&db, "DROP TRIGGER refuse_second;", "DROP TRIGGER refuse_second ON audit_log;").await;
        let disabled = store.disable_user_keys(alice.id, &disable_all).await.unwrap();
        assert_eq!(id_set(disabled), id_set([first.id, second.id]), "the enabled keys, and only the user's");
        assert_eq!(active_names().await, BTreeSet::from(["b1".to_string()]));
        let key = store.key(first.id).await.unwrap().unwrap();
        assert_eq!(key.updated_at, at(10));
        assert_eq!(raw_i64(&db, rows_written, None).await, 2, "one audit row per key");
        for key in [&first, &second] {
            assert_eq!(actions(store, Some(key.id)).await, ["key_disable_all", "create"]);
        }
        assert_eq!(actions(store, Some(off.id)).await, ["key_disable", "create"], "already off: no row");
        assert!(store.disable_user_keys(alice.id, &disable_all).await.unwrap().is_empty(), "nothing left");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_needing_attention_come_in_order_and_bounded() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let prepaid_with = |name: &str, credited: i64, used: i64, line: Option<i64>| {
            let mut key = prepaid(new_key(&owner, name, at(0)), Some(Money::from_usd(credited)));
            key.used = Money::from_usd(used);
            key.money.low_balance = line.map(Money::from_usd);
            key
        };
        let exhausted = prepaid_with("exhausted", 5, 5, None);
        let under_default = prepaid_with("under-default", 10, 7, None);
        let under_own_line = prepaid_with("under-own-line", 20, 5, Some(20));
        let mut disabled = prepaid_with("disabled", 5, 5, None);
        disabled.is_active = false;
        let others = [
            prepaid_with("plenty", 10, 1, None),
            prepaid_with("no-line", 10, 8, Some(0)),
            prepaid(new_key(&owner, "unlimited", at(0)), None),
            new_key(&owner, "billed-to-owner", at(0)),
            disabled,
        ];
        for key in [&exhausted, &under_default, &under_own_line].into_iter().chain(&others) {
            insert(store, key).await;
        }
        let names = |keys: Vec<ApiKey>| keys.into_iter().map(|key| key.name).collect::<Vec<_>>();
        let low = store.low_balance_keys(Money::from_usd(5), 10).await.unwrap();
        assert_eq!(names(low), ["exhausted", "under-default", "under-own-line"], "least remaining first");
        assert_eq!(names(store.low_balance_keys(Money::from_usd(5), 2).await.unwrap()), ["exhausted", "under-default"]);
        let low = store.low_balance_keys(Money::ZERO, 10).await.unwrap();
        assert_eq!(names(low), ["exhausted", "under-own-line"], "no default line: exhausted or under their own");

        let expiring_at = |name: &str, expires: Option<DateTime<Utc>>, active: bool| {
            let mut key = new_key(&owner, name, at(0));
            key.expires_at = expires;
            key.is_active = active;
            key
        };
        let (now, week) = (at(1_000), Duration::days(7));
        for key in [
            expiring_at("expired", Some(at(500)), true),
            expiring_at("in-3-days", Some(now + Duration::days(3)), true),
            expiring_at("in-an-hour", Some(now + Duration::hours(1)), true),
            expiring_at("in-8-days", Some(now + Duration::days(8)), true),
            expiring_at("never", None, true),
            expiring_at("off", Some(now + Duration::hours(2)), false),
        ] {
            insert(store, &key).await;
        }
        let expiring = store.expiring_keys(now, now + week, 10).await.unwrap();
        assert_eq!(names(expiring), ["in-an-hour", "in-3-days"], "soonest first, enabled, in the window");
        assert_eq!(names(store.expiring_keys(now, now + week, 1).await.unwrap()), ["in-an-hour"]);
    });
}

/// The low-balance list follows every write of a balance: charges past the line and past zero, a
/// top-up back above it, balances a few micros apart, and a default line higher than SQLite's
/// index reaches for keys without their own (migration 0020).
#[tokio::test(flavor = "multi_thread")]
async fn the_low_balance_list_follows_charges_and_top_ups() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let prepaid_at = |name: &str, credited_micros: i64| {
            prepaid(new_key(&owner, name, at(0)), Some(Money::from_micros(credited_micros)))
        };
        let spender = prepaid_at("spender", 5_200_000);
        let near = [prepaid_at("4.9991", 4_999_100), prepaid_at("4.9990", 4_999_000), prepaid_at("4.99905", 4_999_050)];
        for key in [&spender].into_iter().chain(&near) {
            insert(store, key).await;
        }
        let low_names = || async {
            let keys = store.low_balance_keys(Money::from_usd(5), 10).await.unwrap();
            keys.into_iter().map(|key| key.name).collect::<Vec<_>>()
        };
        assert_eq!(low_names().await, ["4.9990", "4.99905", "4.9991"], "a few micros apart");

        // 5.2 USD charged down in steps: at the line (not under it), under it behind the three
        // others, past them, then past zero.
        let charges = [100_000, 100_000, 600, 900, 8_500, 500, 1, 5_000_000, 200];
        let mut expected_remaining = 5_200_000;
        for (n, cost) in charges.into_iter().enumerate() {
            store.record_usage(&usage(&format!("charge-{n}"), spender.id, cost, at(n as i64))).await.unwrap();
            expected_remaining -= cost;
            let names = low_names().await;
            let position = names.iter().position(|name| name == "spender");
            match expected_remaining {
                remaining if remaining >= 5_000_000 => assert_eq!(position, None, "{remaining}: {names:?}"),
                remaining if remaining < 4_999_000 => assert_eq!(position, Some(0), "{remaining}: {names:?}"),
                remaining => assert_eq!(position, Some(3), "{remaining}: {names:?}"),
            }
        }
        assert_eq!(expected_remaining, -10_701);
        assert_eq!(low_names().await, ["spender", "4.9990", "4.99905", "4.9991"], "charged past zero: first");

        store.adjust_balance(&adjustment(spender.id, add(5_010_702), None)).await.unwrap();
        assert_eq!(low_names().await, ["4.9990", "4.99905", "4.9991"], "topped up to 5.000001 USD: off the list");
        store.adjust_balance(&adjustment(near[2].id, add(-51), None)).await.unwrap();
        assert_eq!(low_names().await, ["4.99905", "4.9990", "4.9991"], "4.99905 USD less 51 micros: first");

        insert(store, &prepaid_at("15", 15_000_000)).await;
        let under_20 = store.low_balance_keys(Money::from_usd(20), 10).await.unwrap();
        let under_20: Vec<_> = under_20.into_iter().map(|key| key.name).collect();
        assert_eq!(under_20, ["4.99905", "4.9990", "4.9991", "spender", "15"], "a default line of 20 USD");
        assert_eq!(low_names().await, ["4.99905", "4.9990", "4.9991"], "15 USD is over the 5 USD line");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_round_trip_with_every_field() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let mut key = prepaid(new_key(&owner, "full", at(-100)), Some(Money::from_micros(12_345_678)));
        key.allowed_providers = Some(vec!["openai".into(), "anthropic".into()]);
        key.allowed_api_formats = Some(vec!["chat".into()]);
        key.allowed_models = Some(vec!["gpt-4o".into(), "claude".into()]);
        key.rate_limit = None;
        key.concurrent_limit = Some(7);
        key.expires_at = Some(at(86_400) + Duration::milliseconds(123));
        key.auto_delete_on_expiry = Some(false);
        key.last_used_at = Some(at(-5));
        key.used = Money::from_micros(1);
        let ledger = LedgerEntry {
            id: 0,
            api_key_id: key.id,
            at: at(-100),
            actor: "tester".into(),
            actor_key: None,
            delta: Money::from_micros(12_345_678),
            credited_after: Some(Money::from_micros(12_345_678)),
            note: Some("initial".into()),
            idempotency_key: None,
        };
        store.insert_key(&key, Some(&ledger), &audit("create", Some(key.id))).await.unwrap();

        assert_eq!(store.key(key.id).await.unwrap(), Some(key.clone()));
        assert_eq!(store.key(Uuid::new_v4()).await.unwrap(), None);
        let stored_ledger = store.ledger(key.id, None).await.unwrap();
        assert_eq!(stored_ledger.len(), 1);
        assert_eq!(LedgerEntry { id: 0, ..stored_ledger[0].clone() }, ledger);

        let same_hash = ApiKey { id: Uuid::new_v4(), ..key.clone() };
        let error = store.insert_key(&same_hash, None, &audit("create", Some(same_hash.id))).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
        assert_eq!(store.count_keys(at(0)).await.unwrap().total, 1, "a refused insert writes nothing");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_found_by_id_prefix_and_exact_name() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let mut keys = Vec::new();
        for n in 0..6 {
            let key = new_key(&owner, if n < 3 { "shared" } else { "other" }, at(n));
            insert(store, &key).await;
            keys.push(key);
        }
        let target = &keys[4];
        let full = target.id.hyphenated().to_string();
        for prefix in [&full[..8], &full[..13], full.as_str()] {
            let found = ids(&store.keys_by_id_prefix(prefix, 10).await.unwrap());
            let expected: Vec<Uuid> =
                keys.iter().filter(|k| k.id.hyphenated().to_string().starts_with(prefix)).map(|k| k.id).collect();
            assert_eq!(found, expected, "prefix {prefix}");
            assert!(found.contains(&target.id));
        }
        assert_eq!(store.keys_by_id_prefix("", 100).await.unwrap().len(), 6);
        assert_eq!(store.keys_by_id_prefix("", 2).await.unwrap().len(), 2, "limit");
        assert!(store.keys_by_id_prefix("zzzz", 10).await.unwrap().is_empty());

        let shared = id_set(ids(&store.keys_by_name("shared", 10).await.unwrap()));
        assert_eq!(shared, id_set(keys[..3].iter().map(|k| k.id)));
        assert_eq!(store.keys_by_name("shared", 2).await.unwrap().len(), 2);
        assert!(store.keys_by_name("Shared", 10).await.unwrap().is_empty(), "names match exactly");
    });
}

// ---------------------------------------------------------------------------------------------
// Lists

#[tokio::test(flavor = "multi_thread")]
async fn lists_filter_by_scope_owner_and_state() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let (ann, bob) = (add_user(store, "ann").await, add_user(store, "bob").await);
        let plain = new_key(&ann, "plain", at(1));
        let standalone = prepaid(new_key(&ann, "wallet", at(2)), Some(Money::from_usd(5)));
        let mut expired = new_key(&bob, "old", at(3));
        expired.expires_at = Some(at(0));
        let mut disabled = new_key(&bob, "off", at(4));
        disabled.is_active = false;
        let mut later = prepaid(new_key(&bob, "later", at(5)), None);
        later.expires_at = Some(at(1));
        for key in [&plain, &standalone, &expired, &disabled, &later] {
            insert(store, key).await;
        }
        let query = |scope, owner, active| KeyQuery { scope, owner, active, ..all_keys() };
        let cases = [
            (query(KeyScope::All, None, ActiveFilter::Any), vec![&plain, &standalone, &expired, &disabled, &later]),
            (query(KeyScope::UserKeys, None, ActiveFilter::Any), vec![&plain, &expired, &disabled]),
            (query(KeyScope::Standalone, None, ActiveFilter::Any), vec![&standalone, &later]),
            (query(KeyScope::All, Some(ann.id), ActiveFilter::Any), vec![&plain, &standalone]),
            (query(KeyScope::UserKeys, Some(bob.id), ActiveFilter::Any), vec![&expired, &disabled]),
            // At 12:00:00 "expired" expires exactly now (expired), "later" one second later.
            (query(KeyScope::All, None, ActiveFilter::Active), vec![&plain, &standalone, &later]),
            (query(KeyScope::All, None, ActiveFilter::Inactive), vec![&expired, &disabled]),
            (query(KeyScope::Standalone, Some(bob.id), ActiveFilter::Active), vec![&later]),
        ];
        for (query, expected) in cases {
            let found = id_set(list(store, query.clone()).await);
            assert_eq!(found, id_set(expected.iter().map(|k| k.id)), "{query:?}");
        }
        let later_query = KeyQuery { active: ActiveFilter::Inactive, now: Some(at(1)), ..all_keys() };
        assert_eq!(id_set(list(store, later_query).await), id_set([expired.id, disabled.id, later.id]));

        // A disabled owner's keys are refused by verify: not active, whatever their own state.
        store.set_user_active(ann.id, false, &audit("user_disable", None)).await.unwrap();
        let active = KeyQuery { active: ActiveFilter::Active, ..all_keys() };
        assert_eq!(id_set(list(store, active).await), id_set([later.id]));
        let inactive = KeyQuery { active: ActiveFilter::Inactive, ..all_keys() };
        assert_eq!(id_set(list(store, inactive).await), id_set([plain.id, standalone.id, expired.id, disabled.id]));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_narrow_to_keys_expiring_soon_and_to_low_balances() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let ann = add_user(store, "ann").await;
        let week = Duration::days(7);
        let expiring = |name: &str, expires_at: Option<DateTime<Utc>>| {
            let mut key = new_key(&ann, name, at(0));
            key.expires_at = expires_at;
            key
        };
        let tomorrow = expiring("tomorrow", Some(at(86_400)));
        let at_the_edge = expiring("edge", Some(at(0) + week));
        let next_month = expiring("next-month", Some(at(30 * 86_400)));
        let gone = expiring("gone", Some(at(0)));
        let never = expiring("never", None);
        let mut off = expiring("off", Some(at(3_600)));
        off.is_active = false;

        // Remaining balances against the default line ($5) or the key's own.
        let low = prepaid(new_key(&ann, "low", at(0)), Some(Money::from_usd(4)));
        let mut owed = prepaid(new_key(&ann, "owed", at(0)), Some(Money::from_usd(1)));
        owed.used = Money::from_usd(3);
        let plenty = prepaid(new_key(&ann, "plenty", at(0)), Some(Money::from_usd(50)));
        let mut own_line = prepaid(new_key(&ann, "own-line", at(0)), Some(Money::from_usd(50)));
        own_line.money.low_balance = Some(Money::from_usd(80));
        let mut no_line = prepaid(new_key(&ann, "no-line", at(0)), Some(Money::from_usd(1)));
        no_line.money.low_balance = Some(Money::ZERO);
        let unlimited = prepaid(new_key(&ann, "unlimited", at(0)), None);
        for key in [&tomorrow, &at_the_edge, &next_month, &gone, &never, &off, &low, &owed, &plenty, &own_line]
            .into_iter()
            .chain([&no_line, &unlimited])
        {
            insert(store, key).await;
        }
        store.record_usage(&usage("owed", owed.id, 3_000_000, at(-60))).await.unwrap();

        let soon = KeyQuery { expiring_within: Some(week), ..all_keys() };
        assert_eq!(id_set(list(store, soon.clone()).await), id_set([tomorrow.id, at_the_edge.id]));
        assert_eq!(store.count_matching(&soon, 100).await.unwrap(), 2);
        let by_spend = KeyQuery { sort: SortKey::RecentSpend, ..soon.clone() };
        assert_eq!(store.count_matching(&by_spend, 100).await.unwrap(), 2, "whatever the order");
        let by_expiry = KeyQuery { sort: SortKey::Expires, ..soon };
        assert_eq!(list(store, by_expiry).await, vec![tomorrow.id, at_the_edge.id], "soonest first");

        let own_lines = LowBalanceLine::KeysOwn { default: Some(Money::from_usd(5)) };
        let under = |line| KeyQuery { low_balance: Some(line), ..all_keys() };
        assert_eq!(id_set(list(store, under(own_lines)).await), id_set([low.id, owed.id, own_line.id]));
        let fixed = LowBalanceLine::Fixed(Money::from_micros(1_000_001));
        assert_eq!(id_set(list(store, under(fixed)).await), id_set([owed.id, no_line.id]), "one line for all");
        assert_eq!(list(store, under(LowBalanceLine::Fixed(Money::ZERO))).await, Vec::<Uuid>::new());
        let lowest_first = KeyQuery { sort: SortKey::Remaining, ..under(own_lines) };
        assert_eq!(list(store, lowest_first).await, vec![owed.id, low.id, own_line.id]);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn matches_are_counted_up_to_a_cap_whatever_the_cursor() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let ann = add_user(store, "ann").await;
        for i in 0..7 {
            let name = if i < 5 { format!("search-{i}") } else { format!("batch-{i}") };
            insert(store, &new_key(&ann, &name, at(i))).await;
        }
        let search = KeyQuery { filter: Some("search".into()), limit: 2, ..all_keys() };
        assert_eq!(store.count_matching(&search, 100).await.unwrap(), 5);
        assert_eq!(store.count_matching(&search, 3).await.unwrap(), 3, "capped");
        let page = list(store, search.clone()).await;
        let after = KeyQuery { from: PageFrom::After(page[1]), ..search };
        assert_eq!(store.count_matching(&after, 100).await.unwrap(), 5, "the cursor is ignored");
        assert_eq!(store.count_matching(&all_keys(), 100).await.unwrap(), 7);
        let none = KeyQuery { filter: Some("nothing-like-it".into()), ..all_keys() };
        assert_eq!(store.count_matching(&none, 100).await.unwrap(), 0);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_text_is_plain_case_insensitive_text() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let (ops, dev) = (add_user(store, "OpsTeam").await, add_user(store, "dev").await);
        let billing = new_key(&ops, "Billing Prod", at(1));
        let percent = new_key(&dev, "100% off", at(2));
        let underscore = new_key(&dev, "a_b", at(3));
        let quote = new_key(&dev, "it's", at(4));
        let plain = new_key(&dev, "axb", at(5));
        for key in [&billing, &percent, &underscore, &quote, &plain] {
            insert(store, key).await;
        }
        let filtered = |text: &str| KeyQuery { filter: Some(text.into()), ..all_keys() };
        // Only hints hold "...", and only ids hold a hyphen after 8 hex digits.
        let hint_tail = plain.key_hint[7..].to_string();
        let id_prefix = plain.id.hyphenated().to_string()[..10].to_uppercase();
        let cases = [
            ("billing", vec![billing.id]),
            ("PROD", vec![billing.id]),
            ("opsteam", vec![billing.id]),
            (hint_tail.as_str(), vec![plain.id]),
            (id_prefix.as_str(), vec![plain.id]),
            ("%", vec![percent.id]),
            ("_", vec![underscore.id]),
            ("a_b", vec![underscore.id]),
            ("'", vec![quote.id]),
            ("'; DROP TABLE api_keys; --", vec![]),
            ("\\", vec![]),
        ];
        for (text, expected) in cases {
            assert_eq!(id_set(list(store, filtered(text)).await), id_set(expected), "{text:?}");
        }
        assert_eq!(store.count_keys(at(0)).await.unwrap().total, 5, "the table survived");

        // The substring index follows renames and purges.
        let rename = KeyPatch { name: Some("Invoices Prod".into()), ..KeyPatch::default() };
        store.update_key(billing.id, &rename, &audit("update", Some(billing.id))).await.unwrap();
        assert!(store.purge_key(plain.id, &audit("purge", Some(plain.id))).await.unwrap());
        let after = [("billing", vec![]), ("invoices", vec![billing.id]), (hint_tail.as_str(), vec![])];
        for (text, expected) in after {
            assert_eq!(id_set(list(store, filtered(text)).await), id_set(expected), "{text:?} after the changes");
        }
    });
}

/// What a list sorted by `sort` compares: a nullable time sorts as its sentinel (never expires =
/// after every expiry, never used = before every use), a key without a limited prepaid balance
/// after every balance, then the id breaks ties. `spend` is each key's spend in the last 30 days.
fn expected_order(keys: &[ApiKey], spend: &HashMap<Uuid, i64>, sort: SortKey, descending: bool) -> Vec<Uuid> {
    let mut sorted: Vec<&ApiKey> = keys.iter().collect();
    let sort_value = |key: &ApiKey| match sort {
        SortKey::Created => (key.created_at.timestamp_millis(), String::new()),
        SortKey::Name => (0, key.name.clone()),
        SortKey::Expires => (key.expires_at.map_or(i64::MAX, |t| t.timestamp_millis()), String::new()),
        SortKey::LastUsed => (key.last_used_at.map_or(i64::MIN, |t| t.timestamp_millis()), String::new()),
        SortKey::Remaining => (key.balance().and_then(|b| b.net()).map_or(i64::MAX, |net| net.micros()), String::new()),
        SortKey::RecentSpend => (spend.get(&key.id).copied().unwrap_or(0), String::new()),
    };
    sorted.sort_by_key(|key| (sort_value(key), key.id));
    if descending {
        sorted.reverse();
    }
    sorted.into_iter().map(|key| key.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sort_pages_forward_and_backward_over_the_full_order() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let mut spend: HashMap<Uuid, i64> = HashMap::new();
        for n in 0..23_i64 {
            // Lowercase letters only: byte order and any collation agree. Ties on every column.
            let mut key = new_key(&owner, ["alpha", "bravo", "charlie", "delta"][(n % 4) as usize], at(n / 3));
            key.expires_at = (n % 3 != 0).then(|| at(1_000 + n % 5));
            key.last_used_at = (n % 4 != 1).then(|| at(-(n % 6)));
            if n % 3 == 1 {
                key = prepaid(key, (n % 6 != 4).then(|| Money::from_usd(n % 4)));
            }
            insert(store, &key).await;
            // Spend inside the last 30 days (today's and older days') and before them, which
            // the spend order leaves out; the charges leave some balances owed.
            if n % 5 != 0 {
                let cost = (n % 7) * 400_000;
                let day_back = at(-(n % 4) * 86_400);
                store.record_usage(&usage(&format!("r{n}"), key.id, cost, day_back)).await.unwrap();
                *spend.entry(key.id).or_default() += cost;
                let too_old = at(-30 * 86_400);
                store.record_usage(&usage(&format!("old{n}"), key.id, 9_000_000, too_old)).await.unwrap();
            }
        }
        // As stored: the usage moved last uses and charged prepaid balances.
        let keys: Vec<ApiKey> = store.list_keys(&all_keys()).await.unwrap();
        // Unfiltered, and filtered to the six "alpha" keys: a full page of 5 of them is found by
        // walking the list order, the rest through the trigram index (SQLite) or the planner's
        // choice (PostgreSQL), and both must give the same order and pages.
        let alphas: Vec<ApiKey> = keys.iter().filter(|key| key.name == "alpha").cloned().collect();
        for (filter, keys) in [(None, &keys), (Some("LPH"), &alphas)] {
            for sort in SortKey::ALL {
                for descending in [false, true] {
                    let expected = expected_order(keys, &spend, sort, descending);
                    let query = KeyQuery { sort, descending, filter: filter.map(String::from), ..all_keys() };
                    assert_eq!(list(store, query.clone()).await, expected, "{sort:?} descending={descending}");

                    let mut forward: Vec<Uuid> = Vec::new();
                    let mut from = PageFrom::Start;
                    loop {
                        let page = list(store, KeyQuery { from, limit: 5, ..query.clone() }).await;
                        forward.extend(&page);
                        match page.last() {
                            Some(last) if page.len() == 5 => from = PageFrom::After(*last),
                            _ => break,
                        }
                    }
                    assert_eq!(forward, expected, "forward {sort:?} descending={descending} {filter:?}");

                    let mut backward = vec![*expected.last().unwrap()];
                    loop {
                        let page =
                            list(store, KeyQuery { from: PageFrom::Before(backward[0]), limit: 4, ..query.clone() })
                                .await;
                        let full_page = page.len() == 4;
                        backward.splice(0..0, page);
                        if !full_page {
                            break;
                        }
                    }
                    assert_eq!(backward, expected, "backward {sort:?} descending={descending} {filter:?}");
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Changes

#[tokio::test(flavor = "multi_thread")]
async fn update_sets_and_clears_each_field() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let key = new_key(&owner, "before", at(0));
        insert(store, &key).await;

        let set = KeyPatch {
            name: Some("after".into()),
            allowed_providers: Patch::Set(vec!["openai".into()]),
            allowed_api_formats: Patch::Set(vec!["chat".into(), "responses".into()]),
            allowed_models: Patch::Set(vec!["gpt-4o".into()]),
            rate_limit: Patch::Set(7),
            concurrent_limit: Patch::Set(3),
            expires_at: Patch::Set(at(3_600)),
            auto_delete_on_expiry: Patch::Set(true),
            money: PlanPatch {
                budget: Patch::Set(Budget::new(Money::from_usd(9), Period::Day).unwrap()),
                refill: Patch::Keep,
                low_balance: Patch::Set(Money::ZERO),
            },
        };
        let change = AuditRecord { at: at(10), ..audit("update", Some(key.id)) };
        let updated = store.update_key(key.id, &set, &change).await.unwrap().unwrap();
        let expected = ApiKey { updated_at: at(10), ..set.applied_to(&key) };
        assert_eq!(updated, expected);
        assert_eq!(store.key(key.id).await.unwrap(), Some(expected.clone()));

        let untouched = store.update_key(key.id, &KeyPatch::default(), &change).await.unwrap().unwrap();
        assert_eq!(untouched, expected, "keep changes nothing");

        let clear = KeyPatch {
            allowed_providers: Patch::Clear,
            allowed_api_formats: Patch::Set(vec![]),
            allowed_models: Patch::Clear,
            rate_limit: Patch::Clear,
            concurrent_limit: Patch::Clear,
            expires_at: Patch::Clear,
            auto_delete_on_expiry: Patch::Clear,
            money: PlanPatch { budget: Patch::Clear, refill: Patch::Clear, low_balance: Patch::Clear },
            ..KeyPatch::default()
        };
        let cleared = store.update_key(key.id, &clear, &change).await.unwrap().unwrap();
        assert_eq!(cleared.name, "after");
        assert_eq!(
            (cleared.allowed_providers, cleared.allowed_api_formats, cleared.allowed_models),
            (None, None, None),
            "cleared and empty lists are unrestricted"
        );
        assert_eq!((cleared.rate_limit, cleared.concurrent_limit), (None, None));
        assert_eq!((cleared.expires_at, cleared.auto_delete_on_expiry), (None, None));
        assert_eq!(cleared.money, MoneyPlan::default());

        assert_eq!(store.update_key(Uuid::new_v4(), &set, &change).await.unwrap(), None);
        assert_eq!(actions(store, Some(key.id)).await, ["update", "update", "update", "create"]);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_disabled_enabled_and_purged_keeping_usage() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let key = prepaid(new_key(&owner, "k", at(0)), Some(Money::from_usd(10)));
        insert(store, &key).await;

        let off = AuditRecord { at: at(5), ..audit("disable", Some(key.id)) };
        let disabled = store.set_key_active(key.id, false, &off).await.unwrap().unwrap();
        assert!(!disabled.is_active);
        assert_eq!(disabled.updated_at, at(5));
        let enabled = store.set_key_active(key.id, true, &audit("enable", Some(key.id))).await.unwrap().unwrap();
        assert!(enabled.is_active);
        assert_eq!(store.set_key_active(Uuid::new_v4(), false, &off).await.unwrap(), None);

        let recorded = store.record_usage(&usage("req-1", key.id, 250, at(1))).await.unwrap();
        assert_eq!(recorded, UsageOutcome::Recorded { charged: true });
        store.adjust_balance(&adjustment(key.id, add(1), None)).await.unwrap();
        assert!(store.purge_key(key.id, &audit("purge", Some(key.id))).await.unwrap());
        assert_eq!(store.key(key.id).await.unwrap(), None);
        assert!(!store.purge_key(key.id, &audit("purge", Some(key.id))).await.unwrap(), "already gone");

        let usage_rows = "SELECT COUNT(*) FROM usage WHERE CAST(api_key_id AS TEXT) = $1";
        assert_eq!(raw_i64(&db, usage_rows, Some(key.id)).await, 1, "usage stays as history, naming its key");
        let daily = "SELECT COUNT(*) FROM usage_daily WHERE CAST(api_key_id AS TEXT) = $1";
        assert_eq!(raw_i64(&db, daily, Some(key.id)).await, 0, "the rollup goes with the key");
        assert_eq!(store.ledger(key.id, None).await.unwrap().len(), 1, "the ledger stays as history");
        assert_eq!(actions(store, Some(key.id)).await, ["purge", "topup", "enable", "disable", "create"]);
    });
}

// ---------------------------------------------------------------------------------------------
// Money

#[tokio::test(flavor = "multi_thread")]
async fn balance_adjustments_are_exact_and_refusals_change_nothing() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let wallet = prepaid(new_key(&owner, "wallet", at(0)), Some(Money::from_micros(10_000_001)));
        let unlimited = prepaid(new_key(&owner, "unlimited", at(0)), None);
        let plain = new_key(&owner, "plain", at(0));
        for key in [&wallet, &unlimited, &plain] {
            insert(store, key).await;
        }
        store.record_usage(&usage("spend", wallet.id, 3_500_000, at(1))).await.unwrap();

        let AdjustOutcome::Applied(entry) =
            store.adjust_balance(&adjustment(wallet.id, add(1_234_567), None)).await.unwrap()
        else {
            panic!("top-up refused");
        };
        assert_eq!(
            (entry.delta, entry.credited_after),
            (Money::from_micros(1_234_567), Some(Money::from_micros(11_234_568)))
        );
        assert_eq!(store.key(wallet.id).await.unwrap().unwrap().credited, Some(Money::from_micros(11_234_568)));

        // Remaining is 11.234568 - 3.5 = 7.734568.
        let refusals = [
            (
                wallet.id,
                add(-7_734_569),
                AdjustOutcome::InsufficientBalance { remaining: Money::from_micros(7_734_568) },
            ),
            (wallet.id, add(MAX_AMOUNT.micros()), AdjustOutcome::OutOfRange),
            (wallet.id, BalanceChange::SetCredited(Some(Money::from_micros(-1))), AdjustOutcome::OutOfRange),
            (
                wallet.id,
                BalanceChange::SetCredited(Some(MAX_AMOUNT.checked_add(Money::from_micros(1)).unwrap())),
                AdjustOutcome::OutOfRange,
            ),
            (unlimited.id, add(5), AdjustOutcome::Unlimited),
            (plain.id, add(5), AdjustOutcome::NotPrepaid),
            (plain.id, BalanceChange::SetCredited(Some(Money::from_usd(1))), AdjustOutcome::NotPrepaid),
            (Uuid::new_v4(), add(5), AdjustOutcome::NotFound),
        ];
        for (key_id, change, expected) in refusals {
            let before = (store.key(key_id).await.unwrap(), store.ledger(key_id, None).await.unwrap());
            assert_eq!(store.adjust_balance(&adjustment(key_id, change, None)).await.unwrap(), expected, "{change:?}");
            let after = (store.key(key_id).await.unwrap(), store.ledger(key_id, None).await.unwrap());
            assert_eq!(after, before, "a refused {change:?} changed something");
        }

        let AdjustOutcome::Applied(deduct) =
            store.adjust_balance(&adjustment(wallet.id, add(-7_734_568), None)).await.unwrap()
        else {
            panic!("deducting exactly the remaining balance was refused");
        };
        assert_eq!(deduct.credited_after, Some(Money::from_micros(3_500_000)));
        let exhausted = store.key(wallet.id).await.unwrap().unwrap();
        assert_eq!(exhausted.balance().unwrap().remaining, Some(Money::ZERO));
        assert_eq!(
            store.adjust_balance(&adjustment(wallet.id, add(-1), None)).await.unwrap(),
            AdjustOutcome::InsufficientBalance { remaining: Money::ZERO }
        );

        let set = |credited: Option<i64>| BalanceChange::SetCredited(credited.map(Money::from_micros));
        let expected_entries = [
            (set(Some(20_000_000)), 16_500_000, Some(20_000_000)),
            (set(None), -20_000_000, None),
            (set(Some(5)), 5, Some(5)),
        ];
        for (change, delta, credited_after) in expected_entries {
            let AdjustOutcome::Applied(entry) =
                store.adjust_balance(&adjustment(wallet.id, change, None)).await.unwrap()
            else {
                panic!("{change:?} refused");
            };
            assert_eq!((entry.delta.micros(), entry.credited_after.map(Money::micros)), (delta, credited_after));
            assert_eq!(store.key(wallet.id).await.unwrap().unwrap().credited.map(Money::micros), credited_after);
        }
        let ledger = store.ledger(wallet.id, None).await.unwrap();
        let deltas: Vec<i64> = ledger.iter().map(|entry| entry.delta.micros()).collect();
        assert_eq!(deltas, [1_234_567, -7_734_568, 16_500_000, -20_000_000, 5], "oldest first");
        let recent: Vec<i64> =
            store.ledger(wallet.id, Some(2)).await.unwrap().iter().map(|e| e.delta.micros()).collect();
        assert_eq!(recent, [-20_000_000, 5], "the most recent rows, still oldest first");
        assert_eq!(ledger[0].actor, "cashier");
        assert_eq!(ledger[0].note.as_deref(), Some("contract"));
        let money_actions: Vec<String> = actions(store, Some(wallet.id)).await.into_iter().take(5).collect();
        assert_eq!(money_actions, ["set_credit", "set_credit", "set_credit", "deduct", "topup"]);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn an_adjustment_reports_the_balance_it_left() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let wallet = prepaid(new_key(&owner, "wallet", at(0)), Some(Money::from_usd(10)));
        insert(store, &wallet).await;
        store.record_usage(&usage("spend", wallet.id, 3_500_000, at(1))).await.unwrap();

        for change in [add(1_000_000), add(-500_000), BalanceChange::SetCredited(Some(Money::from_usd(20)))] {
            let (outcome, balance) = store.adjust_balance_and_read(&adjustment(wallet.id, change, None)).await.unwrap();
            assert!(matches!(outcome, AdjustOutcome::Applied(_)), "{change:?}: {outcome:?}");
            let stored = store.key(wallet.id).await.unwrap().unwrap().balance();
            match change {
                // Both backends read the balance in the statement that tops up.
                BalanceChange::Add(_) => assert_eq!(balance, stored, "{change:?}"),
                BalanceChange::SetCredited(_) => assert!(balance.is_none() || balance == stored, "{change:?}"),
            }
        }
        let (refused, balance) =
            store.adjust_balance_and_read(&adjustment(wallet.id, add(-MAX_AMOUNT.micros()), None)).await.unwrap();
        assert!(matches!(refused, AdjustOutcome::InsufficientBalance { .. }), "{refused:?}");
        assert_eq!(balance, None, "a refusal reports no balance");

        // Each change left one audit row, its details in one shape whichever path wrote it.
        let audit = store.audit(Some(wallet.id), 10).await.unwrap();
        let written: Vec<(String, serde_json::Value)> = audit
            .iter()
            .take(3)
            .map(|entry| (entry.action.clone(), serde_json::from_str(&entry.details).unwrap()))
            .collect();
        let details = |delta: &str, credited_after: &str| serde_json::json!({ "delta": delta, "credited_after": credited_after, "note": "contract" });
        assert_eq!(
            written,
            [
                ("set_credit".to_string(), details("9.500000", "20.000000")),
                ("deduct".to_string(), details("-0.500000", "10.500000")),
                ("topup".to_string(), details("1.000000", "11.000000")),
            ]
        );
    });
}
#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_replay_or_conflict() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let (a, b) = (
            prepaid(new_key(&owner, "a", at(0)), Some(Money::ZERO)),
            prepaid(new_key(&owner, "b", at(0)), Some(Money::ZERO)),
        );
        insert(store, &a).await;
        insert(store, &b).await;

        let first = store.adjust_balance(&adjustment(a.id, add(5_000_000), Some("top-1"))).await.unwrap();
        let AdjustOutcome::Applied(entry) = first else { panic!("{first:?}") };
        assert_eq!(entry.idempotency_key.as_deref(), Some("top-1"));
        let again = store.adjust_balance(&adjustment(a.id, add(5_000_000), Some("top-1"))).await.unwrap();
        assert_eq!(again, AdjustOutcome::Replayed(entry.clone()));
        for (key, change) in [(a.id, add(6_000_000)), (b.id, add(5_000_000))] {
            let outcome = store.adjust_balance(&adjustment(key, change, Some("top-1"))).await.unwrap();
            assert_eq!(outcome, AdjustOutcome::IdempotencyConflict(entry.clone()));
        }
        assert_eq!(store.key(a.id).await.unwrap().unwrap().credited, Some(Money::from_usd(5)), "applied once");
        assert_eq!(store.key(b.id).await.unwrap().unwrap().credited, Some(Money::ZERO));
        assert_eq!(store.ledger(a.id, None).await.unwrap().len(), 1);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_top_ups_and_their_twins_land_exactly_once() {
    for_each_backend!(|db| {
        let owner = add_user(db.store.as_ref(), "owner").await;
        let key = prepaid(new_key(&owner, "busy", at(0)), Some(Money::ZERO));
        insert(db.store.as_ref(), &key).await;
        let key_id = key.id;
        // 16 top-ups, each sent twice at once with the same idempotency key.
        let tasks: Vec<_> = (0..32)
            .map(|n| {
                let store = db.store.clone();
                tokio::spawn(async move {
                    let request = adjustment(key_id, add(1_000_001), Some(&format!("top-{}", n % 16)));
                    store.adjust_balance(&request).await.unwrap()
                })
            })
            .collect();
        let mut applied = 0;
        let mut replayed = 0;
        for task in tasks {
            match task.await.unwrap() {
                AdjustOutcome::Applied(_) => applied += 1,
                AdjustOutcome::Replayed(_) => replayed += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((applied, replayed), (16, 16));
        assert_eq!(db.store.key(key.id).await.unwrap().unwrap().credited, Some(Money::from_micros(16_000_016)));
        assert_eq!(db.store.ledger(key.id, None).await.unwrap().len(), 16);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn sixteen_stores_on_one_database_write_without_errors() {
    for_each_backend!(|db| {
        let owner = add_user(db.store.as_ref(), "owner").await;
        let key = prepaid(new_key(&owner, "shared", at(0)), Some(Money::ZERO));
        insert(db.store.as_ref(), &key).await;
        let key_id = key.id;
        // Separate stores are separate pools and connections, as separate processes would be.
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let url = db.url.clone();
                tokio::spawn(async move {
                    let store = keytop::store::open(&url).await.unwrap();
                    let outcome = store.adjust_balance(&adjustment(key_id, add(1), None)).await.unwrap();
                    assert!(matches!(outcome, AdjustOutcome::Applied(_)), "{outcome:?}");
                    store.record_usage(&usage(&format!("req-{n}"), key_id, 2, at(n))).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let key = db.store.key(key.id).await.unwrap().unwrap();
        assert_eq!((key.credited, key.used), (Some(Money::from_micros(16)), Money::from_micros(32)));
    });
}

// ---------------------------------------------------------------------------------------------
// Usage and admission

#[tokio::test(flavor = "multi_thread")]
async fn usage_is_recorded_once_and_rolled_up_exactly() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let wallet = prepaid(new_key(&owner, "wallet", at(0)), Some(Money::from_micros(1_000)));
        let plain = new_key(&owner, "plain", at(0));
        insert(store, &wallet).await;
        insert(store, &plain).await;

        let midnight = Utc.with_ymd_and_hms(2025, 3, 2, 0, 0, 0).unwrap();
        let mut sent = Vec::new();
        for n in 0..30_i64 {
            let key = if n % 3 == 0 { plain.id } else { wallet.id };
            // Around one UTC midnight, and on a third day: the rollup must split them exactly.
            let when = match n % 4 {
                0 => midnight - Duration::milliseconds(1 + n),
                1 => midnight + Duration::milliseconds(n),
                2 => midnight + Duration::days(1) + Duration::hours(n),
                _ => midnight - Duration::hours(n % 12),
            };
            let mut record = usage(&format!("req-{n}"), key, 37 * n + 1, when);
            // Some requests report no response time: they count as requests, not as timed ones.
            if n % 5 == 0 {
                record.response_time_ms = None;
            }
            let outcome = store.record_usage(&record).await.unwrap();
            assert_eq!(outcome, UsageOutcome::Recorded { charged: key == wallet.id });
            sent.push(record);
        }
        // A retried request changes nothing, even with other numbers.
        let retry = UsageRecord { cost: Money::from_usd(9), ..sent[1].clone() };
        assert_eq!(store.record_usage(&retry).await.unwrap(), UsageOutcome::Duplicate);
        let ghost = usage("ghost", Uuid::new_v4(), 5, midnight);
        assert_eq!(store.record_usage(&ghost).await.unwrap(), UsageOutcome::UnknownKey);
        assert_eq!(raw_i64(&db, "SELECT COUNT(*) FROM usage WHERE $1 IS NULL", None).await, 30, "one row per request");

        for key in [wallet.id, plain.id] {
            let mine: Vec<&UsageRecord> = sent.iter().filter(|r| r.api_key_id == key).collect();
            let days = store
                .daily_usage(
                    key,
                    NaiveDate::from_ymd_opt(2025, 2, 28).unwrap(),
                    NaiveDate::from_ymd_opt(2025, 3, 4).unwrap(),
                )
                .await
                .unwrap();
            // Requests, tokens, cost, response time sum, timed requests.
            type DayTotals = (i64, i64, i64, i64, i64);
            let mut expected = std::collections::BTreeMap::<NaiveDate, DayTotals>::new();
            for r in &mine {
                let day = expected.entry(r.created_at.date_naive()).or_default();
                day.0 += 1;
                day.1 += r.total_tokens;
                day.2 += r.cost.micros();
                day.3 += r.response_time_ms.unwrap_or(0);
                day.4 += i64::from(r.response_time_ms.is_some());
            }
            assert!(expected.values().any(|day| day.4 < day.0), "some days have untimed requests");
            let rolled: Vec<(NaiveDate, DayTotals)> = days
                .iter()
                .map(|d| (d.day, (d.requests, d.tokens, d.cost.micros(), d.response_ms_sum, d.timed_requests)))
                .collect();
            assert_eq!(rolled, expected.into_iter().collect::<Vec<_>>());
            // And the rollup agrees with the raw rows the database holds.
            let raw_cost = raw_i64(
                &db,
                "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage WHERE CAST(api_key_id AS TEXT) = $1",
                Some(key),
            )
            .await;
            let raw_tokens = raw_i64(
                &db,
                "SELECT CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) FROM usage WHERE CAST(api_key_id AS TEXT) = $1",
                Some(key),
            )
            .await;
            assert_eq!(raw_cost, days.iter().map(|d| d.cost.micros()).sum::<i64>());
            assert_eq!(raw_tokens, days.iter().map(|d| d.tokens).sum::<i64>());
            let first_day = store.daily_usage(key, midnight.date_naive(), midnight.date_naive()).await.unwrap();
            let first_day: Vec<NaiveDate> = first_day.iter().map(|d| d.day).collect();
            assert_eq!(first_day, [midnight.date_naive()], "the range bounds the days");
        }

        let wallet_cost: i64 = sent.iter().filter(|r| r.api_key_id == wallet.id).map(|r| r.cost.micros()).sum();
        let wallet_now = store.key(wallet.id).await.unwrap().unwrap();
        assert_eq!(wallet_now.used.micros(), wallet_cost, "charged once each, even past the balance");
        assert!(wallet_cost > 1_000);
        assert_eq!(
            store.key(plain.id).await.unwrap().unwrap().used,
            Money::ZERO,
            "keys without balance are not charged"
        );
        let latest = sent.iter().filter(|r| r.api_key_id == wallet.id).map(|r| r.created_at).max();
        assert_eq!(wallet_now.last_used_at, latest, "last use only moves forward");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_lookup_counts_the_rate_window() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        // Every column admission reads set to something other than its default.
        let limited = ApiKey {
            allowed_providers: Some(vec!["openai".into()]),
            allowed_api_formats: Some(vec!["OPENAI".into()]),
            allowed_models: Some(vec!["gpt-4o".into(), "o3".into()]),
            expires_at: Some(at(86_400)),
            ..prepaid(new_key(&owner, "limited", at(0)), Some(Money::from_usd(5)))
        };
        let unlimited = ApiKey { rate_limit: None, ..new_key(&owner, "unlimited", at(0)) };
        insert(store, &limited).await;
        insert(store, &unlimited).await;
        let window_start = at(100);
        for (n, offset) in [-30, 0, 1, 20, 59].into_iter().enumerate() {
            store.record_usage(&usage(&format!("l-{n}"), limited.id, 1, at(100 + offset))).await.unwrap();
            store.record_usage(&usage(&format!("u-{n}"), unlimited.id, 1, at(100 + offset))).await.unwrap();
        }
        let found =
            store.verify_lookup(&limited.key_hash, window_start, CurrentPeriods::at(at(100))).await.unwrap().unwrap();
        assert_eq!(found.recent_requests, 3, "strictly after the window start");
        let used_last = store.key(limited.id).await.unwrap().unwrap();
        assert_eq!(found.key, KeyAdmission::from(&used_last), "admission reads the key as stored");
        let free =
            store.verify_lookup(&unlimited.key_hash, window_start, CurrentPeriods::at(at(100))).await.unwrap().unwrap();
        assert_eq!(free.recent_requests, 0, "no rate limit, no count");
        assert_eq!(
            store.verify_lookup(&hash_key("sk-unknown"), window_start, CurrentPeriods::at(at(100))).await.unwrap(),
            None
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn touch_last_used_writes_only_when_stale() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let key = new_key(&owner, "k", at(0));
        insert(store, &key).await;
        let last_used = || async { store.key(key.id).await.unwrap().unwrap().last_used_at };

        store.touch_last_used(key.id, at(100), at(40)).await.unwrap();
        assert_eq!(last_used().await, Some(at(100)), "never used: always written");
        store.touch_last_used(key.id, at(130), at(70)).await.unwrap();
        assert_eq!(last_used().await, Some(at(100)), "fresh enough: left alone");
        store.touch_last_used(key.id, at(200), at(140)).await.unwrap();
        assert_eq!(last_used().await, Some(at(200)), "stale: written");
        assert_eq!(store.key(key.id).await.unwrap().unwrap().updated_at, at(0), "not an admin change");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_moves_last_use_at_most_once_a_minute() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let wallet = prepaid(new_key(&owner, "wallet", at(0)), Some(Money::from_usd(5)));
        let plain = new_key(&owner, "plain", at(0));
        insert(store, &wallet).await;
        insert(store, &plain).await;
        for key in [&wallet, &plain] {
            let last_used = || async { store.key(key.id).await.unwrap().unwrap().last_used_at };
            let record = |n: i64, seconds: i64| usage(&format!("{}-{n}", key.name), key.id, 10, at(seconds));
            store.record_usage(&record(1, 100)).await.unwrap();
            assert_eq!(last_used().await, Some(at(100)), "never used: always written");
            store.record_usage(&record(2, 159)).await.unwrap();
            assert_eq!(last_used().await, Some(at(100)), "within the minute: left alone");
            store.record_usage(&record(3, 30)).await.unwrap();
            assert_eq!(last_used().await, Some(at(100)), "an older request never moves it back");
            store.record_usage(&record(4, 161)).await.unwrap();
            assert_eq!(last_used().await, Some(at(161)), "stale: written");
        }
        let wallet_now = store.key(wallet.id).await.unwrap().unwrap();
        assert_eq!(wallet_now.used, Money::from_micros(40), "every request charged, moved last use or not");
        assert_eq!(store.key(plain.id).await.unwrap().unwrap().used, Money::ZERO);
        assert_eq!(wallet_now.updated_at, at(0), "not an admin change");
        let users = store.user_daily_usage(owner.id, at(0).date_naive(), at(0).date_naive()).await.unwrap();
        assert_eq!(users.iter().map(|day| day.requests).sum::<i64>(), 8, "the owner's rollup counts each");
    });
}

// ---------------------------------------------------------------------------------------------
// Sweep, counts, audit

#[tokio::test(flavor = "multi_thread")]
async fn sweep_follows_the_tri_state_policy() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let expiring = |name: &str, policy: Option<bool>, expires: i64| ApiKey {
            expires_at: Some(at(expires)),
            auto_delete_on_expiry: policy,
            ..new_key(&owner, name, at(-1_000))
        };
        let delete_yes = expiring("yes", Some(true), -10);
        let delete_no = expiring("no", Some(false), -10);
        let follow = expiring("follow", None, 0);
        let future = expiring("future", Some(true), 10);
        let already_off = ApiKey { is_active: false, ..expiring("off", Some(false), -20) };
        let forever = new_key(&owner, "forever", at(-1_000));
        for key in [&delete_yes, &delete_no, &follow, &future, &already_off, &forever] {
            insert(store, key).await;
        }
        store.record_usage(&usage("r1", delete_yes.id, 10, at(-50))).await.unwrap();
        let audit_before = store.audit(None, 1_000).await.unwrap();
        let counts_before = store.count_keys(at(0)).await.unwrap();
        assert_eq!(counts_before, KeyCounts { total: 6, disabled: 1, expired: 3 });

        let preview = store.sweep(at(0), false, true, "sweeper".into()).await.unwrap();
        assert_eq!(store.audit(None, 1_000).await.unwrap(), audit_before, "a dry run writes nothing");
        assert_eq!(store.count_keys(at(0)).await.unwrap(), counts_before);

        let sweeper = keytop::store::Actor { name: "sweeper", key: Some("SHA256:sweeper") };
        let report = store.sweep(at(0), false, false, sweeper).await.unwrap();
        let swept =
            |keys: &[keytop::domain::SweptKey]| keys.iter().map(|k| (k.id, k.name.clone())).collect::<BTreeSet<_>>();
        assert_eq!(swept(&report.deleted), BTreeSet::from([(delete_yes.id, "yes".to_string())]));
        assert_eq!(
            swept(&report.disabled),
            BTreeSet::from([(delete_no.id, "no".into()), (follow.id, "follow".into())])
        );
        assert!(!report.skipped);
        assert_eq!(
            (swept(&preview.deleted), swept(&preview.disabled)),
            (swept(&report.deleted), swept(&report.disabled))
        );
        assert_eq!(store.key(delete_yes.id).await.unwrap(), None);
        let disabled = store.key(delete_no.id).await.unwrap().unwrap();
        assert!(!disabled.is_active);
        assert_eq!(disabled.updated_at, at(0));
        assert!(store.key(future.id).await.unwrap().unwrap().is_active);
        assert!(store.key(forever.id).await.unwrap().unwrap().is_active);
        assert_eq!(store.key(already_off.id).await.unwrap().unwrap().updated_at, at(-1_000), "not touched again");
        let usage_rows = "SELECT COUNT(*) FROM usage WHERE CAST(api_key_id AS TEXT) = $1";
        assert_eq!(raw_i64(&db, usage_rows, Some(delete_yes.id)).await, 1, "usage stays as history, naming its key");

        let sweep_audit: Vec<(String, Option<Uuid>, String)> =
            store.audit(None, 3).await.unwrap().into_iter().map(|e| (e.action, e.api_key_id, e.actor)).collect();
        let expected_audit = BTreeSet::from([
            ("sweep_delete".to_string(), Some(delete_yes.id), "sweeper".to_string()),
            ("sweep_disable".into(), Some(delete_no.id), "sweeper".into()),
            ("sweep_disable".into(), Some(follow.id), "sweeper".into()),
        ]);
        assert_eq!(sweep_audit.into_iter().collect::<BTreeSet<_>>(), expected_audit);
        let keys: Vec<Option<String>> = store.audit(None, 3).await.unwrap().into_iter().map(|e| e.actor_key).collect();
        assert_eq!(keys, vec![Some("SHA256:sweeper".to_string()); 3], "the sweeper's key fingerprint in every row");

        let again = store.sweep(at(0), false, false, "sweeper".into()).await.unwrap();
        assert!(again.deleted.is_empty() && again.disabled.is_empty(), "{again:?}");

        // With the global policy on, keys that follow it are deleted even though disabled;
        // keys that said no stay.
        let global = store.sweep(at(0), true, false, "sweeper".into()).await.unwrap();
        assert_eq!(swept(&global.deleted), BTreeSet::from([(follow.id, "follow".to_string())]));
        assert!(global.disabled.is_empty());
        assert!(store.key(delete_no.id).await.unwrap().is_some());
        assert_eq!(store.count_keys(at(0)).await.unwrap(), KeyCounts { total: 4, disabled: 2, expired: 0 });
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_is_newest_first_and_per_key() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let key = new_key(&owner, "k", at(0));
        insert(store, &key).await;
        let note = AuditRecord { details: serde_json::json!({ "why": "rotation" }), ..audit("reveal", Some(key.id)) };
        store.append_audit(&note).await.unwrap();
        store.append_audit(&audit("config", None)).await.unwrap();

        let all = store.audit(None, 10).await.unwrap();
        let all_actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(all_actions, ["config", "reveal", "create", "user_create"]);
        assert!(all.windows(2).all(|pair| pair[0].id > pair[1].id));
        assert_eq!(store.audit(None, 2).await.unwrap().len(), 2);
        let reveal = &store.audit(Some(key.id), 10).await.unwrap()[0];
        assert_eq!((reveal.action.as_str(), reveal.actor.as_str(), reveal.at), ("reveal", "tester", at(0)));
        let details: serde_json::Value = serde_json::from_str(&reveal.details).unwrap();
        assert_eq!(details, serde_json::json!({ "why": "rotation" }));
        assert_eq!(actions(store, Some(key.id)).await, ["reveal", "create"]);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_actors_key_fingerprint_is_kept_in_ledger_and_audit_rows() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let wallet = prepaid(new_key(&owner, "wallet", at(0)), Some(Money::from_usd(10)));
        insert(store, &wallet).await;
        let by_alice = |change| BalanceAdjustment {
            actor: "alice".into(),
            actor_key: Some("SHA256:alice".into()),
            ..adjustment(wallet.id, change, None)
        };
        // A top-up (one statement) and a new credited total (a transaction) take different paths.
        store.adjust_balance(&by_alice(add(1_000_000))).await.unwrap();
        store.adjust_balance(&by_alice(BalanceChange::SetCredited(Some(Money::from_usd(20))))).await.unwrap();
        let note = AuditRecord { actor_key: Some("SHA256:alice".into()), ..audit("reveal", Some(wallet.id)) };
        store.append_audit(&note).await.unwrap();

        let ledger = store.ledger(wallet.id, None).await.unwrap();
        let keys: Vec<Option<&str>> = ledger.iter().map(|entry| entry.actor_key.as_deref()).collect();
        assert_eq!(keys, [Some("SHA256:alice"), Some("SHA256:alice")]);
        let rows = store.audit(Some(wallet.id), 10).await.unwrap();
        let keys: Vec<(&str, Option<&str>)> =
            rows.iter().map(|row| (row.action.as_str(), row.actor_key.as_deref())).collect();
        let by_alice = Some("SHA256:alice");
        assert_eq!(keys, [("reveal", by_alice), ("set_credit", by_alice), ("topup", by_alice), ("create", None)]);
        let page = store.audit_page(&AuditQuery { limit: 1, ..AuditQuery::default() }).await.unwrap();
        assert_eq!(page[0].actor_key.as_deref(), by_alice);
    });
}

// ---------------------------------------------------------------------------------------------
// The fleet: owner, fleet and purged rollups, top spenders, users, audit pages

/// Requests, tokens, cost, response time sum and timed requests of each day of a rollup.
fn day_sums(rows: &[keytop::domain::DailyUsage]) -> Vec<(NaiveDate, [i64; 5])> {
    rows.iter().map(|d| (d.day, [d.requests, d.tokens, d.cost.micros(), d.response_ms_sum, d.timed_requests])).collect()
}

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, n).unwrap()
}

fn noon(n: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, n, 12, 0, 0).unwrap()
}

/// The fleet's days count every usage row at every moment: hundreds of usage records, checked
/// as they go, a bulk load between them, and rows of past days arriving late. (A rollup written
/// in batches rather than by each record must keep this true at every step.)
#[tokio::test(flavor = "multi_thread")]
async fn the_fleets_days_count_every_usage_row_at_every_moment() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let key = new_key(&owner, "busy", at(0));
        insert(store, &key).await;
        let fleet_equals_key = |when: String| async move {
            let fleet = day_sums(&store.fleet_daily_usage(day(1), day(5)).await.unwrap());
            assert_eq!(fleet, day_sums(&store.daily_usage(key.id, day(1), day(5)).await.unwrap()), "{when}");
        };
        for n in 0..700 {
            let on = if n % 7 == 0 { 2 } else { 3 };
            store.record_usage(&usage(&format!("one-{n}"), key.id, 1_000 + n, noon(on))).await.unwrap();
            if n % 50 == 0 || (250..=260).contains(&n) {
                fleet_equals_key(format!("after {} usage records", n + 1)).await;
            }
        }
        let loaded = (0..300).map(|n| usage(&format!("load-{n}"), key.id, 10 + n, noon(4))).collect();
        store.bulk_load(&BulkLoad { usage: loaded, ..BulkLoad::default() }, &audit("bulk", None)).await.unwrap();
        fleet_equals_key("after a bulk load".into()).await;
        for n in 0..300 {
            store.record_usage(&usage(&format!("two-{n}"), key.id, 7, noon(1 + n as u32 % 5))).await.unwrap();
        }
        fleet_equals_key("after usage records of earlier days".into()).await;
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn owner_and_fleet_rollups_add_up_and_keep_purged_keys() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let ann = add_user(store, "ann").await;
        let bob = add_user(store, "bob").await;
        let (ann_1, ann_2, bob_1) =
            (new_key(&ann, "a1", at(0)), new_key(&ann, "a2", at(0)), new_key(&bob, "b1", at(0)));
        for key in [&ann_1, &ann_2, &bob_1] {
            insert(store, key).await;
        }
        let mut sent = Vec::new();
        for (n, key, when) in [
            (1, &ann_1, noon(2)),
            (2, &ann_1, noon(2)),
            (3, &ann_2, noon(2)),
            (4, &bob_1, noon(2)),
            (5, &ann_2, noon(3)),
            (6, &bob_1, noon(4)),
        ] {
            let record = usage(&format!("fleet-{n}"), key.id, 1_000 * n, when);
            store.record_usage(&record).await.unwrap();
            sent.push(record);
        }
        let expected = |keys: &[Uuid]| {
            let mut days = std::collections::BTreeMap::<NaiveDate, [i64; 5]>::new();
            for r in sent.iter().filter(|r| keys.contains(&r.api_key_id)) {
                let sums = days.entry(r.created_at.date_naive()).or_default();
                for (sum, value) in sums.iter_mut().zip([
                    1,
                    r.total_tokens,
                    r.cost.micros(),
                    r.response_time_ms.unwrap_or(0),
                    i64::from(r.response_time_ms.is_some()),
                ]) {
                    *sum += value;
                }
            }
            days.into_iter().collect::<Vec<_>>()
        };
        let everyone = [ann_1.id, ann_2.id, bob_1.id];
        assert_eq!(day_sums(&store.fleet_daily_usage(day(1), day(5)).await.unwrap()), expected(&everyone));
        assert_eq!(
            day_sums(&store.user_daily_usage(ann.id, day(1), day(5)).await.unwrap()),
            expected(&[ann_1.id, ann_2.id])
        );
        assert_eq!(day_sums(&store.user_daily_usage(bob.id, day(3), day(3)).await.unwrap()), []);
        assert_eq!(day_sums(&store.fleet_daily_usage(day(3), day(3)).await.unwrap()), expected(&[ann_2.id])[1..]);
        assert_eq!(day_sums(&store.purged_daily_usage(day(1), day(5)).await.unwrap()), []);

        // Purged, ann_2's usage leaves its key's rollup and becomes the fleet's purged part; the
        // fleet and ann keep it.
        assert!(store.purge_key(ann_2.id, &audit("purge", Some(ann_2.id))).await.unwrap());
        assert_eq!(day_sums(&store.fleet_daily_usage(day(1), day(5)).await.unwrap()), expected(&everyone));
        assert_eq!(
            day_sums(&store.user_daily_usage(ann.id, day(1), day(5)).await.unwrap()),
            expected(&[ann_1.id, ann_2.id])
        );
        assert_eq!(day_sums(&store.purged_daily_usage(day(1), day(5)).await.unwrap()), expected(&[ann_2.id]));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_deleted_by_the_sweep_count_as_purged() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let mut doomed = new_key(&owner, "doomed", at(0));
        doomed.expires_at = Some(at(60));
        doomed.auto_delete_on_expiry = Some(true);
        let kept = new_key(&owner, "kept", at(0));
        insert(store, &doomed).await;
        insert(store, &kept).await;
        store.record_usage(&usage("doomed-1", doomed.id, 700, noon(1))).await.unwrap();
        store.record_usage(&usage("kept-1", kept.id, 300, noon(1))).await.unwrap();

        let report = store.sweep(at(120), false, false, "sweeper".into()).await.unwrap();
        assert_eq!(report.deleted_count, 1);
        let cost = |rows: Vec<keytop::domain::DailyUsage>| rows.iter().map(|d| d.cost.micros()).sum::<i64>();
        assert_eq!(cost(store.purged_daily_usage(day(1), day(1)).await.unwrap()), 700);
        assert_eq!(cost(store.fleet_daily_usage(day(1), day(1)).await.unwrap()), 1_000);
        assert_eq!(cost(store.user_daily_usage(owner.id, day(1), day(1)).await.unwrap()), 1_000);
        assert_eq!(store.daily_usage(doomed.id, day(1), day(1)).await.unwrap(), [], "its own days went with it");
        assert_eq!(cost(store.daily_usage(kept.id, day(1), day(1)).await.unwrap()), 300);
    });
}

async fn top(store: &dyn Store, kind: SpenderKind, first: u32, last: u32, limit: u32) -> Vec<(String, i64)> {
    let spenders = store.top_spenders(kind, day(first), day(last), limit).await.unwrap();
    spenders.into_iter().map(|s| (s.name, s.totals.cost.micros())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn top_spenders_rank_by_cost_in_the_range_with_ties_by_id() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let ann = add_user(store, "ann").await;
        let bob = add_user(store, "bob").await;
        let mut keys = Vec::new();
        for (name, owner) in [("big", &ann), ("tie-a", &bob), ("tie-b", &bob), ("small", &ann), ("free", &bob)] {
            let key = new_key(owner, name, at(0));
            insert(store, &key).await;
            keys.push(key);
        }
        let spend = [("big", 900, 2), ("tie-a", 400, 2), ("tie-b", 400, 3), ("small", 50, 3), ("free", 0, 3)];
        for (n, (name, cost, on)) in spend.into_iter().enumerate() {
            let key = keys.iter().find(|k| k.name == name).unwrap();
            store.record_usage(&usage(&format!("top-{n}"), key.id, cost, noon(on))).await.unwrap();
        }
        // Outside the range: the biggest spend of all.
        store.record_usage(&usage("top-early", keys[4].id, 5_000, noon(1))).await.unwrap();

        let mut ties = [keys[1].clone(), keys[2].clone()];
        ties.sort_by_key(|k| k.id);
        let tied = |k: &ApiKey| (k.name.clone(), 400);
        assert_eq!(
            top(store, SpenderKind::Key, 2, 3, 10).await,
            [("big".to_string(), 900), tied(&ties[0]), tied(&ties[1]), ("small".to_string(), 50)],
            "nothing spent is no spender; day 1 is outside the range"
        );
        assert_eq!(top(store, SpenderKind::Key, 2, 3, 2).await, [("big".to_string(), 900), tied(&ties[0])]);
        assert_eq!(top(store, SpenderKind::Key, 1, 3, 1).await, [("free".to_string(), 5_000)]);
        assert_eq!(top(store, SpenderKind::User, 2, 3, 10).await, [("ann".to_string(), 950), ("bob".to_string(), 800)]);
        assert_eq!(top(store, SpenderKind::User, 3, 3, 10).await, [("bob".to_string(), 400), ("ann".to_string(), 50)]);
        let named = store.top_spenders(SpenderKind::Key, day(2), day(2), 1).await.unwrap();
        assert_eq!((named[0].owner.as_deref(), named[0].totals.requests), (Some("ann"), 1));
        assert!(store.top_spenders(SpenderKind::User, day(2), day(2), 1).await.unwrap()[0].owner.is_none());
    });
}

/// The hard case of a top list read from each day's leaders: a key that spends steadily tops
/// the range without leading any single day.
#[tokio::test(flavor = "multi_thread")]
async fn top_spenders_find_the_steady_spender_that_leads_no_day() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let steady = new_key(&owner, "steady", at(0));
        insert(store, &steady).await;
        for d in 1..=10 {
            let burst = new_key(&owner, &format!("burst-{d}"), at(0));
            insert(store, &burst).await;
            store.record_usage(&usage(&format!("burst-{d}"), burst.id, 20, noon(d))).await.unwrap();
            store.record_usage(&usage(&format!("steady-{d}"), steady.id, 5, noon(d))).await.unwrap();
        }
        assert_eq!(top(store, SpenderKind::Key, 1, 10, 1).await, [("steady".to_string(), 50)]);
        let three = top(store, SpenderKind::Key, 1, 10, 3).await;
        assert_eq!(three.iter().map(|(_, cost)| *cost).collect::<Vec<_>>(), [50, 20, 20]);
    });
}

/// The top lists read each day's rows by a coarse rank of their cost (SQLite: digits, then the
/// first digit): costs of one rank are still told apart, and a key's or an owner's day that grows
/// by many small records reaches its rank.
#[tokio::test(flavor = "multi_thread")]
async fn top_spenders_tell_apart_costs_of_one_rank() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        for (name, cost) in [("k1100", 1_100), ("k1900", 1_900), ("k1500", 1_500), ("k950", 950)] {
            let key = new_key(&owner, name, at(0));
            insert(store, &key).await;
            store.record_usage(&usage(name, key.id, cost, noon(2))).await.unwrap();
        }
        let grower = add_user(store, "grower").await;
        let grown = new_key(&grower, "grown", at(0));
        insert(store, &grown).await;
        for n in 0..17 {
            store.record_usage(&usage(&format!("grown-{n}"), grown.id, 100, noon(2))).await.unwrap();
        }
        assert_eq!(
            top(store, SpenderKind::Key, 2, 2, 3).await,
            [("k1900".to_string(), 1_900), ("grown".to_string(), 1_700), ("k1500".to_string(), 1_500)]
        );
        store.record_usage(&usage("grown-last", grown.id, 300, noon(2))).await.unwrap();
        assert_eq!(top(store, SpenderKind::Key, 2, 2, 1).await, [("grown".to_string(), 2_000)], "grew past its rank");
        // The owner's day grew with its key's, past the other owner's 5,450 at the last record.
        assert_eq!(top(store, SpenderKind::User, 2, 2, 1).await, [("owner".to_string(), 5_450)]);
        for n in 0..35 {
            store.record_usage(&usage(&format!("grown-more-{n}"), grown.id, 100, noon(2))).await.unwrap();
        }
        assert_eq!(top(store, SpenderKind::User, 2, 2, 1).await, [("grower".to_string(), 5_500)], "grew past its rank");
        assert_eq!(top(store, SpenderKind::Key, 1, 3, 5).await.last().cloned(), Some(("k950".to_string(), 950)));
    });
}

fn users_page(after: Option<&str>, filter: Option<&str>, name: Option<&str>, limit: u32) -> UserQuery {
    UserQuery {
        filter: filter.map(Into::into),
        name: name.map(Into::into),
        after: after.map(Into::into),
        limit,
        first_day: day(2),
        last_day: day(3),
        now: at(0),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn user_pages_go_by_name_with_key_counts_spend_and_last_use() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let cleo = add_user(store, "cleo").await;
        let abe = add_user(store, "abe").await;
        add_user(store, "bea").await;
        let live = new_key(&cleo, "live", at(0));
        let mut off = new_key(&cleo, "off", at(0));
        off.is_active = false;
        let mut expired = new_key(&cleo, "expired", at(-600));
        expired.expires_at = Some(at(-60));
        for key in [&live, &off, &expired] {
            insert(store, key).await;
        }
        insert(store, &new_key(&abe, "abe's", at(0))).await;
        store.record_usage(&usage("cleo-1", live.id, 250, noon(2))).await.unwrap();
        store.record_usage(&usage("cleo-2", off.id, 50, noon(3))).await.unwrap();
        store.record_usage(&usage("cleo-old", off.id, 9_000, noon(1))).await.unwrap();

        let page = store.user_overviews(&users_page(None, None, None, 2)).await.unwrap();
        let names: Vec<&str> = page.iter().map(|u| u.user.name.as_str()).collect();
        assert_eq!(names, ["abe", "bea"]);
        assert_eq!((page[0].keys, page[0].active_keys, page[0].spend, page[0].last_used_at), (1, 1, Money::ZERO, None));
        assert_eq!((page[1].keys, page[1].last_used_at), (0, None));
        let next = store.user_overviews(&users_page(Some("bea"), None, None, 2)).await.unwrap();
        assert_eq!(next.len(), 1);
        let cleo_row = &next[0];
        assert_eq!(cleo_row.user, cleo);
        assert_eq!((cleo_row.keys, cleo_row.active_keys), (3, 1), "disabled and expired keys are not active");
        assert_eq!(cleo_row.spend, Money::from_micros(300), "spend of the range only");
        assert_eq!(cleo_row.last_used_at, Some(noon(3)));

        let filtered = store.user_overviews(&users_page(None, Some("E"), None, 10)).await.unwrap();
        assert_eq!(filtered.iter().map(|u| u.user.name.as_str()).collect::<Vec<_>>(), ["abe", "bea", "cleo"]);
        let filtered = store.user_overviews(&users_page(None, Some("b%"), None, 10)).await.unwrap();
        assert!(filtered.is_empty(), "filter text is plain text");
        let exact = store.user_overviews(&users_page(None, None, Some("bea"), 10)).await.unwrap();
        assert_eq!(exact.iter().map(|u| u.user.name.as_str()).collect::<Vec<_>>(), ["bea"]);

        // The key used last goes: its use stays its owner's, as its spend does.
        assert!(store.purge_key(off.id, &audit("purge", Some(off.id))).await.unwrap());
        let cleo_row = &store.user_overviews(&users_page(None, None, Some("cleo"), 1)).await.unwrap()[0];
        assert_eq!((cleo_row.keys, cleo_row.spend), (2, Money::from_micros(300)));
        assert_eq!(cleo_row.last_used_at, Some(noon(3)), "the purged key's last use counts");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_pages_filter_by_actor_action_key_and_time_newest_first() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = add_user(store, "owner").await;
        let (one, two) = (new_key(&owner, "one", at(0)), new_key(&owner, "two", at(0)));
        insert(store, &one).await;
        insert(store, &two).await;
        for (n, actor, action, key) in [
            (1, "ann", "topup", Some(one.id)),
            (2, "bob", "topup", Some(two.id)),
            (3, "ann", "update", Some(two.id)),
            (4, "ann", "topup", Some(one.id)),
            (5, "bob", "config", None),
        ] {
            let record = AuditRecord {
                at: at(3_600 * n),
                actor: actor.into(),
                actor_key: None,
                action: action.into(),
                api_key_id: key,
                details: serde_json::json!({ "n": n }),
            };
            store.append_audit(&record).await.unwrap();
        }
        let page = |query: AuditQuery| async move {
            let rows = store.audit_page(&AuditQuery { limit: query.limit.max(1), ..query }).await.unwrap();
            assert!(rows.windows(2).all(|pair| pair[0].id > pair[1].id), "newest first");
            rows.iter()
                .map(|e| serde_json::from_str::<serde_json::Value>(&e.details).unwrap()["n"].clone())
                .collect::<Vec<_>>()
        };
        let n = |values: &[i64]| values.iter().map(|v| serde_json::json!(v)).collect::<Vec<_>>();
        let ann = || Some("ann".to_string());
        assert_eq!(page(AuditQuery { actor: ann(), limit: 10, ..AuditQuery::default() }).await, n(&[4, 3, 1]));
        assert_eq!(
            page(AuditQuery { actor: ann(), action: Some("topup".into()), limit: 10, ..AuditQuery::default() }).await,
            n(&[4, 1])
        );
        assert_eq!(
            page(AuditQuery { key_ids: Some(vec![two.id]), limit: 10, ..AuditQuery::default() }).await[..2],
            n(&[3, 2])
        );
        assert_eq!(page(AuditQuery { key_ids: Some(vec![]), limit: 10, ..AuditQuery::default() }).await, n(&[]));
        assert_eq!(
            page(AuditQuery { since: Some(at(3 * 3_600)), limit: 10, ..AuditQuery::default() }).await,
            n(&[5, 4, 3])
        );
        // Keyset paging: two at a time from the newest, then on from the last id seen.
        let first = store.audit_page(&AuditQuery { actor: ann(), limit: 2, ..AuditQuery::default() }).await.unwrap();
        let rest = store
            .audit_page(&AuditQuery { actor: ann(), before_id: Some(first[1].id), limit: 2, ..AuditQuery::default() })
            .await
            .unwrap();
        assert_eq!((first.len(), rest.len()), (2, 1));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&rest[0].details).unwrap()["n"], 1);
    });
}
