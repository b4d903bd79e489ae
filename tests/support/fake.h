/*
 * A fake observed fleet: what the observation would report for hosts set up
 * exactly as `kamal deploy` + `kamal accessory boot` leave them at the
 * desired state's version. For unit tests (which then change one thing and
 * look at the plan) and for the planning benchmark; no I/O.
 *
 * Every app image gets image-defined env (PATH, LANG), a label and a cmd, so
 * the diff's subtraction of the image's own settings is exercised; the
 * containers carry KAMAL_VERSION / KAMAL_CONTAINER_NAME and a random-looking
 * hostname, as Kamal's do. Hashes are made with ds's salt: the desired
 * state's own hashes are copied, so no secret value is needed.
 *
 * Ownership: *out is a new obs_fleet (obs_fleet_free).
 */
#ifndef PLUMB_TESTS_SUPPORT_FAKE_H
#define PLUMB_TESTS_SUPPORT_FAKE_H

#include "state/desired.h"
#include "state/observed.h"

/* app_image_id: identity of the running app image (e.g. the desired one). */
/* deploy.yml of a large fleet (optimus: web on nhosts hosts, job on the first
 * njob of them, Postgres on 10.1.0.1) for golden tests and benchmarks; caller frees. */
char *diff_fake_fleet_yml(size_t nhosts, size_t njob);
void diff_fake_fleet(struct obs_fleet **out, const struct desired *ds, const char *salt,
		     const char *app_image_id);

/* Adds a container to h (a copy of src with a new name, for tests). Returns it. */
struct obs_container *diff_fake_add(struct obs_host *h, const struct obs_container *src,
				    const char *name);
/* Sets (or adds) an env hash on a container: hash_salted(salt, value). */
void diff_fake_set_env(struct obs_container *c, const char *salt, const char *key, const char *value);
/* Finds a container by name prefix on a host (NULL if none). */
struct obs_container *diff_fake_find(struct obs_host *h, const char *name_prefix);

#endif
