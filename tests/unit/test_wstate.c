/*
 * The watcher's state directory (state/wstate.h): a status survives a write
 * and a read; a temporary file left by a killed writer does not matter; a
 * damaged or huge status is a clear error; the history keeps the last N; the
 * pid file refuses a second watcher; the control files.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/wstate.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

static void fill(struct ws_status *st)
{
	memset(st, 0, sizeof(*st));
	st->service = xstrdup("optimus");
	st->phase = xstrdup("idle");
	st->sync = xstrdup("Synced");
	st->health = xstrdup("Healthy");
	st->applied_revision = xstrdup("0123456789abcdef0123456789abcdef01234567");
	st->applied_version = xstrdup("v2");
	st->applied_at = 1764900000.5;
	st->last_error = xstrdup("bad \x1b[31m byte");
	st->cycles = 42;
	st->hosts = xcalloc(2, sizeof(*st->hosts));
	st->nhosts = 2;
	st->hosts[0].host = xstrdup("h1");
	st->hosts[0].reachable = 1;
	st->hosts[0].sync = xstrdup("Synced");
	st->hosts[0].health = xstrdup("Healthy");
	st->hosts[0].version = xstrdup("v2");
	st->hosts[1].host = xstrdup("h2");
	st->hosts[1].reachable = 0;
	st->hosts[1].sync = xstrdup("Unknown");
	st->hosts[1].health = xstrdup("Unknown");
	st->hosts[1].error = xstrdup("connection refused");
}

T_TEST(status_round_trip_and_torn_writes)
{
	char *dir = tu_tmpdir("wstate"), *sub;
	struct ws_status st, back;
	struct plumb_err err = { 0 };
	struct stat sb;

	if (!dir)
		abort();
	sub = xasprintf("%s/a/b/state", dir);
	T_INTEQ(ws_open_dir(sub, &err), 0);
	T_REQUIRE(stat(sub, &sb) == 0);
	T_INTEQ((int)(sb.st_mode & 0777), 0700);
	T_INTEQ(ws_status_read(sub, &back, &err), PLUMB_ENOTFOUND);
	plumb_err_reset(&err);
	fill(&st);
	T_INTEQ(ws_status_write(sub, &st, &err), 0);
	/* a writer killed before its rename leaves a temporary file: ignored */
	tu_write_in(sub, ".status.json.tmp-1-000000", "{\"service\": \"tor");
	T_INTEQ(ws_status_read(sub, &back, &err), 0);
	T_STREQ(back.service, "optimus");
	T_STREQ(back.applied_version, "v2");
	T_STREQ(back.last_error, "bad \x1b[31m byte");
	T_CHECK(back.applied_at > 1764900000.4 && back.applied_at < 1764900000.6);
	T_INTEQ((long)back.cycles, 42);
	T_INTEQ((long)back.nhosts, 2);
	T_STREQ(back.hosts[1].error, "connection refused");
	T_INTEQ(back.hosts[1].reachable, 0);
	{
		char *f = xasprintf("%s/status.json", sub);
		T_CHECK(stat(f, &sb) == 0 && (sb.st_mode & 0777) == 0600);
		free(f);
	}
	ws_status_release(&back);
	ws_status_release(&st);
	tu_rm_rf(dir);
	free(sub);
	free(dir);
}

