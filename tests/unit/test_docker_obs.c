/*
 * Docker observation: the parser on a hand-written recording of the script's
 * output (tests/unit/fixtures/docker/observe_ok.txt, made with salt
 * 00112233445566778899aabbccddeeff), classification, truncation and failures
 * (-> no containers, never an empty host), and the real script run by /bin/sh
 * through the local transport against a stub `docker` that prints what
 * docker's --format templates would, to check the host-side hashing of
 * tricky values and that no value leaves the "host".
 */
#include "providers/docker_obs.h"
#include "providers/kamal_proxy.h"
#include "tests/unit/t.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIXTURE "tests/unit/fixtures/docker/observe_ok.txt"
#define FIXTURE_SALT "00112233445566778899aabbccddeeff"
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char *const accs[] = { "optimus-db" };
static const struct docker_obs_query q_optimus = {
	.service = "optimus", .destination = NULL, .accessories = accs, .naccessories = 1,
};

static char *fixture(size_t *len)
{
	char *buf = NULL;

	if (util_read_file(FIXTURE, 1 << 20, &buf, len) < 0)
		return NULL;
	return buf;
}

static const struct obs_container *by_name(const struct obs_host *h, const char *name)
{
	for (size_t i = 0; i < h->ncontainers; i++)
		if (strcmp(h->containers[i].name, name) == 0)
			return &h->containers[i];
	return NULL;
}

static int hash_is(const char *hash, const char *salt, const char *value)
{
	char want[HASH_HEX_LEN + 1];

	hash_salted(salt, value, strlen(value), want);
	return hash && strcmp(hash, want) == 0;
}

T_TEST(parses_the_recording)
{
	struct obs_host h = { 0 };
	struct plumb_err err = { 0 };
	size_t len;
	char *text = fixture(&len);
	const struct obs_container *web, *old, *job, *staging, *oneoff, *db, *proxy;
	const struct obs_image *im;
	const struct obs_env_file *ef;

	T_REQUIRE(text);
	T_INTEQ(docker_obs_parse(&h, text, len, &q_optimus, &err), 0);
	T_STREQ(err.msg, "");
	T_INTEQ(err.code, 0);
	T_STREQ(h.docker_version, "20.10.24+dfsg1");
	T_INTEQ(h.ncontainers, 7);
	web = by_name(&h, "optimus-web-v2");
	T_REQUIRE(web);
	T_INTEQ(web->kind, OBS_APP);
	T_STREQ(web->id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	T_STREQ(web->image_id, "sha256:96181bbcfde1055fc60b8bc20e24494724be1d82a499903d699c65c1079aafd8");
	T_STREQ(web->image_ref, "10.0.0.1:5000/optimus:v2");
	T_STREQ(web->state, "running");
	T_STREQ(web->health, "healthy");
	T_STREQ(web->service, "optimus");
	T_STREQ(web->role, "web");
	T_STREQ(web->destination, "");
	T_STREQ(web->restart_policy, "unless-stopped");
	T_STREQ(web->log_driver, "json-file");
	T_STREQ(kvs_get(&web->log_opts, "max-size"), "10m");
	T_STREQ(web->network_mode, "kamal");
	T_REQUIRE(web->networks.n == 1);
	T_STREQ(web->networks.v[0], "kamal");
	T_REQUIRE(web->cmd.n == 1);
	T_STREQ(web->cmd.v[0], "web");
	T_STREQ(web->entrypoint.v[0], "/run.sh");
	T_STREQ(web->hostname, "10.0.0.2-0a1b2c3d4e5f");
	T_STREQ(web->created, "2026-11-27T16:24:49.127462598Z");
	T_INTEQ(web->nenv, 7);
	T_CHECK(hash_is(obs_env_hash(web->env, web->nenv, "SECRET_KEY_BASE"), FIXTURE_SALT, "CANARY-skb"));
	T_CHECK(hash_is(obs_env_hash(web->env, web->nenv, "KAMAL_VERSION"), FIXTURE_SALT, "v2"));
	T_CHECK(obs_env_hash(web->env, web->nenv, "NOPE") == NULL);
	T_INTEQ(web->options.n, 0); /* nothing but docker's defaults */

	old = by_name(&h, "optimus-web-v1");
	T_REQUIRE(old);
	T_INTEQ(old->kind, OBS_APP);
	T_STREQ(old->state, "exited");
	T_INTEQ(old->exit_code, 137);
	T_CHECK(old->health == NULL);

	job = by_name(&h, "optimus-job-v2");
	T_REQUIRE(job);
	T_INTEQ(job->kind, OBS_APP);
	T_STREQ(kvs_get(&job->options, "memory"), "536870912");
	T_STREQ(kvs_get(&job->options, "cpus"), "1.5");
	T_STREQ(kvs_get(&job->options, "init"), "true");
	T_STREQ(kvs_get(&job->options, "cap-add"), "NET_ADMIN,SYS_TIME");
	T_CHECK(hash_is(obs_env_hash(job->env, job->nenv, "MULTI"), FIXTURE_SALT,
			"line1\nline2 \"q\" $(x) \\"));

	/* Same service, another destination; and a one-off container without a role. */
	staging = by_name(&h, "optimus-web-staging-v2");
	T_REQUIRE(staging);
	T_INTEQ(staging->kind, OBS_OTHER);
	oneoff = by_name(&h, "optimus-oneoff");
	T_REQUIRE(oneoff);
	T_INTEQ(oneoff->kind, OBS_OTHER);

	db = by_name(&h, "optimus-db");
	T_REQUIRE(db);
	T_INTEQ(db->kind, OBS_ACCESSORY);
	T_REQUIRE(db->nports == 1);
	T_STREQ(db->ports[0].container_port, "5432/tcp");
	T_STREQ(db->ports[0].host_ip, "127.0.0.1");
	T_STREQ(db->ports[0].host_port, "5432");
	T_REQUIRE(db->nmounts == 2);
	T_STREQ(db->mounts[0].type, "bind");
	T_STREQ(db->mounts[0].source, "/root/optimus-db/data");
	T_STREQ(db->mounts[0].destination, "/var/lib/postgresql/data");
	T_CHECK(db->mounts[0].rw == 1);
	T_STREQ(db->mounts[1].type, "volume");
	T_STREQ(db->mounts[1].source, "pgconf"); /* a volume's name, not its path */
	T_STREQ(db->mounts[1].mode, "z");
	T_CHECK(db->mounts[1].rw == 0);
	T_CHECK(hash_is(obs_env_hash(db->env, db->nenv, "POSTGRES_PASSWORD"), FIXTURE_SALT, "CANARY-pg"));

	proxy = by_name(&h, "kamal-proxy");
	T_REQUIRE(proxy);
	T_INTEQ(proxy->kind, OBS_PROXY);
	T_INTEQ(proxy->nports, 2);

	T_INTEQ(h.nimages, 3);
	im = obs_host_image(&h, web->image_id);
	T_REQUIRE(im);
	T_INTEQ(im->repo_tags.n, 2);
	T_STREQ(im->cmd.v[0], "web");
	T_STREQ(kvs_get(&im->labels, "org.opencontainers.image.version"), "v1");
	T_CHECK(hash_is(obs_env_hash(im->env, im->nenv, "VERSION"), FIXTURE_SALT, "v1"));
	im = obs_host_image(&h, db->image_id);
	T_REQUIRE(im);
	T_REQUIRE(im->volumes.n == 1);
	T_STREQ(im->volumes.v[0], "/var/lib/postgresql/data");

	T_INTEQ(h.nenv_files, 2);
	ef = obs_host_env_file(&h, ".kamal/apps/optimus/env/roles/web.env");
	T_REQUIRE(ef);
	T_INTEQ(ef->mode, 0600);
	T_INTEQ(ef->nvars, 2);
	T_CHECK(hash_is(obs_env_hash(ef->vars, ef->nvars, "SECRET_KEY_BASE"), FIXTURE_SALT, "CANARY-skb"));
	/* env-file values are hashed as written (Kamal's escaping kept) */
	T_CHECK(hash_is(obs_env_hash(ef->vars, ef->nvars, "MULTI"), FIXTURE_SALT, "line1\\nline2"));
	T_CHECK(hash_is(ef->content_hash, FIXTURE_SALT, "SECRET_KEY_BASE=CANARY-skb\nMULTI=line1\\nline2\n"));

	T_STREQ(h.lock_holder, "Locked by: Alice at 2026-11-27T16:00:00Z\nVersion: v2\nMessage: hotfix");
	obs_host_release(&h);
	free(text);
}

T_TEST(destination_is_exact)
{
	struct obs_host h = { 0 };
	struct plumb_err err = { 0 };
	size_t len;
	char *text = fixture(&len);
	struct docker_obs_query q = q_optimus;

	T_REQUIRE(text);
	q.destination = "staging";
	T_INTEQ(docker_obs_parse(&h, text, len, &q, &err), 0);
	T_INTEQ(by_name(&h, "optimus-web-staging-v2")->kind, OBS_APP);
	T_INTEQ(by_name(&h, "optimus-web-v2")->kind, OBS_OTHER); /* destination "" != "staging" */
	T_INTEQ(by_name(&h, "optimus-db")->kind, OBS_ACCESSORY);
	obs_host_release(&h);
	free(text);
}

T_TEST(classification_table)
{
	static const struct {
		const char *name, *service, *role, *dest;
		enum obs_kind want;
	} cases[] = {
		{ "optimus-web-v1", "optimus", "web", "", OBS_APP },
		{ "optimus-web-v1", "optimus", "web", NULL, OBS_OTHER }, /* no destination label */
		{ "optimus-web-x-v1", "optimus", "web", "x", OBS_OTHER },
		{ "optimus-run", "optimus", NULL, "", OBS_OTHER },
		{ "blog-web-v1", "blog", "web", "", OBS_OTHER },
		{ "optimus-db", "optimus-db", NULL, NULL, OBS_ACCESSORY },
		{ "kamal-proxy", NULL, NULL, NULL, OBS_PROXY },
		{ "random", NULL, NULL, NULL, OBS_OTHER },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct obs_container c = { 0 };

		c.name = (char *)cases[i].name;
		c.service = (char *)cases[i].service;
		c.role = (char *)cases[i].role;
		c.destination = (char *)cases[i].dest;
		docker_obs_classify(&c, &q_optimus);
		if (c.kind != cases[i].want)
			T_FAIL_AT("case %zu (%s): kind %d, want %d", i, cases[i].name, c.kind,
				  cases[i].want);
		T_CHECK(c.kind == cases[i].want);
	}
}

/* Every way of cutting the output short leaves the host with nothing observed. */
T_TEST(truncation_is_never_an_empty_host)
{
	size_t len, tried = 0;
	char *text = fixture(&len);
	const char *end;

	T_REQUIRE(text);
	end = strstr(text, "\nEND\n");
	T_REQUIRE(end);
	for (size_t cut = 0; cut <= (size_t)(end - text) + 4; cut += (cut < 200 ? 1 : 13)) {
		struct obs_host h = { 0 };
		struct plumb_err err = { 0 };

		if (docker_obs_parse(&h, text, cut, &q_optimus, &err) == 0) {
			T_FAIL_AT("output cut at %zu of %zu parsed as complete", cut, len);
			obs_host_release(&h);
			break;
		}
		T_CHECK(h.ncontainers == 0 && h.nimages == 0 && h.nenv_files == 0);
		T_INTEQ(err.code, PLUMB_EPROTOCOL);
		T_CHECK(err.msg[0] != '\0');
		tried++;
		obs_host_release(&h);
	}
	T_CHECK(tried > 300);
	free(text);
}

static int parse_str(const char *s, struct plumb_err *err, struct obs_host *h)
{
	return docker_obs_parse(h, s, strlen(s), &q_optimus, err);
}

T_TEST(failures_are_unknown)
{
	static const int code[] = {
		PLUMB_EPROTOCOL, PLUMB_EPROTOCOL, PLUMB_EPROTOCOL, PLUMB_ERROR, PLUMB_ERROR,
		PLUMB_EPROTOCOL, PLUMB_EPROTOCOL, PLUMB_EPROTOCOL, PLUMB_EPROTOCOL, PLUMB_EPROTOCOL, 0,
	};
	static const char *const bad[] = {
		"", "END\n", "garbage\nEND\n",
		"PLUMB-OBS 1\nX docker Cannot connect to the Docker daemon\n",
		"PLUMB-OBS 1\nC {\"Id\":\"a\"}\nZ\nS containers 1\nEND\n",
		"PLUMB-OBS 1\nC {\"Id\":\"a\"}\nE K\tnothex\nZ\nS containers 0\nEND\n",
		"PLUMB-OBS 1\nC {not json}\nS containers 0\nEND\n",
		"PLUMB-OBS 1\nC {\"Id\":\"a\"}\nZ\nEND\n", /* no container status */
		"PLUMB-OBS 1\nE K\t0000000000000000000000000000000000000000000000000000000000000000\nEND\n",
		"PLUMB-OBS 1\nQ what\nEND\n",
		"PLUMB-OBS 1\nV 20\nEND\ntrailing", /* fine: END ends it */
	};
	struct plumb_err err = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct obs_host h = { 0 };
		int rc = parse_str(bad[i], &err, &h);

		if (rc != code[i])
			T_FAIL_AT("case %zu: %d, want %d (%s)", i, rc, code[i], err.msg);
		T_INTEQ(err.code, code[i]);
		T_CHECK(h.ncontainers == 0);
		obs_host_release(&h);
	}
	{
		struct obs_host h = { 0 };
		T_INTEQ(parse_str(bad[3], &err, &h), PLUMB_ERROR);
		T_CONTAINS(err.msg, "Cannot connect to the Docker daemon");
		obs_host_release(&h);
	}
	{
		struct obs_host h = { 0 };
		/* an empty host, observed completely, is OK with no containers */
		T_INTEQ(parse_str("PLUMB-OBS 1\nV 20.10\nEND\n", &err, &h), 0);
		T_INTEQ(h.ncontainers, 0);
		obs_host_release(&h);
	}
}

