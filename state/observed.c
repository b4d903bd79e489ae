#include "state/observed.h"

#include <stdlib.h>
#include <string.h>

const struct obs_host *obs_fleet_host(const struct obs_fleet *f, const char *host)
{
	for (size_t i = 0; i < f->nhosts; i++)
		if (strcmp(f->hosts[i].host, host) == 0)
			return &f->hosts[i];
	return NULL;
}

const struct obs_image *obs_host_image(const struct obs_host *h, const char *id)
{
	if (!id)
		return NULL;
	for (size_t i = 0; i < h->nimages; i++)
		if (strcmp(h->images[i].id, id) == 0)
			return &h->images[i];
	return NULL;
}

const struct obs_env_file *obs_host_env_file(const struct obs_host *h, const char *path)
{
	for (size_t i = 0; i < h->nenv_files; i++)
		if (strcmp(h->env_files[i].path, path) == 0)
			return &h->env_files[i];
	return NULL;
}

const char *obs_env_hash(const struct obs_env *env, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(env[i].key, key) == 0)
			return env[i].hash;
	return NULL;
}

static void env_free(struct obs_env *env, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(env[i].key);
	free(env);
}

void obs_container_release(struct obs_container *c)
{
	free(c->id);
	free(c->name);
	free(c->image_ref);
	free(c->image_id);
	free(c->state);
	free(c->health);
	strvec_release(&c->cmd);
	strvec_release(&c->entrypoint);
	env_free(c->env, c->nenv);
	kvs_release(&c->labels);
	for (size_t i = 0; i < c->nmounts; i++) {
		free(c->mounts[i].type);
		free(c->mounts[i].source);
		free(c->mounts[i].destination);
		free(c->mounts[i].mode);
	}
	free(c->mounts);
	for (size_t i = 0; i < c->nports; i++) {
		free(c->ports[i].container_port);
		free(c->ports[i].host_ip);
		free(c->ports[i].host_port);
	}
	free(c->ports);
	free(c->restart_policy);
	free(c->log_driver);
	kvs_release(&c->log_opts);
	strvec_release(&c->networks);
	free(c->network_mode);
	free(c->hostname);
	kvs_release(&c->options);
	free(c->created);
	free(c->started_at);
	free(c->finished_at);
	free(c->service);
	free(c->role);
	free(c->destination);
	memset(c, 0, sizeof(*c));
}

void obs_image_release(struct obs_image *i)
{
	free(i->id);
	strvec_release(&i->repo_tags);
	strvec_release(&i->repo_digests);
	env_free(i->env, i->nenv);
	kvs_release(&i->labels);
	strvec_release(&i->cmd);
	strvec_release(&i->entrypoint);
	strvec_release(&i->volumes);
	memset(i, 0, sizeof(*i));
}

void obs_routes_free(struct obs_route *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].service);
		free(r[i].target);
	}
	free(r);
}

void obs_host_release(struct obs_host *h)
{
	free(h->host);
	free(h->error);
	for (size_t i = 0; i < h->ncontainers; i++)
		obs_container_release(&h->containers[i]);
	free(h->containers);
	for (size_t i = 0; i < h->nimages; i++)
		obs_image_release(&h->images[i]);
	free(h->images);
	for (size_t i = 0; i < h->nenv_files; i++) {
		free(h->env_files[i].path);
		env_free(h->env_files[i].vars, h->env_files[i].nvars);
	}
	free(h->env_files);
	free(h->docker_version);
	free(h->home);
	free(h->lock_holder);
	free(h->host_time);
	obs_routes_free(h->routes, h->nroutes);
	memset(h, 0, sizeof(*h));
}

void obs_fleet_free(struct obs_fleet *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nhosts; i++)
		obs_host_release(&f->hosts[i]);
	free(f->hosts);
	explicit_bzero(f->salt, sizeof(f->salt));
	free(f);
}
