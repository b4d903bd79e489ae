/*
 * plumb hosts: what plumb sees on every host of the configuration — app
 * containers per role with their versions, accessories, the proxy, env keys
 * (never values: those only ever exist on the host, as salted hashes here),
 * env files, the deploy lock. Read-only: every command goes through the
 * read-only guard. Exit 0 when every host was observed, 1 otherwise.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/fleet.h"
#include "reconciler/cli.h"
#include "reconciler/load.h"

static const char *status_name(enum obs_status s)
{
	switch (s) {
	case OBS_OK:
		return "ok";
	case OBS_UNREACHABLE:
		return "unreachable";
	case OBS_UNKNOWN:
		return "unknown";
	}
	return "unknown";
}

static const char *kind_name(enum obs_kind k)
{
	switch (k) {
	case OBS_APP:
		return "app";
	case OBS_ACCESSORY:
		return "accessory";
	case OBS_PROXY:
		return "proxy";
	case OBS_OTHER:
		return "other";
	}
	return "other";
}

/* The version of an app container: its name minus "<service>-<role>[-<dest>]-". */
static const char *app_version(const struct config *c, const struct obs_container *ct)
{
	size_t sl = strlen(c->service), rl = ct->role ? strlen(ct->role) : 0;
	const char *n = ct->name, *d = c->destination;

	if (!ct->role || strncmp(n, c->service, sl) != 0 || n[sl] != '-' ||
	    strncmp(n + sl + 1, ct->role, rl) != 0 || n[sl + 1 + rl] != '-')
		return "?";
	n += sl + 1 + rl + 1;
	if (d && *d) {
		size_t dl = strlen(d);
		if (strncmp(n, d, dl) != 0 || n[dl] != '-')
			return "?";
		n += dl + 1;
	}
	return *n ? n : "?";
}

/* The accessory's name in the config ("db" for service optimus-db). */
static const char *accessory_name(const struct config *c, const struct obs_container *ct)
{
	for (size_t i = 0; i < c->naccessories; i++)
		if (ct->service && strcmp(c->accessories[i].service, ct->service) == 0)
			return c->accessories[i].name;
	return ct->service ? ct->service : "?";
}

static const char *short_id(const char *id, char buf[13])
{
	const char *p = id ? id : "";

	if (strncmp(p, "sha256:", 7) == 0)
		p += 7;
	snprintf(buf, 13, "%s", p);
	return buf;
}

static void print_env_keys(const char *indent, const char *label, const struct obs_env *env,
			   size_t n)
{
	if (!n)
		return;
	printf("%s%s:", indent, label);
	for (size_t i = 0; i < n; i++)
		printf("%s %s (value hidden)", i ? "," : "", env[i].key);
	putchar('\n');
}

static void print_container(const struct config *c, const struct obs_container *ct)
{
	char sid[13];

	if (ct->kind == OBS_APP)
		printf("    %-10s %-8s version %s\n", ct->role, ct->name, app_version(c, ct));
	else if (ct->kind == OBS_ACCESSORY)
		printf("    %-10s %s\n", accessory_name(c, ct), ct->name);
	else
		printf("    %s\n", ct->name);
	printf("      state %s%s%s, image %s (%s), restart %s\n", ct->state,
	       ct->health ? ", " : "", ct->health ? ct->health : "", short_id(ct->image_id, sid),
	       ct->image_ref ? ct->image_ref : "?", ct->restart_policy ? ct->restart_policy : "?");
	for (size_t i = 0; i < ct->nports; i++)
		printf("      port %s%s%s -> %s\n", ct->ports[i].host_ip,
		       *ct->ports[i].host_ip ? ":" : "", ct->ports[i].host_port,
		       ct->ports[i].container_port);
	for (size_t i = 0; i < ct->nmounts; i++)
		printf("      %s %s:%s%s\n", ct->mounts[i].type, ct->mounts[i].source,
		       ct->mounts[i].destination, ct->mounts[i].rw ? "" : " (ro)");
	print_env_keys("      ", "env", ct->env, ct->nenv);
}

static void print_group(const struct config *c, const struct obs_host *h, enum obs_kind k,
			const char *title)
{
	int any = 0;

	for (size_t i = 0; i < h->ncontainers; i++) {
		if (h->containers[i].kind != k)
			continue;
		if (!any)
			printf("  %s:\n", title);
		any = 1;
		print_container(c, &h->containers[i]);
	}
}

