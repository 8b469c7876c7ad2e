//! What the usage screen shows, as plain data.

use uuid::Uuid;

use crate::service::{FleetStats, TopSpenders};
use crate::tui::state::{Metric, RequestId};

/// How many keys and how many users the screen ranks.
pub const TOP_SPENDERS: u32 = 10;

#[derive(Debug, Clone)]
pub struct UsageScreen {
    pub metric: Metric,
    pub days: u32,
    pub data: Option<UsageData>,
    /// The load in flight; answers to older loads are dropped.
    pub pending: Option<RequestId>,
    pub error: Option<String>,
    /// The selected row of the top keys.
    pub selected: usize,
}

impl Default for UsageScreen {
    fn default() -> Self {
        UsageScreen { metric: Metric::default(), days: 30, data: None, pending: None, error: None, selected: 0 }
    }
}

impl UsageScreen {
    /// The key of the selected row, if the top keys are loaded.
    pub fn selected_key(&self) -> Option<Uuid> {
        Some(self.data.as_ref()?.top_keys.spenders.get(self.selected)?.spender.id)
    }
}

/// Everything the screen shows, fetched together for one range.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageData {
    pub fleet: FleetStats,
    pub top_keys: TopSpenders,
    pub top_users: TopSpenders,
}
