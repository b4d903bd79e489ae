#include "state/desired.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

char *desired_env_escape(const char *value)
{
	struct sbuf sb;
	const unsigned char *p;

	sbuf_init(&sb, 0);
	for (p = (const unsigned char *)value; *p; p++) {
		switch (*p) {
		case '\\': sbuf_adds(&sb, "\\\\"); break;
		case '\n': sbuf_adds(&sb, "\\n"); break;
		case '\t': sbuf_adds(&sb, "\\t"); break;
		case '\r': sbuf_adds(&sb, "\\r"); break;
		case '\f': sbuf_adds(&sb, "\\f"); break;
		case '\v': sbuf_adds(&sb, "\\v"); break;
		case '\b': sbuf_adds(&sb, "\\b"); break;
		case '\a': sbuf_adds(&sb, "\\a"); break;
		case 0x1b: sbuf_adds(&sb, "\\e"); break;
		default:
			/* Non-ASCII bytes are kept as they are; '"' and '#' stay literal. */
			if (*p < 0x20 || *p == 0x7f)
				sbuf_addf(&sb, "\\x%02X", *p);
			else
				sbuf_addc(&sb, (char)*p);
		}
	}
	return sbuf_detach(&sb);
}

char *desired_env_held(const char *value)
{
	struct sbuf sb;
	const unsigned char *p;

	/* Kamal's escape_shell_value dumps each ASCII run with String#dump and
	 * leaves non-ASCII runs bare; the host's shell then undoes, inside the
	 * double quotes, only \" \\ \$ and \` — so those four characters
	 * arrive as themselves and every other escape arrives literally. */
	sbuf_init(&sb, 0);
	for (p = (const unsigned char *)value; *p; p++) {
		switch (*p) {
		case '\n': sbuf_adds(&sb, "\\n"); break;
		case '\r': sbuf_adds(&sb, "\\r"); break;
		case '\t': sbuf_adds(&sb, "\\t"); break;
		case '\f': sbuf_adds(&sb, "\\f"); break;
		case '\v': sbuf_adds(&sb, "\\v"); break;
		case '\b': sbuf_adds(&sb, "\\b"); break;
		case '\a': sbuf_adds(&sb, "\\a"); break;
		case 0x1b: sbuf_adds(&sb, "\\e"); break;
		case '#':
			/* dump escapes '#' only where Ruby would interpolate */
			if (p[1] == '{' || p[1] == '$' || p[1] == '@')
				sbuf_addc(&sb, '\\');
			sbuf_addc(&sb, '#');
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				sbuf_addf(&sb, "\\x%02X", *p);
			else
				sbuf_addc(&sb, (char)*p); /* printable ASCII, or a non-ASCII byte */
		}
	}
	return sbuf_detach(&sb);
}

void desired_split_words(const char *s, struct strvec *out)
{
	struct sbuf w;
	int in_word = 0;

	sbuf_init(&w, 0);
	while (*s) {
		char ch = *s;
		if (ch == ' ' || ch == '\t' || ch == '\n') {
			if (in_word) {
				strvec_push(out, w.buf);
				sbuf_reset(&w);
				in_word = 0;
			}
			s++;
			continue;
		}
		in_word = 1;
		if (ch == '\'') {
			s++;
			while (*s && *s != '\'')
				sbuf_addc(&w, *s++);
			if (*s)
				s++;
		} else if (ch == '"') {
			s++;
			while (*s && *s != '"') {
				if (*s == '\\' && s[1] && strchr("\"\\$`\n", s[1]))
					s++;
				sbuf_addc(&w, *s++);
			}
			if (*s)
				s++;
		} else if (ch == '\\' && s[1]) {
			sbuf_addc(&w, s[1]);
			s += 2;
		} else {
			sbuf_addc(&w, ch);
			s++;
		}
	}
	if (in_word)
		strvec_push(out, w.buf);
	sbuf_release(&w);
}

long long desired_parse_size(const char *s)
{
	char *end;
	long long n, mult = 1;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case '\0': break;
	case 'b': mult = 1; end++; break;
	case 'k': mult = 1LL << 10; end++; break;
	case 'm': mult = 1LL << 20; end++; break;
	case 'g': mult = 1LL << 30; end++; break;
	case 't': mult = 1LL << 40; end++; break;
	default: return -1;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || n > LLONG_MAX / mult) /* the config is untrusted: no overflow */
		return -1;
	return n * mult;
}

const struct des_host *desired_host(const struct desired *ds, const char *host)
{
	for (size_t i = 0; i < ds->nhosts; i++)
		if (strcmp(ds->hosts[i].host, host) == 0)
			return &ds->hosts[i];
	return NULL;
}

const struct des_env *des_container_env(const struct des_container *c, const char *key)
{
	for (size_t i = 0; i < c->nenv; i++)
		if (strcmp(c->env[i].key, key) == 0)
			return &c->env[i];
	return NULL;
}

