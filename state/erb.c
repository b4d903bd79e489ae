/*
 * The ERB subset (see erb.h).
 *
 * Markers are "plumberb<salt>x<index>x": only [a-z0-9_], so they survive
 * inside plain, single- and double-quoted YAML scalars unchanged, and YAML
 * resolves a scalar holding one as a string. The salt is derived from the
 * text and bumped until "plumberb<salt>" does not occur in it, so a marker can
 * never be confused with something the file already contained.
 *
 * Tag boundaries follow Ruby's ERB scanner: a tag ends at the first "%>"
 * (even inside a Ruby string), "<%%" is a literal "<%" in the text, and
 * "-%>" removes the newline that directly follows the tag (ERB's '-' trim
 * mode). Tags spanning lines and trimmed newlines shift the line numbers of
 * the YAML after them, exactly as ERB's own output would; each tag keeps its
 * position in the original file.
 *
 * Command output: %x() and backticks keep the command's trailing newline in
 * Ruby, and YAML then folds it away in a plain scalar. plumb substitutes after
 * YAML parsing, so it removes one trailing newline itself (trust_run does):
 * the result equals Kamal's for plain scalars; in a quoted scalar Kamal would
 * get a trailing space from the folded newline, plumb does not.
 */
#include "state/erb.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state/secrets.h"

#define MARKER_PREFIX "plumberb"
#define ERB_MAX_TAGS 10000
#define ERB_MAX_CMD_OUTPUT (64u * 1024)
#define ERB_MAX_EXPANDED (4u << 20)
#define ERB_MSG_TAG_MAX 200

/* The tag as written, shortened for messages. */
static char *tag_for_msg(const char *text)
{
	size_t n = strlen(text);

	if (n <= ERB_MSG_TAG_MAX)
		return xstrdup(text);
	return xasprintf("%.*s…", ERB_MSG_TAG_MAX, text);
}

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static int contains_n(const char *hay, size_t len, const char *needle)
{
	size_t nl = strlen(needle);

	if (nl > len)
		return 0;
	for (size_t i = 0; i + nl <= len; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, nl) == 0)
			return 1;
	return 0;
}

static void set_push(struct erb_set *set, struct erb_tag *tag)
{
	if (set->n == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 8;
		set->v = xrealloc(set->v, set->cap * sizeof(*set->v));
	}
	set->v[set->n++] = *tag;
}

static char *trim_dup(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return xstrndup(s, n);
}

