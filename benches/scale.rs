//! `cargo bench --bench scale`: keytop at scale against the floor.
//!
//! Builds a database with the demo generator (SQLite always; PostgreSQL too when
//! `KEYTOP_TEST_POSTGRES` holds a server URL, in a fresh database dropped afterwards), then times
//! each operation as the product runs it (through `KeyService`) and its floor: the least database
//! work the operation needs, as plain sqlx statements on the same database, in the same run,
//! alternating with keytop's runs. Figures are medians of `RUNS` runs.
//!
//! `KEYTOP_BENCH_SCALE`: `small` (default: 50,000 keys, 500,000 usage rows), `full` (1,000,000
//! keys, 10,000,000 usage rows) or `KEYS:USAGE_ROWS`. Half the keys are made expired for the
//! sweep, which runs last: keytop's and the floor's runs each on a fresh copy of the database,
//! keytop's in a child process that reports its peak RSS (VmHWM).
//! `KEYTOP_BENCH_BACKENDS=sqlite` or `=postgres` runs one backend only (default: both);
//! `KEYTOP_BENCH_ONLY=writes,reads,fleet,sweep,money` (any of them) runs those parts only.
//! `KEYTOP_BENCH_SQLITE_DB=PATH` keeps the SQLite database in PATH: the first run fills it, later
//! runs at the same scale reuse it (for repeated runs of the writes, minutes apart rather than
//! one fill each); the sweep still runs on copies. `KEYTOP_BENCH_SETTLE_WAL=1` empties SQLite's
//! write-ahead log before each timed run, so that a run meets the checkpoints of its own writes
//! and not those the other side's run left behind.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keytop::crypto::MasterKey;
use keytop::demo::{self, DemoSpec};
use keytop::domain::{AuditQuery, KeyQuery, Money, PageFrom, SortKey, SpenderKind};
use keytop::service::{KeyService, NewKeySpec, ServiceSettings, UsageInput, VerifyRequest};
use keytop::store;
use sqlx::{AssertSqlSafe, Connection, PgPool, SqlitePool};
use uuid::Uuid;

const RUNS: usize = 5;
/// Child-process mode: sweep the database at this URL and report time and peak memory.
const SWEEP_CHILD: &str = "KEYTOP_BENCH_SWEEP_URL";

struct Scale {
    name: String,
    keys: u32,
    usage_rows: u64,
}

fn scale() -> Scale {
    let text = std::env::var("KEYTOP_BENCH_SCALE").unwrap_or_else(|_| "small".into());
    let (keys, usage_rows) = match text.as_str() {
        "small" => (50_000, 500_000),
        "full" => (1_000_000, 10_000_000),
        custom => {
            let (keys, usage) = custom.split_once(':').expect("KEYTOP_BENCH_SCALE: small, full or KEYS:USAGE_ROWS");
            (keys.parse().expect("a key count"), usage.parse().expect("a usage row count"))
        }
    };
    Scale { name: text, keys, usage_rows }
}

/// The parts of the bench to run: `KEYTOP_BENCH_ONLY=writes,fleet` runs those only (default:
/// all of `writes` (verify, record_usage, top-up), `reads` (stats, key list pages, filters),
/// `fleet` (the fleet's questions), `sweep`, and `money` (budgets and refills, on a database of
/// its own)). The scale's data is built in full for any of the first four.
struct Sections(Option<String>);

impl Sections {
    fn from_env() -> Sections {
        Sections(std::env::var("KEYTOP_BENCH_ONLY").ok().filter(|only| !only.trim().is_empty()))
    }

    fn wants(&self, section: &str) -> bool {
        self.0.as_deref().is_none_or(|only| only.split(',').any(|name| name.trim() == section))
    }

    /// Whether a part that needs the scale's database is asked for.
    fn wants_scale_data(&self) -> bool {
        ["writes", "reads", "fleet", "sweep"].into_iter().any(|section| self.wants(section))
    }
}

/// The plain-sqlx side of one backend.
enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Raw {
    /// Plain pools to the database at `url`. On SQLite, a pool of the store's own making: a floor
    /// committing with SQLite's default `synchronous = FULL` would sync the WAL on every commit,
    /// and one pinging each connection before use would pay a round trip, work keytop does not do.
    async fn connect(url: &str) -> Raw {
        if url.starts_with("sqlite") {
            Raw::Sqlite(store::sqlite::SqliteStore::connect(url).await.unwrap().pool().clone())
        } else {
            Raw::Postgres(PgPool::connect(url).await.unwrap())
        }
    }

    async fn close(&self) {
        match self {
            Raw::Sqlite(pool) => pool.close().await,
            Raw::Postgres(pool) => pool.close().await,
        }
    }
}

/// Runs the same statement text on either backend (placeholders written `$1`…, which SQLite
/// accepts too) with the binds the closure adds.
macro_rules! raw {
    ($raw:expr, $sql:expr, |$q:ident| $bind:expr, $method:ident) => {
        match $raw {
            Raw::Sqlite(pool) => {
                let $q = sqlx::query(AssertSqlSafe($sql.to_string()));
                $bind.$method(pool).await.map(|_| ())
            }
            Raw::Postgres(pool) => {
                let $q = sqlx::query(AssertSqlSafe($sql.to_string()));
                $bind.$method(pool).await.map(|_| ())
            }
        }
        .expect("floor statement")
    };
}