T_TEST(home_line)
{
	struct plumb_err err = { 0 };
	struct obs_host h = { 0 };

	T_INTEQ(parse_str("PLUMB-OBS 1\nW /home/deploy\nEND\n", &err, &h), 0);
	T_STREQ(h.home, "/home/deploy");
	obs_host_release(&h);
	/* relative, or with a control byte: the host is unknown */
	T_INTEQ(parse_str("PLUMB-OBS 1\nW home\nEND\n", &err, &h), PLUMB_EPROTOCOL);
	T_CHECK(h.home == NULL);
	obs_host_release(&h);
	T_INTEQ(parse_str("PLUMB-OBS 1\nW /ho\x1bme\nEND\n", &err, &h), PLUMB_EPROTOCOL);
	obs_host_release(&h);
}

/* Every tag alone, with an empty argument, or truncated: refused (or, for the
 * tag-only "Z", accepted) without reading past the line. Under ASan a read
 * past a one-letter line is a heap-buffer-overflow. */
T_TEST(one_letter_and_truncated_lines)
{
	static const char tags[] = "VRXSFKEMCILZQ";
	static const char *const truncated[] = {
		"S", "S ", "S containers", "S containers ", "S containers x", "S images -1",
		"S containers 0 1", "F", "F 600", "F 600 ", "F 600 abc /p", "F 6x0 " HEX64 " /p",
		"F 600 " HEX64, "F 600 " HEX64 " ", "F 600 " HEX64 "0 /p", "E", "E K", "E K\t",
		"E \t" HEX64, "E K\t" HEX64 "0", "C", "C ", "C {", "I", "I [1]", "M", "V", "V ",
		"V 20\x01", "Z ", "Zz", "L K\t" HEX64, "R", "K",
	};
	struct plumb_err err = { 0 };

	for (const char *t = tags; *t; t++) {
		for (int form = 0; form < 2; form++) {
			struct obs_host h = { 0 };
			char *s = xasprintf("PLUMB-OBS 1\n%c%s\nEND\n", *t, form ? " " : "");
			int rc = parse_str(s, &err, &h);
			int ok = (*t == 'Z' && !form) || ((*t == 'K' || *t == 'R') && form);

			if (ok ? rc != 0 : rc == 0)
				T_FAIL_AT("line \"%c%s\": %d (%s)", *t, form ? " " : "", rc, err.msg);
			if (rc < 0)
				T_CHECK(err.msg[0] != '\0');
			T_CHECK(h.docker_version == NULL && h.ncontainers == 0);
			obs_host_release(&h);
			free(s);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(truncated); i++) {
		struct obs_host h = { 0 };
		char *s = xasprintf("PLUMB-OBS 1\nC {\"Id\":\"a\"}\n%s\nZ\nS containers 0\nEND\n",
				    truncated[i]);
		if (parse_str(s, &err, &h) == 0)
			T_FAIL_AT("truncated line \"%s\" parsed", truncated[i]);
		T_CHECK(h.ncontainers == 0 && h.docker_version == NULL);
		obs_host_release(&h);
		free(s);
	}
	{
		/* a failed parse keeps nothing it read, not even the version */
		struct obs_host h = { 0 };
		T_INTEQ(parse_str("PLUMB-OBS 1\nV 20.10\nQ\nEND\n", &err, &h), PLUMB_EPROTOCOL);
		T_CHECK(h.docker_version == NULL);
		obs_host_release(&h);
	}
}

/* Missing arguments are PLUMB_EINVAL; a line over its bound is PLUMB_ETOOBIG
 * (not a malformed line); a NULL carrier is allowed. */
T_TEST(parse_codes_for_arguments_and_bounds)
{
	struct plumb_err err = { 0 };
	struct obs_host h = { 0 };
	struct sbuf sb;
	char *s;

	T_INTEQ(docker_obs_parse(&h, NULL, 5, &q_optimus, &err), PLUMB_EINVAL);
	T_INTEQ(err.code, PLUMB_EINVAL);
	T_INTEQ(docker_obs_parse(&h, "x", 1, NULL, &err), PLUMB_EINVAL);
	T_INTEQ(docker_obs_parse(NULL, "x", 1, &q_optimus, NULL), PLUMB_EINVAL);
	sbuf_init(&sb, 4u << 20);
	sbuf_adds(&sb, "PLUMB-OBS 1\nC ");
	for (size_t i = 0; i < (1u << 20) + 8; i++) /* OBS_MAX_LINE (1 MiB) + 8 */
		sbuf_addc(&sb, 'x');
	sbuf_adds(&sb, "\nEND\n");
	s = sbuf_detach(&sb);
	T_INTEQ(parse_str(s, &err, &h), PLUMB_ETOOBIG);
	T_CONTAINS(err.msg, "a line longer than");
	T_INTEQ(parse_str(s, NULL, &h), PLUMB_ETOOBIG);
	T_INTEQ(h.ncontainers, 0);
	obs_host_release(&h);
	free(s);
}

/* kamal-proxy's route list: unknown shapes are PLUMB_EPROTOCOL, no JSON is PLUMB_EINVAL. */
T_TEST(proxy_routes_codes)
{
	struct obs_route *r = NULL;
	size_t n = 7;

	T_INTEQ(kamal_proxy_parse_routes(&r, &n, "\"just a string\""), PLUMB_EPROTOCOL);
	T_CHECK(r == NULL && n == 0);
	n = 7;
	T_INTEQ(kamal_proxy_parse_routes(&r, &n, NULL), PLUMB_EINVAL);
	T_CHECK(r == NULL && n == 0);
	T_INTEQ(kamal_proxy_parse_routes(&r, &n, "{\"a-web\":{\"target\":\"x:80\"}}"), 0);
	T_INTEQ(n, 1);
	obs_routes_free(r, n);
}

/* `kamal-proxy list` as kamal-proxy prints it: a table of colour-escaped
 * cells (rows by newlines, or joined by blanks as the observation sends
 * them), read by the header's column names; a fixed-width table whose cell
 * may have been cut, or anything else, is unknown. */
#define KP_H(x) "\033[3;94m" x "\033[0m  "
#define KP_B(x) "\033[1;34m" x "\033[0m  "
#define KP_C(x) "\033[m" x "\033[0m  "
T_TEST(proxy_routes_from_the_table)
{
	static const char *const bad[] = {
		/* cut short, stray text, a row short of a cell, no Target column */
		KP_H("Service") KP_H("Target") KP_B("optimus-web") "\033[mabc",
		KP_H("Service") KP_H("Target") "junk " KP_B("optimus-web") KP_C("abc:80"),
		KP_H("Service") KP_H("Host") KP_H("Target") KP_B("optimus-web") KP_C("abc:80"),
		KP_H("Service") KP_H("Host") KP_B("optimus-web") KP_C("*"),
		/* an older version's 30-column cells, one filled to the edge: maybe cut */
		"\033[3;94mService                       \033[0m\033[3;94mTarget                        \033[0m\n"
		"\033[1;34moptimus-web-with-a-very-long-na\033[0m\033[mabc:80                        \033[0m\n",
	};
	struct obs_route *r = NULL;
	size_t n = 0;

	T_INTEQ(kamal_proxy_parse_routes(&r, &n,
					 KP_H("Service") KP_H("Host") KP_H("Path") KP_H("Target") KP_H("State") KP_H("TLS") "\n"
					 KP_B("optimus-job") KP_C("a.example.com,b.example.com") KP_C("/x") KP_C("0123456789ab:80")
					 KP_C("running") KP_C("no") " "
					 KP_B("optimus-web") KP_C("*") KP_C("/") KP_C("ba9876543210:80") KP_C("running") KP_C("no")
					 " " KP_B("optimus-admin") KP_C("*") KP_C("/") KP_C("") KP_C("stopped") KP_C("no") "\n"),
		0);
	T_REQUIRE(n == 2);
	T_STREQ(r[0].service, "optimus-job");
	T_STREQ(r[0].target, "0123456789ab:80");
	T_STREQ(r[1].service, "optimus-web");
	T_STREQ(r[1].target, "ba9876543210:80");
	obs_routes_free(r, n);
	/* the header alone: no routes, known */
	T_INTEQ(kamal_proxy_parse_routes(&r, &n, KP_H("Service") KP_H("Host") KP_H("Target") "\n"), 0);
	T_CHECK(r == NULL && n == 0);
	/* an older version's padded cells, none cut */
	T_INTEQ(kamal_proxy_parse_routes(&r, &n,
					 "\033[3;94mService   \033[0m\033[3;94mTarget    \033[0m\n"
					 "\033[1;34moptimus-web\033[0m\033[mabc:80    \033[0m\n"), PLUMB_EPROTOCOL);
	T_INTEQ(kamal_proxy_parse_routes(&r, &n,
					 "\033[3;94mService      \033[0m\033[3;94mTarget    \033[0m\n"
					 "\033[1;34moptimus-web  \033[0m\033[mabc:80    \033[0m\n"), 0);
	T_REQUIRE(n == 1);
	T_STREQ(r[0].target, "abc:80");
	obs_routes_free(r, n);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		n = 7;
		T_INTEQ(kamal_proxy_parse_routes(&r, &n, bad[i]), PLUMB_EPROTOCOL);
		T_CHECK(r == NULL && n == 0);
	}
}
#undef KP_H
#undef KP_B
#undef KP_C

