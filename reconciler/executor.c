/*
 * The executor (executor.h). One ex_host per host of the plan that has
 * steps; waves and boot groups are batches of step indices per host, run
 * with one pool worker per host. Everything a worker prints goes through
 * say(), under one mutex, as whole lines.
 */
#include "reconciler/executor.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "providers/docker_cmd.h"
#include "providers/transport.h"
#include "state/escape.h"
#include "state/hash.h"


#define EX_LOG_LINES 30
#define EX_SWITCHED "plumb-switched"
#define EX_READY "plumb-ready-ok"
#define EX_SNAPSHOT_KEEP 3

enum ex_state { EX_TODO, EX_DONE, EX_FAILED };

struct ex_run;

struct ex_host {
	struct ex_run *run;
	const struct diff_host *dh;
	const struct des_host *dsh;
	const struct obs_host *oh;
	size_t fi;              /* the host's index in the fleet */
	struct transport *t;    /* borrowed from the fleet */
	char *home;
	enum ex_state *state;   /* per step of dh */
	size_t *batch;          /* step indices of the current batch */
	size_t nbatch;
	unsigned long commands;
	int failed;
	int booted_app;         /* an app container was booted: tag :latest, prune */
	int finished;           /* … done already (chained into the host's last step) */
	int ready_said;         /* the current primary-role step reported ready */
	int expect_pending;     /* the next command is the first step command: checked first */
	int stale;              /* that check failed: nothing was done on the host */
	int lock_here;          /* the deploy lock goes in front of this host's preparing command */
	/* The images its steps run: those to pull (or to check, an identity
	 * unknown) in the preparing command, and those the observation showed
	 * under their reference with the plan's identity, checked by the expect
	 * check instead (nothing pulled); the kamal network not seen on the host. */
	struct strvec pull_refs, pull_ids, have_refs, have_ids;
	int need_network;
	int pulled;             /* an image was pulled here (a tag may have moved): prune */
	/* A step behind the barrier whose host-side preparation (directories,
	 * assets, a clashing container renamed aside: Kamal's order) ran while
	 * the primary role booted; the name it was set aside under. */
	const struct diff_step *staged;
	char *staged_clash;
	const struct diff_step *doing; /* the step under way (live status line), under run->mu */
	double doing_since;
	char why[PLUMB_ERR_MSG_MAX];
};

struct ex_run {
	const struct rec_exec_opts *o;
	struct ex_host *h;
	size_t nh;
	pthread_mutex_t mu;
	double t0;
	FILE *out;
	int stop; /* the tag moved, or an interruption */
	int locked; /* the deploy lock was taken (lock_cmd) */
	/* On a terminal, a live status line under the progress lines (what each
	 * host is doing), redrawn by a ticker thread; say() clears it first. */
	int tty, ticking, status_shown;
	pthread_t ticker;
	pthread_cond_t tick_cv;
	unsigned long lock_commands; /* sent on a primary host without steps */
	/* The barrier before the other roles (Kamal's, made strict): it opens (1)
	 * once every primary-role container of the first boot group is ready
	 * (switched, when proxied), and closes (-1) when one fails; 0 while
	 * waiting. gate: wave-3 steps of the current batch wait on it. Under mu. */
	pthread_cond_t cv;
	int gate, barrier;
	size_t pending; /* primary-role steps of the batch not yet ready */
	char why[PLUMB_ERR_MSG_MAX]; /* why the run stopped, when no host's step says it */
};
/* ---- output ---- */

static void say(struct ex_run *run, const char *fmt, ...) PLUMB_PRINTF(2, 3);
static void say(struct ex_run *run, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	pthread_mutex_lock(&run->mu);
	if (run->status_shown) {
		fputs("\r\033[K", run->out);
		run->status_shown = 0;
	}
	fprintf(run->out, "[%6.1fs] ", (prov_now_ms() - run->t0) / 1000.0);
	esc_fputs(s, run->out);
	fputc('\n', run->out);
	fflush(run->out);
	pthread_mutex_unlock(&run->mu);
	free(s);
}

static int host_fail(struct ex_host *h, int code, const char *fmt, ...) PLUMB_PRINTF(3, 4);
static int host_fail(struct ex_host *h, int code, const char *fmt, ...)
{
	va_list ap;

	if (h->failed)
		return code;
	h->failed = 1;
	va_start(ap, fmt);
	vsnprintf(h->why, sizeof(h->why), fmt, ap);
	va_end(ap);
	return code;
}

/* ---- commands ---- */

/* Runs c on h (its stdin: in, when given); a non-zero status is PLUMB_ERROR. */
static void expect_cmd(struct ex_host *h, struct prov_cmd *c);
static const struct cfg_accessory *booted_accessory(const struct config *c, const struct diff_step *s);
static int files_install(struct ex_host *h, const struct cfg_accessory *a);
static void append_unit(struct prov_cmd *c, enum prov_join join, const struct prov_cmd *sub,
			int tolerate);

/* Runs c on h (its stdin: in, when given); a non-zero status is PLUMB_ERROR.
 * The host's first step command is preceded by the check that what its
 * steps act on is what was observed (h->stale, and the failure, when not). */
static int ex_cmd(struct ex_host *h, const struct prov_cmd *c, const char *in, size_t in_len,
		  struct cmd_result *r)
{
	struct prov_cmd full;
	int rc;

	prov_cmd_init(&full);
	if (h->expect_pending) {
		h->expect_pending = 0;
		expect_cmd(h, &full);
		if (full.n) {
			append_unit(&full, PROV_JOIN_AND, c, 0);
			c = &full;
		}
	}
	h->commands++;
	if (in)
		rc = transport_run_cmd_input(h->t, c, in, in_len, r);
	else
		rc = transport_run_cmd(h->t, c, r);
	if (rc == 0 && r->status != 0)
		rc = PLUMB_ERROR;
	if (rc < 0 && c == &full && r->err.buf && strstr(r->err.buf, DCMD_EXPECT_MARK)) {
		h->stale = 1;
		const char *m = strstr(r->err.buf, DCMD_EXPECT_MARK) + strlen(DCMD_EXPECT_MARK) + 1;
		host_fail(h, rc, "%.*s", (int)strcspn(m, "\n"), m);
	}
	prov_cmd_release(&full);
	return rc;
}

/* What a failed command said: its own words (escaped later; trailing blanks
 * dropped in place), else the transport's. */
static const char *cmd_said(struct ex_host *h, struct cmd_result *r, int rc)
{
	struct sbuf *b = r->err.len ? &r->err : r->out.len ? &r->out : NULL;

	if (rc != PLUMB_ERROR || !b)
		return plumb_err_msg(transport_err(h->t));
	while (b->len && isspace((unsigned char)b->buf[b->len - 1]))
		b->buf[--b->len] = '\0';
	return b->buf;
}

/* The last line of s (len bytes) that is exactly 64 hex digits (docker run -d's id). */
static char *last_container_id(const char *s, size_t len)
{
	char *id = NULL;
	size_t i = 0;

	while (i < len) {
		size_t e = i;
		while (e < len && s[e] != '\n')
			e++;
		if (e - i == 64) {
			size_t k = i;
			while (k < e && isxdigit((unsigned char)s[k]))
				k++;
			if (k == e) {
				free(id);
				id = xstrndup(s + i, 12);
			}
		}
		i = e + 1;
	}
	return id;
}

/*
 * Appends sub to c, joined by join, as one unit of an && chain: directly
 * when sub is itself an && chain, else as `sh -c '<sub rendered>'` (a ; or
 * || inside would otherwise bind to the whole chain: `a && b ; c` runs c
 * whatever a did, and its status is c's). tolerate: the unit succeeds
 * whatever sub's status (`…; true`: housekeeping).
 */
static void append_unit(struct prov_cmd *c, enum prov_join join, const struct prov_cmd *sub,
			int tolerate)
{
	int plain = !tolerate && !sub->err;
	struct sbuf r;

	for (size_t i = 1; i < sub->n && plain; i++)
		plain = sub->v[i].join == PROV_JOIN_AND;
	if (plain) {
		for (size_t i = 0; i < sub->n; i++) {
			prov_cmd_begin(c, i == 0 ? join : PROV_JOIN_AND);
			for (size_t k = 0; k < sub->v[i].argv.n; k++)
				prov_cmd_arg(c, sub->v[i].argv.v[k]);
			if (sub->v[i].quiet)
				prov_cmd_quiet(c);
		}
		return;
	}
	sbuf_init(&r, 0);
	if (prov_cmd_render(sub, &r) != 0) {
		c->err = PLUMB_EINVAL; /* latched: reported when c is rendered */
		sbuf_release(&r);
		return;
	}
	if (tolerate)
		sbuf_adds(&r, "; true");
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "sh", "-c", r.buf, NULL);
	sbuf_release(&r);
}

static void audit(struct ex_host *h, struct prov_cmd *c, const char *fmt, ...) PLUMB_PRINTF(3, 4);
static void audit(struct ex_host *h, struct prov_cmd *c, const char *fmt, ...)
{
	const struct rec_exec_opts *o = h->run->o;
	char *s = NULL;
	va_list ap;

	if (!o->audit)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	o->audit(c, PROV_JOIN_AND, s, o->ctx);
	free(s);
}

/* sh -c <ready.sh> plumb-ready NAME TIMEOUT DELAY */
static void ready_cmd(struct prov_cmd *c, enum prov_join join, const char *name, int timeout,
		      int delay)
{
	char t[16], d[16];

	snprintf(t, sizeof(t), "%d", timeout > 0 ? timeout : 30);
	snprintf(d, sizeof(d), "%d", delay > 0 ? delay : 0);
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "sh", "-c", prov_ready_script, "plumb-ready", name, t, d, NULL);
}

static void dctx(const struct ex_host *h, struct dcmd_ctx *x)
{
	memset(x, 0, sizeof(*x));
	x->config = h->run->o->config;
	x->ds = h->run->o->ds;
	x->host = h->dh->host;
	x->home = h->home;
}

