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
use crate::store::changes::Changes;
use crate::store::{StoreError, SweepReport};

use super::event::{CreatedSecret, Event, Outcome, UserWrite};
use super::screens::audit::AuditFilter;
use super::screens::keys::DetailData;
use super::screens::usage::{ATTENTION_ROWS, TOP_SPENDERS, UsageData};
use super::screens::users::UserData;
use super::state::{RequestId, TopUpRequest};

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
    /// One page of users by name, their spend over `days`.
    Users {
        filter: Option<String>,
        after: Option<String>,
        days: u32,
        limit: u32,
    },
    /// One user with their chart over `days` and their keys.
    User {
        name: String,
        days: u32,
    },
    AddUser(String),
    SetUserActive {
        name: String,
        active: bool,
    },
    /// Every enabled key of the user, at once.
    DisableUserKeys {
        name: String,
    },
    /// A key and its owner, a user who does not exist yet.
    CreateWithOwner(Box<NewKeySpec>),
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

impl Call {
    /// Whether the call may write to the database (a reveal writes its audit row; a failed edit
    /// may have saved its fields before its credit).
    fn writes(&self) -> bool {
        match self {
            Call::TopUp(_)
            | Call::Create(_)
            | Call::Update { .. }
            | Call::SetActive { .. }
            | Call::Purge { .. }
            | Call::Reveal { .. }
            | Call::Roll { .. }
            | Call::SweepAsShown(_)
            | Call::AddUser(_)
            | Call::SetUserActive { .. }
            | Call::DisableUserKeys { .. }
            | Call::CreateWithOwner(_)
            | Call::Bulk { .. } => true,
            Call::Sweep { dry_run } => !dry_run,
            Call::ListKeys(_)
            | Call::CountMatches(_)
            | Call::CountKeys
            | Call::Detail { .. }
            | Call::Usage { .. }
            | Call::Users { .. }
            | Call::User { .. }
            | Call::MarkMatches(_)
            | Call::RecentSpend(_)
            | Call::Audit { .. } => false,
        }
    }
}

/// Runs effects that do not need the terminal.
#[derive(Clone)]
pub struct Runner {
    service: KeyService,
    events: UnboundedSender<Event>,
    /// Where this TUI's writes are published, so the other TUIs of the process see them at once.
    changes: Option<Changes>,
}

impl Runner {
    pub fn new(service: KeyService, events: UnboundedSender<Event>, changes: Option<Changes>) -> Runner {
        Runner { service, events, changes }
    }

    pub fn spawn_call(&self, request: RequestId, call: Call) {
        let runner = self.clone();
        tokio::spawn(async move {
            let writes = call.writes();
            let outcome = runner.call(call).await;
            if let Some(changes) = runner.changes.as_ref().filter(|_| writes) {
                changes.publish();
            }
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
            Call::Create(spec) => match self.owner_exists(&spec.owner).await {
                Ok(false) => Outcome::OwnerMissing(spec),
                Ok(true) => Outcome::Created(self.shown(self.create(&spec).await)),
                Err(error) => Outcome::Created(self.shown(Err(error))),
            },
            Call::CreateWithOwner(spec) => Outcome::Created(self.shown(self.create_with_owner(&spec).await)),
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
            Call::Users { filter, after, days, limit } => Outcome::Users(
                self.shown(service.user_overviews(filter.as_deref(), after.as_deref(), limit, days).await),
            ),
            Call::User { name, days } => Outcome::User(self.shown(self.user(&name, days).await.map(Box::new))),
            Call::AddUser(name) => {
                Outcome::UserWritten(self.shown(service.add_user(&name).await.map(UserWrite::Added)))
            }
            Call::SetUserActive { name, active } => {
                Outcome::UserWritten(self.shown(service.set_user_active(&name, active).await.map(UserWrite::SetActive)))
            }
            Call::DisableUserKeys { name } => Outcome::UserWritten(self.shown(
                service.disable_user_keys(&name).await.map(|keys| UserWrite::KeysDisabled { name, count: keys.len() }),
            )),
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

    async fn owner_exists(&self, name: &str) -> ServiceResult<bool> {
        match self.service.user(name).await {
            Ok(_) => Ok(true),
            Err(ServiceError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn create(&self, spec: &NewKeySpec) -> ServiceResult<CreatedSecret> {
        let created = self.service.create_key(spec).await?;
        Ok(CreatedSecret { key: created.key, plaintext: created.plaintext })
    }

    /// Adds the owner, then creates the key. If the key then fails, the user stays: the dialog
    /// is still open, and submitting it again creates the key for them.
    async fn create_with_owner(&self, spec: &NewKeySpec) -> ServiceResult<CreatedSecret> {
        self.service.add_user(&spec.owner).await?;
        self.create(spec).await
    }

    async fn user(&self, name: &str, days: u32) -> ServiceResult<UserData> {
        let (stats, detail) =
            tokio::try_join!(self.service.user_stats(name, days), self.service.user_detail(name, days))?;
        Ok(UserData { stats, detail })
    }

    async fn usage(&self, days: u32) -> ServiceResult<UsageData> {
        let (fleet, top_keys, top_users, attention) = tokio::try_join!(
            self.service.fleet_stats(days),
            self.service.top_spenders(SpenderKind::Key, days, TOP_SPENDERS),
            self.service.top_spenders(SpenderKind::User, days, TOP_SPENDERS),
            self.service.attention(ATTENTION_ROWS),
        )?;
        Ok(UsageData { fleet, top_keys, top_users, attention })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceSettings;

    /// Runs `call` on a runner publishing to `changes`, and waits for its answer.
    async fn answer(call: Call, changes: &Changes) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}", dir.path().join("k.db").display())).await.unwrap();
        let service = KeyService::new(store, Err("unused".into()), ServiceSettings::default(), "admin".into());
        let (events, mut answers) = tokio::sync::mpsc::unbounded_channel();
        Runner::new(service, events, Some(changes.clone())).spawn_call(RequestId(1), call);
        while !matches!(answers.recv().await, Some(Event::Done(..))) {}
    }

    #[tokio::test]
    async fn a_write_is_published_to_the_process_before_its_answer_arrives() {
        let changes = Changes::new();
        let mut others = changes.subscribe();
        answer(Call::Sweep { dry_run: false }, &changes).await;
        assert!(others.has_changed().unwrap(), "the other TUIs were not told");
        others.mark_unchanged();
        answer(Call::Sweep { dry_run: true }, &changes).await;
        answer(Call::CountKeys, &changes).await;
        assert!(!others.has_changed().unwrap(), "reads are no news");
    }
}
