/*
 * Loading deploy.yml into struct config: ERB, YAML, overlay, validation,
 * secrets, the typed model, and Kamal's cross-key rules (see config.h).
 */
#include "state/config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state/config_schema.h"
#include "state/erb.h"
#include "state/yaml.h"

/* ---- kvs ---- */

static size_t kvs_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)(h ^ (h >> 32));
}

/* The slot holding key, or the free slot where it would go (idx_cap > 0). */
static size_t kvs_slot(const struct kvs *m, const char *key)
{
	size_t i = kvs_hash(key) & (m->idx_cap - 1);

	while (m->idx[i] && strcmp(m->keys[m->idx[i] - 1], key) != 0)
		i = (i + 1) & (m->idx_cap - 1);
	return i;
}

static void kvs_reindex(struct kvs *m, size_t want)
{
	free(m->idx);
	m->idx_cap = 16;
	while (m->idx_cap < want * 2)
		m->idx_cap *= 2;
	m->idx = xcalloc(m->idx_cap, sizeof(*m->idx));
	for (size_t i = 0; i < m->n; i++)
		m->idx[kvs_slot(m, m->keys[i])] = i + 1;
}

void kvs_set(struct kvs *m, const char *key, const char *val)
{
	size_t slot;

	if ((m->n + 1) * 2 > m->idx_cap)
		kvs_reindex(m, m->n + 1);
	slot = kvs_slot(m, key);
	if (m->idx[slot]) {
		size_t i = m->idx[slot] - 1;

		free(m->vals[i]);
		m->vals[i] = xstrdup(val);
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 8;
		m->keys = xrealloc(m->keys, m->cap * sizeof(*m->keys));
		m->vals = xrealloc(m->vals, m->cap * sizeof(*m->vals));
	}
	m->keys[m->n] = xstrdup(key);
	m->vals[m->n] = xstrdup(val);
	m->n++;
	m->idx[slot] = m->n;
}

const char *kvs_get(const struct kvs *m, const char *key)
{
	size_t slot;

	if (!m->idx_cap)
		return NULL;
	slot = kvs_slot(m, key);
	return m->idx[slot] ? m->vals[m->idx[slot] - 1] : NULL;
}

void kvs_copy(struct kvs *dst, const struct kvs *src)
{
	for (size_t i = 0; i < src->n; i++)
		kvs_set(dst, src->keys[i], src->vals[i]);
}

void kvs_release(struct kvs *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->keys[i]);
		free(m->vals[i]);
	}
	free(m->keys);
	free(m->vals);
	free(m->idx);
	memset(m, 0, sizeof(*m));
}

void cfg_env_release(struct cfg_env *e)
{
	kvs_release(&e->clear);
	kvs_release(&e->secret);
	strvec_release(&e->sensitive);
	strvec_release(&e->unavailable);
}

static void strvec_remove(struct strvec *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0) {
			free(sv->v[i]);
			sv->v[i] = sv->v[--sv->n];
			return;
		}
}

/* Sets a clear value and whether it is sensitive/unavailable (the flags follow the value). */
static void env_set_clear(struct cfg_env *e, const char *key, const char *val, int sensitive,
			  int unavailable)
{
	/* a new key is in neither list: skip the linear removals */
	if (kvs_get(&e->clear, key)) {
		strvec_remove(&e->sensitive, key);
		strvec_remove(&e->unavailable, key);
	}
	kvs_set(&e->clear, key, val);
	if (sensitive)
		strvec_push(&e->sensitive, key);
	if (unavailable)
		strvec_push(&e->unavailable, key);
}

void cfg_logging_release(struct cfg_logging *l)
{
	free(l->driver);
	l->driver = NULL;
	kvs_release(&l->options);
	l->set = 0;
}

/* ---- loading context ---- */

struct loader {
	struct config *c;
	struct source *src;
	struct diags *d;
	struct ydoc *doc;
	struct erb_set erb;
	const char *file; /* main file, for messages without a node */
};

static const char *sval(const struct ynode *n)
{
	return n && ynode_is_scalar(n) && n->kind != Y_NULL ? n->str : NULL;
}

static char *sdup(const struct ynode *n)
{
	const char *s = sval(n);
	return s ? xstrdup(s) : NULL;
}

static int ival(const struct ynode *n, int dflt)
{
	if (!n || n->kind != Y_INT)
		return dflt;
	return atoi(n->str);
}

static int bval(const struct ynode *n, int dflt)
{
	if (!n || n->kind != Y_BOOL)
		return dflt;
	return strcmp(n->str, "true") == 0;
}

static void lerr(struct loader *l, const struct ynode *at, const char *fmt, ...) PLUMB_PRINTF(3, 4);
static void lerr(struct loader *l, const struct ynode *at, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (at)
		diags_err(l->d, at->file, at->line, at->col, "%s", msg);
	else
		diags_err(l->d, l->file, 0, 0, "%s", msg);
	free(msg);
}

/* ---- ERB expansion over the tree ---- */

static int erb_ignored_path(const char *path)
{
	/* builder.* is accepted and ignored (plumb does not build); x-* are extensions. */
	return strncmp(path, "builder", 7) == 0 && (path[7] == '\0' || path[7] == '.') ?
		       1 :
		       strncmp(path, "x-", 2) == 0 && strncmp(path, "x-plumb", 7) != 0;
}

/* A clear env value: env.K, env.clear.K, env.tags.T[.clear].K, and the same
 * under servers.R. and accessories.A. — where a placeholder is harmless (the
 * env entry is marked unavailable instead of being compared). */
static int env_value_path(const char *path)
{
	return strncmp(path, "env.", 4) == 0 || strstr(path, ".env.") != NULL;
}

static void erb_walk(struct loader *l, struct ynode *n, struct ynode **slot, const char *path,
		     int depth)
{
	if (depth > 256)
		return;
	if (ynode_is_scalar(n)) {
		char *out = NULL;
		struct ynode *nn;
		unsigned flags = 0;

		if (!n->str || !erb_has_marker(n->str))
			return;
		if (erb_ignored_path(path))
			return;
		if (erb_expand_flags(&l->erb, n->str, n->file, path, &l->c->trust, l->src->root_dir,
				     &out, &flags, l->d) < 0)
			return;
		nn = ydoc_new_scalar(l->doc, Y_STR, out, n);
		if (!n->quoted)
			ynode_resolve_plain(l->doc, nn, out);
		else
			nn->quoted = 1;
		nn->erb_flags = flags;
		if ((flags & ERB_UNAVAILABLE) && !env_value_path(path))
			strvec_push(&l->c->unavailable_keys, path);
		*slot = nn;
		util_free_secret(out);
		return;
	}
	if (n->kind == Y_SEQ) {
		for (size_t i = 0; i < n->n; i++) {
			char *p = xasprintf("%s[%zu]", path, i);
			erb_walk(l, n->items[i], &n->items[i], p, depth + 1);
			free(p);
		}
	} else if (n->kind == Y_MAP) {
		for (size_t i = 0; i < n->n; i++) {
			char *p;
			if (n->keys[i]->str && erb_has_marker(n->keys[i]->str)) {
				lerr(l, n->keys[i], "ERB is not supported in keys (in %s)",
				     *path ? path : "the top level");
				continue;
			}
			p = *path ? xasprintf("%s.%s", path, n->keys[i]->str) : xstrdup(n->keys[i]->str);
			erb_walk(l, n->vals[i], &n->vals[i], p, depth + 1);
			free(p);
		}
	}
}

