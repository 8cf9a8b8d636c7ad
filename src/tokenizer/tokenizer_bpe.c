/*
 * tokenizer_bpe.c - GPT-2 style byte-level BPE (tokenizer.ggml.model =
 * "gpt2"), following llama.cpp's llm_tokenizer_bpe and unicode.cpp.
 *
 * One raw text fragment (special tokens are split off by the caller):
 *   1. decode UTF-8 into characters with class flags (unicode.h); an
 *      invalid byte is a pseudo character of its own, classed like U+FFFD
 *      (a symbol), where llama.cpp substitutes U+FFFD itself, so the
 *      pieces come out the same as llama.cpp's;
 *   2. pre-tokenize: the pre-tokenizer's regexes (by tokenizer.ggml.pre)
 *      split the text one after the other, each regex splitting every
 *      piece the previous ones left; both the matches and the text between
 *      them become pieces (llama.cpp's unicode_regex_split; Hugging Face's
 *      Split with "Isolated"). The regexes are hand-written matchers over
 *      characters with leftmost-first, backtracking regex semantics;
 *   3. every byte of a piece becomes its GPT-2 character (bytes_to_unicode)
 *      and each character one symbol. An invalid UTF-8 byte stays itself
 *      when its character is a normal token (it detokenizes back to the
 *      byte: lossless); otherwise (e.g. C0, C1, F5..FF, which many
 *      vocabularies lack or have only as user-defined text) it becomes the
 *      three bytes of U+FFFD, which is what llama.cpp does for every
 *      invalid byte. The adjacent pair with the lowest merge rank (ties:
 *      leftmost) is merged until no pair has a merge;
 *   4. each final symbol is a token (merges only produce tokens, see
 *      vocab.c); a byte whose character is not a token (some vocabularies
 *      lack a few control bytes) is dropped, as llama.cpp drops it.
 *
 * The regexes, per pre-tokenizer (\s = White_Space; explicit character
 * ranges never match non-ASCII whitespace, which llama.cpp turns into
 * U+000B before running std::regex):
 *   GPT2       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   LLAMA3     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *              ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   QWEN2      as LLAMA3 with \p{N} instead of \p{N}{1,3}
 *   DEEPSEEK_LLM   [\r\n], \s?[<cased letters>]+, \s?[!-/:-~<fullwidth punct>]+, \s+$,
 *                  [<CJK, U+0800..U+4E00, Hangul>]+, \p{N}+
 *   DEEPSEEK_CODER [\r\n], \s?\p{L}+, \s?\p{P}+, [<CJK ...>]+, \p{N}
 *   FALCON     [\p{P}$+<=>^~|`]+, GPT2, [0-9][0-9][0-9]
 *   STARCODER  \p{N}, GPT2
 *   DEFAULT    [\p{P}$+<=>^~|]+, GPT2, \p{N}+, [0-9][0-9][0-9]
 *
 * Memory: O(fragment length): per character 4 + 1 bytes and two piece
 * lists of 4 bytes, the piece ends (8 bytes each), then for the longest
 * piece the BPE work arrays (~67 bytes per byte).
 */
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- bytes_to_unicode */

