/*
 * The pipeline (pipeline.h). Each stage writes what it has to say to one
 * memory stream (the result's log); nothing is printed here.
 */
#include "reconciler/pipeline.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/git_src.h"
#include "providers/registry.h"
#include "reconciler/cli.h"
#include "reconciler/load.h"
#include "state/hash.h"
#include "state/synth_obs.h"

struct pl_priv {
	struct rec_loaded L;
	int loaded_via_rec;
	struct git_src *g;
	int g_borrowed;     /* opts.git: the caller's */
	char commit[41];    /* the commit the configuration was read from (not a checkout) */
	int fleet_borrowed; /* r->fleet is opts.keep's */
	struct source *src, *bsrc;
	struct config *bc;
	struct obs_fleet *bobs;
	struct fleet *bfleet;
	struct strvec extra;
	struct rec_fleet_settings set, bset;
	struct docker_obs_query q, bq;
	struct rec_invocation inv;
	struct registry_options ropt;
	struct registry_client *pin_rc; /* resolves x-plumb pin_digest accessories */
	char *relfile, *platform;
};

struct pl_run {
	const struct rec_pipeline_opts *o;
	struct rec_pipeline_result *r;
	struct pl_priv *p;
	FILE *log;
	char sha[41];
	double deadline;
};

static void say(struct pl_run *run, const char *fmt, ...) PLUMB_PRINTF(2, 3);
static void say(struct pl_run *run, const char *fmt, ...)
{
	va_list ap;

	fprintf(run->log, "plumb %s: ", run->o->cmd);
	va_start(ap, fmt);
	vfprintf(run->log, fmt, ap);
	va_end(ap);
	fputc('\n', run->log);
}

/* Says why a stage failed and records it as the run's error (the first one wins). */
static int fail(struct pl_run *run, int code, const char *fmt, ...) PLUMB_PRINTF(3, 4);
static int fail(struct pl_run *run, int code, const char *fmt, ...)
{
	struct plumb_err *e = &run->r->err;
	va_list ap;

	if (e->code)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	say(run, "%s", e->msg);
	return code;
}

int rec_parse_duration(const char *s, int *out)
{
	char *end = NULL;
	double v, mul = 1000;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	v = strtod(s, &end);
	if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0 || !*end)
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else
		return -1;
	v *= mul;
	if (v < 1 || v > 24.0 * 3600000)
		return -1;
	*out = (int)v;
	return 0;
}

/* Loads a config from a git source; diagnostics to the log. */
static int load_from(struct config **out, struct source *src, struct pl_run *run)
{
	struct config_opts co = { 0 };
	struct diags d = { 0 };
	int rc;

	co.file = run->o->src.repo ? (run->o->src.config_path ? run->o->src.config_path : "config/deploy.yml")
			       : run->p->relfile;
	co.destination = run->o->src.destination;
	co.trusted = run->o->src.trusted;
	rec_config_opts_fill(&co);
	rc = config_load(out, src, &co, &d);
	diags_print(&d, run->log);
	diags_release(&d);
	return rc;
}

