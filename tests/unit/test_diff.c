/*
 * The diff over fake observed fleets (tests/support/fake.h: hosts as Kamal leaves
 * them), one change at a time: each scenario must produce exactly the
 * expected steps with the right cause, and the right exit code.
 */
#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"
#include "tests/support/fake.h"
#include "diff/render.h"
#include "providers/docker_obs.h"
#include "providers/kamal_proxy.h"
#include "state/synth_obs.h"
#include "tests/unit/golden/plan_fixture.h"
#include "tests/unit/t.h"

struct scen {
	struct config *c;
	struct desired *ds, *base;
	struct obs_fleet *obs;
	struct diff_plan *p;
};

/* Fleet deployed at V1/ID1 from FX_YML; desired from yml/secrets at version/id. */
static int scen_init(struct scen *s, const char *yml, const char *secrets, const char *version,
		     const char *id, enum des_image_status st)
{
	struct config *c1 = fx_config(FX_YML, FX_SECRETS);

	memset(s, 0, sizeof(*s));
	if (!c1)
		return -1;
	s->base = fx_desired(c1, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	config_free(c1);
	diff_fake_fleet(&s->obs, s->base, FX_SALT, FX_ID1);
	s->c = fx_config(yml, secrets);
	if (!s->c)
		return -1;
	s->ds = fx_desired(s->c, version, id, st);
	return s->ds ? 0 : -1;
}

static int scen_no_renames;

static void scen_plan(struct scen *s, int prune, const struct strvec *extra)
{
	struct diff_opts o = { 0 };

	o.no_renames = scen_no_renames;
	o.prune = prune;
	o.base = s->base;
	o.extra_hosts = extra;
	diff_plan_free(s->p);
	s->p = NULL;
	diff_plan_build(&s->p, s->ds, s->obs, &o);
}

static void scen_free(struct scen *s)
{
	diff_plan_free(s->p);
	obs_fleet_free(s->obs);
	desired_free(s->ds);
	desired_free(s->base);
	config_free(s->c);
}

static const struct diff_host *phost(const struct diff_plan *p, const char *host)
{
	for (size_t i = 0; i < p->nhosts; i++)
		if (strcmp(p->hosts[i].host, host) == 0)
			return &p->hosts[i];
	return NULL;
}

static const struct diff_step *pstep(const struct diff_plan *p, const char *host, const char *role)
{
	const struct diff_host *h = phost(p, host);
	for (size_t i = 0; h && i < h->nsteps; i++)
		if (h->steps[i].role && strcmp(h->steps[i].role, role) == 0)
			return &h->steps[i];
	return NULL;
}

static size_t nsteps(const struct diff_plan *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->nhosts; i++)
		n += p->hosts[i].nsteps;
	return n;
}

static int has_cause(const struct diff_step *st, enum diff_cause_kind k, const char *key)
{
	for (size_t i = 0; st && i < st->ncauses; i++)
		if (st->causes[i].kind == k && (!key || (st->causes[i].key && strcmp(st->causes[i].key, key) == 0)))
			return 1;
	return 0;
}

static struct obs_host *ohost(struct obs_fleet *f, const char *host)
{
	for (size_t i = 0; i < f->nhosts; i++)
		if (strcmp(f->hosts[i].host, host) == 0)
			return &f->hosts[i];
	abort();
}

static void fleet_del(struct obs_host *h, struct obs_container *c)
{
	size_t i = (size_t)(c - h->containers);
	obs_container_release(c);
	memmove(&h->containers[i], &h->containers[i + 1], (h->ncontainers - i - 1) * sizeof(*c));
	h->ncontainers--;
}

T_TEST(in_sync_fleet_has_no_changes)
{
	struct scen s;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	scen_plan(&s, 0, NULL);
	T_REQUIRE(s.p);
	T_INTEQ(nsteps(s.p), 0);
	T_INTEQ(s.p->changes, 0);
	T_INTEQ(diff_plan_exit_code(s.p), 0);
	T_INTEQ(phost(s.p, "10.0.0.1")->unchanged, 3);
	T_INTEQ(phost(s.p, "10.0.0.2")->nnotes, 0);
	scen_free(&s);
}

T_TEST(empty_hosts_create_everything)
{
	struct scen s;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	for (size_t i = 0; i < s.obs->nhosts; i++) {
		struct obs_host *h = &s.obs->hosts[i];
		while (h->ncontainers)
			fleet_del(h, &h->containers[0]);
		for (size_t j = 0; j < h->nenv_files; j++) {
			free(h->env_files[j].path);
			for (size_t k = 0; k < h->env_files[j].nvars; k++)
				free(h->env_files[j].vars[k].key);
			free(h->env_files[j].vars);
		}
		h->nenv_files = 0;
	}
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 6);
	T_INTEQ(s.p->add, 6);
	T_INTEQ(s.p->destroy, 0);
	T_INTEQ(pstep(s.p, "10.0.0.1", "db")->action, DIFF_CREATE);
	T_INTEQ(pstep(s.p, "10.0.0.1", "db")->wave, 1);
	T_INTEQ(pstep(s.p, "10.0.0.1", "web")->wave, 2);
	T_INTEQ(pstep(s.p, "10.0.0.2", "job")->wave, 3);
	T_CHECK(pstep(s.p, "10.0.0.1", "web")->switch_traffic);
	T_CHECK(has_cause(pstep(s.p, "10.0.0.2", "job"), CAUSE_MISSING, NULL));
	T_INTEQ(diff_plan_exit_code(s.p), 2);
	scen_free(&s);
}

T_TEST(new_content_replaces_app_roles_not_postgres)
{
	struct scen s;
	const struct diff_step *w;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V2, FX_ID2, DES_IMAGE_FOUND) == 0);
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 3);
	w = pstep(s.p, "10.0.0.1", "web");
	T_REQUIRE(w);
	T_INTEQ(w->action, DIFF_REPLACE);
	T_STREQ(w->name, "optimus-web-" FX_V2);
	T_STREQ(w->old_name, "optimus-web-" FX_V1);
	T_INTEQ(w->ncauses, 1);
	T_CHECK(has_cause(w, CAUSE_IMAGE, NULL));
	T_INTEQ(pstep(s.p, "10.0.0.2", "job")->action, DIFF_REPLACE);
	T_CHECK(pstep(s.p, "10.0.0.1", "db") == NULL);
	T_INTEQ(s.p->add, 3);
	T_INTEQ(s.p->destroy, 3);
	T_INTEQ(diff_plan_exit_code(s.p), 2);
	scen_free(&s);
}

T_TEST(same_content_job_env_change_renames_web)
{
	struct scen s;
	const char *yml = FX_YML;
	char *changed;
	const struct diff_step *j, *w;
	char *txt;

	changed = xstrdup(yml);
	{
		char *p = strstr(changed, "QUEUE_THREADS: 3");
		T_REQUIRE(p);
		p[strlen("QUEUE_THREADS: ")] = '4';
	}
	T_REQUIRE(scen_init(&s, changed, FX_SECRETS, FX_V2, FX_ID1, DES_IMAGE_FOUND) == 0);
	free(changed);
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 3);
	j = pstep(s.p, "10.0.0.2", "job");
	T_REQUIRE(j);
	T_INTEQ(j->action, DIFF_REPLACE);
	T_INTEQ(j->ncauses, 1);
	T_REQUIRE(has_cause(j, CAUSE_ENV_CHANGED, "QUEUE_THREADS"));
	txt = diff_cause_text(&j->causes[0]);
	T_STREQ(txt, "env QUEUE_THREADS: \"3\" → \"4\"");
	free(txt);
	w = pstep(s.p, "10.0.0.1", "web");
	T_REQUIRE(w);
	T_INTEQ(w->action, DIFF_RENAME);
	T_CHECK(has_cause(w, CAUSE_VERSION, NULL));
	T_INTEQ(pstep(s.p, "10.0.0.2", "web")->action, DIFF_RENAME);
	T_INTEQ(s.p->add, 1);
	T_INTEQ(s.p->change, 2);
	T_INTEQ(s.p->destroy, 1);
	scen_free(&s);
}

