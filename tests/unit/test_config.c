/*
 * The deploy.yml model: key families, merging, destinations, scalar
 * conversion, trust switches, error messages, and Kamal's fixtures as a
 * conformance corpus.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "providers/registry.h"
#include "reconciler/load.h"
#include "state/config.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

struct loadres {
	struct config *c;
	char *errors;
	int rc;
};

static const char *fake_env(const char *name, void *ctx)
{
	(void)ctx;
	if (strcmp(name, "DEPLOY_HOST") == 0)
		return "10.9.9.9";
	if (strcmp(name, "CANARY_ENV") == 0)
		return "env-canary-8b1f";
	return NULL;
}

/* Loads deploy.yml text (+ optional overlay and secrets) from a fresh repo dir. */
static struct loadres load3(const char *yml, const char *dest, const char *dest_yml,
			    const char *secrets, int trusted)
{
	struct loadres r = { 0 };
	struct source *src = NULL;
	struct diags d = { 0 };
	struct config_opts o = { 0 };
	char *dir = tu_tmpdir("test-config");

	if (!dir)
		abort();
	tu_write_in(dir, "config/deploy.yml", yml);
	if (dest && dest_yml) {
		char *rel = xasprintf("config/deploy.%s.yml", dest);
		tu_write_in(dir, rel, dest_yml);
		free(rel);
	}
	if (secrets)
		tu_write_in(dir, ".kamal/secrets", secrets);
	source_dir_new(&src, dir);
	o.destination = dest;
	o.trusted = trusted;
	o.getenv_fn = fake_env;
	r.rc = config_load(&r.c, src, &o, &d);
	r.errors = diags_to_string(&d);
	diags_release(&d);
	source_free(src);
	tu_rm_rf(dir);
	free(dir);
	return r;
}

static struct loadres load(const char *yml)
{
	return load3(yml, NULL, NULL, NULL, 0);
}

static void res_free(struct loadres *r)
{
	config_free(r->c);
	free(r->errors);
}

/* Stops the test (freeing the result) when the load failed, showing why. */
#define REQ_OK(r)                                                               \
	do {                                                                    \
		t_checks++;                                                     \
		if ((r).rc != 0) {                                              \
			T_FAIL_AT("load failed:\n%s", (r).errors);              \
			res_free(&(r));                                         \
			return;                                                 \
		}                                                               \
	} while (0)

#define BASE "service: app\nimage: dhh/app\nregistry:\n  username: user\n  password: pw\n"

T_TEST(simple_servers_make_web_role)
{
	struct loadres r = load(BASE "servers:\n  - 1.1.1.1\n  - 1.1.1.2\n");
	REQ_OK(r);
	T_INTEQ(r.c->nroles, 1);
	T_STREQ(r.c->roles[0].name, "web");
	T_INTEQ(r.c->roles[0].nhosts, 2);
	T_STREQ(r.c->roles[0].hosts[1].addr, "1.1.1.2");
	T_CHECK(r.c->roles[0].running_proxy);
	T_INTEQ(r.c->retain_containers, 5);
	T_STREQ(r.c->ssh.user, "root");
	T_INTEQ(r.c->ssh.port, 22);
	res_free(&r);
}

T_TEST(roles_hash_hosts_tags_cmd_options)
{
	struct loadres r = load(BASE "servers:\n"
				     "  web:\n    - 1.1.1.1: site1\n    - 1.1.1.2: [site1, experimental]\n"
				     "  workers:\n    hosts:\n      - 1.1.1.3\n    cmd: bin/jobs\n"
				     "    options:\n      memory: 2g\n      cpus: 4\n    stop_timeout: 30\n"
				     "    labels:\n      my-label: workers\n");
	const struct cfg_role *w;
	REQ_OK(r);
	T_INTEQ(r.c->nroles, 2);
	T_STREQ(r.c->roles[0].name, "web");
	T_INTEQ(r.c->roles[0].hosts[1].tags.n, 2);
	T_STREQ(r.c->roles[0].hosts[1].tags.v[1], "experimental");
	w = config_role(r.c, "workers");
	T_REQUIRE(w != NULL);
	T_STREQ(w->cmd, "bin/jobs");
	T_STREQ(kvs_get(&w->options, "memory"), "2g");
	T_STREQ(kvs_get(&w->options, "cpus"), "4");
	T_INTEQ(w->stop_timeout, 30);
	T_CHECK(!w->running_proxy);
	res_free(&r);
}

T_TEST(env_merge_root_role_tags)
{
	struct loadres r = load3(BASE "servers:\n"
				      "  web:\n    - 1.1.1.1: site1\n    - 1.1.1.2\n"
				      "  job:\n    hosts: [1.1.1.3]\n    env:\n      clear:\n        ROLE: job\n"
				      "      secret:\n        - DB_PASSWORD:JOB_DB_PASSWORD\n"
				      "env:\n  clear:\n    ROLE: none\n    A: root\n  secret:\n    - RAILS_MASTER_KEY\n"
				      "  tags:\n    site1:\n      A: site1\n",
				 NULL, NULL, "RAILS_MASTER_KEY=abc\nJOB_DB_PASSWORD=xyz\n", 0);
	struct cfg_env e1 = { 0 }, e2 = { 0 }, ej = { 0 };
	REQ_OK(r);
	config_role_env(r.c, config_role(r.c, "web"), "1.1.1.1", &e1);
	config_role_env(r.c, config_role(r.c, "web"), "1.1.1.2", &e2);
	config_role_env(r.c, config_role(r.c, "job"), "1.1.1.3", &ej);
	T_STREQ(kvs_get(&e1.clear, "A"), "site1");
	T_STREQ(kvs_get(&e2.clear, "A"), "root");
	T_STREQ(kvs_get(&ej.clear, "ROLE"), "job");
	T_STREQ(kvs_get(&ej.secret, "DB_PASSWORD"), "JOB_DB_PASSWORD");
	T_STREQ(kvs_get(&ej.secret, "RAILS_MASTER_KEY"), "RAILS_MASTER_KEY");
	cfg_env_release(&e1);
	cfg_env_release(&e2);
	cfg_env_release(&ej);
	res_free(&r);
}

