/*
 * test_kernels.c - SIMD kernel tables against the scalar reference.
 *
 * Tolerances (err = |simd - ref|):
 *  - fp16 conversions: exact (all 65536 halves; F16C hardware on random and
 *    rounding-boundary floats when the CPU has it).
 *  - gemm F32/F16: err <= 1e-5 * sum_k |x_k w_k| (+1e-30), ref in double.
 *  - gemm Q8_0: bit-identical to the ref (every table runs the ref's
 *    arithmetic: exact int32 per block, then sumf += sumi * (d_x d_w), so
 *    packed and stored weights agree, packed.h). Also the ref against
 *    double math on the dequantized values (err <= 1e-5 * sum_b |d_w d_x|
 *    sum_j |q_w q_x|), and against F32 math on the unquantized values
 *    within the quantization bound sum_k 0.6 (|x_k| d_w + |w_k| d_x +
 *    d_w d_x).
 *  - quantize_row_q8_0: byte-exact (scales and quants), ties and NaN too.
 *  - dot: 1e-5 * sum|a b|; axpy: 1e-6 * (|y| + |a x|); rmsnorm: 1e-5 |ref|;
 *    swiglu: 1e-5 |ref| + 1e-30.
 * Gemm outputs outside [m0, m1) and the ldy padding must stay untouched.
 * Batch invariance, every table and gemm type: y[n][m] bit-identical
 * whether token n is computed alone, in the full batch (N <= 40), or in
 * random sub-batches with [0, M) split at multiples of 16.
 * avx512vnni vs avx512 (when the CPU has VNNI): bit-identical.
 * Only the tables the CPU runs, as the library sees it (SPECDEC_CPU_CAP
 * lowers it), are called; the others are named skips (tests/util/tables.h).
 * Dispatch: the library's view of the CPU equals this test's own probe
 * lowered to the cap, for every cap value, and no lookup (by name, by id)
 * hands out a table above it.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "util/check.h"
#include "util/tables.h"

/* ------------------------------------------------------------ rng */

typedef struct {
    uint64_t s;
} rng_t;

static uint32_t rng_u32(rng_t *r) {
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t x = r->s;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* uniform in [-1, 1) */
static float rng_f(rng_t *r) {
    return (float)((double)rng_u32(r) / 2147483648.0 - 1.0);
}

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------------------ fp16 */

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h) {
    return _cvtsh_ss(h);
}
__attribute__((target("f16c"))) static uint16_t hw_f2h(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
/* CPUID.1:ECX bit 29 (clang's __builtin_cpu_supports lacks "f16c") */
static int have_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1u);
}
#else
static float hw_h2f(uint16_t h) { return sd_fp16_to_fp32(h); }
static uint16_t hw_f2h(float f) { return sd_fp32_to_fp16(f); }
static int have_f16c(void) { return 0; }
#endif

