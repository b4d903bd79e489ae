/*
 * The docker commands the executor sends (docker_cmd.h), built as argv.
 *
 * Kamal builds shell text: `--env KEY="<String#dump>"`, `--label k="v"`,
 * `--option "v"`, and the host's shell turns that into argv. Here each word
 * is what the host's shell would have handed docker after parsing Kamal's
 * text (desired_env_held: \" \\ \$ \` undone, every other escape kept), so
 * the container docker creates is the one Kamal would have created, while
 * prov_cmd quotes every word and no host shell sees syntax from a value.
 */
#include "providers/docker_cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/hash.h"
#include "state/trust.h"

#define PROXY_NAME "kamal-proxy"
#define PROXY_APPS_DIR ".kamal/proxy/apps-config"
#define PROXY_APPS_CONTAINER_DIR "/home/kamal-proxy/.apps-config"

/* ---- words as the host's shell would have made them from Kamal's text ---- */

/* Ruby's String#present?: not empty and not only whitespace. */
static int present(const char *v)
{
	for (; v && *v; v++)
		if (!isspace((unsigned char)*v))
			return 1;
	return 0;
}

/* "${…}" somewhere in v: Kamal leaves it for the host's shell to expand
 * (Kamal::Utils::DOLLAR_SIGN_WITHOUT_SHELL_EXPANSION_REGEX). */
static int shell_expanded(const char *v)
{
	const char *p = v;

	while ((p = strstr(p, "${")) != NULL) {
		if (strchr(p + 2, '}'))
			return 1;
		p += 2;
	}
	return 0;
}

/* A value Kamal passed through escape_shell_value, as docker receives it.
 * PLUMB_EINVAL (named by what) when the host's shell would expand it. */
static int held_word(struct prov_cmd *c, const char *prefix, const char *val, const char *what,
		     struct plumb_err *err)
{
	char *held, *w;

	if (shell_expanded(val))
		return plumb_err_set(err, PLUMB_EINVAL,
				     "%s: the value holds ${...}, which Kamal leaves to the host's shell to expand; "
				     "plumb passes values literally and cannot reproduce that (write the value itself)",
				     what);
	held = desired_env_held(val);
	w = xasprintf("%s%s", prefix, held);
	prov_cmd_arg(c, w);
	util_free_secret(w);
	util_free_secret(held);
	return 0;
}

/* Kamal's argumentize(flag, {key => value}): `flag key="v"`, or `flag key`
 * for a blank value (docker then reads the key alone). */
static int argumentize(struct prov_cmd *c, const char *flag, const char *key, const char *val,
		       const char *what, struct plumb_err *err)
{
	char *prefix;
	int rc;

	prov_cmd_arg(c, flag);
	if (!present(val)) {
		prov_cmd_arg(c, key);
		return 0;
	}
	prefix = xasprintf("%s=", key);
	rc = held_word(c, prefix, val, what, err);
	free(prefix);
	return rc;
}

/* An options key as config.c flattens it: "add-host[1]" → "add-host". */
static char *option_key(const char *k)
{
	return xstrndup(k, strcspn(k, "["));
}

