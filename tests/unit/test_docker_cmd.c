/*
 * The docker command builder against Kamal 2.12's own expectations.
 *
 * Golden strings are Kamal's test strings (test/commands/{app,accessory,
 * proxy}_test.rb of the 2.12 line): shell text. Ours is argv, rendered with
 * the one quoting function. Both are compared as the word lists a POSIX
 * shell makes of them: Kamal's with a small splitter ("…" with \" \\ \$ \`,
 * '…', $PWD → the SSH user's home), ours with prov_cmd_parse_strict (which
 * also proves the rendering holds no shell syntax but the operators).
 * Where Kamal's test calls `run` without a hostname, boot.rb always passes
 * one (<host>-<12 hex>): it is added to the expectation.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "providers/docker_cmd.h"
#include "state/config.h"
#include "state/desired.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#define HOME "/home/deploy"
#define SFX "0123456789ab"
#define SALT "0123456789abcdef0123456789abcdef"

/* ---- word lists ---- */

/* Kamal's shell text as words (operators are words of their own). */
static void kamal_words(const char *s, struct strvec *out)
{
	struct sbuf w;
	int in = 0;

	sbuf_init(&w, 0);
	for (const char *p = s;; p++) {
		if (*p == '\0' || *p == ' ') {
			if (in)
				strvec_push(out, w.buf);
			sbuf_reset(&w);
			in = 0;
			if (!*p)
				break;
			continue;
		}
		in = 1;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
					p++;
				sbuf_addc(&w, *p);
			}
		} else if (*p == '\'') {
			for (p++; *p && *p != '\''; p++)
				sbuf_addc(&w, *p);
		} else if (strncmp(p, "$PWD", 4) == 0) {
			sbuf_adds(&w, HOME);
			p += 3;
		} else if (*p == '\\' && p[1]) {
			sbuf_addc(&w, *++p);
		} else {
			sbuf_addc(&w, *p);
		}
	}
	sbuf_release(&w);
}

/* Our command, rendered and parsed back strictly, as words. NULL words on failure. */
static int our_words(const struct prov_cmd *c, struct strvec *out, char **rendered)
{
	static const char *const ops[] = { ";", "&&", "||", "|" };
	struct prov_cmd back;
	struct sbuf s;
	int rc;

	sbuf_init(&s, 0);
	rc = prov_cmd_render(c, &s);
	if (rc == 0)
		rc = prov_cmd_parse_strict(&back, s.buf);
	if (rc == 0) {
		for (size_t i = 0; i < back.n; i++) {
			if (i)
				strvec_push(out, ops[back.v[i].join]);
			for (size_t k = 0; k < back.v[i].argv.n; k++)
				strvec_push(out, back.v[i].argv.v[k]);
			if (back.v[i].quiet)
				strvec_push(out, "2>/dev/null");
		}
		prov_cmd_release(&back);
	}
	*rendered = sbuf_detach(&s);
	return rc;
}

#define T_SAME_WORDS(cmd, kamal) t_same_words((cmd), (kamal), __LINE__)

static void t_same_words(const struct prov_cmd *c, const char *kamal, int line)
{
	struct strvec got = { 0 }, want = { 0 };
	char *r = NULL;
	int rc = our_words(c, &got, &r);

	kamal_words(kamal, &want);
	t_checks++;
	if (rc != 0) {
		fprintf(stderr, "  FAIL line %d: render/parse failed (%d): %s\n", line, rc, r);
		t_failed_now = 1;
	} else {
		size_t i = 0;
		while (i < got.n && i < want.n && strcmp(got.v[i], want.v[i]) == 0)
			i++;
		if (i != got.n || i != want.n) {
			fprintf(stderr, "  FAIL line %d: word %zu: got \"%s\", want \"%s\"\n  ours:  %s\n  kamal: %s\n",
				line, i, i < got.n ? got.v[i] : "(end)", i < want.n ? want.v[i] : "(end)", r,
				kamal);
			t_failed_now = 1;
		}
	}
	free(r);
	strvec_release(&got);
	strvec_release(&want);
}

/* ---- fixtures ---- */

/* Kamal's app_test.rb setup. */
#define APP_YML                                                                 \
	"service: app\nimage: dhh/app\n"                                        \
	"registry:\n  username: dhh\n  password: secret\n"                      \
	"builder:\n  arch: amd64\n"                                             \
	"env:\n  secret:\n    - RAILS_MASTER_KEY\n"
#define APP_SERVERS "servers:\n  web:\n    - 1.1.1.1\n  workers:\n    - 1.1.1.2\n"
#define APP_SECRETS "RAILS_MASTER_KEY=456\n"

/* A config from yml (+ config/deploy.<dest>.yml) and its desired state at version 999. */
struct fx {
	struct config *c;
	struct desired *ds;
};

static int fx_untrusted; /* load the next configs as an untrusted run */

static int fx_load(struct fx *f, const char *yml, const char *dest, const char *dest_yml,
		   const char *secrets)
{
	char *dir = tu_tmpdir("dcmd");
	struct source *src = NULL;
	struct diags d = { 0 };
	struct config_opts o = { .destination = dest, .trusted = !fx_untrusted };
	struct desired_opts dopt = { .version = "999", .salt = SALT };
	int rc = -1;

	memset(f, 0, sizeof(*f));
	if (!dir)
		return -1;
	tu_write_in(dir, "config/deploy.yml", yml);
	if (dest) {
		char *rel = xasprintf("config/deploy.%s.yml", dest);
		tu_write_in(dir, rel, dest_yml ? dest_yml : "\n");
		free(rel);
	}
	if (secrets)
		tu_write_in(dir, dest ? ".kamal/secrets-common" : ".kamal/secrets", secrets);
	source_dir_new(&src, dir);
	if (config_load(&f->c, src, &o, &d) == 0 && desired_build(&f->ds, f->c, &dopt, &d) == 0)
		rc = 0;
	else
		diags_print(&d, stderr);
	diags_release(&d);
	source_free(src);
	tu_rm_rf(dir);
	free(dir);
	return rc;
}

static void fx_release(struct fx *f)
{
	desired_free(f->ds);
	config_free(f->c);
}

static const struct des_container *fx_find(const struct fx *f, const char *host, const char *role)
{
	const struct des_host *h = desired_host(f->ds, host);
	for (size_t i = 0; h && i < h->ncontainers; i++)
		if (strcmp(h->containers[i].role, role) == 0)
			return &h->containers[i];
	return NULL;
}

static struct dcmd_ctx fx_ctx(const struct fx *f, const char *host)
{
	struct dcmd_ctx x = { 0 };
	x.config = f->c;
	x.ds = f->ds;
	x.host = host;
	x.home = HOME;
	x.hostname_suffix = SFX;
	return x;
}

/* Builds `docker run` (target NULL) or kamal-proxy's deploy to target for
 * role on host, and compares it with Kamal's words. */
