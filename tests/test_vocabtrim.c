/*
 * test_vocabtrim.c - VocabTrim (sd_ctx_params.vocab_subset):
 *  1. a trimmed context's logits equal the full context's on the subset ids
 *     bit for bit and are -inf elsewhere: draft F16 (tied head), draft Q8_0,
 *     target F16 (untied output.weight), qwen2 (V = 50257, not a multiple of
 *     16); batches of 1..24 output rows, 1 and 2 threads, after the output
 *     buffers grow, and through sd_decode_multi; a subset of all V ids
 *     (permuted) equals the full head everywhere;
 *  2. invalid subsets are rejected (SD_ERR_INVALID_ARG): ids out of range,
 *     duplicates, n outside 1..V, n without an array; sd_decode_multi
 *     refuses contexts with different subsets;
 *  3. -inf logits: every kernel table's sum_exp gives exp(-inf - m) = 0,
 *     sd_argmax and the sampler never pick a -inf token;
 *  4. the VocabTrim file reader: a save/load round trip, comments, blanks
 *     and CRLF accepted; a table of bad files rejected with SD_ERR_FORMAT
 *     (out of range, negative, duplicate, garbage, overflow, NUL, empty,
 *     too large), a missing file with SD_ERR_IO;
 *  5. greedy losslessness with trimmed drafters: sd_generate with `draft`
 *     and `tree-draft` restricted to (a) the ids of the bench prompts'
 *     tokens, (b) 2 ids (fewer than the tree's top-k), gives exactly plain
 *     decoding's ids on 6 bench prompts (96 tokens each), and (a) has
 *     drafts accepted; a subset of all V ids reproduces the untrimmed
 *     drafter's statistics exactly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "specdec.h"
#include "util/check.h"
#include "util/prompts.h"
#include "util/tables.h"

static sd_model *load(const char *file, int quantize, sd_backend backend) {
    char path[1024], err[256] = "";
    snprintf(path, sizeof path, "%s/%s", test_model_dir(), file);
    sd_model_params mp = sd_model_default_params();
    mp.quantize = quantize;
    mp.backend = backend;
    sd_model *m = NULL;
    CHECK(sd_model_load(path, &mp, &m, err, sizeof err) == SD_OK, "load %s: %s", path, err);
    return m;
}

static int n_vocab(const sd_model *m) { return sd_vocab_n_tokens(sd_model_vocab(m)); }

static sd_status new_ctx(const sd_model *m, sd_threadpool *pool, const int32_t *sub, int n_sub, sd_ctx **out) {
    sd_ctx_params cp = sd_ctx_default_params();
    cp.pool = pool;
    cp.n_ctx = 256;
    cp.vocab_subset = sub;
    cp.n_vocab_subset = n_sub;
    return sd_ctx_new(m, &cp, out);
}

/* A pseudo-random subset of n distinct ids of [0, V) (Fisher-Yates prefix,
 * so unsorted), always containing 0 and V - 1. */
static int32_t *random_subset(int V, int n, uint64_t seed) {
    int32_t *perm = malloc((size_t)V * sizeof *perm);
    for (int i = 0; i < V; i++) perm[i] = i;
    sd_rng rng;
    sd_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        int j = i + (int)(sd_rng_next(&rng) % (uint64_t)(V - i));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    bool has0 = false, hasl = false;
    for (int i = 0; i < n; i++) has0 |= perm[i] == 0, hasl |= perm[i] == V - 1;
    if (!has0 && n > 1) perm[n / 2] = 0;
    if (!hasl && n > 2) perm[n / 3] = V - 1;
    return perm; /* first n entries used */
}

