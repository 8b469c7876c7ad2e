//! The title line, the filter box, the status line and the key hints.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::keymap::Binding;
use crate::tui::screens;
use crate::tui::state::{Outage, State, SweepResult, ToastKind};

use super::format::safe;

pub fn render_title(frame: &mut Frame, state: &State, area: Rect) {
    let theme = &state.session.theme;
    if let Some(outage) = &state.outage {
        frame.render_widget(Line::from(outage_banner(state, outage)), area);
        return;
    }
    let mut spans = vec![Span::styled(" keytop ", theme.title), Span::raw(" ")];
    spans.extend(screens::tab_bar(state));
    // The marks before the database, which is the part a narrow terminal may cut.
    if state.session.read_only {
        spans.push(Span::styled("read-only  ", theme.warning));
    }
    if state.busy() {
        spans.push(Span::styled("⟳ loading  ", theme.warning));
    }
    spans.push(Span::styled(safe(&state.session.database).into_owned(), theme.muted));
    frame.render_widget(Line::from(spans), area);
}

/// The outage banner: what failed, since when, and when the next retry runs.
fn outage_banner(state: &State, outage: &Outage) -> Vec<Span<'static>> {
    let theme = &state.session.theme;
    let retry = match outage.retry_at {
        Some(at) => {
            let seconds = (at - state.now).num_seconds().max(0);
            format!("retry {} in {seconds}s", outage.attempt)
        }
        None => format!("retry {} running…", outage.attempt),
    };
    vec![
        Span::styled(" keytop ", theme.title),
        Span::styled(
            format!(
                " ⚠ Database unreachable since {} UTC · {retry} · {} ",
                outage.since.format("%H:%M:%S"),
                safe(&outage.message)
            ),
            theme.error,
        ),
    ]
}

pub fn render_filter(frame: &mut Frame, state: &State, area: Rect) {
    let Some(input) = &state.filter_box else { return };
    let theme = &state.session.theme;
    let prompt = " Filter: ";
    let width = usize::from(area.width.saturating_sub(prompt.len() as u16 + 1));
    let scroll = input.visual_scroll(width);
    let line = Line::from(vec![Span::styled(prompt, theme.title), Span::styled(input.value(), theme.text)]);
    frame.render_widget(Paragraph::new(line).scroll((0, scroll as u16)), area);
    let x = area.x + prompt.len() as u16 + (input.visual_cursor().saturating_sub(scroll)) as u16;
    if x < area.right() {
        frame.set_cursor_position(Position::new(x, area.y));
    }
}

pub fn render_status(frame: &mut Frame, state: &State, area: Rect) {
    let theme = &state.session.theme;
    let separator = Span::styled(" │ ", theme.muted);
    let mut spans = Vec::new();
    if let Some(toast) = &state.toast {
        let style = if toast.kind == ToastKind::Error { theme.error } else { theme.success };
        spans.push(Span::styled(format!(" {} ", toast.text), style));
        spans.push(separator.clone());
    }
    let counts = match state.counts {
        Some(counts) => {
            format!(" {} keys, {} disabled, {} expired", counts.total, counts.disabled, counts.expired)
        }
        None => " counting keys…".into(),
    };
    spans.push(Span::styled(counts, theme.text));
    spans.push(separator.clone());
    let refresh = if state.auto_refresh {
        format!("auto-refresh {}s", state.session.refresh_every.as_secs())
    } else if state.session.live_updates {
        "live".into()
    } else {
        "auto-refresh off".into()
    };
    spans.push(Span::styled(refresh, theme.text));
    spans.push(separator.clone());
    spans.push(sweep_span(state));
    if !state.connected.is_empty() {
        spans.push(separator);
        spans.push(Span::styled(
            format!("{} connected: {}", state.connected.len(), safe(&state.connected.join(", "))),
            theme.text,
        ));
    }
    frame.render_widget(Line::from(spans), area);
}

fn sweep_span(state: &State) -> Span<'static> {
    let theme = &state.session.theme;
    let schedule = match state.session.sweep_every {
        Some(every) => format!("sweep every {}s", every.as_secs()),
        None => "sweep off".into(),
    };
    let totals = &state.sweep_totals;
    // The latest run alone often did nothing after an earlier one did the work.
    let session = if totals.disabled + totals.deleted > 0 {
        format!(" (session: {} disabled, {} deleted)", totals.disabled, totals.deleted)
    } else {
        String::new()
    };
    match &state.last_sweep {
        None => Span::styled(schedule, theme.muted),
        Some(SweepResult { at, outcome: Ok(report) }) => {
            let time = at.format("%H:%M");
            let text = if report.skipped {
                format!("sweep {time}: another process was sweeping{session}")
            } else {
                format!("sweep {time}: {} disabled, {} deleted{session}", report.disabled_count, report.deleted_count)
            };
            Span::styled(text, theme.text)
        }
        Some(SweepResult { at, outcome: Err(message) }) => {
            Span::styled(format!("sweep {} failed: {message}", at.format("%H:%M")), theme.error)
        }
    }
}

pub fn render_hints(frame: &mut Frame, state: &State, area: Rect) {
    let mut spans = vec![Span::raw(" ")];
    for binding in state.session.keymap.hints(state.context()) {
        spans.extend(hint(binding, state));
    }
    frame.render_widget(Line::from(spans), area);
}

fn hint<'a>(binding: &'a Binding, state: &State) -> [Span<'a>; 3] {
    let theme = &state.session.theme;
    let key = binding.keys.first().map(ToString::to_string).unwrap_or_default();
    let label = binding.hint.unwrap_or(binding.description);
    [Span::styled(key, theme.key), Span::styled(format!(" {label}"), theme.muted), Span::raw("  ")]
}
