/* vocabtrim.c - `specdec vocabtrim [-m TARGET] -f CORPUS [-n N] [-k K]
 * [-c CHUNK] [--gen G] [-t N] -o FILE`: the VocabTrim calibration run.
 *
 * Counts the tokens the TARGET produces on calibration text and writes the
 * K most frequent as a VocabTrim file (sd_vocab_subset_save; most frequent
 * first, ties by lower id, so the first K' lines are the file for K' < K)
 * for `--draft-vocab FILE`.
 *
 * What is counted (the tokens a draft will be asked to predict). The corpus
 * is cut into chunks of CHUNK tokens (BOS + CHUNK-1 corpus tokens) spread
 * evenly over it, without overlap; about N tokens are counted in all.
 *  - default (--gen 128): each chunk is a prompt and the target greedily
 *    generates G tokens after it; the generated ids are counted. These are
 *    the target's own continuations, loops and copies included, which is
 *    what greedy verification asks the draft to predict during decoding.
 *  - --gen 0, teacher-forced: one forward per chunk gives the target's
 *    argmax at every position of the corpus text (~10x faster per counted
 *    token, but it misses the tokens the target repeats from its own
 *    output: on ../shared/bench it kept less acceptance; see README).
 * The corpus must not be the text the drafter is evaluated on.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "progress.h"

typedef struct vt_opts {
    const char *out;  /* -o */
    int k;            /* -k */
    int chunk;        /* -c (tool_opts.n_ctx is reused for it)  */
    int gen;          /* --gen */
} vt_opts;

static int extra_opt(const char *a, const char *next, void *user) {
    vt_opts *v = user;
    bool o = !strcmp(a, "-o") || !strcmp(a, "--output"), k = !strcmp(a, "-k"), g = !strcmp(a, "--gen");
    if (!o && !k && !g) return 0;
    if (!next) {
        fprintf(stderr, "error: %s needs a value\n", a);
        return -1;
    }
    if (o) {
        v->out = next;
        return 2;
    }
    char *end;
    long x = strtol(next, &end, 10);
    if (*end || end == next || x < (k ? 1 : 0) || x > (1 << 20)) {
        fprintf(stderr, "error: %s expects an integer in [%d, %d], got '%s'\n", a, k ? 1 : 0, 1 << 20, next);
        return -1;
    }
    if (k) v->k = (int)x;
    else v->gen = (int)x;
    return 2;
}

typedef struct vt_rank {
    int64_t count;
    int32_t id;
} vt_rank;

