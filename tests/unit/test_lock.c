/* Kamal's deploy lock and audit log (reconciler/lock.h), on the local transport in a temp dir. */
#include "reconciler/lock.h"
#include "providers/run.h"
#include "tests/unit/t.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A temp "home" the local transport runs in (it runs in plumb's cwd). */
struct home {
	char dir[64];
	char old[1024];
	char *old_home;
	struct transport *t;
};

static int home_enter(struct home *h)
{
	snprintf(h->dir, sizeof(h->dir), "/tmp/plumb-t-lock-XXXXXX");
	if (!mkdtemp(h->dir) || !getcwd(h->old, sizeof(h->old)) || chdir(h->dir) != 0)
		return -1;
	/* the local transport runs commands in $HOME, as an SSH session does */
	h->old_home = getenv("HOME") ? xstrdup(getenv("HOME")) : NULL;
	setenv("HOME", h->dir, 1);
	h->t = NULL;
	if (prov_init() < 0 || transport_local_open(&h->t) < 0)
		return -1;
	return 0;
}

static void home_leave(struct home *h)
{
	char cmd[128];

	transport_close(h->t);
	if (h->old_home)
		setenv("HOME", h->old_home, 1);
	free(h->old_home);
	if (chdir(h->old) != 0)
		perror("chdir");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	if (system(cmd) != 0)
		perror("rm");
}

/* Runs sh -c cmd in the current directory; its stdout (bounded) in out. */
static int sh_out(const char *cmd, char *out, size_t n)
{
	FILE *p = popen(cmd, "r");
	size_t got;

	if (!p)
		return -1;
	got = fread(out, 1, n - 1, p);
	out[got] = '\0';
	return pclose(p);
}

T_TEST(encode64_is_rubys)
{
	/* Ruby: Base64.encode64(...), 60 columns, every line ends in \n */
	const char *text = "Locked by: alice at 2026-12-04T19:16:00Z\nVersion: abc\n"
			   "Message: deploying the new login page, then the docs";
	char *b, x45[46];

	b = rec_lock_encode64(text, strlen(text));
	T_STREQ(b, "TG9ja2VkIGJ5OiBhbGljZSBhdCAyMDI2LTEyLTA0VDE5OjE2OjAwWgpWZXJz\n"
		   "aW9uOiBhYmMKTWVzc2FnZTogZGVwbG95aW5nIHRoZSBuZXcgbG9naW4gcGFn\n"
		   "ZSwgdGhlbiB0aGUgZG9jcw==\n");
	free(b);
	b = rec_lock_encode64("", 0);
	T_STREQ(b, "");
	free(b);
	memset(x45, 'x', 45);
	b = rec_lock_encode64(x45, 45);
	T_STREQ(b, "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4\n");
	free(b);
}

T_TEST(details_text_and_who)
{
	char host[256] = "", want[400];
	char *d = rec_lock_details_text("plumb (pid 42 on ci) alice", 1796411760LL, "abc123", "Automatic deploy lock");
	char *who = rec_lock_who(0), *hand = rec_lock_who(1);

	T_STREQ(d, "Locked by: plumb (pid 42 on ci) alice at 2026-12-04T19:16:00Z\nVersion: abc123\n"
		   "Message: Automatic deploy lock");
	free(d);
	/* a newline in a message cannot add a line to the details */
	d = rec_lock_details_text("w", 0, "v\nVersion: forged", "m\r\nx");
	T_STREQ(d, "Locked by: w at 1970-01-01T00:00:00Z\nVersion: v Version: forged\nMessage: m  x");
	free(d);
	T_REQUIRE(gethostname(host, sizeof(host) - 1) == 0);
	snprintf(want, sizeof(want), "plumb (pid %ld on %s) ", (long)getpid(), host);
	T_CHECKF(strncmp(who, want, strlen(want)) == 0 && strlen(who) > strlen(want), "who: %s", who);
	free(who);
	snprintf(want, sizeof(want), "plumb (by hand on %s) ", host);
	T_CHECKF(strncmp(hand, want, strlen(want)) == 0, "by hand: %s", hand);
	free(hand);
}