/* Stage 1: the source and the config (and the commit, when there is one). */
static int stage_source(struct pl_run *run)
{
	const struct rec_pipeline_opts *o = run->o;
	struct pl_priv *p = run->p;
	struct plumb_err err = { 0 };
	int rc = -1;

	if (o->git) {
		p->g = o->git;
		p->g_borrowed = 1;
	} else if (o->src.repo || o->src.ref || o->src.base) {
		struct git_src_opts go = { 0 };
		rec_git_opts(&go, o->src.allow_foreign_owner);
		go.location = o->src.repo ? o->src.repo : run->r->root;
		go.ref = o->src.ref;
		if (git_src_open(&p->g, &go, &err) != 0 || git_src_fetch(p->g, NULL, &err) != 0) {
			say(run, "%s", plumb_err_msg(&err));
			goto out;
		}
	}
	if (o->src.repo || o->src.ref || o->git) {
		if (git_src_resolve(p->g, o->src.ref, run->sha, &err) != 0 ||
		    git_src_source_at(p->g, run->sha, &p->src, &err) != 0) {
			say(run, "%s", plumb_err_msg(&err));
			goto out;
		}
		memcpy(p->commit, run->sha, sizeof(p->commit));
		if (load_from(&run->r->config, p->src, run) != 0)
			goto out;
	} else {
		struct rec_load_opts lo = { o->src.config_path, o->src.destination, o->src.trusted, run->log };
		p->loaded_via_rec = 1;
		if (rec_load(&p->L, &lo) != 0)
			goto out;
		run->r->config = p->L.config;
		free(run->r->root);
		run->r->root = xstrdup(p->L.root);
		/* the checkout's HEAD, when it is a git repository */
		if (!p->g && o->until == REC_STAGE_DIFF) {
			struct git_src_opts go = { 0 };
			rec_git_opts(&go, o->src.allow_foreign_owner);
			go.location = p->L.root;
			if (git_src_open(&p->g, &go, &err) != 0) {
				git_src_free(p->g);
				p->g = NULL;
			}
			plumb_err_reset(&err);
		}
		if (p->g && git_src_resolve(p->g, NULL, run->sha, &err) != 0)
			run->sha[0] = '\0';
		plumb_err_reset(&err);
	}
	rc = 0;
out:
	return rc;
}

static const char *app_registry_domain(const struct config *c)
{
	return c->registry.server ? c->registry.server : "docker.io";
}

/* tag → identity. 0 (FOUND/NOT_FOUND in *st, *id set when found) or -1. */
static int resolve_image(struct pl_run *run, const char *ref, const struct registry_options *ropt,
			 enum des_image_status *st, char **id)
{
	const struct config *c = run->r->config;
	struct registry_client *rc = registry_client_new(ropt);
	struct registry_result res = { 0 };
	char *err = NULL;
	int ret = -1;

	for (size_t i = 0; i < c->xplumb.registry_insecure.n; i++)
		registry_client_add_insecure(rc, c->xplumb.registry_insecure.v[i]);
	/* Credentials come from secrets only when trusted; else the docker config file.
	 * An unavailable credential is never a value: the client sends none. */
	if (run->o->src.trusted) {
		struct cfg_secret user, pw;
		char *why = NULL;
		int have = config_registry_credentials(c, &user, &pw, &why);
		if (have > 0)
			registry_client_set_credentials(rc, app_registry_domain(c), user.value, pw.value);
		else if (have < 0)
			registry_client_set_credentials_unavailable(rc, app_registry_domain(c), why);
		free(why);
	}
	if (registry_resolve(rc, ref, &res, &err) != 0) {
		say(run, "registry: %s: %s", ref, err ? err : "lookup failed");
		goto out;
	}
	if (res.status == REGISTRY_FOUND && res.config_digest) {
		*st = DES_IMAGE_FOUND;
		*id = xstrdup(res.config_digest);
	} else {
		*st = DES_IMAGE_NOT_FOUND;
	}
	ret = 0;
out:
	free(err);
	registry_result_release(&res);
	registry_client_free(rc);
	return ret;
}

/* Moves hosts of `from` that are in `names` and not in `into` over to `into`. */
static void adopt_hosts(struct obs_fleet *into, struct obs_fleet *from, const struct strvec *names)
{
	for (size_t i = 0; i < from->nhosts; i++) {
		struct obs_host *h = &from->hosts[i];
		if (!strvec_contains(names, h->host) || obs_fleet_host(into, h->host))
			continue;
		into->hosts = xrealloc(into->hosts, (into->nhosts + 1) * sizeof(*into->hosts));
		into->hosts[into->nhosts++] = *h;
		memset(h, 0, sizeof(*h));
		h->host = xstrdup("(moved)");
	}
}

static void digest_str(struct sbuf *sb, const char *s)
{
	/* length-prefixed, so that no two sets of values give the same text */
	sbuf_addf(sb, "%zu:%s;", s ? strlen(s) : (size_t)-1, s ? s : "");
}

/* The digest of everything a fleet is opened with (secrets included: only
 * the digest is kept). */