/* The script is a real file: valid shell for sh (and bash when present),
 * and what plumb sends is that file's bytes without its comment lines. */
T_TEST(script_file_is_the_embedded_script)
{
	char *text = NULL;
	size_t len = 0;
	struct sbuf want;

	T_INTEQ(system("sh -n providers/observe.sh"), 0);
	if (system("command -v bash >/dev/null 2>&1") == 0)
		T_INTEQ(system("bash -n providers/observe.sh"), 0);
	T_REQUIRE(util_read_file("providers/observe.sh", 1 << 20, &text, &len) == 0);
	sbuf_init(&want, 0);
	for (const char *p = text; p < text + len;) {
		const char *nl = memchr(p, '\n', (size_t)(text + len - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(text + len - p);
		size_t b = strspn(p, " \t");

		if (b >= n || p[b] != '#')
			sbuf_add(&want, p, n);
		p += n;
	}
	T_STREQ(docker_obs_script, want.buf);
	T_CHECK(strncmp(docker_obs_script, "S=$1;", 5) == 0);
	sbuf_release(&want);
	free(text);
}

/* A container reporting n labels "l0".."l<n-1>" (plus service/role). */
static char *many_labels(size_t n)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	sbuf_adds(&sb, "PLUMB-OBS 1\nC {\"Id\":\"a\",\"Name\":\"/optimus-web-1\",\"Config\":{\"Labels\":{");
	for (size_t i = 0; i < n; i++)
		sbuf_addf(&sb, "\"l%zu\":\"%zu\",", i, i % 10);
	sbuf_adds(&sb, "\"service\":\"optimus\",\"role\":\"web\",\"destination\":\"\"}}}\nZ\n"
		       "S containers 0\nEND\n");
	return sbuf_detach(&sb);
}

/* 70k labels on one container: refused as too large (at once, not after a
 * quadratic parse); thousands are handled, with lookups by binary search. */
T_TEST(many_labels_are_bounded)
{
	struct plumb_err err = { 0 };
	struct obs_host h = { 0 };
	char *s = many_labels(70000);

	T_INTEQ(parse_str(s, &err, &h), PLUMB_ETOOBIG);
	T_INTEQ(err.code, PLUMB_ETOOBIG);
	T_CONTAINS(err.msg, "host output too large");
	T_CONTAINS(err.msg, "labels");
	T_INTEQ(h.ncontainers, 0);
	obs_host_release(&h);
	free(s);

	s = many_labels(4000);
	T_INTEQ(parse_str(s, &err, &h), 0);
	T_REQUIRE(h.ncontainers == 1);
	T_INTEQ(h.containers[0].labels.n, 4003);
	T_STREQ(kvs_get(&h.containers[0].labels, "l3999"), "9");
	T_STREQ(kvs_get(&h.containers[0].labels, "l0"), "0");
	T_CHECK(kvs_get(&h.containers[0].labels, "l4000") == NULL);
	T_STREQ(h.containers[0].role, "web");
	T_INTEQ(h.containers[0].kind, OBS_APP);
	obs_host_release(&h);
	free(s);
}

T_TEST(command_passes_values_as_arguments)
{
	struct prov_cmd c;
	struct sbuf sb;
	const char *const acc[] = { "optimus-db" };
	struct docker_obs_query q = { .service = "op'$(touch x)", .destination = "st",
				      .accessories = acc, .naccessories = 1 };

	T_INTEQ(docker_obs_build(&c, FIXTURE_SALT, &q), 0);
	T_REQUIRE(c.n == 1);
	T_REQUIRE(c.v[0].argv.n == 10);
	T_STREQ(c.v[0].argv.v[0], "sh");
	T_STREQ(c.v[0].argv.v[1], "-c");
	T_CHECK(strcmp(c.v[0].argv.v[2], docker_obs_script) == 0);
	T_STREQ(c.v[0].argv.v[3], DOCKER_OBS_ARGV0);
	T_STREQ(c.v[0].argv.v[4], FIXTURE_SALT);
	T_STREQ(c.v[0].argv.v[5], "op'$(touch x)-st");
	T_STREQ(c.v[0].argv.v[6], "lock-op'$(touch x)-st");
	T_STREQ(c.v[0].argv.v[7], "s:op'$(touch x)");
	T_STREQ(c.v[0].argv.v[8], "s:optimus-db");
	T_STREQ(c.v[0].argv.v[9], "n:kamal-proxy");
	sbuf_init(&sb, 0);
	T_INTEQ(prov_cmd_render(&c, &sb), 0);
	T_CONTAINS(sb.buf, "'s:op'\\''$(touch x)'");
	sbuf_release(&sb);
	prov_cmd_release(&c);
	/* the script never splices an argument into code */
	T_NOT_CONTAINS(docker_obs_script, "eval");
}

/* The read-only guard allows the observation script by its exact text only. */
T_TEST(guard_allows_only_the_exact_script)
{
	struct prov_cmd c;
	char why[256];
	char *modified = xstrdup(docker_obs_script);
	size_t len = strlen(modified);

	T_INTEQ(docker_obs_build(&c, FIXTURE_SALT, &q_optimus), 0);
	T_INTEQ(prov_readonly_check(&c, why, sizeof(why)), 0);
	prov_cmd_release(&c);

	/* one byte changed, one appended, one removed: refused */
	modified[len / 2] = modified[len / 2] == 'x' ? 'y' : 'x';
	for (int variant = 0; variant < 3; variant++) {
		char *script = variant == 0 ? xstrdup(modified)
			     : variant == 1 ? xasprintf("%s\ndocker rm -f x\n", docker_obs_script)
					    : xstrndup(docker_obs_script, len - 1);
		prov_cmd_init(&c);
		prov_cmd_begin(&c, PROV_JOIN_SEQ);
		prov_cmd_args(&c, "sh", "-c", script, DOCKER_OBS_ARGV0, FIXTURE_SALT, NULL);
		T_INTEQ(prov_readonly_check(&c, why, sizeof(why)), PLUMB_EREFUSED);
		T_CONTAINS(why, "observation script");
		prov_cmd_release(&c);
		free(script);
	}
	/* the exact script under another name, or any other sh: refused */
	prov_cmd_init(&c);
	prov_cmd_begin(&c, PROV_JOIN_SEQ);
	prov_cmd_args(&c, "sh", "-c", docker_obs_script, "other", NULL);
	T_INTEQ(prov_readonly_check(&c, why, sizeof(why)), PLUMB_EREFUSED);
	prov_cmd_release(&c);
	prov_cmd_init(&c);
	prov_cmd_begin(&c, PROV_JOIN_SEQ);
	prov_cmd_args(&c, "sh", "-c", "docker rm -f optimus-web-v1", NULL);
	T_INTEQ(prov_readonly_check(&c, why, sizeof(why)), PLUMB_EREFUSED);
	prov_cmd_release(&c);
	/* and the exact script followed by a mutating command: refused as a whole */
	T_INTEQ(docker_obs_build(&c, FIXTURE_SALT, &q_optimus), 0);
	prov_cmd_begin(&c, PROV_JOIN_SEQ);
	prov_cmd_args(&c, "docker", "rm", "-f", "x", NULL);
	T_INTEQ(prov_readonly_check(&c, why, sizeof(why)), PLUMB_EREFUSED);
	prov_cmd_release(&c);
	free(modified);
}

/* ---- the real script against a stub docker ---- */

static char tmp[64];

static int write_text(const char *dir, const char *name, const char *text, int mode)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	int rc = -1;

	if (f) {
		rc = fputs(text, f) < 0 ? -1 : 0;
		if (fclose(f) != 0)
			rc = -1;
		chmod(p, (mode_t)mode);
	}
	free(p);
	return rc;
}

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define IMG "sha256:1111111111111111111111111111111111111111111111111111111111111111"

