/*
 * test_tokenizer.c - vocabulary loading, SentencePiece and byte-level BPE
 * tokenization against reference vectors, detokenization and hostile input.
 *
 *  1. ../shared/vocab/ggml-vocab-NAME.gguf: every test string of the .inp
 *     file tokenizes (no BOS, special text not parsed) to the ids of the
 *     matching .out line: SentencePiece (llama-spm, phi-3) and byte-level
 *     BPE (gpt-2, deepseek-llm, deepseek-coder, falcon, mpt, refact,
 *     starcoder); all lines must match for every one of them.
 *  2. The bench prompts tokenize to the reference prompt_ids produced by
 *     llama.cpp for kernel-c-target.gguf (SPM, BOS) and
 *     tiny-random-qwen2.gguf (BPE, no BOS as its vocabulary says).
 *  3. Round trip: concatenated pieces give back the text (less the SPM
 *     prefix space); the streaming detokenizer only ever emits valid UTF-8.
 *  4. Hostile input: invalid UTF-8, short output buffers, NULL arguments,
 *     corrupt tokenizer metadata (in-memory GGUF files), hostile merges.
 *  5. BPE: pre-tokenizer splits per tokenizer.ggml.pre (also the llama3 and
 *     qwen2 ones that have no vector file here), lossless invalid UTF-8,
 *     special tokens, long inputs.
 */
#include "model/gguf.h"
#include "specdec.h"
#include "util/check.h"
#include "tokenizer/vocab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

/* Loads the vocabulary of a GGUF file, or NULL (with a message). */
static sd_vocab *load_vocab(const char *path) {
    sd_gguf *g = NULL;
    sd_vocab *v = NULL;
    char err[512];
    sd_status st = sd_gguf_open(path, &g, err, sizeof err);
    if (st == SD_OK) st = sd_vocab_load(g, &v, err, sizeof err);
    sd_gguf_close(g);
    CHECK(st == SD_OK, "loading %s: %s (%s)", path, sd_status_str(st), err);
    return v;
}

/* Tokenizes into a malloc'd array; *n receives the count (or the error). */
static int32_t *tokenize_all(const sd_vocab *v, const char *text, size_t len, bool bos, bool special,
                             int *n) {
    *n = sd_tokenize(v, text, len, NULL, 0, bos, special);
    if (*n < 0) return NULL;
    int32_t *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    int m = sd_tokenize(v, text, len, ids, *n, bos, special);
    CHECK(m == *n, "second tokenize call returned %d, first %d", m, *n);
    return ids;
}

/* Concatenates the pieces of ids into a malloc'd buffer of *len bytes. */
static char *detokenize_all(const sd_vocab *v, const int32_t *ids, int n, size_t *len) {
    size_t cap = 64, used = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++) {
        int k = sd_token_to_piece(v, ids[i], NULL, 0);
        CHECK(k >= 0, "to_piece(%d) = %d", ids[i], k);
        if (k < 0) continue;
        while (used + (size_t)k + 1 > cap) s = realloc(s, cap *= 2);
        int k2 = sd_token_to_piece(v, ids[i], s + used, k);
        CHECK(k2 == k, "to_piece(%d) sizes differ: %d vs %d", ids[i], k, k2);
        used += (size_t)k;
    }
    s[used] = '\0';
    *len = used;
    return s;
}

