#include "state/config_schema.h"

#include <stdlib.h>
#include <string.h>

enum sk {
	SK_STR,        /* stringish: string, number, boolean, symbol */
	SK_INT,
	SK_BOOL,
	SK_HASH,       /* a hash validated against children */
	SK_LIST,       /* a list of `item` */
	SK_ANYHASH,    /* docker options / build args: any hash */
	SK_LABELS,     /* hash of stringish; service, role and destination are reserved */
	SK_STRMAP,     /* hash of stringish (aliases) */
	SK_HOSTS,      /* list of "host" or {host: tag | [tags]} */
	SK_SERVERS,    /* list of hosts, or hash of roles */
	SK_ENV,        /* flat hash, or clear/secret/tags */
	SK_ENV_NOTAGS, /* env where tags are not allowed (roles, accessories, tags) */
	SK_REG_CRED,   /* string, or a list with one string (secret name) */
	SK_PROXY,      /* hash, or a boolean (role level, root) */
	SK_SSL,        /* boolean, or {certificate_pem, private_key_pem} */
	SK_STR_OR_LIST,
	SK_FILES,      /* list of "local:remote[:opts]" or {local, remote, mode, owner, options} */
	SK_HOOKS_OUTPUT, /* string, or hash of strings */
	SK_MAP_OF,     /* hash name → children-validated hash */
	SK_ROLE,       /* list of hosts, or a role hash */
};

struct skey {
	const char *name;
	enum sk kind;
	const struct skey *children; /* SK_HASH, SK_MAP_OF, SK_ROLE, SK_FILES */
	enum sk item;                /* SK_LIST */
};

#define END { NULL, SK_STR, NULL, SK_STR }

