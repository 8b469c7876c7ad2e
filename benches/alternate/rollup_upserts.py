#!/usr/bin/env python3
"""One bulk-load chunk's rollup writes, timed straight in SQLite: about 100,000 usage rows'
worth of key days (random existing keys, 29 recent days) and their owners' days, upserted the
way src/store/sqlite/bulk.rs writes them, in one transaction that is rolled back, with
SQLite's default page cache (2 MB) and with 64 MiB.

    pip install pysqlite3-binary   # SQLite 3.51, as keytop bundles
    benches/alternate/rollup_upserts.py DATABASE...

Each DATABASE is a full-scale database the bench built (KEYTOP_BENCH_SQLITE_DB). It handles
the schema of migration 0021 (separate per-key and owners' rollups) and the one-table schema
tried as 0022 (`usage_days`, reverted; BENCHMARKS.md)."""
import random
import sys
import time

import pysqlite3 as sqlite3

RANK = "(CASE WHEN {c} > 0 THEN length({c}) * 10 + CAST(substr({c}, 1, 1) AS INTEGER) ELSE 0 END)"
ADD = (
    "requests = requests + excluded.requests, tokens = tokens + excluded.tokens, "
    "cost_micros = cost_micros + excluded.cost_micros, response_ms_sum = response_ms_sum + excluded.response_ms_sum, "
    "timed_requests = timed_requests + excluded.timed_requests, "
    "last_used_at = MAX(COALESCE(last_used_at, excluded.last_used_at), excluded.last_used_at), cost_rank = "
    + RANK.format(c="(cost_micros + excluded.cost_micros)")
)
SUMS = (1, 100, 1500, 300, 1, 1765000000000, 41)
COLUMNS = "requests, tokens, cost_micros, response_ms_sum, timed_requests, last_used_at, cost_rank"


def upserts(path, cache_kib, usage_rows=100_000):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA cache_size = -{cache_kib}")
    random.seed(7)
    keys = conn.execute("SELECT id, user_id FROM api_keys ORDER BY random() LIMIT ?", (usage_rows // 5,)).fetchall()
    days = [f"2026-12-{d:02d}" for d in range(1, 9)] + [f"2026-11-{d:02d}" for d in range(10, 31)]
    key_days = {(owner, random.choice(days), key) for key, owner in (random.choice(keys) for _ in range(usage_rows))}
    owner_days = {(owner, day) for owner, day, _ in key_days}
    one_table = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'usage_days'").fetchone() is not None
    conn.execute("BEGIN")
    started = time.perf_counter()
    if one_table:
        rows = sorted([row + SUMS for row in key_days] + [(owner, day, "") + SUMS for owner, day in owner_days])
        conn.executemany(
            f"INSERT INTO usage_days (user_id, day, api_key_id, {COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) "
            f"ON CONFLICT (user_id, day, api_key_id) DO UPDATE SET {ADD}", rows)
    else:
        conn.executemany(
            f"INSERT INTO usage_daily (api_key_id, day, {COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
            f"ON CONFLICT (api_key_id, day) DO UPDATE SET {ADD}",
            sorted((key, day) + SUMS for _, day, key in key_days))
        conn.executemany(
            f"INSERT INTO usage_daily_user (user_id, day, {COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
            f"ON CONFLICT (user_id, day) DO UPDATE SET {ADD}",
            sorted(row + SUMS for row in owner_days))
    elapsed = time.perf_counter() - started
    conn.execute("ROLLBACK")
    return elapsed, len(key_days), len(owner_days)


def main():
    for cache_kib in (2_000, 65_536):
        for path in sys.argv[1:]:
            elapsed, keys, owners = upserts(path, cache_kib)
            print(f"{path}: page cache {cache_kib} KiB: {elapsed:.2f} s for {keys} key days and {owners} owner days")


if __name__ == "__main__":
    main()
