/* Kamal's hooks run on this machine (reconciler/hooks.h), in a temp repository. */
#include "reconciler/hooks.h"
#include "tests/unit/t.h"

#include <sys/stat.h>
#include <unistd.h>

/* A temp repository with .kamal/hooks. */
static char *repo_new(void)
{
	char *d = xstrdup("/tmp/plumb-t-hooks-XXXXXX"), *h;

	if (!mkdtemp(d))
		abort();
	h = xasprintf("%s/.kamal", d);
	mkdir(h, 0755);
	free(h);
	h = xasprintf("%s/.kamal/hooks", d);
	mkdir(h, 0755);
	free(h);
	return d;
}

static void repo_free(char *d)
{
	char *cmd = xasprintf("rm -rf '%s'", d);

	if (system(cmd) != 0)
		perror("rm");
	free(cmd);
	free(d);
}

/* Writes <dir>/<rel> with mode. */
static void put_file(const char *dir, const char *rel, const char *text, mode_t mode)
{
	char *p = xasprintf("%s/%s", dir, rel);
	FILE *f = fopen(p, "w");

	if (!f || fputs(text, f) == EOF || fclose(f) != 0 || chmod(p, mode) != 0)
		abort();
	free(p);
}

/* The content of <dir>/<rel>, or NULL; caller frees. */
static char *get_file(const char *dir, const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel), *out = NULL;

	if (util_read_file(p, 1 << 20, &out, NULL) != 0)
		out = NULL;
	free(p);
	return out;
}

static struct secrets *test_secrets(void)
{
	static const char text[] = "DB_PASSWORD=s3cret-pw\nKAMAL_REGISTRY_PASSWORD=reg-pw-123\n";
	struct secrets *s = secrets_new();
	struct trust tr;
	struct diags d = { 0 };

	trust_init(&tr, 1);
	if (secrets_parse(s, ".kamal/secrets", text, sizeof(text) - 1, "/", &tr, &d) != 0)
		abort();
	diags_release(&d);
	return s;
}

static const char dump_env[] = "#!/bin/sh\n"
			       "env | grep -E '^(KAMAL_|DB_PASSWORD|KAMAL_REGISTRY)' | sort > hook.env\n"
			       "pwd > hook.pwd\n";

/* Runs hook name (dump_env) trusted and checks the KAMAL_* (and secret) variables it saw. */
static void expect_env(const char *repo, const char *name, const struct rec_hook_env *e, const char *want)
{
	struct plumb_err err = { 0 };
	char *got;

	put_file(repo, name, dump_env, 0755);
	T_INTEQ(rec_hook_run(repo, strrchr(name, '/') + 1, e, 1, &err), 0);
	got = get_file(repo, "hook.env");
	T_STREQ(got, want);
	free(got);
}

T_TEST(env_is_kamals)
{
	char *repo = repo_new(), *pwd;
	struct secrets *s = test_secrets();
	struct rec_hook_env e = { 0 };

	e.recorded_at = "2026-12-04T19:16:00Z";
	e.performer = "alice@example.com";
	e.destination = "staging";
	e.version = "0123456789abcdef";
	e.service = "optimus";
	e.hosts = "10.0.0.1,10.0.0.2";
	e.lock = 1;
	e.command = "deploy";
	e.secrets = s;
	expect_env(repo, ".kamal/hooks/pre-deploy", &e, "DB_PASSWORD=s3cret-pw\nKAMAL_COMMAND=deploy\nKAMAL_DESTINATION=staging\n"
		     "KAMAL_HOSTS=10.0.0.1,10.0.0.2\nKAMAL_LOCK=true\nKAMAL_PERFORMER=alice@example.com\n"
		     "KAMAL_RECORDED_AT=2026-12-04T19:16:00Z\nKAMAL_REGISTRY_PASSWORD=reg-pw-123\n"
		     "KAMAL_SERVICE=optimus\nKAMAL_SERVICE_VERSION=optimus@0123456\nKAMAL_VERSION=0123456789abcdef\n");
	/* it runs in the repository's root */
	pwd = get_file(repo, "hook.pwd");
	T_CHECK(pwd && strncmp(pwd, repo, strlen(repo)) == 0);
	free(pwd);

	/* post-app-boot: no secrets, hosts of the group, KAMAL_LOCK false, runtime for post-deploy */
	e.hosts = "10.0.0.2";
	e.lock = 0;
	e.destination = NULL;
	e.version = "abc_uncommitted_1234";
	e.runtime = "12";
	e.roles = "web";
	e.subcommand = "boot";
	/* KAMAL_DESTINATION unset (no destination), as Kamal leaves out a nil tag */
	expect_env(repo, ".kamal/hooks/post-app-boot", &e, "KAMAL_COMMAND=deploy\nKAMAL_HOSTS=10.0.0.2\nKAMAL_LOCK=false\n"
		     "KAMAL_PERFORMER=alice@example.com\nKAMAL_RECORDED_AT=2026-12-04T19:16:00Z\nKAMAL_ROLES=web\n"
		     "KAMAL_RUNTIME=12\nKAMAL_SERVICE=optimus\nKAMAL_SERVICE_VERSION=optimus@abc_uncommitted_1234\n"
		     "KAMAL_SUBCOMMAND=boot\nKAMAL_VERSION=abc_uncommitted_1234\n");
	secrets_free(s);
	repo_free(repo);
}

