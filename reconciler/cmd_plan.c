/*
 * plumb plan: what apply would change on every host, and why.
 *
 * Pipeline: source (a checkout, or --repo/--ref through libgit2) → config →
 * version → app image identity from the registry → observation of every host
 * through the read-only transport (providers/fleet.h) → desired state with
 * the observation's salt → diff → render. Read-only by construction: no
 * executor is built, no lock taken, no hook run, nothing written on a host.
 * Exit 0 in sync, 2 changes pending, 1 error (including a host that could not
 * be observed: the others are still planned and shown).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff/diff.h"
#include "diff/render.h"
#include "providers/fleet.h"
#include "providers/git_src.h"
#include "providers/registry.h"
#include "reconciler/cli.h"
#include "reconciler/load.h"
#include "state/desired.h"
#include "state/escape.h"

struct plan_args {
	const char *config;
	const char *dest;
	const char *repo;
	const char *ref;
	const char *base;
	const char *version;
	const char *format;
	const char *out;
	int trusted;
	int prune;
	int allow_foreign_owner;
};

static int parse_args(struct plan_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "destination", required_argument, NULL, 'd' },
		{ "repo", required_argument, NULL, 'R' },
		{ "ref", required_argument, NULL, 'r' },
		{ "base", required_argument, NULL, 'b' },
		{ "version", required_argument, NULL, 'V' },
		{ "format", required_argument, NULL, 'f' },
		{ "out", required_argument, NULL, 'o' },
		{ "trusted", no_argument, NULL, 'T' },
		{ "prune", no_argument, NULL, 'P' },
		{ "allow-foreign-owner", no_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(a, 0, sizeof(*a));
	a->format = "text";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:d:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': a->config = optarg; break;
		case 'd': a->dest = optarg; break;
		case 'R': a->repo = optarg; break;
		case 'r': a->ref = optarg; break;
		case 'b': a->base = optarg; break;
		case 'V': a->version = optarg; break;
		case 'f': a->format = optarg; break;
		case 'o': a->out = optarg; break;
		case 'T': a->trusted = 1; break;
		case 'P': a->prune = 1; break;
		case 'F': a->allow_foreign_owner = 1; break;
		default: return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "plumb plan: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (strcmp(a->format, "text") && strcmp(a->format, "markdown") && strcmp(a->format, "json")) {
		fprintf(stderr, "plumb plan: --format must be text, markdown or json\n");
		return -1;
	}
	return 0;
}

/* Loads the config from a source, printing diagnostics. */
static int load_from(struct config **out, struct source *src, const char *file,
		     const struct plan_args *a)
{
	struct config_opts o = { 0 };
	struct diags d = { 0 };
	int rc;

	o.file = file;
	o.destination = a->dest;
	o.trusted = a->trusted;
	rc = config_load(out, src, &o, &d);
	diags_print(&d, stderr);
	diags_clear(&d);
	return rc;
}

static const char *app_registry_domain(const struct config *c)
{
	return c->registry.server ? c->registry.server : "docker.io";
}

/* tag → identity. 0 (FOUND/NOT_FOUND in *st, *id set when found) or -1. */
static int resolve_image(const struct config *c, const char *ref, const struct plan_args *a,
			 const struct registry_options *ropt, enum des_image_status *st, char **id)
{
	struct registry_client *rc = registry_client_new(ropt);
	struct registry_result res = { 0 };
	char *err = NULL;
	int ret = -1;

	for (size_t i = 0; i < c->x_plumb.n; i++)
		if (rec_registry_insecure_key(c->x_plumb.keys[i]))
			registry_client_add_insecure(rc, c->x_plumb.vals[i]);
	/* Credentials come from secrets only when trusted; else the docker config file. */
	if (a->trusted && (c->registry.password_secret || c->registry.password)) {
		int avail = 0;
		const char *user = c->registry.username;
		const char *pw = c->registry.password;
		if (c->registry.username_secret)
			user = config_secret_value(c, c->registry.username_secret, &avail);
		if (c->registry.password_secret)
			pw = config_secret_value(c, c->registry.password_secret, &avail);
		if (user && pw)
			registry_client_set_credentials(rc, app_registry_domain(c), user, pw);
	}
	if (registry_resolve(rc, ref, &res, &err) != 0) {
		esc_eprintf("plumb plan: registry: %s: %s\n", ref, err ? err : "lookup failed");
		goto out;
	}
	if (res.status == REGISTRY_FOUND && res.config_digest) {
		*st = DES_IMAGE_FOUND;
		*id = xstrdup(res.config_digest);
	} else {
		*st = DES_IMAGE_NOT_FOUND;
	}
	ret = 0;
out:
	free(err);
	registry_result_dispose(&res);
	registry_client_free(rc);
	return ret;
}

