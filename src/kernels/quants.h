/*
 * quants.h - GGUF/ggml block formats beyond Q8_0 and their activation
 * formats, in the byte layouts of ggml's ggml-common.h (little-endian, no
 * padding; sizes checked below against the GGUF type table in gguf.c).
 *
 * Weight type -> activation format of its gemm (ggml's vec_dot_type):
 *   Q4_0, Q5_0 -> Q8_0       Q4_1, Q5_1 -> Q8_1
 *   Q4_K, Q5_K, Q6_K -> Q8_K BF16 -> F32 rounded to BF16 values
 *
 * Dot-product semantics (the scalar references in quants_ref.c define them;
 * the SIMD kernels in quants_avx2.c reproduce them bit for bit):
 *  - Q4_0, Q5_0 (as Q8_0, kernels_ref.c, and ggml's scalar code): per
 *    block an exact int32 sum p of the 32 products, then in float
 *    sumf = sumf + (float)p * (d_w*d_x), blocks in order (no fma). The
 *    packed kernels (packed.h) need this form: one float statement per
 *    block and row, so a SIMD lane can hold a row.
 *  - Q4_1, Q5_1: "8-lane" order as in ggml's AVX2 vec_dot: for each block
 *    b in order and each lane i < 8, p = exact int sum of q_w*q_x over
 *    elements 4i..4i+3 of the block, acc[i] = fmaf((float)p, d_w*d_x,
 *    acc[i]); the result is the lanes summed as ((a0+a4)+(a2+a6)) +
 *    ((a1+a5)+(a3+a7)), plus summs = fmaf(m_w, s_x, summs) accumulated over
 *    blocks in order.
 *  - 256-element super-blocks (Q4_K, Q5_K, Q6_K): per super-block an exact
 *    int32 sum isum = sum_j scale_j * (sub-block j dot) and (Q4_K/Q5_K)
 *    summ = sum_j min_j * (bsums of sub-block j); then in float, as separate
 *    roundings: a = (d_w*d_x) * isum, b = (dmin_w*d_x) * summ,
 *    sumf += a - b, super-blocks in order.
 *  - BF16: x rounded to BF16 values (as llama.cpp converts activations),
 *    products exact in float; reference accumulates in double, the SIMD
 *    kernels in float FMA (tolerance as for F16).
 * Each (row, token) result depends only on that row and that token, so the
 * kernels are batch invariant by construction. (The SIMD k-quant kernels
 * take the x side of the mins and of Q6_K's -32 offset from the Q8_K
 * bsums, exact as long as bsums are the sums of qs, as
 * sd_quantize_row_q8_K writes them.)
 */
#ifndef SD_QUANTS_H
#define SD_QUANTS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SD_QK4_0 32
#define SD_QK4_1 32
#define SD_QK5_0 32
#define SD_QK5_1 32
#define SD_QK8_1 32
#define SD_QK_K 256
#define SD_K_SCALE_SIZE 12

typedef struct {
    uint16_t d;                 /* delta (half)                        */
    uint8_t qs[SD_QK4_0 / 2];   /* nibbles: element j low, j+16 high   */
} sd_block_q4_0;

typedef struct {
    uint16_t d;                 /* delta (half)                        */
    uint16_t m;                 /* min (half): w = q*d + m             */
    uint8_t qs[SD_QK4_1 / 2];
} sd_block_q4_1;

typedef struct {
    uint16_t d;
    uint8_t qh[4];              /* 5th bit of element j at bit j       */
    uint8_t qs[SD_QK5_0 / 2];
} sd_block_q5_0;

typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[SD_QK5_1 / 2];
} sd_block_q5_1;

typedef struct {
    uint16_t d;                 /* delta (half)                        */
    uint16_t s;                 /* d * sum(qs) (half)                  */
    int8_t qs[SD_QK8_1];
} sd_block_q8_1;

