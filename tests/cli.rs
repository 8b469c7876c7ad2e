//! The command line, run as a user runs it: the built binary, on a fresh database each test
//! (SQLite; PostgreSQL too where noted), checking output, exit status and what was written.

mod common;
mod sandbox;

use std::path::Path;
use std::process::{Command, Stdio};

use keytop::crypto::MasterKey;
use sandbox::Sandbox;
use serde_json::Value;

fn remaining(sandbox: &Sandbox, key: &str) -> Value {
    sandbox.json(&["balance", key])["remaining"].clone()
}

fn happy_path(sandbox: &Sandbox) {
    let plaintext = sandbox.with_prepaid_key("10");
    assert!(plaintext.starts_with("sk-") && plaintext.len() == 35, "{plaintext}");

    let shown = sandbox.json(&["keys", "show", "wallet"]);
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["credited"], "10.000000");
    assert_eq!(shown["rate_limit"], 100);
    assert_eq!(shown["concurrent_limit"], 5);
    assert_eq!(shown["allowed_models"], Value::Null);
    let id = shown["id"].as_str().unwrap().to_string();

    // Reference by id prefix works like the name.
    assert_eq!(sandbox.json(&["keys", "show", &id[..8]])["name"], "wallet");

    assert!(sandbox.ok(&["keys", "list"]).contains("wallet"));
    sandbox.ok(&["topup", "wallet", "2.5", "--note", "bonus"]);
    assert_eq!(remaining(sandbox, "wallet"), "12.500000");
    sandbox.ok(&["topup", "wallet", "-3"]);
    assert_eq!(remaining(sandbox, "wallet"), "9.500000");
    let ledger = sandbox.json(&["ledger", "wallet"]);
    let deltas: Vec<&str> = ledger.as_array().unwrap().iter().map(|e| e["delta"].as_str().unwrap()).collect();
    assert_eq!(deltas, ["10.000000", "2.500000", "-3.000000"]);
    assert_eq!(ledger[1]["actor"], "tester");
    assert_eq!(ledger[1]["note"], "bonus");

    let record = ["usage", "record", "wallet", "--tokens", "1200", "--cost", "0.25", "--request-id", "r-1"];
    sandbox.ok(&record);
    assert!(sandbox.ok(&record).contains("already recorded"));
    assert_eq!(remaining(sandbox, "wallet"), "9.250000");

    let stats = sandbox.json(&["stats", "wallet", "--days", "7"]);
    assert_eq!(stats["total_requests"], 1);
    assert_eq!(stats["total_tokens"], 1200);
    assert_eq!(stats["total_cost"], "0.250000");
    assert_eq!(stats["daily"].as_array().unwrap().len(), 7);
    assert_eq!(stats["daily"][6]["requests"], 1);

    assert!(sandbox.ok(&["verify", &plaintext]).starts_with("allowed"));
    assert_eq!(sandbox.run(&["verify", "sk-doesnotexist"]).status.code(), Some(3));
    sandbox.ok(&["keys", "update", "wallet", "--models", "gpt-4o"]);
    let denied = sandbox.run(&["verify", &plaintext, "--model", "other"]);
    assert_eq!((denied.status.code(), String::from_utf8_lossy(&denied.stdout).trim()), (Some(3), "not_allowed"));

    sandbox.ok(&["keys", "disable", "wallet"]);
    let denied = sandbox.run(&["verify", &plaintext]);
    assert_eq!((denied.status.code(), String::from_utf8_lossy(&denied.stdout).trim()), (Some(3), "disabled"));
    sandbox.ok(&["keys", "enable", "wallet"]);

    let updated = sandbox.json(&[
        "keys",
        "update",
        "wallet",
        "--rate-limit",
        "none",
        "--models",
        "",
        "--expires-in",
        "2d",
        "--name",
        "purse",
    ]);
    assert_eq!(updated["rate_limit"], Value::Null);
    assert_eq!(updated["allowed_models"], Value::Null);
    assert!(updated["expires_at"].is_string());
    let cleared = sandbox.json(&["keys", "update", "purse", "--no-expiry"]);
    assert_eq!(cleared["expires_at"], Value::Null);

    assert_eq!(sandbox.ok(&["keys", "reveal", "purse"]).trim(), plaintext);
    let audit = sandbox.json(&["audit", "--key", "purse"]);
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        actions.contains(&"key_reveal") && actions.contains(&"topup") && actions.contains(&"deduct"),
        "{actions:?}"
    );

    sandbox.ok(&["keys", "update", "purse", "--expires-at", "2000-01-01", "--allow-past"]);
    assert_eq!(sandbox.json(&["keys", "show", "purse"])["status"], "expired");
    let dry = sandbox.json(&["sweep", "--dry-run"]);
    assert_eq!((dry["disabled"].as_u64(), dry["deleted"].as_u64()), (Some(1), Some(0)));
    assert_eq!(sandbox.json(&["keys", "show", "purse"])["is_active"], true, "a dry run writes nothing");
    let swept = sandbox.json(&["sweep"]);
    assert_eq!(swept["disabled_keys"][0]["id"], id.as_str());
    assert_eq!(sandbox.json(&["sweep"])["disabled"], 0);

    sandbox.ok(&["keys", "purge", "purse"]);
    sandbox.fails(&["keys", "show", "purse"], 2);
    assert!(sandbox.ok(&["migrate"]).contains("schema version"));
}

