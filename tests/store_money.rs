//! Money over time in the store, on both backends, with the clock under the test's control:
//! budgets summed over the current calendar period, refills exactly once per key and period.

mod common;

use chrono::{DateTime, Duration, Utc};
use keytop::crypto::{hash_key, key_hint};
use keytop::domain::{
    ApiKey, Budget, CurrentPeriods, KeyPatch, Money, MoneyPlan, Patch, Period, PlanPatch, Refill, RefillMode, User,
};
use keytop::store::alerts::{AlertCheck, AlertScope};
use keytop::store::plan::RefillPeriods;
use keytop::store::{
    Actor, AdjustOutcome, AuditRecord, BalanceAdjustment, BalanceChange, SecretRoll, Store, UsageRecord,
};
use uuid::Uuid;

use common::TestDb;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn usd(dollars: i64) -> Money {
    Money::from_usd(dollars)
}

fn audit(action: &str, key: Option<Uuid>) -> AuditRecord {
    AuditRecord {
        at: utc("2026-01-01T00:00:00Z"),
        actor: "tester".into(),
        actor_key: None,
        action: action.into(),
        api_key_id: key,
        details: serde_json::json!({}),
    }
}

async fn owner(store: &dyn Store) -> User {
    let user =
        User { id: Uuid::new_v4(), name: "owner".into(), is_active: true, created_at: utc("2026-01-01T00:00:00Z") };
    store.insert_user(&user, &audit("user_add", None)).await.unwrap();
    user
}

/// A prepaid key with `credited` dollars and the given plan, stored.
async fn key_with(store: &dyn Store, owner: &User, name: &str, credited: Money, money: MoneyPlan) -> ApiKey {
    let id = Uuid::new_v4();
    let plaintext = format!("sk-{}", id.simple());
    let created = utc("2026-01-01T00:00:00Z");
    let key = ApiKey {
        id,
        user_id: owner.id,
        owner_name: owner.name.clone(),
        owner_active: true,
        key_hash: hash_key(&plaintext),
        key_ciphertext: format!("v1:sealed-{}", id.simple()),
        key_hint: key_hint(&plaintext),
        name: name.into(),
        allowed_providers: None,
        allowed_api_formats: None,
        allowed_models: None,
        rate_limit: None,
        concurrent_limit: None,
        expires_at: None,
        is_standalone: true,
        credited: Some(credited),
        used: Money::ZERO,
        auto_delete_on_expiry: None,
        is_active: true,
        last_used_at: None,
        created_at: created,
        updated_at: created,
        money,
        previous_secret_until: None,
    };
    store.insert_key(&key, None, &audit("key_create", Some(id))).await.unwrap();
    key
}

fn refill(amount: i64, period: Period, mode: RefillMode, set_at: &str) -> MoneyPlan {
    MoneyPlan { refill: Some(Refill::new(usd(amount), period, mode, utc(set_at)).unwrap()), ..MoneyPlan::default() }
}

async fn charge(store: &dyn Store, key: &ApiKey, micros: i64, at: &str) {
    let record = UsageRecord {
        request_id: Uuid::new_v4().to_string(),
        api_key_id: key.id,
        provider: None,
        model: None,
        api_format: None,
        total_tokens: 1,
        cost: Money::from_micros(micros),
        response_time_ms: None,
        created_at: utc(at),
    };
    store.record_usage(&record).await.unwrap();
}

async fn spent(store: &dyn Store, key: &ApiKey, now: &str) -> Money {
    let now = utc(now);
    let found = store.verify_lookup(&key.key_hash, now - Duration::minutes(1), CurrentPeriods::at(now)).await;
    found.unwrap().unwrap().key.budget_spent
}

async fn credited(store: &dyn Store, key: &ApiKey) -> Money {
    store.key(key.id).await.unwrap().unwrap().credited.unwrap()
}

/// The sweep's actor: an admin of `keytop serve` who ran it from their session.
const SWEEPER: Actor = Actor { name: "sweeper", key: Some("SHA256:sweeper") };

