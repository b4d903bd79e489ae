/* loadgen: a bounded HTTP load generator for the e2e tests of `plumb apply`.
 *
 *   loadgen [-c CONC] [-d SECONDS] [-t TIMEOUT_MS] HOST[:PORT] ...
 *
 * CONC threads per target, each sending `GET /` with `Connection: close`
 * (a new TCP connection per request) in a loop until SIGTERM/SIGINT or
 * SECONDS elapse. A request succeeds when the status is 2xx; connect errors,
 * timeouts, short answers and other statuses are failures. The distinct
 * bodies (first line, up to 63 bytes) are recorded with the time each was
 * first and last seen. At the end it prints, on stdout:
 *   target HOST ok N fail N
 *   body HOST "TEXT" count N first S.sss last S.sss
 *   total ok N fail N
 *   fail HOST S.sss REASON          (the first 20 failures)
 * Exit 0 when it ran, 2 on a usage error. Test code: plain, bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#define MAX_TARGETS 16
#define MAX_BODIES 16
#define MAX_FAILS 20

struct body {
	char text[64];
	long count;
	double first, last;
};

struct target {
	char name[64];
	struct sockaddr_in addr;
	long ok, fail;
	struct body bodies[MAX_BODIES];
	int nbodies;
};

struct fail_rec {
	int target;
	double at;
	char reason[64];
};

static volatile sig_atomic_t stop_flag;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct target targets[MAX_TARGETS];
static int ntargets;
static struct fail_rec fails[MAX_FAILS];
static int nfails;
static double t_start, t_end;
static int timeout_ms = 3000;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* wait_fd: 1 ready, 0 timeout/stop, -1 error. */
static int wait_fd(int fd, short ev, double deadline)
{
	for (;;) {
		double left = deadline - now();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = ev };
		int r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* one_request: 0 and the body's first line in body, or -1 and a reason. */
static int one_request(const struct target *t, char *body, size_t bsz, char *reason, size_t rsz)
{
	char buf[4096];
	size_t len = 0;
	int rc = -1;
	double deadline = now() + timeout_ms / 1000.0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(reason, rsz, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&t->addr, sizeof t->addr) < 0 && errno != EINPROGRESS) {
		snprintf(reason, rsz, "connect: %s", strerror(errno));
		goto out;
	}
	if (wait_fd(fd, POLLOUT, deadline) != 1) {
		snprintf(reason, rsz, "connect timeout");
		goto out;
	}
	int err = 0;
	socklen_t el = sizeof err;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err) {
		snprintf(reason, rsz, "connect: %s", strerror(err));
		goto out;
	}
	char req[256];
	int rl = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", t->name);
	if (send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
		snprintf(reason, rsz, "send: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		if (len + 1 >= sizeof buf)
			break;
		int w = wait_fd(fd, POLLIN, deadline);
		if (w != 1) {
			snprintf(reason, rsz, "read timeout");
			goto out;
		}
		ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			snprintf(reason, rsz, "recv: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	int status = 0;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(reason, rsz, "no status line (%zu bytes)", len);
		goto out;
	}
	if (status < 200 || status > 299) {
		snprintf(reason, rsz, "status %d", status);
		goto out;
	}
	char *b = strstr(buf, "\r\n\r\n");
	b = b ? b + 4 : buf + len;
	size_t i = 0;
	while (b[i] && b[i] != '\n' && b[i] != '\r' && i + 1 < bsz && (unsigned char)b[i] >= 0x20 && b[i] != '"') {
		body[i] = b[i];
		i++;
	}
	body[i] = '\0';
	rc = 0;
out:
	close(fd);
	return rc;
}

static void record(int ti, int ok, const char *body, const char *reason)
{
	double at = now() - t_start;
	struct target *t = &targets[ti];
	pthread_mutex_lock(&mu);
	if (ok) {
		t->ok++;
		int i;
		for (i = 0; i < t->nbodies; i++)
			if (strcmp(t->bodies[i].text, body) == 0)
				break;
		if (i == t->nbodies && i < MAX_BODIES) {
			snprintf(t->bodies[i].text, sizeof t->bodies[i].text, "%s", body);
			t->bodies[i].first = at;
			t->nbodies++;
		}
		if (i < MAX_BODIES) {
			t->bodies[i].count++;
			t->bodies[i].last = at;
		}
	} else {
		t->fail++;
		if (nfails < MAX_FAILS) {
			fails[nfails].target = ti;
			fails[nfails].at = at;
			snprintf(fails[nfails].reason, sizeof fails[nfails].reason, "%s", reason);
			nfails++;
		}
	}
	pthread_mutex_unlock(&mu);
}

static void *worker(void *arg)
{
	int ti = (int)(long)arg;
	while (!stop_flag && now() < t_end) {
		char body[64] = "", reason[64] = "";
		int r = one_request(&targets[ti], body, sizeof body, reason, sizeof reason);
		record(ti, r == 0, body, reason);
		if (r != 0)
			usleep(10000);
	}
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: loadgen [-c CONC] [-d SECONDS] [-t TIMEOUT_MS] HOST[:PORT] ...\n");
	return 2;
}

int main(int argc, char **argv)
{
	int conc = 4, opt;
	double dur = 120;
	while ((opt = getopt(argc, argv, "c:d:t:")) != -1) {
		if (opt == 'c')
			conc = atoi(optarg);
		else if (opt == 'd')
			dur = atof(optarg);
		else if (opt == 't')
			timeout_ms = atoi(optarg);
		else
			return usage();
	}
	if (optind >= argc || conc < 1 || conc > 64 || dur <= 0 || timeout_ms < 1)
		return usage();
	for (int i = optind; i < argc; i++) {
		if (ntargets == MAX_TARGETS)
			return usage();
		struct target *t = &targets[ntargets];
		char host[64];
		int port = 80;
		snprintf(host, sizeof host, "%s", argv[i]);
		char *c = strchr(host, ':');
		if (c) {
			*c = '\0';
			port = atoi(c + 1);
		}
		snprintf(t->name, sizeof t->name, "%s", host);
		t->addr.sin_family = AF_INET;
		t->addr.sin_port = htons((unsigned short)port);
		if (inet_pton(AF_INET, host, &t->addr.sin_addr) != 1 || port < 1 || port > 65535)
			return usage();
		ntargets++;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	t_start = now();
	t_end = t_start + dur;
	int nth = ntargets * conc;
	pthread_t *th = calloc((size_t)nth, sizeof *th);
	if (!th)
		return 1;
	for (int i = 0; i < nth; i++)
		pthread_create(&th[i], NULL, worker, (void *)(long)(i % ntargets));
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	free(th);
	long ok = 0, fl = 0;
	for (int i = 0; i < ntargets; i++) {
		struct target *t = &targets[i];
		printf("target %s ok %ld fail %ld\n", t->name, t->ok, t->fail);
		for (int j = 0; j < t->nbodies; j++)
			printf("body %s \"%s\" count %ld first %.3f last %.3f\n", t->name, t->bodies[j].text,
			       t->bodies[j].count, t->bodies[j].first, t->bodies[j].last);
		ok += t->ok;
		fl += t->fail;
	}
	printf("total ok %ld fail %ld seconds %.3f\n", ok, fl, now() - t_start);
	for (int i = 0; i < nfails; i++)
		printf("fail %s %.3f %s\n", targets[fails[i].target].name, fails[i].at, fails[i].reason);
	return 0;
}
