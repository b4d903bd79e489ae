/*
 * Kamal's secrets files, parsed as the dotenv gem (3.x) parses them; Kamal 2
 * calls Dotenv.parse(file, overwrite: true) on each file in turn and merges
 * the results, later files winning.
 *
 * What the gem does, and this file reproduces (Dotenv::Parser::LINE and
 * parse_value, Substitutions::Variable, Substitutions::Command):
 *  - A line is `[export ]KEY=value` or `KEY: value` (colon plus at least one
 *    whitespace); KEY is [A-Za-z0-9_.]+. Lines that match nothing are
 *    ignored, except `export A B` which requires A and B to be set earlier.
 *  - A value is '…' or "…" (both may span lines; a closing quote must be
 *    followed only by blanks or a # comment on its line), otherwise the rest
 *    of the line up to the first '#' (so FOO=a#b is "a", not "a#b").
 *  - The value is stripped; a surrounding pair of equal quotes is removed.
 *    Single-quoted: literal. Double-quoted: "\n" stays a backslash and an n
 *    (dotenv 3 dropped the expansion to a newline unless
 *    DOTENV_LINEBREAK_MODE=legacy). Double-quoted and unquoted: "\x" becomes
 *    "x" for any x but '$'; then $VAR / ${VAR} expand (keys earlier in the
 *    same file, then the environment, then ""), "\$" is a literal '$'; then
 *    $(command) runs with /bin/sh and its output replaces it, chomped, and
 *    "\$(…)" is literal. Variables expand before commands run, so a
 *    variable's value can itself contain $(…).
 *  - Keys of an earlier file are not visible to $VAR in a later one (each
 *    file is its own Dotenv.parse); only the environment is shared.
 *
 * Where plumb differs on purpose: a command that fails (non-zero exit, no
 * shell, timeout, more than 64 KiB of output) makes the secret unavailable
 * with a warning, where Ruby's backticks would give whatever was printed;
 * `$(kamal secrets …)` is never run; untrusted, nothing is run and the
 * environment is not read. Values are kept in buffers that are wiped before
 * they are freed.
 */
#include "state/secrets.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SECRETS_MAX_FILE (1u << 20)
#define SECRETS_MAX_VALUE (256u * 1024)
#define SECRETS_MAX_TOTAL (16u << 20)
#define SECRETS_MAX_KEYS 10000
#define SECRETS_MAX_CMD_OUTPUT (64u * 1024)

struct secret {
	char *name;
	char *value; /* NULL when unavailable */
	unsigned gen; /* the secrets_parse call that set it */
};

struct secrets {
	struct secret *v;
	size_t n, cap;
	unsigned gen;
	size_t total;
	int skipped;
};

/* ---- a growable buffer that wipes what it lets go of ---- */

struct wbuf {
	char *p;
	size_t len, cap;
	int overflow;
};

static void wb_init(struct wbuf *b)
{
	b->cap = 64;
	b->p = xmalloc(b->cap);
	b->p[0] = '\0';
	b->len = 0;
	b->overflow = 0;
}

static void wb_add(struct wbuf *b, const char *s, size_t n)
{
	if (b->overflow)
		return;
	if (n > SECRETS_MAX_VALUE - b->len) {
		b->overflow = 1;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap;
		char *np;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		np = xmalloc(ncap);
		memcpy(np, b->p, b->len + 1);
		explicit_bzero(b->p, b->cap);
		free(b->p);
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void wb_addc(struct wbuf *b, char c)
{
	wb_add(b, &c, 1);
}

static void wb_release(struct wbuf *b)
{
	if (b->p) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
}

static char *wb_detach(struct wbuf *b)
{
	char *p = b->p;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

/* ---- the store ---- */

struct secrets *secrets_new(void)
{
	return xcalloc(1, sizeof(struct secrets));
}

static struct secret *find(const struct secrets *s, const char *name, size_t n)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->v[i].name) == n && memcmp(s->v[i].name, name, n) == 0)
			return &s->v[i];
	return NULL;
}

