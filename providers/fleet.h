/*
 * Observing a configuration's whole fleet: open a transport per host (SSH
 * from the config's ssh settings, or the local transport for localhost),
 * wrap it in the read-only guard, run the one observation script
 * (docker_obs.h), in parallel over hosts with bounded concurrency.
 *
 * Connection settings, in order of precedence:
 *   - environment (for CI): PLUMB_SSH_KNOWN_HOSTS (known_hosts file),
 *     PLUMB_SSH_KEY (a private key file tried before ssh.keys),
 *     PLUMB_SSH_ACCEPT_NEW=1 (accept and record unknown host keys),
 *     PLUMB_SSH_CONNECT_TO ("HOST=ADDR:PORT,…": dial ADDR:PORT for HOST, e.g.
 *     a relay; the host key is still checked for HOST)
 *   - x-plumb in deploy.yml:
 *       x-plumb:
 *         ssh:
 *           known_hosts: PATH          # relative to the repository root
 *           accept_new_host_keys: true # trust on first use (default false)
 *   - Kamal's ssh: user (default root), port (22), keys (~ expanded),
 *     proxy (jump host); key_data and proxy_command only when trusted.
 *
 * Untrusted (fleet_opts.trusted = 0), the repository cannot reach outside
 * itself: x-plumb.ssh.known_hosts must resolve (symlinks followed) inside the
 * repository or the observation is refused; accept_new_host_keys is ignored
 * (only PLUMB_SSH_ACCEPT_NEW turns acceptance on); ssh.keys outside the
 * repository are skipped (PLUMB_SSH_KEY and the agent remain), and a key
 * inside it that is a link to outside is refused.
 * Hosts named "localhost" or "127.0.0.1" use the local transport; an untrusted
 * run refuses them unless PLUMB_ALLOW_LOCAL=1 (a pull request must not make
 * the CI runner observe itself).
 *
 * Other environment: PLUMB_DEBUG_OBSERVATION=FILE appends the raw bytes every
 * host sent (0600) — they hold only hashes, which is what tests check;
 * PLUMB_OBS_MAX_OUTPUT=N bounds each host's output (bytes) below the default,
 * to exercise the "cut short -> unknown" path.
 */
#ifndef PLUMB_FLEET_H
#define PLUMB_FLEET_H

#include "providers/docker_obs.h"
#include "state/config.h"
#include "state/observed.h"

struct fleet_opts {
	const char *root;       /* repository root, for relative x-plumb paths; NULL = cwd */
	int trusted;            /* allow key_data and proxy_command */
	int concurrency;        /* 0 -> sshkit.max_concurrent_starts, else PROV_POOL_DEFAULT */
	int connect_timeout_ms; /* 0 -> 10 s */
	int cmd_timeout_ms;     /* 0 -> 60 s */
};

/* The SSH settings one observation uses (fleet_conn_settings). */
struct fleet_conn {
	char *known_hosts;  /* NULL = libssh's default */
	int accept_new;     /* accept and record unknown host keys */
	struct strvec keys; /* identity files, in order */
	size_t max_output;  /* per host; 0 = default, never above PROV_DEFAULT_MAX_OUTPUT */
};

/* Fills *out from the environment and c under o's trust (rules above).
 * 0, or -1 with err saying what was refused; release with fleet_conn_release. */
int fleet_conn_settings(struct fleet_conn *out, const struct config *c, const struct fleet_opts *o,
			char *err, size_t errlen);
void fleet_conn_release(struct fleet_conn *conn);

/*
 * Observes every host of c (roles and accessories). *out receives a fleet
 * with one obs_host per host, in config order, each OBS_OK, OBS_UNREACHABLE
 * or OBS_UNKNOWN with its error. Returns 0 when every host is OBS_OK, 1 when
 * some are not, -1 when nothing could be attempted (then *out is NULL and
 * err says why).
 */
int fleet_observe(struct obs_fleet **out, const struct config *c, const struct fleet_opts *o,
		  char *err, size_t errlen);

/* The query a config implies (service, destination, accessories); q borrows
 * from c and owns only names (free with fleet_query_release). */
void fleet_query(struct docker_obs_query *q, const struct config *c);
void fleet_query_release(struct docker_obs_query *q);

#endif
