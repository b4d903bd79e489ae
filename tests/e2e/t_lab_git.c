/*
 * t_lab_git — lab self-test: libgit2 sees a commit pushed to the lab's git
 * remote.
 *
 * Clones LAB_GIT_URL (git daemon) with libgit2, checks the tree holds the lab's
 * config/deploy.yml, makes a commit with lab_commit (tests/lab/lib.sh, found
 * through LAB_LIB), fetches, and checks refs/remotes/origin/main is that
 * commit. Prints "t_lab_git: N passed, N failed"; exit status 0 only if all
 * checks passed.
 */
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/e2e/e2e.h"
#include "tests/unit/tutil.h"

static const char *git_msg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "(no message)";
}

/* Reads the id refs/remotes/origin/main points at into out (41 bytes). */
static int origin_main(char *out, git_repository *repo)
{
	git_oid oid;
	if (git_reference_name_to_id(&oid, repo, "refs/remotes/origin/main") < 0)
		return -1;
	git_oid_tostr(out, GIT_OID_HEXSZ + 1, &oid);
	return 0;
}

/* Runs lab_commit in a shell; writes the new commit's sha into out (41 bytes). */
static int lab_commit(char *out)
{
	const char *cmd = "bash -c '. \"$LAB_LIB\" && lab_commit \"t_lab_git: a commit libgit2 must see\" "
			  "\"date +%s%N > t_lab_git.stamp\"'";
	char line[128] = "";
	FILE *p = popen(cmd, "r");
	int rc;
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p))
		line[strcspn(line, "\n")] = '\0';
	rc = pclose(p);
	if (rc != 0 || strlen(line) != GIT_OID_HEXSZ)
		return -1;
	memcpy(out, line, GIT_OID_HEXSZ + 1);
	return 0;
}

int main(void)
{
	const char *url = getenv("LAB_GIT_URL");
	char before[GIT_OID_HEXSZ + 1] = "", after[GIT_OID_HEXSZ + 1] = "", made[GIT_OID_HEXSZ + 1] = "";
	git_repository *repo = NULL;
	git_remote *remote = NULL;
	git_object *blob = NULL;
	char *dir = NULL;

	if (!url || !getenv("LAB_LIB")) {
		fprintf(stderr, "t_lab_git: LAB_GIT_URL and LAB_LIB must be set (run through tests/e2e/run.sh)\n");
		return 1;
	}
	git_libgit2_init();
	dir = tu_tmpdir("t_lab_git");
	if (!dir)
		return 1;

	if (git_clone(&repo, url, dir, NULL) < 0) {
		CHECK(0, "clone %s: %s", url, git_msg());
		goto out;
	}
	CHECK(origin_main(before, repo) == 0, "no refs/remotes/origin/main after clone: %s", git_msg());

	if (git_revparse_single(&blob, repo, "refs/remotes/origin/main:config/deploy.yml") < 0) {
		CHECK(0, "config/deploy.yml is not in the served tree: %s", git_msg());
	} else {
		const char *text = git_blob_rawcontent((git_blob *)blob);
		size_t len = (size_t)git_blob_rawsize((git_blob *)blob);
		const char *reg = getenv("LAB_REGISTRY");
		CHECK(len > 0 && memmem(text, len, "service: optimus", 16) != NULL, "deploy.yml lacks service: optimus");
		CHECK(reg && memmem(text, len, reg, strlen(reg)) != NULL, "deploy.yml does not name LAB_REGISTRY");
	}

	if (lab_commit(made) < 0) {
		CHECK(0, "lab_commit failed or printed no sha");
		goto out;
	}
	CHECK(strcmp(made, before) != 0, "lab_commit did not make a new commit");

	if (git_remote_lookup(&remote, repo, "origin") < 0 || git_remote_fetch(remote, NULL, NULL, NULL) < 0) {
		CHECK(0, "fetch from %s: %s", url, git_msg());
		goto out;
	}
	CHECK(origin_main(after, repo) == 0, "no refs/remotes/origin/main after fetch: %s", git_msg());
	CHECK(strcmp(after, made) == 0, "after fetch origin/main is %s, lab_commit made %s", after, made);
	if (!e2e_failed)
		printf("t_lab_git: cloned %s at %.12s; lab_commit %.12s seen after fetch\n", url, before, made);

out:
	git_object_free(blob);
	git_remote_free(remote);
	git_repository_free(repo);
	git_libgit2_shutdown();
	tu_rm_rf(dir);
	free(dir);
	return e2e_finish("t_lab_git");
}
