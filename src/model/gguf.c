/*
 * gguf.c - GGUF v2/v3 reader that treats the file as hostile.
 *
 * Opening is done in two passes over the metadata:
 *   1. scan:  every count, length, type, dimension and size is checked
 *             against the bytes that are left, nothing is allocated; the
 *             pass only totals what the second pass needs (key and name
 *             bytes, string-array elements).
 *   2. fill:  one allocation for everything, then the same walk again
 *             storing pointers into the mapping and copies of the names.
 * Afterwards come the checks that need memory: duplicate keys and tensor
 * names (sorted indices, kept for binary search), tensor offsets, alignment
 * and overlap in the data section.
 *
 * Every error message reads "<name>: offset <N>: <what was wrong>".
 */
#include "err.h"
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_HEADER_SIZE 24u          /* magic, version, n_tensors, n_kv   */
#define GGUF_MIN_KV_SIZE 14u          /* len 8 + key >= 1 + type 4 + value >= 1 */
#define GGUF_MIN_TENSOR_SIZE 33u      /* len 8 + name >= 1 + n_dims 4 + ne 8 + type 4 + offset 8 */
#define GGUF_MAX_KEY_LEN 65536u       /* keys and tensor names              */
#define GGUF_DEFAULT_ALIGNMENT 32u

/* ------------------------------------------------------------ type traits */

/* Indexed by ggml type id; entries with a NULL name are unknown ids. */
static const sd_type_info k_type_info[] = {
    [0] = {"f32", 1, 4},       [1] = {"f16", 1, 2},
    [2] = {"q4_0", 32, 18},    [3] = {"q4_1", 32, 20},
    [6] = {"q5_0", 32, 22},    [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},    [9] = {"q8_1", 32, 36},
    [10] = {"q2_K", 256, 84},  [11] = {"q3_K", 256, 110},
    [12] = {"q4_K", 256, 144}, [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210}, [15] = {"q8_K", 256, 292},
    [16] = {"iq2_xxs", 256, 66}, [17] = {"iq2_xs", 256, 74},
    [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},   [21] = {"iq3_s", 256, 110},
    [22] = {"iq2_s", 256, 82},   [23] = {"iq4_xs", 256, 136},
    [24] = {"i8", 1, 1},       [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},      [27] = {"i64", 1, 8},
    [28] = {"f64", 1, 8},      [29] = {"iq1_m", 256, 56},
    [30] = {"bf16", 1, 2},
};

/* Traits of a ggml type id, or NULL for ids this reader does not know. */
const sd_type_info *sd_type_get_info(int type) {
    if (type < 0 || (size_t)type >= sizeof k_type_info / sizeof k_type_info[0])
        return NULL;
    return k_type_info[type].name ? &k_type_info[type] : NULL;
}

/* Public name of a type id ("q8_0") or NULL. */
const char *sd_type_name(int type) {
    const sd_type_info *ti = sd_type_get_info(type);
    return ti ? ti->name : NULL;
}

/* Bytes of a row of ne0 elements; 0 for an unknown type, a negative ne0, a
 * ne0 that is not a multiple of the block or a size that overflows. */
size_t sd_type_row_size(int type, int64_t ne0) {
    const sd_type_info *ti = sd_type_get_info(type);
    if (!ti || ne0 < 0 || ne0 % ti->block_size != 0) return 0;
    uint64_t blocks = (uint64_t)(ne0 / ti->block_size);
    if (blocks != 0 && ti->type_size > SIZE_MAX / blocks) return 0;
    return (size_t)blocks * ti->type_size;
}

/* ------------------------------------------------------------ reader state */

typedef struct kv_rec {
    const char *key;          /* NUL-terminated copy in the name arena      */
    uint64_t key_off;         /* file offset of the key's length field      */
    sd_gguf_vtype type;
    sd_gguf_vtype arr_type;   /* arrays only                                 */
    uint64_t arr_n;           /* arrays only                                 */
    uint64_t val_off;         /* file offset of the value (arrays: of the first element) */
    const uint64_t *str_off;  /* string arrays: (arr_n) file offsets of each element's length */
} kv_rec;

typedef struct tensor_rec {
    sd_gguf_tensor t;
    uint64_t info_off;        /* file offset of the tensor info             */
    uint64_t off_at;          /* file offset of its data-offset field       */
} tensor_rec;

struct sd_gguf {
    const uint8_t *base;      /* (size) bytes: the mapping or caller buffer  */
    uint64_t size;
    void *map;                /* mmap'ed region to unmap, or NULL            */
    size_t map_size;
    char *name;               /* copy of the path / buffer name              */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_start;      /* file offset of the data section             */
    int64_t n_kv;
    int64_t n_tensors;
    kv_rec *kvs;              /* (n_kv)                                      */
    tensor_rec *tensors;      /* (n_tensors)                                 */
    int64_t *kv_sorted;       /* (n_kv) indices sorted by key                */
    int64_t *tensor_sorted;   /* (n_tensors) indices sorted by name          */
    uint64_t *str_index;      /* (n_str) element offsets of all string arrays */
    char *arena;              /* keys and names, NUL-terminated              */
};

/* Parse cursor over the file bytes plus the error sink. */
typedef struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *name;
    char *err;
    size_t err_size;
} cursor;

/* What the scan pass totals for the allocation. */
typedef struct layout {
    uint64_t arena_bytes;     /* keys + names incl. NULs                     */
    uint64_t n_str;           /* string-array elements over all arrays       */
    uint64_t alignment;
    uint64_t header_end;      /* file offset just after the last tensor info */
} layout;

