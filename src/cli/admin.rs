//! `keytop users …`, `sweep`, `audit`, `migrate`.

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
    if report.skipped {
        return "skipped: another keytop process is sweeping right now".into();
    }
    let (disable, delete) = if dry_run { ("would disable", "would delete") } else { ("disabled", "deleted") };
    let mut text = format!("{disable} {}, {delete} {}", report.disabled_count, report.deleted_count);
    for (verb, keys) in [(disable, &report.disabled), (delete, &report.deleted)] {
        for key in keys {
            text.push_str(&format!("\n  {verb} {} {}", key.id, sanitize(&key.name)));
        }
    }
    if report.truncated {
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
        "truncated": report.truncated,
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

pub async fn audit(ctx: &Context, key: Option<&str>, limit: u32) -> anyhow::Result<()> {
    let key_id = match key {
        Some(reference) => Some(ctx.service.resolve_key(reference).await?.id),
        None => None,
    };
    let limit = limit.max(1);
    // One row past the limit tells whether older rows were left out.
    let mut entries = ctx.service.audit(key_id, limit.saturating_add(1)).await?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    print_records(ctx.json, &entries, "no audit rows", &["TIME", "ACTOR", "ACTION", "KEY", "DETAILS"], |e| {
        vec![
            timestamp(e.at),
            sanitize(&e.actor).into_owned(),
            sanitize(&e.action).into_owned(),
            e.api_key_id.map(|id| id.to_string()[..8].to_string()).unwrap_or_else(|| "—".into()),
            sanitize(&e.details).into_owned(),
        ]
    });
    if more {
        eprintln!("keytop: showed the newest {limit} audit rows; older ones exist (raise --limit to see them)");
    }
    Ok(())
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
