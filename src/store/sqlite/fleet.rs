//! The fleet's questions on SQLite: the fleet's, the purged keys' and each owner's daily rollups
//! (migration 0011), the biggest spenders, pages of users and pages of the audit log.

use chrono::NaiveDate;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use super::list::escape_like;
use super::rows::{audit_from_row, daily_from_row, from_millis, get, millis, user_from_row};
use super::store_error;
use crate::domain::fleet::AUDIT_CLOCK_SKEW;
use crate::domain::{
    AuditEntry, AuditQuery, DailyUsage, Money, Spender, SpenderKind, UsageTotals, UserOverview, UserQuery,
};
use crate::store::StoreResult;

/// The columns `daily_from_row` reads, of any daily rollup.
macro_rules! daily_columns {
    () => {
        "SELECT day, requests, tokens, cost_micros, response_ms_sum, timed_requests"
    };
}

/// A daily rollup of migration 0011 that holds one row per day.
#[derive(Debug, Clone, Copy)]
pub(super) enum DayRollup {
    Fleet,
    Purged,
}

/// The rows of a one-row-per-day rollup for `first..=last`.
pub(super) async fn day_rollup(
    pool: &SqlitePool,
    rollup: DayRollup,
    first: NaiveDate,
    last: NaiveDate,
) -> StoreResult<Vec<DailyUsage>> {
    let sql = match rollup {
        DayRollup::Fleet => concat!(daily_columns!(), " FROM usage_daily_fleet WHERE day BETWEEN ? AND ? ORDER BY day"),
        DayRollup::Purged => {
            concat!(daily_columns!(), " FROM usage_daily_purged WHERE day BETWEEN ? AND ? ORDER BY day")
        }
    };
    let rows = sqlx::query(sql).bind(first).bind(last).fetch_all(pool).await.map_err(store_error)?;
    rows.iter().map(daily_from_row).collect()
}

/// A user's rollup rows for `first..=last`.
pub(super) async fn user_rollup(
    pool: &SqlitePool,
    user_id: Uuid,
    first: NaiveDate,
    last: NaiveDate,
) -> StoreResult<Vec<DailyUsage>> {
    super::usage::spender_rollup(
        pool,
        concat!(daily_columns!(), " FROM usage_daily_user WHERE user_id = ? AND day BETWEEN ? AND ? ORDER BY day"),
        user_id,
        first,
        last,
    )
    .await
}

/// The top spenders of a range, from a per-day rollup (`$table`, its spender column `$id`)
/// indexed by (day, cost rank), without summing every row of the range:
///  1. leaders: each day's spenders ranked at least as high as its `?3`-th (so its `?3`
///     biggest, ties included, and a few more), from the top of that day in the index;
///  2. bar: the `?3`-th biggest range total among the leaders. The true top `?3` spend at least
///     that much, and a spender whose range total reaches it spent at least bar / days (`?4`)
///     on one of the days, so that day ranks at least as high as bar / days;
///  3. candidates: the leaders and every spender with a day of that rank or higher, again read
///     from the top of each day in the index; their exact totals, biggest first.
///
/// Exact, ties included; fast when spending is concentrated (a few spenders account for most
/// of it, as on a gateway), and never worse than one pass over the range's rollup rows. The
/// index holds a rank rather than the cost so that a usage record moves its entry only when the
/// day's cost reaches the next rank.
/// `?1`..`?2` is the range, `?3` the limit, `?4` its number of days. `$names` joins the
/// totals `t` to the columns `name` and `owner`.
macro_rules! top_spenders_sql {
    ($table:literal, $id:literal, $names:literal) => {
        concat!(
            "WITH RECURSIVE days (day) AS (SELECT ?1 UNION ALL SELECT date(day, '+1 day') FROM days WHERE day < ?2), \
             leaders AS ( \
               SELECT DISTINCT r.",
            $id,
            " AS id FROM days JOIN ",
            $table,
            " r ON r.day = days.day \
               WHERE r.cost_rank >= MAX(",
            cost_rank!("1"),
            ", COALESCE((SELECT e.cost_rank FROM ",
            $table,
            " e \
                 WHERE e.day = days.day ORDER BY e.cost_rank DESC LIMIT 1 OFFSET ?3 - 1), 0))), \
             leader_totals AS ( \
               SELECT SUM(cost_micros) AS cost FROM ",
            $table,
            " \
               WHERE ",
            $id,
            " IN (SELECT id FROM leaders) AND day BETWEEN ?1 AND ?2 GROUP BY ",
            $id,
            "), \
             bar AS (SELECT COALESCE((SELECT cost FROM leader_totals ORDER BY cost DESC LIMIT 1 OFFSET ?3 - 1), 0) \
               AS cost), \
             candidates AS ( \
               SELECT id FROM leaders \
               UNION SELECT r.",
            $id,
            " FROM days JOIN ",
            $table,
            " r ON r.day = days.day \
               WHERE r.cost_rank >= ",
            cost_rank!("MAX(1, ((SELECT cost FROM bar) + ?4 - 1) / ?4)"),
            "), \
             t AS ( \
               SELECT ",
            $id,
            " AS id, SUM(requests) AS requests, SUM(tokens) AS tokens, SUM(cost_micros) AS cost \
               FROM ",
            $table,
            " WHERE ",
            $id,
            " IN (SELECT id FROM candidates) AND day BETWEEN ?1 AND ?2 \
               GROUP BY ",
            $id,
            ") \
             SELECT t.id, t.requests, t.tokens, t.cost, ",
            $names,
            " \
             WHERE t.cost > 0 ORDER BY t.cost DESC, t.id LIMIT ?3"
        )
    };
}

