/*
 * The executor over fake transports that record every command and answer
 * as a host would (tests/support/fake.h gives the observed fleet at V1; the
 * plan rolls it to V2): the order of the waves and of the round trips on a
 * host, a new container that never becomes ready (removed, the old one kept,
 * the rollout stopped), a tag that moved (nothing run), a plan without steps
 * (nothing sent), and a read-only fleet (never a writer).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"
#include "providers/fleet.h"
#include "providers/transport.h"
#include "reconciler/executor.h"
#include "tests/support/fake.h"
#include "tests/unit/golden/plan_fixture.h"
#include "tests/unit/t.h"

#define NEW_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- a fake host ---- */

struct fake_host {
	struct transport base;
	struct strvec log;        /* every command, rendered */
	const char *fail_ready;   /* a readiness wait for this name fails */
	const char *pulled_id;    /* what `docker image inspect` answers */
};

static int fake_answer(struct transport *t, const char *cmd, struct cmd_result *out)
{
	struct fake_host *h = (struct fake_host *)t;
	const char *p;

	cmd_result_init(out, 1u << 20);
	strvec_push(&h->log, cmd);
	out->status = 0;
	for (p = cmd; (p = strstr(p, "image inspect")); p++)
		sbuf_addf(&out->out, "%s\n", h->pulled_id);
	if (strstr(cmd, "docker run"))
		sbuf_addf(&out->out, "%s\n", NEW_ID);
	if (h->fail_ready && strstr(cmd, "plumb-ready") && strstr(cmd, h->fail_ready)) {
		sbuf_adds(&out->out, "plumb-ready: not ready\n");
		out->status = 2;
	}
	return 0;
}

static int fake_run_input(struct transport *t, const char *cmd, const void *in, size_t in_len,
			  struct cmd_result *out)
{
	(void)in;
	(void)in_len;
	return fake_answer(t, cmd, out);
}

static void fake_close(struct transport *t)
{
	(void)t;
}

static const struct transport_ops fake_ops = {
	.name = "fake",
	.run = fake_answer,
	.run_cmd = prov_run_cmd_rendered,
	.run_input = fake_run_input,
	.close = fake_close,
};

static struct fake_host hosts[4];
static int writer_calls;

static int fake_writer(struct fleet *fl, size_t i, struct transport **out, struct plumb_err *err)
{
	(void)fl;
	(void)err;
	__atomic_add_fetch(&writer_calls, 1, __ATOMIC_SEQ_CST);
	*out = &hosts[i].base;
	return 0;
}

/* ---- a scenario: the fixture's fleet at V1, the plan to V2 ---- */

struct scen {
	struct config *c;
	struct desired *base, *ds;
	struct obs_fleet *obs;
	struct diff_plan *p;
	struct fleet *fl;
	struct rec_exec_opts o;
	struct rec_exec_report rep;
	FILE *out;
	char *outbuf;
	size_t outlen;
};

