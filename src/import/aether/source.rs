//! Reading an Aether database (aether.md §1): PostgreSQL in production, SQLite in Aether's
//! development setup. Every column comes back in one shape on both: ids and times as text (so a
//! malformed value is reported, not fatal), JSON columns as their text, floats as `f64`.

use std::str::FromStr;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, FromRow};

use crate::store::{Backend, redact_url};

/// How long to wait for Aether's server before saying it does not answer.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Usage rows read per query.
pub const USAGE_PAGE: i64 = 5_000;

#[derive(Debug, Clone, FromRow)]
pub struct AetherUser {
    pub id: String,
    pub username: String,
    pub is_active: bool,
    pub is_deleted: bool,
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct AetherKey {
    pub id: String,
    pub user_id: String,
    pub key_hash: String,
    pub key_encrypted: Option<String>,
    pub name: Option<String>,
    pub is_standalone: bool,
    pub current_balance_usd: Option<f64>,
    pub balance_used_usd: Option<f64>,
    pub allowed_providers: Option<String>,
    pub allowed_api_formats: Option<String>,
    pub allowed_models: Option<String>,
    pub allowed_endpoints: Option<String>,
    pub rate_limit: Option<i64>,
    pub concurrent_limit: Option<i64>,
    pub is_active: bool,
    pub auto_delete_on_expiry: bool,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct AetherUsage {
    pub id: String,
    pub request_id: String,
    pub api_key_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub api_format: Option<String>,
    pub total_tokens: Option<i64>,
    pub total_cost_usd: Option<f64>,
    pub response_time_ms: Option<i64>,
    pub created_at: Option<String>,
}

/// An open Aether database, read only.
pub enum AetherSource {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs one query on whichever backend the source is, decoding rows into `$row`.
macro_rules! fetch_all {
    ($source:expr, $row:ty, $sql:expr $(, $bind:expr)*) => {
        match $source {
            AetherSource::Sqlite(pool) => {
                sqlx::query_as::<_, $row>(AssertSqlSafe($sql))$(.bind($bind))*.fetch_all(pool).await
            }
            AetherSource::Postgres(pool) => {
                sqlx::query_as::<_, $row>(AssertSqlSafe($sql))$(.bind($bind))*.fetch_all(pool).await
            }
        }
    };
}

impl AetherSource {
    /// Opens the database at `url`: `postgres://…` or `sqlite://PATH`; SQLAlchemy's spellings
    /// (`postgresql+psycopg2://…`, `sqlite:///PATH`) are taken as they are written in Aether's
    /// `DATABASE_URL`. SQLite is opened read only.
    pub async fn open(url: &str) -> Result<AetherSource, String> {
        let url = without_driver(url);
        let failed = |error: sqlx::Error| format!("cannot open the Aether database at {}: {error}", redact_url(&url));
        match Backend::of_url(&url) {
            Some(Backend::Sqlite) => {
                let options = SqliteConnectOptions::from_str(&url).map_err(failed)?.read_only(true);
                Ok(AetherSource::Sqlite(
                    SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(failed)?,
                ))
            }
            Some(Backend::Postgres) => {
                let pool = PgPoolOptions::new().max_connections(1).acquire_timeout(CONNECT_TIMEOUT);
                Ok(AetherSource::Postgres(pool.connect(&url).await.map_err(failed)?))
            }
            None => Err(format!("{}: use postgres://USER@HOST/DB or sqlite://PATH", redact_url(&url))),
        }
    }

    fn backend(&self) -> Backend {
        match self {
            AetherSource::Sqlite(_) => Backend::Sqlite,
            AetherSource::Postgres(_) => Backend::Postgres,
        }
    }

    /// A column as text: times in UTC as `YYYY-MM-DD HH:MM:SS.ffffff` on PostgreSQL (SQLite
    /// holds them as text already), JSON as its text.
    fn text(&self, column: &str, is_time: bool) -> String {
        match (self.backend(), is_time) {
            (Backend::Postgres, true) => {
                format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS {column}")
            }
            (Backend::Postgres, false) => format!("{column}::text AS {column}"),
            (Backend::Sqlite, _) => format!("CAST({column} AS TEXT) AS {column}"),
        }
    }

    /// A whole-number column as a 64-bit integer, a float column as a double.
    fn number(&self, column: &str, float: bool) -> String {
        match (self.backend(), float) {
            (Backend::Postgres, false) => format!("{column}::bigint AS {column}"),
            (Backend::Postgres, true) => format!("{column}::double precision AS {column}"),
            (Backend::Sqlite, false) => format!("CAST({column} AS INTEGER) AS {column}"),
            (Backend::Sqlite, true) => format!("CAST({column} AS REAL) AS {column}"),
        }
    }

    pub async fn users(&self) -> Result<Vec<AetherUser>, sqlx::Error> {
        let sql = format!(
            "SELECT {}, username, is_active, is_deleted, {} FROM users ORDER BY id",
            self.text("id", false),
            self.text("created_at", true)
        );
        fetch_all!(self, AetherUser, sql)
    }

    pub async fn keys(&self) -> Result<Vec<AetherKey>, sqlx::Error> {
        let sql = format!(
            "SELECT {}, {}, key_hash, key_encrypted, name, is_standalone, {}, {}, {}, {}, {}, {}, {}, {}, \
             is_active, auto_delete_on_expiry, {}, {}, {}, {} FROM api_keys ORDER BY id",
            self.text("id", false),
            self.text("user_id", false),
            self.number("current_balance_usd", true),
            self.number("balance_used_usd", true),
            self.text("allowed_providers", false),
            self.text("allowed_api_formats", false),
            self.text("allowed_models", false),
            self.text("allowed_endpoints", false),
            self.number("rate_limit", false),
            self.number("concurrent_limit", false),
            self.text("expires_at", true),
            self.text("last_used_at", true),
            self.text("created_at", true),
            self.text("updated_at", true),
        );
        fetch_all!(self, AetherKey, sql)
    }

    pub async fn usage_count(&self) -> Result<i64, sqlx::Error> {
        match self {
            AetherSource::Sqlite(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM usage").fetch_one(pool).await,
            AetherSource::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM usage").fetch_one(pool).await,
        }
    }

    /// The next [`USAGE_PAGE`] usage rows after the row `after` (by id; `""` for the first page).
    pub async fn usage_page(&self, after: &str) -> Result<Vec<AetherUsage>, sqlx::Error> {
        let (after_param, limit_param) = match self.backend() {
            Backend::Sqlite => ("?", "?"),
            Backend::Postgres => ("$1", "$2"),
        };
        let sql = format!(
            "SELECT {}, request_id, {}, provider, model, api_format, {}, {}, {}, {} FROM usage \
             WHERE {} > {after_param} ORDER BY id LIMIT {limit_param}",
            self.text("id", false),
            self.text("api_key_id", false),
            self.number("total_tokens", false),
            self.number("total_cost_usd", true),
            self.number("response_time_ms", false),
            self.text("created_at", true),
            match self.backend() {
                Backend::Sqlite => "id",
                Backend::Postgres => "id::text",
            },
        );
        fetch_all!(self, AetherUsage, sql, after, USAGE_PAGE)
    }
}

/// `DATABASE_URL` as SQLAlchemy writes it, in the form sqlx reads: no `+driver` after the scheme.
fn without_driver(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.split('+').next().unwrap_or(scheme)),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_urls_lose_their_driver() {
        assert_eq!(without_driver("postgresql+asyncpg://u@h/db"), "postgresql://u@h/db");
        assert_eq!(without_driver("sqlite+aiosqlite:///tmp/aether.db"), "sqlite:///tmp/aether.db");
        assert_eq!(without_driver("postgres://u@h/db"), "postgres://u@h/db");
    }
}
