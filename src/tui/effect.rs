//! Effects: what `update` asks the outside world to do. Service calls run in tokio tasks over a
//! clone of the service and come back as `Event::Done` tagged with their request id, so the loop
//! never waits for the database.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use crate::domain::{ApiKey, AuditEntry, AuditQuery, KeyPatch, KeyQuery, Money, SpenderKind};
use crate::service::{
    BulkAction, ConfirmedSweep, DEFAULT_GRACE, KeyService, MarkedKey, NewKeySpec, ServiceError, ServiceResult,
};
use crate::store::{StoreError, SweepReport};

use super::event::{CreatedSecret, Event, Outcome};
use super::screens::audit::AuditFilter;
use super::screens::usage::{TOP_SPENDERS, UsageData};
use super::state::{DetailData, RequestId, TopUpRequest};

/// How many ledger rows the detail shows.
pub const DETAIL_LEDGER_ROWS: u32 = 5;
/// How many audit rows the detail's history shows.
pub const DETAIL_HISTORY_ROWS: u32 = 5;
/// The ledger note of a credit set in the edit form.
const CREDIT_NOTE: &str = "credit set in the edit form";
/// The most matches the list's title counts; past it, the title says "10,000+".
pub const MATCH_COUNT_CAP: u32 = 10_000;
/// How long the filter box must be still before the list reloads.
pub const FILTER_DEBOUNCE: Duration = Duration::from_millis(150);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A service call whose answer comes back as `Event::Done(request, …)`.
    Call(RequestId, Call),
    /// Send `Event::FilterSettled { edit }` after the debounce delay.
    DebounceFilter { edit: u64 },
    /// Put text on the clipboard of the admin's terminal (OSC 52, so it works over SSH).
    CopyToClipboard(String),
    /// Send `Event::RetryDue { attempt }` after `delay`.
    RetryAfter { delay: Duration, attempt: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    ListKeys(KeyQuery),
    /// How many keys the list's query matches, up to [`MATCH_COUNT_CAP`].
    CountMatches(KeyQuery),
    CountKeys,
    Detail {
        key_id: Uuid,
        days: u32,
    },
    TopUp(TopUpRequest),
    Create(Box<NewKeySpec>),
    /// An edit: the patch, and `Some(credited)` when the credited total of a prepaid key changes
    /// (`Some(None)` = unlimited), which goes through the ledger.
    Update {
        key_id: Uuid,
        patch: Box<KeyPatch>,
        credit: Option<Option<Money>>,
    },
    SetActive {
        key_id: Uuid,
        active: bool,
    },
    Purge {
        key_id: Uuid,
    },
    Reveal {
        key_id: Uuid,
    },
    /// A new secret, the old one valid for [`DEFAULT_GRACE`].
    Roll {
        key_id: Uuid,
    },
    Sweep {
        dry_run: bool,
    },
    /// The sweep an admin confirmed, if it still does what this dry run showed.
    SweepAsShown(Box<SweepReport>),
    /// The usage screen over the last `days` days.
    Usage {
        days: u32,
    },
    /// The keys a list query matches, to mark them.
    MarkMatches(KeyQuery),
    /// What these keys spent in the last 30 days.
    RecentSpend(Vec<Uuid>),
    /// One action on each of these keys.
    Bulk {
        keys: Vec<MarkedKey>,
        action: BulkAction,
    },
    /// One page of the audit log.
    Audit {
        filter: AuditFilter,
        before_id: Option<i64>,
        limit: u32,
    },
}

/// Runs effects that do not need the terminal.
#[derive(Clone)]
pub struct Runner {
    service: KeyService,
    events: UnboundedSender<Event>,
}

impl Runner {
    pub fn new(service: KeyService, events: UnboundedSender<Event>) -> Runner {
        Runner { service, events }
    }

    pub fn spawn_call(&self, request: RequestId, call: Call) {
        let runner = self.clone();
        tokio::spawn(async move {
            let outcome = runner.call(call).await;
            // The loop may have quit meanwhile; then nobody needs the answer.
            let _ = runner.events.send(Event::Done(request, Box::new(outcome)));
        });
    }

