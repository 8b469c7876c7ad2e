//! What the users screen shows, as plain data.

use crate::domain::UserOverview;
use crate::service::{UserDetail, UserStats};
use crate::tui::screens::pages::Pages;
use crate::tui::state::{Metric, RequestId};

#[derive(Debug, Clone)]
pub struct UsersScreen {
    /// The users loaded so far, by name.
    pub pages: Pages<UserOverview>,
    /// The text names must contain, as typed in the filter box.
    pub filter: String,
    /// The days spend sums over, and the open user's chart spans.
    pub days: u32,
    /// The user open, if any: the screen shows them instead of the list.
    pub open: Option<UserView>,
}

impl Default for UsersScreen {
    fn default() -> Self {
        UsersScreen { pages: Pages::default(), filter: String::new(), days: 30, open: None }
    }
}

impl UsersScreen {
    /// Whether a load of the screen is in flight.
    pub fn busy(&self) -> bool {
        self.pages.pending.is_some() || self.open.as_ref().is_some_and(|user| user.pending.is_some())
    }
}

/// One user, open.
#[derive(Debug, Clone)]
pub struct UserView {
    pub name: String,
    pub metric: Metric,
    pub data: Option<UserData>,
    /// The load in flight; answers to older loads are dropped.
    pub pending: Option<RequestId>,
    pub error: Option<String>,
    /// The selected row of the user's keys.
    pub selected: usize,
}

impl UserView {
    pub fn new(name: String) -> UserView {
        UserView { name, metric: Metric::default(), data: None, pending: None, error: None, selected: 0 }
    }
}

/// Everything the user's view shows, fetched together for one range.
#[derive(Debug, Clone, PartialEq)]
pub struct UserData {
    pub stats: UserStats,
    /// The user's counts and keys, newest first.
    pub detail: UserDetail,
}

impl UserData {
    /// The keys that are enabled: what disabling all of them changes.
    pub fn enabled_keys(&self) -> usize {
        self.detail.keys.iter().filter(|key| key.is_active).count()
    }
}
