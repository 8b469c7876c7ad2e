//! How values read on screen: relative times, balances, limits, large counts. Every string that
//! came from the database passes through `sanitize` before it reaches a widget.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::domain::text::{fit, sanitize};
use crate::domain::{ApiKey, Money, duration::format_compact};

/// Untrusted text, made inert (no control or bidi characters).
pub fn safe(text: &str) -> Cow<'_, str> {
    sanitize(text)
}

/// Untrusted text made inert, then fitted to `width` columns (cut with `…`).
pub fn safe_within(text: &str, width: u16) -> Cow<'_, str> {
    match safe(text) {
        Cow::Borrowed(clean) => fit(clean, usize::from(width)),
        Cow::Owned(clean) => Cow::Owned(fit(&clean, usize::from(width)).into_owned()),
    }
}

/// `in 3d` or `3d ago`; `now` within a second.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = at - now;
    if delta.num_seconds() == 0 {
        "now".into()
    } else if delta.num_seconds() > 0 {
        format!("in {}", format_compact(delta))
    } else {
        format!("{} ago", format_compact(delta))
    }
}

/// When a key expires, for the list's Expires column: "never", "in 3d", or "2h ago" once past
/// (the column's title says what happened; the list marks it in the expired colour).
pub fn expiry(key: &ApiKey, now: DateTime<Utc>) -> String {
    key.expires_at.map_or("never".into(), |at| relative(at, now))
}

pub fn last_used(key: &ApiKey, now: DateTime<Utc>) -> String {
    key.last_used_at.map_or("never".into(), |at| relative(at, now))
}

/// What is left to spend, exactly: `—` for a key that is not prepaid, and a debt (usage charged
/// past the credit) as a negative amount marked `owed`, never as `$0.00`.
pub fn remaining(key: &ApiKey) -> String {
    remaining_as(key, |money| money)
}

/// What is left to spend, cut to whole cents towards less money (a debt of $1.489 reads `-$1.49`):
/// the key table's form, where six decimals are noise. The detail shows the exact amount.
pub fn remaining_in_cents(key: &ApiKey) -> String {
    remaining_as(key, whole_cents)
}

/// An amount cut to whole cents towards less money, for tables.
pub fn whole_cents(money: Money) -> Money {
    Money::from_micros(money.micros().div_euclid(MICROS_PER_CENT) * MICROS_PER_CENT)
}

const MICROS_PER_CENT: i64 = 10_000;

fn remaining_as(key: &ApiKey, shown: impl Fn(Money) -> Money) -> String {
    match key.balance() {
        None => "—".into(),
        Some(balance) => balance.net().map_or("unlimited".into(), |net| owed_or_left(shown(net))),
    }
}

/// `$3.51`, or `-$1.49 owed` for a negative balance.
pub fn owed_or_left(net: Money) -> String {
    if net.is_negative() { format!("{net} owed") } else { net.to_string() }
}

/// Whether a key owes money: usage charged past its credit.
pub fn owes(key: &ApiKey) -> bool {
    key.balance().and_then(|balance| balance.net()).is_some_and(Money::is_negative)
}

pub fn rate_limit(limit: Option<i64>) -> String {
    limit.map_or("unlimited".into(), |value| format!("{value}/min"))
}

pub fn concurrency(limit: Option<i64>) -> String {
    limit.map_or("unlimited".into(), |value| value.to_string())
}

/// `950`, `12.3k`, `4.5M`, `1.2B`: for axes and totals where the exact count is noise.
pub fn compact_count(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, suffix) = match magnitude {
        m if m >= 1e9 => (value / 1e9, "B"),
        m if m >= 1e6 => (value / 1e6, "M"),
        m if m >= 1e3 => (value / 1e3, "k"),
        _ => return format!("{value:.0}"),
    };
    if scaled.abs() >= 100.0 { format!("{scaled:.0}{suffix}") } else { format!("{scaled:.1}{suffix}") }
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A cost to the cent, where spenders are compared: micro-dollars would take the room of their
/// names.
pub fn cents(cost: Money) -> String {
    let micros = cost.micros();
    Money::from_micros((micros + micros.signum() * 5_000) / 10_000 * 10_000).to_string()
}

/// `a, b, c and 21 more`: the first names of marked keys, inert.
pub fn marked_names(keys: &[crate::service::MarkedKey]) -> String {
    const SHOWN: usize = 3;
    let names: Vec<String> = keys.iter().take(SHOWN).map(|key| safe(&key.name).into_owned()).collect();
    match keys.len().saturating_sub(SHOWN) {
        0 => names.join(", "),
        more => format!("{} and {more} more", names.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixtures::{NOW, prepaid_key, user_key};
    use chrono::TimeDelta;

    #[test]
    fn names_are_made_inert_before_they_are_measured() {
        assert_eq!(safe_within("a\u{202e}bcdef", 4), "abc…");
        assert_eq!(safe_within("a\u{202e}bc", 4), "abc");
    }

    #[test]
    fn relative_times_read_naturally() {
        let mut key = user_key();
        assert_eq!(expiry(&key, NOW), "never");
        key.expires_at = Some(NOW + TimeDelta::days(3));
        assert_eq!(expiry(&key, NOW), "in 3d");
        key.expires_at = Some(NOW - TimeDelta::hours(2));
        assert_eq!(expiry(&key, NOW), "2h ago");
    }

    #[test]
    fn balances_say_what_kind_of_key_it_is() {
        assert_eq!(remaining(&user_key()), "—");
        assert_eq!(remaining(&prepaid_key()), "$10.00");
        let mut unlimited = prepaid_key();
        unlimited.credited = None;
        assert_eq!(remaining(&unlimited), "unlimited");
        let mut odd = prepaid_key();
        odd.used = Money::from_micros(1_234_567);
        assert_eq!(remaining(&odd), "$10.765433");
        assert_eq!(remaining_in_cents(&odd), "$10.76");
    }

    #[test]
    fn an_overdrawn_key_shows_its_debt_not_zero() {
        let mut overdrawn = prepaid_key();
        overdrawn.credited = Some(Money::from_usd(5));
        overdrawn.used = Money::from_micros(6_489_293);
        assert_eq!(remaining(&overdrawn), "-$1.489293 owed");
        assert_eq!(remaining_in_cents(&overdrawn), "-$1.49 owed", "a debt is never shown smaller");
        assert!(owes(&overdrawn) && !owes(&prepaid_key()));
    }

    #[test]
    fn large_counts_are_compact() {
        assert_eq!(compact_count(950.0), "950");
        assert_eq!(compact_count(12_345.0), "12.3k");
        assert_eq!(compact_count(4_500_000.0), "4.5M");
        assert_eq!(compact_count(250_000.0), "250k");
    }

    #[test]
    fn costs_are_rounded_to_the_cent() {
        assert_eq!(cents(Money::from_micros(126_176_809)), "$126.18");
        assert_eq!(cents(Money::from_micros(4_994_999)), "$4.99");
        assert_eq!(cents(Money::from_micros(-1_005_000)), "-$1.01");
        assert_eq!(cents(Money::ZERO), "$0.00");
    }
}
