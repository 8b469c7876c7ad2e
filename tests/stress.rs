//! Concurrency and crashes, through the built binary on one SQLite file and on PostgreSQL.
//!
//! * Concurrency: P shell loops of N `keytop topup wallet 0.01`, interleaved with P loops of N
//!   `keytop usage record wallet --cost 0.01` and a `keytop sweep` every 100 ms. No command may
//!   fail (no "database is locked" or serialization error reaches the admin), and afterwards the
//!   key's credited total equals the sum of its ledger and its used total the sum of its usage
//!   rows, exactly, read with raw SQL.
//! * Crashes: the same burst with every process SIGKILLed at a random moment of its life; then
//!   remaining = initial + Σ top-ups − Σ charges, every ledger row has its balance change and its
//!   audit row, every usage row its rollup and its charge, and `keytop migrate` runs cleanly.
//!
//! The default run is sized down (`cargo test` stays fast); `KEYTOP_STRESS_FULL=1` (set by
//! `.ci/run`) runs the full size: 8 × 100 top-ups and 8 × 100 usage records.

mod common;
mod sandbox;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use sandbox::Sandbox;

/// (processes per kind, operations per process).
fn size() -> (usize, usize) {
    if std::env::var("KEYTOP_STRESS_FULL").is_ok_and(|v| !v.is_empty() && v != "0") { (8, 100) } else { (4, 12) }
}

const INITIAL_MICROS: i64 = 100_000_000; // $100
const STEP_MICROS: i64 = 10_000; // $0.01

/// Messages that must never reach an admin: they mean a retry or wait was missing.
const LOCK_ERRORS: [&str; 5] = ["locked", "busy", "serializ", "deadlock", "could not obtain lock"];

