/*
 * The watch loop (watch.h).
 *
 * Threads: the loop runs in the calling thread; the signal thread
 * (reconciler/lock.h) takes SIGINT/SIGTERM; a thread of ours takes SIGHUP;
 * the HTTP listener calls back from its own threads. What they share (the
 * status, the counters, the trigger) is under w->mu.
 */
#include "reconciler/watch.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "providers/git_src.h"
#include "reconciler/apply.h"
#include "reconciler/http.h"
#include "reconciler/load.h"
#include "reconciler/lock.h"
#include "reconciler/metrics.h"
#include "reconciler/notify.h"
#include "reconciler/pipeline.h"
#include "state/escape.h"
#include "state/wstate.h"

#define DEFAULT_INTERVAL_MS 60000
#define BACKOFF_FIRST_MS 2000
#define BACKOFF_CAP_MS (5 * 60 * 1000)
#define HISTORY_KEEP 200
#define SECRET_MAX 4096

enum outcome {
	OUT_SYNCED,
	OUT_APPLIED,
	OUT_WAITING,
	OUT_FAILED,
	OUT_HELD,
	OUT_SUSPENDED,
	OUT_ERROR,
};

static const char *const outcome_names[] = {
	"synced", "applied", "waiting", "failed", "held", "suspended", "error",
};

struct watch {
	const struct rec_watch_opts *o;
	const char *dir;
	struct git_src *g;
	struct rec_fleet_keep keep;
	struct rec_http *http;
	struct rec_notifier *nf;
	char *secret;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int trigger;              /* a cycle now (SIGHUP, webhook); under mu */
	struct ws_status st;      /* under mu */
	unsigned long n_out[OUT_ERROR + 1];
	struct rec_metrics_hist hist;
	double last_success;
	unsigned long drift_found, drift_healed;
	int backoff_k;
	enum outcome last_outcome;
	int have_last;
	char *last_log;           /* the pipeline's log of the previous cycle */
	char *last_note;          /* the last line said for a repeated outcome */
	char *hist_rev;           /* the revision of the last history entry */
	int trace;                /* $PLUMB_WATCH_TRACE: where each cycle's time went */
};

/* ---- logging: one line per event ---- */

static void now_iso(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void wlog(struct watch *w, const char *level, const char *event, const char *fmt, ...)
	PLUMB_PRINTF(4, 5);
static void wlog(struct watch *w, const char *level, const char *event, const char *fmt, ...)
{
	char ts[32], *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	now_iso(ts);
	if (w->o->log_json) {
		json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "time", ts, "level", level, "event", event,
				      "msg", msg);
		char *line = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
		if (line)
			printf("%s\n", line);
		free(line);
		json_decref(j);
	} else {
		struct sbuf sb;
		sbuf_init(&sb, 0);
		esc_text(&sb, msg);
		printf("%s %s: %s\n", ts, event, sb.buf ? sb.buf : "");
		sbuf_release(&sb);
	}
	fflush(stdout);
	free(msg);
}

/* Each line of a multi-line text (the pipeline's log, the executor's
 * progress) as an event. */
static void wlog_lines(struct watch *w, const char *level, const char *event, const char *text)
{
	while (text && *text) {
		size_t n = strcspn(text, "\n");
		if (n)
			wlog(w, level, event, "%.*s", (int)n, text);
		text += n;
		if (*text)
			text++;
	}
}

/* ---- status ---- */

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? xstrdup(v) : NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void hosts_release(struct ws_status *st)
{
	for (size_t i = 0; i < st->nhosts; i++) {
		free(st->hosts[i].host);
		free(st->hosts[i].sync);
		free(st->hosts[i].health);
		free(st->hosts[i].version);
		free(st->hosts[i].error);
	}
	free(st->hosts);
	st->hosts = NULL;
	st->nhosts = 0;
}

/* The version host h runs: the suffix of its running primary-role container. */
static const char *running_version(const struct obs_host *oh, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; oh && i < oh->ncontainers; i++) {
		const struct obs_container *c = &oh->containers[i];
		if (c->state && strcmp(c->state, "running") == 0 && c->name &&
		    strncmp(c->name, prefix, n) == 0 && c->name[n] == '-' && c->name[n + 1])
			return c->name + n + 1;
	}
	return NULL;
}

static size_t counted_steps(const struct diff_host *dh)
{
	size_t n = 0;

	for (size_t i = 0; i < dh->nsteps; i++)
		if (dh->steps[i].counted)
			n++;
	return n;
}