/* An independent strict UTF-8 validity check. */
static bool valid_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) k = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) k = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) k = 4, cp = c & 0x07;
        else return false;
        if (i + k > n) return false;
        for (size_t j = 1; j < k; j++) {
            if ((u[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (u[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k;
    }
    return true;
}

static void print_ids(const char *what, const int32_t *ids, int n) {
    fprintf(stderr, "    %s (%d):", what, n);
    for (int i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

/* Parses space-separated ids from s[0..len) into a malloc'd array. */
static int32_t *parse_ids(const char *s, size_t len, int *n) {
    int32_t *ids = malloc((len / 2 + 1) * sizeof *ids);
    *n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && s[i] == ' ') i++;
        if (i >= len) break;
        long x = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') x = x * 10 + (s[i++] - '0');
        ids[(*n)++] = (int32_t)x;
        while (i < len && s[i] != ' ') i++;
    }
    return ids;
}

static bool same_ids(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/* ------------------------------------------------- 1. vocab test vectors */

/* Streams ids through sd_detok, checking each output is valid UTF-8;
 * returns the concatenated text (malloc'd). */
static char *stream_detok(const sd_vocab *v, const int32_t *ids, int n, size_t *len, int out_size) {
    sd_detok *d = sd_detok_new(v);
    size_t cap = 256, used = 0;
    char *s = malloc(cap);
    char *out = malloc((size_t)out_size);
    for (int i = 0; i <= n; i++) {
        for (;;) { /* drain: push once, then flush until nothing is left */
            int k = i < n ? sd_detok_push(d, ids[i], out, out_size) : sd_detok_flush(d, out, out_size);
            CHECK(k >= 0, "detok returned %d", k);
            if (k <= 0 && i == n) break;
            if (k < 0) break;
            CHECK(valid_utf8(out, (size_t)k), "detok emitted invalid UTF-8 at token %d", i);
            CHECK(out[k] == '\0', "detok output not NUL-terminated");
            while (used + (size_t)k + 1 > cap) s = realloc(s, cap *= 2);
            memcpy(s + used, out, (size_t)k);
            used += (size_t)k;
            if (i < n) break;
        }
    }
    s[used] = '\0';
    *len = used;
    free(out);
    sd_detok_free(d);
    return s;
}

/* Runs one vocab's .inp/.out vectors; also round-trips each string (an SPM
 * vocabulary's pieces carry the prefix space, which is dropped). Every line
 * must match; prints "NAME: P/N vocab vectors pass, R/N round trips". */
static void test_vocab_vectors(const char *name) {
    char path[1024], inp_path[1100], out_path[1100];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", test_shared_dir(), name);
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    sd_vocab *v = load_vocab(path);
    size_t inp_len = 0, out_len = 0;
    char *inp = test_read_file(inp_path, &inp_len);
    char *outs = test_read_file(out_path, &out_len);
    CHECK(inp && outs, "reading %s / %s", inp_path, out_path);
    if (!v || !inp || !outs) goto done;

    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sep_len = strlen(sep);
    size_t ip = 0, op = 0;
    int n_tests = 0, n_pass = 0, n_rt = 0, n_rt_pass = 0, n_shown = 0;
    while (ip < inp_len) {
        const char *end = strstr(inp + ip, sep);
        if (!end) break;
        size_t tlen = (size_t)(end - (inp + ip));
        const char *text = inp + ip;
        const char *nl = memchr(outs + op, '\n', out_len - op);
        size_t llen = nl ? (size_t)(nl - (outs + op)) : out_len - op;
        int n_exp = 0, n_got = 0;
        int32_t *exp = parse_ids(outs + op, llen, &n_exp);
        int32_t *got = tokenize_all(v, text, tlen, false, false, &n_got);
        n_tests++;
        if (got && same_ids(exp, n_exp, got, n_got)) {
            n_pass++;
        } else if (n_shown++ < 5) {
            fprintf(stderr, "  %s test %d mismatch: '%.*s'\n", name, n_tests, (int)tlen, text);
            print_ids("expected", exp, n_exp);
            print_ids("got", got, n_got);
        }
        if (got) { /* round trip: pieces = (SPM: " ") + text */
            size_t dl = 0, sl = 0;
            char *dt = detokenize_all(v, got, n_got, &dl);
            char *st = stream_detok(v, got, n_got, &sl, 64);
            bool strip = v->add_space_prefix && dl > 0 && dt[0] == ' ';
            const char *cmp = strip ? dt + 1 : dt;
            size_t cl = strip ? dl - 1 : dl;
            n_rt++;
            bool ok = cl == tlen && memcmp(cmp, text, tlen) == 0 && sl == dl && memcmp(st, dt, dl) == 0;
            n_rt_pass += ok;
            if (!ok) fprintf(stderr, "  %s round trip %d: '%.*s' -> '%s'\n", name, n_tests, (int)tlen, text, dt);
            free(dt);
            free(st);
        }
        free(exp);
        free(got);
        ip += tlen + sep_len;
        op += llen + (nl ? 1 : 0);
    }
    fprintf(stderr, "%s: %d/%d vocab vectors pass, %d/%d round trips\n", name, n_pass, n_tests, n_rt_pass, n_rt);
    /* every .inp file of ../shared/vocab holds 46 strings (the floor was 31) */
    CHECK(n_tests >= 46, "%s: only %d test strings", name, n_tests);
    CHECK(n_pass == n_tests, "%s: %d of %d vectors differ", name, n_tests - n_pass, n_tests);
    CHECK(n_rt_pass == n_rt, "%s: %d of %d round trips differ", name, n_rt - n_rt_pass, n_rt);
done:
    free(inp);
    free(outs);
    sd_vocab_free(v);
}

/* --------------------------------------------- 2. reference prompt ids */

/* Appends code point cp as UTF-8. */
static size_t put_utf8(char *d, uint32_t cp) {
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    if (cp < 0x800) { d[0] = (char)(0xC0 | cp >> 6); d[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | cp >> 12); d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    d[0] = (char)(0xF0 | cp >> 18); d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); d[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

static uint32_t hex4(const char *s) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        x = x * 16 + (uint32_t)(c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 0);
    }
    return x;
}

/* The JSON string value of "key" in one line (malloc'd, *len bytes), or
 * NULL. Handles \n \t \r \b \f \" \\ \/ and \uXXXX with surrogate pairs. */
static char *json_str(const char *line, const char *key, size_t *len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(line, pat);
    if (!p) return NULL;
    p += strlen(pat);
    char *out = malloc(strlen(p) + 1), *d = out;
    while (*p && *p != '"') {
        if (*p != '\\') { *d++ = *p++; continue; }
        p++;
        switch (*p) {
        case 'n': *d++ = '\n'; p++; break;
        case 't': *d++ = '\t'; p++; break;
        case 'r': *d++ = '\r'; p++; break;
        case 'b': *d++ = '\b'; p++; break;
        case 'f': *d++ = '\f'; p++; break;
        case 'u': {
            uint32_t cp = hex4(p + 1);
            p += 5;
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                uint32_t lo = hex4(p + 2);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            d += put_utf8(d, cp);
            break;
        }
        default: *d++ = *p++; break; /* \" \\ \/ */
        }
    }
    *d = '\0';
    *len = (size_t)(d - out);
    return out;
}

/* The JSON integer array value of "key" (malloc'd), or NULL. */
static int32_t *json_ids(const char *line, const char *key, int *n) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": [", key);
    const char *p = strstr(line, pat);
    if (!p) return NULL;
    p += strlen(pat);
    const char *e = strchr(p, ']');
    if (!e) return NULL;
    char *tmp = malloc((size_t)(e - p) + 1);
    size_t k = 0;
    for (const char *q = p; q < e; q++) tmp[k++] = *q == ',' ? ' ' : *q;
    int32_t *ids = parse_ids(tmp, k, n);
    free(tmp);
    return ids;
}

/* The line of a JSONL buffer whose "id" equals id (NUL-terminated copy). */
static char *find_line(const char *buf, const char *id) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"id\": \"%s\"", id);
    const char *p = strstr(buf, pat);
    if (!p) return NULL;
    while (p > buf && p[-1] != '\n') p--;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* The bench prompts of set tokenize (BOS as the vocabulary says, special
 * text not parsed) to the prompt_ids of ../shared/reference/MODEL.SET.jsonl. */
static void test_reference_prompts(const sd_vocab *v, const char *model, const char *set) {
    char rpath[1024], bpath[1024];
    snprintf(rpath, sizeof rpath, "%s/reference/%s.%s.jsonl", test_shared_dir(), model, set);
    snprintf(bpath, sizeof bpath, "%s/bench/%s.jsonl", test_shared_dir(), set);
    char *ref = test_read_file(rpath, NULL), *bench = test_read_file(bpath, NULL);
    CHECK(ref && bench, "reading %s / %s", rpath, bpath);
    int n_lines = 0, n_pass = 0;
    for (char *line = ref; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        size_t idl = 0;
        char *id = json_str(line, "id", &idl);
        int n_exp = 0;
        int32_t *exp = json_ids(line, "prompt_ids", &n_exp);
        char *bl = id ? find_line(bench, id) : NULL;
        size_t plen = 0;
        char *prompt = bl ? json_str(bl, "prompt", &plen) : NULL;
        CHECK(id && exp && prompt, "%s line %d: id/prompt_ids/prompt missing", set, n_lines + 1);
        if (id && exp && prompt) {
            int n_got = 0;
            int32_t *got = tokenize_all(v, prompt, plen, sd_vocab_add_bos(v), false, &n_got);
            n_lines++;
            if (got && same_ids(exp, n_exp, got, n_got)) {
                n_pass++;
            } else {
                fprintf(stderr, "  %s %s: prompt ids differ\n", set, id);
                int i = 0;
                while (got && i < n_exp && i < n_got && exp[i] == got[i]) i++;
                fprintf(stderr, "    first difference at %d\n", i);
                print_ids("expected", exp + (i > 4 ? i - 4 : 0), n_exp - (i > 4 ? i - 4 : 0));
                if (got) print_ids("got", got + (i > 4 ? i - 4 : 0), n_got - (i > 4 ? i - 4 : 0));
            }
            free(got);
        }
        free(id);
        free(exp);
        free(bl);
        free(prompt);
        line = nl ? nl + 1 : NULL;
    }
    fprintf(stderr, "%s %s: %d/%d reference prompts match\n", model, set, n_pass, n_lines);
    CHECK(n_lines > 0 && n_pass == n_lines, "%s: %d of %d prompts differ", set, n_lines - n_pass, n_lines);
    free(ref);
    free(bench);
}

/* ------------------------------------------- 3. detokenizer streaming */

static void test_streaming(const sd_vocab *v) {
    /* emoji and CJK that the small vocabulary only has as byte tokens */
    const char *text = "x \xf0\x9f\xa6\x99 llama \xe4\xbd\xa0\xe5\xa5\xbd \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x81!";
    int n = 0;
    int32_t *ids = tokenize_all(v, text, strlen(text), false, false, &n);
    int n_byte = 0;
    for (int i = 0; i < n; i++) {
        const char *t = sd_vocab_token_text(v, ids[i]);
        n_byte += t && strncmp(t, "<0x", 3) == 0;
    }
    CHECK(n_byte >= 4, "expected byte-fallback tokens, got %d", n_byte);
    /* smaller buffers queue the rest for later calls; 5 bytes is the least
     * that fits a 4-byte character plus NUL */
    static const int sizes[] = {64, 32, 16, 8, 6, 5};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int out_size = sizes[si];
        size_t sl = 0;
        char *s = stream_detok(v, ids, n, &sl, out_size);
        CHECK(sl == strlen(text) + 1 && s[0] == ' ' && memcmp(s + 1, text, strlen(text)) == 0,
              "stream detok (out_size %d) gave '%s'", out_size, s);
        free(s);
    }
    free(ids);

    /* broken sequences: a lone lead byte before ASCII, a stray
     * continuation byte, and an incomplete tail at flush */
    int32_t b_e2 = sd_vocab_find(v, "<0xE2>", 6), b_82 = sd_vocab_find(v, "<0x82>", 6);
    int32_t b_a = sd_vocab_find(v, "<0x41>", 6), b_f0 = sd_vocab_find(v, "<0xF0>", 6);
    CHECK(b_e2 >= 0 && b_82 >= 0 && b_a >= 0 && b_f0 >= 0, "byte tokens missing");
    if (b_e2 < 0 || b_82 < 0 || b_a < 0 || b_f0 < 0) return;
    sd_detok *d = sd_detok_new(v);
    char out[64], all[256] = "";
    int k;
    k = sd_detok_push(d, b_e2, out, sizeof out);
    CHECK(k == 0, "held back lead byte, got %d", k);
    k = sd_detok_push(d, b_82, out, sizeof out);
    CHECK(k == 0, "held back 2 of 3 bytes, got %d", k);
    k = sd_detok_push(d, b_a, out, sizeof out);
    CHECK(k == 4 && memcmp(out, "\xef\xbf\xbd" "A", 4) == 0, "E2 82 41 -> U+FFFD A, got %d '%s'", k, out);
    k = sd_detok_push(d, b_82, out, sizeof out);
    CHECK(k == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0, "stray continuation -> U+FFFD, got %d", k);
    k = sd_detok_push(d, b_f0, out, sizeof out);
    CHECK(k == 0, "held back F0, got %d", k);
    k = sd_detok_flush(d, out, sizeof out);
    CHECK(k == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0, "flush of F0 -> U+FFFD, got %d", k);
    k = sd_detok_flush(d, out, sizeof out);
    CHECK(k == 0, "second flush empty, got %d", k);
    /* control tokens detokenize to nothing; BOS inside a stream is silent */
    k = sd_detok_push(d, sd_vocab_bos(v), out, sizeof out);
    CHECK(k == 0 && out[0] == '\0', "BOS piece should be empty, got %d", k);
    k = sd_detok_push(d, -1, out, sizeof out);
    CHECK(k == SD_ERR_INVALID_ARG, "bad id -> INVALID_ARG, got %d", k);
    (void)all;
    sd_detok_free(d);
}

/* ---------------------------------------------- pieces and specials */

static void test_pieces_and_specials(const sd_vocab *v) {
    char buf[64];
    int32_t sp = sd_vocab_find(v, "\xe2\x96\x81the", 6);
    if (sp >= 0) {
        int k = sd_token_to_piece(v, sp, buf, sizeof buf);
        CHECK(k == 4 && memcmp(buf, " the", 4) == 0, "piece of '\\u2581the' = %d", k);
    }
    int32_t nl = sd_vocab_find(v, "<0x0A>", 6);
    CHECK(nl >= 0 && sd_token_to_piece(v, nl, buf, sizeof buf) == 1 && buf[0] == '\n', "<0x0A> -> newline");
    CHECK(sd_token_to_piece(v, sd_vocab_eos(v), buf, sizeof buf) == 0, "EOS piece empty");
    CHECK(sd_token_to_piece(v, 0, buf, sizeof buf) == 5 && memcmp(buf, " \xe2\x81\x87 ", 5) == 0,
          "UNK piece is ' \\u2047 '");
    CHECK(sd_token_to_piece(v, nl, buf, 0) == 1, "size 0 still reports the length");
    CHECK(sd_vocab_is_eog(v, sd_vocab_eos(v)) && !sd_vocab_is_eog(v, sd_vocab_bos(v)) &&
              !sd_vocab_is_eog(v, -1) && !sd_vocab_is_eog(v, sd_vocab_n_tokens(v)),
          "EOG flags");
    CHECK(sd_vocab_bos(v) == 1 && sd_vocab_eos(v) == 2 && sd_vocab_add_bos(v), "bos/eos/add_bos");
    CHECK(sd_vocab_token_text(v, sd_vocab_n_tokens(v)) == NULL && sd_vocab_token_text(v, -1) == NULL,
          "token_text out of range");
    CHECK(strcmp(sd_vocab_token_text(v, 1), "<s>") == 0, "token 1 is <s>");

    /* parse_special: "<s>" and "</s>" become tokens, the text between
     * gets the prefix space (it follows a special token) */
    const char *t = "<s>int x;</s>";
    int n1 = 0, n2 = 0, n3 = 0;
    int32_t *a = tokenize_all(v, t, strlen(t), false, true, &n1);
    int32_t *b = tokenize_all(v, "int x;", 6, false, false, &n2);
    int32_t *c = tokenize_all(v, t, strlen(t), false, false, &n3);
    CHECK(a && b && n1 == n2 + 2 && a[0] == 1 && a[n1 - 1] == 2 && memcmp(a + 1, b, (size_t)n2 * 4) == 0,
          "parse_special split: %d vs %d", n1, n2);
    bool has_special = false;
    for (int i = 0; c && i < n3; i++) has_special |= c[i] == 1 || c[i] == 2;
    CHECK(c && !has_special, "parse_special=false must not produce <s>/</s>");
    free(a);
    free(b);
    free(c);
    int32_t e[4] = {0};
    int n = sd_tokenize(v, "", 0, e, 4, true, false);
    CHECK(n == 1 && e[0] == 1, "empty text with BOS -> [BOS], got %d", n);
    CHECK(sd_tokenize(v, "", 0, NULL, 0, false, false) == 0, "empty text -> no tokens");
}

/* ------------------------------------------------------ 4. hostile input */

static void test_hostile(const sd_vocab *v) {
    /* invalid UTF-8 survives byte fallback exactly */
    const char bad[] = "a\xff\xfe b\xc3(\xe2\x82 \x80\x80\xed\xa0\x80 \xf4\x90\x80\x80 z\xf0\x9f";
    size_t blen = sizeof bad - 1;
    int n = 0;
    int32_t *ids = tokenize_all(v, bad, blen, false, false, &n);
    CHECK(ids && n > 0, "invalid UTF-8 tokenizes, got %d", n);
    if (ids) {
        size_t dl = 0;
        char *dt = detokenize_all(v, ids, n, &dl);
        CHECK(dl == blen + 1 && memcmp(dt + 1, bad, blen) == 0, "invalid UTF-8 round trip");
        free(dt);
        size_t sl = 0;
        char *st = stream_detok(v, ids, n, &sl, 64); /* checks every push is valid UTF-8 */
        CHECK(sl > 0, "stream of invalid input emitted something");
        free(st);
    }
    /* short output buffer: returns the needed count, writes a prefix */
    const char *t = "static int btrfs_free_tree_block(struct btrfs_trans_handle *trans)";
    int full = 0;
    int32_t *all = tokenize_all(v, t, strlen(t), true, false, &full);
    int32_t few[5] = {-7, -7, -7, -7, -7};
    int m = sd_tokenize(v, t, strlen(t), few, 4, true, false);
    CHECK(m == full && full > 4, "short buffer returns the needed count (%d vs %d)", m, full);
    CHECK(all && memcmp(few, all, 4 * sizeof *few) == 0 && few[4] == -7, "short buffer gets a prefix only");
    free(all);
    free(ids);
    /* NULL and out-of-range arguments */
    int32_t id1[4];
    char pb[8];
    CHECK(sd_tokenize(NULL, "a", 1, id1, 4, true, false) == SD_ERR_INVALID_ARG, "NULL vocab");
    CHECK(sd_tokenize(v, NULL, 1, id1, 4, true, false) == SD_ERR_INVALID_ARG, "NULL text");
    CHECK(sd_tokenize(v, "a", 1, NULL, 4, true, false) == SD_ERR_INVALID_ARG, "NULL ids with max > 0");
    CHECK(sd_tokenize(v, "a", 1, id1, -1, true, false) == SD_ERR_INVALID_ARG, "negative max_ids");
    CHECK(sd_token_to_piece(NULL, 1, pb, 8) == SD_ERR_INVALID_ARG, "to_piece NULL vocab");
    CHECK(sd_token_to_piece(v, -1, pb, 8) == SD_ERR_INVALID_ARG, "to_piece id -1");
    CHECK(sd_token_to_piece(v, sd_vocab_n_tokens(v), pb, 8) == SD_ERR_INVALID_ARG, "to_piece id n");
    CHECK(sd_token_to_piece(v, 1, NULL, 8) == SD_ERR_INVALID_ARG, "to_piece NULL buf");
    CHECK(sd_detok_new(NULL) == NULL, "detok_new(NULL)");
    CHECK(sd_detok_push(NULL, 1, pb, 8) == SD_ERR_INVALID_ARG, "detok_push(NULL)");
    CHECK(sd_detok_flush(NULL, pb, 8) == SD_ERR_INVALID_ARG, "detok_flush(NULL)");
    CHECK(sd_vocab_n_tokens(NULL) == 0 && sd_vocab_bos(NULL) == -1 && sd_vocab_eos(NULL) == -1 &&
              !sd_vocab_add_bos(NULL) && !sd_vocab_is_eog(NULL, 2) && sd_vocab_token_text(NULL, 0) == NULL,
          "getters on NULL");
    sd_vocab *out = NULL;
    CHECK(sd_vocab_load(NULL, &out, NULL, 0) == SD_ERR_INVALID_ARG, "load(NULL)");
    sd_vocab_free(NULL);
}

/* What text detokenizes to after tokenizing (no parse_special): itself,
 * except that in a BPE vocabulary an invalid UTF-8 byte whose GPT-2
 * character is not a normal token comes back as U+FFFD. Returns the length
 * written to dst (room for 3 * len). */
static size_t expected_text(const sd_vocab *v, const char *text, size_t len, char *dst) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t l = (size_t)sd_utf8_valid_len((const unsigned char *)text + i, len - i);
        if (l > 0) {
            memcpy(dst + n, text + i, l);
            n += l;
            i += l;
            continue;
        }
        int32_t id = v->type == SD_VOCAB_BPE ? v->bpe_byte_token[(unsigned char)text[i]] : 0;
        if (v->type == SD_VOCAB_BPE && (id < 0 || v->tokens[id].type != SD_TOKEN_NORMAL)) {
            memcpy(dst + n, "\xef\xbf\xbd", 3);
            n += 3;
        } else {
            dst[n++] = text[i];
        }
        i++;
    }
    return n;
}

