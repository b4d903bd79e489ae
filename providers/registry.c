/*
 * Registry client: tag -> manifest digest -> config digest, over the
 * distribution v2 API with libcurl. See providers/registry.h for the contract.
 */
#include "providers/registry.h"

#include "state/hash.h"
#include "state/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>


#define DEFAULT_PLATFORM "linux/amd64"
#define DOCKER_CONFIG_MAX (1u << 20)
#define HEADER_VALUE_MAX 8192
#define ERR_BODY_MAX 300

static const char *const manifest_accept =
	"Accept: application/vnd.oci.image.index.v1+json, "
	"application/vnd.docker.distribution.manifest.list.v2+json, "
	"application/vnd.docker.distribution.manifest.v2+json, "
	"application/vnd.oci.image.manifest.v1+json";

/* ------------------------------------------------------------------ */
/* Small validators                                                    */

static int is_lower_alnum(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static int is_hex_lower(int ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

/* "sha256:" + 64 lowercase hex digits. */
static int valid_digest(const char *s)
{
	size_t i;

	if (!s || strncmp(s, "sha256:", 7) != 0)
		return 0;
	for (i = 0; i < 64; i++)
		if (!is_hex_lower((unsigned char)s[7 + i]))
			return 0;
	return s[7 + 64] == '\0';
}

/* [\w][\w.-]{0,127} */
static int valid_tag(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 128)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (isalnum(ch) || ch == '_')
			continue;
		if (i > 0 && (ch == '.' || ch == '-'))
			continue;
		return 0;
	}
	return 1;
}

/* path-component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)* */
static int valid_path_component(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_lower_alnum((unsigned char)s[0]) ||
	    !is_lower_alnum((unsigned char)s[n - 1]))
		return 0;
	while (i < n) {
		if (is_lower_alnum((unsigned char)s[i])) {
			i++;
			continue;
		}
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
		} else if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else {
			return 0;
		}
		if (i >= n || !is_lower_alnum((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

static int valid_path(const char *s)
{
	const char *p = s;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (!valid_path_component(p, n))
			return 0;
		if (!slash)
			return 1;
		p = slash + 1;
	}
}

/* host[:port] with DNS-style labels or a bracketed IPv6 address. */
static int valid_domain(const char *s)
{
	const char *port = NULL;
	size_t i, n;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end == s + 1)
			return 0;
		for (const char *q = s + 1; q < end; q++)
			if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
				return 0;
		if (end[1] == '\0')
			return 1;
		if (end[1] != ':')
			return 0;
		port = end + 2;
		n = 0;
	} else {
		const char *colon = strchr(s, ':');
		n = colon ? (size_t)(colon - s) : strlen(s);
		if (colon)
			port = colon + 1;
		if (n == 0)
			return 0;
		for (i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)s[i];
			if (isalnum(ch))
				continue;
			if (ch == '-' && i > 0 && i + 1 < n && s[i - 1] != '.' && s[i + 1] != '.')
				continue;
			if (ch == '.' && i > 0 && i + 1 < n && s[i + 1] != '.')
				continue;
			return 0;
		}
	}
	if (port) {
		size_t pn = strlen(port);
		if (pn == 0 || pn > 5 || strspn(port, "0123456789") != pn)
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* References                                                          */

void registry_ref_release(struct registry_ref *r)
{
	if (!r)
		return;
	free(r->domain);
	free(r->host);
	free(r->path);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

char *registry_ref_string(const struct registry_ref *r)
{
	return xasprintf("%s/%s%s%s%s%s", r->domain, r->path, r->tag ? ":" : "",
			 r->tag ? r->tag : "", r->digest ? "@" : "",
			 r->digest ? r->digest : "");
}

int registry_ref_parse(struct registry_ref *out, const char *ref, struct plumb_err *err)
{
	struct registry_ref r = { 0 };
	char *name = NULL, *at, *colon, *slash;
	int rc = PLUMB_EINVAL;

	if (!ref || !*ref) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "empty image reference");
		goto out;
	}
	if (strlen(ref) > 512) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "image reference is longer than 512 characters");
		goto out;
	}
	name = xstrdup(ref);
	at = strchr(name, '@');
	if (at) {
		*at = '\0';
		if (!valid_digest(at + 1)) {
			rc = plumb_err_set(err, PLUMB_EINVAL, "image reference '%s': digest must be sha256:<64 lowercase hex digits>", ref);
			goto out;
		}
		r.digest = xstrdup(at + 1);
	}
	slash = strrchr(name, '/');
	colon = strrchr(name, ':');
	if (colon && (!slash || colon > slash)) {
		*colon = '\0';
		if (!valid_tag(colon + 1, strlen(colon + 1))) {
			rc = plumb_err_set(err, PLUMB_EINVAL, "image reference '%s': invalid tag '%s'", ref, colon + 1);
			goto out;
		}
		r.tag = xstrdup(colon + 1);
	} else if (!r.digest) {
		r.tag = xstrdup("latest");
	}

	slash = strchr(name, '/');
	if (slash) {
		size_t n = (size_t)(slash - name);
		int is_domain = memchr(name, '.', n) || memchr(name, ':', n) ||
				(n == 9 && strncmp(name, "localhost", 9) == 0) || name[0] == '[';
		for (size_t i = 0; i < n && !is_domain; i++)
			if (isupper((unsigned char)name[i]))
				is_domain = 1;
		if (is_domain) {
			r.domain = xstrndup(name, n);
			r.path = xstrdup(slash + 1);
		}
	}
	if (!r.domain) {
		r.domain = xstrdup("docker.io");
		r.path = xstrdup(name);
	}
	if (strcmp(r.domain, "index.docker.io") == 0) {
		free(r.domain);
		r.domain = xstrdup("docker.io");
	}
	if (!valid_domain(r.domain)) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "image reference '%s': invalid registry '%s'", ref, r.domain);
		goto out;
	}
	if (strcmp(r.domain, "docker.io") == 0 && !strchr(r.path, '/')) {
		char *p = xasprintf("library/%s", r.path);
		free(r.path);
		r.path = p;
	}
	if (!valid_path(r.path)) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "image reference '%s': invalid repository name '%s' "
				   "(lowercase letters, digits and . _ - separators, '/' between components)",
				   ref, r.path);
		goto out;
	}
	if (strlen(r.domain) + 1 + strlen(r.path) > 255) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "image reference '%s': repository name is longer than 255 characters", ref);
		goto out;
	}
	r.host = xstrdup(strcmp(r.domain, "docker.io") == 0 ? "registry-1.docker.io" : r.domain);
	*out = r;
	memset(&r, 0, sizeof(r));
	rc = 0;