/* ---- reading files ---- */

static int load_yaml_file(struct loader *l, const char *relpath, struct ydoc **out, int *missing)
{
	char *text = NULL, *pre = NULL;
	struct plumb_err err = { 0 };
	size_t len = 0, prelen = 0;
	int rc;

	*out = NULL;
	*missing = 0;
	rc = source_read(l->src, relpath, &text, &len, &err);
	if (rc == PLUMB_ENOTFOUND) {
		*missing = 1;
		rc = -1;
		goto out;
	}
	if (rc < 0) {
		diags_err(l->d, relpath, 0, 0, "cannot read: %s", plumb_err_msg(&err));
		goto out;
	}
	if (memchr(text, '\0', len)) {
		diags_err(l->d, relpath, 0, 0, "not a text file (contains NUL bytes)");
		rc = -1;
		goto out;
	}
	rc = erb_extract(relpath, text, len, &pre, &prelen, &l->erb, l->d);
	if (rc < 0)
		goto out;
	rc = ydoc_load_string(out, relpath, pre, prelen, l->d);
out:
	free(text);
	free(pre);
	return rc;
}

static char *overlay_path(const char *file, const char *dest)
{
	size_t len = strlen(file);
	if (len > 4 && strcmp(file + len - 4, ".yml") == 0)
		return xasprintf("%.*s.%s.yml", (int)(len - 4), file, dest);
	if (len > 5 && strcmp(file + len - 5, ".yaml") == 0)
		return xasprintf("%.*s.%s.yaml", (int)(len - 5), file, dest);
	return xasprintf("%s.%s", file, dest);
}

/* ---- model building ---- */

/* Count bounds (Kamal has none): what reaches one container, and the fleet.
 * A host's observation keeps at most OBS_MAX_VARS (4096) entries per
 * container, so a config may not ask for more than that. */
#define CONFIG_MAX_ENV_KEYS 4000
#define CONFIG_MAX_LABELS 4000
#define CONFIG_MAX_HOSTS 4096
/* roles or tags naming an accessory's hosts (each is a walk over the fleet) */
#define CONFIG_MAX_HOST_SPECS 100

/* 0 if the hash or list n holds at most max entries; otherwise an error at
 * the first entry over the bound, naming it, and -1. */
static int count_ok(struct loader *l, const struct ynode *n, size_t max, const char *what)
{
	const struct ynode *at;

	if (!n || (n->kind != Y_MAP && n->kind != Y_SEQ) || n->n <= max)
		return 0;
	at = n->kind == Y_MAP ? n->keys[max] : n->items[max];
	if (at->kind == Y_MAP && at->n) /* a host with tags: name the host */
		at = at->keys[0];
	lerr(l, at, "more than %zu %s (at '%.100s')", max, what, at->str ? at->str : "");
	return -1;
}

static void read_env(struct loader *l, const struct ynode *n, struct cfg_env *e)
{
	const struct ynode *clear, *secret;
	int complex;

	if (!n || n->kind != Y_MAP)
		return;
	complex = ynode_get(n, "clear") || ynode_get(n, "secret") || ynode_get(n, "tags");
	clear = complex ? ynode_get(n, "clear") : n;
	secret = complex ? ynode_get(n, "secret") : NULL;
	if (count_ok(l, clear, CONFIG_MAX_ENV_KEYS, "env keys") < 0 ||
	    count_ok(l, secret, CONFIG_MAX_ENV_KEYS, "secret env keys") < 0)
		return;
	if (clear && clear->kind == Y_MAP)
		for (size_t i = 0; i < clear->n; i++)
			if (ynode_is_scalar(clear->vals[i]))
				env_set_clear(e, clear->keys[i]->str, clear->vals[i]->str,
					      (clear->vals[i]->erb_flags & ERB_SENSITIVE) != 0,
					      (clear->vals[i]->erb_flags & ERB_UNAVAILABLE) != 0);
	if (secret && secret->kind == Y_SEQ) {
		for (size_t i = 0; i < secret->n; i++) {
			const char *s = sval(secret->items[i]);
			const char *colon;
			if (!s)
				continue;
			colon = strchr(s, ':');
			if (colon) {
				char *name = xstrndup(s, (size_t)(colon - s));
				kvs_set(&e->secret, name, colon + 1);
				free(name);
			} else {
				kvs_set(&e->secret, s, s);
			}
		}
	}
}

static void env_merge(struct cfg_env *dst, const struct cfg_env *src)
{
	for (size_t i = 0; i < src->clear.n; i++)
		env_set_clear(dst, src->clear.keys[i], src->clear.vals[i],
			      strvec_contains(&src->sensitive, src->clear.keys[i]),
			      strvec_contains(&src->unavailable, src->clear.keys[i]));
	kvs_copy(&dst->secret, &src->secret);
}

static void read_kvs(const struct ynode *n, struct kvs *out)
{
	if (!n || n->kind != Y_MAP)
		return;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *v = n->vals[i];
		if (ynode_is_scalar(v))
			kvs_set(out, n->keys[i]->str, v->kind == Y_NULL ? "" : v->str);
		else if (v->kind == Y_SEQ) /* e.g. options: {label: [a, b]} — keep as comma list */
			for (size_t j = 0; j < v->n; j++)
				if (ynode_is_scalar(v->items[j])) {
					char *k = xasprintf("%s[%zu]", n->keys[i]->str, j);
					kvs_set(out, k, v->items[j]->str);
					free(k);
				}
	}
}

static void read_labels(struct loader *l, const struct ynode *n, struct kvs *out)
{
	if (count_ok(l, n, CONFIG_MAX_LABELS, "labels") == 0)
		read_kvs(n, out);
}

static void read_strlist(const struct ynode *n, struct strvec *out)
{
	if (!n)
		return;
	if (ynode_is_scalar(n)) {
		if (n->kind != Y_NULL)
			strvec_push(out, n->str);
		return;
	}
	if (n->kind != Y_SEQ)
		return;
	for (size_t i = 0; i < n->n; i++)
		if (sval(n->items[i]))
			strvec_push(out, n->items[i]->str);
}

static void read_logging(const struct ynode *n, struct cfg_logging *lg)
{
	if (!n || n->kind != Y_MAP)
		return;
	lg->set = 1;
	free(lg->driver);
	lg->driver = sdup(ynode_get(n, "driver"));
	read_kvs(ynode_get(n, "options"), &lg->options);
}

static void proxy_init(struct cfg_proxy *p)
{
	memset(p, 0, sizeof(*p));
	p->ssl = p->ssl_redirect = p->forward_headers = p->strip_path_prefix = -1;
	p->buffering_requests = p->buffering_responses = -1;
}

static void proxy_clear(struct cfg_proxy *p)
{
	strvec_release(&p->hosts);
	free(p->ssl_certificate_secret);
	free(p->ssl_private_key_secret);
	strvec_release(&p->path_prefixes);
	free(p->healthcheck_path);
	free(p->max_request_body);
	free(p->max_response_body);
	free(p->buffer_memory);
	strvec_release(&p->log_request_headers);
	strvec_release(&p->log_response_headers);
	kvs_release(&p->run);
	proxy_init(p);
}

static void set_str(char **dst, const struct ynode *n)
{
	const char *s = sval(n);
	if (s) {
		free(*dst);
		*dst = xstrdup(s);
	}
}

