/*
 * End-to-end test of the registry client against real docker-registry
 * instances (no mocks).
 *
 * Part 1 (always): the test starts its own registries on 127.0.0.1 sharing one
 * storage directory — plain, Basic (htpasswd) and Bearer (`auth: token:`, with
 * tests/e2e/token_server.sh as the token endpoint under busybox httpd, signing
 * with a key generated here by the openssl CLI) — pushes images through the
 * registry API with the curl CLI, and resolves them.
 *
 * Part 2 (when LAB_REGISTRY is set, i.e. run by tests/e2e/run.sh): resolves
 * optimus:v1 on the lab's plain and Basic-auth registries and compares the
 * identity with `.Image` of a container created on lab host 1 after
 * `docker pull` of the same tag.
 *
 * Prints "t_registry: N passed, N failed, 0 skipped" (e2e.h); exits 1 on any failure.
 */
#include "providers/registry.h"
#include "providers/transport.h" /* prov_now_ms */
#include "state/util.h"
#include "tests/e2e/e2e.h"
#include "tests/unit/tutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *nz(const char *s)
{
	return s ? s : "(null)";
}

/* ---- processes the test starts (stopped by pid at the end) ---- */

#define MAX_PROCS 8
static pid_t procs[MAX_PROCS];
static size_t nprocs;

static pid_t spawn(const char *logpath, char *const argv[])
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		FILE *f = freopen(logpath, "w", stdout);
		if (!f || dup2(fileno(stdout), 2) < 0)
			_exit(127);
		setpgid(0, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (nprocs < MAX_PROCS)
		procs[nprocs++] = pid;
	return pid;
}

static void stop_all(void)
{
	for (size_t i = 0; i < nprocs; i++) {
		int st;
		if (procs[i] <= 0)
			continue;
		kill(procs[i], SIGTERM);
		for (int t = 0; t < 50; t++) {
			if (waitpid(procs[i], &st, WNOHANG) == procs[i])
				goto next;
			usleep(100000);
		}
		kill(procs[i], SIGKILL);
		waitpid(procs[i], &st, 0);
next:
		procs[i] = 0;
	}
	nprocs = 0;
}

static void on_signal(int sig)
{
	stop_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static size_t sink(char *d, size_t s, size_t n, void *u)
{
	(void)d;
	(void)u;
	return s * n;
}

/* Header line check: is this a distribution registry (our server)? */
static size_t hdr_is_registry(char *d, size_t s, size_t n, void *u)
{
	if (s * n >= 31 && strncasecmp(d, "Docker-Distribution-Api-Version", 31) == 0)
		*(int *)u = 1;
	return s * n;
}

/*
 * Waits until `url` answers (any HTTP status) while `pid` is alive; when
 * want_registry, the answer must carry the registry's API header.
 */
static int wait_ready(const char *url, pid_t pid, int want_registry, const char *ca)
{
	CURL *h = curl_easy_init();
	int ok = 0;

	for (int i = 0; i < 100 && !ok; i++) {
		int st, is_reg = 0;
		long code = 0;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			for (size_t k = 0; k < nprocs; k++)
				if (procs[k] == pid)
					procs[k] = 0;
			break;
		}
		curl_easy_reset(h);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, hdr_is_registry);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, &is_reg);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
		if (ca)
			curl_easy_setopt(h, CURLOPT_CAINFO, ca);
		if (curl_easy_perform(h) == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
			ok = code > 0 && (!want_registry || is_reg);
		}
		if (!ok)
			usleep(100000);
	}
	curl_easy_cleanup(h);
	return ok ? 0 : -1;
}

/* stdout of a shell command, trailing newline removed; NULL on failure. */
static char *sh_out(const char *fmt, ...) PLUMB_PRINTF(1, 2);
static char *sh_out(const char *fmt, ...)
{
	va_list ap;
	char *cmd, buf[4096];
	size_t n;
	FILE *p;
	int rc;

	va_start(ap, fmt);
	cmd = xvasprintf(fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	if (!p) {
		free(cmd);
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = '\0';
	rc = pclose(p);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (rc != 0) {
		fprintf(stderr, "  command failed (%d): %s\n", rc, cmd);
		free(cmd);
		return NULL;
	}
	free(cmd);
	return xstrdup(buf);
}

/* Locates tests/e2e/token_server.sh: from the cwd, or relative to the binary. */
static char *find_token_server(void)
{
	char exe[4096];
	ssize_t n;
	char *p;

	if (access("tests/e2e/token_server.sh", R_OK) == 0)
		return realpath("tests/e2e/token_server.sh", NULL);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	/* <repo>/build/rel/tests/t_registry */
	for (int i = 0; i < 4; i++) {
		char *s = strrchr(exe, '/');
		if (!s)
			return NULL;
		*s = '\0';
	}
	p = xasprintf("%s/tests/e2e/token_server.sh", exe);
	if (access(p, R_OK) != 0) {
		free(p);
		return NULL;
	}
	return p;
}

/* ---- pushing through the registry API (curl CLI) ---- */

static const char push_sh[] =
	"#!/bin/sh\n"
	"# push.sh BASE REPO blob FILE | manifest TAG MEDIATYPE FILE\n"
	"set -eu\n"
	"base=$1; repo=$2; what=$3; shift 3\n"
	"if [ \"$what\" = blob ]; then\n"
	"  d=sha256:$(sha256sum \"$1\" | cut -d' ' -f1)\n"
	"  loc=$(curl -fsS -X POST -o /dev/null -D - \"$base/v2/$repo/blobs/uploads/\" | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p')\n"
	"  case $loc in http*) ;; *) loc=$base$loc ;; esac\n"
	"  case $loc in *\\?*) sep='&' ;; *) sep='?' ;; esac\n"
	"  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary @\"$1\" \"$loc${sep}digest=$d\" >/dev/null\n"
	"  echo \"$d\"\n"
	"else\n"
	"  curl -fsS -X PUT -H \"Content-Type: $2\" --data-binary @\"$3\" \"$base/v2/$repo/manifests/$1\" >/dev/null\n"
	"  echo sha256:$(sha256sum \"$3\" | cut -d' ' -f1)\n"
	"fi\n";

struct pushed {
	char *cfg_a, *cfg_b, *cfg_c; /* config digests */
	char *man_v1, *man_v2, *man_arm, *index; /* manifest digests */
};

static char *push_blob_text(const char *dir, const char *base, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name), *d;

	tu_write_file(path, text);
	d = sh_out("sh %s/push.sh %s optimus blob %s", dir, base, path);
	free(path);
	return d;
}

static char *push_manifest_text(const char *dir, const char *base, const char *tag,
				const char *mt, const char *text)
{
	char *path = xasprintf("%s/m-%s.json", dir, tag), *d;

	tu_write_file(path, text);
	d = sh_out("sh %s/push.sh %s optimus manifest %s %s %s", dir, base, tag, mt, path);
	free(path);
	return d;
}

static char *image_manifest(const char *mt, const char *cfg_mt, const char *cfg, const char *layer_mt,
			    const char *layer)
{
	return xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
			 "\"size\":1,\"digest\":\"%s\"},\"layers\":[{\"mediaType\":\"%s\",\"size\":1,\"digest\":\"%s\"}]}",
			 mt, cfg_mt, cfg, layer_mt, layer);
}

