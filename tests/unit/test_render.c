/*
 * Golden-file tests of the three renderers (text, Markdown, JSON) over fake
 * observed fleets: an in-sync fleet, a fleet with one of every kind of step
 * (and hostile strings from a host), and a 1,000-host fleet. Outputs are
 * compared byte for byte with tests/unit/golden/; run with
 * PLUMB_UPDATE_GOLDEN=1 to rewrite them (and review the diff).
 * Also: planning CPU time for 1,000 hosts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "diff/diff.h"
#include "tests/support/fake.h"
#include "diff/render.h"
#include "tests/unit/golden/plan_fixture.h"
#include "tests/unit/t.h"

static void golden(const char *name, const char *got)
{
	char *path = xasprintf("tests/unit/golden/%s", name);

	T_GOLDEN(path, got);
	free(path);
}

static void render_all(const struct diff_plan *p, const char *base)
{
	struct sbuf sb;
	char *n;

	sbuf_init(&sb, 0);
	T_CHECK(diff_render_text(p, NULL, &sb) == 0);
	n = xasprintf("%s.txt", base);
	golden(n, sb.buf);
	free(n);
	sbuf_reset(&sb);
	T_CHECK(diff_render_markdown(p, NULL, &sb) == 0);
	n = xasprintf("%s.md", base);
	golden(n, sb.buf);
	free(n);
	sbuf_reset(&sb);
	T_CHECK(diff_render_json(p, &sb) == 0);
	n = xasprintf("%s.json", base);
	golden(n, sb.buf);
	free(n);
	sbuf_release(&sb);
}

static struct obs_host *ohost(struct obs_fleet *f, const char *host)
{
	for (size_t i = 0; i < f->nhosts; i++)
		if (strcmp(f->hosts[i].host, host) == 0)
			return &f->hosts[i];
	abort();
}

T_TEST(golden_in_sync)
{
	struct config *c = fx_config(FX_YML, FX_SECRETS);
	struct desired *ds;
	struct obs_fleet *obs = NULL;
	struct diff_plan *p = NULL;

	T_REQUIRE(c);
	ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	diff_fake_fleet(&obs, ds, FX_SALT, FX_ID1);
	diff_plan_build(&p, ds, obs, NULL);
	T_REQUIRE(p);
	T_INTEQ(diff_plan_exit_code(p), 0);
	render_all(p, "plan_in_sync");
	diff_plan_free(p);
	obs_fleet_free(obs);
	desired_free(ds);
	config_free(c);
}

T_TEST(golden_mixed_with_hostile_strings)
{
	struct config *c1 = fx_config(FX_YML, FX_SECRETS), *c2;
	struct desired *base, *ds;
	struct obs_fleet *obs = NULL;
	struct diff_plan *p = NULL;
	struct diff_opts o = { 0 };
	struct strvec extra = { 0 };
	char *yml = xstrdup(FX_YML), *q;
	struct obs_host *h1;
	struct sbuf sb;

	T_REQUIRE(c1);
	base = fx_desired(c1, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	diff_fake_fleet(&obs, base, FX_SALT, FX_ID1);
	/* the new revision: job env changed, postgres 18, a rotated secret on job only? no: root */
	q = strstr(yml, "QUEUE_THREADS: 3");
	q[strlen("QUEUE_THREADS: ")] = '4';
	q = strstr(yml, "postgres:17");
	q[10] = '8';
	c2 = fx_config(yml, FX_SECRETS);
	free(yml);
	T_REQUIRE(c2);
	ds = fx_desired(c2, FX_V2, FX_ID1, DES_IMAGE_FOUND);
	h1 = ohost(obs, "10.0.0.1");
	/* old stopped versions beyond retain_containers */
	for (int i = 0; i < 6; i++) {
		struct obs_container *cc;
		char name[64];
		snprintf(name, sizeof(name), "optimus-web-0%d", i);
		cc = diff_fake_add(h1, diff_fake_find(h1, "optimus-web-"), name);
		free(cc->state);
		cc->state = xstrdup("exited");
		free(cc->created);
		cc->created = xasprintf("2024-02-0%dT00:00:00Z", i + 1);
	}
	/* a hostile orphan: a role name with Markdown/HTML and a terminal escape */
	{
		struct obs_container *cc = diff_fake_add(h1, diff_fake_find(h1, "optimus-web-"),
							 "optimus-x|<b>*y*</b>\033[31m-1");
		free(cc->role);
		cc->role = xstrdup("x|<b>*y*</b>\033[31m");
	}
	diff_fake_find(ohost(obs, "10.0.0.2"), "optimus-web-")->health = xstrdup("unhealthy");
	h1->lock_holder = xstrdup("Locked by: ci <ci@example.com> `rm -rf`");
	/* a host from the base revision that cannot be reached */
	obs->hosts = xrealloc(obs->hosts, (obs->nhosts + 1) * sizeof(*obs->hosts));
	memset(&obs->hosts[obs->nhosts], 0, sizeof(obs->hosts[0]));
	obs->hosts[obs->nhosts].host = xstrdup("10.0.0.3");
	obs->hosts[obs->nhosts].status = OBS_UNREACHABLE;
	obs->hosts[obs->nhosts].error = xstrdup("ssh: connect: Connection refused");
	obs->nhosts++;
	strvec_push(&extra, "10.0.0.3");
	o.base = base;
	o.extra_hosts = &extra;
	diff_plan_build(&p, ds, obs, &o);
	T_REQUIRE(p);
	T_INTEQ(diff_plan_exit_code(p), 1);
	render_all(p, "plan_mixed");
	/* what a reader must never see */
	sbuf_init(&sb, 0);
	diff_render_text(p, NULL, &sb);
	T_NOT_CONTAINS(sb.buf, "\033");
	T_NOT_CONTAINS(sb.buf, "master-key-value-1");
	T_CONTAINS(sb.buf, "env QUEUE_THREADS: \"3\" → \"4\"");
	T_CONTAINS(sb.buf, "DISRUPTIVE");
	sbuf_reset(&sb);
	diff_render_markdown(p, NULL, &sb);
	T_NOT_CONTAINS(sb.buf, "<b>");
	T_NOT_CONTAINS(sb.buf, " `rm");
	T_CONTAINS(sb.buf, "\\`rm");
	sbuf_release(&sb);
	strvec_release(&extra);
	diff_plan_free(p);
	obs_fleet_free(obs);
	desired_free(ds);
	desired_free(base);
	config_free(c1);
	config_free(c2);
}