/* Value of half h from its definition (finite h only). */
static double half_value(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static void test_fp16(void) {
    int bad_val = 0, bad_rt = 0, bad_hw = 0;
    /* the hardware cross-check runs where the library may use F16C (its
     * AVX2 family; SPECDEC_CPU_CAP=ref emulates a CPU without) */
    const int hw = have_f16c() && sd_cpu_cap() >= SD_ISA_AVX2;
    if (!hw)
        check_skip("F16C cross-check of the fp16 conversions: the CPU lacks F16C%s",
                   have_f16c() ? " (SPECDEC_CPU_CAP=ref)" : "");
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t hh = (uint16_t)h;
        float f = sd_fp16_to_fp32(hh);
        int e = (h >> 10) & 31;
        if (e == 31) {
            int want_nan = (h & 1023) != 0;
            if (want_nan ? !isnan(f) : !(isinf(f) && !!signbit(f) == !!(h & 0x8000)))
                bad_val++;
        } else if ((double)f != half_value(hh) || !!signbit(f) != !!(h & 0x8000)) {
            bad_val++;
        }
        uint16_t back = sd_fp32_to_fp16(f);
        if (e == 31 && (h & 1023)) {
            if (((back >> 10) & 31) != 31 || (back & 1023) == 0)
                bad_rt++;
        } else if (back != hh) {
            bad_rt++;
        }
        if (hw && fbits(hw_h2f(hh)) != fbits(f))
            bad_hw++;
    }
    CHECK(bad_val == 0, "%d halves convert to the wrong float", bad_val);
    CHECK(bad_rt == 0, "%d halves do not round-trip", bad_rt);
    CHECK(bad_hw == 0, "%d halves differ from vcvtph2ps", bad_hw);

    /* fp32 -> fp16: every midpoint between adjacent halves (ties), +-1 ulp
     * around it, plus random bit patterns, against the definition of RNE
     * (via half_value) and against F16C. */
    int bad_rne = 0, bad_hw2 = 0, n_hw = 0;
    rng_t r = {42};
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double lo = half_value((uint16_t)h), hi = half_value((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2); /* exact: needs <= 13 more bits */
        float cand[3] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
        for (int c = 0; c < 3; c++)
            for (int s = 0; s < 2; s++) {
                float f = s ? -cand[c] : cand[c];
                uint16_t got = sd_fp32_to_fp16(f);
                uint16_t want;
                double a = fabs((double)f);
                if (a == (lo + hi) / 2)
                    want = (uint16_t)((h & 1) ? h + 1 : h);
                else
                    want = (uint16_t)(a < (lo + hi) / 2 ? h : h + 1);
                if (s)
                    want |= 0x8000;
                if (got != want)
                    bad_rne++;
                if (hw) {
                    n_hw++;
                    if (hw_f2h(f) != got)
                        bad_hw2++;
                }
            }
    }
    for (int i = 0; i < 4000000 && hw; i++) {
        float f = bitsf(rng_u32(&r));
        uint16_t got = sd_fp32_to_fp16(f), want = hw_f2h(f);
        n_hw++;
        if (got != want && !(isnan(f) && (got & 0x7fff) > 0x7c00 &&
                             (want & 0x7fff) > 0x7c00))
            bad_hw2++;
    }
    CHECK(bad_rne == 0, "%d fp32->fp16 roundings wrong near midpoints", bad_rne);
    CHECK(bad_hw2 == 0, "%d of %d fp32->fp16 differ from vcvtps2ph", bad_hw2, n_hw);
    CHECK(sd_fp32_to_fp16(65520.0f) == 0x7c00, "65520 must round to inf");
    CHECK(sd_fp32_to_fp16(65519.0f) == 0x7bff, "65519 must round to 65504");
    CHECK(sd_fp32_to_fp16(1e-8f) == 0, "1e-8 must flush to +0");
    CHECK(sd_fp32_to_fp16(-INFINITY) == 0xfc00, "-inf");
    printf("fp16: 65536 halves exhaustive, F16C cross-check %s\n", hw ? "ran" : "skipped");
}

/* ------------------------------------------------------------ gemm */

enum { T_F32, T_F16, T_Q8 };
static const char *type_name[] = {"f32", "f16", "q8_0"};

/* Test matrices: W (M, K) with w_stride, x (N, K) with x_stride, plus the
 * float versions of both (dequantized for Q8_0, original for F32/F16 x). */
typedef struct {
    int type, K, M, N;
    size_t w_stride, x_stride;
    void *w, *x;
    float *wf, *xf;   /* (M, K), (N, K): the values the kernel multiplies */
    float *xorig;     /* (N, K) unquantized x (Q8_0) */
    float *worig;     /* (M, K) unquantized W (Q8_0) */
} gemm_case;

static void case_free(gemm_case *c) {
    free(c->w);
    free(c->x);
    free(c->wf);
    free(c->xf);
    free(c->xorig);
    free(c->worig);
}

/* Fills a case with seeded random data; Q8_0 rows are quantized with the
 * reference quantizer, and a few weight quants are set to -128 (legal in a
 * file, never produced by the quantizer) to test exactness there. */
static void case_make(gemm_case *c, int type, int K, int M, int N, rng_t *r) {
    const sd_kernels *ref = sd_kernels_ref();
    memset(c, 0, sizeof *c);
    c->type = type, c->K = K, c->M = M, c->N = N;
    size_t welt = type == T_F32 ? 4 : 2;
    size_t wrow = type == T_Q8 ? (size_t)K / 32 * 34 : (size_t)K * welt;
    size_t xrow = type == T_Q8 ? (size_t)K / 32 * 34 : (size_t)K * 4;
    c->w_stride = wrow + (type == T_Q8 ? 34 : 4 * welt); /* padded rows */
    c->x_stride = xrow + (type == T_Q8 ? 68 : 12);
    c->w = calloc((size_t)M, c->w_stride);
    c->x = calloc((size_t)N, c->x_stride);
    c->wf = malloc((size_t)M * K * 4);
    c->xf = malloc((size_t)N * K * 4);
    c->worig = malloc((size_t)M * K * 4);
    c->xorig = malloc((size_t)N * K * 4);
    for (int m = 0; m < M; m++) {
        char *row = (char *)c->w + (size_t)m * c->w_stride;
        float *o = c->worig + (size_t)m * K;
        float scale = 0.05f + (float)(m % 7) * 0.3f;
        for (int k = 0; k < K; k++)
            o[k] = rng_f(r) * scale;
        if (type == T_F32) {
            memcpy(row, o, (size_t)K * 4);
            memcpy(c->wf + (size_t)m * K, o, (size_t)K * 4);
        } else if (type == T_F16) {
            for (int k = 0; k < K; k++) {
                uint16_t h = sd_fp32_to_fp16(o[k]);
                memcpy(row + 2 * (size_t)k, &h, 2);
                c->wf[(size_t)m * K + k] = sd_fp16_to_fp32(h);
            }
        } else {
            ref->quantize_row_q8_0(row, o, K);
            sd_block_q8_0 *b = (sd_block_q8_0 *)row;
            if (m % 5 == 1)
                b[0].qs[rng_u32(r) % 32] = -128;
            sd_dequantize_row_q8_0(c->wf + (size_t)m * K, row, K);
        }
    }
    for (int n = 0; n < N; n++) {
        float *o = c->xorig + (size_t)n * K;
        for (int k = 0; k < K; k++)
            o[k] = rng_f(r) * 2.0f;
        char *row = (char *)c->x + (size_t)n * c->x_stride;
        if (type == T_Q8) {
            ref->quantize_row_q8_0(row, o, K);
            sd_dequantize_row_q8_0(c->xf + (size_t)n * K, row, K);
        } else {
            memcpy(row, o, (size_t)K * 4);
            memcpy(c->xf + (size_t)n * K, o, (size_t)K * 4);
        }
    }
}

