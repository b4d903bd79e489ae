#include "tests/support/fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void env_add(struct obs_env **env, size_t *n, const char *key, const char *hash)
{
	*env = xrealloc(*env, (*n + 1) * sizeof(**env));
	(*env)[*n].key = xstrdup(key);
	memcpy((*env)[*n].hash, hash, HASH_HEX_LEN + 1);
	(*n)++;
}

static void env_add_value(struct obs_env **env, size_t *n, const char *salt, const char *key,
			  const char *value)
{
	char h[HASH_HEX_LEN + 1];

	hash_salted(salt, value, strlen(value), h);
	env_add(env, n, key, h);
}

static void env_set_hash(struct obs_container *c, const char *key, const char *hash)
{
	for (size_t i = 0; i < c->nenv; i++)
		if (strcmp(c->env[i].key, key) == 0) {
			memcpy(c->env[i].hash, hash, HASH_HEX_LEN + 1);
			return;
		}
	env_add(&c->env, &c->nenv, key, hash);
}

void diff_fake_set_env(struct obs_container *c, const char *salt, const char *key, const char *value)
{
	for (size_t i = 0; i < c->nenv; i++)
		if (strcmp(c->env[i].key, key) == 0) {
			hash_salted(salt, value, strlen(value), c->env[i].hash);
			return;
		}
	env_add_value(&c->env, &c->nenv, salt, key, value);
}