async fn refill_at(db: &TestDb, now: &str) -> keytop::store::plan::RefillReport {
    db.store.refill_due(&RefillPeriods::at(utc(now)), SWEEPER, false).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_keep_their_budget_refill_and_low_balance_line() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = owner(store).await;
        let plan = MoneyPlan {
            budget: Some(Budget::new(usd(50), Period::Week).unwrap()),
            low_balance: Some(Money::ZERO),
            ..refill(20, Period::Month, RefillMode::Reset, "2026-12-07T10:00:00Z")
        };
        let key = key_with(store, &owner, "planned", usd(10), plan).await;
        assert_eq!(store.key(key.id).await.unwrap().unwrap().money, plan);

        let patch = KeyPatch {
            money: PlanPatch { budget: Patch::Clear, refill: Patch::Clear, low_balance: Patch::Set(usd(7)) },
            ..KeyPatch::default()
        };
        let updated = store.update_key(key.id, &patch, &audit("key_update", Some(key.id))).await.unwrap().unwrap();
        assert_eq!(updated.money, MoneyPlan { low_balance: Some(usd(7)), ..MoneyPlan::default() });
        let back = KeyPatch {
            money: PlanPatch { refill: Patch::Set(plan.refill.unwrap()), ..PlanPatch::default() },
            ..KeyPatch::default()
        };
        let updated = store.update_key(key.id, &back, &audit("key_update", Some(key.id))).await.unwrap().unwrap();
        assert_eq!(updated.money.refill, plan.refill);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn budget_spend_counts_the_current_calendar_period_only() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = owner(store).await;
        let monthly = MoneyPlan { budget: Some(Budget::new(usd(10), Period::Month).unwrap()), ..MoneyPlan::default() };
        let key = key_with(store, &owner, "monthly", usd(100), monthly).await;
        // The last millisecond of November, the first of December.
        charge(store, &key, 1_000_000, "2026-11-30T23:59:59.999Z").await;
        charge(store, &key, 2_000_000, "2026-12-01T00:00:00Z").await;
        charge(store, &key, 3_000_000, "2026-12-31T23:59:59.999Z").await;
        assert_eq!(spent(store, &key, "2026-11-30T23:59:59.999Z").await, usd(1));
        assert_eq!(spent(store, &key, "2026-12-01T00:00:00Z").await, usd(2));
        assert_eq!(spent(store, &key, "2026-12-31T23:59:59.999Z").await, usd(5));
        assert_eq!(spent(store, &key, "2027-01-01T00:00:00Z").await, Money::ZERO, "a new month starts from zero");

        // Weeks start on Monday: Sunday 2026-12-13 belongs to the week before Monday the 14th.
        let weekly = MoneyPlan { budget: Some(Budget::new(usd(10), Period::Week).unwrap()), ..MoneyPlan::default() };
        let key = key_with(store, &owner, "weekly", usd(100), weekly).await;
        charge(store, &key, 4_000_000, "2026-12-13T23:59:59.999Z").await;
        charge(store, &key, 5_000_000, "2026-12-14T00:00:00Z").await;
        assert_eq!(spent(store, &key, "2026-12-13T12:00:00Z").await, usd(4));
        assert_eq!(spent(store, &key, "2026-12-20T23:59:59.999Z").await, usd(5));

        // A leap day is a day of its own, and February's month ends after it.
        let daily = MoneyPlan { budget: Some(Budget::new(usd(10), Period::Day).unwrap()), ..MoneyPlan::default() };
        let key = key_with(store, &owner, "daily", usd(100), daily).await;
        charge(store, &key, 6_000_000, "2028-02-29T10:00:00Z").await;
        assert_eq!(spent(store, &key, "2028-02-29T23:59:59.999Z").await, usd(6));
        assert_eq!(spent(store, &key, "2028-03-01T00:00:00Z").await, Money::ZERO);

        let unbudgeted = key_with(store, &owner, "free", usd(100), MoneyPlan::default()).await;
        charge(store, &unbudgeted, 7_000_000, "2026-12-01T00:00:00Z").await;
        assert_eq!(spent(store, &unbudgeted, "2026-12-01T01:00:00Z").await, Money::ZERO, "no budget, no sum");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refill_lands_once_at_the_first_sweep_of_each_period() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = owner(store).await;
        let key = key_with(
            store,
            &owner,
            "monthly",
            usd(10),
            refill(50, Period::Month, RefillMode::Add, "2026-12-07T10:00:00Z"),
        )
        .await;

        let last_microsecond = refill_at(&db, "2026-12-31T23:59:59.999Z").await;
        assert_eq!(last_microsecond.refilled, 0, "the month the refill was set in is not refilled");
        let report = refill_at(&db, "2027-01-01T00:00:00Z").await;
        assert_eq!(report.refilled, 1);
        assert_eq!((report.keys[0].id, report.keys[0].period.as_str()), (key.id, "month 2027-01"));
        assert_eq!((report.keys[0].added, report.keys[0].missed_periods), (usd(50), 0));
        assert_eq!(refill_at(&db, "2027-01-01T00:01:00Z").await.refilled, 0, "once per period");
        assert_eq!(refill_at(&db, "2027-01-31T23:59:59.999Z").await.refilled, 0);
        assert_eq!(credited(store, &key).await, usd(60));

        let ledger = store.ledger(key.id, None).await.unwrap();
        let last = ledger.last().unwrap();
        assert_eq!(last.note.as_deref(), Some("refill (month 2027-01)"));
        assert_eq!(last.idempotency_key, Some(format!("refill:{}:month:2027-01-01", key.id)));
        assert_eq!((last.delta, last.credited_after, last.actor.as_str()), (usd(50), Some(usd(60)), "sweeper"));
        assert_eq!(last.actor_key.as_deref(), SWEEPER.key);
        let audit = store.audit(Some(key.id), 10).await.unwrap();
        assert_eq!((audit[0].action.as_str(), audit[0].actor_key.as_deref()), ("refill", SWEEPER.key));
        assert!(audit[0].details.contains("refill (month 2027-01)"), "{}", audit[0].details);

        // February follows January's 31st without skipping or shortening a month.
        assert_eq!(refill_at(&db, "2027-02-01T00:00:00Z").await.refilled, 1);
        assert_eq!(credited(store, &key).await, usd(110));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_sweep_refills_once_and_says_how_many_periods_it_missed() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = owner(store).await;
        let key = key_with(
            store,
            &owner,
            "weekly",
            usd(10),
            refill(5, Period::Week, RefillMode::Add, "2026-12-09T10:00:00Z"),
        )
        .await;
        // Set in the week of Monday the 7th; the sweep comes back three Mondays later.
        let report = refill_at(&db, "2026-12-28T09:00:00Z").await;
        assert_eq!(report.refilled, 1);
        assert_eq!((report.keys[0].period.as_str(), report.keys[0].missed_periods), ("week 2026-12-28", 2));
        assert_eq!(credited(store, &key).await, usd(15), "one refill, not three");

        // A daily refill across a leap day.
        let leap =
            key_with(store, &owner, "leap", usd(1), refill(1, Period::Day, RefillMode::Add, "2028-02-28T10:00:00Z"))
                .await;
        let report = refill_at(&db, "2028-02-29T00:00:00Z").await;
        assert_eq!(report.keys.iter().find(|k| k.id == leap.id).unwrap().period, "day 2028-02-29");
        assert_eq!(refill_at(&db, "2028-03-01T00:00:00Z").await.refilled, 1);
        assert_eq!(credited(store, &leap).await, usd(3));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_refills_top_up_to_the_amount_and_skip_disabled_or_expired_keys() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = owner(store).await;
        let plan = refill(20, Period::Day, RefillMode::Reset, "2026-12-07T10:00:00Z");
        let low = key_with(store, &owner, "low", usd(30), plan).await;
        charge(store, &low, 25_000_000, "2026-12-07T11:00:00Z").await; // $5 remaining
        let full = key_with(store, &owner, "full", usd(100), plan).await;
        let off = key_with(store, &owner, "off", usd(10), plan).await;
        store.set_key_active(off.id, false, &audit("key_disable", Some(off.id))).await.unwrap();
        let expiring = key_with(store, &owner, "expiring", usd(10), plan).await;
        let expiry = KeyPatch { expires_at: Patch::Set(utc("2026-12-07T23:00:00Z")), ..KeyPatch::default() };
        store.update_key(expiring.id, &expiry, &audit("key_update", Some(expiring.id))).await.unwrap();

        let before = store.audit(None, 1000).await.unwrap().len();
        let preview =
            db.store.refill_due(&RefillPeriods::at(utc("2026-12-08T00:00:00Z")), "sweeper".into(), true).await.unwrap();
        assert_eq!(preview.refilled, 2, "{preview:?}");
        assert_eq!(store.audit(None, 1000).await.unwrap().len(), before, "a dry run writes nothing");
        assert_eq!(credited(store, &low).await, usd(30));

        let report = refill_at(&db, "2026-12-08T00:00:00Z").await;
        let mut refilled: Vec<Uuid> = report.keys.iter().map(|k| k.id).collect();
        refilled.sort();
        let mut expected = vec![low.id, full.id];
        expected.sort();
        assert_eq!(refilled, expected, "disabled and expired keys are left alone");
        assert_eq!(credited(store, &low).await, usd(45), "$5 remaining topped back up to $20");
        assert_eq!(credited(store, &full).await, usd(100), "a full key gets nothing more");
        assert_eq!(report.keys.iter().find(|k| k.id == full.id).unwrap().added, Money::ZERO);
        assert_eq!(credited(store, &off).await, usd(10));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn purges_during_refills_leave_every_book_balanced() {
    for_each_backend!(|db| {
        let store = db.store.clone();
        let owner = owner(store.as_ref()).await;
        let plan = refill(1, Period::Day, RefillMode::Add, "2026-12-07T10:00:00Z");
        let mut keys = Vec::new();
        for i in 0..40 {
            keys.push(key_with(store.as_ref(), &owner, &format!("k{i}"), usd(1), plan).await);
        }
        let periods = RefillPeriods::at(utc("2026-12-08T00:00:00Z"));
        let refills = (0..2).map(|_| {
            let (store, periods) = (store.clone(), periods.clone());
            tokio::spawn(async move { store.refill_due(&periods, "sweeper".into(), false).await.unwrap().refilled })
        });
        let refills: Vec<_> = refills.collect();
        for key in keys.iter().step_by(2) {
            store.purge_key(key.id, &audit("key_purge", Some(key.id))).await.unwrap();
        }
        let mut total = 0;
        for refill in refills {
            total += refill.await.unwrap();
        }
        assert!(total <= 40, "at most one refill per key: {total}");
        for key in &keys {
            let ledger = store.ledger(key.id, None).await.unwrap();
            let refills =
                ledger.iter().filter(|entry| entry.note.as_deref() == Some("refill (day 2026-12-08)")).count();
            assert!(refills <= 1, "{}: {refills} refills", key.name);
            if let Some(stored) = store.key(key.id).await.unwrap() {
                assert_eq!(refills, 1, "{}: a key that survived the purges was refilled", key.name);
                assert_eq!(stored.credited, Some(usd(2)), "{}: credited matches its ledger", key.name);
            }
        }
    });
}

async fn finds(store: &dyn Store, hash: &str, now: &str) -> Option<Uuid> {
    let now = utc(now);
    let found = store.verify_lookup(hash, now - Duration::minutes(1), CurrentPeriods::at(now)).await.unwrap();
    found.map(|lookup| lookup.key.id)
}

fn roll(secret: &str, previous_until: Option<&str>) -> SecretRoll {
    SecretRoll {
        hash: hash_key(secret),
        ciphertext: format!("v1:sealed-{secret}"),
        hint: key_hint(secret),
        previous_until: previous_until.map(utc),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_secret_verifies_until_its_grace_ends_and_a_second_roll_ends_the_oldest() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = owner(store).await;
        let key = key_with(store, &owner, "rolled", usd(10), MoneyPlan::default()).await;
        let first = key.key_hash.clone();
        let rolled = store
            .roll_key(key.id, &roll("sk-second", Some("2026-12-08T12:00:00Z")), &audit("key_roll", Some(key.id)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((rolled.id, rolled.name.as_str(), rolled.credited), (key.id, "rolled", key.credited));
        assert_eq!(rolled.key_hash, hash_key("sk-second"));
        assert_eq!(rolled.previous_secret_until, Some(utc("2026-12-08T12:00:00Z")));
        assert_eq!(finds(store, &first, "2026-12-08T11:59:59.999Z").await, Some(key.id), "within the grace");
        assert_eq!(finds(store, &first, "2026-12-08T12:00:00Z").await, None, "the grace has ended");
        assert_eq!(finds(store, &hash_key("sk-second"), "2026-12-08T12:00:00Z").await, Some(key.id));

        // A second roll within the grace: the first secret stops at once, the second follows
        // the new grace.
        store
            .roll_key(key.id, &roll("sk-third", Some("2026-12-09T12:00:00Z")), &audit("key_roll", Some(key.id)))
            .await
            .unwrap();
        assert_eq!(finds(store, &first, "2026-12-08T10:00:00Z").await, None, "the oldest secret ended at once");
        assert_eq!(finds(store, &hash_key("sk-second"), "2026-12-09T11:00:00Z").await, Some(key.id));
        assert_eq!(finds(store, &hash_key("sk-third"), "2026-12-09T11:00:00Z").await, Some(key.id));

        // No grace: the replaced secret stops at once.
        let now =
            store.roll_key(key.id, &roll("sk-fourth", None), &audit("key_roll", Some(key.id))).await.unwrap().unwrap();
        assert_eq!(now.previous_secret_until, None);
        assert_eq!(finds(store, &hash_key("sk-third"), "2026-12-08T10:00:00Z").await, None);
        assert_eq!(finds(store, &hash_key("sk-fourth"), "2026-12-08T10:00:00Z").await, Some(key.id));
        assert!(store.roll_key(Uuid::new_v4(), &roll("sk-x", None), &audit("key_roll", None)).await.unwrap().is_none());
    });
}

// ---------------------------------------------------------------------------------------------
// Alert claims

/// The claims a check at `now` inserted, as (key name, event, period), sorted.
async fn claim(store: &dyn Store, scope: AlertScope, now: &str, keys: &[&ApiKey]) -> Vec<(String, String, String)> {
    let check = AlertCheck::at(utc(now), usd(5));
    let mut claims: Vec<_> = store
        .claim_alerts(scope, &check)
        .await
        .unwrap()
        .into_iter()
        .map(|claim| {
            let name = keys.iter().find(|key| key.id == claim.key_id).map_or("?".into(), |key| key.name.clone());
            (name, claim.event.as_str().to_string(), claim.period)
        })
        .collect();
    claims.sort();
    claims
}

fn claimed(name: &str, event: &str, period: &str) -> (String, String, String) {
    (name.into(), event.into(), period.into())
}

async fn adjust(store: &dyn Store, key: &ApiKey, change: BalanceChange) {
    let adjustment = BalanceAdjustment {
        key_id: key.id,
        change,
        at: utc("2026-12-07T10:00:00Z"),
        actor: "tester".into(),
        actor_key: None,
        note: None,
        idempotency_key: None,
    };
    assert!(matches!(store.adjust_balance(&adjustment).await.unwrap(), AdjustOutcome::Applied(_)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_balance_alert_is_claimed_once_until_the_balance_comes_back_above_its_line() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = owner(store).await;
        let wallet = key_with(store, &owner, "wallet", usd(10), MoneyPlan::default()).await;
        let keys = [&wallet];
        let now = "2026-12-07T12:00:00Z";
        charge(store, &wallet, 5_000_000, now).await;
        assert_eq!(claim(store, AlertScope::Key(wallet.id), now, &keys).await, [], "$5 left is on the line, not under");
        charge(store, &wallet, 1, now).await;
        let low = || claimed("wallet", "low_balance", "balance");
        assert_eq!(claim(store, AlertScope::Key(wallet.id), now, &keys).await, [low()]);
        assert_eq!(claim(store, AlertScope::Key(wallet.id), now, &keys).await, [], "once");
        assert_eq!(claim(store, AlertScope::All, now, &keys).await, [], "the sweep finds it claimed");

        charge(store, &wallet, 5_000_000, now).await;
        let exhausted = || claimed("wallet", "exhausted", "balance");
        assert_eq!(claim(store, AlertScope::All, now, &keys).await, [exhausted()], "a new event, the same period");

        // A top-up that leaves the key under its line ends only the exhausted period: the key
        // is exhausted again later, and under its line all along.
        adjust(store, &wallet, BalanceChange::Add(usd(2))).await;
        assert_eq!(claim(store, AlertScope::Key(wallet.id), now, &keys).await, []);
        charge(store, &wallet, 2_000_000, now).await;
        assert_eq!(claim(store, AlertScope::Key(wallet.id), now, &keys).await, [exhausted()]);
        // One that lifts it above its line ends both, and the next crossing alerts again.
        adjust(store, &wallet, BalanceChange::Add(usd(20))).await;
        assert_eq!(claim(store, AlertScope::Key(wallet.id), now, &keys).await, []);
        charge(store, &wallet, 16_000_000, now).await;
        assert_eq!(claim(store, AlertScope::Key(wallet.id), now, &keys).await, [low()]);
        charge(store, &wallet, 4_000_000, now).await;
        assert_eq!(claim(store, AlertScope::Key(wallet.id), now, &keys).await, [exhausted()]);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_alert_is_claimed_once_per_budget_period() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = owner(store).await;
        let plan = MoneyPlan {
            budget: Some(Budget::new(usd(2), Period::Day).unwrap()),
            low_balance: Some(Money::ZERO),
            ..MoneyPlan::default()
        };
        let capped = key_with(store, &owner, "capped", usd(100), plan).await;
        let keys = [&capped];
        charge(store, &capped, 1_999_999, "2026-12-07T23:59:59.999Z").await;
        assert_eq!(claim(store, AlertScope::All, "2026-12-07T23:59:59.999Z", &keys).await, []);
        charge(store, &capped, 1, "2026-12-07T23:59:59.999Z").await;
        let monday = claimed("capped", "budget_reached", "day:2026-12-07");
        assert_eq!(claim(store, AlertScope::Key(capped.id), "2026-12-07T23:59:59.999Z", &keys).await, [monday]);
        assert_eq!(claim(store, AlertScope::All, "2026-12-07T23:59:59.999Z", &keys).await, []);

        // The next day is a new period: spend starts again from nothing.
        assert_eq!(claim(store, AlertScope::All, "2026-12-08T00:00:00Z", &keys).await, []);
        charge(store, &capped, 3_000_000, "2026-12-08T09:00:00Z").await;
        let tuesday = || claimed("capped", "budget_reached", "day:2026-12-08");
        assert_eq!(claim(store, AlertScope::All, "2026-12-08T09:00:00Z", &keys).await, [tuesday()]);

        // Raising the budget past the spend ends the claim; lowering it again alerts again.
        let budget = |dollars| KeyPatch {
            money: PlanPatch {
                budget: Patch::Set(Budget::new(usd(dollars), Period::Day).unwrap()),
                ..PlanPatch::default()
            },
            ..KeyPatch::default()
        };
        store.update_key(capped.id, &budget(10), &audit("key_update", Some(capped.id))).await.unwrap();
        assert_eq!(claim(store, AlertScope::All, "2026-12-08T09:00:00Z", &keys).await, []);
        store.update_key(capped.id, &budget(3), &audit("key_update", Some(capped.id))).await.unwrap();
        assert_eq!(claim(store, AlertScope::All, "2026-12-08T09:00:00Z", &keys).await, [tuesday()]);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_skip_disabled_expired_unlimited_and_lineless_keys_and_go_with_a_purged_key() {
    for_each_backend!(|db| {
        let store = db.store.as_ref();
        let owner = owner(store).await;
        let now = "2026-12-07T12:00:00Z";
        let lineless = MoneyPlan { low_balance: Some(Money::ZERO), ..MoneyPlan::default() };
        let disabled = key_with(store, &owner, "disabled", usd(1), MoneyPlan::default()).await;
        store.set_key_active(disabled.id, false, &audit("key_disable", Some(disabled.id))).await.unwrap();
        let expired = key_with(store, &owner, "expired", usd(1), MoneyPlan::default()).await;
        let expire = KeyPatch { expires_at: Patch::Set(utc("2026-12-07T11:00:00Z")), ..KeyPatch::default() };
        store.update_key(expired.id, &expire, &audit("key_update", Some(expired.id))).await.unwrap();
        let lineless = key_with(store, &owner, "lineless", usd(1), lineless).await;
        let unlimited = key_with(store, &owner, "unlimited", usd(1), MoneyPlan::default()).await;
        adjust(store, &unlimited, BalanceChange::SetCredited(None)).await;
        let keys = [&disabled, &expired, &lineless, &unlimited];
        assert_eq!(claim(store, AlertScope::All, now, &keys).await, []);

        // Enabled again while still low: its alert comes now.
        store.set_key_active(disabled.id, true, &audit("key_enable", Some(disabled.id))).await.unwrap();
        assert_eq!(claim(store, AlertScope::All, now, &keys).await, [claimed("disabled", "low_balance", "balance")]);
        // Its claim goes with it (else the foreign key would refuse the purge).
        assert!(store.purge_key(disabled.id, &audit("key_purge", Some(disabled.id))).await.unwrap());
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn of_four_checks_at_once_exactly_one_claims_each_alert() {
    for_each_backend!(|db| {
        let store = db.store.clone();
        let owner = owner(store.as_ref()).await;
        let mut keys = Vec::new();
        for n in 0..20 {
            let key = key_with(store.as_ref(), &owner, &format!("k{n}"), usd(1), MoneyPlan::default()).await;
            keys.push(key);
        }
        let checks = (0..4).map(|n| {
            let (store, first) = (store.clone(), keys[0].id);
            tokio::spawn(async move {
                let scope = if n == 0 { AlertScope::Key(first) } else { AlertScope::All };
                store.claim_alerts(scope, &AlertCheck::at(utc("2026-12-07T12:00:00Z"), usd(5))).await.unwrap()
            })
        });
        let mut claimed = 0;
        for check in checks.collect::<Vec<_>>() {
            claimed += check.await.unwrap().len();
        }
        assert_eq!(claimed, 20, "each key's low-balance alert, once");
    });
}
