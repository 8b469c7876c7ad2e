//! The fleet's questions on PostgreSQL: the fleet's, the purged keys' and each owner's daily
//! rollups (migration 0011), the biggest spenders, pages of users and pages of the audit log.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::list::escape_like;
use super::rows::{AuditRow, DailyRow, UserRow};
use crate::domain::fleet::AUDIT_CLOCK_SKEW;
use crate::domain::{
    AuditEntry, AuditQuery, DailyUsage, Money, Spender, SpenderKind, UsageTotals, UserOverview, UserQuery,
};

/// The sums of a daily rollup's columns, as `DailyRow` reads them.
macro_rules! daily_sums {
    () => {
        "SELECT day, SUM(requests)::bigint AS requests, SUM(tokens)::bigint AS tokens, \
         SUM(cost_micros)::bigint AS cost_micros, SUM(response_ms_sum)::bigint AS response_ms_sum, \
         SUM(timed_requests)::bigint AS timed_requests"
    };
}

/// The fleet's rollup rows for `first..=last`, its shards summed.
pub(super) async fn fleet_rollup(pool: &PgPool, first: NaiveDate, last: NaiveDate) -> sqlx::Result<Vec<DailyUsage>> {
    let rows: Vec<DailyRow> = sqlx::query_as(concat!(
        daily_sums!(),
        " FROM usage_daily_fleet WHERE day BETWEEN $1 AND $2 GROUP BY day ORDER BY day"
    ))
    .bind(first)
    .bind(last)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(DailyUsage::from).collect())
}

/// The purged keys' rollup rows for `first..=last`.
pub(super) async fn purged_rollup(pool: &PgPool, first: NaiveDate, last: NaiveDate) -> sqlx::Result<Vec<DailyUsage>> {
    let rows: Vec<DailyRow> = sqlx::query_as(
        "SELECT day, requests, tokens, cost_micros, response_ms_sum, timed_requests FROM usage_daily_purged \
         WHERE day BETWEEN $1 AND $2 ORDER BY day",
    )
    .bind(first)
    .bind(last)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(DailyUsage::from).collect())
}

/// A user's rollup rows for `first..=last`.
pub(super) async fn user_rollup(
    pool: &PgPool,
    user_id: Uuid,
    first: NaiveDate,
    last: NaiveDate,
) -> sqlx::Result<Vec<DailyUsage>> {
    super::usage::spender_rollup(
        pool,
        "SELECT day, requests, tokens, cost_micros, response_ms_sum, timed_requests FROM usage_daily_user \
         WHERE user_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
        user_id,
        first,
        last,
    )
    .await
}

/// The top spenders of a range, from a per-day rollup (`$table`, its spender column `$id`)
/// indexed by (day, cost rank) (migration 0020), without summing every row of the range, in two
/// statements:
///  1. [`top_spenders_bar_sql`]: the leaders, each day's `$3` highest ranked from the top of that
///     day in the index, and the bar: the `$3`-th biggest range total among them, divided by the
///     range's days (`$4`). The true top `$3` spend at least that total (the leaders are some of
///     the spenders), so each of them spent at least the bar on one of the days, and that day
///     ranks at least as high as the bar;
///  2. [`top_spenders_sql`]: the candidates, the leaders (`$5`) and every spender with a day
///     ranked at or above the bar's rank (`$6`), again read from the top of each day in the index;
///     their exact totals, biggest first, then their names.
///
/// The index holds a rank rather than the cost so that a usage record's update of the day
/// changes no indexed value (a HOT update) unless the day's cost reaches the next rank.
/// Exact, ties included; fast when spending is concentrated (a few spenders account for most
/// of it, as on a gateway). Two statements so that the second is planned knowing the bar: with
/// the bar computed inside one statement, the planner guessed a third of each day's rows for
/// candidates and chose to sum the whole range (and to compile the plan with JIT). Both are
/// unnamed statements, planned for their values, in one repeatable-read transaction so that they
/// see the same rollups, without JIT. Each day's part of the index and each spender's totals are read by
/// lateral subqueries (`OFFSET 0` keeps the planner from flattening the first into a scan of
/// the whole range), never by a scan of the range.
macro_rules! top_spenders_bar_sql {
    ($table:literal, $id:literal) => {
        concat!(
            "WITH leaders AS ( \
               SELECT DISTINCT l.id FROM generate_series(0, $4::int - 1) AS n (i) CROSS JOIN LATERAL ( \
                 SELECT r.",
            $id,
            " AS id FROM ",
            $table,
            " r WHERE r.day = $1::date + n.i AND r.cost_rank > 0 \
                 ORDER BY r.cost_rank DESC LIMIT $3) l), \
             leader_totals AS ( \
               SELECT s.cost FROM leaders CROSS JOIN LATERAL ( \
                 SELECT SUM(cost_micros)::bigint AS cost FROM ",
            $table,
            " WHERE ",
            $id,
            " = leaders.id AND day BETWEEN $1 AND $2) s) \
             SELECT ARRAY(SELECT id FROM leaders) AS leaders, \
               GREATEST(1, (COALESCE((SELECT cost FROM leader_totals ORDER BY cost DESC LIMIT 1 OFFSET $3 - 1), 0) \
                 + $4 - 1) / $4) AS day_cost"
        )
    };
}

