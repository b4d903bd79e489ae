/*
 * The one runner of local programs (providers/run.h): bounds, deadline
 * (also when the command closed its stdout), the kill of the whole process
 * group, no secret in any argv, no inherited descriptor.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "providers/quote.h"
#include "providers/run.h"
#include "state/secrets.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#define CANARY "run-canary-7d1c"

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

T_TEST(shell_bounds_and_status)
{
	char *out = NULL;
	int status = 0;

	T_INTEQ(prov_run_shell("printf 'a\\n\\n'", NULL, 100, 0, &out, &status), 0);
	T_STREQ(out, "a\n");
	T_INTEQ(status, 0);
	util_free_secret(out);
	T_INTEQ(prov_run_shell("pwd", "/tmp", 100, 0, &out, &status), 0);
	T_STREQ(out, "/tmp");
	util_free_secret(out);
	T_INTEQ(prov_run_shell("echo err >&2; exit 5", NULL, 100, 0, &out, &status), PLUMB_ERROR);
	T_INTEQ(status, 5);
	T_CHECK(out == NULL);
	T_INTEQ(prov_run_shell("kill -TERM $$", NULL, 100, 0, &out, &status), PLUMB_ERROR);
	T_INTEQ(status, 128 + 15);
	/* Output past the bound kills the producer (yes never ends on its own). */
	T_INTEQ(prov_run_shell("yes", NULL, 10000, 0, &out, &status), PLUMB_ETRUNC);
	T_INTEQ(status, -1);
	T_INTEQ(prov_run_shell("sleep 5", NULL, 100, 200, &out, &status), PLUMB_ETIMEOUT);
	T_INTEQ(status, -1);
	/* the command's stdin is /dev/null, not the pipe its text came through */
	T_INTEQ(prov_run_shell("cat", NULL, 100, 0, &out, &status), 0);
	T_STREQ(out, "");
	util_free_secret(out);
	T_INTEQ(prov_run_shell("true", "/nonexistent-dir", 100, 0, &out, &status), PLUMB_ERROR);
	T_INTEQ(status, 127);
	/* several lines, quotes and a last line without a newline */
	T_INTEQ(prov_run_shell("a='x y'\nprintf '%s|' \"$a\"\necho \"end\"", NULL, 100, 0, &out,
			       &status),
		0);
	T_STREQ(out, "x y|end");
	util_free_secret(out);
}

/* True while a process other than a zombie is in process group pgid. */
static int group_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int alive = 0;

	while (d && !alive && (e = readdir(d))) {
		char path[300], buf[512], *rp;
		int fd, n;
		char state;
		int ppid, pg;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = (int)read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		rp = strrchr(buf, ')');
		if (rp && sscanf(rp + 1, " %c %d %d", &state, &ppid, &pg) == 3 && pg == pgid &&
		    state != 'Z')
			alive = 1;
	}
	if (d)
		closedir(d);
	return alive;
}

/* `exec >&-; sleep 45`: the command closes its stdout at once and runs on.
 * The deadline still holds, and the whole group (the sleep too) is killed. */
T_TEST(deadline_when_stdout_closed)
{
	char *out = NULL, *pidfile = xasprintf("/tmp/plumb-run-pg-%d", (int)getpid());
	char *cmd = xasprintf("echo $$ > %s; exec >&-; sleep 45 & sleep 45", pidfile);
	char *pidtext = NULL;
	int status = 0;
	long long t0 = mono_ms(), took;
	pid_t pg;

	T_INTEQ(prov_run_shell(cmd, NULL, 100, 500, &out, &status), PLUMB_ETIMEOUT);
	took = mono_ms() - t0;
	T_INTEQ(status, -1);
	T_CHECK(took < 3000);
	T_REQUIRE(util_read_file(pidfile, 64, &pidtext, NULL) == 0);
	pg = (pid_t)atoi(pidtext);
	T_CHECK(pg > 1);
	for (int i = 0; i < 100 && group_alive(pg); i++)
		usleep(20000);
	T_CHECK(!group_alive(pg));
	unlink(pidfile);
	free(pidtext);
	free(pidfile);
	free(cmd);
}

/* A secret expanded into a command never shows in any argv: the command
 * reads its shell's cmdline and its own. */
T_TEST(no_secret_in_argv)
{
	char *out = NULL;
	int status = 0;

	T_INTEQ(prov_run_shell("x=" CANARY "; tr '\\0' ' ' </proc/$$/cmdline; echo; "
			       "tr '\\0' ' ' </proc/self/cmdline; echo \"$x\" >/dev/null",
			       NULL, 4096, 0, &out, &status),
		0);
	T_CHECK(out && strstr(out, "/bin/sh") != NULL);
	T_NOT_CONTAINS(out, CANARY);
	util_free_secret(out);
}

/* secrets: DERIVED=$(echo "pre-$CANARY") — the value reaches the command,
 * which sees its own and its parent's cmdline without it. Without a runner,
 * a trusted run runs nothing: unavailable, and noted. */
