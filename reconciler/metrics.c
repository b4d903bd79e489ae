/*
 * Prometheus text exposition (metrics.h).
 */
#include "reconciler/metrics.h"

#include <stdio.h>
#include <string.h>

#include "state/util.h"

static const double bounds[REC_METRICS_NBUCKETS] = REC_METRICS_BUCKETS;

void rec_metrics_observe(struct rec_metrics_hist *h, double seconds)
{
	for (size_t i = 0; i < REC_METRICS_NBUCKETS; i++)
		if (seconds <= bounds[i]) {
			h->counts[i]++;
			break;
		}
	h->count++;
	h->sum += seconds;
}

/* A label value: \ → \\, " → \", newline → \n (the format's escapes). */
static void label(struct sbuf *sb, const char *k, const char *v)
{
	sbuf_addf(sb, "%s=\"", k);
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '\\')
			sbuf_adds(sb, "\\\\");
		else if (*p == '"')
			sbuf_adds(sb, "\\\"");
		else if (*p == '\n')
			sbuf_adds(sb, "\\n");
		else
			sbuf_addc(sb, *p);
	}
	sbuf_addc(sb, '"');
}

static void family(struct sbuf *sb, const char *name, const char *type, const char *help)
{
	sbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{service="…"[,k="v"]} value */
static void sample(struct sbuf *sb, const struct rec_metrics *m, const char *name, const char *k,
		   const char *v, double value)
{
	sbuf_addf(sb, "%s{", name);
	label(sb, "service", m->service);
	if (k) {
		sbuf_addc(sb, ',');
		label(sb, k, v);
	}
	sbuf_addf(sb, "} %.17g\n", value);
}

char *rec_metrics_render(const struct rec_metrics *m)
{
	static const struct rec_metrics_hist none;
	const struct rec_metrics_hist *h = m->cycle ? m->cycle : &none;
	const struct {
		const char *outcome;
		unsigned long n;
	} outcomes[] = {
		{ "synced", m->cycles_synced },   { "applied", m->cycles_applied },
		{ "failed", m->cycles_failed },   { "waiting", m->cycles_waiting },
		{ "held", m->cycles_held },       { "suspended", m->cycles_suspended },
		{ "error", m->cycles_error },
	};
	unsigned long cum = 0;
	struct sbuf sb;
	char le[32];

	sbuf_init(&sb, 0);
	family(&sb, "plumb_cycles_total", "counter", "Reconcile cycles by outcome.");
	for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
		sample(&sb, m, "plumb_cycles_total", "outcome", outcomes[i].outcome, (double)outcomes[i].n);
	family(&sb, "plumb_cycle_duration_seconds", "histogram", "Wall time of a reconcile cycle.");
	for (size_t i = 0; i < REC_METRICS_NBUCKETS; i++) {
		cum += h->counts[i];
		snprintf(le, sizeof(le), "%g", bounds[i]);
		sample(&sb, m, "plumb_cycle_duration_seconds_bucket", "le", le, (double)cum);
	}
	sample(&sb, m, "plumb_cycle_duration_seconds_bucket", "le", "+Inf", (double)h->count);
	sample(&sb, m, "plumb_cycle_duration_seconds_sum", NULL, NULL, h->sum);
	sample(&sb, m, "plumb_cycle_duration_seconds_count", NULL, NULL, (double)h->count);
	family(&sb, "plumb_last_cycle_duration_seconds", "gauge", "Wall time of the last cycle.");
	sample(&sb, m, "plumb_last_cycle_duration_seconds", NULL, NULL, m->last_cycle_seconds);
	family(&sb, "plumb_last_success_timestamp_seconds", "gauge",
	       "When a cycle last ended in sync or applied (unix time; 0 = never).");
	sample(&sb, m, "plumb_last_success_timestamp_seconds", NULL, NULL, m->last_success_timestamp);
	family(&sb, "plumb_drift_found_total", "counter",
	       "Cycles that found the hosts changed from the revision already applied.");
	sample(&sb, m, "plumb_drift_found_total", NULL, NULL, (double)m->drift_found);
	family(&sb, "plumb_drift_healed_total", "counter", "Drift put back by an apply.");
	sample(&sb, m, "plumb_drift_healed_total", NULL, NULL, (double)m->drift_healed);
	family(&sb, "plumb_host_reachable", "gauge", "1 when the host was observed at the last cycle.");
	for (size_t i = 0; i < m->nhosts; i++)
		sample(&sb, m, "plumb_host_reachable", "host", m->hosts[i].host, m->hosts[i].reachable);
	family(&sb, "plumb_host_synced", "gauge", "1 when the host runs what the revision says.");
	for (size_t i = 0; i < m->nhosts; i++)
		sample(&sb, m, "plumb_host_synced", "host", m->hosts[i].host, m->hosts[i].synced);
	family(&sb, "plumb_held_revision_info", "gauge",
	       "1 for the revision held after a failed rollout (none: no sample).");
	if (m->held_revision)
		sample(&sb, m, "plumb_held_revision_info", "revision", m->held_revision, 1);
	family(&sb, "plumb_suspended", "gauge", "1 while applying is suspended.");
	sample(&sb, m, "plumb_suspended", NULL, NULL, m->suspended ? 1 : 0);
	return sbuf_detach(&sb);
}