static int push_images(const char *dir, const char *base, struct pushed *p)
{
	char *layer = NULL, *m = NULL;
	int rc = -1;

	if (tu_sh("cd %s && mkdir -p rootfs && echo hello >rootfs/hello && tar czf layer.tgz -C rootfs .", dir) < 0)
		return -1;
	layer = sh_out("sh %s/push.sh %s optimus blob %s/layer.tgz", dir, base, dir);
	p->cfg_a = push_blob_text(dir, base, "cfg-a.json",
				  "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"V=1\"]}}");
	p->cfg_b = push_blob_text(dir, base, "cfg-b.json",
				  "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"V=2\"]}}");
	p->cfg_c = push_blob_text(dir, base, "cfg-c.json",
				  "{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\",\"config\":{}}");
	if (!layer || !p->cfg_a || !p->cfg_b || !p->cfg_c)
		goto out;
	m = image_manifest("application/vnd.docker.distribution.manifest.v2+json",
			   "application/vnd.docker.container.image.v1+json", p->cfg_a,
			   "application/vnd.docker.image.rootfs.diff.tar.gzip", layer);
	p->man_v1 = push_manifest_text(dir, base, "v1", "application/vnd.docker.distribution.manifest.v2+json", m);
	free(m);
	m = image_manifest("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.config.v1+json",
			   p->cfg_b, "application/vnd.oci.image.layer.v1.tar+gzip", layer);
	p->man_v2 = push_manifest_text(dir, base, "v2", "application/vnd.oci.image.manifest.v1+json", m);
	free(m);
	m = image_manifest("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.config.v1+json",
			   p->cfg_c, "application/vnd.oci.image.layer.v1.tar+gzip", layer);
	p->man_arm = push_manifest_text(dir, base, "arm", "application/vnd.oci.image.manifest.v1+json", m);
	free(m);
	m = NULL;
	if (!p->man_v1 || !p->man_v2 || !p->man_arm)
		goto out;
	m = xasprintf("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
		      "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":1,\"digest\":\"%s\","
		      "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}},"
		      "{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"size\":1,\"digest\":\"%s\","
		      "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}",
		      p->man_arm, p->man_v1);
	p->index = push_manifest_text(dir, base, "multi", "application/vnd.oci.image.index.v1+json", m);
	rc = p->index ? 0 : -1;
out:
	free(layer);
	free(m);
	return rc;
}

static void pushed_free(struct pushed *p)
{
	free(p->cfg_a);
	free(p->cfg_b);
	free(p->cfg_c);
	free(p->man_v1);
	free(p->man_v2);
	free(p->man_arm);
	free(p->index);
}

/* ---- the checks ---- */

static int resolve(struct registry_client *c, const char *ref, struct registry_result *res, char **err)
{
	int rc = registry_resolve(c, ref, res, err);
	if (rc < 0 && getenv("T_VERBOSE"))
		fprintf(stderr, "  resolve %s: %d %s\n", ref, rc, nz(*err));
	return rc;
}

