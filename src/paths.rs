//! Where keytop keeps its files, following the XDG base directory rules on every platform, and
//! how it creates them: private to the user, since they hold key names, owners, balances, usage
//! and the audit trail.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

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

/// Creates `dir` with its missing parents, each new one private to the user (mode 0700 on Unix,
/// as the XDG base directory rules ask). Folders that exist keep their mode.
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Open options that create a missing file private to the user (mode 0600 on Unix). A file that
/// exists keeps its mode.
pub fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}