static int scen_init(struct scen *s, const char *version, const char *id, enum fleet_mode mode)
{
	struct diff_opts dopt = { 0 };
	struct fleet_opts fo = { 0 };
	const char *names[4];

	memset(s, 0, sizeof(*s));
	s->c = fx_config(FX_YML, FX_SECRETS);
	if (!s->c)
		return -1;
	s->base = fx_desired(s->c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	s->ds = fx_desired(s->c, version, id, DES_IMAGE_FOUND);
	if (!s->base || !s->ds)
		return -1;
	diff_fake_fleet(&s->obs, s->base, FX_SALT, FX_ID1);
	for (size_t i = 0; i < s->obs->nhosts; i++)
		if (!s->obs->hosts[i].home)
			s->obs->hosts[i].home = xstrdup("/home/deploy");
	if (diff_plan_build(&s->p, s->ds, s->obs, &dopt) != 0)
		return -1;
	for (size_t i = 0; i < s->obs->nhosts && i < 4; i++) {
		names[i] = s->obs->hosts[i].host;
		memset(&hosts[i], 0, sizeof(hosts[i]));
		prov_transport_init(&hosts[i].base, &fake_ops, names[i], 0, 0);
		hosts[i].pulled_id = id;
	}
	fo.hosts = names;
	fo.nhosts = s->obs->nhosts;
	fleet_open(&s->fl, &fo, mode);
	writer_calls = 0;
	s->out = open_memstream(&s->outbuf, &s->outlen);
	s->o.config = s->c;
	s->o.ds = s->ds;
	s->o.plan = s->p;
	s->o.obs = s->obs;
	s->o.fleet = s->fl;
	s->o.out = s->out;
	s->o.writer = fake_writer;
	return 0;
}

static int scen_run(struct scen *s)
{
	struct plumb_err err = { 0 };
	int rc = rec_execute(&s->o, &s->rep, &err);

	fflush(s->out);
	return rc;
}

static void scen_free(struct scen *s)
{
	for (size_t i = 0; s->obs && i < s->obs->nhosts && i < 4; i++) {
		strvec_release(&hosts[i].log);
		free(hosts[i].base.label);
	}
	if (s->out)
		fclose(s->out);
	free(s->outbuf);
	rec_exec_report_release(&s->rep);
	fleet_free(s->fl);
	diff_plan_free(s->p);
	obs_fleet_free(s->obs);
	desired_free(s->ds);
	desired_free(s->base);
	config_free(s->c);
}

static int host_of(const struct scen *s, const char *name)
{
	for (size_t i = 0; i < s->obs->nhosts; i++)
		if (strcmp(s->obs->hosts[i].host, name) == 0)
			return (int)i;
	return -1;
}

/* Index of the first command of host i holding every word given, or -1. */
static int find_cmd(int i, const char *a, const char *b)
{
	for (size_t k = 0; k < hosts[i].log.n; k++)
		if (strstr(hosts[i].log.v[k], a) && (!b || strstr(hosts[i].log.v[k], b)))
			return (int)k;
	return -1;
}

static size_t total_cmds(const struct scen *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->obs->nhosts; i++)
		n += hosts[i].log.n;
	return n;
}

/* ---- tests ---- */

T_TEST(roll_runs_waves_in_order)
{
	struct scen s;
	int h1, h2, pull, web, job, sw;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	T_CHECK(scen_run(&s) == 0);
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "%s", s.outbuf);
	h1 = host_of(&s, "10.0.0.1");
	h2 = host_of(&s, "10.0.0.2");
	T_REQUIRE(h1 >= 0 && h2 >= 0);
	/* host 2: pull first, then web booted and switched, then the job (wave 3) */
	pull = find_cmd(h2, "docker pull", NULL);
	web = find_cmd(h2, "docker run", "optimus-web-" FX_V2);
	sw = find_cmd(h2, "kamal-proxy deploy", NULL);
	job = find_cmd(h2, "docker run", "optimus-job-" FX_V2);
	if (getenv("T_VERBOSE"))
		for (size_t k = 0; k < hosts[h2].log.n; k++)
			fprintf(stderr, "host 2 [%zu] %.300s\n", k, hosts[h2].log.v[k]);
	T_CHECKF(pull == 0, "pull at %d", pull);
	T_REQUIRE(web >= 0 && sw >= 0 && job >= 0);
	T_CHECK(web > pull && sw > web && job > sw);
	/* the new web container waited for on the host, in its boot command */
	T_CHECK(strstr(hosts[h2].log.v[web], "plumb-ready") != NULL);
	/* the old one stopped after the switch, with the switch */
	T_CHECK(find_cmd(h2, "docker stop", "optimus-web-" FX_V1) == sw);
	/* no secret in any command; the env file content went on stdin */
	for (size_t i = 0; i < s.obs->nhosts; i++)
		for (size_t k = 0; k < hosts[i].log.n; k++)
			T_CHECK(!strstr(hosts[i].log.v[k], "master-key-value-1") &&
				!strstr(hosts[i].log.v[k], "pg-pass-1"));
	/* a roll: pull, boot, switch (+ tag and prune) on a web-only host */
	T_CHECKF(hosts[h1].log.n == 3, "host 1 ran %zu commands", hosts[h1].log.n);
	T_CHECK(s.rep.done == 3 && s.rep.failed == 0 && s.rep.not_done == 0);
	scen_free(&s);
}

