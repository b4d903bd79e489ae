/*
 * The fleet's connection settings under trust (reconciler/invocation.h) and the handle (providers/fleet.h): what an
 * untrusted repository may name (known_hosts and keys inside itself only,
 * no host-key acceptance), what only the invocation can turn on
 * (PLUMB_SSH_ACCEPT_NEW), and the PLUMB_OBS_MAX_OUTPUT bound. No host is
 * contacted: the settings are computed before any connection.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "providers/fleet.h"
#include "reconciler/invocation.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#define BASE "service: app\nimage: dhh/app\nregistry:\n  username: user\n  password: pw\nservers: [10.0.0.1]\n"

struct fx {
	char *dir;
	struct config *c;
};

static void clear_env(void)
{
	unsetenv("PLUMB_SSH_KNOWN_HOSTS");
	unsetenv("PLUMB_SSH_KEY");
	unsetenv("PLUMB_SSH_ACCEPT_NEW");
	unsetenv("PLUMB_OBS_MAX_OUTPUT");
	unsetenv("PLUMB_ALLOW_LOCAL");
}

/* A repository with deploy.yml = BASE + extra, loaded untrusted or trusted. */
static int fx_load(struct fx *f, const char *extra, int trusted)
{
	struct source *src = NULL;
	struct diags d = { 0 };
	struct config_opts o = { 0 };
	char *yml = xasprintf("%s%s", BASE, extra);
	int rc;

	clear_env();
	f->c = NULL;
	f->dir = tu_tmpdir("test-fleet");
	if (!f->dir)
		abort();
	tu_write_in(f->dir, "config/deploy.yml", yml);
	tu_write_in(f->dir, "config/known_hosts", "");
	tu_write_in(f->dir, "config/deploy_key", "not a key\n");
	source_dir_new(&src, f->dir);
	o.trusted = trusted;
	o.getenv_fn = tu_fake_getenv;
	rc = config_load(&f->c, src, &o, &d);
	if (rc < 0)
		diags_print(&d, stderr);
	diags_release(&d);
	source_free(src);
	free(yml);
	return rc;
}

static void fx_free(struct fx *f)
{
	config_free(f->c);
	tu_rm_rf(f->dir);
	free(f->dir);
	clear_env();
}

/* The invocation read from the (test-set) environment, then the trust policy. */
static int settings(struct rec_fleet_settings *conn, const struct fx *f, int trusted,
		    struct plumb_err *err)
{
	struct rec_invocation inv;

	rec_invocation_read(&inv, NULL, NULL);
	plumb_err_reset(err);
	return rec_fleet_settings(conn, f->c, &inv, f->dir, trusted, err);
}

T_TEST(untrusted_known_hosts_outside_refused)
{
	static const char *outside[] = { "/tmp/plumb-kh-evil", "~/.ssh/known_hosts", "../known_hosts",
					 "config/../../known_hosts" };
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
		struct fx f;
		struct rec_fleet_settings conn;
		struct plumb_err err = { 0 };
		char *extra = xasprintf("x-plumb:\n  ssh:\n    known_hosts: \"%s\"\n", outside[i]);

		T_REQUIRE(fx_load(&f, extra, 0) == 0);
		T_INTEQ(settings(&conn, &f, 0, &err), PLUMB_EOUTSIDE);
		T_CONTAINS(err.msg, "x-plumb.ssh.known_hosts");
		T_CONTAINS(err.msg, "outside the repository");
		T_CHECK(conn.known_hosts == NULL);
		rec_fleet_settings_release(&conn);
		/* the invocation's own file wins and is not checked */
		setenv("PLUMB_SSH_KNOWN_HOSTS", "/tmp/plumb-kh-ci", 1);
		T_INTEQ(settings(&conn, &f, 0, &err), 0);
		T_STREQ(conn.known_hosts, "/tmp/plumb-kh-ci");
		rec_fleet_settings_release(&conn);
		unsetenv("PLUMB_SSH_KNOWN_HOSTS");
		/* trusted: the repository's path is used as written */
		T_INTEQ(settings(&conn, &f, 1, &err), 0);
		T_CHECK(conn.known_hosts != NULL);
		rec_fleet_settings_release(&conn);
		fx_free(&f);
		free(extra);
	}
}

