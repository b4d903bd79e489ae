/*
 * plumb hosts: what plumb sees on every host of the configuration — app
 * containers per role with their versions, accessories, the proxy, env keys
 * (never values: those only ever exist on the host, as salted hashes here),
 * env files, the deploy lock. Read-only: every command goes through the
 * read-only guard. Exit 0 when every host was observed, 1 otherwise.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff/render.h"
#include "reconciler/cli.h"
#include "reconciler/load.h"
#include "reconciler/pipeline.h"
#include "reconciler/source_opts.h"
#include "state/escape.h"
#include "state/json_text.h"

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

/*
 * Text output: every string that came from a host (or the config) goes
 * through the plan renderer's escaping, so a container name, env key or path
 * cannot send terminal escapes; built in one buffer, written once.
 */
static void put(struct sbuf *sb, const char *s)
{
	render_text_escape(sb, s ? s : "?");
}

/* put, padded with spaces to width columns (like %-Ns). */
static void put_pad(struct sbuf *sb, const char *s, size_t width)
{
	size_t before = sb->len;

	put(sb, s);
	while (sb->len - before < width)
		sbuf_addc(sb, ' ');
}

static void print_env_keys(struct sbuf *sb, const char *indent, const char *label,
			   const struct obs_env *env, size_t n)
{
	if (!n)
		return;
	sbuf_addf(sb, "%s%s:", indent, label);
	for (size_t i = 0; i < n; i++) {
		sbuf_adds(sb, i ? ", " : " ");
		put(sb, env[i].key);
		sbuf_adds(sb, " (value hidden)");
	}
	sbuf_addc(sb, '\n');
}

static void print_container(struct sbuf *sb, const struct config *c, const struct obs_container *ct)
{
	char sid[13];

	sbuf_adds(sb, "    ");
	if (ct->kind == OBS_APP) {
		put_pad(sb, ct->role, 10);
		sbuf_addc(sb, ' ');
		put_pad(sb, ct->name, 8);
		sbuf_adds(sb, " version ");
		put(sb, app_version(c, ct));
	} else if (ct->kind == OBS_ACCESSORY) {
		put_pad(sb, accessory_name(c, ct), 10);
		sbuf_addc(sb, ' ');
		put(sb, ct->name);
	} else {
		put(sb, ct->name);
	}
	sbuf_adds(sb, "\n      state ");
	put(sb, ct->state);
	if (ct->health) {
		sbuf_adds(sb, ", ");
		put(sb, ct->health);
	}
	sbuf_adds(sb, ", image ");
	put(sb, short_id(ct->image_id, sid));
	sbuf_adds(sb, " (");
	put(sb, ct->image_ref);
	sbuf_adds(sb, "), restart ");
	put(sb, ct->restart_policy);
	sbuf_addc(sb, '\n');
	for (size_t i = 0; i < ct->nports; i++) {
		sbuf_adds(sb, "      port ");
		put(sb, ct->ports[i].host_ip);
		if (ct->ports[i].host_ip && *ct->ports[i].host_ip)
			sbuf_addc(sb, ':');
		put(sb, ct->ports[i].host_port);
		sbuf_adds(sb, " -> ");
		put(sb, ct->ports[i].container_port);
		sbuf_addc(sb, '\n');
	}
	for (size_t i = 0; i < ct->nmounts; i++) {
		sbuf_adds(sb, "      ");
		put(sb, ct->mounts[i].type);
		sbuf_addc(sb, ' ');
		put(sb, ct->mounts[i].source);
		sbuf_addc(sb, ':');
		put(sb, ct->mounts[i].destination);
		sbuf_adds(sb, ct->mounts[i].rw ? "\n" : " (ro)\n");
	}
	print_env_keys(sb, "      ", "env", ct->env, ct->nenv);
}

static void print_group(struct sbuf *sb, const struct config *c, const struct obs_host *h,
			enum obs_kind k, const char *title)
{
	int any = 0;

	for (size_t i = 0; i < h->ncontainers; i++) {
		if (h->containers[i].kind != k)
			continue;
		if (!any)
			sbuf_addf(sb, "  %s:\n", title);
		any = 1;
		print_container(sb, c, &h->containers[i]);
	}
}

