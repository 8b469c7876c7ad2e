//! Key lists: filters, sort orders and keyset paging, each served by an index.

use chrono::Utc;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::rows::KeyRow;
use crate::domain::{ActiveFilter, ApiKey, KeyQuery, KeyScope, LowBalanceLine, PageFrom, SortKey, recent_spend_days};

/// Appends the value a list sorts by, as SQL over the alias `k`. NULL times go through
/// sentinels, as in the SQLite store, so every order is total and keyset paging can compare row
/// values: a key that never expires sorts as expiring at `infinity`, a key never used as used at
/// `-infinity`, a key without a limited prepaid balance after every balance. The expression
/// indexes of migration `0002` are built on these very expressions. The balance and the recent
/// spend are computed per key: an index on them would change with every charged request, and
/// the charge would no longer be a HOT update.
fn push_sort_value(sql: &mut QueryBuilder<Postgres>, query: &KeyQuery) {
    match query.sort {
        SortKey::Created => sql.push("k.created_at"),
        SortKey::Name => sql.push("k.name"),
        SortKey::Expires => sql.push("COALESCE(k.expires_at, 'infinity'::timestamptz)"),
        SortKey::LastUsed => sql.push("COALESCE(k.last_used_at, '-infinity'::timestamptz)"),
        SortKey::Remaining => sql.push(
            "CASE WHEN k.is_standalone AND k.credited_micros IS NOT NULL \
             THEN k.credited_micros - k.used_micros ELSE 9223372036854775807 END",
        ),
        SortKey::RecentSpend => {
            let (first, last) = recent_spend_days(query.now.unwrap_or_else(Utc::now));
            sql.push(
                "(SELECT COALESCE(SUM(d.cost_micros), 0)::bigint FROM usage_daily d WHERE d.api_key_id = k.id \
                      AND d.day BETWEEN ",
            )
            .push_bind(first)
            .push(" AND ")
            .push_bind(last)
            .push(")")
        }
    };
}

/// One page of keys in the query's order.
///
/// Only fixed SQL fragments chosen by `match` are spliced into the text; every value from the
/// query (owner, filter text, cursor, time, limit) is a bound parameter.
pub(super) async fn list_keys(pool: &PgPool, query: &KeyQuery) -> Result<Vec<ApiKey>, sqlx::Error> {
    let before = matches!(query.from, PageFrom::Before(_));
    let (mut sql, filtered) = list_query(pool, query, "").await?;
    // A filtered list is planned for its own values every time (an unnamed statement): the plan
    // that suits a rare substring (OR the index bitmaps, then sort) is not the one for a common
    // one (walk the sort order), and a generic plan cannot tell them apart.
    let mut keys: Vec<ApiKey> = sql
        .build_query_as::<KeyRow>()
        .persistent(!filtered)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(ApiKey::from)
        .collect();
    if before {
        keys.reverse();
    }
    Ok(keys)
}

/// The keys a list matches, counted over at most `cap` of them: the list query itself from the
/// start, with `cap` as its limit, so it costs what reading `cap` keys of the list costs.
pub(super) async fn count_matching(pool: &PgPool, query: &KeyQuery, cap: u32) -> Result<u64, sqlx::Error> {
    // Every order counts the same keys; one computed per key would be computed for nothing.
    let sort = if query.sort.is_computed() { SortKey::Created } else { query.sort };
    let capped = KeyQuery { from: PageFrom::Start, limit: cap, sort, ..query.clone() };
    let (mut sql, filtered) = list_query(pool, &capped, "SELECT COUNT(*) FROM (").await?;
    sql.push(") AS matching");
    let count: i64 = sql.build_query_scalar().persistent(!filtered).fetch_one(pool).await?;
    Ok(count.max(0) as u64)
}

