//! Money over time and key rotation through the built binary, on SQLite and on PostgreSQL.

mod common;
mod sandbox;

use sandbox::Sandbox;

/// The denial reason `verify` prints (on stdout, exit 3).
fn denied(sandbox: &Sandbox, plaintext: &str) -> String {
    let output = sandbox.run(&["verify", plaintext]);
    assert_eq!(output.status.code(), Some(3), "[{}] {output:?}", sandbox.label);
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn budgets_and_rolls(sandbox: &Sandbox) {
    let label = sandbox.label;
    let old = sandbox.with_prepaid_key("20");
    sandbox.ok(&["keys", "update", "wallet", "--budget", "1", "--budget-period", "day"]);
    sandbox.ok(&["verify", &old]);
    sandbox.ok(&["usage", "record", "wallet", "--tokens", "5", "--cost", "1.5"]);
    assert_eq!(denied(sandbox, &old), "budget_exceeded", "[{label}]");
    sandbox.ok(&["usage", "record", "wallet", "--tokens", "5", "--cost", "0.5"]);
    let show = sandbox.ok(&["keys", "show", "wallet"]);
    assert!(show.contains("spent $2.00 of $1.00 this day"), "[{label}] {show}");
    assert!(show.contains("over budget"), "[{label}] {show}");
    assert!(show.contains("no refill"), "[{label}] {show}");
    assert_eq!(sandbox.json(&["keys", "show", "wallet"])["budget_spent"], "2.000000", "[{label}]");
    sandbox.ok(&["keys", "update", "wallet", "--budget", "none"]);
    sandbox.ok(&["verify", &old]);

    let new = sandbox.ok(&["keys", "roll", "wallet", "--grace", "1h"]).trim().to_string();
    assert!(new.starts_with("sk-") && new != old, "[{label}] a new secret, printed once");
    sandbox.ok(&["verify", &new]);
    sandbox.ok(&["verify", &old]);
    let show = sandbox.ok(&["keys", "show", "wallet"]);
    assert!(show.contains("previous secret") && show.contains("valid until"), "[{label}] {show}");
    assert_eq!(sandbox.json(&["balance", "wallet"])["remaining"], "18.000000", "[{label}] the balance stays");

    let newest = sandbox.ok(&["keys", "roll", "wallet", "--grace", "0"]).trim().to_string();
    assert_eq!(denied(sandbox, &new), "unknown", "[{label}] grace 0 ends the replaced secret at once");
    assert_eq!(denied(sandbox, &old), "unknown", "[{label}] a second roll ends the oldest secret");
    sandbox.ok(&["verify", &newest]);
    assert!(!sandbox.ok(&["keys", "show", "wallet"]).contains("previous secret"), "[{label}]");
    let audit = sandbox.ok(&["audit", "--key", "wallet"]);
    assert!(audit.contains("key_roll"), "[{label}] {audit}");
    for secret in [&old, &new, &newest] {
        assert!(!audit.contains(secret.as_str()), "[{label}] the audit log never holds a secret");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_deny_at_their_amount_and_rolled_secrets_verify_through_their_grace() {
    let sandboxes = Sandbox::all().await;
    tokio::task::spawn_blocking(move || {
        for sandbox in sandboxes.iter() {
            budgets_and_rolls(sandbox);
        }
    })
    .await
    .unwrap();
}

/// Writes `script` as an executable file in the sandbox; returns its path.
fn script(sandbox: &Sandbox, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = sandbox.dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// A config file running `command` for alerts; returns its path.
fn alerts_config(sandbox: &Sandbox, name: &str, command: &[&str], timeout: &str) -> String {
    let path = sandbox.dir.path().join(name);
    let command = command.iter().map(|word| format!("{word:?}")).collect::<Vec<_>>().join(", ");
    std::fs::write(&path, format!("[alerts]\ncommand = [{command}]\ntimeout = \"{timeout}\"\n")).unwrap();
    path.display().to_string()
}

fn alerts_run_once_with_their_facts(sandbox: &Sandbox) {
    let label = sandbox.label;
    let secret = sandbox.with_prepaid_key("10");
    let written = sandbox.dir.path().join("alerts.txt");
    let record_env = script(sandbox, "record-env.sh", r#"{ env | grep '^KEYTOP_' | sort; echo --; } >> "$1""#);
    let config = alerts_config(sandbox, "alerts.toml", &[&record_env, &written.display().to_string()], "5s");
    let keytop = |args: &[&str]| sandbox.ok(&[&["--config", config.as_str()], args].concat());
    let alerts = || std::fs::read_to_string(&written).unwrap_or_default();

    keytop(&["usage", "record", "wallet", "--tokens", "1", "--cost", "4"]);
    assert_eq!(alerts(), "", "[{label}] $6 left is above the $5 line");
    keytop(&["usage", "record", "wallet", "--tokens", "1", "--cost", "2"]);
    keytop(&["usage", "record", "wallet", "--tokens", "1", "--cost", "1"]);
    keytop(&["sweep"]);
    let text = alerts();
    assert_eq!(text.matches("--\n").count(), 1, "[{label}] one alert, however many writes and sweeps: {text}");
    for fact in [
        "KEYTOP_EVENT=low_balance",
        "KEYTOP_KEY_NAME=wallet",
        "KEYTOP_OWNER=alice",
        "KEYTOP_REMAINING=4.000000",
        "KEYTOP_LOW_BALANCE=5.000000",
        "KEYTOP_PERIOD=balance",
    ] {
        assert!(text.contains(fact), "[{label}] {fact} missing: {text}");
    }
    assert!(!text.contains(&secret), "[{label}] never the plaintext");
    assert!(
        !text.contains("KEYTOP_MASTER_KEY") && !text.contains("KEYTOP_DB"),
        "[{label}] not keytop's settings: {text}"
    );

    // A top-up lifts the key above its line: the next crossing alerts again. Spending the
    // rest exhausts it, a second event of the same period.
    keytop(&["topup", "wallet", "10"]);
    keytop(&["usage", "record", "wallet", "--tokens", "1", "--cost", "12.5"]);
    keytop(&["usage", "record", "wallet", "--tokens", "1", "--cost", "0.5"]);
    let text = alerts();
    assert_eq!(text.matches("KEYTOP_EVENT=low_balance").count(), 2, "[{label}] {text}");
    assert_eq!(text.matches("KEYTOP_EVENT=exhausted").count(), 1, "[{label}] {text}");

    // A budget reached alerts once in its period, naming the period.
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "capped", "--budget", "1", "--budget-period", "day"]);
    keytop(&["usage", "record", "capped", "--tokens", "1", "--cost", "1"]);
    keytop(&["usage", "record", "capped", "--tokens", "1", "--cost", "1"]);
    let text = alerts();
    assert_eq!(text.matches("KEYTOP_EVENT=budget_reached").count(), 1, "[{label}] {text}");
    assert!(text.contains("KEYTOP_BUDGET=1.000000") && text.contains("KEYTOP_PERIOD=day 20"), "[{label}] {text}");

    // A line crossed by a writer that does not check (the gateway writing to the database
    // itself) is caught by the next sweep.
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "direct", "--standalone", "--balance", "10"]);
    sandbox.sql("UPDATE api_keys SET used_micros = 9000000 WHERE name = 'direct'");
    keytop(&["sweep"]);
    assert!(alerts().contains("KEYTOP_KEY_NAME=direct"), "[{label}] {}", alerts());
}

fn a_failing_alert_is_logged_and_the_write_stands(sandbox: &Sandbox) {
    let label = sandbox.label;
    sandbox.with_prepaid_key("10");
    let failing = script(sandbox, "fail.sh", "echo 'webhook said 500' >&2; exit 7");
    let slow = script(sandbox, "slow.sh", "exec sleep 30");
    let missing = sandbox.dir.path().join("no-such-program").display().to_string();
    let cases = [
        ("fail.toml", failing.as_str(), "exit status: 7"),
        ("slow.toml", slow.as_str(), "timed out"),
        ("missing.toml", missing.as_str(), "could not be started"),
    ];
    for (name, program, logged) in cases {
        let config = alerts_config(sandbox, name, &[program], "1s");
        let started = std::time::Instant::now();
        sandbox.ok(&["--config", &config, "usage", "record", "wallet", "--tokens", "1", "--cost", "6"]);
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "[{label}] {name}: a slow alert is cut off");
        assert_eq!(sandbox.json(&["balance", "wallet"])["remaining"], "4.000000", "[{label}] {name}: recorded");
        let log = sandbox.log_text();
        assert!(log.contains(logged), "[{label}] {name}: the log says {logged:?}: {log}");
        // Back above the line, so that the next case crosses it afresh.
        sandbox.ok(&["--config", &config, "topup", "wallet", "6"]);
    }
    assert!(sandbox.log_text().contains("webhook said 500"), "[{label}] the failed command's own words");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_runs_once_per_key_event_and_period_with_its_facts_in_the_environment() {
    let sandboxes = Sandbox::all().await;
    tokio::task::spawn_blocking(move || sandboxes.iter().for_each(alerts_run_once_with_their_facts)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_that_fails_is_logged_and_does_not_undo_or_stop_the_write() {
    let sandboxes = Sandbox::all().await;
    tokio::task::spawn_blocking(move || sandboxes.iter().for_each(a_failing_alert_is_logged_and_the_write_stands))
        .await
        .unwrap();
}
