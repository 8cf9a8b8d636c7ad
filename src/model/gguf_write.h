/*
 * gguf_write.h - GGUF v3 writer.
 *
 * Build a file in memory, then write it:
 *
 *   sd_gguf_writer *w;
 *   sd_gguf_writer_new(&w);
 *   sd_gguf_writer_copy_kvs(w, reader);               // every kv of a file
 *   sd_gguf_writer_set_u32(w, "general.file_type", 7); // replace or append
 *   sd_gguf_writer_add_tensor(w, "x.weight", SD_TYPE_Q8_0, 2, ne, data, size, false);
 *   sd_gguf_writer_write(w, "out.gguf", err, sizeof err);
 *   sd_gguf_writer_free(w);
 *
 * Layout written (the GGUF spec): header (magic, version 3, n_tensors,
 * n_kv), the kvs in insertion order, the tensor infos in insertion order,
 * padding to the alignment, the tensor data in insertion order, each at an
 * offset that is a multiple of the alignment (general.alignment if that
 * key is set, as a uint32 power of two, else 32), zero padding between.
 *
 * Every setter validates its input (key/name length and bytes, value type,
 * dims, the data size against the type's row size) with overflow-safe
 * arithmetic and returns an error with a message from
 * sd_gguf_writer_error(); a failed call leaves the writer as it was.
 * Setting a key that exists replaces its value in place (order kept).
 * Nothing here exits or aborts. Values are taken in host byte order; the
 * file is little-endian (the engine targets little-endian hosts only, as
 * the reader does).
 */
#ifndef SD_GGUF_WRITE_H
#define SD_GGUF_WRITE_H

#include "model/gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sd_gguf_writer sd_gguf_writer;

sd_status sd_gguf_writer_new(sd_gguf_writer **out);
void sd_gguf_writer_free(sd_gguf_writer *w);
/* Message of the last failed call ("" if none). */
const char *sd_gguf_writer_error(const sd_gguf_writer *w);

/* ---- key/values */
/* A scalar of type t (not STRING/ARRAY); val points at a value of the C
 * type of that size (uint8_t .. double; bool as one byte 0/1). */
sd_status sd_gguf_writer_set_scalar(sd_gguf_writer *w, const char *key, sd_gguf_vtype t,
                                    const void *val);
sd_status sd_gguf_writer_set_u32(sd_gguf_writer *w, const char *key, uint32_t v);
sd_status sd_gguf_writer_set_i32(sd_gguf_writer *w, const char *key, int32_t v);
sd_status sd_gguf_writer_set_f32(sd_gguf_writer *w, const char *key, float v);
sd_status sd_gguf_writer_set_bool(sd_gguf_writer *w, const char *key, bool v);
/* s[0..len) (any bytes). */
sd_status sd_gguf_writer_set_str(sd_gguf_writer *w, const char *key, const char *s, size_t len);
/* Array of n numeric or bool elements of type t, elements packed in host
 * order at data (n * size of t bytes). */
sd_status sd_gguf_writer_set_arr(sd_gguf_writer *w, const char *key, sd_gguf_vtype t,
                                 const void *data, uint64_t n);
/* Array of n strings: strs[i][0..lens[i]). */
sd_status sd_gguf_writer_set_arr_str(sd_gguf_writer *w, const char *key, const char *const *strs,
                                     const uint64_t *lens, uint64_t n);
/* kv i of a reader, value bytes copied unchanged (any type). */
sd_status sd_gguf_writer_copy_kv(sd_gguf_writer *w, const sd_gguf *g, int64_t i);
/* Every kv of a reader, in its order. */
sd_status sd_gguf_writer_copy_kvs(sd_gguf_writer *w, const sd_gguf *g);
/* Removes key if present (SD_OK either way). */
sd_status sd_gguf_writer_remove_kv(sd_gguf_writer *w, const char *key);
int64_t sd_gguf_writer_n_kv(const sd_gguf_writer *w);

/* ---- tensors */
/* Adds tensor name of type (a known ggml type id) with n_dims (1..4) dims
 * ne (ne[0] contiguous, a multiple of the type's block size); data holds
 * size bytes, which must equal the tensor's byte size. With own = false
 * the data is borrowed and must stay valid until the last write; with own
 * = true the writer takes the malloc'd buffer and frees it (also when the
 * call fails). Duplicate names are rejected. */
sd_status sd_gguf_writer_add_tensor(sd_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                    const int64_t *ne, const void *data, uint64_t size, bool own);
int64_t sd_gguf_writer_n_tensors(const sd_gguf_writer *w);

/* ---- output */
/* Writes the file to path: into a temporary file in the same directory,
 * renamed over path on success (no partial file is left on failure).
 * SD_ERR_IO with a message (in err and sd_gguf_writer_error) on failure. */
sd_status sd_gguf_writer_write(sd_gguf_writer *w, const char *path, char *err, size_t err_size);
/* The same bytes into a malloc'd buffer (*out, *size; caller frees). */
sd_status sd_gguf_writer_write_mem(sd_gguf_writer *w, void **out, size_t *size);

#endif
