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
#include "reconciler/cli.h"
#include "reconciler/executor.h"
#include "reconciler/lock.h"
#include "reconciler/pipeline.h"
#include "reconciler/source_opts.h"
#include "state/escape.h"

#include "reconciler/hooks.h"

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

struct apply_ctx {
	const struct apply_args *a;
	const struct config *config;
	const struct desired *ds;
	const char *root;
	char *performer;
	const char *version; /* before the desired state exists (pre-connect) */
	int locked;  /* the deploy lock is held (KAMAL_LOCK) */
	const char *lock_name;
	const struct rec_pipeline_result *res; /* what the run was planned from */
	char *who;   /* the lock's holder: this run (rec_lock_who) */
	struct fleet *fleet;  /* for the signal thread's release (release_now) */
	size_t lock_host;
	double t0;   /* for KAMAL_RUNTIME */
};

/* A hook of .kamal/hooks by name; 0 when absent, skipped or passed. */
static int run_hook(struct apply_ctx *x, const struct config *c, const char *root, const char *name)
{
	struct rec_hook_env env = { 0 };
	struct plumb_err err = { 0 };
	char runtime[32];

	if (x->a->skip_hooks)
		return 0;
	env.config = c;
	env.ds = x->ds;
	env.performer = x->performer;
	if (!x->ds)
		env.version = x->version;
	env.command = strcmp(x->a->cmd, "apply") == 0 ? "deploy" : x->a->cmd;
	env.lock = x->locked;
	if (strcmp(name, "post-deploy") == 0) {
		snprintf(runtime, sizeof(runtime), "%.0f", (prov_now_ms() - x->t0) / 1000.0);
		env.runtime = runtime;
	}
	if (rec_hook_run(root, name, &env, x->a->src.trusted, &err) != 0) {
		esc_eprintf("plumb %s: %s\n", x->a->cmd, plumb_err_msg(&err));
		return -1;
	}
	return 0;
}

static int before_connect(const struct config *c, const char *root, const char *version, void *ctx)
{
	struct apply_ctx *x = ctx;

	x->config = c;
	x->root = root;
	x->version = version;
	return run_hook(x, c, root, "pre-connect");
}

static int exec_hook(const char *name, void *ctx)
{
	struct apply_ctx *x = ctx;

	return run_hook(x, x->config, x->root, name);
}

static void exec_audit(struct prov_cmd *c, enum prov_join join, const char *text, void *ctx)
{
	struct apply_ctx *x = ctx;

	rec_audit_cmd(c, join, x->ds, x->performer, text);
}

/* Bounds the signal thread's release: connect, then the command. */
#define RELEASE_NOW_TIMEOUT_MS 10000

/* rec_release_now_fn: on a session of its own, since the run's may be in the
 * middle of a command in another thread; only this run's lock. */
static int release_now(void *ctx, struct plumb_err *err)
{
	struct apply_ctx *x = ctx;
	struct transport *t = NULL;
	int rc = fleet_open_spare(x->fleet, x->lock_host, RELEASE_NOW_TIMEOUT_MS, &t, err);

	if (rc == 0)
		rc = rec_lock_release_as(t, x->lock_name, x->who, err);
	transport_close(t);
	return rc;
}

/* Called from the worker that sends the taking (or the executor's thread). */
static int exec_lock_cmd(struct prov_cmd *c, enum prov_join join, struct plumb_err *err, void *ctx)
{
	struct apply_ctx *x = ctx;
	int rc = rec_lock_acquire_cmd(c, join, x->lock_name, x->who, x->ds->version,
				      REC_LOCK_AUTO_MESSAGE, err);

	if (rc == 0)
		rec_signals_phase(REC_SIG_TAKING, release_now, x);
	return rc;
}

static int exec_lock_read(struct transport *t, const struct cmd_result *r, int *taken,
			  struct plumb_err *err, void *ctx)
{
	struct apply_ctx *x = ctx;
	int rc = rec_lock_acquire_read(t, x->lock_name, r, taken, err);

	x->locked = *taken;
	rec_signals_phase(*taken ? REC_SIG_HELD : REC_SIG_FREE, release_now, x);
	return rc;
}

static int exec_read_file(const char *relpath, char **out, size_t *len, struct plumb_err *err,
			  void *ctx)
{
	struct apply_ctx *x = ctx;

	return rec_pipeline_read(x->res, relpath, out, len, err);
}

