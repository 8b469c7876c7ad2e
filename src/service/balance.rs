//! Prepaid balances: top-ups, deductions, credit limits and the ledger.

use serde::Serialize;
use uuid::Uuid;

use super::{KeyService, ServiceError, ServiceResult};
use crate::domain::{ApiKey, Balance, LedgerEntry, Money, validate};
use crate::store::alerts::AlertScope;
use crate::store::{AdjustOutcome, BalanceAdjustment, BalanceChange};

/// The result of a top-up or deduction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopUp {
    pub entry: LedgerEntry,
    /// True when the idempotency key had been used: nothing new was applied.
    pub replayed: bool,
    /// The key's balance right after (or, when replayed, now).
    pub balance: Balance,
}

impl KeyService {
    /// The balance of a prepaid key; refused for a key that is not prepaid.
    pub async fn balance(&self, id: Uuid) -> ServiceResult<Balance> {
        let key = self.key(id).await?;
        key.balance().ok_or_else(|| not_prepaid(&key))
    }

    /// Adds `amount` (negative deducts) to a prepaid key, with a ledger and an audit row.
    pub async fn top_up(
        &self,
        id: Uuid,
        amount: Money,
        note: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> ServiceResult<TopUp> {
        if amount.is_zero() {
            return Err(ServiceError::invalid("amount", "must not be zero; use a negative amount to deduct"));
        }
        let idempotency_key = match idempotency_key.map(str::trim) {
            None => None,
            Some("") => return Err(ServiceError::invalid("idempotency key", "is empty")),
            Some(text) => {
                validate::check_text("idempotency key", text, 200)?;
                Some(text.to_string())
            }
        };
        self.adjust(id, BalanceChange::Add(amount), note, idempotency_key).await
    }

    /// Sets the credited total of a prepaid key (`None` = unlimited), recording the difference in
    /// the ledger.
    pub async fn set_credit(&self, id: Uuid, credited: Option<Money>, note: Option<&str>) -> ServiceResult<TopUp> {
        if credited.is_some_and(Money::is_negative) {
            return Err(ServiceError::invalid("balance", "must not be negative"));
        }
        self.adjust(id, BalanceChange::SetCredited(credited), note, None).await
    }

    async fn adjust(
        &self,
        id: Uuid,
        change: BalanceChange,
        note: Option<&str>,
        idempotency_key: Option<String>,
    ) -> ServiceResult<TopUp> {
        let note = validate::note(note)?;
        let adjustment = BalanceAdjustment {
            key_id: id,
            change,
            at: self.now(),
            actor: self.actor.clone(),
            actor_key: self.credential.clone(),
            note,
            idempotency_key,
        };
        let (outcome, balance) = self.store.adjust_balance_and_read(&adjustment).await?;
        let (entry, replayed) = match outcome {
            AdjustOutcome::Applied(entry) => (entry, false),
            AdjustOutcome::Replayed(entry) => (entry, true),
            AdjustOutcome::IdempotencyConflict(entry) => {
                return Err(ServiceError::Refused(format!(
                    "idempotency key {:?} was already used for a different adjustment ({} on key {} at {}); use a new key",
                    entry.idempotency_key.as_deref().unwrap_or_default(),
                    entry.delta,
                    entry.api_key_id,
                    entry.at.to_rfc3339()
                )));
            }
            AdjustOutcome::NotFound => {
                return Err(ServiceError::NotFound { kind: "key", reference: id.to_string() });
            }
            AdjustOutcome::NotPrepaid => return Err(not_prepaid(&self.key(id).await?)),
            AdjustOutcome::Unlimited => {
                return Err(ServiceError::Refused(
                    "this prepaid key has an unlimited balance, so there is nothing to top up; \
                     give it a limit first (keys update KEY --balance USD)"
                        .into(),
                ));
            }
            AdjustOutcome::InsufficientBalance { remaining } => {
                return Err(ServiceError::Refused(format!(
                    "cannot deduct more than the remaining balance ({remaining})"
                )));
            }
            AdjustOutcome::OutOfRange => {
                return Err(ServiceError::Refused(format!(
                    "the credited total would leave the accepted range ($0 to {})",
                    crate::domain::money::MAX_AMOUNT
                )));
            }
        };
        if !replayed {
            self.raise_alerts(AlertScope::Key(id)).await;
        }
        let balance = match balance {
            Some(balance) => balance,
            None => self.balance(id).await?,
        };
        Ok(TopUp { entry, replayed, balance })
    }

    /// Every balance adjustment of a key, oldest first (the last `limit` when given).
    pub async fn ledger(&self, id: Uuid, limit: Option<u32>) -> ServiceResult<Vec<LedgerEntry>> {
        Ok(self.store.ledger(id, limit).await?)
    }
}

fn not_prepaid(key: &ApiKey) -> ServiceError {
    ServiceError::Refused(format!(
        "key {} is not a prepaid (standalone) key, so it has no balance to top up; \
         its usage is billed to its owner",
        key.id
    ))
}
