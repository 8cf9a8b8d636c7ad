/*
 * packed_impl.h - the gemms of packed.h's layouts, written once for every
 * vector width and instruction set. Included by packed_avx2.c,
 * packed_avxvnni.c, packed_avx512.c and packed_avx512vnni.c, each of which
 * first defines:
 *
 *   PK_NAME(x)   the suffixed name of function x
 *   PK_LANES     rows per vector (8: ymm, 16: zmm); a 16-row group is
 *                16 / PK_LANES sub-groups (the halves of every chunk)
 *   PK_VNNI      1 when dp4 is one instruction (vpdpbusd)
 *   PK_NT        tokens per register tile
 *   vi, vf       the integer and float vector types, and the operations
 *                below (static inline, always inlined)
 *
 *   ld(p) bc32(p) seti(c) and_ or_ add32 sub32 mul32 sll32 srl32 srai32
 *   sll16 srl16 srai16 cvt(i) setf ldf stf addf subf mulf ldh(p: LANES F16)
 *   dp4(acc, u, s)   acc + sum over 4 bytes of u (unsigned) * s (signed),
 *                    exact (VNNI only: without VNNI the kernels use mb16)
 *   mb16(u, s)       vpmaddubsw: int16 pair sums (may saturate: callers
 *                    keep |u|*|s| small enough, see max16 below)
 *   add16(a, b)      int16 add
 *   md16(a, b)       vpmaddwd: int32 sums of int16 pair products
 *   dp2w(acc, a, b)  acc + md16(a, b)
 *   bits16(p, h)     the 5th bits of packed.h's masks: byte 0x10 where bit
 *                    4r+i of the 64-bit mask at p is set (rows of sub-group
 *                    h), else 0
 *   q8prep(u, &a, &s)  (non-VNNI) the signed Q8_0 weights s = u - 128
 *                    and their magnitudes a = |s|
 *   q8sign(a, s, x)  (non-VNNI) exact int32 4-sums of s * x:
 *                    md16(mb16(a, sign(x, s)), 1) (|pair| <= 2*128*127)
 *
 * Every (row, token) result follows the scalar reference's operations
 * exactly (packed.h, quants.h): integer parts are exact (any order), float
 * parts are the same statements in the same order, lane by lane.
 */

#include <string.h>

#include "kernels/kernels.h"
#include "kernels/packed.h"
#include "kernels/quants.h"

#define PK_SUB (16 / PK_LANES) /* sub-groups per 16-row group */
/* Loops over vectors and over the tokens of a tile have constant trip
 * counts once inlined (the tile's token count is a constant of each
 * instantiation, see PK_TILES): unrolled, their accumulators stay in
 * registers. */
#define PK_UNROLL _Pragma("GCC unroll 16")
#define PK_VB (PK_LANES * 4)   /* bytes of a vector          */

/* Token chunk: the x-side corrections of the 32-blocks are kept for TC
 * tokens at once (stack), TC * nb int32 <= 32 KB. */
#define PK_CORR_INTS 8192
#ifndef PK_PF
#define PK_PF 4096
#endif

/* ------------------------------------------------------------ sums */

#if !PK_VNNI
/* Without VNNI: vpmaddubsw per vector, runs of max16 of them summed in
 * int16, each run widened by vpmaddwd with the int16 pairs m (ones, or a
 * scale (sc, sc)) into acc. nv and max16 are constants once inlined: the
 * loop unrolls and its branches fold. */
static inline __attribute__((always_inline)) vi PK_NAME(dot16)(vi acc, const vi *w, int nv, const int8_t *x,
                                                                 int max16, vi m) {
    vi s = seti(0);
    PK_UNROLL
    for (int v = 0; v < nv; v++) {
        const vi p = mb16(w[v], bc32(x + 4 * v));
        s = v % max16 == 0 ? p : add16(s, p);
        if (v % max16 == max16 - 1 || v == nv - 1) acc = dp2w(acc, s, m);
    }
    return acc;
}
#endif

