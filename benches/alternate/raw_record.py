#!/usr/bin/env python3
"""The usage record's statement and the floor's insert, straight into SQLite, without keytop's
process around them: how much of record_usage's ratio to its floor is the database's work.

    pip install pysqlite3-binary   # SQLite 3.51, as keytop bundles; the system's may be older
    benches/alternate/raw_record.py ROUNDS DATABASE...

Each DATABASE is a copy of a kept bench database (KEYTOP_BENCH_SQLITE_DB, checkpointed first:
`PRAGMA wal_checkpoint(TRUNCATE)`), at whatever schema it holds. Each gets a fresh owner with 64
fresh prepaid keys, as the bench's; then, round after round and database after database, three
runs of 1,000 usage records (src/store/sqlite/usage.rs's statement) alternate with three runs of
1,000 floor inserts, each in its own transaction. Printed: each round's ratio (floor time over
record time, as the bench's throughput ratio), then each database's median and its change
against the first's, by the medians and by the paired rounds. SETTLE=1 empties the write-ahead
log before each run, as KEYTOP_BENCH_SETTLE_WAL=1 does in the bench."""
import os
import statistics
import sys
import time
import uuid

import pysqlite3 as sqlite3

RECORD = """INSERT INTO usage_records (request_id, api_key_id, user_id, is_standalone, provider, model, api_format,
 total_tokens, cost_micros, response_time_ms, created_at, day, last_use_stale_before, key_last_used_at, key_rowid)
 SELECT ?1, ?2, user_id, is_standalone, NULL, 'gpt-4o', NULL, 1000, 1500, 300, ?3, ?4, ?5, last_used_at, rowid
 FROM api_keys WHERE id = ?2 AND NOT EXISTS (SELECT 1 FROM usage WHERE request_id = ?1) RETURNING is_standalone"""
FLOOR = """INSERT INTO usage (request_id, api_key_id, model, total_tokens, cost_micros, response_time_ms, created_at)
 VALUES (?, ?, 'gpt-4o', 1000, 1500, 300, ?)"""
KEYS = 64
RUN = 1_000


def connect(path):
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def fresh_keys(conn):
    """A new owner and its prepaid keys, each a copy of the newest key with new ids."""
    owner = str(uuid.uuid4())
    conn.execute("INSERT INTO users (id, name, is_active, created_at) VALUES (?, ?, 1, 0)", (owner, f"raw-{owner[:8]}"))
    conn.execute("BEGIN")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS model AS SELECT * FROM api_keys WHERE 0")
    ids = []
    for _ in range(KEYS):
        key = str(uuid.uuid4())
        conn.execute("DELETE FROM temp.model")
        conn.execute("INSERT INTO temp.model SELECT * FROM api_keys WHERE rowid = (SELECT MAX(rowid) FROM api_keys)")
        conn.execute(
            "UPDATE temp.model SET id = ?, user_id = ?, key_hash = ?, previous_key_hash = NULL, is_standalone = 1, "
            "credited_micros = 1000000000000, used_micros = 0, is_active = 1, last_used_at = NULL, budget_micros = NULL",
            (key, owner, f"raw-{key}"),
        )
        conn.execute("INSERT INTO api_keys SELECT * FROM temp.model")
        ids.append(key)
    conn.execute("COMMIT")
    return ids


def timed(conn, statement, rows):
    started = time.perf_counter()
    for row in rows:
        conn.execute(statement, row).fetchall()
    return time.perf_counter() - started


def main():
    rounds, paths = int(sys.argv[1]), sys.argv[2:]
    settle = os.environ.get("SETTLE") == "1"
    conns = {path: connect(path) for path in paths}
    keys = {path: fresh_keys(conns[path]) for path in paths}
    ratios = {path: [] for path in paths}
    for round_number in range(1, rounds + 1):
        for path in paths:
            conn, run = conns[path], uuid.uuid4().hex[:8]
            now = int(time.time() * 1000)
            day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))
            records, floors = [], []
            for repeat in range(3):
                tag = f"{run}-{repeat}"
                if settle:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                records.append(timed(conn, RECORD, [
                    (f"raw-k-{tag}-{i}", keys[path][i % KEYS], now, day, now - 60_000) for i in range(RUN)
                ]))
                if settle:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                floors.append(timed(conn, FLOOR, [(f"raw-f-{tag}-{i}", keys[path][i % KEYS], now) for i in range(RUN)]))
            ratio = statistics.median(floors) / statistics.median(records)
            ratios[path].append(ratio)
            print(f"{path} {round_number} {ratio:.3f} (record {RUN / statistics.median(records):.0f}/s, "
                  f"floor {RUN / statistics.median(floors):.0f}/s)", flush=True)
    base = paths[0]
    for path in paths:
        median = statistics.median(ratios[path])
        pairs = [ours / theirs - 1 for theirs, ours in zip(ratios[base], ratios[path])]
        print(f"{path}: median {median:.3f}; against {base}: medians {median / statistics.median(ratios[base]) - 1:+.1%}, "
              f"paired rounds median {statistics.median(pairs):+.1%}")


if __name__ == "__main__":
    main()
