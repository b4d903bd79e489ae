#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "providers/run.h"
#include "state/secrets.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#define CANARY "s3cr3t-canary-value"

static const struct tu_var fake_env[] = {
	{ "HOME_X", "/home/x" },
	{ "ENV_ONLY", "from-env" },
	{ "CANARY_ENV", CANARY },
	{ NULL, NULL },
};

static void trust_fake(struct trust *t, int trusted)
{
	trust_init(t, trusted);
	t->getenv_fn = tu_fake_getenv;
	t->getenv_ctx = (void *)fake_env;
	t->run_fn = prov_run_shell_fn;
}

struct kv {
	const char *text; /* a whole file */
	const char *key;
	const char *want; /* NULL: not defined */
};

/* Each behaviour checked against what dotenv 3's parser does (see secrets.c). */
static const struct kv forms[] = {
	{ "A=1\n", "A", "1" },
	{ "export B=2\n", "B", "2" },
	{ "C: 3\n", "C", "3" },
	{ "C:3\n", "C", NULL }, /* the colon form needs whitespace */
	{ "# comment\n\n   D=4\n", "D", "4" },
	{ "E='lit $HOME_X \\n $(echo x)'\n", "E", "lit $HOME_X \\n $(echo x)" },
	{ "F=\"dq \\\"q\\\" \\\\ \\$X $HOME_X \\n\"\n", "F", "dq \"q\" \\ $X /home/x \\n" },
	{ "G=\"line1\nline2\"\nH=after\n", "G", "line1\nline2" },
	{ "G=\"line1\nline2\"\nH=after\n", "H", "after" },
	{ "G='s1\ns2'\n", "G", "s1\ns2" },
	{ "H=unquoted value   # comment\n", "H", "unquoted value" },
	{ "I=abc#def\n", "I", "abc" },
	{ "A=1\nJ=${A}-$A-x${A}y\n", "J", "1-1-x1y" },
	{ "K=\\$A\n", "K", "$A" },
	{ "K=\\\\$A\n", "K", "$A" }, /* \\ unescapes to \, which then escapes the $ */
	{ "L=$(echo cmd)\n", "L", "cmd" },
	{ "L=\"x $(printf 'a\\r\\n') y\"\n", "L", "x a y" },
	{ "L=$(echo $(echo nested))\n", "L", "nested" },
	{ "M=\\$(echo no)\n", "M", "$(echo no)" },
	{ "O=$HOME_X/x\n", "O", "/home/x/x" },
	{ "A=one\nA=two\nP=$A\n", "P", "two" },
	{ "A=one\nA=two\nP=$A\n", "A", "two" },
	{ "ENV_ONLY=file\nP=$ENV_ONLY\n", "P", "file" }, /* earlier keys win over the environment */
	{ "Q=\"quoted\" # c\n", "Q", "quoted" },
	{ "Q=\"has # hash\"\n", "Q", "has # hash" },
	{ "Q=\"a\" b\n", "Q", "\"a\" b" },
	{ "R=\"a\\nb\"\n", "R", "a\\nb" },
	{ "DOTENV_LINEBREAK_MODE=legacy\nR=\"a\\nb\"\n", "R", "a\nb" },
	{ "S=\n", "S", "" },
	{ "S=\nT=2\n", "T", "2" },
	{ "T.dot=1\n", "T.dot", "1" },
	{ "this is not an assignment\nU=1\n", "U", "1" },
	{ "V='a' 'b'\n", "V", "a' 'b" },
	{ "W=1\r\nX=2\r\n", "X", "2" },
	{ "\xEF\xBB\xBFY=bom\n", "Y", "bom" },
	{ "Z=$ \"${}\"\n", "Z", "$ \"${}\"" },
	{ "Z=\"unterminated\nN=2\n", "Z", "\"unterminated" },
	{ "Z=\"unterminated\nN=2\n", "N", "2" },
	{ "Z=  spaced  \n", "Z", "spaced" },
};

T_TEST(dotenv_forms_trusted)
{
	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		struct secrets *s = secrets_new();
		struct trust t;
		struct diags d = { 0 };
		int avail = -1;
		const char *got;

		trust_fake(&t, 1);
		T_INTEQ(secrets_parse(s, ".kamal/secrets", forms[i].text, strlen(forms[i].text),
				      NULL, &t, &d),
			0);
		got = secrets_get(s, forms[i].key, &avail);
		if (!((got == NULL && forms[i].want == NULL) ||
		      (got && forms[i].want && strcmp(got, forms[i].want) == 0)))
			T_FAIL_AT("case %zu (%s): got \"%s\", want \"%s\"", i, forms[i].key,
				  got ? got : "(null)", forms[i].want ? forms[i].want : "(null)");
		if (forms[i].want)
			T_INTEQ(avail, 1);
		T_INTEQ(d.errors, 0);
		secrets_free(s);
		diags_release(&d);
	}
}