static const struct skey healthcheck_keys[] = {
	{ "interval", SK_INT, NULL, 0 }, { "path", SK_STR, NULL, 0 }, { "timeout", SK_INT, NULL, 0 }, END,
};
static const struct skey buffering_keys[] = {
	{ "requests", SK_BOOL, NULL, 0 }, { "responses", SK_BOOL, NULL, 0 },
	{ "max_request_body", SK_INT, NULL, 0 }, { "max_response_body", SK_INT, NULL, 0 },
	{ "memory", SK_INT, NULL, 0 }, END,
};
static const struct skey proxy_logging_keys[] = {
	{ "request_headers", SK_LIST, NULL, SK_STR }, { "response_headers", SK_LIST, NULL, SK_STR }, END,
};
static const struct skey proxy_run_keys[] = {
	{ "http_port", SK_INT, NULL, 0 }, { "https_port", SK_INT, NULL, 0 },
	{ "metrics_port", SK_INT, NULL, 0 }, { "debug", SK_BOOL, NULL, 0 },
	{ "log_max_size", SK_STR, NULL, 0 }, { "publish", SK_BOOL, NULL, 0 },
	{ "bind_ips", SK_LIST, NULL, SK_STR }, { "registry", SK_STR, NULL, 0 },
	{ "repository", SK_STR, NULL, 0 }, { "version", SK_STR, NULL, 0 },
	{ "options", SK_ANYHASH, NULL, 0 }, END,
};
static const struct skey ssl_keys[] = {
	{ "certificate_pem", SK_STR, NULL, 0 }, { "private_key_pem", SK_STR, NULL, 0 }, END,
};
static const struct skey proxy_keys[] = {
	{ "host", SK_STR, NULL, 0 },
	{ "hosts", SK_LIST, NULL, SK_STR },
	{ "app_port", SK_INT, NULL, 0 },
	{ "ssl", SK_SSL, ssl_keys, 0 },
	{ "ssl_redirect", SK_BOOL, NULL, 0 },
	{ "forward_headers", SK_BOOL, NULL, 0 },
	{ "response_timeout", SK_INT, NULL, 0 },
	{ "path_prefix", SK_STR, NULL, 0 },
	{ "path_prefixes", SK_LIST, NULL, SK_STR },
	{ "strip_path_prefix", SK_BOOL, NULL, 0 },
	{ "healthcheck", SK_HASH, healthcheck_keys, 0 },
	{ "buffering", SK_HASH, buffering_keys, 0 },
	{ "logging", SK_HASH, proxy_logging_keys, 0 },
	{ "run", SK_HASH, proxy_run_keys, 0 },
	END,
};
static const struct skey logging_keys[] = {
	{ "driver", SK_STR, NULL, 0 }, { "options", SK_ANYHASH, NULL, 0 }, END,
};
static const struct skey registry_keys[] = {
	{ "server", SK_STR, NULL, 0 }, { "username", SK_REG_CRED, NULL, 0 },
	{ "password", SK_REG_CRED, NULL, 0 }, END,
};
static const struct skey role_keys[] = {
	{ "hosts", SK_HOSTS, NULL, 0 },
	{ "cmd", SK_STR, NULL, 0 },
	{ "stop_timeout", SK_INT, NULL, 0 },
	{ "options", SK_ANYHASH, NULL, 0 },
	{ "logging", SK_HASH, logging_keys, 0 },
	{ "proxy", SK_PROXY, proxy_keys, 0 },
	{ "labels", SK_LABELS, NULL, 0 },
	{ "env", SK_ENV_NOTAGS, NULL, 0 },
	{ "asset_path", SK_STR, NULL, 0 },
	END,
};
static const struct skey file_keys[] = {
	{ "local", SK_STR, NULL, 0 }, { "remote", SK_STR, NULL, 0 }, { "mode", SK_STR, NULL, 0 },
	{ "owner", SK_STR, NULL, 0 }, { "options", SK_STR, NULL, 0 }, END,
};
static const struct skey accessory_keys[] = {
	{ "service", SK_STR, NULL, 0 },
	{ "image", SK_STR, NULL, 0 },
	{ "registry", SK_HASH, registry_keys, 0 },
	{ "host", SK_STR, NULL, 0 },
	{ "hosts", SK_HOSTS, NULL, 0 },
	{ "role", SK_STR, NULL, 0 },
	{ "roles", SK_LIST, NULL, SK_STR },
	{ "tag", SK_STR, NULL, 0 },
	{ "tags", SK_LIST, NULL, SK_STR },
	{ "cmd", SK_STR, NULL, 0 },
	{ "port", SK_STR, NULL, 0 },
	{ "labels", SK_LABELS, NULL, 0 },
	{ "options", SK_ANYHASH, NULL, 0 },
	{ "env", SK_ENV_NOTAGS, NULL, 0 },
	{ "files", SK_FILES, file_keys, 0 },
	{ "directories", SK_FILES, file_keys, 0 },
	{ "volumes", SK_LIST, NULL, SK_STR },
	{ "network", SK_STR, NULL, 0 },
	{ "proxy", SK_HASH, proxy_keys, 0 },
	END,
};
static const struct skey ssh_keys[] = {
	{ "user", SK_STR, NULL, 0 },
	{ "port", SK_STR, NULL, 0 },
	{ "proxy", SK_STR, NULL, 0 },
	{ "proxy_command", SK_STR, NULL, 0 },
	{ "log_level", SK_STR, NULL, 0 },
	{ "keys_only", SK_BOOL, NULL, 0 },
	{ "keys", SK_LIST, NULL, SK_STR },
	{ "key_data", SK_LIST, NULL, SK_STR },
	{ "config", SK_STR_OR_LIST, NULL, 0 },
	{ "forward_agent", SK_BOOL, NULL, 0 },
	END,
};
static const struct skey pack_keys[] = {
	{ "builder", SK_STR, NULL, 0 }, { "buildpacks", SK_LIST, NULL, SK_STR }, END,
};
static const struct skey cache_keys[] = {
	{ "type", SK_STR, NULL, 0 }, { "options", SK_STR, NULL, 0 }, { "image", SK_STR, NULL, 0 }, END,
};
static const struct skey builder_keys[] = {
	{ "arch", SK_STR_OR_LIST, NULL, 0 },
	{ "remote", SK_STR, NULL, 0 },
	{ "local", SK_BOOL, NULL, 0 },
	{ "pack", SK_HASH, pack_keys, 0 },
	{ "cache", SK_HASH, cache_keys, 0 },
	{ "context", SK_STR, NULL, 0 },
	{ "dockerfile", SK_STR, NULL, 0 },
	{ "target", SK_STR, NULL, 0 },
	{ "args", SK_ANYHASH, NULL, 0 },
	{ "secrets", SK_LIST, NULL, SK_STR },
	{ "ssh", SK_STR, NULL, 0 },
	{ "driver", SK_STR, NULL, 0 },
	{ "provenance", SK_STR, NULL, 0 },
	{ "sbom", SK_BOOL, NULL, 0 },
	END,
};
static const struct skey sshkit_keys[] = {
	{ "max_concurrent_starts", SK_INT, NULL, 0 }, { "pool_idle_timeout", SK_INT, NULL, 0 },
	{ "dns_retries", SK_INT, NULL, 0 }, END,
};
static const struct skey boot_keys[] = {
	{ "limit", SK_STR, NULL, 0 }, { "wait", SK_INT, NULL, 0 },
	{ "parallel_roles", SK_BOOL, NULL, 0 }, END,
};
static const struct skey otel_keys[] = { { "endpoint", SK_STR, NULL, 0 }, END };
static const struct skey file_out_keys[] = { { "path", SK_STR, NULL, 0 }, END };
static const struct skey output_keys[] = {
	{ "otel", SK_HASH, otel_keys, 0 }, { "file", SK_HASH, file_out_keys, 0 }, END,
};
/* plumb's own settings (Kamal ignores x- keys, so one file serves both tools). */
static const struct skey xplumb_ssh_keys[] = {
	{ "known_hosts", SK_STR, NULL, 0 }, { "accept_new_host_keys", SK_BOOL, NULL, 0 }, END,
};
static const struct skey xplumb_registry_keys[] = {
	{ "insecure", SK_LIST, NULL, SK_STR }, END,
};
static const struct skey xplumb_accessory_keys[] = {
	{ "pin_digest", SK_BOOL, NULL, 0 }, { "snapshot", SK_BOOL, NULL, 0 },
	{ "watch_replace", SK_BOOL, NULL, 0 }, END,
};
static const struct skey xplumb_hooks_keys[] = { { "timeout", SK_INT, NULL, 0 }, END };
static const struct skey xplumb_keys[] = {
	{ "version", SK_STR, NULL, 0 },
	{ "prune", SK_BOOL, NULL, 0 },
	{ "renames", SK_BOOL, NULL, 0 },
	{ "hooks", SK_HASH, xplumb_hooks_keys, 0 },
	{ "ssh", SK_HASH, xplumb_ssh_keys, 0 },
	{ "registry", SK_HASH, xplumb_registry_keys, 0 },
	{ "accessories", SK_MAP_OF, xplumb_accessory_keys, 0 },
	END,
};