/* Random byte strings (ASCII, valid multi-byte, arbitrary bytes, and the
 * texts of the vocabulary's control and unknown tokens) survive tokenize +
 * detokenize exactly (U+2581 itself is left out, it reads back as ' '),
 * since every byte has a byte token (SPM) or a byte character (BPE;
 * invalid bytes without a normal one come back as U+FFFD, see
 * expected_text); the stream only ever emits valid UTF-8. Each string is
 * tokenized both ways:
 *  - as plain text (no parse_special): the text comes back, after the SPM
 *    prefix space;
 *  - with parse_special: each control token's text becomes the token and
 *    reads back as nothing, an unknown token's as " \u2047 ", and every
 *    raw fragment between them comes back as in plain text, SPM giving
 *    each its prefix space (every raw fragment starts the text or follows
 *    a special token). The expected text is built as the string is, from
 *    the pieces put in (these vocabularies give their control and unknown
 *    tokens no whitespace stripping).
 * A fixed LCG keeps it reproducible. */
enum { RT_MAX_SPECIAL = 4 };

/* Appends one raw fragment's expected text (SPM: after a ' '). */
static size_t expect_raw(const sd_vocab *v, const char *text, size_t len, char *dst) {
    if (len == 0) return 0;
    size_t pre = v->add_space_prefix ? 1 : 0;
    if (pre) dst[0] = ' ';
    return pre + expected_text(v, text, len, dst + pre);
}