static void flatten_into(struct kvs *out, const char *prefix, const struct ynode *n)
{
	if (!n)
		return;
	if (ynode_is_scalar(n)) {
		kvs_set(out, prefix, n->str ? n->str : "");
	} else if (n->kind == Y_SEQ) {
		for (size_t i = 0; i < n->n; i++) {
			char *p = xasprintf("%s[%zu]", prefix, i);
			flatten_into(out, p, n->items[i]);
			free(p);
		}
	} else if (n->kind == Y_MAP) {
		for (size_t i = 0; i < n->n; i++) {
			char *p = *prefix ? xasprintf("%s.%s", prefix, n->keys[i]->str) :
					    xstrdup(n->keys[i]->str);
			flatten_into(out, p, n->vals[i]);
			free(p);
		}
	}
}

/* Applies a proxy hash over p (a role's proxy hash over the root's). */
static void read_proxy(const struct ynode *n, struct cfg_proxy *p)
{
	const struct ynode *v, *hc, *buf, *lg, *ssl;

	if (!n || n->kind != Y_MAP)
		return;
	p->set = 1;
	if ((v = ynode_get(n, "host")) && sval(v)) {
		strvec_release(&p->hosts);
		/* Kamal splits host: "a.com,b.com" on commas */
		const char *s = v->str;
		while (*s) {
			size_t len = strcspn(s, ",");
			char *h = xstrndup(s, len);
			char *t = h;
			while (isspace((unsigned char)*t))
				t++;
			if (*t)
				strvec_push(&p->hosts, t);
			free(h);
			s += len;
			if (*s == ',')
				s++;
		}
	}
	if ((v = ynode_get(n, "hosts")) && v->kind == Y_SEQ) {
		strvec_release(&p->hosts);
		read_strlist(v, &p->hosts);
	}
	if ((ssl = ynode_get(n, "ssl"))) {
		if (ssl->kind == Y_BOOL) {
			p->ssl = bval(ssl, 0);
		} else if (ssl->kind == Y_MAP) {
			p->ssl = 1;
			set_str(&p->ssl_certificate_secret, ynode_get(ssl, "certificate_pem"));
			set_str(&p->ssl_private_key_secret, ynode_get(ssl, "private_key_pem"));
		}
	}
	p->ssl_redirect = bval(ynode_get(n, "ssl_redirect"), p->ssl_redirect);
	p->app_port = ival(ynode_get(n, "app_port"), p->app_port);
	p->forward_headers = bval(ynode_get(n, "forward_headers"), p->forward_headers);
	p->response_timeout = ival(ynode_get(n, "response_timeout"), p->response_timeout);
	if ((v = ynode_get(n, "path_prefix")) && sval(v)) {
		strvec_release(&p->path_prefixes);
		const char *s = v->str;
		while (*s) {
			size_t len = strcspn(s, ",");
			if (len)
				strvec_push_take(&p->path_prefixes, xstrndup(s, len));
			s += len;
			if (*s == ',')
				s++;
		}
	}
	if ((v = ynode_get(n, "path_prefixes")) && v->kind == Y_SEQ) {
		strvec_release(&p->path_prefixes);
		read_strlist(v, &p->path_prefixes);
	}
	p->strip_path_prefix = bval(ynode_get(n, "strip_path_prefix"), p->strip_path_prefix);
	if ((hc = ynode_get(n, "healthcheck")) && hc->kind == Y_MAP) {
		set_str(&p->healthcheck_path, ynode_get(hc, "path"));
		p->healthcheck_interval = ival(ynode_get(hc, "interval"), p->healthcheck_interval);
		p->healthcheck_timeout = ival(ynode_get(hc, "timeout"), p->healthcheck_timeout);
	}
	if ((buf = ynode_get(n, "buffering")) && buf->kind == Y_MAP) {
		p->buffering_requests = bval(ynode_get(buf, "requests"), p->buffering_requests);
		p->buffering_responses = bval(ynode_get(buf, "responses"), p->buffering_responses);
		set_str(&p->max_request_body, ynode_get(buf, "max_request_body"));
		set_str(&p->max_response_body, ynode_get(buf, "max_response_body"));
		set_str(&p->buffer_memory, ynode_get(buf, "memory"));
	}
	if ((lg = ynode_get(n, "logging")) && lg->kind == Y_MAP) {
		if ((v = ynode_get(lg, "request_headers"))) {
			strvec_release(&p->log_request_headers);
			read_strlist(v, &p->log_request_headers);
		}
		if ((v = ynode_get(lg, "response_headers"))) {
			strvec_release(&p->log_response_headers);
			read_strlist(v, &p->log_response_headers);
		}
	}
	if ((v = ynode_get(n, "run")))
		flatten_into(&p->run, "", v);
}

static void read_hosts(struct loader *l, const struct ynode *n, struct cfg_host **hosts,
		       size_t *nhosts)
{
	if (!n || n->kind != Y_SEQ || count_ok(l, n, CONFIG_MAX_HOSTS, "hosts") < 0)
		return;
	*hosts = xcalloc(n->n, sizeof(**hosts));
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *h = n->items[i];
		struct cfg_host *out = &(*hosts)[*nhosts];

		if (ynode_is_scalar(h) && h->kind != Y_NULL) {
			out->addr = xstrdup(h->str);
		} else if (h->kind == Y_MAP && h->n == 1) {
			out->addr = xstrdup(h->keys[0]->str);
			read_strlist(h->vals[0], &out->tags);
		} else {
			continue;
		}
		(*nhosts)++;
	}
}

static int cmp_role(const void *a, const void *b)
{
	return strcmp(((const struct cfg_role *)a)->name, ((const struct cfg_role *)b)->name);
}

static void read_roles(struct loader *l, const struct ynode *servers)
{
	struct config *c = l->c;

	if (!servers)
		return;
	if (servers->kind == Y_SEQ) {
		c->roles = xcalloc(1, sizeof(*c->roles));
		c->nroles = 1;
		c->roles[0].name = xstrdup("web");
		c->roles[0].line = servers->line;
		read_hosts(l, servers, &c->roles[0].hosts, &c->roles[0].nhosts);
		c->roles[0].proxy_setting = -1;
		proxy_init(&c->roles[0].proxy);
		return;
	}
	if (servers->kind != Y_MAP)
		return;
	c->roles = xcalloc(servers->n ? servers->n : 1, sizeof(*c->roles));
	for (size_t i = 0; i < servers->n; i++) {
		const struct ynode *rn = servers->vals[i];
		struct cfg_role *r = &c->roles[c->nroles++];
		const struct ynode *px;

		r->name = xstrdup(servers->keys[i]->str);
		r->line = servers->keys[i]->line;
		r->proxy_setting = -1;
		proxy_init(&r->proxy);
		if (rn->kind == Y_SEQ) {
			read_hosts(l, rn, &r->hosts, &r->nhosts);
			continue;
		}
		if (rn->kind != Y_MAP)
			continue;
		read_hosts(l, ynode_get(rn, "hosts"), &r->hosts, &r->nhosts);
		r->cmd = sdup(ynode_get(rn, "cmd"));
		read_env(l, ynode_get(rn, "env"), &r->env);
		read_labels(l, ynode_get(rn, "labels"), &r->labels);
		read_kvs(ynode_get(rn, "options"), &r->options);
		read_logging(ynode_get(rn, "logging"), &r->logging);
		r->stop_timeout = ival(ynode_get(rn, "stop_timeout"), 0);
		r->asset_path = sdup(ynode_get(rn, "asset_path"));
		if ((px = ynode_get(rn, "proxy"))) {
			if (px->kind == Y_BOOL)
				r->proxy_setting = bval(px, 0);
			else if (px->kind == Y_MAP)
				r->proxy_setting = 1;
		}
	}
	{
		size_t total = 0;

		for (size_t i = 0; i < c->nroles; i++)
			total += c->roles[i].nhosts;
		if (total > CONFIG_MAX_HOSTS)
			lerr(l, servers, "servers: more than %d hosts in all roles (%zu)",
			     CONFIG_MAX_HOSTS, total);
	}
	qsort(c->roles, c->nroles, sizeof(*c->roles), cmp_role);
}

