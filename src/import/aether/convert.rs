//! Aether's rows as keytop's, one row at a time. Nothing here reads or writes a database: every
//! value that keytop cannot take as it is becomes a [`Finding`] (what was wrong, what was done),
//! and every float that needed rounding a [`MoneyRounding`].

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::cipher::AetherCipher;
use super::source::{AetherKey, AetherUsage, AetherUser};
use crate::crypto;
use crate::domain::text::sanitize;
use crate::domain::{ApiKey, Money, MoneyPlan, User, truncate_to_millis, validate};
use crate::import::float_money::{self, Rounding};
use crate::store::UsageRecord;

/// The hint listed for a key whose plaintext keytop does not have.
pub const HINT_WITHOUT_COPY: &str = "(no stored copy)";

/// A value keytop could not take as it was, and what the import did about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `users`, `api_keys` or `usage`.
    pub table: &'static str,
    /// The row's id in Aether (a usage row's request id).
    pub row: String,
    pub problem: String,
    pub action: String,
}

/// A float amount of a key or usage row that did not fit in 6 decimals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoneyRounding {
    pub table: &'static str,
    pub row: String,
    pub column: &'static str,
    #[serde(flatten)]
    pub rounding: Rounding,
    pub imported: Money,
}

/// What converting rows found, gathered for the report.
#[derive(Debug, Default)]
pub struct Notes {
    pub findings: Vec<Finding>,
    pub roundings: Vec<MoneyRounding>,
}

impl Notes {
    pub fn finding(&mut self, table: &'static str, row: &str, problem: impl Into<String>, action: impl Into<String>) {
        self.findings.push(Finding {
            table,
            row: sanitize(row).into_owned(),
            problem: problem.into(),
            action: action.into(),
        });
    }

    /// An amount as micro-dollars; a value with no amount becomes 0, reported.
    fn money(&mut self, table: &'static str, row: &str, column: &'static str, value: f64) -> Money {
        match float_money::to_micros(value) {
            Ok((money, rounding)) => {
                if let Some(rounding) = rounding {
                    let row = sanitize(row).into_owned();
                    self.roundings.push(MoneyRounding { table, row, column, rounding, imported: money });
                }
                money
            }
            Err(error) => {
                self.finding(table, row, format!("{column} {error} ({value})"), "imported as 0");
                Money::ZERO
            }
        }
    }

    /// An amount that must not be negative: a negative one becomes 0, reported.
    fn non_negative_money(&mut self, table: &'static str, row: &str, column: &'static str, value: f64) -> Money {
        let money = self.money(table, row, column, value);
        if money.is_negative() {
            self.finding(table, row, format!("{column} is negative ({value})"), "imported as 0");
            return Money::ZERO;
        }
        money
    }
}

/// An Aether time: PostgreSQL's as this import reads it, SQLite's as SQLAlchemy writes it
/// (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC, sometimes with an offset), or RFC 3339. Kept to the
/// millisecond, as keytop stores times.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .ok()
        .or_else(|| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").ok())
        .map(|at| at.with_timezone(&Utc))
        .or_else(|| {
            ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                .map(|naive| naive.and_utc())
        })?;
    Some(truncate_to_millis(parsed))
}

/// Free text (a name) as keytop accepts it: control and bidi characters removed, trimmed, cut to
/// `max_chars`; `None` when nothing is left. What changed is noted.
fn clean_text(
    notes: &mut Notes,
    table: &'static str,
    row: &str,
    column: &str,
    raw: &str,
    max_chars: usize,
) -> Option<String> {
    let cleaned: String = sanitize(raw).trim().chars().take(max_chars).collect();
    if cleaned != raw {
        let why = if sanitize(raw) != raw { "has control characters" } else { "is blank or too long" };
        notes.finding(table, row, format!("{column} {why}: {raw:?}"), format!("imported as {cleaned:?}"));
    }
    (!cleaned.is_empty()).then_some(cleaned)
}