/* Exact integer dot of nv weight vectors (unsigned bytes) with the
 * activation bytes x[4v..4v+3] broadcast, plus acc. Without VNNI up to
 * max16 vpmaddubsw results are summed in int16 before widening: the
 * caller's bound |u| <= umax with |x| <= 127 keeps max16 * 2 * umax * 127
 * <= 32767. */
static inline __attribute__((always_inline)) vi PK_NAME(dotx)(vi acc, const vi *w, int nv, const int8_t *x,
                                                                int max16) {
#if PK_VNNI
    (void)max16;
    /* two chains: vpdpbusd's latency is about 2.5x its issue interval */
    vi acc2 = seti(0);
    PK_UNROLL
    for (int v = 0; v + 1 < nv; v += 2) {
        acc = dp4(acc, w[v], bc32(x + 4 * v));
        acc2 = dp4(acc2, w[v + 1], bc32(x + 4 * v + 4));
    }
    return add32(acc, acc2);
#else
    return PK_NAME(dot16)(acc, w, nv, x, max16, seti(0x00010001));
#endif
}

/* The same dot times a per-lane scale: sc32 as int32 lanes; sc16 the
 * same scale as an int16 pair (sc, sc) per lane (non-VNNI: folded into
 * vpmaddwd). Exact. */
static inline __attribute__((always_inline)) vi PK_NAME(dotx_scaled)(vi acc, const vi *w, int nv, const int8_t *x,
                                                                       int max16, vi sc32, vi sc16, const int nch) {
#if PK_VNNI
    (void)sc16;
    (void)max16;
    /* vpdpbusd's latency is about 2.5x its issue interval: two chains
     * when several tokens interleave theirs, four for one or two tokens,
     * where the chains alone bound the loop (Q4_K, one token: 96 -> 63 us
     * for 4096 x 1536 on a Zen 5). Integer sums: the order does not change
     * the result. */
    if (nch >= 4 && nv % 4 == 0) {
        vi a0 = dp4(seti(0), w[0], bc32(x)), a1 = dp4(seti(0), w[1], bc32(x + 4));
        vi a2 = dp4(seti(0), w[2], bc32(x + 8)), a3 = dp4(seti(0), w[3], bc32(x + 12));
        PK_UNROLL
        for (int v = 4; v + 3 < nv; v += 4) {
            a0 = dp4(a0, w[v], bc32(x + 4 * v));
            a1 = dp4(a1, w[v + 1], bc32(x + 4 * v + 4));
            a2 = dp4(a2, w[v + 2], bc32(x + 4 * v + 8));
            a3 = dp4(a3, w[v + 3], bc32(x + 4 * v + 12));
        }
        return add32(acc, mul32(add32(add32(a0, a1), add32(a2, a3)), sc32));
    }
    vi t = dp4(seti(0), w[0], bc32(x)), t2 = dp4(seti(0), w[1], bc32(x + 4));
    PK_UNROLL
    for (int v = 2; v + 1 < nv; v += 2) {
        t = dp4(t, w[v], bc32(x + 4 * v));
        t2 = dp4(t2, w[v + 1], bc32(x + 4 * v + 4));
    }
    return add32(acc, mul32(add32(t, t2), sc32));
#else
    (void)sc32;
    (void)nch;
    return PK_NAME(dot16)(acc, w, nv, x, max16, sc16);
#endif
}

/* ------------------------------------------------------------ 32-blocks */

/* x-side corrections of a chunk of tokens: corr[t*nb + b] = -off * sum of
 * token t's block b quants (off: the unsigned offset of the packed
 * weights: 128 for Q8_0, 8 for Q4_0, 16 for Q5_0). */
static void PK_NAME(corr32)(int32_t *corr, const char *x, size_t xs, int nt, int nb, int off) {
    PK_UNROLL
    for (int t = 0; t < nt; t++) {
        const sd_block_q8_0 *xb = (const sd_block_q8_0 *)(x + (size_t)t * xs);
        for (int b = 0; b < nb; b++) {
            int32_t s = 0;
            PK_UNROLL
            for (int e = 0; e < 32; e++) s += xb[b].qs[e];
            corr[t * nb + b] = -off * s;
        }
    }
}