T_TEST(golden_fleet_1000_hosts_and_cpu_time)
{
	char *yml = diff_fake_fleet_yml(1000, 100);
	struct config *c = fx_config(yml, FX_SECRETS);
	struct desired *ds, *ds2;
	struct obs_fleet *obs = NULL;
	struct diff_plan *p = NULL;
	struct obs_container *cc;
	clock_t t0;
	double ms_sync, ms_all;

	free(yml);
	T_REQUIRE(c);
	ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(ds && ds->nhosts == 1000);
	diff_fake_fleet(&obs, ds, FX_SALT, FX_ID1);
	/* drift on three hosts */
	cc = diff_fake_find(ohost(obs, "10.1.0.5"), "optimus-web-");
	free(cc->state);
	cc->state = xstrdup("exited");
	diff_fake_set_env(diff_fake_find(ohost(obs, "10.1.0.17"), "optimus-job-"), FX_SALT, "DEBUG", "1");
	ohost(obs, "10.1.3.250")->status = OBS_UNKNOWN;
	ohost(obs, "10.1.3.250")->error = xstrdup("observation cut short after 8 MiB");

	t0 = clock();
	diff_plan_build(&p, ds, obs, NULL);
	ms_sync = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
	T_REQUIRE(p);
	T_INTEQ(p->change, 1);
	T_INTEQ(p->add, 1);
	T_INTEQ(p->failed_hosts, 1);
	render_all(p, "plan_fleet1000");
	diff_plan_free(p);

	/* the worst case: every app container replaced */
	ds2 = fx_desired(c, FX_V2, FX_ID2, DES_IMAGE_FOUND);
	t0 = clock();
	diff_plan_build(&p, ds2, obs, NULL);
	ms_all = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
	T_REQUIRE(p);
	T_INTEQ(p->add, 1099); /* 1100 app containers, one host unknown */
	T_INTEQ(p->hosts[0].steps[0].group, 0);
	T_INTEQ(p->hosts[998].steps[0].wave, 2);
	fprintf(stderr, "  planning 1,000 hosts (sanitizer build): %.1f ms in sync, %.1f ms all replaced\n",
		ms_sync, ms_all);
	/* generous under ASan; the release-build target (< 100 ms) is checked by make bench */
	T_CHECK(ms_sync < 2000 && ms_all < 4000);
	diff_plan_free(p);
	desired_free(ds2);
	obs_fleet_free(obs);
	desired_free(ds);
	config_free(c);
}

