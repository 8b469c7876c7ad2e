//! Fixed, in-memory data for the TUI's tests: keys, a session, a detail with usage. The clock is
//! fixed, so relative times in snapshots never change.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use uuid::Uuid;

use crate::config::ThemeChoice;
use crate::domain::{
    ApiKey, AuditEntry, Budget, DailyUsage, KeyCounts, LedgerEntry, Money, MoneyPlan, Period, Refill, RefillMode,
    Spender, SpenderKind, UsageTotals, User, UserOverview,
};
use crate::service::{
    AdmissionCheck, Attention, FleetStats, KeyStats, MoneyView, Ranked, TopSpenders, UsageSeries, UserDetail,
    UserStats, VerifyDecision,
};

use super::color_depth::ColorDepth;
use super::keymap::Keymap;
use super::screens::Tab;
use super::screens::keys::paging::Window;
use super::screens::keys::{DetailData, Screen};
use super::screens::usage::UsageData;
use super::screens::users::{UserData, UserView};
use super::state::{Session, State};
use super::theme::Theme;

/// 2026-03-08 20:00:00 UTC.
pub const NOW: DateTime<Utc> = match DateTime::from_timestamp(1_773_000_000, 0) {
    Some(now) => now,
    None => panic!("a valid timestamp"),
};

/// A user key with a deterministic id derived from `index`.
pub fn key_named(index: usize, name: &str) -> ApiKey {
    let id = Uuid::from_u128(0x5e1e_c7ed_0000_4000_8000_0000_0000_0000 + index as u128);
    ApiKey {
        id,
        user_id: Uuid::from_u128(0xa11ce),
        owner_name: "alice".into(),
        owner_active: true,
        key_hash: format!("{index:064x}"),
        key_ciphertext: "v1:sealed".into(),
        key_hint: format!("sk-AbCdEfG...{index:04}"),
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
        last_used_at: Some(NOW - TimeDelta::minutes(5 * index as i64 + 3)),
        created_at: NOW - TimeDelta::days(40),
        updated_at: NOW - TimeDelta::days(1),
        money: MoneyPlan::default(),
        previous_secret_until: None,
    }
}

pub fn user_key() -> ApiKey {
    key_named(1, "laptop")
}

/// A prepaid key with $10.00 remaining, a monthly budget of $20 and a monthly refill of $10.
pub fn prepaid_key() -> ApiKey {
    let money = MoneyPlan {
        budget: Some(Budget::new(Money::from_usd(20), Period::Month).expect("a positive budget")),
        refill: Some(Refill::new(Money::from_usd(10), Period::Month, RefillMode::Add, NOW).expect("a positive refill")),
        low_balance: None,
    };
    ApiKey {
        is_standalone: true,
        credited: Some(Money::from_usd(12)),
        used: Money::from_usd(2),
        money,
        ..key_named(0, "ci-key")
    }
}

/// A varied list: every status, prepaid and not, limits and allow lists.
pub fn keys() -> Vec<ApiKey> {
    let mut keys = vec![prepaid_key(), user_key()];
    let mut expired = key_named(2, "staging");
    expired.expires_at = Some(NOW - TimeDelta::hours(2));
    keys.push(expired);
    let mut disabled = key_named(3, "old-batch-job");
    disabled.is_active = false;
    disabled.owner_name = "bob".into();
    keys.push(disabled);
    let mut exhausted = ApiKey {
        is_standalone: true,
        credited: Some(Money::from_usd(5)),
        used: Money::from_usd(5),
        ..key_named(4, "demo-trial")
    };
    exhausted.owner_name = "carol".into();
    keys.push(exhausted);
    let mut expiring = key_named(5, "partner-\u{1b}[31mred\u{7}");
    expiring.expires_at = Some(NOW + TimeDelta::days(3));
    expiring.allowed_models = Some(vec!["gpt-4o".into(), "claude-sonnet".into()]);
    expiring.rate_limit = None;
    keys.push(expiring);
    let unlimited =
        ApiKey { is_standalone: true, credited: None, used: Money::from_usd(40), ..key_named(6, "internal-unlimited") };
    keys.push(unlimited);
    for index in 7..30 {
        keys.push(key_named(index, &format!("service-{index:02}")));
    }
    keys
}