/* Kamal's optionize(options): `--key "v"`, or `--key` for true. */
static int optionize(struct prov_cmd *c, const struct kvs *opts, const char *ctx, struct plumb_err *err)
{
	for (size_t i = 0; i < opts->n; i++) {
		char *k = option_key(opts->keys[i]), *flag = xasprintf("--%s", k), *what;
		int rc = 0;

		prov_cmd_arg(c, flag);
		if (strcmp(opts->vals[i], "true") != 0) {
			what = xasprintf("%s.options.%s", ctx, k);
			rc = held_word(c, "", opts->vals[i], what, err);
			free(what);
		}
		free(flag);
		free(k);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- env ---- */

static const struct cfg_accessory *find_accessory(const struct config *cf, const struct des_container *dc)
{
	for (size_t i = 0; cf && i < cf->naccessories; i++)
		if (strcmp(cf->accessories[i].name, dc->role) == 0)
			return &cf->accessories[i];
	return NULL;
}

/* A sensitive clear value (ERB ENV or a command): the desired state keeps
 * only its hash, so it is read again from the config. *val is owned by the
 * config (or by env, which the caller releases). */
static int sensitive_value(const struct des_container *dc, const struct des_env *e,
			   const struct dcmd_ctx *x, struct cfg_env *env, const char **val,
			   struct plumb_err *err)
{
	const struct cfg_env *src = NULL;

	*val = NULL;
	if (dc->kind == DES_APP) {
		const struct cfg_role *r = x->config ? config_role(x->config, dc->role) : NULL;
		if (r) {
			config_role_env(x->config, r, x->host, env);
			src = env;
		}
	} else {
		const struct cfg_accessory *a = find_accessory(x->config, dc);
		if (a)
			src = &a->env;
	}
	if (!src || !(*val = kvs_get(&src->clear, e->key)))
		return plumb_err_set(err, PLUMB_EINVAL, "%s: env %s: no value in the config", dc->name, e->key);
	if (strvec_contains(&src->unavailable, e->key) || strcmp(*val, PLUMB_UNAVAILABLE) == 0)
		return plumb_err_set(err, PLUMB_EUNTRUSTED,
				     "%s: env %s comes from ERB ENV or a command, which this untrusted run did not compute",
				     dc->name, e->key);
	return 0;
}

/* The --env words of dc, in its order; secrets stay in the env file. */
static int env_args(struct prov_cmd *c, const struct des_container *dc, const struct dcmd_ctx *x,
		    struct plumb_err *err)
{
	struct cfg_env env = { 0 };
	int rc = 0;

	for (size_t i = 0; i < dc->nenv && rc == 0; i++) {
		const struct des_env *e = &dc->env[i];
		const char *val = NULL;
		char *what;

		switch (e->kind) {
		case DES_ENV_SECRET:
		case DES_ENV_UNAVAILABLE:
			continue; /* the env file's business */
		case DES_ENV_NOT_COMPUTED:
			rc = plumb_err_set(err, PLUMB_EUNTRUSTED,
					   "%s: env %s comes from ERB ENV or a command, which this untrusted run did not compute",
					   dc->name, e->key);
			continue;
		case DES_ENV_EXPANDED:
			if (e->value && !shell_expanded(e->value)) {
				val = e->value; /* "${" without "}": Kamal escapes the $ */
				break;
			}
			rc = plumb_err_set(err, PLUMB_EINVAL,
					   "%s: env %s holds ${...}, which Kamal leaves to the host's shell to expand; "
					   "plumb passes values literally and cannot reproduce that (write the value itself)",
					   dc->name, e->key);
			continue;
		case DES_ENV_SENSITIVE:
			cfg_env_release(&env);
			rc = sensitive_value(dc, e, x, &env, &val, err);
			break;
		case DES_ENV_CLEAR:
			val = e->value;
			break;
		}
		if (rc < 0)
			break;
		what = xasprintf("%s: env %s", dc->name, e->key);
		rc = argumentize(c, "--env", e->key, val ? val : "", what, err);
		free(what);
	}
	cfg_env_release(&env);
	return rc;
}

/* ---- volumes, logging, labels ---- */

static void volume_arg(struct prov_cmd *c, const struct des_mount *m, const struct dcmd_ctx *x)
{
	char *w;

	prov_cmd_arg(c, "--volume");
	if (m->kind == DES_MOUNT_VOLUME && !*m->source) {
		prov_cmd_arg(c, m->destination); /* an anonymous volume */
		return;
	}
	w = xasprintf("%s%s%s:%s%s%s", m->kind == DES_MOUNT_HOME ? x->home : "",
		      m->kind == DES_MOUNT_HOME ? "/" : "", m->source, m->destination,
		      *m->mode ? ":" : "", m->mode);
	prov_cmd_arg(c, w);
	free(w);
}

static int logging_args(struct prov_cmd *c, const struct des_container *dc, struct plumb_err *err)
{
	char *what;
	int rc = 0;

	if (dc->log_driver) {
		prov_cmd_arg(c, "--log-driver");
		what = xasprintf("%s: logging.driver", dc->name);
		rc = held_word(c, "", dc->log_driver, what, err);
		free(what);
	}
	for (size_t i = 0; i < dc->log_opts.n && rc == 0; i++) {
		what = xasprintf("%s: logging.options.%s", dc->name, dc->log_opts.keys[i]);
		rc = argumentize(c, "--log-opt", dc->log_opts.keys[i], dc->log_opts.vals[i], what, err);
		free(what);
	}
	return rc;
}

static int label_args(struct prov_cmd *c, const struct des_container *dc, struct plumb_err *err)
{
	for (size_t i = 0; i < dc->labels.n; i++) {
		char *what = xasprintf("%s: label %s", dc->name, dc->labels.keys[i]);
		int rc = argumentize(c, "--label", dc->labels.keys[i], dc->labels.vals[i], what, err);
		free(what);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Every run ends alike: labels, options (ctx names them in a message), image, cmd. */
static int run_tail(struct prov_cmd *c, const struct des_container *dc, const char *ctx,
		    struct plumb_err *err)
{
	int rc;

	if ((rc = label_args(c, dc, err)) < 0 || (rc = optionize(c, &dc->options, ctx, err)) < 0)
		return rc;
	prov_cmd_arg(c, dc->image_ref);
	for (size_t i = 0; i < dc->cmd_argv.n; i++)
		prov_cmd_arg(c, dc->cmd_argv.v[i]);
	return 0;
}

/* ---- docker run ---- */

/* --hostname: Kamal's "#{host[0...51].chomp(".")}-#{SecureRandom.hex(6)}". */
static char *app_hostname(const struct dcmd_ctx *x)
{
	char salt[33];
	size_t n = strnlen(x->host, 51);
	const char *sfx = x->hostname_suffix;

	if (n && x->host[n - 1] == '.')
		n--;
	if (!sfx) {
		hash_salt_new(salt);
		salt[12] = '\0';
		sfx = salt;
	}
	return xasprintf("%.*s-%s", (int)n, x->host, sfx);
}

static int run_app(struct prov_cmd *c, const struct des_container *dc, const char *name,
		   const struct dcmd_ctx *x, struct plumb_err *err)
{
	const char *version = x->version ? x->version : x->ds->version;
	char *cname = xasprintf("%s-%s", dc->prefix, version), *w;
	int rc;

	prov_cmd_args(c, "docker", "run", "--detach", "--restart", dc->restart, "--name", name ? name : cname,
		      "--network", "kamal", "--hostname", NULL);
	w = app_hostname(x);
	prov_cmd_arg(c, w);
	free(w);
	/* container name, version and host: Kamal double-quotes them without
	 * escaping (names and versions carry no shell syntax) */
	w = xasprintf("KAMAL_CONTAINER_NAME=%s", cname);
	prov_cmd_args(c, "--env", w, NULL);
	free(w);
	free(cname);
	w = xasprintf("KAMAL_VERSION=%s", version);
	prov_cmd_args(c, "--env", w, NULL);
	free(w);
	/* KAMAL_HOST, KAMAL_DESTINATION, then the clear env: the desired order */
	if ((rc = env_args(c, dc, x, err)) < 0)
		return rc;
	prov_cmd_args(c, "--env-file", dc->env_file, NULL);
	if ((rc = logging_args(c, dc, err)) < 0)
		return rc;
	/* config volumes, then the asset volume (the versioned one) */
	for (size_t i = 0; i < dc->nmounts; i++)
		if (!dc->mounts[i].versioned)
			volume_arg(c, &dc->mounts[i], x);
	for (size_t i = 0; i < dc->nmounts; i++)
		if (dc->mounts[i].versioned)
			volume_arg(c, &dc->mounts[i], x);
	w = xasprintf("servers.%s", dc->role);
	rc = run_tail(c, dc, w, err);
	free(w);
	return rc;
}

/*
 * Kamal's accessory run: --name --detach --restart --network, the root
 * logging, --publish, KAMAL_HOST and the clear env, --env-file, volumes
 * (volumes:, then files:, then directories:), labels, options, image, cmd.
 */
static int run_accessory(struct prov_cmd *c, const struct des_container *dc, const char *name,
			 const struct dcmd_ctx *x, struct plumb_err *err)
{
	const struct cfg_accessory *a = find_accessory(x->config, dc);
	size_t nvol = a ? a->volumes.n : 0;
	char *w;
	int rc;

	if (!a)
		return plumb_err_set(err, PLUMB_EINVAL, "%s: accessory %s is not in the config", dc->name, dc->role);
	prov_cmd_args(c, "docker", "run", "--name", name, "--detach", "--restart", dc->restart,
		      "--network", dc->network, NULL);
	if ((rc = logging_args(c, dc, err)) < 0)
		return rc;
	/* port: "N" means "N:N" (as written; desired ports are normalised) */
	for (size_t i = 0; i < a->ports.n; i++) {
		const char *p = a->ports.v[i];
		w = strchr(p, ':') ? xstrdup(p) : xasprintf("%s:%s", p, p);
		prov_cmd_args(c, "--publish", w, NULL);
		free(w);
	}
	if ((rc = env_args(c, dc, x, err)) < 0)
		return rc;
	prov_cmd_args(c, "--env-file", dc->env_file, NULL);
	/* the desired state lists files and directories first, volumes: last */
	if (nvol > dc->nmounts)
		nvol = 0;
	for (size_t i = dc->nmounts - nvol; i < dc->nmounts; i++)
		volume_arg(c, &dc->mounts[i], x);
	for (size_t i = 0; i < dc->nmounts - nvol; i++)
		volume_arg(c, &dc->mounts[i], x);
	w = xasprintf("accessories.%s", dc->role);
	rc = run_tail(c, dc, w, err);
	free(w);
	return rc;
}

/* --publish as Kamal writes it: [ip:]host:container, IPv6 in brackets, no /tcp. */
static void publish_arg(struct prov_cmd *c, const struct des_port *p)
{
	int v6 = strchr(p->host_ip, ':') != NULL;
	size_t cl = strlen(p->container_port);
	char *w;

	if (cl > 4 && strcmp(p->container_port + cl - 4, "/tcp") == 0)
		cl -= 4;
	w = xasprintf("%s%s%s%s%s:%.*s", v6 ? "[" : "", p->host_ip, v6 ? "]" : "", *p->host_ip ? ":" : "",
		      p->host_port, (int)cl, p->container_port);
	prov_cmd_args(c, "--publish", w, NULL);
	free(w);
}

/*
 * kamal-proxy, as Kamal 2.12 boots it (Kamal::Commands::Proxy#run): its
 * config volume, the apps-config directory, ports, log size, --expose for a
 * metrics port, options, image and run command — all as build_proxy in
 * state/desired.c derived them from proxy.run. Without a proxy.run section
 * Kamal reads them from the host's boot_config files; plumb uses those
 * files' defaults (a host where `kamal proxy boot_config set` was run keeps
 * what it says only until plumb replaces the proxy).
 */
static int run_proxy(struct prov_cmd *c, const struct des_container *dc, const char *name,
		     const struct dcmd_ctx *x, struct plumb_err *err)
{
	const struct kvs *run = desired_proxy_run(x->config, x->host);
	const char *metrics = run ? kvs_get(run, "metrics_port") : NULL;
	int rc;

	prov_cmd_args(c, "docker", "run", "--name", name, "--network", dc->network, "--detach", "--restart",
		      dc->restart, NULL);
	for (size_t i = 0; i < dc->nmounts; i++)
		volume_arg(c, &dc->mounts[i], x);
	for (size_t i = 0; i < dc->nports; i++)
		publish_arg(c, &dc->ports[i]);
	if ((rc = logging_args(c, dc, err)) < 0)
		return rc;
	if (present(metrics)) {
		char *w = xasprintf("--expose=%s", metrics);
		prov_cmd_arg(c, w);
		free(w);
	}
	return run_tail(c, dc, "proxy.run", err);
}

/*
 * Builders with values that may be refused build into tmp first, so a
 * refusal leaves *c as it was: on success tmp's one simple command moves to
 * c. Releases tmp; returns rc (or the NUL byte tmp latched).
 */
static int adopt(struct prov_cmd *c, enum prov_join join, struct prov_cmd *tmp, int rc, const char *name,
		 struct plumb_err *err)
{
	if (rc == 0 && tmp->err)
		rc = plumb_err_set(err, tmp->err, "%s: a value holds a NUL byte", name);
	if (rc == 0) {
		prov_cmd_begin(c, join);
		c->v[c->n - 1].argv = tmp->v[0].argv;
		memset(&tmp->v[0].argv, 0, sizeof(tmp->v[0].argv));
	}
	prov_cmd_release(tmp);
	return rc;
}

int dcmd_run(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
	     const char *name, const struct dcmd_ctx *x, struct plumb_err *err)
{
	struct prov_cmd tmp;
	int rc;

	if (!x || !x->host || !x->home || !x->ds || (dc->kind != DES_APP && !x->config))
		return plumb_err_set(err, PLUMB_EINVAL, "%s: docker run needs the host, its home and the config",
				     dc->name);
	prov_cmd_init(&tmp);
	prov_cmd_begin(&tmp, join);
	switch (dc->kind) {
	case DES_APP: rc = run_app(&tmp, dc, name, x, err); break;
	case DES_ACCESSORY: rc = run_accessory(&tmp, dc, name ? name : dc->name, x, err); break;
	default: rc = run_proxy(&tmp, dc, name ? name : dc->name, x, err); break;
	}
	return adopt(c, join, &tmp, rc, dc->name, err);
}

/* ---- lifecycle ---- */

void dcmd_start(struct prov_cmd *c, enum prov_join join, const char *name)
{
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "docker", "start", name, NULL);
}

void dcmd_stop(struct prov_cmd *c, enum prov_join join, const char *name, int stop_timeout)
{
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "docker", "stop", NULL);
	if (stop_timeout > 0) {
		char t[16];
		snprintf(t, sizeof(t), "%d", stop_timeout);
		prov_cmd_args(c, "-t", t, NULL);
	}
	prov_cmd_arg(c, name);
}

int dcmd_stop_timeout(const struct config *c, const char *role)
{
	const struct cfg_role *r = role ? config_role(c, role) : NULL;

	if (r && r->stop_timeout > 0)
		return r->stop_timeout;
	if (c->stop_timeout > 0)
		return c->stop_timeout;
	/* kamal-proxy drains a proxied role before it is stopped */
	return r && r->running_proxy ? 0 : c->drain_timeout;
}

void dcmd_remove(struct prov_cmd *c, enum prov_join join, const char *name)
{
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "docker", "rm", "-f", name, NULL);
}

void dcmd_rename(struct prov_cmd *c, enum prov_join join, const char *from, const char *to)
{
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "docker", "rename", from, to, NULL);
}