/* Row-by-row comparison of trimmed logits t against full logits f. */
static void check_rows(const char *what, const sd_ctx *full, const sd_ctx *trim, const int32_t *sub, int n_sub,
                       int V) {
    uint8_t *in = calloc((size_t)V, 1);
    for (int j = 0; j < n_sub; j++) in[sub[j]] = 1;
    CHECK(sd_ctx_n_outputs(full) == sd_ctx_n_outputs(trim), "%s: output counts", what);
    for (int o = 0; o < sd_ctx_n_outputs(full); o++) {
        const float *f = sd_ctx_logits(full, o), *t = sd_ctx_logits(trim, o);
        CHECK(f && t, "%s: logits of row %d", what, o);
        if (!f || !t) break;
        int bad_eq = 0, bad_inf = 0, first = -1;
        for (int v = 0; v < V; v++) {
            if (in[v] ? memcmp(&f[v], &t[v], sizeof(float)) != 0 : t[v] != -INFINITY) {
                if (in[v]) bad_eq++;
                else bad_inf++;
                if (first < 0) first = v;
            }
        }
        CHECK(bad_eq == 0 && bad_inf == 0, "%s row %d: %d subset logits differ, %d others not -inf (first id %d)",
              what, o, bad_eq, bad_inf, first);
    }
    free(in);
}

/* Decodes the same batches on a full and a trimmed context of m. */
static void check_model(const char *name, const sd_model *m, sd_threadpool *pool, int n_sub) {
    const int V = n_vocab(m);
    int32_t *sub = random_subset(V, n_sub, 42 + (uint64_t)n_sub);
    sd_ctx *full = NULL, *trim = NULL;
    CHECK(new_ctx(m, pool, NULL, 0, &full) == SD_OK, "%s: full ctx", name);
    CHECK(new_ctx(m, pool, sub, n_sub, &trim) == SD_OK, "%s: trimmed ctx (%d ids)", name, n_sub);
    if (full && trim) {
        const char *text = "static int btrfs_check_leaf(struct extent_buffer *leaf)\n{\n\tstruct btrfs_fs_info *fs_info";
        int32_t ids[128];
        const sd_vocab *v = sd_model_vocab(m);
        int n = sd_tokenize(v, text, strlen(text), ids, 128, sd_vocab_add_bos(v), false);
        if (n < 8) /* a tokenizer this build lacks (qwen2's BPE): any ids do */
            for (n = 0; n < 24; n++) ids[n] = (int32_t)((n * 7919 + 13) % V);
        if (n > 24) n = 24;
        /* one output row (buffers at their first size), then all rows (they
         * grow), then one row again (the grown buffer keeps -inf) */
        const int rows[3][2] = {{0, 1}, {1, n - 3}, {n - 2, 2}};
        for (int s = 0; s < 3; s++) {
            uint8_t out[128];
            memset(out, s == 1 ? 1 : 0, sizeof out);
            sd_batch b = sd_batch_simple(ids + rows[s][0], rows[s][1]);
            if (s == 1) b.output = out;
            sd_status sf = sd_ctx_decode(full, &b), stt = sd_ctx_decode(trim, &b);
            CHECK(sf == SD_OK && stt == SD_OK, "%s: decode %d (%d rows at %d): status %d / %d", name, s,
                  rows[s][1], rows[s][0], sf, stt);
            char what[128];
            snprintf(what, sizeof what, "%s (%d ids, %d threads) step %d", name, n_sub,
                     sd_threadpool_n_threads(pool), s);
            check_rows(what, full, trim, sub, n_sub, V);
            /* the argmax of the trimmed row is the best subset id */
            const float *f = sd_ctx_logits(full, 0), *t = sd_ctx_logits(trim, 0);
            int32_t best = -1;
            for (int j = 0; j < n_sub; j++)
                if (best < 0 || f[sub[j]] > f[best] || (f[sub[j]] == f[best] && sub[j] < best)) best = sub[j];
            CHECK(sd_argmax(t, V) == best, "%s: argmax %d, best subset id %d", what, sd_argmax(t, V), best);
        }
        /* hidden-only outputs do not touch the head */
        sd_batch b = sd_batch_simple(ids, 2);
        b.out_flags = SD_OUTPUT_HIDDEN;
        sd_ctx_kv_clear(trim);
        CHECK(sd_ctx_decode(trim, &b) == SD_OK && sd_ctx_hidden(trim, 0) && !sd_ctx_logits(trim, 0),
              "%s: hidden-only decode", name);
    }
    sd_ctx_free(full);
    sd_ctx_free(trim);
    free(sub);
}

/* sd_decode_multi: two trimmed contexts == two single decodes; a trimmed
 * and a full context (or two different subsets) are refused. */
