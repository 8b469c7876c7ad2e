//! What the audit screen shows, as plain data.

use crate::domain::AuditEntry;
use crate::tui::screens::pages::Pages;

#[derive(Debug, Clone, Default)]
pub struct AuditScreen {
    /// The rows loaded so far, newest first.
    pub pages: Pages<AuditEntry>,
    /// The filter as typed (`actor:alice action:key_update key:ci-key`).
    pub filter: String,
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