/// A database an older keytop left behind is upgraded on the first command, with a word on
/// stderr before the pause an index rebuild can cause and one after it; a new database and an
/// up-to-date one open without a word.
#[tokio::test(flavor = "multi_thread")]
async fn a_schema_upgrade_is_announced_on_stderr() {
    for sandbox in Sandbox::all().await {
        let stderr_of = |args: &[&str]| {
            let output = sandbox.run(args);
            assert!(
                output.status.success(),
                "[{}] {args:?}: {}",
                sandbox.label,
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stderr).unwrap()
        };
        sandbox.recreate_at_schema(3);
        let upgraded = stderr_of(&["keys", "list"]);
        let latest = sandbox.json(&["migrate"])["schema_version"].as_i64().unwrap();
        assert!(latest > 3);
        assert!(
            upgraded.contains(&format!("upgrading the database schema from version 3 to {latest}"))
                && upgraded.contains(&format!("database schema upgraded to version {latest} in ")),
            "[{}] {upgraded}",
            sandbox.label
        );
        assert_eq!(stderr_of(&["keys", "list"]), "", "[{}] an up-to-date database", sandbox.label);
    }
    for sandbox in Sandbox::all().await {
        assert_eq!(
            String::from_utf8(sandbox.run(&["migrate"]).stderr).unwrap(),
            "",
            "[{}] a new database",
            sandbox.label
        );
    }
}

#[test]
fn happy_path_on_sqlite() {
    happy_path(&Sandbox::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn happy_path_on_postgres() {
    let Some(sandbox) = Sandbox::postgres().await else {
        eprintln!("skipped: KEYTOP_TEST_POSTGRES is not set");
        return;
    };
    tokio::task::spawn_blocking(move || happy_path(&sandbox)).await.unwrap();
}

#[test]
fn bad_amounts_are_refused_with_exit_2_and_nothing_written() {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    let before = sandbox.json(&["ledger", "wallet"]);
    for amount in ["0", "1.0000001", "1e3", "NaN", "inf", "1,000", "1,5", "ten", "", "$", "-11"] {
        let stderr = sandbox.fails(&["topup", "wallet", amount], 2);
        assert!(
            stderr.contains("AMOUNT") || stderr.contains("amount") || stderr.contains("remaining"),
            "{amount}: {stderr}"
        );
    }
    assert_eq!(sandbox.json(&["ledger", "wallet"]), before);
    assert_eq!(remaining(&sandbox, "wallet"), "10.000000");
}

#[test]
fn refusals_name_the_field_and_leave_the_database_unchanged() {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "plain"]);
    let keys_before = sandbox.json(&["keys", "list"]);

    let cases: &[(&[&str], &str)] = &[
        (&["topup", "plain", "5"], "not a prepaid"),
        (&["keys", "create", "--user", "nobody"], "no user matches"),
        (&["keys", "create", "--user", "alice", "--rate-limit", "0"], "--rate-limit"),
        (&["keys", "create", "--user", "alice", "--rate-limit", "-5"], "--rate-limit"),
        (&["keys", "create", "--user", "alice", "--rate-limit", "9223372036854775808"], "--rate-limit"),
        (&["keys", "create", "--user", "alice", "--expires-in", "soon"], "--expires-in"),
        (&["keys", "create", "--user", "alice", "--expires-at", "2026-02-30"], "--expires-at"),
        (&["keys", "create", "--user", "alice", "--expires-at", "2001-01-01"], "--allow-past"),
        (&["keys", "update", "plain", "--expires-at", "2001-01-01"], "is in the past"),
        (&["keys", "create", "--user", "alice", "--balance", "5"], "standalone"),
        (&["keys", "create", "--user", "alice", "--name", "  "], "name"),
        (&["keys", "create", "--user", "alice", "--name", "bad\u{1b}[2Jname"], "control characters"),
        (&["keys", "create", "--user", "alice", "--auto-delete", "maybe"], "--auto-delete"),
        (&["keys", "update", "wallet", "--concurrency", "0"], "--concurrency"),
        (&["keys", "update", "plain", "--balance", "3"], "--balance"),
        (&["keys", "show", "missing"], "no key matches"),
        (&["usage", "record", "wallet", "--tokens", "-1", "--cost", "1"], "tokens"),
        (&["usage", "record", "wallet", "--tokens", "1", "--cost", "-1"], "cost"),
        (&["stats", "wallet", "--days", "0"], "days"),
        (&["users", "add", "alice"], "already exists"),
    ];
    for (args, expected) in cases {
        let stderr = sandbox.fails(args, 2);
        assert!(stderr.contains(expected), "keytop {args:?}: expected {expected:?} in {stderr:?}");
    }
    assert_eq!(sandbox.json(&["keys", "list"]), keys_before);
    assert_eq!(sandbox.json(&["ledger", "wallet"]).as_array().unwrap().len(), 1);
}

