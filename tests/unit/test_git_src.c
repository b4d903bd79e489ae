/*
 * The git source against real repositories made with the git CLI in a temp
 * directory (HOME points there, so no user or system git config is read).
 * URLs are file:// (no network); one test runs a loopback HTTP responder
 * in-process to check credential handling.
 */
#include "providers/git_src.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/source.h"
#include "state/util.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

static char *T; /* temp root, removed at exit */

static void cleanup(void)
{
	if (T) {
		tu_rm_rf(T);
		free(T);
	}
}

static void setup(void)
{
	char *s;

	if (T)
		return;
	T = tu_tmpdir("gitsrc");
	if (!T)
		exit(1);
	atexit(cleanup);
	setenv("HOME", T, 1);
	s = xasprintf("%s/.config", T);
	setenv("XDG_CONFIG_HOME", s, 1);
	free(s);
	unsetenv("XDG_CACHE_HOME");
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "t", 1);
	setenv("GIT_AUTHOR_EMAIL", "t@example.invalid", 1);
	setenv("GIT_COMMITTER_NAME", "t", 1);
	setenv("GIT_COMMITTER_EMAIL", "t@example.invalid", 1);
	unsetenv("GIT_DIR");
	unsetenv("GIT_WORK_TREE");
}

static char *tdir(const char *name)
{
	setup();
	return xasprintf("%s/%s", T, name);
}

/*
 * A working tree at dir: commit one has config/deploy.yml "service: a" (tag
 * v1, annotated tag v1a), commit two "service: b" on main. sha1/sha2 get the
 * commits (caller frees).
 */
static int make_repo(const char *dir, char **sha1, char **sha2)
{
	if (tu_sh("git init -q -b main '%s' && cd '%s' && mkdir -p config .kamal && "
	       "printf 'service: a\\n' > config/deploy.yml && printf 'X=1\\n' > .kamal/secrets && "
	       "git add . && git commit -qm one && git tag v1 && git tag -a v1a -m ann && "
	       "printf 'service: b\\n' > config/deploy.yml && git commit -qam two",
	       dir, dir) < 0)
		return -1;
	*sha1 = tu_sh_line("git -C '%s' rev-parse v1", dir);
	*sha2 = tu_sh_line("git -C '%s' rev-parse main", dir);
	return strlen(*sha1) == 40 && strlen(*sha2) == 40 ? 0 : -1;
}

static char *read_at(struct git_src *g, const char *sha, const char *path, int *rc_out)
{
	struct source *s = NULL;
	char *out = NULL;
	struct plumb_err err = { 0 };
	size_t len = 0;
	int rc;

	rc = git_src_source_at(g, sha, &s, &err);
	if (rc == 0)
		rc = source_read(s, path, &out, &len, &err);
	if (rc_out)
		*rc_out = rc;
	if (rc < 0) {
		free(out);
		out = xstrdup(plumb_err_msg(&err));
	}
	source_free(s);
	return out;
}

/* ---- tests ------------------------------------------------------------ */

T_TEST(redact_urls_and_secret)
{
	char *s;

	s = git_src_redact("failed to fetch https://user:tok@host/x.git: 401", NULL);
	T_STREQ(s, "failed to fetch https://***@host/x.git: 401");
	free(s);
	s = git_src_redact("https://tok@host/x and ssh://git@h:22/y, file:///a/b", NULL);
	T_STREQ(s, "https://***@host/x and ssh://***@h:22/y, file:///a/b");
	free(s);
	s = git_src_redact("'https://u:p@h' then http://h2/p@x", NULL);
	T_STREQ(s, "'https://***@h' then http://h2/p@x");
	free(s);
	s = git_src_redact("token s3cr3t leaked twice: s3cr3t", "s3cr3t");
	T_STREQ(s, "token *** leaked twice: ***");
	free(s);
	s = git_src_redact("no url here", "");
	T_STREQ(s, "no url here");
	free(s);
}

