//! Text that came from the database is untrusted: strip everything a terminal could act on.

use std::borrow::Cow;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

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

/// `text` cut to `max_columns` display columns, the cut marked with `…`, so that a cut name never
/// passes for a whole one. Borrowed when it fits.
pub fn fit(text: &str, max_columns: usize) -> Cow<'_, str> {
    if text.width() <= max_columns {
        return Cow::Borrowed(text);
    }
    let mut fitted = String::with_capacity(max_columns + 3);
    let mut used = 0;
    for ch in text.chars() {
        let ch_width = ch.width().unwrap_or(0);
        // One column stays free for the ellipsis.
        if used + ch_width >= max_columns {
            break;
        }
        fitted.push(ch);
        used += ch_width;
    }
    if max_columns > 0 {
        fitted.push('…');
    }
    Cow::Owned(fitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_wider_than_its_room_is_cut_with_an_ellipsis() {
        assert_eq!(fit("chatbot-playground-12", 21), "chatbot-playground-12");
        assert!(matches!(fit("chatbot-playground-12", 21), Cow::Borrowed(_)));
        assert_eq!(fit("chatbot-playground-123", 21), "chatbot-playground-1…");
        // A wide character that would straddle the last column is left out whole.
        assert_eq!(fit("ab漢字", 4), "ab…");
        assert_eq!(fit("abc", 1), "…");
        assert_eq!(fit("abc", 0), "");
    }

    #[test]
    fn strips_escape_sequences_to_inert_text() {
        assert_eq!(sanitize("a\u{1b}]52;c;aGk=\u{7}b"), "a]52;c;aGk=b");
        assert_eq!(sanitize("\u{1b}[2Jx"), "[2Jx");
        assert_eq!(sanitize("evil\u{202E}txt"), "eviltxt");
        assert_eq!(sanitize("\u{9b}31m"), "31m");
        assert!(matches!(sanitize("plain ключ 🔑"), Cow::Borrowed(_)));
    }
}
