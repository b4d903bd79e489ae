/*
 * Desired state: what every host should run, built from a loaded config, the
 * version being deployed, the app image's content identity (resolved by the
 * caller through the registry) and the run's salt — exactly as Kamal would
 * run it, so a fleet that Kamal deployed is recognised as it is.
 *
 * Per host: one container per role on that host (name
 * <service>-<role>[-<dest>]-<version>), one per accessory on that host, and
 * kamal-proxy when a role or an accessory on the host runs the proxy (Kamal's
 * proxy_hosts); the env files Kamal
 * writes (.kamal/apps/<service[-dest]>/env/roles/<role>.env and
 * .../env/accessories/<name>.env), with their content hashed line by line.
 *
 * Secrets: no secret value is kept. A secret env value is held only as
 * hash_salted(salt, <value as Kamal writes it to the env file>), the same
 * hash the observation computes on the host (docker reads env files
 * literally, so the container holds the escaped form too). A secret that
 * the config names but could not read (untrusted run, failed command) is
 * marked DES_ENV_UNAVAILABLE and has no hash: the diff says it could not
 * compare it, never that it changed or matched. A clear value that came from
 * ERB ENV or a command (cfg_env.sensitive) is held the same way: hash only
 * (DES_ENV_SENSITIVE); one an untrusted run did not compute
 * (cfg_env.unavailable) has neither value nor hash (DES_ENV_NOT_COMPUTED).
 *
 * Ownership: struct desired owns everything below it; desired_free frees it.
 * Strings are never NULL unless documented.
 */
#ifndef PLUMB_DESIRED_H
#define PLUMB_DESIRED_H

#include <stddef.h>

#include "state/config.h"
#include "state/hash.h"
#include "state/util.h"

/* The app image as the registry reported it (filled by the caller). */
enum des_image_status {
	DES_IMAGE_UNKNOWN,   /* not resolved (no registry asked): identity NULL, never compared */
	DES_IMAGE_FOUND,     /* identity is the config digest */
	DES_IMAGE_NOT_FOUND, /* tag not in the registry (yet): identity NULL */
};

struct des_image {
	const char *ref;      /* "localhost:5555/optimus:<version>"; NULL = built from the config */
	const char *identity; /* "sha256:…" when FOUND */
	enum des_image_status status;
};

enum des_env_kind {
	DES_ENV_CLEAR,       /* value known, passed with --env */
	DES_ENV_SECRET,      /* from the env file; only its hash is kept */
	DES_ENV_UNAVAILABLE, /* a secret that could not be read: nothing to compare with */
	DES_ENV_EXPANDED,    /* a clear value with ${…}, expanded by the host's shell: not comparable */
	DES_ENV_SENSITIVE,   /* a clear value from ERB ENV or a command (passed with --env): only
			      * its hash is kept, compared like a secret, never printed */
	DES_ENV_NOT_COMPUTED, /* a clear value from ERB ENV or a command that an untrusted run
			       * did not compute: no value, no hash, never compared */
};

struct des_env {
	char *key;
	char *value;   /* DES_ENV_CLEAR / EXPANDED only; NULL otherwise (and for a
			* sensitive value with ${…}) */
	enum des_env_kind kind;
	char hash[HASH_HEX_LEN + 1]; /* salted hash of the value as the container holds it ("" if none) */
	char *secret;  /* DES_ENV_SECRET / UNAVAILABLE: the secret's name, else NULL */
};

/* A volume as `docker run --volume` is given it. */
enum des_mount_kind {
	DES_MOUNT_VOLUME,  /* named volume */
	DES_MOUNT_BIND,    /* absolute host path */
	DES_MOUNT_HOME,    /* host path relative to the SSH user's home ($PWD on the host) */
};
struct des_mount {
	enum des_mount_kind kind;
	char *source;      /* volume name, absolute path, or home-relative path */
	char *destination;
	char *mode;        /* "" or "ro", "z", … */
	int rw;
	int versioned;     /* the source contains the version (the asset volume) */
};

struct des_port {
	char *container_port; /* "5432/tcp" */
	char *host_ip;        /* "" = all addresses */
	char *host_port;
};

/* A file Kamal writes under ~/.kamal/apps/ before booting. */
struct des_env_file {
	char *path;        /* relative to home */
	struct des_env *vars; /* the secret lines, in file order (hash of the value as written) */
	size_t nvars;
	char content_hash[HASH_HEX_LEN + 1]; /* "" when a line is unavailable */
	int unavailable;   /* some secret could not be read */
};

enum des_kind { DES_APP, DES_ACCESSORY, DES_PROXY };

