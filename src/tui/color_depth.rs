//! How many colours a terminal shows, read from what it says about itself (`TERM`, `COLORTERM`,
//! `NO_COLOR`), and a colour brought down to that depth. The local terminal says it through the
//! environment; an SSH client through its pty request (`TERM`) and `SendEnv`/`SetEnv`.

use ratatui::style::Color;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColorDepth {
    /// No colour at all: `NO_COLOR`, or `TERM=dumb`.
    None,
    /// The 16 ANSI colours, whose exact shades the terminal's own palette decides.
    Ansi16,
    /// The xterm 256-colour palette (`TERM=*-256color`).
    Ansi256,
    /// Any RGB colour (`COLORTERM=truecolor` or `24bit`, `TERM=*-direct`).
    TrueColor,
}

impl ColorDepth {
    /// The depth a terminal supports, from its `TERM` and `COLORTERM` and whether `NO_COLOR` is set
    /// (to anything non-empty, <https://no-color.org>).
    pub fn detect(term: Option<&str>, colorterm: Option<&str>, no_color: bool) -> ColorDepth {
        let term = term.unwrap_or_default();
        if no_color || term == "dumb" {
            ColorDepth::None
        } else if matches!(colorterm, Some("truecolor" | "24bit")) || term.ends_with("-direct") {
            ColorDepth::TrueColor
        } else if term.contains("256color") {
            ColorDepth::Ansi256
        } else {
            ColorDepth::Ansi16
        }
    }

    /// The depth of the terminal this process runs in.
    pub fn of_environment() -> ColorDepth {
        let var = |name| std::env::var(name).ok();
        let no_color = var("NO_COLOR").is_some_and(|value| !value.is_empty());
        ColorDepth::detect(var("TERM").as_deref(), var("COLORTERM").as_deref(), no_color)
    }

    /// `rgb` at this depth: itself, the nearest colour of the 256-colour palette, or `basic`, the
    /// ANSI colour chosen for it by hand (nearness in RGB says little about a palette the terminal
    /// picks). `None` at no depth.
    pub fn paint(self, (red, green, blue): (u8, u8, u8), basic: Color) -> Option<Color> {
        match self {
            ColorDepth::None => None,
            ColorDepth::Ansi16 => Some(basic),
            ColorDepth::Ansi256 => Some(Color::Indexed(nearest_indexed(red, green, blue))),
            ColorDepth::TrueColor => Some(Color::Rgb(red, green, blue)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ColorDepth::None => "none",
            ColorDepth::Ansi16 => "16",
            ColorDepth::Ansi256 => "256",
            ColorDepth::TrueColor => "truecolor",
        }
    }
}

/// The levels of each channel of the 6×6×6 colour cube (indices 16–231).
const CUBE_LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];

/// The nearest of the 256 palette's fixed colours: the cube or the 24 greys (232–255, 8 to 238).
/// The first 16 are left out: terminals redefine them.
fn nearest_indexed(red: u8, green: u8, blue: u8) -> u8 {
    let level = |channel: u8| {
        (0..CUBE_LEVELS.len()).min_by_key(|&index| CUBE_LEVELS[index].abs_diff(channel)).unwrap_or_default()
    };
    let (r, g, b) = (level(red), level(green), level(blue));
    let cube = (CUBE_LEVELS[r], CUBE_LEVELS[g], CUBE_LEVELS[b]);
    let average = (u16::from(red) + u16::from(green) + u16::from(blue)) / 3;
    let grey_step = ((average.saturating_sub(8) + 5) / 10).min(23) as u8;
    let grey = 8 + 10 * grey_step;
    let distance = |(r2, g2, b2): (u8, u8, u8)| {
        [(red, r2), (green, g2), (blue, b2)].iter().map(|&(a, b)| u32::from(a.abs_diff(b)).pow(2)).sum::<u32>()
    };
    if distance((grey, grey, grey)) < distance(cube) {
        232 + grey_step
    } else {
        16 + 36 * r as u8 + 6 * g as u8 + b as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_follows_term_colorterm_and_no_color() {
        let detect = ColorDepth::detect;
        assert_eq!(detect(Some("xterm-256color"), Some("truecolor"), false), ColorDepth::TrueColor);
        assert_eq!(detect(Some("xterm-256color"), Some("24bit"), false), ColorDepth::TrueColor);
        assert_eq!(detect(Some("xterm-direct"), None, false), ColorDepth::TrueColor);
        assert_eq!(detect(Some("tmux-256color"), None, false), ColorDepth::Ansi256);
        assert_eq!(detect(Some("xterm"), None, false), ColorDepth::Ansi16);
        assert_eq!(detect(Some("linux"), Some(""), false), ColorDepth::Ansi16);
        assert_eq!(detect(None, None, false), ColorDepth::Ansi16);
        assert_eq!(detect(Some("dumb"), Some("truecolor"), false), ColorDepth::None);
        assert_eq!(detect(Some("xterm-256color"), Some("truecolor"), true), ColorDepth::None);
    }

    #[test]
    fn colours_come_down_to_the_palette_of_each_depth() {
        let cyan = (95, 215, 255);
        assert_eq!(ColorDepth::TrueColor.paint(cyan, Color::Cyan), Some(Color::Rgb(95, 215, 255)));
        assert_eq!(ColorDepth::Ansi256.paint(cyan, Color::Cyan), Some(Color::Indexed(81)));
        assert_eq!(ColorDepth::Ansi16.paint(cyan, Color::Cyan), Some(Color::Cyan));
        assert_eq!(ColorDepth::None.paint(cyan, Color::Cyan), None);
    }

    #[test]
    fn the_nearest_palette_colour_is_a_cube_colour_or_a_grey() {
        assert_eq!(nearest_indexed(0, 0, 0), 16);
        assert_eq!(nearest_indexed(255, 255, 255), 231);
        assert_eq!(nearest_indexed(255, 95, 95), 203);
        assert_eq!(nearest_indexed(100, 210, 250), 81);
        // Greys between the cube's levels go to the grey ramp.
        assert_eq!(nearest_indexed(118, 118, 118), 243);
        assert_eq!(nearest_indexed(128, 128, 128), 244);
    }
}
