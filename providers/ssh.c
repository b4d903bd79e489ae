/*
 * The SSH transport (libssh 0.10). One session per host, owned by whichever
 * thread holds the transport. A jump host (ssh.proxy) is a second session
 * whose direct-tcpip channel is relayed to a socketpair by a private thread
 * (libssh connectors); the target session runs over the other end of the
 * pair (SSH_OPTIONS_FD). That thread is the only user of the jump session.
 */
#include "providers/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void do_init(void)
{
	struct sigaction sa;

	/* A peer closing a socket or pipe must be an error code, not a dead process. */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	init_rc = ssh_init() == SSH_OK ? 0 : -1;
}

int prov_init(void)
{
	pthread_once(&init_once, do_init);
	return init_rc;
}

struct jump {
	ssh_session session;
	ssh_channel channel;
	ssh_event event;
	ssh_connector to_fd, from_fd;
	int fd;          /* the relay's end of the socketpair */
	int session_fd;  /* the jump session's TCP socket */
	pthread_t thread;
	int running;
	atomic_int stop;
};

struct ssh_transport {
	struct transport base; /* first */
	ssh_session session;
	int fd;            /* the session's socket when plumb dialled it, else -1 */
	struct jump *jump;
};

/* Records code with "what: libssh's message" in e; returns code. */
static int ssh_msg(struct plumb_err *e, int code, const char *what, ssh_session s)
{
	return plumb_err_set(e, code, "%s: %s", what, s ? ssh_get_error(s) : "unknown error");
}

/* "[user@]host[:port]" or "[user@][v6addr]:port" */
static int parse_hostspec(const char *spec, char **user, char **host, int *port)
{
	const char *at = strrchr(spec, '@'), *h = at ? at + 1 : spec, *colon;
	char *end;

	*user = at ? xstrndup(spec, (size_t)(at - spec)) : NULL;
	*port = 22;
	if (*h == '[') {
		const char *rb = strchr(h, ']');
		if (!rb)
			goto bad;
		*host = xstrndup(h + 1, (size_t)(rb - h - 1));
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = strrchr(h, ':');
		*host = colon ? xstrndup(h, (size_t)(colon - h)) : xstrdup(h);
	}
	if (colon) {
		long p = strtol(colon + 1, &end, 10);
		if (*end || p <= 0 || p > 65535)
			goto bad_host;
		*port = (int)p;
	}
	if (!**host)
		goto bad_host;
	return 0;
bad_host:
	free(*host);
bad:
	*host = NULL;
	free(*user);
	*user = NULL;
	return PLUMB_EINVAL;
}

