//! The database going away and coming back: the banner, the retry timer with backoff, the list
//! kept under the banner, recovery on the first answer.

use std::time::Duration;

use crate::tui::effect::{Call, Effect};
use crate::tui::event::{Event, Outcome};
use crate::tui::fixtures::{NOW, keys, loaded_state};
use crate::tui::state::{RequestId, State, retry_delay};
use crate::tui::update::update;

const UNREACHABLE: &str = "cannot open the database at postgres://db/keys: connection refused";

fn list_call(effects: &[Effect]) -> RequestId {
    effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Call(id, Call::ListKeys(_)) => Some(*id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no list reload in {effects:?}"))
}

/// A refresh (`r`) whose list reload fails because the database is unreachable.
fn failed_refresh(state: &mut State) -> Vec<Effect> {
    let effects = update(state, Event::Key(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char('r'))));
    let request = list_call(&effects);
    let mut out = update(state, Event::ConnectionLost(UNREACHABLE.into()));
    out.extend(update(state, Event::Done(request, Box::new(Outcome::Page(Err(UNREACHABLE.into()))))));
    out
}

#[test]
fn an_unreachable_database_shows_the_banner_keeps_the_rows_and_schedules_a_retry() {
    let mut state = loaded_state((100, 30));
    let rows = state.list.window.rows.len();
    let effects = failed_refresh(&mut state);
    let outage = state.outage.clone().expect("an outage");
    assert_eq!(outage.message, UNREACHABLE);
    assert_eq!((outage.attempt, outage.since), (1, NOW));
    assert_eq!(outage.retry_at, Some(NOW + chrono::TimeDelta::seconds(1)));
    assert_eq!(effects, vec![Effect::RetryAfter { delay: Duration::from_secs(1), attempt: 1 }]);
    assert_eq!(state.list.window.rows.len(), rows, "the rows stay");
    assert_eq!(state.list.error, None, "no error page over the rows");
    // More failures while a retry is scheduled schedule nothing more.
    assert!(update(&mut state, Event::ConnectionLost(UNREACHABLE.into())).is_empty());
}

#[test]
fn retries_back_off_and_the_first_answer_ends_the_outage() {
    let mut state = loaded_state((100, 30));
    failed_refresh(&mut state);
    let mut delays = Vec::new();
    for attempt in 1..=7 {
        let effects = update(&mut state, Event::RetryDue { attempt });
        let request = list_call(&effects);
        assert!(state.outage.as_ref().unwrap().retry_at.is_none(), "a retry is running");
        let mut next = update(&mut state, Event::ConnectionLost(UNREACHABLE.into()));
        next.extend(update(&mut state, Event::Done(request, Box::new(Outcome::Page(Err(UNREACHABLE.into()))))));
        let [Effect::RetryAfter { delay, attempt: next_attempt }] = next.as_slice() else { panic!("{next:?}") };
        assert_eq!(*next_attempt, attempt + 1);
        delays.push(delay.as_secs());
    }
    assert_eq!(delays, [2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(retry_delay(1), Duration::from_secs(1));

    // A stale timer does nothing; the current one refreshes, and its answer ends the outage.
    assert!(update(&mut state, Event::RetryDue { attempt: 3 }).is_empty());
    let effects = update(&mut state, Event::RetryDue { attempt: 8 });
    let request = list_call(&effects);
    assert!(effects.iter().any(|e| matches!(e, Effect::Call(_, Call::CountKeys))), "counts refresh too");
    update(&mut state, Event::Done(request, Box::new(Outcome::Page(Ok(keys())))));
    assert_eq!(state.outage, None, "the banner goes");
    assert!(update(&mut state, Event::RetryDue { attempt: 8 }).is_empty());
}

#[test]
fn auto_refresh_waits_for_the_retry_timer_during_an_outage() {
    let mut state = loaded_state((100, 30));
    state.auto_refresh = true;
    assert!(!update(&mut state, Event::RefreshDue).is_empty());
    failed_refresh(&mut state);
    assert!(update(&mut state, Event::RefreshDue).is_empty());
}

#[test]
fn the_banner_says_what_failed_and_when_the_next_retry_runs() {
    let mut state = loaded_state((100, 30));
    failed_refresh(&mut state);
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 30)).unwrap();
    terminal.draw(|frame| crate::tui::view::render(frame, &state)).unwrap();
    let buffer = terminal.backend().buffer();
    let line = |y: u16| (0..100).map(|x| buffer[(x, y)].symbol().to_string()).collect::<String>();
    let banner = line(0);
    assert!(banner.contains("Database unreachable since"), "{banner}");
    assert!(banner.contains("retry 1 in 1s"), "{banner}");
    assert!(banner.contains("cannot open the database"), "{banner}");
    assert!(line(3).contains(&state.list.window.rows[0].name), "the rows are still listed:\n{}", line(3));
}