static const struct des_env_file *env_file_of(const struct ex_host *h, const char *path)
{
	if (!path || !h->dsh)
		return NULL;
	for (size_t i = 0; i < h->dsh->nenv_files; i++)
		if (strcmp(h->dsh->env_files[i].path, path) == 0)
			return &h->dsh->env_files[i];
	return NULL;
}

/* The env file's install command, first in c; its content in *in (a secret). */
static int env_install(struct ex_host *h, struct prov_cmd *c, const struct des_env_file *f,
		       char **in, struct plumb_err *err)
{
	const struct obs_env_file *of = f ? obs_host_env_file(h->oh, f->path) : NULL;

	if (!f)
		return 0;
	/* the host's copy is already what would be written (salted hashes of
	 * the whole file, and its mode): left as it is */
	if (of && !f->unavailable && f->content_hash[0] &&
	    strcmp(of->content_hash, f->content_hash) == 0 && (of->mode & 0777) == 0600)
		return 0;
	return dcmd_env_file_write(c, in, f, h->run->o->config, err);
}

static const struct obs_container *observed(const struct ex_host *h, const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < h->oh->ncontainers; i++)
		if (strcmp(h->oh->containers[i].name, name) == 0)
			return &h->oh->containers[i];
	return NULL;
}

/* Another running container of the step's app role (rollback: the current one). */
static const struct obs_container *running_other(const struct ex_host *h, const struct diff_step *s)
{
	const struct des_container *dc = s->desired;

	for (size_t i = 0; dc && i < h->oh->ncontainers; i++) {
		const struct obs_container *oc = &h->oh->containers[i];
		if (oc->kind == OBS_APP && oc->role && strcmp(oc->role, dc->role) == 0 &&
		    strcmp(oc->name, s->name) != 0 && oc->state && strcmp(oc->state, "running") == 0 &&
		    strncmp(oc->name, dc->prefix, strlen(dc->prefix)) == 0)
			return oc;
	}
	return NULL;
}

/* The step boots a new app container (docker run), not a retained one. */
static int boots_new(const struct ex_host *h, const struct diff_step *s)
{
	const struct obs_container *have;

	if (s->target != DIFF_T_APP)
		return 0;
	if (s->action == DIFF_CREATE)
		return 1;
	if (s->action != DIFF_REPLACE)
		return 0;
	have = observed(h, s->name);
	return !(h->run->o->rollback && have && have->state && strcmp(have->state, "running") != 0);
}

/* The check in front of a host's first step command: every observed
 * container its steps act on still has the id observed. */
static void expect_cmd(struct ex_host *h, struct prov_cmd *c)
{
	struct strvec names = { 0 }, ids = { 0 };

	for (size_t k = 0; k < h->dh->nsteps; k++) {
		const struct diff_step *s = &h->dh->steps[k];
		const struct obs_container *oc[3];

		if (s->action == DIFF_REMOVE_ORPHAN && !h->run->o->plan->prune)
			continue;
		oc[0] = observed(h, s->name);
		oc[1] = s->old_name ? observed(h, s->old_name) : NULL;
		oc[2] = s->target == DIFF_T_APP ? running_other(h, s) : NULL;
		for (size_t i = 0; i < 3; i++)
			if (oc[i] && oc[i]->id && strlen(oc[i]->id) == 64 &&
			    !strvec_contains(&names, oc[i]->name)) {
				strvec_push(&names, oc[i]->name);
				strvec_push(&ids, oc[i]->id);
			}
	}
	for (size_t i = 0; i < h->have_refs.n; i++) {
		strvec_push(&names, h->have_refs.v[i]);
		strvec_push(&ids, h->have_ids.v[i]);
	}
	if (names.n)
		dcmd_expect_ids(c, PROV_JOIN_AND, (const char *const *)names.v,
				(const char *const *)ids.v, names.n, h->have_refs.n);
	strvec_release(&names);
	strvec_release(&ids);
}

static char *aside_name(const char *name)
{
	char salt[33];

	hash_salt_new(salt);
	return xasprintf("%s_replaced_%.16s", name, salt);
}

/*
 * A new container that did not become ready: its logs shown, then it is
 * removed (a retained one that was started is stopped again instead).
 * created: the id `docker run` printed in this run; only that container is
 * ever removed, never whatever holds the name (when the chain failed before
 * the run, the name is still the old container's: nothing was created).
 */
static void boot_failed(struct ex_host *h, const char *name, const char *created, int keep)
{
	struct prov_cmd c;
	struct cmd_result r = { 0 };
	struct sbuf tail;

	if (!keep && !created) {
		say(h->run, "%s: %s was not created; nothing to remove", h->dh->host, name);
		return;
	}
	if (!keep)
		name = created;
	prov_cmd_init(&c);
	dcmd_logs_tail(&c, PROV_JOIN_SEQ, name, EX_LOG_LINES);
	if (keep)
		dcmd_stop(&c, PROV_JOIN_SEQ, name, 0);
	else
		dcmd_remove(&c, PROV_JOIN_SEQ, name);
	prov_cmd_quiet(&c);
	ex_cmd(h, &c, NULL, 0, &r);
	{
		/* docker rm/stop echo the name last: not part of the logs */
		size_t nl = strlen(name);
		if (r.out.len > nl && r.out.buf[r.out.len - 1] == '\n' &&
		    memcmp(r.out.buf + r.out.len - 1 - nl, name, nl) == 0 &&
		    (r.out.len == nl + 1 || r.out.buf[r.out.len - 2 - nl] == '\n'))
			r.out.len -= nl + 1;
		else if (r.out.len == nl + 1 && memcmp(r.out.buf, name, nl) == 0)
			r.out.len = 0;
	}
	sbuf_init(&tail, 0);
	esc_lines(&tail, r.out.buf, r.out.len);
	esc_lines(&tail, r.err.buf, r.err.len);
	say(h->run, "%s: %s %s; the last %d lines of its logs:%s", h->dh->host, name,
	    keep ? "stopped again" : "removed", EX_LOG_LINES, tail.len ? "" : " (none)");
	pthread_mutex_lock(&h->run->mu);
	if (h->run->status_shown) {
		fputs("\r\033[K", h->run->out);
		h->run->status_shown = 0;
	}
	fputs(tail.buf, h->run->out);
	if (tail.len && tail.buf[tail.len - 1] != '\n')
		fputc('\n', h->run->out);
	pthread_mutex_unlock(&h->run->mu);
	sbuf_release(&tail);
	cmd_result_release(&r);
	prov_cmd_release(&c);
}

/* ---- steps ---- */

/* boot_failed, then a container set aside for the new name gets it back
 * (a rename that fails quietly when the chain stopped before setting it aside). */
static void rename_back(struct ex_host *h, const char *clash, const char *name)
{
	struct prov_cmd c;
	struct cmd_result r = { 0 };

	prov_cmd_init(&c);
	dcmd_rename(&c, PROV_JOIN_SEQ, clash, name);
	prov_cmd_quiet(&c);
	ex_cmd(h, &c, NULL, 0, &r);
	cmd_result_release(&r);
	prov_cmd_release(&c);
}

static void boot_undo(struct ex_host *h, const char *name, const char *created, int keep,
		      const char *clash)
{
	boot_failed(h, name, created, keep);
	if (clash)
		rename_back(h, clash, name);
}

static void finish_cmd(struct ex_host *h, struct prov_cmd *c, enum prov_join join);
static void primary_ready(struct ex_host *h, const struct diff_step *s);

/* s is the host's last step: nothing after it in the plan. */
static int last_step(const struct ex_host *h, const struct diff_step *s)
{
	return s == &h->dh->steps[h->dh->nsteps - 1];
}

/* A proxied role's custom TLS certificate and key (proxy.ssl
 * certificate_pem/private_key_pem), written where kamal-proxy deploy points,
 * each from stdin in its own round trip; nothing for a role without them. */
static int tls_files(struct ex_host *h, const struct des_container *dc, const struct dcmd_ctx *x)
{
	static const enum dcmd_tls_file which[] = { DCMD_TLS_CERT, DCMD_TLS_KEY };
	int rc = 0;

	for (size_t i = 0; i < 2 && rc >= 0; i++) {
		struct plumb_err err = { 0 };
		struct cmd_result r = { 0 };
		struct prov_cmd c;
		char *pem = NULL;

		prov_cmd_init(&c);
		rc = dcmd_proxy_tls_write(&c, &pem, dc, which[i], x, &err);
		if (rc < 0)
			host_fail(h, rc, "%s", plumb_err_msg(&err));
		else if (rc > 0 && (rc = ex_cmd(h, &c, pem, strlen(pem), &r)) < 0)
			host_fail(h, rc, "writing the TLS %s failed: %s",
				  which[i] == DCMD_TLS_CERT ? "certificate" : "key", cmd_said(h, &r, rc));
		util_free_secret(pem);
		cmd_result_release(&r);
		prov_cmd_release(&c);
	}
	return rc < 0 ? rc : 0;
}

/*
 * Appends main and side to c as one unit run at the same time on the host:
 * its status is main's; side is housekeeping (its status ignored).
 */
static void append_parallel(struct prov_cmd *c, enum prov_join join, const struct prov_cmd *main_,
			    const struct prov_cmd *side)
{
	static const char par[] = "sh -c \"$2\" & p=$!; sh -c \"$1\"; s=$?; wait $p; exit $s";
	struct sbuf a, b;

	if (!side->n) {
		append_unit(c, join, main_, 0);
		return;
	}
	if (!main_->n) {
		append_unit(c, join, side, 1);
		return;
	}
	sbuf_init(&a, 0);
	sbuf_init(&b, 0);
	if (prov_cmd_render(main_, &a) != 0 || prov_cmd_render(side, &b) != 0) {
		c->err = PLUMB_EINVAL; /* latched: reported when c is rendered */
	} else {
		prov_cmd_begin(c, join);
		prov_cmd_args(c, "sh", "-c", par, "plumb-par", a.buf, b.buf, NULL);
	}
	sbuf_release(&a);
	sbuf_release(&b);
}

/* The end of an app step: the old container stopped (and audited), and on
 * the host's last step :latest and pruning beside it. */