out:
	registry_ref_release(&r);
	free(name);
	return rc;
}

/* ------------------------------------------------------------------ */
/* WWW-Authenticate                                                    */

void registry_challenge_release(struct registry_challenge *ch)
{
	if (!ch)
		return;
	free(ch->scheme);
	free(ch->realm);
	free(ch->service);
	free(ch->scope);
	free(ch->error);
	memset(ch, 0, sizeof(*ch));
}

static int is_token_char(int ch)
{
	return ch > 32 && ch < 127 && !strchr("()<>@,;:\\\"/[]?={}", ch);
}

/*
 * auth-scheme 1*SP auth-param *( OWS "," OWS auth-param ), auth-param =
 * token "=" ( token / quoted-string ). Parsing stops at the next challenge
 * (a token not followed by "=").
 */
int registry_challenge_parse(struct registry_challenge *out, const char *header)
{
	const char *p = header;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!header)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	for (n = 0; is_token_char((unsigned char)p[n]); n++)
		;
	if (n == 0)
		return -1;
	out->scheme = xstrndup(p, n);
	p += n;
	for (;;) {
		const char *key;
		size_t klen;
		struct sbuf val;
		char **slot = NULL;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		key = p;
		for (klen = 0; is_token_char((unsigned char)p[klen]); klen++)
			;
		if (klen == 0)
			break;
		p += klen;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			break; /* next challenge */
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		sbuf_init(&val, HEADER_VALUE_MAX);
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				if (sbuf_addc(&val, *p) < 0)
					break;
				p++;
			}
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ',' && *p != ' ' && *p != '\t') {
				if (sbuf_addc(&val, *p) < 0)
					break;
				p++;
			}
		}
		if (klen == 5 && strncasecmp(key, "realm", 5) == 0)
			slot = &out->realm;
		else if (klen == 7 && strncasecmp(key, "service", 7) == 0)
			slot = &out->service;
		else if (klen == 5 && strncasecmp(key, "scope", 5) == 0)
			slot = &out->scope;
		else if (klen == 5 && strncasecmp(key, "error", 5) == 0)
			slot = &out->error;
		if (slot && !*slot)
			*slot = sbuf_detach(&val);
		sbuf_release(&val);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Manifests                                                           */

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_V2 "application/vnd.docker.distribution.manifest.v2+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"

void registry_manifest_release(struct registry_manifest *m)
{
	if (!m)
		return;
	free(m->media_type);
	free(m->config_digest);
	free(m->platform_digest);
	memset(m, 0, sizeof(*m));
}

static const char *json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Splits "os/arch[/variant]" into three strings (variant may be empty). */
static void split_platform(const char *platform, char *os, char *arch, char *variant, size_t cap)
{
	const char *a, *v;

	os[0] = arch[0] = variant[0] = '\0';
	a = strchr(platform, '/');
	if (!a) {
		snprintf(os, cap, "%s", platform);
		return;
	}
	snprintf(os, cap, "%.*s", (int)(a - platform), platform);
	a++;
	v = strchr(a, '/');
	if (!v) {
		snprintf(arch, cap, "%s", a);
		return;
	}
	snprintf(arch, cap, "%.*s", (int)(v - a), a);
	snprintf(variant, cap, "%s", v + 1);
}

static int pick_platform(json_t *manifests, const char *platform, struct registry_manifest *m,
			 struct plumb_err *err)
{
	char os[64], arch[64], variant[64];
	struct sbuf seen;
	size_t i;
	json_t *e;
	const char *best = NULL;
	int best_exact = 0;

	split_platform(platform, os, arch, variant, sizeof(os));
	sbuf_init(&seen, 1024);
	json_array_foreach(manifests, i, e) {
		json_t *pl = json_object_get(e, "platform");
		const char *d = json_str(e, "digest");
		const char *eos = json_str(pl, "os"), *earch = json_str(pl, "architecture");
		const char *evar = json_str(pl, "variant");
		int exact;

		if (!eos || !earch || !d)
			continue;
		if (strcmp(eos, "unknown") != 0)
			sbuf_addf(&seen, "%s%s/%s%s%s", seen.len ? ", " : "", eos, earch,
				  evar ? "/" : "", evar ? evar : "");
		if (strcmp(eos, os) != 0 || strcmp(earch, arch) != 0)
			continue;
		if (variant[0]) {
			/* arm64 without a variant means v8 */
			const char *ev = evar ? evar : (strcmp(earch, "arm64") == 0 ? "v8" : "");
			if (strcmp(ev, variant) != 0)
				continue;
			exact = 1;
		} else {
			exact = !evar || (strcmp(earch, "arm64") == 0 && strcmp(evar, "v8") == 0);
		}
		if (!best || (exact && !best_exact)) {
			best = d;
			best_exact = exact;
		}
	}
	if (!best) {
		int rc = plumb_err_set(err, PLUMB_ENOTFOUND,
				       "the image index has no manifest for platform %s (it has: %s)",
				       platform, seen.len ? seen.buf : "none");
		sbuf_release(&seen);
		return rc;
	}
	sbuf_release(&seen);
	if (!valid_digest(best)) {
		return plumb_err_set(err, PLUMB_EPROTOCOL, "the image index lists an unsupported digest for %s",
				     platform);
	}
	m->platform_digest = xstrdup(best);
	return 0;
}