/* Writes "<name>: offset <off>: <fmt...>" into err (if any) and returns st. */
static sd_status fail_at(const char *name, uint64_t off, char *err, size_t err_size,
                         sd_status st, const char *fmt, ...) {
    if (err && err_size > 0) {
        int n = snprintf(err, err_size, "%s: offset %llu: ", name ? name : "gguf",
                         (unsigned long long)off);
        if (n >= 0 && (size_t)n < err_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, err_size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return st;
}

#define CFAIL(c, off, st, ...) fail_at((c)->name, (off), (c)->err, (c)->err_size, (st), __VA_ARGS__)

/* ------------------------------------------------------------ raw reads */

static uint32_t ld_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld_u64(const uint8_t *p) {
    return (uint64_t)ld_u32(p) | (uint64_t)ld_u32(p + 4) << 32;
}

static uint64_t remaining(const cursor *c) { return c->size - c->pos; }

/* Reads a uint32 (what names the field for the message). */
static sd_status rd_u32(cursor *c, uint32_t *v, const char *what) {
    *v = 0;
    if (remaining(c) < 4)
        return CFAIL(c, c->pos, SD_ERR_FORMAT, "truncated file: %s needs 4 bytes, %llu left",
                     what, (unsigned long long)remaining(c));
    *v = ld_u32(c->base + c->pos);
    c->pos += 4;
    return SD_OK;
}

static sd_status rd_u64(cursor *c, uint64_t *v, const char *what) {
    *v = 0;
    if (remaining(c) < 8)
        return CFAIL(c, c->pos, SD_ERR_FORMAT, "truncated file: %s needs 8 bytes, %llu left",
                     what, (unsigned long long)remaining(c));
    *v = ld_u64(c->base + c->pos);
    c->pos += 8;
    return SD_OK;
}

/* Reads a GGUF string (uint64 length + bytes) without copying: *s points
 * into the file. max_len bounds the length (0 = only the file bounds). */
static sd_status rd_str(cursor *c, sd_gguf_str *s, uint64_t max_len, const char *what) {
    uint64_t at = c->pos, len = 0;
    sd_status st = rd_u64(c, &len, what);
    if (st) return st;
    if (len > remaining(c))
        return CFAIL(c, at, SD_ERR_FORMAT, "%s length %llu exceeds the %llu bytes left in the file",
                     what, (unsigned long long)len, (unsigned long long)remaining(c));
    if (max_len && len > max_len)
        return CFAIL(c, at, SD_ERR_FORMAT, "%s length %llu exceeds the limit of %llu", what,
                     (unsigned long long)len, (unsigned long long)max_len);
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return SD_OK;
}

uint64_t sd_gguf_vtype_size(uint32_t t) {
    switch (t) {
    case SD_GGUF_UINT8: case SD_GGUF_INT8: case SD_GGUF_BOOL: return 1;
    case SD_GGUF_UINT16: case SD_GGUF_INT16: return 2;
    case SD_GGUF_UINT32: case SD_GGUF_INT32: case SD_GGUF_FLOAT32: return 4;
    case SD_GGUF_UINT64: case SD_GGUF_INT64: case SD_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *vtype_name(uint32_t t) {
    static const char *const names[SD_GGUF_VTYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool", "string", "array", "uint64", "int64", "float64"};
    return t < SD_GGUF_VTYPE_COUNT ? names[t] : "unknown";
}

static int str_eq(sd_gguf_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}


/* ------------------------------------------------------------ metadata */

/* Copies s into the arena at *arena (NUL-terminated) and returns the copy. */
static const char *arena_put(char **arena, sd_gguf_str s) {
    char *p = *arena;
    memcpy(p, s.ptr, (size_t)s.len);
    p[s.len] = '\0';
    *arena += s.len + 1;
    return p;
}

/* Checks a key or tensor name read at file offset at: non-empty, no NUL. */
static sd_status check_name(cursor *c, uint64_t at, sd_gguf_str s, const char *what) {
    if (s.len == 0) return CFAIL(c, at, SD_ERR_FORMAT, "empty %s", what);
    if (memchr(s.ptr, '\0', (size_t)s.len))
        return CFAIL(c, at, SD_ERR_FORMAT, "%s '%.*s' contains a NUL byte", what,
                     (int)strnlen(s.ptr, (size_t)s.len), s.ptr);
    return SD_OK;
}

/* Parses an array value (after its kv type). With idx != NULL (fill pass)
 * string element offsets are stored at *idx, which advances. */
static sd_status parse_array(cursor *c, kv_rec *kv, sd_gguf_str key, uint64_t **idx,
                             layout *lay) {
    uint64_t at = c->pos, n;
    uint32_t et;
    sd_status st = rd_u32(c, &et, "array element type");
    if (st) return st;
    if (et == SD_GGUF_ARRAY)
        return CFAIL(c, at, SD_ERR_FORMAT, "key '%.*s': nested arrays are not supported",
                     (int)key.len, key.ptr);
    if (et >= SD_GGUF_VTYPE_COUNT)
        return CFAIL(c, at, SD_ERR_FORMAT, "key '%.*s': unknown array element type %u",
                     (int)key.len, key.ptr, et);
    at = c->pos;
    if ((st = rd_u64(c, &n, "array length"))) return st;
    /* Every element needs at least esize bytes (strings: their length). */
    uint64_t esize = et == SD_GGUF_STRING ? 8 : sd_gguf_vtype_size(et);
    if (n > remaining(c) / esize)
        return CFAIL(c, at, SD_ERR_FORMAT,
                     "key '%.*s': array of %llu %s elements exceeds the %llu bytes left",
                     (int)key.len, key.ptr, (unsigned long long)n, vtype_name(et),
                     (unsigned long long)remaining(c));
    if (kv) {
        kv->arr_type = (sd_gguf_vtype)et;
        kv->arr_n = n;
        kv->val_off = c->pos;
    }
    if (et != SD_GGUF_STRING) {
        c->pos += n * esize;
        return SD_OK;
    }
    if (kv) kv->str_off = *idx;
    for (uint64_t i = 0; i < n; i++) {
        sd_gguf_str s;
        if (kv) *(*idx)++ = c->pos;
        if ((st = rd_str(c, &s, 0, "array string"))) return st;
    }
    lay->n_str += n;
    return SD_OK;
}

/* Checks the value of general.alignment (a uint32 at file offset at). */
static sd_status check_alignment(cursor *c, uint64_t at, uint32_t type, layout *lay) {
    if (type != SD_GGUF_UINT32)
        return CFAIL(c, at, SD_ERR_FORMAT, "general.alignment has type %s, expected uint32",
                     vtype_name(type));
    if (remaining(c) < 4) return SD_OK;  /* reported as truncation by the caller */
    uint32_t a = ld_u32(c->base + c->pos);
    if (a == 0 || (a & (a - 1)) != 0)
        return CFAIL(c, c->pos, SD_ERR_FORMAT,
                     "general.alignment %u is not a nonzero power of two", a);
    lay->alignment = a;
    return SD_OK;
}

/* Parses one key/value pair. kv is NULL in the scan pass. */
static sd_status parse_kv(cursor *c, kv_rec *kv, char **arena, uint64_t **idx, layout *lay) {
    uint64_t at = c->pos;
    sd_gguf_str key;
    uint32_t type;
    sd_status st = rd_str(c, &key, GGUF_MAX_KEY_LEN, "key");
    if (st) return st;
    if ((st = check_name(c, at, key, "key"))) return st;
    uint64_t type_at = c->pos;
    if ((st = rd_u32(c, &type, "value type"))) return st;
    if (type >= SD_GGUF_VTYPE_COUNT)
        return CFAIL(c, type_at, SD_ERR_FORMAT, "key '%.*s': unknown value type %u",
                     (int)key.len, key.ptr, type);
    if (str_eq(key, "general.alignment") && (st = check_alignment(c, type_at, type, lay)))
        return st;
    if (str_eq(key, "general.architecture") && type != SD_GGUF_STRING)
        return CFAIL(c, type_at, SD_ERR_FORMAT,
                     "general.architecture has type %s, expected string", vtype_name(type));
    if (kv) {
        kv->key = arena_put(arena, key);
        kv->key_off = at;
        kv->type = (sd_gguf_vtype)type;
        kv->arr_type = SD_GGUF_VTYPE_COUNT;
        kv->val_off = c->pos;
    }
    lay->arena_bytes += key.len + 1;
    if (type == SD_GGUF_ARRAY) return parse_array(c, kv, key, idx, lay);
    if (type == SD_GGUF_STRING) {
        sd_gguf_str s;
        return rd_str(c, &s, 0, "string value");
    }
    uint64_t sz = sd_gguf_vtype_size(type);
    if (remaining(c) < sz)
        return CFAIL(c, c->pos, SD_ERR_FORMAT, "truncated file: key '%.*s' value needs %llu bytes",
                     (int)key.len, key.ptr, (unsigned long long)sz);
    c->pos += sz;
    return SD_OK;
}

/* ------------------------------------------------------------ tensor infos */

/* Parses one tensor info; checks dims, type and byte size. t is NULL in the
 * scan pass. */
static sd_status parse_tensor(cursor *c, tensor_rec *t, char **arena, layout *lay) {
    uint64_t at = c->pos, off;
    sd_gguf_str name;
    uint32_t n_dims, type;
    int64_t ne[SD_GGUF_MAX_DIMS] = {1, 1, 1, 1};
    sd_status st = rd_str(c, &name, GGUF_MAX_KEY_LEN, "tensor name");
    if (st) return st;
    if ((st = check_name(c, at, name, "tensor name"))) return st;
    int nl = (int)name.len;
    uint64_t dims_at = c->pos;
    if ((st = rd_u32(c, &n_dims, "tensor n_dims"))) return st;
    if (n_dims == 0 || n_dims > SD_GGUF_MAX_DIMS)
        return CFAIL(c, dims_at, SD_ERR_FORMAT, "tensor '%.*s': n_dims %u not in 1..%d", nl,
                     name.ptr, n_dims, SD_GGUF_MAX_DIMS);
    uint64_t n_elem = 1;
    for (uint32_t j = 0; j < n_dims; j++) {
        uint64_t v, ne_at = c->pos;
        if ((st = rd_u64(c, &v, "tensor dim"))) return st;
        if (v > (uint64_t)INT64_MAX)
            return CFAIL(c, ne_at, SD_ERR_FORMAT, "tensor '%.*s': negative dim ne[%u] = %lld", nl,
                         name.ptr, j, (long long)(int64_t)v);
        if (!sd_mul_u64(n_elem, v, &n_elem) || n_elem > (uint64_t)INT64_MAX)
            return CFAIL(c, ne_at, SD_ERR_FORMAT, "tensor '%.*s': dims overflow", nl, name.ptr);
        ne[j] = (int64_t)v;
    }
    uint64_t type_at = c->pos;
    if ((st = rd_u32(c, &type, "tensor type"))) return st;
    const sd_type_info *ti = sd_type_get_info((int)(type > 1000000u ? 1000000u : type));
    if (!ti)
        return CFAIL(c, type_at, SD_ERR_UNSUPPORTED, "tensor '%.*s': unknown tensor type id %u",
                     nl, name.ptr, type);
    if (ne[0] % ti->block_size != 0)
        return CFAIL(c, dims_at + 4, SD_ERR_FORMAT,
                     "tensor '%.*s': row size not a multiple of block size (ne[0] = %lld, %s block %lld)",
                     nl, name.ptr, (long long)ne[0], ti->name, (long long)ti->block_size);
    /* nbytes = (ne0 / block) * type_size * ne1 * ne2 * ne3, all checked. */
    uint64_t size = (uint64_t)(ne[0] / ti->block_size);
    int ok = sd_mul_u64(size, ti->type_size, &size);
    for (int j = 1; j < SD_GGUF_MAX_DIMS && ok; j++) ok = sd_mul_u64(size, (uint64_t)ne[j], &size);
    if (!ok || size > (uint64_t)SIZE_MAX)
        return CFAIL(c, dims_at + 4, SD_ERR_FORMAT, "tensor '%.*s': byte size overflows", nl, name.ptr);
    uint64_t off_at = c->pos;
    if ((st = rd_u64(c, &off, "tensor offset"))) return st;
    if (t) {
        t->info_off = at;
        t->off_at = off_at;
        t->t.name = arena_put(arena, name);
        t->t.n_dims = n_dims;
        memcpy(t->t.ne, ne, sizeof ne);
        t->t.type = (int)type;
        t->t.offset = off;
        t->t.size = size;
    }
    lay->arena_bytes += name.len + 1;
    return SD_OK;
}

/* Walks all kvs and tensor infos from just after the header. In the scan
 * pass g->kvs is NULL and only lay is computed; in the fill pass the records,
 * the arena and the string index are filled. Both passes see the same bytes
 * and so reach the same verdict. */
static sd_status parse_meta(sd_gguf *g, cursor *c, layout *lay) {
    char *arena = g->arena;
    uint64_t *idx = g->str_index;
    sd_status st;
    memset(lay, 0, sizeof *lay);
    lay->alignment = GGUF_DEFAULT_ALIGNMENT;
    c->pos = GGUF_HEADER_SIZE;
    for (int64_t i = 0; i < g->n_kv; i++)
        if ((st = parse_kv(c, g->kvs ? &g->kvs[i] : NULL, &arena, &idx, lay))) return st;
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((st = parse_tensor(c, g->tensors ? &g->tensors[i] : NULL, &arena, lay))) return st;
    lay->header_end = c->pos;
    return SD_OK;
}

/* ------------------------------------------------------------ post checks */

/* qsort comparators get no context: sort pointers to records instead of
 * indices, then convert. */
static int cmp_kv_key(const void *a, const void *b) {
    return strcmp((*(const kv_rec *const *)a)->key, (*(const kv_rec *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const tensor_rec *const *)a)->t.name, (*(const tensor_rec *const *)b)->t.name);
}

static int cmp_tensor_off(const void *a, const void *b) {
    const tensor_rec *x = *(const tensor_rec *const *)a, *y = *(const tensor_rec *const *)b;
    if (x->t.offset != y->t.offset) return x->t.offset < y->t.offset ? -1 : 1;
    if (x->t.size != y->t.size) return x->t.size < y->t.size ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Sorts kvs by key into g->kv_sorted (ptrs is scratch of n_kv) and rejects
 * duplicates. */
static sd_status check_keys(sd_gguf *g, cursor *c, const void **ptrs) {
    for (int64_t i = 0; i < g->n_kv; i++) ptrs[i] = &g->kvs[i];
    if (g->n_kv > 1) qsort(ptrs, (size_t)g->n_kv, sizeof *ptrs, cmp_kv_key);
    for (int64_t i = 0; i < g->n_kv; i++) {
        const kv_rec *kv = ptrs[i];
        g->kv_sorted[i] = kv - g->kvs;
        if (i > 0 && strcmp(kv->key, ((const kv_rec *)ptrs[i - 1])->key) == 0) {
            const kv_rec *prev = ptrs[i - 1];
            const kv_rec *later = kv->key_off > prev->key_off ? kv : prev;
            return CFAIL(c, later->key_off, SD_ERR_FORMAT, "duplicate key '%s'", kv->key);
        }
    }
    return SD_OK;
}

/* Sorts tensors by name into g->tensor_sorted and rejects duplicates. */
static sd_status check_tensor_names(sd_gguf *g, cursor *c, const void **ptrs) {
    for (int64_t i = 0; i < g->n_tensors; i++) ptrs[i] = &g->tensors[i];
    if (g->n_tensors > 1) qsort(ptrs, (size_t)g->n_tensors, sizeof *ptrs, cmp_tensor_name);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const tensor_rec *t = ptrs[i];
        g->tensor_sorted[i] = t - g->tensors;
        if (i > 0 && strcmp(t->t.name, ((const tensor_rec *)ptrs[i - 1])->t.name) == 0) {
            const tensor_rec *prev = ptrs[i - 1];
            const tensor_rec *later = t->info_off > prev->info_off ? t : prev;
            return CFAIL(c, later->info_off, SD_ERR_FORMAT, "duplicate tensor name '%s'",
                         t->t.name);
        }
    }
    return SD_OK;
}

/* Checks each tensor's offset (aligned, inside the file), sets its data
 * pointer, then sorts by offset and rejects overlaps. */
static sd_status check_tensor_data(sd_gguf *g, cursor *c, const void **ptrs) {
    uint64_t data_size = g->size - g->data_start;  /* data_start <= size here */
    for (int64_t i = 0; i < g->n_tensors; i++) {
        tensor_rec *t = &g->tensors[i];
        if (t->t.offset % g->alignment != 0)
            return CFAIL(c, t->off_at, SD_ERR_FORMAT,
                         "tensor '%s': offset %llu is not a multiple of the alignment %llu",
                         t->t.name, (unsigned long long)t->t.offset,
                         (unsigned long long)g->alignment);
        if (t->t.offset > data_size)
            return CFAIL(c, t->off_at, SD_ERR_FORMAT,
                         "tensor '%s': data offset %llu is beyond the end of file (data section holds %llu bytes)",
                         t->t.name, (unsigned long long)t->t.offset, (unsigned long long)data_size);
        if (t->t.size > data_size - t->t.offset)
            return CFAIL(c, t->off_at, SD_ERR_FORMAT,
                         "tensor '%s': data [%llu, +%llu) extends beyond the end of file (data section holds %llu bytes)",
                         t->t.name, (unsigned long long)t->t.offset, (unsigned long long)t->t.size,
                         (unsigned long long)data_size);
        t->t.data = g->base + g->data_start + t->t.offset;
        ptrs[i] = t;
    }
    if (g->n_tensors > 1) qsort(ptrs, (size_t)g->n_tensors, sizeof *ptrs, cmp_tensor_off);
    /* Walk in offset order keeping the furthest end seen so far, so that
     * empty tensors in between cannot hide an overlap. */
    const tensor_rec *far = NULL;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const tensor_rec *b = ptrs[i];
        if (b->t.size == 0) continue;
        if (far && far->t.offset + far->t.size > b->t.offset)
            return CFAIL(c, b->off_at, SD_ERR_FORMAT,
                         "tensor '%s' data at %llu overlaps tensor '%s' [%llu, +%llu)", b->t.name,
                         (unsigned long long)b->t.offset, far->t.name,
                         (unsigned long long)far->t.offset, (unsigned long long)far->t.size);
        if (!far || b->t.offset + b->t.size > far->t.offset + far->t.size) far = b;
    }
    return SD_OK;
}

/* ------------------------------------------------------------ open / close */

/* Checks the fixed header and the counts against the file size. */
static sd_status check_header(cursor *c, uint32_t *version, uint64_t *n_kv, uint64_t *n_tensors) {
    if (c->size < GGUF_HEADER_SIZE)
        return CFAIL(c, 0, SD_ERR_FORMAT, "file is %llu bytes, smaller than the %u-byte GGUF header",
                     (unsigned long long)c->size, GGUF_HEADER_SIZE);
    if (memcmp(c->base, "GGUF", 4) != 0)
        return CFAIL(c, 0, SD_ERR_FORMAT, "bad magic %02x %02x %02x %02x (expected \"GGUF\")",
                     c->base[0], c->base[1], c->base[2], c->base[3]);
    *version = ld_u32(c->base + 4);
    if (*version < 2 || *version > 3)
        return CFAIL(c, 4, SD_ERR_FORMAT, "unsupported GGUF version %u (need 2 or 3)", *version);
    *n_tensors = ld_u64(c->base + 8);
    *n_kv = ld_u64(c->base + 16);
    uint64_t left = c->size - GGUF_HEADER_SIZE;
    if (*n_kv > left / GGUF_MIN_KV_SIZE)
        return CFAIL(c, 16, SD_ERR_FORMAT, "n_kv %llu cannot fit in the %llu bytes left",
                     (unsigned long long)*n_kv, (unsigned long long)left);
    if (*n_tensors > left / GGUF_MIN_TENSOR_SIZE)
        return CFAIL(c, 8, SD_ERR_FORMAT, "n_tensors %llu cannot fit in the %llu bytes left",
                     (unsigned long long)*n_tensors, (unsigned long long)left);
    if (*n_kv * GGUF_MIN_KV_SIZE + *n_tensors * GGUF_MIN_TENSOR_SIZE > left)
        return CFAIL(c, 8, SD_ERR_FORMAT,
                     "n_kv %llu and n_tensors %llu cannot fit in the %llu bytes left",
                     (unsigned long long)*n_kv, (unsigned long long)*n_tensors,
                     (unsigned long long)left);
    return SD_OK;
}

/* Rounds v up to a multiple of a (a power of two), saturating on overflow. */
static uint64_t align_up(uint64_t v, uint64_t a) {
    return v > UINT64_MAX - (a - 1) ? UINT64_MAX : (v + a - 1) & ~(a - 1);
}

/* Carves every array of the reader out of one allocation sized by lay.
 * Returns NULL on overflow or out of memory. */
static sd_gguf *alloc_reader(uint64_t n_kv, uint64_t n_tensors, const layout *lay,
                             const char *name) {
    size_t name_len = strlen(name) + 1;
    uint64_t parts[7] = {
        sizeof(sd_gguf), n_kv * sizeof(kv_rec), n_tensors * sizeof(tensor_rec),
        n_kv * sizeof(int64_t), n_tensors * sizeof(int64_t), lay->n_str * sizeof(uint64_t), 0};
    uint64_t total = 0;
    for (int i = 0; i < 6; i++) {
        /* each part padded to 8 bytes; counts are bounded by the file size */
        if (!sd_add_u64(total, align_up(parts[i], 8), &total)) return NULL;
    }
    if (!sd_add_u64(total, lay->arena_bytes, &total) || !sd_add_u64(total, name_len, &total) ||
        total > SIZE_MAX)
        return NULL;
    uint8_t *mem = calloc(1, (size_t)total);
    if (!mem) return NULL;
    sd_gguf *g = (sd_gguf *)mem;
    uint64_t off = align_up(parts[0], 8);
    g->kvs = (kv_rec *)(mem + off);               off += align_up(parts[1], 8);
    g->tensors = (tensor_rec *)(mem + off);       off += align_up(parts[2], 8);
    g->kv_sorted = (int64_t *)(mem + off);        off += align_up(parts[3], 8);
    g->tensor_sorted = (int64_t *)(mem + off);    off += align_up(parts[4], 8);
    g->str_index = (uint64_t *)(mem + off);       off += align_up(parts[5], 8);
    g->arena = (char *)(mem + off);               off += lay->arena_bytes;
    g->name = (char *)(mem + off);
    memcpy(g->name, name, name_len);
    return g;
}

/* Validates the whole file in c and builds the reader. */
static sd_status open_cursor(cursor *c, sd_gguf **out) {
    uint32_t version = 0;
    uint64_t n_kv = 0, n_tensors = 0;
    layout lay, lay2;
    sd_status st = check_header(c, &version, &n_kv, &n_tensors);
    if (st) return st;

    sd_gguf scan = {0};
    scan.n_kv = (int64_t)n_kv;
    scan.n_tensors = (int64_t)n_tensors;
    if ((st = parse_meta(&scan, c, &lay))) return st;
    uint64_t data_start = align_up(lay.header_end, lay.alignment);
    if (data_start > c->size) {
        if (n_tensors > 0)
            return CFAIL(c, lay.header_end, SD_ERR_FORMAT,
                         "data section would start at %llu, beyond the end of file (%llu bytes)",
                         (unsigned long long)data_start, (unsigned long long)c->size);
        data_start = c->size;  /* no tensors: the file may end at the header */
    }

    sd_gguf *g = alloc_reader(n_kv, n_tensors, &lay, c->name ? c->name : "gguf");
    if (!g)
        return CFAIL(c, 0, SD_ERR_NOMEM, "out of memory for %llu keys and %llu tensors",
                     (unsigned long long)n_kv, (unsigned long long)n_tensors);
    g->base = c->base;
    g->size = c->size;
    g->version = version;
    g->alignment = lay.alignment;
    g->data_start = data_start;
    g->n_kv = (int64_t)n_kv;
    g->n_tensors = (int64_t)n_tensors;
    st = parse_meta(g, c, &lay2);  /* same bytes, same verdict as the scan */
    /* scratch for sorting: reuse nothing of the reader, it is small */
    uint64_t n_ptrs = n_kv > n_tensors ? n_kv : n_tensors;
    const void **ptrs = st ? NULL : malloc((size_t)(n_ptrs ? n_ptrs : 1) * sizeof *ptrs);
    if (!st && !ptrs) st = CFAIL(c, 0, SD_ERR_NOMEM, "out of memory");
    if (!st) st = check_keys(g, c, ptrs);
    if (!st) st = check_tensor_names(g, c, ptrs);
    if (!st) st = check_tensor_data(g, c, ptrs);
    free(ptrs);
    if (st) {
        free(g);
        return st;
    }
    *out = g;
    return SD_OK;
}

sd_status sd_gguf_open_mem(const void *data, size_t size, const char *name, sd_gguf **out,
                           char *err, size_t err_size) {
    if (err && err_size) err[0] = '\0';
    if (!out || (!data && size > 0))
        return fail_at(name, 0, err, err_size, SD_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    static const uint8_t empty[1] = {0};
    cursor c = {data ? data : empty, size, 0, name ? name : "gguf", err, err_size};
    return open_cursor(&c, out);
}

sd_status sd_gguf_open(const char *path, sd_gguf **out, char *err, size_t err_size) {
    if (err && err_size) err[0] = '\0';
    if (!path || !out) return fail_at(path, 0, err, err_size, SD_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_at(path, 0, err, err_size, SD_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return fail_at(path, 0, err, err_size, SD_ERR_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return fail_at(path, 0, err, err_size, SD_ERR_IO, "not a regular file");
    }
    if (sb.st_size <= 0) {  /* mmap cannot map 0 bytes; report like open_mem */
        close(fd);
        return sd_gguf_open_mem(NULL, 0, path, out, err, err_size);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return fail_at(path, 0, err, err_size, SD_ERR_IO, "file too large to map");
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return fail_at(path, 0, err, err_size, SD_ERR_IO, "mmap failed: %s", strerror(e));
    sd_status st = sd_gguf_open_mem(map, size, path, out, err, err_size);
    if (st) {
        munmap(map, size);
        return st;
    }
    (*out)->map = map;
    (*out)->map_size = size;
    return SD_OK;
}

void sd_gguf_close(sd_gguf *g) {
    if (!g) return;
    if (g->map) munmap(g->map, g->map_size);
    free(g);
}

/* ------------------------------------------------------------ accessors */

uint32_t sd_gguf_version(const sd_gguf *g) { return g->version; }
uint64_t sd_gguf_alignment(const sd_gguf *g) { return g->alignment; }
const char *sd_gguf_name(const sd_gguf *g) { return g->name; }
int64_t sd_gguf_n_kv(const sd_gguf *g) { return g->n_kv; }
int64_t sd_gguf_n_tensors(const sd_gguf *g) { return g->n_tensors; }

static const kv_rec *kv_at(const sd_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_kv ? &g->kvs[i] : NULL;
}

int64_t sd_gguf_find_key(const sd_gguf *g, const char *key) {
    if (!g || !key) return -1;
    int64_t lo = 0, hi = g->n_kv;  /* binary search over kv_sorted */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(g->kvs[g->kv_sorted[mid]].key, key);
        if (r == 0) return g->kv_sorted[mid];
        if (r < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

const char *sd_gguf_key(const sd_gguf *g, int64_t i) {
    const kv_rec *kv = kv_at(g, i);
    return kv ? kv->key : NULL;
}

sd_gguf_vtype sd_gguf_kv_type(const sd_gguf *g, int64_t i) {
    const kv_rec *kv = kv_at(g, i);
    return kv ? kv->type : SD_GGUF_VTYPE_COUNT;
}

sd_gguf_vtype sd_gguf_arr_type(const sd_gguf *g, int64_t i) {
    const kv_rec *kv = kv_at(g, i);
    return kv && kv->type == SD_GGUF_ARRAY ? kv->arr_type : SD_GGUF_VTYPE_COUNT;
}

uint64_t sd_gguf_arr_n(const sd_gguf *g, int64_t i) {
    const kv_rec *kv = kv_at(g, i);
    return kv && kv->type == SD_GGUF_ARRAY ? kv->arr_n : 0;
}

sd_gguf_str sd_gguf_arr_str(const sd_gguf *g, int64_t i, uint64_t e) {
    sd_gguf_str s = {NULL, 0};
    const kv_rec *kv = kv_at(g, i);
    if (!kv || kv->type != SD_GGUF_ARRAY || kv->arr_type != SD_GGUF_STRING || e >= kv->arr_n)
        return s;
    uint64_t off = kv->str_off[e];
    s.len = ld_u64(g->base + off);
    s.ptr = (const char *)g->base + off + 8;
    return s;
}

sd_status sd_gguf_kv_raw(const sd_gguf *g, int64_t i, const void **ptr, uint64_t *size) {
    const kv_rec *kv = kv_at(g, i);
    if (!kv || !ptr || !size) return SD_ERR_INVALID_ARG;
    uint64_t start = kv->val_off, end;
    if (kv->type == SD_GGUF_STRING) {
        end = start + 8 + ld_u64(g->base + start);
    } else if (kv->type == SD_GGUF_ARRAY) {
        start -= 12;  /* element type and count precede the elements */
        if (kv->arr_type != SD_GGUF_STRING)
            end = kv->val_off + kv->arr_n * sd_gguf_vtype_size(kv->arr_type);
        else if (kv->arr_n == 0)
            end = kv->val_off;
        else {
            uint64_t last = kv->str_off[kv->arr_n - 1];
            end = last + 8 + ld_u64(g->base + last);
        }
    } else {
        end = start + sd_gguf_vtype_size(kv->type);
    }
    *ptr = g->base + start;
    *size = end - start;  /* all inside the mapping: checked on open */
    return SD_OK;
}

const sd_gguf_tensor *sd_gguf_tensor_at(const sd_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_tensors ? &g->tensors[i].t : NULL;
}

const sd_gguf_tensor *sd_gguf_find_tensor(const sd_gguf *g, const char *name) {
    if (!g || !name) return NULL;
    int64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const tensor_rec *t = &g->tensors[g->tensor_sorted[mid]];
        int r = strcmp(t->t.name, name);
        if (r == 0) return &t->t;
        if (r < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

/* ------------------------------------------------------------ typed getters */

/* A numeric value read from the file, tagged by kind. */
typedef struct num {
    int kind;                 /* 0 = signed int, 1 = unsigned int, 2 = float, -1 = not numeric */
    int64_t i;
    uint64_t u;
    double f;
} num;

/* Loads one scalar of type t at p (unaligned). */
static num load_num(uint32_t t, const uint8_t *p) {
    num v = {-1, 0, 0, 0};
    switch (t) {
    case SD_GGUF_UINT8: v.kind = 1; v.u = p[0]; break;
    case SD_GGUF_INT8: v.kind = 0; v.i = (int8_t)p[0]; break;
    case SD_GGUF_UINT16: v.kind = 1; v.u = (uint16_t)(p[0] | p[1] << 8); break;
    case SD_GGUF_INT16: v.kind = 0; v.i = (int16_t)(uint16_t)(p[0] | p[1] << 8); break;
    case SD_GGUF_UINT32: v.kind = 1; v.u = ld_u32(p); break;
    case SD_GGUF_INT32: v.kind = 0; v.i = (int32_t)ld_u32(p); break;
    case SD_GGUF_UINT64: v.kind = 1; v.u = ld_u64(p); break;
    case SD_GGUF_INT64: v.kind = 0; v.i = (int64_t)ld_u64(p); break;
    case SD_GGUF_FLOAT32: {
        uint32_t b = ld_u32(p);
        float f;
        memcpy(&f, &b, sizeof f);
        v.kind = 2; v.f = f;
        break;
    }
    case SD_GGUF_FLOAT64: {
        uint64_t b = ld_u64(p);
        memcpy(&v.f, &b, sizeof v.f);
        v.kind = 2;
        break;
    }
    default: break;
    }
    return v;
}

/* Converts an integer num to int64 within [lo, hi]; 0 if not integer or out of range. */
static int num_to_i64(num v, int64_t lo, int64_t hi, int64_t *out) {
    if (v.kind == 1) {
        if (v.u > (uint64_t)hi) return 0;
        *out = (int64_t)v.u;
        return 1;
    }
    if (v.kind == 0) {
        if (v.i < lo || v.i > hi) return 0;
        *out = v.i;
        return 1;
    }
    return 0;
}

/* Looks up key; NOT_FOUND if absent. */
static sd_status find_kv(const sd_gguf *g, const char *key, const kv_rec **kv) {
    int64_t i = sd_gguf_find_key(g, key);
    if (i < 0) return SD_ERR_NOT_FOUND;
    *kv = &g->kvs[i];
    return SD_OK;
}

static sd_status type_err(const sd_gguf *g, const kv_rec *kv, const char *want, char *err,
                          size_t err_size) {
    if (kv->type == SD_GGUF_ARRAY)
        return fail_at(g->name, kv->key_off, err, err_size, SD_ERR_FORMAT,
                       "key '%s' is an array of %s, expected %s", kv->key,
                       vtype_name(kv->arr_type), want);
    return fail_at(g->name, kv->key_off, err, err_size, SD_ERR_FORMAT,
                   "key '%s' has type %s, expected %s", kv->key, vtype_name(kv->type), want);
}

/* Shared integer getter: value of key converted into [lo, hi]. */
static sd_status get_int(const sd_gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out,
                         const char *want, char *err, size_t err_size) {
    const kv_rec *kv;
    if (!g || !key || !out) return SD_ERR_INVALID_ARG;
    if (find_kv(g, key, &kv)) return SD_ERR_NOT_FOUND;
    num v = load_num(kv->type, g->base + kv->val_off);
    if (v.kind != 0 && v.kind != 1) return type_err(g, kv, want, err, err_size);
    if (!num_to_i64(v, lo, hi, out))
        return fail_at(g->name, kv->val_off, err, err_size, SD_ERR_FORMAT,
                       "key '%s' value out of range for %s", kv->key, want);
    return SD_OK;
}

sd_status sd_gguf_get_i64(const sd_gguf *g, const char *key, int64_t *out, char *err,
                          size_t err_size) {
    return get_int(g, key, INT64_MIN, INT64_MAX, out, "int64", err, err_size);
}

sd_status sd_gguf_get_u32(const sd_gguf *g, const char *key, uint32_t *out, char *err,
                          size_t err_size) {
    int64_t v = 0;
    sd_status st = get_int(g, key, 0, UINT32_MAX, &v, "uint32", err, err_size);
    if (!st) *out = (uint32_t)v;
    return st;
}

sd_status sd_gguf_get_i32(const sd_gguf *g, const char *key, int32_t *out, char *err,
                          size_t err_size) {
    int64_t v = 0;
    sd_status st = get_int(g, key, INT32_MIN, INT32_MAX, &v, "int32", err, err_size);
    if (!st) *out = (int32_t)v;
    return st;
}

sd_status sd_gguf_get_f32(const sd_gguf *g, const char *key, float *out, char *err,
                          size_t err_size) {
    const kv_rec *kv;
    if (!g || !key || !out) return SD_ERR_INVALID_ARG;
    if (find_kv(g, key, &kv)) return SD_ERR_NOT_FOUND;
    if (kv->type != SD_GGUF_FLOAT32 && kv->type != SD_GGUF_FLOAT64)
        return type_err(g, kv, "float32", err, err_size);
    num v = load_num(kv->type, g->base + kv->val_off);
    if (isfinite(v.f) && fabs(v.f) > 3.4028234663852886e38)
        return fail_at(g->name, kv->val_off, err, err_size, SD_ERR_FORMAT,
                       "key '%s' value out of range for float32", kv->key);
    *out = (float)v.f;
    return SD_OK;
}

/* The file's name for messages (a hyper-parameter's value, not a place in
 * the file, is what is wrong). */
static const char *gguf_name(const sd_gguf *g) { return g->name ? g->name : "gguf"; }

sd_status sd_gguf_get_int_in(const sd_gguf *g, const char *key, bool required, int def, int lo, int hi, int *out,
                             char *err, size_t err_size) {
    if (!g || !key || !out) return SD_ERR_INVALID_ARG;
    int64_t v;
    sd_status st = sd_gguf_get_i64(g, key, &v, err, err_size);
    if (st == SD_ERR_NOT_FOUND) {
        if (required) return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: missing key %s", gguf_name(g), key);
        *out = def;
        return SD_OK;
    }
    if (st != SD_OK) return st;
    if (v < lo || v > hi)
        return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: %s = %lld out of range [%d, %d]", gguf_name(g), key,
                       (long long)v, lo, hi);
    *out = (int)v;
    return SD_OK;
}

sd_status sd_gguf_get_f32_in(const sd_gguf *g, const char *key, float def, float lo, float hi, float *out, char *err,
                             size_t err_size) {
    if (!g || !key || !out) return SD_ERR_INVALID_ARG;
    float v;
    sd_status st = sd_gguf_get_f32(g, key, &v, err, err_size);
    if (st == SD_ERR_NOT_FOUND) {
        *out = def;
        return SD_OK;
    }
    if (st != SD_OK) return st;
    if (!(v >= lo && v <= hi))
        return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: %s = %g out of range [%g, %g]", gguf_name(g), key, (double)v,
                       (double)lo, (double)hi);
    *out = v;
    return SD_OK;
}

sd_status sd_gguf_get_bool(const sd_gguf *g, const char *key, bool *out, char *err,
                           size_t err_size) {
    const kv_rec *kv;
    if (!g || !key || !out) return SD_ERR_INVALID_ARG;
    if (find_kv(g, key, &kv)) return SD_ERR_NOT_FOUND;
    if (kv->type != SD_GGUF_BOOL) return type_err(g, kv, "bool", err, err_size);
    *out = g->base[kv->val_off] != 0;
    return SD_OK;
}

sd_status sd_gguf_get_str(const sd_gguf *g, const char *key, sd_gguf_str *out, char *err,
                          size_t err_size) {
    const kv_rec *kv;
    if (!g || !key || !out) return SD_ERR_INVALID_ARG;
    if (find_kv(g, key, &kv)) return SD_ERR_NOT_FOUND;
    if (kv->type != SD_GGUF_STRING) return type_err(g, kv, "string", err, err_size);
    out->len = ld_u64(g->base + kv->val_off);
    out->ptr = (const char *)g->base + kv->val_off + 8;
    return SD_OK;
}

sd_status sd_gguf_get_arr_n(const sd_gguf *g, const char *key, sd_gguf_vtype *elem_type,
                            uint64_t *n, char *err, size_t err_size) {
    const kv_rec *kv;
    if (!g || !key) return SD_ERR_INVALID_ARG;
    if (find_kv(g, key, &kv)) return SD_ERR_NOT_FOUND;
    if (kv->type != SD_GGUF_ARRAY) return type_err(g, kv, "array", err, err_size);
    if (elem_type) *elem_type = kv->arr_type;
    if (n) *n = kv->arr_n;
    return SD_OK;
}

/* Finds a numeric array for the conversion getters and checks n <= cap
 * when out is given. */
static sd_status get_num_arr(const sd_gguf *g, const char *key, const void *out, uint64_t cap,
                             uint64_t *n, const char *want, const kv_rec **kvp, char *err,
                             size_t err_size) {
    const kv_rec *kv;
    if (!g || !key) return SD_ERR_INVALID_ARG;
    if (find_kv(g, key, &kv)) return SD_ERR_NOT_FOUND;
    if (kv->type != SD_GGUF_ARRAY || sd_gguf_vtype_size(kv->arr_type) == 0 ||
        kv->arr_type == SD_GGUF_BOOL)
        return type_err(g, kv, want, err, err_size);
    if (n) *n = kv->arr_n;
    if (out && kv->arr_n > cap)
        return fail_at(g->name, kv->key_off, err, err_size, SD_ERR_FORMAT,
                       "key '%s': array of %llu elements exceeds the caller's %llu", kv->key,
                       (unsigned long long)kv->arr_n, (unsigned long long)cap);
    *kvp = kv;
    return SD_OK;
}

sd_status sd_gguf_get_arr_f32(const sd_gguf *g, const char *key, float *out, uint64_t cap,
                              uint64_t *n, char *err, size_t err_size) {
    const kv_rec *kv = NULL;
    sd_status st = get_num_arr(g, key, out, cap, n, "array of float32", &kv, err, err_size);
    if (st) return st;
    uint64_t es = sd_gguf_vtype_size(kv->arr_type);
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        num v = load_num(kv->arr_type, g->base + kv->val_off + i * es);
        float f;
        int64_t iv;
        if (v.kind == 2) {
            if (isfinite(v.f) && fabs(v.f) > 3.4028234663852886e38) goto range;
            f = (float)v.f;
        } else if (num_to_i64(v, -(1 << 24), 1 << 24, &iv)) {
            f = (float)iv;  /* exact: |iv| <= 2^24 */
        } else {
            goto range;
        }
        if (out) out[i] = f;
        continue;
    range:
        return fail_at(g->name, kv->val_off + i * es, err, err_size, SD_ERR_FORMAT,
                       "key '%s' element %llu does not convert exactly to float32", kv->key,
                       (unsigned long long)i);
    }
    return SD_OK;
}

sd_status sd_gguf_get_arr_i32(const sd_gguf *g, const char *key, int32_t *out, uint64_t cap,
                              uint64_t *n, char *err, size_t err_size) {
    const kv_rec *kv = NULL;
    sd_status st = get_num_arr(g, key, out, cap, n, "array of int32", &kv, err, err_size);
    if (st) return st;
    if (kv->arr_type == SD_GGUF_FLOAT32 || kv->arr_type == SD_GGUF_FLOAT64)
        return type_err(g, kv, "array of int32", err, err_size);
    uint64_t es = sd_gguf_vtype_size(kv->arr_type);
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        int64_t iv;
        num v = load_num(kv->arr_type, g->base + kv->val_off + i * es);
        if (!num_to_i64(v, INT32_MIN, INT32_MAX, &iv))
            return fail_at(g->name, kv->val_off + i * es, err, err_size, SD_ERR_FORMAT,
                           "key '%s' element %llu out of range for int32", kv->key,
                           (unsigned long long)i);
        if (out) out[i] = (int32_t)iv;
    }
    return SD_OK;
}
