//! Placeholder, replaced by the real implementation.

use std::sync::Arc;

use super::{Store, StoreError, StoreResult};

/// Opens the database (keep this entry point: `store::open` calls it).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    Err(StoreError::Unavailable { url: super::redact_url(url), reason: "not built yet".into() })
}
