//! `keytop import aether`: the progress bar on usage rows and the summary at the end.

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::Context;
use super::args::AetherImportArgs;
use super::output::{out, print_json};
use crate::domain::ValidationError;
use crate::domain::text::sanitize;
use crate::import::aether::{self, AetherCipher, AetherSource, ImportOptions, ImportReport, Progress};
use crate::store::redact_url;

/// Findings and roundings listed in the text summary; `--json` lists them all.
const LISTED: usize = 20;

pub async fn aether(ctx: &Context, args: AetherImportArgs) -> anyhow::Result<()> {
    let encryption_key = match (&args.encryption_key, &args.encryption_key_file) {
        (Some(key), _) => Some(key.trim().to_string()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the encryption key file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    if encryption_key.as_deref() == Some("") {
        return Err(ValidationError::new("--encryption-key", "is empty").into());
    }
    let cipher = encryption_key.as_deref().map(AetherCipher::new);
    let source = AetherSource::open(&args.from).await.map_err(anyhow::Error::msg)?;
    let options = ImportOptions { cipher: cipher.as_ref(), dry_run: args.dry_run, source_name: redact_url(&args.from) };
    let progress = Bar(if ctx.json { ProgressBar::hidden() } else { ProgressBar::new(0) });
    let report = aether::import(&ctx.service, &source, &options, &progress).await?;
    progress.0.finish_and_clear();
    if ctx.json {
        print_json(&report);
    } else {
        print_summary(&report);
    }
    Ok(())
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
        self.0.set_style(
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        self.0.set_message("usage rows");
    }

    fn advance(&self, rows: u64) {
        self.0.inc(rows);
    }

    fn writing(&self) {
        self.0.set_message("writing");
    }
}

fn print_summary(report: &ImportReport) {
    let (users, keys, usage) = (&report.users, &report.keys, &report.usage_rows);
    if report.dry_run {
        out!("dry run of an import from {}: nothing was written", sanitize(&report.source));
    } else {
        out!("imported from {} in one transaction", sanitize(&report.source));
    }
    out!(
        "users       {} read: {} imported, {} already in keytop, {} merged with a keytop user of the same name, {} skipped",
        users.read,
        users.imported,
        users.already_present,
        users.merged_by_name,
        users.skipped
    );
    out!(
        "keys        {} read: {} imported ({} without a stored copy, {} disabled for review), {} already in keytop, {} skipped",
        keys.read,
        keys.imported,
        keys.without_stored_copy,
        keys.disabled_for_review,
        keys.already_present,
        keys.skipped
    );
    let new = usage.new.map_or(String::new(), |new| match usage.loaded.saturating_sub(new) {
        0 => format!(" ({new} new)"),
        known => format!(" ({new} new, {known} in keytop already)"),
    });
    out!("usage rows  {} read: {} loaded{new}, {} skipped", usage.read, usage.loaded, usage.skipped);
    out!("roundings   {} amounts rounded half-even to 6 decimals", report.roundings.len());
    for rounding in report.roundings.iter().take(LISTED) {
        out!(
            "  {} {} {}: {} -> {} (by {})",
            rounding.table,
            rounding.row,
            rounding.column,
            rounding.rounding.original,
            rounding.imported.to_decimal_string(),
            rounding.rounding.by
        );
    }
    out!("findings    {}", report.findings.len());
    for finding in report.findings.iter().take(LISTED) {
        out!("  {} {}: {}; {}", finding.table, finding.row, sanitize(&finding.problem), finding.action);
    }
    if report.roundings.len().max(report.findings.len()) > LISTED {
        out!("(the first {LISTED} of each; --json lists them all, and the audit row of the import keeps them)");
    }
}
