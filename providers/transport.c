/*
 * What every transport shares: dispatch through the ops table, error messages,
 * output framing, and the read-only guard that wraps another transport.
 * The transports themselves are in local.c and ssh.c.
 */
#include "providers/transport.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- shared ---- */

double prov_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int prov_fail(struct transport *t, int code, const char *fmt, ...)
{
	va_list ap;

	t->err.code = code;
	va_start(ap, fmt);
	vsnprintf(t->err.msg, sizeof(t->err.msg), fmt, ap);
	va_end(ap);
	return code;
}

void prov_transport_init(struct transport *t, const struct transport_ops *ops, const char *label,
			 int cmd_timeout_ms, size_t max_output)
{
	memset(t, 0, sizeof(*t));
	t->ops = ops;
	t->label = xstrdup(label);
	t->cmd_timeout_ms = cmd_timeout_ms > 0 ? cmd_timeout_ms : PROV_DEFAULT_CMD_TIMEOUT_MS;
	t->max_output = max_output ? max_output : PROV_DEFAULT_MAX_OUTPUT;
}

void cmd_result_init(struct cmd_result *r, size_t max_output)
{
	r->status = -1;
	r->elapsed_ms = 0;
	sbuf_init(&r->out, max_output);
	sbuf_init(&r->err, max_output);
}

void cmd_result_release(struct cmd_result *r)
{
	sbuf_release(&r->out);
	sbuf_release(&r->err);
}

int transport_run(struct transport *t, const char *cmd, struct cmd_result *out)
{
	plumb_err_reset(&t->err);
	return t->ops->run(t, cmd, out);
}

int transport_run_cmd(struct transport *t, const struct prov_cmd *cmd, struct cmd_result *out)
{
	plumb_err_reset(&t->err);
	return t->ops->run_cmd(t, cmd, out);
}

int transport_run_input(struct transport *t, const char *cmd, const void *in, size_t in_len,
			struct cmd_result *out)
{
	plumb_err_reset(&t->err);
	if (!t->ops->run_input) {
		cmd_result_init(out, t->max_output);
		t->stats.refused++;
		return prov_fail(t, PLUMB_EREFUSED,
				 "%s: refused by the %s transport: a command fed input may mutate",
				 t->label, t->ops->name);
	}
	if (in_len > PROV_MAX_INPUT) {
		cmd_result_init(out, t->max_output);
		return prov_fail(t, PLUMB_ETOOBIG, "%s: input of %zu bytes exceeds %u", t->label,
				 in_len, PROV_MAX_INPUT);
	}
	return t->ops->run_input(t, cmd, in, in_len, out);
}

int transport_run_cmd_input(struct transport *t, const struct prov_cmd *cmd, const void *in,
			    size_t in_len, struct cmd_result *out)
{
	struct sbuf line;
	int rc;

	sbuf_init(&line, 0);
	if (prov_cmd_render(cmd, &line) < 0) {
		plumb_err_reset(&t->err);
		cmd_result_init(out, t->max_output);
		rc = prov_fail(t, PLUMB_EINVAL, "%s: cannot render the command", t->label);
	} else {
		rc = transport_run_input(t, line.buf, in, in_len, out);
	}
	sbuf_release(&line);
	return rc;
}

void transport_close(struct transport *t)
{
	if (t)
		t->ops->close(t);
}

const struct plumb_err *transport_err(const struct transport *t)
{
	return &t->err;
}

int prov_run_cmd_rendered(struct transport *t, const struct prov_cmd *cmd, struct cmd_result *out)
{
	struct sbuf s;
	int rc;

	sbuf_init(&s, 0);
	rc = prov_cmd_render(cmd, &s);
	if (rc < 0) {
		cmd_result_init(out, t->max_output);
		rc = prov_fail(t, rc, "%s: cannot build the command (%s)", t->label,
			       plumb_strerror(rc));
	} else {
		rc = t->ops->run(t, s.buf, out);
	}
	sbuf_release(&s);
	return rc;
}

/* ---- framing ---- */

int prov_frame_build(struct sbuf *out, const char *cmd, char token[PROV_TOKEN_LEN + 1])
{
	return prov_frame_build_stdin(out, cmd, token, 0);
}

int prov_frame_build_stdin(struct sbuf *out, const char *cmd, char token[PROV_TOKEN_LEN + 1],
			   int with_stdin)
{
	unsigned char rnd[PROV_TOKEN_LEN / 2];
	struct sbuf script;
	size_t got = 0;
	int rc;

	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	/*
	 * The command runs in a subshell on lines of its own, so an `exit`, a
	 * trailing comment or a trailing & in it cannot skip the END marker.
	 */
	sbuf_init(&script, 0);
	sbuf_addf(&script,
		  "printf '%%s\\n' BEGIN-%s; printf '%%s\\n' BEGIN-%s >&2; (\n%s\n) %s; "
		  "s=$?; printf '\\n%%s %%d\\n' END-%s \"$s\"; printf '\\n%%s %%d\\n' END-%s \"$s\" >&2; "
		  "exit \"$s\"",
		  token, token, cmd, with_stdin ? "" : "</dev/null", token, token);
	rc = sbuf_adds(out, "sh -c ");
	if (rc == 0)
		rc = shell_quote_mem(out, script.buf, script.len);
	sbuf_release(&script);
	return rc;
}

static const char *mem_find(const char *hay, size_t hay_len, const char *needle, size_t n)
{
	return n <= hay_len ? memmem(hay, hay_len, needle, n) : NULL;
}