static void test_plain(const char *reg, const struct pushed *p)
{
	struct registry_options o = { .docker_config = "" };
	struct registry_options arm = { .docker_config = "", .platform = "linux/arm64" };
	struct registry_client *c = registry_client_new(&o), *ca = registry_client_new(&arm);
	struct registry_result r;
	char *err = NULL, *ref;
	unsigned long before;

	ref = xasprintf("%s/optimus:v1", reg);
	CHECK(resolve(c, ref, &r, &err) == 0, "%s", nz(err));
	CHECK(r.status == REGISTRY_FOUND, "v1 found");
	CHECK(r.config_digest && !strcmp(r.config_digest, p->cfg_a), "config %s want %s", nz(r.config_digest), p->cfg_a);
	CHECK(r.digest && !strcmp(r.digest, p->man_v1), "digest %s want %s", nz(r.digest), p->man_v1);
	CHECK(r.platform_digest && !strcmp(r.platform_digest, p->man_v1), "platform digest");
	CHECK(r.media_type && !strcmp(r.media_type, "application/vnd.docker.distribution.manifest.v2+json"),
	      "media type %s", nz(r.media_type));
	registry_result_release(&r);

	/* cache: the same image again costs no request */
	before = registry_client_manifest_requests(c);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND && !strcmp(nz(r.config_digest), p->cfg_a),
	      "cached v1");
	CHECK(registry_client_manifest_requests(c) == before, "cached lookup sent %lu manifest requests",
	      registry_client_manifest_requests(c) - before);
	CHECK(before == 1, "first lookup of an image manifest took %lu requests, want 1", before);
	registry_result_release(&r);
	free(ref);

	ref = xasprintf("%s/optimus:v2", reg);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "v2: %s", nz(err));
	CHECK(!strcmp(nz(r.config_digest), p->cfg_b), "v2 config %s", nz(r.config_digest));
	CHECK(!strcmp(nz(r.media_type), "application/vnd.oci.image.manifest.v1+json"), "v2 media type");
	registry_result_release(&r);
	free(ref);

	/* an index: the amd64 entry by default, arm64 when configured */
	ref = xasprintf("%s/optimus:multi", reg);
	before = registry_client_manifest_requests(c);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "multi: %s", nz(err));
	CHECK(!strcmp(nz(r.digest), p->index), "index digest %s want %s", nz(r.digest), p->index);
	CHECK(!strcmp(nz(r.platform_digest), p->man_v1), "amd64 entry %s", nz(r.platform_digest));
	CHECK(!strcmp(nz(r.config_digest), p->cfg_a), "amd64 config %s", nz(r.config_digest));
	CHECK(registry_client_manifest_requests(c) - before == 2, "index lookup took %lu requests",
	      registry_client_manifest_requests(c) - before);
	registry_result_release(&r);
	CHECK(resolve(ca, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "multi arm64: %s", nz(err));
	CHECK(!strcmp(nz(r.config_digest), p->cfg_c), "arm64 config %s", nz(r.config_digest));
	CHECK(!strcmp(nz(r.platform_digest), p->man_arm), "arm64 entry");
	registry_result_release(&r);
	free(ref);
	/* v1 has no arm64 variant: an image manifest is taken as is */

	/* by digest */
	ref = xasprintf("%s/optimus@%s", reg, p->man_v1);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "by digest: %s", nz(err));
	CHECK(!strcmp(nz(r.config_digest), p->cfg_a), "by digest config");
	registry_result_release(&r);
	free(ref);

	/* not in registry yet: unknown tag, unknown repository, unknown digest */
	ref = xasprintf("%s/optimus:not-pushed-yet", reg);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_NOT_FOUND, "missing tag: %s", nz(err));
	CHECK(r.config_digest == NULL && r.digest == NULL, "nothing set for a missing tag");
	registry_result_release(&r);
	before = registry_client_manifest_requests(c);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_NOT_FOUND, "missing tag cached");
	CHECK(registry_client_manifest_requests(c) == before, "not-found is cached too");
	registry_result_release(&r);
	free(ref);
	ref = xasprintf("%s/nobody/here:v1", reg);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_NOT_FOUND, "missing repo: %s", nz(err));
	registry_result_release(&r);
	free(ref);
	ref = xasprintf("%s/optimus@sha256:%064d", reg, 0);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_NOT_FOUND, "missing digest: %s", nz(err));
	registry_result_release(&r);
	free(ref);

	registry_client_free(c);
	registry_client_free(ca);
}

struct thr {
	struct registry_client *c;
	const char *ref;
	const char *want;
	int ok;
};

/* registry_pin (x-plumb pin_digest): the tag's manifest digest and config digest, owned by the client. */
static void test_pin(const char *reg, const struct pushed *p)
{
	struct registry_options o = { .docker_config = "" };
	struct registry_client *c = registry_client_new(&o);
	const char *digest = NULL, *identity = NULL;
	char *ref = xasprintf("%s/optimus:v1", reg), *missing = xasprintf("%s/optimus:nope", reg);

	CHECK(registry_pin(ref, &digest, &identity, c) == 0, "pin %s", ref);
	CHECK(digest && !strcmp(digest, p->man_v1), "pin digest %s want %s", nz(digest), p->man_v1);
	CHECK(identity && !strcmp(identity, p->cfg_a), "pin identity %s", nz(identity));
	CHECK(registry_pin(missing, &digest, &identity, c) == -1 && !digest && !identity, "missing tag: not pinned");
	registry_client_free(c);
	free(ref);
	free(missing);
}

static void *thr_run(void *arg)
{
	struct thr *t = arg;
	for (int i = 0; i < 20; i++) {
		struct registry_result r;
		char *err = NULL;
		int rc = registry_resolve(t->c, t->ref, &r, &err);
		t->ok += rc == 0 && r.status == REGISTRY_FOUND && !strcmp(nz(r.config_digest), t->want);
		registry_result_release(&r);
		free(err);
	}
	return NULL;
}