/// Median of `RUNS` alternating runs of keytop and its floor, each run `iterations` operations;
/// returns the median time per operation of each.
async fn side_by_side<K, KF, F, FF>(iterations: usize, mut keytop: K, mut floor: F) -> (Duration, Duration)
where
    K: FnMut(usize) -> KF,
    KF: Future<Output = ()>,
    F: FnMut(usize) -> FF,
    FF: Future<Output = ()>,
{
    let mut ours = Vec::new();
    let mut floors = Vec::new();
    let mut serial = 0;
    // One warm-up run of each, not counted.
    for run in 0..=RUNS {
        let k = per_operation(iterations, &mut serial, &mut keytop).await;
        let f = per_operation(iterations, &mut serial, &mut floor).await;
        if run > 0 {
            ours.push(k);
            floors.push(f);
        }
    }
    (median(ours), median(floors))
}

/// The median time of one operation over `RUNS` runs of `iterations` (after one warm-up run).
async fn median_per_operation<F, FF>(iterations: usize, mut operation: F) -> Duration
where
    F: FnMut(usize) -> FF,
    FF: Future<Output = ()>,
{
    let mut serial = 0;
    let mut times = Vec::new();
    for run in 0..=RUNS {
        let time = per_operation(iterations, &mut serial, &mut operation).await;
        if run > 0 {
            times.push(time);
        }
    }
    median(times)
}

/// With `KEYTOP_BENCH_SETTLE_WAL` set, the SQLite database whose write-ahead log is copied back
/// and emptied before each timed run (not timed): each run then meets the checkpoints of its own
/// writes only, not those the run before it left to the next commit.
static SETTLED_WAL: std::sync::OnceLock<SqlitePool> = std::sync::OnceLock::new();

/// Runs `iterations` operations, numbered on from `serial`; the mean time of one.
async fn per_operation<F, FF>(iterations: usize, serial: &mut usize, operation: &mut F) -> Duration
where
    F: FnMut(usize) -> FF,
    FF: Future<Output = ()>,
{
    if let Some(pool) = SETTLED_WAL.get() {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await.expect("checkpoint before a run");
    }
    let started = Instant::now();
    for _ in 0..iterations {
        *serial += 1;
        operation(*serial).await;
    }
    started.elapsed() / iterations as u32
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

struct Report {
    backend: &'static str,
    rows: Vec<[String; 6]>,
}

impl Report {
    /// A throughput row: keytop must reach `min_ratio` × the floor's operations per second.
    fn throughput(&mut self, operation: &str, ours: Duration, floor: Duration, min_ratio: f64) {
        let ratio = floor.as_secs_f64() / ours.as_secs_f64();
        self.rows.push([
            operation.into(),
            format!("{:.0}/s", 1.0 / ours.as_secs_f64()),
            format!("{:.0}/s", 1.0 / floor.as_secs_f64()),
            format!("{ratio:.2}×"),
            format!("≥ {min_ratio} × floor"),
            verdict(ratio >= min_ratio),
        ]);
    }

    /// A latency row: keytop must stay under `limit`.
    fn latency(&mut self, operation: &str, ours: Duration, floor: Duration, limit: Duration) {
        self.rows.push([
            operation.into(),
            format_duration(ours),
            format_duration(floor),
            format!("{:.2}×", ours.as_secs_f64() / floor.as_secs_f64()),
            format!("≤ {}", format_duration(limit)),
            verdict(ours <= limit),
        ]);
    }

    fn print(&self) {
        println!("\n### {}\n", self.backend);
        println!("| operation | keytop | floor | ratio | target | met |");
        println!("|---|---|---|---|---|---|");
        for row in &self.rows {
            println!("| {} |", row.join(" | "));
        }
    }
}

fn verdict(met: bool) -> String {
    if met { "yes".into() } else { "**no**".into() }
}

fn format_duration(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.3} ms") }
}

fn service_over(store: Arc<dyn store::Store>) -> KeyService {
    let (master_key, _) = MasterKey::generate();
    KeyService::new(store, Ok(master_key), ServiceSettings::default(), "bench".into())
}