T_TEST(missing_env_var_is_empty_with_warning)
{
	struct secrets *s = secrets_new();
	struct trust t;
	struct diags d = { 0 };
	const char *text = "SECRET=" CANARY "\nJ=a-${NOPE}-b\n";
	char *msg;

	trust_fake(&t, 1);
	T_REQUIRE(secrets_parse(s, ".kamal/secrets", text, strlen(text), NULL, &t, &d) == 0);
	T_STREQ(secrets_get(s, "J", NULL), "a--b");
	msg = diags_to_string(&d);
	T_STREQ(msg, ".kamal/secrets:2: warning: J: $NOPE is not set in the environment; it "
		     "expands to an empty string (as dotenv does)\n");
	T_NOT_CONTAINS(msg, CANARY);
	free(msg);
	secrets_free(s);
	diags_release(&d);
}

T_TEST(untrusted_turns_off_env_and_commands)
{
	char marker[] = "/tmp/plumb-secrets-marker-XXXXXX";
	int fd = mkstemp(marker);
	struct secrets *s;
	struct trust t;
	struct diags d = { 0 };
	char *text;
	int avail = 1;

	T_REQUIRE(fd >= 0);
	close(fd);
	unlink(marker);
	text = xasprintf("A=$HOME_X\nB=$(touch %s)\nC=lit\nD=$C-x\nE='$(touch %s)'\nF=$A\n",
			 marker, marker);

	trust_fake(&t, 0);
	s = secrets_new();
	T_REQUIRE(secrets_parse(s, "f", text, strlen(text), NULL, &t, &d) == 0);
	T_STREQ(secrets_get(s, "A", &avail), PLUMB_UNAVAILABLE);
	T_INTEQ(avail, 0);
	T_STREQ(secrets_get(s, "B", &avail), PLUMB_UNAVAILABLE);
	T_INTEQ(avail, 0);
	T_STREQ(secrets_get(s, "C", &avail), "lit");
	T_INTEQ(avail, 1);
	T_STREQ(secrets_get(s, "D", &avail), "lit-x"); /* earlier keys need no environment */
	T_CHECK(strncmp(secrets_get(s, "E", &avail), "$(touch /tmp/", 13) == 0);
	T_STREQ(secrets_get(s, "F", &avail), PLUMB_UNAVAILABLE); /* depends on A */
	T_INTEQ(t.turned_off, TRUST_OFF_SECRET_ENV | TRUST_OFF_SECRET_CMD);
	T_CHECK(access(marker, F_OK) != 0);
	T_INTEQ(d.n, 0);
	secrets_free(s);

	/* Only the environment switch. */
	trust_fake(&t, 0);
	s = secrets_new();
	T_REQUIRE(secrets_parse(s, "f", "A=$ENV_ONLY\n", 12, NULL, &t, &d) == 0);
	T_INTEQ(t.turned_off, TRUST_OFF_SECRET_ENV);
	secrets_free(s);

	/* Trusted, the same file runs the command and reads the environment. */
	trust_fake(&t, 1);
	s = secrets_new();
	T_REQUIRE(secrets_parse(s, "f", text, strlen(text), NULL, &t, &d) == 0);
	T_STREQ(secrets_get(s, "A", &avail), "/home/x");
	T_STREQ(secrets_get(s, "B", &avail), "");
	T_INTEQ(avail, 1);
	T_INTEQ(t.turned_off, 0);
	T_CHECK(access(marker, F_OK) == 0);
	unlink(marker);
	secrets_free(s);
	free(text);
	diags_release(&d);
}