T_TEST(resolve_refs_in_working_tree)
{
	char *dir = tdir("wt"), *sha1 = NULL, *sha2 = NULL;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { .location = dir };
	struct git_src *g = NULL;
	char sha[41], shortsha[8];
	static const char *const to2[] = { "HEAD", "main", "refs/heads/main", NULL };
	static const char *const to1[] = { "v1", "v1a", "refs/tags/v1", "refs/tags/v1a", NULL };

	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_CHECK(!git_src_is_remote(g));
	for (size_t i = 0; to2[i]; i++) {
		T_INTEQ(git_src_resolve(g, to2[i], sha, &err), 0);
		T_STREQ(sha, sha2);
	}
	for (size_t i = 0; to1[i]; i++) {
		T_INTEQ(git_src_resolve(g, to1[i], sha, &err), 0);
		T_STREQ(sha, sha1);
	}
	T_INTEQ(git_src_resolve(g, sha1, sha, &err), 0);
	T_STREQ(sha, sha1);
	snprintf(shortsha, sizeof(shortsha), "%.7s", sha1);
	T_INTEQ(git_src_resolve(g, shortsha, sha, &err), 0);
	T_STREQ(sha, sha1);
	T_INTEQ(git_src_resolve(g, NULL, sha, &err), 0); /* default: HEAD */
	T_STREQ(sha, sha2);

	T_INTEQ(git_src_resolve(g, "nope", sha, &err), PLUMB_ENOTFOUND);
	T_CONTAINS(err.msg, "no branch, tag or commit named 'nope'");
	T_INTEQ(err.code, PLUMB_ENOTFOUND); /* the carrier holds the code returned */
	plumb_err_reset(&err);
	/* revision expressions are not refs */
	T_INTEQ(git_src_resolve(g, "main~1", sha, &err), PLUMB_ENOTFOUND);
	plumb_err_reset(&err);
	T_INTEQ(git_src_resolve(g, "refs/heads/nope", sha, &err), PLUMB_ENOTFOUND);
	plumb_err_reset(&err);
	git_src_free(g);

	/* opts.ref is the default for resolve */
	o.ref = "v1";
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_resolve(g, NULL, sha, &err), 0);
	T_STREQ(sha, sha1);
	git_src_free(g);
	free(sha1);
	free(sha2);
	free(dir);
}

T_TEST(read_config_at_commits)
{
	char *dir = tdir("rd"), *sha1 = NULL, *sha2 = NULL, *s, *want;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { .location = dir };
	struct git_src *g = NULL;
	struct source *src = NULL;
	int rc;

	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);

	s = read_at(g, sha1, "config/deploy.yml", &rc);
	T_INTEQ(rc, 0);
	T_STREQ(s, "service: a\n");
	free(s);
	s = read_at(g, sha2, "config/deploy.yml", &rc);
	T_STREQ(s, "service: b\n");
	free(s);
	s = read_at(g, sha2, ".kamal/secrets", &rc);
	T_STREQ(s, "X=1\n");
	free(s);
	/* the working tree is not what is read */
	T_REQUIRE(tu_sh("printf 'service: dirty\\n' > '%s/config/deploy.yml'", dir) == 0);
	s = read_at(g, sha2, "config/deploy.yml", &rc);
	T_STREQ(s, "service: b\n");
	free(s);

	s = read_at(g, sha2, "config/deploy.staging.yml", &rc);
	T_INTEQ(rc, PLUMB_ENOTFOUND);
	free(s);
	s = read_at(g, sha2, "config/deploy.yml/x", &rc);
	T_INTEQ(rc, PLUMB_ENOTFOUND);
	free(s);
	s = read_at(g, sha2, "config", &rc);
	T_INTEQ(rc, PLUMB_EOUTSIDE);
	T_CONTAINS(s, "is a directory");
	free(s);
	s = read_at(g, sha2, "./config//deploy.yml", &rc);
	T_STREQ(s, "service: b\n");
	free(s);

	T_REQUIRE(git_src_source_at(g, sha1, &src, &err) == 0);
	T_CHECK(src->root_dir == NULL);
	want = xasprintf("%s@%.7s", dir, sha1);
	T_STREQ(src->label, want);
	free(want);
	/* path traversal: refused by source_read and by the git source itself */
	T_INTEQ(source_read(src, "../rd/config/deploy.yml", &s, &(size_t){ 0 }, &err), PLUMB_EOUTSIDE);
	T_CONTAINS(err.msg, "outside the repository");
	plumb_err_reset(&err);
	s = NULL;
	T_INTEQ(src->read(src, "config/../../x", &s, &(size_t){ 0 }, &err), PLUMB_EOUTSIDE);
	T_CONTAINS(err.msg, "outside the repository");
	plumb_err_reset(&err);
	T_INTEQ(src->read(src, "/etc/passwd", &s, &(size_t){ 0 }, &err), PLUMB_EOUTSIDE);
	plumb_err_reset(&err);
	source_free(src);
	src = NULL;

	/* the source outlives the git_src */
	T_REQUIRE(git_src_source_at(g, sha1, &src, &err) == 0);
	git_src_free(g);
	g = NULL;
	T_INTEQ(source_read(src, "config/deploy.yml", &s, &(size_t){ 0 }, &err), 0);
	T_STREQ(s, "service: a\n");
	free(s);
	source_free(src);

	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_CHECK(git_src_source_at(g, "zzzz", &src, &err) < 0);
	T_CONTAINS(err.msg, "is not a commit sha");
	plumb_err_reset(&err);
	T_CHECK(git_src_source_at(g, "0123456789012345678901234567890123456789", &src, &err) < 0);
	T_CHECK(err.code < 0 && err.msg[0]);
	plumb_err_reset(&err);
	git_src_free(g);
	free(sha1);
	free(sha2);
	free(dir);
}