static void resolve_role_proxies(struct loader *l, const struct ynode *servers, const struct ynode *root_proxy)
{
	struct config *c = l->c;

	for (size_t i = 0; i < c->nroles; i++) {
		struct cfg_role *r = &c->roles[i];
		int primary = strcmp(r->name, c->primary_role) == 0;
		const struct ynode *rn = servers && servers->kind == Y_MAP ? ynode_get(servers, r->name) : NULL;
		const struct ynode *px = rn && rn->kind == Y_MAP ? ynode_get(rn, "proxy") : NULL;

		r->running_proxy = r->proxy_setting == -1 ? primary : r->proxy_setting;
		if (!r->running_proxy)
			continue;
		read_proxy(root_proxy, &r->proxy);
		if (px && px->kind == Y_MAP)
			read_proxy(px, &r->proxy);
		r->proxy.set = 1;
	}
}

static void read_file_specs(const struct ynode *n, struct cfg_file_spec **out, size_t *nout)
{
	if (!n || n->kind != Y_SEQ)
		return;
	*out = xcalloc(n->n ? n->n : 1, sizeof(**out));
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *f = n->items[i];
		struct cfg_file_spec *s = &(*out)[*nout];

		if (f->kind == Y_MAP) {
			s->local = sdup(ynode_get(f, "local"));
			s->remote = sdup(ynode_get(f, "remote"));
			s->mode = sdup(ynode_get(f, "mode"));
			s->owner = sdup(ynode_get(f, "owner"));
			s->options = sdup(ynode_get(f, "options"));
			if (!s->local || !s->remote) {
				free(s->local);
				free(s->remote);
				free(s->mode);
				free(s->owner);
				free(s->options);
				memset(s, 0, sizeof(*s));
				continue;
			}
		} else if (sval(f)) {
			const char *str = f->str, *c1 = strchr(str, ':'), *c2;
			if (!c1)
				continue;
			s->local = xstrndup(str, (size_t)(c1 - str));
			c2 = strchr(c1 + 1, ':');
			if (c2) {
				s->remote = xstrndup(c1 + 1, (size_t)(c2 - c1 - 1));
				s->options = xstrdup(c2 + 1);
			} else {
				s->remote = xstrdup(c1 + 1);
			}
		} else {
			continue;
		}
		(*nout)++;
	}
}

static void hosts_with_tag(const struct config *c, const char *tag, struct strvec *out)
{
	for (size_t i = 0; i < c->nroles; i++)
		for (size_t j = 0; j < c->roles[i].nhosts; j++)
			if (strvec_contains(&c->roles[i].hosts[j].tags, tag) &&
			    !strvec_contains(out, c->roles[i].hosts[j].addr))
				strvec_push(out, c->roles[i].hosts[j].addr);
}

static void add_role_hosts(struct loader *l, const struct ynode *at, const char *role, struct strvec *out)
{
	const struct cfg_role *r = config_role(l->c, role);

	if (!r) {
		lerr(l, at, "accessory role '%s' is not a role in servers", role);
		return;
	}
	for (size_t j = 0; j < r->nhosts; j++)
		if (!strvec_contains(out, r->hosts[j].addr))
			strvec_push(out, r->hosts[j].addr);
}

/*
 * x-plumb, typed. The validator has checked keys and types (file:line); this
 * adds what it cannot know: an accessory must exist, a registry host must be
 * "host[:port]".
 */
static void read_xplumb(struct loader *l, const struct ynode *x)
{
	struct xplumb *xp = &l->c->xplumb;
	const struct ynode *ssh, *reg, *acc, *v;

	xp->renames = 1;
	if (!x || x->kind != Y_MAP)
		return;
	xp->version = sdup(ynode_get(x, "version"));
	xp->prune = bval(ynode_get(x, "prune"), 0);
	xp->renames = bval(ynode_get(x, "renames"), 1);
	if ((v = ynode_get(x, "hooks")) && v->kind == Y_MAP && (v = ynode_get(v, "timeout"))) {
		xp->hooks_timeout = ival(v, 0);
		if (xp->hooks_timeout <= 0 || xp->hooks_timeout > 86400)
			lerr(l, v, "x-plumb.hooks.timeout: want seconds from 1 to 86400");
	}
	if ((ssh = ynode_get(x, "ssh")) && ssh->kind == Y_MAP) {
		xp->ssh_known_hosts = sdup(ynode_get(ssh, "known_hosts"));
		xp->ssh_accept_new_host_keys = bval(ynode_get(ssh, "accept_new_host_keys"), 0);
		if (xp->ssh_known_hosts && !*xp->ssh_known_hosts)
			lerr(l, ynode_get(ssh, "known_hosts"), "x-plumb.ssh.known_hosts: empty path");
	}
	if ((reg = ynode_get(x, "registry")) && reg->kind == Y_MAP &&
	    (v = ynode_get(reg, "insecure")) && v->kind == Y_SEQ) {
		for (size_t i = 0; i < v->n; i++) {
			const char *h = sval(v->items[i]);
			if (!h)
				continue;
			if (!*h || strpbrk(h, "/@ \t"))
				lerr(l, v->items[i], "x-plumb.registry.insecure[%zu]: '%s' is not host or host:port",
				     i, h);
			else
				strvec_push(&xp->registry_insecure, h);
		}
	}
	if ((acc = ynode_get(x, "accessories")) && acc->kind == Y_MAP) {
		xp->accessories = xcalloc(acc->n ? acc->n : 1, sizeof(*xp->accessories));
		for (size_t i = 0; i < acc->n; i++) {
			const char *name = acc->keys[i]->str;
			struct xplumb_accessory *xa;
			size_t k;

			for (k = 0; k < l->c->naccessories; k++)
				if (!strcmp(l->c->accessories[k].name, name))
					break;
			if (k == l->c->naccessories) {
				lerr(l, acc->keys[i], "x-plumb.accessories.%s: no accessory '%s' in accessories", name,
				     name);
				continue;
			}
			xa = &xp->accessories[xp->naccessories++];
			xa->name = xstrdup(name);
			xa->pin_digest = bval(ynode_get(acc->vals[i], "pin_digest"), 0);
			xa->snapshot = bval(ynode_get(acc->vals[i], "snapshot"), 1);
			xa->watch_replace = bval(ynode_get(acc->vals[i], "watch_replace"), 0);
		}
	}
}

const struct xplumb_accessory *config_xplumb_accessory(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->xplumb.naccessories; i++)
		if (!strcmp(c->xplumb.accessories[i].name, name))
			return &c->xplumb.accessories[i];
	return NULL;
}

