//! Money over time on a key: what its budget's current period has spent, and its low-balance line.

use chrono::{DateTime, Utc};

use super::{KeyService, ServiceResult};
use crate::domain::{ApiKey, BudgetUse, Money};

/// What the detail and `keys show` say about a key's money over time, beyond its own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyView {
    /// `None` without a budget.
    pub budget: Option<BudgetUse>,
    /// The low-balance line as shown: "$20.00", "$5.00 (default)" or "none".
    pub low_balance: String,
}

impl MoneyView {
    /// The view of `key` at `now`, whose budget period has spent `spent`; `default_line` is the
    /// config's low-balance line.
    pub fn new(key: &ApiKey, spent: Money, now: DateTime<Utc>, default_line: Money) -> MoneyView {
        MoneyView {
            budget: key.money.budget.map(|budget| BudgetUse { budget, span: budget.period.span_at(now), spent }),
            low_balance: key.money.describe_low_balance(default_line),
        }
    }
}

impl KeyService {
    /// A key's budget use and low-balance line. What the budget's period has spent is summed
    /// from the daily rollup (at most 31 rows), never from usage rows.
    pub async fn money_view(&self, key: &ApiKey) -> ServiceResult<MoneyView> {
        let now = self.now();
        let spent = match key.money.budget {
            None => Money::ZERO,
            Some(budget) => {
                let first_day = budget.period.span_at(now).first_day;
                let rows = self.store.daily_usage(key.id, first_day, now.date_naive()).await?;
                Money::from_micros(rows.iter().map(|row| row.cost.micros()).sum())
            }
        };
        Ok(MoneyView::new(key, spent, now, self.settings.low_balance))
    }

    /// The line under which a key's remaining balance is low: its own, else the config's.
    pub fn low_balance_line(&self, key: &ApiKey) -> Option<Money> {
        key.money.low_balance_line(self.settings.low_balance)
    }
}
