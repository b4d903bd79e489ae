/*
 * /metrics: the watcher's numbers in Prometheus' text exposition format
 * (version 0.0.4): a HELP and a TYPE line per family, then its samples; every
 * label value escaped as the format says (backslash, double quote, newline):
 * host names come from a repository.
 */
#ifndef PLUMB_METRICS_H
#define PLUMB_METRICS_H

#include <stddef.h>

/* Upper bounds (seconds) of the cycle duration histogram's buckets. */
#define REC_METRICS_BUCKETS { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 }
#define REC_METRICS_NBUCKETS 11

struct rec_metrics_hist {
	unsigned long counts[REC_METRICS_NBUCKETS]; /* cumulative is computed when rendered */
	unsigned long count;
	double sum;
};
/* Records one observation. */
void rec_metrics_observe(struct rec_metrics_hist *h, double seconds);

struct rec_metrics_host {
	const char *host;
	int reachable; /* 1/0 */
	int synced;    /* 1/0 */
};

/* Everything borrowed. */
struct rec_metrics {
	const char *service; /* label service="…" on every series */
	unsigned long cycles_synced, cycles_applied, cycles_failed, cycles_waiting, cycles_held,
		cycles_suspended, cycles_error;
	double last_cycle_seconds;
	const struct rec_metrics_hist *cycle;  /* plumb_cycle_duration_seconds; NULL = none */
	double last_success_timestamp;         /* unix seconds, 0 = never */
	unsigned long drift_found, drift_healed;
	const struct rec_metrics_host *hosts;
	size_t nhosts;
	const char *held_revision;             /* NULL = none */
	int suspended;
};

/* The exposition text; the caller frees. Never NULL. */
char *rec_metrics_render(const struct rec_metrics *m);

#endif
