/*
 * The fleet's connection settings under trust (providers/fleet.h): what an
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
	diags_clear(&d);
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

static int settings(struct fleet_conn *conn, const struct fx *f, int trusted, char *err, size_t n)
{
	struct fleet_opts o = { 0 };

	o.root = f->dir;
	o.trusted = trusted;
	err[0] = '\0';
	return fleet_conn_settings(conn, f->c, &o, err, n);
}

T_TEST(untrusted_known_hosts_outside_refused)
{
	static const char *outside[] = { "/tmp/plumb-kh-evil", "~/.ssh/known_hosts", "../known_hosts",
					 "config/../../known_hosts" };
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
		struct fx f;
		struct fleet_conn conn;
		char err[512];
		char *extra = xasprintf("x-plumb:\n  ssh:\n    known_hosts: \"%s\"\n", outside[i]);

		T_REQUIRE(fx_load(&f, extra, 0) == 0);
		T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), -1);
		T_CONTAINS(err, "x-plumb.ssh.known_hosts");
		T_CONTAINS(err, "outside the repository");
		T_CHECK(conn.known_hosts == NULL);
		fleet_conn_release(&conn);
		/* the whole observation is refused before any host is contacted */
		{
			struct obs_fleet *obs = NULL;
			struct fleet_opts o = { 0 };
			o.root = f.dir;
			T_INTEQ(fleet_observe(&obs, f.c, &o, err, sizeof(err)), -1);
			T_CHECK(obs == NULL);
			T_CONTAINS(err, "outside the repository");
		}
		/* the invocation's own file wins and is not checked */
		setenv("PLUMB_SSH_KNOWN_HOSTS", "/tmp/plumb-kh-ci", 1);
		T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), 0);
		T_STREQ(conn.known_hosts, "/tmp/plumb-kh-ci");
		fleet_conn_release(&conn);
		unsetenv("PLUMB_SSH_KNOWN_HOSTS");
		/* trusted: the repository's path is used as written */
		T_INTEQ(settings(&conn, &f, 1, err, sizeof(err)), 0);
		T_CHECK(conn.known_hosts != NULL);
		fleet_conn_release(&conn);
		fx_free(&f);
		free(extra);
	}
}

T_TEST(untrusted_known_hosts_inside_used_links_out_refused)
{
	struct fx f;
	struct fleet_conn conn;
	char err[512], *want, *link;

	T_REQUIRE(fx_load(&f, "x-plumb:\n  ssh:\n    known_hosts: config/known_hosts\n", 0) == 0);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), 0);
	want = realpath(f.dir, NULL);
	T_REQUIRE(want != NULL);
	T_CHECK(conn.known_hosts && strncmp(conn.known_hosts, want, strlen(want)) == 0);
	T_CONTAINS(conn.known_hosts, "/config/known_hosts");
	fleet_conn_release(&conn);
	free(want);
	/* a committed symlink to the runner's file, existing or not */
	link = xasprintf("%s/config/known_hosts", f.dir);
	unlink(link);
	T_REQUIRE(symlink("/etc/passwd", link) == 0);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), -1);
	T_CONTAINS(err, "outside the repository");
	fleet_conn_release(&conn);
	unlink(link);
	T_REQUIRE(symlink("/tmp/plumb-kh-does-not-exist/x", link) == 0);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), -1);
	fleet_conn_release(&conn);
	free(link);
	fx_free(&f);
}

T_TEST(accept_new_host_keys_only_from_the_invocation)
{
	struct fx f;
	struct fleet_conn conn;
	char err[512];

	T_REQUIRE(fx_load(&f, "x-plumb:\n  ssh:\n    accept_new_host_keys: true\n", 0) == 0);
	T_CHECK(f.c->trust.turned_off & TRUST_OFF_ACCEPT_HOST_KEYS);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), 0);
	T_INTEQ(conn.accept_new, 0);
	fleet_conn_release(&conn);
	setenv("PLUMB_SSH_ACCEPT_NEW", "1", 1);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), 0);
	T_INTEQ(conn.accept_new, 1);
	fleet_conn_release(&conn);
	unsetenv("PLUMB_SSH_ACCEPT_NEW");
	T_INTEQ(settings(&conn, &f, 1, err, sizeof(err)), 0);
	T_INTEQ(conn.accept_new, 1);
	fleet_conn_release(&conn);
	fx_free(&f);
	T_REQUIRE(fx_load(&f, "", 0) == 0);
	T_INTEQ(settings(&conn, &f, 1, err, sizeof(err)), 0);
	T_INTEQ(conn.accept_new, 0);
	fleet_conn_release(&conn);
	fx_free(&f);
}

