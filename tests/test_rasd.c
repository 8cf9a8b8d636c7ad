/* test_rasd.c - the `rasd` drafter (src/speculative/draft_rasd.c).
 *
 * Fusion alone (sd_rasd_fuse) on synthetic trees:
 *  - random draft candidate trees and retrieval trees (several sources
 *    concatenated, duplicate paths, invalid parents) for budgets 0..64: the
 *    fused tree has parents before children, distinct siblings, is_tree, at
 *    most max nodes, and only tokens of the inputs at their input paths;
 *  - without retrieval the fused tree is the draft's own best-max
 *    selection (what tree-draft verifies);
 *  - longest-prefix merging: a retrieval branch sharing a prefix with the
 *    draft tree continues it (one path for the common prefix, distinct
 *    siblings after it);
 *  - pruning: a retrieval branch the draft model saw but did not rank is
 *    cut when the draft is confident elsewhere and kept when it is not.
 * The drafter on the shipped models, on synthetic histories (random tokens
 * with repeated segments, a corpus with a known continuation): valid trees
 * within the budget at every step of a simulated greedy decode (with the
 * draft model skipped on confident retrieval and without), retrieval
 * continuations present, sampling falls back to the model tree (has_q), and
 * the constructor rejects bad n-gram sizes and corpora. That the fused
 * trees keep greedy decoding lossless with the real target is
 * tests/test_spec_lossless.c's job. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "specdec.h"
#include "speculative/draft_rasd.h"
#include "util/check.h"

/* Parents before children, siblings distinct, within the budget. */
static bool tree_valid(const sd_draft *d, int max, char *why, size_t n) {
    if (!d->is_tree) return snprintf(why, n, "is_tree false"), false;
    if (d->n < 0 || d->n > max) return snprintf(why, n, "%d nodes, budget %d", d->n, max), false;
    for (int i = 0; i < d->n; i++) {
        if (d->parent[i] < -1 || d->parent[i] >= i) return snprintf(why, n, "node %d parent %d", i, d->parent[i]), false;
        for (int k = 0; k < i; k++)
            if (d->parent[k] == d->parent[i] && d->tok[k] == d->tok[i])
                return snprintf(why, n, "nodes %d and %d are equal siblings", k, i), false;
    }
    return true;
}

/* The path of node i (root first) into path; returns its length. */
static int path_of(const int32_t *tok, const int32_t *parent, int i, int32_t *path) {
    int32_t rev[SD_MAX_DRAFT + 600];
    int n = 0;
    for (int a = i; a >= 0; a = parent[a]) rev[n++] = tok[a];
    for (int k = 0; k < n; k++) path[k] = rev[n - 1 - k];
    return n;
}

/* Whether some input node (draft candidates or retrieval nodes) has this
 * exact path. */
static bool path_in_inputs(const int32_t *path, int len, const sd_tree_cand *dc, int n_dc,
                           const sd_rasd_rnode *rn, int n_rn) {
    int32_t tok[600], par[600], p2[600];
    int n = 0;
    for (int i = 0; i < n_dc; i++) { tok[n] = dc[i].tok; par[n] = dc[i].parent; n++; }
    for (int i = 0; i < n_rn; i++) {
        tok[n] = rn[i].tok;
        par[n] = rn[i].parent < 0 ? -1 : rn[i].parent < i ? n_dc + rn[i].parent : -2;
        n++;
    }
    for (int i = 0; i < n; i++) {
        bool bad = false;
        for (int a = i; a >= 0 && !bad; a = par[a]) bad = par[a] == -2;
        if (bad) continue;
        if (path_of(tok, par, i, p2) == len && memcmp(p2, path, (size_t)len * sizeof *path) == 0) return true;
    }
    return false;
}

static uint64_t rnd(sd_rng *r, uint64_t n) { return sd_rng_next(r) % n; }

/* A random greedy candidate tree: each expanded node gets up to 3
 * children with distinct tokens and conditional probabilities summing to
 * at most 1. */
