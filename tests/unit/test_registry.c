/* Registry client pieces that need no network: references, challenges,
 * manifests, docker config.json. */
#include "providers/registry.h"
#include "state/util.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define DD "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

struct ref_case {
	const char *in;
	const char *domain, *host, *path, *tag, *digest; /* domain NULL = must fail */
	const char *err_part;
};

static const struct ref_case ref_cases[] = {
	{ "postgres:17", "docker.io", "registry-1.docker.io", "library/postgres", "17", NULL, NULL },
	{ "postgres", "docker.io", "registry-1.docker.io", "library/postgres", "latest", NULL, NULL },
	{ "docker.io/library/postgres:17", "docker.io", "registry-1.docker.io", "library/postgres", "17", NULL, NULL },
	{ "docker.io/postgres:17", "docker.io", "registry-1.docker.io", "library/postgres", "17", NULL, NULL },
	{ "index.docker.io/library/busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest", NULL, NULL },
	{ "basecamp/kamal-proxy:v0.8.4", "docker.io", "registry-1.docker.io", "basecamp/kamal-proxy", "v0.8.4", NULL, NULL },
	{ "a/b/c:t", "docker.io", "registry-1.docker.io", "a/b/c", "t", NULL, NULL },
	{ "localhost:5555/optimus:abc", "localhost:5555", "localhost:5555", "optimus", "abc", NULL, NULL },
	{ "localhost/optimus", "localhost", "localhost", "optimus", "latest", NULL, NULL },
	{ "localhost:5000/team/app", "localhost:5000", "localhost:5000", "team/app", "latest", NULL, NULL },
	{ "10.1.2.3:5000/optimus:v1", "10.1.2.3:5000", "10.1.2.3:5000", "optimus", "v1", NULL, NULL },
	{ "registry.example.com:443/optimus", "registry.example.com:443", "registry.example.com:443", "optimus", "latest", NULL, NULL },
	{ "[::1]:5000/optimus:v2", "[::1]:5000", "[::1]:5000", "optimus", "v2", NULL, NULL },
	{ "ghcr.io/a/b@sha256:" D64, "ghcr.io", "ghcr.io", "a/b", NULL, "sha256:" D64, NULL },
	{ "ghcr.io/a/b:v1@sha256:" D64, "ghcr.io", "ghcr.io", "a/b", "v1", "sha256:" D64, NULL },
	{ "registry.example.com/team/my_app.web-1:1.2.3", "registry.example.com", "registry.example.com", "team/my_app.web-1", "1.2.3", NULL, NULL },
	{ "my__app:Tag_1", "docker.io", "registry-1.docker.io", "library/my__app", "Tag_1", NULL, NULL },
	{ "optimus:0123456789abcdef0123456789abcdef01234567", "docker.io", "registry-1.docker.io", "library/optimus",
	  "0123456789abcdef0123456789abcdef01234567", NULL, NULL },
	{ "Upper/app", "Upper", "Upper", "app", "latest", NULL, NULL }, /* Docker: an uppercase first component is a registry */
	{ "", NULL, NULL, NULL, NULL, NULL, "empty" },
	{ "Postgres:17", NULL, NULL, NULL, NULL, NULL, "invalid repository name" },
	{ "postgres:", NULL, NULL, NULL, NULL, NULL, "invalid tag" },
	{ "postgres:bad tag", NULL, NULL, NULL, NULL, NULL, "invalid tag" },
	{ "postgres:.hidden", NULL, NULL, NULL, NULL, NULL, "invalid tag" },
	{ "postgres@sha256:abc", NULL, NULL, NULL, NULL, NULL, "digest" },
	{ "postgres@md5:" D64, NULL, NULL, NULL, NULL, NULL, "digest" },
	{ "repo//x", NULL, NULL, NULL, NULL, NULL, "invalid repository name" },
	{ "-repo", NULL, NULL, NULL, NULL, NULL, "invalid repository name" },
	{ "repo/", NULL, NULL, NULL, NULL, NULL, "invalid repository name" },
	{ "example.com:abc/repo", NULL, NULL, NULL, NULL, NULL, "invalid registry" },
	{ "localhost:5000/", NULL, NULL, NULL, NULL, NULL, "invalid repository name" },
	{ "host..com/repo", NULL, NULL, NULL, NULL, NULL, "invalid registry" },
	{ "a/$(reboot)", NULL, NULL, NULL, NULL, NULL, "invalid repository name" },
};

