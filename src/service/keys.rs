//! Key lifecycle: create, find, list, update, enable/disable, purge, reveal.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{KeyService, ServiceError, ServiceResult};
use crate::crypto;
use crate::domain::{
    ApiKey, AuditEntry, AuditQuery, DEFAULT_CONCURRENT_LIMIT, DEFAULT_RATE_LIMIT, KeyCounts, KeyPatch, KeyQuery,
    LedgerEntry, LowBalanceLine, Money, MoneyPlan, Patch, money::MAX_AMOUNT, validate,
};

/// The shortest id prefix accepted as a key reference.
pub const MIN_ID_PREFIX: usize = 6;
/// How many candidates an ambiguous reference lists.
const MAX_CANDIDATES: u32 = 10;

/// What `create` needs. `new` gives the original service's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeySpec {
    pub owner: String,
    pub name: Option<String>,
    pub standalone: bool,
    /// Initial credit of a prepaid key; `None` = unlimited.
    pub balance: Option<Money>,
    pub rate_limit: Option<i64>,
    pub concurrent_limit: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_providers: Vec<String>,
    pub allowed_api_formats: Vec<String>,
    pub allowed_models: Vec<String>,
    pub auto_delete_on_expiry: Option<bool>,
    /// Budget, refill (prepaid keys with a limited balance only) and low-balance line.
    pub money: MoneyPlan,
}

impl NewKeySpec {
    pub fn new(owner: impl Into<String>) -> Self {
        NewKeySpec {
            owner: owner.into(),
            name: None,
            standalone: false,
            balance: None,
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            concurrent_limit: Some(DEFAULT_CONCURRENT_LIMIT),
            expires_at: None,
            allowed_providers: Vec::new(),
            allowed_api_formats: Vec::new(),
            allowed_models: Vec::new(),
            auto_delete_on_expiry: None,
            money: MoneyPlan::default(),
        }
    }
}

/// A generated key: the plaintext (shown once) and the three forms that are stored.
pub struct KeyMaterial {
    pub plaintext: String,
    pub hash: String,
    pub hint: String,
    pub ciphertext: String,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial").field("hint", &self.hint).finish_non_exhaustive()
    }
}

/// A new key and its plaintext, which is shown once and never stored in clear.
pub struct CreatedKey {
    pub key: ApiKey,
    pub plaintext: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey").field("key", &self.key).field("plaintext", &"<redacted>").finish()
    }
}

fn check_money_range(field: &str, amount: Money) -> ServiceResult<Money> {
    if amount.is_negative() {
        return Err(ServiceError::invalid(field, "must not be negative"));
    }
    if amount > MAX_AMOUNT {
        return Err(ServiceError::invalid(field, format!("must be at most {MAX_AMOUNT}")));
    }
    Ok(amount)
}

/// A refill needs a prepaid key whose balance is limited: there is nothing to refill otherwise.
fn check_refillable(plan: &MoneyPlan, standalone: bool, credited: Option<Money>) -> ServiceResult<()> {
    if plan.refill.is_none() {
        Ok(())
    } else if !standalone {
        Err(ServiceError::invalid(
            "refill",
            "applies only to standalone (prepaid) keys; this key is billed to its owner",
        ))
    } else if credited.is_none() {
        Err(ServiceError::invalid("refill", "needs a limited balance; this key's balance is unlimited"))
    } else {
        Ok(())
    }
}

fn check_limit(field: &str, value: Option<i64>) -> ServiceResult<Option<i64>> {
    Ok(value.map(|v| validate::limit(field, v)).transpose()?)
}

fn check_patch_limit(field: &str, patch: &Patch<i64>) -> ServiceResult<()> {
    if let Patch::Set(value) = patch {
        validate::limit(field, *value)?;
    }
    Ok(())
}

fn normalise_list_patch(field: &str, patch: &Patch<Vec<String>>) -> ServiceResult<Patch<Vec<String>>> {
    Ok(match patch {
        Patch::Set(items) => match validate::allow_list(field, items)? {
            Some(list) => Patch::Set(list),
            None => Patch::Clear,
        },
        other => other.clone(),
    })
}