static void test_random_round_trip(const sd_vocab *v) {
    static const char *const plain[] = {" ", "  ", "\t", "\n", "int", " foo", "_bar", "(", "->",
                                        "\xc3\xa9", "\xf0\x9f\xa6\x99", "<s>", "</s>"};
    enum { N_PLAIN = sizeof plain / sizeof plain[0] };
    const char *pieces[N_PLAIN + RT_MAX_SPECIAL];
    int n_pieces = 0, special_of[N_PLAIN + RT_MAX_SPECIAL]; /* the piece's token, or -1 */
    for (int i = 0; i < N_PLAIN; i++) pieces[n_pieces] = plain[i], special_of[n_pieces++] = -1;
    /* the vocabulary's control and unknown tokens ("<s>" in SPM is one) */
    int n_spec = 0, n_strip = 0;
    for (int32_t s = 0; s < v->n_special && n_spec < RT_MAX_SPECIAL; s++) {
        const int32_t id = v->special[s];
        const sd_vocab_token *t = &v->tokens[id];
        if (t->type != SD_TOKEN_CONTROL && t->type != SD_TOKEN_UNKNOWN) continue;
        n_strip += (t->flags & (SD_TOKFLAG_LSTRIP | SD_TOKFLAG_RSTRIP)) != 0;
        int k = 0;
        while (k < n_pieces && strcmp(pieces[k], t->text) != 0) k++;
        if (k == n_pieces) pieces[n_pieces++] = t->text;
        special_of[k] = id;
        n_spec++;
    }
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int n_plain_ok = 0, n_special_ok = 0, n_cases = 300, n_with_special = 0, n_shown = 0;
    char text[256], want_plain[3 * 256 + 1], want_special[4 * 256];
    for (int c = 0; c < n_cases; c++) {
        size_t len = 0, ws = 0, raw = 0; /* raw: start of the current raw fragment */
        int n_in = 0;
        while (len < 200) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            unsigned r = (unsigned)(rng >> 33);
            if (r % 4 == 0) {
                text[len++] = (char)(r >> 8); /* any byte, NUL included */
            } else {
                const int k = (int)((r >> 8) % (unsigned)n_pieces);
                size_t pl = strlen(pieces[k]);
                if (len + pl > 200) break;
                if (special_of[k] >= 0) { /* parse_special: raw text ends here */
                    ws += expect_raw(v, text + raw, len - raw, want_special + ws);
                    const bool unk = v->tokens[special_of[k]].type == SD_TOKEN_UNKNOWN;
                    if (unk) memcpy(want_special + ws, " \xe2\x81\x87 ", 5), ws += 5;
                    raw = len + pl;
                    n_in++;
                }
                memcpy(text + len, pieces[k], pl);
                len += pl;
            }
            if ((r >> 20) % 16 == 0) break;
        }
        ws += expect_raw(v, text + raw, len - raw, want_special + ws);
        const size_t wp = expect_raw(v, text, len, want_plain);
        n_with_special += n_in > 0;
        for (int special = 0; special < 2; special++) {
            int n = 0;
            int32_t *ids = tokenize_all(v, text, len, false, special, &n);
            if (!ids) continue;
            size_t dl = 0, sl = 0;
            char *dt = detokenize_all(v, ids, n, &dl);
            char *st = stream_detok(v, ids, n, &sl, 64);
            const char *want = special ? want_special : want_plain;
            const size_t wl = special ? ws : wp;
            if (dl == wl && memcmp(dt, want, wl) == 0) {
                *(special ? &n_special_ok : &n_plain_ok) += 1;
            } else if (n_shown++ < 3) {
                size_t d = 0;
                while (d < dl && d < wl && dt[d] == want[d]) d++;
                fprintf(stderr, "  round trip %d (parse_special %d): %zu bytes back, %zu expected, first "
                                "difference at byte %zu\n", c, special, dl, wl, d);
            }
            free(dt);
            free(st);
            free(ids);
        }
    }
    CHECK(n_plain_ok == n_cases, "random round trips as plain text: %d of %d", n_plain_ok, n_cases);
    CHECK(n_special_ok == n_cases, "random round trips with parse_special: %d of %d", n_special_ok, n_cases);
    fprintf(stderr, "random round trips: %d control/unknown tokens, in %d of %d strings\n", n_spec,
            n_with_special, n_cases);
    CHECK(n_spec > 0 && n_with_special >= n_cases / 4 && n_strip == 0,
          "%d control/unknown tokens (%d stripping whitespace), in %d of %d strings", n_spec, n_strip,
          n_with_special, n_cases);
}

