/*
 * Notifications (notify.h).
 */
#include "reconciler/notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "state/json_text.h"
#include "state/util.h"

#define RETRY_FIRST_MS 500
#define RETRY_AFTER_CAP_S 30

struct msg {
	char *body;
	char *label; /* the event, for messages */
};

struct rec_notifier {
	struct strvec urls;
	int timeout_ms, retries;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct msg q[REC_NOTIFY_QUEUE_MAX];
	size_t head, n;
	int stop;
	double stop_by;        /* stopping: give up on sending after this time */
	unsigned long sent, failed, dropped;
};

static const char *const event_names[] = { "failed", "held", "drift_healed", "recovered", "applied" };

const char *rec_event_name(enum rec_event ev)
{
	return (size_t)ev < sizeof(event_names) / sizeof(event_names[0]) ? event_names[ev] : "event";
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

char *rec_notify_redact(const char *url)
{
	const char *p = strstr(url, "://"), *h, *end, *at;

	if (!p)
		return xstrdup("(a URL)");
	h = p + 3;
	end = h + strcspn(h, "/?#");
	at = memchr(h, '@', (size_t)(end - h));
	if (at)
		h = at + 1;
	return xasprintf("%.*s://%.*s/…", (int)(p - url), url, (int)(end - h), h);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
	(void)ptr;
	(void)ud;
	return size * nmemb;
}

/* Retry-After in seconds from the response headers, or 0. */
struct hdr {
	long retry_after;
};

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	struct hdr *h = ud;
	size_t n = size * nitems;

	if (n > 12 && strncasecmp(buf, "Retry-After:", 12) == 0) {
		long v = strtol(buf + 12, NULL, 10);
		if (v > 0)
			h->retry_after = v > RETRY_AFTER_CAP_S ? RETRY_AFTER_CAP_S : v;
	}
	return n;
}

/* One POST: 0 delivered, 1 retry (after *wait_ms), -1 give up. */
static int post(struct rec_notifier *nf, const char *url, const char *body, long *wait_ms)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hs = NULL;
	struct hdr h = { 0 };
	long code = 0;
	CURLcode rc;

	if (!c)
		return 1;
	hs = curl_slist_append(hs, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)nf->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)nf->timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "plumb/" PLUMB_VERSION);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hs);
	curl_easy_cleanup(c);
	if (rc == CURLE_OK && code >= 200 && code < 300)
		return 0;
	if (rc == CURLE_OK && code != 429 && code < 500)
		return -1; /* the receiver refuses it: retrying will not help */
	if (h.retry_after)
		*wait_ms = h.retry_after * 1000;
	return 1;
}

/* Sleeps ms unless the notifier is past its stop time; 0, or -1 when it is. */
static int pause_ms(struct rec_notifier *nf, long ms)
{
	struct timespec until;
	int past;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&nf->mu);
	while (!(nf->stop && now_ms() >= nf->stop_by) &&
	       pthread_cond_timedwait(&nf->cv, &nf->mu, &until) != ETIMEDOUT)
		;
	past = nf->stop && now_ms() >= nf->stop_by;
	pthread_mutex_unlock(&nf->mu);
	return past ? -1 : 0;
}

static void deliver(struct rec_notifier *nf, const struct msg *m)
{
	for (size_t u = 0; u < nf->urls.n; u++) {
		long backoff = RETRY_FIRST_MS;
		int ok = 0;
		for (int attempt = 0; attempt <= nf->retries; attempt++) {
			long wait = backoff;
			int r = post(nf, nf->urls.v[u], m->body, &wait);
			if (r == 0) {
				ok = 1;
				break;
			}
			if (r < 0 || attempt == nf->retries || pause_ms(nf, wait) != 0)
				break;
			backoff *= 2;
		}
		pthread_mutex_lock(&nf->mu);
		if (ok) {
			nf->sent++;
		} else {
			char *shown = rec_notify_redact(nf->urls.v[u]);
			nf->failed++;
			fprintf(stderr, "plumb: notification (%s) to %s not delivered\n", m->label, shown);
			free(shown);
		}
		pthread_mutex_unlock(&nf->mu);
	}
}