/* One client shared by threads: results right, one lookup per image. */
static void test_threads(const char *reg, const struct pushed *p)
{
	struct registry_options o = { .docker_config = "" };
	struct registry_client *c = registry_client_new(&o);
	char *r1 = xasprintf("%s/optimus:v1", reg), *r2 = xasprintf("%s/optimus:v2", reg);
	struct thr t[4] = { { c, r1, p->cfg_a, 0 }, { c, r2, p->cfg_b, 0 }, { c, r1, p->cfg_a, 0 }, { c, r2, p->cfg_b, 0 } };
	pthread_t th[4];

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, thr_run, &t[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		CHECK(t[i].ok == 20, "thread %d: %d of 20 right", i, t[i].ok);
	CHECK(registry_client_manifest_requests(c) == 2, "4 threads x 20 lookups of 2 images sent %lu manifest requests",
	      registry_client_manifest_requests(c));
	registry_client_free(c);
	free(r1);
	free(r2);
}

static void test_plain_refused_for_remote_hosts(void)
{
	/* 127.0.0.2 is loopback but not in the always-plain list: HTTPS is used */
	struct registry_options o = { .docker_config = "", .connect_timeout_ms = 2000 };
	struct registry_client *c = registry_client_new(&o);
	struct registry_result r;
	char *err = NULL;
	int rc = registry_resolve(c, "127.0.0.2:9/optimus:v1", &r, &err);

	CHECK(rc == PLUMB_ENETWORK, "rc %d: %s", rc, nz(err));
	free(err);
	registry_client_free(c);
}

static void test_timing(const char *reg, const struct pushed *p)
{
	char *r1 = xasprintf("%s/optimus:v1", reg), *r2 = xasprintf("%s/optimus:v2", reg);
	double t0, cold = 0, warm = 0, cached = 0;
	int n = 20;

	(void)p;
	for (int i = 0; i < n; i++) {
		struct registry_options o = { .docker_config = "" };
		struct registry_client *c = registry_client_new(&o);
		struct registry_result r;
		char *err = NULL;

		t0 = prov_now_ms();
		registry_resolve(c, r1, &r, &err);
		cold += prov_now_ms() - t0;
		registry_result_release(&r);
		free(err);
		t0 = prov_now_ms();
		registry_resolve(c, r2, &r, &err);
		warm += prov_now_ms() - t0;
		registry_result_release(&r);
		free(err);
		t0 = prov_now_ms();
		registry_resolve(c, r2, &r, &err);
		cached += prov_now_ms() - t0;
		registry_result_release(&r);
		free(err);
		registry_client_free(c);
	}
	printf("timing (local plain registry, mean of %d): first lookup %.2f ms, next image on the same "
	       "connection %.2f ms, cached %.3f ms\n", n, cold / n, warm / n, cached / n);
	free(r1);
	free(r2);
}

static void test_basic(const char *reg, const char *dir, const struct pushed *p)
{
	struct registry_options o = { .docker_config = "" };
	struct registry_client *c;
	struct registry_result r;
	char *err = NULL, *ref = xasprintf("%s/optimus:v1", reg), *cfgpath, *cfgtext;
	int rc;

	/* right credentials */
	c = registry_client_new(&o);
	registry_client_set_credentials(c, reg, "alice", "correct horse");
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "basic: %s", nz(err));
	CHECK(!strcmp(nz(r.config_digest), p->cfg_a), "basic config %s", nz(r.config_digest));
	registry_result_release(&r);
	/* once Basic is known for the host, no more 401 round trips */
	{
		char *ref2 = xasprintf("%s/optimus:v2", reg);
		unsigned long before = registry_client_manifest_requests(c);
		CHECK(resolve(c, ref2, &r, &err) == 0 && r.status == REGISTRY_FOUND, "basic v2: %s", nz(err));
		CHECK(registry_client_manifest_requests(c) - before == 1, "basic second image took %lu requests",
		      registry_client_manifest_requests(c) - before);
		registry_result_release(&r);
		free(ref2);
	}
	registry_client_free(c);

	/* wrong password: an auth error that does not show the password */
	c = registry_client_new(&o);
	registry_client_set_credentials(c, reg, "alice", "wrong-pass-xyzzy");
	rc = resolve(c, ref, &r, &err);
	CHECK(rc == PLUMB_EAUTH, "wrong password rc %d: %s", rc, nz(err));
	CHECK(err && !strstr(err, "xyzzy"), "error shows the password: %s", nz(err));
	free(err);
	err = NULL;
	registry_client_free(c);

	/* no credentials at all */
	c = registry_client_new(&o);
	rc = resolve(c, ref, &r, &err);
	CHECK(rc == PLUMB_EAUTH, "no credentials rc %d: %s", rc, nz(err));
	CHECK(err && strstr(err, "none are configured"), "message: %s", nz(err));
	free(err);
	err = NULL;
	registry_client_free(c);

	/* credentials from a docker config.json */
	cfgpath = xasprintf("%s/docker-config.json", dir);
	cfgtext = sh_out("printf '{\"auths\":{\"%s\":{\"auth\":\"%%s\"}}}' \"$(printf 'alice:correct horse' | base64)\"", reg);
	CHECK(cfgtext && tu_write_file(cfgpath, cfgtext) == 0, "write docker config");
	{
		struct registry_options od = { .docker_config = cfgpath };
		c = registry_client_new(&od);
		CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "docker config creds: %s", nz(err));
		CHECK(!strcmp(nz(r.config_digest), p->cfg_a), "docker config config digest");
		registry_result_release(&r);
		registry_client_free(c);
	}
	free(cfgtext);
	free(cfgpath);
	free(ref);
}

static int count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	int n = 0, ch;

	if (!f)
		return 0;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* HTTPS is the default for any host not loopback-named or insecure-listed. */
static void test_tls(int port, const char *ca, const struct pushed *p)
{
	struct registry_options with_ca = { .docker_config = "", .ca_path = ca };
	struct registry_options no_ca = { .docker_config = "" }; /* system CAs */
	struct registry_client *c = registry_client_new(&with_ca), *n = registry_client_new(&no_ca);
	struct registry_result r;
	char *err = NULL, *ref = xasprintf("127.0.0.2:%d/optimus:v1", port);
	int rc;

	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "https: %s", nz(err));
	CHECK(!strcmp(nz(r.config_digest), p->cfg_a), "https config %s", nz(r.config_digest));
	registry_result_release(&r);
	/* a certificate the client cannot verify: a network-class error, no fallback to HTTP */
	rc = resolve(n, ref, &r, &err);
	CHECK(rc == PLUMB_ENETWORK, "unverifiable certificate rc %d: %s", rc, nz(err));
	CHECK(registry_client_http_requests(n) == 1, "no retry over HTTP (%lu requests)",
	      registry_client_http_requests(n));
	free(err);
	registry_client_free(c);
	registry_client_free(n);
	free(ref);
}

