/*
 * test_attn.c - the F16 flash-attention kernels (AVX2, AVX-512) against the
 * scalar reference, and the reference against plain F32 softmax attention.
 *
 * Tolerances: SIMD vs reference: |out - ref| <= 4e-3 * max|V| (the F16
 * accumulator may round differently by one F16 ulp per step when a dot
 * product or exponential differs in its last bit); reference vs exact F32
 * attention in double: <= 2e-2 * max|V| (the F16 accumulator's rounding).
 * Also the F16 row conversions are bit-exact against the scalar ones.
 * Only the tables this CPU runs are called (tests/util/tables.h; the others
 * are named skips), and the by-name lookups must refuse the others.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn.h"
#include "kernels/kernels.h"
#include "util/check.h"
#include "util/tables.h"

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((float)((*s >> 8) & 0xffff) / 65536.0f) * 2.0f - 1.0f;
}

/* Exact attention in double over the visible cells. */
static void attn_exact(double *out, const float *q, int R, int D, float scale, const uint16_t *K,
                       const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis) {
    int n = n_prefix + n_batch;
    double *w = malloc((size_t)n * sizeof *w);
    for (int r = 0; r < R; r++) {
        double mx = -INFINITY, sum = 0;
        for (int c = 0; c < n; c++) {
            w[c] = -INFINITY;
            if (c >= n_prefix && vis && !vis[c - n_prefix]) continue;
            double s = 0;
            for (int d = 0; d < D; d++) s += (double)q[r * D + d] * sd_fp16_to_fp32(K[c * stride + d]);
            w[c] = s * scale;
            if (w[c] > mx) mx = w[c];
        }
        for (int c = 0; c < n; c++) {
            w[c] = w[c] == -INFINITY ? 0 : exp(w[c] - mx);
            sum += w[c];
        }
        for (int d = 0; d < D; d++) {
            double a = 0;
            for (int c = 0; c < n; c++) a += w[c] * sd_fp16_to_fp32(V[c * stride + d]);
            out[r * D + d] = sum > 0 ? a / sum : 0;
        }
    }
    free(w);
}

/* sd_attn_f32_for / _rows_for hand out a kernel exactly when the CPU (as
 * capped) runs its table, never code that would fault; unknown names get
 * NULL. Compares pointers only: nothing here is called. */
static void test_lookup(void) {
    const char *tn[5] = {"ref", "avx2", "avx512", "avx512vnni", "avx1024"};
    for (int t = 0; t < 5; t++) {
        const sd_kernels *k = sd_kernels_by_name(tn[t]);
        CHECK((k != NULL) == (t < 4 && (int)sd_cpu_isa() >= t), "sd_kernels_by_name(%s) %s with sd_cpu_isa() = %d",
              tn[t], k ? "given" : "refused", (int)sd_cpu_isa());
        CHECK((sd_attn_f32_for(tn[t]) != NULL) == (k != NULL), "sd_attn_f32_for(%s) %s, the table %s", tn[t],
              sd_attn_f32_for(tn[t]) ? "given" : "refused", k ? "is here" : "is not");
        CHECK((sd_attn_f32_rows_for(tn[t]) != NULL) == (k != NULL), "sd_attn_f32_rows_for(%s) %s, the table %s",
              tn[t], sd_attn_f32_rows_for(tn[t]) ? "given" : "refused", k ? "is here" : "is not");
        CHECK(!k || (sd_attn_f32_for(tn[t]) == k->attn_f32 && sd_attn_f32_rows_for(tn[t]) == k->attn_f32_rows),
              "sd_attn_f32_for(%s) is the table's entry", tn[t]);
    }
    CHECK(!sd_attn_f32_for(NULL) && !sd_attn_f32_rows_for(NULL), "NULL name refused");
}