enum { PK_F_Q8_0, PK_F_Q4_0, PK_F_Q5_0 };

/* One 16-row group's sub-group h for tokens [0, nt) (nt <= PK_NT) of a
 * 32-block format: y[t*ldy + i] for the sub-group's rows i. */
static inline __attribute__((always_inline)) void PK_NAME(group32)(float *y, size_t ldy, const char *x, size_t xs,
                                                                     const int32_t *corr, int nt, const uint8_t *gp,
                                                                     int nb, int h, int f) {
    const size_t gb = f == PK_F_Q8_0 ? 16 * 34 : f == PK_F_Q4_0 ? 16 * 18 : 16 * 22;
    const size_t qoff = f == PK_F_Q5_0 ? 96 : 32;
    vf acc[PK_NT];
    PK_UNROLL
    for (int t = 0; t < PK_NT; t++) acc[t] = setf(0.0f);
    const vi m4 = seti(0x0F0F0F0F);
    for (int b = 0; b < nb; b++) {
        const uint8_t *g = gp + (size_t)b * gb;
        for (size_t o = 0; o < gb; o += 64) _mm_prefetch((const char *)g + PK_PF + o, _MM_HINT_T0);
        const vf dw = ldh((const uint16_t *)(const void *)g + PK_LANES * h);
        vi w[8];
        if (f == PK_F_Q8_0) {
            PK_UNROLL
            for (int c = 0; c < 8; c++) w[c] = ld(g + qoff + 64 * c + PK_VB * h);
        } else {
            PK_UNROLL
            for (int c = 0; c < 4; c++) {
                vi raw = ld(g + qoff + 64 * c + PK_VB * h);
                w[2 * c] = and_(raw, m4);
                w[2 * c + 1] = and_(srl16(raw, 4), m4);
                if (f == PK_F_Q5_0) {
                    w[2 * c] = or_(w[2 * c], bits16(g + 32 + 8 * (2 * c), h));
                    w[2 * c + 1] = or_(w[2 * c + 1], bits16(g + 32 + 8 * (2 * c + 1), h));
                }
            }
        }
#if !PK_VNNI
        vi ws[8], wa[8];
        if (f == PK_F_Q8_0) /* signed weights for the sign trick */
            PK_UNROLL
            for (int c = 0; c < 8; c++) q8prep(w[c], &wa[c], &ws[c]);
#endif
        PK_UNROLL
        for (int t = 0; t < nt; t++) {
            const sd_block_q8_0 *xb = (const sd_block_q8_0 *)(x + (size_t)t * xs) + b;
            vi p;
#if PK_VNNI
            p = PK_NAME(dotx)(seti(corr[t * nb + b]), w, 8, xb->qs, 8);
#else
            if (f == PK_F_Q8_0) {
                p = seti(0);
                PK_UNROLL
                for (int c = 0; c < 8; c++) p = add32(p, q8sign(wa[c], ws[c], bc32(xb->qs + 4 * c)));
            } else {
                p = PK_NAME(dotx)(seti(corr[t * nb + b]), w, 8, xb->qs, f == PK_F_Q4_0 ? 8 : 4);
            }
#endif
            /* sumf += (float)sumi * (d_w * d_x), blocks in order */
            const vf dd = mulf(dw, setf(_cvtsh_ss(xb->d)));
            acc[t] = addf(acc[t], mulf(cvt(p), dd));
        }
    }
    PK_UNROLL
    for (int t = 0; t < nt; t++) stf(y + (size_t)t * ldy + PK_LANES * h, acc[t]);
}

/* A switch over the tile's token count whose every case calls CALL with a
 * constant, so that each case is an instantiation with unrolled token
 * loops. */