#define ID_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define ID_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define IMG2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

/*
 * The stub docker: `ps` and `inspect` print what docker's templates would;
 * `inspect` adds the image block only when asked for the image by the
 * reference `ps` showed, `image inspect` serves the image a container names
 * by a bare reference, `exec` (kamal-proxy list) prints one route, `events`
 * prints events.txt (whatever the window). Every call's arguments are kept
 * in args.<verb>.
 */
static const char stub_docker[] =
	"#!/bin/sh\n"
	"printf '%s\\n' \"$@\" > \"$STUBDIR/args.$1\"\n"
	"case \"$1\" in\n"
	"ps) cat \"$STUBDIR/ps.txt\" ;;\n"
	"inspect) cat \"$STUBDIR/inspect.txt\"\n"
	"  for a in \"$@\"; do [ \"$a\" = r/optimus:v1 ] && cat \"$STUBDIR/images.txt\"; done; exit 0 ;;\n"
	/* what kamal-proxy v0.9.2 prints: a table, every cell in a colour escape */
	"exec) printf '\\033[3;94mService\\033[0m      \\033[3;94mHost\\033[0m  \\033[3;94mPath\\033[0m  "
	"\\033[3;94mTarget\\033[0m           \\033[3;94mState\\033[0m    \\033[3;94mTLS\\033[0m  \\n"
	"\\033[1;34moptimus-web\\033[0m  \\033[m*\\033[0m     \\033[m/\\033[0m     "
	"\\033[maaaaaaaaaaaa:80\\033[0m  \\033[mrunning\\033[0m  \\033[mno\\033[0m   \\n' ;;\n"
	"image) cat \"$STUBDIR/image2.txt\" ;;\n"
	"events) cat \"$STUBDIR/events.txt\" 2>/dev/null; exit 0 ;;\n"
	"*) exit 1 ;;\n"
	"esac\n";

