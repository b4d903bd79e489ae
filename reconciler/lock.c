/*
 * Kamal's deploy lock and audit log (reconciler/lock.h). Every host command
 * is built as argv: the scripts below are constants, and every value
 * (paths, details, audit lines) reaches them as a positional argument.
 */
#include "reconciler/lock.h"

#include <errno.h>
#include <git2.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "state/escape.h"
#include "state/util.h"

#define HELD_MARK "PLUMB-LOCK-HELD"
#define STATUS_MARK "PLUMB-LOCK"
#define TAKEN_MARK "PLUMB-LOCK-TAKEN"
#define EXIT_HELD 10
#define EXIT_NOLOCK 10

/*
 * $1 the lock directory, $2 the details (base64 lines). mkdir is the atomic
 * test: when it fails and the directory is there, the lock is held and its
 * details (bounded) are printed after a marker. A details file that cannot be
 * written takes the directory away again: no lock without details is left.
 */
static const char acquire_script[] =
	"mkdir -p .kamal || exit 3\n"
	"if e=$(mkdir \"$1\" 2>&1); then\n"
	"  printf '%s\\n' \"$2\" > \"$1/details\" && exit 0\n"
	"  rm -f \"$1/details\"; rmdir \"$1\"; exit 4\n"
	"fi\n"
	"if [ -d \"$1\" ]; then echo " HELD_MARK "; head -c 8192 \"$1/details\" 2>/dev/null; exit 10; fi\n"
	"printf '%s\\n' \"$e\" >&2; exit 3\n";

/* $1 the lock directory: rm details, then the directory (Kamal's order). */
static const char release_script[] =
	"[ -d \"$1\" ] || exit 10\n"
	"rm -f \"$1/details\" && rmdir \"$1\"\n";

/* $1 the line, $2 the log: Kamal's `mkdir -p .kamal && echo LINE >> LOG`. */
/* Never fails: an audit log that cannot be written (a root-owned one left by
 * an earlier deploy) must not fail the step it is chained into. */
static const char audit_script[] =
	"{ mkdir -p .kamal && printf '%s\\n' \"$1\" >> \"$2\"; } 2>/dev/null || true";

char *rec_lock_name_for(const char *service, const char *destination)
{
	if (destination && *destination)
		return xasprintf("lock-%s-%s", service, destination);
	return xasprintf("lock-%s", service);
}

char *rec_lock_name(const struct desired *ds)
{
	return rec_lock_name_for(ds->service, ds->destination);
}

/* A name that must be one path component under .kamal. */
static int check_name(const char *lock_name, struct plumb_err *err)
{
	if (!lock_name || !*lock_name || strchr(lock_name, '/') || strcmp(lock_name, ".") == 0 ||
	    strcmp(lock_name, "..") == 0)
		return plumb_err_set(err, PLUMB_EINVAL, "invalid lock name");
	return 0;
}

/* Hands sb's string over and releases the buffer. */
static char *take(struct sbuf *sb)
{
	char *p = sbuf_detach(sb);

	sbuf_release(sb);
	return p;
}

/* Copies s with every control byte replaced by a space (one line). */
static char *one_line(const char *s)
{
	char *r = xstrdup(s ? s : "");

	for (char *p = r; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return r;
}

static void iso_time(long long t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm))
		memset(&tm, 0, sizeof(tm));
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static char *local_user(void)
{
	struct passwd pw, *res = NULL;
	char buf[1024];
	const char *u;

	if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_name && *res->pw_name)
		return xstrdup(res->pw_name);
	u = getenv("USER");
	return xstrdup(u && *u ? u : "unknown");
}

/* A key of the user's git configuration (global, XDG, system), or NULL. */
static char *git_config_value(const char *key)
{
	git_config *cfg = NULL;
	git_buf b = { 0 };
	char *r = NULL;

	if (git_libgit2_init() < 0)
		return NULL;
	if (git_config_open_default(&cfg) == 0 && git_config_get_string_buf(&b, cfg, key) == 0 &&
	    b.ptr && *b.ptr)
		r = xstrdup(b.ptr);
	git_buf_dispose(&b);
	git_config_free(cfg);
	git_libgit2_shutdown();
	return r;
}

char *rec_performer(void)
{
	char *v = git_config_value("user.email"), *r;

	if (!v)
		v = local_user();
	r = one_line(v);
	free(v);
	return r;
}

char *rec_lock_who(int by_hand)
{
	char host[256] = "";
	char *user = git_config_value("user.name"), *r, *u;

	if (!user)
		user = local_user();
	if (gethostname(host, sizeof(host) - 1) != 0 || !*host)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	u = one_line(user);
	r = by_hand ? xasprintf("plumb (by hand on %s) %s", host, u)
		    : xasprintf("plumb (pid %ld on %s) %s", (long)getpid(), host, u);
	free(u);
	free(user);
	return r;
}

