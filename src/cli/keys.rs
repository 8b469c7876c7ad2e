//! `keytop keys …`

use super::output::out;
use serde_json::json;

use super::args::{CreateArgs, KeyFields, KeySelection, KeysCommand, ListArgs, MoneyFields, UpdateArgs};
use super::output::{KeyListing, KeyView, print_json, print_key_detail};
use super::{Context, parse};
use crate::domain::text::sanitize;
use crate::domain::{
    ActiveFilter, ApiKey, KeyPatch, KeyQuery, KeyScope, LowBalanceLine, MoneyPlan, PageFrom, Patch, PlanInput, SortKey,
    ValidationError, validate,
};
use crate::service::{BulkAction, MAX_BULK_KEYS, MarkedKey, NewKeySpec, keys_word};

pub async fn run(ctx: &Context, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => create(ctx, args).await,
        KeysCommand::List(args) => list(ctx, args).await,
        KeysCommand::Show { key } => print_key(ctx, &ctx.service.resolve_key(&key).await?).await,
        KeysCommand::Update(args) => update(ctx, args).await,
        KeysCommand::Disable(KeySelection { key: Some(key), dry_run: false, .. }) => set_active(ctx, &key, false).await,
        KeysCommand::Enable(KeySelection { key: Some(key), dry_run: false, .. }) => set_active(ctx, &key, true).await,
        KeysCommand::Purge(KeySelection { key: Some(key), dry_run: false, .. }) => {
            let key = ctx.service.resolve_key(&key).await?;
            ctx.service.purge_key(key.id).await?;
            ctx.report(&json!({ "id": key.id, "purged": true }), &format!("purged key {}", key.id));
            Ok(())
        }
        KeysCommand::Disable(selection) => bulk(ctx, selection, BulkAction::Disable).await,
        KeysCommand::Enable(selection) => bulk(ctx, selection, BulkAction::Enable).await,
        KeysCommand::Purge(selection) => bulk(ctx, selection, BulkAction::Purge).await,
        KeysCommand::Roll { key, grace } => {
            let grace = crate::service::parse_grace(&grace)?;
            let key = ctx.service.resolve_key(&key).await?;
            let rolled = ctx.service.roll_key(key.id, grace).await?;
            if ctx.json {
                let mut view = serde_json::to_value(KeyView::new(&rolled.key, ctx.service.now()))?;
                view["key"] = json!(rolled.plaintext);
                print_json(&view);
            } else {
                out!("{}", rolled.plaintext);
            }
            Ok(())
        }
        KeysCommand::Reveal { key } => {
            let key = ctx.service.resolve_key(&key).await?;
            let plaintext = ctx.service.reveal_key(key.id).await?;
            if ctx.json {
                print_json(&json!({ "id": key.id, "key": plaintext }));
            } else {
                out!("{plaintext}");
            }
            Ok(())
        }
    }
}

async fn create(ctx: &Context, args: CreateArgs) -> anyhow::Result<()> {
    let fields = &args.fields;
    let mut spec = NewKeySpec::new(args.user);
    spec.name = fields.name.clone();
    spec.standalone = args.standalone;
    if let Some(balance) = &fields.balance {
        spec.balance = parse::optional_money("--balance", balance)?;
    }
    if let Some(text) = &fields.rate_limit {
        spec.rate_limit = validate::parse_limit("--rate-limit", text)?;
    }
    if let Some(text) = &fields.concurrency {
        spec.concurrent_limit = validate::parse_limit("--concurrency", text)?;
    }
    let now = ctx.service.now();
    spec.expires_at = parse::expiry(fields.expires_in.as_deref(), fields.expires_at.as_deref(), now)?;
    parse::not_past(spec.expires_at, now, fields.allow_past)?;
    let list = |value: &Option<String>| value.as_deref().map(validate::split_list).unwrap_or_default();
    spec.allowed_providers = list(&fields.providers);
    spec.allowed_api_formats = list(&fields.api_formats);
    spec.allowed_models = list(&fields.models);
    if let Some(text) = &fields.auto_delete {
        spec.auto_delete_on_expiry = parse::auto_delete(text)?;
    }
    spec.money = plan_input(&fields.money).parse(&spec.money, ctx.service.now())?.applied_to(spec.money);
    let created = ctx.service.create_key(&spec).await?;
    if ctx.json {
        let mut view = serde_json::to_value(KeyView::new(&created.key, ctx.service.now()))?;
        view["key"] = json!(created.plaintext);
        print_json(&view);
    } else {
        out!("{}", created.plaintext);
    }
    Ok(())
}

