//! Alerts: the events that run `alerts.command`, and the facts the command is given.
//!
//! An alert fires at most once per key, event and period. For a budget the period is the
//! budget's own (`month 2026-12`). For `low_balance` and `exhausted` it is the stretch of time the
//! balance spends under its line (under $0.000001 for `exhausted`): it ends, and the alert is
//! armed again, once the balance is back at or above the line (a top-up, a refill, a new credited
//! total, a lower line). That period is named `balance`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Money;

/// The name of the period of the balance events.
pub const BALANCE_PERIOD: &str = "balance";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// A prepaid key's remaining balance went under its low-balance line.
    LowBalance,
    /// A prepaid key has nothing left.
    Exhausted,
    /// A key spent its budget for the current period.
    BudgetReached,
}

impl AlertEvent {
    pub const ALL: [AlertEvent; 3] = [AlertEvent::LowBalance, AlertEvent::Exhausted, AlertEvent::BudgetReached];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::LowBalance => "low_balance",
            AlertEvent::Exhausted => "exhausted",
            AlertEvent::BudgetReached => "budget_reached",
        }
    }

    /// The event a stored word names.
    pub fn from_stored(text: &str) -> Option<AlertEvent> {
        AlertEvent::ALL.into_iter().find(|event| event.as_str() == text)
    }
}

impl std::fmt::Display for AlertEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What the alert command is told, through `KEYTOP_*` environment variables. Never a secret:
/// the key's hint (`sk-AbCdEfG...wxyz`) is all it gets of the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub event: AlertEvent,
    pub key_id: Uuid,
    pub key_name: String,
    pub key_hint: String,
    pub owner: String,
    /// The remaining balance of a prepaid key with a limit; `None` otherwise.
    pub remaining: Option<Money>,
    /// The key's low-balance line; `None` for no line.
    pub low_balance: Option<Money>,
    /// The budget and what its current period has spent; `None` without a budget.
    pub budget: Option<(Money, Money)>,
    /// `balance`, or the budget's period (`month 2026-12`).
    pub period: String,
    /// When the alert was claimed.
    pub at: DateTime<Utc>,
}

impl Alert {
    /// The environment variables of the command, in a fixed order; amounts in dollars with six
    /// decimals (`12.500000`), an absent amount as the empty string.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let amount = |money: Option<Money>| money.map(Money::to_decimal_string).unwrap_or_default();
        vec![
            ("KEYTOP_EVENT", self.event.as_str().to_string()),
            ("KEYTOP_KEY_ID", self.key_id.to_string()),
            ("KEYTOP_KEY_NAME", self.key_name.clone()),
            ("KEYTOP_KEY_HINT", self.key_hint.clone()),
            ("KEYTOP_OWNER", self.owner.clone()),
            ("KEYTOP_REMAINING", amount(self.remaining)),
            ("KEYTOP_LOW_BALANCE", amount(self.low_balance)),
            ("KEYTOP_BUDGET", amount(self.budget.map(|(budget, _)| budget))),
            ("KEYTOP_BUDGET_SPENT", amount(self.budget.map(|(_, spent)| spent))),
            ("KEYTOP_PERIOD", self.period.clone()),
            ("KEYTOP_AT", self.at.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_stored_words() {
        for event in AlertEvent::ALL {
            assert_eq!(AlertEvent::from_stored(event.as_str()), Some(event));
        }
        assert_eq!(AlertEvent::from_stored("LOW_BALANCE"), None);
    }

    #[test]
    fn the_environment_gives_amounts_as_decimals_and_absent_ones_empty() {
        let alert = Alert {
            event: AlertEvent::LowBalance,
            key_id: Uuid::nil(),
            key_name: "wallet".into(),
            key_hint: "sk-AbC...wxyz".into(),
            owner: "alice".into(),
            remaining: Some(Money::from_micros(4_500_000)),
            low_balance: Some(Money::from_usd(5)),
            budget: None,
            period: BALANCE_PERIOD.into(),
            at: DateTime::parse_from_rfc3339("2026-12-07T15:00:00Z").unwrap().with_timezone(&Utc),
        };
        let env: std::collections::BTreeMap<_, _> = alert.environment().into_iter().collect();
        assert_eq!(env["KEYTOP_EVENT"], "low_balance");
        assert_eq!(env["KEYTOP_REMAINING"], "4.500000");
        assert_eq!(env["KEYTOP_LOW_BALANCE"], "5.000000");
        assert_eq!(env["KEYTOP_BUDGET"], "");
        assert_eq!(env["KEYTOP_PERIOD"], "balance");
        assert_eq!(env["KEYTOP_AT"], "2026-12-07T15:00:00.000Z");
        assert!(env.keys().all(|name| name.starts_with("KEYTOP_")));
    }
}
