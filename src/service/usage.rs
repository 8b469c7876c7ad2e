//! The gateway's side: admission (`verify`), usage recording, and per-key statistics.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{KeyService, ServiceError, ServiceResult};
use crate::crypto;
use crate::domain::{CurrentPeriods, DailyUsage, KeyAdmission, LAST_USED_GRANULARITY, Money, validate};
use crate::store::alerts::AlertScope;
use crate::store::{UsageOutcome, UsageRecord};

/// The rate limit counts requests over this window.
const RATE_WINDOW: Duration = Duration::minutes(1);
/// The longest stats range.
pub const MAX_STATS_DAYS: u32 = 3660;

/// One request as the gateway reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageInput {
    /// Makes recording idempotent; generated when absent.
    pub request_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub api_format: Option<String>,
    pub total_tokens: i64,
    pub cost: Money,
    pub response_time_ms: Option<i64>,
    /// When the request happened; now when absent.
    pub at: Option<DateTime<Utc>>,
}

/// Totals and a zero-filled daily series over the days `first_day..=last_day` (UTC days), of a
/// key, a user or the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageSeries {
    pub days: u32,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub total_requests: i64,
    pub total_tokens: i64,
    pub total_cost: Money,
    /// Mean over the range's requests that reported a response time; `None` without any.
    pub avg_response_ms: Option<f64>,
    /// One entry per day, oldest first.
    pub daily: Vec<DailyUsage>,
}

/// A key's totals and zero-filled daily series over the last `days` UTC days, today included.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStats {
    pub key_id: Uuid,
    #[serde(flatten)]
    pub series: UsageSeries,
}

/// What the gateway asks about a request before serving it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyRequest {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub api_format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    Unknown,
    Disabled,
    Expired,
    OwnerDisabled,
    InsufficientBalance,
    NotAllowed,
    RateLimited,
    /// The key spent its budget for the current period.
    BudgetExceeded,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Unknown => "unknown",
            DenyReason::Disabled => "disabled",
            DenyReason::Expired => "expired",
            DenyReason::OwnerDisabled => "owner_disabled",
            DenyReason::InsufficientBalance => "insufficient_balance",
            DenyReason::NotAllowed => "not_allowed",
            DenyReason::RateLimited => "rate_limited",
            DenyReason::BudgetExceeded => "budget_exceeded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum VerifyDecision {
    Allowed {
        key_id: Uuid,
        /// `None` = unlimited or not prepaid.
        remaining_balance: Option<Money>,
        /// Requests that may still be recorded in the current minute; `None` = no rate limit.
        remaining_requests: Option<i64>,
        /// Requests recorded in the last minute, which the rate limit counts (`verify` records
        /// none itself: the gateway records each request it serves); `None` = no rate limit.
        recorded_requests: Option<i64>,
    },
    Denied {
        reason: DenyReason,
        key_id: Option<Uuid>,
    },
}

fn optional_text(field: &str, value: &Option<String>) -> ServiceResult<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => {
            validate::check_text(field, text, validate::MAX_LIST_ITEM_CHARS)?;
            Ok(Some(text.to_string()))
        }
    }
}

fn non_negative(field: &str, value: i64) -> ServiceResult<i64> {
    if value < 0 { Err(ServiceError::invalid(field, format!("must not be negative (got {value})"))) } else { Ok(value) }
}

/// The most tokens one request may report: far above any model, far below what would overflow
/// the daily and lifetime sums (which are 64-bit).
pub const MAX_REQUEST_TOKENS: i64 = 1_000_000_000_000;
/// The longest response time one request may report (a day).
pub const MAX_RESPONSE_MS: i64 = 86_400_000;
/// The largest cost one request may report. The sums of costs (rollups, a prepaid key's `used`)
/// are 64-bit micro-dollars: unbounded costs would overflow them after a few requests.
pub const MAX_REQUEST_COST: Money = Money::from_micros(1_000_000 * 1_000_000);
/// How far in the future a request's time may lie (clock skew between gateway nodes).
const MAX_FUTURE_SKEW: Duration = Duration::hours(1);

fn at_most(field: &str, value: i64, max: i64) -> ServiceResult<i64> {
    non_negative(field, value)?;
    if value > max {
        return Err(ServiceError::invalid(field, format!("must be at most {max} (got {value})")));
    }
    Ok(value)
}

/// Whether `value` passes an allow list (`None` = unrestricted; an absent value is not checked).
fn permits(list: &Option<Vec<String>>, value: &Option<String>) -> bool {
    match (list, value) {
        (Some(list), Some(value)) => list.iter().any(|item| item == value),
        _ => true,
    }
}

