//! The command line: parse, set up the service, run one command, map the result to an exit code.

mod admin;
pub mod args;
mod demo;
mod fleet;
pub mod generated;
mod import;
mod keys;
mod money;
mod output;
mod parse;

use output::out;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde::Serialize;

pub use args::Cli;
use args::Command;

use crate::config::Config;
use crate::master_key::{self, MasterKeyOrigin};
use crate::service::{AlertCommand, KeyService, MasterKeySource, ServiceError, ServiceSettings};
use crate::store::changes::ChangeFeed;
use crate::store::{self, StoreError};

/// Exit status for bad usage or bad input (nothing was written).
pub const EXIT_USAGE: u8 = 2;
/// Exit status of a `verify` denial.
pub const EXIT_DENIED: u8 = 3;

/// How a successful command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `verify` said no.
    Denied,
}

/// Everything a command needs.
pub struct Context {
    pub service: KeyService,
    /// Where the database is (with its password, if any: never shown).
    pub database_url: String,
    pub config: Config,
    pub json: bool,
}

impl Context {
    /// Prints a command's result: the value as JSON with `--json`, else the sentence.
    fn report<T: Serialize + ?Sized>(&self, value: &T, text: &str) {
        if self.json {
            output::print_json(value);
        } else {
            out!("{text}");
        }
    }
}

/// Runs the parsed command line and returns the process exit code. Errors are printed here.
pub async fn main(cli: Cli) -> ExitCode {
    match run(cli).await {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Denied) => ExitCode::from(EXIT_DENIED),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "command failed");
            eprintln!("keytop: {error:#}");
            ExitCode::from(exit_code_of(&error))
        }
    }
}

fn exit_code_of(error: &anyhow::Error) -> u8 {
    let user_error = error.chain().any(|cause| {
        cause.downcast_ref::<ServiceError>().is_some_and(ServiceError::is_user_error)
            || cause.is::<crate::domain::ValidationError>()
            || cause.is::<crate::config::ConfigError>()
    });
    if user_error { EXIT_USAGE } else { 1 }
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    if cli.demo {
        return demo::run_tui_on_demo_data(&cli).await.map(|()| Outcome::Success);
    }
    // These describe the command line itself: no database, config or master key needed.
    match &cli.command {
        Some(Command::Completions { shell }) => generated::print_completions(*shell),
        Some(Command::Man { dir }) => generated::print_man(dir.as_deref())?,
        _ => return dispatch(setup(&cli).await?, cli).await,
    }
    Ok(Outcome::Success)
}

async fn dispatch(ctx: Context, cli: Cli) -> anyhow::Result<Outcome> {
    // Alerts started by the command are waited for before the process exits (which would kill
    // them), whether the command succeeded or not.
    let service = ctx.service.clone();
    let outcome = run_command(ctx, cli).await;
    service.finish_alerts().await;
    outcome
}

async fn run_command(ctx: Context, cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        None | Some(Command::Tui) => {
            let (_feed, options) = live_tui_options(&ctx, cli.read_only).await;
            crate::tui::run(ctx.service, options).await?;
        }
        Some(Command::Users(command)) => admin::users(&ctx, command).await?,
        Some(Command::Keys(command)) => keys::run(&ctx, command).await?,
        Some(Command::Topup(args)) => money::topup(&ctx, args).await?,
        Some(Command::Balance { key }) => money::balance(&ctx, &key).await?,
        Some(Command::Ledger { key }) => money::ledger(&ctx, &key).await?,
        Some(Command::Usage(args::UsageCommand::Record(args))) => money::record_usage(&ctx, args).await?,
        Some(Command::Stats(args)) => fleet::stats(&ctx, args).await?,
        Some(Command::Top(args)) => fleet::top(&ctx, args).await?,
        Some(Command::Verify(args)) => return money::verify(&ctx, args).await,
        Some(Command::Sweep(args)) => admin::sweep(&ctx, args).await?,
        Some(Command::Audit(args)) => fleet::audit(&ctx, cli.actor, args).await?,
        Some(Command::Migrate) => admin::migrate(&ctx).await?,
        Some(Command::Rekey { new_key_file }) => admin::rekey(&ctx, &new_key_file).await?,
        Some(Command::Demo(args)) => {
            crate::demo::fill(&ctx.service, &crate::demo::DemoSpec::from(&args), true).await?;
        }
        Some(Command::Import(args::ImportCommand::Aether(args))) => import::aether(&ctx, args).await?,
        Some(Command::Completions { .. } | Command::Man { .. }) => unreachable!("run answers these without a database"),
        Some(Command::Serve(args)) => {
            let overrides = crate::serve::ServeOverrides {
                listen: args.listen,
                host_key: args.host_key,
                authorized_keys: args.authorized_keys,
            };
            let (_feed, options) = live_tui_options(&ctx, cli.read_only).await;
            crate::serve::run(ctx.service, options, ctx.config.serve.clone(), overrides).await?;
        }
    }
    Ok(Outcome::Success)
}