/// The second statement of [`top_spenders_bar_sql`]. `$names` joins the top totals `t` to the
/// columns `name` and `owner`.
macro_rules! top_spenders_sql {
    ($table:literal, $id:literal, $names:literal) => {
        concat!(
            "WITH candidates AS ( \
               SELECT UNNEST($5::uuid[]) AS id \
               UNION SELECT c.id FROM generate_series(0, $4::int - 1) AS n (i) CROSS JOIN LATERAL ( \
                 SELECT r.",
            $id,
            " AS id FROM ",
            $table,
            " r WHERE r.day = $1::date + n.i AND r.cost_rank >= keytop_cost_rank($6) OFFSET 0) c), \
             totals AS ( \
               SELECT c.id, s.requests, s.tokens, s.cost FROM candidates c CROSS JOIN LATERAL ( \
                 SELECT SUM(requests)::bigint AS requests, SUM(tokens)::bigint AS tokens, \
                   SUM(cost_micros)::bigint AS cost FROM ",
            $table,
            " WHERE ",
            $id,
            " = c.id AND day BETWEEN $1 AND $2) s), \
             t AS (SELECT * FROM totals WHERE cost > 0 ORDER BY cost DESC, id LIMIT $3) \
             SELECT t.id, t.requests, t.tokens, t.cost, ",
            $names,
            " \
             ORDER BY t.cost DESC, t.id"
        )
    };
}

#[derive(sqlx::FromRow)]
struct SpenderRow {
    id: Uuid,
    name: String,
    owner: Option<String>,
    requests: i64,
    tokens: i64,
    cost: i64,
}

