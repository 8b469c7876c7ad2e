//! Demo data: realistic users, keys and usage, deterministic for a seed. Ids and secret keys are
//! the exception: they always come from the OS random source, so that filling a database twice
//! with one seed cannot collide and no demo key is predictable.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::{ApiKey, LedgerEntry, Money, MoneyPlan, User};
use crate::service::{KeyService, ServiceResult};
use crate::store::{BulkLoad, UsageRecord};

/// Usage rows are generated and loaded in chunks of this size, so memory stays flat at any
/// volume; each chunk is one `bulk_load` (one transaction).
const USAGE_CHUNK: u64 = 50_000;
/// Keys are generated and loaded in chunks of this size.
const KEY_CHUNK: u32 = 20_000;

const FIRST_NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia",
    "peggy", "rupert", "sybil", "trent", "uma", "victor", "wendy", "xavier", "yara", "zoe", "amir", "bea", "chen",
    "dmitri", "elif", "farah", "goran",
];
const TEAMS: &[&str] = &["search", "support", "batch", "eval", "chatbot", "docs", "billing", "growth", "infra", "ml"];
const PURPOSES: &[&str] = &["prod", "staging", "dev", "ci", "nightly", "canary", "backfill", "playground"];
const PROVIDERS: &[&str] = &["openai", "anthropic", "google", "mistral", "deepseek"];
const API_FORMATS: &[&str] = &["OPENAI", "CLAUDE", "GEMINI", "CLAUDE_CLI"];
/// Model names with their price in micro-dollars per 1,000 tokens.
const MODELS: &[(&str, &str, i64)] = &[
    ("openai", "gpt-4o", 6_000),
    ("openai", "gpt-4o-mini", 400),
    ("anthropic", "claude-sonnet-4", 9_000),
    ("anthropic", "claude-haiku-4", 1_500),
    ("google", "gemini-2.5-pro", 5_000),
    ("mistral", "mistral-large", 4_000),
    ("deepseek", "deepseek-chat", 700),
];

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSpec {
    pub users: u32,
    pub keys: u32,
    pub days: u32,
    pub usage_rows: u64,
    pub seed: u64,
}

