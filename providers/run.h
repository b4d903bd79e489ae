/*
 * The one way plumb runs a program on this machine (git's run-command.c is
 * the model): a struct prov_child describes the child — argv, environment
 * additions, working directory, bytes for its stdin, a deadline and bounds
 * on what it prints — and prov_child_run runs it to the end.
 *
 * The child: runs in its own process group; every descriptor above 2 it
 * would inherit is closed; SIGPIPE, SIGINT and SIGTERM are back to their
 * defaults and no signal is blocked; stdin is a pipe
 * fed with `in` (then closed) or /dev/null; stdout/stderr are captured into
 * bounded buffers or go to /dev/null. Only async-signal-safe calls are made
 * between fork and exec, so a threaded daemon may use it.
 *
 * The deadline covers the whole run, including the wait for the exit of a
 * child that closed its stdout early: past it, or past an output bound, the
 * child's whole process group is killed with SIGKILL and reaped (with
 * grace_ms, past the deadline the group gets SIGTERM first and grace_ms to
 * end). Its own process group keeps a terminal's Ctrl-C from reaching the
 * child: a caller that wants it to hear one polls for it (stop, below).
 *
 * Users: the local transport (providers/local.c) and the evaluation of
 * $(…) in .kamal/secrets and %x(…) in deploy.yml, which state/ reaches only
 * through trust.run_fn (prov_run_shell_fn below, set by reconciler/load.c).
 */
#ifndef PLUMB_PROV_RUN_H
#define PLUMB_PROV_RUN_H

#include <stddef.h>
#include <sys/types.h>

#include "state/err.h"
#include "state/util.h"

#define PROV_RUN_DEFAULT_TIMEOUT_MS 30000

struct prov_child {
	/* ---- set by the caller; borrowed for the run ---- */
	const char *const *argv;    /* argv[0] is the program's path (no PATH search) */
	const char *const *env_add; /* "NAME=value" set in the child's environment
				     * (replacing the inherited one); NULL-terminated or NULL */
	const char *cwd;            /* NULL: this process's */
	const char *in;             /* bytes for stdin, which is then closed; NULL: /dev/null */
	size_t in_len;
	int timeout_ms;             /* <= 0: PROV_RUN_DEFAULT_TIMEOUT_MS */
	size_t out_max;             /* stdout captured up to this many bytes; 0: to /dev/null */
	size_t err_max;             /* stderr likewise */
	int secret;                 /* output holds secrets: buffers are allocated at their
				     * bound (never grown) and wiped by prov_child_release */
	/* Optional: polled (every 100 ms at most) while the child runs. A
	 * signal it returns is sent to the child's process group, once, and the
	 * child has grace_ms (if sooner than the deadline) to end; SIGKILL kills
	 * the group at once. 0: nothing to send. */
	int (*stop)(void *ctx);
	void *stop_ctx;
	int grace_ms;               /* > 0: SIGTERM before SIGKILL (above) */

	/* ---- results (prov_child_run sets them) ---- */
	struct sbuf out, err;       /* what was read (also on a timeout or overflow) */
	int status;                 /* exit status 0..255, 128+signal, -1 when unknown */
	int signal;                 /* the signal that ended it when it did, else 0 */
	int stopped;                /* the signal sent at stop's request (SIGKILL once it
				     * asked for that), else 0 */
	int killed;                 /* its group was killed (SIGKILL) */
};

/*
 * Runs c to the end. Returns 0 when the child exited by itself (whatever its
 * status; also after a signal stop asked for), PLUMB_ETIMEOUT past the
 * deadline or when stop's grace ran out or it asked for SIGKILL (c->stopped
 * tells these apart; status -1 unless the child ended within grace_ms of the
 * SIGTERM), PLUMB_ETRUNC when an output exceeded its bound (the group is
 * killed, status -1), or
 * PLUMB_ERROR when it could not be started (pipe/fork failed; an exec that
 * fails shows as status 127). On failure e (the caller's carrier, may be
 * NULL) says why, naming argv[0] only (arguments may hold secrets).
 * c->out/err are initialised in every case: call prov_child_release
 * afterwards.
 */
int prov_child_run(struct prov_child *c, struct plumb_err *e);
/* Frees c->out and c->err (wiped first when c->secret). */
void prov_child_release(struct prov_child *c);

/*
 * Runs `cmd` with /bin/sh in `cwd`. The command text is given to the shell
 * on its stdin, never in an argv (where /proc/<pid>/cmdline would show
 * anyone a secret expanded into it); the command itself then has /dev/null
 * as stdin. stderr is discarded (it may echo a secret). At most max bytes of
 * stdout are kept, and one trailing newline is removed.
 *
 * Returns 0 when the command exited 0, with *out its output — a secret: the
 * caller frees it with util_free_secret. Otherwise *out is NULL and the result is
 * PLUMB_ETIMEOUT or PLUMB_ETRUNC (more than max bytes; its process group is
 * killed in both cases; *status -1), or PLUMB_ERROR with *status the exit
 * status, 128+signal, or -1 when it could not be started. No message: the
 * status is the detail, and the command text may hold a secret.
 */
int prov_run_shell(const char *cmd, const char *cwd, size_t max, int timeout_ms, char **out,
		   int *status);
/* prov_run_shell with PROV_RUN_DEFAULT_TIMEOUT_MS, shaped as trust.run_fn
 * (state/trust.h); ctx is unused. */
int prov_run_shell_fn(const char *cmd, const char *cwd, size_t max, char **out, int *status,
		      void *ctx);

#endif
