/* The local transport, output framing, and the read-only guard. */
#include "providers/transport.h"
#include "tests/unit/t.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static struct transport *open_local(int timeout_ms, size_t max_output)
{
	struct transport *t = NULL;

	if (prov_init() < 0 || transport_local_open(&t) < 0)
		return NULL;
	if (timeout_ms)
		t->cmd_timeout_ms = timeout_ms;
	if (max_output)
		t->max_output = max_output;
	return t;
}

/* Input reaches the command's stdin, never its command line; the guard refuses it. */
T_TEST(run_input_feeds_stdin)
{
	struct transport *t = open_local(0, 0), *ro = NULL;
	struct cmd_result r;
	struct prov_cmd c;
	static const char data[] = "SECRET_CANARY=x\n\001\000tail";

	T_REQUIRE(t);
	T_INTEQ(transport_run_input(t, "od -An -c | tr -s ' '; cat /proc/$$/cmdline", data,
				    sizeof(data) - 1, &r), 0);
	T_INTEQ(r.status, 0);
	T_CONTAINS(r.out.buf, "S E C R E T _ C A N A R Y");
	T_CONTAINS(r.out.buf, "\\0 t a i l");
	cmd_result_release(&r);
	/* commands start in the home directory, as over SSH */
	T_INTEQ(transport_run_input(t, "pwd", "", 0, &r), 0);
	T_CHECK(getenv("HOME") && strncmp(r.out.buf, getenv("HOME"), strlen(getenv("HOME"))) == 0);
	cmd_result_release(&r);
	/* empty input is EOF at once */
	T_INTEQ(transport_run_input(t, "wc -c", "", 0, &r), 0);
	T_CONTAINS(r.out.buf, "0");
	cmd_result_release(&r);
	prov_cmd_init(&c);
	prov_cmd_begin(&c, PROV_JOIN_SEQ);
	prov_cmd_args(&c, "wc", "-c", NULL);
	T_INTEQ(transport_run_cmd_input(t, &c, "abc", 3, &r), 0);
	T_CONTAINS(r.out.buf, "3");
	cmd_result_release(&r);
	T_INTEQ(transport_run_input(t, "cat", data, PROV_MAX_INPUT + 1, &r), PLUMB_ETOOBIG);
	cmd_result_release(&r);

	T_INTEQ(transport_readonly_wrap(&ro, t), 0);
	T_INTEQ(transport_run_cmd_input(ro, &c, "abc", 3, &r), PLUMB_EREFUSED);
	T_INTEQ(ro->stats.refused, 1);
	cmd_result_release(&r);
	prov_cmd_release(&c);
	transport_close(ro);
	transport_close(t);
}

T_TEST(exit_status_stdout_stderr)
{
	struct transport *t = open_local(0, 0);
	struct cmd_result r;

	T_REQUIRE(t);
	T_INTEQ(transport_run(t, "echo out; echo err >&2; exit 3", &r), 0);
	T_INTEQ(r.status, 3);
	T_STREQ(r.out.buf, "out\n");
	T_STREQ(r.err.buf, "err\n");
	cmd_result_release(&r);

	T_INTEQ(transport_run(t, "printf 'no newline'", &r), 0);
	T_INTEQ(r.status, 0);
	T_STREQ(r.out.buf, "no newline");
	T_STREQ(r.err.buf, "");
	cmd_result_release(&r);

	T_INTEQ(transport_run(t, "false", &r), 0);
	T_INTEQ(r.status, 1);
	cmd_result_release(&r);

	/* exit inside the command cannot skip the END marker (subshell). */
	T_INTEQ(transport_run(t, "exit 7", &r), 0);
	T_INTEQ(r.status, 7);
	cmd_result_release(&r);

	/* a trailing comment or & in a raw command does not swallow the framing */
	T_INTEQ(transport_run(t, "echo a # comment", &r), 0);
	T_STREQ(r.out.buf, "a\n");
	cmd_result_release(&r);

	/* binary output with NUL bytes survives exactly */
	T_INTEQ(transport_run(t, "printf 'a\\000b'", &r), 0);
	T_INTEQ(r.out.len, 3);
	T_CHECK(memcmp(r.out.buf, "a\0b", 3) == 0);
	cmd_result_release(&r);

	T_INTEQ(t->stats.commands, 6);
	transport_close(t);
}

