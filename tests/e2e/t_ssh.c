/*
 * End-to-end: the SSH transport against the lab's real sshd hosts.
 * Reads the LAB_* environment (tests/e2e/run.sh exports lab.env). Prints
 * "t_ssh: N passed, N failed" and exits non-zero on any failure.
 */
#include "providers/fleet.h"
#include "providers/transport.h"
#include "state/hash.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *key_files[1];

/* Options for lab host i (1-based), strict, key from LAB_SSH_KEY. */
static struct transport_opts lab_opts(int i)
{
	struct transport_opts o = { 0 };
	const char *port = tu_env("LAB_SSH_PORT");

	key_files[0] = tu_env("LAB_SSH_KEY");
	o.host = tu_lab_host(i);
	o.port = port ? atoi(port) : 22;
	o.user = tu_env("LAB_SSH_USER") ? tu_env("LAB_SSH_USER") : "root";
	o.identity_files = key_files;
	o.n_identity_files = 1;
	o.known_hosts = tu_env("LAB_KNOWN_HOSTS");
	o.connect_timeout_ms = 5000;
	o.cmd_timeout_ms = 20000;
	return o;
}

/* Runs a shell snippet with tests/lab/lib.sh loaded; returns its exit status or -1. */
static int lab_sh(const char *fmt, int n)
{
	char cmd[512];
	int rc;

	if (access("tests/lab/lib.sh", R_OK) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "bash -c '. tests/lab/lib.sh && %s %d' >/dev/null 2>&1", fmt, n);
	rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static char *tmpdir;

/* rmdir, not rm -rf: the tests remove what they make, so it is empty by now. */
static void remove_tmpdir(void)
{
	if (tmpdir)
		rmdir(tmpdir);
	free(tmpdir);
}

static char *tmp_path(const char *name)
{
	if (!tmpdir) {
		tmpdir = tu_tmpdir("t_ssh");
		if (!tmpdir)
			abort();
		atexit(remove_tmpdir);
	}
	return xasprintf("%s/%s", tmpdir, name);
}

T_TEST(strict_host_key_ok)
{
	struct transport_opts o = lab_opts(1);
	struct transport *t = NULL;
	struct cmd_result r;
	struct plumb_err err = { 0 };

	T_REQUIRE(o.host && o.known_hosts && o.identity_files[0]);
	T_INTEQ(transport_ssh_open(&t, &o, &err), 0);
	if (!t) {
		T_FAIL_AT("open: %s", err.msg);
		return;
	}
	T_INTEQ(transport_run(t, "id -u; hostname -I", &r), 0);
	T_INTEQ(r.status, 0);
	T_CONTAINS(r.out.buf, "0\n");
	T_CONTAINS(r.out.buf, o.host);
	cmd_result_release(&r);
	printf("  connect to host 1: %.1f ms\n", t->stats.connect_ms);
	transport_close(t);
}

T_TEST(empty_known_hosts_fails)
{
	struct transport_opts o = lab_opts(1);
	struct transport *t = NULL;
	struct plumb_err err = { 0 };
	char *kh = tmp_path("empty_known_hosts");
	FILE *f = fopen(kh, "w");

	T_REQUIRE(f);
	fclose(f);
	o.known_hosts = kh;
	T_INTEQ(transport_ssh_open(&t, &o, &err), PLUMB_EHOSTKEY);
	T_CHECK(t == NULL);
	T_INTEQ(err.code, PLUMB_EHOSTKEY);
	T_CONTAINS(err.msg, "is not in known_hosts");
	T_CONTAINS(err.msg, "SHA256:");
	printf("  message: %s\n", err.msg);
	/* a missing file is the same refusal */
	o.known_hosts = "/nonexistent/known_hosts";
	T_INTEQ(transport_ssh_open(&t, &o, &err), PLUMB_EHOSTKEY);
	/* and accepting new keys explicitly records the key, then connects */
	o.known_hosts = kh;
	o.accept_new_host_keys = 1;
	T_INTEQ(transport_ssh_open(&t, &o, &err), 0);
	transport_close(t);
	{
		struct stat st;
		T_CHECK(stat(kh, &st) == 0 && st.st_size > 0);
	}
	unlink(kh);
	free(kh);
}

T_TEST(changed_host_key_fails)
{
	struct transport_opts o = lab_opts(1);
	struct transport *t = NULL;
	struct plumb_err err = { 0 };
	char line[4096], *kh = tmp_path("swapped_known_hosts");
	FILE *in, *out;
	int wrote = 0;

	T_REQUIRE(tu_lab_n() >= 2);
	/* host 1's address with host 2's key */
	in = fopen(o.known_hosts, "r");
	out = fopen(kh, "w");
	T_REQUIRE(in && out);
	while (fgets(line, sizeof(line), in)) {
		size_t hl = strlen(tu_lab_host(2));
		if (strncmp(line, tu_lab_host(2), hl) == 0 && line[hl] == ' ') {
			fprintf(out, "%s%s", tu_lab_host(1), line + hl);
			wrote++;
		}
	}
	fclose(in);
	fclose(out);
	T_REQUIRE(wrote > 0);
	o.known_hosts = kh;
	o.accept_new_host_keys = 1; /* a changed key is refused even then */
	T_INTEQ(transport_ssh_open(&t, &o, &err), PLUMB_EHOSTKEY);
	T_CONTAINS(err.msg, "CHANGED");
	unlink(kh);
	free(kh);
}

T_TEST(key_auth)
{
	struct transport_opts o = lab_opts(1);
	struct transport *t = NULL;
	struct cmd_result r;
	struct plumb_err err = { 0 };
	char *pem = NULL, *other = tmp_path("other_key"), cmd[256];
	size_t len;
	const char *none[1] = { 0 };

	/* key_data (the key's text) instead of a file */
	T_REQUIRE(util_read_file(o.identity_files[0], 64 * 1024, &pem, &len) == 0);
	o.identity_files = none;
	o.n_identity_files = 0;
	o.key_data = pem;
	T_INTEQ(transport_ssh_open(&t, &o, &err), 0);
	if (t) {
		T_INTEQ(transport_run(t, "true", &r), 0);
		cmd_result_release(&r);
		transport_close(t);
	}
	/* an unknown key is refused, and the message holds no key material */
	snprintf(cmd, sizeof(cmd), "ssh-keygen -q -t ed25519 -N '' -f %s >/dev/null", other);
	T_REQUIRE(system(cmd) == 0);
	util_free_secret(pem);
	pem = NULL;
	T_REQUIRE(util_read_file(other, 64 * 1024, &pem, &len) == 0);
	o.key_data = pem;
	T_INTEQ(transport_ssh_open(&t, &o, &err), PLUMB_EAUTH);
	T_INTEQ(err.code, PLUMB_EAUTH);
	T_CONTAINS(err.msg, "no key was accepted");
	T_NOT_CONTAINS(err.msg, "PRIVATE KEY");
	T_NOT_CONTAINS(err.msg, "AAAA");
	/* no keys at all */
	o.key_data = NULL;
	T_INTEQ(transport_ssh_open(&t, &o, &err), PLUMB_EAUTH);
	util_free_secret(pem);
	unlink(other);
	snprintf(cmd, sizeof(cmd), "%s.pub", other);
	unlink(cmd);
	free(other);
}

/* ---- parallel ---- */

struct fleet {
	int n;
	char out[16][128];
	char err[16][PLUMB_ERR_MSG_MAX];
	double connect_ms[16];
	unsigned long connects[16];
};

static int docker_version_on(size_t i, void *ctx)
{
	struct fleet *f = ctx;
	struct transport_opts o = lab_opts((int)i + 1);
	struct transport *t = NULL, *ro = NULL;
	struct cmd_result r;
	struct prov_cmd c;
	struct plumb_err e = { 0 };
	int rc;

	rc = transport_ssh_open(&t, &o, &e);
	if (rc < 0) {
		snprintf(f->err[i], sizeof(f->err[i]), "%s", e.msg);
		return e.code;
	}
	f->connect_ms[i] = t->stats.connect_ms;
	transport_readonly_wrap(&ro, t);
	prov_cmd_init(&c);
	prov_cmd_args(&c, "docker", "version", "--format", "{{.Server.Version}}", NULL);
	rc = transport_run_cmd(ro, &c, &r);
	prov_cmd_release(&c);
	if (rc == 0 && r.status != 0)
		rc = PLUMB_ERROR;
	if (rc == 0)
		snprintf(f->out[i], sizeof(f->out[i]), "%s", r.out.buf);
	else
		snprintf(f->err[i], sizeof(f->err[i]), "%.700s (stderr: %.200s)",
			 transport_err(ro)->msg, r.err.buf);
	cmd_result_release(&r);
	f->connects[i] = t->stats.connects;
	transport_close(ro);
	transport_close(t);
	return rc;
}

T_TEST(docker_version_everywhere_in_parallel)
{
	struct fleet f = { 0 };
	int results[16];
	size_t n = (size_t)tu_lab_n();
	double t0 = prov_now_ms();

	T_REQUIRE(n >= 1 && n <= 16);
	T_INTEQ(prov_pool_run(n, 0, docker_version_on, &f, results), 0);
	printf("  docker version on %zu hosts in parallel: %.1f ms\n", n, prov_now_ms() - t0);
	for (size_t i = 0; i < n; i++) {
		if (results[i] != 0)
			T_FAIL_AT("host %zu: %d %s", i + 1, results[i], f.err[i]);
		T_CHECK(strlen(f.out[i]) > 2);
		T_INTEQ(f.connects[i], 1);
		printf("  host %zu: docker %s (connect %.1f ms)\n", i + 1, strtok(f.out[i], "\n"),
		       f.connect_ms[i]);
	}
}

/* Counts "Accepted publickey" lines in host i's sshd log (-1 if unreadable). */
static int sshd_accepts(int i)
{
	char path[512], line[1024];
	const char *dir = tu_env("LAB_DIR");
	FILE *f;
	int n = 0;

	if (!dir)
		return -1;
	snprintf(path, sizeof(path), "%s/h%d/sshd.log", dir, i);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "Accepted publickey"))
			n++;
	fclose(f);
	return n;
}

