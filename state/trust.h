/*
 * Trust is a property of the invocation, never of the repository.
 * `plumb config` and `plumb plan` run untrusted unless --trusted is given;
 * `apply` and `watch` trust the source they were pointed at.
 *
 * When untrusted, every feature that could execute code, read the machine's
 * environment or send credentials is turned off. Each time the loader skips
 * such a feature it records it here (trust_note), so the command can say
 * exactly what it turned off.
 */
#ifndef PLUMB_TRUST_H
#define PLUMB_TRUST_H

#include <stddef.h>

#include "state/err.h"

enum trust_off {
	TRUST_OFF_SECRET_CMD = 1 << 0,     /* $(…) in .kamal/secrets */
	TRUST_OFF_ERB_CMD = 1 << 1,        /* <%= %x(…) %> and backticks in deploy.yml */
	TRUST_OFF_ERB_ENV = 1 << 2,        /* <%= ENV[…] %> lookups */
	TRUST_OFF_SECRET_ENV = 1 << 3,     /* $VAR expansion from the process environment in secrets */
	TRUST_OFF_PROXY_COMMAND = 1 << 4,  /* ssh.proxy_command */
	TRUST_OFF_SSH_CONFIG = 1 << 5,     /* ssh.config (can run Match exec) */
	TRUST_OFF_KEY_DATA = 1 << 6,       /* ssh.key_data */
	TRUST_OFF_AGENT_FORWARD = 1 << 7,  /* SSH agent forwarding */
	TRUST_OFF_REGISTRY_CREDS = 1 << 8, /* registry credentials from secrets */
	TRUST_OFF_OUTSIDE_PATH = 1 << 9,   /* secrets_path/hooks_path/files: outside the repository */
	TRUST_OFF_HOOKS = 1 << 10,         /* .kamal/hooks */
	TRUST_OFF_ACCEPT_HOST_KEYS = 1 << 11, /* x-plumb.ssh.accept_new_host_keys */
	TRUST_OFF_SSH_KEYS = 1 << 12,      /* ssh.keys outside the repository (~/.ssh/…, /abs) */
	TRUST_OFF_INSECURE_CREDS = 1 << 13, /* credentials to a registry x-plumb marks insecure */
};
#define TRUST_OFF_COUNT 14

struct trust {
	int trusted;
	unsigned turned_off; /* enum trust_off bits noted while loading */
	/*
	 * Environment lookup used for ERB ENV and secrets $VAR expansion when
	 * trusted; NULL means getenv(3). Tests set it to a fake environment.
	 */
	const char *(*getenv_fn)(const char *name, void *ctx);
	void *getenv_ctx;
	/*
	 * How $(…) in secrets and %x(…) in deploy.yml are run when trusted: state/
	 * runs nothing itself. The caller injects it (reconciler/load.c sets
	 * providers/run.h's prov_run_shell_fn); NULL means commands are
	 * unavailable, noted as an untrusted run notes them. Contract: run cmd
	 * with /bin/sh in cwd, keep at most max bytes of stdout less one trailing
	 * newline; 0 on exit status 0 with *out — a secret the caller frees with
	 * util_free_secret — else a negative PLUMB_E* code (PLUMB_ETIMEOUT,
	 * PLUMB_ETRUNC, else PLUMB_ERROR) with *out NULL and *status (exit
	 * status, 128+signal, -1: not run, timed out or too much output).
	 */
	int (*run_fn)(const char *cmd, const char *cwd, size_t max, char **out, int *status,
		      void *ctx);
	void *run_ctx;
};

void trust_init(struct trust *t, int trusted);
void trust_note(struct trust *t, enum trust_off what);
/* Looks a variable up through getenv_fn (or getenv); NULL when unset. */
const char *trust_getenv(const struct trust *t, const char *name);
/*
 * Runs a command through run_fn (contract above; its code is passed on).
 * When the run is untrusted or run_fn is NULL nothing runs: `what`
 * (TRUST_OFF_SECRET_CMD or TRUST_OFF_ERB_CMD) is noted and
 * PLUMB_EUNAVAILABLE returned (*out NULL) — never returned for a command
 * that ran.
 */
int trust_run(struct trust *t, enum trust_off what, const char *cmd, const char *cwd, size_t max,
	      char **out, int *status);
/* A one-line human description of one bit, e.g. "$(…) command substitution in secrets". */
const char *trust_off_describe(enum trust_off what);

/*
 * True if p, a path written in the repository, may be used by an untrusted
 * run: relative to the repository root and inside it (no "..", not absolute,
 * not "~"). Lexical only; see trust_resolve_inside for what is on disk.
 */
int trust_path_is_inside(const char *p);
/*
 * Resolves root/rel on disk (symlinks followed; for a file that does not
 * exist yet, its directory) and returns the path (caller frees) if it stays
 * inside root, else NULL — a symlink committed to the repository must not
 * lead an untrusted run to a file of the machine running it.
 */
char *trust_resolve_inside(const char *root, const char *rel);

/* Placeholder that stands for a value plumb refused to compute (untrusted or unresolvable). */
#define PLUMB_UNAVAILABLE "(unavailable)"

#endif