/* Takes ownership of value (NULL = unavailable). */
static int set_secret(struct secrets *s, const char *name, char *value, unsigned gen)
{
	struct secret *e = find(s, name, strlen(name));
	size_t vlen = value ? strlen(value) : 0;

	if (!e && s->n >= SECRETS_MAX_KEYS) {
		util_free_secret(value);
		return -1;
	}
	if (e && e->value)
		s->total -= strlen(e->value);
	if (vlen > SECRETS_MAX_TOTAL - s->total) {
		util_free_secret(value);
		return -2;
	}
	s->total += vlen;
	if (!e) {
		if (s->n == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 16;
			s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
		}
		e = &s->v[s->n++];
		e->name = xstrdup(name);
		e->value = NULL;
	}
	util_free_secret(e->value);
	e->value = value;
	e->gen = gen;
	return 0;
}

const char *secrets_get(const struct secrets *s, const char *name, int *available)
{
	struct secret *e = find(s, name, strlen(name));

	if (available)
		*available = e && e->value;
	if (!e)
		return NULL;
	return e->value ? e->value : PLUMB_UNAVAILABLE;
}

size_t secrets_count(const struct secrets *s)
{
	return s->n;
}

const char *secrets_name_at(const struct secrets *s, size_t i)
{
	return i < s->n ? s->v[i].name : NULL;
}

int secrets_skipped(const struct secrets *s)
{
	return s->skipped;
}

void secrets_free(struct secrets *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		util_free_secret(s->v[i].value);
	}
	free(s->v);
	free(s);
}

/* ---- the line grammar (Dotenv::Parser::LINE) ---- */

static int rb_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int key_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.';
}

static size_t eol(const char *t, size_t len, size_t i)
{
	while (i < len && t[i] != '\n')
		i++;
	return i;
}

/* After a closing quote: only blanks, then an optional # comment, to the end of the line. */
static int trailing_ok(const char *t, size_t len, size_t i)
{
	while (i < len && t[i] != '\n' && rb_space(t[i]))
		i++;
	return i >= len || t[i] == '\n' || t[i] == '#';
}

struct match {
	size_t key, key_len;
	size_t val, val_len;
	size_t end; /* where scanning resumes */
};

/*
 * A quoted value opening at o: the regex (?:\\Q|[^Q])*Q tries the first
 * unescaped Q, then (backtracking) each escaped one before it, last first.
 */
static int match_quoted(const char *t, size_t len, size_t o, size_t *close)
{
	char q = t[o];
	size_t esc[64], nesc = 0, i = o + 1, limit;

	limit = len - o > SECRETS_MAX_VALUE ? o + SECRETS_MAX_VALUE : len;
	while (i < limit) {
		if (t[i] == '\\' && i + 1 < limit && t[i + 1] == q) {
			esc[nesc++ % ARRAY_SIZE(esc)] = i + 1;
			i += 2;
			continue;
		}
		if (t[i] == q) {
			if (trailing_ok(t, len, i + 1)) {
				*close = i;
				return 1;
			}
			break;
		}
		i++;
	}
	for (size_t k = 0; k < nesc && k < ARRAY_SIZE(esc); k++) {
		size_t c = esc[(nesc - 1 - k) % ARRAY_SIZE(esc)];
		if (trailing_ok(t, len, c + 1)) {
			*close = c;
			return 1;
		}
	}
	return 0;
}

static int match_from_key(const char *t, size_t len, size_t p, struct match *m)
{
	size_t k = p, v, w, close;

	while (k < len && key_char(t[k]))
		k++;
	if (k == p)
		return 0;
	m->key = p;
	m->key_len = k - p;
	/* separator: \s*=  or  :\s */
	v = k;
	while (v < len && rb_space(t[v]))
		v++;
	if (v < len && t[v] == '=') {
		v++;
	} else if (k < len && t[k] == ':' && k + 1 < len && rb_space(t[k + 1])) {
		v = k + 2;
	} else {
		return 0;
	}
	/* quoted value (leading \s* may cross lines) */
	w = v;
	while (w < len && rb_space(t[w]))
		w++;
	if (w < len && (t[w] == '\'' || t[w] == '"') && match_quoted(t, len, w, &close)) {
		m->val = v;
		m->val_len = close + 1 - v;
		m->end = eol(t, len, close + 1);
		return 1;
	}
	/* unquoted: up to '#' or the end of the line */
	w = v;
	while (w < len && t[w] != '#' && t[w] != '\n' && t[w] != '\r')
		w++;
	m->val = v;
	m->val_len = w - v;
	m->end = eol(t, len, w);
	return 1;
}

