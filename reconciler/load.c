#include "reconciler/load.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "providers/git_src.h"
#include "providers/run.h"
#include "reconciler/cli.h"
#include "reconciler/source_opts.h"
#include "providers/registry.h"
#include "state/escape.h"
#include "state/util.h"

/* The closest directory at or above dir (canonical) holding .git; NULL if none. */
static char *git_work_tree(const char *dir)
{
	char *d = xstrdup(dir);

	for (;;) {
		char *git = xasprintf("%s/.git", strcmp(d, "/") == 0 ? "" : d);
		struct stat st;
		int found = lstat(git, &st) == 0;
		char *slash;

		free(git);
		if (found)
			return d;
		slash = strrchr(d, '/');
		if (!slash || strcmp(d, "/") == 0)
			break;
		if (slash == d)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	free(d);
	return NULL;
}

void rec_split_config_path(const char *path, char **root, char **relfile)
{
	const char *slash;
	char *dir, *cdir, *top, *cwd;
	size_t dirlen;

	if (!path)
		path = "config/deploy.yml";
	slash = strrchr(path, '/');
	dirlen = slash ? (size_t)(slash - path) : 0;
	if (slash && ((dirlen == 6 && strncmp(path, "config", 6) == 0) ||
		      (dirlen > 6 && strncmp(slash - 7, "/config", 7) == 0))) {
		size_t rootlen = dirlen >= 7 ? dirlen - 7 : 0;
		*root = rootlen ? xstrndup(path, rootlen) : xstrdup(dirlen == 6 ? "." : "/");
		*relfile = xasprintf("config/%s", slash + 1);
		return;
	}
	/* Any other file: the git work tree around it, else its own folder —
	 * never the current directory for a file elsewhere. */
	dir = !slash ? xstrdup(".") : dirlen ? xstrndup(path, dirlen) : xstrdup("/");
	cdir = realpath(dir, NULL);
	top = cdir ? git_work_tree(cdir) : NULL;
	if (!top) {
		*root = dir;
		*relfile = xstrdup(slash ? slash + 1 : path);
		free(cdir);
		return;
	}
	cwd = realpath(".", NULL);
	*root = cwd && strcmp(cwd, top) == 0 ? xstrdup(".") : xstrdup(top);
	*relfile = strcmp(cdir, top) == 0
			   ? xstrdup(slash ? slash + 1 : path)
			   : xasprintf("%s/%s", cdir + strlen(top) + (strcmp(top, "/") != 0),
				       slash ? slash + 1 : path);
	free(cwd);
	free(top);
	free(cdir);
	free(dir);
}

int rec_parse_load_args(const char *cmd, int argc, char **argv, struct rec_load_opts *o, int *json)
{
	const struct rec_extra_opt extra[] = { { "json", 0, NULL, json }, { NULL, 0, NULL, NULL } };
	const struct rec_source_spec spec = { cmd, REC_SRC_CONFIG | REC_SRC_TRUSTED, extra, NULL };
	struct rec_source_opts so;

	memset(o, 0, sizeof(*o));
	*json = 0;
	if (rec_source_opts_parse(&so, &spec, argc, argv) < 0)
		return PLUMB_EINVAL;
	o->config_path = so.config_path;
	o->destination = so.destination;
	o->trusted = so.trusted;
	return 0;
}

void rec_config_opts_fill(struct config_opts *co)
{
	co->run_fn = prov_run_shell_fn;
	co->run_ctx = NULL;
}

int rec_load(struct rec_loaded *out, const struct rec_load_opts *o)
{
	struct diags d = { 0 };
	struct config_opts co = { 0 };
	FILE *log = o->log ? o->log : stderr;
	int rc;

	memset(out, 0, sizeof(*out));
	rec_split_config_path(o->config_path, &out->root, &out->relfile);
	source_dir_new(&out->src, out->root);
	co.file = out->relfile;
	co.destination = o->destination;
	co.trusted = o->trusted;
	rec_config_opts_fill(&co);
	rc = config_load(&out->config, out->src, &co, &d);
	if (d.n) {
		/* messages name files relative to the repository root: say where that is */
		if (strcmp(out->root, ".") != 0)
			fprintf(log, "plumb: in %s/:\n", out->root);
		diags_print(&d, log);
	}
	if (rc < 0)
		fprintf(log, "plumb: %zu error%s in the configuration; nothing was changed\n", d.errors,
			d.errors == 1 ? "" : "s");
	diags_release(&d);
	return rc < 0 ? PLUMB_ECONFIG : 0;
}

void rec_loaded_release(struct rec_loaded *l)
{
	config_free(l->config);
	source_free(l->src);
	free(l->root);
	free(l->relfile);
	memset(l, 0, sizeof(*l));
}

void rec_report_trust(const struct config *c, FILE *f)
{
	if (c->trust.trusted || !c->trust.turned_off)
		return;
	fprintf(f, "plumb: untrusted run (pass --trusted for a source you trust); turned off:\n");
	for (int b = 0; b < TRUST_OFF_COUNT; b++)
		if (c->trust.turned_off & (1u << b))
			fprintf(f, "  - %s\n", trust_off_describe((enum trust_off)(1u << b)));
}

void rec_git_opts(struct git_src_opts *go, int allow_foreign_owner)
{
	go->ssh_key = getenv("PLUMB_GIT_SSH_KEY");
	/* name the variables only when set: the git source treats a named but
	 * missing variable as an error */
	go->ssh_passphrase_env = getenv("PLUMB_GIT_SSH_PASSPHRASE") ? "PLUMB_GIT_SSH_PASSPHRASE" : NULL;
	go->ssh_known_hosts = getenv("PLUMB_GIT_KNOWN_HOSTS");
	go->token_env = getenv("PLUMB_GIT_TOKEN") ? "PLUMB_GIT_TOKEN" : NULL;
	go->token_file = getenv("PLUMB_GIT_TOKEN_FILE");
	go->ca_file = getenv("PLUMB_GIT_CA_FILE");
	go->allow_foreign_owner = allow_foreign_owner;
}

int rec_require_computed(const struct config *c, const char *cmd, FILE *log)
{
	if (!c->unavailable_keys.n)
		return 0;
	for (size_t i = 0; i < c->unavailable_keys.n; i++)
		esc_fprintf(log, "plumb %s: %s: its value comes from ERB ENV or a command, which an untrusted run does not evaluate\n",
			cmd, c->unavailable_keys.v[i]);
	fprintf(log, "plumb %s: pass --trusted if this repository is trusted (never for a pull request)\n", cmd);
	return PLUMB_EUNTRUSTED;
}

int rec_registry_is_insecure(const struct config *c, const char *domain)
{
	size_t hostlen = strcspn(domain, ":");

	/* an IPv6 literal "[::1]:5000" has its port after the bracket */
	if (domain[0] == '[') {
		const char *rb = strchr(domain, ']');
		hostlen = rb ? (size_t)(rb - domain) + 1 : strlen(domain);
	}
	for (size_t i = 0; i < c->xplumb.registry_insecure.n; i++) {
		const char *v = c->xplumb.registry_insecure.v[i];

		if (!*v)
			continue;
		if (strcmp(v, domain) == 0 || (strlen(v) == hostlen && strncmp(v, domain, hostlen) == 0))
			return 1;
	}
	return 0;
}

void rec_registry_setup(struct config *c, int trusted, struct registry_options *ro, char **platform)
{
	const char *domain = c->registry.server ? c->registry.server : "docker.io";

	*platform = xasprintf("linux/%s", c->builder_arch ? c->builder_arch : "amd64");
	ro->platform = *platform;
	if (!trusted && rec_registry_is_insecure(c, domain)) {
		ro->docker_config = "";
		trust_note(&c->trust, TRUST_OFF_INSECURE_CREDS);
	}
	/* Whatever host the image reference really names: an untrusted run never
	 * sends the runner's docker credentials over plain HTTP off this machine. */
	if (!trusted) {
		ro->no_docker_config_over_http = 1;
		ro->restrict_token_realm = 1;
		ro->allowed_realm_hosts = getenv("PLUMB_REGISTRY_REALM_HOSTS");
	}
}
