/*
 * End-to-end: reverse tunnels (providers/tunnel.h, fleet_tunnel) against the
 * lab. The lab's "local" registry listens on this machine's 127.0.0.1:PORT
 * (LAB_REGISTRY_LOCAL), like the seed's localhost:5555; a host reaches it
 * only through the tunnel, and its dockerd pulls localhost:PORT/... with no
 * --insecure-registry. Reads the LAB_* environment (tests/e2e/run.sh).
 * TUNNEL_BENCH=N repeats the timing comparison N times (default 2).
 */
#include "providers/fleet.h"
#include "providers/transport.h"
#include "providers/tunnel.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *key_files[1];

static int lab_ready(void)
{
	return tu_lab_n() >= 2 && tu_env("LAB_REGISTRY_LOCAL") && tu_env("LAB_SSH_KEY") &&
	       tu_env("LAB_IMAGE_ID_v1") && tu_env("LAB_REGISTRY");
}

/* The port of LAB_REGISTRY_LOCAL ("127.0.0.1:PORT"). */
static int local_port(void)
{
	const char *c = strrchr(tu_env("LAB_REGISTRY_LOCAL"), ':');
	return c ? atoi(c + 1) : 0;
}

/* A fleet of the first n lab hosts, opened read-write; key: NULL = the lab's. */
static struct fleet *lab_fleet(int n, const char *key, enum fleet_mode mode)
{
	static const char *hosts[8];
	struct fleet_opts o = { 0 };
	struct fleet *fl = NULL;

	for (int i = 0; i < n && i < 8; i++)
		hosts[i] = tu_lab_host(i + 1);
	key_files[0] = key ? key : tu_env("LAB_SSH_KEY");
	o.hosts = hosts;
	o.nhosts = (size_t)n;
	o.user = tu_env("LAB_SSH_USER");
	o.keys = key_files;
	o.nkeys = 1;
	o.known_hosts = tu_env("LAB_KNOWN_HOSTS");
	o.connect_timeout_ms = 5000;
	o.cmd_timeout_ms = 120000;
	fleet_open(&fl, &o, mode);
	return fl;
}

/* Runs cmd on host i's writer; its exit status (-1 if it did not run); stdout into out if set. */
static int on_host(struct fleet *fl, size_t i, const char *cmd, char **out)
{
	struct transport *t = NULL;
	struct plumb_err err = { 0 };
	struct cmd_result r;
	int rc, st;

	if (out)
		*out = NULL;
	if (fleet_writer(fl, i, &t, &err) < 0) {
		fprintf(stderr, "  host %zu: %s\n", i, err.msg);
		return -1;
	}
	rc = transport_run(t, cmd, &r);
	st = rc < 0 ? -1 : r.status;
	if (st != 0 && r.err.len)
		fprintf(stderr, "  host %zu: %s: %.300s\n", i, cmd, r.err.buf);
	if (out)
		*out = xstrdup(r.out.buf ? r.out.buf : "");
	cmd_result_release(&r);
	return st;
}

/* Removes every tag of the image with id (so the next pull fetches every layer). */
static void forget_image(struct fleet *fl, size_t i, const char *id)
{
	char *cmd = xasprintf("docker rmi -f %s >/dev/null 2>&1; true", id);
	on_host(fl, i, cmd, NULL);
	free(cmd);
}

/* Pulls ref on host i; then 1 if the image id is want, 0 if not, -1 if the pull failed. */
static int pull_is(struct fleet *fl, size_t i, const char *ref, const char *want)
{
	char *cmd = xasprintf("docker pull -q %s >/dev/null && docker image inspect -f '{{.Id}}' %s",
			      ref, ref);
	char *out = NULL;
	int st = on_host(fl, i, cmd, &out), ok;

	free(cmd);
	if (st != 0) {
		free(out);
		return -1;
	}
	out[strcspn(out, "\r\n")] = 0;
	ok = strcmp(out, want) == 0;
	if (!ok)
		fprintf(stderr, "  host %zu: %s has id %s, want %s\n", i, ref, out, want);
	free(out);
	return ok;
}

