/*
 * The observation → diff → render path on one host output, for the fuzzer
 * (tests/fuzz/fuzz_obs.c) and the regression replay
 * (tests/unit/test_fuzz_regressions.c): the output is parsed as both hosts of
 * a small fixed config (web ×2, a job, a Postgres accessory; the desired
 * state built once with a fixed salt), planned against that desired state
 * (also as the base revision, with pruning on), and rendered as text,
 * Markdown and JSON. Any input must give a plan or an unknown host, never a
 * crash or a leak.
 */
#ifndef PLUMB_FUZZ_OBS_PLAN_H
#define PLUMB_FUZZ_OBS_PLAN_H

#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"
#include "diff/render.h"
#include "providers/docker_obs.h"
#include "state/config.h"
#include "state/desired.h"
#include "tests/fuzz/mem_source.h"

#define OBS_PLAN_SALT "0123456789abcdef0123456789abcdef"
#define OBS_PLAN_YML                                                            \
	"service: optimus\nimage: optimus\n"                                    \
	"servers:\n  web:\n    hosts:\n      - 10.0.0.1\n      - 10.0.0.2\n"      \
	"  job:\n    hosts:\n      - 10.0.0.2\n    cmd: bin/jobs\n"               \
	"proxy:\n  host: app.example.com\n"                                     \
	"registry:\n  server: localhost:5555\n"                                 \
	"env:\n  clear:\n    DB_HOST: optimus-db\n"                             \
	"volumes:\n  - \"optimus_storage:/rails/storage\"\n"                     \
	"accessories:\n  db:\n    image: postgres:17\n    host: 10.0.0.1\n"     \
	"    port: \"127.0.0.1:5432:5432\"\n"                                   \
	"    env:\n      clear:\n        POSTGRES_USER: optimus\n"              \
	"    directories:\n      - data:/var/lib/postgresql/data\n"

/* The fixed desired state (built on first use, kept for the process). */
static const struct desired *obs_plan_desired(void)
{
	static struct desired *ds;
	struct source *src;
	struct config_opts co = { 0 };
	struct desired_opts dopts = { 0 };
	struct config *c = NULL;
	struct diags d = { 0 };

	if (ds)
		return ds;
	src = mem_source_new(OBS_PLAN_YML, strlen(OBS_PLAN_YML));
	if (config_load(&c, src, &co, &d) != 0)
		abort();
	dopts.version = "1111111111111111111111111111111111111111";
	dopts.salt = OBS_PLAN_SALT;
	dopts.app_image.identity =
		"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	dopts.app_image.status = DES_IMAGE_FOUND;
	if (desired_build(&ds, c, &dopts, &d) != 0)
		abort();
	diags_release(&d);
	config_free(c);
	source_free(src);
	return ds;
}

/* Runs the whole path on one host output. Returns the plan's exit code. */
static int obs_plan_run(const char *data, size_t size)
{
	static const char *const accs[] = { "optimus-db" };
	const struct docker_obs_query q = { .service = "optimus", .accessories = accs,
					    .naccessories = 1 };
	static const char *const hosts[] = { "10.0.0.1", "10.0.0.2" };
	const struct desired *ds = obs_plan_desired();
	struct obs_fleet *f = xcalloc(1, sizeof(*f));
	struct diff_opts o = { 0 };
	struct diff_plan *p = NULL;
	struct render_opts ro = { 0 };
	struct sbuf out;
	struct plumb_err err = { 0 };
	int rc = -1;

	memcpy(f->salt, OBS_PLAN_SALT, sizeof(f->salt));
	f->nhosts = 2;
	f->hosts = xcalloc(2, sizeof(*f->hosts));
	for (size_t i = 0; i < 2; i++) {
		struct obs_host *h = &f->hosts[i];
		h->host = xstrdup(hosts[i]);
		if (docker_obs_parse(h, data, size, &q, &err) == 0) {
			h->status = OBS_OK;
		} else {
			h->status = OBS_UNKNOWN;
			h->error = xstrdup(plumb_err_msg(&err));
		}
	}
	o.prune = 1;
	o.base = ds;
	if (diff_plan_build(&p, ds, f, &o) == 0) {
		rc = diff_plan_exit_code(p);
		ro.list_unchanged = 1;
		sbuf_init(&out, 0);
		diff_render_text(p, &ro, &out);
		diff_render_markdown(p, &ro, &out);
		diff_render_json(p, &out);
		free(diff_plan_canonical(p));
		sbuf_release(&out);
	}
	diff_plan_free(p);
	obs_fleet_free(f);
	return rc;
}

#endif
