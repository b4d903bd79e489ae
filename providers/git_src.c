#include "providers/git_src.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "state/util.h"

#define TOKEN_FILE_MAX 65536
#define SYMLINK_MAX_HOPS 8
#define SYMLINK_MAX_TARGET 4096
#define DEFAULT_MAX_FETCH ((size_t)1 << 30)
#define DEFAULT_FETCH_TIMEOUT 300

struct git_src {
	char *location;  /* as given (may hold a token in its userinfo) */
	char *display;   /* location with userinfo redacted: for messages */
	char *url;       /* NULL for a local repository */
	char *repo_path; /* the repository read (the cache for a URL) */
	char *lock_path; /* flock'd around cache init and fetch (URL only) */
	char *ref;       /* default ref, NULL = HEAD */
	char *ssh_key, *ssh_pubkey, *ssh_passphrase_env, *ssh_known_hosts;
	char *https_user;
	char *token; /* secret: wiped on free */
	int allow_foreign_owner;
	size_t max_fetch_bytes;
	unsigned fetch_timeout_s;
	git_repository *repo;

	/* Per-fetch state shared with the libgit2 callbacks. */
	int cred_calls;
	time_t deadline;
	size_t received;
	char *cb_err; /* why a callback stopped the fetch */
	int cb_code;  /* and its PLUMB_E* code */
};

struct tree_source {
	struct source base;
	git_repository *repo;
	git_tree *tree;
	char *label;
};

/* ---- library state ---------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
/* GIT_OPT_SET_OWNER_VALIDATION is process-wide: opens that turn it off for a
 * moment are serialised so no other open runs without the check. */
static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;

/* Records msg (a heap string, freed here) with code in the caller's carrier; returns code. */
static int put(struct plumb_err *err, int code, char *msg)
{
	plumb_err_set(err, code, "%s", msg ? msg : plumb_strerror(code));
	free(msg);
	return code;
}

static void lib_init(void)
{
	init_rc = git_libgit2_init() < 0 ? -1 : 0;
}

static int ensure_init(struct plumb_err *err)
{
	pthread_once(&init_once, lib_init);
	if (init_rc < 0) {
		put(err, PLUMB_ERROR, xstrdup("libgit2: initialisation failed"));
		return -1;
	}
	return 0;
}

/* ---- redaction and errors -------------------------------------------- */

/* sbuf_detach re-initialises (allocates) the buffer; this hands the string
 * over and releases the buffer for good. */
static char *sbuf_take(struct sbuf *sb)
{
	char *p = sbuf_detach(sb);

	sbuf_release(sb);
	return p;
}

char *git_src_redact(const char *msg, const char *secret)
{
	struct sbuf sb;
	const char *p = msg ? msg : "";
	size_t slen = secret ? strlen(secret) : 0;

	sbuf_init(&sb, 0);
	while (*p) {
		const char *sep = strstr(p, "://");
		const char *auth, *end, *at = NULL;

		if (!sep) {
			sbuf_adds(&sb, p);
			break;
		}
		auth = sep + 3;
		end = auth + strcspn(auth, "/?# \t\r\n'\"<>");
		for (const char *q = auth; q < end; q++)
			if (*q == '@')
				at = q;
		sbuf_add(&sb, p, (size_t)(auth - p));
		if (at) {
			sbuf_adds(&sb, "***");
			p = at;
		} else {
			p = auth;
		}
	}
	if (slen) {
		struct sbuf out;
		const char *q = sb.buf, *hit;

		sbuf_init(&out, 0);
		while ((hit = strstr(q, secret)) != NULL) {
			sbuf_add(&out, q, (size_t)(hit - q));
			sbuf_adds(&out, "***");
			q = hit + slen;
		}
		sbuf_adds(&out, q);
		sbuf_release(&sb);
		return sbuf_take(&out);
	}
	return sbuf_take(&sb);
}

static char *scrub(const struct git_src *g, char *msg)
{
	char *r = git_src_redact(msg, g ? g->token : NULL);

	free(msg);
	return r;
}

/* "<what>: <libgit2's message>", redacted. */
static char *PLUMB_PRINTF(2, 3) git_fail(const struct git_src *g, const char *fmt, ...)
{
	const git_error *e = git_error_last();
	va_list ap;
	char *what, *msg;

	va_start(ap, fmt);
	what = xvasprintf(fmt, ap);
	va_end(ap);
	msg = xasprintf("%s: %s", what, e && e->message ? e->message : "unknown libgit2 error");
	free(what);
	return scrub(g, msg);
}

/* ---- helpers ----------------------------------------------------------- */

static int is_url(const char *loc)
{
	const char *colon, *slash;
	struct stat st;

	if (strstr(loc, "://"))
		return 1;
	/* scp-like user@host:path: a colon before any slash, and not a path
	 * that exists. */
	colon = strchr(loc, ':');
	slash = strchr(loc, '/');
	if (colon && colon != loc && (!slash || colon < slash) && stat(loc, &st) < 0)
		return 1;
	return 0;
}

/* The URL without userinfo (what identifies the repository). */
static char *url_identity(const char *url)
{
	return git_src_redact(url, NULL);
}

