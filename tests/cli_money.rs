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
