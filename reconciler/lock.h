/*
 * Kamal's deploy lock and audit log, on the hosts, in Kamal's formats, so
 * that Kamal and plumb exclude each other and read each other's records
 * (../shared/kamal/BEHAVIOUR.md, "Lock, audit, state on the host").
 *
 * The lock is the directory .kamal/lock-<service>[-<dest>] under the SSH
 * user's home on the PRIMARY host (the first host of the primary role):
 * `mkdir` is atomic, an existing directory means "held". Inside, `details`
 * holds Ruby's Base64.encode64 (60-column lines) of
 *     Locked by: <who> at <UTC ISO 8601 time>
 *     Version: <version>
 *     Message: <message>
 * followed by a newline, exactly as `kamal lock acquire` writes it, so
 * `kamal lock status` decodes plumb's lock and plumb decodes Kamal's. plumb's
 * <who> is "plumb (pid <pid> on <this machine's hostname>) <user>" for a
 * lock a run holds while it works (rec_lock_acquire), which is what lets a
 * later run tell a lock left by a plumb that died (kill -9) on this machine:
 * see rec_lock_status. A lock taken by hand (`plumb lock acquire`) outlives
 * its process by design: it says "plumb (by hand on <hostname>) <user>" and
 * is never stale.
 *
 * Every function takes the transport of the primary host (fleet_writer for
 * acquire and release; status also runs through the read-only guard) and
 * runs ONE command on it. Strings read from the host are hostile: details
 * are bounded (REC_LOCK_DETAILS_MAX), decoded, and reduced to printable
 * text before they reach a message.
 *
 * Errors: 0 or a negative PLUMB_E* code (state/err.h) with the message in
 * err (the caller's carrier, may be NULL).
 */
#ifndef PLUMB_REC_LOCK_H
#define PLUMB_REC_LOCK_H

#include <stddef.h>

#include "providers/quote.h"
#include "providers/transport.h"
#include "state/desired.h"
#include "state/err.h"

/* Kamal's message for the lock a deploy takes; `kamal deploy --lock-wait`
 * waits for a lock with this message (and gives up on any other). */
#define REC_LOCK_AUTO_MESSAGE "Automatic deploy lock"
/* Bytes of a lock's decoded details kept (the host may hold anything). */
#define REC_LOCK_DETAILS_MAX 4096

/* "lock-<service>[-<dest>]" (the directory's name under .kamal); caller frees. */
char *rec_lock_name(const struct desired *ds);
/* The same from the names (service required, destination NULL or "" = none). */
char *rec_lock_name_for(const char *service, const char *destination);

/*
 * Takes the lock: `mkdir -p .kamal`, `mkdir .kamal/<lock_name>` and the
 * details file, in one round trip. version and message may be NULL ("").
 * Returns 0 when taken; PLUMB_ELOCKED when the directory already exists
 * (nothing is changed; err names the holder from its details, escaped, and
 * says "stale" when rec_lock_status would);
 * another code when the command could not run or mkdir failed otherwise.
 * If the details cannot be written, the directory is removed again.
 */
int rec_lock_acquire(struct transport *t, const char *lock_name, const char *version,
		     const char *message, struct plumb_err *err);
/* The same, naming who as given (rec_lock_who(1) for a lock taken by hand). */
int rec_lock_acquire_as(struct transport *t, const char *lock_name, const char *who,
			const char *version, const char *message, struct plumb_err *err);

/*
 * The same in two halves, for a caller that sends the lock in front of other
 * work in one command (the executor, in the primary host's first command of
 * an apply): rec_lock_acquire_cmd appends the taking to c (joined by join),
 * followed by a marker, so that what is chained after it with && runs only
 * once the lock is taken; rec_lock_acquire_read reads the result of that
 * command: *taken says whether the lock was taken (then the caller must
 * release it, whatever the rest of the command did) and the return is 0, or
 * as rec_lock_acquire's when it was not taken.
 */
int rec_lock_acquire_cmd(struct prov_cmd *c, enum prov_join join, const char *lock_name,
			 const char *who, const char *version, const char *message,
			 struct plumb_err *err);
int rec_lock_acquire_read(struct transport *t, const char *lock_name, const struct cmd_result *r,
			  int *taken, struct plumb_err *err);

/*
 * Releases the lock as Kamal does: removes `details`, then the directory
 * (rmdir: anything else put inside makes it fail rather than be deleted).
 * Whoever holds it (Kamal's `lock release` does not ask either). Returns 0,
 * PLUMB_ENOTFOUND when there is no lock (nothing changed), or another code.
 */
