/*
 * kernels.c - exact fp16 conversions, Q8_0 dequantization and the run-time
 * choice of a kernel table.
 *
 * This file is compiled without ISA flags: the CPU checks here must run on
 * any x86-64 before a table that needs AVX2 / AVX-512 is handed out. Every
 * lookup goes through sd_cpu_isa(), the CPU's families lowered to the cap
 * SPECDEC_CPU_CAP (kernels.h).
 */
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* Tables defined in kernels_ref.c, kernels_avx2.c and kernels_avx512.c. The
 * SIMD tables must only be used after the CPU checks below. */
extern const sd_kernels sd_kernels_ref_table;
extern const sd_kernels sd_kernels_avx2_table;
extern const sd_kernels sd_kernels_avx2vnni_table;
extern const sd_kernels sd_kernels_avx512_table;
extern const sd_kernels sd_kernels_avx512vnni_table;

/* ------------------------------------------------------------ fp16 */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Exact IEEE binary16 -> binary32: normals and subnormals exactly, inf
 * kept, NaN -> quiet NaN with the payload in the high mantissa bits (what
 * F16C's vcvtph2ps produces, bit for bit). */
float sd_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf / NaN (quieted) */
        return bits_f32(sign | 0x7f800000u | (man ? 0x400000u : 0u) | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        /* subnormal: man * 2^-24, exact in float */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* Exact binary32 -> binary16 with round-to-nearest-even, overflow to inf,
 * gradual underflow to subnormals, NaN kept as a quiet NaN with the top
 * payload bits (what vcvtps2ph produces). */
uint16_t sd_fp32_to_fp16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu;
    uint32_t man = u & 0x7fffffu;
    if (exp == 0xff) {
        if (man == 0)
            return sign | 0x7c00u;
        return (uint16_t)(sign | 0x7e00u | (man >> 13));
    }
    int e = (int)exp - 127 + 15; /* biased half exponent */
    if (e >= 0x1f)
        return sign | 0x7c00u;
    if (e <= 0) {
        /* subnormal half (or zero): value = m * 2^(e-1-10-13) relative */
        if (e < -10)
            return sign; /* below half of the smallest subnormal */
        uint32_t m = man | 0x800000u;          /* 24-bit significand */
        int shift = 14 - e;                    /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1u)))
            q++;
        return (uint16_t)(sign | q); /* q may carry into the exponent: ok */
    }
    uint32_t q = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
        q++; /* may carry to the next exponent, or to inf: both correct */
    return (uint16_t)(sign | q);
}

/* y (K) = dequantized Q8_0 blocks x (K/32 blocks); K a multiple of 32. */
void sd_dequantize_row_q8_0(float *y, const void *x, int K) {
    const sd_block_q8_0 *b = (const sd_block_q8_0 *)x;
    for (int i = 0; i < K / SD_QK8_0; i++) {
        float d = sd_fp16_to_fp32(b[i].d);
        for (int j = 0; j < SD_QK8_0; j++)
            y[i * SD_QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

/* ------------------------------------------------------------ dispatch */

#if defined(__x86_64__) || defined(__i386__)
/* F16C (CPUID.1:ECX bit 29); read directly because clang's
 * __builtin_cpu_supports does not know "f16c". */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    return (c >> 29) & 1u;
}
#endif

/* The best family the CPU (and OS) support: AVX2 needs everything
 * kernels_avx2.c uses, AVX512 everything kernels_avx512.c uses, AVX512VNNI
 * also kernels_vnni_avx512.c's instructions. */
static sd_isa cpu_probe(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c()))
        return SD_ISA_REF;
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
        return SD_ISA_AVX2;
    return __builtin_cpu_supports("avx512vnni") ? SD_ISA_AVX512VNNI : SD_ISA_AVX512;
#else
    return SD_ISA_REF;
#endif
}

/* AVX-VNNI (CPUID.(7,1):EAX bit 4, read directly: gcc 12's
 * __builtin_cpu_supports does not know it): the VEX vpdpbusd of the
 * "avx2vnni" table (Alder Lake, Zen 5). Independent of AVX-512 (Ice Lake
 * has AVX512-VNNI and no AVX-VNNI). */
static int cpu_has_avxvnni(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 4) & 1u;
#else
    return 0;
#endif
}

/* Table names by family (sd_isa order). */
static const char *const isa_names[] = {"ref", "avx2", "avx512", "avx512vnni"};

