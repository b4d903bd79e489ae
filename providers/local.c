/*
 * The local transport: /bin/sh on this machine, with the same framing, bounds
 * and timeouts as the SSH transport (shared parts in transport.c), run by the
 * one local runner (providers/run.h: own process group, no inherited
 * descriptors, deadline, kill of the group).
 */
#include "providers/transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "providers/run.h"

/* ---- local transport ---- */

static int local_run_input(struct transport *t, const char *cmd, const void *in, size_t in_len,
			   struct cmd_result *r)
{
	char token[PROV_TOKEN_LEN + 1];
	struct sbuf line;
	struct prov_child c = { 0 };
	struct plumb_err e = { 0 };
	const char *argv[] = { "/bin/sh", "-c", NULL, NULL };
	int rc = PLUMB_ERROR, ran = 0;
	double start = prov_now_ms();
	/* Room for the markers and the shell's own noise around the command's output. */
	size_t raw_max = t->max_output + 4096;

	cmd_result_init(r, t->max_output);
	sbuf_init(&line, 0);
	t->stats.commands++;
	if (prov_frame_build_stdin(&line, cmd, token, in != NULL) < 0) {
		rc = prov_fail(t, PLUMB_EINVAL, "%s: cannot frame the command", t->label);
		goto out;
	}
	argv[2] = line.buf;
	c.argv = argv;
	c.in = in;
	c.in_len = in_len;
	c.timeout_ms = t->cmd_timeout_ms;
	c.out_max = raw_max;
	c.err_max = raw_max;
	ran = 1;
	switch (prov_child_run(&c, &e)) {
	case 0: /* a shell killed by a signal has no exit status */
		rc = prov_finish_framed(t, r, token, &c.out, &c.err, c.signal ? -1 : c.status);
		break;
	case PLUMB_ETIMEOUT:
		rc = prov_fail(t, PLUMB_ETIMEOUT, "%s: command timed out after %d ms", t->label,
			       t->cmd_timeout_ms);
		prov_keep_partial(r, token, &c.out, &c.err);
		break;
	case PLUMB_ETRUNC:
		rc = prov_fail(t, PLUMB_ETRUNC, "%s: output exceeds %zu bytes", t->label,
			       t->max_output);
		prov_keep_partial(r, token, &c.out, &c.err);
		break;
	default:
		rc = prov_fail(t, PLUMB_ERROR, "%s: %s", t->label, plumb_err_msg(&e));
		break;
	}
out:
	r->elapsed_ms = prov_now_ms() - start;
	t->stats.command_ms += r->elapsed_ms;
	if (ran)
		prov_child_release(&c);
	sbuf_release(&line);
	return rc;
}

static int local_run(struct transport *t, const char *cmd, struct cmd_result *r)
{
	return local_run_input(t, cmd, NULL, 0, r);
}

static void local_close(struct transport *t)
{
	free(t->label);
	free(t);
}

static const struct transport_ops local_ops = {
	.name = "local",
	.run = local_run,
	.run_cmd = prov_run_cmd_rendered,
	.run_input = local_run_input,
	.close = local_close,
};

int transport_local_open(struct transport **out)
{
	struct transport *t = xcalloc(1, sizeof(*t));

	prov_transport_init(t, &local_ops, "localhost", 0, 0);
	*out = t;
	return 0;
}