T_TEST(scalars_convert_like_ruby)
{
	struct loadres r = load(BASE "servers:\n  - 1.1.1.1\n"
				     "env:\n  A: yes\n  B: 1.10\n  C: 0x1F\n  D: \"yes\"\n  E: 1_000\n  G: Off\n");
	REQ_OK(r);
	T_STREQ(kvs_get(&r.c->env.clear, "A"), "true");
	T_STREQ(kvs_get(&r.c->env.clear, "B"), "1.1");
	T_STREQ(kvs_get(&r.c->env.clear, "C"), "31");
	T_STREQ(kvs_get(&r.c->env.clear, "D"), "yes");
	T_STREQ(kvs_get(&r.c->env.clear, "E"), "1000");
	T_STREQ(kvs_get(&r.c->env.clear, "G"), "false");
	res_free(&r);
}

T_TEST(unknown_key_names_file_line_and_suggests)
{
	struct loadres r = load(BASE "servers:\n  web:\n    hostz:\n      - 1.1.1.1\n");
	T_CHECK(r.rc < 0);
	T_CHECK(r.c == NULL);
	T_CONTAINS(r.errors, "config/deploy.yml:8:5: error: unknown key 'hostz' in servers.web (did you mean 'hosts'?)");
	res_free(&r);
}