static int mkdir_p(const char *path, struct plumb_err *err)
{
	char *p = xstrdup(path);
	int rc = 0;

	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0700) < 0 && errno != EEXIST) {
				put(err, PLUMB_ERROR, xasprintf("%s: cannot create directory: %s", p, strerror(errno)));
				rc = -1;
				goto out;
			}
			*s = c;
			if (!c)
				break;
		}
	}
out:
	free(p);
	return rc;
}

static char *default_cache_dir(struct plumb_err *err)
{
	const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");

	if (x && x[0] == '/')
		return xasprintf("%s/plumb/repos", x);
	if (h && *h)
		return xasprintf("%s/.cache/plumb/repos", h);
	put(err, PLUMB_ERROR, xstrdup("no cache directory: set XDG_CACHE_HOME or HOME, or give one"));
	return NULL;
}

/* "<host-and-path, sanitised>-<16 hex of sha1(url without userinfo)>" */
static char *cache_name(const char *url)
{
	char *id = url_identity(url);
	const char *p = strstr(id, "://");
	char hex[GIT_OID_HEXSZ + 1];
	char readable[49];
	size_t n = 0;
	git_oid oid;

	p = p ? p + 3 : id;
	if (!strncmp(p, "***@", 4))
		p += 4;
	for (; *p && n < sizeof(readable) - 1; p++) {
		char c = *p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		if (!ok && n && readable[n - 1] == '-')
			continue;
		readable[n++] = ok ? c : '-';
	}
	while (n && (readable[n - 1] == '-' || readable[n - 1] == '.'))
		n--;
	readable[n] = '\0';
	git_odb_hash(&oid, id, strlen(id), GIT_OBJECT_BLOB);
	git_oid_tostr(hex, sizeof(hex), &oid);
	free(id);
	return xasprintf("%s-%.16s", n ? readable : "repo", hex);
}

