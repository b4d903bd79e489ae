/* Quoting for remote shell commands and the structured command builder (quote.h). */
#include "providers/quote.h"
#include "providers/observe_script.h" /* the observation script the guard allows */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/transport.h"

static int is_safe(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || strchr("_./:@%+,-", ch) != NULL;
}

int shell_quote_mem(struct sbuf *out, const void *arg, size_t len)
{
	const unsigned char *p = arg;
	size_t old = out->len;
	int bare = len > 0;

	if (memchr(p, '\0', len))
		return PLUMB_EINVAL;
	for (size_t i = 0; i < len && bare; i++)
		if (!is_safe(p[i]))
			bare = 0;
	if (bare)
		return sbuf_add(out, p, len) < 0 ? -1 : 0;
	if (sbuf_addc(out, '\'') < 0)
		goto full;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\'') {
			if (sbuf_add(out, "'\\''", 4) < 0)
				goto full;
		} else if (sbuf_addc(out, (char)p[i]) < 0) {
			goto full;
		}
	}
	if (sbuf_addc(out, '\'') < 0)
		goto full;
	return 0;
full:
	out->len = old;
	out->buf[old] = '\0';
	return -1;
}

int shell_quote(struct sbuf *out, const char *arg)
{
	return shell_quote_mem(out, arg, strlen(arg));
}

int shell_join_argv(struct sbuf *out, const char *const *argv, size_t argc)
{
	size_t old = out->len;
	int rc = 0;

	for (size_t i = 0; i < argc; i++) {
		if ((i && sbuf_addc(out, ' ') < 0) ||
		    (rc = shell_quote(out, argv[i])) < 0) {
			out->len = old;
			out->buf[old] = '\0';
			return rc < 0 ? rc : -1;
		}
	}
	return 0;
}

void prov_cmd_init(struct prov_cmd *c)
{
	memset(c, 0, sizeof(*c));
}

void prov_cmd_begin(struct prov_cmd *c, enum prov_join join)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	memset(&c->v[c->n], 0, sizeof(c->v[c->n]));
	c->v[c->n].join = join;
	c->n++;
}

void prov_cmd_arg_mem(struct prov_cmd *c, const void *arg, size_t len)
{
	if (memchr(arg, '\0', len)) {
		c->err = PLUMB_EINVAL;
		return;
	}
	if (c->n == 0)
		prov_cmd_begin(c, PROV_JOIN_SEQ);
	strvec_push_take(&c->v[c->n - 1].argv, xstrndup(arg, len));
}

void prov_cmd_arg(struct prov_cmd *c, const char *arg)
{
	prov_cmd_arg_mem(c, arg, strlen(arg));
}

void prov_cmd_args(struct prov_cmd *c, ...)
{
	va_list ap;
	const char *s;

	va_start(ap, c);
	while ((s = va_arg(ap, const char *)) != NULL)
		prov_cmd_arg(c, s);
	va_end(ap);
}

void prov_cmd_quiet(struct prov_cmd *c)
{
	if (c->n)
		c->v[c->n - 1].quiet = 1;
}

static const char *join_str(enum prov_join j)
{
	switch (j) {
	case PROV_JOIN_AND: return " && ";
	case PROV_JOIN_OR: return " || ";
	case PROV_JOIN_PIPE: return " | ";
	default: return "; ";
	}
}

int prov_cmd_render(const struct prov_cmd *c, struct sbuf *out)
{
	size_t old = out->len;
	int rc;

	if (c->err)
		return c->err;
	if (c->n == 0)
		return PLUMB_EINVAL;
	for (size_t i = 0; i < c->n; i++) {
		const struct prov_simple *s = &c->v[i];

		if (s->argv.n == 0) {
			rc = PLUMB_EINVAL;
			goto fail;
		}
		if (i && sbuf_adds(out, join_str(s->join)) < 0) {
			rc = -1;
			goto fail;
		}
		rc = shell_join_argv(out, (const char *const *)s->argv.v, s->argv.n);
		if (rc < 0)
			goto fail;
		if (s->quiet && sbuf_adds(out, " 2>/dev/null") < 0) {
			rc = -1;
			goto fail;
		}
	}
	return 0;
fail:
	out->len = old;
	out->buf[old] = '\0';
	return rc;
}

