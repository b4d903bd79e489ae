/*
 * Small shared helpers: allocation that never returns NULL (allocation failure
 * is fatal, as in OpenSSH), a bounded string buffer, and a diagnostics list.
 *
 * struct sbuf invariants (as git's strbuf): after sbuf_init, buf is never NULL
 * and always NUL-terminated; len excludes the NUL; growing past max (if max is
 * non-zero) fails with -1 and leaves the buffer as it was. sbuf_detach hands the
 * string to the caller and leaves the buffer empty without allocating (it can
 * be reused, and sbuf_release on it is harmless); sbuf_release likewise.
 */
#ifndef PLUMB_UTIL_H
#define PLUMB_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define PLUMB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PLUMB_PRINTF(f, a)
#endif

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PLUMB_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap);
/* Frees a buffer that held a secret after wiping it; NULL is fine. */
void util_free_secret(char *s);
/* Removes a directory tree this process wrote (links are removed, never
 * followed); what cannot be removed is left. NULL is fine. */
void util_rm_tree(const char *dir);

struct sbuf {
	char *buf;
	size_t len;
	size_t cap;
	size_t max; /* 0 = unbounded */
};

void sbuf_init(struct sbuf *sb, size_t max);
int sbuf_add(struct sbuf *sb, const void *data, size_t n);
int sbuf_adds(struct sbuf *sb, const char *s);
int sbuf_addc(struct sbuf *sb, char c);
int sbuf_addf(struct sbuf *sb, const char *fmt, ...) PLUMB_PRINTF(2, 3);
void sbuf_reset(struct sbuf *sb);
char *sbuf_detach(struct sbuf *sb);
void sbuf_release(struct sbuf *sb);

/* A growable array of owned strings. */
struct strvec {
	char **v;
	size_t n;
	size_t cap;
};
void strvec_push(struct strvec *sv, const char *s);
void strvec_push_take(struct strvec *sv, char *s);
int strvec_contains(const struct strvec *sv, const char *s);
void strvec_release(struct strvec *sv);

/*
 * Diagnostics: every error found while loading is collected (so the user sees
 * them all at once), each with the file, line and column it is about (line 0 =
 * no position) and a message. Messages never contain secret values.
 */
enum diag_level { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE };
struct diag {
	enum diag_level level;
	char *file; /* may be NULL */
	int line, col;
	char *msg;
};
struct diags {
	struct diag *v;
	size_t n, cap;
	size_t errors;
};
void diags_add(struct diags *d, enum diag_level level, const char *file, int line,
	       int col, const char *fmt, ...) PLUMB_PRINTF(6, 7);
#define diags_err(d, file, line, col, ...) diags_add((d), DIAG_ERROR, (file), (line), (col), __VA_ARGS__)
#define diags_warn(d, file, line, col, ...) diags_add((d), DIAG_WARNING, (file), (line), (col), __VA_ARGS__)
/* "file:line:col: error: msg" per entry, in the order added. */
/* Writes every entry, with control bytes, C1 and invalid UTF-8 escaped (state/escape.h). */
void diags_print(const struct diags *d, FILE *f);
/* All entries as one string, unescaped (caller frees). */
char *diags_to_string(const struct diags *d);
void diags_release(struct diags *d);

/*
 * Reads a whole file, at most max bytes. 0 with *out NUL-terminated and
 * owned by the caller (free; util_free_secret when it held a secret) and *len its
 * length without the NUL (len may be NULL); or -1 with errno set (EFBIG past
 * max) and *out NULL. It follows links and opens whatever is there: use it
 * for paths the operator gave (flags, environment); a file a repository
 * names goes through source_read_inside (state/source.h).
 */
int util_read_file(const char *path, size_t max, char **out, size_t *len);

/* Length of the valid UTF-8 sequence at p (at most n bytes; overlong forms,
 * surrogates and code points past U+10FFFF are invalid), or 0. */
size_t util_utf8_valid_len(const unsigned char *p, size_t n);

/* Damerau-free Levenshtein distance, for "did you mean" suggestions. */
size_t util_edit_distance(const char *a, const char *b);

/*
 * Base64 (RFC 4648) of in[0..n). '=' padding is optional, but when present it
 * ends the input, is at most two characters and completes a 4-character group;
 * no whitespace; a length of 1 modulo 4 is malformed. UTIL_BASE64_URLSAFE also
 * accepts the URL-safe alphabet ('-', '_'). Returns 0 with *out (caller frees;
 * NUL-terminated after *outlen bytes) or -1 when malformed (nothing to free; a
 * partly decoded buffer is wiped, since the input may be a secret).
 */
#define UTIL_BASE64_URLSAFE 1
int util_base64_decode(const char *in, size_t n, int flags, unsigned char **out, size_t *outlen);

#endif
