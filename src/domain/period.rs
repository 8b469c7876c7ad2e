//! Calendar periods of budgets and refills: a UTC day, a week starting Monday, a month.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use super::validate::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    /// Monday 00:00 UTC to the next Monday.
    Week,
    /// The 1st 00:00 UTC to the 1st of the next month.
    Month,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// Parses `day`, `week` or `month` (any case) as typed for `field`.
    pub fn parse(field: &str, input: &str) -> Result<Period, ValidationError> {
        let text = input.trim();
        Period::ALL
            .into_iter()
            .find(|period| period.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| ValidationError::new(field, format!("must be day, week or month (got {text:?})")))
    }

    /// The first day of the period that holds `day`.
    pub fn first_day(self, day: NaiveDate) -> NaiveDate {
        match self {
            Period::Day => day,
            Period::Week => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
            Period::Month => day.with_day(1).unwrap_or(day),
        }
    }

    /// The first day of the period after the one that starts on `first_day`.
    fn next_first_day(self, first_day: NaiveDate) -> NaiveDate {
        match self {
            Period::Day => first_day + Duration::days(1),
            Period::Week => first_day + Duration::days(7),
            Period::Month => first_day.checked_add_months(chrono::Months::new(1)).unwrap_or(first_day),
        }
    }

    /// The period of this kind that holds `at`.
    pub fn span_at(self, at: DateTime<Utc>) -> PeriodSpan {
        let first_day = self.first_day(at.date_naive());
        PeriodSpan { period: self, first_day, next_first_day: self.next_first_day(first_day) }
    }

    /// How many periods of this kind begin after `earlier` and up to `later` (both instants):
    /// 0 when they lie in the same period.
    pub fn boundaries_between(self, earlier: DateTime<Utc>, later: DateTime<Utc>) -> i64 {
        let (from, to) = (self.first_day(earlier.date_naive()), self.first_day(later.date_naive()));
        match self {
            Period::Day => (to - from).num_days(),
            Period::Week => (to - from).num_days() / 7,
            Period::Month => months_since_epoch(to) - months_since_epoch(from),
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

fn months_since_epoch(day: NaiveDate) -> i64 {
    i64::from(day.year()) * 12 + i64::from(day.month0())
}

/// One calendar period: from the start of `first_day` (UTC) to the start of `next_first_day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeriodSpan {
    pub period: Period,
    pub first_day: NaiveDate,
    pub next_first_day: NaiveDate,
}

impl PeriodSpan {
    pub fn start(&self) -> DateTime<Utc> {
        midnight(self.first_day)
    }

    /// The first instant after the period (the start of the next one).
    pub fn end(&self) -> DateTime<Utc> {
        midnight(self.next_first_day)
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start() <= at && at < self.end()
    }

    /// The period after this one.
    pub fn next(&self) -> PeriodSpan {
        self.period.span_at(self.end())
    }

    /// The period as a stable identifier, for idempotency keys and alert claims:
    /// `month:2026-12-01` (its first day).
    pub fn key(&self) -> String {
        format!("{}:{}", self.period, self.first_day)
    }

    /// The name of the period in ledger notes and reports: `month 2026-12`, `week 2026-12-07`
    /// (its Monday), `day 2026-12-07`.
    pub fn label(&self) -> String {
        match self.period {
            Period::Month => format!("month {}", self.first_day.format("%Y-%m")),
            period => format!("{period} {}", self.first_day.format("%Y-%m-%d")),
        }
    }
}

/// The first days of the current day, week and month at one instant: what a SQL statement needs
/// to find each key's current period, whichever kind it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentPeriods {
    pub now: DateTime<Utc>,
    pub day: NaiveDate,
    pub week: NaiveDate,
    pub month: NaiveDate,
}

impl CurrentPeriods {
    pub fn at(now: DateTime<Utc>) -> CurrentPeriods {
        let today = now.date_naive();
        CurrentPeriods { now, day: today, week: Period::Week.first_day(today), month: Period::Month.first_day(today) }
    }

    /// The start of each current period as an instant: (day, week, month).
    pub fn starts(&self) -> [DateTime<Utc>; 3] {
        [midnight(self.day), midnight(self.week), midnight(self.month)]
    }
}