T_TEST(decode_details_is_printable_and_bounded)
{
	const char *raw = "Locked by: a\x1b]0;x\x07 at t\nVersion: 1\n\n";
	char *b = rec_lock_encode64(raw, strlen(raw)), *d;

	d = rec_lock_decode_details(b, strlen(b));
	T_STREQ(d, "Locked by: a?]0;x? at t\nVersion: 1");
	free(d);
	free(b);
	T_CHECK(rec_lock_decode_details("not base64!", 11) == NULL);
	T_CHECK(rec_lock_decode_details("", 0) == NULL);
	{
		size_t n = REC_LOCK_DETAILS_MAX * 2;
		char *big = malloc(n);
		memset(big, 'a', n);
		b = rec_lock_encode64(big, n);
		d = rec_lock_decode_details(b, strlen(b));
		T_REQUIRE(d);
		T_INTEQ(strlen(d), REC_LOCK_DETAILS_MAX);
		free(d);
		free(b);
		free(big);
	}
}

T_TEST(stale_only_for_a_dead_plumb_here)
{
	struct rec_lock_status s = { 0 };
	char host[256] = "";
	pid_t dead;
	int st;

	T_REQUIRE(gethostname(host, sizeof(host) - 1) == 0);
	dead = fork();
	T_REQUIRE(dead >= 0);
	if (dead == 0)
		_exit(0);
	T_REQUIRE(waitpid(dead, &st, 0) == dead); /* reaped: its pid is no longer alive */

	s.details = xasprintf("Locked by: plumb (pid %ld on %s) alice at 2026-12-04T19:16:00Z\nVersion: v\n"
			      "Message: m", (long)dead, host);
	rec_lock_parse_holder(&s);
	T_INTEQ(s.plumb, 1);
	T_INTEQ(s.pid, dead);
	T_STREQ(s.host, host);
	T_INTEQ(s.stale, 1);
	rec_lock_status_release(&s);

	/* alive (this process) */
	s.details = xasprintf("Locked by: plumb (pid %ld on %s) alice at t", (long)getpid(), host);
	rec_lock_parse_holder(&s);
	T_INTEQ(s.plumb, 1);
	T_INTEQ(s.stale, 0);
	rec_lock_status_release(&s);

	/* dead pid, but another machine: never stale from here */
	s.details = xasprintf("Locked by: plumb (pid %ld on %s-other) alice at t", (long)dead, host);
	rec_lock_parse_holder(&s);
	T_INTEQ(s.plumb, 1);
	T_INTEQ(s.stale, 0);
	rec_lock_status_release(&s);

	/* taken by hand (plumb lock acquire): it outlives its process, never stale */
	s.details = xasprintf("Locked by: plumb (by hand on %s) alice at t", host);
	rec_lock_parse_holder(&s);
	T_INTEQ(s.stale, 0);
	rec_lock_status_release(&s);

	/* Kamal's own holder, and malformed ones */
	s.details = xstrdup("Locked by: alice at 2026-12-04T19:16:00Z\nVersion: v\nMessage: m");
	rec_lock_parse_holder(&s);
	T_INTEQ(s.plumb, 0);
	T_INTEQ(s.stale, 0);
	T_CHECK(s.host == NULL);
	rec_lock_status_release(&s);
	s.details = xstrdup("Locked by: plumb (pid x on h) a");
	rec_lock_parse_holder(&s);
	T_INTEQ(s.plumb, 0);
	rec_lock_status_release(&s);
	s.details = xstrdup("Locked by: plumb (pid 12 on h");
	rec_lock_parse_holder(&s);
	T_INTEQ(s.plumb, 0);
	rec_lock_status_release(&s);
}