/// A required time; a missing or unreadable one becomes `now`, reported.
fn required_time(
    notes: &mut Notes,
    table: &'static str,
    row: &str,
    column: &str,
    raw: Option<&str>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    raw.and_then(parse_time).unwrap_or_else(|| {
        notes.finding(
            table,
            row,
            format!("{column} is missing or unreadable ({raw:?})"),
            "imported as the time of the import",
        );
        now
    })
}

/// An Aether user as a keytop user with the id it had, or `None` when its id is not a UUID.
/// `name_taken` says whether another user of this import or of keytop has a name already.
pub fn user(
    notes: &mut Notes,
    raw: &AetherUser,
    now: DateTime<Utc>,
    name_taken: impl Fn(&str) -> bool,
) -> Option<User> {
    let Ok(id) = Uuid::parse_str(raw.id.trim()) else {
        notes.finding("users", &raw.id, "the id is not a UUID", "skipped, with the keys it owns");
        return None;
    };
    let short_id = &id.simple().to_string()[..8];
    let mut name = clean_text(notes, "users", &raw.id, "username", &raw.username, validate::MAX_USER_NAME_CHARS)
        .unwrap_or_else(|| format!("aether-{short_id}"));
    if name_taken(&name) {
        let unique: String = name.chars().take(validate::MAX_USER_NAME_CHARS - 9).collect();
        let renamed = format!("{unique}-{short_id}");
        notes.finding(
            "users",
            &raw.id,
            format!("the name {name:?} is taken by another user"),
            format!("imported as {renamed:?}"),
        );
        name = renamed;
    }
    if raw.is_deleted && raw.is_active {
        notes.finding("users", &raw.id, "marked deleted in Aether", "imported disabled");
    }
    let created_at = required_time(notes, "users", &raw.id, "created_at", raw.created_at.as_deref(), now);
    Some(User { id, name, is_active: raw.is_active && !raw.is_deleted, created_at })
}

/// The id and lookup hash of an Aether key, or `None` (noted) when keytop could not find the key
/// by them.
pub fn key_identity(notes: &mut Notes, raw: &AetherKey) -> Option<(Uuid, String)> {
    let Ok(id) = Uuid::parse_str(raw.id.trim()) else {
        notes.finding("api_keys", &raw.id, "the id is not a UUID", "skipped, with its usage");
        return None;
    };
    let hash = raw.key_hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        notes.finding("api_keys", &raw.id, "key_hash is not a SHA-256 in hex", "skipped, with its usage");
        return None;
    }
    Some((id, hash))
}

/// The plaintext's stored form in keytop: sealed when Aether's copy decrypts to the key with this
/// hash, else a marker saying why there is no copy. Returns it with the key's hint.
fn stored_copy(
    notes: &mut Notes,
    raw: &AetherKey,
    id: Uuid,
    hash: &str,
    cipher: Option<&AetherCipher>,
    seal: &dyn Fn(Uuid, &str) -> String,
) -> (String, String) {
    let plaintext = match (cipher, raw.key_encrypted.as_deref().filter(|copy| !copy.trim().is_empty())) {
        (None, _) => Err("imported from Aether without its ENCRYPTION_KEY".to_string()),
        (Some(_), None) => Err("Aether had no stored copy of it".to_string()),
        (Some(cipher), Some(copy)) => match cipher.decrypt(copy) {
            Ok(plaintext) if crypto::hash_key(&plaintext) == hash => Ok(plaintext),
            Ok(_) => Err("Aether's stored copy is of another key (its hash differs)".to_string()),
            Err(why) => Err(format!("{why} (Aether's copy)")),
        },
    };
    match plaintext {
        Ok(plaintext) => (seal(id, &plaintext), crypto::key_hint(&sanitize(&plaintext))),
        Err(why) => {
            if cipher.is_some() {
                notes.finding(
                    "api_keys",
                    &raw.id,
                    why.clone(),
                    "imported without a stored copy: it verifies, reveal cannot show it",
                );
            }
            (crypto::no_stored_copy(&why), HINT_WITHOUT_COPY.to_string())
        }
    }
}