static void read_accessories(struct loader *l, const struct ynode *acc)
{
	struct config *c = l->c;

	if (!acc || acc->kind != Y_MAP)
		return;
	c->accessories = xcalloc(acc->n ? acc->n : 1, sizeof(*c->accessories));
	for (size_t i = 0; i < acc->n; i++) {
		const struct ynode *an = acc->vals[i], *v, *reg;
		struct cfg_accessory *a;
		int specs = 0;

		if (an->kind != Y_MAP)
			continue;
		a = &c->accessories[c->naccessories++];
		a->name = xstrdup(acc->keys[i]->str);
		a->line = acc->keys[i]->line;
		proxy_init(&a->proxy);
		a->service = sdup(ynode_get(an, "service"));
		if (!a->service)
			a->service = xasprintf("%s-%s", c->service ? c->service : "", a->name);
		a->image = sdup(ynode_get(an, "image"));
		if (!a->image)
			lerr(l, acc->keys[i], "accessories.%s: missing required key 'image'", a->name);
		a->cmd = sdup(ynode_get(an, "cmd"));
		if ((v = ynode_get(an, "port")) && sval(v)) {
			if (strchr(v->str, ':'))
				strvec_push(&a->ports, v->str);
			else
				strvec_push_take(&a->ports, xasprintf("%s:%s", v->str, v->str));
		}
		read_labels(l, ynode_get(an, "labels"), &a->labels);
		read_kvs(ynode_get(an, "options"), &a->options);
		read_env(l, ynode_get(an, "env"), &a->env);
		read_file_specs(ynode_get(an, "files"), &a->files, &a->nfiles);
		read_file_specs(ynode_get(an, "directories"), &a->directories, &a->ndirectories);
		read_strlist(ynode_get(an, "volumes"), &a->volumes);
		a->network = sdup(ynode_get(an, "network"));
		if (!a->network)
			a->network = xstrdup("kamal");
		if ((reg = ynode_get(an, "registry")) && reg->kind == Y_MAP) {
			const struct ynode *u = ynode_get(reg, "username"), *p = ynode_get(reg, "password");
			a->registry_server = sdup(ynode_get(reg, "server"));
			if (u && u->kind == Y_SEQ && u->n == 1)
				a->registry_username = sdup(u->items[0]);
			else
				a->registry_username = sdup(u);
			if (p && p->kind == Y_SEQ && p->n == 1)
				a->registry_password_secret = sdup(p->items[0]);
		}
		read_proxy(ynode_get(an, "proxy"), &a->proxy);

		/* hosts: exactly one of host, hosts, role, roles, tag, tags */
		if ((v = ynode_get(an, "host")) && sval(v)) {
			strvec_push(&a->hosts, v->str);
			specs++;
		}
		if ((v = ynode_get(an, "hosts")) && v->kind == Y_SEQ) {
			struct cfg_host *hs = NULL;
			size_t nh = 0;
			read_hosts(l, v, &hs, &nh);
			for (size_t j = 0; j < nh; j++) {
				if (!strvec_contains(&a->hosts, hs[j].addr))
					strvec_push(&a->hosts, hs[j].addr);
				free(hs[j].addr);
				strvec_release(&hs[j].tags);
			}
			free(hs);
			specs++;
		}
		if ((v = ynode_get(an, "role")) && sval(v)) {
			add_role_hosts(l, v, v->str, &a->hosts);
			specs++;
		}
		if ((v = ynode_get(an, "roles")) && v->kind == Y_SEQ) {
			if (count_ok(l, v, CONFIG_MAX_HOST_SPECS, "roles") == 0)
				for (size_t j = 0; j < v->n; j++)
					if (sval(v->items[j]))
						add_role_hosts(l, v->items[j], v->items[j]->str, &a->hosts);
			specs++;
		}
		if ((v = ynode_get(an, "tag")) && sval(v)) {
			hosts_with_tag(c, v->str, &a->hosts);
			specs++;
		}
		if ((v = ynode_get(an, "tags")) && v->kind == Y_SEQ) {
			if (count_ok(l, v, CONFIG_MAX_HOST_SPECS, "tags") == 0)
				for (size_t j = 0; j < v->n; j++)
					if (sval(v->items[j]))
						hosts_with_tag(c, v->items[j]->str, &a->hosts);
			specs++;
		}
		if (specs != 1)
			lerr(l, acc->keys[i],
			     "accessories.%s: specify one of `host`, `hosts`, `role`, `roles`, `tag` or `tags`",
			     a->name);
	}
}

static void read_registry(struct loader *l, const struct ynode *reg)
{
	struct cfg_registry *r = &l->c->registry;
	const struct ynode *u, *p;

	if (!reg || reg->kind != Y_MAP)
		return;
	r->server = sdup(ynode_get(reg, "server"));
	if (r->server && strncmp(r->server, "localhost", 9) == 0 &&
	    (r->server[9] == '\0' || r->server[9] == ':')) {
		r->local = 1;
		r->local_port = r->server[9] == ':' ? atoi(r->server + 10) : 80;
	}
	u = ynode_get(reg, "username");
	p = ynode_get(reg, "password");
	if (u && u->kind == Y_SEQ && u->n == 1)
		r->username_secret = sdup(u->items[0]);
	else
		r->username = sdup(u);
	if (p && p->kind == Y_SEQ && p->n == 1)
		r->password_secret = sdup(p->items[0]);
	else
		r->password = sdup(p);
	if (!r->local) {
		if (!r->username && !r->username_secret)
			lerr(l, reg, "registry.username: is required");
		if (!r->password && !r->password_secret)
			lerr(l, reg, "registry.password: is required");
	}
	if (!l->c->trust.trusted && (r->password_secret || r->username_secret))
		trust_note(&l->c->trust, TRUST_OFF_REGISTRY_CREDS);
}

static void read_ssh(struct loader *l, const struct ynode *n)
{
	struct cfg_ssh *s = &l->c->ssh;
	const struct ynode *v;

	s->user = xstrdup("root");
	s->port = 22;
	s->keys_only = -1;
	s->forward_agent = -1;
	if (!n || n->kind != Y_MAP)
		return;
	set_str(&s->user, ynode_get(n, "user"));
	if ((v = ynode_get(n, "port")) && sval(v)) {
		char *end;
		long port = strtol(v->str, &end, 10);
		if (*end || port < 1 || port > 65535)
			lerr(l, v, "ssh.port: should be a port number (1-65535), got '%s'", v->str);
		else
			s->port = (int)port;
	}
	s->proxy = sdup(ynode_get(n, "proxy"));
	s->proxy_command = sdup(ynode_get(n, "proxy_command"));
	read_strlist(ynode_get(n, "keys"), &s->keys);
	read_strlist(ynode_get(n, "key_data"), &s->key_data);
	s->keys_only = bval(ynode_get(n, "keys_only"), -1);
	read_strlist(ynode_get(n, "config"), &s->config);
	s->log_level = sdup(ynode_get(n, "log_level"));
	s->forward_agent = bval(ynode_get(n, "forward_agent"), -1);
	if (!l->c->trust.trusted) {
		if (s->proxy_command)
			trust_note(&l->c->trust, TRUST_OFF_PROXY_COMMAND);
		if (s->config.n && !(s->config.n == 1 && strcmp(s->config.v[0], "false") == 0))
			trust_note(&l->c->trust, TRUST_OFF_SSH_CONFIG);
		if (s->key_data.n)
			trust_note(&l->c->trust, TRUST_OFF_KEY_DATA);
		if (s->forward_agent == 1)
			trust_note(&l->c->trust, TRUST_OFF_AGENT_FORWARD);
		for (size_t i = 0; i < s->keys.n; i++)
			if (!trust_path_is_inside(s->keys.v[i]))
				trust_note(&l->c->trust, TRUST_OFF_SSH_KEYS);
	}
}