T_TEST(symlinks_and_size_limit)
{
	char *dir = tdir("ln"), *sha1 = NULL, *sha2 = NULL, *s, *head;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { .location = dir };
	struct git_src *g = NULL;
	int rc;

	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	T_REQUIRE(tu_sh("cd '%s' && mkdir shared && printf 'env: 1\\n' > shared/common.yml && "
		     "ln -s ../shared/common.yml config/deploy.common.yml && "
		     "ln -s deploy.common.yml config/deploy.chain.yml && "
		     "ln -s ../../../etc/passwd config/deploy.evil.yml && "
		     "ln -s /etc/passwd config/deploy.abs.yml && "
		     "head -c %u /dev/zero > config/big.yml && "
		     "head -c %u /dev/zero > config/max.yml && "
		     "git add . && git commit -qm links",
		     dir, SOURCE_MAX_FILE + 1, SOURCE_MAX_FILE) == 0);
	head = tu_sh_line("git -C '%s' rev-parse HEAD", dir);
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	s = read_at(g, head, "config/deploy.common.yml", &rc);
	T_STREQ(s, "env: 1\n");
	free(s);
	s = read_at(g, head, "config/deploy.chain.yml", &rc);
	T_STREQ(s, "env: 1\n");
	free(s);
	s = read_at(g, head, "config/deploy.evil.yml", &rc);
	T_INTEQ(rc, PLUMB_EOUTSIDE);
	T_CONTAINS(s, "symbolic link points outside the repository");
	free(s);
	s = read_at(g, head, "config/deploy.abs.yml", &rc);
	T_INTEQ(rc, PLUMB_EOUTSIDE);
	T_CONTAINS(s, "outside the repository");
	free(s);
	s = read_at(g, head, "config/big.yml", &rc);
	T_INTEQ(rc, PLUMB_ETOOBIG);
	T_CONTAINS(s, "file too large");
	free(s);
	s = read_at(g, head, "config/max.yml", &rc);
	T_INTEQ(rc, 0);
	free(s);
	git_src_free(g);
	free(head);
	free(sha1);
	free(sha2);
	free(dir);
}

T_TEST(bare_repository)
{
	char *dir = tdir("bw"), *bare = tdir("bw.git"), *sha1 = NULL, *sha2 = NULL;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { 0 };
	struct git_src *g = NULL;
	struct source *src = NULL;
	char sha[41];
	int dirty = 0, rc;
	char *s;

	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	T_REQUIRE(tu_sh("git clone -q --bare '%s' '%s'", dir, bare) == 0);
	o.location = bare;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_resolve(g, "main", sha, &err), 0);
	T_STREQ(sha, sha2);
	T_INTEQ(git_src_resolve(g, "v1a", sha, &err), 0);
	T_STREQ(sha, sha1);
	s = read_at(g, sha1, "config/deploy.yml", &rc);
	T_STREQ(s, "service: a\n");
	free(s);
	T_CHECK(git_src_worktree(g, &src, sha, &dirty, &err) < 0);
	T_CONTAINS(err.msg, "bare repository has no working tree");
	plumb_err_reset(&err);
	git_src_free(g);

	/* not a repository: a clear message, no discovery upwards */
	o.location = T;
	T_CHECK(git_src_open(&g, &o, &err) < 0);
	T_CONTAINS(err.msg, "not a git repository");
	plumb_err_reset(&err);
	free(sha1);
	free(sha2);
	free(dir);
	free(bare);
}

