/*
 * plumb lock status|acquire|release: Kamal's deploy lock on the primary host
 * (reconciler/lock.h), as `kamal lock` does it. The source and the hosts come
 * from the pipeline (reconciler/pipeline.h, up to the observation); status
 * reads through the read-only guard, acquire and release take the primary
 * host's raw transport from a read-write fleet. Release does what Kamal's
 * does: it releases whoever holds the lock.
 * Exit 0 done (also "there is no deploy lock"), 1 error or lock held (acquire).
 * status exits 0 whether a lock is held or not, as `kamal lock status` does:
 * its output says which ("There is no deploy lock", or the details, and
 * "stale: …" for a lock of a plumb of this machine whose pid is gone).
 */
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/cli.h"
#include "reconciler/lock.h"
#include "reconciler/pipeline.h"
#include "reconciler/source_opts.h"
#include "state/escape.h"

struct lock_args {
	const char *verb;
	struct rec_source_opts src;
	const char *message;
};

/* 0, or -1 once what is wrong and the usage are printed. */
static int parse_args(struct lock_args *a, int argc, char **argv)
{
	const struct rec_extra_opt extra[] = {
		{ "message", 'm', &a->message, NULL },
		{ NULL, 0, NULL, NULL },
	};
	const struct rec_source_spec spec = {
		"lock", REC_SRC_CONFIG | REC_SRC_GIT | REC_SRC_VERSION | REC_SRC_TRUSTED | REC_SRC_TIMEOUT, extra, NULL,
	};

	a->verb = NULL;
	a->message = NULL;
	if (argc < 2 || (strcmp(argv[1], "status") && strcmp(argv[1], "acquire") && strcmp(argv[1], "release"))) {
		fprintf(stderr, "plumb lock: want status, acquire or release\n");
		goto usage;
	}
	a->verb = argv[1];
	if (rec_source_opts_parse(&a->src, &spec, argc - 1, argv + 1) < 0)
		return -1;
	if (a->message && strcmp(a->verb, "acquire") != 0) {
		fprintf(stderr, "plumb lock: -m is for acquire\n");
		goto usage;
	}
	if (!a->message && strcmp(a->verb, "acquire") == 0) {
		/* Kamal requires one too: a manual lock says why it is there */
		fprintf(stderr, "plumb lock acquire: -m MESSAGE is required\n");
		goto usage;
	}
	return 0;
usage:
	rec_print_usage(rec_find_command("lock"), stderr);
	return -1;
}

/* The checkout's HEAD commit (Kamal's version when none is given), or NULL. */
static char *head_commit(const char *root)
{
	git_repository *repo = NULL;
	git_oid oid;
	char *r = NULL;

	if (!root || git_libgit2_init() < 0)
		return NULL;
	if (git_repository_open_ext(&repo, root, 0, NULL) == 0 &&
	    git_reference_name_to_id(&oid, repo, "HEAD") == 0) {
		r = xmalloc(GIT_OID_HEXSZ + 1);
		git_oid_tostr(r, GIT_OID_HEXSZ + 1, &oid);
	}
	git_repository_free(repo);
	git_libgit2_shutdown();
	return r;
}

/* The primary host (first host of the primary role) as an index of the fleet. */
static int primary_index(const struct config *c, const struct obs_fleet *f, size_t *out)
{
	const struct cfg_role *r = config_primary_role(c);

	if (!r || !r->nhosts)
		return -1;
	for (size_t i = 0; f && i < f->nhosts; i++)
		if (strcmp(f->hosts[i].host, r->hosts[0].addr) == 0) {
			*out = i;
			return 0;
		}
	return -1;
}

static void print_details(const char *details)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	esc_lines(&sb, details, strlen(details));
	fputs(sb.buf, stdout);
	fputc('\n', stdout);
	sbuf_release(&sb);
}

static int do_status(struct transport *t, const char *name)
{
	struct rec_lock_status s;
	struct plumb_err err = { 0 };

	if (rec_lock_status(t, name, &s, &err) < 0) {
		esc_eprintf("plumb lock status: %s\n", plumb_err_msg(&err));
		return REC_EXIT_ERROR;
	}
	if (!s.held) {
		puts("There is no deploy lock");
	} else {
		print_details(s.details);
		if (s.stale)
			printf("stale: plumb (pid %ld) on this machine is no longer running; "
			       "`plumb lock release` clears it\n", s.pid);
	}
	rec_lock_status_release(&s);
	return REC_EXIT_OK;
}

int cmd_lock(int argc, char **argv)
{
	struct lock_args a;
	struct rec_pipeline_opts po = { 0 };
	struct rec_pipeline_result res = { 0 };
	struct plumb_err err = { 0 };
	struct transport *t = NULL;
	char *name = NULL, *head = NULL, *who = NULL;
	const char *version;
	size_t pi = 0;
	int rc = REC_EXIT_ERROR, prc;

	if (parse_args(&a, argc, argv) != 0)
		return REC_EXIT_ERROR;
	po.cmd = "lock";
	po.until = REC_STAGE_OBSERVE;
	po.mode = strcmp(a.verb, "status") == 0 ? FLEET_READ_ONLY : FLEET_READ_WRITE;
	po.src = a.src;
	po.src.version = NULL; /* the lock's version, not a pipeline stage's */
	prc = rec_pipeline_run(&res, &po);
	if (prc < 0) {
		esc_fputs(res.log, stderr);
		goto out;
	}
	if (primary_index(res.config, res.obs, &pi) < 0) {
		fprintf(stderr, "plumb lock: the primary role has no host\n");
		goto out;
	}
	name = rec_lock_name_for(res.config->service, res.config->destination);
	prc = po.mode == FLEET_READ_ONLY ? fleet_reader(res.fleet, pi, &t, &err)
					 : fleet_writer(res.fleet, pi, &t, &err);
	if (prc < 0) {
		esc_eprintf("plumb lock: %s\n", plumb_err_msg(&err));
		goto out;
	}
	if (strcmp(a.verb, "status") == 0) {
		rc = do_status(t, name);
	} else if (strcmp(a.verb, "release") == 0) {
		prc = rec_lock_release(t, name, &err);
		if (prc == 0 || prc == PLUMB_ENOTFOUND) {
			puts(prc == 0 ? "Released the deploy lock" : "There is no deploy lock");
			rc = REC_EXIT_OK;
		} else {
			esc_eprintf("plumb lock release: %s\n", plumb_err_msg(&err));
		}
	} else {
		/* Kamal's version: --version, else the config's, $VERSION, the commit */
		version = a.src.version;
		if (!version)
			version = res.config->xplumb.version;
		if (!version || !*version)
			version = getenv("VERSION");
		if (!version || !*version)
			version = head = head_commit(res.root);
		/* taken by hand: it outlives this process, so it names no pid */
		who = rec_lock_who(1);
		prc = rec_lock_acquire_as(t, name, who, version, a.message, &err);
		if (prc == 0) {
			puts("Acquired the deploy lock");
			rc = REC_EXIT_OK;
		} else if (prc == PLUMB_ELOCKED) {
			esc_eprintf("plumb lock acquire: deploy lock already in place!\n%s\n", plumb_err_msg(&err));
		} else {
			esc_eprintf("plumb lock acquire: %s\n", plumb_err_msg(&err));
		}
	}
	/* what an untrusted run turned off, after the output as for hosts */
	esc_fputs(res.log, stderr);
out:
	free(who);
	free(head);
	free(name);
	rec_pipeline_result_release(&res);
	return rc;
}
