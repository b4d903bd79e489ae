/*
 * Docker observation (docker_obs.h): the fixed observation script, the
 * command that runs it, and the parser of what it prints.
 */
#include "providers/docker_obs.h"
#include "providers/json_join.h"
#include "providers/kamal_proxy.h"
#include "state/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define OBS_MAX_LINE (1u << 20) /* one container's JSON line */
#define OBS_MAX_OBJECTS 4096    /* containers, images or env files per host */
#define OBS_MAX_VARS 4096       /* env entries per object */
#define OBS_MAX_LABELS 4096     /* labels (or log options) per container or image */
#define OBS_MAX_VAR_LINE 4200   /* "KEY<TAB>HASH": a key of up to 4 KiB */

int docker_obs_build(struct prov_cmd *out, const char *salt, const struct docker_obs_query *q)
{
	return docker_obs_build_since(out, salt, q, NULL);
}

int docker_obs_build_since(struct prov_cmd *out, const char *salt,
			   const struct docker_obs_query *q, const char *since)
{
	const char *dest = q->destination && *q->destination ? q->destination : NULL;
	char *appdir = dest ? xasprintf("%s-%s", q->service, dest) : xstrdup(q->service);
	char *lock = xasprintf("lock-%s", appdir);
	static const char *const default_proxies[] = { "kamal-proxy" };
	const char *const *proxies = q->proxies ? q->proxies : default_proxies;
	size_t nproxies = q->proxies ? q->nproxies : 1;

	prov_cmd_init(out);
	prov_cmd_begin(out, PROV_JOIN_SEQ);
	prov_cmd_args(out, "sh", "-c", docker_obs_script, DOCKER_OBS_ARGV0, salt, appdir, lock,
		      NULL);
	free(appdir);
	free(lock);
	{
		char *w = xasprintf("s:%s", q->service);
		prov_cmd_arg(out, w);
		free(w);
	}
	for (size_t i = 0; i < q->naccessories; i++) {
		char *w = xasprintf("s:%s", q->accessories[i]);
		prov_cmd_arg(out, w);
		free(w);
	}
	for (size_t i = 0; i < nproxies; i++) {
		char *w = xasprintf("n:%s", proxies[i]);
		prov_cmd_arg(out, w);
		free(w);
	}
	if (since) {
		char *w = xasprintf("t:%s", since);
		prov_cmd_arg(out, w);
		free(w);
	}
	return out->err ? PLUMB_EINVAL : 0;
}

void docker_obs_classify(struct obs_container *c, const struct docker_obs_query *q)
{
	const char *dest = q->destination ? q->destination : "";
	static const char *const default_proxies[] = { "kamal-proxy" };
	const char *const *proxies = q->proxies ? q->proxies : default_proxies;
	size_t nproxies = q->proxies ? q->nproxies : 1;

	c->kind = OBS_OTHER;
	/* Kamal's own filter: service, role present, destination exactly (the label
	 * is present and empty when there is no destination). */
	if (c->service && strcmp(c->service, q->service) == 0 && c->role && c->destination &&
	    strcmp(c->destination, dest) == 0) {
		c->kind = OBS_APP;
		return;
	}
	for (size_t i = 0; i < q->naccessories; i++)
		if (c->service && strcmp(c->service, q->accessories[i]) == 0) {
			c->kind = OBS_ACCESSORY;
			return;
		}
	for (size_t i = 0; i < nproxies; i++)
		if (c->name && strcmp(c->name, proxies[i]) == 0) {
			c->kind = OBS_PROXY;
			return;
		}
	/* A candidate orphan accessory (one the config no longer names): Kamal
	 * names it <service>-<name> with label service=<that name>. Only a
	 * candidate: another app (say "optimus-admin") matches too, so whether it
	 * is ours is decided by the diff with the configs (diff.c ours_accessory:
	 * an accessory of the current or the base revision), nowhere else. */
	if (c->service && c->name && strcmp(c->name, c->service) == 0 &&
	    strncmp(c->service, q->service, strlen(q->service)) == 0 &&
	    c->service[strlen(q->service)] == '-' && c->service[strlen(q->service) + 1] != '\0')
		c->kind = OBS_ACCESSORY;
}

/* ---- JSON helpers ---- */

