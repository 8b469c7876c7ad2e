//! Runs every row of the table in `docs/hostile-inputs.md` and checks its outcome: exit status,
//! message, and the database unchanged where the row says so. The table is the test's input, so
//! the document and keytop's behaviour cannot drift apart.

mod common;
mod sandbox;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use keytop::crypto::MasterKey;
use sandbox::Sandbox;
use sandbox::pty::{Tui, contains_bytes};

const TABLE: &str = include_str!("../docs/hostile-inputs.md");

#[derive(Debug)]
struct Row {
    number: u32,
    channel: String,
    input: String,
    run: String,
    exit: Option<i32>,
    says: String,
    database: String,
}

fn unquote(cell: &str) -> String {
    cell.trim().trim_start_matches('`').trim_end_matches('`').to_string()
}

fn rows() -> Vec<Row> {
    let rows: Vec<Row> = TABLE
        .lines()
        .filter(|line| line.starts_with("| ") && line[2..].starts_with(|c: char| c.is_ascii_digit()))
        .map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 8, "a row has 8 cells: {line}");
            Row {
                number: cells[0].trim().parse().unwrap(),
                channel: cells[1].trim().to_string(),
                input: cells[2].trim().to_string(),
                run: unquote(cells[3]),
                exit: cells[4].trim().parse().ok(),
                says: unquote(cells[5]),
                database: cells[6].trim().to_string(),
            }
        })
        .collect();
    let numbers: Vec<u32> = rows.iter().map(|row| row.number).collect();
    assert_eq!(numbers, (1..=rows.len() as u32).collect::<Vec<_>>(), "rows are numbered 1, 2, 3…");
    rows
}

/// Splits a Run cell into words: spaces separate, `'…'` quotes (`''` inside quotes is a quote).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            current.push('\'');
                        }
                        Some('\'') | None => break,
                        Some(other) => current.push(other),
                    }
                }
            }
            ' ' => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        out.push(current);
    }
    out
}

/// Expands `\e`, `\a`, `\u{…}`, `{x×N}` and the `$…` placeholders of one word.
fn expand(word: &str, places: &[(String, String)]) -> String {
    let mut text = word.to_string();
    for (name, value) in places {
        text = text.replace(name.as_str(), value);
    }
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some('e') => out.push('\u{1b}'),
                Some('a') => out.push('\u{7}'),
                Some('u') => {
                    assert_eq!(chars.next(), Some('{'), "\\u{{…}} in {word}");
                    let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                Some('\\') => out.push('\\'),
                other => panic!("unknown escape \\{other:?} in {word}"),
            },
            '{' if text.contains('×') => {
                let inner: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let (unit, count) = inner.split_once('×').unwrap_or_else(|| panic!("{{x×N}} in {word}"));
                out.push_str(&unit.repeat(count.parse().unwrap()));
            }
            other => out.push(other),
        }
    }
    out
}

/// The sandbox of the table: alice, `wallet` ($10), `plain`, and the files `$DIR` promises.
fn set_up() -> Sandbox {
    let sandbox = Sandbox::sqlite();
    sandbox.with_prepaid_key("10");
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "plain"]);
    let dir = sandbox.dir.path();
    let write = |name: &str, text: &str, mode: u32| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("open.key", &MasterKey::generate().1, 0o644);
    write("bad.key", "this is not base64!\n", 0o600);
    write("bad.toml", "# keytop\nkey_prefix = \"sk\"\n[ui\ntheme = \"dark\"\n", 0o600);
    write("unknown.toml", "colour_scheme = \"pink\"\n", 0o600);
    write("type.toml", "[ui]\nrefresh_interval = 5\n", 0o600);
    write("alerts-line.toml", "[alerts]\ncommand = \"curl -d x\"\n", 0o600);
    write("alerts-empty.toml", "[alerts]\ncommand = [\"\"]\n", 0o600);
    write("alerts-10y.toml", "[alerts]\ntimeout = \"10y\"\n", 0o600);
    write("alerts-2m.toml", "[alerts]\ntimeout = \"2m\"\n", 0o600);
    sandbox
}

/// Builds `postgres://USERINFO@host…` from a URL by replacing its user part.
fn with_userinfo(url: &str, userinfo: &str) -> String {
    let start = url.find("://").unwrap() + 3;
    let rest = &url[start..];
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{}{userinfo}@{host}", &url[..start])
}

