/*
 * The watcher's listener (reconciler/http.h), its metrics text
 * (reconciler/metrics.h) and notifications (reconciler/notify.h), over real
 * sockets on 127.0.0.1: a signed push starts a cycle, a bad or missing
 * signature is 401 and starts nothing, bounds hold, the metrics text parses
 * (promtool when installed, and a strict check here), notifications are
 * retried on 5xx and not on other 4xx.
 */
#include <curl/curl.h>
#include <microhttpd.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reconciler/http.h"
#include "reconciler/metrics.h"
#include "reconciler/notify.h"
#include "state/util.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#define SECRET "unit-webhook-secret"

static int triggers;
static char last_why[64];

static char *status_cb(void *ctx)
{
	(void)ctx;
	return xstrdup("{\"sync\": \"Synced\"}");
}

static char *metrics_cb(void *ctx)
{
	(void)ctx;
	return xstrdup("# HELP x y\n# TYPE x gauge\nx 1\n");
}

static int healthy_cb(void *ctx)
{
	return *(int *)ctx;
}

static void trigger_cb(const char *why, void *ctx)
{
	(void)ctx;
	triggers++;
	snprintf(last_why, sizeof(last_why), "%s", why);
}

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
	sbuf_add(ud, p, s * n);
	return s * n;
}

/* method url [body] [signature header value] [event] -> status code; body in *out */
static long req(int port, const char *method, const char *path, const char *body, const char *sig,
		const char *event, char **out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hs = NULL;
	struct sbuf sb;
	char *url = xasprintf("http://127.0.0.1:%d%s", port, path), *h;
	long code = 0;

	sbuf_init(&sb, 0);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (sig) {
		h = xasprintf("X-Hub-Signature-256: %s", sig);
		hs = curl_slist_append(hs, h);
		free(h);
	}
	if (event) {
		h = xasprintf("X-GitHub-Event: %s", event);
		hs = curl_slist_append(hs, h);
		free(h);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sb);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hs);
	curl_easy_cleanup(c);
	free(url);
	if (out)
		*out = sbuf_detach(&sb);
	else
		sbuf_release(&sb);
	return code;
}

static char *sign(const char *body)
{
	unsigned char mac[32];
	unsigned int len = 0;
	char *out = xmalloc(7 + 64 + 1);

	HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)body, strlen(body), mac,
	     &len);
	strcpy(out, "sha256=");
	for (int i = 0; i < 32; i++)
		sprintf(out + 7 + 2 * i, "%02x", mac[i]);
	return out;
}

T_TEST(signature_check)
{
	char *s = sign("body");

	T_INTEQ(rec_http_signature_ok(SECRET, "body", 4, s), 1);
	T_INTEQ(rec_http_signature_ok(SECRET, "bodx", 4, s), 0);
	T_INTEQ(rec_http_signature_ok("other", "body", 4, s), 0);
	s[7] = s[7] == 'a' ? 'b' : 'a';
	T_INTEQ(rec_http_signature_ok(SECRET, "body", 4, s), 0);
	T_INTEQ(rec_http_signature_ok(SECRET, "body", 4, "sha256=zz"), 0);
	T_INTEQ(rec_http_signature_ok(SECRET, "body", 4, NULL), 0);
	T_INTEQ(rec_http_signature_ok(SECRET, "body", 4, "sha1=abcd"), 0);
	free(s);
}

