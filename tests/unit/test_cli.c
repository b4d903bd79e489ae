/*
 * The plumb binary as a user runs it: exit codes, help, and golden output of
 * `plumb config` (good and bad input). Goldens live in tests/unit/golden-cli/;
 * PLUMB_UPDATE_GOLDEN=1 rewrites them (review the diff before committing).
 */
#include <sys/wait.h>
#include <unistd.h>

#include "state/util.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

struct run {
	int status;
	char *out, *err;
};

static struct run run_plumb(const char *args, const char *envs)
{
	struct run r = { -1, NULL, NULL };
	const char *bin = getenv("PLUMB_BIN");
	char outp[] = "/tmp/plumb-cli-out-XXXXXX", errp[] = "/tmp/plumb-cli-err-XXXXXX";
	int fo = mkstemp(outp), fe = mkstemp(errp);
	char *cmd;
	int st;

	if (!bin)
		bin = "build/san/plumb";
	close(fo);
	close(fe);
	cmd = xasprintf("env -u RAILS_MASTER_KEY -u POSTGRES_PASSWORD -u KAMAL_REGISTRY_PASSWORD %s %s %s >%s 2>%s",
			envs ? envs : "", bin, args, outp, errp);
	st = system(cmd);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	util_read_file(outp, 1 << 20, &r.out, NULL);
	util_read_file(errp, 1 << 20, &r.err, NULL);
	unlink(outp);
	unlink(errp);
	free(cmd);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void check_golden(const char *name, const char *got)
{
	char *path = xasprintf("tests/unit/golden-cli/%s", name);

	T_GOLDEN(path, got);
	free(path);
}

T_TEST(version_and_help)
{
	struct run r = run_plumb("--version", NULL);
	T_INTEQ(r.status, 0);
	T_CONTAINS(r.out, "plumb ");
	run_free(&r);
	r = run_plumb("help", NULL);
	T_INTEQ(r.status, 0);
	T_CONTAINS(r.out, "config");
	T_CONTAINS(r.out, "Exit status: 0");
	run_free(&r);
	r = run_plumb("config --help", NULL);
	T_INTEQ(r.status, 0);
	T_CONTAINS(r.out, "usage: plumb config");
	run_free(&r);
	/* host-key acceptance is the invocation's: both commands that connect say how */
	r = run_plumb("hosts --help", NULL);
	T_CONTAINS(r.out, "PLUMB_SSH_ACCEPT_NEW=1");
	run_free(&r);
	r = run_plumb("plan --help", NULL);
	T_CONTAINS(r.out, "PLUMB_SSH_ACCEPT_NEW=1");
	T_CONTAINS(r.out, "ssh.keys outside it are skipped");
	run_free(&r);
	r = run_plumb("frobnicate", NULL);
	T_INTEQ(r.status, 1);
	T_CONTAINS(r.err, "unknown command 'frobnicate'");
	run_free(&r);
	r = run_plumb("config --bogus", NULL);
	T_INTEQ(r.status, 1);
	run_free(&r);
}

T_TEST(config_optimus_golden)
{
	struct run r = run_plumb("config -c deploy-examples/optimus/config/deploy.yml", NULL);
	T_INTEQ(r.status, 0);
	check_golden("optimus.out", r.out);
	check_golden("optimus.err", r.err);
	run_free(&r);
	r = run_plumb("config -c deploy-examples/optimus/config/deploy.yml -d production", NULL);
	T_INTEQ(r.status, 0);
	check_golden("optimus-production.out", r.out);
	run_free(&r);
}

T_TEST(config_json_is_valid_and_redacted)
{
	struct run r = run_plumb("config --json --trusted -c deploy-examples/optimus/config/deploy.yml",
				 "RAILS_MASTER_KEY=canary-master-9d1 POSTGRES_PASSWORD=canary-pg-3e7");
	T_INTEQ(r.status, 0);
	T_CONTAINS(r.out, "\"service\": \"optimus\"");
	T_CONTAINS(r.out, "\"state\": \"set\"");
	T_NOT_CONTAINS(r.out, "canary-master-9d1");
	T_NOT_CONTAINS(r.out, "canary-pg-3e7");
	T_NOT_CONTAINS(r.err, "canary");
	run_free(&r);
	r = run_plumb("config --trusted -c deploy-examples/optimus/config/deploy.yml",
		      "RAILS_MASTER_KEY=canary-master-9d1 POSTGRES_PASSWORD=canary-pg-3e7");
	T_INTEQ(r.status, 0);
	T_CONTAINS(r.out, "RAILS_MASTER_KEY=(secret, set; value hidden)");
	T_NOT_CONTAINS(r.out, "canary");
	run_free(&r);
}

/* A value that is not UTF-8 (here a host from ERB ENV, trusted) keeps its key
 * in the JSON, repaired to U+FFFD, instead of vanishing. */
T_TEST(config_json_keeps_keys_of_invalid_utf8)
{
	char *dir = xasprintf("/tmp/plumb-cli-utf8-%d", (int)getpid());
	char *path = xasprintf("%s/config/deploy.yml", dir), *args;
	struct run r;

	T_REQUIRE(tu_sh("mkdir -p %s/config", dir) == 0);
	T_REQUIRE(tu_write_file(path, "service: app\nimage: app\nregistry:\n  username: u\n  password: p\n"
				      "servers:\n  web:\n    hosts: [\"<%= ENV['BAD_HOST'] %>\"]\n"
				      "ssh:\n  user: \"<%= ENV['BAD_HOST'] %>\"\n") == 0);
	args = xasprintf("config --json --trusted -c %s", path);
	r = run_plumb(args, "BAD_HOST=$(printf 'h\\377x')");
	T_INTEQ(r.status, 0);
	T_CONTAINS(r.out, "\"host\": \"h\xef\xbf\xbdx\"");
	T_CONTAINS(r.out, "\"user\": \"h\xef\xbf\xbdx\"");
	T_CONTAINS(r.out, "\"ssh\": {");
	run_free(&r);
	tu_sh("rm -rf %s", dir);
	free(args);
	free(path);
	free(dir);
}

T_TEST(config_errors_golden)
{
	struct run r = run_plumb("config -c tests/unit/golden-cli/bad/config/deploy.yml", NULL);
	T_INTEQ(r.status, 1);
	T_STREQ(r.out, "");
	check_golden("bad.err", r.err);
	run_free(&r);
	r = run_plumb("config -c tests/unit/golden-cli/nope/config/deploy.yml", NULL);
	T_INTEQ(r.status, 1);
	T_CONTAINS(r.err, "config/deploy.yml: error: configuration file not found");
	run_free(&r);
}

/* Runs `plumb config` on a fresh repository whose deploy.yml is yml. */
static struct run run_config_on(const char *yml)
{
	char *dir = tu_tmpdir("cli-esc"), *args;
	struct run r = { -1, NULL, NULL };

