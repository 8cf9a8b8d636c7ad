/* progress.c - the progress meter of the long-running commands (see
 * progress.h). */
#include "progress.h"

#include "common.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Redraw interval: at most 5 lines a second, and none for work that ends
 * within the first interval (no flash of a line that is erased at once). */
#define REDRAW_MS 200.0

struct tool_progress {
    const char *what, *unit;
    int64_t total;
    double t_begin, t_drawn; /* ms; t_drawn: the last draw (begin until then) */
    bool drawn;              /* the line is on the screen                       */
};

/* "4.2 s", "3m05s", "2h07m": short enough for one line, precise enough for
 * a wait. */
static void fmt_duration(char *buf, size_t size, double ms) {
    double s = ms / 1e3;
    if (s < 0) s = 0;
    if (s < 60) snprintf(buf, size, "%.1f s", s);
    else if (s < 3600) snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

/* Writes '\r' + line + erase-to-end-of-line in one write, cut to the
 * terminal's width so that it never wraps ('\r' returns to the start of the
 * last screen row only). */
static void draw(tool_progress *p, const char *line) {
    char buf[512];
    size_t n = strlen(line);
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && n > (size_t)ws.ws_col - 1)
        n = (size_t)ws.ws_col - 1;
    if (n > sizeof buf - 8) n = sizeof buf - 8;
    buf[0] = '\r';
    memcpy(buf + 1, line, n);
    memcpy(buf + 1 + n, "\033[K", 3);
    fwrite(buf, 1, n + 4, stderr);
    fflush(stderr);
    p->drawn = true;
    p->t_drawn = tool_now_ms();
}

tool_progress *tool_progress_begin(const char *what, int64_t total, const char *unit) {
    if (!isatty(STDERR_FILENO)) return NULL;
    tool_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->what = what ? what : "";
    p->unit = unit ? unit : "";
    p->total = total;
    p->t_begin = p->t_drawn = tool_now_ms();
    return p;
}

void tool_progress_set_total(tool_progress *p, int64_t total) {
    if (p) p->total = total;
}

void tool_progress_update(tool_progress *p, int64_t done) {
    if (!p) return;
    double now = tool_now_ms();
    if (now - p->t_drawn < REDRAW_MS) return;
    double elapsed = now - p->t_begin;
    char el[32], line[400];
    fmt_duration(el, sizeof el, elapsed);
    if (p->total > 0) {
        int64_t d = done < 0 ? 0 : done > p->total ? p->total : done;
        int n = snprintf(line, sizeof line, "%s: %lld/%lld %s (%d%%), %s elapsed", p->what, (long long)d,
                         (long long)p->total, p->unit, (int)(100 * d / p->total), el);
        if (d > 0 && n > 0 && (size_t)n < sizeof line) {
            char eta[32];
            fmt_duration(eta, sizeof eta, elapsed * (double)(p->total - d) / (double)d);
            snprintf(line + n, sizeof line - (size_t)n, ", ETA %s", eta);
        }
    } else {
        snprintf(line, sizeof line, "%s: %lld %s, %s elapsed", p->what, (long long)done, p->unit, el);
    }
    draw(p, line);
}

void tool_progress_status(tool_progress *p, const char *text) {
    if (!p) return;
    char line[400];
    snprintf(line, sizeof line, "%s: %s", p->what, text ? text : "");
    draw(p, line);
}

void tool_progress_clear(tool_progress *p) {
    if (!p || !p->drawn) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = false;
}

void tool_progress_end(tool_progress *p) {
    tool_progress_clear(p);
    free(p);
}