size_t sd_gpt2_byte_char(unsigned char b, char dst[2]) {
    uint32_t cp;
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) {
        cp = b;
    } else { /* the 68 others in order: 0x00..0x20, 0x7F..0xA0, 0xAD */
        cp = 0x100u + (b <= 0x20 ? b : b <= 0xA0 ? 33u + (b - 0x7Fu) : 67u);
    }
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    dst[0] = (char)(0xC0 | cp >> 6);
    dst[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* ------------------------------------------------------------- characters */

/* An invalid UTF-8 byte b is the pseudo code point BAD_BYTE + b. */
#define BAD_BYTE 0x110000u

/* A decoded fragment: n characters. */
typedef struct chars {
    uint32_t *cp; /* (n) code point, or BAD_BYTE + byte       */
    uint8_t *fl;  /* (n) SD_UC_* flags                          */
    size_t n;
} chars;

/* Bytes of the text that character cp stands for. */
static size_t cp_bytes(uint32_t cp) {
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : cp <= 0x10FFFF ? 4 : 1;
}

/* Fills t (arrays of len entries, enough for any input) from text. */
static void decode(const char *text, size_t len, chars *t) {
    const unsigned char *u = (const unsigned char *)text;
    const uint8_t bad_flags = sd_unicode_flags(0xFFFD);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int l = sd_utf8_valid_len(u + i, len - i);
        uint32_t cp;
        switch (l) {
        case 1: cp = u[i]; break;
        case 2: cp = (u[i] & 0x1Fu) << 6 | (u[i + 1] & 0x3Fu); break;
        case 3: cp = (u[i] & 0x0Fu) << 12 | (u[i + 1] & 0x3Fu) << 6 | (u[i + 2] & 0x3Fu); break;
        case 4:
            cp = (u[i] & 0x07u) << 18 | (u[i + 1] & 0x3Fu) << 12 | (u[i + 2] & 0x3Fu) << 6 | (u[i + 3] & 0x3Fu);
            break;
        default: cp = BAD_BYTE + u[i]; l = 1; break;
        }
        t->cp[n] = cp;
        t->fl[n] = cp >= BAD_BYTE ? bad_flags : sd_unicode_flags(cp);
        n++;
        i += (size_t)l;
    }
    t->n = n;
}

/* ------------------------------------------------------- character classes */

typedef struct range {
    uint32_t lo, hi;
} range;

/* deepseek-llm's letter class (cased letters of many scripts), exactly as
 * in its tokenizer.json / llama.cpp. */
