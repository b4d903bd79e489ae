#include "state/util.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "state/escape.h"

static void oom(void)
{
	fputs("plumb: out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom();
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	va_list cp;
	int n;
	char *p;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		oom();
	p = xmalloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

void util_free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0; /* on with the rest whatever happened */
}

void util_rm_tree(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void sbuf_init(struct sbuf *sb, size_t max)
{
	sb->cap = 64;
	sb->buf = xmalloc(sb->cap);
	sb->buf[0] = '\0';
	sb->len = 0;
	sb->max = max;
}

/* What a detached or released buffer points to: never written past [0], never freed. */
static char sbuf_slop[1];

static int sbuf_grow(struct sbuf *sb, size_t extra)
{
	size_t want;

	if (extra > SIZE_MAX - sb->len - 1)
		return -1;
	want = sb->len + extra + 1;
	if (sb->max && want > sb->max + 1)
		return -1;
	if (want <= sb->cap)
		return 0;
	if (sb->cap == 0) {
		size_t cap = 64;
		while (cap < want)
			cap *= 2;
		sb->buf = xmalloc(cap);
		sb->buf[0] = '\0';
		sb->len = 0;
		sb->cap = cap;
		return 0;
	}
	while (sb->cap < want)
		sb->cap = sb->cap * 2;
	sb->buf = xrealloc(sb->buf, sb->cap);
	return 0;
}

int sbuf_add(struct sbuf *sb, const void *data, size_t n)
{
	if (sbuf_grow(sb, n) < 0)
		return -1;
	memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	return 0;
}

int sbuf_adds(struct sbuf *sb, const char *s)
{
	return sbuf_add(sb, s, strlen(s));
}

int sbuf_addc(struct sbuf *sb, char c)
{
	return sbuf_add(sb, &c, 1);
}

int sbuf_addf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int rc;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	rc = sbuf_adds(sb, p);
	free(p);
	return rc;
}

void sbuf_reset(struct sbuf *sb)
{
	sb->len = 0;
	if (sb->cap)
		sb->buf[0] = '\0';
}

char *sbuf_detach(struct sbuf *sb)
{
	char *p = sb->cap ? sb->buf : xstrdup("");
	sb->buf = sbuf_slop;
	sb->len = sb->cap = 0;
	return p;
}

void sbuf_release(struct sbuf *sb)
{
	if (sb->cap)
		free(sb->buf);
	sb->buf = sbuf_slop;
	sb->len = sb->cap = 0;
}

void strvec_push(struct strvec *sv, const char *s)
{
	strvec_push_take(sv, xstrdup(s));
}

void strvec_push_take(struct strvec *sv, char *s)
{
	if (sv->n == sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 8;
		sv->v = xrealloc(sv->v, sv->cap * sizeof(*sv->v));
	}
	sv->v[sv->n++] = s;
}

int strvec_contains(const struct strvec *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return 1;
	return 0;
}

void strvec_release(struct strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

void diags_add(struct diags *d, enum diag_level level, const char *file, int line,
	       int col, const char *fmt, ...)
{
	va_list ap;
	struct diag *g;

	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->v = xrealloc(d->v, d->cap * sizeof(*d->v));
	}
	g = &d->v[d->n++];
	g->level = level;
	g->file = file ? xstrdup(file) : NULL;
	g->line = line;
	g->col = col;
	va_start(ap, fmt);
	g->msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (level == DIAG_ERROR)
		d->errors++;
}

static const char *level_name(enum diag_level l)
{
	switch (l) {
	case DIAG_ERROR:
		return "error";
	case DIAG_WARNING:
		return "warning";
	case DIAG_NOTE:
		return "note";
	}
	return "error";
}

static void diag_format(struct sbuf *sb, const struct diag *g)
{
	if (g->file && g->line > 0 && g->col > 0)
		sbuf_addf(sb, "%s:%d:%d: ", g->file, g->line, g->col);
	else if (g->file && g->line > 0)
		sbuf_addf(sb, "%s:%d: ", g->file, g->line);
	else if (g->file)
		sbuf_addf(sb, "%s: ", g->file);
	sbuf_addf(sb, "%s: %s\n", level_name(g->level), g->msg);
}

char *diags_to_string(const struct diags *d)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	for (size_t i = 0; i < d->n; i++)
		diag_format(&sb, &d->v[i]);
	return sb.buf;
}

/* Messages quote the repository (keys, values, paths): escaped here, the one
 * place every diagnostic is printed. */
void diags_print(const struct diags *d, FILE *f)
{
	char *s = diags_to_string(d);
	struct sbuf sb;

	sbuf_init(&sb, 0);
	esc_lines(&sb, s, strlen(s));
	fputs(sb.buf, f);
	sbuf_release(&sb);
	free(s);
}

void diags_release(struct diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->cap = d->errors = 0;
}

int util_read_file(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = NULL;
	struct sbuf sb;
	char chunk[8192];
	size_t n;
	int rc = -1;

	*out = NULL;
	if (len)
		*len = 0;
	sbuf_init(&sb, max);
	f = fopen(path, "rb");
	if (!f)
		goto out;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (sbuf_add(&sb, chunk, n) < 0) {
			errno = EFBIG;
			goto out;
		}
	}
	if (ferror(f))
		goto out;
	if (len)
		*len = sb.len;
	*out = sbuf_detach(&sb);
	rc = 0;
out:
	if (f)
		fclose(f);
	sbuf_release(&sb);
	return rc;
}

size_t util_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t *row = xcalloc(lb + 1, sizeof(*row));
	size_t result;

	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t best = prev + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	result = row[lb];
	free(row);
	return result;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
size_t util_utf8_valid_len(const unsigned char *p, size_t n)
{
	size_t need;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		need = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates and code points past U+10FFFF are invalid */
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

static int base64_value(int ch, int flags)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	if ((flags & UTIL_BASE64_URLSAFE) && ch == '-')
		return 62;
	if ((flags & UTIL_BASE64_URLSAFE) && ch == '_')
		return 63;
	return -1;
}

int util_base64_decode(const char *in, size_t n, int flags, unsigned char **out, size_t *outlen)
{
	size_t data = n, len = 0, cap;
	unsigned char *o = NULL;
	unsigned acc = 0;
	int bits = 0;

	*out = NULL;
	*outlen = 0;
	while (data > 0 && in[data - 1] == '=')
		data--;
	if (n - data > 2 || (n > data && n % 4 != 0) || data % 4 == 1)
		return -1;
	cap = data / 4 * 3 + 3;
	o = xmalloc(cap);
	for (size_t i = 0; i < data; i++) {
		int v = base64_value((unsigned char)in[i], flags);

		if (v < 0) {
			explicit_bzero(o, cap);
			free(o);
			return -1;
		}
		acc = ((acc << 6) | (unsigned)v) & 0xffffu;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[len++] = (unsigned char)(acc >> bits);
		}
	}
	o[len] = '\0';
	*out = o;
	*outlen = len;
	return 0;
}