static void step_tail(struct ex_host *h, const struct diff_step *s, const char *old,
		      struct prov_cmd *c, enum prov_join join)
{
	const struct des_container *dc = s->desired;
	struct prov_cmd m, f;

	prov_cmd_init(&m);
	prov_cmd_init(&f);
	if (old) {
		dcmd_stop(&m, PROV_JOIN_AND, old, dcmd_stop_timeout(h->run->o->config, dc->role));
		audit(h, &m, "[%s] Stopped app container %s", dc->role, old);
	}
	if (last_step(h, s)) {
		finish_cmd(h, &f, PROV_JOIN_SEQ);
		h->finished = 1;
	}
	append_parallel(c, join, &m, &f);
	prov_cmd_release(&m);
	prov_cmd_release(&f);
}

/*
 * What Kamal does on the host before a role's container boots (before the
 * barrier, for the other roles): the directories, the assets, a container
 * holding the new name set aside (a same-version redeploy, an earlier failed
 * attempt: *clash, the name it gets).
 */
static void boot_prepare(struct ex_host *h, const struct diff_step *s, const char *old,
			 const struct dcmd_ctx *x, struct prov_cmd *c, char **clash)
{
	const struct des_container *dc = s->desired;
	const struct obs_container *cur = old ? observed(h, old) : NULL;
	const char *ov = cur && strlen(cur->name) > strlen(dc->prefix) + 1
				 ? cur->name + strlen(dc->prefix) + 1 : NULL;
	struct prov_cmd a;

	dcmd_prepare_dirs(c, PROV_JOIN_AND, dc, x);
	prov_cmd_init(&a);
	if (dcmd_assets_prepare(&a, PROV_JOIN_AND, dc, x, ov) > 0)
		append_unit(c, PROV_JOIN_AND, &a, 0);
	prov_cmd_release(&a);
	if (observed(h, s->name)) {
		*clash = aside_name(s->name);
		dcmd_rename(c, PROV_JOIN_AND, s->name, *clash);
	}
}

/*
 * A step behind the barrier that boots a new container, while the barrier
 * is still shut: its host-side preparation (boot_prepare, behind the expect
 * check when it is the host's first command) runs now, so that only the
 * boot itself waits for the primary role. 0 when done or not needed.
 */
static int boot_stage(struct ex_host *h, const struct diff_step *s)
{
	struct dcmd_ctx x;
	struct prov_cmd c;
	struct cmd_result r = { 0 };
	char *clash = NULL;
	int rc, decided;

	if (!boots_new(h, s) || !s->desired)
		return 0;
	pthread_mutex_lock(&h->run->mu);
	decided = h->run->barrier != 0;
	pthread_mutex_unlock(&h->run->mu);
	if (decided)
		return 0; /* open (or shut for good): nothing to overlap */
	dctx(h, &x);
	prov_cmd_init(&c);
	boot_prepare(h, s, s->old_name, &x, &c, &clash);
	rc = ex_cmd(h, &c, NULL, 0, &r);
	if (rc < 0) {
		if (!h->failed)
			host_fail(h, rc, "preparing %s failed: %s", s->name, cmd_said(h, &r, rc));
		free(clash);
	} else {
		h->staged = s;
		h->staged_clash = clash;
	}
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return rc;
}

/*
 * An app role: boot (or start) the new container and wait until it is ready;
 * then, for a proxied role, switch traffic to it (one command from boot to
 * switch); then stop the old one. A step that opens the barrier for the
 * other roles stops the old one in a second command, after the barrier is
 * opened; any other does it in the same command. Markers in the output say
 * how far a failed command got.
 * start: the container exists (stopped): started, not created.
 */
static int step_app(struct ex_host *h, const struct diff_step *s, int start, const char *old)
{
	const struct rec_exec_opts *o = h->run->o;
	const struct des_container *dc = s->desired;
	int gatekeeper = s->wave == 2 && h->run->gate;
	struct plumb_err err = { 0 };
	struct dcmd_ctx x;
	struct prov_cmd c;
	struct cmd_result r = { 0 };
	char *in = NULL, *clash = NULL, *created = NULL;
	const char *mark;
	int rc, delay = dc->proxied ? 0 : o->config->readiness_delay;

	dctx(h, &x);
	prov_cmd_init(&c);
	if (dc->proxied && (rc = tls_files(h, dc, &x)) < 0)
		goto out;
	if (!start) {
		rc = env_install(h, &c, env_file_of(h, dc->env_file), &in, &err);
		if (rc < 0) {
			rc = host_fail(h, rc, "%s", plumb_err_msg(&err));
			goto out;
		}
		if (h->staged == s) {
			clash = h->staged_clash; /* prepared before the barrier */
			h->staged_clash = NULL;
			h->staged = NULL;
		} else {
			boot_prepare(h, s, old, &x, &c, &clash);
		}
		if (clash && old && strcmp(old, s->name) == 0)
			old = clash; /* the one to stop is the one set aside */
		rc = dcmd_run(&c, PROV_JOIN_AND, dc, NULL, &x, &err);
		if (rc < 0) {
			rc = host_fail(h, rc, "%s", plumb_err_msg(&err));
			goto out;
		}
	} else {
		dcmd_start(&c, PROV_JOIN_AND, s->name);
	}
	ready_cmd(&c, PROV_JOIN_AND, s->name, o->config->deploy_timeout, delay);
	audit(h, &c, "[%s] Booted app version %s", dc->role, o->ds->version);
	prov_cmd_begin(&c, PROV_JOIN_AND);
	prov_cmd_args(&c, "echo", EX_READY, NULL);
	if (dc->proxied) {
		rc = dcmd_proxy_deploy_named(&c, PROV_JOIN_AND, dc, s->name, &x, &err);
		if (rc < 0) {
			rc = host_fail(h, rc, "%s", plumb_err_msg(&err));
			goto out;
		}
		/* past this marker the new container serves: nothing after it undoes it */
		prov_cmd_begin(&c, PROV_JOIN_AND);
		prov_cmd_args(&c, "echo", EX_SWITCHED, NULL);
	}
	if (!gatekeeper)
		step_tail(h, s, old, &c, PROV_JOIN_AND);
	rc = ex_cmd(h, &c, in, in ? strlen(in) : 0, &r);
	mark = r.out.buf ? strstr(r.out.buf, EX_READY "\n") : NULL;
	if (!start)
		created = last_container_id(r.out.buf, mark ? (size_t)(mark - r.out.buf) : r.out.len);
	if (rc < 0 && !mark) {
		host_fail(h, rc, "%s did not become ready: %s", s->name, cmd_said(h, &r, rc));
		if (!h->stale) /* else nothing ran: nothing to undo */
			boot_undo(h, s->name, created, start, clash);
		goto out;
	}
	h->booted_app = 1;
	if (rc < 0 && dc->proxied && !strstr(mark, EX_SWITCHED "\n")) {
		host_fail(h, rc, "the traffic switch failed (the old container keeps serving): %s",
			  cmd_said(h, &r, rc));
		boot_undo(h, s->name, created, start, clash);
		goto out;
	}
	if (rc >= 0 && gatekeeper) {
		primary_ready(h, s); /* ready, and switched when proxied: the other roles may boot */
		cmd_result_release(&r);
		prov_cmd_release(&c);
		prov_cmd_init(&c);
		step_tail(h, s, old, &c, PROV_JOIN_AND);
		if (c.n)
			rc = ex_cmd(h, &c, NULL, 0, &r);
	}
	if (rc < 0) /* the tail, in the boot command or after it */
		host_fail(h, rc, "%s; stopping the old container failed: %s",
			  dc->proxied ? "traffic moved to the new container" : "the new container is ready",
			  cmd_said(h, &r, rc));
out:
	util_free_secret(in);
	free(created);
	free(clash);
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return rc;
}

/* One data source for snapshot.sh: a host path, or "volume:NAME:IMAGE". */
static void data_push(struct strvec *out, char *src)
{
	if (strvec_contains(out, src))
		free(src);
	else
		strvec_push_take(out, src);
}

/*
 * What holds an accessory's data, for snapshot.sh: the host paths of its
 * bind mounts (home-relative ones resolved) and its named volumes, as the
 * desired spec mounts them and as the old container (old, when observed)
 * mounts them now (a changed mount: the data is where the old one has it;
 * an anonymous volume of the image's VOLUME is data too). A volume is
 * copied by a container of the old container's image, already on the host
 * (else the new one's, pulled before anything is stopped):
 * "volume:NAME:IMAGE".
 */
static void data_paths(const struct ex_host *h, const struct des_container *dc,
		       const struct obs_container *old, struct strvec *out)
{
	const char *img = old && old->image_id && *old->image_id ? old->image_id : dc->image_ref;

	for (size_t i = 0; i < dc->nmounts; i++) {
		const struct des_mount *m = &dc->mounts[i];
		if (m->kind == DES_MOUNT_BIND)
			data_push(out, xstrdup(m->source));
		else if (m->kind == DES_MOUNT_HOME && h->home)
			data_push(out, xasprintf("%s/%s", h->home, m->source));
		else if (m->kind == DES_MOUNT_VOLUME && m->source[0] && img)
			data_push(out, xasprintf("volume:%s:%s", m->source, img));
	}
	for (size_t i = 0; old && i < old->nmounts; i++) {
		const struct obs_mount *m = &old->mounts[i];
		if (!m->source || !*m->source || !m->type)
			continue;
		if (strcmp(m->type, "bind") == 0 && m->source[0] == '/')
			data_push(out, xstrdup(m->source));
		else if (strcmp(m->type, "volume") == 0 && img && !strchr(m->source, ':'))
			data_push(out, xasprintf("volume:%s:%s", m->source, img));
	}
}

static void snapshot_cmd(struct prov_cmd *c, enum prov_join join, const char *mode,
			 const char *base, const struct strvec *paths)
{
	char keep[8];

	snprintf(keep, sizeof(keep), "%d", EX_SNAPSHOT_KEEP);
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "sh", "-c", prov_snapshot_script, "plumb-snapshot", mode, base, keep, NULL);
	for (size_t i = 0; i < paths->n; i++)
		prov_cmd_arg(c, paths->v[i]);
}

