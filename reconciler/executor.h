/*
 * The executor: the only code that mutates a host. It takes a plan the
 * pipeline built (reconciler/pipeline.h) over a FLEET_READ_WRITE handle and
 * realises it, wave by wave (diff/diff.h):
 *   1 accessories and kamal-proxy, then Kamal's host boot groups one after
 *   the other (slices of boot.limit of the app hosts, the primary role's
 *   first; boot.wait between them; pre-app-boot and post-app-boot around
 *   each, told its hosts): 2 the primary role and 3 the other roles of the
 *   group's hosts, these only once the primary role is ready (the barrier:
 *   at once with boot.parallel_roles, or when it opened in an earlier
 *   group), then 4 orphans (only with pruning on) and pruning;
 * hosts in parallel within a wave or group (one worker per host, so a host's
 * transport is used by one thread at a time).
 *
 * Before anything is stopped, every host of the apply logs in to the
 * registry (password on stdin, never in argv) and pulls the images its steps
 * run, in parallel, and the pulled identity is checked against the one the
 * plan was built with: a difference stops everything ("the tag moved"). An
 * image the observation saw on the host under its reference with that
 * identity is not pulled: the expect check in front of the host's first
 * step (which fails the host, nothing done, when a container or image it
 * acts on is not the one observed) checks it instead.
 *
 * Each step is one or two commands per host (chained with &&), readiness is
 * waited for on the host (providers/ready.sh, sent as a constant script): a
 * roll costs the observation, the preparing command (with the lock on the
 * primary host; none where there is nothing to pull), the boot and switch,
 * and the stop of the old container (in the boot command for a step no other
 * role waits for); + the release. A step behind the barrier that boots a
 * new container prepares it (directories, assets, a clashing container set
 * aside: what Kamal does before it waits) in a command of its own while the
 * barrier is shut, so only the boot waits. An env file whose observed hash
 * and mode are already right is not written; pruning is sent only where
 * this apply could have left something to prune (an image pulled, a
 * container removed, more containers of the service than it runs plus
 * retain_containers).
 * Every docker command comes from providers/docker_cmd.h.
 *
 * Failure: a new container that does not become ready is stopped and removed
 * (a started retained one is stopped again), the tail of its logs is shown
 * (escaped), the old one keeps serving, no later step or wave runs, and the
 * report says what was done, what was not and which hosts run which version.
 *
 * Ownership: everything in rec_exec_opts is borrowed; the report owns its
 * strings (rec_exec_report_release).
 */
#ifndef PLUMB_EXECUTOR_H
#define PLUMB_EXECUTOR_H

#include <stdio.h>

#include "diff/diff.h"
#include "providers/fleet.h"
#include "providers/quote.h"
#include "state/config.h"
#include "state/desired.h"
#include "state/err.h"
#include "state/observed.h"

struct rec_exec_opts {
	const struct config *config;
	const struct desired *ds;
	const struct diff_plan *plan;  /* built from ds and obs */
	const struct obs_fleet *obs;   /* host i of the fleet is obs->hosts[i] */
	struct fleet *fleet;           /* FLEET_READ_WRITE, else nothing runs (PLUMB_EREFUSED) */
	int no_pull;                   /* rollback: images are on the hosts already */
	int rollback;                  /* a replacement whose new name exists stopped
					* starts that container instead of a new one */
	FILE *out;                     /* progress and summary; NULL = stdout */
	/* Optional hooks, called from the thread that called rec_execute. */
	/* a hook by name ("pre-app-boot", "post-app-boot": around each boot
	 * group, hosts = the group's hosts, comma-separated, as Kamal's
	 * KAMAL_HOSTS; NULL for the others); non-zero stops the apply */
	int (*hook)(const char *name, const char *hosts, void *ctx);
	/* appends an audit line to c, joined with join (rec_audit_cmd) */
	void (*audit)(struct prov_cmd *c, enum prov_join join, const char *text, void *ctx);
	/* non-zero: stop before the next step (SIGINT/SIGTERM) */
	int (*interrupted)(void);
	void *ctx;
	/*
	 * The deploy lock, when the caller has the executor take it (lock_cmd
	 * non-NULL): lock_cmd appends the command that takes it; it is sent on
	 * host lock_host (a fleet index) in front of that host's preparing
	 * command (alone when it has nothing to prepare), and lock_read reads
	 * that command's result (0 taken, else err set; *taken even when what
	 * followed failed: the caller releases it, rep->locked). No step of any
	 * host runs before it is taken, then the "pre-deploy" hook runs; every
	 * host's first step command first checks that the containers its steps
	 * act on are still the ones observed (another deploy may have finished
	 * between the observation and the lock): else nothing is done there.
	 */
	int (*lock_cmd)(struct prov_cmd *c, enum prov_join join, struct plumb_err *err, void *ctx);
	int (*lock_read)(struct transport *t, const struct cmd_result *r, int *taken,
			 struct plumb_err *err, void *ctx);
	size_t lock_host;
	/* Reads a file of the repository (an accessory's `files:`, relative to
	 * its root; *out the executor's to free); NULL: an accessory with files
	 * is refused before anything. */
	int (*read_file)(const char *relpath, char **out, size_t *len, struct plumb_err *err,
			 void *ctx);
	/* How host i's transport is obtained; NULL = fleet_writer (tests give a
	 * fake). Only asked once fleet is known to be FLEET_READ_WRITE. */
	int (*writer)(struct fleet *fl, size_t i, struct transport **out, struct plumb_err *err);
	/* How host i is given a reverse tunnel to this machine's 127.0.0.1:port
	 * (a localhost:PORT registry); NULL = fleet_tunnel (tests give a fake). */
	int (*tunnel)(struct fleet *fl, size_t i, int port, struct plumb_err *err);
};

struct rec_exec_report {
	size_t done;           /* steps carried out */
	size_t failed;         /* steps that failed (0 or 1 per host) */
	size_t not_done;       /* steps not attempted because of a failure */
	size_t stale;          /* hosts where nothing was done: a container the steps act on
				* is no longer the one observed (plan again; not a health gate) */
	unsigned long commands; /* round trips the executor ran, over every host */
	unsigned long max_host_commands; /* the most on one host */
	double elapsed_ms;
	int locked;            /* the executor took the deploy lock (lock_cmd): release it */
	char *summary;         /* what was done, what was not, who runs what; never NULL
				* after rec_execute */
};

/* 0 when every step was done; else a negative PLUMB_E* code with err set
 * (the report says which steps were done). Nothing runs for a plan without
 * steps. */
int rec_execute(const struct rec_exec_opts *o, struct rec_exec_report *rep, struct plumb_err *err);
void rec_exec_report_release(struct rec_exec_report *rep);

/* Host-side scripts (providers/ready.sh, providers/snapshot.sh), embedded. */
extern const char prov_ready_script[];
extern const char prov_snapshot_script[];

#endif
