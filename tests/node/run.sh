#!/bin/sh
# Runs sdk_test.mjs (the official OpenAI Node SDK, v4) against a fresh
# server; exit 77 when node or the openai package is not installed
# (`npm install` in tests/node, done by .ci/run).
dir=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-bin/specdec}
command -v node >/dev/null 2>&1 || { echo "node missing"; exit 77; }
[ -d "$dir/node_modules/openai" ] || { echo "tests/node/node_modules/openai missing (npm install in tests/node)"; exit 77; }
tmp=$(mktemp -d)
"$BIN" serve --port 0 --port-file "$tmp/port" --parallel 2 -t 1 --chat-template chatml --api-key node-key \
    > "$tmp/log" 2>&1 &
pid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
if [ ! -s "$tmp/port" ]; then cat "$tmp/log"; kill $pid; exit 1; fi
PORT=$(cat "$tmp/port") API_KEY=node-key node "$dir/sdk_test.mjs"
rc=$?
kill -TERM $pid
wait $pid
src=$?
[ $rc -ne 0 ] && tail -20 "$tmp/log"
rm -rf "$tmp"
[ $rc -eq 0 ] && [ $src -eq 0 ] || exit 1
exit 0