/* TCP connect with a deadline; returns the fd or a negative code (message in err). */
static int dial(const char *host, int port, int timeout_ms, struct plumb_err *e)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	char portstr[16];
	int fd = -1, rc, last_errno = 0;

	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		return plumb_err_set(e, PLUMB_EUNREACHABLE, "cannot resolve %s: %s", host,
				     gai_strerror(rc));
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno != EINPROGRESS) {
			last_errno = errno;
			goto next;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		rc = poll(&pfd, 1, timeout_ms);
		if (rc == 0) {
			last_errno = ETIMEDOUT;
			goto next;
		}
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			last_errno = soerr ? soerr : errno;
			goto next;
		}
		break;
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		/* Small request/response packets: Nagle + delayed ACK would add ~40 ms each. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (fd < 0) {
		return plumb_err_set(e, PLUMB_EUNREACHABLE, "cannot connect to %s port %d: %s", host,
				     port, last_errno == ETIMEDOUT ? "connection timed out"
								   : strerror(last_errno));
	}
	return fd;
}

static char *fingerprint(ssh_session s)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL, *out;

	if (ssh_get_server_publickey(s, &key) == SSH_OK &&
	    ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0)
		fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	out = xstrdup(fp ? fp : "(unknown)");
	ssh_string_free_char(fp);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	return out;
}

static int verify_host(ssh_session s, const char *name, int port, const struct transport_opts *o,
		       struct plumb_err *e)
{
	enum ssh_known_hosts_e st = ssh_session_is_known_server(s);
	const char *kh = o->known_hosts ? o->known_hosts : "~/.ssh/known_hosts";
	char *fp;
	int rc = PLUMB_EHOSTKEY;

	if (st == SSH_KNOWN_HOSTS_OK)
		return 0;
	if (st == SSH_KNOWN_HOSTS_ERROR) {
		return ssh_msg(e, PLUMB_EHOSTKEY, "host key check failed", s);
	}
	fp = fingerprint(s);
	switch (st) {
	case SSH_KNOWN_HOSTS_CHANGED:
		plumb_err_set(e, PLUMB_EHOSTKEY,
			      "host key for %s port %d CHANGED (now %s); it does not match %s; "
			 "refusing to connect (possible man-in-the-middle)",
			 name, port, fp, kh);
		break;
	case SSH_KNOWN_HOSTS_OTHER:
		plumb_err_set(e, PLUMB_EHOSTKEY,
			      "%s port %d offered a %s key but %s lists a different key type for it; "
			 "refusing to connect",
			 name, port, fp, kh);
		break;
	default: /* UNKNOWN or NOT_FOUND (file missing) */
		if (o->accept_new_host_keys && o->accept_new_refused) {
			plumb_err_set(e, PLUMB_EHOSTKEY,
				      "host %s port %d is not in known_hosts %s (its key: %s); its key was not "
				 "recorded: %s",
				 name, port, kh, fp, o->accept_new_refused);
			break;
		}
		if (o->accept_new_host_keys) {
			if (ssh_session_update_known_hosts(s) == SSH_OK) {
				rc = 0;
				break;
			}
			ssh_msg(e, PLUMB_EHOSTKEY, "cannot record the new host key", s);
			break;
		}
		plumb_err_set(e, PLUMB_EHOSTKEY,
			      "host %s port %d is not in known_hosts %s (its key: %s); add it, or "
			 "allow new host keys explicitly",
			 name, port, kh, fp);
		break;
	}
	free(fp);
	return rc;
}

/*
 * Offers one private key (freed here): 0 when it is accepted, PLUMB_EAUTH on an
 * authentication error (err set), 1 when the server refuses it.
 */
static int offer_key(ssh_session s, ssh_key key, struct plumb_err *e)
{
	int rc = ssh_userauth_publickey(s, NULL, key);

	ssh_key_free(key);
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	if (rc == SSH_AUTH_ERROR) {
		return ssh_msg(e, PLUMB_EAUTH, "public key authentication", s);
	}
	return 1;
}

/*
 * libssh asks for a key's passphrase through this callback; without one it
 * would prompt on the terminal (or read a pipe) and hang. We never prompt:
 * the invocation's passphrase, if any, is the only answer.
 */
struct pass_ask {
	const char *passphrase; /* SECRET, borrowed; NULL = none given */
	int asked;
};

static int pass_cb(const char *prompt, char *buf, size_t len, int echo, int verify, void *data)
{
	struct pass_ask *a = data;
	size_t n;

	(void)prompt;
	(void)echo;
	(void)verify;
	a->asked = 1;
	if (!a->passphrase || !len || (n = strlen(a->passphrase)) >= len)
		return -1;
	memcpy(buf, a->passphrase, n + 1);
	return 0;
}

