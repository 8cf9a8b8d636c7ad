/* verify.c - greedy and speculative-sampling verification of a chain. */
#include "spec/verify.h"

int sd_verify_greedy(const int32_t *draft, int k, const int32_t *argmax, int32_t *next) {
    int j = 0;
    while (j < k && draft[j] == argmax[j]) j++;
    *next = argmax[j];
    return j;
}

/* Index drawn from weights w (n entries, sum > 0) with one uniform. */
static int32_t draw(const float *w, int n, sd_rng *rng) {
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

int sd_verify_sample(const int32_t *draft, int k, const float *p, const float *q, int V,
                     sd_rng *rng, float *scratch, int32_t *next) {
    for (int i = 0; i < k; i++) {
        const float *pi = p + (size_t)i * V;
        const float *qi = q ? q + (size_t)i * V : NULL;
        const int32_t x = draft[i];
        const double px = pi[x], qx = qi ? qi[x] : 1.0;
        /* accept with probability min(1, p/q); q(x) > 0 for a token drawn
         * from q, but guard against a drafter that reports q(x) = 0 */
        const double u = sd_rng_uniform(rng);
        if (qx > 0.0 ? u * qx < px : px > 0.0) continue;
        /* rejected: residual norm(max(0, p - q)) */
        for (int t = 0; t < V; t++) {
            float qt = qi ? qi[t] : (t == x ? 1.0f : 0.0f);
            float r = pi[t] - qt;
            scratch[t] = r > 0.0f ? r : 0.0f;
        }
        int32_t tok = draw(scratch, V, rng);
        /* p == q exactly leaves no residual mass (then rejection had
         * probability 0); fall back to p for robustness */
        *next = tok >= 0 ? tok : draw(pi, V, rng);
        return i;
    }
    *next = draw(p + (size_t)k * V, V, rng);
    return k;
}
