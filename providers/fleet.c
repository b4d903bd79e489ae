/*
 * The fleet handle (fleet.h): per host a slot holding its transport and the
 * read-only guard in front of it, opened on first use and kept until the
 * handle is freed (or the host's observation fails). Observation runs one
 * pool worker per host; a slot is touched only by the worker holding its
 * index, so a session never has two users at once.
 */
#include "providers/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/tunnel.h"
#include "state/config.h"

struct fleet_slot {
	char *host;
	struct transport *t;  /* raw; owned */
	struct transport *ro; /* guard in front of t; owned */
	struct tunnel **tunnels; /* owned; kept until fleet_free (fleet_tunnel) */
	size_t ntunnels;
	struct docker_obs_cache cache; /* the last full observation (observe_cache) */
};

struct fleet {
	enum fleet_mode mode;
	struct fleet_slot *slots;
	size_t n;
	char *user, *known_hosts, *accept_new_refused, *jump, *proxy_command, *connect_to, *dump;
	struct strvec keys;
	const char *key_data, *key_passphrase; /* SECRET, borrowed */
	int port, accept_new, concurrency, connect_timeout_ms, cmd_timeout_ms, observe_cache;
	size_t max_output;
	char salt[33]; /* the hashes' salt, for the handle's life (a cached observation's
			* hashes must compare with a later run's desired state) */
	unsigned long connects;
	unsigned long commands, refused; /* of sessions already closed */
	/* for one fleet_observe */
	struct obs_fleet *f;
	const struct docker_obs_query *q;
	double deadline;
};

static char *dup_or_null(const char *s)
{
	return s && *s ? xstrdup(s) : NULL;
}

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

void fleet_open(struct fleet **out, const struct fleet_opts *o, enum fleet_mode mode)
{
	struct fleet *fl = xcalloc(1, sizeof(*fl));

	fl->mode = mode;
	fl->n = o->nhosts;
	fl->slots = o->nhosts ? xcalloc(o->nhosts, sizeof(*fl->slots)) : NULL;
	for (size_t i = 0; i < o->nhosts; i++)
		fl->slots[i].host = xstrdup(o->hosts[i]);
	fl->user = xstrdup(o->user ? o->user : "root");
	fl->known_hosts = dup_or_null(o->known_hosts);
	fl->accept_new_refused = dup_or_null(o->accept_new_refused);
	fl->jump = dup_or_null(o->jump);
	fl->proxy_command = dup_or_null(o->proxy_command);
	fl->connect_to = dup_or_null(o->connect_to);
	fl->dump = dup_or_null(o->dump);
	for (size_t i = 0; i < o->nkeys; i++)
		strvec_push(&fl->keys, o->keys[i]);
	fl->key_data = o->key_data;
	fl->key_passphrase = o->key_passphrase;
	fl->port = o->port;
	fl->accept_new = o->accept_new;
	fl->concurrency = o->concurrency;
	fl->connect_timeout_ms = o->connect_timeout_ms;
	fl->cmd_timeout_ms = o->cmd_timeout_ms;
	fl->observe_cache = o->observe_cache;
	hash_salt_new(fl->salt);
	fl->max_output = o->max_output && o->max_output < PROV_DEFAULT_MAX_OUTPUT ? o->max_output : 0;
	*out = fl;
}

static void slot_close(struct fleet *fl, struct fleet_slot *s)
{
	if (s->t)
		__atomic_add_fetch(&fl->commands, s->t->stats.commands, __ATOMIC_RELAXED);
	if (s->ro)
		__atomic_add_fetch(&fl->refused, s->ro->stats.refused, __ATOMIC_RELAXED);
	transport_close(s->ro);
	transport_close(s->t);
	s->ro = s->t = NULL;
}