/// An allow list from its JSON text: `Err` (noted) when it is not a list of texts keytop accepts.
fn allow_list(notes: &mut Notes, raw: &AetherKey, column: &str, text: Option<&str>) -> Result<Option<Vec<String>>, ()> {
    let parsed = match text.map(serde_json::from_str::<serde_json::Value>) {
        None | Some(Ok(serde_json::Value::Null)) => return Ok(None),
        Some(Ok(serde_json::Value::Array(items))) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(text) => Ok(text),
                _ => Err("has an entry that is not text".to_string()),
            })
            .collect::<Result<Vec<String>, String>>()
            .and_then(|items| validate::allow_list(column, &items).map_err(|error| error.message)),
        Some(Ok(_)) => Err("is not a JSON list".to_string()),
        Some(Err(_)) => Err("is not valid JSON".to_string()),
    };
    parsed.map_err(|problem| {
        notes.finding(
            "api_keys",
            &raw.id,
            format!("{column} {problem}: {:?}", text.unwrap_or_default()),
            "imported disabled and unrestricted in this list: set the list (keys update) before enabling it",
        );
    })
}

/// A rate or concurrency limit: Aether enforced neither, so one keytop refuses is dropped (noted).
fn limit(notes: &mut Notes, raw: &AetherKey, column: &str, value: Option<i64>) -> Option<i64> {
    let value = value?;
    validate::limit(column, value)
        .map_err(|error| notes.finding("api_keys", &raw.id, error.to_string(), "imported as none"))
        .ok()
}

/// The key's owner and what Aether's key row becomes in keytop, with `used` as Aether has it
/// (the import subtracts the charges its usage rows will make).
pub struct KeyContext<'a> {
    pub id: Uuid,
    pub hash: String,
    pub owner: &'a User,
    pub cipher: Option<&'a AetherCipher>,
    pub seal: &'a dyn Fn(Uuid, &str) -> String,
    pub now: DateTime<Utc>,
}

pub fn key(notes: &mut Notes, raw: &AetherKey, context: &KeyContext<'_>) -> ApiKey {
    let row = raw.id.as_str();
    let created_at = required_time(notes, "api_keys", row, "created_at", raw.created_at.as_deref(), context.now);
    let updated_at = required_time(notes, "api_keys", row, "updated_at", raw.updated_at.as_deref(), context.now);
    let name = raw
        .name
        .as_deref()
        .and_then(|name| clean_text(notes, "api_keys", row, "name", name, validate::MAX_KEY_NAME_CHARS))
        .unwrap_or_else(|| format!("API Key {}", created_at.format("%Y%m%d%H%M%S")));
    let (key_ciphertext, key_hint) = stored_copy(notes, raw, context.id, &context.hash, context.cipher, context.seal);
    let lists = [
        allow_list(notes, raw, "allowed_providers", raw.allowed_providers.as_deref()),
        allow_list(notes, raw, "allowed_api_formats", raw.allowed_api_formats.as_deref()),
        allow_list(notes, raw, "allowed_models", raw.allowed_models.as_deref()),
    ];
    let lists_readable = lists.iter().all(Result::is_ok);
    let [allowed_providers, allowed_api_formats, allowed_models] = lists.map(|list| list.unwrap_or(None));
    if raw.allowed_endpoints.as_deref().is_some_and(|text| text.trim() != "null") {
        notes.finding("api_keys", row, "allowed_endpoints is set; keytop has no such restriction", "not carried over");
    }
    let expires_at = match raw.expires_at.as_deref().map(|text| (text, parse_time(text))) {
        None => Some(None),
        Some((_, Some(at))) => Some(Some(at)),
        Some((text, None)) => {
            notes.finding(
                "api_keys",
                row,
                format!("expires_at is unreadable ({text:?})"),
                "imported disabled, with no expiry: set one before enabling it",
            );
            None
        }
    };
    let (credited, used) = if raw.is_standalone {
        let credited = raw
            .current_balance_usd
            .map(|value| notes.non_negative_money("api_keys", row, "current_balance_usd", value));
        let used = raw
            .balance_used_usd
            .map_or(Money::ZERO, |value| notes.non_negative_money("api_keys", row, "balance_used_usd", value));
        (credited, used)
    } else {
        if raw.current_balance_usd.is_some_and(|v| v != 0.0) || raw.balance_used_usd.is_some_and(|v| v != 0.0) {
            notes.finding(
                "api_keys",
                row,
                "a balance on a key that is not standalone (Aether never charges it)",
                "not carried over",
            );
        }
        (None, Money::ZERO)
    };
    let is_active = raw.is_active && lists_readable && expires_at.is_some();
    ApiKey {
        id: context.id,
        user_id: context.owner.id,
        owner_name: context.owner.name.clone(),
        owner_active: context.owner.is_active,
        key_hash: context.hash.clone(),
        key_ciphertext,
        key_hint,
        name,
        allowed_providers,
        allowed_api_formats,
        allowed_models,
        rate_limit: limit(notes, raw, "rate_limit", raw.rate_limit),
        concurrent_limit: limit(notes, raw, "concurrent_limit", raw.concurrent_limit),
        expires_at: expires_at.flatten(),
        is_standalone: raw.is_standalone,
        credited,
        used,
        auto_delete_on_expiry: Some(raw.auto_delete_on_expiry),
        is_active,
        last_used_at: raw.last_used_at.as_deref().and_then(parse_time),
        created_at,
        updated_at,
        // Aether has no budgets, refills or rotations.
        money: MoneyPlan::default(),
        previous_secret_until: None,
    }
}