int erb_extract(const char *file, const char *text, size_t len, char **out_text,
		size_t *out_len, struct erb_set *set, struct diags *d)
{
	struct sbuf sb;
	uint32_t salt;
	char saltstr[sizeof(MARKER_PREFIX) + 8];
	int line = 1, col = 1, rc = PLUMB_ECONFIG;
	size_t i = 0;

	*out_text = NULL;
	if (out_len)
		*out_len = 0;
	sbuf_init(&sb, 0);

	salt = fnv1a(text, len);
	for (int tries = 0;; tries++) {
		snprintf(saltstr, sizeof(saltstr), MARKER_PREFIX "%08x", (unsigned)salt);
		if (!contains_n(text, len, saltstr))
			break;
		if (tries > 1000) {
			diags_err(d, file, 0, 0, "cannot choose an ERB marker for this file");
			goto out;
		}
		salt = salt * 2654435761u + 1;
	}

	while (i < len) {
		struct erb_tag tag = { 0 };
		size_t start, body, end, close;
		int tline = line, tcol = col, trim = 0;

		if (!(text[i] == '<' && i + 1 < len && text[i + 1] == '%')) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
			sbuf_addc(&sb, text[i]);
			i++;
			continue;
		}
		if (i + 2 < len && text[i + 2] == '%') {
			/* "<%%" is ERB's escape for a literal "<%". */
			sbuf_adds(&sb, "<%");
			i += 3;
			col += 3;
			continue;
		}
		start = i;
		body = i + 2;
		if (body < len && text[body] == '-')
			body++;
		if (body < len && text[body] == '=') {
			tag.output = 1;
			body++;
		} else if (body < len && text[body] == '#') {
			tag.comment = 1;
			body++;
		}
		close = body;
		while (close + 1 < len && !(text[close] == '%' && text[close + 1] == '>'))
			close++;
		if (close + 1 >= len) {
			size_t show = len - start < 40 ? len - start : 40;
			size_t nl = strcspn(text + start, "\n");
			if (nl < show)
				show = nl;
			diags_err(d, file, tline, tcol, "unterminated ERB tag `%.*s`: no closing %%>",
				  (int)show, text + start);
			goto out;
		}
		end = close + 2;
		if (close > body && text[close - 1] == '-') {
			trim = 1;
			close--;
		}
		tag.line = tline;
		tag.col = tcol;
		tag.text = xstrndup(text + start, end - start);
		tag.code = trim_dup(text + body, close - body);
		for (size_t k = start; k < end; k++) {
			if (text[k] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		i = end;
		if (trim && i < len && text[i] == '\n') {
			i++;
			line++;
			col = 1;
		}
		if (!tag.output && !tag.comment) {
			char *shown = tag_for_msg(tag.text);
			diags_err(d, file, tline, tcol,
				  "ERB tag `%s` is not supported: plumb evaluates only output tags "
				  "(<%%= ENV[\"X\"] %%>, ENV.fetch, string literals, %%x(...) or "
				  "backticks), not control flow or other Ruby",
				  shown);
			free(shown);
			free(tag.text);
			free(tag.code);
			goto out;
		}
		if (set->n >= ERB_MAX_TAGS) {
			diags_err(d, file, tline, tcol, "too many ERB tags (more than %d)",
				  ERB_MAX_TAGS);
			free(tag.text);
			free(tag.code);
			goto out;
		}
		if (tag.comment) {
			tag.marker = xstrdup("");
		} else {
			tag.marker = xasprintf("%sx%zux", saltstr, set->n);
			sbuf_adds(&sb, tag.marker);
		}
		set_push(set, &tag);
	}
	if (out_len)
		*out_len = sb.len;
	*out_text = sbuf_detach(&sb);
	rc = 0;
out:
	sbuf_release(&sb);
	return rc;
}

/* Length of a marker starting at s (0 if none): plumberb + 8 hex + x + digits + x. */
static size_t marker_len(const char *s, size_t *index)
{
	size_t n = sizeof(MARKER_PREFIX) - 1, k;
	size_t idx = 0;

	if (strncmp(s, MARKER_PREFIX, n) != 0)
		return 0;
	for (k = 0; k < 8; k++)
		if (!isxdigit((unsigned char)s[n + k]) || isupper((unsigned char)s[n + k]))
			return 0;
	n += 8;
	if (s[n] != 'x')
		return 0;
	n++;
	k = n;
	while (isdigit((unsigned char)s[n])) {
		if (idx > SIZE_MAX / 10 - 10)
			return 0;
		idx = idx * 10 + (size_t)(s[n] - '0');
		n++;
	}
	if (n == k || s[n] != 'x')
		return 0;
	if (index)
		*index = idx;
	return n + 1;
}

int erb_has_marker(const char *s)
{
	const char *p = s;

	while ((p = strstr(p, MARKER_PREFIX)) != NULL) {
		if (marker_len(p, NULL))
			return 1;
		p++;
	}
	return 0;
}

/* ---- the Ruby subset ---- */

enum expr_kind { EXPR_LITERAL, EXPR_ENV, EXPR_FETCH, EXPR_CMD };

struct expr {
	enum expr_kind kind;
	char *str;  /* literal, variable name or command */
	char *dflt; /* ENV.fetch default, or NULL */
};

static void expr_clear(struct expr *e)
{
	free(e->str);
	free(e->dflt);
	e->str = e->dflt = NULL;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/*
 * A Ruby string literal: "..." (escapes \" \\ \n \t; #{…} interpolation is
 * refused) or '...' (only \' and \\ are escapes). Returns the position after
 * it, or NULL.
 */
static const char *parse_string(const char *p, char **out)
{
	struct sbuf sb;
	char q = *p;

	if (q != '"' && q != '\'')
		return NULL;
	sbuf_init(&sb, ERB_MAX_EXPANDED);
	p++;
	while (*p && *p != q) {
		char c = *p;
		if (q == '"' && c == '#' && p[1] == '{')
			goto fail;
		if (c == '\\') {
			char e = p[1];
			if (q == '\'') {
				if (e == '\'' || e == '\\') {
					c = e;
					p++;
				}
			} else {
				switch (e) {
				case '"':
				case '\\':
				case '#':
					c = e;
					break;
				case 'n':
					c = '\n';
					break;
				case 't':
					c = '\t';
					break;
				default:
					goto fail;
				}
				p++;
			}
		}
		if (sbuf_addc(&sb, c) < 0)
			goto fail;
		p++;
	}
	if (*p != q)
		goto fail;
	*out = sbuf_detach(&sb);
	sbuf_release(&sb);
	return p + 1;
fail:
	sbuf_release(&sb);
	return NULL;
}

/* %x(…) %x{…} %x[…] with nesting of the same bracket, or `…`. #{…} refused. */
static const char *parse_command(const char *p, char **out)
{
	struct sbuf sb;
	char open, close;
	int depth = 0;

	if (*p == '`') {
		open = 0;
		close = '`';
		p++;
	} else if (p[0] == '%' && p[1] == 'x') {
		open = p[2];
		if (open == '(')
			close = ')';
		else if (open == '{')
			close = '}';
		else if (open == '[')
			close = ']';
		else
			return NULL;
		p += 3;
	} else {
		return NULL;
	}
	sbuf_init(&sb, ERB_MAX_EXPANDED);
	for (;; p++) {
		char c = *p;
		if (!c)
			goto fail;
		if (c == '#' && p[1] == '{')
			goto fail;
		if (c == '\\') {
			char e = p[1];
			if (e == '\\' || e == close || (open && e == open) || e == '#')
				c = e;
			else if (e == 'n')
				c = '\n';
			else if (e == 't')
				c = '\t';
			else
				goto fail;
			p++;
		} else if (open && c == open) {
			depth++;
		} else if (c == close) {
			if (depth == 0)
				break;
			depth--;
		}
		if (sbuf_addc(&sb, c) < 0)
			goto fail;
	}
	*out = sbuf_detach(&sb);
	sbuf_release(&sb);
	return p + 1;
fail:
	sbuf_release(&sb);
	return NULL;
}

/* Parses a whole tag's code into e; -1 if it is not one of the accepted forms. */
static int parse_expr(const char *code, struct expr *e)
{
	const char *p = skip_ws(code);

	memset(e, 0, sizeof(*e));
	if (*p == '"' || *p == '\'') {
		e->kind = EXPR_LITERAL;
		p = parse_string(p, &e->str);
	} else if (*p == '`' || (p[0] == '%' && p[1] == 'x')) {
		e->kind = EXPR_CMD;
		p = parse_command(p, &e->str);
	} else if (strncmp(p, "ENV", 3) == 0) {
		p = skip_ws(p + 3);
		if (*p == '[') {
			e->kind = EXPR_ENV;
			p = skip_ws(p + 1);
			p = parse_string(p, &e->str);
			if (p) {
				p = skip_ws(p);
				p = *p == ']' ? p + 1 : NULL;
			}
		} else if (*p == '.') {
			p = skip_ws(p + 1);
			if (strncmp(p, "fetch", 5) != 0)
				return expr_clear(e), -1;
			p = skip_ws(p + 5);
			if (*p != '(')
				return expr_clear(e), -1;
			e->kind = EXPR_FETCH;
			p = skip_ws(p + 1);
			p = parse_string(p, &e->str);
			if (p) {
				p = skip_ws(p);
				if (*p == ',') {
					p = skip_ws(p + 1);
					p = parse_string(p, &e->dflt);
					if (p)
						p = skip_ws(p);
				}
				if (p)
					p = *p == ')' ? p + 1 : NULL;
			}
		} else {
			return -1;
		}
	} else {
		return -1;
	}
	if (!p || *skip_ws(p) != '\0') {
		expr_clear(e);
		return -1;
	}
	if ((e->kind == EXPR_ENV || e->kind == EXPR_FETCH || e->kind == EXPR_CMD) &&
	    (!e->str[0])) {
		expr_clear(e);
		return -1;
	}
	return 0;
}

/*
 * Evaluates one tag. *out is the value (caller frees). Returns -1 with an
 * error in d for a refused or failed tag.
 */
static int eval_tag(const struct erb_tag *tag, const char *file, const char *keypath,
		    struct trust *t, const char *cwd, char **out, unsigned *flags, struct diags *d)
{
	struct expr e;
	char *shown = NULL;
	int rc = -1;

	*out = NULL;
	if (parse_expr(tag->code, &e) < 0) {
		shown = tag_for_msg(tag->text);
		diags_err(d, file, tag->line, tag->col,
			  "unsupported ERB `%s` in %s: plumb evaluates only ENV[\"X\"], "
			  "ENV.fetch(\"X\"[, \"default\"]), a string literal, %%x(...) or backticks",
			  shown, keypath);
		free(shown);
		return -1;
	}
	switch (e.kind) {
	case EXPR_LITERAL:
		*out = e.str;
		e.str = NULL;
		rc = 0;
		break;
	case EXPR_ENV:
	case EXPR_FETCH:
		*flags |= ERB_SENSITIVE;
		if (!t->trusted) {
			*flags |= ERB_UNAVAILABLE;
			trust_note(t, TRUST_OFF_ERB_ENV);
			*out = xstrdup(PLUMB_UNAVAILABLE);
			rc = 0;
			break;
		}
		{
			const char *v = trust_getenv(t, e.str);
			if (v) {
				*out = xstrdup(v);
			} else if (e.kind == EXPR_ENV) {
				*out = xstrdup("");
			} else if (e.dflt) {
				*out = e.dflt;
				e.dflt = NULL;
			} else {
				shown = tag_for_msg(tag->text);
				diags_err(d, file, tag->line, tag->col,
					  "`%s` in %s: environment variable %s is not set", shown,
					  keypath, e.str);
				free(shown);
				break;
			}
		}
		rc = 0;
		break;
	case EXPR_CMD:
		*flags |= ERB_SENSITIVE;
		{
			char *output = NULL;
			int status = 0;
			int r = trust_run(t, TRUST_OFF_ERB_CMD, e.str, cwd, ERB_MAX_CMD_OUTPUT, &output,
					  &status);

			if (r == PLUMB_EUNAVAILABLE) { /* untrusted, or no runner given */
				*flags |= ERB_UNAVAILABLE;
				*out = xstrdup(PLUMB_UNAVAILABLE);
				rc = 0;
				break;
			}
			if (r < 0) {
				shown = tag_for_msg(tag->text);
				if (status == -1)
					diags_err(d, file, tag->line, tag->col,
						  "`%s` in %s: the command could not be run, timed out "
						  "or printed more than %u bytes",
						  shown, keypath, ERB_MAX_CMD_OUTPUT);
				else
					diags_err(d, file, tag->line, tag->col,
						  "`%s` in %s: the command failed (exit status %d)",
						  shown, keypath, status);
				free(shown);
				util_free_secret(output);
				break;
			}
			*out = output;
			rc = 0;
		}
		break;
	}
	expr_clear(&e);
	return rc;
}

int erb_expand(const struct erb_set *set, const char *s, const char *file,
	       const char *keypath, struct trust *t, const char *cwd, char **out,
	       struct diags *d)
{
	unsigned flags;

	return erb_expand_flags(set, s, file, keypath, t, cwd, out, &flags, d);
}

int erb_expand_flags(const struct erb_set *set, const char *s, const char *file,
		     const char *keypath, struct trust *t, const char *cwd, char **out,
		     unsigned *flags, struct diags *d)
{
	struct sbuf sb;
	const char *p = s;
	int rc = 0;

	*out = NULL;
	*flags = 0;
	sbuf_init(&sb, ERB_MAX_EXPANDED);
	while (*p) {
		const char *m = strstr(p, MARKER_PREFIX);
		size_t idx = 0, n;
		char *val = NULL;

		if (!m) {
			if (sbuf_adds(&sb, p) < 0)
				goto toolong;
			break;
		}
		if (sbuf_add(&sb, p, (size_t)(m - p)) < 0)
			goto toolong;
		n = marker_len(m, &idx);
		if (!n || idx >= set->n || set->v[idx].comment ||
		    strncmp(m, set->v[idx].marker, n) != 0 || set->v[idx].marker[n] != '\0') {
			/* Not one of ours: copy the text as it is. */
			if (sbuf_addc(&sb, *m) < 0)
				goto toolong;
			p = m + 1;
			continue;
		}
		if (eval_tag(&set->v[idx], file, keypath, t, cwd, &val, flags, d) < 0) {
			rc = PLUMB_ECONFIG;
		} else if (sbuf_adds(&sb, val) < 0) {
			util_free_secret(val);
			goto toolong;
		}
		util_free_secret(val);
		p = m + n;
	}
	if (rc == 0)
		*out = sbuf_detach(&sb);
	explicit_bzero(sb.buf, sb.len);
	sbuf_release(&sb);
	return rc;
toolong:
	diags_err(d, file, 0, 0, "%s: value after ERB expansion is longer than %u bytes",
		  keypath, ERB_MAX_EXPANDED);
	explicit_bzero(sb.buf, sb.len);
	sbuf_release(&sb);
	return PLUMB_ECONFIG;
}

void erb_set_release(struct erb_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->v[i].text);
		free(set->v[i].code);
		free(set->v[i].marker);
	}
	free(set->v);
	set->v = NULL;
	set->n = set->cap = 0;
}
