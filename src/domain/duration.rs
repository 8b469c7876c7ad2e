//! Human durations such as `30d`, `12h`, `90m`, `45s`, `2w`.

use chrono::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("is not a duration (accepted: a positive whole number followed by s, m, h, d or w, such as 30d or 12h)")]
    Malformed,
    #[error("must be greater than zero")]
    Zero,
    #[error("is too long (the limit is 100 years)")]
    TooLong,
}

const MAX_SECONDS: i64 = 100 * 366 * 24 * 3600;

pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    let split = text.find(|ch: char| !ch.is_ascii_digit()).ok_or(DurationError::Malformed)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 12 {
        return Err(if digits.is_empty() { DurationError::Malformed } else { DurationError::TooLong });
    }
    let count: i64 = digits.parse().map_err(|_| DurationError::Malformed)?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(DurationError::Malformed),
    };
    if count == 0 {
        return Err(DurationError::Zero);
    }
    let seconds = count.checked_mul(unit_seconds).filter(|s| *s <= MAX_SECONDS).ok_or(DurationError::TooLong)?;
    Ok(Duration::seconds(seconds))
}

/// Compact relative form for lists: `3d`, `5h`, `12m`, `40s`, rounded to the nearest unit, so
/// that an expiry set to `30d` reads `30d` a second later, not `29d`.
pub fn format_compact(duration: Duration) -> String {
    let seconds = duration.num_seconds().abs();
    let (unit, suffix) = match seconds {
        s if s >= 2 * 365 * 86_400 => (365 * 86_400, "y"),
        s if s >= 86_400 => (86_400, "d"),
        s if s >= 3600 => (3600, "h"),
        s if s >= 60 => (60, "m"),
        _ => (1, "s"),
    };
    format!("{}{suffix}", (seconds + unit / 2) / unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("30d"), Ok(Duration::days(30)));
        assert_eq!(parse_duration("12h"), Ok(Duration::hours(12)));
        assert_eq!(parse_duration("90m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_duration("45s"), Ok(Duration::seconds(45)));
        assert_eq!(parse_duration("2w"), Ok(Duration::weeks(2)));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["", "d", "30", "30x", "-3d", "3.5d", "1e3s", "30 d", "30D"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_duration("0d"), Err(DurationError::Zero));
        assert_eq!(parse_duration("99999999999d"), Err(DurationError::TooLong));
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_compact(Duration::days(3)), "3d");
        assert_eq!(format_compact(Duration::minutes(-125)), "2h");
        assert_eq!(format_compact(Duration::seconds(5)), "5s");
        assert_eq!(format_compact(Duration::days(30) - Duration::seconds(1)), "30d", "just after setting 30d");
        assert_eq!(format_compact(Duration::hours(36) - Duration::seconds(1)), "1d");
    }
}
