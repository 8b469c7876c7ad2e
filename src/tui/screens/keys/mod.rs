//! The keys screen, the start screen: the key list (paged through a window of keyset pages,
//! narrowed, sorted, with bulk marks) and the open key's detail.

pub mod admission;
pub mod bulk;
pub mod detail;
pub mod list;
pub mod paging;
pub mod state;
pub mod update;
pub mod view;

pub use state::{Detail, DetailData, Focus, KeyList, Screen};
