//! Live updates: a change made by another process (here the CLI, as a gateway or another admin
//! would) reaches an open TUI within a second, on both backends, without a refresh.

mod common;
mod sandbox;

use std::time::{Duration, Instant};

use sandbox::Sandbox;
use sandbox::pty::Tui;

#[tokio::test(flavor = "multi_thread")]
async fn a_change_by_another_process_reaches_an_open_tui_within_a_second() {
    for sandbox in Sandbox::all().await {
        sandbox.with_prepaid_key("10");
        let mut tui = Tui::start(&sandbox);
        tui.wait_for_text("wallet");
        tui.wait_until_idle();
        assert!(tui.contents().contains("│ live │"), "[{}] {}", sandbox.label, tui.contents());
        tui.type_keys("/wall\r");
        tui.wait_for_text("filter \"wall\"");
        tui.wait_until_idle();

        sandbox.ok(&["topup", "wallet", "5"]);
        let committed = Instant::now();
        tui.wait_for_within("the top-up to show", Duration::from_secs(1), |screen| screen.contains("$15.00"));
        eprintln!("[{}] seen {:?} after the other process committed", sandbox.label, committed.elapsed());
        // The viewer's filter is still applied.
        assert!(tui.contents().contains("filter \"wall\""), "[{}] {}", sandbox.label, tui.contents());

        sandbox.ok(&["keys", "disable", "wallet"]);
        tui.wait_for_within("the key to show disabled", Duration::from_secs(1), |screen| {
            screen.lines().any(|line| line.contains("wallet") && line.contains("disabled"))
        });
        tui.quit();
    }
}