/* builder.arch: its first value, unless it is ERB (never evaluated under builder). */
static char *read_builder_arch(const struct ynode *b)
{
	const struct ynode *v = b && b->kind == Y_MAP ? ynode_get(b, "arch") : NULL;
	const char *s;

	if (v && v->kind == Y_SEQ)
		v = v->n ? v->items[0] : NULL;
	s = sval(v);
	if (!s || !*s || erb_has_marker(s))
		return NULL;
	return xstrdup(s);
}

static void read_boot(struct loader *l, const struct ynode *n)
{
	struct cfg_boot *b = &l->c->boot;
	const struct ynode *v;

	b->parallel_roles = -1;
	if (!n || n->kind != Y_MAP)
		return;
	if ((v = ynode_get(n, "limit")) && sval(v)) {
		char *end;
		long lim = strtol(v->str, &end, 10);
		if (end == v->str || lim < 1 || (*end && strcmp(end, "%") != 0) ||
		    (*end == '%' && lim > 100))
			lerr(l, v, "boot.limit: should be a number of hosts or a percentage like \"25%%\", got '%s'",
			     v->str);
		else {
			b->limit = (int)lim;
			b->limit_percent = *end == '%';
		}
	}
	b->wait = ival(ynode_get(n, "wait"), 0);
	b->parallel_roles = bval(ynode_get(n, "parallel_roles"), -1);
}

/* Compares dotted versions numerically ("2.10.0" > "2.9"); non-numeric parts compare as 0. */
static int version_cmp(const char *a, const char *b)
{
	while (*a || *b) {
		long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
		if (x != y)
			return x < y ? -1 : 1;
		while (*a && *a != '.')
			a++;
		while (*b && *b != '.')
			b++;
		if (*a == '.')
			a++;
		if (*b == '.')
			b++;
	}
	return 0;
}

static int path_outside(const char *p)
{
	return p && !source_path_is_inside(p);
}

static void check_rules(struct loader *l, const struct ynode *root)
{
	struct config *c = l->c;
	const struct cfg_role *primary;

	if (c->require_destination && !c->destination)
		lerr(l, ynode_get(root, "require_destination"),
		     "require_destination: this configuration requires a destination (-d NAME)");
	if (!c->service) {
		lerr(l, root, "missing required key 'service'");
	} else {
		for (const char *p = c->service; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
				lerr(l, ynode_get(root, "service"),
				     "service: can only include alphanumeric characters, hyphens, and underscores");
				break;
			}
	}
	if (!c->image)
		lerr(l, root, "missing required key 'image'");
	if (!ynode_get(root, "registry"))
		lerr(l, root, "missing required key 'registry'");
	if (!ynode_get(root, "servers") && !c->naccessories)
		lerr(l, root, "missing required key 'servers'");
	if (c->minimum_version && version_cmp(c->minimum_version, PLUMB_KAMAL_COMPAT) > 0)
		lerr(l, ynode_get(root, "minimum_version"),
		     "minimum_version: this configuration needs Kamal %s; plumb implements Kamal %s's behaviour",
		     c->minimum_version, PLUMB_KAMAL_COMPAT);
	if (c->retain_containers < 1)
		lerr(l, ynode_get(root, "retain_containers"), "retain_containers: must retain at least 1 container");
	if (c->nroles) {
		primary = config_primary_role(c);
		if (!primary) {
			lerr(l, ynode_get(root, "primary_role") ? ynode_get(root, "primary_role") : ynode_get(root, "servers"),
			     "the primary_role %s isn't defined", c->primary_role);
		} else if (!primary->nhosts) {
			lerr(l, ynode_get(root, "servers"), "no servers specified for the %s primary_role",
			     primary->name);
		}
		if (!c->allow_empty_roles)
			for (size_t i = 0; i < c->nroles; i++)
				if (!c->roles[i].nhosts && (!primary || &c->roles[i] != primary))
					lerr(l, ynode_get(root, "servers"),
					     "no servers specified for the %s role (allow them with allow_empty_roles: true)",
					     c->roles[i].name);
	} else if (ynode_get(root, "servers")) {
		lerr(l, ynode_get(root, "servers"), "servers: no roles or hosts given");
	}
	/* proxy rules */
	for (size_t i = 0; i < c->nroles; i++) {
		const struct cfg_role *r = &c->roles[i];
		if (!r->running_proxy)
			continue;
		if (r->proxy.ssl == 1 && !r->proxy.hosts.n)
			lerr(l, ynode_get(root, "servers"), "servers.%s.proxy: must set a host to enable automatic SSL",
			     r->name);
		if (r->proxy.ssl == 1 && r->nhosts > 1 && !r->proxy.ssl_certificate_secret)
			lerr(l, ynode_get(root, "servers") ? ynode_get(root, "servers") : root,
			     "servers.%s: SSL is only supported on a single server unless you provide custom certificates, found %zu servers for role %s (terminate TLS at a load balancer instead)",
			     r->name, r->nhosts, r->name);
		if (kvs_get(&r->options, "restart"))
			lerr(l, ynode_get(root, "servers"),
			     "servers.%s.options: cannot set restart policy in docker options, unless-stopped is required",
			     r->name);
	}
	for (size_t i = 0; i < c->nroles; i++)
		for (size_t j = i + 1; j < c->nroles; j++) {
			const struct cfg_role *a = &c->roles[i], *b = &c->roles[j];
			if (!a->running_proxy || !b->running_proxy || a->proxy.ssl != 1 || b->proxy.ssl != 1)
				continue;
			for (size_t x = 0; x < a->proxy.hosts.n; x++)
				if (strvec_contains(&b->proxy.hosts, a->proxy.hosts.v[x]))
					lerr(l, ynode_get(root, "servers"),
					     "different roles can't share the same host for SSL: %s",
					     a->proxy.hosts.v[x]);
		}
	{
		/* kamal-proxy runs once per host: every role and accessory with a proxy
		 * on one host must agree on proxy.run */
		struct strvec hosts = { 0 };
		config_all_hosts(c, &hosts);
		for (size_t h = 0; h < hosts.n; h++) {
			const struct kvs *first = NULL;
			const char *first_name = NULL;
			int conflict = 0;
			for (size_t i = 0; i < c->nroles && !conflict; i++) {
				const struct cfg_role *r = &c->roles[i];
				int on = 0;
				for (size_t j = 0; j < r->nhosts; j++)
					on |= strcmp(r->hosts[j].addr, hosts.v[h]) == 0;
				if (!on || !r->running_proxy)
					continue;
				if (!first) {
					first = &r->proxy.run;
					first_name = r->name;
				}
			}
			for (size_t i = 0; i < c->naccessories && !conflict; i++) {
				const struct cfg_accessory *a = &c->accessories[i];
				const struct kvs *run = &a->proxy.run;
				if (!a->proxy.set || !strvec_contains(&a->hosts, hosts.v[h]))
					continue;
				if (!first) {
					first = run;
					first_name = a->name;
					continue;
				}
				if (first->n != run->n)
					conflict = 1;
				for (size_t k = 0; k < run->n && !conflict; k++) {
					const char *o = kvs_get(first, run->keys[k]);
					if (!o || strcmp(o, run->vals[k]) != 0)
						conflict = 1;
				}
				if (conflict)
					lerr(l, ynode_get(root, "accessories"),
					     "conflicting proxy run configurations on host %s (%s and accessory %s): kamal-proxy runs once per host",
					     hosts.v[h], first_name, a->name);
			}
		}
		strvec_release(&hosts);
	}
	/* trust: paths outside the repository */
	if (!c->trust.trusted) {
		int outside = path_outside(c->secrets_path) || path_outside(c->hooks_path);
		for (size_t i = 0; i < c->naccessories; i++)
			for (size_t j = 0; j < c->accessories[i].nfiles; j++)
				outside |= path_outside(c->accessories[i].files[j].local);
		if (outside)
			trust_note(&c->trust, TRUST_OFF_OUTSIDE_PATH);
	}
}