pub fn tui_options(config: &Config, read_only: bool) -> crate::tui::TuiOptions {
    crate::tui::TuiOptions {
        read_only,
        ui: config.ui,
        sweep: config.sweep,
        keybindings: config.keybindings.clone(),
        changes: None,
    }
}

/// The TUI's options with live updates: the change feed (kept by the caller while the TUI runs)
/// and the options watching it. Without a feed the TUI still works, refreshing on demand or on
/// its timer, so a feed that does not start is only logged.
async fn live_tui_options(ctx: &Context, read_only: bool) -> (Option<ChangeFeed>, crate::tui::TuiOptions) {
    let feed = start_change_feed(&ctx.database_url).await;
    let changes = feed.as_ref().map(ChangeFeed::changes);
    (feed, crate::tui::TuiOptions { changes, ..tui_options(&ctx.config, read_only) })
}

/// The change feed of the database at `url`, or none (logged) if it does not start.
pub(super) async fn start_change_feed(url: &str) -> Option<ChangeFeed> {
    ChangeFeed::start(url)
        .await
        .inspect_err(|error| tracing::warn!(%error, "no live updates: the change feed did not start"))
        .ok()
}

/// Reads the config, opens the database, loads the master key and builds the service.
pub async fn setup(cli: &Cli) -> anyhow::Result<Context> {
    let config = load_config(cli)?;
    // The actor is written into the shared ledger and audit log, which other tools read raw.
    let actor = crate::domain::validate::name("--actor (or KEYTOP_ACTOR)", &actor(cli), 100)?;
    let url = cli.db.clone().or_else(|| config.database_url.clone()).unwrap_or_else(crate::paths::default_database_url);
    if let Some(warning) = store::sqlite::readable_by_others(&url) {
        eprintln!("keytop: {warning}");
    }
    let mut upgrade = None;
    let store = store::open_announcing(&url, |schema| {
        eprintln!(
            "keytop: upgrading the database schema from version {} to {}; on a large database this can take a minute",
            schema.from, schema.to
        );
        upgrade = Some((schema, Instant::now()));
    })
    .await
    .map_err(|error| match error {
        StoreError::Unavailable { .. } => anyhow::Error::new(error),
        other => {
            anyhow::Error::new(other).context(format!("cannot prepare the database at {}", store::redact_url(&url)))
        }
    })?;
    if let Some((schema, started)) = upgrade {
        eprintln!(
            "keytop: database schema upgraded to version {} in {:.1} s",
            schema.to,
            started.elapsed().as_secs_f64()
        );
    }
    let service = KeyService::new(store, load_master_key(cli), service_settings(&config), actor);
    Ok(Context { service, database_url: url, config, json: cli.json })
}

pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let (path, required) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (crate::paths::default_config_file(), false),
    };
    Ok(Config::load(&path, required)?)
}

pub fn service_settings(config: &Config) -> ServiceSettings {
    ServiceSettings {
        key_prefix: config.key_prefix.clone(),
        global_auto_delete: config.sweep.auto_delete,
        low_balance: config.alerts.low_balance,
        alert_command: (!config.alerts.command.is_empty())
            .then(|| AlertCommand { program_and_args: config.alerts.command.clone(), timeout: config.alerts.timeout }),
    }
}

pub fn load_master_key(cli: &Cli) -> MasterKeySource {
    if let Ok(text) = std::env::var("KEYTOP_MASTER_KEY") {
        return master_key::load(MasterKeyOrigin::Env(&text));
    }
    let (path, create_if_missing): (PathBuf, bool) = match &cli.master_key_file {
        Some(path) => (path.clone(), false),
        None => (crate::paths::default_master_key_file(), true),
    };
    master_key::load(MasterKeyOrigin::File { path: &path, create_if_missing })
}

/// `--actor`, else `KEYTOP_ACTOR`, else the login name, else the name of the user the process
/// runs as (cron jobs and containers often have no `$USER`; "unknown" in the audit log helps
/// nobody).
pub fn actor(cli: &Cli) -> String {
    let named = |name: &String| !name.trim().is_empty();
    cli.actor
        .clone()
        .filter(named)
        .or_else(|| std::env::var("KEYTOP_ACTOR").ok().filter(named))
        .or_else(|| std::env::var("USER").ok().filter(named))
        .or_else(|| std::env::var("LOGNAME").ok().filter(named))
        .or_else(|| whoami::username().ok().filter(named))
        .unwrap_or_else(|| "unknown".into())
}

/// Resolves on Ctrl-C or SIGTERM: how a service manager stops a long-running command.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
