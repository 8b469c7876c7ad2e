//! The demo from the command line: `keytop demo` fills the configured database, `keytop --demo`
//! opens the TUI on a throwaway one. The data itself comes from [`crate::demo`].

use super::args::{Cli, DemoArgs};
use super::{actor, load_config, service_settings, start_change_feed, tui_options};
use crate::demo::{self, DemoSpec};
use crate::service::KeyService;
use crate::store::changes::ChangeFeed;

impl From<&DemoArgs> for DemoSpec {
    fn from(args: &DemoArgs) -> Self {
        DemoSpec {
            users: args.users.max(1),
            keys: args.keys,
            days: args.days.max(1),
            usage_rows: args.usage_rows.unwrap_or(u64::from(args.keys) * u64::from(args.days.max(1)) * 2),
            seed: args.seed,
        }
    }
}

/// `keytop --demo`: the TUI on a throwaway SQLite database, removed on exit, also on SIGTERM or
/// SIGHUP (the TUI quits on them; while the data loads, loading stops).
pub(super) async fn run_tui_on_demo_data(cli: &Cli) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    // Listening before the directory exists: from here on these signals end in a return, never in
    // a kill that would leave the directory behind.
    let mut hangup = crate::tui::Hangup::new()?;
    let dir = tempfile::Builder::new().prefix("keytop-demo-").tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let store = crate::store::open(&url).await?;
    // A throwaway master key: the demo's keys are as disposable as its database.
    let (master_key, _) = crate::crypto::MasterKey::generate();
    let service = KeyService::new(store, Ok(master_key), service_settings(&config), actor(cli));
    let spec = DemoSpec::default();
    tokio::select! {
        filled = demo::fill(&service, &spec, false) => { filled?; }
        () = hangup.recv() => return Ok(()),
    }
    // Live like any other TUI: another keytop may open the demo's database too.
    let feed = start_change_feed(&url).await;
    let options = crate::tui::TuiOptions {
        changes: feed.as_ref().map(ChangeFeed::changes),
        ..tui_options(&config, cli.read_only)
    };
    let outcome = crate::tui::run_with_hangup(service, options, hangup).await;
    drop(feed);
    drop(dir);
    outcome
}
