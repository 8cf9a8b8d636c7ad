/*
 * kernels.h - compute kernels behind one table per instruction set.
 *
 * Letters: N = rows of activations (tokens), K = reduction length (input
 * features), M = output features. Weights W are (M, K) row-major in their
 * storage type (GGUF ne0 = K). Activations are F32 (N, K), or, for weight
 * types whose vec_dot_type is Q8_0, pre-converted rows of Q8_0 blocks.
 *
 * Every table entry has a scalar reference in kernels_ref.c; the AVX2 and
 * AVX-512 tables (kernels_avx2.c, kernels_avx512.c) are tested against it in
 * tests/test_kernels.c with the tolerances stated there.
 *
 * Threading is the caller's: a kernel computes the output columns [m0, m1)
 * for all N rows; callers split [0, M) across threads.
 *
 * Row grouping: y[n][m] may depend on whether column m falls in a complete
 * group of 4 counted from m0 (m0 a multiple of 16) or in the tail, and on
 * nothing else (not N, not the other rows). VocabTrim's compact head
 * (subset_init in ctx.c) relies on exactly this; tests/test_vocabtrim.c
 * checks it bit for bit on every table.
 */
#ifndef SD_KERNELS_H
#define SD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/packed.h"
#include "specdec.h"

#define SD_QK8_0 32
typedef struct {
    uint16_t d;            /* delta, IEEE half */
    int8_t qs[SD_QK8_0];   /* quants           */
} sd_block_q8_0;
_Static_assert(sizeof(sd_block_q8_0) == 34, "wrong q8_0 block size");

struct sd_attn_row; /* attn.h */

/* y[n*ldy + m] = sum_k x[n][k] * W[m][k]  for n in [0,N), m in [m0,m1).
 * x: activations in the weight type's vec_dot format, row n at
 * (const char *)x + n*x_stride bytes. w: weight rows, row m at
 * (const char *)w + m*w_stride bytes. */
typedef void (*sd_gemm_fn)(float *y, size_t ldy,
                           const void *x, size_t x_stride,
                           const void *w, size_t w_stride,
                           int K, int N, int m0, int m1);

typedef struct sd_kernels {
    const char *name;                 /* "ref", "avx2", "avx2vnni", "avx512", "avx512vnni" */

    sd_gemm_fn gemm_f32;              /* W F32,  x F32  */
    sd_gemm_fn gemm_f16;              /* W F16,  x F32  */
    sd_gemm_fn gemm_q8_0;             /* W Q8_0, x Q8_0 */
    /* Block formats of quants.h (semantics and activation formats there). */
    sd_gemm_fn gemm_q4_0;             /* W Q4_0, x Q8_0 */
    sd_gemm_fn gemm_q4_1;             /* W Q4_1, x Q8_1 */
    sd_gemm_fn gemm_q5_0;             /* W Q5_0, x Q8_0 */
    sd_gemm_fn gemm_q5_1;             /* W Q5_1, x Q8_1 */
    sd_gemm_fn gemm_q4_K;             /* W Q4_K, x Q8_K */
    sd_gemm_fn gemm_q5_K;             /* W Q5_K, x Q8_K */
    sd_gemm_fn gemm_q6_K;             /* W Q6_K, x Q8_K */
    sd_gemm_fn gemm_bf16;             /* W BF16, x F32 rounded to BF16 */
    /* The same products on weights in packed.h's layout (16-row groups;
     * m0, m1 multiples of 16), indexed by sd_pack_type; bit-identical to
     * the stored-layout references. NULL: this table packs no weights. */
    sd_gemm_fn gemm_packed[SD_PK_COUNT];
    /* Peak probes (bench-forward's roofline): run reps rounds of the
     * table's integer dot (u8 x s8 multiply-adds, the quantized kernels'
     * instruction) / its F32 FMA on registers; return the multiply-adds
     * done. NULL in "ref". */
    int64_t (*probe_dot)(int64_t reps);
    int64_t (*probe_fma)(int64_t reps);

    /* x (K) -> K/32 Q8_0 blocks (K multiple of 32), round-to-nearest like
     * ggml's quantize_row_q8_0. */
    void (*quantize_row_q8_0)(void *dst, const float *x, int K);
    /* x (K) -> K/256 Q8_K blocks (K multiple of 256), byte for byte
     * sd_quantize_row_q8_K (the K-quants' activations). */
    void (*quantize_row_q8_K)(void *dst, const float *x, int K);

    /* Attention helpers. */
    float (*dot_f32)(const float *a, const float *b, int n);
    void (*axpy_f32)(float *y, float a, const float *x, int n);  /* y += a*x */

    /* y = x / sqrt(mean(x^2) + eps) * w   (n) */
    void (*rmsnorm)(float *y, const float *x, const float *w, float eps, int n);
    /* g = silu(g) * u   (n) */
    void (*swiglu)(float *g, const float *u, int n);

    /* F16 helpers (src/kernels/attn*.c). */
    void (*fp32_to_fp16_row)(uint16_t *y, const float *x, size_t n);
    /* x rounded to the nearest F16 value, in place (activations entering a
     * matmul with F16 weights, as ggml converts them). */
    void (*round_f16_row)(float *x, size_t n);
    /* x rounded to the nearest BF16 value (even ties), in place (activations
     * entering a matmul with BF16 weights). */
    void (*round_bf16_row)(float *x, size_t n);
    /* sum_i exp(x[i] - m) (softmax normalizer; m >= max x keeps it finite) */
    float (*sum_exp)(const float *x, int n, float m);
    /* Flash attention over an F16 KV cache: see attn.h (sd_attn_fn). */
    void (*attn_f16)(float *out, const float *q, int R, int D, float scale,
                     const uint16_t *K, const uint16_t *V, size_t stride,
                     int n_prefix, int n_batch, const uint8_t *vis);
    /* The default F32 attention, one row and several rows of a sequence:
     * see attn.h (sd_attn_fn, sd_attn_rows_fn). */
    void (*attn_f32)(float *out, const float *q, int R, int D, float scale,
                     const uint16_t *K, const uint16_t *V, size_t stride,
                     int n_prefix, int n_batch, const uint8_t *vis);
    void (*attn_f32_rows)(const struct sd_attn_row *rows, int n_rows, int R,
                          int D, float scale, const uint16_t *K,
                          const uint16_t *V, size_t stride, int n_prefix);
} sd_kernels;

