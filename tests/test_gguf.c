/*
 * test_gguf.c - the hostile-input GGUF reader.
 *
 *  1. the shipped models and vocab files open and read back known values;
 *  2. a table of corrupt files (built in memory from a valid synthetic GGUF
 *     and patched) fails with the expected status, a message naming the
 *     offset, through both sd_gguf_open_mem and sd_gguf_open (mmap); every
 *     truncated prefix of the valid file fails;
 *  3. typed getters: right type, wrong type (SD_ERR_FORMAT), missing key
 *     (SD_ERR_NOT_FOUND).
 *
 * `test_gguf --write-corpus DIR` writes the synthetic seed files used by the
 * fuzz target (tests/fuzz_corpus/gguf/) and exits.
 */
#include "model/gguf.h"
#include "util/check.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ byte builder */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(buf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_f32(buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}

static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void patch(buf *b, size_t pos, int width, uint64_t v) {
    for (int i = 0; i < width && pos + (size_t)i < b->n; i++) b->p[pos + (size_t)i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------ synthetic file */

enum { N_KV = 12, N_T = 3 };
enum { KV_ARCH, KV_ALIGN, KV_U32, KV_F32, KV_TOKENS, KV_ARR_I32, KV_ARR_F32, KV_BOOL, KV_I64,
       KV_BIG, KV_X, KV_Y };

/* Positions of the fields of the synthetic file, for patching. */
typedef struct synth_layout {
    size_t kv_key[N_KV], kv_type[N_KV], kv_val[N_KV];
    size_t t_name[N_T], t_ndims[N_T], t_ne[N_T][4], t_type[N_T], t_off[N_T];
    size_t header_end, data_start;
} synth_layout;

/* align_mode: 0 general.alignment uint32 32, 1 absent (default 32),
 * 2 stored as a string, 3 stored as uint64. n_t: number of tensors (0 or 3). */
typedef struct synth_opts {
    int align_mode;
    int n_t;
} synth_opts;

static const char *k_tokens[] = {"<unk>", "<s>", "</s>", "hello"};

/* Tensors: t.a F32 (8, 4) at 0, t.b F16 (16, 2) at 128, t.c Q8_0 (64, 2) at 192. */
static const struct {
    const char *name;
    int type;
    int64_t ne0, ne1;
    uint64_t off, size;
} k_t[N_T] = {
    {"t.a", SD_TYPE_F32, 8, 4, 0, 128},
    {"t.b", SD_TYPE_F16, 16, 2, 128, 64},
    {"t.c", SD_TYPE_Q8_0, 64, 2, 192, 136},
};

/* Builds the valid synthetic GGUF into b (emptied first) and records where
 * each field is in L. The data bytes are a counter pattern. */
static void synth_build(buf *b, synth_layout *L, synth_opts o) {
    b->n = 0;
    memset(L, 0, sizeof *L);
    int n_kv = o.align_mode == 1 ? N_KV - 1 : N_KV;
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, (uint64_t)o.n_t);
    put_u64(b, (uint64_t)n_kv);
    for (int i = 0; i < N_KV; i++) {
        if (i == KV_ALIGN && o.align_mode == 1) continue;
        static const char *keys[N_KV] = {
            "general.architecture", "general.alignment", "test.u32", "test.f32",
            "tokenizer.ggml.tokens", "test.arr_i32", "test.arr_f32", "test.bool",
            "test.i64", "test.big", "test.key_x", "test.key_y"};
        L->kv_key[i] = b->n;
        put_str(b, keys[i]);
        L->kv_type[i] = b->n;
        switch (i) {
        case KV_ARCH: put_u32(b, SD_GGUF_STRING); L->kv_val[i] = b->n; put_str(b, "llama"); break;
        case KV_ALIGN:
            if (o.align_mode == 2) {
                put_u32(b, SD_GGUF_STRING); L->kv_val[i] = b->n; put_str(b, "32");
            } else if (o.align_mode == 3) {
                put_u32(b, SD_GGUF_UINT64); L->kv_val[i] = b->n; put_u64(b, 32);
            } else {
                put_u32(b, SD_GGUF_UINT32); L->kv_val[i] = b->n; put_u32(b, 32);
            }
            break;
        case KV_U32: put_u32(b, SD_GGUF_UINT32); L->kv_val[i] = b->n; put_u32(b, 7); break;
        case KV_F32: put_u32(b, SD_GGUF_FLOAT32); L->kv_val[i] = b->n; put_f32(b, 1.5f); break;
        case KV_TOKENS:
            put_u32(b, SD_GGUF_ARRAY); L->kv_val[i] = b->n;
            put_u32(b, SD_GGUF_STRING); put_u64(b, 4);
            for (int j = 0; j < 4; j++) put_str(b, k_tokens[j]);
            break;
        case KV_ARR_I32:
            put_u32(b, SD_GGUF_ARRAY); L->kv_val[i] = b->n;
            put_u32(b, SD_GGUF_INT32); put_u64(b, 2); put_u32(b, 2); put_u32(b, 4);
            break;
        case KV_ARR_F32:
            put_u32(b, SD_GGUF_ARRAY); L->kv_val[i] = b->n;
            put_u32(b, SD_GGUF_FLOAT32); put_u64(b, 2); put_f32(b, 0.5f); put_f32(b, -2.0f);
            break;
        case KV_BOOL: put_u32(b, SD_GGUF_BOOL); L->kv_val[i] = b->n; put(b, "\1", 1); break;
        case KV_I64: put_u32(b, SD_GGUF_INT64); L->kv_val[i] = b->n; put_u64(b, (uint64_t)-5); break;
        case KV_BIG: put_u32(b, SD_GGUF_UINT64); L->kv_val[i] = b->n; put_u64(b, 1ull << 40); break;
        default: put_u32(b, SD_GGUF_STRING); L->kv_val[i] = b->n; put_str(b, i == KV_X ? "x" : "y"); break;
        }
    }
    for (int i = 0; i < o.n_t; i++) {
        L->t_name[i] = b->n;
        put_str(b, k_t[i].name);
        L->t_ndims[i] = b->n;
        put_u32(b, 2);
        L->t_ne[i][0] = b->n;
        put_u64(b, (uint64_t)k_t[i].ne0);
        L->t_ne[i][1] = b->n;
        put_u64(b, (uint64_t)k_t[i].ne1);
        L->t_type[i] = b->n;
        put_u32(b, (uint32_t)k_t[i].type);
        L->t_off[i] = b->n;
        put_u64(b, k_t[i].off);
    }
    L->header_end = b->n;
    if (o.n_t == 0) return;  /* vocab-like: ends at the header */
    while (b->n % 32) put(b, "\0", 1);
    L->data_start = b->n;
    for (uint64_t i = 0; i < k_t[N_T - 1].off + k_t[N_T - 1].size; i++) {
        uint8_t x = (uint8_t)i;
        put(b, &x, 1);
    }
}

/* ------------------------------------------------------------ corrupt table */

/* Patchable fields; idx selects the kv or tensor, sub the dim / char. */
enum field {
    F_NONE, F_MAGIC, F_VERSION, F_NT, F_NKV, F_KEYLEN, F_KEYCH, F_KVTYPE, F_VAL32, F_VAL64,
    F_ARR_ETYPE, F_ARR_N, F_ARR_ELEMLEN, F_TNAMELEN, F_TNAMECH, F_NDIMS, F_NE, F_TTYPE, F_TOFF,
};

#define REM1 0xFFFFFFFFFFFFFF01ull  /* "bytes left after this length field, plus one" */

typedef struct patch_spec {
    enum field f;
    int idx, sub;
    uint64_t v;
} patch_spec;

typedef struct corrupt_case {
    const char *name;
    synth_opts opts;
    patch_spec p1, p2;
    long trunc;               /* > 0: drop this many bytes from the end; < 0: append zeros */
    sd_status want;
    const char *msg;          /* expected substring                      */
    int at_patch;             /* message must name the last patch's offset */
} corrupt_case;

/* Position and width of a field in the synthetic file. */
static size_t field_pos(const synth_layout *L, patch_spec p, int *width) {
    *width = 8;
    switch (p.f) {
    case F_MAGIC: *width = 4; return 0;
    case F_VERSION: *width = 4; return 4;
    case F_NT: return 8;
    case F_NKV: return 16;
    case F_KEYLEN: return L->kv_key[p.idx];
    case F_KEYCH: *width = 1; return L->kv_key[p.idx] + 8 + (size_t)p.sub;
    case F_KVTYPE: *width = 4; return L->kv_type[p.idx];
    case F_VAL32: *width = 4; return L->kv_val[p.idx];
    case F_VAL64: return L->kv_val[p.idx];
    case F_ARR_ETYPE: *width = 4; return L->kv_val[p.idx];
    case F_ARR_N: return L->kv_val[p.idx] + 4;
    case F_ARR_ELEMLEN: return L->kv_val[p.idx] + 12;
    case F_TNAMELEN: return L->t_name[p.idx];
    case F_TNAMECH: *width = 1; return L->t_name[p.idx] + 8 + (size_t)p.sub;
    case F_NDIMS: *width = 4; return L->t_ndims[p.idx];
    case F_NE: return L->t_ne[p.idx][p.sub];
    case F_TTYPE: *width = 4; return L->t_type[p.idx];
    case F_TOFF: return L->t_off[p.idx];
    default: return 0;
    }
}

/* Applies p to b; returns the patched position. */
static size_t apply(buf *b, const synth_layout *L, patch_spec p) {
    int width;
    size_t pos = field_pos(L, p, &width);
    uint64_t v = p.v == REM1 ? (uint64_t)(b->n - pos - 8) + 1 : p.v;
    patch(b, pos, width, v);
    return pos;
}

#define T3 {0, 3}
#define P(f, i, s, v) {f, i, s, v}
#define NOP {F_NONE, 0, 0, 0}
#define FMT SD_ERR_FORMAT
#define UNS SD_ERR_UNSUPPORTED

static const corrupt_case k_cases[] = {
    {"bad magic", T3, P(F_MAGIC, 0, 0, 0x58554747), NOP, 0, FMT, "bad magic", 1},
    {"version 0", T3, P(F_VERSION, 0, 0, 0), NOP, 0, FMT, "unsupported GGUF version 0", 1},
    {"version 1", T3, P(F_VERSION, 0, 0, 1), NOP, 0, FMT, "unsupported GGUF version 1", 1},
    {"version 4", T3, P(F_VERSION, 0, 0, 4), NOP, 0, FMT, "unsupported GGUF version 4", 1},
    {"n_tensors 2^62", T3, P(F_NT, 0, 0, 1ull << 62), NOP, 0, FMT, "n_tensors", 1},
    {"n_tensors 2^32", T3, P(F_NT, 0, 0, 1ull << 32), NOP, 0, FMT, "n_tensors", 1},
    {"n_tensors max", T3, P(F_NT, 0, 0, UINT64_MAX), NOP, 0, FMT, "n_tensors", 1},
    {"n_kv 2^62", T3, P(F_NKV, 0, 0, 1ull << 62), NOP, 0, FMT, "n_kv", 1},
    {"n_kv 2^32", T3, P(F_NKV, 0, 0, 1ull << 32), NOP, 0, FMT, "n_kv", 1},
    {"n_kv max", T3, P(F_NKV, 0, 0, UINT64_MAX), NOP, 0, FMT, "n_kv", 1},
    {"n_kv one too many", T3, P(F_NKV, 0, 0, N_KV + 1), NOP, 0, FMT, "", 0},
    {"key length 2^63", T3, P(F_KEYLEN, KV_U32, 0, 1ull << 63), NOP, 0, FMT, "key length", 1},
    {"key length left+1", T3, P(F_KEYLEN, KV_U32, 0, REM1), NOP, 0, FMT, "key length", 1},
    {"key length 70000 (> 64 KiB)", T3, P(F_KEYLEN, KV_U32, 0, 70000), NOP, -80000, FMT, "exceeds the limit", 1},
    {"key length 0", T3, P(F_KEYLEN, KV_U32, 0, 0), NOP, 0, FMT, "empty key", 1},
    {"key with NUL", T3, P(F_KEYCH, KV_U32, 2, 0), NOP, 0, FMT, "NUL byte", 0},
    {"string length 2^63", T3, P(F_VAL64, KV_ARCH, 0, 1ull << 63), NOP, 0, FMT, "string value length", 1},
    {"string length left+1", T3, P(F_VAL64, KV_X, 0, REM1), NOP, 0, FMT, "string value length", 1},
    {"array count 2^63", T3, P(F_ARR_N, KV_TOKENS, 0, 1ull << 63), NOP, 0, FMT, "array of", 1},
    {"array count left+1", T3, P(F_ARR_N, KV_TOKENS, 0, REM1), NOP, 0, FMT, "array of", 1},
    {"i32 array count overflow", T3, P(F_ARR_N, KV_ARR_I32, 0, 1ull << 62), NOP, 0, FMT, "array of", 1},
    {"array string 2^63", T3, P(F_ARR_ELEMLEN, KV_TOKENS, 0, 1ull << 63), NOP, 0, FMT, "array string length", 1},
    {"array string left+1", T3, P(F_ARR_ELEMLEN, KV_TOKENS, 0, REM1), NOP, 0, FMT, "array string length", 1},
    {"unknown kv type 13", T3, P(F_KVTYPE, KV_U32, 0, 13), NOP, 0, FMT, "unknown value type 13", 1},
    {"unknown kv type max", T3, P(F_KVTYPE, KV_U32, 0, 0xFFFFFFFFu), NOP, 0, FMT, "unknown value type", 1},
    {"nested array", T3, P(F_ARR_ETYPE, KV_ARR_I32, 0, SD_GGUF_ARRAY), NOP, 0, FMT, "nested arrays", 1},
    {"unknown array elem type", T3, P(F_ARR_ETYPE, KV_ARR_I32, 0, 99), NOP, 0, FMT, "unknown array element type", 1},
    {"alignment as string", {2, 3}, NOP, NOP, 0, FMT, "general.alignment has type string", 0},
    {"alignment as uint64", {3, 3}, NOP, NOP, 0, FMT, "general.alignment has type uint64", 0},
    {"alignment 0", T3, P(F_VAL32, KV_ALIGN, 0, 0), NOP, 0, FMT, "not a nonzero power of two", 1},
    {"alignment 3", T3, P(F_VAL32, KV_ALIGN, 0, 3), NOP, 0, FMT, "not a nonzero power of two", 1},
    {"alignment 48", T3, P(F_VAL32, KV_ALIGN, 0, 48), NOP, 0, FMT, "not a nonzero power of two", 1},
    {"architecture as uint32", T3, P(F_KVTYPE, KV_ARCH, 0, SD_GGUF_UINT32), NOP, 0, FMT, "general.architecture has type uint32", 1},
    {"tensor name length 2^63", T3, P(F_TNAMELEN, 1, 0, 1ull << 63), NOP, 0, FMT, "tensor name length", 1},
    {"tensor name length left+1", T3, P(F_TNAMELEN, 1, 0, REM1), NOP, 0, FMT, "tensor name length", 1},
    {"tensor name with NUL", T3, P(F_TNAMECH, 1, 1, 0), NOP, 0, FMT, "NUL byte", 0},
    {"n_dims 0", T3, P(F_NDIMS, 0, 0, 0), NOP, 0, FMT, "n_dims 0", 1},
    {"n_dims 5", T3, P(F_NDIMS, 0, 0, 5), NOP, 0, FMT, "n_dims 5", 1},
    {"dims 2^62 x 2^62", T3, P(F_NE, 0, 0, 1ull << 62), P(F_NE, 0, 1, 1ull << 62), 0, FMT, "dims overflow", 1},
    {"negative dim", T3, P(F_NE, 1, 1, (uint64_t)-1), NOP, 0, FMT, "negative dim", 1},
    {"negative ne0", T3, P(F_NE, 0, 0, 1ull << 63), NOP, 0, FMT, "negative dim", 1},
    {"byte size overflow", T3, P(F_NE, 0, 0, 1ull << 60), NOP, 0, FMT, "byte size overflows", 1},
    {"tensor type 4", T3, P(F_TTYPE, 1, 0, 4), NOP, 0, UNS, "'t.b': unknown tensor type id 4", 1},
    {"tensor type 5", T3, P(F_TTYPE, 1, 0, 5), NOP, 0, UNS, "unknown tensor type id 5", 1},
    {"tensor type 31", T3, P(F_TTYPE, 1, 0, 31), NOP, 0, UNS, "unknown tensor type id 31", 1},
    {"tensor type 1000", T3, P(F_TTYPE, 1, 0, 1000), NOP, 0, UNS, "unknown tensor type id 1000", 1},
    {"tensor type max", T3, P(F_TTYPE, 1, 0, 0xFFFFFFFFu), NOP, 0, UNS, "unknown tensor type id 4294967295", 1},
    {"q8_0 ne0 33", T3, P(F_NE, 2, 0, 33), NOP, 0, FMT, "row size not a multiple of block size", 1},
    {"q4_K ne0 64", T3, P(F_TTYPE, 2, 0, SD_TYPE_Q4_K), NOP, 0, FMT, "row size not a multiple of block size (ne[0] = 64, q4_K block 256)", 0},
    {"q6_K ne0 64", T3, P(F_TTYPE, 2, 0, SD_TYPE_Q6_K), NOP, 0, FMT, "row size not a multiple of block size (ne[0] = 64, q6_K block 256)", 0},
    {"q5_0 ne0 16", T3, P(F_NE, 1, 0, 16), P(F_TTYPE, 1, 0, SD_TYPE_Q5_0), 0, FMT, "row size not a multiple of block size (ne[0] = 16, q5_0 block 32)", 0},
    {"offset misaligned", T3, P(F_TOFF, 1, 0, 129), NOP, 0, FMT, "not a multiple of the alignment", 1},
    {"offset beyond file", T3, P(F_TOFF, 1, 0, 1ull << 40), NOP, 0, FMT, "beyond the end of file", 1},
    {"offset near 2^64", T3, P(F_TOFF, 1, 0, UINT64_MAX - 31), NOP, 0, FMT, "beyond the end of file", 1},
    {"offset+size beyond file", T3, P(F_TOFF, 2, 0, 224), NOP, 0, FMT, "extends beyond the end of file", 1},
    {"tensors overlap", T3, P(F_TOFF, 1, 0, 96), NOP, 0, FMT, "overlaps tensor 't.a'", 1},
    {"same offset", T3, P(F_TOFF, 2, 0, 128), NOP, 0, FMT, "overlaps", 0},
    {"duplicate tensor name", T3, P(F_TNAMECH, 1, 2, 'a'), NOP, 0, FMT, "duplicate tensor name 't.a'", 0},
    {"duplicate key", T3, P(F_KEYCH, KV_Y, 9, 'x'), NOP, 0, FMT, "duplicate key 'test.key_x'", 0},
    {"last data byte missing", T3, NOP, NOP, 1, FMT, "extends beyond the end of file", 0},
};

/* Writes data to a fresh temp file; returns its malloc'd path or NULL. */
static char *write_temp(const void *data, size_t n) {
    const char *dir = getenv("TMPDIR");
    char *path = malloc(4096);
    if (!path) return NULL;
    snprintf(path, 4096, "%s/test_gguf_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) { free(path); return NULL; }
    ssize_t w = n ? write(fd, data, n) : 0;
    close(fd);
    if (w != (ssize_t)n) { unlink(path); free(path); return NULL; }
    return path;
}

/* Opens data from memory and from a temp file; both must fail with want and
 * a message containing msg and "offset" (and at if non-NULL). */
static void expect_fail(const char *what, const uint8_t *data, size_t n, sd_status want,
                        const char *msg, const char *at) {
    char err[512];
    sd_gguf *g = NULL;
    sd_status st = sd_gguf_open_mem(data, n, "corrupt.gguf", &g, err, sizeof err);
    CHECK(st == want, "%s: open_mem status %d (%s), want %d; msg: %s", what, st,
          sd_status_str(st), want, err);
    CHECK(g == NULL, "%s: reader returned on failure", what);
    CHECK(err[0] != '\0' && strstr(err, "offset"), "%s: message lacks offset: '%s'", what, err);
    CHECK(strstr(err, msg) != NULL, "%s: message '%s' lacks '%s'", what, err, msg);
    CHECK(strncmp(err, "corrupt.gguf: ", 14) == 0, "%s: message lacks file name: '%s'", what, err);
    if (at) CHECK(strstr(err, at) != NULL, "%s: message '%s' lacks '%s'", what, err, at);
    sd_gguf_close(g);

    char *path = write_temp(data, n);
    CHECK(path != NULL, "%s: cannot write temp file", what);
    if (!path) return;
    char err2[512];
    g = NULL;
    st = sd_gguf_open(path, &g, err2, sizeof err2);
    CHECK(st == want, "%s: mmap open status %d, want %d; msg: %s", what, st, want, err2);
    CHECK(g == NULL, "%s: mmap reader returned on failure", what);
    CHECK(strstr(err2, msg) && strstr(err2, "offset") && strstr(err2, path),
          "%s: mmap message '%s'", what, err2);
    /* same text after the file name */
    const char *a = strstr(err, ": offset"), *b2 = strstr(err2, ": offset");
    CHECK(a && b2 && strcmp(a, b2) == 0, "%s: mem/mmap messages differ: '%s' vs '%s'", what, err, err2);
    sd_gguf_close(g);
    unlink(path);
    free(path);
}

static void test_corrupt_table(void) {
    buf b = {0};
    synth_layout L;
    int n_cases = (int)(sizeof k_cases / sizeof k_cases[0]);
    for (int i = 0; i < n_cases; i++) {
        const corrupt_case *c = &k_cases[i];
        synth_build(&b, &L, c->opts);
        size_t pos = 0;
        if (c->p1.f != F_NONE) pos = apply(&b, &L, c->p1);
        if (c->p2.f != F_NONE) pos = apply(&b, &L, c->p2);
        if (c->trunc > 0) b.n -= (size_t)c->trunc;
        for (long z = 0; z < -c->trunc; z++) put(&b, "", 1);
        char at[64];
        snprintf(at, sizeof at, "offset %zu:", pos);
        expect_fail(c->name, b.p, b.n, c->want, c->msg, c->at_patch ? at : NULL);
    }
    CHECK(n_cases >= 35, "only %d corrupt cases", n_cases);
    fprintf(stderr, "corrupt table: %d cases\n", n_cases);

    /* every proper prefix of the valid file is corrupt */
    synth_build(&b, &L, (synth_opts){0, 3});
    size_t full = b.n;
    int n_prefix_fail = 0;
    for (size_t n = 0; n < full; n++) {
        char err[512];
        sd_gguf *g = NULL;
        sd_status st = sd_gguf_open_mem(b.p, n, "prefix.gguf", &g, err, sizeof err);
        int ok = st == SD_ERR_FORMAT && g == NULL && strstr(err, "offset") != NULL;
        if (!ok) {
            n_prefix_fail++;
            CHECK(ok, "prefix %zu/%zu: status %d, msg '%s'", n, full, st, err);
        }
        sd_gguf_close(g);
    }
    CHECK(n_prefix_fail == 0, "%d prefixes misjudged", n_prefix_fail);
    /* and the mmap path on a sample of prefixes, including empty */
    for (size_t n = 0; n < full; n += 37)
        expect_fail("prefix (mmap)", b.p, n, SD_ERR_FORMAT, "", NULL);
    fprintf(stderr, "truncation: %zu prefixes\n", full);
    free(b.p);
}

/* ------------------------------------------------------------ valid synthetic */

static void test_synthetic_valid(void) {
    buf b = {0};
    synth_layout L;
    char err[512];
    sd_gguf *g = NULL;
    synth_build(&b, &L, (synth_opts){0, 3});
    sd_status st = sd_gguf_open_mem(b.p, b.n, "synth.gguf", &g, err, sizeof err);
    CHECK(st == SD_OK, "valid synthetic file: %s", err);
    if (st) { free(b.p); return; }
    CHECK(sd_gguf_version(g) == 3, "version");
    CHECK(sd_gguf_alignment(g) == 32, "alignment");
    CHECK(sd_gguf_n_kv(g) == N_KV, "n_kv %lld", (long long)sd_gguf_n_kv(g));
    CHECK(sd_gguf_n_tensors(g) == N_T, "n_tensors");
    CHECK(strcmp(sd_gguf_name(g), "synth.gguf") == 0, "name");
    for (int i = 0; i < N_T; i++) {
        const sd_gguf_tensor *t = sd_gguf_find_tensor(g, k_t[i].name);
        CHECK(t != NULL, "tensor %s missing", k_t[i].name);
        if (!t) continue;
        CHECK(t == sd_gguf_tensor_at(g, i), "tensor order");
        CHECK(t->type == k_t[i].type && t->n_dims == 2 && t->ne[0] == k_t[i].ne0 &&
                  t->ne[1] == k_t[i].ne1 && t->ne[2] == 1 && t->ne[3] == 1,
              "tensor %s shape/type", t->name);
        CHECK(t->size == k_t[i].size, "tensor %s size %llu", t->name, (unsigned long long)t->size);
        CHECK((const uint8_t *)t->data == b.p + L.data_start + k_t[i].off, "tensor %s data", t->name);
        CHECK(((const uint8_t *)t->data)[0] == (uint8_t)k_t[i].off, "tensor %s first byte", t->name);
    }
    CHECK(sd_gguf_find_tensor(g, "t.d") == NULL && sd_gguf_find_tensor(g, "") == NULL, "absent tensor");
    CHECK(sd_gguf_tensor_at(g, -1) == NULL && sd_gguf_tensor_at(g, N_T) == NULL, "tensor_at range");

    /* ---- getters */
    uint32_t u32 = 0;
    int32_t i32 = 0;
    int64_t i64 = 0;
    float f = 0;
    bool bl = false;
    sd_gguf_str s = {0};
    CHECK(sd_gguf_get_u32(g, "test.u32", &u32, err, sizeof err) == SD_OK && u32 == 7, "u32");
    CHECK(sd_gguf_get_i64(g, "test.u32", &i64, err, sizeof err) == SD_OK && i64 == 7, "u32 as i64");
    CHECK(sd_gguf_get_i32(g, "test.i64", &i32, err, sizeof err) == SD_OK && i32 == -5, "i64 as i32");
    CHECK(sd_gguf_get_u32(g, "test.i64", &u32, err, sizeof err) == SD_ERR_FORMAT, "-5 as u32");
    CHECK(sd_gguf_get_u32(g, "test.big", &u32, err, sizeof err) == SD_ERR_FORMAT &&
              strstr(err, "out of range"), "2^40 as u32: %s", err);
    CHECK(sd_gguf_get_i64(g, "test.big", &i64, err, sizeof err) == SD_OK && i64 == (1ll << 40), "big i64");
    CHECK(sd_gguf_get_f32(g, "test.f32", &f, err, sizeof err) == SD_OK && f == 1.5f, "f32");
    CHECK(sd_gguf_get_f32(g, "test.u32", &f, err, sizeof err) == SD_ERR_FORMAT &&
              strstr(err, "test.u32"), "u32 as f32: %s", err);
    CHECK(sd_gguf_get_u32(g, "test.f32", &u32, err, sizeof err) == SD_ERR_FORMAT, "f32 as u32");
    CHECK(sd_gguf_get_u32(g, "general.architecture", &u32, err, sizeof err) == SD_ERR_FORMAT, "str as u32");
    CHECK(sd_gguf_get_u32(g, "test.bool", &u32, err, sizeof err) == SD_ERR_FORMAT, "bool as u32");
    CHECK(sd_gguf_get_str(g, "general.architecture", &s, err, sizeof err) == SD_OK &&
              s.len == 5 && memcmp(s.ptr, "llama", 5) == 0, "arch str");
    CHECK(sd_gguf_get_str(g, "test.u32", &s, err, sizeof err) == SD_ERR_FORMAT, "u32 as str");
    CHECK(sd_gguf_get_str(g, "tokenizer.ggml.tokens", &s, err, sizeof err) == SD_ERR_FORMAT, "arr as str");
    CHECK(sd_gguf_get_bool(g, "test.bool", &bl, err, sizeof err) == SD_OK && bl, "bool");
    CHECK(sd_gguf_get_bool(g, "test.u32", &bl, err, sizeof err) == SD_ERR_FORMAT, "u32 as bool");
    CHECK(sd_gguf_get_i32(g, "tokenizer.ggml.tokens", &i32, NULL, 0) == SD_ERR_FORMAT, "arr as i32, no err buf");

    /* hyper-parameters in a range: value, default, required, range, type */
    int hp = 0;
    CHECK(sd_gguf_get_int_in(g, "test.u32", true, 0, 1, 8, &hp, err, sizeof err) == SD_OK && hp == 7, "int_in 7");
    CHECK(sd_gguf_get_int_in(g, "no.such", false, 42, 1, 8, &hp, err, sizeof err) == SD_OK && hp == 42,
          "int_in default (not range-checked)");
    CHECK(sd_gguf_get_int_in(g, "no.such", true, 0, 1, 8, &hp, err, sizeof err) == SD_ERR_FORMAT &&
              strstr(err, "missing key no.such"), "int_in required: %s", err);
    CHECK(sd_gguf_get_int_in(g, "test.u32", true, 0, 8, 9, &hp, err, sizeof err) == SD_ERR_FORMAT &&
              strstr(err, "test.u32 = 7 out of range [8, 9]"), "int_in below: %s", err);
    CHECK(sd_gguf_get_int_in(g, "test.big", true, 0, 0, 1 << 30, &hp, err, sizeof err) == SD_ERR_FORMAT,
          "int_in 2^40 above an int range");
    CHECK(sd_gguf_get_int_in(g, "test.i64", true, 0, -5, -5, &hp, err, sizeof err) == SD_OK && hp == -5, "int_in -5");
    CHECK(sd_gguf_get_int_in(g, "test.f32", true, 0, 0, 9, &hp, err, sizeof err) == SD_ERR_FORMAT, "int_in f32 type");
    CHECK(sd_gguf_get_int_in(g, NULL, true, 0, 0, 9, &hp, err, sizeof err) == SD_ERR_INVALID_ARG, "int_in NULL key");
    f = 0.0f;
    CHECK(sd_gguf_get_f32_in(g, "test.f32", 0.0f, 1.0f, 2.0f, &f, err, sizeof err) == SD_OK && f == 1.5f, "f32_in");
    CHECK(sd_gguf_get_f32_in(g, "no.such", 3.0f, 1.0f, 2.0f, &f, err, sizeof err) == SD_OK && f == 3.0f, "f32_in default");
    CHECK(sd_gguf_get_f32_in(g, "test.f32", 0.0f, 2.0f, 3.0f, &f, err, sizeof err) == SD_ERR_FORMAT &&
              strstr(err, "test.f32 = 1.5 out of range"), "f32_in range: %s", err);
    CHECK(sd_gguf_get_f32_in(g, "test.u32", 0.0f, 0.0f, 9.0f, &f, err, sizeof err) == SD_ERR_FORMAT, "f32_in u32 type");

    /* missing keys: NOT_FOUND and *out untouched */
    u32 = 99;
    CHECK(sd_gguf_get_u32(g, "no.such", &u32, err, sizeof err) == SD_ERR_NOT_FOUND && u32 == 99, "missing u32");
    CHECK(sd_gguf_get_i32(g, "no.such", &i32, err, sizeof err) == SD_ERR_NOT_FOUND, "missing i32");
    CHECK(sd_gguf_get_i64(g, "no.such", &i64, err, sizeof err) == SD_ERR_NOT_FOUND, "missing i64");
    CHECK(sd_gguf_get_f32(g, "no.such", &f, err, sizeof err) == SD_ERR_NOT_FOUND, "missing f32");
    CHECK(sd_gguf_get_bool(g, "no.such", &bl, err, sizeof err) == SD_ERR_NOT_FOUND, "missing bool");
    CHECK(sd_gguf_get_str(g, "no.such", &s, err, sizeof err) == SD_ERR_NOT_FOUND, "missing str");
    CHECK(sd_gguf_get_arr_n(g, "no.such", NULL, NULL, err, sizeof err) == SD_ERR_NOT_FOUND, "missing arr");
    CHECK(sd_gguf_get_arr_i32(g, "no.such", NULL, 0, NULL, err, sizeof err) == SD_ERR_NOT_FOUND, "missing arr i32");
    CHECK(sd_gguf_get_arr_f32(g, "no.such", NULL, 0, NULL, err, sizeof err) == SD_ERR_NOT_FOUND, "missing arr f32");

    /* arrays */
    sd_gguf_vtype et = SD_GGUF_VTYPE_COUNT;
    uint64_t n = 0;
    int32_t iv[4] = {0};
    float fv[4] = {0};
    CHECK(sd_gguf_get_arr_n(g, "tokenizer.ggml.tokens", &et, &n, err, sizeof err) == SD_OK &&
              et == SD_GGUF_STRING && n == 4, "tokens arr_n");
    CHECK(sd_gguf_get_arr_n(g, "test.u32", &et, &n, err, sizeof err) == SD_ERR_FORMAT, "scalar as arr");
    CHECK(sd_gguf_get_arr_i32(g, "test.arr_i32", iv, 4, &n, err, sizeof err) == SD_OK && n == 2 &&
              iv[0] == 2 && iv[1] == 4, "arr i32");
    CHECK(sd_gguf_get_arr_i32(g, "test.arr_i32", iv, 1, &n, err, sizeof err) == SD_ERR_FORMAT, "arr i32 cap");
    n = 0;
    CHECK(sd_gguf_get_arr_i32(g, "test.arr_i32", NULL, 0, &n, err, sizeof err) == SD_OK && n == 2, "arr i32 count only");
    CHECK(sd_gguf_get_arr_f32(g, "test.arr_f32", fv, 4, &n, err, sizeof err) == SD_OK && n == 2 &&
              fv[0] == 0.5f && fv[1] == -2.0f, "arr f32");
    CHECK(sd_gguf_get_arr_f32(g, "test.arr_i32", fv, 4, &n, err, sizeof err) == SD_OK &&
              fv[0] == 2.0f && fv[1] == 4.0f, "arr i32 as f32");
    CHECK(sd_gguf_get_arr_i32(g, "test.arr_f32", iv, 4, &n, err, sizeof err) == SD_ERR_FORMAT, "arr f32 as i32");
    CHECK(sd_gguf_get_arr_i32(g, "tokenizer.ggml.tokens", iv, 4, &n, err, sizeof err) == SD_ERR_FORMAT, "str arr as i32");
    CHECK(sd_gguf_get_arr_f32(g, "test.u32", fv, 4, &n, err, sizeof err) == SD_ERR_FORMAT, "scalar as arr f32");

    int64_t kt = sd_gguf_find_key(g, "tokenizer.ggml.tokens");
    CHECK(kt == KV_TOKENS, "find_key tokens %lld", (long long)kt);
    CHECK(sd_gguf_kv_type(g, kt) == SD_GGUF_ARRAY && sd_gguf_arr_type(g, kt) == SD_GGUF_STRING &&
              sd_gguf_arr_n(g, kt) == 4, "kv/arr type");
    for (int i = 0; i < 4; i++) {
        sd_gguf_str e = sd_gguf_arr_str(g, kt, (uint64_t)i);
        CHECK(e.ptr && e.len == strlen(k_tokens[i]) && memcmp(e.ptr, k_tokens[i], e.len) == 0,
              "token %d", i);
    }
    CHECK(sd_gguf_arr_str(g, kt, 4).ptr == NULL, "arr_str out of range");
    CHECK(sd_gguf_arr_str(g, KV_ARR_I32, 0).ptr == NULL, "arr_str on i32 array");
    CHECK(sd_gguf_arr_str(g, KV_U32, 0).ptr == NULL, "arr_str on scalar");
    CHECK(sd_gguf_arr_str(g, -1, 0).ptr == NULL && sd_gguf_arr_str(g, N_KV, 0).ptr == NULL, "arr_str kv range");
    CHECK(sd_gguf_key(g, -1) == NULL && sd_gguf_key(g, N_KV) == NULL, "key range");
    CHECK(sd_gguf_arr_type(g, KV_U32) == SD_GGUF_VTYPE_COUNT && sd_gguf_arr_n(g, KV_U32) == 0, "arr of scalar");
    for (int64_t i = 0; i < sd_gguf_n_kv(g); i++)
        CHECK(sd_gguf_find_key(g, sd_gguf_key(g, i)) == i, "find_key(key(%lld))", (long long)i);
    CHECK(sd_gguf_find_key(g, "general") == -1 && sd_gguf_find_key(g, "zzz") == -1, "absent key");
    sd_gguf_close(g);

    /* variants that are still valid */
    synth_build(&b, &L, (synth_opts){1, 3});
    st = sd_gguf_open_mem(b.p, b.n, "noalign.gguf", &g, err, sizeof err);
    CHECK(st == SD_OK && sd_gguf_alignment(g) == 32, "no alignment key: %s", err);
    sd_gguf_close(g);
    synth_build(&b, &L, (synth_opts){0, 0});
    st = sd_gguf_open_mem(b.p, b.n, "vocab.gguf", &g, err, sizeof err);
    CHECK(st == SD_OK && sd_gguf_n_tensors(g) == 0, "0 tensors ending at header: %s", err);
    sd_gguf_close(g);
    /* A value far out of range for its meaning (a token id of 2^40) is still
     * a valid GGUF: range checks belong to the model loader. */
    synth_build(&b, &L, (synth_opts){0, 3});
    patch(&b, L.kv_val[KV_BIG], 8, UINT64_MAX);
    st = sd_gguf_open_mem(b.p, b.n, "range.gguf", &g, err, sizeof err);
    CHECK(st == SD_OK, "out-of-range value is valid GGUF: %s", err);
    CHECK(st || sd_gguf_get_i64(g, "test.big", &i64, err, sizeof err) == SD_ERR_FORMAT, "u64 max as i64");
    sd_gguf_close(g);
    /* alignment 64: data moves, offsets stay multiples of 64 */
    synth_build(&b, &L, (synth_opts){0, 3});
    patch(&b, L.kv_val[KV_ALIGN], 4, 64);
    patch(&b, L.t_off[1], 8, 192);
    patch(&b, L.t_off[2], 8, 0);
    patch(&b, L.t_off[0], 8, 192 + 64 + 64);  /* [320, 448) : file data is only 328 */
    st = sd_gguf_open_mem(b.p, b.n, "a64.gguf", &g, err, sizeof err);
    CHECK(st == SD_ERR_FORMAT, "alignment 64 layout beyond file: %s", err);
    sd_gguf_close(g);
    free(b.p);
}

/* ------------------------------------------------------------ shipped files */

static void test_models(void) {
    char path[4096], err[512];
    sd_gguf *g = NULL;
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", test_model_dir());
    sd_status st = sd_gguf_open(path, &g, err, sizeof err);
    CHECK(st == SD_OK, "open %s: %s", path, err);
    if (st == SD_OK) {
        CHECK(sd_gguf_version(g) == 3, "version %u", sd_gguf_version(g));
        CHECK(sd_gguf_n_tensors(g) == 75, "n_tensors %lld", (long long)sd_gguf_n_tensors(g));
        CHECK(sd_gguf_n_kv(g) == 23, "n_kv %lld", (long long)sd_gguf_n_kv(g));
        uint32_t emb = 0;
        CHECK(sd_gguf_get_u32(g, "llama.embedding_length", &emb, err, sizeof err) == SD_OK && emb == 384,
              "embedding_length %u", emb);
        sd_gguf_vtype et;
        uint64_t n = 0;
        CHECK(sd_gguf_get_arr_n(g, "tokenizer.ggml.tokens", &et, &n, err, sizeof err) == SD_OK &&
                  et == SD_GGUF_STRING && n == 8192, "tokens: n %llu", (unsigned long long)n);
        sd_gguf_str s = sd_gguf_arr_str(g, sd_gguf_find_key(g, "tokenizer.ggml.tokens"), 1);
        CHECK(s.len == 3 && memcmp(s.ptr, "<s>", 3) == 0, "token 1");
        const sd_gguf_tensor *t = sd_gguf_find_tensor(g, "blk.0.attn_q.weight");
        CHECK(t && t->n_dims == 2 && t->ne[0] == 384 && t->ne[1] == 384 && t->type == SD_TYPE_F16 &&
                  t->size == 384 * 384 * 2, "blk.0.attn_q.weight");
        int32_t ee[8] = {0};
        CHECK(sd_gguf_get_arr_i32(g, "specdec.early_exit_layers", ee, 8, &n, err, sizeof err) == SD_OK &&
                  n == 2 && ee[0] == 2 && ee[1] == 4, "early_exit_layers: %s", err);
        /* every tensor's data inside the mapping and aligned */
        const uint8_t *lo = NULL, *hi = NULL;
        int bad = 0;
        for (int64_t i = 0; i < sd_gguf_n_tensors(g); i++) {
            const sd_gguf_tensor *ti = sd_gguf_tensor_at(g, i);
            if ((uintptr_t)ti->data % sd_gguf_alignment(g) != 0) bad++;
            if (!lo || (const uint8_t *)ti->data < lo) lo = ti->data;
            if ((const uint8_t *)ti->data + ti->size > hi) hi = (const uint8_t *)ti->data + ti->size;
        }
        CHECK(bad == 0, "%d tensors misaligned", bad);
        CHECK(t && (const uint8_t *)t->data >= lo && (const uint8_t *)t->data + t->size <= hi,
              "attn_q data inside the mapping");
        sd_gguf_close(g);
    }

    snprintf(path, sizeof path, "%s/kernel-c-draft.gguf", test_model_dir());
    g = NULL;
    st = sd_gguf_open(path, &g, err, sizeof err);
    CHECK(st == SD_OK, "open %s: %s", path, err);
    sd_gguf_close(g);
}

/* Opens every *.gguf file in dir; returns how many opened. */
static int open_all(const char *dir, int want_tensors) {
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot list %s", dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf") != 0) continue;
        char path[4096], err[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        sd_gguf *g = NULL;
        sd_status st = sd_gguf_open(path, &g, err, sizeof err);
        CHECK(st == SD_OK, "open %s: %s", path, err);
        if (st == SD_OK) {
            n++;
            if (want_tensors == 0)
                CHECK(sd_gguf_n_tensors(g) == 0, "%s has %lld tensors", path, (long long)sd_gguf_n_tensors(g));
            else
                CHECK(sd_gguf_n_tensors(g) > 0, "%s has no tensors", path);
            /* walk everything once */
            for (int64_t k = 0; k < sd_gguf_n_kv(g); k++)
                for (uint64_t j = 0; j < sd_gguf_arr_n(g, k) && sd_gguf_arr_type(g, k) == SD_GGUF_STRING; j++)
                    CHECK(sd_gguf_arr_str(g, k, j).ptr != NULL, "%s kv %lld elem %llu", path, (long long)k,
                          (unsigned long long)j);
        }
        sd_gguf_close(g);
    }
    closedir(d);
    return n;
}

