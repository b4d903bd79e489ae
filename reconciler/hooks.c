/*
 * Kamal's hooks, run on this machine (reconciler/hooks.h).
 */
#include "reconciler/hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "providers/run.h"
#include "reconciler/lock.h"
#include "state/escape.h"
#include "state/source.h"
#include "state/util.h"

#define HOOK_MAX_FILE (64u << 20) /* a hook bigger than this is not a hook */
#define TAIL_ERR 600              /* bytes of the hook's stderr / stdout in a message */
#define TAIL_OUT 300

int rec_hook_gets_secrets(const char *name)
{
	return strcmp(name, "pre-connect") == 0 || strcmp(name, "pre-deploy") == 0 ||
	       strcmp(name, "post-deploy") == 0;
}

static void add(struct strvec *v, const char *key, const char *value)
{
	if (value)
		strvec_push_take(v, xasprintf("%s=%s", key, value));
}

/* A field of env, else its default from env->ds / env->config. */
#define PICK(f, ds_f, cfg_f)                                                          \
	(env->f ? env->f : env->ds && env->ds->ds_f ? env->ds->ds_f : env->config ? env->config->cfg_f : NULL)

char **rec_hook_env_build(const char *name, const struct rec_hook_env *env)
{
	struct strvec v = { 0 };
	char when[32], *performer = NULL, *sv = NULL, *hosts = NULL;
	const char *service = PICK(service, service, service);
	const char *dest = PICK(destination, destination, destination);
	const char *version = PICK(version, version, xplumb.version);
	const struct secrets *secrets = env->secrets ? env->secrets : env->config ? env->config->secrets : NULL;
	char **out;

	if (!env->recorded_at) {
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	if (!env->performer)
		performer = rec_performer();
	if (!env->hosts && env->ds) {
		struct sbuf sb;

		sbuf_init(&sb, 0);
		for (size_t i = 0; i < env->ds->nhosts; i++) {
			if (i)
				sbuf_addc(&sb, ',');
			sbuf_adds(&sb, env->ds->hosts[i].host);
		}
		hosts = sbuf_detach(&sb);
		sbuf_release(&sb);
	}
	if (service && version)
		sv = strchr(version, '_') ? xasprintf("%s@%s", service, version)
					  : xasprintf("%s@%.7s", service, version);
	else if (service)
		sv = xstrdup(service);
	/* Kamal's Tags order, then run_hook's details */
	add(&v, "KAMAL_RECORDED_AT", env->recorded_at ? env->recorded_at : when);
	add(&v, "KAMAL_PERFORMER", env->performer ? env->performer : performer);
	add(&v, "KAMAL_DESTINATION", dest && *dest ? dest : NULL);
	add(&v, "KAMAL_VERSION", version);
	add(&v, "KAMAL_SERVICE_VERSION", sv);
	add(&v, "KAMAL_SERVICE", service);
	add(&v, "KAMAL_HOSTS", env->hosts ? env->hosts : hosts);
	add(&v, "KAMAL_ROLES", env->roles);
	add(&v, "KAMAL_LOCK", env->lock ? "true" : "false");
	add(&v, "KAMAL_COMMAND", env->command);
	add(&v, "KAMAL_SUBCOMMAND", env->subcommand);
	add(&v, "KAMAL_RUNTIME", env->runtime);
	if (secrets && rec_hook_gets_secrets(name)) {
		for (size_t i = 0; i < secrets_count(secrets); i++) {
			const char *k = secrets_name_at(secrets, i), *val;
			int available = 0;

			val = secrets_get(secrets, k, &available);
			/* an unavailable secret has no value to give: left unset */
			if (val && available)
				add(&v, k, val);
		}
	}
	free(hosts);
	free(sv);
	free(performer);
	out = xcalloc(v.n + 1, sizeof(*out));
	for (size_t i = 0; i < v.n; i++)
		out[i] = v.v[i];
	free(v.v);
	return out;
}

void rec_hook_env_free(char **envv)
{
	if (!envv)
		return;
	for (char **p = envv; *p; p++)
		util_free_secret(*p);
	free(envv);
}

/* A hook's name is one file name. */
static int valid_name(const char *name)
{
	return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Replaces every occurrence of a secret's value (4 bytes or more) in s. */
static void redact(struct sbuf *s, const struct secrets *secrets, const char *name)
{
	if (!secrets || !rec_hook_gets_secrets(name))
		return;
	for (size_t i = 0; i < secrets_count(secrets); i++) {
		int available = 0;
		const char *val = secrets_get(secrets, secrets_name_at(secrets, i), &available);
		size_t vl = val && available ? strlen(val) : 0;
		struct sbuf r;
		const char *p, *hit;

		if (vl < 4 || !memmem(s->buf, s->len, val, vl))
			continue;
		sbuf_init(&r, 0);
		for (p = s->buf; (hit = memmem(p, s->len - (size_t)(p - s->buf), val, vl)); p = hit + vl) {
			sbuf_add(&r, p, (size_t)(hit - p));
			sbuf_adds(&r, "[REDACTED]");
		}
		sbuf_add(&r, p, s->len - (size_t)(p - s->buf));
		sbuf_reset(s);
		sbuf_add(s, r.buf, r.len);
		sbuf_release(&r);
	}
}

/* The last max bytes of b, escaped, after a label, into m. */
static void tail(struct sbuf *m, const char *label, const struct sbuf *b, size_t max)
{
	size_t from = b->len > max ? b->len - max : 0;

	if (!b->len)
		return;
	sbuf_addf(m, "\n%s%s:\n", label, from ? " (end)" : "");
	esc_lines(m, b->buf + from, b->len - from);
}

int rec_hook_run(const char *root, const char *name, const struct rec_hook_env *env, int trusted,
		 struct plumb_err *err)
{
	const struct rec_hook_env none = { 0 };
	const struct secrets *secrets;
	const char *hooks;
	struct prov_child c = { 0 };
	struct plumb_err e = { 0 };
	struct stat fst, pst;
	struct sbuf msg;
	char *rel = NULL, *full = NULL, *resolved = NULL;
	char **envv = NULL;
	const char *argv[2];
	int fd = -1, rc, ran = 0;

	if (!env)
		env = &none;
	hooks = env->hooks_path ? env->hooks_path : env->config ? env->config->hooks_path : NULL;
	if (!hooks || !*hooks)
		hooks = ".kamal/hooks";
	secrets = env->secrets ? env->secrets : env->config ? env->config->secrets : NULL;
	sbuf_init(&msg, 0);
	if (!root || !valid_name(name)) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "hook: invalid hook name or no repository directory");
		goto out;
	}
	while (hooks[0] == '.' && hooks[1] == '/')
		hooks += 2;
	rel = xasprintf("%s/%s", hooks, name);
	rc = source_open_inside(root, rel, HOOK_MAX_FILE, &fd, &e);
	if (rc == PLUMB_ENOTFOUND) {
		rc = 0; /* no such hook: nothing to run */
		goto out;
	}
	if (rc < 0) {
		rc = plumb_err_set(err, rc, "hook '%s': %s", name, plumb_err_msg(&e));
		goto out;
	}
	if (!trusted) {
		rc = plumb_err_set(err, PLUMB_EUNTRUSTED,
				   "hook '%s' (%s) is not run: the source is not trusted (hooks are code "
				   "from the repository); trust the source or pass --skip-hooks", name, rel);
		goto out;
	}
	/* exec needs a path: the resolved one, checked to be the file opened */
	full = xasprintf("%s/%s", root, rel);
	resolved = realpath(full, NULL);
	if (!resolved || fstat(fd, &fst) != 0 || stat(resolved, &pst) != 0 || fst.st_dev != pst.st_dev ||
	    fst.st_ino != pst.st_ino) {
		rc = plumb_err_set(err, PLUMB_ERROR, "hook '%s': %s changed while it was opened", name, rel);
		goto out;
	}
	if (access(resolved, X_OK) != 0) {
		/* Kamal would try to run it and fail: so does plumb, before any change */
		rc = plumb_err_set(err, PLUMB_ERROR, "hook '%s': %s is not executable (chmod +x it, or "
				   "remove it)", name, rel);
		goto out;
	}
	close(fd);
	fd = -1;
	envv = rec_hook_env_build(name, env);
	argv[0] = resolved, argv[1] = NULL;
	c.argv = argv;
	c.env_add = (const char *const *)envv;
	c.cwd = root;
	c.timeout_ms = env->timeout_ms > 0 ? env->timeout_ms : REC_HOOK_DEFAULT_TIMEOUT_MS;
	if (env->timeout_ms <= 0 && env->config && env->config->xplumb.hooks_timeout > 0)
		c.timeout_ms = env->config->xplumb.hooks_timeout * 1000;
	c.out_max = REC_HOOK_OUTPUT_MAX;
	c.err_max = REC_HOOK_OUTPUT_MAX;
	c.secret = secrets && rec_hook_gets_secrets(name);
	/* its own process group: the terminal's Ctrl-C reaches it through plumb */
	c.stop = rec_signals_child_stop;
	c.grace_ms = c.timeout_ms < REC_HOOK_GRACE_MS ? c.timeout_ms : REC_HOOK_GRACE_MS;
	ran = 1;
	rec_signals_child(1);
	rc = prov_child_run(&c, &e);
	rec_signals_child(-1);
	redact(&c.out, secrets, name);
	redact(&c.err, secrets, name);
	if (c.stopped) {
		rc = PLUMB_ERROR;
		sbuf_addf(&msg, "hook '%s' was interrupted", name);
		if (c.stopped == SIGKILL)
			sbuf_addf(&msg, " (killed: plumb is stopping now)");
		else if (c.killed)
			sbuf_addf(&msg, " (%s sent to it; killed after %d ms more)", rec_sig_name(c.stopped),
				  c.grace_ms);
		else
			sbuf_addf(&msg, " (%s sent to it; exit %d)", rec_sig_name(c.stopped), c.status);
	} else if (rc == PLUMB_ETIMEOUT) {
		sbuf_addf(&msg, "hook '%s' did not finish within %d s (SIGTERM, then %s)", name,
			  c.timeout_ms / 1000, c.killed ? "killed" : "it ended");
	} else if (rc == PLUMB_ETRUNC) {
		rc = PLUMB_ERROR;
		sbuf_addf(&msg, "hook '%s' printed more than %u bytes (killed)", name, REC_HOOK_OUTPUT_MAX);
	} else if (rc < 0) {
		sbuf_addf(&msg, "hook '%s' could not be started: %s", name, plumb_err_msg(&e));
	} else if (c.status != 0) {
		rc = PLUMB_ERROR;
		if (c.signal)
			sbuf_addf(&msg, "hook '%s' failed (killed by signal %d)", name, c.signal);
		else if (c.status == 127 && !c.out.len && !c.err.len)
			sbuf_addf(&msg, "hook '%s' failed (exit 127: it could not be executed; check its #! line)",
				  name);
		else
			sbuf_addf(&msg, "hook '%s' failed (exit %d)", name, c.status);
	}
	if (rc < 0) {
		tail(&msg, "stderr", &c.err, TAIL_ERR);
		tail(&msg, "stdout", &c.out, TAIL_OUT);
		plumb_err_set(err, rc, "%s", msg.buf);
	}
out:
	if (ran)
		prov_child_release(&c);
	if (fd >= 0)
		close(fd);
	rec_hook_env_free(envv);
	sbuf_release(&msg);
	free(resolved);
	free(full);
	free(rel);
	return rc;
}