int rec_lock_release(struct transport *t, const char *lock_name, struct plumb_err *err);

struct rec_lock_status {
	int held;       /* the lock directory exists */
	char *details;  /* its decoded details, printable (control bytes as '?'), at most
			 * REC_LOCK_DETAILS_MAX bytes; NULL when not held; "(details
			 * unreadable)" when held without readable details. Owned. */
	int plumb;      /* the holder is plumb (its "Locked by: plumb (pid N on H)" form) */
	long pid;       /* plumb's pid when plumb, else 0 */
	char *host;     /* the machine plumb ran on when plumb, else NULL. Owned. */
	int stale;      /* held by plumb on THIS machine with a pid that is not alive
			 * (kill(pid, 0) fails with ESRCH): safe to release */
};
void rec_lock_status_release(struct rec_lock_status *s);

/*
 * Reads the lock (one read-only command: test, echo, cat under .kamal). *out
 * is filled in every case (release it). 0, or a code when the host could
 * not be asked.
 */
int rec_lock_status(struct transport *t, const char *lock_name, struct rec_lock_status *out,
		    struct plumb_err *err);

/* ---- the parts, exposed for tests ---- */

/* Who holds a lock plumb takes: "plumb (pid <pid> on <hostname>) <user>", or
 * by_hand: "plumb (by hand on <hostname>) <user>"; caller frees. <user> is
 * `git config user.name` (as Kamal's), else the local user. */
char *rec_lock_who(int by_hand);
/* The details text (before base64) for who at time t (UTC); caller frees. */
char *rec_lock_details_text(const char *who, long long t, const char *version, const char *message);
/* Ruby's Base64.encode64: 60 characters per line, every line ends in "\n"; caller frees. */
char *rec_lock_encode64(const void *data, size_t len);
/* Decodes the content of a details file into printable text (as status does);
 * NULL when it is not base64. Caller frees. */
char *rec_lock_decode_details(const char *b64, size_t len);
/*
 * Parses decoded details: when "Locked by: plumb (pid N on H) …", sets
 * plumb, pid, host (owned) and stale (H is this machine's hostname and pid
 * N is not alive). Other holders leave them 0/NULL.
 */
void rec_lock_parse_holder(struct rec_lock_status *s);

/* ---- signals: the executor stops between steps and releases the lock ---- */

/*
 * Takes SIGINT and SIGTERM for the run: the first one only sets a flag
 * (rec_interrupted), so the executor stops between steps and releases the
 * lock on its normal path; a second one gets the default action (the
 * process ends), so a stuck run can still be stopped. Both signals are
 * blocked in the calling thread and every thread it creates afterwards,
 * and taken by one thread of their own (sigwait): a command in flight is
 * never interrupted. Call it once, before starting worker threads; calling
 * it again does nothing. (Children started by providers/run.h get the
 * default mask back.)
 */
void rec_signals_install(void);
/* The signal received since install (SIGINT or SIGTERM), or 0. */
int rec_interrupted(void);
/* Forgets a received signal (tests; a daemon between runs). */
void rec_signals_reset(void);

/* ---- audit ---- */

/*
 * Appends to c (joined to what c holds by join; the first command of an
 * empty c ignores it) the command that adds one line to
 * .kamal/<service>[-<dest>]-audit.log on the host it runs on, after
 * `mkdir -p .kamal`, as Kamal's auditor does:
 *     [<UTC ISO time>] [<performer>] [<destination, if any>] <text>
 * Kamal adds a role as one more tag ("[web] Booted…"): pass it at the
 * start of text. Control bytes of performer and text become spaces (one
 * line per record). The line travels as an argument of a constant script
 * (sh -c 'mkdir -p .kamal && printf "%s\n" "$1" >> "$2"' sh LINE PATH),
 * never as shell syntax.
 */
void rec_audit_cmd(struct prov_cmd *c, enum prov_join join, const struct desired *ds,
		   const char *performer, const char *text);
/* The line itself, for time t (UTC), without the newline; caller frees. */
char *rec_audit_line(const char *destination, const char *performer, long long t, const char *text);
/* ".kamal/<service>[-<dest>]-audit.log"; caller frees. */
char *rec_audit_path(const char *service, const char *destination);

/*
 * Who performs, as Kamal records it in the audit log and KAMAL_PERFORMER:
 * `git config user.email` (the global/system git configuration, read with
 * libgit2), else the local user's name, else "unknown". Caller frees.
 */
char *rec_performer(void);

#endif