T_TEST(pull_through_the_tunnel)
{
	struct fleet *fl;
	struct plumb_err err = { 0 };
	const char *id = tu_env("LAB_IMAGE_ID_v1");
	char ref[64];
	unsigned long connects;

	if (!lab_ready())
		T_SKIP("no lab (LAB_REGISTRY_LOCAL, LAB_HOST_2)");
	snprintf(ref, sizeof(ref), "localhost:%d/optimus:v1", local_port());
	fl = lab_fleet(1, NULL, FLEET_READ_WRITE);
	forget_image(fl, 0, id);
	/* Without the tunnel nothing listens on the host's port: the pull fails. */
	T_INTEQ(pull_is(fl, 0, ref, id), -1);
	T_INTEQ(fleet_tunnel(fl, 0, local_port(), &err), 0);
	T_STREQ(err.msg, "");
	connects = fleet_connects(fl);
	T_INTEQ(fleet_tunnel(fl, 0, local_port(), &err), 0);
	T_INTEQ(fleet_connects(fl), connects); /* idempotent: no second session */
	/* The tunnel survives several pulls (each from nothing). */
	for (int k = 0; k < 3; k++) {
		T_INTEQ(pull_is(fl, 0, ref, id), 1);
		forget_image(fl, 0, id);
	}
	/* and the host's main session keeps working beside it */
	T_INTEQ(on_host(fl, 0, "docker version -f '{{.Server.Version}}' >/dev/null", NULL), 0);
	fleet_free(fl);
}

struct par {
	struct fleet *fl;
	size_t i;
	const char *ref, *id;
	int got;
};

static void *pull_thread(void *arg)
{
	struct par *p = arg;
	p->got = pull_is(p->fl, p->i, p->ref, p->id);
	return NULL;
}

T_TEST(two_hosts_at_once)
{
	struct par p[2];
	pthread_t th[2];
	const char *id = tu_env("LAB_IMAGE_ID_v2");
	char ref[64];
	struct fleet *fl;
	struct plumb_err err = { 0 };

	if (!lab_ready() || !id)
		T_SKIP("no lab");
	snprintf(ref, sizeof(ref), "localhost:%d/optimus:v2", local_port());
	fl = lab_fleet(2, NULL, FLEET_READ_WRITE);
	for (size_t i = 0; i < 2; i++) {
		forget_image(fl, i, id);
		T_INTEQ(fleet_tunnel(fl, i, local_port(), &err), 0);
	}
	for (size_t i = 0; i < 2; i++) {
		p[i] = (struct par){ fl, i, ref, id, -2 };
		T_REQUIRE(pthread_create(&th[i], NULL, pull_thread, &p[i]) == 0);
	}
	for (size_t i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		T_INTEQ(p[i].got, 1);
		forget_image(fl, i, id);
	}
	fleet_free(fl);
}

T_TEST(port_taken_then_freed_by_fleet_free)
{
	struct fleet *a = NULL, *b = NULL;
	struct plumb_err err = { 0 };
	const char *id = tu_env("LAB_IMAGE_ID_v1");
	char ref[64];

	if (!lab_ready())
		T_SKIP("no lab");
	snprintf(ref, sizeof(ref), "localhost:%d/optimus:v1", local_port());
	a = lab_fleet(1, NULL, FLEET_READ_WRITE);
	b = lab_fleet(1, NULL, FLEET_READ_WRITE);
	T_INTEQ(fleet_tunnel(a, 0, local_port(), &err), 0);
	/* The host's port is held by a's tunnel. */
	T_INTEQ(fleet_tunnel(b, 0, local_port(), &err), PLUMB_EUNAVAILABLE);
	T_CONTAINS(err.msg, "in use");
	T_CONTAINS(err.msg, tu_lab_host(1));
	fleet_free(a);
	/* Freed: b gets it at once, and pulls through it. */
	T_INTEQ(fleet_tunnel(b, 0, local_port(), &err), 0);
	forget_image(b, 0, id);
	T_INTEQ(pull_is(b, 0, ref, id), 1);
	forget_image(b, 0, id);
	fleet_free(b);
}

T_TEST(refused_forwarding_and_read_only)
{
	struct fleet *fl;
	struct plumb_err err = { 0 };
	char *dir = tu_tmpdir("t_tunnel"), *key = NULL, *cmd = NULL, *ak = NULL, *save = NULL;

	if (!lab_ready() || !tu_env("LAB_DIR"))
		T_SKIP("no lab");
	T_REQUIRE(dir);
	/* A read-only fleet never opens one. */
	fl = lab_fleet(1, NULL, FLEET_READ_ONLY);
	T_INTEQ(fleet_tunnel(fl, 0, local_port(), &err), PLUMB_EREFUSED);
	T_INTEQ(fleet_connects(fl), 0);
	fleet_free(fl);
	/* A key the server accepts with no-port-forwarding. */
	key = xasprintf("%s/id_nofwd", dir);
	ak = xasprintf("%s/authorized_keys", tu_env("LAB_DIR"));
	save = xasprintf("%s/authorized_keys.saved", dir);
	cmd = xasprintf("ssh-keygen -q -t ed25519 -N '' -f %s && cp %s %s && "
			"printf 'no-port-forwarding %%s\\n' \"$(cat %s.pub)\" >>%s",
			key, ak, save, key, ak);
	T_REQUIRE(system(cmd) == 0);
	fl = lab_fleet(1, key, FLEET_READ_WRITE);
	T_INTEQ(on_host(fl, 0, "true", NULL), 0); /* the key logs in */
	T_INTEQ(fleet_tunnel(fl, 0, local_port(), &err), PLUMB_EREFUSED);
	T_CONTAINS(err.msg, "refuses remote port forwarding");
	fleet_free(fl);
	free(cmd);
	cmd = xasprintf("cp %s %s && rm -f %s %s %s.pub && rmdir %s", save, ak, save, key, key, dir);
	T_CHECK(system(cmd) == 0);
	free(cmd);
	free(key);
	free(ak);
	free(save);
	free(dir);
}