char *rec_lock_details_text(const char *who, long long t, const char *version, const char *message)
{
	char when[32];
	char *w = one_line(who), *v = one_line(version), *m = one_line(message), *r;

	iso_time(t, when);
	/* Kamal's heredoc, .strip'ed: no trailing newline */
	r = xasprintf("Locked by: %s at %s\nVersion: %s\nMessage: %s", w, when, v, m);
	free(w);
	free(v);
	free(m);
	return r;
}

char *rec_lock_encode64(const void *data, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	struct sbuf sb;
	size_t col = 0;

	sbuf_init(&sb, 0);
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (unsigned)p[i + 1] << 8;
		if (n > 2)
			v |= p[i + 2];
		sbuf_addc(&sb, tab[(v >> 18) & 63]);
		sbuf_addc(&sb, tab[(v >> 12) & 63]);
		sbuf_addc(&sb, n > 1 ? tab[(v >> 6) & 63] : '=');
		sbuf_addc(&sb, n > 2 ? tab[v & 63] : '=');
		col += 4;
		/* Ruby's pack("m"): 45 bytes (60 characters) per line */
		if (col == 60 || i + 3 >= len) {
			sbuf_addc(&sb, '\n');
			col = 0;
		}
	}
	return take(&sb);
}

char *rec_lock_decode_details(const char *b64, size_t len)
{
	char *in = xmalloc(len + 1);
	unsigned char *raw = NULL;
	size_t n = 0, rawlen = 0;

	for (size_t i = 0; i < len; i++)
		if (b64[i] != ' ' && b64[i] != '\n' && b64[i] != '\r' && b64[i] != '\t')
			in[n++] = b64[i];
	in[n] = '\0';
	if (n == 0 || util_base64_decode(in, n, 0, &raw, &rawlen) != 0) {
		free(in);
		return NULL;
	}
	free(in);
	if (rawlen > REC_LOCK_DETAILS_MAX)
		rawlen = REC_LOCK_DETAILS_MAX;
	for (size_t i = 0; i < rawlen; i++)
		if (!(raw[i] == '\n' || (raw[i] >= 0x20 && raw[i] != 0x7f)))
			raw[i] = '?';
	raw[rawlen] = '\0';
	/* trailing newlines are not part of the text */
	while (rawlen && raw[rawlen - 1] == '\n')
		raw[--rawlen] = '\0';
	return (char *)raw;
}

void rec_lock_status_release(struct rec_lock_status *s)
{
	free(s->details);
	free(s->host);
	memset(s, 0, sizeof(*s));
}

void rec_lock_parse_holder(struct rec_lock_status *s)
{
	static const char pre[] = "Locked by: plumb (pid ";
	const char *p = s->details, *h, *e;
	char here[256] = "", *end = NULL;
	long pid;

	s->plumb = 0, s->pid = 0, s->stale = 0;
	free(s->host);
	s->host = NULL;
	if (!p || strncmp(p, pre, sizeof(pre) - 1) != 0)
		return;
	p += sizeof(pre) - 1;
	errno = 0;
	pid = strtol(p, &end, 10);
	if (errno || end == p || pid <= 0 || strncmp(end, " on ", 4) != 0)
		return;
	h = end + 4;
	e = h + strcspn(h, ")\n");
	if (*e != ')' || e == h)
		return;
	s->plumb = 1;
	s->pid = pid;
	s->host = xstrndup(h, (size_t)(e - h));
	if (gethostname(here, sizeof(here) - 1) != 0)
		return;
	here[sizeof(here) - 1] = '\0';
	if (strcmp(s->host, here) == 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		s->stale = 1;
}

/* Multi-line host text escaped for a message; the caller frees. */
static char *escaped(const char *s)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	esc_lines(&sb, s, strlen(s));
	return take(&sb);
}

/* A script that failed on the host: err says what could not be done, with
 * its stderr (one line, escaped, bounded). Returns PLUMB_ERROR. */
static int host_failure(struct transport *t, const struct cmd_result *r, const char *what,
			const char *lock_name, struct plumb_err *err)
{
	struct sbuf sb;
	char *line = xstrndup(r->err.buf, r->err.len > 300 ? 300 : r->err.len);
	int rc;

	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	sbuf_init(&sb, 0);
	esc_text(&sb, line);
	rc = plumb_err_set(err, PLUMB_ERROR, "%s: cannot %s deploy lock %s (exit %d): %s", t->label, what,
			   lock_name, r->status, sb.buf);
	sbuf_release(&sb);
	free(line);
	return rc;
}

