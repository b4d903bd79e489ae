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

/*
 * docker run … for an app role, an accessory or kamal-proxy, exactly as
 * Kamal runs it; name overrides the container's name when not NULL (a
 * temporary name; KAMAL_CONTAINER_NAME keeps the real one). An app runs
 * x->version when set (its name and KAMAL_VERSION; the image is
 * dc->image_ref). --hostname is <host's first 51 chars>-<12 hex>, as
 * Kamal's boot gives it. Values are passed as Kamal's shell text leaves them
 * (desired_env_held); secrets stay in the env file (--env-file).
 * PLUMB_EINVAL naming the key for a value holding ${...} (Kamal lets the
 * host's shell expand it; plumb passes values literally and cannot),
 * PLUMB_EUNTRUSTED for an env value this untrusted run did not compute.
 * On error nothing is appended to *c.
 */
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

/* docker tag REF <repo>:latest (or :latest-<dest>), as Kamal tags after a boot. */
void dcmd_tag_latest(struct prov_cmd *c, enum prov_join join, const struct desired *ds,
		     const char *ref);

/*
 * The images a host needs for a rollout, in one command: for each refs[i],
 * pulled only when the host does not hold want[i] (the identity the plan was
 * built with; NULL or "" = always pull) under it; `docker login` (user
 * non-NULL: `docker login SERVER -u USER --password-stdin`, the password
 * the command's stdin, never an argv word) only before a pull; the kamal
 * network created when missing (Kamal's `docker network create kamal`,
 * "already exists" tolerated). Prints each image's id, in order, each one it
 * pulled preceded by a line "pulled".
 */
void dcmd_pull_needed(struct prov_cmd *c, enum prov_join join, const char *server, const char *user,
		      const char *const *refs, const char *const *want, size_t n);

/*
 * A check that the containers names[i] still have the full ids ids[i] (what
 * the plan was built from), and that the last nimages of names[] are image
 * references still naming the image ids[i] (an image the host already held:
 * not pulled again); when one does not, the command fails (status 9) with a
 * line holding DCMD_EXPECT_MARK on stderr, before what follows.
 */
#define DCMD_EXPECT_MARK "plumb-expect:"
void dcmd_expect_ids(struct prov_cmd *c, enum prov_join join, const char *const *names,
		     const char *const *ids, size_t n, size_t nimages);

/*
 * docker exec kamal-proxy kamal-proxy deploy <service>-<role>[-<dest>]
 * --target=<target>:<app_port> + every flag of Kamal's
 * Configuration::Proxy#deploy_options, in its order: --host (each), --tls,
 * --tls-certificate-path/--tls-private-key-path (custom certificate),
 * --deploy-timeout/--drain-timeout (Ns), --health-check-interval/-timeout/
 * -path, --target-timeout, --buffer-requests/--buffer-responses (=false when
 * off), --buffer-memory, --max-request-body, --max-response-body,
 * --path-prefix (each), --strip-path-prefix, --forward-headers,
 * --tls-redirect, --log-request-header (Kamal's three by default),
 * --log-response-header, --error-pages. Kamal's target is the new
 * container's id; the role's proxy is the root's merged with its own (an
 * accessory with a proxy deploys under its service name). PLUMB_EINVAL for
 * a container not behind the proxy; on error nothing is appended.
 */
int dcmd_proxy_deploy(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
		      const char *target, const struct dcmd_ctx *x, struct plumb_err *err);
/* dcmd_proxy_deploy with the target the id of the container named name,
 * looked up on the host as Kamal does, in the same command (one round trip
 * from boot to switch). */
int dcmd_proxy_deploy_named(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
			    const char *name, const struct dcmd_ctx *x, struct plumb_err *err);

/* mkdir -p for the directories a container needs before it runs: an app's
 * env directory (.kamal/apps/<service[-dest]>/env/roles); an accessory's env
 * directory, its directories (<home>/<service>/<dir>, chmod/chown when the
 * config says, as `kamal accessory directories`) and its files' parents;
 * kamal-proxy's .kamal/proxy/apps-config. */
