/*
 * test_quantize.c - the weight quantizers and sd_model_quantize.
 *
 *  1. Round trips: random rows (normal-like, with and without outliers)
 *     through sd_quantize_row and sd_dequantize_row stay within each
 *     format's expected relative RMS error; the search-based k-quants
 *     (Q4_K, Q5_K, Q6_K) beat their plain grid (checked against the error
 *     of the first grid guess, recomputed here); zero rows give zeros; bad
 *     arguments return -1.
 *  2. Type rules (sd_quant_tensor_type): llama.cpp's mix and fallbacks.
 *  3. The shipped target quantized to Q8_0, Q6_K, Q4_K (= Q4_K_M) and Q4_0
 *     by sd_model_quantize has, tensor for tensor, the types and the exact
 *     bytes of the files llama.cpp's quantize tool made from it
 *     (../shared/models/quant), which shows the block layouts, the mix and
 *     the reference quantizers match; quantizing an output again with the
 *     same mix leaves every tensor unchanged; the output carries
 *     general.file_type and general.quantization_version; the requantizing
 *     run goes through sd_model_quantize_ex with a progress callback, called
 *     once per tensor with growing input bytes up to the total. A missing input
 *     or llama.cpp file is check_need: a failure in CI, a named skip
 *     elsewhere.
 *  4. Errors: missing input, vocabulary-only input, unwritable output.
 */