void dcmd_logs_tail(struct prov_cmd *c, enum prov_join join, const char *name, int lines)
{
	char n[16];

	snprintf(n, sizeof(n), "%d", lines > 0 ? lines : 0);
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "docker", "logs", "--tail", n, name, NULL);
}

/* ---- images and registry ---- */

/*
 * plumb-pull (a constant script; values are its arguments): for each REF
 * WANT pair, the image is pulled only when the host does not already hold
 * WANT under REF (WANT is the identity the plan was built with, asked of the
 * registry: a pull would fetch the same bytes); WANT "" always pulls. The
 * login (password on stdin) happens before the first pull only. Prints each
 * image's id, in order (after a line "pulled" for one it pulled). The
 * kamal network is made sure of at the same time.
 * $1 "login" or "-", $2 server ("" = Docker Hub), $3 user, then pairs.
 */
static const char pull_script[] =
	"{ docker network inspect kamal >/dev/null 2>&1 || docker network create kamal >/dev/null; } & n=$!\n"
	"l=$1 s=$2 u=$3; shift 3\n"
	"while [ $# -ge 2 ]; do\n"
	"  r=$1 w=$2; shift 2\n"
	"  i=$(docker image inspect --format '{{.Id}}' -- \"$r\" 2>/dev/null) || i=\n"
	"  if [ -z \"$w\" ] || [ \"$i\" != \"$w\" ]; then\n"
	"    if [ \"$l\" = login ]; then\n"
	"      e=$(docker login ${s:+\"$s\"} -u \"$u\" --password-stdin 2>&1 >/dev/null) ||\n"
	"        { printf '%s\\n' \"$e\" >&2; wait $n; exit 1; }\n"
	"      l=-\n"
	"    fi\n"
	"    docker pull -q -- \"$r\" >/dev/null || { wait $n; exit 1; }\n"
	"    i=$(docker image inspect --format '{{.Id}}' -- \"$r\") || { wait $n; exit 1; }\n"
	"    echo pulled\n"
	"  fi\n"
	"  printf '%s\\n' \"$i\"\n"
	"done\n"
	"wait $n || { echo 'plumb-pull: the kamal network cannot be created' >&2; exit 1; }\n";