int registry_manifest_parse(struct registry_manifest *out, const char *body, size_t len,
			    const char *content_type, const char *platform, struct plumb_err *err)
{
	struct registry_manifest m = { 0 };
	json_t *root = NULL, *manifests;
	json_error_t jerr;
	const char *mt = NULL, *body_mt;
	char ct[128] = "";
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!platform)
		platform = DEFAULT_PLATFORM;
	if (content_type) {
		size_t n = strcspn(content_type, "; \t");
		if (n < sizeof(ct))
			snprintf(ct, sizeof(ct), "%.*s", (int)n, content_type);
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		rc = plumb_err_set(err, PLUMB_EPROTOCOL, "manifest is not a JSON object (%s at line %d)",
				   root ? "not an object" : jerr.text, jerr.line);
		goto out;
	}
	body_mt = json_str(root, "mediaType");
	if (!strcmp(ct, MT_OCI_INDEX) || !strcmp(ct, MT_DOCKER_LIST) ||
	    !strcmp(ct, MT_DOCKER_V2) || !strcmp(ct, MT_OCI_MANIFEST))
		mt = ct;
	else if (body_mt)
		mt = body_mt;
	else if (json_is_array(json_object_get(root, "manifests")))
		mt = MT_OCI_INDEX;
	else if (json_is_object(json_object_get(root, "config")))
		mt = MT_OCI_MANIFEST;
	else {
		rc = plumb_err_set(err, PLUMB_EPROTOCOL, "manifest has no media type (Content-Type '%s')", ct);
		goto out;
	}
	m.media_type = xstrdup(mt);
	if (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST)) {
		m.kind = REGISTRY_MANIFEST_INDEX;
		manifests = json_object_get(root, "manifests");
		if (!json_is_array(manifests)) {
			rc = plumb_err_set(err, PLUMB_EPROTOCOL, "image index has no 'manifests' list");
			goto out;
		}
		rc = pick_platform(manifests, platform, &m, err);
		if (rc < 0)
			goto out;
	} else if (!strcmp(mt, MT_DOCKER_V2) || !strcmp(mt, MT_OCI_MANIFEST)) {
		const char *cd = json_str(json_object_get(root, "config"), "digest");
		m.kind = REGISTRY_MANIFEST_IMAGE;
		if (!cd) {
			rc = plumb_err_set(err, PLUMB_EPROTOCOL, "image manifest has no config.digest");
			goto out;
		}
		if (!valid_digest(cd)) {
			rc = plumb_err_set(err, PLUMB_EPROTOCOL, "image manifest's config.digest is not a sha256 digest");
			goto out;
		}
		m.config_digest = xstrdup(cd);
	} else {
		rc = plumb_err_set(err, PLUMB_EPROTOCOL, "unsupported manifest media type '%.100s' "
				   "(schema 1 manifests are not supported; push with a current docker)", mt);
		goto out;
	}
	*out = m;
	memset(&m, 0, sizeof(m));
	rc = 0;
out:
	registry_manifest_release(&m);
	json_decref(root);
	return rc;
}

/* ------------------------------------------------------------------ */
/* docker config.json                                                  */

/* "https://host:port/v1/" -> does it name `domain`? */
static int auth_key_matches(const char *key, const char *domain)
{
	static const char *const hub[] = { "docker.io", "index.docker.io", "registry-1.docker.io" };
	const char *k = key;
	size_t n;

	if (!strncmp(k, "https://", 8))
		k += 8;
	else if (!strncmp(k, "http://", 7))
		k += 7;
	n = strcspn(k, "/");
	if (strlen(domain) == n && strncmp(k, domain, n) == 0)
		return 1;
	if (strcmp(domain, "docker.io") == 0)
		for (size_t i = 0; i < ARRAY_SIZE(hub); i++)
			if (strlen(hub[i]) == n && strncmp(k, hub[i], n) == 0)
				return 1;
	return 0;
}

int registry_docker_config_auth(const char *json, size_t len, const char *domain,
				char **user, char **password, char **note, struct plumb_err *err)
{
	json_t *root = NULL, *auths, *helpers, *v;
	json_error_t jerr;
	const char *key, *store;
	int rc = 0, had_identity = 0;

	*user = *password = NULL;
	if (note)
		*note = NULL;
	root = json_loadb(json, len, 0, &jerr);
	if (!json_is_object(root)) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "docker config: not a JSON object (line %d: %s)", jerr.line,
				   root ? "not an object" : jerr.text);
		goto out;
	}
	auths = json_object_get(root, "auths");
	json_object_foreach(auths, key, v) {
		const char *a = json_str(v, "auth");
		if (!auth_key_matches(key, domain))
			continue;
		if (a && *a) {
			size_t dlen;
			unsigned char *raw = NULL;
			char *dec, *colon;
			util_base64_decode(a, strlen(a), UTIL_BASE64_URLSAFE, &raw, &dlen);
			dec = (char *)raw;
			if (!dec || strlen(dec) != dlen || !(colon = strchr(dec, ':'))) {
				if (dec)
					explicit_bzero(dec, dlen);
				free(dec);
				rc = plumb_err_set(err, PLUMB_EINVAL, "docker config: auths.%s.auth is not base64 of user:password", key);
				goto out;
			}
			*colon = '\0';
			*user = xstrdup(dec);
			*password = xstrdup(colon + 1);
			util_free_secret(dec);
			rc = 1;
			goto out;
		}
		if (json_str(v, "username") && json_str(v, "password")) {
			*user = xstrdup(json_str(v, "username"));
			*password = xstrdup(json_str(v, "password"));
			rc = 1;
			goto out;
		}
		if (json_str(v, "identitytoken"))
			had_identity = 1;
	}
	if (!note)
		goto out;
	helpers = json_object_get(root, "credHelpers");
	json_object_foreach(helpers, key, v) {
		if (auth_key_matches(key, domain) && json_is_string(v)) {
			*note = xasprintf("docker config names credential helper '%s' for %s; "
					  "plumb does not run credential helpers (set the registry password in the config's secrets)",
					  json_string_value(v), domain);
			goto out;
		}
	}
	store = json_str(root, "credsStore");
	if (store)
		*note = xasprintf("docker config uses credsStore '%s'; plumb does not run credential "
				  "helpers (set the registry password in the config's secrets)", store);
	else if (had_identity)
		*note = xasprintf("docker config holds only an identity token for %s, which plumb does not use",
				  domain);
out:
	json_decref(root);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The client                                                          */

struct cred {
	char *domain;
	char *user;     /* NULL when unavailable */
	char *password; /* secret; NULL when unavailable */
	char *unavailable; /* why the configured credentials have no value, or NULL */
};

struct token {
	char *key; /* "host repository:path:pull" */
	char *value; /* secret */
	time_t expires;
};

struct cache_entry {
	char *key;
	struct registry_result res;
};

enum host_auth { HOST_AUTH_UNKNOWN, HOST_AUTH_NONE, HOST_AUTH_BASIC, HOST_AUTH_BEARER };

struct host_state {
	char *host;
	enum host_auth auth;
};