T_TEST(damaged_status_is_an_error)
{
	char *dir = tu_tmpdir("wstate");
	struct ws_status back;
	struct plumb_err err = { 0 };
	char *big;

	if (!dir)
		abort();
	tu_write_in(dir, "status.json", "{\"service\": 7}");
	T_INTEQ(ws_status_read(dir, &back, &err), PLUMB_EPROTOCOL);
	T_CONTAINS(err.msg, "\"service\" is not a string");
	T_CONTAINS(err.msg, "status.json");
	plumb_err_reset(&err);
	tu_write_in(dir, "status.json", "{\"hosts\": [1]}");
	T_INTEQ(ws_status_read(dir, &back, &err), PLUMB_EPROTOCOL);
	T_CONTAINS(err.msg, "hosts[0]");
	plumb_err_reset(&err);
	tu_write_in(dir, "status.json", "not json at all");
	T_INTEQ(ws_status_read(dir, &back, &err), PLUMB_EPROTOCOL);
	plumb_err_reset(&err);
	big = xmalloc(WS_MAX_FILE + 2);
	memset(big, ' ', WS_MAX_FILE + 1);
	big[WS_MAX_FILE + 1] = '\0';
	tu_write_in(dir, "status.json", big);
	free(big);
	T_INTEQ(ws_status_read(dir, &back, &err), PLUMB_ETOOBIG);
	plumb_err_reset(&err);
	T_REQUIRE(back.service == NULL && back.nhosts == 0);
	/* a state directory others may write to is refused */
	T_REQUIRE(chmod(dir, 0777) == 0);
	T_INTEQ(ws_open_dir(dir, &err), PLUMB_EINVAL);
	T_CONTAINS(err.msg, "chmod 700");
	tu_rm_rf(dir);
	free(dir);
}

T_TEST(history_keeps_the_last)
{
	char *dir = tu_tmpdir("wstate");
	struct plumb_err err = { 0 };
	struct ws_cycle *cs = NULL;
	size_t n = 0;

	if (!dir)
		abort();
	for (int i = 0; i < 12; i++) {
		struct ws_cycle c = { 0 };
		char rev[16];
		snprintf(rev, sizeof(rev), "r%d", i);
		c.revision = rev;
		c.outcome = (char *)(i % 2 ? "applied" : "synced");
		c.duration_ms = i;
		T_INTEQ(ws_history_append(dir, &c, 5, &err), 0);
	}
	T_INTEQ(ws_history_read(dir, &cs, &n, &err), 0);
	T_INTEQ((long)n, 5);
	if (n == 5) {
		T_STREQ(cs[0].revision, "r7");
		T_STREQ(cs[4].revision, "r11");
		T_STREQ(cs[4].outcome, "applied");
	}
	ws_cycles_free(cs, n);
	tu_rm_rf(dir);
	free(dir);
}

T_TEST(one_watcher_per_directory_and_control_files)
{
	char *dir = tu_tmpdir("wstate");
	struct plumb_err err = { 0 };
	int fds[2];
	pid_t child;
	char c;

	if (!dir)
		abort();
	T_INTEQ((int)ws_pid_read(dir), 0);
	T_REQUIRE(pipe(fds) == 0);
	child = fork();
	if (child == 0) {
		close(fds[0]);
		if (ws_pid_write(dir, NULL) != 0)
			_exit(1);
		(void)!write(fds[1], "x", 1);
		pause();
		_exit(0);
	}
	close(fds[1]);
	T_REQUIRE(read(fds[0], &c, 1) == 1);
	T_INTEQ((long)ws_pid_read(dir), (long)child);
	T_INTEQ(ws_pid_write(dir, &err), PLUMB_ELOCKED);
	T_CONTAINS(err.msg, "another watcher");
	plumb_err_reset(&err);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(fds[0]);
	/* its flock died with it: the pid left in the file means nothing */
	T_INTEQ((int)ws_pid_read(dir), 0);
	T_INTEQ(ws_pid_write(dir, &err), 0);
	T_INTEQ((long)ws_pid_read(dir), (long)getpid());

	T_INTEQ(ws_suspended(dir), 0);
	T_INTEQ(ws_set_suspended(dir, 1, &err), 0);
	T_INTEQ(ws_suspended(dir), 1);
	T_INTEQ(ws_set_suspended(dir, 0, &err), 0);
	T_INTEQ(ws_suspended(dir), 0);
	T_INTEQ(ws_take_retry(dir), 0);
	T_INTEQ(ws_request_retry(dir, &err), 0);
	T_INTEQ(ws_take_retry(dir), 1);
	T_INTEQ(ws_take_retry(dir), 0);
	tu_rm_rf(dir);
	free(dir);
}

T_MAIN(T_CASE(status_round_trip_and_torn_writes), T_CASE(damaged_status_is_an_error),
       T_CASE(history_keeps_the_last), T_CASE(one_watcher_per_directory_and_control_files))