void dcmd_pull_needed(struct prov_cmd *c, enum prov_join join, const char *server, const char *user,
		      const char *const *refs, const char *const *want, size_t n)
{
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "sh", "-c", pull_script, "plumb-pull", user ? "login" : "-",
		      server ? server : "", user ? user : "", NULL);
	for (size_t i = 0; i < n; i++)
		prov_cmd_args(c, refs[i], want[i] ? want[i] : "", NULL);
}

/*
 * plumb-expect TYPE WANT NAME…: the containers named are still the ones
 * observed, and the image references still name the images observed (WANT:
 * their full ids, one per line, in order), else exit 9 with a line saying
 * so: what a plan was built from changed under it. TYPE "container" when
 * only containers are named; "" (docker inspect of any object: a container
 * name is found as a container first, and an image reference holds ':', '/'
 * or '@', which no container name does) when images are.
 */
static const char expect_script[] =
	"k=$1 w=$2; shift 2\n"
	"g=$(docker ${k:+\"$k\"} inspect --format '{{.Id}}' -- \"$@\" 2>/dev/null)\n"
	"[ \"$g\" = \"$w\" ] && exit 0\n"
	"echo \"" DCMD_EXPECT_MARK " a container or image this host's steps act on is not the one "
	"observed (another deploy ran since?): nothing done here; plan again\" >&2\n"
	"exit 9\n";

void dcmd_expect_ids(struct prov_cmd *c, enum prov_join join, const char *const *names,
		     const char *const *ids, size_t n, size_t nimages)
{
	struct sbuf w;

	sbuf_init(&w, 0);
	for (size_t i = 0; i < n; i++)
		sbuf_addf(&w, "%s%s", i ? "\n" : "", ids[i]);
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "sh", "-c", expect_script, "plumb-expect", nimages ? "" : "container", w.buf,
		      NULL);
	for (size_t i = 0; i < n; i++)
		prov_cmd_arg(c, names[i]);
	sbuf_release(&w);
}

/* "reg:5000/app:tag" / "app@sha256:…" → "reg:5000/app" (Kamal's repository). */
static char *ref_repository(const char *ref)
{
	const char *slash = strrchr(ref, '/'), *name = slash ? slash + 1 : ref;
	size_t n = strcspn(name, ":@");

	return xstrndup(ref, (size_t)(name - ref) + n);
}

