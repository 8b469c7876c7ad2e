//! The fleet's questions: what the gateway spent and who spent it, which users own what, and
//! who changed what.

use serde::Serialize;

use super::{KeyService, ServiceError, ServiceResult, UsageSeries};
use crate::domain::{
    ApiKey, AuditEntry, AuditQuery, KeyQuery, Money, Spender, SpenderKind, UsageTotals, User, UserOverview, UserQuery,
};

/// The most rows one page of users, audit rows or top spenders may hold.
pub const MAX_PAGE: u32 = 1_000;
/// The most keys `user` lists with a user.
pub const USER_KEYS_SHOWN: u32 = 1_000;

/// The fleet's usage over the last days: all of it, and the part whose keys are gone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetStats {
    /// Every usage row recorded, purged keys' included.
    pub usage: UsageSeries,
    /// The part of `usage` whose keys were purged or deleted by the sweep.
    pub purged: UsageSeries,
    /// The fleet's usage of today (UTC), and of yesterday, whatever the range.
    pub today: UsageTotals,
    pub yesterday: UsageTotals,
}

/// A user's usage over the last days, all their keys (purged ones included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserStats {
    pub user: User,
    pub usage: UsageSeries,
}

/// A spender with its share of the fleet's spend in the range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked<T> {
    #[serde(flatten)]
    pub spender: T,
    /// Between 0 and 1; 0 when the fleet spent nothing.
    pub share: f64,
}

/// The biggest spenders of the last days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopSpenders {
    pub by: SpenderKind,
    pub days: u32,
    pub first_day: chrono::NaiveDate,
    pub last_day: chrono::NaiveDate,
    /// The fleet's spend in the range: what the shares are shares of.
    pub total: Money,
    pub spenders: Vec<Ranked<Spender>>,
    /// By key: the usage of keys since purged, which no key line can show. `None` by user (a
    /// purged key's usage stays its owner's).
    pub purged: Option<Ranked<UsageTotals>>,
}

/// A user with their keys, as `users show` prints them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDetail {
    pub overview: UserOverview,
    /// The days `overview.spend` sums over.
    pub days: u32,
    /// The user's keys, newest first: the first [`USER_KEYS_SHOWN`] of `overview.keys`.
    pub keys: Vec<ApiKey>,
}

fn share(part: Money, total: Money) -> f64 {
    if total.micros() > 0 { part.micros() as f64 / total.micros() as f64 } else { 0.0 }
}

fn page_limit(limit: u32) -> ServiceResult<u32> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ServiceError::invalid("limit", format!("must be between 1 and {MAX_PAGE} (got {limit})")))
    }
}

impl KeyService {
    /// The fleet's totals and zero-filled daily series over the last `days` UTC days.
    pub async fn fleet_stats(&self, days: u32) -> ServiceResult<FleetStats> {
        let (first, last) = self.last_days(days)?;
        let yesterday = last.pred_opt().unwrap_or(last);
        // From yesterday on at least, so a one-day range still has yesterday's totals.
        let usage = self.store.fleet_daily_usage(first.min(yesterday), last).await?;
        let purged = self.store.purged_daily_usage(first, last).await?;
        let of_day = |day| usage.iter().find(|row| row.day == day).map_or_else(UsageTotals::default, UsageTotals::from);
        Ok(FleetStats {
            today: of_day(last),
            yesterday: of_day(yesterday),
            usage: UsageSeries::summarise(days, first, last, &usage),
            purged: UsageSeries::summarise(days, first, last, &purged),
        })
    }

    /// A user's totals and zero-filled daily series over the last `days` UTC days.
    pub async fn user_stats(&self, name: &str, days: u32) -> ServiceResult<UserStats> {
        let (first, last) = self.last_days(days)?;
        let user = self.user(name).await?;
        let rows = self.store.user_daily_usage(user.id, first, last).await?;
        Ok(UserStats { user, usage: UsageSeries::summarise(days, first, last, &rows) })
    }

    /// The `limit` keys or users that spent most over the last `days` UTC days, each with its
    /// share of the fleet's spend.
    pub async fn top_spenders(&self, by: SpenderKind, days: u32, limit: u32) -> ServiceResult<TopSpenders> {
        let (first, last) = self.last_days(days)?;
        let spenders = self.store.top_spenders(by, first, last, page_limit(limit)?).await?;
        let fleet = self.fleet_stats(days).await?;
        let total = fleet.usage.total_cost;
        let purged = (by == SpenderKind::Key && fleet.purged.total_requests > 0).then(|| {
            let totals = UsageTotals {
                requests: fleet.purged.total_requests,
                tokens: fleet.purged.total_tokens,
                cost: fleet.purged.total_cost,
            };
            Ranked { share: share(totals.cost, total), spender: totals }
        });
        Ok(TopSpenders {
            by,
            days,
            first_day: first,
            last_day: last,
            total,
            spenders: spenders
                .into_iter()
                .map(|spender| Ranked { share: share(spender.totals.cost, total), spender })
                .collect(),
            purged,
        })
    }

    /// One page of users by name (after `after`, whose name contains `filter`), each with key
    /// counts, spend over the last `days` UTC days and last use.
    pub async fn user_overviews(
        &self,
        filter: Option<&str>,
        after: Option<&str>,
        limit: u32,
        days: u32,
    ) -> ServiceResult<Vec<UserOverview>> {
        let (first_day, last_day) = self.last_days(days)?;
        let query = UserQuery {
            filter: filter.map(str::to_string),
            name: None,
            after: after.map(str::to_string),
            limit: page_limit(limit)?,
            first_day,
            last_day,
            now: self.now(),
        };
        Ok(self.store.user_overviews(&query).await?)
    }

    /// A user with their key counts, spend over the last `days` UTC days, last use and keys.
    pub async fn user_detail(&self, name: &str, days: u32) -> ServiceResult<UserDetail> {
        let (first_day, last_day) = self.last_days(days)?;
        let name = name.trim();
        let query = UserQuery {
            filter: None,
            name: Some(name.to_string()),
            after: None,
            limit: 1,
            first_day,
            last_day,
            now: self.now(),
        };
        let overview = self
            .store
            .user_overviews(&query)
            .await?
            .pop()
            .ok_or_else(|| ServiceError::NotFound { kind: "user", reference: name.to_string() })?;
        let keys = self
            .list_keys(&KeyQuery {
                owner: Some(overview.user.id),
                descending: true,
                limit: USER_KEYS_SHOWN,
                ..KeyQuery::default()
            })
            .await?;
        Ok(UserDetail { overview, days, keys })
    }

    /// One page of the audit log, newest first.
    pub async fn audit_page(&self, query: &AuditQuery) -> ServiceResult<Vec<AuditEntry>> {
        page_limit(query.limit)?;
        Ok(self.store.audit_page(query).await?)
    }
}
