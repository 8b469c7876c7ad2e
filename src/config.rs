//! The config file (`$XDG_CONFIG_HOME/keytop/config.toml`). Every setting has a default, so the
//! file is optional; `assets/config.toml` is the commented sample.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{Money, duration::parse_duration, plan::DEFAULT_LOW_BALANCE};

/// `Debug` shows the database URL without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Database URL; the command line and `KEYTOP_DB` take precedence.
    pub database_url: Option<String>,
    pub key_prefix: String,
    pub sweep: SweepConfig,
    pub ui: UiConfig,
    pub alerts: AlertsConfig,
    /// Action name → key, e.g. `top_up = "t"`; parsed and checked by the TUI's keymap.
    pub keybindings: BTreeMap<String, String>,
    pub serve: ServeConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url.as_deref().map(crate::store::redact_url))
            .field("key_prefix", &self.key_prefix)
            .field("sweep", &self.sweep)
            .field("ui", &self.ui)
            .field("alerts", &self.alerts)
            .field("keybindings", &self.keybindings)
            .field("serve", &self.serve)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepConfig {
    /// Whether the TUI runs the expiry sweep on a timer.
    pub enabled: bool,
    pub interval: Duration,
    /// The global policy for keys whose own flag is "default": delete (true) or disable.
    pub auto_delete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiConfig {
    pub refresh_interval: Duration,
    /// Top-ups at or above this amount ask for a second confirmation.
    pub confirm_topup_at: Money,
    pub theme: ThemeChoice,
}

/// `keytop serve`: the TUI over SSH. Paths left unset take their defaults under the XDG dirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub listen: String,
    pub host_key: Option<std::path::PathBuf>,
    pub authorized_keys: Option<std::path::PathBuf>,
    pub max_sessions: usize,
    /// A session with no input for this long is closed.
    pub idle_timeout: Duration,
    /// A connection that has not authenticated within this time is dropped.
    pub login_grace: Duration,
    /// Failed authentications allowed on one connection.
    pub auth_attempts: usize,
    /// How long every rejected authentication takes, so failures are slow to repeat.
    pub auth_failure_delay: Duration,
    /// Key fingerprint (`SHA256:…`) → admin name, for keys whose comment is not the name wanted.
    pub admins: BTreeMap<String, String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "0.0.0.0:2222".into(),
            host_key: None,
            authorized_keys: None,
            max_sessions: 32,
            idle_timeout: Duration::from_secs(30 * 60),
            login_grace: Duration::from_secs(30),
            auth_attempts: 6,
            auth_failure_delay: Duration::from_secs(1),
            admins: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    /// The low-balance line of keys without their own.
    pub low_balance: Money,
    /// The program run for each alert and its arguments (no shell); empty = no alerts run.
    pub command: Vec<String>,
    /// How long the program may run before it is killed.
    pub timeout: Duration,
}

/// The longest `alerts.timeout`: a command-line write that crossed a line waits for its alert
/// before the process exits, so a hung program must not hold it for long.
pub const MAX_ALERT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThemeChoice {
    /// Colour at the terminal's depth (`TERM`, `COLORTERM`: truecolor, 256 or 16 colours), none
    /// with `NO_COLOR` or `TERM=dumb`.
    #[default]
    Auto,
    Color,
    Mono,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            key_prefix: "sk".into(),
            sweep: SweepConfig { enabled: true, interval: Duration::from_secs(60), auto_delete: false },
            ui: UiConfig {
                refresh_interval: Duration::from_secs(5),
                confirm_topup_at: Money::from_usd(1000),
                theme: ThemeChoice::Auto,
            },
            alerts: AlertsConfig {
                low_balance: DEFAULT_LOW_BALANCE,
                command: Vec::new(),
                timeout: Duration::from_secs(5),
            },
            keybindings: BTreeMap::new(),
            serve: ServeConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the config file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

// The file as written: all optional, strings for durations and money so that messages can say
// exactly what was wrong.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    keys: RawKeys,
    #[serde(default)]
    sweep: RawSweep,
    #[serde(default)]
    ui: RawUi,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    keybindings: BTreeMap<String, String>,
    #[serde(default)]
    serve: RawServe,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    low_balance: Option<String>,
    command: Option<RawCommand>,
    timeout: Option<String>,
}

