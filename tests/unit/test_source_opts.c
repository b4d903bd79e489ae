/* The source options' one parser (reconciler/source_opts.h): every option, the
 * groups a command takes, its own options, operands and the errors, with what
 * is printed on stderr. */
#include "reconciler/source_opts.h"
#include "state/util.h"
#include "tests/unit/t.h"

#include <sys/wait.h>
#include <unistd.h>

#define ALL                                                                                            \
	(REC_SRC_CONFIG | REC_SRC_GIT | REC_SRC_BASE | REC_SRC_VERSION | REC_SRC_TRUSTED | REC_SRC_PRUNE | \
	 REC_SRC_TIMEOUT)

struct parsed {
	int rc;
	struct rec_source_opts so;
	char *err; /* what it printed on stderr */
};

/* Parses the NULL-ended words (the first names the command) with spec into
 * into (NULL: the result's so), capturing stderr. */
static struct parsed parse_into(struct rec_source_opts *into, const struct rec_source_spec *spec, char **words)
{
	struct parsed p = { 0 };
	char path[] = "/tmp/plumb-t-srcopts-XXXXXX";
	int fd = mkstemp(path), saved = dup(2), argc = 0;

	while (words[argc])
		argc++;
	fflush(stderr);
	dup2(fd, 2);
	p.rc = rec_source_opts_parse(into ? into : &p.so, spec, argc, words);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	util_read_file(path, 1 << 20, &p.err, NULL);
	unlink(path);
	return p;
}

static struct parsed parse_words(const struct rec_source_spec *spec, char **words)
{
	return parse_into(NULL, spec, words);
}

T_TEST(every_source_option)
{
	const struct rec_source_spec spec = { "plan", ALL, NULL, NULL };
	char *w[] = { "plan", "-c", "app/config/deploy.yml", "-d", "staging", "--repo", "https://git.example/app.git",
		      "--ref", "main", "--base", "v1", "--version", "abc", "--trusted", "--prune",
		      "--allow-foreign-owner", "--timeout", "90s", NULL };
	struct parsed p = parse_words(&spec, w);

	T_INTEQ(p.rc, 0);
	T_STREQ(p.so.config_path, "app/config/deploy.yml");
	T_STREQ(p.so.destination, "staging");
	T_STREQ(p.so.repo, "https://git.example/app.git");
	T_STREQ(p.so.ref, "main");
	T_STREQ(p.so.base, "v1");
	T_STREQ(p.so.version, "abc");
	T_INTEQ(p.so.trusted, 1);
	T_INTEQ(p.so.prune, 1);
	T_INTEQ(p.so.allow_foreign_owner, 1);
	T_INTEQ(p.so.timeout_ms, 90000);
	T_STREQ(p.err, "");
	free(p.err);
}

T_TEST(long_forms_and_defaults)
{
	const struct rec_source_spec spec = { "plan", ALL, NULL, NULL };
	char *w[] = { "plan", "--config=x.yml", "--destination", "prod", "--timeout=1500ms", NULL };
	char *none[] = { "plan", NULL };
	struct parsed p = parse_words(&spec, w);

	T_INTEQ(p.rc, 0);
	T_STREQ(p.so.config_path, "x.yml");
	T_STREQ(p.so.destination, "prod");
	T_INTEQ(p.so.timeout_ms, 1500);
	free(p.err);
	p = parse_words(&spec, none);
	T_INTEQ(p.rc, 0);
	T_CHECK(!p.so.config_path && !p.so.destination && !p.so.repo && !p.so.ref && !p.so.base && !p.so.version);
	T_CHECK(!p.so.trusted && !p.so.prune && !p.so.allow_foreign_owner && !p.so.timeout_ms);
	free(p.err);
}