pub fn session(read_only: bool, theme: Theme) -> Session {
    Session {
        read_only,
        database: "sqlite:///var/lib/keytop/keytop.db".into(),
        keymap: Keymap::new(&BTreeMap::new(), read_only).unwrap(),
        theme,
        confirm_topup_at: Money::from_usd(1000),
        refresh_every: Duration::from_secs(5),
        live_updates: false,
        sweep_every: Some(Duration::from_secs(60)),
        instance: uuid::Uuid::nil(),
    }
}

/// A state with `keys()` loaded (a complete list) and the first key selected.
pub fn loaded_state(size: (u16, u16)) -> State {
    let mut state = State::new(session(false, Theme::for_choice(ThemeChoice::Color, ColorDepth::TrueColor)), NOW, size);
    state.list.window = Window { rows: keys(), anchor: None, at_start: true, at_end: true };
    state.counts = Some(KeyCounts { total: 30, disabled: 1, expired: 1 });
    state
}

/// `loaded_state` with the detail of the first (prepaid) key open.
pub fn detail_state(size: (u16, u16)) -> State {
    let mut state = loaded_state(size);
    state.screen = Screen::Detail;
    state.detail.data = Some(detail_data(prepaid_key(), 30));
    state
}

pub fn detail_data(key: ApiKey, days: u32) -> DetailData {
    let last_day = NOW.date_naive();
    let first_day = last_day - TimeDelta::days(i64::from(days) - 1);
    let daily: Vec<DailyUsage> =
        first_day.iter_days().take(days as usize).enumerate().map(|(index, day)| usage_on(index as i64, day)).collect();
    let stats = KeyStats::summarise(key.id, days, first_day, last_day, &daily);
    let ledger = vec![
        ledger_entry(&key, 2, Money::from_usd(-3), Some(Money::from_usd(12)), Some("refund of a duplicate charge")),
        ledger_entry(&key, 1, Money::from_usd(5), Some(Money::from_usd(15)), None),
        ledger_entry(&key, 0, Money::from_usd(10), Some(Money::from_usd(10)), Some("initial balance")),
    ];
    let money = MoneyView::new(&key, Money::from_usd(3), NOW, Money::from_usd(5));
    let admission = AdmissionCheck {
        decision: VerifyDecision::Allowed {
            key_id: key.id,
            remaining_balance: key.balance().and_then(|balance| balance.remaining),
            remaining_requests: key.rate_limit.map(|limit| limit - 3),
            recorded_requests: key.rate_limit.map(|_| 3),
        },
        recorded_requests: 3,
    };
    let history = audit_rows(2).into_iter().map(|entry| AuditEntry { api_key_id: Some(key.id), ..entry }).collect();
    DetailData { key, stats, ledger, money, admission, history, disabled_by: None }
}

/// A weekly rhythm: busy weekdays, quiet weekends.
fn usage_on(index: i64, day: NaiveDate) -> DailyUsage {
    use chrono::Datelike;
    let weekend = day.weekday().number_from_monday() >= 6;
    let requests = if weekend { 20 + index % 5 } else { 150 + (index * 37) % 90 };
    DailyUsage {
        day,
        requests,
        tokens: requests * 1_250,
        cost: Money::from_micros(requests * 2_400),
        response_ms_sum: requests * 420,
        timed_requests: requests,
    }
}

