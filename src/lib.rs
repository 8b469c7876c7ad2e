//! keytop: a terminal console for the API keys of an LLM gateway.
//!
//! Layers, from the bottom: `domain` (pure rules), `crypto`, `store` (SQLite and PostgreSQL),
//! `service` (every operation), then the faces: `cli`, `tui` and `serve` (the TUI over SSH). Calls only go down.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod import;
pub mod logging;
pub mod master_key;
pub mod paths;
pub mod serve;
pub mod service;
pub mod store;
pub mod tui;
