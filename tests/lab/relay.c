/*
 * relay — a delaying TCP relay, test tooling for the lab.
 *
 *   relay LISTEN_IP:PORT TARGET_IP:PORT DELAY_MS
 *
 * Accepts connections on LISTEN, connects each to TARGET and copies bytes both
 * ways, holding every chunk DELAY_MS/2 milliseconds before passing it on, so a
 * round trip through the relay takes DELAY_MS longer (this kernel has no netem).
 * One child process per connection; children die with the parent
 * (PR_SET_PDEATHSIG), so stopping the relay by its pid stops everything.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
#define MAXQ 256 /* chunks in flight per direction; reading pauses when full */

struct chunk {
	int64_t due_ms;
	size_t len, off;
	char *buf;
};

struct dir {
	int from, to;
	int eof;	 /* read side saw EOF */
	int shut;	 /* write side was shut down */
	struct chunk q[MAXQ];
	int head, n;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_addr(const char *s, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static void serve(int client, const struct sockaddr_in *target, int64_t delay)
{
	static struct dir d[2];
	int one = 1;
	int server = socket(AF_INET, SOCK_STREAM, 0);
	if (server < 0 || connect(server, (const struct sockaddr *)target, sizeof(*target)) < 0) {
		perror("relay: connect");
		_exit(1);
	}
	setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	d[0].from = client; d[0].to = server;
	d[1].from = server; d[1].to = client;

	for (;;) {
		struct pollfd p[2];
		int64_t t = now_ms(), wait_ms = -1;
		int i, done = 1;

		/* deliver due chunks */
		for (i = 0; i < 2; i++) {
			struct dir *x = &d[i];
			while (x->n > 0 && x->q[x->head].due_ms <= t) {
				struct chunk *c = &x->q[x->head];
				ssize_t w = write(x->to, c->buf + c->off, c->len - c->off);
				if (w < 0) {
					if (errno == EINTR)
						continue;
					_exit(0);
				}
				c->off += (size_t)w;
				if (c->off < c->len)
					continue;
				free(c->buf);
				x->head = (x->head + 1) % MAXQ;
				x->n--;
			}
			if (x->eof && x->n == 0 && !x->shut) {
				shutdown(x->to, SHUT_WR);
				x->shut = 1;
			}
			if (x->n > 0) {
				int64_t w = x->q[x->head].due_ms - t;
				if (wait_ms < 0 || w < wait_ms)
					wait_ms = w < 0 ? 0 : w;
			}
			if (!x->shut)
				done = 0;
		}
		if (done)
			_exit(0);

		for (i = 0; i < 2; i++) {
			p[i].fd = (d[i].eof || d[i].n >= MAXQ) ? -1 : d[i].from;
			p[i].events = POLLIN;
			p[i].revents = 0;
		}
		if (poll(p, 2, (int)wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		for (i = 0; i < 2; i++) {
			struct dir *x = &d[i];
			char *buf;
			ssize_t r;
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			buf = malloc(CHUNK);
			if (!buf)
				_exit(1);
			r = read(x->from, buf, CHUNK);
			if (r <= 0) {
				free(buf);
				if (r < 0 && errno == EINTR)
					continue;
				x->eof = 1;
				continue;
			}
			{
				struct chunk *c = &x->q[(x->head + x->n) % MAXQ];
				c->buf = buf;
				c->len = (size_t)r;
				c->off = 0;
				c->due_ms = now_ms() + delay;
				x->n++;
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in listen_addr, target;
	int one = 1, lfd;
	int64_t delay;

	if (argc != 4 || parse_addr(argv[1], &listen_addr) < 0 || parse_addr(argv[2], &target) < 0) {
		fprintf(stderr, "usage: relay LISTEN_IP:PORT TARGET_IP:PORT DELAY_MS\n");
		return 2;
	}
	delay = atoll(argv[3]) / 2;
	signal(SIGCHLD, SIG_IGN); /* children are reaped automatically */
	signal(SIGPIPE, SIG_IGN);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		return perror("relay: socket"), 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) < 0 || listen(lfd, 128) < 0)
		return perror("relay: bind"), 1;

	for (;;) {
		pid_t pid;
		int c = accept(lfd, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("relay: accept");
			return 1;
		}
		pid = fork();
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				_exit(0);
			close(lfd);
			serve(c, &target, delay);
			_exit(0);
		}
		close(c);
	}
}