void dcmd_prepare_dirs(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
		       const struct dcmd_ctx *x);

/*
 * A proxied role with asset_path: what Kamal does before its docker run
 * (App::Assets#extract_assets, then #sync_asset_volumes): the image's asset
 * directory copied out of a created <prefix>-assets container into
 * .kamal/apps/<svc>/assets/extracted/<role>-<version>, then into the
 * versioned volume directory the container mounts, and — when old_version
 * (the running one) is given — old and new assets into each other's volume
 * (`cp -rnT`, failures tolerated), so both versions serve both during the
 * switch. Returns 1 when it appended commands, 0 when the role has no
 * assets (nothing appended). Kamal's clean_up_assets is not done.
 */
int dcmd_assets_prepare(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
			const struct dcmd_ctx *x, const char *old_version);

/*
 * An env file: *content receives the exact bytes Kamal writes (secrets
 * included: the caller wipes it with util_free_secret), and *cmd one simple
 * command (joined by ;) that installs it from stdin (dcmd_install_stdin,
 * mode 0600): run it on its own, with the content as its stdin.
 * PLUMB_EUNAVAILABLE when a secret it holds could not be read: nothing is
 * built then and *content is NULL.
 */
int dcmd_env_file_write(struct prov_cmd *cmd, char **content, const struct des_env_file *f,
			const struct config *c, struct plumb_err *err);

/*
 * Appends one simple command that installs its stdin at path (home-relative
 * or absolute) atomically: `sh -c '<constant script>' sh DIR TMP PATH MODE
 * SIZE` — the directory made (mkdir -p), the bytes written under umask 077
 * to PATH.tmp.<16 random hex> beside it, checked to be SIZE bytes (a stdin
 * cut short — this machine killed mid-transfer — never installs a partial
 * file, and what is chained after it does not run), chmod MODE ("600"),
 * renamed over PATH; the temporary file removed if a step fails. The script is a constant and
 * every value is a quoted argument, so no value is ever shell text. The
 * content travels on stdin only (transport_run_input), never in argv.
 * Also for accessory files (Kamal uploads them, then chmods them).
 */
void dcmd_install_stdin(struct prov_cmd *c, enum prov_join join, const char *path, const char *mode,
			size_t size);

/*
 * A custom TLS certificate of a role behind kamal-proxy (proxy.ssl:
 * certificate_pem / private_key_pem, secrets), written where Kamal writes it
 * (.kamal/proxy/apps-config/<service[-dest]>/tls/<role>/{cert,key}.pem, mode
 * 0644 as Kamal uploads it, so kamal-proxy's user can read it) and where
 * dcmd_proxy_deploy points --tls-certificate-path / --tls-private-key-path.
 * Returns 1 with *content (the PEM: wipe it with util_free_secret) and the
 * install command appended to *cmd; 0 with nothing built when the role has
 * no custom certificate; PLUMB_EUNAVAILABLE when the secret has no value.
 */
enum dcmd_tls_file { DCMD_TLS_CERT, DCMD_TLS_KEY };
int dcmd_proxy_tls_write(struct prov_cmd *cmd, char **content, const struct des_container *dc,
			 enum dcmd_tls_file which, const struct dcmd_ctx *x, struct plumb_err *err);

/* Kamal's prune (prune.rb), as three simple commands joined by ;:
 * stopped containers labelled service=<service> beyond the newest `retain`
 * (`docker ps -q -a … | tail -n +<retain+1> | xargs -r docker rm`; every
 * destination's, and <name>_replaced_<hex> leftovers, as Kamal's filter
 * has it), dangling images of the service (docker image prune), then tagged
 * images of the service no container uses, never <repository>:latest[-dest]
 * (a constant `sh -c` script; the service, tag and repository are its
 * arguments). Images without the label (not built by Kamal) are never touched. */
void dcmd_prune(struct prov_cmd *c, enum prov_join join, const struct desired *ds, int retain);

#endif
