/* The one error space and its translator (err.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "state/err.h"

const char *plumb_strerror(int code)
{
	switch (code) {
	case PLUMB_OK: return "success";
	case PLUMB_ERROR: return "error";
	case PLUMB_ENOTFOUND: return "not found";
	case PLUMB_EINVAL: return "invalid argument";
	case PLUMB_ETIMEOUT: return "timed out";
	case PLUMB_EDEADLINE: return "run deadline reached";
	case PLUMB_ETRUNC: return "output too large (truncated)";
	case PLUMB_ETOOBIG: return "input over its size or count bound";
	case PLUMB_EUNREACHABLE: return "unreachable";
	case PLUMB_EHOSTKEY: return "host key not verified";
	case PLUMB_EAUTH: return "authentication failed";
	case PLUMB_ENOSTATUS: return "no exit status";
	case PLUMB_EDISCONNECT: return "disconnected";
	case PLUMB_EREFUSED: return "refused by the read-only guard";
	case PLUMB_ENETWORK: return "network error";
	case PLUMB_EOWNER: return "repository owned by another user";
	case PLUMB_EOUTSIDE: return "outside the repository or not a regular file";
	case PLUMB_EUNTRUSTED: return "refused in an untrusted run";
	case PLUMB_EUNAVAILABLE: return "value unavailable";
	case PLUMB_ECONFIG: return "invalid configuration";
	case PLUMB_EPROTOCOL: return "unexpected answer";
	case PLUMB_ELOCKED: return "deploy lock held";
	}
	return "unknown error";
}

int plumb_err_set(struct plumb_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

int plumb_err_prefix(struct plumb_err *e, const char *fmt, ...)
{
	char prefix[256], old[PLUMB_ERR_MSG_MAX];
	va_list ap;

	if (!e)
		return PLUMB_ERROR;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* a message cut at the carrier's size is still a message */
	if (snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix,
		     old[0] ? old : plumb_strerror(e->code)) < 0)
		e->msg[0] = '\0';
	return e->code;
}

const char *plumb_err_msg(const struct plumb_err *e)
{
	return e->msg[0] ? e->msg : plumb_strerror(e->code);
}

void plumb_err_reset(struct plumb_err *e)
{
	e->code = 0;
	e->msg[0] = '\0';
}