pub(super) async fn top_spenders(
    pool: &PgPool,
    kind: SpenderKind,
    first: NaiveDate,
    last: NaiveDate,
    limit: u32,
) -> sqlx::Result<Vec<Spender>> {
    if limit == 0 || first > last {
        return Ok(Vec::new());
    }
    let (bar_sql, top_sql) = match kind {
        SpenderKind::Key => (
            top_spenders_bar_sql!("usage_daily", "api_key_id"),
            top_spenders_sql!(
                "usage_daily",
                "api_key_id",
                "k.name, u.name AS owner FROM t JOIN api_keys k ON k.id = t.id JOIN users u ON u.id = k.user_id"
            ),
        ),
        SpenderKind::User => (
            top_spenders_bar_sql!("usage_daily_user", "user_id"),
            top_spenders_sql!(
                "usage_daily_user",
                "user_id",
                "u.name, NULL::text AS owner FROM t JOIN users u ON u.id = t.id"
            ),
        ),
    };
    let days = (last - first).num_days() + 1;
    let mut tx = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    // A few hundred index reads: compiling the plan (JIT, which the planner's guess of the
    // candidates' rows can trigger) took ten to a hundred times longer than running it.
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    let (leaders, day_cost): (Vec<Uuid>, i64) = sqlx::query_as(bar_sql)
        .persistent(false)
        .bind(first)
        .bind(last)
        .bind(i64::from(limit))
        .bind(days)
        .fetch_one(&mut *tx)
        .await?;
    let rows: Vec<SpenderRow> = sqlx::query_as(top_sql)
        .persistent(false)
        .bind(first)
        .bind(last)
        .bind(i64::from(limit))
        .bind(days)
        .bind(leaders)
        .bind(day_cost)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|row| Spender {
            id: row.id,
            name: row.name,
            owner: row.owner,
            totals: UsageTotals { requests: row.requests, tokens: row.tokens, cost: Money::from_micros(row.cost) },
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct OverviewRow {
    #[sqlx(flatten)]
    user: UserRow,
    keys: i64,
    active_keys: i64,
    spend: i64,
    last_used_at: Option<DateTime<Utc>>,
}

/// A page of users by name, each with counts of their keys, their spend and their last use: the
/// counts from an index-only scan of `api_keys_user_status` (migration 0017), the spend from the
/// owner's rollup rows of the range, the last use from their latest day's row (a day's row keeps
/// that day's latest use, 0017).
pub(super) async fn user_overviews(pool: &PgPool, query: &UserQuery) -> sqlx::Result<Vec<UserOverview>> {
    let contains = query.filter.as_deref().map(str::trim).filter(|text| !text.is_empty());
    let rows: Vec<OverviewRow> = sqlx::query_as(
        r"WITH page AS (
            SELECT id, name, is_active, created_at FROM users
            WHERE ($1::text IS NULL OR name > $1) AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\')
              AND ($7::text IS NULL OR name = $7)
            ORDER BY name LIMIT $3)
          SELECT p.id, p.name, p.is_active, p.created_at, k.keys, k.active_keys, l.last_used_at, s.spend
          FROM page p
          CROSS JOIN LATERAL (
            SELECT COUNT(*) AS keys,
                   COUNT(*) FILTER (WHERE is_active AND COALESCE(expires_at, 'infinity') > $4) AS active_keys
            FROM api_keys WHERE user_id = p.id) k
          CROSS JOIN LATERAL (
            SELECT COALESCE(SUM(cost_micros), 0)::bigint AS spend
            FROM usage_daily_user WHERE user_id = p.id AND day BETWEEN $5 AND $6) s
          LEFT JOIN LATERAL (
            SELECT last_used_at FROM usage_daily_user
            WHERE user_id = p.id AND last_used_at IS NOT NULL ORDER BY day DESC LIMIT 1) l ON TRUE
          ORDER BY p.name",
    )
    .bind(&query.after)
    .bind(contains.map(|text| format!("%{}%", escape_like(text))))
    .bind(i64::from(query.limit))
    .bind(query.now)
    .bind(query.first_day)
    .bind(query.last_day)
    .bind(&query.name)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| UserOverview {
            user: row.user.into(),
            keys: row.keys,
            active_keys: row.active_keys,
            spend: Money::from_micros(row.spend),
            last_used_at: row.last_used_at,
        })
        .collect())
}

/// One page of the audit log, newest first. Each filter is served by an index of migration
/// 0011 (or `audit_log_key`), walked by id from the page's start; a start time becomes a lower
/// bound on the id (see [`AUDIT_CLOCK_SKEW`]), so a filter that matches few rows does not walk
/// the whole log.
pub(super) async fn audit_page(pool: &PgPool, query: &AuditQuery) -> sqlx::Result<Vec<AuditEntry>> {
    if query.key_ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut builder = QueryBuilder::<Postgres>::new(
        "SELECT id, at, actor, actor_key, action, api_key_id, details::text AS details FROM audit_log WHERE TRUE",
    );
    if let Some(actor) = &query.actor {
        builder.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = &query.action {
        builder.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(ids) = &query.key_ids {
        builder.push(" AND api_key_id = ANY(").push_bind(ids.clone()).push(")");
    }
    if let Some(since) = query.since {
        builder.push(" AND at >= ").push_bind(since);
        builder
            .push(" AND id >= COALESCE((SELECT id FROM audit_log WHERE at < ")
            .push_bind(since - AUDIT_CLOCK_SKEW)
            .push(" ORDER BY at DESC LIMIT 1), 0)");
    }
    if let Some(before) = query.before_id {
        builder.push(" AND id < ").push_bind(before);
    }
    builder.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
    let rows: Vec<AuditRow> = builder.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}
