/*
 * test_packed.c - the packed weights of src/kernels/packed.h and their
 * gemms, against the scalar references (their `_ref` twins: the stored-
 * layout references of quants_ref.c / kernels_ref.c). Exact by design, so
 * every comparison is bit for bit:
 *  - packing round-trips: every stored row comes back byte for byte;
 *  - every table that has packed gemms (avx2, avx2vnni, avx512,
 *    avx512vnni; those the CPU lacks are skipped by name) equals the
 *    reference for Q8_0, Q4_0, Q5_0, Q4_K, Q5_K and Q6_K, for N = 1..19
 *    tokens (register tiles of 4 and 8 and their tails), two K per type,
 *    and the column range split at a group boundary (the thread split);
 *  - the same on adversarial quants: the largest magnitudes (all weight
 *    quants at their maximum or minimum, activations at +-127) where the
 *    non-VNNI kernels sum vpmaddubsw results in int16: a saturation would
 *    show here;
 *  - whole models: the four shipped quantized targets decode with packed
 *    and with stored weights to bit-identical logits (the stored-layout
 *    SIMD kernels of these types equal the references too), for one token
 *    and for a batch of 9; and a VocabTrim context over a packed head
 *    gives its ids the full head's bits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/packed.h"
#include "kernels/quants.h"
#include "model/quantize.h"
#include "specdec.h"
#include "util/check.h"

static uint32_t g_rng = 7;
static float frand(void) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((g_rng >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

typedef struct {
    const char *name;
    int type, act;
    int k[2];
} tinfo;
static const tinfo k_types[] = {
    {"q8_0", SD_TYPE_Q8_0, SD_TYPE_Q8_0, {96, 512}}, {"q4_0", SD_TYPE_Q4_0, SD_TYPE_Q8_0, {64, 544}},
    {"q5_0", SD_TYPE_Q5_0, SD_TYPE_Q8_0, {32, 512}}, {"q4_K", SD_TYPE_Q4_K, SD_TYPE_Q8_K, {256, 768}},
    {"q5_K", SD_TYPE_Q5_K, SD_TYPE_Q8_K, {256, 512}}, {"q6_K", SD_TYPE_Q6_K, SD_TYPE_Q8_K, {1024, 768}},
};

static size_t row_size(int t, int K) { return (size_t)(K / sd_quant_block_size(t)) * sd_quant_block_bytes(t); }

static sd_gemm_fn ref_gemm(int t) {
    const sd_kernels *r = sd_kernels_ref();
    switch (t) {
    case SD_TYPE_Q8_0: return r->gemm_q8_0;
    case SD_TYPE_Q4_0: return r->gemm_q4_0;
    case SD_TYPE_Q5_0: return r->gemm_q5_0;
    case SD_TYPE_Q4_K: return r->gemm_q4_K;
    case SD_TYPE_Q5_K: return r->gemm_q5_K;
    default: return r->gemm_q6_K;
    }
}

/* Weight quants at an extreme: every byte of the quants set so that each
 * element is the type's largest (hi) or smallest stored value, scales kept
 * from the quantizer. */
static void extreme_weights(int type, char *row, int K, int hi) {
    const int nb = K / sd_quant_block_size(type);
    for (int b = 0; b < nb; b++) {
        switch (type) {
        case SD_TYPE_Q8_0: memset(((sd_block_q8_0 *)(void *)row)[b].qs, hi ? 127 : -128, 32); break;
        case SD_TYPE_Q4_0: memset(((sd_block_q4_0 *)(void *)row)[b].qs, hi ? 0xFF : 0x00, 16); break;
        case SD_TYPE_Q5_0: {
            sd_block_q5_0 *q = &((sd_block_q5_0 *)(void *)row)[b];
            memset(q->qs, hi ? 0xFF : 0, 16), memset(q->qh, hi ? 0xFF : 0, 4);
            break;
        }
        case SD_TYPE_Q4_K: {
            sd_block_q4_K *q = &((sd_block_q4_K *)(void *)row)[b];
            memset(q->qs, hi ? 0xFF : 0, sizeof q->qs), memset(q->scales, 0xFF, 12); /* scales and mins 63 */
            break;
        }
        case SD_TYPE_Q5_K: {
            sd_block_q5_K *q = &((sd_block_q5_K *)(void *)row)[b];
            memset(q->qs, hi ? 0xFF : 0, sizeof q->qs), memset(q->qh, hi ? 0xFF : 0, sizeof q->qh);
            memset(q->scales, 0xFF, 12);
            break;
        }
        default: {
            sd_block_q6_K *q = &((sd_block_q6_K *)(void *)row)[b];
            memset(q->ql, hi ? 0xFF : 0, sizeof q->ql), memset(q->qh, hi ? 0xFF : 0, sizeof q->qh);
            for (int j = 0; j < 16; j++) q->scales[j] = (int8_t)(j % 2 ? 127 : -128);
            break;
        }
        }
    }
}

