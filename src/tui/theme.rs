//! Styles by meaning. Views ask for "the selected row" or "an error", never for a colour, so the
//! monochrome theme (for `NO_COLOR`) is a second table, not a second set of views.

use ratatui::style::{Color, Modifier, Style};

use crate::config::ThemeChoice;
use crate::domain::KeyStatus;

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
    /// The theme for a config choice; `Auto` follows `NO_COLOR` (any non-empty value).
    pub fn for_choice(choice: ThemeChoice, no_color: bool) -> Theme {
        match choice {
            ThemeChoice::Color => Theme::color(),
            ThemeChoice::Mono => Theme::mono(),
            ThemeChoice::Auto if no_color => Theme::mono(),
            ThemeChoice::Auto => Theme::color(),
        }
    }

    /// Whether the environment asks for no colour (<https://no-color.org>).
    pub fn no_color_requested() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
    }

    pub fn color() -> Theme {
        let plain = Style::new();
        Theme {
            title: plain.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            text: plain,
            muted: plain.fg(Color::DarkGray),
            label: plain.fg(Color::Gray),
            border: plain.fg(Color::DarkGray),
            focused_border: plain.fg(Color::Cyan),
            selected: plain.fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD),
            header: plain.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            warning: plain.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            error: plain.fg(Color::Red).add_modifier(Modifier::BOLD),
            success: plain.fg(Color::Green),
            secret: plain.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            chart: plain.fg(Color::Cyan),
            key: plain.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            status_active: plain.fg(Color::Green),
            status_disabled: plain.fg(Color::DarkGray),
            status_expired: plain.fg(Color::Red),
            status_exhausted: plain.fg(Color::Yellow),
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
        assert_eq!(Theme::for_choice(ThemeChoice::Auto, true), Theme::mono());
        assert_eq!(Theme::for_choice(ThemeChoice::Auto, false), Theme::color());
        assert_eq!(Theme::for_choice(ThemeChoice::Color, true), Theme::color());
        assert_eq!(Theme::for_choice(ThemeChoice::Mono, false), Theme::mono());
    }

    #[test]
    fn the_mono_theme_uses_no_colour_and_marks_selection_by_modifiers() {
        let mono = Theme::mono();
        let styles = [mono.title, mono.selected, mono.error, mono.warning, mono.status_expired, mono.chart];
        assert!(styles.iter().all(|s| s.fg.is_none() && s.bg.is_none()));
        assert!(mono.selected.add_modifier.contains(Modifier::REVERSED));
    }
}