static int random_cands(sd_rng *r, int V, sd_tree_cand *dc, int cap) {
    int n = 0;
    for (int node = -1; node < n && n < cap; node++) {
        if (node >= 0 && rnd(r, 3) == 0) continue; /* not expanded */
        if (node >= 0) dc[node].expanded = true;
        int k = 1 + (int)rnd(r, 3);
        double left = 1.0, base = node < 0 ? 0.0 : dc[node].logp;
        int32_t used[3];
        for (int c = 0; c < k && n < cap; c++) {
            int32_t t;
            bool dup;
            do {
                t = (int32_t)rnd(r, (uint64_t)V);
                dup = false;
                for (int u = 0; u < c; u++) dup |= used[u] == t;
            } while (dup);
            used[c] = t;
            double q = left * sd_rng_uniform(r);
            left -= q;
            dc[n++] = (sd_tree_cand){.tok = t, .parent = node, .expanded = false, .logp = base + log(q + 1e-12)};
        }
    }
    return n;
}

/* Random retrieval nodes: chains and branches, some repeated paths, some
 * invalid parents. */
static int random_rnodes(sd_rng *r, int V, sd_rasd_rnode *rn, int cap) {
    int n = 0;
    while (n < cap) {
        int parent = n == 0 || rnd(r, 4) == 0 ? -1 : (int)rnd(r, (uint64_t)n);
        if (rnd(r, 50) == 0) parent = n + (int)rnd(r, 3); /* invalid: not earlier */
        rn[n] = (sd_rasd_rnode){.tok = (int32_t)rnd(r, (uint64_t)V), .parent = parent, .rho = sd_rng_uniform(r)};
        n++;
    }
    return n;
}

static void test_fuse_random(void) {
    sd_rng r;
    sd_rng_seed(&r, 12345);
    sd_tree_cand dc[256];
    sd_rasd_rnode rn[256];
    sd_draft out = {0};
    char why[128];
    int bad = 0, nonempty = 0;
    for (int it = 0; it < 3000; it++) {
        const int V = it % 3 == 0 ? 3 : it % 3 == 1 ? 8 : 1000;
        int n_dc = it % 7 == 0 ? 0 : random_cands(&r, V, dc, 1 + (int)rnd(&r, 200));
        int n_rn = it % 5 == 0 ? 0 : random_rnodes(&r, V, rn, 1 + (int)rnd(&r, 120));
        int max = (int)rnd(&r, SD_MAX_DRAFT + 1);
        sd_rasd_tune t = sd_rasd_default_tune();
        t.p_min = it % 2 ? 0.0 : 0.05;
        t.mu = 6.0 * sd_rng_uniform(&r);
        t.beta = 1.0 + sd_rng_uniform(&r);
        sd_status st = sd_rasd_fuse(dc, n_dc, rn, n_rn, &t, max, &out, NULL);
        bool ok = st == SD_OK && tree_valid(&out, max, why, sizeof why);
        for (int i = 0; ok && i < out.n; i++) {
            int32_t path[SD_MAX_DRAFT];
            int len = path_of(out.tok, out.parent, i, path);
            if (!path_in_inputs(path, len, dc, n_dc, rn, n_rn)) {
                snprintf(why, sizeof why, "node %d's path is in no input", i);
                ok = false;
            }
        }
        if (!ok && bad++ < 5) CHECK(ok, "random fuse %d (n_dc %d, n_rn %d, max %d): %s", it, n_dc, n_rn, max, why);
        nonempty += out.n > 0;
    }
    CHECK(bad == 0, "%d invalid fused trees", bad);
    /* a coverage floor: measured 2860 of 3000 (fixed seed) */
    CHECK(nonempty > 1000, "only %d non-empty fused trees", nonempty);
}