/* A command that takes --untrusted trusts its source unless told not to. */
T_TEST(untrusted_turns_trust_off)
{
	const struct rec_source_spec spec = { "apply", REC_SRC_TRUSTED | REC_SRC_UNTRUSTED, NULL, NULL };
	char *none[] = { "apply", NULL };
	char *off[] = { "apply", "--untrusted", NULL };
	char *on[] = { "apply", "--untrusted", "--trusted", NULL };
	struct parsed p = parse_words(&spec, none);

	T_INTEQ(p.rc, 0);
	T_INTEQ(p.so.trusted, 1);
	free(p.err);
	p = parse_words(&spec, off);
	T_INTEQ(p.rc, 0);
	T_INTEQ(p.so.trusted, 0);
	free(p.err);
	p = parse_words(&spec, on);
	T_INTEQ(p.so.trusted, 1);
	free(p.err);
}

T_TEST(own_options)
{
	const char *expect = NULL, *message = NULL;
	int yes = 0, json = 0;
	const struct rec_extra_opt extra[] = {
		{ "expect-plan", 0, &expect, NULL },
		{ "yes", 'y', NULL, &yes },
		{ "message", 'm', &message, NULL },
		{ "json", 0, NULL, &json },
		{ NULL, 0, NULL, NULL },
	};
	const struct rec_source_spec spec = { "apply", REC_SRC_CONFIG, extra, NULL };
	char *w[] = { "apply", "-y", "--expect-plan", "h1", "-m", "why", "-c", "c.yml", "--json", NULL };
	char *clustered[] = { "apply", "-yc", "d.yml", NULL };
	struct parsed p = parse_words(&spec, w);

	T_INTEQ(p.rc, 0);
	T_INTEQ(yes, 1);
	T_INTEQ(json, 1);
	T_STREQ(expect, "h1");
	T_STREQ(message, "why");
	T_STREQ(p.so.config_path, "c.yml");
	free(p.err);
	yes = 0;
	p = parse_words(&spec, clustered);
	T_INTEQ(p.rc, 0);
	T_INTEQ(yes, 1);
	T_STREQ(p.so.config_path, "d.yml");
	free(p.err);
}

