/*
 * The parallel runner (transport.h): a fixed set of pthreads takes host
 * indexes from a shared counter; each call of fn owns its host for the whole
 * run, so a transport (and its libssh session) never crosses threads.
 */
#include "providers/transport.h"

#include <pthread.h>
#include <stdlib.h>

struct pool {
	pthread_mutex_t lock;
	size_t next, n;
	int (*fn)(size_t i, void *ctx);
	void *ctx;
	int *results;
};

static void *worker(void *arg)
{
	struct pool *p = arg;

	for (;;) {
		size_t i;

		pthread_mutex_lock(&p->lock);
		i = p->next < p->n ? p->next++ : p->n;
		pthread_mutex_unlock(&p->lock);
		if (i >= p->n)
			return NULL;
		/* Each index is written by exactly one worker; join publishes it. */
		p->results[i] = p->fn(i, p->ctx);
	}
}

int prov_pool_run(size_t n, int concurrency, int (*fn)(size_t i, void *ctx), void *ctx,
		  int *results)
{
	struct pool p = { .next = 0, .n = n, .fn = fn, .ctx = ctx, .results = results };
	pthread_t *threads = NULL;
	size_t nthreads = concurrency > 0 ? (size_t)concurrency : PROV_POOL_DEFAULT, started = 0;
	int rc = 0;

	if (n == 0)
		return 0;
	if (prov_init() < 0)
		return -1;
	if (nthreads > n)
		nthreads = n;
	if (nthreads == 1) {
		for (size_t i = 0; i < n; i++)
			results[i] = fn(i, ctx);
		return 0;
	}
	pthread_mutex_init(&p.lock, NULL);
	threads = xcalloc(nthreads, sizeof(*threads));
	for (; started < nthreads; started++)
		if (pthread_create(&threads[started], NULL, worker, &p) != 0)
			break;
	if (started == 0) {
		rc = -1;
		goto out;
	}
	/* With fewer threads than asked, the ones that started still take every index. */
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
out:
	free(threads);
	pthread_mutex_destroy(&p.lock);
	return rc;
}
