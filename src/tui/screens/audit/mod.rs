//! The audit screen: the audit log newest first, paged as the admin scrolls, filtered by
//! actor, action or key.

pub mod state;
pub mod update;
pub mod view;

pub use state::{AuditFilter, AuditScreen};