/* Without retrieval: the draft's best-max candidates by score >= p_min. */
static void test_fuse_draft_only(void) {
    sd_rng r;
    sd_rng_seed(&r, 777);
    sd_tree_cand dc[256];
    sd_draft out = {0};
    int bad = 0;
    for (int it = 0; it < 500; it++) {
        int n_dc = random_cands(&r, 50, dc, 2 + (int)rnd(&r, 100));
        int max = 1 + (int)rnd(&r, 16);
        sd_rasd_tune t = sd_rasd_default_tune();
        t.p_min = pow(0.01, t.beta); /* what tree-draft's p_min 0.01 becomes */
        sd_rasd_fuse(dc, n_dc, NULL, 0, &t, max, &out, NULL);
        /* reference: indices sorted by (logp desc, index asc), logp >= log 0.01 */
        int idx[256], m = 0;
        for (int i = 0; i < n_dc; i++)
            if (dc[i].logp >= log(0.01) + 1e-9) idx[m++] = i;
        for (int i = 1; i < m; i++)
            for (int j = i; j > 0 && (dc[idx[j]].logp > dc[idx[j - 1]].logp ||
                                      (dc[idx[j]].logp == dc[idx[j - 1]].logp && idx[j] < idx[j - 1])); j--) {
                int x = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = x;
            }
        if (m > max) m = max;
        /* compare as sets of paths */
        bool same = out.n == m;
        for (int k = 0; same && k < m; k++) {
            int32_t tok[256], par[256], p1[SD_MAX_DRAFT + 600], p2[SD_MAX_DRAFT + 600];
            for (int i = 0; i < n_dc; i++) { tok[i] = dc[i].tok; par[i] = dc[i].parent; }
            int l1 = path_of(tok, par, idx[k], p1);
            bool found = false;
            for (int i = 0; i < out.n && !found; i++)
                found = path_of(out.tok, out.parent, i, p2) == l1 && !memcmp(p1, p2, (size_t)l1 * sizeof *p1);
            same = found;
        }
        bad += !same;
    }
    CHECK(bad == 0, "%d of 500 draft-only fusions differ from the draft's own selection", bad);
}

/* Finds the node with this path (root first) in d; -1 if none. */
static int find_path(const sd_draft *d, const int32_t *path, int len) {
    int cur = -1;
    for (int k = 0; k < len; k++) {
        int f = -1;
        for (int i = 0; i < d->n && f < 0; i++)
            if (d->parent[i] == cur && d->tok[i] == path[k]) f = i;
        if (f < 0) return -1;
        cur = f;
    }
    return cur;
}