static char *trim_line(char *s)
{
	size_t n = strcspn(s, "\r\n");

	s[n] = '\0';
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static int load_token(struct git_src *g, const struct git_src_opts *o, struct plumb_err *err)
{
	const char *v = o->token_env ? getenv(o->token_env) : NULL;
	char *buf = NULL;
	size_t len = 0;

	if (v && *v) {
		g->token = xstrdup(v);
		trim_line(g->token);
		return 0;
	}
	if (o->token_file) {
		if (util_read_file(o->token_file, TOKEN_FILE_MAX, &buf, &len) < 0) {
			put(err, PLUMB_ERROR,
			    xasprintf("token file %s: %s", o->token_file,
				      errno == EFBIG ? "file too large" : strerror(errno)));
			return -1;
		}
		trim_line(buf);
		if (!*buf) {
			util_free_secret(buf);
			put(err, PLUMB_ERROR, xasprintf("token file %s: empty", o->token_file));
			return -1;
		}
		g->token = buf;
		return 0;
	}
	if (o->token_env) {
		put(err, PLUMB_ERROR, xasprintf("HTTPS token: environment variable %s is not set", o->token_env));
		return -1;
	}
	return 0;
}

/* Opens a repository at exactly path (no discovery upwards), turning owner
 * validation off for this open only when the caller allowed it. */
static int open_repo(git_repository **out, const char *path, int allow_foreign,
		     const struct git_src *g, struct plumb_err *err)
{
	int rc, prev = 1;
	struct stat st;

	pthread_mutex_lock(&owner_lock);
	if (allow_foreign) {
		git_libgit2_opts(GIT_OPT_GET_OWNER_VALIDATION, &prev);
		git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
	}
	rc = git_repository_open_ext(out, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (allow_foreign)
		git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, prev);
	pthread_mutex_unlock(&owner_lock);
	/* libgit2 1.5 reports an ownership failure as GIT_ENOTFOUND "config value
	 * 'safe.directory' was not found" when safe.directory is unset (fixed
	 * upstream in 1.6): recognise both. */
	if (rc == GIT_ENOTFOUND && git_error_last() && git_error_last()->message &&
	    strstr(git_error_last()->message, "safe.directory"))
		rc = GIT_EOWNER;
	if (rc == GIT_EOWNER) {
		unsigned owner = stat(path, &st) == 0 ? (unsigned)st.st_uid : 0;

		return put(err, PLUMB_EOWNER, scrub(g, xasprintf(
			"%s: the repository is owned by another user (uid %u; plumb runs as uid %u) "
			"and git refuses such repositories (CVE-2022-24765). If you trust it, add "
			"it to git's safe.directory for this user (git config --global --add "
			"safe.directory %s) or pass --allow-foreign-owner",
			path, owner, (unsigned)geteuid(), path)));
	}
	if (rc == GIT_ENOTFOUND) {
		return put(err, PLUMB_ENOTFOUND,
			   scrub(g, xasprintf("%s: not a git repository (or not its top directory)",
					      path)));
	}
	if (rc < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s", path));
		return -1;
	}
	return 0;
}

static int lock_cache(const struct git_src *g, struct plumb_err *err)
{
	int fd = open(g->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		put(err, PLUMB_ERROR, xasprintf("%s: %s", g->lock_path, strerror(errno)));
		return -1;
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			put(err, PLUMB_ERROR, xasprintf("%s: lock: %s", g->lock_path, strerror(errno)));
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void unlock_cache(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* ---- open ------------------------------------------------------------- */

static int open_cache(struct git_src *g, const char *cache_dir, struct plumb_err *err)
{
	char *dir = NULL, *name = NULL, *head = NULL;
	struct stat st;
	int fd = -1, rc = -1;

	if (cache_dir)
		dir = xstrdup(cache_dir);
	else if (!(dir = default_cache_dir(err)))
		goto out;
	if (mkdir_p(dir, err) < 0)
		goto out;
	name = cache_name(g->url);
	g->repo_path = xasprintf("%s/%s", dir, name);
	g->lock_path = xasprintf("%s/%s.lock", dir, name);
	if ((fd = lock_cache(g, err)) < 0)
		goto out;
	head = xasprintf("%s/HEAD", g->repo_path);
	if (stat(head, &st) == 0) {
		if (open_repo(&g->repo, g->repo_path, 0, g, err) < 0)
			goto out;
	} else if (git_repository_init(&g->repo, g->repo_path, 1) < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: cannot create the cache repository", g->repo_path));
		goto out;
	}
	rc = 0;
out:
	unlock_cache(fd);
	free(head);
	free(name);
	free(dir);
	return rc;
}

int git_src_open(struct git_src **out, const struct git_src_opts *o, struct plumb_err *err)
{
	struct git_src *g = NULL;
	int rc = -1;

	*out = NULL;
	if (ensure_init(err) < 0)
		return -1;
	if (!o || !o->location || !*o->location) {
		put(err, PLUMB_ERROR, xstrdup("git source: no repository location given"));
		return -1;
	}
	g = xcalloc(1, sizeof(*g));
	g->location = xstrdup(o->location);
	g->display = git_src_redact(o->location, NULL);
	g->ref = o->ref && *o->ref ? xstrdup(o->ref) : NULL;
	g->allow_foreign_owner = o->allow_foreign_owner;
	g->max_fetch_bytes = o->max_fetch_bytes ? o->max_fetch_bytes : DEFAULT_MAX_FETCH;
	g->fetch_timeout_s = o->fetch_timeout_s ? o->fetch_timeout_s : DEFAULT_FETCH_TIMEOUT;
	if (o->ssh_key) {
		if (access(o->ssh_key, R_OK) < 0) {
			put(err, PLUMB_ERROR, xasprintf("ssh key %s: %s", o->ssh_key, strerror(errno)));
			goto out;
		}
		g->ssh_key = xstrdup(o->ssh_key);
	}
	if (o->ssh_pubkey)
		g->ssh_pubkey = xstrdup(o->ssh_pubkey);
	if (o->ssh_passphrase_env)
		g->ssh_passphrase_env = xstrdup(o->ssh_passphrase_env);
	if (o->ssh_known_hosts) {
		if (access(o->ssh_known_hosts, R_OK) < 0) {
			put(err, PLUMB_ERROR, xasprintf("known_hosts %s: %s", o->ssh_known_hosts, strerror(errno)));
			goto out;
		}
		g->ssh_known_hosts = xstrdup(o->ssh_known_hosts);
	}
	if (o->https_user)
		g->https_user = xstrdup(o->https_user);
	if (load_token(g, o, err) < 0)
		goto out;
	if ((o->ca_file || o->ca_path) &&
	    git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, o->ca_file, o->ca_path) < 0) {
		put(err, PLUMB_ERROR,
		    git_fail(g, "CA locations (file %s, directory %s)", o->ca_file ? o->ca_file : "-",
			     o->ca_path ? o->ca_path : "-"));
		goto out;
	}

	if (is_url(o->location)) {
		g->url = xstrdup(o->location);
		if (open_cache(g, o->cache_dir, err) < 0)
			goto out;
	} else {
		g->repo_path = xstrdup(o->location);
		if ((rc = open_repo(&g->repo, o->location, o->allow_foreign_owner, g, err)) < 0)
			goto out;
	}
	*out = g;
	return 0;
out:
	git_src_free(g);
	return rc < 0 ? rc : -1;
}

int git_src_is_remote(const struct git_src *g)
{
	return g->url != NULL;
}

const char *git_src_repo_path(const struct git_src *g)
{
	return g->repo_path;
}

void git_src_free(struct git_src *g)
{
	if (!g)
		return;
	git_repository_free(g->repo);
	free(g->location);
	free(g->display);
	free(g->url);
	free(g->repo_path);
	free(g->lock_path);
	free(g->ref);
	free(g->ssh_key);
	free(g->ssh_pubkey);
	free(g->ssh_passphrase_env);
	free(g->ssh_known_hosts);
	free(g->https_user);
	util_free_secret(g->token);
	free(g->cb_err);
	free(g);
}

/* ---- fetch ------------------------------------------------------------ */

static void set_cb_err(struct git_src *g, int code, char *msg)
{
	if (!g->cb_err) {
		g->cb_err = msg;
		g->cb_code = code;
	} else {
		free(msg);
	}
}

static int cred_cb(git_credential **out, const char *url, const char *username_from_url,
		   unsigned int allowed, void *payload)
{
	struct git_src *g = payload;
	const char *user = username_from_url && *username_from_url ? username_from_url : NULL;

	(void)url;
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user ? user : "git");
	/* libgit2 asks again after every refusal: one attempt, then stop. */
	if (g->cred_calls++ > 0) {
		set_cb_err(g, PLUMB_EAUTH,
			   xasprintf("%s: authentication failed (credentials refused by the remote)",
				     g->display));
		return GIT_EAUTH;
	}
	if ((allowed & GIT_CREDENTIAL_SSH_KEY) && g->ssh_key) {
		const char *pass = g->ssh_passphrase_env ? getenv(g->ssh_passphrase_env) : NULL;

		return git_credential_ssh_key_new(out, user ? user : "git", g->ssh_pubkey,
						  g->ssh_key, pass);
	}
	if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && g->token) {
		const char *u = g->https_user ? g->https_user : user ? user : "x-access-token";

		return git_credential_userpass_plaintext_new(out, u, g->token);
	}
	set_cb_err(g, PLUMB_EAUTH,
		   xasprintf("%s: the remote asks for %s credentials and none are configured (%s)",
			     g->display, (allowed & GIT_CREDENTIAL_SSH_KEY) ? "SSH" : "HTTPS",
			     (allowed & GIT_CREDENTIAL_SSH_KEY) ? "give an SSH key file"
								: "give a token env var or file"));
	return GIT_EAUTH;
}

static int check_limits(struct git_src *g)
{
	if (g->deadline && time(NULL) > g->deadline) {
		set_cb_err(g, PLUMB_ETIMEOUT, xasprintf("%s: fetch took longer than %u s", g->display,
					g->fetch_timeout_s));
		return -1;
	}
	if (g->received > g->max_fetch_bytes) {
		set_cb_err(g, PLUMB_ETOOBIG, xasprintf("%s: fetch exceeded %zu bytes", g->display,
					g->max_fetch_bytes));
		return -1;
	}
	return 0;
}

static int progress_cb(const git_indexer_progress *stats, void *payload)
{
	struct git_src *g = payload;

	g->received = stats->received_bytes;
	return check_limits(g);
}

static int sideband_cb(const char *str, int len, void *payload)
{
	(void)str;
	(void)len;
	return check_limits(payload);
}

/* ---- SSH host key check against a known_hosts file ---------------- */

#define KNOWN_HOSTS_MAX (1u << 20)

/* Host and port of an ssh:// or scp-like URL (port 22 by default). */
static void ssh_url_port(const char *url, int *port)
{
	const char *p = strstr(url, "://"), *end, *colon;

	*port = 22;
	if (!p)
		return;
	p += 3;
	end = p + strcspn(p, "/");
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			p = q + 1;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		colon = rb && rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
	}
	if (colon)
		*port = atoi(colon + 1);
}