async fn bench_backend(backend: &'static str, url: &str, scale: &Scale) -> Report {
    let sections = Sections::from_env();
    let mut report = Report { backend, rows: Vec::new() };
    let store = store::open(url).await.expect("open the bench database");
    let service = service_over(store);
    let raw = Raw::connect(url).await;
    if let Raw::Sqlite(pool) = &raw
        && std::env::var_os("KEYTOP_BENCH_SETTLE_WAL").is_some()
    {
        SETTLED_WAL.set(pool.clone()).expect("one SQLite bench database per process");
    }

    let now = service.now();
    // A kept database (KEYTOP_BENCH_SQLITE_DB) holds the scale's data after its first run.
    let kept_keys = raw_count(&raw, "SELECT COUNT(*) FROM api_keys").await;
    if kept_keys >= i64::from(scale.keys) {
        println!("[{backend}] reusing the kept database: {kept_keys} keys");
    } else {
        // Data, through the product's generator.
        let spec = DemoSpec {
            users: (scale.keys / 100).max(30),
            keys: scale.keys,
            days: 90,
            usage_rows: scale.usage_rows,
            seed: 7,
        };
        let started = Instant::now();
        let times = demo::fill(&service, &spec, false).await.expect("demo fill");
        println!(
            "[{backend}] generated {} keys and {} usage rows in {:.1?}: keys {:.0}/s ({:.1?}), usage rows {:.0}/s \
             ({:.1?}, rollups and charges included), statistics {:.1?}",
            scale.keys,
            scale.usage_rows,
            started.elapsed(),
            f64::from(scale.keys) / times.users_and_keys.as_secs_f64(),
            times.users_and_keys,
            scale.usage_rows as f64 / times.usage.as_secs_f64(),
            times.usage,
            times.statistics,
        );
        load_floor(backend, &raw, scale.usage_rows.min(1_000_000)).await;

        // Half the keys expired, half never expiring: the sweep's workload.
        let day_ago = now - chrono::Duration::days(1);
        let half = if backend == "sqlite" { "rowid % 2 = 0" } else { "get_byte(uuid_send(id), 15) % 2 = 0" };
        let expire_sql = format!("UPDATE api_keys SET expires_at = CASE WHEN {half} THEN $1 ELSE NULL END");
        match &raw {
            Raw::Sqlite(pool) => {
                sqlx::query(AssertSqlSafe(expire_sql)).bind(day_ago.timestamp_millis()).execute(pool).await.map(|_| ())
            }
            Raw::Postgres(pool) => sqlx::query(AssertSqlSafe(expire_sql)).bind(day_ago).execute(pool).await.map(|_| ()),
        }
        .expect("expire half the keys");
        // That rewrote every key, after millions of inserts: vacuum and analyze now, as autovacuum
        // would soon, so that no background vacuum of the usage table shares the two cores with the
        // measurements below and the dead row versions of the keys are gone.
        if let Raw::Postgres(pool) = &raw {
            let started = Instant::now();
            sqlx::query("VACUUM ANALYZE").execute(pool).await.expect("vacuum");
            println!("[{backend}] VACUUM ANALYZE of the database: {:.1?}", started.elapsed());
        }
    }

    // Keys the bench drives: plaintexts are only known at creation.
    // A fresh owner and fresh request ids each run, as a kept database has the last run's.
    let run_id = Uuid::new_v4().simple().to_string();
    let run = &run_id[..8];
    let owner = service.add_user(&format!("bench-owner-{run}")).await.expect("owner");
    let mut spec = NewKeySpec::new(owner.name.clone());
    spec.standalone = true;
    spec.balance = Some(Money::from_usd(1_000_000));
    spec.rate_limit = None;
    let mut bench_keys = Vec::new();
    for _ in 0..64 {
        bench_keys.push(service.create_key(&spec).await.expect("bench key"));
    }
    let bench_hashes: Vec<String> = bench_keys.iter().map(|k| k.key.key_hash.clone()).collect();
    let bench_ids: Vec<Uuid> = bench_keys.iter().map(|k| k.key.id).collect();

    // What any statement costs before its database work: one round trip through the pool. It
    // bounds how near a transaction of several statements can come to a one-statement floor.
    let round_trip = median_per_operation(2_000, |_| {
        let raw = &raw;
        async move { raw!(raw, "SELECT 1", |q| q, execute) }
    })
    .await;
    println!("[{backend}] one round trip through the pool (SELECT 1): {:.1} µs", round_trip.as_secs_f64() * 1e6);

    // The demo's keys and the bench keys (and on a kept database, earlier runs' bench keys).
    let total_keys = raw_count(&raw, "SELECT COUNT(*) FROM api_keys").await;
    if sections.wants("writes") {
        // verify ≥ 0.8 × one indexed point select.
        let request = VerifyRequest::default();
        let (ours, floor) = side_by_side(
            2_000,
            |i| {
                let (service, plaintext, request) = (&service, &bench_keys[i % bench_keys.len()].plaintext, &request);
                async move {
                    service.verify(plaintext, request).await.expect("verify");
                }
            },
            |i| {
                let (raw, hash) = (&raw, &bench_hashes[i % bench_hashes.len()]);
                async move {
                    raw!(raw, "SELECT * FROM api_keys WHERE key_hash = $1", |q| q.bind(hash), fetch_optional);
                }
            },
        )
        .await;
        report.throughput("verify", ours, floor, 0.8);

        // record_usage ≥ 0.5 × one single-row insert in its own transaction.
        let (ours, floor) = side_by_side(
            1_000,
            |i| {
                let (service, id) = (&service, bench_ids[i % bench_ids.len()]);
                async move {
                    let input = UsageInput {
                        request_id: Some(format!("bench-k-{run}-{i}")),
                        model: Some("gpt-4o".into()),
                        total_tokens: 1_000,
                        cost: Money::from_micros(1_500),
                        response_time_ms: Some(300),
                        ..UsageInput::default()
                    };
                    service.record_usage(id, &input).await.expect("record usage");
                }
            },
            |i| {
                let (raw, id, now) = (&raw, bench_ids[i % bench_ids.len()], now);
                async move {
                    let sql = "INSERT INTO usage (request_id, api_key_id, model, total_tokens, cost_micros, \
                           response_time_ms, created_at) VALUES ($1, $2, 'gpt-4o', 1000, 1500, 300, $3)";
                    match raw {
                        Raw::Sqlite(pool) => sqlx::query(sql)
                            .bind(format!("bench-f-{run}-{i}"))
                            .bind(id.hyphenated())
                            .bind(now.timestamp_millis())
                            .execute(pool)
                            .await
                            .map(|_| ()),
                        Raw::Postgres(pool) => sqlx::query(sql)
                            .bind(format!("bench-f-{run}-{i}"))
                            .bind(id)
                            .bind(now)
                            .execute(pool)
                            .await
                            .map(|_| ()),
                    }
                    .expect("floor insert");
                }
            },
        )
        .await;
        report.throughput("record_usage", ours, floor, 0.5);

        // Top-up with ledger and audit ≥ 0.5 × one single-row update in its own transaction.
        let (ours, floor) = side_by_side(
            1_000,
            |i| {
                let (service, id) = (&service, bench_ids[i % bench_ids.len()]);
                async move {
                    service.top_up(id, Money::from_micros(1), Some("bench"), None).await.expect("top up");
                }
            },
            |i| {
                let (raw, id) = (&raw, bench_ids[i % bench_ids.len()]);
                async move {
                    let sql = "UPDATE api_keys SET credited_micros = credited_micros + 1 WHERE id = $1";
                    match raw {
                        Raw::Sqlite(pool) => sqlx::query(sql).bind(id.hyphenated()).execute(pool).await.map(|_| ()),
                        Raw::Postgres(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ()),
                    }
                    .expect("floor update");
                }
            },
        )
        .await;
        report.throughput("top-up (ledger + audit)", ours, floor, 0.5);
    }

    if sections.wants("reads") {
        // 90-day stats of the busiest key.
        let busiest_sql = "SELECT api_key_id, CAST(SUM(requests) AS BIGINT) FROM usage_daily GROUP BY api_key_id ORDER BY 2 DESC LIMIT 1";
        let (busiest, requests): (Uuid, i64) = match &raw {
            Raw::Sqlite(pool) => {
                let (id, n): (String, i64) = sqlx::query_as(busiest_sql).fetch_one(pool).await.unwrap();
                (id.parse().unwrap(), n)
            }
            Raw::Postgres(pool) => sqlx::query_as(busiest_sql).fetch_one(pool).await.unwrap(),
        };
        let first_day = (now - chrono::Duration::days(89)).date_naive();
        let (ours, floor) = side_by_side(
            200,
            |_| {
                let service = &service;
                async move {
                    service.stats(busiest, 90).await.expect("stats");
                }
            },
            |_| {
                let raw = &raw;
                async move {
                    let sql = "SELECT day, requests, tokens, cost_micros, response_ms_sum, timed_requests \
                           FROM usage_daily WHERE api_key_id = $1 AND day >= $2 AND day <= $3 ORDER BY day";
                    match raw {
                        Raw::Sqlite(pool) => sqlx::query(sql)
                            .bind(busiest.hyphenated())
                            .bind(first_day)
                            .bind(now.date_naive())
                            .fetch_all(pool)
                            .await
                            .map(|_| ()),
                        Raw::Postgres(pool) => sqlx::query(sql)
                            .bind(busiest)
                            .bind(first_day)
                            .bind(now.date_naive())
                            .fetch_all(pool)
                            .await
                            .map(|_| ()),
                    }
                    .expect("floor stats");
                }
            },
        )
        .await;
        report.latency(&format!("90-day stats, key with {requests} usage rows"), ours, floor, Duration::from_millis(2));

        // Key list pages, newest first: the first, and one half-way down.
        let deep_sql =
            format!("SELECT id FROM api_keys ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {}", total_keys / 2);
        let deep: Uuid = match &raw {
            Raw::Sqlite(pool) => {
                sqlx::query_scalar::<_, String>(AssertSqlSafe(deep_sql)).fetch_one(pool).await.unwrap().parse().unwrap()
            }
            Raw::Postgres(pool) => sqlx::query_scalar(AssertSqlSafe(deep_sql)).fetch_one(pool).await.unwrap(),
        };
        for (label, from) in
            [("key list, first page (50)", PageFrom::Start), ("key list, page half-way down", PageFrom::After(deep))]
        {
            let query = KeyQuery { sort: SortKey::Created, descending: true, from, limit: 50, ..KeyQuery::default() };
            let (ours, floor) = side_by_side(
                200,
                |_| {
                    let (service, query) = (&service, &query);
                    async move {
                        service.list_keys(query).await.expect("list");
                    }
                },
                |_| {
                    let raw = &raw;
                    async move {
                        match (raw, from) {
                            (Raw::Sqlite(pool), PageFrom::After(cursor)) => sqlx::query(
                                "SELECT k.*, u.name FROM api_keys k JOIN users u ON u.id = k.user_id \
                             WHERE (k.created_at, k.id) < (SELECT created_at, id FROM api_keys WHERE id = $1) \
                             ORDER BY k.created_at DESC, k.id DESC LIMIT 50",
                            )
                            .bind(cursor.hyphenated())
                            .fetch_all(pool)
                            .await
                            .map(|_| ()),
                            (Raw::Postgres(pool), PageFrom::After(cursor)) => sqlx::query(
                                "SELECT k.*, u.name FROM api_keys k JOIN users u ON u.id = k.user_id \
                             WHERE (k.created_at, k.id) < (SELECT created_at, id FROM api_keys WHERE id = $1) \
                             ORDER BY k.created_at DESC, k.id DESC LIMIT 50",
                            )
                            .bind(cursor)
                            .fetch_all(pool)
                            .await
                            .map(|_| ()),
                            (raw, _) => {
                                raw!(
                                    raw,
                                    "SELECT k.*, u.name FROM api_keys k JOIN users u ON u.id = k.user_id \
                                 ORDER BY k.created_at DESC, k.id DESC LIMIT 50",
                                    |q| q,
                                    fetch_all
                                );
                                Ok(())
                            }
                        }
                        .expect("floor page");
                    }
                },
            )
            .await;
            report.latency(label, ours, floor, Duration::from_millis(5));
        }

        // Name-substring filters: a selective one (a name's number) and a broad one (a purpose word).
        let number = (scale.keys / 3 + 1234).to_string();
        for (label, text) in [
            ("filter, selective name substring", format!("-{number}")),
            ("filter, broad name substring", "nightly".to_string()),
        ] {
            let query = KeyQuery {
                filter: Some(text.clone()),
                sort: SortKey::Created,
                descending: true,
                limit: 50,
                ..KeyQuery::default()
            };
            let pattern = format!("%{text}%");
            let phrase = format!("\"{text}\"");
            let (ours, floor) = side_by_side(
                20,
                |_| {
                    let (service, query) = (&service, &query);
                    async move {
                        service.list_keys(query).await.expect("filter");
                    }
                },
                |_| {
                    let (raw, pattern, phrase) = (&raw, &pattern, &phrase);
                    async move {
                        match raw {
                            Raw::Sqlite(pool) => sqlx::query(
                                "SELECT k.* FROM api_keys k WHERE k.rowid IN \
                             (SELECT rowid FROM api_keys_fts WHERE api_keys_fts MATCH $1) \
                             ORDER BY k.created_at DESC, k.id DESC LIMIT 50",
                            )
                            .bind(phrase)
                            .fetch_all(pool)
                            .await
                            .map(|_| ()),
                            // Unnamed, so planned for its pattern each time (a generic plan of this
                            // prepared statement walked all 1M keys for a rare pattern: 8 s a run).
                            Raw::Postgres(pool) => sqlx::query(
                                "SELECT k.* FROM api_keys k WHERE k.name ILIKE $1 \
                             ORDER BY k.created_at DESC, k.id DESC LIMIT 50",
                            )
                            .persistent(false)
                            .bind(pattern)
                            .fetch_all(pool)
                            .await
                            .map(|_| ()),
                        }
                        .expect("floor filter");
                    }
                },
            )
            .await;
            report.latency(&format!("{label} {text:?}"), ours, floor, Duration::from_millis(50));
        }
    }

    if sections.wants("fleet") {
        bench_fleet(&mut report, &service, &raw, scale).await;
    }

    if sections.wants("sweep") {
        // Sweep: destructive, and a real one must commit (on SQLite the commit writes the changed
        // pages to the WAL and checkpoints them, a quarter of the work), so every run, keytop's and
        // the floor's alike, works on its own fresh copy of the database and commits. keytop sweeps
        // in a child process that reports its peak memory. Runs alternate; no warm-up run, as each
        // copy starts cold in the same way.
        drop(service);
        raw.close().await;
        let mut copies = Copies::of(url).await;
        let (mut ours, mut floors, mut peak_kb, mut swept) = (Vec::new(), Vec::new(), 0, (0, 0));
        for _ in 0..RUNS {
            let copy = copies.make().await;
            let run = sweep_in_child(&copy);
            copies.remove(&copy).await;
            ours.push(run.time);
            peak_kb = peak_kb.max(run.peak_kb);
            swept = (run.disabled, run.deleted);
            let copy = copies.make().await;
            floors.push(sweep_floor(&copy, now).await);
            copies.remove(&copy).await;
        }
        let (disabled, deleted) = swept;
        report.latency(
            &format!("sweep: {disabled} disabled + {deleted} deleted of {total_keys}"),
            median(ours),
            median(floors),
            Duration::from_secs(3),
        );
        report.rows.push([
            "sweep: peak RSS of the sweeping process (VmHWM)".into(),
            format!("{:.1} MB", peak_kb as f64 / 1024.0),
            "—".into(),
            "—".into(),
            "≤ 64 MB".into(),
            verdict(peak_kb <= 64 * 1024),
        ]);
    }
    report
}

