/*
 * The diff: desired state (state/desired.h) vs observed state
 * (state/observed.h) → a plan: per host, ordered steps, each with its causes.
 *
 * What is compared: image identity (accessories: the image reference unless
 * pinned by digest), cmd, env (clear by value, secrets by salted hash),
 * labels, volumes, published ports, options the observation reports, restart
 * policy, logging, network, and env-file contents. Log options: only those
 * plumb asks for (Kamal's max-size=10m or the configured ones); one the host
 * adds (the daemon's default log-opts) is not a change, unless the base
 * revision asked for it and this one does not. What is ignored: the
 * version part of names, KAMAL_VERSION / KAMAL_CONTAINER_NAME, the hostname,
 * created times, and whatever the image itself defines (env, labels, volumes
 * and cmd that are the image's own, subtracted using the observed image).
 *
 * Steps:
 *   DIFF_CREATE              +    container missing
 *   DIFF_REPLACE             +/-  app role, start-first (new up, switch, old stopped)
 *   DIFF_REPLACE_STOP_FIRST  -/+  accessory, stop-first: disruptive (data directories kept)
 *   DIFF_START               ~    the desired container exists, stopped by hand
 *   DIFF_RENAME              ~    kept container renamed to the new version (no restart)
 *   DIFF_WRITE_ENV_FILE      ~    env file differs while its containers are kept
 *   DIFF_RESTORE             ~    accessory: no container holds its name, but one that a
 *                                 stop-first replacement set aside (<name>_replaced_<hex>,
 *                                 diff_is_aside) matches the spec: renamed back, started
 *   DIFF_REMOVE_ASIDE        -    accessory: a stopped container set aside by an interrupted
 *                                 stop-first replacement while <name> exists (a stopped copy
 *                                 on the same data): removed once <name> runs and is ready
 *   DIFF_SWITCH              ~    the desired app container runs, but another of its role
 *                                 runs too or kamal-proxy routes elsewhere (a rollout that
 *                                 was interrupted): wait until it is ready, switch traffic
 *                                 to it (proxied role), stop the other one
 *   DIFF_REMOVE_ORPHAN       -    role/host/accessory no longer in the config;
 *                                 counted (and done) only with pruning on
 *   DIFF_PRUNE               -    stopped containers beyond retain_containers:
 *                                 housekeeping, never counted as a change
 * Unhealthy containers, unavailable secrets, a held lock are notes, not steps.
 *
 * An accessory's stop-first replacement that was interrupted (kill -9) can
 * leave its old container stopped and renamed aside with no container named
 * <name>, or the new one beside the aside one. Without <name>, an aside
 * container is the accessory (its data is the data): restored when it
 * matches the spec, else replaced stop-first from it (CAUSE_ASIDE); never a
 * fresh container beside it. With <name>, stopped aside containers are
 * leftovers: DIFF_REMOVE_ASIDE (CAUSE_ASIDE_LEFTOVER), after <name>'s own
 * step. App roles' <name>_replaced_<hex> (Kamal's) are not concerned: prune.
 *
 * Accessories of the service no longer in the config are orphans like
 * removed roles: listed, removed only with pruning on; their directories
 * under $HOME/<service>-<name>/ are never part of any step. Only a container
 * with evidence that it is ours counts: its name is an accessory of the
 * current config (on another host) or of the base revision (diff_opts.base).
 * Any other <service>-… container (say optimus-admin-redis of an app named
 * optimus-admin on the same host) is not ours: never listed, never pruned.
 * Without a base, an accessory removed from the config is therefore not
 * listed (plan --base names the revision it was removed in).
 *
 * Destinations sharing an accessory: an accessory's container name has no
 * destination part, so two destinations of one service that both put
 * accessory <name> on a host would fight over one container. A host is
 * refused (DIFF_HOST_REFUSED, exit 1, nothing planned there) when it runs a
 * container with the accessory's name while the service's app containers on
 * it all carry another destination label (and none carries ours). A host
 * with the accessory but no app containers of the service is refused too
 * when this destination's env file for the accessory
 * (.kamal/apps/<service>[-<destination>]/env/accessories/<name>.env, which
 * `kamal accessory boot` writes) is absent: another destination booted it.
 *
 * Waves (the order apply follows): 1 accessories (and the proxy), 2 the
 * primary role in boot groups (step.group), 3 other roles, 4 orphans/prune.
 *
 * Counts (Terraform's): create → 1 add; replace → 1 add + 1 destroy; start,
 * rename, restore, env file, switch → 1 change; orphan removal (pruning on),
 * aside removal → 1 destroy.
 * plan.changes is add + change + destroy: exit code 2 iff non-zero.
 *
 * Ownership: struct diff_plan owns everything it points to (copies, never
 * pointers into the observed state), except each step's borrowed reference
 * to the desired container (or env file) it realises (diff_step.desired):
 * the desired state must outlive the plan where those are used;
 * diff_plan_free frees the plan.
 * No string in a plan holds a secret value: secret causes carry the key only,
 * and so do causes about a clear value that came from ERB ENV or a command
 * (DES_ENV_SENSITIVE: reported as CAUSE_SECRET_*, "(sensitive value changed)").
 */
