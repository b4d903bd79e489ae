/*
 * Observed state: what each host actually runs, as the observation
 * (providers/docker_obs.c) reports it after one round trip per host, and as
 * the diff (diff/) compares it with the desired state.
 *
 * No secret is ever held here: every env value (container Env, image Env) and
 * every env-file line is reduced *on the host* to hash_salted(salt, value)
 * (state/hash.h) with the fleet's per-run salt, so only keys and hashes
 * cross the wire. Unit tests build these structs by hand (a fake fleet).
 *
 * Ownership: an obs_fleet owns everything below it; obs_fleet_free frees all.
 */
#ifndef PLUMB_OBSERVED_H
#define PLUMB_OBSERVED_H

#include <stddef.h>

#include "state/config.h" /* struct kvs */
#include "state/hash.h"
#include "state/util.h"

/* An env variable as observed: its name and the salted hash of its value. */
struct obs_env {
	char *key;
	char hash[HASH_HEX_LEN + 1];
};

struct obs_mount {
	char *type;        /* "bind", "volume", "tmpfs" */
	char *source;      /* volume name, or host path for a bind */
	char *destination; /* path in the container */
	char *mode;        /* as given ("ro", "z", "" ) */
	int rw;
};

struct obs_port {
	char *container_port; /* "5432/tcp" */
	char *host_ip;        /* "127.0.0.1", "" for all addresses */
	char *host_port;      /* "5432" */
};

enum obs_kind {
	OBS_APP,       /* labels service=<service>, role=<role> */
	OBS_ACCESSORY, /* label service=<service>-<name> (or the accessory's service) */
	OBS_PROXY,     /* kamal-proxy (or plumb's proxy) */
	OBS_OTHER,     /* not ours: another service's container; never touched */
};

struct obs_container {
	char *id;
	char *name;
	enum obs_kind kind;
	char *image_ref;   /* Config.Image: what it was started from, e.g. "localhost:5555/optimus:abc" */
	char *image_id;    /* .Image: content identity "sha256:…" */
	char *state;       /* running, exited, created, restarting, paused, dead */
	char *health;      /* healthy, unhealthy, starting; NULL = no healthcheck */
	int exit_code;
	struct strvec cmd;        /* Config.Cmd */
	struct strvec entrypoint; /* Config.Entrypoint */
	struct obs_env *env;      /* Config.Env (includes the image's own Env) */
	size_t nenv;
	struct kvs labels;        /* Config.Labels (includes the image's own labels) */
	struct obs_mount *mounts;
	size_t nmounts;
	struct obs_port *ports;   /* HostConfig.PortBindings */
	size_t nports;
	char *restart_policy;     /* "unless-stopped", "always", "no", … */
	int restart_max_retries;
	char *log_driver;         /* HostConfig.LogConfig.Type */
	struct kvs log_opts;      /* HostConfig.LogConfig.Config */
	struct strvec networks;   /* NetworkSettings.Networks keys */
	char *network_mode;       /* HostConfig.NetworkMode */
	char *hostname;           /* Config.Hostname */
	struct kvs options;       /* other HostConfig settings that role options map to
				   * (e.g. "memory" → bytes as docker reports, "cpus" → NanoCpus/1e9) */
	char *created;            /* ISO 8601 */
	char *started_at;
	char *finished_at;
	/* from labels, for convenience: */
	char *service, *role, *destination; /* NULL when absent; destination "" when the label is empty */
};

/* An image's own defaults, to tell them apart from what a container was started with. */
struct obs_image {
	char *id; /* "sha256:…" */
	struct strvec repo_tags;
	struct strvec repo_digests;
	struct obs_env *env;
	size_t nenv;
	struct kvs labels;
	struct strvec cmd;
	struct strvec entrypoint;
	struct strvec volumes;
};

/* A file under ~/.kamal/apps/ (env files): its path and hashes of its lines. */
struct obs_env_file {
	char *path;      /* relative to the SSH user's home, e.g. ".kamal/apps/optimus/env/roles/web.env" */
	char content_hash[HASH_HEX_LEN + 1]; /* salted hash of the whole file */
	struct obs_env *vars; /* one per KEY=value line: key and salted hash of the value as written */
	size_t nvars;
	int mode;        /* permission bits, e.g. 0600 */
};

/* One kamal-proxy route, as `kamal-proxy list` reported it. */
struct obs_route {
	char *service; /* the role's container prefix, e.g. "optimus-web" */
	char *target;  /* e.g. "6db082a60d0c:80" (container id prefix and port); several joined by ", " */
};

enum obs_status {
	OBS_OK,          /* observed completely */
	OBS_UNREACHABLE, /* could not connect or authenticate */
	OBS_UNKNOWN,     /* connected, but the observation failed, timed out or was cut short:
			  * never to be read as "no containers" */
};

struct obs_host {
	char *host;
	enum obs_status status;
	char *error;     /* why, when not OBS_OK; never contains a secret */
	struct obs_container *containers; /* ours (app, accessory, proxy) and OBS_OTHER */
	size_t ncontainers;
	struct obs_image *images;
	size_t nimages;
	struct obs_env_file *env_files;
	size_t nenv_files;
	char *docker_version;
	char *home;        /* the SSH user's home directory on the host (absolute), or NULL */
	char *lock_holder; /* contents of the deploy lock's details when held (plan reports it), else NULL */
	unsigned round_trips; /* commands run for this observation (target: 1 after connecting) */
	double connect_ms, observe_ms;
	struct obs_route *routes; /* kamal-proxy's routes (providers/kamal_proxy.h); none when no */
	size_t nroutes;           /* kamal-proxy runs or its list could not be read */
	char *host_time;          /* the host's clock at this observation ("T"), or NULL */
	int cached;               /* containers, images and routes are those of an earlier
				   * observation: docker events saw no change since */
};

struct obs_fleet {
	char salt[33]; /* per-run salt the hashes were made with */
	struct obs_host *hosts;
	size_t nhosts;
};

const struct obs_host *obs_fleet_host(const struct obs_fleet *f, const char *host);
const struct obs_image *obs_host_image(const struct obs_host *h, const char *id);
const struct obs_env_file *obs_host_env_file(const struct obs_host *h, const char *path);
const char *obs_env_hash(const struct obs_env *env, size_t n, const char *key); /* NULL if absent */
/* Labels are a struct kvs (hashed: O(1) lookups, however many a host reports). */
void obs_container_release(struct obs_container *c);
void obs_image_release(struct obs_image *i);
void obs_routes_free(struct obs_route *r, size_t n);
void obs_host_release(struct obs_host *h);
void obs_fleet_free(struct obs_fleet *f);

#endif