void dcmd_tag_latest(struct prov_cmd *c, enum prov_join join, const struct desired *ds,
		     const char *ref)
{
	char *repo = ref_repository(ref);
	char *latest = ds->destination ? xasprintf("%s:latest-%s", repo, ds->destination)
				       : xasprintf("%s:latest", repo);

	prov_cmd_begin(c, join);
	prov_cmd_args(c, "docker", "tag", ref, latest, NULL);
	free(latest);
	free(repo);
}

/* ---- kamal-proxy deploy ---- */

/* optionize(…, with: "="): --key="v" as the shell leaves it: --key=v */
static int opt_eq(struct prov_cmd *c, const char *key, const char *val, struct plumb_err *err)
{
	char *prefix = xasprintf("--%s=", key), *what = xasprintf("proxy %s", key);
	int rc = held_word(c, prefix, val, what, err);

	free(what);
	free(prefix);
	return rc;
}

static int opt_secs(struct prov_cmd *c, const char *key, int secs, struct plumb_err *err)
{
	char v[24];

	if (secs <= 0)
		return 0;
	snprintf(v, sizeof(v), "%ds", secs);
	return opt_eq(c, key, v, err);
}

/* A tri-state boolean: true → --key, false → --key=false, unset → def (-1: nothing). */
static int opt_bool(struct prov_cmd *c, const char *key, int v, int def, struct plumb_err *err)
{
	if (v < 0)
		v = def;
	if (v < 0)
		return 0;
	if (v) {
		char *w = xasprintf("--%s", key);
		prov_cmd_arg(c, w);
		free(w);
		return 0;
	}
	return opt_eq(c, key, "false", err);
}

