//! Turning command-line text into domain values, with errors that name the flag.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{Money, Patch, ValidationError, duration::parse_duration, validate};

/// `none`/`unlimited` clear, anything else must be a limit.
pub fn limit_patch(flag: &str, value: Option<&str>) -> Result<Patch<i64>, ValidationError> {
    Ok(match value {
        None => Patch::Keep,
        Some(text) => match validate::parse_limit(flag, text)? {
            None => Patch::Clear,
            Some(limit) => Patch::Set(limit),
        },
    })
}

/// An empty string clears the list (unrestricted).
pub fn list_patch(value: Option<&str>) -> Patch<Vec<String>> {
    match value {
        None => Patch::Keep,
        Some(text) if text.trim().is_empty() => Patch::Clear,
        Some(text) => Patch::Set(validate::split_list(text)),
    }
}

pub fn money(flag: &str, text: &str) -> Result<Money, ValidationError> {
    Money::parse(text).map_err(|error| ValidationError::new(flag, error.to_string()))
}

/// `none`/`unlimited` → `None`, else an amount.
pub fn optional_money(flag: &str, text: &str) -> Result<Option<Money>, ValidationError> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("none") || trimmed.eq_ignore_ascii_case("unlimited") {
        Ok(None)
    } else {
        money(flag, trimmed).map(Some)
    }
}

/// RFC 3339, or a date meaning midnight UTC. Past times are accepted (that expires a key now).
pub fn timestamp(flag: &str, text: &str) -> Result<DateTime<Utc>, ValidationError> {
    let trimmed = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(crate::domain::truncate_to_millis(at.with_timezone(&Utc)));
    }
    if let Ok(day) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(ValidationError::new(
        flag,
        format!(
            "{trimmed:?} is not a time (accepted: RFC 3339 such as 2026-12-31T18:00:00Z, or a date such as 2026-12-31)"
        ),
    ))
}

/// A duration flag: `7d`, `12h`…
pub fn duration(flag: &str, text: &str) -> Result<chrono::Duration, ValidationError> {
    parse_duration(text).map_err(|error| ValidationError::new(flag, format!("{text:?} {error}")))
}

/// The expiry given by `--expires-in` or `--expires-at`, if either.
pub fn expiry(
    expires_in: Option<&str>,
    expires_at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ValidationError> {
    if let Some(text) = expires_in {
        return Ok(Some(now + duration("--expires-in", text)?));
    }
    expires_at.map(|text| timestamp("--expires-at", text)).transpose()
}

/// Refuses an expiry that has already passed, unless the admin said `--allow-past`: such a key is
/// expired at once, and one that deletes on expiry goes at the next sweep.
pub fn not_past(expiry: Option<DateTime<Utc>>, now: DateTime<Utc>, allow_past: bool) -> Result<(), ValidationError> {
    match expiry {
        Some(at) if at <= now && !allow_past => Err(ValidationError::new(
            "--expires-at",
            format!(
                "{} is in the past: the key would be expired at once (and deleted by the next sweep if it \
                 deletes on expiry); add --allow-past to do that",
                at.format("%Y-%m-%d %H:%M UTC")
            ),
        )),
        _ => Ok(()),
    }
}

/// `yes` / `no` / `default` → `Some(true)` / `Some(false)` / `None`.
pub fn auto_delete(text: &str) -> Result<Option<bool>, ValidationError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(Some(true)),
        "no" | "false" => Ok(Some(false)),
        "default" => Ok(None),
        _ => Err(ValidationError::new("--auto-delete", format!("{text:?} is not one of yes, no, default"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_accept_rfc3339_and_dates() {
        assert_eq!(timestamp("t", "2026-12-31").unwrap().to_rfc3339(), "2026-12-31T00:00:00+00:00");
        assert_eq!(timestamp("t", "2026-12-31T18:00:00+02:00").unwrap().to_rfc3339(), "2026-12-31T16:00:00+00:00");
        assert_eq!(timestamp("t", "9999-12-31").unwrap().date_naive().to_string(), "9999-12-31");
        assert!(timestamp("t", "tomorrow").is_err());
        assert!(timestamp("t", "2026-13-01").is_err());
    }

    #[test]
    fn a_past_expiry_needs_allow_past() {
        let now = timestamp("t", "2026-12-07").unwrap();
        let past = Some(timestamp("t", "2026-12-01").unwrap());
        let error = not_past(past, now, false).unwrap_err().to_string();
        assert!(error.contains("2026-12-01 00:00 UTC is in the past") && error.contains("--allow-past"), "{error}");
        assert!(not_past(past, now, true).is_ok());
        assert!(not_past(Some(now + chrono::TimeDelta::seconds(1)), now, false).is_ok());
        assert!(not_past(None, now, false).is_ok());
    }

    #[test]
    fn patches_follow_the_tri_state_rule() {
        assert_eq!(limit_patch("r", None).unwrap(), Patch::Keep);
        assert_eq!(limit_patch("r", Some("none")).unwrap(), Patch::Clear);
        assert_eq!(limit_patch("r", Some("7")).unwrap(), Patch::Set(7));
        assert_eq!(list_patch(Some("")), Patch::Clear);
        assert_eq!(list_patch(Some("a,b")), Patch::Set(vec!["a".into(), "b".into()]));
        assert_eq!(auto_delete("default").unwrap(), None);
        assert!(auto_delete("maybe").is_err());
    }
}