static const range DS_LETTERS[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
    {0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377},
    {0x37B, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C},
    {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
    {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
    {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC},
    {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787},
    {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

/* deepseek-llm's punctuation class [!-/:-~！-／：-～‘-‟　-。] (ASCII
 * !-/ and :-~, which includes the ASCII letters, fullwidth forms, quotes,
 * ideographic space and punctuation; sorted). */
static const range DS_PUNCT[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
};

/* [一-龥ࠀ-一가-퟿] of deepseek-llm and deepseek-coder. */
static const range DS_CJK[] = {
    {0x800, 0x9FA5}, {0xAC00, 0xD7FF},
};

static bool in_ranges(const range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n; /* first range with hi >= cp */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].hi < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && r[lo].lo <= cp;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Character i against an explicit range class: non-ASCII whitespace never
 * matches (llama.cpp runs these regexes on text where it is U+000B). */
static bool in_explicit(const chars *t, size_t i, const range *r, size_t n) {
    if (t->cp[i] >= 0x80 && (t->fl[i] & SD_UC_WS)) return false;
    return in_ranges(r, n, t->cp[i]);
}

typedef bool (*char_class)(const chars *t, size_t i);

static bool c_ws(const chars *t, size_t i) { return (t->fl[i] & SD_UC_WS) != 0; }
static bool c_letter(const chars *t, size_t i) { return (t->fl[i] & SD_UC_L) != 0; }
static bool c_number(const chars *t, size_t i) { return (t->fl[i] & SD_UC_N) != 0; }
static bool c_punct(const chars *t, size_t i) { return (t->fl[i] & SD_UC_P) != 0; }
static bool c_crlf(const chars *t, size_t i) { return t->cp[i] == '\r' || t->cp[i] == '\n'; }
static bool c_ds_letter(const chars *t, size_t i) { return in_explicit(t, i, DS_LETTERS, N_OF(DS_LETTERS)); }
static bool c_ds_punct(const chars *t, size_t i) { return in_explicit(t, i, DS_PUNCT, N_OF(DS_PUNCT)); }
static bool c_cjk(const chars *t, size_t i) { return in_explicit(t, i, DS_CJK, N_OF(DS_CJK)); }
/* [\p{P}\$\+<=>\^~\|`] (falcon) and the same without '`' (default) */
static bool c_falcon_punct(const chars *t, size_t i) {
    uint32_t c = t->cp[i];
    return c_punct(t, i) || (c < 0x80 && c && strchr("$+<=>^~|`", (int)c));
}
static bool c_default_punct(const chars *t, size_t i) {
    uint32_t c = t->cp[i];
    return c_punct(t, i) || (c < 0x80 && c && strchr("$+<=>^~|", (int)c));
}

/* ------------------------------------------------------------ piece lists */

/* Pieces of a fragment as the character index where each ends, ascending;
 * the last is t->n. */
typedef struct pieces {
    uint32_t *end; /* (n); capacity: one per character */
    size_t n;
} pieces;

/* Ends a piece at e unless that would make it empty. */
static void cut(pieces *o, size_t e) {
    if ((o->n == 0 || o->end[o->n - 1] != e) && e > 0) o->end[o->n++] = (uint32_t)e;
}

/* ------------------------------------------------------------------ passes */

/* A regex that matches at position p (leftmost-first, as std::regex and
 * Oniguruma): returns the match length, 0 for no match (none of these
 * regexes matches the empty string). Characters [p, e) are available. */
typedef size_t (*matcher)(const chars *t, size_t p, size_t e);

/* X+ */
static size_t run_of(const chars *t, size_t p, size_t e, char_class x) {
    size_t q = p;
    while (q < e && x(t, q)) q++;
    return q - p;
}

/* \s?X+ : the optional whitespace is tried first, then without it. */
static size_t ws_opt_run(const chars *t, size_t p, size_t e, char_class x) {
    if (c_ws(t, p) && p + 1 < e && x(t, p + 1)) return 1 + run_of(t, p + 1, e, x);
    return run_of(t, p, e, x);
}

static size_t m_crlf(const chars *t, size_t p, size_t e) { (void)e; return c_crlf(t, p) ? 1 : 0; }
static size_t m_ds_letters(const chars *t, size_t p, size_t e) { return ws_opt_run(t, p, e, c_ds_letter); }
static size_t m_ds_punct(const chars *t, size_t p, size_t e) { return ws_opt_run(t, p, e, c_ds_punct); }
static size_t m_ws_letters(const chars *t, size_t p, size_t e) { return ws_opt_run(t, p, e, c_letter); }
static size_t m_ws_punct(const chars *t, size_t p, size_t e) { return ws_opt_run(t, p, e, c_punct); }
static size_t m_cjk(const chars *t, size_t p, size_t e) { return run_of(t, p, e, c_cjk); }
static size_t m_numbers(const chars *t, size_t p, size_t e) { return run_of(t, p, e, c_number); }
static size_t m_number(const chars *t, size_t p, size_t e) { (void)e; return c_number(t, p) ? 1 : 0; }
static size_t m_falcon_punct(const chars *t, size_t p, size_t e) { return run_of(t, p, e, c_falcon_punct); }
static size_t m_default_punct(const chars *t, size_t p, size_t e) { return run_of(t, p, e, c_default_punct); }
static size_t m_digits3(const chars *t, size_t p, size_t e) {
    if (p + 3 > e) return 0;
    for (size_t i = p; i < p + 3; i++)
        if (t->cp[i] < '0' || t->cp[i] > '9') return 0;
    return 3;
}

/* Regex search over [b, e): every match and every stretch between matches
 * becomes a piece. */
static void pass_search(const chars *t, size_t b, size_t e, matcher m, pieces *o) {
    for (size_t p = b; p < e;) {
        size_t k = m(t, p, e);
        if (k == 0) {
            p++;
            continue;
        }
        cut(o, p);
        cut(o, p + k);
        p += k;
    }
    cut(o, e);
}

/* \s+$ : the only match is the whitespace run that ends the piece. */
static void pass_trailing_ws(const chars *t, size_t b, size_t e, pieces *o) {
    size_t k = e;
    while (k > b && c_ws(t, k - 1)) k--;
    cut(o, k);
    cut(o, e);
}

/* The whitespace run at p: its end, and (if it holds \r or \n) the end of
 * its last \r / \n in *rn_end (else 0). */
static size_t ws_run(const chars *t, size_t p, size_t e, size_t *rn_end) {
    size_t q = p;
    *rn_end = 0;
    while (q < e && c_ws(t, q)) {
        if (c_crlf(t, q)) *rn_end = q + 1;
        q++;
    }
    return q;
}

/* 's|'t|'re|'ve|'m|'ll|'d at p (fold: ASCII case-insensitive): length or 0. */
static size_t contraction(const chars *t, size_t p, size_t e, bool fold) {
    if (t->cp[p] != '\'' || p + 1 >= e) return 0;
    uint32_t c1 = t->cp[p + 1], c2 = p + 2 < e ? t->cp[p + 2] : 0;
    if (fold) {
        if (c1 >= 'A' && c1 <= 'Z') c1 += 32;
        if (c2 >= 'A' && c2 <= 'Z') c2 += 32;
    }
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * A single left-to-right scan: every character is matched by one branch. */
static void pass_gpt2(const chars *t, size_t b, size_t e, pieces *o) {
    const uint8_t LN = SD_UC_L | SD_UC_N;
    size_t p = b;
    while (p < e) {
        size_t k = contraction(t, p, e, false);
        if (k) {
            p += k;
            cut(o, p);
            continue;
        }
        /* " ?X+": q is where X+ starts (after an optional ' ') */
        size_t q = t->cp[p] == ' ' && p + 1 < e ? p + 1 : p;
        uint8_t f = t->fl[q];
        if (f & SD_UC_L) {
            p = q + run_of(t, q, e, c_letter);
        } else if (f & SD_UC_N) {
            p = q + run_of(t, q, e, c_number);
        } else if (!(f & (LN | SD_UC_WS))) {
            q++;
            while (q < e && !(t->fl[q] & (LN | SD_UC_WS))) q++;
            p = q;
        } else {
            /* whitespace at p: \s+(?!\S) leaves the last one before a
             * non-space to the next piece; a lone one is \s+ */
            size_t rn, r = ws_run(t, p, e, &rn);
            p = r - p > 1 && r < e ? r - 1 : r > p ? r : p + 1;
        }
        cut(o, p);
    }
    cut(o, e);
}

/* LLAMA3 (max_digits 3) and QWEN2 (max_digits 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void pass_llama3(const chars *t, size_t b, size_t e, int max_digits, pieces *o) {
    const uint8_t LN = SD_UC_L | SD_UC_N;
    size_t p = b;
    while (p < e) {
        size_t k = contraction(t, p, e, true);
        if (k) {
            p += k;
            cut(o, p);
            continue;
        }
        uint32_t c = t->cp[p];
        uint8_t f = t->fl[p];
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (!(c == '\r' || c == '\n' || (f & SD_UC_N)) && ((f & SD_UC_L) || (p + 1 < e && c_letter(t, p + 1)))) {
            p++;
            p += run_of(t, p, e, c_letter);
            cut(o, p);
            continue;
        }
        /* \p{N}{1,max} */
        if (f & SD_UC_N) {
            for (int i = 0; i < max_digits && p < e && c_number(t, p); i++) p++;
            cut(o, p);
            continue;
        }
        /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
        size_t q = c == ' ' && p + 1 < e ? p + 1 : p;
        if (!(t->fl[q] & (LN | SD_UC_WS))) {
            q++;
            while (q < e && !(t->fl[q] & (LN | SD_UC_WS))) q++;
            while (q < e && c_crlf(t, q)) q++;
            p = q;
            cut(o, p);
            continue;
        }
        /* \s*[\r\n]+ ends at the run's last \r / \n; then \s+(?!\S), \s+ */
        size_t rn, r = ws_run(t, p, e, &rn);
        p = rn ? rn : r - p > 1 && r < e ? r - 1 : r > p ? r : p + 1;
        cut(o, p);
    }
    cut(o, e);
}

typedef enum pass_kind {
    PASS_END = 0,
    PASS_GPT2,
    PASS_LLAMA3,
    PASS_QWEN2,
    PASS_CRLF,          /* [\r\n]                      */
    PASS_DS_LETTERS,    /* \s?[<deepseek letters>]+     */
    PASS_DS_PUNCT,      /* \s?[!-/:-~...]+              */
    PASS_TRAILING_WS,   /* \s+$                         */
    PASS_CJK,           /* [一-龥ࠀ-一가-퟿]+            */
    PASS_NUMBERS,       /* \p{N}+                       */
    PASS_NUMBER,        /* \p{N}                        */
    PASS_WS_LETTERS,    /* \s?\p{L}+                    */
    PASS_WS_PUNCT,      /* \s?\p{P}+                    */
    PASS_FALCON_PUNCT,  /* [\p{P}\$\+<=>\^~\|`]+        */
    PASS_DEFAULT_PUNCT, /* [\p{P}\$\+<=>\^~\|]+         */
    PASS_DIGITS3,       /* [0-9][0-9][0-9]              */
} pass_kind;

#define MAX_PASSES 7
static const uint8_t PASSES[SD_BPE_PRE_COUNT][MAX_PASSES] = {
    [SD_BPE_PRE_DEFAULT] = {PASS_DEFAULT_PUNCT, PASS_GPT2, PASS_NUMBERS, PASS_DIGITS3},
    [SD_BPE_PRE_GPT2] = {PASS_GPT2},
    [SD_BPE_PRE_LLAMA3] = {PASS_LLAMA3},
    [SD_BPE_PRE_QWEN2] = {PASS_QWEN2},
    [SD_BPE_PRE_DEEPSEEK_LLM] = {PASS_CRLF, PASS_DS_LETTERS, PASS_DS_PUNCT, PASS_TRAILING_WS, PASS_CJK,
                                 PASS_NUMBERS},
    [SD_BPE_PRE_DEEPSEEK_CODER] = {PASS_CRLF, PASS_WS_LETTERS, PASS_WS_PUNCT, PASS_CJK, PASS_NUMBER},
    [SD_BPE_PRE_FALCON] = {PASS_FALCON_PUNCT, PASS_GPT2, PASS_DIGITS3},
    [SD_BPE_PRE_STARCODER] = {PASS_NUMBER, PASS_GPT2},
};

static void run_pass(pass_kind k, const chars *t, size_t b, size_t e, pieces *o) {
    switch (k) {
    case PASS_GPT2: pass_gpt2(t, b, e, o); break;
    case PASS_LLAMA3: pass_llama3(t, b, e, 3, o); break;
    case PASS_QWEN2: pass_llama3(t, b, e, 1, o); break;
    case PASS_TRAILING_WS: pass_trailing_ws(t, b, e, o); break;
    case PASS_CRLF: pass_search(t, b, e, m_crlf, o); break;
    case PASS_DS_LETTERS: pass_search(t, b, e, m_ds_letters, o); break;
    case PASS_DS_PUNCT: pass_search(t, b, e, m_ds_punct, o); break;
    case PASS_CJK: pass_search(t, b, e, m_cjk, o); break;
    case PASS_NUMBERS: pass_search(t, b, e, m_numbers, o); break;
    case PASS_NUMBER: pass_search(t, b, e, m_number, o); break;
    case PASS_WS_LETTERS: pass_search(t, b, e, m_ws_letters, o); break;
    case PASS_WS_PUNCT: pass_search(t, b, e, m_ws_punct, o); break;
    case PASS_FALCON_PUNCT: pass_search(t, b, e, m_falcon_punct, o); break;
    case PASS_DEFAULT_PUNCT: pass_search(t, b, e, m_default_punct, o); break;
    case PASS_DIGITS3: pass_search(t, b, e, m_digits3, o); break;
    case PASS_END:
    default: cut(o, e); break;
    }
}

/* Pre-tokenizes into *ends (byte offsets, malloc'd). */
sd_status sd_bpe_pretokenize(sd_bpe_pre pre, const char *text, size_t len, size_t **ends, size_t *n_ends) {
    if (!ends || !n_ends || (!text && len) || (unsigned)pre >= SD_BPE_PRE_COUNT) return SD_ERR_INVALID_ARG;
    if (len > UINT32_MAX / 2) return SD_ERR_INVALID_ARG; /* indices are uint32_t */
    *ends = NULL;
    *n_ends = 0;
    if (len == 0) return SD_OK;
    chars t = {malloc(len * sizeof *t.cp), malloc(len), 0};
    pieces a = {malloc(len * sizeof *a.end), 0}, b = {malloc(len * sizeof *b.end), 0};
    sd_status st = SD_OK;
    if (!t.cp || !t.fl || !a.end || !b.end) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    decode(text, len, &t);
    cut(&a, t.n);
    for (int i = 0; i < MAX_PASSES && PASSES[pre][i] != PASS_END; i++) {
        b.n = 0;
        size_t start = 0;
        for (size_t j = 0; j < a.n; j++) {
            run_pass((pass_kind)PASSES[pre][i], &t, start, a.end[j], &b);
            start = a.end[j];
        }
        pieces tmp = a;
        a = b;
        b = tmp;
    }
    /* character ends -> byte ends, in place into a size_t array */
    size_t *out = malloc(a.n * sizeof *out);
    if (!out) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    size_t ci = 0, bytes = 0;
    for (size_t j = 0; j < a.n; j++) {
        for (; ci < a.end[j]; ci++) bytes += cp_bytes(t.cp[ci]);
        out[j] = bytes;
    }
    *ends = out;
    *n_ends = a.n;
done:
    free(t.cp);
    free(t.fl);
    free(a.end);
    free(b.end);
    return st;
}

/* -------------------------------------------------------------------- BPE */

typedef struct bpe_sym {
    int32_t prev, next; /* neighbours in the chain, -1 at the ends        */
    int32_t id;         /* token, or -1 (a byte without a token)           */
    uint32_t n;         /* bytes covered; 0 once merged into its left      */
} bpe_sym;

typedef struct bpe_pair {
    int32_t left, right; /* symbol indices          */
    int32_t rank;        /* merge rank              */
    int32_t merge;       /* index in v->merges      */
} bpe_pair;

/* Heap order: lower rank first, then the leftmost pair (llama.cpp's). */
static bool pair_better(const bpe_pair *a, const bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

/* Work arrays for a piece of up to cap bytes after U+FFFD substitution,
 * grown as needed and reused across pieces. */
typedef struct bpe_work {
    unsigned char *bytes; /* (cap)     the piece's bytes, invalid ones resolved */
    bpe_sym *sym;         /* (cap)     */
    bpe_pair *heap;       /* (3 * cap) */
    char *enc;            /* (2 * cap) the piece as GPT-2 characters (ignore_merges) */
    size_t cap, n_heap;
} bpe_work;

static bool work_reserve(bpe_work *w, size_t n) {
    if (n <= w->cap) return true;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n) cap *= 2;
    unsigned char *by = realloc(w->bytes, cap);
    if (by) w->bytes = by;
    bpe_sym *s = realloc(w->sym, cap * sizeof *s);
    if (s) w->sym = s;
    bpe_pair *h = realloc(w->heap, 3 * cap * sizeof *h);
    if (h) w->heap = h;
    char *e = realloc(w->enc, 2 * cap);
    if (e) w->enc = e;
    if (!by || !s || !h || !e) return false;
    w->cap = cap;
    return true;
}

static void heap_push(bpe_work *w, bpe_pair x) {
    size_t i = w->n_heap++; /* room for every push was reserved */
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pair_better(&x, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = x;
}

static bpe_pair heap_pop(bpe_work *w) {
    bpe_pair top = w->heap[0], x = w->heap[--w->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->n_heap) break;
        if (c + 1 < w->n_heap && pair_better(&w->heap[c + 1], &w->heap[c])) c++;
        if (!pair_better(&w->heap[c], &x)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->n_heap) w->heap[i] = x;
    return top;
}

/* Queues symbols (l, r) if their tokens have a merge. */
static void try_pair(const sd_vocab *v, bpe_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || w->sym[l].id < 0 || w->sym[r].id < 0) return;
    const sd_bpe_merge *m = sd_vocab_find_merge(v, w->sym[l].id, w->sym[r].id);
    if (m) heap_push(w, (bpe_pair){l, r, m->rank, (int32_t)(m - v->merges)});
}

/* Resolves piece p[0..len): each invalid UTF-8 byte is kept if its
 * character is a normal token, else replaced by U+FFFD (EF BF BD). With
 * dst == NULL only counts; returns the resolved length (<= 3 * len). */
static size_t resolve_bytes(const sd_vocab *v, const unsigned char *p, size_t len, unsigned char *dst) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int l = sd_utf8_valid_len(p + i, len - i);
        if (l > 0) {
            if (dst) memcpy(dst + n, p + i, (size_t)l);
            n += (size_t)l;
            i += (size_t)l;
            continue;
        }
        int32_t id = v->bpe_byte_token[p[i]];
        if (id >= 0 && v->tokens[id].type == SD_TOKEN_NORMAL) {
            if (dst) dst[n] = p[i];
            n++;
        } else {
            if (dst) memcpy(dst + n, "\xef\xbf\xbd", 3);
            n += 3;
        }
        i++;
    }
    return n;
}

/* BPE over one piece s[0..n), n >= 1: emits its tokens. */
static void bpe_piece(const sd_vocab *v, bpe_work *w, const unsigned char *s, size_t n, sd_tok_out *out) {
    if (v->ignore_merges) { /* the whole piece, if it is a token */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += sd_gpt2_byte_char(s[i], w->enc + k);
        int32_t id = sd_vocab_find(v, w->enc, k);
        if (id >= 0) {
            sd_tok_out_push(out, id);
            return;
        }
    }
    bpe_sym *sym = w->sym;
    for (size_t i = 0; i < n; i++)
        sym[i] = (bpe_sym){(int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, v->bpe_byte_token[s[i]], 1};
    w->n_heap = 0;
    for (size_t i = 1; i < n; i++) try_pair(v, w, (int32_t)i - 1, (int32_t)i);
    /* merge the best pair until none is left; a pair is stale when a side
     * was merged away or grew (its token changed) since it was queued */
    while (w->n_heap > 0) {
        bpe_pair p = heap_pop(w);
        bpe_sym *l = &sym[p.left], *r = &sym[p.right];
        const sd_bpe_merge *m = &v->merges[p.merge];
        if (l->n == 0 || r->n == 0 || l->id != m->left || r->id != m->right) continue;
        l->id = m->result;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        try_pair(v, w, l->prev, p.left);
        try_pair(v, w, p.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = sym[i].next)
        if (sym[i].id >= 0) sd_tok_out_push(out, sym[i].id);
}

sd_status sd_bpe_tokenize(const sd_vocab *v, const char *text, size_t len, sd_tok_out *out) {
    if (len == 0) return SD_OK;
    size_t *ends = NULL, n_ends = 0;
    sd_status st = sd_bpe_pretokenize(v->pre, text, len, &ends, &n_ends);
    if (st) return st;
    bpe_work w = {0};
    size_t start = 0;
    for (size_t j = 0; j < n_ends && !st; j++) {
        const unsigned char *p = (const unsigned char *)text + start;
        size_t n = resolve_bytes(v, p, ends[j] - start, NULL);
        if (!work_reserve(&w, n)) {
            st = SD_ERR_NOMEM;
            break;
        }
        resolve_bytes(v, p, ends[j] - start, w.bytes);
        bpe_piece(v, &w, w.bytes, n, out);
        start = ends[j];
    }
    free(w.bytes);
    free(w.sym);
    free(w.heap);
    free(w.enc);
    free(ends);
    return st;
}