/* A Bearer realm over plain HTTP to a host that is not loopback-named: refused, no token request. */
static void test_bad_realm(int port, const char *dir)
{
	struct registry_options o = { .docker_config = "" };
	struct registry_client *c = registry_client_new(&o);
	struct registry_result r;
	char *err = NULL, *ref = xasprintf("127.0.0.1:%d/optimus:v1", port);
	char *log = xasprintf("%s/token.log", dir);
	int before = count_lines(log), rc;

	char *domain = xasprintf("127.0.0.1:%d", port);

	registry_client_set_credentials(c, domain, "tuser", "tpass-s3cret");
	free(domain);
	rc = resolve(c, ref, &r, &err);
	CHECK(rc == PLUMB_EINVAL && err && strstr(err, "is not HTTPS"), "plain-HTTP realm rc %d: %s", rc, nz(err));
	CHECK(registry_client_http_requests(c) == 1, "only the manifest request went out (%lu)",
	      registry_client_http_requests(c));
	CHECK(count_lines(log) == before, "no token request");
	free(err);
	registry_client_free(c);
	free(ref);
	free(log);
}

/*
 * An untrusted run (restrict_token_realm): the token registry's 401 names a
 * plain-HTTP realm on another loopback port, and the badrealm registry's one
 * on another host. Both refused, naming the realm host; the token server gets
 * no request. Allowed by the invocation, the same realm mints a token.
 */
static void test_untrusted_realm(const char *reg, int port_badrealm, int port_http, const char *dir,
				 const struct pushed *p)
{
	struct registry_options o = { .docker_config = "", .restrict_token_realm = 1 };
	struct registry_client *c;
	struct registry_result r;
	char *err = NULL, *ref = xasprintf("%s/optimus:v1", reg);
	char *bad = xasprintf("127.0.0.1:%d/optimus:v1", port_badrealm);
	char *log = xasprintf("%s/token.log", dir);
	char *realm_host = xasprintf("127.0.0.1:%d", port_http);
	char *want = xasprintf("token realm host '%s' refused", realm_host);
	int before = count_lines(log), rc;

	c = registry_client_new(&o);
	registry_client_set_credentials(c, reg, "tuser", "tpass-s3cret");
	rc = resolve(c, ref, &r, &err);
	CHECK(rc == PLUMB_EUNTRUSTED && err && strstr(err, want) && strstr(err, "plain HTTP"),
	      "untrusted plain-HTTP realm rc %d: %s", rc, nz(err));
	CHECK(err && !strstr(err, "s3cret"), "no password in the message");
	CHECK(registry_client_http_requests(c) == 1, "only the manifest request went out (%lu)",
	      registry_client_http_requests(c));
	CHECK(count_lines(log) == before, "the realm got %d requests", count_lines(log) - before);
	free(err);
	err = NULL;
	registry_client_free(c);

	c = registry_client_new(&o);
	rc = resolve(c, bad, &r, &err);
	CHECK(rc == PLUMB_EINVAL && err && strstr(err, "127.0.0.2"), "untrusted realm on another host rc %d: %s", rc, nz(err));
	CHECK(registry_client_http_requests(c) == 1, "only the manifest request went out (%lu)",
	      registry_client_http_requests(c));
	free(err);
	err = NULL;
	registry_client_free(c);

	/* the invocation allows the realm host: one token request, the image resolves */
	o.allowed_realm_hosts = realm_host;
	c = registry_client_new(&o);
	registry_client_set_credentials(c, reg, "tuser", "tpass-s3cret");
	rc = resolve(c, ref, &r, &err);
	CHECK(rc == 0 && r.status == REGISTRY_FOUND, "allowed realm: %s", nz(err));
	if (rc == 0) {
		CHECK(!strcmp(nz(r.config_digest), p->cfg_a), "allowed realm config %s", nz(r.config_digest));
		registry_result_release(&r);
	}
	CHECK(count_lines(log) - before == 1, "one token request, got %d", count_lines(log) - before);
	free(err);
	registry_client_free(c);
	free(ref);
	free(bad);
	free(log);
	free(realm_host);
	free(want);
}