static struct obs_image *image_for(struct obs_host *h, const char *salt, const char *id,
				   const char *ref, int app)
{
	struct obs_image *im;

	for (size_t i = 0; i < h->nimages; i++)
		if (strcmp(h->images[i].id, id) == 0)
			return &h->images[i];
	h->images = xrealloc(h->images, (h->nimages + 1) * sizeof(*h->images));
	im = &h->images[h->nimages++];
	memset(im, 0, sizeof(*im));
	im->id = xstrdup(id);
	strvec_push(&im->repo_tags, ref);
	env_add_value(&im->env, &im->nenv, salt, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	if (app) {
		env_add_value(&im->env, &im->nenv, salt, "LANG", "C.UTF-8");
		kvs_set(&im->labels, "org.opencontainers.image.source", "https://example.com/app");
		strvec_push(&im->cmd, "./bin/thrust");
		strvec_push(&im->cmd, "./bin/rails");
		strvec_push(&im->cmd, "server");
		strvec_push(&im->volumes, "/rails/tmp");
	} else {
		env_add_value(&im->env, &im->nenv, salt, "PGDATA", "/var/lib/postgresql/data");
		strvec_push(&im->cmd, "postgres");
		strvec_push(&im->volumes, "/var/lib/postgresql/data");
	}
	return im;
}

static void fake_container(struct obs_host *h, const struct desired *ds, const struct des_container *dc,
			   const char *salt, const char *app_image_id, unsigned serial)
{
	struct obs_container *c;
	const struct obs_image *im;
	char idbuf[80];

	h->containers = xrealloc(h->containers, (h->ncontainers + 1) * sizeof(*h->containers));
	c = &h->containers[h->ncontainers++];
	memset(c, 0, sizeof(*c));
	snprintf(idbuf, sizeof(idbuf), "%012x%052x", serial, 0u);
	c->id = xstrdup(idbuf);
	c->name = xstrdup(dc->name);
	c->image_ref = xstrdup(dc->image_ref);
	c->state = xstrdup("running");
	c->created = xstrdup("2025-01-01T00:00:00.000000000Z");
	c->started_at = xstrdup("2025-01-01T00:00:01.000000000Z");
	c->finished_at = xstrdup("0001-01-01T00:00:00Z");
	c->restart_policy = xstrdup("unless-stopped");
	c->network_mode = xstrdup(dc->network);
	strvec_push(&c->networks, dc->network);
	if (dc->log_driver)
		c->log_driver = xstrdup(dc->log_driver);
	else
		c->log_driver = xstrdup("json-file");
	kvs_copy(&c->log_opts, &dc->log_opts);
	switch (dc->kind) {
	case DES_APP:
		c->kind = OBS_APP;
		c->image_id = xstrdup(app_image_id);
		im = image_for(h, salt, app_image_id, dc->image_ref, 1);
		c->service = xstrdup(ds->service);
		c->role = xstrdup(dc->role);
		c->destination = xstrdup(ds->destination ? ds->destination : "");
		snprintf(idbuf, sizeof(idbuf), "%.51s-%012x", h->host, serial);
		c->hostname = xstrdup(idbuf);
		break;
	case DES_ACCESSORY:
		c->kind = OBS_ACCESSORY;
		snprintf(idbuf, sizeof(idbuf), "sha256:%064x", 0xacc0u + serial % 3);
		c->image_id = xstrdup(dc->image_id ? dc->image_id : idbuf);
		im = image_for(h, salt, c->image_id, dc->image_ref, 0);
		c->service = xstrdup(dc->name);
		c->hostname = xstrdup(c->id);
		break;
	default:
		c->kind = OBS_PROXY;
		c->image_id = xstrdup("sha256:00000000000000000000000000000000000000000000000000000000000000aa");
		c->hostname = xstrdup(c->id);
		return;
	}
	/* env: the image's own first (docker merges them), then Kamal's, then ours */
	for (size_t i = 0; i < im->nenv; i++)
		env_add(&c->env, &c->nenv, im->env[i].key, im->env[i].hash);
	if (dc->kind == DES_APP) {
		env_add_value(&c->env, &c->nenv, salt, "KAMAL_CONTAINER_NAME", dc->name);
		env_add_value(&c->env, &c->nenv, salt, "KAMAL_VERSION", ds->version);
	}
	for (size_t i = 0; i < dc->nenv; i++) {
		const struct des_env *e = &dc->env[i];
		if (e->kind == DES_ENV_UNAVAILABLE)
			continue;
		if (e->kind == DES_ENV_EXPANDED)
			diff_fake_set_env(c, salt, e->key, "expanded-on-host");
		else if (e->kind == DES_ENV_NOT_COMPUTED) /* computed by a trusted deploy */
			diff_fake_set_env(c, salt, e->key, "computed-on-deploy");
		else
			env_set_hash(c, e->key, e->hash);
	}
	kvs_copy(&c->labels, &im->labels);
	kvs_copy(&c->labels, &dc->labels);
	if (dc->cmd) {
		for (size_t i = 0; i < dc->cmd_argv.n; i++)
			strvec_push(&c->cmd, dc->cmd_argv.v[i]);
	} else {
		for (size_t i = 0; i < im->cmd.n; i++)
			strvec_push(&c->cmd, im->cmd.v[i]);
	}
	for (size_t i = 0; i < dc->nmounts; i++) {
		const struct des_mount *dm = &dc->mounts[i];
		struct obs_mount *m;
		c->mounts = xrealloc(c->mounts, (c->nmounts + 1) * sizeof(*c->mounts));
		m = &c->mounts[c->nmounts++];
		memset(m, 0, sizeof(*m));
		m->type = xstrdup(dm->kind == DES_MOUNT_VOLUME ? "volume" : "bind");
		m->source = dm->kind == DES_MOUNT_HOME ? xasprintf("/home/deploy/%s", dm->source)
						      : xstrdup(dm->source);
		m->destination = xstrdup(dm->destination);
		m->mode = xstrdup(dm->mode);
		m->rw = dm->rw;
	}
	/* the image's VOLUMEs not covered by a mount get anonymous volumes */
	for (size_t v = 0; v < im->volumes.n; v++) {
		int covered = 0;
		struct obs_mount *m;
		for (size_t i = 0; i < dc->nmounts && !covered; i++)
			covered = strcmp(dc->mounts[i].destination, im->volumes.v[v]) == 0;
		if (covered)
			continue;
		c->mounts = xrealloc(c->mounts, (c->nmounts + 1) * sizeof(*c->mounts));
		m = &c->mounts[c->nmounts++];
		memset(m, 0, sizeof(*m));
		m->type = xstrdup("volume");
		m->source = xasprintf("%064x", serial);
		m->destination = xstrdup(im->volumes.v[v]);
		m->mode = xstrdup("");
		m->rw = 1;
	}
	for (size_t i = 0; i < dc->nports; i++) {
		struct obs_port *p;
		c->ports = xrealloc(c->ports, (c->nports + 1) * sizeof(*c->ports));
		p = &c->ports[c->nports++];
		p->container_port = xstrdup(dc->ports[i].container_port);
		p->host_ip = xstrdup(dc->ports[i].host_ip);
		p->host_port = xstrdup(dc->ports[i].host_port);
	}
	for (size_t i = 0; i < dc->options.n; i++)
		kvs_set(&c->options, dc->options.keys[i], dc->options.vals[i]);
}

void diff_fake_fleet(struct obs_fleet **out, const struct desired *ds, const char *salt,
		     const char *app_image_id)
{
	struct obs_fleet *f = xcalloc(1, sizeof(*f));
	unsigned serial = 1;

	snprintf(f->salt, sizeof(f->salt), "%s", salt);
	f->hosts = xcalloc(ds->nhosts ? ds->nhosts : 1, sizeof(*f->hosts));
	for (size_t i = 0; i < ds->nhosts; i++) {
		const struct des_host *dh = &ds->hosts[i];
		struct obs_host *h = &f->hosts[f->nhosts++];
		h->host = xstrdup(dh->host);
		h->status = OBS_OK;
		h->docker_version = xstrdup("26.1.5");
		h->round_trips = 1;
		for (size_t j = 0; j < dh->ncontainers; j++)
			fake_container(h, ds, &dh->containers[j], salt, app_image_id, serial++);
		h->env_files = xcalloc(dh->nenv_files ? dh->nenv_files : 1, sizeof(*h->env_files));
		for (size_t j = 0; j < dh->nenv_files; j++) {
			const struct des_env_file *df = &dh->env_files[j];
			struct obs_env_file *of = &h->env_files[h->nenv_files++];
			of->path = xstrdup(df->path);
			memcpy(of->content_hash, df->content_hash, sizeof(of->content_hash));
			of->mode = 0600;
			for (size_t k = 0; k < df->nvars; k++)
				if (df->vars[k].kind == DES_ENV_SECRET)
					env_add(&of->vars, &of->nvars, df->vars[k].key, df->vars[k].hash);
		}
	}
	*out = f;
}

struct obs_container *diff_fake_add(struct obs_host *h, const struct obs_container *src,
				    const char *name)
{
	struct obs_container *c;
	size_t idx = (size_t)(src - h->containers);
	int inside = src >= h->containers && idx < h->ncontainers;
	struct obs_container copy;

	h->containers = xrealloc(h->containers, (h->ncontainers + 1) * sizeof(*h->containers));
	if (inside)
		src = &h->containers[idx];
	copy = *src;
	c = &h->containers[h->ncontainers++];
	memset(c, 0, sizeof(*c));
	c->id = xasprintf("%s-copy", copy.id ? copy.id : "");
	c->name = xstrdup(name);
	c->kind = copy.kind;
	c->image_ref = copy.image_ref ? xstrdup(copy.image_ref) : NULL;
	c->image_id = copy.image_id ? xstrdup(copy.image_id) : NULL;
	c->state = xstrdup(copy.state ? copy.state : "running");
	c->health = copy.health ? xstrdup(copy.health) : NULL;
	for (size_t i = 0; i < copy.cmd.n; i++)
		strvec_push(&c->cmd, copy.cmd.v[i]);
	for (size_t i = 0; i < copy.nenv; i++)
		env_add(&c->env, &c->nenv, copy.env[i].key, copy.env[i].hash);
	kvs_copy(&c->labels, &copy.labels);
	c->mounts = xcalloc(copy.nmounts ? copy.nmounts : 1, sizeof(*c->mounts));
	for (size_t i = 0; i < copy.nmounts; i++) {
		c->mounts[i].type = xstrdup(copy.mounts[i].type);
		c->mounts[i].source = xstrdup(copy.mounts[i].source);
		c->mounts[i].destination = xstrdup(copy.mounts[i].destination);
		c->mounts[i].mode = xstrdup(copy.mounts[i].mode);
		c->mounts[i].rw = copy.mounts[i].rw;
	}
	c->nmounts = copy.nmounts;
	c->ports = xcalloc(copy.nports ? copy.nports : 1, sizeof(*c->ports));
	for (size_t i = 0; i < copy.nports; i++) {
		c->ports[i].container_port = xstrdup(copy.ports[i].container_port);
		c->ports[i].host_ip = xstrdup(copy.ports[i].host_ip);
		c->ports[i].host_port = xstrdup(copy.ports[i].host_port);
	}
	c->nports = copy.nports;
	c->restart_policy = copy.restart_policy ? xstrdup(copy.restart_policy) : NULL;
	c->log_driver = copy.log_driver ? xstrdup(copy.log_driver) : NULL;
	kvs_copy(&c->log_opts, &copy.log_opts);
	for (size_t i = 0; i < copy.networks.n; i++)
		strvec_push(&c->networks, copy.networks.v[i]);
	c->network_mode = copy.network_mode ? xstrdup(copy.network_mode) : NULL;
	c->hostname = copy.hostname ? xstrdup(copy.hostname) : NULL;
	kvs_copy(&c->options, &copy.options);
	c->created = copy.created ? xstrdup(copy.created) : NULL;
	c->service = copy.service ? xstrdup(copy.service) : NULL;
	c->role = copy.role ? xstrdup(copy.role) : NULL;
	c->destination = copy.destination ? xstrdup(copy.destination) : NULL;
	return c;
}

struct obs_container *diff_fake_find(struct obs_host *h, const char *name_prefix)
{
	for (size_t i = 0; i < h->ncontainers; i++)
		if (h->containers[i].name &&
		    strncmp(h->containers[i].name, name_prefix, strlen(name_prefix)) == 0)
			return &h->containers[i];
	return NULL;
}

char *diff_fake_fleet_yml(size_t nhosts, size_t njob)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	sbuf_adds(&sb, "service: optimus\nimage: optimus\nregistry:\n  server: localhost:5555\n"
		       "proxy:\n  host: app.example.com\nboot:\n  limit: 100\n"
		       "env:\n  secret:\n    - RAILS_MASTER_KEY\n  clear:\n    DB_HOST: optimus-db\n"
		       "servers:\n  web:\n    hosts:\n");
	for (size_t i = 0; i < nhosts; i++)
		sbuf_addf(&sb, "      - 10.1.%zu.%zu\n", i / 250, i % 250 + 1);
	sbuf_adds(&sb, "  job:\n    cmd: bin/jobs\n    hosts:\n");
	for (size_t i = 0; i < njob; i++)
		sbuf_addf(&sb, "      - 10.1.%zu.%zu\n", i / 250, i % 250 + 1);
	sbuf_adds(&sb, "accessories:\n  db:\n    image: postgres:17\n    host: 10.1.0.1\n"
		       "    env:\n      secret:\n        - POSTGRES_PASSWORD\n"
		       "    directories:\n      - data:/var/lib/postgresql/data\n");
	return sbuf_detach(&sb);
}
