/*
 * The watcher's HTTP listener (libmicrohttpd): GET /healthz, GET /status
 * (JSON), GET /metrics (Prometheus text), POST /webhook (GitHub push events).
 *
 * The webhook: the raw body (at most max_body bytes, else 413 and nothing
 * runs) is verified before anything else against `X-Hub-Signature-256:
 * sha256=<hex>` = HMAC-SHA256(secret, body), compared in constant time; a
 * missing or wrong signature is 401 and nothing runs. Then X-GitHub-Event:
 * ping → 200; push to refs/heads/<branch> → trigger() and 202; another event
 * or branch → 202 "ignored". Response bodies are fixed strings: never the
 * secret, never the request.
 *
 * Threads: one internal thread serves every connection (bounded in number
 * and time), so the callbacks are never called concurrently with each other;
 * they run concurrently with the caller's own threads.
 */
#ifndef PLUMB_HTTP_H
#define PLUMB_HTTP_H

#include <stddef.h>

#include "state/err.h"

#define REC_HTTP_MAX_BODY (1u << 20)

struct rec_http_opts {
	const char *listen;         /* "127.0.0.1:8080", "[::1]:9000", ":8080" (every address);
				     * port 0: any free port (rec_http_port) */
	const char *webhook_secret; /* SECRET, borrowed for the listener's life; NULL = no
				     * webhook (404) */
	const char *branch;         /* pushes to refs/heads/<branch> trigger; NULL = "main" */
	size_t max_body;            /* 0 = REC_HTTP_MAX_BODY */
	/* Each returns text the listener frees, or NULL (500). */
	char *(*status_json)(void *ctx);
	char *(*metrics_text)(void *ctx);
	int (*healthy)(void *ctx);  /* /healthz: 200 when non-zero, else 503 */
	void (*trigger)(const char *why, void *ctx); /* quick: set a flag, wake the loop */
	void *ctx;
};

struct rec_http;

int rec_http_start(struct rec_http **out, const struct rec_http_opts *o, struct plumb_err *err);
int rec_http_port(const struct rec_http *h);
/* Stops serving (waits for the thread); NULL is fine. */
void rec_http_stop(struct rec_http *h);

/* "sha256=<hex>" is HMAC-SHA256(secret, body): 1, else 0 (constant time in
 * the digest compare). Exposed for tests. */
int rec_http_signature_ok(const char *secret, const void *body, size_t len, const char *header);

#endif
