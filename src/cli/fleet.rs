//! `keytop stats --all|--user`, `top`, `users show`, `audit`: the fleet's questions.

use serde_json::json;

use super::args::{AuditArgs, SpenderArg, StatsArgs, TopArgs};
use super::output::{
    KeyListing, KeyView, out, print_fields, print_json, print_records, print_series, print_table, series_json,
    timestamp,
};
use super::{Context, parse};
use crate::domain::text::sanitize;
use crate::domain::{AuditQuery, SpenderKind, UsageTotals, ValidationError, duration::parse_duration};
use crate::service::USER_KEYS_SHOWN;

pub async fn stats(ctx: &Context, args: StatsArgs) -> anyhow::Result<()> {
    match (args.key, args.user) {
        (Some(key), _) => super::money::stats(ctx, &key, args.days).await,
        (None, Some(name)) => user_stats(ctx, &name, args.days).await,
        (None, None) => fleet_stats(ctx, args.days).await,
    }
}

fn totals_json(totals: &UsageTotals) -> serde_json::Value {
    json!({ "requests": totals.requests, "tokens": totals.tokens, "cost": totals.cost })
}

fn totals_text(totals: &UsageTotals) -> String {
    format!("{} ({} requests, {} tokens)", totals.cost, totals.requests, totals.tokens)
}

async fn fleet_stats(ctx: &Context, days: u32) -> anyhow::Result<()> {
    let stats = ctx.service.fleet_stats(days).await?;
    let purged = UsageTotals {
        requests: stats.purged.total_requests,
        tokens: stats.purged.total_tokens,
        cost: stats.purged.total_cost,
    };
    if ctx.json {
        let mut fields = serde_json::Map::from_iter([
            ("scope".to_string(), json!("fleet")),
            ("today".to_string(), totals_json(&stats.today)),
            ("yesterday".to_string(), totals_json(&stats.yesterday)),
            ("purged_keys".to_string(), totals_json(&purged)),
        ]);
        fields.extend(series_json(&stats.usage));
        print_json(&fields);
    } else {
        let extra = vec![
            ("today", totals_text(&stats.today)),
            ("yesterday", totals_text(&stats.yesterday)),
            ("purged keys", format!("{}, by keys since deleted", totals_text(&purged))),
        ];
        print_series("fleet", &stats.usage, extra);
    }
    Ok(())
}

async fn user_stats(ctx: &Context, name: &str, days: u32) -> anyhow::Result<()> {
    let stats = ctx.service.user_stats(name, days).await?;
    if ctx.json {
        let mut fields = serde_json::Map::from_iter([
            ("user".to_string(), json!(stats.user.name)),
            ("user_id".to_string(), json!(stats.user.id)),
        ]);
        fields.extend(series_json(&stats.usage));
        print_json(&fields);
    } else {
        print_series(&format!("user {}", sanitize(&stats.user.name)), &stats.usage, Vec::new());
    }
    Ok(())
}

/// A share as a percentage with one decimal.
fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn totals_cells(totals: &UsageTotals, share: f64) -> [String; 4] {
    [totals.cost.to_string(), percent(share), totals.requests.to_string(), totals.tokens.to_string()]
}

