/*
 * err.h - error messages into the caller's buffer. Library calls take an
 * optional (err, err_size) pair (NULL or 0: no message); these fill it.
 * Defined in status.c.
 */
#ifndef SD_ERR_H
#define SD_ERR_H

#include <stddef.h>

#include "specdec.h"

/* Formats the message into err (truncated to err_size; nothing if err is
 * NULL or err_size 0). */
void sd_set_err(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* sd_set_err, then returns st: `return sd_fail(SD_ERR_FORMAT, err, n, ...)`. */
sd_status sd_fail(sd_status st, char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