static void fleet_digest(const struct fleet_opts *fo, enum fleet_mode mode, char out[65])
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	sbuf_addf(&sb, "%d;%zu;", (int)mode, fo->nhosts);
	for (size_t i = 0; i < fo->nhosts; i++)
		digest_str(&sb, fo->hosts[i]);
	sbuf_addf(&sb, "%zu;", fo->nkeys);
	for (size_t i = 0; i < fo->nkeys; i++)
		digest_str(&sb, fo->keys[i]);
	digest_str(&sb, fo->user);
	digest_str(&sb, fo->key_data);
	digest_str(&sb, fo->key_passphrase);
	digest_str(&sb, fo->known_hosts);
	digest_str(&sb, fo->accept_new_refused);
	digest_str(&sb, fo->jump);
	digest_str(&sb, fo->proxy_command);
	digest_str(&sb, fo->connect_to);
	digest_str(&sb, fo->dump);
	sbuf_addf(&sb, "%d;%d;%zu;%d;%d;%d", fo->port, fo->accept_new, fo->max_output,
		  fo->concurrency, fo->connect_timeout_ms, fo->cmd_timeout_ms);
	hash_sha256_hex(sb.buf ? sb.buf : "", sb.len, out);
	if (sb.buf)
		explicit_bzero(sb.buf, sb.len);
	sbuf_release(&sb);
}

