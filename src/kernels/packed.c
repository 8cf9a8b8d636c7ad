/*
 * packed.c - the packed weight layouts of packed.h: from the stored (GGUF)
 * blocks to groups of 16 interleaved rows and back. Plain C: packing runs
 * once per weight at load.
 *
 * Both directions go through one row's (super-)block as plain integers:
 * its quants q[e] (stored values, before any offset) and the bytes that
 * carry its scales, so the inverse is exact by construction.
 */
#include "kernels/packed.h"

#include <string.h>

#include "kernels/kernels.h"
#include "kernels/quants.h"
#include "specdec.h"

int sd_pack_type_of(int type) {
    switch (type) {
    case SD_TYPE_Q8_0: return SD_PK_Q8_0;
    case SD_TYPE_Q4_0: return SD_PK_Q4_0;
    case SD_TYPE_Q5_0: return SD_PK_Q5_0;
    case SD_TYPE_Q4_K: return SD_PK_Q4_K;
    case SD_TYPE_Q5_K: return SD_PK_Q5_K;
    case SD_TYPE_Q6_K: return SD_PK_Q6_K;
    default: return -1;
    }
}

/* Elements of one (super-)block and its stored bytes. */
static int block_elems(int pk) { return pk <= SD_PK_Q5_0 ? 32 : SD_QK_K; }
static size_t block_bytes(int pk) {
    static const size_t b[SD_PK_COUNT] = {sizeof(sd_block_q8_0), sizeof(sd_block_q4_0),
                                          sizeof(sd_block_q5_0), sizeof(sd_block_q4_K),
                                          sizeof(sd_block_q5_K), sizeof(sd_block_q6_K)};
    return b[pk];
}

/* One row's block as integers: q[e] the stored quant of element e (Q8_0:
 * the signed value), d/dmin the half scales, sc the scale bytes (Q4_K/Q5_K:
 * the 12 packed bytes; Q6_K: the 16 int8 scales). */
typedef struct blk_int {
    int q[SD_QK_K];
    uint16_t d, dmin;
    uint8_t sc[16];
} blk_int;