/* x-plumb renames: false: the version-only change is a start-first
 * replacement, so the new container has the new KAMAL_VERSION. */
T_TEST(no_renames_replaces)
{
	struct scen s;
	const struct diff_step *w;
	char *txt;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V2, FX_ID1, DES_IMAGE_FOUND) == 0);
	scen_no_renames = 1;
	scen_plan(&s, 0, NULL);
	scen_no_renames = 0;
	w = pstep(s.p, "10.0.0.1", "web");
	T_REQUIRE(w);
	T_INTEQ(w->action, DIFF_REPLACE);
	T_CHECK(w->switch_traffic);
	T_REQUIRE(w->ncauses == 1 && w->causes[0].kind == CAUSE_VERSION);
	txt = diff_cause_text(&w->causes[0]);
	T_CONTAINS(txt, "renames: false: a new container");
	free(txt);
	T_INTEQ(pstep(s.p, "10.0.0.2", "job")->action, DIFF_REPLACE);
	scen_plan(&s, 0, NULL);
	w = pstep(s.p, "10.0.0.1", "web");
	T_INTEQ(w->action, DIFF_RENAME);
	txt = diff_cause_text(&w->causes[0]);
	T_CONTAINS(txt, "KAMAL_VERSION keeps the old value");
	free(txt);
	scen_free(&s);
}

/* kamal-proxy: without proxy.run its options live on the host (Kamal's
 * boot_config) and an existing proxy is kept whatever it runs; with
 * proxy.run they are the config's, and a drifted proxy is replaced
 * stop-first (disruptive: ports 80/443 cannot be shared). */
