/*
 * Observed state from a desired state (synth_obs.h).
 */
#include "state/synth_obs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* env as the host holds it: an unavailable secret is not there; a value the
 * host expands, or one computed at deploy time, has some value (the diff
 * does not compare those); env files hold the secret lines only */
static void copy_env(struct obs_env **out, size_t *n, const struct des_env *env, size_t nenv,
		     int file)
{
	*out = xcalloc(nenv ? nenv : 1, sizeof(**out));
	*n = 0;
	for (size_t i = 0; i < nenv; i++) {
		struct obs_env *e;
		if (env[i].kind == DES_ENV_UNAVAILABLE || (file && env[i].kind != DES_ENV_SECRET))
			continue;
		e = &(*out)[(*n)++];
		e->key = xstrdup(env[i].key);
		memcpy(e->hash, env[i].hash, sizeof(e->hash));
	}
}

/* The image a container runs, as the host would list it (no defaults of its
 * own known here); an image without a known identity gets one from its
 * reference, so that it is "observed". */
static void add_image(struct obs_host *oh, struct obs_container *oc)
{
	char h[HASH_HEX_LEN + 1];

	if (!oc->image_id) {
		const char *ref = oc->image_ref ? oc->image_ref : oc->name;
		hash_sha256_hex(ref, strlen(ref), h);
		oc->image_id = xasprintf("sha256:%s", h);
	}
	for (size_t i = 0; i < oh->nimages; i++)
		if (strcmp(oh->images[i].id, oc->image_id) == 0)
			return;
	oh->images = xrealloc(oh->images, (oh->nimages + 1) * sizeof(*oh->images));
	memset(&oh->images[oh->nimages], 0, sizeof(*oh->images));
	oh->images[oh->nimages].id = xstrdup(oc->image_id);
	if (oc->image_ref)
		strvec_push(&oh->images[oh->nimages].repo_tags, oc->image_ref);
	oh->nimages++;
}

static void container(struct obs_container *oc, const struct des_container *dc, size_t seq)
{
	static const enum obs_kind kinds[] = { [DES_APP] = OBS_APP, [DES_ACCESSORY] = OBS_ACCESSORY,
					       [DES_PROXY] = OBS_PROXY };
	const char *v;

	/* an id as docker's look: 64 hex digits, unique within the fleet */
	oc->id = xasprintf("%064zx", seq + 1);
	oc->name = xstrdup(dc->name);
	oc->kind = kinds[dc->kind];
	oc->image_ref = dc->image_ref ? xstrdup(dc->image_ref) : NULL;
	oc->image_id = dc->image_id ? xstrdup(dc->image_id) : NULL;
	oc->state = xstrdup("running");
	for (size_t i = 0; i < dc->cmd_argv.n; i++)
		strvec_push(&oc->cmd, dc->cmd_argv.v[i]);
	copy_env(&oc->env, &oc->nenv, dc->env, dc->nenv, 0);
	kvs_copy(&oc->labels, &dc->labels);
	oc->mounts = xcalloc(dc->nmounts ? dc->nmounts : 1, sizeof(*oc->mounts));
	for (size_t i = 0; i < dc->nmounts; i++) {
		const struct des_mount *dm = &dc->mounts[i];
		struct obs_mount *om = &oc->mounts[oc->nmounts++];
		om->type = xstrdup(dm->kind == DES_MOUNT_VOLUME ? "volume" : "bind");
		om->source = dm->kind == DES_MOUNT_HOME ? xasprintf("%s/%s", SYNTH_HOME, dm->source)
							: xstrdup(dm->source);
		om->destination = xstrdup(dm->destination);
		om->mode = xstrdup(dm->mode ? dm->mode : "");
		om->rw = dm->rw;
	}
	oc->ports = xcalloc(dc->nports ? dc->nports : 1, sizeof(*oc->ports));
	for (size_t i = 0; i < dc->nports; i++) {
		struct obs_port *op = &oc->ports[oc->nports++];
		op->container_port = xstrdup(dc->ports[i].container_port);
		op->host_ip = xstrdup(dc->ports[i].host_ip ? dc->ports[i].host_ip : "");
		op->host_port = xstrdup(dc->ports[i].host_port ? dc->ports[i].host_port : "");
	}
	oc->restart_policy = dc->restart ? xstrdup(dc->restart) : NULL;
	oc->log_driver = dc->log_driver ? xstrdup(dc->log_driver) : NULL;
	kvs_copy(&oc->log_opts, &dc->log_opts);
	if (dc->network) {
		strvec_push(&oc->networks, dc->network);
		oc->network_mode = xstrdup(dc->network);
	}
	kvs_copy(&oc->options, &dc->options);
	oc->created = xstrdup("1970-01-01T00:00:00Z");
	oc->started_at = xstrdup("1970-01-01T00:00:00Z");
	oc->finished_at = xstrdup("0001-01-01T00:00:00Z");
	oc->service = (v = kvs_get(&dc->labels, "service")) ? xstrdup(v) : NULL;
	oc->role = (v = kvs_get(&dc->labels, "role")) ? xstrdup(v) : NULL;
	oc->destination = (v = kvs_get(&dc->labels, "destination")) ? xstrdup(v) : NULL;
}

void obs_add_empty_host(struct obs_fleet *f, const char *host)
{
	struct obs_host *oh;

	f->hosts = xrealloc(f->hosts, (f->nhosts + 1) * sizeof(*f->hosts));
	oh = &f->hosts[f->nhosts++];
	memset(oh, 0, sizeof(*oh));
	oh->host = xstrdup(host);
	oh->status = OBS_OK;
	oh->home = xstrdup(SYNTH_HOME);
	oh->docker_version = xstrdup("offline");
}

struct obs_fleet *obs_synthesise(const struct desired *ds, const char salt[33])
{
	struct obs_fleet *f = xcalloc(1, sizeof(*f));
	size_t seq = 0;

	snprintf(f->salt, sizeof(f->salt), "%s", salt);
	f->hosts = xcalloc(ds->nhosts ? ds->nhosts : 1, sizeof(*f->hosts));
	for (size_t i = 0; i < ds->nhosts; i++) {
		const struct des_host *dh = &ds->hosts[i];
		struct obs_host *oh = &f->hosts[f->nhosts++];
		oh->host = xstrdup(dh->host);
		oh->status = OBS_OK;
		oh->home = xstrdup(SYNTH_HOME);
		oh->docker_version = xstrdup("offline");
		oh->containers = xcalloc(dh->ncontainers ? dh->ncontainers : 1, sizeof(*oh->containers));
		for (size_t k = 0; k < dh->ncontainers; k++) {
			container(&oh->containers[oh->ncontainers], &dh->containers[k], seq++);
			add_image(oh, &oh->containers[oh->ncontainers++]);
		}
		oh->env_files = xcalloc(dh->nenv_files ? dh->nenv_files : 1, sizeof(*oh->env_files));
		for (size_t k = 0; k < dh->nenv_files; k++) {
			const struct des_env_file *de = &dh->env_files[k];
			struct obs_env_file *oe = &oh->env_files[oh->nenv_files++];
			oe->path = xstrdup(de->path);
			memcpy(oe->content_hash, de->content_hash, sizeof(oe->content_hash));
			copy_env(&oe->vars, &oe->nvars, de->vars, de->nvars, 1);
			oe->mode = 0600;
		}
	}
	return f;
}
