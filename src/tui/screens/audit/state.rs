//! What the audit screen shows, as plain data.

use crate::domain::AuditEntry;
use crate::tui::state::RequestId;

#[derive(Debug, Clone, Default)]
pub struct AuditScreen {
    /// The rows loaded so far, newest first.
    pub rows: Vec<AuditEntry>,
    pub selected: usize,
    /// The first row shown, kept so that scrolling is steady.
    pub offset: usize,
    /// The filter as typed (`actor:alice action:key_update key:ci-key`).
    pub filter: String,
    /// The load in flight, and what its rows do to the loaded ones.
    pub pending: Option<(RequestId, Fetch)>,
    /// The oldest row is loaded.
    pub at_end: bool,
    pub error: Option<String>,
}

/// What the rows of a load do to the rows loaded before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// They replace them, the first selected (a new filter, the screen opened again).
    Replace,
    /// They follow them (the next page, older).
    Append,
    /// They replace them, as many as were loaded, the same row staying selected where it was on
    /// screen (the database changed).
    Refresh,
}

impl AuditScreen {
    pub fn selected_entry(&self) -> Option<&AuditEntry> {
        self.rows.get(self.selected)
    }
}

/// The filter box's text, read as `field:value` words (`actor:`, `action:`, `key:`); a bare
/// word is an actor. Every part given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// A key's name or id, resolved by the service.
    pub key: Option<String>,
}

impl AuditFilter {
    pub fn parse(text: &str) -> AuditFilter {
        let mut filter = AuditFilter::default();
        for word in text.split_whitespace() {
            let (slot, value) = match word.split_once(':') {
                Some(("action", value)) => (&mut filter.action, value),
                Some(("key", value)) => (&mut filter.key, value),
                Some(("actor", value)) => (&mut filter.actor, value),
                _ => (&mut filter.actor, word),
            };
            if !value.is_empty() {
                *slot = Some(value.to_string());
            }
        }
        filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_reads_field_words_and_bare_words_as_actors() {
        assert_eq!(AuditFilter::parse(""), AuditFilter::default());
        assert_eq!(AuditFilter::parse("alice"), AuditFilter { actor: Some("alice".into()), ..AuditFilter::default() });
        assert_eq!(
            AuditFilter::parse(" action:key_update  key:ci-key actor:bob "),
            AuditFilter { actor: Some("bob".into()), action: Some("key_update".into()), key: Some("ci-key".into()) }
        );
        assert_eq!(AuditFilter::parse("key:"), AuditFilter::default(), "an empty value filters nothing");
    }
}