struct registry_client {
	pthread_mutex_t lock;
	CURL *curl;
	char *platform;
	char *docker_config;
	char *ca_path;
	long connect_timeout_ms, timeout_ms;
	struct strvec insecure;
	struct cred *creds;
	size_t ncreds;
	struct token *tokens;
	size_t ntokens;
	struct cache_entry *cache;
	size_t ncache;
	struct host_state *hosts;
	size_t nhosts;
	int docker_config_loaded;
	int no_docker_config_over_http;
	int restrict_token_realm;
	struct strvec realm_hosts; /* allowed_realm_hosts, split */
	char *docker_config_text; /* holds secrets */
	size_t docker_config_len;
	unsigned long manifest_requests, http_requests;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct registry_client *registry_client_new(const struct registry_options *opts)
{
	struct registry_client *c = xcalloc(1, sizeof(*c));
	struct registry_options def = { 0 };

	pthread_once(&curl_once, curl_init_once);
	if (!opts)
		opts = &def;
	pthread_mutex_init(&c->lock, NULL);
	c->curl = curl_easy_init();
	if (!c->curl) {
		fputs("plumb: curl_easy_init failed\n", stderr);
		abort();
	}
	c->platform = xstrdup(opts->platform ? opts->platform : DEFAULT_PLATFORM);
	c->docker_config = opts->docker_config ? xstrdup(opts->docker_config) : NULL;
	c->no_docker_config_over_http = opts->no_docker_config_over_http;
	c->restrict_token_realm = opts->restrict_token_realm;
	for (const char *p = opts->allowed_realm_hosts; p && *p;) {
		size_t n;
		p += strspn(p, ", \t\n");
		n = strcspn(p, ", \t\n");
		if (n)
			strvec_push_take(&c->realm_hosts, xstrndup(p, n));
		p += n;
	}
	c->ca_path = opts->ca_path ? xstrdup(opts->ca_path) : NULL;
	c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	return c;
}

void registry_result_release(struct registry_result *r)
{
	if (!r)
		return;
	free(r->ref);
	free(r->digest);
	free(r->platform_digest);
	free(r->config_digest);
	free(r->media_type);
	memset(r, 0, sizeof(*r));
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void result_copy(struct registry_result *dst, const struct registry_result *src)
{
	dst->status = src->status;
	dst->ref = dup_or_null(src->ref);
	dst->digest = dup_or_null(src->digest);
	dst->platform_digest = dup_or_null(src->platform_digest);
	dst->config_digest = dup_or_null(src->config_digest);
	dst->media_type = dup_or_null(src->media_type);
}

void registry_client_free(struct registry_client *c)
{
	size_t i;

	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c->platform);
	free(c->docker_config);
	free(c->ca_path);
	strvec_release(&c->insecure);
	strvec_release(&c->realm_hosts);
	for (i = 0; i < c->ncreds; i++) {
		free(c->creds[i].domain);
		free(c->creds[i].user);
		util_free_secret(c->creds[i].password);
		free(c->creds[i].unavailable);
	}
	free(c->creds);
	for (i = 0; i < c->ntokens; i++) {
		free(c->tokens[i].key);
		util_free_secret(c->tokens[i].value);
	}
	free(c->tokens);
	for (i = 0; i < c->ncache; i++) {
		free(c->cache[i].key);
		registry_result_release(&c->cache[i].res);
	}
	free(c->cache);
	for (i = 0; i < c->nhosts; i++)
		free(c->hosts[i].host);
	free(c->hosts);
	util_free_secret(c->docker_config_text);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void registry_client_add_insecure(struct registry_client *c, const char *host)
{
	pthread_mutex_lock(&c->lock);
	if (!strvec_contains(&c->insecure, host))
		strvec_push(&c->insecure, host);
	pthread_mutex_unlock(&c->lock);
}

/* The entry for `domain`, emptied (the caller fills it); under c->lock. */
static struct cred *cred_slot(struct registry_client *c, const char *domain)
{
	struct cred *cr = NULL;

	for (size_t i = 0; i < c->ncreds; i++)
		if (strcmp(c->creds[i].domain, domain) == 0)
			cr = &c->creds[i];
	if (!cr) {
		c->creds = xrealloc(c->creds, (c->ncreds + 1) * sizeof(*c->creds));
		cr = &c->creds[c->ncreds++];
		cr->domain = xstrdup(domain);
	} else {
		free(cr->user);
		util_free_secret(cr->password);
		free(cr->unavailable);
	}
	cr->user = cr->password = cr->unavailable = NULL;
	return cr;
}

void registry_client_set_credentials(struct registry_client *c, const char *domain,
				     const char *user, const char *password)
{
	struct cred *cr;

	pthread_mutex_lock(&c->lock);
	cr = cred_slot(c, domain);
	cr->user = xstrdup(user);
	cr->password = xstrdup(password);
	pthread_mutex_unlock(&c->lock);
}

void registry_client_set_credentials_unavailable(struct registry_client *c, const char *domain,
						 const char *why)
{
	struct cred *cr;

	pthread_mutex_lock(&c->lock);
	cr = cred_slot(c, domain);
	cr->unavailable = xstrdup(why && *why ? why : "a secret could not be resolved");
	pthread_mutex_unlock(&c->lock);
}

unsigned long registry_client_manifest_requests(const struct registry_client *c)
{
	return c->manifest_requests;
}

unsigned long registry_client_http_requests(const struct registry_client *c)
{
	return c->http_requests;
}

/* The host part of "host[:port]" / "[v6]:port", into buf. */
static void host_only(const char *hostport, char *buf, size_t cap)
{
	if (hostport[0] == '[') {
		const char *end = strchr(hostport, ']');
		size_t n = end ? (size_t)(end - hostport + 1) : strlen(hostport);
		snprintf(buf, cap, "%.*s", (int)n, hostport);
		return;
	}
	snprintf(buf, cap, "%.*s", (int)strcspn(hostport, ":"), hostport);
}

static int plain_http_allowed(struct registry_client *c, const char *hostport)
{
	char h[300];

	host_only(hostport, h, sizeof(h));
	if (!strcmp(h, "localhost") || !strcmp(h, "127.0.0.1") || !strcmp(h, "[::1]"))
		return 1;
	for (size_t i = 0; i < c->insecure.n; i++)
		if (!strcmp(c->insecure.v[i], hostport) || !strcmp(c->insecure.v[i], h))
			return 1;
	return 0;
}

/*
 * Does "host[:port]" / "[v6]:port" name this machine: localhost, 127.0.0.0/8
 * or ::1? (Plain HTTP to it never leaves the machine.)
 */
static int host_is_loopback(const char *hostport)
{
	char h[300];
	struct in_addr a4;
	struct in6_addr a6;
	size_t n;

	host_only(hostport, h, sizeof(h));
	if (!strcasecmp(h, "localhost"))
		return 1;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	n = strlen(h);
	if (n > 2 && h[0] == '[' && h[n - 1] == ']') {
		h[n - 1] = '\0';
		return inet_pton(AF_INET6, h + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return 0;
}

static struct host_state *host_state(struct registry_client *c, const char *host)
{
	for (size_t i = 0; i < c->nhosts; i++)
		if (!strcmp(c->hosts[i].host, host))
			return &c->hosts[i];
	c->hosts = xrealloc(c->hosts, (c->nhosts + 1) * sizeof(*c->hosts));
	c->hosts[c->nhosts].host = xstrdup(host);
	c->hosts[c->nhosts].auth = HOST_AUTH_UNKNOWN;
	return &c->hosts[c->nhosts++];
}

static struct token *token_find(struct registry_client *c, const char *key)
{
	for (size_t i = 0; i < c->ntokens; i++)
		if (!strcmp(c->tokens[i].key, key))
			return &c->tokens[i];
	return NULL;
}

static void token_store(struct registry_client *c, const char *key, char *value, time_t expires)
{
	struct token *t = token_find(c, key);

	if (!t) {
		c->tokens = xrealloc(c->tokens, (c->ntokens + 1) * sizeof(*c->tokens));
		t = &c->tokens[c->ntokens++];
		t->key = xstrdup(key);
	} else {
		util_free_secret(t->value);
	}
	t->value = value;
	t->expires = expires;
}

/*
 * Credentials for a domain: explicit ones first, then the docker config (read
 * once per client). Returns 1 with copies in *user and *password (the caller
 * frees *password with util_free_secret), 0 if there are none, -1 when the
 * configured ones are unavailable (*note says why; nothing else is tried).
 * *note (caller frees) may explain why there are none (a credential helper, a
 * malformed file).
 */
static int creds_for(struct registry_client *c, const char *domain, char **user,
		     char **password, char **note, int *from_file)
{
	const char *path;
	char *home_path = NULL;
	struct plumb_err err = { 0 };
	int rc;

	*note = NULL;
	*from_file = 0;
	for (size_t i = 0; i < c->ncreds; i++) {
		if (auth_key_matches(c->creds[i].domain, domain)) {
			if (c->creds[i].unavailable) {
				*note = xasprintf("the credentials configured for %s are unavailable (%s); none sent",
						  domain, c->creds[i].unavailable);
				return -1;
			}
			*user = xstrdup(c->creds[i].user);
			*password = xstrdup(c->creds[i].password);
			return 1;
		}
	}
	if (!c->docker_config_loaded) {
		c->docker_config_loaded = 1;
		path = c->docker_config;
		if (!path && getenv("HOME"))
			path = home_path = xasprintf("%s/.docker/config.json", getenv("HOME"));
		if (path && *path &&
		    util_read_file(path, DOCKER_CONFIG_MAX, &c->docker_config_text, &c->docker_config_len) < 0)
			c->docker_config_text = NULL;
		free(home_path);
	}
	if (!c->docker_config_text)
		return 0;
	rc = registry_docker_config_auth(c->docker_config_text, c->docker_config_len, domain,
					 user, password, note, &err);
	if (rc < 0) {
		free(*note);
		*note = xstrdup(plumb_err_msg(&err)); /* names the key, never the value */
		return 0;
	}
	*from_file = rc == 1;
	return rc;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

struct http_resp {
	long status;
	struct sbuf body;
	int too_large;
	char *content_type;
	char *digest;
	char *www_auth;
};

static void http_resp_release(struct http_resp *r)
{
	sbuf_release(&r->body);
	free(r->content_type);
	free(r->digest);
	free(r->www_auth);
	memset(r, 0, sizeof(*r));
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct http_resp *r = ud;
	size_t n = size * nmemb;

	if (sbuf_add(&r->body, data, n) < 0) {
		r->too_large = 1;
		return 0;
	}
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct http_resp *r = ud;
	size_t n = size * nmemb, klen, vlen;
	const char *colon, *v;
	char **slot = NULL;

	if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
		/* a new response (after a redirect): forget the previous headers */
		free(r->content_type);
		free(r->digest);
		free(r->www_auth);
		r->content_type = r->digest = r->www_auth = NULL;
		return n;
	}
	colon = memchr(data, ':', n);
	if (!colon)
		return n;
	klen = (size_t)(colon - data);
	v = colon + 1;
	vlen = n - klen - 1;
	while (vlen && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	if (vlen > HEADER_VALUE_MAX)
		return n;
	if (klen == 12 && !strncasecmp(data, "content-type", 12))
		slot = &r->content_type;
	else if (klen == 21 && !strncasecmp(data, "docker-content-digest", 21))
		slot = &r->digest;
	else if (klen == 16 && !strncasecmp(data, "www-authenticate", 16))
		slot = &r->www_auth;
	if (slot && !*slot)
		*slot = xstrndup(v, vlen);
	return n;
}

enum auth_kind { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };
struct auth {
	enum auth_kind kind;
	const char *user;
	const char *secret; /* password or token */
	int no_redirect;    /* the request follows no Location */
};

static int is_network_error(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

/*
 * One GET. 0 with resp filled (any HTTP status), or a negative code with *err.
 * `what` names the request in messages (never the credentials).
 */
static int http_get(struct registry_client *c, const char *url, const char *accept,
		    const struct auth *auth, size_t max, struct http_resp *resp,
		    const char *what, struct plumb_err *err)
{
	CURL *h = c->curl;
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	int rc = -1;

	memset(resp, 0, sizeof(*resp));
	sbuf_init(&resp->body, max);
	curl_easy_reset(h);
	if (accept)
		hdrs = curl_slist_append(hdrs, accept);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "plumb/" PLUMB_VERSION);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR,
			 strncmp(url, "https:", 6) == 0 ? "https" : "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, auth && auth->no_redirect ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	if (c->ca_path)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_path);
	if (auth && auth->kind == AUTH_BASIC) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, auth->user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, auth->secret);
	} else if (auth && auth->kind == AUTH_BEARER) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, auth->secret);
	}
	c->http_requests++;
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		if (resp->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
			rc = plumb_err_set(err, PLUMB_ETOOBIG, "%s: response larger than %zu bytes", what, max);
		} else {
			rc = plumb_err_set(err, is_network_error(cc) ? PLUMB_ENETWORK : PLUMB_ERROR, "%s: %s",
					   what, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		}
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	rc = 0;
out:
	/* drop the credentials from the handle now rather than at the next reset */
	curl_easy_setopt(h, CURLOPT_USERNAME, NULL);
	curl_easy_setopt(h, CURLOPT_PASSWORD, NULL);
	curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hdrs);
	if (rc < 0)
		http_resp_release(resp);
	return rc;
}

/* The registry's own error message from a v2 error body, bounded and printable. */
static char *registry_error_text(const struct http_resp *r)
{
	json_t *root = json_loadb(r->body.buf, r->body.len, 0, NULL);
	json_t *e0 = json_array_get(json_object_get(root, "errors"), 0);
	const char *code = json_str(e0, "code"), *msg = json_str(e0, "message");
	struct sbuf sb;

	sbuf_init(&sb, ERR_BODY_MAX);
	if (code || msg) {
		sbuf_addf(&sb, ": %s%s%s", code ? code : "", code && msg ? " " : "",
			  msg ? msg : "");
		for (size_t i = 0; i < sb.len; i++)
			if (!isprint((unsigned char)sb.buf[i]))
				sb.buf[i] = '?';
	}
	json_decref(root);
	return sbuf_detach(&sb);
}

/* ------------------------------------------------------------------ */
/* Auth flow                                                           */

static int realm_allowed(struct registry_client *c, const char *realm)
{
	char hostport[300];
	const char *p;

	if (!strncmp(realm, "https://", 8))
		return 1;
	if (strncmp(realm, "http://", 7) != 0)
		return 0;
	p = realm + 7;
	snprintf(hostport, sizeof(hostport), "%.*s", (int)strcspn(p, "/?#"), p);
	return plain_http_allowed(c, hostport);
}

/*
 * Under restrict_token_realm: may the token request go to `realm` (already
 * through realm_allowed)? 1, or 0 with *why saying why not.
 */
static int realm_host_ok(struct registry_client *c, const struct registry_ref *r,
			 const char *realm, const char **why)
{
	char hostport[300], host[300], reg_host[300];
	int https = strncasecmp(realm, "https://", 8) == 0;
	const char *p = realm + (https ? 8 : 7);
	size_t n = strcspn(p, "/?#");

	if (!c->restrict_token_realm)
		return 1;
	if (n >= sizeof(hostport) || memchr(p, '@', n)) {
		*why = "the realm URL carries user info or an overlong host";
		return 0;
	}
	snprintf(hostport, sizeof(hostport), "%.*s", (int)n, p);
	host_only(hostport, host, sizeof(host));
	host_only(r->host, reg_host, sizeof(reg_host));
	if (!strcasecmp(hostport, r->host) && https == !plain_http_allowed(c, r->host))
		return 1; /* the registry's own origin: no new destination */
	for (size_t i = 0; i < c->realm_hosts.n; i++)
		if (!strcasecmp(c->realm_hosts.v[i], hostport) || !strcasecmp(c->realm_hosts.v[i], host))
			return 1; /* the invocation allows it */
	if (!https) {
		*why = "plain HTTP is allowed only for the registry's own origin";
		return 0;
	}
	if (!strcasecmp(host, reg_host) ||
	    (!strcmp(r->domain, "docker.io") && !strcasecmp(host, "auth.docker.io")))
		return 1;
	*why = "it is not the registry's host";
	return 0;
}

/*
 * May credentials read from the docker config file go to `url`? Not, under
 * no_docker_config_over_http, when it is plain HTTP to a host that is not
 * loopback.
 */
static int docker_config_creds_may_go(struct registry_client *c, const char *url)
{
	char hostport[300];
	const char *p;

	if (!c->no_docker_config_over_http)
		return 1;
	if (strncasecmp(url, "http://", 7) != 0)
		return strncasecmp(url, "https://", 8) == 0;
	p = url + 7;
	snprintf(hostport, sizeof(hostport), "%.*s", (int)strcspn(p, "/?#"), p);
	if (strchr(hostport, '@')) /* userinfo: never ours to judge */
		return 0;
	return host_is_loopback(hostport);
}

/*
 * Fetches a Bearer token for the challenge. 0 with *token (util_free_secret), or
 * a negative code with *err.
 */
static int fetch_token(struct registry_client *c, const struct registry_ref *r,
		       const struct registry_challenge *ch, const char *user,
		       const char *password, int creds_from_file, char **token, time_t *expires,
		       struct plumb_err *err)
{
	struct http_resp resp = { 0 };
	struct auth a = { .kind = AUTH_NONE };
	struct sbuf url;
	char *scope_dflt = NULL, *what = NULL, *esc;
	const char *scope;
	json_t *root = NULL;
	const char *tok;
	json_int_t expires_in = 60;
	const char *why = NULL;
	int rc = PLUMB_ERROR, withheld = 0;

