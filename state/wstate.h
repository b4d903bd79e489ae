/*
 * A watcher's state directory (plumb watch, status, suspend, resume, retry).
 *
 * Layout, under one directory (0700, ours, not a link):
 *   status.json     the current status (struct ws_status), 0600
 *   history.jsonl   the last cycles, one JSON object per line, 0600
 *   watch.pid       the running watcher's pid, flock'd while it runs
 *   suspended       present while applying is suspended
 *   retry           present when a retry of the held revision was asked for
 *   git/            the git cache of the watched repository
 *
 * The protocol (git's lockfile.h is the model): every file is written to a
 * temporary file in the same directory, fsync'd, renamed over the old one,
 * and the directory fsync'd — a kill -9 at any moment leaves the previous
 * file or the new one, never a torn one; a temporary file left behind is
 * ignored (and replaced by the next write). Readers bound what they read
 * (WS_MAX_FILE) and check every type: a damaged file is an error naming the
 * file, never a crash. Lost, the state is rebuilt by the watcher from git and
 * the hosts (it is a record, not a source of truth).
 *
 * Nothing here knows a secret: callers put none in it (messages are plumb's,
 * already free of secret values).
 *
 * Errors: 0 or a negative PLUMB_E* code with err (may be NULL) set.
 */
#ifndef PLUMB_WSTATE_H
#define PLUMB_WSTATE_H

#include <stddef.h>

#include "state/err.h"

#define WS_MAX_FILE (4u << 20)
#define WS_HISTORY_KEEP 200

struct ws_host {
	char *host;
	int reachable;      /* 1 yes, 0 no, -1 unknown */
	char *sync;         /* "Synced", "OutOfSync", "Unknown" */
	char *health;       /* "Healthy", "Progressing", "Degraded", "Unknown" */
	char *version;      /* the app version it runs (primary role), or NULL */
	char *error;        /* why it could not be observed, or NULL */
};

/* Every string owned (ws_status_release); NULL = not known / none. */
struct ws_status {
	char *service, *destination, *repo, *branch;
	char *phase;        /* "starting", "idle", "applying", "waiting", "held",
			     * "suspended", "backoff", "stopped" */
	char *sync;         /* "Synced", "OutOfSync", "Unknown" */
	char *health;       /* "Healthy", "Progressing", "Degraded", "Unknown" */
	char *revision;     /* the branch's head at the last fetch */
	char *applied_revision, *applied_version; /* the last apply (or in-sync cycle) */
	double applied_at;  /* unix seconds, 0 = never */
	char *attempted_revision;
	double attempted_at;
	char *outcome;      /* the last cycle's: synced, applied, waiting, failed, held,
			     * suspended, error */
	char *last_error;
	char *waiting_reason;
	char *held_revision, *held_reason;
	char *lock_holder;  /* a deploy lock of someone else seen at the last cycle */
	unsigned long cycles;
	double last_cycle_ms;
	double updated_at;
	long pid;
	struct ws_host *hosts;
	size_t nhosts;
};

struct ws_cycle {
	char *revision, *version, *plan_hash, *summary, *outcome, *error;
	double started_at, duration_ms;
};

/* Creates dir (and its parents) 0700 if missing; refuses a link, another
 * owner, or a directory group or others may write to. */
int ws_open_dir(const char *dir, struct plumb_err *err);

int ws_status_write(const char *dir, const struct ws_status *st, struct plumb_err *err);
/* PLUMB_ENOTFOUND when there is none; st is cleared first in every case. */
int ws_status_read(const char *dir, struct ws_status *st, struct plumb_err *err);
void ws_status_release(struct ws_status *st);
/* The status as JSON text (indented); *out the caller's. 0 or -1. */
int ws_status_to_json(const struct ws_status *st, char **out);

/* Appends c, keeping the last keep (0: WS_HISTORY_KEEP) entries. */
int ws_history_append(const char *dir, const struct ws_cycle *c, size_t keep,
		      struct plumb_err *err);
/* The entries, oldest first (none: *n = 0, returns 0). Lines that do not
 * parse are skipped (a torn last line cannot happen, see above). */
int ws_history_read(const char *dir, struct ws_cycle **out, size_t *n, struct plumb_err *err);
void ws_cycles_free(struct ws_cycle *c, size_t n);

/* $PLUMB_STATE_DIR, else $XDG_STATE_HOME/plumb, else $HOME/.local/state/plumb
 * (static storage; "./.plumb-state" when none is set). */
const char *ws_default_dir(void);

/* Takes watch.pid for this process (an flock held until it exits) and writes
 * its pid: PLUMB_ELOCKED, naming the holder's pid, when another watcher runs
 * on this directory. */
int ws_pid_write(const char *dir, struct plumb_err *err);
/* The running watcher's pid (its flock is held), else 0. */
long ws_pid_read(const char *dir);

int ws_suspended(const char *dir);
int ws_set_suspended(const char *dir, int on, struct plumb_err *err);
/* 1 when a retry was asked for; the request is consumed. */
int ws_take_retry(const char *dir);
int ws_request_retry(const char *dir, struct plumb_err *err);

#endif
