/* status.c - names of status codes and types. */
#include "specdec.h"

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
