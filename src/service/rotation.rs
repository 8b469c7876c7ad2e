//! Rolling a key: a new secret for the same key, the old one kept valid for a grace period.

use chrono::Duration;
use serde_json::json;
use uuid::Uuid;

use super::{CreatedKey, KeyService, ServiceError, ServiceResult};
use crate::domain::{ValidationError, duration::parse_duration};
use crate::store::SecretRoll;

/// How long the replaced secret verifies when no grace is given.
pub const DEFAULT_GRACE: Duration = Duration::hours(24);
/// The longest grace: enough to redeploy every client, short enough that a leaked secret dies.
pub const MAX_GRACE: Duration = Duration::days(30);

/// A grace period as typed: `0` (the old secret stops at once) or a duration up to [`MAX_GRACE`].
pub fn parse_grace(text: &str) -> Result<Duration, ValidationError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::zero());
    }
    let grace = parse_duration(text).map_err(|error| ValidationError::new("grace", format!("{text:?} {error}")))?;
    if grace > MAX_GRACE {
        return Err(ValidationError::new("grace", format!("{text:?} is longer than the limit of 30d")));
    }
    Ok(grace)
}

impl KeyService {
    /// Gives a key a new secret, returned once like a new key's. The key keeps its id, name,
    /// owner, limits, balance, budget and history; the replaced secret verifies until `grace`
    /// has passed, and a secret replaced by an earlier roll stops at once. Audited without
    /// either secret.
    pub async fn roll_key(&self, id: Uuid, grace: Duration) -> ServiceResult<CreatedKey> {
        if grace < Duration::zero() || grace > MAX_GRACE {
            return Err(ServiceError::invalid("grace", "must be from 0 to 30d"));
        }
        let before = self.key(id).await?;
        let material = self.new_key_material(id)?;
        let now = self.now();
        let previous_until = (grace > Duration::zero()).then(|| now + grace);
        let audit = self.audit_record(
            "key_roll",
            Some(id),
            json!({ "old_hint": before.key_hint, "new_hint": material.hint, "previous_valid_until": previous_until }),
        );
        let roll =
            SecretRoll { hash: material.hash, ciphertext: material.ciphertext, hint: material.hint, previous_until };
        let key = self
            .store
            .roll_key(id, &roll, &audit)
            .await?
            .ok_or_else(|| ServiceError::NotFound { kind: "key", reference: id.to_string() })?;
        Ok(CreatedKey { key, plaintext: material.plaintext })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_zero_or_a_duration_up_to_thirty_days() {
        assert_eq!(parse_grace("0"), Ok(Duration::zero()));
        assert_eq!(parse_grace("24h"), Ok(Duration::hours(24)));
        assert_eq!(parse_grace("30d"), Ok(MAX_GRACE));
        for bad in ["-1h", "10y", "31d", "", "soon", "1.5h"] {
            assert_eq!(parse_grace(bad).unwrap_err().field, "grace", "{bad:?}");
        }
    }
}
