/*
 * The one escaper for every human-facing string that came from the
 * repository or a host, on stdout and stderr (plan and hosts text, plumb
 * config, every diagnostic): a pull request or a host must not be able to
 * move the cursor, retitle the terminal or hide text.
 *
 * Escaped as \xNN, byte by byte: C0 controls, DEL, C1 controls (U+0080–U+009F,
 * which some terminals act on) and every byte that is not part of valid UTF-8
 * (overlong forms, surrogates, stray continuation bytes). Everything else,
 * printable ASCII and valid UTF-8, is copied as it is.
 *
 * Both functions append to out (the caller's sbuf); s may be NULL (nothing).
 */
#ifndef PLUMB_STATE_ESCAPE_H
#define PLUMB_STATE_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

#include "state/util.h"

/* One field on one line: newline and tab are escaped too. */
void esc_text(struct sbuf *out, const char *s);
/* Multi-line text of len bytes (may hold NULs): newline and tab are kept. */
void esc_lines(struct sbuf *out, const char *s, size_t len);
/* fprintf(stderr, fmt, ...) with the result escaped as esc_lines does: for
 * messages whose arguments quote the repository or a host. */
void esc_eprintf(const char *fmt, ...) PLUMB_PRINTF(1, 2);
/* The same to f; and fputs(s, f) escaped as esc_lines does (s may be NULL). */
void esc_fprintf(FILE *f, const char *fmt, ...) PLUMB_PRINTF(2, 3);
void esc_fputs(const char *s, FILE *f);

#endif