T_TEST(ref_parse_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(ref_cases); i++) {
		const struct ref_case *tc = &ref_cases[i];
		struct registry_ref r = { 0 };
		struct plumb_err err = { 0 };
		int rc = registry_ref_parse(&r, tc->in, &err);

		if (!tc->domain) {
			T_INTEQ(rc, PLUMB_EINVAL);
			if (rc == 0)
				fprintf(stderr, "  case '%s' parsed but should fail\n", tc->in);
			T_CONTAINS(err.msg, tc->err_part);
			continue;
		}
		if (rc != 0) {
			T_FAIL_AT("case '%s' failed: %s", tc->in, err.msg);
			continue;
		}
		T_STREQ(r.domain, tc->domain);
		T_STREQ(r.host, tc->host);
		T_STREQ(r.path, tc->path);
		T_STREQ(r.tag, tc->tag);
		T_STREQ(r.digest, tc->digest);
		T_INTEQ(err.code, 0);
		registry_ref_release(&r);
	}
}

T_TEST(ref_string_normalises)
{
	struct registry_ref r = { 0 };
	struct plumb_err err = { 0 };
	char *s;

	T_REQUIRE(registry_ref_parse(&r, "postgres", &err) == 0);
	s = registry_ref_string(&r);
	T_STREQ(s, "docker.io/library/postgres:latest");
	free(s);
	registry_ref_release(&r);
	T_REQUIRE(registry_ref_parse(&r, "ghcr.io/a/b@" DA, &err) == 0);
	s = registry_ref_string(&r);
	T_STREQ(s, "ghcr.io/a/b@" DA);
	free(s);
	registry_ref_release(&r);
}

T_TEST(challenge_bearer_with_commas_in_scope)
{
	struct registry_challenge ch;

	T_REQUIRE(registry_challenge_parse(&ch,
		"Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
		"scope=\"repository:library/postgres:pull,push\"") == 0);
	T_STREQ(ch.scheme, "Bearer");
	T_STREQ(ch.realm, "https://auth.docker.io/token");
	T_STREQ(ch.service, "registry.docker.io");
	T_STREQ(ch.scope, "repository:library/postgres:pull,push");
	T_CHECK(ch.error == NULL);
	registry_challenge_release(&ch);
}

T_TEST(challenge_spacing_escapes_tokens_and_error)
{
	struct registry_challenge ch;

	T_REQUIRE(registry_challenge_parse(&ch,
		"  bearer   Realm = \"http://127.0.0.1:9/tok?x=\\\"y\\\"\" ,  service=reg ,"
		"error=\"insufficient_scope\", scope=\"repository:a/b:pull\"") == 0);
	T_STREQ(ch.scheme, "bearer");
	T_STREQ(ch.realm, "http://127.0.0.1:9/tok?x=\"y\"");
	T_STREQ(ch.service, "reg");
	T_STREQ(ch.error, "insufficient_scope");
	T_STREQ(ch.scope, "repository:a/b:pull");
	registry_challenge_release(&ch);
}

T_TEST(challenge_basic_and_next_challenge)
{
	struct registry_challenge ch;

	T_REQUIRE(registry_challenge_parse(&ch, "Basic realm=\"Registry Realm\", Bearer realm=\"x\"") == 0);
	T_STREQ(ch.scheme, "Basic");
	T_STREQ(ch.realm, "Registry Realm");
	T_CHECK(ch.scope == NULL);
	registry_challenge_release(&ch);

	T_REQUIRE(registry_challenge_parse(&ch, "Basic") == 0);
	T_STREQ(ch.scheme, "Basic");
	T_CHECK(ch.realm == NULL);
	registry_challenge_release(&ch);

	T_CHECK(registry_challenge_parse(&ch, "") < 0);
	registry_challenge_release(&ch);
	/* unterminated quote: no crash, value up to the end */
	T_REQUIRE(registry_challenge_parse(&ch, "Bearer realm=\"https://a") == 0);
	T_STREQ(ch.realm, "https://a");
	registry_challenge_release(&ch);
}

