//! Money over time on one key: a spending budget per period, a periodic refill of a prepaid
//! balance, and the low-balance line under which alerts fire.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::duration::format_compact;
use super::key::remaining;
use super::money::{MAX_AMOUNT, Money};
use super::period::{Period, PeriodSpan};
use super::validate::ValidationError;

/// What a key spends per period before `verify` denies it with `budget_exceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub amount: Money,
    pub period: Period,
}

impl Budget {
    pub fn new(amount: Money, period: Period) -> Result<Budget, ValidationError> {
        Ok(Budget { amount: positive_amount("budget", amount)?, period })
    }

    /// Whether spending `spent` in the current period leaves nothing of this budget.
    pub fn is_reached(&self, spent: Money) -> bool {
        spent >= self.amount
    }
}

/// A budget with what was spent in its current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUse {
    pub budget: Budget,
    pub span: PeriodSpan,
    pub spent: Money,
}

impl BudgetUse {
    /// "spent $12.00 of $50.00 this month (resets in 9d)", and "over budget" once reached.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        let mut text = format!(
            "spent {} of {} this {} (resets in {})",
            self.spent,
            self.budget.amount,
            self.budget.period,
            format_compact(self.span.end() - now)
        );
        if self.budget.is_reached(self.spent) {
            text.push_str(" · over budget");
        }
        text
    }
}

/// How a refill changes a prepaid balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefillMode {
    /// Adds the amount to the credited total.
    Add,
    /// Tops the remaining balance back up to the amount (never lowers it).
    Reset,
}

impl RefillMode {
    pub const ALL: [RefillMode; 2] = [RefillMode::Add, RefillMode::Reset];

    pub fn as_str(self) -> &'static str {
        match self {
            RefillMode::Add => "add",
            RefillMode::Reset => "reset",
        }
    }

    pub fn parse(input: &str) -> Result<RefillMode, ValidationError> {
        let text = input.trim();
        RefillMode::ALL
            .into_iter()
            .find(|mode| mode.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| ValidationError::new("refill mode", format!("must be add or reset (got {text:?})")))
    }

    /// What a refill of `amount` adds to a credited total, given the key's balance.
    pub fn delta(self, amount: Money, credited: Money, used: Money) -> Money {
        match self {
            RefillMode::Add => amount,
            RefillMode::Reset => {
                amount.checked_sub(remaining(credited, used)).filter(|d| !d.is_negative()).unwrap_or(Money::ZERO)
            }
        }
    }
}

/// A periodic refill of a prepaid key, applied by the sweep at the first sweep of each period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Refill {
    pub amount: Money,
    pub period: Period,
    pub mode: RefillMode,
    /// The start of the period last refilled, or of the period in which the refill was set: the
    /// next refill is due once a later period has begun.
    pub last_period_start: DateTime<Utc>,
}

impl Refill {
    /// A refill set at `now`: the first one comes at the next period boundary.
    pub fn new(amount: Money, period: Period, mode: RefillMode, now: DateTime<Utc>) -> Result<Refill, ValidationError> {
        let amount = positive_amount("refill", amount)?;
        Ok(Refill { amount, period, mode, last_period_start: period.span_at(now).start() })
    }

    /// Whether the sweep at `now` refills this key.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.period.span_at(now).start() > self.last_period_start
    }

    /// The period the next refill is for.
    pub fn next_span(&self) -> PeriodSpan {
        self.period.span_at(self.last_period_start).next()
    }

    /// "adds $50.00 on the 1st of each month, next 2027-01-01".
    pub fn describe(&self) -> String {
        let verb = match self.mode {
            RefillMode::Add => "adds",
            RefillMode::Reset => "tops up to",
        };
        let when = match self.period {
            Period::Day => "every day",
            Period::Week => "every Monday",
            Period::Month => "on the 1st of each month",
        };
        format!("{verb} {} {when}, next {}", self.amount, self.next_span().first_day)
    }

    /// Settings compared without the refill state, to tell an edit from a no-op.
    pub fn same_terms(&self, other: &Refill) -> bool {
        (self.amount, self.period, self.mode) == (other.amount, other.period, other.mode)
    }
}

/// The low-balance line of keys that set none of their own (config `alerts.low_balance`).
pub const DEFAULT_LOW_BALANCE: Money = Money::from_micros(5_000_000);

/// Budget, refill and low-balance line of one key; the default is none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MoneyPlan {
    pub budget: Option<Budget>,
    /// Prepaid keys only.
    pub refill: Option<Refill>,
    /// `None` follows the config's `alerts.low_balance`; zero means no line.
    pub low_balance: Option<Money>,
}

impl MoneyPlan {
    /// The line under which this key's remaining balance is low (`None` = no line).
    pub fn low_balance_line(&self, default: Money) -> Option<Money> {
        Some(self.low_balance.unwrap_or(default)).filter(|line| !line.is_zero())
    }
}

/// Whether a remaining balance (`None` = unlimited) lies under a low-balance line.
pub fn is_under_line(remaining: Option<Money>, line: Option<Money>) -> bool {
    matches!((remaining, line), (Some(remaining), Some(line)) if remaining < line)
}