/* ---- building ---- */

struct builder {
	const struct config *c;
	const struct desired_opts *o;
	struct desired *ds;
	struct diags *d;
};

static struct des_env *env_push(struct des_container *c)
{
	c->env = xrealloc(c->env, (c->nenv + 1) * sizeof(*c->env));
	memset(&c->env[c->nenv], 0, sizeof(c->env[0]));
	return &c->env[c->nenv++];
}

/* A clear env value; src (NULL for plumb's own KAMAL_*) says whether the
 * value came from ERB ENV or a command (sensitive) or was not computed. */
static void env_clear_value(struct builder *b, struct des_container *c, const char *key,
			    const char *val, const struct cfg_env *src)
{
	struct des_env *e = NULL;
	int sensitive = src && strvec_contains(&src->sensitive, key);
	int not_computed = src && strvec_contains(&src->unavailable, key);

	for (size_t i = 0; i < c->nenv; i++)
		if (strcmp(c->env[i].key, key) == 0)
			e = &c->env[i];
	if (!e) {
		e = env_push(c);
		e->key = xstrdup(key);
	} else {
		util_free_secret(e->value);
		free(e->secret);
		e->secret = NULL;
		e->value = NULL;
	}
	e->hash[0] = '\0';
	if (not_computed) {
		e->kind = DES_ENV_NOT_COMPUTED;
		return;
	}
	/* Kamal double-quotes clear values but leaves ${…} for the host's shell. */
	if (strstr(val, "${")) {
		e->kind = DES_ENV_EXPANDED;
		e->value = sensitive ? NULL : xstrdup(val);
		return;
	}
	e->kind = sensitive ? DES_ENV_SENSITIVE : DES_ENV_CLEAR;
	if (!sensitive)
		e->value = xstrdup(val);
	{
		char *held = desired_env_held(val);
		hash_salted(b->o->salt, held, strlen(held), e->hash);
		util_free_secret(held);
	}
}

/* Adds the secret env of e to the container and to its env file. The file's
 * content (which holds the secrets) is built in one buffer sized up front —
 * a growing buffer would leave copies in freed memory — and wiped after. */
static void add_secrets(struct builder *b, struct des_container *c, struct des_env_file *f,
			const struct kvs *secret)
{
	char **esc = xcalloc(secret->n ? secret->n : 1, sizeof(*esc));
	char *content = NULL;
	size_t len = 0, pos = 0;

	for (size_t i = 0; i < secret->n; i++) {
		const char *key = secret->keys[i], *name = secret->vals[i], *val;
		struct des_env *e = env_push(c), *fv;
		int available = 0;

		e->key = xstrdup(key);
		e->secret = xstrdup(name);
		val = config_secret_value(b->c, name, &available);
		f->vars = xrealloc(f->vars, (f->nvars + 1) * sizeof(*f->vars));
		fv = &f->vars[f->nvars++];
		memset(fv, 0, sizeof(*fv));
		fv->key = xstrdup(key);
		fv->secret = xstrdup(name);
		len += strlen(key) + 2; /* "KEY=" … "\n" */
		if (!val || !available) {
			e->kind = fv->kind = DES_ENV_UNAVAILABLE;
			f->unavailable = 1;
			b->ds->unavailable_secrets++;
			continue;
		}
		esc[i] = desired_env_escape(val);
		len += strlen(esc[i]);
		e->kind = fv->kind = DES_ENV_SECRET;
		hash_salted(b->o->salt, esc[i], strlen(esc[i]), e->hash);
		memcpy(fv->hash, e->hash, sizeof(fv->hash));
	}
	if (!f->unavailable) {
		content = xmalloc(len + 2);
		for (size_t i = 0; i < secret->n; i++) {
			size_t kl = strlen(secret->keys[i]), vl = strlen(esc[i]);
			memcpy(content + pos, secret->keys[i], kl);
			pos += kl;
			content[pos++] = '=';
			memcpy(content + pos, esc[i], vl);
			pos += vl;
			content[pos++] = '\n';
		}
		if (secret->n == 0)
			content[pos++] = '\n'; /* Kamal's empty env file */
		content[pos] = '\0';
		hash_salted(b->o->salt, content, pos, f->content_hash);
		explicit_bzero(content, pos);
		free(content);
	}
	for (size_t i = 0; i < secret->n; i++)
		util_free_secret(esc[i]);
	free(esc);
}

static struct des_env_file *host_env_file(struct des_host *h, const char *path)
{
	struct des_env_file *f;

	h->env_files = xrealloc(h->env_files, (h->nenv_files + 1) * sizeof(*h->env_files));
	f = &h->env_files[h->nenv_files++];
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(path);
	return f;
}

static struct des_container *host_container(struct des_host *h)
{
	struct des_container *c;