T_TEST(proxy_drift_only_when_configured)
{
	static const char plain[] = "proxy:\n  host: app.example.com\n";
	const char *at = strstr(FX_YML, plain);
	const struct diff_step *p = NULL;
	struct scen s;
	char *yml;

	T_REQUIRE(at);
	/* FX_YML with a proxy.run section */
	yml = xasprintf("%.*sproxy:\n  host: app.example.com\n  run:\n    version: v0.9.2\n%s",
			(int)(at - FX_YML), FX_YML, at + strlen(plain));
	T_REQUIRE(scen_init(&s, yml, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	free(yml);
	scen_plan(&s, 0, NULL);
	for (size_t h = 0; h < s.p->nhosts; h++)
		for (size_t i = 0; i < s.p->hosts[h].nsteps; i++)
			if (s.p->hosts[h].steps[i].target == DIFF_T_PROXY)
				p = &s.p->hosts[h].steps[i];
	T_REQUIRE(p);
	T_INTEQ(p->action, DIFF_REPLACE_STOP_FIRST);
	T_CHECK(p->disruptive);
	/* the fake fleet's proxy has neither the config volume nor published ports */
	T_CHECK(has_cause(p, CAUSE_VOLUME, "/home/kamal-proxy/.config/kamal-proxy"));
	T_CHECK(has_cause(p, CAUSE_PORT, NULL));
	scen_free(&s);
}

T_TEST(secret_change_is_sensitive)
{
	struct scen s;
	const struct diff_step *w;
	char *canon;

	T_REQUIRE(scen_init(&s, FX_YML, "RAILS_MASTER_KEY=rotated-key-2\nPOSTGRES_PASSWORD=pg-pass-1\n",
			    FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 3); /* web ×2, job; env files go with the replacements */
	w = pstep(s.p, "10.0.0.1", "web");
	T_REQUIRE(w);
	T_INTEQ(w->action, DIFF_REPLACE);
	T_CHECK(has_cause(w, CAUSE_SECRET_CHANGED, "RAILS_MASTER_KEY"));
	canon = diff_plan_canonical(s.p);
	T_NOT_CONTAINS(canon, "rotated-key-2");
	T_NOT_CONTAINS(canon, "master-key-value-1");
	free(canon);
	T_CHECK(pstep(s.p, "10.0.0.1", "db") == NULL);
	scen_free(&s);
}

T_TEST(stopped_by_hand_is_started_removed_is_created)
{
	struct scen s;
	struct obs_container *c;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	c = diff_fake_find(ohost(s.obs, "10.0.0.1"), "optimus-web-");
	T_REQUIRE(c);
	free(c->state);
	c->state = xstrdup("exited");
	c = diff_fake_find(ohost(s.obs, "10.0.0.2"), "optimus-job-");
	T_REQUIRE(c);
	fleet_del(ohost(s.obs, "10.0.0.2"), c);
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 2);
	T_INTEQ(pstep(s.p, "10.0.0.1", "web")->action, DIFF_START);
	T_CHECK(has_cause(pstep(s.p, "10.0.0.1", "web"), CAUSE_STOPPED, NULL));
	T_INTEQ(pstep(s.p, "10.0.0.2", "job")->action, DIFF_CREATE);
	T_CHECK(has_cause(pstep(s.p, "10.0.0.2", "job"), CAUSE_MISSING, NULL));
	T_INTEQ(diff_plan_exit_code(s.p), 2);
	scen_free(&s);
}

/* The fleet at V1 with the accessory's image changed to postgres:18 in the config. */
static int scen_init_pg18(struct scen *s)
{
	char *yml = xstrdup(FX_YML), *p = strstr(yml, "postgres:17");
	int rc;

	if (!p)
		abort();
	p[10] = '8';
	rc = scen_init(s, yml, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	free(yml);
	return rc;
}

/* plan --offline: a desired state against its own synthesis is in sync
 * (no note about unobserved images either); a version bump against the
 * synthesis of the old one replaces what a host would replace. */
T_TEST(synthesised_observation_is_in_sync_with_its_desired_state)
{
	struct config *c = fx_config(FX_YML, FX_SECRETS);
	struct desired *v1, *v2;
	struct obs_fleet *obs;
	struct diff_plan *p = NULL;
	struct diff_opts o = { 0 };

	T_REQUIRE(c);
	v1 = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	v2 = fx_desired(c, FX_V2, FX_ID2, DES_IMAGE_FOUND);
	T_REQUIRE(v1 && v2);
	obs = obs_synthesise(v1, FX_SALT);
	T_INTEQ((long)obs->nhosts, (long)v1->nhosts);
	T_INTEQ(diff_plan_build(&p, v1, obs, &o), 0);
	T_INTEQ((long)p->changes, 0);
	T_INTEQ((long)p->failed_hosts, 0);
	for (size_t i = 0; i < p->nhosts; i++)
		for (size_t k = 0; k < p->hosts[i].nnotes; k++)
			T_CHECKF(p->hosts[i].notes[k].kind != NOTE_IMAGE_NOT_OBSERVED,
				 "%s: image not observed", p->hosts[i].host);
	diff_plan_free(p);
	p = NULL;
	T_INTEQ(diff_plan_build(&p, v2, obs, &o), 0);
	T_CHECK(p->changes > 0);
	T_INTEQ((long)p->failed_hosts, 0);
	for (size_t i = 0; i < p->nhosts; i++)
		for (size_t k = 0; k < p->hosts[i].nsteps; k++) {
			const struct diff_step *st = &p->hosts[i].steps[k];
			if (st->target == DIFF_T_APP)
				T_CHECKF(st->action == DIFF_REPLACE, "%s: %s not a replacement",
					 p->hosts[i].host, st->name);
			else
				T_CHECKF(0, "%s: a step for %s", p->hosts[i].host, st->name);
		}
	diff_plan_free(p);
	obs_fleet_free(obs);
	desired_free(v1);
	desired_free(v2);
	config_free(c);
}

static int drop_stop_first(const struct diff_step *st, void *ctx)
{
	(void)ctx;
	return st->action == DIFF_REPLACE_STOP_FIRST;
}

T_TEST(postgres_change_is_stop_first_and_disruptive)
{
	struct scen s;
	char *yml, *p;
	const struct diff_step *d;

	T_REQUIRE(scen_init_pg18(&s) == 0);
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 1);
	d = pstep(s.p, "10.0.0.1", "db");
	T_REQUIRE(d);
	T_INTEQ(d->action, DIFF_REPLACE_STOP_FIRST);
	T_CHECK(d->disruptive);
	T_CHECK(has_cause(d, CAUSE_IMAGE_REF, NULL));
	T_STREQ(d->causes[0].new, "postgres:18");
	/* watch leaves it to apply: dropped, the totals and the hash follow */
	{
		char before[HASH_HEX_LEN + 1];
		memcpy(before, s.p->hash, sizeof(before));
		T_INTEQ((long)diff_plan_drop(s.p, drop_stop_first, NULL), 1);
		T_INTEQ(nsteps(s.p), 0);
		T_INTEQ((long)s.p->changes, 0);
		T_INTEQ(diff_plan_exit_code(s.p), 0);
		T_CHECK(strcmp(before, s.p->hash) != 0);
	}
	scen_free(&s);

	/* env change of the accessory */
	yml = xstrdup(FX_YML);
	p = strstr(yml, "POSTGRES_USER: optimus");
	T_REQUIRE(p);
	memcpy(p + strlen("POSTGRES_USER: "), "optimuz", 7);
	T_REQUIRE(scen_init(&s, yml, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	free(yml);
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 1);
	d = pstep(s.p, "10.0.0.1", "db");
	T_REQUIRE(d);
	T_INTEQ(d->action, DIFF_REPLACE_STOP_FIRST);
	T_CHECK(has_cause(d, CAUSE_ENV_CHANGED, "POSTGRES_USER"));
	scen_free(&s);
}

T_TEST(removed_host_orphans_with_base)
{
	struct scen s;
	char *yml = xstrdup(FX_YML), *p;
	struct strvec extra = { 0 };
	const struct diff_host *h;

	/* web on 10.0.0.1 only; job moves to 10.0.0.1 */
	p = strstr(yml, "      - 10.0.0.2\n  job:\n    hosts:\n      - 10.0.0.2");
	T_REQUIRE(p);
	memcpy(p, "      - 10.0.0.1\n  job:\n    hosts:\n      - 10.0.0.1", strlen("      - 10.0.0.1\n  job:\n    hosts:\n      - 10.0.0.1"));
	T_REQUIRE(scen_init(&s, yml, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	free(yml);
	strvec_push(&extra, "10.0.0.2");
	scen_plan(&s, 0, &extra);
	h = phost(s.p, "10.0.0.2");
	T_REQUIRE(h);
	T_CHECK(!h->in_config);
	T_INTEQ(h->nsteps, 2); /* web and job orphaned; the proxy is left alone */
	T_INTEQ(h->steps[0].action, DIFF_REMOVE_ORPHAN);
	T_CHECK(has_cause(&h->steps[0], CAUSE_ORPHAN_HOST, NULL));
	T_CHECK(!h->steps[0].counted);
	T_INTEQ(s.p->orphans_kept, 2);
	T_INTEQ(pstep(s.p, "10.0.0.1", "job")->action, DIFF_CREATE);
	T_INTEQ(diff_plan_exit_code(s.p), 2); /* the job on 10.0.0.1 */
	scen_plan(&s, 1, &extra);
	T_INTEQ(s.p->destroy, 2);
	T_CHECK(pstep(s.p, "10.0.0.2", "web")->counted);
	strvec_release(&extra);
	scen_free(&s);
}

T_TEST(tag_not_in_registry_counts_as_change)
{
	struct scen s;
	const struct diff_step *w;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V2, NULL, DES_IMAGE_NOT_FOUND) == 0);
	scen_plan(&s, 0, NULL);
	w = pstep(s.p, "10.0.0.1", "web");
	T_REQUIRE(w);
	T_INTEQ(w->action, DIFF_REPLACE);
	T_CHECK(has_cause(w, CAUSE_IMAGE_NOT_FOUND, NULL));
	T_INTEQ(nsteps(s.p), 3);
	T_INTEQ(diff_plan_exit_code(s.p), 2);
	scen_free(&s);
}

T_TEST(prune_is_housekeeping)
{
	struct scen s;
	struct obs_host *h;
	char name[128];

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	h = ohost(s.obs, "10.0.0.1");
	for (int i = 0; i < 7; i++) {
		struct obs_container *src = diff_fake_find(h, "optimus-web-"), *c;
		snprintf(name, sizeof(name), "optimus-web-old%d", i);
		c = diff_fake_add(h, src, name);
		free(c->state);
		c->state = xstrdup("exited");
		free(c->created);
		c->created = xasprintf("2024-01-0%dT00:00:00Z", i + 1);
		free(c->image_id);
		c->image_id = xstrdup("sha256:old");
	}
	scen_plan(&s, 0, NULL);
	T_INTEQ(s.p->housekeeping, 2);
	T_INTEQ(phost(s.p, "10.0.0.1")->nsteps, 2);
	T_STREQ(phost(s.p, "10.0.0.1")->steps[0].name, "optimus-web-old1");
	T_INTEQ(phost(s.p, "10.0.0.1")->steps[0].action, DIFF_PRUNE);
	T_INTEQ(diff_plan_exit_code(s.p), 0);
	scen_free(&s);
}

T_TEST(unreachable_host_unhealthy_and_unavailable)
{
	struct scen s;
	struct obs_container *c;
	const struct diff_host *h;

	T_REQUIRE(scen_init(&s, FX_YML, "POSTGRES_PASSWORD=pg-pass-1\n", FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	ohost(s.obs, "10.0.0.2")->status = OBS_UNREACHABLE;
	ohost(s.obs, "10.0.0.2")->error = xstrdup("connection refused");
	c = diff_fake_find(ohost(s.obs, "10.0.0.1"), "optimus-web-");
	c->health = xstrdup("unhealthy");
	scen_plan(&s, 0, NULL);
	h = phost(s.p, "10.0.0.1");
	T_INTEQ(h->nsteps, 0); /* not replaced; the secret is not claimed changed */
	T_INTEQ(h->notes[0].kind, NOTE_UNHEALTHY);
	{
		int unavailable = 0;
		for (size_t i = 0; i < h->nnotes; i++)
			unavailable |= h->notes[i].kind == NOTE_SECRET_UNAVAILABLE;
		T_CHECK(unavailable);
	}
	T_INTEQ(phost(s.p, "10.0.0.2")->status, DIFF_HOST_UNREACHABLE);
	T_INTEQ(diff_plan_exit_code(s.p), 1);
	scen_free(&s);
}

T_TEST(image_defaults_and_kamal_vars_are_ignored)
{
	struct scen s;
	struct obs_container *c;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	c = diff_fake_find(ohost(s.obs, "10.0.0.1"), "optimus-web-");
	diff_fake_set_env(c, FX_SALT, "KAMAL_VERSION", "something-else");
	free(c->hostname);
	c->hostname = xstrdup("10.0.0.1-ffffffffffff");
	free(c->created);
	c->created = xstrdup("2030-01-01T00:00:00Z");
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 0);
	/* an env var that is neither ours nor the image's is drift */
	diff_fake_set_env(c, FX_SALT, "DEBUG", "1");
	/* an image env var overridden by hand is drift too */
	diff_fake_set_env(c, FX_SALT, "LANG", "fr_FR.UTF-8");
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 1);
	T_CHECK(has_cause(pstep(s.p, "10.0.0.1", "web"), CAUSE_ENV_REMOVED, "DEBUG"));
	T_CHECK(has_cause(pstep(s.p, "10.0.0.1", "web"), CAUSE_ENV_REMOVED, "LANG"));
	scen_free(&s);
}

T_TEST(plan_hash_is_stable_across_salts)
{
	struct scen s;
	char h1[HASH_HEX_LEN + 1];

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V2, FX_ID2, DES_IMAGE_FOUND) == 0);
	scen_plan(&s, 0, NULL);
	memcpy(h1, s.p->hash, sizeof(h1));
	scen_plan(&s, 0, NULL);
	T_STREQ(s.p->hash, h1);
	scen_plan(&s, 1, NULL);
	T_CHECK(strcmp(s.p->hash, h1) != 0); /* options are part of the plan */
	scen_free(&s);
}

/* An interrupted rollout: the desired container runs, but the old one runs
 * too and kamal-proxy still routes to it. The plan is a switch (counted,
 * not "in sync"); with the route on the desired container and no other
 * running, it is in sync again. */
T_TEST(interrupted_rollout_is_a_switch)
{
	struct scen s;
	struct obs_host *h1;
	struct obs_container *web, *old;
	const struct diff_step *st;
	char *routes, *t;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	h1 = ohost(s.obs, "10.0.0.1");
	web = diff_fake_find(h1, "optimus-web-");
	T_REQUIRE(web);
	old = diff_fake_add(h1, web, "optimus-web-0000000000000000000000000000000000000000");
	web = diff_fake_find(h1, "optimus-web-" FX_V1); /* the array moved */
	T_REQUIRE(web);
	free(old->id);
	old->id = xstrdup("ffffffffffff0000000000000000000000000000000000000000000000000000");
	free(old->created);
	old->created = xstrdup("2020-01-01T00:00:00Z");
	routes = xasprintf("{\"services\":{\"optimus-web\":{\"target\":\"%.12s:80\"}}}", old->id);
	T_INTEQ(kamal_proxy_parse_routes(&h1->routes, &h1->nroutes, routes), 0);
	free(routes);
	scen_plan(&s, 0, NULL);
	st = pstep(s.p, "10.0.0.1", "web");
	T_REQUIRE(st);
	T_INTEQ(st->action, DIFF_SWITCH);
	T_STREQ(st->name, "optimus-web-" FX_V1);
	T_STREQ(st->old_name, "optimus-web-0000000000000000000000000000000000000000");
	T_CHECK(st->counted && st->switch_traffic);
	T_CHECK(has_cause(st, CAUSE_EXTRA_RUNNING, NULL));
	T_CHECK(has_cause(st, CAUSE_TRAFFIC_ELSEWHERE, NULL));
	T_INTEQ(s.p->change, 1);
	T_INTEQ(diff_plan_exit_code(s.p), 2);
	t = diff_cause_text(&st->causes[1]);
	T_CONTAINS(t, "kamal-proxy sends the role's traffic to optimus-web-0000");
	free(t);
	/* the old one stopped, the route on the desired container: in sync */
	free(old->state);
	old->state = xstrdup("exited");
	obs_routes_free(h1->routes, h1->nroutes);
	routes = xasprintf("{\"services\":{\"optimus-web\":{\"target\":\"%.12s:80\"}}}", web->id);
	T_INTEQ(kamal_proxy_parse_routes(&h1->routes, &h1->nroutes, routes), 0);
	free(routes);
	scen_plan(&s, 0, NULL);
	T_CHECK(pstep(s.p, "10.0.0.1", "web") == NULL);
	T_INTEQ(diff_plan_exit_code(s.p), 0);
	scen_free(&s);
}

/* (a) kamal-proxy's routes: the traffic-switch step says where traffic goes now. */
T_TEST(traffic_switch_shows_the_current_proxy_target)
{
	struct scen s;
	struct obs_host *h1, *h2;
	struct obs_container *web;
	const struct diff_step *st;
	char *routes, *t;
	struct sbuf sb;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V2, FX_ID2, DES_IMAGE_FOUND) == 0);
	h1 = ohost(s.obs, "10.0.0.1");
	h2 = ohost(s.obs, "10.0.0.2");
	web = diff_fake_find(h1, "optimus-web-");
	T_REQUIRE(web && web->id && strlen(web->id) >= 12);
	/* a map keyed by service, kamal-proxy targeting the container by id */
	routes = xasprintf("{\"services\":{\"optimus-web\":{\"host\":\"app.example.com\",\"target\":\"%.12s:80\","
			   "\"state\":\"running\",\"tls\":false}}}", web->id);
	T_INTEQ(kamal_proxy_parse_routes(&h1->routes, &h1->nroutes, routes), 0);
	free(routes);
	/* an array of entries, a target that is not a container id */
	T_INTEQ(kamal_proxy_parse_routes(&h2->routes, &h2->nroutes,
					 "[{\"service\":\"optimus-job\",\"target\":\"x:1\"},"
					 "{\"service\":\"optimus-web\",\"targets\":[\"10.9.9.9:3000\"]}]"), 0);
	T_INTEQ(h2->nroutes, 2);
	scen_plan(&s, 0, NULL);
	T_REQUIRE(s.p);
	st = pstep(s.p, "10.0.0.1", "web");
	T_REQUIRE(st);
	T_INTEQ(st->action, DIFF_REPLACE);
	T_CHECK(st->switch_traffic);
	T_REQUIRE(st->traffic_from);
	T_CONTAINS(st->traffic_from, web->name);
	T_CHECK(strncmp(strchr(st->traffic_from, '(') + 1, web->id, 12) == 0);
	st = pstep(s.p, "10.0.0.2", "web");
	T_REQUIRE(st && st->traffic_from);
	T_STREQ(st->traffic_from, "10.9.9.9:3000");
	/* the job role is not proxied: no target */
	T_CHECK(pstep(s.p, "10.0.0.2", "job")->traffic_from == NULL);
	sbuf_init(&sb, 0);
	T_CHECK(diff_render_text(s.p, NULL, &sb) == 0);
	T_CONTAINS(sb.buf, "traffic now goes to optimus-web-" FX_V1);
	sbuf_reset(&sb);
	T_CHECK(diff_render_json(s.p, &sb) == 0);
	T_CONTAINS(sb.buf, "\"traffic_from\": \"10.9.9.9:3000\"");
	sbuf_release(&sb);

	/* no routes, garbage, or another service's route: unknown, never a guess */
	obs_routes_free(h1->routes, h1->nroutes);
	h1->routes = NULL;
	h1->nroutes = 0;
	T_CHECK(diff_proxy_target(h1, "optimus-web") == NULL);
	T_INTEQ(kamal_proxy_parse_routes(&h1->routes, &h1->nroutes, "not json {"), PLUMB_EPROTOCOL);
	T_INTEQ(h1->nroutes, 0);
	T_CHECK(diff_proxy_target(h1, "optimus-web") == NULL);
	T_INTEQ(kamal_proxy_parse_routes(&h1->routes, &h1->nroutes, "{\"blog-web\":{\"target\":\"abc:80\"}}"), 0);
	T_CHECK(diff_proxy_target(h1, "optimus-web") == NULL);
	t = diff_proxy_target(h1, "blog-web");
	T_STREQ(t, "abc:80");
	free(t);
	scen_free(&s);
}

