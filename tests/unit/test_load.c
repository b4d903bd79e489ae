/*
 * Where the repository root of a -c path is (reconciler/load.c): it follows
 * the file — its config/ folder's parent, its git work tree, or its own
 * folder — never the current directory for a file elsewhere.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/load.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

static void split_is(const char *path, const char *root, const char *rel)
{
	char *r = NULL, *f = NULL;

	rec_split_config_path(path, &r, &f);
	T_STREQ(r, root);
	T_STREQ(f, rel);
	free(r);
	free(f);
}

T_TEST(split_lexical_config_folder)
{
	split_is(NULL, ".", "config/deploy.yml");
	split_is("config/deploy.yml", ".", "config/deploy.yml");
	split_is("app/config/deploy.yml", "app", "config/deploy.yml");
	split_is("/srv/app/config/deploy.yml", "/srv/app", "config/deploy.yml");
	split_is("/config/deploy.yml", "/", "config/deploy.yml");
}

T_TEST(split_follows_the_file)
{
	char *base = tu_tmpdir("load"), *p, *q;

	T_REQUIRE(base != NULL);
	/* no git, no config/: the file's own folder, wherever the cwd is */
	tu_write_in(base, "x/app.yml", "");
	p = xasprintf("%s/x/app.yml", base);
	q = xasprintf("%s/x", base);
	split_is(p, q, "app.yml");
	free(p);
	free(q);
	/* inside a git work tree: its top, the file below it */
	tu_write_in(base, "repo/.git/HEAD", "");
	tu_write_in(base, "repo/deploy/app.yml", "");
	p = xasprintf("%s/repo/deploy/app.yml", base);
	q = xasprintf("%s/repo", base);
	split_is(p, q, "deploy/app.yml");
	free(p);
	p = xasprintf("%s/repo/top.yml", base);
	split_is(p, q, "top.yml");
	free(p);
	/* the same, relative to a cwd that is the top: "." */
	{
		char *old = realpath(".", NULL);

		T_REQUIRE(chdir(q) == 0);
		split_is("deploy/app.yml", ".", "deploy/app.yml");
		split_is("app.yml", ".", "app.yml");
		T_REQUIRE(chdir(old) == 0);
		free(old);
	}
	free(q);
	tu_rm_rf(base);
	free(base);
}

/* `plumb config -c /tmp/…/app.yml` loads (it used to be refused as outside
 * the repository, even with --trusted), with secrets beside it. */
T_TEST(cli_config_absolute_file_loads)
{
	char *base = tu_tmpdir("load-cli"), *cmd;
	const char *bin = getenv("PLUMB_BIN");
	int st;

	T_REQUIRE(base != NULL);
	tu_write_in(base, "x/app.yml",
		    "service: app\nimage: app\nservers: [1.2.3.4]\n"
		    "registry: {server: r.example, username: u, password: [PW]}\n"
		    "builder: {arch: amd64}\n");
	tu_write_in(base, "x/.kamal/secrets", "PW=abc\n");
	for (int trusted = 0; trusted <= 1; trusted++) {
		cmd = xasprintf("cd / && %s config %s-c %s/x/app.yml >/dev/null 2>&1",
				bin ? bin : "build/san/plumb", trusted ? "--trusted " : "", base);
		st = system(cmd);
		T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		free(cmd);
	}
	tu_rm_rf(base);
	free(base);
}

/* The front's failures are codes of the one space. */
T_TEST(load_codes)
{
	char *base = tu_tmpdir("load-codes"), *path;
	struct rec_load_opts lo = { 0 };
	struct rec_loaded ld;
	FILE *log = tmpfile();
	char *argv[] = { "config", "stray", NULL };
	int json = 0;

	T_REQUIRE(base != NULL && log != NULL);
	tu_write_in(base, "config/deploy.yml", "service: app\nimage: app\nservers: 7\n");
	path = xasprintf("%s/config/deploy.yml", base);
	lo.config_path = path;
	lo.log = log;
	T_INTEQ(rec_load(&ld, &lo), PLUMB_ECONFIG);
	rec_loaded_release(&ld);
	tu_write_in(base, "config/deploy.yml",
		    "service: app\nimage: <%= ENV['IMG'] %>\nservers: [1.2.3.4]\n"
		    "registry: {server: r.example, username: u, password: [PW]}\n"
		    "builder: {arch: amd64}\n");
	tu_write_in(base, ".kamal/secrets", "PW=abc\n");
	T_INTEQ(rec_load(&ld, &lo), 0);
	T_INTEQ(rec_require_computed(ld.config, "plan", log), PLUMB_EUNTRUSTED);
	rec_loaded_release(&ld);
	optind = 1;
	T_INTEQ(rec_parse_load_args("config", 2, argv, &lo, &json), PLUMB_EINVAL);
	optind = 1;
	fclose(log);
	free(path);
	tu_rm_rf(base);
	free(base);
}

T_MAIN(T_CASE(split_lexical_config_folder), T_CASE(split_follows_the_file),
       T_CASE(cli_config_absolute_file_loads), T_CASE(load_codes))
