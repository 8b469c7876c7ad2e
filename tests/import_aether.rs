//! `keytop import aether`, run as an admin would: a small Aether database built here from the
//! schema of its models (aether.md §1), on SQLite and on a fresh PostgreSQL database, with Fernet
//! copies made here under the key Aether derives from its development `ENCRYPTION_KEY`.

mod common;
mod sandbox;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use chrono::{Duration, Utc};
use sandbox::Sandbox;
use serde_json::Value;
use sqlx::Connection;

/// Aether's `ENCRYPTION_KEY` outside production.
const ENCRYPTION_KEY: &str = "dev-encryption-key-do-not-use-in-production";
/// The Fernet key Aether derives from it, computed apart from keytop (Python's
/// `hashlib.pbkdf2_hmac('sha256', key, sha256(b'aether-v1').digest()[:16], 100000, 32)`).
const DERIVED_FERNET_KEY: &str = "qGVbbzTSey8Hi1DRtS6wkb2jL33pRBHXTQW-GO6qne0=";

const ALICE: &str = "0b7c2a52-1b7e-4c3e-9a55-1f0c6a1d0001";
const BOB: &str = "0b7c2a52-1b7e-4c3e-9a55-1f0c6a1d0002";
const MALLORY: &str = "0b7c2a52-1b7e-4c3e-9a55-1f0c6a1d0003";
/// Alice's prepaid key, with a readable copy and an allowed list.
const WALLET: &str = "5a0e8f6e-8c1d-4c43-8d7e-2b1f3c4d0001";
/// Mallory's key: a name with escape sequences and a copy under another encryption key.
const ESCAPED: &str = "5a0e8f6e-8c1d-4c43-8d7e-2b1f3c4d0002";
/// Bob's prepaid key: a negative balance, a used total that needs rounding, bad JSON in a list.
const BROKEN: &str = "5a0e8f6e-8c1d-4c43-8d7e-2b1f3c4d0003";
/// Alice's key that Aether kept no copy of.
const UNCOPIED: &str = "5a0e8f6e-8c1d-4c43-8d7e-2b1f3c4d0004";

/// An Aether key: `sk-` and 48 URL-safe characters, `-` and `_` among them.
fn aether_plaintext(seed: char) -> String {
    let body: String = format!("{seed}Ab-_9z").chars().cycle().take(48).collect();
    format!("sk-{body}")
}

fn sha256_hex(text: &str) -> String {
    keytop::crypto::hash_key(text)
}

/// A stored copy as Aether makes it: the Fernet token, base64-encoded once more.
fn aether_copy(fernet_key: &str, plaintext: &str) -> String {
    URL_SAFE.encode(fernet::Fernet::new(fernet_key).unwrap().encrypt(plaintext.as_bytes()))
}