static int opt_list(struct prov_cmd *c, const char *key, const struct strvec *v, struct plumb_err *err)
{
	for (size_t i = 0; i < v->n; i++) {
		int rc = opt_eq(c, key, v->v[i], err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int opt_str(struct prov_cmd *c, const char *key, const char *v, struct plumb_err *err)
{
	return v ? opt_eq(c, key, v, err) : 0;
}

/* "<service>[-<dest>]" */
static char *service_and_destination(const struct desired *ds)
{
	return ds->destination ? xasprintf("%s-%s", ds->service, ds->destination) : xstrdup(ds->service);
}

/* The proxy settings of dc (a role's, merged over the root's; an accessory's),
 * and the role name its TLS paths carry (NULL for an accessory). */
static const struct cfg_proxy *proxy_of(const struct des_container *dc, const struct config *cf,
					const char **role_name)
{
	*role_name = NULL;
	if (dc->kind == DES_APP) {
		const struct cfg_role *r = config_role(cf, dc->role);
		*role_name = dc->role;
		return r && r->running_proxy ? &r->proxy : NULL;
	}
	if (dc->kind == DES_ACCESSORY) {
		const struct cfg_accessory *a = find_accessory(cf, dc);
		return a && a->proxy.set ? &a->proxy : NULL;
	}
	return NULL;
}

/* ".kamal/proxy/apps-config/<svc>/tls[/<role>]/<file>" or its path in the container. */
static char *tls_path(const struct desired *ds, const char *role, const char *file, int in_container)
{
	char *sd = service_and_destination(ds);
	char *p = xasprintf("%s/%s/tls%s%s/%s", in_container ? PROXY_APPS_CONTAINER_DIR : PROXY_APPS_DIR, sd,
			    role ? "/" : "", role ? role : "", file);

	free(sd);
	return p;
}

/*
 * Kamal::Configuration::Proxy#deploy_options, in its order: target, hosts,
 * tls (+ custom certificate paths), deploy/drain timeouts, health check,
 * target timeout, buffering, path prefixes, strip-path-prefix,
 * forward-headers, tls-redirect, logged headers, error pages.
 */
static int deploy_options(struct prov_cmd *c, const struct cfg_proxy *p, const char *role,
			  const char *target, const struct dcmd_ctx *x, struct plumb_err *err)
{
	const struct config *cf = x->config;
	static const struct strvec no_headers = { 0 };
	static const char *const def_headers[] = { "Cache-Control", "Last-Modified", "User-Agent" };
	struct strvec def = { (char **)def_headers, 3, 0 };
	char *t = xasprintf("%s:%d", target, p->app_port > 0 ? p->app_port : 80);
	int custom = p->ssl_certificate_secret && p->ssl_private_key_secret, rc;

	rc = opt_eq(c, "target", t, err);
	free(t);
	if (rc == 0)
		rc = opt_list(c, "host", &p->hosts, err);
	if (rc == 0 && p->ssl == 1)
		prov_cmd_arg(c, "--tls");
	if (rc == 0 && custom) {
		char *cert = tls_path(x->ds, role, "cert.pem", 1), *key = tls_path(x->ds, role, "key.pem", 1);
		rc = opt_eq(c, "tls-certificate-path", cert, err);
		if (rc == 0)
			rc = opt_eq(c, "tls-private-key-path", key, err);
		free(cert);
		free(key);
	}
	if (rc == 0)
		rc = opt_secs(c, "deploy-timeout", cf->deploy_timeout, err);
	if (rc == 0)
		rc = opt_secs(c, "drain-timeout", cf->drain_timeout, err);
	if (rc == 0)
		rc = opt_secs(c, "health-check-interval", p->healthcheck_interval, err);
	if (rc == 0)
		rc = opt_secs(c, "health-check-timeout", p->healthcheck_timeout, err);
	if (rc == 0)
		rc = opt_str(c, "health-check-path", p->healthcheck_path, err);
	if (rc == 0)
		rc = opt_secs(c, "target-timeout", p->response_timeout, err);
	if (rc == 0)
		rc = opt_bool(c, "buffer-requests", p->buffering_requests, 1, err);
	if (rc == 0)
		rc = opt_bool(c, "buffer-responses", p->buffering_responses, 1, err);
	if (rc == 0)
		rc = opt_str(c, "buffer-memory", p->buffer_memory, err);
	if (rc == 0)
		rc = opt_str(c, "max-request-body", p->max_request_body, err);
	if (rc == 0)
		rc = opt_str(c, "max-response-body", p->max_response_body, err);
	if (rc == 0)
		rc = opt_list(c, "path-prefix", &p->path_prefixes, err);
	if (rc == 0)
		rc = opt_bool(c, "strip-path-prefix", p->strip_path_prefix, -1, err);
	if (rc == 0)
		rc = opt_bool(c, "forward-headers", p->forward_headers, -1, err);
	if (rc == 0)
		rc = opt_bool(c, "tls-redirect", p->ssl_redirect, -1, err);
	/* an empty list cannot be told from an absent one here: Kamal's defaults */
	if (rc == 0)
		rc = opt_list(c, "log-request-header", p->log_request_headers.n ? &p->log_request_headers : &def, err);
	if (rc == 0)
		rc = opt_list(c, "log-response-header", p->log_response_headers.n ? &p->log_response_headers : &no_headers, err);
	if (rc == 0 && cf->error_pages_path) {
		char *sd = service_and_destination(x->ds);
		char *ep = xasprintf("%s/%s/error_pages/%s", PROXY_APPS_CONTAINER_DIR, sd,
				     x->version ? x->version : x->ds->version);
		rc = opt_eq(c, "error-pages", ep, err);
		free(ep);
		free(sd);
	}
	return rc;
}

int dcmd_proxy_deploy(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
		      const char *target, const struct dcmd_ctx *x, struct plumb_err *err)
{
	const char *role;
	const struct cfg_proxy *p = x && x->config ? proxy_of(dc, x->config, &role) : NULL;
	struct prov_cmd tmp;
	int rc;

	if (!p || !x->ds)
		return plumb_err_set(err, PLUMB_EINVAL, "%s: does not run behind kamal-proxy", dc->name);
	prov_cmd_init(&tmp);
	prov_cmd_begin(&tmp, join);
	prov_cmd_args(&tmp, "docker", "exec", PROXY_NAME, "kamal-proxy", "deploy",
		      dc->kind == DES_APP ? dc->prefix : dc->name, NULL);
	rc = deploy_options(&tmp, p, role, target, x, err);
	return adopt(c, join, &tmp, rc, dc->name, err);
}

/*
 * plumb-deploy NAME ARGV…: runs ARGV (a kamal-proxy deploy) with its
 * --target=@ID@:<port> word made the id of the container named NAME, looked
 * up as Kamal looks it up (`docker container ls --all --filter name=^NAME$
 * --quiet`), so that a boot and its traffic switch fit in one command.
 */
static const char deploy_named_script[] =
	"id=$(docker container ls --all --filter \"name=^$1\\$\" --quiet) || exit 1\n"
	"case $id in ''|*[!0-9a-f]*) echo \"plumb-deploy: no single container named $1\" >&2; exit 1 ;; esac\n"
	"shift\n"
	"for a; do\n"
	"  case $a in --target=@ID@:*) a=--target=$id:${a#--target=@ID@:} ;; esac\n"
	"  set -- \"$@\" \"$a\"; shift\n"
	"done\n"
	"exec \"$@\"\n";

int dcmd_proxy_deploy_named(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
			    const char *name, const struct dcmd_ctx *x, struct plumb_err *err)
{
	struct prov_cmd d;
	int rc;

	prov_cmd_init(&d);
	rc = dcmd_proxy_deploy(&d, PROV_JOIN_SEQ, dc, "@ID@", x, err);
	if (rc == 0 && d.n == 1) {
		prov_cmd_begin(c, join);
		prov_cmd_args(c, "sh", "-c", deploy_named_script, "plumb-deploy", name, NULL);
		for (size_t i = 0; i < d.v[0].argv.n; i++)
			prov_cmd_arg(c, d.v[0].argv.v[i]);
	} else if (rc == 0) {
		rc = plumb_err_set(err, PLUMB_EINVAL, "%s: the proxy deploy is not one command", dc->name);
	}
	prov_cmd_release(&d);
	return rc;
}

/* ---- files written from stdin ---- */

/*
 * Installs the command's stdin at path (relative to the home, or absolute):
 * the directory made as Kamal makes it (the session's umask: kamal-proxy,
 * another user, must traverse .kamal/proxy/apps-config to read a TLS
 * file), the bytes written under umask 077 to a temporary file
 * beside it, given mode, renamed over path (atomic); the temporary file is
 * removed when a step fails. The script is a constant: every value reaches
 * it as a positional parameter, never as shell text.
 */
static const char install_script[] =
	"mkdir -p -- \"$1\" || exit 1; umask 077; "
	"if cat > \"$2\" && [ \"$(wc -c < \"$2\")\" -eq \"$5\" ] && chmod \"$4\" -- \"$2\" && "
	"mv -f -- \"$2\" \"$3\"; then exit 0; fi; "
	"echo \"plumb-install: $3 not installed (short input or a failed write)\" >&2; "
	"rm -f -- \"$2\"; exit 1";

void dcmd_install_stdin(struct prov_cmd *c, enum prov_join join, const char *path, const char *mode,
			size_t size)
{
	char n[24];

	const char *slash = strrchr(path, '/');
	char *dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup("."), salt[33], *tmp;

	if (!*dir) {
		free(dir);
		dir = xstrdup("/");
	}
	hash_salt_new(salt);
	salt[16] = '\0';
	tmp = xasprintf("%s.tmp.%s", path, salt);
	prov_cmd_begin(c, join);
	snprintf(n, sizeof(n), "%zu", size);
	prov_cmd_args(c, "sh", "-c", install_script, "sh", dir, tmp, path, mode, n, NULL);
	free(tmp);
	free(dir);
}

int dcmd_env_file_write(struct prov_cmd *cmd, char **content, const struct des_env_file *f,
			const struct config *c, struct plumb_err *err)
{
	char **esc = xcalloc(f->nvars ? f->nvars : 1, sizeof(*esc));
	size_t len = 1, pos = 0;
	int rc = 0;

	*content = NULL;
	for (size_t i = 0; i < f->nvars; i++) {
		int available = 0;
		const char *v = f->vars[i].secret ? config_secret_value(c, f->vars[i].secret, &available) : NULL;

		if (!v || !available) {
			rc = plumb_err_set(err, PLUMB_EUNAVAILABLE, "%s: secret %s (env %s) has no value in this run",
					   f->path, f->vars[i].secret ? f->vars[i].secret : "?", f->vars[i].key);
			goto out;
		}
		esc[i] = desired_env_escape(v);
		len += strlen(f->vars[i].key) + 1 + strlen(esc[i]) + 1;
	}
	/* one buffer sized up front: a growing one would leave copies behind */
	*content = xmalloc(len + 1);
	for (size_t i = 0; i < f->nvars; i++) {
		size_t kl = strlen(f->vars[i].key), vl = strlen(esc[i]);
		memcpy(*content + pos, f->vars[i].key, kl);
		(*content)[pos + kl] = '=';
		memcpy(*content + pos + kl + 1, esc[i], vl);
		pos += kl + 1 + vl;
		(*content)[pos++] = '\n';
	}
	if (f->nvars == 0)
		(*content)[pos++] = '\n'; /* Kamal's empty env file */
	(*content)[pos] = '\0';
	dcmd_install_stdin(cmd, PROV_JOIN_SEQ, f->path, "600", pos);
out:
	for (size_t i = 0; i < f->nvars; i++)
		util_free_secret(esc[i]);
	free(esc);
	return rc;
}

int dcmd_proxy_tls_write(struct prov_cmd *cmd, char **content, const struct des_container *dc,
			 enum dcmd_tls_file which, const struct dcmd_ctx *x, struct plumb_err *err)
{
	const char *role, *secret, *v;
	const struct cfg_proxy *p = x && x->config ? proxy_of(dc, x->config, &role) : NULL;
	char *path;
	int available = 0;

	*content = NULL;
	if (!p || !p->ssl_certificate_secret || !p->ssl_private_key_secret)
		return 0;
	secret = which == DCMD_TLS_CERT ? p->ssl_certificate_secret : p->ssl_private_key_secret;
	v = config_secret_value(x->config, secret, &available);
	if (!v || !available)
		return plumb_err_set(err, PLUMB_EUNAVAILABLE, "%s: proxy ssl secret %s has no value in this run",
				     dc->name, secret);
	*content = xstrdup(v);
	path = tls_path(x->ds, role, which == DCMD_TLS_CERT ? "cert.pem" : "key.pem", 0);
	/* 0644 as Kamal uploads them: kamal-proxy reads them as its own user */
	dcmd_install_stdin(cmd, PROV_JOIN_SEQ, path, "644", strlen(*content));
	free(path);
	return 1;
}

/* ---- directories, network, prune ---- */

static void mkdir_p(struct prov_cmd *c, enum prov_join join, const char *dir)
{
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "mkdir", "-p", dir, NULL);
}

/* Kamal's `accessory directories`: mkdir -p each, then chmod/chown if set. */
static void accessory_dirs(struct prov_cmd *c, enum prov_join join, const struct cfg_accessory *a,
			   const struct dcmd_ctx *x)
{
	for (size_t i = 0; i < a->ndirectories; i++) {
		const struct cfg_file_spec *d = &a->directories[i];
		char *p = d->local[0] == '/' ? xstrdup(d->local) : xasprintf("%s/%s/%s", x->home, a->service, d->local);

		mkdir_p(c, join, p);
		if (d->mode) {
			prov_cmd_begin(c, PROV_JOIN_AND);
			prov_cmd_args(c, "chmod", d->mode, p, NULL);
		}
		if (d->owner) {
			prov_cmd_begin(c, PROV_JOIN_AND);
			prov_cmd_args(c, "chown", d->owner, p, NULL);
		}
		join = PROV_JOIN_AND;
		free(p);
	}
	/* files: their directories (the upload is dcmd_install_stdin's) */
	for (size_t i = 0; i < a->nfiles; i++) {
		const char *r = a->files[i].remote, *slash = strrchr(r, '/');
		char *p = xasprintf("%s/%s%s%.*s", x->home, a->service, r[0] == '/' ? "" : "/",
				    slash ? (int)(slash - r) : 0, r);
		mkdir_p(c, join, p);
		join = PROV_JOIN_AND;
		free(p);
	}
}

void dcmd_prepare_dirs(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
		       const struct dcmd_ctx *x)
{
	if (dc->kind == DES_PROXY) {
		mkdir_p(c, join, PROXY_APPS_DIR); /* Kamal's ensure_apps_config_directory */
		return;
	}
	if (dc->env_file) {
		const char *slash = strrchr(dc->env_file, '/');
		char *dir = xstrndup(dc->env_file, slash ? (size_t)(slash - dc->env_file) : 0);
		mkdir_p(c, join, *dir ? dir : ".");
		free(dir);
		join = PROV_JOIN_AND;
	}
	if (dc->kind == DES_ACCESSORY) {
		const struct cfg_accessory *a = find_accessory(x->config, dc);
		if (a)
			accessory_dirs(c, join, a, x);
	}
}


/*
 * Kamal's prune.rb tagged_images: every image labelled service=<service>
 * that no container of the service uses is removed by tag, except
 * <repository>:latest[-dest] and untagged ones (dangling: image prune).
 * $1 service, $2 the latest tag, $3 the repository. A constant script.
 */
static const char prune_tagged_script[] =
	"keep=$(docker container ls -a --format '{{.Image}}' --filter \"label=service=$1\"; "
	"printf '%s\\n' \"$2\" \"$3:<none>\"); "
	"docker image ls --filter \"label=service=$1\" --format '{{.ID}} {{.Repository}}:{{.Tag}}' | "
	"while read -r id tag; do "
	"printf '%s\\n' \"$keep\" | grep -qxF -e \"$tag\" -e \"$id\" || docker rmi -- \"$tag\"; "
	"done";

void dcmd_prune(struct prov_cmd *c, enum prov_join join, const struct desired *ds, int retain)
{
	char *filter = xasprintf("label=service=%s", ds->service), tail[32];
	const char *ref = NULL;

	if (retain < 1)
		retain = 1;
	/* stopped containers beyond the newest `retain` (docker ps lists newest first) */
	snprintf(tail, sizeof(tail), "+%d", retain + 1);
	prov_cmd_begin(c, join);
	prov_cmd_args(c, "docker", "ps", "-q", "-a", "--filter", filter, "--filter", "status=created",
		      "--filter", "status=exited", "--filter", "status=dead", NULL);
	prov_cmd_begin(c, PROV_JOIN_PIPE);
	prov_cmd_args(c, "tail", "-n", tail, NULL);
	prov_cmd_begin(c, PROV_JOIN_PIPE);
	prov_cmd_args(c, "xargs", "-r", "docker", "rm", NULL);
	/* dangling images of the service */
	prov_cmd_begin(c, PROV_JOIN_SEQ);
	prov_cmd_args(c, "docker", "image", "prune", "--force", "--filter", filter, NULL);
	/* tagged images no container uses */
	for (size_t h = 0; h < ds->nhosts && !ref; h++)
		for (size_t i = 0; i < ds->hosts[h].ncontainers && !ref; i++)
			if (ds->hosts[h].containers[i].kind == DES_APP)
				ref = ds->hosts[h].containers[i].image_ref;
	if (ref) {
		char *repo = ref_repository(ref);
		char *latest = ds->destination ? xasprintf("%s:latest-%s", repo, ds->destination)
					       : xasprintf("%s:latest", repo);
		prov_cmd_begin(c, PROV_JOIN_SEQ);
		prov_cmd_args(c, "sh", "-c", prune_tagged_script, "sh", ds->service, latest, repo, NULL);
		free(latest);
		free(repo);
	}
	free(filter);
}

/* ---- assets (app/assets.rb) ---- */

/* .kamal/apps/<svc>/assets/<kind>/<role>-<version> */
static char *asset_dir(const struct desired *ds, const char *kind, const char *role, const char *version)
{
	char *sd = service_and_destination(ds);
	char *p = xasprintf(".kamal/apps/%s/assets/%s/%s-%s", sd, kind, role, version);

	free(sd);
	return p;
}

int dcmd_assets_prepare(struct prov_cmd *c, enum prov_join join, const struct des_container *dc,
			const struct dcmd_ctx *x, const char *old_version)
{
	const struct cfg_role *r = dc->kind == DES_APP && x->config ? config_role(x->config, dc->role) : NULL;
	const char *asset = r ? (r->asset_path ? r->asset_path : x->config->asset_path) : NULL;
	const char *version = x->version ? x->version : x->ds->version;
	char *path, *from, *ext, *vol, *tmpname;

	if (!r || !asset || !r->running_proxy)
		return 0;
	path = xasprintf("%.*s/.", (int)strcspn(asset, ":"), asset);
	tmpname = xasprintf("%s-assets", dc->prefix);
	from = xasprintf("%s:%s", tmpname, path);
	ext = asset_dir(x->ds, "extracted", dc->role, version);
	vol = asset_dir(x->ds, "volumes", dc->role, version);
	/* extract_assets: the image's asset directory, copied out of a created container */
	mkdir_p(c, join, ext);
	prov_cmd_begin(c, PROV_JOIN_AND);
	prov_cmd_args(c, "docker", "container", "rm", tmpname, NULL);
	prov_cmd_quiet(c);
	prov_cmd_begin(c, PROV_JOIN_OR);
	prov_cmd_arg(c, "true");
	prov_cmd_begin(c, PROV_JOIN_AND);
	prov_cmd_args(c, "docker", "container", "create", "--name", tmpname, dc->image_ref, NULL);
	prov_cmd_begin(c, PROV_JOIN_AND);
	prov_cmd_args(c, "docker", "container", "cp", "-L", from, ext, NULL);
	prov_cmd_begin(c, PROV_JOIN_AND);
	prov_cmd_args(c, "docker", "container", "rm", tmpname, NULL);
	/* sync_asset_volumes (its own command in Kamal, run once extraction
	 * succeeded; chained by ;): the new volume, old and new assets in both */
	mkdir_p(c, PROV_JOIN_AND, vol);
	prov_cmd_begin(c, PROV_JOIN_SEQ);
	prov_cmd_args(c, "cp", "-rnT", ext, vol, NULL);
	if (old_version && *old_version) {
		char *oext = asset_dir(x->ds, "extracted", dc->role, old_version);
		char *ovol = asset_dir(x->ds, "volumes", dc->role, old_version);
		prov_cmd_begin(c, PROV_JOIN_SEQ);
		prov_cmd_args(c, "cp", "-rnT", ext, ovol, NULL);
		prov_cmd_begin(c, PROV_JOIN_OR);
		prov_cmd_arg(c, "true");
		prov_cmd_begin(c, PROV_JOIN_SEQ);
		prov_cmd_args(c, "cp", "-rnT", oext, vol, NULL);
		prov_cmd_begin(c, PROV_JOIN_OR);
		prov_cmd_arg(c, "true");
		free(oext);
		free(ovol);
	}
	free(vol);
	free(ext);
	free(from);
	free(tmpname);
	free(path);
	return 1;
}
