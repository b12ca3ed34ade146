#!/bin/sh
# run-fuzz.sh BUILD_DIR SECONDS - runs every libFuzzer target for SECONDS on a scratch copy of its
# seed corpus (fuzz/corpus/<name>/), all targets at the same time (one process each: the CI
# machine has 2 cores, so 3 targets for 30 s take 30 s of wall time instead of 90), fails if any
# target crashes, and prints each target's execution count. FUZZ_PARALLEL=0 runs them one by one.
set -eu
build=$1
secs=${2:-30}
top=$(cd "$(dirname "$0")/.." && pwd)
parallel=${FUZZ_PARALLEL:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

start_one() { # name bin
    mkdir -p "$work/$1"
    seeds="$top/fuzz/corpus/${1#fuzz_}"
    [ -d "$seeds" ] && cp -r "$seeds"/. "$work/$1"/
    (
        if "$2" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$build/$1-" \
            "$work/$1" >"$build/$1.log" 2>&1; then
            echo 0 >"$work/$1.rc"
        else
            echo 1 >"$work/$1.rc"
        fi
    ) &
    [ "$parallel" = 1 ] || wait
}

names=""
for bin in "$build"/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    names="$names $name"
    start_one "$name" "$bin"
done
wait

status=0
for name in $names; do
    log="$build/$name.log"
    if [ "$(cat "$work/$name.rc")" = 0 ]; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        echo "fuzz: $name ok, $execs executions in ${secs}s"
    else
        echo "fuzz: $name FAILED (log: $log)"
        tail -40 "$log"
        status=1
    fi
done
exit $status