/* 1 if one of the comma-separated patterns names host:port. */
static int known_host_matches(const char *pats, size_t n, const char *host, int port)
{
	char *want = port == 22 ? xstrdup(host) : xasprintf("[%s]:%d", host, port);
	size_t wl = strlen(want);
	int hit = 0;

	while (n && !hit) {
		size_t k = 0;

		while (k < n && pats[k] != ',')
			k++;
		hit = k == wl && memcmp(pats, want, wl) == 0;
		pats += k;
		n -= k;
		if (n) {
			pats++;
			n--;
		}
	}
	free(want);
	return hit;
}

static int cert_cb(git_cert *cert, int valid, const char *host, void *payload)
{
	struct git_src *g = payload;
	git_cert_hostkey *hk = (git_cert_hostkey *)cert;
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	int port, host_seen = 0, rc = GIT_ECERTIFICATE;

	(void)valid;
	if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2 || !g->ssh_known_hosts)
		return GIT_PASSTHROUGH; /* TLS: libgit2's verification stands */
	if (!(hk->type & GIT_CERT_SSH_RAW) || !hk->hostkey) {
		set_cb_err(g, PLUMB_EHOSTKEY, xasprintf("%s: the SSH library gave no raw host key to check",
					g->display));
		return GIT_ECERTIFICATE;
	}
	if (util_read_file(g->ssh_known_hosts, KNOWN_HOSTS_MAX, &buf, &len) < 0) {
		set_cb_err(g, PLUMB_EHOSTKEY,
			   xasprintf("known_hosts %s: %s", g->ssh_known_hosts, strerror(errno)));
		return GIT_ECERTIFICATE;
	}
	ssh_url_port(g->url, &port);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *f[3];
		size_t fl[3];
		const char *p = line;
		unsigned char *key = NULL;
		size_t keylen = 0;
		int nf = 0;

		while (nf < 3) {
			p += strspn(p, " \t\r");
			if (!*p || *p == '#')
				break;
			f[nf] = p;
			fl[nf] = strcspn(p, " \t\r");
			p += fl[nf];
			nf++;
		}
		if (nf < 3 || f[0][0] == '@' || f[0][0] == '|')
			continue; /* comment, marker (@revoked, @cert-authority), hashed */
		if (!known_host_matches(f[0], fl[0], host, port))
			continue;
		host_seen = 1;
		if (util_base64_decode(f[2], fl[2], 0, &key, &keylen) == 0 && keylen == hk->hostkey_len &&
		    memcmp(key, hk->hostkey, keylen) == 0)
			rc = 0;
		free(key);
		if (rc == 0)
			break;
	}
	free(buf);
	if (rc != 0)
		set_cb_err(g, PLUMB_EHOSTKEY, xasprintf(host_seen ? "%s: the host key of %s does not match %s "
						    "(someone may be intercepting the connection)"
						  : "%s: %s is not in %s",
					g->display, host, g->ssh_known_hosts));
	return rc;
}