/* A commit's files written out (hooks to run): from a bare repository, the
 * commit's content and modes, not the branch head's; the index untouched; an
 * existing directory refused. */
T_TEST(export_a_commit)
{
	char *dir = tdir("ex"), *bare = tdir("ex.git"), *out = tdir("ex-out"), *out2 = tdir("ex-out2");
	char *sha1 = NULL, *sha2 = NULL, *s;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { 0 };
	struct git_src *g = NULL;

	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	T_REQUIRE(tu_sh("cd '%s' && mkdir -p .kamal/hooks && printf '#!/bin/sh\\nexit 0\\n' > "
			".kamal/hooks/pre-deploy && chmod 755 .kamal/hooks/pre-deploy && git add . && "
			"git commit -qm three", dir) == 0);
	T_REQUIRE(tu_sh("git clone -q --bare '%s' '%s'", dir, bare) == 0);
	o.location = bare;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_export(g, sha1, out, &err), 0);
	s = tu_sh_line("cat '%s/config/deploy.yml'", out);
	T_STREQ(s, "service: a");
	free(s);
	s = tu_sh_line("git -C '%s' rev-parse main", dir);
	T_INTEQ(git_src_export(g, s, out2, &err), 0);
	free(s);
	s = tu_sh_line("stat -c %%a '%s/.kamal/hooks/pre-deploy'", out2);
	T_STREQ(s, "755");
	free(s);
	T_CHECK(tu_sh("test ! -e '%s/index'", bare) == 0);
	T_CHECK(git_src_export(g, sha1, out, &err) < 0); /* exists */
	T_CONTAINS(err.msg, out);
	plumb_err_reset(&err);
	git_src_free(g);
	free(sha1);
	free(sha2);
	free(dir);
	free(bare);
	free(out);
	free(out2);
}

T_TEST(working_tree_mode_and_dirty)
{
	char *dir = tdir("dt"), *sha1 = NULL, *sha2 = NULL, *s = NULL;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { .location = dir };
	struct git_src *g = NULL;
	struct source *src = NULL;
	char head[41];
	int dirty = -1;
	size_t len;

	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	T_REQUIRE(tu_sh("cd '%s' && printf 'log/\\n' > .gitignore && git add .gitignore && "
		     "git commit -qm ignore", dir) == 0);
	free(sha2);
	sha2 = tu_sh_line("git -C '%s' rev-parse HEAD", dir);
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);

	T_REQUIRE(git_src_worktree(g, &src, head, &dirty, &err) == 0);
	T_STREQ(head, sha2);
	T_INTEQ(dirty, 0);
	T_STREQ(src->root_dir, dir);
	source_free(src);

	/* ignored files do not make the tree dirty */
	T_REQUIRE(tu_sh("mkdir -p '%s/log' && echo x > '%s/log/a.log'", dir, dir) == 0);
	T_REQUIRE(git_src_worktree(g, &src, head, &dirty, &err) == 0);
	T_INTEQ(dirty, 0);
	source_free(src);

	/* an untracked file does */
	T_REQUIRE(tu_sh("echo x > '%s/new.txt'", dir) == 0);
	T_REQUIRE(git_src_worktree(g, &src, head, &dirty, &err) == 0);
	T_INTEQ(dirty, 1);
	source_free(src);
	T_REQUIRE(tu_sh("rm '%s/new.txt'", dir) == 0);

	/* so does a modified file; and the source serves the file on disk */
	T_REQUIRE(tu_sh("printf 'service: edited\\n' > '%s/config/deploy.yml'", dir) == 0);
	T_REQUIRE(git_src_worktree(g, &src, head, &dirty, &err) == 0);
	T_INTEQ(dirty, 1);
	T_STREQ(head, sha2);
	T_INTEQ(source_read(src, "config/deploy.yml", &s, &len, &err), 0);
	T_STREQ(s, "service: edited\n");
	free(s);
	source_free(src);

	/* and a staged change */
	T_REQUIRE(tu_sh("cd '%s' && git checkout -q config/deploy.yml && echo y > staged && "
		     "git add staged", dir) == 0);
	T_REQUIRE(git_src_worktree(g, &src, head, &dirty, &err) == 0);
	T_INTEQ(dirty, 1);
	source_free(src);
	git_src_free(g);

	/* a fresh repository with no commit */
	free(dir);
	dir = tdir("empty");
	T_REQUIRE(tu_sh("git init -q '%s'", dir) == 0);
	o.location = dir;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_worktree(g, &src, head, &dirty, &err), PLUMB_ENOTFOUND);
	T_CONTAINS(err.msg, "no commit yet");
	plumb_err_reset(&err);
	T_INTEQ(git_src_resolve(g, NULL, head, &err), PLUMB_ENOTFOUND);
	plumb_err_reset(&err);
	git_src_free(g);
	free(sha1);
	free(sha2);
	free(dir);
}