async fn list(ctx: &Context, args: ListArgs) -> anyhow::Result<()> {
    let owner = match &args.user {
        Some(name) => Some(ctx.service.user(name).await?.id),
        None => None,
    };
    let mut query = KeyQuery {
        scope: if args.standalone {
            KeyScope::Standalone
        } else if args.user_keys {
            KeyScope::UserKeys
        } else {
            KeyScope::All
        },
        owner,
        active: if args.active {
            ActiveFilter::Active
        } else if args.inactive {
            ActiveFilter::Inactive
        } else {
            ActiveFilter::Any
        },
        filter: args.filter.filter(|f| !f.trim().is_empty()),
        expiring_within: args.expiring.as_deref().map(|text| parse::duration("--expiring", text)).transpose()?,
        low_balance: args.low_balance.as_deref().map(low_balance_line).transpose()?,
        descending: true,
        // One time for every page, so that the pages of a window in time follow each other.
        now: Some(ctx.service.now()),
        ..KeyQuery::default()
    };
    // The keys that need attention first: the soonest expiry, the smallest balance.
    if query.expiring_within.is_some() {
        (query.sort, query.descending) = (SortKey::Expires, false);
    } else if query.low_balance.is_some() {
        (query.sort, query.descending) = (SortKey::Remaining, false);
    }
    let mut listing = KeyListing::new(ctx.json, ctx.service.now());
    let more = stream_keys(ctx, query, args.limit, |key| listing.print(key)).await?;
    listing.finish();
    if let Some(limit) = args.limit.filter(|_| more) {
        eprintln!("keytop: listed the first {limit} matching keys; more match (raise --limit, or drop it to list all)");
    }
    Ok(())
}

/// `--low-balance` alone compares each key with its own line; with USD, every key with that one.
fn low_balance_line(text: &str) -> Result<LowBalanceLine, ValidationError> {
    if text.trim().is_empty() {
        return Ok(LowBalanceLine::KeysOwn { default: None });
    }
    let line = parse::money("--low-balance", text)?;
    if line.is_negative() {
        return Err(ValidationError::new("--low-balance", format!("must not be negative (got {line})")));
    }
    Ok(LowBalanceLine::Fixed(line))
}

fn plan_input(fields: &MoneyFields) -> PlanInput<'_> {
    PlanInput {
        budget: fields.budget.as_deref(),
        budget_period: fields.budget_period.as_deref(),
        refill: fields.refill.as_deref(),
        refill_period: fields.refill_period.as_deref(),
        refill_mode: fields.refill_mode.as_deref(),
        low_balance: fields.low_balance.as_deref(),
    }
}

/// Keys fetched per page while a listing streams.
const LIST_PAGE: u32 = 500;

/// Hands every key `query` matches to `each`, a page at a time (keyset paging, so memory stays
/// that of one page however many match), stopping after `limit` keys if given. Returns whether
/// more keys matched than `limit` let through.
async fn stream_keys(
    ctx: &Context,
    mut query: KeyQuery,
    limit: Option<u64>,
    mut each: impl FnMut(&ApiKey),
) -> anyhow::Result<bool> {
    let mut handed = 0u64;
    loop {
        // With a limit, one row past it tells whether more matched.
        let room = limit.map_or(u64::from(LIST_PAGE), |limit| limit - handed + 1);
        query.limit = room.min(u64::from(LIST_PAGE)) as u32;
        let page = ctx.service.list_keys(&query).await?;
        for key in &page {
            if limit == Some(handed) {
                return Ok(true);
            }
            each(key);
            handed += 1;
        }
        match page.last() {
            Some(last) if page.len() == query.limit as usize => query.from = PageFrom::After(last.id),
            _ => return Ok(false),
        }
    }
}

