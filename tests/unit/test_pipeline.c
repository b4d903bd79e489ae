/*
 * The pipeline (reconciler/pipeline.h) without hosts to reach: it never
 * prints (everything is in the result's log), it opens the fleet read-only
 * for plan and hosts (a mutating transport is refused), a refusal is in the
 * log, the run deadline makes unfinished hosts unknown, and --timeout
 * durations parse.
 */
#include <stdlib.h>
#include <string.h>

#include "reconciler/cli.h"
#include "reconciler/pipeline.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#define YML "service: app\nimage: dhh/app\nregistry:\n  username: u\n  password: p\n"

/* Runs the observe pipeline on a repository whose deploy.yml is YML + servers. */
static enum fleet_mode run_mode = FLEET_READ_ONLY;

static struct rec_fleet_keep *run_keep; /* a fleet kept across runs, or NULL */

static int run_hosts(struct rec_pipeline_result *r, const char *servers, int timeout_ms, char **dir)
{
	struct rec_pipeline_opts o = { 0 };
	struct rec_invocation inv = { 0 };
	char *yml = xasprintf("%s%s", YML, servers), *cfg;
	int rc;

	*dir = tu_tmpdir("test-pipeline");
	if (!*dir)
		abort();
	tu_write_in(*dir, "config/deploy.yml", yml);
	cfg = xasprintf("%s/config/deploy.yml", *dir);
	o.cmd = "hosts";
	o.until = REC_STAGE_OBSERVE;
	o.mode = run_mode;
	o.src.config_path = cfg;
	o.src.timeout_ms = timeout_ms;
	o.inv = &inv;
	o.keep = run_keep;
	rc = rec_pipeline_run(r, &o);
	free(cfg);
	free(yml);
	return rc;
}

/* watch's kept fleet: the same sessions run after run while the settings
 * are the same; other hosts get another fleet; the result only borrows it. */
T_TEST(kept_fleet_reused_until_the_settings_change)
{
	struct rec_fleet_keep keep = { 0 };
	struct rec_pipeline_result r;
	struct fleet *first;
	char *dir = NULL;

	run_keep = &keep;
	T_INTEQ(run_hosts(&r, "servers: [198.51.100.1, 198.51.100.2]\n", 1, &dir), 0);
	first = r.fleet;
	T_REQUIRE(first != NULL && first == keep.fleet);
	rec_pipeline_result_release(&r);
	tu_rm_rf(dir);
	free(dir);
	T_REQUIRE(keep.fleet == first); /* still open after the result is gone */
	T_INTEQ(run_hosts(&r, "servers: [198.51.100.1, 198.51.100.2]\n", 1, &dir), 0);
	T_REQUIRE(r.fleet == first);
	rec_pipeline_result_release(&r);
	tu_rm_rf(dir);
	free(dir);
	T_INTEQ(run_hosts(&r, "servers: [198.51.100.1, 198.51.100.2, 198.51.100.3]\n", 1, &dir), 0);
	T_REQUIRE(r.fleet == keep.fleet);
	T_INTEQ(fleet_nhosts(keep.fleet), 3);
	rec_pipeline_result_release(&r);
	tu_rm_rf(dir);
	free(dir);
	run_keep = NULL;
	rec_fleet_keep_release(&keep);
	T_REQUIRE(keep.fleet == NULL);
}

T_TEST(deadline_and_read_only_fleet)
{
	struct rec_pipeline_result r;
	struct transport *t = NULL;
	struct plumb_err err = { 0 };
	char *dir = NULL;

	if (run_hosts(&r, "servers: [198.51.100.1, 198.51.100.2]\n", 1, &dir) != 0)
		T_FAIL_AT("pipeline failed: %s", r.log);
	T_REQUIRE(r.obs != NULL && r.fleet != NULL);
	T_INTEQ(r.observe_rc, 1);
	T_INTEQ(r.obs->nhosts, 2);
	for (size_t i = 0; i < r.obs->nhosts; i++) {
		T_INTEQ(r.obs->hosts[i].status, OBS_UNKNOWN);
		T_CONTAINS(r.obs->hosts[i].error, "deadline reached");
	}
	T_INTEQ(fleet_mode(r.fleet), FLEET_READ_ONLY);
	T_INTEQ(fleet_writer(r.fleet, 0, &t, &err), PLUMB_EREFUSED);
	T_CHECK(t == NULL);
	rec_pipeline_result_release(&r);
	tu_rm_rf(dir);
	free(dir);
}

/* The command table's flag decides: a command not marked REC_CMD_MUTATES
 * (plan, hosts) cannot get a read-write fleet from the pipeline, whatever
 * mode its code asks for; one marked so can. */