T_TEST(url_clone_fetch_sees_new_commit)
{
	char *dir = tdir("uw"), *bare = tdir("u.git"), *cache = tdir("cache"), *push = tdir("upush");
	char *sha1 = NULL, *sha2 = NULL, *sha3 = NULL, *s, *url;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { 0 };
	struct git_src *g = NULL;
	char sha[41];
	size_t bytes = 0;
	int rc;

	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	T_REQUIRE(tu_sh("git clone -q --bare '%s' '%s'", dir, bare) == 0);
	url = xasprintf("file://%s", bare);
	o.location = url;
	o.cache_dir = cache;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_CHECK(git_src_is_remote(g));
	T_CHECK(strncmp(git_src_repo_path(g), cache, strlen(cache)) == 0);
	/* nothing resolves before the first fetch */
	T_INTEQ(git_src_resolve(g, NULL, sha, &err), PLUMB_ENOTFOUND);
	T_CONTAINS(err.msg, "not fetched yet");
	plumb_err_reset(&err);

	T_REQUIRE(git_src_fetch(g, &bytes, &err) == 0);
	T_CHECK(bytes > 0);
	T_INTEQ(git_src_resolve(g, NULL, sha, &err), 0);
	T_STREQ(sha, sha2);
	T_INTEQ(git_src_resolve(g, "main", sha, &err), 0);
	T_STREQ(sha, sha2);
	T_INTEQ(git_src_resolve(g, "refs/heads/main", sha, &err), 0);
	T_STREQ(sha, sha2);
	T_INTEQ(git_src_resolve(g, "v1a", sha, &err), 0);
	T_STREQ(sha, sha1);
	s = read_at(g, sha1, "config/deploy.yml", &rc);
	T_STREQ(s, "service: a\n");
	free(s);
	s = read_at(g, sha2, "config/deploy.yml", &rc);
	T_STREQ(s, "service: b\n");
	free(s);
	{
		struct source *src = NULL;
		char *want = xasprintf("%s@%.7s", url, sha2);

		T_REQUIRE(git_src_source_at(g, sha2, &src, &err) == 0);
		T_STREQ(src->label, want);
		free(want);
		source_free(src);
	}

	/* a commit pushed to the origin is seen after fetch, not before */
	T_REQUIRE(tu_sh("git clone -q '%s' '%s' && cd '%s' && printf 'service: c\\n' > "
		     "config/deploy.yml && git commit -qam three && git push -q origin main && "
		     "git push -q origin :refs/tags/v1",
		     bare, push, push) == 0);
	sha3 = tu_sh_line("git -C '%s' rev-parse HEAD", push);
	T_INTEQ(git_src_resolve(g, "main", sha, &err), 0);
	T_STREQ(sha, sha2);
	T_REQUIRE(git_src_fetch(g, &bytes, &err) == 0);
	T_INTEQ(git_src_resolve(g, "main", sha, &err), 0);
	T_STREQ(sha, sha3);
	s = read_at(g, sha3, "config/deploy.yml", &rc);
	T_STREQ(s, "service: c\n");
	free(s);
	/* a tag deleted on the remote is pruned */
	T_INTEQ(git_src_resolve(g, "v1", sha, &err), PLUMB_ENOTFOUND);
	plumb_err_reset(&err);
	git_src_free(g);

	/* reopening the same URL finds the cache: no fetch needed */
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_resolve(g, "HEAD", sha, &err), 0);
	T_STREQ(sha, sha3);
	git_src_free(g);

	free(sha1);
	free(sha2);
	free(sha3);
	free(url);
	free(dir);
	free(bare);
	free(cache);
	free(push);
}

