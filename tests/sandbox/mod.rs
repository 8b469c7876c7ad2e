//! A sandbox for running the built `keytop` binary as an admin would: its own database (a SQLite
//! file, or a fresh PostgreSQL database from the harness), master key and XDG folders, nothing
//! from the user running the tests. Shared by the reliability and security suites; raw SQL
//! helpers read the database behind keytop's back, as the gateway or another tool would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::str::FromStr;

use keytop::crypto::MasterKey;
use serde_json::Value;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;

use crate::common;

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub db_url: String,
    pub master_key: String,
    pub label: &'static str,
    _db: Option<common::TestDb>,
}

impl Sandbox {
    pub fn sqlite() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("keytop.db").display());
        Sandbox { db_url, master_key: MasterKey::generate().1, dir, label: "sqlite", _db: None }
    }

    /// A sandbox on a fresh PostgreSQL database, or `None` when `KEYTOP_TEST_POSTGRES` is unset.
    pub async fn postgres() -> Option<Sandbox> {
        let db = common::postgres_db().await?;
        let mut sandbox = Sandbox::sqlite();
        sandbox.db_url = db.url.clone();
        sandbox.label = "postgres";
        sandbox._db = Some(db);
        Some(sandbox)
    }

    /// Both backends this run tests: SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<Sandbox> {
        let mut all = vec![Sandbox::sqlite()];
        all.extend(Sandbox::postgres().await);
        all
    }

    pub fn is_postgres(&self) -> bool {
        self.db_url.starts_with("postgres")
    }

    pub fn binary() -> &'static str {
        env!("CARGO_BIN_EXE_keytop")
    }

    /// The environment of every keytop process of this sandbox.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        vec![
            ("KEYTOP_DB".into(), self.db_url.clone()),
            ("KEYTOP_MASTER_KEY".into(), self.master_key.clone()),
            ("KEYTOP_ACTOR".into(), "tester".into()),
            ("XDG_CONFIG_HOME".into(), path("config")),
            ("XDG_DATA_HOME".into(), path("data")),
            ("XDG_STATE_HOME".into(), path("state")),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), path("home")),
        ]
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(Self::binary());
        command.args(args).env_clear().envs(self.env()).stdin(Stdio::null());
        command
    }

    /// `sh -c script` with keytop's environment and `$KEYTOP` naming the binary.
    pub fn shell(&self, script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script).env_clear().envs(self.env()).env("KEYTOP", Self::binary()).stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run keytop")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "[{}] keytop {args:?} failed ({:?}): {}",
            self.label,
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command that must fail with `code`; returns its stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "[{}] keytop {args:?}: stdout {} stderr {}",
            self.label,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        serde_json::from_str(&self.ok(&with_json)).expect("valid JSON")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("state/keytop/keytop.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A user `alice` with a prepaid key `wallet` holding `balance` dollars; returns its plaintext.
    pub fn with_prepaid_key(&self, balance: &str) -> String {
        self.ok(&["users", "add", "alice"]);
        self.ok(&["keys", "create", "--user", "alice", "--name", "wallet", "--standalone", "--balance", balance])
            .trim()
            .to_string()
    }

    /// A prepaid key `wallet` of an existing user, holding `balance` dollars; returns its plaintext.
    pub fn with_prepaid_key_for(&self, user: &str, balance: &str) -> String {
        self.ok(&["keys", "create", "--user", user, "--name", "wallet", "--standalone", "--balance", balance])
            .trim()
            .to_string()
    }

    /// Runs one SQL statement or query and returns the first column of every row as text
    /// (NULL as "NULL"). Works on both backends; blocks (tests call it from plain threads).
    pub fn sql(&self, sql: &str) -> Vec<String> {
        let url = self.db_url.clone();
        let sql = sql.to_string();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(raw_sql(&url, &sql))
        })
        .join()
        .unwrap()
    }

    /// Starts the database again, empty, at schema `version`: the migrations of that time and
    /// nothing newer, as an older keytop would have left it.
    pub fn recreate_at_schema(&self, version: i64) {
        if self.is_postgres() {
            self.sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        } else {
            let path = self.db_url.trim_start_matches("sqlite://");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
        let url = self.db_url.clone();
        let flavour = if self.is_postgres() { "postgres" } else { "sqlite" };
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let folder = format!("assets/migrations/{flavour}");
                let migrator = Migrator::new(Path::new(&folder)).await.unwrap();
                if flavour == "postgres" {
                    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                    migrator.run_to(version, &mut conn).await.unwrap();
                } else {
                    let options = SqliteConnectOptions::from_str(&url).unwrap().create_if_missing(true);
                    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
                    migrator.run_to(version, &mut conn).await.unwrap();
                    // As keytop creates its databases: a database others can read is reported.
                    make_private(url.trim_start_matches("sqlite://"));
                }
            });
        })
        .join()
        .unwrap();
    }

    /// A query returning one integer.
    pub fn sql_i64(&self, sql: &str) -> i64 {
        let rows = self.sql(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0].parse().unwrap_or_else(|_| panic!("{sql}: not an integer: {:?}", rows[0]))
    }

    /// A fingerprint of every table: row counts and the money columns. Equal before and after
    /// means nothing was written.
    pub fn fingerprint(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (table, columns) in [
            ("users", "COUNT(*)"),
            (
                "api_keys",
                "COUNT(*) || ':' || COALESCE(SUM(credited_micros), -1) || ':' || COALESCE(SUM(used_micros), -1) \
                 || ':' || COALESCE(MAX(updated_at), -1) || ':' || COALESCE(SUM(is_active::int), -1)",
            ),
            ("balance_ledger", "COUNT(*) || ':' || COALESCE(SUM(delta_micros), 0)"),
            ("usage", "COUNT(*) || ':' || COALESCE(SUM(cost_micros), 0)"),
            ("usage_daily", "COUNT(*) || ':' || COALESCE(SUM(requests), 0)"),
            ("audit_log", "COUNT(*)"),
        ] {
            let columns = if self.is_postgres() {
                columns.replace("COUNT(*) ||", "COUNT(*)::text ||")
            } else {
                columns.replace("::int", "")
            };
            // `updated_at` is a timestamp on PostgreSQL: compare its text.
            let columns = if self.is_postgres() {
                columns.replace("COALESCE(MAX(updated_at), -1)", "COALESCE(MAX(updated_at)::text, '-')")
            } else {
                columns
            };
            let rows = self.sql(&format!("SELECT {columns} FROM {table}"));
            out.push(format!("{table}={}", rows.join(",")));
        }
        out
    }
}

