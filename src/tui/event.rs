//! What `update` reacts to: keys, resizes, timers, and the answers of effects.

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;
use uuid::Uuid;

use crate::domain::{ApiKey, AuditEntry, KeyCounts, Money, User, UserOverview};
use crate::service::{BulkReport, MarkedKey, NewKeySpec, TopUp};
use crate::store::SweepReport;

use super::screens::keys::DetailData;
use super::screens::usage::UsageData;
use super::screens::users::UserData;
use super::state::RequestId;

#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    /// Text pasted into the terminal (bracketed paste).
    Paste(String),
    Resize(u16, u16),
    /// A second passed: relative times and toasts move on.
    Tick(DateTime<Utc>),
    RefreshDue,
    /// The database changed (here or in another process): what is on screen is queried again.
    DataChanged,
    /// Who is connected to the same `keytop serve` now, this session included.
    Presence(Vec<String>),
    SweepDue,
    /// SIGTERM or SIGHUP: the terminal or the session is going away; quit like `q`.
    Terminated,
    /// The filter box has been still for the debounce delay since edit number `edit`.
    FilterSettled {
        edit: u64,
    },
    /// An effect finished. Boxed: answers carry whole keys, far larger than a key press.
    Done(RequestId, Box<Outcome>),
    /// A service call could not reach the database (sent just before that call's `Done`).
    ConnectionLost(String),
    /// The retry timer of outage attempt `attempt` ran out.
    RetryDue {
        attempt: u32,
    },
}

/// The result of an effect. Errors arrive as the service's message, ready to show.
#[derive(Debug)]
pub enum Outcome {
    Page(Result<Vec<ApiKey>, String>),
    Counts(Result<KeyCounts, String>),
    Matches(Result<u64, String>),
    Detail(Result<Box<DetailData>, String>),
    ToppedUp(Result<TopUp, String>),
    Created(Result<CreatedSecret, String>),
    Updated(Result<ApiKey, String>),
    Purged(Result<Uuid, String>),
    Revealed(Result<CreatedSecret, String>),
    /// A key with its new secret, after a roll.
    Rolled(Result<CreatedSecret, String>),
    Swept {
        dry_run: bool,
        result: Result<SweepReport, String>,
    },
    /// A confirmed sweep did nothing, because it would no longer do what its dry run showed:
    /// this is the new dry run.
    SweepChanged(SweepReport),
    Usage(Result<Box<UsageData>, String>),
    Users(Result<Vec<UserOverview>, String>),
    User(Result<Box<UserData>, String>),
    UserWritten(Result<UserWrite, String>),
    /// A key was not created because its owner does not exist (nothing was written).
    OwnerMissing(Box<NewKeySpec>),
    Audit(Result<Vec<AuditEntry>, String>),
    /// What keys of the list spent in the last 30 days.
    RecentSpend(Result<Vec<(Uuid, Money)>, String>),
    /// The keys a list query matches, to mark, and whether more matched than were taken.
    Marked(Result<(Vec<MarkedKey>, bool), String>),
    /// A bulk action: its past tense ("disabled") and what it did to each key.
    Bulk {
        done: &'static str,
        result: Result<BulkReport, String>,
    },
}

/// A change to a user, done.
#[derive(Debug)]
pub enum UserWrite {
    Added(User),
    SetActive(User),
    KeysDisabled { name: String, count: usize },
}

/// A key with its plaintext (after create or reveal). The plaintext never reaches `Debug`.
pub struct CreatedSecret {
    pub key: ApiKey,
    pub plaintext: String,
}

impl std::fmt::Debug for CreatedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedSecret").field("key", &self.key).field("plaintext", &"<redacted>").finish()
    }
}
