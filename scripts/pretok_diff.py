#!/usr/bin/env python3
"""Differential check of the BPE pre-tokenizers (src/tokenizer/tokenizer_bpe.c) against
the same regexes run by Python's `regex` module (Debian: python3-regex).

Development tool, not part of the build or the tests:
    make -j2 && python3 scripts/pretok_diff.py [N]

For every pre-tokenizer it splits N random strings (drawn from a pool of
ASCII, letters and digits of several scripts, CJK, Hangul, marks, emoji,
punctuation, Unicode whitespace, unassigned code points) both ways and
reports mismatches. As llama.cpp does before running its std::regex, non-ASCII
whitespace is replaced by U+000B first (so it never matches an explicit
character range); \s is the White_Space property.
"""
import os
import random
import regex
import subprocess
import sys
import tempfile

HARNESS = r"""
#include "vocab.h"
#include <stdio.h>
#include <stdlib.h>
/* usage: harness PRE < input (records separated by \0) -> per record: ends separated by ' ', newline */
int main(int argc, char **argv) {
    int pre = atoi(argv[1]);
    static char buf[1 << 24];
    size_t n = fread(buf, 1, sizeof buf, stdin);
    size_t s = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || buf[i] == 0) {
            if (i == n && s == n) break;
            size_t *e, ne;
            if (sd_bpe_pretokenize(pre, buf + s, i - s, &e, &ne)) return 1;
            for (size_t j = 0; j < ne; j++) printf("%zu ", e[j]);
            printf("\n");
            free(e);
            s = i + 1;
        }
    }
    return 0;
}
"""

WS = r"\t\n\x0b\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
s_ = "[" + WS + "]"; S_ = "[^" + WS + "]"
def R(p):
    p = p.replace(r"[^\s\p{L}\p{N}]", "[^" + WS + r"\p{L}\p{N}]").replace(r"\s", s_).replace(r"\S", S_)
    return regex.compile(p)
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
L3 = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
Q2 = L3.replace(r"\p{N}{1,3}", r"\p{N}")
DSL = "A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943"
# keys: the sd_bpe_pre values (src/tokenizer/vocab.h): DEFAULT GPT2 LLAMA3 QWEN2 DEEPSEEK_LLM
# DEEPSEEK_CODER FALCON STARCODER
PRES = {
 0: [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
 1: [GPT2], 2: [L3], 3: [Q2],
 4: ["[\r\n]", r"\s?[" + DSL + "]+", "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", r"\s+$", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", r"\p{N}+"],
 5: ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", r"\p{N}"],
 6: [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
 7: [r"\p{N}", GPT2],
}
NONASCII_WS = set("\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(chr(c) for c in range(0x2000, 0x200b)))
def ref_split(pre, text):
    t2 = "".join("\x0b" if c in NONASCII_WS else c for c in text)
    ends = [len(t2)] if t2 else []
    for rx in PRES[pre]:
        r = R(rx); new = []; start = 0
        for e in ends:
            pos = start
            for m in r.finditer(t2, start, e):  # pos/endpos: piece as whole string
                if m.start() > pos: new.append(m.start())
                new.append(m.end()); pos = m.end()
            if pos < e: new.append(e)
            start = e
        ends = new
    # to byte offsets
    out = []; b = 0; prev = 0
    for e in ends:
        b += len(text[prev:e].encode()); prev = e; out.append(b)
    return out
POOL = list(" \t\n\r\x0b\x0c  ") + list("abcXYZ'sStTdDmlLrReEvV0123456789!?.,;:-_()[]{}<>=+$^~|`@#%&*/\\\"") + \
  list("\xa0\x85\u3000\u2028\u2003\u00e9\u00c4\u00df\u00b5\u00bd\u00b2\u0391\u03c9\u1f7d\u0416\u0436\u05d0\u0627\u0661\u0915\u0941\u0e01\u1780\u17d2\u4e00\u4f60\u9fa6\uac00\ud55c\u3001\u3002\uff01\uff21\uff41\uff10\u2018\u201c\u2026\u00ab\u0301\u200d\ufe0f\u0378\U0001f600\U0001f680\U00010400\U0001e900\u2126\u212a\u2160\u00a9\u20ac\u2212\u0085\u1c80\u02b0")
def check(exe, pre, n):
    rnd = random.Random(pre * 1000 + 7)
    texts = []
    for i in range(n):
        L = rnd.randint(0, 24)
        texts.append("".join(rnd.choice(POOL) for _ in range(L)))
    data = b"\0".join(t.encode() for t in texts)
    r = subprocess.run([exe, str(pre)], input=data, capture_output=True, check=True)
    lines = r.stdout.decode().split("\n")
    bad = 0
    for t, l in zip(texts, lines):
        got = [int(x) for x in l.split()]
        exp = ref_split(pre, t)
        if got != exp:
            bad += 1
            if bad <= 5: print("MISMATCH", pre, repr(t), "\n  exp", exp, "\n  got", got)
    print("pre", pre, "mismatches", bad, "of", n)
    return bad


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with tempfile.TemporaryDirectory() as tmp:
        c = os.path.join(tmp, "harness.c")
        exe = os.path.join(tmp, "harness")
        open(c, "w").write(HARNESS)
        subprocess.run(["cc", "-std=c11", "-O1", "-I" + os.path.join(root, "include"), "-I" + os.path.join(root, "src"),
                        "-o", exe, c, os.path.join(root, "build", "libspecdec.a"), "-lm", "-pthread"], check=True)
        bad = sum(check(exe, pre, n) for pre in sorted(PRES))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