/*
 * A sha256sum in front of the real one that logs each run; with
 * $STUBDIR/nofd present it fails on /dev/fd arguments (a host without
 * /dev/fd), so the script must fall back to hashing values one by one.
 */
static const char stub_sha256sum[] =
	"#!/bin/sh\n"
	"echo \"$#\" >> \"$STUBDIR/sha256sum.log\"\n"
	"if [ -e \"$STUBDIR/nofd\" ] && [ $# -gt 0 ]; then exit 1; fi\n"
	"exec \"$REAL_SHA256SUM\" \"$@\"\n";

/* What `docker inspect --format <template>` prints: env entries with '\' and
 * newline escaped as the template does. The second container shares values
 * with the first and with the env file (hashed once), and uses an image by a
 * bare reference (inspected by id in a second call). */
static const char stub_inspect[] =
	"C {\"Id\":\"" ID_A "\",\"Name\":\"/optimus-web-v1\",\"Image\":\"" IMG "\","
	"\"State\":{\"Status\":\"running\",\"ExitCode\":0,\"Health\":null},"
	"\"Config\":{\"Image\":\"r/optimus:v1\",\"Labels\":{\"service\":\"optimus\",\"role\":\"web\",\"destination\":\"\"}}}\n"
	"M " IMG "\n"
	"E NL=a\\nb\\\\c $(touch PWNED) \"q\" 'q' `x`\n"
	"E TRAIL=x\\n\n"
	"E EMPTY=\n"
	"E TAB=a\tb %s %b\n"
	"E CANARY=CANARY-value-123\n"
	"E GLOB=* ? [a] \\\\* $nl\n"
	"E PATH=/bin\n"
	"Z\n"
	"C {\"Id\":\"" ID_C "\",\"Name\":\"/optimus-job-v1\",\"Image\":\"" IMG2 "\","
	"\"State\":{\"Status\":\"running\",\"ExitCode\":0,\"Health\":null},"
	"\"Config\":{\"Image\":\"busybox\",\"Labels\":{\"service\":\"optimus\",\"role\":\"job\",\"destination\":\"\"}}}\n"
	"M " IMG2 "\n"
	"E CANARY=CANARY-value-123\n"
	"E SECRET=CANARY-file\n"
	"E GLOB=* ? [a] \\\\*\n"
	"E JOB=1\n"
	"Z\n";

static const char stub_images[] = "I {\"Id\":\"" IMG "\",\"RepoTags\":[\"r/optimus:v1\"]}\n"
				  "E PATH=/bin\n"
				  "Z\n";

/* the same image twice (two references): reported once */
static const char stub_image2[] = "I {\"Id\":\"" IMG2 "\",\"RepoTags\":[\"busybox:latest\"]}\n"
				  "E PATH=/usr/bin\n"
				  "Z\n"
				  "I {\"Id\":\"" IMG2 "\",\"RepoTags\":[\"busybox:latest\"]}\n"
				  "E PATH=/usr/bin\n"
				  "Z\n";