struct des_container {
	enum des_kind kind;
	char *name;        /* full container name */
	char *prefix;      /* app: "<service>-<role>[-<dest>]" (kamal-proxy's service); else = name */
	char *role;        /* role or accessory name; "kamal-proxy" for the proxy */
	char *image_ref;   /* what docker run is given */
	char *image_id;    /* content identity to compare, NULL = compare by reference */
	enum des_image_status image_status;
	char *cmd;         /* as written in the config, NULL = the image's default */
	struct strvec cmd_argv; /* cmd split as the host's shell splits it */
	struct des_env *env;    /* KAMAL_HOST (+ KAMAL_DESTINATION), clear env, secrets */
	size_t nenv;
	struct kvs labels;
	struct des_mount *mounts;
	size_t nmounts;
	struct des_port *ports;
	size_t nports;
	struct kvs options;     /* docker run options other than restart/network/log */
	char *restart;          /* "unless-stopped" unless options.restart */
	char *log_driver;       /* NULL = the daemon's default */
	struct kvs log_opts;
	char *network;          /* "kamal" unless the accessory says otherwise */
	char *env_file;         /* path of its env file (home-relative), NULL for the proxy */
	int proxied;            /* app role behind the proxy: a new container takes traffic by a switch */
	int primary;            /* the primary role */
	int proxy_managed;      /* kamal-proxy with proxy.run in the config: its spec is the
				 * config's, compared and replaced when it drifted; without
				 * proxy.run its options live on the host (Kamal's boot_config)
				 * and only its presence is planned */
	char spec_hash[HASH_HEX_LEN + 1]; /* sha256 over the spec without secret hashes (plan hash input) */
};

struct des_host {
	char *host;
	struct des_container *containers; /* accessories, then roles in config order, then the proxy */
	size_t ncontainers;
	struct des_env_file *env_files;
	size_t nenv_files;
};

struct desired {
	char *service;
	char *destination;  /* NULL = none */
	char *version;
	char *primary_role;
	int retain_containers;
	int boot_limit;      /* hosts per boot group; 0 = all at once */
	struct strvec primary_hosts; /* the primary role's hosts in config order */
	/* every role's hosts as Kamal boots them (KAMAL.app_hosts): config order,
	 * each once, the primary role's hosts first; boot groups are slices of
	 * boot_limit of it */
	struct strvec app_hosts;
	struct des_host *hosts; /* the config's hosts, in config_all_hosts order */
	size_t nhosts;
	int unavailable_secrets; /* count of secrets that could not be read */
	struct strvec accessories; /* every accessory's container name in the config,
				    * on whichever hosts (what makes an accessory ours) */
};

struct desired_opts {
	const char *version;         /* required */
	struct des_image app_image;  /* the app image; status DES_IMAGE_UNKNOWN if not resolved */
	const char *salt;            /* the run's salt (the observation's) */
	/*
	 * Optional: resolves the image of an accessory pinned by digest (x-plumb
	 * accessories.<name>.pin_digest), given its reference as configured.
	 * Returns 0 with *digest (the manifest digest the tag points to,
	 * "sha256:<64 hex>") and *identity (the image's config digest, or NULL),
	 * both owned by ctx; -1 when it could not be resolved. A pinned accessory
	 * then runs `image@digest` (any digest in the config replaced) and is
	 * compared by identity; unresolved (or no hook), it keeps its reference
	 * and DES_IMAGE_UNKNOWN. Accessories not pinned are never passed.
	 */
	int (*accessory_pin)(const char *image_ref, const char **digest, const char **identity, void *ctx);
	void *accessory_ctx;
};

/* Builds the desired state. 0, or -1 with a message in d (never a secret):
 * also for a volume or port spec it would otherwise misread (each named). */
int desired_build(struct desired **out, const struct config *c, const struct desired_opts *o,
		  struct diags *d);
void desired_free(struct desired *ds);

const struct des_host *desired_host(const struct desired *ds, const char *host);
const struct des_env *des_container_env(const struct des_container *c, const char *key);

/*
 * The content of an env file exactly as Kamal writes it: "KEY=value\n" per
 * variable, values escaped like a Ruby String#dump without the quotes, with
 * '"' and '#' literal and non-ASCII bytes kept; an empty file is "\n".
 * desired_env_escape escapes one value (caller frees).
 */
char *desired_env_escape(const char *value);

/*
 * A clear env value as the container holds it after Kamal passed it with
 * `--env KEY=<escape_shell_value>` through the host's shell: String#dump
 * escapes (\n, \t, \e, \xNN, \# before { $ @) stay literal, while \" \\
 * \$ \` are undone by the shell; non-ASCII bytes are kept. (Values with
 * ${…} are expanded by the shell instead: DES_ENV_EXPANDED.) Caller frees.
 */
char *desired_env_held(const char *value);

/*
 * The proxy.run settings kamal-proxy boots with on host (flattened as in
 * struct cfg_proxy.run), as Kamal's Configuration#proxy_run picks them: the
 * first role on the host that runs the proxy (role order), then accessories
 * with a proxy, whose proxy has a non-empty run section; NULL when none has
 * one (Kamal then boots it from the host's boot_config files, whose defaults
 * plumb uses). Borrowed from c.
 */
const struct kvs *desired_proxy_run(const struct config *c, const char *host);

/* Splits a cmd as a POSIX shell splits an unquoted word list ('…', "…", \). */
void desired_split_words(const char *s, struct strvec *out);

/* "3g" → 3221225472, "512m", "1024" (bytes); -1 if not a size or out of range. */
long long desired_parse_size(const char *s);

#endif