/* config and ds fill what the caller leaves NULL; secrets only for the three hooks */
T_TEST(env_defaults_from_config_and_desired)
{
	struct secrets *s = test_secrets();
	struct des_host hs[2] = { { .host = "10.0.0.1" }, { .host = "10.0.0.2" } };
	struct desired ds = { .service = "optimus", .destination = "staging", .version = "feedfacecafe",
			      .hosts = hs, .nhosts = 2 };
	struct config cfg = { .service = "optimus", .hooks_path = "ci", .secrets = s };
	struct rec_hook_env e = { .config = &cfg, .ds = &ds, .performer = "p", .recorded_at = "t",
				  .command = "deploy" };
	struct sbuf got;
	char **v;

	sbuf_init(&got, 0);
	v = rec_hook_env_build("pre-deploy", &e);
	for (char **p = v; *p; p++)
		sbuf_addf(&got, "%s\n", *p);
	rec_hook_env_free(v);
	T_STREQ(got.buf, "KAMAL_RECORDED_AT=t\nKAMAL_PERFORMER=p\nKAMAL_DESTINATION=staging\n"
			 "KAMAL_VERSION=feedfacecafe\nKAMAL_SERVICE_VERSION=optimus@feedfac\nKAMAL_SERVICE=optimus\n"
			 "KAMAL_HOSTS=10.0.0.1,10.0.0.2\nKAMAL_LOCK=false\nKAMAL_COMMAND=deploy\n"
			 "DB_PASSWORD=s3cret-pw\nKAMAL_REGISTRY_PASSWORD=reg-pw-123\n");
	sbuf_reset(&got);
	e.hosts = "10.0.0.2";
	v = rec_hook_env_build("pre-app-boot", &e);
	for (char **p = v; *p; p++)
		sbuf_addf(&got, "%s\n", *p);
	rec_hook_env_free(v);
	T_CONTAINS(got.buf, "KAMAL_HOSTS=10.0.0.2\n");
	T_NOT_CONTAINS(got.buf, "s3cret-pw");
	sbuf_release(&got);
	secrets_free(s);
}

