//! Views rendered into a `TestBackend` from fixed state: snapshots at 80×24 and 160×48, every
//! size from 1×1 up without a panic, and the monochrome theme.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Modifier;

use crate::service::KeyStats;
use crate::tui::color_depth::ColorDepth;
use crate::tui::event::Event;
use crate::tui::fixtures::{
    detail_data, detail_state, loaded_state, prepaid_key, session, usage_state, user_state, users_state,
};
use crate::tui::forms::Form;
use crate::tui::state::{Confirm, Confirmed, Metric, Modal, Secret, State};
use crate::tui::theme::Theme;
use crate::tui::update::update;
use crate::tui::view;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

pub(super) fn draw(state: &State) -> Terminal<TestBackend> {
    let (width, height) = state.size;
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| view::render(frame, state)).unwrap();
    terminal
}

/// Snapshots the state `build` makes, at both sizes.
pub(super) fn snapshot(name: &str, build: impl Fn((u16, u16)) -> State) {
    for size in SIZES {
        let terminal = draw(&build(size));
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), terminal.backend());
    }
}

fn with_modal(mut state: State, modal: Modal) -> State {
    state.modals.push(modal);
    state
}

/// Types into the focused field of the dialog on top.
fn typed(mut state: State, text: &str) -> State {
    for ch in text.chars() {
        let key =
            crossterm::event::KeyEvent::new(crossterm::event::KeyCode::Char(ch), crossterm::event::KeyModifiers::NONE);
        update(&mut state, Event::Key(key));
    }
    state
}

#[test]
fn list() {
    snapshot("list", loaded_state);
}

/// Owners and expiries take the room their loaded rows need, and names the rest: at 80 columns
/// "internal-unlimited" is shown whole beside short owner names (a fixed layout cut it at 16).
#[test]
fn names_get_the_room_short_columns_leave() {
    let screen = format!("{:?}", draw(&loaded_state((80, 24))).backend());
    assert!(screen.contains("internal-unlimited "), "{screen}");
    assert!(screen.contains(" 2h ago "), "an expiry is not cut: {screen}");
}

#[test]
fn list_with_filter_box() {
    snapshot("list_filtering", |size| {
        let mut state = loaded_state(size);
        state.filter_box = Some(tui_input::Input::new("ci".into()));
        state.list.filter = "ci".into();
        state
    });
}

/// At 200 columns the room goes to more columns (30-day spend, created) rather than to the
/// name: a key whose spend is not read yet shows `…`.
#[test]
fn list_at_200_columns() {
    let mut state = loaded_state((200, 50));
    let spend = |index: usize| crate::domain::Money::from_micros(index as i64 * 1_234_567);
    state.list.recent_spend =
        state.list.window.rows.iter().enumerate().skip(1).map(|(i, key)| (key.id, spend(i))).collect();
    insta::assert_snapshot!("list_200x50", draw(&state).backend());
}

/// The title names the narrowing and the computed sort, so the admin knows what the list leaves out.
#[test]
fn the_title_names_the_narrowing_and_the_sort() {
    let mut state = loaded_state((120, 32));
    state.list.narrowing = crate::tui::screens::keys::state::Narrowing::LowBalance;
    state.list.sort = crate::domain::SortKey::Remaining;
    state.list.descending = false;
    let screen = format!("{:?}", draw(&state).backend());
    assert!(screen.contains("· under low-balance line ·"), "{screen}");
    assert!(screen.contains("· by remaining ↑"), "{screen}");
}

#[test]
fn detail_with_chart() {
    snapshot("detail", detail_state);
}

/// A week: one labelled bar per day with its value on it.
#[test]
fn detail_with_a_week_of_bars() {
    snapshot("detail_week", |size| {
        let mut state = detail_state(size);
        state.detail.days = 7;
        state.detail.data = Some(detail_data(prepaid_key(), 7));
        state
    });
}

/// A key without a request in the range says so instead of drawing empty axes.
#[test]
fn detail_of_an_unused_key() {
    snapshot("detail_unused", |size| {
        let mut state = detail_state(size);
        let mut data = detail_data(prepaid_key(), 30);
        data.stats = KeyStats::summarise(data.key.id, 30, data.stats.series.first_day, data.stats.series.last_day, &[]);
        data.key.last_used_at = None;
        state.detail.data = Some(data);
        state
    });
}

/// Beside the list at 120 columns the detail is 60 wide: fields wrap between their parts.
#[test]
fn a_narrow_detail_wraps_its_fields_instead_of_cutting_them() {
    let mut state = detail_state((120, 32));
    state.detail.data.as_mut().unwrap().key.allowed_models =
        Some((1..=8).map(|n| format!("model-with-a-long-name-{n}")).collect());
    let screen = draw(&state).backend().to_string();
    let id = prepaid_key().id.to_string();
    for text in [id.as_str(), "remaining $10.00", "on expiry: global policy", "created 2026-01-27", "name-8"] {
        assert!(screen.contains(text), "{text:?} is missing:\n{screen}");
    }
}