/* Descending count, then ascending id. */
static int cmp_rank(const void *pa, const void *pb) {
    const vt_rank *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Teacher-forced: counts the argmax of every row of one chunk. */
static sd_status count_forced(sd_ctx *ctx, const int32_t *toks, int n, int V, int64_t *counts) {
    uint8_t *out = malloc((size_t)n);
    if (!out) return SD_ERR_NOMEM;
    memset(out, 1, (size_t)n);
    sd_ctx_kv_clear(ctx);
    sd_batch b = sd_batch_simple(toks, n);
    b.output = out;
    sd_status st = sd_ctx_decode(ctx, &b);
    free(out);
    if (st != SD_OK) return st;
    for (int i = 0; i < n; i++) counts[sd_argmax(sd_ctx_logits(ctx, i), V)]++;
    return SD_OK;
}

/* --gen: counts the target's greedy continuation of one chunk. */
static sd_status count_generated(sd_ctx *ctx, sd_sampler *smp, const int32_t *toks, int n, int gen,
                                 int32_t *buf, int64_t *counts) {
    sd_gen_params gp = sd_gen_default_params();
    gp.n_predict = gen;
    gp.ignore_eos = true;
    int n_out = 0;
    sd_ctx_kv_clear(ctx);
    sd_status st = sd_generate(ctx, smp, NULL, toks, n, &gp, buf, &n_out, NULL);
    if (st != SD_OK) return st;
    for (int i = 0; i < n_out; i++) counts[buf[i]]++;
    return SD_OK;
}

int cmd_vocabtrim(int argc, char **argv) {
    tool_opts o;
    vt_opts v = {.out = NULL, .k = 1024, .chunk = 0, .gen = 128};
    if (tool_parse(argc, argv, 2, &o, extra_opt, &v) != 0) return 1;
    bool n_given = false;
    for (int i = 2; i < argc; i++) n_given |= !strcmp(argv[i], "-n") || !strcmp(argv[i], "--n-predict");
    const int n_count = n_given ? o.n_predict : 65536; /* -n: tokens to count */
    v.chunk = o.n_ctx ? o.n_ctx : (v.gen ? 256 : 512);
    if (!v.out || !o.file || o.prompt) {
        fprintf(stderr, "error: vocabtrim needs a corpus (-f FILE) and an output file (-o FILE)\n");
        return 1;
    }
    if (v.chunk < 2 || n_count < 1) {
        fprintf(stderr, "error: vocabtrim needs -c >= 2 and -n >= 1\n");
        return 1;
    }
    size_t len = 0;
    char *text = tool_read_prompt(&o, &len);
    if (!text) return 1;
    sd_model *m = tool_load_model(&o, NULL);
    if (!m) {
        free(text);
        return 1;
    }
    sd_model_info info;
    sd_model_get_info(m, &info);
    const int V = info.n_vocab;
    const sd_vocab *vocab = sd_model_vocab(m);
    int n_corpus = 0;
    int32_t *corpus = tool_tokenize(vocab, text, len, false, o.parse_special, &n_corpus);
    free(text);
    int32_t *chunk = malloc((size_t)v.chunk * sizeof *chunk);
    int32_t *gen_buf = malloc((size_t)(v.gen > 0 ? v.gen : 1) * sizeof *gen_buf);
    int64_t *counts = calloc((size_t)V, sizeof *counts);
    vt_rank *rank = malloc((size_t)V * sizeof *rank);
    sd_threadpool *pool = NULL;
    sd_ctx *ctx = NULL;
    sd_sampler *smp = NULL;
    int rc = 1;
    if (!corpus || !chunk || !gen_buf || !counts || !rank || n_corpus < 1) {
        fprintf(stderr, "error: vocabtrim: %s\n", n_corpus < 1 && corpus ? "empty corpus" : "out of memory");
        goto done;
    }
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 0.0f;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = v.chunk + v.gen;
    cp.attn_compat = o.attn_compat;
    sd_status st = sd_threadpool_new(o.n_threads, &pool);
    cp.pool = pool;
    if (st == SD_OK) st = sd_ctx_new(m, &cp, &ctx);
    if (st == SD_OK) st = sd_sampler_new(&sp, V, &smp);
    if (st != SD_OK) {
        fprintf(stderr, "error: vocabtrim: %s\n", sd_status_str(st));
        goto done;
    }

    /* Chunks: BOS (if the vocabulary adds one) + body corpus tokens, spread
     * evenly over the corpus without overlap. */
    const bool bos = !o.no_bos && sd_vocab_add_bos(vocab) && sd_vocab_bos(vocab) >= 0;
    const int body = v.chunk - (bos ? 1 : 0) < n_corpus ? v.chunk - (bos ? 1 : 0) : n_corpus;
    const int per = v.gen > 0 ? v.gen : body + (bos ? 1 : 0); /* tokens counted per chunk */
    int n_chunks = (n_count + per - 1) / per;
    if (n_chunks > n_corpus / body) n_chunks = n_corpus / body;
    if (n_chunks < 1) n_chunks = 1;
    fprintf(stderr, "vocabtrim: %d corpus tokens, %d chunk(s) of %d tokens, %s, %d threads\n", n_corpus, n_chunks,
            body + (bos ? 1 : 0), v.gen > 0 ? "greedy generation" : "teacher-forced argmax", o.n_threads);
    double t0 = tool_now_ms();
    int64_t total = 0;
    tool_progress *prog = tool_progress_begin("vocabtrim", n_chunks, "chunks"); /* NULL off a terminal */
    for (int c = 0; c < n_chunks; c++) {
        size_t start = (size_t)c * (size_t)(n_corpus - body) / (size_t)n_chunks;
        int n = 0;
        if (bos) chunk[n++] = sd_vocab_bos(vocab);
        memcpy(chunk + n, corpus + start, (size_t)body * sizeof *chunk);
        n += body;
        st = v.gen > 0 ? count_generated(ctx, smp, chunk, n, v.gen, gen_buf, counts)
                       : count_forced(ctx, chunk, n, V, counts);
        if (st != SD_OK) {
            tool_progress_end(prog);
            fprintf(stderr, "error: vocabtrim: chunk %d: %s\n", c, sd_status_str(st));
            goto done;
        }
        tool_progress_update(prog, c + 1);
    }
    tool_progress_end(prog);
    int n_seen = 0;
    for (int t = 0; t < V; t++) {
        rank[t] = (vt_rank){.count = counts[t], .id = t};
        total += counts[t];
        n_seen += counts[t] > 0;
    }
    qsort(rank, (size_t)V, sizeof *rank, cmp_rank);
    fprintf(stderr, "vocabtrim: counted %lld tokens (%d distinct) in %.1f s; coverage of the top K:",
            (long long)total, n_seen, (tool_now_ms() - t0) / 1e3);
    const int ks[6] = {256, 512, 1024, 2048, 4096, v.k};
    for (int i = 0; i < 6; i++) {
        if (ks[i] > V || (i < 5 && ks[i] == v.k)) continue;
        int64_t cov = 0;
        for (int j = 0; j < ks[i]; j++) cov += rank[j].count;
        fprintf(stderr, " K=%d %.2f%%", ks[i], total ? 100.0 * (double)cov / (double)total : 0.0);
    }
    fprintf(stderr, "\n");
    int k = v.k < n_seen ? v.k : n_seen;
    if (k < v.k)
        fprintf(stderr, "warning: only %d distinct tokens were produced; writing %d ids, not %d\n", n_seen, k, v.k);
    int64_t cov = 0;
    for (int j = 0; j < k; j++) cov += rank[j].count;
    int32_t *ids = malloc((size_t)k * sizeof *ids);
    if (!ids) goto done;
    for (int j = 0; j < k; j++) ids[j] = rank[j].id;
    char comment[1024];
    snprintf(comment, sizeof comment,
             "specdec vocabtrim: %d of %d token ids, most frequent first, of the target's %s on %s\n"
             "counted %lld tokens in %d chunks of %d; these ids cover %.2f%% of them",
             k, V, v.gen > 0 ? "greedy generations" : "teacher-forced argmax", o.file, (long long)total, n_chunks,
             body + (bos ? 1 : 0), total ? 100.0 * (double)cov / (double)total : 0.0);
    char err[512] = "";
    st = sd_vocab_subset_save(v.out, ids, k, comment, err, sizeof err);
    free(ids);
    if (st != SD_OK) {
        fprintf(stderr, "error: vocabtrim: %s (%s)\n", err, sd_status_str(st));
        goto done;
    }
    fprintf(stderr, "vocabtrim: wrote %d ids (coverage %.2f%%) to %s\n", k,
            total ? 100.0 * (double)cov / (double)total : 0.0, v.out);
    rc = 0;
done:
    sd_sampler_free(smp);
    sd_ctx_free(ctx);
    sd_threadpool_free(pool);
    free(rank);
    free(counts);
    free(gen_buf);
    free(chunk);
    free(corpus);
    sd_model_free(m);
    return rc;
}