/* Per-host status from a plan (before the apply) and whether it converged. */
static void hosts_from_plan(struct ws_status *st, const struct rec_pipeline_result *res,
			    int converged)
{
	const struct config *c = res->config;
	const char *role = c->primary_role ? c->primary_role : "web";
	char *prefix = c->destination ? xasprintf("%s-%s-%s", c->service, role, c->destination)
				      : xasprintf("%s-%s", c->service, role);

	hosts_release(st);
	st->hosts = xcalloc(res->plan->nhosts ? res->plan->nhosts : 1, sizeof(*st->hosts));
	for (size_t i = 0; i < res->plan->nhosts; i++) {
		const struct diff_host *dh = &res->plan->hosts[i];
		const struct obs_host *oh = res->obs ? obs_fleet_host(res->obs, dh->host) : NULL;
		struct ws_host *h = &st->hosts[st->nhosts++];
		int ok = dh->status == DIFF_HOST_OK, degraded = 0;

		h->host = xstrdup(dh->host);
		h->reachable = dh->status == DIFF_HOST_UNREACHABLE ? 0 : ok ? 1 : -1;
		for (size_t k = 0; k < dh->nnotes; k++)
			degraded |= dh->notes[k].kind == NOTE_UNHEALTHY;
		if (!ok) {
			h->sync = xstrdup("Unknown");
			h->health = xstrdup("Unknown");
			h->error = dh->error ? xstrdup(dh->error) : NULL;
			continue;
		}
		h->sync = xstrdup(converged || !counted_steps(dh) ? "Synced" : "OutOfSync");
		h->health = xstrdup(degraded && !converged ? "Degraded" : "Healthy");
		if (converged && counted_steps(dh) && dh->in_config)
			h->version = xstrdup(res->desired->version);
		else if (running_version(oh, prefix))
			h->version = xstrdup(running_version(oh, prefix));
	}
	free(prefix);
}

/* The fleet's sync and health from its hosts. */
static void overall(struct ws_status *st)
{
	int out = 0, unknown = 0, degraded = 0;

	for (size_t i = 0; i < st->nhosts; i++) {
		out |= strcmp(st->hosts[i].sync, "OutOfSync") == 0;
		unknown |= strcmp(st->hosts[i].sync, "Unknown") == 0;
		degraded |= strcmp(st->hosts[i].health, "Healthy") != 0;
	}
	set_str(&st->sync, out ? "OutOfSync" : unknown || !st->nhosts ? "Unknown" : "Synced");
	if (!st->health || strcmp(st->health, "Progressing") != 0)
		set_str(&st->health, degraded ? "Degraded" : st->nhosts ? "Healthy" : "Unknown");
}

static void status_save(struct watch *w)
{
	struct plumb_err err = { 0 };

	w->st.updated_at = now_s();
	w->st.pid = (long)getpid();
	if (ws_status_write(w->dir, &w->st, &err) != 0)
		wlog(w, "error", "state", "writing the status failed: %s", plumb_err_msg(&err));
}

static void set_phase(struct watch *w, const char *phase)
{
	pthread_mutex_lock(&w->mu);
	set_str(&w->st.phase, phase);
	if (strcmp(phase, "applying") == 0)
		set_str(&w->st.health, "Progressing");
	status_save(w);
	pthread_mutex_unlock(&w->mu);
}

/* ---- the listener's callbacks (its threads) ---- */

static char *cb_status(void *ctx)
{
	struct watch *w = ctx;
	char *out = NULL;

	pthread_mutex_lock(&w->mu);
	if (ws_status_to_json(&w->st, &out) != 0)
		out = NULL;
	pthread_mutex_unlock(&w->mu);
	return out;
}

static char *cb_metrics(void *ctx)
{
	struct watch *w = ctx;
	struct rec_metrics m = { 0 };
	struct rec_metrics_host *hs;
	char *out;

	pthread_mutex_lock(&w->mu);
	hs = xcalloc(w->st.nhosts ? w->st.nhosts : 1, sizeof(*hs));
	for (size_t i = 0; i < w->st.nhosts; i++) {
		hs[i].host = w->st.hosts[i].host;
		hs[i].reachable = w->st.hosts[i].reachable == 1;
		hs[i].synced = w->st.hosts[i].sync && strcmp(w->st.hosts[i].sync, "Synced") == 0;
	}
	m.service = w->st.service ? w->st.service : "";
	m.cycles_synced = w->n_out[OUT_SYNCED];
	m.cycles_applied = w->n_out[OUT_APPLIED];
	m.cycles_failed = w->n_out[OUT_FAILED];
	m.cycles_waiting = w->n_out[OUT_WAITING];
	m.cycles_held = w->n_out[OUT_HELD];
	m.cycles_suspended = w->n_out[OUT_SUSPENDED];
	m.cycles_error = w->n_out[OUT_ERROR];
	m.last_cycle_seconds = w->st.last_cycle_ms / 1000.0;
	m.cycle = &w->hist;
	m.last_success_timestamp = w->last_success;
	m.drift_found = w->drift_found;
	m.drift_healed = w->drift_healed;
	m.hosts = hs;
	m.nhosts = w->st.nhosts;
	m.held_revision = w->st.held_revision;
	m.suspended = w->st.phase && strcmp(w->st.phase, "suspended") == 0;
	out = rec_metrics_render(&m);
	pthread_mutex_unlock(&w->mu);
	free(hs);
	return out;
}