static sd_gemm_fn gemm_of(const sd_kernels *t, int type) {
    return type == T_F32 ? t->gemm_f32 : type == T_F16 ? t->gemm_f16 : t->gemm_q8_0;
}

/* Error bound for output (n, m): 1e-5 * sum_k |x w| over the values the
 * kernel multiplies (for Q8_0 this equals sum_b |dw dx| sum_j |qw qx| up
 * to rounding). */
static double bound_at(const gemm_case *c, int n, int m) {
    double s = 0;
    const float *x = c->xf + (size_t)n * c->K, *w = c->wf + (size_t)m * c->K;
    for (int k = 0; k < c->K; k++)
        s += fabs((double)x[k] * w[k]);
    return 1e-5 * s + 1e-30;
}

/* Runs table t on case c for rows [m0, m1) into a NaN-filled y with
 * ldy = M + 3 and compares with the reference output yref (N, M). Returns
 * the number of mismatches (printing the first). */
static int gemm_compare(const sd_kernels *t, const gemm_case *c, const float *yref,
                        int m0, int m1) {
    size_t ldy = (size_t)c->M + 3;
    size_t ny = (size_t)c->N * ldy;
    float *y = malloc(ny * 4);
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN;
    gemm_of(t, c->type)(y, ldy, c->x, c->x_stride, c->w, c->w_stride, c->K, c->N,
                        m0, m1);
    int bad = 0;
    for (int n = 0; n < c->N; n++)
        for (int m = 0; m < (int)ldy; m++) {
            float got = y[(size_t)n * ldy + m];
            int inside = m >= m0 && m < m1;
            int ok;
            if (!inside) {
                ok = isnan(got);
            } else {
                float want = yref[(size_t)n * c->M + m];
                /* Q8_0 is exact by design (every table runs the
                 * reference's arithmetic): bit for bit */
                ok = c->type == T_Q8 ? memcmp(&got, &want, sizeof got) == 0
                                     : fabs((double)got - want) <= bound_at(c, n, m);
            }
            if (!ok && bad++ == 0)
                fprintf(stderr, "  %s gemm_%s K=%d M=%d N=%d [%d,%d) n=%d m=%d: "
                        "got %.9g want %.9g\n", t->name, type_name[c->type], c->K,
                        c->M, c->N, m0, m1, n, m,
                        got, inside ? yref[(size_t)n * c->M + m] : NAN);
        }
    free(y);
    return bad;
}

/* Reference output (N, M) for case c. */
static float *gemm_ref_out(const gemm_case *c) {
    float *y = malloc((size_t)c->N * c->M * 4);
    gemm_of(sd_kernels_ref(), c->type)(y, (size_t)c->M, c->x, c->x_stride, c->w,
                                       c->w_stride, c->K, c->N, 0, c->M);
    return y;
}

/* Checks the reference itself against double math on the kernel's values,
 * and Q8_0 against F32 math on the unquantized values. */