T_TEST(killed_by_signal_has_no_status)
{
	struct transport *t = open_local(0, 0);
	struct cmd_result r;

	T_REQUIRE(t);
	/* The framing shell itself is killed: no END marker and no exit status. */
	T_INTEQ(transport_run(t, "kill -9 $PPID; sleep 1", &r), PLUMB_ENOSTATUS);
	T_INTEQ(r.status, -1);
	T_CONTAINS(transport_err(t)->msg, "without an exit status");
	cmd_result_release(&r);
	transport_close(t);
}

T_TEST(truncation)
{
	struct transport *t = open_local(0, 1000);
	struct cmd_result r;

	T_REQUIRE(t);
	T_INTEQ(transport_run(t, "head -c 100000 /dev/zero | tr '\\0' x", &r), PLUMB_ETRUNC);
	T_CHECK(r.out.len <= 1000);
	T_CONTAINS(transport_err(t)->msg, "exceeds 1000 bytes");
	cmd_result_release(&r);
	/* stderr is bounded too */
	T_INTEQ(transport_run(t, "head -c 100000 /dev/zero >&2", &r), PLUMB_ETRUNC);
	cmd_result_release(&r);
	/* exactly at the bound is fine */
	T_INTEQ(transport_run(t, "head -c 1000 /dev/zero | tr '\\0' y", &r), 0);
	T_INTEQ(r.out.len, 1000);
	cmd_result_release(&r);
	transport_close(t);
}

T_TEST(timeout)
{
	struct transport *t = open_local(1000, 0);
	struct cmd_result r;
	double t0 = prov_now_ms(), took;

	T_REQUIRE(t);
	T_INTEQ(transport_run(t, "echo started; sleep 5", &r), PLUMB_ETIMEOUT);
	took = prov_now_ms() - t0;
	T_CHECK(took >= 900 && took < 3000);
	T_STREQ(r.out.buf, "started\n");
	T_CONTAINS(transport_err(t)->msg, "timed out after 1000 ms");
	T_INTEQ(transport_err(t)->code, PLUMB_ETIMEOUT);
	cmd_result_release(&r);
	/* the transport is still usable, and its last error is forgotten */
	T_INTEQ(transport_run(t, "echo again", &r), 0);
	T_INTEQ(transport_err(t)->code, 0);
	T_STREQ(transport_err(t)->msg, "");
	T_STREQ(r.out.buf, "again\n");
	cmd_result_release(&r);
	transport_close(t);
}

T_TEST(framing_ignores_noise)
{
	const char *tok = "0123456789abcdef0123456789abcdef";
	struct sbuf raw, dst;
	int st;

	sbuf_init(&raw, 0);
	sbuf_init(&dst, 0);
	/* banner before, a fake END without digits inside, junk after */
	sbuf_addf(&raw, "Welcome to host!\nEND-%s 0\nBEGIN-%s\nline1\nEND-%s x\nline2\n\nEND-%s 42\nlogout noise\n",
		  tok, tok, tok, tok);
	T_INTEQ(prov_frame_parse(raw.buf, raw.len, tok, 1, &dst, &st), 0);
	T_INTEQ(st, 42);
	{
		char want[128];
		snprintf(want, sizeof(want), "line1\nEND-%s x\nline2\n", tok);
		T_STREQ(dst.buf, want);
	}
	sbuf_reset(&raw);
	sbuf_reset(&dst);
	sbuf_addf(&raw, "BEGIN-%s\npartial", tok);
	T_INTEQ(prov_frame_parse(raw.buf, raw.len, tok, 1, &dst, &st), PLUMB_ENOSTATUS);
	T_INTEQ(st, -1);
	T_STREQ(dst.buf, "partial");
	sbuf_release(&raw);
	sbuf_release(&dst);
}

