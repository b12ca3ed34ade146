#!/bin/sh
# stress.sh [BUILD_DIR] - the long versions of the hardening tests (docs/hardening.md): the same
# programs ctest runs in seconds, with their long-mode environment. Override any figure from the
# environment (e.g. FERRY_SOAK_MESSAGES=1000000 make stress). Stops at the first failure.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
t="$build/tests"
for p in test_harden_stream test_harden_fork test_harden_access test_harden_soak test_harden_chaos \
    test_harden_shmhostile; do
    [ -x "$t/$p" ] || { echo "stress: $t/$p not built (make build BUILD=$build)"; exit 1; }
done
export FERRY_TEST_TMP="${FERRY_TEST_TMP:-$top/$build/tests/tmp}"
mkdir -p "$FERRY_TEST_TMP"
run() {
    echo "stress: $*"
    start=$(date +%s)
    env "$@"
    echo "stress: ok in $(( $(date +%s) - start )) s"
}
# Hostile stream peer: 20 000 connect-and-drop clients per transport (tcp TIME_WAIT bounds more), a slowloris over the whole handshake.
run FERRY_HARDEN_DROP_CLIENTS="${FERRY_HARDEN_DROP_CLIENTS:-20000}" \
    FERRY_HARDEN_SLOWLORIS_BYTES="${FERRY_HARDEN_SLOWLORIS_BYTES:-1000}" \
    FERRY_HARDEN_DEADLINE=0 "$t/test_harden_stream"
run FERRY_FORK_ROUNDS="${FERRY_FORK_ROUNDS:-300}" "$t/test_harden_fork"
run "$t/test_harden_access"
# Crash chaos: 1000 kills per transport, detection <= 100 ms asserted on ipc and shm.
run FERRY_CHAOS_ROUNDS="${FERRY_CHAOS_ROUNDS:-1000}" "$t/test_harden_chaos"
# Soak: 10^8 messages per transport and pattern.
run FERRY_SOAK_MESSAGES="${FERRY_SOAK_MESSAGES:-100000000}" "$t/test_harden_soak"
# Hostile shm peer: 10 s of scribbling over its link segments while the victim serves a good peer.
run FERRY_HOSTILE_SHM_MS="${FERRY_HOSTILE_SHM_MS:-10000}" "$t/test_harden_shmhostile"
# The shm scribbler and SIGKILL rounds that live with the shm and ring tests.
if [ -x "$t/test_ring_hostile" ]; then
    run FERRY_HOSTILE_MS="${FERRY_HOSTILE_MS:-10000}" "$t/test_ring_hostile"
fi
if [ -x "$t/test_shm_socket" ]; then
    run FERRY_SHM_KILL_ROUNDS="${FERRY_SHM_KILL_ROUNDS:-1000}" "$t/test_shm_socket"
fi
echo "stress: all passed"