void fleet_free(struct fleet *fl)
{
	if (!fl)
		return;
	for (size_t i = 0; i < fl->n; i++) {
		for (size_t k = 0; k < fl->slots[i].ntunnels; k++)
			tunnel_close(fl->slots[i].tunnels[k]);
		free(fl->slots[i].tunnels);
		slot_close(fl, &fl->slots[i]);
		docker_obs_cache_reset(&fl->slots[i].cache);
		free(fl->slots[i].host);
	}
	free(fl->slots);
	free(fl->user);
	free(fl->known_hosts);
	free(fl->accept_new_refused);
	free(fl->jump);
	free(fl->proxy_command);
	free(fl->connect_to);
	free(fl->dump);
	strvec_release(&fl->keys);
	free(fl);
}

enum fleet_mode fleet_mode(const struct fleet *fl)
{
	return fl->mode;
}

size_t fleet_nhosts(const struct fleet *fl)
{
	return fl->n;
}

unsigned long fleet_connects(const struct fleet *fl)
{
	return fl->connects;
}

unsigned long fleet_commands(const struct fleet *fl)
{
	unsigned long n = fl->commands;

	for (size_t i = 0; i < fl->n; i++)
		n += fl->slots[i].t ? fl->slots[i].t->stats.commands : 0;
	return n;
}

unsigned long fleet_refused(const struct fleet *fl)
{
	unsigned long n = fl->refused;

	for (size_t i = 0; i < fl->n; i++)
		n += fl->slots[i].ro ? fl->slots[i].ro->stats.refused : 0;
	return n;
}

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

/* ms left before deadline (0 = none -> dflt); at least 1 while any is left, 0 when none. */
static int cut_to_deadline(int ms, int dflt, double deadline)
{
	double left;

	if (ms <= 0)
		ms = dflt;
	if (deadline <= 0)
		return ms;
	left = deadline - prov_now_ms();
	if (left <= 0)
		return 0;
	return left < ms ? (int)left + 1 : ms;
}

/* The options slot s's sessions open with; returns the relay address to free
 * after the open (to borrows it and fl's strings). */
static char *slot_opts(struct fleet *fl, struct fleet_slot *s, int ctmo, struct transport_opts *to)
{
	char *relay = connect_to_for(fl->connect_to, s->host);

	memset(to, 0, sizeof(*to));
	to->host = s->host;
	to->port = fl->port;
	to->user = fl->user;
	to->identity_files = (const char *const *)fl->keys.v;
	to->n_identity_files = fl->keys.n;
	to->key_data = fl->key_data;
	to->key_passphrase = fl->key_passphrase;
	to->use_agent = fl->keys.n == 0 && !fl->key_data;
	to->known_hosts = fl->known_hosts;
	to->accept_new_host_keys = fl->accept_new;
	to->accept_new_refused = fl->accept_new_refused;
	to->connect_to = relay;
	to->jump = fl->jump;
	to->proxy_command = fl->proxy_command;
	to->connect_timeout_ms = ctmo;
	to->cmd_timeout_ms = fl->cmd_timeout_ms;
	to->max_output = fl->max_output;
	return relay;
}

/* Opens slot i's session if it is not open; 0 or a negative PLUMB_E* code. */
static int slot_open(struct fleet *fl, size_t i, double deadline, struct plumb_err *err)
{
	struct fleet_slot *s = &fl->slots[i];
	int ctmo = cut_to_deadline(fl->connect_timeout_ms, PROV_DEFAULT_CONNECT_TIMEOUT_MS, deadline);
	int rc;

	plumb_err_reset(err);
	if (s->t)
		return 0;
	if (ctmo == 0)
		return plumb_err_set(err, PLUMB_ETIMEOUT, "deadline reached");
	if (is_local(s->host)) {
		rc = transport_local_open(&s->t);
	} else {
		struct transport_opts to;
		char *relay = slot_opts(fl, s, ctmo, &to);

		rc = transport_ssh_open(&s->t, &to, err);
		free(relay);
	}
	if (rc < 0) {
		if (err->code != rc)
			plumb_err_set(err, rc, "%s", plumb_strerror(rc));
		return rc;
	}
	__atomic_add_fetch(&fl->connects, 1, __ATOMIC_RELAXED);
	if (fl->cmd_timeout_ms > 0)
		s->t->cmd_timeout_ms = fl->cmd_timeout_ms;
	if (fl->max_output)
		s->t->max_output = fl->max_output;
	transport_readonly_wrap(&s->ro, s->t);
	return 0;
}