static char *jdup(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

static char *jdup_or_empty(json_t *o, const char *key)
{
	char *s = jdup(o, key);
	return s ? s : xstrdup("");
}

static void jstrvec(struct strvec *sv, json_t *arr)
{
	size_t i;
	json_t *v;

	if (!json_is_array(arr))
		return;
	json_array_foreach(arr, i, v)
		if (json_is_string(v))
			strvec_push(sv, json_string_value(v));
}

/*
 * An object of strings into m, which must be empty. The JSON was loaded with
 * JSON_REJECT_DUPLICATES, so keys are unique and are appended without
 * kvs_set's scan (linear per key: quadratic for a host reporting thousands).
 * PLUMB_ETOOBIG (err set) when the object has more than OBS_MAX_LABELS entries.
 */
static int jkvs(struct kvs *m, json_t *obj, const char *what, struct plumb_err *err)
{
	const char *k;
	json_t *v;
	size_t n = json_object_size(obj);

	if (!json_is_object(obj))
		return 0;
	if (n > OBS_MAX_LABELS) {
		return plumb_err_set(err, PLUMB_ETOOBIG, "host output too large: %zu %s (at most %u)", n,
				     what, OBS_MAX_LABELS);
	}
	/* kvs is hashed (O(1) set): the bound above keeps a host's map small */
	json_object_foreach(obj, k, v)
		if (json_is_string(v))
			kvs_set(m, k, json_string_value(v));
	return 0;
}

static void opt_int(struct kvs *m, const char *name, json_t *hc, const char *key)
{
	json_t *v = json_object_get(hc, key);
	char buf[32];

	if (json_is_integer(v) && json_integer_value(v) != 0) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		kvs_set(m, name, buf);
	}
}

static void opt_true(struct kvs *m, const char *name, json_t *hc, const char *key)
{
	if (json_is_true(json_object_get(hc, key)))
		kvs_set(m, name, "true");
}

static void opt_list(struct kvs *m, const char *name, json_t *hc, const char *key)
{
	json_t *arr = json_object_get(hc, key);
	char *s;

	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return;
	s = prov_json_join(arr, ",");
	kvs_set(m, name, s ? s : "");
	free(s);
}

/*
 * HostConfig settings that role/accessory `options:` map to, keyed by the
 * docker run option name; only those set (non-zero) are recorded:
 * memory, memory-reservation, memory-swap, cpu-shares, pids-limit (bytes or
 * counts as docker reports them), cpus (NanoCpus / 1e9), shm-size (when not
 * docker's 64 MiB default), privileged, init, read-only, cap-add, cap-drop.
 */
static void host_options(struct kvs *m, json_t *hc)
{
	json_t *v;

	opt_int(m, "memory", hc, "Memory");
	opt_int(m, "memory-reservation", hc, "MemoryReservation");
	opt_int(m, "memory-swap", hc, "MemorySwap");
	opt_int(m, "cpu-shares", hc, "CpuShares");
	v = json_object_get(hc, "PidsLimit");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		opt_int(m, "pids-limit", hc, "PidsLimit");
	v = json_object_get(hc, "NanoCpus");
	if (json_is_integer(v) && json_integer_value(v) != 0) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%g", (double)json_integer_value(v) / 1e9);
		kvs_set(m, "cpus", buf);
	}
	v = json_object_get(hc, "ShmSize");
	if (json_is_integer(v) && json_integer_value(v) != 0 && json_integer_value(v) != 67108864)
		opt_int(m, "shm-size", hc, "ShmSize");
	opt_true(m, "privileged", hc, "Privileged");
	opt_true(m, "init", hc, "Init");
	opt_true(m, "read-only", hc, "ReadonlyRootfs");
	opt_list(m, "cap-add", hc, "CapAdd");
	opt_list(m, "cap-drop", hc, "CapDrop");
}

static char *label_dup(const struct obs_container *c, const char *key)
{
	const char *v = kvs_get(&c->labels, key);
	return v ? xstrdup(v) : NULL;
}