static int ref_sanity(const gemm_case *c, const float *yref) {
    int bad = 0;
    for (int n = 0; n < c->N; n++)
        for (int m = 0; m < c->M; m++) {
            const float *x = c->xf + (size_t)n * c->K, *w = c->wf + (size_t)m * c->K;
            double s = 0;
            for (int k = 0; k < c->K; k++)
                s += (double)x[k] * w[k];
            double got = yref[(size_t)n * c->M + m];
            if (fabs(got - s) > bound_at(c, n, m))
                bad++;
            if (c->type == T_Q8) {
                const float *xo = c->xorig + (size_t)n * c->K;
                const float *wo = c->worig + (size_t)m * c->K;
                const sd_block_q8_0 *wb =
                    (const sd_block_q8_0 *)((const char *)c->w + (size_t)m * c->w_stride);
                const sd_block_q8_0 *xb =
                    (const sd_block_q8_0 *)((const char *)c->x + (size_t)n * c->x_stride);
                double so = 0, qb = 0;
                for (int k = 0; k < c->K; k++) {
                    double dw = sd_fp16_to_fp32(wb[k / 32].d);
                    double dx = sd_fp16_to_fp32(xb[k / 32].d);
                    int w128 = wb[k / 32].qs[k % 32] == -128;
                    so += (double)xo[k] * wo[k];
                    /* a -128 quant was injected: its error is ~ 128 dw */
                    double ew = w128 ? fabs(wo[k]) + 128 * dw : 0.6 * dw;
                    qb += fabs(xo[k]) * ew + fabs(wo[k]) * 0.6 * dx + ew * 0.6 * dx;
                }
                if (fabs(got - so) > qb + bound_at(c, n, m))
                    bad++;
            }
        }
    return bad;
}

static void test_gemm(const sd_kernels *t, rng_t *r) {
    static const int Ks[] = {32, 64, 96, 384, 1024, 1, 7, 17, 100};
    static const int Ms[] = {1, 3, 16, 37, 384};
    static const int Ns[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 33};
    for (int type = 0; type < 3; type++) {
        int bad = 0, cases = 0, bad_ref = 0;
        for (size_t ik = 0; ik < sizeof Ks / sizeof *Ks; ik++) {
            int K = Ks[ik];
            if (type == T_Q8 && K % 32)
                continue;
            for (size_t im = 0; im < sizeof Ms / sizeof *Ms; im++)
                for (size_t in = 0; in < sizeof Ns / sizeof *Ns; in++) {
                    int M = Ms[im], N = Ns[in];
                    if (K == 1024 && M == 384 && N > 16)
                        continue; /* keep the run short */
                    gemm_case c;
                    case_make(&c, type, K, M, N, r);
                    float *yref = gemm_ref_out(&c);
                    if (t == sd_kernels_ref() || (M <= 37 && N <= 8))
                        bad_ref += ref_sanity(&c, yref);
                    if (t != sd_kernels_ref()) {
                        bad += gemm_compare(t, &c, yref, 0, M);
                        int m0 = (int)(rng_u32(r) % (unsigned)M);
                        int m1 = m0 + 1 + (int)(rng_u32(r) % (unsigned)(M - m0));
                        bad += gemm_compare(t, &c, yref, m0, m1);
                        cases += 2;
                    }
                    free(yref);
                    case_free(&c);
                }
        }
        CHECK(bad == 0, "%s gemm_%s: %d mismatches over %d runs", t->name,
              type_name[type], bad, cases);
        CHECK(bad_ref == 0, "%s gemm_%s: reference off the exact math %d times",
              t->name, type_name[type], bad_ref);
    }
}

/* ------------------------------------------------------------ batch invariance */

/* y (N, ldy) for tokens [n0, n0+nn) of case c, rows [m0, m1), x pointing at
 * token n0 (so the kernel sees only those tokens). */
static void gemm_run(const sd_kernels *t, const gemm_case *c, float *y, size_t ldy,
                     int n0, int nn, int m0, int m1) {
    gemm_of(t, c->type)(y + (size_t)n0 * ldy, ldy,
                        (const char *)c->x + (size_t)n0 * c->x_stride, c->x_stride,
                        c->w, c->w_stride, c->K, nn, m0, m1);
}

/* Batch invariance (speculative verification must reproduce plain decoding
 * bit for bit): y[n][m] must not depend on how many tokens share a call,
 * which other tokens they are, or how [0, M) is split (at multiples of 16).
 * The full batch is computed once; then each token alone (N = 1), then
 * random sub-batches x random m-ranges; all must match with memcmp. */