/* Where a full ref outside heads/tags is kept in the cache. */
static char *other_ref_local(const char *ref)
{
	return xasprintf("refs/remotes/origin/%s", ref + strlen("refs/"));
}

static int is_other_ref(const char *ref)
{
	return ref && !strncmp(ref, "refs/", 5) && strncmp(ref, "refs/heads/", 11) &&
	       strncmp(ref, "refs/tags/", 10) && strncmp(ref, "refs/remotes/", 13);
}

static int record_default_branch(struct git_src *g, git_remote *remote)
{
	git_buf buf = { 0 };
	git_reference *ref = NULL;
	char *target = NULL;
	int rc = 0;

	if (git_remote_default_branch(&buf, remote) < 0)
		return 0; /* empty remote, or no HEAD: nothing to record */
	if (strncmp(buf.ptr, "refs/heads/", 11) == 0) {
		target = xasprintf("refs/remotes/origin/%s", buf.ptr + 11);
		if (git_reference_symbolic_create(&ref, g->repo, "refs/remotes/origin/HEAD", target,
						  1, "plumb: remote HEAD") < 0)
			rc = -1;
	}
	git_reference_free(ref);
	free(target);
	git_buf_dispose(&buf);
	return rc;
}

int git_src_fetch(struct git_src *g, size_t *fetched_bytes, struct plumb_err *err)
{
	git_remote *remote = NULL;
	git_fetch_options fo;
	git_remote_create_options co;
	char *specs[3] = { NULL, NULL, NULL };
	git_strarray arr;
	int fd = -1, rc = -1, grc;
	int valid = 0;

	if (fetched_bytes)
		*fetched_bytes = 0;
	if (!g->url)
		return 0;
	specs[0] = xstrdup("+refs/heads/*:refs/remotes/origin/*");
	specs[1] = xstrdup("+refs/tags/*:refs/tags/*");
	arr.strings = specs;
	arr.count = 2;
	if (is_other_ref(g->ref)) {
		char *local;

		if (git_reference_name_is_valid(&valid, g->ref) < 0 || !valid ||
		    strchr(g->ref, '*')) {
			put(err, PLUMB_ERROR, xasprintf("%s: not a valid ref name", g->ref));
			goto out;
		}
		local = other_ref_local(g->ref);
		specs[2] = xasprintf("+%s:%s", g->ref, local);
		free(local);
		arr.count = 3;
	}
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	if ((fd = lock_cache(g, err)) < 0)
		goto out;
	/* Anonymous (nothing written to the cache's config) and without url.*.insteadOf
	 * rewriting: the URL fetched is the URL given. */
	git_remote_create_options_init(&co, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	co.repository = g->repo;
	co.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	if (git_remote_create_with_opts(&remote, g->url, &co) < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s", g->display));
		goto out;
	}
	fo.callbacks.credentials = cred_cb;
	fo.callbacks.certificate_check = cert_cb;
	fo.callbacks.transfer_progress = progress_cb;
	fo.callbacks.sideband_progress = sideband_cb;
	fo.callbacks.payload = g;
	fo.prune = GIT_FETCH_PRUNE;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.proxy_opts.type = GIT_PROXY_AUTO;
	g->cred_calls = 0;
	g->received = 0;
	g->deadline = time(NULL) + (time_t)g->fetch_timeout_s;
	free(g->cb_err);
	g->cb_err = NULL;
	grc = git_remote_fetch(remote, &arr, &fo, "plumb: fetch");
	if (fetched_bytes)
		*fetched_bytes = git_remote_stats(remote)->received_bytes;
	if (grc < 0) {
		rc = grc == GIT_EAUTH ? PLUMB_EAUTH : PLUMB_ENETWORK;
		if (g->cb_err) {
			rc = put(err, g->cb_code, scrub(g, g->cb_err));
			g->cb_err = NULL;
		} else {
			put(err, rc, git_fail(g, "%s: fetch", g->display));
		}
		goto out;
	}
	if (record_default_branch(g, remote) < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: recording the default branch", g->display));
		goto out;
	}
	rc = 0;
out:
	unlock_cache(fd);
	git_remote_free(remote);
	for (size_t i = 0; i < ARRAY_SIZE(specs); i++)
		free(specs[i]);
	return rc;
}

/* ---- resolve ---------------------------------------------------------- */

/* 1 found (oid set), 0 not found, -1 error (*err set). */
static int try_ref(struct git_src *g, const char *name, git_oid *oid, struct plumb_err *err)
{
	git_reference *ref = NULL;
	git_object *obj = NULL;
	int rc, valid = 0;

	if (git_reference_name_is_valid(&valid, name) < 0 || !valid)
		return 0;
	rc = git_reference_lookup(&ref, g->repo, name);
	if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC)
		return 0;
	if (rc < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: %s", g->display, name));
		return -1;
	}
	rc = git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT);
	git_reference_free(ref);
	if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH)
		return 0;
	if (rc < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: %s does not name a commit", g->display, name));
		return -1;
	}
	git_oid_cpy(oid, git_object_id(obj));
	git_object_free(obj);
	return 1;
}