/* (b) an accessory of the service that is no longer in the config. */
T_TEST(orphan_accessory_is_listed_and_pruned_only_with_prune)
{
	struct scen s;
	struct obs_host *h1;
	struct obs_container *db, *redis, *other;
	const struct diff_host *dh;
	const struct diff_step *st = NULL;
	const char *const acc[] = { "optimus-db" };
	struct docker_obs_query q = { .service = "optimus", .destination = "", .accessories = acc,
				      .naccessories = 1 };
	char *txt;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	h1 = ohost(s.obs, "10.0.0.1");
	db = diff_fake_find(h1, "optimus-db");
	T_REQUIRE(db);
	/* the observation's classification: service=optimus-redis named optimus-redis */
	redis = diff_fake_add(h1, db, "optimus-redis");
	kvs_set(&redis->labels, "service", "optimus-redis");
	free(redis->service);
	redis->service = xstrdup("optimus-redis");
	redis->kind = OBS_OTHER;
	docker_obs_classify(redis, &q);
	T_INTEQ(redis->kind, OBS_ACCESSORY);
	/* same label, another name: not an accessory of ours */
	db = diff_fake_find(h1, "optimus-db"); /* the array moved */
	other = diff_fake_add(h1, db, "optimus-redis-copy");
	redis = diff_fake_find(h1, "optimus-redis");
	kvs_set(&other->labels, "service", "optimus-redis");
	free(other->service);
	other->service = xstrdup("optimus-redis");
	docker_obs_classify(other, &q);
	T_INTEQ(other->kind, OBS_OTHER);
	/* another service's accessory */
	free(other->service);
	other->service = xstrdup("blog-db");
	free(other->name);
	other->name = xstrdup("blog-db");
	docker_obs_classify(other, &q);
	T_INTEQ(other->kind, OBS_OTHER);

	/* another Kamal app, optimus-admin, on the same host: its redis is a
	 * candidate for the observation, but nothing says it is ours */
	db = diff_fake_find(h1, "optimus-db");
	other = diff_fake_add(h1, db, "optimus-admin-redis");
	kvs_set(&other->labels, "service", "optimus-admin-redis");
	free(other->service);
	other->service = xstrdup("optimus-admin-redis");
	docker_obs_classify(other, &q);
	T_INTEQ(other->kind, OBS_ACCESSORY);
	scen_plan(&s, 1, NULL);
	T_REQUIRE(s.p);
	T_INTEQ(phost(s.p, "10.0.0.1")->nsteps, 0); /* neither redis: no evidence without a base */
	T_INTEQ(diff_plan_exit_code(s.p), 0);

	/* the base revision had accessory redis: optimus-redis is ours */
	{
		char *byml = xasprintf("%s  redis:\n    image: redis:7\n    host: 10.0.0.1\n", FX_YML);
		struct config *bc = fx_config(byml, FX_SECRETS);
		free(byml);
		T_REQUIRE(bc);
		desired_free(s.base);
		s.base = fx_desired(bc, FX_V1, FX_ID1, DES_IMAGE_FOUND);
		config_free(bc);
		T_REQUIRE(s.base);
	}
	scen_plan(&s, 0, NULL);
	T_REQUIRE(s.p);
	dh = phost(s.p, "10.0.0.1");
	T_INTEQ(dh->nsteps, 1);
	st = &dh->steps[0];
	T_INTEQ(st->action, DIFF_REMOVE_ORPHAN);
	T_INTEQ(st->target, DIFF_T_ACCESSORY);
	T_STREQ(st->old_name, "optimus-redis");
	T_CHECK(has_cause(st, CAUSE_ORPHAN_ACCESSORY, "optimus-redis"));
	T_CHECK(!st->counted);
	txt = diff_cause_text(&st->causes[0]);
	T_CONTAINS(txt, "data directory is kept");
	free(txt);
	T_INTEQ(s.p->orphans_kept, 1);
	T_INTEQ(diff_plan_exit_code(s.p), 0);
	scen_plan(&s, 1, NULL);
	T_INTEQ(s.p->destroy, 1);
	T_REQUIRE(phost(s.p, "10.0.0.1")->nsteps == 1);
	T_CHECK(phost(s.p, "10.0.0.1")->steps[0].counted);
	T_STREQ(phost(s.p, "10.0.0.1")->steps[0].old_name, "optimus-redis"); /* never optimus-admin-redis */
	T_INTEQ(diff_plan_exit_code(s.p), 2);
	/* the configured accessory is untouched */
	T_CHECK(pstep(s.p, "10.0.0.1", "db") == NULL);
	scen_free(&s);
}

