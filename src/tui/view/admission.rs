//! The detail's Admission line: what `verify` decides for the key now, and the facts behind a
//! refusal, so "why is this key refused?" has its answer on screen.

use chrono::{DateTime, Utc};

use crate::domain::ApiKey;
use crate::service::{AdmissionCheck, DenyReason, VerifyDecision};

use super::format;

/// The decision as words: `allowed · 3 of 100 requests this minute`, or the reason with its
/// facts (`expired · 3d ago`, `insufficient balance · remaining -$1.49 owed`). `true` when
/// allowed.
pub fn describe(check: &AdmissionCheck, key: &ApiKey, now: DateTime<Utc>) -> (Vec<String>, bool) {
    let requests = |limit: i64| format!("{} of {limit} requests this minute", check.recorded_requests);
    match &check.decision {
        VerifyDecision::Allowed { .. } => {
            let mut parts = vec!["allowed".to_string()];
            parts.extend(key.rate_limit.map(requests));
            (parts, true)
        }
        VerifyDecision::Denied { reason, .. } => {
            let fact = match reason {
                DenyReason::Disabled => "disabled by an admin or the sweep".to_string(),
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
        let (parts, allowed) = describe(&denied(DenyReason::InsufficientBalance, 0), &key, NOW);
        assert_eq!((parts, allowed), (vec!["insufficient balance".into(), "remaining -$1.49 owed".into()], false));
        key.expires_at = Some(NOW - chrono::TimeDelta::days(3));
        assert_eq!(describe(&denied(DenyReason::Expired, 0), &key, NOW).0, ["expired", "3d ago"]);
        assert_eq!(
            describe(&denied(DenyReason::RateLimited, 100), &key, NOW).0,
            ["rate limited", "100 of 100 requests this minute"]
        );
        assert_eq!(
            describe(&denied(DenyReason::OwnerDisabled, 0), &key, NOW).0,
            ["owner disabled", "owner alice disabled"]
        );
    }
}
