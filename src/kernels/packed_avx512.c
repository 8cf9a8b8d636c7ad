/*
 * packed_avx512.c - packed.h's gemms on zmm vectors with AVX-512BW and no
 * VNNI (vpmaddubsw + vpmaddwd): 16 rows per vector. The kernels are
 * packed_impl.h's, the common vector operations packed_ops_zmm.h's; this
 * file gives them its integer dot products. Used by the "avx512" table.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"

#define PK_NAME(x) x##_avx512
#define PK_VNNI 0
#include "kernels/packed_ops_zmm.h"

PKI vi mb16(vi u, vi s) { return _mm512_maddubs_epi16(u, s); }
PKI vi add16(vi a, vi b) { return _mm512_add_epi16(a, b); }
PKI vi dp2w(vi acc, vi a, vi b) { return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b)); }
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