	h->containers = xrealloc(h->containers, (h->ncontainers + 1) * sizeof(*h->containers));
	c = &h->containers[h->ncontainers++];
	memset(c, 0, sizeof(*c));
	return c;
}

static void add_mount(struct des_container *c, enum des_mount_kind kind, const char *src,
		      const char *dst, const char *mode)
{
	struct des_mount *m;

	c->mounts = xrealloc(c->mounts, (c->nmounts + 1) * sizeof(*c->mounts));
	m = &c->mounts[c->nmounts++];
	memset(m, 0, sizeof(*m));
	m->kind = kind;
	m->source = xstrdup(src);
	m->destination = xstrdup(dst);
	m->mode = xstrdup(mode ? mode : "");
	m->rw = !(mode && (strcmp(mode, "ro") == 0 || strncmp(mode, "ro,", 3) == 0 ||
			   strstr(mode, ",ro")));
}

/* "src:dst[:mode]" as docker run --volume takes it. */
static void add_volume_spec(struct des_container *c, const char *spec)
{
	char *s = xstrdup(spec), *dst, *mode = NULL;
	enum des_mount_kind kind;

	dst = strchr(s, ':');
	if (!dst) { /* an anonymous volume: "/path" */
		add_mount(c, DES_MOUNT_VOLUME, "", s, NULL);
		free(s);
		return;
	}
	*dst++ = '\0';
	mode = strchr(dst, ':');
	if (mode)
		*mode++ = '\0';
	if (s[0] == '/')
		kind = DES_MOUNT_BIND;
	else if (strncmp(s, "$PWD/", 5) == 0 || strncmp(s, "$(pwd)/", 7) == 0 || strchr(s, '/'))
		kind = DES_MOUNT_HOME;
	else
		kind = DES_MOUNT_VOLUME;
	if (kind == DES_MOUNT_HOME) {
		const char *rel = s;
		if (strncmp(rel, "$PWD/", 5) == 0)
			rel += 5;
		else if (strncmp(rel, "$(pwd)/", 7) == 0)
			rel += 7;
		add_mount(c, kind, rel, dst, mode);
	} else {
		add_mount(c, kind, s, dst, mode);
	}
	free(s);
}

/*
 * An IPv6 address is written in brackets ("[::1]:5432:5432"): returns the
 * address (caller frees, as docker reports it: no brackets) and in *rest the
 * spec with the address replaced by a placeholder field, so the colons inside
 * the address do not count as separators. NULL for any other spec.
 */
static char *port_spec_ipv6(const char *spec, char **rest)
{
	const char *close;

	*rest = NULL;
	if (spec[0] != '[' || !(close = strchr(spec, ']')) || close == spec + 1 || close[1] != ':')
		return NULL;
	*rest = xasprintf("v6:%s", close + 2);
	return xstrndup(spec + 1, (size_t)(close - spec - 1));
}

static void add_port_spec(struct des_container *c, const char *spec)
{
	char *rest, *ip6 = port_spec_ipv6(spec, &rest);
	char *s = xstrdup(ip6 ? rest : spec), *parts[3] = { NULL, NULL, NULL }, *p = s, *proto;
	size_t n = 0;
	struct des_port *pt;

	while (n < 3) {
		parts[n++] = p;
		p = strchr(p, ':');
		if (!p)
			break;
		*p++ = '\0';
	}
	c->ports = xrealloc(c->ports, (c->nports + 1) * sizeof(*c->ports));
	pt = &c->ports[c->nports++];
	{
		const char *cport = parts[n - 1];
		proto = strchr(cport, '/');
		pt->container_port = proto ? xstrdup(cport) : xasprintf("%s/tcp", cport);
	}
	pt->host_ip = xstrdup(ip6 ? ip6 : n == 3 ? parts[0] : "");
	free(ip6);
	free(rest);
	if (n >= 2) {
		char *hp = xstrdup(parts[n - 2]), *slash = strchr(hp, '/');
		if (slash)
			*slash = '\0';
		pt->host_port = hp;
	} else {
		char *hp = xstrdup(parts[0]), *slash = strchr(hp, '/');
		if (slash)
			*slash = '\0';
		pt->host_port = hp;
	}
	free(s);
}

/* Kamal's logging_args: the configured driver and options, else (none of
 * either, `logging: {}` included) --log-opt max-size=10m. */
static void set_logging(struct des_container *dc, const struct cfg_logging *lg)
{
	if ((lg->driver && *lg->driver) || lg->options.n) {
		if (lg->driver && *lg->driver)
			dc->log_driver = xstrdup(lg->driver);
		kvs_copy(&dc->log_opts, &lg->options);
	} else {
		kvs_set(&dc->log_opts, "max-size", "10m");
	}
}

static void set_options(struct des_container *c, const struct kvs *opts)
{
	for (size_t i = 0; i < opts->n; i++) {
		if (strcmp(opts->keys[i], "restart") == 0) {
			free(c->restart);
			c->restart = xstrdup(opts->vals[i]);
			continue;
		}
		kvs_set(&c->options, opts->keys[i], opts->vals[i]);
	}
}

