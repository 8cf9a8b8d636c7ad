#!/bin/sh
# test_permute_vocab.sh - `specdec permute-vocab`: the shipped draft re-exported
# with its token ids permuted computes the same function over texts:
# tokenizing gives the original ids mapped through the permutation, and
# greedy generation gives the permutation of the original's ids (3 prompts).
# Also: the same seed gives the same file, and bad usage fails cleanly.
set -u
. "$(dirname "$0")/util/check.sh"
MODELS=${SPECDEC_MODEL_DIR:-$SHARED/models}
draft="$MODELS/kernel-c-draft.gguf"

if "$BIN" permute-vocab "$draft" "$tmp/p.gguf" --seed 11 --map "$tmp/p.map" 2> "$tmp/err"; then
    ok "permute-vocab writes the permuted draft"
else
    bad "permute-vocab failed: $(cat "$tmp/err")"
fi
"$BIN" permute-vocab "$draft" "$tmp/p2.gguf" --seed 11 2>/dev/null
cmp -s "$tmp/p.gguf" "$tmp/p2.gguf" && ok "same seed, same file" || bad "same seed gives different files"
"$BIN" permute-vocab "$draft" "$tmp/p3.gguf" --seed 12 2>/dev/null
cmp -s "$tmp/p.gguf" "$tmp/p3.gguf" && bad "different seeds give the same file" || ok "different seeds differ"
# Every id moves to a distinct id (a permutation), and most ids move.
python3 - "$tmp/p.map" <<'PY' && ok "map is a permutation of 8192 ids" || bad "map is not a permutation"
import sys
m = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
assert [a for a, _ in m] == list(range(8192))
assert sorted(b for _, b in m) == list(range(8192))
# measured: all 8192 move (seed 11); a uniform permutation fixes more than
# 10 ids with probability 1e-8 (Poisson(1) tail); the floor was 8000
assert sum(a != b for a, b in m) >= 8192 - 10
PY

n=0
for prompt in "static int btrfs_init_fs_info(struct btrfs_fs_info *fs_info)" \
              "The filesystem keeps its metadata in B-trees; each" \
              "	if (ret < 0) {
		btrfs_err(fs_info, \"failed to read\");"; do
    n=$((n+1))
    "$BIN" generate -m "$draft" -p "$prompt" -n 24 --temp 0 -t 2 --json > "$tmp/a$n.json" 2>/dev/null
    "$BIN" generate -m "$tmp/p.gguf" -p "$prompt" -n 24 --temp 0 -t 2 --json > "$tmp/b$n.json" 2>/dev/null
    python3 - "$tmp/p.map" "$tmp/a$n.json" "$tmp/b$n.json" <<'PY' && ok "prompt $n: permuted prompt ids and greedy ids = permutation of the original's" || bad "prompt $n: permuted model differs"
import json, sys
perm = dict(tuple(map(int, l.split())) for l in open(sys.argv[1]))
a = json.load(open(sys.argv[2])); b = json.load(open(sys.argv[3]))
assert len(a["ids"]) > 0 and len(a["prompt_ids"]) > 1
assert [perm[i] for i in a["prompt_ids"]] == b["prompt_ids"], (a["prompt_ids"], b["prompt_ids"])
assert [perm[i] for i in a["ids"]] == b["ids"], (a["ids"], b["ids"])
assert a["text"] == b["text"]
assert a["prompt_ids"] != b["prompt_ids"]
PY
done
# tokenize (no generation): byte-fallback text too
printf 'caf\303\251 \342\202\254 \001\002 tab\there' > "$tmp/t.txt"
"$BIN" tokenize -m "$draft" -f "$tmp/t.txt" > "$tmp/ta" 2>/dev/null
"$BIN" tokenize -m "$tmp/p.gguf" -f "$tmp/t.txt" > "$tmp/tb" 2>/dev/null
python3 - "$tmp/p.map" "$tmp/ta" "$tmp/tb" <<'PY' && ok "tokenize (byte fallback, BOS) maps through the permutation" || bad "tokenize differs"
import json, sys
perm = dict(tuple(map(int, l.split())) for l in open(sys.argv[1]))
a = json.load(open(sys.argv[2])); b = json.load(open(sys.argv[3]))
assert len(a) > 5 and [perm[i] for i in a] == b, (a, b)
PY

# bad usage
expect_usage_error "no seed" "$BIN" permute-vocab "$draft" "$tmp/x.gguf"
expect_usage_error "missing input" "$BIN" permute-vocab /nonexistent.gguf "$tmp/x.gguf" --seed 1
expect_usage_error "unwritable output" "$BIN" permute-vocab "$draft" /nonexistent-dir/x.gguf --seed 1
expect_usage_error "no vocabulary" "$BIN" permute-vocab "$MODELS/kernel-c-target-heads.gguf" "$tmp/x.gguf" --seed 1
[ ! -e /nonexistent-dir/x.gguf ] && [ ! -e "$tmp/x.gguf" ] && ok "no output file after errors" || bad "output left behind"

report test_permute_vocab
