//! Printing for the command line: aligned tables and `key: value` blocks for people, JSON for
//! scripts. Every string from the database is sanitized before it reaches the terminal.

use chrono::{DateTime, Utc};
use serde::Serialize;
use unicode_width::UnicodeWidthStr;
use uuid::Uuid;

use crate::domain::text::{fit, sanitize};
use crate::domain::{ApiKey, Budget, KeyStatus, Money, Refill, duration::format_compact};
use crate::service::{MoneyView, UsageSeries};

/// `println!` that ends the process quietly once stdout is closed (`keytop keys list | head`),
/// where `println!` would panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use out;

pub fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    exit_on_write_error(stdout.write_fmt(line).and_then(|()| stdout.write_all(b"\n")));
}

/// Writes generated text (a completion script, a man page) to stdout as it is.
pub fn write_raw(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    exit_on_write_error(stdout.write_all(bytes).and_then(|()| stdout.flush()));
}

fn exit_on_write_error(result: std::io::Result<()>) {
    if let Err(error) = result {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader has all it wanted; the command itself has already done its work.
            std::process::exit(0);
        }
        eprintln!("keytop: cannot write the output: {error}");
        std::process::exit(1);
    }
}

/// A key as printed: every field plus the derived status and balance.
#[derive(Debug, Serialize)]
pub struct KeyView<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub owner: &'a str,
    pub owner_active: bool,
    pub hint: &'a str,
    pub status: KeyStatus,
    pub is_active: bool,
    pub is_standalone: bool,
    pub credited: Option<Money>,
    pub used: Option<Money>,
    pub remaining: Option<Money>,
    pub rate_limit: Option<i64>,
    pub concurrent_limit: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub auto_delete_on_expiry: Option<bool>,
    pub allowed_providers: Option<&'a [String]>,
    pub allowed_api_formats: Option<&'a [String]>,
    pub allowed_models: Option<&'a [String]>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub budget: Option<Budget>,
    pub refill: Option<Refill>,
    /// The key's own low-balance line; `null` follows the config's `alerts.low_balance`.
    pub low_balance: Option<Money>,
    /// After a roll, until when the replaced secret still verifies; `null` when it does not.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
}

impl<'a> KeyView<'a> {
    pub fn new(key: &'a ApiKey, now: DateTime<Utc>) -> Self {
        let balance = key.balance();
        KeyView {
            id: key.id,
            name: &key.name,
            owner: &key.owner_name,
            owner_active: key.owner_active,
            hint: &key.key_hint,
            status: key.status(now),
            is_active: key.is_active,
            is_standalone: key.is_standalone,
            credited: balance.and_then(|b| b.credited),
            used: balance.map(|b| b.used),
            remaining: balance.and_then(|b| b.remaining),
            rate_limit: key.rate_limit,
            concurrent_limit: key.concurrent_limit,
            expires_at: key.expires_at,
            auto_delete_on_expiry: key.auto_delete_on_expiry,
            allowed_providers: key.allowed_providers.as_deref(),
            allowed_api_formats: key.allowed_api_formats.as_deref(),
            allowed_models: key.allowed_models.as_deref(),
            last_used_at: key.last_used_at,
            created_at: key.created_at,
            updated_at: key.updated_at,
            budget: key.money.budget,
            refill: key.money.refill,
            low_balance: key.money.low_balance,
            previous_secret_valid_until: key.previous_secret_valid_until(now),
        }
    }
}

/// Prints records as JSON, or as a table with one row per record (`empty` when there are none).
pub fn print_records<T: Serialize>(
    json: bool,
    records: &[T],
    empty: &str,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    if json {
        print_json(records);
    } else if records.is_empty() {
        out!("{empty}");
    } else {
        print_table(headers, &records.iter().map(row).collect::<Vec<_>>());
    }
}

/// A time to the second, RFC 3339 UTC.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    out!("{}", serde_json::to_string_pretty(value).expect("JSON of plain data cannot fail"));
}

/// Prints rows under headers, columns padded to their widest cell (in display columns).
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.width());
        }
    }
    print_table_line(&widths, headers.iter().copied());
    for row in rows {
        print_table_line(&widths, row.iter().map(String::as_str));
    }
}

