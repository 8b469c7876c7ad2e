//! The usage screen: the fleet's daily series and totals, and who spent most in the range.

mod attention;
pub mod state;
pub mod update;
pub mod view;

pub use state::{ATTENTION_ROWS, Concern, Pane, TOP_SPENDERS, UsageData, UsageScreen};