static char *dup_secret(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void rec_fleet_keep_release(struct rec_fleet_keep *k)
{
	fleet_free(k->fleet);
	k->fleet = NULL;
	util_free_secret(k->key_data);
	util_free_secret(k->key_passphrase);
	k->key_data = k->key_passphrase = NULL;
	k->digest[0] = '\0';
}

/* keep's fleet when fo is what it was opened with, else a new one in its place. */
static struct fleet *keep_fleet(struct rec_fleet_keep *k, const struct fleet_opts *fo,
				enum fleet_mode mode)
{
	struct fleet_opts own = *fo;
	char d[65];

	fleet_digest(fo, mode, d);
	if (k->fleet && strcmp(d, k->digest) == 0)
		return k->fleet;
	rec_fleet_keep_release(k);
	k->key_data = dup_secret(fo->key_data);
	k->key_passphrase = dup_secret(fo->key_passphrase);
	own.key_data = k->key_data;
	own.key_passphrase = k->key_passphrase;
	own.observe_cache = 1; /* a kept fleet observes again: each host's last answer kept */
	fleet_open(&k->fleet, &own, mode);
	memcpy(k->digest, d, sizeof(d));
	return k->fleet;
}

/* Opens a handle for c's hosts and observes them; 0/1 as fleet_observe, -1 with the log. */
static int observe(struct pl_run *run, const struct config *c, struct rec_fleet_settings *set,
		   struct docker_obs_query *q, struct fleet **fl, struct obs_fleet **obs,
		   const char *what)
{
	struct plumb_err err = { 0 };
	int rc;

	rc = rec_fleet_settings(set, c, &run->p->inv, run->r->root, run->o->src.trusted, &err);
	if (rc == 0 && run->o->mode == FLEET_READ_WRITE && !rec_may_mutate())
		rc = plumb_err_set(&err, PLUMB_EREFUSED,
				   "plumb %s may not change hosts: a read-write fleet is refused",
				   run->o->cmd ? run->o->cmd : "(command)");
	if (rc == 0) {
		if (run->o->keep && fl == &run->r->fleet) {
			*fl = keep_fleet(run->o->keep, &set->fo, run->o->mode);
			run->p->fleet_borrowed = 1;
		} else {
			fleet_open(fl, &set->fo, run->o->mode);
		}
		fleet_query(q, c);
		rc = fleet_observe(*fl, obs, q, run->deadline, &err);
	}
	if (rc < 0 && what)
		fail(run, rc, "%s: %s", what, plumb_err_msg(&err));
	else if (rc < 0)
		fail(run, rc, "%s", plumb_err_msg(&err));
	return rc < 0 ? -1 : rc;
}

/* Stage 4: observation, read-only; the base revision's extra hosts too. */
static int stage_observe(struct pl_run *run)
{
	struct pl_priv *p = run->p;
	struct rec_pipeline_result *r = run->r;
	struct strvec cur = { 0 }, bh = { 0 };
	int rc;

	rc = observe(run, r->config, &p->set, &p->q, &r->fleet, &r->obs,
		     run->o->until == REC_STAGE_DIFF ? "observation" : NULL);
	if (rc < 0)
		return -1;
	r->observe_rc = rc;
	if (!p->bc)
		return 0;
	config_all_hosts(r->config, &cur);
	config_all_hosts(p->bc, &bh);
	for (size_t i = 0; i < bh.n; i++)
		if (!strvec_contains(&cur, bh.v[i]))
			strvec_push(&p->extra, bh.v[i]);
	strvec_release(&bh);
	strvec_release(&cur);
	if (!p->extra.n)
		return 0;
	rc = observe(run, p->bc, &p->bset, &p->bq, &p->bfleet, &p->bobs,
		     "observation of the base's hosts");
	if (rc < 0)
		return -1;
	adopt_hosts(r->obs, p->bobs, &p->extra);
	return 0;
}

/* The primary role's container prefix, "<service>-<role>[-<dest>]"; caller frees. */
static char *primary_prefix(const struct config *c)
{
	const char *role = c->primary_role ? c->primary_role : "web";

	return c->destination ? xasprintf("%s-%s-%s", c->service, role, c->destination)
			      : xasprintf("%s-%s", c->service, role);
}

/* When a container stopped (else when it was made), for ordering; never NULL. */
static const char *stopped_at(const struct obs_container *oc)
{
	if (oc->finished_at && strncmp(oc->finished_at, "0001-", 5) != 0)
		return oc->finished_at;
	return oc->created ? oc->created : "";
}

/*
 * rollback: the version to return to, from the observation: the stopped
 * container of the primary role whose version no host runs that stopped
 * last (the one that ran before the current one). NULL when there is none.
 * Caller frees.
 */
static char *rollback_version(const struct config *c, const struct obs_fleet *obs)
{
	char *prefix = primary_prefix(c), *best = NULL;
	const struct obs_container *pick = NULL;
	struct strvec running = { 0 };
	size_t pl = strlen(prefix);

	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < obs->nhosts; i++)
			for (size_t k = 0; k < obs->hosts[i].ncontainers; k++) {
				const struct obs_container *oc = &obs->hosts[i].containers[k];
				int run = oc->state && strcmp(oc->state, "running") == 0;
				if (oc->kind != OBS_APP || strncmp(oc->name, prefix, pl) != 0 ||
				    oc->name[pl] != '-' || strstr(oc->name, "_replaced_"))
					continue;
				if (pass == 0 && run)
					strvec_push(&running, oc->name + pl + 1);
				else if (pass == 1 && !run && !strvec_contains(&running, oc->name + pl + 1) &&
					 (!pick || strcmp(stopped_at(oc), stopped_at(pick)) > 0))
					pick = oc;
			}
	if (pick)
		best = xstrdup(pick->name + pl + 1);
	strvec_release(&running);
	free(prefix);
	return best;
}

/* rollback: the identity and reference of the primary role's container of
 * version (any host), as observed. 0 when found. */
static int observed_image(const struct config *c, const struct obs_fleet *obs, const char *version,
			  char **identity)
{
	char *prefix = primary_prefix(c), *name = xasprintf("%s-%s", prefix, version);
	int rc = -1;

	for (size_t i = 0; i < obs->nhosts && rc; i++)
		for (size_t k = 0; k < obs->hosts[i].ncontainers && rc; k++) {
			const struct obs_container *oc = &obs->hosts[i].containers[k];
			if (strcmp(oc->name, name) == 0 && oc->image_id) {
				*identity = xstrdup(oc->image_id);
				rc = 0;
			}
		}
	free(prefix);
	free(name);
	return rc;
}

/* Stages 2, 3, 5, 6: version, image identity, desired states, diff. */
static int same_str(const char *a, const char *b)
{
	return (!a || !*a) ? (!b || !*b) : (b && strcmp(a, b) == 0);
}

