//! What the usage screen shows, as plain data.

use uuid::Uuid;

use crate::domain::{ApiKey, AuditEntry};
use crate::service::{Attention, FleetStats, TopSpenders};
use crate::tui::state::{Metric, RequestId};

/// How many keys and how many users the screen ranks.
pub const TOP_SPENDERS: u32 = 10;
/// The most rows each attention list holds.
pub const ATTENTION_ROWS: u32 = 10;

/// The part of the screen the selection keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    TopKeys,
    Attention,
}

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
    pub pane: Pane,
    /// The selected row of the attention list.
    pub attention_selected: usize,
}

impl Default for UsageScreen {
    fn default() -> Self {
        UsageScreen {
            metric: Metric::default(),
            days: 30,
            data: None,
            pending: None,
            error: None,
            selected: 0,
            pane: Pane::default(),
            attention_selected: 0,
        }
    }
}

impl UsageScreen {
    /// The key of the selected row, if the top keys are loaded.
    pub fn selected_key(&self) -> Option<Uuid> {
        Some(self.data.as_ref()?.top_keys.spenders.get(self.selected)?.spender.id)
    }

    /// The selected row of the attention list, if it is loaded.
    pub fn selected_concern(&self) -> Option<Concern<'_>> {
        self.data.as_ref()?.concerns().nth(self.attention_selected)
    }
}

/// One row of the attention list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Concern<'a> {
    /// Nothing left, or under its low-balance line.
    LowBalance(&'a ApiKey),
    Expiring(&'a ApiKey),
    /// An audit row of the sweep: the key disabled or deleted.
    Swept(&'a AuditEntry),
}

impl Concern<'_> {
    /// The key to open; `None` for a key the sweep deleted.
    pub fn key_id(&self) -> Option<Uuid> {
        match self {
            Concern::LowBalance(key) | Concern::Expiring(key) => Some(key.id),
            Concern::Swept(entry) if entry.action == "sweep_delete" => None,
            Concern::Swept(entry) => entry.api_key_id,
        }
    }
}

/// Everything the screen shows, fetched together for one range.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageData {
    pub fleet: FleetStats,
    pub top_keys: TopSpenders,
    pub top_users: TopSpenders,
    pub attention: Attention,
}

impl UsageData {
    /// The attention list's rows: low balances, then expiries, then the sweep's work.
    pub fn concerns(&self) -> impl Iterator<Item = Concern<'_>> {
        let attention = &self.attention;
        let low = attention.low_balance.iter().map(Concern::LowBalance);
        let expiring = attention.expiring.iter().map(Concern::Expiring);
        low.chain(expiring).chain(attention.swept.iter().map(Concern::Swept))
    }
}