/* Phi-3: "</s>" is user-defined, so it is matched even without
 * parse_special, and (Phi-3 rule) eats the whitespace on its right. */
static void test_phi3_user_defined(const sd_vocab *v) {
    int na = 0, nb = 0, nc = 0;
    int32_t *a = tokenize_all(v, "a</s>   b", 9, false, false, &na);
    int32_t *b = tokenize_all(v, "a", 1, false, false, &nb);
    int32_t *c = tokenize_all(v, "b", 1, false, false, &nc);
    CHECK(a && b && c && na == nb + 1 + nc && memcmp(a, b, (size_t)nb * 4) == 0 && a[nb] == 2 &&
              memcmp(a + nb + 1, c, (size_t)nc * 4) == 0,
          "phi-3 '</s>' split with rstrip (n=%d)", na);
    free(a);
    free(b);
    free(c);
    /* control tokens need parse_special */
    int32_t ids[16];
    int n = sd_tokenize(v, "<|end|>", 7, ids, 16, false, true);
    CHECK(n == 1 && ids[0] == 32007, "phi-3 <|end|> parsed: n=%d", n);
    n = sd_tokenize(v, "<|end|>", 7, ids, 16, false, false);
    CHECK(n > 1, "phi-3 <|end|> as text without parse_special: n=%d", n);
}

/* --------------------------------------- corrupt metadata (in-memory GGUF) */

typedef struct wbuf {
    unsigned char *p;
    size_t n, cap;
} wbuf;

static void w_bytes(wbuf *b, const void *s, size_t n) {
    while (b->n + n > b->cap) b->p = realloc(b->p, b->cap = b->cap ? 2 * b->cap : 256);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void w_u32(wbuf *b, uint32_t x) { w_bytes(b, &x, 4); }
static void w_u64(wbuf *b, uint64_t x) { w_bytes(b, &x, 8); }
static void w_str(wbuf *b, const char *s) { w_u64(b, strlen(s)); w_bytes(b, s, strlen(s)); }
static void w_key(wbuf *b, const char *k, uint32_t type) { w_str(b, k); w_u32(b, type); }

/* A vocab-only GGUF: tokens <unk> <s> </s> a b ab <0x61>, then options.
 * model: tokenizer.ggml.model; n_scores: element count of scores;
 * bos: bos id (written as uint32). */
static wbuf make_gguf(const char *model, uint32_t n_scores, uint32_t bos) {
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "a", "b", "ab", "<0x61>"};
    const uint32_t n = 7;
    wbuf b = {0};
    w_bytes(&b, "GGUF", 4);
    w_u32(&b, 3);
    w_u64(&b, 0); /* tensors */
    w_u64(&b, 5); /* keys */
    w_key(&b, "tokenizer.ggml.model", SD_GGUF_STRING);
    w_str(&b, model);
    w_key(&b, "tokenizer.ggml.tokens", SD_GGUF_ARRAY);
    w_u32(&b, SD_GGUF_STRING);
    w_u64(&b, n);
    for (uint32_t i = 0; i < n; i++) w_str(&b, toks[i]);
    w_key(&b, "tokenizer.ggml.scores", SD_GGUF_ARRAY);
    w_u32(&b, SD_GGUF_FLOAT32);
    w_u64(&b, n_scores);
    for (uint32_t i = 0; i < n_scores; i++) {
        float f = i == 5 ? -1.0f : -10.0f;
        w_bytes(&b, &f, 4);
    }
    w_key(&b, "tokenizer.ggml.token_type", SD_GGUF_ARRAY);
    w_u32(&b, SD_GGUF_INT32);
    w_u64(&b, n);
    static const int32_t types[] = {2, 3, 3, 1, 1, 1, 6};
    for (uint32_t i = 0; i < n; i++) w_u32(&b, (uint32_t)types[i]);
    w_key(&b, "tokenizer.ggml.bos_token_id", SD_GGUF_UINT32);
    w_u32(&b, bos);
    return b;
}

static sd_status load_mem(wbuf b, sd_vocab **v, char *err, size_t err_size) {
    sd_gguf *g = NULL;
    sd_status st = sd_gguf_open_mem(b.p, b.n, "mem.gguf", &g, err, err_size);
    CHECK(st == SD_OK, "synthetic gguf opens: %s", err);
    if (st == SD_OK) st = sd_vocab_load(g, v, err, err_size);
    sd_gguf_close(g);
    return st;
}

static void test_corrupt_metadata(void) {
    char err[256];
    sd_vocab *v = NULL;
    wbuf b = make_gguf("llama", 7, 1);
    sd_status st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_OK && v, "good synthetic vocab loads: %s", err);
    if (v) {
        /* " ab a" -> "▁" has no token: byte fallback "<0xE2>"... absent -> UNK */
        int32_t ids[16];
        int n = sd_tokenize(v, "aba", 3, ids, 16, false, false);
        /* "▁aba": ▁ -> 3 unknown bytes -> 3 x UNK; then "ab" (merged), "a" */
        CHECK(n == 5 && ids[0] == 0 && ids[3] == 5 && ids[4] == 3, "tiny vocab: n=%d", n);
        sd_vocab_free(v);
        v = NULL;
    }
    free(b.p);
    b = make_gguf("llama", 6, 1);
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_ERR_FORMAT && !v, "scores count mismatch -> FORMAT, got %d", st);
    CHECK(strstr(err, "scores") != NULL, "message names the key: %s", err);
    free(b.p);
    b = make_gguf("llama", 7, 7);
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_ERR_FORMAT && !v, "bos out of range -> FORMAT, got %d", st);
    CHECK(strstr(err, "bos_token_id") != NULL, "message names the key: %s", err);
    free(b.p);
    b = make_gguf("t5", 7, 1);
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_ERR_UNSUPPORTED && !v, "unknown model -> UNSUPPORTED, got %d", st);
    free(b.p);
    b = make_gguf("gpt2", 7, 1); /* gpt2 without merges, as llama.cpp: refused */
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_ERR_FORMAT && !v, "gpt2 without merges -> FORMAT, got %d", st);
    CHECK(strstr(err, "merges") != NULL, "message names the key: %s", err);
    free(b.p);
}


