/*
 * packed.h - weights repacked at load for the multi-row gemms: groups of
 * 16 output rows interleaved so that one SIMD lane holds one row.
 *
 * Why: a forward of n tokens reads every weight once. With the stored
 * (GGUF) layout each row's dot product ends in a horizontal sum per row and
 * token, and the block's unpacking is repeated per row. In a packed group
 * a 64-byte chunk holds 4 consecutive quants of each of the 16 rows (byte
 * 4r + i = row r, element i): one unpack serves every token of the batch,
 * and a token's 4 activation bytes, broadcast, meet all 16 rows in one
 * integer dot instruction (vpdpbusd; vpmaddubsw + vpmaddwd without VNNI),
 * whose lanes are the 16 rows' partial sums: no horizontal sums at all.
 * The scales of a block sit beside its quants in lane order too, so the
 * float part is also one vector operation per 16 rows.
 *
 * Sizes: a packed matrix has exactly the bytes of the stored one (every
 * field of every block is kept, only moved), so decode streams the same
 * bytes from DRAM. Group g (rows 16g..16g+15) starts at 16*g*row_bytes;
 * inside it the (super-)blocks follow in k order, each as the 16 rows'
 * blocks rearranged:
 *
 *   Q8_0 (16 x 34 B):  d[16] F16 | 8 chunks of 4 elements: byte 4r+i =
 *                      q[r][4c+i] + 128 (unsigned; the kernels remove
 *                      128 * sum(x) exactly).
 *   Q4_0 (16 x 18 B):  d[16] | 4 chunks c of 8 elements: byte 4r+i = low
 *                      nibble q[r][8c+i], high nibble q[r][8c+4+i]
 *                      (q = stored 0..15; the kernels remove 8 * sum(x)).
 *   Q5_0 (16 x 22 B):  d[16] | 8 masks (u64) of the 5th bits: mask 2c+h,
 *                      bit 4r+i = 5th bit of q[r][8c+4h+i] | quants as Q4_0
 *                      (q 0..31; the kernels remove 16 * sum(x)).
 *   Q4_K (16 x 144 B): d[16] | dmin[16] | the 12 scale bytes as 3 vectors
 *                      of 16 u32 (lane r = row r's bytes 4v..4v+3) |
 *                      32 chunks c of 8 elements, nibbles as Q4_0.
 *   Q5_K (16 x 176 B): Q4_K's d, dmin, scales | 64 masks of 5th bits
 *                      (mask 2c+h as Q5_0) | 32 nibble chunks.
 *   Q6_K (16 x 210 B): d[16] | scales as 4 vectors of 16 u32, lane r of
 *                      vector v = row r's scales (4v, 4v+2, 4v+1, 4v+3)
 *                      (so that the low and high bytes of each 16-bit half
 *                      are the int16 pairs (4v, 4v+1) and (4v+2, 4v+3)) |
 *                      32 chunks c of 8 elements: low 4 bits as Q4_0's
 *                      nibbles | 16 chunks e of 16 elements: byte 4r+i =
 *                      the high 2 bits of q[r][16e+4t+i] at bits 2t..2t+1
 *                      (t = 0..3). q = stored 0..63; the kernels remove
 *                      32 * sum(x) per 16 through the Q8_K bsums.
 *
 * Results: every packed kernel computes each (row, token) with exactly the
 * integer and float operations of the type's scalar reference (quants.h,
 * kernels_ref.c), so it equals the reference bit for bit, whatever the
 * batch, the tile or the thread split; the scalar references on the
 * stored layout are the packed kernels' `_ref` twins
 * (tests/test_quants.c).
 *
 * Kernel contract (sd_gemm_fn of kernels.h with w = the packed matrix,
 * w_stride = the stored row_bytes): m0 and m1 are multiples of 16.
 */
#ifndef SD_PACKED_H
#define SD_PACKED_H

#include <stddef.h>
#include <stdint.h>

#define SD_PACK_ROWS 16

/* Packable types, the index of a table's gemm_packed[] (kernels.h). */
typedef enum sd_pack_type {
    SD_PK_Q8_0 = 0,
    SD_PK_Q4_0,
    SD_PK_Q5_0,
    SD_PK_Q4_K,
    SD_PK_Q5_K,
    SD_PK_Q6_K,
    SD_PK_COUNT
} sd_pack_type;

/* The pack type of an sd_type, or -1 when it has no packed layout. */
int sd_pack_type_of(int type);

/* dst (rows x row_bytes, rows a multiple of 16) = the packed layout of the
 * stored matrix src (rows of row_bytes, cols elements of `type`). Returns 0,
 * or -1 for a type without a packed layout or rows not a multiple of 16
 * (dst untouched). */
int sd_pack_matrix(int type, void *dst, const void *src, size_t row_bytes, int64_t rows, int64_t cols);

/* The inverse: row `row` of a packed matrix in the stored layout (one
 * row's blocks, row_bytes). For the tests and for code that needs stored
 * rows of a packed weight. Returns 0, or -1 for a type without layout. */
int sd_unpack_row(int type, void *dst, const void *packed, size_t row_bytes, int64_t row, int64_t cols);

#endif