fn run_cli_row(sandbox: &Sandbox, row: &Row, places: &[(String, String)]) -> Result<(), String> {
    let mut args: Vec<String> = words(&row.run).iter().map(|w| expand(w, places)).collect();
    let mut command = sandbox.command(&[]);
    loop {
        match args.first() {
            Some(flag) if flag == "-u" => {
                command.env_remove(&args[1]);
                args.drain(..2);
            }
            Some(word)
                if word.split_once('=').is_some_and(|(name, _)| {
                    name.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !name.is_empty()
                }) =>
            {
                let (name, value) = word.split_once('=').unwrap();
                command.env(name, value);
                args.remove(0);
            }
            _ => break,
        }
    }
    command.args(&args);
    let started = std::time::Instant::now();
    let output = command.output().unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let all = format!("{stdout}{stderr}");
    let code = output.status.code();
    if code != row.exit {
        return Err(format!("exit {code:?}, expected {:?}; stdout {stdout:?} stderr {stderr:?}", row.exit));
    }
    if !all.contains(&row.says) {
        return Err(format!("output lacks {:?}: stdout {stdout:?} stderr {stderr:?}", row.says));
    }
    for forbidden in ["\u{1b}", "\u{7}", "hunter2", "panicked", "RUST_BACKTRACE"] {
        if all.contains(forbidden) {
            return Err(format!("output contains {forbidden:?}: {all:?}"));
        }
    }
    if elapsed > Duration::from_secs(15) {
        return Err(format!("took {elapsed:?}; refusals must be fast"));
    }
    Ok(())
}

fn run_tui_row(sandbox: &Sandbox, row: &Row, places: &[(String, String)]) -> Result<(), String> {
    let mut tui = Tui::start(sandbox);
    tui.wait_for_text("wallet");
    tui.wait_until_idle();
    for step in row.run.split("; ").map(str::trim) {
        let (verb, argument) = step.split_once(' ').unwrap_or((step, ""));
        let argument = expand(argument, places);
        match verb {
            "filter" => {
                tui.type_keys(&format!("/{argument}\r"));
                tui.wait_for("the list to narrow", |screen| {
                    screen.contains(&argument)
                        && !screen.contains(if argument == "wallet" { "plain" } else { "wallet" })
                });
                tui.wait_until_idle();
            }
            "key" => tui.type_keys(&argument),
            "type" => tui.type_keys(&argument),
            "paste" => tui.paste(&argument),
            "tab" => tui.type_keys("\t"),
            "clear" => tui.type_keys(&"\x7f".repeat(40)),
            "enter" => tui.type_keys("\r"),
            other => panic!("unknown TUI step {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(80));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !tui.contents().contains(&row.says) {
        if std::time::Instant::now() > deadline {
            return Err(format!("the screen lacks {:?}:\n{}", row.says, tui.contents()));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let screen = tui.contents();
    tui.quit();
    let raw = tui.raw();
    for payload in [&b"\x1b]52;c;aGk="[..], b"\x1b]0;", b"\x1b[2J"] {
        if contains_bytes(&raw, payload) {
            return Err(format!("the terminal received {payload:?}; screen:\n{screen}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_of_the_hostile_input_table() {
    let rows = rows();
    assert!(rows.len() >= 70, "the table has {} rows", rows.len());
    let sandbox = set_up();
    let mut places = vec![
        ("$DIR".to_string(), sandbox.dir.path().display().to_string()),
        ("$OTHER_MASTER_KEY".to_string(), MasterKey::generate().1),
    ];
    // PostgreSQL rows: a fresh database reached with a password the trust server ignores, and a
    // role that does not exist.
    let pg = common::postgres_db().await;
    if let (Some(db), Some(server)) = (&pg, common::postgres_server()) {
        places.push(("$PG_WRONG_PASSWORD".into(), with_userinfo(&db.url, "postgres:hunter2")));
        places.push(("$PG_NO_ROLE".into(), with_userinfo(&server, "keytop_no_such_role:hunter2")));
    }
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for row in &rows {
            if row.run.contains("$PG_") && !places.iter().any(|(name, _)| row.run.contains(name.as_str())) {
                eprintln!("row {} skipped: KEYTOP_TEST_POSTGRES is not set", row.number);
                continue;
            }
            let before = sandbox.fingerprint();
            let result = match row.channel.as_str() {
                "cli" | "env" | "config" => run_cli_row(&sandbox, row, &places),
                "tui" => run_tui_row(&sandbox, row, &places),
                other => panic!("row {}: unknown channel {other}", row.number),
            };
            let after = sandbox.fingerprint();
            let result = result.and_then(|()| match row.database.as_str() {
                "unchanged" if before != after => Err(format!("the database changed: {before:?} → {after:?}")),
                "written" if before == after => Err("the row should have written to the database".into()),
                "unchanged" | "written" => Ok(()),
                other => panic!("row {}: Database must be unchanged or written, not {other}", row.number),
            });
            if let Err(error) = result {
                failures.push(format!("row {} ({}): {error}", row.number, row.input));
            }
        }
        drop(pg);
        failures
    })
    .await
    .unwrap();
    assert!(
        failures.is_empty(),
        "{} rows disagree with docs/hostile-inputs.md:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_run_cell_language() {
    assert_eq!(words("a 'b c' '' d"), ["a", "b c", "", "d"]);
    assert_eq!(words("'%'' OR 1=1 --'"), ["%' OR 1=1 --"]);
    assert_eq!(expand("x\\e]0;t\\a{ab×2}\\u{202e}", &[]), "x\u{1b}]0;t\u{7}abab\u{202e}");
    assert_eq!(expand("$DIR/k", &[("$DIR".into(), "/tmp".into())]), "/tmp/k");
}
