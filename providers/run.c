#include "providers/run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "providers/quote.h"

extern char **environ;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A secret's buffer gets its whole bound at once: growing it would leave
 * copies of the secret in freed memory. */
static void presize(struct sbuf *sb, size_t max)
{
	free(sb->buf);
	sb->cap = max + 1;
	sb->buf = xmalloc(sb->cap);
	sb->buf[0] = '\0';
}

static void wipe_release(struct sbuf *sb, int secret)
{
	if (secret && sb->buf && sb->cap)
		explicit_bzero(sb->buf, sb->cap);
	sbuf_release(sb);
}

/* The environment with env_add applied (NULL when there is nothing to add);
 * the array is the caller's, its strings are borrowed. */
static char **build_env(const char *const *add)
{
	size_t n = 0, k = 0, nadd = 0;
	char **envp;

	if (!add || !add[0])
		return NULL;
	while (environ[n])
		n++;
	while (add[nadd])
		nadd++;
	envp = xcalloc(n + nadd + 1, sizeof(*envp));
	for (size_t i = 0; i < n; i++) {
		size_t nl = strcspn(environ[i], "=");
		int replaced = 0;

		for (size_t j = 0; j < nadd && !replaced; j++)
			replaced = strncmp(add[j], environ[i], nl) == 0 && add[j][nl] == '=';
		if (!replaced)
			envp[k++] = environ[i];
	}
	for (size_t j = 0; j < nadd; j++)
		envp[k++] = (char *)add[j];
	return envp;
}

/* In the child: async-signal-safe calls only. */
static void child_exec(const struct prov_child *c, char **envp, int in_fd, int out_fd, int err_fd)
{
	struct sigaction sa;
	int devnull;

	setpgid(0, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &sa, NULL);
	/* nor an ignored SIGINT/SIGTERM (plumb started in the background): the
	 * child's own group hears them only when the caller forwards them (stop) */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* signals a parent thread blocked (rec_signals_install) are not the child's */
	sigemptyset(&sa.sa_mask);
	sigprocmask(SIG_SETMASK, &sa.sa_mask, NULL);
	if (c->cwd && chdir(c->cwd) < 0)
		_exit(127);
	devnull = open("/dev/null", O_RDWR);
	if (devnull < 0)
		_exit(127);
	if (dup2(in_fd >= 0 ? in_fd : devnull, 0) < 0 || dup2(out_fd >= 0 ? out_fd : devnull, 1) < 0 ||
	    dup2(err_fd >= 0 ? err_fd : devnull, 2) < 0)
		_exit(127);
	close_range(3, ~0U, 0);
	if (envp)
		execve(c->argv[0], (char *const *)c->argv, envp);
	else
		execv(c->argv[0], (char *const *)c->argv);
	_exit(127);
}

static void kill_group(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
}

/*
 * The deadline and the caller's stop requests while pid runs: sends its group
 * what is due. *late is set once the deadline passed and SIGTERM was sent
 * (grace_ms). Returns -1 when it is time to kill the group.
 */
static int watch(struct prov_child *c, pid_t pid, long long *deadline, int *late)
{
	long long now = now_ms();
	int sig = c->stop ? c->stop(c->stop_ctx) : 0;

	if (sig == SIGKILL) {
		c->stopped = SIGKILL;
		return -1;
	}
	if (sig > 0 && !c->stopped) {
		c->stopped = sig;
		kill(-pid, sig);
		if (c->grace_ms > 0 && now + c->grace_ms < *deadline)
			*deadline = now + c->grace_ms;
	}
	if (now < *deadline)
		return 0;
	if (c->grace_ms > 0 && !*late && !c->stopped) {
		*late = 1;
		kill(-pid, SIGTERM);
		*deadline = now + c->grace_ms;
		return 0;
	}
	return -1;
}

