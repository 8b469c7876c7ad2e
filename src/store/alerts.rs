//! Alert claims in the store, the same for both backends: which keys an alert check looks at,
//! what it needs to know, and what it claimed.
//!
//! A check first deletes the claims whose condition no longer holds (which arms those alerts
//! again), then inserts, if absent, a claim for each condition that holds on an enabled,
//! unexpired key. Only the inserted claims are reported, so of several processes checking the
//! same key at once exactly one gets each claim.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{AlertEvent, CurrentPeriods, Money, Period};

/// The keys a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertScope {
    /// One key, after a write that moved its balance or spend.
    Key(Uuid),
    /// Every key: the sweep, which catches crossings made by writers that do not check.
    All,
}

/// The instant of a check and what its conditions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCheck {
    pub now: DateTime<Utc>,
    pub periods: CurrentPeriods,
    /// The current day, week and month as claim periods (`month:2026-12-01`), in that order.
    pub period_keys: [String; 3],
    /// The low-balance line of keys without their own (config `alerts.low_balance`).
    pub default_line: Money,
}

impl AlertCheck {
    pub fn at(now: DateTime<Utc>, default_line: Money) -> AlertCheck {
        AlertCheck {
            now,
            periods: CurrentPeriods::at(now),
            period_keys: [Period::Day, Period::Week, Period::Month].map(|period| period.span_at(now).key()),
            default_line,
        }
    }
}

/// A claim a check inserted: this process runs its alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertClaim {
    pub key_id: Uuid,
    pub event: AlertEvent,
    /// `balance`, or the budget's period as a claim period (`month:2026-12-01`).
    pub period: String,
}

impl AlertClaim {
    /// A claim from its stored words; `None` for an event word this build does not know.
    pub fn stored(key_id: Uuid, event: &str, period: String) -> Option<AlertClaim> {
        AlertEvent::from_stored(event).map(|event| AlertClaim { key_id, event, period })
    }
}