T_TEST(kamal_secrets_not_run)
{
	struct secrets *s = secrets_new();
	struct trust t;
	struct diags d = { 0 };
	const char *text = "SECRETS=$(kamal secrets fetch --adapter 1password --from V/I TOKEN)\n"
			   "TOKEN=$(kamal secrets extract TOKEN $SECRETS)\n";
	char *msg;
	int avail = 1;

	trust_fake(&t, 1);
	T_REQUIRE(secrets_parse(s, ".kamal/secrets", text, strlen(text), NULL, &t, &d) == 0);
	T_STREQ(secrets_get(s, "TOKEN", &avail), PLUMB_UNAVAILABLE);
	T_INTEQ(avail, 0);
	msg = diags_to_string(&d);
	T_STREQ(msg,
		".kamal/secrets:1: warning: SECRETS uses `kamal secrets`, which needs Kamal; plumb "
		"cannot run it — use the adapter's own CLI in .kamal/secrets (e.g. `$(op read "
		"op://vault/item/field)` or `$(bw get …)`), or set SECRETS in the environment and "
		"write SECRETS=$SECRETS\n"
		".kamal/secrets:2: warning: TOKEN uses `kamal secrets`, which needs Kamal; plumb "
		"cannot run it — use the adapter's own CLI in .kamal/secrets (e.g. `$(op read "
		"op://vault/item/field)` or `$(bw get …)`), or set TOKEN in the environment and "
		"write TOKEN=$TOKEN\n");
	free(msg);
	secrets_free(s);
	diags_release(&d);
}

T_TEST(failed_command_never_leaks)
{
	struct secrets *s = secrets_new();
	struct trust t;
	struct diags d = { 0 };
	const char *text = "OK=" CANARY "\n"
			   "PW=$(echo " CANARY "; echo " CANARY " >&2; exit 2)\n"
			   "BIG=$(yes)\n"
			   "E=$CANARY_ENV$NOPE\n";
	char *msg;
	int avail = 1;

	trust_fake(&t, 1);
	T_REQUIRE(secrets_parse(s, ".kamal/secrets", text, strlen(text), NULL, &t, &d) == 0);
	T_STREQ(secrets_get(s, "PW", &avail), PLUMB_UNAVAILABLE);
	T_INTEQ(avail, 0);
	T_STREQ(secrets_get(s, "BIG", &avail), PLUMB_UNAVAILABLE);
	T_STREQ(secrets_get(s, "OK", &avail), CANARY);
	msg = diags_to_string(&d);
	T_CONTAINS(msg, ".kamal/secrets:2: warning: PW: the $(…) command failed (exit status 2); "
			"PW is unavailable\n");
	T_CONTAINS(msg, ".kamal/secrets:3: warning: BIG: the $(…) command could not be run");
	T_NOT_CONTAINS(msg, CANARY);
	T_NOT_CONTAINS(msg, "echo");
	free(msg);
	secrets_free(s);
	diags_release(&d);
}

T_TEST(export_of_unset_is_an_error)
{
	struct secrets *s = secrets_new();
	struct trust t;
	struct diags d = { 0 };
	const char *ok = "export A\nA=1\n";
	const char *bad = "A=1\n\nexport A NOPE\n";
	char *msg;

	trust_fake(&t, 1);
	T_INTEQ(secrets_parse(s, "f", ok, strlen(ok), NULL, &t, &d), 0);
	T_INTEQ(secrets_parse(s, "f", bad, strlen(bad), NULL, &t, &d), PLUMB_ECONFIG);
	msg = diags_to_string(&d);
	T_STREQ(msg, "f:3: error: an `export` line names a variable that is not set in this file "
		     "(dotenv refuses the file)\n");
	free(msg);
	secrets_free(s);
	diags_release(&d);
}

/* ---- files: order, destinations, paths ---- */

struct tmp {
	char *root; /* /tmp/plumb-secrets-XXXXXX */
	char *repo; /* root/repo */
};

static int tmp_setup(struct tmp *tp)
{
	tp->root = tu_tmpdir("secrets");
	if (!tp->root)
		return -1;
	tp->repo = xasprintf("%s/repo", tp->root);
	tu_write_in(tp->root, "repo/.kamal/secrets-common", "A=common\nB=common\nC=$B\n");
	tu_write_in(tp->root, "repo/.kamal/secrets", "A=plain\n");
	tu_write_in(tp->root, "repo/.kamal/secrets.staging", "A=staging\nD=$B\nPWD_IS=$(pwd)\n");
	tu_write_in(tp->root, "outside/s-common", "O=outside\n");
	return 0;
}

static void tmp_cleanup(struct tmp *tp)
{
	if (tp->root && strncmp(tp->root, "/tmp/plumb-secrets-", 19) == 0)
		tu_rm_rf(tp->root);
	free(tp->root);
	free(tp->repo);
	tp->root = tp->repo = NULL;
}

