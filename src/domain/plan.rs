//! Money over time on one key: a spending budget per period, a periodic refill of a prepaid
//! balance, and the low-balance line under which alerts fire.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::duration::format_compact;
use super::key::{Patch, remaining};
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
        let mut text = format!("{} ({})", self.spent_text(), self.resets_text(now));
        if self.budget.is_reached(self.spent) {
            text.push_str(" · over budget");
        }
        text
    }

    /// "spent $12.00 of $50.00 this month".
    pub fn spent_text(&self) -> String {
        format!("spent {} of {} this {}", self.spent, self.budget.amount, self.budget.period)
    }

    /// "resets in 9d".
    pub fn resets_text(&self, now: DateTime<Utc>) -> String {
        format!("resets in {}", format_compact(self.span.end() - now))
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

    /// The refill of a key as a sentence, or "no refill": a one-off credit must not look like a
    /// monthly grant.
    pub fn describe_or_none(refill: Option<&Refill>) -> String {
        refill.map_or_else(|| "no refill".into(), Refill::describe)
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

impl MoneyPlan {
    /// The low-balance line as shown: "$20.00", "$5.00 (default)" or "none".
    pub fn describe_low_balance(&self, default: Money) -> String {
        match (self.low_balance, self.low_balance_line(default)) {
            (_, None) => "none".into(),
            (None, Some(line)) => format!("{line} (default)"),
            (Some(_), Some(line)) => line.to_string(),
        }
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

/// Budget, refill and low-balance settings as typed (command-line flags or dialog fields), each
/// `None` when not given.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanInput<'a> {
    /// Dollars or `none`.
    pub budget: Option<&'a str>,
    pub budget_period: Option<&'a str>,
    /// Dollars or `none`.
    pub refill: Option<&'a str>,
    pub refill_period: Option<&'a str>,
    pub refill_mode: Option<&'a str>,
    /// Dollars, `none` (no line) or `default` (the config's line).
    pub low_balance: Option<&'a str>,
}

/// The changes a [`PlanInput`] makes to a key's [`MoneyPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanPatch {
    pub budget: Patch<Budget>,
    pub refill: Patch<Refill>,
    pub low_balance: Patch<Money>,
}

impl PlanInput<'_> {
    /// The changes to `current` (a new key's is the default plan): a period or mode alone
    /// changes the existing budget or refill; an amount without a period keeps the current one,
    /// or takes a month.
    pub fn parse(&self, current: &MoneyPlan, now: DateTime<Utc>) -> Result<PlanPatch, ValidationError> {
        let budget_period = self.budget_period.map(|text| Period::parse("budget period", text)).transpose()?;
        let budget = match (amount_or_none("budget", self.budget)?, current.budget) {
            (Some(None), _) => Patch::Clear,
            (Some(Some(amount)), old) => {
                Patch::Set(Budget::new(amount, budget_period.or(old.map(|b| b.period)).unwrap_or(Period::Month))?)
            }
            (None, Some(old)) => budget_period.map_or(Patch::Keep, |period| Patch::Set(Budget { period, ..old })),
            (None, None) if budget_period.is_some() => return Err(needs("budget period", "budget")),
            (None, None) => Patch::Keep,
        };
        let refill_period = self.refill_period.map(|text| Period::parse("refill period", text)).transpose()?;
        let refill_mode = self.refill_mode.map(RefillMode::parse).transpose()?;
        let refill = match (amount_or_none("refill", self.refill)?, current.refill) {
            (Some(None), _) => Patch::Clear,
            (amount, old)
                if amount.is_some() || (old.is_some() && (refill_period.is_some() || refill_mode.is_some())) =>
            {
                let amount = amount.flatten().or(old.map(|r| r.amount)).unwrap_or(Money::ZERO);
                let period = refill_period.or(old.map(|r| r.period)).unwrap_or(Period::Month);
                let mode = refill_mode.or(old.map(|r| r.mode)).unwrap_or(RefillMode::Add);
                Patch::Set(Refill::new(amount, period, mode, now)?)
            }
            (None, None) if refill_period.is_some() => return Err(needs("refill period", "refill")),
            (None, None) if refill_mode.is_some() => return Err(needs("refill mode", "refill")),
            _ => Patch::Keep,
        };
        let low_balance = match self.low_balance.map(str::trim) {
            None => Patch::Keep,
            Some(word) if word.eq_ignore_ascii_case("default") => Patch::Clear,
            Some(word) if word.eq_ignore_ascii_case("none") => Patch::Set(Money::ZERO),
            Some(text) => Patch::Set(low_balance_line(parse_amount("low-balance line", text)?)?),
        };
        Ok(PlanPatch { budget, refill, low_balance })
    }
}

impl PlanPatch {
    /// The patch that writes every part of `plan` (a new key's).
    pub fn writing(plan: MoneyPlan) -> PlanPatch {
        PlanPatch {
            budget: Patch::from(plan.budget),
            refill: Patch::from(plan.refill),
            low_balance: Patch::from(plan.low_balance),
        }
    }

    /// The plan as it will be after this patch.
    pub fn applied_to(&self, plan: MoneyPlan) -> MoneyPlan {
        MoneyPlan {
            budget: self.budget.clone().apply(plan.budget),
            refill: self.refill.clone().apply(plan.refill),
            low_balance: self.low_balance.clone().apply(plan.low_balance),
        }
    }
}

fn needs(field: &str, other: &str) -> ValidationError {
    ValidationError::new(field, format!("needs a {other} amount: this key has no {other} yet"))
}

fn parse_amount(field: &str, text: &str) -> Result<Money, ValidationError> {
    Money::parse(text).map_err(|error| ValidationError::new(field, format!("{text:?} {error}")))
}

/// `Some(None)` for `none`, `Some(Some(amount))` for an amount, `None` when not given.
fn amount_or_none(field: &str, text: Option<&str>) -> Result<Option<Option<Money>>, ValidationError> {
    match text.map(str::trim) {
        None => Ok(None),
        Some(word) if word.eq_ignore_ascii_case("none") => Ok(Some(None)),
        Some(text) => parse_amount(field, text).map(|amount| Some(Some(amount))),
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
        assert_eq!(under.describe(now), "spent $12.00 of $50.00 this month (resets in 10d)");
        let over = BudgetUse { spent: usd(60), ..under };
        assert_eq!(over.describe(now), "spent $60.00 of $50.00 this month (resets in 10d) · over budget");
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
        assert_eq!(MoneyPlan::default().describe_low_balance(default), "$5.00 (default)");
        assert_eq!(own.describe_low_balance(default), "$20.00");
        assert_eq!(none.describe_low_balance(default), "none");
        assert_eq!(Refill::describe_or_none(None), "no refill");
    }

    #[test]
    fn typed_settings_become_patches() {
        let now = at("2026-12-07T10:00:00Z");
        let none = MoneyPlan::default();
        let input =
            PlanInput { budget: Some("50"), refill: Some("$20"), refill_mode: Some("reset"), ..PlanInput::default() };
        let patch = input.parse(&none, now).unwrap();
        assert_eq!(patch.budget, Patch::Set(Budget { amount: usd(50), period: Period::Month }));
        let refill = Refill::new(usd(20), Period::Month, RefillMode::Reset, now).unwrap();
        assert_eq!(patch.refill, Patch::Set(refill));
        assert_eq!(patch.low_balance, Patch::Keep);

        let current = patch.applied_to(none);
        let period_only = PlanInput { budget_period: Some("week"), refill_period: Some("day"), ..PlanInput::default() };
        let patch = period_only.parse(&current, now).unwrap();
        assert_eq!(patch.budget, Patch::Set(Budget { amount: usd(50), period: Period::Week }));
        assert_eq!(
            patch.refill,
            Patch::Set(Refill { period: Period::Day, last_period_start: at("2026-12-07T00:00:00Z"), ..refill })
        );

        let clear =
            PlanInput { budget: Some("none"), refill: Some("NONE"), low_balance: Some("none"), ..PlanInput::default() };
        let patch = clear.parse(&current, now).unwrap();
        assert_eq!(
            (patch.budget, patch.refill, patch.low_balance),
            (Patch::Clear, Patch::Clear, Patch::Set(Money::ZERO))
        );
        let back_to_default = PlanInput { low_balance: Some("default"), ..PlanInput::default() };
        assert_eq!(back_to_default.parse(&current, now).unwrap().low_balance, Patch::Clear);
    }

    #[test]
    fn bad_typed_settings_name_their_field() {
        let now = at("2026-12-07T10:00:00Z");
        let none = MoneyPlan::default();
        for (input, field) in [
            (PlanInput { budget: Some("0"), ..PlanInput::default() }, "budget"),
            (PlanInput { budget: Some("-5"), ..PlanInput::default() }, "budget"),
            (PlanInput { budget: Some("ten"), ..PlanInput::default() }, "budget"),
            (PlanInput { budget: Some("5"), budget_period: Some("year"), ..PlanInput::default() }, "budget period"),
            (PlanInput { budget_period: Some("week"), ..PlanInput::default() }, "budget period"),
            (PlanInput { refill: Some("1e3"), ..PlanInput::default() }, "refill"),
            (PlanInput { refill: Some("5"), refill_mode: Some("double"), ..PlanInput::default() }, "refill mode"),
            (PlanInput { refill_mode: Some("add"), ..PlanInput::default() }, "refill mode"),
            (PlanInput { low_balance: Some("-1"), ..PlanInput::default() }, "low-balance line"),
        ] {
            let error = input.parse(&none, now).unwrap_err();
            assert_eq!(error.field, field, "{input:?}: {error}");
        }
    }
}