/// The fleet's questions (≤ 50 ms each for the 90-day series and the top lists, ≤ 5 ms for a
/// page of users or of the audit log), each against the plain SQL a minimal implementation would
/// run over the per-key rollup, the users and the audit log.
async fn bench_fleet(report: &mut Report, service: &KeyService, raw: &Raw, scale: &Scale) {
    let now = service.now();
    let (first, last) = ((now - chrono::Duration::days(89)).date_naive(), now.date_naive());
    let fleet_floor = "SELECT day, CAST(SUM(requests) AS BIGINT), CAST(SUM(tokens) AS BIGINT), \
                       CAST(SUM(cost_micros) AS BIGINT) FROM usage_daily WHERE day BETWEEN $1 AND $2 GROUP BY day";
    let keys_floor = "SELECT api_key_id, CAST(SUM(cost_micros) AS BIGINT) AS cost FROM usage_daily \
                      WHERE day BETWEEN $1 AND $2 GROUP BY api_key_id ORDER BY cost DESC LIMIT 10";
    let users_floor = "SELECT k.user_id, CAST(SUM(d.cost_micros) AS BIGINT) AS cost FROM usage_daily d \
                       JOIN api_keys k ON k.id = d.api_key_id WHERE d.day BETWEEN $1 AND $2 \
                       GROUP BY k.user_id ORDER BY cost DESC LIMIT 10";
    type Question<'a> = (&'a str, &'static str, Box<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + 'a>> + 'a>);
    let questions: Vec<Question> = vec![
        (
            "fleet: 90-day series (floor: summing the per-key rollup)",
            fleet_floor,
            Box::new(move || Box::pin(async move { drop(service.fleet_stats(90).await.expect("fleet stats")) })),
        ),
        (
            "fleet: top 10 keys over 90 days (floor: summing the per-key rollup)",
            keys_floor,
            Box::new(move || {
                Box::pin(async move { drop(service.top_spenders(SpenderKind::Key, 90, 10).await.expect("top keys")) })
            }),
        ),
        (
            "fleet: top 10 users over 90 days (floor: the per-key rollup joined to its keys)",
            users_floor,
            Box::new(move || {
                Box::pin(async move { drop(service.top_spenders(SpenderKind::User, 90, 10).await.expect("top users")) })
            }),
        ),
    ];
    for (label, floor_sql, ours) in &questions {
        // Few runs: the floor reads every rollup row of the range each time.
        let (ours, floor) = side_by_side(
            2,
            |_| ours(),
            |_| async move {
                match raw {
                    Raw::Sqlite(pool) => {
                        sqlx::query(*floor_sql).bind(first).bind(last).fetch_all(pool).await.map(|_| ())
                    }
                    Raw::Postgres(pool) => {
                        sqlx::query(*floor_sql).bind(first).bind(last).fetch_all(pool).await.map(|_| ())
                    }
                }
                .expect("floor fleet question");
            },
        )
        .await;
        report.latency(label, ours, floor, Duration::from_millis(50));
    }

    let users = raw_count(raw, "SELECT COUNT(*) FROM users").await;
    let (ours, floor) = side_by_side(
        200,
        |_| async move {
            service.user_overviews(None, None, 50, 30).await.expect("users page");
        },
        |_| async move {
            raw!(
                raw,
                "SELECT u.id, u.name, u.is_active, u.created_at, \
                 (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id) FROM users u ORDER BY u.name LIMIT 50",
                |q| q,
                fetch_all
            );
        },
    )
    .await;
    report.latency(
        &format!("users: first page (50) of {users}, counts, spend, last use"),
        ours,
        floor,
        Duration::from_millis(5),
    );

    // The audit log at 5,000,000 rows at full scale (half a row per usage row), spread over 90
    // days, twenty actors and four actions.
    let rows = (scale.usage_rows / 2).saturating_sub(raw_count(raw, "SELECT COUNT(*) FROM audit_log").await as u64);
    let started = Instant::now();
    let start = now - chrono::Duration::days(90);
    let step_ms = (90 * 86_400_000 / rows.max(1)).max(1) as i64;
    let actions = "CASE i % 4 WHEN 0 THEN 'topup' WHEN 1 THEN 'update' WHEN 2 THEN 'disable' ELSE 'create' END";
    match raw {
        Raw::Sqlite(pool) => sqlx::query(AssertSqlSafe(format!(
            "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
             INSERT INTO audit_log (at, actor, action, api_key_id, details) \
             SELECT $2 + i * $3, 'ops-' || (i % 20), {actions}, NULL, '{{}}' FROM n"
        )))
        .bind(rows as i64)
        .bind(start.timestamp_millis())
        .bind(step_ms)
        .execute(pool)
        .await
        .map(|_| ()),
        Raw::Postgres(pool) => sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO audit_log (at, actor, action, api_key_id, details) \
             SELECT $2 + i * $3 * interval '1 millisecond', 'ops-' || (i % 20), {actions}, NULL, '{{}}'::jsonb \
             FROM generate_series(1, $1) AS i"
        )))
        .bind(rows as i64)
        .bind(start)
        .bind(step_ms as f64)
        .execute(pool)
        .await
        .map(|_| ()),
    }
    .expect("fill the audit log");
    let audit_rows = raw_count(raw, "SELECT COUNT(*) FROM audit_log").await;
    println!("[{}] audit log filled to {audit_rows} rows in {:.1?}", report.backend, started.elapsed());
    let day_ago = now - chrono::Duration::days(1);
    for (label, actor, since) in [
        ("audit: first page (50)", None, None),
        ("audit: page (50) of one actor of twenty since 24 h", Some("ops-7"), Some(day_ago)),
    ] {
        let query = AuditQuery { actor: actor.map(Into::into), since, limit: 50, ..AuditQuery::default() };
        let (ours, floor) = side_by_side(
            200,
            |_| {
                let query = &query;
                async move {
                    service.audit_page(query).await.expect("audit page");
                }
            },
            |_| async move {
                let sql = "SELECT id, at, actor, action, api_key_id, details FROM audit_log \
                           WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR at >= $2) ORDER BY id DESC LIMIT 50";
                match raw {
                    Raw::Sqlite(pool) => {
                        let since = since.map(|at| at.timestamp_millis());
                        sqlx::query(sql).bind(actor).bind(since).fetch_all(pool).await.map(|_| ())
                    }
                    Raw::Postgres(pool) => sqlx::query(sql).bind(actor).bind(since).fetch_all(pool).await.map(|_| ()),
                }
                .expect("floor audit page");
            },
        )
        .await;
        report.latency(&format!("{label}, of {audit_rows} rows"), ours, floor, Duration::from_millis(5));
    }
}