#include "model/gguf.h"
#include "kernels/quants.h"
#include "model/quantize.h"
#include "util/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { uint64_t s; } rng_t;
static uint64_t rng_next(rng_t *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_u(rng_t *r) { return (float)((rng_next(r) >> 11) * (1.0 / 9007199254740992.0)); }
/* Approximately normal (sum of 4 uniforms), scaled. */
static float rng_n(rng_t *r) { return (rng_u(r) + rng_u(r) + rng_u(r) + rng_u(r) - 2.0f) * 1.7f; }

/* Relative RMS error of y against x. */
static double rel_rms(const float *x, const float *y, int n) {
    double e = 0, s = 0;
    for (int i = 0; i < n; i++) {
        e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        s += (double)x[i] * x[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

typedef struct { int type; const char *name; double tol; } qcase;

static void test_round_trip(void) {
    /* worst relative RMS error over the rows below (half of them with
     * 6x outliers, which widen every grid): measured worst x ~1.25. The
     * step of a b-bit grid over the block's range bounds these; a layout
     * or scale bug gives errors near 100%. */
    static const qcase cases[] = {
        {SD_TYPE_F16, "f16", 0.001},   {SD_TYPE_BF16, "bf16", 0.005}, {SD_TYPE_Q8_0, "q8_0", 0.011},
        {SD_TYPE_Q6_K, "q6_K", 0.032}, {SD_TYPE_Q5_0, "q5_0", 0.09},  {SD_TYPE_Q5_1, "q5_1", 0.06},
        {SD_TYPE_Q5_K, "q5_K", 0.056}, {SD_TYPE_Q4_0, "q4_0", 0.19},  {SD_TYPE_Q4_1, "q4_1", 0.12},
        {SD_TYPE_Q4_K, "q4_K", 0.11},
    };
    const int K = 1024, rows = 16;
    float *x = malloc(sizeof(float) * K), *y = malloc(sizeof(float) * K);
    void *q = malloc((size_t)K * 4);
    rng_t r = {42};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const qcase *T = &cases[c];
        double worst = 0, mean = 0;
        for (int row = 0; row < rows; row++) {
            float scale = 0.01f + 0.2f * rng_u(&r);
            for (int i = 0; i < K; i++) x[i] = rng_n(&r) * scale;
            if (row % 2) /* outliers as in real weight rows */
                for (int i = 0; i < K; i += 97) x[i] *= 6.0f;
            CHECK(sd_quantize_row(T->type, x, q, K) == 0, "%s quantize", T->name);
            CHECK(sd_dequantize_row(T->type, y, q, K) == 0, "%s dequantize", T->name);
            double e = rel_rms(x, y, K);
            mean += e / rows;
            if (e > worst) worst = e;
        }
        printf("%-5s relative RMS error mean %.4f worst %.4f (tolerance %.3f)\n", T->name, mean, worst, T->tol);
        CHECK(worst <= T->tol, "%s: worst relative RMS error %.4f > %.3f", T->name, worst, T->tol);
        /* zeros stay zeros */
        memset(x, 0, sizeof(float) * K);
        CHECK(sd_quantize_row(T->type, x, q, K) == 0 && sd_dequantize_row(T->type, y, q, K) == 0, "zeros");
        int nz = 0;
        for (int i = 0; i < K; i++) nz += y[i] != 0.0f;
        CHECK(nz == 0, "%s: zero row gives %d nonzero values", T->name, nz);
    }
    /* the k-quant search is better than the plain min/max grid: Q4_K error
     * on these rows must be clearly below Q4_1 (same 4 bits, plain min/max
     * per 32 elements, more scale bits) */
    double e41 = 0, e4k = 0;
    for (int row = 0; row < rows; row++) {
        for (int i = 0; i < K; i++) x[i] = rng_n(&r) * 0.05f;
        sd_quantize_row(SD_TYPE_Q4_1, x, q, K);
        sd_dequantize_row(SD_TYPE_Q4_1, y, q, K);
        e41 += rel_rms(x, y, K);
        sd_quantize_row(SD_TYPE_Q4_K, x, q, K);
        sd_dequantize_row(SD_TYPE_Q4_K, y, q, K);
        e4k += rel_rms(x, y, K);
    }
    printf("q4_K vs q4_1 mean error: %.4f vs %.4f\n", e4k / rows, e41 / rows);
    CHECK(e4k < 0.95 * e41, "q4_K search (%.4f) not better than q4_1 min/max (%.4f)", e4k / rows, e41 / rows);
    /* bad arguments */
    CHECK(sd_quantize_row(SD_TYPE_Q4_K, x, q, 384) == -1, "q4_K with 384 elements");
    CHECK(sd_quantize_row(SD_TYPE_Q8_0, x, q, 33) == -1, "q8_0 with 33 elements");
    CHECK(sd_quantize_row(SD_TYPE_Q2_K, x, q, 256) == -1, "q2_K unsupported");
    CHECK(sd_quantize_row(12345, x, q, 256) == -1, "unknown type");
    CHECK(sd_quantize_row(SD_TYPE_Q8_0, NULL, q, 32) == -1, "NULL input");
    free(x);
    free(y);
    free(q);
}

static void test_type_rules(void) {
    const sd_quant_mix *q4km = sd_quant_mix_find("Q4_K_M"), *q40 = sd_quant_mix_find("q4_0"),
                       *q80 = sd_quant_mix_find("q8_0"), *f16 = sd_quant_mix_find("f16"),
                       *q6k = sd_quant_mix_find("q6_k"), *q5k = sd_quant_mix_find("q5_k");
    CHECK(q4km && q40 && q80 && f16 && q6k && q5k, "mixes found");
    CHECK(sd_quant_mix_find("q4_k")->ftype == 15 && q40->ftype == 2 && q80->ftype == 7 && q6k->ftype == 18 &&
          sd_quant_mix_find("bf16")->ftype == 32 && sd_quant_mix_find("q5_1")->ftype == 9,
          "llama.cpp ftype values");
    CHECK(sd_quant_mix_find("q3_k") == NULL && sd_quant_mix_find("") == NULL && sd_quant_mix_find(NULL) == NULL,
          "unknown mixes");
    if (!q4km || !q40 || !q80 || !f16 || !q6k || !q5k) return;
    int64_t e384[2] = {384, 8192}, e1024[2] = {1024, 384}, e512[2] = {512, 512}, v384[1] = {384}, e40[2] = {40, 4};
    /* output: Q6_K, or Q8_0 when rows are not multiples of 256; Q8_0 mix keeps Q8_0 */
    CHECK(sd_quant_tensor_type(q40, "output.weight", 2, e384, SD_TYPE_F16, 1, -1, 0) == SD_TYPE_Q8_0, "out 384");
    CHECK(sd_quant_tensor_type(q40, "output.weight", 2, e512, SD_TYPE_F16, 1, -1, 0) == SD_TYPE_Q6_K, "out 512");
    CHECK(sd_quant_tensor_type(q80, "output.weight", 2, e512, SD_TYPE_F16, 1, -1, 0) == SD_TYPE_Q8_0, "out q8_0");
    CHECK(sd_quant_tensor_type(f16, "output.weight", 2, e512, SD_TYPE_F32, 1, -1, 0) == SD_TYPE_F16, "out f16");
    /* tied embeddings: token_embd is the output */
    CHECK(sd_quant_tensor_type(q40, "token_embd.weight", 2, e512, SD_TYPE_F16, 0, -1, 0) == SD_TYPE_Q6_K, "tied");
    CHECK(sd_quant_tensor_type(q40, "token_embd.weight", 2, e512, SD_TYPE_F16, 1, -1, 0) == SD_TYPE_Q4_0, "untied");
    /* fallbacks */
    CHECK(sd_quant_tensor_type(q4km, "blk.1.attn_q.weight", 2, e384, SD_TYPE_F16, 1, 1, 8) == SD_TYPE_Q5_0, "q4_K->q5_0");
    CHECK(sd_quant_tensor_type(q5k, "blk.1.attn_q.weight", 2, e384, SD_TYPE_F16, 1, 1, 8) == SD_TYPE_Q5_1, "q5_K->q5_1");
    CHECK(sd_quant_tensor_type(q6k, "blk.1.attn_q.weight", 2, e384, SD_TYPE_F16, 1, 1, 8) == SD_TYPE_Q8_0, "q6_K->q8_0");
    CHECK(sd_quant_tensor_type(q40, "blk.1.attn_q.weight", 2, e40, SD_TYPE_F16, 1, 1, 8) == SD_TYPE_F16, "q4_0->f16");
    /* Q4_K_M: ffn_down / attn_v get Q6_K in layers 0, 3, 6, 7 of 8 */
    int more[8] = {1, 0, 0, 1, 0, 0, 1, 1};
    for (int l = 0; l < 8; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        int t = sd_quant_tensor_type(q4km, name, 2, e1024, SD_TYPE_F16, 1, l, 8);
        CHECK(t == (more[l] ? SD_TYPE_Q6_K : SD_TYPE_Q4_K), "q4_k_m ffn_down layer %d: %d", l, t);
    }
    /* 1-D and non-weight tensors */
    CHECK(sd_quant_tensor_type(q40, "blk.0.attn_norm.weight", 1, v384, SD_TYPE_F16, 1, 0, 8) == SD_TYPE_F32, "norm f16->f32");
    CHECK(sd_quant_tensor_type(q40, "blk.0.attn_norm.weight", 1, v384, SD_TYPE_F32, 1, 0, 8) == SD_TYPE_F32, "norm f32");
    CHECK(sd_quant_tensor_type(q40, "rope_freqs", 2, e512, SD_TYPE_F32, 1, -1, 0) == SD_TYPE_F32, "non-weight");
}

/* Tensor types and bytes of a and b equal (by name); returns differences. */
static int compare_tensors(const sd_gguf *a, const sd_gguf *b) {
    int bad = 0;
    if (sd_gguf_n_tensors(a) != sd_gguf_n_tensors(b)) return 1000;
    for (int64_t i = 0; i < sd_gguf_n_tensors(a); i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(a, i), *u = sd_gguf_find_tensor(b, t->name);
        if (!u || u->type != t->type || u->size != t->size || memcmp(u->data, t->data, (size_t)t->size) != 0) {
            if (bad < 5) fprintf(stderr, "  tensor %s differs (%s vs %s)\n", t->name, sd_type_name(t->type),
                                 u ? sd_type_name(u->type) : "missing");
            bad++;
        }
    }
    return bad;
}

/* sd_model_quantize_ex's progress calls, as seen by the callback. */
typedef struct prog_rec {
    int64_t calls, last_done, total;
    bool ok; /* done grew, total stayed, done <= total */
} prog_rec;

static void on_progress(void *user, int64_t done, int64_t total) {
    prog_rec *r = user;
    if (r->calls > 0 && (done <= r->last_done || total != r->total)) r->ok = false;
    if (done > total) r->ok = false;
    r->calls++;
    r->last_done = done;
    r->total = total;
}

static void test_model_files(void) {
    char target[1024], ref[1024], out[1024], out2[1024], err[1024];
    snprintf(target, sizeof target, "%s/kernel-c-target.gguf", test_model_dir());
    if (access(target, R_OK) != 0) {
        check_need(target); /* ../shared provides it: a failure in CI */
        return;
    }
    char dir[] = "/tmp/sd_test_quantize_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(out, sizeof out, "%s/q.gguf", dir);
    snprintf(out2, sizeof out2, "%s/q2.gguf", dir);
    static const struct { const char *mix, *file; int ftype; } cases[] = {
        {"q8_0", "Q8_0", 7}, {"q6_k", "Q6_K", 18}, {"q4_k", "Q4_K_M", 15}, {"q4_0", "Q4_0", 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sd_quantize_stats s;
        sd_status st = sd_model_quantize(target, out, sd_quant_mix_find(cases[c].mix), 2, &s, err, sizeof err);
        CHECK(st == SD_OK, "quantize %s: %s", cases[c].mix, err);
        if (st) continue;
        snprintf(ref, sizeof ref, "%s/quant/kernel-c-target-%s.gguf", test_model_dir(), cases[c].file);
        sd_gguf *a = NULL, *b = NULL, *a2 = NULL;
        CHECK(sd_gguf_open(out, &a, err, sizeof err) == SD_OK, "open output: %s", err);
        if (a) {
            uint32_t ft = 0, qv = 0;
            CHECK(sd_gguf_get_u32(a, "general.file_type", &ft, err, sizeof err) == SD_OK && ft == (uint32_t)cases[c].ftype,
                  "%s file_type %u", cases[c].mix, ft);
            CHECK(sd_gguf_get_u32(a, "general.quantization_version", &qv, err, sizeof err) == SD_OK && qv == 2,
                  "quantization_version");
            CHECK(sd_gguf_alignment(a) == 32 && sd_gguf_version(a) == 3, "v3, alignment 32");
            CHECK(s.n_tensors == sd_gguf_n_tensors(a), "stats count");
        }
        /* llama.cpp's file of this type: missing is check_need (a failure
         * in CI, a named skip elsewhere); present but unreadable fails */
        if (access(ref, R_OK) != 0) {
            check_need(ref);
        } else if (a) {
            st = sd_gguf_open(ref, &b, err, sizeof err);
            CHECK(st == SD_OK, "open llama.cpp's %s: %s", ref, err);
            if (b) {
                int d = compare_tensors(a, b);
                CHECK(d == 0, "%s: %d tensors differ from llama.cpp's %s", cases[c].mix, d, ref);
                printf("%s: %lld tensors, types and bytes equal llama.cpp's %s: %s\n", cases[c].mix,
                       (long long)sd_gguf_n_tensors(a), cases[c].file, d == 0 ? "yes" : "NO");
            }
        }
        /* quantizing the output again with the same mix changes nothing,
         * and reports progress per tensor (which changes nothing either) */
        prog_rec pr = {0, 0, 0, true};
        sd_quantize_stats s2;
        st = sd_model_quantize_ex(out, out2, sd_quant_mix_find(cases[c].mix), 1, on_progress, &pr, &s2, err,
                                  sizeof err);
        CHECK(st == SD_OK, "requantize %s: %s", cases[c].mix, err);
        CHECK(!st && pr.ok && pr.calls == s2.n_tensors && pr.last_done == pr.total &&
              (uint64_t)pr.total == s2.bytes_in, "%s progress: %lld calls for %lld tensors, last %lld of %lld (%s)",
              cases[c].mix, (long long)pr.calls, (long long)s2.n_tensors, (long long)pr.last_done,
              (long long)pr.total, pr.ok ? "in order" : "out of order");
        if (a && !st && sd_gguf_open(out2, &a2, err, sizeof err) == SD_OK)
            CHECK(compare_tensors(a, a2) == 0, "%s: requantized file differs", cases[c].mix);
        sd_gguf_close(a);
        sd_gguf_close(b);
        sd_gguf_close(a2);
    }
    /* errors */
    const sd_quant_mix *mix = sd_quant_mix_find("q8_0");
    sd_status st = sd_model_quantize("/nonexistent.gguf", out, mix, 1, NULL, err, sizeof err);
    CHECK(st == SD_ERR_IO && strstr(err, "/nonexistent.gguf"), "missing input: %d %s", st, err);
    char vocab[1024];
    snprintf(vocab, sizeof vocab, "%s/vocab/ggml-vocab-llama-spm.gguf", test_shared_dir());
    if (access(vocab, R_OK) == 0) {
        st = sd_model_quantize(vocab, out2, mix, 1, NULL, err, sizeof err);
        CHECK(st == SD_ERR_FORMAT && strstr(err, "no tensors"), "vocab-only input: %d %s", st, err);
    } else {
        check_need(vocab);
    }
    unlink(out2);
    st = sd_model_quantize(target, "/nonexistent-dir/q.gguf", mix, 1, NULL, err, sizeof err);
    CHECK(st == SD_ERR_IO && strstr(err, "/nonexistent-dir/q.gguf"), "unwritable output: %d %s", st, err);
    CHECK(sd_model_quantize(target, out, NULL, 1, NULL, err, sizeof err) == SD_ERR_INVALID_ARG, "NULL mix");
    unlink(out);
    CHECK(access(out2, F_OK) != 0, "no output after a failed run");
    rmdir(dir);
}

int main(void) {
    test_round_trip();
    test_type_rules();
    test_model_files();
    return check_report("test_quantize");
}