static void *worker(void *arg)
{
	struct rec_notifier *nf = arg;

	pthread_mutex_lock(&nf->mu);
	for (;;) {
		struct msg m;
		while (!nf->n && !nf->stop)
			pthread_cond_wait(&nf->cv, &nf->mu);
		if (!nf->n || (nf->stop && now_ms() >= nf->stop_by))
			break;
		m = nf->q[nf->head];
		nf->head = (nf->head + 1) % REC_NOTIFY_QUEUE_MAX;
		nf->n--;
		pthread_mutex_unlock(&nf->mu);
		deliver(nf, &m);
		free(m.body);
		free(m.label);
		pthread_mutex_lock(&nf->mu);
	}
	pthread_mutex_unlock(&nf->mu);
	return NULL;
}

int rec_notifier_new(struct rec_notifier **out, const char *const *urls, size_t n, int timeout_ms,
		     int retries, struct plumb_err *err)
{
	struct rec_notifier *nf;

	*out = NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(urls[i], "http://", 7) != 0 && strncmp(urls[i], "https://", 8) != 0) {
			char *shown = rec_notify_redact(urls[i]);
			int rc = plumb_err_set(err, PLUMB_EINVAL, "notification URL %s: only http and https",
					       shown);
			free(shown);
			return rc;
		}
	nf = xcalloc(1, sizeof(*nf));
	for (size_t i = 0; i < n; i++)
		strvec_push(&nf->urls, urls[i]);
	nf->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	nf->retries = retries > 0 ? retries : 0;
	pthread_mutex_init(&nf->mu, NULL);
	pthread_cond_init(&nf->cv, NULL);
	if (pthread_create(&nf->th, NULL, worker, nf) != 0) {
		for (size_t i = 0; i < nf->urls.n; i++)
			util_free_secret(nf->urls.v[i]);
		free(nf->urls.v);
		free(nf);
		return plumb_err_set(err, PLUMB_ERROR, "the notification thread could not start");
	}
	*out = nf;
	return 0;
}

void rec_notify(struct rec_notifier *nf, enum rec_event ev, const char *service,
		const char *revision, const char *text)
{
	json_t *j;
	struct msg m;

	if (!nf)
		return;
	j = json_object();
	jtext_set(j, "text", jtext(text));
	jtext_set(j, "content", jtext(text));
	jtext_set(j, "event", jtext(rec_event_name(ev)));
	jtext_set(j, "service", jtext(service));
	jtext_set(j, "revision", jtext(revision));
	m.body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	m.label = xstrdup(rec_event_name(ev));
	json_decref(j);
	if (!m.body) {
		free(m.label);
		return;
	}
	pthread_mutex_lock(&nf->mu);
	if (nf->n == REC_NOTIFY_QUEUE_MAX) {
		/* full: the oldest goes */
		free(nf->q[nf->head].body);
		free(nf->q[nf->head].label);
		nf->head = (nf->head + 1) % REC_NOTIFY_QUEUE_MAX;
		nf->n--;
		nf->dropped++;
	}
	nf->q[(nf->head + nf->n) % REC_NOTIFY_QUEUE_MAX] = m;
	nf->n++;
	pthread_cond_broadcast(&nf->cv);
	pthread_mutex_unlock(&nf->mu);
}

void rec_notifier_counts(struct rec_notifier *nf, unsigned long *sent, unsigned long *failed,
			 unsigned long *dropped)
{
	pthread_mutex_lock(&nf->mu);
	*sent = nf->sent;
	*failed = nf->failed;
	*dropped = nf->dropped;
	pthread_mutex_unlock(&nf->mu);
}

void rec_notifier_free(struct rec_notifier *nf, int drain_ms)
{
	if (!nf)
		return;
	pthread_mutex_lock(&nf->mu);
	nf->stop = 1;
	nf->stop_by = now_ms() + (drain_ms > 0 ? drain_ms : 0);
	pthread_cond_broadcast(&nf->cv);
	pthread_mutex_unlock(&nf->mu);
	pthread_join(nf->th, NULL);
	while (nf->n) {
		free(nf->q[nf->head].body);
		free(nf->q[nf->head].label);
		nf->head = (nf->head + 1) % REC_NOTIFY_QUEUE_MAX;
		nf->n--;
	}
	for (size_t i = 0; i < nf->urls.n; i++)
		util_free_secret(nf->urls.v[i]);
	free(nf->urls.v);
	pthread_mutex_destroy(&nf->mu);
	pthread_cond_destroy(&nf->cv);
	free(nf);
}
