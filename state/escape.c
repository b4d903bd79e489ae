/* Escaping repository and host strings for a terminal (see escape.h). */
#include "state/escape.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void esc_bytes(struct sbuf *out, const unsigned char *p, size_t len, int keep_lines)
{
	size_t i = 0;

	while (i < len) {
		size_t k = util_utf8_valid_len(p + i, len - i);
		int c1 = k == 2 && p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f;
		int plain = k == 1 && p[i] >= 0x20 && p[i] != 0x7f;

		if (k == 1 && keep_lines && (p[i] == '\n' || p[i] == '\t'))
			plain = 1;
		if (plain || (k > 1 && !c1)) {
			sbuf_add(out, p + i, k);
		} else {
			k = k ? k : 1;
			for (size_t j = 0; j < k; j++)
				sbuf_addf(out, "\\x%02x", p[i + j]);
		}
		i += k;
	}
}

void esc_text(struct sbuf *out, const char *s)
{
	if (s)
		esc_bytes(out, (const unsigned char *)s, strlen(s), 0);
}

void esc_lines(struct sbuf *out, const char *s, size_t len)
{
	if (s)
		esc_bytes(out, (const unsigned char *)s, len, 1);
}

static void esc_vfprintf(FILE *f, const char *fmt, va_list ap)
{
	char *msg = xvasprintf(fmt, ap);

	esc_fputs(msg, f);
	free(msg);
}

void esc_fputs(const char *s, FILE *f)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	esc_lines(&sb, s, s ? strlen(s) : 0);
	fputs(sb.buf, f);
	sbuf_release(&sb);
}

void esc_fprintf(FILE *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	esc_vfprintf(f, fmt, ap);
	va_end(ap);
}

void esc_eprintf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	esc_vfprintf(stderr, fmt, ap);
	va_end(ap);
}