fn admission(key: &KeyAdmission, recent_requests: i64, request: &VerifyRequest, now: DateTime<Utc>) -> VerifyDecision {
    let deny = |reason| VerifyDecision::Denied { reason, key_id: Some(key.id) };
    let remaining_balance = key.balance.and_then(|b| b.remaining);
    if !key.is_active {
        deny(DenyReason::Disabled)
    } else if key.is_expired(now) {
        deny(DenyReason::Expired)
    } else if !key.owner_active {
        deny(DenyReason::OwnerDisabled)
    } else if remaining_balance.is_some_and(Money::is_zero) {
        deny(DenyReason::InsufficientBalance)
    } else if key.budget.is_some_and(|budget| budget.is_reached(key.budget_spent)) {
        deny(DenyReason::BudgetExceeded)
    } else if !permits(&key.allowed_providers, &request.provider)
        || !permits(&key.allowed_models, &request.model)
        || !permits(&key.allowed_api_formats, &request.api_format)
    {
        deny(DenyReason::NotAllowed)
    } else if key.rate_limit.is_some_and(|limit| recent_requests >= limit) {
        deny(DenyReason::RateLimited)
    } else {
        VerifyDecision::Allowed {
            key_id: key.id,
            remaining_balance,
            remaining_requests: key.rate_limit.map(|limit| (limit - recent_requests).max(0)),
            recorded_requests: key.rate_limit.map(|_| recent_requests),
        }
    }
}

/// The decision `verify` would make for a key now, for a request its allow lists permit, with the
/// requests recorded in the rate window: the facts behind a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionCheck {
    pub decision: VerifyDecision,
    pub recorded_requests: i64,
}

impl KeyService {
    /// What `verify` would decide for this key now (for a request with no provider, model or API
    /// format, which no allow list refuses), by the same rules, without touching `last_used_at`.
    pub async fn admission(&self, key_id: Uuid) -> ServiceResult<AdmissionCheck> {
        let now = self.now();
        let key = self.key(key_id).await?;
        let Some(found) = self.store.verify_lookup(&key.key_hash, now - RATE_WINDOW, CurrentPeriods::at(now)).await?
        else {
            return Err(ServiceError::NotFound { kind: "key", reference: key_id.to_string() });
        };
        let decision = admission(&found.key, found.recent_requests, &VerifyRequest::default(), now);
        Ok(AdmissionCheck { decision, recorded_requests: found.recent_requests })
    }

    /// The admission decision a gateway makes for a presented key.
    pub async fn verify(&self, plaintext: &str, request: &VerifyRequest) -> ServiceResult<VerifyDecision> {
        let now = self.now();
        let hash = crypto::hash_key(plaintext.trim());
        let Some(found) = self.store.verify_lookup(&hash, now - RATE_WINDOW, CurrentPeriods::at(now)).await? else {
            return Ok(VerifyDecision::Denied { reason: DenyReason::Unknown, key_id: None });
        };
        let decision = admission(&found.key, found.recent_requests, request, now);
        if matches!(decision, VerifyDecision::Allowed { .. }) {
            let stale_before = now - LAST_USED_GRANULARITY;
            if found.key.last_used_at.is_none_or(|at| at < stale_before) {
                self.store.touch_last_used(found.key.id, now, stale_before).await?;
            }
        }
        Ok(decision)
    }

    /// Records one request: usage row, daily rollup and charge of a prepaid key, atomically.
    /// The same request id twice records and charges once.
    pub async fn record_usage(&self, key_id: Uuid, input: &UsageInput) -> ServiceResult<UsageOutcome> {
        let request_id = match optional_text("request id", &input.request_id)? {
            Some(id) => id,
            None => Uuid::new_v4().to_string(),
        };
        if input.cost.is_negative() {
            return Err(ServiceError::invalid("cost", "must not be negative"));
        }
        if input.cost > MAX_REQUEST_COST {
            return Err(ServiceError::invalid("cost", format!("must be at most {MAX_REQUEST_COST} per request")));
        }
        if let Some(at) = input.at
            && at > self.now() + MAX_FUTURE_SKEW
        {
            return Err(ServiceError::invalid(
                "time",
                format!("{} is in the future; a request is recorded when it happened", at.to_rfc3339()),
            ));
        }
        let record = UsageRecord {
            request_id,
            api_key_id: key_id,
            provider: optional_text("provider", &input.provider)?,
            model: optional_text("model", &input.model)?,
            api_format: optional_text("api format", &input.api_format)?,
            total_tokens: at_most("tokens", input.total_tokens, MAX_REQUEST_TOKENS)?,
            cost: input.cost,
            response_time_ms: input
                .response_time_ms
                .map(|ms| at_most("response time", ms, MAX_RESPONSE_MS))
                .transpose()?,
            created_at: input.at.map(crate::domain::truncate_to_millis).unwrap_or_else(|| self.now()),
        };
        match self.store.record_usage(&record).await? {
            UsageOutcome::UnknownKey => Err(ServiceError::NotFound { kind: "key", reference: key_id.to_string() }),
            outcome @ UsageOutcome::Recorded { .. } => {
                self.raise_alerts(AlertScope::Key(key_id)).await;
                Ok(outcome)
            }
            outcome => Ok(outcome),
        }
    }

