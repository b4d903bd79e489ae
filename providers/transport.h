/*
 * Transports: how plumb runs a command on a host. One interface, three
 * implementations:
 *
 *   transport_ssh_open       libssh; one session per host, reused for every
 *                            command to that host during a run
 *   transport_local_open     /bin/sh on this machine (for `localhost`, when
 *                            plumb runs on the host it deploys to)
 *   transport_readonly_wrap  a guard in front of another transport that
 *                            refuses every command not on a read-only
 *                            allowlist; observation and `plan` get only this
 *
 * Threads: a transport is used by one thread at a time (libssh sessions are not
 * thread-safe). The pool (prov_pool_run) gives each host's transport to one
 * worker at a time; the fleet handle (fleet.h) keeps transports open between
 * runs, so a later run may use a session from another worker thread. Call prov_init() once before opening any transport
 * (it initialises libssh and ignores SIGPIPE).
 *
 * Commands and output framing: every command runs as
 *     sh -c '<framed>'
 * where <framed> prints a random BEGIN marker on stdout and stderr, runs the
 * command in a subshell, then prints an END marker with the command's status
 * and exits with it. Only what lies between the markers is returned, so text
 * that a host's shell startup files print (a .bashrc banner, motd) never
 * reaches a parser. The status is the channel's exit status (missing ->
 * PLUMB_ENOSTATUS), cross-checked with the END marker's (mismatch or missing
 * marker -> PLUMB_ENOSTATUS).
 *
 * Bounds: stdout and stderr are each bounded by max_output bytes; past that the
 * command is abandoned and run returns PLUMB_ETRUNC with what was read. A
 * command that runs longer than cmd_timeout_ms is abandoned with
 * PLUMB_ETIMEOUT (locally its process group is killed; over SSH the channel
 * is sent SIGKILL, then closed). The session stays usable after either.
 *
 * Errors: every function returns 0 or a negative PLUMB_E* code (state/err.h).
 * A transport keeps its last error as a struct plumb_err (transport_err(t)):
 * the same code and words that never contain a secret (no key material, no
 * command output).
 */
#ifndef PLUMB_PROV_TRANSPORT_H
#define PLUMB_PROV_TRANSPORT_H

#include <stddef.h>

#include "providers/quote.h"
#include "state/err.h"
#include "state/util.h"

/* Once per process, before any transport; safe to call again. Returns 0 or -1. */
int prov_init(void);

#define PROV_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define PROV_DEFAULT_CMD_TIMEOUT_MS 60000
#define PROV_DEFAULT_MAX_OUTPUT (8u << 20)

/*
 * Options for an SSH transport. Every pointer is borrowed for the duration of
 * transport_ssh_open only: the transport copies what it keeps. Zero values
 * mean the defaults noted.
 */
struct transport_opts {
	const char *host;                  /* required; also the name checked in known_hosts */
	int port;                          /* 0 -> 22 */
	const char *user;                  /* NULL -> the local user (libssh's default) */
	const char *const *identity_files; /* private key files tried in order (ssh.keys) */
	size_t n_identity_files;
	const char *key_data;              /* SECRET: a private key as text (ssh.key_data); never copied
					    * beyond open, wiped after use; caller wipes its own copy */
	int use_agent;                     /* try keys from $SSH_AUTH_SOCK */
	const char *known_hosts;           /* NULL -> libssh's default (~/.ssh/known_hosts) */
	int accept_new_host_keys;          /* add an unknown host's key instead of failing;
					    * a *changed* key always fails */
	const char *accept_new_refused;    /* non-NULL: acceptance is off for this connection,
					    * and this says why (in the not-known message) */
	const char *key_passphrase;        /* SECRET: for encrypted keys; NULL = none. Never
					    * prompted for: a key needing one is skipped */
	const char *connect_to;            /* "addr:port" to dial instead of host:port (a relay);
					    * the host key is still checked as host:port */
	const char *jump;                  /* "[user@]host[:port]" jump host (ssh.proxy): the session
					    * runs through a direct-tcpip channel of a session to it,
					    * verified with the same known_hosts and keys */
	const char *proxy_command;         /* ssh.proxy_command; the caller sets it only when trusted */
	int connect_timeout_ms;            /* 0 -> PROV_DEFAULT_CONNECT_TIMEOUT_MS */
	int cmd_timeout_ms;                /* 0 -> PROV_DEFAULT_CMD_TIMEOUT_MS */
	size_t max_output;                 /* per stream; 0 -> PROV_DEFAULT_MAX_OUTPUT */
};

