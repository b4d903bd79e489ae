/*
 * run_capture (declared in secrets.h): runs a shell command and captures its
 * stdout, bounded in size and time.
 *
 * The child runs in its own process group so that a timeout or an oversized
 * output kills the whole pipeline (`sh -c "a | b"`), not only the shell. The
 * child closes every inherited descriptor above 2 (sockets, state files), gets
 * SIGPIPE back to its default disposition, stdin from /dev/null and stderr to
 * /dev/null (an error message may echo a secret). Only async-signal-safe calls
 * are made between fork and exec, so this is safe in a threaded daemon.
 */
#include "state/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_CAPTURE_TIMEOUT_MS 30000

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Grows buf to hold at least want bytes, wiping the old copy (it may hold a secret). */
static void grow_wiped(char **buf, size_t *cap, size_t want)
{
	size_t ncap = *cap ? *cap : 256;
	char *nbuf;

	while (ncap < want)
		ncap *= 2;
	if (ncap == *cap)
		return;
	nbuf = xmalloc(ncap);
	if (*buf) {
		memcpy(nbuf, *buf, *cap);
		explicit_bzero(*buf, *cap);
		free(*buf);
	}
	*buf = nbuf;
	*cap = ncap;
}

static void child(const char *cmd, const char *cwd, int outfd)
{
	int devnull;
	struct sigaction sa;

	setpgid(0, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &sa, NULL);
	if (cwd && chdir(cwd) < 0)
		_exit(127);
	devnull = open("/dev/null", O_RDWR);
	if (devnull < 0)
		_exit(127);
	if (dup2(devnull, 0) < 0 || dup2(outfd, 1) < 0 || dup2(devnull, 2) < 0)
		_exit(127);
	close_range(3, ~0U, 0);
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
}

int run_capture_timeout(const char *cmd, const char *cwd, size_t max, int timeout_ms,
			char **out, int *status)
{
	int fds[2] = { -1, -1 };
	pid_t pid;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	long long deadline;
	int killed = 0, wst = 0, rc = -1;

	*out = NULL;
	*status = -1;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		child(cmd, cwd, fds[1]);
	}
	close(fds[1]);
	fds[1] = -1;
	if (pid < 0) {
		close(fds[0]);
		return -1;
	}
	/* Also set it from the parent: the child may not have run setpgid yet. */
	setpgid(pid, pid);

	deadline = now_ms() + timeout_ms;
	grow_wiped(&buf, &cap, 256);
	for (;;) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		long long left = deadline - now_ms();
		ssize_t n;
		int pr;

		if (left <= 0) {
			killed = 1;
			break;
		}
		pr = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			killed = 1;
			break;
		}
		if (pr == 0)
			continue;
		if (len + 4096 + 1 > cap)
			grow_wiped(&buf, &cap, len + 4096 + 1);
		n = read(fds[0], buf + len, cap - len - 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > max) {
			killed = 1;
			break;
		}
	}
	close(fds[0]);
	if (killed)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &wst, 0) < 0) {
		if (errno != EINTR) {
			wst = -1;
			break;
		}
	}
	buf[len < cap ? len : cap - 1] = '\0';
	if (killed) {
		*status = -1;
		goto out;
	}
	if (wst == -1) {
		*status = -1;
	} else if (WIFEXITED(wst)) {
		*status = WEXITSTATUS(wst);
	} else if (WIFSIGNALED(wst)) {
		*status = 128 + WTERMSIG(wst);
	}
	if (wst == -1 || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
		goto out;
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	*out = buf;
	buf = NULL;
	rc = 0;
out:
	if (buf) {
		explicit_bzero(buf, cap);
		free(buf);
	}
	return rc;
}

int run_capture(const char *cmd, const char *cwd, size_t max, char **out, int *status)
{
	return run_capture_timeout(cmd, cwd, max, RUN_CAPTURE_TIMEOUT_MS, out, status);
}
