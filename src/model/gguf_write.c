/*
 * gguf_write.c - GGUF v3 writer (see gguf_write.h).
 *
 * Each kv is kept as its key, its type and its value already encoded as
 * the file will hold it (the bytes after the type field), so copying a kv
 * from a reader is a memcpy and writing is a walk. Tensors keep their
 * info and a data pointer (borrowed or owned); offsets are assigned at
 * write time from the alignment in force then.
 */
#include "model/gguf_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define W_MAX_NAME_LEN 65536u   /* keys and tensor names: the reader's limit */
#define W_DEFAULT_ALIGNMENT 32u

typedef struct wkv {
    char *key;          /* NUL-terminated                                  */
    uint32_t type;      /* sd_gguf_vtype                                   */
    uint8_t *val;       /* (val_size) encoded value                        */
    uint64_t val_size;
} wkv;

typedef struct wtensor {
    char *name;
    int type;
    uint32_t n_dims;
    int64_t ne[SD_GGUF_MAX_DIMS];
    const void *data;   /* (size) bytes                                    */
    void *owned;        /* data when the writer owns it, else NULL         */
    uint64_t size;
} wtensor;

struct sd_gguf_writer {
    wkv *kvs;
    int64_t n_kv, cap_kv;
    wtensor *tensors;
    int64_t n_tensors, cap_tensors;
    char err[512];
};

static sd_status werr(sd_gguf_writer *w, sd_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    return st;
}


sd_status sd_gguf_writer_new(sd_gguf_writer **out) {
    if (!out) return SD_ERR_INVALID_ARG;
    *out = calloc(1, sizeof **out);
    return *out ? SD_OK : SD_ERR_NOMEM;
}

void sd_gguf_writer_free(sd_gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    for (int64_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].owned);
    }
    free(w->kvs);
    free(w->tensors);
    free(w);
}

const char *sd_gguf_writer_error(const sd_gguf_writer *w) { return w ? w->err : "NULL writer"; }
int64_t sd_gguf_writer_n_kv(const sd_gguf_writer *w) { return w ? w->n_kv : 0; }
int64_t sd_gguf_writer_n_tensors(const sd_gguf_writer *w) { return w ? w->n_tensors : 0; }

/* Checks a key or tensor name: non-empty, at most W_MAX_NAME_LEN bytes (the
 * terminating NUL is the only NUL by construction). */
static sd_status check_name(sd_gguf_writer *w, const char *name, const char *what) {
    if (!name) return werr(w, SD_ERR_INVALID_ARG, "NULL %s", what);
    size_t n = strnlen(name, W_MAX_NAME_LEN + 1);
    if (n == 0) return werr(w, SD_ERR_INVALID_ARG, "empty %s", what);
    if (n > W_MAX_NAME_LEN)
        return werr(w, SD_ERR_INVALID_ARG, "%s longer than %u bytes", what, W_MAX_NAME_LEN);
    return SD_OK;
}

static int64_t find_kv(const sd_gguf_writer *w, const char *key) {
    for (int64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, key) == 0) return i;
    return -1;
}

/* Stores (key, type, val) taking ownership of val (freed on failure). */
static sd_status put_kv(sd_gguf_writer *w, const char *key, uint32_t type, uint8_t *val,
                        uint64_t val_size) {
    sd_status st = check_name(w, key, "key");
    if (st) {
        free(val);
        return st;
    }
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a = 0;
        if (type == SD_GGUF_UINT32) memcpy(&a, val, 4);
        if (type != SD_GGUF_UINT32 || a == 0 || (a & (a - 1)) != 0) {
            free(val);
            return werr(w, SD_ERR_INVALID_ARG,
                        "general.alignment must be a uint32 power of two");
        }
    }
    if (strcmp(key, "general.architecture") == 0 && type != SD_GGUF_STRING) {
        free(val);
        return werr(w, SD_ERR_INVALID_ARG, "general.architecture must be a string");
    }
    int64_t i = find_kv(w, key);
    if (i >= 0) {
        free(w->kvs[i].val);
        w->kvs[i].type = type;
        w->kvs[i].val = val;
        w->kvs[i].val_size = val_size;
        return SD_OK;
    }
    if (w->n_kv == w->cap_kv) {
        int64_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *p = (size_t)cap <= SIZE_MAX / sizeof *p ? realloc(w->kvs, (size_t)cap * sizeof *p) : NULL;
        if (!p) {
            free(val);
            return werr(w, SD_ERR_NOMEM, "out of memory");
        }
        w->kvs = p;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(val);
        return werr(w, SD_ERR_NOMEM, "out of memory");
    }
    w->kvs[w->n_kv++] = (wkv){k, type, val, val_size};
    return SD_OK;
}