/* (c) an accessory container that another destination's deploy owns. */
T_TEST(accessory_shared_with_another_destination_is_refused)
{
	struct scen s;
	struct obs_host *h1;
	const struct diff_host *dh;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	h1 = ohost(s.obs, "10.0.0.1");
	/* host 1's app containers all belong to destination production */
	for (size_t i = 0; i < h1->ncontainers; i++) {
		struct obs_container *c = &h1->containers[i];
		if (c->role && c->service && strcmp(c->service, "optimus") == 0) {
			kvs_set(&c->labels, "destination", "production");
			free(c->destination);
			c->destination = xstrdup("production");
		}
	}
	scen_plan(&s, 0, NULL);
	T_REQUIRE(s.p);
	dh = phost(s.p, "10.0.0.1");
	T_INTEQ(dh->status, DIFF_HOST_REFUSED);
	T_INTEQ(dh->nsteps, 0);
	T_CONTAINS(dh->error, "optimus-db");
	T_CONTAINS(dh->error, "production");
	T_STREQ(diff_host_status_name(dh->status), "refused");
	T_INTEQ(phost(s.p, "10.0.0.2")->status, DIFF_HOST_OK);
	T_INTEQ(diff_plan_exit_code(s.p), 1);
	{
		struct sbuf sb;
		sbuf_init(&sb, 0);
		T_CHECK(diff_render_text(s.p, NULL, &sb) == 0);
		T_CONTAINS(sb.buf, "10.0.0.1: REFUSED (not planned) — accessory container optimus-db is shared");
		sbuf_release(&sb);
	}

	/* one app container of ours on the host: it is ours to plan */
	for (size_t i = 0; i < h1->ncontainers; i++) {
		struct obs_container *c = &h1->containers[i];
		if (c->role && c->destination && strcmp(c->destination, "production") == 0) {
			free(c->destination);
			c->destination = xstrdup("");
			kvs_set(&c->labels, "destination", "");
			break;
		}
	}
	scen_plan(&s, 0, NULL);
	T_INTEQ(phost(s.p, "10.0.0.1")->status, DIFF_HOST_OK);
	scen_free(&s);
}

/* (c) the accessory alone on a host (no app container of the service): ours
 * when our destination's env file for it is there, else refused. */
T_TEST(accessory_alone_without_our_env_file_is_refused)
{
	struct scen s;
	struct obs_host *h1;
	const struct diff_host *dh;
	size_t j = 0;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	h1 = ohost(s.obs, "10.0.0.1");
	/* host 1 keeps only the accessory (and the proxy) */
	for (size_t i = 0; i < h1->ncontainers; i++) {
		struct obs_container *c = &h1->containers[i];
		if (c->kind == OBS_APP)
			obs_container_release(c);
		else
			h1->containers[j++] = *c;
	}
	h1->ncontainers = j;
	T_REQUIRE(diff_fake_find(h1, "optimus-db"));
	scen_plan(&s, 0, NULL);
	T_REQUIRE(s.p);
	T_INTEQ(phost(s.p, "10.0.0.1")->status, DIFF_HOST_OK);

	/* without .kamal/apps/optimus/env/accessories/db.env: another destination's */
	for (size_t i = 0; i < h1->nenv_files; i++)
		if (strstr(h1->env_files[i].path, "/env/accessories/db.env")) {
			free(h1->env_files[i].path);
			h1->env_files[i].path = xstrdup(".kamal/apps/optimus-production/env/accessories/db.env");
		}
	scen_plan(&s, 0, NULL);
	dh = phost(s.p, "10.0.0.1");
	T_INTEQ(dh->status, DIFF_HOST_REFUSED);
	T_INTEQ(dh->nsteps, 0);
	T_CONTAINS(dh->error, "optimus-db");
	T_CONTAINS(dh->error, "without app containers");
	T_INTEQ(phost(s.p, "10.0.0.2")->status, DIFF_HOST_OK);
	T_INTEQ(diff_plan_exit_code(s.p), 1);
	scen_free(&s);
}