T_TEST(framing_with_lookalike_output)
{
	struct transport *t = open_local(0, 0);
	struct cmd_result r;

	T_REQUIRE(t);
	/* The command printing what looks like markers (without the run's token). */
	T_INTEQ(transport_run(t, "echo BEGIN-x; echo 'END-x 0'; echo 'END-x 0' >&2; exit 4", &r), 0);
	T_INTEQ(r.status, 4);
	T_STREQ(r.out.buf, "BEGIN-x\nEND-x 0\n");
	T_STREQ(r.err.buf, "END-x 0\n");
	cmd_result_release(&r);
	transport_close(t);
}

/* ---- read-only guard ---- */

T_TEST(readonly_refuses_mutations)
{
	static const char *const refused[] = {
		"docker rm -f x", "docker run busybox", "rm -rf /", "docker ps; rm x",
		"docker ps && docker stop x", "docker exec app sh", "docker -H tcp://x ps",
		"docker image rm x", "docker network create kamal", "docker volume prune",
		"cat /etc/shadow", "cat .kamal/../../etc/shadow", "sha256sum /root/.ssh/id_rsa",
		"find .kamal -delete", "find .kamal -exec rm {} ;", "find / -name x",
		"find .kamal -fprint f", "hostname evil", "mkdir .kamal/lock-x", "touch x",
		"echo x > .kamal/f", "echo $(rm x)", "echo `rm x`", "sh -c 'rm x'",
		"kamal-proxy deploy x", "docker exec kamal-proxy kamal-proxy deploy x",
		"cat -A .kamal/x", "tee .kamal/x", "docker", "",
	};
	struct transport *t = open_local(0, 0), *ro = NULL;
	struct cmd_result r;
	char canary[64];
	struct stat st;

	T_REQUIRE(t);
	T_REQUIRE(transport_readonly_wrap(&ro, t) == 0);
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		int rc = transport_run(ro, refused[i], &r);
		if (rc != PLUMB_EREFUSED)
			T_FAIL_AT("not refused (%d): %s", rc, refused[i]);
		cmd_result_release(&r);
	}
	T_INTEQ(t->stats.commands, 0); /* nothing reached the host */
	T_CONTAINS(transport_err(ro)->msg, "read-only guard");
	T_INTEQ(transport_err(ro)->code, PLUMB_EREFUSED);

	/* a structured command with a mutating step is refused as a whole */
	snprintf(canary, sizeof(canary), "/tmp/plumb-ro-canary-%ld", (long)getpid());
	{
		struct prov_cmd c;
		prov_cmd_init(&c);
		prov_cmd_args(&c, "echo", "hi", NULL);
		prov_cmd_begin(&c, PROV_JOIN_SEQ);
		prov_cmd_args(&c, "touch", canary, NULL);
		T_INTEQ(transport_run_cmd(ro, &c, &r), PLUMB_EREFUSED);
		T_CONTAINS(transport_err(ro)->msg, "'touch' is not on the read-only allowlist");
		cmd_result_release(&r);
		prov_cmd_release(&c);
	}
	T_CHECK(stat(canary, &st) != 0);
	transport_close(ro);
	transport_close(t);
}

