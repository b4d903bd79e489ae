/*
 * The watcher's state directory (wstate.h).
 */
#include "state/wstate.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/json_text.h"
#include "state/util.h"

#define STATUS_FILE "status.json"
#define HISTORY_FILE "history.jsonl"
#define PID_FILE "watch.pid"
#define SUSPENDED_FILE "suspended"
#define RETRY_FILE "retry"

static char *path_in(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

/* ---- the directory ---- */

static int check_dir(const char *dir, struct plumb_err *err)
{
	struct stat st;

	if (lstat(dir, &st) != 0)
		return plumb_err_set(err, PLUMB_ERROR, "%s: %s", dir, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return plumb_err_set(err, PLUMB_EOUTSIDE, "%s: a symbolic link, not a state directory",
				     dir);
	if (!S_ISDIR(st.st_mode))
		return plumb_err_set(err, PLUMB_EINVAL, "%s: not a directory", dir);
	if (st.st_uid != geteuid())
		return plumb_err_set(err, PLUMB_EOWNER, "%s: owned by uid %u, not by this user (%u)",
				     dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 022)
		return plumb_err_set(err, PLUMB_EINVAL,
				     "%s: group or others may write to it (mode %03o): chmod 700 it",
				     dir, (unsigned)(st.st_mode & 0777));
	return 0;
}

int ws_open_dir(const char *dir, struct plumb_err *err)
{
	char *p;
	size_t n;

	if (!dir || !*dir)
		return plumb_err_set(err, PLUMB_EINVAL, "no state directory");
	p = xstrdup(dir);
	n = strlen(p);
	/* the parents as mkdir -p makes them, the last one 0700 */
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			int e = errno;
			plumb_err_set(err, PLUMB_ERROR, "%s: %s", p, strerror(e));
			free(p);
			return PLUMB_ERROR;
		}
		if (i < n)
			p[i] = '/';
	}
	free(p);
	return check_dir(dir, err);
}

const char *ws_default_dir(void)
{
	static char buf[PATH_MAX];
	const char *v;

	if ((v = getenv("PLUMB_STATE_DIR")) && *v)
		snprintf(buf, sizeof(buf), "%s", v);
	else if ((v = getenv("XDG_STATE_HOME")) && *v)
		snprintf(buf, sizeof(buf), "%s/plumb", v);
	else if ((v = getenv("HOME")) && *v)
		snprintf(buf, sizeof(buf), "%s/.local/state/plumb", v);
	else
		snprintf(buf, sizeof(buf), "./.plumb-state");
	return buf;
}

