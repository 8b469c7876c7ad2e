//! Money as an exact count of micro-dollars. Never parsed or summed through floats.

use std::fmt;

use serde::{Serialize, Serializer};

/// Micro-dollars per dollar.
pub const MICROS_PER_USD: i64 = 1_000_000;
/// The largest amount accepted anywhere (one trillion dollars): far above any real balance, and
/// far enough below `i64::MAX` micros that sums of many such amounts cannot overflow in SQL.
pub const MAX_AMOUNT: Money = Money(1_000_000_000_000 * MICROS_PER_USD);

/// An amount of US dollars, held as an `i64` count of micro-dollars (1 USD = 1 000 000).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("is empty; write an amount in dollars such as 12.50")]
    Empty,
    #[error("has more than 6 decimals; the smallest unit is $0.000001")]
    TooManyDecimals,
    #[error("is not a plain decimal number (accepted: 12, 12.5, $12.50, -3; no exponents, separators or words)")]
    Malformed,
    #[error("is too large (the limit is $1,000,000,000,000)")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_micros(micros: i64) -> Self {
        Money(micros)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    pub fn from_usd(dollars: i64) -> Self {
        Money(dollars * MICROS_PER_USD)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn abs(self) -> Money {
        Money(self.0.saturating_abs())
    }

    /// For charts only: never use the result for arithmetic on balances.
    pub fn as_f64_usd(self) -> f64 {
        self.0 as f64 / MICROS_PER_USD as f64
    }

    /// Parses admin input such as `12`, `12.5`, `$12.50`, `-3`, `+4`, `-$3.25`.
    ///
    /// Surrounding whitespace is ignored. Rejected: empty input, more than 6 decimals, exponents,
    /// NaN/inf, thousands separators, decimal commas, a bare `.5` or `5.`, and amounts above
    /// [`MAX_AMOUNT`].
    pub fn parse(input: &str) -> Result<Money, MoneyError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(MoneyError::Empty);
        }
        let (negative, rest) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let rest = rest.strip_prefix('$').unwrap_or(rest);
        let (whole, fraction) = match rest.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (rest, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(MoneyError::Malformed);
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > 6 {
            return Err(MoneyError::TooManyDecimals);
        }
        // Leading zeros are harmless, but a 30-digit whole part must not overflow.
        let whole = whole.trim_start_matches('0');
        if whole.len() > 13 {
            return Err(MoneyError::TooLarge);
        }
        let whole_value: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| MoneyError::Malformed)? };
        let mut fraction_value: i64 = 0;
        for digit in fraction.bytes().chain(std::iter::repeat(b'0')).take(6) {
            fraction_value = fraction_value * 10 + i64::from(digit - b'0');
        }
        let magnitude = whole_value
            .checked_mul(MICROS_PER_USD)
            .and_then(|m| m.checked_add(fraction_value))
            .ok_or(MoneyError::TooLarge)?;
        if magnitude > MAX_AMOUNT.0 {
            return Err(MoneyError::TooLarge);
        }
        Ok(Money(if negative { -magnitude } else { magnitude }))
    }

    /// Dollars with exactly six decimals and no symbol: the JSON form (`"12.250000"`).
    pub fn to_decimal_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let per = MICROS_PER_USD as u64;
        format!("{sign}{}.{:06}", magnitude / per, magnitude % per)
    }
}

/// Human form: `$12.25`, `-$3.00`, `$0.000125`, `$1,234.50` — at least two decimals, more only
/// when the amount needs them.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let per = MICROS_PER_USD as u64;
        let whole = group_thousands(magnitude / per);
        let mut fraction = format!("{:06}", magnitude % per);
        while fraction.len() > 2 && fraction.ends_with('0') {
            fraction.pop();
        }
        f.pad(&format!("{sign}${whole}.{fraction}"))
    }
}

/// `1,234,567`: digits in groups of three.
pub fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_decimal_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_accepted_forms_exactly() {
        let cases = [
            ("12", 12_000_000),
            ("12.5", 12_500_000),
            ("12.50", 12_500_000),
            ("$12.50", 12_500_000),
            ("-3", -3_000_000),
            ("-$3.25", -3_250_000),
            ("+4", 4_000_000),
            ("0.000001", 1),
            ("  7.1  ", 7_100_000),
            ("007.10", 7_100_000),
            ("0", 0),
        ];
        for (input, micros) in cases {
            assert_eq!(Money::parse(input), Ok(Money::from_micros(micros)), "{input}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let cases = [
            ("", MoneyError::Empty),
            ("   ", MoneyError::Empty),
            ("1.0000001", MoneyError::TooManyDecimals),
            ("1e3", MoneyError::Malformed),
            ("NaN", MoneyError::Malformed),
            ("inf", MoneyError::Malformed),
            ("-inf", MoneyError::Malformed),
            ("ten", MoneyError::Malformed),
            ("1,000", MoneyError::Malformed),
            ("1,5", MoneyError::Malformed),
            (".5", MoneyError::Malformed),
            ("5.", MoneyError::Malformed),
            ("--5", MoneyError::Malformed),
            ("$-5", MoneyError::Malformed),
            ("1 000", MoneyError::Malformed),
            ("0x10", MoneyError::Malformed),
            ("99999999999999999999", MoneyError::TooLarge),
            ("1000000000000.000001", MoneyError::TooLarge),
        ];
        for (input, error) in cases {
            assert_eq!(Money::parse(input), Err(error), "{input:?}");
        }
    }

    #[test]
    fn formats_for_humans_and_json() {
        assert_eq!(Money::from_micros(12_250_000).to_string(), "$12.25");
        assert_eq!(Money::from_micros(-3_000_000).to_string(), "-$3.00");
        assert_eq!(Money::from_micros(125).to_string(), "$0.000125");
        assert_eq!(Money::from_micros(1_234_500_000).to_string(), "$1,234.50");
        assert_eq!(Money::from_micros(12_250_000).to_decimal_string(), "12.250000");
        assert_eq!(Money::from_micros(-1).to_decimal_string(), "-0.000001");
        assert_eq!(serde_json::to_string(&Money::from_micros(5)).unwrap(), "\"0.000005\"");
    }
}