    pub fn spawn_retry(&self, delay: Duration, attempt: u32) {
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(Event::RetryDue { attempt });
        });
    }

    pub fn spawn_debounce(&self, edit: u64) {
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FILTER_DEBOUNCE).await;
            let _ = events.send(Event::FilterSettled { edit });
        });
    }

    async fn call(&self, call: Call) -> Outcome {
        let service = &self.service;
        match call {
            Call::ListKeys(query) => Outcome::Page(self.shown(service.list_keys(&query).await)),
            Call::CountKeys => Outcome::Counts(self.shown(service.count_keys().await)),
            Call::CountMatches(query) => {
                Outcome::Matches(self.shown(service.count_matching_keys(&query, MATCH_COUNT_CAP).await))
            }
            Call::Detail { key_id, days } => Outcome::Detail(self.shown(self.detail(key_id, days).await.map(Box::new))),
            Call::TopUp(request) => Outcome::ToppedUp(
                self.shown(
                    service
                        .top_up(request.key_id, request.amount, request.note.as_deref(), Some(&request.idempotency_key))
                        .await,
                ),
            ),
            Call::Create(spec) => Outcome::Created(
                self.shown(
                    service
                        .create_key(&spec)
                        .await
                        .map(|created| CreatedSecret { key: created.key, plaintext: created.plaintext }),
                ),
            ),
            Call::Update { key_id, patch, credit } => {
                Outcome::Updated(self.shown(self.edit(key_id, &patch, credit).await))
            }
            Call::SetActive { key_id, active } => {
                Outcome::Updated(self.shown(service.set_key_active(key_id, active).await))
            }
            Call::Purge { key_id } => Outcome::Purged(self.shown(service.purge_key(key_id).await.map(|()| key_id))),
            Call::Reveal { key_id } => Outcome::Revealed(self.shown(self.reveal(key_id).await)),
            Call::Roll { key_id } => Outcome::Rolled(
                self.shown(
                    service
                        .roll_key(key_id, DEFAULT_GRACE)
                        .await
                        .map(|rolled| CreatedSecret { key: rolled.key, plaintext: rolled.plaintext }),
                ),
            ),
            Call::Sweep { dry_run } => Outcome::Swept { dry_run, result: self.shown(service.sweep(dry_run).await) },
            Call::SweepAsShown(shown) => match self.shown(service.sweep_as_shown(&shown).await) {
                Ok(ConfirmedSweep::Swept(report)) => Outcome::Swept { dry_run: false, result: Ok(report) },
                Ok(ConfirmedSweep::Changed(report)) => Outcome::SweepChanged(report),
                Err(message) => Outcome::Swept { dry_run: false, result: Err(message) },
            },
            Call::RecentSpend(key_ids) => Outcome::RecentSpend(self.shown(service.recent_spend(&key_ids).await)),
            Call::MarkMatches(query) => Outcome::Marked(self.shown(service.matching_keys(&query).await)),
            Call::Bulk { keys, action } => {
                Outcome::Bulk { done: action.done(), result: self.shown(service.bulk(&keys, &action).await) }
            }
            Call::Usage { days } => Outcome::Usage(self.shown(self.usage(days).await.map(Box::new))),
            Call::Audit { filter, before_id, limit } => {
                Outcome::Audit(self.shown(self.audit_page(filter, before_id, limit).await))
            }
        }
    }

    /// Errors become the message the admin reads; the details also go to the log. An
    /// unreachable database is also reported on its own, ahead of the answer, for the banner.
    fn shown<T>(&self, result: ServiceResult<T>) -> Result<T, String> {
        result.map_err(|error| {
            tracing::warn!(%error, "service call failed");
            if is_unreachable(&error) {
                let _ = self.events.send(Event::ConnectionLost(error.to_string()));
            }
            error.to_string()
        })
    }

    async fn detail(&self, key_id: Uuid, days: u32) -> ServiceResult<DetailData> {
        let history = AuditQuery { key_ids: Some(vec![key_id]), limit: DETAIL_HISTORY_ROWS, ..AuditQuery::default() };
        let (key, stats, mut ledger, admission, history) = tokio::try_join!(
            self.service.key(key_id),
            self.service.stats(key_id, days),
            self.service.ledger(key_id, Some(DETAIL_LEDGER_ROWS)),
            self.service.admission(key_id),
            self.service.audit_page(&history),
        )?;
        ledger.reverse();
        let money = self.service.money_view(&key).await?;
        let disabled_by = if key.is_active { None } else { self.service.last_disable(key_id).await? };
        Ok(DetailData { key, stats, ledger, money, admission, history, disabled_by })
    }

    /// Saves an edit: the fields, then a changed credit as a ledger entry. Both are idempotent, so
    /// if the second fails the admin can submit the still open form again.
    async fn edit(&self, key_id: Uuid, patch: &KeyPatch, credit: Option<Option<Money>>) -> ServiceResult<ApiKey> {
        let key = self.service.update_key(key_id, patch).await?;
        let Some(credited) = credit else { return Ok(key) };
        self.service.set_credit(key_id, credited, Some(CREDIT_NOTE)).await?;
        self.service.key(key_id).await
    }

    async fn usage(&self, days: u32) -> ServiceResult<UsageData> {
        let (fleet, top_keys, top_users) = tokio::try_join!(
            self.service.fleet_stats(days),
            self.service.top_spenders(SpenderKind::Key, days, TOP_SPENDERS),
            self.service.top_spenders(SpenderKind::User, days, TOP_SPENDERS),
        )?;
        Ok(UsageData { fleet, top_keys, top_users })
    }

    /// A page of the audit log; a key named in the filter is looked up first.
    async fn audit_page(
        &self,
        filter: AuditFilter,
        before_id: Option<i64>,
        limit: u32,
    ) -> ServiceResult<Vec<AuditEntry>> {
        let key_ids = match &filter.key {
            Some(reference) => Some(vec![self.service.resolve_key(reference).await?.id]),
            None => None,
        };
        let query = AuditQuery { actor: filter.actor, action: filter.action, key_ids, since: None, before_id, limit };
        self.service.audit_page(&query).await
    }

    async fn reveal(&self, key_id: Uuid) -> ServiceResult<CreatedSecret> {
        let plaintext = self.service.reveal_key(key_id).await?;
        let key = self.service.key(key_id).await?;
        Ok(CreatedSecret { key, plaintext })
    }
}

/// Whether an error means the database could not be reached (rather than a refusal).
fn is_unreachable(error: &ServiceError) -> bool {
    matches!(error, ServiceError::Store(StoreError::Unavailable { .. }))
}