/*
 * A stop-first replacement (an accessory, a drifted kamal-proxy): snapshot
 * check (room, every path readable), stop the old one, rename it aside,
 * snapshot copy, run the new one on the same data, wait, remove the old one
 * — one round trip. On failure: the new one removed, the old one renamed
 * back and started. The old one may already be aside (diff_is_aside: a
 * replacement interrupted by kill -9, no container holds the name): then it
 * is not renamed again, and on failure it gets the name back and is started
 * (it was the running accessory before the interruption).
 */
static int step_stop_first(struct ex_host *h, const struct diff_step *s)
{
	const struct rec_exec_opts *o = h->run->o;
	const struct des_container *dc = s->desired;
	const struct xplumb_accessory *xa = dc->kind == DES_ACCESSORY
						    ? config_xplumb_accessory(o->config, dc->role) : NULL;
	const struct obs_container *oc = observed(h, s->old_name);
	int running = oc && oc->state && strcmp(oc->state, "running") == 0;
	int was_aside = diff_is_aside(s->old_name, s->name);
	int snap = dc->kind == DES_ACCESSORY && (!xa || xa->snapshot);
	const char *back = was_aside ? s->name : s->old_name;
	struct plumb_err err = { 0 };
	struct strvec paths = { 0 };
	struct dcmd_ctx x;
	struct prov_cmd c;
	struct cmd_result r = { 0 };
	char *in = NULL, *aside = was_aside ? xstrdup(s->old_name) : aside_name(s->old_name);
	char *base = NULL;
	int rc;

	dctx(h, &x);
	prov_cmd_init(&c);
	/* the files first: the running one keeps the ones it has open (each is
	 * renamed over, never written in place) */
	if ((rc = files_install(h, booted_accessory(o->config, s))) < 0)
		goto out;
	rc = env_install(h, &c, env_file_of(h, dc->env_file), &in, &err);
	if (rc < 0) {
		rc = host_fail(h, rc, "%s", plumb_err_msg(&err));
		goto out;
	}
	dcmd_prepare_dirs(&c, PROV_JOIN_AND, dc, &x);
	if (snap) {
		data_paths(h, dc, oc, &paths);
		if (!paths.n)
			snap = 0;
	}
	if (snap) {
		if (!h->home) {
			rc = host_fail(h, PLUMB_ERROR, "%s: the SSH user's home is unknown: no snapshot", s->name);
			goto out;
		}
		base = xasprintf("%s/.kamal/snapshots/%s", h->home, dc->name);
		snapshot_cmd(&c, PROV_JOIN_AND, "check", base, &paths);
	}
	if (running)
		dcmd_stop(&c, PROV_JOIN_AND, s->old_name, o->config->stop_timeout);
	if (!was_aside)
		dcmd_rename(&c, PROV_JOIN_AND, s->old_name, aside);
	if (snap)
		snapshot_cmd(&c, PROV_JOIN_AND, "copy", base, &paths);
	rc = dcmd_run(&c, PROV_JOIN_AND, dc, NULL, &x, &err);
	if (rc < 0) {
		rc = host_fail(h, rc, "%s", plumb_err_msg(&err));
		goto out;
	}
	ready_cmd(&c, PROV_JOIN_AND, s->name, o->config->deploy_timeout, 0);
	dcmd_remove(&c, PROV_JOIN_AND, aside);
	audit(h, &c, "Replaced %s %s (stop-first)", dc->kind == DES_PROXY ? "proxy" : "accessory",
	      s->name);
	rc = ex_cmd(h, &c, in, in ? strlen(in) : 0, &r);
	{
		const char *p = strstr(r.out.buf, "snapshot: ");
		if (p) {
			size_t n = strcspn(p, "\n");
			say(h->run, "%s: %s: %.*s", h->dh->host, s->name, (int)n, p);
		}
	}
	if (rc < 0) {
		/* snapshot.sh's check refuses (room, an unreadable path) before
		 * anything is stopped */
		int refused = strstr(r.out.buf, "plumb-snapshot: refused") != NULL;
		char *created = last_container_id(r.out.buf, r.out.len);

		host_fail(h, rc, "%s: stop-first replacement failed: %s", s->name, cmd_said(h, &r, rc));
		cmd_result_release(&r);
		if (refused || h->stale) {
			free(created);
			goto out; /* refused before anything was stopped */
		}
		boot_failed(h, s->name, created, 0);
		free(created);
		prov_cmd_release(&c);
		prov_cmd_init(&c);
		/* back to the old one, on its untouched data */
		dcmd_rename(&c, PROV_JOIN_SEQ, aside, back);
		prov_cmd_quiet(&c);
		if (running || was_aside)
			dcmd_start(&c, PROV_JOIN_SEQ, back);
		if (ex_cmd(h, &c, NULL, 0, &r) == 0)
			say(h->run, "%s: %s is back on its data", h->dh->host, back);
		else
			say(h->run, "%s: restoring %s failed: %s (container %s)", h->dh->host,
			    back, cmd_said(h, &r, PLUMB_ERROR), aside);
	}
out:
	util_free_secret(in);
	strvec_release(&paths);
	free(aside);
	free(base);
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return rc;
}

/*
 * What an interrupted stop-first replacement left (diff.h), one round trip:
 *   DIFF_RESTORE       the accessory set aside, matching the spec: renamed
 *                      back, started, ready. Nothing to undo on failure: it
 *                      is the accessory's only container, on its data.
 *   DIFF_REMOVE_ASIDE  a stopped copy set aside: removed only once the
 *                      accessory (s->desired) runs and is ready.
 */
static int step_aside(struct ex_host *h, const struct diff_step *s)
{
	const struct rec_exec_opts *o = h->run->o;
	int restore = s->action == DIFF_RESTORE;
	const char *acc = restore ? s->name : s->desired ? s->desired->name : NULL;
	struct prov_cmd c;
	struct cmd_result r = { 0 };
	int rc;

	if (!acc || !s->old_name)
		return host_fail(h, PLUMB_EINVAL, "%s: no accessory for the step", s->name);
	prov_cmd_init(&c);
	if (restore) {
		dcmd_rename(&c, PROV_JOIN_AND, s->old_name, acc);
		dcmd_start(&c, PROV_JOIN_AND, acc);
	}
	ready_cmd(&c, PROV_JOIN_AND, acc, o->config->deploy_timeout, 0);
	if (!restore)
		dcmd_remove(&c, PROV_JOIN_AND, s->old_name);
	audit(h, &c, restore ? "Restored accessory %s (renamed back from %s)"
			     : "Removed %2$s (set aside by an interrupted replacement of %1$s)",
	      acc, s->old_name);
	rc = ex_cmd(h, &c, NULL, 0, &r);
	if (rc < 0)
		host_fail(h, rc, restore ? "restoring %s from %s failed: %s"
					 : "%s is not ready, %s kept: %s",
			  acc, s->old_name, cmd_said(h, &r, rc));
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return rc;
}

/* A container created fresh (an accessory, kamal-proxy): run, wait. */
static int step_create_other(struct ex_host *h, const struct diff_step *s)
{
	const struct rec_exec_opts *o = h->run->o;
	const struct des_container *dc = s->desired;
	struct plumb_err err = { 0 };
	struct dcmd_ctx x;
	struct prov_cmd c;
	struct cmd_result r = { 0 };
	char *in = NULL;
	int rc;

	dctx(h, &x);
	prov_cmd_init(&c);
	if ((rc = files_install(h, booted_accessory(o->config, s))) < 0)
		goto out;
	rc = env_install(h, &c, env_file_of(h, dc->env_file), &in, &err);
	if (rc < 0) {
		rc = host_fail(h, rc, "%s", plumb_err_msg(&err));
		goto out;
	}
	dcmd_prepare_dirs(&c, PROV_JOIN_AND, dc, &x);
	rc = dcmd_run(&c, PROV_JOIN_AND, dc, NULL, &x, &err);
	if (rc < 0) {
		rc = host_fail(h, rc, "%s", plumb_err_msg(&err));
		goto out;
	}
	ready_cmd(&c, PROV_JOIN_AND, s->name, o->config->deploy_timeout, 0);
	audit(h, &c, "Booted %s %s", dc->kind == DES_PROXY ? "proxy" : "accessory", s->name);
	rc = ex_cmd(h, &c, in, in ? strlen(in) : 0, &r);
	if (rc < 0) {
		char *created = last_container_id(r.out.buf, r.out.len);
		host_fail(h, rc, "%s did not become ready: %s", s->name, cmd_said(h, &r, rc));
		if (!h->stale)
			boot_failed(h, s->name, created, 0);
		free(created);
	}
out:
	util_free_secret(in);
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return rc;
}

/* One simple step: rename, start (not an app replacement), env file, removal. */
static int step_simple(struct ex_host *h, const struct diff_step *s)
{
	const struct rec_exec_opts *o = h->run->o;
	struct plumb_err err = { 0 };
	struct prov_cmd c;
	struct cmd_result r = { 0 };
	char *in = NULL;
	int rc = 0;

	prov_cmd_init(&c);
	switch (s->action) {
	case DIFF_RENAME:
		dcmd_rename(&c, PROV_JOIN_AND, s->old_name, s->name);
		audit(h, &c, "Renamed %s to %s", s->old_name, s->name);
		break;
	case DIFF_START:
		dcmd_start(&c, PROV_JOIN_AND, s->old_name ? s->old_name : s->name);
		ready_cmd(&c, PROV_JOIN_AND, s->old_name ? s->old_name : s->name,
			  o->config->deploy_timeout, 0);
		audit(h, &c, "Started %s", s->name);
		break;
	case DIFF_WRITE_ENV_FILE:
		rc = env_install(h, &c, s->desired_file, &in, &err);
		if (rc < 0) {
			rc = host_fail(h, rc, "%s", plumb_err_msg(&err));
			goto out;
		}
		audit(h, &c, "Wrote env file %s", s->name);
		break;
	case DIFF_REMOVE_ORPHAN:
		if (!o->plan->prune)
			goto out; /* listed, kept: pruning is off */
		dcmd_stop(&c, PROV_JOIN_SEQ, s->old_name ? s->old_name : s->name, 0);
		prov_cmd_quiet(&c);
		dcmd_remove(&c, PROV_JOIN_SEQ, s->old_name ? s->old_name : s->name);
		audit(h, &c, "Removed %s", s->name);
		break;
	case DIFF_PRUNE:
		dcmd_remove(&c, PROV_JOIN_AND, s->old_name ? s->old_name : s->name);
		break;
	default:
		rc = host_fail(h, PLUMB_EINVAL, "%s: no simple step", s->name);
		goto out;
	}
	rc = ex_cmd(h, &c, in, in ? strlen(in) : 0, &r);
	if (rc < 0)
		host_fail(h, rc, "%s %s: %s", diff_action_name(s->action), s->name, cmd_said(h, &r, rc));
out:
	util_free_secret(in);
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return rc;
}