static const struct skey root_keys[] = {
	{ "x-plumb", SK_HASH, xplumb_keys, 0 },
	{ "service", SK_STR, NULL, 0 },
	{ "image", SK_STR, NULL, 0 },
	{ "labels", SK_LABELS, NULL, 0 },
	{ "volumes", SK_LIST, NULL, SK_STR },
	{ "registry", SK_HASH, registry_keys, 0 },
	{ "servers", SK_SERVERS, role_keys, 0 },
	{ "env", SK_ENV, NULL, 0 },
	{ "asset_path", SK_STR, NULL, 0 },
	{ "hooks_path", SK_STR, NULL, 0 },
	{ "hooks_output", SK_HOOKS_OUTPUT, NULL, 0 },
	{ "secrets_path", SK_STR, NULL, 0 },
	{ "error_pages_path", SK_STR, NULL, 0 },
	{ "require_destination", SK_BOOL, NULL, 0 },
	{ "primary_role", SK_STR, NULL, 0 },
	{ "allow_empty_roles", SK_BOOL, NULL, 0 },
	{ "retain_containers", SK_INT, NULL, 0 },
	{ "minimum_version", SK_STR, NULL, 0 },
	{ "readiness_delay", SK_INT, NULL, 0 },
	{ "deploy_timeout", SK_INT, NULL, 0 },
	{ "drain_timeout", SK_INT, NULL, 0 },
	{ "stop_timeout", SK_INT, NULL, 0 },
	{ "run_directory", SK_STR, NULL, 0 },
	{ "ssh", SK_HASH, ssh_keys, 0 },
	{ "builder", SK_HASH, builder_keys, 0 },
	{ "accessories", SK_MAP_OF, accessory_keys, 0 },
	{ "proxy", SK_PROXY, proxy_keys, 0 },
	{ "sshkit", SK_HASH, sshkit_keys, 0 },
	{ "boot", SK_HASH, boot_keys, 0 },
	{ "logging", SK_HASH, logging_keys, 0 },
	{ "output", SK_HASH, output_keys, 0 },
	{ "aliases", SK_STRMAP, NULL, 0 },
	END,
};