T_TEST(broken_session_is_reopened)
{
	struct fleet *fl;
	struct plumb_err err = { 0 };
	const char *id = tu_env("LAB_IMAGE_ID_v1");
	char ref[64], *cmd;
	unsigned long connects;

	if (!lab_ready() || !tu_env("LAB_ID"))
		T_SKIP("no lab");
	snprintf(ref, sizeof(ref), "localhost:%d/optimus:v1", local_port());
	fl = lab_fleet(1, NULL, FLEET_READ_WRITE);
	T_INTEQ(fleet_tunnel(fl, 0, local_port(), &err), 0);
	/* End the host's sshd process serving the tunnel (the one holding the port). */
	cmd = xasprintf("pid=$(nsenter --net=/var/run/netns/plumb-%s-h1 ss -Htlnp "
			"'sport = :%d' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2) && "
			"[ -n \"$pid\" ] && kill $pid",
			tu_env("LAB_ID"), local_port());
	T_REQUIRE(system(cmd) == 0);
	free(cmd);
	forget_image(fl, 0, id);
	T_INTEQ(pull_is(fl, 0, ref, id), -1); /* nothing listens there now */
	connects = fleet_connects(fl);
	/* The relay noticed; the next call opens a new tunnel. */
	T_INTEQ(fleet_tunnel(fl, 0, local_port(), &err), 0);
	T_INTEQ(fleet_connects(fl), connects + 1);
	T_INTEQ(pull_is(fl, 0, ref, id), 1);
	forget_image(fl, 0, id);
	fleet_free(fl);
}

/* Seconds to pull ref on host 0 from nothing; -1 on failure. */
static double timed_pull(struct fleet *fl, const char *ref, const char *id)
{
	double t0;
	int got;

	forget_image(fl, 0, id);
	t0 = prov_now_ms();
	got = pull_is(fl, 0, ref, id);
	return got == 1 ? (prov_now_ms() - t0) / 1000 : -1;
}

T_TEST(pull_time_tunnel_vs_direct)
{
	struct fleet *fl;
	struct plumb_err err = { 0 };
	const char *repos[] = { "optimus:v1", "postgres:17" };
	const char *ids[] = { tu_env("LAB_IMAGE_ID_v1"), tu_env("LAB_IMAGE_ID_postgres") };
	int rounds = tu_env("TUNNEL_BENCH") ? atoi(tu_env("TUNNEL_BENCH")) : 2;

	if (!lab_ready() || !ids[1])
		T_SKIP("no lab");
	fl = lab_fleet(1, NULL, FLEET_READ_WRITE);
	T_INTEQ(fleet_tunnel(fl, 0, local_port(), &err), 0);
	for (size_t r = 0; r < 2; r++) {
		char direct[128], tunneled[128];
		double sd = 0, st = 0;
		int n = 0;

		snprintf(direct, sizeof(direct), "%s/%s", tu_env("LAB_REGISTRY"), repos[r]);
		snprintf(tunneled, sizeof(tunneled), "localhost:%d/%s", local_port(), repos[r]);
		for (int k = 0; k < rounds; k++) { /* interleaved */
			double d = timed_pull(fl, direct, ids[r]), t = timed_pull(fl, tunneled, ids[r]);

			T_CHECK(d > 0);
			T_CHECK(t > 0);
			if (d > 0 && t > 0) {
				sd += d;
				st += t;
				n++;
			}
		}
		if (n)
			printf("  pull %-12s direct %.2f s, through the tunnel %.2f s (mean of %d)\n",
			       repos[r], sd / n, st / n, n);
		forget_image(fl, 0, ids[r]);
	}
	fleet_free(fl);
}

T_MAIN(T_CASE(pull_through_the_tunnel), T_CASE(two_hosts_at_once),
       T_CASE(port_taken_then_freed_by_fleet_free), T_CASE(refused_forwarding_and_read_only),
       T_CASE(broken_session_is_reopened),
       T_CASE(pull_time_tunnel_vs_direct))