/*
 * The outcome of one command. run initialises it (even on failure); the caller
 * calls cmd_result_release. out and err hold exactly the command's bytes
 * (NUL-terminated for convenience; they may contain NUL bytes).
 */
struct cmd_result {
	int status;       /* exit status 0..255; -1 when unknown */
	struct sbuf out;
	struct sbuf err;
	double elapsed_ms;
};
void cmd_result_release(struct cmd_result *r);

struct transport_stats {
	unsigned long commands;   /* round trips: commands run (including failed ones) */
	unsigned long connects;   /* sessions opened (1 per host, + 1 for a jump host) */
	double connect_ms;        /* time spent connecting and authenticating */
	double command_ms;        /* total time in commands */
	unsigned long refused;    /* commands the read-only guard refused (nothing ran) */
};

struct transport;
struct transport_ops {
	const char *name; /* "ssh", "local", "readonly" */
	/* Runs a free-string command (already quoted by its builder). */
	int (*run)(struct transport *t, const char *cmd, struct cmd_result *out);
	/* Runs a structured command (rendered with quote.h). */
	int (*run_cmd)(struct transport *t, const struct prov_cmd *cmd, struct cmd_result *out);
	/* Runs a free-string command with in_len bytes of in as its stdin (then
	 * EOF); NULL = this transport never feeds stdin (the guard). */
	int (*run_input)(struct transport *t, const char *cmd, const void *in, size_t in_len,
			 struct cmd_result *out);
	void (*close)(struct transport *t);
};

struct transport {
	const struct transport_ops *ops;
	char *label;            /* owned; "user@host:port", "localhost", for messages */
	struct plumb_err err;   /* last error (code 0, "" if none); never a secret */
	struct transport_stats stats;
	int cmd_timeout_ms;
	size_t max_output;
};

/*
 * Opens an SSH session: connects (bounded by connect_timeout_ms), verifies the
 * host key strictly against known_hosts, authenticates with identity files,
 * key_data, then the agent. On failure *out is NULL and the code is returned
 * and recorded in err (if not NULL) with a message naming the host.
 */
int transport_ssh_open(struct transport **out, const struct transport_opts *opts,
		       struct plumb_err *err);

/* A transport running commands with /bin/sh here. */
int transport_local_open(struct transport **out);

/*
 * The read-only guard. *out forwards to inner (borrowed: close out before
 * inner; closing out does not close inner). Commands are checked on their
 * structure, never by pattern on a string:
 *   - run_cmd checks each simple command's argv;
 *   - run parses the string with prov_cmd_parse_strict (only bare safe words,
 *     single-quoted words, ; && || | and 2>/dev/null; any other shell syntax
 *     -> refused), then checks the argv lists the same way.
 * Allowed argv shapes (anything else -> PLUMB_EREFUSED, nothing is run):
 *   docker ps|inspect|version|info|images [opts/args]
 *   docker image|container|network|volume inspect|ls [opts/args]
 *   docker exec kamal-proxy kamal-proxy list [--json]
 *   kamal-proxy list [--json]
 *   cat|sha256sum|base64 [-w N|-w0] [PATH...]   with every PATH under .kamal
 *   find PATH... [-maxdepth N|-mindepth N|-type X|-name P|-path P|-print|-print0|-printf F]
 *                                               with every PATH under .kamal
 *   ls|test|[ [args]       (inspect only; cannot write)
 *   echo|printf|id|uname|true [args]
 *   hostname [-f|-s|-i|-I] (no argument that would set the name)
 * "under .kamal" = a path whose components include ".kamal" and contain no
 * "..". Docker global options (-H, --config, --context) are refused.
 */
int transport_readonly_wrap(struct transport **out, struct transport *inner);

/* The guard's check on its own: 0 if allowed, PLUMB_EREFUSED (with why) if not. */
int prov_readonly_check(const struct prov_cmd *cmd, char *why, size_t why_len);

