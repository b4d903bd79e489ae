/*
 * The signal protocol of a mutating run (reconciler/lock.h): what the first,
 * second and third SIGINT/SIGTERM do in each phase of the lock, and how a
 * running hook hears them (reconciler/hooks.h). The signal thread is once per
 * process, so every case runs in a child of its own and reports through its
 * exit status and files.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "providers/run.h"
#include "reconciler/hooks.h"
#include "reconciler/lock.h"
#include "state/config.h"
#include "state/source.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

static char *dir; /* the case's directory: markers, hooks */

static int exists(const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	int r = access(p, F_OK) == 0;

	free(p);
	return r;
}

static void touch(const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd >= 0)
		close(fd);
	free(p);
}

static void nap_ms(long ms)
{
	nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L }, NULL);
}

/* Waits (up to 2 s) for the signal thread to have taken a first signal. */
static int wait_interrupted(int sig)
{
	for (int i = 0; i < 200; i++) {
		if (rec_interrupted() == sig)
			return 0;
		nap_ms(10);
	}
	return -1;
}

/* A release that leaves a marker; slow (ctx != NULL) to let a third signal in. */
static int fake_release(void *ctx, struct plumb_err *err)
{
	(void)err;
	if (ctx)
		nap_ms(500);
	touch("released");
	return 0;
}