	*token = NULL;
	sbuf_init(&url, 4096);
	if (!ch->realm || !*ch->realm) {
		rc = plumb_err_set(err, PLUMB_EPROTOCOL, "registry %s: Bearer challenge without a realm", r->domain);
		goto out;
	}
	if (!realm_allowed(c, ch->realm)) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "registry %s: token realm '%.200s' is not HTTPS (plain HTTP is allowed only for localhost, 127.0.0.1, [::1] and hosts listed as insecure)",
				   r->domain, ch->realm);
		goto out;
	}
	if (!realm_host_ok(c, r, ch->realm, &why)) {
		char hostport[300];
		const char *p = strstr(ch->realm, "://") + 3;
		snprintf(hostport, sizeof(hostport), "%.*s", (int)strcspn(p, "/?#"), p);
		rc = plumb_err_set(err, PLUMB_EUNTRUSTED, "registry %s: token realm host '%.200s' refused: %s (this run does not "
				   "trust the repository; allow a realm host with PLUMB_REGISTRY_REALM_HOSTS)",
				   r->domain, hostport, why);
		goto out;
	}
	scope_dflt = xasprintf("repository:%s:pull", r->path);
	scope = ch->scope ? ch->scope : scope_dflt;
	sbuf_adds(&url, ch->realm);
	sbuf_addc(&url, strchr(ch->realm, '?') ? '&' : '?');
	if (ch->service) {
		esc = curl_easy_escape(c->curl, ch->service, 0);
		sbuf_addf(&url, "service=%s&", esc ? esc : "");
		curl_free(esc);
	}
	esc = curl_easy_escape(c->curl, scope, 0);
	if (sbuf_addf(&url, "scope=%s", esc ? esc : "") < 0) {
		curl_free(esc);
		rc = plumb_err_set(err, PLUMB_ETOOBIG, "registry %s: token URL too long", r->domain);
		goto out;
	}
	curl_free(esc);
	if (user && creds_from_file && !docker_config_creds_may_go(c, ch->realm)) {
		user = NULL; /* asked for anonymously; the refusal below says why */
		withheld = 1;
	}
	if (user) {
		a.kind = AUTH_BASIC;
		a.user = user;
		a.secret = password;
	}
	a.no_redirect = c->restrict_token_realm;
	what = xasprintf("registry %s: token request to %.200s", r->domain, ch->realm);
	rc = http_get(c, url.buf, "Accept: application/json", &a, REGISTRY_TOKEN_MAX, &resp, what, err);
	if (rc < 0)
		goto out;
	if (resp.status == 401 || resp.status == 403) {
		rc = plumb_err_set(err, PLUMB_EAUTH, "%s: %s (HTTP %ld)", what,
				   user ? "credentials refused"
				   : withheld ? "anonymous access refused; no credentials sent: the docker config's "
					      "credentials are not sent over plain HTTP to a host that is not loopback"
					    : "anonymous access refused; no credentials configured",
				   resp.status);
		goto out;
	}
	if (resp.status != 200) {
		rc = plumb_err_set(err, PLUMB_ERROR, "%s: HTTP %ld", what, resp.status);
		goto out;
	}
	root = json_loadb(resp.body.buf, resp.body.len, 0, NULL);
	tok = json_str(root, "token");
	if (!tok || !*tok)
		tok = json_str(root, "access_token");
	if (!tok || !*tok) {
		rc = plumb_err_set(err, PLUMB_EPROTOCOL, "%s: the response has no token", what);
		goto out;
	}
	if (json_is_integer(json_object_get(root, "expires_in")))
		expires_in = json_integer_value(json_object_get(root, "expires_in"));
	if (expires_in < 60)
		expires_in = 60;
	*token = xstrdup(tok);
	*expires = time(NULL) + (time_t)expires_in - 10;
	rc = 0;
