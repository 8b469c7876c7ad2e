//! Float amounts from other systems as exact micro-dollars: the float's shortest decimal form
//! (what its own system printed), rounded half-even to 6 decimals, with what rounding changed.

use serde::Serialize;

use crate::domain::Money;
use crate::domain::money::MAX_AMOUNT;

/// Decimals keytop keeps: micro-dollars.
const DECIMALS: usize = 6;

/// A float that did not fit in 6 decimals: what it was and how much rounding added to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rounding {
    /// The float as its shortest decimal form, e.g. `0.30000000000000004`.
    pub original: String,
    /// The rounded amount minus the original, exact and signed, e.g. `-0.00000000000000004`.
    pub by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FloatMoneyError {
    #[error("is not a finite number")]
    NotFinite,
    #[error("is beyond the largest amount keytop accepts ($1,000,000,000,000)")]
    TooLarge,
}

/// `value` in micro-dollars, rounded half-even, and the rounding when there was one.
pub fn to_micros(value: f64) -> Result<(Money, Option<Rounding>), FloatMoneyError> {
    if !value.is_finite() {
        return Err(FloatMoneyError::NotFinite);
    }
    if value.abs() > MAX_AMOUNT.micros() as f64 / 1e6 {
        return Err(FloatMoneyError::TooLarge);
    }
    // Display of an f64 is its shortest round-tripping decimal, never in exponent form.
    let original = value.to_string();
    let digits = original.trim_start_matches('-');
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let kept: String = fraction.chars().chain(std::iter::repeat('0')).take(DECIMALS).collect();
    let dropped = fraction.get(DECIMALS..).unwrap_or("").trim_end_matches('0');
    let magnitude: i64 =
        format!("{whole}{kept}").parse().expect("the digits of a finite f64 within the limit fit in an i64");
    let negative = value.is_sign_negative();
    let sign = |positive: bool| if positive != negative { "" } else { "-" };
    if dropped.is_empty() {
        return Ok((Money::from_micros(if negative { -magnitude } else { magnitude }), None));
    }
    let round_up = match dropped.as_bytes()[0] {
        b'6'..=b'9' => true,
        b'5' if dropped.len() > 1 => true,
        // Exactly half: to the even neighbour.
        b'5' => magnitude % 2 == 1,
        _ => false,
    };
    let (magnitude, by) = if round_up {
        (magnitude + 1, format!("{}0.{}{}", sign(true), "0".repeat(DECIMALS), complement(dropped)))
    } else {
        (magnitude, format!("{}0.{}{dropped}", sign(false), "0".repeat(DECIMALS)))
    };
    let micros = if negative { -magnitude } else { magnitude };
    Ok((Money::from_micros(micros), Some(Rounding { original, by })))
}

/// `10^n − digits` as `n` digits, for a digit string of length `n` that does not end in 0.
fn complement(digits: &str) -> String {
    let last = digits.len() - 1;
    let complemented: String = digits
        .bytes()
        .enumerate()
        .map(|(index, digit)| {
            let value = digit - b'0';
            char::from(b'0' + if index == last { 10 - value } else { 9 - value })
        })
        .collect();
    complemented.trim_end_matches('0').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(value: f64) -> (i64, Option<(String, String)>) {
        let (money, rounding) = to_micros(value).unwrap();
        (money.micros(), rounding.map(|r| (r.original, r.by)))
    }

    #[test]
    fn amounts_of_six_decimals_or_fewer_are_exact() {
        assert_eq!(micros(12.25), (12_250_000, None));
        assert_eq!(micros(0.000001), (1, None));
        assert_eq!(micros(-3.5), (-3_500_000, None));
        assert_eq!(micros(0.0), (0, None));
        assert_eq!(micros(999_999.999999), (999_999_999_999, None));
    }

    #[test]
    fn longer_amounts_round_half_even_and_say_by_how_much() {
        let sum = 0.1 + 0.2;
        assert_eq!(micros(sum), (300_000, Some(("0.30000000000000004".into(), "-0.00000000000000004".into()))));
        assert_eq!(micros(1.0000006), (1_000_001, Some(("1.0000006".into(), "0.0000004".into()))));
        assert_eq!(micros(0.0000005), (0, Some(("0.0000005".into(), "-0.0000005".into()))), "half to even 0");
        assert_eq!(micros(0.0000015), (2, Some(("0.0000015".into(), "0.0000005".into()))), "half to even 2");
        assert_eq!(micros(-1.0000006), (-1_000_001, Some(("-1.0000006".into(), "-0.0000004".into()))));
        assert_eq!(micros(-0.0000004), (0, Some(("-0.0000004".into(), "0.0000004".into()))));
    }

    #[test]
    fn what_has_no_amount_is_refused() {
        assert_eq!(to_micros(f64::NAN), Err(FloatMoneyError::NotFinite));
        assert_eq!(to_micros(f64::INFINITY), Err(FloatMoneyError::NotFinite));
        assert_eq!(to_micros(1e13), Err(FloatMoneyError::TooLarge));
    }
}