/* Runs a constant script with args on t (one round trip). */
static int run_script(struct transport *t, const char *script, const char *const *args, size_t nargs,
		      struct cmd_result *r, struct plumb_err *err)
{
	struct prov_cmd c;
	int rc;

	prov_cmd_init(&c);
	prov_cmd_args(&c, "sh", "-c", script, "sh", NULL);
	for (size_t i = 0; i < nargs; i++)
		prov_cmd_arg(&c, args[i]);
	rc = transport_run_cmd(t, &c, r);
	prov_cmd_release(&c);
	if (rc < 0)
		plumb_err_set(err, rc, "%s", plumb_err_msg(transport_err(t)));
	return rc;
}

int rec_lock_acquire(struct transport *t, const char *lock_name, const char *version,
		     const char *message, struct plumb_err *err)
{
	char *who = rec_lock_who(0);
	int rc = rec_lock_acquire_as(t, lock_name, who, version, message, err);

	free(who);
	return rc;
}

int rec_lock_acquire_cmd(struct prov_cmd *c, enum prov_join join, const char *lock_name,
			 const char *who, const char *version, const char *message,
			 struct plumb_err *err)
{
	char *text, *b64, *dir;
	int rc;

	if ((rc = check_name(lock_name, err)) < 0)
		return rc;
	text = rec_lock_details_text(who, (long long)time(NULL), version, message);
	b64 = rec_lock_encode64(text, strlen(text));
	/* Kamal writes `echo "<encode64>"`: the lines (each ending in a newline),
	 * then echo's own; printf '%s\n' "$2" writes the same bytes */
	dir = xasprintf(".kamal/%s", lock_name);
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "sh", "-c", acquire_script, "sh", dir, b64, NULL);
	/* what follows in the same command runs only once it is taken */
	prov_cmd_begin(c, PROV_JOIN_AND);
	prov_cmd_args(c, "echo", TAKEN_MARK, NULL);
	free(dir);
	free(b64);
	free(text);
	return 0;
}

int rec_lock_acquire_read(struct transport *t, const char *lock_name, const struct cmd_result *r,
			  int *taken, struct plumb_err *err)
{
	*taken = r->out.buf && (strncmp(r->out.buf, TAKEN_MARK "\n", sizeof(TAKEN_MARK)) == 0 ||
				strstr(r->out.buf, "\n" TAKEN_MARK "\n") != NULL);
	if (*taken)
		return 0;
	if (r->status == EXIT_HELD && r->out.buf &&
	    strncmp(r->out.buf, HELD_MARK "\n", sizeof(HELD_MARK)) == 0) {
		const char *d = r->out.buf + sizeof(HELD_MARK);
		struct rec_lock_status held = { 0 };
		char *e;
		int rc;

		held.details = rec_lock_decode_details(d, r->out.len - sizeof(HELD_MARK));
		rec_lock_parse_holder(&held);
		e = escaped(held.details ? held.details : "(details unreadable)");
		rc = plumb_err_set(err, PLUMB_ELOCKED, "%s: deploy lock %s is held:\n%s%s", t->label,
				   lock_name, e,
				   held.stale ? "\nstale: that plumb (on this machine) is no longer running; "
						"`plumb lock release` clears it" : "");
		free(e);
		rec_lock_status_release(&held);
		return rc;
	}
	return host_failure(t, r, "take", lock_name, err);
}

int rec_lock_acquire_as(struct transport *t, const char *lock_name, const char *who,
			const char *version, const char *message, struct plumb_err *err)
{
	struct cmd_result r = { 0 };
	struct prov_cmd c;
	int rc, taken = 0;

	prov_cmd_init(&c);
	rc = rec_lock_acquire_cmd(&c, PROV_JOIN_AND, lock_name, who, version, message, err);
	if (rc == 0) {
		rc = transport_run_cmd(t, &c, &r);
		if (rc < 0)
			plumb_err_set(err, rc, "%s", plumb_err_msg(transport_err(t)));
		else
			rc = rec_lock_acquire_read(t, lock_name, &r, &taken, err);
	}
	cmd_result_release(&r);
	prov_cmd_release(&c);
	return rc;
}

int rec_lock_release(struct transport *t, const char *lock_name, struct plumb_err *err)
{
	struct cmd_result r = { 0 };
	char *dir = NULL;
	const char *args[1];
	int rc;

	if ((rc = check_name(lock_name, err)) < 0)
		return rc;
	dir = xasprintf(".kamal/%s", lock_name);
	args[0] = dir;
	rc = run_script(t, release_script, args, 1, &r, err);
	if (rc < 0)
		goto out;
	if (r.status == 0)
		goto out;
	if (r.status == EXIT_NOLOCK) {
		rc = plumb_err_set(err, PLUMB_ENOTFOUND, "%s: there is no deploy lock %s", t->label, lock_name);
		goto out;
	}
	rc = host_failure(t, &r, "release", lock_name, err);
out:
	cmd_result_release(&r);
	free(dir);
	return rc;
}

