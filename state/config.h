/*
 * The deploy.yml model: Kamal's configuration, loaded, validated as strictly as
 * Kamal validates it, and resolved into typed structs.
 *
 * Loading (config_load):
 *   1. read config/deploy.yml (and config/deploy.<dest>.yml) through a source;
 *   2. replace ERB tags by markers, parse YAML, deep-merge the overlay;
 *   3. expand ERB in the keys plumb uses (builder.* and x-* are never evaluated);
 *   4. validate every key against Kamal's schema (all errors at once, each with
 *      file:line:col, the key path and, for near misses, a suggestion);
 *   5. load secrets (.kamal/secrets-common, .kamal/secrets[.<dest>]);
 *   6. build the typed model and check Kamal's cross-key rules.
 *
 * Ownership: a struct config owns everything it points to; config_free frees it
 * all and wipes secret values. Strings are never NULL unless documented
 * ("NULL = not set"). Env values here are the *clear* values; secret env
 * entries carry only the secret's name — its value is looked up with
 * config_secret_value, and nothing that prints a config may print it.
 */
#ifndef PLUMB_CONFIG_H
#define PLUMB_CONFIG_H

#include <stddef.h>

#include "state/secrets.h"
#include "state/source.h"
#include "state/trust.h"
#include "state/util.h"

/* The Kamal release whose behaviour plumb matches (minimum_version is checked against it). */
#define PLUMB_KAMAL_COMPAT "2.12.0"

/*
 * An ordered string map: keys[0..n) and vals[0..n) in insertion order (Kamal's
 * order: env and labels reach containers in it); setting an existing key
 * replaces its value in place. A hash index makes kvs_set/kvs_get O(1), so
 * read keys/vals freely but change them only through kvs_set. A zeroed kvs
 * is empty; kvs_release frees everything and leaves it empty again.
 */
struct kvs {
	char **keys;
	char **vals;
	size_t n, cap;
	size_t *idx;    /* open-addressing slots: position + 1, 0 = free */
	size_t idx_cap; /* 0 or a power of two, at least twice n */
};
void kvs_set(struct kvs *m, const char *key, const char *val);
const char *kvs_get(const struct kvs *m, const char *key);
void kvs_copy(struct kvs *dst, const struct kvs *src); /* dst gets src's pairs set over it */
void kvs_release(struct kvs *m);

/* env: clear values, and secret env names with the secret each reads
 * ("DB_PASSWORD:MAIN_DB_PASSWORD" → env DB_PASSWORD from secret MAIN_DB_PASSWORD). */
struct cfg_env {
	struct kvs clear;
	struct kvs secret; /* env name → secret name */
	/* clear keys whose value came from ERB ENV or a command: compared like
	 * secrets (by hash), never printed */
	struct strvec sensitive;
	/* clear keys whose value was not computed (ERB in an untrusted run): the
	 * value is PLUMB_UNAVAILABLE and must not be compared */
	struct strvec unavailable;
};

struct cfg_env_tag {
	char *tag;
	struct cfg_env env;
};

struct cfg_host {
	char *addr;
	struct strvec tags;
};

struct cfg_logging {
	char *driver; /* NULL = not set */
	struct kvs options;
	int set; /* logging: given at this level */
};

/* Tri-state for booleans Kamal leaves unset: -1 unset, 0 false, 1 true. */
struct cfg_proxy {
	int set;                 /* a proxy section was given (root or role hash) */
	struct strvec hosts;     /* host / hosts */
	int ssl;                 /* -1/0/1 */
	char *ssl_certificate_secret; /* ssl: {certificate_pem: SECRET} (NULL = none) */
	char *ssl_private_key_secret;
	int ssl_redirect;        /* -1/0/1 */
	int app_port;            /* 0 = default (80) */
	int forward_headers;     /* -1/0/1 */
	int response_timeout;    /* 0 = default (30) */
	struct strvec path_prefixes;
	int strip_path_prefix;   /* -1/0/1 */
	char *healthcheck_path;  /* NULL = default "/up" */
	int healthcheck_interval, healthcheck_timeout; /* 0 = default */
	int buffering_requests, buffering_responses; /* -1/0/1 */
	char *max_request_body, *max_response_body, *buffer_memory; /* NULL = default */
	struct strvec log_request_headers, log_response_headers;
	struct kvs run; /* proxy.run, flattened: "http_port" → "8080", "options.memory" → "512m" */
};