#ifndef PLUMB_DIFF_H
#define PLUMB_DIFF_H

#include <stddef.h>

#include "state/desired.h"
#include "state/hash.h"
#include "state/observed.h"

enum diff_action {
	DIFF_CREATE,
	DIFF_REPLACE,
	DIFF_REPLACE_STOP_FIRST,
	DIFF_START,
	DIFF_RENAME,
	DIFF_WRITE_ENV_FILE,
	DIFF_SWITCH,
	DIFF_REMOVE_ORPHAN,
	DIFF_PRUNE,
	DIFF_RESTORE,
	DIFF_REMOVE_ASIDE,
};

enum diff_cause_kind {
	CAUSE_MISSING,          /* container missing */
	CAUSE_STOPPED,          /* stopped by hand (state in new) */
	CAUSE_NOT_RUNNING,      /* only stopped containers that differ: a new one is created */
	CAUSE_IMAGE,            /* identity old → new */
	CAUSE_IMAGE_NOT_FOUND,  /* new tag not in the registry yet */
	CAUSE_IMAGE_REF,        /* accessory image reference old → new */
	CAUSE_CMD,
	CAUSE_ENV_ADDED,        /* key, new (clear) */
	CAUSE_ENV_CHANGED,      /* key, old (NULL = unknown), new */
	CAUSE_ENV_REMOVED,      /* key, old (NULL = unknown) */
	CAUSE_SECRET_ADDED,     /* key only */
	CAUSE_SECRET_CHANGED,   /* key only: (sensitive value changed) */
	CAUSE_SECRET_REMOVED,   /* key only */
	CAUSE_LABEL,            /* key, old, new (NULL = absent) */
	CAUSE_VOLUME,           /* key = destination, old, new */
	CAUSE_PORT,             /* old, new */
	CAUSE_OPTION,           /* key, old, new */
	CAUSE_RESTART,
	CAUSE_LOGGING,          /* key ("driver" or a log-opt), old, new */
	CAUSE_NETWORK,
	CAUSE_ENV_FILE,         /* key (NULL = whole file), old/new: "missing", "changed", "mode 0644" */
	CAUSE_VERSION,          /* old → new version; key "renames: false" when a replacement */
	CAUSE_ORPHAN_ROLE,      /* key = role */
	CAUSE_ORPHAN_HOST,
	CAUSE_ORPHAN_ACCESSORY, /* key = accessory service */
	CAUSE_EXTRA_RUNNING,    /* another running container of a kept role */
	CAUSE_RETAIN,           /* beyond retain_containers (new = the limit) */
	CAUSE_TRAFFIC_ELSEWHERE, /* kamal-proxy routes the role elsewhere: old = its target */
	CAUSE_ASIDE,            /* key = the accessory's name: only a container set aside exists */
	CAUSE_ASIDE_LEFTOVER,   /* key = the accessory's name, which exists: a stopped copy */
};

struct diff_cause {
	enum diff_cause_kind kind;
	char *key; /* may be NULL */
	char *old; /* may be NULL; never a secret */
	char *new; /* may be NULL; never a secret */
};

enum diff_target { DIFF_T_APP, DIFF_T_ACCESSORY, DIFF_T_PROXY, DIFF_T_FILE };

struct diff_step {
	enum diff_action action;
	enum diff_target target;
	char *name;      /* the container (or file) after the step */
	char *old_name;  /* the existing container, or NULL */
	char *role;      /* role or accessory name ("" for orphans of unknown role) */
	char *image_ref; /* image the new container runs (create/replace), else NULL */
	char *image_id;  /* its identity when known, else NULL */
	char spec_hash[HASH_HEX_LEN + 1]; /* desired spec (create/replace/start), else "" */
	int wave;        /* 1..4 */
	int group;       /* boot group within wave 2 (0-based), else 0 */
	int disruptive;  /* stop-first replacement of a stateful accessory */
	int switch_traffic; /* a proxied role: traffic moves to the new container */
	char *traffic_from; /* switch_traffic: kamal-proxy's current target for the role
			     * ("optimus-web-abc (6db082a60d0c:80)"), from the observed
			     * routes; NULL when the host reported none */
	int counted;     /* counts toward the summary and the exit code */
	struct diff_cause *causes;
	size_t ncauses;
	/* What the step realises, so an executor never re-derives the spec:
	 * borrowed pointers into the desired state the plan was built from
	 * (valid while it lives; not part of the plan's canonical form).
	 *   desired       the container created, replaced, started or renamed
	 *                 (write env file: the container that reads the file,
	 *                 or NULL; remove aside: the accessory that must run
	 *                 and be ready before its aside copy is removed);
	 *                 NULL for orphan removal and pruning
	 *   desired_file  write env file: the file; else NULL */
	const struct des_container *desired;
	const struct des_env_file *desired_file;
};