/* ------------------------------------------------------------ 5. BPE */

/* Pre-tokenizer splits, one case per pre-tokenizer (expected pieces
 * joined by '|'; computed independently with Python's regex module over
 * the same regexes, non-ASCII whitespace replaced by U+000B first as
 * llama.cpp does). */
static void test_bpe_pretokenizer(void) {
    static const struct {
        sd_bpe_pre pre;
        const char *text, *pieces;
    } cases[] = {
        {SD_BPE_PRE_GPT2, "Hello world's  x\n\n  12 !! \xc3\xa9t\xc3\xa9\xc2\xbd",
         "Hello| world|'s| | x|\n\n | 12| !!| \xc3\xa9t\xc3\xa9|\xc2\xbd"},
        {SD_BPE_PRE_LLAMA3, "I'M HERE'S 12345 \r\n\n  x\tHello !!\n  ",
         "I|'M| HERE|'S| |123|45| \r\n\n| | x|\tHello| !!\n|  "},
        {SD_BPE_PRE_QWEN2, "I'M HERE'S 12345 \r\n\n  x\tHello !!\n  ",
         "I|'M| HERE|'S| |1|2|3|4|5| \r\n\n| | x|\tHello| !!\n|  "},
        {SD_BPE_PRE_DEEPSEEK_LLM, "Hello \xe4\xb8\x96\xe7\x95\x8c 12 \xc3\x80" "b\xd0\x96\xe3\x80\x80x!  ",
         "Hello| |\xe4\xb8\x96\xe7\x95\x8c| |12| \xc3\x80|b|\xd0\x96|\xe3\x80\x80x|!|  "},
        {SD_BPE_PRE_DEEPSEEK_CODER, "int x=42;\n  y\xe4\xbd\xa0\xe5\xa5\xbd",
         "int| x|=|4|2|;|\n| | y|\xe4\xbd\xa0\xe5\xa5\xbd"},
        {SD_BPE_PRE_FALCON, "a+=1234567 <b>", "a|+=|123|456|7| |<|b|>"},
        {SD_BPE_PRE_STARCODER, "x123 y", "x|1|2|3| y"},
        {SD_BPE_PRE_DEFAULT, "a+=1234567 <b>", "a|+=|123|456|7| |<|b|>"},
        /* invalid bytes are symbols (like U+FFFD): "a", "\xff", " \xfe\x80", "b" */
        {SD_BPE_PRE_GPT2, "a\xff \xfe\x80" "b", "a|\xff| \xfe\x80|b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t *ends = NULL, n = 0, len = strlen(cases[i].text);
        sd_status st = sd_bpe_pretokenize(cases[i].pre, cases[i].text, len, &ends, &n);
        char got[256];
        size_t k = 0, start = 0;
        for (size_t j = 0; st == SD_OK && j < n && k + (ends[j] - start) + 2 < sizeof got; j++) {
            if (j) got[k++] = '|';
            memcpy(got + k, cases[i].text + start, ends[j] - start);
            k += ends[j] - start;
            start = ends[j];
        }
        got[k] = '\0';
        CHECK(st == SD_OK && n > 0 && ends[n - 1] == len && strcmp(got, cases[i].pieces) == 0,
              "pre %d case %zu: got '%s', expected '%s'", (int)cases[i].pre, i, got, cases[i].pieces);
        free(ends);
    }
    size_t *ends = (size_t *)1, n = 7;
    CHECK(sd_bpe_pretokenize(SD_BPE_PRE_GPT2, "", 0, &ends, &n) == SD_OK && !ends && n == 0, "empty text");
    CHECK(sd_bpe_pretokenize(SD_BPE_PRE_COUNT, "a", 1, &ends, &n) == SD_ERR_INVALID_ARG, "bad pre");
    CHECK(sd_bpe_pretokenize(SD_BPE_PRE_GPT2, NULL, 1, &ends, &n) == SD_ERR_INVALID_ARG, "NULL text");
}

/* GPT-2 vocabulary: specials, lossless invalid UTF-8, long inputs, pieces. */
static void test_bpe_gpt2(const sd_vocab *v) {
    CHECK(v->type == SD_VOCAB_BPE && v->pre == SD_BPE_PRE_GPT2 && !v->ignore_merges, "gpt-2 pre");
    CHECK(v->n_merges == 50000 && v->n_merges_skipped == 0, "gpt-2 merges: %d kept, %d skipped", v->n_merges,
          v->n_merges_skipped);
    CHECK(!sd_vocab_add_bos(v) && sd_vocab_bos(v) == 50256 && sd_vocab_eos(v) == 50256, "gpt-2 bos/eos");
    for (int b = 0; b < 256; b++) CHECK(v->bpe_byte_token[b] >= 0, "byte %d has a token", b);
    int32_t hi = sd_vocab_find(v, "\xc4\xa0" "hello", 7); /* "Ġhello" */
    char pb[16];
    CHECK(hi >= 0 && sd_token_to_piece(v, hi, pb, sizeof pb) == 6 && memcmp(pb, " hello", 6) == 0,
          "gpt2 piece of 'Ghello' is ' hello'");
    int32_t ids[64];
    int n = sd_tokenize(v, "Hello world", 11, ids, 64, false, false);
    CHECK(n == 2 && ids[0] == 15496 && ids[1] == 995, "'Hello world' -> 15496 995, got %d", n);
    n = sd_tokenize(v, "Hello world", 11, ids, 64, true, false);
    CHECK(n == 3 && ids[0] == 50256 && ids[1] == 15496, "with BOS: %d", n);

    /* special tokens: parsed only when asked */
    const char *t = "a<|endoftext|>b";
    n = sd_tokenize(v, t, strlen(t), ids, 64, false, true);
    CHECK(n == 3 && ids[1] == 50256, "<|endoftext|> parsed: n=%d", n);
    n = sd_tokenize(v, t, strlen(t), ids, 64, false, false);
    bool has = false;
    for (int i = 0; i < n && i < 64; i++) has |= ids[i] == 50256;
    CHECK(n > 3 && !has, "<|endoftext|> as text: n=%d", n);
    CHECK(sd_vocab_is_eog(v, 50256), "<|endoftext|> ends generation");

    /* invalid UTF-8: each invalid byte is its byte character's token, and
     * the round trip is exact; the stream emits only valid UTF-8 */
    const char bad[] = "a\xff\xfe b\xc3(\xe2\x82 \x80\x80\xed\xa0\x80 \xf4\x90\x80\x80 z\xf0\x9f";
    size_t blen = sizeof bad - 1;
    int nb = 0;
    int32_t *bids = tokenize_all(v, bad, blen, false, false, &nb);
    CHECK(bids && nb > 0, "invalid UTF-8 tokenizes: %d", nb);
    if (bids) {
        size_t dl = 0, sl = 0;
        char *dt = detokenize_all(v, bids, nb, &dl);
        CHECK(dl == blen && memcmp(dt, bad, blen) == 0, "invalid UTF-8 round trip");
        char *st = stream_detok(v, bids, nb, &sl, 64);
        CHECK(sl > 0, "stream of invalid input emitted something");
        free(dt);
        free(st);
    }
    free(bids);
    n = sd_tokenize(v, "\xff", 1, ids, 64, false, false);
    CHECK(n == 1 && ids[0] == v->bpe_byte_token[0xff], "lone 0xFF -> its byte token");

    /* short output buffer: the needed count, a prefix written */
    const char *s = "static int btrfs_free_tree_block(struct btrfs_trans_handle *trans)";
    int full = 0;
    int32_t *all = tokenize_all(v, s, strlen(s), false, false, &full);
    int32_t few[5] = {-7, -7, -7, -7, -7};
    int m = sd_tokenize(v, s, strlen(s), few, 4, false, false);
    CHECK(m == full && full > 4 && all && memcmp(few, all, 4 * sizeof *few) == 0 && few[4] == -7,
          "short buffer: %d vs %d", m, full);
    free(all);

    /* long inputs: one 200k-letter piece (BPE over 200k symbols), a 200k
     * whitespace run, 100k invalid bytes, mixed text; all round-trip */
    size_t big = 200000;
    char *txt = malloc(big);
    static const char fill[] = {'a', ' ', '\xff', 0};
    for (int kind = 0; kind < 4; kind++) {
        size_t len = kind == 2 ? big / 2 : big;
        for (size_t i = 0; i < len; i++)
            txt[i] = kind < 3 ? fill[kind] : "int x = 42;\n\t\xc3\xa9\xff "[i % 17];
        int nl = 0;
        int32_t *lids = tokenize_all(v, txt, len, false, false, &nl);
        CHECK(lids && nl > 0, "long input %d tokenizes: %d", kind, nl);
        if (lids) {
            size_t dl = 0;
            char *dt = detokenize_all(v, lids, nl, &dl);
            CHECK(dl == len && memcmp(dt, txt, len) == 0, "long input %d round trip", kind);
            free(dt);
        }
        free(lids);
    }
    free(txt);
}

/* A vocab-only gpt2 GGUF for hostile-merge tests: tokens are the 256 GPT-2
 * byte characters (ids 0..255 in byte order, unless !bytes) then extra[];
 * merges[] as strings (mode 0), as an int32 array (mode 1, wrong type) or
 * absent (mode 2); pre: tokenizer.ggml.pre (NULL: absent; "" : written as
 * an int32, wrong type). */
static wbuf make_bpe_gguf(const char *pre, bool bytes, const char *const *extra, int n_extra,
                          const char *const *merges, int n_merges, int mode) {
    uint32_t n_tok = (bytes ? 256u : 0u) + (uint32_t)n_extra;
    wbuf b = {0};
    w_bytes(&b, "GGUF", 4);
    w_u32(&b, 3);
    w_u64(&b, 0);
    w_u64(&b, 2 + (mode != 2) + (pre != NULL));
    w_key(&b, "tokenizer.ggml.model", SD_GGUF_STRING);
    w_str(&b, "gpt2");
    w_key(&b, "tokenizer.ggml.tokens", SD_GGUF_ARRAY);
    w_u32(&b, SD_GGUF_STRING);
    w_u64(&b, n_tok);
    for (int c = 0; bytes && c < 256; c++) {
        char ch[3] = {0};
        size_t k = sd_gpt2_byte_char((unsigned char)c, ch);
        w_u64(&b, k);
        w_bytes(&b, ch, k);
    }
    for (int i = 0; i < n_extra; i++) w_str(&b, extra[i]);
    if (mode == 0) {
        w_key(&b, "tokenizer.ggml.merges", SD_GGUF_ARRAY);
        w_u32(&b, SD_GGUF_STRING);
        w_u64(&b, (uint64_t)n_merges);
        for (int i = 0; i < n_merges; i++) w_str(&b, merges[i]);
    } else if (mode == 1) {
        w_key(&b, "tokenizer.ggml.merges", SD_GGUF_ARRAY);
        w_u32(&b, SD_GGUF_INT32);
        w_u64(&b, 2);
        w_u32(&b, 1);
        w_u32(&b, 2);
    }
    if (pre && *pre) {
        w_key(&b, "tokenizer.ggml.pre", SD_GGUF_STRING);
        w_str(&b, pre);
    } else if (pre) {
        w_key(&b, "tokenizer.ggml.pre", SD_GGUF_INT32);
        w_u32(&b, 5);
    }
    return b;
}

/* Tokenizes text (no BOS) and compares with the expected ids. */
static void expect_ids(const sd_vocab *v, const char *text, bool special, const int32_t *exp, int n_exp,
                       const char *what) {
    int32_t ids[32];
    int n = sd_tokenize(v, text, strlen(text), ids, 32, false, special);
    CHECK(n == n_exp && memcmp(ids, exp, (size_t)n_exp * sizeof *exp) == 0, "%s: '%s' gave %d tokens", what,
          text, n);
    if (!(n == n_exp && memcmp(ids, exp, (size_t)n_exp * sizeof *exp) == 0)) print_ids("got", ids, n);
}

static void test_bpe_hostile_vocab(void) {
    /* ids: 256 "ab" 257 "abc" 258 "Ġa" 259 "bc" 260 "aa" 261 "abca" 262 "<|endoftext|>" */
    static const char *const extra[] = {"ab", "abc", "\xc4\xa0\x61" /* Ga */, "bc", "aa", "abca", "<|endoftext|>"};
    static const char *const merges[] = {
        "a b", "ab c", "\xc4\xa0 a", "b c", "a a",
        "a b",     /* repeated pair: the first (rank 0) is kept */
        "nospace", /* no separator */
        "x", "", " ",
        "q zz",    /* part not a token */
        "c d",     /* result "cd" not a token */
        "a  b",    /* right part " b" not a token */
    };
    const int nx = (int)(sizeof extra / sizeof extra[0]), nm = (int)(sizeof merges / sizeof merges[0]);
    char err[256];
    sd_vocab *v = NULL;
    wbuf b = make_bpe_gguf("gpt-2", true, extra, nx, merges, nm, 0);
    sd_status st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_OK && v, "synthetic BPE vocab loads: %s", err);
    if (v) {
        CHECK(v->n_merges == 5 && v->n_merges_skipped == 8, "merges kept %d, skipped %d", v->n_merges,
              v->n_merges_skipped);
        CHECK(sd_vocab_find_merge(v, 'a', 'b') && sd_vocab_find_merge(v, 'a', 'b')->rank == 0, "a b has rank 0");
        CHECK(!sd_vocab_find_merge(v, 'c', 'd'), "c d skipped");
        CHECK(!sd_vocab_add_bos(v), "gpt-2 pre: no BOS by default");
        const int32_t A = 'a', B = 'b'; /* a byte character's id is the byte */
        expect_ids(v, "abc", false, (const int32_t[]){257}, 1, "a b, then ab c");
        expect_ids(v, "bca", false, (const int32_t[]){259, A}, 2, "b c");
        expect_ids(v, "aaa", false, (const int32_t[]){260, A}, 2, "equal ranks: leftmost first");
        expect_ids(v, " a b", false, (const int32_t[]){258, v->bpe_byte_token[' '], B}, 3, "space merges");
        expect_ids(v, "abca", false, (const int32_t[]){257, A}, 2, "merges, not the whole word");
        expect_ids(v, "abc<|endoftext|>", true, (const int32_t[]){257, 262}, 2, "special parsed");
        sd_vocab_free(v);
        v = NULL;
    }
    free(b.p);

    /* rank order decides: "b c" before "a b" -> "abc" = a + bc */
    static const char *const m2[] = {"b c", "a b", "ab c"};
    b = make_bpe_gguf("gpt-2", true, extra, nx, m2, 3, 0);
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_OK && v, "rank vocab loads: %s", err);
    if (v) {
        expect_ids(v, "abc", false, (const int32_t[]){'a', 259}, 2, "lower rank first");
        sd_vocab_free(v);
        v = NULL;
    }
    free(b.p);

    /* llama3: ignore_merges (a whole pre-token that is a token wins) and
     * BOS by default */
    b = make_bpe_gguf("llama3", true, extra, nx, merges, nm, 0);
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_OK && v, "llama3 vocab loads: %s", err);
    if (v) {
        CHECK(v->pre == SD_BPE_PRE_LLAMA3 && v->ignore_merges && sd_vocab_add_bos(v), "llama3 flags");
        expect_ids(v, "abca", false, (const int32_t[]){261}, 1, "ignore_merges");
        sd_vocab_free(v);
        v = NULL;
    }
    free(b.p);

    /* unknown pre -> default; no pre -> default */
    const char *pres[] = {"no-such-pre", NULL};
    for (int i = 0; i < 2; i++) {
        b = make_bpe_gguf(pres[i], true, extra, nx, merges, nm, 0);
        st = load_mem(b, &v, err, sizeof err);
        CHECK(st == SD_OK && v && v->pre == SD_BPE_PRE_DEFAULT, "pre '%s' -> default: %s",
              pres[i] ? pres[i] : "(none)", err);
        if (v) expect_ids(v, "abc", false, (const int32_t[]){257}, 1, "default pre");
        sd_vocab_free(v);
        v = NULL;
        free(b.p);
    }

    /* wrong types and a missing merges key are refused */
    b = make_bpe_gguf("", true, extra, nx, merges, nm, 0);
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_ERR_FORMAT && !v, "pre not a string -> FORMAT, got %d", st);
    free(b.p);
    b = make_bpe_gguf("gpt-2", true, extra, nx, merges, nm, 1);
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_ERR_FORMAT && !v && strstr(err, "merges"), "merges of ints -> FORMAT: %s", err);
    free(b.p);
    b = make_bpe_gguf("gpt-2", true, extra, nx, merges, nm, 2);
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_ERR_FORMAT && !v && strstr(err, "merges"), "no merges -> FORMAT: %s", err);
    free(b.p);

    /* byte characters missing (no UNK): those bytes are dropped, no crash */
    static const char *const few[] = {"a", "b", "ab"};
    static const char *const m3[] = {"a b"};
    b = make_bpe_gguf("gpt-2", false, few, 3, m3, 1, 0);
    st = load_mem(b, &v, err, sizeof err);
    CHECK(st == SD_OK && v, "vocab without byte characters loads: %s", err);
    if (v) {
        CHECK(v->bpe_byte_token[' '] < 0 && v->bpe_byte_token['a'] == 0, "byte table");
        expect_ids(v, "ab c\xff", false, (const int32_t[]){2}, 1, "missing bytes dropped");
        sd_vocab_free(v);
    }
    free(b.p);
}