static int count_lines(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	int n = 0;

	if (util_read_file(path, 1 << 16, &text, &len) < 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	free(text);
	return n;
}

static int dir_is_empty(const char *path)
{
	char *cmd = xasprintf("test -z \"$(ls -A '%s')\"", path);
	int rc = system(cmd);

	free(cmd);
	return rc == 0;
}

/* A stub host: $HOME with the app's directory, the stub docker and
 * sha256sum first on PATH, and the environment to restore. */
struct stub_host {
	char *bin, *home, *dump, *tmpdir, *log, *real, *path;
	char *saved_path, *saved_home, *saved_tmp;
};

/* A curl in front of the Engine API's socket: prints curl.txt (nothing
 * when absent), or fails when curl.fail is there; arguments in args.curl. */
static const char stub_curl[] =
	"#!/bin/sh\n"
	"printf '%s\\n' \"$@\" > \"$STUBDIR/args.curl\"\n"
	"[ -e \"$STUBDIR/curl.fail\" ] && exit 7\n"
	"cat \"$STUBDIR/curl.txt\" 2>/dev/null\n"
	"exit 0\n";

/* A cat in front of the real one that refuses a file named unreadable.env:
 * the tests run as root, who reads a mode-000 file anyway. */
static const char stub_cat[] =
	"#!/bin/sh\n"
	"for a in \"$@\"; do case $a in *unreadable.env) echo \"cat: $a: Permission denied\" >&2; exit 1 ;; esac; done\n"
	"exec \"$REAL_CAT\" \"$@\"\n";

static void stub_setup(struct stub_host *sh, int nofd, const char *ps)
{
	const char *old_path = getenv("PATH"), *old_home = getenv("HOME"), *old_tmp = getenv("TMPDIR");
	char *cmd;

	memset(sh, 0, sizeof(*sh));
	sh->saved_path = old_path ? xstrdup(old_path) : NULL;
	sh->saved_home = old_home ? xstrdup(old_home) : NULL;
	sh->saved_tmp = old_tmp ? xstrdup(old_tmp) : NULL;
	snprintf(tmp, sizeof(tmp), "/tmp/plumb-test-obs-XXXXXX");
	T_REQUIRE(mkdtemp(tmp));
	sh->bin = xasprintf("%s/bin", tmp);
	sh->home = xasprintf("%s/home", tmp);
	sh->dump = xasprintf("%s/dump", tmp);
	sh->tmpdir = xasprintf("%s/tmpdir", tmp);
	sh->log = xasprintf("%s/sha256sum.log", tmp);
	mkdir(sh->bin, 0700);
	mkdir(sh->home, 0700);
	mkdir(sh->tmpdir, 0700);
	cmd = xasprintf("mkdir -p '%s/.kamal/apps/optimus/env/roles' '%s/.kamal/lock-optimus'", sh->home,
			sh->home);
	T_CHECK(system(cmd) == 0);
	free(cmd);
	sh->real = access("/usr/bin/sha256sum", X_OK) == 0 ? xstrdup("/usr/bin/sha256sum")
							    : xstrdup("/bin/sha256sum");
	setenv("REAL_SHA256SUM", sh->real, 1);
	setenv("REAL_CAT", access("/usr/bin/cat", X_OK) == 0 ? "/usr/bin/cat" : "/bin/cat", 1);
	T_CHECK(write_text(sh->bin, "docker", stub_docker, 0755) == 0);
	T_CHECK(write_text(sh->bin, "sha256sum", stub_sha256sum, 0755) == 0);
	T_CHECK(write_text(sh->bin, "cat", stub_cat, 0755) == 0);
	T_CHECK(write_text(sh->bin, "curl", stub_curl, 0755) == 0);
	/* the script's curl goes to the default socket: no other endpoint */
	unsetenv("DOCKER_HOST");
	unsetenv("DOCKER_CONTEXT");
	unsetenv("DOCKER_CONFIG");
	if (nofd)
		T_CHECK(write_text(tmp, "nofd", "", 0600) == 0);
	T_CHECK(write_text(tmp, "ps.txt", ps, 0600) == 0);
	T_CHECK(write_text(tmp, "inspect.txt", stub_inspect, 0600) == 0);
	T_CHECK(write_text(tmp, "images.txt", stub_images, 0600) == 0);
	T_CHECK(write_text(tmp, "image2.txt", stub_image2, 0600) == 0);
	sh->path = xasprintf("%s:%s", sh->bin, old_path ? old_path : "/usr/bin:/bin");
	setenv("PATH", sh->path, 1);
	setenv("HOME", sh->home, 1);
	setenv("TMPDIR", sh->tmpdir, 1);
	setenv("STUBDIR", tmp, 1);
}

/* Observes the stub host (one round trip through the read-only transport). */
static int stub_observe(struct stub_host *sh, struct obs_host *h, const char *salt)
{
	struct transport *t = NULL, *ro = NULL;
	int rc;

	h->host = xstrdup("localhost");
	if (transport_local_open(&t) != 0 || transport_readonly_wrap(&ro, t) != 0) {
		T_FAIL_AT("local transport");
		rc = -2;
	} else {
		rc = docker_obs_host(h, ro, salt, &q_optimus, sh->dump);
	}
	transport_close(ro);
	transport_close(t);
	return rc;
}

static void stub_teardown(struct stub_host *sh)
{
	char *cmd = xasprintf("rm -rf '%s'", tmp);

	T_CHECK(system(cmd) == 0);
	free(cmd);
	if (sh->saved_path)
		setenv("PATH", sh->saved_path, 1);
	if (sh->saved_home)
		setenv("HOME", sh->saved_home, 1);
	if (sh->saved_tmp)
		setenv("TMPDIR", sh->saved_tmp, 1);
	else
		unsetenv("TMPDIR");
	free(sh->saved_path);
	free(sh->saved_home);
	free(sh->saved_tmp);
	free(sh->bin);
	free(sh->home);
	free(sh->path);
	free(sh->dump);
	free(sh->tmpdir);
	free(sh->real);
	free(sh->log);
}

static const char stub_ps[] = ID_A " running r/optimus:v1 optimus-web-v1 optimus\n"
			      ID_B " running r/blog:v1 blog-web-v1 blog\n"
			      ID_C " exited busybox optimus-job-v1 optimus\n"
			      "nothex running r/x:1 x optimus\n"
			      "--format running r/y:1 y optimus\n";

/*
 * The real script, by /bin/sh through the read-only local transport, against
 * the stub docker; nofd = a host where sha256sum cannot read /dev/fd (every
 * value is then hashed alone). *runs = the number of sha256sum runs.
 */
static void observe_stub(int nofd, int *runs)
{
	struct stub_host sh;
	struct obs_host h = { 0 };
	const struct obs_container *c;
	const struct obs_env_file *ef;
	char salt[33];
	char *raw = NULL, *args = NULL, *cmd;
	size_t rawlen = 0;

	stub_setup(&sh, nofd, stub_ps);
	T_CHECK(write_text(sh.home, ".kamal/apps/optimus/env/roles/web.env",
			   "SECRET=CANARY-file\nESC=a\\nb \"q\" #x\nJOB=1\nGLOB=* ? [a] \\*", 0600) == 0);
	/* base64 of "Locked by: Bob" as Kamal writes it (with a trailing newline) */
	T_CHECK(write_text(sh.home, ".kamal/lock-optimus/details", "TG9ja2VkIGJ5OiBCb2I=\n", 0600) == 0);

	hash_salt_new(salt);
	T_INTEQ(stub_observe(&sh, &h, salt), 0);
	if (h.error)
		fprintf(stderr, "  error: %s\n", h.error);
	T_INTEQ(h.status, OBS_OK);
	T_INTEQ(h.round_trips, 1);
	T_CHECK(h.docker_version == NULL); /* not asked: `docker version` costs a call */
	T_REQUIRE(h.ncontainers == 2);
	c = by_name(&h, "optimus-web-v1");
	T_REQUIRE(c);
	T_INTEQ(c->kind, OBS_APP);
	T_INTEQ(c->nenv, 7);
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "NL"), salt, "a\nb\\c $(touch PWNED) \"q\" 'q' `x`"));
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "TRAIL"), salt, "x\n"));
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "EMPTY"), salt, ""));
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "TAB"), salt, "a\tb %s %b"));
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "CANARY"), salt, "CANARY-value-123"));
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "GLOB"), salt, "* ? [a] \\* $nl"));
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "PATH"), salt, "/bin"));
	c = by_name(&h, "optimus-job-v1");
	T_REQUIRE(c);
	T_INTEQ(c->nenv, 4);
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "CANARY"), salt, "CANARY-value-123"));
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "SECRET"), salt, "CANARY-file"));
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "GLOB"), salt, "* ? [a] \\*"));
	T_CHECK(hash_is(obs_env_hash(c->env, c->nenv, "JOB"), salt, "1"));
	/* both images, the one named by a bare reference once */
	T_REQUIRE(h.nimages == 2);
	T_REQUIRE(obs_host_image(&h, IMG) && obs_host_image(&h, IMG2));
	T_CHECK(hash_is(obs_env_hash(obs_host_image(&h, IMG)->env, obs_host_image(&h, IMG)->nenv, "PATH"),
			salt, "/bin"));
	T_CHECK(hash_is(obs_env_hash(obs_host_image(&h, IMG2)->env, obs_host_image(&h, IMG2)->nenv, "PATH"),
			salt, "/usr/bin"));
	ef = obs_host_env_file(&h, ".kamal/apps/optimus/env/roles/web.env");
	T_REQUIRE(ef);
	T_INTEQ(ef->mode, 0600);
	T_INTEQ(ef->nvars, 4);
	T_CHECK(hash_is(obs_env_hash(ef->vars, ef->nvars, "SECRET"), salt, "CANARY-file"));
	T_CHECK(hash_is(obs_env_hash(ef->vars, ef->nvars, "ESC"), salt, "a\\nb \"q\" #x"));
	T_CHECK(hash_is(obs_env_hash(ef->vars, ef->nvars, "JOB"), salt, "1"));
	T_CHECK(hash_is(obs_env_hash(ef->vars, ef->nvars, "GLOB"), salt, "* ? [a] \\*"));
	T_CHECK(hash_is(ef->content_hash, salt,
			"SECRET=CANARY-file\nESC=a\\nb \"q\" #x\nJOB=1\nGLOB=* ? [a] \\*"));
	T_STREQ(h.lock_holder, "Locked by: Bob");

	/* one inspect for our containers and the image by its reference; the
	 * malformed ids and the bare reference were not passed */
	T_CHECK(util_read_file(cmd = xasprintf("%s/args.inspect", tmp), 4096, &args, &rawlen) == 0);
	free(cmd);
	T_CONTAINS(args, ID_A);
	T_CONTAINS(args, ID_C);
	T_CONTAINS(args, "r/optimus:v1");
	T_NOT_CONTAINS(args, ID_B);
	T_NOT_CONTAINS(args, "busybox");
	T_NOT_CONTAINS(args, "--format\nrunning");
	T_NOT_CONTAINS(args, "nothex");
	free(args);
	args = NULL;
	/* the image named by a bare reference: inspected by id, alone */
	T_CHECK(util_read_file(cmd = xasprintf("%s/args.image", tmp), 4096, &args, &rawlen) == 0);
	free(cmd);
	T_CONTAINS(args, IMG2);
	T_NOT_CONTAINS(args, IMG "\n");
	/* no `docker version` */
	T_CHECK(access(cmd = xasprintf("%s/args.version", tmp), F_OK) != 0);
	free(cmd);
	/* nothing the "host" sent contains a value, and nothing was executed */
	T_CHECK(util_read_file(sh.dump, 1 << 20, &raw, &rawlen) == 0);
	T_CONTAINS(raw, "=== localhost stdout ===");
	T_NOT_CONTAINS(raw, "CANARY-");
	T_NOT_CONTAINS(raw, "/bin\n");
	T_NOT_CONTAINS(raw, "[a]");
	cmd = xasprintf("%s/PWNED", sh.home);
	T_CHECK(access(cmd, F_OK) != 0);
	free(cmd);
	/* a pure read: nothing written, not even a here-document's temp file */
	T_CHECK(dir_is_empty(sh.tmpdir));
	*runs = count_lines(sh.log);

	obs_host_release(&h);
	free(raw);
	free(args);
	stub_teardown(&sh);
}

