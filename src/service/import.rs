//! What an import from another system needs of the service: sealing the plaintexts it brings,
//! finding what keytop already has, and loading its rows in one transaction with one audit row.

use chrono::NaiveDate;
use serde_json::Value;
use uuid::Uuid;

use super::{KeyService, ServiceResult};
use crate::domain::CurrentPeriods;
use crate::store::BulkLoad;

impl KeyService {
    /// Seals a plaintext an import brought for the key `id` under the master key.
    pub fn seal_imported(&self, id: Uuid, plaintext: &str) -> ServiceResult<String> {
        Ok(self.master_key()?.seal(id, plaintext))
    }

    pub async fn key_exists(&self, id: Uuid) -> ServiceResult<bool> {
        Ok(self.store.key(id).await?.is_some())
    }

    /// The id of the key whose lookup hash is `hash`, if keytop has one.
    pub async fn key_id_by_hash(&self, hash: &str) -> ServiceResult<Option<Uuid>> {
        let now = self.now();
        Ok(self.store.verify_lookup(hash, now, CurrentPeriods::at(now)).await?.map(|found| found.key.id))
    }

    /// The requests the rollup of key `id` holds from the UTC day `first` to today.
    pub async fn requests_since(&self, id: Uuid, first: NaiveDate) -> ServiceResult<i64> {
        let today = self.now().date_naive();
        Ok(self.store.daily_usage(id, first, today.max(first)).await?.iter().map(|day| day.requests).sum())
    }

    /// Loads imported rows in one transaction (users, keys, their first ledger rows, usage with
    /// its rollups and charges) with one audit row `action` carrying `details`.
    pub async fn load_import(&self, batch: &BulkLoad, action: &str, details: Value) -> ServiceResult<()> {
        let audit = self.audit_record(action, None, details);
        Ok(self.store.bulk_load(batch, &audit).await?)
    }
}
