//! Text that came from the database is untrusted: strip everything a terminal could act on.

use std::borrow::Cow;

/// True for characters that must never reach a terminal: C0 and C1 controls (ESC, BEL, CSI…),
/// DEL, and the Unicode bidi controls that can reorder what an admin reads.
pub fn is_unsafe_char(ch: char) -> bool {
    ch.is_control() || matches!(ch, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Removes control characters so that no stored string can move the cursor, retitle the terminal
/// or write the clipboard. Borrowed when nothing had to be removed (the common case).
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_unsafe_char) {
        Cow::Owned(text.chars().filter(|&ch| !is_unsafe_char(ch)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escape_sequences_to_inert_text() {
        assert_eq!(sanitize("a\u{1b}]52;c;aGk=\u{7}b"), "a]52;c;aGk=b");
        assert_eq!(sanitize("\u{1b}[2Jx"), "[2Jx");
        assert_eq!(sanitize("evil\u{202E}txt"), "eviltxt");
        assert_eq!(sanitize("\u{9b}31m"), "31m");
        assert!(matches!(sanitize("plain ключ 🔑"), Cow::Borrowed(_)));
    }
}
