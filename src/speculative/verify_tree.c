/* verify_tree.c - greedy and multi-draft speculative-sampling verification
 * of a token tree (contract in verify.h).
 *
 * Node i: tok[i], parent[i] (-1 = the root); children follow their parent
 * (parent[i] < i), so the children of node c are the nodes i > c with
 * parent[i] == c, in sibling order. Target row of node c: p + (1 + c) * V
 * (row 0 = the root, c = -1). */
#include "speculative/verify.h"
#include "speculative/draw.h"

#include <math.h>

/* The tree is well formed: n >= 0, parent[i] = -1 or in [0, i), siblings
 * distinct and, when V > 0, tokens in [0, V). O(n^2), n <= SD_MAX_DRAFT in
 * practice. */
static bool tree_ok(const int32_t *tok, const int32_t *parent, int n, int V) {
    if (n < 0 || (n > 0 && (!tok || !parent))) return false;
    for (int i = 0; i < n; i++) {
        if (parent[i] < -1 || parent[i] >= i) return false;
        if (V > 0 && (tok[i] < 0 || tok[i] >= V)) return false;
        for (int s = 0; s < i; s++)
            if (parent[s] == parent[i] && tok[s] == tok[i]) return false;
    }
    return true;
}

int sd_verify_tree_greedy(const int32_t *tok, const int32_t *parent, int n, const int32_t *argmax,
                          int32_t *path, int32_t *next) {
    if (!next) return -1;
    *next = -1;
    if (!argmax || (n > 0 && !path) || !tree_ok(tok, parent, n, 0)) return -1;
    int cur = -1, j = 0; /* current node (-1 = root), accepted so far */
    for (;;) {
        const int32_t want = argmax[cur + 1];
        int c = cur + 1;
        while (c < n && !(parent[c] == cur && tok[c] == want)) c++;
        if (c == n) break;
        path[j++] = c;
        cur = c;
    }
    *next = argmax[cur + 1];
    return j;
}

/* A weight as a probability mass: NaN and negatives count as 0. */
static inline double mass_of(float w) { return w > 0.0f ? (double)w : 0.0; }

/* Sum of the positive entries of w (n), in double. */
static double row_mass(const float *w, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += mass_of(w[i]);
    return s;
}

/* The walk keeps the two laws of the current node unnormalized, with their
 * masses in double:
 *   r(t) = rw[t] / rm   the target residual; rw is the node's p row until
 *                       the first rejection, then scratch[0, V)
 *   s(t) = sw[t] / sm   the next child's proposal (q != NULL); sw is the
 *                       first child's q row, then scratch[V, 2V) with the
 *                       rejected siblings zeroed (sm = 0: no mass left,
 *                       s = 0)
 * A rejection rewrites both in place, one pass over V.
 * fault (verify_hooks.h): SD_VERIFY_EXACT is the documented rule; inlined
 * into both entry points below, so the exact one carries no fault branch. */
static inline __attribute__((always_inline)) int
verify_tree_sample(const int32_t *tok, const int32_t *parent, int n, const float *p, const float *q, int V,
                   sd_rng *rng, float *scratch, int32_t *path, int32_t *next, sd_verify_fault fault) {
    if (!next) return -1;
    *next = -1;
    if (!p || V <= 0 || !rng || !scratch || (n > 0 && !path) || !tree_ok(tok, parent, n, V))
        return -1;
    float *rbuf = scratch, *sbuf = scratch + V;
    int cur = -1, j = 0; /* current node (-1 = root), accepted so far */
    for (;;) {
        const float *pn = p + (size_t)(cur + 1) * V; /* the node's target row */
        const double pm = row_mass(pn, V);
        if (!(pm > 0.0) || !isfinite(pm)) return -1;
        const float *rw = pn, *sw = NULL;
        double rm = pm, sm = 0.0;
        int acc = -1;
        for (int c = cur + 1; c < n; c++) {
            if (parent[c] != cur) continue;
            const int32_t x = tok[c];
            if (q && !sw) { /* first child: s = its q row (siblings share it) */
                sw = q + (size_t)c * V;
                sm = row_mass(sw, V);
                if (!isfinite(sm)) return -1;
            }
            /* accept with probability min(1, r(x) / s(x)); s(x) = 0 (a
             * drafter reporting q(x) = 0, or no proposal mass left) accepts
             * iff r(x) > 0, as the chain does */
            const double rx = mass_of(rw[x]) / rm;
            const double sx = !q ? 1.0 : sm > 0.0 ? mass_of(sw[x]) / sm : 0.0;
            const double u = sd_rng_uniform(rng);
            const bool take = fault == SD_FAULT_ACCEPT_POW ? (sx > 0.0 ? u < pow(fmin(1.0, rx / sx), 0.8) : rx > 0.0)
                                                           : (sx > 0.0 ? u * sx < rx : rx > 0.0);
            if (take) {
                acc = c;
                break;
            }
            /* rejected: r <- norm(max(0, r - s)) and x leaves the proposal.
             * r(x) < s(x) (or r(x) = 0) when x can be rejected, so the
             * residual at x is exactly 0. Element-wise, so in place. */
            const double sinv = !q || !(sm > 0.0) ? 0.0 : 1.0 / sm;
            double nrm = 0.0, nsm = 0.0;
            for (int t = 0; t < V; t++) {
                const double st = q ? mass_of(sw[t]) * sinv : 0.0; /* one-hot: 0 off x */
                const double d = mass_of(rw[t]) / rm - st;
                const float rt = t == x ? 0.0f : d > 0.0 ? (float)d : 0.0f;
                rbuf[t] = rt;
                nrm += rt;
                if (q) {
                    const bool keep = fault == SD_FAULT_TREE_SIBLINGS_KEPT;
                    const float w = t == x && !keep ? 0.0f : (float)mass_of(sw[t]);
                    sbuf[t] = w;
                    nsm += w;
                }
            }
            if (nrm > 0.0) {
                rw = rbuf;
                rm = nrm;
            } else {
                /* r == s leaves no residual mass (then rejection had
                 * probability 0); fall back to p as the chain does */
                rw = pn;
                rm = pm;
            }
            if (q) {
                sw = sbuf;
                sm = nsm;
            }
        }
        if (acc < 0) {
            /* no child accepted (or a leaf: rw is still the node's p) */
            if ((fault == SD_FAULT_RESIDUAL_UNNORMALIZED || fault == SD_FAULT_RESIDUAL_IS_P) && rw != pn) {
                *next = fault == SD_FAULT_RESIDUAL_IS_P ? sd_draw(pn, V, rng) : sd_draw_unnormalized(rw, pn, V, rng);
                return j;
            }
            int32_t t = sd_draw(rw, V, rng);
            *next = t >= 0 ? t : sd_draw(pn, V, rng);
            return j;
        }
        path[j++] = acc;
        cur = acc;
    }
}

int sd_verify_tree_sample(const int32_t *tok, const int32_t *parent, int n, const float *p,
                          const float *q, int V, sd_rng *rng, float *scratch, int32_t *path,
                          int32_t *next) {
    return verify_tree_sample(tok, parent, n, p, q, V, rng, scratch, path, next, SD_VERIFY_EXACT);
}

int sd_verify_tree_sample_faulty(const int32_t *tok, const int32_t *parent, int n, const float *p,
                                 const float *q, int V, sd_rng *rng, float *scratch, int32_t *path,
                                 int32_t *next, sd_verify_fault fault) {
    return verify_tree_sample(tok, parent, n, p, q, V, rng, scratch, path, next, fault);
}