T_TEST(acquire_status_release)
{
	struct home h;
	struct plumb_err err = { 0 };
	struct rec_lock_status s;
	char out[2048], *name;
	struct stat st;

	T_REQUIRE(home_enter(&h) == 0);
	name = rec_lock_name_for("optimus", NULL);
	T_STREQ(name, "lock-optimus");

	T_INTEQ(rec_lock_status(h.t, name, &s, &err), 0);
	T_INTEQ(s.held, 0);
	T_CHECK(s.details == NULL);
	rec_lock_status_release(&s);

	T_INTEQ(rec_lock_acquire(h.t, name, "abc123", "Automatic deploy lock", &err), 0);
	T_CHECK(stat(".kamal/lock-optimus", &st) == 0 && S_ISDIR(st.st_mode));
	/* what `kamal lock status` runs: cat details | base64 -d */
	T_INTEQ(sh_out("cat .kamal/lock-optimus/details | base64 -d", out, sizeof(out)), 0);
	T_CHECKF(strncmp(out, "Locked by: plumb (pid ", 22) == 0, "details: %s", out);
	T_CONTAINS(out, "\nVersion: abc123\nMessage: Automatic deploy lock");
	/* the file is Kamal's bytes: encode64 lines, then echo's newline */
	T_INTEQ(sh_out("tail -c 2 .kamal/lock-optimus/details | od -An -c | tr -d ' '", out, sizeof(out)), 0);
	T_STREQ(out, "\\n\\n\n");

	/* held: refused, naming the holder, nothing changed */
	T_INTEQ(sh_out("find .kamal | sort; cat .kamal/lock-optimus/details", out, sizeof(out)), 0);
	{
		char before[2048];
		memcpy(before, out, sizeof(before));
		T_INTEQ(rec_lock_acquire(h.t, name, "other", "again", &err), PLUMB_ELOCKED);
		T_CONTAINS(err.msg, "Locked by: plumb (pid ");
		T_CONTAINS(err.msg, "Version: abc123");
		T_INTEQ(sh_out("find .kamal | sort; cat .kamal/lock-optimus/details", out, sizeof(out)), 0);
		T_STREQ(out, before);
	}

	T_INTEQ(rec_lock_status(h.t, name, &s, &err), 0);
	T_INTEQ(s.held, 1);
	T_INTEQ(s.plumb, 1);
	T_INTEQ(s.pid, getpid());
	T_INTEQ(s.stale, 0);
	T_CONTAINS(s.details, "Message: Automatic deploy lock");
	rec_lock_status_release(&s);

	/* the signal thread's release: only the run's own lock */
	T_INTEQ(rec_lock_release_as(h.t, name, "plumb (pid 1 on elsewhere) someone", &err), PLUMB_ELOCKED);
	T_CONTAINS(err.msg, "left as it is");
	T_CHECK(stat(".kamal/lock-optimus/details", &st) == 0);
	{
		char *who = rec_lock_who(0);
		T_INTEQ(rec_lock_release_as(h.t, name, who, &err), 0);
		free(who);
	}
	T_CHECK(stat(".kamal/lock-optimus", &st) != 0 && errno == ENOENT);
	T_INTEQ(rec_lock_acquire(h.t, name, "abc123", "Automatic deploy lock", &err), 0);
	T_INTEQ(rec_lock_release(h.t, name, &err), 0);
	T_CHECK(stat(".kamal/lock-optimus", &st) != 0 && errno == ENOENT);
	T_CHECK(stat(".kamal", &st) == 0);
	T_INTEQ(rec_lock_release(h.t, name, &err), PLUMB_ENOTFOUND);
	T_CONTAINS(err.msg, "no deploy lock");
	T_INTEQ(rec_lock_status(h.t, name, &s, &err), 0);
	T_INTEQ(s.held, 0);
	rec_lock_status_release(&s);
	free(name);
	home_leave(&h);
}

