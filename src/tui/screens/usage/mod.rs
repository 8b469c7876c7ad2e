//! The usage screen: the fleet's daily series and totals, and who spent most in the range.

pub mod state;
pub mod update;
pub mod view;

pub use state::{TOP_SPENDERS, UsageData, UsageScreen};