int rec_lock_status(struct transport *t, const char *lock_name, struct rec_lock_status *out,
		    struct plumb_err *err)
{
	struct cmd_result r = { 0 };
	struct prov_cmd c;
	char *dir = NULL, *details = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = check_name(lock_name, err)) < 0)
		return rc;
	dir = xasprintf(".kamal/%s", lock_name);
	details = xasprintf(".kamal/%s/details", lock_name);
	/* test -d L && echo MARK ; cat L/details 2>/dev/null — read-only-guard
	 * shapes; the details file cannot exist without the directory */
	prov_cmd_init(&c);
	prov_cmd_args(&c, "test", "-d", dir, NULL);
	prov_cmd_begin(&c, PROV_JOIN_AND);
	prov_cmd_args(&c, "echo", STATUS_MARK, NULL);
	prov_cmd_begin(&c, PROV_JOIN_SEQ);
	prov_cmd_args(&c, "cat", details, NULL);
	prov_cmd_quiet(&c);
	rc = transport_run_cmd(t, &c, &r);
	prov_cmd_release(&c);
	if (rc < 0) {
		plumb_err_set(err, rc, "%s", plumb_err_msg(transport_err(t)));
		goto out;
	}
	if (strncmp(r.out.buf, STATUS_MARK "\n", sizeof(STATUS_MARK)) == 0) {
		out->held = 1;
		out->details = rec_lock_decode_details(r.out.buf + sizeof(STATUS_MARK),
						       r.out.len - sizeof(STATUS_MARK));
		if (!out->details)
			out->details = xstrdup("(details unreadable)");
		rec_lock_parse_holder(out);
	}
out:
	cmd_result_release(&r);
	free(details);
	free(dir);
	return rc;
}

/* ---- signals ---- */

/*
 * SIGINT and SIGTERM are blocked in every thread (the mask is inherited by
 * threads created later: the pool's workers) and taken by one thread with
 * sigwait, so no system call of a worker (a libssh poll in the middle of a
 * command) is ever interrupted: the run only sees the flag between steps.
 */
static volatile sig_atomic_t got_signal;
static pthread_once_t sig_once = PTHREAD_ONCE_INIT;
static sigset_t sig_set;

static void *sig_thread(void *arg)
{
	sigset_t one;
	int sig;

	(void)arg;
	for (;;) {
		if (sigwait(&sig_set, &sig) != 0)
			continue;
		if (!got_signal) {
			got_signal = sig;
			continue;
		}
		/* the second one: the default action, now */
		signal(sig, SIG_DFL);
		sigemptyset(&one);
		sigaddset(&one, sig);
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
		raise(sig);
	}
	return NULL;
}

static void sig_start(void)
{
	pthread_t th;
	pthread_attr_t at;

	sigemptyset(&sig_set);
	sigaddset(&sig_set, SIGINT);
	sigaddset(&sig_set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &sig_set, NULL) != 0)
		return;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, sig_thread, NULL) != 0)
		pthread_sigmask(SIG_UNBLOCK, &sig_set, NULL); /* no taker: keep the defaults */
	pthread_attr_destroy(&at);
}

void rec_signals_install(void)
{
	pthread_once(&sig_once, sig_start);
}

int rec_interrupted(void)
{
	return (int)got_signal;
}

void rec_signals_reset(void)
{
	got_signal = 0;
}

/* ---- audit ---- */

char *rec_audit_path(const char *service, const char *destination)
{
	if (destination && *destination)
		return xasprintf(".kamal/%s-%s-audit.log", service, destination);
	return xasprintf(".kamal/%s-audit.log", service);
}

char *rec_audit_line(const char *destination, const char *performer, long long t, const char *text)
{
	char when[32];
	char *p = one_line(performer), *x = one_line(text), *d = NULL, *r;

	iso_time(t, when);
	if (destination && *destination) {
		d = one_line(destination);
		r = xasprintf("[%s] [%s] [%s] %s", when, p, d, x);
	} else {
		r = xasprintf("[%s] [%s] %s", when, p, x);
	}
	free(d);
	free(x);
	free(p);
	return r;
}

void rec_audit_cmd(struct prov_cmd *c, enum prov_join join, const struct desired *ds,
		   const char *performer, const char *text)
{
	char *line = rec_audit_line(ds->destination, performer, (long long)time(NULL), text);
	char *path = rec_audit_path(ds->service, ds->destination);

	prov_cmd_begin(c, join);
	prov_cmd_args(c, "sh", "-c", audit_script, "sh", line, path, NULL);
	free(path);
	free(line);
}
