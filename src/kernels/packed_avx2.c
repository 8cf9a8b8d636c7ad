/*
 * packed_avx2.c - packed.h's gemms on ymm vectors with AVX2 (vpmaddubsw +
 * vpmaddwd): 8 rows per vector, a 16-row group as two halves. The kernels
 * are packed_impl.h's; this file gives them their vector operations. Used
 * by the "avx2" table.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"

#define PK_NAME(x) x##_avx2
#define PK_LANES 8
#define PK_VNNI 0
#define PK_NT 4
#define PKI static inline __attribute__((always_inline))
typedef __m256i vi;
typedef __m256 vf;

PKI vi ld(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
PKI vi bc32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}
PKI vi seti(int32_t c) { return _mm256_set1_epi32(c); }
PKI vi and_(vi a, vi b) { return _mm256_and_si256(a, b); }
PKI vi or_(vi a, vi b) { return _mm256_or_si256(a, b); }
PKI vi add32(vi a, vi b) { return _mm256_add_epi32(a, b); }
PKI vi sub32(vi a, vi b) { return _mm256_sub_epi32(a, b); }
PKI vi sll32(vi a, int n) { return _mm256_slli_epi32(a, n); }
PKI vi srl32(vi a, int n) { return _mm256_srli_epi32(a, n); }
PKI vi srai32(vi a, int n) { return _mm256_srai_epi32(a, n); }
PKI vi sll16(vi a, int n) { return _mm256_slli_epi16(a, n); }
PKI vi srl16(vi a, int n) { return _mm256_srli_epi16(a, n); }
PKI vi srai16(vi a, int n) { return _mm256_srai_epi16(a, n); }
PKI vf cvt(vi a) { return _mm256_cvtepi32_ps(a); }
PKI vf setf(float f) { return _mm256_set1_ps(f); }
PKI void stf(float *p, vf a) { _mm256_storeu_ps(p, a); }
PKI vf addf(vf a, vf b) { return _mm256_add_ps(a, b); }
PKI vf subf(vf a, vf b) { return _mm256_sub_ps(a, b); }
PKI vf fmaf_(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
PKI vf mulf(vf a, vf b) { return _mm256_mul_ps(a, b); }
PKI vf ldh(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)); }
PKI vi mb16(vi u, vi s) { return _mm256_maddubs_epi16(u, s); }
PKI vi add16(vi a, vi b) { return _mm256_add_epi16(a, b); }
PKI vi dp2w(vi acc, vi a, vi b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
/* bits 32h..32h+31 of the 64-bit mask -> 0x10 bytes */
PKI vi bits16(const uint8_t *p, int h) {
    uint32_t u;
    memcpy(&u, p + 4 * h, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)u), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}
PKI void q8prep(vi u, vi *a, vi *s) {
    *s = _mm256_xor_si256(u, _mm256_set1_epi8((char)0x80));
    *a = _mm256_abs_epi8(*s);
}
PKI vi q8sign(vi a, vi s, vi x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(x, s)), _mm256_set1_epi16(1));
}

#include "kernels/packed_impl.h"