T_TEST(listener_routes_and_webhook)
{
	struct rec_http_opts o = { 0 };
	struct rec_http *h = NULL;
	struct plumb_err err = { 0 };
	const char *push = "{\"ref\":\"refs/heads/main\"}", *other = "{\"ref\":\"refs/heads/dev\"}";
	char *s, *body = NULL, *big;
	int healthy = 1, port;

	o.listen = "127.0.0.1:0";
	o.webhook_secret = SECRET;
	o.branch = "main";
	o.max_body = 4096;
	o.status_json = status_cb;
	o.metrics_text = metrics_cb;
	o.healthy = healthy_cb;
	o.trigger = trigger_cb;
	o.ctx = &healthy;
	T_REQUIRE(rec_http_start(&h, &o, &err) == 0);
	port = rec_http_port(h);
	T_REQUIRE(port > 0);
	T_INTEQ(req(port, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
	healthy = 0;
	T_INTEQ(req(port, "GET", "/healthz", NULL, NULL, NULL, NULL), 503);
	T_INTEQ(req(port, "GET", "/status", NULL, NULL, NULL, &body), 200);
	T_CONTAINS(body, "Synced");
	free(body);
	T_INTEQ(req(port, "GET", "/metrics", NULL, NULL, NULL, NULL), 200);
	T_INTEQ(req(port, "GET", "/nope", NULL, NULL, NULL, NULL), 404);
	T_INTEQ(req(port, "POST", "/status", "x", NULL, NULL, NULL), 405);
	T_INTEQ(req(port, "GET", "/webhook", NULL, NULL, NULL, NULL), 405);

	/* bad, missing, or over another body: 401, nothing runs */
	s = sign(other);
	T_INTEQ(req(port, "POST", "/webhook", push, s, "push", &body), 401);
	T_NOT_CONTAINS(body, SECRET);
	free(body);
	free(s);
	T_INTEQ(req(port, "POST", "/webhook", push, NULL, "push", NULL), 401);
	T_INTEQ(req(port, "POST", "/webhook", push, "sha256=00", "push", NULL), 401);
	T_INTEQ(triggers, 0);
	/* a push to another branch: accepted, ignored */
	s = sign(other);
	T_INTEQ(req(port, "POST", "/webhook", other, s, "push", NULL), 202);
	free(s);
	T_INTEQ(triggers, 0);
	s = sign(push);
	T_INTEQ(req(port, "POST", "/webhook", push, s, "ping", NULL), 200);
	T_INTEQ(triggers, 0);
	T_INTEQ(req(port, "POST", "/webhook", push, s, "push", NULL), 202);
	T_INTEQ(triggers, 1);
	free(s);
	/* over max_body: 413, even signed */
	big = xmalloc(8193);
	memset(big, 'a', 8192);
	big[8192] = '\0';
	s = sign(big);
	T_INTEQ(req(port, "POST", "/webhook", big, s, "push", NULL), 413);
	T_INTEQ(triggers, 1);
	free(s);
	free(big);
	rec_http_stop(h);
	/* no secret configured: no webhook */
	o.webhook_secret = NULL;
	T_REQUIRE(rec_http_start(&h, &o, &err) == 0);
	s = sign(push);
	T_INTEQ(req(rec_http_port(h), "POST", "/webhook", push, s, "push", NULL), 404);
	free(s);
	rec_http_stop(h);
	T_CHECK(rec_http_start(&h, &(struct rec_http_opts){ .listen = "nonsense" }, &err) ==
		PLUMB_EINVAL);
}

/* A strict reading of the text format: HELP/TYPE before samples, one TYPE
 * per family, samples `name{k="v",…} value`, escapes only \\ \" \n. */
static int strict_ok(const char *text, char *why, size_t n)
{
	char typed[64][96];
	size_t ntyped = 0;
	const char *p = text;

	while (*p) {
		const char *e = strchr(p, '\n');
		char line[1024];
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len >= sizeof(line))
			return snprintf(why, n, "line too long"), 0;
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (e ? 1 : 0);
		if (!*line)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char fam[96], type[32];
			if (sscanf(line + 7, "%95s %31s", fam, type) != 2)
				return snprintf(why, n, "bad TYPE: %s", line), 0;
			for (size_t i = 0; i < ntyped; i++)
				if (strcmp(typed[i], fam) == 0)
					return snprintf(why, n, "second TYPE for %s", fam), 0;
			if (ntyped < 64)
				strcpy(typed[ntyped++], fam);
			continue;
		}
		if (line[0] == '#')
			continue;
		{
			size_t k = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
			char name[96];
			const char *q = line + k;
			int found = 0;
			if (!k || k >= sizeof(name))
				return snprintf(why, n, "bad name: %s", line), 0;
			memcpy(name, line, k);
			name[k] = '\0';
			for (size_t i = 0; i < ntyped; i++)
				found |= strncmp(name, typed[i], strlen(typed[i])) == 0;
			if (!found)
				return snprintf(why, n, "no TYPE before %s", name), 0;
			if (*q == '{') {
				q++;
				while (*q != '}') {
					q += strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
					if (*q++ != '=' || *q++ != '"')
						return snprintf(why, n, "bad label: %s", line), 0;
					while (*q && *q != '"') {
						if (*q == '\\') {
							q++;
							if (*q != '\\' && *q != '"' && *q != 'n')
								return snprintf(why, n, "bad escape: %s", line), 0;
						}
						q++;
					}
					if (*q++ != '"')
						return snprintf(why, n, "unterminated: %s", line), 0;
					if (*q == ',')
						q++;
					else if (*q != '}')
						return snprintf(why, n, "bad labels: %s", line), 0;
				}
				q++;
			}
			if (*q++ != ' ')
				return snprintf(why, n, "no value: %s", line), 0;
			{
				char *end;
				strtod(q, &end);
				if (end == q || (*end && *end != ' '))
					return snprintf(why, n, "bad value: %s", line), 0;
			}
		}
	}
	return 1;
}

