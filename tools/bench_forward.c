/* bench_forward.c - `specdec bench-forward`: the numbers speculation lives
 * on. For each model (target, draft) at its stored type and at Q8_0: decode
 * tokens/s at an empty context and at 728 tokens of context, achieved GB/s
 * of weight traffic, and the cost of one forward of n = 1..32 tokens
 * relative to n = 1 (at 256 tokens of context). With --draft-vocab FILE
 * the draft is also measured with its output head restricted to the ids of
 * that VocabTrim file (rows "draft-K"). --single: only the -m model, at its
 * stored types (e.g. a llama.cpp-quantized file). The type column is that of
 * blk.0.ffn_gate (files may mix types per tensor). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

typedef struct bench_extra {
    const char *draft;
    const char *draft_vocab;  /* --draft-vocab FILE */
    int reps;
    int single;   /* --single: only the -m model at its stored types */
} bench_extra;

static int extra_opt(const char *a, const char *next, void *user) {
    bench_extra *e = user;
    if (!strcmp(a, "-md") || !strcmp(a, "--model-draft")) {
        if (!next) return -1;
        e->draft = next;
        return 2;
    }
    if (!strcmp(a, "--draft-vocab")) {
        if (!next) return -1;
        e->draft_vocab = next;
        return 2;
    }
    if (!strcmp(a, "--single")) {
        e->single = 1;
        return 1;
    }
    if (!strcmp(a, "--reps")) {
        if (!next || atoi(next) < 1) return -1;
        e->reps = atoi(next);
        return 2;
    }
    return 0;
}

typedef struct bench_row {
    char model[64];
    const char *type;
    double tps_empty, tps_728, gbps_empty, gbps_728;
    double cost[6];       /* ms per forward, n = 1,2,4,8,16,32 */
    double bytes;         /* weight bytes one forward reads */
    double macs_int8, macs_float; /* multiply-adds per token */
} bench_row;

/* The roofline's time for a forward of n tokens: the weights' bytes at the
 * measured read bandwidth, or the multiply-adds at the measured peaks,
 * whichever is longer (ms). */
static double roof_ms(const bench_row *r, const sd_machine *mc, int n) {
    double mem = r->bytes / (mc->read_gbps * 1e9);
    double cmp = 0;
    if (mc->dot_gmacs > 0) cmp += n * r->macs_int8 / (mc->dot_gmacs * 1e9);
    if (mc->fma_gmacs > 0) cmp += n * r->macs_float / (mc->fma_gmacs * 1e9);
    return 1e3 * (mem > cmp ? mem : cmp);
}

static const int k_batch[6] = {1, 2, 4, 8, 16, 32};

