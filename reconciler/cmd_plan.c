/*
 * plumb plan: what apply would change on every host, and why.
 *
 * Options and rendering only: every stage (source → config → version → image
 * identity → observation → desired state → diff) is reconciler/pipeline.h,
 * run with a read-only fleet handle. Read-only by construction: no executor
 * is built, no lock taken, no hook run, nothing written on a host.
 * Exit 0 in sync, 2 changes pending, 1 error (including a host that could not
 * be observed: the others are still planned and shown).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff/render.h"
#include "reconciler/cli.h"
#include "reconciler/load.h"
#include "reconciler/pipeline.h"
#include "state/escape.h"

struct plan_args {
	const char *config;
	const char *dest;
	const char *repo;
	const char *ref;
	const char *base;
	const char *version;
	const char *format;
	const char *out;
	int trusted;
	int prune;
	int allow_foreign_owner;
	int timeout_ms;
};

static int parse_args(struct plan_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "destination", required_argument, NULL, 'd' },
		{ "repo", required_argument, NULL, 'R' },
		{ "ref", required_argument, NULL, 'r' },
		{ "base", required_argument, NULL, 'b' },
		{ "version", required_argument, NULL, 'V' },
		{ "format", required_argument, NULL, 'f' },
		{ "out", required_argument, NULL, 'o' },
		{ "trusted", no_argument, NULL, 'T' },
		{ "prune", no_argument, NULL, 'P' },
		{ "allow-foreign-owner", no_argument, NULL, 'F' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(a, 0, sizeof(*a));
	a->format = "text";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:d:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': a->config = optarg; break;
		case 'd': a->dest = optarg; break;
		case 'R': a->repo = optarg; break;
		case 'r': a->ref = optarg; break;
		case 'b': a->base = optarg; break;
		case 'V': a->version = optarg; break;
		case 'f': a->format = optarg; break;
		case 'o': a->out = optarg; break;
		case 'T': a->trusted = 1; break;
		case 'P': a->prune = 1; break;
		case 'F': a->allow_foreign_owner = 1; break;
		case 't':
			if (rec_parse_duration(optarg, &a->timeout_ms) < 0) {
				fprintf(stderr, "plumb plan: --timeout '%s': want a duration like 90s, 5m, 1500ms\n", optarg);
				return -1;
			}
			break;
		default: return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "plumb plan: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (strcmp(a->format, "text") && strcmp(a->format, "markdown") && strcmp(a->format, "json")) {
		fprintf(stderr, "plumb plan: --format must be text, markdown or json\n");
		return -1;
	}
	return 0;
}

static int render(const struct plan_args *a, const struct diff_plan *p, struct sbuf *out)
{
	struct render_opts ro = { 0 };

	ro.color = !a->out && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	if (strcmp(a->format, "json") == 0)
		return diff_render_json(p, out);
	if (strcmp(a->format, "markdown") == 0)
		return diff_render_markdown(p, &ro, out);
	return diff_render_text(p, &ro, out);
}

int cmd_plan(int argc, char **argv)
{
	struct plan_args a;
	struct rec_pipeline_opts po = { 0 };
	struct rec_pipeline_result res = { 0 };
	struct sbuf out;
	int rc = REC_EXIT_ERROR, prc;

	sbuf_init(&out, 0);
	if (parse_args(&a, argc, argv) != 0) {
		rec_print_usage(rec_find_command("plan"), stderr);
		goto out;
	}
	po.cmd = "plan";
	po.until = REC_STAGE_DIFF;
	po.mode = FLEET_READ_ONLY;
	po.config_path = a.config;
	po.destination = a.dest;
	po.repo = a.repo;
	po.ref = a.ref;
	po.base = a.base;
	po.version = a.version;
	po.trusted = a.trusted;
	po.prune = a.prune;
	po.allow_foreign_owner = a.allow_foreign_owner;
	po.timeout_ms = a.timeout_ms;
	prc = rec_pipeline_run(&res, &po);
	esc_fputs(res.log, stderr);
	if (prc < 0)
		goto out;
	if (render(&a, res.plan, &out) != 0) {
		fprintf(stderr, "plumb plan: rendering failed\n");
		goto out;
	}
	if (a.out) {
		FILE *f = fopen(a.out, "w");
		int wrote;
		if (!f) {
			fprintf(stderr, "plumb plan: cannot write %s: %s\n", a.out, strerror(errno));
			goto out;
		}
		/* close it whatever the write did, and check both */
		wrote = fwrite(out.buf, 1, out.len, f) == out.len;
		if (fclose(f) != 0 || !wrote) {
			fprintf(stderr, "plumb plan: cannot write %s\n", a.out);
			goto out;
		}
		fprintf(stderr, "plan hash %s written to %s\n", res.plan->hash, a.out);
	} else {
		fwrite(out.buf, 1, out.len, stdout);
	}
	rc = diff_plan_exit_code(res.plan);
out:
	sbuf_release(&out);
	rec_pipeline_result_release(&res);
	return rc;
}