T_TEST(metrics_text_parses)
{
	struct rec_metrics_hist hist = { 0 };
	struct rec_metrics_host hosts[] = { { "h1", 1, 1 }, { "evil\"host\\\nname", 0, 0 } };
	struct rec_metrics m = { 0 };
	char why[256] = "", *text, *dir, *f;

	rec_metrics_observe(&hist, 0.07);
	rec_metrics_observe(&hist, 3);
	m.service = "optimus";
	m.cycles_synced = 10;
	m.cycles_applied = 2;
	m.cycle = &hist;
	m.hosts = hosts;
	m.nhosts = 2;
	m.held_revision = "abc";
	text = rec_metrics_render(&m);
	T_CHECKF(strict_ok(text, why, sizeof(why)), "%s", why);
	T_CONTAINS(text, "plumb_cycles_total{service=\"optimus\",outcome=\"synced\"} 10");
	T_CONTAINS(text, "host=\"evil\\\"host\\\\\\nname\"");
	T_CONTAINS(text, "plumb_cycle_duration_seconds_bucket{service=\"optimus\",le=\"0.1\"} 1");
	T_CONTAINS(text, "plumb_cycle_duration_seconds_bucket{service=\"optimus\",le=\"+Inf\"} 2");
	T_CONTAINS(text, "plumb_held_revision_info{service=\"optimus\",revision=\"abc\"} 1");
	T_CHECK(!strict_ok("x 1\n", why, sizeof(why)));   /* the checker can fail */
	T_CHECK(!strict_ok("# TYPE x gauge\nx{a=\"\\q\"} 1\n", why, sizeof(why)));
	if (tu_sh("command -v promtool >/dev/null") == 0) {
		dir = tu_tmpdir("metrics");
		if (!dir)
			abort();
		tu_write_in(dir, "m.txt", text);
		f = xasprintf("%s/m.txt", dir);
		T_CHECKF(tu_sh("promtool check metrics < '%s' >/dev/null 2>&1", f) == 0,
			 "promtool rejects the metrics text");
		free(f);
		tu_rm_rf(dir);
		free(dir);
	} else {
		fprintf(stderr, "  note: promtool not installed: the strict check only\n");
	}
	free(text);
}

/* ---- notifications: a receiver that fails the first answers ---- */