T_TEST(secrets_command_argv_clean)
{
	const char *text = "CANARY=" CANARY "\n"
			   "DERIVED=$(echo \"pre-$CANARY\")\n"
			   "SEEN=$(cat /proc/$$/cmdline /proc/$PPID/cmdline /proc/self/cmdline | tr '\\0' ' ')\n"
			   "SEEN2=$(x=\"$CANARY\"; cat /proc/$$/cmdline | tr '\\0' ' ')\n";

	for (int with_runner = 0; with_runner <= 1; with_runner++) {
		struct secrets *s = secrets_new();
		struct trust t;
		struct diags d = { 0 };
		const char *v;
		int avail = 0;

		trust_init(&t, 1);
		if (with_runner)
			t.run_fn = prov_run_shell_fn;
		T_INTEQ(secrets_parse(s, ".kamal/secrets", text, strlen(text), NULL, &t, &d), 0);
		v = secrets_get(s, "DERIVED", &avail);
		T_STREQ(v, with_runner ? "pre-" CANARY : PLUMB_UNAVAILABLE);
		T_INTEQ(avail, with_runner);
		T_INTEQ(!!(t.turned_off & TRUST_OFF_SECRET_CMD), !with_runner);
		for (int i = 0; i < 2 && with_runner; i++) {
			v = secrets_get(s, i ? "SEEN2" : "SEEN", &avail);
			T_CHECK(avail && v && strstr(v, "sh") != NULL);
			T_NOT_CONTAINS(v, CANARY);
		}
		secrets_free(s);
		diags_release(&d);
	}
}

/* trust_run: "not run" (untrusted, no runner) is PLUMB_EUNAVAILABLE, and a
 * command that ran and failed never reads as not run. */
T_TEST(trust_run_codes)
{
	struct trust t;
	char *out = NULL;
	int status = 0;

	trust_init(&t, 0);
	t.run_fn = prov_run_shell_fn;
	T_INTEQ(trust_run(&t, TRUST_OFF_ERB_CMD, "echo x", NULL, 100, &out, &status),
		PLUMB_EUNAVAILABLE);
	T_CHECK(out == NULL);
	T_CHECK(t.turned_off & TRUST_OFF_ERB_CMD);
	trust_init(&t, 1);
	T_INTEQ(trust_run(&t, TRUST_OFF_ERB_CMD, "echo x", NULL, 100, &out, &status),
		PLUMB_EUNAVAILABLE); /* no runner */
	trust_init(&t, 1);
	t.run_fn = prov_run_shell_fn;
	T_INTEQ(trust_run(&t, TRUST_OFF_ERB_CMD, "exit 2", NULL, 100, &out, &status), PLUMB_ERROR);
	T_INTEQ(status, 2);
	T_INTEQ(trust_run(&t, TRUST_OFF_ERB_CMD, "yes", NULL, 100, &out, &status), PLUMB_ETRUNC);
	T_INTEQ(trust_run(&t, TRUST_OFF_ERB_CMD, "echo x", NULL, 100, &out, &status), 0);
	T_STREQ(out, "x");
	util_free_secret(out);
	T_INTEQ(t.turned_off, 0);
}

/* The child inherits no descriptor above 2, and gets stdin, env and cwd. */
T_TEST(child_struct)
{
	const char *argv[] = { "/bin/sh", "-c", "[ -e /proc/self/fd/77 ] && echo LEAK; cat; echo \"$RUN_X\"; pwd; echo e >&2",
			       NULL };
	const char *env[] = { "RUN_X=from-env", NULL };
	struct prov_child c = { 0 };
	struct plumb_err e = { 0 };
	int leak = dup2(0, 77); /* no O_CLOEXEC */

	c.argv = argv;
	c.env_add = env;
	c.cwd = "/";
	c.in = "stdin-bytes\n";
	c.in_len = strlen(c.in);
	c.out_max = 4096;
	c.err_max = 100;
	T_INTEQ(prov_child_run(&c, NULL), 0);
	T_INTEQ(c.status, 0);
	T_CHECK(leak == 77);
	T_STREQ(c.out.buf, "stdin-bytes\nfrom-env\n/\n"); /* no LEAK */
	T_STREQ(c.err.buf, "e\n");
	prov_child_release(&c);
	close(leak);

	/* output past its bound: PLUMB_ETRUNC, what was read is kept; the
	 * message names the program, never its arguments */
	memset(&c, 0, sizeof(c));
	argv[2] = "yes";
	c.argv = argv;
	c.out_max = 1000;
	T_INTEQ(prov_child_run(&c, &e), PLUMB_ETRUNC);
	T_INTEQ(e.code, PLUMB_ETRUNC);
	T_CONTAINS(e.msg, "/bin/sh");
	T_NOT_CONTAINS(e.msg, "yes");
	T_CHECK(c.out.len <= 1000);
	prov_child_release(&c);

	/* a child that never reads a large stdin does not block or kill us */
	memset(&c, 0, sizeof(c));
	argv[2] = "exit 3";
	c.argv = argv;
	c.in_len = 1 << 20;
	c.in = xcalloc(1, c.in_len);
	T_INTEQ(prov_child_run(&c, &e), 0);
	T_INTEQ(c.status, 3);
	free((char *)c.in);
	prov_child_release(&c);
}

T_MAIN(T_CASE(trust_run_codes), T_CASE(shell_bounds_and_status), T_CASE(deadline_when_stdout_closed),
       T_CASE(no_secret_in_argv), T_CASE(secrets_command_argv_clean), T_CASE(child_struct))