/* ---- files: written atomically, read bounded ---- */

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* name in dir := data, by temp file + fsync + rename + fsync of dir. */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len,
			struct plumb_err *err)
{
	unsigned char r[6];
	char *tmp, *dst = path_in(dir, name);
	size_t off = 0;
	int fd, rc = PLUMB_ERROR;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		memset(r, 0, sizeof(r));
	tmp = xasprintf("%s/.%s.tmp-%ld-%02x%02x%02x%02x%02x%02x", dir, name, (long)getpid(), r[0],
			r[1], r[2], r[3], r[4], r[5]);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		plumb_err_set(err, PLUMB_ERROR, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			plumb_err_set(err, PLUMB_ERROR, "%s: %s", tmp, w < 0 ? strerror(errno) : "short write");
			close(fd);
			unlink(tmp);
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		plumb_err_set(err, PLUMB_ERROR, "%s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, dst) != 0) {
		plumb_err_set(err, PLUMB_ERROR, "%s: %s", dst, strerror(errno));
		unlink(tmp);
		goto out;
	}
	sync_dir(dir);
	rc = 0;
out:
	free(tmp);
	free(dst);
	return rc;
}

/* name in dir, at most WS_MAX_FILE bytes; PLUMB_ENOTFOUND when absent. */
static int read_bounded(const char *dir, const char *name, char **out, size_t *len,
			struct plumb_err *err)
{
	char *path = path_in(dir, name), *buf = NULL;
	struct stat st;
	size_t off = 0;
	int fd, rc = PLUMB_ERROR;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = plumb_err_set(err, errno == ENOENT ? PLUMB_ENOTFOUND : PLUMB_ERROR, "%s: %s", path,
				   strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "%s: not a regular file", path);
		goto out;
	}
	if ((unsigned long long)st.st_size > WS_MAX_FILE) {
		rc = plumb_err_set(err, PLUMB_ETOOBIG, "%s: %lld bytes, over %u", path,
				   (long long)st.st_size, WS_MAX_FILE);
		goto out;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = plumb_err_set(err, PLUMB_ERROR, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	buf[off] = '\0';
	*out = buf;
	*len = off;
	buf = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(path);
	return rc;
}

/* ---- status ---- */

static json_t *jnum(double v)
{
	return json_real(v);
}

static json_t *host_json(const struct ws_host *h)
{
	json_t *o = json_object();

	jtext_set(o, "host", jtext(h->host));
	jtext_set(o, "reachable", json_integer(h->reachable));
	jtext_set(o, "sync", jtext(h->sync));
	jtext_set(o, "health", jtext(h->health));
	jtext_set(o, "version", jtext(h->version));
	jtext_set(o, "error", jtext(h->error));
	return o;
}

static json_t *status_json(const struct ws_status *st)
{
	json_t *o = json_object(), *hs = json_array();

	jtext_set(o, "service", jtext(st->service));
	jtext_set(o, "destination", jtext(st->destination));
	jtext_set(o, "repo", jtext(st->repo));
	jtext_set(o, "branch", jtext(st->branch));
	jtext_set(o, "phase", jtext(st->phase));
	jtext_set(o, "sync", jtext(st->sync));
	jtext_set(o, "health", jtext(st->health));
	jtext_set(o, "revision", jtext(st->revision));
	jtext_set(o, "applied_revision", jtext(st->applied_revision));
	jtext_set(o, "applied_version", jtext(st->applied_version));
	jtext_set(o, "applied_at", jnum(st->applied_at));
	jtext_set(o, "attempted_revision", jtext(st->attempted_revision));
	jtext_set(o, "attempted_at", jnum(st->attempted_at));
	jtext_set(o, "outcome", jtext(st->outcome));
	jtext_set(o, "last_error", jtext(st->last_error));
	jtext_set(o, "waiting_reason", jtext(st->waiting_reason));
	jtext_set(o, "held_revision", jtext(st->held_revision));
	jtext_set(o, "held_reason", jtext(st->held_reason));
	jtext_set(o, "lock_holder", jtext(st->lock_holder));
	jtext_set(o, "cycles", json_integer((json_int_t)st->cycles));
	jtext_set(o, "last_cycle_ms", jnum(st->last_cycle_ms));
	jtext_set(o, "updated_at", jnum(st->updated_at));
	jtext_set(o, "pid", json_integer(st->pid));
	for (size_t i = 0; i < st->nhosts; i++)
		json_array_append_new(hs, host_json(&st->hosts[i]));
	jtext_set(o, "hosts", hs);
	return o;
}

int ws_status_to_json(const struct ws_status *st, char **out)
{
	json_t *o = status_json(st);

	*out = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return *out ? 0 : -1;
}

int ws_status_write(const char *dir, const struct ws_status *st, struct plumb_err *err)
{
	char *text = NULL;
	int rc;

	if (ws_status_to_json(st, &text) != 0)
		return plumb_err_set(err, PLUMB_ERROR, "the status could not be encoded");
	rc = write_atomic(dir, STATUS_FILE, text, strlen(text), err);
	free(text);
	return rc;
}

/* Reading: each field checked; a wrong type is an error naming the key. */
struct rd {
	const char *file;
	struct plumb_err *err;
	int bad;
};

static char *get_str(struct rd *r, json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		if (!r->bad)
			plumb_err_set(r->err, PLUMB_EPROTOCOL, "%s: \"%s\" is not a string", r->file, key);
		r->bad = 1;
		return NULL;
	}
	return xstrdup(json_string_value(v));
}

static double get_num(struct rd *r, json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v)) {
		if (!r->bad)
			plumb_err_set(r->err, PLUMB_EPROTOCOL, "%s: \"%s\" is not a number", r->file, key);
		r->bad = 1;
		return 0;
	}
	return json_number_value(v);
}

static void status_from_json(struct rd *r, json_t *o, struct ws_status *st)
{
	json_t *hs = json_object_get(o, "hosts");
	size_t i;
	json_t *h;

	st->service = get_str(r, o, "service");
	st->destination = get_str(r, o, "destination");
	st->repo = get_str(r, o, "repo");
	st->branch = get_str(r, o, "branch");
	st->phase = get_str(r, o, "phase");
	st->sync = get_str(r, o, "sync");
	st->health = get_str(r, o, "health");
	st->revision = get_str(r, o, "revision");
	st->applied_revision = get_str(r, o, "applied_revision");
	st->applied_version = get_str(r, o, "applied_version");
	st->applied_at = get_num(r, o, "applied_at");
	st->attempted_revision = get_str(r, o, "attempted_revision");
	st->attempted_at = get_num(r, o, "attempted_at");
	st->outcome = get_str(r, o, "outcome");
	st->last_error = get_str(r, o, "last_error");
	st->waiting_reason = get_str(r, o, "waiting_reason");
	st->held_revision = get_str(r, o, "held_revision");
	st->held_reason = get_str(r, o, "held_reason");
	st->lock_holder = get_str(r, o, "lock_holder");
	st->cycles = (unsigned long)get_num(r, o, "cycles");
	st->last_cycle_ms = get_num(r, o, "last_cycle_ms");
	st->updated_at = get_num(r, o, "updated_at");
	st->pid = (long)get_num(r, o, "pid");
	if (!hs || json_is_null(hs))
		return;
	if (!json_is_array(hs)) {
		if (!r->bad)
			plumb_err_set(r->err, PLUMB_EPROTOCOL, "%s: \"hosts\" is not an array", r->file);
		r->bad = 1;
		return;
	}
	st->hosts = xcalloc(json_array_size(hs) + 1, sizeof(*st->hosts));
	json_array_foreach(hs, i, h) {
		struct ws_host *wh;
		if (!json_is_object(h)) {
			if (!r->bad)
				plumb_err_set(r->err, PLUMB_EPROTOCOL, "%s: hosts[%zu] is not an object",
					      r->file, i);
			r->bad = 1;
			return;
		}
		wh = &st->hosts[st->nhosts++];
		wh->host = get_str(r, h, "host");
		wh->reachable = (int)get_num(r, h, "reachable");
		wh->sync = get_str(r, h, "sync");
		wh->health = get_str(r, h, "health");
		wh->version = get_str(r, h, "version");
		wh->error = get_str(r, h, "error");
	}
}

