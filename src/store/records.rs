//! What goes into and comes out of a [`Store`](super::Store) besides the domain types: audit rows
//! to write, balance adjustments and their outcomes, usage records, sweep reports, admission
//! lookups, re-sealing and bulk loads.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{ApiKey, Balance, KeyAdmission, LedgerEntry, Money, SweptKey, User, remaining};

/// An audit row to write together with a change.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The fingerprint of the actor's SSH key (`keytop serve`), which cannot be edited.
    pub actor_key: Option<String>,
    pub action: String,
    pub api_key_id: Option<Uuid>,
    pub details: serde_json::Value,
}

/// Who makes the changes of a statement the store writes in SQL (a sweep, refills), as the audit
/// log and the ledger record them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    pub name: &'a str,
    /// The fingerprint of their SSH key (`keytop serve`).
    pub key: Option<&'a str>,
}

impl<'a> From<&'a str> for Actor<'a> {
    fn from(name: &'a str) -> Self {
        Actor { name, key: None }
    }
}

impl AuditRecord {
    /// The audit row of an applied balance adjustment. The one-statement writes (PostgreSQL's
    /// `ADD_IN_ONE_STATEMENT`, SQLite's `balance_addition` trigger) build the same row in SQL.
    pub fn for_adjustment(entry: &LedgerEntry, change: BalanceChange) -> AuditRecord {
        AuditRecord {
            at: entry.at,
            actor: entry.actor.clone(),
            actor_key: entry.actor_key.clone(),
            action: change.audit_action().into(),
            api_key_id: Some(entry.api_key_id),
            details: serde_json::json!({
                "delta": entry.delta,
                "credited_after": entry.credited_after,
                "note": entry.note,
            }),
        }
    }
}

/// How a balance adjustment changes the credited total of a prepaid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceChange {
    /// A top-up (positive) or deduction (negative, at most the remaining balance).
    Add(Money),
    /// Set the credited total outright (`None` = unlimited); the ledger records the difference.
    SetCredited(Option<Money>),
}