    /// Totals and the zero-filled daily series of the last `days` UTC days, read from the rollup.
    pub async fn stats(&self, key_id: Uuid, days: u32) -> ServiceResult<KeyStats> {
        let (first_day, last_day) = self.last_days(days)?;
        let rows = self.store.daily_usage(key_id, first_day, last_day).await?;
        Ok(KeyStats::summarise(key_id, days, first_day, last_day, &rows))
    }

    /// What each key spent over the days of the 30-day spend order, from the rollup (at most 30
    /// rows a key), for a list's page of keys.
    pub async fn recent_spend(&self, key_ids: &[Uuid]) -> ServiceResult<Vec<(Uuid, Money)>> {
        let (first_day, last_day) = crate::domain::recent_spend_days(self.now());
        let mut spend = Vec::with_capacity(key_ids.len());
        for &key_id in key_ids {
            let rows = self.store.daily_usage(key_id, first_day, last_day).await?;
            spend.push((key_id, Money::from_micros(rows.iter().map(|row| row.cost.micros()).sum())));
        }
        Ok(spend)
    }

    /// The first and last of the last `days` UTC days, today included.
    pub(super) fn last_days(&self, days: u32) -> ServiceResult<(NaiveDate, NaiveDate)> {
        if !(1..=MAX_STATS_DAYS).contains(&days) {
            return Err(ServiceError::invalid("days", format!("must be between 1 and {MAX_STATS_DAYS} (got {days})")));
        }
        let last_day = self.now().date_naive();
        Ok((last_day - Duration::days(i64::from(days) - 1), last_day))
    }
}

impl KeyStats {
    /// The totals and the daily series of the days `first_day..=last_day`, from the rollup rows
    /// of those days (in day order); days without a row count as days without requests.
    pub fn summarise(key_id: Uuid, days: u32, first_day: NaiveDate, last_day: NaiveDate, rows: &[DailyUsage]) -> Self {
        KeyStats { key_id, series: UsageSeries::summarise(days, first_day, last_day, rows) }
    }
}

impl UsageSeries {
    /// The totals and the daily series of the days `first_day..=last_day`, from the rollup rows
    /// of those days (in day order); days without a row count as days without requests.
    pub fn summarise(days: u32, first_day: NaiveDate, last_day: NaiveDate, rows: &[DailyUsage]) -> Self {
        let mut daily = Vec::with_capacity(days as usize);
        let mut rows = rows.iter().peekable();
        for day in first_day.iter_days().take_while(|d| *d <= last_day) {
            while rows.next_if(|row| row.day < day).is_some() {}
            match rows.next_if(|row| row.day == day) {
                Some(row) => daily.push(*row),
                None => daily.push(DailyUsage::empty(day)),
            }
        }
        let total_requests: i64 = daily.iter().map(|d| d.requests).sum();
        let response_ms_sum: i64 = daily.iter().map(|d| d.response_ms_sum).sum();
        let timed_requests: i64 = daily.iter().map(|d| d.timed_requests).sum();
        UsageSeries {
            days,
            first_day,
            last_day,
            total_requests,
            total_tokens: daily.iter().map(|d| d.tokens).sum(),
            total_cost: Money::from_micros(daily.iter().map(|d| d.cost.micros()).sum()),
            avg_response_ms: (timed_requests > 0).then(|| response_ms_sum as f64 / timed_requests as f64),
            daily,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_zero_fills_every_day_in_order() {
        let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let row = |d: u32, requests| DailyUsage {
            day: NaiveDate::from_ymd_opt(2026, 1, d).unwrap(),
            requests,
            tokens: requests * 10,
            cost: Money::from_micros(requests * 7),
            response_ms_sum: requests * 100,
            timed_requests: requests,
        };
        let stats = KeyStats::summarise(Uuid::nil(), 5, first, last, &[row(2, 3), row(4, 1)]);
        assert_eq!(stats.series.daily.len(), 5);
        assert_eq!(stats.series.daily.iter().map(|d| d.requests).collect::<Vec<_>>(), vec![0, 3, 0, 1, 0]);
        assert_eq!(stats.series.daily[0].day, first);
        assert_eq!(stats.series.daily[4].day, last);
        assert_eq!(stats.series.total_requests, 4);
        assert_eq!(stats.series.total_tokens, 40);
        assert_eq!(stats.series.total_cost, Money::from_micros(28));
        assert_eq!(stats.series.avg_response_ms, Some(100.0));
    }

    /// A request recorded without a response time says nothing about speed: it must not count
    /// as a 0 ms one.
    #[test]
    fn the_average_response_time_counts_only_timed_requests() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let timed_and_untimed =
            DailyUsage { requests: 4, response_ms_sum: 900, timed_requests: 3, ..DailyUsage::empty(day) };
        let stats = KeyStats::summarise(Uuid::nil(), 1, day, day, &[timed_and_untimed]);
        assert_eq!(stats.series.avg_response_ms, Some(300.0));
        let untimed = DailyUsage { requests: 2, ..DailyUsage::empty(day) };
        let stats = KeyStats::summarise(Uuid::nil(), 1, day, day, &[untimed]);
        assert_eq!((stats.series.total_requests, stats.series.avg_response_ms), (2, None));
    }
}