T_TEST(file_order_and_destinations)
{
	struct tmp tp;
	struct source *src = NULL;
	struct secrets *s = NULL;
	struct trust t;
	struct diags d = { 0 };
	char *msg, *real = NULL;

	T_REQUIRE(tmp_setup(&tp) == 0);
	source_dir_new(&src, tp.repo);
	trust_fake(&t, 1);

	T_REQUIRE(secrets_load(&s, src, NULL, NULL, &t, &d) == 0);
	T_STREQ(secrets_get(s, "A", NULL), "plain");
	T_STREQ(secrets_get(s, "B", NULL), "common");
	T_STREQ(secrets_get(s, "C", NULL), "common");
	T_CHECK(secrets_get(s, "D", NULL) == NULL);
	T_INTEQ(secrets_count(s), 3);
	T_STREQ(secrets_name_at(s, 0), "A");
	secrets_free(s);

	T_REQUIRE(secrets_load(&s, src, ".kamal/secrets", "staging", &t, &d) == 0);
	T_STREQ(secrets_get(s, "A", NULL), "staging");
	/* B was set by secrets-common: a later file cannot see it (separate Dotenv.parse). */
	T_STREQ(secrets_get(s, "D", NULL), "");
	real = realpath(tp.repo, NULL);
	T_STREQ(secrets_get(s, "PWD_IS", NULL), real); /* commands run in the repository */
	free(real);
	msg = diags_to_string(&d);
	T_STREQ(msg, ".kamal/secrets.staging:2: warning: D: $B is not set in the environment; it "
		     "expands to an empty string (as dotenv does)\n");
	free(msg);
	diags_release(&d);
	secrets_free(s);

	/* Missing files are fine. */
	T_REQUIRE(secrets_load(&s, src, "nowhere/secrets", "prod", &t, &d) == 0);
	T_INTEQ(secrets_count(s), 0);
	T_INTEQ(d.n, 0);
	secrets_free(s);

	/* A destination cannot climb out. */
	T_INTEQ(secrets_load(&s, src, NULL, "../x", &t, &d), PLUMB_ECONFIG);
	T_CHECK(s == NULL);
	diags_release(&d);

	source_free(src);
	tmp_cleanup(&tp);
}

T_TEST(outside_path_needs_trust)
{
	struct tmp tp;
	struct source *src = NULL;
	struct secrets *s = NULL;
	struct trust t;
	struct diags d = { 0 };
	char *msg, *abs;

	T_REQUIRE(tmp_setup(&tp) == 0);
	source_dir_new(&src, tp.repo);

	trust_fake(&t, 0);
	T_REQUIRE(secrets_load(&s, src, "../outside/s", NULL, &t, &d) == 0);
	T_INTEQ(secrets_count(s), 0);
	T_CHECK(secrets_skipped(s));
	T_INTEQ(t.turned_off, TRUST_OFF_OUTSIDE_PATH);
	msg = diags_to_string(&d);
	T_STREQ(msg, "warning: secrets_path '../outside/s' is outside the repository; its secrets "
		     "are not read (untrusted)\n");
	free(msg);
	diags_release(&d);
	secrets_free(s);

	trust_fake(&t, 1);
	T_REQUIRE(secrets_load(&s, src, "../outside/s", NULL, &t, &d) == 0);
	T_STREQ(secrets_get(s, "O", NULL), "outside");
	T_CHECK(!secrets_skipped(s));
	secrets_free(s);

	abs = xasprintf("%s/outside/s", tp.root);
	trust_fake(&t, 0);
	T_REQUIRE(secrets_load(&s, src, abs, NULL, &t, &d) == 0);
	T_INTEQ(secrets_count(s), 0);
	T_INTEQ(t.turned_off, TRUST_OFF_OUTSIDE_PATH);
	secrets_free(s);
	trust_fake(&t, 1);
	T_REQUIRE(secrets_load(&s, src, abs, NULL, &t, &d) == 0);
	T_STREQ(secrets_get(s, "O", NULL), "outside");
	secrets_free(s);
	free(abs);
	diags_release(&d);

	source_free(src);
	tmp_cleanup(&tp);
}

T_MAIN(T_CASE(dotenv_forms_trusted), T_CASE(missing_env_var_is_empty_with_warning),
       T_CASE(untrusted_turns_off_env_and_commands), T_CASE(kamal_secrets_not_run),
       T_CASE(failed_command_never_leaks), T_CASE(export_of_unset_is_an_error),
       T_CASE(file_order_and_destinations), T_CASE(outside_path_needs_trust))
