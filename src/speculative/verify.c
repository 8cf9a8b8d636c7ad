/* verify.c - greedy and speculative-sampling verification of a chain. */
#include "speculative/verify.h"
#include "speculative/draw.h"

#include <math.h>

const char *sd_verify_fault_name(sd_verify_fault f) {
    static const char *const names[SD_VERIFY_FAULT_COUNT] = {"exact", "accept-pow", "residual-unnormalized",
                                                             "residual-is-p", "tree-siblings-kept"};
    return f >= SD_VERIFY_EXACT && f < SD_VERIFY_FAULT_COUNT ? names[f] : "unknown";
}

int sd_verify_greedy(const int32_t *draft, int k, const int32_t *argmax, int32_t *next) {
    int j = 0;
    while (j < k && draft[j] == argmax[j]) j++;
    *next = argmax[j];
    return j;
}

/* The sampling verifier with a fault (verify_hooks.h); SD_VERIFY_EXACT is
 * the documented rule. Inlined into both entry points, so the exact one
 * carries no fault branch. */
static inline __attribute__((always_inline)) int
verify_sample(const int32_t *draft, int k, const float *p, const float *q, int V, sd_rng *rng, float *scratch,
              int32_t *next, sd_verify_fault fault) {
    for (int i = 0; i < k; i++) {
        const float *pi = p + (size_t)i * V;
        const float *qi = q ? q + (size_t)i * V : NULL;
        const int32_t x = draft[i];
        const double px = pi[x], qx = qi ? qi[x] : 1.0;
        /* accept with probability min(1, p/q); q(x) > 0 for a token drawn
         * from q, but guard against a drafter that reports q(x) = 0 */
        const double u = sd_rng_uniform(rng);
        if (fault == SD_FAULT_ACCEPT_POW) {
            if (qx > 0.0 ? u < pow(fmin(1.0, px / qx), 0.8) : px > 0.0) continue;
        } else if (qx > 0.0 ? u * qx < px : px > 0.0) {
            continue;
        }
        /* rejected: residual norm(max(0, p - q)) */
        for (int t = 0; t < V; t++) {
            float qt = qi ? qi[t] : (t == x ? 1.0f : 0.0f);
            float r = pi[t] - qt;
            scratch[t] = r > 0.0f ? r : 0.0f;
        }
        if (fault == SD_FAULT_RESIDUAL_UNNORMALIZED || fault == SD_FAULT_RESIDUAL_IS_P) {
            *next = fault == SD_FAULT_RESIDUAL_IS_P ? sd_draw(pi, V, rng) : sd_draw_unnormalized(scratch, pi, V, rng);
            return i;
        }
        int32_t tok = sd_draw(scratch, V, rng);
        /* p == q exactly leaves no residual mass (then rejection had
         * probability 0); fall back to p for robustness */
        *next = tok >= 0 ? tok : sd_draw(pi, V, rng);
        return i;
    }
    *next = sd_draw(p + (size_t)k * V, V, rng);
    return k;
}

int sd_verify_sample(const int32_t *draft, int k, const float *p, const float *q, int V,
                     sd_rng *rng, float *scratch, int32_t *next) {
    return verify_sample(draft, k, p, q, V, rng, scratch, next, SD_VERIFY_EXACT);
}

int sd_verify_sample_faulty(const int32_t *draft, int k, const float *p, const float *q, int V,
                            sd_rng *rng, float *scratch, int32_t *next, sd_verify_fault fault) {
    return verify_sample(draft, k, p, q, V, rng, scratch, next, fault);
}
