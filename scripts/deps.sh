#!/bin/sh
# deps.sh PROFILE - make sure what PROFILE needs is on this machine (Debian).
#
#   build   compiler and the libraries bin/specdec links (make, make run)
#   test    build + python3 and curl (server and README tests), node, npm and the `openai` package
#           in tests/node (the OpenAI SDK test)                    (make test)
#   fuzz    build + clang and its sanitizer runtime               (make fuzz)
#   bench   build + Debian's python3-numpy (../shared/tools/widen.py)
#   ci      test + fuzz + qemu-user (kernel tests on an emulated AVX2 CPU)
#
# Missing Debian packages are installed with apt-get when this runs as root;
# otherwise it prints the one `apt-get install` line to run and exits 1.
# Nothing is downloaded when everything is present. Exit 0 when ready.
set -eu
profile=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)

# PACKAGE or PACKAGE:COMMAND - a package with a command counts as present
# when the command is on PATH (however it was installed), a library when
# dpkg has it installed.
build="gcc:gcc make:make libjansson-dev libmicrohttpd-dev"
case "$profile" in
build) pkgs="$build" ;;
test) pkgs="$build python3:python3 nodejs:node npm:npm curl:curl" ;;
fuzz) pkgs="$build clang:clang libclang-rt-14-dev" ;;
bench) pkgs="$build python3-numpy" ;;
ci) pkgs="$build python3:python3 nodejs:node npm:npm curl:curl clang:clang libclang-rt-14-dev qemu-user:qemu-x86_64" ;;
*) echo "deps.sh: unknown profile '$profile' (build, test, fuzz, bench, ci)" >&2; exit 2 ;;
esac

missing=""
have_dpkg=$(command -v dpkg-query >/dev/null 2>&1 && echo 1 || echo 0)
for e in $pkgs; do
    p=${e%%:*}
    c=${e#*:}
    if [ "$c" != "$e" ]; then
        command -v "$c" >/dev/null 2>&1 && continue
    elif [ "$have_dpkg" = 1 ]; then
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$st" = "install ok installed" ] && continue
    else
        continue # not Debian: the build says what is missing
    fi
    missing="$missing $p"
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "specdec needs these Debian packages:$missing" >&2
        echo "run:  sudo apt-get install -y$missing" >&2
        exit 1
    fi
fi

# The OpenAI Node SDK for tests/node (openai@4, from the npm registry).
case "$profile" in
test | ci)
    if [ ! -d "$here/tests/node/node_modules/openai" ]; then
        echo "== npm install (tests/node: openai@4)"
        if ! (cd "$here/tests/node" && npm install --no-audit --no-fund --loglevel=error); then
            echo "deps.sh: npm install failed: the OpenAI SDK test will be skipped (a failure under CI=true)" >&2
            [ "$profile" = ci ] && exit 1
        fi
    fi
    ;;
esac
exit 0
