/* Replays every input the fuzzer ever found (tests/fuzz/regressions/) and the
 * seed corpus through the untrusted loader: each must load or be refused
 * cleanly (ASan/UBSan/LSan watch for the rest). */
#include <dirent.h>
#include <unistd.h>

#include "state/config.h"
#include "tests/fuzz/mem_source.h"
#include "tests/unit/t.h"

static int replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char *path, *text = NULL;
		size_t len = 0;
		struct source *src;
		struct config_opts o = { 0 };
		struct config *c = NULL;
		struct diags dg = { 0 };
		int rc;

		if (e->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		if (read_file(path, 1 << 20, &text, &len) == 0) {
			src = mem_source_new(text, len);
			rc = config_load(&c, src, &o, &dg);
			/* a refusal always says why */
			if (rc < 0 && dg.errors == 0)
				T_FAIL_AT("%s refused without an error message", path);
			t_checks++;
			config_free(c);
			diags_clear(&dg);
			source_free(src);
			n++;
		}
		free(text);
		free(path);
	}
	closedir(d);
	return n;
}

T_TEST(regressions_replay)
{
	T_CHECK(replay_dir("tests/fuzz/regressions") >= 1);
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
		diags_clear(&dg);
		source_free(src);
	}
	T_CHECK(access("/tmp/plumb-fuzz-pwned", F_OK) != 0);
}

T_MAIN(T_CASE(regressions_replay), T_CASE(hostile_inputs))