/* A host that could not be observed: no claim that "the hosts match". */
T_TEST(no_changes_with_an_unreachable_host)
{
	struct config *c = fx_config(FX_YML, FX_SECRETS);
	struct desired *ds;
	struct obs_fleet *obs = NULL;
	struct diff_plan *p = NULL;
	struct sbuf sb;

	T_REQUIRE(c);
	ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	diff_fake_fleet(&obs, ds, FX_SALT, FX_ID1);
	obs->hosts[0].status = OBS_UNREACHABLE;
	obs->hosts[0].error = xstrdup("connection refused");
	diff_plan_build(&p, ds, obs, NULL);
	T_REQUIRE(p);
	T_INTEQ(diff_plan_exit_code(p), 1);
	sbuf_init(&sb, 0);
	T_CHECK(diff_render_text(p, NULL, &sb) == 0);
	T_CHECK(strstr(sb.buf, "match the configuration") == NULL);
	T_CONTAINS(sb.buf, "No changes on the hosts that could be planned");
	T_CONTAINS(sb.buf, "UNREACHABLE");
	sbuf_reset(&sb);
	T_CHECK(diff_render_markdown(p, NULL, &sb) == 0);
	T_CHECK(strstr(sb.buf, "match the configuration") == NULL);
	T_CONTAINS(sb.buf, "could not be planned");
	sbuf_release(&sb);
	diff_plan_free(p);
	obs_fleet_free(obs);
	desired_free(ds);
	config_free(c);
}

/* A plan with changes (job env, Postgres 18) over the fixture fleet. */
static struct diff_plan *changed_plan(struct obs_fleet **obs, struct desired **ds, struct config **c)
{
	char *yml = xstrdup(FX_YML), *q;
	struct diff_plan *p = NULL;

	q = strstr(yml, "QUEUE_THREADS: 3");
	q[strlen("QUEUE_THREADS: ")] = '4';
	q = strstr(yml, "postgres:17");
	q[10] = '8';
	*c = fx_config(yml, FX_SECRETS);
	free(yml);
	if (!*c)
		return NULL;
	*ds = fx_desired(*c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	{
		/* the fleet as deployed from the fixture, before the change */
		struct config *c0 = fx_config(FX_YML, FX_SECRETS);
		struct desired *ds0 = c0 ? fx_desired(c0, FX_V1, FX_ID1, DES_IMAGE_FOUND) : NULL;
		if (!ds0)
			abort();
		diff_fake_fleet(obs, ds0, FX_SALT, FX_ID1);
		desired_free(ds0);
		config_free(c0);
	}
	diff_plan_build(&p, *ds, *obs, NULL);
	return p;
}

/* Every append counts: whatever bound cuts the output, the renderer says so
 * (and leaves the buffer as it was). */
T_TEST(bounded_output_fails_wherever_it_is_cut)
{
	struct config *c = NULL;
	struct desired *ds = NULL;
	struct obs_fleet *obs = NULL;
	struct diff_plan *p = changed_plan(&obs, &ds, &c);
	int (*const fns[2])(const struct diff_plan *, const struct render_opts *, struct sbuf *) = {
		diff_render_text, diff_render_markdown
	};

	T_REQUIRE(p);
	for (size_t f = 0; f < 2; f++) {
		struct sbuf full, sb;
		size_t bad = 0;
		sbuf_init(&full, 0);
		T_CHECK(fns[f](p, NULL, &full) == 0);
		T_CHECK(full.len > 500);
		for (size_t max = 1; max < full.len; max++) {
			int rc;
			sbuf_init(&sb, max);
			rc = fns[f](p, NULL, &sb);
			if (rc != -1 || sb.len != 0)
				bad++;
			sbuf_release(&sb);
		}
		sbuf_init(&sb, full.len);
		T_CHECK(fns[f](p, NULL, &sb) == 0);
		T_STREQ(sb.buf, full.buf);
		sbuf_release(&sb);
		T_INTEQ(bad, 0);
		sbuf_release(&full);
	}
	diff_plan_free(p);
	obs_fleet_free(obs);
	desired_free(ds);
	config_free(c);
}

/* Invalid UTF-8 from a host never makes a JSON key disappear. */
T_TEST(json_keeps_keys_with_invalid_utf8)
{
	struct config *c = NULL;
	struct desired *ds = NULL;
	struct obs_fleet *obs = NULL;
	struct diff_plan *p = changed_plan(&obs, &ds, &c);
	struct diff_host *h;
	struct sbuf sb;
	json_t *root, *steps, *st, *cause, *jh;

	T_REQUIRE(p);
	h = &p->hosts[0];
	T_REQUIRE(h->nsteps > 0 && h->steps[0].ncauses > 0);
	free(h->steps[0].old_name);
	h->steps[0].old_name = xstrdup("optimus-db\xff\xfe");
	free(h->steps[0].causes[0].old);
	h->steps[0].causes[0].old = xstrdup("postgres:\xc3(17");
	free(h->error);
	h->error = xstrdup("bad \xe2\x82 bytes");
	sbuf_init(&sb, 0);
	T_CHECK(diff_render_json(p, &sb) == 0);
	root = json_loads(sb.buf, 0, NULL);
	T_REQUIRE(root);
	jh = json_array_get(json_object_get(root, "hosts"), 0);
	T_CHECK(json_is_string(json_object_get(jh, "error")));
	steps = json_object_get(jh, "steps");
	st = json_array_get(steps, 0);
	T_CHECK(json_is_string(json_object_get(st, "old_name")));
	T_CONTAINS(json_string_value(json_object_get(st, "old_name")), "optimus-db\xef\xbf\xbd");
	cause = json_array_get(json_object_get(st, "causes"), 0);
	T_CHECK(json_is_string(json_object_get(cause, "old")));
	T_CHECK(json_is_string(json_object_get(cause, "text")));
	json_decref(root);
	sbuf_release(&sb);
	diff_plan_free(p);
	obs_fleet_free(obs);
	desired_free(ds);
	config_free(c);
}

T_TEST(escapers)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	render_md_escape(&sb, "a*b_<i>|`x`\n[l](u)");
	T_STREQ(sb.buf, "a\\*b\\_&lt;i&gt;\\|\\`x\\` \\[l\\]\\(u\\)");
	sbuf_reset(&sb);
	render_html_escape(&sb, "<script>&\"*");
	T_STREQ(sb.buf, "&lt;script&gt;&amp;&quot;&#42;");
	sbuf_reset(&sb);
	render_text_escape(&sb, "a\033[31mb\n");
	T_STREQ(sb.buf, "a\\x1b[31mb\\x0a");
	sbuf_release(&sb);
}

