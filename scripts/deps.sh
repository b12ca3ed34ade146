#!/bin/sh
# deps.sh [build|test|bench] - makes sure the Debian packages a target needs are installed.
# As root it installs what is missing with apt-get; otherwise it prints the command to run and fails
# only when a package the target cannot work without is missing.
set -eu
what=${1:-build}

required="cmake gcc make pkg-config"
optional="libnuma-dev"
case "$what" in
build) ;;
test)
    # Interop tests talk to the real libzmq (C and pyzmq); fuzz smoke tests need clang's libFuzzer.
    required="$required libzmq3-dev python3-zmq clang libclang-rt-14-dev"
    # msgpack-c: the examples/zerocopy_msgpack.c example (not built without it).
    optional="$optional libnng-dev libmsgpack-dev"
    ;;
bench)
    # Peers are dlopen'ed when present; gnuplot draws bench.png.
    optional="$optional libzmq3-dev libnng-dev gnuplot-nox"
    ;;
*)
    echo "usage: $0 build|test|bench" >&2
    exit 2
    ;;
esac

missing() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s ' "$p"
    done
}

need=$(missing $required)
want=$(missing $optional)
[ -z "$need$want" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing $need$want" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends $need $want >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends $need || exit 1
        # Optional packages are best effort: the build adapts when they are absent.
        for p in $want; do apt-get install -y -q --no-install-recommends "$p" >/dev/null 2>&1 ||
            echo "deps: optional package $p unavailable; continuing without it" >&2; done
    fi
    exit 0
fi

if [ -n "$want" ]; then
    echo "deps: optional packages missing (install for full coverage): sudo apt-get install -y $want" >&2
fi
if [ -n "$need" ]; then
    echo "deps: required packages missing: sudo apt-get install -y $need" >&2
    exit 1
fi