T_TEST(read_write_only_for_mutating_commands)
{
	struct rec_pipeline_result r;
	char *dir = NULL;

	T_CHECK(rec_find_command("plan") && !(rec_find_command("plan")->flags & REC_CMD_MUTATES));
	T_CHECK(rec_find_command("hosts") && !(rec_find_command("hosts")->flags & REC_CMD_MUTATES));
	T_CHECK(rec_find_command("apply") && (rec_find_command("apply")->flags & REC_CMD_MUTATES));
	run_mode = FLEET_READ_WRITE;
	rec_set_may_mutate(0);
	T_INTEQ(run_hosts(&r, "servers: [198.51.100.1]\n", 1, &dir), PLUMB_EREFUSED);
	T_CONTAINS(r.log, "may not change hosts");
	T_CHECK(r.fleet == NULL || fleet_mode(r.fleet) == FLEET_READ_ONLY);
	rec_pipeline_result_release(&r);
	tu_rm_rf(dir);
	free(dir);
	rec_set_may_mutate(1);
	run_hosts(&r, "servers: [198.51.100.1]\n", 1, &dir);
	T_REQUIRE(r.fleet != NULL);
	T_INTEQ(fleet_mode(r.fleet), FLEET_READ_WRITE);
	rec_pipeline_result_release(&r);
	tu_rm_rf(dir);
	free(dir);
	rec_set_may_mutate(0);
	run_mode = FLEET_READ_ONLY;
}

T_TEST(refusals_in_the_log)
{
	struct rec_pipeline_result r;
	char *dir = NULL;

	T_INTEQ(run_hosts(&r, "servers: [\"127.1\"]\n", 0, &dir), PLUMB_EUNTRUSTED);
	T_CONTAINS(r.log, "plumb hosts: host '127.1' is this machine");
	/* the result carries the same failure as a code and a message */
	T_INTEQ(r.err.code, PLUMB_EUNTRUSTED);
	T_CONTAINS(r.err.msg, "host '127.1' is this machine");
	T_CHECK(r.obs == NULL);
	rec_pipeline_result_release(&r);
	tu_rm_rf(dir);
	free(dir);
	/* a config error: the diagnostics, not printed but kept */
	T_INTEQ(run_hosts(&r, "servers: [10.0.0.1]\nhostz: 1\n", 0, &dir), PLUMB_ECONFIG);
	T_CONTAINS(r.log, "hostz");
	T_INTEQ(r.err.code, PLUMB_ECONFIG);
	T_CHECK(r.config == NULL);
	rec_pipeline_result_release(&r);
	tu_rm_rf(dir);
	free(dir);
}

/* hosts on this machine (allowed by the invocation): the observation runs
 * through the guard and nothing it sends is refused */
T_TEST(observation_sends_nothing_the_guard_refuses)
{
	struct rec_pipeline_opts o = { 0 };
	struct rec_invocation inv = { 0 };
	struct rec_pipeline_result r;
	char *dir = tu_tmpdir("test-pipeline"), *cfg;

	T_REQUIRE(dir != NULL);
	tu_write_in(dir, "config/deploy.yml", YML "servers: [localhost]\n");
	cfg = xasprintf("%s/config/deploy.yml", dir);
	inv.allow_local = 1;
	o.cmd = "hosts";
	o.until = REC_STAGE_OBSERVE;
	o.src.config_path = cfg;
	o.inv = &inv;
	if (rec_pipeline_run(&r, &o) != 0)
		T_FAIL_AT("pipeline failed: %s", r.log);
	else {
		T_CHECK(fleet_commands(r.fleet) >= 1);
		T_INTEQ(fleet_refused(r.fleet), 0);
	}
	rec_pipeline_result_release(&r);
	tu_rm_rf(dir);
	free(dir);
	free(cfg);
}

T_TEST(durations)
{
	static const struct { const char *s; int rc, ms; } cases[] = {
		{ "3s", 0, 3000 }, { "90", 0, 90000 }, { "5m", 0, 300000 }, { "1500ms", 0, 1500 },
		{ "1h", 0, 3600000 }, { "0.5s", 0, 500 }, { "0", -1, 0 }, { "-1s", -1, 0 },
		{ "s", -1, 0 }, { "3x", -1, 0 }, { "", -1, 0 }, { "25h", -1, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ms = 0, rc = rec_parse_duration(cases[i].s, &ms);
		T_CHECKF(rc == cases[i].rc && (rc != 0 || ms == cases[i].ms), "'%s': rc %d ms %d",
			 cases[i].s, rc, ms);
	}
}

T_MAIN(T_CASE(deadline_and_read_only_fleet), T_CASE(read_write_only_for_mutating_commands), T_CASE(refusals_in_the_log), T_CASE(durations),
       T_CASE(observation_sends_nothing_the_guard_refuses),
       T_CASE(kept_fleet_reused_until_the_settings_change))