T_TEST(failed_readiness_stops_the_rollout)
{
	struct scen s;
	int h1, h2;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	h1 = host_of(&s, "10.0.0.1");
	h2 = host_of(&s, "10.0.0.2");
	T_REQUIRE(h1 >= 0 && h2 >= 0);
	hosts[h1].fail_ready = "optimus-web-" FX_V2;
	T_CHECK(scen_run(&s) < 0);
	/* host 1: the new container removed, never switched to, the old one not stopped */
	T_CHECK(find_cmd(h1, "docker rm", "optimus-web-" FX_V2) >= 0);
	T_CHECK(find_cmd(h1, "docker logs", "optimus-web-" FX_V2) >= 0);
	T_CHECK(find_cmd(h1, "kamal-proxy deploy", NULL) < 0);
	T_CHECK(find_cmd(h1, "docker stop", "optimus-web-" FX_V1) < 0);
	/* wave 3 never started: the job was not booted */
	T_CHECK(find_cmd(h2, "docker run", "optimus-job-") < 0);
	T_CHECK(s.rep.failed == 1 && s.rep.not_done >= 1);
	T_CHECK(strstr(s.rep.summary, "web runs optimus-web-" FX_V1) != NULL);
	scen_free(&s);
}

T_TEST(a_moved_tag_stops_before_anything)
{
	struct scen s;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	for (size_t i = 0; i < s.obs->nhosts; i++)
		hosts[i].pulled_id = FX_ID1; /* the registry now has another image */
	T_CHECK(scen_run(&s) < 0);
	for (size_t i = 0; i < s.obs->nhosts; i++) {
		T_CHECK(find_cmd((int)i, "docker run", NULL) < 0);
		T_CHECK(find_cmd((int)i, "docker stop", NULL) < 0);
	}
	T_CHECK(strstr(s.outbuf, "the tag moved") != NULL);
	scen_free(&s);
}

T_TEST(no_steps_sends_nothing)
{
	struct scen s;

	T_REQUIRE(scen_init(&s, FX_V1, FX_ID1, FLEET_READ_WRITE) == 0);
	T_REQUIRE(s.p->changes == 0);
	T_CHECK(scen_run(&s) == 0);
	T_CHECK(writer_calls == 0);
	T_CHECK(total_cmds(&s) == 0);
	scen_free(&s);
}

T_TEST(read_only_fleet_never_writes)
{
	struct scen s;
	struct plumb_err err = { 0 };
	struct transport *t = NULL;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_ONLY) == 0);
	T_CHECK(scen_run(&s) == PLUMB_EREFUSED);
	T_CHECK(writer_calls == 0);
	T_CHECK(total_cmds(&s) == 0);
	/* and with the real writer: the read-only handle refuses it */
	s.o.writer = NULL;
	rec_exec_report_release(&s.rep);
	T_CHECK(scen_run(&s) == PLUMB_EREFUSED);
	T_CHECK(fleet_writer(s.fl, 0, &t, &err) == PLUMB_EREFUSED && t == NULL);
	T_CHECK(fleet_commands(s.fl) == 0);
	scen_free(&s);
}

T_MAIN(T_CASE(roll_runs_waves_in_order), T_CASE(failed_readiness_stops_the_rollout),
       T_CASE(a_moved_tag_stops_before_anything), T_CASE(no_steps_sends_nothing),
       T_CASE(read_only_fleet_never_writes))
