/* draw.h - the verifiers' inverse-CDF draw (verify.c, verify_tree.c). */
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

#endif