/* A digest over the spec without secret hashes: stable across runs (the salt
 * changes every run), so it can go into the plan hash. */
static void spec_hash(struct des_container *c)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	sbuf_addf(&sb, "kind=%d\nname=%s\nimage=%s\nid=%s\ncmd=%s\n", (int)c->kind, c->name,
		  c->image_ref, c->image_id ? c->image_id : "", c->cmd ? c->cmd : "");
	for (size_t i = 0; i < c->nenv; i++) {
		const struct des_env *e = &c->env[i];
		/* no sensitive value here: the spec hash is unsalted and printed */
		if ((e->kind == DES_ENV_CLEAR || e->kind == DES_ENV_EXPANDED) && e->value)
			sbuf_addf(&sb, "env %s=%s\n", e->key, e->value);
		else if (e->kind == DES_ENV_SECRET || e->kind == DES_ENV_UNAVAILABLE)
			sbuf_addf(&sb, "secret %s from %s\n", e->key, e->secret);
		else
			sbuf_addf(&sb, "sensitive %s %d\n", e->key, (int)e->kind);
	}
	for (size_t i = 0; i < c->labels.n; i++)
		sbuf_addf(&sb, "label %s=%s\n", c->labels.keys[i], c->labels.vals[i]);
	for (size_t i = 0; i < c->nmounts; i++)
		sbuf_addf(&sb, "mount %d %s:%s:%s\n", (int)c->mounts[i].kind, c->mounts[i].source,
			  c->mounts[i].destination, c->mounts[i].mode);
	for (size_t i = 0; i < c->nports; i++)
		sbuf_addf(&sb, "port %s:%s:%s\n", c->ports[i].host_ip, c->ports[i].host_port,
			  c->ports[i].container_port);
	for (size_t i = 0; i < c->options.n; i++)
		sbuf_addf(&sb, "option %s=%s\n", c->options.keys[i], c->options.vals[i]);
	sbuf_addf(&sb, "restart=%s\nlog=%s\n", c->restart, c->log_driver ? c->log_driver : "");
	for (size_t i = 0; i < c->log_opts.n; i++)
		sbuf_addf(&sb, "logopt %s=%s\n", c->log_opts.keys[i], c->log_opts.vals[i]);
	sbuf_addf(&sb, "network=%s\n", c->network);
	hash_sha256_hex(sb.buf, sb.len, c->spec_hash);
	sbuf_release(&sb);
}

static const char *app_dir(const struct config *c, char **tmp)
{
	*tmp = c->destination ? xasprintf("%s-%s", c->service, c->destination) : xstrdup(c->service);
	return *tmp;
}

static void build_app(struct builder *b, struct des_host *h, const struct cfg_role *r)
{
	const struct config *c = b->c;
	struct des_container *dc = host_container(h);
	struct cfg_env env = { 0 };
	struct cfg_logging lg = { 0 };
	struct des_env_file *f;
	char *dir = NULL;
	const char *asset;

	dc->kind = DES_APP;
	dc->role = xstrdup(r->name);
	dc->prefix = c->destination ? xasprintf("%s-%s-%s", c->service, r->name, c->destination)
				    : xasprintf("%s-%s", c->service, r->name);
	dc->name = xasprintf("%s-%s", dc->prefix, b->ds->version);
	if (b->o->app_image.ref)
		dc->image_ref = xstrdup(b->o->app_image.ref);
	else if (c->registry.server)
		dc->image_ref = xasprintf("%s/%s:%s", c->registry.server, c->image, b->ds->version);
	else
		dc->image_ref = xasprintf("%s:%s", c->image, b->ds->version);
	dc->image_status = b->o->app_image.status;
	if (b->o->app_image.status == DES_IMAGE_FOUND && b->o->app_image.identity)
		dc->image_id = xstrdup(b->o->app_image.identity);
	if (r->cmd) {
		dc->cmd = xstrdup(r->cmd);
		desired_split_words(r->cmd, &dc->cmd_argv);
	}
	dc->restart = xstrdup("unless-stopped");
	dc->network = xstrdup("kamal");
	dc->proxied = r->running_proxy;
	dc->primary = c->primary_role && strcmp(c->primary_role, r->name) == 0;

	/* env, in Kamal's order: KAMAL_HOST, KAMAL_DESTINATION, clear, then the env file */
	env_clear_value(b, dc, "KAMAL_HOST", h->host, NULL);
	if (c->destination)
		env_clear_value(b, dc, "KAMAL_DESTINATION", c->destination, NULL);
	config_role_env(c, r, h->host, &env);
	for (size_t i = 0; i < env.clear.n; i++)
		env_clear_value(b, dc, env.clear.keys[i], env.clear.vals[i], &env);
	dc->env_file = xasprintf(".kamal/apps/%s/env/roles/%s.env", app_dir(c, &dir), r->name);
	f = host_env_file(h, dc->env_file);
	add_secrets(b, dc, f, &env.secret);

	config_role_labels(c, r, &dc->labels);

	for (size_t i = 0; i < c->volumes.n; i++)
		add_volume_spec(dc, c->volumes.v[i]);
	asset = r->asset_path ? r->asset_path : c->asset_path;
	if (asset && r->running_proxy) {
		char *src = xasprintf(".kamal/apps/%s/assets/volumes/%s-%s", dir, r->name,
				      b->ds->version);
		add_mount(dc, DES_MOUNT_HOME, src, asset, NULL);
		dc->mounts[dc->nmounts - 1].versioned = 1;
		free(src);
	}

	config_role_logging(c, r, &lg);
	set_logging(dc, &lg);
	set_options(dc, &r->options);
	spec_hash(dc);

	free(dir);
	cfg_env_release(&env);
	cfg_logging_release(&lg);
}

