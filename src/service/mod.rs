//! `KeyService`: every operation of keytop, over a `Store`, the master key and a clock.
//!
//! The CLI and the TUI call only this layer. It validates input, resolves references, builds
//! audit records, and turns store outcomes into clear errors.

mod alerts;
mod attention;
mod balance;
mod bulk;
mod error;
mod fleet;
mod import;
mod keys;
mod plan;
mod rekey;
mod rotation;
mod sweep;
mod usage;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::crypto::MasterKey;
use crate::domain::{AuditEntry, Clock, Money, SystemClock, User, UserSummary, plan::DEFAULT_LOW_BALANCE, validate};
use crate::store::alerts::AlertScope;
use crate::store::plan::RefillPeriods;
use crate::store::{Actor, AuditRecord, BulkLoad, Store, SweepReport};

pub use alerts::AlertCommand;
pub use attention::{Attention, EXPIRING_WITHIN, SWEPT_WITHIN};
pub use balance::TopUp;
pub use bulk::{BulkAction, BulkFailure, BulkReport, MAX_BULK_KEYS, MarkedKey, keys_word};
pub use error::{ServiceError, ServiceResult};
pub use fleet::{FleetStats, MAX_PAGE, Ranked, TopSpenders, USER_KEYS_SHOWN, UserDetail, UserStats};
pub use keys::{CreatedKey, KeyMaterial, NewKeySpec};
pub use plan::MoneyView;
pub use rotation::{DEFAULT_GRACE, MAX_GRACE, parse_grace};
pub use sweep::ConfirmedSweep;
pub use usage::{AdmissionCheck, DenyReason, KeyStats, UsageInput, UsageSeries, VerifyDecision, VerifyRequest};

/// Settings of the service that come from the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    /// Prefix of generated keys (`sk` gives `sk-…`).
    pub key_prefix: String,
    /// Whether the sweep deletes expired keys whose own flag says "follow the global policy".
    pub global_auto_delete: bool,
    /// The low-balance line of keys without their own.
    pub low_balance: Money,
    /// What runs for each alert; `None`: alerts are off, and nothing checks for them.
    pub alert_command: Option<AlertCommand>,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            key_prefix: "sk".into(),
            global_auto_delete: false,
            low_balance: DEFAULT_LOW_BALANCE,
            alert_command: None,
        }
    }
}

/// The master key, or why it is unavailable. Only sealing and revealing need it, so a missing or
/// wrong master key breaks those two and nothing else.
pub type MasterKeySource = Result<MasterKey, String>;

#[derive(Clone)]
pub struct KeyService {
    store: Arc<dyn Store>,
    master_key: Arc<MasterKeySource>,
    clock: Arc<dyn Clock>,
    settings: ServiceSettings,
    actor: String,
    /// What proves who the actor is (an SSH key's fingerprint), kept in every audit row because
    /// the name can be edited and this cannot.
    credential: Option<String>,
    /// Shared by the copies of one service (`acting_for`), so one process waits for all its alerts.
    alerts: Option<Arc<alerts::AlertRunner>>,
}

impl KeyService {
    pub fn new(store: Arc<dyn Store>, master_key: MasterKeySource, settings: ServiceSettings, actor: String) -> Self {
        let alerts = settings.alert_command.as_ref().and_then(alerts::AlertRunner::new).map(Arc::new);
        KeyService {
            store,
            master_key: Arc::new(master_key),
            clock: Arc::new(SystemClock),
            settings,
            actor,
            credential: None,
            alerts,
        }
    }

    /// The same service acting for someone else: each admin of `keytop serve`, named by their key.
    pub fn acting_for(&self, actor: String, credential: String) -> KeyService {
        KeyService { actor, credential: Some(credential), ..self.clone() }
    }

    /// Replaces the clock (tests move time with it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn settings(&self) -> &ServiceSettings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The database as shown to admins (no password).
    pub fn describe_database(&self) -> String {
        self.store.describe()
    }

    fn master_key(&self) -> ServiceResult<&MasterKey> {
        self.master_key.as_ref().as_ref().map_err(|reason| ServiceError::MasterKey(reason.clone()))
    }

    fn audit_record(&self, action: &str, api_key_id: Option<Uuid>, details: Value) -> AuditRecord {
        AuditRecord {
            at: self.now(),
            actor: self.actor.clone(),
            actor_key: self.credential.clone(),
            action: action.into(),
            api_key_id,
            details,
        }
    }

    // Users

