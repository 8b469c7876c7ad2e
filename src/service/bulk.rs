//! Bulk actions: one change applied to many keys, each key on its own (its own transaction,
//! ledger and audit rows), so that one refusal does not undo or stop the others.

use serde::Serialize;
use uuid::Uuid;

use super::{KeyService, ServiceError, ServiceResult};
use crate::domain::{ApiKey, KeyPatch, KeyQuery, Money, PageFrom};
use crate::store::StoreError;

/// A key a bulk action is about: its id, and its name for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkedKey {
    pub id: Uuid,
    pub name: String,
}

impl From<&ApiKey> for MarkedKey {
    fn from(key: &ApiKey) -> Self {
        MarkedKey { id: key.id, name: key.name.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAction {
    Disable,
    Enable,
    Purge,
    /// The same amount on each key; each key's idempotency key is `idempotency_key` and its id,
    /// so running the same bulk top-up again applies nothing twice.
    TopUp {
        amount: Money,
        note: Option<String>,
        idempotency_key: String,
    },
    /// The same fields on each key.
    Update(Box<KeyPatch>),
}

/// `key` or `keys`, to follow a count in what bulk actions say.
pub fn keys_word(count: usize) -> &'static str {
    if count == 1 { "key" } else { "keys" }
}

impl BulkAction {
    /// The past tense for reports: "disabled 3 keys".
    pub fn done(&self) -> &'static str {
        match self {
            BulkAction::Disable => "disabled",
            BulkAction::Enable => "enabled",
            BulkAction::Purge => "purged",
            BulkAction::TopUp { amount, .. } if amount.is_negative() => "deducted from",
            BulkAction::TopUp { .. } => "topped up",
            BulkAction::Update(_) => "updated",
        }
    }
}

/// A key the action could not change, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkFailure {
    #[serde(flatten)]
    pub key: MarkedKey,
    pub reason: String,
}

/// What a bulk action did, key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BulkReport {
    pub succeeded: Vec<MarkedKey>,
    pub failed: Vec<BulkFailure>,
}

/// The most keys one bulk action takes: a bigger set is better narrowed first.
pub const MAX_BULK_KEYS: usize = 10_000;

impl KeyService {
    /// Applies `action` to each key in turn, going on past refusals. Stops only when the
    /// database cannot be reached (every other key would fail the same way).
    pub async fn bulk(&self, keys: &[MarkedKey], action: &BulkAction) -> ServiceResult<BulkReport> {
        let mut report = BulkReport::default();
        for key in keys {
            match self.apply(key.id, action).await {
                Ok(()) => report.succeeded.push(key.clone()),
                Err(error @ ServiceError::Store(StoreError::Unavailable { .. })) => return Err(error),
                Err(error) => report.failed.push(BulkFailure { key: key.clone(), reason: error.to_string() }),
            }
        }
        Ok(report)
    }

    async fn apply(&self, id: Uuid, action: &BulkAction) -> ServiceResult<()> {
        match action {
            BulkAction::Disable => self.set_key_active(id, false).await.map(drop),
            BulkAction::Enable => self.set_key_active(id, true).await.map(drop),
            BulkAction::Purge => self.purge_key(id).await,
            BulkAction::TopUp { amount, note, idempotency_key } => {
                let per_key = format!("{idempotency_key}:{id}");
                self.top_up(id, *amount, note.as_deref(), Some(&per_key)).await.map(drop)
            }
            BulkAction::Update(patch) => self.update_key(id, patch).await.map(drop),
        }
    }

    /// Every key a list query matches, in its order, up to [`MAX_BULK_KEYS`]; and whether more
    /// matched.
    pub async fn matching_keys(&self, query: &KeyQuery) -> ServiceResult<(Vec<MarkedKey>, bool)> {
        const PAGE: usize = 500;
        let mut query = KeyQuery { from: PageFrom::Start, limit: PAGE as u32, ..query.clone() };
        query.now.get_or_insert_with(|| self.now());
        let mut keys = Vec::new();
        loop {
            let page = self.list_keys(&query).await?;
            keys.extend(page.iter().map(MarkedKey::from));
            if keys.len() > MAX_BULK_KEYS {
                keys.truncate(MAX_BULK_KEYS);
                return Ok((keys, true));
            }
            match page.last() {
                Some(last) if page.len() == PAGE => query.from = PageFrom::After(last.id),
                _ => return Ok((keys, false)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::NewKeySpec;

    /// A bulk top-up over a prepaid key, a plain key and a purged one: the first is credited
    /// once (running it again replays), the others are reported with their reasons.
    #[tokio::test]
    async fn a_bulk_action_goes_on_past_refusals_and_names_them() {
        let service = crate::service::in_memory_service().await;
        service.add_user("alice").await.unwrap();
        let create = |name: &str, standalone: bool| {
            let spec = NewKeySpec {
                name: Some(name.into()),
                standalone,
                balance: standalone.then(|| Money::from_usd(1)),
                ..NewKeySpec::new("alice")
            };
            let service = service.clone();
            async move { MarkedKey::from(&service.create_key(&spec).await.unwrap().key) }
        };
        let (wallet, plain, gone) =
            (create("wallet", true).await, create("plain", false).await, create("gone", true).await);
        service.purge_key(gone.id).await.unwrap();
        let top_up = BulkAction::TopUp { amount: Money::from_usd(2), note: None, idempotency_key: "bulk-1".into() };
        let keys = [wallet.clone(), plain.clone(), gone.clone()];
        let report = service.bulk(&keys, &top_up).await.unwrap();
        assert_eq!(report.succeeded, std::slice::from_ref(&wallet));
        let failed: Vec<(&str, &str)> =
            report.failed.iter().map(|f| (f.key.name.as_str(), f.reason.as_str())).collect();
        assert!(
            matches!(failed[..], [("plain", why), ("gone", gone_why)]
            if why.contains("is not a prepaid") && gone_why.starts_with("no key matches")),
            "{failed:?}"
        );
        service.bulk(&keys, &top_up).await.unwrap();
        assert_eq!(service.balance(wallet.id).await.unwrap().credited, Some(Money::from_usd(3)), "applied once");
        assert_eq!(service.ledger(wallet.id, None).await.unwrap().len(), 2, "the initial credit and one top-up");
    }
}
