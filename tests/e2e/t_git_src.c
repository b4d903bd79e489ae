/*
 * End to end: the git source against the lab's repository, served by a real
 * `git daemon` (LAB_GIT_URL) and on disk (LAB_GIT_BARE).
 *
 * The lab's main branch is left alone (other tests follow it through
 * lab_commit); new commits go to a branch and a refs/pull/N/head of their
 * own, pushed with the git CLI and deleted at the end.
 */
#include "providers/git_src.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "providers/transport.h" /* prov_now_ms */
#include "state/source.h"
#include "state/util.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

static const char *git_url, *git_bare;
static char *tmp;

static char *read_at(struct git_src *g, const char *sha, const char *path, int *rc_out)
{
	struct source *s = NULL;
	char *out = NULL;
	struct plumb_err err = { 0 };
	size_t len = 0;
	int rc = git_src_source_at(g, sha, &s, &err);

	if (rc == 0)
		rc = source_read(s, path, &out, &len, &err);
	*rc_out = rc;
	if (rc < 0) {
		fprintf(stderr, "  %s\n", plumb_err_msg(&err));
		free(out);
		out = NULL;
	}
	plumb_err_reset(&err);
	source_free(s);
	return out;
}

/* config/deploy.yml at sha, as git itself shows it (caller frees). */
static char *git_show(const char *sha, const char *path)
{
	char *cmd = xasprintf("git --git-dir='%s' show '%s:%s'", git_bare, sha, path);
	struct sbuf sb;
	char buf[4096];
	size_t n;
	FILE *f = popen(cmd, "r");
	char *r;

	sbuf_init(&sb, SOURCE_MAX_FILE);
	while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		sbuf_add(&sb, buf, n);
	if (f)
		pclose(f);
	free(cmd);
	r = sbuf_detach(&sb);
	sbuf_release(&sb);
	return r;
}

T_TEST(clone_and_read_head)
{
	char *cache = xasprintf("%s/cache1", tmp), *want_sha, *want, *got;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { .location = git_url };
	struct git_src *g = NULL;
	char sha[41];
	size_t bytes = 0;
	double t0;
	int rc;

	o.cache_dir = cache;
	want_sha = tu_sh_line("git --git-dir='%s' rev-parse main", git_bare);
	want = git_show(want_sha, "config/deploy.yml");
	T_REQUIRE(strlen(want) > 0);

	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	t0 = prov_now_ms();
	rc = git_src_fetch(g, &bytes, &err);
	printf("clone of %s: %.1f ms, %zu bytes\n", git_url, prov_now_ms() - t0, bytes);
	if (rc < 0)
		fprintf(stderr, "  %s\n", plumb_err_msg(&err));
	T_REQUIRE(rc == 0);
	T_INTEQ(git_src_resolve(g, "HEAD", sha, &err), 0);
	T_STREQ(sha, want_sha);
	got = read_at(g, sha, "config/deploy.yml", &rc);
	T_INTEQ(rc, 0);
	T_STREQ(got, want);
	free(got);
	got = read_at(g, sha, "config/deploy.nope.yml", &rc);
	T_INTEQ(rc, PLUMB_ENOTFOUND);
	free(got);

	/* a fetch with nothing new is cheap */
	t0 = prov_now_ms();
	T_INTEQ(git_src_fetch(g, &bytes, &err), 0);
	printf("no-op fetch: %.1f ms, %zu bytes\n", prov_now_ms() - t0, bytes);
	git_src_free(g);

	/* the same commit read straight from the bare repository */
	o.location = git_bare;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_resolve(g, "main", sha, &err), 0);
	T_STREQ(sha, want_sha);
	got = read_at(g, sha, "config/deploy.yml", &rc);
	T_STREQ(got, want);
	free(got);
	git_src_free(g);

	free(want);
	free(want_sha);
	free(cache);
}

