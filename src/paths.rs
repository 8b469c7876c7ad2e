//! Where keytop keeps its files, following the XDG base directory rules on every platform.

use std::path::PathBuf;

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}

/// `$VAR` when set to an absolute path, else `~/<fallback>`; then `keytop` inside it.
fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    let base = std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
    base.unwrap_or_else(|| home().join(fallback)).join("keytop")
}

pub fn config_dir() -> PathBuf {
    xdg_dir("XDG_CONFIG_HOME", ".config")
}

pub fn data_dir() -> PathBuf {
    xdg_dir("XDG_DATA_HOME", ".local/share")
}

pub fn state_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state")
}

pub fn default_config_file() -> PathBuf {
    config_dir().join("config.toml")
}

pub fn default_master_key_file() -> PathBuf {
    config_dir().join("master.key")
}

pub fn default_database_url() -> String {
    format!("sqlite://{}", data_dir().join("keytop.db").display())
}

pub fn log_file() -> PathBuf {
    state_dir().join("keytop.log")
}