#if PK_NT == 8
#define PK_TILES(nt, CALL)                                                                       \
    switch (nt) {                                                                                \
    case 1: CALL(1); break;                                                                      \
    case 2: CALL(2); break;                                                                      \
    case 3: CALL(3); break;                                                                      \
    case 4: CALL(4); break;                                                                      \
    case 5: CALL(5); break;                                                                      \
    case 6: CALL(6); break;                                                                      \
    case 7: CALL(7); break;                                                                      \
    default: CALL(8); break;                                                                     \
    }
#else
#define PK_TILES(nt, CALL)                                                                       \
    switch (nt) {                                                                                \
    case 1: CALL(1); break;                                                                      \
    case 2: CALL(2); break;                                                                      \
    case 3: CALL(3); break;                                                                      \
    default: CALL(4); break;                                                                     \
    }
#endif

static inline __attribute__((always_inline)) void PK_NAME(gemm32)(float *y, size_t ldy, const void *x, size_t xs,
                                                                    const void *w, size_t ws, int K, int N, int m0,
                                                                    int m1, const int f) {
    const int nb = K / 32;
    const int off = f == PK_F_Q8_0 ? 128 : f == PK_F_Q4_0 ? 8 : 16;
    int tc = PK_CORR_INTS / nb;
    tc = tc < 1 ? 1 : tc > 64 ? 64 : tc;
    int32_t corr[PK_CORR_INTS + 64];
    for (int n0 = 0; n0 < N; n0 += tc) {
        const int nc = N - n0 < tc ? N - n0 : tc;
        const char *xc = (const char *)x + (size_t)n0 * xs;
#if !PK_VNNI
        if (f != PK_F_Q8_0)
#endif
            PK_NAME(corr32)(corr, xc, xs, nc, nb, off);
        for (int m = m0; m < m1; m += 16) {
            const uint8_t *gp = (const uint8_t *)w + (size_t)m * ws;
            for (int t0 = 0; t0 < nc; t0 += PK_NT) {
                const int nt = nc - t0 < PK_NT ? nc - t0 : PK_NT;
                for (int h = 0; h < PK_SUB; h++) {
#define PK_CALL32(NT) \
    PK_NAME(group32)(y + (size_t)(n0 + t0) * ldy + m, ldy, xc + (size_t)t0 * xs, xs, corr + t0 * nb, NT, gp, nb, h, f)
                    PK_TILES(nt, PK_CALL32)
#undef PK_CALL32
                }
            }
        }
    }
}

void PK_NAME(sd_gemm_q8_0_packed)(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws, int K,
                                  int N, int m0, int m1) {
    PK_NAME(gemm32)(y, ldy, x, xs, w, ws, K, N, m0, m1, PK_F_Q8_0);
}
void PK_NAME(sd_gemm_q4_0_packed)(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws, int K,
                                  int N, int m0, int m1) {
    PK_NAME(gemm32)(y, ldy, x, xs, w, ws, K, N, m0, m1, PK_F_Q4_0);
}
void PK_NAME(sd_gemm_q5_0_packed)(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws, int K,
                                  int N, int m0, int m1) {
    PK_NAME(gemm32)(y, ldy, x, xs, w, ws, K, N, m0, m1, PK_F_Q5_0);
}

/* ------------------------------------------------------------ k-quants */

/* Q4_K / Q5_K: one super-block s of a group's sub-group h for nt tokens:
 * acc[t] = kq_add(acc[t], ...) of the reference, lane by lane. */
