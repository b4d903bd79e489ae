/*
 * Registry client (libcurl): resolves an image reference `repo:tag` to its
 * content identity without pulling it.
 *
 * The identity of an image is its config digest: what `docker inspect` shows
 * as `.Image` of a container after a pull (classic image store). The registry
 * leads there through the manifest: GET /v2/<repo>/manifests/<tag> (Accept: OCI
 * index, Docker manifest list, Docker v2 manifest, OCI manifest); for an index
 * or list, the entry for the configured platform (linux/amd64 by default) is
 * fetched by digest; its `config.digest` is the identity.
 *
 * Auth: anonymous, Basic, and the Bearer token challenge (WWW-Authenticate
 * realm/service/scope). Credentials come from registry_client_set_credentials
 * (the config's registry secrets) or from a docker config.json (`auths.<server>.auth`;
 * credential helpers are not run). Credentials and tokens never appear in an
 * error message, and curl's verbose output is never enabled.
 *
 * Transport: HTTPS, except plain HTTP for loopback registries (`localhost`,
 * `127.0.0.1`, `[::1]`, with any port) and the hosts added as insecure (the
 * config's `x-plumb` list). Bodies read from the network are bounded
 * (manifests 4 MiB, token responses 64 KiB).
 *
 * One lookup per image per run: results (found and not found) are cached in the
 * client, keyed by the normalised reference; errors are not cached.
 *
 * Thread safety: a client may be shared between threads; registry_lookup
 * serialises on a mutex inside the client (one easy handle, reused, so
 * connections are kept alive across lookups).
 */
#ifndef PLUMB_PROVIDERS_REGISTRY_H
#define PLUMB_PROVIDERS_REGISTRY_H

#include <stddef.h>

#include "state/err.h"

/*
 * Failures are codes of the one error space (state/err.h) with the message in
 * the caller's struct plumb_err (never a credential or token):
 *   PLUMB_EINVAL      a malformed image reference or docker config, a token
 *                     realm that is not HTTPS
 *   PLUMB_EAUTH       credentials missing, unavailable or refused (401/403)
 *   PLUMB_ENETWORK    unreachable, timeout, TLS failure (curl's own words)
 *   PLUMB_ETOOBIG     a manifest or token response over its bound, a token
 *                     URL over its bound
 *   PLUMB_EPROTOCOL   a manifest or answer we do not accept, digest mismatch
 *   PLUMB_ENOTFOUND   the index has no manifest for the platform, or names
 *                     one the registry does not have
 *   PLUMB_EUNTRUSTED  a token realm host refused by restrict_token_realm
 *   PLUMB_ERROR       anything else (an unexpected HTTP status)
 */

#define REGISTRY_MANIFEST_MAX (4u << 20)
#define REGISTRY_TOKEN_MAX (64u << 10)

/*
 * A parsed image reference, as Docker parses `[registry[:port]/]repo[:tag][@digest]`.
 * All strings owned by the struct; release with registry_ref_release.
 *   domain: registry as Docker names it ("docker.io", "localhost:5555", "ghcr.io")
 *   host:   where the API lives ("registry-1.docker.io" for docker.io, else domain)
 *   path:   repository path ("library/postgres" for "postgres")
 *   tag:    NULL only when a digest is given without a tag; else "latest" by default
 *   digest: "sha256:<64 hex>" or NULL
 */
struct registry_ref {
	char *domain;
	char *host;
	char *path;
	char *tag;
	char *digest;
};

/* 0, or PLUMB_EINVAL with err saying what is wrong with the reference. */
int registry_ref_parse(struct registry_ref *out, const char *ref, struct plumb_err *err);
/* "domain/path:tag[@digest]", normalised (caller frees). */
char *registry_ref_string(const struct registry_ref *r);
void registry_ref_release(struct registry_ref *r);

/*
 * A parsed WWW-Authenticate challenge (the first one in the header).
 * scheme is "Bearer" or "Basic" (as sent); params may be NULL when absent.
 */
struct registry_challenge {
	char *scheme;
	char *realm;
	char *service;
	char *scope;
	char *error;
};
int registry_challenge_parse(struct registry_challenge *out, const char *header);
void registry_challenge_release(struct registry_challenge *ch);

/*
 * A parsed manifest body. For an index/list, `platform_digest` is the digest of
 * the entry for the requested platform and config_digest is NULL; for an image
 * manifest, config_digest is set and platform_digest is NULL.
 */
enum registry_manifest_kind { REGISTRY_MANIFEST_IMAGE, REGISTRY_MANIFEST_INDEX };
struct registry_manifest {
	enum registry_manifest_kind kind;
	char *media_type;
	char *config_digest;
	char *platform_digest;
};
/*
 * content_type: the response's Content-Type (may be NULL; then mediaType in
 * the body decides). platform: "os/arch[/variant]".
 * 0, or PLUMB_EPROTOCOL (PLUMB_ENOTFOUND: the index has no entry for the
 * platform) with err.
 */
int registry_manifest_parse(struct registry_manifest *out, const char *body, size_t len,
			    const char *content_type, const char *platform, struct plumb_err *err);
void registry_manifest_release(struct registry_manifest *m);

/*
 * Looks up the credentials for `domain` in a docker config.json text
 * (`auths.<server>.auth` = base64 "user:password"; keys may be written as
 * "host", "https://host" or "https://host/v1/"; docker.io matches the Docker
 * Hub aliases). Returns 1 and sets *user, *password (free *password with
 * util_free_secret), 0 if there are none, PLUMB_EINVAL if the JSON is malformed (with err).
 * *note (may be NULL) is set when the file names a credential helper that is
 * not run ("credsStore 'desktop' is not used; ..."); caller frees.
 */