/* The instruction-set families of the tables, each needing the ones
 * before it: AVX2 = AVX2 + FMA + F16C; AVX512 = that + AVX-512 F/BW/VL/DQ;
 * AVX512VNNI = that + AVX512-VNNI. */
typedef enum sd_isa {
    SD_ISA_REF = 0,        /* table "ref": any CPU */
    SD_ISA_AVX2 = 1,       /* table "avx2"         */
    SD_ISA_AVX512 = 2,     /* table "avx512"       */
    SD_ISA_AVX512VNNI = 3, /* table "avx512vnni"   */
} sd_isa;

/* The CPU cap: the environment variable SPECDEC_CPU_CAP = ref | avx2 |
 * avx512 | avx512vnni makes the library use at most that family, as if
 * the CPU had nothing more (to run the tests as a smaller CPU sees them:
 * `SPECDEC_CPU_CAP=avx2 make test`). Unset or empty: no cap
 * (SD_ISA_AVX512VNNI); any other value caps at SD_ISA_REF. Read on every
 * call (no state kept). */
sd_isa sd_cpu_cap(void);
/* The best family the library uses here: what the CPU and OS support,
 * lowered to sd_cpu_cap(). Every table lookup below obeys it; tests that
 * ask which tables exist must ask this (or the lookups), not the CPU. */
sd_isa sd_cpu_isa(void);

/* Tables; every lookup returns NULL when sd_cpu_isa() is below the table's
 * family (the CPU lacks the instructions, or the cap forbids them), so one
 * binary runs everywhere and no caller gets code that would fault.
 * sd_kernels_avx512() is the best AVX-512 table: "avx512vnni" (Q8_0 gemm
 * with vpdpbusd) when sd_cpu_isa() allows AVX512-VNNI, else "avx512";
 * sd_kernels_avx512_plain() is always "avx512" (for tests and benchmarks).
 * The two give bit-identical results. */
const sd_kernels *sd_kernels_ref(void);
const sd_kernels *sd_kernels_avx2(void);
const sd_kernels *sd_kernels_avx512(void);
const sd_kernels *sd_kernels_avx512_plain(void);
/* The table called name ("ref", "avx2", "avx2vnni", "avx512",
 * "avx512vnni"); NULL for an unknown name or a table this CPU (as capped)
 * cannot run. */
