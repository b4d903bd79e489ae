/*
 * b_plan — CPU time of planning a 1,000-host fleet (make bench; not a test).
 *
 *   b_plan [REPS]        (default 15; also B_PLAN_REPS)
 *
 * The fleet: web on 1,000 hosts behind the proxy, job on 100 of them, a
 * Postgres accessory (as tests/unit/test_render.c). The observed state is a
 * fake (tests/support/fake.h): hosts exactly as Kamal leaves them, so the plan is
 * "no changes"; a second case deploys a new version (every app container
 * replaced), the largest plan this fleet can have.
 *
 * Each phase is timed on its own with CLOCK_PROCESS_CPUTIME_ID, REPS times,
 * interleaved (one rep runs every phase once), and the median is reported:
 *   config   config_load of the 1,000-host deploy.yml (from memory)
 *   desired  desired_build
 *   fake     diff_fake_fleet: building the observed fleet — the baseline, the
 *            cost of merely allocating and filling the data the diff reads
 *   diff     diff_plan_build (in sync)
 *   text     diff_render_text;  json  diff_render_json
 *   plan     desired + diff + text (what `plumb plan` spends on the CPU
 *            besides observing); plan_all: the same with every container
 *            replaced.
 * Ratios are against the baseline of the same run; nothing is asserted about
 * speed. The plan's outcome is checked (in sync → exit code 0; new version →
 * 1,100 to add), so a broken planner cannot report a fast time: exit 1 then.
 *
 * Output: readable lines, then "BENCH key value" lines for tests/bench/run.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diff/diff.h"
#include "tests/support/fake.h"
#include "diff/render.h"
#include "state/config.h"
#include "state/desired.h"
#include "state/source.h"
#include "state/util.h"

#define NHOSTS 1000
#define NJOB 100
#define SALT "0123456789abcdef0123456789abcdef"
#define V1 "1111111111111111111111111111111111111111"
#define V2 "2222222222222222222222222222222222222222"
#define ID1 "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID2 "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SECRETS "RAILS_MASTER_KEY=bench-master-key\nPOSTGRES_PASSWORD=bench-pg\n"
#define MAX_REPS 1000

/* An in-memory source: config/deploy.yml and .kamal/secrets, nothing else. */
struct mem_source {
	struct source base;
	const char *deploy;
};

static int mem_read(struct source *s, const char *relpath, char **out, size_t *len, struct plumb_err *err)
{
	const struct mem_source *m = (const struct mem_source *)s;
	const char *text = NULL;

	(void)err;
	if (strcmp(relpath, "config/deploy.yml") == 0)
		text = m->deploy;
	else if (strcmp(relpath, ".kamal/secrets") == 0)
		text = SECRETS;
	if (!text)
		return PLUMB_ENOTFOUND;
	*out = xstrdup(text);
	*len = strlen(text);
	return 0;
}

static void mem_free(struct source *s)
{
	(void)s; /* on the stack */
}

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int load_config(struct config **out, const char *yml)
{
	struct mem_source src = { { mem_read, mem_free, NULL, "bench" }, yml };
	struct config_opts o = { 0 };
	struct diags d = { 0 };
	int rc;

	rc = config_load(out, &src.base, &o, &d);
	if (rc != 0) {
		char *e = diags_to_string(&d);
		fprintf(stderr, "b_plan: config: %s", e);
		free(e);
	}
	diags_release(&d);
	return rc;
}

static int build_desired(struct desired **out, const struct config *c, const char *version, const char *id)
{
	struct desired_opts o = { 0 };
	struct diags d = { 0 };
	int rc;

	o.version = version;
	o.salt = SALT;
	o.app_image.identity = id;
	o.app_image.status = DES_IMAGE_FOUND;
	rc = desired_build(out, c, &o, &d);
	if (rc != 0)
		fprintf(stderr, "b_plan: desired_build failed\n");
	diags_release(&d);
	return rc;
}

enum { P_CONFIG, P_DESIRED, P_FAKE, P_DIFF, P_TEXT, P_JSON, P_PLAN, P_DESIRED2, P_DIFF2, P_TEXT2, P_PLAN_ALL, NP };
static const char *const pname[NP] = {
	"config", "desired", "fake", "diff", "text", "json", "plan",
	"desired_all", "diff_all", "text_all", "plan_all",
};

