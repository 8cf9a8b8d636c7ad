#include <math.h>

#include "speculative/topk.h"

int sd_draft_top_k(const sd_kernels *kern, const float *l, int V, int k, int32_t *tok, double *lp) {
    int n = 0;
    for (int t = 0; t < V; t++) {
        float x = l[t];
        if (!(x > -INFINITY)) continue; /* never propose a -inf (VocabTrim) or NaN logit */
        if (n == k && !(x > l[tok[n - 1]])) continue;
        int i = n < k ? n++ : k - 1;
        while (i > 0 && x > l[tok[i - 1]]) {
            tok[i] = tok[i - 1];
            i--;
        }
        tok[i] = t;
    }
    if (n == 0) return 0;
    float mx = l[tok[0]];
    double lse = (double)mx + log((double)kern->sum_exp(l, V, mx));
    for (int i = 0; i < n; i++) lp[i] = (double)l[tok[i]] - lse;
    return n;
}
