/* Replays every input the fuzzers ever found and the seed corpus: config
 * inputs (tests/fuzz/regressions/) through the untrusted loader, each must
 * load or be refused cleanly; host outputs (tests/fuzz/regressions/obs/ and
 * tests/unit/fixtures/docker/) through observation → diff → render
 * (tests/fuzz/obs_plan.h), each must give a plan. ASan/UBSan/LSan watch for
 * the rest. */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/config.h"
#include "tests/fuzz/mem_source.h"
#include "tests/fuzz/obs_plan.h"
#include "tests/unit/t.h"

/* Calls fn on each regular file of dir; the number of files, or -1. */
static int each_file(const char *dir, void (*fn)(const char *path, const char *text, size_t len))
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char *path, *text = NULL;
		size_t len = 0;
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    util_read_file(path, 1 << 22, &text, &len) == 0) {
			fn(path, text, len);
			n++;
		}
		free(text);
		free(path);
	}
	closedir(d);
	return n;
}

static void replay_obs(const char *path, const char *text, size_t len)
{
	if (obs_plan_run(text, len) < 0)
		T_FAIL_AT("%s: no plan", path);
	t_checks++;
}

static void replay_config(const char *path, const char *text, size_t len)
{
	struct source *src = mem_source_new(text, len);
	struct config_opts o = { 0 };
	struct config *c = NULL;
	struct diags dg = { 0 };

	/* a refusal always says why */
	if (config_load(&c, src, &o, &dg) < 0 && dg.errors == 0)
		T_FAIL_AT("%s refused without an error message", path);
	t_checks++;
	config_free(c);
	diags_release(&dg);
	source_free(src);
}

T_TEST(regressions_replay)
{
	T_CHECK(each_file("tests/fuzz/regressions", replay_config) >= 1);
}

T_TEST(obs_regressions_replay)
{
	T_CHECK(each_file("tests/fuzz/regressions/obs", replay_obs) >= 1);
	T_CHECK(each_file("tests/unit/fixtures/docker", replay_obs) >= 1);
}

T_TEST(hostile_inputs)
{
	static const char *inputs[] = {
		"a: &a [*a]\n",
		"x: &x\n  - *x\n  - *x\n",
		"<<: *nope\n",
		"service: [",
		"servers:\n  web:\n    hosts: {a: [b, {c: d}]}\n",
		"service: a\nimage: b\nregistry: {server: localhost:1}\nservers: [1.1.1.1]\nenv:\n  X: <%= `touch /tmp/plumb-fuzz-pwned` %>\n",
		"service: a\nimage: b\nregistry: {server: localhost:1}\nservers: [1.1.1.1]\nenv:\n  secret: [A]\n"
		"\n#--- secrets ---\nA=$(touch /tmp/plumb-fuzz-pwned)\n",
		"\xff\xfe\x00\x01",
		"service: a\x00b\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
		size_t len = strlen(inputs[i]);
		struct source *src;
		struct config_opts o = { 0 };
		struct config *c = NULL;
		struct diags dg = { 0 };

		if (i == ARRAY_SIZE(inputs) - 1)
			len = sizeof("service: a\x00b\n") - 1; /* with the NUL inside */
		src = mem_source_new(inputs[i], len);
		config_load(&c, src, &o, &dg);
		config_free(c);
		diags_release(&dg);
		source_free(src);
	}
	T_CHECK(access("/tmp/plumb-fuzz-pwned", F_OK) != 0);
}

T_MAIN(T_CASE(regressions_replay), T_CASE(obs_regressions_replay), T_CASE(hostile_inputs))