out:
	if (root) {
		/* the token lives in the JSON tree too; wipe it before freeing */
		json_t *t = json_object_get(root, "token");
		if (json_is_string(t))
			memset((char *)json_string_value(t), 0, json_string_length(t));
		t = json_object_get(root, "access_token");
		if (json_is_string(t))
			memset((char *)json_string_value(t), 0, json_string_length(t));
		json_decref(root);
	}
	if (resp.body.buf)
		memset(resp.body.buf, 0, resp.body.len);
	http_resp_release(&resp);
	sbuf_release(&url);
	free(scope_dflt);
	free(what);
	return rc;
}

/*
 * GET /v2/<path>/manifests/<reference> with whatever auth the registry asks
 * for. 0 with resp (status 200 or 404), or a negative code with *err.
 */
static int get_manifest(struct registry_client *c, const struct registry_ref *r,
			const char *reference, struct http_resp *resp, struct plumb_err *err)
{
	struct host_state *hs = host_state(c, r->host);
	struct registry_challenge ch = { 0 };
	char *url = NULL, *what = NULL, *user = NULL, *password = NULL, *note = NULL;
	char *tkey = NULL, *regerr = NULL;
	int have_creds, from_file = 0, rc = PLUMB_ERROR, attempt, unavailable = 0;
	int sent_basic = 0, sent_fresh_token = 0;

	memset(resp, 0, sizeof(*resp));
	url = xasprintf("%s://%s/v2/%s/manifests/%s", plain_http_allowed(c, r->host) ? "http" : "https",
			r->host, r->path, reference);
	what = xasprintf("registry %s: GET %s:%s", r->domain, r->path, reference);
	tkey = xasprintf("%s repository:%s:pull", r->host, r->path);
	have_creds = creds_for(c, r->domain, &user, &password, &note, &from_file);
	if (have_creds < 0) {
		unavailable = 1;
		have_creds = 0;
	}
	if (have_creds && from_file && !docker_config_creds_may_go(c, url)) {
		have_creds = 0;
		free(user);
		util_free_secret(password);
		user = password = NULL;
		free(note);
		note = xasprintf("no credentials sent: the docker config's credentials for %s are not sent "
				 "over plain HTTP to a host that is not loopback",
				 r->domain);
	}

	for (attempt = 0; attempt < 3; attempt++) {
		struct auth a = { .kind = AUTH_NONE };
		struct token *t = token_find(c, tkey);

		if (hs->auth == HOST_AUTH_BASIC && have_creds) {
			a.kind = AUTH_BASIC;
			a.user = user;
			a.secret = password;
			sent_basic = 1;
		} else if (hs->auth == HOST_AUTH_BEARER && t && t->expires > time(NULL)) {
			a.kind = AUTH_BEARER;
			a.secret = t->value;
		}
		http_resp_release(resp);
		c->manifest_requests++;
		rc = http_get(c, url, manifest_accept, &a, REGISTRY_MANIFEST_MAX, resp, what, err);
		if (rc < 0)
			goto out;
		if (resp->status == 200 || resp->status == 404) {
			if (hs->auth == HOST_AUTH_UNKNOWN)
				hs->auth = HOST_AUTH_NONE;
			rc = 0;
			goto out;
		}
		if (resp->status == 401) {
			registry_challenge_release(&ch);
			if (!resp->www_auth || registry_challenge_parse(&ch, resp->www_auth) < 0) {
				rc = plumb_err_set(err, PLUMB_EAUTH, "%s: HTTP 401 without a usable WWW-Authenticate challenge", what);
				goto out;
			}
			if (unavailable) {
				rc = plumb_err_set(err, PLUMB_EAUTH, "%s: the registry requires credentials and %s", what, note);
				goto out;
			}
			if (!strcasecmp(ch.scheme, "Basic")) {
				if (!have_creds) {
					rc = plumb_err_set(err, PLUMB_EAUTH, "%s: the registry requires credentials and none are configured for %s%s%s%s",
							   what, r->domain, note ? " (" : "", note ? note : "",
							   note ? ")" : "");
					goto out;
				}
				if (sent_basic) {
					rc = plumb_err_set(err, PLUMB_EAUTH, "%s: the registry refused the credentials for %s (HTTP 401)",
							   what, r->domain);
					goto out;
				}
				hs->auth = HOST_AUTH_BASIC;
				continue;
			}
			if (!strcasecmp(ch.scheme, "Bearer")) {
				char *tok = NULL;
				time_t exp = 0;

				if (sent_fresh_token) {
					/* Docker Hub answers so for a repository that does not exist, too */
					rc = plumb_err_set(err, PLUMB_EAUTH, "%s: the registry refused the token (HTTP 401%s%s): the repository "
							   "does not exist or the credentials for %s do not grant pull",
							   what, ch.error ? ", " : "", ch.error ? ch.error : "", r->domain);
					goto out;
				}
				rc = fetch_token(c, r, &ch, have_creds ? user : NULL, password, from_file, &tok,
						 &exp, err);
				if (rc < 0)
					goto out;
				token_store(c, tkey, tok, exp);
				hs->auth = HOST_AUTH_BEARER;
				sent_fresh_token = 1;
				continue;
			}
			rc = plumb_err_set(err, PLUMB_EAUTH, "%s: unsupported authentication scheme '%.40s'", what, ch.scheme);
			goto out;
		}
		regerr = registry_error_text(resp);
		if (resp->status == 403) {
			rc = plumb_err_set(err, PLUMB_EAUTH, "%s: access denied (HTTP 403%s)", what, regerr);
		} else {
			rc = plumb_err_set(err, PLUMB_ERROR, "%s: HTTP %ld%s", what, resp->status, regerr);
		}
		goto out;
	}
	rc = plumb_err_set(err, PLUMB_EAUTH, "%s: authentication did not settle after %d attempts", what, attempt);
out:
	if (rc < 0)
		http_resp_release(resp);
	registry_challenge_release(&ch);
	free(url);
	free(what);
	free(tkey);
	free(regerr);
	free(note);
	free(user);
	util_free_secret(password);
	return rc;
}

