//! The command line, as clap types. The names and flags are a contract: scripts depend on them.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// `Debug` shows the database URL without its password.
#[derive(Parser)]
#[command(
    name = "keytop",
    version,
    about = "A terminal console for the API keys of an LLM gateway",
    long_about = "keytop browses API keys and their limits, tops up prepaid balances, shows daily usage \
                  charts and sweeps expired keys, on SQLite (default) or PostgreSQL.\n\n\
                  Without a subcommand it opens the TUI."
)]
pub struct Cli {
    /// Database URL: sqlite://PATH, sqlite::memory: or postgres://USER@HOST/DB
    /// [default: sqlite://$XDG_DATA_HOME/keytop/keytop.db]
    #[arg(long, global = true, env = "KEYTOP_DB", value_name = "URL")]
    pub db: Option<String>,

    /// File holding the master key (base64 of 32 bytes); KEYTOP_MASTER_KEY holds the key itself
    /// [default: $XDG_CONFIG_HOME/keytop/master.key, created on first use]
    #[arg(long, global = true, value_name = "PATH")]
    pub master_key_file: Option<PathBuf>,

    /// Name recorded in the ledger and the audit log [env: KEYTOP_ACTOR] [default: the login
    /// name]; with `audit`, only the rows of this actor
    // The environment variable is read by `cli::actor`, not here: from the command line alone,
    // `audit` can tell a filter asked for from the writer's own name.
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,

    /// Config file [default: $XDG_CONFIG_HOME/keytop/config.toml]
    #[arg(long, global = true, env = "KEYTOP_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print data as JSON (money as "12.250000" strings, times in RFC 3339 UTC)
    #[arg(long, global = true)]
    pub json: bool,

    /// TUI: disable every change (browse only)
    #[arg(long, global = true)]
    pub read_only: bool,

    /// Open the TUI on a throwaway database filled with demo data (removed on exit)
    #[arg(long)]
    pub demo: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("db", &self.db.as_deref().map(crate::store::redact_url))
            .field("master_key_file", &self.master_key_file)
            .field("actor", &self.actor)
            .field("config", &self.config)
            .field("json", &self.json)
            .field("read_only", &self.read_only)
            .field("demo", &self.demo)
            .field("command", &self.command)
            .finish()
    }
}