/// Aether's tables as its models declare them (the columns the import reads, and a few it
/// leaves), in the flavour of `postgres` or SQLite.
fn schema(postgres: bool) -> String {
    let (time, float, yes, no) =
        if postgres { ("TIMESTAMPTZ", "DOUBLE PRECISION", "true", "false") } else { ("DATETIME", "FLOAT", "1", "0") };
    format!(
        "CREATE TABLE users (id VARCHAR(36) PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, \
         username VARCHAR(100) NOT NULL UNIQUE, password_hash VARCHAR(255) NOT NULL, quota_usd {float}, \
         used_usd {float} DEFAULT 0, is_active BOOLEAN NOT NULL DEFAULT {yes}, is_deleted BOOLEAN NOT NULL DEFAULT {no}, \
         created_at {time} NOT NULL, updated_at {time} NOT NULL);
         CREATE TABLE api_keys (id VARCHAR(36) PRIMARY KEY, user_id VARCHAR(36) NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
         key_hash VARCHAR(64) NOT NULL UNIQUE, key_encrypted TEXT, name VARCHAR(100), total_requests INTEGER DEFAULT 0, \
         total_cost_usd {float} DEFAULT 0.0, balance_used_usd {float} DEFAULT 0.0, current_balance_usd {float}, \
         is_standalone BOOLEAN NOT NULL DEFAULT {no}, allowed_providers JSON, allowed_endpoints JSON, \
         allowed_api_formats JSON, allowed_models JSON, rate_limit INTEGER DEFAULT 100, concurrent_limit INTEGER DEFAULT 5, \
         force_capabilities JSON, is_active BOOLEAN NOT NULL DEFAULT {yes}, last_used_at {time}, expires_at {time}, \
         auto_delete_on_expiry BOOLEAN NOT NULL DEFAULT {no}, created_at {time} NOT NULL, updated_at {time} NOT NULL);
         CREATE TABLE usage (id VARCHAR(36) PRIMARY KEY, user_id VARCHAR(36) REFERENCES users (id) ON DELETE SET NULL, \
         api_key_id VARCHAR(36) REFERENCES api_keys (id) ON DELETE SET NULL, request_id VARCHAR(100) NOT NULL UNIQUE, \
         provider VARCHAR(100) NOT NULL, model VARCHAR(100) NOT NULL, input_tokens INTEGER DEFAULT 0, \
         output_tokens INTEGER DEFAULT 0, total_tokens INTEGER DEFAULT 0, total_cost_usd {float} DEFAULT 0.0, \
         actual_total_cost_usd {float} DEFAULT 0.0, api_format VARCHAR(50), response_time_ms INTEGER, \
         status VARCHAR(20) NOT NULL DEFAULT 'completed', created_at {time} NOT NULL);"
    )
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Aether's rows: three users, four keys, usage in the last days and one row of a deleted key.
fn rows(postgres: bool) -> String {
    let (yes, no) = if postgres { ("true", "false") } else { ("1", "0") };
    // PostgreSQL's json type refuses malformed JSON, so there the broken list is JSON of the wrong shape.
    let bad_list = if postgres { r#"'{"openai": true}'"# } else { r#"'["openai",'"# };
    let at =
        |days_ago: i64| quoted(&(Utc::now() - Duration::days(days_ago)).format("%Y-%m-%d %H:%M:%S%.6f").to_string());
    let (created, later) = (at(40), quoted(&(Utc::now() + Duration::days(30)).format("%Y-%m-%d %H:%M:%S").to_string()));
    let key = |id: &str, user: &str, seed: char, copy: Option<String>, name: &str, extra: &str| {
        let plaintext = aether_plaintext(seed);
        let copy = copy.map_or("NULL".to_string(), |copy| quoted(&copy));
        format!(
            "INSERT INTO api_keys (id, user_id, key_hash, key_encrypted, name, is_standalone, current_balance_usd, \
             balance_used_usd, allowed_providers, allowed_models, rate_limit, is_active, expires_at, \
             auto_delete_on_expiry, created_at, updated_at) VALUES ('{id}', '{user}', '{}', {copy}, {}, {extra}, {created}, {created});\n",
            sha256_hex(&plaintext),
            quoted(name),
        )
    };
    let usage = |id: u32, key: &str, request: &str, tokens: i64, cost: &str, days_ago: i64| {
        format!(
            "INSERT INTO usage (id, api_key_id, request_id, provider, model, total_tokens, total_cost_usd, \
             api_format, response_time_ms, created_at) VALUES ('u-{id:04}', {key}, '{request}', 'openai', 'gpt-4o', \
             {tokens}, {cost}, 'OPENAI', 120, {});\n",
            at(days_ago)
        )
    };
    let mut sql = String::new();
    for (id, name, active, deleted) in
        [(ALICE, "alice", yes, no), (BOB, "bob", yes, yes), (MALLORY, "mallory\u{1b}[31m", yes, no)]
    {
        sql += &format!(
            "INSERT INTO users (id, email, username, password_hash, is_active, is_deleted, created_at, updated_at) \
             VALUES ('{id}', '{id}@example.com', {}, 'x', {active}, {deleted}, {created}, {created});\n",
            quoted(name)
        );
    }
    let copy = |seed| Some(aether_copy(DERIVED_FERNET_KEY, &aether_plaintext(seed)));
    let foreign_copy = Some(aether_copy(&fernet::Fernet::generate_key(), &aether_plaintext('e')));
    sql += &key(
        WALLET,
        ALICE,
        'w',
        copy('w'),
        "wallet",
        &format!("{yes}, 25.5, 1.75, NULL, '[\"gpt-4o\"]', 100, {yes}, {later}, {yes}"),
    );
    sql += &key(
        ESCAPED,
        MALLORY,
        'e',
        foreign_copy,
        "ci\u{1b}]0;pwned\u{7}-key",
        &format!("{no}, NULL, 0, NULL, NULL, 60, {yes}, NULL, {no}"),
    );
    sql += &key(
        BROKEN,
        BOB,
        'b',
        copy('b'),
        "broken",
        &format!("{yes}, -5, 0.30000000000000004, {bad_list}, NULL, 100, {yes}, NULL, {no}"),
    );
    sql += &key(UNCOPIED, ALICE, 'u', None, "", &format!("{no}, NULL, 0, NULL, NULL, NULL, {yes}, NULL, {no}"));
    sql += &usage(1, &quoted(WALLET), "req-1", 100, "1.25", 2);
    sql += &usage(2, &quoted(WALLET), "req-2", 50, "0.5", 1);
    sql += &usage(3, &quoted(ESCAPED), "req-3", 10, "0.000001", 1);
    sql += &usage(4, &quoted(BROKEN), "req-4", 5, "0.1", 1);
    sql += &usage(5, "NULL", "req-of-a-deleted-key", 7, "2.0", 3);
    sql +=
        &key("not-a-uuid", ALICE, 'n', None, "stray", &format!("{no}, NULL, 0, NULL, NULL, NULL, {yes}, NULL, {no}"));
    sql += &usage(6, "'not-a-uuid'", "req-of-a-stray-key", 1, "0", 1);
    sql += &usage(7, &quoted(UNCOPIED), "req-negative-tokens", -3, "0", 1);
    sql
}

/// A fresh Aether database for `sandbox`'s backend: a SQLite file in the sandbox, or a new
/// PostgreSQL database (dropped with the returned guard).
fn aether_database(sandbox: &Sandbox) -> (String, Option<common::DropOnExit>) {
    let postgres = sandbox.is_postgres();
    let (url, guard) = if postgres {
        let server = common::postgres_server().unwrap();
        let name = format!("aether_test_{}", uuid::Uuid::new_v4().simple());
        let (server_url, create) = (server.clone(), format!("CREATE DATABASE \"{name}\""));
        block_on(async move {
            let mut conn = sqlx::PgConnection::connect(&server_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut conn).await.unwrap();
        });
        let url = keytop::store::with_database(&server, &name);
        (url, Some(common::DropOnExit { admin_url: server, name }))
    } else {
        (format!("sqlite://{}", sandbox.dir.path().join("aether.db").display()), None)
    };
    let script = schema(postgres) + &rows(postgres);
    let url_for_script = url.clone();
    block_on(async move {
        if postgres {
            let mut conn = sqlx::PgConnection::connect(&url_for_script).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(&mut conn).await.unwrap();
        } else {
            let options = url_for_script.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(&mut conn).await.unwrap();
        }
    });
    (url, guard)
}

fn block_on<F: std::future::Future<Output = ()> + Send + 'static>(future: F) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future);
    })
    .join()
    .unwrap();
}