/* The watcher's last applied revision as the base, when it applies here. */
static const char *state_base(struct pl_run *run)
{
	const struct rec_pipeline_opts *o = run->o;
	const struct config *c = run->r->config;
	struct plumb_err err = { 0 };
	char sha[41];

	if (!o->state_base || !run->p->g)
		return NULL;
	if (!same_str(o->state_service, c->service) || !same_str(o->state_destination, c->destination))
		return NULL;
	if (git_src_resolve(run->p->g, o->state_base, sha, &err) != 0) {
		say(run, "the watcher's last applied revision %.12s is not in this repository: no base",
		    o->state_base);
		return NULL;
	}
	say(run, "base: %.12s (the watcher's last applied revision)", sha);
	return o->state_base;
}

/* --offline: the base's hosts that the configuration no longer has (their
 * containers are orphans), as stage_observe finds them. */
static void offline_extra(struct pl_run *run)
{
	struct strvec cur = { 0 }, bh = { 0 };

	config_all_hosts(run->r->config, &cur);
	config_all_hosts(run->p->bc, &bh);
	for (size_t i = 0; i < bh.n; i++)
		if (!strvec_contains(&cur, bh.v[i]))
			strvec_push(&run->p->extra, bh.v[i]);
	strvec_release(&bh);
	strvec_release(&cur);
}