static int interrupted(void)
{
	return rec_interrupted() != 0;
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

/* Host index of the primary host (the lock's) in the fleet, or -1. */
static long primary_index(const struct rec_pipeline_result *res)
{
	const char *p = res->desired->primary_hosts.n ? res->desired->primary_hosts.v[0] : NULL;

	if (!p && res->desired->nhosts)
		p = res->desired->hosts[0].host;
	for (size_t i = 0; p && i < res->obs->nhosts && i < fleet_nhosts(res->fleet); i++)
		if (strcmp(res->obs->hosts[i].host, p) == 0)
			return (long)i;
	return -1;
}

static int apply_run(struct apply_args *a, int rollback)
{
	struct rec_pipeline_opts po = { 0 };
	struct rec_pipeline_result res = { 0 };
	struct rec_exec_opts eo = { 0 };
	struct rec_exec_report rep = { 0 };
	struct apply_ctx x = { 0 };
	struct plumb_err err = { 0 };
	struct render_opts ro = { 0 };
	struct transport *lt = NULL;
	struct sbuf out;
	char *lock_name = NULL;
	long pi;
	int rc = REC_EXIT_ERROR, locked = 0, prc;

	/* first, so that a pre-connect hook hears Ctrl-C too (the protocol: lock.h) */
	rec_signals_install();
	sbuf_init(&out, 0);
	x.a = a;
	x.performer = rec_performer();
	x.who = rec_lock_who(0);
	x.t0 = prov_now_ms();
	po.cmd = a->cmd;
	po.until = REC_STAGE_DIFF;
	po.mode = FLEET_READ_WRITE;
	po.src = a->src;
	po.rollback = rollback;
	po.before_connect = before_connect;
	po.ctx = &x;
	prc = rec_pipeline_run(&res, &po);
	esc_fputs(res.log, stderr);
	if (prc < 0)
		goto out;
	x.config = res.config;
	x.ds = res.desired;
	x.root = res.root;
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
	pi = primary_index(&res);
	if (pi < 0 || fleet_writer(res.fleet, (size_t)pi, &lt, &err) != 0) {
		esc_eprintf("plumb %s: the primary host cannot be reached for the lock: %s\n", a->cmd,
			    pi < 0 ? "no primary host" : plumb_err_msg(&err));
		goto out;
	}
	lock_name = rec_lock_name(res.desired);
	x.lock_name = lock_name;
	x.fleet = res.fleet;
	x.lock_host = (size_t)pi;
	/* the executor takes the lock in front of the primary host's first
	 * command, then runs pre-deploy (exec_hook) before any step */
	eo.lock_cmd = exec_lock_cmd;
	eo.lock_read = exec_lock_read;
	eo.lock_host = (size_t)pi;
	eo.read_file = exec_read_file;
	x.res = &res;
	eo.config = res.config;
	eo.ds = res.desired;
	eo.plan = res.plan;
	eo.obs = res.obs;
	eo.fleet = res.fleet;
	eo.no_pull = rollback;
	eo.rollback = rollback;
	eo.out = stdout;
	eo.hook = exec_hook;
	eo.audit = exec_audit;
	eo.interrupted = interrupted;
	eo.ctx = &x;
	plumb_err_reset(&err);
	prc = rec_execute(&eo, &rep, &err);
	locked = rep.locked;
	if (!locked)
		rec_signals_phase(REC_SIG_FREE, NULL, NULL); /* a taking whose answer was lost */
	fputs("\n", stdout);
	esc_fputs(rep.summary, stdout);
	fflush(stdout);
	if (prc < 0) {
		esc_eprintf("plumb %s: %s\n", a->cmd, plumb_err_msg(&err));
		goto out;
	}
	if (run_hook(&x, res.config, res.root, "post-deploy") != 0)
		goto out;
	printf("%s: converged on version %s (%lu commands, at most %lu on one host with the "
	       "observation)\n", a->cmd, res.desired->version, rep.commands, rep.max_host_commands);
	rc = REC_EXIT_OK;
out:
	if (locked) {
		rec_signals_phase(REC_SIG_RELEASING, NULL, NULL);
		plumb_err_reset(&err);
		if (rec_lock_release(lt, lock_name, &err) != 0)
			esc_eprintf("plumb %s: releasing the lock %s failed: %s (plumb lock release)\n",
				    a->cmd, lock_name, plumb_err_msg(&err));
		else if (rec_interrupted())
			fprintf(stderr, "plumb %s: interrupted; the deploy lock was released\n", a->cmd);
		rec_signals_phase(REC_SIG_FREE, NULL, NULL);
	} else if (rec_interrupted()) {
		fprintf(stderr, "plumb %s: interrupted: nothing done\n", a->cmd);
	}
	free(lock_name);
	free(x.performer);
	free(x.who);
	rec_exec_report_release(&rep);
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