T_TEST(kamal_lock_is_respected)
{
	struct home h;
	struct plumb_err err = { 0 };
	struct rec_lock_status s;
	char out[256];
	struct desired ds = { 0 };
	char *name;

	T_REQUIRE(home_enter(&h) == 0);
	ds.service = "optimus", ds.destination = "staging";
	name = rec_lock_name(&ds);
	T_STREQ(name, "lock-optimus-staging");
	/* as Kamal writes it: mkdir, then echo "<Base64.encode64>" > details,
	 * with a host string that tries to send a terminal escape */
	T_INTEQ(sh_out("mkdir -p .kamal/lock-optimus-staging && echo \"$(printf 'Locked by: bob\\033[2J at "
		       "2026-12-04T10:00:00Z\\nVersion: v9\\nMessage: hotfix' | base64)\" > "
		       ".kamal/lock-optimus-staging/details", out, sizeof(out)), 0);
	T_INTEQ(rec_lock_acquire(h.t, name, "v10", "m", &err), PLUMB_ELOCKED);
	T_CONTAINS(err.msg, "Locked by: bob?[2J at 2026-12-04T10:00:00Z");
	T_CONTAINS(err.msg, "Message: hotfix");
	T_NOT_CONTAINS(err.msg, "\033");
	T_INTEQ(rec_lock_status(h.t, name, &s, &err), 0);
	T_INTEQ(s.held, 1);
	T_INTEQ(s.plumb, 0);
	T_INTEQ(s.stale, 0);
	T_CONTAINS(s.details, "Version: v9");
	rec_lock_status_release(&s);
	/* a lock without (readable) details is still a lock */
	T_INTEQ(sh_out("rm .kamal/lock-optimus-staging/details", out, sizeof(out)), 0);
	T_INTEQ(rec_lock_status(h.t, name, &s, &err), 0);
	T_INTEQ(s.held, 1);
	T_STREQ(s.details, "(details unreadable)");
	rec_lock_status_release(&s);
	T_INTEQ(rec_lock_acquire(h.t, name, "v10", "m", &err), PLUMB_ELOCKED);
	T_CONTAINS(err.msg, "(details unreadable)");
	/* a dead plumb's lock: acquire is still refused, and says it is stale */
	{
		char host[256] = "", cmd[600];
		pid_t dead = fork();
		int st;

		T_REQUIRE(dead >= 0);
		if (dead == 0)
			_exit(0);
		T_REQUIRE(waitpid(dead, &st, 0) == dead);
		T_REQUIRE(gethostname(host, sizeof(host) - 1) == 0);
		snprintf(cmd, sizeof(cmd), "echo \"$(printf 'Locked by: plumb (pid %ld on %s) ci at t\\nVersion: v' "
			 "| base64)\" > .kamal/lock-optimus-staging/details", (long)dead, host);
		T_INTEQ(sh_out(cmd, out, sizeof(out)), 0);
		T_INTEQ(rec_lock_acquire(h.t, name, "v10", "m", &err), PLUMB_ELOCKED);
		T_CONTAINS(err.msg, "stale: that plumb (on this machine) is no longer running");
	}
	/* release as Kamal's: whoever holds it */
	T_INTEQ(rec_lock_release(h.t, name, &err), 0);
	T_INTEQ(rec_lock_acquire(h.t, name, "v10", "m", &err), 0);
	T_INTEQ(rec_lock_release(h.t, name, &err), 0);
	/* a lock name that is not one component is refused before anything runs */
	T_INTEQ(rec_lock_acquire(h.t, "../x", "v", "m", &err), PLUMB_EINVAL);
	T_INTEQ(rec_lock_release(h.t, "a/b", &err), PLUMB_EINVAL);
	free(name);
	home_leave(&h);
}

T_TEST(status_passes_the_readonly_guard_acquire_does_not)
{
	struct home h;
	struct transport *ro = NULL;
	struct plumb_err err = { 0 };
	struct rec_lock_status s;
	struct stat st;

	T_REQUIRE(home_enter(&h) == 0);
	T_REQUIRE(transport_readonly_wrap(&ro, h.t) == 0);
	T_INTEQ(rec_lock_acquire(ro, "lock-optimus", "v", "m", &err), PLUMB_EREFUSED);
	T_CHECK(stat(".kamal", &st) != 0);
	T_INTEQ(rec_lock_release(ro, "lock-optimus", &err), PLUMB_EREFUSED);
	T_INTEQ(rec_lock_acquire(h.t, "lock-optimus", "v", "m", &err), 0);
	T_INTEQ(rec_lock_status(ro, "lock-optimus", &s, &err), 0);
	T_INTEQ(s.held, 1);
	T_INTEQ(s.plumb, 1);
	rec_lock_status_release(&s);
	T_INTEQ(ro->stats.refused, 2);
	transport_close(ro);
	home_leave(&h);
}

