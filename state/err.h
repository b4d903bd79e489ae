/*
 * plumb's one error space (OpenSSH's ssherr.h is the model).
 *
 * Every function of the library that can fail returns 0 or one negative
 * code from this list; no module defines codes of its own, so a code means
 * the same thing wherever it comes from and no two codes collide.
 * plumb_strerror() is the one translator from a code to words.
 *
 * The message that goes with a failure travels in a struct plumb_err that
 * the caller owns (usually on its stack): the callee fills it with
 * plumb_err_set(), which returns the code so a callee can write
 *     return plumb_err_set(e, PLUMB_ENOTFOUND, "%s: no such file", path);
 * Messages name the thing and the cause; they never contain a secret value
 * (callers pass names, never values) and are plain text: escape them with
 * the human-output escaper when printing (a message may quote a repository
 * or host string).
 *
 * Configuration loading keeps its richer carrier (struct diags: every error
 * at once, each with file:line:column); its functions return codes from this
 * space too.
 */
#ifndef PLUMB_ERR_H
#define PLUMB_ERR_H

#include <stddef.h>

#include "state/util.h"

enum plumb_code {
	PLUMB_OK = 0,
	PLUMB_ERROR = -1,       /* anything not listed below; see the message */
	PLUMB_ENOTFOUND = -2,   /* a file, ref, tag or image that does not exist */
	PLUMB_EINVAL = -3,      /* invalid argument or input (bad option, NUL in an argument) */
	PLUMB_ETIMEOUT = -4,    /* a command, connection or request took too long */
	PLUMB_EDEADLINE = -5,   /* the run's overall deadline passed */
	PLUMB_ETRUNC = -6,      /* output over its size bound; what was read is kept */
	PLUMB_ETOOBIG = -7,     /* input over a size or count bound; nothing was used */
	PLUMB_EUNREACHABLE = -8, /* could not connect (refused, no route, connect timeout) */
	PLUMB_EHOSTKEY = -9,    /* host key unknown, changed or unverifiable */
	PLUMB_EAUTH = -10,      /* credentials missing or refused */
	PLUMB_ENOSTATUS = -11,  /* a command ended without an exit status (framing lost) */
	PLUMB_EDISCONNECT = -12, /* a session broke during a command */
	PLUMB_EREFUSED = -13,   /* the read-only guard refused a command */
	PLUMB_ENETWORK = -14,   /* network or TLS failure talking to a server */
	PLUMB_EOWNER = -15,     /* a local repository owned by another user */
	PLUMB_EOUTSIDE = -16,   /* a path that leaves the repository, or is not a regular file */
	PLUMB_EUNTRUSTED = -17, /* refused because the run is untrusted */
	PLUMB_EUNAVAILABLE = -18, /* a value (secret, ENV) this run could not compute */
	PLUMB_ECONFIG = -19,    /* the configuration is invalid (see the diagnostics) */
	PLUMB_EPROTOCOL = -20,  /* a server or host answered in a form we do not accept */
	PLUMB_ELOCKED = -21,    /* the deploy lock is held by someone else */
	PLUMB_ECODE_MIN = -21
};

/* Words for a code ("timed out", "not found", …); never NULL. */
const char *plumb_strerror(int code);

#define PLUMB_ERR_MSG_MAX 1024

/*
 * A failure's code and message. Zeroed = no error. Owned by the caller
 * (usually on its stack) and passed down as `struct plumb_err *err`, which
 * callees accept as NULL; the message lives inside the struct, so there is
 * nothing to free, and a message longer than PLUMB_ERR_MSG_MAX - 1 bytes is
 * cut, never overflowed.
 */
struct plumb_err {
	int code;
	char msg[PLUMB_ERR_MSG_MAX];
};

/* Records code and a printf message in e (if e is not NULL); returns code. */
int plumb_err_set(struct plumb_err *e, int code, const char *fmt, ...) PLUMB_PRINTF(3, 4);
/* Prefixes e's message with "prefix: " (keeps the code); returns e->code. */
int plumb_err_prefix(struct plumb_err *e, const char *fmt, ...) PLUMB_PRINTF(2, 3);
/* e's message, or plumb_strerror(e->code) when it has none. */
const char *plumb_err_msg(const struct plumb_err *e);
/* Forget a previous error. */
void plumb_err_reset(struct plumb_err *e);

#endif