static int parse_container(struct obs_container *c, const char *text, struct plumb_err *err)
{
	json_error_t je;
	json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je), *st, *cfg, *hc, *v, *arr;
	const char *k;
	size_t i;

	if (!json_is_object(o)) {
		json_decref(o);
		return plumb_err_set(err, PLUMB_EPROTOCOL, "container JSON: %s (line %d)", je.text, je.line);
	}
	c->id = jdup(o, "Id");
	if (!c->id) {
		json_decref(o);
		return plumb_err_set(err, PLUMB_EPROTOCOL, "container JSON without an Id");
	}
	c->name = jdup_or_empty(o, "Name");
	if (c->name[0] == '/')
		memmove(c->name, c->name + 1, strlen(c->name));
	c->image_id = jdup(o, "Image");
	c->created = jdup(o, "Created");
	st = json_object_get(o, "State");
	c->state = jdup_or_empty(st, "Status");
	c->health = jdup(st, "Health");
	v = json_object_get(st, "ExitCode");
	c->exit_code = json_is_integer(v) ? (int)json_integer_value(v) : 0;
	c->started_at = jdup(st, "StartedAt");
	c->finished_at = jdup(st, "FinishedAt");

	cfg = json_object_get(o, "Config");
	c->image_ref = jdup(cfg, "Image");
	jstrvec(&c->cmd, json_object_get(cfg, "Cmd"));
	jstrvec(&c->entrypoint, json_object_get(cfg, "Entrypoint"));
	if (jkvs(&c->labels, json_object_get(cfg, "Labels"), "labels on a container", err) < 0)
		goto fail;
	c->hostname = jdup(cfg, "Hostname");

	hc = json_object_get(o, "HostConfig");
	v = json_object_get(hc, "RestartPolicy");
	c->restart_policy = jdup_or_empty(v, "Name");
	if (!*c->restart_policy) {
		free(c->restart_policy);
		c->restart_policy = xstrdup("no");
	}
	v = json_object_get(v, "MaximumRetryCount");
	c->restart_max_retries = json_is_integer(v) ? (int)json_integer_value(v) : 0;
	v = json_object_get(hc, "LogConfig");
	c->log_driver = jdup(v, "Type");
	if (jkvs(&c->log_opts, json_object_get(v, "Config"), "log options", err) < 0)
		goto fail;
	c->network_mode = jdup(hc, "NetworkMode");
	host_options(&c->options, hc);

	v = json_object_get(hc, "PortBindings");
	if (json_is_object(v)) {
		json_object_foreach(v, k, arr) {
			json_t *b;
			if (!json_is_array(arr))
				continue;
			json_array_foreach(arr, i, b) {
				struct obs_port *p;
				c->ports = xrealloc(c->ports, (c->nports + 1) * sizeof(*c->ports));
				p = &c->ports[c->nports++];
				p->container_port = xstrdup(k);
				p->host_ip = jdup_or_empty(b, "HostIp");
				p->host_port = jdup_or_empty(b, "HostPort");
			}
		}
	}
	arr = json_object_get(o, "Mounts");
	if (json_is_array(arr)) {
		json_array_foreach(arr, i, v) {
			struct obs_mount *m;
			c->mounts = xrealloc(c->mounts, (c->nmounts + 1) * sizeof(*c->mounts));
			m = &c->mounts[c->nmounts++];
			m->type = jdup_or_empty(v, "Type");
			m->source = strcmp(m->type, "volume") == 0 ? jdup(v, "Name") : NULL;
			if (!m->source)
				m->source = jdup_or_empty(v, "Source");
			m->destination = jdup_or_empty(v, "Destination");
			m->mode = jdup_or_empty(v, "Mode");
			m->rw = json_is_true(json_object_get(v, "RW"));
		}
	}
	v = json_object_get(o, "Networks");
	if (json_is_object(v)) {
		json_t *ignored;
		json_object_foreach(v, k, ignored)
			strvec_push(&c->networks, k);
	}
	c->service = label_dup(c, "service");
	c->role = label_dup(c, "role");
	c->destination = label_dup(c, "destination");
	json_decref(o);
	return 0;
fail:
	json_decref(o);
	return err->code;
}

static int parse_image(struct obs_image *im, const char *text, struct plumb_err *err)
{
	json_error_t je;
	json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je), *cfg, *v;

	if (!json_is_object(o)) {
		json_decref(o);
		return plumb_err_set(err, PLUMB_EPROTOCOL, "image JSON: %s (line %d)", je.text, je.line);
	}
	im->id = jdup(o, "Id");
	if (!im->id) {
		json_decref(o);
		return plumb_err_set(err, PLUMB_EPROTOCOL, "image JSON without an Id");
	}
	jstrvec(&im->repo_tags, json_object_get(o, "RepoTags"));
	jstrvec(&im->repo_digests, json_object_get(o, "RepoDigests"));
	cfg = json_object_get(o, "Config");
	jstrvec(&im->cmd, json_object_get(cfg, "Cmd"));
	jstrvec(&im->entrypoint, json_object_get(cfg, "Entrypoint"));
	if (jkvs(&im->labels, json_object_get(cfg, "Labels"), "labels on an image", err) < 0) {
		json_decref(o);
		return err->code;
	}
	v = json_object_get(cfg, "Volumes");
	if (json_is_object(v)) {
		const char *k;
		json_t *ignored;
		json_object_foreach(v, k, ignored)
			strvec_push(&im->volumes, k);
	}
	json_decref(o);
	return 0;
}

/* ---- line parser ---- */

