//! The key list: one page in the chosen order, scope and filter, by keyset pagination.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use super::rows::millis;
use crate::domain::{ActiveFilter, ApiKey, KeyQuery, KeyScope, LowBalanceLine, PageFrom, SortKey, recent_spend_days};
use crate::store::StoreResult;

pub(super) async fn list_keys(store: &SqliteStore, query: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
    let now = list_time(query);
    // A filter that many keys match finds a page among the first keys of the list order; one
    // that few match is better answered by the trigram index. Try the first, bounded, then
    // the second.
    let mut keys = match walk_for_matches(store, query, now).await? {
        Some(keys) => keys,
        None => {
            let mut builder = QueryBuilder::new("");
            push_list_query(&mut builder, query, now);
            store.fetch_keys(builder.build()).await?
        }
    };
    if matches!(query.from, PageFrom::Before(_)) {
        // Fetched walking backwards from the cursor; the caller wants list order.
        keys.reverse();
    }
    Ok(keys)
}

/// The keys a list matches, counted over at most `cap` of them: the list query itself from the
/// start, with `cap` as its limit, so it costs what reading `cap` keys of the list costs.
pub(super) async fn count_matching(store: &SqliteStore, query: &KeyQuery, cap: u32) -> StoreResult<u64> {
    // Every order counts the same keys; one computed per key would be computed for nothing.
    let sort = if query.sort.is_computed() { SortKey::Created } else { query.sort };
    let capped = KeyQuery { from: PageFrom::Start, limit: cap, sort, ..query.clone() };
    let mut builder = QueryBuilder::new("SELECT COUNT(*) FROM (");
    push_list_query(&mut builder, &capped, list_time(query));
    builder.push(")");
    let count: i64 = builder.build_query_scalar().fetch_one(store.pool()).await.map_err(super::store_error)?;
    Ok(count.max(0) as u64)
}

/// The page of a filtered list found by walking the list's own order over at most
/// [`WALK_ROWS`] keys and filtering them, when they hold a whole page of matches; `None`
/// otherwise (then the trigram index answers). Filters shorter than a trigram have no index
/// to turn to: their query walks the whole list anyway.
async fn walk_for_matches(
    store: &SqliteStore,
    query: &KeyQuery,
    now: DateTime<Utc>,
) -> StoreResult<Option<Vec<ApiKey>>> {
    let Some(filter) = list_filter(query).filter(|text| text.chars().count() >= TRIGRAM_CHARS) else {
        return Ok(None);
    };
    let walked = KeyQuery { filter: None, limit: WALK_ROWS, ..query.clone() };
    let mut builder = QueryBuilder::new("SELECT * FROM (");
    push_list_query(&mut builder, &walked, now);
    builder.push(") AS k WHERE 1 = 1");
    push_filter(&mut builder, filter, Matching::Scan);
    push_order_and_limit(&mut builder, query);
    let keys = store.fetch_keys(builder.build()).await?;
    Ok((keys.len() >= query.limit as usize).then_some(keys))
}

/// Appends the value a list is ordered by, for the key table under `alias`. Nullable columns go
/// through the sentinels of the `0002` expression indexes, so the order is total: a key that
/// never expires sorts after every expiry, a key never used before every used one, a key
/// without a limited prepaid balance after every balance. The balance and the recent spend are
/// computed per key: an index on them would change with every charged request.
fn push_sort_value(builder: &mut QueryBuilder<Sqlite>, query: &KeyQuery, alias: &str) {
    match query.sort {
        SortKey::Created => builder.push(format_args!("{alias}.created_at")),
        SortKey::Name => builder.push(format_args!("{alias}.name")),
        SortKey::Expires => builder.push(format_args!(expiry_order!("{alias}."), alias = alias)),
        SortKey::LastUsed => builder.push(format_args!("COALESCE({alias}.last_used_at, -9223372036854775808)")),
        SortKey::Remaining => builder.push(format_args!(
            "CASE WHEN {alias}.is_standalone = 1 AND {alias}.credited_micros IS NOT NULL \
             THEN {alias}.credited_micros - {alias}.used_micros ELSE 9223372036854775807 END"
        )),
        SortKey::RecentSpend => {
            let (first, last) = recent_spend_days(list_time(query));
            builder.push(format_args!(
                "(SELECT COALESCE(SUM(d.cost_micros), 0) FROM usage_daily d WHERE d.api_key_id = {alias}.id \
                 AND d.day >= "
            ));
            builder.push_bind(first.format("%Y-%m-%d").to_string()).push(" AND d.day <= ");
            builder.push_bind(last.format("%Y-%m-%d").to_string()).push(")")
        }
    };
}