static void test_shipped_dirs(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/quant", test_model_dir());
    int nq = open_all(dir, 1);
    /* ../shared ships 4 quantized files and 11 vocabularies (its READMEs);
     * every file there must open (open_all), and none may be missing (the
     * vocab floor was 9) */
    CHECK(nq >= 4, "only %d quant files opened", nq);
    snprintf(dir, sizeof dir, "%s/vocab", test_shared_dir());
    int nv = open_all(dir, 0);
    CHECK(nv >= 11, "only %d vocab files opened", nv);
    fprintf(stderr, "opened %d quant and %d vocab files\n", nq, nv);
}

static void test_io_errors(void) {
    char err[512];
    sd_gguf *g = NULL;
    CHECK(sd_gguf_open("/nonexistent/x.gguf", &g, err, sizeof err) == SD_ERR_IO && g == NULL, "missing file");
    CHECK(sd_gguf_open(".", &g, err, sizeof err) == SD_ERR_IO && g == NULL && strstr(err, "regular"),
          "directory: %s", err);
    CHECK(sd_gguf_open_mem(NULL, 0, "empty", &g, err, sizeof err) == SD_ERR_FORMAT, "empty buffer");
    CHECK(sd_gguf_open_mem("GG", 2, "x", NULL, err, sizeof err) == SD_ERR_INVALID_ARG, "NULL out");
    /* tiny error buffers must not overflow */
    char tiny[8];
    CHECK(sd_gguf_open_mem("GGUF", 4, "a-long-file-name.gguf", &g, tiny, sizeof tiny) == SD_ERR_FORMAT &&
              strlen(tiny) == 7, "tiny err buffer");
    CHECK(sd_gguf_open_mem("GGUF", 4, "x", &g, NULL, 0) == SD_ERR_FORMAT, "NULL err buffer");
}