	if (!dir)
		return r;
	tu_write_in(dir, "config/deploy.yml", yml);
	args = xasprintf("config -c %s/config/deploy.yml", dir);
	r = run_plumb(args, NULL);
	free(args);
	tu_rm_rf(dir);
	free(dir);
	return r;
}

/* Diagnostics quote the repository: escaped on stderr like stdout. */
T_TEST(config_errors_escape_terminal_controls)
{
	struct run r = run_config_on("service: a\nimage: b\nregistry:\n  server: localhost:5000\nservers: [1.1.1.1]\n"
				     "\"\\e[31mRED\\e]0;T\\a\\u009b\": 1\n");

	T_INTEQ(r.status, 1);
	T_CONTAINS(r.err, "unknown key '\\x1b[31mRED\\x1b]0;T\\x07\\xc2\\x9b'");
	T_CHECK(r.err && strchr(r.err, 0x1b) == NULL && strchr(r.err, 0x07) == NULL &&
		!strstr(r.err, "\xc2\x9b"));
	run_free(&r);
}

T_TEST(config_text_escapes_terminal_controls)
{
	struct run r = run_config_on("service: a\nimage: b\nregistry:\n  server: localhost:5000\nservers: [1.1.1.1]\n"
				     "env:\n  clear:\n    TITLE: \"\\e]2;pwned\\a\\e[31mred \\u009b caf\\u00e9\"\n");

	T_INTEQ(r.status, 0);
	T_CONTAINS(r.out, "TITLE=\\x1b]2;pwned\\x07\\x1b[31mred \\xc2\\x9b caf\xc3\xa9");
	T_CHECK(r.out && strchr(r.out, 0x1b) == NULL);
	run_free(&r);
}

T_MAIN(T_CASE(config_text_escapes_terminal_controls), T_CASE(config_errors_escape_terminal_controls), T_CASE(version_and_help), T_CASE(config_optimus_golden), T_CASE(config_json_is_valid_and_redacted),
       T_CASE(config_errors_golden), T_CASE(config_json_keeps_keys_of_invalid_utf8))