struct cfg_role {
	char *name;
	int line; /* where the role is defined, for messages */
	struct cfg_host *hosts;
	size_t nhosts;
	char *cmd;            /* NULL = image default */
	struct cfg_env env;   /* the role's own env (not merged) */
	struct kvs labels;    /* the role's own labels */
	struct kvs options;   /* docker run options ("memory" → "2g"; flag options → "true") */
	int proxy_setting;    /* -1 not given, 0 false, 1 true or a hash */
	int running_proxy;    /* resolved: primary role by default, others when set */
	struct cfg_proxy proxy; /* root proxy merged with the role's proxy hash */
	struct cfg_logging logging; /* the role's own logging */
	int stop_timeout;     /* 0 = not set */
	char *asset_path;     /* NULL = not set (root asset_path applies) */
};

struct cfg_file_spec {
	char *local, *remote, *mode, *owner, *options; /* mode/owner/options may be NULL */
};

struct cfg_accessory {
	char *name;
	int line;
	char *service;   /* container name; default <service>-<name> */
	char *image;
	struct strvec hosts; /* resolved hosts (from host/hosts/role/roles/tag/tags) */
	char *cmd;
	struct strvec ports; /* "127.0.0.1:5432:5432"; "N" means "N:N" */
	struct kvs labels;
	struct kvs options;
	struct cfg_env env;
	struct cfg_file_spec *files;
	size_t nfiles;
	struct cfg_file_spec *directories;
	size_t ndirectories;
	struct strvec volumes;
	char *network;   /* default "kamal" */
	char *registry_server; /* NULL = the root registry */
	char *registry_username;
	char *registry_password_secret; /* secret name, or NULL */
	struct cfg_proxy proxy;
};

struct cfg_registry {
	char *server;      /* NULL = Docker Hub */
	int local;         /* server is localhost:PORT: a registry on the deploying machine */
	int local_port;
	char *username;    /* clear username, or NULL */
	char *username_secret; /* username: [SECRET] */
	char *password;    /* a literal password (a secret in its own right: never printed) */
	char *password_secret; /* password: [SECRET] */
};

struct cfg_ssh {
	char *user;        /* default root */
	int port;          /* default 22 */
	char *proxy;       /* jump host "user@host:port", NULL = none */
	char *proxy_command; /* NULL unless given (used only when trusted) */
	struct strvec keys;
	struct strvec key_data; /* secret names or literal keys (used only when trusted) */
	int keys_only;     /* -1/0/1 */
	struct strvec config; /* ssh config files (used only when trusted); "true"/"false" kept as is */
	char *log_level;
	int forward_agent; /* -1/0/1 */
};

struct cfg_boot {
	int limit;          /* 0 = all at once */
	int limit_percent;  /* limit is a percentage of the role's hosts */
	int wait;           /* seconds between groups */
	int parallel_roles; /* -1/0/1 */
};

/*
 * plumb's own settings (`x-plumb:`), parsed once next to the validator (which
 * reports bad types with file:line). Strings owned by the config.
 */
struct xplumb_accessory {
	char *name;     /* an accessory of the config */
	int pin_digest; /* accessories.<name>.pin_digest: run its image by digest */
	int snapshot;   /* accessories.<name>.snapshot: copy its data before a stop-first
			 * replacement (default 1) */
	int watch_replace; /* accessories.<name>.watch_replace: plumb watch may replace it
			    * (stop-first) on its own; default 0: reported, left to apply */
};
struct xplumb {
	char *version;                    /* version; NULL = from the commit */
	int prune;                        /* prune (default 0) */
	int renames;                      /* renames (default 1): a container whose only change is
					   * the version is renamed; 0 = replaced start-first, for
					   * apps that read KAMAL_VERSION / KAMAL_CONTAINER_NAME */
	struct strvec registry_insecure;  /* registry.insecure: "host" or "host:port" */
	char *ssh_known_hosts;            /* ssh.known_hosts (repository path), or NULL */
	int ssh_accept_new_host_keys;     /* ssh.accept_new_host_keys (default 0) */
	int hooks_timeout;                /* hooks.timeout: seconds a hook may run (0: plumb's
					   * default, reconciler/hooks.h) */
	struct xplumb_accessory *accessories; /* accessories.<name> */
	size_t naccessories;
};
struct config {
	char *file;         /* "config/deploy.yml" as given */
	char *destination;  /* NULL = none */
	char *service;
	char *image;
	struct kvs labels;
	struct strvec volumes;
	struct cfg_registry registry;
	struct cfg_role *roles;   /* in Kamal's order: sorted by name */
	size_t nroles;
	char *primary_role;       /* default "web" */
	int allow_empty_roles;
	struct cfg_env env;       /* root env */
	struct cfg_env_tag *env_tags;
	size_t nenv_tags;
	struct cfg_proxy proxy;   /* root proxy */
	int proxy_set;            /* root proxy: given */
	struct cfg_accessory *accessories;
	size_t naccessories;
	struct cfg_ssh ssh;
	struct cfg_boot boot;
	struct cfg_logging logging;
	struct kvs aliases;
	char *hooks_path;         /* default ".kamal/hooks" */
	char *secrets_path;       /* default ".kamal/secrets" */
	char *asset_path;
	char *error_pages_path;
	int require_destination;
	char *minimum_version;
	/* builder.arch (the first, if a list), e.g. "arm64": the platform the app
	 * image is resolved for. NULL = not set (or ERB, which builder.* never
	 * evaluates) — amd64 is meant. */
	char *builder_arch;
	int retain_containers;    /* default 5 */
	int readiness_delay;      /* default 7 */
	int deploy_timeout;       /* default 30 */
	int drain_timeout;        /* default 30 */
	int stop_timeout;         /* 0 = not set */
	struct kvs sshkit;
	struct kvs x_plumb;       /* x-plumb settings, flattened ("a.b" → value); being replaced by xplumb */
	struct xplumb xplumb;     /* x-plumb settings, typed */
	/* key paths outside env whose value is PLUMB_UNAVAILABLE (ERB ENV or a
	 * command in an untrusted run): commands that contact hosts refuse them */
	struct strvec unavailable_keys;
	struct secrets *secrets;
	struct trust trust;       /* what was turned off while loading */
};