// Parsed once per process: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the TUI (the default)
    Tui,
    /// Manage users (key owners)
    #[command(subcommand)]
    Users(UsersCommand),
    /// Create, list, change and remove keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Top up a prepaid key; a negative amount (-3) deducts
    Topup(TopupArgs),
    /// Show the balance of a prepaid key
    Balance {
        /// Key id, id prefix (6+ characters) or exact name
        key: String,
    },
    /// Show every balance adjustment of a key, oldest first
    Ledger {
        /// Key id, id prefix (6+ characters) or exact name
        key: String,
    },
    /// Record gateway usage
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Usage totals and the daily series of a key, a user or the fleet (UTC days)
    Stats(StatsArgs),
    /// The biggest spenders, keys or users, with their share of the fleet's spend
    Top(TopArgs),
    /// Make the admission decision a gateway makes (exit 0 allowed, 3 denied)
    Verify(VerifyArgs),
    /// Disable or delete expired keys
    Sweep(SweepArgs),
    /// Show the audit log, newest first
    Audit(AuditArgs),
    /// Run database migrations and report the schema version
    Migrate,
    /// Rotate the master key: re-seal every stored key under a new one, in one transaction
    Rekey {
        /// File of the new master key; created (mode 0600) with a fresh key when absent
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
    /// Fill the database with generated demo data
    Demo(DemoArgs),
    /// Bring users, keys and usage over from another system
    #[command(subcommand)]
    Import(ImportCommand),
    /// Print the shell completion script for SHELL
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page of keytop, or write a page per subcommand into a directory
    Man {
        /// Write keytop.1 and one keytop-<subcommand>.1 per subcommand here instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Serve the TUI over SSH: each admin connects with their own key and gets their own session
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: serve.listen, else 0.0.0.0:2222]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Host key, created on first start [default: $XDG_DATA_HOME/keytop/ssh_host_ed25519_key]
    #[arg(long, value_name = "PATH")]
    pub host_key: Option<PathBuf>,
    /// Who may connect, in OpenSSH's format [default: $XDG_CONFIG_HOME/keytop/authorized_keys]
    #[arg(long, value_name = "PATH")]
    pub authorized_keys: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user
    Add { name: String },
    /// List users with their key counts
    List,
    /// Show a user: status, key counts, spend, last use and their keys
    Show {
        name: String,
        /// Spend over this many days, today included
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Disable a user: their keys stop being admitted
    Disable { name: String },
    /// Enable a user again
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its plaintext (shown this once)
    Create(CreateArgs),
    /// List keys, newest first
    List(ListArgs),
    /// Show every field of a key and its status
    Show { key: String },
    /// Change a key; absent flags keep their value
    Update(UpdateArgs),
    /// Disable a key, or every key a filter or owner matches (reversible)
    Disable(KeySelection),
    /// Enable a key again, or every key a filter or owner matches
    Enable(KeySelection),
    /// Delete a key for good, or every key a filter or owner matches (usage history stays)
    Purge(KeySelection),
    /// Print the plaintext of a key (audited)
    Reveal { key: String },
    /// Give a key a new secret, printed this once; the old one verifies until the grace ends
    Roll {
        key: String,
        /// How long the old secret keeps verifying: 0 (stops at once) up to 30d
        #[arg(long, value_name = "DURATION", default_value = "24h", allow_hyphen_values = true)]
        grace: String,
    },
}

/// The keys `keys disable|enable|purge` act on: one key, or every key that a filter and/or an
/// owner match.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).multiple(true).args(["key", "filter", "user"])))]
pub struct KeySelection {
    /// Key id, id prefix (6+ characters) or exact name
    pub key: Option<String>,
    /// Every key whose name, owner, key hint or id contains TEXT
    #[arg(long, value_name = "TEXT", conflicts_with = "key")]
    pub filter: Option<String>,
    /// Every key of this user
    #[arg(long, value_name = "NAME", conflicts_with = "key")]
    pub user: Option<String>,
    /// List the keys it would act on, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Act on every match when more than one key matches (refused without it)
    #[arg(long)]
    pub all_matching: bool,
}

/// Flags shared by create and update.
#[derive(Debug, Args, Default)]
pub struct KeyFields {
    /// Display name [create default: "API Key YYYYmmddHHMMSS"]
    #[arg(long)]
    pub name: Option<String>,
    /// Prepaid credit in dollars (standalone keys); "none" = unlimited
    #[arg(long, value_name = "USD", allow_hyphen_values = true)]
    pub balance: Option<String>,
    /// Requests per minute, or "none" [create default: 100]
    #[arg(long, value_name = "N|none", allow_hyphen_values = true)]
    pub rate_limit: Option<String>,
    /// Concurrent requests, or "none" [create default: 5]
    #[arg(long, value_name = "N|none", allow_hyphen_values = true)]
    pub concurrency: Option<String>,
    /// Expire after this long from now: 30d, 12h, 90m, 2w…
    #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
    pub expires_in: Option<String>,
    /// Expire at this time: RFC 3339 (2026-12-31T18:00:00Z) or a date (2026-12-31, midnight UTC)
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
    /// Accept an --expires-at in the past (the key is expired at once)
    #[arg(long, requires = "expires_at")]
    pub allow_past: bool,
    /// Allowed providers, comma-separated; "" = all
    #[arg(long, value_name = "A,B")]
    pub providers: Option<String>,
    /// Allowed API formats, comma-separated; "" = all
    #[arg(long, value_name = "A,B")]
    pub api_formats: Option<String>,
    /// Allowed models, comma-separated; "" = all
    #[arg(long, value_name = "A,B")]
    pub models: Option<String>,
    /// Delete (yes) or disable (no) the key when it expires; default follows sweep.auto_delete
    #[arg(long, value_name = "yes|no|default")]
    pub auto_delete: Option<String>,
    #[command(flatten)]
    pub money: MoneyFields,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Owner of the key
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// A prepaid key with its own balance
    #[arg(long)]
    pub standalone: bool,
    #[command(flatten)]
    pub fields: KeyFields,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    pub key: String,
    #[command(flatten)]
    pub fields: KeyFields,
    /// Clear the expiry: the key never expires
    #[arg(long, conflicts_with_all = ["expires_in", "expires_at"])]
    pub no_expiry: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the keys of this user
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only prepaid (standalone) keys
    #[arg(long, conflicts_with = "user_keys")]
    pub standalone: bool,
    /// Leave standalone keys out
    #[arg(long)]
    pub user_keys: bool,
    /// Only keys that can be used now (enabled, not expired)
    #[arg(long, conflicts_with = "inactive")]
    pub active: bool,
    /// Only disabled or expired keys
    #[arg(long)]
    pub inactive: bool,
    /// Text to find in the name, owner, key hint or id
    #[arg(long)]
    pub filter: Option<String>,
    /// Only enabled keys expiring within this long (7d, 12h…), soonest first
    #[arg(long, value_name = "DURATION")]
    pub expiring: Option<String>,
    /// Only prepaid keys under their low-balance line (their own, else alerts.low_balance), or
    /// under USD for every key; lowest balance first
    #[arg(long, value_name = "USD", num_args = 0..=1, default_missing_value = "")]
    pub low_balance: Option<String>,
    /// At most this many keys (stderr says when more matched); all of them without it
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TopupArgs {
    /// Key id, id prefix (6+ characters) or exact name
    pub key: String,
    /// Dollars: 12.50, $12.50; a negative amount (-3) deducts
    #[arg(allow_hyphen_values = true)]
    pub amount: String,
    #[arg(long)]
    pub note: Option<String>,
    /// The same idempotency key twice applies once
    #[arg(long, value_name = "K")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Record one request: usage row, daily rollup and charge of a prepaid key
    Record(RecordArgs),
}

/// What a request asked for: checked against a key's allow lists.
#[derive(Debug, Args)]
pub struct RequestTarget {
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub api_format: Option<String>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    pub key: String,
    #[arg(long)]
    pub tokens: i64,
    /// Cost in dollars
    #[arg(long, value_name = "USD")]
    pub cost: String,
    #[arg(long, value_name = "N")]
    pub response_ms: Option<i64>,
    #[command(flatten)]
    pub target: RequestTarget,
    /// Recording the same request id twice charges once
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// When the request happened (RFC 3339) [default: now]
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

/// `Debug` never shows the presented key.
#[derive(Args)]
pub struct VerifyArgs {
    /// The presented key
    pub plaintext: String,
    #[command(flatten)]
    pub target: RequestTarget,
}

impl std::fmt::Debug for VerifyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyArgs").field("plaintext", &"<redacted>").field("target", &self.target).finish()
    }
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Report what would happen; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep sweeping on this timer (60s, 5m…) until SIGTERM or Ctrl-C
    #[arg(long, value_name = "DURATION")]
    pub every: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 30)]
    pub users: u32,
    #[arg(long, default_value_t = 300)]
    pub keys: u32,
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// Usage rows in all [default: about 60 per key and day of activity]
    #[arg(long)]
    pub usage_rows: Option<u64>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import an Aether database: its users, its keys (same ids and hashes: every plaintext
    /// still verifies) and their usage, in one transaction; a re-run skips what is there
    Aether(AetherImportArgs),
}

