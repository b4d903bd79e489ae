/* Quoting: exact examples, NUL refusal, bounds, and a fuzz through a real /bin/sh. */
#include "providers/quote.h"
#include "providers/transport.h"
#include "tests/unit/t.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char *q(const char *s)
{
	struct sbuf sb;
	char *r;

	sbuf_init(&sb, 0);
	if (shell_quote(&sb, s) < 0)
		r = xstrdup("(error)");
	else
		r = xstrdup(sb.buf);
	sbuf_release(&sb);
	return r;
}

T_TEST(quote_examples)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "abc", "abc" },
		{ "", "''" },
		{ "a b", "'a b'" },
		{ "it's", "'it'\\''s'" },
		{ "'", "''\\'''" },
		{ "$(id)", "'$(id)'" },
		{ "`id`", "'`id`'" },
		{ "a\nb", "'a\nb'" },
		{ "FOO=bar", "'FOO=bar'" },
		{ "~", "'~'" },
		{ "/usr/bin:./x,y@z%1+2-3_", "/usr/bin:./x,y@z%1+2-3_" },
		{ "*", "'*'" },
		{ "#x", "'#x'" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = q(cases[i].in);
		T_STREQ(got, cases[i].want);
		free(got);
	}
}

T_TEST(quote_refuses_nul_and_respects_bound)
{
	struct sbuf sb;

	sbuf_init(&sb, 8);
	sbuf_adds(&sb, "x");
	T_INTEQ(shell_quote_mem(&sb, "a\0b", 3), PLUMB_EINVAL);
	T_STREQ(sb.buf, "x");
	T_INTEQ(shell_quote(&sb, "a long value that does not fit"), -1);
	T_STREQ(sb.buf, "x");
	T_INTEQ(shell_quote(&sb, "it's"), -1); /* 'it'\''s' is 10 bytes */
	T_STREQ(sb.buf, "x");
	T_INTEQ(shell_quote(&sb, "ok"), 0);
	T_STREQ(sb.buf, "xok");
	sbuf_release(&sb);
}

T_TEST(join_and_cmd_render)
{
	const char *argv[] = { "docker", "ps", "--filter", "label=service=x y", "--format",
			       "{{json .}}" };
	struct sbuf sb;
	struct prov_cmd c;

	sbuf_init(&sb, 0);
	T_INTEQ(shell_join_argv(&sb, argv, ARRAY_SIZE(argv)), 0);
	T_STREQ(sb.buf, "docker ps --filter 'label=service=x y' --format '{{json .}}'");
	sbuf_reset(&sb);

	prov_cmd_init(&c);
	prov_cmd_args(&c, "docker", "inspect", "a'b", NULL);
	prov_cmd_quiet(&c);
	prov_cmd_begin(&c, PROV_JOIN_OR);
	prov_cmd_args(&c, "true", NULL);
	prov_cmd_begin(&c, PROV_JOIN_SEQ);
	prov_cmd_args(&c, "cat", ".kamal/x", NULL);
	prov_cmd_begin(&c, PROV_JOIN_PIPE);
	prov_cmd_args(&c, "sha256sum", NULL);
	T_INTEQ(prov_cmd_render(&c, &sb), 0);
	T_STREQ(sb.buf,
		"docker inspect 'a'\\''b' 2>/dev/null || true; cat .kamal/x | sha256sum");
	prov_cmd_release(&c);

	prov_cmd_init(&c);
	prov_cmd_args(&c, "echo", NULL);
	prov_cmd_arg_mem(&c, "a\0b", 3);
	sbuf_reset(&sb);
	T_INTEQ(prov_cmd_render(&c, &sb), PLUMB_EINVAL);
	T_STREQ(sb.buf, "");
	prov_cmd_release(&c);
	sbuf_release(&sb);
}

