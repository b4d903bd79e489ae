/*
 * plumb apply: what plan shows, done (reconciler/executor.h), under Kamal's
 * deploy lock, with Kamal's hooks. plumb rollback: the app roles back to a
 * retained version through the same executor (no pull).
 *
 * The pipeline is plan's (reconciler/pipeline.h), with a read-write fleet
 * handle: only these two commands open one. Nothing to do → exit 0 without
 * the lock and without another command on any host. Exit 0 converged, 1 not
 * (the summary says what was done and what was not), 128 + the signal when a
 * second SIGINT/SIGTERM stopped it at once (the protocol: reconciler/lock.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff/render.h"
#include "reconciler/apply.h"
#include "reconciler/cli.h"
#include "reconciler/executor.h"
#include "reconciler/lock.h"
#include "reconciler/pipeline.h"
#include "reconciler/source_opts.h"
#include "state/escape.h"


struct apply_args {
	const char *cmd;     /* "apply" or "rollback" */
	struct rec_source_opts src;
	const char *expect;
	int yes;
	int skip_hooks;
};

/* apply and rollback trust the source they were pointed at (DESIGN): hooks,
 * $(…) secrets and ERB as Kamal runs them; --untrusted turns it off. */
static int parse_args(struct apply_args *a, int argc, char **argv, int rollback)
{
	const struct rec_extra_opt extra[] = {
		{ "expect-plan", 0, &a->expect, NULL },
		{ "yes", 'y', NULL, &a->yes },
		{ "skip-hooks", 0, NULL, &a->skip_hooks },
		{ NULL, 0, NULL, NULL },
	};
	const struct rec_source_spec spec = {
		a->cmd,
		REC_SRC_CONFIG | REC_SRC_GIT | REC_SRC_VERSION | REC_SRC_TRUSTED | REC_SRC_UNTRUSTED |
			REC_SRC_PRUNE | REC_SRC_TIMEOUT,
		extra,
		rollback ? &a->src.version : NULL, /* rollback [VERSION] */
	};

	return rec_source_opts_parse(&a->src, &spec, argc, argv);
}

/* On a TTY, asks; without one, only --yes proceeds. 0 = go. */
static int confirm(const struct apply_args *a)
{
	char line[16];

	if (a->yes)
		return 0;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "plumb %s: not a terminal: pass --yes to %s without a question\n",
			a->cmd, a->cmd);
		return -1;
	}
	fprintf(stderr, "Apply these changes? [y/N] ");
	if (!fgets(line, sizeof(line), stdin) || (strcmp(line, "y\n") != 0 && strcmp(line, "yes\n") != 0)) {
		fprintf(stderr, "plumb %s: nothing done\n", a->cmd);
		return -1;
	}
	return 0;
}

static int apply_run(struct apply_args *a, int rollback)
{
	struct rec_pipeline_opts po = { 0 };
	struct rec_pipeline_result res = { 0 };
	struct rec_apply_opts ao = { 0 };
	struct rec_exec_report rep = { 0 };
	struct rec_apply x;
	struct plumb_err err = { 0 };
	struct render_opts ro = { 0 };
	struct sbuf out;
	int rc = REC_EXIT_ERROR, prc;

	/* first, so that a pre-connect hook hears Ctrl-C too (the protocol: lock.h) */
	rec_signals_install();
	sbuf_init(&out, 0);
	ao.cmd = a->cmd;
	ao.rollback = rollback;
	ao.skip_hooks = a->skip_hooks;
	ao.trusted = a->src.trusted;
	ao.out = stdout;
	rec_apply_init(&x, &ao);
	po.cmd = a->cmd;
	po.until = REC_STAGE_DIFF;
	po.mode = FLEET_READ_WRITE;
	po.src = a->src;
	po.rollback = rollback;
	rec_apply_hook_pipeline(&x, &po, &res);
	prc = rec_pipeline_run(&res, &po);
	esc_fputs(res.log, stderr);
	if (prc < 0)
		goto out;
	ro.color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	if (diff_render_text(res.plan, &ro, &out) != 0) {
		fprintf(stderr, "plumb %s: rendering failed\n", a->cmd);
		goto out;
	}
	fwrite(out.buf, 1, out.len, stdout);
	fflush(stdout);
	if (res.plan->failed_hosts) {
		fprintf(stderr, "plumb %s: %zu host%s could not be planned: nothing done\n", a->cmd,
			res.plan->failed_hosts, res.plan->failed_hosts == 1 ? "" : "s");
		goto out;
	}
	if (a->expect && strcmp(a->expect, res.plan->hash) != 0) {
		fprintf(stderr, "plumb %s: the plan is %s, not the one reviewed (%s): nothing done\n",
			a->cmd, res.plan->hash, a->expect);
		goto out;
	}
	if (diff_plan_exit_code(res.plan) == 0) {
		printf("Nothing to do.\n");
		rc = REC_EXIT_OK;
		goto out;
	}
	if (confirm(a) != 0)
		goto out;
	prc = rec_apply_execute(&x, &res, &rep, &err);
	fputs("\n", stdout);
	esc_fputs(rep.summary, stdout);
	fflush(stdout);
	if (prc < 0) {
		esc_eprintf("plumb %s: %s\n", a->cmd, plumb_err_msg(&err));
		goto out;
	}
	printf("%s: converged on version %s (%lu commands, at most %lu on one host with the "
	       "observation)\n", a->cmd, res.desired->version, rep.commands, rep.max_host_commands);
	rc = REC_EXIT_OK;
out:
	if (rc != REC_EXIT_OK && !rep.locked && rec_interrupted())
		fprintf(stderr, "plumb %s: interrupted: nothing done\n", a->cmd);
	rec_exec_report_release(&rep);
	rec_apply_release(&x);
	sbuf_release(&out);
	rec_pipeline_result_release(&res);
	return rc;
}

int cmd_apply(int argc, char **argv)
{
	struct apply_args a = { .cmd = "apply" };

	if (parse_args(&a, argc, argv, 0) != 0)
		return REC_EXIT_ERROR;
	return apply_run(&a, 0);
}

int cmd_rollback(int argc, char **argv)
{
	struct apply_args a = { .cmd = "rollback" };

	if (parse_args(&a, argc, argv, 1) != 0)
		return REC_EXIT_ERROR;
	return apply_run(&a, 1);
}
