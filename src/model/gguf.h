/*
 * gguf.h - GGUF v2/v3 reader that treats the file as hostile.
 *
 * The whole file is mapped read-only (or a caller's buffer is used as is).
 * sd_gguf_open* validates the header, every metadata key/value, every tensor
 * info and the tensor data layout before returning; after a successful open
 * every accessor below is safe: all pointers stay inside the mapping and all
 * sizes were checked with overflow-safe arithmetic.
 *
 * Errors name the problem and the file offset, e.g.
 *   "kernel.gguf: offset 1234: tensor 'blk.0.attn_q.weight': dims overflow"
 */
#ifndef SD_GGUF_H
#define SD_GGUF_H

#include "specdec.h"

#include <stddef.h>
#include <stdint.h>

/* Metadata value types (GGUF spec). */
typedef enum sd_gguf_vtype {
    SD_GGUF_UINT8 = 0,
    SD_GGUF_INT8 = 1,
    SD_GGUF_UINT16 = 2,
    SD_GGUF_INT16 = 3,
    SD_GGUF_UINT32 = 4,
    SD_GGUF_INT32 = 5,
    SD_GGUF_FLOAT32 = 6,
    SD_GGUF_BOOL = 7,
    SD_GGUF_STRING = 8,
    SD_GGUF_ARRAY = 9,
    SD_GGUF_UINT64 = 10,
    SD_GGUF_INT64 = 11,
    SD_GGUF_FLOAT64 = 12,
    SD_GGUF_VTYPE_COUNT = 13,
} sd_gguf_vtype;

#define SD_GGUF_MAX_DIMS 4

/* A string inside the mapping: NOT NUL-terminated. */
typedef struct sd_gguf_str {
    const char *ptr;
    uint64_t len;
} sd_gguf_str;

typedef struct sd_gguf_tensor {
    const char *name;            /* NUL-terminated copy owned by the reader */
    uint32_t n_dims;             /* 1..SD_GGUF_MAX_DIMS                      */
    int64_t ne[SD_GGUF_MAX_DIMS];/* elements per dim, ne[0] contiguous; unused dims = 1 */
    int type;                    /* sd_type                                  */
    uint64_t offset;             /* relative to the data section             */
    uint64_t size;               /* bytes                                    */
    const void *data;            /* inside the mapping, aligned to the file's alignment */
} sd_gguf_tensor;

typedef struct sd_gguf sd_gguf;

/* Maps path and validates it. On failure returns an error (SD_ERR_IO,
 * SD_ERR_FORMAT, SD_ERR_UNSUPPORTED for a valid file with an unknown tensor
 * type, SD_ERR_NOMEM) and writes a message to err. */
sd_status sd_gguf_open(const char *path, sd_gguf **out, char *err, size_t err_size);
/* Same over a caller's buffer (not copied; must outlive the reader). name is
 * used in messages. Used by tests and the fuzz target. */
sd_status sd_gguf_open_mem(const void *data, size_t size, const char *name,
                           sd_gguf **out, char *err, size_t err_size);
void sd_gguf_close(sd_gguf *g);

uint32_t sd_gguf_version(const sd_gguf *g);
uint64_t sd_gguf_alignment(const sd_gguf *g);
const char *sd_gguf_name(const sd_gguf *g);   /* path or buffer name */

/* ---- metadata */
int64_t sd_gguf_n_kv(const sd_gguf *g);
/* Index of key or -1. */
int64_t sd_gguf_find_key(const sd_gguf *g, const char *key);
const char *sd_gguf_key(const sd_gguf *g, int64_t i);     /* NUL-terminated */
sd_gguf_vtype sd_gguf_kv_type(const sd_gguf *g, int64_t i);
/* For arrays: element type and count. */
sd_gguf_vtype sd_gguf_arr_type(const sd_gguf *g, int64_t i);
uint64_t sd_gguf_arr_n(const sd_gguf *g, int64_t i);

/* Checked a*b and a+b on uint64 into *r; 0 on overflow (*r untouched). */
static inline int sd_mul_u64(uint64_t a, uint64_t b, uint64_t *r) {
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *r = a * b;
    return 1;
}
static inline int sd_add_u64(uint64_t a, uint64_t b, uint64_t *r) {
    if (b > UINT64_MAX - a) return 0;
    *r = a + b;
    return 1;
}

