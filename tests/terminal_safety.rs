//! Text in the shared database is untrusted: the gateway or any other tool may have written
//! escape sequences into names, owners, notes, actors, allow lists and audit details. keytop
//! must show them inert — in the TUI list, the detail with its ledger, every dialog; in the
//! CLI's tables — and escaped in JSON.
//!
//! The TUI is checked on the raw byte stream of a pseudo-terminal: the payloads' sequences
//! (`ESC ] 52 ;` clipboard write, `ESC ] 0 ;` window title, `ESC [ 2 J` clear screen) never
//! appear. keytop's own sequences (cursor moves, colours, synchronized update) are allowed; it
//! writes no OSC at all and no BEL until the admin presses `c` on a revealed key, and then exactly
//! its own OSC 52 carrying that key.

mod common;
mod sandbox;

use base64::Engine as _;
use sandbox::Sandbox;
use sandbox::pty::{Tui, contains_bytes};
use serde_json::Value;

const CLIP: &str = "clip\u{1b}]52;c;SEFDSw==\u{7}end";
const TITLE: &str = "title\u{1b}]0;PWNED\u{7}end";
const WIPE: &str = "wipe\u{1b}[2Jtail";
const OWNER: &str = "own\u{1b}]0;OWNER\u{7}er";
const NOTE: &str = "note\u{1b}]0;NOTE\u{7}x\u{1b}[2Jy";
const ACTOR: &str = "act\u{1b}]52;c;QUNUT1I=\u{7}or";
const MODEL: &str = "m\u{1b}]0;MODEL\u{7}x";

/// Byte sequences that would act on the admin's terminal if any payload got through.
const FORBIDDEN: &[&[u8]] = &[
    b"\x1b]52;c;SEFDSw==",
    b"\x1b]52;c;QUNUT1I=",
    b"\x1b]0;PWNED",
    b"\x1b]0;OWNER",
    b"\x1b]0;NOTE",
    b"\x1b]0;MODEL",
    b"wipe\x1b[2J",
    b"\x1b[2Jtail",
    b"x\x1b[2Jy",
];

/// A SQLite string expression for `text`, control characters as `char(n)`.
fn sql_text(text: &str) -> String {
    let mut parts = Vec::new();
    let mut plain = String::new();
    for ch in text.chars() {
        if ch.is_control() {
            if !plain.is_empty() {
                parts.push(format!("'{}'", plain.replace('\'', "''")));
                plain.clear();
            }
            parts.push(format!("char({})", ch as u32));
        } else {
            plain.push(ch);
        }
    }
    if !plain.is_empty() {
        parts.push(format!("'{}'", plain.replace('\'', "''")));
    }
    parts.join(" || ")
}

