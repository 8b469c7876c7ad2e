//! `keytop import aether`: Aether's users, keys and usage (aether.md §1) into keytop, in one
//! transaction. Keys keep their ids and SHA-256 hashes, so every plaintext Aether handed out
//! verifies unchanged; with Aether's encryption key, each stored copy is decrypted and sealed again
//! under keytop's master key, so reveal works too.
//!
//! Re-running is safe: users and keys keytop already has (by id) are left as they are, usage rows
//! whose request id keytop has are skipped by the load itself. Nothing is written before every
//! row has been read and converted, and the write is one transaction: a failure leaves keytop's
//! database as it was.

mod cipher;
mod convert;
mod source;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

pub use cipher::AetherCipher;
pub use convert::{Finding, HINT_WITHOUT_COPY, MoneyRounding};
pub use source::AetherSource;

use crate::domain::{ApiKey, LedgerEntry, Money, User};
use crate::service::{KeyService, ServiceError};
use crate::store::{BulkLoad, UsageRecord};
use convert::{KeyContext, Notes};

/// The audit action of an import.
const AUDIT_ACTION: &str = "import_aether";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the Aether database")]
    Read(#[from] sqlx::Error),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

#[derive(Debug, Default, Serialize)]
pub struct UserCounts {
    pub read: u64,
    pub imported: u64,
    /// Already in keytop by id: left as they are.
    pub already_present: u64,
    /// A keytop user of the same name (another id) took this user's keys.
    pub merged_by_name: u64,
    pub skipped: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct KeyCounts {
    pub read: u64,
    pub imported: u64,
    /// Already in keytop by id: left as they are.
    pub already_present: u64,
    pub skipped: u64,
    /// Imported keys whose plaintext keytop does not have: they verify, reveal says why not.
    pub without_stored_copy: u64,
    /// Imported keys disabled until an admin fixes what the findings name.
    pub disabled_for_review: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct UsageCounts {
    pub read: u64,
    /// Handed to the load: rows of keys keytop has after the import.
    pub loaded: u64,
    /// Rows the load wrote: `loaded` less the request ids keytop had. `None` in a dry run.
    pub new: Option<u64>,
    pub skipped: u64,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub source: String,
    pub dry_run: bool,
    pub users: UserCounts,
    pub keys: KeyCounts,
    pub usage_rows: UsageCounts,
    /// Every float that needed rounding to 6 decimals, and by how much.
    pub roundings: Vec<MoneyRounding>,
    /// Every value keytop could not take as it was, and what was done.
    pub findings: Vec<Finding>,
}

pub struct ImportOptions<'a> {
    /// Aether's `ENCRYPTION_KEY`; without it, keys are imported without a stored copy.
    pub cipher: Option<&'a AetherCipher>,
    pub dry_run: bool,
    /// The source as reports show it (no password).
    pub source_name: String,
}

/// Progress of the read of usage rows: told the total first, then each page read.
pub trait Progress {
    fn start(&self, total: u64);
    fn advance(&self, rows: u64);
    /// Everything is read; the write (one transaction) is next.
    fn writing(&self);
}

/// The users and keys an import brings, with where each Aether owner went.
struct Owners {
    /// Aether user id → the keytop user who owns that user's keys.
    by_aether_id: HashMap<String, User>,
    new_users: Vec<User>,
}

pub async fn import(
    service: &KeyService,
    source: &AetherSource,
    options: &ImportOptions<'_>,
    progress: &dyn Progress,
) -> Result<ImportReport, ImportError> {
    let mut notes = Notes::default();
    let mut report = ImportReport {
        source: options.source_name.clone(),
        dry_run: options.dry_run,
        users: UserCounts::default(),
        keys: KeyCounts::default(),
        usage_rows: UsageCounts::default(),
        roundings: Vec::new(),
        findings: Vec::new(),
    };
    let owners = owners(service, source, &mut notes, &mut report.users).await?;
    let (mut new_keys, present_keys) = keys(service, source, options, &owners, &mut notes, &mut report.keys).await?;
    let usage = usage(source, &new_keys, &present_keys, &mut notes, &mut report.usage_rows, progress).await?;
    let initial_credits = charge_back(&mut new_keys, &usage, service.actor());

    progress.writing();
    if !options.dry_run {
        let first_day = usage.iter().map(|row| row.created_at.date_naive()).min();
        let touched: HashSet<Uuid> = usage.iter().map(|row| row.api_key_id).collect();
        let before = requests_of(service, &touched, first_day).await?;
        let batch = BulkLoad { users: owners.new_users.clone(), keys: new_keys, initial_credits, usage };
        let details = json!({
            "source": report.source,
            "users": batch.users.len(),
            "keys": batch.keys.len(),
            "usage_rows": batch.usage.len(),
            "roundings": notes.roundings,
            "findings": notes.findings,
        });
        service.load_import(&batch, AUDIT_ACTION, details).await?;
        service.refresh_statistics().await?;
        let after = requests_of(service, &touched, first_day).await?;
        report.usage_rows.new = Some((after - before).max(0) as u64);
    }
    report.roundings = notes.roundings;
    report.findings = notes.findings;
    Ok(report)
}

async fn owners(
    service: &KeyService,
    source: &AetherSource,
    notes: &mut Notes,
    counts: &mut UserCounts,
) -> Result<Owners, ImportError> {
    let existing: Vec<User> = service.users().await?.into_iter().map(|summary| summary.user).collect();
    let mut names: HashSet<String> = existing.iter().map(|user| user.name.clone()).collect();
    let mut owners = Owners { by_aether_id: HashMap::new(), new_users: Vec::new() };
    for raw in source.users().await? {
        counts.read += 1;
        if let Some(user) =
            Uuid::parse_str(raw.id.trim()).ok().and_then(|id| existing.iter().find(|user| user.id == id))
        {
            counts.already_present += 1;
            owners.by_aether_id.insert(raw.id.clone(), user.clone());
            continue;
        }
        if let Some(user) = existing.iter().find(|user| user.name == raw.username) {
            counts.merged_by_name += 1;
            notes.finding(
                "users",
                &raw.id,
                format!("keytop has a user named {:?} already", user.name),
                "its keys go to that user",
            );
            owners.by_aether_id.insert(raw.id.clone(), user.clone());
            continue;
        }
        let Some(user) = convert::user(notes, &raw, service.now(), |name| names.contains(name)) else {
            counts.skipped += 1;
            continue;
        };
        counts.imported += 1;
        names.insert(user.name.clone());
        owners.by_aether_id.insert(raw.id.clone(), user.clone());
        owners.new_users.push(user);
    }
    Ok(owners)
}

/// The keys to insert, and the ids of Aether's keys keytop has already (their usage still loads).
async fn keys(
    service: &KeyService,
    source: &AetherSource,
    options: &ImportOptions<'_>,
    owners: &Owners,
    notes: &mut Notes,
    counts: &mut KeyCounts,
) -> Result<(Vec<ApiKey>, HashSet<Uuid>), ImportError> {
    // Sealing needs the master key: find out before anything else is done, not per key.
    service.seal_imported(Uuid::nil(), "")?;
    let seal =
        |id: Uuid, plaintext: &str| service.seal_imported(id, plaintext).expect("the master key was checked above");
    let (mut new_keys, mut present) = (Vec::new(), HashSet::new());
    for raw in source.keys().await? {
        counts.read += 1;
        let Some((id, hash)) = convert::key_identity(notes, &raw) else {
            counts.skipped += 1;
            continue;
        };
        if service.key_exists(id).await? {
            counts.already_present += 1;
            present.insert(id);
            continue;
        }
        if let Some(other) = service.key_id_by_hash(&hash).await? {
            notes.finding(
                "api_keys",
                &raw.id,
                format!("keytop key {other} has the same hash"),
                "skipped, with its usage",
            );
            counts.skipped += 1;
            continue;
        }
        let Some(owner) = owners.by_aether_id.get(&raw.user_id) else {
            notes.finding(
                "api_keys",
                &raw.id,
                format!("its owner {:?} was not imported", raw.user_id),
                "skipped, with its usage",
            );
            counts.skipped += 1;
            continue;
        };
        let context = KeyContext { id, hash, owner, cipher: options.cipher, seal: &seal, now: service.now() };
        let key = convert::key(notes, &raw, &context);
        counts.imported += 1;
        counts.without_stored_copy += u64::from(crate::crypto::is_no_stored_copy(&key.key_ciphertext));
        counts.disabled_for_review += u64::from(raw.is_active && !key.is_active);
        new_keys.push(key);
    }
    Ok((new_keys, present))
}

async fn usage(
    source: &AetherSource,
    new_keys: &[ApiKey],
    present_keys: &HashSet<Uuid>,
    notes: &mut Notes,
    counts: &mut UsageCounts,
    progress: &dyn Progress,
) -> Result<Vec<UsageRecord>, ImportError> {
    let new_ids: HashSet<Uuid> = new_keys.iter().map(|key| key.id).collect();
    let mut skipped_because: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut rows = Vec::new();
    progress.start(source.usage_count().await?.max(0) as u64);
    let mut after = String::new();
    loop {
        let page = source.usage_page(&after).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        progress.advance(page.len() as u64);
        for raw in &page {
            counts.read += 1;
            let key_id = raw.api_key_id.as_deref().and_then(|id| Uuid::parse_str(id.trim()).ok());
            let reason = match key_id {
                None if raw.api_key_id.is_none() => Some("its key was deleted in Aether"),
                None => Some("its api_key_id is not a UUID"),
                Some(id) if !new_ids.contains(&id) && !present_keys.contains(&id) => Some("its key was not imported"),
                Some(_) => None,
            };
            let record = match (reason, key_id) {
                (None, Some(id)) => convert::usage(notes, raw, id),
                _ => None,
            };
            match record {
                Some(record) => rows.push(record),
                None => {
                    counts.skipped += 1;
                    if let Some(reason) = reason {
                        *skipped_because.entry(reason).or_default() += 1;
                    }
                }
            }
        }
    }
    for (reason, count) in skipped_because {
        let rows = format!("{count} {}", if count == 1 { "row" } else { "rows" });
        notes.finding("usage", &rows, reason, "skipped: keytop keeps usage by key");
    }
    counts.loaded = rows.len() as u64;
    Ok(rows)
}

/// The load charges each usage row of a prepaid key to it, as recording it would; Aether's
/// `balance_used_usd` already holds those charges. So each new prepaid key goes in with its used
/// total less its rows' costs, and leaves the load with Aether's figure exactly. Also returns the
/// first ledger row of each new prepaid key with a credit.
fn charge_back(new_keys: &mut [ApiKey], usage: &[UsageRecord], actor: &str) -> Vec<LedgerEntry> {
    let mut costs: HashMap<Uuid, i64> = HashMap::new();
    for row in usage {
        *costs.entry(row.api_key_id).or_default() += row.cost.micros();
    }
    let mut credits = Vec::new();
    for key in new_keys.iter_mut().filter(|key| key.is_standalone) {
        key.used = Money::from_micros(key.used.micros() - costs.get(&key.id).copied().unwrap_or(0));
        if let Some(credited) = key.credited.filter(|credited| !credited.is_zero()) {
            let mut entry = LedgerEntry::initial_credit(key.id, key.created_at, actor, credited);
            entry.note = Some("imported from Aether".into());
            credits.push(entry);
        }
    }
    credits
}

/// The requests the rollups of `keys` hold from `first` on.
async fn requests_of(service: &KeyService, keys: &HashSet<Uuid>, first: Option<NaiveDate>) -> Result<i64, ImportError> {
    let Some(first) = first else { return Ok(0) };
    let mut total = 0;
    for id in keys {
        total += service.requests_since(*id, first).await?;
    }
    Ok(total)
}