sd_isa sd_cpu_cap(void) {
    const char *s = getenv("SPECDEC_CPU_CAP");
    if (!s || !*s) return SD_ISA_AVX512VNNI;
    if (!strcmp(s, "avx2vnni")) return SD_ISA_AVX2; /* plus AVX-VNNI: avxvnni_here */
    for (int i = SD_ISA_REF; i <= SD_ISA_AVX512VNNI; i++)
        if (!strcmp(s, isa_names[i])) return (sd_isa)i;
    return SD_ISA_REF; /* a value we do not know: the safe side */
}

/* True when the "avx2vnni" table may be used: the CPU has AVX2 and
 * AVX-VNNI, and the cap is above "avx2" (or is "avx2vnni"). */
static int avxvnni_here(void) {
    const char *s = getenv("SPECDEC_CPU_CAP");
    const int cap_ok = sd_cpu_cap() > SD_ISA_AVX2 || (s && !strcmp(s, "avx2vnni"));
    return cap_ok && sd_cpu_isa() >= SD_ISA_AVX2 && cpu_has_avxvnni();
}

sd_isa sd_cpu_isa(void) {
    sd_isa cpu = cpu_probe(), cap = sd_cpu_cap();
    return cpu < cap ? cpu : cap;
}

/* sd_kernels_pick with the capabilities of sd_cpu_isa(). */
static const sd_kernels *pick_here(sd_backend b) {
    sd_isa isa = sd_cpu_isa();
    const sd_kernels *k = sd_kernels_pick(b, isa >= SD_ISA_AVX2, isa >= SD_ISA_AVX512, isa >= SD_ISA_AVX512VNNI);
    /* the AVX2 family is "avx2vnni" where AVX-VNNI may be used (same results) */
    if (k == &sd_kernels_avx2_table && avxvnni_here()) k = &sd_kernels_avx2vnni_table;
    return k;
}

const sd_kernels *sd_kernels_ref(void) { return &sd_kernels_ref_table; }

const sd_kernels *sd_kernels_avx2(void) { return sd_kernels_by_name("avx2"); }

const sd_kernels *sd_kernels_avx512(void) { return pick_here(SD_BACKEND_AVX512); }

const sd_kernels *sd_kernels_avx512_plain(void) { return sd_kernels_by_name("avx512"); }

const sd_kernels *sd_kernels_avx2vnni(void) { return sd_kernels_by_name("avx2vnni"); }

const sd_kernels *sd_kernels_by_name(const char *name) {
    static const sd_kernels *const tables[] = {&sd_kernels_ref_table, &sd_kernels_avx2_table,
                                               &sd_kernels_avx512_table, &sd_kernels_avx512vnni_table};
    if (!name) return NULL;
    if (!strcmp(name, "avx2vnni")) return avxvnni_here() ? &sd_kernels_avx2vnni_table : NULL;
    for (int i = SD_ISA_REF; i <= SD_ISA_AVX512VNNI; i++)
        if (!strcmp(name, isa_names[i])) return (int)sd_cpu_isa() >= i ? tables[i] : NULL;
    return NULL;
}

/* Dispatch logic, separated from the CPU probe so tests can simulate a CPU
 * without AVX2 / AVX-512 / VNNI: AUTO picks the best allowed table, an
 * explicit request for a table the CPU lacks (or an unknown id) gives NULL.
 * AVX512 means the AVX-512 family: "avx512vnni" when the CPU has VNNI
 * (same results, faster Q8_0), else "avx512". */
const sd_kernels *sd_kernels_pick(sd_backend b, int has_avx2, int has_avx512,
                                  int has_vnni) {
    has_avx512 = has_avx512 && has_avx2;
    const sd_kernels *t512 = !has_avx512 ? NULL
                             : has_vnni  ? &sd_kernels_avx512vnni_table
                                         : &sd_kernels_avx512_table;
    switch (b) {
    case SD_BACKEND_AUTO:
        return t512       ? t512
               : has_avx2 ? &sd_kernels_avx2_table
                          : &sd_kernels_ref_table;
    case SD_BACKEND_REF:
        return &sd_kernels_ref_table;
    case SD_BACKEND_AVX2:
        return has_avx2 ? &sd_kernels_avx2_table : NULL;
    case SD_BACKEND_AVX512:
        return t512;
    }
    return NULL;
}

/* AUTO: the best table the CPU runs; explicit: that table or NULL. */
const sd_kernels *sd_kernels_get(sd_backend b) { return pick_here(b); }

/* Name of the table backend b resolves to on this CPU ("ref", "avx2",
 * "avx512", "avx512vnni"), or "unavailable" when the CPU cannot run it. */
const char *sd_backend_name(sd_backend b) {
    const sd_kernels *k = sd_kernels_get(b);
    return k ? k->name : "unavailable";
}