static const char index_json[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DA "\",\"size\":1,"
	" \"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DB "\",\"size\":1,"
	" \"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DC "\",\"size\":1,"
	" \"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DD "\",\"size\":1,"
	" \"annotations\":{\"vnd.docker.reference.type\":\"attestation-manifest\"},"
	" \"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"}}]}";

T_TEST(manifest_index_picks_platform)
{
	struct registry_manifest m;
	struct plumb_err err = { 0 };

	T_REQUIRE(registry_manifest_parse(&m, index_json, strlen(index_json),
					  "application/vnd.oci.image.index.v1+json", NULL, &err) == 0);
	T_INTEQ(m.kind, REGISTRY_MANIFEST_INDEX);
	T_STREQ(m.platform_digest, DB);
	T_STREQ(m.media_type, "application/vnd.oci.image.index.v1+json");
	T_CHECK(m.config_digest == NULL);
	registry_manifest_release(&m);

	T_REQUIRE(registry_manifest_parse(&m, index_json, strlen(index_json), NULL, "linux/arm64", &err) == 0);
	T_STREQ(m.platform_digest, DC);
	registry_manifest_release(&m);
	T_REQUIRE(registry_manifest_parse(&m, index_json, strlen(index_json), NULL, "linux/arm/v7", &err) == 0);
	T_STREQ(m.platform_digest, DA);
	registry_manifest_release(&m);

	T_INTEQ(registry_manifest_parse(&m, index_json, strlen(index_json), NULL, "linux/s390x", &err),
		PLUMB_ENOTFOUND);
	T_CONTAINS(err.msg, "no manifest for platform linux/s390x");
	T_CONTAINS(err.msg, "linux/amd64");
	T_NOT_CONTAINS(err.msg, "unknown");
}

T_TEST(manifest_docker_list_by_content_type)
{
	static const char list[] =
		"{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"" DA "\","
		"\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}";
	struct registry_manifest m;
	struct plumb_err err = { 0 };

	T_REQUIRE(registry_manifest_parse(&m, list, strlen(list),
					  "application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8",
					  "linux/amd64", &err) == 0);
	T_INTEQ(m.kind, REGISTRY_MANIFEST_INDEX);
	T_STREQ(m.media_type, "application/vnd.docker.distribution.manifest.list.v2+json");
	T_STREQ(m.platform_digest, DA);
	registry_manifest_release(&m);
}

T_TEST(manifest_image_gives_config_digest)
{
	static const char v2[] =
		"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
		"\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":7023,\"digest\":\"" DC "\"},"
		"\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":1,\"digest\":\"" DD "\"}]}";
	static const char oci_nomt[] =
		"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" DA "\"},\"layers\":[]}";
	struct registry_manifest m;
	struct plumb_err err = { 0 };

	T_REQUIRE(registry_manifest_parse(&m, v2, strlen(v2), "application/json", NULL, &err) == 0);
	T_INTEQ(m.kind, REGISTRY_MANIFEST_IMAGE);
	T_STREQ(m.config_digest, DC);
	T_STREQ(m.media_type, "application/vnd.docker.distribution.manifest.v2+json");
	T_CHECK(m.platform_digest == NULL);
	registry_manifest_release(&m);

	T_REQUIRE(registry_manifest_parse(&m, oci_nomt, strlen(oci_nomt),
					  "application/vnd.oci.image.manifest.v1+json", NULL, &err) == 0);
	T_STREQ(m.config_digest, DA);
	registry_manifest_release(&m);
}

