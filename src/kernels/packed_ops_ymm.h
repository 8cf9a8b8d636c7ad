/*
 * packed_ops_ymm.h - the vector operations packed_impl.h's kernels are
 * written in, on ymm vectors (8 rows per vector, a 16-row group as two
 * halves), shared by packed_avx2.c and packed_avxvnni.c; each adds the
 * integer dot products of its instruction set (mb16 / add16 / dp2w /
 * q8prep / q8sign without VNNI, dp4 / dp2w with it) and includes
 * packed_impl.h. Include after <immintrin.h>, <string.h> and
 * kernels/kernels.h, in a file compiled with AVX2 (+ AVX-VNNI).
 */
#ifndef SD_KERNELS_PACKED_OPS_YMM_H
#define SD_KERNELS_PACKED_OPS_YMM_H

#define PK_LANES 8
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
PKI vi mul32(vi a, vi b) { return _mm256_mullo_epi32(a, b); }
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

#endif
