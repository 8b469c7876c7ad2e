//! API keys, their owners, and the rules that derive a key's status and balance.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::money::Money;
use super::plan::{Budget, MoneyPlan, PlanPatch};

/// Default requests per minute of a new key (as the original service).
pub const DEFAULT_RATE_LIMIT: i64 = 100;
/// Default concurrent requests of a new key (as the original service).
pub const DEFAULT_CONCURRENT_LIMIT: i64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

/// A user with the number of keys they own, for `users list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    #[serde(flatten)]
    pub user: User,
    pub key_count: i64,
}

/// One row of `api_keys`, joined with its owner's name and state.
///
/// Holds no plaintext: `key_ciphertext` needs the master key, and its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub owner_name: String,
    pub owner_active: bool,
    pub key_hash: String,
    pub key_ciphertext: String,
    pub key_hint: String,
    pub name: String,
    pub allowed_providers: Option<Vec<String>>,
    pub allowed_api_formats: Option<Vec<String>>,
    pub allowed_models: Option<Vec<String>>,
    pub rate_limit: Option<i64>,
    pub concurrent_limit: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub is_standalone: bool,
    /// Total credited to a prepaid key; `None` = unlimited. Meaningless unless `is_standalone`.
    pub credited: Option<Money>,
    pub used: Money,
    /// `None` follows the global `sweep.auto_delete` policy.
    pub auto_delete_on_expiry: Option<bool>,
    pub is_active: bool,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Budget, refill and low-balance line.
    pub money: MoneyPlan,
    /// After a roll: until when the replaced secret still verifies (`None` when no previous
    /// secret is kept).
    pub previous_secret_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("key_hint", &self.key_hint)
            .field("owner_name", &self.owner_name)
            .field("key_ciphertext", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What a key's state means to an admin, derived on every read and never trusted to the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Disabled,
    Expired,
    /// The key is enabled, but its owner is disabled, so verify refuses it.
    OwnerDisabled,
    Exhausted,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
            KeyStatus::Expired => "expired",
            KeyStatus::OwnerDisabled => "owner off",
            KeyStatus::Exhausted => "exhausted",
        }
    }
}

impl std::fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The balance of a prepaid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Balance {
    /// `None` = unlimited.
    pub credited: Option<Money>,
    pub used: Money,
    /// `max(0, credited − used)`; `None` = unlimited.
    pub remaining: Option<Money>,
}

impl ApiKey {
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        if !self.is_active {
            KeyStatus::Disabled
        } else if self.is_expired(now) {
            KeyStatus::Expired
        } else if !self.owner_active {
            KeyStatus::OwnerDisabled
        } else if self.balance().and_then(|b| b.remaining).is_some_and(|r| r.is_zero()) {
            KeyStatus::Exhausted
        } else {
            KeyStatus::Active
        }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        has_passed(self.expires_at, now)
    }

    /// Until when the secret replaced by the last roll still verifies, while it does.
    pub fn previous_secret_valid_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous_secret_until.filter(|until| *until > now)
    }

    /// `None` for a key that is not prepaid.
    pub fn balance(&self) -> Option<Balance> {
        Balance::of(self.is_standalone, self.credited, self.used)
    }

    /// Whether the sweep deletes (rather than disables) this key once it has expired.
    pub fn deletes_on_expiry(&self, global_auto_delete: bool) -> bool {
        self.auto_delete_on_expiry.unwrap_or(global_auto_delete)
    }
}

/// Whether an expiry (`None` = never) has come by `now`.
fn has_passed(expiry: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expiry.is_some_and(|at| at <= now)
}

impl Balance {
    /// The balance of a key with these columns: `None` unless it is prepaid.
    pub fn of(is_standalone: bool, credited: Option<Money>, used: Money) -> Option<Balance> {
        is_standalone.then(|| Balance { credited, used, remaining: credited.map(|c| remaining(c, used)) })
    }

    /// `credited − used`, negative when usage charged past the credit (the key owes the
    /// difference); `None` = unlimited. Admission reads the floored `remaining`; an admin reads
    /// this, since a top-up first pays back what is owed.
    pub fn net(&self) -> Option<Money> {
        self.credited.map(|credited| Money::from_micros(credited.micros().saturating_sub(self.used.micros())))
    }
}

/// What admitting a request needs of a key, and nothing more: `verify`, the gateway's hot path,
/// reads these columns only, never the sealed key, its hash or its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAdmission {
    pub id: Uuid,
    pub is_active: bool,
    pub owner_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// `None` for a key that is not prepaid.
    pub balance: Option<Balance>,
    pub allowed_providers: Option<Vec<String>>,
    pub allowed_api_formats: Option<Vec<String>>,
    pub allowed_models: Option<Vec<String>>,
    pub rate_limit: Option<i64>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub budget: Option<Budget>,
    /// What the key spent in its budget's current period (zero without a budget).
    pub budget_spent: Money,
}

impl KeyAdmission {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        has_passed(self.expires_at, now)
    }
}

