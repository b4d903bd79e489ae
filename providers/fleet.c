/*
 * Observing a fleet (fleet.h): one worker per host from the pool; each opens
 * its host's transport, wraps it in the read-only guard, runs the
 * observation once and closes everything before returning, so a session
 * never crosses threads.
 */
#include "providers/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/trust.h"

void fleet_query(struct docker_obs_query *q, const struct config *c)
{
	const char **accs = c->naccessories ? xcalloc(c->naccessories, sizeof(*accs)) : NULL;

	memset(q, 0, sizeof(*q));
	q->service = c->service;
	q->destination = c->destination ? c->destination : "";
	for (size_t i = 0; i < c->naccessories; i++)
		accs[i] = c->accessories[i].service;
	q->accessories = accs;
	q->naccessories = c->naccessories;
}

void fleet_query_release(struct docker_obs_query *q)
{
	free((void *)q->accessories);
	memset(q, 0, sizeof(*q));
}

struct fleet_run {
	const struct config *c;
	const struct fleet_opts *o;
	struct obs_fleet *f;
	struct docker_obs_query q;
	const char *dump;          /* PLUMB_DEBUG_OBSERVATION */
	struct fleet_conn conn;
	const char *key_data;      /* SECRET (borrowed from the config); trusted only */
	const char *connect_to;    /* PLUMB_SSH_CONNECT_TO */
};

static int is_local(const char *host)
{
	return strcmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0;
}

/* "HOST=ADDR:PORT,…" -> the ADDR:PORT for host (caller frees), or NULL. */
static char *connect_to_for(const char *spec, const char *host)
{
	size_t hl = strlen(host);

	while (spec && *spec) {
		size_t n = strcspn(spec, ",");
		if (n > hl + 1 && strncmp(spec, host, hl) == 0 && spec[hl] == '=')
			return xstrndup(spec + hl + 1, n - hl - 1);
		spec += n;
		if (*spec == ',')
			spec++;
	}
	return NULL;
}

static char *expand_path(const char *p, const char *root)
{
	const char *home = getenv("HOME");

	if (p[0] == '~' && (p[1] == '/' || p[1] == '\0'))
		return xasprintf("%s%s", home ? home : "", p + 1);
	if (p[0] != '/' && root)
		return xasprintf("%s/%s", root, p);
	return xstrdup(p);
}

static int observe_one(size_t i, void *ctx)
{
	struct fleet_run *r = ctx;
	struct obs_host *h = &r->f->hosts[i];
	struct transport *t = NULL, *ro = NULL;
	char errmsg[512] = "";
	char *relay = NULL;
	double t0 = prov_now_ms();
	int rc;

	if (is_local(h->host)) {
		rc = transport_local_open(&t);
		if (rc == 0 && r->o->cmd_timeout_ms > 0)
			t->cmd_timeout_ms = r->o->cmd_timeout_ms;
	} else {
		struct transport_opts to = { 0 };

		relay = connect_to_for(r->connect_to, h->host);
		to.host = h->host;
		to.port = r->c->ssh.port;
		to.user = r->c->ssh.user ? r->c->ssh.user : "root";
		to.identity_files = (const char *const *)r->conn.keys.v;
		to.n_identity_files = r->conn.keys.n;
		to.key_data = r->key_data;
		to.use_agent = r->conn.keys.n == 0 && !r->key_data;
		to.known_hosts = r->conn.known_hosts;
		to.accept_new_host_keys = r->conn.accept_new;
		to.connect_to = relay;
		to.jump = r->c->ssh.proxy;
		to.proxy_command = r->o->trusted ? r->c->ssh.proxy_command : NULL;
		to.connect_timeout_ms = r->o->connect_timeout_ms;
		to.cmd_timeout_ms = r->o->cmd_timeout_ms;
		to.max_output = r->conn.max_output;
		rc = transport_ssh_open(&t, &to, errmsg, sizeof(errmsg));
	}
	h->connect_ms = prov_now_ms() - t0;
	if (rc < 0) {
		h->status = OBS_UNREACHABLE;
		h->error = errmsg[0] ? xstrdup(errmsg) : xasprintf("%s", prov_strerror(rc));
		free(relay);
		return -1;
	}
	if (r->conn.max_output)
		t->max_output = r->conn.max_output;
	transport_readonly_wrap(&ro, t);
	rc = docker_obs_host(h, ro, r->f->salt, &r->q, r->dump);
	transport_close(ro);
	transport_close(t);
	free(relay);
	return rc;
}

