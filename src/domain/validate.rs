//! Validation of admin input. Each error names the field and what it accepts.

use super::text::is_unsafe_char;

/// Bad input: the field it concerns and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { field: field.into(), message: message.into() }
    }
}

pub const MAX_KEY_NAME_CHARS: usize = 100;
pub const MAX_USER_NAME_CHARS: usize = 64;
pub const MAX_NOTE_CHARS: usize = 500;
pub const MAX_LIST_ITEM_CHARS: usize = 100;
pub const MAX_LIST_ITEMS: usize = 200;
/// Upper bound of rate and concurrency limits: far above any real gateway, far below overflow.
pub const MAX_LIMIT: i64 = 1_000_000_000;

/// Trims and checks a name: not empty, not too long, no control characters.
pub fn name(field: &str, input: &str, max_chars: usize) -> Result<String, ValidationError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "is empty"));
    }
    check_text(field, trimmed, max_chars)?;
    Ok(trimmed.to_string())
}

/// Checks free text (notes, names): bounded length, no control or bidi characters.
pub fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), ValidationError> {
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(ValidationError::new(field, format!("is {chars} characters long; the limit is {max_chars}")));
    }
    if text.chars().any(is_unsafe_char) {
        return Err(ValidationError::new(field, "contains control characters; use plain printable text"));
    }
    Ok(())
}

/// An optional note: blank means none.
pub fn note(input: Option<&str>) -> Result<Option<String>, ValidationError> {
    match input.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => {
            check_text("note", text, MAX_NOTE_CHARS)?;
            Ok(Some(text.to_string()))
        }
    }
}

/// Normalises an allow list: items trimmed, blanks and duplicates dropped (first one kept).
/// An empty result means unrestricted, stored as NULL, never as an empty list.
pub fn allow_list(field: &str, items: &[String]) -> Result<Option<Vec<String>>, ValidationError> {
    let mut out: Vec<String> = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        check_text(field, item, MAX_LIST_ITEM_CHARS)?;
        if !out.iter().any(|seen| seen == item) {
            out.push(item.to_string());
        }
    }
    if out.len() > MAX_LIST_ITEMS {
        return Err(ValidationError::new(field, format!("has {} entries; the limit is {MAX_LIST_ITEMS}", out.len())));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// Splits a comma-separated list as typed on the command line or in a form.
pub fn split_list(input: &str) -> Vec<String> {
    input.split(',').map(str::to_string).collect()
}

/// A rate or concurrency limit: a whole number from 1 to [`MAX_LIMIT`].
pub fn limit(field: &str, value: i64) -> Result<i64, ValidationError> {
    if (1..=MAX_LIMIT).contains(&value) {
        Ok(value)
    } else {
        Err(ValidationError::new(
            field,
            format!("must be between 1 and {MAX_LIMIT}, or none for unlimited (got {value})"),
        ))
    }
}

/// Parses a limit as typed: a whole number, or `none`/`unlimited` (returned as `None`).
pub fn parse_limit(field: &str, input: &str) -> Result<Option<i64>, ValidationError> {
    let text = input.trim();
    if text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let value: i64 = text.parse().map_err(|_| {
        ValidationError::new(field, format!("must be a whole number from 1 to {MAX_LIMIT}, or none (got {text:?})"))
    })?;
    limit(field, value).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_are_normalised() {
        let items = ["a", " b ", "", "a", "  "].map(String::from);
        assert_eq!(allow_list("models", &items), Ok(Some(vec!["a".into(), "b".into()])));
        assert_eq!(allow_list("models", &["".into(), " ".into()]), Ok(None));
        assert!(allow_list("models", &["\u{1b}[2J".into()]).is_err());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(parse_limit("rate limit", "none"), Ok(None));
        assert_eq!(parse_limit("rate limit", "60"), Ok(Some(60)));
        for bad in ["0", "-1", "9223372036854775808", "1e3", "", "ten", "1000000001"] {
            let error = parse_limit("rate limit", bad).unwrap_err();
            assert_eq!(error.field, "rate limit");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(name("name", "  ops  ", 10), Ok("ops".into()));
        assert!(name("name", "", 10).is_err());
        assert!(name("name", &"x".repeat(11), 10).is_err());
        assert!(name("name", "a\u{7}b", 10).is_err());
        assert_eq!(name("name", "键🔑", 10), Ok("键🔑".into()));
    }
}