#[test]
fn an_ambiguous_reference_lists_the_candidates() {
    let sandbox = Sandbox::sqlite();
    sandbox.ok(&["users", "add", "bob"]);
    sandbox.ok(&["keys", "create", "--user", "bob", "--name", "twin"]);
    sandbox.ok(&["keys", "create", "--user", "bob", "--name", "twin"]);
    let stderr = sandbox.fails(&["keys", "show", "twin"], 2);
    assert!(stderr.contains("several keys") && stderr.matches("(twin)").count() == 2, "{stderr}");
}

#[test]
fn list_scopes_and_filters() {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    sandbox.ok(&["users", "add", "bob"]);
    sandbox.ok(&["keys", "create", "--user", "bob", "--name", "bob-main"]);
    sandbox.ok(&["keys", "create", "--user", "bob", "--name", "bob-old", "--expires-at", "2001-01-01", "--allow-past"]);
    let names = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["keys", "list"];
        full.extend_from_slice(args);
        let listed = sandbox.json(&full);
        listed.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&[]), ["bob-old", "bob-main", "wallet"], "newest first");
    assert_eq!(names(&["--user-keys"]), ["bob-old", "bob-main"]);
    assert_eq!(names(&["--standalone"]), ["wallet"]);
    assert_eq!(names(&["--user", "bob", "--active"]), ["bob-main"]);
    assert_eq!(names(&["--inactive"]), ["bob-old"]);
    assert_eq!(names(&["--filter", "MAIN"]), ["bob-main"]);
    assert_eq!(names(&["--filter", "%"]), Vec::<String>::new());
}

#[test]
fn a_wrong_master_key_breaks_reveal_only() {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    let other = MasterKey::generate().1;
    let run = |args: &[&str]| sandbox.command(args).env("KEYTOP_MASTER_KEY", &other).output().unwrap();
    let reveal = run(&["keys", "reveal", "wallet"]);
    assert_eq!(reveal.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&reveal.stderr).contains("cannot decrypt"), "{reveal:?}");
    for args in [&["keys", "list"][..], &["keys", "show", "wallet"], &["topup", "wallet", "1"], &["balance", "wallet"]]
    {
        assert!(run(args).status.success(), "{args:?} must work with another master key");
    }
    let malformed = sandbox.command(&["keys", "list"]).env("KEYTOP_MASTER_KEY", "short").output().unwrap();
    assert!(malformed.status.success(), "listing needs no master key");
    let create =
        sandbox.command(&["keys", "create", "--user", "alice"]).env("KEYTOP_MASTER_KEY", "short").output().unwrap();
    assert_eq!(create.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&create.stderr).contains("KEYTOP_MASTER_KEY"));
}

