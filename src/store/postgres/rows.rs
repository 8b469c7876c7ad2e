//! Rows as PostgreSQL returns them, and their domain types.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{ApiKey, AuditEntry, Balance, DailyUsage, KeyAdmission, LedgerEntry, Money, User, UserSummary};
use crate::store::VerifyLookup;
use crate::store::plan::PlanColumns;

/// An allow list as stored: NULL (unrestricted) for none and for an empty list, never `[]`.
pub(super) fn allow_list(list: Option<&[String]>) -> Option<Json<&[String]>> {
    list.filter(|items| !items.is_empty()).map(Json)
}

/// The columns of `key_columns!()`.
#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    id: Uuid,
    user_id: Uuid,
    owner_name: String,
    owner_active: bool,
    key_hash: String,
    key_ciphertext: String,
    key_hint: String,
    name: String,
    allowed_providers: Option<Json<Vec<String>>>,
    allowed_api_formats: Option<Json<Vec<String>>>,
    allowed_models: Option<Json<Vec<String>>>,
    rate_limit: Option<i64>,
    concurrent_limit: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
    is_standalone: bool,
    credited_micros: Option<i64>,
    used_micros: i64,
    auto_delete_on_expiry: Option<bool>,
    is_active: bool,
    last_used_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[sqlx(flatten)]
    plan: PlanColumns,
    previous_key_expires_at: Option<DateTime<Utc>>,
}

impl From<KeyRow> for ApiKey {
    fn from(row: KeyRow) -> Self {
        ApiKey {
            id: row.id,
            user_id: row.user_id,
            owner_name: row.owner_name,
            owner_active: row.owner_active,
            key_hash: row.key_hash,
            key_ciphertext: row.key_ciphertext,
            key_hint: row.key_hint,
            name: row.name,
            allowed_providers: row.allowed_providers.map(|Json(list)| list),
            allowed_api_formats: row.allowed_api_formats.map(|Json(list)| list),
            allowed_models: row.allowed_models.map(|Json(list)| list),
            rate_limit: row.rate_limit,
            concurrent_limit: row.concurrent_limit,
            expires_at: row.expires_at,
            is_standalone: row.is_standalone,
            credited: row.credited_micros.map(Money::from_micros),
            used: Money::from_micros(row.used_micros),
            auto_delete_on_expiry: row.auto_delete_on_expiry,
            is_active: row.is_active,
            last_used_at: row.last_used_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            money: row.plan.into_plan(),
            previous_secret_until: row.previous_key_expires_at,
        }
    }
}

/// What admission reads of a key, with its request count in the rate window.
#[derive(sqlx::FromRow)]
pub(super) struct VerifyRow {
    id: Uuid,
    is_active: bool,
    owner_active: bool,
    expires_at: Option<DateTime<Utc>>,
    is_standalone: bool,
    credited_micros: Option<i64>,
    used_micros: i64,
    allowed_providers: Option<Json<Vec<String>>>,
    allowed_api_formats: Option<Json<Vec<String>>>,
    allowed_models: Option<Json<Vec<String>>>,
    rate_limit: Option<i64>,
    last_used_at: Option<DateTime<Utc>>,
    budget_micros: Option<i64>,
    budget_period: Option<String>,
    recent_requests: i64,
    budget_spent: i64,
}

impl From<VerifyRow> for VerifyLookup {
    fn from(row: VerifyRow) -> Self {
        let key = KeyAdmission {
            id: row.id,
            is_active: row.is_active,
            owner_active: row.owner_active,
            expires_at: row.expires_at,
            balance: Balance::of(
                row.is_standalone,
                row.credited_micros.map(Money::from_micros),
                Money::from_micros(row.used_micros),
            ),
            allowed_providers: row.allowed_providers.map(|Json(list)| list),
            allowed_api_formats: row.allowed_api_formats.map(|Json(list)| list),
            allowed_models: row.allowed_models.map(|Json(list)| list),
            rate_limit: row.rate_limit,
            last_used_at: row.last_used_at,
            budget: PlanColumns {
                budget_micros: row.budget_micros,
                budget_period: row.budget_period,
                ..PlanColumns::default()
            }
            .into_plan()
            .budget,
            budget_spent: Money::from_micros(row.budget_spent),
        };
        VerifyLookup { key, recent_requests: row.recent_requests }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    name: String,
    is_active: bool,
    created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User { id: row.id, name: row.name, is_active: row.is_active, created_at: row.created_at }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserSummaryRow {
    #[sqlx(flatten)]
    user: UserRow,
    key_count: i64,
}

impl From<UserSummaryRow> for UserSummary {
    fn from(row: UserSummaryRow) -> Self {
        UserSummary { user: row.user.into(), key_count: row.key_count }
    }
}

/// A `balance_ledger` row (all columns).
#[derive(sqlx::FromRow)]
pub(super) struct LedgerRow {
    id: i64,
    api_key_id: Uuid,
    at: DateTime<Utc>,
    actor: String,
    actor_key: Option<String>,
    delta_micros: i64,
    credited_after: Option<i64>,
    note: Option<String>,
    idempotency_key: Option<String>,
}

impl From<LedgerRow> for LedgerEntry {
    fn from(row: LedgerRow) -> Self {
        LedgerEntry {
            id: row.id,
            api_key_id: row.api_key_id,
            at: row.at,
            actor: row.actor,
            actor_key: row.actor_key,
            delta: Money::from_micros(row.delta_micros),
            credited_after: row.credited_after.map(Money::from_micros),
            note: row.note,
            idempotency_key: row.idempotency_key,
        }
    }
}

/// An `audit_log` row with `details` as text.
#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    actor_key: Option<String>,
    action: String,
    api_key_id: Option<Uuid>,
    details: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            id: row.id,
            at: row.at,
            actor: row.actor,
            actor_key: row.actor_key,
            action: row.action,
            api_key_id: row.api_key_id,
            details: row.details,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DailyRow {
    day: NaiveDate,
    requests: i64,
    tokens: i64,
    cost_micros: i64,
    response_ms_sum: i64,
    timed_requests: i64,
}

impl From<DailyRow> for DailyUsage {
    fn from(row: DailyRow) -> Self {
        DailyUsage {
            day: row.day,
            requests: row.requests,
            tokens: row.tokens,
            cost: Money::from_micros(row.cost_micros),
            response_ms_sum: row.response_ms_sum,
            timed_requests: row.timed_requests,
        }
    }
}