static int match_line(const char *t, size_t len, size_t p, struct match *m)
{
	size_t q = p;

	while (q < len && rb_space(t[q]))
		q++;
	if (len - q > 6 && memcmp(t + q, "export", 6) == 0 && rb_space(t[q + 6])) {
		size_t r = q + 6;
		while (r < len && rb_space(t[r]))
			r++;
		if (match_from_key(t, len, r, m))
			return 1;
	}
	return match_from_key(t, len, q, m);
}

/* ---- values ---- */

struct pctx {
	struct secrets *s;
	const char *file;
	const char *cwd;
	struct trust *t;
	struct diags *d;
	unsigned gen;
	const char *key;
	int line;
	int available;
	int warned_kamal;
};

static struct secret *find_here(const struct pctx *c, const char *name, size_t n)
{
	struct secret *e = find(c->s, name, n);
	return e && e->gen == c->gen ? e : NULL;
}

static int legacy_linebreaks(const struct pctx *c)
{
	struct secret *e = find_here(c, "DOTENV_LINEBREAK_MODE", 21);
	const char *v = e ? e->value : NULL;

	if (!e && c->t->trusted)
		v = trust_getenv(c->t, "DOTENV_LINEBREAK_MODE");
	return v && strcmp(v, "legacy") == 0;
}

/* Substitutions::Variable */
static void expand_vars(struct pctx *c, const char *v, size_t n, struct wbuf *out)
{
	size_t i = 0;

	while (i < n) {
		size_t j, name, name_len;
		int escaped = 0;

		if (v[i] == '\\' && i + 1 < n && v[i + 1] == '$' && !(i + 2 < n && v[i + 2] == '(')) {
			escaped = 1;
			j = i + 1;
		} else if (v[i] == '$' && !(i + 1 < n && v[i + 1] == '(')) {
			j = i;
		} else {
			wb_addc(out, v[i]);
			i++;
			continue;
		}
		/* v[j] == '$' */
		j++;
		if (j < n && v[j] == '{')
			j++;
		name = j;
		while (j < n && (isalnum((unsigned char)v[j]) || v[j] == '_'))
			j++;
		name_len = j - name;
		if (j < n && v[j] == '}')
			j++;
		if (escaped) {
			wb_add(out, v + i + 1, j - i - 1);
		} else if (name_len == 0) {
			wb_add(out, v + i, j - i);
		} else {
			struct secret *e = find_here(c, v + name, name_len);
			char *nm = xstrndup(v + name, name_len);
			if (e) {
				if (e->value)
					wb_add(out, e->value, strlen(e->value));
				else
					c->available = 0;
			} else if (!c->t->trusted) {
				trust_note(c->t, TRUST_OFF_SECRET_ENV);
				c->available = 0;
			} else {
				const char *ev = trust_getenv(c->t, nm);
				if (ev)
					wb_add(out, ev, strlen(ev));
				else
					diags_warn(c->d, c->file, c->line, 0,
						   "%s: $%s is not set in the environment; it expands "
						   "to an empty string (as dotenv does)",
						   c->key, nm);
			}
			free(nm);
		}
		i = j;
	}
}

static int is_kamal_secrets(const char *cmd)
{
	const char *p = cmd;

	while (rb_space(*p))
		p++;
	if (strncmp(p, "kamal", 5) != 0)
		return 0;
	p += 5;
	while (rb_space(*p))
		p++;
	if (strncmp(p, "secrets", 7) != 0)
		return 0;
	return rb_space(p[7]);
}

