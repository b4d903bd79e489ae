/*
 * Hostile strings through the quoting function, on a real lab host over SSH:
 * every value comes back byte for byte through the host's shell, and a
 * payload that would leave a file behind if it ever ran never does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "providers/quote.h"
#include "providers/transport.h"
#include "state/util.h"
#include "tests/e2e/e2e.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x9e3779b97f4a7c15ull) >> 32);
}

static void hostile(struct sbuf *s, const char *canary)
{
	static const char *const pieces[] = {
		"'", "\"", "`", "$", "$(", ")", "\\", "\n", "\r", "\t", " ", ";", "|", "&", "<", ">",
		"*", "?", "[", "]", "{", "}", "~", "#", "!", "'\\''", "${IFS}", "$HOME", "%s", "-n",
		"é", "\xff", "\x01", "<<EOF\n", "$'\\x41'",
	};
	size_t n = 1 + rnd() % 20;

	for (size_t i = 0; i < n; i++) {
		uint32_t k = rnd() % 10;
		if (k < 6)
			sbuf_adds(s, pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))]);
		else if (k < 8)
			sbuf_addf(s, rnd() % 2 ? "$(touch %s)" : "`touch %s`", canary);
		else
			sbuf_addc(s, (char)(1 + rnd() % 255));
	}
}

int main(void)
{
	const char *host = getenv("LAB_HOST_1"), *key = getenv("LAB_SSH_KEY");
	const char *kh = getenv("LAB_KNOWN_HOSTS");
	const char *keys[1];
	struct transport_opts o = { 0 };
	struct transport *t = NULL;
	struct plumb_err err = { 0 };
	char canary[96];
	size_t mismatches = 0, total = 0;

	if (!host || !key || !kh) {
		fprintf(stderr, "t_quote_remote: needs the lab (LAB_HOST_1, LAB_SSH_KEY, LAB_KNOWN_HOSTS)\n");
		return 1;
	}
	keys[0] = key;
	o.host = host;
	o.user = "root";
	o.identity_files = keys;
	o.n_identity_files = 1;
	o.known_hosts = kh;
	snprintf(canary, sizeof(canary), "/tmp/plumb-remote-canary-%ld", (long)getpid());
	if (prov_init() < 0 || transport_ssh_open(&t, &o, &err) < 0) {
		fprintf(stderr, "t_quote_remote: cannot connect to %s: %s\n", host, err.msg);
		return 1;
	}
	/* batches of printf '%s\0' ARG... so one round trip checks many strings */
	for (int batch = 0; batch < 20; batch++) {
		struct strvec in = { 0 };
		struct sbuf cmd, s;
		struct cmd_result r;

		sbuf_init(&cmd, 0);
		sbuf_adds(&cmd, "printf '%s\\0'");
		for (int i = 0; i < 100; i++) {
			sbuf_init(&s, 0);
			hostile(&s, canary);
			sbuf_addc(&cmd, ' ');
			shell_quote(&cmd, s.buf);
			strvec_push_take(&in, sbuf_detach(&s));
			sbuf_release(&s);
		}
		if (transport_run(t, cmd.buf, &r) == 0 && r.status == 0) {
			const char *p = r.out.buf, *end = r.out.buf + r.out.len;
			for (size_t i = 0; i < in.n; i++, total++) {
				size_t len = strlen(in.v[i]);
				if (p + len >= end || memcmp(p, in.v[i], len) != 0 || p[len] != '\0') {
					mismatches++;
					break;
				}
				p += len + 1;
			}
		} else {
			mismatches++;
			fprintf(stderr, "batch %d failed: %s\n", batch, transport_err(t)->msg);
		}
		cmd_result_release(&r);
		sbuf_release(&cmd);
		strvec_release(&in);
	}
	CHECK(mismatches == 0 && total == 2000, "%zu of %zu hostile strings did not round-trip", mismatches, total);
	{
		struct cmd_result r;
		char *test = xasprintf("test -e %s", canary);
		int rc = transport_run(t, test, &r);
		CHECK(rc == 0 && r.status == 1, "a payload ran on the host: %s exists (or the check failed)", canary);
		cmd_result_release(&r);
		free(test);
	}
	CHECK(access(canary, F_OK) != 0, "a payload ran here: %s exists", canary);
	printf("  %zu hostile strings round-tripped through %s's shell in 20 round trips\n", total, host);
	transport_close(t);
	return e2e_finish("t_quote_remote");
}
