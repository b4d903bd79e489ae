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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff/render.h"
#include "reconciler/cli.h"
#include "reconciler/load.h"
#include "reconciler/pipeline.h"
#include "reconciler/source_opts.h"
#include "state/escape.h"
#include "state/wstate.h"

struct plan_args {
	struct rec_source_opts src;
	const char *format;
	const char *out;
	const char *state_dir;
	int offline;
};

static int parse_args(struct plan_args *a, int argc, char **argv)
{
	const struct rec_extra_opt extra[] = {
		{ "format", 0, &a->format, NULL },
		{ "out", 0, &a->out, NULL },
		{ "state-dir", 0, &a->state_dir, NULL },
		{ "offline", 0, NULL, &a->offline },
		{ NULL, 0, NULL, NULL },
	};
	const struct rec_source_spec spec = {
		"plan",
		REC_SRC_CONFIG | REC_SRC_GIT | REC_SRC_BASE | REC_SRC_VERSION | REC_SRC_TRUSTED | REC_SRC_PRUNE |
			REC_SRC_TIMEOUT,
		extra, NULL,
	};

	a->format = "text";
	a->out = NULL;
	a->state_dir = NULL;
	a->offline = 0;
	if (rec_source_opts_parse(&a->src, &spec, argc, argv) < 0)
		return -1;
	if (strcmp(a->format, "text") && strcmp(a->format, "markdown") && strcmp(a->format, "json")) {
		fprintf(stderr, "plumb plan: --format must be text, markdown or json\n");
		rec_print_usage(rec_find_command("plan"), stderr);
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
	struct ws_status st = { 0 };
	struct sbuf out;
	int rc = REC_EXIT_ERROR, prc;

	sbuf_init(&out, 0);
	if (parse_args(&a, argc, argv) != 0)
		goto out;
	po.cmd = "plan";
	po.until = REC_STAGE_DIFF;
	po.mode = FLEET_READ_ONLY;
	po.src = a.src;
	po.offline = a.offline;
	/* without --base: the watcher's last applied revision, when there is one */
	if (!a.src.base && ws_status_read(a.state_dir ? a.state_dir : ws_default_dir(), &st, NULL) == 0 &&
	    st.applied_revision) {
		po.state_base = st.applied_revision;
		po.state_service = st.service;
		po.state_destination = st.destination;
	}
	prc = rec_pipeline_run(&res, &po);
	esc_fputs(res.log, stderr);
	if (prc < 0)
		goto out;
	if (a.offline && strcmp(a.format, "json") != 0)
		sbuf_addf(&out, "%sOffline plan: against %s as what the hosts run (no host was "
			  "contacted).\n\n", strcmp(a.format, "markdown") == 0 ? "> " : "",
			  res.plan->offline_base);
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
	ws_status_release(&st);
	return rc;
}