static void test_batch_invariance(const sd_kernels *t, rng_t *r) {
    static const int Ks[] = {32, 96, 384, 1024, 7, 100};
    static const int Ms[] = {16, 37, 384};
    for (int type = 0; type < 3; type++) {
        int bad_single = 0, bad_split = 0, cases = 0;
        for (size_t ik = 0; ik < sizeof Ks / sizeof *Ks; ik++) {
            int K = Ks[ik];
            if (type == T_Q8 && K % 32)
                continue;
            for (size_t im = 0; im < sizeof Ms / sizeof *Ms; im++) {
                int M = Ms[im];
                int N = 2 + (int)(rng_u32(r) % 39); /* 2..40 */
                gemm_case c;
                case_make(&c, type, K, M, N, r);
                size_t ldy = (size_t)M + 5, ny = (size_t)N * ldy;
                float *yfull = calloc(ny, 4), *y1 = calloc(ny, 4), *ys = calloc(ny, 4);
                gemm_run(t, &c, yfull, ldy, 0, N, 0, M);
                for (int n = 0; n < N; n++)
                    gemm_run(t, &c, y1, ldy, n, 1, 0, M);
                for (int n = 0; n < N; n++)
                    if (memcmp(yfull + (size_t)n * ldy, y1 + (size_t)n * ldy,
                               (size_t)M * 4) != 0 && bad_single++ == 0)
                        for (int m = 0; m < M; m++)
                            if (fbits(yfull[(size_t)n * ldy + m]) !=
                                fbits(y1[(size_t)n * ldy + m])) {
                                fprintf(stderr, "  %s gemm_%s K=%d M=%d N=%d: token %d "
                                        "m=%d alone %.9g, in batch %.9g\n", t->name,
                                        type_name[type], K, M, N, n, m,
                                        y1[(size_t)n * ldy + m], yfull[(size_t)n * ldy + m]);
                                break;
                            }
                /* random sub-batches x random m-ranges (cuts at multiples of 16) */
                for (int rep = 0; rep < 3; rep++) {
                    for (int n0 = 0; n0 < N;) {
                        int nn = 1 + (int)(rng_u32(r) % (unsigned)(N - n0));
                        if (rep == 2 && nn > 8)
                            nn = 1 + nn % 8; /* small sub-batches, like k+1 */
                        for (int m0 = 0; m0 < M;) {
                            int m1 = m0 + 16 * (1 + (int)(rng_u32(r) % 8u));
                            if (m1 > M || rng_u32(r) % 4u == 0)
                                m1 = M;
                            gemm_run(t, &c, ys, ldy, n0, nn, m0, m1);
                            m0 = m1;
                        }
                        n0 += nn;
                    }
                    for (int n = 0; n < N; n++)
                        if (memcmp(yfull + (size_t)n * ldy, ys + (size_t)n * ldy,
                                   (size_t)M * 4) != 0 && bad_split++ == 0)
                            fprintf(stderr, "  %s gemm_%s K=%d M=%d N=%d: token %d "
                                    "differs under a split batch\n", t->name,
                                    type_name[type], K, M, N, n);
                }
                cases++;
                free(yfull), free(y1), free(ys);
                case_free(&c);
            }
        }
        CHECK(bad_single == 0, "%s gemm_%s: %d tokens alone != in batch (%d cases)",
              t->name, type_name[type], bad_single, cases);
        CHECK(bad_split == 0, "%s gemm_%s: %d tokens differ under split batches",
              t->name, type_name[type], bad_split);
    }
}

/* ------------------------------------------------------------ quantize */

static void test_quantize(const sd_kernels *t, rng_t *r) {
    enum { K = 32 * 40 };
    float *x = malloc(K * 4);
    sd_block_q8_0 a[K / 32], b[K / 32];
    int bad = 0;
    for (int iter = 0; iter < 200; iter++) {
        for (int k = 0; k < K; k++)
            x[k] = rng_f(r) * (float)(1 + iter % 9) * (iter % 3 ? 1.0f : 1e-3f);
        /* block 0: amax 127 -> d = 1, id = 1: exact ties k + 0.5 */
        for (int j = 0; j < 32; j++)
            x[j] = (float)(j - 16) + 0.5f;
        x[31] = 127.0f;
        /* block 1: zeros; block 2: NaN and inf; block 3: subnormals */
        for (int j = 0; j < 32; j++) {
            x[32 + j] = 0.0f;
            x[96 + j] = (float)(j + 1) * 1e-40f;
        }
        x[64 + 3] = NAN;
        x[64 + 9] = -INFINITY;
        x[128 + 5] = NAN; /* NaN among finite values */
        t->quantize_row_q8_0(a, x, K);
        sd_kernels_ref()->quantize_row_q8_0(b, x, K);
        if (memcmp(a, b, sizeof a) != 0 && bad++ == 0)
            for (int i = 0; i < K / 32; i++)
                if (memcmp(&a[i], &b[i], sizeof a[i]))
                    fprintf(stderr, "  %s quantize block %d differs (d %04x vs %04x)\n",
                            t->name, i, a[i].d, b[i].d);
    }
    CHECK(bad == 0, "%s quantize_row_q8_0 not byte-exact in %d of 200 rows",
          t->name, bad);
    /* ties round half away from zero, like roundf */
    sd_kernels_ref()->quantize_row_q8_0(b, x, K);
    CHECK(b[0].qs[0] == -16 && b[0].qs[15] == -1 && b[0].qs[16] == 1 &&
              b[0].qs[17] == 2,
          "ties: %d %d %d %d", b[0].qs[0], b[0].qs[15], b[0].qs[16], b[0].qs[17]);
    free(x);
}

