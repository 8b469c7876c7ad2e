//! `keytop topup`, `balance`, `ledger`, `usage record`, `stats`, `verify`.

use super::output::out;
use serde_json::json;

use super::args::{RecordArgs, TopupArgs, VerifyArgs};
use super::output::{
    money_or_unlimited, print_fields, print_json, print_records, print_series, series_json, timestamp,
};
use super::{Context, Outcome, parse};
use crate::domain::text::sanitize;
use crate::service::{KeyStats, UsageInput, VerifyDecision, VerifyRequest};
use crate::store::UsageOutcome;

pub async fn topup(ctx: &Context, args: TopupArgs) -> anyhow::Result<()> {
    let amount = parse::money("AMOUNT", &args.amount)?;
    let key = ctx.service.resolve_key(&args.key).await?;
    let result = ctx.service.top_up(key.id, amount, args.note.as_deref(), args.idempotency_key.as_deref()).await?;
    let entry = &result.entry;
    let verb = if entry.delta.is_negative() { "deducted" } else { "added" };
    let text = format!(
        "{}{verb} {} on {}; remaining {}",
        if result.replayed { "already applied: " } else { "" },
        entry.delta.abs(),
        sanitize(&key.name),
        money_or_unlimited(result.balance.remaining)
    );
    ctx.report(&result, &text);
    Ok(())
}

pub async fn balance(ctx: &Context, reference: &str) -> anyhow::Result<()> {
    let key = ctx.service.resolve_key(reference).await?;
    let balance = ctx.service.balance(key.id).await?;
    if ctx.json {
        print_json(&balance);
    } else {
        print_fields(&[
            ("credited", money_or_unlimited(balance.credited)),
            ("used", balance.used.to_string()),
            ("remaining", money_or_unlimited(balance.remaining)),
        ]);
    }
    Ok(())
}

pub async fn ledger(ctx: &Context, reference: &str) -> anyhow::Result<()> {
    let key = ctx.service.resolve_key(reference).await?;
    let entries = ctx.service.ledger(key.id, None).await?;
    let headers = ["TIME", "ACTOR", "DELTA", "CREDITED AFTER", "NOTE"];
    print_records(ctx.json, &entries, "no balance adjustments", &headers, |e| {
        vec![
            timestamp(e.at),
            sanitize(&e.actor).into_owned(),
            e.delta.to_string(),
            money_or_unlimited(e.credited_after),
            e.note.as_deref().map(|n| sanitize(n).into_owned()).unwrap_or_default(),
        ]
    });
    Ok(())
}

pub async fn record_usage(ctx: &Context, args: RecordArgs) -> anyhow::Result<()> {
    let input = UsageInput {
        request_id: args.request_id,
        provider: args.target.provider,
        model: args.target.model,
        api_format: args.target.api_format,
        total_tokens: args.tokens,
        cost: parse::money("--cost", &args.cost)?,
        response_time_ms: args.response_ms,
        at: args.at.as_deref().map(|text| parse::timestamp("--at", text)).transpose()?,
    };
    let key = ctx.service.resolve_key(&args.key).await?;
    let outcome = ctx.service.record_usage(key.id, &input).await?;
    let text = match outcome {
        UsageOutcome::Recorded { charged: true } => format!("recorded; charged {} to the prepaid balance", input.cost),
        UsageOutcome::Recorded { charged: false } => "recorded".to_string(),
        UsageOutcome::Duplicate => "already recorded (same request id): nothing charged".to_string(),
        UsageOutcome::UnknownKey => unreachable!("the service turns an unknown key into an error"),
    };
    ctx.report(&json!({ "outcome": outcome }), &text);
    Ok(())
}

pub async fn stats(ctx: &Context, reference: &str, days: u32) -> anyhow::Result<()> {
    let key = ctx.service.resolve_key(reference).await?;
    let KeyStats { key_id, series } = ctx.service.stats(key.id, days).await?;
    if ctx.json {
        let mut fields = serde_json::Map::from_iter([("key_id".to_string(), json!(key_id))]);
        fields.extend(series_json(&series));
        print_json(&fields);
    } else {
        print_series(&sanitize(&key.name), &series, Vec::new());
    }
    Ok(())
}

pub async fn verify(ctx: &Context, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let target = args.target;
    let request = VerifyRequest { provider: target.provider, model: target.model, api_format: target.api_format };
    let decision = ctx.service.verify(&args.plaintext, &request).await?;
    if ctx.json {
        print_json(&decision);
    }
    match decision {
        VerifyDecision::Allowed { remaining_balance, remaining_requests, recorded_requests, .. } => {
            if !ctx.json {
                let requests = match (recorded_requests, remaining_requests) {
                    (Some(recorded), Some(left)) => format!("{recorded} of {} this minute", recorded + left),
                    _ => "unlimited".into(),
                };
                out!(
                    "allowed (remaining balance: {}; recorded requests: {requests})",
                    money_or_unlimited(remaining_balance)
                );
            }
            Ok(Outcome::Success)
        }
        VerifyDecision::Denied { reason, .. } => {
            if !ctx.json {
                out!("{}", reason.as_str());
            }
            Ok(Outcome::Denied)
        }
    }
}