T_TEST(all_errors_at_once)
{
	struct loadres r = load("service: app\nimage: dhh/app\nregistry:\n  username: u\n  password: p\n"
				"servers:\n  - 1.1.1.1\nretain_containers: \"3\"\nsevrice: x\n"
				"boot:\n  wait: soon\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "config/deploy.yml:8:20: error: retain_containers: should be an integer (got a string)");
	T_CONTAINS(r.errors, "config/deploy.yml:9:1: error: unknown key 'sevrice' at the top level (did you mean 'service'?)");
	T_CONTAINS(r.errors, "config/deploy.yml:11:9: error: boot.wait: should be an integer (got a string)");
	res_free(&r);
}

T_TEST(required_keys)
{
	struct loadres r = load("image: x\nregistry:\n  server: localhost:5555\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "missing required key 'service'");
	T_CONTAINS(r.errors, "missing required key 'servers'");
	res_free(&r);
	r = load("service: a\nimage: x\nservers: [1.1.1.1]\nregistry:\n  server: r.example.com\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "registry.username: is required");
	res_free(&r);
}

T_TEST(local_registry_needs_no_credentials)
{
	struct loadres r = load("service: a\nimage: x\nservers: [1.1.1.1]\nregistry:\n  server: localhost:5555\n");
	REQ_OK(r);
	T_CHECK(r.c->registry.local);
	T_INTEQ(r.c->registry.local_port, 5555);
	res_free(&r);
}

T_TEST(ssl_with_two_hosts_refused)
{
	struct loadres r = load(BASE "servers:\n  - 1.1.1.1\n  - 1.1.1.2\nproxy:\n  ssl: true\n  host: a.example.com\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "SSL is only supported on a single server");
	res_free(&r);
}

T_TEST(proxy_primary_on_others_off_and_merged)
{
	struct loadres r = load(BASE "servers:\n  web: [1.1.1.1]\n  api:\n    hosts: [1.1.1.2]\n"
				     "    proxy:\n      response_timeout: 15\n  job: [1.1.1.3]\n"
				     "proxy:\n  host: a.example.com\n  response_timeout: 10\n  app_port: 3000\n");
	REQ_OK(r);
	T_CHECK(config_role(r.c, "web")->running_proxy);
	T_CHECK(config_role(r.c, "api")->running_proxy);
	T_CHECK(!config_role(r.c, "job")->running_proxy);
	T_INTEQ(config_role(r.c, "api")->proxy.response_timeout, 15);
	T_INTEQ(config_role(r.c, "api")->proxy.app_port, 3000);
	T_INTEQ(config_role(r.c, "web")->proxy.response_timeout, 10);
	res_free(&r);
}

T_TEST(destination_overlay_merges_hashes_replaces_lists)
{
	struct loadres r = load3(BASE "servers:\n  web: [1.1.1.1]\nenv:\n  clear:\n    A: base\n    B: base\n",
				 "production",
				 "servers:\n  web: [2.2.2.2, 2.2.2.3]\nenv:\n  clear:\n    B: prod\n", NULL, 0);
	REQ_OK(r);
	T_STREQ(r.c->destination, "production");
	T_INTEQ(config_role(r.c, "web")->nhosts, 2);
	T_STREQ(config_role(r.c, "web")->hosts[0].addr, "2.2.2.2");
	T_STREQ(kvs_get(&r.c->env.clear, "A"), "base");
	T_STREQ(kvs_get(&r.c->env.clear, "B"), "prod");
	res_free(&r);
}

T_TEST(require_destination_enforced)
{
	struct loadres r = load(BASE "servers: [1.1.1.1]\nrequire_destination: true\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "requires a destination");
	res_free(&r);
}

T_TEST(missing_destination_file)
{
	struct loadres r = load3(BASE "servers: [1.1.1.1]\n", "staging", NULL, NULL, 0);
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "config/deploy.staging.yml: error: destination 'staging': configuration file not found");
	res_free(&r);
}

T_TEST(accessories_hosts_and_defaults)
{
	struct loadres r = load(BASE "servers:\n  web: [1.1.1.1, 1.1.1.2]\n  db: [1.1.1.9]\n"
				     "accessories:\n  db:\n    image: postgres:17\n    host: 1.1.1.9\n"
				     "    port: 5432\n    directories:\n      - data:/var/lib/postgresql/data\n"
				     "  redis:\n    image: redis\n    roles: [web]\n");
	const struct cfg_accessory *a;
	REQ_OK(r);
	T_INTEQ(r.c->naccessories, 2);
	a = &r.c->accessories[0];
	T_STREQ(a->service, "app-db");
	T_STREQ(a->ports.v[0], "5432:5432");
	T_STREQ(a->network, "kamal");
	T_STREQ(a->directories[0].local, "data");
	T_STREQ(a->directories[0].remote, "/var/lib/postgresql/data");
	T_INTEQ(r.c->accessories[1].hosts.n, 2);
	res_free(&r);
}

T_TEST(accessory_needs_exactly_one_host_spec)
{
	struct loadres r = load(BASE "servers: [1.1.1.1]\naccessories:\n  db:\n    image: postgres:17\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "accessories.db: specify one of `host`, `hosts`, `role`, `roles`, `tag` or `tags`");
	res_free(&r);
}

T_TEST(extensions_and_merge_keys)
{
	struct loadres r = load(BASE "x-web: &web\n  proxy: {}\n  cmd: bin/web\n"
				     "servers:\n  web:\n    <<: *web\n    hosts: [1.1.1.1]\n"
				     "x-plumb:\n  version: abc\n");
	REQ_OK(r);
	T_STREQ(config_role(r.c, "web")->cmd, "bin/web");
	T_STREQ(kvs_get(&r.c->x_plumb, "version"), "abc");
	res_free(&r);
}

T_TEST(erb_env_untrusted_is_placeholder_and_noted)
{
	struct loadres r = load3(BASE "servers:\n  - <%= ENV[\"DEPLOY_HOST\"] %>\nenv:\n  X: <%= ENV['CANARY_ENV'] %>\n",
				 NULL, NULL, NULL, 0);
	REQ_OK(r);
	T_STREQ(kvs_get(&r.c->env.clear, "X"), PLUMB_UNAVAILABLE);
	T_CHECK(r.c->trust.turned_off & TRUST_OFF_ERB_ENV);
	T_NOT_CONTAINS(r.errors, "env-canary-8b1f");
	res_free(&r);
	r = load3(BASE "servers:\n  - <%= ENV[\"DEPLOY_HOST\"] %>\n", NULL, NULL, NULL, 1);
	REQ_OK(r);
	T_STREQ(r.c->roles[0].hosts[0].addr, "10.9.9.9");
	res_free(&r);
}

T_TEST(erb_env_values_are_sensitive_and_placeholders_flagged)
{
	struct loadres r = load3(BASE "servers:\n  - <%= ENV[\"DEPLOY_HOST\"] %>\n"
				      "env:\n  clear:\n    DB: <%= ENV['CANARY_ENV'] %>\n    PLAIN: x\n",
				 NULL, NULL, NULL, 1);
	struct cfg_env e = { 0 };
	REQ_OK(r);
	config_role_env(r.c, &r.c->roles[0], NULL, &e);
	T_STREQ(kvs_get(&e.clear, "DB"), "env-canary-8b1f");
	T_CHECK(strvec_contains(&e.sensitive, "DB"));
	T_CHECK(!strvec_contains(&e.sensitive, "PLAIN"));
	T_INTEQ(e.unavailable.n, 0);
	T_INTEQ(r.c->unavailable_keys.n, 0);
	cfg_env_release(&e);
	res_free(&r);
	/* untrusted: the env value is a flagged placeholder; the host key is listed as not computed */
	r = load3(BASE "servers:\n  - <%= ENV[\"DEPLOY_HOST\"] %>\n"
		       "env:\n  clear:\n    DB: <%= ENV['CANARY_ENV'] %>\n", NULL, NULL, NULL, 0);
	REQ_OK(r);
	config_role_env(r.c, &r.c->roles[0], NULL, &e);
	T_CHECK(strvec_contains(&e.unavailable, "DB"));
	T_INTEQ(r.c->unavailable_keys.n, 1);
	T_STREQ(r.c->unavailable_keys.v[0], "servers[0]");
	cfg_env_release(&e);
	res_free(&r);
}

T_TEST(erb_in_builder_ignored_other_forms_refused)
{
	struct loadres r = load(BASE "servers: [1.1.1.1]\nbuilder:\n  arch: <%= Kamal::Utils.docker_arch %>\n");
	T_CHECK(r.rc == 0);
	res_free(&r);
	r = load(BASE "servers: [1.1.1.1]\nenv:\n  A: <%= 1 + 1 %>\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "config/deploy.yml:8:6");
	T_CONTAINS(r.errors, "<%= 1 + 1 %>");
	T_CONTAINS(r.errors, "env.A");
	res_free(&r);
}

T_TEST(builder_arch_first_value_erb_ignored)
{
	struct loadres r = load(BASE "servers: [1.1.1.1]\nbuilder:\n  arch: arm64\n");
	REQ_OK(r);
	T_STREQ(r.c->builder_arch, "arm64");
	res_free(&r);
	r = load(BASE "servers: [1.1.1.1]\nbuilder:\n  arch: [arm64, amd64]\n  remote: ssh://b\n");
	REQ_OK(r);
	T_STREQ(r.c->builder_arch, "arm64");
	res_free(&r);
	r = load(BASE "servers: [1.1.1.1]\nbuilder:\n  arch: <%= ENV['ARCH'] %>\n");
	REQ_OK(r);
	T_STREQ(r.c->builder_arch, NULL);
	res_free(&r);
	r = load(BASE "servers: [1.1.1.1]\n");
	REQ_OK(r);
	T_STREQ(r.c->builder_arch, NULL);
	res_free(&r);
	/* a destination overlay's builder wins */
	r = load3(BASE "servers: [1.1.1.1]\nbuilder:\n  arch: amd64\n", "pi", "builder:\n  arch: arm64\n", NULL, 0);
	REQ_OK(r);
	T_STREQ(r.c->builder_arch, "arm64");
	res_free(&r);
}

T_TEST(registry_insecure_exact_and_never_with_credentials_untrusted)
{
	struct loadres r = load(BASE "servers: [1.1.1.1]\nregistry:\n  server: reg.lan:5000\n  username: u\n"
				     "  password: pw\nbuilder:\n  arch: [arm64]\nx-plumb:\n  registry:\n"
				     "    insecure: [other.lan, reg.lan:5000]\n");
	struct registry_options ro = { 0 };
	char *platform = NULL;

	REQ_OK(r);
	T_CHECK(rec_registry_is_insecure(r.c, "reg.lan:5000"));
	T_CHECK(!rec_registry_is_insecure(r.c, "reg.lan:5001"));
	T_CHECK(rec_registry_is_insecure(r.c, "other.lan:443")); /* a bare host: every port */
	T_CHECK(!rec_registry_is_insecure(r.c, "other.lan.evil"));
	/* untrusted: plain HTTP to the app registry, so no credentials at all */
	rec_registry_setup(r.c, 0, &ro, &platform);
	T_STREQ(ro.platform, "linux/arm64");
	T_STREQ(ro.docker_config, "");
	T_CHECK(r.c->trust.turned_off & TRUST_OFF_INSECURE_CREDS);
	free(platform);
	/* trusted: the invocation vouches for the repository */
	memset(&ro, 0, sizeof(ro));
	r.c->trust.turned_off = 0;
	rec_registry_setup(r.c, 1, &ro, &platform);
	T_STREQ(ro.docker_config, NULL);
	T_INTEQ(r.c->trust.turned_off & TRUST_OFF_INSECURE_CREDS, 0);
	free(platform);
	res_free(&r);
	/* a registry over HTTPS keeps the docker config's credentials; default platform */
	r = load(BASE "servers: [1.1.1.1]\nregistry:\n  server: ghcr.io\n  username: u\n  password: pw\n"
		      "x-plumb:\n  registry:\n    insecure: [reg.lan:5000]\n");
	REQ_OK(r);
	memset(&ro, 0, sizeof(ro));
	setenv("PLUMB_REGISTRY_REALM_HOSTS", "auth.example.test", 1);
	rec_registry_setup(r.c, 0, &ro, &platform);
	T_STREQ(ro.docker_config, NULL);
	T_STREQ(ro.platform, "linux/amd64");
	/* untrusted: the token realm is restricted; the invocation may allow hosts */
	T_INTEQ(ro.restrict_token_realm, 1);
	T_STREQ(ro.allowed_realm_hosts, "auth.example.test");
	free(platform);
	memset(&ro, 0, sizeof(ro));
	rec_registry_setup(r.c, 1, &ro, &platform);
	T_INTEQ(ro.restrict_token_realm, 0);
	unsetenv("PLUMB_REGISTRY_REALM_HOSTS");
	free(platform);
	res_free(&r);
}

T_TEST(untrusted_switches_noted)
{
	struct loadres r = load(BASE "servers: [1.1.1.1]\nssh:\n  proxy_command: ssh -W %h:%p bastion\n"
				     "  config: [~/.ssh/config]\n  key_data: [SSH_KEY]\nsecrets_path: /etc/plumb/secrets\n"
				     "registry:\n  username: u\n  password: [REG_PASSWORD]\n");
	unsigned want = TRUST_OFF_PROXY_COMMAND | TRUST_OFF_SSH_CONFIG | TRUST_OFF_KEY_DATA |
			TRUST_OFF_OUTSIDE_PATH | TRUST_OFF_REGISTRY_CREDS;
	REQ_OK(r);
	T_INTEQ(r.c->trust.turned_off & want, want);
	res_free(&r);
}

T_TEST(secret_values_never_in_errors)
{
	struct loadres r = load3(BASE "servers:\n  - 1.1.1.1\nenv:\n  secret: [A]\nbogus: 1\n", NULL, NULL,
				 "A=sekrit-canary-77\n", 1);
	T_CHECK(r.rc < 0);
	T_NOT_CONTAINS(r.errors, "sekrit-canary-77");
	res_free(&r);
}

T_TEST(syntax_error_position)
{
	struct loadres r = load("service: a\n  image: b\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "config/deploy.yml:2:");
	res_free(&r);
}

T_TEST(wrong_types_say_what_was_expected)
{
	struct loadres r = load(BASE "servers: [1.1.1.1]\nvolumes: /data:/data\nproxy:\n  ssl: sometimes\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "volumes: should be a list (got a string)");
	T_CONTAINS(r.errors, "proxy.ssl: should be a boolean or a hash (got a string)");
	res_free(&r);
}

T_TEST(reserved_labels_and_minimum_version)
{
	struct loadres r = load(BASE "servers:\n  web:\n    hosts: [1.1.1.1]\n    labels:\n      role: x\n"
				     "labels:\n  service: y\n  team: a\nminimum_version: 9.0.0\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "servers.web.labels.role: invalid label: destination, role, and service are reserved labels");
	T_CONTAINS(r.errors, "labels.service: invalid label");
	res_free(&r);
	r = load(BASE "servers: [1.1.1.1]\nminimum_version: 9.0.0\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "minimum_version: this configuration needs Kamal 9.0.0");
	res_free(&r);
	r = load(BASE "servers: [1.1.1.1]\nminimum_version: 2.3.1\n");
	T_CHECK(r.rc == 0);
	res_free(&r);
}

T_TEST(x_plumb_settings_validated)
{
	struct loadres r = load(BASE "servers: [1.1.1.1]\nx-plumb:\n  version: abc123\n  prune: true\n"
				     "  ssh:\n    known_hosts: config/known_hosts\n  registry:\n    insecure: [reg.lan:5000]\n");
	REQ_OK(r);
	T_STREQ(kvs_get(&r.c->x_plumb, "ssh.known_hosts"), "config/known_hosts");
	T_STREQ(kvs_get(&r.c->x_plumb, "registry.insecure[0]"), "reg.lan:5000");
	res_free(&r);
	r = load(BASE "servers: [1.1.1.1]\nx-plumb:\n  prunne: true\n  ssh:\n    known_host: x\nx-other:\n  anything: 1\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "unknown key 'prunne' in x-plumb (did you mean 'prune'?)");
	T_CONTAINS(r.errors, "unknown key 'known_host' in x-plumb.ssh (did you mean 'known_hosts'?)");
	T_NOT_CONTAINS(r.errors, "x-other");
	res_free(&r);
}

T_TEST(x_plumb_typed)
{
	struct loadres r = load(BASE "servers: [1.1.1.1]\naccessories:\n  db:\n    image: postgres:17\n    host: 1.1.1.1\n"
				     "  cache:\n    image: redis:7\n    host: 1.1.1.1\n"
				     "x-plumb:\n  version: abc123\n  prune: true\n"
				     "  ssh:\n    known_hosts: config/known_hosts\n    accept_new_host_keys: true\n"
				     "  registry:\n    insecure: [reg.lan:5000, other.lan]\n"
				     "  accessories:\n    db:\n      pin_digest: true\n    cache:\n      pin_digest: false\n"
				     "      snapshot: false\n      watch_replace: true\n  renames: false\n");
	const struct xplumb *x;

	REQ_OK(r);
	x = &r.c->xplumb;
	T_STREQ(x->version, "abc123");
	T_INTEQ(x->prune, 1);
	T_STREQ(x->ssh_known_hosts, "config/known_hosts");
	T_INTEQ(x->ssh_accept_new_host_keys, 1);
	T_REQUIRE(x->registry_insecure.n == 2);
	T_STREQ(x->registry_insecure.v[1], "other.lan");
	T_REQUIRE(config_xplumb_accessory(r.c, "db") != NULL);
	T_INTEQ(config_xplumb_accessory(r.c, "db")->pin_digest, 1);
	T_INTEQ(config_xplumb_accessory(r.c, "cache")->pin_digest, 0);
	T_INTEQ(config_xplumb_accessory(r.c, "db")->snapshot, 1);
	T_INTEQ(config_xplumb_accessory(r.c, "cache")->snapshot, 0);
	T_INTEQ(config_xplumb_accessory(r.c, "db")->watch_replace, 0);
	T_INTEQ(config_xplumb_accessory(r.c, "cache")->watch_replace, 1);
	T_INTEQ(x->renames, 0);
	T_CHECK(config_xplumb_accessory(r.c, "web") == NULL);
	T_CHECK(r.c->trust.turned_off & TRUST_OFF_ACCEPT_HOST_KEYS); /* untrusted load */
	res_free(&r);

	/* defaults */
	r = load(BASE "servers: [1.1.1.1]\n");
	REQ_OK(r);
	T_CHECK(!r.c->xplumb.version && !r.c->xplumb.prune && !r.c->xplumb.ssh_known_hosts &&
		!r.c->xplumb.ssh_accept_new_host_keys && r.c->xplumb.registry_insecure.n == 0 &&
		r.c->xplumb.renames == 1);
	res_free(&r);

	/* bad types and values: file:line errors */
	r = load(BASE "servers: [1.1.1.1]\nx-plumb:\n  prune: maybe\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "config/deploy.yml:8:10: error: x-plumb.prune: should be a boolean");
	res_free(&r);
	r = load(BASE "servers: [1.1.1.1]\nx-plumb:\n  registry:\n    insecure: [\"http://reg.lan\"]\n"
		      "  accessories:\n    dbb:\n      pin_digest: true\n");
	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, "config/deploy.yml:9:");
	T_CONTAINS(r.errors, "x-plumb.registry.insecure[0]: 'http://reg.lan' is not host or host:port");
	T_CONTAINS(r.errors, "config/deploy.yml:11:");
	T_CONTAINS(r.errors, "x-plumb.accessories.dbb: no accessory 'dbb'");
	res_free(&r);
}

/* ---- conformance over Kamal's fixtures ---- */

struct expect {
	const char *file;
	const char *dest; /* overlay, or NULL */
	int loads;
	const char *error; /* substring the refusal must contain */
};

/*
 * Written from Kamal's documented behaviour (schema docs, BEHAVIOUR.md), not
 * from plumb's output: a file without servers cannot deploy; a file that
 * requires a destination refuses to load without one; two proxy run
 * configurations on one host conflict (kamal-proxy runs once per host).
 */
static const struct expect fixtures[] = {
	{ "deploy.elsewhere.yml", NULL, 1, NULL },
	{ "deploy.erb.yml", NULL, 1, NULL },
	{ "deploy.yml", NULL, 1, NULL },
	{ "deploy2.yml", NULL, 1, NULL },
	{ "deploy_for_dest.yml", NULL, 0, "missing required key 'servers'" },
	{ "deploy_for_dest.yml", "world", 1, NULL },
	{ "deploy_for_dest.yml", "mars", 1, NULL },
	{ "deploy_for_required_dest.yml", NULL, 0, "requires a destination" },
	{ "deploy_for_required_dest.yml", "world", 1, NULL },
	{ "deploy_primary_web_role_override.yml", NULL, 1, NULL },
	{ "deploy_simple.yml", NULL, 1, NULL },
	{ "deploy_with_accessories.yml", NULL, 1, NULL },
	{ "deploy_with_accessories_on_independent_server.yml", NULL, 1, NULL },
	{ "deploy_with_accessories_with_different_registries.yml", NULL, 1, NULL },
	{ "deploy_with_aliases.yml", NULL, 1, NULL },
	{ "deploy_with_assets.yml", NULL, 1, NULL },
	{ "deploy_with_boot_strategy.yml", NULL, 1, NULL },
	{ "deploy_with_cloud_builder.yml", NULL, 1, NULL },
	{ "deploy_with_env_tags.yml", NULL, 1, NULL },
	{ "deploy_with_error_pages.yml", NULL, 1, NULL },
	{ "deploy_with_extensions.yml", NULL, 1, NULL },
	{ "deploy_with_hybrid_builder.yml", NULL, 1, NULL },
	{ "deploy_with_local_registry.yml", NULL, 1, NULL },
	{ "deploy_with_local_registry_and_accessories.yml", NULL, 1, NULL },
	{ "deploy_with_local_registry_and_hybrid_builder.yml", NULL, 1, NULL },
	{ "deploy_with_local_registry_and_remote_builder.yml", NULL, 1, NULL },
	{ "deploy_with_local_registry_and_remote_builder_with_port.yml", NULL, 1, NULL },
	{ "deploy_with_multiple_proxy_roles.yml", NULL, 1, NULL },
	{ "deploy_with_only_workers.yml", NULL, 1, NULL },
	{ "deploy_with_parallel_roles.yml", NULL, 1, NULL },
	{ "deploy_with_proxy.yml", NULL, 1, NULL },
	{ "deploy_with_proxy_roles.yml", NULL, 1, NULL },
	{ "deploy_with_proxy_run_config.yml", NULL, 1, NULL },
	{ "deploy_with_proxy_run_config_conflicts.yml", NULL, 0, "conflicting proxy run configurations on host 1.1.1.2" },
	{ "deploy_with_remote_builder.yml", NULL, 1, NULL },
	{ "deploy_with_remote_builder_and_custom_ports.yml", NULL, 1, NULL },
	{ "deploy_with_roles.yml", NULL, 1, NULL },
	{ "deploy_with_roles_workers_primary.yml", NULL, 1, NULL },
	{ "deploy_with_secrets.yml", NULL, 1, NULL },
	{ "deploy_with_single_accessory.yml", NULL, 1, NULL },
	{ "deploy_with_two_roles_one_host.yml", NULL, 1, NULL },
	{ "deploy_with_uncommon_hostnames.yml", NULL, 1, NULL },
	{ "deploy_without_clone.yml", NULL, 1, NULL },
	{ "deploy_without_parallel_roles.yml", NULL, 1, NULL },
};

/* Kamal's fixtures, in the repository (tests/fixtures/kamal/README.md says where from). */
static const char *fixtures_dir(void)
{
	const char *d = getenv("KAMAL_FIXTURES");
	return d ? d : "tests/fixtures/kamal";
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the names in dir that are fixtures (not our README/licence) to v, sorted; -1 if unreadable. */
static int fixture_names(const char *dir, struct strvec *v)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0 ||
		    strcmp(e->d_name, "MIT-LICENSE") == 0)
			continue;
		strvec_push(v, e->d_name);
	}
	closedir(d);
	if (v->n)
		qsort(v->v, v->n, sizeof(v->v[0]), cmp_str);
	return 0;
}

/* Checks dir b holds the same files as dir a, byte for byte, one level of subdirectories deep. */
static void same_fixture_files(const char *a, const char *b, int depth)
{
	struct strvec na = { 0 }, nb = { 0 };

	if (fixture_names(a, &na) < 0 || fixture_names(b, &nb) < 0) {
		T_FAIL_AT("cannot list %s or %s", a, b);
		goto out;
	}
	T_INTEQ(nb.n, na.n);
	for (size_t i = 0; i < na.n && i < nb.n; i++)
		T_STREQ(nb.v[i], na.v[i]);
	for (size_t i = 0; i < na.n; i++) {
		char *pa = xasprintf("%s/%s", a, na.v[i]), *pb = xasprintf("%s/%s", b, na.v[i]);
		char *ta = NULL, *tb = NULL;
		size_t la = 0, lb = 0;
		struct stat st;

		if (depth == 0 && stat(pa, &st) == 0 && S_ISDIR(st.st_mode)) {
			same_fixture_files(pa, pb, 1);
		} else if (util_read_file(pa, SOURCE_MAX_FILE, &ta, &la) < 0 ||
			   util_read_file(pb, SOURCE_MAX_FILE, &tb, &lb) < 0) {
			T_FAIL_AT("cannot read %s or %s", pa, pb);
		} else {
			t_checks++;
			if (la != lb || memcmp(ta, tb, la) != 0)
				T_FAIL_AT("%s differs from %s", pb, pa);
		}
		free(ta);
		free(tb);
		free(pa);
		free(pb);
	}
out:
	strvec_release(&na);
	strvec_release(&nb);
}

/* The in-tree copy is Kamal's: equal to the reference copy beside the checkout, when there is one. */
T_TEST(kamal_fixtures_match_shared_copy)
{
	const char *shared = "../shared/kamal/fixtures";
	struct stat st;

	if (stat(shared, &st) != 0)
		T_SKIP("%s is absent (it exists only beside the checkout in CI)", shared);
	same_fixture_files(shared, "tests/fixtures/kamal", 0);
}

/* Every standalone fixture in the directory is in the table (overlays are deploy_for_*dest.<name>.yml). */
T_TEST(fixture_table_covers_directory)
{
	DIR *dir = opendir(fixtures_dir());
	struct dirent *e;
	size_t seen = 0;

	T_REQUIRE(dir != NULL);
	while ((e = readdir(dir))) {
		const char *n = e->d_name;
		size_t len = strlen(n);
		int found = 0;

		if (len < 5 || strcmp(n + len - 4, ".yml") != 0)
			continue;
		if (strncmp(n, "deploy_for_", 11) == 0 && strchr(n, '.') != strrchr(n, '.'))
			continue; /* destination overlay */
		seen++;
		for (size_t i = 0; i < ARRAY_SIZE(fixtures); i++)
			found |= strcmp(fixtures[i].file, n) == 0;
		if (!found)
			T_FAIL_AT("fixture %s has no expectation", n);
	}
	closedir(dir);
	T_CHECK(seen >= 40);
}

T_TEST(kamal_fixtures_conformance)
{
	char abs[4096];
	const char *fx = fixtures_dir();

	T_REQUIRE(realpath(fx, abs) != NULL);
	for (size_t i = 0; i < ARRAY_SIZE(fixtures); i++) {
		const struct expect *x = &fixtures[i];
		char *dir = tu_tmpdir("fixture");
		char *p;
		struct source *src = NULL;
		struct diags d = { 0 };
		struct config_opts o = { 0 };
		struct config *c = NULL;
		char *errs;
		int rc;

		T_REQUIRE(dir != NULL);
		/* the repository: config/ is a copy of the fixtures dir (a link out of
		 * the repository is refused), accessory files under test/fixtures/files */
		tu_write_in(dir, "test/.keep", "");
		p = xasprintf("cp -R '%s' '%s/config' && cp -R '%s' '%s/test/fixtures'", abs, dir, abs, dir);
		T_CHECK(system(p) == 0);
		free(p);
		tu_write_in(dir, ".kamal/secrets",
			   "PASSWORD=secret-placeholder\nMYSQL_ROOT_PASSWORD=secret-placeholder\n"
			   "KAMAL_REGISTRY_PASSWORD=secret-placeholder\nDB_PASSWORD=secret-placeholder\n");
		source_dir_new(&src, dir);
		p = xasprintf("config/%s", x->file);
		o.file = p;
		o.destination = x->dest;
		rc = config_load(&c, src, &o, &d);
		errs = diags_to_string(&d);
		if (x->loads && rc != 0)
			T_FAIL_AT("%s%s%s should load, got:\n%s", x->file, x->dest ? " -d " : "",
				  x->dest ? x->dest : "", errs);
		if (!x->loads) {
			char *where = xasprintf("config/%s:", x->file);
			if (rc == 0)
				T_FAIL_AT("%s should be refused", x->file);
			else if (!strstr(errs, x->error) || !strstr(errs, where))
				T_FAIL_AT("%s: refusal should name the file and say \"%s\"; got:\n%s", x->file,
					  x->error, errs);
			free(where);
		}
		t_checks++;
		free(errs);
		free(p);
		diags_release(&d);
		config_free(c);
		source_free(src);
		tu_rm_rf(dir);
		free(dir);
	}
}

T_TEST(optimus_example_loads_both_ways)
{
	struct source *src = NULL;
	struct diags d = { 0 };
	struct config_opts o = { 0 };
	struct config *c = NULL;
	char *errs;

	source_dir_new(&src, "deploy-examples/optimus");
	T_CHECK(config_load(&c, src, &o, &d) == 0);
	errs = diags_to_string(&d);
	T_NOT_CONTAINS(errs, "error:");
	free(errs);
	if (c) {
		T_STREQ(c->service, "optimus");
		T_CHECK(c->registry.local);
		T_INTEQ(c->naccessories, 1);
		T_STREQ(c->accessories[0].ports.v[0], "127.0.0.1:5432:5432");
		T_CHECK(config_role(c, "web")->proxy.ssl == 1);
	}
	config_free(c);
	c = NULL;
	diags_release(&d);
	o.destination = "production";
	T_CHECK(config_load(&c, src, &o, &d) == 0);
	errs = diags_to_string(&d);
	T_NOT_CONTAINS(errs, "error:");
	free(errs);
	if (c) {
		T_INTEQ(config_role(c, "web")->nhosts, 2);
		T_CHECK(config_role(c, "web")->proxy.ssl != 1);
		T_STREQ(config_role(c, "job")->cmd, "bin/jobs");
		T_STREQ(c->accessories[0].hosts.v[0], "10.0.1.31");
	}
	config_free(c);
	diags_release(&d);
	source_free(src);
}

T_TEST(registry_password_unavailable_is_no_value)
{
	static const char yml[] = "service: app\nimage: dhh/app\nservers: [1.1.1.1]\nregistry:\n"
				  "  server: ghcr.io\n  username: u\n  password:\n    - KAMAL_REGISTRY_PASSWORD\n";
	struct cfg_secret user = { "x", 0 }, pw = { "x", 0 };
	char *why = NULL;
	struct loadres r = load3(yml, NULL, NULL, "KAMAL_REGISTRY_PASSWORD=$(exit 3)\n", 1);

	REQ_OK(r);
	T_INTEQ(config_registry_credentials(r.c, &user, &pw, &why), -1);
	T_CHECK(pw.value == NULL && pw.unavailable);
	T_CHECK(user.value == NULL); /* nothing half-usable either */
	T_CONTAINS(why, "registry.password: secret KAMAL_REGISTRY_PASSWORD could not be resolved");
	free(why);
	res_free(&r);

	/* not defined at all: unavailable too, not "no credentials" */
	r = load3(yml, NULL, NULL, "OTHER=1\n", 1);
	REQ_OK(r);
	T_INTEQ(config_registry_credentials(r.c, &user, &pw, &why), -1);
	T_CONTAINS(why, "is not defined");
	free(why);
	res_free(&r);

	/* resolved: both values */
	r = load3(yml, NULL, NULL, "KAMAL_REGISTRY_PASSWORD=s3cret-pw\n", 1);
	REQ_OK(r);
	T_INTEQ(config_registry_credentials(r.c, &user, &pw, &why), 1);
	T_STREQ(user.value, "u");
	T_STREQ(pw.value, "s3cret-pw");
	T_CHECK(!pw.unavailable && why == NULL);
	res_free(&r);

	/* a literal password from ERB that could not be evaluated (untrusted ENV) */
	r = load3("service: app\nimage: dhh/app\nservers: [1.1.1.1]\nregistry:\n  server: ghcr.io\n"
		  "  username: u\n  password: <%= ENV['CANARY_ENV'] %>\n", NULL, NULL, NULL, 0);
	REQ_OK(r);
	T_INTEQ(config_registry_credentials(r.c, &user, &pw, &why), -1);
	T_CHECK(pw.value == NULL && pw.unavailable);
	T_CONTAINS(why, "registry.password");
	free(why);
	res_free(&r);
}

/* Kamal's order survives the hashed kvs: insertion order, replace in place. */
T_TEST(kvs_keeps_order_and_is_fast)
{
	struct kvs m = { 0 }, copy = { 0 };
	char k[32], v[32];

	for (int i = 0; i < 250000; i++) {
		snprintf(k, sizeof(k), "K%x", i);
		snprintf(v, sizeof(v), "%d", i);
		kvs_set(&m, k, v);
	}
	kvs_set(&m, "K10", "replaced");
	T_INTEQ(m.n, 250000);
	T_STREQ(m.keys[0], "K0");
	T_STREQ(m.keys[249999], "K3d08f");
	T_STREQ(kvs_get(&m, "K10"), "replaced");
	T_STREQ(m.keys[16], "K10");
	T_STREQ(kvs_get(&m, "K3d08f"), "249999");
	T_CHECK(kvs_get(&m, "K3d090") == NULL);
	kvs_set(&copy, "first", "1");
	kvs_copy(&copy, &m);
	T_INTEQ(copy.n, 250001);
	T_STREQ(copy.keys[0], "first");
	T_STREQ(kvs_get(&copy, "K3d08f"), "249999");
	kvs_release(&m);
	T_CHECK(kvs_get(&m, "K0") == NULL);
	kvs_release(&copy);
}

/* Appends n "  <indent>Kxxx: 1" lines. */
static void add_keys(struct sbuf *sb, const char *indent, const char *prefix, int n)
{
	for (int i = 0; i < n; i++)
		sbuf_addf(sb, "%s%s%x: 1\n", indent, prefix, i);
}

/* 250k env keys (one env of 4000 aliased into 63 roles) and 120k labels
 * (4000 aliased into 30 roles) load in linear time. */
T_TEST(many_aliased_env_keys_and_labels_load)
{
	struct sbuf sb;
	struct loadres r;
	struct kvs labels = { 0 };

	sbuf_init(&sb, 0);
	sbuf_adds(&sb, BASE "x-env: &env\n");
	add_keys(&sb, "  ", "E", 4000);
	sbuf_adds(&sb, "x-labels: &labels\n");
	add_keys(&sb, "  ", "l", 4000);
	sbuf_adds(&sb, "primary_role: r0\nservers:\n");
	for (int i = 0; i < 63; i++)
		sbuf_addf(&sb, "  r%d:\n    hosts: [10.0.0.%d]\n    env: *env\n%s", i, i,
			  i < 30 ? "    labels: *labels\n" : "");
	r = load(sb.buf);
	sbuf_release(&sb);
	REQ_OK(r);
	T_INTEQ(r.c->nroles, 63);
	T_INTEQ(r.c->roles[62].env.clear.n, 4000);
	T_STREQ(r.c->roles[62].env.clear.keys[3999], "Ef9f");
	T_INTEQ(r.c->roles[0].labels.n, 4000);
	config_role_labels(r.c, &r.c->roles[0], &labels);
	T_INTEQ(labels.n, 4003);
	T_STREQ(labels.keys[0], "service");
	T_STREQ(labels.keys[3], "l0");
	kvs_release(&labels);
	res_free(&r);
}

/* Loads sb's text, expects a failure whose messages contain want, and empties sb. */
static void load_fails_with(struct sbuf *sb, const char *want)
{
	struct loadres r = load(sb->buf);

	T_CHECK(r.rc < 0);
	T_CONTAINS(r.errors, want);
	res_free(&r);
	sbuf_reset(sb);
	sbuf_adds(sb, BASE);
}

T_TEST(count_bounds_name_file_line_and_key)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	sbuf_adds(&sb, BASE);
	/* 250k keys in one hash: refused at the first key over the bound */
	sbuf_adds(&sb, "servers: [1.1.1.1]\nenv:\n  clear:\n");
	add_keys(&sb, "    ", "K", 250000);
	load_fails_with(&sb, "config/deploy.yml:10009:5: error: more than 10000 keys in one hash (at key 'K2710')");
	/* 120k labels merged from three aliased hashes */
	sbuf_adds(&sb, "servers: [1.1.1.1]\n");
	for (int a = 0; a < 3; a++) {
		char prefix[16];

		snprintf(prefix, sizeof(prefix), "l%d_", a);
		sbuf_addf(&sb, "x-l%d: &l%d\n", a, a);
		add_keys(&sb, "  ", prefix, 40000);
	}
	sbuf_adds(&sb, "labels:\n  <<: [*l0, *l1, *l2]\n");
	load_fails_with(&sb, "more than 10000 keys in one hash (at key 'l0_2710')");
	/* env keys per container, labels */
	sbuf_adds(&sb, "servers: [1.1.1.1]\nenv:\n  clear:\n");
	add_keys(&sb, "    ", "K", 4001);
	load_fails_with(&sb, "config/deploy.yml:4009:5: error: more than 4000 env keys (at 'Kfa0')");
	sbuf_adds(&sb, "servers: [1.1.1.1]\nlabels:\n");
	add_keys(&sb, "  ", "l", 4001);
	load_fails_with(&sb, "config/deploy.yml:4008:3: error: more than 4000 labels (at 'lfa0')");
	/* hosts: one list, and all roles together */
	sbuf_adds(&sb, "servers:\n  web:\n");
	for (int i = 0; i < 4097; i++)
		sbuf_addf(&sb, "    - 10.%d.%d.1\n", i / 256, i % 256);
	load_fails_with(&sb, "config/deploy.yml:4104:7: error: more than 4096 hosts (at '10.16.0.1')");
	sbuf_adds(&sb, "servers:\n  web:\n");
	for (int i = 0; i < 4097; i++)
		sbuf_addf(&sb, "%s    - 10.%d.%d.1\n", i == 2048 ? "  job:\n" : "", i / 256, i % 256);
	load_fails_with(&sb, "config/deploy.yml:7:3: error: servers: more than 4096 hosts in all roles (4097)");
	/* roles naming an accessory's hosts */
	sbuf_adds(&sb, "servers: [1.1.1.1]\naccessories:\n  db:\n    image: pg\n    roles:\n");
	for (int i = 0; i < 101; i++)
		sbuf_adds(&sb, "      - web\n");
	load_fails_with(&sb, "config/deploy.yml:111:9: error: more than 100 roles (at 'web')");
	sbuf_release(&sb);
}

T_MAIN(T_CASE(simple_servers_make_web_role), T_CASE(roles_hash_hosts_tags_cmd_options),
       T_CASE(env_merge_root_role_tags), T_CASE(scalars_convert_like_ruby),
       T_CASE(unknown_key_names_file_line_and_suggests), T_CASE(all_errors_at_once),
       T_CASE(required_keys), T_CASE(local_registry_needs_no_credentials),
       T_CASE(ssl_with_two_hosts_refused), T_CASE(proxy_primary_on_others_off_and_merged),
       T_CASE(destination_overlay_merges_hashes_replaces_lists), T_CASE(require_destination_enforced),
       T_CASE(missing_destination_file), T_CASE(accessories_hosts_and_defaults),
       T_CASE(accessory_needs_exactly_one_host_spec), T_CASE(extensions_and_merge_keys),
       T_CASE(erb_env_untrusted_is_placeholder_and_noted), T_CASE(erb_in_builder_ignored_other_forms_refused),
       T_CASE(erb_env_values_are_sensitive_and_placeholders_flagged),
       T_CASE(untrusted_switches_noted), T_CASE(builder_arch_first_value_erb_ignored),
       T_CASE(registry_insecure_exact_and_never_with_credentials_untrusted), T_CASE(secret_values_never_in_errors), T_CASE(syntax_error_position),
       T_CASE(wrong_types_say_what_was_expected), T_CASE(reserved_labels_and_minimum_version),
       T_CASE(x_plumb_settings_validated), T_CASE(fixture_table_covers_directory),
       T_CASE(kamal_fixtures_conformance), T_CASE(kamal_fixtures_match_shared_copy), T_CASE(optimus_example_loads_both_ways),
       T_CASE(registry_password_unavailable_is_no_value), T_CASE(x_plumb_typed),
       T_CASE(kvs_keeps_order_and_is_fast), T_CASE(many_aliased_env_keys_and_labels_load),
       T_CASE(count_bounds_name_file_line_and_key))
