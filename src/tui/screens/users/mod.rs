//! The users screen: every user with their state, keys and spend, paged by name and filtered;
//! and one user open, with their daily chart and their keys.

pub mod state;
pub mod update;
pub mod view;

pub use state::{UserData, UserView, UsersScreen};