/* Length of a balanced "(…)" at v[i] (v[i] == '('), 0 if none; every pair non-empty. */
static size_t balanced(const char *v, size_t n, size_t i)
{
	int depth = 0;

	for (size_t j = i; j < n; j++) {
		if (v[j] == '(') {
			if (j + 1 < n && v[j + 1] == ')')
				return 0;
			depth++;
		} else if (v[j] == ')') {
			if (--depth == 0)
				return j - i + 1;
		}
	}
	return 0;
}

static void run_command(struct pctx *c, const char *cmd, struct wbuf *out)
{
	char *res = NULL;
	int status = 0;

	if (is_kamal_secrets(cmd)) {
		if (!c->warned_kamal)
			diags_warn(c->d, c->file, c->line, 0,
				   "%s uses `kamal secrets`, which needs Kamal; plumb cannot run it — "
				   "use the adapter's own CLI in .kamal/secrets (e.g. `$(op read "
				   "op://vault/item/field)` or `$(bw get …)`), or set %s in the "
				   "environment and write %s=$%s",
				   c->key, c->key, c->key, c->key);
		c->warned_kamal = 1;
		c->available = 0;
		return;
	}
	if (!c->t->trusted || !c->t->run_fn) {
		trust_note(c->t, TRUST_OFF_SECRET_CMD);
		c->available = 0;
		return;
	}
	if (!c->available)
		return; /* no point running it */
	if (trust_run(c->t, TRUST_OFF_SECRET_CMD, cmd, c->cwd, SECRETS_MAX_CMD_OUTPUT, &res,
		      &status) < 0) {
		if (status == -1)
			diags_warn(c->d, c->file, c->line, 0,
				   "%s: the $(…) command could not be run, timed out or printed more "
				   "than %u bytes; %s is unavailable",
				   c->key, SECRETS_MAX_CMD_OUTPUT, c->key);
		else
			diags_warn(c->d, c->file, c->line, 0,
				   "%s: the $(…) command failed (exit status %d); %s is unavailable",
				   c->key, status, c->key);
		c->available = 0;
		return;
	}
	/* Ruby's chomp: trust_run took a trailing "\n"; a "\r" before it goes too. */
	if (res[0] && res[strlen(res) - 1] == '\r')
		res[strlen(res) - 1] = '\0';
	wb_add(out, res, strlen(res));
	util_free_secret(res);
}

/* Substitutions::Command (Kamal's InlineCommandSubstitution) */
static void expand_commands(struct pctx *c, const char *v, size_t n, struct wbuf *out)
{
	size_t i = 0;

	while (i < n) {
		size_t b;

		if (v[i] == '\\' && i + 2 < n && v[i + 1] == '$' && v[i + 2] == '(' &&
		    (b = balanced(v, n, i + 2)) > 0) {
			wb_add(out, v + i + 1, b + 1);
			i += 2 + b;
			continue;
		}
		if (v[i] == '$' && i + 1 < n && v[i + 1] == '(' && (b = balanced(v, n, i + 1)) > 0) {
			char *cmd = xstrndup(v + i + 2, b - 2);
			run_command(c, cmd, out);
			free(cmd);
			i += 1 + b;
			continue;
		}
		wb_addc(out, v[i]);
		i++;
	}
}

