#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "providers/run.h"
#include "state/erb.h"
#include "state/secrets.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

static const struct tu_var fake_env[] = {
	{ "APP_HOST", "app.example.com" },
	{ "EMPTY", "" },
	{ "CANARY", "s3cr3t-canary-value" },
	{ NULL, NULL },
};

static void trust_fake(struct trust *t, int trusted)
{
	trust_init(t, trusted);
	t->getenv_fn = tu_fake_getenv;
	t->getenv_ctx = (void *)fake_env;
	t->run_fn = prov_run_shell_fn;
}

/* Extracts `yml`, then expands the first marker-holding line "v: …" value. */
static int expand_one(const char *tagged, struct trust *t, char **out, struct diags *d)
{
	struct erb_set set = { 0 };
	char *text = NULL;
	size_t len;
	int rc;

	rc = erb_extract("deploy.yml", tagged, strlen(tagged), &text, &len, &set, d);
	if (rc == 0)
		rc = erb_expand(&set, text, "deploy.yml", "registry.password", t, NULL, out, d);
	free(text);
	erb_set_release(&set);
	return rc;
}

T_TEST(extract_positions_and_markers)
{
	const char *src = "service: x\n"
			  "image: <%= ENV[\"A\"] %>\n"
			  "  <%# a comment %>k: <%= 'v' -%>\n"
			  "after: <%% literal\n";
	struct erb_set set = { 0 };
	struct diags d = { 0 };
	char *out = NULL, *want = NULL;
	size_t len = 0;

	T_REQUIRE(erb_extract("deploy.yml", src, strlen(src), &out, &len, &set, &d) == 0);
	T_INTEQ(set.n, 3);
	T_INTEQ(set.v[0].line, 2);
	T_INTEQ(set.v[0].col, 8);
	T_STREQ(set.v[0].code, "ENV[\"A\"]");
	T_STREQ(set.v[0].text, "<%= ENV[\"A\"] %>");
	T_INTEQ(set.v[0].output, 1);
	T_INTEQ(set.v[1].line, 3);
	T_INTEQ(set.v[1].col, 3);
	T_INTEQ(set.v[1].comment, 1);
	T_STREQ(set.v[1].marker, "");
	T_INTEQ(set.v[2].line, 3);
	T_INTEQ(set.v[2].col, 22);
	T_STREQ(set.v[2].code, "'v'");
	for (size_t i = 0; i < set.n; i++)
		T_CHECK(strspn(set.v[i].marker, "abcdefghijklmnopqrstuvwxyz0123456789_") ==
			strlen(set.v[i].marker));
	T_CHECK(strncmp(set.v[0].marker, "plumberb", 8) == 0);
	T_CHECK(strcmp(set.v[0].marker, set.v[2].marker) != 0);
	/* The comment vanishes, -%> eats the newline, <%% is a literal <%. */
	want = xasprintf("service: x\nimage: %s\n  k: %safter: <%% literal\n", set.v[0].marker,
			 set.v[2].marker);
	T_STREQ(out, want);
	T_INTEQ(len, strlen(want));
	T_CHECK(erb_has_marker(out));
	T_CHECK(!erb_has_marker("plain text plumberb"));
	T_INTEQ(d.n, 0);
	free(want);
	free(out);
	erb_set_release(&set);
	diags_release(&d);
}

T_TEST(marker_avoids_text_collisions)
{
	/* The file already contains what the first salt would produce. */
	const char *base = "a: <%= 'x' %>\n";
	struct erb_set set = { 0 }, set2 = { 0 };
	struct diags d = { 0 };
	char *out = NULL, *out2 = NULL, *src2 = NULL, *prefix = NULL;

	T_REQUIRE(erb_extract("f", base, strlen(base), &out, NULL, &set, &d) == 0);
	prefix = xstrndup(set.v[0].marker, 16); /* plumberb + salt */
	src2 = xasprintf("%s# %sx0x\n", base, prefix);
	T_REQUIRE(erb_extract("f", src2, strlen(src2), &out2, NULL, &set2, &d) == 0);
	T_CHECK(strncmp(set2.v[0].marker, prefix, 16) != 0);
	free(out);
	free(out2);
	free(src2);
	free(prefix);
	erb_set_release(&set);
	erb_set_release(&set2);
	diags_release(&d);
}

/* Scalars of a flat YAML mapping, in order, as libyaml reads them. */
static void yaml_scalars(const char *text, struct strvec *sv)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int done = 0;

	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
	while (!done) {
		if (!yaml_parser_parse(&p, &ev))
			break;
		if (ev.type == YAML_SCALAR_EVENT)
			strvec_push(sv, (const char *)ev.data.scalar.value);
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
}