T_TEST(url_pull_request_ref)
{
	char *dir = tdir("pw"), *bare = tdir("p.git"), *cache = tdir("pcache");
	char *sha1 = NULL, *sha2 = NULL, *pr = NULL, *s, *url;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { 0 };
	struct git_src *g = NULL;
	char sha[41];
	int rc;

	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	/* a commit reachable only from refs/pull/7/head, as on a forge */
	T_REQUIRE(tu_sh("cd '%s' && git checkout -qb feature && printf 'service: pr\\n' > "
		     "config/deploy.yml && git commit -qam pr && git checkout -q main && "
		     "git clone -q --bare . '%s' && git -C '%s' update-ref refs/pull/7/head feature && "
		     "git -C '%s' branch -qD feature",
		     dir, bare, bare, bare) == 0);
	pr = tu_sh_line("git -C '%s' rev-parse feature", dir);
	url = xasprintf("file://%s", bare);
	o.location = url;
	o.cache_dir = cache;

	/* without asking for it, the pull ref is not fetched */
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_REQUIRE(git_src_fetch(g, NULL, &err) == 0);
	T_INTEQ(git_src_resolve(g, "refs/pull/7/head", sha, &err), PLUMB_ENOTFOUND);
	plumb_err_reset(&err);
	git_src_free(g);

	o.ref = "refs/pull/7/head";
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_REQUIRE(git_src_fetch(g, NULL, &err) == 0);
	T_INTEQ(git_src_resolve(g, NULL, sha, &err), 0);
	T_STREQ(sha, pr);
	s = read_at(g, sha, "config/deploy.yml", &rc);
	T_STREQ(s, "service: pr\n");
	free(s);
	/* a second fetch keeps it (pruning does not drop it) and main too */
	T_REQUIRE(git_src_fetch(g, NULL, &err) == 0);
	T_INTEQ(git_src_resolve(g, NULL, sha, &err), 0);
	T_STREQ(sha, pr);
	T_INTEQ(git_src_resolve(g, "main", sha, &err), 0);
	T_STREQ(sha, sha2);
	git_src_free(g);

	o.ref = "refs/pull/*/head";
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_CHECK(git_src_fetch(g, NULL, &err) < 0);
	T_CONTAINS(err.msg, "not a valid ref name");
	plumb_err_reset(&err);
	git_src_free(g);

	free(sha1);
	free(sha2);
	free(pr);
	free(url);
	free(dir);
	free(bare);
	free(cache);
}

T_TEST(default_cache_dir_from_xdg)
{
	char *dir = tdir("xw"), *bare = tdir("x.git"), *xdg = tdir("xdg");
	char *sha1 = NULL, *sha2 = NULL, *url, *want;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { 0 };
	struct git_src *g = NULL;

	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	T_REQUIRE(tu_sh("git clone -q --bare '%s' '%s'", dir, bare) == 0);
	url = xasprintf("file://%s", bare);
	setenv("XDG_CACHE_HOME", xdg, 1);
	o.location = url;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	want = xasprintf("%s/plumb/repos/", xdg);
	T_CHECK(strncmp(git_src_repo_path(g), want, strlen(want)) == 0);
	T_CONTAINS(git_src_repo_path(g), "x.git-");
	unsetenv("XDG_CACHE_HOME");
	git_src_free(g);
	free(want);
	free(url);
	free(sha1);
	free(sha2);
	free(dir);
	free(bare);
	free(xdg);
}

