/* draw.h - inverse-CDF draws: the verifiers' (verify.c, verify_tree.c) and
 * the tree drafters' draws without replacement (draft_tree.c, draft_heads.c). */
#ifndef SD_SPEC_DRAW_H
#define SD_SPEC_DRAW_H

#include "specdec.h"

/* Index drawn from weights w (n entries; entries that are not > 0 count as
 * 0) with one uniform; -1 (and no uniform consumed) if the positive entries
 * have no mass. */
static inline int32_t sd_draw(const float *w, int n, sd_rng *rng) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += w[i] > 0.0f ? w[i] : 0.0f;
    if (!(sum > 0.0)) return -1;
    double u = sd_rng_uniform(rng) * sum, c = 0.0;
    int32_t last = -1;
    for (int i = 0; i < n; i++) {
        if (!(w[i] > 0.0f)) continue;
        c += w[i];
        last = i;
        if (u < c) return i;
    }
    return last; /* rounding at the top end */
}

/* The draw of the fault SD_FAULT_RESIDUAL_UNNORMALIZED (verify_hooks.h),
 * never of an exact verifier: one uniform u in [0, 1) against the
 * cumulative sums of w (n entries, mass Z <= 1, not divided out); when u
 * falls past Z, a draw from the fallback law p (n entries). */
static inline int32_t sd_draw_unnormalized(const float *w, const float *p, int n, sd_rng *rng) {
    double u = sd_rng_uniform(rng), c = 0.0;
    for (int i = 0; i < n; i++) {
        if (!(w[i] > 0.0f)) continue;
        c += w[i];
        if (u < c) return i;
    }
    return sd_draw(p, n, rng);
}

/* A token drawn from q (V entries) without replacement: the entries of
 * taken[0..nt) (distinct tokens) are left out and the rest renormalized;
 * entries that are not > 0 count as 0. -1 (no uniform consumed) if what
 * is left has no mass. The tree drafters draw a node's children this way
 * (the draws of multi-draft speculative sampling). */
static inline int32_t sd_draw_without(const float *q, int V, const int32_t *taken, int nt, sd_rng *rng) {
    double sum = 0.0;
    for (int t = 0; t < V; t++) sum += q[t] > 0.0f ? q[t] : 0.0f;
    for (int i = 0; i < nt; i++) sum -= q[taken[i]] > 0.0f ? q[taken[i]] : 0.0f;
    if (!(sum > 1e-12)) return -1;
    double u = sd_rng_uniform(rng) * sum, c = 0.0;
    int32_t last = -1;
    for (int t = 0; t < V; t++) {
        if (!(q[t] > 0.0f)) continue;
        bool skip = false;
        for (int i = 0; i < nt; i++) skip |= taken[i] == t;
        if (skip) continue;
        c += q[t];
        last = t;
        if (u < c) return t;
    }
    return last; /* rounding at the top end */
}

#endif