impl KeyService {
    pub async fn create_key(&self, spec: &NewKeySpec) -> ServiceResult<CreatedKey> {
        let owner = self.user(&spec.owner).await?;
        let now = self.now();
        let name = match &spec.name {
            Some(name) => validate::name("name", name, validate::MAX_KEY_NAME_CHARS)?,
            None => format!("API Key {}", now.format("%Y%m%d%H%M%S")),
        };
        if spec.balance.is_some() && !spec.standalone {
            return Err(ServiceError::invalid(
                "balance",
                "applies only to standalone (prepaid) keys; add --standalone",
            ));
        }
        let credited = spec.balance.map(|b| check_money_range("balance", b)).transpose()?;
        let rate_limit = check_limit("rate limit", spec.rate_limit)?;
        let concurrent_limit = check_limit("concurrency", spec.concurrent_limit)?;
        let allowed_providers = validate::allow_list("providers", &spec.allowed_providers)?;
        let allowed_api_formats = validate::allow_list("api formats", &spec.allowed_api_formats)?;
        let allowed_models = validate::allow_list("models", &spec.allowed_models)?;
        let credited = if spec.standalone { credited } else { None };
        check_refillable(&spec.money, spec.standalone, credited)?;
        let id = Uuid::new_v4();
        let material = self.new_key_material(id)?;
        let key = ApiKey {
            id,
            user_id: owner.id,
            owner_name: owner.name.clone(),
            owner_active: owner.is_active,
            key_hash: material.hash,
            key_ciphertext: material.ciphertext,
            key_hint: material.hint,
            name,
            allowed_providers,
            allowed_api_formats,
            allowed_models,
            rate_limit,
            concurrent_limit,
            expires_at: spec.expires_at,
            is_standalone: spec.standalone,
            credited,
            used: Money::ZERO,
            auto_delete_on_expiry: spec.auto_delete_on_expiry,
            is_active: true,
            last_used_at: None,
            created_at: now,
            updated_at: now,
            money: spec.money,
            previous_secret_until: None,
        };
        let initial_credit = credited.filter(|c| !c.is_zero()).map(|amount| LedgerEntry {
            actor_key: self.credential.clone(),
            ..LedgerEntry::initial_credit(id, now, &self.actor, amount)
        });
        let audit = self.audit_record(
            "key_create",
            Some(id),
            json!({
                "name": key.name,
                "owner": owner.name,
                "standalone": key.is_standalone,
                "credited": key.credited,
                "hint": key.key_hint,
            }),
        );
        self.store.insert_key(&key, initial_credit.as_ref(), &audit).await?;
        Ok(CreatedKey { key, plaintext: material.plaintext })
    }

    /// A fresh plaintext key for the key `id`, with what is stored of it.
    pub fn new_key_material(&self, id: Uuid) -> ServiceResult<KeyMaterial> {
        let master_key = self.master_key()?;
        let plaintext = crypto::generate_key(&self.settings.key_prefix);
        Ok(KeyMaterial {
            hash: crypto::hash_key(&plaintext),
            hint: crypto::key_hint(&plaintext),
            ciphertext: master_key.seal(id, &plaintext),
            plaintext,
        })
    }