static int is_hash(const char *s)
{
	size_t i;

	for (i = 0; i < HASH_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[i] == '\0';
}

/* "KEY<TAB>HASH" -> a new entry of *env. */
static int add_env(struct obs_env **env, size_t *n, const char *line, struct plumb_err *err)
{
	const char *tab = strrchr(line, '\t');
	struct obs_env *e;

	if (!tab || tab == line || !is_hash(tab + 1)) {
		return plumb_err_set(err, PLUMB_EPROTOCOL, "malformed hash line");
	}
	if (*n >= OBS_MAX_VARS) {
		return plumb_err_set(err, PLUMB_ETOOBIG, "host output too large: more than %u env entries",
				     OBS_MAX_VARS);
	}
	*env = xrealloc(*env, (*n + 1) * sizeof(**env));
	e = &(*env)[(*n)++];
	e->key = xstrndup(line, (size_t)(tab - line));
	memcpy(e->hash, tab + 1, HASH_HEX_LEN + 1);
	return 0;
}

#define OBS_LOCK_DETAILS_MAX 8192 /* bytes of decoded lock details kept */

/* Decodes the lock's base64 details (whitespace ignored; util_base64_decode,
 * the one decoder) into printable text: newlines and printable bytes kept,
 * anything else '?', at most OBS_LOCK_DETAILS_MAX bytes. NULL if not base64. */
static char *b64_text(const char *s)
{
	size_t n = 0, len = 0, cap = (OBS_LOCK_DETAILS_MAX / 3 + 1) * 4;
	char *in = xmalloc(cap + 1);
	unsigned char *raw = NULL;

	for (; *s && n < cap; s++)
		if (*s != ' ' && *s != '\r' && *s != '\n' && *s != '\t')
			in[n++] = *s;
	if (util_base64_decode(in, n, 0, &raw, &len) != 0) {
		free(in);
		return NULL;
	}
	free(in);
	if (len > OBS_LOCK_DETAILS_MAX)
		len = OBS_LOCK_DETAILS_MAX;
	for (size_t i = 0; i < len; i++)
		if (!(raw[i] == '\n' || (raw[i] >= 0x20 && raw[i] != 0x7f)))
			raw[i] = '?';
	raw[len] = '\0';
	return (char *)raw;
}

/* A message from the host, reduced to printable ASCII and bounded. */
static int host_message(struct plumb_err *err, int code, const char *what, const char *msg)
{
	char clean[201];
	size_t j = 0;

	for (size_t i = 0; msg[i] && j < sizeof(clean) - 1; i++)
		clean[j++] = (msg[i] >= 0x20 && msg[i] < 0x7f) ? msg[i] : ' ';
	clean[j] = '\0';
	return plumb_err_set(err, code, "%s%s", what, clean);
}

enum cur { CUR_NONE, CUR_CONTAINER, CUR_IMAGE, CUR_FILE };

static void host_clear_observed(struct obs_host *h)
{
	for (size_t i = 0; i < h->ncontainers; i++)
		obs_container_release(&h->containers[i]);
	free(h->containers);
	h->containers = NULL;
	h->ncontainers = 0;
	for (size_t i = 0; i < h->nimages; i++)
		obs_image_release(&h->images[i]);
	free(h->images);
	h->images = NULL;
	h->nimages = 0;
	for (size_t i = 0; i < h->nenv_files; i++) {
		struct obs_env_file *f = &h->env_files[i];
		free(f->path);
		for (size_t j = 0; j < f->nvars; j++)
			free(f->vars[j].key);
		free(f->vars);
	}
	free(h->env_files);
	h->env_files = NULL;
	h->nenv_files = 0;
	free(h->lock_holder);
	h->lock_holder = NULL;
	free(h->docker_version);
	h->docker_version = NULL;
	free(h->home);
	h->home = NULL;
	obs_routes_free(h->routes, h->nroutes);
	h->routes = NULL;
	h->nroutes = 0;
	free(h->host_time);
	h->host_time = NULL;
	h->cached = 0;
}

/*
 * The parser: one handler per line tag. Every line is "T" or "T <arg>"; the
 * table says which tags take an argument and how long it may be, and each
 * handler checks its argument's own shape (field counts, hex hashes, JSON)
 * before using it. A line of any other shape makes the host unknown.
 */
struct pstate {
	struct obs_host *h;
	const struct docker_obs_query *q;
	enum cur cur;
	int saw_cstatus, saw_istatus;
	struct plumb_err *err; /* never NULL */
};

enum arg_rule {
	ARG_NONE,     /* the tag alone ("Z") */
	ARG_REQUIRED, /* "T <arg>", arg not empty */
	ARG_OPTIONAL, /* "T <arg>", arg may be empty ("K " when the details are unreadable) */
	ARG_ANY,      /* "T" or "T <arg>" (a failure message may be empty) */
};

typedef int (*line_fn)(struct pstate *ps, char *arg);

struct line_tag {
	char tag;
	enum arg_rule rule;
	size_t max; /* longest argument */
	line_fn fn;
};

static int perr(struct pstate *ps, const char *what)
{
	return plumb_err_set(ps->err, PLUMB_EPROTOCOL, "%s", what);
}

static int is_decimal(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* A new zeroed element at the end of *arr, or NULL (ps->err set) past the bound. */
static void *obj_add(struct pstate *ps, void **arr, size_t *n, size_t size, const char *what)
{
	char *e;

	if (*n >= OBS_MAX_OBJECTS) {
		plumb_err_set(ps->err, PLUMB_ETOOBIG, "host output too large: more than %u %s",
			      OBS_MAX_OBJECTS, what);
		return NULL;
	}
	*arr = xrealloc(*arr, (*n + 1) * size);
	e = (char *)*arr + *n * size;
	(*n)++;
	memset(e, 0, size);
	return e;
}

static int line_version(struct pstate *ps, char *arg)
{
	for (const char *s = arg; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return perr(ps, "malformed docker version line");
	free(ps->h->docker_version);
	ps->h->docker_version = xstrdup(arg);
	return 0;
}

/* The SSH user's home (absolute; where .kamal and accessory directories live). */
static int line_home(struct pstate *ps, char *arg)
{
	if (arg[0] != '/')
		return perr(ps, "malformed home directory line");
	for (const char *s = arg; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return perr(ps, "malformed home directory line");
	free(ps->h->home);
	ps->h->home = xstrdup(arg);
	return 0;
}

/* "<seconds>.<nanoseconds>", the host's clock (sent back as t:<time>) */
static int is_host_time(const char *s)
{
	size_t a = strspn(s, "0123456789");

	return a > 0 && a <= 12 && s[a] == '.' && strspn(s + a + 1, "0123456789") == strlen(s + a + 1) &&
	       s[a + 1] != '\0' && strlen(s + a + 1) <= 9;
}

static int line_time(struct pstate *ps, char *arg)
{
	if (!is_host_time(arg))
		return perr(ps, "malformed host time line");
	free(ps->h->host_time);
	ps->h->host_time = xstrdup(arg);
	return 0;
}

/* "U": the host saw no change since the time asked; only valid when the
 * caller merged an earlier answer in (docker_obs_host_cached), which marks
 * it by the line's position: nothing of a container list may come before. */
static int line_unchanged(struct pstate *ps, char *arg)
{
	(void)arg;
	if (ps->h->ncontainers || ps->h->nimages || ps->saw_cstatus)
		return perr(ps, "unchanged line after containers");
	ps->h->cached = 1;
	ps->cur = CUR_NONE;
	return 0;
}

static int line_failure(struct pstate *ps, char *arg)
{
	return host_message(ps->err, PLUMB_ERROR, "observation failed on the host: ", arg);
}

static int line_container(struct pstate *ps, char *arg)
{
	struct obs_host *h = ps->h;
	struct obs_container *c = obj_add(ps, (void **)&h->containers, &h->ncontainers,
					  sizeof(*c), "containers");

	if (!c)
		return ps->err->code;
	if (parse_container(c, arg, ps->err) < 0)
		return ps->err->code;
	docker_obs_classify(c, ps->q);
	ps->cur = CUR_CONTAINER;
	return 0;
}

static int line_image(struct pstate *ps, char *arg)
{
	struct obs_host *h = ps->h;
	struct obs_image *im = obj_add(ps, (void **)&h->images, &h->nimages, sizeof(*im), "images");

	if (!im)
		return ps->err->code;
	if (parse_image(im, arg, ps->err) < 0)
		return ps->err->code;
	ps->cur = CUR_IMAGE;
	return 0;
}

static int line_image_of(struct pstate *ps, char *arg)
{
	(void)arg;
	if (ps->cur != CUR_CONTAINER)
		return perr(ps, "image line outside a container");
	return 0;
}

static int line_env(struct pstate *ps, char *arg)
{
	struct obs_host *h = ps->h;

	if (ps->cur == CUR_CONTAINER) {
		struct obs_container *c = &h->containers[h->ncontainers - 1];
		return add_env(&c->env, &c->nenv, arg, ps->err);
	}
	if (ps->cur == CUR_IMAGE) {
		struct obs_image *im = &h->images[h->nimages - 1];
		return add_env(&im->env, &im->nenv, arg, ps->err);
	}
	return perr(ps, "env line outside a container or image");
}

static int line_end_object(struct pstate *ps, char *arg)
{
	(void)arg;
	ps->cur = CUR_NONE;
	return 0;
}

/* "containers <status>" or "images <status>" */
static int line_status(struct pstate *ps, char *arg)
{
	const char *w;
	int images;

	if (strncmp(arg, "containers ", 11) == 0) {
		images = 0;
		w = arg + 11;
	} else if (strncmp(arg, "images ", 7) == 0) {
		images = 1;
		w = arg + 7;
	} else {
		return perr(ps, "unexpected status line");
	}
	if (!is_decimal(w) || strlen(w) > 3)
		return perr(ps, "malformed status line");
	if (images)
		ps->saw_istatus = 1;
	else
		ps->saw_cstatus = 1;
	if (strcmp(w, "0") != 0) {
		return plumb_err_set(ps->err, PLUMB_ERROR, "docker %sinspect failed on the host (exit %d)",
				     images ? "image " : "", atoi(w));
	}
	ps->cur = CUR_NONE;
	return 0;
}

/* "<mode> <hash> <path>": mode in octal, the hash 64 hex, a path */
static int line_env_file(struct pstate *ps, char *arg)
{
	struct obs_host *h = ps->h;
	struct obs_env_file *f;
	char *sp1 = strchr(arg, ' '), *sp2;
	size_t ml;

	if (!sp1)
		return perr(ps, "malformed env file line");
	ml = (size_t)(sp1 - arg);
	if (ml == 0 || ml > 4 || strspn(arg, "01234567") != ml)
		return perr(ps, "malformed env file line");
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || (size_t)(sp2 - sp1 - 1) != HASH_HEX_LEN || sp2[1] == '\0')
		return perr(ps, "malformed env file line");
	*sp2 = '\0';
	if (!is_hash(sp1 + 1))
		return perr(ps, "malformed env file line");
	f = obj_add(ps, (void **)&h->env_files, &h->nenv_files, sizeof(*f), "env files");
	if (!f)
		return ps->err->code;
	f->mode = (int)strtol(arg, NULL, 8);
	memcpy(f->content_hash, sp1 + 1, HASH_HEX_LEN + 1);
	f->path = xstrdup(sp2 + 1);
	ps->cur = CUR_FILE;
	return 0;
}

static int line_env_file_var(struct pstate *ps, char *arg)
{
	struct obs_env_file *f;

	if (ps->cur != CUR_FILE)
		return perr(ps, "env file line outside a file");
	f = &ps->h->env_files[ps->h->nenv_files - 1];
	return add_env(&f->vars, &f->nvars, arg, ps->err);
}

static int line_lock(struct pstate *ps, char *arg)
{
	free(ps->h->lock_holder);
	ps->h->lock_holder = b64_text(arg);
	if (!ps->h->lock_holder)
		ps->h->lock_holder = xstrdup("(held; details unreadable)");
	ps->cur = CUR_NONE;
	return 0;
}

static int line_routes(struct pstate *ps, char *arg)
{
	/* kamal-proxy's routes, for the plan's traffic-switch step; unreadable
	 * routes are no routes (the step then says nothing about the target) */
	obs_routes_free(ps->h->routes, ps->h->nroutes);
	(void)kamal_proxy_parse_routes(&ps->h->routes, &ps->h->nroutes, arg);
	ps->cur = CUR_NONE;
	return 0;
}

static const struct line_tag line_tags[] = {
	{ 'V', ARG_REQUIRED, 256, line_version },
	{ 'W', ARG_REQUIRED, 4096, line_home },
	{ 'T', ARG_REQUIRED, 32, line_time },
	{ 'U', ARG_NONE, 0, line_unchanged },
	{ 'X', ARG_ANY, OBS_MAX_LINE, line_failure },
	{ 'C', ARG_REQUIRED, OBS_MAX_LINE, line_container },
	{ 'I', ARG_REQUIRED, OBS_MAX_LINE, line_image },
	{ 'M', ARG_REQUIRED, 256, line_image_of },
	{ 'E', ARG_REQUIRED, OBS_MAX_VAR_LINE, line_env },
	{ 'Z', ARG_NONE, 0, line_end_object },
	{ 'S', ARG_REQUIRED, 32, line_status },
	{ 'F', ARG_REQUIRED, 4096, line_env_file },
	{ 'L', ARG_REQUIRED, OBS_MAX_VAR_LINE, line_env_file_var },
	{ 'K', ARG_OPTIONAL, 16384, line_lock },
	{ 'R', ARG_OPTIONAL, 65536 + 2, line_routes },
};

/* The handler for a line, its argument in *arg; NULL when the line's shape is wrong. */
static const struct line_tag *line_shape(char *line, size_t n, char **arg)
{
	const struct line_tag *t = NULL;

	if (n == 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(line_tags) && !t; i++)
		if (line_tags[i].tag == line[0])
			t = &line_tags[i];
	if (!t)
		return NULL;
	if (n == 1) {
		*arg = line + 1; /* "" */
		return t->rule == ARG_NONE || t->rule == ARG_ANY ? t : NULL;
	}
	if (line[1] != ' ' || t->rule == ARG_NONE || n - 2 > t->max)
		return NULL;
	*arg = line + 2;
	if (n == 2 && t->rule == ARG_REQUIRED)
		return NULL;
	return t;
}

int docker_obs_parse(struct obs_host *h, const char *out, size_t len,
		     const struct docker_obs_query *q, struct plumb_err *err)
{
	struct plumb_err local = { 0 };
	struct pstate ps = { h, q, CUR_NONE, 0, 0, err ? err : &local };
	const char *p = out, *end = out + len;
	int first = 1, ended = 0;
	char *line = NULL;

	err = ps.err;
	plumb_err_reset(err);
	if (!h || !q || (!out && len))
		return plumb_err_set(err, PLUMB_EINVAL, "docker_obs_parse: missing host, query or output");
	if (memchr(out, '\0', len)) {
		plumb_err_set(err, PLUMB_EPROTOCOL, "observation output contains a NUL byte");
		goto fail;
	}
	while (p < end && !ended) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const struct line_tag *t;
		char *arg = NULL;
		size_t n;

		if (!nl) {
			plumb_err_set(err, PLUMB_EPROTOCOL, "observation output cut short (no END)");
			goto fail;
		}
		n = (size_t)(nl - p);
		if (n > OBS_MAX_LINE + 2) {
			plumb_err_set(err, PLUMB_ETOOBIG, "host output too large: a line longer than %u bytes",
				      OBS_MAX_LINE);
			goto fail;
		}
		free(line);
		line = xstrndup(p, n);
		p = nl + 1;
		if (first) {
			if (strcmp(line, "PLUMB-OBS 1") != 0) {
				plumb_err_set(err, PLUMB_EPROTOCOL, "observation output does not start with its header");
				goto fail;
			}
			first = 0;
			continue;
		}
		if (strcmp(line, "END") == 0) {
			ended = 1;
			break;
		}
		t = line_shape(line, n, &arg);
		if (!t) {
			plumb_err_set(err, PLUMB_EPROTOCOL, "unexpected line in the observation output");
			goto fail;
		}
		if (t->fn(&ps, arg) < 0)
			goto fail;
	}
	if (first || !ended) {
		plumb_err_set(err, PLUMB_EPROTOCOL, "observation output cut short (no END)");
		goto fail;
	}
	if (h->ncontainers && (!ps.saw_cstatus || (h->nimages && !ps.saw_istatus))) {
		plumb_err_set(err, PLUMB_EPROTOCOL, "observation output incomplete (missing status)");
		goto fail;
	}
	free(line);
	return 0;
fail:
	free(line);
	host_clear_observed(h);
	return err->code ? err->code : PLUMB_EPROTOCOL;
}

/* ---- one host ---- */

static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER;

static void dump_raw(const char *path, const char *host, const struct cmd_result *r)
{
	int fd;
	char *hdr;

	pthread_mutex_lock(&dump_lock);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		hdr = xasprintf("=== %s stdout ===\n", host);
		(void)!write(fd, hdr, strlen(hdr));
		free(hdr);
		(void)!write(fd, r->out.buf, r->out.len);
		hdr = xasprintf("=== %s stderr ===\n", host);
		(void)!write(fd, hdr, strlen(hdr));
		free(hdr);
		(void)!write(fd, r->err.buf, r->err.len);
		close(fd);
	}
	pthread_mutex_unlock(&dump_lock);
}

void docker_obs_cache_reset(struct docker_obs_cache *c)
{
	sbuf_release(&c->full);
	memset(c, 0, sizeof(*c));
}

/* Whether out holds a line that is exactly line. */
static int has_line(const char *out, size_t len, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = out, *end = out + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (l == n && memcmp(p, line, n) == 0)
			return 1;
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}

/*
 * An answer that says "U", completed from the cache: its own lines up to END
 * (home, time, U, env files, lock), then the containers, images, statuses
 * and routes of the cached full answer, then END. -1 when the answer has no
 * END (it is then parsed as it is, and fails as cut short).
 */
static int merge_cached(struct sbuf *out, const char *ans, size_t len, const struct sbuf *full)
{
	int ended = 0;

	for (const char *p = ans, *end = ans + len; p < end && !ended;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		if (nl - p == 3 && memcmp(p, "END", 3) == 0)
			ended = 1;
		else if (sbuf_add(out, p, (size_t)(nl - p + 1)) < 0)
			return -1;
		p = nl + 1;
	}
	if (!ended)
		return -1;
	for (const char *p = full->buf, *end = full->buf + full->len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (l >= 1 && p[0] && strchr("CMEZISRV", p[0]) && (l == 1 || p[1] == ' ') &&
		    (sbuf_add(out, p, l) < 0 || sbuf_addc(out, '\n') < 0))
			return -1;
		if (!nl)
			break;
		p = nl + 1;
	}
	return sbuf_adds(out, "END\n");
}

/* What an observation asks, without its t: word: the cache's key. */
static void cache_key(const struct prov_cmd *cmd, char key[65])
{
	struct sbuf r;

	sbuf_init(&r, 0);
	if (prov_cmd_render(cmd, &r) == 0)
		hash_sha256_hex(r.buf, r.len, key);
	else
		key[0] = '\0';
	sbuf_release(&r);
}

int docker_obs_host(struct obs_host *h, struct transport *t, const char *salt,
		    const struct docker_obs_query *q, const char *dump_path)
{
	return docker_obs_host_cached(h, t, salt, q, dump_path, NULL);
}

int docker_obs_host_cached(struct obs_host *h, struct transport *t, const char *salt,
			   const struct docker_obs_query *q, const char *dump_path,
			   struct docker_obs_cache *cache)
{
	struct prov_cmd cmd;
	struct cmd_result r;
	struct sbuf merged;
	unsigned long before = t->stats.commands;
	struct plumb_err err = { 0 };
	char key[65] = "";
	const char *since = NULL;
	int rc, unchanged = 0;

	cmd_result_init(&r, t->max_output);
	sbuf_init(&merged, 0);
	rc = docker_obs_build(&cmd, salt, q);
	if (rc == 0 && cache) {
		/* the question without its t: word is the cache's key; the word goes last */
		cache_key(&cmd, key);
		if (cache->valid && key[0] && strcmp(cache->key, key) == 0 && cache->since[0] &&
		    prov_now_ms() - cache->at_ms < DOCKER_OBS_CACHE_MAX_AGE_MS) {
			char *w = xasprintf("t:%s", cache->since);
			since = cache->since;
			prov_cmd_arg(&cmd, w);
			free(w);
			rc = cmd.err ? PLUMB_EINVAL : 0;
		} else {
			docker_obs_cache_reset(cache);
		}
	}
	if (rc == 0) {
		cmd_result_release(&r);
		rc = transport_run_cmd(t, &cmd, &r);
	}
	prov_cmd_release(&cmd);
	h->round_trips = (unsigned)(t->stats.commands - before);
	h->observe_ms = r.elapsed_ms;
	if (dump_path)
		dump_raw(dump_path, h->host, &r);
	free(h->error);
	h->error = NULL;
	if (rc < 0) {
		h->error = xasprintf("observation %s: %s", plumb_strerror(rc), transport_errmsg(t));
		goto unknown;
	}
	if (r.out.buf && has_line(r.out.buf, r.out.len, "U")) {
		/* only an answer to a t: question may say it, and only once */
		if (!since || merge_cached(&merged, r.out.buf, r.out.len, &cache->full) < 0) {
			h->error = xstrdup("observation output: an unchanged answer to a question not asked");
			goto unknown;
		}
		unchanged = 1;
	}
	if (docker_obs_parse(h, unchanged ? merged.buf : r.out.buf, unchanged ? merged.len : r.out.len,
			     q, &err) < 0) {
		h->error = xstrdup(plumb_err_msg(&err));
		goto unknown;
	}
	if (r.status != 0) {
		h->error = xasprintf("observation script exited with status %d", r.status);
		host_clear_observed(h);
		goto unknown;
	}
	if (cache) {
		if (!h->host_time || strlen(h->host_time) >= sizeof(cache->since)) {
			docker_obs_cache_reset(cache); /* a host whose date cannot say: always in full */
		} else {
			if (!unchanged) {
				sbuf_release(&cache->full);
				cache->full = r.out;
				sbuf_init(&r.out, 0);
				memcpy(cache->key, key, sizeof(cache->key));
				cache->at_ms = prov_now_ms();
				cache->valid = 1;
			}
			snprintf(cache->since, sizeof(cache->since), "%s", h->host_time);
		}
	}
	h->status = OBS_OK;
	sbuf_release(&merged);
	cmd_result_release(&r);
	return 0;
unknown:
	if (cache)
		docker_obs_cache_reset(cache);
	h->status = OBS_UNKNOWN;
	sbuf_release(&merged);
	cmd_result_release(&r);
	return -1;
}
