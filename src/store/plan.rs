//! Money over time in the store, the same for both backends: a key's budget, refill and
//! low-balance columns, and what the sweep's refill step needs and reports.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{StoreError, StoreResult};
use crate::domain::{Budget, CurrentPeriods, Money, MoneyPlan, Period, Refill, RefillMode};

/// The current period of each kind at the sweep's `now`: its start, its label for the ledger
/// note, and the tail of the refill's idempotency key (`refill:<key id>:month:2026-12-01`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefillPeriods {
    pub now: DateTime<Utc>,
    /// Day, week, month, in that order (so the day's start is the latest).
    pub starts: [DateTime<Utc>; 3],
    pub labels: [String; 3],
    pub key_suffixes: [String; 3],
}

impl RefillPeriods {
    pub fn at(now: DateTime<Utc>) -> RefillPeriods {
        let current = CurrentPeriods::at(now);
        let spans = [Period::Day, Period::Week, Period::Month].map(|period| period.span_at(now));
        RefillPeriods {
            now,
            starts: current.starts(),
            labels: spans.map(|span| span.label()),
            key_suffixes: spans.map(|span| span.key()),
        }
    }
}

/// A key the sweep refilled (or, in a dry run, would refill).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefilledKey {
    pub id: Uuid,
    pub name: String,
    /// The period refilled: `month 2026-12`.
    pub period: String,
    /// What the refill added (a `reset` refill of a key still full adds nothing).
    pub added: Money,
    /// Periods that began with no sweep and got no refill of their own: a late sweep refills
    /// once, for the current period.
    pub missed_periods: i64,
}

impl RefilledKey {
    /// How many periods of `period` went by unrefilled between `last_start` (the start of the
    /// period last covered) and `now`.
    pub fn missed(period: Period, last_start: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
        (period.boundaries_between(last_start, now) - 1).max(0)
    }
}

/// The refill step of one sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefillReport {
    /// How many keys were (or would be) refilled: exact, however many.
    pub refilled: u64,
    /// The first [`super::SWEEP_SAMPLE`] of them, by id.
    pub keys: Vec<RefilledKey>,
}

/// The money-plan columns of `api_keys` as stored: amounts in micro-dollars, periods and modes
/// as their words.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct PlanColumns {
    pub budget_micros: Option<i64>,
    pub budget_period: Option<String>,
    pub refill_micros: Option<i64>,
    pub refill_period: Option<String>,
    pub refill_mode: Option<String>,
    pub refill_last_period_start: Option<DateTime<Utc>>,
    pub low_balance_micros: Option<i64>,
}

impl PlanColumns {
    pub fn of(plan: &MoneyPlan) -> PlanColumns {
        PlanColumns {
            budget_micros: plan.budget.map(|budget| budget.amount.micros()),
            budget_period: plan.budget.map(|budget| budget.period.as_str().to_string()),
            refill_micros: plan.refill.map(|refill| refill.amount.micros()),
            refill_period: plan.refill.map(|refill| refill.period.as_str().to_string()),
            refill_mode: plan.refill.map(|refill| refill.mode.as_str().to_string()),
            refill_last_period_start: plan.refill.map(|refill| refill.last_period_start),
            low_balance_micros: plan.low_balance.map(Money::micros),
        }
    }

    /// The plan these columns hold. The schema's CHECK constraints admit only whole budgets and
    /// refills with known words, so a part that is not whole reads as absent.
    pub fn into_plan(self) -> MoneyPlan {
        let period = |text: Option<String>| text.and_then(|text| Period::parse("period", &text).ok());
        let budget = match (self.budget_micros, period(self.budget_period)) {
            (Some(micros), Some(period)) => Some(Budget { amount: Money::from_micros(micros), period }),
            _ => None,
        };
        let mode = self.refill_mode.and_then(|mode| RefillMode::parse(&mode).ok());
        let refill = match (self.refill_micros, period(self.refill_period), mode, self.refill_last_period_start) {
            (Some(micros), Some(period), Some(mode), Some(last_period_start)) => {
                Some(Refill { amount: Money::from_micros(micros), period, mode, last_period_start })
            }
            _ => None,
        };
        MoneyPlan { budget, refill, low_balance: self.low_balance_micros.map(Money::from_micros) }
    }
}

pub fn stored_period(text: &str) -> StoreResult<Period> {
    Period::parse("stored period", text).map_err(|error| StoreError::Database(error.to_string()))
}
