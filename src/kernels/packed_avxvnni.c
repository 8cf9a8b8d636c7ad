/*
 * packed_avxvnni.c - packed.h's gemms on ymm vectors with AVX-VNNI (the
 * VEX vpdpbusd / vpdpwssd of Alder Lake and Zen 5): 8 rows per vector, a
 * 16-row group as two halves. The kernels are packed_impl.h's, the common
 * vector operations packed_ops_ymm.h's; this file gives them its integer
 * dot products. Compiled with -mavxvnni (Makefile); used only by the
 * "avx2vnni" table, which kernels.c hands out only to CPUs with AVX-VNNI.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"

#define PK_NAME(x) x##_avxvnni
#define PK_VNNI 1
#include "kernels/packed_ops_ymm.h"

PKI vi dp4(vi acc, vi u, vi s) { return _mm256_dpbusd_avx_epi32(acc, u, s); }
PKI vi dp2w(vi acc, vi a, vi b) { return _mm256_dpwssd_avx_epi32(acc, a, b); }

#include "kernels/packed_impl.h"
