/*
 * The invocation and the fleet's trust policy (invocation.h).
 */
#include "reconciler/invocation.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "state/trust.h"

static const char *env_getenv(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

static const char *nonempty(const char *v)
{
	return v && *v ? v : NULL;
}

void rec_invocation_read(struct rec_invocation *inv,
			 const char *(*getenv_fn)(const char *name, void *ctx), void *ctx)
{
	const char *v;

	if (!getenv_fn)
		getenv_fn = env_getenv;
	memset(inv, 0, sizeof(*inv));
	inv->ssh_known_hosts = nonempty(getenv_fn("PLUMB_SSH_KNOWN_HOSTS", ctx));
	inv->ssh_key = nonempty(getenv_fn("PLUMB_SSH_KEY", ctx));
	inv->ssh_key_passphrase = nonempty(getenv_fn("PLUMB_SSH_KEY_PASSPHRASE", ctx));
	inv->ssh_connect_to = nonempty(getenv_fn("PLUMB_SSH_CONNECT_TO", ctx));
	inv->debug_observation = nonempty(getenv_fn("PLUMB_DEBUG_OBSERVATION", ctx));
	v = getenv_fn("PLUMB_SSH_ACCEPT_NEW", ctx);
	inv->ssh_accept_new = v && strcmp(v, "1") == 0;
	v = getenv_fn("PLUMB_ALLOW_LOCAL", ctx);
	inv->allow_local = v && strcmp(v, "1") == 0;
	v = getenv_fn("PLUMB_OBS_MAX_OUTPUT", ctx);
	if (v && *v) {
		/* a test knob: it may only lower the bound */
		unsigned long long n = strtoull(v, NULL, 10);
		inv->obs_max_output = n > 0 && n < PROV_DEFAULT_MAX_OUTPUT && *v != '-' ? (size_t)n
										: PROV_DEFAULT_MAX_OUTPUT;
	}
}

static char *expand_path(const char *p, const char *root)
{
	const char *home = getenv("HOME");

	if (p[0] == '~' && (p[1] == '/' || p[1] == '\0'))
		return xasprintf("%s%s", home ? home : "", p + 1);
	if (p[0] != '/' && root)
		return xasprintf("%s/%s", root, p);
	return xstrdup(p);
}

/* known_hosts and keys under trust; 0 or PLUMB_EOUTSIDE with err. */
static int trust_paths(struct rec_fleet_settings *s, const struct config *c,
		       const struct rec_invocation *inv, const char *root, int trusted,
		       struct plumb_err *err)
{
	const char *kh = kvs_get(&c->x_plumb, "ssh.known_hosts");

	if (inv->ssh_known_hosts) {
		s->known_hosts = xstrdup(inv->ssh_known_hosts);
	} else if (kh && trusted) {
		s->known_hosts = expand_path(kh, root);
	} else if (kh) {
		s->known_hosts = trust_resolve_inside(root, kh);
		if (!s->known_hosts)
			return plumb_err_set(err, PLUMB_EOUTSIDE,
					     "x-plumb.ssh.known_hosts '%s' is outside the repository; an "
					     "untrusted run uses only a known_hosts file inside it (or "
					     "PLUMB_SSH_KNOWN_HOSTS)", kh);
	}
	if (inv->ssh_key)
		strvec_push(&s->keys, inv->ssh_key);
	for (size_t i = 0; i < c->ssh.keys.n; i++) {
		const char *k = c->ssh.keys.v[i];
		char *p;

		if (trusted) {
			strvec_push_take(&s->keys, expand_path(k, NULL));
			continue;
		}
		if (!trust_path_is_inside(k))
			continue;
		p = trust_resolve_inside(root, k);
		if (!p)
			return plumb_err_set(err, PLUMB_EOUTSIDE,
					     "ssh.keys '%s' leads outside the repository (a symbolic "
					     "link?); an untrusted run uses only keys inside it, "
					     "PLUMB_SSH_KEY and the SSH agent", k);
		strvec_push_take(&s->keys, p);
	}
	return 0;
}

/* The first usable ssh.key_data (a secret's value, or a literal key); trusted only. */
static const char *key_data(const struct config *c)
{
	for (size_t i = 0; i < c->ssh.key_data.n; i++) {
		const char *k = c->ssh.key_data.v[i];
		int avail = 0;
		const char *v = config_secret_value(c, k, &avail);

		if (v && avail)
			return v;
		if (strncmp(k, "-----BEGIN", 10) == 0)
			return k;
	}
	return NULL;
}

int rec_fleet_settings(struct rec_fleet_settings *s, const struct config *c,
		       const struct rec_invocation *inv, const char *root, int trusted,
		       struct plumb_err *err)
{
	struct fleet_opts *fo = &s->fo;
	const char *v;
	int rc;

	memset(s, 0, sizeof(*s));
	if (!root)
		root = ".";
	config_all_hosts(c, &s->hosts);
	/* A repository that names this machine would have an untrusted run (a PR
	 * check) observe the runner itself: only the invocation may allow it. */
	if (!trusted && !inv->allow_local) {
		for (size_t i = 0; i < s->hosts.n; i++)
			if (rec_host_is_this_machine(s->hosts.v[i]))
				return plumb_err_set(err, PLUMB_EUNTRUSTED,
						     "host '%s' is this machine: an untrusted run does "
						     "not observe it because the repository says so (pass "
						     "--trusted, or set PLUMB_ALLOW_LOCAL=1)",
						     s->hosts.v[i]);
	}
	rc = trust_paths(s, c, inv, root, trusted, err);
	if (rc < 0)
		return rc;
	fo->accept_new = inv->ssh_accept_new;
	if (!fo->accept_new && trusted)
		fo->accept_new = (v = kvs_get(&c->x_plumb, "ssh.accept_new_host_keys")) && strcmp(v, "true") == 0;
	if (fo->accept_new && !trusted && c->ssh.proxy)
		s->accept_new_refused = xstrdup(
			"PLUMB_SSH_ACCEPT_NEW does not apply to a connection through ssh.proxy in an "
			"untrusted run: the repository chose that route, and a jump host can answer for "
			"any name (add the key to known_hosts yourself)");
	fo->hosts = (const char *const *)s->hosts.v;
	fo->nhosts = s->hosts.n;
	fo->user = c->ssh.user ? c->ssh.user : "root";
	fo->port = c->ssh.port;
	fo->keys = (const char *const *)s->keys.v;
	fo->nkeys = s->keys.n;
	fo->key_data = trusted ? key_data(c) : NULL;
	fo->key_passphrase = inv->ssh_key_passphrase;
	fo->known_hosts = s->known_hosts;
	fo->accept_new_refused = s->accept_new_refused;
	fo->jump = c->ssh.proxy;
	fo->proxy_command = trusted ? c->ssh.proxy_command : NULL;
	fo->connect_to = inv->ssh_connect_to;
	fo->dump = inv->debug_observation;
	fo->max_output = inv->obs_max_output;
	/* Kamal's sshkit.max_concurrent_starts, else the pool's default */
	v = kvs_get(&c->sshkit, "max_concurrent_starts");
	fo->concurrency = v && atoi(v) > 0 ? atoi(v) : 0;
	return 0;
}

void rec_fleet_settings_release(struct rec_fleet_settings *s)
{
	strvec_release(&s->hosts);
	strvec_release(&s->keys);
	free(s->known_hosts);
	free(s->accept_new_refused);
	memset(s, 0, sizeof(*s));
}

static int addr_is_local4(const struct in_addr *a)
{
	uint32_t h = ntohl(a->s_addr);

	return (h >> 24) == 127 || h == 0;
}

static int addr_is_local6(const struct in6_addr *a)
{
	if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a))
		return 1;
	if (IN6_IS_ADDR_V4MAPPED(a)) {
		struct in_addr v4;
		memcpy(&v4, &a->s6_addr[12], 4);
		return addr_is_local4(&v4);
	}
	return 0;
}

static int same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (!a || !b || a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr, 16) == 0;
	return 0;
}

static int addr_is_ours(const struct sockaddr *sa)
{
	struct ifaddrs *ifs = NULL;
	int ours = 0;

	if (getifaddrs(&ifs) != 0)
		return 0;
	for (struct ifaddrs *i = ifs; i && !ours; i = i->ifa_next)
		ours = same_addr(i->ifa_addr, sa);
	freeifaddrs(ifs);
	return ours;
}

int rec_host_is_this_machine(const char *host)
{
	struct addrinfo hints, *res = NULL;
	int local = 0;

	if (!host || !*host)
		return 0;
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return 0;
	for (struct addrinfo *a = res; a && !local; a = a->ai_next) {
		if (a->ai_family == AF_INET)
			local = addr_is_local4(&((const struct sockaddr_in *)(const void *)a->ai_addr)->sin_addr);
		else if (a->ai_family == AF_INET6)
			local = addr_is_local6(&((const struct sockaddr_in6 *)(const void *)a->ai_addr)->sin6_addr);
		if (!local)
			local = addr_is_ours(a->ai_addr);
	}
	freeaddrinfo(res);
	return local;
}