static void read_model(struct loader *l, const struct ynode *root)
{
	struct config *c = l->c;
	const struct ynode *v, *env;

	c->service = sdup(ynode_get(root, "service"));
	c->image = sdup(ynode_get(root, "image"));
	read_labels(l, ynode_get(root, "labels"), &c->labels);
	read_strlist(ynode_get(root, "volumes"), &c->volumes);
	read_registry(l, ynode_get(root, "registry"));
	c->primary_role = sdup(ynode_get(root, "primary_role"));
	if (!c->primary_role)
		c->primary_role = xstrdup("web");
	c->allow_empty_roles = bval(ynode_get(root, "allow_empty_roles"), 0);
	read_roles(l, ynode_get(root, "servers"));
	env = ynode_get(root, "env");
	read_env(l, env, &c->env);
	if (env && env->kind == Y_MAP && (v = ynode_get(env, "tags")) && v->kind == Y_MAP) {
		c->env_tags = xcalloc(v->n ? v->n : 1, sizeof(*c->env_tags));
		for (size_t i = 0; i < v->n; i++) {
			struct cfg_env_tag *t = &c->env_tags[c->nenv_tags++];
			t->tag = xstrdup(v->keys[i]->str);
			read_env(l, v->vals[i], &t->env);
		}
	}
	proxy_init(&c->proxy);
	if ((v = ynode_get(root, "proxy")) && v->kind == Y_MAP) {
		read_proxy(v, &c->proxy);
		c->proxy_set = 1;
	}
	resolve_role_proxies(l, ynode_get(root, "servers"), ynode_get(root, "proxy"));
	read_ssh(l, ynode_get(root, "ssh"));
	read_boot(l, ynode_get(root, "boot"));
	read_logging(ynode_get(root, "logging"), &c->logging);
	read_kvs(ynode_get(root, "aliases"), &c->aliases);
	c->hooks_path = sdup(ynode_get(root, "hooks_path"));
	if (!c->hooks_path)
		c->hooks_path = xstrdup(".kamal/hooks");
	c->secrets_path = sdup(ynode_get(root, "secrets_path"));
	if (!c->secrets_path)
		c->secrets_path = xstrdup(".kamal/secrets");
	c->asset_path = sdup(ynode_get(root, "asset_path"));
	c->error_pages_path = sdup(ynode_get(root, "error_pages_path"));
	c->require_destination = bval(ynode_get(root, "require_destination"), 0);
	c->minimum_version = sdup(ynode_get(root, "minimum_version"));
	c->builder_arch = read_builder_arch(ynode_get(root, "builder"));
	c->retain_containers = ival(ynode_get(root, "retain_containers"), 5);
	c->readiness_delay = ival(ynode_get(root, "readiness_delay"), 7);
	c->deploy_timeout = ival(ynode_get(root, "deploy_timeout"), 30);
	c->drain_timeout = ival(ynode_get(root, "drain_timeout"), 30);
	c->stop_timeout = ival(ynode_get(root, "stop_timeout"), 0);
	read_kvs(ynode_get(root, "sshkit"), &c->sshkit);
	flatten_into(&c->x_plumb, "", ynode_get(root, "x-plumb"));
	read_accessories(l, ynode_get(root, "accessories"));
	read_xplumb(l, ynode_get(root, "x-plumb"));
	if (!c->trust.trusted && c->xplumb.ssh_accept_new_host_keys)
		trust_note(&c->trust, TRUST_OFF_ACCEPT_HOST_KEYS);
}

int config_load(struct config **out, struct source *src, const struct config_opts *o,
		struct diags *d)
{
	struct loader l;
	struct config *c = xcalloc(1, sizeof(*c));
	struct ydoc *over = NULL;
	struct ynode *root;
	size_t errors_before = d->errors;
	int missing = 0;

	*out = NULL;
	memset(&l, 0, sizeof(l));
	l.c = c;
	l.src = src;
	l.d = d;
	c->file = xstrdup(o->file ? o->file : "config/deploy.yml");
	l.file = c->file;
	c->destination = o->destination ? xstrdup(o->destination) : NULL;
	trust_init(&c->trust, o->trusted);
	c->trust.getenv_fn = o->getenv_fn;
	c->trust.getenv_ctx = o->getenv_ctx;
	c->trust.run_fn = o->run_fn;
	c->trust.run_ctx = o->run_ctx;

	if (c->destination) {
		for (const char *p = c->destination; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
				diags_err(d, NULL, 0, 0, "destination '%s': only letters, digits, '-' and '_' are allowed",
					  c->destination);
				goto fail;
			}
	}
	if (load_yaml_file(&l, c->file, &l.doc, &missing) < 0) {
		if (missing)
			diags_err(d, c->file, 0, 0, "configuration file not found in %s", src->label);
		goto fail;
	}
	if (c->destination) {
		char *op = overlay_path(c->file, c->destination);
		int rc = load_yaml_file(&l, op, &over, &missing);
		if (rc < 0 && missing)
			diags_err(d, op, 0, 0, "destination '%s': configuration file not found in %s",
				  c->destination, src->label);
		free(op);
		if (rc < 0)
			goto fail;
		if (ydoc_root(l.doc)->kind == Y_MAP && ydoc_root(over)->kind == Y_MAP) {
			ydoc_merge_overlay(l.doc, over);
		} else if (ydoc_root(over)->kind != Y_NULL) {
			struct ynode *r = ydoc_root(over);
			diags_err(d, r->file, r->line, r->col, "the destination file should be a hash of keys");
			ydoc_free(over);
			goto fail;
		} else {
			ydoc_free(over);
		}
		over = NULL;
	}
	root = ydoc_root(l.doc);
	if (root->kind == Y_MAP) {
		struct ynode *slot = root;
		erb_walk(&l, root, &slot, "", 0);
	}
	if (config_schema_validate(root, d) > 0 || d->errors > errors_before)
		goto fail;
	read_model(&l, root);
	if (secrets_load(&c->secrets, src, c->secrets_path, c->destination, &c->trust, d) < 0)
		goto fail;
	check_rules(&l, root);
	if (d->errors > errors_before)
		goto fail;
	ydoc_free(l.doc);
	erb_set_release(&l.erb);
	*out = c;
	return 0;
fail:
	ydoc_free(l.doc);
	erb_set_release(&l.erb);
	config_free(c);
	return -1;
}

/* ---- accessors ---- */

