//! The expiry sweep as an admin confirms it: a dry run is shown, and the sweep that follows must
//! do what was shown, not what the data turned into meanwhile (a timed sweep in another process
//! may have done the work, or more keys may have expired).

use super::{KeyService, ServiceResult};
use crate::store::SweepReport;

/// What confirming a shown dry run led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmedSweep {
    /// The sweep ran, and did what the dry run showed.
    Swept(SweepReport),
    /// The sweep would now do something else: nothing was changed; this is the new dry run.
    Changed(SweepReport),
}

impl KeyService {
    /// Runs the sweep a dry run showed if a fresh dry run still plans the same; otherwise returns
    /// the fresh dry run. What is compared: the counts and the keys each list names (the lists
    /// hold up to [`crate::store::SWEEP_SAMPLE`] keys each).
    pub async fn sweep_as_shown(&self, shown: &SweepReport) -> ServiceResult<ConfirmedSweep> {
        let now = self.sweep(true).await?;
        if !same_plan(shown, &now) {
            return Ok(ConfirmedSweep::Changed(now));
        }
        self.sweep(false).await.map(ConfirmedSweep::Swept)
    }
}

fn same_plan(a: &SweepReport, b: &SweepReport) -> bool {
    let ids = |report: &SweepReport| {
        (
            report.disabled.iter().map(|key| key.id).collect::<Vec<_>>(),
            report.deleted.iter().map(|key| key.id).collect::<Vec<_>>(),
        )
    };
    (a.disabled_count, a.deleted_count) == (b.disabled_count, b.deleted_count) && ids(a) == ids(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SweptKey;
    use uuid::Uuid;

    #[test]
    fn a_plan_is_the_same_when_its_counts_and_named_keys_are() {
        let key = |n: u128| SweptKey { id: Uuid::from_u128(n), name: format!("k{n}") };
        let shown = SweepReport { disabled_count: 1, disabled: vec![key(1)], ..SweepReport::default() };
        let mut renamed = shown.clone();
        renamed.disabled[0].name = "renamed".into();
        assert!(same_plan(&shown, &renamed), "names are for people; ids say which key");
        assert!(!same_plan(&shown, &SweepReport::default()), "swept meanwhile");
        let other = SweepReport { disabled_count: 1, disabled: vec![key(2)], ..SweepReport::default() };
        assert!(!same_plan(&shown, &other));
    }
}