void prov_cmd_release(struct prov_cmd *c)
{
	for (size_t i = 0; i < c->n; i++)
		strvec_release(&c->v[i].argv);
	free(c->v);
	prov_cmd_init(c);
}

/* Strict parser: see quote.h. */
int prov_cmd_parse_strict(struct prov_cmd *c, const char *cmd)
{
	const char *p = cmd;
	struct sbuf word;
	int in_word = 0, rc = PLUMB_EREFUSED;
	enum prov_join next = PROV_JOIN_SEQ;
	int need_cmd = 1; /* at the start or right after an operator */
	int bare_eq = 0;  /* the current word has an unquoted '=' */

	prov_cmd_init(c);
	sbuf_init(&word, 0);
	for (;;) {
		unsigned char ch = (unsigned char)*p;

		if (in_word && (ch == '\0' || ch == ' ' || ch == '\t' || ch == ';' || ch == '|' ||
				ch == '&')) {
			/* the end, a blank or an operator ends the word before it, as in "a; b" */
			if (need_cmd && bare_eq)
				goto out; /* NAME=value as a first word is an assignment */
			bare_eq = 0;
			if (need_cmd)
				prov_cmd_begin(c, next);
			need_cmd = 0;
			prov_cmd_arg_mem(c, word.buf, word.len);
			sbuf_reset(&word);
			in_word = 0;
		}
		if (ch == '\0')
			break;
		if (ch == ' ' || ch == '\t') {
			p++;
			continue;
		}
		if (!in_word && strncmp(p, "2>/dev/null", 11) == 0) {
			if (need_cmd || !(p[11] == '\0' || p[11] == ' ' || p[11] == '\t' ||
					  p[11] == ';' || p[11] == '|' || p[11] == '&'))
				goto out;
			c->v[c->n - 1].quiet = 1;
			p += 11;
			continue;
		}
		if (is_safe(ch) || ch == '=') {
			if (ch == '=')
				bare_eq = 1;
			sbuf_addc(&word, (char)ch);
			in_word = 1;
			p++;
			continue;
		}
		if (ch == '\'') {
			const char *end = strchr(p + 1, '\'');

			if (!end)
				goto out;
			sbuf_add(&word, p + 1, (size_t)(end - p - 1));
			in_word = 1;
			p = end + 1;
			continue;
		}
		if (ch == '\\' && p[1] == '\'') {
			sbuf_addc(&word, '\'');
			in_word = 1;
			p += 2;
			continue;
		}
		if (need_cmd)
			goto out; /* an operator with no command before it */
		if (strncmp(p, "&&", 2) == 0) {
			next = PROV_JOIN_AND;
			p += 2;
		} else if (strncmp(p, "||", 2) == 0) {
			next = PROV_JOIN_OR;
			p += 2;
		} else if (ch == '|') {
			next = PROV_JOIN_PIPE;
			p++;
		} else if (ch == ';') {
			next = PROV_JOIN_SEQ;
			p++;
		} else {
			goto out;
		}
		need_cmd = 1;
	}
	if (need_cmd || c->err)
		goto out; /* empty, or ends with an operator */
	rc = 0;
out:
	sbuf_release(&word);
	if (rc < 0)
		prov_cmd_release(c);
	return rc;
}

/* ---- the read-only guard's check (declared in transport.h) ---- */

/* A path whose components include ".kamal" and none of which is "..". */
static int under_kamal(const char *path)
{
	int seen = 0;
	const char *p = path;

	if (*path == '\0')
		return 0;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && strncmp(p, "..", 2) == 0)
			return 0;
		if (n == 6 && strncmp(p, ".kamal", 6) == 0)
			seen = 1;
		p += n;
		while (*p == '/')
			p++;
	}
	return seen;
}

static int in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

#define REFUSE(...)                                  \
	do {                                         \
		snprintf(why, why_len, __VA_ARGS__); \
		return PLUMB_EREFUSED;                \
	} while (0)