static void test_fuse_merge_and_prune(void) {
    /* draft: root -> 10 (0.9) -> 11 (0.9) -> 12 (0.6); root -> 20 (0.05) */
    sd_tree_cand dc[4] = {
        {.tok = 10, .parent = -1, .expanded = true, .logp = log(0.9)},
        {.tok = 20, .parent = -1, .expanded = false, .logp = log(0.05)},
        {.tok = 11, .parent = 0, .expanded = true, .logp = log(0.9 * 0.9)},
        {.tok = 12, .parent = 2, .expanded = false, .logp = log(0.9 * 0.9 * 0.6)},
    };
    /* retrieval: 10 11 13 14 (shares the prefix 10 11), and 30 at the root */
    sd_rasd_rnode rn[5] = {
        {.tok = 10, .parent = -1, .rho = 0.8}, {.tok = 11, .parent = 0, .rho = 0.8},
        {.tok = 13, .parent = 1, .rho = 0.8},  {.tok = 14, .parent = 2, .rho = 0.8},
        {.tok = 30, .parent = -1, .rho = 0.5},
    };
    sd_rasd_tune t = sd_rasd_default_tune();
    t.p_min = 0.05;
    t.beta = 1.0;
    t.mu = 3.5;
    sd_draft out = {0};
    char why[128];
    CHECK(sd_rasd_fuse(dc, 4, rn, 5, &t, 16, &out, NULL) == SD_OK, "fuse");
    CHECK(tree_valid(&out, 16, why, sizeof why), "merge: %s", why);
    const int32_t p10[1] = {10}, p1011[2] = {10, 11}, p12[3] = {10, 11, 12}, p13[3] = {10, 11, 13},
                  p14[4] = {10, 11, 13, 14}, p30[1] = {30};
    int n10 = 0;
    for (int i = 0; i < out.n; i++) n10 += out.parent[i] == -1 && out.tok[i] == 10;
    CHECK(n10 == 1, "the common prefix is one path (%d nodes 10 at the root)", n10);
    CHECK(find_path(&out, p1011, 2) >= 0 && find_path(&out, p12, 3) >= 0 && find_path(&out, p13, 3) >= 0 &&
              find_path(&out, p14, 4) >= 0,
          "draft and retrieval branches both continue the shared prefix 10 11");
    CHECK(find_path(&out, p12, 3) != find_path(&out, p13, 3), "distinct siblings after the prefix");
    /* 30 is under the expanded root, outside the draft's top-k, whose mass
     * outside them is 0.05: logit a = logit 0.5 - 3.5 * 0.95, a = 0.035 <
     * p_min -> cut */
    CHECK(find_path(&out, p30, 1) < 0, "a retrieval branch the confident draft ranks low is pruned");
    t.mu = 0.0; /* the draft's disagreement ignored: a = 0.5 -> kept */
    sd_rasd_fuse(dc, 4, rn, 5, &t, 16, &out, NULL);
    CHECK(find_path(&out, p30, 1) >= 0, "kept when the draft's disagreement weighs less");
    /* budget 3: the three best nodes: 10 (0.98), 10 11 (0.96), 10 11 13 (0.77) */
    sd_rasd_fuse(dc, 4, rn, 5, &t, 3, &out, NULL);
    CHECK(out.n == 3 && find_path(&out, p10, 1) == 0 && find_path(&out, p1011, 2) == 1 && find_path(&out, p13, 3) == 2,
          "budget 3 keeps the best path");
    /* root not expanded (no draft): retrieval alone */
    sd_rasd_fuse(NULL, 0, rn, 5, &t, 16, &out, NULL);
    CHECK(out.n == 5 && find_path(&out, p14, 4) >= 0 && find_path(&out, p30, 1) >= 0, "retrieval only: %d nodes",
          out.n);
    sd_rasd_fuse(dc, 4, rn, 5, &t, 0, &out, NULL);
    CHECK(out.n == 0, "budget 0");
}

/* ------------------------------------------------------- on the models */

/* A simulated greedy decode over hist (prompt n0 tokens, then the rest as
 * the "target's" output): drafts at every step, checks each tree, accepts
 * the longest matching path. Returns the accepted drafts. */
static long run_hist(sd_drafter *d, const int32_t *hist, int n0, int n_total, int budget, int *bad_trees,
                     long *retr_hits) {
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 0.0f;
    sd_rng rng;
    sd_rng_seed(&rng, 1);
    sd_draft_env env = {.sp = &sp, .rng = &rng};
    sd_draft dr = {0};
    char why[128];
    long acc = 0;
    CHECK(d->ops->begin(d->self, hist, n0) == SD_OK, "begin");
    int n = n0 + 1;
    d->ops->accept(d->self, hist, n, 0);
    while (n < n_total) {
        int k = budget < n_total - n - 1 ? budget : n_total - n - 1;
        dr.n = 0;
        dr.is_tree = false;
        dr.has_q = false;
        if (k > 0 && d->ops->draft(d->self, hist, n, k, &env, &dr) != SD_OK) {
            CHECK(false, "draft failed at %d", n);
            break;
        }
        if (k > 0 && !tree_valid(&dr, k, why, sizeof why) && (*bad_trees)++ < 3) CHECK(false, "at %d: %s", n, why);
        int j = 0, cur = -1;
        for (;;) {
            int f = -1;
            for (int i = 0; i < dr.n && f < 0; i++)
                if (dr.parent[i] == cur && dr.tok[i] == hist[n + j]) f = i;
            if (f < 0) break;
            cur = f;
            j++;
        }
        *retr_hits += j >= 4;
        acc += j;
        n += j + 1;
        d->ops->accept(d->self, hist, n, j);
    }
    d->ops->end(d->self);
    return acc;
}