/* Moves hosts of `from` that are in `names` and not in `into` over to `into`. */
static void adopt_hosts(struct obs_fleet *into, struct obs_fleet *from, const struct strvec *names)
{
	for (size_t i = 0; i < from->nhosts; i++) {
		struct obs_host *h = &from->hosts[i];
		if (!strvec_contains(names, h->host) || obs_fleet_host(into, h->host))
			continue;
		into->hosts = xrealloc(into->hosts, (into->nhosts + 1) * sizeof(*into->hosts));
		into->hosts[into->nhosts++] = *h;
		memset(h, 0, sizeof(*h));
		h->host = xstrdup("(moved)");
	}
}

int cmd_plan(int argc, char **argv)
{
	struct plan_args a;
	struct rec_loaded L = { 0 };
	struct git_src *g = NULL;
	struct source *src = NULL, *bsrc = NULL;
	struct config *c = NULL, *bc = NULL;
	struct desired *ds = NULL, *bds = NULL;
	struct obs_fleet *obs = NULL, *bobs = NULL;
	struct diff_plan *p = NULL;
	struct strvec extra = { 0 }, cur_hosts = { 0 };
	struct sbuf out;
	char sha[41] = "", *root = NULL, *relfile = NULL, *err = NULL, *image_ref = NULL;
	char *identity = NULL, ferr[512] = "", *platform = NULL;
	struct registry_options ropt = { 0 };
	enum des_image_status st = DES_IMAGE_UNKNOWN;
	const char *version;
	int rc = REC_EXIT_ERROR, loaded_via_rec = 0;

	sbuf_init(&out, 0);
	if (parse_args(&a, argc, argv) != 0) {
		rec_print_usage(rec_find_command("plan"), stderr);
		goto out;
	}
	rec_split_config_path(a.config ? a.config : "config/deploy.yml", &root, &relfile);

	/* 1. source and config */
	if (a.repo || a.ref || a.base) {
		struct git_src_opts go = { 0 };
		rec_git_opts(&go, a.allow_foreign_owner);
		go.location = a.repo ? a.repo : root;
		go.ref = a.ref;
		if (git_src_open(&g, &go, &err) != 0 || git_src_fetch(g, NULL, &err) != 0) {
			esc_eprintf("plumb plan: %s\n", err ? err : "cannot open the repository");
			goto out;
		}
	}
	if (a.repo || a.ref) {
		if (git_src_resolve(g, a.ref, sha, &err) != 0 || git_src_source_at(g, sha, &src, &err) != 0) {
			esc_eprintf("plumb plan: %s\n", err ? err : "cannot read the revision");
			goto out;
		}
		if (load_from(&c, src, a.repo ? (a.config ? a.config : "config/deploy.yml") : relfile, &a) != 0)
			goto out;
	} else {
		struct rec_load_opts lo = { a.config, a.dest, a.trusted };
		if (rec_load(&L, &lo) != 0)
			goto out;
		loaded_via_rec = 1;
		c = L.config;
		/* the checkout's HEAD, when it is a git repository */
		if (!g) {
			struct git_src_opts go = { 0 };
			rec_git_opts(&go, a.allow_foreign_owner);
			go.location = L.root;
			if (git_src_open(&g, &go, &err) != 0) {
				free(err);
				err = NULL;
				git_src_free(g);
				g = NULL;
			}
		}
		if (g && git_src_resolve(g, NULL, sha, &err) != 0) {
			free(err);
			err = NULL;
			sha[0] = '\0';
		}
	}
	rec_registry_setup(c, a.trusted, &ropt, &platform);
	rec_report_trust(c, stderr);
	if (rec_require_computed(c, "plan") < 0)
		goto out;

	/* 2. version: --version > x-plumb version > $VERSION > the commit */
	version = a.version;
	if (!version)
		version = kvs_get(&c->x_plumb, "version");
	if (!version || !*version)
		version = getenv("VERSION");
	if (!version || !*version)
		version = sha[0] ? sha : NULL;
	if (!version) {
		fprintf(stderr, "plumb plan: no version: not a git checkout; pass --version\n");
		goto out;
	}

	/* 3. app image identity */
	image_ref = c->registry.server ? xasprintf("%s/%s:%s", c->registry.server, c->image, version)
				       : xasprintf("%s:%s", c->image, version);
	if (resolve_image(c, image_ref, &a, &ropt, &st, &identity) != 0)
		goto out;

	/* 4. the base revision: its hosts are observed too (orphans on removed hosts) */
	if (a.base) {
		char bsha[41];
		if (git_src_resolve(g, a.base, bsha, &err) != 0 || git_src_source_at(g, bsha, &bsrc, &err) != 0) {
			esc_eprintf("plumb plan: --base: %s\n", err ? err : "cannot read the revision");
			goto out;
		}
		if (load_from(&bc, bsrc, a.repo ? (a.config ? a.config : "config/deploy.yml") : relfile, &a) != 0)
			goto out;
	}

	/* 5. observe, read-only */
	{
		struct fleet_opts fo = { 0 };
		fo.root = loaded_via_rec ? L.root : root;
		fo.trusted = a.trusted;
		if (fleet_observe(&obs, c, &fo, ferr, sizeof(ferr)) < 0) {
			esc_eprintf("plumb plan: observation: %s\n", ferr);
			goto out;
		}
		if (bc) {
			struct strvec bh = { 0 };
			config_all_hosts(c, &cur_hosts);
			config_all_hosts(bc, &bh);
			for (size_t i = 0; i < bh.n; i++)
				if (!strvec_contains(&cur_hosts, bh.v[i]))
					strvec_push(&extra, bh.v[i]);
			strvec_clear(&bh);
			if (extra.n) {
				if (fleet_observe(&bobs, bc, &fo, ferr, sizeof(ferr)) < 0) {
					esc_eprintf("plumb plan: observation of the base's hosts: %s\n", ferr);
					goto out;
				}
				adopt_hosts(obs, bobs, &extra);
			}
		}
	}

	/* 6. desired state with the observation's salt, then the diff */
	{
		struct desired_opts dopt = { 0 };
		struct diags d = { 0 };
		struct diff_opts o = { 0 };
		dopt.version = version;
		dopt.salt = obs->salt;
		dopt.app_image.ref = image_ref;
		dopt.app_image.identity = identity;
		dopt.app_image.status = st;
		if (desired_build(&ds, c, &dopt, &d) != 0) {
			diags_print(&d, stderr);
			diags_clear(&d);
			goto out;
		}
		if (bc) {
			struct desired_opts bo = dopt;
			bo.app_image.status = DES_IMAGE_UNKNOWN;
			bo.app_image.identity = NULL;
			bo.app_image.ref = NULL;
			if (desired_build(&bds, bc, &bo, &d) != 0)
				bds = NULL;
		}
		diags_clear(&d);
		o.prune = a.prune || (kvs_get(&c->x_plumb, "prune") && strcmp(kvs_get(&c->x_plumb, "prune"), "true") == 0);
		o.base = bds;
		o.extra_hosts = &extra;
		if (diff_plan_build(&p, ds, obs, &o) != 0) {
			fprintf(stderr, "plumb plan: planning failed\n");
			goto out;
		}
	}

	/* 7. render */
	{
		struct render_opts ro = { 0 };
		int r;
		ro.color = !a.out && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
		if (strcmp(a.format, "json") == 0)
			r = diff_render_json(p, &out);
		else if (strcmp(a.format, "markdown") == 0)
			r = diff_render_markdown(p, &ro, &out);
		else
			r = diff_render_text(p, &ro, &out);
		if (r != 0) {
			fprintf(stderr, "plumb plan: rendering failed\n");
			goto out;
		}
	}
	if (a.out) {
		FILE *f = fopen(a.out, "w");
		int wrote;
		if (!f) {
			fprintf(stderr, "plumb plan: cannot write %s: %s\n", a.out, strerror(errno));
			goto out;
		}
		/* close it whatever the write did, and check both */
		wrote = fwrite(out.buf, 1, out.len, f) == out.len;
		if (fclose(f) != 0 || !wrote) {
			fprintf(stderr, "plumb plan: cannot write %s\n", a.out);
			goto out;
		}
		fprintf(stderr, "plan hash %s written to %s\n", p->hash, a.out);
	} else {
		fwrite(out.buf, 1, out.len, stdout);
	}
	rc = diff_plan_exit_code(p);
out:
	sbuf_release(&out);
	diff_plan_free(p);
	desired_free(ds);
	desired_free(bds);
	obs_fleet_free(obs);
	obs_fleet_free(bobs);
	if (loaded_via_rec)
		rec_loaded_release(&L);
	else
		config_free(c);
	config_free(bc);
	source_free(src);
	source_free(bsrc);
	git_src_free(g);
	strvec_clear(&extra);
	strvec_clear(&cur_hosts);
	free(root);
	free(relfile);
	free(err);
	free(image_ref);
	free(identity);
	free(platform);
	return rc;
}