/// The list query, after `prefix`, and whether it has a filter (see `list_keys`).
async fn list_query(
    pool: &PgPool,
    query: &KeyQuery,
    prefix: &str,
) -> Result<(QueryBuilder<Postgres>, bool), sqlx::Error> {
    let before = matches!(query.from, PageFrom::Before(_));
    // Rows before a cursor are collected by scanning against the list order, then reversed.
    let scan_descending = query.descending != before;

    let mut sql = QueryBuilder::<Postgres>::new(format!("{prefix}{}", concat!(select_keys!(), " WHERE TRUE")));
    let mut filtered = false;
    match query.scope {
        KeyScope::All => {}
        KeyScope::UserKeys => {
            sql.push(" AND NOT k.is_standalone");
        }
        KeyScope::Standalone => {
            sql.push(" AND k.is_standalone");
        }
    }
    if let Some(owner) = query.owner {
        sql.push(" AND k.user_id = ").push_bind(owner);
    }
    let negation = match query.active {
        ActiveFilter::Any => None,
        ActiveFilter::Active => Some(""),
        ActiveFilter::Inactive => Some("NOT "),
    };
    let now = query.now.unwrap_or_else(Utc::now);
    if let Some(negation) = negation {
        // Usable now: enabled, not expired, and owned by an enabled user (verify refuses the
        // keys of a disabled owner).
        sql.push(format_args!(
            " AND {negation}(k.is_active AND u.is_active AND (k.expires_at IS NULL OR k.expires_at > "
        ))
        .push_bind(now)
        .push("))");
    }
    if let Some(until) = query.expiring_until(now) {
        // On the expression of the `0002` index, so the window is a range of it.
        sql.push(" AND k.is_active AND COALESCE(k.expires_at, 'infinity'::timestamptz) > ")
            .push_bind(now)
            .push(" AND COALESCE(k.expires_at, 'infinity'::timestamptz) <= ")
            .push_bind(until);
    }
    if let Some(line) = query.low_balance {
        // Under a line above zero: `credited − used < line` is `max(0, credited − used) < line`.
        sql.push(" AND k.is_standalone AND k.credited_micros IS NOT NULL AND ");
        push_low_balance_line(&mut sql, line);
        sql.push(" > 0 AND k.credited_micros - k.used_micros < ");
        push_low_balance_line(&mut sql, line);
    }
    if let Some(text) = query.filter.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
        // Each condition on `k` alone and each one an index answers, so the planner ORs index
        // bitmaps (trigram indexes on name and hint, `api_keys_user`, the primary key) instead
        // of walking the whole sort order for a rare match. The owners are looked up first (a
        // small table): a subquery there was estimated as matching half the keys, which made
        // the planner scan. The id prefix is a uuid range on the primary key, as
        // `keys_by_id_prefix` reads it (a text no id can start with adds no condition).
        let anywhere = format!("%{}%", escape_like(text));
        let owners: Vec<Uuid> = sqlx::query_scalar(r"SELECT id FROM users WHERE name ILIKE $1 ESCAPE '\'")
            .bind(&anywhere)
            .fetch_all(pool)
            .await?;
        sql.push(" AND (k.name ILIKE ")
            .push_bind(anywhere.clone())
            .push(r" ESCAPE '\' OR k.key_hint ILIKE ")
            .push_bind(anywhere)
            .push(r" ESCAPE '\'");
        if !owners.is_empty() {
            sql.push(" OR k.user_id = ANY(").push_bind(owners).push(")");
        }
        if let Some((first, last)) = id_prefix_range(text) {
            sql.push(" OR k.id BETWEEN ").push_bind(first).push(" AND ").push_bind(last);
        }
        sql.push(")");
        filtered = true;
    }
    if let PageFrom::After(cursor) | PageFrom::Before(cursor) = query.from {
        // Row comparison against the cursor's own sort value: an index range scan.
        let comparison = if scan_descending { "<" } else { ">" };
        sql.push(" AND (");
        push_sort_value(&mut sql, query);
        sql.push(format_args!(", k.id) {comparison} ((SELECT "));
        push_sort_value(&mut sql, query);
        sql.push(" FROM api_keys k WHERE k.id = ").push_bind(cursor).push("), ").push_bind(cursor).push(")");
    }
    let direction = if scan_descending { "DESC" } else { "ASC" };
    sql.push(" ORDER BY ");
    push_sort_value(&mut sql, query);
    sql.push(format_args!(" {direction}, k.id {direction} LIMIT ")).push_bind(i64::from(query.limit));
    Ok((sql, filtered))
}

/// A key's low-balance line under `line`: its own or the fallback, or the fallback alone.
fn push_low_balance_line(sql: &mut QueryBuilder<Postgres>, line: LowBalanceLine) {
    let (fallback, own_counts) = line.fallback();
    if own_counts {
        sql.push("COALESCE(k.low_balance_micros, ").push_bind(fallback.micros()).push(")");
    } else {
        sql.push_bind(fallback.micros());
    }
}

/// Escapes the LIKE wildcards (and the escape character) so `text` matches literally.
pub(super) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

/// The smallest and largest UUID whose hyphenated form starts with `prefix`, so a prefix lookup
/// is a range scan of the primary key; `None` when no UUID can start so.
pub(super) fn id_prefix_range(prefix: &str) -> Option<(Uuid, Uuid)> {
    const HYPHENS: [usize; 4] = [8, 13, 18, 23];
    let mut digits = String::with_capacity(32);
    for (position, ch) in prefix.chars().enumerate() {
        let fits = if HYPHENS.contains(&position) { ch == '-' } else { ch.is_ascii_hexdigit() };
        if !fits || position >= 36 {
            return None;
        }
        if ch != '-' {
            digits.push(ch.to_ascii_lowercase());
        }
    }
    let padded = |fill: char| {
        let mut hex = digits.clone();
        hex.extend(std::iter::repeat_n(fill, 32 - digits.len()));
        Uuid::try_parse(&hex).ok()
    };
    Some((padded('0')?, padded('f')?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_cover_exactly_the_matching_ids() {
        let (first, last) = id_prefix_range("0a1b2c3d-4e").unwrap();
        assert_eq!(first.to_string(), "0a1b2c3d-4e00-0000-0000-000000000000");
        assert_eq!(last.to_string(), "0a1b2c3d-4eff-ffff-ffff-ffffffffffff");
        let (first, last) = id_prefix_range("").unwrap();
        assert_eq!((first, last), (Uuid::nil(), Uuid::max()));
        let whole = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
        assert_eq!(id_prefix_range(whole), Some((whole.parse().unwrap(), whole.parse().unwrap())));
    }

    #[test]
    fn prefixes_no_id_can_have_give_no_range() {
        for prefix in ["0a1b2c3g", "0a1b-2c3d", "0a1b2c3d4", "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f90", "%"] {
            assert_eq!(id_prefix_range(prefix), None, "{prefix}");
        }
    }

    #[test]
    fn like_wildcards_match_literally() {
        assert_eq!(escape_like(r"50%_off\now"), r"50\%\_off\\now");
        assert_eq!(escape_like("plain"), "plain");
    }
}