int ws_status_read(const char *dir, struct ws_status *st, struct plumb_err *err)
{
	char *text = NULL, *file = path_in(dir, STATUS_FILE);
	struct rd r = { file, err, 0 };
	json_error_t je;
	json_t *o = NULL;
	size_t len;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = read_bounded(dir, STATUS_FILE, &text, &len, err);
	if (rc != 0)
		goto out;
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!o || !json_is_object(o)) {
		rc = plumb_err_set(err, PLUMB_EPROTOCOL, "%s: not a status (line %d: %s)", file,
				   o ? 1 : je.line, o ? "not an object" : je.text);
		goto out;
	}
	status_from_json(&r, o, st);
	if (r.bad) {
		ws_status_release(st);
		rc = PLUMB_EPROTOCOL;
	}
out:
	json_decref(o);
	free(text);
	free(file);
	return rc;
}

void ws_status_release(struct ws_status *st)
{
	char **strs[] = { &st->service, &st->destination, &st->repo, &st->branch, &st->phase,
			  &st->sync, &st->health, &st->revision, &st->applied_revision,
			  &st->applied_version, &st->attempted_revision, &st->outcome,
			  &st->last_error, &st->waiting_reason, &st->held_revision,
			  &st->held_reason, &st->lock_holder };

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	for (size_t i = 0; i < st->nhosts; i++) {
		free(st->hosts[i].host);
		free(st->hosts[i].sync);
		free(st->hosts[i].health);
		free(st->hosts[i].version);
		free(st->hosts[i].error);
	}
	free(st->hosts);
	memset(st, 0, sizeof(*st));
}

/* ---- history ---- */