/* Dispatch helpers; t may not be NULL. */
int transport_run(struct transport *t, const char *cmd, struct cmd_result *out);
int transport_run_cmd(struct transport *t, const struct prov_cmd *cmd, struct cmd_result *out);
/*
 * Runs cmd with the bytes in[0..in_len) as its stdin, then EOF: how content
 * that must never appear in an argv (an env file's secrets, a registry
 * password) reaches a host. Command lines are visible to every process on
 * the host (/proc/<pid>/cmdline) and here; stdin is not. At most
 * PROV_MAX_INPUT bytes (PLUMB_ETOOBIG beyond). The read-only guard refuses
 * it (PLUMB_EREFUSED): a command fed input is the executor's.
 */
#define PROV_MAX_INPUT (4u << 20)
int transport_run_input(struct transport *t, const char *cmd, const void *in, size_t in_len,
			struct cmd_result *out);
/* The same for a structured command. */
int transport_run_cmd_input(struct transport *t, const struct prov_cmd *cmd, const void *in,
			    size_t in_len, struct cmd_result *out);
/* Closes and frees; NULL is fine. */
void transport_close(struct transport *t);
/* t's last error (borrowed from t; code 0 when the last call succeeded or none failed). */
const struct plumb_err *transport_err(const struct transport *t);
/* Its message; kept until docker_obs is converted (use transport_err). */
#define transport_errmsg(t) plumb_err_msg(transport_err(t))

/*
 * Framing, shared by the ssh and local transports (exposed for tests).
 * prov_frame_build writes "sh -c '<framed cmd>'" into out with a fresh random
 * token (token receives 32 hex chars + NUL). prov_frame_parse extracts the
 * bytes between the markers of raw (stdout or stderr as received) into dst
 * and the marker's status; it returns 0, or PLUMB_ENOSTATUS when a marker is
 * missing (then *status = -1 and dst gets raw unframed).
 */
#define PROV_TOKEN_LEN 32
int prov_frame_build(struct sbuf *out, const char *cmd, char token[PROV_TOKEN_LEN + 1]);
/* The same, the command's stdin left to it (with_stdin) instead of /dev/null. */
int prov_frame_build_stdin(struct sbuf *out, const char *cmd, char token[PROV_TOKEN_LEN + 1],
			   int with_stdin);
int prov_frame_parse(const char *raw, size_t raw_len, const char *token, int want_status,
		     struct sbuf *dst, int *status);

/* Internal: record code and a printf message as t's last error; returns code. */
int prov_fail(struct transport *t, int code, const char *fmt, ...) PLUMB_PRINTF(3, 4);
/* Internal: monotonic milliseconds. */
double prov_now_ms(void);
/* Internal: initialise a transport's common fields. */
void prov_transport_init(struct transport *t, const struct transport_ops *ops, const char *label,
			 int cmd_timeout_ms, size_t max_output);
/* Internal: cmd_result ready to be filled with t's bounds. */
void cmd_result_init(struct cmd_result *r, size_t max_output);
/*
 * Internal: turns raw stdout/stderr into r's framed contents and status.
 * channel_status is what the process or channel reported (-1 none).
 */
int prov_finish_framed(struct transport *t, struct cmd_result *r, const char *token,
		       const struct sbuf *raw_out, const struct sbuf *raw_err, int channel_status);
/*
 * Internal: for a command abandoned part-way (timeout, truncation, I/O error):
 * keeps what was read, without markers and within r's bounds, for diagnostics.
 */
void prov_keep_partial(struct cmd_result *r, const char *token, const struct sbuf *raw_out,
		       const struct sbuf *raw_err);
/* Internal: default run_cmd: render then ops->run. */
int prov_run_cmd_rendered(struct transport *t, const struct prov_cmd *cmd, struct cmd_result *out);

/*
 * Parallel runner: calls fn(i, ctx) for i in [0, n) on at most `concurrency`
 * threads (0 -> PROV_POOL_DEFAULT: 32, like Kamal's SSHKit, which starts up to 30
 * connections at once; a fleet of a few dozen hosts is observed in one wave). Each call owns everything it opens (typically: open host
 * i's transport, run every command for that host, close it), so a session
 * never crosses threads. results[i] receives fn's return; one failing host
 * does not stop the others. Returns 0, or -1 if threads could not be started
 * (then nothing ran).
 */
#define PROV_POOL_DEFAULT 32
int prov_pool_run(size_t n, int concurrency, int (*fn)(size_t i, void *ctx), void *ctx,
		  int *results);

#endif
