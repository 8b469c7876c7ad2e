//! The detail's Admission line: what `verify` decides for the key now, and the facts behind a
//! refusal, so "why is this key refused?" has its answer on screen.

use chrono::{DateTime, Utc};

use crate::domain::{ApiKey, AuditEntry};
use crate::service::{AdmissionCheck, DenyReason, VerifyDecision};

use crate::tui::view::format;

/// The decision as words: `allowed · 3 of 100 requests this minute`, or the reason with its
/// facts (`expired · 3d ago`, `insufficient balance · remaining -$1.49 owed`). `true` when
/// allowed.
pub fn describe(
    check: &AdmissionCheck,
    key: &ApiKey,
    disabled_by: Option<&AuditEntry>,
    now: DateTime<Utc>,
) -> (Vec<String>, bool) {
    let requests = |limit: i64| format!("{} of {limit} requests this minute", check.recorded_requests);
    match &check.decision {
        VerifyDecision::Allowed { .. } => {
            let mut parts = vec!["allowed".to_string()];
            parts.extend(key.rate_limit.map(requests));
            (parts, true)
        }
        VerifyDecision::Denied { reason, .. } => {
            let fact = match reason {
                DenyReason::Disabled => disabled_by.map_or("disabled by an admin or the sweep".into(), who_disabled),
                DenyReason::Expired => key.expires_at.map_or_else(String::new, |at| format::relative(at, now)),
                DenyReason::OwnerDisabled => format!("owner {} disabled", format::safe(&key.owner_name)),
                DenyReason::InsufficientBalance => format!("remaining {}", format::remaining(key)),
                DenyReason::RateLimited => key.rate_limit.map(requests).unwrap_or_default(),
                DenyReason::BudgetExceeded => "this period's budget is spent".to_string(),
                DenyReason::NotAllowed | DenyReason::Unknown => String::new(),
            };
            let word = reason.as_str().replace('_', " ");
            (std::iter::once(word).chain(Some(fact).filter(|f| !f.is_empty())).collect(), false)
        }
    }
}

/// `disabled by the sweep on 2026-12-05`, `disabled by alice on 2026-12-05`.
fn who_disabled(row: &AuditEntry) -> String {
    let by = if row.action == "sweep_disable" { "the sweep".into() } else { format::safe(&row.actor).into_owned() };
    format!("disabled by {by} on {}", row.at.format("%Y-%m-%d"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;
    use crate::tui::fixtures::{NOW, prepaid_key};

    fn denied(reason: DenyReason, recorded_requests: i64) -> AdmissionCheck {
        AdmissionCheck { decision: VerifyDecision::Denied { reason, key_id: None }, recorded_requests }
    }

    #[test]
    fn a_refusal_names_its_reason_and_the_facts_behind_it() {
        let mut key = prepaid_key();
        key.credited = Some(Money::from_usd(5));
        key.used = Money::from_micros(6_490_000);
        let (parts, allowed) = describe(&denied(DenyReason::InsufficientBalance, 0), &key, None, NOW);
        assert_eq!((parts, allowed), (vec!["insufficient balance".into(), "remaining -$1.49 owed".into()], false));
        key.expires_at = Some(NOW - chrono::TimeDelta::days(3));
        assert_eq!(describe(&denied(DenyReason::Expired, 0), &key, None, NOW).0, ["expired", "3d ago"]);
        assert_eq!(
            describe(&denied(DenyReason::RateLimited, 100), &key, None, NOW).0,
            ["rate limited", "100 of 100 requests this minute"]
        );
        assert_eq!(
            describe(&denied(DenyReason::OwnerDisabled, 0), &key, None, NOW).0,
            ["owner disabled", "owner alice disabled"]
        );
    }

    #[test]
    fn a_disabled_key_says_who_disabled_it_and_when() {
        let row = |action: &str, actor: &str| AuditEntry {
            id: 7,
            at: NOW - chrono::TimeDelta::days(3),
            actor: actor.into(),
            actor_key: None,
            action: action.into(),
            api_key_id: Some(prepaid_key().id),
            details: "{}".into(),
        };
        let key = prepaid_key();
        let describe_by = |by: Option<&AuditEntry>| describe(&denied(DenyReason::Disabled, 0), &key, by, NOW).0;
        let swept = row("sweep_disable", "keytop-sweep");
        assert_eq!(describe_by(Some(&swept)), ["disabled", "disabled by the sweep on 2026-03-05"]);
        assert_eq!(describe_by(Some(&row("key_disable", "alice"))), ["disabled", "disabled by alice on 2026-03-05"]);
        assert_eq!(describe_by(None), ["disabled", "disabled by an admin or the sweep"]);
    }
}