/* 0 with *key, or -1 with why (a key needing a passphrase not given is named). */
static int import_key(const char *file, const char *b64, const char *passphrase, ssh_key *key,
		      char *why, size_t whylen)
{
	struct pass_ask a = { passphrase, 0 };
	int rc = file ? ssh_pki_import_privkey_file(file, NULL, pass_cb, &a, key)
		      : ssh_pki_import_privkey_base64(b64, NULL, pass_cb, &a, key);

	if (rc == SSH_OK)
		return 0;
	if (a.asked && !passphrase)
		snprintf(why, whylen, " (key %s skipped: it needs a passphrase and none was given; set "
			 "PLUMB_SSH_KEY_PASSPHRASE)", file ? file : "ssh.key_data");
	else if (a.asked)
		snprintf(why, whylen, " (key %s skipped: the passphrase given does not open it)",
			 file ? file : "ssh.key_data");
	else if (file)
		snprintf(why, whylen, " (a key file could not be read)");
	else
		snprintf(why, whylen, " (ssh.key_data is not a usable private key)");
	return -1;
}

static int authenticate(ssh_session s, const char *label, const struct transport_opts *o,
			struct plumb_err *e)
{
	int tried = 0, rc;
	char why[400] = "";

	rc = ssh_userauth_none(s, NULL);
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	if (rc == SSH_AUTH_ERROR) {
		return ssh_msg(e, PLUMB_EAUTH, "authentication", s);
	}
	for (size_t i = 0; i < o->n_identity_files; i++) {
		ssh_key key = NULL;

		if (import_key(o->identity_files[i], NULL, o->key_passphrase, &key, why, sizeof(why)) < 0)
			continue;
		tried++;
		rc = offer_key(s, key, e);
		if (rc <= 0)
			return rc;
	}
	if (o->key_data && *o->key_data) {
		ssh_key key = NULL;

		/* The key text is never echoed: libssh's message is not used here. */
		if (import_key(NULL, o->key_data, o->key_passphrase, &key, why, sizeof(why)) == 0) {
			tried++;
			rc = offer_key(s, key, e);
			if (rc <= 0)
				return rc;
		}
	}
	if (o->use_agent && getenv("SSH_AUTH_SOCK")) {
		tried++;
		rc = ssh_userauth_agent(s, NULL);
		if (rc == SSH_AUTH_SUCCESS)
			return 0;
	}
	return plumb_err_set(e, PLUMB_EAUTH, "%s: no key was accepted (%d tried%s%s)", label, tried,
			     why, o->use_agent && !getenv("SSH_AUTH_SOCK")
					  ? "; no agent: SSH_AUTH_SOCK unset" : "");
}

/*
 * Creates, connects (over fd if >= 0), verifies and authenticates one session.
 * fd stays the caller's: libssh 0.10 does not close a descriptor given with
 * SSH_OPTIONS_FD, so the caller closes it after ssh_free.
 */
static int session_open(ssh_session *out, const char *host, int port, const char *user,
			int fd, const struct transport_opts *o, struct plumb_err *e)
{
	ssh_session s = ssh_new();
	long tmo = ((o->connect_timeout_ms > 0 ? o->connect_timeout_ms
						: PROV_DEFAULT_CONNECT_TIMEOUT_MS) + 999) / 1000;
	int no = 0, rc;
	char label[300];

	*out = NULL;
	if (!s) {
		return plumb_err_set(e, PLUMB_ERROR, "cannot create an SSH session");
	}
	snprintf(label, sizeof(label), "%s%s%s:%d", user ? user : "", user ? "@" : "", host, port);
	if (tmo < 1)
		tmo = 1;
	/* Never read ~/.ssh/config: what plumb does depends on deploy.yml only. */
	if (ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_HOST, host) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_PORT, &port) < 0 ||
	    (user && ssh_options_set(s, SSH_OPTIONS_USER, user) < 0) ||
	    (o->known_hosts && ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, o->known_hosts) < 0) ||
	    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &tmo) < 0 ||
	    (o->proxy_command && fd < 0 &&
	     ssh_options_set(s, SSH_OPTIONS_PROXYCOMMAND, o->proxy_command) < 0)) {
		rc = ssh_msg(e, PLUMB_EINVAL, "invalid SSH option", s);
		goto fail;
	}
	if (fd >= 0 && ssh_options_set(s, SSH_OPTIONS_FD, &fd) < 0) {
		rc = ssh_msg(e, PLUMB_EINVAL, "invalid SSH option", s);
		goto fail;
	}
	if (ssh_connect(s) != SSH_OK) {
		char what[340];
		snprintf(what, sizeof(what), "%s: SSH handshake failed", label);
		rc = ssh_msg(e, PLUMB_EUNREACHABLE, what, s);
		goto fail;
	}
	rc = verify_host(s, host, port, o, e);
	if (rc < 0)
		goto fail;
	rc = authenticate(s, label, o, e);
	if (rc < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	ssh_disconnect(s);
	ssh_free(s);
	return rc;
}