impl From<&ApiKey> for KeyAdmission {
    fn from(key: &ApiKey) -> Self {
        KeyAdmission {
            id: key.id,
            is_active: key.is_active,
            owner_active: key.owner_active,
            expires_at: key.expires_at,
            balance: key.balance(),
            allowed_providers: key.allowed_providers.clone(),
            allowed_api_formats: key.allowed_api_formats.clone(),
            allowed_models: key.allowed_models.clone(),
            rate_limit: key.rate_limit,
            last_used_at: key.last_used_at,
            budget: key.money.budget,
            budget_spent: Money::ZERO,
        }
    }
}

pub fn remaining(credited: Money, used: Money) -> Money {
    Money::from_micros(credited.micros().saturating_sub(used.micros()).max(0))
}

/// Which keys a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    #[default]
    All,
    /// Keys owned by users for their own use: standalone keys left out.
    UserKeys,
    /// Prepaid keys only.
    Standalone,
}

impl KeyScope {
    pub fn next(self) -> Self {
        match self {
            KeyScope::All => KeyScope::UserKeys,
            KeyScope::UserKeys => KeyScope::Standalone,
            KeyScope::Standalone => KeyScope::All,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KeyScope::All => "All",
            KeyScope::UserKeys => "User keys",
            KeyScope::Standalone => "Standalone",
        }
    }
}

/// Filter on whether a key can be used now: active = enabled and not expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActiveFilter {
    #[default]
    Any,
    Active,
    Inactive,
}

/// Columns a key list can be sorted by. Every order ends with the id, so paging is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    #[default]
    Created,
    Name,
    Expires,
    LastUsed,
    /// The prepaid balance left (`credited − used`, negative when owed); keys without a prepaid
    /// balance, unlimited ones included, count as unlimited and sort after every balance.
    Remaining,
    /// What the key spent over the last [`SPEND_SORT_DAYS`] UTC days, today included, from the
    /// daily rollup.
    RecentSpend,
}

/// The days the [`SortKey::RecentSpend`] order sums.
pub const SPEND_SORT_DAYS: u32 = 30;

/// The first and last UTC day of the [`SortKey::RecentSpend`] order at `now`, today included.
pub fn recent_spend_days(now: DateTime<Utc>) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let today = now.date_naive();
    (today - chrono::Duration::days(i64::from(SPEND_SORT_DAYS) - 1), today)
}

impl SortKey {
    pub const ALL: [SortKey; 6] = [
        SortKey::Created,
        SortKey::Name,
        SortKey::Expires,
        SortKey::LastUsed,
        SortKey::Remaining,
        SortKey::RecentSpend,
    ];

    pub fn next(self) -> Self {
        let position = SortKey::ALL.iter().position(|sort| *sort == self).unwrap_or(0);
        SortKey::ALL[(position + 1) % SortKey::ALL.len()]
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Created => "created",
            SortKey::Name => "name",
            SortKey::Expires => "expires",
            SortKey::LastUsed => "last used",
            SortKey::Remaining => "remaining",
            SortKey::RecentSpend => "spend 30d",
        }
    }

    /// Whether the value is computed per key when the list is read (no index serves the order).
    pub fn is_computed(self) -> bool {
        matches!(self, SortKey::Remaining | SortKey::RecentSpend)
    }

    /// The natural direction: newest, soonest or most recent first; names A to Z; the smallest
    /// balance first; the biggest spender first.
    pub fn default_descending(self) -> bool {
        !matches!(self, SortKey::Name | SortKey::Expires | SortKey::Remaining)
    }
}

/// The line a low-balance list compares each prepaid key's remaining balance with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowBalanceLine {
    /// The key's own line (`--low-balance`), else `default`: the config's `alerts.low_balance`,
    /// filled in by the service when `None`.
    KeysOwn { default: Option<Money> },
    /// One line for every key, whatever its own.
    Fixed(Money),
}

/// Where a page of a key list starts: keyset paging relative to a key of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageFrom {
    #[default]
    Start,
    /// The rows that follow this key in the list's order.
    After(Uuid),
    /// The rows that precede this key in the list's order (returned in list order).
    Before(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyQuery {
    pub scope: KeyScope,
    pub owner: Option<Uuid>,
    pub active: ActiveFilter,
    /// Plain text matched against name, owner name, key hint and id prefix. Never SQL.
    pub filter: Option<String>,
    /// Only enabled keys that expire after `now` and at most this long after it.
    pub expiring_within: Option<chrono::Duration>,
    /// Only prepaid keys with a limited balance under this line (a zero line has none under it).
    pub low_balance: Option<LowBalanceLine>,
    pub sort: SortKey,
    pub descending: bool,
    pub from: PageFrom,
    pub limit: u32,
    /// The time against which "active", "expired", "expiring" and recent spend are judged.
    pub now: Option<DateTime<Utc>>,
}

impl KeyQuery {
    /// The end of the `expiring_within` window, if the query has one.
    pub fn expiring_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expiring_within.map(|within| now.checked_add_signed(within).unwrap_or(DateTime::<Utc>::MAX_UTC))
    }
}