/* Refused: what is printed (the problem, then the command's usage). */
T_TEST(refused)
{
	const struct rec_source_spec plan = { "plan", ALL, NULL, NULL };
	/* hosts takes no --repo: an option of another command is unknown to it */
	const struct rec_source_spec hosts = { "hosts", REC_SRC_CONFIG | REC_SRC_TRUSTED | REC_SRC_TIMEOUT, NULL,
					       NULL };
	const struct rec_source_spec lock = { "lock", REC_SRC_TIMEOUT, NULL, NULL };
	static const struct {
		const char *name;
		const char *words[6];
		const char *says;
	} cases[] = {
		{ "missing value", { "plan", "--repo" }, "option '--repo' requires an argument" },
		{ "missing duration", { "plan", "--timeout" }, "option '--timeout' requires an argument" },
		{ "missing short value", { "plan", "-c" }, "option requires an argument -- 'c'" },
		{ "unknown option", { "plan", "--frobnicate" }, "plan: unrecognized option '--frobnicate'" },
		{ "unknown short option", { "plan", "-q" }, "invalid option -- 'q'" },
		{ "not this command's", { "hosts", "--repo", "x" }, "unrecognized option '--repo'" },
		{ "no --untrusted", { "plan", "--untrusted" }, "unrecognized option '--untrusted'" },
		{ "bad duration", { "status", "--timeout", "soon" },
		  "plumb lock: --timeout 'soon': want a duration like 90s, 5m, 1500ms\n" },
		{ "operand", { "plan", "-c", "x.yml", "stray" }, "plumb plan: unexpected argument 'stray'\n" },
		{ "after --", { "plan", "--", "--trusted" }, "unexpected argument '--trusted'" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rec_source_spec *spec = &plan;
		const char *usage = "usage: plumb plan";
		struct parsed p;

		if (strcmp(cases[i].words[0], "hosts") == 0)
			spec = &hosts, usage = "usage: plumb hosts";
		else if (strcmp(cases[i].words[0], "status") == 0)
			spec = &lock, usage = "usage: plumb lock";
		p = parse_words(spec, (char **)cases[i].words);
		T_CHECKF(p.rc == PLUMB_EINVAL, "%s: rc %d", cases[i].name, p.rc);
		T_CHECKF(p.err && strstr(p.err, cases[i].says), "%s: says '%s'", cases[i].name, p.err);
		T_CHECKF(p.err && strstr(p.err, usage), "%s: no usage", cases[i].name);
		free(p.err);
	}
}

/* rollback [VERSION]: the operand is the version unless --version gave it. */
T_TEST(operand)
{
	struct rec_source_opts so;
	const struct rec_source_spec rollback = { "rollback", REC_SRC_VERSION, NULL, &so.version };
	char *v[] = { "rollback", "v1", NULL };
	char *two[] = { "rollback", "v1", "v2", NULL };
	char *both[] = { "rollback", "--version", "v1", "v2", NULL };
	struct parsed p = parse_into(&so, &rollback, v);

	T_INTEQ(p.rc, 0);
	T_STREQ(so.version, "v1");
	free(p.err);
	p = parse_into(&so, &rollback, two);
	T_INTEQ(p.rc, PLUMB_EINVAL);
	T_CONTAINS(p.err, "plumb rollback: unexpected argument 'v2'");
	T_CONTAINS(p.err, "usage: plumb rollback");
	free(p.err);
	p = parse_into(&so, &rollback, both);
	T_INTEQ(p.rc, PLUMB_EINVAL);
	T_STREQ(so.version, "v1");
	T_CONTAINS(p.err, "unexpected argument 'v2'");
	free(p.err);
}

/* Each command is wired to the groups it takes: the binary as a user runs it. */
T_TEST(commands)
{
	static const struct {
		const char *args, *says;
	} cases[] = {
		/* refused, with the usage */
		{ "plan --untrusted", "unrecognized option '--untrusted'" },
		{ "hosts --repo x", "unrecognized option '--repo'" },
		{ "apply --base x", "unrecognized option '--base'" },
		{ "lock status --prune", "unrecognized option '--prune'" },
		{ "config --timeout 5s", "unrecognized option '--timeout'" },
		{ "rollback v1 v2", "plumb rollback: unexpected argument 'v2'" },
		{ "apply --timeout 5q", "plumb apply: --timeout '5q': want a duration" },
		{ "hosts --timeout", "option '--timeout' requires an argument" },
		/* accepted: they get as far as the configuration */
		{ "plan -c /nonexistent/config/deploy.yml --format json --prune --version v --allow-foreign-owner --timeout 1s", NULL },
		{ "hosts --json --trusted -d x -c /nonexistent/config/deploy.yml --timeout=2s", NULL },
		{ "apply -y --skip-hooks --untrusted --expect-plan h -c /nonexistent/config/deploy.yml", NULL },
		{ "rollback v1 --yes -c /nonexistent/config/deploy.yml", NULL },
		{ "lock acquire -m why --version v -c /nonexistent/config/deploy.yml", NULL },
		{ "config --json -c /nonexistent/config/deploy.yml", NULL },
	};
	const char *bin = getenv("PLUMB_BIN");

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *cmd = xasprintf("%s %s 2>&1 </dev/null", bin ? bin : "build/san/plumb", cases[i].args);
		char buf[8192];
		size_t n;
		FILE *f;
		int st;

		f = popen(cmd, "r");
		T_REQUIRE(f != NULL);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		st = pclose(f);
		T_CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: status %d", cases[i].args, st);
		if (cases[i].says) {
			T_CHECKF(strstr(buf, cases[i].says) && strstr(buf, "usage: plumb"), "%s: %s", cases[i].args, buf);
		} else {
			T_CHECKF(strstr(buf, "configuration file not found") && !strstr(buf, "usage:"), "%s: %s",
				 cases[i].args, buf);
		}
		free(cmd);
	}
}

T_MAIN(T_CASE(every_source_option), T_CASE(long_forms_and_defaults), T_CASE(untrusted_turns_trust_off),
       T_CASE(own_options), T_CASE(refused), T_CASE(operand), T_CASE(commands))