static void *jump_relay(void *arg)
{
	struct jump *j = arg;

	while (!atomic_load(&j->stop) && ssh_channel_is_open(j->channel) &&
	       !ssh_channel_is_eof(j->channel)) {
		if (ssh_event_dopoll(j->event, 100) == SSH_ERROR)
			break;
	}
	/* Tell the target session its transport ended. */
	shutdown(j->fd, SHUT_RDWR);
	return NULL;
}

static void jump_free(struct jump *j)
{
	if (!j)
		return;
	if (j->running) {
		atomic_store(&j->stop, 1);
		pthread_join(j->thread, NULL);
	}
	if (j->event) {
		if (j->to_fd)
			ssh_event_remove_connector(j->event, j->to_fd);
		if (j->from_fd)
			ssh_event_remove_connector(j->event, j->from_fd);
		ssh_event_free(j->event);
	}
	if (j->to_fd)
		ssh_connector_free(j->to_fd);
	if (j->from_fd)
		ssh_connector_free(j->from_fd);
	if (j->channel) {
		ssh_channel_close(j->channel);
		ssh_channel_free(j->channel);
	}
	if (j->session) {
		ssh_disconnect(j->session);
		ssh_free(j->session);
	}
	if (j->fd >= 0)
		close(j->fd);
	if (j->session_fd >= 0)
		close(j->session_fd);
	free(j);
}

/*
 * Opens the jump session and a direct-tcpip channel to host:port through it;
 * *fd_out receives the socket the target session should use.
 */
static int jump_open(struct jump **out, int *fd_out, const char *host, int port,
		     const struct transport_opts *o, struct plumb_err *e)
{
	struct jump *j = xcalloc(1, sizeof(*j));
	char *juser = NULL, *jhost = NULL;
	int jport, sv[2] = { -1, -1 }, rc, fd;
	char sub[400];

	j->fd = j->session_fd = -1;
	*fd_out = -1;
	rc = parse_hostspec(o->jump, &juser, &jhost, &jport);
	if (rc < 0) {
		plumb_err_set(e, rc, "invalid jump host '%s' (want [user@]host[:port])", o->jump);
		goto fail;
	}
	if (!juser && o->user)
		juser = xstrdup(o->user);
	fd = dial(jhost, jport, o->connect_timeout_ms > 0 ? o->connect_timeout_ms
						      : PROV_DEFAULT_CONNECT_TIMEOUT_MS,
		  e);
	if (fd < 0) {
		rc = plumb_err_prefix(e, "jump host");
		goto fail;
	}
	j->session_fd = fd;
	rc = session_open(&j->session, jhost, jport, juser, fd, o, e);
	if (rc < 0) {
		plumb_err_prefix(e, "jump host");
		goto fail;
	}
	j->channel = ssh_channel_new(j->session);
	if (!j->channel ||
	    ssh_channel_open_forward(j->channel, host, port, "127.0.0.1", 22) != SSH_OK) {
		snprintf(sub, sizeof(sub), "jump host %s cannot open a channel to %s port %d", jhost,
			 host, port);
		rc = ssh_msg(e, PLUMB_EUNREACHABLE, sub, j->session);
		goto fail;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = plumb_err_set(e, PLUMB_ERROR, "socketpair: %s", strerror(errno));
		goto fail;
	}
	j->fd = sv[1];
	j->event = ssh_event_new();
	j->to_fd = ssh_connector_new(j->session);
	j->from_fd = ssh_connector_new(j->session);
	if (!j->event || !j->to_fd || !j->from_fd) {
		rc = plumb_err_set(e, PLUMB_ERROR, "cannot set up the jump relay");
		goto fail;
	}
	ssh_connector_set_in_channel(j->to_fd, j->channel, SSH_CONNECTOR_STDOUT);
	ssh_connector_set_out_fd(j->to_fd, j->fd);
	ssh_connector_set_in_fd(j->from_fd, j->fd);
	ssh_connector_set_out_channel(j->from_fd, j->channel, SSH_CONNECTOR_STDOUT);
	if (ssh_event_add_connector(j->event, j->to_fd) != SSH_OK ||
	    ssh_event_add_connector(j->event, j->from_fd) != SSH_OK) {
		rc = plumb_err_set(e, PLUMB_ERROR, "cannot set up the jump relay");
		goto fail;
	}
	if (pthread_create(&j->thread, NULL, jump_relay, j) != 0) {
		rc = plumb_err_set(e, PLUMB_ERROR, "cannot start the jump relay thread");
		goto fail;
	}
	j->running = 1;
	*fd_out = sv[0];
	*out = j;
	free(juser);
	free(jhost);
	return 0;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	jump_free(j);
	free(juser);
	free(jhost);
	return rc;
}