/* "sha256:" and 64 lowercase hex digits? */
static int is_sha256_digest(const char *s)
{
	if (!s || strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64)
		return 0;
	for (const char *p = s + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/* x-plumb accessories.<name>.pin_digest: run the image by the digest its tag points to. */
static void pin_accessory_image(struct builder *b, struct des_container *dc, const struct cfg_accessory *a)
{
	const struct xplumb_accessory *xa = config_xplumb_accessory(b->c, a->name);
	const char *digest = NULL, *identity = NULL;

	if (!xa || !xa->pin_digest || !a->image || !b->o->accessory_pin ||
	    b->o->accessory_pin(a->image, &digest, &identity, b->o->accessory_ctx) != 0 ||
	    !is_sha256_digest(digest))
		return;
	free(dc->image_ref);
	dc->image_ref = xasprintf("%.*s@%s", (int)strcspn(a->image, "@"), a->image, digest);
	if (is_sha256_digest(identity)) {
		dc->image_id = xstrdup(identity);
		dc->image_status = DES_IMAGE_FOUND;
	}
}

static void build_accessory(struct builder *b, struct des_host *h, const struct cfg_accessory *a)
{
	const struct config *c = b->c;
	struct des_container *dc = host_container(h);
	struct des_env_file *f;
	char *dir = NULL;

	dc->kind = DES_ACCESSORY;
	dc->role = xstrdup(a->name);
	dc->name = xstrdup(a->service);
	dc->prefix = xstrdup(a->service);
	/* Kamal's Accessory#image: its own registry's server first */
	dc->image_ref = a->registry_server ? xasprintf("%s/%s", a->registry_server, a->image ? a->image : "")
					   : xstrdup(a->image ? a->image : "");
	dc->image_status = DES_IMAGE_UNKNOWN;
	pin_accessory_image(b, dc, a);
	if (a->cmd) {
		dc->cmd = xstrdup(a->cmd);
		desired_split_words(a->cmd, &dc->cmd_argv);
	}
	dc->restart = xstrdup("unless-stopped");
	dc->network = xstrdup(a->network ? a->network : "kamal");

	env_clear_value(b, dc, "KAMAL_HOST", h->host, NULL);
	for (size_t i = 0; i < a->env.clear.n; i++)
		env_clear_value(b, dc, a->env.clear.keys[i], a->env.clear.vals[i], &a->env);
	dc->env_file = xasprintf(".kamal/apps/%s/env/accessories/%s.env", app_dir(c, &dir), a->name);
	f = host_env_file(h, dc->env_file);
	add_secrets(b, dc, f, &a->env.secret);

	kvs_set(&dc->labels, "service", a->service);
	kvs_copy(&dc->labels, &a->labels);

	for (size_t i = 0; i < a->nfiles; i++) {
		const struct cfg_file_spec *fs = &a->files[i];
		const char *remote = fs->remote;
		char *src;
		while (*remote == '/')
			remote++;
		src = xasprintf("%s/%s", a->service, remote);
		add_mount(dc, DES_MOUNT_HOME, src, fs->remote, fs->options);
		free(src);
	}
	for (size_t i = 0; i < a->ndirectories; i++) {
		const struct cfg_file_spec *ds = &a->directories[i];
		if (ds->local[0] == '/') {
			add_mount(dc, DES_MOUNT_BIND, ds->local, ds->remote, ds->options);
		} else {
			char *src = xasprintf("%s/%s", a->service, ds->local);
			add_mount(dc, DES_MOUNT_HOME, src, ds->remote, ds->options);
			free(src);
		}
	}
	for (size_t i = 0; i < a->volumes.n; i++)
		add_volume_spec(dc, a->volumes.v[i]);
	for (size_t i = 0; i < a->ports.n; i++)
		add_port_spec(dc, a->ports.v[i]);
	/* Kamal runs accessories with the root logging: settings (config.logging_args) */
	set_logging(dc, &c->logging);
	set_options(dc, &a->options);
	spec_hash(dc);
	free(dir);
}

static int role_on_host(const struct cfg_role *r, const char *host)
{
	for (size_t j = 0; j < r->nhosts; j++)
		if (strcmp(r->hosts[j].addr, host) == 0)
			return 1;
	return 0;
}

const struct kvs *desired_proxy_run(const struct config *c, const char *host)
{
	for (size_t i = 0; i < c->nroles; i++) {
		const struct cfg_role *r = &c->roles[i];
		if (r->running_proxy && role_on_host(r, host))
			return r->proxy.run.n ? &r->proxy.run : NULL;
	}
	for (size_t i = 0; i < c->naccessories; i++) {
		const struct cfg_accessory *a = &c->accessories[i];
		if (a->proxy.set && strvec_contains(&a->hosts, host))
			return a->proxy.run.n ? &a->proxy.run : NULL;
	}
	return NULL;
}

/* --publish [ip:]port:cport, an IPv6 address in brackets as Kamal formats it */
static void add_publish(struct des_container *dc, const char *ip, const char *port, const char *cport)
{
	int v6 = ip && strchr(ip, ':') && ip[0] != '[';
	char *spec = xasprintf("%s%s%s%s%s:%s", v6 ? "[" : "", ip ? ip : "", v6 ? "]" : "",
			       ip ? ":" : "", port, cport);

	add_port_spec(dc, spec);
	free(spec);
}

static const char *run_val(const struct kvs *run, const char *key, const char *def)
{
	const char *v = run ? kvs_get(run, key) : NULL;
	return v ? v : def;
}

/*
 * kamal-proxy as Kamal 2.12 runs it (Kamal::Commands::Proxy#run): its config
 * volume and the apps-config directory, ports 80/443 (proxy.run http_port,
 * https_port, bind_ips, publish), --log-opt max-size (log_max_size),
 * options, the image (registry/repository:version, default
 * basecamp/kamal-proxy:v0.9.2) and, with a run section, `kamal-proxy run
 * [--debug] [--metrics-port N]`.
 */
static void build_proxy(struct builder *b, struct des_host *h)
{
	const struct kvs *run = desired_proxy_run(b->c, h->host);
	struct des_container *dc = host_container(h);
	const char *reg = run_val(run, "registry", NULL), *v;

	dc->kind = DES_PROXY;
	dc->name = xstrdup("kamal-proxy");
	dc->prefix = xstrdup("kamal-proxy");
	dc->role = xstrdup("kamal-proxy");
	dc->image_ref = xasprintf("%s%s%s:%s", reg ? reg : "", reg ? "/" : "",
				  run_val(run, "repository", "basecamp/kamal-proxy"),
				  run_val(run, "version", "v0.9.2"));
	dc->image_status = DES_IMAGE_UNKNOWN;
	dc->restart = xstrdup("unless-stopped");
	dc->network = xstrdup("kamal");
	add_mount(dc, DES_MOUNT_VOLUME, "kamal-proxy-config", "/home/kamal-proxy/.config/kamal-proxy", NULL);
	add_mount(dc, DES_MOUNT_HOME, ".kamal/proxy/apps-config", "/home/kamal-proxy/.apps-config", NULL);
	if (strcmp(run_val(run, "publish", "true"), "false") != 0) {
		const char *http = run_val(run, "http_port", "80"), *https = run_val(run, "https_port", "443");
		for (size_t i = 0;; i++) {
			char key[32];
			const char *ip;
			snprintf(key, sizeof(key), "bind_ips[%zu]", i);
			ip = run_val(run, key, NULL);
			if (!ip && i > 0)
				break;
			add_publish(dc, ip, http, "80");
			add_publish(dc, ip, https, "443");
			if (!ip)
				break;
		}
	}
	v = run_val(run, "log_max_size", "10m");
	if (*v)
		kvs_set(&dc->log_opts, "max-size", v);
	dc->proxy_managed = run != NULL;
	if (run) {
		struct kvs opts = { 0 };
		for (size_t i = 0; i < run->n; i++)
			if (strncmp(run->keys[i], "options.", 8) == 0)
				kvs_set(&opts, run->keys[i] + 8, run->vals[i]);
		set_options(dc, &opts);
		kvs_release(&opts);
		strvec_push(&dc->cmd_argv, "kamal-proxy");
		strvec_push(&dc->cmd_argv, "run");
		if (strcmp(run_val(run, "debug", ""), "true") == 0)
			strvec_push(&dc->cmd_argv, "--debug");
		if ((v = run_val(run, "metrics_port", NULL))) {
			strvec_push(&dc->cmd_argv, "--metrics-port");
			strvec_push(&dc->cmd_argv, v);
		}
		dc->cmd = xstrdup("kamal-proxy run");
		for (size_t i = 2; i < dc->cmd_argv.n; i++) {
			char *n = xasprintf("%s %s", dc->cmd, dc->cmd_argv.v[i]);
			free(dc->cmd);
			dc->cmd = n;
		}
	}
	spec_hash(dc);
}

/* digits, or a range "8000-8010" */
static int port_number_ok(const char *s, size_t n)
{
	size_t i = 0, dash = 0;

	if (n == 0 || n > 11)
		return 0;
	for (; i < n; i++) {
		if (s[i] == '-' && i > 0 && !dash)
			dash = i;
		else if (!isdigit((unsigned char)s[i]))
			return 0;
	}
	return !dash || dash + 1 < n;
}

/* "[ip:][host_port]:container_port[/proto]" (an IPv6 ip in brackets) or "N" (N:N),
 * as docker run --publish takes it */
static int port_spec_ok(const char *spec)
{
	const char *parts[3], *slash;
	size_t n = 0, lens[3];
	const char *p = spec;
	char *rest, *ip6 = port_spec_ipv6(spec, &rest);

	if (ip6) {
		int ok = strchr(ip6, ':') != NULL && port_spec_ok(rest);
		free(ip6);
		free(rest);
		return ok;
	}

	for (;;) {
		const char *colon = strchr(p, ':');
		if (n == 3)
			return 0; /* more than three fields */
		parts[n] = p;
		lens[n] = colon ? (size_t)(colon - p) : strlen(p);
		n++;
		if (!colon)
			break;
		p = colon + 1;
	}
	slash = memchr(parts[n - 1], '/', lens[n - 1]);
	if (slash) {
		const char *proto = slash + 1;
		size_t pl = lens[n - 1] - (size_t)(proto - parts[n - 1]);
		if (!((pl == 3 && (strncmp(proto, "tcp", 3) == 0 || strncmp(proto, "udp", 3) == 0)) ||
		      (pl == 4 && strncmp(proto, "sctp", 4) == 0)))
			return 0;
		lens[n - 1] = (size_t)(slash - parts[n - 1]);
	}
	if (!port_number_ok(parts[n - 1], lens[n - 1]))
		return 0;
	if (n == 2 && !port_number_ok(parts[0], lens[0]))
		return 0;
	if (n == 3 && (lens[0] == 0 || (lens[1] && !port_number_ok(parts[1], lens[1]))))
		return 0; /* an address is required; the host port may be empty (any) */
	return 1;
}

/* "src:dst[:mode]" with an absolute dst, or "/path" (an anonymous volume) */
static int volume_spec_ok(const char *spec)
{
	const char *c1 = strchr(spec, ':'), *c2;

	if (!c1)
		return spec[0] == '/';
	c2 = strchr(c1 + 1, ':');
	if (c1 == spec || c1[1] != '/')
		return 0;
	if (c2 && (c2[1] == '\0' || strchr(c2 + 1, ':')))
		return 0;
	return 1;
}

/* Specs desired_build would otherwise misread: reported in d (each once). */
static void check_specs(const struct config *c, struct diags *d)
{
	const char *file = c->file ? c->file : "config/deploy.yml";

	for (size_t i = 0; i < c->volumes.n; i++)
		if (!volume_spec_ok(c->volumes.v[i]))
			diags_err(d, file, 0, 0, "volumes: '%s' is not a volume (source:/container/path[:options])",
				  c->volumes.v[i]);
	for (size_t k = 0; k < c->naccessories; k++) {
		const struct cfg_accessory *a = &c->accessories[k];
		for (size_t i = 0; i < a->volumes.n; i++)
			if (!volume_spec_ok(a->volumes.v[i]))
				diags_err(d, file, a->line, 0,
					  "accessories.%s.volumes: '%s' is not a volume (source:/container/path[:options])",
					  a->name, a->volumes.v[i]);
		for (size_t i = 0; i < a->ports.n; i++)
			if (!port_spec_ok(a->ports.v[i]))
				diags_err(d, file, a->line, 0,
					  "accessories.%s.port: '%s' is not a port mapping ([ip:]host_port:container_port[/tcp|udp|sctp])",
					  a->name, a->ports.v[i]);
	}
}

int desired_build(struct desired **out, const struct config *c, const struct desired_opts *o,
		  struct diags *d)
{
	struct builder b = { c, o, NULL, d };
	struct desired *ds = NULL;
	struct strvec hosts = { 0 };
	const struct cfg_role *pr;

	*out = NULL;
	if (!o->version || !*o->version || !o->salt || !c->service) {
		diags_err(d, NULL, 0, 0, "desired state: version, salt and service are required");
		return -1;
	}
	{
		size_t errors = d->errors;
		check_specs(c, d);
		if (d->errors > errors)
			return -1;
	}
	ds = xcalloc(1, sizeof(*ds));
	b.ds = ds;
	ds->service = xstrdup(c->service);
	ds->destination = c->destination ? xstrdup(c->destination) : NULL;
	ds->version = xstrdup(o->version);
	ds->primary_role = xstrdup(c->primary_role ? c->primary_role : "web");
	ds->retain_containers = c->retain_containers > 0 ? c->retain_containers : 5;
	pr = config_primary_role(c);
	if (pr) {
		for (size_t j = 0; j < pr->nhosts; j++)
			strvec_push(&ds->primary_hosts, pr->hosts[j].addr);
		if (c->boot.limit > 0 && c->boot.limit_percent) {
			/* Kamal's Boot#limit: [all_hosts.count * pct / 100, 1].max —
			 * floor, over every host of the config (roles and accessories) */
			struct strvec all = { 0 };
			size_t n;
			config_all_hosts(c, &all);
			n = all.n * (size_t)c->boot.limit / 100;
			ds->boot_limit = n < 1 ? 1 : n > INT_MAX ? INT_MAX : (int)n;
			strvec_release(&all);
		} else
			ds->boot_limit = c->boot.limit;
		if (ds->boot_limit < 0)
			ds->boot_limit = 0;
	}

	/* Kamal's app_hosts: every role's hosts, each once, the primary role's
	 * first (in its order), then the other roles' (config_all_hosts' order
	 * without the accessories' hosts) */
	for (size_t j = 0; j < ds->primary_hosts.n; j++)
		if (!strvec_contains(&ds->app_hosts, ds->primary_hosts.v[j]))
			strvec_push(&ds->app_hosts, ds->primary_hosts.v[j]);
	for (size_t r = 0; r < c->nroles; r++)
		for (size_t j = 0; j < c->roles[r].nhosts; j++)
			if (!strvec_contains(&ds->app_hosts, c->roles[r].hosts[j].addr))
				strvec_push(&ds->app_hosts, c->roles[r].hosts[j].addr);

	for (size_t k = 0; k < c->naccessories; k++)
		strvec_push(&ds->accessories, c->accessories[k].service);
	config_all_hosts(c, &hosts);
	ds->hosts = xcalloc(hosts.n ? hosts.n : 1, sizeof(*ds->hosts));
	for (size_t i = 0; i < hosts.n; i++) {
		struct des_host *h = &ds->hosts[ds->nhosts++];
		int proxy = 0;

		h->host = xstrdup(hosts.v[i]);
		for (size_t k = 0; k < c->naccessories; k++)
			if (strvec_contains(&c->accessories[k].hosts, h->host)) {
				build_accessory(&b, h, &c->accessories[k]);
				proxy |= c->accessories[k].proxy.set; /* Kamal's proxy_hosts */
			}
		for (size_t k = 0; k < c->nroles; k++) {
			if (!role_on_host(&c->roles[k], h->host))
				continue;
			build_app(&b, h, &c->roles[k]);
			if (c->roles[k].running_proxy)
				proxy = 1;
		}
		if (proxy)
			build_proxy(&b, h);
	}
	strvec_release(&hosts);
	*out = ds;
	return 0;
}

static void env_free(struct des_env *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].key);
		free(e[i].value);
		free(e[i].secret);
	}
	free(e);
}

