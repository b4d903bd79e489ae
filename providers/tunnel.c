/*
 * Reverse tunnels (tunnel.h). One SSH session and one relay thread per
 * tunnel; the thread is the session's only user from tunnel_open's return
 * until tunnel_close has joined it.
 *
 * The relay loop: step every connection (move bytes both ways until nothing
 * moves), accept new channels, and only then sleep in poll() on the wake
 * pipe, the session's socket and the local sockets. libssh may read the
 * socket while any channel is read or written and park data in another
 * channel's buffer, which poll() cannot see; channel callbacks set `kick`
 * whenever that happens, so the loop goes round again instead of sleeping.
 */
#include "providers/tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

struct tbuf {
	char *b;         /* TUNNEL_BUF bytes, allocated with the connection */
	size_t off, len; /* pending bytes are b[off..len) */
};

struct conn {
	ssh_channel ch;
	int fd;
	struct tbuf up;   /* here -> host */
	struct tbuf down; /* host -> here */
	int local_eof, eof_sent, host_eof, shut_wr;
	struct ssh_channel_callbacks_struct cb;
};

struct tunnel {
	struct transport *t; /* owns the session */
	ssh_session s;       /* borrowed from t */
	int port;
	char *label;
	pthread_t thread;
	int running;
	int wake[2];
	atomic_int stop, alive;
	int kick; /* relay thread only */
	struct conn *conns[TUNNEL_MAX_CONNS];
	size_t nconns;
	atomic_ulong accepted, refused;
	atomic_ullong to_host, from_host;
};

static int on_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr,
		   void *userdata)
{
	(void)s, (void)ch, (void)data, (void)len, (void)is_stderr;
	((struct tunnel *)userdata)->kick = 1;
	return 0; /* leave it buffered: read by the loop, within its bounds */
}

static void on_event(ssh_session s, ssh_channel ch, void *userdata)
{
	(void)s, (void)ch;
	((struct tunnel *)userdata)->kick = 1;
}

static int on_window(ssh_session s, ssh_channel ch, uint32_t bytes, void *userdata)
{
	(void)s, (void)ch, (void)bytes;
	((struct tunnel *)userdata)->kick = 1;
	return 0;
}

static void conn_free(struct conn *c)
{
	if (c->ch) {
		ssh_remove_channel_callbacks(c->ch, &c->cb);
		ssh_channel_close(c->ch);
		ssh_channel_free(c->ch);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c->up.b);
	free(c->down.b);
	free(c);
}