T_TEST(script_hashes_on_the_host)
{
	int runs = -1;

	/* 14 distinct values (of 23 hashed): two sha256sum runs of 8 values at most */
	observe_stub(0, &runs);
	T_INTEQ(runs, 2);
}

T_TEST(script_hashes_one_by_one_without_dev_fd)
{
	int runs = -1;

	/* the two batches fail, then each of the 14 values is hashed alone */
	observe_stub(1, &runs);
	T_INTEQ(runs, 2 + 14);
}

/* An env file the SSH user cannot read: the host is unknown, not an env
 * file hashed as empty. */
T_TEST(script_unreadable_env_file_is_unknown)
{
	struct stub_host sh;
	struct obs_host h = { 0 };
	char salt[33];

	stub_setup(&sh, 0, stub_ps);
	T_CHECK(write_text(sh.home, ".kamal/apps/optimus/env/roles/web.env", "A=1\n", 0600) == 0);
	T_CHECK(write_text(sh.home, ".kamal/apps/optimus/env/roles/unreadable.env", "B=2\n", 0) == 0);
	hash_salt_new(salt);
	T_CHECK(stub_observe(&sh, &h, salt) < 0);
	T_INTEQ(h.status, OBS_UNKNOWN);
	T_REQUIRE(h.error);
	T_CONTAINS(h.error, "unreadable.env cannot be read");
	T_INTEQ(h.nenv_files, 0);
	T_INTEQ(h.ncontainers, 0);
	obs_host_release(&h);
	stub_teardown(&sh);
}

/* `kamal-proxy list` runs in the running container named kamal-proxy only
 * when its image is kamal-proxy's. */
T_TEST(script_proxy_list_only_in_kamal_proxy_image)
{
	static const char *const images[] = { "evil/kamal-proxy-lookalike:1", "basecamp/kamal-proxy:v0.8.7",
					      "localhost:5000/basecamp/kamal-proxy@sha256:00",
					      "r/optimus:v1" };
	static const int runs[] = { 0, 1, 1, 0 };

	for (size_t i = 0; i < ARRAY_SIZE(images); i++) {
		struct stub_host sh;
		struct obs_host h = { 0 };
		char salt[33], *ps, *exec_args;

		ps = xasprintf("%s" ID_D " running %s kamal-proxy kamal-proxy\n", stub_ps, images[i]);
		stub_setup(&sh, 0, ps);
		hash_salt_new(salt);
		if (stub_observe(&sh, &h, salt) != 0)
			T_FAIL_AT("image %s: %s", images[i], h.error ? h.error : "?");
		exec_args = xasprintf("%s/args.exec", tmp);
		if ((access(exec_args, F_OK) == 0) != runs[i])
			T_FAIL_AT("image %s: docker exec %s", images[i], runs[i] ? "not run" : "run");
		/* its routes, parsed on the provider side */
		T_INTEQ(h.nroutes, (size_t)runs[i]);
		if (runs[i] && h.nroutes == 1) {
			T_STREQ(h.routes[0].service, "optimus-web");
			T_STREQ(h.routes[0].target, "aaaaaaaaaaaa:80");
		}
		free(exec_args);
		obs_host_release(&h);
		stub_teardown(&sh);
		free(ps);
	}
}

/* ---- an observation answered from the last one (docker events) ---- */

static int stub_observe_cached(struct stub_host *sh, struct obs_host *h, const char *salt,
			       const struct docker_obs_query *q, struct docker_obs_cache *cache)
{
	struct transport *t = NULL, *ro = NULL;
	int rc = -2;

	obs_host_release(h);
	h->host = xstrdup("localhost");
	if (transport_local_open(&t) != 0 || transport_readonly_wrap(&ro, t) != 0)
		T_FAIL_AT("local transport");
	else
		rc = docker_obs_host_cached(h, ro, salt, q, sh->dump, cache);
	transport_close(ro);
	transport_close(t);
	return rc;
}

/* Whether the stub docker ran VERB since the last call (and forgets it). */
static int ran(const char *verb)
{
	char *p = xasprintf("%s/args.%s", tmp, verb);
	int yes = access(p, F_OK) == 0;

	unlink(p);
	free(p);
	return yes;
}

/* events.txt: the lines docker events prints with the script's template */
static void events(struct stub_host *sh, const char *text)
{
	(void)sh;
	T_CHECK(write_text(tmp, "events.txt", text, 0600) == 0);
}

#define EXEC_ID "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