    pub async fn add_user(&self, name: &str) -> ServiceResult<User> {
        let name = validate::name("user name", name, validate::MAX_USER_NAME_CHARS)?;
        let user = User { id: Uuid::new_v4(), name, is_active: true, created_at: self.now() };
        let audit = self.audit_record("user_add", None, serde_json::json!({ "user": user.name, "user_id": user.id }));
        self.store.insert_user(&user, &audit).await.map_err(|error| match error {
            crate::store::StoreError::Conflict(_) => {
                ServiceError::Refused(format!("a user named {:?} already exists", user.name))
            }
            other => other.into(),
        })?;
        Ok(user)
    }

    pub async fn users(&self) -> ServiceResult<Vec<UserSummary>> {
        Ok(self.store.users().await?)
    }

    pub async fn user(&self, name: &str) -> ServiceResult<User> {
        self.store
            .user_by_name(name.trim())
            .await?
            .ok_or_else(|| ServiceError::NotFound { kind: "user", reference: name.to_string() })
    }

    pub async fn set_user_active(&self, name: &str, active: bool) -> ServiceResult<User> {
        let mut user = self.user(name).await?;
        let action = if active { "user_enable" } else { "user_disable" };
        let audit = self.audit_record(action, None, serde_json::json!({ "user": user.name, "user_id": user.id }));
        if !self.store.set_user_active(user.id, active, &audit).await? {
            return Err(ServiceError::NotFound { kind: "user", reference: name.to_string() });
        }
        user.is_active = active;
        Ok(user)
    }

    /// Disables every enabled key of a user at once, with an audit row per key; all or none.
    /// Returns the keys disabled.
    pub async fn disable_user_keys(&self, name: &str) -> ServiceResult<Vec<Uuid>> {
        let user = self.user(name).await?;
        let audit = self.audit_record("key_disable", None, serde_json::json!({ "all_keys_of": user.name }));
        Ok(self.store.disable_user_keys(user.id, &audit).await?)
    }

    // Sweep and audit

    /// One sweep: expired keys disabled or deleted under the global policy of the settings, then
    /// the refills that are due, then the alerts of every key (catching lines crossed by writers
    /// that do not check, and arming again those whose balance came back). Refills need no sweep
    /// lock (each lands once however many processes sweep), so they run even when another
    /// process holds it.
    pub async fn sweep(&self, dry_run: bool) -> ServiceResult<SweepReport> {
        let now = self.now();
        let actor = Actor { name: &self.actor, key: self.credential.as_deref() };
        let mut report = self.store.sweep(now, self.settings.global_auto_delete, dry_run, actor).await?;
        let refills = self.store.refill_due(&RefillPeriods::at(now), actor, dry_run).await?;
        report.refilled = refills.refilled;
        report.refilled_keys = refills.keys;
        if !dry_run {
            self.raise_alerts(AlertScope::All).await;
        }
        Ok(report)
    }

    /// Loads generated or imported rows in bulk, with one audit row describing the load.
    pub async fn bulk_load(&self, batch: &BulkLoad, what: &str) -> ServiceResult<()> {
        let details = serde_json::json!({
            "what": what,
            "users": batch.users.len(),
            "keys": batch.keys.len(),
            "usage_rows": batch.usage.len(),
        });
        let audit = self.audit_record("bulk_load", None, details);
        Ok(self.store.bulk_load(batch, &audit).await?)
    }

    /// After a bulk load: see [`crate::store::Store::refresh_statistics`].
    pub async fn refresh_statistics(&self) -> ServiceResult<()> {
        Ok(self.store.refresh_statistics().await?)
    }

    pub async fn audit(&self, key_id: Option<Uuid>, limit: u32) -> ServiceResult<Vec<AuditEntry>> {
        Ok(self.store.audit(key_id, limit).await?)
    }
}

/// A service over a new in-memory database, acting as `t`.
#[cfg(test)]
pub(crate) async fn in_memory_service() -> KeyService {
    let store = crate::store::open("sqlite::memory:").await.unwrap();
    KeyService::new(store, Ok(crate::crypto::MasterKey::generate().0), ServiceSettings::default(), "t".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_service_acting_for_an_admin_names_them_and_keeps_their_key_in_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}", dir.path().join("k.db").display())).await.unwrap();
        let server = KeyService::new(store, Err("unused".into()), ServiceSettings::default(), "keytop-serve".into());
        let alice = server.acting_for("alice".into(), "SHA256:abc".into());
        alice.add_user("bob").await.unwrap();
        server.add_user("carol").await.unwrap();
        let audit = server.audit(None, 10).await.unwrap();
        let row = |user: &str| audit.iter().find(|row| row.details.contains(user)).unwrap();
        assert_eq!(row("bob").actor, "alice");
        assert_eq!(row("bob").actor_key.as_deref(), Some("SHA256:abc"));
        assert_eq!(row("carol").actor, "keytop-serve");
        assert_eq!(row("carol").actor_key, None);
    }
}