/* Host i's guard (raw = 0) or raw transport (raw = 1), opened if needed. */
static int slot_get(struct fleet *fl, size_t i, int raw, struct transport **out,
		    struct plumb_err *err)
{
	int rc;

	*out = NULL;
	if (i >= fl->n)
		return plumb_err_set(err, PLUMB_EINVAL, "no host %zu in the fleet", i);
	rc = slot_open(fl, i, 0, err);
	if (rc == 0)
		*out = raw ? fl->slots[i].t : fl->slots[i].ro;
	return rc;
}

int fleet_reader(struct fleet *fl, size_t i, struct transport **out, struct plumb_err *err)
{
	return slot_get(fl, i, 0, out, err);
}

int fleet_writer(struct fleet *fl, size_t i, struct transport **out, struct plumb_err *err)
{
	if (fl->mode != FLEET_READ_WRITE) {
		*out = NULL;
		return plumb_err_set(err, PLUMB_EREFUSED,
				     "%s: this fleet was opened read-only; a command that may "
				     "change the host needs a read-write open",
				     i < fl->n ? fl->slots[i].host : "?");
	}
	/* the host is about to change: its next observation is a full one
	 * (docker events would say so too; this does not depend on it) */
	if (i < fl->n)
		docker_obs_cache_reset(&fl->slots[i].cache);
	return slot_get(fl, i, 1, out, err);
}

int fleet_open_spare(struct fleet *fl, size_t i, int timeout_ms, struct transport **out,
		     struct plumb_err *err)
{
	struct transport_opts to;
	char *relay;
	int rc;

	*out = NULL;
	if (i >= fl->n || fl->mode != FLEET_READ_WRITE)
		return plumb_err_set(err, i >= fl->n ? PLUMB_EINVAL : PLUMB_EREFUSED,
				     "no session of its own to host %zu of this fleet", i);
	if (is_local(fl->slots[i].host)) {
		rc = transport_local_open(out);
	} else {
		relay = slot_opts(fl, &fl->slots[i], timeout_ms > 0 ? timeout_ms : fl->connect_timeout_ms, &to);
		rc = transport_ssh_open(out, &to, err);
		free(relay);
		__atomic_add_fetch(&fl->connects, rc == 0, __ATOMIC_RELAXED);
	}
	if (rc == 0 && timeout_ms > 0)
		(*out)->cmd_timeout_ms = timeout_ms;
	return rc;
}

int fleet_tunnel(struct fleet *fl, size_t i, int port, struct plumb_err *err)
{
	struct fleet_slot *s;
	struct transport_opts to;
	struct tunnel *tn = NULL;
	char *relay;
	int rc;

	if (i >= fl->n)
		return plumb_err_set(err, PLUMB_EINVAL, "no host %zu in the fleet", i);
	s = &fl->slots[i];
	if (port < 1 || port > 65535)
		return plumb_err_set(err, PLUMB_EINVAL, "%s: invalid tunnel port %d", s->host, port);
	if (fl->mode != FLEET_READ_WRITE)
		return plumb_err_set(err, PLUMB_EREFUSED,
				     "%s: this fleet was opened read-only; a tunnel for pulls needs a "
				     "read-write open",
				     s->host);
	plumb_err_reset(err);
	if (is_local(s->host))
		return 0; /* the registry is already on this machine's 127.0.0.1 */
	for (size_t k = 0; k < s->ntunnels; k++) {
		if (tunnel_port(s->tunnels[k]) != port)
			continue;
		if (tunnel_alive(s->tunnels[k]))
			return 0;
		/* its session broke: replace it */
		tunnel_close(s->tunnels[k]);
		s->tunnels[k] = s->tunnels[--s->ntunnels];
		break;
	}
	relay = slot_opts(fl, s, fl->connect_timeout_ms, &to);
	rc = tunnel_open(&tn, &to, port, err);
	free(relay);
	if (rc < 0)
		return rc;
	__atomic_add_fetch(&fl->connects, 1, __ATOMIC_RELAXED);
	s->tunnels = xrealloc(s->tunnels, (s->ntunnels + 1) * sizeof(*s->tunnels));
	s->tunnels[s->ntunnels++] = tn;
	return 0;
}