T_TEST(parse_strict_accepts_only_plain_lists)
{
	static const char *const ok[] = {
		"docker ps", "docker inspect 'a'\\''b' 2>/dev/null || true",
		"cat .kamal/x | sha256sum; echo done", "printf '%s\\n' x && id",
		"echo ''",
	};
	static const char *const bad[] = {
		"", "echo $(id)", "echo `id`", "echo \"x\"", "echo x > f", "echo x\nrm f",
		"echo x &", "echo a;", "; echo", "echo ~", "echo *", "echo 'open",
		"echo a#b", "(echo)", "{ echo; }", "FOO=1 echo", "echo x 2>f", "echo x>&2",
		"echo \\n", "echo ${x}", "echo a&&", "a;;b", "a&b", "a|||b",
	};
	struct prov_cmd c;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		int rc = prov_cmd_parse_strict(&c, ok[i]);
		if (rc != 0)
			T_FAIL_AT("refused a plain command: %s", ok[i]);
		else
			prov_cmd_release(&c);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int rc = prov_cmd_parse_strict(&c, bad[i]);
		if (rc != PLUMB_EREFUSED) {
			T_FAIL_AT("accepted: %s", bad[i]);
			if (rc == 0)
				prov_cmd_release(&c);
		}
	}
	T_INTEQ(prov_cmd_parse_strict(&c, "docker inspect 'a'\\''b' 2>/dev/null || true"), 0);
	T_INTEQ(c.n, 2);
	T_INTEQ(c.v[0].argv.n, 3);
	T_STREQ(c.v[0].argv.v[2], "a'b");
	T_INTEQ(c.v[0].quiet, 1);
	T_INTEQ(c.v[1].join, PROV_JOIN_OR);
	prov_cmd_release(&c);
}

/* ---- fuzz ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static char canary[128];

static void hostile(struct sbuf *s)
{
	static const char *const pieces[] = {
		"'", "\"", "`", "$", "$(", ")", "\\", "\n", "\r", "\t", " ", ";", "|", "&",
		"&&", "<", ">", ">>", "*", "?", "[", "]", "{", "}", "~", "#", "!", "=",
		"%s", "%n", "%%", "-n", "-e", "--", "'\\''", "\\'", "${IFS}", "$HOME", "$0",
		"é", "日本語", "\xf0\x9f\x92\xa5", "\xff\xfe", "\x01", "\x7f", "a", "Z", "0",
		"$'\\x41'", "\\x41", "\\0", "EOF", "<<EOF\n",
	};
	size_t n = rnd() % 24;

	if (rnd() % 50 == 0)
		n = 200 + rnd() % 800; /* long */
	for (size_t i = 0; i < n; i++) {
		uint32_t k = rnd() % 10;

		if (k < 6) {
			sbuf_adds(s, pieces[rnd() % ARRAY_SIZE(pieces)]);
		} else if (k < 8) {
			/* a payload that would leave a trace if it ever ran */
			if (rnd() % 2)
				sbuf_addf(s, "$(touch %s)", canary);
			else
				sbuf_addf(s, "`touch %s`", canary);
		} else {
			sbuf_addc(s, (char)(1 + rnd() % 255)); /* any byte but NUL */
		}
	}
}