T_TEST(pushed_commit_seen_after_fetch)
{
	char *cache = xasprintf("%s/cache2", tmp), *work = xasprintf("%s/work", tmp);
	char *branch = xasprintf("e2e-git-src-%d", (int)getpid());
	char *pull = xasprintf("refs/pull/%d/head", 9000 + (int)(getpid() % 1000));
	char *new_sha = NULL, *got;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { .location = git_url };
	struct git_src *g = NULL;
	char sha[41];
	size_t bytes = 0;
	double t0;
	int rc;

	o.cache_dir = cache;
	o.ref = pull;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_REQUIRE(git_src_fetch(g, NULL, &err) == 0);
	T_INTEQ(git_src_resolve(g, branch, sha, &err), PLUMB_ENOTFOUND);
	plumb_err_reset(&err);

	/* someone pushes a commit (and a forge-style pull ref) */
	T_REQUIRE(tu_sh("git clone -q '%s' '%s' && cd '%s' && git checkout -qb '%s' && "
		     "printf '# e2e %s\\n' >> config/deploy.yml && "
		     "git -c user.name=e2e -c user.email=e2e@plumb.invalid commit -qam 'e2e: git source' && "
		     "git push -q origin '%s' 'HEAD:%s'",
		     git_bare, work, work, branch, branch, branch, pull) == 0);
	new_sha = tu_sh_line("git -C '%s' rev-parse HEAD", work);

	/* not before the fetch */
	T_INTEQ(git_src_resolve(g, branch, sha, &err), PLUMB_ENOTFOUND);
	plumb_err_reset(&err);
	t0 = prov_now_ms();
	T_REQUIRE(git_src_fetch(g, &bytes, &err) == 0);
	printf("incremental fetch (1 commit): %.1f ms, %zu bytes\n", prov_now_ms() - t0, bytes);
	T_INTEQ(git_src_resolve(g, branch, sha, &err), 0);
	T_STREQ(sha, new_sha);
	T_INTEQ(git_src_resolve(g, NULL, sha, &err), 0); /* opts.ref = the pull ref */
	T_STREQ(sha, new_sha);
	got = read_at(g, sha, "config/deploy.yml", &rc);
	T_INTEQ(rc, 0);
	{
		char *mark = xasprintf("# e2e %s\n", branch);
		T_CONTAINS(got, mark);
		free(mark);
	}
	free(got);

	/* deleted on the remote: pruned from the cache at the next fetch */
	T_REQUIRE(tu_sh("git --git-dir='%s' update-ref -d 'refs/heads/%s' && "
		     "git --git-dir='%s' update-ref -d '%s'", git_bare, branch, git_bare, pull) == 0);
	T_REQUIRE(git_src_fetch(g, NULL, &err) == 0);
	T_INTEQ(git_src_resolve(g, branch, sha, &err), PLUMB_ENOTFOUND);
	plumb_err_reset(&err);
	git_src_free(g);

	free(new_sha);
	free(branch);
	free(pull);
	free(work);
	free(cache);
}

T_TEST(missing_repository_is_reported)
{
	char *cache = xasprintf("%s/cache3", tmp), *url, *slash;
	struct plumb_err err = { 0 };
	struct git_src_opts o = { 0 };
	struct git_src *g = NULL;

	/* same daemon, a repository that does not exist */
	url = xstrdup(git_url);
	slash = strrchr(url, '/');
	T_REQUIRE(slash != NULL);
	*slash = '\0';
	{
		char *u = xasprintf("%s/does-not-exist.git", url);
		free(url);
		url = u;
	}
	o.location = url;
	o.cache_dir = cache;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_CHECK(git_src_fetch(g, NULL, &err) < 0);
	T_CONTAINS(err.msg, url);
	fprintf(stderr, "  (expected) %s\n", plumb_err_msg(&err));
	plumb_err_reset(&err);
	git_src_free(g);
	free(url);
	free(cache);
}

/*
 * SSH: a real sshd of our own on loopback (the lab does not promise git on
 * its hosts) serving LAB_GIT_BARE; libgit2 (libssh2) with a key file and a
 * known_hosts file of our choosing - ~/.ssh is never read.
 */