static void print_text(struct sbuf *sb, const struct config *c, const struct obs_fleet *f)
{
	for (size_t i = 0; i < f->nhosts; i++) {
		const struct obs_host *h = &f->hosts[i];
		size_t others = 0;

		put(sb, h->host);
		sbuf_addf(sb, ": %s", status_name(h->status));
		if (h->status == OBS_OK) {
			sbuf_addf(sb, " (%u round trip%s; connect %.0f ms, observe %.0f ms",
				  h->round_trips, h->round_trips == 1 ? "" : "s", h->connect_ms, h->observe_ms);
			/* the observation no longer asks docker for its version (it costs a
			 * daemon round trip); show it only when some source reported it */
			if (h->docker_version) {
				sbuf_adds(sb, "; docker ");
				put(sb, h->docker_version);
			}
			sbuf_adds(sb, ")\n");
		} else {
			sbuf_adds(sb, " - ");
			put(sb, h->error ? h->error : "not observed");
			sbuf_addc(sb, '\n');
		}
		if (h->status != OBS_OK)
			continue;
		if (h->ncontainers == 0) {
			sbuf_adds(sb, "  no containers of ");
			put(sb, c->service);
			sbuf_addc(sb, '\n');
		}
		print_group(sb, c, h, OBS_APP, "app");
		print_group(sb, c, h, OBS_ACCESSORY, "accessories");
		print_group(sb, c, h, OBS_PROXY, "proxy");
		for (size_t j = 0; j < h->ncontainers; j++)
			others += h->containers[j].kind == OBS_OTHER;
		if (others) {
			sbuf_addf(sb, "  not ours: %zu container%s labelled service=", others, others == 1 ? "" : "s");
			put(sb, c->service);
			sbuf_adds(sb, " with another destination or no role (ignored)\n");
		}
		if (h->nenv_files)
			sbuf_adds(sb, "  env files:\n");
		for (size_t j = 0; j < h->nenv_files; j++) {
			const struct obs_env_file *ef = &h->env_files[j];
			sbuf_adds(sb, "    ");
			put(sb, ef->path);
			sbuf_addf(sb, " (mode %04o)\n", (unsigned)ef->mode);
			print_env_keys(sb, "      ", "keys", ef->vars, ef->nvars);
		}
		if (h->lock_holder) {
			sbuf_adds(sb, "  deploy lock held:\n");
			for (const char *p = h->lock_holder; *p;) {
				size_t n = strcspn(p, "\n");
				char *line = xstrndup(p, n);
				sbuf_adds(sb, "    ");
				put(sb, line);
				sbuf_addc(sb, '\n');
				free(line);
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
		jtext_set(o, env[i].key, jtext("(value hidden)"));
	return o;
}

static json_t *container_json(const struct config *c, const struct obs_container *ct)
{
	json_t *o = json_object(), *a;

	json_object_set_new(o, "kind", jtext(kind_name(ct->kind)));
	json_object_set_new(o, "name", jtext(ct->name));
	json_object_set_new(o, "id", jtext(ct->id));
	if (ct->kind == OBS_APP) {
		json_object_set_new(o, "role", jtext(ct->role));
		json_object_set_new(o, "version", jtext(app_version(c, ct)));
	}
	if (ct->kind == OBS_ACCESSORY)
		json_object_set_new(o, "accessory", jtext(accessory_name(c, ct)));
	json_object_set_new(o, "state", jtext(ct->state));
	json_object_set_new(o, "health", jtext(ct->health));
	json_object_set_new(o, "exit_code", json_integer(ct->exit_code));
	json_object_set_new(o, "image", jtext(ct->image_ref));
	json_object_set_new(o, "image_id", jtext(ct->image_id));
	json_object_set_new(o, "created", jtext(ct->created));
	json_object_set_new(o, "cmd", jtext_strvec(&ct->cmd));
	json_object_set_new(o, "labels", jtext_kvs(&ct->labels));
	json_object_set_new(o, "env", env_json(ct->env, ct->nenv));
	a = json_array();
	for (size_t i = 0; i < ct->nports; i++) {
		json_t *p = json_object();
		json_object_set_new(p, "container_port", jtext(ct->ports[i].container_port));
		json_object_set_new(p, "host_ip", jtext(ct->ports[i].host_ip));
		json_object_set_new(p, "host_port", jtext(ct->ports[i].host_port));
		json_array_append_new(a, p);
	}
	json_object_set_new(o, "ports", a);
	a = json_array();
	for (size_t i = 0; i < ct->nmounts; i++) {
		json_t *m = json_object();
		json_object_set_new(m, "type", jtext(ct->mounts[i].type));
		json_object_set_new(m, "source", jtext(ct->mounts[i].source));
		json_object_set_new(m, "destination", jtext(ct->mounts[i].destination));
		json_object_set_new(m, "rw", json_boolean(ct->mounts[i].rw));
		json_array_append_new(a, m);
	}
	json_object_set_new(o, "mounts", a);
	json_object_set_new(o, "restart", jtext(ct->restart_policy));
	json_object_set_new(o, "log_driver", jtext(ct->log_driver));
	json_object_set_new(o, "log_opts", jtext_kvs(&ct->log_opts));
	json_object_set_new(o, "networks", jtext_strvec(&ct->networks));
	json_object_set_new(o, "options", jtext_kvs(&ct->options));
	return o;
}

static json_t *fleet_json(const struct config *c, const struct obs_fleet *f)
{
	json_t *root = json_object(), *hosts = json_array();

	json_object_set_new(root, "service", jtext(c->service));
	json_object_set_new(root, "destination", jtext(c->destination));
	for (size_t i = 0; i < f->nhosts; i++) {
		const struct obs_host *h = &f->hosts[i];
		json_t *o = json_object(), *cs = json_array(), *efs = json_array();

		json_object_set_new(o, "host", jtext(h->host));
		json_object_set_new(o, "status", jtext(status_name(h->status)));
		json_object_set_new(o, "error", jtext(h->error));
		json_object_set_new(o, "round_trips", json_integer(h->round_trips));
		json_object_set_new(o, "connect_ms", json_real(h->connect_ms));
		json_object_set_new(o, "observe_ms", json_real(h->observe_ms));
		json_object_set_new(o, "docker_version", jtext(h->docker_version));
		json_object_set_new(o, "lock", jtext(h->lock_holder));
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
			json_object_set_new(e, "path", jtext(ef->path));
			json_object_set_new(e, "mode", jtext(mode));
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
	struct rec_pipeline_opts po = { .cmd = "hosts", .until = REC_STAGE_OBSERVE, .mode = FLEET_READ_ONLY };
	struct rec_pipeline_result res = { 0 };
	const struct obs_fleet *f;
	int json = 0, rc = REC_EXIT_ERROR;
	const struct rec_extra_opt extra[] = { { "json", 0, NULL, &json }, { NULL, 0, NULL, NULL } };
	const struct rec_source_spec spec = { "hosts", REC_SRC_CONFIG | REC_SRC_TRUSTED | REC_SRC_TIMEOUT, extra,
					      NULL };

	if (rec_source_opts_parse(&po.src, &spec, argc, argv) < 0)
		return REC_EXIT_ERROR;
	if (rec_pipeline_run(&res, &po) < 0) {
		esc_fputs(res.log, stderr);
		goto out;
	}
	f = res.obs;
	if (json) {
		json_t *o = fleet_json(res.config, f);
		rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ? REC_EXIT_ERROR
										 : REC_EXIT_OK;
		putchar('\n');
		json_decref(o);
	} else {
		struct sbuf sb;
		sbuf_init(&sb, 0);
		print_text(&sb, res.config, f);
		rc = fwrite(sb.buf, 1, sb.len, stdout) == sb.len ? REC_EXIT_OK : REC_EXIT_ERROR;
		sbuf_release(&sb);
	}
	if (res.observe_rc > 0) {
		struct sbuf sb;

		sbuf_init(&sb, 0);
		for (size_t i = 0; i < f->nhosts; i++)
			if (f->hosts[i].status != OBS_OK) {
				sbuf_addc(&sb, ' ');
				put(&sb, f->hosts[i].host);
				sbuf_addf(&sb, " (%s)", status_name(f->hosts[i].status));
			}
		fprintf(stderr, "plumb hosts: not observed:%s\n", sb.buf);
		sbuf_release(&sb);
		rc = REC_EXIT_ERROR;
	}
	/* what an untrusted run turned off, after the output as before */
	esc_fputs(res.log, stderr);
out:
	rec_pipeline_result_release(&res);
	return rc;
}