static void print_text(const struct config *c, const struct obs_fleet *f)
{
	for (size_t i = 0; i < f->nhosts; i++) {
		const struct obs_host *h = &f->hosts[i];
		size_t others = 0;

		printf("%s: %s", h->host, status_name(h->status));
		if (h->status == OBS_OK)
			printf(" (%u round trip%s; connect %.0f ms, observe %.0f ms; docker %s)\n",
			       h->round_trips, h->round_trips == 1 ? "" : "s", h->connect_ms,
			       h->observe_ms, h->docker_version ? h->docker_version : "?");
		else
			printf(" - %s\n", h->error ? h->error : "not observed");
		if (h->status != OBS_OK)
			continue;
		if (h->ncontainers == 0)
			printf("  no containers of %s\n", c->service);
		print_group(c, h, OBS_APP, "app");
		print_group(c, h, OBS_ACCESSORY, "accessories");
		print_group(c, h, OBS_PROXY, "proxy");
		for (size_t j = 0; j < h->ncontainers; j++)
			others += h->containers[j].kind == OBS_OTHER;
		if (others)
			printf("  not ours: %zu container%s labelled service=%s with another destination "
			       "or no role (ignored)\n",
			       others, others == 1 ? "" : "s", c->service);
		if (h->nenv_files)
			printf("  env files:\n");
		for (size_t j = 0; j < h->nenv_files; j++) {
			const struct obs_env_file *ef = &h->env_files[j];
			printf("    %s (mode %04o)\n", ef->path, (unsigned)ef->mode);
			print_env_keys("      ", "keys", ef->vars, ef->nvars);
		}
		if (h->lock_holder) {
			printf("  deploy lock held:\n");
			for (const char *p = h->lock_holder; *p;) {
				size_t n = strcspn(p, "\n");
				printf("    %.*s\n", (int)n, p);
				p += n;
				if (*p)
					p++;
			}
		}
	}
}

static json_t *env_json(const struct obs_env *env, size_t n)
{
	json_t *o = json_object();

	for (size_t i = 0; i < n; i++)
		json_object_set_new(o, env[i].key, json_string("(value hidden)"));
	return o;
}

static json_t *kvs_json(const struct kvs *m)
{
	json_t *o = json_object();

	for (size_t i = 0; i < m->n; i++)
		json_object_set_new(o, m->keys[i], json_string(m->vals[i]));
	return o;
}