/* malloc(n) with n checked against SIZE_MAX (n may be 0). */
static uint8_t *alloc_bytes(uint64_t n) {
    if (n > SIZE_MAX) return NULL;
    return malloc(n ? (size_t)n : 1);
}

static void st_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void st_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

sd_status sd_gguf_writer_set_scalar(sd_gguf_writer *w, const char *key, sd_gguf_vtype t,
                                    const void *val) {
    if (!w) return SD_ERR_INVALID_ARG;
    uint64_t sz = sd_gguf_vtype_size((uint32_t)t);
    if (sz == 0) return werr(w, SD_ERR_INVALID_ARG, "key '%s': type %d is not a scalar type",
                             key ? key : "(null)", (int)t);
    if (!val) return werr(w, SD_ERR_INVALID_ARG, "NULL value");
    uint8_t *v = alloc_bytes(sz);
    if (!v) return werr(w, SD_ERR_NOMEM, "out of memory");
    memcpy(v, val, (size_t)sz);
    if (t == SD_GGUF_BOOL) v[0] = v[0] != 0;
    return put_kv(w, key, (uint32_t)t, v, sz);
}

sd_status sd_gguf_writer_set_u32(sd_gguf_writer *w, const char *key, uint32_t v) {
    return sd_gguf_writer_set_scalar(w, key, SD_GGUF_UINT32, &v);
}
sd_status sd_gguf_writer_set_i32(sd_gguf_writer *w, const char *key, int32_t v) {
    return sd_gguf_writer_set_scalar(w, key, SD_GGUF_INT32, &v);
}
sd_status sd_gguf_writer_set_f32(sd_gguf_writer *w, const char *key, float v) {
    return sd_gguf_writer_set_scalar(w, key, SD_GGUF_FLOAT32, &v);
}
sd_status sd_gguf_writer_set_bool(sd_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return sd_gguf_writer_set_scalar(w, key, SD_GGUF_BOOL, &b);
}

sd_status sd_gguf_writer_set_str(sd_gguf_writer *w, const char *key, const char *s, size_t len) {
    if (!w) return SD_ERR_INVALID_ARG;
    if (!s && len) return werr(w, SD_ERR_INVALID_ARG, "NULL string");
    uint64_t sz;
    if (!sd_add_u64(8, len, &sz)) return werr(w, SD_ERR_INVALID_ARG, "string too long");
    uint8_t *v = alloc_bytes(sz);
    if (!v) return werr(w, SD_ERR_NOMEM, "out of memory");
    st_u64(v, len);
    if (len) memcpy(v + 8, s, len);
    return put_kv(w, key, SD_GGUF_STRING, v, sz);
}

sd_status sd_gguf_writer_set_arr(sd_gguf_writer *w, const char *key, sd_gguf_vtype t,
                                 const void *data, uint64_t n) {
    if (!w) return SD_ERR_INVALID_ARG;
    uint64_t es = sd_gguf_vtype_size((uint32_t)t), bytes, sz;
    if (es == 0)
        return werr(w, SD_ERR_INVALID_ARG, "key '%s': array element type %d is not numeric",
                    key ? key : "(null)", (int)t);
    if (!data && n) return werr(w, SD_ERR_INVALID_ARG, "NULL array data");
    if (!sd_mul_u64(n, es, &bytes) || !sd_add_u64(12, bytes, &sz))
        return werr(w, SD_ERR_INVALID_ARG, "key '%s': array too large", key ? key : "(null)");
    uint8_t *v = alloc_bytes(sz);
    if (!v) return werr(w, SD_ERR_NOMEM, "out of memory");
    st_u32(v, (uint32_t)t);
    st_u64(v + 4, n);
    if (bytes) memcpy(v + 12, data, (size_t)bytes);
    if (t == SD_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++) v[12 + i] = v[12 + i] != 0;
    return put_kv(w, key, SD_GGUF_ARRAY, v, sz);
}