static void set_deadline_reached(struct obs_host *h, const char *why)
{
	char *e = why && *why && strcmp(why, "deadline reached") != 0
			  ? xasprintf("deadline reached (%s)", why)
			  : xstrdup("deadline reached");

	free(h->error);
	h->error = e;
	h->status = OBS_UNKNOWN;
}

static int observe_one(size_t i, void *ctx)
{
	struct fleet *fl = ctx;
	struct fleet_slot *s = &fl->slots[i];
	struct obs_host *h = &fl->f->hosts[i];
	struct plumb_err err = { 0 };
	double t0 = prov_now_ms();
	int rc, was_open = s->t != NULL, ctm;

	rc = slot_open(fl, i, fl->deadline, &err);
	h->connect_ms = was_open ? 0 : prov_now_ms() - t0;
	if (rc < 0) {
		if (fl->deadline > 0 && prov_now_ms() >= fl->deadline) {
			set_deadline_reached(h, plumb_err_msg(&err));
		} else {
			h->status = OBS_UNREACHABLE;
			h->error = xstrdup(plumb_err_msg(&err));
		}
		return -1;
	}
	ctm = cut_to_deadline(fl->cmd_timeout_ms, PROV_DEFAULT_CMD_TIMEOUT_MS, fl->deadline);
	if (ctm == 0) {
		set_deadline_reached(h, NULL);
		return -1;
	}
	s->t->cmd_timeout_ms = ctm;
	rc = docker_obs_host_cached(h, s->ro, fl->f->salt, fl->q, fl->dump,
				    fl->observe_cache ? &s->cache : NULL);
	s->t->cmd_timeout_ms = fl->cmd_timeout_ms > 0 ? fl->cmd_timeout_ms : PROV_DEFAULT_CMD_TIMEOUT_MS;
	if (h->status != OBS_OK) {
		if (fl->deadline > 0 && prov_now_ms() >= fl->deadline)
			set_deadline_reached(h, h->error);
		/* a session that failed is not trusted for the next cycle */
		slot_close(fl, s);
	}
	return rc;
}

int fleet_observe(struct fleet *fl, struct obs_fleet **out, const struct docker_obs_query *q,
		  double deadline_ms, struct plumb_err *err)
{
	struct obs_fleet *f = NULL;
	int *results = NULL, rc = PLUMB_ERROR;

	*out = NULL;
	if (prov_init() < 0)
		return plumb_err_set(err, PLUMB_ERROR, "cannot initialise the SSH library");
	f = xcalloc(1, sizeof(*f));
	memcpy(f->salt, fl->salt, sizeof(f->salt));
	f->nhosts = fl->n;
	f->hosts = fl->n ? xcalloc(fl->n, sizeof(*f->hosts)) : NULL;
	for (size_t i = 0; i < fl->n; i++) {
		f->hosts[i].host = xstrdup(fl->slots[i].host);
		f->hosts[i].status = OBS_UNKNOWN;
	}
	fl->f = f;
	fl->q = q;
	fl->deadline = deadline_ms;
	results = fl->n ? xcalloc(fl->n, sizeof(*results)) : NULL;
	if (prov_pool_run(fl->n, fl->concurrency, observe_one, fl, results) < 0) {
		plumb_err_set(err, PLUMB_ERROR, "cannot start worker threads");
		goto out;
	}
	rc = 0;
	for (size_t i = 0; i < f->nhosts; i++)
		if (f->hosts[i].status != OBS_OK)
			rc = 1;
	*out = f;
	f = NULL;
out:
	fl->f = NULL;
	fl->q = NULL;
	obs_fleet_free(f);
	free(results);
	return rc;
}