static inline __attribute__((always_inline)) void PK_NAME(sb_q45)(vf *acc, const char *x, size_t xs, int nt,
                                                                    const uint8_t *g, int h, int five) {
    const vi m4 = seti(0x0F0F0F0F), m6 = seti(0x3F3F3F3F), m2 = seti(0x03030303);
    const vi u0 = ld(g + 64 + PK_VB * h), u1 = ld(g + 128 + PK_VB * h), u2 = ld(g + 192 + PK_VB * h);
    /* ggml's 32-bit unpacking of the 12 scale bytes, per lane */
    const vi sc03 = and_(u0, m6), mn03 = and_(u1, m6);
    const vi sc47 = or_(and_(u2, m4), sll32(and_(srl32(u0, 6), m2), 4));
    const vi mn47 = or_(and_(srl32(u2, 4), m4), sll32(and_(srl32(u1, 6), m2), 4));
    const vi ff = seti(0xFF);
    vi sc[8], mnp[8];
    PK_UNROLL
    for (int j = 0; j < 8; j++) {
        vi s4 = j < 4 ? sc03 : sc47, n4 = j < 4 ? mn03 : mn47;
        sc[j] = and_(srl32(s4, 8 * (j % 4)), ff);
        vi mj = and_(srl32(n4, 8 * (j % 4)), ff);
        mnp[j] = or_(mj, sll32(mj, 16)); /* (m_j, m_j) int16 pair */
    }
    const vf dw = ldh((const uint16_t *)(const void *)g + PK_LANES * h);
    const vf dmw = ldh((const uint16_t *)(const void *)(g + 32) + PK_LANES * h);
    const size_t qoff = five ? 768 : 256;
    vi isum[PK_NT];
    PK_UNROLL
    for (int t = 0; t < PK_NT; t++) isum[t] = seti(0);
    for (int j = 0; j < 8; j++) {
        vi w[8];
        PK_UNROLL
        for (int c = 0; c < 4; c++) {
            vi raw = ld(g + qoff + 64 * (4 * j + c) + PK_VB * h);
            w[2 * c] = and_(raw, m4);
            w[2 * c + 1] = and_(srl16(raw, 4), m4);
            if (five) {
                w[2 * c] = or_(w[2 * c], bits16(g + 256 + 8 * (2 * (4 * j + c)), h));
                w[2 * c + 1] = or_(w[2 * c + 1], bits16(g + 256 + 8 * (2 * (4 * j + c) + 1), h));
            }
        }
#if PK_VNNI
        const vi s16 = sc[j];
#else
        const vi s16 = or_(sc[j], sll32(sc[j], 16));
#endif
        PK_UNROLL
        for (int t = 0; t < nt; t++) {
            const sd_block_q8_K *xb = (const sd_block_q8_K *)(const void *)(x + (size_t)t * xs);
            isum[t] = PK_NAME(dotx_scaled)(isum[t], w, 8, xb->qs + 32 * j, five ? 4 : 8, sc[j], s16, PK_LANES == 16 && nt <= 4 ? 4 : 2);
        }
    }
    PK_UNROLL
    for (int t = 0; t < nt; t++) {
        const sd_block_q8_K *xb = (const sd_block_q8_K *)(const void *)(x + (size_t)t * xs);
        vi summ = seti(0);
        PK_UNROLL
        for (int j = 0; j < 8; j++) summ = dp2w(summ, mnp[j], bc32(&xb->bsums[2 * j]));
        const vf xd = setf(xb->d);
        const vf a = mulf(mulf(dw, xd), cvt(isum[t]));
        const vf bb = mulf(mulf(dmw, xd), cvt(summ));
        acc[t] = addf(acc[t], subf(a, bb));
    }
}

