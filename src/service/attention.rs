//! What needs an admin's attention now: balances run low, keys about to expire, and what the
//! sweep just did. Each list is bounded, so the answer stays quick however large the fleet.

use chrono::TimeDelta;

use super::{KeyService, ServiceResult};
use crate::domain::{ApiKey, AuditEntry, AuditQuery};

/// How far ahead expiring keys are listed.
pub const EXPIRING_WITHIN: TimeDelta = TimeDelta::days(7);
/// How far back the sweep's work is listed.
pub const SWEPT_WITHIN: TimeDelta = TimeDelta::hours(24);
/// The audit actions of the sweep, one per thing it does to a key.
const SWEEP_ACTIONS: [&str; 2] = ["sweep_disable", "sweep_delete"];

#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    /// Enabled prepaid keys with nothing left or under their low-balance line (the config's
    /// `alerts.low_balance` for keys without one), least remaining first.
    pub low_balance: Vec<ApiKey>,
    /// Enabled keys expiring within [`EXPIRING_WITHIN`], soonest first.
    pub expiring: Vec<ApiKey>,
    /// The sweep's audit rows of the last [`SWEPT_WITHIN`] (keys disabled or deleted), newest
    /// first.
    pub swept: Vec<AuditEntry>,
    /// The most rows each list holds: a list this long may have more.
    pub limit: u32,
}

impl KeyService {
    /// What needs attention now, each list at most `limit` rows.
    pub async fn attention(&self, limit: u32) -> ServiceResult<Attention> {
        let now = self.now();
        let swept = |action: &str| AuditQuery {
            action: Some(action.to_string()),
            since: Some(now - SWEPT_WITHIN),
            limit,
            ..AuditQuery::default()
        };
        let (disabled, deleted) = (swept(SWEEP_ACTIONS[0]), swept(SWEEP_ACTIONS[1]));
        let (low_balance, expiring, disabled, deleted) = tokio::try_join!(
            self.store.low_balance_keys(self.settings.low_balance, limit),
            self.store.expiring_keys(now, now + EXPIRING_WITHIN, limit),
            self.store.audit_page(&disabled),
            self.store.audit_page(&deleted),
        )?;
        let mut swept: Vec<AuditEntry> = disabled.into_iter().chain(deleted).collect();
        swept.sort_by_key(|entry| std::cmp::Reverse(entry.id));
        swept.truncate(limit as usize);
        Ok(Attention { low_balance, expiring, swept, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::domain::Money;
    use crate::service::{NewKeySpec, ServiceSettings};

    #[tokio::test]
    async fn lists_low_balances_near_expiries_and_the_sweeps_work_of_the_last_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}", dir.path().join("k.db").display())).await.unwrap();
        let settings = ServiceSettings { low_balance: Money::from_usd(5), ..ServiceSettings::default() };
        let service = KeyService::new(store, Ok(MasterKey::generate().0), settings, "admin".into());
        service.add_user("alice").await.unwrap();
        let create = |name: &str, balance: Option<i64>, expires_in: Option<TimeDelta>| NewKeySpec {
            name: Some(name.into()),
            standalone: balance.is_some(),
            balance: balance.map(Money::from_usd),
            expires_at: expires_in.map(|delta| service.now() + delta),
            auto_delete_on_expiry: Some(name == "gone"),
            ..NewKeySpec::new("alice")
        };
        for spec in [
            create("low", Some(3), None),
            create("plenty", Some(50), None),
            create("soon", None, Some(TimeDelta::days(2))),
            create("later", None, Some(TimeDelta::days(30))),
            create("off", None, Some(TimeDelta::milliseconds(-1))),
            create("gone", None, Some(TimeDelta::milliseconds(-1))),
        ] {
            service.create_key(&spec).await.unwrap();
        }
        service.sweep(false).await.unwrap();

        let attention = service.attention(10).await.unwrap();
        let names = |keys: &[ApiKey]| keys.iter().map(|key| key.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&attention.low_balance), ["low"]);
        assert_eq!(names(&attention.expiring), ["soon"]);
        let mut swept: Vec<&str> = attention.swept.iter().map(|entry| entry.action.as_str()).collect();
        swept.sort();
        assert_eq!(swept, ["sweep_delete", "sweep_disable"]);
        assert_eq!(service.attention(1).await.unwrap().swept.len(), 1, "bounded");
    }
}
