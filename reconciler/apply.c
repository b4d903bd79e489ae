/*
 * Carrying out a plan under the deploy lock, with Kamal's hooks (apply.h).
 */
#include "reconciler/apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reconciler/hooks.h"
#include "reconciler/lock.h"
#include "state/escape.h"

void rec_apply_init(struct rec_apply *x, const struct rec_apply_opts *o)
{
	memset(x, 0, sizeof(*x));
	x->o = *o;
	x->performer = rec_performer();
	x->who = rec_lock_who(0);
	x->t0 = prov_now_ms();
}

void rec_apply_release(struct rec_apply *x)
{
	if (x->tree) {
		util_rm_tree(x->tree);
		/* the private parent mkdtemp made */
		*strrchr(x->tree, '/') = '\0';
		rmdir(x->tree);
		free(x->tree);
	}
	free(x->performer);
	free(x->who);
	free(x->lock_name);
	memset(x, 0, sizeof(*x));
}

/* A hook of .kamal/hooks by name; 0 when absent, skipped or passed. */
static int run_hook(struct rec_apply *x, const struct config *c, const char *root, const char *name,
		    const char *hosts)
{
	struct rec_hook_env env = { 0 };
	struct plumb_err err = { 0 };
	char runtime[32];

	if (x->o.skip_hooks)
		return 0;
	env.config = c;
	env.ds = x->ds;
	env.performer = x->performer;
	if (!x->ds)
		env.version = x->version;
	env.hosts = hosts;
	env.command = strcmp(x->o.cmd, "rollback") == 0 ? "rollback" : "deploy";
	env.lock = x->locked;
	if (strcmp(name, "post-deploy") == 0) {
		snprintf(runtime, sizeof(runtime), "%.0f", (prov_now_ms() - x->t0) / 1000.0);
		env.runtime = runtime;
	}
	if (!x->o.hooks_root && x->res && rec_pipeline_from_commit(x->res)) {
		/* a commit's hooks: its files written out once, privately */
		if (!x->tree) {
			char tmpl[] = "/tmp/plumb-hooks-XXXXXX";
			char *top = mkdtemp(tmpl);
			if (!top) {
				esc_eprintf("plumb %s: no temporary directory for the commit's hooks\n",
					    x->o.cmd);
				return -1;
			}
			x->tree = xasprintf("%s/tree", top);
			if (rec_pipeline_export(x->res, x->tree, &err) != 0) {
				esc_eprintf("plumb %s: the commit's hooks: %s\n", x->o.cmd,
					    plumb_err_msg(&err));
				return -1;
			}
		}
		root = x->tree;
	}
	if (rec_hook_run(x->o.hooks_root ? x->o.hooks_root : root, name, &env, x->o.trusted,
			 &err) != 0) {
		esc_eprintf("plumb %s: %s\n", x->o.cmd, plumb_err_msg(&err));
		return -1;
	}
	return 0;
}

static int before_connect(const struct config *c, const char *root, const char *version, void *ctx)
{
	struct rec_apply *x = ctx;

	x->config = c;
	x->root = root;
	x->version = version;
	return run_hook(x, c, root, "pre-connect", NULL);
}

void rec_apply_hook_pipeline(struct rec_apply *x, struct rec_pipeline_opts *po,
			     const struct rec_pipeline_result *res)
{
	po->before_connect = before_connect;
	po->ctx = x;
	x->res = res;
}

static int exec_hook(const char *name, const char *hosts, void *ctx)
{
	struct rec_apply *x = ctx;

	return run_hook(x, x->config, x->root, name, hosts);
}

static void exec_audit(struct prov_cmd *c, enum prov_join join, const char *text, void *ctx)
{
	struct rec_apply *x = ctx;

	rec_audit_cmd(c, join, x->ds, x->performer, text);
}

/* Bounds the signal thread's release: connect, then the command. */
#define RELEASE_NOW_TIMEOUT_MS 10000

/* rec_release_now_fn: on a session of its own, since the run's may be in the
 * middle of a command in another thread; only this run's lock. */
static int release_now(void *ctx, struct plumb_err *err)
{
	struct rec_apply *x = ctx;
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
	struct rec_apply *x = ctx;
	int rc = rec_lock_acquire_cmd(c, join, x->lock_name, x->who, x->ds->version,
				      REC_LOCK_AUTO_MESSAGE, err);

	if (rc == 0)
		rec_signals_phase(REC_SIG_TAKING, release_now, x);
	return rc;
}