#[test]
fn chart_axes_and_bars_carry_units() {
    let cases = [
        (Metric::Cost, 30, "$0.63"),
        (Metric::Tokens, 30, "tokens"),
        (Metric::Requests, 90, "req"),
        (Metric::Cost, 7, "$0."),
    ];
    for (metric, days, unit) in cases {
        let mut state = detail_state((80, 24));
        state.detail.metric = metric;
        state.detail.days = days;
        state.detail.data = Some(detail_data(prepaid_key(), days));
        let screen = draw(&state).backend().to_string();
        assert!(screen.contains(unit), "{metric:?} over {days} days lacks {unit:?}:\n{screen}");
        assert!(screen.contains(&format!("last {days} days, UTC")), "{screen}");
    }
}

#[test]
fn top_up_dialog_with_preview() {
    snapshot("top_up", |size| {
        typed(with_modal(loaded_state(size), Modal::Form(Form::top_up(&prepaid_key(), "tui-test-1".into()))), "7.5")
    });
}

#[test]
fn top_up_dialog_with_an_inline_error() {
    snapshot("top_up_invalid", |size| {
        typed(with_modal(loaded_state(size), Modal::Form(Form::top_up(&prepaid_key(), "tui-test-1".into()))), "7.5.0")
    });
}

#[test]
fn create_dialog() {
    snapshot("create", |size| with_modal(loaded_state(size), Modal::Form(Form::create("alice"))));
}

#[test]
fn edit_dialog() {
    snapshot("edit", |size| with_modal(detail_state(size), Modal::Form(Form::edit(&prepaid_key()))));
}

/// The credited total retyped: checked as typed, with what it leaves to spend.
#[test]
fn edit_dialog_with_a_new_credit() {
    snapshot("edit_credit", |size| {
        let mut form = Form::edit(&prepaid_key());
        form.move_focus(1);
        let state = with_modal(detail_state(size), Modal::Form(form));
        let cleared = (0.."12.00".len()).fold(state, |mut state, _| {
            update(&mut state, Event::Key(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Backspace)));
            state
        });
        typed(cleared, "20.5")
    });
}

#[test]
fn confirmation() {
    snapshot("confirm", |size| {
        let confirm = Confirm {
            title: "Purge ci-key?".into(),
            lines: vec![
                "The key ci-key (sk-AbCdEfG...0000) will be deleted for good.".into(),
                "Requests with it will be refused. Its usage history stays.".into(),
                "This cannot be undone.".into(),
            ],
            action: Confirmed::Purge { key_id: prepaid_key().id },
        };
        with_modal(loaded_state(size), Modal::Confirm(confirm))
    });
}

/// A sweep lists up to a thousand keys: what does not fit is counted, and the question stays.
#[test]
fn a_confirmation_longer_than_the_screen_keeps_its_question() {
    let long_sweep = |size| {
        let confirm = Confirm {
            title: "Run the expiry sweep now? 200 to disable, 0 to delete".into(),
            lines: (0..200).map(|n| format!("disable key-{n}")).collect(),
            action: Confirmed::Sweep(Box::default()),
        };
        with_modal(loaded_state(size), Modal::Confirm(confirm))
    };
    snapshot("confirm_long", long_sweep);
    let screen = format!("{:?}", draw(&long_sweep((80, 24))).backend());
    assert!(screen.contains("Go ahead?"), "{screen}");
    assert!(screen.contains("more lines"), "{screen}");
}

/// Rows are counted as the terminal shows them: a line of wide characters, or any long line in
/// a window narrower than the dialog, takes more rows than its characters suggest, and the
/// question must still stay on screen.
#[test]
fn a_confirmation_of_long_wide_lines_keeps_its_question_in_a_narrow_window() {
    for (size, name) in [((80, 24), "鍵".repeat(36)), ((50, 20), "nightly-batch-".repeat(4))] {
        let confirm = Confirm {
            title: "Run the expiry sweep now?".into(),
            lines: (0..40).map(|n| format!("disable {name}-{n}")).collect(),
            action: Confirmed::Sweep(Box::default()),
        };
        let screen = format!("{:?}", draw(&with_modal(loaded_state(size), Modal::Confirm(confirm))).backend());
        assert!(screen.contains("Go ahead?") && screen.contains("more lines"), "{size:?}\n{screen}");
    }
}