int main(void) {
    test_lookup();
    /* the SIMD tables (the F16 kernels of "avx512vnni" are "avx512"'s) */
    const sd_kernels *tabs[2] = {test_kernel_table("avx2"), test_kernel_table("avx512")};
    const char *names[2] = {"avx2", "avx512"};
    unsigned seed = 7;
    const int Ds[] = {32, 64, 128, 48, 40};
    const int Rs[] = {1, 3, 4};
    const int npre[] = {0, 1, 17, 64, 65, 300};
    for (size_t di = 0; di < sizeof Ds / sizeof Ds[0]; di++)
    for (size_t ri = 0; ri < sizeof Rs / sizeof Rs[0]; ri++)
    for (size_t pi = 0; pi < sizeof npre / sizeof npre[0]; pi++) {
        int D = Ds[di], R = Rs[ri], n_prefix = npre[pi], n_batch = 9;
        size_t stride = (size_t)D * 2 + 8;
        int n = n_prefix + n_batch;
        float *q = malloc((size_t)R * D * sizeof(float));
        uint16_t *K = malloc((size_t)n * stride * 2), *V = malloc((size_t)n * stride * 2);
        uint8_t vis[9];
        float amp = (pi % 2) ? 4.0f : 1.0f; /* larger scores exercise the running max */
        for (int i = 0; i < R * D; i++) q[i] = frand(&seed) * amp;
        float vmax = 0;
        for (size_t i = 0; i < (size_t)n * stride; i++) {
            K[i] = sd_fp32_to_fp16(frand(&seed) * amp);
            float v = frand(&seed) * 3.0f;
            V[i] = sd_fp32_to_fp16(v);
            if (fabsf(v) > vmax) vmax = fabsf(v);
        }
        for (int j = 0; j < n_batch; j++) vis[j] = (uint8_t)((j * 7 + (int)pi) % 3 != 0);
        const uint8_t *vv = (pi % 3 == 2) ? NULL : vis;
        float scale = 1.0f / sqrtf((float)D);
        float *ref = malloc((size_t)R * D * sizeof(float)), *got = malloc((size_t)R * D * sizeof(float));
        double *ex = malloc((size_t)R * D * sizeof(double));
        sd_attn_f16_ref(ref, q, R, D, scale, K, V, stride, n_prefix, n_batch, vv);
        attn_exact(ex, q, R, D, scale, K, V, stride, n_prefix, n_batch, vv);
        double worst_ex = 0;
        for (int i = 0; i < R * D; i++) worst_ex = fmax(worst_ex, fabs(ref[i] - ex[i]));
        CHECK(worst_ex <= 2e-2 * vmax, "ref vs exact D=%d R=%d n_prefix=%d: %.5f", D, R, n_prefix, worst_ex);
        for (int t = 0; t < 2; t++) {
            if (!tabs[t]) continue;
            tabs[t]->attn_f16(got, q, R, D, scale, K, V, stride, n_prefix, n_batch, vv);
            double worst = 0;
            for (int i = 0; i < R * D; i++) worst = fmax(worst, fabs(got[i] - ref[i]));
            CHECK(worst <= 4e-3 * vmax, "%s vs ref D=%d R=%d n_prefix=%d: %.5f", names[t], D, R, n_prefix, worst);
        }
        free(q); free(K); free(V); free(ref); free(got); free(ex);
    }
    /* The default F32 attention: every SIMD version against the scalar
     * reference (<= 1e-4 * max|V|: same blocks, different summation order
     * within a dot product), and the multi-row kernel bit-identical to the
     * single-row one (batch invariance). The shapes cover the kernels'
     * query groupings (several groups and group sizes per call), D with and
     * without a specialized kernel, and more rows than one pass takes. */
    for (size_t di = 0; di < 7; di++) {
        const int D = (int[]){64, 32, 128, 64, 48, 96, 64}[di], R = (int[]){3, 1, 2, 1, 2, 3, 3}[di];
        const int np_list[4] = {0, 5, 128, 300};
        for (int pi = 0; pi < 4; pi++) {
            int n_prefix = np_list[pi], n_batch = di == 6 ? 20 : 7, n = n_prefix + n_batch;
            size_t stride = (size_t)D + 16;
            float *q = malloc((size_t)n_batch * R * D * sizeof(float));
            uint16_t *K = malloc((size_t)n * stride * 2), *V = malloc((size_t)n * stride * 2);
            for (int i = 0; i < n_batch * R * D; i++) q[i] = frand(&seed) * 3.0f;
            for (size_t i = 0; i < (size_t)n * stride; i++) {
                K[i] = sd_fp32_to_fp16(frand(&seed) * 3.0f);
                V[i] = sd_fp32_to_fp16(frand(&seed) * 2.0f);
            }
            float *ref = malloc((size_t)n_batch * R * D * sizeof(float));
            float *one = malloc((size_t)n_batch * R * D * sizeof(float));
            float *many = malloc((size_t)n_batch * R * D * sizeof(float));
            const char *tnames[3] = {"ref", "avx2", "avx512"};
            sd_attn_row rows[20];
            for (int i = 0; i < n_batch; i++) {
                /* causal rows; row 3 uses an explicit mask */
                static const uint8_t mask3[7] = {1, 0, 1, 1, 0, 0, 0};
                rows[i] = (sd_attn_row){.q = q + (size_t)i * R * D, .n_batch = i == 3 ? 7 : i + 1,
                                        .vis = i == 3 ? mask3 : NULL};
                rows[i].out = ref + (size_t)i * R * D;
                sd_attn_f32_ref(rows[i].out, rows[i].q, R, D, 0.125f, K, V, stride, n_prefix, rows[i].n_batch, rows[i].vis);
            }
            for (int t = 1; t < 3; t++) {
                if (!tabs[t - 1]) continue; /* named skip above */
                sd_attn_fn f1 = sd_attn_f32_for(tnames[t]);
                sd_attn_rows_fn fr = sd_attn_f32_rows_for(tnames[t]);
                CHECK(f1 && fr, "f32 attention %s: lookup refused an available table", tnames[t]);
                if (!f1 || !fr) continue;
                for (int i = 0; i < n_batch; i++) {
                    f1(one + (size_t)i * R * D, rows[i].q, R, D, 0.125f, K, V, stride, n_prefix, rows[i].n_batch, rows[i].vis);
                    rows[i].out = many + (size_t)i * R * D;
                }
                fr(rows, n_batch, R, D, 0.125f, K, V, stride, n_prefix);
                double worst = 0;
                for (int i = 0; i < n_batch * R * D; i++) worst = fmax(worst, fabs(one[i] - ref[i]));
                CHECK(worst <= 1e-4 * 2.0, "f32 attention %s vs ref D=%d R=%d n_prefix=%d: %g", tnames[t], D, R, n_prefix, worst);
                CHECK(memcmp(one, many, (size_t)n_batch * R * D * sizeof(float)) == 0,
                      "f32 attention %s: rows kernel differs from single rows (D=%d n_prefix=%d)", tnames[t], D, n_prefix);
            }
            free(q); free(K); free(V); free(ref); free(one); free(many);
        }
    }
    /* A row that sees nothing gets zeros. */
    {
        float q[64] = {1}, out[64];
        uint16_t K[64] = {0}, V[64] = {0};
        uint8_t none = 0;
        const sd_kernels *all[3] = {sd_kernels_ref(), tabs[0], tabs[1]};
        for (int t = 0; t < 3; t++) {
            if (!all[t]) continue;
            memset(out, 0x7f, sizeof out);
            all[t]->attn_f16(out, q, 1, 64, 0.125f, K, V, 64, 0, 1, &none);
            int zeros = 0;
            for (int i = 0; i < 64; i++) zeros += out[i] == 0.0f;
            CHECK(zeros == 64, "%s: invisible row not zero", all[t]->name);
        }
    }
    /* F16 row conversions: bit-exact with the scalar conversion. */
    for (int t = 0; t < 2; t++) {
        if (!tabs[t]) continue;
        enum { N = 1000 };
        float x[N], y[N];
        uint16_t h[N];
        for (int i = 0; i < N; i++) x[i] = frand(&seed) * powf(2.0f, (float)(i % 40 - 25));
        x[3] = 65520.0f; x[4] = -1e-8f; x[5] = INFINITY;
        tabs[t]->fp32_to_fp16_row(h, x, N);
        memcpy(y, x, sizeof y);
        tabs[t]->round_f16_row(y, N);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            bad += h[i] != sd_fp32_to_fp16(x[i]);
            bad += y[i] != sd_fp16_to_fp32(sd_fp32_to_fp16(x[i]));
        }
        CHECK(bad == 0, "%s: %d F16 conversions differ", names[t], bad);
    }
    /* sum_exp (softmax normalizer) against double precision */
    {
        const sd_kernels *all[3] = {sd_kernels_ref(), tabs[0], tabs[1]};
        float x[1003];
        for (int i = 0; i < 1003; i++) x[i] = frand(&seed) * 20.0f;
        float mx = x[0];
        for (int i = 1; i < 1003; i++) mx = x[i] > mx ? x[i] : mx;
        double ref = 0;
        for (int i = 0; i < 1003; i++) ref += exp((double)x[i] - mx);
        for (int t = 0; t < 3; t++) {
            if (!all[t]) continue;
            double got = all[t]->sum_exp(x, 1003, mx);
            CHECK(fabs(got - ref) <= 1e-5 * ref, "%s sum_exp %.8g vs %.8g", all[t]->name, got, ref);
        }
    }
    return check_report("test_attn");
}
