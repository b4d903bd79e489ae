/*
 * The one pipeline every command runs: source (a checkout, or --repo/--ref
 * through libgit2) → config → version → app image identity → observation of
 * every host over a fleet handle → desired state with the observation's salt
 * → diff. It never prints: what it has to say (config diagnostics, what an
 * untrusted run turned off, why a stage failed) is collected in the result's
 * log, worded as the command shows it. plan and hosts call it; apply,
 * rollback and watch will.
 *
 * The fleet handle is opened read-only here (plan and hosts never mutate)
 * and kept in the result, so a caller may observe again over the same
 * sessions; a command that executes opens read-write with mode.
 */
#ifndef PLUMB_PIPELINE_H
#define PLUMB_PIPELINE_H

#include "diff/diff.h"
#include "providers/fleet.h"
#include "reconciler/invocation.h"
#include "reconciler/source_opts.h"
#include "state/config.h"
#include "state/desired.h"
#include "state/err.h"

struct git_src;

#define REC_DEFAULT_TIMEOUT_MS (5 * 60 * 1000)

enum rec_stage {
	REC_STAGE_OBSERVE, /* source, config, observation (plumb hosts) */
	REC_STAGE_DIFF,    /* … version, image identity, desired state, diff (plan) */
};

struct rec_pipeline_opts {
	const char *cmd;         /* for messages: "plan", "hosts" */
	enum rec_stage until;
	/* where the configuration comes from, and how far it is trusted (-c, -d,
	 * --repo/--ref, --base: also observe the hosts of this revision, --version:
	 * else x-plumb version, $VERSION, the commit; timeout_ms: the whole run's
	 * deadline, 0 -> REC_DEFAULT_TIMEOUT_MS) */
	struct rec_source_opts src;
	enum fleet_mode mode;    /* FLEET_READ_ONLY for plan and hosts */
	/* rollback: the hosts are observed before the version is chosen; version
	 * NULL = the newest stopped version of the primary role older than the
	 * running one; the app image's identity is the observed container's
	 * (no registry lookup) */
	int rollback;
	/* plan --offline: no host is contacted; the base revision (src.base, or
	 * state_base) is taken as what the hosts run (state/synth_obs.h) */
	int offline;
	/* Called once the configuration and the version (NULL: not known yet, a
	 * rollback's default) are, before any host is contacted (apply's
	 * pre-connect hook); non-zero stops the run. NULL = none. */
	int (*before_connect)(const struct config *c, const char *root, const char *version,
			      void *ctx);
	void *ctx;
	const struct rec_invocation *inv; /* NULL -> read from the environment */
	/* plan: the watcher's last applied revision (state/wstate.h) and the
	 * service and destination it was applied for: used as --base when
	 * src.base is NULL, the source is a git repository holding it, and the
	 * configuration names the same service and destination; else a note in
	 * the log, never a failure. */
	const char *state_base, *state_service, *state_destination;
	/* watch: the git source, opened and fetched by the caller (borrowed;
	 * src.ref names the commit to read), instead of opening src.repo here */
	struct git_src *git;
	/* watch: the fleet kept across runs (below); NULL = a fleet of the run's own */
	struct rec_fleet_keep *keep;
};

/*
 * A fleet kept across pipeline runs (plumb watch), so that sessions stay open
 * between cycles. A run reuses keep->fleet when it would open one with the
 * same settings as last time (hosts, user, port, keys, key data, passphrase,
 * known_hosts, proxies, timeouts, mode: compared by a digest), else it closes
 * it and opens another in its place: a commit that changes the hosts gets
 * new sessions. The caller owns it (zeroed at first); the result of a run
 * only borrows keep->fleet. A host whose observation failed has its session
 * closed by the fleet and reopened at the next run.
 */
struct rec_fleet_keep {
	struct fleet *fleet;
	char digest[65];
	char *key_data, *key_passphrase; /* SECRET copies the fleet borrows; wiped on release */
};
/* Closes the kept fleet and wipes the copies; the struct can be used again. */
void rec_fleet_keep_release(struct rec_fleet_keep *k);

/* Everything owned by the result; release with rec_pipeline_result_release. */
struct rec_pipeline_result {
	struct config *config;  /* NULL when loading failed */
	char *root;             /* repository root directory (checkout) */
	struct fleet *fleet;    /* the handle the observation used (its sessions stay open);
				 * borrowed from opts.keep when one was given */
	struct obs_fleet *obs;  /* NULL when nothing was observed */
	int observe_rc;         /* fleet_observe's: 0 all observed, 1 some not */
	struct desired *desired, *base_desired;
	struct diff_plan *plan; /* REC_STAGE_DIFF only */
	char *log;              /* what the run has to say, as printed to stderr; never NULL */
	struct plumb_err err;   /* why the run stopped (code 0 when every stage ran); its
				 * message is also in the log */
	void *priv;             /* sources, git handle, settings */
};

/* 0 when every stage up to o->until ran (hosts may still be unobserved:
 * observe_rc), else out->err.code, a negative PLUMB_E* code, when a stage
 * failed (out->err and the log say which and why). */
int rec_pipeline_run(struct rec_pipeline_result *out, const struct rec_pipeline_opts *o);
void rec_pipeline_result_release(struct rec_pipeline_result *r);
/* A file of the source the configuration was read from (the checkout, or
 * the commit of --repo/--ref), by the one rule for repository files
 * (state/source.h: inside it after links, a regular file, bounded); *out is
 * the caller's. 0 or a negative PLUMB_E* code with err set. */
int rec_pipeline_read(const struct rec_pipeline_result *r, const char *relpath, char **out,
		      size_t *len, struct plumb_err *err);

/* Whether the configuration was read from a commit (--repo, --ref, watch)
 * rather than a checkout: then the repository's files (hooks) are not on
 * disk, and rec_pipeline_export writes them out into dir (which must not
 * exist). Both may be called from before_connect (r->priv is set first). */
int rec_pipeline_from_commit(const struct rec_pipeline_result *r);
int rec_pipeline_export(const struct rec_pipeline_result *r, const char *dir, struct plumb_err *err);

/* "90s", "5m", "1500ms", "2h", "30" (seconds) -> ms in *out; 0 or -1. */
int rec_parse_duration(const char *s, int *out);

#endif
