//! Rows to domain values, and the column conventions of the SQLite schema.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};
use uuid::fmt::Hyphenated;

use super::store_error;
use crate::domain::{ApiKey, AuditEntry, Balance, DailyUsage, KeyAdmission, LedgerEntry, Money, User};
use crate::store::{StoreError, StoreResult};

pub(super) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column).map_err(store_error)
}

pub(super) fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: get::<Hyphenated>(row, "id")?.into_uuid(),
        name: get(row, "name")?,
        is_active: get(row, "is_active")?,
        created_at: from_millis(get(row, "created_at")?)?,
    })
}

pub(super) fn key_from_row(row: &SqliteRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: get::<Hyphenated>(row, "id")?.into_uuid(),
        user_id: get::<Hyphenated>(row, "user_id")?.into_uuid(),
        owner_name: get(row, "owner_name")?,
        owner_active: get(row, "owner_active")?,
        key_hash: get(row, "key_hash")?,
        key_ciphertext: get(row, "key_ciphertext")?,
        key_hint: get(row, "key_hint")?,
        name: get(row, "name")?,
        allowed_providers: allow_list(get(row, "allowed_providers")?)?,
        allowed_api_formats: allow_list(get(row, "allowed_api_formats")?)?,
        allowed_models: allow_list(get(row, "allowed_models")?)?,
        rate_limit: get(row, "rate_limit")?,
        concurrent_limit: get(row, "concurrent_limit")?,
        expires_at: get::<Option<i64>>(row, "expires_at")?.map(from_millis).transpose()?,
        is_standalone: get(row, "is_standalone")?,
        credited: get::<Option<i64>>(row, "credited_micros")?.map(Money::from_micros),
        used: Money::from_micros(get(row, "used_micros")?),
        auto_delete_on_expiry: get(row, "auto_delete_on_expiry")?,
        is_active: get(row, "is_active")?,
        last_used_at: get::<Option<i64>>(row, "last_used_at")?.map(from_millis).transpose()?,
        created_at: from_millis(get(row, "created_at")?)?,
        updated_at: from_millis(get(row, "updated_at")?)?,
        money: super::plan::plan_from_row(row)?,
        previous_secret_until: get::<Option<i64>>(row, "previous_key_expires_at")?.map(from_millis).transpose()?,
    })
}

pub(super) fn admission_from_row(row: &SqliteRow) -> StoreResult<KeyAdmission> {
    Ok(KeyAdmission {
        id: get::<Hyphenated>(row, "id")?.into_uuid(),
        is_active: get(row, "is_active")?,
        owner_active: get(row, "owner_active")?,
        expires_at: get::<Option<i64>>(row, "expires_at")?.map(from_millis).transpose()?,
        balance: Balance::of(
            get(row, "is_standalone")?,
            get::<Option<i64>>(row, "credited_micros")?.map(Money::from_micros),
            Money::from_micros(get(row, "used_micros")?),
        ),
        allowed_providers: allow_list(get(row, "allowed_providers")?)?,
        allowed_api_formats: allow_list(get(row, "allowed_api_formats")?)?,
        allowed_models: allow_list(get(row, "allowed_models")?)?,
        rate_limit: get(row, "rate_limit")?,
        last_used_at: get::<Option<i64>>(row, "last_used_at")?.map(from_millis).transpose()?,
        budget: super::plan::budget_from_row(row)?,
        budget_spent: Money::from_micros(get(row, "budget_spent")?),
    })
}

pub(super) fn ledger_from_row(row: &SqliteRow) -> StoreResult<LedgerEntry> {
    Ok(LedgerEntry {
        id: get(row, "id")?,
        api_key_id: get::<Hyphenated>(row, "api_key_id")?.into_uuid(),
        at: from_millis(get(row, "at")?)?,
        actor: get(row, "actor")?,
        actor_key: get(row, "actor_key")?,
        delta: Money::from_micros(get(row, "delta_micros")?),
        credited_after: get::<Option<i64>>(row, "credited_after")?.map(Money::from_micros),
        note: get(row, "note")?,
        idempotency_key: get(row, "idempotency_key")?,
    })
}

/// An allow list as stored: a JSON array, or NULL for unrestricted (never `[]`).
pub(super) fn allow_list_json(list: Option<&[String]>) -> Option<String> {
    list.filter(|items| !items.is_empty()).map(|items| serde_json::Value::from(items).to_string())
}

pub(super) fn allow_list(stored: Option<String>) -> StoreResult<Option<Vec<String>>> {
    stored
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|error| StoreError::Database(format!("an allow list is not a JSON array of strings: {error}")))
        })
        .transpose()
}

pub(super) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(super) fn from_millis(millis: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| StoreError::Database(format!("the stored time {millis} ms is out of range")))
}

pub(super) fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: get(row, "id")?,
        at: from_millis(get(row, "at")?)?,
        actor: get(row, "actor")?,
        actor_key: get(row, "actor_key")?,
        action: get(row, "action")?,
        api_key_id: get::<Option<Hyphenated>>(row, "api_key_id")?.map(Hyphenated::into_uuid),
        details: get(row, "details")?,
    })
}

pub(super) fn daily_from_row(row: &SqliteRow) -> StoreResult<DailyUsage> {
    Ok(DailyUsage {
        day: get(row, "day")?,
        requests: get(row, "requests")?,
        tokens: get(row, "tokens")?,
        cost: Money::from_micros(get(row, "cost_micros")?),
        response_ms_sum: get(row, "response_ms_sum")?,
        timed_requests: get(row, "timed_requests")?,
    })
}