impl Default for DemoSpec {
    /// The data of `keytop --demo`: about 30 users, 300 keys, 90 days of usage.
    fn default() -> Self {
        DemoSpec { users: 30, keys: 300, days: 90, usage_rows: 60_000, seed: 42 }
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn pick_some(rng: &mut StdRng, items: &[&str]) -> Vec<String> {
    let count = rng.gen_range(1..=items.len().min(3));
    let mut chosen: Vec<String> = Vec::with_capacity(count);
    while chosen.len() < count {
        let item = pick(rng, items).to_string();
        if !chosen.contains(&item) {
            chosen.push(item);
        }
    }
    chosen
}

/// Users with first names, numbered past the list and past the names already `taken`.
fn generate_users(rng: &mut StdRng, count: u32, now: DateTime<Utc>, taken: &mut HashSet<String>) -> Vec<User> {
    (0..count as usize)
        .map(|i| {
            let base = FIRST_NAMES[i % FIRST_NAMES.len()];
            let mut round = i / FIRST_NAMES.len() + 1;
            let mut name = if round == 1 { base.to_string() } else { format!("{base}{round}") };
            while taken.contains(&name) {
                round += 1;
                name = format!("{base}{round}");
            }
            taken.insert(name.clone());
            User {
                id: Uuid::new_v4(),
                name,
                // A few owners are disabled, so their keys show `owner disabled` on verify.
                is_active: i % 17 != 16,
                created_at: now - Duration::days(rng.gen_range(200..400)),
            }
        })
        .collect()
}

/// Keys with varied limits: a third prepaid, some disabled, some expiring soon, some expired.
/// Generated `count` at a time with their initial credits; `serial` numbers the key names.
struct KeyGenerator {
    rng: StdRng,
    /// The ids still to hand out, in ascending order (see [`sorted_key_ids`]).
    ids: std::vec::IntoIter<Uuid>,
    service: KeyService,
    users: Vec<User>,
    now: DateTime<Utc>,
    serial: u32,
}

impl KeyGenerator {
    fn next_chunk(&mut self, count: u32) -> ServiceResult<(Vec<ApiKey>, Vec<LedgerEntry>)> {
        let mut keys = Vec::with_capacity(count as usize);
        let mut credits = Vec::new();
        let model_names: Vec<&str> = MODELS.iter().map(|m| m.1).collect();
        for _ in 0..count {
            let (key, credit) = self.next_key(&model_names)?;
            keys.push(key);
            credits.extend(credit);
        }
        Ok((keys, credits))
    }

    fn next_key(&mut self, model_names: &[&str]) -> ServiceResult<(ApiKey, Option<LedgerEntry>)> {
        let (rng, users, now, i) = (&mut self.rng, &self.users, self.now, self.serial);
        self.serial += 1;
        // Owners follow a skewed distribution: a few users own many keys.
        let owner = &users[((rng.r#gen::<f64>().powi(2)) * users.len() as f64) as usize % users.len()];
        let id = self.ids.next().expect("one id was drawn for every key");
        let material = self.service.new_key_material(id)?;
        let created_at = (now - Duration::minutes(rng.gen_range(60..180 * 24 * 60)))
            .duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or(now);
        let standalone = i % 3 == 0;
        let credited = standalone.then(|| {
            if rng.gen_bool(0.15) {
                None
            } else {
                Some(Money::from_usd(*pick(rng, &[5, 10, 20, 50, 100, 250, 500, 2000])))
            }
        });
        let expires_at = match rng.gen_range(0..100) {
            0..=7 => Some(now - Duration::minutes(rng.gen_range(5..30 * 24 * 60))),
            8..=17 => Some(now + Duration::minutes(rng.gen_range(30..7 * 24 * 60))),
            18..=44 => Some(now + Duration::days(rng.gen_range(30..365))),
            _ => None,
        };
        let name = format!("{}-{}-{}", pick(rng, TEAMS), pick(rng, PURPOSES), i + 1);
        let credit = credited.flatten().map(|amount| LedgerEntry::initial_credit(id, created_at, "demo", amount));
        let key = ApiKey {
            id,
            user_id: owner.id,
            owner_name: owner.name.clone(),
            owner_active: owner.is_active,
            key_hash: material.hash,
            key_ciphertext: material.ciphertext,
            key_hint: material.hint,
            name,
            allowed_providers: rng.gen_bool(0.2).then(|| pick_some(rng, PROVIDERS)),
            allowed_api_formats: rng.gen_bool(0.15).then(|| pick_some(rng, API_FORMATS)),
            allowed_models: rng.gen_bool(0.15).then(|| pick_some(rng, model_names)),
            rate_limit: *pick(rng, &[Some(60), Some(100), Some(100), Some(300), Some(1000), None]),
            concurrent_limit: *pick(rng, &[Some(2), Some(5), Some(5), Some(10), None]),
            expires_at,
            is_standalone: standalone,
            credited: credited.flatten(),
            used: Money::ZERO,
            auto_delete_on_expiry: *pick(rng, &[None, None, None, Some(true), Some(false)]),
            is_active: rng.gen_range(0..100) >= 8,
            last_used_at: None,
            created_at,
            updated_at: created_at,
            money: MoneyPlan::default(),
            previous_secret_until: None,
        };
        Ok((key, credit))
    }
}

/// Usage rows with a weekly rhythm, slow growth, and a few heavy keys carrying most traffic.
///
/// Each key's share of the rows is fixed up front and its rows come out together, key after
/// key and oldest first: a chunk of rows then touches a few keys only, so loading it updates each
/// key's balance, last use and daily rollups about once, instead of once per chunk for every key
/// in use; and the rows of a busy key are appended to the usage index in time order instead of
/// landing at random places in a range of millions of entries.
struct UsageGenerator {
    rng: StdRng,
    /// Id, creation time and number of rows of every key, in id order.
    keys: Vec<(Uuid, DateTime<Utc>, u64)>,
    /// The next key to start; the one before it is the key whose rows come out now.
    next_key: usize,
    /// The current key's rows per day, and the next day to look at.
    rows_per_day: Vec<u64>,
    day: usize,
    /// The times of the current day's rows still to come out (epoch ms), latest first.
    pending: Vec<i64>,
    /// Day weights and their running totals, oldest day first.
    day_weights: Vec<f64>,
    day_cumulative: Vec<f64>,
    first_day_start: DateTime<Utc>,
    now: DateTime<Utc>,
    serial: u64,
    seed: u64,
}

const DAY_MS: i64 = 86_400_000;

/// `count` random key ids, ascending. Random ids, as the product makes them, but handed out in
/// order: every index that leads with the key id (the keys' own, usage, rollups) then grows at
/// its end while keys load and while their usage loads key after key, instead of at a random
/// page per row.
fn sorted_key_ids(count: u32) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    ids.sort_unstable();
    ids
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut total = 0.0;
    weights
        .map(|w| {
            total += w;
            total
        })
        .collect()
}

/// Splits `rows` between keys in proportion to their weights (given cumulated), exactly: each
/// key gets the difference of the rounded running totals around it.
fn rows_per_key(cumulative: &[f64], rows: u64) -> Vec<u64> {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let mut before = 0;
    cumulative
        .iter()
        .map(|&running| {
            let upto = (rows as f64 * running / total).round() as u64;
            let share = upto.saturating_sub(before);
            before = upto.max(before);
            share
        })
        .collect()
}

impl UsageGenerator {
    fn new(seed: u64, mut keys: Vec<(Uuid, DateTime<Utc>)>, rows: u64, days: u32, now: DateTime<Utc>) -> Self {
        keys.sort_unstable_by_key(|&(id, _)| id);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_0F75_A6E0);
        // Pareto-like weights: key rank r gets 1 / (r + 1)^1.2, so the top few dominate.
        let mut ranks: Vec<usize> = (0..keys.len()).collect();
        for i in (1..ranks.len()).rev() {
            ranks.swap(i, rng.gen_range(0..=i));
        }
        let key_cumulative = cumulative(ranks.iter().map(|&rank| 1.0 / ((rank + 1) as f64).powf(1.2)));
        let keys = keys.into_iter().zip(rows_per_key(&key_cumulative, rows)).map(|((id, at), n)| (id, at, n)).collect();
        let today = now.date_naive();
        let first_day = today - Duration::days(i64::from(days) - 1);
        let day_weights: Vec<f64> = first_day
            .iter_days()
            .take(days as usize)
            .enumerate()
            .map(|(i, day)| {
                use chrono::Datelike;
                let weekend = matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
                let growth = 0.6 + 0.4 * (i as f64 / f64::from(days));
                let today_fraction = if day == today {
                    f64::from(chrono::Timelike::num_seconds_from_midnight(&now)) / 86_400.0
                } else {
                    1.0
                };
                (if weekend { 0.35 } else { 1.0 }) * growth * today_fraction
            })
            .collect();
        UsageGenerator {
            keys,
            next_key: 0,
            rows_per_day: vec![0; days as usize],
            day: days as usize,
            pending: Vec::new(),
            day_cumulative: cumulative(day_weights.iter().copied()),
            day_weights,
            first_day_start: first_day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
            now,
            rng,
            serial: 0,
            seed,
        }
    }

    /// The span of day `day` that can hold usage, in epoch ms: all of it, or up to now for today.
    fn day_span(&self, day: usize) -> (i64, i64) {
        let start = self.first_day_start.timestamp_millis() + day as i64 * DAY_MS;
        (start, (start + DAY_MS).min(self.now.timestamp_millis()))
    }

    /// The day of `at` (clamped to the range), and the share of that day's weight before it.
    fn day_and_share_before(&self, at: DateTime<Utc>) -> (usize, f64) {
        let days_in = (at - self.first_day_start).num_days().clamp(0, self.day_weights.len() as i64 - 1) as usize;
        let (start, end) = self.day_span(days_in);
        let share = ((at.timestamp_millis() - start) as f64 / (end - start).max(1) as f64).clamp(0.0, 1.0);
        (days_in, share)
    }

    /// Id and creation time of the key whose rows come out now.
    fn current_key(&self) -> (Uuid, DateTime<Utc>) {
        let (id, created, _) = self.keys[self.next_key - 1];
        (id, created)
    }

    /// Starts the next key: spreads its rows over the days of its life by their weights (a key
    /// cannot be used before it existed).
    fn start_next_key(&mut self) {
        let (_, created, rows) = self.keys[self.next_key];
        self.next_key += 1;
        let (first_day, share_before) = self.day_and_share_before(created);
        let weight_before = self.day_cumulative[first_day] - self.day_weights[first_day] * (1.0 - share_before);
        let total = self.day_cumulative.last().copied().unwrap_or(0.0);
        let last_day = self.rows_per_day.len() - 1;
        self.rows_per_day.fill(0);
        for _ in 0..rows {
            let target = weight_before + self.rng.r#gen::<f64>() * (total - weight_before);
            let day = self.day_cumulative.partition_point(|&c| c < target);
            self.rows_per_day[day.clamp(first_day, last_day)] += 1;
        }
        self.day = first_day;
    }

    /// Draws the times of the current key's rows on its next day with any, into `pending`;
    /// false when the key has no day left.
    fn next_day_of_key(&mut self) -> bool {
        let Some(day) = (self.day..self.rows_per_day.len()).find(|&day| self.rows_per_day[day] > 0) else {
            self.day = self.rows_per_day.len();
            return false;
        };
        self.day = day + 1;
        // The first whole millisecond of the key's life.
        let (_, created) = self.current_key();
        let created =
            created.timestamp_millis() + i64::from(!created.timestamp_subsec_nanos().is_multiple_of(1_000_000));
        let (day_start, day_end) = self.day_span(day);
        let start = day_start.max(created);
        let end = day_end.max(start + 1);
        self.pending.extend((0..self.rows_per_day[day]).map(|_| self.rng.gen_range(start..end)));
        self.pending.sort_unstable_by(|a, b| b.cmp(a));
        true
    }

    fn next_row(&mut self) -> UsageRecord {
        let at_ms = loop {
            if let Some(at_ms) = self.pending.pop() {
                break at_ms;
            }
            if !self.next_day_of_key() {
                self.start_next_key();
            }
        };
        // Only a key created in this very millisecond has no room for a row before now.
        let at = DateTime::from_timestamp_millis(at_ms).expect("usage times lie within the demo's range").min(self.now);
        let (provider, model, price_per_1k) = *pick(&mut self.rng, MODELS);
        let tokens: i64 = (200.0 * (self.rng.r#gen::<f64>() * 4.0).exp()) as i64;
        self.serial += 1;
        UsageRecord {
            request_id: format!("demo-{:x}-{}", self.seed, self.serial),
            api_key_id: self.current_key().0,
            provider: Some(provider.into()),
            model: Some(model.into()),
            api_format: Some(if provider == "anthropic" { "CLAUDE" } else { "OPENAI" }.into()),
            total_tokens: tokens,
            cost: Money::from_micros(tokens * price_per_1k / 1000),
            response_time_ms: Some(self.rng.gen_range(150..1500) + tokens / 20),
            created_at: at,
        }
    }
}

fn progress_bar(total: u64, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}

/// Runs `produce` on a blocking thread, handing its items over through a channel one ahead,
/// so that generating the next chunk overlaps with loading the current one.
fn pipeline<T: Send + 'static>(
    mut produce: impl FnMut() -> Option<ServiceResult<T>> + Send + 'static,
) -> mpsc::Receiver<ServiceResult<T>> {
    let (sender, receiver) = mpsc::channel(1);
    tokio::task::spawn_blocking(move || {
        while let Some(item) = produce() {
            if sender.blocking_send(item).is_err() {
                break;
            }
        }
    });
    receiver
}

/// How long each phase of [`fill`] took.
#[derive(Debug, Clone, Copy, Default)]
pub struct FillTimes {
    pub users_and_keys: std::time::Duration,
    pub usage: std::time::Duration,
    pub statistics: std::time::Duration,
}

/// Loads the chunks coming out of `chunks`, as many at a time as the store takes (each its own
/// transaction), advancing `bar` by the rows of each chunk loaded. Two usage chunks share at
/// most one key (rows come key by key), so concurrent loads cannot deadlock on key rows.
async fn load_in_parallel<T>(
    mut chunks: mpsc::Receiver<ServiceResult<T>>,
    mut to_batch: impl FnMut(T) -> BulkLoad,
    service: &KeyService,
    what: &str,
    bar: &ProgressBar,
) -> ServiceResult<()> {
    let batches = futures::stream::poll_fn(|context| chunks.poll_recv(context))
        .map(|chunk| chunk.map(&mut to_batch))
        .map_ok(|batch| async move {
            service.bulk_load(&batch, what).await?;
            bar.inc((batch.keys.len() + batch.usage.len()) as u64);
            Ok(())
        });
    batches.try_buffer_unordered(service.store().bulk_load_concurrency()).try_collect().await
}

/// Fills the service's database with demo data. Shows a progress bar on stderr when asked.
///
/// Keys and usage rows are generated chunk by chunk on a blocking thread while the previous
/// chunk loads, and only the id and creation time of each key stay in memory.
pub async fn fill(service: &KeyService, spec: &DemoSpec, show_progress: bool) -> anyhow::Result<FillTimes> {
    let started = Instant::now();
    let mut times = FillTimes::default();
    let now = service.now();
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut taken: HashSet<String> = service.users().await?.into_iter().map(|u| u.user.name).collect();
    let users = generate_users(&mut rng, spec.users, now, &mut taken);

    // The users first, alone: the keys of every chunk refer to them.
    service.bulk_load(&BulkLoad { users: users.clone(), ..BulkLoad::default() }, "demo users").await?;

    let bar = progress_bar(u64::from(spec.keys), show_progress);
    bar.set_message("keys");
    let mut generator = KeyGenerator {
        rng,
        ids: sorted_key_ids(spec.keys).into_iter(),
        service: service.clone(),
        users,
        now,
        serial: 0,
    };
    let mut keys_left = spec.keys;
    let key_chunks = pipeline(move || {
        (keys_left > 0).then(|| {
            let count = keys_left.min(KEY_CHUNK);
            keys_left -= count;
            generator.next_chunk(count)
        })
    });
    let mut key_times: Vec<(Uuid, DateTime<Utc>)> = Vec::with_capacity(spec.keys as usize);
    load_in_parallel(
        key_chunks,
        |(keys, initial_credits)| {
            key_times.extend(keys.iter().map(|key| (key.id, key.created_at)));
            BulkLoad { keys, initial_credits, ..BulkLoad::default() }
        },
        service,
        "demo keys",
        &bar,
    )
    .await?;
    bar.finish();
    times.users_and_keys = started.elapsed();

    if !key_times.is_empty() && spec.usage_rows > 0 {
        let usage_started = Instant::now();
        let bar = progress_bar(spec.usage_rows, show_progress);
        bar.set_message("usage rows");
        let mut generator = UsageGenerator::new(spec.seed, key_times, spec.usage_rows, spec.days, now);
        let mut left = spec.usage_rows;
        let usage_chunks = pipeline(move || {
            (left > 0).then(|| {
                let count = left.min(USAGE_CHUNK);
                left -= count;
                Ok((0..count).map(|_| generator.next_row()).collect::<Vec<UsageRecord>>())
            })
        });
        load_in_parallel(usage_chunks, |usage| BulkLoad { usage, ..BulkLoad::default() }, service, "demo usage", &bar)
            .await?;
        bar.finish();
        times.usage = usage_started.elapsed();
    }
    let statistics_started = Instant::now();
    service.refresh_statistics().await?;
    times.statistics = statistics_started.elapsed();
    tracing::info!(?spec, ?times, "demo data loaded");
    if show_progress {
        eprintln!(
            "loaded {} users, {} keys and {} usage rows in {:.1?} (keys {:.0}/s, usage rows {:.0}/s)",
            spec.users,
            spec.keys,
            spec.usage_rows,
            started.elapsed(),
            f64::from(spec.keys) / times.users_and_keys.as_secs_f64(),
            spec.usage_rows as f64 / times.usage.as_secs_f64().max(f64::EPSILON),
        );
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_split_exactly_and_in_proportion() {
        let weights = cumulative([8.0, 1.0, 0.5, 0.5].into_iter());
        let shares = rows_per_key(&weights, 1_001);
        assert_eq!(shares.iter().sum::<u64>(), 1_001);
        assert_eq!(shares, vec![801, 100, 50, 50]);
        assert_eq!(rows_per_key(&weights, 0), vec![0, 0, 0, 0]);
    }

    #[test]
    fn usage_comes_key_by_key_skewed_and_within_each_key_life() {
        let now = Utc::now();
        let keys: Vec<(Uuid, DateTime<Utc>)> =
            (0..200).map(|i| (Uuid::new_v4(), now - Duration::days(i % 120))).collect();
        let created: std::collections::HashMap<Uuid, DateTime<Utc>> = keys.iter().copied().collect();
        let mut generator = UsageGenerator::new(3, keys, 20_000, 90, now);
        let rows: Vec<UsageRecord> = (0..20_000).map(|_| generator.next_row()).collect();

        let mut per_key: Vec<(Uuid, usize)> = Vec::new();
        for row in &rows {
            assert!(row.created_at >= created[&row.api_key_id] && row.created_at <= now);
            match per_key.last_mut() {
                Some((id, count)) if *id == row.api_key_id => *count += 1,
                _ => per_key.push((row.api_key_id, 1)),
            }
        }
        // One run per key, keys in ascending id order: no key's rows are split, and the
        // indexes that lead with the key id grow at their end.
        assert!(per_key.windows(2).all(|pair| pair[0].0 < pair[1].0));
        // Oldest first within each key, so a busy key's rows append to the usage index.
        for pair in rows.windows(2).filter(|pair| pair[0].api_key_id == pair[1].api_key_id) {
            assert!(pair[0].created_at <= pair[1].created_at);
        }
        // The weekly rhythm: a weekday carries about three times the rows of a weekend day.
        let mut per_date: std::collections::HashMap<chrono::NaiveDate, usize> = std::collections::HashMap::new();
        rows.iter().for_each(|row| *per_date.entry(row.created_at.date_naive()).or_default() += 1);
        let weekend = |date: &chrono::NaiveDate| {
            use chrono::Datelike;
            matches!(date.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun)
        };
        let average = |of_weekend: bool| {
            let counts: Vec<usize> = per_date
                .iter()
                .filter(|(date, _)| weekend(date) == of_weekend && **date != now.date_naive())
                .map(|(_, n)| *n)
                .collect();
            counts.iter().sum::<usize>() as f64 / counts.len() as f64
        };
        assert!(average(false) > 2.0 * average(true), "{} vs {}", average(false), average(true));
        // The busiest tenth of the keys carries most of the rows.
        let mut counts: Vec<usize> = per_key.iter().map(|(_, count)| *count).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        assert!(counts[..20].iter().sum::<usize>() > 10_000, "{counts:?}");
    }
}