static int run_step(struct ex_host *h, const struct diff_step *s)
{
	switch (s->action) {
	case DIFF_CREATE:
		if (s->target == DIFF_T_APP)
			return step_app(h, s, 0, NULL);
		return step_create_other(h, s);
	case DIFF_REPLACE:
		if (s->target != DIFF_T_APP)
			return step_stop_first(h, s);
		/* rollback: the retained container of that version is started */
		return step_app(h, s, !boots_new(h, s), s->old_name);
	case DIFF_REPLACE_STOP_FIRST:
		return step_stop_first(h, s);
	case DIFF_RESTORE:
	case DIFF_REMOVE_ASIDE:
		return step_aside(h, s);
	case DIFF_SWITCH:
		/* an interrupted rollout: the desired container runs; wait until it
		 * is ready, move traffic to it, stop the other one */
		return step_app(h, s, 1, s->old_name);
	case DIFF_START:
		if (s->target == DIFF_T_APP && s->desired) {
			/* another container of the role runs: a start-first replacement */
			const struct obs_container *cur = running_other(h, s);
			if (cur || s->desired->proxied)
				return step_app(h, s, 1, cur ? cur->name : NULL);
		}
		return step_simple(h, s);
	default:
		return step_simple(h, s);
	}
}

static void step_label(const struct diff_step *s, char *buf, size_t n)
{
	if (s->old_name && strcmp(s->old_name, s->name) != 0)
		snprintf(buf, n, "%s %s %s -> %s", diff_action_symbol(s->action),
			 diff_action_name(s->action), s->old_name, s->name);
	else
		snprintf(buf, n, "%s %s %s", diff_action_symbol(s->action), diff_action_name(s->action),
			 s->name);
}

/* ---- the live status line (a terminal only) ---- */

#define EX_TICK_MS 250

/* Draws the status line: elapsed time, then each busy host's step and how
 * long it has taken, cut to the terminal's width. Under run->mu. */