/*
 * The digest of a fetched manifest: the body's sha256, which must equal the
 * Docker-Content-Digest header when there is one, and `expect`.
 */
static int manifest_digest(const struct registry_ref *r, const struct http_resp *resp,
			   const char *expect, char **out, struct plumb_err *err)
{
	char computed[7 + HASH_HEX_LEN + 1];
	const char *hdr = resp->digest;

	memcpy(computed, "sha256:", 7);
	hash_sha256_hex(resp->body.buf, resp->body.len, computed + 7);
	if (hdr && valid_digest(hdr) && strcmp(hdr, computed) != 0) {
		return plumb_err_set(err, PLUMB_EPROTOCOL,
				     "registry %s: %s: Docker-Content-Digest %s does not match the manifest's sha256 %s",
				     r->domain, r->path, hdr, computed);
	}
	hdr = computed;
	if (expect && strcmp(expect, hdr) != 0) {
		return plumb_err_set(err, PLUMB_EPROTOCOL,
				     "registry %s: %s: asked for %s, got a manifest with digest %s",
				     r->domain, r->path, expect, hdr);
	}
	*out = xstrdup(hdr);
	return 0;
}

static int resolve_uncached(struct registry_client *c, const struct registry_ref *r,
			    struct registry_result *res, struct plumb_err *err)
{
	struct http_resp resp = { 0 };
	struct registry_manifest m = { 0 }, pm = { 0 };
	struct plumb_err perr = { 0 };
	const char *reference = r->digest ? r->digest : r->tag;
	int rc;

