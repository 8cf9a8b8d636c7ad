/*
 * tree_bound.c - how much can a token TREE from the draft model gain over a
 * chain, on this machine? An upper-bound analysis from measured data.
 *
 * Data: the target's greedy continuations of the bench prompts, as the
 * reference implementation wrote them (../shared/reference/kernel-c-target
 * .{code-btrfs,docs-filesystems}.jsonl: prompt_ids + 64 greedy_ids). The
 * draft model runs teacher-forced over prompt + continuation; at every
 * continuation position we record the rank of the target's token in the
 * draft's distribution and the draft's top probabilities. Along an accepted
 * path the draft sees exactly these contexts, so for any tree SHAPE (a set
 * of rank sequences: "the draft's 1st choice, then its 2nd, ...") the
 * accepted length from position t is exact: the longest prefix of (rank[t],
 * rank[t+1], ...) that is a path of the shape.
 *
 * Reported:
 *  - top-k coverage (the target's token among the draft's k best);
 *  - P(rank 0) and P(rank 1) per band of the draft's top probability (what
 *    a second child at a node can add);
 *  - for N = 1..16 nodes: tokens per step E of the best chain and of the
 *    best static tree of N nodes (the N most frequent rank prefixes: for
 *    any shape of N nodes E - 1 is the sum of its prefixes' frequencies),
 *    and the step rate E / (verify(N + 1) + depth x draft(1)) in plain
 *    steps, with verify() and draft() timed here on the shipped models at
 *    256 cells of context (a tree is charged one draft row per level, a
 *    lower bound on its drafting).
 *
 * Build and run (from the repository root, after `make`):
 *   cc -O2 -Iinclude bench/tree_bound.c build/libspecdec.a -ljansson -lm -pthread -o bin/tree-bound
 *   bin/tree-bound [-t 2] [--out bench/results/tree-bound.json]
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "specdec.h"

#define MAX_SEQ 64      /* continuation tokens used per prompt          */
#define MAX_PROMPTS 64
#define MAX_DEPTH 16
#define MAX_RANK 10     /* ranks >= MAX_RANK are lumped together        */
#define MAX_PREFIXES (1 << 20)

typedef struct seq {
    int n;
    int rank[MAX_SEQ];     /* rank of the target's token in the draft's distribution */
    float p0[MAX_SEQ], p1[MAX_SEQ]; /* the draft's top two probabilities */
} seq;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Median ms of a forward of `rows` rows (all with logits) after `ctx_len`
 * cells of context, warm (the context is cut back after each forward). */
static double time_forward(sd_ctx *c, int rows, int ctx_len, int reps) {
    int32_t ids[64], pre[512];
    uint8_t out[64];
    for (int i = 0; i < 64; i++) ids[i] = 100 + i, out[i] = 1;
    for (int i = 0; i < ctx_len && i < 512; i++) pre[i] = 200 + i % 100;
    sd_ctx_kv_clear(c);
    sd_batch b = sd_batch_simple(pre, ctx_len);
    sd_ctx_decode(c, &b);
    double t[64];
    const int n = reps < 64 ? reps : 64;
    for (int r = -3; r < n; r++) { /* 3 warm-up runs */
        sd_ctx_kv_truncate(c, ctx_len);
        b = sd_batch_simple(ids, rows);
        b.output = out;
        double t0 = now_ms();
        sd_ctx_decode(c, &b);
        if (r >= 0) t[r] = now_ms() - t0;
    }
    for (int i = 1; i < n; i++) /* insertion sort */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) { double x = t[j]; t[j] = t[j - 1]; t[j - 1] = x; }
    return t[n / 2];
}

/* Rank prefixes: key = depth-tagged base-MAX_RANK number. */
typedef struct pfx { unsigned long long key; double count; int depth; } pfx;

static int cmp_count(const void *a, const void *b) {
    const pfx *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->depth > y->depth) - (x->depth < y->depth);
}