/// A budget or refill amount: more than zero and at most [`MAX_AMOUNT`].
fn positive_amount(field: &str, amount: Money) -> Result<Money, ValidationError> {
    if amount.is_negative() || amount.is_zero() {
        Err(ValidationError::new(field, format!("must be more than $0 (got {amount}); use none to remove it")))
    } else if amount > MAX_AMOUNT {
        Err(ValidationError::new(field, format!("must be at most {MAX_AMOUNT}")))
    } else {
        Ok(amount)
    }
}

/// A low-balance line as typed: an amount of at least zero, or `none` (stored as zero).
pub fn low_balance_line(amount: Money) -> Result<Money, ValidationError> {
    if amount.is_negative() {
        Err(ValidationError::new(
            "low-balance line",
            format!("must not be negative (got {amount}); use none for no line"),
        ))
    } else {
        Ok(amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn usd(dollars: i64) -> Money {
        Money::from_usd(dollars)
    }

    #[test]
    fn budgets_and_refills_need_a_positive_amount() {
        for bad in [Money::ZERO, usd(-1), Money::from_micros(-1)] {
            let error = Budget::new(bad, Period::Month).unwrap_err();
            assert_eq!(error.field, "budget");
            assert!(Refill::new(bad, Period::Month, RefillMode::Add, at("2026-12-07T00:00:00Z")).is_err());
        }
        let too_much = MAX_AMOUNT.checked_add(Money::from_micros(1)).unwrap();
        assert!(Budget::new(too_much, Period::Day).is_err());
        assert_eq!(Budget::new(Money::from_micros(1), Period::Day).unwrap().amount, Money::from_micros(1));
    }

    #[test]
    fn a_budget_is_reached_at_its_amount() {
        let budget = Budget::new(usd(10), Period::Month).unwrap();
        assert!(!budget.is_reached(Money::from_micros(9_999_999)));
        assert!(budget.is_reached(usd(10)));
        assert!(budget.is_reached(usd(11)));
    }

    #[test]
    fn budget_use_says_what_is_left_of_the_period() {
        let now = at("2026-12-22T12:00:00Z");
        let budget = Budget::new(usd(50), Period::Month).unwrap();
        let under = BudgetUse { budget, span: Period::Month.span_at(now), spent: usd(12) };
        assert_eq!(under.describe(now), "spent $12.00 of $50.00 this month (resets in 9d)");
        let over = BudgetUse { spent: usd(60), ..under };
        assert_eq!(over.describe(now), "spent $60.00 of $50.00 this month (resets in 9d) · over budget");
        let daily = BudgetUse {
            budget: Budget { period: Period::Day, ..budget },
            span: Period::Day.span_at(now),
            spent: usd(1),
        };
        assert_eq!(daily.describe(now), "spent $1.00 of $50.00 this day (resets in 12h)");
    }

    #[test]
    fn reset_tops_up_to_the_amount_and_never_lowers() {
        assert_eq!(RefillMode::Reset.delta(usd(50), usd(100), usd(80)), usd(30));
        assert_eq!(RefillMode::Reset.delta(usd(50), usd(100), usd(10)), Money::ZERO);
        assert_eq!(RefillMode::Reset.delta(usd(50), usd(100), usd(120)), usd(50));
        assert_eq!(RefillMode::Add.delta(usd(50), usd(100), usd(10)), usd(50));
        assert_eq!(RefillMode::parse(" RESET "), Ok(RefillMode::Reset));
        assert_eq!(RefillMode::parse("replace").unwrap_err().field, "refill mode");
    }

    #[test]
    fn a_refill_is_due_at_the_first_sweep_of_a_later_period() {
        let set = at("2026-12-07T15:00:00Z");
        let refill = Refill::new(usd(50), Period::Month, RefillMode::Add, set).unwrap();
        assert_eq!(refill.last_period_start, at("2026-12-01T00:00:00Z"));
        assert!(!refill.is_due(set));
        assert!(!refill.is_due(at("2026-12-31T23:59:59.999999Z")));
        assert!(refill.is_due(at("2027-01-01T00:00:00Z")));
        assert!(refill.is_due(at("2027-04-15T00:00:00Z")));
        assert_eq!(refill.describe(), "adds $50.00 on the 1st of each month, next 2027-01-01");
        let weekly = Refill::new(usd(5), Period::Week, RefillMode::Reset, set).unwrap();
        assert_eq!(weekly.describe(), "tops up to $5.00 every Monday, next 2026-12-14");
    }

    #[test]
    fn low_balance_lines_follow_the_default_unless_set() {
        let default = usd(5);
        assert_eq!(MoneyPlan::default().low_balance_line(default), Some(usd(5)));
        let own = MoneyPlan { low_balance: Some(usd(20)), ..MoneyPlan::default() };
        assert_eq!(own.low_balance_line(default), Some(usd(20)));
        let none = MoneyPlan { low_balance: Some(Money::ZERO), ..MoneyPlan::default() };
        assert_eq!(none.low_balance_line(default), None);
        assert!(is_under_line(Some(usd(4)), Some(usd(5))));
        assert!(!is_under_line(Some(usd(5)), Some(usd(5))));
        assert!(!is_under_line(None, Some(usd(5))));
        assert!(!is_under_line(Some(Money::ZERO), None));
        assert!(low_balance_line(usd(-1)).is_err());
    }
}