/// One line of a table: each cell but the last padded to its column's width, two spaces apart.
fn print_table_line<'a>(widths: &[usize], cells: impl Iterator<Item = &'a str>) {
    let mut out = String::new();
    for (i, (cell, width)) in cells.zip(widths).enumerate() {
        out.push_str(cell);
        if i + 1 < widths.len() {
            out.push_str(&" ".repeat(width.saturating_sub(cell.width()) + 2));
        }
    }
    out!("{}", out.trim_end());
}

/// Expiry relative to now: `in 3d`, `expired 2h ago`, `never`.
pub fn relative_expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match expires_at {
        None => "never".into(),
        Some(at) if at <= now => format!("expired {} ago", format_compact(now - at)),
        Some(at) => format!("in {}", format_compact(at - now)),
    }
}

/// `—` for a key that is not prepaid, `unlimited`, or the remaining amount.
pub fn remaining_cell(key: &ApiKey) -> String {
    match key.balance() {
        None => "—".into(),
        Some(balance) => balance.remaining.map_or_else(|| "unlimited".into(), |r| r.to_string()),
    }
}

pub fn limit_cell(limit: Option<i64>) -> String {
    limit.map_or_else(|| "none".into(), |l| l.to_string())
}

/// A key listing printed as it is read, page by page, so that a million keys take the memory of
/// one: a table with fixed columns (names and owners cut to them), or a JSON array.
pub struct KeyListing {
    json: bool,
    now: DateTime<Utc>,
    printed: u64,
}

/// The key table's columns and their widths; the last one takes what it needs.
const KEY_COLUMNS: [(&str, usize); 8] = [
    ("ID", 8),
    ("STATUS", 9),
    ("NAME", 32),
    ("OWNER", 16),
    ("KEY", 17),
    ("REMAINING", 14),
    ("RATE/MIN", 8),
    ("EXPIRES", 0),
];

impl KeyListing {
    pub fn new(json: bool, now: DateTime<Utc>) -> KeyListing {
        KeyListing { json, now, printed: 0 }
    }

    pub fn print(&mut self, key: &ApiKey) {
        if self.json {
            let element = serde_json::to_string_pretty(&KeyView::new(key, self.now)).expect("JSON of plain data");
            let opening = if self.printed == 0 { "[" } else { "," };
            out!("{opening}\n  {}", element.replace('\n', "\n  "));
        } else {
            if self.printed == 0 {
                print_table_line(&key_widths(), KEY_COLUMNS.iter().map(|(title, _)| *title));
            }
            let cells = [
                key.id.to_string()[..8].to_string(),
                key.status(self.now).to_string(),
                fit(&sanitize(&key.name), 32).into_owned(),
                fit(&sanitize(&key.owner_name), 16).into_owned(),
                sanitize(&key.key_hint).into_owned(),
                remaining_cell(key),
                limit_cell(key.rate_limit),
                relative_expiry(key.expires_at, self.now),
            ];
            print_table_line(&key_widths(), cells.iter().map(String::as_str));
        }
        self.printed += 1;
    }

    /// Ends the listing: closes the JSON array, or says that nothing matched.
    pub fn finish(self) {
        match (self.json, self.printed) {
            (true, 0) => out!("[]"),
            (true, _) => out!("\n]"),
            (false, 0) => out!("no keys"),
            (false, _) => {}
        }
    }
}

fn key_widths() -> Vec<usize> {
    KEY_COLUMNS.iter().map(|(_, width)| *width).collect()
}

fn list_cell(list: Option<&[String]>) -> String {
    list.map_or_else(
        || "all".into(),
        |items| items.iter().map(|i| sanitize(i).into_owned()).collect::<Vec<_>>().join(", "),
    )
}

fn time_cell(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "never".into(), timestamp)
}