static void t_like_kamal(const struct fx *f, const char *host, const char *role, const char *target,
			 const char *kamal, int line)
{
	const struct des_container *dc = fx_find(f, host, role);
	struct dcmd_ctx x = fx_ctx(f, host);
	struct plumb_err err = { 0 };
	struct prov_cmd c;
	int rc;

	t_checks++;
	if (!dc) {
		fprintf(stderr, "  FAIL line %d: no %s on %s\n", line, role, host);
		t_failed_now = 1;
		return;
	}
	prov_cmd_init(&c);
	rc = target ? dcmd_proxy_deploy(&c, PROV_JOIN_SEQ, dc, target, &x, &err)
		    : dcmd_run(&c, PROV_JOIN_SEQ, dc, NULL, &x, &err);
	if (rc != 0) {
		fprintf(stderr, "  FAIL line %d: %s\n", line, plumb_err_msg(&err));
		t_failed_now = 1;
	} else {
		t_same_words(&c, kamal, line);
	}
	prov_cmd_release(&c);
}
#define T_RUN_LIKE_KAMAL(f, host, role, kamal) t_like_kamal((f), (host), (role), NULL, (kamal), __LINE__)
#define T_DEPLOY_LIKE_KAMAL(f, host, role, target, kamal) \
	t_like_kamal((f), (host), (role), (target), (kamal), __LINE__)

/* ---- app run (app_test.rb) ---- */

/* How every run of app-web-999 on 1.1.1.1 starts (boot.rb adds the hostname). */
#define WEB_RUN_HEAD                                                                           \
	"docker run --detach --restart unless-stopped --name app-web-999 --network kamal "     \
	"--hostname 1.1.1.1-" SFX " --env KAMAL_CONTAINER_NAME=\"app-web-999\" "               \
	"--env KAMAL_VERSION=\"999\" --env KAMAL_HOST=\"1.1.1.1\" "

T_TEST(app_run_as_kamal)
{
	struct fx f;

	T_REQUIRE(fx_load(&f, APP_YML APP_SERVERS, NULL, NULL, APP_SECRETS) == 0);
	/* "run" / "run with hostname" */
	T_RUN_LIKE_KAMAL(&f, "1.1.1.1", "web",
			 WEB_RUN_HEAD
			 "--env-file .kamal/apps/app/env/roles/web.env "
			 "--log-opt max-size=\"10m\" --label service=\"app\" --label role=\"web\" "
			 "--label destination dhh/app:999");
	fx_release(&f);
}

T_TEST(app_run_with_destination)
{
	struct fx f;

	T_REQUIRE(fx_load(&f, APP_YML APP_SERVERS, "staging", NULL, APP_SECRETS) == 0);
	T_RUN_LIKE_KAMAL(&f, "1.1.1.1", "web",
			 "docker run --detach --restart unless-stopped --name app-web-staging-999 --network kamal "
			 "--hostname 1.1.1.1-" SFX " "
			 "--env KAMAL_CONTAINER_NAME=\"app-web-staging-999\" --env KAMAL_VERSION=\"999\" "
			 "--env KAMAL_HOST=\"1.1.1.1\" --env KAMAL_DESTINATION=\"staging\" "
			 "--env-file .kamal/apps/app-staging/env/roles/web.env --log-opt max-size=\"10m\" "
			 "--label service=\"app\" --label role=\"web\" --label destination=\"staging\" dhh/app:999");
	fx_release(&f);
}

T_TEST(app_run_with_volumes)
{
	struct fx f;

	T_REQUIRE(fx_load(&f, APP_YML APP_SERVERS "volumes:\n  - /local/path:/container/path\n", NULL, NULL,
			  APP_SECRETS) == 0);
	T_RUN_LIKE_KAMAL(&f, "1.1.1.1", "web",
			 WEB_RUN_HEAD
			 "--env-file .kamal/apps/app/env/roles/web.env "
			 "--log-opt max-size=\"10m\" --volume /local/path:/container/path --label service=\"app\" "
			 "--label role=\"web\" --label destination dhh/app:999");
	fx_release(&f);
}

T_TEST(app_run_with_custom_options)
{
	struct fx f;

	T_REQUIRE(fx_load(&f, APP_YML "servers:\n  web:\n    - 1.1.1.1\n  jobs:\n    hosts:\n      - 1.1.1.2\n"
			  "    cmd: bin/jobs\n    options:\n      mount: somewhere\n      cap-add: true\n",
			  NULL, NULL, APP_SECRETS) == 0);
	T_RUN_LIKE_KAMAL(&f, "1.1.1.2", "jobs",
			 "docker run --detach --restart unless-stopped --name app-jobs-999 --network kamal "
			 "--hostname 1.1.1.2-" SFX " "
			 "--env KAMAL_CONTAINER_NAME=\"app-jobs-999\" --env KAMAL_VERSION=\"999\" "
			 "--env KAMAL_HOST=\"1.1.1.2\" --env-file .kamal/apps/app/env/roles/jobs.env "
			 "--log-opt max-size=\"10m\" --label service=\"app\" --label role=\"jobs\" "
			 "--label destination --mount \"somewhere\" --cap-add dhh/app:999 bin/jobs");
	fx_release(&f);
}

T_TEST(app_run_with_logging)
{
	/* "run with logging config" and "run with role logging config" expect the same */
#define LOGGING_RUN                                                                                   \
	WEB_RUN_HEAD "--env-file .kamal/apps/app/env/roles/web.env "                  \
	"--log-driver \"local\" --log-opt max-size=\"100m\" --log-opt max-file=\"3\" "                \
	"--label service=\"app\" --label role=\"web\" --label destination dhh/app:999"
	struct fx f;

	T_REQUIRE(fx_load(&f, APP_YML APP_SERVERS "logging:\n  driver: local\n  options:\n    max-size: 100m\n"
			  "    max-file: 3\n", NULL, NULL, APP_SECRETS) == 0);
	T_RUN_LIKE_KAMAL(&f, "1.1.1.1", "web",
LOGGING_RUN);
	fx_release(&f);
	/* "run with role logging config": the role's options merge over the root's */
	T_REQUIRE(fx_load(&f, APP_YML "logging:\n  driver: local\n  options:\n    max-size: 10m\n    max-file: 3\n"
			  "servers:\n  web:\n    hosts:\n      - 1.1.1.1\n    logging:\n      driver: local\n"
			  "      options:\n        max-size: 100m\n", NULL, NULL, APP_SECRETS) == 0);
	T_RUN_LIKE_KAMAL(&f, "1.1.1.1", "web",
LOGGING_RUN);
	fx_release(&f);
}