async fn raw_count(raw: &Raw, sql: &'static str) -> i64 {
    match raw {
        Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .expect("count")
}

/// The floor of loading usage rows: `rows` existing rows copied by one `INSERT … SELECT` inside
/// the database (no transfer, no rollups, no charges), in a transaction rolled back afterwards.
async fn load_floor(backend: &str, raw: &Raw, rows: u64) {
    let sql = format!(
        "INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, cost_micros, \
         response_time_ms, created_at) \
         SELECT request_id || '-floor', api_key_id, provider, model, api_format, total_tokens, cost_micros, \
         response_time_ms, created_at FROM usage ORDER BY id LIMIT {rows}"
    );
    let elapsed = match raw {
        Raw::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let started = Instant::now();
            sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await.expect("load floor");
            let elapsed = started.elapsed();
            tx.rollback().await.unwrap();
            elapsed
        }
        Raw::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            let started = Instant::now();
            sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await.expect("load floor");
            let elapsed = started.elapsed();
            tx.rollback().await.unwrap();
            elapsed
        }
    };
    println!(
        "[{backend}] usage load floor: {:.0} rows/s ({rows} rows copied by one INSERT … SELECT, no rollups)",
        rows as f64 / elapsed.as_secs_f64()
    );
}

/// The set-based statements a sweep needs (audit rows, deletes, disables) in one transaction,
/// committed, on the copy of the database at `url`; the time includes the commit. Expired keys
/// are found through each backend's expiry index (its expression, "never" as the largest value),
/// as keytop finds them. On SQLite the pool is of the store's making, so its commit checkpoints
/// as keytop's does.
async fn sweep_floor(url: &str, now: DateTime<Utc>) -> Duration {
    let raw = Raw::connect(url).await;
    let expiry = match raw {
        Raw::Sqlite(_) => "COALESCE(expires_at, 9223372036854775807)",
        Raw::Postgres(_) => "COALESCE(expires_at, 'infinity')",
    };
    let statements = [
        format!(
            "INSERT INTO audit_log (at, actor, action, api_key_id, details) \
             SELECT $1, 'floor', CASE WHEN COALESCE(auto_delete_on_expiry, FALSE) THEN 'sweep_delete' \
             ELSE 'sweep_disable' END, id, '{{}}' FROM api_keys \
             WHERE {expiry} <= $1 AND (COALESCE(auto_delete_on_expiry, FALSE) OR is_active)"
        ),
        format!("DELETE FROM api_keys WHERE {expiry} <= $1 AND COALESCE(auto_delete_on_expiry, FALSE)"),
        format!("UPDATE api_keys SET is_active = FALSE, updated_at = $1 WHERE {expiry} <= $1 AND is_active"),
    ];
    let started = Instant::now();
    match &raw {
        Raw::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            for sql in statements {
                let query = sqlx::query(AssertSqlSafe(sql)).bind(now.timestamp_millis());
                query.execute(&mut *tx).await.expect("floor sweep");
            }
            tx.commit().await.unwrap();
        }
        Raw::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            for sql in statements {
                sqlx::query(AssertSqlSafe(sql)).bind(now).execute(&mut *tx).await.expect("floor sweep");
            }
            tx.commit().await.unwrap();
        }
    }
    let elapsed = started.elapsed();
    raw.close().await;
    elapsed
}