T_TEST(session_reuse_and_round_trips)
{
	struct transport_opts o = lab_opts(1);
	struct transport *t = NULL;
	struct cmd_result r;
	struct plumb_err err = { 0 };
	int before = sshd_accepts(1), after;
	double t0;
	enum { N = 20 };

	T_INTEQ(transport_ssh_open(&t, &o, &err), 0);
	T_REQUIRE(t);
	t0 = prov_now_ms();
	for (int i = 0; i < N; i++) {
		T_INTEQ(transport_run(t, "true", &r), 0);
		cmd_result_release(&r);
	}
	printf("  %d commands on one session: %.2f ms per round trip (true)\n", N,
	       (prov_now_ms() - t0) / N);
	t0 = prov_now_ms();
	for (int i = 0; i < 5; i++) {
		T_INTEQ(transport_run(t, "docker ps -q", &r), 0);
		cmd_result_release(&r);
	}
	printf("  docker ps: %.2f ms per round trip\n", (prov_now_ms() - t0) / 5);
	T_INTEQ(t->stats.commands, N + 5);
	T_INTEQ(t->stats.connects, 1);
	after = sshd_accepts(1);
	if (before >= 0 && after >= 0) {
		printf("  sshd accepted %d connection(s) for %d commands\n", after - before, N + 5);
		T_INTEQ(after - before, 1);
	} else {
		printf("  (sshd log not readable; connection count from the transport only)\n");
	}
	transport_close(t);
}