/// Three prepaid keys with usage and ledger rows, then the hostile text written behind keytop's
/// back with raw SQL, as another tool sharing the database might.
/// Returns the sandbox and the ids of the keys named CLIP, TITLE and WIPE.
fn hostile_database() -> (Sandbox, [String; 3]) {
    let sandbox = Sandbox::sqlite();
    sandbox.ok(&["users", "add", "owner"]);
    for name in ["k-clip", "k-title", "k-wipe"] {
        sandbox.ok(&["keys", "create", "--user", "owner", "--name", name, "--standalone", "--balance", "10"]);
        sandbox.ok(&["topup", name, "1", "--note", "plain"]);
        sandbox.ok(&["usage", "record", name, "--tokens", "100", "--cost", "0.5", "--model", "gpt"]);
    }
    let ids = ["k-clip", "k-title", "k-wipe"]
        .map(|name| sandbox.json(&["keys", "show", name])["id"].as_str().unwrap().to_string());
    for (from, to) in [("k-clip", CLIP), ("k-title", TITLE), ("k-wipe", WIPE)] {
        sandbox.sql(&format!("UPDATE api_keys SET name = {} WHERE name = '{from}'", sql_text(to)));
    }
    // JSON allow lists decode `\u001b` into a real ESC.
    sandbox.sql(r#"UPDATE api_keys SET allowed_models = '["m\u001b]0;MODEL\u0007x"]'"#);
    sandbox.sql(&format!("UPDATE users SET name = {}", sql_text(OWNER)));
    sandbox.sql(&format!("UPDATE balance_ledger SET note = {}, actor = {}", sql_text(NOTE), sql_text(ACTOR)));
    sandbox.sql(&format!("UPDATE usage SET model = {}", sql_text(MODEL)));
    sandbox.sql(&format!(
        "UPDATE audit_log SET actor = {}, details = json_object('note', {})",
        sql_text(ACTOR),
        sql_text(NOTE)
    ));
    (sandbox, ids)
}

fn assert_inert(what: &str, bytes: &[u8]) {
    for sequence in FORBIDDEN {
        assert!(
            !contains_bytes(bytes, sequence),
            "{what}: the output carries {:?} from the database",
            String::from_utf8_lossy(sequence)
        );
    }
}

#[test]
fn cli_tables_show_hostile_text_inert() {
    let (sandbox, ids) = hostile_database();
    let [clip, title, wipe] = [ids[0].as_str(), ids[1].as_str(), ids[2].as_str()];
    let commands: &[&[&str]] = &[
        &["keys", "list"],
        &["keys", "show", clip],
        &["keys", "show", title],
        &["keys", "show", wipe],
        &["users", "list"],
        &["ledger", clip],
        &["ledger", wipe],
        &["balance", clip],
        &["audit"],
        &["audit", "--key", title],
        &["stats", clip, "--days", "2"],
        &["topup", title, "1"],
        &["keys", "update", wipe, "--rate-limit", "7"],
        &["keys", "reveal", clip],
        &["keys", "disable", title],
        &["usage", "record", clip, "--tokens", "1", "--cost", "0"],
        &["keys", "update", clip, "--expires-at", "2001-01-01", "--allow-past"],
        &["sweep", "--dry-run"],
        &["sweep"],
        &["keys", "purge", clip],
    ];
    for args in commands {
        let output = sandbox.command(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        let all = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
        assert_inert(&format!("keytop {args:?}"), &all);
        assert!(!all.contains(&0x1b) && !all.contains(&0x07), "keytop {args:?}: {:?}", String::from_utf8_lossy(&all));
    }
    // The text is still there, only inert: what an admin needs to find the key.
    let list = sandbox.ok(&["keys", "list"]);
    assert!(list.contains("title]0;PWNEDend") && list.contains("wipe[2Jtail"), "{list}");
}

#[test]
fn cli_json_escapes_hostile_text_and_keeps_it_exact() {
    let (sandbox, ids) = hostile_database();
    for args in [
        &["keys", "list", "--json"][..],
        &["keys", "show", &ids[0], "--json"],
        &["ledger", &ids[0], "--json"],
        &["audit", "--json"],
        &["users", "list", "--json"],
    ] {
        let output = sandbox.command(args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(
            !output.stdout.contains(&0x1b) && !output.stdout.contains(&0x07),
            "{args:?}: raw control bytes in JSON"
        );
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("\\u001b"), "{args:?}: the escapes are kept, JSON-escaped: {text}");
        serde_json::from_str::<Value>(&text).expect("valid JSON");
    }
    // A JSON reader gets the stored text back exactly: escaped, not altered.
    let list = sandbox.json(&["keys", "list"]);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    for name in [CLIP, TITLE, WIPE] {
        assert!(names.contains(&name), "{name:?} not in {names:?}");
    }
    let ledger = sandbox.json(&["ledger", &ids[0]]);
    assert_eq!(ledger[0]["note"], NOTE);
    assert_eq!(ledger[0]["actor"], ACTOR);
}

#[test]
fn the_tui_never_writes_a_sequence_that_came_from_the_database() {
    let (sandbox, ids) = hostile_database();
    let mut tui = Tui::start(&sandbox);
    tui.wait_for_text("wipe[2Jtail");
    tui.wait_until_idle();
    let screen = tui.contents();
    // The owner column is 12 wide: the inert owner name is cut there, with an ellipsis.
    for inert in ["clip]52;c;SEFDSw==end", "title]0;PWNEDend", "own]0;OWNER…"] {
        assert!(screen.contains(inert), "the list shows {inert:?} as text:\n{screen}");
    }

    // Every key: detail (fields, allow list, ledger with note and actor), then every dialog.
    let names = ["wipe[2Jtail", "title]0;PWNEDend", "clip]52;c;SEFDSw==end"];
    for (row, name) in names.iter().enumerate() {
        tui.type_keys("g");
        for _ in 0..row {
            tui.type_keys("j");
        }
        tui.type_keys("\r");
        tui.wait_for("the detail with its ledger", |s| {
            s.contains("act]52;c;QUNUT1I=or · note]0;NO") && s.contains(name)
        });
        tui.wait_for_text("m]0;MODELx");
        tui.wait_until_idle();
        for (open, title, close) in [
            ("t", format!("Top up {name}"), "\x1b"),
            ("e", format!("Edit {name}"), "\x1b"),
            ("d", format!("Disable {name}?"), "n"),
            ("D", format!("Purge {name}?"), "n"),
            ("?", "Show this help".to_string(), "\x1b"),
        ] {
            tui.type_keys(open);
            tui.wait_for_text(&title);
            tui.type_keys(close);
            tui.wait_for(&format!("{title} to close"), |s| !s.contains(&title));
        }
        tui.type_keys("R");
        tui.wait_for_text(&format!("Reveal {name}?"));
        tui.type_keys("y");
        tui.wait_for_text(&format!("Key {name}"));
        tui.wait_for_text("sk-");
        if row < 2 {
            tui.type_keys("\x1b");
            tui.wait_for("the secret to close", |s| !s.contains(&format!("Key {name}")));
            tui.type_keys("\x1b");
            tui.wait_for("the list", |s| s.contains("Keys ·"));
        }
    }

    // Up to here keytop wrote no OSC and no BEL at all, and none of the payloads.
    let before_copy = tui.raw();
    assert_inert("the TUI", &before_copy);
    assert!(!contains_bytes(&before_copy, b"\x1b]"), "the TUI wrote an OSC sequence before any copy");
    assert!(!before_copy.contains(&0x07), "the TUI wrote a BEL before any copy");

    // Its own OSC 52 — only when the admin asks — carries the revealed key, nothing else.
    let plaintext = sandbox.ok(&["keys", "reveal", &ids[0]]).trim().to_string();
    tui.type_keys("c");
    let expected = format!("\x1b]52;c;{}\x07", base64::engine::general_purpose::STANDARD.encode(&plaintext));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !contains_bytes(&tui.raw(), expected.as_bytes()) {
        assert!(std::time::Instant::now() < deadline, "pressing c did not copy the revealed key");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    tui.quit();
    let all = tui.raw();
    assert_inert("the TUI", &all);
    assert_eq!(all.windows(4).filter(|w| w == b"\x1b]52").count(), 1, "exactly one OSC 52: the admin's copy");
}
