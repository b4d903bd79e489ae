/*
 * Carrying out a plan: the one path `apply`, `rollback` and `watch` take
 * from a pipeline result (reconciler/pipeline.h) to converged hosts.
 *
 * The protocol, in order:
 *   1. rec_apply_init, then rec_apply_hook_pipeline on the pipeline's options
 *      (the pre-connect hook runs once the config and version are known);
 *   2. rec_pipeline_run with a FLEET_READ_WRITE fleet;
 *   3. rec_apply_execute: the executor takes Kamal's deploy lock on the
 *      primary host in front of its first command, runs pre-deploy, the
 *      steps (pre/post-app-boot around them), then post-deploy; the lock is
 *      released on every path (signals: reconciler/lock.h), before it returns;
 *   4. rec_apply_release.
 * A plan with no change takes no lock and sends nothing (the caller checks
 * diff_plan_exit_code before step 3).
 *
 * Hooks run from root/.kamal/hooks (or the configured hooks_path) only when
 * trusted and not skip_hooks. When the configuration was read from a commit
 * (--repo, --ref), root is that commit written out to a private temporary
 * directory — never the current directory. Ownership: opts strings are borrowed for the
 * life of the struct; the report is the caller's (rec_exec_report_release).
 */
#ifndef PLUMB_APPLY_H
#define PLUMB_APPLY_H

#include <stdio.h>

#include "reconciler/executor.h"
#include "reconciler/pipeline.h"

struct rec_apply_opts {
	const char *cmd;      /* "apply", "rollback", "watch": in messages; KAMAL_COMMAND
			       * (apply and watch say "deploy", as Kamal's deploy) */
	int rollback;         /* a rollback: no pull, retained containers restarted */
	int skip_hooks;
	int trusted;          /* hooks run only then */
	/* Hosts that could not be observed (a plan's failed_hosts) are left out
	 * instead of stopping the apply: the others converge (watch). The
	 * primary host, which holds the lock, must be observed. */
	int partial;
	FILE *out;            /* progress and summary; NULL = stdout */
	/* Where the repository's files are for hooks (a commit written out by
	 * git_src_export); NULL = the pipeline's root (a checkout). */
	const char *hooks_root;
};

struct rec_apply {
	struct rec_apply_opts o;
	const struct config *config;
	const struct desired *ds;
	const char *root;
	const char *version;  /* before the desired state exists (pre-connect) */
	const struct rec_pipeline_result *res;
	char *performer;
	char *who;            /* the lock's holder: this run (rec_lock_who) */
	char *lock_name;
	int locked;           /* the deploy lock is held (KAMAL_LOCK) */
	struct fleet *fleet;  /* for the signal thread's release */
	size_t lock_host;
	double t0;            /* for KAMAL_RUNTIME */
	char *tree;           /* a commit's files written out for its hooks (removed at release) */
};

void rec_apply_init(struct rec_apply *x, const struct rec_apply_opts *o);
/* Sets po's before_connect and ctx: the pre-connect hook; res is the result
 * the pipeline will fill (a commit's hooks are written out from it). */
void rec_apply_hook_pipeline(struct rec_apply *x, struct rec_pipeline_opts *po,
			     const struct rec_pipeline_result *res);
/*
 * Steps 3 above on res (its plan must have changes). 0 converged; else a
 * negative PLUMB_E* code with err set: PLUMB_ELOCKED when another holder has
 * the lock (nothing done), PLUMB_EUNREACHABLE when the primary host cannot
 * be reached for the lock; rep->failed says whether a step failed its
 * health gate (the new container was removed, the old one serves) as
 * opposed to a fault around it. rep is filled in either case (summary).
 */
int rec_apply_execute(struct rec_apply *x, const struct rec_pipeline_result *res,
		      struct rec_exec_report *rep, struct plumb_err *err);
void rec_apply_release(struct rec_apply *x);

#endif