/// An Aether usage row as keytop's, for the key `key_id`; `None` (noted) without a readable time.
pub fn usage(notes: &mut Notes, raw: &AetherUsage, key_id: Uuid) -> Option<UsageRecord> {
    let row = raw.request_id.as_str();
    let Some(created_at) = raw.created_at.as_deref().and_then(parse_time) else {
        notes.finding("usage", row, format!("created_at is missing or unreadable ({:?})", raw.created_at), "skipped");
        return None;
    };
    let cost =
        raw.total_cost_usd.map_or(Money::ZERO, |value| notes.non_negative_money("usage", row, "total_cost_usd", value));
    let total_tokens = match raw.total_tokens.unwrap_or(0) {
        tokens if tokens < 0 => {
            notes.finding("usage", row, format!("total_tokens is negative ({tokens})"), "imported as 0");
            0
        }
        tokens => tokens,
    };
    let response_time_ms = raw.response_time_ms.filter(|ms| *ms >= 0);
    if raw.response_time_ms.is_some() && response_time_ms.is_none() {
        notes.finding(
            "usage",
            row,
            format!("response_time_ms is negative ({:?})", raw.response_time_ms),
            "imported as none",
        );
    }
    let text = |value: &Option<String>| value.clone().filter(|text| !text.trim().is_empty());
    Some(UsageRecord {
        request_id: raw.request_id.clone(),
        api_key_id: key_id,
        provider: text(&raw.provider),
        model: text(&raw.model),
        api_format: text(&raw.api_format),
        total_tokens,
        cost,
        response_time_ms,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_each_backend_writes_them() {
        let expected = DateTime::parse_from_rfc3339("2025-12-24T10:11:12.345Z").unwrap().with_timezone(&Utc);
        for text in ["2025-12-24 10:11:12.345678", "2025-12-24T10:11:12.345Z", "2025-12-24 11:11:12.345+01:00"] {
            assert_eq!(parse_time(text), Some(expected), "{text}");
        }
        assert_eq!(parse_time("2025-12-24 10:11:12").map(|at| at.timestamp()), Some(expected.timestamp()));
        assert_eq!(parse_time("yesterday"), None);
    }
}
