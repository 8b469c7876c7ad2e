//! The fleet's questions: who spent what, which users own what, who changed what.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::key::{DailyUsage, User};
use super::money::Money;

/// Usage summed over a range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct UsageTotals {
    pub requests: i64,
    pub tokens: i64,
    pub cost: Money,
}

impl From<&DailyUsage> for UsageTotals {
    fn from(day: &DailyUsage) -> Self {
        UsageTotals { requests: day.requests, tokens: day.tokens, cost: day.cost }
    }
}

/// A key or a user among the biggest spenders of a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spender {
    pub id: Uuid,
    pub name: String,
    /// The key's owner; `None` for a user.
    pub owner: Option<String>,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// Who the top spenders are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpenderKind {
    #[default]
    Key,
    User,
}

/// A user as the users screen and `users show` see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserOverview {
    #[serde(flatten)]
    pub user: User,
    /// Every key the user owns.
    pub keys: i64,
    /// The keys that can be used now: enabled and not expired.
    pub active_keys: i64,
    /// Spend of all the user's keys (purged ones included) over the query's days.
    pub spend: Money,
    /// The latest usage recorded of any of the user's keys (purged ones included).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// One page of users by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// Plain text the name must contain (case-insensitive). Never SQL.
    pub filter: Option<String>,
    /// Only the user of exactly this name.
    pub name: Option<String>,
    /// The users whose name sorts after this one.
    pub after: Option<String>,
    pub limit: u32,
    /// The days `spend` sums over.
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// The time against which "active" is judged.
    pub now: DateTime<Utc>,
}

/// One page of the audit log, newest first. Every filter given must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only rows of these keys (a name may name several); `Some(empty)` matches nothing.
    pub key_ids: Option<Vec<Uuid>>,
    /// Only rows written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Keyset paging: only rows older (smaller id) than this one.
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// How far the clocks of the processes writing the audit log may disagree. The log is read
/// newest first by id; `AuditQuery::since` is turned into an id bound by the first row written
/// this long before `since`, so rows whose time runs behind their id by less than this are kept.
pub const AUDIT_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);