static int is_hex(const char *s, size_t min, size_t max)
{
	size_t n = strspn(s, "0123456789abcdefABCDEF");

	return s[n] == '\0' && n >= min && n <= max;
}

/* 1 found, 0 not found, -1 error. */
static int try_sha(struct git_src *g, const char *s, git_oid *oid, struct plumb_err *err)
{
	git_oid prefix;
	git_object *obj = NULL, *peeled = NULL;
	size_t n = strlen(s);
	int rc;

	if (!is_hex(s, 4, GIT_OID_HEXSZ))
		return 0;
	if (git_oid_fromstrn(&prefix, s, n) < 0)
		return 0;
	rc = git_object_lookup_prefix(&obj, g->repo, &prefix, n, GIT_OBJECT_ANY);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc == GIT_EAMBIGUOUS) {
		put(err, PLUMB_ERROR,
		    scrub(g, xasprintf("%s: %s is ambiguous; give more hex digits", g->display, s)));
		return -1;
	}
	if (rc < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: %s", g->display, s));
		return -1;
	}
	rc = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
	git_object_free(obj);
	if (rc < 0) {
		put(err, PLUMB_ERROR, scrub(g, xasprintf("%s: %s is not a commit", g->display, s)));
		return -1;
	}
	git_oid_cpy(oid, git_object_id(peeled));
	git_object_free(peeled);
	return 1;
}

int git_src_resolve(struct git_src *g, const char *ref, char sha_out[41], struct plumb_err *err)
{
	char *cand[3] = { NULL, NULL, NULL };
	git_oid oid;
	int rc = 0;

	sha_out[0] = '\0';
	if (!ref)
		ref = g->ref ? g->ref : "HEAD";
	if (!strcmp(ref, "HEAD")) {
		cand[0] = xstrdup(g->url ? "refs/remotes/origin/HEAD" : "HEAD");
	} else if (!strncmp(ref, "refs/", 5)) {
		if (g->url && !strncmp(ref, "refs/heads/", 11))
			cand[0] = xasprintf("refs/remotes/origin/%s", ref + 11);
		else if (g->url && is_other_ref(ref))
			cand[0] = other_ref_local(ref);
		else
			cand[0] = xstrdup(ref);
	} else if (g->url) {
		cand[0] = xasprintf("refs/remotes/origin/%s", ref);
		cand[1] = xasprintf("refs/tags/%s", ref);
	} else {
		cand[0] = xasprintf("refs/heads/%s", ref);
		cand[1] = xasprintf("refs/tags/%s", ref);
		cand[2] = xasprintf("refs/remotes/%s", ref);
	}
	for (size_t i = 0; i < ARRAY_SIZE(cand) && cand[i] && rc == 0; i++)
		rc = try_ref(g, cand[i], &oid, err);
	if (rc == 0 && strncmp(ref, "refs/", 5) && strcmp(ref, "HEAD"))
		rc = try_sha(g, ref, &oid, err);
	if (rc == 0) {
		if (!strcmp(ref, "HEAD") && g->url)
			put(err, PLUMB_ENOTFOUND,
			    scrub(g, xasprintf("%s: no HEAD in the cache (not fetched yet, or "
					       "the remote is empty)",
					       g->display)));
		else if (!strcmp(ref, "HEAD"))
			put(err, PLUMB_ENOTFOUND, scrub(g, xasprintf("%s: HEAD has no commit yet", g->display)));
		else
			put(err, PLUMB_ENOTFOUND,
			    scrub(g, xasprintf("%s: no branch, tag or commit named '%s'%s",
					       g->display, ref,
					       g->url ? " (after the last fetch)" : "")));
		rc = PLUMB_ENOTFOUND;
	} else if (rc > 0) {
		git_oid_tostr(sha_out, 41, &oid);
		rc = 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cand); i++)
		free(cand[i]);
	return rc;
}

/* ---- reading a commit's tree ---------------------------------------- */

/*
 * Joins base (a directory inside the tree, "" for the root) and rel into a
 * canonical path ("a/b/c", no ".", "..", or empty components). -1 if rel
 * climbs above the root or is absolute.
 */