fn ledger_entry(
    key: &ApiKey,
    index: i64,
    delta: Money,
    credited_after: Option<Money>,
    note: Option<&str>,
) -> LedgerEntry {
    LedgerEntry {
        id: index + 1,
        api_key_id: key.id,
        at: NOW - TimeDelta::days(10 - 3 * index),
        actor: "admin".into(),
        actor_key: None,
        delta,
        credited_after,
        note: note.map(String::from),
        idempotency_key: None,
    }
}

/// `loaded_state` on the usage screen, loaded for 30 days: a fleet series, three top keys
/// (one standalone), the usage of a purged key, two top users.
pub fn usage_state(size: (u16, u16)) -> State {
    let mut state = loaded_state(size);
    state.tab = Tab::Usage;
    state.usage.data = Some(usage_data(30));
    state
}

pub fn usage_data(days: u32) -> UsageData {
    let last_day = NOW.date_naive();
    let first_day = last_day - TimeDelta::days(i64::from(days) - 1);
    let daily: Vec<DailyUsage> =
        first_day.iter_days().take(days as usize).enumerate().map(|(index, day)| usage_on(index as i64, day)).collect();
    let usage = UsageSeries::summarise(days, first_day, last_day, &daily);
    let purged_daily = [DailyUsage { day: last_day, ..usage_on(1, last_day) }];
    let purged = UsageSeries::summarise(days, first_day, last_day, &purged_daily);
    let of_day =
        |day: NaiveDate| daily.iter().find(|row| row.day == day).map_or_else(UsageTotals::default, UsageTotals::from);
    let fleet = FleetStats {
        today: of_day(last_day),
        yesterday: of_day(last_day - TimeDelta::days(1)),
        usage: usage.clone(),
        purged: purged.clone(),
    };
    let total = usage.total_cost;
    let ranked = |id: Uuid, name: &str, owner: Option<&str>, cost: Money| Ranked {
        spender: Spender {
            id,
            name: name.into(),
            owner: owner.map(String::from),
            totals: UsageTotals { requests: cost.micros() / 2_400, tokens: cost.micros() / 2_400 * 1_250, cost },
        },
        share: cost.micros() as f64 / total.micros() as f64,
    };
    let tenths = |parts: i64| Money::from_micros(total.micros() * parts / 10);
    let top = |by: SpenderKind, spenders: Vec<Ranked<Spender>>, purged: Option<&UsageSeries>| TopSpenders {
        by,
        days,
        first_day,
        last_day,
        total,
        spenders,
        purged: purged.map(|series| Ranked {
            spender: UsageTotals {
                requests: series.total_requests,
                tokens: series.total_tokens,
                cost: series.total_cost,
            },
            share: series.total_cost.micros() as f64 / total.micros() as f64,
        }),
    };
    let top_keys = top(
        SpenderKind::Key,
        vec![
            ranked(user_key().id, "laptop", Some("alice"), tenths(5)),
            ranked(prepaid_key().id, "ci-key", None, tenths(3)),
            ranked(key_named(3, "x").id, "old-batch-job", Some("bob"), tenths(1)),
        ],
        Some(&purged),
    );
    let top_users = top(
        SpenderKind::User,
        vec![
            ranked(Uuid::from_u128(0xa11ce), "alice", None, tenths(6)),
            ranked(Uuid::from_u128(0xb0b), "bob", None, tenths(1)),
        ],
        None,
    );
    UsageData { fleet, top_keys, top_users, attention: attention() }
}