static int stage_plan(struct pl_run *run)
{
	const struct rec_pipeline_opts *o = run->o;
	struct pl_priv *p = run->p;
	struct rec_pipeline_result *r = run->r;
	struct config *c = r->config;
	struct desired_opts dopt = { 0 };
	struct diff_opts dfo = { 0 };
	struct diags d = { 0 };
	enum des_image_status st = DES_IMAGE_UNKNOWN;
	char *image_ref = NULL, *identity = NULL;
	struct plumb_err err = { 0 };
	const char *version, *base = NULL;
	char *rb_version = NULL, *bversion = NULL, *bref = NULL, *bidentity = NULL;
	char bsha[41] = "", salt[33] = "";
	int rc = -1;

	if (o->rollback) {
		if (o->before_connect && o->before_connect(c, r->root, o->src.version, o->ctx) != 0) {
			fail(run, PLUMB_ERROR, "stopped before connecting");
			goto out;
		}
		/* the hosts first: they say which versions are there to return to */
		if (stage_observe(run) < 0)
			goto out;
		version = o->src.version;
		if (!version) {
			version = rb_version = rollback_version(c, r->obs);
			if (!version) {
				fail(run, PLUMB_ENOTFOUND,
				     "no retained previous version of the %s role to roll back to",
				     c->primary_role ? c->primary_role : "web");
				goto out;
			}
		}
		image_ref = c->registry.server ? xasprintf("%s/%s:%s", c->registry.server, c->image, version)
					       : xasprintf("%s:%s", c->image, version);
		if (observed_image(c, r->obs, version, &identity) != 0) {
			fail(run, PLUMB_ENOTFOUND, "version %s: no container of it is retained on the hosts",
			     version);
			goto out;
		}
		st = DES_IMAGE_FOUND;
		goto build;
	}
	/* version: --version > x-plumb version > $VERSION > the commit */
	version = o->src.version;
	if (!version)
		version = c->xplumb.version;
	if (!version || !*version)
		version = getenv("VERSION");
	if (!version || !*version)
		version = run->sha[0] ? run->sha : NULL;
	if (!version) {
		fail(run, PLUMB_EINVAL, "no version: not a git checkout; pass --version");
		goto out;
	}
	if (o->before_connect && o->before_connect(c, r->root, version, o->ctx) != 0) {
		fail(run, PLUMB_ERROR, "stopped before connecting");
		goto out;
	}
	image_ref = c->registry.server ? xasprintf("%s/%s:%s", c->registry.server, c->image, version)
				       : xasprintf("%s:%s", c->image, version);
	{
		/* the registry's waits are cut to the run's deadline too (per request) */
		long left = (long)(run->deadline - prov_now_ms());
		if (left < 1) {
			fail(run, PLUMB_EDEADLINE, "deadline reached before the image lookup");
			goto out;
		}
		if (!p->ropt.timeout_ms || p->ropt.timeout_ms > left)
			p->ropt.timeout_ms = left;
		if (!p->ropt.connect_timeout_ms || p->ropt.connect_timeout_ms > left)
			p->ropt.connect_timeout_ms = left;
	}
	if (resolve_image(run, image_ref, &p->ropt, &st, &identity) != 0)
		goto out;
	/* the base revision: its hosts are observed too (orphans on removed hosts) */
	base = o->src.base ? o->src.base : state_base(run);
	if (base) {
		if (git_src_resolve(p->g, base, bsha, &err) != 0 ||
		    git_src_source_at(p->g, bsha, &p->bsrc, &err) != 0) {
			say(run, "--base: %s", plumb_err_msg(&err));
			goto out;
		}
		if (load_from(&p->bc, p->bsrc, run) != 0) {
			say(run, "--base %s: its configuration does not load", base);
			goto out;
		}
	}
	if (o->offline) {
		/* no host: the base revision is taken as what they run */
		if (!p->bc) {
			fail(run, PLUMB_EINVAL, "--offline plans against a base revision: pass --base REF "
			     "(or run where plumb watch keeps its state)");
			goto out;
		}
		offline_extra(run);
		hash_salt_new(salt);
		say(run, "offline: planned against %.12s as what the hosts run (no host contacted)",
		    bsha);
	} else if (stage_observe(run) < 0) {
		goto out;
	}
build:
	dopt.version = version;
	dopt.salt = o->offline ? salt : r->obs->salt;
	dopt.app_image.ref = image_ref;
	dopt.app_image.identity = identity;
	dopt.app_image.status = st;
	dopt.accessory_pin = registry_pin; /* x-plumb accessories.<name>.pin_digest */
	dopt.accessory_ctx = p->pin_rc = registry_client_new(&p->ropt);
	for (size_t i = 0; i < c->xplumb.registry_insecure.n; i++)
		registry_client_add_insecure(p->pin_rc, c->xplumb.registry_insecure.v[i]);
	if (desired_build(&r->desired, c, &dopt, &d) != 0) {
		diags_print(&d, run->log);
		goto out;
	}
	if (p->bc) {
		struct desired_opts bo = dopt;
		bo.app_image.status = DES_IMAGE_UNKNOWN;
		bo.app_image.identity = NULL;
		bo.app_image.ref = NULL;
		if (o->offline) {
			/* the base as deployed: its own version and image identity */
			bo.version = bversion = xstrdup(p->bc->xplumb.version && *p->bc->xplumb.version
							? p->bc->xplumb.version : bsha);
			bo.app_image.ref = bref = p->bc->registry.server
				? xasprintf("%s/%s:%s", p->bc->registry.server, p->bc->image, bversion)
				: xasprintf("%s:%s", p->bc->image, bversion);
			if (resolve_image(run, bref, &p->ropt, &bo.app_image.status, &bidentity) == 0)
				bo.app_image.identity = bidentity;
			else
				say(run, "offline: the base's image identity is unknown: its app containers "
				    "count as changed");
		}
		diags_release(&d);
		if (desired_build(&r->base_desired, p->bc, &bo, &d) != 0) {
			diags_print(&d, run->log);
			say(run, "--base %s: its desired state cannot be built", base);
			goto out;
		}
		if (o->offline) {
			r->obs = obs_synthesise(r->base_desired, salt);
			for (size_t i = 0; i < r->desired->nhosts; i++)
				if (!obs_fleet_host(r->obs, r->desired->hosts[i].host))
					obs_add_empty_host(r->obs, r->desired->hosts[i].host);
		}
	}
	dfo.prune = o->src.prune || c->xplumb.prune;
	dfo.no_renames = !c->xplumb.renames;
	dfo.base = r->base_desired;
	dfo.extra_hosts = &p->extra;
	if (diff_plan_build(&r->plan, r->desired, r->obs, &dfo) != 0) {
		fail(run, PLUMB_ERROR, "planning failed");
		goto out;
	}
	if (o->offline)
		r->plan->offline_base = xstrdup(bsha);
	rc = 0;
out:
	diags_release(&d);
	free(image_ref);
	free(identity);
	free(rb_version);
	free(bversion);
	free(bref);
	free(bidentity);
	return rc;
}