/* Q6_K: one super-block (see sb_q45). */
static inline __attribute__((always_inline)) void PK_NAME(sb_q6)(vf *acc, const char *x, size_t xs, int nt,
                                                                   const uint8_t *g, int h) {
    const vi m4 = seti(0x0F0F0F0F), m30 = seti(0x30303030);
    /* scales: int16 pairs (4v, 4v+1) and (4v+2, 4v+3), then int32 */
    vi pair[8], sc[16];
    PK_UNROLL
    for (int v = 0; v < 4; v++) {
        vi raw = ld(g + 32 + 64 * v + PK_VB * h);
        pair[2 * v] = srai16(sll16(raw, 8), 8);
        pair[2 * v + 1] = srai16(raw, 8);
    }
    PK_UNROLL
    for (int p = 0; p < 8; p++) {
        sc[2 * p] = srai32(sll32(pair[p], 16), 16);
        sc[2 * p + 1] = srai32(pair[p], 16);
    }
    const vf dw = ldh((const uint16_t *)(const void *)g + PK_LANES * h);
    vi isum[PK_NT];
    PK_UNROLL
    for (int t = 0; t < PK_NT; t++) isum[t] = seti(0);
    for (int j = 0; j < 16; j++) {
        vi w[4];
        const vi hb = ld(g + 2336 + 64 * j + PK_VB * h);
        PK_UNROLL
        for (int c = 0; c < 2; c++) {
            vi raw = ld(g + 288 + 64 * (2 * j + c) + PK_VB * h);
            w[2 * c] = and_(raw, m4);
            w[2 * c + 1] = and_(srl16(raw, 4), m4);
        }
        /* high 2 bits of vector t (elements 16j + 4t + i) at bits 2t */
        w[0] = or_(w[0], and_(sll16(hb, 4), m30));
        w[1] = or_(w[1], and_(sll16(hb, 2), m30));
        w[2] = or_(w[2], and_(hb, m30));
        w[3] = or_(w[3], and_(srl16(hb, 2), m30));
#if PK_VNNI
        const vi s16 = sc[j];
#else
        const vi s16 = or_(and_(sc[j], seti(0xFFFF)), sll32(sc[j], 16));
#endif
        PK_UNROLL
        for (int t = 0; t < nt; t++) {
            const sd_block_q8_K *xb = (const sd_block_q8_K *)(const void *)(x + (size_t)t * xs);
            isum[t] = PK_NAME(dotx_scaled)(isum[t], w, 4, xb->qs + 16 * j, 2, sc[j], s16, PK_LANES == 16 && nt <= 4 ? 4 : 2);
        }
    }
    PK_UNROLL
    for (int t = 0; t < nt; t++) {
        const sd_block_q8_K *xb = (const sd_block_q8_K *)(const void *)(x + (size_t)t * xs);
        vi off = seti(0);
        PK_UNROLL
        for (int p = 0; p < 8; p++) off = dp2w(off, pair[p], bc32(&xb->bsums[2 * p]));
        const vi is = sub32(isum[t], sll32(off, 5)); /* sum (q - 32) x */
        const vf dd = mulf(dw, setf(xb->d));
        acc[t] = addf(acc[t], mulf(dd, cvt(is)));
    }
}

enum { PK_F_Q4_K, PK_F_Q5_K, PK_F_Q6_K };

/* The super-blocks of one group's sub-group h for nt (constant) tokens. */
static inline __attribute__((always_inline)) void PK_NAME(tileK)(float *y, size_t ldy, const char *xt, size_t xs,
                                                                   const uint8_t *gp, int nsb, int h, const int f,
                                                                   const int nt) {
    const size_t gb = f == PK_F_Q4_K ? 16 * 144 : f == PK_F_Q5_K ? 16 * 176 : 16 * 210;
    vf acc[PK_NT];
    PK_UNROLL
    for (int t = 0; t < nt; t++) acc[t] = setf(0.0f);
    for (int s = 0; s < nsb; s++) {
        const char *xsb = xt + (size_t)s * sizeof(sd_block_q8_K);
        /* the weights stream from DRAM: ask for them PK_PF bytes ahead
         * (the hardware prefetcher alone leaves the loads exposed once
         * the compute of a multi-token tile is interleaved with them) */
        const char *pf = (const char *)gp + (size_t)s * gb + PK_PF;
        for (size_t o = 0; o < gb; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0);
        if (f == PK_F_Q6_K) PK_NAME(sb_q6)(acc, xsb, xs, nt, gp + (size_t)s * gb, h);
        else PK_NAME(sb_q45)(acc, xsb, xs, nt, gp + (size_t)s * gb, h, f == PK_F_Q5_K);
    }
    PK_UNROLL
    for (int t = 0; t < nt; t++) stf(y + (size_t)t * ldy + PK_LANES * h, acc[t]);
}