/// `alerts.command` as written: a list, or (refused with a clear message) one string, the shell
/// habit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Words(Vec<String>),
    Line(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    enabled: Option<bool>,
    interval: Option<String>,
    auto_delete: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    refresh_interval: Option<String>,
    confirm_topup_at: Option<String>,
    theme: Option<ThemeChoice>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServe {
    listen: Option<String>,
    host_key: Option<std::path::PathBuf>,
    authorized_keys: Option<std::path::PathBuf>,
    max_sessions: Option<usize>,
    idle_timeout: Option<String>,
    login_grace: Option<String>,
    auth_attempts: Option<usize>,
    auth_failure_delay: Option<String>,
    #[serde(default)]
    admins: BTreeMap<String, String>,
}

impl Config {
    /// Reads the file at `path`; a missing file gives the defaults unless `required`.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let display = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text).map_err(|message| ConfigError::Invalid { path: display, message }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read { path: display, source }),
        }
    }

    /// Parses the text of a config file; the error names the line or the setting at fault.
    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        let defaults = Config::default();
        let duration = |setting: &str, value: Option<String>, default: Duration| match value {
            None => Ok(default),
            Some(text) => parse_duration(&text)
                .map(|d| Duration::from_secs(d.num_seconds().unsigned_abs()))
                .map_err(|e| format!("{setting} = {text:?} {e}")),
        };
        let prefix = raw.keys.prefix.unwrap_or(defaults.key_prefix);
        if prefix.is_empty() || prefix.len() > 16 || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("keys.prefix = {prefix:?} must be 1 to 16 letters, digits or underscores"));
        }
        let amount = |setting: &str, value: Option<String>, default: Money| match value {
            None => Ok(default),
            Some(text) => match Money::parse(&text) {
                Ok(amount) if !amount.is_negative() => Ok(amount),
                Ok(_) => Err(format!("{setting} = {text:?} must not be negative")),
                Err(e) => Err(format!("{setting} = {text:?} {e}")),
            },
        };
        let confirm_topup_at = amount("ui.confirm_topup_at", raw.ui.confirm_topup_at, defaults.ui.confirm_topup_at)?;
        let alert_command = match raw.alerts.command {
            None => Vec::new(),
            Some(RawCommand::Words(words)) => words,
            Some(RawCommand::Line(line)) => {
                let words: Vec<String> = line.split_whitespace().map(|word| format!("{word:?}")).collect();
                return Err(format!(
                    "alerts.command = {line:?} must be a list of the program and its arguments, \
                     such as [{}]: no shell runs it",
                    words.join(", ")
                ));
            }
        };
        if alert_command.first().is_some_and(|program| program.trim().is_empty()) {
            return Err("alerts.command must start with the program to run, such as [\"/usr/local/bin/notify\"]".into());
        }
        let alert_timeout = duration("alerts.timeout", raw.alerts.timeout, defaults.alerts.timeout)?;
        if alert_timeout > MAX_ALERT_TIMEOUT {
            return Err(format!("alerts.timeout must be at most {}s", MAX_ALERT_TIMEOUT.as_secs()));
        }
        Ok(Config {
            database_url: raw.database.url.filter(|u| !u.trim().is_empty()),
            key_prefix: prefix,
            sweep: SweepConfig {
                enabled: raw.sweep.enabled.unwrap_or(defaults.sweep.enabled),
                interval: duration("sweep.interval", raw.sweep.interval, defaults.sweep.interval)?,
                auto_delete: raw.sweep.auto_delete.unwrap_or(defaults.sweep.auto_delete),
            },
            ui: UiConfig {
                refresh_interval: duration(
                    "ui.refresh_interval",
                    raw.ui.refresh_interval,
                    defaults.ui.refresh_interval,
                )?,
                confirm_topup_at,
                theme: raw.ui.theme.unwrap_or_default(),
            },
            alerts: AlertsConfig {
                low_balance: amount("alerts.low_balance", raw.alerts.low_balance, defaults.alerts.low_balance)?,
                command: alert_command,
                timeout: alert_timeout,
            },
            keybindings: raw.keybindings,
            serve: ServeConfig {
                listen: raw.serve.listen.unwrap_or(defaults.serve.listen),
                host_key: raw.serve.host_key,
                authorized_keys: raw.serve.authorized_keys,
                max_sessions: at_least_one("serve.max_sessions", raw.serve.max_sessions, defaults.serve.max_sessions)?,
                idle_timeout: duration("serve.idle_timeout", raw.serve.idle_timeout, defaults.serve.idle_timeout)?,
                login_grace: duration("serve.login_grace", raw.serve.login_grace, defaults.serve.login_grace)?,
                auth_attempts: at_least_one(
                    "serve.auth_attempts",
                    raw.serve.auth_attempts,
                    defaults.serve.auth_attempts,
                )?,
                auth_failure_delay: duration(
                    "serve.auth_failure_delay",
                    raw.serve.auth_failure_delay,
                    defaults.serve.auth_failure_delay,
                )?,
                admins: raw.serve.admins,
            },
        })
    }
}

