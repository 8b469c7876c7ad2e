//! Rotating the master key: every stored key is re-sealed under the new one, in one transaction.

use serde_json::json;

use super::{KeyService, ServiceError, ServiceResult};
use crate::crypto::MasterKey;
use crate::store::ResealOutcome;

impl KeyService {
    /// Re-seals every stored key under `new_key`. Either all keys move to the new master key or
    /// none does; returns how many were re-sealed. The current master key must open them all.
    pub async fn rekey(&self, new_key: &MasterKey) -> ServiceResult<u64> {
        let old_key = self.master_key()?;
        let reseal = |id, ciphertext: &str| {
            // A key without a stored copy has nothing sealed under either master key.
            if crate::crypto::is_no_stored_copy(ciphertext) {
                return Ok(ciphertext.to_string());
            }
            let plaintext = old_key.open(id, ciphertext).map_err(|error| error.to_string())?;
            Ok(new_key.seal(id, &plaintext))
        };
        let audit = self.audit_record("master_key_rotate", None, json!({}));
        match self.store.reseal_all_keys(&reseal, &audit).await? {
            ResealOutcome::Resealed(count) => Ok(count),
            ResealOutcome::Failed { key_id, reason } => Err(ServiceError::MasterKey(format!(
                "nothing was changed: key {key_id} cannot be re-sealed ({reason}); \
                 run rekey with the master key that sealed it"
            ))),
        }
    }
}