/// Sweeps every 100 ms until `stop`; returns (runs, failures as stderr text).
fn sweeper(sandbox: &Sandbox, stop: &AtomicBool) -> (usize, Vec<String>) {
    let mut runs = 0;
    let mut failures = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let output = sandbox.run(&["sweep"]);
        runs += 1;
        if !output.status.success() || !output.stderr.is_empty() {
            failures.push(format!("{:?}: {}", output.status.code(), String::from_utf8_lossy(&output.stderr)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (runs, failures)
}

fn key_id_sql() -> &'static str {
    "(SELECT id FROM api_keys WHERE name = 'wallet')"
}

/// The accounting invariants of the `wallet` key, read with raw SQL. Returns (credited, used).
fn check_books(sandbox: &Sandbox) -> (i64, i64) {
    let label = sandbox.label;
    let key = key_id_sql();
    let credited = sandbox.sql_i64("SELECT credited_micros FROM api_keys WHERE name = 'wallet'");
    let used = sandbox.sql_i64("SELECT used_micros FROM api_keys WHERE name = 'wallet'");
    let ledger_sum = sandbox.sql_i64(&format!(
        "SELECT CAST(COALESCE(SUM(delta_micros), 0) AS BIGINT) FROM balance_ledger WHERE api_key_id = {key}"
    ));
    let usage_sum = sandbox
        .sql_i64(&format!("SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage WHERE api_key_id = {key}"));
    let usage_rows = sandbox.sql_i64(&format!("SELECT COUNT(*) FROM usage WHERE api_key_id = {key}"));
    let rollup_cost = sandbox.sql_i64(&format!(
        "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage_daily WHERE api_key_id = {key}"
    ));
    let rollup_requests = sandbox.sql_i64(&format!(
        "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM usage_daily WHERE api_key_id = {key}"
    ));
    let ledger_rows = sandbox.sql_i64(&format!("SELECT COUNT(*) FROM balance_ledger WHERE api_key_id = {key}"));
    let topup_audits = sandbox
        .sql_i64(&format!("SELECT COUNT(*) FROM audit_log WHERE api_key_id = {key} AND action IN ('topup', 'deduct')"));
    assert_eq!(credited, ledger_sum, "[{label}] credited must equal the sum of the ledger");
    assert_eq!(used, usage_sum, "[{label}] used must equal the sum of the usage rows");
    assert_eq!(rollup_cost, usage_sum, "[{label}] the daily rollups must add up to the usage rows");
    assert_eq!(rollup_requests, usage_rows, "[{label}] one rollup request per usage row");
    // The first ledger row is the initial credit (audited as the key's creation).
    assert_eq!(topup_audits, ledger_rows - 1, "[{label}] every top-up has its audit row and no more");
    (credited, used)
}

fn assert_clean(label: &str, what: &str, output: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "[{label}] {what} failed ({:?}): {stderr}", output.status.code());
    for word in LOCK_ERRORS {
        assert!(!stderr.to_lowercase().contains(word), "[{label}] {what} printed {word:?}: {stderr}");
    }
    assert!(stderr.trim().is_empty(), "[{label}] {what} printed on stderr: {stderr}");
}

fn concurrent_burst(sandbox: &Sandbox) {
    let label = sandbox.label;
    let (processes, per_process) = size();
    sandbox.with_prepaid_key("100");
    // Keys for the sweep to find: some expired already, more that expire during the burst.
    sandbox.ok(&["keys", "create", "--user", "alice", "--name", "old", "--expires-at", "2001-01-01", "--allow-past"]);

    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let (sweeps, sweep_failures, outputs) = std::thread::scope(|scope| {
        let sweeper = scope.spawn(|| sweeper(sandbox, &stop));
        let mut loops = Vec::new();
        for p in 0..processes {
            let topups = format!(
                "i=0; while [ $i -lt {per_process} ]; do \
                   \"$KEYTOP\" topup wallet 0.01 --note t{p}-$i >/dev/null || {{ echo \"topup t{p}-$i failed\" >&2; exit 1; }}; \
                   i=$((i+1)); done"
            );
            let usage = format!(
                "i=0; while [ $i -lt {per_process} ]; do \
                   \"$KEYTOP\" usage record wallet --tokens 10 --cost 0.01 --request-id u{p}-$i --model m >/dev/null \
                   || {{ echo \"usage u{p}-$i failed\" >&2; exit 1; }}; \
                   i=$((i+1)); done"
            );
            for script in [topups, usage] {
                let child = sandbox.shell(&script).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
                loops.push(scope.spawn(move || child.wait_with_output().unwrap()));
            }
        }
        let outputs: Vec<_> = loops.into_iter().map(|handle| handle.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        let (runs, failures) = sweeper.join().unwrap();
        (runs, failures, outputs)
    });
    eprintln!(
        "[{label}] {} processes × {per_process} operations in {:?}, {sweeps} sweeps",
        2 * processes,
        started.elapsed()
    );

    for (i, output) in outputs.iter().enumerate() {
        assert_clean(label, &format!("loop {i}"), output);
    }
    assert!(sweep_failures.is_empty(), "[{label}] sweeps failed: {sweep_failures:?}");
    assert!(sweeps >= 2, "[{label}] the sweeper ran {sweeps} times");

    let (credited, used) = check_books(sandbox);
    let n = (processes * per_process) as i64;
    assert_eq!(credited, INITIAL_MICROS + n * STEP_MICROS, "[{label}] every top-up landed exactly once");
    assert_eq!(used, n * STEP_MICROS, "[{label}] every charge landed exactly once");
    let balance = sandbox.json(&["balance", "wallet"]);
    assert_eq!(balance["remaining"], "100.000000", "[{label}] +n×0.01 −n×0.01");
    assert_eq!(sandbox.json(&["keys", "show", "old"])["is_active"], false, "[{label}] the sweep did its work");
}

#[test]
fn concurrent_topups_usage_and_sweeps_on_one_sqlite_file() {
    concurrent_burst(&Sandbox::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_topups_usage_and_sweeps_on_postgres() {
    let Some(sandbox) = Sandbox::postgres().await else {
        eprintln!("skipped: KEYTOP_TEST_POSTGRES is not set");
        return;
    };
    tokio::task::spawn_blocking(move || concurrent_burst(&sandbox)).await.unwrap();
}

/// What one worker of the crash burst did.
#[derive(Default)]
struct Tally {
    /// Notes / request ids of operations that reported success.
    succeeded: Vec<String>,
    /// Operations killed before they reported (applied or not: either is fine, half is not).
    killed: Vec<String>,
    /// Operations that failed on their own (exit status without a signal).
    failed: Vec<String>,
}

/// Runs `operations` of one kind, one process each; about half of them are SIGKILLed at a
/// random moment within `max_kill` of their start (some before they touch the database, some
/// mid-transaction, some after they committed).
fn crash_worker(
    sandbox: &Sandbox,
    worker: usize,
    topups: bool,
    operations: usize,
    max_kill: Duration,
    kills: &AtomicUsize,
) -> Tally {
    use std::os::unix::process::ExitStatusExt;
    let mut rng = rand::thread_rng();
    let mut tally = Tally::default();
    for i in 0..operations {
        let tag = format!("{}{worker}-{i}", if topups { "t" } else { "u" });
        let args: Vec<&str> = if topups {
            vec!["topup", "wallet", "0.01", "--note", &tag]
        } else {
            vec!["usage", "record", "wallet", "--tokens", "10", "--cost", "0.01", "--request-id", &tag]
        };
        let mut child = sandbox.command(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        // Half of the processes are left alone, the others killed at a random moment.
        let kill_after = if rng.gen_bool(0.5) { Duration::MAX } else { max_kill.mul_f64(rng.gen_range(0.0..1.0)) };
        let deadline = Instant::now().checked_add(kill_after);
        let mut killed = false;
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                let _ = child.kill(); // SIGKILL
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let output = child.wait_with_output().unwrap();
        if output.status.signal() == Some(9) {
            kills.fetch_add(1, Ordering::Relaxed);
            tally.killed.push(tag);
        } else if output.status.success() {
            tally.succeeded.push(tag);
        } else {
            let _ = killed;
            tally.failed.push(format!("{tag}: {}", String::from_utf8_lossy(&output.stderr)));
        }
    }
    tally
}

fn crash_burst(sandbox: &Sandbox) {
    let label = sandbox.label;
    let (processes, per_process) = size();
    let processes = processes.min(4);
    sandbox.with_prepaid_key("100");
    // Kill moments spread over a whole process life: from exec to well after a typical exit.
    let timed = Instant::now();
    for i in 0..3 {
        sandbox.ok(&["topup", "wallet", "0.01", "--note", &format!("warm-{i}")]);
    }
    // The 2 × processes workers share the machine: a process under load lives several times longer.
    let max_kill = (timed.elapsed() / 3 * processes as u32).max(Duration::from_millis(50));
    let initial = INITIAL_MICROS + 3 * STEP_MICROS;
    let kills = AtomicUsize::new(0);
    let tallies: Vec<(bool, Tally)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..processes)
            .flat_map(|p| [(p, true), (p, false)])
            .map(|(p, topups)| {
                let kills = &kills;
                scope.spawn(move || (topups, crash_worker(sandbox, p, topups, per_process, max_kill, kills)))
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    let kills = kills.load(Ordering::Relaxed);
    let succeeded: usize = tallies.iter().map(|(_, t)| t.succeeded.len()).sum();
    eprintln!("[{label}] crash burst: {kills} processes killed, {succeeded} finished (kills within {max_kill:?})");
    assert!(kills >= 4, "[{label}] the test must actually kill processes ({kills} killed)");
    assert!(succeeded >= 4, "[{label}] some operations must finish too ({succeeded} finished)");
    for (_, tally) in &tallies {
        assert!(tally.failed.is_empty(), "[{label}] operations failed without being killed: {:?}", tally.failed);
    }

    // "Restart": a fresh process opens the database (SQLite recovers its WAL, PostgreSQL has
    // rolled back the transactions of the dead connections) and migrations re-run cleanly.
    assert!(sandbox.ok(&["migrate"]).contains("schema version"), "[{label}] migrate after the crashes");
    let (credited, used) = check_books(sandbox);

    let key = key_id_sql();
    let notes = sandbox.sql(&format!("SELECT note FROM balance_ledger WHERE api_key_id = {key} AND note LIKE 't%-%'"));
    let request_ids = sandbox.sql(&format!("SELECT request_id FROM usage WHERE api_key_id = {key}"));
    for (topups, tally) in &tallies {
        let stored = if *topups { &notes } else { &request_ids };
        for tag in &tally.succeeded {
            assert_eq!(
                stored.iter().filter(|s| *s == tag).count(),
                1,
                "[{label}] {tag} succeeded: stored exactly once"
            );
        }
        for tag in &tally.killed {
            assert!(stored.iter().filter(|s| *s == tag).count() <= 1, "[{label}] killed {tag} stored at most once");
        }
    }
    // Nothing but what was attempted was stored.
    let attempted = |topups: bool| -> usize {
        tallies.iter().filter(|(t, _)| *t == topups).map(|(_, t)| t.succeeded.len() + t.killed.len()).sum()
    };
    assert!(notes.len() <= attempted(true) && request_ids.len() <= attempted(false), "[{label}] no phantom rows");

    let topped_up = notes.len() as i64 * STEP_MICROS;
    let charged = request_ids.len() as i64 * STEP_MICROS;
    assert_eq!(credited, initial + topped_up, "[{label}] credited = initial + Σ top-ups");
    assert_eq!(used, charged, "[{label}] used = Σ charges");
    let remaining = sandbox.json(&["balance", "wallet"])["remaining"].as_str().unwrap().to_string();
    let expected = initial + topped_up - charged;
    let expected = format!("{}.{:06}", expected / 1_000_000, expected % 1_000_000);
    assert_eq!(remaining, expected, "[{label}] remaining = initial + Σ ledger − Σ charges after restart");

    // Everything still works after the crashes.
    sandbox.ok(&["topup", "wallet", "1", "--note", "after"]);
    sandbox.ok(&["usage", "record", "wallet", "--tokens", "1", "--cost", "1", "--request-id", "after"]);
    check_books(sandbox);
}

#[cfg(unix)]
#[test]
fn sigkill_in_a_burst_leaves_no_half_written_operation_on_sqlite() {
    crash_burst(&Sandbox::sqlite());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_in_a_burst_leaves_no_half_written_operation_on_postgres() {
    let Some(sandbox) = Sandbox::postgres().await else {
        eprintln!("skipped: KEYTOP_TEST_POSTGRES is not set");
        return;
    };
    tokio::task::spawn_blocking(move || crash_burst(&sandbox)).await.unwrap();
}

/// A first `migrate` killed at random moments on a fresh database; the next one completes and a
/// later one finds nothing to do.
fn killed_migrations(sandbox: &Sandbox) {
    let label = sandbox.label;
    let mut rng = rand::thread_rng();
    for _ in 0..6 {
        let mut child = sandbox.command(&["migrate"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..60)));
        let _ = child.kill();
        let _ = child.wait();
    }
    let first = sandbox.ok(&["migrate"]);
    let second = sandbox.ok(&["migrate"]);
    assert!(first.contains("schema version") && first == second, "[{label}] {first:?} then {second:?}");
    sandbox.with_prepaid_key("1");
    assert_eq!(sandbox.json(&["balance", "wallet"])["remaining"], "1.000000", "[{label}]");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn migrations_killed_midway_rerun_cleanly() {
    let sandboxes = Sandbox::all().await;
    tokio::task::spawn_blocking(move || {
        for sandbox in sandboxes.iter() {
            killed_migrations(sandbox);
        }
    })
    .await
    .unwrap();
}

/// Prepaid keys whose daily refill is three days overdue, then four `keytop sweep` processes
/// started at once: every key is refilled exactly once, for today, and the four reports add up
/// to one refill per key.
fn refills_race(sandbox: &Sandbox) {
    let label = sandbox.label;
    const KEYS: usize = 12;
    sandbox.ok(&["users", "add", "alice"]);
    for i in 0..KEYS {
        let name = format!("refill-{i}");
        sandbox.ok(&["keys", "create", "--user", "alice", "--name", &name, "--standalone", "--balance", "1"]);
        sandbox.ok(&["keys", "update", &name, "--refill", "2", "--refill-period", "day"]);
    }
    let three_days_ago = if sandbox.is_postgres() {
        "UPDATE api_keys SET refill_last_period_start = refill_last_period_start - interval '3 days'"
    } else {
        "UPDATE api_keys SET refill_last_period_start = refill_last_period_start - 3 * 86400000"
    };
    sandbox.sql(three_days_ago);

    let outputs: Vec<_> = std::thread::scope(|scope| {
        let sweeps: Vec<_> = (0..4)
            .map(|_| {
                let child = sandbox.command(&["--json", "sweep"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
                scope.spawn(move || child.unwrap().wait_with_output().unwrap())
            })
            .collect();
        sweeps.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    let mut refilled = 0;
    for (i, output) in outputs.iter().enumerate() {
        assert_clean(label, &format!("sweep {i}"), output);
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        refilled += report["refilled"].as_u64().unwrap();
    }
    assert_eq!(refilled, KEYS as u64, "[{label}] the four sweeps refilled each key once between them");
    let refill_rows = sandbox.sql_i64("SELECT COUNT(*) FROM balance_ledger WHERE note LIKE 'refill (day %)'");
    assert_eq!(refill_rows, KEYS as i64, "[{label}] one refill ledger row per key");
    let audits = sandbox.sql_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'refill'");
    assert_eq!(audits, KEYS as i64, "[{label}] one audit row per refill");
    let credited = sandbox.sql_i64("SELECT CAST(SUM(credited_micros) AS BIGINT) FROM api_keys");
    assert_eq!(credited, KEYS as i64 * 3_000_000, "[{label}] $1 initial + $2 refilled, once, per key");
    let again = sandbox.json(&["sweep"]);
    assert_eq!(again["refilled"], 0, "[{label}] a later sweep of the same day finds nothing due");
}

#[tokio::test(flavor = "multi_thread")]
async fn four_sweeps_at_one_boundary_refill_each_key_once() {
    let sandboxes = Sandbox::all().await;
    tokio::task::spawn_blocking(move || {
        for sandbox in sandboxes.iter() {
            refills_race(sandbox);
        }
    })
    .await
    .unwrap();
}