int rec_pipeline_run(struct rec_pipeline_result *r, const struct rec_pipeline_opts *o)
{
	struct pl_run run = { .o = o, .r = r };
	char *buf = NULL;
	size_t len = 0;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	run.p = xcalloc(1, sizeof(*run.p));
	r->priv = run.p;
	if (o->inv)
		run.p->inv = *o->inv;
	else
		rec_invocation_read(&run.p->inv, NULL, NULL);
	run.deadline = prov_now_ms() + (o->src.timeout_ms > 0 ? o->src.timeout_ms : REC_DEFAULT_TIMEOUT_MS);
	run.log = open_memstream(&buf, &len);
	if (!run.log)
		abort(); /* allocation failure is fatal, as in xmalloc */
	rec_split_config_path(o->src.config_path ? o->src.config_path : "config/deploy.yml", &r->root,
			      &run.p->relfile);
	if (stage_source(&run) < 0)
		goto out;
	if (o->until == REC_STAGE_DIFF)
		rec_registry_setup(r->config, o->src.trusted, &run.p->ropt, &run.p->platform);
	rec_report_trust(r->config, run.log);
	if (rec_require_computed(r->config, o->cmd, run.log) < 0)
		goto out;
	if (o->until == REC_STAGE_OBSERVE)
		rc = stage_observe(&run);
	else
		rc = stage_plan(&run);
out:
	/* a stage that said why only in the log (diagnostics, a library's message) */
	if (rc < 0 && !r->err.code)
		plumb_err_set(&r->err, r->config ? PLUMB_ERROR : PLUMB_ECONFIG, "%s",
			      r->config ? "a stage failed (see the log)"
					: "no configuration was loaded (see the log)");
	fclose(run.log);
	r->log = buf ? buf : xstrdup("");
	return rc < 0 ? r->err.code : 0;
}

int rec_pipeline_read(const struct rec_pipeline_result *r, const char *relpath, char **out,
		      size_t *len, struct plumb_err *err)
{
	const struct pl_priv *p = r->priv;
	struct source *s = p ? (p->loaded_via_rec ? p->L.src : p->src) : NULL;

	*out = NULL;
	if (!s)
		return plumb_err_set(err, PLUMB_ENOTFOUND, "%s: no source was read", relpath);
	return source_read(s, relpath, out, len, err);
}

int rec_pipeline_export(const struct rec_pipeline_result *r, const char *dir, struct plumb_err *err)
{
	const struct pl_priv *p = r->priv;

	if (!p || !p->commit[0] || !p->g)
		return plumb_err_set(err, PLUMB_ENOTFOUND, "the configuration was not read from a commit");
	return git_src_export(p->g, p->commit, dir, err);
}

int rec_pipeline_from_commit(const struct rec_pipeline_result *r)
{
	const struct pl_priv *p = r->priv;

	return p && p->commit[0];
}

void rec_pipeline_result_release(struct rec_pipeline_result *r)
{
	struct pl_priv *p = r->priv;

	diff_plan_free(r->plan);
	desired_free(r->desired);
	desired_free(r->base_desired);
	obs_fleet_free(r->obs);
	if (!p || !p->fleet_borrowed)
		fleet_free(r->fleet);
	if (p) {
		if (p->loaded_via_rec)
			rec_loaded_release(&p->L);
		else
			config_free(r->config);
		config_free(p->bc);
		obs_fleet_free(p->bobs);
		fleet_free(p->bfleet);
		source_free(p->src);
		source_free(p->bsrc);
		if (!p->g_borrowed)
			git_src_free(p->g);
		registry_client_free(p->pin_rc);
		strvec_release(&p->extra);
		rec_fleet_settings_release(&p->set);
		rec_fleet_settings_release(&p->bset);
		fleet_query_release(&p->q);
		fleet_query_release(&p->bq);
		free(p->relfile);
		free(p->platform);
		free(p);
	} else {
		config_free(r->config);
	}
	free(r->root);
	free(r->log);
	memset(r, 0, sizeof(*r));
}
