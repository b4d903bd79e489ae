/*
 * The invocation: what the person or CI job running plumb decided, read once
 * from the environment, and the trust policy that weighs it against what a
 * repository asks for. Providers never read the environment: the reconciler
 * turns invocation + config + trust into plain options (providers/fleet.h).
 *
 * Environment (every pointer refers to the environment; NULL/0 when unset):
 *   PLUMB_SSH_KNOWN_HOSTS    known_hosts file (wins over x-plumb.ssh.known_hosts)
 *   PLUMB_SSH_KEY            a private key file tried before ssh.keys
 *   PLUMB_SSH_KEY_PASSPHRASE the passphrase of encrypted keys (never prompted for)
 *   PLUMB_SSH_ACCEPT_NEW=1   accept and record unknown host keys (not for a
 *                            route the repository chose, when untrusted)
 *   PLUMB_SSH_CONNECT_TO     "HOST=ADDR:PORT,…": dial ADDR:PORT for HOST (a relay;
 *                            the host key is still checked for HOST)
 *   PLUMB_ALLOW_LOCAL=1      an untrusted run may observe this machine
 *   PLUMB_DEBUG_OBSERVATION  append every host's raw observation bytes there
 *   PLUMB_OBS_MAX_OUTPUT=N   lower each host's output bound (bytes; tests)
 */
#ifndef PLUMB_INVOCATION_H
#define PLUMB_INVOCATION_H

#include <stddef.h>

#include "providers/fleet.h"
#include "state/config.h"

struct rec_invocation {
	const char *ssh_known_hosts;
	const char *ssh_key;
	const char *ssh_key_passphrase; /* SECRET */
	const char *ssh_connect_to;
	const char *debug_observation;
	int ssh_accept_new;
	int allow_local;
	size_t obs_max_output; /* 0 = default; only ever lowers it */
};

/* Reads the variables above with getenv_fn(name, ctx) (NULL -> getenv). Never fails. */
void rec_invocation_read(struct rec_invocation *inv,
			 const char *(*getenv_fn)(const char *name, void *ctx), void *ctx);

/*
 * The connection settings of one run: the invocation's, then the config's
 * under trust. Untrusted, the repository reaches nothing outside itself:
 *   - x-plumb.ssh.known_hosts must resolve (symlinks followed) inside the
 *     repository or the run is refused;
 *   - x-plumb.ssh.accept_new_host_keys is ignored (only the invocation turns
 *     acceptance on), and even then a key is never recorded for a connection
 *     through ssh.proxy (the repository chose the route: a jump host that
 *     answers for any name would plant its key), accept_new_refused says so;
 *   - ssh.keys outside the repository are skipped, a key inside it that links
 *     outside is refused; key_data and proxy_command are not used.
 * Owns its strings except key_data/key_passphrase (borrowed from c and the
 * environment). Release with rec_fleet_settings_release.
 */
struct rec_fleet_settings {
	struct strvec hosts;
	struct strvec keys;
	char *known_hosts;
	char *accept_new_refused;
	struct fleet_opts fo; /* points into the fields above, c and the invocation */
};

/*
 * 0, or PLUMB_EOUTSIDE (a key or known_hosts path leaving the repository) or
 * PLUMB_EUNTRUSTED (this machine named in an untrusted run) with err saying
 * what was refused (nothing was contacted).
 */
int rec_fleet_settings(struct rec_fleet_settings *out, const struct config *c,
		       const struct rec_invocation *inv, const char *root, int trusted,
		       struct plumb_err *err);
void rec_fleet_settings_release(struct rec_fleet_settings *s);

/*
 * True if host names this machine: "localhost" in any case, or a name or
 * address that resolves to a loopback (127/8, ::1), unspecified (0.0.0.0, ::)
 * or one of this machine's own interface addresses. A name that does not
 * resolve is not this machine (it cannot be connected to either).
 */
int rec_host_is_this_machine(const char *host);

#endif