T_TEST(manifest_rejects_bad_input)
{
	static const char *const bad[][2] = {
		{ "not json", "not a JSON object" },
		{ "[1,2]", "not a JSON object" },
		{ "{\"schemaVersion\":1,\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}", "unsupported manifest media type" },
		{ "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{}}", "no config.digest" },
		{ "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"digest\":\"sha256:../../x\"}}", "not a sha256 digest" },
		{ "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\"}", "no 'manifests' list" },
		{ "{\"schemaVersion\":2}", "no media type" },
		{ "{\"a\":1,\"a\":2}", "not a JSON object" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct registry_manifest m;
		struct plumb_err err = { 0 };
		T_INTEQ(registry_manifest_parse(&m, bad[i][0], strlen(bad[i][0]), NULL, NULL, &err), PLUMB_EPROTOCOL);
		T_INTEQ(err.code, PLUMB_EPROTOCOL);
		T_CONTAINS(err.msg, bad[i][1]);
	}
}

T_TEST(docker_config_auth_extraction)
{
	/* "alice:s3cr:et" and "bob:pw" in base64 */
	static const char cfg[] =
		"{\"auths\":{"
		"\"https://index.docker.io/v1/\":{\"auth\":\"Ym9iOnB3\"},"
		"\"localhost:5555\":{\"auth\":\"YWxpY2U6czNjcjpldA==\"},"
		"\"https://ghcr.io\":{\"username\":\"carol\",\"password\":\"pw2\"},"
		"\"quay.io\":{}"
		"},\"credsStore\":\"desktop\"}";
	char *user, *pass, *note;
	struct plumb_err err = { 0 };

	T_INTEQ(registry_docker_config_auth(cfg, strlen(cfg), "localhost:5555", &user, &pass, &note, &err), 1);
	T_STREQ(user, "alice");
	T_STREQ(pass, "s3cr:et");
	T_CHECK(note == NULL);
	free(user);
	util_free_secret(pass);

	T_INTEQ(registry_docker_config_auth(cfg, strlen(cfg), "docker.io", &user, &pass, &note, &err), 1);
	T_STREQ(user, "bob");
	T_STREQ(pass, "pw");
	free(user);
	util_free_secret(pass);

	T_INTEQ(registry_docker_config_auth(cfg, strlen(cfg), "ghcr.io", &user, &pass, &note, &err), 1);
	T_STREQ(user, "carol");
	free(user);
	util_free_secret(pass);

	T_INTEQ(registry_docker_config_auth(cfg, strlen(cfg), "quay.io", &user, &pass, &note, &err), 0);
	T_CHECK(user == NULL && pass == NULL);
	T_CONTAINS(note, "credsStore 'desktop'");
	free(note);

	/* a host with another port does not match */
	T_INTEQ(registry_docker_config_auth(cfg, strlen(cfg), "localhost:5556", &user, &pass, NULL, &err), 0);
}

T_TEST(docker_config_errors_never_show_values)
{
	static const char bad_b64[] = "{\"auths\":{\"r.example\":{\"auth\":\"!!hunter2!!\"}}}";
	static const char no_colon[] = "{\"auths\":{\"r.example\":{\"auth\":\"aHVudGVyMg==\"}}}"; /* "hunter2" */
	static const char helper[] = "{\"credHelpers\":{\"r.example\":\"ecr-login\"}}";
	char *user, *pass, *note;
	struct plumb_err err = { 0 };

	T_INTEQ(registry_docker_config_auth(bad_b64, strlen(bad_b64), "r.example", &user, &pass, &note, &err), PLUMB_EINVAL);
	T_CONTAINS(err.msg, "auths.r.example.auth");
	T_NOT_CONTAINS(err.msg, "hunter2");
	T_INTEQ(registry_docker_config_auth(no_colon, strlen(no_colon), "r.example", &user, &pass, &note, &err), PLUMB_EINVAL);
	T_NOT_CONTAINS(err.msg, "hunter2");
	T_NOT_CONTAINS(err.msg, "aHVudGVyMg");
	T_INTEQ(registry_docker_config_auth(helper, strlen(helper), "r.example", &user, &pass, &note, &err), 0);
	T_CONTAINS(note, "ecr-login");
	free(note);
	T_INTEQ(registry_docker_config_auth("nope", 4, "r.example", &user, &pass, &note, &err), PLUMB_EINVAL);
}

T_TEST(resolve_rejects_bad_reference_without_network)
{
	struct registry_client *c = registry_client_new(NULL);
	struct registry_result res;
	struct plumb_err err = { 0 };

	T_INTEQ(registry_lookup(c, "Bad:Ref:x", &res, &err), PLUMB_EINVAL);
	T_INTEQ(err.code, PLUMB_EINVAL);
	T_CONTAINS(err.msg, "Bad:Ref:x");
	T_INTEQ(registry_client_http_requests(c), 0);
	registry_client_free(c);
}

T_TEST(resolve_unreachable_is_network_error)
{
	/* port 9 on loopback: nothing listens (connection refused, no network needed) */
	struct registry_options o = { .docker_config = "", .connect_timeout_ms = 2000 };
	struct registry_client *c = registry_client_new(&o);
	struct registry_result res;
	struct plumb_err err = { 0 };

	registry_client_set_credentials(c, "127.0.0.1:9", "u", "topsecretpw");
	T_INTEQ(registry_lookup(c, "127.0.0.1:9/optimus:v1", &res, &err), PLUMB_ENETWORK);
	T_CONTAINS(err.msg, "127.0.0.1:9");
	T_NOT_CONTAINS(err.msg, "topsecretpw");
	registry_client_free(c);
}

/*
 * A recording HTTP server on 127.0.0.1 (one request per connection): every
 * request line and its Authorization header go to `log`; requests for
 * /v2/... get 401 with `challenge`, anything else (a token realm) 401 Basic.
 * A request for a non-loopback host reaches it through http_proxy, which
 * libcurl sends as an absolute URL without resolving the name.
 */
struct rec_srv {
	int fd;
	int port;
	const char *challenge;
	pthread_mutex_t mu;
	struct sbuf log;
	pthread_t thr;
};

static void *rec_srv_run(void *arg)
{
	struct rec_srv *s = arg;
	char buf[8192];

	for (;;) {
		int cfd = accept(s->fd, NULL, NULL);
		size_t n = 0;
		ssize_t k;
		char *line, *auth, *resp;

		if (cfd < 0)
			break;
		while (n < sizeof(buf) - 1 && (k = read(cfd, buf + n, sizeof(buf) - 1 - n)) > 0) {
			n += (size_t)k;
			buf[n] = '\0';
			if (strstr(buf, "\r\n\r\n"))
				break;
		}
		buf[n] = '\0';
		line = xasprintf("%.*s", (int)strcspn(buf, "\r\n"), buf);
		auth = strcasestr(buf, "\r\nAuthorization: ");
		pthread_mutex_lock(&s->mu);
		sbuf_addf(&s->log, "%s auth=%.*s\n", line, auth ? (int)strcspn(auth + 17, "\r\n") : 1,
			  auth ? auth + 17 : "-");
		pthread_mutex_unlock(&s->mu);
		resp = xasprintf("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: %s\r\n"
				 "Content-Length: 0\r\nConnection: close\r\n\r\n",
				 strstr(line, "/v2/") ? s->challenge : "Basic realm=\"t\"");
		if (write(cfd, resp, strlen(resp)) < 0)
			(void)0;
		free(resp);
		free(line);
		close(cfd);
	}
	return NULL;
}

static void rec_srv_start(struct rec_srv *s, const char *challenge_fmt)
{
	struct sockaddr_in a = { 0 };
	socklen_t alen = sizeof(a);

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	sbuf_init(&s->log, 1 << 16);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->fd, 16) < 0 ||
	    getsockname(s->fd, (struct sockaddr *)&a, &alen) < 0)
		abort();
	s->port = ntohs(a.sin_port);
	s->challenge = challenge_fmt;
	pthread_create(&s->thr, NULL, rec_srv_run, s);
}

