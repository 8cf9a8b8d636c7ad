/*
 * packed_avx2.c - packed.h's gemms on ymm vectors with AVX2 (vpmaddubsw +
 * vpmaddwd): 8 rows per vector, a 16-row group as two halves. The kernels
 * are packed_impl.h's, the common vector operations packed_ops_ymm.h's;
 * this file gives them its integer dot products. Used by the "avx2" table.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"

#define PK_NAME(x) x##_avx2
#define PK_VNNI 0
#include "kernels/packed_ops_ymm.h"

PKI vi mb16(vi u, vi s) { return _mm256_maddubs_epi16(u, s); }
PKI vi add16(vi a, vi b) { return _mm256_add_epi16(a, b); }
PKI vi dp2w(vi acc, vi a, vi b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
PKI void q8prep(vi u, vi *a, vi *s) {
    *s = _mm256_xor_si256(u, _mm256_set1_epi8((char)0x80));
    *a = _mm256_abs_epi8(*s);
}
PKI vi q8sign(vi a, vi s, vi x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(x, s)), _mm256_set1_epi16(1));
}

#include "kernels/packed_impl.h"