static char *cycle_line(const struct ws_cycle *c)
{
	json_t *o = json_object();
	char *s;

	jtext_set(o, "revision", jtext(c->revision));
	jtext_set(o, "version", jtext(c->version));
	jtext_set(o, "plan_hash", jtext(c->plan_hash));
	jtext_set(o, "summary", jtext(c->summary));
	jtext_set(o, "outcome", jtext(c->outcome));
	jtext_set(o, "error", jtext(c->error));
	jtext_set(o, "started_at", jnum(c->started_at));
	jtext_set(o, "duration_ms", jnum(c->duration_ms));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

/* The start of each of the last `keep` lines of text. */
static const char *last_lines(const char *text, size_t len, size_t keep)
{
	const char *p = text + len;
	size_t n = 0;

	if (keep == 0)
		return text + len;
	if (p > text && p[-1] == '\n')
		p--;
	while (p > text) {
		if (p[-1] == '\n' && ++n == keep)
			return p;
		p--;
	}
	return text;
}

int ws_history_append(const char *dir, const struct ws_cycle *c, size_t keep,
		      struct plumb_err *err)
{
	char *old = NULL, *line = cycle_line(c);
	const char *from;
	size_t len = 0;
	struct sbuf sb;
	int rc;

	if (!keep)
		keep = WS_HISTORY_KEEP;
	rc = read_bounded(dir, HISTORY_FILE, &old, &len, err);
	if (rc == PLUMB_ENOTFOUND || rc == PLUMB_ETOOBIG) {
		plumb_err_reset(err);
		rc = 0;
		len = 0;
	}
	if (rc != 0)
		goto out;
	sbuf_init(&sb, 0);
	from = old ? last_lines(old, len, keep - 1) : NULL;
	if (from)
		sbuf_add(&sb, from, (size_t)(old + len - from));
	if (sb.len && sb.buf[sb.len - 1] != '\n')
		sbuf_addc(&sb, '\n');
	sbuf_adds(&sb, line);
	sbuf_addc(&sb, '\n');
	rc = write_atomic(dir, HISTORY_FILE, sb.buf, sb.len, err);
	sbuf_release(&sb);
out:
	free(old);
	free(line);
	return rc;
}

int ws_history_read(const char *dir, struct ws_cycle **out, size_t *n, struct plumb_err *err)
{
	char *text = NULL, *file = path_in(dir, HISTORY_FILE);
	size_t len = 0, cap = 0;
	char *p, *nl;
	int rc;

	*out = NULL;
	*n = 0;
	rc = read_bounded(dir, HISTORY_FILE, &text, &len, err);
	if (rc == PLUMB_ENOTFOUND) {
		plumb_err_reset(err);
		rc = 0;
		goto out;
	}
	if (rc != 0)
		goto out;
	for (p = text; p < text + len; p = nl + 1) {
		struct rd r = { file, NULL, 0 };
		struct ws_cycle *c;
		json_t *o;
		nl = memchr(p, '\n', (size_t)(text + len - p));
		if (!nl)
			nl = text + len;
		o = json_loadb(p, (size_t)(nl - p), 0, NULL);
		if (!o || !json_is_object(o)) {
			json_decref(o);
			continue;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		c = &(*out)[(*n)++];
		memset(c, 0, sizeof(*c));
		c->revision = get_str(&r, o, "revision");
		c->version = get_str(&r, o, "version");
		c->plan_hash = get_str(&r, o, "plan_hash");
		c->summary = get_str(&r, o, "summary");
		c->outcome = get_str(&r, o, "outcome");
		c->error = get_str(&r, o, "error");
		c->started_at = get_num(&r, o, "started_at");
		c->duration_ms = get_num(&r, o, "duration_ms");
		json_decref(o);
	}
out:
	free(text);
	free(file);
	return rc;
}

void ws_cycles_free(struct ws_cycle *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].revision);
		free(c[i].version);
		free(c[i].plan_hash);
		free(c[i].summary);
		free(c[i].outcome);
		free(c[i].error);
	}
	free(c);
}

/* ---- the watcher's pid and control files ---- */

static int pid_fd = -1; /* this process's watch.pid, flock'd until it exits */

int ws_pid_write(const char *dir, struct plumb_err *err)
{
	char *path = path_in(dir, PID_FILE), buf[32];
	int fd, len, rc = PLUMB_ERROR;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		plumb_err_set(err, PLUMB_ERROR, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		long other = ws_pid_read(dir);
		rc = plumb_err_set(err, PLUMB_ELOCKED, "%s: another watcher (pid %ld) uses this state "
				   "directory", dir, other);
		close(fd);
		goto out;
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
		plumb_err_set(err, PLUMB_ERROR, "%s: %s", path, strerror(errno));
		close(fd);
		goto out;
	}
	fsync(fd);
	if (pid_fd >= 0)
		close(pid_fd);
	pid_fd = fd;
	rc = 0;
out:
	free(path);
	return rc;
}

long ws_pid_read(const char *dir)
{
	char *path = path_in(dir, PID_FILE), buf[32] = { 0 };
	long pid = 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	free(path);
	if (fd < 0)
		return 0;
	/* only a held flock says a watcher runs: a pid file left by a killed
	 * one names a pid that may be anybody's now */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		close(fd);
		return 0;
	}
	if (pread(fd, buf, sizeof(buf) - 1, 0) > 0)
		pid = strtol(buf, NULL, 10);
	close(fd);
	return pid > 0 ? pid : 0;
}

static int exists(const char *dir, const char *name)
{
	char *p = path_in(dir, name);
	struct stat st;
	int rc = lstat(p, &st) == 0;

	free(p);
	return rc;
}

static int remove_in(const char *dir, const char *name, struct plumb_err *err)
{
	char *p = path_in(dir, name);
	int rc = 0;

	if (unlink(p) != 0 && errno != ENOENT)
		rc = plumb_err_set(err, PLUMB_ERROR, "%s: %s", p, strerror(errno));
	else
		sync_dir(dir);
	free(p);
	return rc;
}

int ws_suspended(const char *dir)
{
	return exists(dir, SUSPENDED_FILE);
}

int ws_set_suspended(const char *dir, int on, struct plumb_err *err)
{
	return on ? write_atomic(dir, SUSPENDED_FILE, "", 0, err) : remove_in(dir, SUSPENDED_FILE, err);
}

int ws_take_retry(const char *dir)
{
	char *p = path_in(dir, RETRY_FILE);
	int rc = unlink(p) == 0;

	free(p);
	if (rc)
		sync_dir(dir);
	return rc;
}

int ws_request_retry(const char *dir, struct plumb_err *err)
{
	return write_atomic(dir, RETRY_FILE, "", 0, err);
}