const sd_kernels *sd_kernels_by_name(const char *name);
/* "avx2vnni": the AVX2 table with AVX-VNNI packed gemms (Alder Lake, Zen 5),
 * bit-identical to "avx2"; NULL when the CPU lacks AVX-VNNI or the cap is
 * "avx2" or lower (SPECDEC_CPU_CAP=avx2vnni: the AVX2 family with AVX-VNNI,
 * no AVX-512). AUTO and SD_BACKEND_AVX2 give it instead of "avx2" where it
 * may be used. */
const sd_kernels *sd_kernels_avx2vnni(void);
/* AUTO picks the best available; an explicit request the CPU cannot run
 * (or an unknown id) returns NULL. */
const sd_kernels *sd_kernels_get(sd_backend b);
/* The dispatch rule of sd_kernels_get for given CPU capabilities (0/1), so
 * tests can simulate CPUs without AVX2 / AVX-512 / AVX512-VNNI. It ignores
 * the real CPU: tables returned for capabilities the running CPU lacks must
 * not be called (compare them, e.g. by name, only). */
const sd_kernels *sd_kernels_pick(sd_backend b, int has_avx2, int has_avx512,
                                  int has_vnni);

/* Scalar conversions (exact IEEE half <-> float, round-to-nearest-even). */
float sd_fp16_to_fp32(uint16_t h);
uint16_t sd_fp32_to_fp16(float f);
/* Dequantize a Q8_0 row of K elements (reference). */
void sd_dequantize_row_q8_0(float *y, const void *x, int K);

/* The stored-layout Q8_0 gemm of every SIMD table (kernels_avx2.c): the
 * reference's bits. */
void sd_gemm_q8_0_avx2(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);

/* Scalar references of the quants.h formats (quants_ref.c) and their AVX2
 * kernels (quants_avx2.c; the AVX-512 tables use these too). */
void sd_gemm_q4_0_ref(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q4_1_ref(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q5_0_ref(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q5_1_ref(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q4_K_ref(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q5_K_ref(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q6_K_ref(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_bf16_ref(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_round_bf16_row_ref(float *x, size_t n);
void sd_gemm_q4_0_avx2(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q4_1_avx2(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q5_0_avx2(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q5_1_avx2(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q4_K_avx2(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q5_K_avx2(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q6_K_avx2(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_round_bf16_row_avx2(float *x, size_t n);
void sd_quantize_row_q8_K_avx2(void *dst, const float *x, int K);
/* AVX512-VNNI versions (quants_vnni_avx512.c; the "avx512vnni" table only),
 * bit-identical to the AVX2 ones. */
void sd_gemm_q4_0_vnni(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q4_1_vnni(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q5_0_vnni(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q5_1_vnni(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q4_K_vnni(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q5_K_vnni(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);
void sd_gemm_q6_K_vnni(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int);


/* The packed gemms of each table (packed_impl.h, one file per table). */
#define SD_PACKED_DECL(sfx)                                                                              \
    void sd_gemm_q8_0_packed_##sfx(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int); \
    void sd_gemm_q4_0_packed_##sfx(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int); \
    void sd_gemm_q5_0_packed_##sfx(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int); \
    void sd_gemm_q4_K_packed_##sfx(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int); \
    void sd_gemm_q5_K_packed_##sfx(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int); \
    void sd_gemm_q6_K_packed_##sfx(float *, size_t, const void *, size_t, const void *, size_t, int, int, int, int); \
    int64_t sd_probe_dot_##sfx(int64_t reps);                                                      \
    int64_t sd_probe_fma_##sfx(int64_t reps);
SD_PACKED_DECL(avx2)
SD_PACKED_DECL(avxvnni)
SD_PACKED_DECL(avx512)
SD_PACKED_DECL(avx512vnni)
#define SD_PACKED_TABLE(sfx)                                                                     \
    {                                                                                            \
        [SD_PK_Q8_0] = sd_gemm_q8_0_packed_##sfx, [SD_PK_Q4_0] = sd_gemm_q4_0_packed_##sfx,      \
        [SD_PK_Q5_0] = sd_gemm_q5_0_packed_##sfx, [SD_PK_Q4_K] = sd_gemm_q4_K_packed_##sfx,      \
        [SD_PK_Q5_K] = sd_gemm_q5_K_packed_##sfx, [SD_PK_Q6_K] = sd_gemm_q6_K_packed_##sfx,      \
    }

#endif
