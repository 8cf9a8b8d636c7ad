/*
 * packed_avx512vnni.c - packed.h's gemms on zmm vectors with AVX512-VNNI
 * (vpdpbusd, vpdpwssd): 16 rows per vector. The kernels are
 * packed_impl.h's, the common vector operations packed_ops_zmm.h's; this
 * file gives them its integer dot products. Compiled with -mavx512vnni
 * (Makefile); used only by the "avx512vnni" table, which kernels.c hands
 * out only to CPUs with AVX512-VNNI.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"

#define PK_NAME(x) x##_avx512vnni
#define PK_VNNI 1
#include "kernels/packed_ops_zmm.h"

PKI vi dp4(vi acc, vi u, vi s) { return _mm512_dpbusd_epi32(acc, u, s); }
PKI vi dp2w(vi acc, vi a, vi b) { return _mm512_dpwssd_epi32(acc, a, b); }

#include "kernels/packed_impl.h"