T_TEST(ssh_key_and_known_hosts)
{
	char *d = xasprintf("%s/ssh", tmp), *cache = xasprintf("%s/cache4", tmp);
	char *url = NULL, *key = NULL, *kh = NULL, *khbad = NULL, *pidfile = NULL;
	struct plumb_err err = { 0 };
	char *want_sha = NULL, *pidstr = NULL;
	struct git_src_opts o = { 0 };
	struct git_src *g = NULL;
	char sha[41];
	int port = tu_free_port(), pid = 0, rc;
	double t0;

	if (geteuid() != 0 || access("/usr/sbin/sshd", X_OK) < 0) {
		free(cache);
		free(d);
		T_SKIP("needs root and /usr/sbin/sshd (uid %d)", (int)geteuid());
	}
	T_REQUIRE(port > 0);
	key = xasprintf("%s/id", d);
	kh = xasprintf("%s/known_hosts", d);
	khbad = xasprintf("%s/known_hosts_bad", d);
	pidfile = xasprintf("%s/sshd.pid", d);
	T_REQUIRE(tu_sh("set -e; mkdir -p '%s' /run/sshd; cd '%s'; "
		     "ssh-keygen -q -t ed25519 -N '' -f host; ssh-keygen -q -t ed25519 -N '' -f other; "
		     "ssh-keygen -q -t ed25519 -N '' -f id; cp id.pub authorized_keys; "
		     "printf '[127.0.0.1]:%d %%s\\n' \"$(cut -d' ' -f1,2 host.pub)\" > known_hosts; "
		     "printf '[127.0.0.1]:%d %%s\\n' \"$(cut -d' ' -f1,2 other.pub)\" > known_hosts_bad; "
		     "printf 'Port %d\\nListenAddress 127.0.0.1\\nHostKey %s/host\\n"
		     "AuthorizedKeysFile %s/authorized_keys\\nPidFile %s\\nStrictModes no\\n"
		     "PasswordAuthentication no\\nKbdInteractiveAuthentication no\\n"
		     "PermitRootLogin prohibit-password\\nUsePAM no\\n' > sshd_config; "
		     "/usr/sbin/sshd -f '%s/sshd_config' -E '%s/sshd.log'",
		     d, d, port, port, port, d, d, pidfile, d, d) == 0);
	for (int i = 0; i < 50 && !pid; i++) {
		free(pidstr);
		pidstr = tu_sh_line("cat '%s' 2>/dev/null", pidfile);
		pid = atoi(pidstr);
		if (!pid)
			usleep(100000);
	}
	T_REQUIRE(pid > 0);

	want_sha = tu_sh_line("git --git-dir='%s' rev-parse main", git_bare);
	url = xasprintf("ssh://root@127.0.0.1:%d%s", port, git_bare);
	o.location = url;
	o.cache_dir = cache;
	o.ssh_key = key;
	o.ssh_known_hosts = kh;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	t0 = prov_now_ms();
	rc = git_src_fetch(g, NULL, &err);
	printf("clone over ssh: %.1f ms\n", prov_now_ms() - t0);
	if (rc < 0)
		fprintf(stderr, "  %s\n", plumb_err_msg(&err));
	T_CHECK(rc == 0);
	T_INTEQ(git_src_resolve(g, "main", sha, &err), 0);
	T_STREQ(sha, want_sha);
	git_src_free(g);
	g = NULL;

	/* a host key that is not the one in known_hosts: refused, said plainly */
	o.ssh_known_hosts = khbad;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_fetch(g, NULL, &err), PLUMB_EHOSTKEY);
	T_CONTAINS(err.msg, "does not match");
	plumb_err_reset(&err);
	git_src_free(g);
	g = NULL;

	/* a client key the server does not know: one attempt, PLUMB_EAUTH */
	free(key);
	key = xasprintf("%s/other", d);
	o.ssh_key = key;
	o.ssh_known_hosts = kh;
	T_REQUIRE(git_src_open(&g, &o, &err) == 0);
	T_INTEQ(git_src_fetch(g, NULL, &err), PLUMB_EAUTH);
	T_CONTAINS(err.msg, "authentication failed");
	plumb_err_reset(&err);
	git_src_free(g);
	g = NULL;
	if (pid > 0)
		kill(pid, SIGTERM);
	free(pidstr);
	free(want_sha);
	free(url);
	free(key);
	free(kh);
	free(khbad);
	free(pidfile);
	free(cache);
	free(d);
}

static const struct t_case cases[] = { T_CASE(clone_and_read_head),
				       T_CASE(pushed_commit_seen_after_fetch),
				       T_CASE(missing_repository_is_reported),
				       T_CASE(ssh_key_and_known_hosts) };

int main(void)
{
	int rc;

	git_url = getenv("LAB_GIT_URL");
	git_bare = getenv("LAB_GIT_BARE");
	if (!git_url || !git_bare) {
		fprintf(stderr, "t_git_src: LAB_GIT_URL and LAB_GIT_BARE must be set (run under make e2e)\n");
		printf("t_git_src: 0 passed, 1 failed\n");
		return 1;
	}
	tmp = tu_tmpdir("e2e-gitsrc");
	if (!tmp)
		return 1;
	rc = t_run("t_git_src.c", cases, ARRAY_SIZE(cases));
	tu_rm_rf(tmp);
	free(tmp);
	return rc;
}