async fn raw_sql(url: &str, sql: &str) -> Vec<String> {
    use sqlx::Row;
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect for raw SQL");
        let rows = sqlx::raw_sql(sql).fetch_all(&mut conn).await.unwrap_or_else(|e| panic!("raw SQL failed: {e}"));
        rows.iter()
            .map(|row| {
                if row.columns().is_empty() {
                    return String::new();
                }
                let text: Option<String> = row
                    .try_get::<Option<String>, _>(0)
                    .or_else(|_| row.try_get::<Option<i64>, _>(0).map(|v| v.map(|v| v.to_string())))
                    .or_else(|_| row.try_get::<Option<i32>, _>(0).map(|v| v.map(|v| v.to_string())))
                    .or_else(|_| row.try_get::<Option<bool>, _>(0).map(|v| v.map(|v| v.to_string())))
                    .unwrap_or_else(|e| panic!("cannot read column: {e}"));
                text.unwrap_or_else(|| "NULL".into())
            })
            .collect()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect for raw SQL");
        let rows = sqlx::raw_sql(sql).fetch_all(&mut conn).await.unwrap_or_else(|e| panic!("raw SQL failed: {e}"));
        rows.iter()
            .map(|row| {
                if row.columns().is_empty() {
                    return String::new();
                }
                let text: Option<String> = row
                    .try_get::<Option<i64>, _>(0)
                    .map(|v| v.map(|v| v.to_string()))
                    .or_else(|_| row.try_get::<Option<String>, _>(0))
                    .unwrap_or_else(|e| panic!("cannot read column: {e}"));
                text.unwrap_or_else(|| "NULL".into())
            })
            .collect()
    }
}
pub mod pty;

/// Gives a database file the mode keytop creates its own with (0600).
fn make_private(path: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = path;
}