/* Waits for pid, watched as above; 0 with *wst, or -1 (not exited in time). */
static int wait_until(struct prov_child *c, pid_t pid, long long *deadline, int *late, int *wst)
{
	long nap_us = 500;

	for (;;) {
		pid_t w = waitpid(pid, wst, WNOHANG);

		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -1;
		if (watch(c, pid, deadline, late) < 0)
			return -1;
		nanosleep(&(struct timespec){ .tv_nsec = nap_us * 1000 }, NULL);
		if (nap_us < 20000)
			nap_us *= 2;
	}
}

/* Names the program only: its arguments may hold a secret. */
static const char *prog(const struct prov_child *c)
{
	return c->argv && c->argv[0] ? c->argv[0] : "(no program)";
}

/* The child is given up on (the caller kills its group): PLUMB_ETIMEOUT. */
static int gave_up(const struct prov_child *c, struct plumb_err *e)
{
	return plumb_err_set(e, PLUMB_ETIMEOUT, "%s: %s", prog(c), c->stopped ? "stopped" : "timed out");
}

int prov_child_run(struct prov_child *c, struct plumb_err *e)
{
	/* fd[0]: stdin (a socket pair: the parent writes with MSG_NOSIGNAL, so a
	 * child that exits without reading cannot SIGPIPE this process) */
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	char **envp = NULL;
	size_t in_off = 0;
	long long deadline;
	pid_t pid = -1;
	int rc = PLUMB_ERROR, wst = 0, late = 0;

	sbuf_init(&c->out, c->out_max);
	sbuf_init(&c->err, c->err_max);
	if (c->secret && c->out_max)
		presize(&c->out, c->out_max);
	if (c->secret && c->err_max)
		presize(&c->err, c->err_max);
	c->status = -1;
	c->signal = 0;
	c->stopped = 0;
	c->killed = 0;
	deadline = now_ms() + (c->timeout_ms > 0 ? c->timeout_ms : PROV_RUN_DEFAULT_TIMEOUT_MS);
	if ((c->in && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0) ||
	    (c->out_max && pipe2(out, O_CLOEXEC) < 0) || (c->err_max && pipe2(err, O_CLOEXEC) < 0)) {
		plumb_err_set(e, rc, "cannot start %s: pipe: %s", prog(c), strerror(errno));
		goto out;
	}
	envp = build_env(c->env_add);
	pid = fork();
	if (pid < 0) {
		plumb_err_set(e, rc, "cannot start %s: %s", prog(c), strerror(errno));
		goto out;
	}
	if (pid == 0)
		child_exec(c, envp, in[1], out[1], err[1]);
	setpgid(pid, pid); /* also here, so a kill cannot race the child's own call */
	for (int i = 0; i < 2; i++) {
		int *w = i == 0 ? &out[1] : &err[1];
		if (*w >= 0)
			close(*w);
		*w = -1;
	}
	if (in[1] >= 0)
		close(in[1]);
	in[1] = -1;
	if (in[0] >= 0 && c->in_len == 0) {
		close(in[0]);
		in[0] = -1;
	}
	for (int i = 0; i < 3; i++) {
		int fd = i == 0 ? in[0] : i == 1 ? out[0] : err[0];
		if (fd >= 0)
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	}

	while (in[0] >= 0 || out[0] >= 0 || err[0] >= 0) {
		struct pollfd pfd[3];
		int *fdp[3];
		int nfds = 0;
		long long left;
		char buf[16384];

		if (watch(c, pid, &deadline, &late) < 0) {
			rc = gave_up(c, e);
			goto out;
		}
		left = deadline - now_ms();
		if (left > (c->stop ? 100 : 1000))
			left = c->stop ? 100 : 1000;
		if (in[0] >= 0) {
			fdp[nfds] = &in[0];
			pfd[nfds++] = (struct pollfd){ .fd = in[0], .events = POLLOUT };
		}
		if (out[0] >= 0) {
			fdp[nfds] = &out[0];
			pfd[nfds++] = (struct pollfd){ .fd = out[0], .events = POLLIN };
		}
		if (err[0] >= 0) {
			fdp[nfds] = &err[0];
			pfd[nfds++] = (struct pollfd){ .fd = err[0], .events = POLLIN };
		}
		if (poll(pfd, (nfds_t)nfds, (int)(left > 0 ? left : 1)) < 0) {
			if (errno == EINTR)
				continue;
			plumb_err_set(e, rc, "%s: poll: %s", prog(c), strerror(errno));
			goto out;
		}
		for (int i = 0; i < nfds; i++) {
			ssize_t n;

			if (!pfd[i].revents)
				continue;
			if (fdp[i] == &in[0]) {
				n = send(in[0], c->in + in_off, c->in_len - in_off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
				if (n < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (n > 0)
					in_off += (size_t)n;
				if (n <= 0 || in_off == c->in_len) {
					close(in[0]); /* EOF for the child (or it stopped reading) */
					in[0] = -1;
				}
				continue;
			}
			n = read(*fdp[i], buf, sizeof(buf));
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0) {
				close(*fdp[i]);
				*fdp[i] = -1;
				continue;
			}
			if (sbuf_add(fdp[i] == &out[0] ? &c->out : &c->err, buf, (size_t)n) < 0) {
				explicit_bzero(buf, sizeof(buf));
				rc = plumb_err_set(e, PLUMB_ETRUNC, "%s: output exceeds its bound",
						   prog(c));
				goto out;
			}
		}
		explicit_bzero(buf, sizeof(buf));
	}
	/* Every stream is closed; the child may still run (it closed its stdout
	 * early): the deadline holds for that wait too. */
	if (wait_until(c, pid, &deadline, &late, &wst) < 0) {
		rc = gave_up(c, e);
		goto out;
	}
	pid = -1;
	if (WIFEXITED(wst))
		c->status = WEXITSTATUS(wst);
	else if (WIFSIGNALED(wst))
		c->status = 128 + (c->signal = WTERMSIG(wst));
	rc = late ? gave_up(c, e) : 0;
	goto out;
out:
	if (pid > 0) {
		kill_group(pid);
		c->killed = 1;
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	free(envp);
	return rc;
}

void prov_child_release(struct prov_child *c)
{
	wipe_release(&c->out, c->secret);
	wipe_release(&c->err, c->secret);
}

/*
 * The shell reads the command from stdin into a variable with builtins only,
 * gives the command /dev/null as stdin, and evaluates it: the command text
 * (which may hold secrets expanded into it) is in no argv.
 */
static const char shell_reader[] =
	"c=; while IFS= read -r l; do c=\"$c$l\n\"; done; exec </dev/null; unset l; eval \"$c\"";

int prov_run_shell(const char *cmd, const char *cwd, size_t max, int timeout_ms, char **out,
		   int *status)
{
	const char *argv[] = { "/bin/sh", "-c", shell_reader, NULL };
	struct prov_child c = { 0 };
	char *text = xasprintf("%s\n", cmd);
	int rc;

	*out = NULL;
	c.argv = argv;
	c.cwd = cwd;
	c.in = text;
	c.in_len = strlen(text);
	c.timeout_ms = timeout_ms;
	c.out_max = max;
	c.secret = 1;
	rc = prov_child_run(&c, NULL);
	util_free_secret(text);
	*status = rc == 0 ? c.status : -1;
	if (rc == 0 && c.status == 0) {
		if (c.out.len > 0 && c.out.buf[c.out.len - 1] == '\n')
			c.out.buf[--c.out.len] = '\0';
		*out = sbuf_detach(&c.out);
	} else if (rc == 0) {
		rc = PLUMB_ERROR; /* it ran and failed: *status says how */
	}
	prov_child_release(&c);
	return rc;
}

int prov_run_shell_fn(const char *cmd, const char *cwd, size_t max, char **out, int *status,
		      void *ctx)
{
	(void)ctx;
	return prov_run_shell(cmd, cwd, max, PROV_RUN_DEFAULT_TIMEOUT_MS, out, status);
}
