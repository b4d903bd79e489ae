/*
 * Reverse tunnels: a registry on this machine's 127.0.0.1:PORT (the seed's
 * `localhost:5555`) made reachable from a host as its own 127.0.0.1:PORT, so
 * that the host's dockerd pulls `localhost:PORT/image:tag` with no extra
 * flags. This is what Kamal does (an SSH remote forward, `ssh -R
 * 127.0.0.1:PORT:127.0.0.1:PORT`).
 *
 * A tunnel owns its own SSH session to the host (libssh sessions are not
 * thread-safe, and the host's main session keeps running commands) and one
 * relay thread, the only user of that session: it accepts every channel sshd
 * opens for a connection to the host's 127.0.0.1:PORT, connects to
 * 127.0.0.1:PORT here and copies both ways through two bounded buffers per
 * connection (a full buffer stops reading that side: flow control, not
 * memory). At most TUNNEL_MAX_CONNS connections at once; more are refused.
 *
 * The usual entry is fleet_tunnel (fleet.h), which keeps the tunnel until
 * fleet_free. Errors (state/err.h):
 *   PLUMB_EUNAVAILABLE  the host's 127.0.0.1:PORT is taken (another listener,
 *                       another tunnel) or the server does not permit that port
 *   PLUMB_EREFUSED      the server refuses remote forwarding at all
 *                       (AllowTcpForwarding no/local, no-port-forwarding key)
 *   anything transport_ssh_open returns (connect, host key, auth)
 */
#ifndef PLUMB_PROV_TUNNEL_H
#define PLUMB_PROV_TUNNEL_H

#include "providers/fleet.h"
#include "providers/transport.h"
#include "state/err.h"

#define TUNNEL_MAX_CONNS 64
#define TUNNEL_BUF (64u << 10) /* per connection and direction */

struct tunnel;

struct tunnel_stats {
	unsigned long accepted;    /* connections accepted on the host */
	unsigned long refused;     /* ... closed at once: nothing listens here, or too many */
	unsigned long long to_host, from_host; /* bytes relayed */
};

/*
 * Opens a session with o (borrowed for the call), asks the host to listen on
 * 127.0.0.1:port and starts the relay thread. On failure *out is NULL and
 * the code is returned with err set (naming the host and the port).
 */
int tunnel_open(struct tunnel **out, const struct transport_opts *o, int port,
		struct plumb_err *err);
int tunnel_port(const struct tunnel *tn);
/* 0 once the relay stopped on its own (the session broke); 1 while it runs. */
int tunnel_alive(const struct tunnel *tn);
/* A snapshot (the counters move while the relay runs). */
void tunnel_stats(const struct tunnel *tn, struct tunnel_stats *out);
/*
 * Stops the relay, closes its connections, cancels the forward (waiting for
 * the server's answer, so the host's port is free when this returns) and
 * closes the session. NULL is fine.
 */
void tunnel_close(struct tunnel *tn);

/* The session inside an SSH transport (providers/ssh.c), NULL for another kind.
 * Borrowed from t; for the tunnel, which owns its transport. */
struct ssh_session_struct *transport_ssh_session(struct transport *t);

#endif