/* Dotenv::Parser#parse_value. Returns the value or NULL (unavailable). */
static char *parse_value(struct pctx *c, const char *raw, size_t n)
{
	struct wbuf a, b;
	char quote = 0;
	char *res = NULL;

	while (n > 0 && rb_space(*raw)) {
		raw++;
		n--;
	}
	while (n > 0 && (rb_space(raw[n - 1]) || raw[n - 1] == '\0'))
		n--;
	if (n >= 2 && (raw[0] == '\'' || raw[0] == '"') && raw[n - 1] == raw[0]) {
		quote = raw[0];
		raw++;
		n -= 2;
	}
	wb_init(&a);
	wb_init(&b);
	if (quote == '\'') {
		wb_add(&a, raw, n);
		goto done;
	}
	if (quote == '"') {
		int legacy = legacy_linebreaks(c);
		for (size_t i = 0; i < n; i++) {
			if (raw[i] == '\\' && i + 1 < n && (raw[i + 1] == 'n' || raw[i + 1] == 'r')) {
				if (legacy)
					wb_addc(&b, raw[i + 1] == 'n' ? '\n' : '\r');
				else
					wb_add(&b, raw[i + 1] == 'n' ? "\\\\n" : "\\\\r", 3);
				i++;
			} else {
				wb_addc(&b, raw[i]);
			}
		}
	} else {
		wb_add(&b, raw, n);
	}
	/* unescape_characters: \x → x, except \$ */
	for (size_t i = 0; i < b.len; i++) {
		if (b.p[i] == '\\' && i + 1 < b.len && b.p[i + 1] != '$') {
			wb_addc(&a, b.p[i + 1]);
			i++;
		} else {
			wb_addc(&a, b.p[i]);
		}
	}
	wb_release(&b);
	wb_init(&b);
	expand_vars(c, a.p, a.len, &b);
	wb_release(&a);
	wb_init(&a);
	expand_commands(c, b.p, b.len, &a);
done:
	if (a.overflow || b.overflow) {
		diags_warn(c->d, c->file, c->line, 0,
			   "%s: value longer than %u bytes; %s is unavailable", c->key,
			   SECRETS_MAX_VALUE, c->key);
		c->available = 0;
	}
	if (c->available)
		res = wb_detach(&a);
	wb_release(&a);
	wb_release(&b);
	return res;
}

/* `export A B` lines that are not assignments: A and B must be set in this file. */
static int check_export(struct pctx *c, const char *t, size_t from, size_t to, int line)
{
	size_t i = from, w;

	while (i < to && rb_space(t[i]))
		i++;
	w = i;
	while (w < to && !rb_space(t[w]))
		w++;
	if (w - i != 6 || memcmp(t + i, "export", 6) != 0)
		return 0;
	for (i = w; i < to;) {
		while (i < to && rb_space(t[i]))
			i++;
		w = i;
		while (w < to && !rb_space(t[w]))
			w++;
		if (w > i && !find_here(c, t + i, w - i)) {
			diags_err(c->d, c->file, line, 0,
				  "an `export` line names a variable that is not set in this file "
				  "(dotenv refuses the file)");
			return -1;
		}
		i = w;
	}
	return 0;
}

int secrets_parse(struct secrets *s, const char *file, const char *text, size_t len,
		  const char *cwd, struct trust *t, struct diags *d)
{
	struct pctx c = { 0 };
	char *buf = NULL;
	size_t n = 0, p = 0, lines_from = 0, cap = len + 1;
	size_t *unmatched = NULL, nun = 0, capun = 0; /* pairs: start, end */
	int line = 1, rc = 0;

	if (memchr(text, '\0', len)) {
		diags_err(d, file, 0, 0, "contains a NUL byte; not a secrets file");
		return PLUMB_ECONFIG;
	}
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		text += 3;
		len -= 3;
	}
	/* Line breaks to one format: \r\n and \r become \n. */
	buf = xmalloc(cap);
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\r') {
			buf[n++] = '\n';
			if (i + 1 < len && text[i + 1] == '\n')
				i++;
		} else {
			buf[n++] = text[i];
		}
	}
	buf[n] = '\0';

	c.s = s;
	c.file = file;
	c.cwd = cwd;
	c.t = t;
	c.d = d;
	c.gen = ++s->gen;

	while (p < n) {
		struct match m;
		size_t next;

		if (match_line(buf, n, p, &m)) {
			char *key = xstrndup(buf + m.key, m.key_len);
			char *val;
			int r;

			for (size_t i = lines_from; i < m.key; i++)
				line += buf[i] == '\n';
			lines_from = m.key;
			c.key = key;
			c.line = line;
			c.available = 1;
			c.warned_kamal = 0;
			val = parse_value(&c, buf + m.val, m.val_len);
			r = set_secret(s, key, val, c.gen);
			if (r == -1) {
				diags_err(d, file, line, 0, "more than %d secrets", SECRETS_MAX_KEYS);
				free(key);
				rc = PLUMB_ECONFIG;
				break;
			} else if (r == -2) {
				diags_warn(d, file, line, 0,
					   "%s: secrets exceed %u bytes in all; %s is unavailable", key,
					   SECRETS_MAX_TOTAL, key);
				set_secret(s, key, NULL, c.gen);
			}
			free(key);
			next = m.end;
		} else {
			next = eol(buf, n, p);
			if (nun + 2 > capun) {
				capun = capun ? capun * 2 : 16;
				unmatched = xrealloc(unmatched, capun * sizeof(*unmatched));
			}
			unmatched[nun++] = p;
			unmatched[nun++] = next;
		}
		p = next < n ? next + 1 : n;
	}
	/* The gem checks `export` lines after all assignments. */
	if (rc == 0) {
		size_t from = 0;
		line = 1;
		for (size_t i = 0; i < nun; i += 2) {
			for (; from < unmatched[i]; from++)
				line += buf[from] == '\n';
			if (check_export(&c, buf, unmatched[i], unmatched[i + 1], line) < 0)
				rc = PLUMB_ECONFIG;
		}
	}
	free(unmatched);
	explicit_bzero(buf, cap);
	free(buf);
	return rc;
}