static void test_drafter(const sd_model *target, const sd_model *draft) {
    char err[256];
    const int V = sd_vocab_n_tokens(sd_model_vocab(target));
    sd_drafter *d = NULL;
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 1024, NULL, 1, 4, NULL, 0, &d, err, sizeof err) == SD_OK,
          "new rasd: %s", err);
    if (!d) return;
    CHECK(!strcmp(sd_drafter_name(d), "rasd"), "name %s", sd_drafter_name(d));
    /* history: 60 random tokens, then the same 60 again (a copy the lookup
     * finds), then 40 random tokens (nothing to find) */
    sd_rng r;
    sd_rng_seed(&r, 99);
    int32_t hist[200];
    for (int i = 0; i < 60; i++) hist[i] = 3 + (int32_t)rnd(&r, (uint64_t)(V - 3));
    for (int i = 0; i < 60; i++) hist[60 + i] = hist[i];
    for (int i = 120; i < 160; i++) hist[i] = 3 + (int32_t)rnd(&r, (uint64_t)(V - 3));
    int bad = 0;
    long hits = 0;
    for (int skip = 0; skip < 2; skip++) { /* the draft model skipped on confident retrieval, or always run */
        sd_rasd_tune t = sd_rasd_default_tune();
        t.p_min = pow(sd_tree_default_params().p_min, t.beta);
        if (skip == 1) t.skip = 2.0;
        CHECK(sd_rasd_set_tune(d, &t) == SD_OK, "set tune");
        for (int budget = 1; budget <= SD_MAX_DRAFT; budget *= 4) {
            /* the copy 64..120 drafts whole continuations */
            long acc = run_hist(d, hist, 64, 160, budget, &bad, &hits);
            fprintf(stderr, "%s, budget %2d: %ld drafts accepted\n", skip ? "never skip" : "skip", budget, acc);
            CHECK(acc >= (budget == 1 ? 15 : 40), "budget %d: only %ld drafts accepted on a copied segment", budget,
                  acc);
        }
    }
    CHECK(bad == 0, "%d invalid trees", bad);
    CHECK(hits > 0, "no long retrieval path accepted");

    /* sampling: the model tree's own draft, with q */
    sd_sampler_params sp = sd_sampler_default_params();
    sd_rng rng;
    sd_rng_seed(&rng, 5);
    sd_draft_env env = {.sp = &sp, .rng = &rng};
    sd_draft dr = {0};
    dr.q = malloc((size_t)SD_MAX_DRAFT * (size_t)V * sizeof(float));
    d->ops->begin(d->self, hist, 120);
    CHECK(d->ops->draft(d->self, hist, 120, 8, &env, &dr) == SD_OK && dr.n > 0 && dr.has_q && dr.is_tree,
          "sampling: model tree with q (n %d, has_q %d)", dr.n, dr.has_q);
    d->ops->accept(d->self, hist, 121, 0);
    d->ops->end(d->self);
    free(dr.q);
    sd_drafter_free(d);

    /* a corpus with a known continuation: hist[0..10) followed by 7 7 7 7 */
    int32_t corpus[2000];
    int nc = 0;
    for (int rep = 0; rep < 50; rep++) {
        for (int i = 0; i < 10; i++) corpus[nc++] = hist[i];
        for (int i = 0; i < 4; i++) corpus[nc++] = 7;
        for (int i = 0; i < 20; i++) corpus[nc++] = 3 + (int32_t)rnd(&r, (uint64_t)(V - 3));
    }
    d = NULL;
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 1024, NULL, 2, 4, corpus, (size_t)nc, &d, err, sizeof err) ==
              SD_OK, "new rasd with a corpus: %s", err);
    if (d) {
        sd_rasd_tune t = sd_rasd_default_tune();
        t.mu = 0.0;   /* keep retrieval even where the draft disagrees */
        CHECK(sd_rasd_set_tune(d, &t) == SD_OK, "set tune");
        sp.temp = 0.0f;
        dr = (sd_draft){0};
        d->ops->begin(d->self, hist, 10); /* history = hist[0..10): no earlier occurrence */
        CHECK(d->ops->draft(d->self, hist, 10, 8, &env, &dr) == SD_OK, "draft with corpus");
        const int32_t p7[3] = {7, 7, 7};
        CHECK(tree_valid(&dr, 8, err, sizeof err), "corpus tree: %s", err);
        CHECK(find_path(&dr, p7, 3) >= 0, "the corpus continuation 7 7 7 is drafted");
        d->ops->accept(d->self, hist, 11, 0);
        d->ops->end(d->self);
        sd_drafter_free(d);
    }

    /* constructor errors */
    int32_t badc[3] = {1, V, 2};
    d = NULL;
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 0, NULL, 0, 4, NULL, 0, &d, err, sizeof err) ==
              SD_ERR_INVALID_ARG && !d, "ngram_min 0");
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 0, NULL, 3, 2, NULL, 0, &d, err, sizeof err) ==
              SD_ERR_INVALID_ARG && !d, "ngram_min > ngram_max");
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 0, NULL, 1, 17, NULL, 0, &d, err, sizeof err) ==
              SD_ERR_INVALID_ARG && !d, "ngram_max 17");
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 0, NULL, 1, 4, NULL, 5, &d, err, sizeof err) ==
              SD_ERR_INVALID_ARG && !d, "corpus NULL with 5 ids");
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 0, NULL, 1, 4, badc, 3, &d, err, sizeof err) ==
              SD_ERR_INVALID_ARG && !d && strstr(err, "token 1"), "corpus id = V: %s", err);
    badc[1] = -1;
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 0, NULL, 1, 4, badc, 3, &d, err, sizeof err) ==
              SD_ERR_INVALID_ARG && !d, "corpus id -1");
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 0, NULL, 1, 4, badc, ((size_t)1 << 20) + 1, &d, err,
                              sizeof err) == SD_ERR_INVALID_ARG && !d, "corpus over 2^20 tokens");
    sd_tree_params tp = sd_tree_default_params();
    tp.depth = 0;
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 0, &tp, 1, 4, NULL, 0, &d, err, sizeof err) ==
              SD_ERR_INVALID_ARG && !d, "bad tree params");
    CHECK(sd_drafter_new_rasd(NULL, target, NULL, 0, NULL, 1, 4, NULL, 0, &d, err, sizeof err) ==
              SD_ERR_INVALID_ARG && !d, "no draft model");
    CHECK(sd_drafter_new_rasd(draft, target, NULL, 0, NULL, 1, 4, NULL, 0, NULL, err, sizeof err) ==
              SD_ERR_INVALID_ARG, "out NULL");
    CHECK(sd_rasd_set_tune(NULL, NULL) == SD_ERR_INVALID_ARG, "set tune on nothing");
}

int main(void) {
    test_fuse_random();
    test_fuse_draft_only();
    test_fuse_merge_and_prune();
    char path[1024], err[256];
    sd_model *target = NULL, *draft = NULL;
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", test_model_dir());
    CHECK(sd_model_load(path, NULL, &target, err, sizeof err) == SD_OK, "load target: %s", err);
    snprintf(path, sizeof path, "%s/kernel-c-draft.gguf", test_model_dir());
    CHECK(sd_model_load(path, NULL, &draft, err, sizeof err) == SD_OK, "load draft: %s", err);
    if (target && draft) test_drafter(target, draft);
    sd_model_free(draft);
    sd_model_free(target);
    return check_report("test_rasd");
}
