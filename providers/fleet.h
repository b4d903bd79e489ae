/*
 * A fleet handle: one connection per host, opened once and kept for the
 * handle's life, so a run can observe, lock and execute on the same session
 * and a watcher can keep sessions warm between cycles.
 *
 * Mechanism only: the fleet takes plain values (hosts, user, keys, known_hosts,
 * whether new host keys may be recorded…). What the repository may ask for and
 * what only the invocation may turn on is decided by the reconciler
 * (reconciler/invocation.h); nothing here reads the environment or a config.
 *
 * Modes, like tmux's command table flags: a handle records whether it may
 * mutate. A FLEET_READ_ONLY handle hands out only the read-only guard
 * (transport_readonly_wrap); asking it for the raw transport is refused
 * (PLUMB_EREFUSED). Only an explicit FLEET_READ_WRITE open (the coming
 * executor; never plan or hosts) yields the raw transport.
 *
 * Hosts named exactly "localhost" or "127.0.0.1" use the local transport;
 * whether this machine may be observed at all is the caller's decision.
 *
 * Threads: fleet_observe runs one worker per host (prov_pool_run); a host's
 * transport is used by one thread at a time. A handle itself is used by one
 * thread at a time.
 */
#ifndef PLUMB_FLEET_H
#define PLUMB_FLEET_H

#include "providers/docker_obs.h"
#include "providers/transport.h"
#include "state/err.h"
#include "state/observed.h"

struct config;

enum fleet_mode {
	FLEET_READ_ONLY,  /* only the read-only guard is handed out */
	FLEET_READ_WRITE, /* the raw transport too (fleet_writer) */
};

/*
 * What a fleet connects with. Strings are copied by fleet_open, except the
 * two SECRETs, which are borrowed for the handle's life (the caller keeps
 * them alive and wipes them). Zero values mean the defaults noted.
 */
struct fleet_opts {
	const char *const *hosts; /* in order; obs_fleet follows it */
	size_t nhosts;
	const char *user;         /* NULL -> root */
	int port;                 /* 0 -> 22 */
	const char *const *keys;  /* identity files, tried in order */
	size_t nkeys;
	const char *key_data;        /* SECRET, borrowed: a private key as text */
	const char *key_passphrase;  /* SECRET, borrowed: for encrypted keys; never prompted */
	const char *known_hosts;     /* NULL = libssh's default */
	int accept_new;              /* record unknown host keys */
	const char *accept_new_refused; /* set with accept_new: refused for this route, and why */
	const char *jump;            /* ssh.proxy */
	const char *proxy_command;   /* ssh.proxy_command */
	const char *connect_to;      /* "HOST=ADDR:PORT,…": dial ADDR:PORT for HOST */
	const char *dump;            /* append each host's raw observation bytes here (0600) */
	size_t max_output;           /* per host; 0 = default, never above PROV_DEFAULT_MAX_OUTPUT */
	int concurrency;             /* 0 -> PROV_POOL_DEFAULT */
	int connect_timeout_ms;      /* 0 -> 10 s */
	int cmd_timeout_ms;          /* 0 -> 60 s */
	int observe_cache;           /* keep each host's last full observation for the next
				      * fleet_observe (struct docker_obs_cache: plumb watch) */
};

struct fleet;

/* A handle with no connection yet (they open on first use). Never fails. */
void fleet_open(struct fleet **out, const struct fleet_opts *o, enum fleet_mode mode);
/* Closes every session and frees; NULL is fine. */
void fleet_free(struct fleet *fl);
enum fleet_mode fleet_mode(const struct fleet *fl);
size_t fleet_nhosts(const struct fleet *fl);
/* Sessions opened over the handle's life (a reused session counts once). */
unsigned long fleet_connects(const struct fleet *fl);
/* Over the handle's life: commands run on hosts, and commands the read-only
 * guards refused (a read-only run that tried to mutate shows here). */
unsigned long fleet_commands(const struct fleet *fl);
unsigned long fleet_refused(const struct fleet *fl);

/*
 * Observes every host through its read-only guard, opening sessions not yet
 * open and reusing the others. The hashes' salt is the handle's, the same
 * for every observation. With observe_cache, a host where docker events saw
 * no change since its last observation is answered partly from that one
 * (obs_host.cached); fleet_writer on a host forgets it. *out receives one obs_host per host, in
 * order, each OBS_OK, OBS_UNREACHABLE or OBS_UNKNOWN with its error; a host
 * whose observation failed has its session closed (reopened next time).
 * deadline_ms: an absolute prov_now_ms() time, 0 = none; every wait (connect,
 * command) is cut to it, and a host not done by then is OBS_UNKNOWN with
 * "deadline reached". Returns 0 when every host is OBS_OK, 1 when some are
 * not, a negative PLUMB_E* code when nothing could be attempted (then *out is
 * NULL and err says why).
 */
int fleet_observe(struct fleet *fl, struct obs_fleet **out, const struct docker_obs_query *q,
		  double deadline_ms, struct plumb_err *err);

/*
 * Host i's read-only guard, opening the session if needed (any mode). *out is
 * borrowed from the handle: valid until fleet_free or a failed observation of
 * that host. 0, or a negative PLUMB_E* code with err set.
 */
int fleet_reader(struct fleet *fl, size_t i, struct transport **out, struct plumb_err *err);
/*
 * Host i's raw transport, which may mutate: only from a FLEET_READ_WRITE
 * handle; a read-only one returns PLUMB_EREFUSED and says so. Borrowed as above.
 */
int fleet_writer(struct fleet *fl, size_t i, struct transport **out, struct plumb_err *err);

/*
 * A new session to host i that is the caller's own (transport_close it), for
 * a thread that must not wait for the host's shared one (the signal thread
 * releasing the deploy lock while a worker runs a command): connect and each
 * command bounded by timeout_ms (0: the handle's). Only from a
 * FLEET_READ_WRITE handle (else PLUMB_EREFUSED). Safe from any thread while
 * the handle is alive: it reads only what fleet_open set.
 */
int fleet_open_spare(struct fleet *fl, size_t i, int timeout_ms, struct transport **out,
		     struct plumb_err *err);

/*
 * Makes this machine's 127.0.0.1:port reachable as 127.0.0.1:port on host i
 * (an SSH remote forward, as Kamal does for a `localhost:PORT` registry), on
 * a session of its own with a relay thread (providers/tunnel.h), so host i's
 * other sessions stay usable by another thread meanwhile. Kept until
 * fleet_free, which closes it (the host's port is free again when it
 * returns). Idempotent per (host, port): a tunnel already up returns 0; one
 * whose session broke is reopened. A local host ("localhost", "127.0.0.1")
 * needs none: 0. Only from a FLEET_READ_WRITE handle (else PLUMB_EREFUSED).
 * Errors: PLUMB_EUNAVAILABLE (the port is taken on the host), PLUMB_EREFUSED
 * (the server refuses forwarding), PLUMB_EINVAL, or a connect error.
 * Hosts may be tunnelled from parallel workers, one thread per host index.
 */
int fleet_tunnel(struct fleet *fl, size_t i, int port, struct plumb_err *err);

/* The query a config implies (service, destination, accessories); q borrows
 * from c and owns only names (free with fleet_query_release). */
void fleet_query(struct docker_obs_query *q, const struct config *c);
void fleet_query_release(struct docker_obs_query *q);

#endif
