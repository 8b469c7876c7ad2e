//! Everything the TUI shows, as plain data. `update` changes it; views only read it.

use chrono::{DateTime, Utc};
use tui_input::Input;
use uuid::Uuid;

use crate::domain::{ApiKey, KeyCounts, Money};
use crate::service::{BulkAction, MarkedKey, NewKeySpec};
use crate::store::SweepReport;

use super::forms::Form;
use super::keymap::{Context, Keymap};
use super::screens::Tab;
use super::screens::audit::AuditScreen;
use super::screens::keys::{Detail, KeyList, Screen};
use super::screens::usage::UsageScreen;
use super::screens::users::UsersScreen;
use super::theme::Theme;

/// Tags a request so that an answer to an outdated request can be recognised and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Settings fixed for the session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub read_only: bool,
    /// The database as shown to admins (no password).
    pub database: String,
    pub keymap: Keymap,
    pub theme: Theme,
    pub confirm_topup_at: Money,
    pub refresh_every: std::time::Duration,
    /// Database changes reach the screen as they happen; auto-refresh is then only a fallback.
    pub live_updates: bool,
    /// `None` when the sweep timer is off (disabled in the config, or read-only).
    pub sweep_every: Option<std::time::Duration>,
    /// Unique to this run of the TUI: with a counter, it names each top-up dialog's submission.
    pub instance: Uuid,
}

#[derive(Debug, Clone)]
pub struct State {
    pub session: Session,
    /// The clock of the views ("in 3d", "2h ago"), advanced by ticks.
    pub now: DateTime<Utc>,
    /// Terminal size in cells.
    pub size: (u16, u16),
    /// The screen open (keys, usage…); `screen` is where the keys screen is at.
    pub tab: Tab,
    pub usage: UsageScreen,
    pub users: UsersScreen,
    pub audit: AuditScreen,
    pub screen: Screen,
    pub list: KeyList,
    pub detail: Detail,
    /// Dialogs over the screen; the last one has the keyboard.
    pub modals: Vec<Modal>,
    /// The `/` box while it is open.
    pub filter_box: Option<Input>,
    pub counts: Option<KeyCounts>,
    pub auto_refresh: bool,
    pub last_sweep: Option<SweepResult>,
    /// What the sweeps of this session changed, all runs together.
    pub sweep_totals: SweepTotals,
    /// The latest sweep that changed any key: the report worth opening again.
    pub last_changing_sweep: Option<SweepResult>,
    pub toast: Option<Toast>,
    /// Writes in flight (top-up, create…), for the busy mark.
    pub writes_in_flight: usize,
    /// The database cannot be reached: a banner says so and when the next retry runs.
    pub outage: Option<Outage>,
    /// The admins connected to the same `keytop serve` (empty for a local TUI).
    pub connected: Vec<String>,
    pub quit: bool,
    next_request: u64,
}

impl State {
    pub fn new(session: Session, now: DateTime<Utc>, size: (u16, u16)) -> State {
        State {
            session,
            now,
            size,
            tab: Tab::Keys,
            usage: UsageScreen::default(),
            users: UsersScreen::default(),
            audit: AuditScreen::default(),
            screen: Screen::List,
            list: KeyList::default(),
            detail: Detail::default(),
            modals: Vec::new(),
            filter_box: None,
            counts: None,
            auto_refresh: false,
            last_sweep: None,
            sweep_totals: SweepTotals::default(),
            last_changing_sweep: None,
            toast: None,
            writes_in_flight: 0,
            outage: None,
            connected: Vec::new(),
            quit: false,
            next_request: 0,
        }
    }

    pub fn next_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Whether anything is being fetched or written: the "loading" mark.
    pub fn busy(&self) -> bool {
        self.list.reload.is_some()
            || self.list.paging.is_some()
            || self.detail.pending.is_some()
            || self.writes_in_flight > 0
            || self.usage.pending.is_some()
            || self.users.busy()
            || self.audit.pages.pending.is_some()
    }

    /// The keymap context of what has the keyboard.
    pub fn context(&self) -> Context {
        match self.modals.last() {
            Some(Modal::Help { .. }) => Context::Help,
            Some(Modal::Form(_)) => Context::Form,
            Some(Modal::Confirm(_)) => Context::Confirm,
            Some(Modal::Secret(_)) => Context::Secret,
            Some(Modal::Report(_)) => Context::Report,
            None if self.filter_box.is_some() => Context::Filter,
            None => self.screen_context(),
        }
    }

    /// The context of the screen under any dialog (what the help describes).
    pub fn screen_context(&self) -> Context {
        if self.tab == Tab::Users && self.users.open.is_some() {
            return Context::User;
        }
        if let Some(context) = self.tab.context() {
            return context;
        }
        match self.screen {
            Screen::List => Context::List,
            Screen::Detail => Context::Detail,
        }
    }

    /// The key the admin is looking at: the detail's fresh copy when it is open on the selected
    /// row, else the selected row.
    pub fn current_key(&self) -> Option<&ApiKey> {
        let row = self.list.selected_key()?;
        match (&self.screen, &self.detail.data) {
            (Screen::Detail, Some(data)) if data.key.id == row.id => Some(&data.key),
            _ => Some(row),
        }
    }