static void test_bearer(const char *reg, const char *dir, const struct pushed *p)
{
	struct registry_options o = { .docker_config = "" };
	struct registry_client *c;
	struct registry_result r;
	char *err = NULL, *ref = xasprintf("%s/optimus:v1", reg), *ref2 = xasprintf("%s/optimus:multi", reg);
	char *log = xasprintf("%s/token.log", dir);
	unsigned long before;
	int rc, tokens0;

	c = registry_client_new(&o);
	registry_client_set_credentials(c, reg, "tuser", "tpass-s3cret");
	tokens0 = count_lines(log);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "bearer: %s", nz(err));
	CHECK(!strcmp(nz(r.config_digest), p->cfg_a), "bearer config %s", nz(r.config_digest));
	CHECK(registry_client_manifest_requests(c) == 2, "challenge + retry = 2 manifest requests, got %lu",
	      registry_client_manifest_requests(c));
	registry_result_release(&r);
	CHECK(count_lines(log) - tokens0 == 1, "one token request, got %d", count_lines(log) - tokens0);

	/* the same repository again: the token is reused; cached image: no request */
	before = registry_client_manifest_requests(c);
	CHECK(resolve(c, ref2, &r, &err) == 0 && r.status == REGISTRY_FOUND, "bearer index: %s", nz(err));
	CHECK(!strcmp(nz(r.config_digest), p->cfg_a), "bearer index config");
	CHECK(registry_client_manifest_requests(c) - before == 2, "index + entry with a cached token, got %lu",
	      registry_client_manifest_requests(c) - before);
	registry_result_release(&r);
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "bearer cached");
	registry_result_release(&r);
	CHECK(count_lines(log) - tokens0 == 1, "token reused, got %d token requests", count_lines(log) - tokens0);

	/* missing tag through the token flow */
	{
		char *missing = xasprintf("%s/optimus:nope", reg);
		CHECK(resolve(c, missing, &r, &err) == 0 && r.status == REGISTRY_NOT_FOUND, "bearer missing: %s", nz(err));
		registry_result_release(&r);
		free(missing);
	}
	registry_client_free(c);

	/* the token endpoint refuses a wrong password: auth error, password not shown */
	c = registry_client_new(&o);
	registry_client_set_credentials(c, reg, "tuser", "wrong-xyzzy");
	rc = resolve(c, ref, &r, &err);
	CHECK(rc == PLUMB_EAUTH, "bearer wrong password rc %d: %s", rc, nz(err));
	CHECK(err && !strstr(err, "xyzzy") && strstr(err, "token request"), "message: %s", nz(err));
	free(err);
	err = NULL;
	registry_client_free(c);

	free(ref);
	free(ref2);
	free(log);
}

/* ---- the lab's registries and a real docker pull on host 1 ---- */

/* Runs a script on lab host 1 over ssh (strict host key checking); its stdout. */
static char *ssh_host1(const char *dir, const char *remote)
{
	char *rf = xasprintf("%s/remote.sh", dir), *out;

	tu_write_file(rf, remote);
	out = sh_out("ssh -i '%s' -o UserKnownHostsFile='%s' -o StrictHostKeyChecking=yes -o BatchMode=yes "
		     "-o IdentitiesOnly=yes -p %s %s@%s sh -s < '%s'",
		     getenv("LAB_SSH_KEY"), getenv("LAB_KNOWN_HOSTS"),
		     getenv("LAB_SSH_PORT") ? getenv("LAB_SSH_PORT") : "22",
		     getenv("LAB_SSH_USER") ? getenv("LAB_SSH_USER") : "root", getenv("LAB_HOST_1"), rf);
	unlink(rf); /* may hold a registry password */
	free(rf);
	return out;
}