sd_status sd_gguf_writer_set_arr_str(sd_gguf_writer *w, const char *key, const char *const *strs,
                                     const uint64_t *lens, uint64_t n) {
    if (!w) return SD_ERR_INVALID_ARG;
    if (n && (!strs || !lens)) return werr(w, SD_ERR_INVALID_ARG, "NULL string array");
    uint64_t sz = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i] && lens[i]) return werr(w, SD_ERR_INVALID_ARG, "NULL string %llu",
                                             (unsigned long long)i);
        if (!sd_add_u64(sz, 8, &sz) || !sd_add_u64(sz, lens[i], &sz))
            return werr(w, SD_ERR_INVALID_ARG, "key '%s': array too large", key ? key : "(null)");
    }
    uint8_t *v = alloc_bytes(sz);
    if (!v) return werr(w, SD_ERR_NOMEM, "out of memory");
    st_u32(v, SD_GGUF_STRING);
    st_u64(v + 4, n);
    uint64_t p = 12;
    for (uint64_t i = 0; i < n; i++) {
        st_u64(v + p, lens[i]);
        if (lens[i]) memcpy(v + p + 8, strs[i], (size_t)lens[i]);
        p += 8 + lens[i];
    }
    return put_kv(w, key, SD_GGUF_ARRAY, v, sz);
}

sd_status sd_gguf_writer_copy_kv(sd_gguf_writer *w, const sd_gguf *g, int64_t i) {
    if (!w) return SD_ERR_INVALID_ARG;
    const void *raw;
    uint64_t size;
    if (!g || sd_gguf_kv_raw(g, i, &raw, &size) != SD_OK)
        return werr(w, SD_ERR_INVALID_ARG, "no kv %lld in the source", (long long)i);
    uint8_t *v = alloc_bytes(size);
    if (!v) return werr(w, SD_ERR_NOMEM, "out of memory");
    memcpy(v, raw, (size_t)size);
    return put_kv(w, sd_gguf_key(g, i), (uint32_t)sd_gguf_kv_type(g, i), v, size);
}

sd_status sd_gguf_writer_copy_kvs(sd_gguf_writer *w, const sd_gguf *g) {
    if (!w || !g) return SD_ERR_INVALID_ARG;
    for (int64_t i = 0; i < sd_gguf_n_kv(g); i++) {
        sd_status st = sd_gguf_writer_copy_kv(w, g, i);
        if (st) return st;
    }
    return SD_OK;
}

sd_status sd_gguf_writer_remove_kv(sd_gguf_writer *w, const char *key) {
    if (!w || !key) return SD_ERR_INVALID_ARG;
    int64_t i = find_kv(w, key);
    if (i < 0) return SD_OK;
    free(w->kvs[i].key);
    free(w->kvs[i].val);
    memmove(&w->kvs[i], &w->kvs[i + 1], (size_t)(w->n_kv - i - 1) * sizeof *w->kvs);
    w->n_kv--;
    return SD_OK;
}

