//! The keys screen's state: where it is (list or detail), the key list with its query, window
//! and marks, and the open key's detail.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::paging::{PageRequest, Placement, Window};
use crate::domain::{
    ActiveFilter, ApiKey, AuditEntry, KeyQuery, KeyScope, LedgerEntry, LowBalanceLine, Money, SortKey,
};
use crate::service::{AdmissionCheck, KeyStats, MarkedKey, MoneyView};
use crate::tui::state::{Metric, RequestId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    List,
    Detail,
}

/// Where the selection goes when a reload lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    First,
    Last,
    /// Stay on this key if it is still listed, else keep the row position.
    Key(Uuid),
}

/// Which of the scope's keys the list narrows to: the keys that need attention first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Narrowing {
    #[default]
    Everything,
    /// Usable now: enabled, unexpired, owner enabled.
    Active,
    /// Enabled keys expiring within [`EXPIRING_DAYS`].
    Expiring,
    /// Prepaid keys under their low-balance line.
    LowBalance,
}

/// The window of [`Narrowing::Expiring`].
pub const EXPIRING_DAYS: i64 = 7;

impl Narrowing {
    pub fn next(self) -> Narrowing {
        match self {
            Narrowing::Everything => Narrowing::Active,
            Narrowing::Active => Narrowing::Expiring,
            Narrowing::Expiring => Narrowing::LowBalance,
            Narrowing::LowBalance => Narrowing::Everything,
        }
    }

    /// How the title names it; `None` for no narrowing.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Narrowing::Everything => None,
            Narrowing::Active => Some("active only"),
            Narrowing::Expiring => Some("expiring within 7d"),
            Narrowing::LowBalance => Some("under low-balance line"),
        }
    }

    /// Sets the parts of a list query this narrowing decides.
    fn narrow(self, query: &mut KeyQuery) {
        match self {
            Narrowing::Everything => {}
            Narrowing::Active => query.active = ActiveFilter::Active,
            Narrowing::Expiring => query.expiring_within = Some(chrono::Duration::days(EXPIRING_DAYS)),
            Narrowing::LowBalance => query.low_balance = Some(LowBalanceLine::KeysOwn { default: None }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeyList {
    pub scope: KeyScope,
    pub narrowing: Narrowing,
    pub sort: SortKey,
    pub descending: bool,
    pub filter: String,
    pub window: Window,
    pub selected: usize,
    /// First row shown; kept so that scrolling is steady rather than recomputed per frame.
    pub offset: usize,
    /// The reload in flight and where the selection goes when it lands.
    pub reload: Option<(RequestId, Placement, PageRequest, Focus)>,
    /// The page fetch in flight at an edge of the window.
    pub paging: Option<(RequestId, Placement, PageRequest)>,
    /// The rows no longer match the query (filter, scope or sort changed) until the reload lands;
    /// actions on the selected key wait for it.
    pub stale: bool,
    /// Bumped by every keystroke in the filter box; only the last one's debounce reloads.
    pub filter_edits: u64,
    pub error: Option<String>,
    /// The count of keys the query matches (up to the cap), and the request it answers.
    pub matches: Option<u64>,
    pub matches_request: Option<RequestId>,
    /// The keys marked for a bulk action, by id, with their names for the result.
    pub marks: BTreeMap<Uuid, String>,
    /// What the loaded keys spent in the last 30 days, for the wide list's column.
    pub recent_spend: HashMap<Uuid, Money>,
}

impl Default for KeyList {
    fn default() -> Self {
        let sort = SortKey::default();
        KeyList {
            scope: KeyScope::default(),
            narrowing: Narrowing::default(),
            sort,
            descending: sort.default_descending(),
            filter: String::new(),
            window: Window::default(),
            selected: 0,
            offset: 0,
            reload: None,
            paging: None,
            stale: false,
            filter_edits: 0,
            error: None,
            matches: None,
            matches_request: None,
            marks: BTreeMap::new(),
            recent_spend: HashMap::new(),
        }
    }
}

impl KeyList {
    pub fn selected_key(&self) -> Option<&ApiKey> {
        self.window.rows.get(self.selected)
    }

    /// The query of this list for one page request.
    pub fn query(&self, request: PageRequest, now: DateTime<Utc>) -> KeyQuery {
        let filter = self.filter.trim();
        let mut query = KeyQuery {
            scope: self.scope,
            filter: (!filter.is_empty()).then(|| filter.to_string()),
            sort: self.sort,
            descending: self.descending != request.flipped,
            from: request.from,
            limit: request.limit,
            now: Some(now),
            ..KeyQuery::default()
        };
        self.narrowing.narrow(&mut query);
        query
    }

    /// The marked keys, in id order.
    pub fn marked(&self) -> Vec<MarkedKey> {
        self.marks.iter().map(|(id, name)| MarkedKey { id: *id, name: name.clone() }).collect()
    }
}

#[derive(Debug, Clone)]
pub struct Detail {
    pub metric: Metric,
    pub days: u32,
    pub data: Option<DetailData>,
    /// The key being loaded and its request.
    pub pending: Option<(RequestId, Uuid)>,
    pub error: Option<String>,
}

impl Default for Detail {
    fn default() -> Self {
        Detail { metric: Metric::default(), days: 30, data: None, pending: None, error: None }
    }
}

/// Everything the detail shows about one key, fetched together.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailData {
    pub key: ApiKey,
    pub stats: KeyStats,
    /// The most recent balance changes, newest first.
    pub ledger: Vec<LedgerEntry>,
    /// The budget's use and the low-balance line.
    pub money: MoneyView,
    /// What `verify` would decide for the key now.
    pub admission: AdmissionCheck,
    /// The key's last audit rows, newest first.
    pub history: Vec<AuditEntry>,
    /// For a disabled key: the audit row of its last disable (by an admin or the sweep).
    pub disabled_by: Option<AuditEntry>,
}