T_TEST(readonly_allows_observation)
{
	static const char *const allowed[] = {
		"docker ps -a --filter label=service=optimus --format '{{json .}}'",
		"docker inspect optimus-web-abc 2>/dev/null || true",
		"docker image inspect reg/optimus:v1 --format '{{.Id}}'",
		"docker version --format '{{.Server.Version}}'", "docker info",
		"docker container inspect x", "docker network inspect kamal",
		"docker exec kamal-proxy kamal-proxy list", "kamal-proxy list",
		"cat .kamal/apps/optimus/env/roles/web.env | sha256sum",
		"sha256sum .kamal/apps/optimus/env/roles/web.env",
		"base64 -w0 .kamal/x", "ls -la .kamal", "test -d .kamal/lock-optimus",
		"find .kamal/apps -maxdepth 3 -type f -name '*.env' -print",
		"printf '%s\\n' x", "echo ok", "id -u", "uname -a", "hostname", "true",
		"cat /root/.kamal/lock-optimus/details",
	};
	struct transport *t = open_local(0, 0), *ro = NULL;
	struct cmd_result r;
	struct prov_cmd c;
	char why[256];

	T_REQUIRE(t);
	for (size_t i = 0; i < ARRAY_SIZE(allowed); i++) {
		if (prov_cmd_parse_strict(&c, allowed[i]) != 0) {
			T_FAIL_AT("does not parse: %s", allowed[i]);
			continue;
		}
		if (prov_readonly_check(&c, why, sizeof(why)) != 0)
			T_FAIL_AT("refused: %s (%s)", allowed[i], why);
		prov_cmd_release(&c);
	}
	/* and it really runs through the guard */
	T_REQUIRE(transport_readonly_wrap(&ro, t) == 0);
	T_INTEQ(transport_run(ro, "echo 'it'\\''s'; uname -s", &r), 0);
	T_STREQ(r.out.buf, "it's\nLinux\n");
	T_INTEQ(r.status, 0);
	cmd_result_release(&r);
	prov_cmd_init(&c);
	prov_cmd_args(&c, "test", "-e", ".kamal/definitely-not-here", NULL);
	T_INTEQ(transport_run_cmd(ro, &c, &r), 0);
	T_INTEQ(r.status, 1);
	cmd_result_release(&r);
	prov_cmd_release(&c);
	T_INTEQ(ro->stats.commands, 2);
	transport_close(ro);
	transport_close(t);
}

/* ---- parallel runner ---- */

struct pool_ctx {
	pthread_mutex_t lock;
	int active, max_active;
};

static int pool_item(size_t i, void *arg)
{
	struct pool_ctx *p = arg;
	struct transport *t = NULL;
	struct cmd_result r;
	char cmd[64];
	int rc;

	pthread_mutex_lock(&p->lock);
	if (++p->active > p->max_active)
		p->max_active = p->active;
	pthread_mutex_unlock(&p->lock);
	/* each item owns its own transport for its whole run */
	transport_local_open(&t);
	snprintf(cmd, sizeof(cmd), "sleep 0.05; exit %zu", i % 3);
	rc = transport_run(t, cmd, &r);
	if (rc == 0)
		rc = r.status == 2 ? PLUMB_EUNREACHABLE : r.status; /* item i%3==2 "fails" */
	cmd_result_release(&r);
	transport_close(t);
	pthread_mutex_lock(&p->lock);
	p->active--;
	pthread_mutex_unlock(&p->lock);
	return rc;
}

T_TEST(pool_bounded_and_per_host_results)
{
	struct pool_ctx p = { .lock = PTHREAD_MUTEX_INITIALIZER };
	int results[20];
	double t0 = prov_now_ms(), took;

	memset(results, 0x7f, sizeof(results));
	T_INTEQ(prov_pool_run(20, 4, pool_item, &p, results), 0);
	took = prov_now_ms() - t0;
	T_INTEQ(p.max_active, 4);
	T_CHECK(took >= 5 * 50 * 0.9); /* 20 items / 4 at a time, 50 ms each */
	for (int i = 0; i < 20; i++) {
		int want = i % 3 == 2 ? PLUMB_EUNREACHABLE : i % 3;
		if (results[i] != want)
			T_FAIL_AT("item %d: %d, want %d", i, results[i], want);
	}
	T_INTEQ(prov_pool_run(0, 4, pool_item, &p, results), 0);
}

T_MAIN(T_CASE(run_input_feeds_stdin), T_CASE(exit_status_stdout_stderr), T_CASE(killed_by_signal_has_no_status),
       T_CASE(truncation), T_CASE(timeout), T_CASE(framing_ignores_noise),
       T_CASE(framing_with_lookalike_output), T_CASE(readonly_refuses_mutations),
       T_CASE(readonly_allows_observation), T_CASE(pool_bounded_and_per_host_results))