T_TEST(token_options)
{
	char *cache = tdir("tcache"), *tokfile = tdir("tok"), *empty = tdir("tokempty");
	struct git_src_opts o = { .location = "https://example.invalid/x.git" };
	struct git_src *g = NULL;
	struct plumb_err err = { 0 };

	o.cache_dir = cache;
	o.token_env = "PLUMB_TEST_TOKEN_UNSET";
	unsetenv("PLUMB_TEST_TOKEN_UNSET");
	T_CHECK(git_src_open(&g, &o, &err) < 0);
	T_CONTAINS(err.msg, "PLUMB_TEST_TOKEN_UNSET is not set");
	plumb_err_reset(&err);

	T_REQUIRE(tu_sh("printf 'filetok\\n' > '%s' && : > '%s'", tokfile, empty) == 0);
	o.token_file = tokfile;
	T_CHECK(git_src_open(&g, &o, &err) == 0);
	git_src_free(g);
	g = NULL;
	o.token_file = empty;
	T_CHECK(git_src_open(&g, &o, &err) < 0);
	T_CONTAINS(err.msg, "empty");
	plumb_err_reset(&err);

	o.token_file = NULL;
	o.token_env = NULL;
	o.ssh_key = "/nonexistent/id_ed25519";
	T_CHECK(git_src_open(&g, &o, &err) < 0);
	T_CONTAINS(err.msg, "ssh key /nonexistent/id_ed25519");
	plumb_err_reset(&err);
	o.ssh_key = NULL;
	o.ssh_known_hosts = "/nonexistent/known_hosts";
	T_CHECK(git_src_open(&g, &o, &err) < 0);
	T_CONTAINS(err.msg, "known_hosts /nonexistent/known_hosts");
	plumb_err_reset(&err);
	/* a CA file that cannot be loaded is an error at open, naming it */
	o.ssh_known_hosts = NULL;
	o.ca_file = "/nonexistent/ca.pem";
	T_CHECK(git_src_open(&g, &o, &err) < 0);
	T_CONTAINS(err.msg, "CA locations (file /nonexistent/ca.pem");
	plumb_err_reset(&err);
	free(cache);
	free(tokfile);
	free(empty);
}

/* A loopback HTTP server that answers 401 to everything, counts requests and
 * keeps the last Authorization header. */
struct http401 {
	int lfd;
	int port;
	int requests;
	volatile int stop;
	char auth[256];
	pthread_t th;
};

static void *http401_main(void *arg)
{
	struct http401 *h = arg;
	static const char resp[] = "HTTP/1.1 401 Unauthorized\r\n"
				   "WWW-Authenticate: Basic realm=\"t\"\r\n"
				   "Content-Length: 0\r\nConnection: close\r\n\r\n";

	for (;;) {
		char buf[4096];
		size_t n = 0;
		ssize_t r;
		int c = accept(h->lfd, NULL, NULL);
		char *a;

		if (c < 0 || h->stop) {
			if (c >= 0)
				close(c);
			break;
		}
		while (n < sizeof(buf) - 1 && (r = read(c, buf + n, sizeof(buf) - 1 - n)) > 0) {
			n += (size_t)r;
			buf[n] = '\0';
			if (strstr(buf, "\r\n\r\n"))
				break;
		}
		buf[n] = '\0';
		h->requests++;
		if ((a = strstr(buf, "Authorization: ")) != NULL)
			snprintf(h->auth, sizeof(h->auth), "%.*s", (int)strcspn(a, "\r\n"), a);
		if (write(c, resp, sizeof(resp) - 1) < 0)
			perror("write");
		close(c);
	}
	return NULL;
}

static int http401_start(struct http401 *h)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);

	memset(h, 0, sizeof(*h));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	h->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (h->lfd < 0 || bind(h->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(h->lfd, 8) < 0 || getsockname(h->lfd, (struct sockaddr *)&a, &alen) < 0)
		return -1;
	h->port = ntohs(a.sin_port);
	return pthread_create(&h->th, NULL, http401_main, h) == 0 ? 0 : -1;
}

static void http401_stop(struct http401 *h)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int c = socket(AF_INET, SOCK_STREAM, 0);

	h->stop = 1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)h->port);
	if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
		shutdown(h->lfd, SHUT_RDWR);
	if (c >= 0)
		close(c);
	pthread_join(h->th, NULL);
	close(h->lfd);
}