T_TEST(timeout_and_truncation_keep_the_session)
{
	struct transport_opts o = lab_opts(1);
	struct transport *t = NULL;
	struct cmd_result r;
	struct plumb_err err = { 0 };

	o.cmd_timeout_ms = 1000;
	o.max_output = 4096;
	T_INTEQ(transport_ssh_open(&t, &o, &err), 0);
	T_REQUIRE(t);
	T_INTEQ(transport_run(t, "sleep 5", &r), PLUMB_ETIMEOUT);
	T_CHECK(r.elapsed_ms < 2500);
	cmd_result_release(&r);
	T_INTEQ(transport_run(t, "head -c 100000 /dev/zero", &r), PLUMB_ETRUNC);
	T_CHECK(r.out.len <= 4096);
	cmd_result_release(&r);
	T_INTEQ(transport_run(t, "echo still here; exit 5", &r), 0);
	T_INTEQ(r.status, 5);
	T_STREQ(r.out.buf, "still here\n");
	cmd_result_release(&r);
	T_INTEQ(transport_run(t, "kill -9 $$", &r), PLUMB_ENOSTATUS);
	cmd_result_release(&r);
	transport_close(t);
}

/* Input reaches the command's stdin over the channel (large enough to fill
 * the SSH window several times), and never the host's process list. */