pub fn midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn parses_the_three_words_only() {
        assert_eq!(Period::parse("budget period", " Month "), Ok(Period::Month));
        assert_eq!(Period::parse("budget period", "week"), Ok(Period::Week));
        for bad in ["", "days", "fortnight", "1d", "monthly"] {
            let error = Period::parse("budget period", bad).unwrap_err();
            assert_eq!(error.field, "budget period");
            assert!(error.message.contains("day, week or month"), "{error}");
        }
    }

    #[test]
    fn months_run_from_the_first_to_the_first_whatever_their_length() {
        for (inside, first, next) in [
            ("2026-01-31T12:00:00Z", "2026-01-01", "2026-02-01"),
            ("2026-02-28T23:59:59.999999Z", "2026-02-01", "2026-03-01"),
            ("2028-02-29T00:00:00Z", "2028-02-01", "2028-03-01"),
            ("2026-04-30T23:00:00Z", "2026-04-01", "2026-05-01"),
            ("2026-05-31T00:00:00Z", "2026-05-01", "2026-06-01"),
            ("2026-12-31T23:59:59.999999Z", "2026-12-01", "2027-01-01"),
        ] {
            let span = Period::Month.span_at(at(inside));
            assert_eq!((span.first_day, span.next_first_day), (day(first), day(next)), "{inside}");
        }
    }

    #[test]
    fn the_next_month_of_a_31st_is_not_skipped_or_shortened() {
        let may = Period::Month.span_at(at("2026-05-31T10:00:00Z"));
        let june = may.next();
        assert_eq!((june.first_day, june.next_first_day), (day("2026-06-01"), day("2026-07-01")));
        let january = Period::Month.span_at(at("2027-01-31T10:00:00Z"));
        assert_eq!(january.next().next_first_day, day("2027-03-01"));
        let leap = Period::Month.span_at(at("2028-02-29T10:00:00Z")).next();
        assert_eq!(leap.first_day, day("2028-03-01"));
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-12-07 is a Monday.
        for inside in ["2026-12-07T00:00:00Z", "2026-12-10T12:00:00Z", "2026-12-13T23:59:59.999999Z"] {
            let span = Period::Week.span_at(at(inside));
            assert_eq!((span.first_day, span.next_first_day), (day("2026-12-07"), day("2026-12-14")), "{inside}");
        }
        let across_years = Period::Week.span_at(at("2027-01-01T00:00:00Z"));
        assert_eq!(across_years.first_day, day("2026-12-28"));
        assert_eq!(across_years.label(), "week 2026-12-28");
    }

    #[test]
    fn the_last_microsecond_belongs_to_the_period_and_the_next_instant_does_not() {
        // 2027-01-03 is a Sunday: the last day of a week as well as of a day.
        for (period, last, next) in [
            (Period::Day, "2026-12-31T23:59:59.999999Z", "2027-01-01T00:00:00Z"),
            (Period::Week, "2027-01-03T23:59:59.999999Z", "2027-01-04T00:00:00Z"),
            (Period::Month, "2026-12-31T23:59:59.999999Z", "2027-01-01T00:00:00Z"),
            (Period::Month, "2028-02-29T23:59:59.999999Z", "2028-03-01T00:00:00Z"),
        ] {
            let span = period.span_at(at(last));
            assert!(span.contains(at(last)), "{period} {last}");
            assert!(!span.contains(at(next)), "{period} {last}");
            assert_eq!(span.end(), at(next), "{period} {last}");
            assert_eq!(period.span_at(at(next)), span.next(), "{period} {last}");
        }
    }

    #[test]
    fn spans_start_at_midnight_utc() {
        let span = Period::Day.span_at(at("2026-12-07T18:30:00+05:00"));
        assert_eq!(span.start(), at("2026-12-07T00:00:00Z"));
        assert_eq!(span.end(), at("2026-12-08T00:00:00Z"));
    }

    #[test]
    fn labels_name_the_period() {
        assert_eq!(Period::Month.span_at(at("2026-12-07T10:00:00Z")).label(), "month 2026-12");
        assert_eq!(Period::Week.span_at(at("2026-12-09T10:00:00Z")).label(), "week 2026-12-07");
        assert_eq!(Period::Day.span_at(at("2026-12-09T10:00:00Z")).label(), "day 2026-12-09");
        assert_eq!(Period::Month.span_at(at("2026-12-07T10:00:00Z")).key(), "month:2026-12-01");
    }

    #[test]
    fn counts_the_boundaries_crossed() {
        let (earlier, later) = (at("2026-09-30T23:59:59.999Z"), at("2026-12-01T00:00:00Z"));
        assert_eq!(Period::Month.boundaries_between(earlier, later), 3);
        assert_eq!(Period::Month.boundaries_between(later, later), 0);
        assert_eq!(Period::Month.boundaries_between(at("2026-12-01T00:00:00Z"), at("2026-12-31T23:59:59Z")), 0);
        assert_eq!(Period::Day.boundaries_between(at("2028-02-28T12:00:00Z"), at("2028-03-01T00:00:00Z")), 2);
        // Sunday to Monday is one week boundary; Monday to Sunday none.
        assert_eq!(Period::Week.boundaries_between(at("2026-12-13T23:00:00Z"), at("2026-12-14T00:00:00Z")), 1);
        assert_eq!(Period::Week.boundaries_between(at("2026-12-07T00:00:00Z"), at("2026-12-13T23:00:00Z")), 0);
    }
}