static void test_lab(const char *dir)
{
	const char *plain = getenv("LAB_REGISTRY"), *authreg = getenv("LAB_REGISTRY_AUTH");
	const char *user = getenv("LAB_REGISTRY_USER"), *pw = getenv("LAB_REGISTRY_PASSWORD");
	const char *local = getenv("LAB_REGISTRY_LOCAL");
	struct registry_options o = { .docker_config = "" };
	struct registry_client *c = registry_client_new(&o);
	struct registry_result r1 = { 0 }, r;
	char *err = NULL, *ref, *pulled, *script;
	int rc;

	registry_client_add_insecure(c, plain);
	if (authreg)
		registry_client_add_insecure(c, authreg);

	ref = xasprintf("%s/optimus:v1", plain);
	CHECK(resolve(c, ref, &r1, &err) == 0 && r1.status == REGISTRY_FOUND, "lab v1: %s", nz(err));
	script = xasprintf("set -e\nimg='%s'\ndocker pull -q \"$img\" >/dev/null\n"
			   "c=$(docker create \"$img\")\ndocker inspect --format '{{.Image}}' \"$c\"\n"
			   "docker rm \"$c\" >/dev/null\n", ref);
	pulled = getenv("LAB_HOST_1") && getenv("LAB_SSH_KEY") ? ssh_host1(dir, script) : NULL;
	free(script);
	CHECK(pulled && r1.config_digest && !strcmp(pulled, r1.config_digest),
	      "resolved %s, host 1 pulled .Image %s", nz(r1.config_digest), nz(pulled));
	printf("lab: %s -> %s (host 1 .Image %s)\n", ref, nz(r1.config_digest), nz(pulled));
	if (getenv("LAB_IMAGE_ID_v1"))
		CHECK(!strcmp(getenv("LAB_IMAGE_ID_v1"), nz(r1.config_digest)), "LAB_IMAGE_ID_v1 %s",
		      getenv("LAB_IMAGE_ID_v1"));
	free(pulled);
	free(ref);

	ref = xasprintf("%s/optimus:no-such-tag-%d", plain, (int)getpid());
	CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_NOT_FOUND, "lab missing tag: %s", nz(err));
	registry_result_release(&r);
	free(ref);

	if (authreg && user && pw) {
		struct registry_client *bad = registry_client_new(&o);

		registry_client_set_credentials(c, authreg, user, pw);
		ref = xasprintf("%s/optimus:v1", authreg);
		CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "lab auth v1: %s", nz(err));
		CHECK(!strcmp(nz(r.config_digest), nz(r1.config_digest)), "auth registry identity %s vs %s",
		      nz(r.config_digest), nz(r1.config_digest));
		registry_result_release(&r);
		/* and a pull from the auth registry on host 1, with a throwaway docker config */
		if (getenv("LAB_HOST_1") && getenv("LAB_SSH_KEY")) {
			script = xasprintf("set -e\nd=$(mktemp -d)\ntrap 'rm -rf \"$d\"' EXIT\nimg='%s'\n"
					   "printf '%%s' '%s' | DOCKER_CONFIG=$d docker login -u '%s' --password-stdin '%s' >/dev/null 2>&1\n"
					   "DOCKER_CONFIG=$d docker pull -q \"$img\" >/dev/null\n"
					   "c=$(docker create \"$img\")\ndocker inspect --format '{{.Image}}' \"$c\"\n"
					   "docker rm \"$c\" >/dev/null\n", ref, pw, user, authreg);
			pulled = ssh_host1(dir, script);
			free(script);
			CHECK(pulled && !strcmp(pulled, nz(r1.config_digest)), "auth pull .Image %s", nz(pulled));
			free(pulled);
		}
		free(ref);
		ref = xasprintf("%s/optimus:no-such-tag", authreg);
		CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_NOT_FOUND, "lab auth missing: %s", nz(err));
		registry_result_release(&r);
		free(ref);

		/* docker config credentials over plain HTTP to a host that is not
		 * loopback (the bridge address): sent by default, withheld under
		 * no_docker_config_over_http */
		{
			char *cfgp = xasprintf("%s/lab-docker-config.json", dir);
			char *cfgt = sh_out("printf '{\"auths\":{\"%s\":{\"auth\":\"%%s\"}}}' \"$(printf '%%s:%%s' '%s' '%s' | base64 -w0)\"",
					    authreg, user, pw);
			struct registry_options dc = { .docker_config = cfgp };
			struct registry_options guarded = { .docker_config = cfgp, .no_docker_config_over_http = 1 };
			struct registry_client *d;

			CHECK(cfgt && tu_write_file(cfgp, cfgt) == 0, "write lab docker config");
			ref = xasprintf("%s/optimus:v1", authreg);
			d = registry_client_new(&dc);
			registry_client_add_insecure(d, authreg);
			CHECK(resolve(d, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "lab docker config creds: %s", nz(err));
			registry_result_release(&r);
			registry_client_free(d);
			d = registry_client_new(&guarded);
			registry_client_add_insecure(d, authreg);
			rc = resolve(d, ref, &r, &err);
			CHECK(rc == PLUMB_EAUTH, "lab guarded docker config rc %d: %s", rc, nz(err));
			CHECK(err && strstr(err, "no credentials sent") && !strstr(err, pw), "guarded message: %s", nz(err));
			free(err);
			err = NULL;
			registry_client_free(d);
			free(ref);
			free(cfgt);
			unlink(cfgp);
			free(cfgp);
		}

		registry_client_add_insecure(bad, authreg);
		registry_client_set_credentials(bad, authreg, user, "definitely-wrong");
		ref = xasprintf("%s/optimus:v1", authreg);
		rc = resolve(bad, ref, &r, &err);
		CHECK(rc == PLUMB_EAUTH, "lab wrong password rc %d: %s", rc, nz(err));
		CHECK(err && !strstr(err, "definitely-wrong"), "password in message");
		free(err);
		err = NULL;
		free(ref);
		registry_client_free(bad);
	}
	/* the other lab images: identity equals the image id the lab built */
	{
		static const char *const imgs[][2] = { { "postgres:17", "LAB_IMAGE_ID_postgres" },
							 { "caddy:2", "LAB_IMAGE_ID_caddy" },
							 { "optimus:v2", "LAB_IMAGE_ID_v2" } };
		for (size_t i = 0; i < sizeof(imgs) / sizeof(imgs[0]); i++) {
			const char *want = getenv(imgs[i][1]);
			if (!want)
				continue;
			ref = xasprintf("%s/%s", plain, imgs[i][0]);
			CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "lab %s: %s", ref, nz(err));
			CHECK(!strcmp(nz(r.config_digest), want), "lab %s: %s, want %s", ref, nz(r.config_digest), want);
			registry_result_release(&r);
			free(ref);
		}
	}
	/* lookup time against the lab registry (bridge address), fresh client each time */
	{
		double t0, sum = 0;
		ref = xasprintf("%s/optimus:v3", plain);
		for (int i = 0; i < 10; i++) {
			struct registry_client *f = registry_client_new(&o);
			registry_client_add_insecure(f, plain);
			t0 = prov_now_ms();
			CHECK(registry_resolve(f, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "timing v3: %s", nz(err));
			sum += prov_now_ms() - t0;
			registry_result_release(&r);
			registry_client_free(f);
		}
		printf("timing (lab registry %s, new client each time, mean of 10): %.2f ms\n", plain, sum / 10);
		free(ref);
	}
	if (local) {
		ref = xasprintf("%s/optimus:v1", local);
		CHECK(resolve(c, ref, &r, &err) == 0 && r.status == REGISTRY_FOUND, "lab local v1: %s", nz(err));
		CHECK(!strcmp(nz(r.config_digest), nz(r1.config_digest)), "local registry identity");
		registry_result_release(&r);
		free(ref);
	}
	registry_result_release(&r1);
	free(err);
	registry_client_free(c);
}