    pub fn toast(&mut self, kind: ToastKind, text: impl Into<String>) {
        let until = self.now + chrono::TimeDelta::seconds(TOAST_SECONDS);
        self.toast = Some(Toast { kind, text: text.into(), until, raised_in: self.toast_context() });
    }

    /// What a message is about: the screen, the selected key and the dialog on top.
    pub fn toast_context(&self) -> ToastContext {
        ToastContext {
            screen: self.screen,
            selected: self.list.selected_key().map(|key| key.id),
            dialogs: self.modals.len(),
            top_dialog: self.modals.last().map(std::mem::discriminant),
        }
    }

    /// Drops a message whose context has changed ("No key selected" once a key is selected, a
    /// refused create once the dialog closed): it would be read as being about what is shown now.
    pub fn drop_stale_toast(&mut self) {
        if self.toast.as_ref().is_some_and(|toast| toast.raised_in != self.toast_context()) {
            self.toast = None;
        }
    }
}

/// The part of the state a message is about; see [`State::drop_stale_toast`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastContext {
    screen: Screen,
    selected: Option<Uuid>,
    dialogs: usize,
    top_dialog: Option<std::mem::Discriminant<Modal>>,
}

const TOAST_SECONDS: i64 = 6;

/// The chart's measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    Requests,
    Tokens,
    #[default]
    Cost,
}

impl Metric {
    pub fn next(self) -> Metric {
        match self {
            Metric::Requests => Metric::Tokens,
            Metric::Tokens => Metric::Cost,
            Metric::Cost => Metric::Requests,
        }
    }
}

/// The chart's range in days.
pub const RANGES: [u32; 3] = [7, 30, 90];

/// The next range up (`longer`) or down from `days`, stopping at either end.
pub fn step_range(days: u32, longer: bool) -> u32 {
    let index = RANGES.iter().position(|&d| d == days).unwrap_or(1);
    RANGES[if longer { (index + 1).min(RANGES.len() - 1) } else { index.saturating_sub(1) }]
}

#[derive(Debug, Clone)]
pub enum Modal {
    /// The `?` help, scrolled down by `scroll` lines.
    Help {
        scroll: usize,
    },
    Form(Form),
    Confirm(Confirm),
    Secret(Secret),
    /// What the last sweep did, opened again from the list.
    Report(Report),
}

/// Lines to read, with nothing to decide: the last sweep's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub title: String,
    pub lines: Vec<String>,
}

/// A question before something that cannot be taken back, saying exactly what will happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub title: String,
    pub lines: Vec<String>,
    pub action: Confirmed,
}

/// A top-up as submitted from its dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUpRequest {
    pub key_id: Uuid,
    pub amount: Money,
    pub note: Option<String>,
    /// One per dialog: submitting the same dialog again (after an error whose outcome was
    /// unknown, such as a connection lost before the answer) applies the top-up at most once.
    pub idempotency_key: String,
}

/// What a confirmation lets happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    TopUp(TopUpRequest),
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
    Roll {
        key_id: Uuid,
    },
    /// Submit the dialog underneath although its expiry is in the past.
    PastExpiry,
    /// The sweep, as its dry run showed it: confirming runs it only if it would still do that.
    Sweep(Box<SweepReport>),
    SetUserActive {
        name: String,
        active: bool,
    },
    DisableUserKeys {
        name: String,
    },
    /// Create the key the dialog underneath describes, and its owner, who does not exist yet.
    CreateWithOwner(Box<NewKeySpec>),
    /// One action on every marked key.
    Bulk {
        keys: Vec<MarkedKey>,
        action: BulkAction,
    },
}

/// A plaintext key on screen: after create (never shown again) or after a reveal.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub plaintext: String,
    /// True right after create: the key cannot be shown again.
    pub once: bool,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret").field("name", &self.name).field("plaintext", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToastKind {
    Info,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub kind: ToastKind,
    pub text: String,
    pub until: DateTime<Utc>,
    pub raised_in: ToastContext,
}

/// The database stopped answering. The list and the detail keep their last data meanwhile;
/// a retry timer with backoff refreshes them until the database answers again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// The error, as the service reported it.
    pub message: String,
    pub since: DateTime<Utc>,
    /// Retries scheduled so far.
    pub attempt: u32,
    /// When the next retry runs; `None` while a retry waits for its answer.
    pub retry_at: Option<DateTime<Utc>>,
}

/// The wait before retry number `attempt` (1, 2, 4, 8, 16, then every 30 s).
pub fn retry_delay(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(std::time::Duration::from_secs(30))
}

/// Keys the sweeps of a session disabled and deleted, for the status bar: the latest run alone
/// often reads "0 disabled, 0 deleted" after an earlier one did the work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepTotals {
    pub disabled: u64,
    pub deleted: u64,
}

/// The last sweep, for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepResult {
    pub at: DateTime<Utc>,
    pub outcome: Result<SweepReport, String>,
}
