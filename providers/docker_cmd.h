/*
 * Every docker command the executor sends, built here from the desired state
 * as argv (struct prov_cmd, rendered by quote.h's one quoting function) —
 * never as free strings. The containers these commands create are Kamal
 * 2.12's exactly (../shared/kamal/BEHAVIOUR.md; Kamal's
 * lib/kamal/commands/{app,accessory,proxy}.rb): name, labels, env order,
 * --env-file, hostname pattern, network, restart policy, log options,
 * volumes, ports, options, image, cmd. So `plan` after `apply` says
 * "No changes" and Kamal keeps managing the fleet.
 *
 * Secrets never appear in a command built here: they reach a host only as
 * an env file's content, sent on the channel's stdin (dcmd_env_file_write +
 * transport_run_input), and docker run reads them with --env-file.
 *
 * Builders append one or more simple commands to *c (prov_cmd_begin with
 * the join given), so a caller may chain several into one round trip. They
 * return 0 or a negative PLUMB_E* code with err set (a value docker cannot
 * be given, a secret that is unavailable).
 */
#ifndef PLUMB_DOCKER_CMD_H
#define PLUMB_DOCKER_CMD_H

#include "providers/quote.h"
#include "state/config.h"
#include "state/desired.h"
#include "state/err.h"

/* What a builder needs beyond the desired container. All borrowed. */
struct dcmd_ctx {
	const struct config *config;   /* for proxy settings and sensitive clear values */
	const struct desired *ds;      /* service, destination, version */
	const char *host;              /* the host as named in the config (KAMAL_HOST, hostname) */
	const char *home;              /* the SSH user's home on that host (absolute), for
					* home-relative bind mounts (accessory directories) */
	const char *version;           /* the version the container runs (rollback: an older one);
					* NULL = ds->version */
	const char *hostname_suffix;   /* app --hostname's 12 hex digits; NULL = random (as
					* Kamal: SecureRandom.hex(6)); tests fix it */
};

/* docker run … for an app role, an accessory or kamal-proxy, exactly as
 * Kamal runs it; name overrides dc->name when not NULL (a temporary name). */
int dcmd_run(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
	     const char *name, const struct dcmd_ctx *x, struct plumb_err *err);

/* docker start|stop [-t N]|rm -f|rename OLD NEW|logs --tail N NAME. stop
 * passes -t only for stop_timeout > 0. The logs arrive on the command's
 * stdout and stderr both (no 2>&1: the caller reads the two). */
void dcmd_start(struct prov_cmd *c, enum prov_join join, const char *name);
void dcmd_stop(struct prov_cmd *c, enum prov_join join, const char *name, int stop_timeout);
void dcmd_remove(struct prov_cmd *c, enum prov_join join, const char *name);
void dcmd_rename(struct prov_cmd *c, enum prov_join join, const char *from, const char *to);
void dcmd_logs_tail(struct prov_cmd *c, enum prov_join join, const char *name, int lines);

/* The -t Kamal gives `docker stop` for a role's container (Role#stop_args):
 * stop_timeout (role, else root), else drain_timeout for a role without the
 * proxy (kamal-proxy has drained a proxied one already), else 0 = none. */
int dcmd_stop_timeout(const struct config *c, const char *role);

/* docker pull REF; docker image inspect --format {{.Id}} REF; docker tag REF
 * <repo>:latest (or :latest-<dest>), as Kamal tags after a boot. */
void dcmd_pull(struct prov_cmd *c, enum prov_join join, const char *ref);
void dcmd_image_id(struct prov_cmd *c, enum prov_join join, const char *ref);
void dcmd_tag_latest(struct prov_cmd *c, enum prov_join join, const struct desired *ds,
		     const char *ref);

/* docker login SERVER -u USER --password-stdin: the password is the command's
 * stdin (the caller sends it with transport_run_input), never an argv word. */
void dcmd_login(struct prov_cmd *c, enum prov_join join, const char *server, const char *user);

/* docker inspect --format '<status> <health>' NAME: the caller parses
 * "running healthy", "running none", "exited none"… with dcmd_parse_state. */
void dcmd_state(struct prov_cmd *c, enum prov_join join, const char *name);
enum dcmd_ready { DCMD_STARTING, DCMD_READY, DCMD_FAILED };
enum dcmd_ready dcmd_parse_state(const char *out);

/* docker exec kamal-proxy kamal-proxy deploy <service>-<role>[-<dest>]
 * --target=<container>:<app_port> + every flag the role's proxy config
 * implies (hosts, TLS, health check, timeouts, buffering, headers, path
 * prefix), as Kamal's proxy commands build it. */
int dcmd_proxy_deploy(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
		      const char *target, const struct dcmd_ctx *x, struct plumb_err *err);

/* mkdir -p for the directories a container needs before it runs
 * (.kamal/apps/<service>/env/roles, accessory directories under home). */
void dcmd_prepare_dirs(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
		       const struct dcmd_ctx *x);

/*
 * An env file: *content receives the exact bytes Kamal writes (secrets
 * included: the caller wipes it with util_free_secret), and *cmd the command
 * that installs it from stdin: umask 077, a temporary file beside it, mode
 * 0600, rename over the path (atomic). PLUMB_EUNAVAILABLE when a secret it
 * holds could not be read (nothing is written then).
 */
int dcmd_env_file_write(struct prov_cmd *cmd, char **content, const struct des_env_file *f,
			const struct config *c, struct plumb_err *err);

/* Stopped containers of the service beyond `retain` (newest kept), and
 * dangling images labelled service=<service>, as Kamal's prune does. */
void dcmd_prune(struct prov_cmd *c, enum prov_join join, const struct desired *ds, int retain);

#endif
