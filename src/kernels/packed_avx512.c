/*
 * packed_avx512.c - packed.h's gemms on zmm vectors with AVX-512BW and no
 * VNNI (vpmaddubsw + vpmaddwd): 16 rows per vector. The kernels are
 * packed_impl.h's; this file gives them their vector operations. Used by
 * the "avx512" table.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"

#define PK_NAME(x) x##_avx512
#define PK_LANES 16
#define PK_VNNI 0
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
PKI vi mb16(vi u, vi s) { return _mm512_maddubs_epi16(u, s); }
PKI vi add16(vi a, vi b) { return _mm512_add_epi16(a, b); }
PKI vi dp2w(vi acc, vi a, vi b) { return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b)); }
PKI vi bits16(const uint8_t *p, int h) {
    (void)h;
    uint64_t m;
    memcpy(&m, p, 8);
    return _mm512_maskz_mov_epi8((__mmask64)m, _mm512_set1_epi8(0x10));
}
PKI void q8prep(vi u, vi *a, vi *s) {
    *s = _mm512_xor_si512(u, _mm512_set1_epi8((char)0x80));
    *a = _mm512_abs_epi8(*s);
}
PKI vi q8sign(vi a, vi s, vi x) {
    /* sign(x, s): -x where s < 0, 0 where s == 0 (then a = 0 too) */
    const __mmask64 neg = _mm512_movepi8_mask(s);
    const vi xs = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(a, xs), _mm512_set1_epi16(1));
}

#include "kernels/packed_impl.h"
