/* sampler.c - xoshiro256** generator and llama.cpp-style token sampling.
 *
 * The sampling chain on logits l (NaN read as -inf, +inf as FLT_MAX):
 *   greedy (temp <= 0): one-hot at the argmax (lowest id on ties);
 *   otherwise: candidates ordered by logit descending (lower id first on
 *   ties), top-k keeps the k best, top-p keeps the smallest prefix whose
 *   temperature-1 probability mass reaches top_p, min-p keeps candidates
 *   with p >= min_p * p_max, and the kept candidates get softmax(l / temp).
 *
 * Everything is computed in double on the weights w_i = exp(l_i - l_max),
 * so probabilities are ratios of the same numbers in every step. Tokens
 * whose logit is -inf always get probability 0 and are dropped up front
 * (they could only ever carry zero mass). When every logit is -inf the
 * result falls back to the argmax one-hot.
 *
 * Cost per call: O(n_vocab) plus O(k log k) with top-k; with top-k off the
 * survivors of min-p are sorted only when top-p is on (a full sort of the
 * vocabulary only when top-k and min-p are both off and top-p is on).
 * All scratch memory is owned by the sampler; no allocation per call. */
#include "specdec.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ rng */

/* splitmix64 step: advances *x and returns the next output. */
static uint64_t sd_splitmix64_next(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Seeds the four state words from splitmix64(seed); the state is never
 * all-zero because splitmix64 is a bijection on consecutive counters. */
void sd_rng_seed(sd_rng *rng, uint64_t seed) {
    if (!rng) return;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = sd_splitmix64_next(&x);
}

static inline uint64_t sd_rotl64(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman & Vigna): returns 64 random bits. */
uint64_t sd_rng_next(sd_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = sd_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sd_rotl64(s[3], 45);
    return result;
}

/* Uniform double in [0, 1): the top 53 bits scaled by 2^-53. */
double sd_rng_uniform(sd_rng *rng) {
    return (double)(sd_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* -------------------------------------------------------------- sampler */

/* One candidate token: sanitized logit and id. */
typedef struct sd_cand {
    float l;
    int32_t id;
} sd_cand;

struct sd_sampler {
    sd_sampler_params params;
    int n_vocab;
    sd_rng rng;
    sd_cand *cand; /* n_vocab: candidate list (heap, then sorted prefix) */
    double *w;     /* n_vocab: weights / final probabilities of cand[i]  */
};

sd_sampler_params sd_sampler_default_params(void) {
    sd_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temp = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.seed = 0xFFFFFFFFull;
    return p;
}

/* Allocates a sampler for n_vocab tokens with its scratch buffers and seeds
 * its generator from params->seed. Rejects n_vocab < 1, NaN temp/top_p/
 * min_p and negative top_p/min_p with SD_ERR_INVALID_ARG. */
sd_status sd_sampler_new(const sd_sampler_params *params, int n_vocab,
                         sd_sampler **out) {
    if (out) *out = NULL;
    if (!params || !out || n_vocab < 1) return SD_ERR_INVALID_ARG;
    if (isnan(params->temp) || isnan(params->top_p) || isnan(params->min_p))
        return SD_ERR_INVALID_ARG;
    if (params->top_p < 0.0f || params->min_p < 0.0f) return SD_ERR_INVALID_ARG;
    sd_sampler *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    s->params = *params;
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->w = malloc((size_t)n_vocab * sizeof *s->w);
    if (!s->cand || !s->w) {
        sd_sampler_free(s);
        return SD_ERR_NOMEM;
    }
    sd_rng_seed(&s->rng, params->seed);
    *out = s;
    return SD_OK;
}

void sd_sampler_free(sd_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->w);
    free(s);
}

/* True when temp <= 0 (argmax sampling). NULL counts as greedy. */
bool sd_sampler_is_greedy(const sd_sampler *s) {
    return !s || !(s->params.temp > 0.0f);
}

sd_rng *sd_sampler_rng(sd_sampler *s) { return s ? &s->rng : NULL; }

/* Logit as the sampler reads it: NaN -> -inf, +inf -> FLT_MAX. */
static inline float sd_logit_clean(float x) {
    if (isnan(x)) return -INFINITY;
    if (x == INFINITY) return FLT_MAX;
    return x;
}

/* Argmax of n logits, NaN read as -inf, lowest index on ties; -1 if n < 1
 * or x is NULL. All -inf (or NaN) gives 0. */
int32_t sd_argmax(const float *x, int n) {
    if (!x || n < 1) return -1;
    int32_t best = 0;
    float bv = sd_logit_clean(x[0]);
    for (int i = 1; i < n; i++) {
        float v = sd_logit_clean(x[i]);
        if (v > bv) {
            bv = v;
            best = i;
        }
    }
    return best;
}

/* Candidate order: a ranks before b (higher logit, then lower id). */
static inline bool sd_cand_before(sd_cand a, sd_cand b) {
    return a.l > b.l || (a.l == b.l && a.id < b.id);
}

/* qsort comparator for descending candidate order. */
static int sd_cand_cmp(const void *pa, const void *pb) {
    sd_cand a = *(const sd_cand *)pa, b = *(const sd_cand *)pb;
    if (sd_cand_before(a, b)) return -1;
    if (sd_cand_before(b, a)) return 1;
    return 0;
}

/* Restores the "worst at the root" heap property of h[0..n) below i. */
static void sd_heap_sift_down(sd_cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && sd_cand_before(h[m], h[l])) m = l;
        if (r < n && sd_cand_before(h[m], h[r])) m = r;
        if (m == i) return;
        sd_cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Moves h[i] up to its place in the worst-at-root heap. */
static void sd_heap_sift_up(sd_cand *h, int i) {
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!sd_cand_before(h[p], h[i])) return;
        sd_cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Writes the best k (k < n) non -inf candidates of logits into c, sorted
 * in candidate order; returns how many (fewer than k if fewer are finite).
 * A size-k heap keeps the worst kept candidate at the root, so most tokens
 * cost one comparison. */
static int sd_collect_top_k(const float *logits, int n, int k, sd_cand *c) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        sd_cand x = {sd_logit_clean(logits[i]), (int32_t)i};
        if (x.l == -INFINITY) continue;
        if (m < k) {
            c[m] = x;
            sd_heap_sift_up(c, m++);
        } else if (sd_cand_before(x, c[0])) {
            c[0] = x;
            sd_heap_sift_down(c, m, 0);
        }
    }
    qsort(c, (size_t)m, sizeof *c, sd_cand_cmp);
    return m;
}