impl LowBalanceLine {
    /// The line of keys without their own, and whether a key's own line counts: SQL compares
    /// with `COALESCE(own, line)` or with `line` alone.
    pub fn fallback(self) -> (Money, bool) {
        match self {
            LowBalanceLine::KeysOwn { default } => (default.unwrap_or(super::plan::DEFAULT_LOW_BALANCE), true),
            LowBalanceLine::Fixed(line) => (line, false),
        }
    }
}

/// Key counts for status lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct KeyCounts {
    pub total: i64,
    pub disabled: i64,
    pub expired: i64,
}

/// A change to one field: absent = keep, clear = unrestricted / never, value = set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

/// `None` clears, `Some` sets: a field written whole, as when a key is created.
impl<T> From<Option<T>> for Patch<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Patch::Clear, Patch::Set)
    }
}

impl<T> Patch<T> {
    pub fn is_keep(&self) -> bool {
        matches!(self, Patch::Keep)
    }

    /// The new value given the old one.
    pub fn apply(self, old: Option<T>) -> Option<T> {
        match self {
            Patch::Keep => old,
            Patch::Clear => None,
            Patch::Set(value) => Some(value),
        }
    }
}

/// Everything `update` can change on a key. Balance changes go through top-ups and the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub allowed_providers: Patch<Vec<String>>,
    pub allowed_api_formats: Patch<Vec<String>>,
    pub allowed_models: Patch<Vec<String>>,
    pub rate_limit: Patch<i64>,
    pub concurrent_limit: Patch<i64>,
    pub expires_at: Patch<DateTime<Utc>>,
    pub auto_delete_on_expiry: Patch<bool>,
    /// Budget, refill (prepaid keys only) and low-balance line.
    pub money: PlanPatch,
}

impl KeyPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.allowed_providers.is_keep()
            && self.allowed_api_formats.is_keep()
            && self.allowed_models.is_keep()
            && self.rate_limit.is_keep()
            && self.concurrent_limit.is_keep()
            && self.expires_at.is_keep()
            && self.auto_delete_on_expiry.is_keep()
            && self.money == PlanPatch::default()
    }

    /// The key as it will be after this patch.
    pub fn applied_to(&self, key: &ApiKey) -> ApiKey {
        let mut next = key.clone();
        if let Some(name) = &self.name {
            next.name = name.clone();
        }
        next.allowed_providers = self.allowed_providers.clone().apply(next.allowed_providers);
        next.allowed_api_formats = self.allowed_api_formats.clone().apply(next.allowed_api_formats);
        next.allowed_models = self.allowed_models.clone().apply(next.allowed_models);
        next.rate_limit = self.rate_limit.clone().apply(next.rate_limit);
        next.concurrent_limit = self.concurrent_limit.clone().apply(next.concurrent_limit);
        next.expires_at = self.expires_at.clone().apply(next.expires_at);
        next.auto_delete_on_expiry = self.auto_delete_on_expiry.clone().apply(next.auto_delete_on_expiry);
        next.money = self.money.applied_to(next.money);
        next
    }
}

/// One row of the balance ledger: a top-up (positive) or deduction (negative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    pub id: i64,
    pub api_key_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The SHA256 fingerprint of the SSH key the actor signed in with (`keytop serve`): unlike the
    /// name, it cannot be edited. `None` for the CLI and the local TUI.
    pub actor_key: Option<String>,
    pub delta: Money,
    /// `None` when the key became unlimited.
    pub credited_after: Option<Money>,
    pub note: Option<String>,
    pub idempotency_key: Option<String>,
}

impl LedgerEntry {
    /// The first ledger row of a prepaid key created with a starting balance.
    pub fn initial_credit(api_key_id: Uuid, at: DateTime<Utc>, actor: &str, amount: Money) -> LedgerEntry {
        LedgerEntry {
            id: 0,
            api_key_id,
            at,
            actor: actor.to_string(),
            actor_key: None,
            delta: amount,
            credited_after: Some(amount),
            note: Some("initial balance".into()),
            idempotency_key: None,
        }
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The SHA256 fingerprint of the actor's SSH key, as in [`LedgerEntry::actor_key`].
    pub actor_key: Option<String>,
    pub action: String,
    pub api_key_id: Option<Uuid>,
    /// JSON object with the details of the change.
    pub details: String,
}

/// One day of a key's usage rollup (UTC day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DailyUsage {
    pub day: chrono::NaiveDate,
    pub requests: i64,
    pub tokens: i64,
    pub cost: Money,
    /// The sum of the response times of the requests that reported one.
    pub response_ms_sum: i64,
    /// The requests that reported a response time: what `response_ms_sum` is the sum over.
    pub timed_requests: i64,
}

impl DailyUsage {
    /// A day without requests.
    pub fn empty(day: chrono::NaiveDate) -> Self {
        DailyUsage { day, requests: 0, tokens: 0, cost: Money::ZERO, response_ms_sum: 0, timed_requests: 0 }
    }
}

/// A key expired and swept, as reported by the sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweptKey {
    pub id: Uuid,
    pub name: String,
}
