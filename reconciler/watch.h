/*
 * plumb watch: the GitOps loop. Every cycle fetches the branch (libgit2),
 * runs the one pipeline (reconciler/pipeline.h) on its head commit over a
 * fleet kept across cycles (warm sessions: a no-op cycle costs one
 * observation round trip per host), and applies what the plan shows through
 * the one apply path (reconciler/apply.h): under Kamal's lock, health-gated.
 *
 * A cycle ends in one outcome (state/wstate.h records it, with the status
 * `plumb status` shows and a bounded history):
 *   synced     nothing to do
 *   applied    the plan was carried out (a change of the same revision is
 *              drift: counted as found and healed)
 *   waiting    the commit's app image is not in the registry yet: what runs
 *              is kept, the next cycles look again and deploy once it is there
 *   failed     a rollout failed its health gates: the revision is held (the
 *              last good version keeps running); it is not tried again until
 *              a new commit, `plumb retry` or SIGHUP after a retry request
 *   held       the head is the held revision: drift is reported, not applied
 *   suspended  `plumb suspend`: drift is reported, nothing is applied
 *   error      a fault around the rollout (fetch, registry, a host or the
 *              lock holder unreachable, another deploy holding the lock):
 *              the next cycle comes after an exponential backoff (capped),
 *              and recovers by itself. Hosts that could not be observed are
 *              left out; the others converge (the primary host, which holds
 *              the lock, must be there).
 *
 * Triggers: the interval, SIGHUP (a cycle now), a verified webhook push.
 * SIGINT/SIGTERM: between cycles the process ends at once; during an apply
 * it stops before the next step and releases the lock (reconciler/lock.h).
 *
 * Trust: the watched branch is the source of truth, trusted as apply trusts
 * its source (secrets, ERB, hooks). Kamal's hooks run around each apply
 * (pre-deploy, pre/post-app-boot, post-deploy) from the commit, written out
 * beside the state for the apply (git_src_export); pre-connect is not run
 * (the sessions are kept between cycles).
 */
#ifndef PLUMB_WATCH_H
#define PLUMB_WATCH_H

#include <stddef.h>

struct rec_watch_opts {
	const char *repo;          /* PATH or URL; required */
	const char *branch;        /* NULL = "main" */
	const char *destination;   /* -d */
	const char *config_path;   /* NULL = config/deploy.yml */
	const char *state_dir;     /* NULL = ws_default_dir() */
	int interval_ms;           /* 0 = 60 s */
	int timeout_ms;            /* one cycle's deadline; 0 = the pipeline's default */
	int once;                  /* one cycle, then exit */
	int prune;
	int skip_hooks;
	int allow_foreign_owner;
	int log_json;              /* one JSON object per line instead of human lines */
	const char *listen;        /* ADDR:PORT for /healthz /status /metrics /webhook; NULL = none */
	const char *webhook_secret_file; /* the webhook's HMAC key (first line); NULL = no webhook */
	const char *const *notify; /* URLs to POST events to */
	size_t nnotify;
};

/* Runs until a signal (or one cycle with once). The exit status: 0; 1 when
 * the start failed, or with once when the cycle did not end synced or
 * applied (waiting: 0); 128 + signal is the signal thread's. */
int rec_watch_run(const struct rec_watch_opts *o);

#endif