/* 8 sub-blocks of 32: w = d*sc_j*q - dmin*m_j, 6-bit sc/m packed in
 * scales (ggml's get_scale_min_k4); sub-block 2k is the low nibbles of
 * qs[32k..32k+32), 2k+1 the high nibbles. */
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[SD_K_SCALE_SIZE];
    uint8_t qs[SD_QK_K / 2];
} sd_block_q4_K;

/* Q4_K plus a 5th bit: element l of sub-block j has it at bit j of qh[l]. */
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[SD_K_SCALE_SIZE];
    uint8_t qh[SD_QK_K / 8];
    uint8_t qs[SD_QK_K / 2];
} sd_block_q5_K;

/* 16 sub-blocks of 16: w = d * scales[j] * (q - 32), q 6-bit (4 low bits
 * in ql, 2 high bits in qh; see sd_dequantize_row). */
typedef struct {
    uint8_t ql[SD_QK_K / 2];
    uint8_t qh[SD_QK_K / 4];
    int8_t scales[SD_QK_K / 16];
    uint16_t d;
} sd_block_q6_K;

/* Activations of the k-quant gemms: x ~ d * qs, bsums = sums of 16 qs. */
typedef struct {
    float d;
    int8_t qs[SD_QK_K];
    int16_t bsums[SD_QK_K / 16];
} sd_block_q8_K;

_Static_assert(sizeof(sd_block_q4_0) == 18, "q4_0 size");
_Static_assert(sizeof(sd_block_q4_1) == 20, "q4_1 size");
_Static_assert(sizeof(sd_block_q5_0) == 22, "q5_0 size");
_Static_assert(sizeof(sd_block_q5_1) == 24, "q5_1 size");
_Static_assert(sizeof(sd_block_q8_1) == 36, "q8_1 size");
_Static_assert(sizeof(sd_block_q4_K) == 144, "q4_K size");
_Static_assert(sizeof(sd_block_q5_K) == 176, "q5_K size");
_Static_assert(sizeof(sd_block_q6_K) == 210, "q6_K size");
_Static_assert(sizeof(sd_block_q8_K) == 292, "q8_K size");

/* 6-bit scale and min j (0..7) of a Q4_K/Q5_K super-block (ggml's
 * get_scale_min_k4). */
static inline void sd_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* All 8 scales (out[0..8)) and mins (out[8..16)) of a Q4_K/Q5_K super-block
 * at once: ggml's 32-bit unpacking of the 12 packed bytes (same values as
 * sd_scale_min_k4). */
static inline void sd_scales_mins_k4(const uint8_t *q, uint8_t out[16]) {
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    uint32_t u[4];
    memcpy(u, q, 12);
    u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
    const uint32_t aux = u[1] & kmask1;
    u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
    u[2] = aux;
    u[0] &= kmask1;
    memcpy(out, u, 16);
}

/* BF16 <-> F32. To BF16: round to nearest even, NaN kept quiet (ggml's
 * ggml_compute_fp32_to_bf16). */
static inline float sd_bf16_to_fp32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}
static inline uint16_t sd_fp32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {.f = f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 64u);
    return (uint16_t)((v.u + (0x7fffu + ((v.u >> 16) & 1u))) >> 16);
}

/* Block size (elements) and bytes per block of the types this engine
 * computes with (weights and activation formats); 0 for others. */
int sd_quant_block_size(int type);
size_t sd_quant_block_bytes(int type);

/* y (K) = dequantized row x (K elements of type) for F32, F16, BF16, Q8_0
 * and every type above; K a multiple of the block size. Returns 0, or -1
 * for a type it does not know (y untouched). */
int sd_dequantize_row(int type, float *y, const void *x, int K);

/* Activation quantizers, ggml's reference math (K a multiple of the block):
 * Q8_1 = Q8_0 quants and d, s = half(d * sum qs); Q8_K: d = max/-127 of
 * the signed max-magnitude element, qs = nearest-even(x/d) clamped at
 * 127, bsums. Shared by every kernel table (activations are a small part
 * of the work), so all tables see identical activations. */
void sd_quantize_row_q8_1(void *dst, const float *x, int K);
void sd_quantize_row_q8_K(void *dst, const float *x, int K);

#endif