/// Fresh copies of the bench database for the sweep runs, page for page: a file copy on SQLite
/// (after a checkpoint, so the file holds everything), `CREATE DATABASE … TEMPLATE` with the
/// file-copy strategy on PostgreSQL.
enum Copies {
    Sqlite { source: std::path::PathBuf, made: usize },
    Postgres { admin: sqlx::PgConnection, base: String, source: String, made: usize },
}

impl Copies {
    async fn of(url: &str) -> Copies {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let raw = Raw::connect(url).await;
            raw!(&raw, "PRAGMA wal_checkpoint(TRUNCATE)", |q| q, execute);
            raw.close().await;
            Copies::Sqlite { source: path.into(), made: 0 }
        } else {
            let (base, source) = url.rsplit_once('/').expect("a database URL");
            let admin = sqlx::PgConnection::connect(&format!("{base}/postgres")).await.expect("connect as admin");
            Copies::Postgres { admin, base: base.into(), source: source.into(), made: 0 }
        }
    }

    /// A new copy; returns its URL.
    async fn make(&mut self) -> String {
        match self {
            Copies::Sqlite { source, made } => {
                *made += 1;
                let copy = source.with_file_name(format!("sweep-copy-{made}.db"));
                std::fs::copy(&*source, &copy).expect("copy the database file");
                format!("sqlite://{}", copy.display())
            }
            Copies::Postgres { admin, base, source, made } => {
                *made += 1;
                let copy = format!("{source}_sweep{made}");
                // A template must have no sessions: end any the bench's pools left behind.
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                    .bind(source.as_str())
                    .execute(&mut *admin)
                    .await
                    .unwrap();
                sqlx::query(AssertSqlSafe(format!(
                    "CREATE DATABASE \"{copy}\" TEMPLATE \"{source}\" STRATEGY FILE_COPY"
                )))
                .execute(&mut *admin)
                .await
                .expect("copy the database");
                format!("{base}/{copy}")
            }
        }
    }

    async fn remove(&mut self, url: &str) {
        match self {
            Copies::Sqlite { .. } => {
                let path = url.trim_start_matches("sqlite://");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
            Copies::Postgres { admin, .. } => {
                let (_, name) = url.rsplit_once('/').unwrap();
                sqlx::query(AssertSqlSafe(format!("DROP DATABASE \"{name}\" WITH (FORCE)")))
                    .execute(&mut *admin)
                    .await
                    .expect("drop the copy");
            }
        }
    }
}