fn at_least_one(setting: &str, value: Option<usize>, default: usize) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(0) => Err(format!("{setting} must be at least 1")),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_config_parses_to_the_defaults_it_documents() {
        let sample = include_str!("../assets/config.toml");
        let config = Config::parse(sample).expect("assets/config.toml must parse");
        assert_eq!(config.sweep.interval, Duration::from_secs(60));
        assert_eq!(config.ui.confirm_topup_at, Money::from_usd(1000));
        assert_eq!(config.key_prefix, "sk");
        assert_eq!(config.serve, ServeConfig::default());
        assert_eq!(config.alerts.low_balance, Money::from_usd(5));
        assert!(config.alerts.command.is_empty());
    }

    #[test]
    fn the_serve_section_is_read() {
        let text = "[serve]\nlisten = \"127.0.0.1:2200\"\nmax_sessions = 4\nidle_timeout = \"5m\"\n\
                    [serve.admins]\n\"SHA256:abc\" = \"alice\"\n";
        let serve = Config::parse(text).unwrap().serve;
        assert_eq!(serve.listen, "127.0.0.1:2200");
        assert_eq!(serve.max_sessions, 4);
        assert_eq!(serve.idle_timeout, Duration::from_secs(300));
        assert_eq!(serve.admins.get("SHA256:abc").map(String::as_str), Some("alice"));
        let error = Config::parse("[serve]\nmax_sessions = 0\n").unwrap_err();
        assert!(error.contains("serve.max_sessions"), "{error}");
    }

    #[test]
    fn alerts_take_a_line_and_a_program_with_its_arguments() {
        let config =
            Config::parse("[alerts]\nlow_balance = \"12.5\"\ncommand = [\"notify\", \"--to\", \"ops\"]\n").unwrap();
        assert_eq!(config.alerts.low_balance, Money::from_micros(12_500_000));
        assert_eq!(config.alerts.command, ["notify", "--to", "ops"]);
        let error = Config::parse("[alerts]\nlow_balance = \"-1\"\n").unwrap_err();
        assert!(error.contains("alerts.low_balance"), "{error}");
        let error = Config::parse("[alerts]\ncommand = \"curl -d x\"\n").unwrap_err();
        assert!(
            error.contains(r#"must be a list of the program and its arguments, such as ["curl", "-d", "x"]"#),
            "{error}"
        );
        let error = Config::parse("[alerts]\ncommand = 7\n").unwrap_err();
        assert!(error.contains("command"), "{error}");
        let error = Config::parse("[alerts]\ncommand = [\"\"]\n").unwrap_err();
        assert!(error.contains("alerts.command"), "{error}");
    }

    #[test]
    fn the_alert_timeout_is_a_duration_of_at_most_a_minute() {
        assert_eq!(Config::default().alerts.timeout, Duration::from_secs(5));
        assert_eq!(Config::parse("[alerts]\ntimeout = \"30s\"\n").unwrap().alerts.timeout, Duration::from_secs(30));
        for (bad, says) in [("0s", "alerts.timeout"), ("2m", "at most 60s"), ("-1s", "alerts.timeout")] {
            let error = Config::parse(&format!("[alerts]\ntimeout = \"{bad}\"\n")).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn an_empty_file_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn errors_name_the_line_or_setting() {
        let error = Config::parse("[sweep]\ninterval = \n").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        let error = Config::parse("[sweep]\ninterval = \"soon\"\n").unwrap_err();
        assert!(error.contains("sweep.interval"), "{error}");
        let error = Config::parse("[ui]\nconfirm_topup_at = \"1e3\"\n").unwrap_err();
        assert!(error.contains("ui.confirm_topup_at"), "{error}");
        let error = Config::parse("[ui]\ncolour = true\n").unwrap_err();
        assert!(error.contains("colour"), "{error}");
        let error = Config::parse("[keys]\nprefix = \"s k\"\n").unwrap_err();
        assert!(error.contains("keys.prefix"), "{error}");
    }
}