struct vctx {
	struct diags *d;
	size_t errors;
};

static void verr(struct vctx *v, const struct ynode *at, const char *path, const char *fmt, ...)
	PLUMB_PRINTF(4, 5);
static void verr(struct vctx *v, const struct ynode *at, const char *path, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (path && *path)
		diags_err(v->d, at->file, at->line, at->col, "%s: %s", path, msg);
	else
		diags_err(v->d, at->file, at->line, at->col, "%s", msg);
	free(msg);
	v->errors++;
}

static int is_stringish(const struct ynode *n)
{
	return n->kind == Y_STR || n->kind == Y_INT || n->kind == Y_FLOAT || n->kind == Y_BOOL;
}

static char *join_path(const char *path, const char *key)
{
	return (path && *path) ? xasprintf("%s.%s", path, key) : xstrdup(key);
}

static char *index_path(const char *path, size_t i)
{
	return xasprintf("%s[%zu]", path, i);
}

static void type_error(struct vctx *v, const struct ynode *n, const char *path, const char *want)
{
	verr(v, n, path, "should be %s (got %s)", want, ykind_name(n->kind));
}

static void validate(struct vctx *v, const struct ynode *n, const struct skey *k, const char *path);

static const char *suggest(const char *key, const struct skey *keys)
{
	const char *best = NULL;
	size_t bestd = (size_t)-1, len = strlen(key);

	for (const struct skey *k = keys; k->name; k++) {
		size_t dist = util_edit_distance(key, k->name);
		if (dist < bestd) {
			bestd = dist;
			best = k->name;
		}
	}
	/* near miss: at most 2 edits, and fewer than half the key */
	if (best && bestd <= 2 && bestd * 2 < len + 1)
		return best;
	return NULL;
}

static void validate_keys(struct vctx *v, const struct ynode *map, const struct skey *keys,
			  const char *path, int allow_x)
{
	for (size_t i = 0; i < map->n; i++) {
		const struct ynode *key = map->keys[i];
		const struct skey *k;

		if (allow_x && strncmp(key->str, "x-", 2) == 0 && strcmp(key->str, "x-plumb") != 0)
			continue;
		for (k = keys; k->name; k++)
			if (strcmp(k->name, key->str) == 0)
				break;
		if (!k->name) {
			const char *s = suggest(key->str, keys);
			char *where = (path && *path) ? xasprintf(" in %s", path) : xstrdup(" at the top level");
			char *hint = s ? xasprintf(" (did you mean '%s'?)", s) : xstrdup("");
			diags_err(v->d, key->file, key->line, key->col, "unknown key '%s'%s%s",
				  key->str, where, hint);
			v->errors++;
			free(where);
			free(hint);
			continue;
		}
		{
			char *p = join_path(path, key->str);
			validate(v, map->vals[i], k, p);
			free(p);
		}
	}
}