impl BalanceChange {
    /// The action an applied change of this kind is audited as.
    pub fn audit_action(self) -> &'static str {
        match self {
            BalanceChange::Add(delta) if delta.is_negative() => "deduct",
            BalanceChange::Add(_) => "topup",
            BalanceChange::SetCredited(_) => "set_credit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceAdjustment {
    pub key_id: Uuid,
    pub change: BalanceChange,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The fingerprint of the actor's SSH key (`keytop serve`).
    pub actor_key: Option<String>,
    pub note: Option<String>,
    /// A second adjustment with the same idempotency key applies nothing and reports the first.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdjustOutcome {
    Applied(LedgerEntry),
    /// The idempotency key was used before, for the same key and change: nothing was applied.
    Replayed(LedgerEntry),
    /// The idempotency key was used before for a different key or amount.
    IdempotencyConflict(LedgerEntry),
    NotFound,
    NotPrepaid,
    /// `Add` on a prepaid key whose balance is unlimited.
    Unlimited,
    /// A deduction larger than what remains.
    InsufficientBalance {
        remaining: Money,
    },
    /// The credited total would leave the accepted range.
    OutOfRange,
}

impl AdjustOutcome {
    /// The key's balance right after this outcome, when it is an applied change and the writer
    /// read the key's used total (`used`) in the same statement.
    pub fn balance_after(&self, used: Option<Money>) -> Option<Balance> {
        match (self, used) {
            (AdjustOutcome::Applied(entry), Some(used)) => Some(Balance {
                credited: entry.credited_after,
                used,
                remaining: entry.credited_after.map(|credited| remaining(credited, used)),
            }),
            _ => None,
        }
    }
}

/// One request as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub request_id: String,
    pub api_key_id: Uuid,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub api_format: Option<String>,
    pub total_tokens: i64,
    pub cost: Money,
    pub response_time_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl UsageRecord {
    /// The key's last use is moved to this record's time only when it is older than this
    /// ([`LAST_USED_GRANULARITY`](crate::domain::LAST_USED_GRANULARITY) before the record).
    pub fn last_use_stale_before(&self) -> DateTime<Utc> {
        self.created_at - crate::domain::LAST_USED_GRANULARITY
    }

    /// The keys a batch of usage rows refers to, each once.
    pub fn distinct_key_ids(usage: &[UsageRecord]) -> Vec<Uuid> {
        let ids: std::collections::HashSet<Uuid> = usage.iter().map(|row| row.api_key_id).collect();
        ids.into_iter().collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageOutcome {
    /// Recorded; `charged` is true when the cost was charged to a prepaid balance.
    Recorded {
        charged: bool,
    },
    /// A row with this request id exists: nothing was written, nothing charged.
    Duplicate,
    UnknownKey,
}

/// How many swept keys a [`SweepReport`] lists by name, per list: a sweep of 500,000 keys must
/// not hold them all in memory.
pub const SWEEP_SAMPLE: usize = 1_000;

/// What a sweep did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// How many keys were (or would be) disabled: exact, however many.
    pub disabled_count: u64,
    /// How many keys were (or would be) deleted: exact, however many.
    pub deleted_count: u64,
    /// The first [`SWEEP_SAMPLE`] disabled keys, in expiry order.
    pub disabled: Vec<SweptKey>,
    /// The first [`SWEEP_SAMPLE`] deleted keys, in expiry order.
    pub deleted: Vec<SweptKey>,
    /// True when a list holds fewer keys than its count.
    pub truncated: bool,
    /// Another process held the sweep lock, so its expiry step did nothing.
    pub skipped: bool,
    /// How many keys were (or would be) refilled: exact, however many.
    pub refilled: u64,
    /// The first [`SWEEP_SAMPLE`] refilled keys, by id.
    pub refilled_keys: Vec<super::plan::RefilledKey>,
}

impl SweepReport {
    /// Counts one swept key, listing it while its list has room.
    pub fn push(&mut self, deleted: bool, key: SweptKey) {
        let (count, list) = if deleted {
            (&mut self.deleted_count, &mut self.deleted)
        } else {
            (&mut self.disabled_count, &mut self.disabled)
        };
        *count += 1;
        if list.len() < SWEEP_SAMPLE {
            list.push(key);
        } else {
            self.truncated = true;
        }
    }

    /// Counts `n` swept keys that are not listed (the lists are full, or they were counted
    /// set-based).
    pub fn add_unlisted(&mut self, deleted: bool, n: u64) {
        if n > 0 {
            if deleted {
                self.deleted_count += n
            } else {
                self.disabled_count += n
            }
            self.truncated = true;
        }
    }
}

/// A key looked up for admission, with its recent request count (for the rate limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyLookup {
    pub key: KeyAdmission,
    /// Usage rows of this key since the start of the rate window (0 when it has no rate limit).
    pub recent_requests: i64,
}

/// Turns a key's stored ciphertext into a new one (see [`Store::reseal_all_keys`](super::Store::reseal_all_keys)).
pub type Resealer<'a> = dyn Fn(Uuid, &str) -> Result<String, String> + Send + Sync + 'a;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResealOutcome {
    /// Every key was re-sealed; the count of keys.
    Resealed(u64),
    /// Nothing was changed: this key could not be re-sealed.
    Failed { key_id: Uuid, reason: String },
}

/// Rows for [`Store::bulk_load`](super::Store::bulk_load): users, then keys (with their initial credits), then usage.
#[derive(Debug, Clone, Default)]
pub struct BulkLoad {
    pub users: Vec<User>,
    pub keys: Vec<ApiKey>,
    /// At most one per key: the first ledger row of a prepaid key with a starting balance.
    pub initial_credits: Vec<LedgerEntry>,
    pub usage: Vec<UsageRecord>,
}

/// A key's new secret in the forms that are stored, and until when the secret it replaces still
/// verifies (`None`: not at all).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRoll {
    pub hash: String,
    pub ciphertext: String,
    pub hint: String,
    pub previous_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SecretRoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRoll")
            .field("hint", &self.hint)
            .field("previous_until", &self.previous_until)
            .finish_non_exhaustive()
    }
}