static void rec_srv_stop(struct rec_srv *s)
{
	shutdown(s->fd, SHUT_RDWR);
	pthread_join(s->thr, NULL);
	close(s->fd);
	sbuf_release(&s->log);
	pthread_mutex_destroy(&s->mu);
}

/* Resolves `ref` with a docker config holding credentials for `domain`; returns the rc. */
static int resolve_with_docker_config(int guard, const char *insecure, const char *domain,
				      const char *ref, struct plumb_err *err)
{
	char *dir = tu_tmpdir("reg"), *path = xasprintf("%s/config.json", dir);
	/* base64("runner:runner-secret") */
	char *cfg = xasprintf("{\"auths\":{\"%s\":{\"auth\":\"cnVubmVyOnJ1bm5lci1zZWNyZXQ=\"}}}", domain);
	struct registry_options o = { .docker_config = path, .connect_timeout_ms = 2000,
				      .timeout_ms = 5000, .no_docker_config_over_http = guard };
	struct registry_client *c;
	struct registry_result res;
	int rc;

	T_CHECK(tu_write_file(path, cfg) == 0);
	c = registry_client_new(&o);
	if (insecure)
		registry_client_add_insecure(c, insecure);
	rc = registry_lookup(c, ref, &res, err);
	if (rc == 0)
		registry_result_release(&res);
	registry_client_free(c);
	tu_rm_rf(dir);
	free(dir);
	free(path);
	free(cfg);
	return rc;
}

