#!/bin/sh
# run-fuzz.sh BUILD_DIR SECONDS - runs every libFuzzer target for SECONDS on a scratch copy of its
# seed corpus (fuzz/corpus/<name>/), fails on the first crash, and prints the execution counts.
set -eu
build=$1
secs=${2:-30}
top=$(cd "$(dirname "$0")/.." && pwd)
status=0
for bin in "$build"/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    seeds="$top/fuzz/corpus/${name#fuzz_}"
    work=$(mktemp -d)
    [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
    log="$build/$name.log"
    if "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$build/$name-" \
        "$work" >"$log" 2>&1; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        echo "fuzz: $name ok, $execs executions in ${secs}s"
    else
        echo "fuzz: $name FAILED (log: $log)"
        tail -40 "$log"
        status=1
    fi
    rm -rf "$work"
done
exit $status
