//! Shared test harness: every contract test runs on SQLite, and on PostgreSQL when
//! `KEYTOP_TEST_POSTGRES` holds a server URL (each test then gets a fresh database of its own,
//! dropped afterwards).
#![allow(dead_code)]

use std::sync::Arc;

use keytop::store::{self, Store};
use sqlx::Connection;

/// A database for one test. Dropping it drops a PostgreSQL test database.
pub struct TestDb {
    pub label: &'static str,
    pub url: String,
    pub store: Arc<dyn Store>,
    _tempdir: Option<tempfile::TempDir>,
    _pg_drop: Option<DropOnExit>,
}

/// A PostgreSQL database a test created on the server at `admin_url`, dropped with this guard.
pub struct DropOnExit {
    pub admin_url: String,
    pub name: String,
}

impl Drop for DropOnExit {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async code: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// The PostgreSQL server URL of the test run, if any.
pub fn postgres_server() -> Option<String> {
    std::env::var("KEYTOP_TEST_POSTGRES").ok().filter(|s| !s.trim().is_empty())
}

/// A fresh SQLite database in a temporary file (a file, so several connections and processes
/// share it exactly as in production).
pub async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keytop.db").display());
    let store = store::open(&url).await.expect("open sqlite test database");
    TestDb { label: "sqlite", url, store, _tempdir: Some(dir), _pg_drop: None }
}

/// A fresh, empty PostgreSQL database on the test server, or `None` when none is configured.
pub async fn postgres_db() -> Option<TestDb> {
    let admin_url = postgres_server()?;
    let name = format!("keytop_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.expect("connect to KEYTOP_TEST_POSTGRES");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let url = store::with_database(&admin_url, &name);
    let store = store::open(&url).await.expect("open postgres test database");
    Some(TestDb { label: "postgres", url, store, _tempdir: None, _pg_drop: Some(DropOnExit { admin_url, name }) })
}

/// Every backend this run tests: SQLite always, PostgreSQL when configured.
pub async fn all_dbs() -> Vec<TestDb> {
    let mut dbs = vec![sqlite_db().await];
    dbs.extend(postgres_db().await);
    dbs
}

/// Runs a test body once per backend, naming the backend in any failure.
#[macro_export]
macro_rules! for_each_backend {
    (|$db:ident| $body:block) => {
        for $db in common::all_dbs().await {
            let label = $db.label;
            if let Err(error) = tokio::spawn(async move { $body }).await {
                panic!("[{label}] {error}");
            }
        }
    };
}