/* ------------------------------------------------------------ vectors */

static void test_vectors(const sd_kernels *t, rng_t *r) {
    static const int ns[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65,
                             100, 128, 384, 1000, 1024};
    const sd_kernels *ref = sd_kernels_ref();
    int bad_dot = 0, bad_axpy = 0, bad_rms = 0, bad_swi = 0;
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        int n = ns[i];
        float *a = malloc(n * 4), *b = malloc(n * 4), *y1 = malloc(n * 4),
              *y2 = malloc(n * 4), *u = malloc(n * 4);
        for (int k = 0; k < n; k++) {
            a[k] = rng_f(r) * 3;
            b[k] = rng_f(r) * 3;
            u[k] = rng_f(r) * 2;
        }
        double sab = 0;
        for (int k = 0; k < n; k++)
            sab += fabs((double)a[k] * b[k]);
        float d1 = t->dot_f32(a, b, n), d2 = ref->dot_f32(a, b, n);
        if (fabs((double)d1 - d2) > 1e-5 * sab + 1e-30)
            bad_dot++;

        memcpy(y1, b, n * 4);
        memcpy(y2, b, n * 4);
        t->axpy_f32(y1, 0.37f, a, n);
        ref->axpy_f32(y2, 0.37f, a, n);
        for (int k = 0; k < n; k++)
            if (fabs((double)y1[k] - y2[k]) > 1e-6 * (fabs(b[k]) + fabs(0.37 * a[k])))
                bad_axpy++;

        t->rmsnorm(y1, a, b, 1e-5f, n);
        ref->rmsnorm(y2, a, b, 1e-5f, n);
        for (int k = 0; k < n; k++)
            if (fabs((double)y1[k] - y2[k]) > 1e-5 * fabs(y2[k]) + 1e-30)
                bad_rms++;

        /* swiglu over a wide range, including overflow of exp(-g) */
        for (int k = 0; k < n; k++)
            y1[k] = y2[k] = rng_f(r) * (k % 4 == 0 ? 40.0f : 8.0f);
        if (n > 3) {
            y1[0] = y2[0] = -100.0f;
            y1[1] = y2[1] = 100.0f;
            y1[2] = y2[2] = 0.0f;
        }
        t->swiglu(y1, u, n);
        ref->swiglu(y2, u, n);
        for (int k = 0; k < n; k++)
            if (!(fabs((double)y1[k] - y2[k]) <= 1e-5 * fabs(y2[k]) + 1e-30)) {
                if (bad_swi++ == 0)
                    fprintf(stderr, "  %s swiglu n=%d k=%d: %.9g vs %.9g\n",
                            t->name, n, k, y1[k], y2[k]);
            }
        free(a), free(b), free(y1), free(y2), free(u);
    }
    CHECK(bad_dot == 0, "%s dot_f32: %d mismatches", t->name, bad_dot);
    CHECK(bad_axpy == 0, "%s axpy_f32: %d mismatches", t->name, bad_axpy);
    CHECK(bad_rms == 0, "%s rmsnorm: %d mismatches", t->name, bad_rms);
    CHECK(bad_swi == 0, "%s swiglu: %d mismatches", t->name, bad_swi);
}

/* ------------------------------------------------------------ dispatch */

/* This test's own probe of the CPU: the best family it supports (the
 * library's is in kernels.c; the two must agree). */
static sd_isa probe_cpu(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && have_f16c()))
        return SD_ISA_REF;
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
        return SD_ISA_AVX2;
    return __builtin_cpu_supports("avx512vnni") ? SD_ISA_AVX512VNNI : SD_ISA_AVX512;
#else
    return SD_ISA_REF;
#endif
}

/* Every lookup against want, the family the library may use: tables above
 * it are refused. Compares pointers and names only (nothing is called, so
 * a lookup that ignored the CPU fails here rather than faulting). */
/* The test's own probe of AVX-VNNI (CPUID.(7,1):EAX bit 4). */
static int probe_avxvnni(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1u);
#else
    return 0;
#endif
}