static void status_draw(struct ex_run *run)
{
	struct winsize ws;
	struct sbuf line, esc;
	size_t width = 80, busy = 0;
	double now = prov_now_ms();

	if (ioctl(fileno(run->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
		width = ws.ws_col;
	sbuf_init(&line, 0);
	sbuf_addf(&line, "[%6.1fs] ", (now - run->t0) / 1000.0);
	for (size_t i = 0; i < run->nh; i++) {
		const struct ex_host *h = &run->h[i];
		if (!h->doing)
			continue;
		sbuf_addf(&line, "%s%s: %s %s (%.1fs)", busy++ ? " | " : "", h->dh->host,
			  diff_action_name(h->doing->action),
			  h->doing->role && *h->doing->role ? h->doing->role : h->doing->name,
			  (now - h->doing_since) / 1000.0);
	}
	if (busy) {
		sbuf_init(&esc, 0);
		esc_text(&esc, line.buf); /* names come from a repository */
		if (esc.len > width - 1)
			esc.len = width - 1, esc.buf[esc.len] = '\0';
		fprintf(run->out, "\r\033[K%s", esc.buf);
		fflush(run->out);
		run->status_shown = 1;
		sbuf_release(&esc);
	}
	sbuf_release(&line);
}

static void *ticker_main(void *arg)
{
	struct ex_run *run = arg;
	struct timespec ts;

	pthread_mutex_lock(&run->mu);
	while (run->ticking) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += EX_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L)
			ts.tv_sec++, ts.tv_nsec -= 1000000000L;
		pthread_cond_timedwait(&run->tick_cv, &run->mu, &ts);
		if (run->ticking)
			status_draw(run);
	}
	if (run->status_shown) {
		fputs("\r\033[K", run->out);
		fflush(run->out);
		run->status_shown = 0;
	}
	pthread_mutex_unlock(&run->mu);
	return NULL;
}

static void ticker_start(struct ex_run *run)
{
	if (!isatty(fileno(run->out)))
		return;
	run->tty = run->ticking = 1;
	if (pthread_create(&run->ticker, NULL, ticker_main, run) != 0)
		run->tty = run->ticking = 0;
}

static void ticker_stop(struct ex_run *run)
{
	if (!run->tty)
		return;
	pthread_mutex_lock(&run->mu);
	run->ticking = 0;
	pthread_cond_broadcast(&run->tick_cv);
	pthread_mutex_unlock(&run->mu);
	pthread_join(run->ticker, NULL);
	run->tty = 0;
}

/* Waits until the barrier opens (1) or closes (-1); returns it. */
static int barrier_wait(struct ex_run *run)
{
	int b;

	pthread_mutex_lock(&run->mu);
	while (run->barrier == 0)
		pthread_cond_wait(&run->cv, &run->mu);
	b = run->barrier;
	pthread_mutex_unlock(&run->mu);
	return b;
}

/* A primary-role step is ready (ok) or failed: the last ready one opens the
 * barrier, the first failure closes it. */
static void barrier_set(struct ex_run *run, int ok)
{
	int opened = 0;

	pthread_mutex_lock(&run->mu);
	if (run->barrier == 0) {
		if (!ok)
			run->barrier = -1;
		else if (run->pending && --run->pending == 0)
			run->barrier = opened = 1;
		if (run->barrier)
			pthread_cond_broadcast(&run->cv);
	}
	pthread_mutex_unlock(&run->mu);
	if (opened)
		say(run, "the primary role is ready: booting the other roles");
}

/* The step of h is a gated primary-role one and its container is ready
 * (before the old one is stopped, when it is not proxied). */
static void primary_ready(struct ex_host *h, const struct diff_step *s)
{
	if (s->wave == 2 && h->run->gate && !h->ready_said) {
		h->ready_said = 1;
		barrier_set(h->run, 1);
	}
}

/* A worker: the host's steps of the batch, in order, up to the first failure. */
static int host_batch(size_t i, void *ctx)
{
	struct ex_run *run = ctx;
	struct ex_host *h = &run->h[i];

	for (size_t k = 0; k < h->nbatch && !h->failed; k++) {
		const struct diff_step *s = &h->dh->steps[h->batch[k]];
		char label[512];
		double t = prov_now_ms();
		int rc;

		if (run->o->interrupted && run->o->interrupted()) {
			/* a primary-role step left unrun must not keep the other
			 * roles' workers waiting at the barrier forever */
			if (run->gate)
				barrier_set(run, 0);
			return host_fail(h, PLUMB_ERROR, "interrupted");
		}
		/* behind the barrier: prepared while it is shut (a failure there is
		 * the step's), then waiting for it */
		rc = s->wave == 3 && run->gate ? boot_stage(h, s) : 0;
		if (rc == 0 && s->wave == 3 && run->gate && barrier_wait(run) < 0) {
			if (h->staged == s && h->staged_clash) /* the container set aside gets its name back */
				rename_back(h, h->staged_clash, s->name);
			free(h->staged_clash);
			h->staged_clash = NULL;
			h->staged = NULL;
			say(run, "%s: the %s role is not booted: no primary-role container became ready",
			    h->dh->host, s->role);
			return 0; /* not done; the primary role's failure is the error */
		}
		step_label(s, label, sizeof(label));
		h->ready_said = 0;
		pthread_mutex_lock(&run->mu);
		h->doing = s;
		h->doing_since = t;
		pthread_mutex_unlock(&run->mu);
		if (rc == 0)
			rc = run_step(h, s);
		pthread_mutex_lock(&run->mu);
		h->doing = NULL;
		pthread_mutex_unlock(&run->mu);
		h->state[h->batch[k]] = rc < 0 ? EX_FAILED : EX_DONE;
		if (rc < 0 && s->wave == 2 && run->gate)
			barrier_set(run, 0);
		else if (rc == 0)
			primary_ready(h, s);
		if (s->action == DIFF_REMOVE_ORPHAN && !run->o->plan->prune)
			say(run, "%s: %s kept (pruning is off)", h->dh->host, label);
		else
			say(run, "%s: %s %s (%.1fs)", h->dh->host, label, rc < 0 ? "FAILED" : "done",
			    (prov_now_ms() - t) / 1000.0);
		if (rc < 0)
			say(run, "%s: %s", h->dh->host, h->why);
	}
	return h->failed ? -1 : 0;
}

/* Runs every host's batch in parallel; 0 when none failed. */
static int run_batch(struct ex_run *run, const char *what)
{
	int *res = xcalloc(run->nh ? run->nh : 1, sizeof(int));
	size_t busy = 0;
	int rc = 0;

	for (size_t i = 0; i < run->nh; i++)
		busy += run->h[i].nbatch > 0;
	if (busy) {
		say(run, "%s", what);
		/* gated: every host has its own thread, so one waiting at the barrier
		 * never holds the thread a primary-role host needs */
		if (prov_pool_run(run->nh, run->gate ? (int)run->nh : 0, host_batch, run, res) != 0)
			rc = -1;
		for (size_t i = 0; i < run->nh; i++)
			if (run->h[i].failed)
				rc = -1;
	}
	for (size_t i = 0; i < run->nh; i++)
		run->h[i].nbatch = 0;
	free(res);
	return rc;
}

/* Selects the steps of wave w (group g; g < 0: every group) into the batches. */
static size_t select_wave(struct ex_run *run, int w, int g)
{
	size_t n = 0;

	for (size_t i = 0; i < run->nh; i++) {
		struct ex_host *h = &run->h[i];
		for (size_t k = 0; k < h->dh->nsteps; k++) {
			const struct diff_step *s = &h->dh->steps[k];
			if (s->wave == w && (g < 0 || s->group == g) && h->state[k] == EX_TODO) {
				h->batch[h->nbatch++] = k;
				n++;
			}
		}
	}
	return n;
}

/* ---- before anything is stopped: login, pull, identity ---- */

static int image_wanted(const struct diff_step *s)
{
	return s->image_ref && (s->action == DIFF_CREATE || s->action == DIFF_REPLACE ||
				s->action == DIFF_REPLACE_STOP_FIRST);
}

/* The host already holds the image id under the reference ref: the
 * observation saw it (an image a container of the host was started from). */
static int image_held(const struct obs_host *oh, const char *ref, const char *id)
{
	const struct obs_image *im = id && *id ? obs_host_image(oh, id) : NULL;

	return im && strvec_contains(&im->repo_tags, ref);
}

/* Sorts the images the host's steps run into pull_refs (pulled, or checked
 * by the preparing command) and have_refs (held already, as observed:
 * checked by the expect check in front of the first step); need_network
 * when one is run and no observed container is on the kamal network. */
static void images_plan(struct ex_host *h)
{
	int runs = 0, net = 0;

	if (h->run->o->no_pull)
		return; /* a rollback: the containers and their network are there */
	for (size_t k = 0; k < h->dh->nsteps; k++) {
		const struct diff_step *s = &h->dh->steps[k];
		const char *id = s->image_id ? s->image_id : "";
		if (!image_wanted(s))
			continue;
		runs = 1;
		if (strvec_contains(&h->pull_refs, s->image_ref) ||
		    strvec_contains(&h->have_refs, s->image_ref))
			continue;
		if (image_held(h->oh, s->image_ref, id)) {
			strvec_push(&h->have_refs, s->image_ref);
			strvec_push(&h->have_ids, id);
		} else {
			strvec_push(&h->pull_refs, s->image_ref);
			strvec_push(&h->pull_ids, id);
		}
	}
	for (size_t i = 0; runs && !net && i < h->oh->ncontainers; i++)
		net = strvec_contains(&h->oh->containers[i].networks, "kamal");
	h->need_network = runs && !net;
}

static int host_prepare(size_t i, void *ctx)
{
	struct ex_run *run = ctx;
	struct ex_host *h = &run->h[i];
	const struct rec_exec_opts *o = run->o;
	const struct strvec *refs = &h->pull_refs, *ids = &h->pull_ids;
	struct prov_cmd c;
	struct cmd_result r = { 0 };
	struct cfg_secret user = { 0 }, pw = { 0 };
	char *why = NULL;
	const char *in = NULL;
	double t = prov_now_ms();
	struct plumb_err lerr = { 0 };
	size_t pulled = 0;
	int rc = 0;

	prov_cmd_init(&c);
	if (h->lock_here && (rc = o->lock_cmd(&c, PROV_JOIN_AND, &lerr, o->ctx)) < 0) {
		host_fail(h, rc, "%s", plumb_err_msg(&lerr));
		goto out;
	}
	if (h->have_refs.n && !refs->n)
		say(run, "%s: %zu image%s already there (checked again before the first step)",
		    h->dh->host, h->have_refs.n, h->have_refs.n == 1 ? "" : "s");
	if (!refs->n && !h->need_network && !c.n)
		goto out; /* renames, starts, env files, images held: nothing to prepare */
	if (refs->n && config_registry_credentials(o->config, &user, &pw, &why) > 0)
		in = pw.value;
	/* the kamal network, then each image unless the host holds its identity */
	if (refs->n || h->need_network)
		dcmd_pull_needed(&c, PROV_JOIN_AND, o->config->registry.server, in ? user.value : NULL,
				 (const char *const *)refs->v, (const char *const *)ids->v, refs->n);
	rc = ex_cmd(h, &c, in, in ? strlen(in) : 0, &r);
	if (h->lock_here) {
		int taken = 0, lrc = o->lock_read(h->t, &r, &taken, &lerr, o->ctx);
		if (taken)
			run->locked = 1; /* read once the pool has joined */
		if (lrc < 0) {
			rc = host_fail(h, lrc, "%s", plumb_err_msg(&lerr));
			goto out;
		}
	}
	if (rc < 0) {
		host_fail(h, rc, "%s: %s", refs->n ? "login/pull failed" : "preparing the host failed",
			  cmd_said(h, &r, rc));
		goto out;
	}
	/* the identities, in order: lines that are exactly sha256:<64 hex> */
	{
		size_t at = 0, k = 0;
		const char *s = r.out.buf;
		while (at < r.out.len && k < refs->n) {
			size_t e = strcspn(s + at, "\n");
			if (e == 6 && strncmp(s + at, "pulled", 6) == 0)
				pulled++;
			if (e == 71 && strncmp(s + at, "sha256:", 7) == 0) {
				if (*ids->v[k] && strncmp(s + at, ids->v[k], e) != 0) {
					rc = host_fail(h, PLUMB_ERROR,
						       "the tag moved: %s is %.*s on the host, the plan was built with %s",
						       refs->v[k], (int)e, s + at, ids->v[k]);
					goto out;
				}
				k++;
			}
			at += e + 1;
		}
	}
	h->pulled = pulled > 0;
	if (refs->n) {
		size_t unchecked = 0;
		for (size_t k = 0; k < ids->n; k++)
			unchecked += !*ids->v[k];
		say(run, "%s: %zu image%s ready, %zu pulled%s (%.1fs)", h->dh->host,
		    refs->n + h->have_refs.n, refs->n + h->have_refs.n == 1 ? "" : "s", pulled,
		    unchecked ? ", an accessory's not checked (its identity is not pinned: "
				"x-plumb accessories.<name>.pin_digest)" : "",
		    (prov_now_ms() - t) / 1000.0);
	}
out:
	free(why);
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return rc;
}

/*
 * Kamal's pruning (stopped containers of the service beyond
 * retain_containers, its dangling and unused images) can only find
 * something this apply left: an image pulled (a tag that moved leaves one
 * dangling), a container removed (its image may be unused now), or more
 * containers of the service than it keeps running plus retain_containers,
 * counting those this apply creates. Otherwise it is not sent: an earlier
 * apply's leftovers went with that apply's own pruning.
 */
static int prune_needed(const struct ex_host *h)
{
	const struct desired *ds = h->run->o->ds;
	size_t total = 0, running = 0, retain = ds->retain_containers < 1 ? 1 : (size_t)ds->retain_containers;

	if (h->pulled || !h->dsh)
		return 1;
	for (size_t k = 0; k < h->dh->nsteps; k++) {
		const struct diff_step *s = &h->dh->steps[k];
		if (s->action == DIFF_REMOVE_ORPHAN || s->action == DIFF_REMOVE_ASIDE)
			return 1;
		total += boots_new(h, s);
	}
	for (size_t i = 0; i < h->oh->ncontainers; i++)
		total += h->oh->containers[i].service && strcmp(h->oh->containers[i].service, ds->service) == 0;
	for (size_t i = 0; i < h->dsh->ncontainers; i++)
		running += h->dsh->containers[i].kind == DES_APP;
	return total > running + retain;
}

/* Kamal's end of a deploy on a host: the app image tagged :latest, then
 * prune (when it can find something). */
static void finish_cmd(struct ex_host *h, struct prov_cmd *c, enum prov_join join)
{
	const struct rec_exec_opts *o = h->run->o;
	const char *ref = NULL;
	struct prov_cmd p;

	for (size_t k = 0; k < h->dh->nsteps && !ref; k++)
		if (h->dh->steps[k].target == DIFF_T_APP && h->dh->steps[k].image_ref)
			ref = h->dh->steps[k].image_ref;
	prov_cmd_init(&p);
	if (ref)
		dcmd_tag_latest(&p, PROV_JOIN_SEQ, o->ds, ref);
	if (prune_needed(h))
		dcmd_prune(&p, PROV_JOIN_SEQ, o->ds, o->ds->retain_containers);
	if (p.n)
		append_unit(c, join, &p, 1);
	prov_cmd_release(&p);
}

/* After every wave: tag :latest and prune, where an app container was booted. */
static int host_finish(size_t i, void *ctx)
{
	struct ex_run *run = ctx;
	struct ex_host *h = &run->h[i];
	struct prov_cmd c;
	struct cmd_result r = { 0 };
	int rc;

	if (!h->booted_app || h->finished)
		return 0;
	prov_cmd_init(&c);
	finish_cmd(h, &c, PROV_JOIN_SEQ);
	rc = c.n ? ex_cmd(h, &c, NULL, 0, &r) : 0;
	if (rc < 0)
		say(run, "%s: pruning failed (not an error): %s", h->dh->host, cmd_said(h, &r, rc));
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return 0;
}

/* ---- the summary ---- */

static void summarize(struct ex_run *run, struct rec_exec_report *rep)
{
	struct sbuf s;

	sbuf_init(&s, 0);
	if (run->lock_commands) {
		/* the lock alone on a primary host without steps: + its observation and release */
		const struct obs_host *oh = &run->o->obs->hosts[run->o->lock_host];
		rep->commands += run->lock_commands;
		rep->max_host_commands = run->lock_commands + oh->round_trips + (run->locked ? 1 : 0);
	}
	for (size_t i = 0; i < run->nh; i++) {
		struct ex_host *h = &run->h[i];
		unsigned long nc = h->commands + (h->oh ? h->oh->round_trips : 0);
		/* the caller's release of the lock, on this host, counts here too */
		int release = run->locked && run->o->lock_cmd && h->fi == run->o->lock_host;
		nc += (unsigned long)release;
		for (size_t k = 0; k < h->dh->nsteps; k++) {
			const struct diff_step *s2 = &h->dh->steps[k];
			if (h->state[k] == EX_DONE)
				rep->done++;
			else if (h->state[k] == EX_FAILED)
				rep->failed++;
			else if (s2->action != DIFF_REMOVE_ORPHAN || run->o->plan->prune)
				rep->not_done++;
		}
		rep->stale += (size_t)h->stale;
		rep->commands += h->commands;
		if (nc > rep->max_host_commands)
			rep->max_host_commands = nc;
		sbuf_addf(&s, "%s: %lu command%s%s", h->dh->host, nc, nc == 1 ? "" : "s",
			  release ? " (with the observation, the lock and its release)" : "");
		if (h->failed)
			sbuf_addf(&s, ", FAILED: %s", h->why);
		sbuf_addc(&s, '\n');
		for (size_t k = 0; k < h->dh->nsteps; k++) {
			const struct diff_step *s2 = &h->dh->steps[k];
			char label[512];
			if (s2->action == DIFF_REMOVE_ORPHAN && !run->o->plan->prune)
				continue;
			step_label(s2, label, sizeof(label));
			sbuf_addf(&s, "  %-8s %s\n",
				  h->state[k] == EX_DONE ? "done" : h->state[k] == EX_FAILED ? "FAILED" : "not done",
				  label);
			if (s2->target == DIFF_T_APP && s2->action != DIFF_PRUNE &&
			    s2->action != DIFF_REMOVE_ORPHAN && h->state[k] != EX_DONE)
				sbuf_addf(&s, "           %s runs %s\n", s2->role,
					  s2->old_name ? s2->old_name : "nothing");
		}
	}
	sbuf_addf(&s, "%zu step%s done, %zu failed, %zu not done, in %.1fs\n", rep->done,
		  rep->done == 1 ? "" : "s", rep->failed, rep->not_done, rep->elapsed_ms / 1000.0);
	rep->summary = sbuf_detach(&s);
}

/* ---- the whole run ---- */

static int host_index(const struct rec_exec_opts *o, const char *host, size_t *out)
{
	size_t n = fleet_nhosts(o->fleet);

	for (size_t i = 0; i < n && i < o->obs->nhosts; i++)
		if (strcmp(o->obs->hosts[i].host, host) == 0) {
			*out = i;
			return 0;
		}
	return -1;
}

static int hook(struct ex_run *run, const char *name, const char *hosts)
{
	if (!run->o->hook)
		return 0;
	if (run->o->hook(name, hosts, run->o->ctx) != 0) {
		say(run, "hook %s failed: nothing more is done", name);
		snprintf(run->why, sizeof(run->why), "the %s hook failed", name);
		return -1;
	}
	return 0;
}

static int any_app(struct ex_run *run)
{
	for (size_t i = 0; i < run->nh; i++)
		for (size_t k = 0; k < run->h[i].dh->nsteps; k++)
			if (run->h[i].dh->steps[k].target == DIFF_T_APP &&
			    run->h[i].dh->steps[k].wave >= 2 && run->h[i].dh->steps[k].wave <= 3)
				return 1;
	return 0;
}

static int max_group(struct ex_run *run)
{
	int g = 0;

	for (size_t i = 0; i < run->nh; i++)
		for (size_t k = 0; k < run->h[i].dh->nsteps; k++)
			if ((run->h[i].dh->steps[k].wave == 2 || run->h[i].dh->steps[k].wave == 3) &&
			    run->h[i].dh->steps[k].group > g)
				g = run->h[i].dh->steps[k].group;
	return g;
}

/* Boot group g's hosts, comma-separated (KAMAL_HOSTS of its app-boot hooks):
 * its slice of the app hosts. */
static char *group_hosts(const struct desired *ds, int g)
{
	struct sbuf sb;
	size_t lim = ds->boot_limit > 0 ? (size_t)ds->boot_limit : ds->app_hosts.n;
	size_t from = (size_t)g * lim;

	sbuf_init(&sb, 0);
	for (size_t i = from; i < ds->app_hosts.n && i < from + lim; i++)
		sbuf_addf(&sb, "%s%s", i > from ? "," : "", ds->app_hosts.v[i]);
	return sbuf_detach(&sb);
}

/* A registry on this machine's localhost:PORT: every host that pulls reaches
 * it through a reverse tunnel (libssh), as Kamal does, before the pulls. */
static int open_tunnels(struct ex_run *run)
{
	const struct config *c = run->o->config;
	int rc = 0;

	if (!c->registry.local)
		return 0;
	for (size_t i = 0; i < run->nh && rc == 0; i++) {
		struct ex_host *h = &run->h[i];
		struct plumb_err err = { 0 };
		int pulls = 0;
		for (size_t k = 0; k < h->dh->nsteps; k++)
			pulls |= image_wanted(&h->dh->steps[k]) && h->dh->steps[k].target == DIFF_T_APP &&
				 strvec_contains(&h->pull_refs, h->dh->steps[k].image_ref);
		if (!pulls)
			continue;
		if (run->o->tunnel)
			rc = run->o->tunnel(run->o->fleet, h->fi, c->registry.local_port, &err);
		else
			rc = fleet_tunnel(run->o->fleet, h->fi, c->registry.local_port, &err);
		if (rc < 0) {
			host_fail(h, rc, "the registry %s cannot be reached from the host: %s",
				  c->registry.server, plumb_err_msg(&err));
			say(run, "%s: %s", h->dh->host, h->why);
			say(run, "nothing was stopped or replaced");
		}
	}
	return rc;
}

/* The deploy lock taken by a command of its own (the primary host has no
 * step of this plan). */
static int lock_alone(struct ex_run *run)
{
	const struct rec_exec_opts *o = run->o;
	struct transport *t = NULL;
	struct plumb_err err = { 0 };
	struct cmd_result r = { 0 };
	struct prov_cmd c;
	int rc, taken = 0;

	prov_cmd_init(&c);
	rc = (o->writer ? o->writer : fleet_writer)(o->fleet, o->lock_host, &t, &err);
	if (rc == 0)
		rc = o->lock_cmd(&c, PROV_JOIN_AND, &err, o->ctx);
	if (rc == 0) {
		rc = transport_run_cmd(t, &c, &r);
		if (rc < 0)
			plumb_err_set(&err, rc, "%s", plumb_err_msg(transport_err(t)));
		else
			rc = o->lock_read(t, &r, &taken, &err, o->ctx);
	}
	run->locked = taken;
	run->lock_commands++;
	if (rc < 0) {
		say(run, "%s", plumb_err_msg(&err));
		say(run, "nothing was stopped or replaced");
		snprintf(run->why, sizeof(run->why), "the deploy lock: %s", plumb_err_msg(&err));
	}
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return rc < 0 ? -1 : 0;
}

static int run_waves(struct ex_run *run)
{
	const struct config *c = run->o->config;
	int apps = any_app(run), groups = max_group(run), failed;
	int *res = xcalloc(run->nh ? run->nh : 1, sizeof(int));
	int rc = -1;

	if (!run->o->no_pull) {
		if (open_tunnels(run) != 0)
			goto out;
		say(run, "pulling images and preparing %zu host%s", run->nh, run->nh == 1 ? "" : "s");
	}
	if (!run->o->no_pull || run->o->lock_cmd) {
		size_t lh = 0;
		while (run->o->lock_cmd && lh < run->nh && run->h[lh].fi != run->o->lock_host)
			lh++;
		if (run->o->lock_cmd && lh < run->nh)
			run->h[lh].lock_here = 1;
		else if (run->o->lock_cmd && lock_alone(run) != 0)
			goto out; /* the primary host has no step: the lock alone, first */
		if (prov_pool_run(run->nh, 0, host_prepare, run, res) != 0)
			goto out;
	}
	for (size_t i = 0; i < run->nh; i++)
		if (run->h[i].failed) {
			say(run, "%s: %s", run->h[i].dh->host, run->h[i].why);
			say(run, "nothing was stopped or replaced");
			goto out;
		}
	if (run->o->lock_cmd && hook(run, "pre-deploy", NULL) != 0)
		goto out;
	for (size_t i = 0; i < run->nh; i++)
		run->h[i].expect_pending = 1;
	select_wave(run, 1, -1);
	if (run_batch(run, "wave 1: accessories and proxy") != 0)
		goto out;
	/*
	 * Kamal's host boot groups (slices of boot.limit of the app hosts, the
	 * primary role's first), one after the other: pre-app-boot with the
	 * group's hosts, every role of its hosts, post-app-boot, boot.wait. The
	 * other roles wait at the barrier until the primary role's containers
	 * are ready (once it opened it stays open), or not at all with
	 * parallel_roles. A group without a step is skipped, hooks included.
	 */
	run->barrier = 0;
	for (int g = 0, booted = 0; apps && g <= groups; g++) {
		char what[128], *gh;
		size_t primary = select_wave(run, 2, g), others = select_wave(run, 3, g);

		if (!primary && !others)
			continue;
		if (booted++ && c->boot.wait > 0) {
			say(run, "waiting %ds before the next boot group", c->boot.wait);
			sleep((unsigned)c->boot.wait);
		}
		gh = group_hosts(run->o->ds, g);
		if (hook(run, "pre-app-boot", gh) != 0) {
			free(gh);
			goto out;
		}
		if (primary && others && run->barrier == 0 && c->boot.parallel_roles != 1) {
			run->gate = 1;
			run->pending = primary;
		}
		snprintf(what, sizeof(what), "boot group %d: %s", g + 1,
			 !others ? "the primary role"
			 : !primary ? "the other roles"
			 : run->gate ? "the primary role, then the other roles"
				     : "the primary role and the other roles");
		failed = run_batch(run, what);
		run->gate = 0;
		if (!failed && primary && run->barrier == 0)
			run->barrier = 1; /* primary-role containers are ready: open for later groups */
		if (failed || hook(run, "post-app-boot", gh) != 0) {
			free(gh);
			goto out;
		}
		free(gh);
	}
	select_wave(run, 4, -1);
	if (run_batch(run, "wave 4: orphans and pruning") != 0)
		goto out;
	prov_pool_run(run->nh, 0, host_finish, run, res);
	rc = 0;
out:
	free(res);
	return rc;
}

/* The accessory of a step that boots one (create, replace), with its
 * configuration; NULL otherwise. */
static const struct cfg_accessory *booted_accessory(const struct config *c, const struct diff_step *s)
{
	if (s->target != DIFF_T_ACCESSORY || !s->desired ||
	    (s->action != DIFF_CREATE && s->action != DIFF_REPLACE &&
	     s->action != DIFF_REPLACE_STOP_FIRST))
		return NULL;
	for (size_t a = 0; a < c->naccessories; a++)
		if (strcmp(c->accessories[a].name, s->desired->role) == 0)
			return &c->accessories[a];
	return NULL;
}

/* What a files: entry may hold beyond its local path (read by the source's
 * rule): a host path that stays under ~/<service> (no ".." component), an
 * octal mode, an owner of plain name characters (never an option). NULL when
 * fine, else what is wrong. */
static const char *file_spec_problem(const struct cfg_file_spec *fs)
{
	const char *p = fs->remote;

	if (!*p)
		return "an empty remote path";
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return "a remote path with a \"..\" component (it would leave ~/<service>)";
		p += n;
		p += *p == '/';
	}
	if (fs->mode && (strlen(fs->mode) < 3 || strlen(fs->mode) > 4 ||
			 strspn(fs->mode, "01234567") != strlen(fs->mode)))
		return "a mode that is not 3 or 4 octal digits";
	if (fs->owner && (fs->owner[0] == '-' || !fs->owner[0] ||
			  strspn(fs->owner, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					    "0123456789_.:-") != strlen(fs->owner)))
		return "an owner that is not a plain user[:group]";
	return NULL;
}