/* Every step that realises a desired container points at it (the executor
 * never re-derives the spec); orphan removals point at nothing. */
T_TEST(steps_reference_their_desired_container)
{
	struct scen s;
	size_t checked = 0;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V2, FX_ID2, DES_IMAGE_FOUND) == 0);
	/* an extra running web container on host 1: an orphan step */
	diff_fake_add(ohost(s.obs, "10.0.0.1"), diff_fake_find(ohost(s.obs, "10.0.0.1"), "optimus-web-"),
		      "optimus-web-old");
	scen_plan(&s, 1, NULL);
	T_REQUIRE(s.p);
	for (size_t h = 0; h < s.p->nhosts; h++)
		for (size_t i = 0; i < s.p->hosts[h].nsteps; i++) {
			const struct diff_step *st = &s.p->hosts[h].steps[i];
			switch (st->action) {
			case DIFF_CREATE:
			case DIFF_REPLACE:
			case DIFF_REPLACE_STOP_FIRST:
			case DIFF_START:
			case DIFF_RENAME:
			case DIFF_RESTORE:
			case DIFF_SWITCH:
				T_REQUIRE(st->desired);
				T_STREQ(st->desired->name, st->name);
				T_STREQ(st->desired->spec_hash, st->spec_hash);
				T_CHECK(desired_host(s.ds, s.p->hosts[h].host) &&
					st->desired >= desired_host(s.ds, s.p->hosts[h].host)->containers &&
					st->desired < desired_host(s.ds, s.p->hosts[h].host)->containers +
							      desired_host(s.ds, s.p->hosts[h].host)->ncontainers);
				checked++;
				break;
			case DIFF_WRITE_ENV_FILE:
				T_REQUIRE(st->desired_file);
				T_STREQ(st->desired_file->path, st->name);
				break;
			case DIFF_REMOVE_ORPHAN:
			case DIFF_PRUNE:
				T_CHECK(st->desired == NULL);
				checked++;
				break;
			case DIFF_REMOVE_ASIDE: /* the accessory that must be ready first */
				T_REQUIRE(st->desired);
				break;
			}
		}
	if (checked < 4) /* web ×2 and job replaced, the extra web container removed */
		T_FAIL_AT("only %zu steps checked", checked);
	T_CHECK(pstep(s.p, "10.0.0.1", "web") != NULL);
	scen_free(&s);
}

/* ERB ENV in a clear value: the canary's value never reaches a plan. */
static const char *canary_value = "canary-value-1";
static const char *canary_env(const char *name, void *ctx)
{
	(void)ctx;
	return strcmp(name, "CANARY_ENV") == 0 ? canary_value : NULL;
}

static char *canary_yml(void)
{
	const char *yml = FX_YML, *p = strstr(yml, "        QUEUE_THREADS: 3\n");
	if (!p)
		abort();
	p += strlen("        QUEUE_THREADS: 3\n");
	return xasprintf("%.*s        CANARY: <%%= ENV['CANARY_ENV'] %%>\n%s", (int)(p - yml), yml, p);
}

static int render_all(const struct diff_plan *p, struct sbuf *sb)
{
	int rc = 0;
	sbuf_reset(sb);
	rc |= diff_render_text(p, NULL, sb);
	rc |= diff_render_markdown(p, NULL, sb);
	rc |= diff_render_json(p, sb);
	{
		char *canon = diff_plan_canonical(p);
		rc |= sbuf_adds(sb, canon);
		free(canon);
	}
	return rc;
}

T_TEST(erb_env_value_is_sensitive_and_not_computed_when_untrusted)
{
	struct config *c1, *c2;
	struct desired *base, *ds;
	struct obs_fleet *obs;
	struct diff_plan *p = NULL;
	struct diff_opts o = { 0 };
	const struct diff_step *j;
	const struct diff_host *h;
	struct sbuf sb;
	char *yml = canary_yml();
	int noted = 0;

	sbuf_init(&sb, 0);
	/* deployed (trusted) with canary-value-1 */
	canary_value = "canary-value-1";
	c1 = fx_config_with(yml, FX_SECRETS, 1, canary_env);
	T_REQUIRE(c1);
	base = fx_desired(c1, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(base);
	T_INTEQ(des_container_env(&desired_host(base, "10.0.0.2")->containers[0], "CANARY")->kind,
		DES_ENV_SENSITIVE);
	diff_fake_fleet(&obs, base, FX_SALT, FX_ID1);

	/* the same value again: no change */
	o.base = base;
	diff_plan_build(&p, base, obs, &o);
	T_INTEQ(diff_plan_exit_code(p), 0);
	diff_plan_free(p);
	p = NULL;

	/* a new value: a change, shown as sensitive in every output */
	canary_value = "canary-value-2";
	c2 = fx_config_with(yml, FX_SECRETS, 1, canary_env);
	T_REQUIRE(c2);
	ds = fx_desired(c2, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(ds);
	diff_plan_build(&p, ds, obs, &o);
	j = pstep(p, "10.0.0.2", "job");
	T_REQUIRE(j);
	T_INTEQ(j->action, DIFF_REPLACE);
	T_CHECK(has_cause(j, CAUSE_SECRET_CHANGED, "CANARY"));
	T_INTEQ(diff_plan_exit_code(p), 2);
	T_CHECK(render_all(p, &sb) == 0);
	T_CONTAINS(sb.buf, "env CANARY: (sensitive value changed)");
	T_NOT_CONTAINS(sb.buf, "canary-value");
	diff_plan_free(p);
	p = NULL;
	desired_free(ds);
	config_free(c2);

	/* the key removed from the config: still never printed */
	{
		struct config *c3 = fx_config_with(FX_YML, FX_SECRETS, 1, canary_env);
		T_REQUIRE(c3);
		ds = fx_desired(c3, FX_V1, FX_ID1, DES_IMAGE_FOUND);
		diff_plan_build(&p, ds, obs, &o);
		T_CHECK(has_cause(pstep(p, "10.0.0.2", "job"), CAUSE_SECRET_REMOVED, "CANARY"));
		T_CHECK(render_all(p, &sb) == 0);
		T_NOT_CONTAINS(sb.buf, "canary-value");
		diff_plan_free(p);
		p = NULL;
		desired_free(ds);
		config_free(c3);
	}

	/* untrusted: not computed, not compared, never a change */
	c2 = fx_config_with(yml, FX_SECRETS, 0, canary_env);
	T_REQUIRE(c2);
	ds = fx_desired(c2, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(ds);
	diff_plan_build(&p, ds, obs, &o);
	T_INTEQ(nsteps(p), 0);
	T_INTEQ(diff_plan_exit_code(p), 0);
	h = phost(p, "10.0.0.2");
	for (size_t i = 0; i < h->nnotes; i++)
		if (h->notes[i].kind == NOTE_VALUE_NOT_COMPUTED && strcmp(h->notes[i].key, "CANARY") == 0)
			noted = 1;
	T_CHECK(noted);
	T_CHECK(render_all(p, &sb) == 0);
	T_CONTAINS(sb.buf, "value not computed in an untrusted run");
	T_CONTAINS(sb.buf, "\"value_not_computed\"");
	T_NOT_CONTAINS(sb.buf, "(unavailable)");
	diff_plan_free(p);
	desired_free(ds);
	config_free(c2);

	sbuf_release(&sb);
	obs_fleet_free(obs);
	desired_free(base);
	config_free(c1);
	free(yml);
}

/* The daemon's default log-opts (daemon.json) land in every container. */
T_TEST(daemon_default_log_opts_are_not_a_change)
{
	struct scen s;
	char *yml;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	for (size_t i = 0; i < s.obs->nhosts; i++)
		for (size_t j = 0; j < s.obs->hosts[i].ncontainers; j++)
			kvs_set(&s.obs->hosts[i].containers[j].log_opts, "max-file", "3");
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 0);
	T_INTEQ(diff_plan_exit_code(s.p), 0);
	/* an option plumb asks for still counts */
	kvs_set(&diff_fake_find(ohost(s.obs, "10.0.0.2"), "optimus-job-")->log_opts, "max-size", "50m");
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 1);
	T_CHECK(has_cause(pstep(s.p, "10.0.0.2", "job"), CAUSE_LOGGING, "max-size"));
	scen_free(&s);

	/* the base asked for max-file, the new revision does not: a change */
	yml = xasprintf("%slogging:\n  options:\n    max-size: 10m\n    max-file: \"3\"\n", FX_YML);
	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	desired_free(s.base);
	{
		struct config *bc = fx_config(yml, FX_SECRETS);
		T_REQUIRE(bc);
		s.base = fx_desired(bc, FX_V1, FX_ID1, DES_IMAGE_FOUND);
		config_free(bc);
	}
	free(yml);
	kvs_set(&diff_fake_find(ohost(s.obs, "10.0.0.2"), "optimus-job-")->log_opts, "max-file", "3");
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 1);
	T_CHECK(has_cause(pstep(s.p, "10.0.0.2", "job"), CAUSE_LOGGING, "max-file"));
	scen_free(&s);
}

