//! The TUI's tests without a terminal: `update` fed with events, and views rendered into a
//! `TestBackend` from fixed state.

mod audit;
mod bulk;
mod outage;
mod render;
mod update;
mod usage;
mod users;