static void ssh_transport_close(struct transport *t)
{
	struct ssh_transport *st = (struct ssh_transport *)t;

	if (st->session) {
		ssh_disconnect(st->session);
		ssh_free(st->session);
	}
	if (st->fd >= 0)
		close(st->fd);
	jump_free(st->jump);
	free(t->label);
	free(st);
}

static int ssh_err_code(struct ssh_transport *st)
{
	return ssh_is_connected(st->session) ? PLUMB_ERROR : PLUMB_EDISCONNECT;
}

/* What the channel callbacks collect during one command. */
struct run_state {
	struct sbuf *out, *err; /* raw, bounded */
	int truncated, eof, closed, got_status, status, got_signal;
};

static int on_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr,
		   void *userdata)
{
	struct run_state *rs = userdata;

	(void)s;
	(void)ch;
	if (!rs->truncated && sbuf_add(is_stderr ? rs->err : rs->out, data, len) < 0)
		rs->truncated = 1;
	return (int)len; /* always consume, so the window keeps moving */
}

static void on_eof(ssh_session s, ssh_channel ch, void *userdata)
{
	(void)s;
	(void)ch;
	((struct run_state *)userdata)->eof = 1;
}

static void on_close(ssh_session s, ssh_channel ch, void *userdata)
{
	(void)s;
	(void)ch;
	((struct run_state *)userdata)->closed = 1;
}

static void on_exit_status(ssh_session s, ssh_channel ch, int status, void *userdata)
{
	struct run_state *rs = userdata;

	(void)s;
	(void)ch;
	rs->got_status = 1;
	rs->status = status;
}

static void on_exit_signal(ssh_session s, ssh_channel ch, const char *sig, int core,
			   const char *errmsg, const char *lang, void *userdata)
{
	(void)s;
	(void)ch;
	(void)sig;
	(void)core;
	(void)errmsg;
	(void)lang;
	((struct run_state *)userdata)->got_signal = 1;
}