static void container_release(struct des_container *c)
{
	free(c->name);
	free(c->prefix);
	free(c->role);
	free(c->image_ref);
	free(c->image_id);
	free(c->cmd);
	strvec_release(&c->cmd_argv);
	env_free(c->env, c->nenv);
	kvs_release(&c->labels);
	for (size_t i = 0; i < c->nmounts; i++) {
		free(c->mounts[i].source);
		free(c->mounts[i].destination);
		free(c->mounts[i].mode);
	}
	free(c->mounts);
	for (size_t i = 0; i < c->nports; i++) {
		free(c->ports[i].container_port);
		free(c->ports[i].host_ip);
		free(c->ports[i].host_port);
	}
	free(c->ports);
	kvs_release(&c->options);
	free(c->restart);
	free(c->log_driver);
	kvs_release(&c->log_opts);
	free(c->network);
	free(c->env_file);
}

void desired_free(struct desired *ds)
{
	if (!ds)
		return;
	for (size_t i = 0; i < ds->nhosts; i++) {
		struct des_host *h = &ds->hosts[i];
		for (size_t j = 0; j < h->ncontainers; j++)
			container_release(&h->containers[j]);
		free(h->containers);
		for (size_t j = 0; j < h->nenv_files; j++) {
			free(h->env_files[j].path);
			env_free(h->env_files[j].vars, h->env_files[j].nvars);
		}
		free(h->env_files);
		free(h->host);
	}
	free(ds->hosts);
	strvec_release(&ds->primary_hosts);
	strvec_release(&ds->app_hosts);
	strvec_release(&ds->accessories);
	free(ds->service);
	free(ds->destination);
	free(ds->version);
	free(ds->primary_role);
	free(ds);
}