T_TEST(quote_fuzz_through_sh)
{
	enum { N = 10000, BATCH_BYTES = 48 * 1024 };
	struct transport *t = NULL;
	struct strvec inputs = { 0 };
	struct sbuf cmd, s;
	size_t done = 0, batches = 0, mismatches = 0;
	struct stat st;

	snprintf(canary, sizeof(canary), "/tmp/plumb-quote-canary-%ld", (long)getpid());
	unlink(canary);
	T_REQUIRE(prov_init() == 0);
	T_REQUIRE(transport_local_open(&t) == 0);
	sbuf_init(&cmd, 0);
	sbuf_init(&s, 0);
	while (done < N) {
		struct cmd_result r;
		size_t from = inputs.n, pos = 0;
		int rc;

		/* One sh runs printf '%s\0' over a batch of quoted strings. */
		sbuf_reset(&cmd);
		sbuf_adds(&cmd, "printf '%s\\0'");
		while (done < N && cmd.len < BATCH_BYTES) {
			sbuf_reset(&s);
			hostile(&s);
			strvec_push(&inputs, s.buf);
			sbuf_addc(&cmd, ' ');
			T_REQUIRE(shell_quote_mem(&cmd, s.buf, s.len) == 0);
			done++;
		}
		rc = transport_run(t, cmd.buf, &r);
		batches++;
		if (rc != 0 || r.status != 0) {
			T_FAIL_AT("batch %zu: rc %d status %d: %s", batches, rc, r.status,
				  transport_err(t)->msg);
			cmd_result_release(&r);
			break;
		}
		for (size_t i = from; i < inputs.n; i++) {
			size_t len = strlen(inputs.v[i]);

			if (pos + len + 1 > r.out.len || memcmp(r.out.buf + pos, inputs.v[i], len) != 0 ||
			    r.out.buf[pos + len] != '\0') {
				if (mismatches++ < 3)
					T_FAIL_AT("string %zu did not round-trip (len %zu)", i, len);
				break;
			}
			pos += len + 1;
		}
		if (pos != r.out.len && mismatches == 0)
			T_FAIL_AT("batch %zu: %zu extra output bytes", batches, r.out.len - pos);
		cmd_result_release(&r);
	}
	T_INTEQ(done, N);
	T_INTEQ(mismatches, 0);
	T_CHECK(stat(canary, &st) != 0); /* no payload ever ran */
	unlink(canary);
	sbuf_release(&cmd);
	sbuf_release(&s);
	strvec_release(&inputs);
	transport_close(t);
}

/* Every rendered structured command parses back strictly to the same argv. */
T_TEST(render_parse_roundtrip)
{
	struct sbuf s, line;

	sbuf_init(&s, 0);
	sbuf_init(&line, 0);
	for (int iter = 0; iter < 2000; iter++) {
		struct prov_cmd c, back;
		size_t ncmd = 1 + rnd() % 3;

		prov_cmd_init(&c);
		for (size_t k = 0; k < ncmd; k++) {
			size_t nargs = 1 + rnd() % 4;

			prov_cmd_begin(&c, (enum prov_join)(rnd() % 4));
			for (size_t a = 0; a < nargs; a++) {
				sbuf_reset(&s);
				hostile(&s);
				prov_cmd_arg_mem(&c, s.buf, s.len);
			}
			if (rnd() % 3 == 0)
				prov_cmd_quiet(&c);
		}
		sbuf_reset(&line);
		T_REQUIRE(prov_cmd_render(&c, &line) == 0);
		if (prov_cmd_parse_strict(&back, line.buf) != 0) {
			T_FAIL_AT("rendered command refused by the strict parser: %s", line.buf);
			prov_cmd_release(&c);
			break;
		}
		T_INTEQ(back.n, c.n);
		for (size_t k = 0; k < c.n && k < back.n; k++) {
			T_INTEQ(back.v[k].argv.n, c.v[k].argv.n);
			T_INTEQ(back.v[k].quiet, c.v[k].quiet);
			if (k)
				T_INTEQ(back.v[k].join, c.v[k].join);
			for (size_t a = 0; a < c.v[k].argv.n && a < back.v[k].argv.n; a++)
				T_STREQ(back.v[k].argv.v[a], c.v[k].argv.v[a]);
		}
		prov_cmd_release(&back);
		prov_cmd_release(&c);
		if (t_failed_now)
			break;
	}
	sbuf_release(&s);
	sbuf_release(&line);
}

T_MAIN(T_CASE(quote_examples), T_CASE(quote_refuses_nul_and_respects_bound),
       T_CASE(join_and_cmd_render), T_CASE(parse_strict_accepts_only_plain_lists),
       T_CASE(quote_fuzz_through_sh), T_CASE(render_parse_roundtrip))
