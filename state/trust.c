#include "state/trust.h"

#include <stdlib.h>

void trust_init(struct trust *t, int trusted)
{
	t->trusted = trusted;
	t->turned_off = 0;
	t->getenv_fn = NULL;
	t->getenv_ctx = NULL;
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
	}
	return "unknown";
}