/// The time a list is judged at.
fn list_time(query: &KeyQuery) -> DateTime<Utc> {
    query.now.unwrap_or_else(Utc::now)
}

/// Appends the whole `list_keys` query. Only fixed SQL fragments are pushed as text; every value
/// that came from the caller (filter, ids, times) is a bound parameter.
fn push_list_query(builder: &mut QueryBuilder<Sqlite>, query: &KeyQuery, now: DateTime<Utc>) {
    builder.push(concat!(key_columns!(), key_from!(), " WHERE 1 = 1"));
    match query.scope {
        KeyScope::All => {}
        KeyScope::UserKeys => {
            builder.push(" AND k.is_standalone = ").push_bind(false);
        }
        KeyScope::Standalone => {
            builder.push(" AND k.is_standalone = ").push_bind(true);
        }
    }
    if let Some(owner) = query.owner {
        builder.push(" AND k.user_id = ").push_bind(owner.hyphenated());
    }
    match query.active {
        ActiveFilter::Any => {}
        // Usable now: enabled, not expired, and owned by an enabled user (verify refuses the
        // keys of a disabled owner).
        ActiveFilter::Active => {
            builder.push(" AND k.is_active = 1 AND u.is_active = 1 AND (k.expires_at IS NULL OR k.expires_at > ");
            builder.push_bind(millis(now)).push(")");
        }
        ActiveFilter::Inactive => {
            builder
                .push(" AND (k.is_active = 0 OR u.is_active = 0 OR k.expires_at <= ")
                .push_bind(millis(now))
                .push(")");
        }
    }
    if let Some(until) = query.expiring_until(now) {
        // On the expression of the `0002` index, so the window is a range of it.
        builder.push(concat!(" AND k.is_active = 1 AND ", expiry_order!("k."), " > ")).push_bind(millis(now));
        builder.push(concat!(" AND ", expiry_order!("k."), " <= ")).push_bind(millis(until));
    }
    if let Some(line) = query.low_balance {
        // Under a line above zero: `credited − used < line` is `max(0, credited − used) < line`.
        builder.push(" AND k.is_standalone = 1 AND k.credited_micros IS NOT NULL AND ");
        push_low_balance_line(builder, line);
        builder.push(" > 0 AND k.credited_micros - k.used_micros < ");
        push_low_balance_line(builder, line);
    }
    if let Some(filter) = list_filter(query) {
        push_filter(builder, filter, Matching::TrigramIndex);
    }
    if let PageFrom::After(cursor) | PageFrom::Before(cursor) = query.from {
        let (loose, strict) = if scan_direction(query) == "DESC" { ("<=", "<") } else { (">=", ">") };
        // The loose bound on the sort value alone lets SQLite seek the index; the row-value
        // comparison then skips the cursor's ties up to and including the cursor itself.
        builder.push(" AND ");
        push_sort_value(builder, query, "k");
        builder.push(format_args!(" {loose} (SELECT "));
        push_sort_value(builder, query, "c");
        builder.push(" FROM api_keys c WHERE c.id = ").push_bind(cursor.hyphenated()).push(")");
        builder.push(" AND (");
        push_sort_value(builder, query, "k");
        builder.push(format_args!(", k.id) {strict} (SELECT "));
        push_sort_value(builder, query, "c");
        builder.push(", c.id FROM api_keys c WHERE c.id = ").push_bind(cursor.hyphenated()).push(")");
    }
    push_order_and_limit(builder, query);
}

/// A key's low-balance line under `line`: its own or the fallback, or the fallback alone.
fn push_low_balance_line(builder: &mut QueryBuilder<Sqlite>, line: LowBalanceLine) {
    let (fallback, own_counts) = line.fallback();
    if own_counts {
        builder.push("COALESCE(k.low_balance_micros, ").push_bind(fallback.micros()).push(")");
    } else {
        builder.push_bind(fallback.micros());
    }
}

/// `ORDER BY` the list order (ids breaking ties) and `LIMIT` the page.
fn push_order_and_limit(builder: &mut QueryBuilder<Sqlite>, query: &KeyQuery) {
    let direction = scan_direction(query);
    builder.push(" ORDER BY ");
    push_sort_value(builder, query, "k");
    builder.push(format_args!(" {direction}, k.id {direction} LIMIT "));
    builder.push_bind(i64::from(query.limit));
}

/// The direction of the scan: walking backwards from a `Before` cursor reverses the order
/// (`list_keys` flips the page back).
fn scan_direction(query: &KeyQuery) -> &'static str {
    let backwards = matches!(query.from, PageFrom::Before(_));
    if query.descending != backwards { "DESC" } else { "ASC" }
}

/// The query's filter text, trimmed, when there is one.
fn list_filter(query: &KeyQuery) -> Option<&str> {
    query.filter.as_deref().map(str::trim).filter(|text| !text.is_empty())
}

