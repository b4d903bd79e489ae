/*
 * Desired state: container names, env (clear values, secrets as salted
 * hashes of the value as written), env-file contents as Kamal writes them,
 * labels, volumes, ports, logging, the proxy, and unavailable secrets.
 */
#include <stdlib.h>
#include <string.h>

#include "state/desired.h"
#include "tests/unit/golden/plan_fixture.h"
#include "tests/unit/t.h"

static const struct des_container *find(const struct desired *ds, const char *host, const char *role)
{
	const struct des_host *h = desired_host(ds, host);
	for (size_t i = 0; h && i < h->ncontainers; i++)
		if (strcmp(h->containers[i].role, role) == 0)
			return &h->containers[i];
	return NULL;
}

T_TEST(env_escape_as_kamal_writes)
{
	char *e;

	e = desired_env_escape("plain");
	T_STREQ(e, "plain");
	free(e);
	e = desired_env_escape("a\"b#c\\d\ne\tf");
	T_STREQ(e, "a\"b#c\\\\d\\ne\\tf");
	free(e);
	e = desired_env_escape("caf\xc3\xa9 \x01\x7f");
	T_STREQ(e, "caf\xc3\xa9 \\x01\\x7F");
	free(e);
	e = desired_env_escape("#{x} $y");
	T_STREQ(e, "#{x} $y");
	free(e);
}

/* What a container holds for a clear value Kamal passed with --env through
 * the host's shell (escape_shell_value: String#dump per ASCII run, then the
 * shell undoes \" \\ \$ \` only). */
T_TEST(clear_env_as_the_container_holds_it)
{
	static const struct { const char *in, *held; } cases[] = {
		{ "plain", "plain" },
		{ "line1\nline2\n", "line1\\nline2\\n" },
		{ "a\tb", "a\\tb" },
		{ "#{x} #$y #@z #w", "\\#{x} \\#$y \\#@z #w" },
		{ "say \"hi\"", "say \"hi\"" },
		{ "C:\\dir", "C:\\dir" },
		{ "$HOME `id`", "$HOME `id`" },
		{ "caf\xc3\xa9\n", "caf\xc3\xa9\\n" },
		{ "#\xc3\xa9", "#\xc3\xa9" },
		{ "\x1b[1m\x01\x7f\r", "\\e[1m\\x01\\x7F\\r" },
	};
	struct config *c;
	struct desired *ds;
	const struct des_container *job;
	const struct des_env *e;
	char want[HASH_HEX_LEN + 1];
	char *yml;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *h = desired_env_held(cases[i].in);
		T_STREQ(h, cases[i].held);
		free(h);
	}
	/* the desired hash is of what the container holds */
	yml = xasprintf("%s", FX_YML);
	{
		char *p = strstr(yml, "        QUEUE_THREADS: 3\n"), *n;
		T_REQUIRE(p);
		*p = '\0';
		n = xasprintf("%s        QUEUE_THREADS: 3\n        PEM: |\n          line1\n          line2\n"
			      "        TABBED: \"a\\tb\"\n        TPL: \"#{x}\"\n%s",
			      yml, p + strlen("        QUEUE_THREADS: 3\n"));
		free(yml);
		yml = n;
	}
	c = fx_config(yml, FX_SECRETS);
	free(yml);
	T_REQUIRE(c);
	ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(ds);
	job = find(ds, "10.0.0.2", "job");
	T_REQUIRE(job);
	e = des_container_env(job, "PEM");
	T_REQUIRE(e && e->kind == DES_ENV_CLEAR);
	T_STREQ(e->value, "line1\nline2\n");
	hash_salted(FX_SALT, "line1\\nline2\\n", strlen("line1\\nline2\\n"), want);
	T_STREQ(e->hash, want);
	e = des_container_env(job, "TABBED");
	T_REQUIRE(e);
	hash_salted(FX_SALT, "a\\tb", 4, want);
	T_STREQ(e->hash, want);
	e = des_container_env(job, "TPL");
	T_REQUIRE(e);
	hash_salted(FX_SALT, "\\#{x}", 5, want);
	T_STREQ(e->hash, want);
	desired_free(ds);
	config_free(c);
}

