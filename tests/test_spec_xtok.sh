#!/bin/sh
# Cross-tokenizer drafting with a permuted vocabulary: the shipped draft
# re-exported with its token ids permuted (`specdec permute-vocab`, written
# to a temporary directory) drafts for the shipped target through
# draft-xtok; greedy ids equal plain decoding's, accepted > 0, and the
# counts equal the original draft's through the same path (see
# tests/test_spec_xtok.c). Also the CLI: `generate --spec draft` refuses the
# pair and names draft-xtok; `--spec draft-xtok` gives plain decoding's ids.
set -u
BUILD=${BUILD:-build}
BIN=${BIN:-bin/specdec}
MODELS=${SPECDEC_MODEL_DIR:-../shared/models}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0
if ! "$BIN" permute-vocab "$MODELS/kernel-c-draft.gguf" "$tmp/perm.gguf" --seed 5 2> "$tmp/err"; then
    echo "FAIL permute-vocab: $(cat "$tmp/err")"
    exit 1
fi
SPECDEC_XTOK_DRAFT="$tmp/perm.gguf" "$BUILD/tests/test_spec_xtok" || fails=$((fails+1))

p="static int btrfs_check_leaf(struct extent_buffer *leaf)"
if "$BIN" generate --spec draft -md "$tmp/perm.gguf" -p "$p" -n 4 --temp 0 -t 2 > /dev/null 2> "$tmp/err"; then
    echo "FAIL --spec draft accepted a permuted vocabulary"; fails=$((fails+1))
elif grep -q "draft-xtok" "$tmp/err"; then
    echo "ok   --spec draft refuses the pair: $(head -n 1 "$tmp/err")"
else
    echo "FAIL --spec draft error does not name draft-xtok: $(head -n 1 "$tmp/err")"; fails=$((fails+1))
fi
"$BIN" generate -p "$p" -n 48 --temp 0 -t 2 --json > "$tmp/a.json" 2>/dev/null
"$BIN" generate --spec draft-xtok -md "$tmp/perm.gguf" --draft-max 4 -p "$p" -n 48 --temp 0 -t 2 --json \
    > "$tmp/b.json" 2>/dev/null
if python3 - "$tmp/a.json" "$tmp/b.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert len(a["ids"]) == 48 and a["ids"] == b["ids"], (a["ids"], b["ids"])
assert b["spec"]["method"] == "draft-xtok" and b["spec"]["accepted"] > 0, b["spec"]
PY
then echo "ok   generate --spec draft-xtok (permuted draft): plain decoding's ids, drafts accepted"
else echo "FAIL generate --spec draft-xtok"; fails=$((fails+1)); fi
[ $fails -eq 0 ]