T_TEST(https_auth_one_attempt_and_no_token_in_errors)
{
	char *cache = tdir("hcache"), *url;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { 0 };
	struct git_src *g = NULL;
	struct http401 h;
	int rc;

	T_REQUIRE(http401_start(&h) == 0);
	setenv("PLUMB_TEST_TOKEN", "tok-SECRET-123", 1);
	url = xasprintf("http://127.0.0.1:%d/x.git", h.port);
	o.location = url;
	o.cache_dir = cache;
	o.token_env = "PLUMB_TEST_TOKEN";
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	rc = git_src_fetch(g, NULL, &err);
	T_INTEQ(rc, PLUMB_EAUTH);
	T_CONTAINS(err.msg, "authentication failed");
	T_NOT_CONTAINS(err.msg, "tok-SECRET-123");
	/* one request without credentials, one with; then we stop */
	T_CHECK(h.requests >= 1 && h.requests <= 2);
	/* base64("x-access-token:tok-SECRET-123") */
	T_STREQ(h.auth, "Authorization: Basic eC1hY2Nlc3MtdG9rZW46dG9rLVNFQ1JFVC0xMjM=");
	plumb_err_reset(&err);
	git_src_free(g);
	free(url);

	/* a token in the URL's userinfo never shows in messages or labels */
	url = xasprintf("http://user:tok-SECRET-123@127.0.0.1:%d/x.git", h.port);
	o.location = url;
	o.token_env = NULL;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_CHECK(git_src_fetch(g, NULL, &err) < 0);
	T_NOT_CONTAINS(err.msg, "tok-SECRET-123");
	T_CONTAINS(err.msg, "http://***@127.0.0.1");
	plumb_err_reset(&err);
	T_NOT_CONTAINS(git_src_repo_path(g), "SECRET");
	git_src_free(g);
	free(url);

	/* no credentials configured: said plainly */
	url = xasprintf("http://127.0.0.1:%d/x.git", h.port);
	o.location = url;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_fetch(g, NULL, &err), PLUMB_EAUTH);
	T_CONTAINS(err.msg, "none are configured");
	plumb_err_reset(&err);
	git_src_free(g);
	free(url);

	http401_stop(&h);
	unsetenv("PLUMB_TEST_TOKEN");
	free(cache);
}

T_TEST(foreign_owner_is_explained)
{
	char *dir = tdir("fo"), *sha1 = NULL, *sha2 = NULL, *s;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { .location = dir };
	struct git_src *g = NULL;
	char sha[41];
	int rc;

	if (geteuid() != 0) {
		free(dir);
		T_SKIP("chown to another uid needs root (running as uid %d)", (int)geteuid());
	}
	T_REQUIRE(make_repo(dir, &sha1, &sha2) == 0);
	T_REQUIRE(tu_sh("chown -R 65534:65534 '%s'", dir) == 0);
	rc = git_src_open(&g, &o, &err);
	T_INTEQ(rc, PLUMB_EOWNER);
	T_CONTAINS(err.msg, "owned by another user (uid 65534");
	T_CONTAINS(err.msg, "safe.directory");
	T_CONTAINS(err.msg, "--allow-foreign-owner");
	plumb_err_reset(&err);

	o.allow_foreign_owner = 1;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_resolve(g, "main", sha, &err), 0);
	T_STREQ(sha, sha2);
	s = read_at(g, sha1, "config/deploy.yml", &rc);
	T_STREQ(s, "service: a\n");
	free(s);
	{
		struct source *src = NULL;
		int dirty = -1;

		T_INTEQ(git_src_worktree(g, &src, sha, &dirty, &err), 0);
		T_STREQ(sha, sha2);
		T_INTEQ(dirty, 0);
		source_free(src);
	}
	git_src_free(g);

	/* allowing it once leaves the check on for everyone else */
	o.allow_foreign_owner = 0;
	T_INTEQ(git_src_open(&g, &o, &err), PLUMB_EOWNER);
	plumb_err_reset(&err);

	/* git's own safe.directory is honoured */
	T_REQUIRE(tu_sh("git config --global --add safe.directory '%s'", dir) == 0);
	T_INTEQ(git_src_open(&g, &o, &err), 0);
	git_src_free(g);
	free(sha1);
	free(sha2);
	free(dir);
}

T_MAIN(T_CASE(redact_urls_and_secret), T_CASE(resolve_refs_in_working_tree),
       T_CASE(read_config_at_commits), T_CASE(symlinks_and_size_limit), T_CASE(bare_repository), T_CASE(export_a_commit),
       T_CASE(working_tree_mode_and_dirty), T_CASE(url_clone_fetch_sees_new_commit),
       T_CASE(url_pull_request_ref), T_CASE(default_cache_dir_from_xdg), T_CASE(token_options),
       T_CASE(https_auth_one_attempt_and_no_token_in_errors), T_CASE(foreign_owner_is_explained))