sd_status sd_gguf_writer_add_tensor(sd_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                    const int64_t *ne, const void *data, uint64_t size, bool own) {
    void *owned = own ? (void *)data : NULL;
    sd_status st = SD_OK;
    if (!w) {
        free(owned);
        return SD_ERR_INVALID_ARG;
    }
    const sd_type_info *ti = sd_type_get_info(type);
    if ((st = check_name(w, name, "tensor name"))) goto fail;
    if (!ti) {
        st = werr(w, SD_ERR_INVALID_ARG, "tensor '%s': unknown type id %d", name, type);
        goto fail;
    }
    if (n_dims == 0 || n_dims > SD_GGUF_MAX_DIMS || !ne) {
        st = werr(w, SD_ERR_INVALID_ARG, "tensor '%s': n_dims %u not in 1..%d", name, n_dims,
                  SD_GGUF_MAX_DIMS);
        goto fail;
    }
    uint64_t n_elem = 1, bytes;
    for (uint32_t j = 0; j < n_dims; j++) {
        if (ne[j] < 0 || !sd_mul_u64(n_elem, (uint64_t)ne[j], &n_elem) || n_elem > (uint64_t)INT64_MAX) {
            st = werr(w, SD_ERR_INVALID_ARG, "tensor '%s': bad dims (ne[%u] = %lld)", name, j,
                      (long long)ne[j]);
            goto fail;
        }
    }
    if (ne[0] % ti->block_size != 0) {
        st = werr(w, SD_ERR_INVALID_ARG,
                  "tensor '%s': ne[0] = %lld is not a multiple of the %s block size %lld", name,
                  (long long)ne[0], ti->name, (long long)ti->block_size);
        goto fail;
    }
    bytes = (uint64_t)(ne[0] / ti->block_size);
    int ok = sd_mul_u64(bytes, ti->type_size, &bytes);
    for (uint32_t j = 1; j < n_dims && ok; j++) ok = sd_mul_u64(bytes, (uint64_t)ne[j], &bytes);
    if (!ok || bytes > SIZE_MAX) {
        st = werr(w, SD_ERR_INVALID_ARG, "tensor '%s': byte size overflows", name);
        goto fail;
    }
    if (bytes != size || (!data && size)) {
        st = werr(w, SD_ERR_INVALID_ARG, "tensor '%s': %llu data bytes given, %s dims need %llu",
                  name, (unsigned long long)size, ti->name, (unsigned long long)bytes);
        goto fail;
    }
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) {
            st = werr(w, SD_ERR_INVALID_ARG, "duplicate tensor name '%s'", name);
            goto fail;
        }
    if (w->n_tensors == w->cap_tensors) {
        int64_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        wtensor *p = (size_t)cap <= SIZE_MAX / sizeof *p
                         ? realloc(w->tensors, (size_t)cap * sizeof *p) : NULL;
        if (!p) {
            st = werr(w, SD_ERR_NOMEM, "out of memory");
            goto fail;
        }
        w->tensors = p;
        w->cap_tensors = cap;
    }
    wtensor t = {0};
    if (!(t.name = strdup(name))) {
        st = werr(w, SD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    t.type = type;
    t.n_dims = n_dims;
    for (int j = 0; j < SD_GGUF_MAX_DIMS; j++) t.ne[j] = (uint32_t)j < n_dims ? ne[j] : 1;
    t.data = data;
    t.owned = owned;
    t.size = size;
    w->tensors[w->n_tensors++] = t;
    return SD_OK;
fail:
    free(owned);
    return st;
}

/* ------------------------------------------------------------ output */

/* Where the bytes go: a FILE or a memory buffer of known size. */
typedef struct sink {
    FILE *f;
    uint8_t *buf;
    uint64_t pos;
    int failed;
} sink;

static void emit(sink *s, const void *p, uint64_t n) {
    if (s->failed || n == 0) return;
    if (s->f) {
        if (fwrite(p, 1, (size_t)n, s->f) != (size_t)n) s->failed = 1;
    } else {
        memcpy(s->buf + s->pos, p, (size_t)n);
    }
    s->pos += n;
}

static void emit_u32(sink *s, uint32_t v) { emit(s, &v, 4); }
static void emit_u64(sink *s, uint64_t v) { emit(s, &v, 8); }

static void emit_zeros(sink *s, uint64_t n) {
    static const uint8_t zeros[64];
    while (n > 0) {
        uint64_t k = n < sizeof zeros ? n : sizeof zeros;
        emit(s, zeros, k);
        n -= k;
    }
}

static uint32_t writer_alignment(const sd_gguf_writer *w) {
    int64_t i = find_kv(w, "general.alignment");
    uint32_t a = W_DEFAULT_ALIGNMENT;
    if (i >= 0) memcpy(&a, w->kvs[i].val, 4);  /* validated by put_kv */
    return a;
}

/* Padding that brings v to a multiple of a (a power of two). */
static uint64_t pad_to(uint64_t v, uint64_t a) { return (a - (v & (a - 1))) & (a - 1); }

/* Header + kvs + tensor infos bytes, and the total file size; 0 on overflow. */
static int layout_sizes(const sd_gguf_writer *w, uint64_t *meta, uint64_t *total) {
    uint64_t a = writer_alignment(w), m = 24;
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (!sd_add_u64(m, 8 + 4, &m) || !sd_add_u64(m, strlen(w->kvs[i].key), &m) ||
            !sd_add_u64(m, w->kvs[i].val_size, &m))
            return 0;
    }
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (!sd_add_u64(m, 8 + 4 + 8ull * t->n_dims + 4 + 8, &m) || !sd_add_u64(m, strlen(t->name), &m))
            return 0;
    }
    uint64_t tot = m;
    /* the data section starts aligned; a file without tensors ends at its
     * metadata (as the reader accepts: no padding to a huge alignment) */
    if (w->n_tensors > 0 && !sd_add_u64(tot, pad_to(tot, a), &tot)) return 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        if (!sd_add_u64(tot, pad_to(tot, a), &tot) || !sd_add_u64(tot, w->tensors[i].size, &tot)) return 0;
    }
    *meta = m;
    *total = tot;
    return 1;
}

