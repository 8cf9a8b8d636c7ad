/* status.c - names of status codes and types; error messages (err.h). */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"
#include "specdec.h"

void sd_set_err(char *err, size_t err_size, const char *fmt, ...) {
    if (!err || err_size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

sd_status sd_fail(sd_status st, char *err, size_t err_size, const char *fmt, ...) {
    if (!err || err_size == 0) return st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return st;
}

const char *sd_status_str(int status) {
    switch (status) {
    case SD_OK: return "ok";
    case SD_ERR_INVALID_ARG: return "invalid argument";
    case SD_ERR_IO: return "I/O error";
    case SD_ERR_FORMAT: return "malformed file";
    case SD_ERR_UNSUPPORTED: return "unsupported";
    case SD_ERR_NOMEM: return "out of memory";
    case SD_ERR_NOT_FOUND: return "not found";
    case SD_ERR_CTX_FULL: return "context full";
    case SD_ERR_MISMATCH: return "mismatch";
    default: return "unknown status";
    }
}
