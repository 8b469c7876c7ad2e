//! `keytop users …`, `sweep`, `migrate`, `rekey`.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::Context;
use super::args::{SweepArgs, UsersCommand};
use super::output::{print_records, timestamp};
use crate::domain::text::sanitize;
use crate::domain::{ValidationError, duration::parse_duration};
use crate::store::SweepReport;

pub async fn users(ctx: &Context, command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Add { name } => {
            let user = ctx.service.add_user(&name).await?;
            ctx.report(&user, &format!("added user {}", sanitize(&user.name)));
        }
        UsersCommand::List => {
            let users = ctx.service.users().await?;
            print_records(ctx.json, &users, "no users", &["NAME", "STATUS", "KEYS", "CREATED"], |u| {
                vec![
                    sanitize(&u.user.name).into_owned(),
                    if u.user.is_active { "active" } else { "disabled" }.into(),
                    u.key_count.to_string(),
                    timestamp(u.user.created_at),
                ]
            });
        }
        UsersCommand::Show { name, days } => super::fleet::user_show(ctx, &name, days).await?,
        UsersCommand::Disable { name } => set_user_active(ctx, &name, false).await?,
        UsersCommand::Enable { name } => set_user_active(ctx, &name, true).await?,
    }
    Ok(())
}

async fn set_user_active(ctx: &Context, name: &str, active: bool) -> anyhow::Result<()> {
    let user = ctx.service.set_user_active(name, active).await?;
    let word = if active { "enabled" } else { "disabled" };
    ctx.report(&user, &format!("{word} user {}", sanitize(&user.name)));
    Ok(())
}

fn sweep_summary(report: &SweepReport, dry_run: bool) -> String {
    let (disable, delete, refill) =
        if dry_run { ("would disable", "would delete", "would refill") } else { ("disabled", "deleted", "refilled") };
    let mut text = if report.skipped {
        "expiry skipped: another keytop process is sweeping right now".to_string()
    } else {
        format!("{disable} {}, {delete} {}", report.disabled_count, report.deleted_count)
    };
    text.push_str(&format!(", {refill} {}", report.refilled));
    for (verb, keys) in [(disable, &report.disabled), (delete, &report.deleted)] {
        for key in keys {
            text.push_str(&format!("\n  {verb} {} {}", key.id, sanitize(&key.name)));
        }
    }
    for key in &report.refilled_keys {
        text.push_str(&format!("\n  {refill} {} {}: +{} for {}", key.id, sanitize(&key.name), key.added, key.period));
        if key.missed_periods > 0 {
            let periods = if key.missed_periods == 1 { "period" } else { "periods" };
            text.push_str(&format!(" (late: {} earlier {periods} not refilled)", key.missed_periods));
        }
    }
    if report.truncated || report.refilled > report.refilled_keys.len() as u64 {
        text.push_str(&format!("\n  (only the first {} of each are listed)", crate::store::SWEEP_SAMPLE));
    }
    text
}

fn sweep_json(report: &SweepReport, dry_run: bool) -> serde_json::Value {
    json!({
        "dry_run": dry_run,
        "skipped": report.skipped,
        "disabled": report.disabled_count,
        "deleted": report.deleted_count,
        "disabled_keys": report.disabled,
        "deleted_keys": report.deleted,
        "truncated": report.truncated || report.refilled > report.refilled_keys.len() as u64,
        "refilled": report.refilled,
        "refilled_keys": report.refilled_keys,
    })
}

pub async fn sweep(ctx: &Context, args: SweepArgs) -> anyhow::Result<()> {
    let Some(every) = args.every.as_deref() else {
        let report = ctx.service.sweep(args.dry_run).await?;
        ctx.report(&sweep_json(&report, args.dry_run), &sweep_summary(&report, args.dry_run));
        return Ok(());
    };
    let period =
        parse_duration(every).map_err(|error| ValidationError::new("--every", format!("{every:?} {error}")))?;
    let period = Duration::from_secs(period.num_seconds().unsigned_abs());
    let mut timer = tokio::time::interval(period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stop = std::pin::pin!(super::shutdown_signal());
    tracing::info!(?period, "sweeping on a timer");
    loop {
        tokio::select! {
            _ = &mut stop => {
                tracing::info!("sweep timer stopped by signal");
                return Ok(());
            }
            _ = timer.tick() => {
                // One failed sweep (database briefly away) must not end the timer.
                match ctx.service.sweep(args.dry_run).await {
                    Ok(report) => {
                        tracing::info!(disabled = report.disabled_count, deleted = report.deleted_count, "sweep");
                        ctx.report(&sweep_json(&report, args.dry_run), &format!(
                            "{} {}",
                            timestamp(ctx.service.now()),
                            sweep_summary(&report, args.dry_run)
                        ));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "sweep failed");
                        eprintln!("keytop: sweep failed: {error}; retrying in {every}");
                    }
                }
            }
        }
    }
}

pub async fn migrate(ctx: &Context) -> anyhow::Result<()> {
    let version = ctx.service.store().migrate().await?;
    ctx.report(
        &json!({ "database": ctx.service.describe_database(), "schema_version": version }),
        &format!("{}: schema version {version}", ctx.service.describe_database()),
    );
    Ok(())
}

pub async fn rekey(ctx: &Context, new_key_file: &Path) -> anyhow::Result<()> {
    // The new key is on disk before any key is sealed with it, so a crash cannot lose it.
    let new_key = crate::master_key::load(crate::master_key::MasterKeyOrigin::File {
        path: new_key_file,
        create_if_missing: true,
    })
    .map_err(anyhow::Error::msg)?;
    let count = ctx.service.rekey(&new_key).await?;
    let path = new_key_file.display();
    ctx.report(
        &json!({ "resealed": count, "new_key_file": path.to_string() }),
        &format!(
            "re-sealed {count} keys under the master key in {path}; from now on run keytop with \
             --master-key-file {path} (or move it over the old key file) and keep the old key until then"
        ),
    );
    Ok(())
}
