/*
 * The executor over fake transports that record every command and answer
 * as a host would (tests/support/fake.h gives the observed fleet at V1; the
 * plan rolls it to V2): the order of the waves and of the round trips on a
 * host, a new container that never becomes ready (removed, the old one kept,
 * the rollout stopped), a tag that moved (nothing run), a plan without steps
 * (nothing sent), and a read-only fleet (never a writer).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff/diff.h"
#include "providers/fleet.h"
#include "providers/transport.h"
#include "reconciler/executor.h"
#include "tests/support/fake.h"
#include "tests/unit/golden/plan_fixture.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#define NEW_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define NEW_ID_SHORT "0123456789ab"

/* ---- a fake host ---- */

struct fake_host {
	struct transport base;
	struct strvec log;        /* every command, rendered */
	struct strvec input;      /* what each command got on stdin ("" for none) */
	int seq[64];              /* each command's place among every host's, when it started */
	int eseq[64];             /* … when it ended */
	const char *fail_ready;   /* a readiness wait for this name fails */
	const char *pulled_id;    /* what `docker image inspect` answers */
	int stale;                /* the observed containers changed: plumb-expect fails */
	int slow_run_ms;          /* a docker run takes this long */
	int lock_held;            /* the fake lock command finds the lock held */
};

static int gseq;

static int fake_answer_body(struct transport *t, const char *cmd, struct cmd_result *out);

static int fake_answer(struct transport *t, const char *cmd, struct cmd_result *out)
{
	struct fake_host *h = (struct fake_host *)t;
	size_t k = h->log.n;
	int rc = fake_answer_body(t, cmd, out);

	if (k < 64)
		h->eseq[k] = __atomic_add_fetch(&gseq, 1, __ATOMIC_SEQ_CST);
	return rc;
}

static int fake_answer_body(struct transport *t, const char *cmd, struct cmd_result *out)
{
	struct fake_host *h = (struct fake_host *)t;
	const char *p;

	if (h->log.n < 64)
		h->seq[h->log.n] = __atomic_add_fetch(&gseq, 1, __ATOMIC_SEQ_CST);
	cmd_result_init(out, 1u << 20);
	strvec_push(&h->log, cmd);
	if (h->input.n < h->log.n)
		strvec_push(&h->input, "");
	out->status = 0;
	if (strstr(cmd, "plumb-pull"))
		sbuf_adds(&out->out, "pulled\n"); /* (the fake pulls whatever it is asked) */
	for (p = cmd; (p = strstr(p, "image inspect")); p++)
		sbuf_addf(&out->out, "%s\n", h->pulled_id);
	if (strstr(cmd, "FAKE-LOCK")) {
		if (h->lock_held) {
			sbuf_adds(&out->out, "HELD\n");
			out->status = 10;
			return 0;
		}
		sbuf_adds(&out->out, "FAKE-LOCK-TAKEN\n");
	}
	if (h->stale && strstr(cmd, "plumb-expect")) {
		sbuf_adds(&out->err, "plumb-expect: a container this host's steps act on is not the one observed\n");
		out->status = 9;
		return 0;
	}
	if (strstr(cmd, "docker run")) {
		if (h->slow_run_ms)
			usleep((useconds_t)h->slow_run_ms * 1000);
		sbuf_addf(&out->out, "%s\n", NEW_ID);
	}
	if (h->fail_ready && strstr(cmd, "plumb-ready") && strstr(cmd, h->fail_ready)) {
		sbuf_adds(&out->out, "plumb-ready: not ready\n");
		out->status = 2;
	}
	return 0;
}

static int fake_run_input(struct transport *t, const char *cmd, const void *in, size_t in_len,
			  struct cmd_result *out)
{
	struct fake_host *h = (struct fake_host *)t;

	strvec_push_take(&h->input, xstrndup(in, in_len));
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

static int tunnels[4];

static int fake_tunnel(struct fleet *fl, size_t i, int port, struct plumb_err *err)
{
	(void)fl;
	(void)err;
	/* before any command on that host: the pull needs it */
	if (port == 5555 && i < 4 && hosts[i].log.n == 0)
		tunnels[i]++;
	return 0;
}

/* ---- a fake deploy lock (what cmd_apply gives: rec_lock_acquire_cmd/read) ---- */

static int fake_lock_cmd(struct prov_cmd *c, enum prov_join join, struct plumb_err *err, void *ctx)
{
	(void)err;
	(void)ctx;
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "echo", "FAKE-LOCK", NULL);
	return 0;
}