	rc = get_manifest(c, r, reference, &resp, err);
	if (rc < 0)
		goto out;
	if (resp.status == 404) {
		res->status = REGISTRY_NOT_FOUND;
		goto out;
	}
	rc = manifest_digest(r, &resp, r->digest, &res->digest, err);
	if (rc < 0)
		goto out;
	rc = registry_manifest_parse(&m, resp.body.buf, resp.body.len, resp.content_type,
				     c->platform, &perr);
	if (rc < 0) {
		rc = plumb_err_set(err, perr.code, "registry %s: %s:%s: %s", r->domain, r->path, reference,
				   plumb_err_msg(&perr));
		goto out;
	}
	res->media_type = xstrdup(m.media_type);
	if (m.kind == REGISTRY_MANIFEST_IMAGE) {
		res->platform_digest = xstrdup(res->digest);
		res->config_digest = xstrdup(m.config_digest);
		res->status = REGISTRY_FOUND;
		goto out;
	}
	http_resp_release(&resp);
	rc = get_manifest(c, r, m.platform_digest, &resp, err);
	if (rc < 0)
		goto out;
	if (resp.status == 404) {
		rc = plumb_err_set(err, PLUMB_ENOTFOUND, "registry %s: %s:%s: the index names %s for %s, but the registry does not have it",
				   r->domain, r->path, reference, m.platform_digest, c->platform);
		goto out;
	}
	rc = manifest_digest(r, &resp, m.platform_digest, &res->platform_digest, err);
	if (rc < 0)
		goto out;
	rc = registry_manifest_parse(&pm, resp.body.buf, resp.body.len, resp.content_type,
				     c->platform, &perr);
	if (rc < 0 || pm.kind != REGISTRY_MANIFEST_IMAGE) {
		rc = plumb_err_set(err, rc < 0 ? perr.code : PLUMB_EPROTOCOL, "registry %s: %s@%s: %s",
				   r->domain, r->path, m.platform_digest,
				   rc < 0 ? plumb_err_msg(&perr) : "an index entry is itself an index");
		goto out;
	}
	res->config_digest = xstrdup(pm.config_digest);
	res->status = REGISTRY_FOUND;
out:
	registry_manifest_release(&m);
	registry_manifest_release(&pm);
	http_resp_release(&resp);
	return rc;
}

int registry_lookup(struct registry_client *c, const char *image_ref,
		    struct registry_result *out, struct plumb_err *err)
{
	struct registry_ref r = { 0 };
	struct registry_result res = { 0 };
	char *key = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = registry_ref_parse(&r, image_ref, err);
	if (rc < 0)
		return rc;
	key = registry_ref_string(&r);
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->ncache; i++) {
		if (!strcmp(c->cache[i].key, key)) {
			result_copy(out, &c->cache[i].res);
			rc = 0;
			goto out;
		}
	}
	rc = resolve_uncached(c, &r, &res, err);
	if (rc < 0) {
		registry_result_release(&res);
		goto out;
	}
	res.ref = xstrdup(key);
	c->cache = xrealloc(c->cache, (c->ncache + 1) * sizeof(*c->cache));
	c->cache[c->ncache].key = xstrdup(key);
	c->cache[c->ncache].res = res;
	c->ncache++;
	result_copy(out, &res);
out:
	pthread_mutex_unlock(&c->lock);
	free(key);
	registry_ref_release(&r);
	return rc;
}

int registry_pin(const char *image_ref, const char **digest, const char **identity, void *ctx)
{
	struct registry_client *c = ctx;
	struct registry_result res = { 0 };
	int rc = -1;

	*digest = *identity = NULL;
	if (registry_lookup(c, image_ref, &res, NULL) != 0 || res.status != REGISTRY_FOUND)
		goto out;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->ncache; i++) {
		if (!strcmp(c->cache[i].key, res.ref)) {
			/* the cache owns these strings until the client is freed */
			*digest = c->cache[i].res.digest;
			*identity = c->cache[i].res.config_digest;
			rc = *digest ? 0 : -1;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
out:
	registry_result_release(&res);
	return rc;
}

int registry_resolve(struct registry_client *c, const char *image_ref,
		     struct registry_result *out, char **err)
{
	struct plumb_err e = { 0 };
	int rc = registry_lookup(c, image_ref, out, &e);

	*err = rc < 0 ? xstrdup(plumb_err_msg(&e)) : NULL;
	return rc;
}