static int ssh_run_input(struct transport *t, const char *cmd, const void *in, size_t in_len,
			 struct cmd_result *r)
{
	struct ssh_transport *st = (struct ssh_transport *)t;
	char token[PROV_TOKEN_LEN + 1];
	struct sbuf line, raw_out, raw_err;
	struct run_state rs = { .out = &raw_out, .err = &raw_err, .status = -1 };
	struct ssh_channel_callbacks_struct cb = {
		.userdata = &rs,
		.channel_data_function = on_data,
		.channel_eof_function = on_eof,
		.channel_close_function = on_close,
		.channel_exit_status_function = on_exit_status,
		.channel_exit_signal_function = on_exit_signal,
	};
	ssh_channel ch = NULL;
	ssh_event ev = NULL;
	double start = prov_now_ms(), deadline = start + t->cmd_timeout_ms;
	int rc = PLUMB_ERROR;
	size_t raw_max = t->max_output + 4096;

	ssh_callbacks_init(&cb);
	cmd_result_init(r, t->max_output);
	sbuf_init(&line, 0);
	sbuf_init(&raw_out, raw_max);
	sbuf_init(&raw_err, raw_max);
	t->stats.commands++;
	if (!ssh_is_connected(st->session)) {
		rc = prov_fail(t, PLUMB_EDISCONNECT, "%s: the SSH session is closed", t->label);
		goto out;
	}
	if (prov_frame_build_stdin(&line, cmd, token, in != NULL) < 0) {
		rc = prov_fail(t, PLUMB_EINVAL, "%s: cannot frame the command", t->label);
		goto out;
	}
	ch = ssh_channel_new(st->session);
	if (!ch || ssh_channel_open_session(ch) != SSH_OK) {
		rc = prov_fail(t, ssh_err_code(st), "%s: cannot open a channel: %s", t->label,
			       ssh_get_error(st->session));
		goto out;
	}
	ssh_set_channel_callbacks(ch, &cb);
	if (ssh_channel_request_exec(ch, line.buf) != SSH_OK) {
		rc = prov_fail(t, ssh_err_code(st), "%s: exec request failed: %s", t->label,
			       ssh_get_error(st->session));
		goto out;
	}
	for (size_t off = 0; off < in_len;) {
		int n = ssh_channel_write(ch, (const char *)in + off,
					  (uint32_t)(in_len - off > 32768 ? 32768 : in_len - off));
		if (n <= 0) {
			rc = prov_fail(t, ssh_err_code(st), "%s: writing the command's input: %s",
				       t->label, ssh_get_error(st->session));
			goto out;
		}
		off += (size_t)n;
	}
	ssh_channel_send_eof(ch);
	ev = ssh_event_new();
	if (!ev || ssh_event_add_session(ev, st->session) != SSH_OK) {
		rc = prov_fail(t, PLUMB_ERROR, "%s: cannot poll the session", t->label);
		goto out;
	}
	/* Until EOF and an exit status (or signal, or close). */
	while (!rs.closed && !(rs.eof && (rs.got_status || rs.got_signal))) {
		int left = (int)(deadline - prov_now_ms());

		if (rs.truncated) {
			ssh_channel_request_send_signal(ch, "KILL");
			rc = prov_fail(t, PLUMB_ETRUNC, "%s: output exceeds %zu bytes", t->label,
				       t->max_output);
			goto partial;
		}
		if (left <= 0) {
			ssh_channel_request_send_signal(ch, "KILL");
			rc = prov_fail(t, PLUMB_ETIMEOUT, "%s: command timed out after %d ms",
				       t->label, t->cmd_timeout_ms);
			goto partial;
		}
		if (ssh_event_dopoll(ev, left) == SSH_ERROR || !ssh_is_connected(st->session)) {
			rc = prov_fail(t, ssh_err_code(st), "%s: reading command output: %s",
				       t->label, ssh_get_error(st->session));
			goto partial;
		}
	}
	if (rs.truncated) {
		rc = prov_fail(t, PLUMB_ETRUNC, "%s: output exceeds %zu bytes", t->label,
			       t->max_output);
		goto partial;
	}
	rc = prov_finish_framed(t, r, token, &raw_out, &raw_err, rs.got_status ? rs.status : -1);
	goto out;
partial:
	prov_keep_partial(r, token, &raw_out, &raw_err);
out:
	if (ev) {
		ssh_event_remove_session(ev, st->session);
		ssh_event_free(ev);
	}
	if (ch) {
		ssh_remove_channel_callbacks(ch, &cb);
		if (ssh_channel_is_open(ch))
			ssh_channel_close(ch);
		ssh_channel_free(ch);
	}
	r->elapsed_ms = prov_now_ms() - start;
	t->stats.command_ms += r->elapsed_ms;
	sbuf_release(&line);
	sbuf_release(&raw_out);
	sbuf_release(&raw_err);
	return rc;
}

