/*
 * deploy-examples: the GitHub workflows parse and their steps are valid
 * shell (tests/unit/check_workflow.py, with python3's yaml), the systemd unit
 * passes systemd-analyze verify without a word, and the flags the examples
 * give plumb exist. A check whose tool is missing is skipped, saying so.
 */
#include "tests/unit/t.h"
#include "reconciler/cli.h"
#include "tests/unit/tutil.h"

#include <sys/wait.h>

/* Whether a shell command exits 0, without printing anything about it. */
static int quiet_ok(const char *cmd)
{
	int st = system(cmd);

	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

T_TEST(workflows_parse)
{
	if (!quiet_ok("python3 -c 'import yaml' >/dev/null 2>&1"))
		T_SKIP("python3 with yaml (python3-yaml) is not installed");
	T_CHECK(tu_sh("python3 tests/unit/check_workflow.py deploy-examples/github/plumb-plan.yml "
		      "deploy-examples/github/plumb-apply.yml") == 0);
}

T_TEST(systemd_unit_verifies)
{
	char *dir, *out;

	if (!quiet_ok("command -v systemd-analyze >/dev/null 2>&1"))
		T_SKIP("systemd-analyze is not installed");
	dir = tu_tmpdir("unit");
	/* verify wants ExecStart's binary to exist: any will do. */
	T_REQUIRE(tu_sh("sed 's|/usr/local/bin/plumb|/bin/true|' deploy-examples/systemd/plumb-watch.service "
			">'%s/plumb-watch.service'",
			dir) == 0);
	/* It exits 0 on unknown keys and bad values: any output is a failure. */
	out = tu_sh_line("systemd-analyze verify '%s/plumb-watch.service' 2>&1 || echo failed", dir);
	T_STREQ(out, "");
	free(out);
	tu_rm_rf(dir);
	free(dir);
}

/* The plan and apply options the workflows use are in plumb's own help. */
T_TEST(workflow_flags_exist)
{
	static const char *const plan_flags[] = { "--format markdown", "--format json", "--out",
						  "--allow-foreign-owner", "--timeout", NULL };
	static const char *const apply_flags[] = { "--yes", "--expect-plan", "--allow-foreign-owner",
						   NULL };
	const struct rec_command *plan = rec_find_command("plan"), *apply = rec_find_command("apply");

	T_REQUIRE(plan && apply);
	for (size_t i = 0; plan_flags[i]; i++) {
		const char *flag = plan_flags[i];
		char *word = xstrndup(flag, strcspn(flag, " "));

		T_CONTAINS(plan->usage, word);
		T_CHECKF(tu_sh("grep -q -- '%s' deploy-examples/github/plumb-plan.yml deploy-examples/github/plumb-apply.yml",
			       flag) == 0,
			 "%s is not used", flag);
		free(word);
	}
	for (size_t i = 0; apply_flags[i]; i++)
		T_CONTAINS(apply->usage, apply_flags[i]);
	T_CHECK(tu_sh("grep -q -- 'apply --yes --expect-plan' deploy-examples/github/plumb-apply.yml") == 0);
}

T_MAIN(T_CASE(workflows_parse), T_CASE(systemd_unit_verifies), T_CASE(workflow_flags_exist))