enum diff_note_kind {
	NOTE_UNHEALTHY,           /* container, reported not replaced */
	NOTE_SECRET_UNAVAILABLE,  /* key: not compared */
	NOTE_VALUE_EXPANDED,      /* key: ${…} expanded by the host's shell, not compared */
	NOTE_VALUE_NOT_COMPUTED,  /* key: ERB ENV / command not run (untrusted), not compared */
	NOTE_LOCK_HELD,           /* text = holder */
	NOTE_ORPHAN_KEPT,         /* orphans listed but not removed: pruning is off */
	NOTE_IMAGE_NOT_OBSERVED,  /* image config not on the host: its own defaults not subtracted */
};

struct diff_note {
	enum diff_note_kind kind;
	char *container; /* may be NULL */
	char *key;       /* may be NULL */
	char *text;      /* may be NULL; from the host (lock) or the config, never a secret */
};

enum diff_host_status {
	DIFF_HOST_OK,
	DIFF_HOST_UNREACHABLE,
	DIFF_HOST_UNKNOWN,      /* observation failed or was cut short */
	DIFF_HOST_NOT_OBSERVED, /* no observation at all */
	DIFF_HOST_REFUSED,      /* observed, but planning it would be unsafe (error says why):
				 * an accessory container another destination owns */
};

struct diff_host {
	char *host;
	int in_config;           /* 0: only in the base revision (everything on it is orphaned) */
	enum diff_host_status status;
	char *error;             /* why, when not OK */
	struct diff_step *steps; /* in wave order */
	size_t nsteps;
	struct diff_note *notes;
	size_t nnotes;
	size_t unchanged;        /* desired containers kept as they are */
};

struct diff_plan {
	char *service;
	char *destination; /* NULL = none */
	char *version;
	int prune;
	struct diff_host *hosts; /* config hosts in order, then base-only hosts */
	size_t nhosts;
	size_t add, change, destroy; /* counted steps */
	size_t housekeeping;         /* prune steps */
	size_t orphans_kept;         /* orphans listed but not removed */
	size_t failed_hosts;         /* unreachable / unknown / not observed */
	size_t changes;              /* add + change + destroy */
	char hash[HASH_HEX_LEN + 1]; /* over the canonical form (see diff_plan_hash) */
	char *offline_base; /* plan --offline: the revision taken as what the hosts run
			     * (no host contacted); NULL for a plan against the hosts */
};

struct diff_opts {
	int prune; /* remove orphans (--prune / x-plumb prune: true) */
	int no_renames; /* x-plumb renames: false: a version-only change is a start-first
			 * replacement (a new container with the new KAMAL_VERSION) */
	/* Optional: the base revision's desired state, built with the same salt;
	 * its clear env values let the plan show an old value ("old" → "new")
	 * when the observed hash matches it. Secrets are never looked up. */
	const struct desired *base;
	/* Hosts that are not in the desired state but must be observed (from the
	 * base revision): they appear in the plan with in_config = 0. */
	const struct strvec *extra_hosts;
};

/* Never fails on bad input (a host that cannot be compared says so); 0 or -1. */
int diff_plan_build(struct diff_plan **out, const struct desired *ds, const struct obs_fleet *obs,
		    const struct diff_opts *o);
void diff_plan_free(struct diff_plan *p);
/* Removes the steps drop() says so from the plan (watch leaves a stateful
 * accessory's replacement to apply), recounting the totals and the hash;
 * returns how many were removed. */
size_t diff_plan_drop(struct diff_plan *p, int (*drop)(const struct diff_step *s, void *ctx),
		      void *ctx);

/* 0 in sync, 2 changes pending, 1 a host could not be planned. */
int diff_plan_exit_code(const struct diff_plan *p);

/*
 * Canonical form of the plan (what the plan hash covers): hosts, steps with
 * action, names without random parts, image references and identities, spec
 * digests and causes; no timestamps, no salted hashes, no notes about health.
 * Caller frees.
 */
char *diff_plan_canonical(const struct diff_plan *p);

/*
 * kamal-proxy's current target for a service (a role's container prefix) as
 * the host reported it in obs_host.routes, with the container's name
 * when the target is an observed container's id; NULL when unknown. Caller
 * frees. (Used for traffic-switch steps; exposed for tests.)
 */
char *diff_proxy_target(const struct obs_host *oh, const char *service);

/* 1 when container is `<name>_replaced_<hex>` (1 to 64 lowercase hex digits):
 * a container a stop-first replacement of `name` set aside. */
int diff_is_aside(const char *container, const char *name);

/* Symbols and words for the vocabulary. */
const char *diff_action_symbol(enum diff_action a); /* "+", "+/-", "-/+", "~", "-" */
const char *diff_action_name(enum diff_action a);   /* "create", "replace", … */
const char *diff_cause_name(enum diff_cause_kind k); /* "image_changed", … (JSON) */
const char *diff_host_status_name(enum diff_host_status s);
const char *diff_note_name(enum diff_note_kind k);
/* A cause in words, for text and Markdown ("env FOO: \"a\" → \"b\""). Caller frees. */
char *diff_cause_text(const struct diff_cause *c);
/* The wave's name: "accessories", "primary role", "other roles", "orphans and pruning". */
const char *diff_wave_name(int wave);

#endif