static int ssh_run(struct transport *t, const char *cmd, struct cmd_result *r)
{
	return ssh_run_input(t, cmd, NULL, 0, r);
}

static const struct transport_ops ssh_ops = {
	.name = "ssh",
	.run = ssh_run,
	.run_cmd = prov_run_cmd_rendered,
	.run_input = ssh_run_input,
	.close = ssh_transport_close,
};

int transport_ssh_open(struct transport **out, const struct transport_opts *o,
		       struct plumb_err *errp)
{
	struct ssh_transport *st = NULL;
	struct plumb_err e = { 0 };
	char *label = NULL;
	int port = o->port > 0 ? o->port : 22, rc, fd = -1, connects = 0;
	int ctmo = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : PROV_DEFAULT_CONNECT_TIMEOUT_MS;
	double t0 = prov_now_ms();
	struct jump *jump = NULL;
	ssh_session s = NULL;

	*out = NULL;
	if (prov_init() < 0) {
		rc = plumb_err_set(&e, PLUMB_ERROR, "libssh failed to initialise");
		goto fail;
	}
	if (!o->host || !*o->host) {
		rc = plumb_err_set(&e, PLUMB_EINVAL, "no host given");
		goto fail;
	}
	label = xasprintf("%s%s%s:%d", o->user ? o->user : "", o->user ? "@" : "", o->host, port);
	if (o->jump) {
		rc = jump_open(&jump, &fd, o->host, port, o, &e);
		if (rc < 0)
			goto fail;
		connects++;
	} else if (o->connect_to) {
		char *u = NULL, *h = NULL;
		int p;

		if (parse_hostspec(o->connect_to, &u, &h, &p) < 0 || u) {
			free(u);
			free(h);
			rc = plumb_err_set(&e, PLUMB_EINVAL, "invalid connect_to '%s' (want host:port)",
					   o->connect_to);
			goto fail;
		}
		fd = dial(h, p, ctmo, &e);
		free(h);
		if (fd < 0) {
			rc = fd;
			goto fail;
		}
	} else if (!o->proxy_command) {
		fd = dial(o->host, port, ctmo, &e);
		if (fd < 0) {
			rc = fd;
			goto fail;
		}
	}
	rc = session_open(&s, o->host, port, o->user, fd, o, &e);
	if (rc < 0)
		goto fail;
	connects++;
	{
		/* From here on the libssh timeout bounds single blocking steps of a command. */
		long ctm = ((o->cmd_timeout_ms > 0 ? o->cmd_timeout_ms : PROV_DEFAULT_CMD_TIMEOUT_MS) + 999) / 1000;
		ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &ctm);
	}
	st = xcalloc(1, sizeof(*st));
	prov_transport_init(&st->base, &ssh_ops, label, o->cmd_timeout_ms, o->max_output);
	st->session = s;
	st->fd = fd;
	st->jump = jump;
	st->base.stats.connects = (unsigned long)connects;
	st->base.stats.connect_ms = prov_now_ms() - t0;
	*out = &st->base;
	free(label);
	if (errp)
		plumb_err_reset(errp);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	jump_free(jump);
	e.code = rc;
	if (label && strncmp(e.msg, label, strlen(label)) != 0)
		plumb_err_prefix(&e, "%s", label);
	if (errp)
		*errp = e;
	free(label);
	return rc;
}