/* ---- files ---- */

static int load_one(struct secrets *s, struct source *src, const char *path, int outside,
		    struct trust *t, struct diags *d)
{
	char *text = NULL, *full = NULL;
	struct plumb_err err = { 0 };
	size_t len = 0;
	int rc = 0;

	if (!outside) {
		int r = source_read(src, path, &text, &len, &err);
		if (r == PLUMB_ENOTFOUND)
			return 0;
		if (r < 0) {
			diags_err(d, path, 0, 0, "cannot read: %s", plumb_err_msg(&err));
			return r;
		}
	} else {
		if (path[0] == '/')
			full = xstrdup(path);
		else if (src->root_dir)
			full = xasprintf("%s/%s", src->root_dir, path);
		else {
			diags_warn(d, path, 0, 0,
				   "outside the repository and the source has no directory; not read");
			s->skipped = 1;
			return 0;
		}
		if (util_read_file(full, SECRETS_MAX_FILE, &text, &len) < 0) {
			if (errno != ENOENT && errno != ENOTDIR) {
				diags_err(d, path, 0, 0, "cannot read: %s",
					  errno == EFBIG ? "file too large" : strerror(errno));
				rc = -1;
			}
			free(full);
			return rc;
		}
		free(full);
	}
	if (len > SECRETS_MAX_FILE) {
		diags_err(d, path, 0, 0, "larger than %u bytes; not a secrets file",
			  SECRETS_MAX_FILE);
		rc = -1;
	} else {
		rc = secrets_parse(s, path, text, len, src->root_dir, t, d);
	}
	explicit_bzero(text, len);
	free(text);
	return rc;
}

int secrets_load(struct secrets **out, struct source *src, const char *secrets_path,
		 const char *destination, struct trust *t, struct diags *d)
{
	struct secrets *s = secrets_new();
	char *files[2] = { NULL, NULL };
	int outside, rc = 0;

	*out = NULL;
	if (!secrets_path || !*secrets_path)
		secrets_path = ".kamal/secrets";
	if (destination && (!*destination || strchr(destination, '/') ||
			    strcmp(destination, "..") == 0 || strcmp(destination, ".") == 0)) {
		diags_err(d, NULL, 0, 0, "invalid destination name for secrets files");
		secrets_free(s);
		return PLUMB_ECONFIG;
	}
	files[0] = xasprintf("%s-common", secrets_path);
	files[1] = destination ? xasprintf("%s.%s", secrets_path, destination)
			       : xstrdup(secrets_path);
	outside = !source_path_is_inside(secrets_path);
	if (outside && !t->trusted) {
		trust_note(t, TRUST_OFF_OUTSIDE_PATH);
		diags_warn(d, NULL, 0, 0,
			   "secrets_path '%s' is outside the repository; its secrets are not read "
			   "(untrusted)",
			   secrets_path);
		s->skipped = 1;
		goto done;
	}
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (load_one(s, src, files[i], outside, t, d) < 0)
			rc = -1;
done:
	free(files[0]);
	free(files[1]);
	if (rc < 0) {
		secrets_free(s);
		return PLUMB_ECONFIG;
	}
	*out = s;
	return 0;
}