fn patch_from(
    fields: &KeyFields,
    no_expiry: bool,
    plan: &MoneyPlan,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<KeyPatch> {
    let expires_at = if no_expiry {
        Patch::Clear
    } else {
        let expiry = parse::expiry(fields.expires_in.as_deref(), fields.expires_at.as_deref(), now)?;
        parse::not_past(expiry, now, fields.allow_past)?;
        expiry.map_or(Patch::Keep, Patch::Set)
    };
    Ok(KeyPatch {
        name: fields.name.clone(),
        allowed_providers: parse::list_patch(fields.providers.as_deref()),
        allowed_api_formats: parse::list_patch(fields.api_formats.as_deref()),
        allowed_models: parse::list_patch(fields.models.as_deref()),
        rate_limit: parse::limit_patch("--rate-limit", fields.rate_limit.as_deref())?,
        concurrent_limit: parse::limit_patch("--concurrency", fields.concurrency.as_deref())?,
        expires_at,
        auto_delete_on_expiry: match &fields.auto_delete {
            None => Patch::Keep,
            Some(text) => parse::auto_delete(text)?.map_or(Patch::Clear, Patch::Set),
        },
        money: plan_input(&fields.money).parse(plan, now)?,
    })
}

async fn update(ctx: &Context, args: UpdateArgs) -> anyhow::Result<()> {
    let key = ctx.service.resolve_key(&args.key).await?;
    // Parse every flag before writing anything, so bad input leaves the key unchanged.
    let patch = patch_from(&args.fields, args.no_expiry, &key.money, ctx.service.now())?;
    let credit = args.fields.balance.as_deref().map(|text| parse::optional_money("--balance", text)).transpose()?;
    if credit.is_some() && !key.is_standalone {
        anyhow::bail!(crate::domain::ValidationError::new(
            "--balance",
            "applies only to standalone (prepaid) keys; this key is billed to its owner"
        ));
    }
    let mut updated = ctx.service.update_key(key.id, &patch).await?;
    if let Some(credited) = credit {
        ctx.service.set_credit(key.id, credited, Some("credit set by keys update")).await?;
        updated = ctx.service.key(key.id).await?;
    }
    print_key(ctx, &updated).await
}

/// Every field of a key, with what its budget's period has spent: JSON, or one `field  value`
/// line each.
async fn print_key(ctx: &Context, key: &crate::domain::ApiKey) -> anyhow::Result<()> {
    let now = ctx.service.now();
    let money = ctx.service.money_view(key).await?;
    if ctx.json {
        let mut view = serde_json::to_value(KeyView::new(key, now))?;
        view["budget_spent"] = json!(money.budget.map(|budget| budget.spent));
        print_json(&view);
    } else {
        print_key_detail(key, &money, now);
    }
    Ok(())
}

/// Disables, enables or purges the selected keys, each on its own; more than one only with
/// `--all-matching`. Says which keys failed and why, and fails if any did.
async fn bulk(ctx: &Context, selection: KeySelection, action: BulkAction) -> anyhow::Result<()> {
    let verb = match action {
        BulkAction::Disable => "disable",
        BulkAction::Enable => "enable",
        _ => "purge",
    };
    let keys = selected_keys(ctx, &selection).await?;
    if selection.dry_run {
        if ctx.json {
            print_json(&json!({ "dry_run": true, "action": verb, "keys": keys }));
        } else {
            out!("would {verb} {}:", key_count(keys.len()));
            for key in &keys {
                out!("  {}  {}", key.id, sanitize(&key.name));
            }
        }
        return Ok(());
    }
    if keys.len() > 1 && !selection.all_matching {
        let first: Vec<String> = keys.iter().take(3).map(|key| sanitize(&key.name).into_owned()).collect();
        return Err(ValidationError::new(
            "--all-matching",
            format!(
                "is needed to {verb} more than one key: {} match ({}{}); add it to {verb} them all, or --dry-run \
                 to list them",
                keys.len(),
                first.join(", "),
                if keys.len() > 3 { ", …" } else { "" }
            ),
        )
        .into());
    }
    let report = ctx.service.bulk(&keys, &action).await?;
    if ctx.json {
        print_json(&json!({ "action": verb, "succeeded": report.succeeded, "failed": report.failed }));
    } else {
        out!("{} {}", action.done(), key_count(report.succeeded.len()));
    }
    for failure in &report.failed {
        eprintln!(
            "keytop: not {}: {} ({}): {}",
            action.done(),
            sanitize(&failure.key.name),
            failure.key.id,
            failure.reason
        );
    }
    if !report.failed.is_empty() {
        anyhow::bail!("{} of {} were not {}", report.failed.len(), key_count(keys.len()), action.done());
    }
    Ok(())
}

/// The keys a selection names: its one key, or every match of its filter and owner (at least one).
async fn selected_keys(ctx: &Context, selection: &KeySelection) -> anyhow::Result<Vec<MarkedKey>> {
    if let Some(reference) = &selection.key {
        return Ok(vec![MarkedKey::from(&ctx.service.resolve_key(reference).await?)]);
    }
    let owner = match &selection.user {
        Some(name) => Some(ctx.service.user(name).await?.id),
        None => None,
    };
    let filter = selection.filter.clone();
    if filter.as_deref().is_some_and(|text| text.trim().is_empty()) {
        return Err(ValidationError::new("--filter", "must not be empty (it would match every key)").into());
    }
    let query = KeyQuery { owner, filter, descending: true, ..KeyQuery::default() };
    let (keys, more) = ctx.service.matching_keys(&query).await?;
    if more {
        let message = format!("match more than {MAX_BULK_KEYS} keys; narrow them");
        return Err(ValidationError::new("--filter/--user", message).into());
    }
    if keys.is_empty() {
        return Err(ValidationError::new("--filter/--user", "match no key").into());
    }
    Ok(keys)
}

/// `1 key`, `24 keys`.
fn key_count(count: usize) -> String {
    format!("{count} {}", keys_word(count))
}

async fn set_active(ctx: &Context, reference: &str, active: bool) -> anyhow::Result<()> {
    let key = ctx.service.resolve_key(reference).await?;
    let key = ctx.service.set_key_active(key.id, active).await?;
    let word = if active { "enabled" } else { "disabled" };
    ctx.report(&KeyView::new(&key, ctx.service.now()), &format!("{word} key {}", key.id));
    Ok(())
}