T_TEST(untrusted_known_hosts_inside_used_links_out_refused)
{
	struct fx f;
	struct rec_fleet_settings conn;
	struct plumb_err err = { 0 };
	char *want, *link;

	T_REQUIRE(fx_load(&f, "x-plumb:\n  ssh:\n    known_hosts: config/known_hosts\n", 0) == 0);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	want = realpath(f.dir, NULL);
	T_REQUIRE(want != NULL);
	T_CHECK(conn.known_hosts && strncmp(conn.known_hosts, want, strlen(want)) == 0);
	T_CONTAINS(conn.known_hosts, "/config/known_hosts");
	rec_fleet_settings_release(&conn);
	free(want);
	/* a committed symlink to the runner's file, existing or not */
	link = xasprintf("%s/config/known_hosts", f.dir);
	unlink(link);
	T_REQUIRE(symlink("/etc/passwd", link) == 0);
	T_INTEQ(settings(&conn, &f, 0, &err), PLUMB_EOUTSIDE);
	T_CONTAINS(err.msg, "outside the repository");
	rec_fleet_settings_release(&conn);
	unlink(link);
	T_REQUIRE(symlink("/tmp/plumb-kh-does-not-exist/x", link) == 0);
	T_INTEQ(settings(&conn, &f, 0, &err), PLUMB_EOUTSIDE);
	rec_fleet_settings_release(&conn);
	free(link);
	fx_free(&f);
}

T_TEST(accept_new_host_keys_only_from_the_invocation)
{
	struct fx f;
	struct rec_fleet_settings conn;
	struct plumb_err err = { 0 };

	T_REQUIRE(fx_load(&f, "x-plumb:\n  ssh:\n    accept_new_host_keys: true\n", 0) == 0);
	T_CHECK(f.c->trust.turned_off & TRUST_OFF_ACCEPT_HOST_KEYS);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	T_INTEQ(conn.fo.accept_new, 0);
	rec_fleet_settings_release(&conn);
	setenv("PLUMB_SSH_ACCEPT_NEW", "1", 1);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	T_INTEQ(conn.fo.accept_new, 1);
	rec_fleet_settings_release(&conn);
	unsetenv("PLUMB_SSH_ACCEPT_NEW");
	T_INTEQ(settings(&conn, &f, 1, &err), 0);
	T_INTEQ(conn.fo.accept_new, 1);
	rec_fleet_settings_release(&conn);
	fx_free(&f);
	T_REQUIRE(fx_load(&f, "", 0) == 0);
	T_INTEQ(settings(&conn, &f, 1, &err), 0);
	T_INTEQ(conn.fo.accept_new, 0);
	rec_fleet_settings_release(&conn);
	fx_free(&f);
}

T_TEST(untrusted_keys_only_inside_the_repository)
{
	struct fx f;
	struct rec_fleet_settings conn;
	struct plumb_err err = { 0 };
	char *link;

	T_REQUIRE(fx_load(&f, "ssh:\n  keys: [\"~/.ssh/id_deploy\", /root/.ssh/id_rsa, ../k, config/deploy_key]\n",
			  0) == 0);
	T_CHECK(f.c->trust.turned_off & TRUST_OFF_SSH_KEYS);
	setenv("PLUMB_SSH_KEY", "/ci/key", 1);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	T_INTEQ(conn.keys.n, 2);
	if (conn.keys.n == 2) {
		T_STREQ(conn.keys.v[0], "/ci/key");
		T_CONTAINS(conn.keys.v[1], "/config/deploy_key");
	}
	rec_fleet_settings_release(&conn);
	unsetenv("PLUMB_SSH_KEY");
	/* trusted: every key, ~ expanded */
	T_INTEQ(settings(&conn, &f, 1, &err), 0);
	T_INTEQ(conn.keys.n, 4);
	rec_fleet_settings_release(&conn);
	/* a key inside that links to the runner's own key is refused */
	link = xasprintf("%s/config/deploy_key", f.dir);
	unlink(link);
	T_REQUIRE(symlink("/root/.ssh/id_deploy", link) == 0);
	T_INTEQ(settings(&conn, &f, 0, &err), PLUMB_EOUTSIDE);
	T_CONTAINS(err.msg, "ssh.keys 'config/deploy_key'");
	rec_fleet_settings_release(&conn);
	free(link);
	fx_free(&f);
	/* keys inside only: nothing noted */
	T_REQUIRE(fx_load(&f, "ssh:\n  keys: [config/deploy_key]\n", 0) == 0);
	T_INTEQ(f.c->trust.turned_off & TRUST_OFF_SSH_KEYS, 0);
	fx_free(&f);
}

T_TEST(max_output_only_lowered)
{
	struct fx f;
	struct rec_fleet_settings conn;
	struct plumb_err err = { 0 };

	T_REQUIRE(fx_load(&f, "", 0) == 0);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	T_INTEQ(conn.fo.max_output, 0);
	rec_fleet_settings_release(&conn);
	setenv("PLUMB_OBS_MAX_OUTPUT", "1000", 1);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	T_INTEQ(conn.fo.max_output, 1000);
	rec_fleet_settings_release(&conn);
	setenv("PLUMB_OBS_MAX_OUTPUT", "99999999999", 1);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	T_INTEQ(conn.fo.max_output, PROV_DEFAULT_MAX_OUTPUT);
	rec_fleet_settings_release(&conn);
	setenv("PLUMB_OBS_MAX_OUTPUT", "-1", 1);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	T_INTEQ(conn.fo.max_output, PROV_DEFAULT_MAX_OUTPUT);
	rec_fleet_settings_release(&conn);
	fx_free(&f);
}