T_TEST(docker_config_creds_not_sent_over_plain_http_to_remote_host)
{
	struct rec_srv s;
	char *proxy;
	struct plumb_err err = { 0 };
	const char *old = getenv("http_proxy");
	char *saved = old ? xstrdup(old) : NULL;

	rec_srv_start(&s, "Basic realm=\"r\"");
	proxy = xasprintf("http://127.0.0.1:%d", s.port);
	setenv("http_proxy", proxy, 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");

	/* without the option: sent (what an untrusted plan did) */
	T_INTEQ(resolve_with_docker_config(0, "reg.plumb-test.invalid:5999", "reg.plumb-test.invalid:5999",
					   "reg.plumb-test.invalid:5999/optimus:v1", &err),
		PLUMB_EAUTH);
	T_CONTAINS(s.log.buf, "GET http://reg.plumb-test.invalid:5999/v2/optimus/manifests/v1");
	T_CONTAINS(s.log.buf, "auth=Basic cnVubmVyOnJ1bm5lci1zZWNyZXQ=");
	plumb_err_reset(&err);
	s.log.len = 0;
	s.log.buf[0] = '\0';

	/* with it: the request goes out, anonymously, and the refusal says why */
	T_INTEQ(resolve_with_docker_config(1, "reg.plumb-test.invalid:5999", "reg.plumb-test.invalid:5999",
					   "reg.plumb-test.invalid:5999/optimus:v1", &err),
		PLUMB_EAUTH);
	T_CONTAINS(s.log.buf, "GET http://reg.plumb-test.invalid:5999/v2/optimus/manifests/v1");
	T_NOT_CONTAINS(s.log.buf, "auth=Basic");
	T_CONTAINS(err.msg, "no credentials sent");
	T_NOT_CONTAINS(err.msg, "runner-secret");
	plumb_err_reset(&err);

	if (saved)
		setenv("http_proxy", saved, 1);
	else
		unsetenv("http_proxy");
	free(saved);
	free(proxy);
	rec_srv_stop(&s);
}

T_TEST(docker_config_creds_still_go_to_loopback_over_plain_http)
{
	struct rec_srv s;
	char *dom, *ref;
	struct plumb_err err = { 0 };

	unsetenv("http_proxy");
	rec_srv_start(&s, "Basic realm=\"r\"");
	dom = xasprintf("127.0.0.1:%d", s.port);
	ref = xasprintf("%s/optimus:v1", dom);
	T_INTEQ(resolve_with_docker_config(1, NULL, dom, ref, &err), PLUMB_EAUTH);
	T_CONTAINS(s.log.buf, "auth=Basic cnVubmVyOnJ1bm5lci1zZWNyZXQ=");
	T_CONTAINS(err.msg, "refused the credentials");
	free(dom);
	free(ref);
	rec_srv_stop(&s);
}

T_TEST(docker_config_creds_not_sent_to_plain_http_token_realm)
{
	struct rec_srv s;
	char *dom, *ref, *chal, *proxy;
	struct plumb_err err = { 0 };

	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	rec_srv_start(&s, NULL);
	proxy = xasprintf("http://127.0.0.1:%d", s.port);
	dom = xasprintf("127.0.0.1:%d", s.port);
	ref = xasprintf("%s/optimus:v1", dom);

	/* the registry (loopback) points to a plain-HTTP realm on another host */
	chal = xasprintf("Bearer realm=\"http://auth.plumb-test.invalid/token\",service=\"r\"");
	s.challenge = chal;
	setenv("http_proxy", proxy, 1);
	T_INTEQ(resolve_with_docker_config(1, "auth.plumb-test.invalid", dom, ref, &err), PLUMB_EAUTH);
	T_CONTAINS(s.log.buf, "GET http://auth.plumb-test.invalid/token?");
	T_NOT_CONTAINS(s.log.buf, "auth=Basic");
	T_CONTAINS(err.msg, "no credentials sent");
	plumb_err_reset(&err);
	s.log.len = 0;
	s.log.buf[0] = '\0';
	/* without the option the realm got them: the check above can fail */
	T_INTEQ(resolve_with_docker_config(0, "auth.plumb-test.invalid", dom, ref, &err), PLUMB_EAUTH);
	T_CONTAINS(s.log.buf, "auth=Basic cnVubmVyOnJ1bm5lci1zZWNyZXQ=");
	plumb_err_reset(&err);
	unsetenv("http_proxy");

	/* a realm on loopback gets them, with the option */
	s.log.len = 0;
	s.log.buf[0] = '\0';
	free(chal);
	chal = xasprintf("Bearer realm=\"http://127.0.0.1:%d/token\",service=\"r\"", s.port);
	s.challenge = chal;
	T_INTEQ(resolve_with_docker_config(1, NULL, dom, ref, &err), PLUMB_EAUTH);
	T_CONTAINS(s.log.buf, "GET /token?");
	T_CONTAINS(s.log.buf, "auth=Basic cnVubmVyOnJ1bm5lci1zZWNyZXQ=");
	free(chal);
	free(proxy);
	free(dom);
	free(ref);
	rec_srv_stop(&s);
}

/* Resolves `ref` anonymously with restrict_token_realm; the rc, *err and the requests sent. */
static int resolve_restricted(int restrict_realm, const char *allowed, const char *ref, struct plumb_err *err,
			      unsigned long *requests)
{
	struct registry_options o = { .docker_config = "", .connect_timeout_ms = 2000, .timeout_ms = 5000,
				      .restrict_token_realm = restrict_realm, .allowed_realm_hosts = allowed };
	struct registry_client *c = registry_client_new(&o);
	struct registry_result res;
	int rc;

	plumb_err_reset(err);
	registry_client_set_credentials(c, "127.0.0.1", "u", "pw");
	rc = registry_lookup(c, ref, &res, err);
	if (rc == 0)
		registry_result_release(&res);
	*requests = registry_client_http_requests(c);
	registry_client_free(c);
	return rc;
}

static void srv_log_clear(struct rec_srv *s)
{
	pthread_mutex_lock(&s->mu);
	s->log.len = 0;
	s->log.buf[0] = '\0';
	pthread_mutex_unlock(&s->mu);
}

T_TEST(token_realm_restricted_in_untrusted_runs)
{
	struct rec_srv reg, realm;
	char *ref, *chal, *want, *allow;
	struct plumb_err err = { 0 };
	unsigned long n = 0;

	unsetenv("http_proxy");
	rec_srv_start(&reg, NULL);
	rec_srv_start(&realm, NULL);
	ref = xasprintf("127.0.0.1:%d/optimus:v1", reg.port);

	/* a plain-HTTP loopback realm that is not the registry's origin: refused, no request */
	chal = xasprintf("Bearer realm=\"http://127.0.0.1:%d/token\",service=\"r\"", realm.port);
	reg.challenge = chal;
	T_INTEQ(resolve_restricted(1, NULL, ref, &err, &n), PLUMB_EUNTRUSTED);
	want = xasprintf("token realm host '127.0.0.1:%d' refused: plain HTTP", realm.port);
	T_CONTAINS(err.msg, want);
	T_CONTAINS(err.msg, "PLUMB_REGISTRY_REALM_HOSTS");
	T_CHECK(n == 1);
	T_NOT_CONTAINS(realm.log.buf, "GET");
	free(want);

	/* without the restriction (a trusted run) the realm is asked: the check above can fail */
	T_INTEQ(resolve_restricted(0, NULL, ref, &err, &n), PLUMB_EAUTH);
	T_CONTAINS(realm.log.buf, "GET /token?");
	srv_log_clear(&realm);

	/* the invocation allows that realm host: asked */
	allow = xasprintf("ghcr.io, 127.0.0.1:%d", realm.port);
	T_INTEQ(resolve_restricted(1, allow, ref, &err, &n), PLUMB_EAUTH);
	T_CONTAINS(realm.log.buf, "GET /token?");
	srv_log_clear(&realm);
	free(allow);
	/* another port on that host is not allowed by a host:port entry */
	allow = xasprintf("127.0.0.1:%d", reg.port == 1 ? 2 : 1);
	T_INTEQ(resolve_restricted(1, allow, ref, &err, &n), PLUMB_EUNTRUSTED);
	T_NOT_CONTAINS(realm.log.buf, "GET");
	free(allow);

	/* the registry's own origin: asked */
	free(chal);
	chal = xasprintf("Bearer realm=\"http://127.0.0.1:%d/token\",service=\"r\"", reg.port);
	reg.challenge = chal;
	srv_log_clear(&reg);
	T_INTEQ(resolve_restricted(1, NULL, ref, &err, &n), PLUMB_EAUTH);
	T_CONTAINS(reg.log.buf, "GET /token?");

	/* HTTPS, but on another host: refused before any request */
	free(chal);
	chal = xstrdup("Bearer realm=\"https://auth.plumb-test.invalid/token\"");
	reg.challenge = chal;
	T_INTEQ(resolve_restricted(1, NULL, ref, &err, &n), PLUMB_EUNTRUSTED);
	T_CONTAINS(err.msg, "token realm host 'auth.plumb-test.invalid' refused: it is not the registry's host");
	T_CHECK(n == 1);

	/* user info in the realm: refused */
	free(chal);
	chal = xasprintf("Bearer realm=\"https://127.0.0.1@auth.plumb-test.invalid/token\"");
	reg.challenge = chal;
	T_INTEQ(resolve_restricted(1, "127.0.0.1", ref, &err, &n), PLUMB_EUNTRUSTED);
	T_CONTAINS(err.msg, "user info");
	T_CHECK(n == 1);

	free(chal);
	free(ref);
	rec_srv_stop(&reg);
	rec_srv_stop(&realm);
}

T_TEST(unavailable_credentials_are_never_sent)
{
	struct rec_srv s;
	struct registry_options o = { .docker_config = "", .connect_timeout_ms = 2000, .timeout_ms = 5000 };
	struct registry_client *c;
	struct registry_result res;
	char *dom, *ref, *chal;
	struct plumb_err err = { 0 };

	unsetenv("http_proxy");
	rec_srv_start(&s, "Basic realm=\"r\"");
	dom = xasprintf("127.0.0.1:%d", s.port);
	ref = xasprintf("%s/optimus:v1", dom);
	chal = xasprintf("Bearer realm=\"http://%s/token\",service=\"r\"", dom);
	for (int bearer = 0; bearer < 2; bearer++) {
		if (bearer)
			s.challenge = chal;
		srv_log_clear(&s);
		c = registry_client_new(&o);
		registry_client_set_credentials_unavailable(c, dom, "registry.password: secret PW could not be resolved");
		T_INTEQ(registry_lookup(c, ref, &res, &err), PLUMB_EAUTH);
		T_CONTAINS(err.msg, "unavailable (registry.password: secret PW could not be resolved); none sent");
		T_CONTAINS(s.log.buf, "auth=-");
		T_NOT_CONTAINS(s.log.buf, "auth=Basic");
		T_NOT_CONTAINS(s.log.buf, "GET /token");
		registry_client_free(c);
		plumb_err_reset(&err);
	}
	/* later credentials for the domain replace the unavailable mark */
	c = registry_client_new(&o);
	registry_client_set_credentials_unavailable(c, dom, NULL);
	registry_client_set_credentials(c, dom, "u", "pw");
	srv_log_clear(&s);
	T_INTEQ(registry_lookup(c, ref, &res, &err), PLUMB_EAUTH);
	T_CONTAINS(s.log.buf, "GET /token?");
	T_CONTAINS(s.log.buf, "auth=Basic dTpwdw==");
	registry_client_free(c);
	free(chal);
	free(dom);
	free(ref);
	rec_srv_stop(&s);
}

T_MAIN(T_CASE(ref_parse_table), T_CASE(ref_string_normalises),
       T_CASE(challenge_bearer_with_commas_in_scope),
       T_CASE(challenge_spacing_escapes_tokens_and_error),
       T_CASE(challenge_basic_and_next_challenge), T_CASE(manifest_index_picks_platform),
       T_CASE(manifest_docker_list_by_content_type), T_CASE(manifest_image_gives_config_digest),
       T_CASE(manifest_rejects_bad_input), T_CASE(docker_config_auth_extraction),
       T_CASE(docker_config_errors_never_show_values),
       T_CASE(resolve_rejects_bad_reference_without_network),
       T_CASE(resolve_unreachable_is_network_error),
       T_CASE(docker_config_creds_not_sent_over_plain_http_to_remote_host),
       T_CASE(docker_config_creds_still_go_to_loopback_over_plain_http),
       T_CASE(docker_config_creds_not_sent_to_plain_http_token_realm),
       T_CASE(token_realm_restricted_in_untrusted_runs),
       T_CASE(unavailable_credentials_are_never_sent))
