//! Pure types and rules of keytop, with no IO.

pub mod alert;
pub mod duration;
pub mod fleet;
pub mod key;
pub mod money;
pub mod period;
pub mod plan;
pub mod text;
pub mod validate;

pub use alert::{Alert, AlertEvent};
pub use fleet::{AuditQuery, Spender, SpenderKind, UsageTotals, UserOverview, UserQuery};
pub use key::*;
pub use money::{Money, MoneyError};
pub use period::{CurrentPeriods, Period, PeriodSpan};
pub use plan::{Budget, BudgetUse, MoneyPlan, PlanInput, PlanPatch, Refill, RefillMode};
pub use validate::ValidationError;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The clock of the service, so tests can move time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock UTC time, truncated to milliseconds (the precision both databases keep).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_millis(Utc::now())
    }
}

/// A key's `last_used_at` moves at most this often: `verify` and a usage record write it only
/// when it is older than this. Writing it on every request would move the key's entry in the
/// list's last-use index each time (on PostgreSQL: a new entry in every index of the key table,
/// as the update could not be a HOT one), on the gateway's hot path, for a time shown to the
/// minute.
pub const LAST_USED_GRANULARITY: TimeDelta = TimeDelta::minutes(1);

pub fn truncate_to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(at)
}
