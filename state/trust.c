#include "state/trust.h"

#include <limits.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "state/source.h"
#include "state/util.h"

void trust_init(struct trust *t, int trusted)
{
	t->trusted = trusted;
	t->turned_off = 0;
	t->getenv_fn = NULL;
	t->getenv_ctx = NULL;
	t->run_fn = NULL;
	t->run_ctx = NULL;
}

void trust_note(struct trust *t, enum trust_off what)
{
	t->turned_off |= (unsigned)what;
}

const char *trust_getenv(const struct trust *t, const char *name)
{
	if (t->getenv_fn)
		return t->getenv_fn(name, t->getenv_ctx);
	return getenv(name);
}

int trust_run(struct trust *t, enum trust_off what, const char *cmd, const char *cwd, size_t max,
	      char **out, int *status)
{
	int rc;

	*out = NULL;
	*status = -1;
	if (!t->trusted || !t->run_fn) {
		trust_note(t, what);
		return PLUMB_EUNAVAILABLE;
	}
	rc = t->run_fn(cmd, cwd, max, out, status, t->run_ctx);
	if (rc >= 0)
		return 0;
	/* a runner's failure never reads as "not run" */
	return rc < PLUMB_ECODE_MIN || rc == PLUMB_EUNAVAILABLE ? PLUMB_ERROR : rc;
}

const char *trust_off_describe(enum trust_off what)
{
	switch (what) {
	case TRUST_OFF_SECRET_CMD:
		return "$(...) command substitution in .kamal/secrets";
	case TRUST_OFF_ERB_CMD:
		return "ERB command output (%x(...), backticks) in deploy.yml";
	case TRUST_OFF_ERB_ENV:
		return "ERB ENV lookups in deploy.yml (shown as " PLUMB_UNAVAILABLE ")";
	case TRUST_OFF_SECRET_ENV:
		return "$VAR expansion from the environment in .kamal/secrets";
	case TRUST_OFF_PROXY_COMMAND:
		return "ssh.proxy_command";
	case TRUST_OFF_SSH_CONFIG:
		return "ssh.config (it can execute Match exec)";
	case TRUST_OFF_KEY_DATA:
		return "ssh.key_data";
	case TRUST_OFF_AGENT_FORWARD:
		return "SSH agent forwarding";
	case TRUST_OFF_REGISTRY_CREDS:
		return "registry credentials from secrets";
	case TRUST_OFF_OUTSIDE_PATH:
		return "paths outside the repository (secrets_path, hooks_path, accessory files)";
	case TRUST_OFF_HOOKS:
		return "hooks";
	case TRUST_OFF_ACCEPT_HOST_KEYS:
		return "x-plumb.ssh.accept_new_host_keys (set PLUMB_SSH_ACCEPT_NEW=1 to accept new host keys)";
	case TRUST_OFF_SSH_KEYS:
		return "ssh.keys outside the repository (PLUMB_SSH_KEY and the SSH agent are used)";
	case TRUST_OFF_INSECURE_CREDS:
		return "registry credentials over plain HTTP (x-plumb registry.insecure): no credentials sent";
	}
	return "unknown";
}

int trust_path_is_inside(const char *p)
{
	return p && p[0] != '~' && source_path_is_inside(p);
}

char *trust_resolve_inside(const char *root, const char *rel)
{
	char *full = NULL, *canon_root = NULL, *canon = NULL, *ret = NULL;

	if (!trust_path_is_inside(rel))
		return NULL;
	canon_root = realpath(root ? root : ".", NULL);
	if (!canon_root)
		goto out;
	full = xasprintf("%s/%s", canon_root, rel);
	canon = realpath(full, NULL);
	if (!canon) {
		/* not there yet: its directory must be inside, and the name not a
		 * dangling link (writing through it would create its target) */
		struct stat st;
		char *slash = strrchr(full, '/');
		char *dir = xstrndup(full, (size_t)(slash - full));
		char *cdir = realpath(dir, NULL);

		if (cdir && lstat(full, &st) != 0 && source_path_below(cdir, canon_root))
			canon = xasprintf("%s%s", cdir, slash);
		free(dir);
		free(cdir);
		if (!canon)
			goto out;
	} else if (!source_path_below(canon, canon_root)) {
		goto out;
	}
	ret = canon;
	canon = NULL;
out:
	free(full);
	free(canon_root);
	free(canon);
	return ret;
}