/// Two low balances (one exhausted), a key expiring in 3 days, a key the sweep disabled and one
/// it deleted.
pub fn attention() -> Attention {
    let all = keys();
    let named = |name: &str| all.iter().find(|key| key.name.starts_with(name)).cloned().expect("a fixture key");
    let low = ApiKey { used: Money::from_micros(9_700_000), ..named("ci-key") };
    let swept = |index: i64, action: &str, key: Option<Uuid>, name: &str| AuditEntry {
        id: 2_000 - index,
        at: NOW - TimeDelta::hours(2 + 3 * index),
        actor: "keytop-sweep".into(),
        actor_key: None,
        action: action.into(),
        api_key_id: key,
        details: format!(r#"{{"name":"{name}"}}"#),
    };
    Attention {
        low_balance: vec![named("demo-trial"), low],
        expiring: vec![named("partner-")],
        swept: vec![
            swept(0, "sweep_disable", Some(named("staging").id), "staging"),
            swept(1, "sweep_delete", Some(Uuid::from_u128(0xdead)), "temp-contractor"),
        ],
        limit: 10,
    }
}

/// Audit rows, newest first: edits and a top-up of keys, a user added, a master key rotation.
pub fn audit_rows(count: usize) -> Vec<AuditEntry> {
    (0..count)
        .map(|index| {
            let (action, key, details) = match index % 4 {
                0 => ("key_update", Some(user_key().id), r#"{"rate_limit":{"from":100,"to":250}}"#),
                1 => ("key_top_up", Some(prepaid_key().id), r#"{"amount":"5.00","note":"monthly"}"#),
                2 => ("user_add", None, r#"{"user":"dave"}"#),
                _ => ("key_disable", Some(key_named(3, "old-batch-job").id), "{}"),
            };
            AuditEntry {
                id: 1_000 - index as i64,
                at: NOW - TimeDelta::minutes(7 * index as i64),
                actor: if index % 3 == 0 { "alice".into() } else { "admin".into() },
                actor_key: None,
                action: action.into(),
                api_key_id: key,
                details: details.into(),
            }
        })
        .collect()
}

/// Users by name: alice owns most keys and spent most, bob is disabled, dave has no key yet.
pub fn user_overviews() -> Vec<UserOverview> {
    let user = |id: u128, name: &str, is_active: bool| User {
        id: Uuid::from_u128(id),
        name: name.into(),
        is_active,
        created_at: NOW - TimeDelta::days(90),
    };
    let overview = |user: User, keys: i64, active_keys: i64, cents: i64, used_hours_ago: Option<i64>| UserOverview {
        user,
        keys,
        active_keys,
        spend: Money::from_micros(cents * 10_000),
        last_used_at: used_hours_ago.map(|hours| NOW - TimeDelta::hours(hours)),
    };
    vec![
        overview(user(0xa11ce, "alice", true), 27, 25, 12_675, Some(1)),
        overview(user(0xb0b, "bob", false), 1, 0, 318, Some(50)),
        overview(user(0xca201, "carol", true), 1, 0, 500, Some(300)),
        overview(user(0xda7e, "dave", true), 0, 0, 0, None),
    ]
}

/// The users screen at `size`, every user loaded and the first selected.
pub fn users_state(size: (u16, u16)) -> State {
    let mut state = loaded_state(size);
    state.tab = Tab::Users;
    state.users.pages.rows = user_overviews();
    state.users.pages.at_end = true;
    state
}

/// alice, open, with her chart over `days` and her keys.
pub fn user_data(days: u32) -> UserData {
    let overview = user_overviews().remove(0);
    let last_day = NOW.date_naive();
    let first_day = last_day - TimeDelta::days(i64::from(days) - 1);
    let daily: Vec<DailyUsage> =
        first_day.iter_days().take(days as usize).enumerate().map(|(index, day)| usage_on(index as i64, day)).collect();
    let keys: Vec<ApiKey> = keys().into_iter().filter(|key| key.owner_name == "alice").take(6).collect();
    UserData {
        stats: UserStats {
            user: overview.user.clone(),
            usage: UsageSeries::summarise(days, first_day, last_day, &daily),
        },
        detail: UserDetail { overview, days, keys },
    }
}

/// The users screen with alice open.
pub fn user_state(size: (u16, u16)) -> State {
    let mut state = users_state(size);
    let mut view = UserView::new("alice".into());
    view.data = Some(user_data(30));
    state.users.open = Some(view);
    state
}