#[test]
fn secret_shown_once() {
    snapshot("secret", |size| {
        let secret =
            Secret { name: "ci-key".into(), plaintext: "sk-AbCdEfGhIjKlMnOpQrStUvWxYz012345".into(), once: true };
        with_modal(loaded_state(size), Modal::Secret(secret))
    });
}

#[test]
fn help() {
    snapshot("help", |size| with_modal(loaded_state(size), Modal::Help { scroll: 0 }));
}

/// Scrolled to the end at 80×24: the global section and the last bindings are reachable.
#[test]
fn help_scrolled_to_the_end() {
    snapshot("help_end", |size| {
        let mut state = with_modal(loaded_state(size), Modal::Help { scroll: 0 });
        update(&mut state, Event::Key(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::End)));
        state
    });
}

#[test]
fn read_only_help_leaves_out_every_change() {
    let mut state = with_modal(loaded_state((80, 24)), Modal::Help { scroll: 0 });
    state.session = session(true, Theme::color(ColorDepth::TrueColor));
    let screen = draw(&state).backend().to_string();
    assert!(!screen.contains("Top up") && !screen.contains("Purge"), "{screen}");
    assert!(screen.contains("read-only"));
}

/// Every size from 1×1 to 130×50, and a burst of pseudo-random resizes, over each screen and
/// dialog: nothing may panic.
#[test]
fn renders_at_every_size_without_panicking() {
    let states = [
        loaded_state((1, 1)),
        detail_state((1, 1)),
        typed(with_modal(detail_state((1, 1)), Modal::Form(Form::top_up(&prepaid_key(), "tui-test-1".into()))), "-3"),
        with_modal(loaded_state((1, 1)), Modal::Form(Form::create("alice"))),
        with_modal(detail_state((1, 1)), Modal::Help { scroll: 0 }),
        usage_state((1, 1)),
        users_state((1, 1)),
        user_state((1, 1)),
    ];
    let mut terminal = Terminal::new(TestBackend::new(1, 1)).unwrap();
    let mut render_at = |state: &State, width: u16, height: u16| {
        let mut state = state.clone();
        update(&mut state, Event::Resize(width, height));
        terminal.backend_mut().resize(width, height);
        terminal.autoresize().unwrap();
        terminal.draw(|frame| view::render(frame, &state)).unwrap();
    };
    for state in &states {
        for width in (1..=130).step_by(3) {
            for height in 1..=50 {
                render_at(state, width, height);
            }
        }
    }
    let mut seed: u32 = 0x2545_f491;
    for _ in 0..500 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let state = &states[seed as usize % states.len()];
        render_at(state, (seed % 200) as u16 + 1, (seed >> 8) as u16 % 70 + 1);
    }
}

pub(super) fn cell_modifiers(buffer: &Buffer, text: &str) -> Modifier {
    let area = buffer.area;
    for y in area.top()..area.bottom() {
        let row: String = (area.left()..area.right()).map(|x| buffer[(x, y)].symbol()).collect();
        if let Some(column) = row.find(text) {
            let x = row[..column].chars().count() as u16;
            return buffer[(x, y)].modifier;
        }
    }
    panic!("{text:?} is not on screen");
}

#[test]
fn the_mono_theme_shows_selection_and_status_without_colour() {
    let mut state = loaded_state((100, 30));
    state.session.theme = Theme::mono();
    let terminal = draw(&state);
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset, "no colour anywhere");
        assert_eq!(cell.bg, ratatui::style::Color::Reset, "no colour anywhere");
    }
    let selected = cell_modifiers(buffer, "ci-key");
    assert!(selected.contains(Modifier::REVERSED | Modifier::BOLD), "{selected:?}");
    assert!(cell_modifiers(buffer, "expired").contains(Modifier::BOLD));
    assert!(cell_modifiers(buffer, "disabled").contains(Modifier::DIM));
}

#[test]
fn every_colour_on_screen_is_one_the_terminal_can_show() {
    use ratatui::style::Color;
    let kinds = |depth: ColorDepth| {
        let mut state = detail_state((120, 32));
        state.session.theme = Theme::for_choice(crate::config::ThemeChoice::Auto, depth);
        let terminal = draw(&state);
        let colours = terminal.backend().buffer().content().iter().flat_map(|cell| [cell.fg, cell.bg]);
        let mut kinds: Vec<&str> = colours
            .filter(|colour| *colour != Color::Reset)
            .map(|colour| match colour {
                Color::Rgb(..) => "rgb",
                Color::Indexed(index) if index >= 16 => "256",
                _ => "16",
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    assert_eq!(kinds(ColorDepth::TrueColor), ["rgb"]);
    assert_eq!(kinds(ColorDepth::Ansi256), ["256"]);
    assert_eq!(kinds(ColorDepth::Ansi16), ["16"]);
    assert!(kinds(ColorDepth::None).is_empty());
}