T_TEST(untrusted_run_does_not_observe_this_machine)
{
	static const char *local[] = { "localhost", "127.0.0.1", "LOCALHOST", "127.1", "0", "::1",
				       "127.0.0.2", "0.0.0.0", "::" };

	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		struct fx f;
		struct rec_fleet_settings conn;
		struct plumb_err err = { 0 };
		char *extra = xasprintf("servers: [\"%s\"]\n", local[i]);

		T_REQUIRE(fx_load(&f, extra, 0) == 0);
		T_INTEQ(settings(&conn, &f, 0, &err), PLUMB_EUNTRUSTED);
		T_CONTAINS(err.msg, "is this machine");
		rec_fleet_settings_release(&conn);
		/* the invocation may allow it; a trusted run decides for itself */
		setenv("PLUMB_ALLOW_LOCAL", "1", 1);
		T_INTEQ(settings(&conn, &f, 0, &err), 0);
		rec_fleet_settings_release(&conn);
		unsetenv("PLUMB_ALLOW_LOCAL");
		T_INTEQ(settings(&conn, &f, 1, &err), 0);
		rec_fleet_settings_release(&conn);
		fx_free(&f);
		free(extra);
	}
}

T_TEST(this_machine_classifier)
{
	static const struct { const char *host; int local; } cases[] = {
		{ "localhost", 1 }, { "LocalHost", 1 }, { "127.0.0.1", 1 }, { "127.1", 1 },
		{ "127.255.255.254", 1 }, { "0", 1 }, { "0.0.0.0", 1 }, { "::1", 1 }, { "::", 1 },
		{ "::ffff:127.0.0.1", 1 }, { "10.255.255.1", 0 }, { "198.51.100.7", 0 },
		{ "2001:db8::1", 0 }, { "", 0 }, { "no-such-host.invalid", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = rec_host_is_this_machine(cases[i].host);
		T_CHECKF(got == cases[i].local, "%s: %d, want %d", cases[i].host, got, cases[i].local);
	}
}

/* An address of one of this machine's interfaces (not loopback), or NULL. */
static char *own_address(void)
{
	FILE *p = popen("hostname -I 2>/dev/null", "r");
	char buf[256] = "";

	if (!p)
		return NULL;
	if (!fgets(buf, sizeof(buf), p))
		buf[0] = '\0';
	pclose(p);
	buf[strcspn(buf, " \n")] = '\0';
	return buf[0] ? xstrdup(buf) : NULL;
}

T_TEST(this_machine_by_its_own_address)
{
	char *a = own_address();

	if (!a)
		return; /* no interface address here: nothing to check */
	T_INTEQ(rec_host_is_this_machine(a), 1);
	free(a);
}

T_TEST(accept_new_never_for_a_route_the_repository_chose)
{
	struct fx f;
	struct rec_fleet_settings conn;
	struct plumb_err err = { 0 };

	T_REQUIRE(fx_load(&f, "ssh:\n  proxy: jump@203.0.113.9\n", 0) == 0);
	setenv("PLUMB_SSH_ACCEPT_NEW", "1", 1);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	T_CHECK(conn.fo.accept_new_refused != NULL);
	if (conn.fo.accept_new_refused)
		T_CONTAINS(conn.fo.accept_new_refused, "ssh.proxy");
	rec_fleet_settings_release(&conn);
	/* trusted: the route is the operator's */
	T_INTEQ(settings(&conn, &f, 1, &err), 0);
	T_CHECK(conn.fo.accept_new_refused == NULL);
	rec_fleet_settings_release(&conn);
	fx_free(&f);
	/* no route chosen: accept-new applies */
	T_REQUIRE(fx_load(&f, "", 0) == 0);
	setenv("PLUMB_SSH_ACCEPT_NEW", "1", 1);
	T_INTEQ(settings(&conn, &f, 0, &err), 0);
	T_INTEQ(conn.fo.accept_new, 1);
	T_CHECK(conn.fo.accept_new_refused == NULL);
	rec_fleet_settings_release(&conn);
	fx_free(&f);
}

/* A fleet of localhost (the local transport): no network needed. */
static void local_fleet(struct fleet **fl, enum fleet_mode mode)
{
	static const char *hosts[] = { "localhost" };
	struct fleet_opts o = { 0 };

	o.hosts = hosts;
	o.nhosts = 1;
	o.cmd_timeout_ms = 5000;
	fleet_open(fl, &o, mode);
}

T_TEST(read_only_fleet_refuses_a_mutating_transport)
{
	struct fleet *fl = NULL;
	struct transport *t = NULL;
	struct cmd_result r;
	struct plumb_err err = { 0 };

	local_fleet(&fl, FLEET_READ_ONLY);
	T_INTEQ(fleet_writer(fl, 0, &t, &err), PLUMB_EREFUSED);
	T_CHECK(t == NULL);
	T_CONTAINS(err.msg, "read-only");
	/* what it hands out is the guard: a mutating command is refused, nothing runs */
	T_INTEQ(fleet_reader(fl, 0, &t, &err), 0);
	T_REQUIRE(t != NULL);
	T_STREQ(t->ops->name, "readonly");
	T_INTEQ(transport_run(t, "docker rm -f app-web-1", &r), PLUMB_EREFUSED);
	cmd_result_release(&r);
	T_INTEQ(t->stats.commands, 0);
	T_INTEQ(fleet_refused(fl), 1);
	T_INTEQ(fleet_commands(fl), 0);
	fleet_free(fl);
	/* read-write: the raw transport */
	local_fleet(&fl, FLEET_READ_WRITE);
	T_INTEQ(fleet_writer(fl, 0, &t, &err), 0);
	T_REQUIRE(t != NULL);
	T_STREQ(t->ops->name, "local");
	fleet_free(fl);
}

T_TEST(observing_twice_reuses_the_session)
{
	struct fleet *fl = NULL;
	struct obs_fleet *a = NULL, *b = NULL;
	struct docker_obs_query q = { 0 };
	struct transport *t1 = NULL, *t2 = NULL;
	struct plumb_err err = { 0 };

	q.service = "app";
	q.destination = "";
	local_fleet(&fl, FLEET_READ_ONLY);
	T_INTEQ(fleet_reader(fl, 0, &t1, &err), 0);
	T_INTEQ(fleet_connects(fl), 1);
	/* asking again hands out the same session */
	T_INTEQ(fleet_reader(fl, 0, &t2, &err), 0);
	T_CHECK(t1 == t2);
	T_INTEQ(fleet_connects(fl), 1);
	T_CHECK(fleet_observe(fl, &a, &q, 0, &err) >= 0);
	T_REQUIRE(a != NULL);
	if (a->hosts[0].status == OBS_OK) {
		T_CHECK(fleet_observe(fl, &b, &q, 0, &err) >= 0);
		T_INTEQ(fleet_connects(fl), 1);
		T_INTEQ(fleet_reader(fl, 0, &t2, &err), 0);
		T_CHECK(t1 == t2);
	}
	/* (without docker here the observation fails and the session is dropped:
	 * the next use reconnects) */
	obs_fleet_free(a);
	obs_fleet_free(b);
	fleet_free(fl);
}

T_TEST(deadline_passed_marks_hosts_unknown)
{
	static const char *hosts[] = { "198.51.100.1", "198.51.100.2" };
	struct fleet_opts o = { 0 };
	struct fleet *fl = NULL;
	struct obs_fleet *obs = NULL;
	struct docker_obs_query q = { 0 };
	struct plumb_err err = { 0 };
	double t0 = prov_now_ms();

	q.service = "app";
	q.destination = "";
	o.hosts = hosts;
	o.nhosts = 2;
	fleet_open(&fl, &o, FLEET_READ_ONLY);
	T_INTEQ(fleet_observe(fl, &obs, &q, t0 - 1, &err), 1);
	T_REQUIRE(obs != NULL);
	for (size_t i = 0; i < 2; i++) {
		T_INTEQ(obs->hosts[i].status, OBS_UNKNOWN);
		T_STREQ(obs->hosts[i].error, "deadline reached");
	}
	T_INTEQ(fleet_connects(fl), 0);
	T_CHECK(prov_now_ms() - t0 < 1000);
	obs_fleet_free(obs);
	fleet_free(fl);
}

T_MAIN(T_CASE(untrusted_run_does_not_observe_this_machine), T_CASE(untrusted_known_hosts_outside_refused), T_CASE(untrusted_known_hosts_inside_used_links_out_refused),
       T_CASE(accept_new_host_keys_only_from_the_invocation), T_CASE(untrusted_keys_only_inside_the_repository),
       T_CASE(max_output_only_lowered), T_CASE(this_machine_classifier), T_CASE(this_machine_by_its_own_address),
       T_CASE(accept_new_never_for_a_route_the_repository_chose), T_CASE(read_only_fleet_refuses_a_mutating_transport),
       T_CASE(observing_twice_reuses_the_session), T_CASE(deadline_passed_marks_hosts_unknown))
