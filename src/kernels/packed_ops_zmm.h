/*
 * packed_ops_zmm.h - the vector operations packed_impl.h's kernels are
 * written in, on zmm vectors (16 rows per vector), shared by
 * packed_avx512.c and packed_avx512vnni.c; each adds the integer dot
 * products of its instruction set (mb16 / add16 / dp2w / q8prep / q8sign
 * without VNNI, dp4 / dp2w with it) and includes packed_impl.h. Include
 * after <immintrin.h>, <string.h> and kernels/kernels.h, in a file
 * compiled with AVX-512 F/BW/VL/DQ (+ VNNI).
 */
#ifndef SD_KERNELS_PACKED_OPS_ZMM_H
#define SD_KERNELS_PACKED_OPS_ZMM_H

#define PK_LANES 16
#define PK_NT 8
#define PKI static inline __attribute__((always_inline))
typedef __m512i vi;
typedef __m512 vf;

PKI vi ld(const void *p) { return _mm512_loadu_si512(p); }
PKI vi bc32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
PKI vi seti(int32_t c) { return _mm512_set1_epi32(c); }
PKI vi and_(vi a, vi b) { return _mm512_and_si512(a, b); }
PKI vi or_(vi a, vi b) { return _mm512_or_si512(a, b); }
PKI vi add32(vi a, vi b) { return _mm512_add_epi32(a, b); }
PKI vi sub32(vi a, vi b) { return _mm512_sub_epi32(a, b); }
PKI vi mul32(vi a, vi b) { return _mm512_mullo_epi32(a, b); }
PKI vi sll32(vi a, int n) { return _mm512_slli_epi32(a, (unsigned)n); }
PKI vi srl32(vi a, int n) { return _mm512_srli_epi32(a, (unsigned)n); }
PKI vi srai32(vi a, int n) { return _mm512_srai_epi32(a, (unsigned)n); }
PKI vi sll16(vi a, int n) { return _mm512_slli_epi16(a, (unsigned)n); }
PKI vi srl16(vi a, int n) { return _mm512_srli_epi16(a, (unsigned)n); }
PKI vi srai16(vi a, int n) { return _mm512_srai_epi16(a, (unsigned)n); }
PKI vf cvt(vi a) { return _mm512_cvtepi32_ps(a); }
PKI vf setf(float f) { return _mm512_set1_ps(f); }
PKI void stf(float *p, vf a) { _mm512_storeu_ps(p, a); }
PKI vf addf(vf a, vf b) { return _mm512_add_ps(a, b); }
PKI vf subf(vf a, vf b) { return _mm512_sub_ps(a, b); }
PKI vf fmaf_(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
PKI vf mulf(vf a, vf b) { return _mm512_mul_ps(a, b); }
PKI vf ldh(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p)); }
/* the 64-bit mask -> 0x10 bytes (one zmm holds a whole 16-row group) */
PKI vi bits16(const uint8_t *p, int h) {
    (void)h;
    uint64_t m;
    memcpy(&m, p, 8);
    return _mm512_maskz_mov_epi8((__mmask64)m, _mm512_set1_epi8(0x10));
}

#endif
