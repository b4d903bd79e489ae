/*
 * The host-side snapshot script (providers/snapshot.sh), run here with sh on
 * local directories: an unreadable data path is refused by `check` (naming
 * it, exit 3) so that nothing is stopped; a copy interrupted earlier (its
 * .partial- directory) is removed by the next copy and never counted as a
 * snapshot. Named volumes need a docker daemon: the lab covers them
 * (tests/e2e/apply_accessory.sh).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

/* providers/snapshot.sh as an absolute path (the tests run at the top of the tree). */
static const char *script_path(void)
{
	static char path[4096];

	if (!path[0]) {
		if (!getcwd(path, sizeof(path) - 32))
			abort();
		strcat(path, "/providers/snapshot.sh");
	}
	return path;
}

/* What cd DIR && PREP && snapshot.sh check DIR/base 3 DIR/src as user
 * nobody prints, then " rc=<its exit status>", on one line. Caller frees.
 * The script reaches sh on stdin, opened before the user changes (as the
 * executor sends it): the checkout may be where nobody cannot go. */
static char *check_as_nobody(const char *dir, const char *prep)
{
	return tu_sh_line("cd '%s' && %s && { setpriv --reuid=65534 --regid=65534 --clear-groups "
			  "sh -s check '%s/base' 3 '%s/src' <'%s'; echo \" rc=$?\"; } | tr '\\n' ' '",
			  dir, prep, dir, dir, script_path());
}

/* check as user nobody on a data directory with an unreadable subdirectory
 * (then file): refused with the path's name; readable: accepted. */
T_TEST(unreadable_path_is_refused_by_check)
{
	char *dir, *out;

	if (geteuid() != 0)
		T_SKIP("needs root to run the check as another user");
	out = tu_sh_line("command -v setpriv");
	if (!*out) {
		free(out);
		T_SKIP("no setpriv to run the check as another user");
	}
	free(out);
	dir = tu_tmpdir("snap-read");
	T_REQUIRE(dir);
	out = check_as_nobody(dir, "mkdir -p base src/sub && echo x > src/sub/f && chmod 755 . src && "
				   "chmod 777 base && chmod 700 src/sub");
	T_CONTAINS(out, "plumb-snapshot: refused: cannot read ");
	T_CONTAINS(out, "/src/sub (in ");
	T_CONTAINS(out, " rc=3");
	free(out);
	out = check_as_nobody(dir, "chmod 755 src/sub && chmod 600 src/sub/f");
	T_CONTAINS(out, "/src/sub/f (in ");
	T_CONTAINS(out, " rc=3");
	free(out);
	out = check_as_nobody(dir, "chmod 644 src/sub/f");
	T_STREQ(out, " rc=0 ");
	free(out);
	tu_rm_rf(dir);
	free(dir);
}

/* A .partial- directory (a copy cut short) is removed by the next copy,
 * which prints a complete snapshot; only complete ones are kept. */
T_TEST(interrupted_copy_is_never_a_snapshot)
{
	char *dir = tu_tmpdir("snap-partial"), *out;

	T_REQUIRE(dir);
	out = tu_sh_line("cd '%s' && mkdir -p base/.partial-old src && echo half > base/.partial-old/f && "
			 "echo x > src/f && sh '%s' copy '%s/base' 3 '%s/src' | sed -n 's/^snapshot: //p'",
			 dir, script_path(), dir, dir);
	T_CONTAINS(out, "/base/");
	T_CHECK(strstr(out, ".partial") == NULL);
	{
		char *f = xasprintf("%s/1-src/f", out), *line = tu_sh_line("cat '%s'", f);
		T_STREQ(line, "x");
		free(line);
		free(f);
	}
	free(out);
	out = tu_sh_line("ls -A '%s/base' | tr '\\n' ' '", dir);
	T_NOT_CONTAINS(out, ".partial");
	free(out);
	tu_rm_rf(dir);
	free(dir);
}

T_MAIN(T_CASE(unreadable_path_is_refused_by_check),
       T_CASE(interrupted_copy_is_never_a_snapshot))