static void check_multi(const sd_model *m, sd_threadpool *pool) {
    const int V = n_vocab(m), n_sub = 700;
    int32_t *sub = random_subset(V, n_sub, 7), *sub2 = random_subset(V, n_sub, 8);
    sd_ctx *a = NULL, *b = NULL, *ref = NULL, *full = NULL, *other = NULL;
    new_ctx(m, pool, sub, n_sub, &a);
    new_ctx(m, pool, sub, n_sub, &b);
    new_ctx(m, pool, sub, n_sub, &ref);
    new_ctx(m, pool, NULL, 0, &full);
    new_ctx(m, pool, sub2, n_sub, &other);
    CHECK(a && b && ref && full && other, "multi: contexts");
    if (a && b && ref && full && other) {
        int32_t t1[5] = {1, 400, 401, 402, 403}, t2[3] = {1, 7000, 12};
        uint8_t o1[5] = {1, 0, 1, 0, 1}, o2[3] = {1, 1, 1};
        sd_batch bs[2] = {sd_batch_simple(t1, 5), sd_batch_simple(t2, 3)};
        bs[0].output = o1;
        bs[1].output = o2;
        sd_ctx *pair[2] = {a, b};
        CHECK(sd_decode_multi(pair, bs, 2) == SD_OK, "multi decode");
        CHECK(sd_ctx_decode(ref, &bs[0]) == SD_OK, "ref decode 0");
        CHECK(sd_ctx_decode(full, &bs[0]) == SD_OK, "full decode 0");
        check_rows("multi seq 0 vs full", full, a, sub, n_sub, V);
        for (int o = 0; o < 3; o++)
            CHECK(memcmp(sd_ctx_logits(a, o), sd_ctx_logits(ref, o), (size_t)V * sizeof(float)) == 0,
                  "multi seq 0 row %d == single decode", o);
        sd_ctx_kv_clear(full);
        CHECK(sd_ctx_decode(full, &bs[1]) == SD_OK, "full decode 1");
        check_rows("multi seq 1 vs full", full, b, sub, n_sub, V);
        sd_ctx *mixed[2] = {a, full}, *diff[2] = {a, other};
        int kv_a = sd_ctx_kv_min(a);
        CHECK(sd_decode_multi(mixed, bs, 2) == SD_ERR_INVALID_ARG, "multi: trimmed + full refused");
        CHECK(sd_decode_multi(diff, bs, 2) == SD_ERR_INVALID_ARG, "multi: different subsets refused");
        CHECK(sd_ctx_kv_min(a) == kv_a, "refused multi decode left the cache alone");
    }
    sd_ctx_free(a);
    sd_ctx_free(b);
    sd_ctx_free(ref);
    sd_ctx_free(full);
    sd_ctx_free(other);
    free(sub);
    free(sub2);
}

/* The full vocabulary, permuted: equal to the full head everywhere. */
static void check_all_ids(const sd_model *m, sd_threadpool *pool) {
    const int V = n_vocab(m);
    int32_t *sub = random_subset(V, V, 3);
    sd_ctx *full = NULL, *trim = NULL;
    CHECK(new_ctx(m, pool, NULL, 0, &full) == SD_OK && new_ctx(m, pool, sub, V, &trim) == SD_OK, "all-ids ctx");
    int32_t toks[4] = {1, 100, 200, 300};
    sd_batch b = sd_batch_simple(toks, 4);
    if (full && trim) {
        sd_status sf = sd_ctx_decode(full, &b), stt = sd_ctx_decode(trim, &b);
        CHECK(sf == SD_OK && stt == SD_OK, "all-ids decode: status %d / %d", sf, stt);
        if (sf == SD_OK && stt == SD_OK)
            CHECK(memcmp(sd_ctx_logits(full, 0), sd_ctx_logits(trim, 0), (size_t)V * sizeof(float)) == 0,
                  "a subset of all V ids gives the full logits");
    }
    sd_ctx_free(full);
    sd_ctx_free(trim);
    free(sub);
}