/* Kamal's Boot#limit for "N%": [all_hosts.count * N / 100, 1].max. */
T_TEST(boot_limit_percent_as_kamal)
{
	static const struct { const char *limit; int want; } cases[] = {
		{ "60%", 4 },  /* 7 hosts: floor(4.2); not ceil over the 5 web hosts (3) */
		{ "10%", 1 },  /* floor(0.7) = 0 → at least 1 */
		{ "50%", 3 },  /* floor(3.5) */
		{ "100%", 7 },
		{ "2", 2 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *yml = xasprintf("service: optimus\nimage: optimus\nregistry:\n  server: localhost:5555\n"
				      "boot:\n  limit: \"%s\"\n"
				      "servers:\n  web:\n    hosts: [10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5]\n"
				      "  job:\n    hosts: [10.0.0.6]\n"
				      "accessories:\n  db:\n    image: postgres:17\n    host: 10.0.0.7\n",
				      cases[i].limit);
		struct config *c = fx_config(yml, FX_SECRETS);
		struct desired *ds;
		free(yml);
		T_REQUIRE(c);
		ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
		T_REQUIRE(ds);
		if (ds->boot_limit != cases[i].want)
			fprintf(stderr, "  boot limit %s\n", cases[i].limit);
		T_INTEQ(ds->boot_limit, cases[i].want);
		desired_free(ds);
		config_free(c);
	}
}

T_TEST(accessories_log_with_the_root_logging)
{
	/* Kamal boots accessories with config.logging_args: the root logging: */
	char *yml = xasprintf("%slogging:\n  driver: json-file\n  options:\n    max-size: 100m\n", FX_YML);
	struct config *c = fx_config(yml, FX_SECRETS);
	struct desired *ds;
	const struct des_container *db, *web;

	free(yml);
	T_REQUIRE(c);
	ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(ds);
	db = find(ds, "10.0.0.1", "db");
	web = find(ds, "10.0.0.1", "web");
	T_REQUIRE(db && web);
	T_STREQ(kvs_get(&db->log_opts, "max-size"), "100m");
	T_STREQ(db->log_driver, "json-file");
	T_STREQ(kvs_get(&web->log_opts, "max-size"), "100m");
	desired_free(ds);
	config_free(c);
}

T_TEST(split_words_like_a_shell)
{
	struct strvec v = { 0 };

	desired_split_words("bin/jobs --queue \"default low\" 'a b'  c\\ d", &v);
	T_REQUIRE(v.n == 5);
	T_STREQ(v.v[0], "bin/jobs");
	T_STREQ(v.v[2], "default low");
	T_STREQ(v.v[3], "a b");
	T_STREQ(v.v[4], "c d");
	strvec_release(&v);
	T_INTEQ(desired_parse_size("2g"), 2LL << 30);
	T_INTEQ(desired_parse_size("512m"), 512LL << 20);
	T_INTEQ(desired_parse_size("x"), -1);
}

/* Sizes come from an untrusted config: no overflow, no out-of-range number. */
T_TEST(parse_size_rejects_overflow)
{
	T_INTEQ(desired_parse_size("99999999999t"), -1);
	T_INTEQ(desired_parse_size("8388608t"), -1);   /* 2^23 TiB = 2^63 bytes */
	T_INTEQ(desired_parse_size("8388607t"), 8388607LL << 40);
	T_INTEQ(desired_parse_size("99999999999999999999"), -1); /* ERANGE */
	T_INTEQ(desired_parse_size("9223372036854775807"), 9223372036854775807LL);
	T_INTEQ(desired_parse_size("9223372036854775807k"), -1);
	T_INTEQ(desired_parse_size("1kb"), 1024);
	T_INTEQ(desired_parse_size(""), -1);
}

T_TEST(containers_per_host_as_kamal_runs_them)
{
	struct config *c = fx_config(FX_YML, FX_SECRETS);
	struct desired *ds;
	const struct des_container *web, *job, *db;
	const struct des_host *h1, *h2;

	T_REQUIRE(c);
	ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(ds);
	T_INTEQ(ds->nhosts, 2);
	h1 = desired_host(ds, "10.0.0.1");
	h2 = desired_host(ds, "10.0.0.2");
	T_REQUIRE(h1 && h2);
	/* h1: db, web, proxy; h2: job, web, proxy */
	T_INTEQ(h1->ncontainers, 3);
	T_INTEQ(h2->ncontainers, 3);
	T_INTEQ(h1->containers[0].kind, DES_ACCESSORY);
	T_INTEQ(h1->containers[2].kind, DES_PROXY);

	web = find(ds, "10.0.0.1", "web");
	T_REQUIRE(web);
	T_STREQ(web->name, "optimus-web-" FX_V1);
	T_STREQ(web->prefix, "optimus-web");
	T_STREQ(web->image_ref, "localhost:5555/optimus:" FX_V1);
	T_STREQ(web->image_id, FX_ID1);
	T_STREQ(web->restart, "unless-stopped");
	T_STREQ(web->network, "kamal");
	T_STREQ(kvs_get(&web->log_opts, "max-size"), "10m");
	T_STREQ(kvs_get(&web->labels, "service"), "optimus");
	T_STREQ(kvs_get(&web->labels, "role"), "web");
	T_STREQ(kvs_get(&web->labels, "destination"), "");
	T_CHECK(web->proxied && web->primary);
	T_STREQ(web->env_file, ".kamal/apps/optimus/env/roles/web.env");
	T_STREQ(des_container_env(web, "KAMAL_HOST")->value, "10.0.0.1");
	T_STREQ(des_container_env(web, "DB_HOST")->value, "optimus-db");
	T_CHECK(des_container_env(web, "KAMAL_VERSION") == NULL);
	{
		const struct des_env *e = des_container_env(web, "RAILS_MASTER_KEY");
		char want[HASH_HEX_LEN + 1];
		T_REQUIRE(e);
		T_INTEQ(e->kind, DES_ENV_SECRET);
		T_CHECK(e->value == NULL);
		hash_salted(FX_SALT, "master-key-value-1", strlen("master-key-value-1"), want);
		T_STREQ(e->hash, want);
	}
	T_INTEQ(web->nmounts, 2);
	T_STREQ(web->mounts[0].source, "optimus_storage");
	T_INTEQ(web->mounts[0].kind, DES_MOUNT_VOLUME);
	T_STREQ(web->mounts[1].source, ".kamal/apps/optimus/assets/volumes/web-" FX_V1);
	T_CHECK(web->mounts[1].versioned);

	job = find(ds, "10.0.0.2", "job");
	T_REQUIRE(job);
	T_STREQ(job->cmd, "bin/jobs --queue \"default low\"");
	T_INTEQ(job->cmd_argv.n, 3);
	T_CHECK(!job->proxied);
	T_INTEQ(job->nmounts, 1); /* no asset volume without the proxy */
	T_STREQ(des_container_env(job, "QUEUE_THREADS")->value, "3");

	db = find(ds, "10.0.0.1", "db");
	T_REQUIRE(db);
	T_STREQ(db->name, "optimus-db");
	T_STREQ(db->image_ref, "postgres:17");
	T_CHECK(db->image_id == NULL);
	T_STREQ(kvs_get(&db->labels, "service"), "optimus-db");
	T_STREQ(db->env_file, ".kamal/apps/optimus/env/accessories/db.env");
	T_REQUIRE(db->nports == 1);
	T_STREQ(db->ports[0].host_ip, "127.0.0.1");
	T_STREQ(db->ports[0].host_port, "5432");
	T_STREQ(db->ports[0].container_port, "5432/tcp");
	T_REQUIRE(db->nmounts == 1);
	T_INTEQ(db->mounts[0].kind, DES_MOUNT_HOME);
	T_STREQ(db->mounts[0].source, "optimus-db/data");
	T_STREQ(db->mounts[0].destination, "/var/lib/postgresql/data");
	T_CHECK(des_container_env(db, "KAMAL_VERSION") == NULL);
	T_STREQ(des_container_env(db, "KAMAL_HOST")->value, "10.0.0.1");
	T_CHECK(strlen(db->spec_hash) == HASH_HEX_LEN);
	desired_free(ds);
	config_free(c);
}

T_TEST(env_file_content_hash_matches_kamal_bytes)
{
	struct config *c = fx_config(FX_YML, "RAILS_MASTER_KEY='a\"b#c\\d'\nPOSTGRES_PASSWORD=p\n");
	struct desired *ds;
	const struct des_host *h;
	char want[HASH_HEX_LEN + 1];
	const char *content = "RAILS_MASTER_KEY=a\"b#c\\\\d\n";

	T_REQUIRE(c);
	ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(ds);
	h = desired_host(ds, "10.0.0.1");
	T_REQUIRE(h && h->nenv_files == 2);
	T_STREQ(h->env_files[1].path, ".kamal/apps/optimus/env/roles/web.env");
	hash_salted(FX_SALT, content, strlen(content), want);
	T_STREQ(h->env_files[1].content_hash, want);
	T_REQUIRE(h->env_files[1].nvars == 1);
	hash_salted(FX_SALT, "a\"b#c\\\\d", strlen("a\"b#c\\\\d"), want);
	T_STREQ(h->env_files[1].vars[0].hash, want);
	desired_free(ds);
	config_free(c);
}

/* Several long secrets in one file (the content is sized up front, never
 * regrown): the bytes are still exactly Kamal's. */
T_TEST(env_file_with_long_secrets_is_exact)
{
	struct sbuf yml, sec, want_content;
	struct config *c;
	struct desired *ds;
	const struct des_host *h;
	const struct des_env_file *f = NULL;
	char want[HASH_HEX_LEN + 1];

	sbuf_init(&yml, 0);
	sbuf_init(&sec, 0);
	sbuf_init(&want_content, 0);
	sbuf_adds(&yml, "service: optimus\nimage: optimus\nregistry:\n  server: localhost:5555\n"
			"servers:\n  web:\n    hosts: [10.0.0.1]\nenv:\n  secret:\n");
	for (int i = 0; i < 8; i++) {
		sbuf_addf(&yml, "    - S%d\n", i);
		sbuf_addf(&sec, "S%d=", i);
		sbuf_addf(&want_content, "S%d=", i);
		for (int k = 0; k < 300; k++) {
			sbuf_addc(&sec, (char)('a' + (i + k) % 26));
			sbuf_addc(&want_content, (char)('a' + (i + k) % 26));
		}
		sbuf_adds(&sec, "\n");
		sbuf_adds(&want_content, "\n");
	}
	c = fx_config(yml.buf, sec.buf);
	T_REQUIRE(c);
	ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(ds);
	h = desired_host(ds, "10.0.0.1");
	for (size_t i = 0; h && i < h->nenv_files; i++)
		if (strstr(h->env_files[i].path, "/roles/web.env"))
			f = &h->env_files[i];
	T_REQUIRE(f);
	T_INTEQ(f->nvars, 8);
	hash_salted(FX_SALT, want_content.buf, want_content.len, want);
	T_STREQ(f->content_hash, want);
	desired_free(ds);
	config_free(c);
	sbuf_release(&yml);
	sbuf_release(&sec);
	sbuf_release(&want_content);
}

/* A volume or port spec that would be misread is reported, not ignored. */
T_TEST(bad_port_and_volume_specs_are_reported)
{
	static const struct { const char *extra, *want; } bad[] = {
		{ "volumes:\n  - \"data\"\n", "volumes: 'data'" },
		{ "volumes:\n  - \"src:relative\"\n", "'src:relative'" },
		{ "volumes:\n  - \":/x\"\n", "':/x'" },
		{ "volumes:\n  - \"a:/b:ro:z\"\n", "'a:/b:ro:z'" },
	};
	static const struct { const char *port, *want; } ports[] = {
		{ "1:2:3:4", "accessories.db.port: '1:2:3:4'" },
		{ "127.0.0.1:abc:5432", "'127.0.0.1:abc:5432'" },
		{ "5432/xyz", "'5432/xyz" },
		{ ":5432", "':5432'" },
		{ "[::1]:x:5432", "'[::1]:x:5432'" },
		{ "[1.2.3.4]:5432:5432", "'[1.2.3.4]:5432:5432'" },
	};
	static const char *const good[] = { "5432", "127.0.0.1:5432:5432", "127.0.0.1::5432",
					     "8000-8010:8000-8010/udp", "5432:5432/tcp", "[::1]:5432:5432",
					     "[::1]::5432" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) + sizeof(ports) / sizeof(ports[0]) +
				    sizeof(good) / sizeof(good[0]); i++) {
		size_t nb = sizeof(bad) / sizeof(bad[0]), np = sizeof(ports) / sizeof(ports[0]);
		const char *want = NULL;
		char *yml, *errs;
		struct config *c;
		struct desired *ds = NULL;
		struct desired_opts o = { 0 };
		struct diags d = { 0 };
		int rc;

		if (i < nb) {
			yml = xasprintf("%s%s", FX_YML, bad[i].extra);
			want = bad[i].want;
		} else {
			const char *port = i < nb + np ? ports[i - nb].port : good[i - nb - np];
			char *p;
			yml = xstrdup(FX_YML);
			p = strstr(yml, "    port: \"127.0.0.1:5432:5432\"\n");
			T_REQUIRE(p);
			*p = '\0';
			p = xasprintf("%s    port: \"%s\"\n%s", yml, port,
				      p + strlen("    port: \"127.0.0.1:5432:5432\"\n"));
			free(yml);
			yml = p;
			want = i < nb + np ? ports[i - nb].want : NULL;
		}
		c = fx_config(yml, FX_SECRETS);
		free(yml);
		T_REQUIRE(c);
		o.version = FX_V1;
		o.salt = FX_SALT;
		rc = desired_build(&ds, c, &o, &d);
		errs = diags_to_string(&d);
		if (want) {
			T_INTEQ(rc, -1);
			T_CHECK(ds == NULL);
			T_CONTAINS(errs, want);
		} else {
			T_INTEQ(rc, 0);
			T_INTEQ(d.errors, 0);
		}
		free(errs);
		diags_release(&d);
		desired_free(ds);
		config_free(c);
	}
}

