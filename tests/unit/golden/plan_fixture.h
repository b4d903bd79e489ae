/*
 * Shared by test_desired.c, test_diff.c and test_render.c: the optimus-like
 * config the plan tests use (web ×2 behind the proxy, job, a Postgres
 * accessory, one secret each), loaded from a temporary repository, and its
 * desired state with a fixed salt so outputs are byte-for-byte stable.
 */
#ifndef PLUMB_TEST_PLAN_FIXTURE_H
#define PLUMB_TEST_PLAN_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/config.h"
#include "state/desired.h"

#define FX_SALT "0123456789abcdef0123456789abcdef"
#define FX_V1 "1111111111111111111111111111111111111111"
#define FX_V2 "2222222222222222222222222222222222222222"
#define FX_ID1 "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FX_ID2 "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

#define FX_YML                                                                  \
	"service: optimus\nimage: optimus\n"                                    \
	"servers:\n  web:\n    hosts:\n      - 10.0.0.1\n      - 10.0.0.2\n"      \
	"  job:\n    hosts:\n      - 10.0.0.2\n    cmd: bin/jobs --queue \"default low\"\n" \
	"    env:\n      clear:\n        QUEUE_THREADS: 3\n"                      \
	"proxy:\n  host: app.example.com\n"                                     \
	"registry:\n  server: localhost:5555\n"                                 \
	"env:\n  secret:\n    - RAILS_MASTER_KEY\n  clear:\n    DB_HOST: optimus-db\n    WEB_CONCURRENCY: 2\n" \
	"volumes:\n  - \"optimus_storage:/rails/storage\"\n"                     \
	"asset_path: /rails/public/assets\n"                                    \
	"accessories:\n  db:\n    image: postgres:17\n    host: 10.0.0.1\n"     \
	"    port: \"127.0.0.1:5432:5432\"\n"                                   \
	"    env:\n      clear:\n        POSTGRES_USER: optimus\n      secret:\n        - POSTGRES_PASSWORD\n" \
	"    directories:\n      - data:/var/lib/postgresql/data\n"

#define FX_SECRETS "RAILS_MASTER_KEY=master-key-value-1\nPOSTGRES_PASSWORD=pg-pass-1\n"

static void fx_write(const char *dir, const char *rel, const char *text)
{
	char path[512], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	for (slash = strchr(path + strlen(dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	f = fopen(path, "w");
	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
}

/* Loads yml (+ secrets) as a repository; NULL on failure (printed).
 * trusted/getenv_fn as in struct config_opts (getenv_fn NULL = the process's). */
static inline struct config *fx_config_with(const char *yml, const char *secrets, int trusted,
					    const char *(*getenv_fn)(const char *, void *))
{
	char dir[64] = "/tmp/plumb-test-plan-XXXXXX", *cmd, *errs;
	struct source *src = NULL;
	struct diags d = { 0 };
	struct config_opts o = { 0 };
	struct config *c = NULL;

	if (!mkdtemp(dir))
		abort();
	fx_write(dir, "config/deploy.yml", yml);
	if (secrets)
		fx_write(dir, ".kamal/secrets", secrets);
	o.trusted = trusted;
	o.getenv_fn = getenv_fn;
	source_dir_new(&src, dir);
	if (config_load(&c, src, &o, &d) != 0) {
		errs = diags_to_string(&d);
		fprintf(stderr, "fixture config failed:\n%s", errs);
		free(errs);
	}
	diags_release(&d);
	source_free(src);
	cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	free(cmd);
	return c;
}

static inline struct config *fx_config(const char *yml, const char *secrets)
{
	return fx_config_with(yml, secrets, 0, NULL);
}

static inline struct desired *fx_desired(const struct config *c, const char *version,
					 const char *id, enum des_image_status st)
{
	struct desired_opts o = { 0 };
	struct desired *ds = NULL;
	struct diags d = { 0 };

	o.version = version;
	o.salt = FX_SALT;
	o.app_image.identity = id;
	o.app_image.status = st;
	if (desired_build(&ds, c, &o, &d) != 0)
		fprintf(stderr, "desired_build failed\n");
	diags_release(&d);
	return ds;
}

#endif
