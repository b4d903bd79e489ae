/*
 * The watcher's HTTP listener (http.h).
 */
#include "reconciler/http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "state/util.h"

#define CONNECTIONS_MAX 32
#define CONNECTION_TIMEOUT_S 10

struct rec_http {
	struct MHD_Daemon *d;
	struct rec_http_opts o;
	int port;
};

/* One request's body, gathered as it arrives. */
struct req {
	struct sbuf body;
	int too_big;
};

int rec_http_signature_ok(const char *secret, const void *body, size_t len, const char *header)
{
	unsigned char mac[EVP_MAX_MD_SIZE], want[32];
	unsigned int maclen = 0;
	const char *hex;

	if (!secret || !header || strncmp(header, "sha256=", 7) != 0)
		return 0;
	hex = header + 7;
	if (strlen(hex) != 64)
		return 0;
	for (size_t i = 0; i < 32; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = hex[2 * i + (size_t)k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				return 0;
		}
		want[i] = (unsigned char)v;
	}
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, mac, &maclen) ||
	    maclen != 32)
		return 0;
	return CRYPTO_memcmp(mac, want, 32) == 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
			     const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
								 MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	rc = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code, const char *text)
{
	return reply(c, code, "text/plain; charset=utf-8", text);
}

/* Text from a callback: the callback's, freed here; NULL → 500. */
static enum MHD_Result reply_owned(struct MHD_Connection *c, const char *type, char *text)
{
	enum MHD_Result rc;

	if (!text)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
	rc = reply(c, MHD_HTTP_OK, type, text);
	free(text);
	return rc;
}

static enum MHD_Result webhook(struct rec_http *h, struct MHD_Connection *c, struct req *q)
{
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Hub-Signature-256");
	const char *event = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-GitHub-Event");
	const char *branch = h->o.branch ? h->o.branch : "main";
	json_t *j = NULL, *ref;
	char *want = NULL;
	enum MHD_Result rc;

	if (!h->o.webhook_secret)
		return reply_text(c, MHD_HTTP_NOT_FOUND, "no webhook configured\n");
	if (q->too_big)
		return reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "body too large\n");
	if (!rec_http_signature_ok(h->o.webhook_secret, q->body.buf ? q->body.buf : "", q->body.len,
				   sig))
		return reply_text(c, MHD_HTTP_UNAUTHORIZED, "bad or missing signature\n");
	if (event && strcmp(event, "ping") == 0)
		return reply_text(c, MHD_HTTP_OK, "pong\n");
	if (!event || strcmp(event, "push") != 0)
		return reply_text(c, MHD_HTTP_ACCEPTED, "ignored: not a push\n");
	j = json_loadb(q->body.buf ? q->body.buf : "", q->body.len, 0, NULL);
	ref = j ? json_object_get(j, "ref") : NULL;
	want = xasprintf("refs/heads/%s", branch);
	if (!json_is_string(ref)) {
		rc = reply_text(c, MHD_HTTP_BAD_REQUEST, "a push without a ref\n");
	} else if (strcmp(json_string_value(ref), want) != 0) {
		rc = reply_text(c, MHD_HTTP_ACCEPTED, "ignored: another branch\n");
	} else {
		if (h->o.trigger)
			h->o.trigger("webhook push", h->o.ctx);
		rc = reply_text(c, MHD_HTTP_ACCEPTED, "cycle started\n");
	}
	free(want);
	json_decref(j);
	return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct rec_http *h = cls;
	struct req *q = *con_cls;
	size_t max = h->o.max_body ? h->o.max_body : REC_HTTP_MAX_BODY;
	int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

	(void)version;
	if (!q) {
		q = xcalloc(1, sizeof(*q));
		sbuf_init(&q->body, 0);
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_size) {
		/* bounded: past max the rest is read and dropped */
		if (!q->too_big && q->body.len + *upload_size > max)
			q->too_big = 1;
		if (!q->too_big)
			sbuf_add(&q->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/webhook") == 0) {
		if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
			return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only\n");
		return webhook(h, c, q);
	}
	if (strcmp(url, "/healthz") != 0 && strcmp(url, "/status") != 0 && strcmp(url, "/metrics") != 0)
		return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
	if (!get)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
	if (strcmp(url, "/healthz") == 0)
		return !h->o.healthy || h->o.healthy(h->o.ctx)
			       ? reply_text(c, MHD_HTTP_OK, "ok\n")
			       : reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "unhealthy\n");
	if (strcmp(url, "/status") == 0)
		return reply_owned(c, "application/json",
				   h->o.status_json ? h->o.status_json(h->o.ctx) : NULL);
	return reply_owned(c, "text/plain; version=0.0.4; charset=utf-8",
			   h->o.metrics_text ? h->o.metrics_text(h->o.ctx) : NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (q) {
		sbuf_release(&q->body);
		free(q);
		*con_cls = NULL;
	}
}

/* "ADDR:PORT", "[V6]:PORT", ":PORT" → a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, int *v6, int *port)
{
	const char *colon;
	char host[64];
	char *end;
	long p;

	memset(ss, 0, sizeof(*ss));
	if (!s)
		return -1;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = '\0';
		colon = rb + 1;
		*v6 = 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return -1;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		*v6 = 0;
	}
	p = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || p < 0 || p > 65535)
		return -1;
	*port = (int)p;
	if (*v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((unsigned short)p);
		return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? 0 : -1;
	}
	{
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((unsigned short)p);
		if (!host[0]) {
			a->sin_addr.s_addr = htonl(INADDR_ANY);
			return 0;
		}
		return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
	}
}

int rec_http_start(struct rec_http **out, const struct rec_http_opts *o, struct plumb_err *err)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	struct rec_http *h;
	int v6 = 0, port = 0;

	*out = NULL;
	if (parse_listen(o->listen, &ss, &v6, &port) != 0)
		return plumb_err_set(err, PLUMB_EINVAL,
				     "--listen %s: not ADDR:PORT (127.0.0.1:9090, [::1]:9090, :9090)",
				     o->listen ? o->listen : "(none)");
	h = xcalloc(1, sizeof(*h));
	h->o = *o;
	h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | (v6 ? MHD_USE_IPv6 : 0),
				(uint16_t)port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR,
				(struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
				(unsigned)CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, completed,
				NULL, MHD_OPTION_END);
	if (!h->d) {
		free(h);
		return plumb_err_set(err, PLUMB_EUNAVAILABLE, "%s: cannot listen (address in use, or "
				     "not one of this machine's)", o->listen);
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : port;
	*out = h;
	return 0;
}

int rec_http_port(const struct rec_http *h)
{
	return h ? h->port : 0;
}

void rec_http_stop(struct rec_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}
