//! Styles by meaning. Views ask for "the selected row" or "an error", never for a colour, so the
//! monochrome theme (for `NO_COLOR`) is a second table, not a second set of views. The colour
//! theme is painted at the terminal's colour depth.

use ratatui::style::{Color, Modifier, Style};

use super::color_depth::ColorDepth;
use crate::config::ThemeChoice;
use crate::domain::KeyStatus;

/// A colour of the theme: its RGB value (one of the 256 palette's, so 256 colours show it exactly),
/// and the ANSI colour that stands for it on 16.
#[derive(Clone, Copy)]
struct Hue((u8, u8, u8), Color);

const ACCENT: Hue = Hue((95, 215, 255), Color::Cyan);
const ON_ACCENT: Hue = Hue((0, 0, 0), Color::Black);
const MUTED: Hue = Hue((138, 138, 138), Color::DarkGray);
const LABEL: Hue = Hue((188, 188, 188), Color::Gray);
const WARNING: Hue = Hue((255, 215, 95), Color::Yellow);
const ERROR: Hue = Hue((255, 95, 95), Color::Red);
const SUCCESS: Hue = Hue((135, 215, 135), Color::Green);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub title: Style,
    pub text: Style,
    pub muted: Style,
    pub label: Style,
    pub border: Style,
    pub focused_border: Style,
    /// The selected row or field: always reversed and bold, so it shows without colour.
    pub selected: Style,
    pub header: Style,
    pub warning: Style,
    pub error: Style,
    pub success: Style,
    pub secret: Style,
    pub chart: Style,
    pub key: Style,
    pub status_active: Style,
    pub status_disabled: Style,
    pub status_expired: Style,
    pub status_exhausted: Style,
}

impl Theme {
    /// The theme for a config choice on a terminal of `depth`: `Auto` is the colour theme at that
    /// depth, or the monochrome one without colours; `Color` insists on at least 16 colours.
    pub fn for_choice(choice: ThemeChoice, depth: ColorDepth) -> Theme {
        match choice {
            ThemeChoice::Color => Theme::color(depth.max(ColorDepth::Ansi16)),
            ThemeChoice::Mono => Theme::mono(),
            ThemeChoice::Auto if depth == ColorDepth::None => Theme::mono(),
            ThemeChoice::Auto => Theme::color(depth),
        }
    }

    pub fn color(depth: ColorDepth) -> Theme {
        let plain = Style::new();
        let bold = plain.add_modifier(Modifier::BOLD);
        let paint = |style: Style, hue: Hue| match depth.paint(hue.0, hue.1) {
            Some(colour) => style.fg(colour),
            None => style,
        };
        let selected = match depth.paint(ACCENT.0, ACCENT.1) {
            Some(colour) => paint(bold, ON_ACCENT).bg(colour),
            None => bold.add_modifier(Modifier::REVERSED),
        };
        Theme {
            title: paint(bold, ACCENT),
            text: plain,
            muted: paint(plain, MUTED),
            label: paint(plain, LABEL),
            border: paint(plain, MUTED),
            focused_border: paint(plain, ACCENT),
            selected,
            header: paint(bold, WARNING),
            warning: paint(bold, WARNING),
            error: paint(bold, ERROR),
            success: paint(plain, SUCCESS),
            secret: paint(bold, WARNING),
            chart: paint(plain, ACCENT),
            key: paint(bold, ACCENT),
            status_active: paint(plain, SUCCESS),
            status_disabled: paint(plain, MUTED),
            status_expired: paint(plain, ERROR),
            status_exhausted: paint(plain, WARNING),
        }
    }

    /// No colours at all: meaning is carried by modifiers (and by words, which every status has).
    pub fn mono() -> Theme {
        let plain = Style::new();
        let bold = plain.add_modifier(Modifier::BOLD);
        Theme {
            title: bold,
            text: plain,
            muted: plain.add_modifier(Modifier::DIM),
            label: plain,
            border: plain,
            focused_border: bold,
            selected: plain.add_modifier(Modifier::REVERSED | Modifier::BOLD),
            header: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            warning: bold,
            error: bold.add_modifier(Modifier::UNDERLINED),
            success: plain,
            secret: bold,
            chart: plain,
            key: bold,
            status_active: plain,
            status_disabled: plain.add_modifier(Modifier::DIM),
            status_expired: bold,
            status_exhausted: plain.add_modifier(Modifier::BOLD | Modifier::ITALIC),
        }
    }

    pub fn status(&self, status: KeyStatus) -> Style {
        match status {
            KeyStatus::Active => self.status_active,
            KeyStatus::Disabled | KeyStatus::OwnerDisabled => self.status_disabled,
            KeyStatus::Expired => self.status_expired,
            KeyStatus::Exhausted => self.status_exhausted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_picks_the_mono_theme_unless_colour_is_forced() {
        use ColorDepth::{Ansi16, Ansi256, None, TrueColor};
        assert_eq!(Theme::for_choice(ThemeChoice::Auto, None), Theme::mono());
        assert_eq!(Theme::for_choice(ThemeChoice::Auto, Ansi256), Theme::color(Ansi256));
        assert_eq!(Theme::for_choice(ThemeChoice::Color, None), Theme::color(Ansi16));
        assert_eq!(Theme::for_choice(ThemeChoice::Color, TrueColor), Theme::color(TrueColor));
        assert_eq!(Theme::for_choice(ThemeChoice::Mono, TrueColor), Theme::mono());
    }

    #[test]
    fn the_colour_theme_keeps_its_hues_at_every_depth() {
        assert_eq!(Theme::color(ColorDepth::Ansi16).error.fg, Some(Color::Red));
        assert_eq!(Theme::color(ColorDepth::Ansi256).error.fg, Some(Color::Indexed(203)));
        assert_eq!(Theme::color(ColorDepth::TrueColor).error.fg, Some(Color::Rgb(255, 95, 95)));
        assert_eq!(Theme::color(ColorDepth::Ansi16).selected.bg, Some(Color::Cyan));
    }

    #[test]
    fn the_mono_theme_uses_no_colour_and_marks_selection_by_modifiers() {
        let mono = Theme::mono();
        let styles = [mono.title, mono.selected, mono.error, mono.warning, mono.status_expired, mono.chart];
        assert!(styles.iter().all(|s| s.fg.is_none() && s.bg.is_none()));
        assert!(mono.selected.add_modifier.contains(Modifier::REVERSED));
    }
}
