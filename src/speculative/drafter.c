/* drafter.c - the generic wrapper around drafter implementations. */
#include <stdlib.h>
#include <time.h>

#include "speculative/drafter.h"

sd_drafter *sd_drafter_make(const char *name, const sd_drafter_ops *ops, void *self) {
    sd_drafter *d = calloc(1, sizeof *d);
    if (!d) {
        if (ops && ops->free) ops->free(self);
        return NULL;
    }
    d->name = name;
    d->ops = ops;
    d->self = self;
    return d;
}

void sd_drafter_free(sd_drafter *d) {
    if (!d) return;
    if (d->ops && d->ops->free) d->ops->free(d->self);
    free(d);
}

const char *sd_drafter_name(const sd_drafter *d) { return d ? d->name : "none"; }

double sd_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
