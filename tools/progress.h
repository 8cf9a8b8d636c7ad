/* progress.h - a one-line progress meter for the long-running commands
 * (bench, perplexity, quantize, vocabtrim, ngram-build).
 *
 * On a terminal (isatty(STDERR_FILENO)) the meter redraws one stderr line
 * with '\r', at most 5 times a second and not before 0.2 s have passed:
 *   perplexity: 12/40 chunks (30%), 1.2 s elapsed, ETA 2.8 s
 * and erases it again (tool_progress_clear, tool_progress_end), so that the
 * command's own output is what is left on the screen. When stderr is not a
 * terminal, tool_progress_begin returns NULL and every function does nothing
 * with NULL: redirected output stays byte for byte what it was without the
 * meter.
 *
 * All state is in the tool_progress object; one object per loop, used from
 * one thread. */
#ifndef SD_TOOLS_PROGRESS_H
#define SD_TOOLS_PROGRESS_H

#include <stdint.h>

typedef struct tool_progress tool_progress;

/* Starts a meter of total units named unit ("chunks"), labelled what (the
 * command's name); the clock starts now. NULL when stderr is not a terminal
 * (or out of memory). what and unit are borrowed: they must outlive the
 * meter. total <= 0: no percentage and no ETA, only the count. */
tool_progress *tool_progress_begin(const char *what, int64_t total, const char *unit);

/* Sets the total when it is known only once the work has started (a library
 * call's first progress callback). */
void tool_progress_set_total(tool_progress *p, int64_t total);

/* done units of the total are finished: redraws the line if 0.2 s have
 * passed since the last draw (or since begin). The ETA assumes the remaining
 * units take as long on average as the finished ones. */
void tool_progress_update(tool_progress *p, int64_t done);

/* A fixed text instead of the count, for work with no count to show (a
 * single library call): drawn at once, "what: text", until the next update,
 * clear or end. */
void tool_progress_status(tool_progress *p, const char *text);

/* Erases the line (if drawn) so that the caller can print to stderr; the
 * next update draws it again. */
void tool_progress_clear(tool_progress *p);

/* Erases the line and frees p. */
void tool_progress_end(tool_progress *p);

#endif
