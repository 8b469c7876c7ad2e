//! Secrets: plaintext keys and the master key never reach the log (even at `KEYTOP_LOG=trace`),
//! `Debug` output, error messages or the database in clear, after full sessions on the command
//! line and in the TUI that create, reveal and top up; every reveal is audited with its actor.

mod common;
mod sandbox;

use clap::Parser;
use keytop::crypto::MasterKey;
use keytop::service::{KeyService, ServiceSettings};
use sandbox::Sandbox;
use sandbox::pty::Tui;

/// Every plaintext key (`sk-` + 32 characters) on a screen or in a text.
fn plaintexts(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("sk-").map(|at| at + i) {
        let body = &bytes[at + 3..];
        let len = body.iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        if len == 32 {
            found.push(text[at..at + 35].to_string());
        }
        i = at + 3;
    }
    found
}

/// Fails when any secret, or its random part alone, occurs in `text`.
fn assert_secret_free(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        let random_part = secret.strip_prefix("sk-").unwrap_or(secret);
        assert!(!text.contains(random_part), "{what} contains a secret ({}…)", &random_part[..6]);
    }
}

/// The database files (SQLite file and its WAL) as text, to search for secrets at rest.
fn database_bytes(sandbox: &Sandbox) -> String {
    let mut all = Vec::new();
    for suffix in ["", "-wal"] {
        let path = sandbox.dir.path().join(format!("keytop.db{suffix}"));
        all.extend(std::fs::read(path).unwrap_or_default());
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn a_full_cli_session_leaves_no_secret_in_the_log_the_output_or_the_database() {
    let sandbox = Sandbox::sqlite();
    let run = |args: &[&str]| {
        sandbox.command(args).env("KEYTOP_LOG", "trace").env("KEYTOP_ACTOR", "cli-admin").output().unwrap()
    };
    assert!(run(&["users", "add", "alice"]).status.success());
    let created = run(&["keys", "create", "--user", "alice", "--name", "wallet", "--standalone", "--balance", "10"]);
    let plaintext = String::from_utf8(created.stdout).unwrap().trim().to_string();
    assert_eq!(plaintexts(&plaintext), std::slice::from_ref(&plaintext), "create prints the plaintext once");
    let other = MasterKey::generate().1;
    let mut outputs = Vec::new();
    for (args, ok) in [
        (&["keys", "reveal", "wallet"][..], true),
        (&["topup", "wallet", "2.5", "--note", "bonus"], true),
        (&["verify", &plaintext], true),
        (&["usage", "record", "wallet", "--tokens", "5", "--cost", "0.1"], true),
        (&["keys", "show", "wallet", "--json"], true),
        (&["keys", "list", "--json"], true),
        (&["audit", "--json"], true),
        (&["topup", "wallet", "oops"], false),
        // The plaintext where a reference is expected: refused, and not echoed anywhere.
        (&["keys", "show", &plaintext], false),
        (&["verify", &format!("{plaintext}x")], false),
    ] {
        let output = run(args);
        assert_eq!(output.status.success(), ok, "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        outputs.push((args.first().copied().unwrap_or_default().to_string(), output));
    }
    // A wrong master key: reveal fails with a message that shows neither key.
    let wrong = sandbox.command(&["keys", "reveal", "wallet"]).env("KEYTOP_MASTER_KEY", &other).output().unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    let malformed = format!("{}!", &sandbox.master_key[..20]);
    let bad =
        sandbox.command(&["keys", "create", "--user", "alice"]).env("KEYTOP_MASTER_KEY", &malformed).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));

    let secrets = [plaintext.clone(), sandbox.master_key.clone(), other.clone()];
    let log = sandbox.log_text();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the log ran at trace level: {log}");
    assert!(log.contains("command failed"), "the failures were logged");
    assert_secret_free("the log", &log, &secrets);
    assert!(!log.contains(&malformed), "the log shows a malformed master key");
    for (what, output) in
        outputs.iter().chain([("reveal (wrong key)".to_string(), wrong), ("create (bad key)".into(), bad)].iter())
    {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_secret_free(&format!("stderr of {what}"), &stderr, &secrets);
        assert!(!stderr.contains(&malformed), "stderr of {what} shows the malformed master key");
    }
    for (what, output) in &outputs {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let allowed = if what == "keys" && stdout.trim() == plaintext { 1 } else { 0 };
        assert!(plaintexts(&stdout).len() <= allowed, "stdout of {what} shows a plaintext: {stdout}");
    }
    // At rest: the hash and the sealed form, never the plaintext or the master key.
    assert_secret_free("the database file", &database_bytes(&sandbox), &secrets);

    // The reveal was audited with its actor.
    let actors = sandbox.sql("SELECT actor FROM audit_log WHERE action = 'key_reveal'");
    assert_eq!(actors, ["cli-admin"], "one reveal row, by the CLI's actor");
}

#[test]
fn a_full_tui_session_leaves_no_secret_in_the_log() {
    let sandbox = Sandbox::sqlite();
    sandbox.ok(&["users", "add", "alice"]);
    let first = sandbox.ok(&["keys", "create", "--user", "alice", "--name", "seed"]).trim().to_string();
    let mut tui = Tui::start_with(&sandbox, &sandbox.db_url, &[]);
    tui.wait_for_text("seed");
    tui.wait_until_idle();

    // Create a prepaid key in the dialog; its plaintext shows once.
    tui.type_keys("n");
    tui.wait_for_text("Owner");
    tui.type_keys("\ttui-key\t \t5\r");
    tui.wait_for_text("New key tui-key");
    let created = plaintexts(&tui.contents());
    assert_eq!(created.len(), 1, "the new key is on screen:\n{}", tui.contents());
    tui.type_keys("\x1b");
    tui.wait_for("the list with the new key", |s| s.contains("tui-key") && !s.contains("New key"));
    tui.wait_until_idle();

    // Select it, reveal it (audited), top it up.
    tui.type_keys("/tui-key\r");
    tui.wait_for("the filter", |s| s.contains("tui-key") && !s.contains("seed"));
    tui.wait_until_idle();
    tui.type_keys("R");
    tui.wait_for_text("Reveal tui-key?");
    tui.type_keys("y");
    tui.wait_for_text("Key tui-key");
    assert_eq!(plaintexts(&tui.contents()), created, "reveal shows the same key");
    tui.type_keys("\x1b");
    tui.wait_for("the secret to close", |s| !s.contains("Key tui-key"));
    tui.type_keys("t");
    tui.wait_for_text("Top up tui-key");
    tui.type_keys("2\r");
    tui.wait_for_text("Added $2.00 on tui-key");
    tui.quit();

    let secrets = [created[0].clone(), first, sandbox.master_key.clone()];
    let log = sandbox.log_text();
    assert_secret_free("the log after the TUI session", &log, &secrets);
    assert_secret_free("the database file", &database_bytes(&sandbox), &secrets);
    let rows = sandbox.sql("SELECT actor FROM audit_log WHERE action = 'key_reveal'");
    assert_eq!(rows, ["tester"], "the TUI's reveal is audited with the session's actor");
}

#[tokio::test]
async fn debug_output_of_every_type_holding_a_secret_is_redacted() {
    let (master_key, master_text) = MasterKey::generate();
    let store = keytop::store::open("sqlite::memory:").await.unwrap();
    let service = KeyService::new(store, Ok(master_key.clone()), ServiceSettings::default(), "t".into());
    service.add_user("alice").await.unwrap();
    let spec = keytop::service::NewKeySpec::new("alice");
    let created = service.create_key(&spec).await.unwrap();
    let plaintext = created.plaintext.clone();
    let secrets = [plaintext.clone(), master_text.clone()];

    let material = service.new_key_material(uuid::Uuid::new_v4()).unwrap();
    let material_plaintext = material.plaintext.clone();
    let revealed = service.reveal_key(created.key.id).await.unwrap();
    assert_eq!(revealed, plaintext);
    let config =
        keytop::config::Config::parse("[database]\nurl = \"postgres://admin:hunter2@db.example/keys\"\n").unwrap();
    let cli = keytop::cli::Cli::parse_from([
        "keytop",
        "--db",
        "postgres://admin:hunter2@db.example/keys",
        "verify",
        &plaintext,
    ]);
    let error = service.reveal_key(uuid::Uuid::new_v4()).await.unwrap_err();
    for (what, debug) in [
        ("ApiKey", format!("{:?}", created.key)),
        ("CreatedKey", format!("{created:?}")),
        ("CreatedKey (pretty)", format!("{created:#?}")),
        ("KeyMaterial", format!("{material:?}")),
        ("MasterKey", format!("{master_key:?}")),
        ("Config", format!("{config:?}")),
        ("Cli", format!("{cli:?}")),
        ("ServiceError", format!("{error:?} {error}")),
    ] {
        assert_secret_free(what, &debug, &secrets);
        assert!(!debug.contains(&material_plaintext[3..]), "{what} shows a generated plaintext: {debug}");
        assert!(!debug.contains("hunter2"), "{what} shows a database password: {debug}");
    }
}

#[test]
fn a_group_readable_master_key_file_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::sqlite();
    sandbox.ok(&["users", "add", "alice"]);
    let path = sandbox.dir.path().join("master.key");
    std::fs::write(&path, MasterKey::generate().1).unwrap();
    for mode in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let output = sandbox
            .command(&["keys", "create", "--user", "alice", "--master-key-file", path.to_str().unwrap()])
            .env_remove("KEYTOP_MASTER_KEY")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "mode {mode:o}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("chmod 600 {}", path.display())), "mode {mode:o}: {stderr}");
    }
    assert_eq!(sandbox.sql_i64("SELECT COUNT(*) FROM api_keys"), 0);
}