/// One sweep by keytop, as the child process reported it.
struct SweepRun {
    time: Duration,
    peak_kb: u64,
    disabled: u64,
    deleted: u64,
}

/// Sweeps the database at `url` in a child process (this executable in child mode).
fn sweep_in_child(url: &str) -> SweepRun {
    let output =
        Command::new(std::env::current_exe().unwrap()).env(SWEEP_CHILD, url).output().expect("run the sweep child");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("sweep "))
        .unwrap_or_else(|| panic!("sweep child: {text} {}", String::from_utf8_lossy(&output.stderr)));
    let fields: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().unwrap()).collect();
    SweepRun { time: Duration::from_millis(fields[0]), peak_kb: fields[1], disabled: fields[2], deleted: fields[3] }
}

/// The child process: one real sweep through the service, then its time and peak RSS.
fn sweep_child(url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let service = service_over(store::open(url).await.expect("open"));
        let started = Instant::now();
        let report = service.sweep(false).await.expect("sweep");
        let ms = started.elapsed().as_millis();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let hwm_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        println!("sweep {ms} {hwm_kb} {} {}", report.disabled_count, report.deleted_count);
    });
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_default();
    let ram_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores, {cpu}, {:.0} GB RAM", ram_kb as f64 / 1024.0 / 1024.0)
}