T_TEST(markers_survive_yaml_scalars)
{
	const char *src = "plain: <%= 'a' %>\n"
			  "dq: \"x-<%= 'b' %>-y\"\n"
			  "sq: 'p <%= 'c' %> q'\n"
			  "list: [<%= 'd' %>, z]\n"
			  "block: |\n  l1 <%= 'e' %>\n";
	struct erb_set set = { 0 };
	struct diags d = { 0 };
	struct strvec sv = { 0 };
	char *out = NULL, *val = NULL;
	struct trust t;
	const char *want[] = { "plain", "a", "dq", "x-b-y", "sq", "p c q", "list", "d", "z",
			       "block", "l1 e\n" };

	trust_fake(&t, 0);
	T_REQUIRE(erb_extract("deploy.yml", src, strlen(src), &out, NULL, &set, &d) == 0);
	yaml_scalars(out, &sv);
	T_REQUIRE(sv.n == ARRAY_SIZE(want));
	for (size_t i = 0; i < sv.n; i++) {
		T_REQUIRE(erb_expand(&set, sv.v[i], "deploy.yml", "k", &t, NULL, &val, &d) == 0);
		T_STREQ(val, want[i]);
		free(val);
	}
	T_INTEQ(t.turned_off, 0); /* literals need no trust */
	strvec_release(&sv);
	free(out);
	erb_set_release(&set);
	diags_release(&d);
}

struct form_case {
	const char *tag;
	const char *want;
};