pub(super) async fn top_spenders(
    pool: &SqlitePool,
    kind: SpenderKind,
    first: NaiveDate,
    last: NaiveDate,
    limit: u32,
) -> StoreResult<Vec<Spender>> {
    if limit == 0 || first > last {
        return Ok(Vec::new());
    }
    let sql = match kind {
        SpenderKind::Key => top_spenders_sql!(
            "usage_daily",
            "api_key_id",
            "k.name, u.name AS owner FROM t JOIN api_keys k ON k.id = t.id JOIN users u ON u.id = k.user_id"
        ),
        SpenderKind::User => {
            top_spenders_sql!("usage_daily_user", "user_id", "u.name, NULL AS owner FROM t JOIN users u ON u.id = t.id")
        }
    };
    let days = (last - first).num_days() + 1;
    let rows = sqlx::query(sql)
        .bind(first)
        .bind(last)
        .bind(i64::from(limit))
        .bind(days)
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(Spender {
                id: get::<Hyphenated>(row, "id")?.into_uuid(),
                name: get(row, "name")?,
                owner: get(row, "owner")?,
                totals: UsageTotals {
                    requests: get(row, "requests")?,
                    tokens: get(row, "tokens")?,
                    cost: Money::from_micros(get(row, "cost")?),
                },
            })
        })
        .collect()
}

/// A page of users by name, each with counts of their keys, their spend and their last use, in
/// index reads only (migration 0017): the counts from `api_keys_user_status`, the spend and the
/// last use from the owner's rollup rows.
pub(super) async fn user_overviews(pool: &SqlitePool, query: &UserQuery) -> StoreResult<Vec<UserOverview>> {
    let contains = query.filter.as_deref().map(str::trim).filter(|text| !text.is_empty());
    let rows = sqlx::query(
        "WITH page AS ( \
           SELECT id, name, is_active, created_at FROM users \
           WHERE (?1 IS NULL OR name > ?1) AND (?2 IS NULL OR name LIKE ?2 ESCAPE '\\') AND (?7 IS NULL OR name = ?7) \
           ORDER BY name LIMIT ?3) \
         SELECT p.id, p.name, p.is_active, p.created_at, \
           (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = p.id) AS keys, \
           (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = p.id AND k.is_active = 1 \
              AND (k.expires_at IS NULL OR k.expires_at > ?4)) AS active_keys, \
           (SELECT MAX(d.last_used_at) FROM usage_daily_user d WHERE d.user_id = p.id) AS last_used_at, \
           (SELECT COALESCE(SUM(d.cost_micros), 0) FROM usage_daily_user d \
            WHERE d.user_id = p.id AND d.day BETWEEN ?5 AND ?6) AS spend \
         FROM page p ORDER BY p.name",
    )
    .bind(&query.after)
    .bind(contains.map(|text| format!("%{}%", escape_like(text))))
    .bind(i64::from(query.limit))
    .bind(millis(query.now))
    .bind(query.first_day)
    .bind(query.last_day)
    .bind(&query.name)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(UserOverview {
                user: user_from_row(row)?,
                keys: get(row, "keys")?,
                active_keys: get(row, "active_keys")?,
                spend: Money::from_micros(get(row, "spend")?),
                last_used_at: get::<Option<i64>>(row, "last_used_at")?.map(from_millis).transpose()?,
            })
        })
        .collect()
}

/// One page of the audit log, newest first. Each filter is served by an index of migration
/// 0011 (or `audit_log_key`), walked by id from the page's start; a start time becomes a lower
/// bound on the id (see [`AUDIT_CLOCK_SKEW`]), so a filter that matches few rows does not walk
/// the whole log.
pub(super) async fn audit_page(pool: &SqlitePool, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    if query.key_ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut builder = QueryBuilder::<Sqlite>::new(
        "SELECT id, at, actor, actor_key, action, api_key_id, details FROM audit_log WHERE 1 = 1",
    );
    if let Some(actor) = &query.actor {
        builder.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = &query.action {
        builder.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(ids) = &query.key_ids {
        builder.push(" AND api_key_id IN (");
        let mut separated = builder.separated(", ");
        for id in ids {
            separated.push_bind(id.hyphenated());
        }
        builder.push(")");
    }
    if let Some(since) = query.since {
        builder.push(" AND at >= ").push_bind(millis(since));
        builder
            .push(" AND id >= COALESCE((SELECT id FROM audit_log WHERE at < ")
            .push_bind(millis(since - AUDIT_CLOCK_SKEW))
            .push(" ORDER BY at DESC LIMIT 1), 0)");
    }
    if let Some(before) = query.before_id {
        builder.push(" AND id < ").push_bind(before);
    }
    builder.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
    let rows = builder.build().fetch_all(pool).await.map_err(store_error)?;
    rows.iter().map(audit_from_row).collect()
}