T_TEST(script_unchanged_since_reuses_the_last_answer)
{
	static const char *const still[] = {
		"",
		/* a health probe in an app container */
		"container " EXEC_ID " optimus-web-v1 exec_create: curl -f localhost/up\n"
		"container " EXEC_ID " optimus-web-v1 exec_start: curl -f localhost/up\n"
		"container " EXEC_ID " optimus-web-v1 exec_die\n",
		/* plumb's own route listing in the proxy, whole */
		"container " EXEC_ID " kamal-proxy exec_create: kamal-proxy list\n"
		"container " EXEC_ID " kamal-proxy exec_start: kamal-proxy list\n"
		"container " EXEC_ID " kamal-proxy exec_die\n",
	};
	static const char *const changed[] = {
		"container - optimus-web-v1 update\n",
		"container - optimus-web-v1 rename\n",
		"container - optimus-job-v1 die\n",
		"container - optimus-web-v1 health_status: unhealthy\n",
		"network - kamal disconnect\n",
		"image - r/optimus:v1 tag\n",
		/* a deploy in the proxy (its routes change) */
		"container " EXEC_ID " kamal-proxy exec_create: kamal-proxy deploy optimus-web --target x\n",
		/* the end of an exec in the proxy that is not plumb's listing */
		"container " EXEC_ID " kamal-proxy exec_die\n",
		/* a line of another shape */
		"garbage\n",
	};
	struct stub_host sh;
	struct obs_host h = { 0 };
	struct docker_obs_cache cache = { 0 };
	struct docker_obs_query q2 = q_optimus;
	char salt[33], since[40], *ps, *many, *args = NULL, *cmd;
	const struct obs_env_file *ef;
	size_t n = 0;

	ps = xasprintf("%s" ID_D " running basecamp/kamal-proxy:v0.8.7 kamal-proxy kamal-proxy\n",
		       stub_ps);
	stub_setup(&sh, 0, ps);
	hash_salt_new(salt);
	T_CHECK(write_text(sh.home, ".kamal/apps/optimus/env/roles/web.env", "A=1\n", 0600) == 0);

	/* the first: in full, its host time kept */
	T_INTEQ(stub_observe_cached(&sh, &h, salt, &q_optimus, &cache), 0);
	T_INTEQ(h.cached, 0);
	T_REQUIRE(h.host_time);
	T_INTEQ(cache.valid, 1);
	T_STREQ(cache.since, h.host_time);
	T_CHECK(ran("ps") && ran("inspect") && ran("exec") && !ran("events"));
	T_INTEQ(h.ncontainers, 2); /* the proxy is not in the stub's inspect */
	T_INTEQ(h.nroutes, 1);

	/* nothing that changes containers: the last answer's containers, images
	 * and routes; the env files read again */
	for (size_t i = 0; i < ARRAY_SIZE(still); i++) {
		snprintf(since, sizeof(since), "%s", cache.since);
		events(&sh, still[i]);
		/* the Engine API says there are events (or fails): docker events
		 * tells which */
		if (i == 2)
			T_CHECK(write_text(tmp, "curl.fail", "", 0600) == 0);
		else
			T_CHECK(write_text(tmp, "curl.txt", "{\"Type\":\"container\"}\n", 0600) == 0);
		T_CHECK(write_text(sh.home, ".kamal/apps/optimus/env/roles/web.env",
				   i % 2 ? "A=2\n" : "A=3\n", 0600) == 0);
		if (stub_observe_cached(&sh, &h, salt, &q_optimus, &cache) != 0)
			T_FAIL_AT("case %zu: %s", i, h.error ? h.error : "?");
		if (!h.cached)
			T_FAIL_AT("case %zu: observed in full", i);
		T_CHECK(!ran("ps") && !ran("inspect") && !ran("exec"));
		T_CHECK(util_read_file(cmd = xasprintf("%s/args.events", tmp), 4096, &args, &n) == 0);
		free(cmd);
		T_CONTAINS(args, "--since");
		T_CONTAINS(args, since); /* the window opens at the last answer's time */
		free(args);
		args = NULL;
		T_CHECK(ran("events") && ran("curl"));
		unlink(cmd = xasprintf("%s/curl.fail", tmp));
		free(cmd);
		T_INTEQ(h.ncontainers, 2); /* the proxy is not in the stub's inspect */
		T_REQUIRE(by_name(&h, "optimus-web-v1"));
		T_INTEQ(by_name(&h, "optimus-web-v1")->nenv, 7);
		T_CHECK(hash_is(obs_env_hash(by_name(&h, "optimus-web-v1")->env, 7, "PATH"), salt, "/bin"));
		T_INTEQ(h.nimages, 2);
		T_INTEQ(h.nroutes, 1);
		T_STREQ(cache.since, h.host_time);
		ef = obs_host_env_file(&h, ".kamal/apps/optimus/env/roles/web.env");
		T_REQUIRE(ef);
		T_CHECK(hash_is(obs_env_hash(ef->vars, ef->nvars, "A"), salt, i % 2 ? "2" : "3"));
	}
	/* an empty window from the Engine API: unchanged, docker events not run */
	T_CHECK(unlink(cmd = xasprintf("%s/curl.txt", tmp)) == 0);
	free(cmd);
	events(&sh, changed[0]); /* (never asked) */
	snprintf(since, sizeof(since), "%s", cache.since);
	T_INTEQ(stub_observe_cached(&sh, &h, salt, &q_optimus, &cache), 0);
	T_CHECK(h.cached && !ran("events") && !ran("ps"));
	T_CHECK(util_read_file(cmd = xasprintf("%s/args.curl", tmp), 4096, &args, &n) == 0);
	free(cmd);
	T_CONTAINS(args, "--unix-socket\n/var/run/docker.sock\n");
	T_CONTAINS(args, since);
	free(args);
	args = NULL;
	T_CHECK(ran("curl"));
	T_INTEQ(h.ncontainers, 2);
	T_CHECK(write_text(tmp, "curl.txt", "{\"Type\":\"container\"}\n", 0600) == 0);
	/* anything else: in full again */
	for (size_t i = 0; i < ARRAY_SIZE(changed); i++) {
		events(&sh, changed[i]);
		if (stub_observe_cached(&sh, &h, salt, &q_optimus, &cache) != 0)
			T_FAIL_AT("changed %zu: %s", i, h.error ? h.error : "?");
		if (h.cached || !ran("ps") || !ran("inspect"))
			T_FAIL_AT("changed %zu: not observed in full", i);
		ran("events");
		ran("exec");
		T_INTEQ(h.ncontainers, 2); /* the proxy is not in the stub's inspect */
	}
	/* 250 harmless events: dockerd keeps 256, some may be lost: in full */
	many = xstrdup("");
	for (int i = 0; i < 250; i++) {
		char *m = xasprintf("%scontainer " EXEC_ID " optimus-web-v1 exec_die\n", many);
		free(many);
		many = m;
	}
	events(&sh, many);
	free(many);
	T_INTEQ(stub_observe_cached(&sh, &h, salt, &q_optimus, &cache), 0);
	T_CHECK(!h.cached && ran("ps") && ran("events"));
	ran("exec");
	/* another question (an accessory more): in full, and no t: asked */
	events(&sh, "");
	q2.naccessories = 0;
	T_INTEQ(stub_observe_cached(&sh, &h, salt, &q2, &cache), 0);
	T_CHECK(!h.cached && ran("ps") && !ran("events"));
	T_INTEQ(stub_observe_cached(&sh, &h, salt, &q2, &cache), 0);
	T_CHECK(h.cached && !ran("ps") && ran("events"));
	/* too old: in full whatever the events say */
	cache.at_ms -= DOCKER_OBS_CACHE_MAX_AGE_MS + 1;
	T_INTEQ(stub_observe_cached(&sh, &h, salt, &q2, &cache), 0);
	T_CHECK(!h.cached && ran("ps") && !ran("events"));
	/* a failed observation forgets: the next one is in full */
	T_CHECK(write_text(sh.home, ".kamal/apps/optimus/env/roles/unreadable.env", "B=2\n", 0) == 0);
	T_CHECK(stub_observe_cached(&sh, &h, salt, &q2, &cache) < 0);
	T_INTEQ(cache.valid, 0);
	T_INTEQ(h.ncontainers, 0);
	ran("events");
	T_CHECK(unlink(cmd = xasprintf("%s/.kamal/apps/optimus/env/roles/unreadable.env", sh.home)) == 0);
	free(cmd);
	T_INTEQ(stub_observe_cached(&sh, &h, salt, &q2, &cache), 0);
	T_CHECK(!h.cached && ran("ps") && !ran("events"));

	docker_obs_cache_reset(&cache);
	obs_host_release(&h);
	stub_teardown(&sh);
	free(ps);
}

/* The answer's own lines: a host time of one shape; "U" never after a
 * container, and never taken as an empty host when it was not asked. */
T_TEST(unchanged_and_time_lines)
{
	struct obs_host h = { 0 };
	struct plumb_err err = { 0 };

	T_INTEQ(parse_str("PLUMB-OBS 1\nT 1796470614.415047694\nEND\n", &err, &h), 0);
	T_STREQ(h.host_time, "1796470614.415047694");
	obs_host_release(&h);
	T_CHECK(parse_str("PLUMB-OBS 1\nT 1796470614\nEND\n", &err, &h) < 0);
	obs_host_release(&h);
	T_CHECK(parse_str("PLUMB-OBS 1\nT 1796470614.4a\nEND\n", &err, &h) < 0);
	obs_host_release(&h);
	T_CHECK(parse_str("PLUMB-OBS 1\nU x\nEND\n", &err, &h) < 0);
	obs_host_release(&h);
	T_CHECK(parse_str("PLUMB-OBS 1\nC {\"Id\":\"" ID_A "\",\"Name\":\"/x\",\"Image\":\"" IMG
			  "\",\"State\":{\"Status\":\"running\"},\"Config\":{\"Labels\":{}}}\nZ\n"
			  "S containers 0\nU\nEND\n", &err, &h) < 0);
	T_CONTAINS(plumb_err_msg(&err), "unchanged");
	obs_host_release(&h);
}

T_MAIN(T_CASE(parses_the_recording), T_CASE(destination_is_exact), T_CASE(classification_table),
       T_CASE(truncation_is_never_an_empty_host), T_CASE(failures_are_unknown), T_CASE(home_line),
       T_CASE(one_letter_and_truncated_lines),
       T_CASE(script_file_is_the_embedded_script),
       T_CASE(many_labels_are_bounded),
       T_CASE(parse_codes_for_arguments_and_bounds),
       T_CASE(proxy_routes_codes), T_CASE(proxy_routes_from_the_table),
       T_CASE(command_passes_values_as_arguments), T_CASE(guard_allows_only_the_exact_script),
       T_CASE(script_hashes_on_the_host), T_CASE(script_unreadable_env_file_is_unknown),
       T_CASE(script_proxy_list_only_in_kamal_proxy_image),
       T_CASE(script_hashes_one_by_one_without_dev_fd),
       T_CASE(script_unchanged_since_reuses_the_last_answer), T_CASE(unchanged_and_time_lines))