#[test]
fn an_unreachable_database_fails_fast_without_its_password() {
    let sandbox = Sandbox::sqlite();
    let started = std::time::Instant::now();
    let output = sandbox
        .command(&["keys", "list"])
        .env("KEYTOP_DB", "postgres://admin:hunter2@127.0.0.1:1/keys")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("127.0.0.1:1") && !stderr.contains("hunter2"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let output = sandbox.command(&["keys", "list"]).env("KEYTOP_DB", "mysql://x@y/z").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scheme"));
}

#[test]
fn sixteen_processes_topping_up_one_sqlite_file_all_land() {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    let children: Vec<_> = (0..16)
        .map(|i| {
            sandbox
                .command(&["topup", "wallet", "0.01", "--note", &format!("p{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    assert_eq!(remaining(&sandbox, "wallet"), "10.160000");
    assert_eq!(sandbox.json(&["ledger", "wallet"]).as_array().unwrap().len(), 17);
}

#[test]
fn an_idempotency_key_applies_once_and_reports_the_first_result() {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    let first = sandbox.json(&["topup", "wallet", "5", "--idempotency-key", "pay-1"]);
    let second = sandbox.json(&["topup", "wallet", "5", "--idempotency-key", "pay-1"]);
    assert_eq!((first["replayed"].as_bool(), second["replayed"].as_bool()), (Some(false), Some(true)));
    assert_eq!(first["entry"], second["entry"]);
    assert_eq!(remaining(&sandbox, "wallet"), "15.000000");
    let stderr = sandbox.fails(&["topup", "wallet", "7", "--idempotency-key", "pay-1"], 2);
    assert!(stderr.contains("already used"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn sweep_every_stops_cleanly_on_sigterm() {
    let sandbox = Sandbox::sqlite();
    sandbox.ok(&["migrate"]);
    let child = sandbox.command(&["sweep", "--every", "1s"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().filter(|l| l.contains("disabled 0, deleted 0")).count() >= 1, "{stdout}");
}

#[test]
fn no_plaintext_key_reaches_the_log() {
    let sandbox = Sandbox::sqlite();
    let plaintext = sandbox.with_prepaid_key("10");
    sandbox.ok(&["keys", "reveal", "wallet"]);
    sandbox.ok(&["verify", &plaintext]);
    sandbox.fails(&["topup", "wallet", "oops"], 2);
    let log = sandbox.log_text();
    assert!(log.contains("command failed"), "the log is written: {log}");
    assert!(!log.contains(&plaintext[3..]), "plaintext key found in the log");
    assert!(!log.contains(&sandbox.master_key), "master key found in the log");
}

#[test]
fn the_default_master_key_file_is_created_private() {
    let sandbox = Sandbox::sqlite();
    sandbox.ok(&["users", "add", "carol"]);
    let output =
        sandbox.command(&["keys", "create", "--user", "carol"]).env_remove("KEYTOP_MASTER_KEY").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let path = sandbox.dir.path().join("config/keytop/master.key");
    assert!(Path::new(&path).exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let reveal = sandbox.command(&["keys", "list", "--json"]).env_remove("KEYTOP_MASTER_KEY").output().unwrap();
    assert!(reveal.status.success());
}

#[test]
fn escape_sequences_in_names_print_inert() {
    let sandbox = Sandbox::sqlite();
    sandbox.ok(&["users", "add", "eve"]);
    sandbox.ok(&["keys", "create", "--user", "eve", "--name", "plain"]);
    // The gateway or another tool may write any text into the shared database.
    let db = sandbox.db_url.clone();
    let hostile = "x\u{1b}]52;c;aGFjaw==\u{7}\u{1b}[2Jy";
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
        sqlx::query("UPDATE api_keys SET name = $1").bind(hostile).execute(&mut conn).await.unwrap();
    });
    for args in [&["keys", "list"][..], &["keys", "show", "--json", hostile]] {
        let stdout = sandbox.ok(args);
        assert!(!stdout.contains('\u{1b}') && !stdout.contains('\u{7}'), "{args:?}: {stdout:?}");
    }
}

#[test]
fn rekey_moves_every_key_to_the_new_master_key_or_none() {
    let sandbox = Sandbox::sqlite();
    let plaintext = sandbox.with_prepaid_key("10");
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "second"]);
    let new_file = sandbox.dir.path().join("new.key");
    let report = sandbox.json(&["rekey", "--new-key-file", new_file.to_str().unwrap()]);
    assert_eq!(report["resealed"], 2);
    let with_new_key = |args: &[&str]| {
        sandbox.command(args).env_remove("KEYTOP_MASTER_KEY").arg("--master-key-file").arg(&new_file).output().unwrap()
    };
    let reveal = with_new_key(&["keys", "reveal", "wallet"]);
    assert_eq!(String::from_utf8_lossy(&reveal.stdout).trim(), plaintext);
    assert_eq!(sandbox.run(&["keys", "reveal", "wallet"]).status.code(), Some(1), "the old key no longer opens it");
    // Rekeying with a master key that opens nothing changes nothing.
    let unrelated = sandbox.dir.path().join("other.key");
    sandbox.fails(&["rekey", "--new-key-file", unrelated.to_str().unwrap()], 1);
    assert_eq!(String::from_utf8_lossy(&with_new_key(&["keys", "reveal", "second"]).stdout).trim().len(), 35);
    let audit = sandbox.json(&["audit"]);
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "master_key_rotate"));
}

#[test]
fn a_reader_that_stops_early_does_not_make_keytop_panic() {
    let sandbox = Sandbox::sqlite();
    sandbox.ok(&["demo", "--users", "3", "--keys", "3000", "--usage-rows", "0"]);
    let mut child = sandbox
        .command(&["keys", "list", "--limit", "3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    // Like `keytop keys list | head -1`: the reader goes away with most of the table unread.
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !stderr.contains("panicked"), "{:?} {stderr}", output.status);
}

/// The folders, database and log keytop creates in the default places are the user's alone; an
/// existing database others can read is reported once per command, and left as it is.
#[cfg(unix)]
#[test]
fn data_files_are_private_and_a_readable_database_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let sandbox = Sandbox::sqlite();
    let users_list = || sandbox.command(&["users", "list"]).env_remove("KEYTOP_DB").output().unwrap();
    let first = users_list();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let (data, state) = (sandbox.dir.path().join("data/keytop"), sandbox.dir.path().join("state/keytop"));
    let database = data.join("keytop.db");
    assert_eq!((mode(&data), mode(&state)), (0o700, 0o700));
    assert_eq!((mode(&database), mode(&state.join("keytop.log"))), (0o600, 0o600));
    assert!(!String::from_utf8_lossy(&first.stderr).contains("other users"));

    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
    let second = users_list();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert_eq!(stderr.matches("can be read by other users (mode 644)").count(), 1, "{stderr}");
    assert_eq!(mode(&database), 0o644, "the mode is the admin's to change");
}

/// Every subcommand at every depth, as its path of names (`["keys", "create"]`), read from the
/// command line's own definition so that this list cannot fall behind it.
fn subcommand_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, path: &[String], paths: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            let mut sub_path = path.to_vec();
            sub_path.push(sub.get_name().to_string());
            walk(sub, &sub_path, paths);
            paths.push(sub_path);
        }
    }
    let mut paths = Vec::new();
    walk(&<keytop::cli::Cli as clap::CommandFactory>::command(), &[], &mut paths);
    paths
}

#[test]
fn completions_and_man_pages_name_every_subcommand() {
    let sandbox = Sandbox::sqlite();
    let paths = subcommand_paths();
    assert!(paths.iter().any(|path| path == &["keys", "create"]), "{paths:?}");

    for shell in <clap_complete::Shell as clap::ValueEnum>::value_variants() {
        let shell = shell.to_string();
        let script = sandbox.ok(&["completions", &shell]);
        for path in &paths {
            let name = path.last().unwrap();
            assert!(script.contains(name.as_str()), "the {shell} completions do not name {path:?}");
        }
    }

    let page = sandbox.ok(&["man"]);
    assert!(page.starts_with(".ie \\n(.g .ds Aq") && page.contains(".TH keytop 1"), "{page}");
    for path in paths.iter().filter(|path| path.len() == 1) {
        let reference = format!("keytop\\-{}(1)", path[0]);
        assert!(page.contains(&reference), "the man page does not list {reference}");
    }

    let dir = sandbox.dir.path().join("man");
    let dir_arg = dir.to_str().unwrap();
    assert!(sandbox.ok(&["man", "--dir", dir_arg]).contains(&format!("wrote {} man pages", paths.len() + 1)));
    let mut written: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    let mut expected: Vec<String> =
        paths.iter().map(|path| format!("keytop-{}.1", path.join("-"))).chain(["keytop.1".to_string()]).collect();
    expected.sort();
    assert_eq!(written, expected);
    let create_page = std::fs::read_to_string(dir.join("keytop-keys-create.1")).unwrap();
    assert!(create_page.contains("\\-\\-standalone"), "{create_page}");
}

/// The fleet's questions on both backends: totals and daily series of the fleet (a purged key's
/// usage included and shown apart) and of a user, the top spenders with their shares, a user
/// with their keys, and the audit log filtered by actor, action and time.
#[tokio::test(flavor = "multi_thread")]
async fn the_fleet_answers_on_the_command_line() {
    for sandbox in Sandbox::all().await {
        tokio::task::spawn_blocking(move || fleet_answers(&sandbox)).await.unwrap();
    }
}

fn fleet_answers(sandbox: &Sandbox) {
    for user in ["ann", "bob"] {
        sandbox.ok(&["users", "add", user]);
    }
    for (user, name) in [("ann", "ann-big"), ("ann", "ann-gone"), ("bob", "bob-small")] {
        sandbox.ok(&["keys", "create", "--user", user, "--name", name]);
    }
    for (n, key, cost) in [(1, "ann-big", "3"), (2, "ann-gone", "1"), (3, "bob-small", "0.5"), (4, "ann-big", "0.5")] {
        let request = format!("r{n}");
        sandbox.ok(&["usage", "record", key, "--tokens", "100", "--cost", cost, "--request-id", &request]);
    }
    sandbox.ok(&["keys", "purge", "ann-gone"]);

    let fleet = sandbox.json(&["stats", "--all", "--days", "7"]);
    assert_eq!((fleet["scope"].as_str(), fleet["total_cost"].as_str()), (Some("fleet"), Some("5.000000")));
    assert_eq!(fleet["total_requests"], 4);
    assert_eq!(fleet["today"]["cost"], "5.000000");
    assert_eq!(fleet["yesterday"]["requests"], 0);
    assert_eq!(fleet["purged_keys"]["cost"], "1.000000");
    assert_eq!(fleet["daily"].as_array().unwrap().len(), 7);
    assert_eq!(fleet["daily"][6]["cost"], "5.000000");
    let text = sandbox.ok(&["stats", "--all"]);
    assert!(text.starts_with("fleet — last 30 days (UTC)") && text.contains("purged keys"), "{text}");

    let ann = sandbox.json(&["stats", "--user", "ann", "--days", "1"]);
    assert_eq!((ann["user"].as_str(), ann["total_cost"].as_str()), (Some("ann"), Some("4.500000")));
    sandbox.fails(&["stats", "--all", "--user", "ann"], 2);
    sandbox.fails(&["stats"], 2);

    let top = sandbox.json(&["top", "--limit", "1"]);
    assert_eq!(top["total"], "5.000000");
    let leader = &top["spenders"][0];
    assert_eq!((leader["name"].as_str(), leader["owner"].as_str()), (Some("ann-big"), Some("ann")));
    assert_eq!((leader["cost"].as_str(), leader["share"].as_f64()), (Some("3.500000"), Some(0.7)));
    assert_eq!(top["spenders"].as_array().unwrap().len(), 1);
    assert_eq!(top["purged"]["cost"], "1.000000");
    let by_user = sandbox.json(&["top", "--by", "user"]);
    let users: Vec<(&str, &str)> = by_user["spenders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["cost"].as_str().unwrap()))
        .collect();
    assert_eq!(users, [("ann", "4.500000"), ("bob", "0.500000")]);
    assert!(sandbox.ok(&["top"]).contains("(purged keys)"));

    let shown = sandbox.json(&["users", "show", "ann"]);
    assert_eq!((shown["keys"].as_i64(), shown["active_keys"].as_i64()), (Some(1), Some(1)));
    assert_eq!(shown["spend"], "4.500000");
    assert_eq!(shown["key_list"][0]["name"], "ann-big");
    assert!(sandbox.ok(&["users", "show", "bob"]).contains("bob-small"));
    sandbox.fails(&["users", "show", "nobody"], 2);

    sandbox.ok(&["--actor", "carol", "keys", "disable", "bob-small"]);
    let audit = sandbox.json(&["audit", "--actor", "carol", "--since", "1h"]);
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.len(), 1, "{audit}");
    let action = actions[0].to_string();
    let by_action = sandbox.json(&["audit", "--action", &action]);
    assert_eq!(by_action[0]["actor"], "carol", "{action}: {by_action}");
    assert!(sandbox.json(&["audit", "--actor", "carol", "--since", "2999-01-01"]).as_array().unwrap().is_empty());
    let newest = sandbox.json(&["audit", "--limit", "1"]);
    let older = sandbox.json(&["audit", "--limit", "1", "--before", &newest[0]["id"].to_string()]);
    assert!(older[0]["id"].as_i64() < newest[0]["id"].as_i64());
    sandbox.fails(&["audit", "--since", "yesterday-ish"], 2);
}

#[test]
fn without_user_or_actor_the_actor_is_the_effective_users_name() {
    let sandbox = Sandbox::sqlite();
    let output = sandbox.command(&["users", "add", "carol"]).env_remove("KEYTOP_ACTOR").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let audit = sandbox.json(&["audit"]);
    let actor = audit[0]["actor"].as_str().unwrap().to_string();
    assert_ne!(actor, "unknown");
    assert_eq!(actor, whoami::username().unwrap());
}

/// `keys list` lists every match, past any page size, or says on stderr what `--limit` left out;
/// `audit` says so too.
#[tokio::test(flavor = "multi_thread")]
async fn listings_print_every_match_or_say_what_the_limit_left_out() {
    for sandbox in Sandbox::all().await {
        sandbox.ok(&["demo", "--users", "3", "--keys", "1203", "--usage-rows", "0"]);
        let all = sandbox.run(&["keys", "list"]);
        let table = String::from_utf8_lossy(&all.stdout);
        assert_eq!(table.lines().count(), 1 + 1203, "[{}] a header and every key", sandbox.label);
        assert_eq!(String::from_utf8_lossy(&all.stderr), "", "[{}] nothing left out", sandbox.label);
        let json = sandbox.json(&["keys", "list"]);
        let ids: std::collections::HashSet<&str> =
            json.as_array().unwrap().iter().map(|key| key["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 1203, "[{}] JSON streams every key, none twice across pages", sandbox.label);

        let limited = sandbox.run(&["keys", "list", "--limit", "1000"]);
        assert!(limited.status.success());
        assert_eq!(String::from_utf8_lossy(&limited.stdout).lines().count(), 1001);
        let warning = String::from_utf8_lossy(&limited.stderr);
        assert!(warning.contains("listed the first 1000 matching keys; more match"), "[{}] {warning}", sandbox.label);
        let exact = sandbox.run(&["keys", "list", "--limit", "1203"]);
        assert_eq!(String::from_utf8_lossy(&exact.stderr), "", "[{}] nothing more matched", sandbox.label);

        let audit = sandbox.run(&["audit", "--limit", "1"]);
        let warning = String::from_utf8_lossy(&audit.stderr);
        assert!(warning.contains("showed the newest 1 audit rows; older ones exist"), "[{}] {warning}", sandbox.label);
    }
}

/// The rate limit counts recorded requests: `verify` checks and records nothing, so checking a
/// key again and again does not use it up, and says what it counted.
#[test]
fn verify_counts_recorded_requests_and_records_none_itself() {
    let sandbox = Sandbox::sqlite();
    sandbox.ok(&["users", "add", "alice"]);
    let plaintext = sandbox.ok(&["keys", "create", "--user", "alice", "--name", "slow", "--rate-limit", "2"]);
    let plaintext = plaintext.trim();
    for _ in 0..5 {
        let said = sandbox.ok(&["verify", plaintext]);
        assert!(said.contains("recorded requests: 0 of 2 this minute"), "{said}");
    }
    sandbox.ok(&["usage", "record", "slow", "--tokens", "1", "--cost", "0"]);
    assert!(sandbox.ok(&["verify", plaintext]).contains("recorded requests: 1 of 2 this minute"));
    sandbox.ok(&["usage", "record", "slow", "--tokens", "1", "--cost", "0"]);
    let refused = sandbox.run(&["verify", plaintext]);
    assert_eq!((refused.status.code(), String::from_utf8_lossy(&refused.stdout).trim()), (Some(3), "rate_limited"));
}

#[test]
fn a_key_of_a_disabled_owner_is_listed_as_owner_off_and_not_as_active() {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    sandbox.ok(&["users", "disable", "alice"]);
    let table = sandbox.ok(&["keys", "list"]);
    assert!(table.lines().any(|line| line.contains("wallet") && line.contains("owner off")), "{table}");
    assert_eq!(sandbox.json(&["keys", "show", "wallet"])["status"], "owner_disabled");
    assert_eq!(sandbox.json(&["keys", "list", "--active"]), serde_json::json!([]));
    assert_eq!(sandbox.json(&["keys", "list", "--inactive"]).as_array().unwrap().len(), 1);
}

#[test]
fn lists_narrow_to_keys_expiring_soon_and_to_balances_under_their_line() {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "low", "--standalone", "--balance", "3"]);
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "later", "--expires-in", "30d"]);
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "soon", "--expires-in", "2d"]);
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "sooner", "--expires-in", "1d"]);
    let names = |args: &[&str]| -> Vec<String> {
        let listed = sandbox.json(&[&["keys", "list"], args].concat());
        listed.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&["--expiring", "7d"]), ["sooner", "soon"], "soonest first");
    assert_eq!(names(&["--expiring", "36h"]), ["sooner"]);
    assert_eq!(names(&["--low-balance"]), ["low"], "under the default line of $5");
    assert_eq!(names(&["--low-balance", "20"]), ["low", "wallet"], "lowest first, under $20");
    sandbox.ok(&["keys", "update", "wallet", "--low-balance", "11"]);
    assert_eq!(names(&["--low-balance"]), ["low", "wallet"], "the key's own line");
    assert_eq!(names(&["--low-balance", "1"]), Vec::<String>::new(), "USD overrides the keys' lines");
    assert!(sandbox.fails(&["keys", "list", "--expiring", "soon"], 2).contains("--expiring"));
    assert!(sandbox.fails(&["keys", "list", "--low-balance=-1"], 2).contains("must not be negative"));
}

