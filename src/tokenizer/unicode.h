/*
 * unicode.h - Unicode character classes for the BPE pre-tokenizer.
 *
 * sd_unicode_flags(cp) gives the general-category class of a code point
 * (one of SD_UC_L..SD_UC_C, or none for unassigned code points) plus
 * SD_UC_WS for the White_Space property. These are the classes behind the
 * pre-tokenizer regexes: \p{L}, \p{N}, \p{P}, \p{S}, \p{M}, \s.
 *
 * The data is a run table generated at development time from Python's
 * unicodedata by scripts/gen_unicode_data.py (src/tokenizer/unicode_data.c).
 */
#ifndef SD_UNICODE_H
#define SD_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum {
    SD_UC_L = 1,    /* letter: Lu Ll Lt Lm Lo             */
    SD_UC_N = 2,    /* number: Nd Nl No                   */
    SD_UC_P = 4,    /* punctuation: Pc Pd Ps Pe Pi Pf Po  */
    SD_UC_S = 8,    /* symbol: Sm Sc Sk So                */
    SD_UC_M = 16,   /* mark: Mn Mc Me                     */
    SD_UC_Z = 32,   /* separator: Zs Zl Zp                */
    SD_UC_C = 64,   /* other: Cc Cf Cs Co (Cn has no bit) */
    SD_UC_WS = 128, /* White_Space property (regex \s)    */
};

/* Class flags of code point cp; 0 for unassigned code points and for
 * cp > 0x10FFFF. */
uint8_t sd_unicode_flags(uint32_t cp);

/* Unicode version of the generated table, e.g. "14.0.0". */
extern const char sd_unicode_version[];

#endif