int main(void)
{
	char *dir, *base = NULL, *script = NULL;
	char *reg_plain = NULL, *reg_basic = NULL, *reg_tok = NULL, *yml = NULL, *logp = NULL;
	struct pushed p = { 0 };
	int port_plain, port_basic, port_tok, port_http, port_badrealm, port_tls;
	char *tls_ca = NULL;
	pid_t pid;

	umask(077);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	dir = tu_tmpdir("treg");
	if (!dir)
		return 1;
	script = find_token_server();
	port_plain = tu_free_port();
	port_basic = tu_free_port();
	port_tok = tu_free_port();
	port_http = tu_free_port();
	port_badrealm = tu_free_port();
	port_tls = tu_free_port();
	reg_plain = xasprintf("127.0.0.1:%d", port_plain);
	reg_basic = xasprintf("127.0.0.1:%d", port_basic);
	reg_tok = xasprintf("127.0.0.1:%d", port_tok);
	tls_ca = xasprintf("%s/tls.pem", dir);

	if (tu_sh("cd %s && mkdir -p data www/cgi-bin && "
		"openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem "
		"-subj /CN=plumb-test-token -days 1 2>/dev/null && "
		"htpasswd -Bbn alice 'correct horse' > htpasswd 2>/dev/null && "
		"echo '/cgi-bin:tuser:tpass-s3cret' > httpd.conf && "
		"openssl req -x509 -newkey rsa:2048 -nodes -keyout tls.key -out tls.pem "
		"-subj /CN=127.0.0.2 -addext subjectAltName=IP:127.0.0.2 -days 1 2>/dev/null",
		dir) < 0) {
		e2e_failed++;
		goto out;
	}
	{
		char *push = xasprintf("%s/push.sh", dir);
		char *env = xasprintf("%s/www/token.env", dir);
		char *envtext = xasprintf("KEY=%s/key.pem\nCERT=%s/cert.pem\nISSUER=plumb-test-issuer\n"
					  "SERVICE=plumb-test-registry\nLOG=%s/token.log\n", dir, dir, dir);
		tu_write_file(push, push_sh);
		tu_write_file(env, envtext);
		free(push);
		free(env);
		free(envtext);
	}
	/* three registries on one storage: plain, Basic, Bearer */
	{
		static const char *const kinds[] = { "plain", "basic", "token", "badrealm", "tls" };
		int ports[] = { port_plain, port_basic, port_tok, port_badrealm, port_tls };
		for (int i = 0; i < 5; i++) {
			const char *ip = i == 4 ? "127.0.0.2" : "127.0.0.1";
			char *auth = i == 1 ? xasprintf("auth:\n  htpasswd:\n    realm: plumb-test\n    path: %s/htpasswd\n", dir)
				   : i == 2 || i == 3
					   ? xasprintf("auth:\n  token:\n    realm: http://%s:%d/cgi-bin/token\n"
						       "    service: plumb-test-registry\n    issuer: plumb-test-issuer\n"
						       "    rootcertbundle: %s/cert.pem\n",
						       i == 3 ? "127.0.0.2" : "127.0.0.1", port_http, dir)
				   : i == 4 ? xasprintf("  tls:\n    certificate: %s/tls.pem\n    key: %s/tls.key\n", dir, dir)
					    : xstrdup("");
			char *text = xasprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
					       "storage:\n  filesystem:\n    rootdirectory: %s/data\n"
					       "http:\n  addr: %s:%d\n%s", dir, ip, ports[i], auth);
			char *url = xasprintf("%s://%s:%d/v2/", i == 4 ? "https" : "http", ip, ports[i]);
			char *argv[] = { "docker-registry", "serve", NULL, NULL };
			yml = xasprintf("%s/registry-%s.yml", dir, kinds[i]);
			logp = xasprintf("%s/registry-%s.log", dir, kinds[i]);
			tu_write_file(yml, text);
			argv[2] = yml;
			pid = spawn(logp, argv);
			if (pid < 0 || wait_ready(url, pid, 1, i == 4 ? tls_ca : NULL) < 0) {
				fprintf(stderr, "t_registry: the %s registry did not start (log %s)\n", kinds[i], logp);
				e2e_failed++;
				free(auth), free(text), free(url), free(yml), free(logp);
				yml = logp = NULL;
				goto out;
			}
			free(auth), free(text), free(url), free(yml), free(logp);
			yml = logp = NULL;
		}
	}
	/* the token endpoint */
	if (!script) {
		fprintf(stderr, "t_registry: tests/e2e/token_server.sh not found\n");
		e2e_failed++;
	} else {
		char *home = xasprintf("%s/www", dir), *conf = xasprintf("%s/httpd.conf", dir);
		char *listen = xasprintf("127.0.0.1:%d", port_http), *url;
		char *argv[] = { "busybox", "httpd", "-f", "-p", listen, "-h", home, "-c", conf, "-r", "plumb-test", NULL };
		tu_sh("cp '%s' %s/www/cgi-bin/token && chmod 755 %s/www/cgi-bin/token", script, dir, dir);
		logp = xasprintf("%s/httpd.log", dir);
		pid = spawn(logp, argv);
		url = xasprintf("http://%s/", listen);
		if (pid < 0 || wait_ready(url, pid, 0, NULL) < 0) {
			fprintf(stderr, "t_registry: the token endpoint did not start\n");
			e2e_failed++;
		}
		free(url), free(home), free(conf), free(listen), free(logp);
		logp = NULL;
	}

	base = xasprintf("http://%s", reg_plain);
	if (push_images(dir, base, &p) < 0) {
		fprintf(stderr, "t_registry: pushing the test images failed\n");
		e2e_failed++;
		goto out;
	}
	test_plain(reg_plain, &p);
	test_threads(reg_plain, &p);
	test_pin(reg_plain, &p);
	test_tls(port_tls, tls_ca, &p);
	test_plain_refused_for_remote_hosts();
	test_basic(reg_basic, dir, &p);
	if (script) {
		test_bearer(reg_tok, dir, &p);
		test_bad_realm(port_badrealm, dir);
		test_untrusted_realm(reg_tok, port_badrealm, port_http, dir, &p);
	}
	test_timing(reg_plain, &p);
	if (getenv("LAB_REGISTRY"))
		test_lab(dir);
	else
		printf("t_registry: LAB_REGISTRY not set; the lab part is skipped\n");
out:
	stop_all();
	if (!getenv("T_KEEP"))
		tu_rm_rf(dir);
	free(dir);
	pushed_free(&p);
	free(base);
	free(script);
	free(reg_plain);
	free(reg_basic);
	free(reg_tok);
	free(tls_ca);
	curl_global_cleanup();
	return e2e_finish("t_registry");
}
