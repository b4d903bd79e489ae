/*
 * plumb status: what the watcher's state directory says (state/wstate.h), at
 * a glance, like `flux get` or `argocd app get`; and plumb suspend, resume
 * and retry, which leave a word in that directory for the watcher and wake
 * it (SIGHUP). None of them contacts a host.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconciler/cli.h"
#include "state/escape.h"
#include "state/wstate.h"

static int parse(int argc, char **argv, const char *cmd, const char **dir, int *json, long *nhist)
{
	*dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
			*dir = argv[++i];
		} else if (strncmp(argv[i], "--state-dir=", 12) == 0) {
			*dir = argv[i] + 12;
		} else if (json && strcmp(argv[i], "--json") == 0) {
			*json = 1;
		} else if (nhist && strcmp(argv[i], "--history") == 0 && i + 1 < argc) {
			char *end;
			*nhist = strtol(argv[++i], &end, 10);
			if (*end || *nhist < 0) {
				fprintf(stderr, "plumb %s: --history N: a count\n", cmd);
				return -1;
			}
		} else {
			esc_eprintf("plumb %s: unknown argument '%s'\n", cmd, argv[i]);
			rec_print_usage(rec_find_command(cmd), stderr);
			return -1;
		}
	}
	if (!*dir)
		*dir = ws_default_dir();
	return 0;
}

/* "3m ago" for a unix time; "never" for 0. */
static void ago(char *buf, size_t n, double t)
{
	double d = (double)time(NULL) - t;

	if (t <= 0)
		snprintf(buf, n, "never");
	else if (d < 90)
		snprintf(buf, n, "%.0fs ago", d < 0 ? 0 : d);
	else if (d < 90 * 60)
		snprintf(buf, n, "%.0fm ago", d / 60);
	else if (d < 48 * 3600)
		snprintf(buf, n, "%.0fh ago", d / 3600);
	else
		snprintf(buf, n, "%.0fd ago", d / 86400);
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static void show(const struct ws_status *st, const struct ws_cycle *cs, size_t n, long nhist,
		 long running)
{
	char a[32];

	esc_fprintf(stdout, "%s%s%s  %s  %s\n", or_dash(st->service), st->destination ? "-" : "",
		    st->destination ? st->destination : "", or_dash(st->sync), or_dash(st->health));
	esc_fprintf(stdout, "  source:     %s (%s)\n", or_dash(st->repo), or_dash(st->branch));
	esc_fprintf(stdout, "  revision:   %.12s\n", or_dash(st->revision));
	ago(a, sizeof(a), st->applied_at);
	esc_fprintf(stdout, "  applied:    %.12s, version %s (%s)\n", or_dash(st->applied_revision),
		    or_dash(st->applied_version), a);
	ago(a, sizeof(a), st->attempted_at);
	esc_fprintf(stdout, "  last cycle: %s at %.12s (%s, %.0f ms; %lu cycles)\n", or_dash(st->outcome),
		    or_dash(st->attempted_revision), a, st->last_cycle_ms, st->cycles);
	esc_fprintf(stdout, "  phase:      %s%s\n", or_dash(st->phase),
		    running ? "" : " (no watcher running)");
	if (st->waiting_reason)
		esc_fprintf(stdout, "  waiting:    %s\n", st->waiting_reason);
	if (st->held_revision)
		esc_fprintf(stdout, "  held:       %.12s: %s (plumb retry)\n", st->held_revision,
			    or_dash(st->held_reason));
	if (st->last_error)
		esc_fprintf(stdout, "  error:      %s\n", st->last_error);
	if (st->lock_holder)
		esc_fprintf(stdout, "  lock:       %s\n", st->lock_holder);
	if (st->nhosts) {
		printf("\n  %-24s %-10s %-10s %-12s %-14s %s\n", "HOST", "REACHABLE", "SYNC", "HEALTH",
		       "VERSION", "ERROR");
		for (size_t i = 0; i < st->nhosts; i++) {
			const struct ws_host *h = &st->hosts[i];
			esc_fprintf(stdout, "  %-24s %-10s %-10s %-12s %-14.14s %s\n", or_dash(h->host),
				    h->reachable == 1 ? "yes" : h->reachable == 0 ? "no" : "unknown",
				    or_dash(h->sync), or_dash(h->health), or_dash(h->version),
				    h->error ? h->error : "");
		}
	}
	if (n && nhist) {
		printf("\n  %-8s %-12s %-14s %-10s %s\n", "WHEN", "REVISION", "VERSION", "OUTCOME", "SUMMARY");
		for (size_t i = n > (size_t)nhist ? n - (size_t)nhist : 0; i < n; i++) {
			ago(a, sizeof(a), cs[i].started_at);
			esc_fprintf(stdout, "  %-8s %-12.12s %-14.14s %-10s %s%s%s\n", a, or_dash(cs[i].revision),
				    or_dash(cs[i].version), or_dash(cs[i].outcome), or_dash(cs[i].summary),
				    cs[i].error ? ": " : "", cs[i].error ? cs[i].error : "");
		}
	}
}

int cmd_status(int argc, char **argv)
{
	struct ws_status st;
	struct ws_cycle *cs = NULL;
	struct plumb_err err = { 0 };
	const char *dir;
	size_t n = 0;
	long nhist = 5, running;
	int json = 0, rc;

	if (parse(argc, argv, "status", &dir, &json, &nhist) != 0)
		return REC_EXIT_ERROR;
	rc = ws_status_read(dir, &st, &err);
	if (rc == PLUMB_ENOTFOUND) {
		esc_eprintf("plumb status: no watcher state in %s (plumb watch --state-dir)\n", dir);
		return REC_EXIT_ERROR;
	}
	if (rc != 0) {
		esc_eprintf("plumb status: %s\n", plumb_err_msg(&err));
		return REC_EXIT_ERROR;
	}
	if (ws_history_read(dir, &cs, &n, &err) != 0)
		esc_eprintf("plumb status: history: %s\n", plumb_err_msg(&err));
	running = ws_pid_read(dir);
	if (json) {
		char *text = NULL;
		if (ws_status_to_json(&st, &text) == 0)
			printf("%s\n", text);
		free(text);
	} else {
		show(&st, cs, n, nhist, running);
	}
	ws_cycles_free(cs, n);
	ws_status_release(&st);
	return rec_finish_stdout(REC_EXIT_OK);
}

/* suspend / resume / retry: the word, then a SIGHUP to the watcher. */
static int control(int argc, char **argv, const char *cmd)
{
	struct plumb_err err = { 0 };
	const char *dir;
	long pid;
	int rc;

	if (parse(argc, argv, cmd, &dir, NULL, NULL) != 0)
		return REC_EXIT_ERROR;
	if ((rc = ws_open_dir(dir, &err)) == 0) {
		if (strcmp(cmd, "retry") == 0)
			rc = ws_request_retry(dir, &err);
		else
			rc = ws_set_suspended(dir, strcmp(cmd, "suspend") == 0, &err);
	}
	if (rc != 0) {
		esc_eprintf("plumb %s: %s\n", cmd, plumb_err_msg(&err));
		return REC_EXIT_ERROR;
	}
	pid = ws_pid_read(dir);
	if (pid > 0 && kill((pid_t)pid, SIGHUP) == 0)
		esc_fprintf(stdout, "%s: done; the watcher (pid %ld) acts on it now\n", cmd, pid);
	else
		esc_fprintf(stdout, "%s: done; no watcher runs on %s: it takes effect at its next start\n",
			    cmd, dir);
	return rec_finish_stdout(REC_EXIT_OK);
}

int cmd_suspend(int argc, char **argv)
{
	return control(argc, argv, "suspend");
}

int cmd_resume(int argc, char **argv)
{
	return control(argc, argv, "resume");
}

int cmd_retry(int argc, char **argv)
{
	return control(argc, argv, "retry");
}