static inline __attribute__((always_inline)) void PK_NAME(gemmK)(float *y, size_t ldy, const void *x, size_t xs,
                                                                   const void *w, size_t ws, int K, int N, int m0,
                                                                   int m1, const int f) {
    const int nsb = K / SD_QK_K;
    for (int m = m0; m < m1; m += 16) {
        const uint8_t *gp = (const uint8_t *)w + (size_t)m * ws;
        for (int t0 = 0; t0 < N; t0 += PK_NT) {
            const int nt = N - t0 < PK_NT ? N - t0 : PK_NT;
            const char *xt = (const char *)x + (size_t)t0 * xs;
            for (int h = 0; h < PK_SUB; h++) {
#define PK_CALLK(NT) PK_NAME(tileK)(y + (size_t)t0 * ldy + m, ldy, xt, xs, gp, nsb, h, f, NT)
                PK_TILES(nt, PK_CALLK)
#undef PK_CALLK
            }
        }
    }
}

void PK_NAME(sd_gemm_q4_K_packed)(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws, int K,
                                  int N, int m0, int m1) {
    PK_NAME(gemmK)(y, ldy, x, xs, w, ws, K, N, m0, m1, PK_F_Q4_K);
}
void PK_NAME(sd_gemm_q5_K_packed)(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws, int K,
                                  int N, int m0, int m1) {
    PK_NAME(gemmK)(y, ldy, x, xs, w, ws, K, N, m0, m1, PK_F_Q5_K);
}
void PK_NAME(sd_gemm_q6_K_packed)(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws, int K,
                                  int N, int m0, int m1) {
    PK_NAME(gemmK)(y, ldy, x, xs, w, ws, K, N, m0, m1, PK_F_Q6_K);
}

/* ------------------------------------------------------------ peak probes */

#define PK_CHAINS (PK_LANES == 16 ? 16 : 12)

/* The table's peak arithmetic, for bench-forward's roofline: 8
 * independent chains of the integer dot the quantized kernels use (dp4, or
 * vpmaddubsw + vpmaddwd without VNNI), and of float FMAs. Returns the
 * multiply-adds done (reps * PK_CHAINS vectors each). */
int64_t PK_NAME(sd_probe_dot)(int64_t reps) {
    vi a[PK_CHAINS];
    const vi u = seti(0x01020304);
#if PK_VNNI
    const vi x = seti(0x05060708);
#endif
    PK_UNROLL
    for (int i = 0; i < PK_CHAINS; i++) a[i] = seti(i);
    for (int64_t r = 0; r < reps; r++) {
        PK_UNROLL
        for (int i = 0; i < PK_CHAINS; i++) {
#if PK_VNNI
            a[i] = dp4(a[i], u, x);
#else
            a[i] = dp2w(a[i], mb16(u, a[i]), seti(0x00010001)); /* a[i] as input: not hoisted */
#endif
        }
    }
    int32_t sink[PK_LANES];
    vi t = a[0];
    PK_UNROLL
    for (int i = 1; i < PK_CHAINS; i++) t = add32(t, a[i]);
    memcpy(sink, &t, sizeof sink);
    __asm__ volatile("" : : "r"(sink[0]) : "memory");
    return reps * PK_CHAINS * PK_VB;
}

int64_t PK_NAME(sd_probe_fma)(int64_t reps) {
    vf a[PK_CHAINS];
    const vf m = setf(0.999f), c = setf(1e-3f);
    PK_UNROLL
    for (int i = 0; i < PK_CHAINS; i++) a[i] = setf((float)i);
    for (int64_t r = 0; r < reps; r++) {
        PK_UNROLL
        for (int i = 0; i < PK_CHAINS; i++) a[i] = fmaf_(a[i], m, c);
    }
    float sink[PK_LANES];
    vf t = a[0];
    PK_UNROLL
    for (int i = 1; i < PK_CHAINS; i++) t = addf(t, a[i]);
    memcpy(sink, &t, sizeof sink);
    __asm__ volatile("" : : "r"(sink[0]) : "memory");
    return reps * PK_CHAINS * PK_LANES;
}
