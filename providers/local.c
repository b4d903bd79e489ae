/*
 * The local transport: /bin/sh on this machine, with the same framing, bounds
 * and timeouts as the SSH transport (shared parts in transport.c).
 */
#include "providers/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- local transport ---- */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void kill_and_reap(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int local_run(struct transport *t, const char *cmd, struct cmd_result *r)
{
	char token[PROV_TOKEN_LEN + 1];
	struct sbuf line, raw_out, raw_err;
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 };
	pid_t pid = -1;
	int rc = PROV_ERROR, wst, status = -1;
	double start = prov_now_ms(), deadline;
	/* Room for the markers and the shell's own noise around the command's output. */
	size_t raw_max = t->max_output + 4096;

	cmd_result_init(r, t->max_output);
	sbuf_init(&line, 0);
	sbuf_init(&raw_out, raw_max);
	sbuf_init(&raw_err, raw_max);
	t->stats.commands++;
	deadline = start + t->cmd_timeout_ms;
	if (prov_frame_build(&line, cmd, token) < 0) {
		rc = prov_fail(t, PROV_EINVAL, "%s: cannot frame the command", t->label);
		goto out;
	}
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		rc = prov_fail(t, PROV_ERROR, "%s: pipe: %s", t->label, strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = prov_fail(t, PROV_ERROR, "%s: fork: %s", t->label, strerror(errno));
		goto out;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(po[1], 1) < 0 ||
		    dup2(pe[1], 2) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", line.buf, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid); /* also in the parent, so a kill cannot race the child's own call */
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	set_nonblock(po[0]);
	set_nonblock(pe[0]);

	while (po[0] >= 0 || pe[0] >= 0) {
		struct pollfd pfd[2];
		int nfds = 0, left = (int)(deadline - prov_now_ms());
		char buf[16384];

		if (left <= 0) {
			kill_and_reap(pid);
			pid = -1;
			rc = prov_fail(t, PROV_ETIMEOUT, "%s: command timed out after %d ms",
				       t->label, t->cmd_timeout_ms);
			goto partial;
		}
		if (po[0] >= 0)
			pfd[nfds++] = (struct pollfd){ .fd = po[0], .events = POLLIN };
		if (pe[0] >= 0)
			pfd[nfds++] = (struct pollfd){ .fd = pe[0], .events = POLLIN };
		if (poll(pfd, (nfds_t)nfds, left) < 0) {
			if (errno == EINTR)
				continue;
			rc = prov_fail(t, PROV_ERROR, "%s: poll: %s", t->label, strerror(errno));
			goto out;
		}
		for (int i = 0; i < nfds; i++) {
			int *fdp = pfd[i].fd == po[0] ? &po[0] : &pe[0];
			struct sbuf *dst = fdp == &po[0] ? &raw_out : &raw_err;
			ssize_t n;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(*fdp, buf, sizeof(buf));
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0) {
				close(*fdp);
				*fdp = -1;
				continue;
			}
			if (sbuf_add(dst, buf, (size_t)n) < 0) {
				kill_and_reap(pid);
				pid = -1;
				rc = prov_fail(t, PROV_ETRUNC, "%s: output exceeds %zu bytes",
					       t->label, t->max_output);
				goto partial;
			}
		}
	}
	/* Both streams closed; the shell may still be exiting. */
	for (;;) {
		pid_t w = waitpid(pid, &wst, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			rc = prov_fail(t, PROV_ERROR, "%s: waitpid: %s", t->label, strerror(errno));
			pid = -1;
			goto out;
		}
		if (prov_now_ms() > deadline) {
			kill_and_reap(pid);
			pid = -1;
			rc = prov_fail(t, PROV_ETIMEOUT, "%s: command timed out after %d ms",
				       t->label, t->cmd_timeout_ms);
			goto partial;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	pid = -1;
	if (WIFEXITED(wst))
		status = WEXITSTATUS(wst);
	rc = prov_finish_framed(t, r, token, &raw_out, &raw_err, status);
	goto out;
partial:
	prov_keep_partial(r, token, &raw_out, &raw_err);
out:
	if (pid > 0)
		kill_and_reap(pid);
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	r->elapsed_ms = prov_now_ms() - start;
	t->stats.command_ms += r->elapsed_ms;
	sbuf_release(&line);
	sbuf_release(&raw_out);
	sbuf_release(&raw_err);
	return rc;
}

static void local_close(struct transport *t)
{
	free(t->label);
	free(t);
}

static const struct transport_ops local_ops = {
	.name = "local",
	.run = local_run,
	.run_cmd = prov_run_cmd_rendered,
	.close = local_close,
};

int transport_local_open(struct transport **out)
{
	struct transport *t = xcalloc(1, sizeof(*t));

	prov_transport_init(t, &local_ops, "localhost", 0, 0);
	*out = t;
	return 0;
}