/* Runs fn in a child; returns its wait status. */
static int in_child(int (*fn)(void))
{
	pid_t pid;
	int st = -1;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(fn());
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

static void case_begin(void)
{
	dir = tu_tmpdir("test-lock-signals");
	if (!dir)
		abort();
	rec_signals_reset();
}

static void case_end(void)
{
	tu_rm_rf(dir);
	free(dir);
	dir = NULL;
}

#define EXITED(st, code) (WIFEXITED(st) && WEXITSTATUS(st) == (code))
#define DESCRIBE(st) WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0

/* In the child: install, enter phase, take a first SIGTERM; 0, or 3 when it
 * was not seen (or the process ended: then no code at all). */
static int first_signal_in(enum rec_sig_phase phase, void *release_ctx)
{
	rec_signals_install();
	rec_signals_install(); /* again: nothing more */
	rec_signals_phase(phase, fake_release, release_ctx);
	kill(getpid(), SIGTERM); /* process-directed, as from kill(1) */
	return wait_interrupted(SIGTERM) < 0 ? 3 : 0;
}

/* no lock: the first signal ends the process */
static int free_child(void)
{
	first_signal_in(REC_SIG_FREE, NULL);
	nap_ms(2000);
	return 4;
}

/* held: the first is a flag, the second releases and ends */
static int held_child(void)
{
	const char *argv[] = { "/bin/sh", "-c", "kill -TERM $$; exit 0", NULL };
	struct prov_child c = { 0 };

	if (first_signal_in(REC_SIG_HELD, NULL) != 0)
		return 3;
	/* still running: a child of the run does not inherit the blocked signals */
	c.argv = argv;
	c.timeout_ms = 5000;
	if (prov_child_run(&c, NULL) != 0 || c.signal != SIGTERM)
		return 5;
	prov_child_release(&c);
	if (exists("released"))
		return 6; /* the first signal releases nothing by itself */
	touch("alive-after-first");
	kill(getpid(), SIGINT); /* the second: stop now */
	nap_ms(2000);
	return 4;
}

/* taking: the second waits for the outcome: the lock turned out to be ours
 * (HELD: the signal thread releases it) or another's (FREE: nothing to do) */
static int taking_then(enum rec_sig_phase outcome)
{
	if (first_signal_in(REC_SIG_TAKING, NULL) != 0)
		return 3;
	kill(getpid(), SIGINT);
	nap_ms(300);
	touch("alive-while-taking");
	rec_signals_phase(outcome, fake_release, NULL);
	nap_ms(2000);
	return 4;
}
static int taking_child(void) { return taking_then(REC_SIG_HELD); }
static int taking_refused_child(void) { return taking_then(REC_SIG_FREE); }

/* taking, with no answer in sight (a long pull behind the mkdir): after a
 * bounded wait the signal thread releases (its own lock only) */
static int taking_long_child(void)
{
	if (first_signal_in(REC_SIG_TAKING, NULL) != 0)
		return 3;
	kill(getpid(), SIGINT);
	nap_ms(8000);
	return 4;
}

/* releasing: the run's own release finishes, the signal thread releases nothing */
static int releasing_child(void)
{
	if (first_signal_in(REC_SIG_HELD, NULL) != 0)
		return 3;
	rec_signals_phase(REC_SIG_RELEASING, NULL, NULL);
	kill(getpid(), SIGINT);
	nap_ms(300);
	rec_signals_phase(REC_SIG_FREE, NULL, NULL);
	return 7;
}

/* a third signal does not cut the release short */
static int third_child(void)
{
	if (first_signal_in(REC_SIG_HELD, "slow") != 0)
		return 3;
	kill(getpid(), SIGINT);
	nap_ms(100);
	kill(getpid(), SIGINT); /* while the release is under way */
	kill(getpid(), SIGTERM);
	nap_ms(3000);
	return 4;
}

T_TEST(protocol_by_phase)
{
	static const struct {
		const char *name;
		int (*fn)(void);
		int died_of;      /* the signal it must die of, or 0 */
		int code;         /* else its exit code */
		const char *made; /* a marker it must leave, or "" */
		int released;     /* whether the signal thread released the lock */
	} cases[] = {
		{ "free", free_child, SIGTERM, 0, "", 0 },
		{ "held", held_child, 0, 128 + SIGINT, "alive-after-first", 1 },
		{ "taking", taking_child, 0, 128 + SIGINT, "alive-while-taking", 1 },
		{ "taking long", taking_long_child, 0, 128 + SIGINT, "", 1 },
		{ "taking refused", taking_refused_child, 0, 128 + SIGINT, "alive-while-taking", 0 },
		{ "releasing", releasing_child, 0, 7, "", 0 },
		{ "third", third_child, 0, 128 + SIGINT, "", 1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st;

		case_begin();
		st = in_child(cases[i].fn);
		if (cases[i].died_of)
			T_CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == cases[i].died_of, "%s: exit %d signal %d",
				 cases[i].name, DESCRIBE(st));
		else
			T_CHECKF(EXITED(st, cases[i].code), "%s: exit %d signal %d", cases[i].name, DESCRIBE(st));
		if (*cases[i].made)
			T_CHECKF(exists(cases[i].made), "%s: no %s", cases[i].name, cases[i].made);
		T_CHECKF(exists("released") == cases[i].released, "%s: released %d", cases[i].name,
			 exists("released"));
		case_end();
	}
	T_INTEQ(rec_interrupted(), 0); /* the parent's state is its own */
}

/* ---- hooks hear the run's signals ---- */

static void put_hook(const char *name, const char *text)
{
	char *rel = xasprintf(".kamal/hooks/%s", name), *p = xasprintf("%s/%s", dir, rel);

	tu_write_in(dir, rel, text);
	if (chmod(p, 0755) != 0)
		abort();
	free(p);
	free(rel);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs hook name with timeout_ms; 0 when rec_hook_run returned want and its
 * message holds every needle (NULL-terminated); else a code saying what. */
static int hook_outcome(const char *name, int timeout_ms, int want, const char *const *needles)
{
	struct rec_hook_env e = { 0 };
	struct plumb_err err = { 0 };
	int rc;

	e.timeout_ms = timeout_ms;
	rc = rec_hook_run(dir, name, &e, 1, &err);
	if (rc != want) {
		fprintf(stderr, "hook %s: rc %d, want %d: %s\n", name, rc, want, plumb_err_msg(&err));
		return 10;
	}
	for (size_t i = 0; needles && needles[i]; i++)
		if (!strstr(plumb_err_msg(&err), needles[i])) {
			fprintf(stderr, "hook %s: no '%s' in: %s\n", name, needles[i], plumb_err_msg(&err));
			return 11;
		}
	return 0;
}

/* The hook sends plumb a Ctrl-C's SIGINT (process-directed); plumb has no
 * lock, but a hook runs: it is forwarded, the hook's trap runs, the process
 * lives on, interrupted. Also when plumb was started with SIGINT ignored (in
 * the background of a script): the hook gets the default back. */
static int forwarded_child(void)
{
	static const char *const want[] = { "hook 'pre-connect' was interrupted (SIGINT sent to it; exit 5)",
					    NULL };
	int rc;

	signal(SIGINT, SIG_IGN);
	rec_signals_install();
	put_hook("pre-connect", "#!/bin/sh\n"
				"trap 'touch \"$0.int\"; exit 5' INT\n"
				"kill -INT $PPID\n"
				"while :; do sleep 0.05; done\n");
	if ((rc = hook_outcome("pre-connect", 20000, PLUMB_ERROR, want)) != 0)
		return rc;
	if (!exists(".kamal/hooks/pre-connect.int"))
		return 12;
	return rec_interrupted() == SIGINT ? 0 : 13;
}

/* A hook that ignores the forwarded signal is killed after the grace (the
 * timeout when shorter than REC_HOOK_GRACE_MS). */
static int ignored_child(void)
{
	static const char *const want[] = { "hook 'pre-deploy' was interrupted (SIGINT sent to it; "
					     "killed after 800 ms more)", NULL };
	double t0;
	int rc;

	rec_signals_install();
	rec_signals_phase(REC_SIG_HELD, fake_release, NULL);
	put_hook("pre-deploy", "#!/bin/sh\n"
			       "trap '' INT TERM\n"
			       "kill -INT $PPID\n"
			       "while :; do sleep 0.05; done\n");
	t0 = now_s();
	if ((rc = hook_outcome("pre-deploy", 800, PLUMB_ERROR, want)) != 0)
		return rc;
	if (now_s() - t0 > 5)
		return 14;
	return exists("released") ? 15 : 0;
}

/* A hook hears the first signal; one that does not listen is killed after the grace. */
T_TEST(hook_gets_the_first_signal)
{
	int (*const fns[])(void) = { forwarded_child, ignored_child };

	for (size_t i = 0; i < 2; i++) {
		int st;

		case_begin();
		st = in_child(fns[i]);
		T_CHECKF(EXITED(st, 0), "child %zu: exit %d signal %d", i, DESCRIBE(st));
		case_end();
	}
}

/* The second signal kills the hook at once, then the process ends (the lock
 * released first, by the signal thread, while the run waits). */
static int second_kills_child(void)
{
	rec_signals_install();
	rec_signals_phase(REC_SIG_HELD, fake_release, NULL);
	put_hook("pre-deploy", "#!/bin/sh\n"
			       "trap '' INT TERM\n"
			       "echo $$ >\"$0.pid\"\n"
			       "kill -INT $PPID; sleep 0.3; kill -INT $PPID\n"
			       "while :; do sleep 0.05; done\n");
	static const char *const want[] = { "hook 'pre-deploy' was interrupted (killed: plumb is stopping now)",
					    NULL };

	if (hook_outcome("pre-deploy", 60000, PLUMB_ERROR, want) != 0)
		return 10;
	/* as apply goes on to its own release: it waits, the signal thread releases */
	rec_signals_phase(REC_SIG_RELEASING, NULL, NULL);
	touch("run-released");
	nap_ms(3000);
	return 4;
}

/* Whether pid is gone (or a zombie no one has reaped yet). */
static int gone(long pid)
{
	char path[64], buf[256];
	FILE *f;
	char *p;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (!(f = fopen(path, "r")))
		return 1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	p = p ? strrchr(buf, ')') : NULL;
	return p && p[1] == ' ' && p[2] == 'Z';
}

T_TEST(second_signal_kills_the_hook_at_once)
{
	char *pidfile, *text = NULL;
	double t0 = now_s();
	long hook_pid = 0;
	int st;

	case_begin();
	st = in_child(second_kills_child);
	T_CHECKF(EXITED(st, 128 + SIGINT), "exit %d signal %d", DESCRIBE(st));
	T_CHECKF(now_s() - t0 < 5, "took %.1f s", now_s() - t0);
	T_CHECK(exists("released"));
	T_CHECK(!exists("run-released"));
	pidfile = xasprintf("%s/.kamal/hooks/pre-deploy.pid", dir);
	if (util_read_file(pidfile, 64, &text, NULL) == 0)
		hook_pid = atol(text);
	T_CHECK(hook_pid > 0);
	for (int i = 0; i < 100 && hook_pid > 0 && !gone(hook_pid); i++)
		nap_ms(20);
	T_CHECKF(hook_pid > 0 && gone(hook_pid), "hook pid %ld still runs", hook_pid);
	free(text);
	free(pidfile);
	case_end();
}

/* Past its deadline a hook gets SIGTERM first (it may clean up), then SIGKILL. */
T_TEST(hook_timeout_terminates_then_kills)
{
	static const char *const ended[] = { "did not finish within", "(SIGTERM, then it ended)", NULL };
	static const char *const killed[] = { "did not finish within", "(SIGTERM, then killed)", NULL };
	double t0;

	case_begin();
	put_hook("post-deploy", "#!/bin/sh\ntrap 'touch \"$0.term\"; exit 0' TERM\nwhile :; do sleep 0.05; done\n");
	T_INTEQ(hook_outcome("post-deploy", 300, PLUMB_ETIMEOUT, ended), 0);
	T_CHECK(exists(".kamal/hooks/post-deploy.term"));
	put_hook("post-app-boot", "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n");
	t0 = now_s();
	T_INTEQ(hook_outcome("post-app-boot", 300, PLUMB_ETIMEOUT, killed), 0);
	T_CHECKF(now_s() - t0 < 3, "took %.1f s", now_s() - t0);
	case_end();
}

/* x-plumb hooks.timeout: the deadline of every hook, in seconds. */
T_TEST(hooks_timeout_from_x_plumb)
{
	static const char base[] = "service: app\nimage: dhh/app\nregistry:\n  username: user\n"
				   "  password: pw\nservers: [1.1.1.1]\n";
	struct config_opts o = { 0 };
	struct config *c = NULL;
	struct source *src = NULL;
	struct diags d = { 0 };
	struct rec_hook_env e = { 0 };
	struct plumb_err err = { 0 };
	char *yml = xasprintf("%sx-plumb:\n  hooks:\n    timeout: 1\n", base), *errors;
	double t0;

	case_begin();
	tu_write_in(dir, "config/deploy.yml", yml);
	source_dir_new(&src, dir);
	T_REQUIRE(config_load(&c, src, &o, &d) == 0);
	T_INTEQ(c->xplumb.hooks_timeout, 1);
	put_hook("pre-deploy", "#!/bin/sh\nsleep 30\n");
	e.config = c;
	t0 = now_s();
	T_INTEQ(rec_hook_run(dir, "pre-deploy", &e, 1, &err), PLUMB_ETIMEOUT);
	T_CONTAINS(err.msg, "did not finish within 1 s");
	T_CHECKF(now_s() - t0 < 4, "took %.1f s", now_s() - t0);
	config_free(c);
	source_free(src);
	diags_release(&d);
	free(yml);

	/* out of range: file:line */
	yml = xasprintf("%sx-plumb:\n  hooks:\n    timeout: 0\n", base);
	tu_write_in(dir, "config/deploy.yml", yml);
	memset(&d, 0, sizeof(d));
	source_dir_new(&src, dir);
	c = NULL;
	T_CHECK(config_load(&c, src, &o, &d) < 0);
	errors = diags_to_string(&d);
	T_CONTAINS(errors, "x-plumb.hooks.timeout: want seconds from 1 to 86400");
	free(errors);
	config_free(c);
	source_free(src);
	diags_release(&d);
	free(yml);
	case_end();
}

T_MAIN(T_CASE(protocol_by_phase), T_CASE(hook_gets_the_first_signal),
       T_CASE(second_signal_kills_the_hook_at_once), T_CASE(hook_timeout_terminates_then_kills),
       T_CASE(hooks_timeout_from_x_plumb))