T_TEST(forms_evaluated_trusted)
{
	static const struct form_case cases[] = {
		{ "<%= ENV[\"APP_HOST\"] %>", "app.example.com" },
		{ "<%= ENV['APP_HOST'] %>", "app.example.com" },
		{ "<%=ENV[ \"APP_HOST\" ]%>", "app.example.com" },
		{ "<%= ENV[\"NOPE\"] %>", "" },
		{ "<%= ENV.fetch(\"APP_HOST\") %>", "app.example.com" },
		{ "<%= ENV.fetch('APP_HOST') %>", "app.example.com" },
		{ "<%= ENV.fetch(\"NOPE\", \"fallback\") %>", "fallback" },
		{ "<%= ENV.fetch( 'NOPE' , 'fb' ) %>", "fb" },
		{ "<%= ENV.fetch(\"EMPTY\", \"fb\") %>", "" },
		{ "<%= \"dq \\\"x\\\" \\\\ a\\nb\" %>", "dq \"x\" \\ a\nb" },
		{ "<%= 'sq \\' \\\\ \\n' %>", "sq ' \\ \\n" },
		{ "<%= %x(echo hello) %>", "hello" },
		{ "<%= %x{printf 'a{b}c\\n\\n'} %>", "a{b}c\n" },
		{ "<%= %x[echo brackets] %>", "brackets" },
		{ "<%= `echo back` %>", "back" },
		{ "<%- ENV[\"APP_HOST\"] -%>", NULL }, /* non-output: refused at extract */
		{ "pre-<%= 'mid' %>-post", "pre-mid-post" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct trust t;
		struct diags d = { 0 };
		char *out = NULL;
		int rc;

		trust_fake(&t, 1);
		rc = expand_one(cases[i].tag, &t, &out, &d);
		if (cases[i].want) {
			if (rc != 0)
				T_FAIL_AT("case %zu %s failed", i, cases[i].tag);
			T_STREQ(out, cases[i].want);
		} else {
			T_INTEQ(rc, PLUMB_ECONFIG);
		}
		T_INTEQ(t.turned_off, 0);
		free(out);
		diags_release(&d);
	}
}

T_TEST(untrusted_env_and_commands_unavailable)
{
	char marker[] = "/tmp/plumb-erb-marker-XXXXXX";
	int fd = mkstemp(marker);
	char *tag, *out = NULL;
	struct trust t;
	struct diags d = { 0 };

	T_REQUIRE(fd >= 0);
	close(fd);
	unlink(marker);

	trust_fake(&t, 0);
	T_REQUIRE(expand_one("<%= ENV[\"APP_HOST\"] %>", &t, &out, &d) == 0);
	T_STREQ(out, PLUMB_UNAVAILABLE);
	T_INTEQ(t.turned_off, TRUST_OFF_ERB_ENV);
	free(out);

	trust_fake(&t, 0);
	T_REQUIRE(expand_one("<%= ENV.fetch(\"NOPE\", \"d\") %>", &t, &out, &d) == 0);
	T_STREQ(out, PLUMB_UNAVAILABLE);
	T_INTEQ(t.turned_off, TRUST_OFF_ERB_ENV);
	free(out);

	trust_fake(&t, 0);
	tag = xasprintf("<%%= %%x(touch %s) %%>", marker);
	T_REQUIRE(expand_one(tag, &t, &out, &d) == 0);
	T_STREQ(out, PLUMB_UNAVAILABLE);
	T_INTEQ(t.turned_off, TRUST_OFF_ERB_CMD);
	T_CHECK(access(marker, F_OK) != 0);
	free(out);
	free(tag);

	trust_fake(&t, 0);
	tag = xasprintf("<%%= `touch %s` %%>", marker);
	T_REQUIRE(expand_one(tag, &t, &out, &d) == 0);
	T_INTEQ(t.turned_off, TRUST_OFF_ERB_CMD);
	T_CHECK(access(marker, F_OK) != 0);
	free(out);
	free(tag);
	T_INTEQ(d.n, 0);

	/* The same command runs when trusted (so the check above can fail). */
	trust_fake(&t, 1);
	tag = xasprintf("<%%= %%x(touch %s) %%>", marker);
	T_REQUIRE(expand_one(tag, &t, &out, &d) == 0);
	T_CHECK(access(marker, F_OK) == 0);
	unlink(marker);
	free(out);
	free(tag);
	diags_release(&d);
}

struct refused_case {
	const char *src;
	const char *msg;
};

T_TEST(refused_forms_exact_messages)
{
	static const struct refused_case cases[] = {
		{ "arch: <%= Kamal::Utils.docker_arch == \"arm64\" ? \"a\" : \"b\" %>",
		  "deploy.yml:1:7: error: unsupported ERB `<%= Kamal::Utils.docker_arch == "
		  "\"arm64\" ? \"a\" : \"b\" %>` in registry.password: plumb evaluates only "
		  "ENV[\"X\"], ENV.fetch(\"X\"[, \"default\"]), a string literal, %x(...) or "
		  "backticks\n" },
		{ "x: <%= ENV.fetch(\"A\") { 'd' } %>",
		  "deploy.yml:1:4: error: unsupported ERB `<%= ENV.fetch(\"A\") { 'd' } %>` in "
		  "registry.password: plumb evaluates only ENV[\"X\"], ENV.fetch(\"X\"[, "
		  "\"default\"]), a string literal, %x(...) or backticks\n" },
		{ "x: <%= \"#{ENV['A']}\" %>", "deploy.yml:1:4: error: unsupported ERB" },
		{ "x: <%= ENV[\"A\"].upcase %>", "deploy.yml:1:4: error: unsupported ERB" },
		{ "x: <%= %x(echo #{1}) %>", "deploy.yml:1:4: error: unsupported ERB" },
		{ "x: <%= ENV[\"\"] %>", "deploy.yml:1:4: error: unsupported ERB" },
		{ "\n<% if true %>\nx: 1\n<% end %>\n",
		  "deploy.yml:2:1: error: ERB tag `<% if true %>` is not supported: plumb evaluates "
		  "only output tags (<%= ENV[\"X\"] %>, ENV.fetch, string literals, %x(...) or "
		  "backticks), not control flow or other Ruby\n" },
		{ "x: 1\ny: <%= ENV[\"A\"]\n",
		  "deploy.yml:2:4: error: unterminated ERB tag `<%= ENV[\"A\"]`: no closing %>\n" },
		{ "x: <%= ENV.fetch(\"NOPE\") %>",
		  "deploy.yml:1:4: error: `<%= ENV.fetch(\"NOPE\") %>` in registry.password: "
		  "environment variable NOPE is not set\n" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct trust t;
		struct diags d = { 0 };
		char *out = NULL, *msg;

		trust_fake(&t, 1);
		T_INTEQ(expand_one(cases[i].src, &t, &out, &d), PLUMB_ECONFIG);
		T_CHECK(out == NULL);
		msg = diags_to_string(&d);
		if (strchr(cases[i].msg, '\n'))
			T_STREQ(msg, cases[i].msg);
		else
			T_CONTAINS(msg, cases[i].msg);
		free(msg);
		diags_release(&d);
	}
}

T_TEST(failed_command_names_tag_not_output)
{
	struct trust t;
	struct diags d = { 0 };
	char *out = NULL, *msg;

	trust_fake(&t, 1);
	T_INTEQ(expand_one("pw: <%= %x(echo s3cr3t-canary-value; exit 3) %>", &t, &out, &d), PLUMB_ECONFIG);
	msg = diags_to_string(&d);
	T_STREQ(msg, "deploy.yml:1:5: error: `<%= %x(echo s3cr3t-canary-value; exit 3) %>` in "
		     "registry.password: the command failed (exit status 3)\n");
	free(msg);
	diags_release(&d);

	/* The output (not the command text) never appears. */
	T_INTEQ(expand_one("pw: <%= %x(printf '%s' \"$0\" | tr a-z A-Z; exit 4) %>", &t, &out, &d),
		PLUMB_ECONFIG);
	msg = diags_to_string(&d);
	T_NOT_CONTAINS(msg, "SH");
	T_CONTAINS(msg, "exit status 4");
	free(msg);
	diags_release(&d);
}

T_TEST(foreign_marker_text_left_alone)
{
	struct erb_set set = { 0 };
	struct trust t;
	struct diags d = { 0 };
	char *out = NULL;

	trust_fake(&t, 1);
	T_REQUIRE(erb_expand(&set, "plumberb0000abcdx0x and more", "f", "k", &t, NULL, &out, &d) ==
		  0);
	T_STREQ(out, "plumberb0000abcdx0x and more");
	free(out);
	diags_release(&d);
}

T_MAIN(T_CASE(extract_positions_and_markers), T_CASE(marker_avoids_text_collisions),
       T_CASE(markers_survive_yaml_scalars), T_CASE(forms_evaluated_trusted),
       T_CASE(untrusted_env_and_commands_unavailable), T_CASE(refused_forms_exact_messages),
       T_CASE(failed_command_names_tag_not_output), T_CASE(foreign_marker_text_left_alone))