static void block_read(int pk, const void *src, blk_int *o) {
    switch (pk) {
    case SD_PK_Q8_0: {
        const sd_block_q8_0 *b = src;
        o->d = b->d;
        for (int e = 0; e < 32; e++) o->q[e] = b->qs[e];
        break;
    }
    case SD_PK_Q4_0: {
        const sd_block_q4_0 *b = src;
        o->d = b->d;
        for (int j = 0; j < 16; j++) o->q[j] = b->qs[j] & 15, o->q[j + 16] = b->qs[j] >> 4;
        break;
    }
    case SD_PK_Q5_0: {
        const sd_block_q5_0 *b = src;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        o->d = b->d;
        for (int j = 0; j < 16; j++) o->q[j] = b->qs[j] & 15, o->q[j + 16] = b->qs[j] >> 4;
        for (int e = 0; e < 32; e++) o->q[e] |= (int)((qh >> e) & 1u) << 4;
        break;
    }
    case SD_PK_Q4_K:
    case SD_PK_Q5_K: {
        const uint8_t *qs, *qh = NULL;
        if (pk == SD_PK_Q4_K) {
            const sd_block_q4_K *b = src;
            o->d = b->d, o->dmin = b->dmin, qs = b->qs;
            memcpy(o->sc, b->scales, 12);
        } else {
            const sd_block_q5_K *b = src;
            o->d = b->d, o->dmin = b->dmin, qs = b->qs, qh = b->qh;
            memcpy(o->sc, b->scales, 12);
        }
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                o->q[64 * k + l] = qs[32 * k + l] & 15;
                o->q[64 * k + 32 + l] = qs[32 * k + l] >> 4;
                if (qh) {
                    o->q[64 * k + l] |= ((qh[l] >> (2 * k)) & 1) << 4;
                    o->q[64 * k + 32 + l] |= ((qh[l] >> (2 * k + 1)) & 1) << 4;
                }
            }
        break;
    }
    default: { /* Q6_K */
        const sd_block_q6_K *b = src;
        const uint8_t *ql = b->ql, *qh = b->qh;
        o->d = b->d;
        memcpy(o->sc, b->scales, 16);
        for (int n = 0; n < 256; n += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                o->q[n + l] = (ql[l] & 15) | ((qh[l] & 3) << 4);
                o->q[n + l + 32] = (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4);
                o->q[n + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                o->q[n + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
            }
        break;
    }
    }
}

static void block_write(int pk, void *dst, const blk_int *o) {
    memset(dst, 0, block_bytes(pk));
    switch (pk) {
    case SD_PK_Q8_0: {
        sd_block_q8_0 *b = dst;
        b->d = o->d;
        for (int e = 0; e < 32; e++) b->qs[e] = (int8_t)o->q[e];
        break;
    }
    case SD_PK_Q4_0:
    case SD_PK_Q5_0: {
        uint8_t *qs;
        if (pk == SD_PK_Q4_0) {
            sd_block_q4_0 *b = dst;
            b->d = o->d, qs = b->qs;
        } else {
            sd_block_q5_0 *b = dst;
            uint32_t qh = 0;
            for (int e = 0; e < 32; e++) qh |= (uint32_t)((o->q[e] >> 4) & 1) << e;
            memcpy(b->qh, &qh, 4);
            b->d = o->d, qs = b->qs;
        }
        for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((o->q[j] & 15) | ((o->q[j + 16] & 15) << 4));
        break;
    }
    case SD_PK_Q4_K:
    case SD_PK_Q5_K: {
        uint8_t *qs, *qh = NULL;
        if (pk == SD_PK_Q4_K) {
            sd_block_q4_K *b = dst;
            b->d = o->d, b->dmin = o->dmin, qs = b->qs;
            memcpy(b->scales, o->sc, 12);
        } else {
            sd_block_q5_K *b = dst;
            b->d = o->d, b->dmin = o->dmin, qs = b->qs, qh = b->qh;
            memcpy(b->scales, o->sc, 12);
        }
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int a = o->q[64 * k + l], c = o->q[64 * k + 32 + l];
                qs[32 * k + l] = (uint8_t)((a & 15) | ((c & 15) << 4));
                if (qh) qh[l] |= (uint8_t)((((a >> 4) & 1) << (2 * k)) | (((c >> 4) & 1) << (2 * k + 1)));
            }
        break;
    }
    default: {
        sd_block_q6_K *b = dst;
        uint8_t *ql = b->ql, *qh = b->qh;
        b->d = o->d;
        memcpy(b->scales, o->sc, 16);
        for (int n = 0; n < 256; n += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                int q0 = o->q[n + l], q1 = o->q[n + l + 32], q2 = o->q[n + l + 64], q3 = o->q[n + l + 96];
                ql[l] = (uint8_t)((q0 & 15) | ((q2 & 15) << 4));
                ql[l + 32] = (uint8_t)((q1 & 15) | ((q3 & 15) << 4));
                qh[l] = (uint8_t)((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
            }
        break;
    }
    }
}

/* Byte offsets of the parts of one packed (super-)block group. */
typedef struct grp_layout {
    size_t d, dmin, sc, masks, quants, high; /* high: Q6_K's 2-bit chunks */
} grp_layout;

static grp_layout layout_of(int pk) {
    grp_layout L = {0};
    switch (pk) {
    case SD_PK_Q8_0: L.quants = 32; break;
    case SD_PK_Q4_0: L.quants = 32; break;
    case SD_PK_Q5_0: L.masks = 32, L.quants = 96; break;
    case SD_PK_Q4_K: L.dmin = 32, L.sc = 64, L.quants = 256; break;
    case SD_PK_Q5_K: L.dmin = 32, L.sc = 64, L.masks = 256, L.quants = 768; break;
    default: L.sc = 32, L.quants = 288, L.high = 2336; break; /* Q6_K */
    }
    return L;
}

/* The stored values of the 16 rows' (super-)blocks <-> one packed group.
 * dir > 0: blk -> g; dir < 0: g -> blk. */
static void group_io(int pk, uint8_t *g, blk_int blk[SD_PACK_ROWS], int dir) {
    const grp_layout L = layout_of(pk);
    const int ne = block_elems(pk);
    if (dir > 0) memset(g, 0, block_bytes(pk) * SD_PACK_ROWS);
    for (int r = 0; r < SD_PACK_ROWS; r++) {
        blk_int *o = &blk[r];
        uint16_t *d = (uint16_t *)(void *)(g + L.d), *dm = (uint16_t *)(void *)(g + L.dmin);
        if (dir > 0) d[r] = o->d; else o->d = d[r];
        if (pk == SD_PK_Q4_K || pk == SD_PK_Q5_K) {
            if (dir > 0) dm[r] = o->dmin; else o->dmin = dm[r];
            for (int v = 0; v < 3; v++)
                for (int i = 0; i < 4; i++) {
                    uint8_t *p = g + L.sc + 64 * v + 4 * r + i;
                    if (dir > 0) *p = o->sc[4 * v + i]; else o->sc[4 * v + i] = *p;
                }
        }
        if (pk == SD_PK_Q6_K)
            for (int v = 0; v < 4; v++) {
                static const int order[4] = {0, 2, 1, 3};
                for (int i = 0; i < 4; i++) {
                    uint8_t *p = g + L.sc + 64 * v + 4 * r + i;
                    if (dir > 0) *p = o->sc[4 * v + order[i]]; else o->sc[4 * v + order[i]] = *p;
                }
            }
        if (dir < 0) memset(o->q, 0, sizeof o->q);
        for (int e = 0; e < ne; e++) {
            if (pk == SD_PK_Q8_0) {
                /* 8 chunks of 4 elements, quants + 128 */
                uint8_t *p = g + L.quants + 64 * (e / 4) + 4 * r + e % 4;
                if (dir > 0) *p = (uint8_t)(o->q[e] + 128); else o->q[e] = (int)*p - 128;
                continue;
            }
            /* nibble chunks of 8 elements: element e = 8c + 4h + i */
            const int c = e / 8, h = (e / 4) % 2, i = e % 4;
            uint8_t *p = g + L.quants + 64 * c + 4 * r + i;
            if (dir > 0) *p |= (uint8_t)((o->q[e] & 15) << (4 * h));
            else o->q[e] |= (*p >> (4 * h)) & 15;
            if (pk == SD_PK_Q5_0 || pk == SD_PK_Q5_K) {
                uint8_t *mk = g + L.masks + 8 * (2 * c + h) + (4 * r + i) / 8;
                const int bit = (4 * r + i) % 8;
                if (dir > 0) *mk |= (uint8_t)(((o->q[e] >> 4) & 1) << bit);
                else o->q[e] |= ((*mk >> bit) & 1) << 4;
            }
            if (pk == SD_PK_Q6_K) {
                /* 2-bit chunks of 16 elements: element e = 16x + 4t + i */
                const int x = e / 16, t = (e / 4) % 4;
                uint8_t *hp = g + L.high + 64 * x + 4 * r + i;
                if (dir > 0) *hp |= (uint8_t)(((o->q[e] >> 4) & 3) << (2 * t));
                else o->q[e] |= ((*hp >> (2 * t)) & 3) << 4;
            }
        }
    }
}

int sd_pack_matrix(int type, void *dst, const void *src, size_t row_bytes, int64_t rows, int64_t cols) {
    const int pk = sd_pack_type_of(type);
    if (pk < 0 || rows % SD_PACK_ROWS != 0 || cols % block_elems(pk) != 0) return -1;
    const int64_t nb = cols / block_elems(pk);
    const size_t bb = block_bytes(pk);
    if ((size_t)nb * bb != row_bytes) return -1;
    blk_int blk[SD_PACK_ROWS]; /* 17 KB */
    for (int64_t g = 0; g < rows / SD_PACK_ROWS; g++)
        for (int64_t b = 0; b < nb; b++) {
            for (int r = 0; r < SD_PACK_ROWS; r++)
                block_read(pk, (const char *)src + (size_t)(g * SD_PACK_ROWS + r) * row_bytes + (size_t)b * bb,
                           &blk[r]);
            group_io(pk, (uint8_t *)dst + (size_t)g * SD_PACK_ROWS * row_bytes + (size_t)b * SD_PACK_ROWS * bb,
                     blk, 1);
        }
    return 0;
}

int sd_unpack_row(int type, void *dst, const void *packed, size_t row_bytes, int64_t row, int64_t cols) {
    const int pk = sd_pack_type_of(type);
    if (pk < 0 || cols % block_elems(pk) != 0) return -1;
    const int64_t nb = cols / block_elems(pk), g = row / SD_PACK_ROWS;
    const size_t bb = block_bytes(pk);
    blk_int blk[SD_PACK_ROWS];
    uint8_t grp[SD_PACK_ROWS * sizeof(sd_block_q6_K)];
    for (int64_t b = 0; b < nb; b++) {
        memcpy(grp, (const uint8_t *)packed + (size_t)g * SD_PACK_ROWS * row_bytes + (size_t)b * SD_PACK_ROWS * bb,
               SD_PACK_ROWS * bb);
        group_io(pk, grp, blk, -1);
        block_write(pk, (char *)dst + (size_t)b * bb, &blk[row % SD_PACK_ROWS]);
    }
    return 0;
}