/* An env file is written in the wave of the role that reads it. */
T_TEST(env_file_step_in_its_roles_wave)
{
	struct scen s;
	struct obs_host *h2;
	const struct diff_host *dh;
	int job = 0, web = 0;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	h2 = ohost(s.obs, "10.0.0.2");
	for (size_t i = 0; i < h2->nenv_files; i++)
		h2->env_files[i].mode = 0644;
	scen_plan(&s, 0, NULL);
	dh = phost(s.p, "10.0.0.2");
	T_INTEQ(dh->nsteps, 2);
	for (size_t i = 0; i < dh->nsteps; i++) {
		const struct diff_step *st = &dh->steps[i];
		T_INTEQ(st->action, DIFF_WRITE_ENV_FILE);
		if (strstr(st->name, "/roles/job.env")) {
			job = 1;
			T_INTEQ(st->wave, 3);
		} else if (strstr(st->name, "/roles/web.env")) {
			web = 1;
			T_INTEQ(st->wave, 2);
			T_INTEQ(st->group, 0);
		}
	}
	T_CHECK(job && web);
	/* in wave order: web (2) before job (3) */
	T_CONTAINS(dh->steps[0].name, "web.env");
	scen_free(&s);
}

/* ---- an accessory's stop-first replacement interrupted by kill -9 ---- */

#define ASIDE "optimus-db_replaced_0123456789abcdef"

/* Host 1's Postgres renamed aside (and stopped unless `running`), as an
 * interrupted replacement leaves it; another aside copy when `second`. */
static void set_db_aside(struct scen *s, int running, int second)
{
	struct obs_host *h1 = ohost(s->obs, "10.0.0.1");
	struct obs_container *db = diff_fake_find(h1, "optimus-db");

	if (!db)
		abort();
	free(db->name);
	db->name = xstrdup(ASIDE);
	free(db->state);
	db->state = xstrdup(running ? "running" : "exited");
	if (second) {
		db = diff_fake_add(h1, db, "optimus-db_replaced_fedcba9876543210");
		free(db->state);
		db->state = xstrdup("exited");
		free(db->created);
		db->created = xstrdup("2000-01-01T00:00:00Z"); /* older */
	}
}

/* A stopped copy (named name) of host 1's container named prefix…; host 1. */
static struct obs_host *add_stopped_copy(struct scen *s, const char *prefix, const char *name)
{
	struct obs_host *h1 = ohost(s->obs, "10.0.0.1");
	struct obs_container *c = diff_fake_find(h1, prefix);

	if (!c)
		abort();
	c = diff_fake_add(h1, c, name);
	free(c->state);
	c->state = xstrdup("exited");
	return h1;
}

/* The in-sync fleet with host 1's Postgres stopped aside (and an older
 * aside copy when `second`), planned. */
static int scen_plan_db_aside(struct scen *s, int second)
{
	if (scen_init(s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) != 0)
		return -1;
	set_db_aside(s, 0, second);
	scen_plan(s, 0, NULL);
	return 0;
}

static size_t count_action(const struct diff_plan *p, enum diff_action a)
{
	size_t n = 0;
	for (size_t i = 0; i < p->nhosts; i++)
		for (size_t j = 0; j < p->hosts[i].nsteps; j++)
			n += p->hosts[i].steps[j].action == a;
	return n;
}

/* The plan as text (a step line, a cause), Markdown and JSON (action, cause kind). */
static void check_rendered(const struct diff_plan *p, const char *line, const char *cause,
			   const char *md, const char *action, const char *kind)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	T_CHECK(diff_render_text(p, NULL, &sb) == 0);
	T_CONTAINS(sb.buf, line);
	T_CONTAINS(sb.buf, cause);
	sbuf_reset(&sb);
	T_CHECK(diff_render_markdown(p, NULL, &sb) == 0);
	T_CONTAINS(sb.buf, md);
	sbuf_reset(&sb);
	T_CHECK(diff_render_json(p, &sb) == 0);
	T_CONTAINS(sb.buf, action);
	T_CONTAINS(sb.buf, kind);
	sbuf_release(&sb);
}

T_TEST(aside_names)
{
	T_CHECK(diff_is_aside(ASIDE, "optimus-db"));
	T_CHECK(diff_is_aside("optimus-db_replaced_a", "optimus-db"));
	T_CHECK(!diff_is_aside("optimus-db_replaced_", "optimus-db"));
	T_CHECK(!diff_is_aside("optimus-db_replaced_0123X", "optimus-db"));
	T_CHECK(!diff_is_aside("optimus-db_replaced_ABCD", "optimus-db"));
	T_CHECK(!diff_is_aside("optimus-db2_replaced_abcd", "optimus-db"));
	T_CHECK(!diff_is_aside("optimus-db", "optimus-db"));
	T_CHECK(!diff_is_aside(NULL, "optimus-db"));
}

/* No optimus-db, its old container aside and matching the spec: restored
 * (renamed back, started), never a fresh container beside its data. */
T_TEST(aside_accessory_matching_is_restored)
{
	struct scen s;
	const struct diff_step *d;

	T_REQUIRE(scen_plan_db_aside(&s, 0) == 0);
	T_INTEQ(nsteps(s.p), 1);
	d = pstep(s.p, "10.0.0.1", "db");
	T_REQUIRE(d);
	T_INTEQ(d->action, DIFF_RESTORE);
	T_STREQ(d->old_name, ASIDE);
	T_STREQ(d->name, "optimus-db");
	T_CHECK(d->desired && strcmp(d->desired->name, "optimus-db") == 0);
	T_CHECK(has_cause(d, CAUSE_ASIDE, "optimus-db"));
	T_INTEQ(d->wave, 1);
	T_INTEQ(s.p->change, 1);
	T_INTEQ(s.p->add, 0);
	T_INTEQ(diff_plan_exit_code(s.p), 2);
	check_rendered(s.p, "~   restore (rename back, start) " ASIDE " → optimus-db (accessory db, wave 1)",
		       "this one was set aside by an interrupted stop-first replacement",
		       "restore (rename back, start)", "\"action\": \"restore\"", "\"kind\": \"set_aside\"");

	/* started again by hand under its aside name: renamed back */
	set_db_aside(&s, 1, 0);
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 1);
	d = pstep(s.p, "10.0.0.1", "db");
	T_REQUIRE(d);
	T_INTEQ(d->action, DIFF_RESTORE);
	T_STREQ(d->old_name, ASIDE);
	T_INTEQ(phost(s.p, "10.0.0.1")->unchanged, 2);
	scen_free(&s);
}

/* No optimus-db, the aside one differs from the new spec: replaced
 * stop-first from it (its data is the data), saying so. */