/* Decodes n_steps single tokens after a prefill of n_prefill; tokens/s. */
static double decode_rate(sd_ctx *ctx, int n_vocab, int n_prefill, int n_steps) {
    int32_t *toks = malloc((size_t)(n_prefill > 0 ? n_prefill : 1) * sizeof *toks);
    if (!toks) return 0;
    for (int i = 0; i < n_prefill; i++) toks[i] = (int32_t)((i * 7919 + 13) % n_vocab);
    sd_ctx_kv_clear(ctx);
    if (n_prefill > 0) {
        sd_batch b = sd_batch_simple(toks, n_prefill);
        if (sd_ctx_decode(ctx, &b) != SD_OK) { free(toks); return 0; }
    }
    free(toks);
    double t0 = tool_now_ms();
    for (int i = 0; i < n_steps; i++) {
        int32_t t = (int32_t)((i * 31 + 5) % n_vocab);
        sd_batch b = sd_batch_simple(&t, 1);
        if (sd_ctx_decode(ctx, &b) != SD_OK) return 0;
    }
    double ms = tool_now_ms() - t0;
    return n_steps / (ms / 1e3);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ms per forward of n tokens (all rows output logits, as verification
 * does) at a context of n_past tokens: the median over reps, each forward
 * followed by a rollback to n_past, so every rep reads the weights as a
 * decode step does. */
static double forward_cost(sd_ctx *ctx, int n_vocab, int n_past, int n, int reps) {
    int32_t toks[32];
    uint8_t out[32];
    for (int i = 0; i < n; i++) { toks[i] = (int32_t)((i * 101 + 7) % n_vocab); out[i] = 1; }
    double *ms = malloc((size_t)reps * sizeof *ms);
    if (!ms) return 0;
    for (int r = 0; r < reps; r++) {
        sd_ctx_kv_truncate(ctx, n_past);
        sd_batch b = sd_batch_simple(toks, n);
        b.output = out;
        double t0 = tool_now_ms();
        if (sd_ctx_decode(ctx, &b) != SD_OK) { free(ms); return 0; }
        ms[r] = tool_now_ms() - t0;
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    double med = ms[reps / 2];
    free(ms);
    return med;
}

static int bench_model(const tool_opts *o, const char *path, const char *label, int quantize,
                       const char *vocab_file, sd_threadpool *pool, int reps, bench_row *row) {
    tool_opts oo = *o;
    oo.quantize = quantize;
    sd_model *m = tool_load_model(&oo, path);
    if (!m) return -1;
    sd_model_info info;
    sd_model_get_info(m, &info);
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = 1024;
    cp.attn_compat = o->attn_compat;
    cp.pool = pool;
    int32_t *sub = NULL;
    int n_sub = 0;
    char err[256] = "";
    if (vocab_file && sd_vocab_subset_load(vocab_file, info.n_vocab, &sub, &n_sub, err, sizeof err) != SD_OK) {
        fprintf(stderr, "error: --draft-vocab: %s\n", err);
        sd_model_free(m);
        return -1;
    }
    cp.vocab_subset = sub;
    cp.n_vocab_subset = n_sub;
    sd_ctx *ctx = NULL;
    sd_status st = sd_ctx_new(m, &cp, &ctx);
    sd_vocab_subset_free(sub);
    if (st != SD_OK) {
        sd_model_free(m);
        return -1;
    }
    memset(row, 0, sizeof *row);
    if (vocab_file) snprintf(row->model, sizeof row->model, "%s-%d", label, n_sub);
    else snprintf(row->model, sizeof row->model, "%s", label);
    row->type = sd_type_name(info.weight_type);
    row->bytes = (double)info.weight_bytes_per_token;
    row->macs_int8 = info.macs_int8_per_token;
    row->macs_float = info.macs_float_per_token;
    decode_rate(ctx, info.n_vocab, 1, 32); /* warm-up */
    row->tps_empty = decode_rate(ctx, info.n_vocab, 1, 256);
    row->tps_728 = decode_rate(ctx, info.n_vocab, 728, 128);
    row->gbps_empty = row->tps_empty * (double)info.weight_bytes_per_token / 1e9;
    row->gbps_728 = row->tps_728 * (double)info.weight_bytes_per_token / 1e9;
    decode_rate(ctx, info.n_vocab, 256, 1);
    for (int i = 0; i < 6; i++) row->cost[i] = forward_cost(ctx, info.n_vocab, 256, k_batch[i], reps);
    fprintf(stderr, "  %-8s %-5s done\n", label, row->type);
    sd_ctx_free(ctx);
    sd_model_free(m);
    return 0;
}

int cmd_bench_forward(int argc, char **argv) {
    tool_opts o;
    bench_extra ex = {.draft = NULL, .draft_vocab = NULL, .reps = 100};
    if (tool_parse(argc, argv, 2, &o, extra_opt, &ex) != 0) return 1;
    char tbuf[PATH_MAX], dbuf[PATH_MAX];
    const char *target = o.model ? o.model : tool_model_path("kernel-c-target.gguf", tbuf, sizeof tbuf);
    const char *draft = ex.draft ? ex.draft : tool_model_path("kernel-c-draft.gguf", dbuf, sizeof dbuf);
    sd_threadpool *pool = NULL;
    if (sd_threadpool_new(o.n_threads, &pool) != SD_OK) return 1;
    bench_row rows[6];
    int n_rows = 0;
    const char *paths[3] = {target, draft, draft}, *labels[3] = {"target", "draft", "draft"};
    const char *vocab[3] = {NULL, NULL, ex.draft_vocab};
    fprintf(stderr, "bench-forward: %d threads, %s kernels\n", o.n_threads, sd_backend_name(o.backend));
    sd_machine mc;
    if (sd_machine_probe(o.backend, pool, &mc) != SD_OK) {
        fprintf(stderr, "error: cannot probe the machine\n");
        sd_threadpool_free(pool);
        return 1;
    }
    for (int mi = 0; mi < (ex.single ? 1 : ex.draft_vocab ? 3 : 2); mi++)
        for (int q = 0; q < (ex.single ? 1 : 2); q++)
            if (bench_model(&o, paths[mi], labels[mi], q ? SD_TYPE_Q8_0 : SD_TYPE_NONE, vocab[mi], pool, ex.reps,
                            &rows[n_rows]) == 0)
                n_rows++;
    sd_threadpool_free(pool);
    if (o.json) {
        printf("{\"threads\": %d, \"backend\": \"%s\", \"machine\": {\"read_gbps\": %.2f, \"dot_gmacs\": %.1f, "
               "\"fma_gmacs\": %.1f}, \"rows\": [",
               o.n_threads, sd_backend_name(o.backend), mc.read_gbps, mc.dot_gmacs, mc.fma_gmacs);
        for (int i = 0; i < n_rows; i++) {
            bench_row *r = &rows[i];
            printf("%s{\"model\": \"%s\", \"type\": \"%s\", \"decode_tps_ctx0\": %.1f, \"decode_tps_ctx728\": %.1f, "
                   "\"gbps_ctx0\": %.2f, \"gbps_ctx728\": %.2f, \"forward_ms\": {",
                   i ? ", " : "", r->model, r->type, r->tps_empty, r->tps_728, r->gbps_empty, r->gbps_728);
            for (int j = 0; j < 6; j++) printf("%s\"%d\": %.4f", j ? ", " : "", k_batch[j], r->cost[j]);
            printf("}, \"roofline_ms\": {");
            for (int j = 0; j < 6; j++) printf("%s\"%d\": %.4f", j ? ", " : "", k_batch[j], roof_ms(r, &mc, k_batch[j]));
            printf("}, \"weight_bytes\": %.0f, \"macs_int8\": %.0f, \"macs_float\": %.0f, \"read_bw_fraction_ctx0\": %.3f}",
                   r->bytes, r->macs_int8, r->macs_float, r->gbps_empty / mc.read_gbps);
        }
        printf("]}\n");
        return 0;
    }
    printf("machine: %s kernels, %d threads: streaming read %.1f GB/s, int8 dot peak %.0f GMAC/s, F32 FMA peak %.0f "
           "GMAC/s (measured)\n\n",
           mc.table, mc.n_threads, mc.read_gbps, mc.dot_gmacs, mc.fma_gmacs);
    printf("| model  | type | tok/s ctx 0 | GB/s | of read | tok/s ctx 728 | GB/s | n=1 ms | n=2 | n=4 | n=8 | n=16 | n=32 |\n");
    printf("|--------|------|-------------|------|---------|---------------|------|--------|-----|-----|-----|------|------|\n");
    for (int i = 0; i < n_rows; i++) {
        bench_row *r = &rows[i];
        printf("| %-6s | %-4s | %11.1f | %4.1f | %6.0f%% | %13.1f | %4.1f | %6.3f |", r->model, r->type, r->tps_empty,
               r->gbps_empty, 100.0 * r->gbps_empty / mc.read_gbps, r->tps_728, r->gbps_728, r->cost[0]);
        for (int j = 1; j < 6; j++) printf(" %.2fx |", r->cost[0] > 0 ? r->cost[j] / r->cost[0] : 0);
        printf("\n");
    }
    printf("n=1 ms: median time of one forward of 1 token at 256 tokens of context; n=k: the same for k tokens\n(all rows with logits, as verification needs), relative to n = 1\n\n");
    printf("Roofline efficiency (the longer of weight bytes / read bandwidth and multiply-adds / peak, over the\ntime taken; m: bound by memory, c: by compute):\n\n");
    printf("| model  | type | n=1 | n=2 | n=4 | n=8 | n=16 | n=32 |\n");
    printf("|--------|------|-----|-----|-----|-----|------|------|\n");
    for (int i = 0; i < n_rows; i++) {
        bench_row *r = &rows[i];
        printf("| %-6s | %-4s |", r->model, r->type);
        for (int j = 0; j < 6; j++) {
            const double roof = roof_ms(r, &mc, k_batch[j]);
            const int mem = roof <= 1e3 * r->bytes / (mc.read_gbps * 1e9) * 1.0000001;
            printf(" %3.0f%% %c |", r->cost[j] > 0 ? 100.0 * roof / r->cost[j] : 0, mem ? 'm' : 'c');
        }
        printf("\n");
    }
    if (ex.draft_vocab)
        printf("draft-K: the draft with its output head restricted to the K ids of %s (its GB/s still\ncounts the full head's bytes)\n", ex.draft_vocab);
    return 0;
}