static json_t *strvec_json(const struct strvec *sv)
{
	json_t *a = json_array();

	for (size_t i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

static json_t *nullable(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *container_json(const struct config *c, const struct obs_container *ct)
{
	json_t *o = json_object(), *a;

	json_object_set_new(o, "kind", json_string(kind_name(ct->kind)));
	json_object_set_new(o, "name", json_string(ct->name));
	json_object_set_new(o, "id", json_string(ct->id));
	if (ct->kind == OBS_APP) {
		json_object_set_new(o, "role", json_string(ct->role));
		json_object_set_new(o, "version", json_string(app_version(c, ct)));
	}
	if (ct->kind == OBS_ACCESSORY)
		json_object_set_new(o, "accessory", json_string(accessory_name(c, ct)));
	json_object_set_new(o, "state", json_string(ct->state));
	json_object_set_new(o, "health", nullable(ct->health));
	json_object_set_new(o, "exit_code", json_integer(ct->exit_code));
	json_object_set_new(o, "image", nullable(ct->image_ref));
	json_object_set_new(o, "image_id", nullable(ct->image_id));
	json_object_set_new(o, "created", nullable(ct->created));
	json_object_set_new(o, "cmd", strvec_json(&ct->cmd));
	json_object_set_new(o, "labels", kvs_json(&ct->labels));
	json_object_set_new(o, "env", env_json(ct->env, ct->nenv));
	a = json_array();
	for (size_t i = 0; i < ct->nports; i++) {
		json_t *p = json_object();
		json_object_set_new(p, "container_port", json_string(ct->ports[i].container_port));
		json_object_set_new(p, "host_ip", json_string(ct->ports[i].host_ip));
		json_object_set_new(p, "host_port", json_string(ct->ports[i].host_port));
		json_array_append_new(a, p);
	}
	json_object_set_new(o, "ports", a);
	a = json_array();
	for (size_t i = 0; i < ct->nmounts; i++) {
		json_t *m = json_object();
		json_object_set_new(m, "type", json_string(ct->mounts[i].type));
		json_object_set_new(m, "source", json_string(ct->mounts[i].source));
		json_object_set_new(m, "destination", json_string(ct->mounts[i].destination));
		json_object_set_new(m, "rw", json_boolean(ct->mounts[i].rw));
		json_array_append_new(a, m);
	}
	json_object_set_new(o, "mounts", a);
	json_object_set_new(o, "restart", nullable(ct->restart_policy));
	json_object_set_new(o, "log_driver", nullable(ct->log_driver));
	json_object_set_new(o, "log_opts", kvs_json(&ct->log_opts));
	json_object_set_new(o, "networks", strvec_json(&ct->networks));
	json_object_set_new(o, "options", kvs_json(&ct->options));
	return o;
}

static json_t *fleet_json(const struct config *c, const struct obs_fleet *f)
{
	json_t *root = json_object(), *hosts = json_array();

	json_object_set_new(root, "service", json_string(c->service));
	json_object_set_new(root, "destination", nullable(c->destination));
	for (size_t i = 0; i < f->nhosts; i++) {
		const struct obs_host *h = &f->hosts[i];
		json_t *o = json_object(), *cs = json_array(), *efs = json_array();

		json_object_set_new(o, "host", json_string(h->host));
		json_object_set_new(o, "status", json_string(status_name(h->status)));
		json_object_set_new(o, "error", nullable(h->error));
		json_object_set_new(o, "round_trips", json_integer(h->round_trips));
		json_object_set_new(o, "connect_ms", json_real(h->connect_ms));
		json_object_set_new(o, "observe_ms", json_real(h->observe_ms));
		json_object_set_new(o, "docker_version", nullable(h->docker_version));
		json_object_set_new(o, "lock", nullable(h->lock_holder));
		for (size_t j = 0; j < h->ncontainers; j++)
			if (h->containers[j].kind != OBS_OTHER)
				json_array_append_new(cs, container_json(c, &h->containers[j]));
		json_object_set_new(o, "containers", cs);
		{
			size_t others = 0;
			for (size_t j = 0; j < h->ncontainers; j++)
				others += h->containers[j].kind == OBS_OTHER;
			json_object_set_new(o, "ignored_containers", json_integer((json_int_t)others));
		}
		for (size_t j = 0; j < h->nenv_files; j++) {
			const struct obs_env_file *ef = &h->env_files[j];
			json_t *e = json_object();
			char mode[8];

			snprintf(mode, sizeof(mode), "%04o", (unsigned)ef->mode);
			json_object_set_new(e, "path", json_string(ef->path));
			json_object_set_new(e, "mode", json_string(mode));
			json_object_set_new(e, "env", env_json(ef->vars, ef->nvars));
			json_array_append_new(efs, e);
		}
		json_object_set_new(o, "env_files", efs);
		json_array_append_new(hosts, o);
	}
	json_object_set_new(root, "hosts", hosts);
	return root;
}

int cmd_hosts(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "destination", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "trusted", no_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct rec_load_opts lo = { 0 };
	struct rec_loaded ld = { 0 };
	struct fleet_opts fo = { 0 };
	struct obs_fleet *f = NULL;
	char err[256];
	int json = 0, ch, rc = REC_EXIT_ERROR, orc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:d:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			lo.config_path = optarg;
			break;
		case 'd':
			lo.destination = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 't':
			lo.trusted = 1;
			break;
		default:
			rec_print_usage(rec_find_command("hosts"), stderr);
			return REC_EXIT_ERROR;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "plumb hosts: unexpected argument '%s'\n", argv[optind]);
		return REC_EXIT_ERROR;
	}
	if (rec_load(&ld, &lo) < 0 || rec_require_computed(ld.config, "hosts") < 0)
		goto out;
	fo.root = ld.root;
	fo.trusted = lo.trusted;
	orc = fleet_observe(&f, ld.config, &fo, err, sizeof(err));
	if (orc < 0) {
		fprintf(stderr, "plumb hosts: %s\n", err);
		goto out;
	}
	if (json) {
		json_t *o = fleet_json(ld.config, f);
		rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ? REC_EXIT_ERROR
										 : REC_EXIT_OK;
		putchar('\n');
		json_decref(o);
	} else {
		print_text(ld.config, f);
		rc = REC_EXIT_OK;
	}
	if (orc > 0) {
		fprintf(stderr, "plumb hosts: not observed:");
		for (size_t i = 0; i < f->nhosts; i++)
			if (f->hosts[i].status != OBS_OK)
				fprintf(stderr, " %s (%s)", f->hosts[i].host,
					status_name(f->hosts[i].status));
		fputc('\n', stderr);
		rc = REC_EXIT_ERROR;
	}
	rec_report_trust(ld.config, stderr);
out:
	obs_fleet_free(f);
	rec_loaded_release(&ld);
	return rc;
}
