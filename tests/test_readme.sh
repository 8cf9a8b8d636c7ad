#!/bin/sh
# test_readme.sh - every shell block of README.md runs: each ```sh block is
# executed as one script (bin/specdec -> $BIN, port 8080 -> a free port),
# must exit 0 within 300 s and print something. Lines that start with
# `make` are left out (make run / make test are what CI itself runs; make
# bench-models takes minutes). Blocks that use bench-models/ run only when
# those files exist (make bench-models), else they are named skips.
. "$(dirname "$0")/util/check.sh"
readme=$(dirname "$0")/../README.md
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 18089)
awk -v dir="$tmp" '
    /^```sh[ \t]*$/ { n++; f = sprintf("%s/block%02d.sh", dir, n); inb = 1; next }
    /^```/ { inb = 0; next }
    inb { print > f }
' "$readme"
n=0
for f in "$tmp"/block*.sh; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    first=$(grep -v '^make\b' "$f" | head -n 1)
    if grep -q 'bench-models/' "$f" && [ ! -d bench-models ]; then skip "README block $n ($first): needs make bench-models"; continue; fi
    if ! grep -qv '^make\b' "$f"; then ok "README block $n: only make commands (run by CI)"; continue; fi
    { echo "set -e"; grep -v '^make\b' "$f" | sed -e "s|bin/specdec|$BIN|g" -e "s|8080|$port|g"; } > "$f.run"
    if timeout 300 sh "$f.run" > "$f.out" 2> "$f.err" && [ -s "$f.out" ]; then
        ok "README block $n ($first): exit 0, $(wc -l < "$f.out") lines"
    else
        bad "README block $n ($first): $(tail -n 3 "$f.err")"
    fi
done
[ $n -ge 5 ] && ok "$n shell blocks found" || bad "only $n shell blocks found in README.md"
report test_readme