/* vnni2: whether "avx2vnni" (the AVX2 family with AVX-VNNI) may be used. */
static void check_lookups(sd_isa want, const char *cap, int vnni2) {
    static const char *const names[4] = {"ref", "avx2", "avx512", "avx512vnni"};
    CHECK(sd_cpu_isa() == want, "cap '%s': sd_cpu_isa() = %d, want %d", cap, (int)sd_cpu_isa(), (int)want);
    for (int i = 0; i < 4; i++) {
        const sd_kernels *t = sd_kernels_by_name(names[i]);
        CHECK((t != NULL) == ((int)want >= i), "cap '%s': sd_kernels_by_name(%s) %s", cap, names[i],
              t ? "given" : "refused");
        CHECK(!t || strcmp(t->name, names[i]) == 0, "cap '%s': by_name(%s) gave %s", cap, names[i], t->name);
    }
    CHECK(sd_kernels_by_name("avx") == NULL && sd_kernels_by_name(NULL) == NULL, "unknown names refused");
    const sd_kernels *a = sd_kernels_get(SD_BACKEND_AUTO);
    const char *want_auto = want == SD_ISA_AVX2 && vnni2 ? "avx2vnni" : names[want];
    CHECK(a && strcmp(a->name, want_auto) == 0, "cap '%s': AUTO gave %s, want %s", cap, a ? a->name : "NULL",
          want_auto);
    CHECK(strcmp(sd_backend_name(SD_BACKEND_AUTO), want_auto) == 0, "cap '%s': backend name", cap);
    CHECK((sd_kernels_get(SD_BACKEND_AVX512) != NULL) == (want >= SD_ISA_AVX512), "cap '%s': avx512 avail", cap);
    CHECK(sd_kernels_get(SD_BACKEND_AVX512) == sd_kernels_avx512(), "cap '%s': avx512 table", cap);
    CHECK(want < SD_ISA_AVX512 || strcmp(sd_kernels_avx512()->name, names[want]) == 0, "cap '%s': best avx512 name",
          cap);
    CHECK((sd_kernels_avx512_plain() != NULL) == (want >= SD_ISA_AVX512), "cap '%s': avx512 plain avail", cap);
    CHECK(want < SD_ISA_AVX512 || strcmp(sd_kernels_avx512_plain()->name, "avx512") == 0,
          "cap '%s': avx512 plain name", cap);
    CHECK((sd_kernels_get(SD_BACKEND_AVX2) != NULL) == (want >= SD_ISA_AVX2), "cap '%s': avx2 avail", cap);
    CHECK((sd_kernels_avx2vnni() != NULL) == vnni2, "cap '%s': avx2vnni %s", cap,
          sd_kernels_avx2vnni() ? "given" : "refused");
    CHECK(!vnni2 || strcmp(sd_kernels_by_name("avx2vnni")->name, "avx2vnni") == 0, "cap '%s': avx2vnni name", cap);
    CHECK(sd_kernels_get(SD_BACKEND_AVX2) == (vnni2 ? sd_kernels_avx2vnni() : sd_kernels_avx2()),
          "cap '%s': avx2 table", cap);
    CHECK(want != SD_ISA_AVX2 || sd_kernels_get(SD_BACKEND_AUTO) == sd_kernels_get(SD_BACKEND_AVX2),
          "cap '%s': AUTO is the AVX2 family's best", cap);
    CHECK(sd_kernels_get(SD_BACKEND_REF) == sd_kernels_ref(), "cap '%s': ref", cap);
    CHECK(sd_kernels_get((sd_backend)77) == NULL, "cap '%s': unknown backend id", cap);
}

static void test_dispatch(void) {
    const sd_isa cpu = probe_cpu();
    /* the cap this run was started with, then every value (restored after) */
    const char *env = getenv("SPECDEC_CPU_CAP");
    char *saved = env ? strdup(env) : NULL;
    sd_isa want = cpu < sd_cpu_cap() ? cpu : sd_cpu_cap();
    const int vnni2 = probe_avxvnni() && cpu >= SD_ISA_AVX2;
    /* avx2vnni: allowed by a cap above avx2, or by the cap "avx2vnni" */
#define VNNI2_OK(capv, capstr) (vnni2 && ((capv) > SD_ISA_AVX2 || !strcmp((capstr), "avx2vnni")))
    check_lookups(want, saved ? saved : "(unset)", VNNI2_OK(sd_cpu_cap(), saved ? saved : "(unset)"));
    printf("dispatch: AUTO = %s (cpu family %d, SPECDEC_CPU_CAP=%s)\n", sd_backend_name(SD_BACKEND_AUTO), (int)cpu,
           saved ? saved : "(unset)");
    static const struct { const char *value; sd_isa cap; } caps[] = {
        {"ref", SD_ISA_REF}, {"avx2", SD_ISA_AVX2}, {"avx512", SD_ISA_AVX512},
        {"avx512vnni", SD_ISA_AVX512VNNI}, {"", SD_ISA_AVX512VNNI}, {"AVX2", SD_ISA_REF}, {"bogus", SD_ISA_REF},
        {"avx2vnni", SD_ISA_AVX2},
    };
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
        setenv("SPECDEC_CPU_CAP", caps[i].value, 1);
        CHECK(sd_cpu_cap() == caps[i].cap, "SPECDEC_CPU_CAP='%s' read as %d, want %d", caps[i].value,
              (int)sd_cpu_cap(), (int)caps[i].cap);
        check_lookups(cpu < caps[i].cap ? cpu : caps[i].cap, caps[i].value, VNNI2_OK(caps[i].cap, caps[i].value));
    }
    if (saved) setenv("SPECDEC_CPU_CAP", saved, 1);
    else unsetenv("SPECDEC_CPU_CAP");
    free(saved);
    CHECK(sd_cpu_isa() == want, "cap restored");
    /* simulated CPUs */
    CHECK(sd_kernels_pick(SD_BACKEND_AVX512, 1, 0, 0) == NULL, "no avx512 -> NULL");
    CHECK(sd_kernels_pick(SD_BACKEND_AVX512, 1, 0, 1) == NULL, "vnni needs avx512");
    CHECK(sd_kernels_pick(SD_BACKEND_AVX512, 0, 1, 0) == NULL, "avx512 needs avx2");
    CHECK(sd_kernels_pick(SD_BACKEND_AVX2, 0, 0, 0) == NULL, "no avx2 -> NULL");
    CHECK(strcmp(sd_kernels_pick(SD_BACKEND_AUTO, 1, 0, 0)->name, "avx2") == 0,
          "auto without avx512");
    CHECK(strcmp(sd_kernels_pick(SD_BACKEND_AUTO, 0, 0, 0)->name, "ref") == 0,
          "auto without avx2");
    CHECK(strcmp(sd_kernels_pick(SD_BACKEND_AUTO, 1, 1, 0)->name, "avx512") == 0,
          "auto with avx512");
    CHECK(strcmp(sd_kernels_pick(SD_BACKEND_AUTO, 1, 1, 1)->name, "avx512vnni") == 0,
          "auto with avx512 + vnni");
    CHECK(strcmp(sd_kernels_pick(SD_BACKEND_AVX512, 1, 1, 1)->name, "avx512vnni") == 0,
          "avx512 with vnni");
}