/* Every BPE vector file; tiny-random-qwen2's reference prompts. */
static void test_bpe(void) {
    static const char *const names[] = {"gpt-2", "deepseek-llm", "deepseek-coder", "falcon",
                                        "mpt", "refact", "starcoder"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) test_vocab_vectors(names[i]);
    test_bpe_pretokenizer();

    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-gpt-2.gguf", test_shared_dir());
    sd_vocab *v = load_vocab(path);
    if (v) {
        test_bpe_gpt2(v);
        test_random_round_trip(v);
        sd_vocab_free(v);
    }
    /* with user-defined tokens; deepseek-llm has the characters of bytes
     * C0 C1 F5..FF only as user-defined text, mpt not at all: such an
     * invalid byte is tokenized as U+FFFD (as llama.cpp does), while E0
     * (a truncated sequence) has a normal token and comes back as is */
    static const char *const rt[] = {"deepseek-llm", "mpt"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", test_shared_dir(), rt[i]);
        v = load_vocab(path);
        if (!v) continue;
        test_random_round_trip(v);
        int n1 = 0, n2 = 0;
        int32_t *a = tokenize_all(v, "x\xff\xe0y", 4, false, false, &n1);
        int32_t *b = tokenize_all(v, "x\xef\xbf\xbd\xe0y", 6, false, false, &n2);
        CHECK(a && b && n1 == n2 && memcmp(a, b, (size_t)n1 * sizeof *a) == 0, "%s: 0xFF as U+FFFD", rt[i]);
        size_t dl = 0;
        char *dt = a ? detokenize_all(v, a, n1, &dl) : NULL;
        CHECK(dt && dl == 6 && memcmp(dt, "x\xef\xbf\xbd\xe0y", 6) == 0, "%s: U+FFFD and E0 come back", rt[i]);
        free(dt);
        free(a);
        free(b);
        sd_vocab_free(v);
    }

    snprintf(path, sizeof path, "%s/tiny-random-qwen2.gguf", test_model_dir());
    v = load_vocab(path);
    if (v) {
        CHECK(v->type == SD_VOCAB_BPE && v->pre == SD_BPE_PRE_GPT2 && !sd_vocab_add_bos(v),
              "tiny-random-qwen2: gpt-2 BPE, no BOS");
        test_reference_prompts(v, "tiny-random-qwen2", "code-btrfs");
        test_reference_prompts(v, "tiny-random-qwen2", "docs-filesystems");
        sd_vocab_free(v);
    }
    test_bpe_hostile_vocab();
}

/* ------------------------------------------------------------------ main */

int main(void) {
    test_vocab_vectors("llama-spm");
    test_vocab_vectors("phi-3");

    char path[1024];
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", test_model_dir());
    sd_vocab *v = load_vocab(path);
    if (v) {
        CHECK(sd_vocab_add_bos(v), "kernel-c-target adds BOS");
        test_reference_prompts(v, "kernel-c-target", "code-btrfs");
        test_reference_prompts(v, "kernel-c-target", "docs-filesystems");
        test_streaming(v);
        test_pieces_and_specials(v);
        test_hostile(v);
        test_random_round_trip(v);
        sd_vocab_free(v);
    }

    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-phi-3.gguf", test_shared_dir());
    v = load_vocab(path);
    if (v) {
        CHECK(sd_vocab_is_eog(v, 32000) && sd_vocab_is_eog(v, 32007) && !sd_vocab_is_eog(v, 32001),
              "phi-3 EOG: <|endoftext|> and <|end|>");
        test_phi3_user_defined(v);
        sd_vocab_free(v);
    }
    test_bpe();
    test_corrupt_metadata();
    return check_report("test_tokenizer");
}
