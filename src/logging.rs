//! Logs go to a file (`$XDG_STATE_HOME/keytop/keytop.log`), never to the terminal the TUI owns.

use std::path::Path;

use tracing_subscriber::EnvFilter;

/// Starts logging to `path` at the level of `KEYTOP_LOG` (default `info`). A log file that cannot
/// be opened is not worth failing a command for, so that case only returns the reason.
pub fn init(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        crate::paths::create_private_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file = crate::paths::private_file_options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let filter = EnvFilter::try_from_env("KEYTOP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init()
        .map_err(|e| e.to_string())
}