T_TEST(input_reaches_stdin_not_argv)
{
	struct transport_opts o = lab_opts(1);
	struct transport *t = NULL;
	struct cmd_result r;
	struct plumb_err err = { 0 };
	size_t n = 3u << 20;
	char *big = malloc(n);

	T_REQUIRE(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	memcpy(big, "STDIN_CANARY_7f3a", 17);
	T_INTEQ(transport_ssh_open(&t, &o, &err), 0);
	T_REQUIRE(t);
	T_INTEQ(transport_run_input(t, "sha256sum; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 'STDIN_CANARY_[7]f3a'", big, n, &r), 0);
	{
		char hex[HASH_HEX_LEN + 1];
		hash_sha256_hex(big, n, hex);
		T_CONTAINS(r.out.buf, hex);
	}
	/* no process on the host has it in its command line (the pattern does not match itself) */
	T_CONTAINS(r.out.buf, "-\n0\n");
	cmd_result_release(&r);
	T_INTEQ(transport_run_input(t, "cat", "", 0, &r), 0);
	T_INTEQ(r.out.len, 0);
	cmd_result_release(&r);
	transport_close(t);
	free(big);
}

/* A host whose shell startup file prints on both streams. */
T_TEST(framing_against_a_noisy_bashrc)
{
	struct transport_opts o = lab_opts(1);
	struct transport *t = NULL;
	struct cmd_result r;
	struct plumb_err err = { 0 };
	char path[512];
	const char *dir = tu_env("LAB_DIR");
	struct stat st;
	FILE *f;

	T_REQUIRE(dir);
	snprintf(path, sizeof(path), "%s/h1/home/.bashrc", dir);
	if (stat(path, &st) == 0) {
		T_SKIP("host 1 already has a .bashrc (%s); the test would replace it", path);
	}
	f = fopen(path, "w");
	T_REQUIRE(f != NULL); /* the lab's host homes are ours to write */
	fputs("echo 'Welcome to host 1'; echo 'END-0 0'; echo 'startup warning' >&2\n", f);
	fclose(f);
	T_INTEQ(transport_ssh_open(&t, &o, &err), 0);
	if (t) {
		T_INTEQ(transport_run(t, "echo payload; echo oops >&2; exit 2", &r), 0);
		T_INTEQ(r.status, 2);
		T_STREQ(r.out.buf, "payload\n");
		T_STREQ(r.err.buf, "oops\n");
		cmd_result_release(&r);
		transport_close(t);
	}
	unlink(path);
}

T_TEST(through_the_relay)
{
	struct transport_opts o = lab_opts(1);
	struct transport *t = NULL;
	struct cmd_result r;
	struct plumb_err err = { 0 };
	double t0;

	o.connect_to = tu_env("LAB_RELAY_1");
	T_REQUIRE(o.connect_to);
	T_INTEQ(transport_ssh_open(&t, &o, &err), 0);
	if (!t) {
		T_FAIL_AT("open via relay: %s", err.msg);
		return;
	}
	t0 = prov_now_ms();
	for (int i = 0; i < 5; i++) {
		T_INTEQ(transport_run(t, "hostname -I", &r), 0);
		T_CONTAINS(r.out.buf, o.host);
		cmd_result_release(&r);
	}
	printf("  via relay %s (LAB_DELAY_MS=%s): connect %.1f ms, %.2f ms per command\n",
	       o.connect_to, tu_env("LAB_DELAY_MS") ? tu_env("LAB_DELAY_MS") : "0", t->stats.connect_ms,
	       (prov_now_ms() - t0) / 5);
	transport_close(t);
}

T_TEST(jump_host)
{
	struct transport_opts o;
	struct transport *t = NULL;
	struct cmd_result r;
	struct plumb_err err = { 0 };
	char jump[128];
	double t0;

	T_REQUIRE(tu_lab_n() >= 2);
	o = lab_opts(2);
	snprintf(jump, sizeof(jump), "%s@%s:%d", o.user, tu_lab_host(1), o.port);
	o.jump = jump;
	T_INTEQ(transport_ssh_open(&t, &o, &err), 0);
	if (!t) {
		T_FAIL_AT("open via jump: %s", err.msg);
		return;
	}
	T_INTEQ(t->stats.connects, 2);
	t0 = prov_now_ms();
	for (int i = 0; i < 5; i++) {
		T_INTEQ(transport_run(t, "hostname -I; docker version --format '{{.Server.Version}}'", &r), 0);
		T_CONTAINS(r.out.buf, tu_lab_host(2));
		T_NOT_CONTAINS(r.out.buf, tu_lab_host(1));
		T_INTEQ(r.status, 0);
		cmd_result_release(&r);
	}
	printf("  via jump host 1 -> host 2: connect %.1f ms, %.2f ms per command\n",
	       t->stats.connect_ms, (prov_now_ms() - t0) / 5);
	transport_close(t);
	/* a jump to an address nothing listens on is unreachable, not a hang */
	o.host = "127.0.0.1";
	o.port = 1;
	T_INTEQ(transport_ssh_open(&t, &o, &err), PLUMB_EUNREACHABLE);
	T_INTEQ(err.code, PLUMB_EUNREACHABLE);
	T_CONTAINS(err.msg, "jump host");
	T_CHECK(t == NULL);
}

T_TEST(one_host_down_others_fine)
{
	struct fleet f = { 0 };
	int results[16], n = tu_lab_n();

	T_REQUIRE(n >= 2 && n <= 16);
	if (lab_sh("lab_stop_sshd", n) != 0) {
		T_SKIP("the lab cannot stop sshd (tests/lab/lib.sh lab_stop_sshd)");
	}
	T_INTEQ(prov_pool_run((size_t)n, 0, docker_version_on, &f, results), 0);
	for (int i = 0; i < n; i++) {
		if (i == n - 1) {
			T_INTEQ(results[i], PLUMB_EUNREACHABLE);
			T_CONTAINS(f.err[i], "cannot connect");
			printf("  host %d: %s\n", i + 1, f.err[i]);
		} else {
			if (results[i] != 0)
				T_FAIL_AT("host %d: %s", i + 1, f.err[i]);
		}
	}
	T_INTEQ(lab_sh("lab_start_sshd", n), 0);
}

/* A fleet handle over every lab host: observing twice reuses each session
 * (one connect per host over both cycles), and a read-only handle never
 * yields a transport that may mutate. */
T_TEST(fleet_sessions_outlive_observation)
{
	const char *hosts[16], *n_env = tu_env("LAB_N"), *port = tu_env("LAB_SSH_PORT");
	int n = n_env ? atoi(n_env) : 0;
	struct fleet_opts o = { 0 };
	struct fleet *fl = NULL;
	struct obs_fleet *a = NULL, *b = NULL;
	struct docker_obs_query q = { 0 };
	struct transport *t = NULL;
	struct plumb_err err = { 0 };

	T_REQUIRE(n > 0 && n <= 16);
	for (int i = 0; i < n; i++)
		hosts[i] = tu_lab_host(i + 1);
	key_files[0] = tu_env("LAB_SSH_KEY");
	o.hosts = hosts;
	o.nhosts = (size_t)n;
	o.user = tu_env("LAB_SSH_USER");
	o.port = port ? atoi(port) : 22;
	o.keys = key_files;
	o.nkeys = 1;
	o.known_hosts = tu_env("LAB_KNOWN_HOSTS");
	q.service = "optimus";
	q.destination = "";
	fleet_open(&fl, &o, FLEET_READ_ONLY);
	T_INTEQ(fleet_observe(fl, &a, &q, 0, &err), 0);
	T_INTEQ(fleet_connects(fl), (unsigned long)n);
	T_INTEQ(fleet_observe(fl, &b, &q, prov_now_ms() + 20000, &err), 0);
	T_INTEQ(fleet_connects(fl), (unsigned long)n);
	for (int i = 0; b && i < n; i++)
		T_INTEQ(b->hosts[i].status, OBS_OK);
	T_INTEQ(fleet_writer(fl, 0, &t, &err), PLUMB_EREFUSED);
	T_CHECK(t == NULL);
	obs_fleet_free(a);
	obs_fleet_free(b);
	fleet_free(fl);
}

T_MAIN(T_CASE(input_reaches_stdin_not_argv), T_CASE(strict_host_key_ok), T_CASE(empty_known_hosts_fails), T_CASE(changed_host_key_fails),
       T_CASE(key_auth), T_CASE(docker_version_everywhere_in_parallel),
       T_CASE(session_reuse_and_round_trips), T_CASE(timeout_and_truncation_keep_the_session),
       T_CASE(framing_against_a_noisy_bashrc), T_CASE(through_the_relay), T_CASE(jump_host),
       T_CASE(one_host_down_others_fine), T_CASE(fleet_sessions_outlive_observation))