/// `Debug` never shows the encryption key.
#[derive(Args)]
pub struct AetherImportArgs {
    /// Aether's database, as its DATABASE_URL: postgres://USER@HOST/DB or sqlite://PATH
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Aether's ENCRYPTION_KEY: each key's stored copy comes over, so reveal works
    #[arg(long, value_name = "KEY", conflicts_with = "encryption_key_file")]
    pub encryption_key: Option<String>,
    /// File holding Aether's ENCRYPTION_KEY (keeps it out of the process list)
    #[arg(long, value_name = "PATH")]
    pub encryption_key_file: Option<PathBuf>,
    /// Read and convert everything and report; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

impl std::fmt::Debug for AetherImportArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AetherImportArgs")
            .field("from", &crate::store::redact_url(&self.from))
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "<redacted>"))
            .field("encryption_key_file", &self.encryption_key_file)
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

/// Exactly one of a key, `--all` or `--user`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("subject").required(true).args(["key", "all", "user"])))]
pub struct StatsArgs {
    /// Key id, id prefix (6+ characters) or exact name
    pub key: Option<String>,
    /// The whole fleet, purged keys' usage included
    #[arg(long)]
    pub all: bool,
    /// Every key of this user, purged ones included
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Number of days, today included
    #[arg(long, default_value_t = 30)]
    pub days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpenderArg {
    Key,
    User,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Number of days, today included
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Rank keys or users
    #[arg(long, value_enum, default_value_t = SpenderArg::Key)]
    pub by: SpenderArg,
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
}

/// `keytop audit`; its actor filter is the global `--actor`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only the rows of this key (id, id prefix of 6+ characters or exact name)
    #[arg(long)]
    pub key: Option<String>,
    /// Only the rows of this action (topup, create, update, sweep_disable…)
    #[arg(long)]
    pub action: Option<String>,
    /// Only rows from this long ago on (24h, 7d…), or from a time (RFC 3339 or a date)
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// The page after this row id (the last id of the previous page)
    #[arg(long, value_name = "ID")]
    pub before: Option<i64>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// Budget, refill and low-balance flags of create and update.
#[derive(Debug, Args, Default)]
pub struct MoneyFields {
    /// Spending budget per period in dollars; "none" removes it. Reached: verify says budget_exceeded
    #[arg(long, value_name = "USD|none", allow_hyphen_values = true)]
    pub budget: Option<String>,
    /// Period of the budget, calendar-aligned in UTC (weeks start Monday) [default: month]
    #[arg(long, value_name = "day|week|month")]
    pub budget_period: Option<String>,
    /// Refill of a prepaid balance each period, applied by the sweep; "none" removes it
    #[arg(long, value_name = "USD|none", allow_hyphen_values = true)]
    pub refill: Option<String>,
    /// Period of the refill [default: month]
    #[arg(long, value_name = "day|week|month")]
    pub refill_period: Option<String>,
    /// add: add the amount; reset: top the remaining balance back up to it [default: add]
    #[arg(long, value_name = "add|reset")]
    pub refill_mode: Option<String>,
    /// Alert under this remaining balance; "none" for no line, "default" for alerts.low_balance
    #[arg(long, value_name = "USD|none|default", allow_hyphen_values = true)]
    pub low_balance: Option<String>,
}
