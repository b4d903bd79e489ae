/*
 * Docker observation: what one host runs for one service, in one round trip.
 *
 * docker_obs_script is a fixed shell script (providers/observe.sh, embedded
 * at build time: providers/observe_script.h) that a host runs as
 *     sh -c '<docker_obs_script>' plumb-observe SALT APPDIR LOCKDIR WANT...
 * Every per-run value is a positional argument, quoted by shell_quote; none
 * is ever interpolated into the script. The read-only guard allows this one
 * script, compared byte for byte (providers/quote.c). It prints, in sections
 * the parser checks (a missing "END" line = cut short):
 *
 *   PLUMB-OBS 1                       first line
 *   W <path>                          the SSH user's home directory
 *   C <json>  M <image id>  E <key>\t<hash>...  Z    per container
 *   I <json>  E <key>\t<hash>...  Z   per image the containers use (each once)
 *   S containers <status>             docker inspect's exit status (one call
 *                                     for the containers and their images)
 *   I ... Z                           images that call could not name by
 *                                     reference, inspected by id
 *   S images <status>                 that second call's status (0 if none)
 *   F <mode> <hash> <path>  L <key>\t<hash>...      per env file under
 *                                     .kamal/apps/APPDIR (the whole file's
 *                                     hash, then each KEY=value line's)
 *   T <seconds.nanoseconds>           the host's time before anything was read
 *                                     (absent when its date cannot say)
 *   U                                 nothing changed since the "t:" time given
 *                                     (then no C, I, S, R lines: see
 *                                     struct docker_obs_cache)
 *   K <base64>                        the deploy lock's details, when held
 *   R <table>                         `kamal-proxy list` (newlines as blanks;
 *                                     providers/kamal_proxy.h), run only in a
 *                                     running proxy container whose image is
 *                                     kamal-proxy's (…/kamal-proxy:<tag>)
 *   X <message>                       a failure (then no END): docker failed,
 *                                     an env file cannot be read, …
 *   END
 * (A "V <docker version>" line, printed by earlier scripts, is still read;
 * the script no longer asks: `docker version` costs a whole docker call.)
 *
 * Secrets: the JSON sections never contain an env value (they are built with
 * --format templates that leave Config.Env out); env values and env-file
 * lines are hashed on the host as sha256(SALT ‖ value) (state/hash.h). A
 * value may hold any byte but NUL: the template escapes '\' and newline so
 * each env entry is one line, and the host decodes it with printf %b before
 * hashing, so the hash is of the exact value.
 *
 * WANT words select containers: "s:<label>" = label service=<label> (the
 * service, each accessory's service), "n:<name>" = container name (the
 * proxy). Classification (docker_obs_classify) then decides what each is.
 * A "t:<time>" word asks whether anything changed since (U above).
 */
#ifndef PLUMB_DOCKER_OBS_H
#define PLUMB_DOCKER_OBS_H

#include <stddef.h>

#include "providers/observe_script.h"
#include "providers/transport.h"
#include "state/err.h"
#include "state/observed.h"

/* What to look for on a host. Strings are borrowed. */
struct docker_obs_query {
	const char *service;
	const char *destination;            /* NULL or "" = none */
	const char *const *accessories;     /* accessory container/service names ("optimus-db") */
	size_t naccessories;
	const char *const *proxies;         /* proxy container names; NULL -> {"kamal-proxy"} */
	size_t nproxies;
};

/* Builds the observation command for q with salt (32 hex). 0 or PLUMB_EINVAL. */
int docker_obs_build(struct prov_cmd *out, const char *salt, const struct docker_obs_query *q);
/* The same, with "t:<since>" among the words when since is not NULL: a host
 * time ("seconds.nanoseconds") this host printed at an earlier observation. */
int docker_obs_build_since(struct prov_cmd *out, const char *salt,
			   const struct docker_obs_query *q, const char *since);

/*
 * The last full observation of one host, kept between runs (plumb watch):
 * the next observation sends its host time back ("t:<since>"), and when the
 * host answers "U" (docker events saw nothing since that could change what
 * docker ps and inspect report) its containers, images and proxy routes are
 * taken from here, the env files and the lock from the new answer. Used only
 * while it answers the same question (salt, directories, selectors: key) and
 * is younger than DOCKER_OBS_CACHE_MAX_AGE_MS, so every host is listed and
 * inspected in full at least that often whatever docker events says.
 * Zeroed = empty; docker_obs_cache_reset empties it (and frees).
 */
#define DOCKER_OBS_CACHE_MAX_AGE_MS (300.0 * 1000.0)
struct docker_obs_cache {
	struct sbuf full; /* the raw answer of the last full observation */
	char since[40];   /* the host time of the last observation, full or not */
	char key[65];     /* sha256 of the command without its t: word */
	double at_ms;     /* when the full one was taken (prov_now_ms) */
	int valid;
};
void docker_obs_cache_reset(struct docker_obs_cache *c);

/*
 * Parses the script's stdout into h (containers, images, env files, lock,
 * docker version), classifying each container for q. Returns 0 when the
 * output is complete and well formed. Otherwise returns a negative code,
 * with why in err (may be NULL; never a secret):
 *   PLUMB_EPROTOCOL  malformed or incomplete host output
 *   PLUMB_ETOOBIG    a line, object count or map over its bound
 *   PLUMB_ERROR      the script reported a failure on the host (docker
 *                    inspect failed, the host's own message)
 *   PLUMB_EINVAL     h, q or out missing
 * and leaves h without any container, image or env file, so it cannot be
 * mistaken for an empty host; the caller sets status.
 */
int docker_obs_parse(struct obs_host *h, const char *out, size_t len,
		     const struct docker_obs_query *q, struct plumb_err *err);

/* Sets c->kind from its labels and name (see the header comment). */
void docker_obs_classify(struct obs_container *c, const struct docker_obs_query *q);

/*
 * One observation of one host on an open transport: builds the command, runs
 * it (once), parses. Sets h->status (OBS_OK or OBS_UNKNOWN), h->error,
 * h->round_trips and h->observe_ms; h->host must already be set. When
 * dump_path is non-NULL the raw bytes received are appended to that file
 * (mode 0600) under a "=== host ===" header, for debugging and for tests
 * that check no secret was received. Returns 0 when OBS_OK, else -1.
 */
int docker_obs_host(struct obs_host *h, struct transport *t, const char *salt,
		    const struct docker_obs_query *q, const char *dump_path);
/* The same with a cache (NULL = none; see struct docker_obs_cache): it sets
 * h->cached when the containers, images and routes came from it, and
 * empties it whenever an observation fails. */
int docker_obs_host_cached(struct obs_host *h, struct transport *t, const char *salt,
			   const struct docker_obs_query *q, const char *dump_path,
			   struct docker_obs_cache *cache);

#endif