T_TEST(audit_line_format)
{
	static const struct {
		const char *dest, *performer;
		long long t;
		const char *text, *line, *path;
	} cases[] = {
		{ NULL, "alice@example.com", 1796411760LL, "[web] Booted app version abc",
		  "[2026-12-04T19:16:00Z] [alice@example.com] [web] Booted app version abc",
		  ".kamal/optimus-audit.log" },
		{ "staging", "alice", 0, "Pruned\ncontainers",
		  "[1970-01-01T00:00:00Z] [alice] [staging] Pruned containers",
		  ".kamal/optimus-staging-audit.log" },
		{ "", "a\tb", 0, "x", "[1970-01-01T00:00:00Z] [a b] x", ".kamal/optimus-audit.log" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *l = rec_audit_line(cases[i].dest, cases[i].performer, cases[i].t, cases[i].text);
		char *p = rec_audit_path("optimus", cases[i].dest);

		T_STREQ(l, cases[i].line);
		T_STREQ(p, cases[i].path);
		free(l);
		free(p);
	}
}

T_TEST(audit_cmd_appends_literally)
{
	struct home h;
	struct prov_cmd c;
	struct cmd_result r;
	struct desired ds = { 0 };
	char out[1024];

	T_REQUIRE(home_enter(&h) == 0);
	ds.service = "optimus";
	prov_cmd_init(&c);
	prov_cmd_args(&c, "true", NULL);
	rec_audit_cmd(&c, PROV_JOIN_AND, &ds, "alice", "Started '$(touch pwned)' `id` \"x\" %s");
	rec_audit_cmd(&c, PROV_JOIN_AND, &ds, "alice", "second");
	T_INTEQ(transport_run_cmd(h.t, &c, &r), 0);
	T_INTEQ(r.status, 0);
	cmd_result_release(&r);
	prov_cmd_release(&c);
	T_INTEQ(sh_out("cut -c 24- .kamal/optimus-audit.log; ls", out, sizeof(out)), 0);
	T_STREQ(out, "[alice] Started '$(touch pwned)' `id` \"x\" %s\n[alice] second\n");
	T_INTEQ(sh_out("head -c 1 .kamal/optimus-audit.log", out, sizeof(out)), 0);
	T_STREQ(out, "[");
	/* an empty command: the audit is its first part */
	prov_cmd_init(&c);
	rec_audit_cmd(&c, PROV_JOIN_AND, &ds, "bob", "third");
	T_INTEQ(transport_run_cmd(h.t, &c, &r), 0);
	cmd_result_release(&r);
	prov_cmd_release(&c);
	T_INTEQ(sh_out("wc -l < .kamal/optimus-audit.log", out, sizeof(out)), 0);
	T_STREQ(out, "3\n");
	home_leave(&h);
}

T_TEST(performer_from_git_config_or_user)
{
	char dir[64] = "/tmp/plumb-t-perf-XXXXXX", path[128];
	const char *old = getenv("HOME");
	char *saved = old ? xstrdup(old) : NULL, *p, *who;
	FILE *f;

	T_REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/.gitconfig", dir);
	f = fopen(path, "w");
	T_REQUIRE(f);
	fputs("[user]\n\temail = alice@example.com\n\tname = Alice Doe\n", f);
	fclose(f);
	setenv("HOME", dir, 1);
	setenv("XDG_CONFIG_HOME", dir, 1);
	p = rec_performer();
	who = rec_lock_who(0);
	T_STREQ(p, "alice@example.com");
	T_CHECKF(strlen(who) > 11 && strcmp(who + strlen(who) - 11, ") Alice Doe") == 0, "who: %s", who);
	free(p);
	free(who);
	unlink(path);
	p = rec_performer(); /* no git identity: the local user */
	T_CHECK(p && *p && !strchr(p, '\n'));
	T_CHECK(strcmp(p, "alice@example.com") != 0);
	free(p);
	rmdir(dir);
	if (saved)
		setenv("HOME", saved, 1);
	unsetenv("XDG_CONFIG_HOME");
	free(saved);
}

T_MAIN(T_CASE(encode64_is_rubys), T_CASE(details_text_and_who),
       T_CASE(decode_details_is_printable_and_bounded), T_CASE(stale_only_for_a_dead_plumb_here),
       T_CASE(acquire_status_release), T_CASE(kamal_lock_is_respected),
       T_CASE(status_passes_the_readonly_guard_acquire_does_not), T_CASE(audit_line_format),
       T_CASE(audit_cmd_appends_literally), T_CASE(performer_from_git_config_or_user))
