#!/bin/sh
# Runs scale benches in turn, round after round, each on its own kept SQLite database, and
# appends each run's record_usage row to OUT:
#   benches/alternate/run.sh ROUNDS OUT NAME:EXECUTABLE:DATABASE...
# EXECUTABLE is a bench built with `cargo build --release --bench scale` (copied from
# target/release/deps/scale-*); DATABASE is filled by its first run and reused after (see
# KEYTOP_BENCH_SQLITE_DB in benches/scale.rs). KEYTOP_BENCH_SETTLE_WAL=1 in the environment
# passes on to the benches. Then: benches/alternate/compare.py OUT [BASE].
set -eu
rounds=$1
out=$2
shift 2
export KEYTOP_BENCH_SCALE="${KEYTOP_BENCH_SCALE:-full}" KEYTOP_BENCH_BACKENDS=sqlite KEYTOP_BENCH_ONLY=writes
log=$(mktemp)
trap 'rm -f "$log"' EXIT
round=1
while [ "$round" -le "$rounds" ]; do
    for spec in "$@"; do
        name=${spec%%:*}
        rest=${spec#*:}
        executable=${rest%%:*}
        database=${rest#*:}
        KEYTOP_BENCH_SQLITE_DB="$database" "$executable" --bench >"$log" 2>&1
        echo "$name $round $(grep -m1 '^| record_usage' "$log")" >>"$out"
    done
    round=$((round + 1))
done