fn import(sandbox: &Sandbox, aether_url: &str, key_file: &std::path::Path) -> Value {
    sandbox.json(&["import", "aether", "--from", aether_url, "--encryption-key-file", key_file.to_str().unwrap()])
}

fn money(sandbox: &Sandbox, key: &str) -> (Value, Value) {
    let balance = sandbox.json(&["balance", key]);
    (balance["credited"].clone(), balance["used"].clone())
}

fn findings_of(report: &Value, row: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["row"] == row)
        .map(|finding| format!("{}; {}", finding["problem"].as_str().unwrap(), finding["action"].as_str().unwrap()))
        .collect()
}

fn imports_an_aether_database(sandbox: &Sandbox) {
    let label = sandbox.label;
    let (aether_url, _guard) = aether_database(sandbox);
    let key_file = sandbox.dir.path().join("aether.key");
    std::fs::write(&key_file, format!("{ENCRYPTION_KEY}\n")).unwrap();

    // A failure midway (keytop refusing the usage rows after the users and keys went in) leaves
    // keytop's database as it was.
    sandbox.ok(&["migrate"]);
    let before = sandbox.fingerprint();
    if sandbox.is_postgres() {
        sandbox.sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
             CREATE TRIGGER refuse_usage BEFORE INSERT ON usage FOR EACH ROW EXECUTE FUNCTION refuse()",
        );
    } else {
        sandbox.sql(
            "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        );
    }
    let key_arg = key_file.to_str().unwrap();
    let failed = sandbox.fails(&["import", "aether", "--from", &aether_url, "--encryption-key-file", key_arg], 1);
    assert!(failed.contains("refused by the test"), "[{label}] {failed}");
    assert_eq!(sandbox.fingerprint(), before, "[{label}] a failed import wrote something");
    sandbox.sql(if sandbox.is_postgres() { "DROP TRIGGER refuse_usage ON usage" } else { "DROP TRIGGER refuse_usage" });

    let report = import(sandbox, &aether_url, &key_file);
    assert_eq!(report["users"]["imported"], 3, "[{label}] {report:#}");
    assert_eq!(report["keys"]["imported"], 4, "[{label}] {report:#}");
    assert_eq!(report["keys"]["skipped"], 1, "[{label}] the key whose id is not a UUID");
    assert_eq!(report["keys"]["without_stored_copy"], 2, "[{label}] {report:#}");
    assert_eq!(report["keys"]["disabled_for_review"], 1, "[{label}] {report:#}");
    assert_eq!(report["usage_rows"]["read"], 7);
    assert_eq!((report["usage_rows"]["loaded"].as_u64(), report["usage_rows"]["new"].as_u64()), (Some(5), Some(5)));
    assert_eq!(report["usage_rows"]["skipped"], 2, "the rows of a deleted key and of a key not imported");

    // Every plaintext Aether handed out verifies as it is, `-` and `_` included.
    let wallet = aether_plaintext('w');
    assert!(sandbox.ok(&["verify", &wallet, "--model", "gpt-4o"]).starts_with("allowed"), "[{label}]");
    assert_eq!(
        sandbox.run(&["verify", &wallet, "--model", "other"]).status.code(),
        Some(3),
        "[{label}] allow list kept"
    );
    assert!(sandbox.ok(&["verify", &aether_plaintext('e')]).starts_with("allowed"), "[{label}]");
    assert!(sandbox.ok(&["verify", &aether_plaintext('u')]).starts_with("allowed"), "[{label}]");
    let broken = sandbox.run(&["verify", &aether_plaintext('b')]);
    assert_eq!(String::from_utf8_lossy(&broken.stdout).trim(), "disabled", "[{label}] bad JSON: held for review");

    // Pasted where a key reference belongs, an Aether plaintext is cut to its hint, never echoed.
    let pasted = sandbox.fails(&["keys", "show", &wallet], 2);
    assert!(pasted.contains("a plaintext key, not shown") && !pasted.contains(&wallet), "[{label}] {pasted}");

    // Reveal: the copy that decrypted, and why the others cannot be shown.
    assert_eq!(sandbox.ok(&["keys", "reveal", WALLET]).trim(), wallet, "[{label}]");
    let foreign = sandbox.fails(&["keys", "reveal", ESCAPED], 2);
    assert!(foreign.contains("no copy") && foreign.contains("does not decrypt"), "[{label}] {foreign}");
    let uncopied = sandbox.fails(&["keys", "reveal", UNCOPIED], 2);
    assert!(uncopied.contains("Aether had no stored copy"), "[{label}] {uncopied}");

    // The hint of an Aether key, and a lookup by it.
    let shown = sandbox.json(&["keys", "show", WALLET]);
    assert_eq!(shown["hint"], format!("{}...{}", &wallet[..10], &wallet[wallet.len() - 4..]));
    let found = sandbox.json(&["keys", "list", "--filter", shown["hint"].as_str().unwrap()]);
    assert_eq!(found.as_array().unwrap().iter().map(|key| key["id"].clone()).collect::<Vec<_>>(), [WALLET]);
    assert_eq!(sandbox.json(&["keys", "show", UNCOPIED])["hint"], "(no stored copy)");
    assert!(sandbox.json(&["keys", "show", UNCOPIED])["name"].as_str().unwrap().starts_with("API Key "));

    // Money: exact, Aether's used total after the load's own charges, a negative balance as 0.
    assert_eq!(money(sandbox, WALLET), (Value::from("25.500000"), Value::from("1.750000")), "[{label}]");
    assert_eq!(money(sandbox, BROKEN), (Value::from("0.000000"), Value::from("0.300000")), "[{label}]");
    let rounding = report["roundings"].as_array().unwrap().iter().find(|r| r["row"] == BROKEN).unwrap();
    assert_eq!(
        (&rounding["column"], &rounding["original"], &rounding["by"]),
        (&Value::from("balance_used_usd"), &Value::from("0.30000000000000004"), &Value::from("-0.00000000000000004"))
    );
    assert_eq!(sandbox.json(&["ledger", WALLET])[0]["delta"], "25.500000");

    // Statistics equal Aether's usage sums.
    let stats = sandbox.json(&["stats", WALLET, "--days", "30"]);
    assert_eq!((stats["total_requests"].as_i64(), stats["total_tokens"].as_i64()), (Some(2), Some(150)), "[{label}]");
    assert_eq!(stats["total_cost"], "1.750000");
    assert_eq!(sandbox.json(&["stats", ESCAPED, "--days", "30"])["total_cost"], "0.000001");

    // Broken rows: reported, handled, nothing unsafe stored.
    let broken_findings = findings_of(&report, BROKEN).join("\n");
    assert!(
        broken_findings.contains("allowed_providers is not") && broken_findings.contains("imported disabled"),
        "{broken_findings}"
    );
    assert!(broken_findings.contains("current_balance_usd is negative"), "{broken_findings}");
    let escaped = sandbox.json(&["keys", "show", ESCAPED]);
    assert_eq!(escaped["name"], "ci]0;pwned-key", "[{label}]");
    assert_eq!(escaped["owner"], "mallory[31m");
    assert!(findings_of(&report, ESCAPED).join("\n").contains("control characters"));
    assert!(findings_of(&report, BOB).join("\n").contains("deleted"), "bob was deleted in Aether");
    assert!(findings_of(&report, "not-a-uuid").join("\n").contains("not a UUID"));
    assert!(findings_of(&report, "req-negative-tokens").join("\n").contains("total_tokens is negative"));
    assert_eq!(sandbox.json(&["stats", UNCOPIED, "--days", "30"])["total_requests"], 1);
    let skipped =
        report["findings"].as_array().unwrap().iter().filter(|f| f["table"] == "usage" && f["row"] == "1 row");
    assert_eq!(skipped.count(), 2, "one summary finding per reason a usage row was skipped: {report:#}");
    assert_eq!(sandbox.json(&["users", "list"]).as_array().unwrap().len(), 3);

    // A second run changes nothing.
    let settled = sandbox.fingerprint();
    let again = import(sandbox, &aether_url, &key_file);
    assert_eq!(
        (again["users"]["already_present"].as_u64(), again["keys"]["already_present"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!((again["users"]["imported"].as_u64(), again["keys"]["imported"].as_u64()), (Some(0), Some(0)));
    assert_eq!(again["usage_rows"]["new"], 0, "[{label}] {again:#}");
    let mut after = sandbox.fingerprint();
    let mut settled = settled;
    // Only the audit row of the second run is new.
    assert_eq!(after.pop().zip(settled.pop()).map(|(a, b)| a != b), Some(true));
    assert_eq!(after, settled, "[{label}]");
    assert_eq!(money(sandbox, WALLET), (Value::from("25.500000"), Value::from("1.750000")));
}

#[test]
fn imports_an_aether_database_on_sqlite() {
    imports_an_aether_database(&Sandbox::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_an_aether_database_on_postgres() {
    let Some(sandbox) = Sandbox::postgres().await else {
        eprintln!("skipped: KEYTOP_TEST_POSTGRES is not set");
        return;
    };
    tokio::task::spawn_blocking(move || imports_an_aether_database(&sandbox)).await.unwrap();
}

#[test]
fn a_dry_run_reports_and_writes_nothing() {
    let sandbox = Sandbox::sqlite();
    let (aether_url, _guard) = aether_database(&sandbox);
    sandbox.ok(&["migrate"]);
    let before = sandbox.fingerprint();
    let report = sandbox.json(&["import", "aether", "--from", &aether_url, "--dry-run"]);
    assert_eq!((report["dry_run"].as_bool(), report["keys"]["imported"].as_u64()), (Some(true), Some(4)));
    assert_eq!(report["keys"]["without_stored_copy"], 4, "no encryption key: no copies");
    assert_eq!(report["usage_rows"]["new"], Value::Null);
    assert_eq!(sandbox.fingerprint(), before);
    let text = sandbox.ok(&["import", "aether", "--from", &aether_url, "--dry-run"]);
    assert!(text.contains("nothing was written") && text.contains("4 imported"), "{text}");
    assert!(!text.contains('\u{1b}'), "the summary shows no escape sequence from Aether's rows");
}