T_TEST(untrusted_keys_only_inside_the_repository)
{
	struct fx f;
	struct fleet_conn conn;
	char err[512], *link;

	T_REQUIRE(fx_load(&f, "ssh:\n  keys: [\"~/.ssh/id_deploy\", /root/.ssh/id_rsa, ../k, config/deploy_key]\n",
			  0) == 0);
	T_CHECK(f.c->trust.turned_off & TRUST_OFF_SSH_KEYS);
	setenv("PLUMB_SSH_KEY", "/ci/key", 1);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), 0);
	T_INTEQ(conn.keys.n, 2);
	if (conn.keys.n == 2) {
		T_STREQ(conn.keys.v[0], "/ci/key");
		T_CONTAINS(conn.keys.v[1], "/config/deploy_key");
	}
	fleet_conn_release(&conn);
	unsetenv("PLUMB_SSH_KEY");
	/* trusted: every key, ~ expanded */
	T_INTEQ(settings(&conn, &f, 1, err, sizeof(err)), 0);
	T_INTEQ(conn.keys.n, 4);
	fleet_conn_release(&conn);
	/* a key inside that links to the runner's own key is refused */
	link = xasprintf("%s/config/deploy_key", f.dir);
	unlink(link);
	T_REQUIRE(symlink("/root/.ssh/id_deploy", link) == 0);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), -1);
	T_CONTAINS(err, "ssh.keys 'config/deploy_key'");
	fleet_conn_release(&conn);
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
	struct fleet_conn conn;
	char err[512];

	T_REQUIRE(fx_load(&f, "", 0) == 0);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), 0);
	T_INTEQ(conn.max_output, 0);
	fleet_conn_release(&conn);
	setenv("PLUMB_OBS_MAX_OUTPUT", "1000", 1);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), 0);
	T_INTEQ(conn.max_output, 1000);
	fleet_conn_release(&conn);
	setenv("PLUMB_OBS_MAX_OUTPUT", "99999999999", 1);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), 0);
	T_INTEQ(conn.max_output, PROV_DEFAULT_MAX_OUTPUT);
	fleet_conn_release(&conn);
	setenv("PLUMB_OBS_MAX_OUTPUT", "-1", 1);
	T_INTEQ(settings(&conn, &f, 0, err, sizeof(err)), 0);
	T_INTEQ(conn.max_output, PROV_DEFAULT_MAX_OUTPUT);
	fleet_conn_release(&conn);
	fx_free(&f);
}

T_TEST(untrusted_run_does_not_observe_this_machine)
{
	static const char *local[] = { "localhost", "127.0.0.1" };

	for (size_t i = 0; i < 2; i++) {
		struct fx f;
		struct obs_fleet *obs = NULL;
		struct fleet_opts o = { 0 };
		char err[512] = "", *extra = xasprintf("servers: [%s]\n", local[i]);

		T_REQUIRE(fx_load(&f, extra, 0) == 0);
		o.root = f.dir;
		T_INTEQ(fleet_observe(&obs, f.c, &o, err, sizeof(err)), -1);
		T_CHECK(obs == NULL);
		T_CONTAINS(err, "is this machine");
		/* the invocation may allow it (the host is then observed, or not, for other reasons) */
		setenv("PLUMB_ALLOW_LOCAL", "1", 1);
		err[0] = '\0';
		if (fleet_observe(&obs, f.c, &o, err, sizeof(err)) < 0)
			T_NOT_CONTAINS(err, "is this machine");
		obs_fleet_free(obs);
		obs = NULL;
		unsetenv("PLUMB_ALLOW_LOCAL");
		fx_free(&f);
		free(extra);
	}
}

T_MAIN(T_CASE(untrusted_run_does_not_observe_this_machine), T_CASE(untrusted_known_hosts_outside_refused), T_CASE(untrusted_known_hosts_inside_used_links_out_refused),
       T_CASE(accept_new_host_keys_only_from_the_invocation), T_CASE(untrusted_keys_only_inside_the_repository),
       T_CASE(max_output_only_lowered))