int fleet_conn_settings(struct fleet_conn *r, const struct config *c, const struct fleet_opts *o,
			char *err, size_t errlen)
{
	const char *root = o->root ? o->root : ".";
	const char *kh = kvs_get(&c->x_plumb, "ssh.known_hosts");
	const char *env = getenv("PLUMB_OBS_MAX_OUTPUT");

	memset(r, 0, sizeof(*r));
	if (env && *env) {
		/* a test knob: it may only lower the bound */
		unsigned long long v = strtoull(env, NULL, 10);
		r->max_output = v > 0 && v < PROV_DEFAULT_MAX_OUTPUT ? (size_t)v : PROV_DEFAULT_MAX_OUTPUT;
	}
	env = getenv("PLUMB_SSH_KNOWN_HOSTS");
	if (env && *env) {
		r->known_hosts = xstrdup(env);
	} else if (kh && o->trusted) {
		r->known_hosts = expand_path(kh, root);
	} else if (kh) {
		r->known_hosts = trust_resolve_inside(root, kh);
		if (!r->known_hosts) {
			snprintf(err, errlen,
				 "x-plumb.ssh.known_hosts '%s' is outside the repository; an untrusted run "
				 "uses only a known_hosts file inside it (or PLUMB_SSH_KNOWN_HOSTS)", kh);
			return -1;
		}
	}
	env = getenv("PLUMB_SSH_ACCEPT_NEW");
	if (env && strcmp(env, "1") == 0)
		r->accept_new = 1;
	else if (o->trusted)
		r->accept_new = (env = kvs_get(&c->x_plumb, "ssh.accept_new_host_keys")) &&
				strcmp(env, "true") == 0;
	env = getenv("PLUMB_SSH_KEY");
	if (env && *env)
		strvec_push(&r->keys, env);
	for (size_t i = 0; i < c->ssh.keys.n; i++) {
		const char *k = c->ssh.keys.v[i];
		char *p;

		if (o->trusted) {
			strvec_push_take(&r->keys, expand_path(k, NULL));
			continue;
		}
		if (!trust_path_is_inside(k))
			continue;
		p = trust_resolve_inside(root, k);
		if (!p) {
			snprintf(err, errlen,
				 "ssh.keys '%s' leads outside the repository (a symbolic link?); an untrusted "
				 "run uses only keys inside it, PLUMB_SSH_KEY and the SSH agent", k);
			return -1;
		}
		strvec_push_take(&r->keys, p);
	}
	return 0;
}

void fleet_conn_release(struct fleet_conn *r)
{
	free(r->known_hosts);
	strvec_clear(&r->keys);
	memset(r, 0, sizeof(*r));
}


/* The invocation's bound, else Kamal's sshkit.max_concurrent_starts, else the pool's default. */
static int fleet_concurrency(const struct config *c, const struct fleet_opts *o)
{
	const char *v = kvs_get(&c->sshkit, "max_concurrent_starts");

	if (o->concurrency > 0)
		return o->concurrency;
	if (v && atoi(v) > 0)
		return atoi(v);
	return 0;
}

int fleet_observe(struct obs_fleet **out, const struct config *c, const struct fleet_opts *o,
		  char *err, size_t errlen)
{
	struct fleet_run r = { .c = c, .o = o };
	struct strvec hosts = { 0 };
	struct obs_fleet *f = NULL;
	int *results = NULL, rc = -1;
	const char *env;

	*out = NULL;
	if (prov_init() < 0) {
		snprintf(err, errlen, "cannot initialise the SSH library");
		return -1;
	}
	config_all_hosts(c, &hosts);
	f = xcalloc(1, sizeof(*f));
	salt_new(f->salt);
	f->nhosts = hosts.n;
	f->hosts = hosts.n ? xcalloc(hosts.n, sizeof(*f->hosts)) : NULL;
	for (size_t i = 0; i < hosts.n; i++) {
		f->hosts[i].host = xstrdup(hosts.v[i]);
		f->hosts[i].status = OBS_UNKNOWN;
	}
	r.f = f;
	fleet_query(&r.q, c);

	env = getenv("PLUMB_DEBUG_OBSERVATION");
	r.dump = env && *env ? env : NULL;
	env = getenv("PLUMB_SSH_CONNECT_TO");
	r.connect_to = env && *env ? env : NULL;
	if (fleet_conn_settings(&r.conn, c, o, err, errlen) < 0)
		goto out;
	/* A repository that names this machine would have an untrusted run (a PR
	 * check) observe the runner itself: only the invocation may allow it. */
	env = getenv("PLUMB_ALLOW_LOCAL");
	if (!o->trusted && !(env && strcmp(env, "1") == 0)) {
		for (size_t i = 0; i < hosts.n; i++)
			if (is_local(hosts.v[i])) {
				snprintf(err, errlen,
					 "host '%s' is this machine: an untrusted run does not observe it because "
					 "the repository says so (pass --trusted, or set PLUMB_ALLOW_LOCAL=1)",
					 hosts.v[i]);
				goto out;
			}
	}
	if (o->trusted) {
		for (size_t i = 0; i < c->ssh.key_data.n && !r.key_data; i++) {
			const char *k = c->ssh.key_data.v[i];
			int avail = 0;
			const char *v = config_secret_value(c, k, &avail);

			if (v && avail)
				r.key_data = v;
			else if (strncmp(k, "-----BEGIN", 10) == 0)
				r.key_data = k;
		}
	}

	results = hosts.n ? xcalloc(hosts.n, sizeof(*results)) : NULL;
	if (prov_pool_run(hosts.n, fleet_concurrency(c, o), observe_one, &r, results) < 0) {
		snprintf(err, errlen, "cannot start worker threads");
		goto out;
	}
	rc = 0;
	for (size_t i = 0; i < f->nhosts; i++)
		if (f->hosts[i].status != OBS_OK)
			rc = 1;
	*out = f;
	f = NULL;
out:
	obs_fleet_free(f);
	free(results);
	fleet_query_release(&r.q);
	fleet_conn_release(&r.conn);
	strvec_clear(&hosts);
	return rc;
}