#[test]
fn keys_are_disabled_enabled_and_purged_in_bulk_by_filter_or_owner() {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    sandbox.ok(&["users", "add", "bob"]);
    for name in ["batch-1", "batch-2", "batch-3"] {
        sandbox.ok(&["keys", "create", "--user", "bob", "--name", name]);
    }
    let refused = sandbox.fails(&["keys", "disable", "--filter", "batch"], 2);
    assert!(refused.contains("--all-matching is needed to disable more than one key: 3 match"), "{refused}");
    let dry = sandbox.json(&["keys", "disable", "--filter", "batch", "--dry-run"]);
    assert_eq!(dry["keys"].as_array().unwrap().len(), 3);
    assert_eq!(sandbox.json(&["keys", "list", "--active"]).as_array().unwrap().len(), 4, "a dry run writes nothing");

    let done = sandbox.json(&["keys", "disable", "--filter", "batch", "--all-matching"]);
    assert_eq!((done["succeeded"].as_array().unwrap().len(), done["failed"].as_array().unwrap().len()), (3, 0));
    let disabled = sandbox.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'key_disable'");
    assert_eq!(disabled, ["3"], "one audit row per key");
    let again = sandbox.ok(&["keys", "disable", "--user", "bob", "--all-matching"]);
    assert_eq!(again.trim(), "disabled 3 keys", "disable, not toggle");
    sandbox.ok(&["keys", "enable", "--user", "bob", "--filter", "batch-2"]);
    let active: Vec<Value> = sandbox.json(&["keys", "list", "--active"]).as_array().unwrap().clone();
    assert_eq!(active.iter().map(|k| k["name"].as_str().unwrap()).collect::<Vec<_>>(), ["batch-2", "wallet"]);

    assert!(sandbox.fails(&["keys", "purge", "--filter", "nothing-like-it"], 2).contains("match no key"));
    sandbox.ok(&["keys", "purge", "--user", "bob", "--all-matching"]);
    assert_eq!(sandbox.json(&["keys", "list"]).as_array().unwrap().len(), 1);
    assert_eq!(sandbox.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'key_purge'"), ["3"]);
    assert!(sandbox.fails(&["keys", "disable"], 2).contains("required"), "a key, --filter or --user");
}
