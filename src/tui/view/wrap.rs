//! Word wrapping by display width, for text that must be read whole in a box of fixed width
//! (a dialog's validation messages), where a cut message loses what it says is accepted.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// `text` in lines of at most `width` columns, broken at spaces; a word wider than a line is
/// broken inside.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let needed = if line.is_empty() { word.width() } else { line.width() + 1 + word.width() };
        if needed > width && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        for ch in word.chars() {
            if line.width() + ch.width().unwrap_or(0) > width {
                lines.push(std::mem::take(&mut line));
            }
            line.push(ch);
        }
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn lines_break_at_spaces_and_long_words_inside() {
        assert_eq!(wrap("accepted: 12, 12.5, $12.50", 12), ["accepted:", "12, 12.5,", "$12.50"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("fits", 10), ["fits"]);
    }
}