static void check_invalid(const sd_model *m) {
    const int V = n_vocab(m);
    int32_t ok[3] = {5, 0, V - 1}, neg[2] = {3, -1}, big[2] = {3, V}, dup[4] = {1, 2, 3, 2};
    int32_t *all = random_subset(V, V, 9);
    sd_ctx *c = NULL;
    CHECK(new_ctx(m, NULL, ok, 3, &c) == SD_OK && c, "3 ids accepted");
    sd_ctx_free(c);
    c = NULL;
    struct { const char *what; const int32_t *ids; int n; } bad[] = {
        {"negative id", neg, 2}, {"id == n_vocab", big, 2}, {"duplicate", dup, 4},
        {"n = 0 with ids", ok, 0}, {"n < 0", ok, -1}, {"n = n_vocab + 1", all, V + 1},
        {"n without ids", NULL, 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = NULL;
        sd_status st = new_ctx(m, NULL, bad[i].ids, bad[i].n, &c);
        CHECK(st == SD_ERR_INVALID_ARG && c == NULL, "%s: status %d", bad[i].what, st);
        sd_ctx_free(c);
    }
    /* the drafter constructors pass it on */
    sd_drafter *d = NULL;
    char err[256] = "";
    CHECK(sd_drafter_new_model_ex(m, m, NULL, 64, 0.0f, dup, 4, &d, err, sizeof err) == SD_ERR_INVALID_ARG && !d,
          "draft drafter with a duplicate id refused");
    CHECK(err[0] != 0, "draft drafter: error message");
    CHECK(sd_drafter_new_model_tree_ex(m, m, NULL, 64, NULL, big, 2, &d, err, sizeof err) == SD_ERR_INVALID_ARG && !d,
          "tree drafter with an out-of-range id refused");
    free(all);
}

/* exp(-inf - m) = 0 in every kernel table; argmax and the sampler skip -inf. */
static void check_neg_inf(void) {
    const sd_kernels *tabs[3] = {sd_kernels_ref(), test_kernel_table("avx2"), test_kernel_table("avx512")};
    enum { N = 301 };
    float x[N], fin[N];
    int nf = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (i % 3 == 0) ? 0.01f * (float)(i % 17) - 0.5f : -INFINITY;
        if (x[i] != -INFINITY) fin[nf++] = x[i];
    }
    for (int t = 0; t < 3; t++) {
        if (!tabs[t]) continue;
        float s_all = tabs[t]->sum_exp(x, N, 0.5f), s_fin = tabs[t]->sum_exp(fin, nf, 0.5f);
        CHECK(isfinite(s_all) && fabsf(s_all - s_fin) <= 1e-5f * s_fin, "%s sum_exp with -inf: %g vs %g",
              tabs[t]->name, (double)s_all, (double)s_fin);
        float one[20];
        for (int i = 0; i < 20; i++) one[i] = -INFINITY;
        one[13] = 2.0f;
        CHECK(tabs[t]->sum_exp(one, 20, 2.0f) == 1.0f, "%s sum_exp of one finite entry", tabs[t]->name);
    }
    float l[8] = {-INFINITY, -INFINITY, -3.0f, -INFINITY, -5.0f, -INFINITY, -INFINITY, -INFINITY};
    CHECK(sd_argmax(l, 8) == 2, "argmax with -inf");
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 1.5f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sd_sampler *s = NULL;
    CHECK(sd_sampler_new(&sp, 8, &s) == SD_OK, "sampler");
    if (s) {
        float p[8];
        sd_sampler_dist(s, l, p);
        CHECK(p[2] > 0 && p[4] > 0 && fabsf(p[2] + p[4] - 1.0f) < 1e-6f, "dist on the finite logits");
        for (int i = 0; i < 8; i++)
            if (i != 2 && i != 4) CHECK(p[i] == 0.0f, "dist of a -inf logit is 0 (id %d)", i);
        for (int i = 0; i < 200; i++) {
            int32_t tok = sd_sampler_sample(s, l);
            CHECK(tok == 2 || tok == 4, "sampled a -inf token %d", tok);
            if (tok != 2 && tok != 4) break;
        }
    }
    sd_sampler_free(s);
}

/* Writes len bytes to a fresh temporary file; returns its path in buf. */
static const char *temp_file(char *buf, size_t size, const void *data, size_t len) {
    snprintf(buf, size, "/tmp/test_vocabtrim.XXXXXX");
    int fd = mkstemp(buf);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return buf;
    CHECK(write(fd, data, len) == (ssize_t)len, "write temp file");
    close(fd);
    return buf;
}