/* An accessory's `files:` are uploaded before it boots, as `kamal accessory
 * boot` does; an ERB template among them (Kamal renders it in Ruby) or an
 * entry file_spec_problem refuses is refused before anything, naming the
 * file, line and key, as is any file when the caller gave no way to read the
 * repository. */
static int files_check(struct ex_run *run, struct plumb_err *err)
{
	const struct config *c = run->o->config;

	for (size_t i = 0; i < run->nh; i++) {
		struct ex_host *h = &run->h[i];
		for (size_t k = 0; k < h->dh->nsteps; k++) {
			const struct cfg_accessory *a = booted_accessory(c, &h->dh->steps[k]);
			for (size_t f = 0; a && f < a->nfiles; f++) {
				const char *l = a->files[f].local, *why = file_spec_problem(&a->files[f]);
				size_t n = strlen(l);
				if (!why && !run->o->read_file)
					why = "the repository cannot be read here";
				if (!why && n >= 3 && strcmp(l + n - 3, "erb") == 0)
					why = "an ERB template is not rendered by plumb (Kamal renders it in Ruby)";
				if (why)
					return plumb_err_set(err, PLUMB_ECONFIG,
							     "%s:%d: accessories.%s.files: %s: %s: nothing done",
							     c->file ? c->file : "config/deploy.yml", a->line,
							     a->name, l, why);
			}
		}
	}
	return 0;
}