T_TEST(failing_hook_stops_with_its_output)
{
	char *repo = repo_new();
	struct secrets *s = test_secrets();
	struct rec_hook_env e = { 0 };
	struct plumb_err err = { 0 };

	put_file(repo, ".kamal/hooks/pre-deploy",
		 "#!/bin/sh\necho checking\necho \"CI failed \033[31mred\033[0m for $DB_PASSWORD\" >&2\nexit 3\n",
		 0755);
	e.secrets = s;
	T_INTEQ(rec_hook_run(repo, "pre-deploy", &e, 1, &err), PLUMB_ERROR);
	T_CONTAINS(err.msg, "hook 'pre-deploy' failed (exit 3)");
	T_CONTAINS(err.msg, "CI failed \\x1b[31mred");
	T_CONTAINS(err.msg, "checking");
	T_NOT_CONTAINS(err.msg, "\033");
	/* a secret the hook printed is not repeated */
	T_NOT_CONTAINS(err.msg, "s3cret-pw");
	T_CONTAINS(err.msg, "for [REDACTED]");

	/* killed by a signal */
	put_file(repo, ".kamal/hooks/pre-connect", "#!/bin/sh\nkill -9 $$\n", 0755);
	T_INTEQ(rec_hook_run(repo, "pre-connect", &e, 1, &err), PLUMB_ERROR);
	T_CONTAINS(err.msg, "killed by signal 9");

	/* past its deadline: killed, with the group */
	put_file(repo, ".kamal/hooks/post-deploy", "#!/bin/sh\nsleep 30\n", 0755);
	e.timeout_ms = 300;
	T_INTEQ(rec_hook_run(repo, "post-deploy", &e, 1, &err), PLUMB_ETIMEOUT);
	T_CONTAINS(err.msg, "did not finish");
	secrets_free(s);
	repo_free(repo);
}

T_TEST(untrusted_is_not_run)
{
	char *repo = repo_new(), *got;
	struct rec_hook_env e = { 0 };
	struct plumb_err err = { 0 };

	put_file(repo, ".kamal/hooks/pre-deploy", "#!/bin/sh\ntouch ran\n", 0755);
	T_INTEQ(rec_hook_run(repo, "pre-deploy", &e, 0, &err), PLUMB_EUNTRUSTED);
	T_CONTAINS(err.msg, "--skip-hooks");
	got = get_file(repo, "ran");
	T_CHECK(got == NULL);
	free(got);
	/* trusted, it runs (the marker shows the check above can fail) */
	T_INTEQ(rec_hook_run(repo, "pre-deploy", &e, 1, &err), 0);
	got = get_file(repo, "ran");
	T_CHECK(got != NULL);
	free(got);
	/* absent: nothing to refuse, trusted or not */
	T_INTEQ(rec_hook_run(repo, "post-deploy", &e, 0, &err), 0);
	T_INTEQ(rec_hook_run(repo, "post-deploy", NULL, 1, &err), 0);
	repo_free(repo);
}

T_TEST(hook_path_rules)
{
	char *repo = repo_new(), *out = repo_new(), *link, *target, *got;
	struct rec_hook_env e = { 0 };
	struct plumb_err err = { 0 };

	/* a link out of the repository is refused, and what it points to is not run */
	put_file(out, "evil", "#!/bin/sh\ntouch \"$(dirname \"$0\")/ran\"\n", 0755);
	target = xasprintf("%s/evil", out);
	link = xasprintf("%s/.kamal/hooks/pre-deploy", repo);
	T_REQUIRE(symlink(target, link) == 0);
	T_INTEQ(rec_hook_run(repo, "pre-deploy", &e, 1, &err), PLUMB_EOUTSIDE);
	got = get_file(out, "ran");
	T_CHECK(got == NULL);
	free(got);
	/* a link inside the repository is fine */
	unlink(link);
	put_file(repo, "bin-hook", "#!/bin/sh\ntouch ran\n", 0755);
	T_REQUIRE(symlink("../../bin-hook", link) == 0);
	T_INTEQ(rec_hook_run(repo, "pre-deploy", &e, 1, &err), 0);
	got = get_file(repo, "ran");
	T_CHECK(got != NULL);
	free(got);
	/* not executable: an error before anything changes (as Kamal would fail) */
	put_file(repo, ".kamal/hooks/pre-connect", "#!/bin/sh\ntrue\n", 0644);
	T_INTEQ(rec_hook_run(repo, "pre-connect", &e, 1, &err), PLUMB_ERROR);
	T_CONTAINS(err.msg, "not executable");
	/* a directory named like a hook is not a hook file */
	got = xasprintf("%s/.kamal/hooks/post-deploy", repo);
	T_REQUIRE(mkdir(got, 0755) == 0);
	free(got);
	T_INTEQ(rec_hook_run(repo, "post-deploy", &e, 1, &err), PLUMB_EOUTSIDE);
	/* names are file names; hooks_path from the config */
	T_INTEQ(rec_hook_run(repo, "../x", &e, 1, &err), PLUMB_EINVAL);
	unlink(link);
	got = xasprintf("%s/ci", repo);
	T_REQUIRE(mkdir(got, 0755) == 0);
	free(got);
	put_file(repo, "ci/pre-deploy", "#!/bin/sh\ntouch ran-ci\n", 0755);
	{
		struct config cfg = { .hooks_path = "./ci" };
		e.config = &cfg;
		T_INTEQ(rec_hook_run(repo, "pre-deploy", &e, 1, &err), 0);
		e.config = NULL;
	}
	got = get_file(repo, "ran-ci");
	T_CHECK(got != NULL);
	free(got);
	free(link);
	free(target);
	repo_free(out);
	repo_free(repo);
}