/* Two tables that must agree bit for bit (avx512vnni vs avx512: same Q8_0
 * arithmetic, different integer instructions): every gemm type on random
 * shapes, batches and m-ranges. */
static void test_identical(const sd_kernels *a, const sd_kernels *b, rng_t *r) {
    static const int Ks[] = {32, 64, 96, 384, 1024, 7, 100};
    static const int Ms[] = {1, 3, 16, 37, 384};
    for (int type = 0; type < 3; type++) {
        int bad = 0, cases = 0;
        for (size_t ik = 0; ik < sizeof Ks / sizeof *Ks; ik++) {
            int K = Ks[ik];
            if (type == T_Q8 && K % 32)
                continue;
            for (size_t im = 0; im < sizeof Ms / sizeof *Ms; im++) {
                int M = Ms[im], N = 1 + (int)(rng_u32(r) % 40u);
                gemm_case c;
                case_make(&c, type, K, M, N, r);
                size_t ldy = (size_t)M, ny = (size_t)N * ldy;
                float *ya = calloc(ny, 4), *yb = calloc(ny, 4);
                int m0 = (int)(rng_u32(r) % (unsigned)M);
                for (int pass = 0; pass < 2; pass++) {
                    int lo = pass ? m0 : 0;
                    gemm_run(a, &c, ya, ldy, 0, N, lo, M);
                    gemm_run(b, &c, yb, ldy, 0, N, lo, M);
                    for (int n = 1; n < N; n += 3) { /* singles too */
                        gemm_run(a, &c, ya, ldy, n, 1, lo, M);
                        gemm_run(b, &c, yb, ldy, n, 1, lo, M);
                    }
                    if (memcmp(ya, yb, ny * 4) != 0 && bad++ == 0)
                        fprintf(stderr, "  %s vs %s gemm_%s K=%d M=%d N=%d differ\n",
                                a->name, b->name, type_name[type], K, M, N);
                    cases++;
                }
                free(ya), free(yb);
                case_free(&c);
            }
        }
        CHECK(bad == 0, "%s != %s for gemm_%s in %d of %d runs", a->name, b->name,
              type_name[type], bad, cases);
    }
}

int main(void) {
    rng_t r = {12345};
    test_fp16();
    test_dispatch();
    const sd_kernels *tables[4] = {test_kernel_table("ref"), test_kernel_table("avx2"),
                                   test_kernel_table("avx512"), test_kernel_table("avx512vnni")};
    for (int i = 0; i < 4; i++) {
        if (!tables[i])
            continue; /* named skip */
        test_gemm(tables[i], &r);
        test_batch_invariance(tables[i], &r);
        if (i > 0) {
            test_quantize(tables[i], &r);
            test_vectors(tables[i], &r);
        }
        if (i == 3 && tables[2])
            test_identical(tables[2], tables[3], &r);
        printf("table %s: tested\n", tables[i]->name);
    }
    return check_report("test_kernels");
}