static void validate_hash_of_str(struct vctx *v, const struct ynode *n, const char *path)
{
	if (n->kind != Y_MAP) {
		type_error(v, n, path, "a hash");
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		if (!is_stringish(n->vals[i])) {
			char *p = join_path(path, n->keys[i]->str);
			type_error(v, n->vals[i], p, "a string");
			free(p);
		}
	}
}

static void validate_list_of(struct vctx *v, const struct ynode *n, enum sk item, const char *path)
{
	if (n->kind != Y_SEQ) {
		type_error(v, n, path, "a list");
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		char *p = index_path(path, i);
		struct skey k = { "", item, NULL, SK_STR };
		validate(v, n->items[i], &k, p);
		free(p);
	}
}

static void validate_hosts(struct vctx *v, const struct ynode *n, const char *path)
{
	if (n->kind != Y_SEQ) {
		type_error(v, n, path, "a list of hosts");
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *h = n->items[i];
		char *p = index_path(path, i);

		if (h->kind == Y_MAP) {
			if (h->n != 1) {
				verr(v, h, p, "multiple hosts found");
			} else {
				const struct ynode *tags = h->vals[0];
				char *hp = join_path(p, h->keys[0]->str);
				if (tags->kind == Y_SEQ)
					validate_list_of(v, tags, SK_STR, hp);
				else if (!is_stringish(tags))
					type_error(v, tags, hp, "a string or a list of strings");
				free(hp);
			}
		} else if (!is_stringish(h)) {
			type_error(v, h, p, "a string or a hash");
		}
		free(p);
	}
}

static void validate_env(struct vctx *v, const struct ynode *n, const char *path, int allow_tags)
{
	int complex = 0;

	if (n->kind == Y_NULL)
		return;
	if (n->kind != Y_MAP) {
		type_error(v, n, path, "a hash");
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const char *k = n->keys[i]->str;
		if (!strcmp(k, "clear") || !strcmp(k, "secret") || !strcmp(k, "tags"))
			complex = 1;
	}
	if (!complex) {
		validate_hash_of_str(v, n, path);
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *key = n->keys[i], *val = n->vals[i];
		char *p = join_path(path, key->str);

		if (!strcmp(key->str, "clear")) {
			validate_hash_of_str(v, val, p);
		} else if (!strcmp(key->str, "secret")) {
			validate_list_of(v, val, SK_STR, p);
		} else if (!strcmp(key->str, "tags")) {
			if (!allow_tags) {
				verr(v, key, path, "tags are only allowed in the root env");
			} else if (val->kind != Y_MAP) {
				type_error(v, val, p, "a hash");
			} else {
				for (size_t j = 0; j < val->n; j++) {
					char *tp = join_path(p, val->keys[j]->str);
					if (val->vals[j]->kind != Y_MAP)
						type_error(v, val->vals[j], tp, "a hash");
					else
						validate_env(v, val->vals[j], tp, 0);
					free(tp);
				}
			}
		} else {
			diags_err(v->d, key->file, key->line, key->col,
				  "unknown key '%s' in %s (env takes either plain NAME: value pairs, or clear, secret and tags)",
				  key->str, path);
			v->errors++;
		}
		free(p);
	}
}