static void check_files(void) {
    char path[64], err[256];
    int32_t *ids = NULL;
    int n = 0;
    /* round trip */
    const int32_t want[5] = {7509, 13, 0, 8191, 42};
    temp_file(path, sizeof path, "", 0);
    CHECK(sd_vocab_subset_save(path, want, 5, "header\nsecond line", err, sizeof err) == SD_OK, "save: %s", err);
    CHECK(sd_vocab_subset_load(path, 8192, &ids, &n, err, sizeof err) == SD_OK, "load: %s", err);
    CHECK(n == 5 && ids && memcmp(ids, want, sizeof want) == 0, "round trip: %d ids", n);
    sd_vocab_subset_free(ids);
    char *text = test_read_file(path, NULL);
    CHECK(text && text[0] == '#', "the file starts with a '#' header line");
    free(text);
    remove(path);
    /* comments, blanks, CRLF, leading zeros */
    const char good[] = "# c\r\n\n  12 \r\n\t# indented comment\n0007\n8191";
    CHECK(sd_vocab_subset_parse(good, sizeof good - 1, 8192, &ids, &n, err, sizeof err) == SD_OK, "good: %s", err);
    CHECK(n == 3 && ids[0] == 12 && ids[1] == 7 && ids[2] == 8191, "good: ids");
    sd_vocab_subset_free(ids);
    /* hostile files */
    static const struct { const char *what, *text; size_t len; } bad[] = {
        {"out of range", "1\n8192\n", 0},
        {"negative", "1\n-3\n", 0},
        {"plus sign", "+3\n", 0},
        {"duplicate", "5\n6\n5\n", 0},
        {"two ids on a line", "1 2\n", 0},
        {"trailing garbage", "12abc\n", 0},
        {"hex", "0x10\n", 0},
        {"overflow", "99999999999999999999999\n", 0},
        {"NUL byte", "12\0\n", 4},
        {"empty", "", 0},
        {"only comments", "# nothing\n\n", 0},
        {"comment after an id", "12 # no\n", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        temp_file(path, sizeof path, bad[i].text, len);
        ids = (int32_t *)path; /* must come back NULL */
        err[0] = 0;
        sd_status st = sd_vocab_subset_load(path, 8192, &ids, &n, err, sizeof err);
        CHECK(st == SD_ERR_FORMAT && ids == NULL && err[0], "%s: status %d (%s)", bad[i].what, st, err);
        remove(path);
    }
    /* more ids than the vocabulary has: caught as a duplicate or the bound */
    CHECK(sd_vocab_subset_parse("0\n1\n2\n3\n", 8, 3, &ids, &n, err, sizeof err) == SD_ERR_FORMAT, "4 ids, V = 3");
    /* too large: more than 1 MiB + 32 bytes per token, even if all comments */
    size_t big = ((size_t)1 << 20) + 16 * 32 + 1;
    char *huge = malloc(big);
    memset(huge, '#', big);
    temp_file(path, sizeof path, huge, big);
    CHECK(sd_vocab_subset_load(path, 16, &ids, &n, err, sizeof err) == SD_ERR_FORMAT, "too large: %s", err);
    remove(path);
    free(huge);
    CHECK(sd_vocab_subset_load("/nonexistent/vocab.txt", 8192, &ids, &n, err, sizeof err) == SD_ERR_IO, "missing");
    CHECK(sd_vocab_subset_load(path, 0, &ids, &n, err, sizeof err) == SD_ERR_INVALID_ARG, "n_vocab 0");
}

static void check_lossless(sd_model *target, sd_model *draft, sd_threadpool *pool) {
    const int V = n_vocab(target);
    /* every 6th bench prompt (complete, edit and docs), 96 tokens each;
     * SD_TEST_QUICK (sanitizer runs): the first two of those */
    enum { MAXP = 6 };
    test_prompt ps[MAXP];
    const int np = test_load_prompts(sd_model_vocab(target), ps, getenv("SD_TEST_QUICK") ? 2 : MAXP, 6);
    CHECK(np == (getenv("SD_TEST_QUICK") ? 2 : 6), "bench prompts: %d", np);
    /* (a) the ids of the prompts' own tokens; (b) 3 ids; (c) all V ids */
    uint8_t *in = calloc((size_t)V, 1);
    int32_t *sub_a = malloc((size_t)V * sizeof *sub_a);
    int n_a = 0;
    for (int i = 0; i < np; i++)
        for (int j = 0; j < ps[i].n; j++)
            if (!in[ps[i].ids[j]]) in[ps[i].ids[j]] = 1, sub_a[n_a++] = ps[i].ids[j];
    int32_t sub_b[2] = {13, 12}; /* "<0x0A>", "<0x09>": fewer than the tree's top-k (3) */
    int32_t *sub_c = random_subset(V, V, 11);
    sd_ctx_params cp = sd_ctx_default_params();
    cp.pool = pool;
    cp.n_ctx = 2048;
    sd_ctx *ctx = NULL;
    CHECK(sd_ctx_new(target, &cp, &ctx) == SD_OK, "target ctx");
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 0.0f;
    sd_sampler *smp = NULL;
    CHECK(sd_sampler_new(&sp, V, &smp) == SD_OK, "sampler");
    enum { ND = 6 };
    const char *names[ND] = {"draft", "draft/prompt-ids", "draft/2-ids", "draft/all-ids",
                             "tree-draft/prompt-ids", "tree-draft/2-ids"};
    sd_drafter *d[ND] = {NULL};
    char err[256] = "";
    sd_tree_params tp = sd_tree_default_params();
    CHECK(sd_drafter_new_model(draft, target, pool, 2048, 0.0f, &d[0], err, sizeof err) == SD_OK, "%s", err);
    CHECK(sd_drafter_new_model_ex(draft, target, pool, 2048, 0.0f, sub_a, n_a, &d[1], err, sizeof err) == SD_OK, "%s", err);
    CHECK(sd_drafter_new_model_ex(draft, target, pool, 2048, 0.0f, sub_b, 2, &d[2], err, sizeof err) == SD_OK, "%s", err);
    CHECK(sd_drafter_new_model_ex(draft, target, pool, 2048, 0.0f, sub_c, V, &d[3], err, sizeof err) == SD_OK, "%s", err);
    CHECK(sd_drafter_new_model_tree_ex(draft, target, pool, 2048, &tp, sub_a, n_a, &d[4], err, sizeof err) == SD_OK, "%s", err);
    CHECK(sd_drafter_new_model_tree_ex(draft, target, pool, 2048, &tp, sub_b, 2, &d[5], err, sizeof err) == SD_OK, "%s", err);
    int64_t acc[ND] = {0}, drafted[ND] = {0}, steps[ND] = {0};
    int32_t ref[512], got[512];
    for (int i = 0; i < np && ctx && smp; i++) {
        sd_gen_params gp = sd_gen_default_params();
        gp.n_predict = ps[i].max_tokens < 96 ? ps[i].max_tokens : 96;
        gp.ignore_eos = true;
        int n_ref = 0, n_got = 0;
        CHECK(sd_generate(ctx, smp, NULL, ps[i].ids, ps[i].n, &gp, ref, &n_ref, NULL) == SD_OK, "plain %s", ps[i].id);
        for (int k = 0; k < ND; k++) {
            if (!d[k]) continue;
            gp.draft_max = k >= 4 ? 8 : 6;
            sd_spec_stats st;
            memset(&st, 0, sizeof st);
            sd_status rc = sd_generate(ctx, smp, d[k], ps[i].ids, ps[i].n, &gp, got, &n_got, &st);
            int at = 0;
            while (at < n_got && at < n_ref && got[at] == ref[at]) at++;
            CHECK(rc == SD_OK && n_got == n_ref && at == n_ref, "%s %s: differs from plain decoding at token %d",
                  ps[i].id, names[k], at);
            acc[k] += st.accepted;
            drafted[k] += st.drafted;
            steps[k] += st.steps;
        }
    }
    for (int k = 0; k < ND; k++)
        fprintf(stderr, "  %-22s drafted %6lld accepted %6lld (%.1f%%) steps %lld\n", names[k], (long long)drafted[k],
                (long long)acc[k], drafted[k] ? 100.0 * (double)acc[k] / (double)drafted[k] : 0.0, (long long)steps[k]);
    CHECK(acc[1] > 0 && acc[4] > 0, "trimmed drafters had drafts accepted");
    CHECK(acc[3] == acc[0] && drafted[3] == drafted[0] && steps[3] == steps[0],
          "a subset of all ids drafts exactly like the full head");
    for (int k = 0; k < ND; k++) sd_drafter_free(d[k]);
    sd_sampler_free(smp);
    sd_ctx_free(ctx);
    free(sub_c);
    free(sub_a);
    free(in);
    test_free_prompts(ps, np);
}

/* Prints how long the section since the previous call took. */
static void section(const char *name) {
    static double last; /* test-process state */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    if (name) fprintf(stderr, "[%s: %.1f s]\n", name, now - last);
    last = now;
}

int main(void) {
    section(NULL);
    sd_threadpool *pool1 = NULL, *pool2 = NULL;
    CHECK(sd_threadpool_new(1, &pool1) == SD_OK && sd_threadpool_new(2, &pool2) == SD_OK, "pools");
    check_neg_inf();
    check_files();
    section("-inf kernels, files");
    sd_model *draft = load("kernel-c-draft.gguf", SD_TYPE_NONE, SD_BACKEND_AUTO);
    sd_model *target = load("kernel-c-target.gguf", SD_TYPE_NONE, SD_BACKEND_AUTO);
    if (draft) {
        check_invalid(draft);
        for (int t = 0; t < 2; t++) {
            check_model("draft f16", draft, t ? pool2 : pool1, 1024);
            check_model("draft f16", draft, t ? pool2 : pool1, 37);
            check_model("draft f16", draft, t ? pool2 : pool1, 1);
        }
        check_multi(draft, pool2);
        check_all_ids(draft, pool2);
    }
    section("draft f16: logits, invalid subsets, multi");
    /* every kernel table and weight type the head can have */
    const sd_backend backends[3] = {SD_BACKEND_AUTO, SD_BACKEND_AVX2, SD_BACKEND_REF};
    for (int b = 0; b < 3; b++) {
        char name[64];
        if (!test_backend_here(backends[b])) continue; /* named skip */
        if (b > 0) {
            sd_model *m = load("kernel-c-draft.gguf", SD_TYPE_NONE, backends[b]);
            snprintf(name, sizeof name, "draft f16 %s", b == 1 ? "avx2" : "ref");
            if (m) check_model(name, m, pool2, 501);
            sd_model_free(m);
        }
        sd_model *q8 = load("kernel-c-draft.gguf", SD_TYPE_Q8_0, backends[b]);
        snprintf(name, sizeof name, "draft q8_0 %s", b == 0 ? "auto" : b == 1 ? "avx2" : "ref");
        if (q8) check_model(name, q8, pool2, 2001);
        sd_model_free(q8);
        sd_model *qwen = load("tiny-random-qwen2.gguf", SD_TYPE_NONE, backends[b]);
        snprintf(name, sizeof name, "qwen2 (V = 50257) %s", b == 0 ? "auto" : b == 1 ? "avx2" : "ref");
        if (qwen) {
            check_model(name, qwen, pool2, 4099);
            /* the last V % 4 ids, which the full head computes alone */
            int32_t tail[3] = {50256, 3, 50254};
            sd_ctx *full = NULL, *trim = NULL;
            int32_t toks[3] = {50, 60, 70};
            sd_batch bt = sd_batch_simple(toks, 3);
            if (new_ctx(qwen, pool2, NULL, 0, &full) == SD_OK && new_ctx(qwen, pool2, tail, 3, &trim) == SD_OK &&
                sd_ctx_decode(full, &bt) == SD_OK && sd_ctx_decode(trim, &bt) == SD_OK)
                check_rows(name, full, trim, tail, 3, n_vocab(qwen));
            else
                CHECK(0, "%s: tail ids decode", name);
            sd_ctx_free(full);
            sd_ctx_free(trim);
        }
        sd_model_free(qwen);
        section(b == 0 ? "auto kernels" : b == 1 ? "avx2 kernels" : "ref kernels");
    }
    if (target) check_model("target f16 (untied head)", target, pool2, 1500);
    section("target");
    if (target && draft) check_lossless(target, draft, pool1);
    section("lossless");
    sd_model_free(target);
    sd_model_free(draft);
    sd_threadpool_free(pool1);
    sd_threadpool_free(pool2);
    return check_report("test_vocabtrim");
}