int registry_docker_config_auth(const char *json, size_t len, const char *domain,
				char **user, char **password, char **note, struct plumb_err *err);

enum registry_status { REGISTRY_FOUND = 0, REGISTRY_NOT_FOUND = 1 };

/*
 * The result of a lookup; strings owned by the struct (registry_result_release).
 * When NOT_FOUND, only `ref` is set.
 *   digest:          the manifest digest the tag points to (Docker-Content-Digest;
 *                    an index digest for multi-platform images) — what
 *                    `docker inspect` lists in RepoDigests; pull by this.
 *   platform_digest: the platform's image manifest digest (== digest when the
 *                    tag points to an image manifest directly)
 *   config_digest:   the content identity (`.Image` after a pull)
 *   media_type:      media type of the manifest the tag points to
 *   ref:             normalised reference ("domain/path:tag")
 */
struct registry_result {
	enum registry_status status;
	char *ref;
	char *digest;
	char *platform_digest;
	char *config_digest;
	char *media_type;
};
void registry_result_release(struct registry_result *r);

struct registry_options {
	const char *platform;	   /* "os/arch[/variant]"; NULL = "linux/amd64" */
	const char *docker_config; /* NULL = $HOME/.docker/config.json; "" = none */
	const char *ca_path;	   /* CA bundle file; NULL = system default */
	long connect_timeout_ms;   /* 0 = 10 s */
	long timeout_ms;	   /* whole request; 0 = 30 s */
	/*
	 * Nonzero: credentials read from the docker config file are never sent
	 * on a plain-HTTP request (http:// URL) to a host that is not loopback
	 * (localhost, 127.0.0.0/8, [::1]) — neither as Basic to the registry nor
	 * to a Bearer token realm; the request goes out anonymously and a refusal
	 * says "no credentials sent". Credentials given with
	 * registry_client_set_credentials are not affected. For untrusted runs,
	 * where the repository chooses the image references and insecure hosts.
	 */
	int no_docker_config_over_http;
	/*
	 * Nonzero (untrusted runs, where the repository chooses the registry and
	 * so the 401 that names the token realm): the token request goes only to
	 *   - the registry's own origin (same scheme, host and port), or
	 *   - an HTTPS realm on the registry's host (any port), or on
	 *     auth.docker.io for Docker Hub, or
	 *   - a host named in allowed_realm_hosts (then the usual rule holds:
	 *     HTTPS, or plain HTTP to loopback and insecure hosts);
	 * never to a realm carrying user info, and the token request follows no
	 * redirect. Otherwise registry_lookup fails (PLUMB_EUNTRUSTED), without any request to the
	 * realm, and the message names the realm host and why.
	 */
	int restrict_token_realm;
	/*
	 * Realm hosts the invocation allows ("host" or "host:port"; a bare host
	 * allows every port), separated by commas or spaces; NULL = none. Copied.
	 * The reconciler fills it from PLUMB_REGISTRY_REALM_HOSTS.
	 */
	const char *allowed_realm_hosts;
};

struct registry_client;

/* opts may be NULL (all defaults). Never returns NULL. */
struct registry_client *registry_client_new(const struct registry_options *opts);
void registry_client_free(struct registry_client *c);

/* Allows plain HTTP to `host` ("host" or "host:port"; a bare host allows every port). */
void registry_client_add_insecure(struct registry_client *c, const char *host);

/*
 * Credentials for a registry domain ("ghcr.io", "localhost:5555"; "docker.io"
 * for Docker Hub). Copied; the client wipes its copies when freed. These win
 * over the docker config file.
 */
void registry_client_set_credentials(struct registry_client *c, const char *domain,
				     const char *user, const char *password);
/*
 * The config names credentials for `domain`, but they have no value (a secret
 * could not be resolved; `why` names it, never a value). There is no value to
 * send: a registry that asks for credentials fails the lookup with
 * PLUMB_EAUTH saying they are unavailable, nothing is sent in their place
 * and the docker config file is not consulted for that domain.
 */
void registry_client_set_credentials_unavailable(struct registry_client *c, const char *domain,
						 const char *why);

/*
 * Resolves `image_ref` (see registry_ref_parse). Returns 0 with out->status
 * FOUND or NOT_FOUND ("not in registry yet": the tag or repository does not
 * exist), or a negative PLUMB_E* code (see above) with err (may be NULL).
 * *out is filled only on 0; dispose it afterwards.
 */
int registry_lookup(struct registry_client *c, const char *image_ref,
		    struct registry_result *out, struct plumb_err *err);
/*
 * registry_lookup with the message as a string in *err (caller frees; NULL
 * on 0). A compatibility wrapper until callers (reconciler/pipeline.c) are
 * converted to registry_lookup.
 */
int registry_resolve(struct registry_client *c, const char *image_ref,
		     struct registry_result *out, char **err);

/*
 * For desired_opts.accessory_pin, with ctx a struct registry_client *:
 * resolves image_ref and gives its manifest digest (what to run by) and config
 * digest (the identity), both owned by the client until it is freed. 0, or -1
 * when it is not found or the lookup failed (the reason is not kept).
 */
int registry_pin(const char *image_ref, const char **digest, const char **identity, void *ctx);

/* Counters, for tests and metrics: manifest GETs and all HTTP requests sent. */
unsigned long registry_client_manifest_requests(const struct registry_client *c);
unsigned long registry_client_http_requests(const struct registry_client *c);

#endif