/* A connection to 127.0.0.1:port here, non-blocking once connected; -1 if none. */
static int local_connect(int port)
{
	struct sockaddr_in a = { 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void tbuf_compact(struct tbuf *b)
{
	if (b->off == b->len) {
		b->off = b->len = 0;
	} else if (b->off > 0) {
		memmove(b->b, b->b + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
}

static int again(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Host -> here: 1 if something moved, 0 if not, -1 when the connection broke. */
static int step_down(struct tunnel *tn, struct conn *c)
{
	int moved = 0;

	tbuf_compact(&c->down);
	if (!c->host_eof && c->down.len < TUNNEL_BUF) {
		int n;

		n = ssh_channel_read_nonblocking(c->ch, c->down.b + c->down.len,
						 (uint32_t)(TUNNEL_BUF - c->down.len), 0);
		if (n > 0) {
			c->down.len += (size_t)n;
			atomic_fetch_add(&tn->from_host, (unsigned long long)n);
			moved = 1;
		} else if (n == SSH_EOF || (n == 0 && ssh_channel_is_eof(c->ch))) {
			c->host_eof = moved = 1;
		} else if (n < 0) {
			return -1;
		}
	}
	if (c->down.off < c->down.len) {
		ssize_t w = send(c->fd, c->down.b + c->down.off, c->down.len - c->down.off,
				 MSG_NOSIGNAL);
		if (w > 0) {
			c->down.off += (size_t)w;
			moved = 1;
		} else if (w < 0 && !again()) {
			return -1;
		}
	}
	if (c->host_eof && c->down.off == c->down.len && !c->shut_wr) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = moved = 1;
	}
	return moved;
}

/* Here -> host, never more than the channel's window (so a write never waits). */
static int step_up(struct tunnel *tn, struct conn *c)
{
	int moved = 0;

	tbuf_compact(&c->up);
	if (!c->local_eof && c->up.len < TUNNEL_BUF) {
		ssize_t r;

		r = recv(c->fd, c->up.b + c->up.len, TUNNEL_BUF - c->up.len, 0);
		if (r > 0) {
			c->up.len += (size_t)r;
			moved = 1;
		} else if (r == 0) {
			c->local_eof = moved = 1;
		} else if (!again()) {
			return -1;
		}
	}
	if (c->up.off < c->up.len) {
		size_t n = c->up.len - c->up.off;
		uint32_t win = ssh_channel_window_size(c->ch);

		if (n > win)
			n = win;
		if (n > 0) {
			int w = ssh_channel_write(c->ch, c->up.b + c->up.off, (uint32_t)n);
			if (w < 0)
				return -1;
			c->up.off += (size_t)w;
			atomic_fetch_add(&tn->to_host, (unsigned long long)w);
			moved |= w > 0;
		}
	}
	if (c->local_eof && c->up.off == c->up.len && !c->eof_sent) {
		ssh_channel_send_eof(c->ch);
		c->eof_sent = moved = 1;
	}
	return moved;
}

/* 1 if bytes moved, 0 if not, -1 when the connection is over (both sides done, or broke). */
static int conn_step(struct tunnel *tn, struct conn *c)
{
	int moved = 0;

	for (int round = 0; round < 16; round++) {
		int d = step_down(tn, c), u;

		if (d < 0)
			return -1;
		u = step_up(tn, c);
		if (u < 0)
			return -1;
		if (!d && !u)
			break;
		moved = 1;
	}
	if (c->host_eof && c->shut_wr && (c->eof_sent || !ssh_channel_is_open(c->ch)))
		return -1;
	return moved;
}

/* Accepts every channel waiting: the count, or -1 when the session is gone. */
static int accept_new(struct tunnel *tn)
{
	int n = 0;

	for (;;) {
		int dport = 0, oport = 0, fd = -1;
		char *orig = NULL;
		ssh_channel ch = ssh_channel_open_forward_port(tn->s, 0, &dport, &orig, &oport);
		struct conn *c;

		ssh_string_free_char(orig);
		if (!ch)
			return ssh_is_connected(tn->s) ? n : -1;
		n++;
		if (tn->nconns == TUNNEL_MAX_CONNS || dport != tn->port ||
		    (fd = local_connect(tn->port)) < 0) {
			atomic_fetch_add(&tn->refused, 1);
			ssh_channel_close(ch);
			ssh_channel_free(ch);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		c->ch = ch;
		c->fd = fd;
		c->up.b = xmalloc(TUNNEL_BUF);
		c->down.b = xmalloc(TUNNEL_BUF);
		ssh_callbacks_init(&c->cb);
		c->cb.userdata = tn;
		c->cb.channel_data_function = on_data;
		c->cb.channel_eof_function = on_event;
		c->cb.channel_close_function = on_event;
		c->cb.channel_write_wontblock_function = on_window;
		ssh_set_channel_callbacks(ch, &c->cb);
		tn->conns[tn->nconns++] = c;
		atomic_fetch_add(&tn->accepted, 1);
	}
}

static void *relay(void *arg)
{
	struct tunnel *tn = arg;
	struct pollfd pf[TUNNEL_MAX_CONNS + 2];

	while (!atomic_load(&tn->stop)) {
		int busy = 0, r;
		nfds_t nfds = 0;
		socket_t sfd;

		tn->kick = 0;
		for (size_t k = 0; k < tn->nconns;) {
			r = conn_step(tn, tn->conns[k]);
			if (r < 0) {
				conn_free(tn->conns[k]);
				tn->conns[k] = tn->conns[--tn->nconns];
				busy = 1;
				continue;
			}
			busy |= r;
			k++;
		}
		r = accept_new(tn);
		sfd = ssh_get_fd(tn->s);
		if (r < 0 || sfd < 0)
			break;
		if (busy || r > 0 || tn->kick)
			continue;
		pf[nfds++] = (struct pollfd){ .fd = tn->wake[0], .events = POLLIN };
		pf[nfds++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		for (size_t k = 0; k < tn->nconns; k++) {
			struct conn *c = tn->conns[k];
			short ev = 0;

			if (!c->local_eof && c->up.len - c->up.off < TUNNEL_BUF)
				ev |= POLLIN;
			if (c->down.off < c->down.len)
				ev |= POLLOUT;
			pf[nfds++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		if (poll(pf, nfds, 1000) < 0 && errno != EINTR)
			break;
	}
	atomic_store(&tn->alive, 0);
	return NULL;
}

static void tunnel_free(struct tunnel *tn)
{
	for (size_t k = 0; k < tn->nconns; k++)
		conn_free(tn->conns[k]);
	transport_close(tn->t);
	if (tn->wake[0] >= 0)
		close(tn->wake[0]);
	if (tn->wake[1] >= 0)
		close(tn->wake[1]);
	free(tn->label);
	free(tn);
}

/* The server denied port: is it this port, or forwarding at all? (A second
 * request for a port of the server's choosing tells them apart.) */
static int denied(struct tunnel *tn, struct plumb_err *err)
{
	int probe = 0;

	if (ssh_channel_listen_forward(tn->s, "127.0.0.1", 0, &probe) == SSH_OK) {
		ssh_channel_cancel_forward(tn->s, "127.0.0.1", probe);
		return plumb_err_set(err, PLUMB_EUNAVAILABLE,
				     "%s: cannot listen on the host's 127.0.0.1:%d for the tunnel to "
				     "this machine's registry: the port is in use there (or the SSH "
				     "server does not permit it)",
				     tn->label, tn->port);
	}
	return plumb_err_set(err, PLUMB_EREFUSED,
			     "%s: the SSH server refuses remote port forwarding (AllowTcpForwarding, "
			     "or a no-port-forwarding key), so the host cannot reach this machine's "
			     "registry on port %d",
			     tn->label, tn->port);
}

int tunnel_open(struct tunnel **out, const struct transport_opts *o, int port,
		struct plumb_err *err)
{
	struct tunnel *tn = NULL;
	int rc;

	*out = NULL;
	if (port < 1 || port > 65535)
		return plumb_err_set(err, PLUMB_EINVAL, "tunnel: invalid port %d", port);
	tn = xcalloc(1, sizeof(*tn));
	tn->wake[0] = tn->wake[1] = -1;
	tn->port = port;
	rc = transport_ssh_open(&tn->t, o, err);
	if (rc < 0)
		goto fail;
	tn->label = xstrdup(tn->t->label);
	tn->s = transport_ssh_session(tn->t);
	if (!tn->s) {
		rc = plumb_err_set(err, PLUMB_ERROR, "%s: not an SSH session", tn->label);
		goto fail;
	}
	if (ssh_channel_listen_forward(tn->s, "127.0.0.1", port, NULL) != SSH_OK) {
		if (ssh_get_error_code(tn->s) == SSH_REQUEST_DENIED)
			rc = denied(tn, err);
		else
			rc = plumb_err_set(err, PLUMB_EDISCONNECT, "%s: asking for port %d: %s",
					   tn->label, port, ssh_get_error(tn->s));
		goto fail;
	}
	if (pipe2(tn->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = plumb_err_set(err, PLUMB_ERROR, "pipe: %s", strerror(errno));
		goto fail;
	}
	atomic_store(&tn->alive, 1);
	if (pthread_create(&tn->thread, NULL, relay, tn) != 0) {
		rc = plumb_err_set(err, PLUMB_ERROR, "%s: cannot start the tunnel thread", tn->label);
		goto fail;
	}
	tn->running = 1;
	*out = tn;
	plumb_err_reset(err);
	return 0;
fail:
	tunnel_free(tn);
	return rc;
}

int tunnel_port(const struct tunnel *tn)
{
	return tn->port;
}

int tunnel_alive(const struct tunnel *tn)
{
	return atomic_load(&((struct tunnel *)tn)->alive);
}

void tunnel_stats(const struct tunnel *tn, struct tunnel_stats *out)
{
	struct tunnel *t = (struct tunnel *)tn;

	out->accepted = atomic_load(&t->accepted);
	out->refused = atomic_load(&t->refused);
	out->to_host = atomic_load(&t->to_host);
	out->from_host = atomic_load(&t->from_host);
}

void tunnel_close(struct tunnel *tn)
{
	if (!tn)
		return;
	if (tn->running) {
		atomic_store(&tn->stop, 1);
		if (write(tn->wake[1], "x", 1) < 0) {
			/* the thread also wakes within a second */
		}
		pthread_join(tn->thread, NULL);
	}
	for (size_t k = 0; k < tn->nconns; k++)
		conn_free(tn->conns[k]);
	tn->nconns = 0;
	if (ssh_is_connected(tn->s)) {
		/* Wait for the server's answer: the port is free on the host after it. */
		long tmo = 2;

		ssh_options_set(tn->s, SSH_OPTIONS_TIMEOUT, &tmo);
		ssh_channel_cancel_forward(tn->s, "127.0.0.1", tn->port);
	}
	tunnel_free(tn);
}