pub fn print_key_detail(key: &ApiKey, money: &MoneyView, now: DateTime<Utc>) {
    let view = KeyView::new(key, now);
    let auto_delete = match key.auto_delete_on_expiry {
        None => "default (global policy)",
        Some(true) => "yes",
        Some(false) => "no",
    };
    let mut fields: Vec<(&str, String)> = vec![
        ("id", key.id.to_string()),
        ("name", sanitize(&key.name).into_owned()),
        ("owner", format!("{}{}", sanitize(&key.owner_name), if key.owner_active { "" } else { " (disabled)" })),
        ("key", sanitize(&key.key_hint).into_owned()),
        ("status", view.status.to_string()),
        ("prepaid", if key.is_standalone { "yes".into() } else { "no".into() }),
    ];
    if let Some(balance) = key.balance() {
        fields.push(("credited", balance.credited.map_or_else(|| "unlimited".into(), |c| c.to_string())));
        fields.push(("used", balance.used.to_string()));
        fields.push(("remaining", balance.remaining.map_or_else(|| "unlimited".into(), |r| r.to_string())));
        fields.push(("refill", Refill::describe_or_none(key.money.refill.as_ref())));
        fields.push(("low balance", money.low_balance.clone()));
    }
    fields.push(("budget", money.budget.map_or_else(|| "none".into(), |budget| budget.describe(now))));
    if let Some(until) = view.previous_secret_valid_until {
        fields.push(("previous secret", format!("valid until {}", timestamp(until))));
    }
    fields.extend([
        ("rate limit", key.rate_limit.map_or_else(|| "none".into(), |l| format!("{l}/min"))),
        ("concurrency", limit_cell(key.concurrent_limit)),
        (
            "expires",
            match key.expires_at {
                None => "never".into(),
                Some(_) => format!("{} ({})", time_cell(key.expires_at), relative_expiry(key.expires_at, now)),
            },
        ),
        ("auto delete", auto_delete.into()),
        ("providers", list_cell(view.allowed_providers)),
        ("api formats", list_cell(view.allowed_api_formats)),
        ("models", list_cell(view.allowed_models)),
        ("last used", time_cell(key.last_used_at)),
        ("created", time_cell(Some(key.created_at))),
        ("updated", time_cell(Some(key.updated_at))),
    ]);
    print_fields(&fields);
}

pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in fields {
        out!("{label:<width$}  {value}");
    }
}

pub fn money_or_unlimited(amount: Option<Money>) -> String {
    amount.map_or_else(|| "unlimited".into(), |a| a.to_string())
}

/// A usage series as `stats --json` prints it: totals, then one entry per UTC day, oldest first.
pub fn series_json(series: &UsageSeries) -> serde_json::Map<String, serde_json::Value> {
    let daily: Vec<_> = series
        .daily
        .iter()
        .map(|d| serde_json::json!({ "date": d.day.to_string(), "requests": d.requests, "tokens": d.tokens, "cost": d.cost }))
        .collect();
    let value = serde_json::json!({
        "days": series.days,
        "first_day": series.first_day.to_string(),
        "last_day": series.last_day.to_string(),
        "total_requests": series.total_requests,
        "total_tokens": series.total_tokens,
        "total_cost": series.total_cost,
        "avg_response_ms": series.avg_response_ms,
        "daily": daily,
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

/// A usage series as `stats` prints it: a title line, the totals with `extra` lines after them,
/// and a table of the days.
pub fn print_series(title: &str, series: &UsageSeries, extra: Vec<(&str, String)>) {
    out!("{title} — last {} days (UTC), {} to {}", series.days, series.first_day, series.last_day);
    let mut fields = vec![
        ("requests", series.total_requests.to_string()),
        ("tokens", series.total_tokens.to_string()),
        ("cost", series.total_cost.to_string()),
        ("avg response", series.avg_response_ms.map_or_else(|| "—".into(), |ms| format!("{ms:.0} ms"))),
    ];
    fields.extend(extra);
    print_fields(&fields);
    out!("");
    let rows: Vec<Vec<String>> = series
        .daily
        .iter()
        .map(|d| vec![d.day.to_string(), d.requests.to_string(), d.tokens.to_string(), d.cost.to_string()])
        .collect();
    print_table(&["DATE", "REQUESTS", "TOKENS", "COST"], &rows);
}