/* Activations at +-127: one row quantized, then its quants overwritten. */
static void extreme_acts(int act, char *row, int K, int sign) {
    if (act == SD_TYPE_Q8_0) {
        for (int b = 0; b < K / 32; b++) memset(((sd_block_q8_0 *)(void *)row)[b].qs, sign > 0 ? 127 : -127, 32);
    } else {
        for (int b = 0; b < K / 256; b++) {
            sd_block_q8_K *x = &((sd_block_q8_K *)(void *)row)[b];
            memset(x->qs, sign > 0 ? 127 : -127, 256);
            for (int j = 0; j < 16; j++) x->bsums[j] = (int16_t)(16 * (sign > 0 ? 127 : -127));
        }
    }
}

static void test_kernels_vs_ref(const sd_kernels *const *tabs, int n_tabs) {
    enum { M = 48, NMAX = 19 };
    for (size_t ti = 0; ti < sizeof k_types / sizeof *k_types; ti++) {
        const tinfo *T = &k_types[ti];
        const int pk = sd_pack_type_of(T->type);
        for (int ki = 0; ki < 2; ki++) {
            const int K = T->k[ki];
            const size_t rb = row_size(T->type, K), xb = row_size(T->act, K);
            float *f = malloc((size_t)K * sizeof(float));
            char *w = malloc(rb * M), *wp = malloc(rb * M), *x = malloc(xb * NMAX), *back = malloc(rb);
            float *y0 = malloc((size_t)NMAX * M * sizeof(float)), *y1 = malloc((size_t)NMAX * M * sizeof(float));
            for (int extreme = 0; extreme < 3; extreme++) {
                for (int m = 0; m < M; m++) {
                    for (int k = 0; k < K; k++) f[k] = frand() * (1.0f + (float)(m % 5));
                    sd_quantize_row(T->type, f, w + rb * m, K);
                    if (extreme) extreme_weights(T->type, w + rb * m, K, (m + extreme) % 2);
                }
                for (int n = 0; n < NMAX; n++) {
                    for (int k = 0; k < K; k++) f[k] = frand() * 4.0f;
                    if (T->act == SD_TYPE_Q8_0) sd_kernels_ref()->quantize_row_q8_0(x + xb * n, f, K);
                    else sd_quantize_row_q8_K(x + xb * n, f, K);
                    if (extreme) extreme_acts(T->act, x + xb * n, K, (n + extreme) % 3 ? 1 : -1);
                }
                CHECK(sd_pack_matrix(T->type, wp, w, rb, M, K) == 0, "%s: pack", T->name);
                int rt = 0;
                for (int m = 0; m < M; m++) {
                    sd_unpack_row(T->type, back, wp, rb, m, K);
                    rt += memcmp(back, w + rb * m, rb) != 0;
                }
                CHECK(rt == 0, "%s K=%d: %d of %d rows do not come back from the packed layout", T->name, K, rt, M);
                ref_gemm(T->type)(y0, M, x, xb, w, rb, K, NMAX, 0, M);
                for (int t = 0; t < n_tabs; t++) {
                    int bad_n = 0, first = -1;
                    for (int N = 1; N <= NMAX; N++) {
                        memset(y1, 0xff, (size_t)NMAX * M * sizeof(float));
                        tabs[t]->gemm_packed[pk](y1, M, x, xb, wp, rb, K, N, 16, M);
                        tabs[t]->gemm_packed[pk](y1, M, x, xb, wp, rb, K, N, 0, 16);
                        int bad = 0;
                        for (int n = 0; n < N; n++)
                            bad += memcmp(y1 + (size_t)n * M, y0 + (size_t)n * M, (size_t)M * sizeof(float)) != 0;
                        if (bad && first < 0) first = N;
                        bad_n += bad != 0;
                    }
                    CHECK(bad_n == 0, "%s %s K=%d%s: packed gemm differs from the reference for %d of %d N (first N=%d)",
                          tabs[t]->name, T->name, K, extreme ? " (extreme quants)" : "", bad_n, NMAX, first);
                }
            }
            free(f), free(w), free(wp), free(x), free(back), free(y0), free(y1);
        }
    }
}

/* Logits of the prompt's last token (n = 1) and of all 9 tokens of a
 * second batch, with packed or stored weights. */