/// How many keys of the list order a filter walks before it asks the trigram index: a filter
/// that one key in 80 matches (12,500 of a million) finds a page of 50 within them.
const WALK_ROWS: u32 = 4_000;

/// How [`push_filter`] matches names and hints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Matching {
    /// Through the FTS5 trigram index, for a filter of at least a trigram over the whole table.
    TrigramIndex,
    /// `LIKE` on each row: rows already bounded, or a filter shorter than a trigram.
    Scan,
}

/// Shortest filter the trigram index answers: a trigram is three characters.
const TRIGRAM_CHARS: usize = 3;

/// Keeps the keys whose name, owner name or key hint contains `filter` (case-insensitive `LIKE`,
/// so ASCII case only), or whose id starts with it.
///
/// With [`Matching::TrigramIndex`], each of the four conditions is one an index answers, so
/// SQLite ORs their row sets instead of scanning every key: name and hint through the FTS5
/// trigram index of migration `0003` (which folds case more widely than `LIKE`, so `LIKE`
/// re-checks what it returns), the owner through `api_keys_user`, the id prefix as a range on the
/// primary key (ids hold only `[0-9a-f-]`, all below `~`). Filters shorter than a trigram match
/// with `LIKE` alone.
fn push_filter(builder: &mut QueryBuilder<Sqlite>, filter: &str, matching: Matching) {
    let contains = format!("%{}%", escape_like(filter));
    let id_low = filter.to_ascii_lowercase();
    let id_high = format!("{id_low}~");
    if matching == Matching::TrigramIndex && filter.chars().count() >= TRIGRAM_CHARS {
        // One FTS5 phrase (quotes doubled), matched as a substring by the trigram tokenizer.
        let phrase = format!("\"{}\"", filter.replace('"', "\"\""));
        builder.push(" AND ((k.rowid IN (SELECT rowid FROM api_keys_fts WHERE api_keys_fts MATCH ").push_bind(phrase);
        builder.push(") AND (k.name LIKE ").push_bind(contains.clone()).push(" ESCAPE '\\'");
        builder.push(" OR k.key_hint LIKE ").push_bind(contains.clone()).push(" ESCAPE '\\'))");
    } else {
        builder.push(" AND ((k.name LIKE ").push_bind(contains.clone()).push(" ESCAPE '\\'");
        builder.push(" OR k.key_hint LIKE ").push_bind(contains.clone()).push(" ESCAPE '\\')");
    }
    builder.push(" OR k.user_id IN (SELECT id FROM users WHERE name LIKE ").push_bind(contains).push(" ESCAPE '\\')");
    builder.push(" OR (k.id >= ").push_bind(id_low).push(" AND k.id < ").push_bind(id_high).push("))");
}

/// Makes `%`, `_` and `\` match themselves in a `LIKE … ESCAPE '\'` pattern.
pub(super) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::sqlite::query_plan;

    /// The first page of every sort order, in both directions and in every scope, walks an
    /// index: no full scan and no temporary sort, however many keys there are.
    #[tokio::test]
    async fn unfiltered_first_pages_are_served_by_indexes() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        for sort in [SortKey::Created, SortKey::Name, SortKey::Expires, SortKey::LastUsed] {
            for descending in [false, true] {
                for scope in [KeyScope::All, KeyScope::UserKeys, KeyScope::Standalone] {
                    let query = KeyQuery { sort, descending, scope, limit: 50, ..KeyQuery::default() };
                    let mut builder = QueryBuilder::new("EXPLAIN QUERY PLAN ");
                    push_list_query(&mut builder, &query, Utc::now());
                    let plan = query_plan(&store, builder.build()).await;
                    assert!(plan.contains("SCAN k USING INDEX api_keys_"), "{sort:?} {descending} {scope:?}: {plan}");
                    assert!(!plan.contains("TEMP B-TREE"), "{sort:?} {descending} {scope:?}: {plan}");
                }
            }
        }
    }

    /// Sorted by expiry, the keys expiring soon are a range of the expiry index: the narrowing
    /// reads those keys only, not every key.
    #[tokio::test]
    async fn keys_expiring_soon_are_a_range_of_the_expiry_index() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let query = KeyQuery {
            sort: SortKey::Expires,
            expiring_within: Some(chrono::Duration::days(7)),
            limit: 50,
            ..KeyQuery::default()
        };
        let mut builder = QueryBuilder::new("EXPLAIN QUERY PLAN ");
        push_list_query(&mut builder, &query, Utc::now());
        let plan = query_plan(&store, builder.build()).await;
        assert!(plan.contains("SEARCH k USING INDEX api_keys_expires_order"), "{plan}");
    }
}