struct sink {
	int fail_first;   /* answer 500 to this many requests first */
	int code_after;   /* then this */
	int got;          /* requests */
	char body[1024];
	pthread_mutex_t mu;
};

static enum MHD_Result sink_handle(void *cls, struct MHD_Connection *c, const char *url,
				   const char *method, const char *version, const char *upload,
				   size_t *upload_size, void **con_cls)
{
	struct sink *s = cls;
	struct MHD_Response *r;
	enum MHD_Result rc;
	int code;

	(void)url;
	(void)method;
	(void)version;
	if (!*con_cls) {
		*con_cls = s;
		return MHD_YES;
	}
	if (*upload_size) {
		pthread_mutex_lock(&s->mu);
		snprintf(s->body, sizeof(s->body), "%.*s", (int)*upload_size, upload);
		pthread_mutex_unlock(&s->mu);
		*upload_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&s->mu);
	code = s->got++ < s->fail_first ? 500 : s->code_after;
	pthread_mutex_unlock(&s->mu);
	r = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
	rc = MHD_queue_response(c, (unsigned)code, r);
	MHD_destroy_response(r);
	return rc;
}

static int sink_port(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	return i ? i->port : 0;
}

static int sink_got(struct sink *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->got;
	pthread_mutex_unlock(&s->mu);
	return n;
}

T_TEST(notifications_retry_then_deliver)
{
	struct sink s = { .fail_first = 2, .code_after = 200, .mu = PTHREAD_MUTEX_INITIALIZER };
	struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
						sink_handle, &s, MHD_OPTION_END);
	struct rec_notifier *nf = NULL;
	struct plumb_err err = { 0 };
	unsigned long sent = 0, failed = 0, dropped = 0;
	char *url;
	const char *urls[1];

	T_REQUIRE(d != NULL);
	url = xasprintf("http://user:token@127.0.0.1:%d/hook?k=secret", sink_port(d));
	urls[0] = url;
	T_REQUIRE(rec_notifier_new(&nf, urls, 1, 2000, 3, &err) == 0);
	rec_notify(nf, REC_EV_FAILED, "optimus", "abc123", "the rollout failed");
	for (int i = 0; i < 100 && sink_got(&s) < 3; i++)
		usleep(50000);
	rec_notifier_free(nf, 3000);
	T_INTEQ(sink_got(&s), 3); /* two 500s, then delivered */
	T_CONTAINS(s.body, "\"text\":\"the rollout failed\"");
	T_CONTAINS(s.body, "\"content\":\"the rollout failed\"");
	T_CONTAINS(s.body, "\"event\":\"failed\"");
	/* a 400: not retried */
	s.got = 0;
	s.fail_first = 0;
	s.code_after = 400;
	T_REQUIRE(rec_notifier_new(&nf, urls, 1, 2000, 3, &err) == 0);
	rec_notify(nf, REC_EV_HELD, "optimus", NULL, "held");
	for (int i = 0; i < 40 && sink_got(&s) < 1; i++)
		usleep(50000);
	usleep(300000);
	rec_notifier_counts(nf, &sent, &failed, &dropped);
	rec_notifier_free(nf, 1000);
	T_INTEQ(sink_got(&s), 1);
	T_INTEQ((long)failed, 1);
	MHD_stop_daemon(d);
	/* printed URLs keep neither userinfo nor path */
	{
		char *r = rec_notify_redact(url);
		T_NOT_CONTAINS(r, "token");
		T_NOT_CONTAINS(r, "secret");
		T_CONTAINS(r, "127.0.0.1");
		free(r);
	}
	T_CHECK(rec_notifier_new(&nf, (const char *[]){ "file:///etc/passwd" }, 1, 0, 0, &err) ==
		PLUMB_EINVAL);
	free(url);
}

T_MAIN(T_CASE(signature_check), T_CASE(listener_routes_and_webhook), T_CASE(metrics_text_parses),
       T_CASE(notifications_retry_then_deliver))