/*
 * deploy-examples/optimus/.kamal/hooks/pre-deploy, as written: a CI gate
 * asking GitHub for the commit's check runs with curl, reduced with jq. The
 * network is replaced by a curl on PATH that answers from a file (and
 * records its arguments); jq is the real one.
 */
T_TEST(optimus_ci_gate_works_as_written)
{
	char *bin = repo_new(), *root, *args, *path;
	const char *old_path = getenv("PATH");
	char *saved = xstrdup(old_path ? old_path : "/usr/bin:/bin");
	struct rec_hook_env e = { 0 };
	struct plumb_err err = { 0 };
	const char *sha = "0123456789abcdef0123456789abcdef01234567";

	if (access("/usr/bin/jq", X_OK) != 0) {
		repo_free(bin);
		free(saved);
		T_SKIP("jq is not installed (the hook needs it)");
	}
	root = realpath("deploy-examples/optimus", NULL);
	T_REQUIRE(root);
	put_file(bin, "curl", "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/curl.args\"\n"
			      "cat \"$(dirname \"$0\")/answer.json\"\n", 0755);
	path = xasprintf("%s:%s", bin, saved);
	setenv("PATH", path, 1);
	setenv("GITHUB_TOKEN", "gh-token-test", 1);
	unsetenv("GITHUB_REPOSITORY");
	e.version = sha;
	e.service = "optimus";

	put_file(bin, "answer.json", "{\"check_runs\":[{\"conclusion\":\"success\"},{\"conclusion\":\"skipped\"}]}", 0644);
	T_INTEQ(rec_hook_run(root, "pre-deploy", &e, 1, &err), 0);
	args = get_file(bin, "curl.args");
	T_CONTAINS(args, "https://api.github.com/repos/example/optimus/commits/0123456789abcdef0123456789abcdef01234567/check-runs");
	T_CONTAINS(args, "Authorization: Bearer gh-token-test");
	free(args);

	put_file(bin, "answer.json", "{\"check_runs\":[{\"conclusion\":\"success\"},{\"conclusion\":\"failure\"}]}", 0644);
	T_INTEQ(rec_hook_run(root, "pre-deploy", &e, 1, &err), PLUMB_ERROR);
	T_CONTAINS(err.msg, "CI failed for 0123456789abcdef0123456789abcdef01234567; not deploying");

	put_file(bin, "answer.json", "{\"check_runs\":[{\"conclusion\":null}]}", 0644);
	T_INTEQ(rec_hook_run(root, "pre-deploy", &e, 1, &err), PLUMB_ERROR);
	T_CONTAINS(err.msg, "CI is still running");

	unsetenv("GITHUB_TOKEN");
	T_INTEQ(rec_hook_run(root, "pre-deploy", &e, 1, &err), PLUMB_ERROR);
	T_CONTAINS(err.msg, "GITHUB_TOKEN is not set");

	/* untrusted (a pull request's plan): the gate is never run */
	T_INTEQ(rec_hook_run(root, "pre-deploy", &e, 0, &err), PLUMB_EUNTRUSTED);

	setenv("PATH", saved, 1);
	free(path);
	free(saved);
	free(root);
	repo_free(bin);
}

T_MAIN(T_CASE(env_is_kamals), T_CASE(env_defaults_from_config_and_desired), T_CASE(failing_hook_stops_with_its_output), T_CASE(untrusted_is_not_run),
       T_CASE(hook_path_rules), T_CASE(optimus_ci_gate_works_as_written))