T_TEST(empty_env_file_is_one_newline)
{
	struct config *c = fx_config("service: s\nimage: i\nregistry:\n  server: localhost:5555\n"
				     "servers:\n  - 10.0.0.9\n", NULL);
	struct desired *ds;
	char want[HASH_HEX_LEN + 1];

	T_REQUIRE(c);
	ds = fx_desired(c, "v1", NULL, DES_IMAGE_NOT_FOUND);
	T_REQUIRE(ds && ds->nhosts == 1 && ds->hosts[0].nenv_files == 1);
	hash_salted(FX_SALT, "\n", 1, want);
	T_STREQ(ds->hosts[0].env_files[0].content_hash, want);
	T_INTEQ(ds->hosts[0].containers[0].image_status, DES_IMAGE_NOT_FOUND);
	T_CHECK(ds->hosts[0].containers[0].image_id == NULL);
	T_CHECK(ds->hosts[0].containers[0].proxied); /* the primary role runs the proxy */
	desired_free(ds);
	config_free(c);
}

T_TEST(unavailable_secret_is_marked_not_hashed)
{
	struct config *c = fx_config(FX_YML, "POSTGRES_PASSWORD=p\n");
	struct desired *ds;
	const struct des_container *web;
	const struct des_env *e;

	T_REQUIRE(c);
	ds = fx_desired(c, FX_V1, FX_ID1, DES_IMAGE_FOUND);
	T_REQUIRE(ds);
	web = find(ds, "10.0.0.1", "web");
	T_REQUIRE(web);
	e = des_container_env(web, "RAILS_MASTER_KEY");
	T_REQUIRE(e);
	T_INTEQ(e->kind, DES_ENV_UNAVAILABLE);
	T_STREQ(e->hash, "");
	T_CHECK(ds->unavailable_secrets >= 1);
	T_CHECK(desired_host(ds, "10.0.0.1")->env_files[1].unavailable);
	T_STREQ(desired_host(ds, "10.0.0.1")->env_files[1].content_hash, "");
	desired_free(ds);
	config_free(c);
}