static int fake_lock_read(struct transport *t, const struct cmd_result *r, int *taken,
			  struct plumb_err *err, void *ctx)
{
	(void)t;
	(void)ctx;
	*taken = r->out.buf && strstr(r->out.buf, "FAKE-LOCK-TAKEN") != NULL;
	return *taken ? 0 : plumb_err_set(err, PLUMB_ELOCKED, "deploy lock lock-optimus is held");
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

static int scen_init_yml(struct scen *s, const char *yml, const char *version, const char *id,
			 enum fleet_mode mode);

static int scen_init(struct scen *s, const char *version, const char *id, enum fleet_mode mode)
{
	return scen_init_yml(s, FX_YML, version, id, mode);
}

static int scen_init_from(struct scen *s, const char *base, const char *yml, const char *version,
			  const char *id, enum fleet_mode mode);

/* The fleet deployed from FX_YML at V1; the plan to yml at version. */
static int scen_init_yml(struct scen *s, const char *yml, const char *version, const char *id,
			 enum fleet_mode mode)
{
	return scen_init_from(s, FX_YML, yml, version, id, mode);
}

/* The fleet deployed from base at V1; the plan to yml at version. */
static int scen_init_from(struct scen *s, const char *base, const char *yml, const char *version,
			  const char *id, enum fleet_mode mode)
{
	struct config *c1;
	struct diff_opts dopt = { 0 };
	struct fleet_opts fo = { 0 };
	const char *names[4];

	memset(s, 0, sizeof(*s));
	c1 = fx_config(base, FX_SECRETS);
	s->c = fx_config(yml, FX_SECRETS);
	if (!s->c || !c1) {
		config_free(c1);
		return -1;
	}
	s->base = fx_desired(c1, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	config_free(c1);
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
	s->o.tunnel = fake_tunnel;
	memset(tunnels, 0, sizeof(tunnels));
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
		strvec_release(&hosts[i].input);
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

/* Index of the first command of host i after `from` holding every word given, or -1. */
static int find_cmd_after(int i, int from, const char *a, const char *b)
{
	for (size_t k = (size_t)(from + 1); k < hosts[i].log.n; k++)
		if (strstr(hosts[i].log.v[k], a) && (!b || strstr(hosts[i].log.v[k], b)))
			return (int)k;
	return -1;
}

static int find_cmd(int i, const char *a, const char *b)
{
	return find_cmd_after(i, -1, a, b);
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
	web = find_cmd(h2, "docker run", "--name optimus-web-" FX_V2);
	sw = find_cmd(h2, "kamal-proxy deploy", NULL);
	job = find_cmd(h2, "docker run", "--name optimus-job-" FX_V2);
	if (getenv("T_VERBOSE"))
		for (size_t k = 0; k < hosts[h2].log.n; k++)
			fprintf(stderr, "host 2 [%zu] %.300s\n", k, hosts[h2].log.v[k]);
	T_CHECKF(pull == 0, "pull at %d", pull);
	T_REQUIRE(web >= 0 && sw >= 0 && job >= 0);
	T_CHECK(web > pull && sw == web && job > sw);
	/* the new web container waited for on the host, then switched to, in its
	 * boot command (the switch follows the ready marker) */
	T_CHECK(strstr(hosts[h2].log.v[web], "plumb-ready") != NULL);
	T_CHECK(strstr(hosts[h2].log.v[web], "plumb-ready-ok") <
		strstr(hosts[h2].log.v[web], "kamal-proxy deploy"));
	/* the old one stopped after the switch, in the next command (the barrier
	 * opened in between), before the job boots */
	T_CHECK(find_cmd(h2, "docker stop", "optimus-web-" FX_V1) == sw + 1);
	/* no secret in any command; the env file content went on stdin */
	for (size_t i = 0; i < s.obs->nhosts; i++)
		for (size_t k = 0; k < hosts[i].log.n; k++)
			T_CHECK(!strstr(hosts[i].log.v[k], "master-key-value-1") &&
				!strstr(hosts[i].log.v[k], "pg-pass-1"));
	/* a roll on a web host whose step opens the barrier: pull, boot and
	 * switch, stop (+ tag and prune) */
	T_CHECKF(hosts[h1].log.n == 3, "host 1 ran %zu commands", hosts[h1].log.n);
	/* the job's host boots, waits and stops the old job in one command */
	T_CHECK(find_cmd(h2, "docker stop", "optimus-job-" FX_V1) == job);
	/* localhost:5555: each host reached it through a tunnel opened before its pull */
	T_CHECK(tunnels[h1] == 1 && tunnels[h2] == 1);
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
	/* host 1: the new container removed by the id its run printed (never by
	 * name), never switched to, the old one not stopped */
	T_CHECK(find_cmd(h1, "docker rm", NEW_ID_SHORT) >= 0);
	T_CHECK(find_cmd(h1, "docker logs", NEW_ID_SHORT) >= 0);
	T_CHECK(find_cmd(h1, "docker rm", "optimus-web-") < 0);
	/* the switch was in the failed boot command, after the ready marker
	 * (the host never got there); nothing after it switched or stopped */
	{
		int boot = find_cmd(h1, "docker run", "--name optimus-web-" FX_V2);
		T_REQUIRE(boot >= 0);
		T_CHECK(find_cmd_after(h1, boot, "kamal-proxy deploy", NULL) < 0);
		T_CHECK(find_cmd_after(h1, boot, "docker stop", "optimus-web-" FX_V1) < 0);
	}
	/* wave 3 never started: the job was not booted */
	T_CHECK(find_cmd(h2, "docker run", "--name optimus-job-") < 0);
	T_CHECK(s.rep.failed == 1 && s.rep.not_done >= 1);
	T_CHECK(strstr(s.rep.summary, "web runs optimus-web-" FX_V1) != NULL);
	scen_free(&s);
}

T_TEST(the_lock_rides_on_the_primary_hosts_first_command)
{
	struct scen s;
	int h1, h2, first;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	h1 = host_of(&s, "10.0.0.1");
	h2 = host_of(&s, "10.0.0.2");
	T_REQUIRE(h1 >= 0 && h2 >= 0);
	s.o.lock_cmd = fake_lock_cmd;
	s.o.lock_read = fake_lock_read;
	s.o.lock_host = (size_t)h1;
	T_CHECK(scen_run(&s) == 0);
	/* taken in front of the pull, in one command; nowhere else */
	first = find_cmd(h1, "FAKE-LOCK", NULL);
	T_CHECK(first == 0 && strstr(hosts[h1].log.v[0], "FAKE-LOCK") <
				      strstr(hosts[h1].log.v[0], "docker pull"));
	T_CHECK(find_cmd(h2, "FAKE-LOCK", NULL) < 0);
	T_CHECK(s.rep.locked == 1);
	/* no more commands than without it; the release is counted on its host */
	T_CHECKF(hosts[h1].log.n == 3, "host 1 ran %zu commands", hosts[h1].log.n);
	T_CHECK(strstr(s.rep.summary, "the lock and its release") != NULL);
	/* each host's first step command checks what it acts on first */
	T_CHECK(strstr(hosts[h1].log.v[1], "plumb-expect") != NULL &&
		strstr(hosts[h1].log.v[1], "plumb-expect") < strstr(hosts[h1].log.v[1], "docker run"));
	T_CHECK(strstr(hosts[h1].log.v[2], "plumb-expect") == NULL);
	scen_free(&s);
}

T_TEST(a_held_lock_runs_no_step)
{
	struct scen s;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	s.o.lock_cmd = fake_lock_cmd;
	s.o.lock_read = fake_lock_read;
	s.o.lock_host = (size_t)host_of(&s, "10.0.0.1");
	hosts[s.o.lock_host].lock_held = 1;
	T_CHECK(scen_run(&s) < 0);
	for (size_t i = 0; i < s.obs->nhosts; i++) {
		T_CHECK(find_cmd((int)i, "docker run", NULL) < 0);
		T_CHECK(find_cmd((int)i, "docker stop", NULL) < 0);
	}
	T_CHECK(s.rep.locked == 0);
	T_CHECK(strstr(s.outbuf, "is held") != NULL && strstr(s.outbuf, "nothing was stopped") != NULL);
	scen_free(&s);
}

T_TEST(a_host_changed_since_observed_is_left_alone)
{
	struct scen s;
	int h1;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	h1 = host_of(&s, "10.0.0.1");
	T_REQUIRE(h1 >= 0);
	hosts[h1].stale = 1;
	T_CHECK(scen_run(&s) < 0);
	/* the check failed in front of the boot: nothing after it, no undo */
	T_CHECK(find_cmd_after(h1, find_cmd(h1, "plumb-expect", NULL), "docker", NULL) < 0);
	T_CHECK(strstr(s.rep.summary, "not the one observed") != NULL);
	scen_free(&s);
}

T_TEST(a_rollback_without_the_retained_container_does_nothing)
{
	struct scen s;
	struct plumb_err err = { 0 };

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	s.o.rollback = 1; /* V2's containers were never there: nothing to start */
	s.o.no_pull = 1;
	T_CHECK(rec_execute(&s.o, &s.rep, &err) == PLUMB_EREFUSED);
	T_CHECK(strstr(plumb_err_msg(&err), "no retained container") != NULL);
	T_CHECK(total_cmds(&s) == 0);
	scen_free(&s);
}

T_TEST(a_terminal_gets_a_live_status_line)
{
	struct scen s;
	char buf[65536];
	size_t n = 0;
	ssize_t k;
	int m, sl;
	FILE *tty;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	m = posix_openpt(O_RDWR | O_NOCTTY);
	T_REQUIRE(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0);
	sl = open(ptsname(m), O_RDWR | O_NOCTTY);
	T_REQUIRE(sl >= 0);
	tty = fdopen(sl, "w");
	T_REQUIRE(tty != NULL);
	s.o.out = tty;
	for (size_t i = 0; i < s.obs->nhosts; i++)
		hosts[i].slow_run_ms = 700; /* long enough for the ticker to draw */
	T_CHECK(scen_run(&s) == 0);
	fclose(tty);
	fcntl(m, F_SETFL, O_NONBLOCK);
	while (n < sizeof(buf) - 1 && (k = read(m, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	close(m);
	/* the status line: cleared and redrawn in place, naming each busy
	 * host's step by role, with its time so far */
	T_CHECK(strstr(buf, "\r\033[K[") != NULL);
	T_CHECK(strstr(buf, "10.0.0.1: replace web (") != NULL);
	T_CHECK(strstr(buf, "10.0.0.2: replace job (") != NULL);
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "%s", buf);
	/* the progress lines are still whole lines */
	T_CHECK(strstr(buf, "replace optimus-web-" FX_V1 " -> optimus-web-" FX_V2 " done") != NULL);
	/* not on a file: no status line (the other tests' output is a memstream) */
	scen_free(&s);
}

static int fake_read_file(const char *relpath, char **out, size_t *len, struct plumb_err *err,
			  void *ctx)
{
	(void)err;
	(void)ctx;
	*out = xasprintf("-- %s\ncreate table from_files(v text);\n", relpath);
	*len = strlen(*out);
	return 0;
}

/* FX_YML with files: on the db accessory (which the plan then replaces). */
static char *yml_with_files(const char *local)
{
	return xasprintf("%s    files:\n      - %s:/docker-entrypoint-initdb.d/init.sql\n", FX_YML, local);
}

T_TEST(an_accessorys_files_are_uploaded_before_it_boots)
{
	struct scen s;
	char *yml = yml_with_files("config/init.sql");
	int h1, up, run;

	T_REQUIRE(scen_init_yml(&s, yml, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	s.o.read_file = fake_read_file;
	T_CHECK(scen_run(&s) == 0);
	h1 = host_of(&s, "10.0.0.1");
	T_REQUIRE(h1 >= 0);
	up = find_cmd(h1, "optimus-db/docker-entrypoint-initdb.d/init.sql", NULL);
	run = find_cmd(h1, "docker run", "--name optimus-db");
	T_CHECKF(up >= 0 && run > up, "upload at %d, run at %d", up, run);
	/* the bytes on stdin, never in argv; Kamal's default mode */
	T_CHECK(strstr(hosts[h1].log.v[up], "create table") == NULL);
	T_STREQ(hosts[h1].input.v[up], "-- config/init.sql\ncreate table from_files(v text);\n");
	T_CHECK(strstr(hosts[h1].log.v[up], " 755 ") != NULL);
	scen_free(&s);
	free(yml);
}

T_TEST(an_accessory_with_files_is_refused_when_they_cannot_be_read)
{
	struct scen s;
	struct plumb_err err = { 0 };
	char *yml = yml_with_files("config/init.sql"), *erb = yml_with_files("config/init.sql.erb");

	/* no way to read the repository */
	T_REQUIRE(scen_init_yml(&s, yml, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	T_CHECK(rec_execute(&s.o, &s.rep, &err) == PLUMB_ECONFIG);
	T_CONTAINS(plumb_err_msg(&err), "config/deploy.yml:");
	T_CONTAINS(plumb_err_msg(&err), "accessories.db.files: config/init.sql");
	T_CHECK(total_cmds(&s) == 0);
	scen_free(&s);
	/* an ERB template: Kamal renders it in Ruby */
	plumb_err_reset(&err);
	T_REQUIRE(scen_init_yml(&s, erb, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	s.o.read_file = fake_read_file;
	T_CHECK(rec_execute(&s.o, &s.rep, &err) == PLUMB_ECONFIG);
	T_CONTAINS(plumb_err_msg(&err), "an ERB template is not rendered");
	T_CHECK(total_cmds(&s) == 0);
	scen_free(&s);
	free(yml);
	free(erb);
	/* a host path leaving ~/<service>, an option for a mode or an owner */
	{
		static const char *const bad[][2] = {
			{ "config/x.sql:/../../.ssh/authorized_keys", "\"..\" component" },
			{ "config/x.sql:/a/../b", "\"..\" component" },
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char *y = xasprintf("%s    files:\n      - %s\n", FX_YML, bad[i][0]);
			plumb_err_reset(&err);
			T_REQUIRE(scen_init_yml(&s, y, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
			s.o.read_file = fake_read_file;
			T_CHECK(rec_execute(&s.o, &s.rep, &err) == PLUMB_ECONFIG);
			T_CONTAINS(plumb_err_msg(&err), bad[i][1]);
			T_CHECK(total_cmds(&s) == 0);
			scen_free(&s);
			free(y);
		}
	}
	{
		static const char *const bad[][2] = {
			{ "mode: \"-R\"", "a mode that is not" },
			{ "owner: \"--reference=/etc/shadow\"", "an owner that is not" },
			{ "owner: \"a b\"", "an owner that is not" },
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char *y = xasprintf("%s    files:\n      - local: config/x.sql\n        remote: /x.sql\n"
					    "        %s\n", FX_YML, bad[i][0]);
			plumb_err_reset(&err);
			T_REQUIRE(scen_init_yml(&s, y, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
			s.o.read_file = fake_read_file;
			T_CHECK(rec_execute(&s.o, &s.rep, &err) == PLUMB_ECONFIG);
			T_CONTAINS(plumb_err_msg(&err), bad[i][1]);
			T_CHECK(total_cmds(&s) == 0);
			scen_free(&s);
			free(y);
		}
	}
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

/* The same image at a new version: one rename per container, nothing else sent. */
T_TEST(a_rename_is_one_command)
{
	struct scen s;
	int h1;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID1, FLEET_READ_WRITE) == 0);
	T_CHECK(scen_run(&s) == 0);
	h1 = host_of(&s, "10.0.0.1");
	T_REQUIRE(h1 >= 0);
	T_CHECKF(hosts[h1].log.n == 1, "host 1 ran %zu commands", hosts[h1].log.n);
	T_CHECK(find_cmd(h1, "docker rename optimus-web-" FX_V1 " optimus-web-" FX_V2, NULL) == 0);
	T_CHECK(find_cmd(h1, "docker run", NULL) < 0 && find_cmd(h1, "docker stop", NULL) < 0);
	scen_free(&s);
}

/* A custom TLS certificate: certificate and key written from stdin before
 * the switch, never in a command line. */
T_TEST(tls_pems_travel_on_stdin)
{
	struct scen s;
	char *yml = NULL;
	const char *at = strstr(FX_YML, "proxy:\n  host: app.example.com\n");
	int h1, cert, key, sw;

	T_REQUIRE(at != NULL);
	yml = xasprintf("%.*sproxy:\n  host: app.example.com\n  ssl:\n    certificate_pem: RAILS_MASTER_KEY\n"
			"    private_key_pem: POSTGRES_PASSWORD\n%s",
			(int)(at - FX_YML), FX_YML, at + strlen("proxy:\n  host: app.example.com\n"));
	T_REQUIRE(scen_init_yml(&s, yml, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	T_CHECK(scen_run(&s) == 0);
	h1 = host_of(&s, "10.0.0.1");
	T_REQUIRE(h1 >= 0);
	cert = find_cmd(h1, "tls/web/cert.pem", NULL);
	key = find_cmd(h1, "tls/web/key.pem", NULL);
	sw = find_cmd(h1, "kamal-proxy deploy", NULL);
	T_REQUIRE(cert >= 0 && key >= 0 && sw >= 0);
	T_CHECK(cert < sw && key < sw);
	T_CHECK(strcmp(hosts[h1].input.v[cert], "master-key-value-1") == 0);
	T_CHECK(strcmp(hosts[h1].input.v[key], "pg-pass-1") == 0);
	for (size_t k = 0; k < hosts[h1].log.n; k++)
		T_CHECK(!strstr(hosts[h1].log.v[k], "master-key-value-1") &&
			!strstr(hosts[h1].log.v[k], "pg-pass-1"));
	scen_free(&s);
	free(yml);
}

/* The app-boot hooks as the executor calls them: "name hosts" lines. */
static struct strvec hook_calls;

static int record_hook(const char *name, const char *group, void *ctx)
{
	(void)ctx;
	strvec_push_take(&hook_calls, xasprintf("%s %s", name, group ? group : "(all)"));
	return 0;
}

/* boot.limit 1: Kamal's host boot groups, one after the other — the second
 * web host, and the job beside it, boot only once the first host's web has
 * switched; each group between its own pre- and post-app-boot hooks, told
 * the group's hosts. */
T_TEST(boot_groups_follow_each_other)
{
	struct scen s;
	char *yml = xasprintf("%sboot:\n  limit: 1\n", FX_YML);
	int h1, h2, sw1, run2, job2;

	T_REQUIRE(scen_init_yml(&s, yml, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	s.o.hook = record_hook;
	T_CHECK(scen_run(&s) == 0);
	h1 = host_of(&s, "10.0.0.1");
	h2 = host_of(&s, "10.0.0.2");
	T_REQUIRE(h1 >= 0 && h2 >= 0);
	sw1 = find_cmd(h1, "kamal-proxy deploy", NULL);
	run2 = find_cmd(h2, "docker run", "--name optimus-web-");
	job2 = find_cmd(h2, "docker run", "--name optimus-job-");
	T_REQUIRE(sw1 >= 0 && run2 >= 0 && job2 >= 0);
	T_CHECK(hosts[h1].seq[sw1] < hosts[h2].seq[run2]);
	T_CHECK(hosts[h1].seq[sw1] < hosts[h2].seq[job2]);
	T_CHECK(strstr(s.outbuf, "boot group 1: the primary role\n") != NULL);
	T_CHECK(strstr(s.outbuf, "boot group 2: the primary role and the other roles\n") != NULL);
	T_REQUIRE(hook_calls.n == 4);
	T_STREQ(hook_calls.v[0], "pre-app-boot 10.0.0.1");
	T_STREQ(hook_calls.v[1], "post-app-boot 10.0.0.1");
	T_STREQ(hook_calls.v[2], "pre-app-boot 10.0.0.2");
	T_STREQ(hook_calls.v[3], "post-app-boot 10.0.0.2");
	strvec_release(&hook_calls);
	scen_free(&s);
	free(yml);
}

/* Without boot.limit: one group of every app host, hooks once around it,
 * the job behind the barrier. */
T_TEST(one_boot_group_without_a_limit)
{
	struct scen s;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	s.o.hook = record_hook;
	T_CHECK(scen_run(&s) == 0);
	T_CHECK(strstr(s.outbuf, "boot group 1: the primary role, then the other roles\n") != NULL);
	T_CHECK(strstr(s.outbuf, "boot group 2") == NULL);
	T_REQUIRE(hook_calls.n == 2);
	T_STREQ(hook_calls.v[0], "pre-app-boot 10.0.0.1,10.0.0.2");
	T_STREQ(hook_calls.v[1], "post-app-boot 10.0.0.1,10.0.0.2");
	strvec_release(&hook_calls);
	scen_free(&s);
}

/* base with another clear env value (WEB_CONCURRENCY 3): a same-version
 * redeploy of every app container. */
static char *redeploy_yml(const char *base)
{
	char *yml = xstrdup(base), *p = strstr(yml, "WEB_CONCURRENCY: 2");

	if (p)
		p[strlen("WEB_CONCURRENCY: ")] = '3';
	return yml;
}

/* The same version with another env (a redeploy): the running container is
 * set aside under a _replaced_ name, the new one takes the name, and the one
 * stopped is the one set aside; on failure it gets its name back. */
T_TEST(a_same_version_redeploy_stops_the_one_set_aside)
{
	struct scen s;
	char *yml = redeploy_yml(FX_YML);
	int h1, run, stop, back;

	T_REQUIRE(scen_init_yml(&s, yml, FX_V1, FX_ID1, FLEET_READ_WRITE) == 0);
	T_CHECK(scen_run(&s) == 0);
	h1 = host_of(&s, "10.0.0.1");
	T_REQUIRE(h1 >= 0);
	run = find_cmd(h1, "docker rename optimus-web-" FX_V1 " optimus-web-" FX_V1 "_replaced_", "docker run");
	stop = find_cmd(h1, "docker stop", "optimus-web-" FX_V1 "_replaced_");
	T_CHECK(run >= 0 && stop > run);
	scen_free(&s);

	T_REQUIRE(scen_init_yml(&s, yml, FX_V1, FX_ID1, FLEET_READ_WRITE) == 0);
	hosts[h1].fail_ready = "optimus-web-" FX_V1;
	T_CHECK(scen_run(&s) < 0);
	back = find_cmd(h1, "docker rename optimus-web-" FX_V1 "_replaced_", NULL);
	T_CHECK(back > 0 && !strstr(hosts[h1].log.v[back], "docker run"));
	T_CHECK(find_cmd(h1, "docker stop", NULL) < 0);
	scen_free(&s);
	free(yml);
}

/* A same-version redeploy (another clear env value): the image is on the
 * hosts under its reference with the plan's identity, as observed, so
 * nothing is pulled: the expect check in front of the first step checks it
 * instead. The env files hold what they would be written with: not
 * rewritten. Nothing this apply did leaves anything to prune: only :latest. */
T_TEST(what_the_hosts_hold_already_is_not_sent_again)
{
	struct scen s;
	char *yml = redeploy_yml(FX_YML);
	int h1, first;

	T_REQUIRE(scen_init_yml(&s, yml, FX_V1, FX_ID1, FLEET_READ_WRITE) == 0);
	T_CHECK(scen_run(&s) == 0);
	h1 = host_of(&s, "10.0.0.1");
	T_REQUIRE(h1 >= 0);
	for (size_t i = 0; i < s.obs->nhosts; i++) {
		T_CHECK(find_cmd((int)i, "plumb-pull", NULL) < 0);
		T_CHECK(find_cmd((int)i, "plumb-install", NULL) < 0);
		T_CHECK(find_cmd((int)i, "image prune", NULL) < 0);
		T_CHECK(find_cmd((int)i, "docker tag", ":latest") >= 0);
		for (size_t k = 0; k < hosts[i].input.n; k++)
			T_CHECK(hosts[i].input.v[k][0] == '\0');
	}
	first = find_cmd(h1, "plumb-expect", NULL);
	T_REQUIRE(first == 0);
	T_CHECK(strstr(hosts[h1].log.v[0], "localhost:5555/optimus:" FX_V1) != NULL);
	T_CHECK(strstr(hosts[h1].log.v[0], FX_ID1) != NULL);
	T_CHECK(strstr(hosts[h1].log.v[0], "docker run") != NULL);
	T_CHECK(strstr(s.outbuf, "1 image already there") != NULL);
	scen_free(&s);

	/* the host no longer holds it as observed: nothing done there */
	T_REQUIRE(scen_init_yml(&s, yml, FX_V1, FX_ID1, FLEET_READ_WRITE) == 0);
	hosts[h1].stale = 1;
	T_CHECK(scen_run(&s) < 0);
	T_CHECK(find_cmd(h1, "docker run", NULL) == 0 && hosts[h1].log.n == 1);
	T_CHECK(strstr(s.rep.summary, "not the one observed") != NULL);
	scen_free(&s);
	free(yml);
}

/* A secret changed: the env files are written again (on stdin); a roll to a
 * new image pulls it, and prunes after. */
T_TEST(a_changed_env_file_is_written_and_a_pull_prunes)
{
	struct scen s;
	struct config *c2;
	int h1, w = -1;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	c2 = fx_config(FX_YML, "RAILS_MASTER_KEY=master-key-value-2\nPOSTGRES_PASSWORD=pg-pass-1\n");
	T_REQUIRE(c2 != NULL);
	desired_free(s.ds);
	config_free(s.c);
	s.c = c2;
	s.ds = fx_desired(c2, FX_V2, FX_ID2, DES_IMAGE_FOUND);
	T_REQUIRE(s.ds != NULL);
	{
		struct diff_opts dopt = { 0 };
		diff_plan_free(s.p);
		T_REQUIRE(diff_plan_build(&s.p, s.ds, s.obs, &dopt) == 0);
	}
	s.o.config = s.c;
	s.o.ds = s.ds;
	s.o.plan = s.p;
	T_CHECK(scen_run(&s) == 0);
	h1 = host_of(&s, "10.0.0.1");
	T_REQUIRE(h1 >= 0);
	for (size_t k = 0; k < hosts[h1].log.n && w < 0; k++)
		if (strstr(hosts[h1].log.v[k], "plumb-install") && strstr(hosts[h1].log.v[k], "web.env"))
			w = (int)k;
	T_REQUIRE(w >= 0);
	T_CHECK(strstr(hosts[h1].input.v[w], "master-key-value-2") != NULL);
	T_CHECK(find_cmd(h1, "plumb-pull", NULL) == 0);
	T_CHECK(find_cmd(h1, "image prune", NULL) > 0);
	scen_free(&s);
}

/* The job on a host of its own, behind the barrier: its preparation (here a
 * same-version redeploy's container set aside, as Kamal does before waiting)
 * runs while the web role boots; only its boot waits for the switch. */
T_TEST(the_other_roles_prepare_while_the_primary_role_boots)
{
	struct scen s;
	char *base = xstrdup(FX_YML), *q = strstr(base, "  job:\n    hosts:\n      - 10.0.0.2\n");
	char *yml;
	int h1, h3, sw, aside, run;

	T_REQUIRE(q != NULL);
	q[strlen("  job:\n    hosts:\n      - 10.0.0.")] = '3';
	yml = redeploy_yml(base);
	T_REQUIRE(scen_init_from(&s, base, yml, FX_V1, FX_ID1, FLEET_READ_WRITE) == 0);
	h1 = host_of(&s, "10.0.0.1");
	h3 = host_of(&s, "10.0.0.3");
	T_REQUIRE(h1 >= 0 && h3 >= 0);
	for (size_t i = 0; i < s.obs->nhosts; i++)
		if ((int)i != h3)
			hosts[i].slow_run_ms = 300; /* the barrier is still shut when the job gets there */
	T_CHECK(scen_run(&s) == 0);
	if (getenv("T_VERBOSE"))
		for (size_t i = 0; i < s.obs->nhosts; i++)
			for (size_t k = 0; k < hosts[i].log.n; k++)
				fprintf(stderr, "host %zu [%zu] seq %d %.200s\n", i, k, hosts[i].seq[k], hosts[i].log.v[k]);
	sw = find_cmd(h1, "kamal-proxy deploy", NULL);
	aside = find_cmd(h3, "docker rename optimus-job-" FX_V1 " optimus-job-" FX_V1 "_replaced_", NULL);
	run = find_cmd(h3, "docker run", "--name optimus-job-" FX_V1);
	T_REQUIRE(sw >= 0 && aside >= 0 && run >= 0);
	/* set aside while the web role was booting; booted once it had switched */
	T_CHECK(hosts[h3].seq[aside] < hosts[h1].eseq[sw]);
	T_CHECK(hosts[h1].eseq[sw] < hosts[h3].seq[run]);
	T_CHECK(aside < run && strstr(hosts[h3].log.v[aside], "plumb-expect") != NULL);
	T_CHECK(strstr(hosts[h3].log.v[run], "docker rename") == NULL);
	T_CHECK(strstr(hosts[h3].log.v[run], "docker stop") != NULL &&
		strstr(hosts[h3].log.v[run], "optimus-job-" FX_V1 "_replaced_") != NULL);
	T_CHECK(s.rep.done == 3 && s.rep.failed == 0);
	scen_free(&s);

	/* the web role fails: the job set aside gets its name back, no boot */
	T_REQUIRE(scen_init_from(&s, base, yml, FX_V1, FX_ID1, FLEET_READ_WRITE) == 0);
	for (size_t i = 0; i < s.obs->nhosts; i++)
		if ((int)i != h3)
			hosts[i].slow_run_ms = 300;
	hosts[h1].fail_ready = "optimus-web-" FX_V1;
	T_CHECK(scen_run(&s) < 0);
	aside = find_cmd(h3, "docker rename optimus-job-" FX_V1 " optimus-job-" FX_V1 "_replaced_", NULL);
	T_REQUIRE(aside >= 0);
	T_CHECK(find_cmd_after(h3, aside, "docker rename optimus-job-" FX_V1 "_replaced_", NULL) > aside);
	T_CHECK(find_cmd(h3, "docker run", NULL) < 0 && find_cmd(h3, "docker stop", NULL) < 0);
	scen_free(&s);
	free(yml);
	free(base);
}

static int stop_now(void)
{
	return 1;
}

T_TEST(an_interruption_stops_before_any_step)
{
	struct scen s;

	T_REQUIRE(scen_init(&s, FX_V2, FX_ID2, FLEET_READ_WRITE) == 0);
	s.o.interrupted = stop_now;
	T_CHECK(scen_run(&s) < 0);
	for (size_t i = 0; i < s.obs->nhosts; i++)
		T_CHECK(find_cmd((int)i, "docker run", NULL) < 0);
	T_CHECK(s.rep.done == 0 && s.rep.not_done == 3);
	scen_free(&s);
}

/* An accessory that does not come back: the new one removed, the old one
 * renamed back and started, on its data; the app waves never start. */
T_TEST(failed_stop_first_restores_the_old_accessory)
{
	struct scen s;
	char *yml = xstrdup(FX_YML), *p = strstr(yml, "POSTGRES_USER: optimus");
	int h1, run, back;

	T_REQUIRE(p != NULL);
	memcpy(p, "POSTGRES_USER: optimuX", strlen("POSTGRES_USER: optimuX"));
	T_REQUIRE(scen_init_yml(&s, yml, FX_V1, FX_ID1, FLEET_READ_WRITE) == 0);
	h1 = host_of(&s, "10.0.0.1");
	T_REQUIRE(h1 >= 0);
	hosts[h1].fail_ready = "optimus-db";
	T_CHECK(scen_run(&s) < 0);
	run = find_cmd(h1, "docker run", "--name optimus-db");
	T_REQUIRE(run >= 0);
	/* stopped and renamed aside before the new one ran, in that command */
	T_CHECK(strstr(hosts[h1].log.v[run], "docker stop") != NULL);
	T_CHECK(strstr(hosts[h1].log.v[run], "docker rename optimus-db optimus-db_replaced_") != NULL);
	/* then: the new one removed (by the id its run printed: the name may
	 * still be the old one's), the old one back under its name and started */
	T_CHECK(find_cmd_after(h1, run, "docker rm", NEW_ID_SHORT) > run);
	T_CHECK(find_cmd_after(h1, run, "docker rm", "optimus-db") < 0);
	back = find_cmd(h1, "docker start optimus-db", "rename optimus-db_replaced_");
	T_CHECK(back > run);
	T_CHECK(find_cmd(h1, "kamal-proxy deploy", NULL) < 0);
	scen_free(&s);
	free(yml);
}

/* An accessory left aside by an interrupted stop-first replacement (no
 * optimus-db), its spec changed since (here: a named volume instead of the
 * directory): replaced from it, neither stopped nor renamed aside again; the
 * snapshot covers the new volume and the directory the old one mounts; on
 * failure it gets its name back and is started. */
T_TEST(stop_first_from_an_aside_accessory)
{
	struct scen s;
	char *yml = xstrdup(FX_YML), *p = strstr(yml, "POSTGRES_USER: optimus");
	const char *dirs = "    directories:\n      - data:/var/lib/postgresql/data\n";
	struct diff_opts dopt = { 0 };
	struct obs_container *db;
	int h1, run;

	T_REQUIRE(p != NULL && strstr(yml, dirs));
	memcpy(p, "POSTGRES_USER: optimuX", strlen("POSTGRES_USER: optimuX"));
	p = strstr(yml, dirs);
	*p = '\0';
	p = xasprintf("%s    volumes:\n      - pgdata:/var/lib/postgresql/data\n%s", yml, p + strlen(dirs));
	free(yml);
	yml = p;
	T_REQUIRE(scen_init_yml(&s, yml, FX_V1, FX_ID1, FLEET_READ_WRITE) == 0);
	h1 = host_of(&s, "10.0.0.1");
	T_REQUIRE(h1 >= 0);
	db = diff_fake_find(&s.obs->hosts[h1], "optimus-db");
	T_REQUIRE(db);
	free(db->name);
	db->name = xstrdup("optimus-db_replaced_0123456789abcdef");
	free(db->state);
	db->state = xstrdup("exited");
	diff_plan_free(s.p);
	T_REQUIRE(diff_plan_build(&s.p, s.ds, s.obs, &dopt) == 0);
	s.o.plan = s.p;
	hosts[h1].fail_ready = "optimus-db";
	T_CHECK(scen_run(&s) < 0);
	run = find_cmd(h1, "docker run", "optimus-db");
	T_REQUIRE(run >= 0);
	T_CHECK(strstr(hosts[h1].log.v[run], "docker stop") == NULL);
	T_CHECK(strstr(hosts[h1].log.v[run], "docker rename") == NULL);
	T_CHECK(strstr(hosts[h1].log.v[run], "plumb-snapshot check") != NULL);
	T_CHECK(strstr(hosts[h1].log.v[run], "volume:pgdata:") != NULL);
	T_CHECK(strstr(hosts[h1].log.v[run], "/home/deploy/optimus-db/data") != NULL);
	T_CHECK(find_cmd_after(h1, run, "docker rename optimus-db_replaced_0123456789abcdef optimus-db",
			       "docker start optimus-db") > run);
	scen_free(&s);
	free(yml);
}

/* The host-side snapshot script: snapshots taken in the same second get
 * their own directories, retention keeps the newest KEEP and removes only
 * directories named as the script names them. */
T_TEST(snapshot_retention_removes_only_its_own)
{
	char *dir = tu_tmpdir("exec-snap"), *out;

	T_REQUIRE(dir);
	out = tu_sh_line("mkdir -p '%s/base/keepme' '%s/src' && echo x > '%s/src/f' && "
			 "for i in 1 2 3 4; do sh providers/snapshot.sh copy '%s/base' 3 '%s/src' >/dev/null || exit 1; done; "
			 "a=$(ls '%s/base' | grep -c 'Z-'); b=$(ls '%s/base' | grep -c keepme); "
			 "c=$(ls '%s'/base/*Z-*/1-src/f | wc -l); echo $a $b $c",
			 dir, dir, dir, dir, dir, dir, dir, dir);
	T_REQUIRE(out);
	T_STREQ(out, "3 1 3");
	free(out);
	tu_rm_rf(dir);
	free(dir);
}

T_MAIN(T_CASE(snapshot_retention_removes_only_its_own), T_CASE(what_the_hosts_hold_already_is_not_sent_again), T_CASE(a_changed_env_file_is_written_and_a_pull_prunes), T_CASE(the_other_roles_prepare_while_the_primary_role_boots), T_CASE(a_same_version_redeploy_stops_the_one_set_aside), T_CASE(boot_groups_follow_each_other), T_CASE(one_boot_group_without_a_limit), T_CASE(tls_pems_travel_on_stdin), T_CASE(a_rename_is_one_command), T_CASE(an_interruption_stops_before_any_step),
       T_CASE(failed_stop_first_restores_the_old_accessory), T_CASE(stop_first_from_an_aside_accessory),
       T_CASE(roll_runs_waves_in_order), T_CASE(failed_readiness_stops_the_rollout),
       T_CASE(a_moved_tag_stops_before_anything), T_CASE(no_steps_sends_nothing),
       T_CASE(the_lock_rides_on_the_primary_hosts_first_command), T_CASE(a_held_lock_runs_no_step),
       T_CASE(a_host_changed_since_observed_is_left_alone),
       T_CASE(a_rollback_without_the_retained_container_does_nothing),
       T_CASE(a_terminal_gets_a_live_status_line),
       T_CASE(an_accessorys_files_are_uploaded_before_it_boots),
       T_CASE(an_accessory_with_files_is_refused_when_they_cannot_be_read),
       T_CASE(read_only_fleet_never_writes))