static int check_docker(char **a, size_t n, char *why, size_t why_len)
{
	static const char *const top[] = { "ps", "inspect", "version", "info", "images", NULL };
	static const char *const objs[] = { "image", "container", "network", "volume", NULL };
	static const char *const obj_verbs[] = { "inspect", "ls", NULL };

	if (n < 2)
		REFUSE("docker without a subcommand");
	if (a[1][0] == '-')
		REFUSE("docker global option '%s'", a[1]);
	if (in_list(a[1], top))
		return 0;
	if (in_list(a[1], objs)) {
		if (n >= 3 && in_list(a[2], obj_verbs))
			return 0;
		REFUSE("docker %s %s", a[1], n >= 3 ? a[2] : "");
	}
	if (strcmp(a[1], "exec") == 0 && n >= 5 && n <= 6 && strcmp(a[2], "kamal-proxy") == 0 &&
	    strcmp(a[3], "kamal-proxy") == 0 && strcmp(a[4], "list") == 0 &&
	    (n == 5 || strcmp(a[5], "--json") == 0))
		return 0;
	REFUSE("docker %s", a[1]);
}

static int check_simple(char **a, size_t n, char *why, size_t why_len)
{
	static const char *const any_args[] = { "ls", "test", "[", "echo", "printf", "id",
						"uname", "true", NULL };
	static const char *const readers[] = { "cat", "sha256sum", "base64", NULL };
	static const char *const find_ok[] = { "-print", "-print0", NULL };
	static const char *const find_arg[] = { "-maxdepth", "-mindepth", "-type", "-name",
						"-path", "-printf", NULL };
	const char *cmd = a[0];

	/*
	 * plumb's observation script (providers/observe.sh), identified by its
	 * exact text: sh -c SCRIPT plumb-observe ARGS... The script only reads
	 * (docker ps/inspect, files under .kamal) and treats ARGS as data
	 * (compared, hashed, quoted), never as code. Any other sh is refused.
	 */
	if (strcmp(cmd, "sh") == 0) {
		if (n >= 4 && strcmp(a[1], "-c") == 0 && strcmp(a[2], docker_obs_script) == 0 &&
		    strcmp(a[3], DOCKER_OBS_ARGV0) == 0)
			return 0;
		REFUSE("sh is allowed only for plumb's observation script");
	}
	if (strcmp(cmd, "docker") == 0)
		return check_docker(a, n, why, why_len);
	if (in_list(cmd, any_args))
		return 0;
	if (strcmp(cmd, "hostname") == 0) {
		static const char *const opts[] = { "-f", "-s", "-i", "-I", NULL };
		for (size_t i = 1; i < n; i++)
			if (!in_list(a[i], opts))
				REFUSE("hostname with argument '%s'", a[i]);
		return 0;
	}
	if (strcmp(cmd, "kamal-proxy") == 0) {
		if (n >= 2 && n <= 3 && strcmp(a[1], "list") == 0 &&
		    (n == 2 || strcmp(a[2], "--json") == 0))
			return 0;
		REFUSE("kamal-proxy %s", n >= 2 ? a[1] : "");
	}
	if (in_list(cmd, readers)) {
		for (size_t i = 1; i < n; i++) {
			if (strcmp(a[i], "-w") == 0 && i + 1 < n && strcmp(cmd, "base64") == 0) {
				i++;
				continue;
			}
			if (strcmp(a[i], "-w0") == 0 && strcmp(cmd, "base64") == 0)
				continue;
			if (a[i][0] == '-')
				REFUSE("%s option '%s'", cmd, a[i]);
			if (!under_kamal(a[i]))
				REFUSE("%s of a path outside .kamal", cmd);
		}
		return 0;
	}
	if (strcmp(cmd, "find") == 0) {
		size_t i = 1;

		if (i >= n || a[i][0] == '-')
			REFUSE("find without a starting path");
		for (; i < n && a[i][0] != '-'; i++)
			if (!under_kamal(a[i]))
				REFUSE("find outside .kamal");
		for (; i < n; i++) {
			if (in_list(a[i], find_ok))
				continue;
			if (in_list(a[i], find_arg) && i + 1 < n) {
				i++;
				continue;
			}
			REFUSE("find primary '%s'", a[i]);
		}
		return 0;
	}
	REFUSE("command '%s' is not on the read-only allowlist", cmd);
}

int prov_readonly_check(const struct prov_cmd *cmd, char *why, size_t why_len)
{
	if (cmd->err)
		REFUSE("invalid argument in the command");
	if (cmd->n == 0)
		REFUSE("empty command");
	for (size_t i = 0; i < cmd->n; i++) {
		const struct prov_simple *s = &cmd->v[i];
		int rc;

		if (s->argv.n == 0)
			REFUSE("empty command");
		rc = check_simple(s->argv.v, s->argv.n, why, why_len);
		if (rc < 0)
			return rc;
	}
	return 0;
}