static int cmp_key(const void *a, const void *b) {
    const pfx *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

int main(int argc, char **argv) {
    int threads = 2;
    const char *out_path = NULL, *dir = getenv("SPECDEC_MODEL_DIR") ? getenv("SPECDEC_MODEL_DIR") : "../shared/models";
    const char *ref_dir = "../shared/reference";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out_path = argv[++i];
        else { fprintf(stderr, "usage: tree-bound [-t N] [--out FILE.json]\n"); return 2; }
    }
    char path[1024], err[256];
    sd_model *target = NULL, *draft = NULL;
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", dir);
    if (sd_model_load(path, NULL, &target, err, sizeof err) != SD_OK) { fprintf(stderr, "%s: %s\n", path, err); return 1; }
    snprintf(path, sizeof path, "%s/kernel-c-draft.gguf", dir);
    if (sd_model_load(path, NULL, &draft, err, sizeof err) != SD_OK) { fprintf(stderr, "%s: %s\n", path, err); return 1; }
    sd_threadpool *pool = NULL;
    if (sd_threadpool_new(threads, &pool) != SD_OK) return 1;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = 4096;
    cp.pool = pool;
    sd_ctx *dc = NULL, *tc = NULL;
    if (sd_ctx_new(draft, &cp, &dc) != SD_OK || sd_ctx_new(target, &cp, &tc) != SD_OK) return 1;
    const int V = sd_vocab_n_tokens(sd_model_vocab(draft));

    /* ranks along the reference continuations */
    static seq seqs[MAX_PROMPTS];
    int n_seq = 0;
    const char *tasks[2] = {"code-btrfs", "docs-filesystems"};
    for (int ti = 0; ti < 2; ti++) {
        snprintf(path, sizeof path, "%s/kernel-c-target.%s.jsonl", ref_dir, tasks[ti]);
        FILE *f = fopen(path, "r");
        if (!f) { fprintf(stderr, "cannot open %s\n", path); return 1; }
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0 && n_seq < MAX_PROMPTS) {
            json_error_t je;
            json_t *j = json_loads(line, 0, &je);
            json_t *pi = json_object_get(j, "prompt_ids"), *gi = json_object_get(j, "greedy_ids");
            int np = (int)json_array_size(pi), ng = (int)json_array_size(gi);
            if (ng > MAX_SEQ) ng = MAX_SEQ;
            if (!j || np < 1 || ng < 1 || np + ng > 4000) { json_decref(j); continue; }
            int32_t *ids = malloc((size_t)(np + ng) * sizeof *ids);
            uint8_t *outf = calloc((size_t)(np + ng), 1);
            for (int i = 0; i < np; i++) ids[i] = (int32_t)json_integer_value(json_array_get(pi, i));
            for (int i = 0; i < ng; i++) ids[np + i] = (int32_t)json_integer_value(json_array_get(gi, i));
            for (int i = np - 1; i < np + ng - 1; i++) outf[i] = 1;
            sd_ctx_kv_clear(dc);
            sd_batch b = sd_batch_simple(ids, np + ng - 1);
            b.output = outf;
            if (sd_ctx_decode(dc, &b) == SD_OK) {
                seq *s = &seqs[n_seq++];
                s->n = ng;
                for (int r = 0; r < ng; r++) {
                    const float *l = sd_ctx_logits(dc, r);
                    const int tgt = ids[np + r];
                    int a = 0, bb = -1, rank = 0;
                    for (int v = 1; v < V; v++) if (l[v] > l[a]) a = v;
                    for (int v = 0; v < V; v++) {
                        if (v != a && (bb < 0 || l[v] > l[bb])) bb = v;
                        rank += l[v] > l[tgt];
                    }
                    double z = 0.0;
                    for (int v = 0; v < V; v++) z += exp((double)(l[v] - l[a]));
                    s->rank[r] = rank;
                    s->p0[r] = (float)(1.0 / z);
                    s->p1[r] = (float)(exp((double)(l[bb] - l[a])) / z);
                }
            }
            free(ids);
            free(outf);
            json_decref(j);
        }
        free(line);
        fclose(f);
    }

    /* coverage and bands */
    long n_pos = 0, cover[5] = {0};
    long band_n[5] = {0}, band_r0[5] = {0}, band_r1[5] = {0};
    for (int i = 0; i < n_seq; i++)
        for (int t = 0; t < seqs[i].n; t++) {
            int r = seqs[i].rank[t], b = (int)(seqs[i].p0[t] * 5.0f);
            b = b > 4 ? 4 : b;
            n_pos++;
            for (int k = 0; k < 5; k++) cover[k] += r <= k;
            band_n[b]++;
            band_r0[b] += r == 0;
            band_r1[b] += r == 1;
        }

    /* rank-prefix frequencies (every start t, depths 1..MAX_DEPTH) */
    pfx *px = malloc(sizeof *px * MAX_PREFIXES);
    long n_px = 0;
    for (int i = 0; i < n_seq; i++)
        for (int t = 0; t < seqs[i].n; t++) {
            unsigned long long key = 0;
            for (int d = 1; d <= MAX_DEPTH && t + d <= seqs[i].n && n_px < MAX_PREFIXES; d++) {
                int r = seqs[i].rank[t + d - 1];
                key = key * (MAX_RANK + 1) + (unsigned long long)(r < MAX_RANK ? r + 1 : MAX_RANK + 1);
                px[n_px++] = (pfx){key, 1.0, d};
            }
        }
    qsort(px, (size_t)n_px, sizeof *px, cmp_key); /* merge equal prefixes */
    long n_u = 0;
    for (long i = 0; i < n_px; i++) {
        if (n_u > 0 && px[n_u - 1].key == px[i].key) px[n_u - 1].count += 1.0;
        else px[n_u++] = px[i];
    }
    qsort(px, (size_t)n_u, sizeof *px, cmp_count);
    double chain_cnt[MAX_DEPTH + 1] = {0}; /* frequency of (0, 0, ..., 0) of depth d */
    for (long i = 0; i < n_u; i++) {
        unsigned long long k = 0;
        for (int d = 1; d <= px[i].depth; d++) k = k * (MAX_RANK + 1) + 1;
        if (k == px[i].key) chain_cnt[px[i].depth] = px[i].count;
    }

    /* costs, relative to a plain step (1 row of the target) */
    double vt[MAX_DEPTH + 2];
    for (int r = 1; r <= MAX_DEPTH + 1; r++) vt[r] = time_forward(tc, r, 256, 31);
    const double d1 = time_forward(dc, 1, 256, 31) / vt[1];
    for (int r = MAX_DEPTH + 1; r >= 1; r--) vt[r] /= vt[1];

    printf("tree-bound: %d continuations, %ld positions (draft teacher-forced on the target's greedy text)\n",
           n_seq, n_pos);
    printf("top-k coverage: k=1 %.3f, k=2 %.3f, k=3 %.3f, k=4 %.3f, k=5 %.3f\n", (double)cover[0] / n_pos,
           (double)cover[1] / n_pos, (double)cover[2] / n_pos, (double)cover[3] / n_pos, (double)cover[4] / n_pos);
    printf("| draft top prob | positions | P(rank 0) | P(rank 1) |\n|---|---|---|---|\n");
    for (int b = 0; b < 5; b++)
        if (band_n[b]) printf("| %.1f-%.1f | %ld | %.3f | %.3f |\n", b / 5.0, (b + 1) / 5.0, band_n[b],
                              (double)band_r0[b] / band_n[b], (double)band_r1[b] / band_n[b]);
    printf("\ncosts (x plain step): verify 2 rows %.2f, 4 %.2f, 8 %.2f, 16 %.2f; one draft row %.3f\n\n", vt[2],
           vt[4], vt[8], vt[16], d1);
    printf("| nodes | chain tok/step | best tree tok/step | tree depth | chain rate | tree rate (bound) |\n");
    printf("|---|---|---|---|---|---|\n");
    json_t *rows = json_array();
    double best_chain = 0.0, best_tree = 0.0;
    int bc = 0, bt = 0;
    for (int N = 1; N <= MAX_DEPTH; N++) {
        double e_tree = 1.0, e_chain = 1.0;
        int depth = 0;
        for (int i = 0; i < N && i < n_u; i++) {
            e_tree += px[i].count / (double)n_pos;
            if (px[i].depth > depth) depth = px[i].depth;
        }
        for (int d = 1; d <= N; d++) e_chain += chain_cnt[d] / (double)n_pos;
        double r_chain = e_chain / (vt[N + 1] + N * d1), r_tree = e_tree / (vt[N + 1] + depth * d1);
        if (r_chain > best_chain) best_chain = r_chain, bc = N;
        if (r_tree > best_tree) best_tree = r_tree, bt = N;
        printf("| %d | %.3f | %.3f | %d | %.3f | %.3f |\n", N, e_chain, e_tree, depth, r_chain, r_tree);
        json_array_append_new(rows, json_pack("{s:i,s:f,s:f,s:i,s:f,s:f}", "nodes", N, "chain_tokens_per_step",
                                              e_chain, "tree_tokens_per_step", e_tree, "tree_depth", depth,
                                              "chain_rate", r_chain, "tree_rate_bound", r_tree));
    }
    printf("\nbest static chain: %d nodes, %.3f x plain; best static tree: %d nodes, %.3f x plain (tree / chain %.3f)\n",
           bc, best_chain, bt, best_tree, best_tree / best_chain);
    if (out_path) {
        json_t *bands = json_array();
        for (int b = 0; b < 5; b++)
            json_array_append_new(bands, json_pack("{s:f,s:f,s:I,s:f,s:f}", "p_lo", b / 5.0, "p_hi", (b + 1) / 5.0,
                                                   "positions", (json_int_t)band_n[b],
                                                   "p_rank0", band_n[b] ? (double)band_r0[b] / band_n[b] : 0.0,
                                                   "p_rank1", band_n[b] ? (double)band_r1[b] / band_n[b] : 0.0));
        json_t *cov = json_array();
        for (int k = 0; k < 5; k++) json_array_append_new(cov, json_real((double)cover[k] / n_pos));
        json_t *root = json_pack("{s:i,s:I,s:o,s:o,s:o,s:{s:f,s:f,s:f,s:f,s:f},s:f}", "continuations", n_seq,
                                 "positions", (json_int_t)n_pos, "topk_coverage", cov, "bands", bands, "by_nodes", rows,
                                 "costs", "verify_2", vt[2], "verify_4", vt[4], "verify_8", vt[8], "verify_16", vt[16],
                                 "draft_row", d1, "tree_over_chain", best_tree / best_chain);
        if (json_dump_file(root, out_path, JSON_INDENT(1)) != 0) fprintf(stderr, "cannot write %s\n", out_path);
        json_decref(root);
    } else {
        json_decref(rows);
    }
    free(px);
    sd_ctx_free(dc);
    sd_ctx_free(tc);
    sd_threadpool_free(pool);
    sd_model_free(draft);
    sd_model_free(target);
    return 0;
}