/* Bytes of one scalar value of type t (sd_gguf_vtype); 0 for strings,
 * arrays and unknown ids. */
uint64_t sd_gguf_vtype_size(uint32_t t);

/* Typed getters by key. Return SD_OK, SD_ERR_NOT_FOUND (absent; *out
 * untouched), or SD_ERR_FORMAT (wrong type or value out of range for the
 * requested C type; message in err if err != NULL).
 * Integer getters accept any integer type whose value fits. */
sd_status sd_gguf_get_i64(const sd_gguf *g, const char *key, int64_t *out, char *err, size_t err_size);
sd_status sd_gguf_get_u32(const sd_gguf *g, const char *key, uint32_t *out, char *err, size_t err_size);
sd_status sd_gguf_get_i32(const sd_gguf *g, const char *key, int32_t *out, char *err, size_t err_size);
/* Accepts FLOAT32 or FLOAT64. */
sd_status sd_gguf_get_f32(const sd_gguf *g, const char *key, float *out, char *err, size_t err_size);
sd_status sd_gguf_get_bool(const sd_gguf *g, const char *key, bool *out, char *err, size_t err_size);
sd_status sd_gguf_get_str(const sd_gguf *g, const char *key, sd_gguf_str *out, char *err, size_t err_size);

/* A hyper-parameter: an integer key whose value must lie in [lo, hi].
 * Absent: *out = def and SD_OK, or SD_ERR_FORMAT ("missing key") when
 * required. A value out of [lo, hi] or of the wrong type: SD_ERR_FORMAT
 * with the key and the value in err. */
sd_status sd_gguf_get_int_in(const sd_gguf *g, const char *key, bool required, int def, int lo, int hi, int *out,
                             char *err, size_t err_size);
/* The same for a float key (never required); NaN is out of range. */
sd_status sd_gguf_get_f32_in(const sd_gguf *g, const char *key, float def, float lo, float hi, float *out, char *err,
                             size_t err_size);

/* Arrays by key. *n receives the element count.
 * get_arr_str: array of strings, element i via sd_gguf_arr_str().
 * get_arr_f32 / get_arr_i32: numeric arrays converted into a caller buffer of
 * cap elements (returns SD_ERR_FORMAT if the element type does not convert
 * exactly or n > cap; with out == NULL only *n is set). */
sd_status sd_gguf_get_arr_n(const sd_gguf *g, const char *key, sd_gguf_vtype *elem_type, uint64_t *n, char *err, size_t err_size);
sd_status sd_gguf_get_arr_f32(const sd_gguf *g, const char *key, float *out, uint64_t cap, uint64_t *n, char *err, size_t err_size);
sd_status sd_gguf_get_arr_i32(const sd_gguf *g, const char *key, int32_t *out, uint64_t cap, uint64_t *n, char *err, size_t err_size);
/* Element i of a string array at kv index kv (checked: returns ptr NULL,
 * len 0 when kv is not a string array or i is out of range). */
sd_gguf_str sd_gguf_arr_str(const sd_gguf *g, int64_t kv, uint64_t i);
/* The encoded value of kv i exactly as stored (after its type field):
 * scalars their bytes, strings uint64 length + bytes, arrays element type
 * (uint32) + count (uint64) + elements. For copying a kv unchanged
 * (sd_gguf_writer_copy_kv). SD_ERR_INVALID_ARG for a bad index. */
sd_status sd_gguf_kv_raw(const sd_gguf *g, int64_t i, const void **ptr, uint64_t *size);

/* ---- tensors */
int64_t sd_gguf_n_tensors(const sd_gguf *g);
const sd_gguf_tensor *sd_gguf_tensor_at(const sd_gguf *g, int64_t i);
/* NULL if absent. */
const sd_gguf_tensor *sd_gguf_find_tensor(const sd_gguf *g, const char *name);

/* ---- type traits (ggml block formats) */
typedef struct sd_type_info {
    const char *name;     /* "f16", "q8_0", ... */
    int64_t block_size;   /* elements per block */
    size_t type_size;     /* bytes per block    */
} sd_type_info;

/* NULL for unknown ids. */
const sd_type_info *sd_type_get_info(int type);
/* Bytes of a row of ne0 elements; 0 if ne0 is not a multiple of the block
 * or the type is unknown. */
size_t sd_type_row_size(int type, int64_t ne0);

#endif