static int exec_lock_read(struct transport *t, const struct cmd_result *r, int *taken,
			  struct plumb_err *err, void *ctx)
{
	struct rec_apply *x = ctx;
	int rc = rec_lock_acquire_read(t, x->lock_name, r, taken, err);

	x->locked = *taken;
	rec_signals_phase(*taken ? REC_SIG_HELD : REC_SIG_FREE, release_now, x);
	return rc;
}

static int exec_read_file(const char *relpath, char **out, size_t *len, struct plumb_err *err,
			  void *ctx)
{
	struct rec_apply *x = ctx;

	return rec_pipeline_read(x->res, relpath, out, len, err);
}

static int interrupted(void)
{
	return rec_interrupted() != 0;
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

/* Whether the primary host was planned (observed). */
static int primary_planned(const struct rec_pipeline_result *res, size_t pi)
{
	const char *h = res->obs->hosts[pi].host;

	for (size_t i = 0; i < res->plan->nhosts; i++)
		if (strcmp(res->plan->hosts[i].host, h) == 0)
			return res->plan->hosts[i].status == DIFF_HOST_OK;
	return 0;
}

int rec_apply_execute(struct rec_apply *x, const struct rec_pipeline_result *res,
		      struct rec_exec_report *rep, struct plumb_err *err)
{
	struct rec_exec_opts eo = { 0 };
	struct transport *lt = NULL;
	struct plumb_err rerr = { 0 };
	long pi;
	int rc;

	memset(rep, 0, sizeof(*rep));
	x->config = res->config;
	x->ds = res->desired;
	x->root = res->root;
	x->res = res;
	if (res->plan->failed_hosts && !x->o.partial) {
		rc = plumb_err_set(err, PLUMB_EUNREACHABLE, "%zu host%s could not be planned: nothing done",
				   res->plan->failed_hosts, res->plan->failed_hosts == 1 ? "" : "s");
		goto out;
	}
	pi = primary_index(res);
	if (pi < 0) {
		rc = plumb_err_set(err, PLUMB_EUNREACHABLE,
				   "no primary host for the deploy lock: nothing done");
		goto out;
	}
	if (!primary_planned(res, (size_t)pi) || fleet_writer(res->fleet, (size_t)pi, &lt, &rerr) != 0) {
		rc = plumb_err_set(err, PLUMB_EUNREACHABLE,
				   "the primary host %s, which holds the deploy lock, cannot be reached%s%s: "
				   "nothing done", res->obs->hosts[pi].host, rerr.code ? ": " : "",
				   rerr.code ? plumb_err_msg(&rerr) : "");
		goto out;
	}
	free(x->lock_name);
	x->lock_name = rec_lock_name(res->desired);
	x->fleet = res->fleet;
	x->lock_host = (size_t)pi;
	/* the executor takes the lock in front of the primary host's first
	 * command, then runs pre-deploy (exec_hook) before any step */
	eo.lock_cmd = exec_lock_cmd;
	eo.lock_read = exec_lock_read;
	eo.lock_host = (size_t)pi;
	eo.read_file = exec_read_file;
	eo.config = res->config;
	eo.ds = res->desired;
	eo.plan = res->plan;
	eo.obs = res->obs;
	eo.fleet = res->fleet;
	eo.no_pull = x->o.rollback;
	eo.rollback = x->o.rollback;
	eo.out = x->o.out ? x->o.out : stdout;
	eo.hook = exec_hook;
	eo.audit = exec_audit;
	eo.interrupted = interrupted;
	eo.ctx = x;
	rc = rec_execute(&eo, rep, err);
	if (!rep->locked)
		rec_signals_phase(REC_SIG_FREE, NULL, NULL); /* a taking whose answer was lost */
	x->locked = rep->locked;
	if (rc == 0 && run_hook(x, res->config, res->root, "post-deploy", NULL) != 0)
		rc = plumb_err_set(err, PLUMB_ERROR, "the post-deploy hook failed");
	if (x->locked) {
		rec_signals_phase(REC_SIG_RELEASING, NULL, NULL);
		plumb_err_reset(&rerr);
		if (rec_lock_release(lt, x->lock_name, &rerr) != 0)
			esc_eprintf("plumb %s: releasing the lock %s failed: %s (plumb lock release)\n",
				    x->o.cmd, x->lock_name, plumb_err_msg(&rerr));
		else if (rec_interrupted())
			fprintf(stderr, "plumb %s: interrupted; the deploy lock was released\n", x->o.cmd);
		x->locked = 0;
		rec_signals_phase(REC_SIG_FREE, NULL, NULL);
	}
out:
	if (!rep->summary)
		rep->summary = xstrdup("");
	return rc;
}