/* Writes the whole file to s. */
static void emit_all(const sd_gguf_writer *w, sink *s) {
    uint64_t a = writer_alignment(w);
    emit(s, "GGUF", 4);
    emit_u32(s, 3);
    emit_u64(s, (uint64_t)w->n_tensors);
    emit_u64(s, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        uint64_t len = strlen(kv->key);
        emit_u64(s, len);
        emit(s, kv->key, len);
        emit_u32(s, kv->type);
        emit(s, kv->val, kv->val_size);
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        uint64_t len = strlen(t->name);
        emit_u64(s, len);
        emit(s, t->name, len);
        emit_u32(s, t->n_dims);
        for (uint32_t j = 0; j < t->n_dims; j++) emit_u64(s, (uint64_t)t->ne[j]);
        emit_u32(s, (uint32_t)t->type);
        off += pad_to(off, a);
        emit_u64(s, off);
        off += t->size;
    }
    if (w->n_tensors > 0) emit_zeros(s, pad_to(s->pos, a));
    uint64_t data_start = s->pos;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        emit_zeros(s, pad_to(s->pos - data_start, a));
        emit(s, w->tensors[i].data, w->tensors[i].size);
    }
}

sd_status sd_gguf_writer_write_mem(sd_gguf_writer *w, void **out, size_t *size) {
    if (!w || !out || !size) return SD_ERR_INVALID_ARG;
    uint64_t meta, total;
    if (!layout_sizes(w, &meta, &total) || total > SIZE_MAX)
        return werr(w, SD_ERR_INVALID_ARG, "file size overflows");
    uint8_t *buf = malloc((size_t)total);
    if (!buf) return werr(w, SD_ERR_NOMEM, "out of memory for %llu bytes", (unsigned long long)total);
    sink s = {NULL, buf, 0, 0};
    emit_all(w, &s);
    *out = buf;
    *size = (size_t)total;
    return SD_OK;
}

sd_status sd_gguf_writer_write(sd_gguf_writer *w, const char *path, char *err, size_t err_size) {
    if (!w) return SD_ERR_INVALID_ARG;
    sd_status st = SD_OK;
    char *tmp = NULL;
    FILE *f = NULL;
    int fd = -1;
    uint64_t meta, total;
    if (!path || !*path) {
        st = werr(w, SD_ERR_INVALID_ARG, "empty output path");
        goto out;
    }
    if (!layout_sizes(w, &meta, &total)) {
        st = werr(w, SD_ERR_INVALID_ARG, "file size overflows");
        goto out;
    }
    size_t n = strlen(path);
    if (!(tmp = malloc(n + 32))) {
        st = werr(w, SD_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* path.tmp-PID, created exclusively with mode 0666 & ~umask */
    snprintf(tmp, n + 32, "%s.tmp-%ld", path, (long)getpid());
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) < 0) {
        st = werr(w, SD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto out;
    }
    if (!(f = fdopen(fd, "wb"))) {
        st = werr(w, SD_ERR_IO, "%s: fdopen: %s", path, strerror(errno));
        close(fd);
        goto out;
    }
    sink s = {f, NULL, 0, 0};
    emit_all(w, &s);
    int e = errno;
    if (s.failed || s.pos != total) {
        st = werr(w, SD_ERR_IO, "%s: write failed: %s", path, strerror(e));
        fclose(f);
        goto out;
    }
    if (fclose(f) != 0) {
        st = werr(w, SD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        st = werr(w, SD_ERR_IO, "%s: cannot rename the temporary file into place: %s", path,
                  strerror(errno));
        goto out;
    }
    free(tmp);
    tmp = NULL;
out:
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    if (st && err && err_size) snprintf(err, err_size, "%s", w->err);
    return st;
}