T_TEST(destination_names_and_labels)
{
	struct config *c = fx_config(FX_YML, FX_SECRETS);
	struct desired_opts o = { 0 };
	struct desired *ds = NULL;
	struct diags d = { 0 };

	T_REQUIRE(c);
	free(c->destination);
	c->destination = xstrdup("staging");
	o.version = "v9";
	o.salt = FX_SALT;
	o.app_image.ref = "localhost:5555/optimus:v9";
	T_REQUIRE(desired_build(&ds, c, &o, &d) == 0);
	{
		const struct des_container *web = find(ds, "10.0.0.2", "web");
		T_REQUIRE(web);
		T_STREQ(web->name, "optimus-web-staging-v9");
		T_STREQ(kvs_get(&web->labels, "destination"), "staging");
		T_STREQ(des_container_env(web, "KAMAL_DESTINATION")->value, "staging");
		T_STREQ(web->env_file, ".kamal/apps/optimus-staging/env/roles/web.env");
		T_INTEQ(web->image_status, DES_IMAGE_UNKNOWN);
	}
	desired_free(ds);
	diags_release(&d);
	config_free(c);
}

T_MAIN(T_CASE(env_escape_as_kamal_writes), T_CASE(split_words_like_a_shell),
       T_CASE(parse_size_rejects_overflow), T_CASE(boot_limit_percent_as_kamal), T_CASE(env_file_with_long_secrets_is_exact),
       T_CASE(bad_port_and_volume_specs_are_reported), T_CASE(accessories_log_with_the_root_logging), T_CASE(clear_env_as_the_container_holds_it),
       T_CASE(containers_per_host_as_kamal_runs_them), T_CASE(env_file_content_hash_matches_kamal_bytes),
       T_CASE(empty_env_file_is_one_newline), T_CASE(unavailable_secret_is_marked_not_hashed),
       T_CASE(destination_names_and_labels))