static int tree_path_join(const char *base, const char *rel, struct sbuf *out)
{
	const char *parts[2] = { base, rel };

	sbuf_reset(out);
	if (rel[0] == '/')
		return -1;
	for (size_t i = 0; i < 2; i++) {
		const char *p = parts[i];

		while (*p) {
			size_t n = strcspn(p, "/");

			if (n == 0 || (n == 1 && p[0] == '.')) {
				/* skip */
			} else if (n == 2 && p[0] == '.' && p[1] == '.') {
				char *slash;

				if (out->len == 0)
					return -1;
				slash = strrchr(out->buf, '/');
				out->len = slash ? (size_t)(slash - out->buf) : 0;
				out->buf[out->len] = '\0';
			} else {
				if (out->len)
					sbuf_addc(out, '/');
				sbuf_add(out, p, n);
			}
			p += n;
			if (*p == '/')
				p++;
		}
	}
	return out->len ? 0 : -1;
}

static int read_blob(struct tree_source *t, const git_oid *id, size_t max, const char *path,
		     char **out, size_t *len, struct plumb_err *err)
{
	git_odb *odb = NULL;
	git_blob *blob = NULL;
	git_object_t type;
	size_t size = 0;
	int rc = -1;

	if (git_repository_odb(&odb, t->repo) < 0 ||
	    git_odb_read_header(&size, &type, odb, id) < 0) {
		put(err, PLUMB_ERROR, git_fail(NULL, "%s: %s", t->label, path));
		goto out;
	}
	if (size > max) {
		rc = put(err, PLUMB_ETOOBIG, xasprintf("%s: %s: file too large (%zu bytes, limit %zu)",
						       t->label, path, size, max));
		goto out;
	}
	if (git_blob_lookup(&blob, t->repo, id) < 0) {
		put(err, PLUMB_ERROR, git_fail(NULL, "%s: %s", t->label, path));
		goto out;
	}
	size = (size_t)git_blob_rawsize(blob);
	*out = xmalloc(size + 1);
	memcpy(*out, git_blob_rawcontent(blob), size);
	(*out)[size] = '\0';
	*len = size;
	rc = 0;
out:
	git_blob_free(blob);
	git_odb_free(odb);
	return rc;
}

static int tree_read(struct source *s, const char *relpath, char **out, size_t *len,
		     struct plumb_err *err)
{
	struct tree_source *t = (struct tree_source *)s;
	git_tree_entry *e = NULL;
	struct sbuf path, next;
	char *target = NULL;
	int rc = -1;

	*out = NULL;
	*len = 0;
	sbuf_init(&path, 0);
	sbuf_init(&next, 0);
	if (!source_path_is_inside(relpath) || tree_path_join("", relpath, &path) < 0) {
		rc = put(err, PLUMB_EOUTSIDE,
			 xasprintf("%s: %s: path is outside the repository", t->label, relpath));
		goto out;
	}
	for (int hops = 0;; hops++) {
		int grc = git_tree_entry_bypath(&e, t->tree, path.buf);
		char *dir, *slash;

		if (grc == GIT_ENOTFOUND) {
			rc = put(err, PLUMB_ENOTFOUND, xasprintf("%s: %s: no such file", t->label, relpath));
			goto out;
		}
		if (grc < 0) {
			put(err, PLUMB_ERROR, git_fail(NULL, "%s: %s", t->label, relpath));
			goto out;
		}
		switch (git_tree_entry_filemode(e)) {
		case GIT_FILEMODE_BLOB:
		case GIT_FILEMODE_BLOB_EXECUTABLE:
			rc = read_blob(t, git_tree_entry_id(e), SOURCE_MAX_FILE, relpath, out, len, err);
			goto out;
		case GIT_FILEMODE_TREE:
			rc = put(err, PLUMB_EOUTSIDE, xasprintf("%s: %s: is a directory", t->label, relpath));
			goto out;
		case GIT_FILEMODE_COMMIT:
			rc = put(err, PLUMB_EOUTSIDE,
				 xasprintf("%s: %s: is a submodule (not read)", t->label, relpath));
			goto out;
		case GIT_FILEMODE_LINK:
			break;
		default:
			put(err, PLUMB_ERROR, xasprintf("%s: %s: unsupported tree entry", t->label, relpath));
			goto out;
		}
		/* A symbolic link: follow it while it stays inside the tree. */
		if (hops >= SYMLINK_MAX_HOPS) {
			put(err, PLUMB_ERROR, xasprintf("%s: %s: too many levels of symbolic links", t->label, relpath));
			goto out;
		}
		if (read_blob(t, git_tree_entry_id(e), SYMLINK_MAX_TARGET, relpath, &target, len,
			      err) < 0)
			goto out;
		dir = xstrdup(path.buf);
		slash = strrchr(dir, '/');
		*(slash ? slash : dir) = '\0';
		if (strlen(target) != *len || tree_path_join(dir, target, &next) < 0) {
			free(dir);
			rc = put(err, PLUMB_EOUTSIDE,
				 xasprintf("%s: %s: symbolic link points outside the repository",
					   t->label, relpath));
			goto out;
		}
		free(dir);
		free(target);
		target = NULL;
		git_tree_entry_free(e);
		e = NULL;
		sbuf_reset(&path);
		sbuf_add(&path, next.buf, next.len);
	}
out:
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*len = 0;
	}
	free(target);
	git_tree_entry_free(e);
	sbuf_release(&path);
	sbuf_release(&next);
	return rc;
}