static void test_types(void) {
    CHECK(strcmp(sd_type_name(SD_TYPE_F32), "f32") == 0 && strcmp(sd_type_name(SD_TYPE_Q8_0), "q8_0") == 0 &&
              strcmp(sd_type_name(SD_TYPE_Q4_K), "q4_K") == 0 && strcmp(sd_type_name(SD_TYPE_BF16), "bf16") == 0,
          "type names");
    CHECK(sd_type_name(4) == NULL && sd_type_name(5) == NULL && sd_type_name(31) == NULL &&
              sd_type_name(-1) == NULL && sd_type_name(1000) == NULL, "unknown type names");
    CHECK(sd_type_row_size(SD_TYPE_Q8_0, 64) == 68 && sd_type_row_size(SD_TYPE_Q8_0, 33) == 0 &&
              sd_type_row_size(SD_TYPE_F16, 3) == 6 && sd_type_row_size(SD_TYPE_Q6_K, 512) == 420 &&
              sd_type_row_size(4, 32) == 0 && sd_type_row_size(SD_TYPE_F32, -4) == 0,
          "row sizes");
    const sd_type_info *ti = sd_type_get_info(SD_TYPE_Q4_0);
    CHECK(ti && ti->block_size == 32 && ti->type_size == 18, "q4_0 info");
}

/* Writes the seed corpus for the fuzz target into dir. */
static int write_corpus(const char *dir) {
    buf b = {0};
    synth_layout L;
    static const struct { const char *file; synth_opts o; } seeds[] = {
        {"synth-3-tensors.gguf", {0, 3}},
        {"synth-default-align.gguf", {1, 3}},
        {"synth-vocab-only.gguf", {0, 0}},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        synth_build(&b, &L, seeds[i].o);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, seeds[i].file);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(b.p, 1, b.n, f) != b.n) {
            fprintf(stderr, "cannot write %s\n", path);
            if (f) fclose(f);
            free(b.p);
            return 1;
        }
        fclose(f);
    }
    free(b.p);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) return write_corpus(argv[2]);
    test_types();
    test_io_errors();
    test_synthetic_valid();
    test_corrupt_table();
    test_models();
    test_shipped_dirs();
    return check_report("test_gguf");
}
