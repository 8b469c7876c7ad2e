//! A plaintext key on screen, after create (for the only time) or after a reveal.

use ratatui::Frame;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

use crate::tui::state::{Secret, State};

use super::popup;

pub fn render(frame: &mut Frame, state: &State, secret: &Secret) {
    let theme = &state.session.theme;
    let (title, warning) = if secret.once {
        (format!("New key {}", secret.name), "Copy it now: it will not be shown again.")
    } else {
        (format!("Key {}", secret.name), "Revealed; the audit log records it. Keep it secret.")
    };
    let lines = vec![
        Line::styled(warning, theme.warning),
        Line::default(),
        Line::styled(secret.plaintext.as_str(), theme.secret),
        Line::default(),
        Line::styled("The copy goes through your terminal (OSC 52), so it also works over SSH.", theme.muted),
    ];
    let inner = popup(frame, state, &title, 76, lines.len() as u16 + 2);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }),
        inner.inner(ratatui::layout::Margin::new(1, 0)),
    );
}