const struct cfg_role *config_role(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nroles; i++)
		if (strcmp(c->roles[i].name, name) == 0)
			return &c->roles[i];
	return NULL;
}

const struct cfg_role *config_primary_role(const struct config *c)
{
	return config_role(c, c->primary_role ? c->primary_role : "web");
}

void config_all_hosts(const struct config *c, struct strvec *out)
{
	const struct cfg_role *primary = config_primary_role(c);

	/* the primary role's hosts first (they boot first), then the others */
	for (size_t j = 0; primary && j < primary->nhosts; j++)
		if (!strvec_contains(out, primary->hosts[j].addr))
			strvec_push(out, primary->hosts[j].addr);
	for (size_t i = 0; i < c->nroles; i++)
		for (size_t j = 0; j < c->roles[i].nhosts; j++)
			if (!strvec_contains(out, c->roles[i].hosts[j].addr))
				strvec_push(out, c->roles[i].hosts[j].addr);
	for (size_t i = 0; i < c->naccessories; i++)
		for (size_t j = 0; j < c->accessories[i].hosts.n; j++)
			if (!strvec_contains(out, c->accessories[i].hosts.v[j]))
				strvec_push(out, c->accessories[i].hosts.v[j]);
}

void config_role_env(const struct config *c, const struct cfg_role *r, const char *host,
		     struct cfg_env *out)
{
	env_merge(out, &c->env);
	env_merge(out, &r->env);
	for (size_t j = 0; j < r->nhosts; j++) {
		const struct cfg_host *h = &r->hosts[j];
		if (!host || strcmp(h->addr, host) != 0)
			continue;
		for (size_t t = 0; t < h->tags.n; t++)
			for (size_t k = 0; k < c->nenv_tags; k++)
				if (strcmp(c->env_tags[k].tag, h->tags.v[t]) == 0)
					env_merge(out, &c->env_tags[k].env);
		break;
	}
}

void config_role_labels(const struct config *c, const struct cfg_role *r, struct kvs *out)
{
	kvs_set(out, "service", c->service);
	kvs_set(out, "role", r->name);
	kvs_set(out, "destination", c->destination ? c->destination : "");
	kvs_copy(out, &c->labels);
	kvs_copy(out, &r->labels);
}

void config_role_logging(const struct config *c, const struct cfg_role *r, struct cfg_logging *out)
{
	if (c->logging.set) {
		out->set = 1;
		if (c->logging.driver)
			out->driver = xstrdup(c->logging.driver);
		kvs_copy(&out->options, &c->logging.options);
	}
	if (r->logging.set) {
		out->set = 1;
		if (r->logging.driver) {
			free(out->driver);
			out->driver = xstrdup(r->logging.driver);
		}
		kvs_copy(&out->options, &r->logging.options);
	}
}

const char *config_secret_value(const struct config *c, const char *secret, int *available)
{
	*available = 0;
	if (!c->secrets)
		return NULL;
	return secrets_get(c->secrets, secret, available);
}

/* One credential: a [SECRET], or a literal that ERB may have left without a value. */
static void registry_cred(const struct config *c, const char *literal, const char *secret,
			  const char *key, struct cfg_secret *out, char **why)
{
	int avail = 0;

	out->value = NULL;
	out->unavailable = 0;
	if (secret) {
		const char *v = config_secret_value(c, secret, &avail);
		if (v && avail) {
			out->value = v;
			return;
		}
		out->unavailable = 1;
		if (!*why)
			*why = xasprintf("%s: secret %s %s", key, secret,
					 v ? "could not be resolved" : "is not defined in the secrets");
		return;
	}
	if (!literal)
		return;
	if (strvec_contains(&c->unavailable_keys, key)) {
		out->unavailable = 1;
		if (!*why)
			*why = xasprintf("%s: its ERB could not be evaluated", key);
		return;
	}
	out->value = literal;
}

int config_registry_credentials(const struct config *c, struct cfg_secret *user,
				struct cfg_secret *password, char **why)
{
	*why = NULL;
	registry_cred(c, c->registry.username, c->registry.username_secret, "registry.username", user, why);
	registry_cred(c, c->registry.password, c->registry.password_secret, "registry.password",
		      password, why);
	if (user->unavailable || password->unavailable) {
		user->value = password->value = NULL;
		return -1;
	}
	return user->value && password->value ? 1 : 0;
}

/* ---- freeing ---- */

static void file_specs_free(struct cfg_file_spec *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].local);
		free(s[i].remote);
		free(s[i].mode);
		free(s[i].owner);
		free(s[i].options);
	}
	free(s);
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->destination);
	free(c->service);
	free(c->image);
	kvs_release(&c->labels);
	strvec_release(&c->volumes);
	free(c->registry.server);
	free(c->registry.username);
	free(c->registry.username_secret);
	util_free_secret(c->registry.password);
	free(c->registry.password_secret);
	for (size_t i = 0; i < c->nroles; i++) {
		struct cfg_role *r = &c->roles[i];
		free(r->name);
		for (size_t j = 0; j < r->nhosts; j++) {
			free(r->hosts[j].addr);
			strvec_release(&r->hosts[j].tags);
		}
		free(r->hosts);
		free(r->cmd);
		cfg_env_release(&r->env);
		kvs_release(&r->labels);
		kvs_release(&r->options);
		proxy_clear(&r->proxy);
		cfg_logging_release(&r->logging);
		free(r->asset_path);
	}
	free(c->roles);
	free(c->primary_role);
	cfg_env_release(&c->env);
	for (size_t i = 0; i < c->nenv_tags; i++) {
		free(c->env_tags[i].tag);
		cfg_env_release(&c->env_tags[i].env);
	}
	free(c->env_tags);
	proxy_clear(&c->proxy);
	for (size_t i = 0; i < c->naccessories; i++) {
		struct cfg_accessory *a = &c->accessories[i];
		free(a->name);
		free(a->service);
		free(a->image);
		strvec_release(&a->hosts);
		free(a->cmd);
		strvec_release(&a->ports);
		kvs_release(&a->labels);
		kvs_release(&a->options);
		cfg_env_release(&a->env);
		file_specs_free(a->files, a->nfiles);
		file_specs_free(a->directories, a->ndirectories);
		strvec_release(&a->volumes);
		free(a->network);
		free(a->registry_server);
		free(a->registry_username);
		free(a->registry_password_secret);
		proxy_clear(&a->proxy);
	}
	free(c->accessories);
	free(c->ssh.user);
	free(c->ssh.proxy);
	free(c->ssh.proxy_command);
	strvec_release(&c->ssh.keys);
	strvec_release(&c->ssh.key_data);
	strvec_release(&c->ssh.config);
	free(c->ssh.log_level);
	cfg_logging_release(&c->logging);
	kvs_release(&c->aliases);
	free(c->hooks_path);
	free(c->secrets_path);
	free(c->asset_path);
	free(c->error_pages_path);
	free(c->minimum_version);
	free(c->builder_arch);
	kvs_release(&c->sshkit);
	kvs_release(&c->x_plumb);
	free(c->xplumb.version);
	free(c->xplumb.ssh_known_hosts);
	strvec_release(&c->xplumb.registry_insecure);
	for (size_t i = 0; i < c->xplumb.naccessories; i++)
		free(c->xplumb.accessories[i].name);
	free(c->xplumb.accessories);
	strvec_release(&c->unavailable_keys);
	secrets_free(c->secrets);
	free(c);
}