/* Writes all non -inf candidates of logits into c in id order; returns
 * how many. */
static int sd_collect_all(const float *logits, int n, sd_cand *c) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        float l = sd_logit_clean(logits[i]);
        if (l != -INFINITY) c[m++] = (sd_cand){l, (int32_t)i};
    }
    return m;
}

/* Swaps candidates i and j together with their weights. */
static inline void sd_cand_swap(sd_cand *c, double *w, int i, int j) {
    sd_cand tc = c[i];
    c[i] = c[j];
    c[j] = tc;
    double tw = w[i];
    w[i] = w[j];
    w[j] = tw;
}

/* Partitions c[lo..hi) (weights w alongside, hi - lo >= 3) around a
 * median-of-three pivot: candidates before it go first, then the pivot,
 * then the rest. Returns the pivot's index; *mass gets the weight of the
 * candidates before it. */
static int sd_partition(sd_cand *c, double *w, int lo, int hi, double *mass) {
    int mid = lo + (hi - lo) / 2, last = hi - 1;
    if (sd_cand_before(c[mid], c[lo])) sd_cand_swap(c, w, mid, lo);
    if (sd_cand_before(c[last], c[lo])) sd_cand_swap(c, w, last, lo);
    if (sd_cand_before(c[last], c[mid])) sd_cand_swap(c, w, last, mid);
    sd_cand_swap(c, w, mid, last); /* median to the end */
    sd_cand pv = c[last];
    double acc = 0.0;
    int a = lo;
    for (int j = lo; j < last; j++) {
        if (sd_cand_before(c[j], pv)) {
            acc += w[j];
            sd_cand_swap(c, w, a++, j);
        }
    }
    sd_cand_swap(c, w, a, last);
    *mass = acc;
    return a;
}

/* Rearranges c[0..m) (weights w alongside) so that c[0..M) holds the M
 * best candidates in some order and returns M: the smallest count whose
 * total weight reaches target, or m if none does. Expected O(m)
 * (quickselect on the cumulative mass instead of on a rank). */
static int sd_select_top_mass(sd_cand *c, double *w, int m, double target) {
    int lo = 0, hi = m; /* the answer lies in (lo, hi]; c[0..lo) is in it */
    double acc = 0.0;   /* weight of c[0..lo), always < target          */
    while (hi - lo > 16) {
        double mu;
        int a = sd_partition(c, w, lo, hi, &mu);
        if (acc + mu >= target) {
            hi = a;
        } else if (acc + mu + w[a] >= target) {
            return a + 1;
        } else {
            acc += mu + w[a];
            lo = a + 1;
        }
    }
    for (int i = lo + 1; i < hi; i++) /* insertion sort the small rest */
        for (int j = i; j > lo && sd_cand_before(c[j], c[j - 1]); j--)
            sd_cand_swap(c, w, j, j - 1);
    for (int i = lo; i < hi; i++) {
        acc += w[i];
        if (acc >= target) return i + 1;
    }
    return hi;
}

/* Runs the non-greedy chain: leaves the kept candidates in s->cand[0..m)
 * with probabilities (summing to 1) in s->w[0..m) and returns m; returns 0
 * if every logit is -inf (the caller falls back to the argmax). */