static int model_logits(const char *path, int pack, sd_backend be, float *out, int V) {
    sd_model_params mp = sd_model_default_params();
    mp.pack = pack;
    mp.backend = be;
    sd_model *m = NULL;
    char err[256];
    if (sd_model_load(path, &mp, &m, err, sizeof err) != SD_OK) {
        fprintf(stderr, "load %s: %s\n", path, err);
        return -1;
    }
    sd_ctx *c = NULL;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = 64;
    if (sd_ctx_new(m, &cp, &c) != SD_OK) return sd_model_free(m), -1;
    int32_t t1[5] = {1, 4096, 300, 77, 1234};
    int32_t t2[9] = {5, 6, 7, 8000, 42, 42, 19, 3, 2047};
    uint8_t all[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    sd_batch b1 = sd_batch_simple(t1, 5), b2 = sd_batch_simple(t2, 9);
    b2.output = all;
    int rc = 0;
    if (sd_ctx_decode(c, &b1) != SD_OK) rc = -1;
    else memcpy(out, sd_ctx_logits(c, 0), (size_t)V * sizeof(float));
    if (rc == 0 && sd_ctx_decode(c, &b2) != SD_OK) rc = -1;
    for (int i = 0; rc == 0 && i < 9; i++) memcpy(out + (size_t)(1 + i) * V, sd_ctx_logits(c, i), (size_t)V * sizeof(float));
    sd_ctx_free(c);
    sd_model_free(m);
    return rc;
}

static void test_models(void) {
    static const char *files[] = {"Q6_K", "Q4_K_M", "Q4_0", "Q8_0"};
    const int V = 8192;
    float *a = malloc((size_t)10 * V * sizeof(float)), *b = malloc((size_t)10 * V * sizeof(float));
    char path[1024];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/quant/kernel-c-target-%s.gguf", test_model_dir(), files[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            check_need(path);
            continue;
        }
        fclose(f);
        if (model_logits(path, 1, SD_BACKEND_AUTO, a, V) || model_logits(path, 0, SD_BACKEND_AUTO, b, V)) {
            CHECK(0, "%s: decode failed", path);
            continue;
        }
        double worst = 0;
        int differ = 0;
        for (size_t j = 0; j < (size_t)10 * V; j++) {
            worst = fmax(worst, fabs((double)a[j] - b[j]));
            differ += memcmp(&a[j], &b[j], sizeof(float)) != 0;
        }
        CHECK(differ == 0, "%s: %d of %d logits differ between packed and stored weights (max %g)", files[i],
              differ, 10 * V, worst);
        printf("%s: packed vs stored weights: %d of %d logits differ, max |d| %g\n", files[i], differ, 10 * V, worst);
    }
    /* VocabTrim over a packed head (Q8_0 file: packed Q8_0 output) */
    snprintf(path, sizeof path, "%s/quant/kernel-c-target-Q8_0.gguf", test_model_dir());
    sd_model *m = NULL;
    char err[256];
    if (sd_model_load(path, NULL, &m, err, sizeof err) == SD_OK) {
        int32_t ids[37];
        for (int i = 0; i < 37; i++) ids[i] = (i * 997 + 13) % V;
        sd_ctx *full = NULL, *sub = NULL;
        sd_ctx_params cp = sd_ctx_default_params();
        cp.n_ctx = 32;
        CHECK(sd_ctx_new(m, &cp, &full) == SD_OK, "full ctx");
        cp.vocab_subset = ids;
        cp.n_vocab_subset = 37;
        CHECK(sd_ctx_new(m, &cp, &sub) == SD_OK, "subset ctx");
        int32_t t[4] = {1, 10, 20, 30};
        sd_batch bt = sd_batch_simple(t, 4);
        if (full && sub && sd_ctx_decode(full, &bt) == SD_OK && sd_ctx_decode(sub, &bt) == SD_OK) {
            int bad = 0;
            for (int i = 0; i < 37; i++)
                bad += memcmp(&sd_ctx_logits(full, 0)[ids[i]], &sd_ctx_logits(sub, 0)[ids[i]], sizeof(float)) != 0;
            CHECK(bad == 0, "VocabTrim over a packed Q8_0 head: %d of 37 ids differ from the full head", bad);
        } else {
            CHECK(0, "VocabTrim decode failed");
        }
        sd_ctx_free(full);
        sd_ctx_free(sub);
        sd_model_free(m);
    } else {
        check_need(path);
    }
    free(a);
    free(b);
}

int main(void) {
    const sd_kernels *all[4] = {sd_kernels_avx2(), sd_kernels_avx2vnni(), sd_kernels_avx512_plain(),
                                sd_kernels_avx512()};
    static const char *names[4] = {"avx2", "avx2vnni", "avx512", "avx512vnni"};
    const sd_kernels *tabs[4];
    int n = 0;
    for (int i = 0; i < 4; i++) {
        if (all[i] && (i != 3 || strcmp(all[i]->name, "avx512vnni") == 0)) tabs[n++] = all[i];
        else check_skip("kernel table %s: the CPU lacks it", names[i]);
    }
    for (int i = 0; i < n; i++)
        for (int p = 0; p < SD_PK_COUNT; p++) CHECK(tabs[i]->gemm_packed[p] != NULL, "%s: packed gemm %d", tabs[i]->name, p);
    test_kernels_vs_ref(tabs, n);
    test_models();
    return check_report("test_packed");
}