static void validate(struct vctx *v, const struct ynode *n, const struct skey *k, const char *path)
{
	switch (k->kind) {
	case SK_STR:
		if (!is_stringish(n))
			type_error(v, n, path, "a string");
		break;
	case SK_INT:
		if (n->kind != Y_INT)
			type_error(v, n, path, "an integer");
		break;
	case SK_BOOL:
		if (n->kind != Y_BOOL)
			type_error(v, n, path, "a boolean");
		break;
	case SK_HASH:
		if (n->kind != Y_MAP)
			type_error(v, n, path, "a hash");
		else
			validate_keys(v, n, k->children, path, 0);
		break;
	case SK_LIST:
		validate_list_of(v, n, k->item, path);
		break;
	case SK_ANYHASH:
		if (n->kind != Y_MAP)
			type_error(v, n, path, "a hash");
		break;
	case SK_LABELS:
		validate_hash_of_str(v, n, path);
		for (size_t i = 0; n->kind == Y_MAP && i < n->n; i++) {
			const char *key = n->keys[i]->str;
			if (!strcmp(key, "service") || !strcmp(key, "role") || !strcmp(key, "destination")) {
				char *p = join_path(path, key);
				verr(v, n->keys[i], p,
				     "invalid label: destination, role, and service are reserved labels");
				free(p);
			}
		}
		break;
	case SK_STRMAP:
		validate_hash_of_str(v, n, path);
		break;
	case SK_HOSTS:
		validate_hosts(v, n, path);
		break;
	case SK_SERVERS:
		if (n->kind == Y_SEQ) {
			validate_hosts(v, n, path);
		} else if (n->kind == Y_MAP) {
			for (size_t i = 0; i < n->n; i++) {
				struct skey role = { "", SK_ROLE, k->children, SK_STR };
				char *p = join_path(path, n->keys[i]->str);
				validate(v, n->vals[i], &role, p);
				free(p);
			}
		} else {
			type_error(v, n, path, "a list or a hash");
		}
		break;
	case SK_ROLE:
		if (n->kind == Y_SEQ)
			validate_hosts(v, n, path);
		else if (n->kind == Y_MAP)
			validate_keys(v, n, k->children, path, 0);
		else
			type_error(v, n, path, "a list or a hash");
		break;
	case SK_ENV:
		validate_env(v, n, path, 1);
		break;
	case SK_ENV_NOTAGS:
		validate_env(v, n, path, 0);
		break;
	case SK_REG_CRED:
		if (!(n->kind == Y_STR || (n->kind == Y_SEQ && n->n == 1 && n->items[0]->kind == Y_STR)))
			verr(v, n, path, "should be a string or an array with one string (for secret lookup)");
		break;
	case SK_PROXY:
		if (n->kind == Y_BOOL)
			break;
		if (n->kind != Y_MAP)
			type_error(v, n, path, "a hash or a boolean");
		else
			validate_keys(v, n, k->children, path, 0);
		break;
	case SK_SSL:
		if (n->kind == Y_BOOL)
			break;
		if (n->kind != Y_MAP)
			type_error(v, n, path, "a boolean or a hash");
		else
			validate_keys(v, n, k->children, path, 0);
		break;
	case SK_STR_OR_LIST:
		if (n->kind == Y_SEQ)
			validate_list_of(v, n, SK_STR, path);
		else if (!is_stringish(n))
			type_error(v, n, path, "a list or a string");
		break;
	case SK_FILES:
		if (n->kind != Y_SEQ) {
			type_error(v, n, path, "a list");
			break;
		}
		for (size_t i = 0; i < n->n; i++) {
			char *p = index_path(path, i);
			if (n->items[i]->kind == Y_MAP)
				validate_keys(v, n->items[i], k->children, p, 0);
			else if (!is_stringish(n->items[i]))
				type_error(v, n->items[i], p, "a string or a hash");
			free(p);
		}
		break;
	case SK_HOOKS_OUTPUT:
		if (n->kind == Y_MAP)
			validate_hash_of_str(v, n, path);
		else if (!is_stringish(n))
			type_error(v, n, path, "a string or a hash");
		break;
	case SK_MAP_OF:
		if (n->kind != Y_MAP) {
			type_error(v, n, path, "a hash");
			break;
		}
		for (size_t i = 0; i < n->n; i++) {
			char *p = join_path(path, n->keys[i]->str);
			if (n->vals[i]->kind != Y_MAP)
				type_error(v, n->vals[i], p, "a hash");
			else
				validate_keys(v, n->vals[i], k->children, p, 0);
			free(p);
		}
		break;
	}
}

size_t config_schema_validate(const struct ynode *root, struct diags *d)
{
	struct vctx v = { d, 0 };

	if (root->kind != Y_MAP) {
		diags_err(d, root->file, root->line, root->col,
			  "the configuration should be a hash of keys (got %s)", ykind_name(root->kind));
		return 1;
	}
	validate_keys(&v, root, root_keys, "", 1);
	return v.errors;
}