static int sd_sampler_kept(sd_sampler *s, const float *logits) {
    const sd_sampler_params *p = &s->params;
    int n = s->n_vocab, m;
    sd_cand *c = s->cand;
    double *w = s->w;
    bool sorted = false;
    if (p->top_k > 0 && p->top_k < n) {
        m = sd_collect_top_k(logits, n, p->top_k, c);
        sorted = true;
    } else {
        m = sd_collect_all(logits, n, c);
    }
    if (m == 0) return 0;

    /* Temperature-1 weights relative to the max: the top-k set's softmax is
     * w_i / z. */
    double lmax = c[0].l;
    for (int i = 1; i < m; i++)
        if (c[i].l > lmax) lmax = c[i].l;
    double z = 0.0;
    if (p->min_p > 0.0f || p->top_p < 1.0f) {
        for (int i = 0; i < m; i++) {
            w[i] = exp((double)c[i].l - lmax);
            z += w[i];
        }
    }

    /* min-p: p_i >= min_p * p_max  <=>  w_i >= min_p (w_max = 1). It keeps
     * a prefix of the sorted order, so it commutes with top-p's prefix and
     * is applied first to shrink what top-p must sort. With min_p > 1
     * nothing qualifies and only the first candidate in order is kept. */
    if (p->min_p > 1.0f) {
        int b = 0;
        for (int i = 1; i < m; i++)
            if (sd_cand_before(c[i], c[b])) b = i;
        c[0] = c[b];
        w[0] = 1.0;
        m = 1;
    } else if (p->min_p > 0.0f) {
        double thr = p->min_p;
        int j = 0;
        for (int i = 0; i < m; i++) {
            if (w[i] >= thr) {
                c[j] = c[i];
                w[j++] = w[i];
            }
        }
        m = j;
    }

    /* top-p over the top-k set's probabilities: the smallest sorted prefix
     * whose mass reaches top_p (at least one token). */
    if (p->top_p < 1.0f) {
        double target = (double)p->top_p * z, cum = 0.0;
        if (!sorted) {
            /* Only the prefix can matter: select a superset of it (the
             * margin covers summation-order rounding), then sort that. */
            m = sd_select_top_mass(c, w, m, target + 1e-9 * z);
            qsort(c, (size_t)m, sizeof *c, sd_cand_cmp);
            for (int i = 0; i < m; i++) w[i] = exp((double)c[i].l - lmax);
        }
        for (int i = 0; i < m; i++) {
            cum += w[i];
            if (cum >= target) {
                m = i + 1;
                break;
            }
        }
    }

    /* Temperature on the kept logits. */
    double t = p->temp, sum = 0.0;
    for (int i = 0; i < m; i++) {
        w[i] = exp(((double)c[i].l - lmax) / t);
        sum += w[i];
    }
    for (int i = 0; i < m; i++) w[i] /= sum;
    return m;
}

/* Writes the dense distribution sd_sampler_sample() draws from. */
void sd_sampler_dist(sd_sampler *s, const float *logits, float *probs) {
    if (!s || !logits || !probs) return;
    memset(probs, 0, (size_t)s->n_vocab * sizeof *probs);
    int m = sd_sampler_is_greedy(s) ? 0 : sd_sampler_kept(s, logits);
    if (m == 0) {
        probs[sd_argmax(logits, s->n_vocab)] = 1.0f;
        return;
    }
    for (int i = 0; i < m; i++) probs[s->cand[i].id] = (float)s->w[i];
}

/* Inverse-CDF pick over w[0..m) (nonnegative, positive sum) with uniform u;
 * never returns an index whose weight is 0. */
static int sd_pick(const double *w, int m, double sum, double u) {
    double target = u * sum, cum = 0.0;
    int last = -1;
    for (int i = 0; i < m; i++) {
        if (!(w[i] > 0.0)) continue;
        cum += w[i];
        last = i;
        if (target < cum) return i;
    }
    return last; /* rounding left target at the very top */
}

/* Samples a token: argmax when greedy (no generator draw); otherwise exactly
 * one sd_rng_uniform() draw, inverse CDF over the kept candidates in sorted
 * order (id order when no filter sorted them). -1 on NULL arguments. */
int32_t sd_sampler_sample(sd_sampler *s, const float *logits) {
    if (!s || !logits) return -1;
    if (sd_sampler_is_greedy(s)) return sd_argmax(logits, s->n_vocab);
    int m = sd_sampler_kept(s, logits);
    double u = sd_rng_uniform(&s->rng);
    if (m == 0) return sd_argmax(logits, s->n_vocab);
    int i = sd_pick(s->w, m, 1.0, u);
    return s->cand[i].id;
}

/* Inverse-CDF draw over probs[0..n) normalized by the sum of its positive
 * entries (negative and NaN count as 0). Consumes one uniform when it
 * returns an index; -1 (no draw) if the sum is not positive and finite or
 * the arguments are bad. */
int32_t sd_sampler_draw(sd_sampler *s, const float *probs, int n) {
    if (!s || !probs || n < 1) return -1;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        if (probs[i] > 0.0f) sum += probs[i];
    if (!(sum > 0.0) || !isfinite(sum)) return -1;
    double target = sd_rng_uniform(&s->rng) * sum, cum = 0.0;
    int last = -1;
    for (int i = 0; i < n; i++) {
        if (!(probs[i] > 0.0f)) continue;
        cum += probs[i];
        last = i;
        if (target < cum) return i;
    }
    return last;
}

const sd_sampler_params *sd_sampler_get_params(const sd_sampler *s) { return s ? &s->params : NULL; }