struct config_opts {
	const char *file;        /* relative to the source root; default "config/deploy.yml" */
	const char *destination; /* NULL = none */
	int trusted;
	/* fake environment for tests (see struct trust); NULL = the process's */
	const char *(*getenv_fn)(const char *name, void *ctx);
	void *getenv_ctx;
	/* runs $(…)/%x(…) when trusted (struct trust's run_fn); NULL = never run */
	int (*run_fn)(const char *cmd, const char *cwd, size_t max, char **out, int *status, void *ctx);
	void *run_ctx;
};

/*
 * Loads and validates. On success returns 0 and *out; warnings (e.g. an
 * unavailable secret) may be added to d. On any error returns -1, *out is
 * NULL, and d holds every error found.
 */
int config_load(struct config **out, struct source *src, const struct config_opts *o,
		struct diags *d);
void config_free(struct config *c);

const struct cfg_role *config_role(const struct config *c, const char *name);
const struct cfg_role *config_primary_role(const struct config *c);
/* All distinct hosts: the primary role's first, then the other roles' (in
 * role order), then accessories' — each host once, where first seen. */
void config_all_hosts(const struct config *c, struct strvec *out);

/*
 * The env a role's container gets on a host, merged as Kamal merges it: root
 * env, then the role's env, then each of the host's tags (in the order the
 * host lists them). Clear values merge by key; secret names are the union.
 */
void config_role_env(const struct config *c, const struct cfg_role *r, const char *host,
		     struct cfg_env *out);
/* Labels of a role's containers: service, role, destination, then root labels, then role labels. */
void config_role_labels(const struct config *c, const struct cfg_role *r, struct kvs *out);
/* Logging of a role: root logging overridden by the role's. */
void config_role_logging(const struct config *c, const struct cfg_role *r, struct cfg_logging *out);
void cfg_env_release(struct cfg_env *e);
void cfg_logging_release(struct cfg_logging *l);

/* A secret's value: NULL when not defined; *available = 0 when defined but
 * unresolvable (untrusted, command failed). Never print the result. */
const char *config_secret_value(const struct config *c, const char *secret, int *available);

/*
 * A secret as a consumer may use it: a value, or none. There is no
 * placeholder text: when the secret is named but could not be resolved (or
 * the run refused to compute it), value is NULL and unavailable is 1, so an
 * unavailable secret cannot be sent as if it were a value.
 */
struct cfg_secret {
	const char *value; /* owned by the config; NULL unless available */
	int unavailable;   /* named by the config, but without a value */
};

/*
 * The app registry's credentials (registry.username / registry.password:
 * literal, ERB-expanded or [SECRET]). 1 with both values set; 0 when the
 * config names no password; -1 when the username or the password has no value:
 * then the unavailable one says so, no value is set, and *why (caller frees)
 * names the secret or key, never a value.
 */
int config_registry_credentials(const struct config *c, struct cfg_secret *user,
				struct cfg_secret *password, char **why);

/* The x-plumb entry of accessory `name`, or NULL when x-plumb says nothing of it. */
const struct xplumb_accessory *config_xplumb_accessory(const struct config *c, const char *name);

#endif