pub async fn top(ctx: &Context, args: TopArgs) -> anyhow::Result<()> {
    let by = match args.by {
        SpenderArg::Key => SpenderKind::Key,
        SpenderArg::User => SpenderKind::User,
    };
    let top = ctx.service.top_spenders(by, args.days, args.limit).await?;
    if ctx.json {
        print_json(&top);
        return Ok(());
    }
    let what = match by {
        SpenderKind::Key => "keys",
        SpenderKind::User => "users",
    };
    out!(
        "top {what} by cost — last {} days (UTC), {} to {}; the fleet spent {}",
        top.days,
        top.first_day,
        top.last_day,
        top.total
    );
    if top.spenders.is_empty() {
        out!("nothing spent in this range");
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = top
        .spenders
        .iter()
        .enumerate()
        .map(|(rank, ranked)| {
            let spender = &ranked.spender;
            let mut row = vec![(rank + 1).to_string(), sanitize(&spender.name).into_owned()];
            // A key's owner; a user has none.
            row.extend(spender.owner.as_deref().map(|owner| sanitize(owner).into_owned()));
            row.extend(totals_cells(&spender.totals, ranked.share));
            row
        })
        .collect();
    if let Some(purged) = &top.purged {
        let mut row = vec!["—".to_string(), "(purged keys)".into(), "—".into()];
        row.extend(totals_cells(&purged.spender, purged.share));
        rows.push(row);
    }
    let headers: &[&str] = match by {
        SpenderKind::Key => &["#", "KEY", "OWNER", "COST", "SHARE", "REQUESTS", "TOKENS"],
        SpenderKind::User => &["#", "USER", "COST", "SHARE", "REQUESTS", "TOKENS"],
    };
    print_table(headers, &rows);
    Ok(())
}

pub async fn user_show(ctx: &Context, name: &str, days: u32) -> anyhow::Result<()> {
    let detail = ctx.service.user_detail(name, days).await?;
    let overview = &detail.overview;
    let now = ctx.service.now();
    if ctx.json {
        let keys: Vec<KeyView> = detail.keys.iter().map(|key| KeyView::new(key, now)).collect();
        print_json(&json!({
            "user": overview.user,
            "keys": overview.keys,
            "active_keys": overview.active_keys,
            "spend": overview.spend,
            "spend_days": detail.days,
            "last_used_at": overview.last_used_at,
            "key_list": keys,
        }));
        return Ok(());
    }
    print_fields(&[
        ("name", sanitize(&overview.user.name).into_owned()),
        ("id", overview.user.id.to_string()),
        ("status", if overview.user.is_active { "active" } else { "disabled" }.into()),
        ("keys", format!("{} active of {}", overview.active_keys, overview.keys)),
        ("spend", format!("{} in the last {} days (UTC)", overview.spend, detail.days)),
        ("last used", overview.last_used_at.map_or_else(|| "never".into(), timestamp)),
        ("created", timestamp(overview.user.created_at)),
    ]);
    if !detail.keys.is_empty() {
        out!("");
        let mut table = KeyListing::new(false, now);
        detail.keys.iter().for_each(|key| table.print(key));
        table.finish();
        if overview.keys > i64::from(USER_KEYS_SHOWN) {
            out!(
                "(the newest {USER_KEYS_SHOWN} of {} keys; keytop keys list --user NAME lists them all)",
                overview.keys
            );
        }
    }
    Ok(())
}

/// `--since`: a duration back from now (24h, 7d) or a time.
fn since(ctx: &Context, text: &str) -> Result<chrono::DateTime<chrono::Utc>, ValidationError> {
    match parse_duration(text) {
        Ok(back) => Ok(ctx.service.now() - back),
        Err(_) => parse::timestamp("--since", text).map_err(|_| {
            ValidationError::new(
                "--since",
                format!("{text:?} is neither a duration (24h, 7d…) nor a time (RFC 3339 or a date)"),
            )
        }),
    }
}

/// `actor`: the global `--actor`, given on the command line (the rows of that actor).
pub async fn audit(ctx: &Context, actor: Option<String>, args: AuditArgs) -> anyhow::Result<()> {
    let key_ids = match &args.key {
        Some(reference) => Some(vec![ctx.service.resolve_key(reference).await?.id]),
        None => None,
    };
    let query = AuditQuery {
        actor,
        action: args.action,
        key_ids,
        since: args.since.as_deref().map(|text| since(ctx, text)).transpose()?,
        before_id: args.before,
        limit: args.limit.max(1),
    };
    let entries = ctx.service.audit_page(&query).await?;
    // A page as long as the limit may hide older rows: one more row, after its last, tells.
    let older_left_out = match entries.last() {
        Some(last) if entries.len() == query.limit as usize => {
            let probe = AuditQuery { before_id: Some(last.id), limit: 1, ..query.clone() };
            !ctx.service.audit_page(&probe).await?.is_empty()
        }
        _ => false,
    };
    let headers = ["ID", "TIME", "ACTOR", "ACTOR KEY", "ACTION", "KEY", "DETAILS"];
    print_records(ctx.json, &entries, "no audit rows", &headers, |e| {
        vec![
            e.id.to_string(),
            timestamp(e.at),
            sanitize(&e.actor).into_owned(),
            e.actor_key.as_deref().map_or_else(|| "—".into(), |key| sanitize(key).into_owned()),
            sanitize(&e.action).into_owned(),
            e.api_key_id.map(|id| id.to_string()[..8].to_string()).unwrap_or_else(|| "—".into()),
            sanitize(&e.details).into_owned(),
        ]
    });
    if older_left_out {
        let (limit, last) = (query.limit, entries.last().map_or(0, |entry| entry.id));
        eprintln!(
            "keytop: showed the newest {limit} audit rows; older ones exist (--before {last} shows the next page)"
        );
    }
    Ok(())
}