/* Uploads the accessory's files (its `files:`) to the host, each in a
 * command of its own (the bytes on stdin, installed atomically, size
 * checked), at ~/<service>/<remote path>, chmod mode (755 by default, as
 * Kamal), chown owner when given. */
static int files_install(struct ex_host *h, const struct cfg_accessory *a)
{
	const struct rec_exec_opts *o = h->run->o;
	int rc = 0;

	for (size_t f = 0; a && f < a->nfiles && rc == 0; f++) {
		const struct cfg_file_spec *fs = &a->files[f];
		const char *remote = fs->remote;
		struct plumb_err err = { 0 };
		struct cmd_result r = { 0 };
		struct prov_cmd c;
		char *content = NULL, *path;
		size_t len = 0;

		while (*remote == '/')
			remote++;
		rc = o->read_file(fs->local, &content, &len, &err, o->ctx);
		if (rc < 0) {
			host_fail(h, rc, "accessories.%s.files: %s", a->name, plumb_err_msg(&err));
			break;
		}
		path = xasprintf("%s/%s", a->service, remote);
		prov_cmd_init(&c);
		dcmd_install_stdin(&c, PROV_JOIN_AND, path, fs->mode ? fs->mode : "755", len);
		if (fs->owner) {
			prov_cmd_begin(&c, PROV_JOIN_AND);
			prov_cmd_args(&c, "chown", fs->owner, path, NULL);
		}
		audit(h, &c, "Uploaded %s to %s", fs->local, path);
		rc = ex_cmd(h, &c, content, len, &r);
		if (rc < 0)
			host_fail(h, rc, "uploading %s to %s failed: %s", fs->local, path, cmd_said(h, &r, rc));
		util_free_secret(content); /* it may hold secrets */
		free(path);
		cmd_result_release(&r);
		prov_cmd_release(&c);
	}
	return rc;
}

/* A rollback runs retained containers only (Kamal's rollback refuses a
 * version that is not there as a container): a step that would create an
 * app container (docker run, which pulls a missing image) refuses it all. */
static int rollback_check(struct ex_run *run, struct plumb_err *err)
{
	for (size_t i = 0; i < run->nh; i++) {
		struct ex_host *h = &run->h[i];
		for (size_t k = 0; k < h->dh->nsteps; k++) {
			const struct diff_step *s = &h->dh->steps[k];
			const struct obs_container *have = observed(h, s->name);
			if (s->target != DIFF_T_APP ||
			    (s->action != DIFF_CREATE && s->action != DIFF_REPLACE))
				continue;
			if (s->action == DIFF_REPLACE && have)
				continue; /* the retained container, started or renamed aside */
			return plumb_err_set(err, PLUMB_EREFUSED,
					     "%s: no retained container %s to roll back to (a rollback "
					     "pulls and creates nothing): nothing done; deploy that version "
					     "with apply --version", h->dh->host, s->name);
		}
	}
	return 0;
}

int rec_execute(const struct rec_exec_opts *o, struct rec_exec_report *rep, struct plumb_err *err)
{
	struct ex_run run = { .o = o };
	size_t nsteps = 0;
	int rc = 0;

	memset(rep, 0, sizeof(*rep));
	run.t0 = prov_now_ms();
	run.out = o->out ? o->out : stdout;
	pthread_mutex_init(&run.mu, NULL);
	pthread_cond_init(&run.cv, NULL);
	pthread_cond_init(&run.tick_cv, NULL);
	for (size_t i = 0; i < o->plan->nhosts; i++)
		nsteps += o->plan->hosts[i].nsteps;
	if (!nsteps)
		goto out;
	if (fleet_mode(o->fleet) != FLEET_READ_WRITE) {
		rc = plumb_err_set(err, PLUMB_EREFUSED, "the fleet handle is read-only: nothing executed");
		goto out;
	}
	run.h = xcalloc(o->plan->nhosts, sizeof(*run.h));
	for (size_t i = 0; i < o->plan->nhosts; i++) {
		const struct diff_host *dh = &o->plan->hosts[i];
		struct ex_host *h;
		size_t fi;
		if (!dh->nsteps)
			continue;
		if (dh->status != DIFF_HOST_OK) {
			rc = plumb_err_set(err, PLUMB_EREFUSED, "%s was not planned (%s): nothing executed",
					   dh->host, diff_host_status_name(dh->status));
			goto out;
		}
		if (host_index(o, dh->host, &fi) != 0) {
			rc = plumb_err_set(err, PLUMB_EREFUSED,
					   "%s is not a host of the configuration: its steps are not executed "
					   "(nothing executed)", dh->host);
			goto out;
		}
		h = &run.h[run.nh++];
		h->run = &run;
		h->dh = dh;
		h->fi = fi;
		h->oh = &o->obs->hosts[fi];
		h->dsh = desired_host(o->ds, dh->host);
		h->state = xcalloc(dh->nsteps, sizeof(*h->state));
		h->batch = xcalloc(dh->nsteps, sizeof(*h->batch));
	}
	for (size_t i = 0; i < run.nh; i++) {
		struct ex_host *h = &run.h[i];
		rc = (o->writer ? o->writer : fleet_writer)(o->fleet, h->fi, &h->t, err);
		if (rc < 0)
			goto out;
		h->home = h->oh->home ? xstrdup(h->oh->home) : NULL;
		images_plan(h);
	}
	if (o->rollback && (rc = rollback_check(&run, err)) < 0)
		goto out;
	if ((rc = files_check(&run, err)) < 0)
		goto out;
	ticker_start(&run);
	rc = run_waves(&run);
	ticker_stop(&run);
	if (rc != 0) {
		rc = PLUMB_ERROR;
		for (size_t i = 0; i < run.nh; i++)
			if (run.h[i].failed) {
				plumb_err_set(err, PLUMB_ERROR, "%s: %s", run.h[i].dh->host, run.h[i].why);
				break;
			}
		if (!err->code)
			plumb_err_set(err, PLUMB_ERROR, "%s",
				      run.why[0] ? run.why : "the apply stopped (interrupted)");
	}
out:
	rep->elapsed_ms = prov_now_ms() - run.t0;
	rep->locked = run.locked;
	summarize(&run, rep);
	for (size_t i = 0; i < run.nh; i++) {
		free(run.h[i].state);
		free(run.h[i].batch);
		free(run.h[i].home);
		strvec_release(&run.h[i].pull_refs);
		strvec_release(&run.h[i].pull_ids);
		strvec_release(&run.h[i].have_refs);
		strvec_release(&run.h[i].have_ids);
		free(run.h[i].staged_clash);
	}
	free(run.h);
	pthread_mutex_destroy(&run.mu);
	pthread_cond_destroy(&run.cv);
	pthread_cond_destroy(&run.tick_cv);
	return rc;
}

void rec_exec_report_release(struct rec_exec_report *rep)
{
	free(rep->summary);
	memset(rep, 0, sizeof(*rep));
}