    /// Finds one key by full id, id prefix (at least 6 characters) or exact name.
    pub async fn resolve_key(&self, reference: &str) -> ServiceResult<ApiKey> {
        let reference = reference.trim();
        let shown = self.shown_reference(reference);
        let not_found = || ServiceError::NotFound { kind: "key", reference: shown.clone() };
        if let Ok(id) = Uuid::parse_str(reference) {
            return self.store.key(id).await?.ok_or_else(not_found);
        }
        let mut found = Vec::new();
        let prefix = reference.to_ascii_lowercase();
        if prefix.len() >= MIN_ID_PREFIX && prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            found = self.store.keys_by_id_prefix(&prefix, MAX_CANDIDATES).await?;
        }
        for key in self.store.keys_by_name(reference, MAX_CANDIDATES).await? {
            if !found.iter().any(|k: &ApiKey| k.id == key.id) {
                found.push(key);
            }
        }
        match found.len() {
            0 => Err(not_found()),
            1 => Ok(found.remove(0)),
            _ => Err(ServiceError::Ambiguous {
                reference: shown.clone(),
                candidates: found
                    .iter()
                    .map(|k| format!("{} ({})", k.id, crate::domain::text::sanitize(&k.name)))
                    .collect(),
            }),
        }
    }

    /// A reference as messages (and so the log) may show it: a plaintext key pasted where a
    /// reference belongs is cut down to its hint, never echoed.
    fn shown_reference(&self, reference: &str) -> String {
        if crypto::looks_like_plaintext(&self.settings.key_prefix, reference) {
            format!("{} (a plaintext key, not shown; use the key's id or name)", crypto::key_hint(reference))
        } else {
            reference.to_string()
        }
    }

    pub async fn key(&self, id: Uuid) -> ServiceResult<ApiKey> {
        self.store.key(id).await?.ok_or_else(|| ServiceError::NotFound { kind: "key", reference: id.to_string() })
    }

    pub async fn list_keys(&self, query: &KeyQuery) -> ServiceResult<Vec<ApiKey>> {
        Ok(self.store.list_keys(&self.completed(query)?).await?)
    }

    /// How many keys a list query matches, up to `cap` (see [`crate::store::Store::count_matching`]).
    pub async fn count_matching_keys(&self, query: &KeyQuery, cap: u32) -> ServiceResult<u64> {
        Ok(self.store.count_matching(&self.completed(query)?, cap).await?)
    }

    /// A list query checked, with what it left to the settings filled in: the time it is judged
    /// at and the low-balance line of keys without their own.
    fn completed(&self, query: &KeyQuery) -> ServiceResult<KeyQuery> {
        let mut query = query.clone();
        query.now.get_or_insert_with(|| self.now());
        if let Some(LowBalanceLine::KeysOwn { default }) = &mut query.low_balance {
            default.get_or_insert(self.settings.low_balance);
        }
        if let Some(filter) = &query.filter {
            validate::check_text("filter", filter, validate::MAX_KEY_NAME_CHARS)?;
        }
        Ok(query)
    }

    pub async fn count_keys(&self) -> ServiceResult<KeyCounts> {
        Ok(self.store.count_keys(self.now()).await?)
    }

    /// Applies a partial update. Every field is checked before anything is written.
    pub async fn update_key(&self, id: Uuid, patch: &KeyPatch) -> ServiceResult<ApiKey> {
        let before = self.key(id).await?;
        let mut patch = patch.clone();
        if let Some(name) = &patch.name {
            patch.name = Some(validate::name("name", name, validate::MAX_KEY_NAME_CHARS)?);
        }
        check_patch_limit("rate limit", &patch.rate_limit)?;
        check_patch_limit("concurrency", &patch.concurrent_limit)?;
        patch.allowed_providers = normalise_list_patch("providers", &patch.allowed_providers)?;
        patch.allowed_api_formats = normalise_list_patch("api formats", &patch.allowed_api_formats)?;
        patch.allowed_models = normalise_list_patch("models", &patch.allowed_models)?;
        if let (Patch::Set(new), Some(old)) = (&patch.money.refill, &before.money.refill)
            && new.same_terms(old)
        {
            // The same refill again keeps its place in the period, so it is not refilled twice.
            patch.money.refill = Patch::Keep;
        }
        if matches!(patch.money.refill, Patch::Set(_)) {
            let after = patch.applied_to(&before);
            check_refillable(&after.money, after.is_standalone, after.credited)?;
        }
        if patch.is_empty() {
            return Ok(before);
        }
        let after = patch.applied_to(&before);
        let audit = self.audit_record("key_update", Some(id), changed_fields(&before, &after));
        self.store
            .update_key(id, &patch, &audit)
            .await?
            .ok_or_else(|| ServiceError::NotFound { kind: "key", reference: id.to_string() })
    }

    pub async fn set_key_active(&self, id: Uuid, active: bool) -> ServiceResult<ApiKey> {
        let action = if active { "key_enable" } else { "key_disable" };
        let audit = self.audit_record(action, Some(id), json!({}));
        self.store
            .set_key_active(id, active, &audit)
            .await?
            .ok_or_else(|| ServiceError::NotFound { kind: "key", reference: id.to_string() })
    }

    /// Who disabled a key last and when: its newest `key_disable` (an admin) or `sweep_disable`
    /// (the expiry sweep) audit row, if it has one.
    pub async fn last_disable(&self, key_id: Uuid) -> ServiceResult<Option<AuditEntry>> {
        let mut newest: Option<AuditEntry> = None;
        for action in ["key_disable", "sweep_disable"] {
            let query = AuditQuery {
                key_ids: Some(vec![key_id]),
                action: Some(action.into()),
                limit: 1,
                ..AuditQuery::default()
            };
            let row = self.store.audit_page(&query).await?.into_iter().next();
            if let Some(row) = row.filter(|row| newest.as_ref().is_none_or(|newest| row.id > newest.id)) {
                newest = Some(row);
            }
        }
        Ok(newest)
    }

    /// Deletes the key row for good; its usage rows stay, with its id, as history.
    pub async fn purge_key(&self, id: Uuid) -> ServiceResult<()> {
        let key = self.key(id).await?;
        let audit = self.audit_record("key_purge", Some(id), json!({ "name": key.name, "hint": key.key_hint }));
        if self.store.purge_key(id, &audit).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound { kind: "key", reference: id.to_string() })
        }
    }

    /// The plaintext of a stored key. Audited (with the actor) before it is returned.
    pub async fn reveal_key(&self, id: Uuid) -> ServiceResult<String> {
        let key = self.key(id).await?;
        let plaintext = self.master_key()?.open(key.id, &key.key_ciphertext).map_err(|error| match error {
            crypto::CryptoError::NoStoredCopy(why) => ServiceError::Refused(format!(
                "key {} cannot be revealed: keytop has no copy of its plaintext ({why}); it still verifies, \
                 and only its holder has the plaintext",
                key.id
            )),
            other => ServiceError::MasterKey(format!("cannot reveal key {}: {other}", key.id)),
        })?;
        let audit = self.audit_record("key_reveal", Some(id), json!({ "hint": key.key_hint }));
        self.store.append_audit(&audit).await?;
        Ok(plaintext)
    }
}