T_TEST(app_run_with_tags_env_and_assets)
{
	struct fx f;

	/* "run with tags" */
	T_REQUIRE(fx_load(&f, "service: app\nimage: dhh/app\nregistry:\n  username: dhh\n  password: secret\n"
			  "servers:\n  - 1.1.1.1: tag1\n"
			  "env:\n  secret:\n    - RAILS_MASTER_KEY\n  tags:\n    tag1:\n      ENV1: value1\n",
			  NULL, NULL, APP_SECRETS) == 0);
	T_RUN_LIKE_KAMAL(&f, "1.1.1.1", "web",
			 WEB_RUN_HEAD
			 "--env ENV1=\"value1\" "
			 "--env-file .kamal/apps/app/env/roles/web.env --log-opt max-size=\"10m\" "
			 "--label service=\"app\" --label role=\"web\" --label destination dhh/app:999");
	fx_release(&f);
	/* clear env escaped as escape_shell_value writes it; labels; an asset
	 * volume after the config volumes (Role#asset_volume_args, host path
	 * relative: $PWD/…); list options; a cmd split by the shell */
	T_REQUIRE(fx_load(&f, APP_YML "servers:\n  web:\n    hosts:\n      - 1.1.1.1\n"
			  "    cmd: bin/web --name \"a b\"\n    options:\n"
			  "      add-host:\n        - a:1.2.3.4\n        - b:1.2.3.5\n"
			  "    labels:\n      team: \"it's $x\"\n"
			  "  workers:\n    - 1.1.1.2\n"
			  "asset_path: /public/assets\n"
			  "volumes:\n  - data:/data\n  - /etc/app:/etc/app:ro\n"
			  "labels:\n  owner: ops\n"
			  "env:\n  clear:\n    MSG: \"line1\\nsaid \\\"hi\\\" #{x} $HOME `id` caf\xc3\xa9\"\n"
			  "    EMPTY: \"\"\n  secret:\n    - RAILS_MASTER_KEY\n",
			  NULL, NULL, APP_SECRETS) == 0);
	T_RUN_LIKE_KAMAL(&f, "1.1.1.1", "web",
			 WEB_RUN_HEAD
			 "--env MSG=\"line1\\nsaid \\\"hi\\\" \\#{x} \\$HOME \\`id\\` caf\xc3\xa9\" --env EMPTY "
			 "--env-file .kamal/apps/app/env/roles/web.env --log-opt max-size=\"10m\" "
			 "--volume data:/data --volume /etc/app:/etc/app:ro "
			 "--volume $PWD/.kamal/apps/app/assets/volumes/web-999:/public/assets "
			 "--label service=\"app\" --label role=\"web\" --label destination "
			 "--label owner=\"ops\" --label team=\"it's \\$x\" "
			 "--add-host \"a:1.2.3.4\" --add-host \"b:1.2.3.5\" dhh/app:999 bin/web --name \"a b\"");
	fx_release(&f);
}

T_TEST(app_run_refuses_what_it_cannot_reproduce)
{
	struct fx f;
	const struct des_container *dc;
	struct dcmd_ctx x;
	struct plumb_err err = { 0 };
	struct prov_cmd c;

	T_REQUIRE(fx_load(&f, APP_YML APP_SERVERS "env:\n  clear:\n    PATHX: \"${HOME}/bin\"\n"
			  "  secret:\n    - RAILS_MASTER_KEY\n", NULL, NULL, APP_SECRETS) == 0);
	dc = fx_find(&f, "1.1.1.1", "web");
	T_REQUIRE(dc);
	x = fx_ctx(&f, "1.1.1.1");
	prov_cmd_init(&c);
	prov_cmd_args(&c, "true", NULL);
	T_INTEQ(dcmd_run(&c, PROV_JOIN_AND, dc, NULL, &x, &err), PLUMB_EINVAL);
	T_CHECK(strstr(err.msg, "PATHX") != NULL);
	T_INTEQ(c.n, 1); /* nothing appended */
	prov_cmd_release(&c);
	fx_release(&f);
}

/* The hostname: the host's first 51 characters (a trailing dot dropped), 12 random hex. */
T_TEST(app_run_hostname)
{
	struct fx f;
	const struct des_container *dc;
	struct dcmd_ctx x;
	struct prov_cmd c;
	const char *h = NULL;
	char *want;

	T_REQUIRE(fx_load(&f, APP_YML "servers:\n  web:\n    - a-very-long-host-name-of-more-than-fifty-one-chars.example.com\n",
			  NULL, NULL, APP_SECRETS) == 0);
	dc = fx_find(&f, "a-very-long-host-name-of-more-than-fifty-one-chars.example.com", "web");
	T_REQUIRE(dc);
	x = fx_ctx(&f, "a-very-long-host-name-of-more-than-fifty-one-chars.example.com");
	x.hostname_suffix = NULL;
	prov_cmd_init(&c);
	T_REQUIRE(dcmd_run(&c, PROV_JOIN_SEQ, dc, NULL, &x, NULL) == 0);
	for (size_t i = 0; i + 1 < c.v[0].argv.n; i++)
		if (strcmp(c.v[0].argv.v[i], "--hostname") == 0)
			h = c.v[0].argv.v[i + 1];
	T_REQUIRE(h);
	/* its first 51 characters end in "chars.": the dot goes */
	want = xasprintf("%.50s-", x.host);
	T_CHECK(strncmp(h, want, strlen(want)) == 0);
	T_INTEQ(strlen(h), strlen(want) + 12);
	T_CHECK(strspn(h + strlen(want), "0123456789abcdef") == 12);
	free(want);
	prov_cmd_release(&c);
	fx_release(&f);
}


/* ---- accessory run (accessory_test.rb; boot passes the host: KAMAL_HOST) ---- */

#define ACC_YML                                                                         \
	"service: app\nimage: dhh/app\n"                                                \
	"registry:\n  server: private.registry\n  username: dhh\n  password: secret\n"    \
	"servers:\n  web:\n    - 1.1.1.1\n    - 1.1.1.2\n  workers:\n    - 1.1.1.3\n"     \
	"builder:\n  arch: amd64\n"                                                      \
	"accessories:\n"                                                                 \
	"  mysql:\n    image: private.registry/mysql:8.0\n    host: 1.1.1.5\n"            \
	"    port: \"3306\"\n    env:\n      clear:\n        MYSQL_ROOT_HOST: \"%\"\n"       \
	"      secret:\n        - MYSQL_ROOT_PASSWORD\n"                                  \
	"    directories:\n      - data:/var/lib/mysql\n      - /srv/conf:/etc/mysql/conf.d:ro\n" \
	"    volumes:\n      - mysql-logs:/var/log/mysql\n"                              \
	"    options:\n      cpus: 4\n      memory: 2GB\n"                               \
	"  redis:\n    image: redis:latest\n    host: 1.1.1.6\n    port: \"6379:6379\"\n"    \
	"    labels:\n      cache: \"true\"\n    env:\n      SOMETHING: else\n"              \
	"    volumes:\n      - /var/lib/redis:/data\n    cmd: redis-server --appendonly yes\n" \
	"  busybox:\n    service: custom-busybox\n    image: busybox:latest\n    host: 1.1.1.7\n"

T_TEST(accessory_run_as_kamal)
{
	struct fx f;

	T_REQUIRE(fx_load(&f, ACC_YML, NULL, NULL, "MYSQL_ROOT_PASSWORD=secret123\n") == 0);
	/* volumes:, then directories: ($PWD/<service>/<dir>, or absolute) */
	T_RUN_LIKE_KAMAL(&f, "1.1.1.5", "mysql",
			 "docker run --name app-mysql --detach --restart unless-stopped --network kamal "
			 "--log-opt max-size=\"10m\" --publish 3306:3306 --env KAMAL_HOST=\"1.1.1.5\" "
			 "--env MYSQL_ROOT_HOST=\"%\" --env-file .kamal/apps/app/env/accessories/mysql.env "
			 "--volume mysql-logs:/var/log/mysql --volume $PWD/app-mysql/data:/var/lib/mysql "
			 "--volume /srv/conf:/etc/mysql/conf.d:ro "
			 "--label service=\"app-mysql\" --cpus \"4\" --memory \"2GB\" private.registry/mysql:8.0");
	T_RUN_LIKE_KAMAL(&f, "1.1.1.6", "redis",
			 "docker run --name app-redis --detach --restart unless-stopped --network kamal "
			 "--log-opt max-size=\"10m\" --publish 6379:6379 --env KAMAL_HOST=\"1.1.1.6\" "
			 "--env SOMETHING=\"else\" --env-file .kamal/apps/app/env/accessories/redis.env "
			 "--volume /var/lib/redis:/data --label service=\"app-redis\" --label cache=\"true\" "
			 "redis:latest redis-server --appendonly yes");
	T_RUN_LIKE_KAMAL(&f, "1.1.1.7", "busybox",
			 "docker run --name custom-busybox --detach --restart unless-stopped --network kamal "
			 "--log-opt max-size=\"10m\" --env KAMAL_HOST=\"1.1.1.7\" "
			 "--env-file .kamal/apps/app/env/accessories/busybox.env "
			 "--label service=\"custom-busybox\" busybox:latest");
	fx_release(&f);
}