#[path = "scale/money.rs"]
mod money;

fn main() {
    if let Ok(url) = std::env::var(SWEEP_CHILD) {
        sweep_child(&url);
        return;
    }
    // `cargo bench` passes `--bench`; nothing else to parse.
    let scale = scale();
    println!(
        "keytop scale bench: scale {} ({} keys, {} usage rows); {}",
        scale.name,
        scale.keys,
        scale.usage_rows,
        machine()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let sections = Sections::from_env();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = std::env::var_os("KEYTOP_BENCH_SQLITE_DB").map_or_else(|| dir.path().join("bench.db"), Into::into);
        let url = format!("sqlite://{}", path.display());
        // KEYTOP_BENCH_BACKENDS=postgres (or sqlite) runs one backend only.
        let backends = std::env::var("KEYTOP_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
        let mut reports = Vec::new();
        // Each table is printed as soon as its backend is done, so a later failure loses nothing.
        if sections.wants_scale_data() && backends.contains("sqlite") {
            let report = bench_backend("sqlite", &url, &scale).await;
            report.print();
            reports.push(report);
        }
        if let Some(server) = std::env::var("KEYTOP_TEST_POSTGRES")
            .ok()
            .filter(|s| !s.trim().is_empty() && backends.contains("postgres") && sections.wants_scale_data())
        {
            let name = format!("keytop_bench_{}", Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&server).await.expect("connect to KEYTOP_TEST_POSTGRES");
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
            let (base, _) = server.rsplit_once('/').expect("a server URL with a database path");
            let report = bench_backend("postgres", &format!("{base}/{name}"), &scale).await;
            report.print();
            reports.push(report);
            sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                .execute(&mut admin)
                .await
                .unwrap();
        }
        if sections.wants("money") {
            for report in money::reports(&backends).await {
                report.print();
                reports.push(report);
            }
        }
        println!("\n## All tables");
        for report in &reports {
            report.print();
        }
    });
}