/// `{"field": {"from": …, "to": …}}` for every field an update changed.
fn changed_fields(before: &ApiKey, after: &ApiKey) -> serde_json::Value {
    let mut changes = serde_json::Map::new();
    let mut note = |field: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            changes.insert(field.into(), json!({ "from": from, "to": to }));
        }
    };
    note("name", json!(before.name), json!(after.name));
    note("allowed_providers", json!(before.allowed_providers), json!(after.allowed_providers));
    note("allowed_api_formats", json!(before.allowed_api_formats), json!(after.allowed_api_formats));
    note("allowed_models", json!(before.allowed_models), json!(after.allowed_models));
    note("rate_limit", json!(before.rate_limit), json!(after.rate_limit));
    note("concurrent_limit", json!(before.concurrent_limit), json!(after.concurrent_limit));
    note("expires_at", json!(before.expires_at), json!(after.expires_at));
    note("auto_delete_on_expiry", json!(before.auto_delete_on_expiry), json!(after.auto_delete_on_expiry));
    note("budget", json!(before.money.budget), json!(after.money.budget));
    note("refill", json!(before.money.refill), json!(after.money.refill));
    note("low_balance", json!(before.money.low_balance), json!(after.money.low_balance));
    serde_json::Value::Object(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The newest of an admin's disables and the sweep's tells who disabled the key.
    #[tokio::test]
    async fn the_last_disable_is_the_sweeps_or_an_admins_whichever_came_last() {
        let service = crate::service::in_memory_service().await;
        service.add_user("alice").await.unwrap();
        let spec = NewKeySpec {
            expires_at: Some(service.now() + chrono::Duration::milliseconds(5)),
            ..NewKeySpec::new("alice")
        };
        let key = service.create_key(&spec).await.unwrap().key;
        assert_eq!(service.last_disable(key.id).await.unwrap(), None);
        service.set_key_active(key.id, false).await.unwrap();
        service.set_key_active(key.id, true).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(service.sweep(false).await.unwrap().disabled_count, 1);
        assert_eq!(service.last_disable(key.id).await.unwrap().unwrap().action, "sweep_disable");
        service.set_key_active(key.id, true).await.unwrap();
        service.set_key_active(key.id, false).await.unwrap();
        assert_eq!(service.last_disable(key.id).await.unwrap().unwrap().action, "key_disable");
    }
}