/* One rep: every phase once; t[] gets its CPU ms. 0 or -1 (wrong plan). */
static int one_rep(const char *yml, double *t, size_t *text_bytes, size_t *steps_all)
{
	struct config *c = NULL;
	struct desired *ds = NULL, *ds2 = NULL;
	struct obs_fleet *obs = NULL;
	struct diff_plan *p = NULL, *p2 = NULL;
	struct sbuf sb;
	double t0;
	int ret = -1;

	sbuf_init(&sb, 0);
	t0 = cpu_ms();
	if (load_config(&c, yml) != 0)
		goto out;
	t[P_CONFIG] = cpu_ms() - t0;

	t0 = cpu_ms();
	if (build_desired(&ds, c, V1, ID1) != 0)
		goto out;
	t[P_DESIRED] = cpu_ms() - t0;

	t0 = cpu_ms();
	diff_fake_fleet(&obs, ds, SALT, ID1);
	t[P_FAKE] = cpu_ms() - t0;

	t0 = cpu_ms();
	if (diff_plan_build(&p, ds, obs, NULL) != 0 || !p)
		goto out;
	t[P_DIFF] = cpu_ms() - t0;
	if (diff_plan_exit_code(p) != 0 || p->nhosts != NHOSTS) {
		fprintf(stderr, "b_plan: the in-sync fleet planned %zu changes on %zu hosts (want 0 on %d)\n",
			p->changes, p->nhosts, NHOSTS);
		goto out;
	}

	t0 = cpu_ms();
	if (diff_render_text(p, NULL, &sb) != 0)
		goto out;
	t[P_TEXT] = cpu_ms() - t0;
	sbuf_reset(&sb);

	t0 = cpu_ms();
	if (diff_render_json(p, &sb) != 0)
		goto out;
	t[P_JSON] = cpu_ms() - t0;
	sbuf_reset(&sb);
	t[P_PLAN] = t[P_DESIRED] + t[P_DIFF] + t[P_TEXT];

	/* a new version: every app container replaced */
	t0 = cpu_ms();
	if (build_desired(&ds2, c, V2, ID2) != 0)
		goto out;
	t[P_DESIRED2] = cpu_ms() - t0;
	t0 = cpu_ms();
	if (diff_plan_build(&p2, ds2, obs, NULL) != 0 || !p2)
		goto out;
	t[P_DIFF2] = cpu_ms() - t0;
	if (p2->add != NHOSTS + NJOB) {
		fprintf(stderr, "b_plan: a new version planned %zu to add (want %d)\n", p2->add, NHOSTS + NJOB);
		goto out;
	}
	t0 = cpu_ms();
	if (diff_render_text(p2, NULL, &sb) != 0)
		goto out;
	t[P_TEXT2] = cpu_ms() - t0;
	t[P_PLAN_ALL] = t[P_DESIRED2] + t[P_DIFF2] + t[P_TEXT2];
	*text_bytes = sb.len;
	*steps_all = p2->add;
	ret = 0;
out:
	sbuf_release(&sb);
	diff_plan_free(p2);
	diff_plan_free(p);
	obs_fleet_free(obs);
	desired_free(ds2);
	desired_free(ds);
	config_free(c);
	return ret;
}

int main(int argc, char **argv)
{
	const char *env = getenv("B_PLAN_REPS");
	int reps = argc > 1 ? atoi(argv[1]) : env ? atoi(env) : 15;
	double *t[NP] = { 0 }, row[NP], med[NP];
	size_t text_bytes = 0, steps_all = 0;
	char *yml = NULL;
	int ret = 1;

	if (reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "usage: b_plan [REPS 1..%d]\n", MAX_REPS);
		return 1;
	}
	for (int k = 0; k < NP; k++)
		t[k] = xcalloc((size_t)reps, sizeof(double));
	yml = diff_fake_fleet_yml(NHOSTS, NJOB);
	/* one warm-up rep (page faults, allocator), not counted */
	if (one_rep(yml, row, &text_bytes, &steps_all) != 0)
		goto out;
	for (int r = 0; r < reps; r++) {
		if (one_rep(yml, row, &text_bytes, &steps_all) != 0)
			goto out;
		for (int k = 0; k < NP; k++)
			t[k][r] = row[k];
	}
	for (int k = 0; k < NP; k++)
		med[k] = median(t[k], reps);

	printf("b_plan: %d hosts (web %d behind the proxy, job %d, 1 accessory), median CPU of %d reps:\n",
	       NHOSTS, NHOSTS, NJOB, reps);
	printf("  config load        %8.2f ms\n", med[P_CONFIG]);
	printf("  desired state      %8.2f ms\n", med[P_DESIRED]);
	printf("  fake fleet (base)  %8.2f ms\n", med[P_FAKE]);
	printf("  diff (in sync)     %8.2f ms\n", med[P_DIFF]);
	printf("  render text        %8.2f ms\n", med[P_TEXT]);
	printf("  render json        %8.2f ms\n", med[P_JSON]);
	printf("  plan = desired + diff + text:     %8.2f ms (%.1fx the baseline)\n", med[P_PLAN],
	       med[P_FAKE] > 0 ? med[P_PLAN] / med[P_FAKE] : 0);
	printf("  plan, new version (%zu replaced): %8.2f ms (%.1fx the baseline; text %zu bytes)\n", steps_all,
	       med[P_PLAN_ALL], med[P_FAKE] > 0 ? med[P_PLAN_ALL] / med[P_FAKE] : 0, text_bytes);
	printf("BENCH reps %d\n", reps);
	printf("BENCH hosts %d\n", NHOSTS);
	for (int k = 0; k < NP; k++)
		printf("BENCH %s_ms %.3f\n", pname[k], med[k]);
	printf("BENCH steps_all %zu\n", steps_all);
	ret = 0;
out:
	if (ret != 0)
		fprintf(stderr, "b_plan: the planner's result is wrong; nothing measured\n");
	free(yml);
	for (int k = 0; k < NP; k++)
		free(t[k]);
	return ret;
}