T_TEST(aside_accessory_differing_is_replaced_from_it)
{
	struct scen s;
	const struct diff_step *d;

	T_REQUIRE(scen_init_pg18(&s) == 0);
	set_db_aside(&s, 0, 0);
	scen_plan(&s, 0, NULL);
	T_INTEQ(nsteps(s.p), 1);
	T_INTEQ(count_action(s.p, DIFF_CREATE), 0);
	d = pstep(s.p, "10.0.0.1", "db");
	T_REQUIRE(d);
	T_INTEQ(d->action, DIFF_REPLACE_STOP_FIRST);
	T_STREQ(d->old_name, ASIDE);
	T_CHECK(has_cause(d, CAUSE_ASIDE, "optimus-db"));
	T_CHECK(has_cause(d, CAUSE_IMAGE_REF, NULL));

	/* the aside one running (started by hand): the same */
	set_db_aside(&s, 1, 0);
	scen_plan(&s, 0, NULL);
	d = pstep(s.p, "10.0.0.1", "db");
	T_REQUIRE(d);
	T_INTEQ(d->action, DIFF_REPLACE_STOP_FIRST);
	T_STREQ(d->old_name, ASIDE);
	T_CHECK(d->disruptive);
	T_CHECK(has_cause(d, CAUSE_ASIDE, "optimus-db"));
	scen_free(&s);
}

/* optimus-db runs (the new one booted before the kill): the aside copies
 * are removed once it is ready — counted, so apply does it. */
T_TEST(aside_leftover_beside_the_accessory_is_removed)
{
	const struct diff_host *dh;
	struct obs_host *h1;
	struct scen s;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	h1 = add_stopped_copy(&s, "optimus-db", ASIDE);
	scen_plan(&s, 0, NULL);
	dh = phost(s.p, "10.0.0.1");
	T_INTEQ(nsteps(s.p), 1);
	T_INTEQ(dh->steps[0].action, DIFF_REMOVE_ASIDE);
	T_STREQ(dh->steps[0].name, ASIDE);
	T_STREQ(dh->steps[0].old_name, ASIDE);
	T_STREQ(dh->steps[0].role, "db");
	T_CHECK(dh->steps[0].desired && strcmp(dh->steps[0].desired->name, "optimus-db") == 0);
	T_CHECK(has_cause(&dh->steps[0], CAUSE_ASIDE_LEFTOVER, "optimus-db"));
	T_INTEQ(dh->steps[0].wave, 1);
	T_CHECK(dh->steps[0].counted);
	T_INTEQ(s.p->destroy, 1);
	T_INTEQ(s.p->orphans_kept, 0);
	T_INTEQ(dh->unchanged, 3);
	T_INTEQ(diff_plan_exit_code(s.p), 2);
	check_rendered(s.p, "-   remove " ASIDE " (accessory db, wave 1)",
		       "removed once optimus-db runs and is ready", "remove a copy set aside",
		       "\"action\": \"remove_aside\"", "\"kind\": \"aside_leftover\"");

	/* optimus-db stopped and different (the new one crashed), the aside
	 * one matching: optimus-db is the one planned, the aside one is never
	 * restored over it */
	{
		struct obs_container *db = diff_fake_find(h1, "optimus-db");
		T_REQUIRE(db && strcmp(db->name, "optimus-db") == 0);
		free(db->state);
		db->state = xstrdup("exited");
		free(db->image_ref);
		db->image_ref = xstrdup("postgres:16");
	}
	scen_plan(&s, 0, NULL);
	dh = phost(s.p, "10.0.0.1");
	T_INTEQ(dh->nsteps, 2);
	T_INTEQ(dh->steps[0].action, DIFF_REPLACE_STOP_FIRST);
	T_STREQ(dh->steps[0].old_name, "optimus-db");
	T_INTEQ(dh->steps[1].action, DIFF_REMOVE_ASIDE);
	T_STREQ(dh->steps[1].old_name, ASIDE);
	T_INTEQ(count_action(s.p, DIFF_RESTORE), 0);
	scen_free(&s);
}

/* Two aside copies and no optimus-db: the newest matching one is restored,
 * the other removed after it. */
T_TEST(two_asides_one_restored_one_removed)
{
	struct scen s;
	const struct diff_host *dh;

	T_REQUIRE(scen_plan_db_aside(&s, 1) == 0);
	dh = phost(s.p, "10.0.0.1");
	T_INTEQ(dh->nsteps, 2);
	T_INTEQ(dh->steps[0].action, DIFF_RESTORE);
	T_STREQ(dh->steps[0].old_name, ASIDE);
	T_INTEQ(dh->steps[1].action, DIFF_REMOVE_ASIDE);
	T_STREQ(dh->steps[1].old_name, "optimus-db_replaced_fedcba9876543210");
	T_INTEQ(s.p->change, 1);
	T_INTEQ(s.p->destroy, 1);
	scen_free(&s);
}

/* An app role's <name>_replaced_<hex> (Kamal's leftovers) is not an
 * accessory's aside: pruned as before, never restored. */
T_TEST(app_role_replaced_leftovers_are_not_asides)
{
	struct scen s;
	char *name;

	T_REQUIRE(scen_init(&s, FX_YML, FX_SECRETS, FX_V1, FX_ID1, DES_IMAGE_FOUND) == 0);
	T_REQUIRE(diff_fake_find(ohost(s.obs, "10.0.0.1"), "optimus-web-"));
	name = xasprintf("%s_replaced_0123456789abcdef", diff_fake_find(ohost(s.obs, "10.0.0.1"), "optimus-web-")->name);
	add_stopped_copy(&s, "optimus-web-", name);
	free(name);
	scen_plan(&s, 0, NULL);
	T_INTEQ(count_action(s.p, DIFF_RESTORE), 0);
	T_INTEQ(count_action(s.p, DIFF_REMOVE_ASIDE), 0);
	T_INTEQ(s.p->changes, 0);
	scen_free(&s);
}

T_MAIN(T_CASE(synthesised_observation_is_in_sync_with_its_desired_state), T_CASE(in_sync_fleet_has_no_changes), T_CASE(empty_hosts_create_everything),
       T_CASE(new_content_replaces_app_roles_not_postgres), T_CASE(same_content_job_env_change_renames_web), T_CASE(no_renames_replaces), T_CASE(interrupted_rollout_is_a_switch), T_CASE(proxy_drift_only_when_configured),
       T_CASE(secret_change_is_sensitive), T_CASE(stopped_by_hand_is_started_removed_is_created),
       T_CASE(postgres_change_is_stop_first_and_disruptive), T_CASE(removed_host_orphans_with_base),
       T_CASE(tag_not_in_registry_counts_as_change), T_CASE(prune_is_housekeeping),
       T_CASE(unreachable_host_unhealthy_and_unavailable), T_CASE(image_defaults_and_kamal_vars_are_ignored),
       T_CASE(plan_hash_is_stable_across_salts), T_CASE(traffic_switch_shows_the_current_proxy_target),
       T_CASE(orphan_accessory_is_listed_and_pruned_only_with_prune),
       T_CASE(accessory_shared_with_another_destination_is_refused),
       T_CASE(accessory_alone_without_our_env_file_is_refused),
       T_CASE(steps_reference_their_desired_container),
       T_CASE(erb_env_value_is_sensitive_and_not_computed_when_untrusted),
       T_CASE(daemon_default_log_opts_are_not_a_change), T_CASE(env_file_step_in_its_roles_wave),
       T_CASE(aside_names), T_CASE(aside_accessory_matching_is_restored),
       T_CASE(aside_accessory_differing_is_replaced_from_it),
       T_CASE(aside_leftover_beside_the_accessory_is_removed),
       T_CASE(two_asides_one_restored_one_removed),
       T_CASE(app_role_replaced_leftovers_are_not_asides))
