/*
 * Helpers the C tests share (unit tests in tests/unit, end-to-end tests in
 * tests/e2e; both build with -I. and link the library). Header-only: every
 * function is `static inline`, so a test that includes this and uses only
 * some of them builds without unused-function warnings.
 *
 * Ownership: a returned `char *` is the caller's (free it); a returned
 * `const char *` points into the environment. These are test helpers: they
 * print what went wrong on stderr, and the ones documented as such abort,
 * because a test that cannot set up its files cannot go on.
 */
#ifndef PLUMB_TEST_TUTIL_H
#define PLUMB_TEST_TUTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/util.h"

/* ---- the lab's environment (tests/e2e/run.sh exports lab.env) ---- */

/* The value of an environment variable; NULL when it is unset or empty. */
static inline const char *tu_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* LAB_N: how many lab hosts there are; 0 when unset. */
static inline int tu_lab_n(void)
{
	const char *n = tu_env("LAB_N");
	return n ? atoi(n) : 0;
}

/* LAB_HOST_<i> (1-based): lab host i's address; NULL when unset. */
static inline const char *tu_lab_host(int i)
{
	char name[32];
	snprintf(name, sizeof(name), "LAB_HOST_%d", i);
	return tu_env(name);
}

/* ---- a fake environment, for getenv_fn hooks (state/trust.h) ---- */

/* One variable; an array of them ends with { NULL, NULL }. */
struct tu_var {
	const char *name, *value;
};

/* A getenv_fn: looks name up in ctx, a struct tu_var array; NULL when absent. */
static inline const char *tu_fake_getenv(const char *name, void *ctx)
{
	for (const struct tu_var *v = ctx; v->name; v++)
		if (strcmp(v->name, name) == 0)
			return v->value;
	return NULL;
}

/* ---- temporary directories and files ---- */

/*
 * Makes a fresh directory /tmp/plumb-<tag>-XXXXXX (mode 0700) and returns its
 * path (caller frees); NULL after printing why when it cannot.
 */
static inline char *tu_tmpdir(const char *tag)
{
	char *dir = xasprintf("/tmp/plumb-%s-XXXXXX", tag);

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		free(dir);
		return NULL;
	}
	return dir;
}

/* Removes dir and everything below it (rm -rf); 0, or -1 after saying so. */
static inline int tu_rm_rf(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	int rc = system(cmd);

	if (rc != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

/* Writes text to path (replacing it); 0, or -1 when it cannot. */
static inline int tu_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

/*
 * Writes text to dir/rel, making the directories of rel below dir first
 * (mode 0700). A fixture the test needs: aborts when it cannot be written.
 */
static inline void tu_write_in(const char *dir, const char *rel, const char *text)
{
	char *path = xasprintf("%s/%s", dir, rel);

	for (char *slash = strchr(path + strlen(dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	if (tu_write_file(path, text) < 0)
		abort();
	free(path);
}

/* Reads dir/rel whole (at most 1 MiB; *out the caller's): 0, or -1. */
static inline int tu_read_in(const char *dir, const char *rel, char **out, size_t *len)
{
	char *path = xasprintf("%s/%s", dir, rel);
	int rc = util_read_file(path, 1 << 20, out, len);

	free(path);
	return rc == 0 ? 0 : -1;
}

/* ---- servers a test starts ---- */

/*
 * A TCP port on 127.0.0.1 that was free a moment ago (bound, read, closed);
 * -1 when none could be had. Another process may take it before the caller's
 * server binds it: callers check that their server came up.
 */
static inline int tu_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* ---- shell commands ---- */

/* Runs a shell command (printf-style); 0 if it exited 0, else -1 after saying so. */
static inline int PLUMB_PRINTF(1, 2) tu_sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int rc;

	va_start(ap, fmt);
	cmd = xvasprintf(fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "  command failed (%d): %s\n", rc, cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

/*
 * The first line (at most 255 bytes, newline removed) a shell command prints
 * (caller frees); "" when it prints nothing or cannot be run. Its exit status
 * is not looked at: callers check the line (a 40-hex sha, say).
 */
static inline char *PLUMB_PRINTF(1, 2) tu_sh_line(const char *fmt, ...)
{
	va_list ap;
	char *cmd, line[256] = "";
	FILE *f;

	va_start(ap, fmt);
	cmd = xvasprintf(fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		pclose(f);
	}
	free(cmd);
	line[strcspn(line, "\n")] = '\0';
	return xstrdup(line);
}

#endif