/* ---- kamal-proxy run (proxy_test.rb) ---- */

#define PROXY_YML                                                                      \
	"service: app\nimage: dhh/app\nregistry:\n  username: dhh\n  password: secret\n" \
	"servers:\n  - 1.1.1.1\nbuilder:\n  arch: amd64\n"
#define PROXY_HEAD                                                                     \
	"docker run --name kamal-proxy --network kamal --detach --restart unless-stopped "  \
	"--volume kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy "                \
	"--volume $PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config "

T_TEST(proxy_run_as_kamal)
{
	static const struct { const char *run, *kamal; } cases[] = {
		/* "run" without a run config: the boot_config pipeline on a host
		 * without boot_config files (echo … | xargs docker run …) */
		{ NULL, PROXY_HEAD "--publish 80:80 --publish 443:443 --log-opt max-size=10m "
			"basecamp/kamal-proxy:v0.9.2" },
		{ "    registry: registry:4443\n",
		  PROXY_HEAD "--publish 80:80 --publish 443:443 --log-opt max-size=10m "
		  "registry:4443/basecamp/kamal-proxy:v0.9.2 kamal-proxy run" },
		{ "    repository: custom/repo\n",
		  PROXY_HEAD "--publish 80:80 --publish 443:443 --log-opt max-size=10m custom/repo:v0.9.2 kamal-proxy run" },
		{ "    version: v1.2.3\n",
		  PROXY_HEAD "--publish 80:80 --publish 443:443 --log-opt max-size=10m "
		  "basecamp/kamal-proxy:v1.2.3 kamal-proxy run" },
		{ "    bind_ips:\n      - 0.0.0.0\n      - 127.0.0.1\n",
		  PROXY_HEAD "--publish 0.0.0.0:80:80 --publish 0.0.0.0:443:443 --publish 127.0.0.1:80:80 "
		  "--publish 127.0.0.1:443:443 --log-opt max-size=10m basecamp/kamal-proxy:v0.9.2 kamal-proxy run" },
		{ "    log_max_size: 50m\n",
		  PROXY_HEAD "--publish 80:80 --publish 443:443 --log-opt max-size=50m "
		  "basecamp/kamal-proxy:v0.9.2 kamal-proxy run" },
		{ "    debug: true\n",
		  PROXY_HEAD "--publish 80:80 --publish 443:443 --log-opt max-size=10m "
		  "basecamp/kamal-proxy:v0.9.2 kamal-proxy run --debug" },
		{ "    metrics_port: 9090\n",
		  PROXY_HEAD "--publish 80:80 --publish 443:443 --log-opt max-size=10m --expose=9090 "
		  "basecamp/kamal-proxy:v0.9.2 kamal-proxy run --metrics-port \"9090\"" },
		{ "    publish: false\n",
		  PROXY_HEAD "--log-opt max-size=10m basecamp/kamal-proxy:v0.9.2 kamal-proxy run" },
		/* cli/proxy_test.rb "boot with run config" */
		{ "    registry: registry:4443\n    metrics_port: 9090\n    debug: true\n"
		  "    options:\n      cpus: 1.5\n",
		  PROXY_HEAD "--publish 80:80 --publish 443:443 --log-opt max-size=10m --expose=9090 "
		  "--cpus \"1.5\" registry:4443/basecamp/kamal-proxy:v0.9.2 kamal-proxy run --debug "
		  "--metrics-port \"9090\"" },
		/* ports and an IPv6 bind address */
		{ "    http_port: 8080\n    https_port: 8443\n    bind_ips:\n      - \"::1\"\n",
		  PROXY_HEAD "--publish [::1]:8080:80 --publish [::1]:8443:443 --log-opt max-size=10m "
		  "basecamp/kamal-proxy:v0.9.2 kamal-proxy run" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx f;
		char *yml = cases[i].run ? xasprintf("%sproxy:\n  run:\n%s", PROXY_YML, cases[i].run)
					 : xstrdup(PROXY_YML);
		int rc = fx_load(&f, yml, NULL, NULL, NULL);

		free(yml);
		T_REQUIRE(rc == 0);
		T_RUN_LIKE_KAMAL(&f, "1.1.1.1", "kamal-proxy", cases[i].kamal);
		fx_release(&f);
	}
}

/* ---- kamal-proxy deploy (app_test.rb "deploy …"; configuration/proxy.rb) ---- */

#define DEPLOY_TAIL                                                                              \
	"--deploy-timeout=\"30s\" --drain-timeout=\"30s\" --buffer-requests --buffer-responses " \
	"--log-request-header=\"Cache-Control\" --log-request-header=\"Last-Modified\" "         \
	"--log-request-header=\"User-Agent\""

T_TEST(proxy_deploy_as_kamal)
{
	static const struct { const char *proxy, *kamal; } cases[] = {
		{ "", "docker exec kamal-proxy kamal-proxy deploy app-web --target=\"172.1.0.2:80\" " DEPLOY_TAIL },
		{ "proxy:\n  ssl: true\n  host: example.com\n",
		  "docker exec kamal-proxy kamal-proxy deploy app-web --target=\"172.1.0.2:80\" --host=\"example.com\" "
		  "--tls " DEPLOY_TAIL },
		{ "proxy:\n  ssl: true\n  hosts:\n    - example.com\n    - anotherexample.com\n",
		  "docker exec kamal-proxy kamal-proxy deploy app-web --target=\"172.1.0.2:80\" --host=\"example.com\" "
		  "--host=\"anotherexample.com\" --tls " DEPLOY_TAIL },
		{ "proxy:\n  ssl: false\n",
		  "docker exec kamal-proxy kamal-proxy deploy app-web --target=\"172.1.0.2:80\" " DEPLOY_TAIL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx f;
		char *yml = xasprintf("%s%s%s", APP_YML, APP_SERVERS, cases[i].proxy);
		int rc = fx_load(&f, yml, NULL, NULL, APP_SECRETS);
		free(yml);
		T_REQUIRE(rc == 0);
		T_DEPLOY_LIKE_KAMAL(&f, "1.1.1.1", "web", "172.1.0.2", cases[i].kamal);
		fx_release(&f);
	}
}

/* Every deploy option, in deploy_options' order, from a role's proxy merged over the root's. */
T_TEST(proxy_deploy_every_option)
{
	struct fx f;
	struct dcmd_ctx x;
	const struct des_container *dc;
	struct prov_cmd c;
	char *pem = NULL;

	T_REQUIRE(fx_load(&f, APP_YML "servers:\n  web:\n    hosts:\n      - 1.1.1.1\n      - 1.1.1.3\n"
			  "    proxy:\n      app_port: 3000\n      response_timeout: 40\n"
			  "      healthcheck:\n        path: /health\n        interval: 2\n        timeout: 3\n"
			  "  workers:\n    - 1.1.1.2\n"
			  "proxy:\n  host: a.example.com\n"
			  "  ssl:\n    certificate_pem: CERT_PEM\n    private_key_pem: KEY_PEM\n"
			  "  buffering:\n    requests: false\n    memory: 1000\n    max_request_body: 2000\n"
			  "    max_response_body: 3000\n"
			  "  path_prefix: /api,/v2\n  strip_path_prefix: false\n  forward_headers: true\n"
			  "  ssl_redirect: false\n"
			  "  logging:\n    request_headers:\n      - X-Req\n    response_headers:\n      - X-Res\n"
			  "deploy_timeout: 20\ndrain_timeout: 10\n",
			  "staging", NULL, APP_SECRETS "CERT_PEM=-----BEGIN CERTIFICATE-----\nKEY_PEM=k3y\n") == 0);
	T_DEPLOY_LIKE_KAMAL(&f, "1.1.1.3", "web", "abc123",
			    "docker exec kamal-proxy kamal-proxy deploy app-web-staging --target=\"abc123:3000\" "
			    "--host=\"a.example.com\" --tls "
			    "--tls-certificate-path=\"/home/kamal-proxy/.apps-config/app-staging/tls/web/cert.pem\" "
			    "--tls-private-key-path=\"/home/kamal-proxy/.apps-config/app-staging/tls/web/key.pem\" "
			    "--deploy-timeout=\"20s\" --drain-timeout=\"10s\" --health-check-interval=\"2s\" "
			    "--health-check-timeout=\"3s\" --health-check-path=\"/health\" --target-timeout=\"40s\" "
			    "--buffer-requests=\"false\" --buffer-responses --buffer-memory=\"1000\" "
			    "--max-request-body=\"2000\" --max-response-body=\"3000\" --path-prefix=\"/api\" "
			    "--path-prefix=\"/v2\" --strip-path-prefix=\"false\" --forward-headers "
			    "--tls-redirect=\"false\" --log-request-header=\"X-Req\" --log-response-header=\"X-Res\"");
	/* the PEM files go where those paths point, mode 0644 as Kamal uploads them */
	dc = fx_find(&f, "1.1.1.3", "web");
	T_REQUIRE(dc);
	x = fx_ctx(&f, "1.1.1.3");
	prov_cmd_init(&c);
	T_INTEQ(dcmd_proxy_tls_write(&c, &pem, dc, DCMD_TLS_KEY, &x, NULL), 1);
	T_STREQ(pem, "k3y");
	T_REQUIRE(c.n == 1 && c.v[0].argv.n == 9);
	T_STREQ(c.v[0].argv.v[6], ".kamal/proxy/apps-config/app-staging/tls/web/key.pem");
	T_CHECK(strncmp(c.v[0].argv.v[5], ".kamal/proxy/apps-config/app-staging/tls/web/key.pem.tmp.", 57) == 0);
	T_INTEQ(strlen(c.v[0].argv.v[5]), 57 + 16);
	T_STREQ(c.v[0].argv.v[4], ".kamal/proxy/apps-config/app-staging/tls/web");
	T_STREQ(c.v[0].argv.v[7], "644");
	T_STREQ(c.v[0].argv.v[8], "3"); /* its size: a short stdin installs nothing */
	util_free_secret(pem);
	prov_cmd_release(&c);
	fx_release(&f);
}

/* ---- env files ---- */

/* Runs cmd (rendered) in dir with stdin; 0 when it exited 0. */
static int run_in(const char *dir, const struct prov_cmd *cmd, const char *stdin_text)
{
	struct sbuf s;
	char *line;
	FILE *p;
	int rc;

	sbuf_init(&s, 0);
	if (prov_cmd_render(cmd, &s) != 0) {
		sbuf_release(&s);
		return -1;
	}
	line = xasprintf("cd '%s' && %s", dir, s.buf);
	p = popen(line, "w");
	free(line);
	sbuf_release(&s);
	if (!p)
		return -1;
	fputs(stdin_text, p);
	rc = pclose(p);
	return rc == 0 ? 0 : -1;
}

T_TEST(env_file_as_kamal_writes_it)
{
	struct fx f;
	const struct des_host *h;
	const struct des_env_file *ef = NULL;
	struct prov_cmd c;
	char *content = NULL, *dir, *got = NULL, *path;
	size_t len = 0;
	struct stat st;

	/* \n, \\, ", #, non-ASCII */
	T_REQUIRE(fx_load(&f, APP_YML "servers:\n  web:\n    - 1.1.1.1\n"
			  "  workers:\n    hosts:\n      - 1.1.1.2\n    env:\n      secret:\n        - B:OTHER\n",
			  NULL, NULL, "RAILS_MASTER_KEY=\"line1\nline2 \\\\ \\\" #{x} caf\xc3\xa9\"\nOTHER=plain\n") == 0);
	h = desired_host(f.ds, "1.1.1.2");
	T_REQUIRE(h);
	for (size_t i = 0; i < h->nenv_files; i++)
		if (strstr(h->env_files[i].path, "workers"))
			ef = &h->env_files[i];
	T_REQUIRE(ef);
	prov_cmd_init(&c);
	T_REQUIRE(dcmd_env_file_write(&c, &content, ef, f.c, NULL) == 0);
	T_STREQ(content, "RAILS_MASTER_KEY=line1\\nline2 \\\\ \" #{x} caf\xc3\xa9\nB=plain\n");
	/* installed by sh: mode 0600, the exact bytes, no temporary file left */
	dir = tu_tmpdir("dcmd-env");
	T_REQUIRE(dir);
	umask(022);
	path = xasprintf("%s/%s", dir, ef->path);
	{
		/* a stdin cut short (this machine killed mid-transfer): nothing
		 * installed, no temporary file left, the command fails */
		char *cut = xstrndup(content, strlen(content) - 3);
		struct stat st0;
		T_CHECK(run_in(dir, &c, cut) != 0);
		T_CHECK(stat(path, &st0) != 0);
		free(cut);
	}
	T_CHECK(run_in(dir, &c, content) == 0);
	T_CHECK(util_read_file(path, 1 << 20, &got, &len) == 0);
	T_STREQ(got, content);
	T_CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	{
		/* the directories are made with the session's umask (here 022), as
		 * Kamal's mkdir -p: another user (kamal-proxy) may traverse them */
		char *d = xasprintf("%s/.kamal/apps/app/env/roles", dir);
		T_CHECK(stat(d, &st) == 0 && (st.st_mode & 0777) == 0755);
		free(d);
	}
	{
		char *ls = tu_sh_line("ls -a '%s/.kamal/apps/app/env/roles' | grep -c tmp", dir);
		T_STREQ(ls, "0");
		free(ls);
	}
	free(got);
	free(path);
	tu_rm_rf(dir);
	free(dir);
	util_free_secret(content);
	prov_cmd_release(&c);
	fx_release(&f);
}

T_TEST(env_file_empty_and_unavailable)
{
	struct fx f;
	const struct des_host *h;
	struct prov_cmd c;
	char *content = NULL;
	struct plumb_err err = { 0 };

	T_REQUIRE(fx_load(&f, "service: app\nimage: dhh/app\nregistry:\n  server: localhost:5555\n"
			  "servers:\n  - 1.1.1.1\naccessories:\n  db:\n    image: postgres\n    host: 1.1.1.1\n"
			  "    env:\n      secret:\n        - NOPE\n", NULL, NULL, NULL) == 0);
	h = desired_host(f.ds, "1.1.1.1");
	T_REQUIRE(h && h->nenv_files == 2);
	prov_cmd_init(&c);
	for (size_t i = 0; i < h->nenv_files; i++) {
		const struct des_env_file *ef = &h->env_files[i];
		if (strstr(ef->path, "roles")) {
			T_REQUIRE(dcmd_env_file_write(&c, &content, ef, f.c, NULL) == 0);
			T_STREQ(content, "\n"); /* Kamal's empty env file */
			util_free_secret(content);
		} else {
			size_t n = c.n;
			T_INTEQ(dcmd_env_file_write(&c, &content, ef, f.c, &err), PLUMB_EUNAVAILABLE);
			T_CHECK(content == NULL);
			T_INTEQ(c.n, n); /* nothing built */
			T_CHECK(strstr(err.msg, "NOPE") != NULL);
		}
	}
	prov_cmd_release(&c);
	fx_release(&f);
}

/* ---- registry, images, state, stop, prune ---- */

T_TEST(login_pull_tag_state)
{
	struct prov_cmd c;
	struct desired ds = { .service = "app", .destination = "staging" };

	prov_cmd_init(&c);
	dcmd_tag_latest(&c, PROV_JOIN_AND, &ds, "localhost:5555/app:999");
	T_SAME_WORDS(&c, "docker tag localhost:5555/app:999 localhost:5555/app:latest-staging");
	prov_cmd_release(&c);
	ds.destination = NULL;
	dcmd_tag_latest(&c, PROV_JOIN_SEQ, &ds, "dhh/app@sha256:abc");
	dcmd_stop(&c, PROV_JOIN_SEQ, "app-web-999", 30);
	dcmd_stop(&c, PROV_JOIN_SEQ, "app-web-998", 0);
	dcmd_rename(&c, PROV_JOIN_SEQ, "app-web-999", "app-web-999_replaced_0123456789abcdef");
	dcmd_start(&c, PROV_JOIN_SEQ, "app-web-999");
	dcmd_remove(&c, PROV_JOIN_SEQ, "app-web-999");
	dcmd_logs_tail(&c, PROV_JOIN_SEQ, "app-web-999", 50);
	T_SAME_WORDS(&c, "docker tag dhh/app@sha256:abc dhh/app:latest ; docker stop -t 30 app-web-999 ; "
			 "docker stop app-web-998 ; docker rename app-web-999 app-web-999_replaced_0123456789abcdef ; "
			 "docker start app-web-999 ; docker rm -f app-web-999 ; docker logs --tail 50 app-web-999");
	prov_cmd_release(&c);
}

/* The pull script against a stand-in docker that logs its arguments: an
 * image held with the planned identity is neither pulled nor logged in for;
 * another is, after one login that reads the password from stdin (never an
 * argument); the kamal network is made when missing. */
T_TEST(pull_only_what_the_host_lacks)
{
	static const char fake_docker[] =
		"#!/bin/sh\n"
		"echo \"$*\" >> \"$D/log\"\n"
		"case \"$1 $2\" in\n"
		"'image inspect') r=$(cat \"$D/id-$(echo \"$6\" | tr /: __)\" 2>/dev/null) && echo \"$r\" ;;\n"
		"'network inspect') [ -f \"$D/net\" ] ;;\n"
		"'network create') touch \"$D/net\" ;;\n"
		"login*) cat > \"$D/pw\" ;;\n"
		"'pull -q') echo sha256:pulled > \"$D/id-$(echo \"$4\" | tr /: __)\" ;;\n"
		"esac\n";
	const char *refs[] = { "reg.example:5000/app:1", "reg.example:5000/db:2" };
	const char *want[] = { "sha256:held", "sha256:pulled" };
	struct prov_cmd c;
	struct sbuf cmd;
	char *dir = tu_tmpdir("dcmd-pull"), *line, *out = NULL, *log = NULL, *pw = NULL;
	size_t n;

	T_REQUIRE(dir);
	tu_write_in(dir, "docker", fake_docker);
	tu_write_in(dir, "id-reg.example_5000_app_1", "sha256:held\n");
	{
		char *path = xasprintf("%s/docker", dir);
		T_REQUIRE(chmod(path, 0755) == 0);
		free(path);
	}
	prov_cmd_init(&c);
	dcmd_pull_needed(&c, PROV_JOIN_SEQ, "reg.example:5000", "dhh", refs, want, 2);
	/* the values are arguments of a constant script, the password none of them */
	T_STREQ(c.v[0].argv.v[0], "sh");
	T_STREQ(c.v[0].argv.v[4], "login");
	T_STREQ(c.v[0].argv.v[5], "reg.example:5000");
	T_STREQ(c.v[0].argv.v[6], "dhh");
	T_STREQ(c.v[0].argv.v[7], refs[0]);
	T_STREQ(c.v[0].argv.v[8], want[0]);
	T_CHECK(strstr(c.v[0].argv.v[2], "--password-stdin") != NULL);
	sbuf_init(&cmd, 0);
	T_REQUIRE(prov_cmd_render(&c, &cmd) == 0);
	line = xasprintf("cd '%s' && export D='%s' PATH='%s':\"$PATH\" && printf s3cret | %s > out", dir, dir,
			 dir, cmd.buf);
	T_CHECK(system(line) == 0);
	T_REQUIRE(tu_read_in(dir, "out", &out, &n) == 0);
	T_STREQ(out, "sha256:held\npulled\nsha256:pulled\n");
	T_REQUIRE(tu_read_in(dir, "log", &log, &n) == 0);
	T_CHECK(strstr(log, "pull -q -- reg.example:5000/app:1") == NULL);
	T_CHECK(strstr(log, "pull -q -- reg.example:5000/db:2") != NULL);
	T_CHECK(strstr(log, "login reg.example:5000 -u dhh --password-stdin") != NULL);
	T_CHECK(strstr(log, "network create kamal") != NULL);
	T_CHECK(strstr(log, "s3cret") == NULL);
	T_REQUIRE(tu_read_in(dir, "pw", &pw, &n) == 0);
	T_STREQ(pw, "s3cret");
	free(line);
	free(out);
	free(pw);
	/* everything held: no login, no pull, the network left as it is */
	line = xasprintf("cd '%s' && rm -f log && export D='%s' PATH='%s':\"$PATH\" && printf s3cret | %s > out",
			 dir, dir, dir, cmd.buf);
	T_CHECK(system(line) == 0);
	free(log);
	log = NULL;
	T_REQUIRE(tu_read_in(dir, "log", &log, &n) == 0);
	T_CHECK(strstr(log, "login") == NULL && strstr(log, "pull") == NULL && strstr(log, "network create") == NULL);
	free(line);
	free(log);
	sbuf_release(&cmd);
	prov_cmd_release(&c);
	tu_rm_rf(dir);
	free(dir);
}

/* Role#stop_args: stop_timeout, else drain_timeout for a role without the proxy. */
T_TEST(stop_timeout_as_kamal)
{
	struct fx f;

	T_REQUIRE(fx_load(&f, APP_YML APP_SERVERS "drain_timeout: 20\n", NULL, NULL, APP_SECRETS) == 0);
	T_INTEQ(dcmd_stop_timeout(f.c, "web"), 0);
	T_INTEQ(dcmd_stop_timeout(f.c, "workers"), 20);
	fx_release(&f);
	T_REQUIRE(fx_load(&f, APP_YML "servers:\n  web:\n    hosts:\n      - 1.1.1.1\n    stop_timeout: 7\n"
			  "  workers:\n    - 1.1.1.2\nstop_timeout: 9\n", NULL, NULL, APP_SECRETS) == 0);
	T_INTEQ(dcmd_stop_timeout(f.c, "web"), 7);
	T_INTEQ(dcmd_stop_timeout(f.c, "workers"), 9);
	fx_release(&f);
}

T_TEST(prune_and_dirs)
{
	struct fx f;
	struct prov_cmd c;
	struct dcmd_ctx x;

	T_REQUIRE(fx_load(&f, ACC_YML, NULL, NULL, "MYSQL_ROOT_PASSWORD=secret123\n") == 0);
	x = fx_ctx(&f, "1.1.1.5");
	prov_cmd_init(&c);
	dcmd_prune(&c, PROV_JOIN_SEQ, f.ds, 5);
	T_REQUIRE(c.n == 5);
	c.n = 4; /* the tagged-images script is checked apart */
	T_SAME_WORDS(&c, "docker ps -q -a --filter label=service=app --filter status=created --filter status=exited "
			 "--filter status=dead | tail -n +6 | xargs -r docker rm ; "
			 "docker image prune --force --filter label=service=app");
	c.n = 5;
	T_STREQ(c.v[4].argv.v[0], "sh");
	T_STREQ(c.v[4].argv.v[4], "app");
	T_STREQ(c.v[4].argv.v[5], "private.registry/dhh/app:latest");
	T_STREQ(c.v[4].argv.v[6], "private.registry/dhh/app");
	prov_cmd_release(&c);
	dcmd_prepare_dirs(&c, PROV_JOIN_SEQ, fx_find(&f, "1.1.1.5", "mysql"), &x);
	dcmd_prepare_dirs(&c, PROV_JOIN_AND, fx_find(&f, "1.1.1.1", "kamal-proxy"), &x);
	dcmd_prepare_dirs(&c, PROV_JOIN_AND, fx_find(&f, "1.1.1.1", "web"), &x);
	T_SAME_WORDS(&c, "mkdir -p .kamal/apps/app/env/accessories && mkdir -p $PWD/app-mysql/data && "
			 "mkdir -p /srv/conf && mkdir -p .kamal/proxy/apps-config && "
			 "mkdir -p .kamal/apps/app/env/roles");
	prov_cmd_release(&c);
	fx_release(&f);
}

/* A secret value never reaches a command line: run, deploy, env file, login, prune. */
T_TEST(secret_canary_never_in_argv)
{
	static const char canary[] = "CANARY-s3cr3t-9f8e7d";
	struct fx f;
	struct prov_cmd c;
	struct sbuf s;
	char *content = NULL;

	T_REQUIRE(fx_load(&f, APP_YML "servers:\n  web:\n    - 1.1.1.1\n  workers:\n    - 1.1.1.2\n"
			  "proxy:\n  host: a.example.com\n  ssl:\n    certificate_pem: CERT\n    private_key_pem: RAILS_MASTER_KEY\n"
			  "accessories:\n  db:\n    image: postgres\n    host: 1.1.1.1\n"
			  "    env:\n      secret:\n        - PGPASS:RAILS_MASTER_KEY\n",
			  NULL, NULL, "RAILS_MASTER_KEY=" "CANARY-s3cr3t-9f8e7d" "\nCERT=CANARY-s3cr3t-9f8e7d\n") == 0);
	prov_cmd_init(&c);
	for (size_t h = 0; h < f.ds->nhosts; h++) {
		const struct des_host *dh = &f.ds->hosts[h];
		struct dcmd_ctx x = fx_ctx(&f, dh->host);
		for (size_t i = 0; i < dh->ncontainers; i++) {
			const struct des_container *dc = &dh->containers[i];
			T_CHECK(dcmd_run(&c, PROV_JOIN_SEQ, dc, NULL, &x, NULL) == 0);
			dcmd_prepare_dirs(&c, PROV_JOIN_SEQ, dc, &x);
			if (dc->proxied) {
				T_CHECK(dcmd_proxy_deploy(&c, PROV_JOIN_SEQ, dc, "abc", &x, NULL) == 0);
				T_INTEQ(dcmd_proxy_tls_write(&c, &content, dc, DCMD_TLS_KEY, &x, NULL), 1);
				T_STREQ(content, canary);
				util_free_secret(content);
			}
		}
		for (size_t i = 0; i < dh->nenv_files; i++) {
			T_CHECK(dcmd_env_file_write(&c, &content, &dh->env_files[i], f.c, NULL) == 0);
			util_free_secret(content);
		}
	}
	{
		const char *ref = "dhh/app:999", *want = "";
		dcmd_pull_needed(&c, PROV_JOIN_SEQ, NULL, "dhh", &ref, &want, 1);
	}
	dcmd_prune(&c, PROV_JOIN_SEQ, f.ds, 5);
	sbuf_init(&s, 0);
	T_REQUIRE(prov_cmd_render(&c, &s) == 0);
	T_CHECK(s.len > 1000);
	T_CHECK(strstr(s.buf, "CANARY") == NULL);
	T_CHECK(strstr(s.buf, "secret") == NULL); /* the registry password */
	T_CHECK(strstr(s.buf, "--password-stdin") != NULL);
	sbuf_release(&s);
	prov_cmd_release(&c);
	fx_release(&f);
}

/* app_test.rb "extract assets" and "sync asset volumes" (one command here: the sync runs once extraction succeeded) */
T_TEST(assets_as_kamal)
{
	struct fx f;
	struct prov_cmd c;
	struct dcmd_ctx x;

	T_REQUIRE(fx_load(&f, APP_YML APP_SERVERS "asset_path: /public/assets\n", NULL, NULL, APP_SECRETS) == 0);
	x = fx_ctx(&f, "1.1.1.1");
	prov_cmd_init(&c);
	T_INTEQ(dcmd_assets_prepare(&c, PROV_JOIN_SEQ, fx_find(&f, "1.1.1.1", "web"), &x, "123"), 1);
	T_SAME_WORDS(&c, "mkdir -p .kamal/apps/app/assets/extracted/web-999 && "
			 "docker container rm app-web-assets 2>/dev/null || true && "
			 "docker container create --name app-web-assets dhh/app:999 && "
			 "docker container cp -L app-web-assets:/public/assets/. .kamal/apps/app/assets/extracted/web-999 && "
			 "docker container rm app-web-assets && "
			 "mkdir -p .kamal/apps/app/assets/volumes/web-999 ; "
			 "cp -rnT .kamal/apps/app/assets/extracted/web-999 .kamal/apps/app/assets/volumes/web-999 ; "
			 "cp -rnT .kamal/apps/app/assets/extracted/web-999 .kamal/apps/app/assets/volumes/web-123 || true ; "
			 "cp -rnT .kamal/apps/app/assets/extracted/web-123 .kamal/apps/app/assets/volumes/web-999 || true");
	prov_cmd_release(&c);
	/* no proxy, no assets */
	T_INTEQ(dcmd_assets_prepare(&c, PROV_JOIN_SEQ, fx_find(&f, "1.1.1.2", "workers"), &x, NULL), 0);
	T_INTEQ(c.n, 0);
	fx_release(&f);
}

/* Another version (x->version) is its name and KAMAL_VERSION; a temporary
 * name changes --name only; "${" without "}" is escaped by Kamal, not expanded. */
T_TEST(app_run_other_version_and_name)
{
	struct fx f;
	struct dcmd_ctx x;
	struct prov_cmd c;

	T_REQUIRE(fx_load(&f, APP_YML APP_SERVERS "env:\n  clear:\n    ODD: \"a${b\"\n  secret:\n    - RAILS_MASTER_KEY\n",
			  NULL, NULL, APP_SECRETS) == 0);
	x = fx_ctx(&f, "1.1.1.2");
	x.version = "998";
	prov_cmd_init(&c);
	T_REQUIRE(dcmd_run(&c, PROV_JOIN_SEQ, fx_find(&f, "1.1.1.2", "workers"), "tmp-name", &x, NULL) == 0);
	T_SAME_WORDS(&c, "docker run --detach --restart unless-stopped --name tmp-name --network kamal "
			 "--hostname 1.1.1.2-" SFX " --env KAMAL_CONTAINER_NAME=\"app-workers-998\" "
			 "--env KAMAL_VERSION=\"998\" --env KAMAL_HOST=\"1.1.1.2\" --env ODD=\"a\\${b\" "
			 "--env-file .kamal/apps/app/env/roles/workers.env --log-opt max-size=\"10m\" "
			 "--label service=\"app\" --label role=\"workers\" --label destination dhh/app:999");
	prov_cmd_release(&c);
	fx_release(&f);
}

/* A clear value from ERB ENV is read again from the config (the desired
 * state keeps its hash only); an untrusted run did not compute it: refused. */
T_TEST(app_run_sensitive_env)
{
	struct fx f;
	struct dcmd_ctx x;
	struct prov_cmd c;
	struct plumb_err err = { 0 };
	const char *yml = APP_YML "servers:\n  web:\n    - 1.1.1.1\n"
			  "env:\n  clear:\n    FROM_ENV: <%= ENV[\"PLUMB_TEST_DCMD\"] %>\n  secret:\n    - RAILS_MASTER_KEY\n";

	setenv("PLUMB_TEST_DCMD", "v \"1\"", 1);
	T_REQUIRE(fx_load(&f, yml, NULL, NULL, APP_SECRETS) == 0);
	T_REQUIRE(des_container_env(fx_find(&f, "1.1.1.1", "web"), "FROM_ENV")->kind == DES_ENV_SENSITIVE);
	x = fx_ctx(&f, "1.1.1.1");
	prov_cmd_init(&c);
	T_REQUIRE(dcmd_run(&c, PROV_JOIN_SEQ, fx_find(&f, "1.1.1.1", "web"), NULL, &x, NULL) == 0);
	T_SAME_WORDS(&c, WEB_RUN_HEAD "--env FROM_ENV=\"v \\\"1\\\"\" --env-file .kamal/apps/app/env/roles/web.env "
			 "--log-opt max-size=\"10m\" --label service=\"app\" --label role=\"web\" --label destination "
			 "dhh/app:999");
	prov_cmd_release(&c);
	fx_release(&f);
	fx_untrusted = 1;
	T_REQUIRE(fx_load(&f, yml, NULL, NULL, APP_SECRETS) == 0);
	fx_untrusted = 0;
	T_REQUIRE(des_container_env(fx_find(&f, "1.1.1.1", "web"), "FROM_ENV")->kind == DES_ENV_NOT_COMPUTED);
	x = fx_ctx(&f, "1.1.1.1");
	T_INTEQ(dcmd_run(&c, PROV_JOIN_SEQ, fx_find(&f, "1.1.1.1", "web"), NULL, &x, &err), PLUMB_EUNTRUSTED);
	T_CHECK(strstr(err.msg, "FROM_ENV") != NULL);
	T_INTEQ(c.n, 0);
	fx_release(&f);
	unsetenv("PLUMB_TEST_DCMD");
}

/* Found while matching Kamal: an accessory with its own registry runs
 * <server>/<image> (Accessory#image); `logging: {}` keeps Kamal's default
 * --log-opt max-size=10m (Logging#args: no driver and no options); an
 * accessory with a proxy brings kamal-proxy to its host (proxy_hosts). */
T_TEST(kamal_details_in_the_desired_state)
{
	struct fx f;

	T_REQUIRE(fx_load(&f, APP_YML "servers:\n  web:\n    - 1.1.1.1\nlogging: {}\n"
			  "accessories:\n  busybox:\n    service: custom-busybox\n    image: busybox:latest\n"
			  "    host: 1.1.1.7\n    registry:\n      server: other.registry\n      username: user\n"
			  "      password:\n        - OTHER_PW\n    proxy:\n      host: busybox.example.com\n",
			  NULL, NULL, APP_SECRETS "OTHER_PW=pw\n") == 0);
	T_RUN_LIKE_KAMAL(&f, "1.1.1.7", "busybox",
			 "docker run --name custom-busybox --detach --restart unless-stopped --network kamal "
			 "--log-opt max-size=\"10m\" --env KAMAL_HOST=\"1.1.1.7\" "
			 "--env-file .kamal/apps/app/env/accessories/busybox.env "
			 "--label service=\"custom-busybox\" other.registry/busybox:latest");
	T_RUN_LIKE_KAMAL(&f, "1.1.1.1", "web",
			 WEB_RUN_HEAD "--env-file .kamal/apps/app/env/roles/web.env --log-opt max-size=\"10m\" "
			 "--label service=\"app\" --label role=\"web\" --label destination dhh/app:999");
	T_CHECK(fx_find(&f, "1.1.1.7", "kamal-proxy") != NULL);
	T_DEPLOY_LIKE_KAMAL(&f, "1.1.1.7", "busybox", "c0ffee",
			    "docker exec kamal-proxy kamal-proxy deploy custom-busybox --target=\"c0ffee:80\" "
			    "--host=\"busybox.example.com\" " DEPLOY_TAIL);
	fx_release(&f);
}

T_MAIN(T_CASE(app_run_as_kamal), T_CASE(app_run_with_destination), T_CASE(app_run_with_volumes),
       T_CASE(app_run_with_custom_options), T_CASE(app_run_with_logging),
       T_CASE(app_run_with_tags_env_and_assets), T_CASE(app_run_refuses_what_it_cannot_reproduce),
       T_CASE(app_run_hostname), T_CASE(accessory_run_as_kamal), T_CASE(proxy_run_as_kamal),
       T_CASE(proxy_deploy_as_kamal), T_CASE(proxy_deploy_every_option), T_CASE(env_file_as_kamal_writes_it),
       T_CASE(env_file_empty_and_unavailable), T_CASE(login_pull_tag_state), T_CASE(pull_only_what_the_host_lacks), T_CASE(stop_timeout_as_kamal),
       T_CASE(prune_and_dirs), T_CASE(secret_canary_never_in_argv), T_CASE(assets_as_kamal),
       T_CASE(app_run_other_version_and_name), T_CASE(app_run_sensitive_env),
       T_CASE(kamal_details_in_the_desired_state))