/* A C1 control (CSI, U+009B) or invalid UTF-8 from a host is escaped in the
 * text and Markdown plans, as ESC is. */
T_TEST(text_and_markdown_escape_c1_from_a_host)
{
	struct config *c = NULL;
	struct desired *ds = NULL;
	struct obs_fleet *obs = NULL;
	struct diff_plan *p = changed_plan(&obs, &ds, &c);
	struct render_opts o = { 0 };
	struct sbuf sb;

	T_REQUIRE(p);
	free(p->hosts[0].error);
	p->hosts[0].error = xstrdup("lost \xc2\x9b" "2J \xff");
	p->hosts[0].status = DIFF_HOST_UNREACHABLE;
	sbuf_init(&sb, 0);
	T_CHECK(diff_render_text(p, &o, &sb) == 0);
	T_CONTAINS(sb.buf, "lost \\xc2\\x9b2J \\xff");
	T_CHECK(strstr(sb.buf, "\xc2\x9b") == NULL && strchr(sb.buf, '\xff') == NULL);
	sbuf_reset(&sb);
	T_CHECK(diff_render_markdown(p, &o, &sb) == 0);
	T_CONTAINS(sb.buf, "lost \\\\xc2\\\\x9b2J \\\\xff");
	T_CHECK(strstr(sb.buf, "\xc2\x9b") == NULL && strchr(sb.buf, '\xff') == NULL);
	sbuf_release(&sb);
	diff_plan_free(p);
	obs_fleet_free(obs);
	desired_free(ds);
	config_free(c);
}

T_MAIN(T_CASE(golden_in_sync), T_CASE(golden_mixed_with_hostile_strings),
       T_CASE(golden_fleet_1000_hosts_and_cpu_time), T_CASE(escapers),
       T_CASE(no_changes_with_an_unreachable_host), T_CASE(bounded_output_fails_wherever_it_is_cut),
       T_CASE(json_keeps_keys_with_invalid_utf8), T_CASE(text_and_markdown_escape_c1_from_a_host))