static int cb_healthy(void *ctx)
{
	(void)ctx;
	return 1; /* the loop is alive: the listener answers from its process */
}

static void wake(struct watch *w)
{
	pthread_mutex_lock(&w->mu);
	w->trigger = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void cb_trigger(const char *why, void *ctx)
{
	struct watch *w = ctx;

	wlog(w, "info", "webhook", "%s: a cycle now", why ? why : "push");
	wake(w);
}

/* ---- SIGHUP: a cycle now ---- */

static sigset_t hup_set;

static void *hup_thread(void *arg)
{
	struct watch *w = arg;
	int sig;

	for (;;) {
		if (sigwait(&hup_set, &sig) != 0)
			continue;
		wlog(w, "info", "signal", "SIGHUP: a cycle now");
		wake(w);
	}
	return NULL;
}

/* ---- one cycle ---- */

static int history_add(struct watch *w, const char *rev, const char *version, const char *hash,
		       const char *summary, enum outcome oc, const char *error, double t0,
		       double ms)
{
	struct ws_cycle c = { 0 };
	struct plumb_err err = { 0 };

	c.revision = (char *)rev;
	c.version = (char *)version;
	c.plan_hash = (char *)hash;
	c.summary = (char *)summary;
	c.outcome = (char *)outcome_names[oc];
	c.error = (char *)error;
	c.started_at = t0;
	c.duration_ms = ms;
	if (ws_history_append(w->dir, &c, HISTORY_KEEP, &err) != 0) {
		wlog(w, "error", "state", "writing the history failed: %s", plumb_err_msg(&err));
		return -1;
	}
	return 0;
}

/* A stop-first replacement of an accessory that has not opted in
 * (x-plumb accessories.<name>.watch_replace): left to `plumb apply`. */
static int held_for_apply(const struct diff_step *s, void *ctx)
{
	const struct config *c = ctx;
	const struct xplumb_accessory *xa;

	if (s->action != DIFF_REPLACE_STOP_FIRST || s->target != DIFF_T_ACCESSORY)
		return 0;
	xa = config_xplumb_accessory(c, s->role);
	return !xa || !xa->watch_replace;
}

/* The ref of the first app image the registry does not have, or NULL. */
static const char *missing_image(const struct desired *ds)
{
	for (size_t i = 0; ds && i < ds->nhosts; i++)
		for (size_t k = 0; k < ds->hosts[i].ncontainers; k++) {
			const struct des_container *dc = &ds->hosts[i].containers[k];
			if (dc->kind == DES_APP && dc->image_status == DES_IMAGE_NOT_FOUND)
				return dc->image_ref;
		}
	return NULL;
}

static void notify(struct watch *w, enum rec_event ev, const char *rev, const char *fmt, ...)
	PLUMB_PRINTF(4, 5);
static void notify(struct watch *w, enum rec_event ev, const char *rev, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	if (!w->nf)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	rec_notify(w->nf, ev, w->st.service ? w->st.service : "", rev, msg);
	free(msg);
}

static const char *short_sha(const char *sha, char buf[8])
{
	snprintf(buf, 8, "%.7s", sha ? sha : "");
	return buf;
}

/* Says a line once while the same thing repeats cycle after cycle. */
static void say_once(struct watch *w, const char *level, const char *event, const char *text)
{
	if (w->last_note && strcmp(w->last_note, text) == 0)
		return;
	set_str(&w->last_note, text);
	wlog(w, level, event, "%s", text);
}

struct cycle {
	char sha[41];
	char sbuf[8];
	enum outcome oc;
	char *error;
	char *summary;
	char *version;
	char hash[65];
	double t0;
	double fetch_ms, plan_ms, observe_ms; /* where the time went (--trace) */
	size_t unchanged; /* hosts answered from their last observation (docker events) */
};

static void cycle_error(struct cycle *cy, const char *fmt, ...) PLUMB_PRINTF(2, 3);
static void cycle_error(struct cycle *cy, const char *fmt, ...)
{
	va_list ap;

	free(cy->error);
	va_start(ap, fmt);
	if (vasprintf(&cy->error, fmt, ap) < 0)
		abort();
	va_end(ap);
	cy->oc = OUT_ERROR;
}

/*
 * A deploy lock left by a plumb of this machine whose process is gone (a
 * kill -9 mid-rollout, a crash): nobody will release it, and the next apply
 * plans from what the hosts run, so it is released here, and said (log,
 * history, notification). A lock of Kamal, of a live process, or of another
 * machine is only reported. 0 when one was released.
 */
static int break_stale_lock(struct watch *w, const struct rec_apply *x)
{
	struct rec_lock_status ls = { 0 };
	struct transport *t = NULL;
	struct plumb_err err = { 0 };
	int rc = -1;

	if (!x->lock_name || !x->fleet || fleet_writer(x->fleet, x->lock_host, &t, &err) != 0 ||
	    rec_lock_status(t, x->lock_name, &ls, &err) != 0 || !ls.held)
		goto out;
	if (!ls.stale) {
		pthread_mutex_lock(&w->mu);
		set_str(&w->st.lock_holder, ls.details);
		pthread_mutex_unlock(&w->mu);
		goto out;
	}
	if (rec_lock_release(t, x->lock_name, &err) != 0) {
		wlog(w, "error", "lock", "releasing the stale deploy lock %s failed: %s", x->lock_name,
		     plumb_err_msg(&err));
		goto out;
	}
	wlog(w, "warn", "lock", "released the stale deploy lock %s of plumb pid %ld on %s (that process "
	     "is gone)", x->lock_name, ls.pid, ls.host ? ls.host : "this machine");
	notify(w, REC_EV_FAILED, NULL, "%s: a stale deploy lock of plumb pid %ld (gone) was released",
	       w->st.service ? w->st.service : "", ls.pid);
	rc = 0;
out:
	rec_lock_status_release(&ls);
	return rc;
}

/* Fetches and plans; 0 with res filled, -1 with the cycle's outcome set. */
static int plan_head(struct watch *w, struct cycle *cy, struct rec_pipeline_result *res,
		     struct rec_apply *x)
{
	struct rec_pipeline_opts po = { 0 };
	struct plumb_err err = { 0 };
	const char *branch = w->o->branch ? w->o->branch : "main";
	int prc;

	double t = prov_now_ms();

	if (git_src_fetch(w->g, NULL, &err) != 0 ||
	    git_src_resolve(w->g, branch, cy->sha, &err) != 0) {
		cycle_error(cy, "git: %s", plumb_err_msg(&err));
		return -1;
	}
	cy->fetch_ms = prov_now_ms() - t;
	t = prov_now_ms();
	po.cmd = "watch";
	po.until = REC_STAGE_DIFF;
	po.mode = FLEET_READ_WRITE;
	po.src.config_path = w->o->config_path;
	po.src.destination = w->o->destination;
	po.src.ref = cy->sha;
	po.src.trusted = 1;
	po.src.prune = w->o->prune;
	po.src.timeout_ms = w->o->timeout_ms;
	po.git = w->g;
	po.keep = &w->keep;
	/* no pre-connect hook: the sessions outlive the cycles */
	(void)x;
	prc = rec_pipeline_run(res, &po);
	cy->plan_ms = prov_now_ms() - t;
	for (size_t i = 0; res->obs && i < res->obs->nhosts; i++) {
		cy->unchanged += res->obs->hosts[i].status == OBS_OK && res->obs->hosts[i].cached;
		if (res->obs->hosts[i].connect_ms + res->obs->hosts[i].observe_ms > cy->observe_ms)
			cy->observe_ms = res->obs->hosts[i].connect_ms + res->obs->hosts[i].observe_ms;
	}
	/* the pipeline's words, when they differ from the last cycle's */
	if (!w->last_log || strcmp(w->last_log, res->log) != 0) {
		wlog_lines(w, prc < 0 ? "error" : "info", "plan", res->log);
		set_str(&w->last_log, res->log);
	}
	if (prc < 0) {
		cycle_error(cy, "%s", plumb_err_msg(&res->err));
		return -1;
	}
	return 0;
}

static enum outcome run_cycle(struct watch *w, struct cycle *cy)
{
	struct rec_pipeline_result res = { 0 };
	struct rec_apply_opts ao = { 0 };
	struct rec_exec_report rep = { 0 };
	struct rec_apply x;
	struct plumb_err err = { 0 };
	const char *img;
	char *out_buf = NULL, *tree = NULL;
	size_t out_len = 0;
	FILE *out = NULL;
	int suspended = ws_suspended(w->dir), retry = ws_take_retry(w->dir), drift, prc;
	struct strvec held_hosts = { 0 };
	size_t held;
	char sb[8];

	ao.cmd = "watch";
	ao.trusted = 1;
	ao.skip_hooks = w->o->skip_hooks;
	ao.partial = 1;
	rec_apply_init(&x, &ao);
	cy->oc = OUT_ERROR;
	if (plan_head(w, cy, &res, &x) != 0)
		goto out;
	pthread_mutex_lock(&w->mu);
	set_str(&w->st.service, res.config->service);
	set_str(&w->st.revision, cy->sha);
	set_str(&w->st.waiting_reason, NULL); /* set again below when it still holds */
	if (retry && w->st.held_revision) {
		wlog(w, "info", "retry", "retrying the held revision %s", short_sha(w->st.held_revision, sb));
		set_str(&w->st.held_revision, NULL);
		set_str(&w->st.held_reason, NULL);
	}
	hosts_from_plan(&w->st, &res, 0);
	overall(&w->st);
	set_str(&w->st.lock_holder, NULL);
	for (size_t i = 0; i < res.plan->nhosts; i++)
		for (size_t k = 0; k < res.plan->hosts[i].nnotes; k++)
			if (res.plan->hosts[i].notes[k].kind == NOTE_LOCK_HELD)
				set_str(&w->st.lock_holder, res.plan->hosts[i].notes[k].text);
	pthread_mutex_unlock(&w->mu);
	/* a changed stateful accessory is not replaced unless it opted in */
	for (size_t i = 0; i < res.plan->nhosts; i++)
		for (size_t k = 0; k < res.plan->hosts[i].nsteps; k++)
			if (held_for_apply(&res.plan->hosts[i].steps[k], res.config) &&
			    !strvec_contains(&held_hosts, res.plan->hosts[i].host))
				strvec_push(&held_hosts, res.plan->hosts[i].host);
	held = diff_plan_drop(res.plan, held_for_apply, res.config);
	if (held) {
		pthread_mutex_lock(&w->mu);
		free(w->st.waiting_reason);
		w->st.waiting_reason = xasprintf(
			"awaiting `plumb apply`: %zu stop-first accessory replacement%s (x-plumb "
			"accessories.<name>.watch_replace: true lets watch do it)", held, held == 1 ? "" : "s");
		pthread_mutex_unlock(&w->mu);
		say_once(w, "warn", "drift", w->st.waiting_reason);
	}
	cy->summary = xasprintf("%zu to add, %zu to change, %zu to destroy", res.plan->add,
				res.plan->change, res.plan->destroy);
	cy->version = xstrdup(res.desired->version);
	snprintf(cy->hash, sizeof(cy->hash), "%s", res.plan->hash);
	drift = w->st.applied_revision && strcmp(w->st.applied_revision, cy->sha) == 0;
	img = missing_image(res.desired);
	if (img) {
		cy->oc = OUT_WAITING;
		pthread_mutex_lock(&w->mu);
		free(w->st.waiting_reason);
		w->st.waiting_reason = xasprintf("waiting for image %s", img);
		pthread_mutex_unlock(&w->mu);
		goto out;
	}
	if (!res.plan->changes) {
		cy->oc = OUT_SYNCED;
		if (res.plan->failed_hosts)
			cycle_error(cy, "%zu host%s could not be observed", res.plan->failed_hosts,
				    res.plan->failed_hosts == 1 ? "" : "s");
		goto out;
	}
	if (drift)
		w->drift_found++;
	if (w->st.held_revision && strcmp(w->st.held_revision, cy->sha) == 0) {
		cy->oc = OUT_HELD;
		goto out;
	}
	if (suspended) {
		cy->oc = OUT_SUSPENDED;
		goto out;
	}
	wlog(w, "info", "apply", "%s %s: %s%s", short_sha(cy->sha, sb), res.desired->version,
	     cy->summary, drift ? " (drift)" : "");
	if (!w->o->skip_hooks) {
		/* hooks are the commit's: written out beside the state */
		tree = xasprintf("%s/tree", w->dir);
		util_rm_tree(tree);
		if (git_src_export(w->g, cy->sha, tree, &err) != 0) {
			cycle_error(cy, "hooks: %s", plumb_err_msg(&err));
			goto out;
		}
		x.o.hooks_root = tree;
	}
	set_phase(w, "applying");
	out = open_memstream(&out_buf, &out_len);
	if (!out)
		abort();
	x.o.out = out;
	prc = rec_apply_execute(&x, &res, &rep, &err);
	fclose(out);
	wlog_lines(w, "info", "step", out_buf);
	wlog_lines(w, prc < 0 ? "error" : "info", "summary", rep.summary);
	if (prc == 0) {
		cy->oc = OUT_APPLIED;
		pthread_mutex_lock(&w->mu);
		hosts_from_plan(&w->st, &res, 1);
		for (size_t i = 0; i < w->st.nhosts; i++)
			if (strvec_contains(&held_hosts, w->st.hosts[i].host))
				set_str(&w->st.hosts[i].sync, "OutOfSync"); /* its accessory awaits apply */
		set_str(&w->st.health, NULL);
		overall(&w->st);
		set_str(&w->st.applied_revision, cy->sha);
		set_str(&w->st.applied_version, res.desired->version);
		w->st.applied_at = now_s();
		pthread_mutex_unlock(&w->mu);
		if (drift) {
			w->drift_healed++;
			notify(w, REC_EV_DRIFT_HEALED, cy->sha, "%s: drift healed on %s (%s)",
			       res.config->service, res.desired->version, cy->summary);
		} else {
			notify(w, REC_EV_APPLIED, cy->sha, "%s: %s deployed (%s)", res.config->service,
			       res.desired->version, cy->summary);
		}
		if (res.plan->failed_hosts)
			cycle_error(cy, "%zu host%s could not be observed: the others converged",
				    res.plan->failed_hosts, res.plan->failed_hosts == 1 ? "" : "s");
	} else if (rep.stale && !rec_interrupted()) {
		/* the hosts moved between the observation and the lock (a
		 * container removed by hand, another deploy): plan again soon */
		cycle_error(cy, "%s", plumb_err_msg(&err));
		w->backoff_k = 0;
	} else if (rep.failed && !rec_interrupted()) {
		cy->oc = OUT_FAILED;
		free(cy->error);
		cy->error = xstrdup(plumb_err_msg(&err));
		pthread_mutex_lock(&w->mu);
		set_str(&w->st.held_revision, cy->sha);
		set_str(&w->st.held_reason, cy->error);
		pthread_mutex_unlock(&w->mu);
		notify(w, REC_EV_FAILED, cy->sha, "%s: the rollout of %s failed: %s", res.config->service,
		       res.desired->version, cy->error);
		notify(w, REC_EV_HELD, cy->sha, "%s: revision %s is held; %s keeps running",
		       res.config->service, short_sha(cy->sha, sb),
		       w->st.applied_version ? w->st.applied_version : "the last good version");
	} else {
		cycle_error(cy, "%s", plumb_err_msg(&err));
		/* not taken: whose is it? (a stale one of ours is released) */
		if (!rep.locked && !rec_interrupted() && break_stale_lock(w, &x) == 0)
			w->backoff_k = 0; /* the next cycle soon */
	}
out:
	strvec_release(&held_hosts);
	if (tree) {
		util_rm_tree(tree);
		free(tree);
	}
	free(out_buf);
	rec_exec_report_release(&rep);
	rec_apply_release(&x);
	rec_pipeline_result_release(&res);
	return cy->oc;
}

/* Runs one cycle and records it; returns the wait before the next, in ms. */
static int cycle(struct watch *w)
{
	struct cycle cy = { 0 };
	double ms;
	int wait = w->o->interval_ms > 0 ? w->o->interval_ms : DEFAULT_INTERVAL_MS;
	char sb[8], *note;
	const char *rev;
	enum outcome prev = w->last_outcome;
	int had = w->have_last;

	cy.t0 = now_s();
	run_cycle(w, &cy);
	ms = (now_s() - cy.t0) * 1000.0;
	rev = cy.sha[0] ? cy.sha : NULL;
	pthread_mutex_lock(&w->mu);
	w->n_out[cy.oc]++;
	rec_metrics_observe(&w->hist, ms / 1000.0);
	w->st.cycles++;
	w->st.last_cycle_ms = ms;
	set_str(&w->st.attempted_revision, rev);
	w->st.attempted_at = cy.t0;
	set_str(&w->st.outcome, outcome_names[cy.oc]);
	if (w->st.health && strcmp(w->st.health, "Progressing") == 0) {
		/* the apply is over, whichever way it ended */
		set_str(&w->st.health, NULL);
		overall(&w->st);
	}
	set_str(&w->st.last_error, cy.error);
	if (cy.oc == OUT_SYNCED || cy.oc == OUT_APPLIED) {
		w->last_success = now_s();
		if (cy.oc == OUT_SYNCED && !cy.error && rev &&
		    !(w->st.applied_revision && strcmp(w->st.applied_revision, rev) == 0)) {
			/* in sync with a revision this watcher did not apply (its
			 * state was lost, another watcher or tool deployed it):
			 * this revision is what runs */
			set_str(&w->st.applied_revision, rev);
			set_str(&w->st.applied_version, cy.version);
			w->st.applied_at = now_s();
		}
	}
	set_str(&w->st.phase, cy.oc == OUT_FAILED || cy.oc == OUT_HELD ? "held"
			      : cy.oc == OUT_WAITING ? "waiting"
			      : cy.oc == OUT_SUSPENDED ? "suspended"
			      : cy.error ? "backoff" : "idle");
	if (cy.oc == OUT_SUSPENDED && w->st.sync && strcmp(w->st.sync, "OutOfSync") == 0)
		note = xasprintf("suspended: %s pending", cy.summary);
	else
		note = NULL;
	status_save(w);
	pthread_mutex_unlock(&w->mu);
	/* the history: every cycle but the repeats of a quiet outcome (in sync,
	 * waiting, held, suspended) on the same revision */
	if (!(had && prev == cy.oc && !cy.error && cy.oc != OUT_APPLIED && cy.oc != OUT_FAILED &&
	      cy.oc != OUT_ERROR && w->hist_rev && rev && strcmp(w->hist_rev, rev) == 0)) {
		history_add(w, rev, cy.version, cy.hash[0] ? cy.hash : NULL, cy.summary, cy.oc,
			    cy.error, cy.t0, ms);
		set_str(&w->hist_rev, rev);
	}
	/* what is said: a change of outcome, an apply, an error */
	switch (cy.oc) {
	case OUT_SYNCED:
		if (!had || prev != OUT_SYNCED || cy.error)
			wlog(w, "info", "synced", "%s: in sync%s%s", short_sha(rev, sb),
			     cy.error ? "; " : "", cy.error ? cy.error : "");
		if (had && (prev == OUT_ERROR || prev == OUT_FAILED) && !cy.error)
			notify(w, REC_EV_RECOVERED, rev, "%s: in sync again at %s",
			       w->st.service ? w->st.service : "", short_sha(rev, sb));
		break;
	case OUT_APPLIED:
		wlog(w, "info", "applied", "%s: converged in %.1f s%s%s", short_sha(rev, sb), ms / 1000.0,
		     cy.error ? "; " : "", cy.error ? cy.error : "");
		break;
	case OUT_WAITING:
		say_once(w, "info", "waiting", w->st.waiting_reason ? w->st.waiting_reason : "waiting");
		break;
	case OUT_FAILED:
		wlog(w, "error", "failed", "%s: the rollout failed (%s); the revision is held until a new "
		     "commit or `plumb retry`", short_sha(rev, sb), cy.error ? cy.error : "");
		break;
	case OUT_HELD:
		say_once(w, "warn", "held", "the head is the held revision: not applied (plumb retry)");
		break;
	case OUT_SUSPENDED:
		say_once(w, "info", "suspended", note ? note : "suspended: nothing pending");
		break;
	case OUT_ERROR:
		wlog(w, "error", "error", "%s", cy.error ? cy.error : "the cycle failed");
		break;
	}
	if (cy.oc != OUT_WAITING && cy.oc != OUT_HELD && cy.oc != OUT_SUSPENDED)
		set_str(&w->last_note, NULL);
	if (w->trace)
		wlog(w, "debug", "trace", "cycle %lu: %.0f ms: fetch %.0f, plan %.0f (slowest host %.0f, "
		     "%zu unchanged), the rest %.0f", w->st.cycles, ms, cy.fetch_ms, cy.plan_ms,
		     cy.observe_ms, cy.unchanged, ms - cy.fetch_ms - cy.plan_ms);
	/* a fault: back off, exponentially, capped */
	if (cy.error) {
		long b = (long)BACKOFF_FIRST_MS << (w->backoff_k < 16 ? w->backoff_k : 16);
		if (b > BACKOFF_CAP_MS)
			b = BACKOFF_CAP_MS;
		if (b > wait && w->backoff_k)
			wait = (int)b;
		else if (b < wait)
			wait = (int)b;
		w->backoff_k++;
	} else {
		w->backoff_k = 0;
	}
	w->last_outcome = cy.oc;
	w->have_last = 1;
	free(note);
	free(cy.error);
	free(cy.summary);
	free(cy.version);
	return wait;
}

/* Waits wait_ms or until a trigger; 1 when triggered. */
static int sleep_until(struct watch *w, int wait_ms)
{
	struct timespec until;
	int triggered;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while (!w->trigger && pthread_cond_timedwait(&w->cv, &w->mu, &until) != ETIMEDOUT)
		;
	triggered = w->trigger;
	w->trigger = 0;
	pthread_mutex_unlock(&w->mu);
	return triggered;
}

/* ---- start and stop ---- */

static int read_secret(const char *path, char **out, struct plumb_err *err)
{
	FILE *f = fopen(path, "re");
	char *buf = xcalloc(1, SECRET_MAX + 1);
	size_t n;

	*out = NULL;
	if (!f) {
		free(buf);
		return plumb_err_set(err, PLUMB_ENOTFOUND, "%s: %s", path, strerror(errno));
	}
	n = fread(buf, 1, SECRET_MAX, f);
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	if (n == SECRET_MAX || !*buf) {
		util_free_secret(buf);
		return plumb_err_set(err, PLUMB_EINVAL, "%s: %s", path,
				     n == SECRET_MAX ? "too long for a webhook secret" : "empty");
	}
	*out = buf;
	return 0;
}

static int start(struct watch *w, struct plumb_err *err)
{
	struct git_src_opts go = { 0 };
	char *cache;
	int rc;

	if ((rc = ws_open_dir(w->dir, err)) != 0 || (rc = ws_pid_write(w->dir, err)) != 0)
		return rc;
	if (ws_status_read(w->dir, &w->st, NULL) != 0)
		memset(&w->st, 0, sizeof(w->st));
	set_str(&w->st.repo, w->o->repo);
	set_str(&w->st.branch, w->o->branch ? w->o->branch : "main");
	set_str(&w->st.destination, w->o->destination);
	set_str(&w->st.phase, "starting");
	rec_git_opts(&go, w->o->allow_foreign_owner);
	go.location = w->o->repo;
	cache = xasprintf("%s/git", w->dir);
	go.cache_dir = cache;
	rc = git_src_open(&w->g, &go, err);
	free(cache);
	if (rc != 0)
		return rc;
	if (w->o->nnotify &&
	    (rc = rec_notifier_new(&w->nf, w->o->notify, w->o->nnotify, 10000, 3, err)) != 0)
		return rc;
	if (w->o->listen) {
		struct rec_http_opts ho = { 0 };
		if (w->o->webhook_secret_file &&
		    (rc = read_secret(w->o->webhook_secret_file, &w->secret, err)) != 0)
			return plumb_err_prefix(err, "webhook secret");
		ho.listen = w->o->listen;
		ho.webhook_secret = w->secret;
		ho.branch = w->o->branch ? w->o->branch : "main";
		ho.status_json = cb_status;
		ho.metrics_text = cb_metrics;
		ho.healthy = cb_healthy;
		ho.trigger = cb_trigger;
		ho.ctx = w;
		if ((rc = rec_http_start(&w->http, &ho, err)) != 0)
			return plumb_err_prefix(err, "listener %s", w->o->listen);
		wlog(w, "info", "listen", "http://%s/ (healthz, status, metrics%s)", w->o->listen,
		     w->secret ? ", webhook" : "");
	}
	return 0;
}

int rec_watch_run(const struct rec_watch_opts *o)
{
	struct watch w = { 0 };
	struct plumb_err err = { 0 };
	pthread_t th;
	int rc = 1, wait;

	w.o = o;
	w.dir = o->state_dir ? o->state_dir : ws_default_dir();
	w.trace = getenv("PLUMB_WATCH_TRACE") && *getenv("PLUMB_WATCH_TRACE");
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	/* SIGHUP is taken by a thread of ours; SIGINT/SIGTERM by the signal
	 * thread (reconciler/lock.h): both blocked before any thread starts */
	sigemptyset(&hup_set);
	sigaddset(&hup_set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &hup_set, NULL);
	rec_signals_install();
	if (start(&w, &err) != 0) {
		esc_eprintf("plumb watch: %s\n", plumb_err_msg(&err));
		goto out;
	}
	if (!o->once) {
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, hup_thread, &w) != 0)
			wlog(&w, "warn", "signal", "SIGHUP is not taken: no thread");
		pthread_attr_destroy(&at);
	}
	wlog(&w, "info", "start", "watching %s (%s) every %.1f s, state in %s%s", o->repo,
	     o->branch ? o->branch : "main",
	     (o->interval_ms > 0 ? o->interval_ms : DEFAULT_INTERVAL_MS) / 1000.0, w.dir,
	     o->skip_hooks ? "; hooks skipped" : "");
	for (;;) {
		wait = cycle(&w);
		if (rec_interrupted()) {
			wlog(&w, "info", "stop", "stopped by %s", rec_sig_name(rec_interrupted()));
			rc = 1;
			break;
		}
		if (o->once) {
			rc = w.last_outcome == OUT_SYNCED || w.last_outcome == OUT_APPLIED ||
			     w.last_outcome == OUT_WAITING ? 0 : 1;
			break;
		}
		sleep_until(&w, wait);
	}
out:
	pthread_mutex_lock(&w.mu);
	if (w.st.phase && strcmp(w.st.phase, "starting") != 0) {
		set_str(&w.st.phase, "stopped");
		status_save(&w);
	}
	pthread_mutex_unlock(&w.mu);
	rec_http_stop(w.http);
	rec_notifier_free(w.nf, 5000);
	util_free_secret(w.secret);
	rec_fleet_keep_release(&w.keep);
	git_src_free(w.g);
	ws_status_release(&w.st);
	free(w.last_log);
	free(w.last_note);
	free(w.hist_rev);
	return rc;
}