static void tree_free(struct source *s)
{
	struct tree_source *t = (struct tree_source *)s;

	git_tree_free(t->tree);
	git_repository_free(t->repo);
	free(t->label);
	free(t);
}

int git_src_source_at(struct git_src *g, const char *sha, struct source **out,
		      struct plumb_err *err)
{
	struct tree_source *t = NULL;
	git_commit *commit = NULL;
	git_oid prefix;
	char hex[8];
	size_t n;
	int rc = -1;

	*out = NULL;
	if (!sha || !is_hex(sha, 4, GIT_OID_HEXSZ)) {
		put(err, PLUMB_ERROR, scrub(g, xasprintf("%s: '%s' is not a commit sha", g->display,
						       sha ? sha : "(null)")));
		return -1;
	}
	n = strlen(sha);
	t = xcalloc(1, sizeof(*t));
	if (open_repo(&t->repo, g->repo_path, g->allow_foreign_owner, g, err) < 0)
		goto out;
	if (git_oid_fromstrn(&prefix, sha, n) < 0 ||
	    git_commit_lookup_prefix(&commit, t->repo, &prefix, n) < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: commit %s", g->display, sha));
		goto out;
	}
	if (git_commit_tree(&t->tree, commit) < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: tree of %s", g->display, sha));
		goto out;
	}
	git_oid_tostr(hex, sizeof(hex), git_commit_id(commit));
	t->label = xasprintf("%s@%s", g->display, hex);
	t->base.read = tree_read;
	t->base.free = tree_free;
	t->base.root_dir = NULL;
	t->base.label = t->label;
	*out = &t->base;
	t = NULL;
	rc = 0;
out:
	git_commit_free(commit);
	if (t)
		tree_free(&t->base);
	return rc;
}

int git_src_export(struct git_src *g, const char *sha, const char *dir, struct plumb_err *err)
{
	git_checkout_options co;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_oid prefix;
	size_t n;
	int rc = -1;

	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	if (!sha || !is_hex(sha, 4, GIT_OID_HEXSZ))
		return put(err, PLUMB_EINVAL, scrub(g, xasprintf("%s: '%s' is not a commit sha",
								g->display, sha ? sha : "(null)")));
	if (mkdir(dir, 0700) != 0)
		return put(err, PLUMB_ERROR, xasprintf("%s: %s", dir, strerror(errno)));
	n = strlen(sha);
	if (git_oid_fromstrn(&prefix, sha, n) < 0 ||
	    git_commit_lookup_prefix(&commit, g->repo, &prefix, n) < 0 ||
	    git_commit_tree(&tree, commit) < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: commit %s", g->display, sha));
		goto out;
	}
	/* files as the tree has them, links as links (a hook reached through a
	 * link out of the directory is refused where hooks are opened); the
	 * repository's index is never touched */
	co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
	co.target_directory = dir;
	if (git_checkout_tree(g->repo, (const git_object *)tree, &co) < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: writing the tree of %s to %s", g->display, sha, dir));
		goto out;
	}
	rc = 0;
out:
	git_tree_free(tree);
	git_commit_free(commit);
	return rc;
}

/* ---- working tree ----------------------------------------------------- */

int git_src_worktree(struct git_src *g, struct source **out, char head_sha[41], int *dirty,
		     struct plumb_err *err)
{
	git_status_options so;
	git_status_list *list = NULL;
	git_oid oid;
	char *dir = NULL;
	const char *wd;
	size_t n;
	int rc = -1, grc;

	*out = NULL;
	*dirty = 0;
	head_sha[0] = '\0';
	if (g->url) {
		put(err, PLUMB_ERROR,
		    scrub(g, xasprintf("%s: working-tree mode needs a local checkout, not a URL",
				       g->display)));
		return -1;
	}
	wd = git_repository_workdir(g->repo);
	if (!wd || git_repository_is_bare(g->repo)) {
		put(err, PLUMB_ERROR,
		    scrub(g, xasprintf("%s: a bare repository has no working tree", g->display)));
		return -1;
	}
	grc = git_reference_name_to_id(&oid, g->repo, "HEAD");
	if (grc == GIT_ENOTFOUND || grc == GIT_EUNBORNBRANCH) {
		return put(err, PLUMB_ENOTFOUND,
			   scrub(g, xasprintf("%s: HEAD has no commit yet", g->display)));
	}
	if (grc < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: HEAD", g->display));
		return -1;
	}
	git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
	so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	so.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED;
	if (git_status_list_new(&list, g->repo, &so) < 0) {
		put(err, PLUMB_ERROR, git_fail(g, "%s: status", g->display));
		goto out;
	}
	*dirty = git_status_list_entrycount(list) > 0;
	dir = xstrdup(wd);
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	if (source_dir_new(out, dir) < 0) {
		put(err, PLUMB_ERROR, xasprintf("%s: cannot read the working tree", dir));
		goto out;
	}
	git_oid_tostr(head_sha, 41, &oid);
	rc = 0;
out:
	git_status_list_free(list);
	free(dir);
	return rc;
}
