/*
 * Notifications: on a failed rollout, a held revision, drift healed,
 * recovery (and an apply), a JSON message POSTed to each configured URL
 * (libcurl) — one that Slack and Discord incoming webhooks both take:
 *   {"text": …, "content": …, "event": …, "service": …, "revision": …}
 * (Slack reads text, Discord content).
 *
 * Posting never blocks the caller: messages go to a bounded queue (the
 * oldest dropped, and counted, when it is full) that one thread of the
 * notifier's empties, each POST with a timeout, retried with backoff on a
 * network error, 429 (Retry-After honoured, capped) and 5xx; another 4xx is
 * not retried. Only http and https. A URL often embeds a token: it is never
 * printed whole (scheme://host/… only). The text is the caller's: never a
 * secret in it.
 */
#ifndef PLUMB_NOTIFY_H
#define PLUMB_NOTIFY_H

#include <stddef.h>

#include "state/err.h"

#define REC_NOTIFY_QUEUE_MAX 64

enum rec_event {
	REC_EV_FAILED,
	REC_EV_HELD,
	REC_EV_DRIFT_HEALED,
	REC_EV_RECOVERED,
	REC_EV_APPLIED,
};

struct rec_notifier;

/* urls are copied. timeout_ms per attempt (0: 10 s), retries after the first
 * attempt (0: none). PLUMB_EINVAL for a URL that is not http(s). */
int rec_notifier_new(struct rec_notifier **out, const char *const *urls, size_t n, int timeout_ms,
		     int retries, struct plumb_err *err);
/* Queues the message for every URL. revision may be NULL. */
void rec_notify(struct rec_notifier *nf, enum rec_event ev, const char *service,
		const char *revision, const char *text);
/* Messages delivered (2xx), given up on, and dropped from a full queue. */
void rec_notifier_counts(struct rec_notifier *nf, unsigned long *sent, unsigned long *failed,
			 unsigned long *dropped);
/* Sends what is queued for at most drain_ms more, then stops; NULL fine. */
void rec_notifier_free(struct rec_notifier *nf, int drain_ms);
/* "scheme://host/…": a URL as it may be printed; caller frees. */
char *rec_notify_redact(const char *url);
const char *rec_event_name(enum rec_event ev);

#endif