int prov_frame_parse(const char *raw, size_t raw_len, const char *token, int want_status,
		     struct sbuf *dst, int *status)
{
	char begin[PROV_TOKEN_LEN + 16], end[PROV_TOKEN_LEN + 16];
	const char *b, *e = NULL, *p, *data;
	size_t blen, elen, dlen;
	int st = -1;

	(void)want_status;
	*status = -1;
	blen = (size_t)snprintf(begin, sizeof(begin), "BEGIN-%s\n", token);
	elen = (size_t)snprintf(end, sizeof(end), "\nEND-%s ", token);
	b = mem_find(raw, raw_len, begin, blen);
	if (!b) {
		sbuf_add(dst, raw, raw_len);
		return PLUMB_ENOSTATUS;
	}
	data = b + blen;
	/* The last END marker after BEGIN that is followed by "<digits>\n". */
	for (p = data;;) {
		const char *q = mem_find(p, raw_len - (size_t)(p - raw), end, elen);
		const char *d;
		int v = 0, nd = 0;

		if (!q)
			break;
		d = q + elen;
		while (d < raw + raw_len && *d >= '0' && *d <= '9' && nd < 4) {
			v = v * 10 + (*d - '0');
			d++;
			nd++;
		}
		if (nd > 0 && d < raw + raw_len && *d == '\n') {
			e = q;
			st = v;
		}
		p = q + 1;
	}
	if (!e) {
		sbuf_add(dst, data, raw_len - (size_t)(data - raw));
		return PLUMB_ENOSTATUS;
	}
	dlen = (size_t)(e - data);
	if (sbuf_add(dst, data, dlen) < 0)
		return PLUMB_ETRUNC;
	*status = st;
	return 0;
}

int prov_finish_framed(struct transport *t, struct cmd_result *r, const char *token,
		       const struct sbuf *raw_out, const struct sbuf *raw_err, int channel_status)
{
	int so = -1, se = -1, rc_out, rc_err;

	rc_out = prov_frame_parse(raw_out->buf, raw_out->len, token, 1, &r->out, &so);
	rc_err = prov_frame_parse(raw_err->buf, raw_err->len, token, 1, &r->err, &se);
	if (rc_out == PLUMB_ETRUNC || rc_err == PLUMB_ETRUNC)
		return prov_fail(t, PLUMB_ETRUNC, "%s: output exceeds %zu bytes", t->label,
				 t->max_output);
	if (channel_status < 0)
		return prov_fail(t, PLUMB_ENOSTATUS,
				 "%s: the command ended without an exit status (killed by a signal?)",
				 t->label);
	r->status = channel_status;
	if (rc_out < 0)
		return prov_fail(t, PLUMB_ENOSTATUS,
				 "%s: output framing lost (exit status %d, no END marker on stdout)",
				 t->label, channel_status);
	if (so != channel_status)
		return prov_fail(t, PLUMB_ENOSTATUS,
				 "%s: exit status %d disagrees with the framed status %d", t->label,
				 channel_status, so);
	(void)rc_err; /* stderr framing is best effort: a missing marker keeps it raw */
	(void)se;
	return 0;
}

void prov_keep_partial(struct cmd_result *r, const char *token, const struct sbuf *raw_out,
		       const struct sbuf *raw_err)
{
	int ignored;

	prov_frame_parse(raw_out->buf, raw_out->len, token, 0, &r->out, &ignored);
	prov_frame_parse(raw_err->buf, raw_err->len, token, 0, &r->err, &ignored);
}

/* ---- read-only guard ---- */

struct readonly {
	struct transport base; /* first: a struct transport * is a struct readonly * */
	struct transport *inner; /* borrowed */
};

static int ro_run_cmd(struct transport *t, const struct prov_cmd *cmd, struct cmd_result *r)
{
	struct readonly *ro = (struct readonly *)t;
	char why[256];
	unsigned long refused;
	int rc;

	if (prov_readonly_check(cmd, why, sizeof(why)) < 0) {
		cmd_result_init(r, t->max_output);
		t->stats.refused++;
		return prov_fail(t, PLUMB_EREFUSED, "%s: refused by the read-only guard: %s",
				 t->label, why);
	}
	rc = transport_run_cmd(ro->inner, cmd, r);
	if (rc < 0)
		t->err = ro->inner->err;
	refused = t->stats.refused;
	t->stats = ro->inner->stats;
	t->stats.refused = refused;
	return rc;
}

static int ro_run(struct transport *t, const char *cmd, struct cmd_result *r)
{
	struct prov_cmd c;
	int rc;

	if (prov_cmd_parse_strict(&c, cmd) < 0) {
		cmd_result_init(r, t->max_output);
		t->stats.refused++;
		return prov_fail(t, PLUMB_EREFUSED,
				 "%s: refused by the read-only guard: not a plain command list "
				 "(only quoted words, ; && || | and 2>/dev/null are allowed)",
				 t->label);
	}
	rc = ro_run_cmd(t, &c, r);
	prov_cmd_release(&c);
	return rc;
}

static void ro_close(struct transport *t)
{
	free(t->label);
	free(t);
}

static const struct transport_ops ro_ops = {
	.name = "readonly",
	.run = ro_run,
	.run_cmd = ro_run_cmd,
	.close = ro_close,
};

int transport_readonly_wrap(struct transport **out, struct transport *inner)
{
	struct readonly *ro = xcalloc(1, sizeof(*ro));

	prov_transport_init(&ro->base, &ro_ops, inner->label, inner->cmd_timeout_ms,
			    inner->max_output);
	ro->inner = inner;
	*out = &ro->base;
	return 0;
}
