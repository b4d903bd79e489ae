/*
 * libFuzzer target: the config loader in untrusted mode (what `plumb plan`
 * runs on a pull request). Any input must give either a config or errors —
 * never a crash, a leak, a hang, or a command run.
 */
#include <stddef.h>
#include <stdint.h>

#include "state/config.h"
#include "tests/fuzz/mem_source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct source *src = mem_source_new((const char *)data, size);
	struct config_opts o = { 0 };
	struct config *c = NULL;
	struct diags d = { 0 };

	o.trusted = 0;
	if (config_load(&c, src, &o, &d) == 0) {
		struct strvec hosts = { 0 };
		/* walk the model the way commands do */
		config_all_hosts(c, &hosts);
		for (size_t i = 0; i < c->nroles; i++) {
			struct cfg_env env = { 0 };
			config_role_env(c, &c->roles[i], c->roles[i].nhosts ? c->roles[i].hosts[0].addr : NULL, &env);
			cfg_env_release(&env);
		}
		strvec_release(&hosts);
	}
	free(diags_to_string(&d));
	diags_release(&d);
	config_free(c);
	source_free(src);
	return 0;
}
